#!/usr/bin/env bash
# Failures the other robust tests do not inject: server settings that end
# ferry's sessions (idle timeouts set on the database).
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

done_testing
