#!/usr/bin/env bash
# ferry.history over time: checksum drift (files and loaded rules; CRLF
# alone is no drift), and a 'running' row whose process died (kill -9):
# status shows it interrupted, the next up runs it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_history)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
UP_B='local names = require "rules.names"
stats.inc("upper", #names.upper("ab"))
'
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE t (x int);
-- two lines
'
put "$D/migrations/20250101_a/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/20250102_b/up.lua" "$UP_B"
put "$D/rules/names.lua" 'local M = {}
function M.upper(s) return s:upper() end
return M
'
put "$D/rules/other.lua" 'return {}'

drift() { # -> "a-note|b-note" from status --json
    run_ferry --dir "$D" --json status
    json_eval "$OUT" '"|".join(str(m.get("checksum_changed")) for m in j["migrations"])'
}
run_ferry --dir "$D" up
is "$RC" 0 "up: exit 0"
is "$(drift)" "False|False" "freshly applied: no drift"
sum_b=$(psql_val "$db" "SELECT checksum FROM ferry.history WHERE migration = '20250102_b'")
like "$sum_b" '^[0-9a-f]{64}$' "the checksum is a SHA-256 (64 hex digits)"
is "$(psql_val "$db" "SELECT rules::text FROM ferry.history WHERE migration = '20250102_b'")" "{rules/names.lua}" \
   "history records the rule files the migration loaded"

# CRLF line endings alone are not drift
crlf() { perl -pi -e 's/\n/\r\n/' "$1"; }
cp "$D/migrations/20250102_b/up.lua" "$TAP_TMPDIR/up.lua.lf"
crlf "$D/migrations/20250102_b/up.lua"
crlf "$D/migrations/20250101_a/up.sql"
crlf "$D/rules/names.lua"
like "$(cat -A "$D/migrations/20250102_b/up.lua")" '\^M\$' "(the files now have CRLF line endings)"
is "$(drift)" "False|False" "CRLF line endings are not reported as drift"
run_ferry --dir "$D" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" ok)
$(status_line 20250102_b applied "$TS" ok)" "status: both ok"

# an edit of the script is drift
printf -- '-- an extra comment\r\n' >>"$D/migrations/20250102_b/up.lua"
is "$(drift)" "False|True" "editing up.lua: drift reported"
run_ferry --dir "$D" status
is "$RC" 0 "status with drift: exit 0"
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" ok)
$(status_line 20250102_b applied "$TS" "CHANGED since applied")" "status: CHANGED since applied"
cp "$TAP_TMPDIR/up.lua.lf" "$D/migrations/20250102_b/up.lua"
is "$(drift)" "False|False" "restoring the file: no drift"

# a new file in the migration (rollback.sql) is drift
put "$D/migrations/20250102_b/rollback.sql" 'SELECT 1;'
is "$(drift)" "False|True" "adding rollback.sql: drift reported"
rm "$D/migrations/20250102_b/rollback.sql"

# an edit of a rule the migration loaded is drift; of another rule, not
printf -- '-- tweak\n' >>"$D/rules/other.lua"
is "$(drift)" "False|False" "editing a rule the migration did not load: no drift"
printf -- '-- tweak\n' >>"$D/rules/names.lua"
is "$(drift)" "False|True" "editing a rule the migration loaded: drift reported"
run_ferry --dir "$D" up
is "$RC|$OUT" "0|Nothing to do: every migration is applied." "drift does not make up re-run anything"
run_ferry --dir "$D" run 20250102
is "$RC" 0 "re-running the migration"
is "$(drift)" "False|False" "after the re-run the new checksum is recorded"
isnt "$(psql_val "$db" "SELECT checksum FROM ferry.history WHERE migration = '20250102_b' ORDER BY id DESC LIMIT 1")" "$sum_b" \
     "...and it differs from the first"

# --- a 'running' row whose process is gone: interrupted, then resumed
db2=$(fresh_db ferry_cli_history_kill)
K=$TAP_TMPDIR/kill
hold=$TAP_TMPDIR/hold
touch "$hold"
put "$K/migrations/20250101_slow/up.lua" "local done = ctx.checkpoint.get() or 0
for i = done + 1, 6 do
  db.transaction(function()
    db.exec('INSERT INTO k VALUES (\$1)', i)
    stats.inc('rows')
    ctx.checkpoint.save(i)
  end)
  -- after the third row, wait (in Lua, not in the database) while the hold file exists
  while i == 3 do
    local f = io.open('$hold')
    if not f then break end
    f:close()
  end
end
"
put "$K/migrations/20250102_next/up.sql" 'INSERT INTO k VALUES (100);'
psql_val "$db2" "CREATE TABLE k (i int PRIMARY KEY)" >/dev/null
"$FERRY" --db "$db2" --dir "$K" up >"$TAP_TMPDIR/kill.out" 2>&1 &
fpid=$!
for _ in $(seq 1 100); do
    [ "$(psql_val "$db2" "SELECT count(*) FROM k" 2>/dev/null)" = 3 ] && break
    sleep 0.1
done
is "$(psql_val "$db2" "SELECT count(*) FROM k")" 3 "the slow migration committed three rows and waits"
kill -9 "$fpid"
wait "$fpid" 2>/dev/null
for _ in $(seq 1 100); do
    [ "$(psql_val "$db2" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry'")" = 0 ] && break
    sleep 0.1
done
is "$(history "$db2")" "20250101_slow|up|running" "after kill -9 the history row still says running"
run_ferry --db "$db2" --dir "$K" status
is "$RC" 0 "status after the kill: exit 0"
is "$OUT" "$STATUS_HEADER
$(status_line 20250101_slow interrupted - "process gone; the next run resumes from its checkpoint")
$(status_line 20250102_next pending - -)" "status shows the run as interrupted"
run_ferry --db "$db2" --dir "$K" --json status
is "$(json_eval "$OUT" '[[m["status"], m["checkpoint"]] for m in j["migrations"]]')" '[["interrupted",true],["pending",false]]' \
   "status --json: interrupted, with a checkpoint"
rm -f "$hold"
run_ferry --db "$db2" --dir "$K" --json up
is "$RC" 0 "the next up: exit 0 (the lock died with the process)"
is "$(json_eval "$OUT" '[[m["migration"], m["ok"], m["stats"]] for m in j["migrations"]]')" \
   '[["20250101_slow",true,{"rows":6}],["20250102_next",true,{}]]' "the next up resumes the interrupted migration, then the next"
is "$(psql_val "$db2" "SELECT string_agg(i::text, ',' ORDER BY i) FROM k")" "1,2,3,4,5,6,100" \
   "every row exactly once: resumed from the checkpoint"
is "$(history "$db2")" "20250101_slow|up|failed
20250101_slow|up|applied
20250102_next|up|applied" "history: the interrupted row is closed as failed when the migration runs again, the resumed run is applied"
is "$(psql_val "$db2" "SELECT error || ' | ' || (finished_at IS NULL) FROM ferry.history WHERE id = (SELECT min(id) FROM ferry.history)")" \
   "interrupted: ferry ended before recording the outcome (killed, its connection lost, or the server crashed); closed when this migration was next run or rolled back | true" \
   "...saying why, its finish time left unknown"
run_ferry --db "$db2" --dir "$K" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_slow applied "$TS" ok)
$(status_line 20250102_next applied "$TS" ok)" "status: both applied"
is "$(psql_val "$db2" "SELECT count(*) FROM ferry.checkpoint")" 0 "the checkpoint is cleared once applied"
# interrupted before its first checkpoint (or an up.sql): the next run starts it again
put "$K/migrations/20250103_more/up.sql" 'INSERT INTO k VALUES (200);'
psql_val "$db2" "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, backend_pid)
                 VALUES ('20250103_more', '20250103', 'more', 'up', 'running', gen_random_uuid(), 0)" >/dev/null
