#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- db.transaction: commit, rollback and re-raise, nested savepoints, the
-- state of the connection afterwards.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end

-- a real table, so that a second session can look at it
local tbl = "ferry_lua_tx_" .. db.backend_pid()
db.exec("SET client_min_messages = warning")
db.exec("DROP TABLE IF EXISTS " .. tbl)
db.exec("CREATE TABLE " .. tbl .. " (v int)")
local INSERT = "INSERT INTO " .. tbl .. " VALUES ($1)"
local observer = db.connect()
local function values(conn)
  local out = {}
  local sql = "SELECT v FROM " .. tbl .. " ORDER BY v"
  for row in (conn and conn:rows(sql) or db.rows(sql)) do out[#out + 1] = row.v end
  return out
end
local function reset() db.exec("DELETE FROM " .. tbl) end

---------------------------------------------------------------- commit
local seen_inside, in_tx
local r1, r2, r3 = db.transaction(function(a, b)
  db.exec(INSERT, a)
  db.exec(INSERT, b)
  seen_inside = values(observer)
  in_tx = db.in_transaction()
  return "x", nil, 3
end, 1, 2)
T.is({r1, r2, r3}, {"x", nil, 3}, "transaction returns fn's results (nil in the middle kept)")
T.is(select("#", db.transaction(function() return 1, nil end)), 2, "the number of results is kept")
T.is(select("#", db.transaction(function() end)), 0, "no results")
T.is(seen_inside, {}, "other sessions do not see uncommitted rows")
T.is(in_tx, true, "in_transaction is true inside fn")
T.is(values(observer), {1, 2}, "committed: another session sees the rows")
T.is(db.in_transaction(), false, "in_transaction is false after the commit")

---------------------------------------------------------------- rollback and re-raise
reset()
local line
local err = err_of(function()
  db.transaction(function()
    db.exec(INSERT, 10)
    error("boom"); line = debug.getinfo(1, "l").currentline
  end)
end)
T.like(err, "13%-db%-transaction%.t:%d+: boom$", "the error is re-raised unchanged (with its own position)")
T.is(values(), {}, "rolled back")
T.is(db.in_transaction(), false, "no transaction left open")

local obj = {code = 3, message = "table error"}
local ok, e = pcall(db.transaction, function()
  db.exec(INSERT, 11)
  error(obj)
end)
T.ok(not ok and rawequal(e, obj), "an error object is re-raised as the same object")
T.is(values(), {}, "rolled back")

err = err_of(db.transaction, function()
  db.exec(INSERT, 12)
  db.exec("SELECT 1/0")
end)
T.like(err, "query failed: division by zero %[SQLSTATE 22012%]$", "an SQL error inside: re-raised with SQLSTATE")
T.is(values(), {}, "rolled back")
T.is(db.one("SELECT 1 AS x").x, 1, "the connection works after a rollback")

---------------------------------------------------------------- a caught error inside (no savepoint)
local states
err = err_of(db.transaction, function()
  db.exec(INSERT, 13)
  pcall(db.exec, "SELECT 1/0")     -- caught: the transaction is now failed
  states = {db.in_transaction()}
end)
T.is(states, {true, true}, "in_transaction() -> true, true in a failed transaction")
T.like(err, "^.-transaction rolled back: a statement in it failed and its error was caught",
       "a failed statement whose error was caught: transaction raises instead of a silent rollback")
T.is(values(), {}, "nothing committed")
T.is(db.in_transaction(), false, "no transaction left open")
local _, failed = db.in_transaction()
T.is(failed, false, "in_transaction's second value: not failed")

---------------------------------------------------------------- a caught error inside a nested transaction
-- The inner transaction rolls back to its savepoint and raises, as the
-- outer one does; the outer one, catching that, goes on.
reset()
local inner_err
db.transaction(function()
  db.exec(INSERT, 14)
  inner_err = err_of(db.transaction, function()
    db.exec(INSERT, 15)
    pcall(db.exec, "SELECT 1/0")     -- caught: the savepoint's work is now failed
  end)
  db.exec(INSERT, 16)
end)
T.like(inner_err, "^.-transaction rolled back: a statement in it failed and its error was caught",
       "a nested transaction with a caught failed statement: it raises, as the outer one would")
T.is(inner_err:find("[ferry]", 1, true), nil, "...naming no internal file")
T.is(values(), {14, 16}, "the outer transaction went on: the inner one's work rolled back to its savepoint")
-- and the failed inner savepoints are released: none is left to nest the
-- next one in (ROLLBACK TO one of them finds none)
reset()
local probe
err = err_of(db.transaction, function()
  for _ = 1, 2 do
    err_of(db.transaction, function() pcall(db.exec, "SELECT 1/0") end)
    err_of(db.transaction, function() error("inner failure") end)
  end
  probe = err_of(db.exec, "ROLLBACK TO SAVEPOINT ferry_sp_1")
end)
T.like(probe, 'savepoint "ferry_sp_1" does not exist', "failed nested transactions leave no savepoint behind")

---------------------------------------------------------------- an error with a rows() or COPY still open
-- fn raises while a rows() it drives by hand, or a COPY writer, still holds
-- the session: the transaction must still be rolled back (the ROLLBACK
-- failed as "connection busy", unseen, and later statements joined the
-- dead transaction and were lost).
reset()
err = err_of(db.transaction, function()
  db.exec(INSERT, 17)
  local next_row = db.rows("SELECT generate_series(1, 100) AS i")
  next_row()
  error("failed mid-rows")
end)
T.like(err, "failed mid%-rows", "an error with a rows() open: raised")
T.is(db.in_transaction(), false, "...and the transaction is rolled back, not left open")
T.is(values(), {}, "...nothing of it kept")
err = err_of(db.transaction, function()
  db.exec(INSERT, 18)
  local w = db.copy("COPY " .. tbl .. " (v) FROM STDIN")
  w:put(19)
  error("failed mid-COPY")
end)
T.like(err, "failed mid%-COPY", "an error with a COPY writer open: raised")
T.is(db.in_transaction(), false, "...and the transaction is rolled back")
db.exec(INSERT, 20)
T.is(values(), {20}, "...a later statement is kept")
-- a second rows() or copy() refused as "connection busy" (its error
-- caught) must not make ferry forget the one still open: the transaction
-- is still rolled back when fn raises
reset()
local busy_rows, busy_copy
err = err_of(db.transaction, function()
  db.exec(INSERT, 24)
  local next_row = db.rows("SELECT generate_series(1, 100) AS i")
  next_row()
  busy_rows = err_of(db.rows, "SELECT 1")
  busy_copy = err_of(db.copy, "COPY " .. tbl .. " (v) FROM STDIN")
  error("failed after a busy rows()")
end)
T.like(busy_rows, "connection busy", "a second rows() while one is open: refused")
T.like(busy_copy, "connection busy", "...and a copy()")
T.like(err, "failed after a busy rows%(%)", "...fn raises after catching those: raised")
T.is(db.in_transaction(), false, "...and the transaction is rolled back, the open rows() ended first")
T.is(values(), {}, "...nothing of it kept")
err = err_of(db.transaction, function()
  db.exec(INSERT, 25)
  local w = db.copy("COPY " .. tbl .. " (v) FROM STDIN")
  w:put(26)
  busy_rows = err_of(db.rows, "SELECT 1")
  error("failed after a busy copy()")
end)
T.like(busy_rows, "connection busy", "a rows() while a COPY is open: refused")
T.is(db.in_transaction(), false, "...fn raises: the transaction is rolled back, the COPY ended first")
db.exec(INSERT, 27)
T.is(values(), {27}, "...a later statement is kept")
-- db.transaction itself refused as "connection busy" (its BEGIN, outside
-- any transaction, while the script reads a rows() loop): the error is
-- the script's to catch, and the loop it has open is still its own -- it
-- reads on to its end (the guard, armed before the BEGIN, ended it, and
-- the loop stopped after its first row with no error)
do
  local next_row = db.rows("SELECT generate_series(1, 4) AS i")
  local read = {next_row().i}
  T.like(err_of(db.transaction, function() end), "connection busy: a rows%(%) iteration is in progress",
         "db.transaction while a rows() loop is open outside a transaction: refused")
  for r in next_row do read[#read + 1] = r.i end
  T.is(read, {1, 2, 3, 4}, "...and the loop reads on to its end")
  T.is(db.in_transaction(), false, "...with no transaction left open")
end

---------------------------------------------------------------- nested: savepoints
reset()
db.transaction(function()
  db.exec(INSERT, 20)
  db.transaction(function()
    db.exec(INSERT, 21)
  end)
  local ok2, err2 = pcall(db.transaction, function()
    db.exec(INSERT, 22)
    error("inner fails")
  end)
  T.ok(not ok2 and tostring(err2):find("inner fails$") ~= nil, "nested: the inner error is re-raised to the outer fn")
  local _, f = db.in_transaction()
  T.is(f, false, "nested: after the inner rollback the outer transaction is not failed")
  local ok3 = pcall(db.transaction, function()
    db.exec(INSERT, 23)
    db.exec("SELECT 1/0")
  end)
  T.is(ok3, false, "nested: an SQL error inside the inner transaction")
  db.exec(INSERT, 24)
  T.is(db.transaction(function()
    return db.transaction(function() db.exec(INSERT, 25); return "deep" end)
  end), "deep", "three levels deep returns results")
end)
T.is(values(), {20, 21, 24, 25}, "nested: inner successes kept, inner failures rolled back to their savepoint")

reset()
err = err_of(db.transaction, function()
  db.exec(INSERT, 30)
  db.transaction(function()
    db.exec(INSERT, 31)
    error("inner not caught")
  end)
end)
T.like(err, "inner not caught$", "nested: an uncaught inner error goes through the outer transaction")
T.is(values(), {}, "and rolls everything back")
T.is(db.in_transaction(), false, "no transaction left open")
T.is(db.transaction(function() db.exec(INSERT, 32); return "again" end), "again", "the next transaction starts at depth 0")
T.is(values(), {32}, "and commits")

---------------------------------------------------------------- other connections
reset()
local c = db.connect()
c:transaction(function()
  c:exec(INSERT, 40)
  T.is(c:in_transaction(), true, "conn:transaction on a second connection")
  T.is(db.in_transaction(), false, "the main connection is not in it")
end)
T.is(values(), {40}, "conn:transaction commits")
err = err_of(c.transaction, c, function() c:exec(INSERT, 41); error("c fails") end)
T.like(err, "c fails$", "conn:transaction re-raises")
T.is(values(), {40}, "conn:transaction rolls back")
c:close()

---------------------------------------------------------------- unwinding through bindings inside
reset()
err = err_of(db.transaction, function()
  db.exec(INSERT, 50)
  for row in db.rows("SELECT i FROM generate_series(1, 100000) i") do
    if row.i == 5 then error("error in rows loop") end
  end
end)
T.like(err, "error in rows loop$", "an error inside a rows loop inside a transaction")
T.is(values(), {}, "rolled back")
T.is(db.one("SELECT 1 AS x").x, 1, "usable afterwards")

err = err_of(db.transaction, function()
  db.exec(INSERT, 51)
  local w <close> = db.copy("COPY " .. tbl .. " (v) FROM STDIN")
  w:put(52)
  error("error in copy")
end)
T.like(err, "error in copy$", "an error during a COPY inside a transaction")
T.is(values(), {}, "rolled back (the COPY too)")
T.is(db.one("SELECT 1 AS x").x, 1, "usable afterwards")

db.transaction(function()
  db.exec(INSERT, 60)
  local w = db.copy("COPY " .. tbl .. " (v) FROM STDIN")
  w:put(61)
  w:finish()
end)
T.is(values(), {60, 61}, "exec and COPY in one transaction commit together")

---------------------------------------------------------------- conn:share_snapshot
db.exec("DELETE FROM " .. tbl)
db.exec(INSERT, 1)
local reader, other = db.reader(), db.connect()
reader:share_snapshot(other)
db.exec(INSERT, 2)                          -- committed after the snapshot
local function seen(conn) return conn:one("SELECT string_agg(v::text, ',' ORDER BY v) AS s FROM " .. tbl).s end
T.is(seen(reader), "1", "share_snapshot: the reader does not see a row committed after its snapshot")
T.is(seen(other), "1", "the other session sees exactly what the reader sees")
T.is(seen(observer), "1,2", "(a third session sees both rows)")
T.is(other:in_transaction(), true, "the other session is in the shared snapshot's transaction")
T.like(select(2, pcall(other.exec, other, "INSERT INTO " .. tbl .. " (v) VALUES (3)")), "read%-only transaction",
       "which is read-only")
other:exec("ROLLBACK")
T.is(seen(other), "1,2", "after it ends, the other session sees the present again")
reader:close()

-- The other session must not be in a transaction of its own: its work
-- would be rolled back.  Refused, and that transaction left as it was.
reader = db.reader()
other = db.connect()
other:exec("BEGIN")
other:exec("CREATE TEMP TABLE mine (v int)")
ok, err = pcall(reader.share_snapshot, reader, other)
T.like(err, "is in a transaction", "share_snapshot onto a session inside a transaction: refused")
T.is(other:in_transaction(), true, "... its transaction still open")
T.is(other:one("SELECT count(*) AS n FROM mine").n, 0, "... with its work")
other:exec("ROLLBACK")
other:close()
reader:close()
other = db.connect()

-- The session sharing its snapshot must be in a REPEATABLE READ (or
-- SERIALIZABLE) transaction: outside one the snapshot is gone before its
-- import, in READ COMMITTED it moves on at each statement.  Refused, the
-- other session left idle.
ok, err = pcall(observer.share_snapshot, observer, other)
T.like(err, "share_snapshot: this session is not in a transaction %(use db%.reader%(%)",
       "share_snapshot from a session outside a transaction: refused, saying why")
T.is(other:in_transaction(), false, "and the other session is not left in a transaction")
observer:exec("BEGIN")
ok, err = pcall(observer.share_snapshot, observer, other)
T.like(err, "share_snapshot: this session's transaction is READ COMMITTED, which moves on at each statement",
       "share_snapshot from a READ COMMITTED transaction: refused")
T.is(other:in_transaction(), false, "... the other session still idle")
observer:exec("COMMIT")
observer:exec("BEGIN ISOLATION LEVEL REPEATABLE READ")
pcall(observer.exec, observer, "SELECT 1/0")       -- the transaction is now failed
ok, err = pcall(observer.share_snapshot, observer, other)
T.like(err, "current transaction is aborted", "share_snapshot from a failed transaction: the server's error")
T.is(other:in_transaction(), false, "... the other session still idle")
observer:exec("ROLLBACK")
observer:exec("BEGIN ISOLATION LEVEL SERIALIZABLE")
observer:share_snapshot(other)
T.is(seen(other), seen(observer), "from a SERIALIZABLE transaction: shared")
other:exec("COMMIT")
observer:exec("COMMIT")
other:close()

observer:close()
db.exec("DROP TABLE " .. tbl)

-- fn returning while a rows() of it is still open (a first row taken):
-- the iteration is ended and the transaction commits -- it used to fail
-- at COMMIT ("connection busy") and leave the session inside the BEGIN,
-- where later statements joined it and were lost with it.
db.exec("CREATE TEMP TABLE tx_keep (v int)")
local first = db.transaction(function()
  db.exec("INSERT INTO tx_keep VALUES (1)")
  return db.rows("SELECT g FROM generate_series(1, 100) g")().g
end)
T.is(first, 1, "fn returning with a rows() open: its result")
T.is(db.in_transaction(), false, "...and the transaction ended")
db.exec("INSERT INTO tx_keep VALUES (2)")
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {{v = 1}, {v = 2}}, "...committed, and later statements stand alone")
-- the same with a COPY left open: that one is not finished for fn (its
-- rows were never handed over): refused, rolled back
db.exec("DELETE FROM tx_keep")
ok, err = pcall(db.transaction, function()
  db.exec("INSERT INTO tx_keep VALUES (3)")
  local w = db.copy("COPY tx_keep (v) FROM STDIN")
  w:put(4)
end)
T.like(tostring(err), "a COPY", "fn returning with a COPY open: raises")
T.is(db.in_transaction(), false, "...the transaction ended")
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {}, "...rolled back")
-- a writer closed (<close>) or collected before finish() aborts its COPY,
-- which fails the transaction: said as that, not as an error fn caught
-- (found writing a Batch 6: a <close> writer without w:finish() read "a
-- statement in it failed and its error was caught"; the case above read
-- so too whenever the collector took its writer before the check)
local function err_text(e) return (tostring(e):gsub("^[^:]*:%d+: ", "")) end
local UNFINISHED = "transaction rolled back: fn left a COPY unfinished: its writer was closed or collected before " ..
                   "w:finish(), which aborted the COPY (finish() it before fn returns, or abort() it)"
