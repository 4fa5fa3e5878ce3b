#!/usr/bin/env bash
# Another session asks for an exclusive lock (LOCK TABLE, VACUUM FULL) on
# a table Batch 4 reads and writes ("Message") in the middle of a run.  The
# run's reader holds its snapshot -- and the locks of what it has read --
# until the run ends, so that lock waits for the run, and the run's
# writers queue behind it: a wait PostgreSQL's deadlock detector cannot
# see (it goes through ferry).  --lock-timeout ends it: exit 1, resumable,
# and the line says what happened -- a longer --lock-timeout would not help.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/backfill.sh"
require_pg
LEADS=1500

gen_db xl_tpl "$LEADS" >/dev/null
clean=$(clone_db xl_tpl xl_clean)
run_ferry --db "$clean" -q run $M4 --batch-size 100
clean_digest=$(rows_digest "$clean")

for what in 'LOCK TABLE "Message"' 'VACUUM FULL "Message"'; do
    db=$(clone_db xl_tpl xl_locked)
    "$FERRY" --db "$db" run $M4 --batch-size 100 --lock-timeout 1s >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" &
    pid=$!
    for _ in $(seq 1 300); do
        [ "$(psql_val "$db" "SELECT count(*) FROM ferry.checkpoint")" = 1 ] && break
        sleep 0.02
    done
    if [ "${what%% *}" = LOCK ]; then
        "$PSQL" "$db" -X -q -c "BEGIN" -c "$what" -c "COMMIT" >/dev/null 2>&1 &
    else
        "$PSQL" "$db" -X -q -c "$what" >/dev/null 2>&1 &
    fi
    other=$!
    wait "$pid"
    is "$?" 1 "$what mid-run: exit code 1"
    wait "$other"
    is "$?" 0 "...the other session gets its lock once the run has stopped"
    err=$(grep '^ferry:' "$TAP_TMPDIR/err")
    is "$(printf '%s\n' "$err" | wc -l)" 1 "...one error line"
    like "$err" "lock timeout \\[SQLSTATE 55P03\\]; another session held a lock it needed for more than --lock-timeout 1s: re-run to resume" \
         "...it names --lock-timeout and says to re-run to resume"
    like "$err" "or another session asked for a lock on a table this run reads and writes \\(LOCK TABLE, VACUUM FULL, ALTER TABLE\\): that waits for the run to end, and the run's writes wait behind it, so a longer --lock-timeout does not help: re-run once that session is done\$" \
         "...and that a lock asked for by another session waits for the run itself, which more --lock-timeout does not cure"
    run_ferry --db "$db" run $M4 --batch-size 100
    is "$RC" 0 "...the re-run succeeds" || diag "$ERR"
    like "$OUT" "Resuming after lead" "...it resumes from the checkpoint"
    is "$(rows_digest "$db")" "$clean_digest" "...final rows equal an uninterrupted run"
    is "$(psql_val "$db" "SELECT string_agg(status, ',' ORDER BY id) FROM ferry.history WHERE migration = '$M4'")" \
       "failed,applied" "...history: the failed run, then the applied one"
done
done_testing
