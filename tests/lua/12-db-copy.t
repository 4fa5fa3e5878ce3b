#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- db.copy (put/finish/abort/count), db.copy_rows, db.buffer: COPY text
-- escaping, NULLs, errors, the re-entrancy guard, cleanup on Lua errors.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end

local function usable(name)
  T.is(db.one("SELECT 41 + 1 AS x"), {x = 42}, name)
end

local function count(tbl)
  return db.one("SELECT count(*) AS n FROM " .. tbl).n
end

db.exec("CREATE TEMP TABLE c (id int, t text, b bool, f float8, j jsonb)")

---------------------------------------------------------------- put / finish / count
local w = db.copy("COPY c (id, t, b, f, j) FROM STDIN")
T.is(tostring(w):match("^ferry%.copy"), "ferry.copy", "copy returns a writer")
T.is(w:count(), 0, "count starts at 0")
T.is(select("#", w:put(1, "one", true, 1.5, '{"a": 1}')), 0, "put returns nothing")
w:put(2, "two", false, 2, "[1, 2]")
w:put(3, nil, nil, nil, nil)
w:put(4, db.NULL, db.NULL, db.NULL, db.NULL)
w:put(5, "", false, 0, "null")
T.is(w:count(), 5, "count counts the rows put")
T.is(w:finish(), 5, "finish returns the number of rows the server stored")
T.is(w:count(), 5, "count still answers after finish")
local rows = db.query("SELECT id, t, b, f, j::text AS j FROM c ORDER BY id")
T.is(rows, {
  {id = 1, t = "one", b = true, f = 1.5, j = '{"a": 1}'},
  {id = 2, t = "two", b = false, f = 2.0, j = "[1, 2]"},
  {id = 3},
  {id = 4},
  {id = 5, t = "", b = false, f = 0.0, j = "null"},
}, "values, booleans, numbers, nil and db.NULL (SQL NULL), empty string (not NULL)")
T.like(err_of(w.put, w, 6), "COPY is finished or aborted", "put after finish raises")
T.like(err_of(w.finish, w), "COPY is finished or aborted", "finish twice raises")
w:abort()
T.ok(true, "abort after finish is a no-op")
usable("usable after a COPY")

