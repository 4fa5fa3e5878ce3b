#!/usr/bin/env bash
# ferry check (no database) and ferry new (the scaffold checks, dry-runs,
# runs, validates and rolls back).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_checknew)
saved_url=$DATABASE_URL

# ferry check must not need a database: no DATABASE_URL, PGHOST nowhere.
check_nodb() {
    unset DATABASE_URL
    PGHOST=$TAP_TMPDIR/no-such-socket-dir PGPORT=1 run_ferry "$@"
    export DATABASE_URL=$saved_url
}

D=$TAP_TMPDIR/chk
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE a (x int);'
put "$D/migrations/20250102_b/up.lua" 'local calc = require "rules.calc"
stats.inc("n", calc.double(2))
'
put "$D/migrations/20250102_b/validate.lua" 'check("fine", true)'
put "$D/rules/calc.lua" 'local M = {}
function M.double(x) return 2 * x end
M.tests = {
  ["doubles"] = function() assert(M.double(2) == 4) end,
  ["zero"] = function() assert(M.double(0) == 0) end,
}
return M
'

check_nodb --dir "$D" check
is "$RC|$ERR" "0|" "check passes with no database reachable"
is "$OUT" "ok   migrations/20250102_b/up.lua
ok   migrations/20250102_b/validate.lua
ok   rules.calc  2 tests passed" "check lists each script and rule"

check_nodb --dir "$D" --db 'postgresql://nobody@127.0.0.1:1/nowhere' check
is "$RC" 0 "check ignores an unreachable --db"

check_nodb --dir "$D" -q check
is "$RC|$OUT|$ERR" "0||" "check --quiet prints nothing on success"

check_nodb --dir "$D" --json check
is "$RC|$ERR" "0|" "check --json: exit 0"
is "$(json_eval "$OUT" '[j["ok"], [c["name"] for c in j["checks"]], [c["ok"] for c in j["checks"]]]')" \
   '[true,["migrations/20250102_b/up.lua","migrations/20250102_b/validate.lua","rules.calc"],[true,true,true]]' \
   "check --json: one object with ok and checks"

# a failing rule test -> exit 1
put "$D/rules/calc.lua" 'local M = {}
function M.double(x) return 2 * x end
M.tests = {
  ["doubles"] = function() assert(M.double(2) == 4) end,
  ["broken"] = function() assert(M.double(2) == 5, "2*2 is not 5") end,
}
return M
'
check_nodb --dir "$D" check
is "$RC" 1 "a failing rule test: exit 1"
like "$OUT" $'\nFAIL rules.calc test "broken"  [^ ]*rules/calc\\.lua:5: 2\\*2 is not 5$' \
     "the failing test is named with file:line and message"
unlike "$OUT" 'ok   rules\.calc' "the rule is not reported ok"
check_nodb --dir "$D" --json check
is "$RC" 1 "check --json with a failing test: exit 1"
is "$(json_eval "$OUT" '[j["ok"], [c["name"] for c in j["checks"] if not c["ok"]]]')" \
   '[false,["rules.calc test \"broken\""]]' "check --json lists the failing test"

# a folder with both up.lua and up.sql (a scaffold's up.lua beside the
# up.sql meant to run): check fails, saying which one runs
mkdir -p "$D/migrations/20250109_both"
put "$D/migrations/20250109_both/up.lua" 'stats.inc("x")'
put "$D/migrations/20250109_both/up.sql" 'SELECT 1;'
check_nodb --dir "$D" check
is "$RC" 1 "up.lua and up.sql in one folder: check fails"
like "$OUT" $'\nFAIL migrations/20250109_both  has both up.lua and up.sql: only up.lua runs' "...saying which runs"
rm -rf "$D/migrations/20250109_both"

# a rule that raises when loaded -> exit 1
put "$D/rules/calc.lua" 'error("rule blows up at load")'
check_nodb --dir "$D" check
is "$RC" 1 "a rule that fails to load: exit 1"
like "$OUT" $'\nFAIL rules.calc  does not load: [^ ]*rules/calc\\.lua:1: rule blows up at load$' "...named as not loading"
# an error object that happens to have code = 2 is the rule's error, not ferry's
put "$D/rules/calc.lua" 'error({code = 2, message = "no config"})'
check_nodb --dir "$D" check
is "$RC" 1 "a rule raising {code = 2} at load: exit 1, the other rules checked"
like "$OUT" $'\nFAIL rules.calc  does not load: no config$' "...named as not loading, with its message"

# a syntax error in a rule -> a failing entry naming file:line; the other
# rules are still loaded and tested; exit 2 (a syntax error is a usage error)
put "$D/rules/calc.lua" 'local M = {}
function M.double(x)
  return 2 *
