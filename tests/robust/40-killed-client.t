#!/usr/bin/env bash
# ferry killed (kill -9) while the server runs its query: the server notices
# the client is gone within about a second (client_connection_check_interval)
# and stops, instead of sorting a million audits for nobody for minutes,
# holding a snapshot and a core.
. "$(dirname "$0")/../lib/tap.sh"
require_pg

db=$(fresh_db ferry_robust_killed)
script=$TAP_TMPDIR/sleep.lua
printf '%s\n' 'db.exec("SELECT pg_sleep(60) /* ferry_robust_killed */")' >"$script"
"$FERRY" --db "$db" exec "$script" &
pid=$!
running() { psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* ferry_robust_killed%' AND pid <> pg_backend_pid()"; }
wait_until 60 output_is 1 running
is "$(running)" 1 "ferry's query is running on the server"
kill -9 "$pid"
wait "$pid" 2>/dev/null
for _ in $(seq 1 100); do [ "$(running)" = 0 ] && break; sleep 0.1; done
is "$(running)" 0 "killed, its query is gone from the server within 10 s (it would sleep 60)"

done_testing
