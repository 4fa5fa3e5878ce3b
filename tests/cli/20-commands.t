#!/usr/bin/env bash
# The commands against a real database: status, up [--to], run (id and
# prefix), rollback, validate, baseline, exec; the rows of ferry.history;
# the repository's own SQL migrations.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_commands)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE t (x int, src text);
INSERT INTO t VALUES (1, '"'a'"');
'
put "$D/migrations/20250101_a/rollback.sql" 'DROP TABLE t;'
VALIDATE_OK='check("t has rows", function()
  local r = db.one("SELECT count(*) AS n FROM t")
  return r.n > 0, r.n .. " rows"
end)
check("constant", true)
'
put "$D/migrations/20250101_a/validate.lua" "$VALIDATE_OK"
put "$D/migrations/20250102_b/up.lua" 'stats.declare{"inserted", "skipped"}
local n = db.exec("INSERT INTO t SELECT g, $1 FROM generate_series(2, 3) g", "b")
stats.inc("inserted", n)
'
put "$D/migrations/20250102_b/down.lua" 'stats.inc("deleted", db.exec("DELETE FROM t WHERE src = $1", "b"))'
put "$D/migrations/20250103_c/up.sql" 'INSERT INTO t VALUES (4, '"'c'"');'
rows() { psql_val "$db" "SELECT string_agg(x || ':' || src, ' ' ORDER BY x, src) FROM t"; }

# --- status on a fresh database: all pending, nothing written
run_ferry --dir "$D" status
is "$RC|$ERR" "0|" "status on a fresh database: exit 0"
is "$OUT" "$STATUS_HEADER
$(status_line 20250101_a pending - -)
$(status_line 20250102_b pending - -)
$(status_line 20250103_c pending - -)" "status: every migration pending"
is "$(psql_val "$db" "SELECT to_regclass('ferry.history') IS NULL")" "t" "status writes nothing"

# --- up --to VERSION
run_ferry --dir "$D" up --to 20250102
is "$RC|$ERR" "0|" "up --to 20250102: exit 0"
like "$OUT" $'^==> 20250101_a\n\u2713 20250101_a applied in [0-9]+\\.[0-9]{2} s\n==> 20250102_b\n\n\U0001F4CA Statistics:\n   Inserted:  2\n   Skipped:   0\n\u2713 20250102_b applied in [0-9]+\\.[0-9]{2} s$' \
     "up --to: runs a and b in order with b's statistics"
is "$(rows)" "1:a 2:b 3:b" "up --to: the data of a and b"
is "$(history "$db")" "20250101_a|up|applied
20250102_b|up|applied" "history: a and b applied by up"
run_ferry --dir "$D" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" ok)
$(status_line 20250102_b applied "$TS" ok)
$(status_line 20250103_c pending - -)" "status: a, b applied (checksum ok), c pending"

# --- the history row, column by column
me=$(uname -n)
ver=$("$FERRY" --version)
"$FERRY" --dir "$D" up --to 20250103_c >"$TAP_TMPDIR/bg.out" 2>&1 &
bgpid=$!   # the test runner's wrapper execs ferry: this is ferry's pid
wait "$bgpid"
is "$?" 0 "up --to 20250103_c (a full id): exit 0"
is "$(rows)" "1:a 2:b 3:b 4:c" "c ran"
row=$(psql_val "$db" "SELECT concat_ws('|', migration, version, name, operation, status,
        checksum ~ '^[0-9a-f]{64}\$', run_id IS NOT NULL, rules, finished_at >= started_at,
        started_at > now() - interval '1 minute', stats::text, coalesce(error, '<null>'), host,
        pid, backend_pid > 0, ferry_version) FROM ferry.history WHERE migration = '20250103_c'")
is "$row" "20250103_c|20250103|c|up|applied|t|t|{}|t|t|{\"stats\": {}, \"errors\": []}|<null>|$me|$bgpid|t|${ver#ferry }" \
   "history row: migration, version, name, operation, status, checksum, run_id, times, stats, host, pid, backend pid, version"
v=$(psql_val "$db" "SELECT stats::text FROM ferry.history WHERE migration = '20250102_b'")
is "$v" '{"stats": {"skipped": 0, "inserted": 2}, "errors": []}' "history row: the stats summary as JSON"
v=$(psql_val "$db" "SELECT count(DISTINCT run_id) FROM ferry.history")
is "$v" 3 "each run has its own run_id"

run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "0|Nothing to do: every migration is applied.|" "up with nothing pending"

