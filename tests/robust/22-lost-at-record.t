#!/usr/bin/env bash
# The connection lost after a data migration's script has finished, while
# ferry records the run (its history row): the server crashed, or ended
# the session, between the script's last commit and the history update.
# ferry exits 1 with one line that says the script finished, that the run
# could not be recorded and why, and to re-run -- never a place in ferry's
# own Lua -- and the re-run ends with the rows of an uninterrupted run and
# the history closed.  (The history row is held by another session so that
# the loss lands exactly there; pg_terminate_backend stands for the crash.)
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/backfill.sh"
require_pg
LEADS=1500   # (a run of about half a second: the window in which the history row is taken)

gen_db lr_tpl "$LEADS" >/dev/null
clean=$(clone_db lr_tpl lr_clean)
run_ferry --db "$clean" -q run $M4 --batch-size 200
clean_digest=$(rows_digest "$clean")

db=$(clone_db lr_tpl lr_lost)
"$FERRY" --db "$db" run $M4 --batch-size 200 --lock-timeout 30s >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" &
pid=$!
for _ in $(seq 1 200); do
    [ "$(psql_val "$db" "SELECT count(*) FROM ferry.history WHERE status = 'running'")" = 1 ] && break
    sleep 0.02
done
# another session holds the run's history row: ferry's update of it waits
"$PSQL" "$db" -X -q -c "BEGIN" -c "SELECT 1 FROM ferry.history WHERE status = 'running' FOR UPDATE" \
    -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
waiting=0
for _ in $(seq 1 500); do
    if [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ferry'
                             AND wait_event_type = 'Lock' AND query LIKE '%UPDATE ferry.history%'")" = 1 ]; then
        waiting=1; break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
done
is "$waiting" 1 "ferry waits to record the run (its script has finished)"
"$PSQL" "$db" -X -q -A -t -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND (application_name = 'ferry' OR query LIKE '%pg_sleep(60)%')" >/dev/null
wait "$pid"
is "$?" 1 "the connection lost while recording: exit code 1"
wait "$holder" 2>/dev/null
err=$(grep '^ferry:' "$TAP_TMPDIR/err")
is "$(printf '%s\n' "$err" | wc -l)" 1 "one error line"
unlike "$err" "\[ferry\]" "no place in ferry's own Lua in the line ($err)"
like "$err" "^ferry: $M4: the script finished, but the run could not be recorded: connection lost" \
     "it says the script finished and the run could not be recorded, and why"
like "$err" "re-run" "it says to re-run"
unlike "$(cat "$TAP_TMPDIR/err")" "stack traceback" "no traceback without --verbose"

for _ in $(seq 1 100); do
    [ "$(psql_val "$db" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")" = 0 ] && break
    sleep 0.05
done
run_ferry --db "$db" -q run $M4 --batch-size 200
is "$RC" 0 "the re-run succeeds" || diag "$ERR"
is "$(rows_digest "$db")" "$clean_digest" "final rows equal an uninterrupted run"
is "$(psql_val "$db" "SELECT string_agg(status, ',' ORDER BY id) FROM ferry.history WHERE migration = '$M4'")" \
   "failed,applied" "the history: the run that could not be recorded closed as failed, then the applied one"
is "$(psql_val "$db" "SELECT count(*) FROM ferry.checkpoint")" 0 "no checkpoint is left"
done_testing
