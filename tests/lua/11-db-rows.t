#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- db.rows: streaming in bounded memory, early exit, errors, the
-- re-entrancy guard, cleanup when a Lua error unwinds through the loop.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end

local BUSY = "connection busy: a rows%(%) iteration is in progress on it %(use another connection from db%.connect%(%)%)"

local function usable(name)
  T.is(db.one("SELECT 41 + 1 AS x"), {x = 42}, name)
end

---------------------------------------------------------------- basics
local got = {}
for row in db.rows("SELECT i, 'n' || i AS s, NULL::int AS z FROM generate_series(1, 5) i ORDER BY i") do
  got[#got + 1] = row
end
T.is(got, {{i = 1, s = "n1"}, {i = 2, s = "n2"}, {i = 3, s = "n3"}, {i = 4, s = "n4"}, {i = 5, s = "n5"}},
     "rows yields each row as a table by column name, NULL absent")
T.is(math.type(got[1].i), "integer", "rows: the same type mapping as query")
local n = 0
for _ in db.rows("SELECT 1 WHERE false") do n = n + 1 end
T.is(n, 0, "rows: no rows, no iterations")
local sum = 0
for row in db.rows("SELECT i FROM generate_series($1::int, $2::int) i", 3, 6) do sum = sum + row.i end
T.is(sum, 18, "rows: parameters")
T.like(err_of(db.rows, "SELECT $1", {}), "parameter %$1: a table is not a SQL value", "rows: bad parameter raises at once")
usable("usable after a bad parameter")
T.like(err_of(function() for _ in db.rows("SELEC 1") do end end), "syntax error at or near \"SELEC\" %[SQLSTATE 42601%]",
       "rows: SQL error raised with SQLSTATE")
-- (COPY ... TO STDOUT was told to go "through conn:copy()", which
-- takes only COPY ... FROM STDIN: the advice led to another refusal)
T.like(err_of(function() for _ in db.rows("COPY (SELECT 1) TO STDOUT") do end end),
       "^tests/lua/11%-db%-rows%.t:%d+: query failed while reading rows: COPY %.%.%. TO STDOUT is not supported: "
       .. "read the rows with a SELECT %(db%.rows, db%.query%)$",
       "rows() of a COPY TO STDOUT raises, saying what to do instead")
db.exec("CREATE TEMP TABLE rows_cp (a int)")
T.like(err_of(function() for _ in db.rows("COPY rows_cp FROM STDIN") do end end),
       "^tests/lua/11%-db%-rows%.t:%d+: query failed while reading rows: COPY %.%.%. FROM STDIN goes through db%.copy%(%) "
       .. "%(conn:copy%(%)%), not rows%(%)$",
       "rows() of a COPY FROM STDIN raises, naming db.copy()")
T.like(err_of(db.exec, "COPY rows_cp FROM STDIN"),
       "^query failed: COPY %.%.%. FROM STDIN goes through db%.copy%(%) %(conn:copy%(%)%), not exec/query$",
       "exec of a COPY FROM STDIN: the same")
T.like(err_of(db.query, "COPY rows_cp TO STDOUT"),
       "^query failed: COPY %.%.%. TO STDOUT is not supported: read the rows with a SELECT %(db%.rows, db%.query%)$",
       "query of a COPY TO STDOUT: the same")
T.is(db.one("SELECT count(*) AS n FROM rows_cp").n, 0, "...and the connection works after them")
T.is(db.one("SELECT 1 AS x").x, 1, "the connection works after a COPY was refused by rows()")
usable("usable after an SQL error in rows")

---------------------------------------------------------------- a finalizer closing the iteration mid-row
-- Building a row allocates, so finalizers run meanwhile; one that closes
-- the iteration must not free the result the row is being built from
-- (it crashed, or read garbage).
do
  local cols = {}
  for i = 1, 100 do cols[i] = "repeat('x', 50) AS c" .. i end
  -- (from a full collection: when the collector first runs the finalizers
  -- -- before the first row, or while one is built -- otherwise depends on
  -- how much everything above allocated; before it, no row is read)
  collectgarbage("collect")
  local it, _, _, closer = db.rows("SELECT " .. table.concat(cols, ", ") .. " FROM generate_series(1, 1000)")
  local got = 0
  repeat
    for _ = 1, 10 do setmetatable({}, {__gc = function() closer:close() end}) end
    local row = it()
    if row then got = got + 1; assert(row.c100 == string.rep("x", 50)) end
  until row == nil
  T.ok(got >= 1 and got <= 1000, "rows closed by a finalizer while a row is built: no crash, whole rows (" .. got .. ")")
  T.is(db.one("SELECT 1 AS x").x, 1, "...and the session works after it")
  -- one that calls the iterator again meanwhile is refused (inside the
  -- finalizer), the row being built stays whole
  local cols2 = {}
  for i = 1, 100 do cols2[i] = "repeat('y', 50) AS c" .. i end
  local it2 = db.rows("SELECT " .. table.concat(cols2, ", ") .. " FROM generate_series(1, 200)")
  local got2, refused = 0, 0
  repeat
    for _ = 1, 10 do setmetatable({}, {__gc = function() if not pcall(it2) then refused = refused + 1 end end}) end
    local row = it2()
    if row then got2 = got2 + 1; assert(row.c100 == string.rep("y", 50)) end
  until row == nil
  T.ok(got2 >= 1, "rows called again by a finalizer while a row is built: no crash, whole rows (" .. got2 .. ", "
       .. refused .. " refused)")
  T.is(db.one("SELECT 2 AS x").x, 2, "...and the session works after it")
end

---------------------------------------------------------------- bounded memory
collectgarbage("collect")
local base, peak, count, total = collectgarbage("count"), 0, 0, 0
for row in db.rows("SELECT i, repeat('x', 50) AS pad FROM generate_series(1, 200000) i") do
  count = count + 1
  total = total + row.i
  if count % 1000 == 0 then
    local kb = collectgarbage("count")
    if kb > peak then peak = kb end
  end
end
T.is(count, 200000, "200000 rows streamed")
T.is(total, 200000 * 200001 // 2, "every row seen once")
T.ok(peak - base < 4096, "Lua memory stays bounded while streaming")
T.diag(string.format("Lua heap: %.0f KB before, peak %.0f KB while streaming", base, peak))
usable("usable after a complete iteration")

---------------------------------------------------------------- leaving early
n = 0
for row in db.rows("SELECT i FROM generate_series(1, 1000000) i") do
  n = n + 1
  if row.i == 3 then break end
end
T.is(n, 3, "break after 3 rows")
usable("break closes the query: the connection is usable again")
-- The query's last row, 200 MB of rows later, takes a value of a sequence
-- (which no rollback undoes): closed with a cancel, the server never gets
-- there; drained without one, it would compute every row (and the break
-- would wait for them).  No clock: the sequence says which.
local seq = "ferry_lua_rows_cancel_" .. db.backend_pid()
db.exec("CREATE TEMP SEQUENCE " .. seq)
for _ in db.rows([[SELECT i, repeat('x', 1000) AS pad, CASE WHEN i = 200000 THEN nextval($1) END AS s
                    FROM generate_series(1, 200000) i]], seq) do break end
T.is(db.one("SELECT is_called FROM " .. seq).is_called, false,
     "break cancels the rest of the query: its last row is never computed")
usable("usable after a cancelled query")
T.is(db.in_transaction(), false, "no transaction left open")

-- a manual iteration closed with the fourth value (the closer)
local it, _, _, closer = db.rows("SELECT i FROM generate_series(1, 100) i")
T.is(it(), {i = 1}, "the iterator function returns rows")
T.is(it(), {i = 2}, "one at a time")
T.like(err_of(db.exec, "SELECT 1"), BUSY, "busy while the iteration is open")
closer:close()
T.is(it(), nil, "after close the iterator returns nil")
usable("usable after close()")
closer:close()
T.ok(true, "close twice is safe")

-- an abandoned iteration is closed by the garbage collector
do
  local it2 = db.rows("SELECT i FROM generate_series(1, 100) i")
  it2()
end
collectgarbage("collect")
collectgarbage("collect")
usable("an abandoned iteration is closed when collected")

---------------------------------------------------------------- inside a transaction
db.exec("CREATE TEMP TABLE rt (v int)")
local ok, err = pcall(db.transaction, function()
  db.exec("INSERT INTO rt VALUES (1)")
  for row in db.rows("SELECT i FROM generate_series(1, 100000) i") do
    if row.i == 2 then break end
  end
  db.exec("INSERT INTO rt VALUES (2)")
end)
T.is({ok, err}, {true}, "break inside a transaction leaves the transaction working")
T.is(db.one("SELECT count(*) AS n FROM rt").n, 2, "and both inserts are committed")
ok = pcall(db.transaction, function()
  db.exec("INSERT INTO rt VALUES (3)")
  for _ in db.rows("SELECT i FROM generate_series(1, 10) i") do break end
end)
T.is(db.one("SELECT count(*) AS n FROM rt").n, 3, "a write before the loop is committed too")

---------------------------------------------------------------- errors during the loop
err = err_of(function()
  for row in db.rows("SELECT i FROM generate_series(1, 100000) i") do
    if row.i == 10 then error("boom at ten") end
  end
end)
T.like(err, "boom at ten$", "a Lua error inside the loop propagates unchanged")
usable("the loop's query is closed when an error unwinds through it")
err = err_of(function()
  for _ in db.rows("SELECT i FROM generate_series(1, 100000) i") do
    error({code = 7, message = "table error"})
  end
end)
T.is(err, "table error", "error objects pass through too")
usable("usable after a table error")

local seen = {}
err = err_of(function()
  for row in db.rows("SELECT 10 / (5 - i) AS v FROM generate_series(1, 10) i") do seen[#seen + 1] = row.v end
end)
T.is(seen, {2, 3, 5, 10}, "rows before a server error are delivered")
T.like(err, "query failed while reading rows: division by zero %[SQLSTATE 22012%]$", "a server error mid-stream raises with SQLSTATE")
usable("usable after a server error mid-stream")

---------------------------------------------------------------- re-entrancy guard
local msgs = {}
for row in db.rows("SELECT i FROM generate_series(1, 3) i") do
  if row.i == 1 then
    msgs.exec = err_of(db.exec, "SELECT 1")
    msgs.query = err_of(db.query, "SELECT 1")
    msgs.one = err_of(db.one, "SELECT 1")
    msgs.rows = err_of(db.rows, "SELECT 1")
    msgs.copy = err_of(db.copy, "COPY rt FROM STDIN")
    msgs.copy_rows = err_of(db.copy_rows, "COPY rt FROM STDIN", {{1}})
    msgs.exec_script = err_of(db.exec_script, "SELECT 1")
    msgs.transaction = err_of(db.transaction, function() end)
    msgs.quote_ident = db.quote_ident("ok")
    msgs.backend_pid = math.type(db.backend_pid())
    msgs.in_transaction = db.in_transaction()
    local other = db.connect()
    msgs.other = other:one("SELECT 5 AS v").v
    other:close()
  end
end
for _, name in ipairs{"exec", "query", "one", "rows", "copy", "copy_rows", "exec_script", "transaction"} do
  T.like(msgs[name], BUSY, "during rows(): " .. name .. " raises 'connection busy'")
end
T.is(msgs.quote_ident, '"ok"', "during rows(): quote_ident works (no round trip)")
T.is(msgs.backend_pid, "integer", "during rows(): backend_pid works")
T.is(msgs.in_transaction, false, "during rows(): in_transaction works")
T.is(msgs.other, 5, "during rows(): another connection from db.connect() works")
usable("the guard is released when the loop ends")

-- two streams at once need two connections
local a, b = db.connect(), db.connect()
local pairs_seen = 0
for ra in a:rows("SELECT i FROM generate_series(1, 3) i") do
  for rb in b:rows("SELECT i FROM generate_series(1, 3) i") do
    if ra.i == rb.i then pairs_seen = pairs_seen + 1 end
  end
end
T.is(pairs_seen, 3, "nested rows() on two connections")
b:close()

-- closing the connection in the middle of an iteration
err = err_of(function()
  for _ in a:rows("SELECT i FROM generate_series(1, 100) i") do a:close() end
end)
T.like(err, "this rows%(%) iteration's connection is closed$", "closing the connection mid-iteration raises on the next row, saying so")
T.like(err_of(a.one, a, "SELECT 1"), "attempt to use a closed connection", "and the connection is closed")
usable("the main connection is unaffected")

-- in_transaction() while a rows() iteration or a COPY is in progress tells
-- the transaction the command runs in (libpq only says "busy" then)
do
  local c = db.connect()
  c:exec("BEGIN")
  local nxt, _, _, it = c:rows("SELECT g FROM generate_series(1, 3) g")
  nxt()
  T.is(c:in_transaction(), true, "in_transaction() during a rows() iteration inside BEGIN: true")
  it:close()
  c:exec("ROLLBACK")
  nxt, _, _, it = c:rows("SELECT g FROM generate_series(1, 3) g")
  nxt()
  T.is(c:in_transaction(), false, "... and outside one: false")
  it:close()
  c:exec("CREATE TEMP TABLE busy_tx (v int)")
  c:exec("BEGIN")
  local w = c:copy("COPY busy_tx (v) FROM STDIN")
  w:put(1)
  T.is(c:in_transaction(), true, "in_transaction() during a COPY inside BEGIN: true")
  w:finish()
  c:exec("COMMIT")
  c:close()
end

-- a data-changing statement is run to its end before its first row: leaving
-- its loop early does not undo it (as the docs say)
db.exec("CREATE TEMP TABLE ret_k AS SELECT g AS a FROM generate_series(1, 5000) g")
for _ in db.rows("UPDATE ret_k SET a = -a RETURNING a") do break end
T.is(db.one("SELECT count(*) FILTER (WHERE a < 0) AS n FROM ret_k").n, 5000,
     "UPDATE ... RETURNING left after one row: every row was updated")
db.exec("DROP TABLE ret_k")

return T.done()