ok, err = pcall(db.transaction, function()
  db.exec("INSERT INTO tx_keep VALUES (3)")
  local w <close> = db.copy("COPY tx_keep (v) FROM STDIN")
  w:put(4)
end)
T.is(err_text(err), UNFINISHED, "fn whose <close> writer was never finished: says so")
T.is(db.in_transaction(), false, "...the transaction ended")
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {}, "...rolled back")
ok, err = pcall(db.transaction, function()
  db.exec("INSERT INTO tx_keep VALUES (3)")
  local w = db.copy("COPY tx_keep (v) FROM STDIN")
  w:put(4)
  w = nil -- luacheck: ignore
  collectgarbage()
end)
T.is(err_text(err), UNFINISHED, "fn whose writer the collector took before finish(): the same")
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {}, "...rolled back")
ok, err = pcall(db.transaction, function()
  local w <close> = db.copy("COPY tx_keep (v) FROM STDIN")
  w:put(4)
  w:abort()
  pcall(db.exec, "SELECT 1")
end)
T.is(err_text(err), "transaction rolled back: a statement in it failed and its error was caught "
                    .. "(to go on after an error, catch it with a nested transaction)",
     "fn that aborted its COPY itself: the transaction failed, said as before")
db.transaction(function()
  local w <close> = db.copy("COPY tx_keep (v) FROM STDIN")
  w:put(7)
  w:finish()
end)
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {{v = 7}}, "a <close> writer finished: committed, no complaint")
db.exec("DELETE FROM tx_keep")
-- the same inside a nested transaction (a savepoint)
db.transaction(function()
  T.is(db.transaction(function() return db.rows("SELECT 7 AS x UNION ALL SELECT 8")().x end), 7,
       "nested: fn returning with a rows() open: its result")
  ok, err = pcall(db.transaction, function()
    db.exec("INSERT INTO tx_keep VALUES (5)")
    db.copy("COPY tx_keep (v) FROM STDIN"):put(6)
  end)
  T.like(tostring(err), "a COPY still open", "nested: fn returning with a COPY open: raises")
  db.exec("INSERT INTO tx_keep VALUES (7)")
end)
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {{v = 7}}, "...its savepoint rolled back, the outer transaction committed")
db.exec("DELETE FROM tx_keep")
-- fn that let a writer go before finish() and then opened a nested
-- transaction (refused: the COPY's abort failed the outer one): the nested
-- call's start forgot the abandoned COPY, and the outer level read "a
-- statement in it failed and its error was caught" (a reviewer's finding)
ok, err = pcall(db.transaction, function()
  db.exec("INSERT INTO tx_keep VALUES (1)")
  do
    local w <close> = db.copy("COPY tx_keep (v) FROM STDIN")
    w:put(2)
  end
  local nested_ok, nested_err = pcall(db.transaction, function() end)
  T.like(tostring(nested_ok) .. " " .. tostring(nested_err), "^false .*current transaction is aborted",
         "nested transaction after an abandoned COPY: refused by the server")
end)
T.is(err_text(err), UNFINISHED, "...and the outer level still says the COPY was left unfinished")
T.is({db.in_transaction()}, {false, false}, "...the transaction ended")
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {}, "...rolled back")
-- a COPY a nested fn abandoned before it raised went with its savepoint: a
-- caught error at the outer level later is said as that
ok, err = pcall(db.transaction, function()
  db.exec("INSERT INTO tx_keep VALUES (1)")
  local nested_ok = pcall(db.transaction, function()
    local w <close> = db.copy("COPY tx_keep (v) FROM STDIN")
    w:put(2)
    error("nested fails")
  end)
  T.is(nested_ok, false, "a nested fn that abandoned its COPY and raised: raises")
  T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {{v = 1}}, "...its savepoint rolled back, the outer one goes on")
  pcall(db.exec, "SELECT 1/0")
