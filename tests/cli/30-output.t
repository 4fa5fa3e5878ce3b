#!/usr/bin/env bash
# Output modes: --json (exactly one object on stdout), --quiet (nothing on
# success), --verbose (tracebacks), the one-line error format, per-row
# errors (exit 1), and Lua syntax errors (exit 2, nothing written).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_output)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE t (x int);'
put "$D/migrations/20250101_a/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/20250101_a/validate.lua" 'check("t exists", function() return db.one("SELECT to_regclass($1) IS NOT NULL AS ok", "t").ok end)'
put "$D/migrations/20250102_b/up.lua" 'stats.declare{"seen", "written"}
for i = 1, 3 do
  stats.inc("seen")
  if not ctx.dry_run then db.exec("INSERT INTO t VALUES ($1)", i) end
  stats.inc("written")
end
log.info("b: info line")
log.verbose("b: verbose line")
log.warn("b: warning line")
print("b: printed line")
'
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }

# --- up --json: {"ok": true, "migrations": [...]} and nothing else on stdout
run_ferry --dir "$D" --json up
is "$RC" 0 "up --json: exit 0"
is "$(json_eval "$OUT" 'list(j.keys())')" '["ok","migrations"]' "up --json: one object {\"ok\": true, \"migrations\": [...]}"
is "$(json_eval "$OUT" '[[m["migration"], m["mode"], m["ok"], m["status"], m["stats"], m["errors"]] for m in j["migrations"]]')" \
   '[["20250101_a","apply",true,"applied",{},[]],["20250102_b","apply",true,"applied",{"seen":3,"written":3},[]]]' \
   "up --json: each migration with mode, ok, status, stats, errors"
is "$(json_eval "$OUT" '[list(m.keys()) for m in j["migrations"]][1]')" \
   '["migration","mode","ok","status","stats","errors","duration_ms"]' "up --json: the fields of a result"
is "$(json_eval "$OUT" 'all(isinstance(m["duration_ms"], int) and m["duration_ms"] >= 0 for m in j["migrations"])')" \
   true "up --json: duration_ms is a whole number"
is "$(wc -l <"$TAP_TMPDIR/run.out")" 1 "up --json: stdout is one line"
like "$ERR" 'b: info line' "--json: log.info goes to stderr"
like "$ERR" 'b: warning line' "--json: log.warn goes to stderr"
unlike "$ERR" 'b: verbose line' "--json: log.verbose stays quiet without --verbose"
like "$ERR" 'b: printed line' "--json: a script's print() goes to stderr"

run_ferry --dir "$D" --json up
is "$RC|$OUT" '0|{"ok":true,"migrations":[]}' "up --json with nothing to do: {\"ok\":true,\"migrations\":[]}"

# --- run --json: one result object
run_ferry --dir "$D" --json run 20250102_b --dry-run
is "$RC" 0 "run --json --dry-run: exit 0"
is "$(json_eval "$OUT" '[j["migration"], j["mode"], j["ok"], j["stats"], j["errors"], isinstance(j["duration_ms"], int)]')" \
   '["20250102_b","dry-run",true,{"seen":3,"written":3},[],true]' "run --json --dry-run: mode dry-run"
run_ferry --dir "$D" --json run 20250102
is "$(json_eval "$OUT" '[j["migration"], j["mode"], j["ok"], j["stats"]]')" \
   '["20250102_b","apply",true,{"seen":3,"written":3}]' "run --json: mode apply"

# --- per-row errors: exit 1, listed in JSON, in the summary and the history row
put "$D/migrations/20250103_rows/up.lua" 'for i = 1, 4 do
  stats.inc("seen")
  if i % 2 == 0 then stats.error("row-" .. i, "even rows are bad") end
end
'
run_ferry --dir "$D" --json run 20250103
is "$RC" 1 "row errors: exit 1"
is "$(json_eval "$OUT" '[j["ok"], j["stats"], j["errors"]]')" \
   '[false,{"seen":4,"errors":2},[{"key":"row-2","message":"even rows are bad"},{"key":"row-4","message":"even rows are bad"}]]' \
   "row errors: --json lists each key and message"
