#!/usr/bin/env bash
# What the live-workload pass found: commands an operator may start while
# a ferry run is in progress on the same database.
#   - the rollback.sql of Batches 4 and 5 run with plain psql (their READMEs
#     give that form) while a ferry command holds the migration lock: a
#     rollback that committed between a run's batches would leave the run's
#     later batches behind and the run recorded applied over half its rows;
#     it must refuse, change nothing, and say why and what to do;
#   - ferry validate while a run of the same migration is in progress: its
#     checks see the batches committed when they began (one snapshot) and
#     fail; it must say that a run is in progress (not refuse: it only reads).
# The lock holder here is a psql session that took ferry's lock, as a
# running ferry does (tests/cli/60-lock.t does the same): no timing.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
require_pg

LOCK_KEY=7366291803
B4=20251110_backfill_conversations_messages
B5=20251115_backfill_memory_notes
URI=$(crm_db ferry_robust_live "$REPO_ROOT/demo/data.sql")
q() { "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$URI" -c "$1"; }
# the backend pid of the one session in pg_sleep(600) (started in the
# background just before), once it is there
sleeper_pid() {
    local sql="FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND state = 'active' AND pid <> pg_backend_pid()"
    wait_until 60 eval '[ "$(q "SELECT count(*) $sql")" = 1 ]'
    q "SELECT pid $sql"
}
holders() { q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND ((classid::bigint << 32) | objid::bigint) = $LOCK_KEY"; }

run_ferry --dir "$REPO_ROOT" --db "$URI" -q up
is "$RC" 0 "Batches 4 and 5 applied on the demo data"
before=$(db_snapshot "$URI")

# --- a ferry command holds the lock (a run in progress)
PGAPPNAME=ferry "$PSQL" -X -q -d "$URI" -c "SELECT pg_advisory_lock($LOCK_KEY)" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
holder_job=$!
wait_until 60 output_is 1 holders
is "$(holders)" 1 "a session holds ferry's migration lock"
holder=$(q "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32) | objid::bigint) = $LOCK_KEY")

for id in $B4 $B5; do
    out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$REPO_ROOT/migrations/$id/rollback.sql" 2>&1)
    rc=$?
    is "$rc" 3 "$id: psql -f rollback.sql while ferry's lock is held fails (psql exit 3)"
    like "$out" "ERROR:  another session holds ferry's migration lock on this database \\(backend pid $holder\\): a ferry run or rollback is in progress there; nothing was rolled back: run this again when it has finished" \
         "$id: ... saying who holds the lock, that nothing was rolled back, and to run it again when it has finished"
    is "$(db_snapshot "$URI")" "$before" "$id: ... and changes nothing"
done

# the rollback.sql `ferry new` writes for the next migration refuses the same way
S=$TAP_TMPDIR/scaffold
mkdir -p "$S/migrations"
run_ferry --dir "$S" new next_batch
sid=$(ls "$S/migrations")
out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$S/migrations/$sid/rollback.sql" 2>&1)
rc=$?
is "$rc|$(grep -c 'ERROR:  another session holds ferry.s migration lock on this database (backend pid '"$holder"'): a ferry run or rollback is in progress there; nothing was rolled back: run this again when it has finished' <<<"$out")" "3|1" \
   "the scaffold's rollback.sql (ferry new) refuses too"
# ...and the psql command its README gives exits non-zero then: without
# ON_ERROR_STOP psql goes on past the error (the transaction ends rolled
# back) and exits 0, so a script that runs it cannot tell
cmd=$(sed -n 's/^- Roll back: .*(or `\(psql [^`]*\)`)$/\1/p' "$S/migrations/$sid/README.md")
like "$cmd" '^psql ' "the scaffold's README gives a psql command for its rollback.sql"
out=$(cd "$S/migrations/$sid" && DATABASE_URL=$URI PATH="$(dirname "$(command -v "$PSQL")"):$PATH" eval "$cmd" 2>&1)
rc=$?
is "$rc|$(grep -c "ERROR:  another session holds ferry.s migration lock" <<<"$out")" "3|1" \
   "...which, run as written while the lock is held, fails (psql exit 3), not exit 0"

q "SELECT pg_terminate_backend($holder)" >/dev/null
wait "$holder_job" 2>/dev/null
wait_until 60 output_is 0 holders

# --- the lock free: psql rollbacks work as before, and ferry rollback (which
# holds the lock itself while it runs rollback.sql) too
out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$REPO_ROOT/migrations/$B5/rollback.sql" 2>&1)
is "$?" 0 "$B5: psql -f rollback.sql with the lock free succeeds"
like "$out" "verified" "... and verifies"
is "$(q "SELECT count(*) FROM \"MemoryNote\" WHERE metadata->>'createdBy' = '$B5'")" 0 "... no backfilled note remains"
run_ferry --dir "$REPO_ROOT" --db "$URI" rollback $B4
is "$RC" 0 "ferry rollback $B4 (holding the lock itself) succeeds"
is "$(q "SELECT count(*) FROM \"Message\" WHERE metadata->>'createdBy' = '$B4'")" 0 "... no backfilled message remains"
is "$(holders)" 0 "no lock is left behind"