run_ferry --db "$db2" --dir "$K" status
is "$(sed -n 4p <<<"$OUT")" "$(status_line 20250103_more interrupted - "process gone; the next run starts it again")" \
   "status: interrupted with no checkpoint: the next run starts it again"
run_ferry --db "$db2" --dir "$K" up
is "$RC|$(history "$db2" "WHERE migration = '20250103_more'")" "0|20250103_more|up|failed
20250103_more|up|applied" "up applies it, the interrupted row closed as failed"
# killed with a checkpoint, then rolled back rather than resumed: the
# rollback closes the killed run's row, and its rollback.sql deletes the
# checkpoint (as Batch 4's does) -- the row keeps the counters of what that
# run had committed, as when the next run closes it (it had none: the
# counters lived only in the checkpoint)
put "$K/migrations/20250104_killed/up.lua" 'stats.inc("rows")'
put "$K/migrations/20250104_killed/rollback.sql" "DELETE FROM ferry.checkpoint WHERE migration = '20250104_killed';"
psql_val "$db2" "WITH h AS (INSERT INTO ferry.history (migration, version, name, operation, status, run_id, backend_pid)
                            VALUES ('20250104_killed', '20250104', 'killed', 'up', 'running', gen_random_uuid(), 0)
                            RETURNING run_id)
                 INSERT INTO ferry.checkpoint (migration, run_id, position, stats)
                 SELECT '20250104_killed', run_id, '2', '{\"counters\": [[\"rows\", 2]]}' FROM h" >/dev/null