# --- run: full id and unique prefix, whether applied or not
run_ferry --dir "$D" run 20250102_b
is "$RC|$ERR" "0|" "run by full id: exit 0"
like "$OUT" $'^==> 20250102_b\n' "run prints the migration"
is "$(rows)" "1:a 2:b 2:b 3:b 3:b 4:c" "run re-runs an applied migration"
run_ferry --dir "$D" run 20250103
is "$RC|$ERR" "0|" "run by unique prefix: exit 0"
is "$(rows)" "1:a 2:b 2:b 3:b 3:b 4:c 4:c" "the prefix named 20250103_c"
is "$(history "$db" "WHERE operation = 'run'")" "20250102_b|run|applied
20250103_c|run|applied" "history: operation run"

# --- a failing run: exit 1, history 'failed' with the error
put "$D/migrations/20250104_bad/up.sql" 'INSERT INTO t VALUES (5, '"'bad'"');
INSERT INTO nope VALUES (1);'
run_ferry --dir "$D" up
is "$RC" 1 "up with a failing SQL migration: exit 1"
is "$ERR" 'ferry: migrations/20250104_bad/up.sql:2: script failed: relation "nope" does not exist [SQLSTATE 42P01]' \
   "one line naming the migration's file, the line and PostgreSQL's error"
is "$(rows)" "1:a 2:b 2:b 3:b 3:b 4:c 4:c" "up.sql runs in one transaction: nothing of it stays"
v=$(psql_val "$db" "SELECT status || '|' || (error LIKE '%relation \"nope\" does not exist%') || '|' || (finished_at IS NOT NULL) FROM ferry.history WHERE migration = '20250104_bad'")
is "$v" "failed|true|true" "history: failed, with the error"
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | tail -n 1)" "$(status_line 20250104_bad failed - -)" "status shows it failed"
rm -rf "$D/migrations/20250104_bad"
run_ferry --dir "$D" status
is "$(tail -n 1 <<<"$OUT")" "$(status_line 20250104_bad failed - "file missing from migrations/")" \
   "status lists a recorded migration whose folder is gone"
psql_val "$db" "DELETE FROM ferry.history WHERE migration = '20250104_bad'" >/dev/null

# --- validate: pass and fail; it writes nothing
n_hist=$(psql_val "$db" "SELECT count(*) FROM ferry.history")
run_ferry --dir "$D" validate 20250101
is "$RC|$ERR" "0|" "validate (prefix) passing: exit 0"
is "$OUT" "==> validating 20250101_a
✓ PASS t has rows  (7 rows)
✓ PASS constant
2 check(s), 0 failed" "validate prints each check with PASS"
run_ferry --dir "$D" --json validate 20250101_a
is "$RC" 0 "validate --json: exit 0"
is "$OUT" '{"migration":"20250101_a","mode":"validate","ok":true,"checks":[{"name":"t has rows","ok":true,"detail":"7 rows"},{"name":"constant","ok":true}]}' \
   "validate --json: exactly one object"
put "$D/migrations/20250101_a/validate.lua" 'check("t has rows", function()
  local r = db.one("SELECT count(*) AS n FROM t")
  return r.n > 100, r.n .. " rows"
end)
check("cannot write", function() db.exec("DELETE FROM t") return true end)
check("constant", true)
'
run_ferry --dir "$D" validate 20250101_a
is "$RC" 1 "validate with failing checks: exit 1"
like "$OUT" $'^==> validating 20250101_a\n\u2717 FAIL t has rows  \\(7 rows\\)\n\u2717 FAIL cannot write  \\(error: [^\n]*cannot execute DELETE in a read-only transaction \\[SQLSTATE 25006\\]\\)\n\u2713 PASS constant\n3 check\\(s\\), 2 failed$' \
     "validate prints FAIL lines; checks run read-only"
is "$(rows)" "1:a 2:b 2:b 3:b 3:b 4:c 4:c" "a check could not write"
# every session a check opens is read-only, not only the main one
put "$D/migrations/20250101_a/validate.lua" 'check("flags", function()
  return db.read_only == true and ctx.dry_run == true, tostring(db.read_only) .. " " .. tostring(ctx.dry_run)
end)
check("other session cannot write", function()
  local c <close> = db.connect()
  c:exec("DELETE FROM t")
  return true
end)
'
run_ferry --dir "$D" validate 20250101_a
like "$OUT" $'^==> validating 20250101_a\n\u2713 PASS flags  \\(true true\\)\n\u2717 FAIL other session cannot write  \\(error: [^\n]*cannot execute DELETE in a read-only transaction \\[SQLSTATE 25006\\]\\)\n2 check\\(s\\), 1 failed$' \
     "validate: db.read_only and ctx.dry_run are true; a db.connect() session is read-only too"
