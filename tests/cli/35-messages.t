#!/usr/bin/env bash
# Messages that tell the operator what happened and what to do next, for
# cases found by a user test: a dry run stopped by --max-errors (nothing
# was committed), a lock held longer than --lock-timeout, `up --to` with
# nothing to do, the notes of a resumed run under its heading.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_messages)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" 'CREATE TABLE t (x int);'
put "$D/migrations/20250102_rows/up.lua" 'stats.declare{"rows_seen"}
for i = 1, 5 do
  stats.inc("rows_seen")
  if i % 2 == 0 then stats.error("row-" .. i, "even rows are bad") end
end'
put "$D/migrations/20250103_fill/up.lua" 'db.transaction(function()
  db.exec("INSERT INTO t VALUES (1)")
  ctx.checkpoint.save(1)
end)'

run_ferry --dir "$D" up --to 20250101
is "$RC" 0 "up --to 20250101"
run_ferry --dir "$D" up --to 20250101
is "$RC|$OUT" "0|Nothing to do: every migration up to 20250101 is applied." \
   "up --to with nothing to do says: up to that version"

# a dry run stopped by --max-errors committed nothing: no "re-run to resume"
run_ferry --dir "$D" run 20250102 --dry-run --max-errors 1
is "$RC" 1 "dry run, --max-errors 1, two bad rows: exit 1"
like "$ERR" "ferry: 20250102_rows: too many row errors \\(2, more than --max-errors 1\\): stopped \\(a dry run: nothing was written\\); fix the rule or the data and dry-run again" \
     "...says a dry run wrote nothing, and what to do"
unlike "$ERR" "committed so far" "...and not that something was committed"
run_ferry --dir "$D" --json run 20250102 --dry-run --max-errors 1
is "$(json_eval "$OUT" 'j["error"]')" "too many row errors (2, more than --max-errors 1): stopped (a dry run: nothing was written); fix the rule or the data and dry-run again" \
   "...and --json's error says the same"
run_ferry --dir "$D" run 20250102 --max-errors 1
like "$ERR" "too many row errors \\(2, more than --max-errors 1\\): stopped; everything committed so far is kept, fix the rule and re-run to resume" \
     "a real run stopped the same way: everything committed is kept, re-run to resume"

# a lock held by another session longer than --lock-timeout
"$PSQL" -X -q -d "$db" -c "BEGIN" -c "LOCK TABLE t IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
locker=$!
held() { psql_val "$db" "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 't' AND l.mode = 'AccessExclusiveLock' AND l.granted"; }
wait_until 60 output_is 1 held
run_ferry --dir "$D" --lock-timeout 300ms run 20250103
is "$RC" 1 "a table locked by another session: exit 1"
like "$ERR" "canceling statement due to lock timeout \\[SQLSTATE 55P03\\]; another session held a lock it needed for more than --lock-timeout 300ms: re-run to resume \\(everything up to the last checkpoint is committed\\), or give --lock-timeout more" \
     "...says another session held a lock longer than --lock-timeout, and what to do"
kill "$locker" 2>/dev/null; wait "$locker" 2>/dev/null
psql_val "$db" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null

# the notes of a resumed run come under its heading
psql_val "$db" "INSERT INTO ferry.checkpoint (migration, run_id, position, stats) VALUES ('20250102_rows', gen_random_uuid(), '3', '{\"counters\": [], \"after_errors\": true}')" >/dev/null
run_ferry --dir "$D" run 20250102 --max-errors 10
like "$OUT" $'^==> 20250102_rows\n   \\(the previous run had row errors' "a resumed run's note comes under the heading"

# a checkpoint error a script catches names the script's line, not ferry's
put "$D/migrations/20250104_cp/up.lua" 'local ok, err = pcall(function()
  ctx.checkpoint.save({at = {[1] = 1, [3] = 3}})   -- (nested: the check recurses)
end)
print(err)'
run_ferry --dir "$D" run 20250104
is "$(grep 'ctx.checkpoint.save' <<<"$OUT")" "migrations/20250104_cp/up.lua:2: ctx.checkpoint.save: a position table must be a list (keys 1..n) or have text keys only (JSON would give other keys back as text)" \
   "a caught ctx.checkpoint.save error names the script's line"

