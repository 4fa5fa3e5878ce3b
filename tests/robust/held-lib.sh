# Sourced by the tests that hold the server's reply to one statement
# (robust/53, robust/54): a proxy on a Unix socket in front of the
# harness's server.  Needs tap.sh and cli-lib.sh sourced, $D (the project
# folder) and $HELD_DB (the database's name) set.
#
# held MARK STATEMENT ARGS...: ferry ARGS through a proxy that holds the
# server's reply to the first STATEMENT (its text, as sent) that follows
# MARK in what ferry sends on one session (the one MARK came on: another
# session's traffic, which the proxy may pass on in any order with it, is
# not looked at), until the Ctrl-C sent meanwhile (to ferry's
# process group, as a terminal sends it) has sent its cancel -- through
# the proxy too, whose end releases the reply; $RC, $ERR.  (A Unix
# socket's path has at most 107 bytes: a short folder of its own.)
sockdir=$(mktemp -d /tmp/ferry-begin.XXXXXX)
# At exit, also a test that stops part way: no proxy or ferry left
# behind, and tap.sh's own clean-up (its folder) still done.
held_pids=()
held_at_exit() {
  local rc=$? p
  for p in "${held_pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$sockdir"
  _tap_at_exit
  return "$rc"
}
trap 'in_test_shell && held_at_exit' EXIT
case_n=0
held() {
  local mark=$1 statement=$2 mode=${HELD_MODE:-interrupt} ctl proxy pid
  shift 2
  case_n=$((case_n + 1))
  ctl=$TAP_TMPDIR/ctl$case_n
  mkdir -p "$ctl"
  python3 - "$sockdir/.s.PGSQL.$case_n" "$PGHOST/.s.PGSQL.$PGPORT" "$ctl" "$mark" "$statement" "$mode" <<'PY' &
import os, socket, sys, threading, time
listen_path, upstream_path, ctl = sys.argv[1:4]
MARK, HOLD, MODE = sys.argv[4].encode(), sys.argv[5].encode() + b"\x00", sys.argv[6]
state = {"marked": None, "held": False}     # marked: the session MARK came on
lock = threading.Lock()
def touch(name):
    open(os.path.join(ctl, name), "w").close()
def close(*socks):
    for s in socks:
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def client_to_server(c, u, conn):
    seen = b""
    try:
        while True:
            data = c.recv(65536)
            if not data: break
            if "cancel" not in conn:   # a CancelRequest: length 16, code 80877102
                conn["cancel"] = len(data) >= 8 and data[4:8] == b"\x04\xd2\x16\x2e"
            seen = (seen + data)[-65536:]
            with lock:
                if state["marked"] is None and MARK in seen:
                    state["marked"] = conn
                    seen = seen[seen.index(MARK) + len(MARK):]
                now_held = state["marked"] is conn and not state["held"] and HOLD in seen
                if now_held:
                    state["held"] = conn["hold"] = True
            u.sendall(data)
            if now_held:
                touch("held")      # (once the statement is on its way to the server: the Ctrl-C comes after)
    except OSError: pass
    close(c, u)
def server_to_client(u, c, conn):
    try:
        while True:
            data = u.recv(65536)
            if not data: break
            if conn.get("hold"):
                conn["hold"] = False
                if MODE == "cut": break      # the reply lost with the connection
                t0 = time.time()
                while time.time() - t0 < 20 and not os.path.exists(os.path.join(ctl, "cancelled")):
                    time.sleep(0.01)
            c.sendall(data)
    except OSError: pass
    if conn.get("cancel"): touch("cancelled")
    close(c, u)
l = socket.socket(socket.AF_UNIX)
l.bind(listen_path); l.listen(16)
touch("listening")
while True:
    c, _ = l.accept()
    u = socket.socket(socket.AF_UNIX); u.connect(upstream_path)
    conn = {}
    threading.Thread(target=client_to_server, args=(c, u, conn), daemon=True).start()
    threading.Thread(target=server_to_client, args=(u, c, conn), daemon=True).start()
PY
  proxy=$!
  held_pids=("$proxy")
  wait_until 60 eval '[ -e "$ctl/listening" ]'
  [ -e "$ctl/listening" ] || diag "the proxy did not start listening"
  set -m
  "$FERRY" --db "host=$sockdir port=$case_n dbname=$HELD_DB user=${PGUSER:-postgres}" \
           --dir "$D" "$@" >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
  pid=$!
  held_pids+=("$pid")
  wait_until 60 eval '[ -e "$ctl/held" ]'
  [ -e "$ctl/held" ] || diag "the $statement was not seen"
  [ "$mode" = interrupt ] && kill -INT -- "-$pid"
  RC=0
  wait "$pid" || RC=$?
  set +m
  ERR=$(cat "$TAP_TMPDIR/bg.err")
  [ "$mode" != interrupt ] || [ -e "$ctl/cancelled" ] || diag "the Ctrl-C's cancel did not come while the $statement waited"
  kill "$proxy"
  wait "$proxy" 2>/dev/null
  held_pids=()
}
