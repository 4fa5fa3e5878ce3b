#!/usr/bin/env bash
# Ctrl-C that comes while the BEGIN of a transaction waits for the
# server's reply: the BEGIN goes through (the server had run it when the
# cancel came, and ignores a cancel between statements), and the
# interruption is raised at the first Lua instruction after it.
#
# Before, that instruction came before db.transaction's guard knew of the
# transaction, which was left open, with no ROLLBACK.  When it was the
# BEGIN of the transaction recording a run that had finished, close_history
# wrote the outcome again -- inside that open transaction, as a savepoint
# -- and ferry said "interrupted (SIGINT) after X had finished (applied)",
# exit 130, while nothing committed the row: the session closed at exit
# rolled it back, and the row was left 'running' (seen once in a full-suite
# run of robust/52, whose Ctrl-C could then come at any moment of that
# transaction).
#
# The window is one round trip wide.  A proxy on a Unix socket in front of
# the server holds the server's reply to the first BEGIN sent after the
# migration's own statement (its table's name marks it) until ferry's
# Ctrl-C has sent its cancel -- through the proxy too, whose end releases
# the reply.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_interrupt_begin)
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_first/up.sql" 'CREATE TABLE first_t (x int);'
run_ferry --db "$db" --dir "$D" up
is "$RC" 0 "set-up: the history exists"

# held MARK STATEMENT ARGS...: ferry ARGS through a proxy that holds the
# server's reply to the first STATEMENT (its text, as sent) that follows
# MARK in what ferry sends, until the Ctrl-C sent meanwhile (to ferry's
# process group, as a terminal sends it) has sent its cancel -- through
# the proxy too, whose end releases the reply; $RC, $ERR.  (A Unix
# socket's path has at most 107 bytes: a short folder of its own.)
sockdir=$(mktemp -d /tmp/ferry-begin.XXXXXX)
trap 'rm -rf "$sockdir"' EXIT
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
state = {"marked": False, "held": False}
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
                if not state["marked"] and MARK in seen:
                    state["marked"] = True
                    seen = seen[seen.index(MARK) + len(MARK):]
                if state["marked"] and not state["held"] and HOLD in seen:
                    state["held"] = conn["hold"] = True
                    touch("held")
            u.sendall(data)
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
  for _ in $(seq 100); do [ -e "$ctl/listening" ] && break; sleep 0.1; done
  set -m
  "$FERRY" --db "host=$sockdir port=$case_n dbname=ferry_robust_interrupt_begin user=${PGUSER:-postgres}" \
           --dir "$D" "$@" >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
  pid=$!
  for _ in $(seq 250); do [ -e "$ctl/held" ] && break; sleep 0.1; done
  [ -e "$ctl/held" ] || diag "the $statement was not seen"
  [ "$mode" = interrupt ] && kill -INT -- "-$pid"
  RC=0
  wait "$pid" || RC=$?
  set +m
  ERR=$(cat "$TAP_TMPDIR/bg.err")
  [ "$mode" != interrupt ] || [ -e "$ctl/cancelled" ] || diag "the Ctrl-C's cancel did not come while the $statement waited"
  kill "$proxy"
  wait "$proxy" 2>/dev/null
}
rows_of() { psql_val "$db" "SELECT string_agg(operation || '|' || status || '|' || coalesce(error, ''), ' / ' ORDER BY id) FROM ferry.history WHERE migration = '$1'"; }

# --- the BEGIN of the transaction that records a run that had finished
put "$D/migrations/20250102_done/up.lua" 'db.exec("CREATE TABLE begin_marker_t (x int)")'
held begin_marker_t BEGIN run 20250102
is "$RC" 130 "BEGIN of the record: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after 20250102_done had finished (applied); nothing after it was run" \
   "BEGIN of the record: the line says the migration had finished"
is "$(rows_of 20250102_done)" "run|applied|" "BEGIN of the record: the run is recorded applied, as ferry said"

# --- the COMMIT of that transaction, gone through when the cancel came:
# the outcome written again finds it written
put "$D/migrations/20250103_again/up.lua" 'db.exec("CREATE TABLE commit_marker_t (x int)")'
held commit_marker_t COMMIT run 20250103
is "$RC" 130 "COMMIT of the record: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after 20250103_again had finished (applied); nothing after it was run" \
   "COMMIT of the record: the line says the migration had finished"
is "$(rows_of 20250103_again)" "run|applied|" "COMMIT of the record: the run is recorded applied, as ferry said"

# --- the BEGIN of the transaction that records a rollback that had finished
put "$D/migrations/20250103_again/rollback.sql" 'DROP TABLE commit_marker_t;'
held "DROP TABLE commit_marker_t" BEGIN rollback 20250103
is "$RC" 130 "BEGIN of a rollback's record: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after the rollback of 20250103_again had finished (rolled back)" \
   "BEGIN of a rollback's record: the line says the rollback had finished"
is "$(rows_of 20250103_again)" "run|applied| / rollback|rolled back|" \
   "BEGIN of a rollback's record: the rollback is recorded, as ferry said"

# --- the COMMIT of a baseline's row (written and closed in one transaction)
put "$D/migrations/20250104_baselined/up.sql" 'CREATE TABLE baselined_t (x int);'
held 20250104_baselined COMMIT baseline 20250104
is "$RC" 130 "COMMIT of a baseline: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after baselining 2 of 2 migrations (the last: 20250104_baselined); run 'ferry baseline 20250104' again for the rest" \
   "COMMIT of a baseline: the line counts the one its COMMIT recorded"
is "$(rows_of 20250104_baselined)" "baseline|applied|" "COMMIT of a baseline: recorded applied, as ferry said"

# --- the connection lost as the COMMIT of the record went through (the
# server committed it; its reply never came): the row, read on a new
# session, says applied, and so does ferry
put "$D/migrations/20250105_lost/up.lua" 'db.exec("CREATE TABLE lost_marker_t (x int)")'
HELD_MODE=cut held lost_marker_t COMMIT --json run 20250105
is "$RC" 1 "lost at the record's COMMIT: exit 1"
is "$ERR" "ferry: 20250105_lost: the connection was lost as the COMMIT recording its run went through: it is applied (its history row, read on a new session, says so); nothing after it was run" \
   "lost at the record's COMMIT: the line says it is applied"
is "$(rows_of 20250105_lost)" "run|applied|" "lost at the record's COMMIT: the row says applied"
is "$(json_eval "$(cat "$TAP_TMPDIR/bg.out")" '[j["ok"], j["error"]]')" \
   '[false,"the connection was lost as the COMMIT recording its run went through: it is applied (its history row, read on a new session, says so); nothing after it was run"]' \
   "lost at the record's COMMIT: --json's error says it is applied"

# --- the same for a rollback
put "$D/migrations/20250105_lost/rollback.sql" 'DROP TABLE lost_marker_t;'
HELD_MODE=cut held "DROP TABLE lost_marker_t" COMMIT rollback 20250105
is "$RC" 1 "lost at a rollback's record's COMMIT: exit 1"
is "$ERR" "ferry: 20250105_lost: the connection was lost as the COMMIT recording it went through: it is rolled back (its history row, read on a new session, says so)" \
   "lost at a rollback's record's COMMIT: the line says it is rolled back"
is "$(rows_of 20250105_lost)" "run|applied| / rollback|rolled back|" "lost at a rollback's record's COMMIT: the row says rolled back"

is "$(psql_val "$db" "SELECT count(*) FROM ferry.history WHERE status = 'running'")" 0 "no history row is left running"
done_testing