# stdout closed (ferry ... >&-): a script's print does not land in a
# database connection that took descriptor 1
put "$D/migrations/20250105_print/up.lua" 'print("hello from the script")
db.one("SELECT 1 AS x")'
"$FERRY" --dir "$D" --json run 20250105 --dry-run >&- 2>"$TAP_TMPDIR/closed.err"
is "$?" 0 "--json with stdout closed: the run succeeds"
like "$(cat "$TAP_TMPDIR/closed.err")" "hello from the script" "...the script's print on stderr"
"$FERRY" --dir "$D" run 20250105 --dry-run >&- 2>"$TAP_TMPDIR/closed.err"
is "$?" 0 "stdout closed, no --json: the run succeeds"
rm -rf "$D/migrations/20250105_print"

# an up.sql that sets its transaction's role or makes it read-only: ferry's
# own history row (written in that transaction) does not make it fail
put "$D/migrations/20250106_ro/up.sql" 'SET TRANSACTION READ ONLY;
SELECT 1;'
run_ferry --dir "$D" run 20250106
is "$RC|$(psql_val "$db" "SELECT status FROM ferry.history WHERE migration = '20250106_ro'")" "0|applied" \
   "an up.sql making its transaction read-only: applied, recorded"
if psql_val "$db" "DROP ROLE IF EXISTS ferry_t_owner; CREATE ROLE ferry_t_owner; GRANT CREATE ON SCHEMA public TO ferry_t_owner" >/dev/null 2>&1; then
    put "$D/migrations/20250107_owned/up.sql" 'SET LOCAL ROLE ferry_t_owner;
CREATE TABLE owned_t (x int);'
    run_ferry --dir "$D" run 20250107
    is "$RC|$(psql_val "$db" "SELECT (SELECT status FROM ferry.history WHERE migration = '20250107_owned') || ' ' || tableowner FROM pg_tables WHERE tablename = 'owned_t'")" \
       "0|applied ferry_t_owner" "an up.sql with SET LOCAL ROLE (a role without rights on ferry's tables): applied, recorded, the table its role's"
    psql_val "$db" "DROP TABLE owned_t; REVOKE CREATE ON SCHEMA public FROM ferry_t_owner; DROP ROLE ferry_t_owner" >/dev/null
else
    skip "cannot create a role here" 1
fi
rm -rf "$D/migrations/20250106_ro" "$D/migrations/20250107_owned"

# rolling back a migration whose folder is gone: said so, not "unknown"
mv "$D/migrations/20250101_t" "$TAP_TMPDIR/20250101_t"
run_ferry --dir "$D" rollback 20250101
is "$RC|$ERR" "2|ferry: 20250101_t is in the history (applied) but its folder $D/migrations/20250101_t is gone: restore it (from version control) to roll it back" \
   "rollback of a migration only the history knows: says its folder is gone"
run_ferry --dir "$D" validate 20250101
is "$RC|$ERR" "2|ferry: 20250101_t is in the history (applied) but its folder $D/migrations/20250101_t is gone: restore it (from version control) to validate it" \
   "validate of it: the same, not 'unknown migration'"
run_ferry --dir "$D" --json run t
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"20250101_t is in the history (applied) but its folder $D/migrations/20250101_t is gone: restore it (from version control) to run it\"}" \
   "run of it (by its name), --json: the same"
for c in rollback validate run; do
    run_ferry --dir "$D" $c 20990101
    is "$RC|$ERR" "2|ferry: unknown migration 20990101" "$c of one neither has: unknown migration"
done
mv "$TAP_TMPDIR/20250101_t" "$D/migrations/20250101_t"