run_ferry --db "$db2" --dir "$K" history 20250104_killed
like "$OUT" $'\n    rows 2$' "history: the killed run shows its checkpoint's counters"
run_ferry --db "$db2" --dir "$K" rollback 20250104_killed
is "$RC" 0 "the killed migration is rolled back"
run_ferry --db "$db2" --dir "$K" history 20250104_killed
like "$OUT" $'^STARTED AT .*\n.* 20250104_killed +up +failed +-\n    rows 2\n    error: interrupted: ferry ended before recording the outcome .*\n.* 20250104_killed +rollback +rolled back +' \
     "history after the rollback: the killed run's row, closed by it, keeps those counters"

# --- a script that leaves the main session inside a transaction (BEGIN
#     without COMMIT): not "applied" with its writes silently lost, but a
#     failure, rolled back, and the history row says so
dbt=$(fresh_db ferry_cli_history_open_tx)
T=$TAP_TMPDIR/opentx
put "$T/migrations/20250101_open/up.lua" 'db.exec("BEGIN")
db.exec("CREATE TABLE left_open (a int)")
'
run_ferry --db "$dbt" --dir "$T" up
is "$RC|$ERR" "1|ferry: 20250101_open: the script left a transaction open on the main session; it was rolled back (end it with COMMIT, or use db.transaction)" \
   "a transaction left open: exit 1, one line saying so"
is "$(history "$dbt")" "20250101_open|up|failed" "the history row says failed, not running or applied"
is "$(psql_val "$dbt" "SELECT to_regclass('left_open') IS NULL")" t "the open transaction's writes were rolled back"
put "$T/migrations/20250101_open/up.lua" 'db.exec("BEGIN")
db.exec("CREATE TABLE left_open (a int)")
db.exec("COMMIT")
'
run_ferry --db "$dbt" --dir "$T" up
is "$RC|$(history "$dbt")" "0|20250101_open|up|failed
20250101_open|up|applied" "once the script commits, up applies it"
# the same on a session of the script's own (db.connect()): its writes were
# rolled back as silently when it was closed or collected
put "$T/migrations/20250102_conn/up.lua" 'local c = db.connect()
c:exec("BEGIN")
c:exec("CREATE TABLE left_open_conn (a int)")
'
run_ferry --db "$dbt" --dir "$T" up
is "$RC|$ERR" "1|ferry: 20250102_conn: the script left a transaction with writes open on a session of its own (db.connect()); it was rolled back (end it with COMMIT, or use conn:transaction)" \
   "a transaction with writes left open on a db.connect() session: exit 1, one line saying so"
is "$(psql_val "$dbt" "SELECT to_regclass('left_open_conn') IS NULL")|$(history "$dbt" "WHERE migration = '20250102_conn'")" \
   "t|20250102_conn|up|failed" "...rolled back, the run recorded failed"