is "$(rows)" "1:a 2:b 2:b 3:b 3:b 4:c 4:c" "a check could not write through another session"
put "$D/migrations/20250101_a/validate.lua" 'check("first", true)
error("validate script stops here")
'
run_ferry --dir "$D" validate 20250101_a
is "$RC" 1 "validate.lua raising: exit 1"
like "$OUT" $'\u2717 FAIL validate.lua stopped: migrations/20250101_a/validate.lua:2: validate script stops here\n2 check\\(s\\), 1 failed$' \
     "validate.lua raising is reported as a failed check"
# a check without its name (check(fn)) was a FAIL named "function:
# 0x55...", and under --json it stopped validate with "json.encode_ordered:
# a function is not a JSON value"; it is refused at its line, as a script
# error.  A number is a name, as its text.
put "$D/migrations/20250101_a/validate.lua" 'check(7, true)
check(function() return true end)
'
run_ferry --dir "$D" validate 20250101_a
is "$RC|$OUT" $'1|==> validating 20250101_a\n\u2713 PASS 7\n\u2717 FAIL validate.lua stopped: migrations/20250101_a/validate.lua:2: check(name, fn): the name is a string, not a function (check("what it checks", fn))\n2 check(s), 1 failed' \
   "check(fn), its name left out: refused at its line"
run_ferry --dir "$D" --json validate 20250101_a
is "$RC|$(json_eval "$OUT" '[c["name"] for c in j["checks"]]')" '1|["7","validate.lua"]' \
   "...and under --json the object is written, every name a string"
# a check's name or detail made from data, cut inside a character
# (r.name:sub(1, 4)), went into the --json object as it was: bytes that
# are not UTF-8, which no JSON reader takes.  They read U+FFFD, as in an
# error's text.
put "$D/migrations/20250101_a/validate.lua" 'check(("caf\u{e9}"):sub(1, 4), true, "det\xff")
check("nul", function() return false, "a\0b" end)
'
run_ferry --dir "$D" --json validate 20250101_a
is "$RC|$(json_eval "$OUT" '"/".join(c["name"] + "=" + c["detail"] for c in j["checks"])')" $'1|caf\ufffd=det\ufffd/nul=a\ufffdb' \
   "--json validate: a name or detail that is not UTF-8 reads U+FFFD, the object valid JSON"
run_ferry --dir "$D" validate 20250101_a
is "$OUT" $'==> validating 20250101_a\n\u2713 PASS caf\ufffd  (det\ufffd)\n\u2717 FAIL nul  (a\ufffdb)\n2 check(s), 1 failed' \
   "...and so in the text lines"
is "$(psql_val "$db" "SELECT count(*) FROM ferry.history")" "$n_hist" "validate writes no history"
run_ferry --dir "$D" status
like "$(norm_times "$OUT")" "$(status_line 20250101_a applied "$TS" 'CHANGED since applied')" "editing validate.lua changes the checksum"
put "$D/migrations/20250101_a/validate.lua" "$VALIDATE_OK"
run_ferry --dir "$D" status
like "$(norm_times "$OUT")" "$(status_line 20250101_a applied "$TS" ok)" "...and restoring it restores it"

# --- rollback (rollback.sql and down.lua)
run_ferry --dir "$D" rollback 20250102
is "$RC|$ERR" "0|note: applied after 20250102_b, and left applied: 20250103_c (if it stands on it, roll it back first, newest first)" \
   "rollback with down.lua: exit 0, noting the later migration it leaves applied"
is "$OUT" "==> rolling back 20250102_b

📊 Statistics:
   Deleted:  4
✓ 20250102_b rolled back" "rollback output (down.lua's counters, as a run's)"
is "$(rows)" "1:a 4:c 4:c" "down.lua removed b's rows"
v=$(psql_val "$db" "SELECT operation || '|' || status || '|' || stats::text FROM ferry.history ORDER BY id DESC LIMIT 1")
is "$v" 'rollback|rolled back|{"stats": {"deleted": 4}, "errors": []}' "history: rollback row with its stats"
run_ferry --dir "$D" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" ok)
$(status_line 20250102_b "rolled back" - -)
$(status_line 20250103_c applied "$TS" ok)" "status: b rolled back"
run_ferry --dir "$D" up
is "$RC" 0 "up after a rollback: exit 0"
like "$OUT" $'^==> 20250102_b\n' "up re-applies only the rolled-back migration"
unlike "$OUT" '20250101_a|20250103_c' "...and nothing else"
is "$(rows)" "1:a 2:b 3:b 4:c 4:c" "b's rows are back"

# a failing rollback: exit 1, recorded, the migration stays applied
psql_val "$db" "ALTER TABLE t RENAME TO t_moved" >/dev/null
put "$D/migrations/20250101_a/rollback.sql" 'DROP TABLE t;'
run_ferry --dir "$D" rollback 20250101_a
is "$RC" 1 "a failing rollback: exit 1"
like "$ERR" $'^note: applied after 20250101_a, and left applied: 20250103_c, 20250102_b \\(if they stand on it, roll them back first, newest first\\)\nferry: 20250101_a: rollback failed: .*table "t" does not exist \\[SQLSTATE 42P01\\]$' \
     "one line saying so (after the note of the later migrations, newest first)"
