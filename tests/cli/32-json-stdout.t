#!/usr/bin/env bash
# --json keeps stdout for ferry's one JSON object: whatever a migration's
# Lua (up.lua, down.lua, validate.lua, the rules they load, ferry check's
# rule tests) writes to stdout -- print, io.write, io.stdout, io.output(), a
# shell command it runs -- goes to stderr.  Under exec stdout is the
# script's, whatever the flags.  --version, --help and no command under
# --json are one object too.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_json_stdout)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
# every way a script can reach stdout, in an order stderr must keep
put "$D/rules/noisy.lua" 'io.write("rule: loaded\n")
local M = {}
function M.f(x) print("rule: f", x) return x end
M.tests = {
  prints = function() io.write("rule test: io.write\n") print("rule test: print") assert(M.f(1) == 1) end,
}
return M
'
put "$D/migrations/20250101_a/up.lua" '-- ferry: allow-shell
local noisy = require "rules.noisy"
io.write("debug\n")
print("x", 1)
io.stdout:write("io.stdout\n")
io.output():write("io.output()\n")
log.info("log.info")
local ok, why = io.stdout:close()
io.write("after close: ", tostring(ok), " ", why, "\n")
assert(io.output() == io.stdout)
io.write("partial ")
io.stderr:write("stderr\n")
io.flush()
os.execute("echo shell")
noisy.f(2)
db.exec([[DO $$ BEGIN RAISE NOTICE $m$a notice$m$; END $$]])
stats.inc("n")
'
put "$D/migrations/20250101_a/down.lua" 'print("down: print") io.write("down: io.write\n") stats.inc("undone")'
put "$D/migrations/20250101_a/validate.lua" 'print("validate: print")
check("one", function() io.write("in check\n") return true end)'
UP_ERR='rule: loaded
debug
x	1
io.stdout
io.output()
log.info
after close: nil cannot close standard file
partial stderr
shell
rule: f	2
NOTICE:  a notice'
norm() { sed -E 's/"duration_ms":[0-9]+/"duration_ms":N/' <<<"$1"; }

run_ferry --dir "$D" --json run 20250101 --dry-run
is "$RC|$(norm "$OUT")" '0|{"migration":"20250101_a","mode":"dry-run","ok":true,"stats":{"n":1},"errors":[],"duration_ms":N}' \
   "run --json --dry-run: stdout is the JSON object alone"
is "$ERR" "$UP_ERR" "run --json --dry-run: what up.lua and its rule write to stdout (print, io.write, io.stdout, io.output(), a shell command) is on stderr, in order"

run_ferry --dir "$D" --json run 20250101
is "$RC|$(norm "$OUT")" '0|{"migration":"20250101_a","mode":"apply","ok":true,"status":"applied","stats":{"n":1},"errors":[],"duration_ms":N}' \
   "run --json: stdout is the JSON object alone"
is "$ERR" "$UP_ERR" "run --json: the script's stdout is on stderr"

run_ferry --dir "$D" --json validate 20250101
is "$RC|$OUT" '0|{"migration":"20250101_a","mode":"validate","ok":true,"checks":[{"name":"one","ok":true}]}' \
   "validate --json: stdout is the JSON object alone"
is "$ERR" $'validate: print\nin check' "validate --json: validate.lua's print and io.write on stderr"

run_ferry --dir "$D" --json rollback 20250101
is "$RC|$(norm "$OUT")" '0|{"migration":"20250101_a","mode":"rollback","ok":true,"status":"rolled back","stats":{"undone":1},"errors":[],"duration_ms":N}' \
   "rollback --json: stdout is the JSON object alone"
is "$ERR" $'down: print\ndown: io.write' "rollback --json: down.lua's print and io.write on stderr"

run_ferry --dir "$D" --json up
is "$RC|$(norm "$OUT")" '0|{"ok":true,"migrations":[{"migration":"20250101_a","mode":"apply","ok":true,"status":"applied","stats":{"n":1},"errors":[],"duration_ms":N}]}' \
   "up --json: stdout is the JSON object alone"
is "$ERR" "$UP_ERR" "up --json: the script's stdout is on stderr"

run_ferry --dir "$D" --json check
is "$RC|$OUT" '0|{"ok":true,"checks":[{"name":"migrations/20250101_a/up.lua","ok":true},{"name":"migrations/20250101_a/down.lua","ok":true},{"name":"migrations/20250101_a/validate.lua","ok":true},{"name":"rules.noisy","ok":true,"detail":"1 tests passed"}]}' \
   "check --json: stdout is the JSON object alone"
is "$ERR" $'rule: loaded\nrule test: io.write\nrule test: print\nrule: f\t1' "check --json: a rule's and its tests' output on stderr"

# a script that prints and then fails: the object still stands alone
put "$D/migrations/20250102_b/up.lua" 'print("before the error") error("boom")'
run_ferry --dir "$D" --json run 20250102
is "$RC|$(norm "$OUT")" '1|{"migration":"20250102_b","mode":"apply","ok":false,"status":"failed","stats":{},"errors":[],"duration_ms":N,"error":"migrations/20250102_b/up.lua:1: boom"}' \
   "a failing run --json: stdout is the JSON object alone"