end)
T.is(err_text(err), "transaction rolled back: a statement in it failed and its error was caught "
                    .. "(to go on after an error, catch it with a nested transaction)",
     "...then a caught error at the outer level: said as that, not as the nested level's COPY")
T.is(db.query("SELECT v FROM tx_keep ORDER BY v"), {}, "...rolled back")
db.exec("DROP TABLE tx_keep")

-- a db.transaction inside a transaction the script began itself (BEGIN)
-- is a savepoint: its COMMIT used to end the script's transaction, so a
-- ROLLBACK the script then sent undid nothing (a WARNING only)
db.exec("CREATE TEMP TABLE tx_own (v int)")
db.exec("BEGIN")
db.exec("INSERT INTO tx_own VALUES (1)")
db.transaction(function() db.exec("INSERT INTO tx_own VALUES (2)") end)
T.is({db.in_transaction()}, {true, false}, "inside the script's own BEGIN: the script's transaction is still open")
ok, err = pcall(db.transaction, function() db.exec("INSERT INTO tx_own VALUES (3)"); error("inner") end)
T.like(tostring(err), "inner$", "...a failing one re-raises")
T.is({db.in_transaction()}, {true, false}, "...and rolls back to its savepoint only")
T.is(db.query("SELECT v FROM tx_own ORDER BY v"), {{v = 1}, {v = 2}}, "...the script's rows and the committed inner ones")
db.exec("ROLLBACK")
T.is(db.query("SELECT v FROM tx_own ORDER BY v"), {}, "...the script's ROLLBACK undoes them all")
local c = db.connect()
c:exec("BEGIN")
c:transaction(function() c:exec("SELECT 1") end)
T.is(c:in_transaction(), true, "conn: the same on another session")
c:exec("ROLLBACK")
c:close()
db.exec("DROP TABLE tx_own")