is "$ERR" "ferry: 20250103_rows: 2 row error(s) recorded; fix the rule or the data and re-run" "row errors: one line on stderr"
run_ferry --dir "$D" run 20250103
is "$RC" 1 "row errors (text): exit 1"
is "$OUT" "==> 20250103_rows

📊 Statistics:
   Seen:    4
   Errors:  2

⚠ Errors (2):
   row-2: even rows are bad
   row-4: even rows are bad" "row errors: the summary lists them"
v=$(psql_val "$db" "SELECT status || '|' || error || '|' || stats::text FROM ferry.history WHERE migration = '20250103_rows' ORDER BY id DESC LIMIT 1")
is "$v" 'failed|2 row errors|{"stats": {"seen": 4, "errors": 2}, "errors": [{"key": "row-2", "message": "even rows are bad"}, {"key": "row-4", "message": "even rows are bad"}]}' \
   "row errors: the history row is failed with the errors"
run_ferry --dir "$D" --json up
is "$RC" 1 "up --json with row errors: exit 1"
is "$(json_eval "$OUT" '[[m["migration"], m["ok"]] for m in j["migrations"]]')" '[["20250103_rows",false]]' \
   "up --json: the failed migration is in the list"
rm -rf "$D/migrations/20250103_rows"

# --- the other commands in --json mode
run_ferry --dir "$D" --json status
is "$(json_eval "$OUT" '[[m["migration"], m["status"], m["checksum_changed"], len(m["applied_at"]), m["baseline"], m["later_run_failed"]] for m in j["migrations"] if not m["missing"]]')" \
   '[["20250101_a","applied",false,20,false,false],["20250102_b","applied",false,20,false,false]]' "status --json"
is "$(json_eval "$OUT" '[m for m in j["migrations"] if m["missing"]]')" \
   '[{"migration":"20250103_rows","version":"20250103","name":"rows","status":"failed","baseline":false,"later_run_failed":false,"later_rollback_failed":false,"missing":true,"checkpoint":false}]' \
   "status --json: a migration only the history knows has the same fields (missing: true)"
run_ferry --dir "$D" --json validate 20250101
is "$RC|$OUT" '0|{"migration":"20250101_a","mode":"validate","ok":true,"checks":[{"name":"t exists","ok":true}]}' "validate --json"

# --- a rollback that fails half-way leaves the migration applied, and says
# so (what it committed before it failed stays: here its first transaction)
put "$D/migrations/20250102_b/rollback.sql" 'BEGIN; CREATE TABLE half_rolled (x int); COMMIT;
SELECT 1/0;'
run_ferry --dir "$D" rollback 20250102
is "$RC" 1 "a rollback.sql failing at its second statement: exit 1"
is "$(psql_val "$db" "SELECT to_regclass('half_rolled') IS NOT NULL")" t "...its first statement stayed done"
run_ferry --dir "$D" status
like "$OUT" "20250102_b +applied +[0-9TZ:-]+ +CHANGED since applied; a later rollback failed"$'\n' \
     "status: applied, and a later rollback failed"
run_ferry --dir "$D" --json status
is "$(json_eval "$OUT" '[[m["migration"], m["status"], m["later_run_failed"], m["later_rollback_failed"]] for m in j["migrations"] if not m["missing"]]')" \
   '[["20250101_a","applied",false,false],["20250102_b","applied",false,true]]' "status --json: later_rollback_failed"
rm "$D/migrations/20250102_b/rollback.sql"
psql_val "$db" "DROP TABLE half_rolled" >/dev/null

# --- --json on a Lua error: the result carries the error line
put "$D/migrations/20250104_boom/up.lua" 'stats.inc("before")
local function helper()
  error("boom in helper")
end
helper()
'
run_ferry --dir "$D" --json up
is "$RC" 1 "up --json, Lua error: exit 1"
is "$(json_eval "$OUT" '[[m["migration"], m["mode"], m["ok"], m["stats"], m["error"]] for m in j["migrations"]]')" \
   '[["20250104_boom","apply",false,{"before":1},"migrations/20250104_boom/up.lua:3: boom in helper"]]' \
   "up --json, Lua error: ok false and the error"
