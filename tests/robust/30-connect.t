#!/usr/bin/env bash
# Connecting: ferry starts sessions without waiting for them (the main one as
# soon as a command needs the database, --jobs more before a migration's
# up.lua) and finishes them on first use.  That must keep libpq's own
# behaviour: connect_timeout is honoured (a host that accepts and never
# answers is given up on, and the next host of a multi-host string tried),
# and a session started long before it is used still works when the server
# has dropped it meanwhile for want of its password (authentication_timeout).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/ports.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

# A listener that accepts connections and never says a word, on a port it
# holds from the start.
accepts=$TAP_TMPDIR/accepts
port=''    # (start_listeners sets them)
start_listeners "$accepts" "silent4:127.0.0.1:=port"
trap 'in_test_shell && { stop_listeners; _tap_at_exit; }' EXIT
# How many connections the silent listener took since the last call.
accepted() { local n; n=$(wc -l <"$accepts" 2>/dev/null || echo 0); : >"$accepts"; echo "$n"; }

db=$(fresh_db ferry_connect)
D=$TAP_TMPDIR/proj
mkdir -p "$D/migrations/20250101_x"
printf 'SELECT 1;\n' >"$D/migrations/20250101_x/up.sql"

# status_of CONNINFO: `ferry status` with it; $RC, $OUT, $ERR.
# (timeout 60 only stops a hang from stopping the suite: 124 would mean one)
status_of() {
    RC=0
    timeout 60 "$FERRY" --dir "$D" --db "$1" status >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" || RC=$?
    OUT=$(cat "$TAP_TMPDIR/out")
    ERR=$(cat "$TAP_TMPDIR/err")
}
accepted >/dev/null    # (the readiness probe's)
status_of "host=127.0.0.1 port=$port dbname=x user=x connect_timeout=2 sslmode=disable"
is "$RC|$OUT|$ERR" \
   "2||ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $port failed: timeout expired" \
   "a server that never answers, connect_timeout=2: exit 2 (a configuration error), no hang, saying the time ran out"
# (it was tried twice, the second time the blocking way: connect_timeout=2
# took 4 s, the last 2 of them deaf to Ctrl-C)
is "$(accepted)" 1 "... after one attempt, not two: connect_timeout is the time it waits"

status_of "host=127.0.0.1,$PGHOST port=$port,$PGPORT dbname=ferry_connect user=${PGUSER:-postgres} connect_timeout=2 sslmode=disable"
is "$RC" 0 "two hosts, the first never answers: the second one is used"
like "$OUT" "20250101_x" "... and status lists the migrations"
is "$(accepted)" 1 "... the silent one tried once"

# Every host silent: each is given connect_timeout in turn, and the error
# says so of each, on one line.
status_of "host=127.0.0.1,127.0.0.1 port=$port dbname=x user=x connect_timeout=2 sslmode=disable"
is "$RC|$OUT|$ERR" \
   "2||ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $port failed: timeout expired; connection to server at \"127.0.0.1\", port $port failed: timeout expired" \
   "two hosts, both silent: exit 2, one line saying each ran out of time"
is "$(accepted)" 2 "... each tried once"

# A host that refuses, then a silent one, then the server: the refusal and
# the timeout are both in what is kept, and the server is used.
status_of "host=127.0.0.1,127.0.0.1,$PGHOST port=1,$port,$PGPORT dbname=ferry_connect user=${PGUSER:-postgres} connect_timeout=2 sslmode=disable"
is "$RC|$(accepted)" "0|1" "refused, silent, then the server: the server is used, the silent one tried once"

# Ctrl-C while the second of two silent hosts is waited for: ferry stops at
# once (it was deaf to the first Ctrl-C from the first host's timeout on,
# connecting again the blocking way).
set -m
"$FERRY" --dir "$D" --db "host=127.0.0.1,127.0.0.1 port=$port dbname=x user=x connect_timeout=4 sslmode=disable" status \
    >"$TAP_TMPDIR/int.out" 2>"$TAP_TMPDIR/int.err" &
PID=$!
wait_until 60 eval '[ "$(wc -l <"$accepts")" -ge 2 ]'
kill -INT "$PID"
( sleep 10; kill -KILL "$PID" 2>/dev/null ) &
dog=$!
RC=0
wait "$PID" || RC=$?
kill "$dog" 2>/dev/null
wait "$dog" 2>/dev/null
set +m
is "$RC|$(cat "$TAP_TMPDIR/int.out")|$(cat "$TAP_TMPDIR/int.err")|$(accepted)" "130||ferry: interrupted (SIGINT)|2" \
   "Ctrl-C while the second silent host is waited for: exit 130, one line, no host tried again"

