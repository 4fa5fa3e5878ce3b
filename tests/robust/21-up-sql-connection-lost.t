#!/usr/bin/env bash
# The connection lost while an up.sql runs (a schema step: one transaction
# that ferry begins and commits).  What the operator is told must match
# what the server kept -- not the data migrations' "the batches the server
# had committed are kept ... re-run to resume":
# - lost before its COMMIT: nothing of it is committed; re-run to apply it;
# - lost while its COMMIT went through (the server committed, the reply
#   never came: here a synchronous standby that never answers, and the
#   session ended while the COMMIT waited for it): it is applied, as its
#   history row (written in that same transaction) says;
# - and either way exit 1, one line, the history as the server has it.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_up_sql_lost)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj

waiting() { psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND application_name = 'ferry'"; }
sleeping() { psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%ferry_down_sleep%' AND pid <> pg_backend_pid()"; }
# up_until CONDITION: `ferry up` in the background, until CONDITION prints 1
up_until() {
    "$FERRY" --dir "$D" up >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
    pid=$!
    wait_until 60 output_is 1 $1
}
# up_after COMMAND...: runs it, then waits for that ferry: $rc, $err (its `ferry:` lines)
up_after() {
    "$@"
    rc=0; wait "$pid" || rc=$?
    err=$(grep '^ferry:' "$TAP_TMPDIR/bg.err")
}
terminate_waiting() { psql_val "$db" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND application_name = 'ferry'" >/dev/null; }
# a synchronous standby that never answers: a COMMIT waits for it, committed
# (off: at once; off-at-restart: the COMMIT waiting now goes on waiting)
ghost_standby() { # on|off|off-at-restart
    if [ "$1" = on ]; then
        psql_val "$db" "ALTER SYSTEM SET synchronous_standby_names = 'ferry_ghost_standby'" >/dev/null 2>&1
    else
        psql_val "$db" "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null
    fi && { [ "$1" = off-at-restart ] || psql_val "$db" "SELECT pg_reload_conf()" >/dev/null; }
}
# put_sync_step ID: an up.sql whose COMMIT waits for the standby
put_sync_step() {
    put "$D/migrations/$1/up.sql" "CREATE TABLE ${1#*_}_t (x int);
SET LOCAL synchronous_commit = on;"
}
stop_server() { bash "$REPO_ROOT/scripts/pg.sh" stop "$FERRY_PG_DIR" >/dev/null 2>&1; }
start_server() { bash "$REPO_ROOT/scripts/pg.sh" start "$FERRY_PG_DIR" >/dev/null 2>&1; }

# --- lost before the COMMIT: the session ends in the middle of the script
put "$D/migrations/20250101_killed/up.sql" 'CREATE TABLE killed_t (x int);
SELECT pg_terminate_backend(pg_backend_pid());
CREATE TABLE killed_after (x int);'
run_ferry --dir "$D" up
is "$RC" 1 "lost mid-script: exit 1"
is "$(printf '%s\n' "$ERR" | grep -c '^ferry:')" 1 "lost mid-script: one error line"
like "$ERR" "^ferry: 20250101_killed: migrations/20250101_killed/up.sql: connection lost: terminating connection due to administrator command \\[SQLSTATE 57P01\\] \\(script failed\\); nothing of it is committed \\(up.sql runs in one transaction\\); re-run to apply it$" \
     "lost mid-script: it says nothing of it is committed and to re-run"
unlike "$ERR" "batches|resume|counted" "lost mid-script: nothing about batches or resuming"
is "$(psql_val "$db" "SELECT status || ' ' || (to_regclass('killed_t') IS NOT NULL) FROM ferry.history WHERE migration = '20250101_killed'")" \
   "failed false" "lost mid-script: recorded failed; nothing of it is there"
rm -rf "$D/migrations/20250101_killed"

# --- lost while the COMMIT went through
if ghost_standby on; then
    put_sync_step 20250102_sync
    up_until waiting
    is "$(waiting)" 1 "sync: the COMMIT waits for the standby"
    up_after terminate_waiting
    ghost_standby off    # (at once: other tests run on this server)
    is "$rc" 1 "sync: lost as the COMMIT went through: exit 1"
    is "$(printf '%s\n' "$err" | wc -l)" 1 "sync: one error line"
    like "$err" "^ferry: 20250102_sync: the connection was lost as its COMMIT went through: it is applied \\(its history row, written in that transaction, says so\\); nothing after it was run$" \
         "sync: it says the migration is applied"
    unlike "$err" "nothing of it is committed|batches|resume" "sync: not that nothing was committed"
    is "$(psql_val "$db" "SELECT string_agg(status, ',' ORDER BY id) || ' ' || (to_regclass('sync_t') IS NOT NULL) FROM ferry.history WHERE migration = '20250102_sync'")" \
       "applied true" "sync: recorded applied, as it is"
    run_ferry --dir "$D" up
    is "$RC|$OUT" "0|Nothing to do: every migration is applied." "sync: the next up has nothing to do"
else
    skip "cannot change synchronous_standby_names here" 7
fi

# --- the server gone (stopped) while the step runs: the history cannot be
# read, so what is known is what ferry saw -- before the COMMIT, nothing
# is committed; in it (waiting for the standby), not known until the
# server is back, when status tells
if [ -n "${FERRY_PG_DIR:-}" ] && bash "$REPO_ROOT/scripts/pg.sh" status "$FERRY_PG_DIR" >/dev/null 2>&1; then
    put "$D/migrations/20250103_down/up.sql" 'CREATE TABLE down_t (x int);
SELECT pg_sleep(60) /* ferry_down_sleep */;'
    up_until sleeping
    up_after stop_server
    start_server
    is "$rc|$(printf '%s\n' "$err" | wc -l)" "1|1" "server down mid-script: exit 1, one error line"
    like "$err" "^ferry: 20250103_down: migrations/20250103_down/up.sql: connection lost: .*; nothing of it is committed \(up.sql runs in one transaction\); re-run to apply it$" \
         "server down mid-script: nothing of it is committed (the COMMIT was not reached)"
    rm -rf "$D/migrations/20250103_down"

    if ghost_standby on; then
        put_sync_step 20250104_down_sync
        up_until waiting
        is "$(waiting)" 1 "server down in the COMMIT: it waits for the standby"
        ghost_standby off-at-restart
        up_after stop_server
        start_server
        is "$rc|$(printf '%s\n' "$err" | wc -l)" "1|1" "server down in the COMMIT: exit 1, one error line"
        like "$err" "^ferry: 20250104_down_sync: migrations/20250104_down_sync/up.sql: connection lost: .*; the server cannot be reached to tell whether its COMMIT went through: once it is back, 'ferry status' shows it applied, or not \(then re-run to apply it\)$" \
             "server down in the COMMIT: it says it cannot tell, and how to find out"
        run_ferry --dir "$D" status
        like "$OUT" "20250104_down_sync +applied" "server down in the COMMIT: status tells, once the server is back"
    else
        skip "cannot change synchronous_standby_names here" 4
    fi
else
    skip "no private cluster to stop (DATABASE_URL was given)" 6
fi
done_testing