is "$(tail -n 1 <<<"$ERR")" "ferry: migrations/20250104_boom/up.lua:3: boom in helper" \
   "up --json, Lua error: the one-line error on stderr, as run --json writes it"

# --- the one-line error, and the traceback with --verbose
run_ferry --dir "$D" run 20250104
is "$RC" 1 "Lua error: exit 1"
is "$ERR" "ferry: migrations/20250104_boom/up.lua:3: boom in helper" "Lua error: one line 'ferry: file:line: message'"
is "$OUT" $'==> 20250104_boom\n\n\U0001F4CA Statistics:\n   Before:  1' "Lua error: the counters so far are still shown"
run_ferry --dir "$D" --verbose run 20250104
is "$RC" 1 "Lua error --verbose: exit 1"
is "$(head -n 1 <<<"$ERR")" "ferry: migrations/20250104_boom/up.lua:3: boom in helper" "--verbose: same first line"
like "$ERR" $'\nstack traceback:\n' "--verbose: a traceback follows"
like "$ERR" $'\n\tmigrations/20250104_boom/up.lua:3: in (local|upvalue|function) .helper.\n' "--verbose: the traceback names the helper's frame"
like "$ERR" $'\n\tmigrations/20250104_boom/up.lua:5: in main chunk' "--verbose: ...and the main chunk's line"
run_ferry --dir "$D" -v run 20250104
like "$ERR" 'stack traceback:' "-v is --verbose"
v=$(psql_val "$db" "SELECT status || '|' || split_part(error, E'\n', 1) FROM ferry.history WHERE migration = '20250104_boom' ORDER BY id DESC LIMIT 1")
is "$v" "failed|migrations/20250104_boom/up.lua:3: boom in helper" "history: failed with the error"

# an error raised by the database through db.exec names the script's line
put "$D/migrations/20250104_boom/up.lua" 'stats.inc("before")
db.exec("SELECT * FROM no_such_table")
'
run_ferry --dir "$D" run 20250104
is "$RC" 1 "SQL error in a script: exit 1"
is "$ERR" 'ferry: migrations/20250104_boom/up.lua:2: query failed: relation "no_such_table" does not exist [SQLSTATE 42P01]' \
   "SQL error in a script: one line naming the script's file:line"
run_ferry --dir "$D" -v run 20250104
like "$ERR" $'\nstack traceback:\n.*\n\tmigrations/20250104_boom/up.lua:2: in main chunk' "SQL error --verbose: traceback"

# a runtime error inside a rule names the rule's file:line
put "$D/rules/pick.lua" 'local M = {}
function M.field(x)
  return x.field
end
return M
'
put "$D/migrations/20250104_boom/up.lua" 'local pick = require "rules.pick"
pick.field(nil)
'
run_ferry --dir "$D" run 20250104
is "$RC" 1 "error in a rule: exit 1"
is "$ERR" "ferry: 20250104_boom: rules/pick.lua:3: attempt to index a nil value (local 'x')" \
   "error in a rule: one line naming rules/pick.lua:3, relative to --dir as the scripts are (--dir is absolute here)"
run_ferry --dir "$D" -v run 20250104
like "$ERR" $'\n\trules/pick\\.lua:3: in function \'rules\\.pick\\.field\'' "...and so in the traceback"
rm -rf "$D/migrations/20250104_boom"