v=$(psql_val "$db" "SELECT operation || '|' || status FROM ferry.history ORDER BY id DESC LIMIT 1")
is "$v" "rollback|failed" "history: rollback failed"
run_ferry --dir "$D" status
like "$(norm_times "$OUT")" "$(status_line 20250101_a applied "$TS" ok)" "a failed rollback leaves the migration applied"
psql_val "$db" "ALTER TABLE t_moved RENAME TO t" >/dev/null
run_ferry --dir "$D" rollback 20250101_a
is "$RC" 0 "rollback.sql: exit 0"
is "$(psql_val "$db" "SELECT to_regclass('t') IS NULL")" "t" "rollback.sql dropped the table"
v=$(psql_val "$db" "SELECT operation || '|' || status FROM ferry.history ORDER BY id DESC LIMIT 1")
is "$v" "rollback|rolled back" "history: rolled back"

# --- baseline
db2=$(fresh_db ferry_cli_commands_base)
run_ferry --db "$db2" --dir "$D" baseline 20250102
is "$RC|$ERR" "0|" "baseline VERSION: exit 0"
is "$OUT" "baselined 20250101_a (recorded as applied, not run)
baselined 20250102_b (recorded as applied, not run)" "baseline lists what it recorded"
is "$(psql_val "$db2" "SELECT to_regclass('t') IS NULL")" "t" "baseline runs nothing"
is "$(history "$db2")" "20250101_a|baseline|applied
20250102_b|baseline|applied" "history: baseline rows, applied"
run_ferry --db "$db2" --dir "$D" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" baseline)
$(status_line 20250102_b applied "$TS" baseline)
$(status_line 20250103_c pending - -)" "status marks baselined migrations"
run_ferry --db "$db2" --dir "$D" baseline 20250102_b
is "$RC|$OUT" "0|Nothing to baseline: every migration up to 20250102_b is applied." "baseline again: nothing to do"
psql_val "$db2" "CREATE TABLE t (x int, src text)" >/dev/null
run_ferry --db "$db2" --dir "$D" up
is "$RC" 0 "up after baseline: exit 0"
is "$(grep -c '^==> ' <<<"$OUT")|$(grep '^==> ' <<<"$OUT")" "1|==> 20250103_c" "up after baseline runs only what was not baselined"
is "$(psql_val "$db2" "SELECT string_agg(x || ':' || src, ' ') FROM t")" "4:c" "only c's data"
run_ferry --db "$db2" --dir "$D" --json baseline 20250103_c
is "$RC|$OUT" '0|{"ok":true,"baselined":[]}' "baseline --json"

# --- a failed re-run of an applied migration leaves it applied: its
# transaction rolled back (up.sql), or the data it had is still there; `up`
# must not take it for pending and run it again and again
F=$TAP_TMPDIR/rerun
put "$F/migrations/1_schema/up.sql" 'CREATE TABLE r (x int);'
put "$F/migrations/2_data/up.sql" 'INSERT INTO r VALUES (2);'
db5=$(fresh_db ferry_cli_commands_rerun)
run_ferry --db "$db5" --dir "$F" up --to 1
is "$RC" 0 "rerun: 1_schema applied"
run_ferry --db "$db5" --dir "$F" run 1_schema
is "$RC" 1 "rerun: running an applied up.sql again fails (the table exists)"
like "$ERR" '^ferry: migrations/1_schema/up\.sql: script failed: relation "r" already exists \[SQLSTATE 42P07\]$' \
     "... and the error names up.sql, not an engine file"
run_ferry --db "$db5" --dir "$F" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 1_schema applied "$TS" "ok; a later run failed")
$(status_line 2_data pending - -)" "status: still applied, saying a later run failed"
run_ferry --db "$db5" --dir "$F" up
is "$RC|$(grep '^==> ' <<<"$OUT")" "0|==> 2_data" "up runs only what is pending, not the applied migration whose re-run failed"
is "$(history "$db5")" "1_schema|up|applied
1_schema|run|failed
2_data|up|applied" "history keeps the failed run"
# an interrupted re-run (a running row whose process is gone) of an
# applied migration: the same
# (the failed run's row taken out, so that only the interrupted one counts)
psql_val "$db5" "DELETE FROM ferry.history WHERE migration = '1_schema' AND status = 'failed'" >/dev/null
run_ferry --db "$db5" --dir "$F" status
is "$(norm_times "$OUT" | sed -n 2p)" "$(status_line 1_schema applied "$TS" ok)" "(without it: applied, no note)"
psql_val "$db5" "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, backend_pid)
                 VALUES ('1_schema', '1', 'schema', 'run', 'running', gen_random_uuid(), 0) RETURNING status" >"$TAP_TMPDIR/ins"
