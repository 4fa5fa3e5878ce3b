#!/usr/bin/env bash
# A connection pooler (PgBouncer) between ferry and the server.  In session
# mode a client keeps one server session, and ferry works as on the server
# itself: Batch 4's dry run, run, validate, status and history, and an exec
# script with db.connect.  In transaction or statement mode the server
# session changes under the client between transactions, which breaks what
# ferry keeps in its session -- its migration lock (another ferry could
# run the same migration at once), its settings (a dry run's read-only
# would be left on a pooled session for the next client, the application
# too, and be missing where ferry's next statement runs) -- so ferry
# refuses at once, exit 2, one line saying why and what to do, having set
# nothing on the pool's sessions.
#
# pgbouncer is one of the test packages of scripts/deps.sh; without it (a
# machine where deps.sh could not install it) the test is skipped.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/ports.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$PGBOUNCER" ] || skip_all "pgbouncer is not installed (bash scripts/deps.sh test installs it, as root)"

PW='Po0l-Secret-pw'   # the pool's own, checked by pgbouncer
db=$(crm_db ferry_pooler "$REPO_ROOT/demo/data.sql") || bail_out "no CRM database"

# A pgbouncer (NAME), one database name per pool mode, all to the same
# database through the server's socket; its clients log in with a password
# (pgbouncer refuses to run as root: as root it runs as the server's user,
# which must read its folder).  Sets PORT_<NAME>.  Its port is one free a
# moment before, which something else may take first: then it says
# "nowhere to listen on" and exits, and another port is tried.
start_pgbouncer() { # NAME [SETTING...]
    on_free_port pgbouncer_on "$@" || bail_out "pgbouncer $1 did not start"
}
pgbouncer_on() { # PORT NAME [SETTING...]: 0 once it listens on PORT
    local port=$1 name=$2 dir=$TAP_TMPDIR/pgbouncer-$2 target log
    shift 2
    mkdir -p "$dir"
    log=$dir/pgbouncer.log
    target="host=$PGHOST port=$PGPORT dbname=ferry_pooler"
    {
        printf '[databases]\n'
        printf '%s = %s pool_mode=%s\n' session "$target" session transaction "$target" transaction \
                                         statement "$target" statement
        printf '[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %s\nunix_socket_dir =\n' "$port"
        printf 'auth_type = scram-sha-256\nauth_file = %s/userlist.txt\n' "$dir"
        printf 'logfile = %s\npidfile = %s/pgbouncer.pid\n' "$log" "$dir"
        printf '%s\n' "$@"
    } >"$dir/pgbouncer.ini"
    printf '"%s" "%s"\n' "${PGUSER:-postgres}" "$PW" >"$dir/userlist.txt"
    : >"$log"
    if [ "$(id -u)" -eq 0 ]; then
        chmod 711 "$TAP_TMPDIR"
        chown -R postgres "$dir"
        runuser -u postgres -- "$PGBOUNCER" -d -q "$dir/pgbouncer.ini"
    else
        "$PGBOUNCER" -d -q "$dir/pgbouncer.ini"
    fi
    # (-d: it binds its port once in the background, and says which way
    # that went in its log)
    wait_until 60 grep -qE "listening on 127\.0\.0\.1:$port\b|FATAL" "$log"
    grep -q "listening on 127\.0\.0\.1:$port\b" "$log" || return 1
    wait_until 60 test -s "$dir/pgbouncer.pid"
    PIDFILES+=("$dir/pgbouncer.pid")
    printf -v "PORT_$name" '%s' "$port"
}
PIDFILES=()
stop_pgbouncers() {
    local f
    for f in "${PIDFILES[@]}"; do kill "$(cat "$f" 2>/dev/null)" 2>/dev/null; done
    _tap_at_exit
}
trap 'in_test_shell && stop_pgbouncers' EXIT
start_pgbouncer lifo
# (lends its idle sessions in turn, not the one used last)
start_pgbouncer rr "server_round_robin = 1"
# (takes one client at a time)
start_pgbouncer one "max_client_conn = 1"
# (two server sessions, for as long as their clients keep them; a client
# that waits for one more than 1 s is turned away)
start_pgbouncer small "default_pool_size = 2" "query_wait_timeout = 1"
url() { # DATABASE [PGBOUNCER]
    local port=PORT_${2:-lifo}
    printf 'postgresql://%s:%s@127.0.0.1:%s/%s?sslmode=disable' "$(urlencode "${PGUSER:-postgres}")" "$PW" "${!port}" "$1"
}
# a setting as a client of the pool sees it
pool_setting() { "$PSQL" -X -A -t -q -d "$(url "$1")" -c "SHOW $2"; }
# N server sessions in the pool, idle
warm_up() { # URL N
    local i
    for (( i = 0; i < $2; i++ )); do "$PSQL" -X -q -d "$1" -c "SELECT pg_sleep(0.2)" >/dev/null & done
    wait
}
all_out=''
collect() { all_out+=$'\n'"$OUT"$'\n'"$ERR"; }
B4=20251110_backfill_conversations_messages