# --- --quiet: nothing at all on success
rm -f "$D/rules/pick.lua"
put "$D/migrations/20250105_c/up.lua" 'log.info("c: info") log.warn("c: warn") stats.inc("n")'
put "$D/migrations/20250105_c/rollback.sql" 'SELECT 1;'
run_ferry --dir "$D" -q up
is "$RC|$OUT|$ERR" "0||" "up --quiet: nothing printed"
run_ferry --dir "$D" --quiet run 20250105 --dry-run
is "$RC|$OUT|$ERR" "0||" "run --dry-run --quiet: nothing printed"
run_ferry --dir "$D" -q run 20250105
is "$RC|$OUT|$ERR" "0||" "run --quiet: nothing printed"
run_ferry --dir "$D" -q validate 20250101
is "$RC|$OUT|$ERR" "0||" "validate --quiet: nothing printed"
run_ferry --dir "$D" -q rollback 20250105
is "$RC|$OUT|$ERR" "0||" "rollback --quiet: nothing printed"
run_ferry --dir "$D" -q up
is "$RC|$OUT|$ERR" "0||" "up --quiet, nothing to do: nothing printed"
run_ferry --db "$(fresh_db ferry_cli_output_q)" --dir "$D" -q baseline 20250105
is "$RC|$OUT|$ERR" "0||" "baseline --quiet: nothing printed"
run_ferry --dir "$D" -q check
is "$RC|$OUT|$ERR" "0||" "check --quiet: nothing printed"
# ... except the answer of a command that is asked for one: status's
# table and history's runs (--quiet silences the rest, as elsewhere)
run_ferry --dir "$D" -q status
like "$RC|$OUT|$ERR" $'^0\\|MIGRATION +STATUS +APPLIED AT +CHECKSUM\n20250101_a +applied .*\n20250105_c +applied .*\\|$' \
   "status --quiet: its table, nothing else"
run_ferry --dir "$D" -q history 20250105
like "$RC|$OUT|$ERR" $'^0\\|STARTED AT +MIGRATION +OPERATION +STATUS +TIME\n.* 20250105_c +up +applied .*\n.* 20250105_c +rollback +rolled back .*\\|$' \
   "history --quiet: its runs, nothing else"
# ... but what fails is shown: a failed check's line (validate, check), and
# a validate.lua that stops -- an exit 1 with nothing said is no answer
put "$D/migrations/20250101_a/validate.lua" 'check("t exists", function() return db.one("SELECT to_regclass($1) IS NOT NULL AS ok", "t").ok end)
check("t has rows", function() return false, "0 rows" end)
check("always", true)'
run_ferry --dir "$D" -q validate 20250101
is "$RC|$OUT|$ERR" "1|✗ FAIL t has rows  (0 rows)|" "validate --quiet with a failed check: its FAIL line only"
put "$D/migrations/20250101_a/validate.lua" 'check("t exists", true)
error("boom", 0)'
run_ferry --dir "$D" -q validate 20250101
is "$RC|$OUT|$ERR" "1|✗ FAIL validate.lua stopped: boom|" "validate --quiet, validate.lua stopped: that line only"
put "$D/migrations/20250101_a/validate.lua" 'check("t exists", function() return db.one("SELECT to_regclass($1) IS NOT NULL AS ok", "t").ok end)'
put "$D/rules/quiet_r.lua" 'local M = {}
M.tests = {["passes"] = function() end, ["fails"] = function() error("no", 0) end}
return M'
run_ferry --dir "$D" -q check
is "$RC|$OUT|$ERR" "1|FAIL rules.quiet_r test \"fails\"  no|" "check --quiet with a failing rule test: its FAIL line only"
rm -f "$D/rules/quiet_r.lua"
# the server's notices: shown as libpq prints them, but not with --quiet,
# which keeps its warnings
put "$D/notice.lua" 'db.exec([[DO $$ BEGIN RAISE NOTICE $m$a notice$m$; RAISE WARNING $m$a warning$m$; END $$]])'
run_ferry --dir "$D" exec "$D/notice.lua"
is "$RC|$OUT|$ERR" $'0||NOTICE:  a notice\nWARNING:  a warning' "a server NOTICE and WARNING are shown"
run_ferry --dir "$D" -q exec "$D/notice.lua"
is "$RC|$OUT|$ERR" "0||WARNING:  a warning" "--quiet: the WARNING only"
# a notice the server repeats (the same severity and message: one per row
# of a backfill, "word is too long to be indexed") is shown three times,
# then counted, and one line at the end of the command says how many more
# there were; another notice is shown on its own
put "$D/notice_rep.lua" 'for i = 1, 6 do
  db.exec("DO $$ BEGIN RAISE NOTICE $m$same thing$m$ USING DETAIL = $m$row " .. i .. "$m$; END $$")