is "$(cat "$TAP_TMPDIR/ins")" running "(a running row of a gone process is in the history)"
is "$(history "$db5" "WHERE migration = '1_schema'")" "1_schema|up|applied
1_schema|run|running" "...after the applied run"
run_ferry --db "$db5" --dir "$F" status
is "$(norm_times "$OUT" | sed -n 2p)" "$(status_line 1_schema applied "$TS" "ok; a later run failed")" \
   "status: an interrupted re-run leaves it applied, noted"
# a re-run of a data migration interrupted after a batch committed left a
# resume point, which the next `ferry run` resumes from: said, as for a
# pending migration's (status --json has checkpoint: true)
psql_val "$db5" "INSERT INTO ferry.checkpoint (migration, run_id, position) VALUES ('1_schema', gen_random_uuid(), '1')" >/dev/null
run_ferry --db "$db5" --dir "$F" status
is "$(norm_times "$OUT" | sed -n 2p)" \
   "$(status_line 1_schema applied "$TS" "ok; a later run failed; the next run resumes from its checkpoint")" \
   "status: ...and, with a resume point saved, that the next run resumes from it"
psql_val "$db5" "DELETE FROM ferry.checkpoint" >/dev/null
# a rollback after the failed re-run makes it pending; up applies it again
put "$F/migrations/1_schema/rollback.sql" 'DROP TABLE r CASCADE;'
run_ferry --db "$db5" --dir "$F" rollback 1_schema
is "$RC" 0 "rollback after a failed re-run: exit 0"
run_ferry --db "$db5" --dir "$F" status
is "$(norm_times "$OUT" | sed -n 2p)" "$(status_line 1_schema "rolled back" - -)" "status: rolled back"
run_ferry --db "$db5" --dir "$F" up
is "$RC|$(grep '^==> ' <<<"$OUT")" "0|==> 1_schema" "up applies it again"

# --- --to and baseline stop where the migrations sort: by number, then by
# name (a version of fewer digits is a smaller number), and at an id
# exactly, not at the other migrations of its version.
N=$TAP_TMPDIR/numeric
for m in 1_one 2_two 2_zwei 10_ten; do
    put "$N/migrations/$m/up.sql" "INSERT INTO seen VALUES ('$m');"
done
put "$N/migrations/0_setup/up.sql" 'CREATE TABLE seen (m text);'
db3=$(fresh_db ferry_cli_commands_numeric)
seen() { psql_val "$db3" "SELECT string_agg(m, ' ' ORDER BY m) FROM seen"; }
run_ferry --db "$db3" --dir "$N" up --to 2_two
is "$RC|$(grep '^==> ' <<<"$OUT" | tr '\n' ' ')" "0|==> 0_setup ==> 1_one ==> 2_two " \
   "up --to an id: up to that migration, not the others of its version, not 10 (10 > 2)"
run_ferry --db "$db3" --dir "$N" up --to 2
is "$RC|$(grep '^==> ' <<<"$OUT" | tr '\n' ' ')" "0|==> 2_zwei " "up --to a version: the rest of that version, not 10"
is "$(seen)" "1_one 2_two 2_zwei" "10_ten has not run"
db4=$(fresh_db ferry_cli_commands_numeric_base)
run_ferry --db "$db4" --dir "$N" baseline 2
is "$RC|$OUT" "0|baselined 0_setup (recorded as applied, not run)
baselined 1_one (recorded as applied, not run)
baselined 2_two (recorded as applied, not run)
baselined 2_zwei (recorded as applied, not run)" "baseline 2: never 10_ten, which has not run"
is "$(history "$db4")" "0_setup|baseline|applied
1_one|baseline|applied
2_two|baseline|applied
2_zwei|baseline|applied" "history: 10_ten is not recorded as applied"

# --- exec
put "$D/script.lua" 'print("args", ...)
print("ctx.args", table.concat(ctx.args, ","))
print("answer", db.one("SELECT 40 + $1::int AS n", 2).n)
return 3
'
run_ferry --db "$db2" --dir "$D" exec "$D/script.lua" one two
is "$RC|$ERR" "3|" "exec: the script's integer result is the exit code"
is "$OUT" $'args\tone\ttwo\nctx.args\tone,two\nanswer\t42' "exec passes the arguments and the db API"
for r in 256 -1 1000; do
    put "$D/script.lua" "return $r"
    run_ferry exec "$D/script.lua"
    is "$RC|$ERR" "1|exec: $r is no exit code (0-255); exiting 1" "exec: return $r is exit 1, not what 8 bits make of it"
