#!/usr/bin/env bash
# Issue 4.3: the server ends ferry's sessions mid-run (pg_terminate_backend)
# or restarts: ferry exits 1 with one clear line (what happened, how far it
# got, "re-run to resume") and the re-run completes correctly.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/backfill.sh"
require_pg
LEADS=${LOSS_LEADS:-3000}
BATCH=200

gen_db cl_tpl "$LEADS" >/dev/null
clean=$(clone_db cl_tpl cl_clean)
run_ferry --db "$clean" -q run $M4 --batch-size $BATCH
clean_digest=$(rows_digest "$clean")

# Waits until ferry has committed a first batch in database $1.
wait_for_checkpoint() {
    for _ in $(seq 1 200); do
        [ "$(psql_val "$1" "SELECT count(*) FROM ferry.checkpoint" 2>/dev/null)" = 1 ] && return 0
        sleep 0.05
    done
    return 1
}

for victim in writer reader; do
    db=$(clone_db cl_tpl "cl_$victim")
    "$FERRY" --db "$db" run $M4 --batch-size $BATCH >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" &
    pid=$!
    wait_for_checkpoint "$db"
    # the writer holds the advisory lock (the main session); the reader is
    # the one streaming the audits
    if [ $victim = writer ]; then
        cond="pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
    else
        cond="pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
    fi
    "$PSQL" "$db" -X -q -A -t -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'ferry' AND datname = current_database() AND $cond" >/dev/null
    wait "$pid"
    rc=$?
    is "$rc" 1 "$victim session terminated: exit code 1"
    err=$(grep '^ferry:' "$TAP_TMPDIR/err")
    is "$(printf '%s\n' "$err" | wc -l)" 1 "$victim: one error line"
    like "$err" "connection lost" "$victim: it says the connection was lost"
    # the place is the script's line that was running (its pipe:send or its
    # rows loop), never a line of ferry's own embedded Lua
    like "$err" "migrations/$M4/up\.lua:[0-9]+: connection lost" "$victim: it names the script's line"
    unlike "$err" "\[ferry\]" "$victim: no internal file of ferry in the line"
    like "$err" "audits_processed=[0-9]+" "$victim: it says how far it got"
    like "$err" "re-run to resume" "$victim: it says to re-run"
    unlike "$(cat "$TAP_TMPDIR/err")" "stack traceback" "$victim: no traceback without --verbose"
    unlike "$(cat "$TAP_TMPDIR/err")" "WARNING" "$victim: no server warning (an unlock on a session that never held the lock)"
    # pg_terminate_backend only signals: let the ended backend let go of
    # the advisory lock before re-running
    for _ in $(seq 1 100); do
        [ "$(psql_val "$db" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")" = 0 ] && break
        sleep 0.05
    done
    run_ferry --db "$db" run $M4 --batch-size $BATCH
    is "$RC" 0 "$victim: the re-run succeeds" || diag "$ERR"
    like "$OUT" "Resuming after lead" "$victim: the re-run resumes from the checkpoint"
    is "$(rows_digest "$db")" "$clean_digest" "$victim: final rows equal an uninterrupted run"
    is "$(psql_val "$db" "SELECT string_agg(status, ',' ORDER BY id) FROM ferry.history WHERE migration = '$M4'")" \
       "failed,applied" "$victim: history shows the failed run, then the applied one"
done

# A server restart in the middle of a run.
if [ -n "${FERRY_PG_DIR:-}" ] && bash "$REPO_ROOT/scripts/pg.sh" status "$FERRY_PG_DIR"; then
    db=$(clone_db cl_tpl cl_restart)
    "$FERRY" --db "$db" run $M4 --batch-size $BATCH >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" &
    pid=$!
    wait_for_checkpoint "$db"
    bash "$REPO_ROOT/scripts/pg.sh" restart "$FERRY_PG_DIR"
    wait "$pid"
    is "$?" 1 "server restart: exit code 1"
    err=$(grep '^ferry:' "$TAP_TMPDIR/err")
    like "$err" "connection lost.*re-run to resume" "server restart: one clear line ($err)"
    # The batches commit with synchronous_commit off: a server that crashes
    # (not this clean restart) can lose the last ones ferry saw committed.
    # The line must not claim that all it had counted is kept.
    like "$err" "; the run had got to: [^;]*\\(the batches the server had committed are kept: a crash of the server can lose the last few, which the re-run redoes\\); re-run to resume\$" \
         "server restart: the progress line does not promise what a server crash can lose"
    run_ferry --db "$db" run $M4 --batch-size $BATCH
    is "$RC" 0 "server restart: the re-run succeeds"
    is "$(rows_digest "$db")" "$clean_digest" "server restart: final rows equal an uninterrupted run"
    run_ferry --db "$db" status
    like "$OUT" "$M4 +applied" "server restart: status shows it applied"
else
    skip "no private cluster to restart (DATABASE_URL was given)" 6
fi

# Safe defaults: lock_timeout 5s, statement_timeout off, and the flags.
run_ferry --db "$clean" exec /dev/stdin <<'LUA'
local r = db.one("SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s")
print(r.l .. " " .. r.s)
LUA
is "$OUT" "5s 0" "default lock_timeout 5s, statement_timeout off"
run_ferry --db "$clean" --lock-timeout 250ms --statement-timeout 1min exec /dev/stdin <<'LUA'
local r = db.one("SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s")
print(r.l .. " " .. r.s)
LUA
is "$OUT" "250ms 1min" "--lock-timeout and --statement-timeout apply to the session"
done_testing