end
db.exec([[DO $$ BEGIN RAISE NOTICE $m$other$m$; END $$]])
for _ = 1, 4 do db.exec([[DO $$ BEGIN RAISE WARNING $m$warned$m$; END $$]]) end'
run_ferry --dir "$D" exec "$D/notice_rep.lua"
is "$RC|$OUT|$ERR" "0||NOTICE:  same thing
DETAIL:  row 1
NOTICE:  same thing
DETAIL:  row 2
NOTICE:  same thing
DETAIL:  row 3
NOTICE:  other
WARNING:  warned
WARNING:  warned
WARNING:  warned
note: the server sent this notice 3 more times (not shown): NOTICE:  same thing
note: the server sent this notice 1 more time (not shown): WARNING:  warned" \
   "a repeated notice: three shown, the rest counted at the end"
run_ferry --dir "$D" -q exec "$D/notice_rep.lua"
is "$RC|$OUT|$ERR" "0||WARNING:  warned
WARNING:  warned
WARNING:  warned
note: the server sent this notice 1 more time (not shown): WARNING:  warned" "--quiet: the same for its warnings"
# a long one is named in the closing line cut at a character boundary
# (its first 200 bytes or so), marked "...": not in the middle of a
# character, which left a byte that is no UTF-8
put "$D/notice_long.lua" 'for _ = 1, 4 do db.exec([[DO $$ BEGIN RAISE NOTICE $m$x%$m$, repeat($m$é$m$, 150); END $$]]) end'
run_ferry --dir "$D" exec "$D/notice_long.lua"
E93=$(printf 'é%.0s' $(seq 93))
is "$RC|$(tail -n 1 <<<"$ERR")" "0|note: the server sent this notice 1 more time (not shown): NOTICE:  x$E93..." \
   "a long repeated notice: the closing line cuts it at a character boundary, marked ..."
# an exec script's os.exit (which stays its own) ends the command too: the
# closing line is not lost with it
put "$D/notice_exit.lua" 'for _ = 1, 5 do db.exec([[DO $$ BEGIN RAISE NOTICE $m$again$m$; END $$]]) end
os.exit(4)'
run_ferry --dir "$D" exec "$D/notice_exit.lua"
is "$RC|$OUT|$ERR" "4||NOTICE:  again
NOTICE:  again
NOTICE:  again
note: the server sent this notice 2 more times (not shown): NOTICE:  again" "exec's os.exit: the repeated notices are still counted at the end"
# db.transaction whose fn ended the transaction and then raised: nothing
# left to roll back, so no server warning ("there is no transaction in
# progress") on stderr
put "$D/tx_rollback.lua" 'local ok, e = pcall(db.transaction, function() db.exec("ROLLBACK"); error("fn failed", 0) end)
print(ok, e)'
run_ferry --dir "$D" exec "$D/tx_rollback.lua"
is "$RC|$OUT|$ERR" $'0|false\tfn failed|' "fn ROLLBACKs then raises: its error, no server warning"
# control characters in a notice are escaped as ferry's own messages are
# (an ESC sequence would clear or recolour the terminal): C0 controls but
# tab and newline as \xNN, DEL too, C1 controls (U+0080-U+009F) as \u00NN;
# the newlines that separate the notice's lines (DETAIL, HINT) stay
put "$D/notice_ctl.lua" 'db.exec([[DO $$ BEGIN
  RAISE NOTICE $m$%$m$, E'"'"'a\x1b[2Jb\tc\rd\x7fe'"'"' || U&'"'"'\009B'"'"' || E'"'"'f\ng'"'"';
  RAISE WARNING $m$w$m$ USING HINT = E'"'"'h\x07\x01'"'"'; END $$]])'