done
# a number with a fraction is no exit code either: it was exit 0, the
# script's bug taken for success
put "$D/script.lua" "return 2.5"
run_ferry exec "$D/script.lua"
is "$RC|$ERR" "1|exec: 2.5 is no exit code (0-255); exiting 1" "exec: return 2.5 is exit 1 (was exit 0)"
put "$D/script.lua" "return 3.0"
run_ferry exec "$D/script.lua"
is "$RC|$ERR" "3|" "exec: return 3.0 is exit 3"
put "$D/script.lua" 'print("fine")'
run_ferry --db "$db2" exec "$D/script.lua"
is "$RC|$OUT" "0|fine" "exec: exit 0 without a result"
# a transaction the script leaves open: rolled back, and said (it was
# rolled back silently, exit 0)
psql_val "$db2" "CREATE TABLE IF NOT EXISTS exec_keep (v int)" >/dev/null
put "$D/script.lua" 'db.exec("BEGIN")
db.exec("INSERT INTO exec_keep VALUES (5)")'
run_ferry --db "$db2" exec "$D/script.lua"
is "$RC|$ERR" "1|ferry: $D/script.lua: the script left a transaction open on the main session; it was rolled back (end it with COMMIT, or use db.transaction)" \
   "exec: a transaction left open is rolled back, exit 1, one line saying so"
is "$(psql_val "$db2" "SELECT count(*) FROM exec_keep")" 0 "...nothing of it stored"
put "$D/script.lua" 'db.exec("BEGIN")
db.exec("INSERT INTO exec_keep VALUES (6)")
db.exec("COMMIT")'
run_ferry --db "$db2" exec "$D/script.lua"
is "$RC|$ERR|$(psql_val "$db2" "SELECT string_agg(v::text, ',') FROM exec_keep")" "0||6" "exec: a transaction committed by the script: stored"
put "$D/script.lua" 'print("half")
error("exec fails")'
run_ferry exec "$D/script.lua"
is "$RC|$OUT|$ERR" "1|half|ferry: $D/script.lua:2: exec fails" "exec: a Lua error is exit 1 with file:line"
put "$D/script.lua" 'local function rule() error({reason = "unsupported", n = 2}) end
rule()'
run_ferry exec "$D/script.lua"
is "$RC|$ERR" '1|ferry: '"$D"'/script.lua:1: error object {"n":2,"reason":"unsupported"}' \
   "exec: an error object (a table) is exit 1, shown as JSON at the line that raised it"
put "$D/script.lua" 'local function f() error({reason = "x"}) end
db.transaction(function()
  f()
end)'
run_ferry --db "$db2" exec "$D/script.lua"
is "$RC|$ERR" '1|ferry: '"$D"'/script.lua:1: error object {"reason":"x"}' \
   "exec: an error object raised inside db.transaction is shown where it was raised, not at the transaction"
put "$D/script.lua" 'local E = {reason = "shared"}
pcall(db.transaction, function()
  error(E)
end)
local function again()
  error(E)
end
again()'
run_ferry --db "$db2" exec "$D/script.lua"
is "$RC|$ERR" '1|ferry: '"$D"'/script.lua:6: error object {"reason":"shared"}' \
   "exec: the same error object raised again elsewhere is shown where it was raised last"
put "$D/script.lua" 'error({code = 404, message = "not found"})'
run_ferry exec "$D/script.lua"
is "$RC|$ERR" "1|ferry: $D/script.lua:1: not found" "exec: a table's code is not an exit code; its message is shown"
put "$D/script.lua" 'error(setmetatable({}, {__tostring = function() return "custom text" end}))'
run_ferry exec "$D/script.lua"
is "$RC|$ERR" "1|ferry: $D/script.lua:1: custom text" "exec: an error object with __tostring is shown by it"
run_ferry exec "$D/nope.lua"
is "$RC" 2 "exec: a missing file is exit 2"
like "$ERR" "^ferry: cannot read $D/nope.lua: " "...said in one line"

# --- a script that closes the main connection (db.open() returns it): the
# connection stays open, and the run is recorded as applied
D2=$TAP_TMPDIR/proj-close
put "$D2/migrations/20250101_closer/up.lua" 'do
  local c <close> = db.open()
  c:exec("SELECT 1")
end
print(db.open():close())
db.exec("SELECT 1")'
dbc=$(fresh_db ferry_cli_commands_close)
run_ferry --db "$dbc" --dir "$D2" run 20250101_closer
is "$RC|$ERR" "0|" "a script closing the main connection: exit 0, no error"
like "$OUT" "nil	cannot close the main connection: ferry closes it when the command ends" \
     "...main:close() returned nil and why"
is "$(history "$dbc")" "20250101_closer|run|applied" "...and the run is recorded as applied"