---------------------------------------------------------------- escaping
db.exec("CREATE TEMP TABLE e (k int, v text)")
local values = {
  "tab\there", "new\nline", "cr\rlf\r\n", "back\\slash", "\\N", "\\.", "\\", "ends with backslash\\",
  "ünïcödé", "日本語", "emoji 😀👍🏽", "e\u{0301} combining", "\1\2\31 control", "form\ffeed\vvtab",
  "quote ' and \" double", "{brace,comma}", "  spaces  ", string.rep("long ", 20000), "",
  "mixed\t\n\\\r\\t literal",
}
w = db.copy("COPY e (k, v) FROM STDIN")
for i, v in ipairs(values) do w:put(i, v) end
T.is(w:finish(), #values, "every tricky value stored")
local back = {}
for row in db.rows("SELECT k, v FROM e ORDER BY k") do back[row.k] = row.v end
for i, v in ipairs(values) do
  T.is(back[i], v, string.format("round-trips exactly: %q", v:sub(1, 30)))
end
T.is(db.one("SELECT count(*) AS n FROM e WHERE v IS NULL").n, 0, "'\\N' as data is not NULL")

---------------------------------------------------------------- numbers
db.exec("CREATE TEMP TABLE nums (i int8, f float8, n numeric)")
w = db.copy("COPY nums (i, f, n) FROM STDIN")
w:put(math.maxinteger, 0.1 + 0.2, 1 / 3)
w:put(-7, 1e300, 3.0)
w:finish()
rows = db.query("SELECT i::text AS i, f = 0.1::float8 + 0.2::float8 AS exact, f::text AS f, n::text AS n FROM nums ORDER BY i DESC")
T.is(rows[1].i, "9223372036854775807", "integers are written exactly")
T.is(rows[1].exact, true, "floats keep all 17 digits (0.1 + 0.2)")
T.is(rows[1].n, "0.33333333333333331", "1/3 into numeric: 17 significant digits")
T.is(rows[2].n, "3", "a float with an integral value is written without '.0'")
T.is(rows[2].f, "1e+300", "large floats")
db.exec("CREATE TEMP TABLE ints (i int)")
w = db.copy("COPY ints (i) FROM STDIN")
w:put(3.0)
T.is(w:finish(), 1, "a float with an integral value goes into an int column")

---------------------------------------------------------------- errors
T.like(err_of(db.copy, "SELECT 1"),
       "^COPY failed to start: not a COPY %.%.%. FROM STDIN statement %(nothing was sent%)$",
       "copy of a non-COPY statement raises")
usable("usable after that")
T.like(err_of(db.copy, "COPY (SELECT 1) TO STDOUT"), "not a COPY %.%.%. FROM STDIN statement", "COPY TO STDOUT raises")
usable("usable after COPY TO STDOUT (its output was consumed)")
T.like(err_of(db.copy, "COPY no_such_table FROM STDIN"),
       "^COPY failed to start: relation \"no_such_table\" does not exist %[SQLSTATE 42P01%]$",
       "COPY into a missing table: the server's error with SQLSTATE")
usable("usable after that")

w = db.copy("COPY c (id, t) FROM STDIN")
w:put("not a number", "x")
T.is(err_of(w.finish, w), 'COPY failed: invalid input syntax for type integer: "not a number" '
     .. '(COPY c, line 1, column id: "not a number") [SQLSTATE 22P02]',
     "bad data: finish raises the server's error, the row it is on (its line in the batch) and the SQLSTATE")
T.is(count("c"), 5, "nothing of the failed COPY is stored")
usable("usable after a failed finish")

w = db.copy("COPY c (id, t) FROM STDIN")
w:put(1, "a", "extra")
T.is(err_of(w.finish, w), 'COPY failed: extra data after last expected column (COPY c, line 1: "1\ta\textra") [SQLSTATE 22P04]',
     "too many columns: server error, with the line")
usable("usable after that")

-- One statement only, and nothing after it: a COPY is sent as a simple
-- query (with the extended protocol a COPY the server fails at its start,
-- a view or a statement trigger, left one more ReadyForQuery behind: the
-- next query failed with an empty message, and every one after it got the
-- result of the one before); the rest is checked before anything is sent.
T.like(err_of(db.copy, "COPY c (id, t) FROM STDIN; COPY c (id, t) FROM STDIN"),
       "^COPY failed to start: not a COPY .* %(nothing was sent%)$", "two statements in one copy(): refused at once")
usable("usable after that")
T.like(err_of(db.copy, "COPY c (id) FROM STDIN; DELETE FROM c"), "^COPY failed to start: not a COPY .* %(nothing was sent%)$",
       "a DELETE after the COPY: refused before it is sent")
T.like(err_of(db.copy, "COPY c (id) FROM STDIN WITH (DELIMITER ';'); DELETE FROM c"),
       "^COPY failed to start: not a COPY .* %(nothing was sent%)$", "a DELETE after a COPY with a ';' option: refused")
db.exec("CREATE TEMP VIEW c_view AS SELECT id FROM c")
db.exec([[CREATE TEMP TABLE c_trig (id int)]])
db.exec([[CREATE FUNCTION pg_temp.no_load() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'no loading today'; END $$]])
db.exec([[CREATE TRIGGER no_load BEFORE INSERT ON c_trig FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.no_load()]])
for _, case in ipairs{{"COPY c_view (id) FROM STDIN", "cannot copy to view"},
                      {"COPY c_trig (id) FROM STDIN", "no loading today"}} do
  local ok, e = pcall(function() local w <close> = db.copy(case[1]); w:put(1); return w:finish() end)
  T.like(not ok and tostring(e) or "", case[2], "a COPY the server fails at its start: " .. case[2])
  for i = 1, 3 do T.is(db.one("SELECT $1::int AS x", i), {x = i}, "...then query " .. i .. " gets its own result") end
  local w = db.copy(case[1]); w:put(1)
  T.like(err_of(w.abort, w) or "aborted", "aborted", "...the same COPY aborted")
  for i = 4, 5 do T.is(db.one("SELECT $1::int AS x", i), {x = i}, "...then query " .. i .. " gets its own result") end
end
T.like(err_of(db.copy, "  /* load */ DELETE FROM c"), "^COPY failed to start: not a COPY .* %(nothing was sent%)$",
       "a DELETE given to copy(): refused before it is sent")
T.is(count("c"), 5, "nothing was deleted")
T.like(err_of(db.copy, "COPY c (id) FROM PROGRAM 'seq 1 5'"), "^COPY failed to start: not a COPY .* %(nothing was sent%)$",
       "a COPY FROM PROGRAM (or a file) given to copy(): refused before it is sent")
T.is(count("c"), 5, "nothing was stored")

-- A constraint's error keeps the server's detail and SQLSTATE.
db.exec("CREATE TEMP TABLE u (id int PRIMARY KEY)")
w = db.copy("COPY u (id) FROM STDIN")
w:put(1); w:put(1)
T.is(err_of(w.finish, w), 'COPY failed: duplicate key value violates unique constraint "u_pkey" '
     .. "(Key (id)=(1) already exists.) (COPY u, line 2) [SQLSTATE 23505]",
     "finish: the server's message, detail, line and SQLSTATE")
usable("usable after a constraint error")
-- a message too long for ferry's buffer is cut before its SQLSTATE, which
-- always stays (the engine's advice for 23505/23503 reads it)
db.exec("CREATE TEMP TABLE cu (k text PRIMARY KEY)")
w = db.copy("COPY cu (k) FROM STDIN")
w:put(string.rep("k", 1940)); w:put(string.rep("k", 1940))
local long = err_of(w.finish, w)
T.like(long, "^COPY failed: duplicate key value violates unique constraint \"cu_pkey\" %(Key %(k%)=%(k+.*%.%.%. %[SQLSTATE 23505%]$",
       "a long COPY error is cut before its SQLSTATE, which stays")
usable("usable after that")

w = db.copy("COPY c (id, t) FROM STDIN")
T.like(err_of(w.put, w, 10, {}), "^COPY column 2: a table is not a SQL value$", "put of a table raises, naming the column")
T.like(err_of(w.put, w, print), "^COPY column 1: a function is not a SQL value$", "put of a function raises")
T.like(err_of(w.put, w), "COPY: a row needs at least one value", "put without values raises")
w:put(11, "after the errors")
T.is(w:finish(), 1, "a rejected put leaves nothing behind: the next row is stored alone")
T.is(db.one("SELECT t FROM c WHERE id = 11").t, "after the errors", "the good row is intact")
db.exec("DELETE FROM c WHERE id = 11")

---------------------------------------------------------------- abort
w = db.copy("COPY c (id, t) FROM STDIN")
w:put(20, "x")
T.is(select("#", w:abort()), 0, "abort returns nothing")
T.is(count("c"), 5, "abort stores nothing")
w:abort("custom reason")
T.ok(true, "abort twice is safe")
T.like(err_of(w.put, w, 1), "COPY is finished or aborted", "put after abort raises")
T.like(err_of(w.finish, w), "COPY is finished or aborted", "finish after abort raises")
usable("usable after abort")
w = db.copy("COPY c (id, t) FROM STDIN")
w:abort("my reason")
T.is(count("c"), 5, "abort with a reason")

---------------------------------------------------------------- the guard
w = db.copy("COPY c (id, t) FROM STDIN")
local BUSY = "connection busy: a COPY is in progress on it %(use another connection from db%.connect%(%)%)"
T.like(err_of(db.exec, "SELECT 1"), BUSY, "exec during a COPY raises 'connection busy'")
T.like(err_of(db.one, "SELECT 1"), BUSY, "one during a COPY raises")
T.like(err_of(db.copy, "COPY c FROM STDIN"), BUSY, "a second copy on the same connection raises")
T.like(err_of(function() for _ in db.rows("SELECT 1") do end end), BUSY, "rows during a COPY raises")
local other = db.connect()
T.is(other:one("SELECT 1 AS x").x, 1, "another connection works during the COPY")
w:put(30, "y")
T.is(w:finish(), 1, "the COPY finishes after the guard errors")
T.is(count("c"), 6, "its row is stored")
db.exec("DELETE FROM c WHERE id = 30")

---------------------------------------------------------------- large COPY
db.exec("CREATE TEMP TABLE big (i int, pad text)")
w = db.copy("COPY big (i, pad) FROM STDIN")
local pad = string.rep("p", 200)
for i = 1, 20000 do w:put(i, pad) end
T.is(w:finish(), 20000, "20000 rows (about 4 MB, several flushes)")
T.is(db.one("SELECT sum(i) AS s, min(length(pad)) AS l FROM big"), {s = 200010000, l = 200}, "all of them intact")

---------------------------------------------------------------- cleanup on Lua errors
local err = err_of(function()
  local cw <close> = db.copy("COPY c (id, t) FROM STDIN")
  cw:put(40, "z")
  error("mapping failed")
end)
T.like(err, "mapping failed$", "an error inside a COPY propagates")
T.is(count("c"), 5, "the to-be-closed writer aborted the COPY")
usable("the connection is usable after the error")

err = err_of(function()
  local cw = db.copy("COPY c (id, t) FROM STDIN")
  cw:put(41, "z")
  error("no close")
end)
collectgarbage("collect")
collectgarbage("collect")
usable("an abandoned writer is aborted when collected")
T.is(count("c"), 5, "and stored nothing")

---------------------------------------------------------------- a finalizer finishing the writer mid-call
-- A finalizer may run at the allocation inside w:finish() (its result's
-- box) or w:put() (a value's text) and finish the same writer: the outer
-- finish found the COPY over and returned 0, no error -- a COPY that had
-- failed read as one that stored nothing (the finalizer's pcall had its
-- error); the outer put wrote its row to a buffer nobody sends, no error.
-- (In generational mode the first allocation after collectgarbage
-- "restart" collects, and every pending finalizer runs there.)
do
  local fc = db.connect()
  fc:exec("CREATE TEMP TABLE fin (a int PRIMARY KEY)")
  fc:exec("CREATE TEMP TABLE fin_t (t text)")
  local inner
  local function finish_when_collected(w)
    setmetatable({}, {__gc = function() inner = {pcall(w.finish, w)} end})
  end
  collectgarbage("generational")
  local w = fc:copy("COPY fin (a) FROM STDIN")
  w:put(1); w:put(1)                               -- a duplicate key: the COPY fails
  w:end_data()
  finish_when_collected(w)
  collectgarbage("stop"); collectgarbage("restart")
  local outer = err_of(w.finish, w)
  T.is({outer, inner and inner[1]}, {"COPY is finished or aborted", false},
       "finish, while a finalizer finished the writer (its COPY failed): raises, not 0")
  w = fc:copy("COPY fin_t (t) FROM STDIN")
  w:put("x")
  finish_when_collected(w)
  collectgarbage("stop"); collectgarbage("restart")
  outer = err_of(w.put, w, 0.123456789)            -- (the float's text is an allocation)
  T.is({outer, inner and inner[1], inner and inner[2]}, {"COPY is finished or aborted", true, 1},
       "put, while a finalizer finished the writer: raises, the row not taken for sent")
  collectgarbage("incremental")
  T.is(fc:query("SELECT t FROM fin_t"), {{t = "x"}}, "(what the finalizer's finish stored)")
  -- ...and one that starts a COPY on the connection, or closes it, while
  -- copy() or exec() makes what it needs: they sent on regardless, libpq
  -- refused ("another command is already in progress", "connection
  -- pointer is NULL"), and copy()'s cleanup ended the other COPY
  local other
  collectgarbage("generational")
  setmetatable({}, {__gc = function() other = fc:copy("COPY fin_t (t) FROM STDIN") end})
  collectgarbage("stop"); collectgarbage("restart")
  T.is(err_of(fc.copy, fc, "COPY fin_t (t) FROM STDIN"),
       "connection busy: a COPY is in progress on it (use another connection from db.connect())",
       "copy() while a finalizer started a COPY on its connection: busy, said as such")
  other:put("y")
  T.is(other:finish(), 1, "...and the finalizer's COPY goes on unharmed")
  setmetatable({}, {__gc = function() fc:close() end})
  collectgarbage("stop"); collectgarbage("restart")
  T.is(err_of(fc.exec, fc, "SELECT 1"), "attempt to use a closed connection",
       "exec() while a finalizer closed its connection: said as such")
  -- rows(), exec_script() and quote_ident() check again too
  local rc = db.connect()
  rc:exec("CREATE TEMP TABLE fin_r (t text)")
  setmetatable({}, {__gc = function() other = rc:copy("COPY fin_r (t) FROM STDIN") end})
  collectgarbage("stop"); collectgarbage("restart")
  T.is(err_of(rc.rows, rc, "SELECT $1::int AS a", 1),
       "connection busy: a COPY is in progress on it (use another connection from db.connect())",
       "rows() while a finalizer started a COPY on its connection: busy, said as such")
  other:put("z")
  T.is(other:finish(), 1, "...and the finalizer's COPY goes on unharmed")
  for _, call in ipairs({{"rows", "SELECT 1"}, {"exec_script", "SELECT 1; SELECT 2"}, {"quote_ident", "x"}}) do
    local cc = db.connect()
    setmetatable({}, {__gc = function() cc:close() end})
    collectgarbage("stop"); collectgarbage("restart")
    T.is(err_of(cc[call[1]], cc, call[2]), "attempt to use a closed connection",
         call[1] .. "() while a finalizer closed its connection: said as such")
  end
  -- ...and put(), whose value's text runs a finalizer that closes the
  -- writer's connection: the row was taken and counted as put, no error
  -- (one row too many in count(); past COPY_FLUSH_AT, "connection pointer
  -- is NULL", libpq's words for a closed one)
  local pc = db.connect()
  pc:exec("CREATE TEMP TABLE fin_p (f float8)")
  local pw = pc:copy("COPY fin_p (f) FROM STDIN")
  pw:put(1)
  setmetatable({}, {__gc = function() pc:close() end})
  collectgarbage("stop"); collectgarbage("restart")
  local put_err = err_of(pw.put, pw, 0.123456789)     -- (not in a table constructor: that allocates first)
  T.is({put_err, pw:count()}, {"COPY's connection is closed", 1},
       "put, while a finalizer closed its connection: raises, the row not counted")
  rc:close()
  collectgarbage("incremental")
end

---------------------------------------------------------------- copy_rows
T.is(db.copy_rows("COPY c (id, t) FROM STDIN", {{50, "a"}, {51, "tab\there"}, {52, nil, n = 2}}), 3,
     "copy_rows returns the count stored")
T.is(db.query("SELECT id, t FROM c WHERE id >= 50 ORDER BY id"), {{id = 50, t = "a"}, {id = 51, t = "tab\there"}, {id = 52}},
     "copy_rows: values and NULLs (an 'n' field for trailing nils)")
T.is(db.copy_rows("COPY c (id, t) FROM STDIN", {}), 0, "copy_rows of no rows")
T.like(err_of(db.copy_rows, "COPY c (id, t) FROM STDIN", {{60, "ok"}, {61, {}}}), "COPY column 2: a table is not a SQL value",
       "copy_rows: a bad value raises")
T.is(count("c WHERE id >= 60"), 0, "and nothing of that COPY is stored")
usable("usable after copy_rows failed")
-- an n that is not a row's length: Lua's "too many results to unpack"
-- (n = 1e9), named nothing; refused before the COPY starts
T.like(err_of(db.copy_rows, "COPY c (id, t) FROM STDIN", {{60, "ok"}, {61, n = 1e9}}),
       "copy_rows: row 2 has n = [%d.e+]+: a row's n is its number of values, a whole number from 1 to 1600$",
       "copy_rows: an n of 1e9 raises, naming the row")
T.like(err_of(db.copy_rows, "COPY c (id, t) FROM STDIN", {{61, n = "2"}}),
       "copy_rows: row 1 has n = 2: a row's n is its number of values, a whole number from 1 to 1600$",
       "copy_rows: an n that is a string raises")
T.is(count("c WHERE id >= 60"), 0, "...nothing stored")
usable("usable after those")
T.like(err_of(db.copy_rows, "COPY c (id) FROM STDIN", {{"x"}}), "invalid input syntax for type integer", "copy_rows: server error")
usable("usable after that")
local c2 = db.connect()
c2:exec("CREATE TEMP TABLE c2 (a int)")
T.is(c2:copy_rows("COPY c2 (a) FROM STDIN", {{1}, {2}}), 2, "conn:copy_rows")
T.is(c2:copy("COPY c2 (a) FROM STDIN"):finish(), 0, "conn:copy with no rows stores 0")
c2:close()

---------------------------------------------------------------- db.buffer
local buf = db.buffer()
T.is({buf:count(), buf:bytes()}, {0, 0}, "buffer: empty")
buf:put(70, "a\tb")
buf:put(71, nil)
T.is(buf:count(), 2, "buffer: count")
T.is(buf:bytes(), #"70\ta\\tb\n71\t\\N\n", "buffer: bytes of COPY text")
T.like(err_of(buf.put, buf, 72, {}), "COPY column 2: a table is not a SQL value", "buffer: a bad value raises")
T.is(buf:count(), 2, "buffer: a rejected row is not counted")
w = db.copy("COPY c (id, t) FROM STDIN")
w:put(69, "direct")
w:put_buffer(buf)
T.is(w:count(), 3, "put_buffer adds the buffer's rows to count")
T.is(w:finish(), 3, "put_buffer: stored")
T.is(db.query("SELECT id, t FROM c WHERE id BETWEEN 69 AND 72 ORDER BY id"),
     {{id = 69, t = "direct"}, {id = 70, t = "a\tb"}, {id = 71}}, "buffer rows round-trip")
T.is(buf:count(), 2, "the buffer is unchanged by put_buffer")
buf:clear()
T.is({buf:count(), buf:bytes()}, {0, 0}, "clear empties it")
w = db.copy("COPY c (id, t) FROM STDIN")
w:put(80, "x")
w:end_data()
T.like(err_of(w.put, w, 81, "y"), "COPY data is already ended", "put after end_data raises")
T.is(w:finish(), 1, "end_data then finish")
T.is(db.flush(), true, "flush: nothing left to send")
usable("usable after end_data/finish")

-- A buffer's rows are C memory, which the collector cannot see: buffers a
-- script drops without clear() (a megabyte each, and a few bytes of Lua
-- memory) used to pile up uncollected, 400 of them at once (420 MB).  The
-- memory a buffer takes is now counted as if Lua had allocated it, so the
-- collector keeps pace.
do
  local chunk = string.rep("x", 64 * 1024)
  local live = setmetatable({}, {__mode = "k"})
  local most = 0
  for _ = 1, 400 do
    local b = db.buffer()
    live[b] = true
    for _ = 1, 16 do b:put(chunk) end
    local n = 0
    for _ in pairs(live) do n = n + 1 end
    most = math.max(most, n)
  end
  T.ok(most <= 40, "dropped buffers are collected as they go (at most " .. most .. " of 400 alive at once)")
  -- ...but not while the script has stopped the collector
  collectgarbage()
  collectgarbage("stop")
  local finalized = false
  setmetatable({}, {__gc = function() finalized = true end})
  local b = db.buffer()
  for _ = 1, 64 do b:put(chunk) end
  T.is({finalized, collectgarbage("isrunning")}, {false, false}, "a stopped collector stays stopped")
  collectgarbage("restart")
  collectgarbage()
  T.is(finalized, true, "...and collects once restarted")
end

-- While the client waits on one session, the COPY data another one still
-- holds (end_data returns before it is all sent) keeps going out: a
-- pipeline waiting on writer A must not starve writer B.  Each kind of
-- wait: a query, a rows() iteration, a COPY's finish.  A's statement waits
-- (at most 30 s) until B's COPY is over on the server, which it only is
-- once all B's data came: without the feeding it waits the 30 s for
-- nothing.
do
  local a, b = db.connect(), db.connect()
  b:exec("CREATE TEMP TABLE sink (x text)")
  -- B's server reads nothing for the first 0.3 s of each COPY, so that its
  -- data is surely still in the client's hands when end_data returns (on
  -- an idle machine a server reading as fast as the client sends would
  -- take all 16 MB at once, and the test would test nothing)
  b:exec([[CREATE FUNCTION pg_temp.late() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$]])
  b:exec("CREATE TRIGGER late BEFORE INSERT ON sink FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.late()")
  a:exec(string.format([[CREATE FUNCTION pg_temp.wait_copy() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
      FOR i IN 1 .. 600 LOOP
        PERFORM pg_stat_clear_snapshot();   -- (the activity view is read once per transaction)
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_progress_copy WHERE pid = %d);
        PERFORM pg_sleep(0.05);
      END LOOP;
    END $$]], b:backend_pid()))
  a:exec("CREATE TEMP TABLE slow (x int)")
  a:exec([[CREATE FUNCTION pg_temp.nap() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN PERFORM pg_temp.wait_copy(); RETURN NULL; END $$]])
  a:exec("CREATE TRIGGER nap AFTER INSERT ON slow FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.nap()")
  local big = db.buffer()
  local row = string.rep("x", 200)
  -- 16 MB: more than a socket takes at once, over TCP too (where the
  -- kernel's buffers grow to a few MB)
  for _ = 1, 80000 do big:put(row) end
  local waits = {
    {"a query", function() a:exec("SELECT pg_temp.wait_copy()") end},
    {"a rows() iteration", function() for _ in a:rows("SELECT pg_temp.wait_copy()") do end end},
    {"a COPY's finish", function()
      local wa = a:copy("COPY slow FROM STDIN"); wa:put(1); wa:end_data(); wa:finish() end},
  }
  for _, case in ipairs(waits) do
    local w = b:copy("COPY sink FROM STDIN")
    w:put_buffer(big)
    w:end_data()
    T.is(b:flush(), false, case[1] .. ": before, libpq holds most of B's COPY data")
    case[2]()
    T.is(b:flush(), true, case[1] .. ": B's data went out while the client waited on A")
    T.is(w:finish(), 80000, case[1] .. ": B's COPY stores every row")
  end
  T.is(b:one("SELECT count(*) AS n FROM sink").n, 3 * 80000, "every row arrived")
  a:close(); b:close()
end

-- options that change how the rows are read (ferry writes the text format
-- with its defaults) are refused before anything is sent: HEADER dropped
-- the first row, NULL '' stored "" as NULL and nil as the text N
db.exec("DROP TABLE IF EXISTS cp_opt")
db.exec("CREATE TABLE cp_opt (n int, t text)")
for _, case in ipairs{{"WITH (HEADER true)", "HEADER"}, {"(NULL '')", "NULL"}, {"WITH (FORMAT csv)", "FORMAT csv"},
                      {"(DELIMITER ',')", "DELIMITER"}, {"CSV", "CSV"},
                      {'WITH ("header" true)', "HEADER"}, {[[("null" '')]], "NULL"},
                      -- taken before: the old syntax's DELIMITERS read "a,b" as two columns; an
                      -- ENCODING other than UTF8 read ferry's UTF-8 as that one, é stored as Ã©
                      {"USING DELIMITERS ','", "DELIMITERS"}, {"(ENCODING 'LATIN1')", "ENCODING LATIN1"}} do
  local ok, err = pcall(db.copy, "COPY cp_opt FROM STDIN " .. case[1])
  T.is(ok, false, "COPY ... FROM STDIN " .. case[1] .. ": refused")
  T.like(tostring(err), "COPY failed to start: the option " .. case[2]:gsub("%p", "%%%0")
         .. " changes how the rows are read; ferry writes them in the text format with its defaults %(a tab "
         .. "between columns, \\N for NULL%): leave it out %(nothing was sent%)$", "...naming " .. case[2])
end
T.is(db.one("SELECT 1 AS x").x, 1, "...and the connection is usable")
do
  local w <close> = db.copy("COPY cp_opt (n, t) FROM STDIN WITH (FORMAT text, FREEZE false) WHERE t IS NOT NULL OR n > 1")
  w:put(1, "")
  w:put(2, nil)
  w:put(3, "x")
  T.is(w:finish(), 3, "FORMAT text, FREEZE and a WHERE condition (with NULL in it) are taken")
end
do
  local w <close> = db.copy("COPY cp_opt (n, t) FROM STDIN (ENCODING 'utf-8')")
  w:put(4, "é")
  T.is(w:finish(), 1, "ENCODING UTF8, by any of its names, is taken")
  T.is(db.one("SELECT t FROM cp_opt WHERE n = 4").t, "é", "...and the text reads as written")
  db.exec("DELETE FROM cp_opt WHERE n = 4")
end
T.is(db.query("SELECT n, t FROM cp_opt ORDER BY n"), {{n = 1, t = ""}, {n = 2}, {n = 3, t = "x"}}, "...and the rows read as written")
db.exec("DROP TABLE cp_opt")


-- Ctrl-C (any error) between conn:copy()/conn:rows() starting on the
-- server and the Lua side noting what holds the session -- the interrupt
-- hook fires at the first instruction after the C call returns -- left
-- the session busy with a holder no one knew of: db._end_busy() and
-- db.transaction could not end it, so an interrupted run's history row
-- could not be written ("connection busy: a COPY is in progress on it")
-- and stayed "running".  Simulated with a hook at that very instruction.
local function interrupted_after(method_name, ...)
  local wrapper = debug.getmetatable(db.main()).__index[method_name]
  local raw
  for i = 1, 10 do
    local name, v = debug.getupvalue(wrapper, i)
    if name == "raw_" .. method_name then raw = v end
  end
  debug.sethook(function()
    if debug.getinfo(2, "f").func == raw then
      debug.sethook(function() debug.sethook(); error("simulated interrupt", 0) end, "", 1)
    end
  end, "r")
  local ok, err = pcall(function(...) return db.main()[method_name](db.main(), ...) end, ...)
  debug.sethook()
  return ok, err
end
db.exec("DROP TABLE IF EXISTS cp_lost")
db.exec("CREATE TABLE cp_lost (n int)")
local ok, err = interrupted_after("copy", "COPY cp_lost (n) FROM STDIN")
T.is({ok, err}, {false, "simulated interrupt"}, "copy: the error comes after the COPY started")
T.is(db._busy_with(db.main()), "a COPY", "...with the COPY in progress, its writer never handed back")
T.is(db._end_busy(), "the main session", "db._end_busy() finds it")
T.is(db._busy_with(db.main()), nil, "...and aborts it: the session is free")
usable("...and usable")
T.is(db.transaction(function() db.exec("INSERT INTO cp_lost VALUES (1)") return 7 end), 7,
     "...a transaction on it commits")
ok, err = interrupted_after("rows", "SELECT g FROM generate_series(1, 100000) g")
T.is({ok, err}, {false, "simulated interrupt"}, "rows: the same, after the query was sent")
T.is(db._busy_with(db.main()), "a rows() iteration", "...the iteration never handed back")
T.is(db._end_busy(), nil, "db._end_busy() ends it (a rows() loop left open wrote nothing: not named)")
T.is(db._busy_with(db.main()), nil, "...the session is free")
usable("...and usable")
T.is(db.query("SELECT n FROM cp_lost"), {{n = 1}}, "only the committed row is there")
db.exec("DROP TABLE cp_lost")

return T.done()