# --- validate while a run of Batch 4 is in progress: the run is held on the
# demo's live conversation, which the application holds FOR UPDATE (the
# foreign-key check of the messages the batch writes into it waits for it);
# --lock-timeout 0: the run waits as long as the application holds it.
live_conv=cc000000-0000-4000-8000-000000000001
"$PSQL" -X -q -d "$URI" -c "BEGIN" -c "SELECT 1 FROM \"Conversation\" WHERE id = '$live_conv' FOR UPDATE" \
        -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
app_job=$!
app=$(sleeper_pid)
"$FERRY" --dir "$REPO_ROOT" --db "$URI" --lock-timeout 0 run $B4 >"$TAP_TMPDIR/run.out" 2>&1 &
run_job=$!
waiting() { q "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND $app = ANY(pg_blocking_pids(pid))"; }
wait_until 60 eval '[ "$(waiting)" -ge 1 ]'
is "$(waiting)" 1 "a run of $B4 is in progress, waiting for the application's row lock"
run_ferry --dir "$REPO_ROOT" --db "$URI" validate $B4
is "$RC" 1 "validate during the run: exit 1 (checks 1 and 8 fail on the half-done run)"
like "$ERR" "note: a run of $B4 is in progress on this database \\(pid [0-9]+ on [^,]+, since [0-9-]+T[0-9:]+Z\\): the checks see what it had committed when they began \\(one snapshot for all of them\\), not the batches it commits meanwhile; validate again when it has finished" \
     "... and says that a run is in progress, that the checks see it half done, and to validate again when it has finished"
q "SELECT pg_terminate_backend($app)" >/dev/null
wait "$app_job" 2>/dev/null
wait "$run_job"
is "$?" 0 "the run finishes once the application lets go of the row"
run_ferry --dir "$REPO_ROOT" --db "$URI" validate $B4
is "$RC|$ERR" "0|" "validate after the run: every check passes, no note"

# a 'running' row a killed ferry left, whose backend pid the server has since
# given to another session (not a ferry: it does not hold the lock) is no
# run in progress: no note
"$PSQL" -X -q -d "$URI" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
other_job=$!
other=$(sleeper_pid)
q "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, checksum, host, pid, backend_pid, ferry_version)
   SELECT migration, version, name, 'run', 'running', run_id, checksum, host, 999999, $other, ferry_version
     FROM ferry.history WHERE migration = '$B4' ORDER BY id DESC LIMIT 1" >/dev/null
run_ferry --dir "$REPO_ROOT" --db "$URI" validate $B4
is "$RC|$ERR" "0|" "validate beside a stale running row whose backend pid another session (not holding the lock) now has: no note"
q "SELECT pg_terminate_backend($other)" >/dev/null
wait "$other_job" 2>/dev/null

done_testing