-- fn that ends the transaction itself (a COMMIT or ROLLBACK in it): what
-- db.transaction promised (all of fn, or none) no longer holds; said, at
-- the line that called it, instead of two server warnings and success
db.exec("CREATE TABLE tx_end (v int)")
local at = debug.getinfo(1, "l").currentline + 1
ok, err = pcall(function() db.transaction(function() db.exec("INSERT INTO tx_end VALUES (1)"); db.exec("COMMIT") end) end)
T.is(ok, false, "fn COMMITs itself: db.transaction raises")
T.like(tostring(err), "13%-db%-transaction%.t:" .. at .. ": transaction: fn ended the transaction itself %(a COMMIT or ROLLBACK in it%)",
       "...naming the line that called it")
T.is({db.in_transaction()}, {false, false}, "...and leaves no transaction open")
ok, err = pcall(db.transaction, function() db.exec("INSERT INTO tx_end VALUES (2)"); db.exec("ROLLBACK") end)
T.like(tostring(err), "fn ended the transaction itself", "fn ROLLBACKs itself: the same")
T.is(db.query("SELECT v FROM tx_end ORDER BY v"), {{v = 1}}, "...what fn committed stays, what it rolled back is gone")
db.exec("DROP TABLE tx_end")
-- ...and then raises: fn's own error goes on, nothing is rolled back twice
T.is(err_of(db.transaction, function() db.exec("ROLLBACK"); error("fn's own", 0) end), "fn's own",
     "fn ROLLBACKs, then raises: fn's error")