end
return M
'
put "$D/rules/more.lua" 'return {tests = {["one"] = function() end}}'
check_nodb --dir "$D" check
is "$RC|$ERR" "2|" "a syntax error in a rule: exit 2"
is "$OUT" "ok   migrations/20250102_b/up.lua
ok   migrations/20250102_b/validate.lua
FAIL rules.calc  does not compile: rules/calc.lua:4: unexpected symbol near 'end'
ok   rules.more  1 tests passed" "...an entry naming rules/calc.lua:4, and the rule after it still tested"
check_nodb --dir "$D" --json check
is "$RC|$ERR" "2|" "check --json, a syntax error in a rule: exit 2"
is "$(json_eval "$OUT" '[j["ok"], [[c["name"], c["ok"], c.get("detail")] for c in j["checks"]]]')" \
   '[false,[["migrations/20250102_b/up.lua",true,null],["migrations/20250102_b/validate.lua",true,null],["rules.calc",false,"does not compile: rules/calc.lua:4: unexpected symbol near '"'end'"'"],["rules.more",true,"1 tests passed"]]]' \
   "...{ok: false, checks: [...]}, one entry for each script and rule"
# a failing test beside the syntax error: still exit 2
put "$D/rules/more.lua" 'return {tests = {["one"] = function() error("no", 0) end}}'
check_nodb --dir "$D" check
is "$RC|$ERR" "2|" "a syntax error and a failing test: exit 2"
like "$OUT" $'\nFAIL rules\\.more test "one"  no$' "...the failing test reported too"
# a rule requiring the broken one does not load: exit 2 as well
put "$D/rules/more.lua" 'return require "rules.calc"'
check_nodb --dir "$D" check
is "$RC|$ERR" "2|" "a rule requiring a rule with a syntax error: exit 2"
like "$OUT" $'\nFAIL rules\\.more  does not load: [^ ]*rules/calc\\.lua:4: unexpected symbol near \'end\'$' \
     "...reported as not loading, naming the syntax error"
rm "$D/rules/more.lua"

# a syntax error in a migration script -> a failing entry, exit 2
put "$D/rules/calc.lua" 'return {double = function(x) return 2 * x end}'
put "$D/migrations/20250102_b/validate.lua" 'check("fine", true
'
check_nodb --dir "$D" check
is "$RC|$ERR" "2|" "a syntax error in validate.lua: exit 2"
is "$OUT" "ok   migrations/20250102_b/up.lua
FAIL migrations/20250102_b/validate.lua  does not compile: migrations/20250102_b/validate.lua:2: ')' expected (to close '(' at line 1) near <eof>
ok   rules.calc  no tests" "...an entry naming migrations/20250102_b/validate.lua:2, the rules still checked"
check_nodb --dir "$D" --json check
is "$RC|$(json_eval "$OUT" '[j["ok"], [c["name"] for c in j["checks"] if not c["ok"]]]')" \
   '2|[false,["migrations/20250102_b/validate.lua"]]' "check --json, a syntax error in validate.lua: exit 2, the entry failing"
put "$D/migrations/20250102_b/validate.lua" 'check("fine", true)'

# a migration without up.lua or up.sql -> exit 1
mkdir -p "$D/migrations/20250103_empty"
check_nodb --dir "$D" check
is "$RC" 1 "a migration with no up script: exit 1"
like "$OUT" '(^|'$'\n'')FAIL migrations/20250103_empty  no up\.lua or up\.sql' "...reported"
rmdir "$D/migrations/20250103_empty"
check_nodb --dir "$D" check
is "$RC" 0 "check passes again once fixed"

# the repository's own migrations and rules pass check
check_nodb --dir "$REPO_ROOT" check
is "$RC|$ERR" "0|" "ferry check passes on the repository's migrations and rules"
unlike "$OUT" 'FAIL' "...with no FAIL line"

# ------------------------------------------------------------------ new
N=$TAP_TMPDIR/newproj
mkdir -p "$N"
today=$(date -u +%Y%m%d)
id=${today}_add_things
check_nodb --dir "$N" new add_things
is "$RC|$ERR" "0|" "new: exit 0 without a database"
is "$OUT" "created migrations/$id/ (up.lua, rollback.sql, validate.lua, README.md)" "new says what it created"
is "$(cd "$N" && find . -type f | sort | tr '\n' ' ')" \
   "./migrations/$id/README.md ./migrations/$id/rollback.sql ./migrations/$id/up.lua ./migrations/$id/validate.lua " \
   "new creates migrations/<YYYYMMDD>_NAME with exactly up.lua, rollback.sql, validate.lua, README.md"
like "$(cat "$N/migrations/$id/README.md")" "^# $id" "README.md is titled with the id"

