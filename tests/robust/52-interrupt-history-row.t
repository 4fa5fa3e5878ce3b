#!/usr/bin/env bash
# Ctrl-C that comes as a run's history row is being written (at its start,
# and as its outcome is recorded).
#
# At the start: the row is
# there (the INSERT went through) but the run had not started.  Such a row
# was left 'running' -- later closed as "ferry ended before recording the
# outcome (killed, ...)", which it was not -- and ferry said only
# "ferry: interrupted (SIGINT)", with no word of the migration or of what to
# do.  Now the row is closed failed "interrupted (SIGINT)" and the line is
# the one of any interrupted run.  (Found by a QA helper sending Ctrl-C in
# the first tenths of a second of Batch 4 runs: 1 in 14 hit it.)
#
# The window is a few instructions wide; a trigger on ferry.history makes
# the INSERT wait, ignoring the cancel ferry's Ctrl-C sends, so that the
# signal comes while it runs and the row is written all the same.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_interrupt_start)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_first/up.sql" 'CREATE TABLE first_t (x int);'
put "$D/migrations/20250102_lua/up.lua" 'local last = ctx.checkpoint.get() or 0
stats.declare{"items_created"}
db.exec("CREATE TABLE IF NOT EXISTS items (n int PRIMARY KEY)")
for n = last + 1, 3 do
  db.transaction(function() db.exec("INSERT INTO items VALUES ($1)", n); ctx.checkpoint.save(n) end)
  stats.inc("items_created")
end'
put "$D/migrations/20250102_lua/rollback.sql" 'DROP TABLE IF EXISTS items;'
put "$D/migrations/20250103_sql/up.sql" 'CREATE TABLE sql_t (x int);'

run_ferry --dir "$D" up --to 20250101          # (ferry's history tables)
is "$RC" 0 "set-up: the history exists"

# The INSERT of a history row waits up to 30 s, a cancel caught; the
# trigger is on for one case at a time.
psql_val "$db" "CREATE FUNCTION slow_history() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  BEGIN PERFORM pg_sleep(30); EXCEPTION WHEN query_canceled THEN NULL; END;
  RETURN NEW;
END \$\$" >/dev/null
hold_on() { psql_val "$db" "CREATE TRIGGER slow BEFORE INSERT ON ferry.history FOR EACH ROW EXECUTE FUNCTION slow_history()" >/dev/null; }
hold_off() { psql_val "$db" "DROP TRIGGER slow ON ferry.history" >/dev/null; }
# (the statements below hold 30 s in pg_sleep: waited for until ferry's
# statement sleeps there -- the one meant, not another of the same table
# caught running: history_start's INSERT begins with an UPDATE of
# ferry.history -- for up to 25 s, which a loaded machine may need)
wait_for_statement() {   # LIKE-PATTERN
  local t0; t0=$(date +%s)
  while [ $(( $(date +%s) - t0 )) -lt 25 ]; do
    [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '$1' AND state = 'active' AND wait_event = 'PgSleep' AND application_name = 'ferry'")" = 1 ] && return 0
    sleep 0.05
  done
  return 1
}
wait_inserting() { wait_for_statement '%INSERT INTO ferry.history%'; }
rows_of() { history_errors "$db" "$1"; }

set -m
# interrupt ARGS...: ferry ARGS in the background, Ctrl-C (SIGINT to its
# process group, as a terminal sends it) while its history INSERT waits;
# $RC, $ERR
interrupt() {
  hold_on
  "$FERRY" --dir "$D" "$@" >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
  local pid=$!
  wait_inserting || diag "the history INSERT was not seen"
  kill -INT -- "-$pid"
  RC=0
  wait "$pid" || RC=$?
  ERR=$(cat "$TAP_TMPDIR/bg.err")
  hold_off
}

# --- a data migration
interrupt run 20250102
is "$RC" 130 "data migration: exit 130"
is "$ERR" "ferry: 20250102_lua: interrupted (SIGINT); the run had got to: nothing counted yet (everything up to the last checkpoint is committed); re-run to resume" \
   "data migration: the line names the migration and says to re-run"
