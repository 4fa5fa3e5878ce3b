#!/usr/bin/env bash
# What a migration's up.lua returns is not used: a run fails only when the
# script raises.  Found by an author's test: `return false` (or `return 1`,
# as under ferry exec, where it is the exit code) was silently taken for
# success.  ferry now notes it, and the run is still recorded applied.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_script_return)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_false/up.lua" 'stats.inc("n")
return false'
put "$D/migrations/20250102_code/up.lua" 'return 1, "two"'
put "$D/migrations/20250103_nil/up.lua" 'stats.inc("n")
return nil'
put "$D/migrations/20250104_plain/up.lua" 'stats.inc("n")'

run_ferry --dir "$D" up --to 20250101 --dry-run
is "$RC|$ERR" "0|note: migrations/20250101_false/up.lua returned false: ferry does not use what a script returns (to fail the run, raise an error: error(\"...\"))" \
   "a dry run: up.lua that returns false is noted"
run_ferry --dir "$D" up
is "$RC" 0 "up: exit 0"
is "$ERR" "note: migrations/20250101_false/up.lua returned false: ferry does not use what a script returns (to fail the run, raise an error: error(\"...\"))
note: migrations/20250102_code/up.lua returned 1: ferry does not use what a script returns (to fail the run, raise an error: error(\"...\"))" \
   "...each script that returns a value is noted (the first value named), one that returns nil or nothing is not"
is "$(history "$db")" "20250101_false|up|applied
20250102_code|up|applied
20250103_nil|up|applied
20250104_plain|up|applied" "...and every one is recorded applied"
run_ferry --dir "$D" --json run 20250101 
is "$RC|$ERR" "0|note: migrations/20250101_false/up.lua returned false: ferry does not use what a script returns (to fail the run, raise an error: error(\"...\"))" \
   "--json: the note on stderr"
is "$(json_eval "$OUT" 'j["ok"]')" "true" "...stdout's object unchanged"
# what is shown of the value: a string on one line and cut, a table whose
# __tostring raises by its type (the run stays a success)
D2=$TAP_TMPDIR/proj2
put "$D2/migrations/20250201_long/up.lua" 'return "line one\nline two " .. string.rep("x", 500)'
put "$D2/migrations/20250202_table/up.lua" 'return setmetatable({}, {__tostring = function() error("no text") end})'
run_ferry --dir "$D2" up
is "$RC" 0 "up: exit 0"
is "$ERR" 'note: migrations/20250201_long/up.lua returned "line one\nline two xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...": ferry does not use what a script returns (to fail the run, raise an error: error("..."))
note: migrations/20250202_table/up.lua returned a table: ferry does not use what a script returns (to fail the run, raise an error: error("..."))' \
   "...a long string on one line, cut; a table whose __tostring raises, by its type"
done_testing