run_ferry --dir "$D" exec "$D/notice_ctl.lua"
is "$RC|$OUT|$ERR" $'0||NOTICE:  a\\x1b[2Jb\tc\\x0dd\\x7fe\\u009bf\ng\nWARNING:  w\nHINT:  h\\x07\\x01' \
   "a notice's control characters are escaped (ESC, CR, DEL, C1 CSI, BEL); tab and newlines stay"
is "$(tail -c 5 "$TAP_TMPDIR/run.err" | od -An -c | tr -s ' ')" " \\ x 0 1 \\n" "...and the notice still ends with its newline"
put "$D/migrations/20250106_d/up.lua" 'error("quiet but failing")'
run_ferry --dir "$D" -q up
is "$RC|$OUT|$ERR" "1||ferry: migrations/20250106_d/up.lua:1: quiet but failing" "--quiet still prints the error line"
rm -rf "$D/migrations/20250106_d"

# --- --verbose shows log.verbose lines
run_ferry --dir "$D" -v run 20250102_b --dry-run
like "$OUT" 'b: verbose line' "--verbose shows log.verbose"
run_ferry --dir "$D" run 20250102_b --dry-run
unlike "$OUT" 'b: verbose line' "without --verbose log.verbose is silent"
like "$OUT" 'b: info line' "log.info goes to stdout without --json"

# --- Lua syntax errors: exit 2, file:line, before anything is written
db2=$(fresh_db ferry_cli_output_syntax)
S=$TAP_TMPDIR/syntax
put "$S/migrations/20250101_first/up.sql" 'CREATE TABLE first (x int); INSERT INTO first VALUES (1);'
put "$S/migrations/20250102_second/up.lua" 'db.exec("CREATE TABLE second (x int)")
local x = = 1
'
nothing_written() { # NAME
    is "$(psql_val "$db2" "SELECT concat_ws(',', to_regclass('ferry.history'), to_regclass('first'), to_regclass('second'))")" "" \
       "$1: nothing written (no history, no tables)"
}
run_ferry --db "$db2" --dir "$S" up
is "$RC|$OUT|$ERR" "2||ferry: migrations/20250102_second/up.lua:2: unexpected symbol near '='" \
   "syntax error in a later migration: up exits 2 naming file:line"
nothing_written "syntax error in up.lua"
run_ferry --db "$db2" --dir "$S" run 20250102 --dry-run
is "$RC|$ERR" "2|ferry: migrations/20250102_second/up.lua:2: unexpected symbol near '='" "syntax error: run --dry-run exits 2"
run_ferry --db "$db2" --dir "$S" --json up
is "$RC" 2 "syntax error, --json: exit 2"
is "$(json_eval "$OUT" '[j["ok"], j["error"]]')" "[false,\"migrations/20250102_second/up.lua:2: unexpected symbol near '='\"]" \
   "syntax error, --json: {ok:false, error}"
put "$S/migrations/20250102_second/up.lua" 'local r = require "rules.broken"
db.exec("CREATE TABLE second (x int)")
'
put "$S/rules/broken.lua" 'local M = {}
function M.f(x)
  if x then return 1
end
return M
'
run_ferry --db "$db2" --dir "$S" up
is "$RC|$OUT|$ERR" "2||ferry: rules/broken.lua:6: 'end' expected (to close 'function' at line 2) near <eof>" \
   "syntax error in a rule: up exits 2 naming rules/broken.lua:6"
nothing_written "syntax error in a rule"
# any Lua migration may require any rule: one that does not is stopped too
put "$S/migrations/20250102_second/up.lua" 'db.exec("CREATE TABLE second (x int)")'
run_ferry --db "$db2" --dir "$S" run 20250102_second
is "$RC|$ERR" "2|ferry: rules/broken.lua:6: 'end' expected (to close 'function' at line 2) near <eof>" \
   "a syntax error in any rule stops even a Lua migration that does not load it"