is "$(rows_of 20250102_lua)" "run|failed|interrupted (SIGINT)" "data migration: its row is closed failed: interrupted, not left running"
is "$(psql_val "$db" "SELECT to_regclass('items') IS NULL")" t "data migration: the script did not run"
run_ferry --dir "$D" -q run 20250102
is "$RC|$(psql_val "$db" "SELECT count(*) FROM items")" "0|3" "data migration: the next run applies it"

# --- a schema step, under up (which stops there)
interrupt up
is "$RC" 130 "up.sql: exit 130"
is "$ERR" "ferry: 20250103_sql: interrupted (SIGINT); nothing of it is committed (up.sql runs in one transaction); re-run to apply it" \
   "up.sql: the line names the migration and says to re-run"
is "$(rows_of 20250103_sql)" "up|failed|interrupted (SIGINT)" "up.sql: its row is closed failed: interrupted"
is "$(psql_val "$db" "SELECT to_regclass('sql_t') IS NULL")" t "up.sql: the script did not run"

# --- a rollback
interrupt rollback 20250102
is "$RC" 130 "rollback: exit 130"
is "$ERR" "ferry: 20250102_lua: rollback interrupted (SIGINT); it may have run in part: run \`ferry rollback 20250102_lua\` again to finish it" \
   "rollback: the line says to run it again"
is "$(rows_of 20250102_lua)" "run|failed|interrupted (SIGINT) / run|applied| / rollback|failed|interrupted (SIGINT)" \
   "rollback: its row is closed failed: interrupted"
is "$(psql_val "$db" "SELECT to_regclass('items') IS NOT NULL")" t "rollback: the rollback did not run"

# --- a baseline: its row is written and closed in one transaction, so an
# interruption leaves none
interrupt baseline 20250103
is "$RC" 130 "baseline: exit 130"
is "$(rows_of 20250103_sql)" "up|failed|interrupted (SIGINT)" "baseline: no row of it is left, running or not"

# --- Ctrl-C as the outcome of a run that finished is being recorded: the
# history update it cancelled is written all the same, applied -- the
# migration had finished -- and the command stops as after any migration
# that finished though interrupted (exit 130, saying so).  Before, it was
# recorded failed, 'cannot record the run: interrupted (SIGINT)', exit 1.
put "$D/migrations/20250104_done/up.lua" 'db.exec("CREATE TABLE done_t (x int)")'
psql_val "$db" "CREATE SEQUENCE hold_once; CREATE FUNCTION slow_finish() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  IF NEW.status <> 'running' AND nextval('hold_once') = 1 THEN     -- (a sequence: once, whatever rolls back)
    BEGIN PERFORM pg_sleep(30); EXCEPTION WHEN query_canceled THEN NULL; END;
  END IF;
  RETURN NEW;
END \$\$;
CREATE TRIGGER slow_finish BEFORE UPDATE ON ferry.history FOR EACH ROW EXECUTE FUNCTION slow_finish()" >/dev/null
"$FERRY" --dir "$D" run 20250104 >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
pid=$!
wait_for_statement '%UPDATE ferry.history%SET status = $2, finished_at%' || diag "the history UPDATE was not seen"
kill -INT -- "-$pid"
RC=0
wait "$pid" || RC=$?
ERR=$(cat "$TAP_TMPDIR/bg.err")
psql_val "$db" "DROP TRIGGER slow_finish ON ferry.history" >/dev/null
is "$RC" 130 "recording: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after 20250104_done had finished (applied); nothing after it was run" \
   "recording: the line says the migration had finished"
is "$(rows_of 20250104_done)" "run|applied|" "recording: the run is recorded applied, as it is"
is "$(psql_val "$db" "SELECT to_regclass('done_t') IS NOT NULL")" t "recording: its work is there"

is "$(psql_val "$db" "SELECT count(*) FROM ferry.history WHERE status = 'running'")" 0 "no history row is left running"
is "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry'")" 0 \
   "no ferry session is left"
set +m

done_testing