# a role that may not create ferry's schema, or read it: the server's
# error, then what the role needs
if psql_val "$db" "DROP ROLE IF EXISTS ferry_t_nopriv; CREATE ROLE ferry_t_nopriv LOGIN" >/dev/null 2>&1; then
    npdb=$(fresh_db ferry_cli_nopriv)
    np=$(sed 's/user=[^&]*/user=ferry_t_nopriv/' <<<"$npdb")
    run_ferry --db "$np" --dir "$D" up --to 20250101
    is "$RC" 2 "a role without CREATE on the database: exit 2 (configuration)"
    like "$ERR" "^ferry: cannot create ferry's history \\(schema ferry\\): permission denied for database ferry_cli_nopriv \\[SQLSTATE 42501\\]; this role needs CREATE on the database once \\(GRANT CREATE ON DATABASE ferry_cli_nopriv TO ferry_t_nopriv\\), or have the DBA create the schema for it \\(CREATE SCHEMA ferry AUTHORIZATION ferry_t_nopriv\\), or the database owner run ferry first\$" \
         "...saying what the role needs"
    run_ferry --db "$npdb" --dir "$D" up --to 20250101      # (as the owner: the history exists)
    run_ferry --db "$np" --dir "$D" status
    is "$RC" 2 "a role that cannot read ferry's history: status exit 2"
    like "$ERR" "^ferry: cannot read ferry's history \\(schema ferry\\): permission denied for schema ferry \\[SQLSTATE 42501\\]; this role needs USAGE on schema ferry and SELECT on its tables \\(to run migrations, also INSERT, UPDATE, DELETE on them and USAGE on its sequence\\): GRANT USAGE ON SCHEMA ferry TO ferry_t_nopriv; GRANT SELECT ON ALL TABLES IN SCHEMA ferry TO ferry_t_nopriv\$" \
         "...saying what the role needs"
    # may read ferry's history, not write it
    psql_val "$npdb" "GRANT USAGE ON SCHEMA ferry TO ferry_t_nopriv; GRANT SELECT ON ALL TABLES IN SCHEMA ferry TO ferry_t_nopriv; GRANT CREATE ON DATABASE ferry_cli_nopriv TO ferry_t_nopriv" >/dev/null
    run_ferry --db "$np" --dir "$D" run 20250102
    is "$RC" 2 "a role that may read but not write ferry's history: exit 2"
    like "$ERR" "^ferry: cannot write ferry's history \\(schema ferry\\): permission denied for table history \\[SQLSTATE 42501\\]; this role needs USAGE on schema ferry, SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its sequence: GRANT USAGE ON SCHEMA ferry TO ferry_t_nopriv; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry TO ferry_t_nopriv; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO ferry_t_nopriv\$" \
         "...saying what the role needs"
    run_ferry --db "$np" --dir "$D" baseline 20250102
    is "$RC" 2 "...baseline too: exit 2"
    like "$ERR" "^ferry: cannot write ferry's history \\(schema ferry\\): permission denied for table history \\[SQLSTATE 42501\\]; this role needs USAGE on schema ferry, SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its sequence: GRANT USAGE ON SCHEMA ferry TO ferry_t_nopriv; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry TO ferry_t_nopriv; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO ferry_t_nopriv\$" \
         "...saying what the role needs, as run does"
    psql_val "$npdb" "REVOKE ALL ON ALL TABLES IN SCHEMA ferry FROM ferry_t_nopriv; REVOKE ALL ON SCHEMA ferry FROM ferry_t_nopriv; REVOKE ALL ON DATABASE ferry_cli_nopriv FROM ferry_t_nopriv" >/dev/null
    psql_val "$db" "DROP DATABASE ferry_cli_nopriv" >/dev/null 2>&1
    psql_val "$db" "DROP ROLE ferry_t_nopriv" >/dev/null
else
    skip "cannot create a role here" 8
fi

# --- a script of a long migration id: Lua cuts a file name in an error's
# position to 60 characters ("...ns/<id>/validate.lua:1:"); ferry gives the
# names it loaded back whole, in the message, the history and a traceback
LD=$TAP_TMPDIR/longid
LONG=20250101_a_rather_long_migration_name_that_overflows
put "$LD/migrations/$LONG/up.lua" 'local x = nil
return x.y'
put "$LD/migrations/$LONG/validate.lua" 'check("c1", function() error("broken check") end)'
dbl=$(fresh_db ferry_cli_longid)
DATABASE_URL=$dbl run_ferry --dir "$LD" run "$LONG"
is "$RC|$ERR" "1|ferry: migrations/$LONG/up.lua:2: attempt to index a nil value (local 'x')" \
   "a long id: the error names migrations/<id>/up.lua whole"
is "$(psql_val "$dbl" "SELECT split_part(error, E'\\n', 1) FROM ferry.history")" \
   "migrations/$LONG/up.lua:2: attempt to index a nil value (local 'x')" "...so does the history"
DATABASE_URL=$dbl run_ferry --dir "$LD" --verbose run "$LONG"
like "$ERR" $'\n\tmigrations/'"$LONG"'/up\.lua:2: in main chunk' "...and the traceback"
unlike "$ERR" '\.\.\.[^ ]*/up\.lua' "...which has no cut name left"
DATABASE_URL=$dbl run_ferry --dir "$LD" validate "$LONG"
like "$OUT" "FAIL c1  \\(error: migrations/$LONG/validate\\.lua:1: broken check\\)" "validate: the same"

