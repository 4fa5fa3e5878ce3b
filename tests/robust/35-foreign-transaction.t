#!/usr/bin/env bash
# A server session that is inside a transaction ferry did not open when
# its session-settings statement arrives.  pgpool-II in raw mode opens one
# before that statement (robust/34-pgpool.t): it has written nothing (no
# xid) and ferry ends it with COMMIT.  Two other ways it can go:
# - a pooler that hands ferry a server session in the middle of another
#   client's transaction, one that has written (an xid assigned): ferry
#   neither commits nor rolls back another client's work -- it closes the
#   connection and refuses, exit 2, one line, the other client's write
#   not committed by ferry;
# - the COMMIT itself fails (the connection drops in it, or the server
#   refuses it): its own error is said, redacted, not the pooler that
#   leaves transactions open.
#
# A proxy on a Unix socket in front of the harness's server stands for the
# pooler: after the startup handshake of each session it sends a simple
# query of its own (MODE's) and swallows its replies before it passes
# ferry's traffic on; in mode drop it drops the connection when ferry
# sends COMMIT, in mode refuse it sends, instead of that COMMIT, a
# statement the server refuses with the password in its message.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

DB=ferry_robust_foreign_tx
db=$(fresh_db $DB)
psql_val "$db" "CREATE TABLE other_client (n int)" >/dev/null
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_first/up.sql" 'CREATE TABLE first_t (x int);'

PW='Fo-reign-Secret-pw'
sockdir=$(mktemp -d /tmp/ferry-foreign.XXXXXX)
proxy=
trap 'in_test_shell && { kill $proxy 2>/dev/null; rm -rf "$sockdir"; _tap_at_exit; }' EXIT
case_n=0
# through MODE [INJECT] -- ferry ARGS through the proxy; $RC, $OUT, $ERR
through() {
  local mode=$1 inject=$2
  shift 2
  case_n=$((case_n + 1))
  python3 - "$sockdir/.s.PGSQL.$case_n" "$PGHOST/.s.PGSQL.$PGPORT" "$mode" "$inject" "$PW" <<'PY' &
import socket, struct, sys, threading
listen_path, upstream_path, MODE, INJECT, PW = sys.argv[1:6]
def close(*socks):
    for s in socks:
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def recv_exact(s, n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more: raise OSError("closed")
        data += more
    return data
def message(s):
    head = recv_exact(s, 5)
    return head + recv_exact(s, struct.unpack("!i", head[1:])[0] - 4)
def query(sql):
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!i", len(body) + 4) + body
def client_to_server(c, u):
    try:
        head = recv_exact(c, 4)                 # the startup packet (or a cancel)
        u.sendall(head + recv_exact(c, struct.unpack("!i", head)[0] - 4))
        while True:
            m = message(c)
            if m[0:1] == b"Q" and m[5:] == b"COMMIT\0":
                if MODE == "drop": break
                if MODE == "refuse": m = query("SELECT '%s'::int" % PW)
            u.sendall(m)
    except OSError: pass
    close(c, u)
def server_to_client(u, c):
    first = True
    try:
        while True:
            m = message(u)
            if m[0:1] == b"Z" and first:
                first = False
                # the handshake is over: the pooler's own query first, its
                # replies swallowed up to its ReadyForQuery
                if INJECT:
                    u.sendall(query(INJECT))
                    while message(u)[0:1] != b"Z": pass
            c.sendall(m)
    except OSError: pass
    close(c, u)
l = socket.socket(socket.AF_UNIX)
l.bind(listen_path); l.listen(16)
while True:
    c, _ = l.accept()
    u = socket.socket(socket.AF_UNIX); u.connect(upstream_path)
    threading.Thread(target=client_to_server, args=(c, u), daemon=True).start()
    threading.Thread(target=server_to_client, args=(u, c), daemon=True).start()
PY
  proxy=$!
  wait_until 60 eval '[ -S "$sockdir/.s.PGSQL.$case_n" ]'
  run_ferry --db "host=$sockdir port=$case_n dbname=$DB user=${PGUSER:-postgres} password=$PW" --dir "$D" "$@"
  kill "$proxy"
  wait "$proxy" 2>/dev/null
}

# --- the transaction pgpool opens: nothing written, ended with COMMIT
through pass "BEGIN; SELECT 1" -q up
is "$RC|$OUT|$ERR" "0||" "a transaction opened before ferry's settings that wrote nothing: ended, ferry works"
is "$(psql_val "$db" "SELECT to_regclass('first_t') IS NOT NULL, (SELECT status FROM ferry.history WHERE migration = '20250101_first')")" \
   "t|applied" "...and its writes are committed"

# --- another client's transaction, one that has written
refusal="ferry: cannot connect to the database: a connection pooler between ferry and the server handed ferry a server session inside another client's transaction, one that has written: ferry neither commits nor rolls back another client's work; connect to the server directly, or through a pool in session mode"
through pass "BEGIN; INSERT INTO other_client VALUES (1)" status
is "$RC|$OUT|$ERR" "2||$refusal" "a session inside another client's transaction that wrote a row: refused, exit 2, one line"
is "$(psql_val "$db" "SELECT count(*) FROM other_client")" 0 "...and that client's row is not committed by ferry"
through pass "BEGIN; SELECT txid_current()" status
is "$RC|$OUT|$ERR" "2||$refusal" "one whose transaction took an xid (txid_current()): refused too"
through pass "BEGIN; CREATE TEMP TABLE x()" -q up
is "$RC|$OUT|$ERR" "2||$refusal" "one that created a temporary table: up refused too"

# --- the COMMIT that ends the foreign transaction fails
through drop "BEGIN; SELECT 1" status
is "$RC|$OUT|$ERR" "1||ferry: connection lost: server closed the connection unexpectedly" \
   "the connection dropped in that COMMIT: libpq's error, as any connection lost, exit 1, no pooler blamed"
through drop "BEGIN; SELECT 1" -v status
is "$RC|$OUT|$(head -3 <<<"$ERR")" "1||ferry: connection lost: server closed the connection unexpectedly
	This probably means the server terminated abnormally
	before or while processing the request. (cannot commit the transaction that was open around the session settings)" \
   "...with -v, the rest of it and what ferry was doing (then the traceback)"
through refuse "BEGIN; SELECT 1" status
is "$RC|$OUT|$ERR" "2||ferry: cannot connect to the database: cannot commit the transaction that was open around the session settings: invalid input syntax for type integer: \"***\" [SQLSTATE 22P02]" \
   "that COMMIT refused by the server: its error, the password redacted, exit 2"

done_testing