nothing_written "syntax error in an unused rule"
put "$S/migrations/20250102_second/up.lua" 'local r = require "rules.broken"
db.exec("CREATE TABLE second (x int)")
'
# an up.sql reads no rule (tests/cli/16-rules-preflight.t has the real runs)
run_ferry --db "$db2" --dir "$S" run 20250101_first --dry-run
is "$RC|$ERR" "0|" "a syntax error in a rule does not stop an up.sql migration"
nothing_written "a dry run of an up.sql beside a broken rule"
put "$S/rules/broken.lua" 'return {}'
put "$S/migrations/20250101_first/validate.lua" 'check("x" true)'
run_ferry --db "$db2" --dir "$S" up
is "$RC|$ERR" "2|ferry: migrations/20250101_first/validate.lua:1: ')' expected near 'true'" \
   "syntax error in validate.lua: up exits 2"
nothing_written "syntax error in validate.lua"
rm "$S/migrations/20250101_first/validate.lua"
run_ferry --db "$db2" --dir "$S" up
is "$RC" 0 "once fixed, up runs"
is "$(history "$db2")" "20250101_first|up|applied
20250102_second|up|applied" "...and records both"

# --- a failure inside a pipeline that has sent nothing: the one error line,
#     not the server's "there is no transaction in progress" warnings from
#     rolling back writers that had no transaction
P=$TAP_TMPDIR/pipefail
db3=$(fresh_db ferry_cli_output_pipe)
put "$P/migrations/20250101_pipe/up.lua" 'db.exec("CREATE TABLE IF NOT EXISTS pt (x int)")
local buf = db.buffer()
local pipe <close> = db.pipeline{jobs = 2, checkpoint = ctx.checkpoint}
buf:put(1)
pipe:send{copies = {{sql = "COPY pt (x) FROM STDIN", buffer = buf}}, position = 1}
error("mapping failed")
'
run_ferry --db "$db3" --dir "$P" run 20250101_pipe
is "$RC|$ERR" "1|ferry: migrations/20250101_pipe/up.lua:6: mapping failed" \
   "an error with a batch in flight on one writer of two: exactly one error line on stderr"
is "$(psql_val "$db3" 'SELECT count(*) FROM pt')" 0 "...and the batch in flight was rolled back"

# A foreign key whose row is gone (the live system deleted a lead while a
# backfill wrote it), a unique key a live row took meanwhile: the line says
# what to do, and that a re-run resumes.
put "$P/migrations/20250103_fk/up.lua" 'db.exec("CREATE TABLE IF NOT EXISTS fk_parent (id int PRIMARY KEY)")
db.exec("CREATE TABLE IF NOT EXISTS fk_child (parent int REFERENCES fk_parent)")
db.exec("INSERT INTO fk_child VALUES (1)")
'
put "$P/migrations/20250104_uniq/up.lua" 'db.exec("CREATE TABLE IF NOT EXISTS uq (id int PRIMARY KEY)")
db.exec("INSERT INTO uq VALUES (1) ON CONFLICT DO NOTHING")
db.exec("INSERT INTO uq VALUES (1)")
'
for case in '20250103_fk|insert or update on table "fk_child" violates foreign key constraint .*|23503|deleted' \
            '20250104_uniq|duplicate key value violates unique constraint .*|23505|wrote'; do
    IFS='|' read -r mig what state verb <<<"$case"
    run_ferry --db "$db3" --dir "$P" run "$mig"
    like "$RC|$ERR" "^1\\|ferry: migrations/$mig/up\\.lua:3: query failed: $what\\[SQLSTATE $state\\]; if the live system $verb that row meanwhile, re-run to resume \\(everything up to the last checkpoint is committed\\)\$" \
         "SQLSTATE $state in a data migration: one line, saying what to do if the live system $verb the row meanwhile"
done

# A run that fails reports what it committed: rows of batches in flight or
# being mapped are not counted, nor is a counter that only they touched.
put "$P/migrations/20250102_count/up.lua" 'stats.declare{"rows_created"}
local buf = db.buffer()
local pipe <close> = db.pipeline{jobs = 1, checkpoint = ctx.checkpoint}
local function put3(from) for i = from, from + 2 do buf:put(i) stats.inc("rows_created") end end
put3(1)
pipe:send{copies = {{sql = "COPY pt (x) FROM STDIN", buffer = buf}}, position = 3}
buf:clear()
stats.inc("late_counter")
put3(4)
error("boom")
'
run_ferry --db "$db3" --dir "$P" --json run 20250102_count
is "$RC" 1 "a failure before the first commit: exit 1"
is "$(json_eval "$OUT" 'j["stats"]')" '{"rows_created":0,"late_counter":0}' \
   "...its statistics count nothing: nothing was committed"
