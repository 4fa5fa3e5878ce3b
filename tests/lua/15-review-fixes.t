#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
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

do
  local buf = db.buffer()
  buf:put(7)
  local pipe <close> = db.pipeline{jobs = 2}
  pipe:send{copies = {{sql = "COPY rf_t (a) FROM STDIN", buffer = buf}}}
end
T.is(db.one("SELECT count(*) AS n FROM rf_t WHERE a = 7").n, 1, "a pipeline closed without finish() commits its batch")

local ok, err = pcall(db.connect, "postgresql://nobody:Pa55-w0rd-x@127.0.0.1:1/none")
T.ok(not ok and not tostring(err):find("Pa55-w0rd-x", 1, true), "a failed db.connect(url) never shows its password")
db.exec("DROP TABLE rf_t")
return T.done()
