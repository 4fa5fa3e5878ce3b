#!/usr/bin/env bash
# Failures the other robust tests do not inject: server settings that end
# ferry's sessions (idle timeouts set on the database), a statement timeout
# or a cancel from another session, and a process killed after the run
# record of a backfill was written but before the run was recorded applied.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/backfill.sh"
require_pg
LEADS=300

gen_db fi_tpl "$LEADS" >/dev/null
clean=$(clone_db fi_tpl fi_clean)
run_ferry --db "$clean" -q run $M4
is "$RC" 0 "the uninterrupted run succeeds"
clean_digest=$(rows_digest "$clean")
clean_msgs=$(psql_val "$clean" "SELECT count(*) FROM \"Message\" WHERE metadata->>'source' = 'audit_backfill'")

# --- idle timeouts set on the database (or role) by a DBA: ferry's writers
# sit idle inside a transaction by design (a batch commits when its
# writer's turn comes again, while Lua maps the next one), and a session
# waits idle while another works; the server must not end them.
db=$(clone_db fi_tpl fi_idle)
psql_val "$db" "ALTER DATABASE fi_idle SET idle_in_transaction_session_timeout = '100ms'" >/dev/null
run_ferry --db "$db" exec /dev/stdin <<'LUA'
db.exec("BEGIN")
local t = os.clock() while os.clock() - t < 0.4 do end
db.exec("COMMIT")
print("ok")
LUA
is "$RC/$OUT" "0/ok" "idle_in_transaction_session_timeout of the database: a ferry session idle in a transaction is kept ($ERR)"
psql_val "$db" "ALTER DATABASE fi_idle SET idle_in_transaction_session_timeout = '1ms'" >/dev/null
run_ferry --db "$db" run $M4 --batch-size 50 --jobs 2
is "$RC" 0 "idle_in_transaction_session_timeout 1ms: the backfill runs through ($(printf '%s' "$ERR" | grep '^ferry:'))"
is "$(rows_digest "$db")" "$clean_digest" "idle_in_transaction_session_timeout: rows equal an uninterrupted run"
psql_val "$db" "ALTER DATABASE fi_idle RESET idle_in_transaction_session_timeout" >/dev/null
psql_val "$db" "ALTER DATABASE fi_idle SET idle_session_timeout = '200ms'" >/dev/null
run_ferry --db "$db" exec /dev/stdin <<'LUA'
db.one("SELECT 1 AS one")
local t = os.clock() while os.clock() - t < 0.6 do end
print(db.one("SELECT 2 AS two").two)
LUA
is "$RC/$OUT" "0/2" "idle_session_timeout of the database: an idle ferry session is kept ($ERR)"
is "$(psql_val "$db" "SELECT current_setting('idle_session_timeout')")" "200ms" \
   "the database's setting is left as it is for other sessions"
# a session started ahead (db.prestart: run and up start --jobs of them
# for an up.lua) and first used after longer than the timeout: the server
# ended it before ferry could turn the timeout off; it is connected again
Dp=$TAP_TMPDIR/prestart
mkdir -p "$Dp/migrations/20990101_late" "$Dp/rules"
cat >"$Dp/migrations/20990101_late/up.lua" <<'LUA'
local t = os.clock() while os.clock() - t < 0.8 do end
local c = db.connect()
print(c:one("SELECT 1 AS one").one)
LUA
run_ferry --db "$db" --dir "$Dp" -q run 20990101_late
is "$RC|$OUT" "0|1" "idle_session_timeout of the database: a prestarted session first used later is connected again ($ERR)"
unlike "$ERR" "FATAL|connection lost" "idle_session_timeout: nothing about the session the server ended"

# --- a statement that runs into --statement-timeout, or that another
# session cancels: one line says what happened and what to do.
D=$TAP_TMPDIR/st
mkdir -p "$D/migrations/20990101_slow" "$D/rules"
cat >"$D/migrations/20990101_slow/up.lua" <<'LUA'
db.one("SELECT pg_sleep(3)")
LUA
db=$(clone_db fi_tpl fi_st)
run_ferry --db "$db" --dir "$D" --statement-timeout 200ms run 20990101
is "$RC" 1 "statement timeout: exit 1"
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
like "$err" "statement timeout \\[SQLSTATE 57014\\]; a statement ran longer than --statement-timeout 200ms" \
     "statement timeout: it names the flag and its value ($err)"