# Ctrl-C while ferry waits for a server that never answers, with no
# connect_timeout (libpq's default: wait until the network gives up, minutes
# for a host that drops packets): ferry stops at once, exit 130, as an
# interruption anywhere else -- it went on waiting, and the signal was lost.
printf 'db.one("SELECT 1 AS x")\n' >"$TAP_TMPDIR/q.lua"
# (ferry itself in the background, with job control on: otherwise bash
# starts it with SIGINT ignored, which ferry keeps; see robust/50-interrupt.t)
set -m
for cmd in status "run 20250101_x" "exec $TAP_TMPDIR/q.lua"; do
    : >"$accepts"
    # shellcheck disable=SC2086
    "$FERRY" --dir "$D" --db "host=127.0.0.1 port=$port dbname=x user=x sslmode=disable" $cmd \
        >"$TAP_TMPDIR/int.out" 2>"$TAP_TMPDIR/int.err" &
    PID=$!
    # (once the listener has ferry's connection, ferry waits for its answer)
    wait_until 60 test -s "$accepts"
    kill -INT "$PID"
    t0=$(now_ms)
    # (a watchdog: a ferry that does not stop is killed after 10 s)
    ( sleep 10; kill -KILL "$PID" 2>/dev/null ) &
    dog=$!
    RC=0
    wait "$PID" || RC=$?
    MS=$(( $(now_ms) - t0 ))
    kill "$dog" 2>/dev/null
    wait "$dog" 2>/dev/null
    is "$RC|$(cat "$TAP_TMPDIR/int.out")|$(cat "$TAP_TMPDIR/int.err")" "130||ferry: interrupted (SIGINT)" \
       "Ctrl-C while connecting to a server that never answers ($cmd): exit 130, one line"
    ok $(( MS < 5000 ? 0 : 1 )) "...at once (${MS} ms)"
done
set +m

# authentication_timeout: a session started ahead over TCP with a password
# waits for that password; used after the server gave up on it, it is
# connected again.
PW='Sup3r-Secret-pw'
psql_val "$db" "ALTER DATABASE ferry_connect OWNER TO ferry_pw" >/dev/null
# (3 s: the main session's own handshake, SCRAM included, must finish in
# it, which under make valgrind on a loaded machine took longer than 1 s)
psql_val "$db" "ALTER SYSTEM SET authentication_timeout = '3s'" >/dev/null
psql_val "$db" "SELECT pg_reload_conf()" >/dev/null
cat >"$TAP_TMPDIR/late.lua" <<'LUA'
db.prestart(1)
db.exec("SELECT pg_sleep(5)")            -- longer than authentication_timeout
local other = db.connect()
print("late session: " .. other:one("SELECT current_user AS u").u)
other:close()
LUA
run_ferry --db "postgresql://ferry_pw:$PW@127.0.0.1:$FERRY_PG_TCP_PORT/ferry_connect?sslmode=disable" exec "$TAP_TMPDIR/late.lua"
is "$RC|$OUT" "0|late session: ferry_pw" "a session started ahead and dropped by the server meanwhile: connected again on first use"
unlike "$OUT$ERR" "$PW" "(no password in the output)"
psql_val "$db" "ALTER SYSTEM RESET authentication_timeout" >/dev/null
psql_val "$db" "SELECT pg_reload_conf()" >/dev/null

# A quick failure is reported as it is, tried once: a wrong password.
run_ferry --db "postgresql://ferry_pw:Wr0ng-pw@127.0.0.1:$FERRY_PG_TCP_PORT/ferry_connect?sslmode=disable" --dir "$D" status
is "$RC" 2 "a wrong password: exit 2"
like "$ERR" 'password authentication failed' "... saying so"

# A multi-host string's error is a line per host (and libpq's advice on
# lines of its own): all of them, on one line -- the host that answered
# says why (a wrong password; not a standby), and the first line alone
# told only of the host that was down.
PGPASSFILE=$TAP_TMPDIR/none run_ferry --dir "$D" \
    --db "host=127.0.0.1,127.0.0.1 port=1,$FERRY_PG_TCP_PORT dbname=ferry_connect user=ferry_pw password=Wr0ng-pw sslmode=disable" status
is "$RC|$OUT|$ERR" "2||ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port 1 failed: Connection refused; Is the server running on that host and accepting TCP/IP connections?; connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: FATAL:  password authentication failed for user \"ferry_pw\" [SQLSTATE 28P01]" \
   "two hosts, the first down, a wrong password on the second: one line saying both"
run_ferry --dir "$D" --db "host=127.0.0.1,$PGHOST port=1,$PGPORT dbname=ferry_connect user=${PGUSER:-postgres} target_session_attrs=standby sslmode=disable" status
is "$RC|$OUT|$ERR" "2||ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port 1 failed: Connection refused; Is the server running on that host and accepting TCP/IP connections?; connection to server on socket \"$PGHOST/.s.PGSQL.$PGPORT\" failed: server is not in hot standby mode" \
   "target_session_attrs=standby and no standby: one line, each host's reason"
done_testing