is "$ERR" $'before the error\nferry: migrations/20250102_b/up.lua:1: boom' "...what it printed and the error line on stderr"
rm -rf "$D/migrations/20250102_b"

# "status" is this run's row: a re-run of an applied migration that fails
# says "failed", and the migration stays applied (README, --json)
db_rerun=$(fresh_db ferry_cli_json_rerun)
D2=$TAP_TMPDIR/rerun
put "$D2/migrations/20250103_c/up.lua" 'if os.getenv("FAIL_C") then error("again") end stats.inc("n")'
run_ferry --db "$db_rerun" --dir "$D2" -q run 20250103
FAIL_C=1 run_ferry --db "$db_rerun" --dir "$D2" --json run 20250103
is "$RC|$(norm "$OUT")" '1|{"migration":"20250103_c","mode":"apply","ok":false,"status":"failed","stats":{},"errors":[],"duration_ms":N,"error":"migrations/20250103_c/up.lua:1: again"}' \
   "a failed re-run of an applied migration --json: \"status\": \"failed\" (this run's row)"
run_ferry --db "$db_rerun" --dir "$D2" --json status
is "$RC|$(json_eval "$OUT" 'j["migrations"][0]["status"] + " " + str(j["migrations"][0]["later_run_failed"])')" "0|applied True" \
   "...while the migration stays applied (status --json: later_run_failed)"

# without --json, nothing changes: the script's stdout is stdout
run_ferry --dir "$D" -q run 20250101 --dry-run
is "$RC|$ERR" '0|stderr' "run without --json (-q): only what the script wrote to stderr on stderr"
is "$OUT" $'rule: loaded\ndebug\nx\t1\nio.stdout\nio.output()\nafter close: nil cannot close standard file\npartial shell\nrule: f\t2' \
   "run without --json: the script's output on stdout"

# --- exec: stdout is the script's, with --json too; log.info goes to stderr under --json
put "$D/q.lua" 'print("print", 1)
io.write("io.write\n")
io.stdout:write("io.stdout\n")
log.info("log.info")
return 0'
run_ferry --dir "$D" --json exec "$D/q.lua"
is "$RC|$OUT" $'0|print\t1\nio.write\nio.stdout' "exec --json: print and io.write go to stdout, and no object of ferry's"
is "$ERR" 'log.info' "exec --json: log.info goes to stderr"
run_ferry --dir "$D" exec "$D/q.lua"
is "$RC|$OUT|$ERR" $'0|print\t1\nio.write\nio.stdout\nlog.info|' "exec: all four on stdout"
put "$D/f.lua" 'print("half") error("exec fails")'
run_ferry --dir "$D" --json exec "$D/f.lua"
is "$RC|$ERR" "1|ferry: $D/f.lua:1: exec fails" "exec --json, the script fails: exit 1, the error line on stderr"
is "$(head -n 1 <<<"$OUT")|$(json_eval "$(tail -n +2 <<<"$OUT")" '[j["ok"], j["error"]]')" "half|[false,\"$D/f.lua:1: exec fails\"]" \
   "...and on stdout what it printed, then {ok: false, error}"

# --- --version, --help and no command under --json
run_ferry --version
version=${OUT#ferry }
run_ferry --json --version
is "$RC|$OUT|$ERR" "0|{\"version\":\"$version\"}|" "--json --version: {\"version\": ...}"
run_ferry --help
help=$OUT
run_ferry --json --help
is "$RC|$ERR" "0|" "--json --help: exit 0, nothing on stderr"
is "$(json_eval "$OUT" 'list(j.keys())')" '["usage"]' "--json --help: one object {\"usage\": TEXT}"
is "$(json_eval "$OUT" 'j["usage"]')" "$help" "...holding the text of --help"
is "$(wc -l <"$TAP_TMPDIR/run.out")" 1 "...on one line"
run_ferry -h --json
is "$(json_eval "$OUT" 'j["usage"]')" "$help" "-h --json: the same"
run_ferry
usage=$ERR
run_ferry --json
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"no command given (see 'ferry --help')\"}" \
   "--json with no command: exit 2, the usage error as {ok: false, error}"
is "$ERR" "$usage" "...and the usage text on stderr, as without --json"

# --- ferry's JSON writes "/" as it is: cjson's "\/" is valid JSON, but a
# path a person reads looks broken; a backslash before a slash stays one
run_ferry --dir "$D" --json check
like "$OUT" '"name":"migrations/20250101_a/up.lua"' "--json check: paths with plain slashes"
unlike "$OUT" '\\/' "...and no \\/ anywhere in the object"
put "$D/s.lua" 'error("a\\/b/c", 0)'
run_ferry --dir "$D" --json exec "$D/s.lua"
is "$(json_eval "$OUT" 'j["error"]')" 'a\/b/c' "a backslash before a slash in a message: decoded as written"
like "$OUT" '"error":"a\\\\/b/c"' "...written as \\\\/ (the backslash escaped, the slash plain)"

done_testing
