#!/usr/bin/env bash
# Issue 4.1: kill -9 at many points of a run; each re-run resumes from the
# last checkpoint and the final database equals that of an uninterrupted run.
# KILL_LEADS / KILL_TIMES make it longer (make soak).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/backfill.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg
LEADS=${KILL_LEADS:-3000}
KILLS=${KILL_TIMES:-5}
BATCH=${KILL_BATCH:-100}

tpl_uri=$(gen_db kr_tpl "$LEADS")
"$PSQL" "$tpl_uri" -X -q -c "SELECT 1" >/dev/null   # close nothing; template must have no sessions
clean=$(clone_db kr_tpl kr_clean)
killed=$(clone_db kr_tpl kr_killed)

run_ferry --db "$clean" --json run $M4 --batch-size "$BATCH"
is "$RC" 0 "the uninterrupted run succeeds"
clean_stats=$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["stats"], sort_keys=True))')
clean_digest=$(rows_digest "$clean")

# How long a whole run takes, to spread the kills over it.
start=$(date +%s%N)
run_ferry --db "$(clone_db kr_tpl kr_timing)" -q run $M4 --batch-size "$BATCH"
total_ms=$(( ($(date +%s%N) - start) / 1000000 ))
diag "an uninterrupted run takes ${total_ms} ms"

# After kill -9 the server ends the dead client's sessions only when it
# notices (a backend busy with a COPY or a sort finishes it first): until
# then a new run would rightly find the lock held.  Wait for that.
wait_unlocked() {
    for _ in $(seq 1 600); do
        [ "$(psql_val "$1" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry'")" = 0 ] && return 0
        sleep 0.05
    done
    diag "ferry sessions still present after 30 s"
}

checkpoint_of() {
    psql_val "$1" "SELECT coalesce((SELECT position #>> '{}' FROM ferry.checkpoint WHERE migration = '$M4'), 'none')"
}

# Each kill lands at a different point: after the run has committed at
# least one new batch (so every kill interrupts real progress), plus a
# delay that differs from kill to kill (inside a batch, between batches,
# while committing...).
resumed=0
for i in $(seq 1 "$KILLS"); do
    before=$(checkpoint_of "$killed")
    "$FERRY" --db "$killed" -q run $M4 --batch-size "$BATCH" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 400); do
        [ "$(checkpoint_of "$killed")" != "$before" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    sleep "$(echo "(($i * 37) % 150) / 1000" | bc -l)"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    wait_unlocked "$killed"
    cp=$(checkpoint_of "$killed")
    diag "kill $i: checkpoint $before -> $cp"
    [ "$cp" != none ] && resumed=$((resumed + 1))
done

# The next run resumes from the checkpoint (if the last kill left one) and finishes.
cp=$(psql_val "$killed" "SELECT coalesce((SELECT position #>> '{}' FROM ferry.checkpoint WHERE migration = '$M4'), 'none')")
run_ferry --db "$killed" run $M4 --batch-size "$BATCH"
is "$RC" 0 "the run after the kills completes"
if [ "$cp" != none ]; then
    like "$OUT" "Resuming after lead $cp" "it resumes after the checkpointed lead"
else
    pass "no checkpoint was left by the last kill (nothing to resume)"
fi
is "$(rows_digest "$killed")" "$clean_digest" "same rows as the uninterrupted run: none lost, none duplicated"
is "$(psql_val "$killed" "SELECT count(*) FROM (SELECT metadata->>'auditId' FROM \"Message\" WHERE metadata ? 'auditId' GROUP BY 1 HAVING count(*) > 1) d")" 0 \
   "no audit has two messages"
is "$(psql_val "$killed" "SELECT count(*) FROM ferry.checkpoint")" 0 "the checkpoint is cleared after the run completes"
ok "$([ "$resumed" -ge 1 ] && echo 0 || echo 1)" "at least one kill left a checkpoint to resume from ($resumed of $KILLS)"

# One kill in the middle, then a --json resume: its totals equal those of
# the uninterrupted run (the checkpoint carries the counters).
mid=$(clone_db kr_tpl kr_mid)
for attempt in 1 2 3 4 5; do
    "$FERRY" --db "$mid" -q run $M4 --batch-size "$BATCH" >/dev/null 2>&1 &
    pid=$!
    sleep "$(echo "$total_ms / 2000" | bc -l)"
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    wait_unlocked "$mid"
    n=$(psql_val "$mid" "SELECT count(*) FROM ferry.checkpoint")
    [ "$n" = 1 ] && break
    mid=$(clone_db kr_tpl kr_mid)
done
before=$(psql_val "$mid" "SELECT count(*) FROM \"Message\"")
# What the killed run had committed, as its checkpoint counts it: history
# shows it for that run (it had nothing to show: the run never recorded
# its counters), before the next run closes its row and after.
committed=$(psql_val "$mid" "SELECT string_agg((c->>0) || ' ' || (c->>1), ', ' ORDER BY c->>0)
                               FROM ferry.checkpoint k, jsonb_array_elements(k.stats->'counters') c")
run_ferry --db "$mid" history $M4
like "$OUT" "run +interrupted +-
    $committed\$" "history: the killed run shows the counters of what it had committed"
run_ferry --db "$mid" --json history $M4
is "$(json_eval "$OUT" '", ".join(k + " " + str(v) for k, v in sorted(j["runs"][0]["stats"].items()))')" "$committed" \
   "history --json: the same counters"
run_ferry --db "$mid" --json run $M4 --batch-size "$BATCH"
is "$RC" 0 "the resumed run succeeds"
got_stats=$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["stats"], sort_keys=True))')
is "$got_stats" "$clean_stats" "the resumed run reports the totals of an uninterrupted one"
ok "$([ "$before" -gt 0 ] && echo 0 || echo 1)" "the killed run had committed batches ($before messages) that were kept"
is "$(rows_digest "$mid")" "$clean_digest" "and the final rows are the same"
run_ferry --db "$mid" history $M4
like "$OUT" "run +failed +-
    $committed
    error: interrupted: ferry ended before recording the outcome" \
     "history: the killed run's row, closed by the next run, keeps those counters"
done_testing