# --- a script saved with a UTF-8 byte order mark (some editors add one)
# runs, as lua and require run such a file (it was a syntax error)
B2=$TAP_TMPDIR/proj-bom
put "$B2/migrations/20250101_bom/up.lua" $'\xef\xbb\xbfprint("bom ok")\nerror("line two")'
dbb2=$(fresh_db ferry_cli_commands_bom)
run_ferry --db "$dbb2" --dir "$B2" run 20250101_bom
is "$RC|$(grep -c 'bom ok' <<<"$OUT")|$ERR" "1|1|ferry: migrations/20250101_bom/up.lua:2: line two" \
   "a script starting with a BOM runs, its line numbers unchanged"
put "$B2/migrations/20250102_bomsql/up.sql" $'\xef\xbb\xbfCREATE TABLE bom_t (x int);'
run_ferry --db "$dbb2" --dir "$B2" run 20250102_bomsql
is "$RC|$ERR|$(psql_val "$dbb2" "SELECT to_regclass('bom_t') IS NOT NULL")" "0||t" "an up.sql starting with a BOM runs too"

# --- the repository's SQL migrations
db3=$(fresh_db ferry_cli_commands_repo)
run_ferry --db "$db3" --dir "$REPO_ROOT" up --to 20251108
is "$RC|$ERR" "0|" "repo migrations: up --to 20251108 exit 0"
is "$(grep '^==> ' <<<"$OUT")" "==> 20251101_schema
==> 20251105_fts_indexes
==> 20251108_link_customers" "repo migrations: schema, fts indexes, link customers"
v=$(psql_val "$db3" "SELECT string_agg(c, ' ' ORDER BY c) FROM unnest(ARRAY['\"Customer\"','\"Lead\"','\"Audit\"','\"Conversation\"','\"Message\"','\"MemoryNote\"','\"Message_content_fts_idx\"','\"MemoryNote_content_fts_idx\"']) c WHERE to_regclass(c) IS NOT NULL")
is "$v" '"Audit" "Conversation" "Customer" "Lead" "MemoryNote" "MemoryNote_content_fts_idx" "Message" "Message_content_fts_idx"' \
   "repo migrations: the tables and indexes exist"
is "$(history "$db3")" "20251101_schema|up|applied
20251105_fts_indexes|up|applied
20251108_link_customers|up|applied" "repo migrations: history"
run_ferry --db "$db3" --dir "$REPO_ROOT" status
is "$(norm_times "$OUT" | head -n 4)" "$STATUS_HEADER
$(status_line 20251101_schema applied "$TS" ok)
$(status_line 20251105_fts_indexes applied "$TS" ok)
$(status_line 20251108_link_customers applied "$TS" ok)" "repo migrations: status"
psql_val "$db3" "INSERT INTO \"Customer\" (id, phone) VALUES ('00000000-0000-0000-0000-000000000001', '555');
                 INSERT INTO \"Lead\" (id, channel, phone) VALUES ('00000000-0000-0000-0000-0000000000a1', 'sms', '555')" >/dev/null
run_ferry --db "$db3" --dir "$REPO_ROOT" run 20251108
is "$RC" 0 "repo migrations: run 20251108 (prefix) again"
is "$(psql_val "$db3" "SELECT customer_id FROM \"Lead\"")" "00000000-0000-0000-0000-000000000001" "link_customers linked the lead"
run_ferry --db "$db3" --dir "$REPO_ROOT" rollback 20251101_schema
is "$RC" 0 "repo migrations: rollback 20251101_schema"
is "$(psql_val "$db3" "SELECT to_regclass('\"Customer\"') IS NULL AND to_regclass('\"Message\"') IS NULL")" "t" \
   "repo migrations: tables dropped"

# --- a migration older than one already applied (it came in late, from a
# branch merged after): up applies it, and says it runs out of version order
dbo=$(fresh_db ferry_cli_out_of_order)
O=$TAP_TMPDIR/ooo
put "$O/migrations/20250101_a/up.sql" 'CREATE TABLE o (i int);'
put "$O/migrations/20250103_c/up.sql" 'INSERT INTO o VALUES (3);'
run_ferry --db "$dbo" --dir "$O" up
is "$RC" 0 "out of order: the first up"
put "$O/migrations/20250102_b/up.sql" 'INSERT INTO o VALUES (2);'
run_ferry --db "$dbo" --dir "$O" up
is "$RC|$(grep '^==> ' <<<"$OUT")" "0|==> 20250102_b" "out of order: up applies the late migration"
is "$ERR" "note: 20250102_b is older than 20250103_c, which is applied: it runs after it, out of version order" \
   "...saying it runs out of version order"
is "$(history "$dbo")" "20250101_a|up|applied
20250103_c|up|applied
20250102_b|up|applied" "...and the history shows the order they ran in"