# --- session mode: everything works
S=$(url session)
run_ferry --db "$S" --dir "$REPO_ROOT" -q run $B4 --dry-run
is "$RC|$ERR" "0|" "session pooling: Batch 4's dry run works"
collect
is "$(pool_setting session default_transaction_read_only)" off "...and leaves no read-only session in the pool"
run_ferry --db "$S" --dir "$REPO_ROOT" -q run $B4
is "$RC|$ERR" "0|" "session pooling: Batch 4 runs"
collect
is "$(psql_val "$db" "SELECT count(*) FROM \"Message\" WHERE metadata->>'createdBy' = '$B4'")" 21 "...and writes its messages"
run_ferry --db "$S" --dir "$REPO_ROOT" -q validate $B4
is "$RC|$ERR" "0|" "session pooling: validate passes"
run_ferry --db "$S" --dir "$REPO_ROOT" status
is "$RC|$(grep -c "^$B4 *applied" <<<"$OUT")" "0|1" "session pooling: status shows it applied"
run_ferry --db "$S" --dir "$REPO_ROOT" -v history $B4
is "$RC|$(grep -c " run  *applied" <<<"$OUT")" "0|1" "session pooling: history shows the run"
collect
put "$TAP_TMPDIR/two.lua" 'local c = db.connect(...)
print(c:one("SELECT current_user AS u").u, db.one("SELECT current_database() AS d").d)
c:close()'
run_ferry --db "$S" exec "$TAP_TMPDIR/two.lua" "$S"
is "$RC|$OUT|$ERR" "0|${PGUSER:-postgres}"$'\tferry_pooler|' "session pooling: exec with db.connect works"
# (the pooler gives its clients backend pids of its own: a script's
# pg_cancel_backend or pg_locks needs the server's)
put "$TAP_TMPDIR/pid.lua" 'local c = db.connect()
print(db.backend_pid() == db.one("SELECT pg_backend_pid() AS p").p, c:backend_pid() == c:one("SELECT pg_backend_pid() AS p").p)'
run_ferry --db "$S" exec "$TAP_TMPDIR/pid.lua"
is "$RC|$OUT|$ERR" $'0|true\ttrue|' "session pooling: db.backend_pid() and conn:backend_pid() are the server's pids"

