#!/usr/bin/env bash
# A script shares the standard library's tables (table, string, ...) with
# ferry's own Lua, and the rules share _G's functions: an up.lua that
# replaced table.concat, string.format, table.sort or pairs hijacked the
# engine's work after it -- the run's outcome was never recorded (its
# history row stayed "running") and the error was "error in error handling".
# What the script replaced is put back as it ends.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_stdlib_hijack)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
hijack='for _, lib in ipairs{table, string, math, utf8} do
  for k in next, lib do lib[k] = function() error("the script'"'"'s " .. k) end end
end
for _, k in ipairs{"pairs", "ipairs", "next", "tostring", "type", "select", "setmetatable"} do
  rawset(_G, k, function() error("the script'"'"'s " .. k) end)
end
getmetatable("").__index = {}
'
put "$D/migrations/20250101_ok/up.lua" "db.exec([[CREATE TABLE hijacked (a int)]])
$hijack"
put "$D/migrations/20250102_fails/up.lua" "$hijack
error(\"stopped\", 0)"
run_ferry --dir "$D" run 20250101
is "$RC|$ERR" "0|" "a script that replaced the standard library's functions: the run succeeds"
is "$(history "$db")" "20250101_ok|run|applied" \
   "...and its outcome is recorded"
run_ferry --dir "$D" run 20250102
is "$RC|$ERR" "1|ferry: 20250102_fails: stopped" "...one that also fails: its own error"
is "$(history "$db")" "20250101_ok|run|applied
20250102_fails|run|failed" "...and its failure is recorded"

done_testing