# ...only a name Lua cut (the last 56 characters behind "..."): a script's
# own text that has "...<something>.lua:" in it is left as it wrote it
SD=$TAP_TMPDIR/shortid
put "$SD/migrations/20250101_a/up.lua" 'error("retrying...up.lua: gave up")'
dbs=$(fresh_db ferry_cli_cutlike)
DATABASE_URL=$dbs run_ferry --dir "$SD" run 20250101_a
is "$RC|$ERR" "1|ferry: migrations/20250101_a/up.lua:1: retrying...up.lua: gave up" \
   "a message of the script's own with '...up.lua:' in it: not rewritten"
is "$(psql_val "$dbs" "SELECT split_part(error, E'\\n', 1) FROM ferry.history")" \
   "migrations/20250101_a/up.lua:1: retrying...up.lua: gave up" "...nor in the history"

# --- ferry's own bookkeeping (its history, its checkpoints) that runs into
# --statement-timeout gets the advice a migration's statement gets: the
# flag's value and to re-run (it said only "query failed: canceling
# statement due to statement timeout"); nothing is left half-done
dbt=$(fresh_db ferry_cli_own_timeout)
T=$TAP_TMPDIR/own-timeout
put "$T/migrations/20250101_a/up.lua" 'stats.inc("rows")'
run_ferry --db "$dbt" --dir "$T" run 20250101
is "$RC" 0 "(a first run makes ferry's history)"
put "$T/migrations/20250102_b/up.lua" 'stats.inc("rows")'
# lock_held TABLE: another session holds TABLE (schema ferry) locked, until unlock
lock_held() {
    "$PSQL" -X -q -d "$dbt" -c "BEGIN" -c "LOCK TABLE ferry.$1 IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
    locker=$!
    for _ in $(seq 1 100); do
        [ "$(psql_val "$dbt" "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '$1' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
        sleep 0.05
    done
}
unlock() {
    kill "$locker" 2>/dev/null; wait "$locker" 2>/dev/null
    psql_val "$dbt" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
}
OWN_TIMEOUT="query failed: canceling statement due to statement timeout [SQLSTATE 57014]; ferry's own bookkeeping (its history and checkpoints) ran longer than --statement-timeout 300ms: give --statement-timeout more, or 0 (off, the default), and re-run"
lock_held history
run_ferry --db "$dbt" --dir "$T" --lock-timeout 0 --statement-timeout 300ms status
is "$RC|$OUT|$ERR" "1||ferry: $OWN_TIMEOUT" "status: ferry's history query ran into --statement-timeout: the flag's value and to re-run"
run_ferry --db "$dbt" --dir "$T" --lock-timeout 0 --statement-timeout 300ms --json status
is "$RC|$OUT" "1|{\"ok\":false,\"error\":\"$OWN_TIMEOUT\"}" "...the same in --json's error"
run_ferry --db "$dbt" --dir "$T" --lock-timeout 0 --statement-timeout 300ms run 20250102
is "$RC|$OUT|$ERR" "1||ferry: $OWN_TIMEOUT" "run: the history row it writes first: the same"
unlock
is "$(history "$dbt")" "20250101_a|run|applied" "...and no history row of that run"
lock_held checkpoint
run_ferry --db "$dbt" --dir "$T" --lock-timeout 0 --statement-timeout 300ms run 20250102
is "$RC|$ERR" "1|ferry: $OWN_TIMEOUT" "run: the checkpoint it reads before the script: the same"
unlock
is "$(history "$dbt")" "20250101_a|run|applied
20250102_b|run|failed" "...and its history row is closed, failed (not left running)"
run_ferry --db "$dbt" --dir "$T" run 20250102
is "$RC|$(history "$dbt" "WHERE status = 'applied'")" "0|20250101_a|run|applied
20250102_b|run|applied" "the re-run applies it"
# a script's own statement under exec: the flag's value, not 'ferry's own'
run_ferry --db "$dbt" --statement-timeout 300ms exec /dev/stdin <<<'db.exec("SELECT pg_sleep(2)")'
is "$RC|$ERR" "1|ferry: /dev/stdin:1: query failed: canceling statement due to statement timeout [SQLSTATE 57014]; a statement ran longer than --statement-timeout 300ms: give --statement-timeout more, or 0 (off, the default), and re-run" \
   "exec: a script's statement that ran into --statement-timeout: the same advice"

done_testing
