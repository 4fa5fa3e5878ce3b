#!/usr/bin/env bash
# The advisory lock: a held lock makes ferry exit 1 at once naming the
# holder; two ferry processes started together: exactly one runs; the lock
# dies with its session (no stale lock).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

LOCK_KEY=7366291803
db=$(fresh_db ferry_cli_lock)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE t (x int);'
put "$D/migrations/20250101_a/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/20250101_a/validate.lua" 'check("t", true)'

holders() { psql_val "$db" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND ((classid::bigint << 32) | objid::bigint) = $LOCK_KEY"; }

# --- the lock held by another session (psql, application_name ferry)
PGAPPNAME=ferry "$PSQL" -X -q -d "$db" -c "SELECT pg_advisory_lock($LOCK_KEY)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
psql_pid=$!
wait_until 60 output_is 1 holders
is "$(holders)" 1 "a psql session holds the lock"
holder=$(psql_val "$db" "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")

# ferry must not wait for the lock: with --lock-timeout 30s a ferry that
# waited would take 30 s (the holder sleeps 60 s); the bound below leaves
# room for slow runs (valgrind) yet catches any waiting.
for c in up "run 20250101" "rollback 20250101" "baseline 20250101" "up --dry-run"; do
    t0=$(now_ms)
    # shellcheck disable=SC2086
    run_ferry --dir "$D" --lock-timeout 30s $c
    ms=$(( $(now_ms) - t0 ))
    is "$RC|$OUT" "1|" "lock held: ferry $c exits 1"
    like "$ERR" "^ferry: another ferry holds the migration lock on this database: ferry \\(backend pid $holder, client local socket, connected since [0-9-]+ [0-9:]+Z\\); try again when it has finished$" \
         "lock held: ferry $c names the holder's pid ($holder) in one line"
    ok $(( ms < 15000 ? 0 : 1 )) "lock held: ferry $c fails at once, without waiting (${ms} ms)"
done
is "$(psql_val "$db" "SELECT to_regclass('ferry.history') IS NULL AND to_regclass('t') IS NULL")" "t" \
   "lock held: nothing was written"
run_ferry --dir "$D" --json up
is "$RC" 1 "lock held, --json: exit 1"
like "$(json_eval "$OUT" 'str(j["ok"]) + " " + j["error"]')" "^False another ferry holds the migration lock on this database: ferry \\(backend pid $holder," \
     "lock held, --json: {ok:false, error naming the holder}"
# commands that write nothing do not need the lock
run_ferry --dir "$D" status
is "$RC" 0 "lock held: status still works"
run_ferry --dir "$D" check
is "$RC" 0 "lock held: check still works"

# the lock goes with its session
psql_val "$db" "SELECT pg_terminate_backend($holder)" >/dev/null
wait "$psql_pid" 2>/dev/null
wait_until 60 output_is 0 holders
run_ferry --dir "$D" up
is "$RC" 0 "once the holder's session is gone, up runs (no stale lock)"
is "$(history "$db")" "20250101_a|up|applied" "...and records the run"
is "$(holders)" 0 "ferry released the lock when it finished"

# --- two ferry processes started at once on a slow migration
db2=$(fresh_db ferry_cli_lock_race)
put "$D/migrations/20250102_slow/up.lua" 'db.exec("SELECT pg_sleep(3)")
stats.inc("slept")
'
ferry_bg "$TAP_TMPDIR/p1" --db "$db2" --dir "$D" up
b1=$BG_PID
ferry_bg "$TAP_TMPDIR/p2" --db "$db2" --dir "$D" up
b2=$BG_PID
wait "$b1" "$b2"
rcs="$(cat "$TAP_TMPDIR/p1.rc") $(cat "$TAP_TMPDIR/p2.rc")"
if [ "$rcs" = "0 1" ]; then win=p1 lose=p2; else win=p2 lose=p1; fi
is "$(tr ' ' '\n' <<<"$rcs" | sort | tr '\n' ' ')" "0 1 " "two at once: exactly one exits 0, the other 1"
winner_backend=$(psql_val "$db2" "SELECT DISTINCT backend_pid FROM ferry.history")
like "$(cat "$TAP_TMPDIR/$lose.err")" "^ferry: another ferry holds the migration lock on this database: ferry \\(backend pid $winner_backend, " \
     "the loser names the winner's backend pid"
is "$(wc -l <"$TAP_TMPDIR/$lose.err")" 1 "the loser's error is one line"
lose_end=$(cat "$TAP_TMPDIR/$lose.end")
win_end=$(cat "$TAP_TMPDIR/$win.end")
ok $(( lose_end + 1500 < win_end ? 0 : 1 )) \
   "the loser fails at once, while the winner still runs ($(cat "$TAP_TMPDIR/$lose.ms") ms vs $(cat "$TAP_TMPDIR/$win.ms") ms)"
is "$(history "$db2")" "20250101_a|up|applied
20250102_slow|up|applied" "each migration ran exactly once"
is "$(psql_val "$db2" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry'")" 0 \
   "no ferry session is left behind"