# a read left open (a reader's snapshot, nothing written) is only ended
put "$T/migrations/20250102_conn/up.lua" 'local c = db.connect()
c:exec("BEGIN ISOLATION LEVEL REPEATABLE READ")
c:one("SELECT 1 AS one")
local w = db.connect()
w:exec("BEGIN")
w:exec("CREATE TABLE left_open_conn (a int)")
w:exec("COMMIT")
'
run_ferry --db "$dbt" --dir "$T" up
is "$RC|$ERR|$(psql_val "$dbt" "SELECT to_regclass('left_open_conn') IS NOT NULL")" "0||t" \
   "a read-only transaction left open on a session of its own: no failure"
# a reader whose rows() loop was left open (the first rows read by hand):
# the session is busy, nothing was written; it is left to its close
put "$T/migrations/20250102_conn/up.lua" 'local r = db.reader()
local it = r:rows("SELECT g FROM generate_series(1, 100000) g")
assert(it().g == 1)
'
run_ferry --db "$dbt" --dir "$T" run 20250102_conn
is "$RC|$ERR" "0|" "a reader with a rows() loop left open: no failure (nothing was written)"
# the same on the main session (a first row read by hand, db.rows(...)()):
# nothing was written, yet the run failed 'cannot record the run:
# connection busy: a rows() iteration is in progress on it'; the loop is
# ended and the run recorded
put "$T/migrations/20250102_conn/up.lua" 'local it = db.rows("SELECT g FROM generate_series(1, 100000) g")
assert(it().g == 1)
'
run_ferry --db "$dbt" --dir "$T" run 20250102_conn
is "$RC|$ERR|$(history "$dbt" "WHERE migration = '20250102_conn'" | tail -n 1)" "0||20250102_conn|run|applied" \
   "a rows() loop left open on the main session: no failure, the run recorded applied"
# a reader whose statement failed and whose error the script caught: its
# transaction is read-only, so nothing of the script's is lost with it
put "$T/migrations/20250102_conn/up.lua" 'local r = db.reader()
assert(not pcall(r.one, r, "SELECT 1/0"))
'
run_ferry --db "$dbt" --dir "$T" run 20250102_conn
is "$RC|$ERR" "0|" "a reader left in a failed transaction (the error caught): no failure (a reader writes nothing)"

# a COPY left open (db.copy without w:finish()): its rows were never
# stored, yet the run was recorded applied (on a session of the script's
# own) or failed with 'cannot record the run: connection busy ... (use
# another connection from db.connect())' (on the main one); now it is
# aborted and the run fails with one line saying what was left open
psql_val "$dbt" "CREATE TABLE copy_left (a int)" >/dev/null
put "$T/migrations/20250103_copy/up.lua" 'local w = db.copy("COPY copy_left (a) FROM STDIN")
for i = 1, 10 do w:put(i) end
'
run_ferry --db "$dbt" --dir "$T" run 20250103_copy
is "$RC|$ERR" "1|ferry: 20250103_copy: the script ended with a COPY still open on the main session; it was aborted (end every COPY with w:finish(), which stores its rows)" \
   "a COPY left open on the main session: exit 1, one line saying so"
is "$(psql_val "$dbt" "SELECT count(*) FROM copy_left")|$(history "$dbt" "WHERE migration = '20250103_copy'")" \
   "0|20250103_copy|run|failed" "...nothing stored, the run recorded failed"
put "$T/migrations/20250103_copy/up.lua" 'local c = db.connect()
local w = c:copy("COPY copy_left (a) FROM STDIN")
for i = 1, 10 do w:put(i) end
'
run_ferry --db "$dbt" --dir "$T" run 20250103_copy
is "$RC|$ERR" "1|ferry: 20250103_copy: the script ended with a COPY still open on a session of its own (db.connect()); it was aborted (end every COPY with w:finish(), which stores its rows)" \
   "a COPY left open on a db.connect() session: exit 1, not applied with its rows lost"
is "$(psql_val "$dbt" "SELECT count(*) FROM copy_left")|$(history "$dbt" "WHERE migration = '20250103_copy'" | tail -n 1)" \
   "0|20250103_copy|run|failed" "...nothing stored, the run recorded failed"