like "$err" "give --statement-timeout more, or 0 \\(off, the default\\)" "statement timeout: it says what to do"
like "$err" "re-run to resume \\(everything up to the last checkpoint is committed\\)" "statement timeout: and that committed work is kept"
# the flag off (its default), a timeout the migration set itself: the line
# does not blame the flag
D2=$TAP_TMPDIR/st2
mkdir -p "$D2/migrations/20990101_own" "$D2/rules"
cat >"$D2/migrations/20990101_own/up.lua" <<'LUA'
db.exec("SET statement_timeout = '100ms'")
db.one("SELECT pg_sleep(3)")
LUA
run_ferry --db "$db" --dir "$D2" run 20990101
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
is "$RC" 1 "a statement_timeout the script set: exit 1"
like "$err" "a statement ran longer than a statement_timeout the migration set itself \\(SET statement_timeout" \
     "a statement_timeout the script set: it says so ($err)"
unlike "$err" "give --statement-timeout more" "...and does not tell to give --statement-timeout more (it is 0, off)"

"$FERRY" --db "$db" --dir "$D" run 20990101 >"$TAP_TMPDIR/c.out" 2>"$TAP_TMPDIR/c.err" &
pid=$!
for _ in $(seq 1 100); do
    [ "$(psql_val "$db" "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
           WHERE application_name = 'ferry' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'")" = t ] && break
    sleep 0.05
done
rc=0; wait "$pid" || rc=$?
is "$rc" 1 "cancelled by another session: exit 1"
err=$(grep '^ferry:' "$TAP_TMPDIR/c.err")
like "$err" "canceling statement due to user request \\[SQLSTATE 57014\\]; another session cancelled the statement \\(pg_cancel_backend\\)" \
     "cancelled by another session: it says so ($err)"
like "$err" "re-run to resume" "cancelled by another session: it says to re-run"

# --- killed after the run record (the Audit row of a backfill) was written,
# before the run was recorded applied: the next run must not write a second
# record of the same work (the records' totals would count it twice).
db=$(clone_db fi_tpl fi_record)
psql_val "$db" "
  CREATE FUNCTION public.fi_slow_history() RETURNS trigger LANGUAGE plpgsql AS \$\$
  BEGIN IF NEW.status = 'applied' AND NEW.migration = '$M4' THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END \$\$;
  CREATE TRIGGER fi_slow_history BEFORE UPDATE ON ferry.history FOR EACH ROW EXECUTE FUNCTION public.fi_slow_history()" >/dev/null
"$FERRY" --db "$db" -q run $M4 --batch-size 200 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 400); do
    [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                          AND application_name = 'ferry' AND wait_event = 'PgSleep'")" = 1 ] && break
    sleep 0.05
done
kill -9 "$pid"; wait "$pid" 2>/dev/null
psql_val "$db" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'ferry'" >/dev/null
for _ in $(seq 1 100); do
    [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry'")" = 0 ] && break
    sleep 0.05
done
psql_val "$db" "DROP TRIGGER fi_slow_history ON ferry.history" >/dev/null
is "$(psql_val "$db" "SELECT count(*) FROM \"Audit\" WHERE action = 'backfill_conversations_messages'")" 1 \
   "killed after the run record: it was written"
run_ferry --db "$db" run $M4
is "$RC" 0 "the next run succeeds" || diag "$ERR"
is "$(rows_digest "$db")" "$clean_digest" "rows equal an uninterrupted run"
is "$(psql_val "$db" "SELECT sum((payload->'stats'->>'messages_created')::int) FROM \"Audit\" WHERE action = 'backfill_conversations_messages'")" \
   "$clean_msgs" "the run records count each message once (no second record of the same work)"
run_ferry --db "$db" status
like "$OUT" "$M4 +applied" "status: applied"

# backfill.finish inside a transaction the script holds: the record (and
# the end of the resume point) go with that transaction, not committed
# early by a db.transaction of its own
db=$(clone_db fi_tpl fi_finish_tx)
R=$TAP_TMPDIR/ftx
mkdir -p "$R/migrations/20990102_ftx"
cp -R "$REPO_ROOT/rules" "$R/"
cat >"$R/migrations/20990102_ftx/up.lua" <<'LUA'
local backfill = require "rules.backfill"
stats.declare{"n"}
db.exec("BEGIN")
db.exec("CREATE TABLE ftx_keep (i int)")
backfill.finish(ctx, "ftx_action", "ftx")
db.exec("ROLLBACK")
LUA
run_ferry --db "$db" --dir "$R" -q run 20990102_ftx
is "$RC|$ERR" "0|" "backfill.finish inside the script's transaction: no warning about transactions"
is "$(psql_val "$db" "SELECT count(*) FROM \"Audit\" WHERE action = 'ftx_action'")|$(psql_val "$db" "SELECT to_regclass('ftx_keep') IS NULL")" \
   "0|t" "...its record rolled back with the script's transaction, as the script's own write"
done_testing