# --- the same key held in another database of the server does not count,
#     and is not named: the holder reported is the one of this database
db3=$(fresh_db ferry_cli_lock_here)
db4=$(fresh_db ferry_cli_lock_elsewhere)
PGAPPNAME=elsewhere "$PSQL" -X -q -d "$db4" -c "SELECT pg_advisory_lock($LOCK_KEY)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
other_pid=$!
db=$db4 wait_until 60 output_is 1 holders
run_ferry --db "$db3" --dir "$D" status
PGAPPNAME=here "$PSQL" -X -q -d "$db3" -c "SELECT pg_advisory_lock($LOCK_KEY)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
here_pid=$!
db=$db3 wait_until 60 output_is 1 holders
holder3=$(db=$db3; psql_val "$db3" "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
run_ferry --db "$db3" --dir "$D" up
like "$ERR" "^ferry: another session holds ferry's migration lock on this database: here \\(backend pid $holder3, .*\\); try again when it has finished \\(a rollback.sql run with psql takes it too\\)$" \
     "with the key held in two databases, the holder named is this database's (not called a ferry: its session is not one)"
psql_val "$db3" "SELECT pg_terminate_backend($holder3)" >/dev/null
wait "$here_pid" 2>/dev/null
db=$db3 wait_until 60 output_is 0 holders
run_ferry --db "$db3" --dir "$D" up
is "$RC" 0 "the key held in another database does not stop a run here"
psql_val "$db4" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'elsewhere'" >/dev/null
wait "$other_pid" 2>/dev/null

# --- a script that closes the main session would drop the lock with it
# (another ferry then ran the same migration at once): db.close() is
# refused while ferry holds the lock; ferry exec holds none
C=$TAP_TMPDIR/closer
put "$C/migrations/20250101_closer/up.lua" 'db.close()'
dbl=$(fresh_db ferry_cli_lock_closer)
run_ferry --db "$dbl" --dir "$C" run 20250101_closer
is "$RC|$ERR" "1|ferry: migrations/20250101_closer/up.lua:1: db.close: the main connection holds ferry's migration lock; it closes when the command ends" \
   "db.close() in a migration: refused, at the script's line"
is "$(history "$dbl")" "20250101_closer|run|failed" "...and the run is recorded as failed, on the session that held the lock"
put "$C/x.lua" 'local pid = db.backend_pid(); db.close(); print(db.backend_pid() ~= pid)'
run_ferry --db "$dbl" exec "$C/x.lua"
is "$RC|$OUT" "0|true" "ferry exec (no lock): db.close() ends the main session, the next call opens another"

# --- the holder's ferry was killed (kill -9) and the server has not
# noticed yet: the message says the process is gone and to try again in a
# few seconds (a psql session stands in for the dead ferry's session)
dbk=$(fresh_db ferry_cli_lock_killed)
run_ferry --db "$dbk" --dir "$D" status >/dev/null          # (the history tables)
run_ferry --db "$dbk" --dir "$D" up --to 20250101
PGAPPNAME=ferry "$PSQL" -X -q -d "$dbk" -c "SELECT pg_advisory_lock($LOCK_KEY)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
killed_psql=$!
db=$dbk wait_until 60 output_is 1 holders
kholder=$(psql_val "$dbk" "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
sh -c 'exit 0' & dead=$!; wait "$dead"
psql_val "$dbk" "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, host, pid, backend_pid)
                 VALUES ('20250102_slow', '20250102', 'slow', 'up', 'running', gen_random_uuid(), '$(uname -n)', $dead, $kholder)" >/dev/null
run_ferry --db "$dbk" --dir "$D" up
is "$RC" 1 "lock held by a killed ferry's session: exit 1"
like "$ERR" "running 20250102_slow as pid $dead on $(uname -n); that process is gone, and the server ends its session within a few seconds: try again then\$" \
     "...saying that process is gone and to try again in a few seconds"
psql_val "$dbk" "SELECT pg_terminate_backend($kholder)" >/dev/null
wait "$killed_psql" 2>/dev/null

done_testing