put "$T/migrations/20250103_copy/up.lua" 'local w = db.copy("COPY copy_left (a) FROM STDIN")
for i = 1, 10 do w:put(i) end
assert(w:finish() == 10)
'
run_ferry --db "$dbt" --dir "$T" run 20250103_copy
is "$RC|$ERR|$(psql_val "$dbt" "SELECT count(*) FROM copy_left")" "0||10" "once finished, the run stores its rows"
put "$TAP_TMPDIR/copy_left.lua" 'local w = db.copy("COPY copy_left (a) FROM STDIN")
w:put(11)
'
run_ferry --db "$dbt" exec "$TAP_TMPDIR/copy_left.lua"
is "$RC|$ERR" "1|ferry: $TAP_TMPDIR/copy_left.lua: the script ended with a COPY still open on the main session; it was aborted (end every COPY with w:finish(), which stores its rows)" \
   "ferry exec: a COPY left open fails the script too (it exited 0)"

# A checkpoint reads back exactly what was saved: a big integer id (past
# cjson's 14 digits), a whole number as an integer, a table of them.
B=$TAP_TMPDIR/bigpos
dbb=$(fresh_db ferry_cli_history_bigpos)
put "$B/migrations/20250101_pos/up.lua" 'local got = ctx.checkpoint.get()
if got == nil then
  db.transaction(function() ctx.checkpoint.save({id = 1234567890123456, n = 8000, big = 9007199254740993, f = 0.1,
                                                  list = {-9007199254740995, 1.2345678901234567, "12345678901234567890"},
                                                  floats = {2.0^60, 1e16, -2.0^63, 2.0^53, 2.0^53 - 2}}) end)
  error("stop after the save")
end
print(string.format("%s %s %s %s %s", math.type(got.id), got.id, math.type(got.n), got.n, got.f))
print(string.format("%s %d %s %d %s %s", math.type(got.big), got.big, math.type(got.list[1]), got.list[1],
                    got.list[2] == 1.2345678901234567, got.list[3]))
print(string.format("%s %s %s %s %s %s %s %s %s", math.type(got.floats[1]), got.floats[1] == 2.0^60,
                    math.type(got.floats[2]), got.floats[2] == 1e16, math.type(got.floats[3]), got.floats[3] == -2.0^63,
                    math.type(got.floats[4]), got.floats[4] == 2.0^53, math.type(got.floats[5])))
db.transaction(function() ctx.checkpoint.save(9223372036854775807) end)
error("stop again")
'
run_ferry --db "$dbb" --dir "$B" run 20250101_pos
is "$RC" 1 "a run stopped after saving its checkpoint"
is "$(psql_val "$dbb" "SELECT position::text FROM ferry.checkpoint")" \
   '{"f": 0.1, "n": 8000, "id": 1234567890123456, "big": 9007199254740993, "list": [-9007199254740995, 1.2345678901234567, "12345678901234567890"], "floats": [1152921504606846976.0, 10000000000000000.0, -9223372036854775808.0, 9007199254740992.0, 9007199254740990]}' "the position is stored exactly"
run_ferry --db "$dbb" --dir "$B" -q run 20250101_pos
is "$OUT" "integer 1234567890123456 integer 8000 0.1
integer 9007199254740993 integer -9007199254740995 true 12345678901234567890
float true float true float true float true integer" \
   "get() gives back the ids exactly (past 2^53 too, in lists too), whole numbers as integers, text as text, big floats as floats (2^53 too; a whole float below it as an integer)"
is "$(psql_val "$dbb" "SELECT position::text FROM ferry.checkpoint")" "9223372036854775807" "a 64-bit integer is stored exactly"
put "$B/migrations/20250101_pos/up.lua" 'print(math.type(ctx.checkpoint.get()), ctx.checkpoint.get())'
run_ferry --db "$dbb" --dir "$B" -q run 20250101_pos
is "$OUT" "integer	9223372036854775807" "...and read back exactly"
put "$B/migrations/20250101_pos/up.lua" 'db.transaction(function() ctx.checkpoint.save({[1001] = 5, [2002] = 7}) end)'
run_ferry --db "$dbb" --dir "$B" run 20250101_pos
like "$ERR" 'up\.lua:1: ctx\.checkpoint\.save: a position table must be a list \(keys 1\.\.n\) or have text keys only' \
     "a position keyed by ids (which JSON would give back as text) is refused"