# --- a migration folder with neither up.lua nor up.sql: a configuration
# error (exit 2) before anything is written -- no heading, no failed
# history row -- for run and for up, as a syntax error is
dbn=$(fresh_db ferry_cli_noscript)
N=$TAP_TMPDIR/noscript
put "$N/migrations/20250101_a/README.md" 'notes, no script yet'
put "$N/migrations/20250102_b/up.sql" 'CREATE TABLE b (x int);'
DATABASE_URL=$dbn run_ferry --dir "$N" run 20250101_a
is "$RC|$OUT|$ERR" "2||ferry: migrations/20250101_a has neither up.lua nor up.sql" \
   "run of a folder with no up script: exit 2, one line, no heading"
DATABASE_URL=$dbn run_ferry --dir "$N" up
is "$RC|$OUT|$ERR" "2||ferry: migrations/20250101_a has neither up.lua nor up.sql" \
   "up with such a folder pending: the same, before the first migration runs"
is "$(psql_val "$dbn" "SELECT to_regclass('ferry.history') IS NULL")|$(psql_val "$dbn" "SELECT to_regclass('b') IS NULL")" "t|t" \
   "...nothing written: no history row, the next migration not run"
DATABASE_URL=$dbn run_ferry --dir "$N" up --to 20250101_a --dry-run
is "$RC|$ERR" "2|ferry: migrations/20250101_a has neither up.lua nor up.sql" "a dry run says so too"

# --- folders under migrations/ that are not <version>_<name>: every command
# ignores them, so they are named rather than skipped without a word --
# check fails on them, status and up note them on stderr (a dotfolder or a
# file there is not a migration folder and is left alone)
dbm=$(fresh_db ferry_cli_misnamed)
M=$TAP_TMPDIR/misnamed
put "$M/migrations/20250101_ok/up.sql" 'CREATE TABLE ok (x int);'
put "$M/migrations/20250102-dash/up.sql" 'CREATE TABLE dash (x int);'
put "$M/migrations/notaversion/up.sql" 'CREATE TABLE nv (x int);'
put "$M/migrations/.git/up.sql" 'CREATE TABLE hidden (x int);'
put "$M/migrations/README.md" 'about the migrations'
NOTE1="note: migrations/20250102-dash is not a migration folder (the name must be <version>_<name>): ignored"
NOTE2="note: migrations/notaversion is not a migration folder (the name must be <version>_<name>): ignored"
DATABASE_URL=$dbm run_ferry --dir "$M" check
is "$RC" 1 "check with misnamed migration folders: exit 1"
is "$(grep -v '^ok ' <<<"$OUT")" "FAIL migrations/20250102-dash  not a migration folder: the name must be <version>_<name> (digits, '_', then letters, digits, '_' or '-'); every command ignores it
FAIL migrations/notaversion  not a migration folder: the name must be <version>_<name> (digits, '_', then letters, digits, '_' or '-'); every command ignores it" \
   "...each named, not the dotfolder or the file"
DATABASE_URL=$dbm run_ferry --dir "$M" status
is "$RC|$ERR" "0|$NOTE1
$NOTE2" "status notes them on stderr"
DATABASE_URL=$dbm run_ferry --dir "$M" up
is "$RC|$ERR" "0|$NOTE1
$NOTE2" "up notes them too, and applies the rest"
is "$(grep -c '^==> ' <<<"$OUT")|$(head -1 <<<"$OUT")" "1|==> 20250101_ok" "...(only the migration folder has a heading)"
is "$(psql_val "$dbm" "SELECT string_agg(c, ' ' ORDER BY c) FROM (VALUES (to_regclass('ok')::text), (to_regclass('dash')::text), (to_regclass('nv')::text)) v(c)")" "ok" \
   "...only the migration folder ran"
# a name with control characters or bytes that are no UTF-8 is shown as
# ferry shows a script's text: escaped (an ESC would recolour the
# terminal), U+FFFD for a bad byte (check --json stays UTF-8)
W=$TAP_TMPDIR/weird
put "$W/migrations/20250101_ok/up.sql" 'SELECT 1;'
mkdir -p "$W/migrations/$(printf 'x\033[31my\377')"
DATABASE_URL=$dbm run_ferry --dir "$W" status
is "$ERR" "note: migrations/x\\x1b[31my� is not a migration folder (the name must be <version>_<name>): ignored" \
   "status: a folder name's ESC is escaped, a bad byte replaced"
DATABASE_URL=$dbm run_ferry --dir "$W" --json check
is "$RC|$(grep -ao '"name":"migrations/x[^"]*"' <<<"$OUT")" '1|"name":"migrations/x\\x1b[31my�"' \
   "check --json: the same name, valid UTF-8"

done_testing