check_nodb --dir "$N" new add_things
is "$RC|$OUT|$ERR" "2||ferry: migrations/$id already exists" "new refuses an existing migration (exit 2)"
check_nodb --dir "$N" new Bad-Name
is "$RC|$OUT|$ERR" "2||ferry: migration names use lowercase letters, digits and underscores, and begin with a letter or digit: Bad-Name" \
   "new refuses a bad name (exit 2)"
check_nodb --dir "$N" new _things
is "$RC|$OUT|$ERR" "2||ferry: migration names use lowercase letters, digits and underscores, and begin with a letter or digit: _things" \
   "new refuses a name that begins with an underscore, and says why (exit 2)"
# a name of digits only reads as a version or an id's beginning: "ferry run
# 20251110" would name the migration whose id begins so, not this one
check_nodb --dir "$N" new 20251110
is "$RC|$OUT|$ERR" "2||ferry: a migration name of digits only reads as a version (ferry run 20251110 would name the migration whose id begins so, not ${today}_20251110): give it a word: 20251110" \
   "new refuses a name of digits only, and says why (exit 2)"
is "$(ls "$N/migrations" | tr '\n' ' ')" "$id " "...nothing made"
check_nodb --dir "$N" --json new other_thing
is "$RC|$OUT" "0|{\"created\":\"migrations/${today}_other_thing\"}" "new --json"
rm -rf "$N/migrations/${today}_other_thing"

check_nodb --dir "$N" check
is "$RC|$ERR" "0|" "the scaffold passes ferry check"
is "$OUT" "ok   migrations/$id/up.lua
ok   migrations/$id/validate.lua" "check lists the scaffold's scripts"

run_ferry --db "$db" --dir "$N" --json run "$id" --dry-run
is "$RC" 0 "the scaffold runs under run --dry-run"
dry=$(json_eval "$OUT" '[j["mode"], j["ok"], j["stats"], j["errors"]]')
like "$dry" '^\["dry-run",true,\{"rows_seen":[1-9][0-9]*,"rows_written":[1-9][0-9]*,"rows_skipped":[0-9]+,"errors":0\},\[\]\]$' \
     "the dry run reports counts"
v=$(psql_val "$db" "SELECT to_regclass('ferry.history') IS NULL")
is "$v" "t" "the dry run wrote nothing (no ferry.history)"

# its per-row line says what happens in each mode (a real run said "would write")
run_ferry --db "$db" --dir "$N" -v run "$id" --dry-run
like "$OUT" $'\nwould write public\n' "the scaffold's dry run, -v: 'would write' per row"
run_ferry --db "$db" --dir "$N" --json run "${today}_add"
is "$RC" 0 "the scaffold runs for real (by unique prefix)"
real=$(json_eval "$OUT" '[j["mode"], j["ok"], j["stats"], j["errors"]]')
is "${real/\"apply\"/\"dry-run\"}" "$dry" "the real run reports exactly the dry run's counts"
is "$(history "$db")" "$id|run|applied" "history: run applied"

run_ferry --db "$db" --dir "$N" validate "$id"
is "$RC" 0 "the scaffold's validate.lua passes"
like "$OUT" $'^==> validating '"$id"$'\n\u2713 PASS the database answers\n\u2713 PASS pg_namespace has rows  \\([0-9]+ schemas\\)\n2 check\\(s\\), 0 failed$' \
     "validate prints each check"
run_ferry --db "$db" --dir "$N" rollback "$id"
is "$RC" 0 "the scaffold's rollback.sql runs"
is "$(history "$db")" "$id|run|applied
$id|rollback|rolled back" "history: rolled back"
db_v=$(fresh_db ferry_cli_checknew_v)
run_ferry --db "$db_v" --dir "$N" -v run "$id"
like "$OUT" $'\nto write public\n' "the scaffold's real run, -v: 'to write' per row, not 'would write'"
unlike "$OUT" "would write" "...nowhere"
# run on its own (psql), as its header says it may be, it removes the
# resume point of an interrupted run too: the next run would otherwise
# resume past rows the rollback deleted
psql_val "$db" "INSERT INTO ferry.checkpoint (migration, run_id, position) VALUES ('$id', gen_random_uuid(), '42')" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$N/migrations/$id/rollback.sql" >/dev/null 2>&1
is "$?|$(psql_val "$db" "SELECT count(*) FROM ferry.checkpoint WHERE migration = '$id'")" "0|0" \
   "the scaffold's rollback.sql run with psql deletes the migration's checkpoint"
psql_val "$db" "DROP SCHEMA ferry CASCADE" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$N/migrations/$id/rollback.sql" >/dev/null 2>&1
is "$?" 0 "...and runs on a database without ferry's schema"

done_testing