T.is(err_of(db.transaction, function()
       db.transaction(function() db.exec("ROLLBACK"); error("inner", 0) end)
     end), "inner", "a nested fn ROLLBACKs the whole transaction, then raises: its error (not ROLLBACK TO SAVEPOINT's)")
T.is({db.in_transaction()}, {false, false}, "...and no transaction is left open")

-- db.plan inside the script's own transaction: its SET LOCAL of
-- enable_seqscan (in a savepoint now) does not outlive the call
db.exec("BEGIN")
T.like(db.plan("SELECT 1"), "Result", "db.plan inside the script's BEGIN works")
T.is(db.one("SHOW enable_seqscan").enable_seqscan, "on", "...and leaves sequential scans on for the rest of the transaction")
db.exec("ROLLBACK")

-- A transaction suspended in a coroutine (fn yielded) that the script
-- drops, never resumed nor closed: no to-be-closed variable of it runs,
-- so its rollback never came, and its depth stayed recorded -- once that
-- transaction was gone (a ROLLBACK of the script's), every later
-- db.transaction on the session took a SAVEPOINT outside any transaction
-- and failed ("SAVEPOINT can only be used in transaction blocks").
db.exec("CREATE TEMP TABLE tx_co (v text)")
do
  local co = coroutine.create(function()
    db.transaction(function()
      db.exec("INSERT INTO tx_co VALUES ('dropped')")
      coroutine.yield()
    end)
  end)
  coroutine.resume(co)
end
collectgarbage(); collectgarbage()
T.is({db.in_transaction()}, {true, false}, "a transaction in a dropped coroutine stays open (no Lua hook ends it)")
db.exec("ROLLBACK")
T.is(err_of(db.transaction, function() db.exec("INSERT INTO tx_co VALUES ('next')") end), nil,
     "...once it is rolled back, the next db.transaction begins a transaction of its own")
T.is({db.in_transaction()}, {false, false}, "...which it commits")
T.is(db.query("SELECT v FROM tx_co"), {{v = "next"}}, "...with its row, and not the dropped one's")
local obj = {}
T.is(select(2, pcall(db.transaction, function() error(obj) end)) == obj, true,
     "...and a later fn's error object comes back as it is")

-- fn closed its connection and returned: said as that, at the line that
-- called transaction (not at a line of ferry's own db.lua)
do
  local c = db.connect()
  local ok, e = pcall(function() c:transaction(function() c:close() end) end)
  T.like(not ok and e or "", "^[^%[]*13%-db%-transaction%.t:%d+: transaction: fn closed the session itself "
         .. "%(conn:close%(%) inside its transaction%): what it wrote in the transaction was rolled back$",
         "fn closed its connection: said as that, at the calling line")
end
return T.done()
