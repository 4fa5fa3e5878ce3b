#!/bin/sh
--[[ 2>/dev/null; exec timeout 300 "${FERRY:-ferry}" exec "$0" "$@"; ]]
-- (under timeout: a regression here is a hang, which would stall prove)
-- Regressions found by review: stray COPYs never hang a connection, a
-- pipeline closed without finish() commits, errors of a db.connect(url)
-- session are redacted against that url.
local T = require("ferry.testing").tap()

db.exec("DROP TABLE IF EXISTS rf_t")
db.exec("CREATE TABLE rf_t (a int)")

T.raises(function() db.exec("COPY rf_t FROM STDIN") end, "conn:copy", "exec of COPY FROM STDIN: a clear error")
T.is(db.one("SELECT 1 AS x").x, 1, "...and the connection works after it")
T.raises(function() db.exec("COPY rf_t TO STDOUT") end, "conn:copy", "exec of COPY TO STDOUT: a clear error")
T.is(db.one("SELECT 2 AS x").x, 2, "...and the connection works after it")
T.raises(function() db.exec_script("SELECT 1; COPY rf_t FROM stdin; SELECT 2;") end, "not supported",
         "a script with COPY FROM stdin fails instead of hanging")
T.is(db.one("SELECT 3 AS x").x, 3, "...and the connection works after it")
T.raises(function() for _ in db.rows("COPY rf_t TO STDOUT") do end end, "conn:copy", "rows() of a COPY: a clear error")
T.is(db.one("SELECT 4 AS x").x, 4, "...and the connection works after it")

-- conn:copy of a COPY TO STDOUT followed by a COPY FROM STDIN used to spin
-- for ever on the second one
T.raises(function() db.copy("COPY rf_t TO STDOUT; COPY rf_t FROM STDIN") end, "not a COPY ... FROM STDIN statement %(nothing was sent%)",
         "copy() of COPY TO then COPY FROM: a clear error, no hang")
T.is(db.one("SELECT 5 AS x").x, 5, "...and the connection works after it")

-- a second COPY FROM STDIN after the first, in one copy() string, used to
-- make finish() loop for ever on it
do
  T.raises(function() db.copy("COPY rf_t FROM STDIN; COPY rf_t FROM STDIN") end, "not a COPY ... FROM STDIN statement",
           "copy() of two COPY FROM STDIN: refused at once (one statement), no hang")
  T.is(db.one("SELECT 6 AS x").x, 6, "...and the connection works after it")
end

-- an empty statement: no rows, as exec() has no error for it
local n = 0
for _ in db.rows("") do n = n + 1 end
T.is(n, 0, "rows('') yields nothing and raises nothing")
T.is(db.exec(""), 0, "exec('') affects nothing")

-- a NUL byte cannot be in a text value: a COPY row holding one is refused
-- at put(), naming the column, and leaves nothing behind (it used to fail
-- the whole batch on the server)
do
  local buf = db.buffer()
  buf:put(1)
  T.raises(function() buf:put(2, "a\0b") end, "COPY column 2: a string with a NUL byte is not a SQL text value",
           "buffer: a NUL byte in a value is refused at put()")
  buf:put(3)
  T.is(buf:count(), 2, "...the refused row is not counted")
  local w <close> = db.copy("COPY rf_t (a) FROM STDIN")
  w:put_buffer(buf)
  T.is(w:finish(), 2, "...and left nothing behind: the batch stores the other rows")
end
db.exec("DELETE FROM rf_t")

do
  local buf = db.buffer()
  buf:put(7)
  local pipe <close> = db.pipeline{jobs = 2}
  pipe:send{copies = {{sql = "COPY rf_t (a) FROM STDIN", buffer = buf}}}
end
T.is(db.one("SELECT count(*) AS n FROM rf_t WHERE a = 7").n, 1, "a pipeline closed without finish() commits its batch")

-- a connection closed under a rows() iteration or a COPY: their next use
-- says so (it used to be libpq's "connection pointer is NULL")
do
  local c = db.connect()
  local next_row = c:rows("SELECT g FROM generate_series(1, 3) g")
  c:close()
  T.raises(function() next_row() end, "connection is closed", "rows() after its connection closed: a clear error")
  local c2 = db.connect()
  local w = c2:copy("COPY rf_t (a) FROM STDIN")
  c2:close()
  T.raises(function() w:put(1) end, "connection is closed", "COPY put after its connection closed: a clear error")
  T.raises(function() w:finish() end, "COPY is finished or aborted", "...after which the writer is done")
  T.ok(pcall(w.abort, w), "...and abort() is harmless")
  local c3 = db.connect()
  local w3 = c3:copy("COPY rf_t (a) FROM STDIN")
  w3:put(1)
  c3:close()
  T.raises(function() w3:finish() end, "connection is closed", "COPY finish after its connection closed: a clear error")
end

local ok, err = pcall(db.connect, "postgresql://nobody:Pa55-w0rd-x@127.0.0.1:1/none")
T.ok(not ok and not tostring(err):find("Pa55-w0rd-x", 1, true), "a failed db.connect(url) never shows its password")
db.exec("DROP TABLE rf_t")

-- Errors of caught calls name the script's line or nothing, never ferry's
-- own file (db.plan is what validate checks use), and a wrong argument
-- says what it should be.
local function caught(f) local _, e = pcall(f); return tostring(e) end
local e = caught(function() local p = db.plan("SELEC 1"); return p end)
T.like(e, "^[^%[]*15%-review%-fixes%.t:%d+: query failed: syntax error", "db.plan: an error names the calling line")
T.ok(not e:find("[ferry]", 1, true), "... not [ferry]/db.lua")
T.like(caught(function() db.transaction(nil) end), "15%-review%-fixes%.t:%d+: transaction: fn must be a function, not nil",
       "db.transaction(nil) says what fn must be, at the calling line")
T.is(db.transaction(setmetatable({}, {__call = function(_, x) return x + 1 end}), 4), 5,
     "db.transaction takes a callable table, as before")
T.like(caught(function() db.connect("dbname=x\0y") end), "^[^%[]*15%-review%-fixes%.t:%d+: conninfo contains a NUL byte$",
       "db.connect: a bad conninfo names the calling line")
T.like(caught(function() db.connect("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2") end), "^cannot connect to the database: ",
       "db.connect: a connection that fails says so without a position")
local other = db.connect()
T.like(caught(function() db.reader():share_snapshot(nil) end),
       "15%-review%-fixes%.t:%d+: share_snapshot: the other session must be a connection %(db%.connect%(%)%), not nil",
       "share_snapshot(nil) says what it needs")
other:close()
return T.done()