is "$(psql_val "$db3" 'SELECT count(*) FROM pt')" 0 "...and nothing is in the table"

# Control characters in what a row error or the final error says are shown
# escaped, not sent to the terminal ("\27[2J" cleared the operator's screen)
E=$TAP_TMPDIR/esc
put "$E/migrations/20250101_esc/up.lua" 'stats.error("k\27[2J", "bad\27[31m red\nsecond line\ttab \u{9b}31m caf\u{e9}")
error("stop\7\27[0m")'
dbe=$(fresh_db ferry_cli_output_esc)
run_ferry --db "$dbe" --dir "$E" run 20250101_esc
is "$RC" 1 "a run with a row error and a final error: exit 1"
like "$OUT" '   k\\x1b\[2J: bad\\x1b\[31m red\\x0asecond line'$'\t''tab \\u009b31m café' \
     "the row error's control characters are escaped, C1 ones too (a tab and other text kept)"
like "$ERR" 'up\.lua:2: stop\\x07\\x1b\[0m$' "...and the final error's"
unlike "$OUT$ERR" $'\033' "no escape character reaches the terminal"

# validate's lines are escaped too; and status shows a baselined migration
# whose folder is gone as missing (the "baseline" note hid it)
V=$TAP_TMPDIR/val
put "$V/migrations/20250101_v/up.sql" 'SELECT 1;'
put "$V/migrations/20250101_v/validate.lua" 'check("c1", function() return false, "detail \27[2J here" end)
error("stopped \27[2J")'
dbv=$(fresh_db ferry_cli_output_val)
run_ferry --db "$dbv" --dir "$V" validate 20250101
like "$OUT" 'c1  \(detail \\x1b\[2J here\)' "validate: a check's detail is escaped"
like "$OUT" 'validate\.lua stopped: .*stopped \\x1b\[2J' "validate: the error that stopped it too"
unlike "$OUT$ERR" $'\033' "validate: no escape character reaches the terminal"
run_ferry --db "$dbv" --dir "$V" baseline 20250101
rm -rf "$V/migrations/20250101_v"
run_ferry --db "$dbv" --dir "$V" status
like "$OUT" '20250101_v +applied +[0-9TZ:-]+ +file missing from migrations/' \
     "status: a baselined migration whose folder is gone shows as missing"

# a caught API error keeps the script's line -- in the row errors of the
# summary and in validate's output -- never ferry's own file ("row 1:
# [ferry]/db.lua:30: COPY failed to start")
P=$TAP_TMPDIR/pos
put "$P/migrations/20250101_p/up.lua" 'local c = db.connect()
local ok, err = pcall(function() c:copy("COPY nonexistent_pos FROM STDIN") end)
stats.error("row 1", err)
c:close()'
put "$P/migrations/20250101_p/validate.lua" 'check("copy", function()
  local c <close> = db.connect()
  c:copy("COPY nonexistent_pos FROM STDIN")
end)'
dbp=$(fresh_db ferry_cli_output_pos)
run_ferry --db "$dbp" --dir "$P" run 20250101_p
like "$OUT" '   row 1: migrations/20250101_p/up\.lua:2: COPY failed to start: relation "nonexistent_pos" does not exist' \
     "a caught conn:copy error in the run summary names the script's line"
unlike "$OUT$ERR" '\[ferry\]' "...not ferry's own file"
run_ferry --db "$dbp" --dir "$P" validate 20250101_p
like "$OUT" 'FAIL copy  \(error: migrations/20250101_p/validate\.lua:3: COPY failed to start' \
     "validate: a check's error names the check's line"
unlike "$OUT$ERR" '\[ferry\]' "...not ferry's own file"

done_testing