# Text that is not valid UTF-8 (a script cutting a character in half) in a
# row error or in the error that ends a run: the run is still recorded,
# the bad bytes shown as U+FFFD.
U=$TAP_TMPDIR/utf8
R=$'\xef\xbf\xbd'     # U+FFFD
dbu=$(fresh_db ferry_cli_history_utf8)
put "$U/migrations/20250101_rowerr/up.lua" 'stats.error("row-\xff", ("h\xc3\xa9llo"):sub(1, 2))'
put "$U/migrations/20250102_err/up.lua" 'error("cut: " .. ("\xc3\xa9"):sub(1, 1))'
run_ferry --db "$dbu" --dir "$U" --json run 20250101_rowerr
is "$RC|$OUT" '1|{"migration":"20250101_rowerr","mode":"apply","ok":false,"status":"failed","stats":{"errors":1},"errors":[{"key":"row-'"$R"'","message":"h'"$R"'"}],"duration_ms":'"$(sed -n 's/.*"duration_ms":\([0-9]*\)}$/\1/p' <<<"$OUT")"'}' \
   "a row error with bad bytes: --json is valid, U+FFFD in their place"
is "$(psql_val "$dbu" "SELECT status || ' ' || (stats->'errors')::text FROM ferry.history WHERE migration = '20250101_rowerr'")" \
   'failed [{"key": "row-'"$R"'", "message": "h'"$R"'"}]' "...and the run is recorded as failed"
run_ferry --db "$dbu" --dir "$U" run 20250102_err
is "$RC" 1 "an error with bad bytes ends the run: exit 1"
is "$(psql_val "$dbu" "SELECT status || ' ' || split_part(error, E'\\n', 1) FROM ferry.history WHERE migration = '20250102_err'")" \
   "failed migrations/20250102_err/up.lua:1: cut: $R" "...and it is recorded, the bad byte as U+FFFD"

# --- os.exit in a migration's script would end ferry before the run is
#     recorded (exit 0, the row left 'running', the rest of up skipped):
#     it raises instead, and the run fails as for any error
dbx=$(fresh_db ferry_cli_history_exit)
X=$TAP_TMPDIR/osexit
put "$X/migrations/20250101_exit/up.lua" 'db.exec("CREATE TABLE before_exit (a int)")
os.exit(0)
'
put "$X/migrations/20250102_after/up.sql" 'CREATE TABLE after_exit (a int);'
EXIT_MSG="os.exit is not available to a migration's script (it would end ferry before the run is recorded or reported): return to end the script, or raise an error to fail it"
run_ferry --db "$dbx" --dir "$X" up
is "$RC|$ERR" "1|ferry: migrations/20250101_exit/up.lua:2: $EXIT_MSG" "os.exit(0) in up.lua: exit 1, one line saying why"
is "$(history "$dbx")" "20250101_exit|up|failed" "...recorded failed (not left running), up stops there"
put "$X/migrations/20250101_exit/down.lua" 'os.exit(true)'
run_ferry --db "$dbx" --dir "$X" rollback 20250101
is "$RC|$ERR" "1|note: 20250101_exit is not recorded as applied; running its rollback anyway
ferry: 20250101_exit: rollback failed: migrations/20250101_exit/down.lua:1: $EXIT_MSG" \
   "os.exit in down.lua: the rollback fails and is recorded"
is "$(history "$dbx" "WHERE operation = 'rollback'")" "20250101_exit|rollback|failed" "...as failed"
put "$X/migrations/20250101_exit/validate.lua" 'check("first", true)
os.exit(0)'
run_ferry --db "$dbx" --dir "$X" validate 20250101
is "$RC|$(tail -n 2 <<<"$OUT")" "1|✗ FAIL validate.lua stopped: migrations/20250101_exit/validate.lua:2: $EXIT_MSG
2 check(s), 1 failed" "os.exit in validate.lua: validate fails (exit 1), not exit 0 with its checks unreported"
put "$X/e.lua" 'os.exit(7)'
run_ferry exec "$X/e.lua"
is "$RC|$ERR" "7|" "exec: os.exit stays the script's own (no history to record)"

done_testing