# A ferry killed (kill -9, its machine gone) while its main session waited
# idle -- here for a second session's statement: the pooler keeps that
# server session and lends it on (after DISCARD ALL, which drops ferry's
# lock), so it outlives ferry.  Its run is no longer running: status and
# history say interrupted, and the next run closes its row.
W=$TAP_TMPDIR/wait
mark=$TAP_TMPDIR/wait.mark
put "$W/migrations/20250101_wait/up.lua" "if io.open('$mark') then db.connect():exec('SELECT pg_sleep(60) /* ferry_pooler_wait */') end
stats.inc('done')"
touch "$mark"
"$FERRY" --db "$S" --dir "$W" run 20250101 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
    [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%ferry_pooler_wait%' AND pid <> pg_backend_pid()")" = 1 ] && break
    sleep 0.1
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null
rm -f "$mark"
# (the session of its statement ends once the server sees ferry gone)
for _ in $(seq 100); do
    [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%ferry_pooler_wait%' AND pid <> pg_backend_pid()")" = 0 ] && break
    sleep 0.1
done
run_ferry --db "$S" --dir "$W" status
is "$RC|$(grep '^20250101_wait' <<<"$OUT")" "0|$(status_line 20250101_wait interrupted - "process gone; the next run starts it again")" \
   "session pooling, ferry killed while its session was idle: status says interrupted"
run_ferry --db "$S" --dir "$W" history
like "$OUT" "20250101_wait +run +interrupted" "...and so does history"
run_ferry --db "$S" --dir "$W" -q run 20250101
is "$RC|$ERR" "0|" "...the next run applies it"
is "$(history "$(db_uri ferry_pooler)" "WHERE migration = '20250101_wait'")" $'20250101_wait|run|failed\n20250101_wait|run|applied' \
   "...and closes the killed run's row (failed)"

# A run that opens one session more than the pool has room for: the pooler
# turns it away after its query_wait_timeout -- said, with what to do (it
# read "connection lost: server closed the connection unexpectedly", a
# server crash)
put "$W/migrations/20250102_three/up.lua" 'local a, b = db.connect(), db.connect()
stats.inc("done")'
run_ferry --db "$(url session small)" --dir "$W" run 20250102
is "$RC|$ERR" "1|ferry: 20250102_three: migrations/20250102_three/up.lua:1: connection lost: FATAL:  query_wait_timeout; server closed the connection unexpectedly; the run had got to: nothing counted yet (the batches the server had committed are kept: a crash of the server can lose the last few, which the re-run redoes); re-run to resume; the connection pooler found no server session free for one of the run's sessions in time (PgBouncer's query_wait_timeout; a data migration opens its own: --jobs 2 writers, the main session one of them, and its readers): lower --jobs, or have its pool made larger (default_pool_size), or connect to the server directly" \
   "a run's third session in a pool of two: exit 1, the pooler's word and what to do"

# --- transaction and statement mode: refused at once, nothing set
refusal="ferry: cannot connect to the database: a connection pooler between ferry and the server does not keep one server session for ferry's connection (PgBouncer with pool_mode = transaction or statement): ferry keeps its migration lock and its settings (a dry run's read-only) in its session; connect to the server directly, or through a pool in session mode"
before=$(db_snapshot "$db")
warm_up "$(url transaction)" 3
# (two: lent in turn, a and b, the second client's transaction would put
# them back in the order they were -- its pg's next statement runs on a
# again, its second on b)
warm_up "$(url transaction rr)" 2
for pool in "transaction lifo" "statement lifo" "transaction rr"; do
    # shellcheck disable=SC2086
    T=$(url $pool)
    mode=${pool% *}
    [ "$pool" = "transaction rr" ] && mode="transaction (round robin)"
    for cmd in "run $B4 --dry-run" "rollback $B4" "status" "history" "validate $B4"; do
        # shellcheck disable=SC2086
        run_ferry --db "$T" --dir "$REPO_ROOT" $cmd
        is "$RC|$OUT|$ERR" "2||$refusal" "$mode pooling: ferry $cmd is refused, exit 2, one line"
        collect
    done
    run_ferry --db "$S" exec "$TAP_TMPDIR/two.lua" "$T"
    is "$RC|$OUT|$ERR" "2||$refusal" "$mode pooling: an exec script's db.connect is refused too"
done
# a pooler that would not take the second session of the check
run_ferry --db "$(url session one)" --dir "$REPO_ROOT" status
is "$RC|$OUT" "2|" "a pooler that refuses the second session ferry asks it with: exit 2"
is "$ERR" "ferry: cannot connect to the database: a connection pooler is between ferry and the server, and a second session to find out whether it keeps one server session for ferry's connection failed: connection to server at \"127.0.0.1\", port $PORT_one failed: FATAL:  no more connections allowed (max_client_conn); connect to the server directly, or give the pool room for one more session" \
   "...saying so in one line"
# a pool with no server session free for the second session of the check
# (its pool full): said, not taken for transaction pooling
# (the holder sleeps until ferry is done -- its start can take seconds, under valgrind)
"$PSQL" -X -q -d "$(url session small)" -c "SELECT pg_sleep(60) /* ferry_pool_holder */" >/dev/null 2>&1 &
holder=$!
# (the pool is full once the holder's statement runs on the server)
holding() {
    [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%ferry_pool_holder%' AND state = 'active' AND pid <> pg_backend_pid()")" = 1 ]
}
wait_until 60 holding
run_ferry --db "$(url session small)" --dir "$REPO_ROOT" status
psql_val "$db" "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%ferry_pool_holder%' AND pid <> pg_backend_pid()" >/dev/null
is "$RC|$OUT" "2|" "a full pool (no server session for the second session ferry asks it with): exit 2"
is "$ERR" "ferry: cannot connect to the database: a connection pooler is between ferry and the server, and a second session to find out whether it keeps one server session for ferry's connection failed: FATAL:  query_wait_timeout; connect to the server directly, or give the pool room for one more session" \
   "...saying so in one line, the pooler's word first"
wait "$holder"
is "$(db_snapshot "$db")" "$before" "nothing written (the history, the rows as they were)"
is "$(pool_setting transaction default_transaction_read_only)|$(pool_setting transaction lock_timeout)" "off|0" \
   "no ferry setting left on the pool's sessions (the dry run's read-only, --lock-timeout)"

unlike "$all_out" "$PW" "the password is never printed"
done_testing
