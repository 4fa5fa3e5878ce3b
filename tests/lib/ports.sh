# shellcheck shell=bash
# tests/lib/ports.sh - TCP ports for tests (source after tap.sh).
#
# A port chosen free and bound later can be taken in between -- by another
# suite's listener, or as the local port of any outgoing connection on the
# machine -- and the test then fails for no fault of ferry's.  So:
#   start_listeners LOG SPEC...  test listeners that choose and hold their
#                        own ports (tests/lib/listen.py says what a SPEC
#                        is): every =NAME in a SPEC sets shell variable
#                        NAME to its port; returns once all listen (or
#                        bails out).  Their pids are in LISTENER_PIDS;
#                        stop_listeners ends them (call it in an EXIT trap).
#   on_free_port FN ARGS...  for a daemon that binds a port itself: calls
#                        FN PORT ARGS... with a port free a moment before,
#                        and again with another while FN returns 1 (the
#                        port was taken first), up to 10 times; FN returns
#                        0 once the daemon listens on it.  1 if none did.
#   free_port            a port free now (for on_free_port's FN, which may
#                        need more than one)

LISTENER_PIDS=()

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_listeners() { # LOG SPEC...
    local log=$1 ports line
    shift
    ports=$(mktemp -u "$TAP_TMPDIR/ports.XXXXXX")
    : >>"$log"
    python3 "$REPO_ROOT/tests/lib/listen.py" "$ports" "$log" "$@" &
    LISTENER_PIDS+=("$!")
    # (ready, or dead: then no waiting out the deadline)
    wait_until 60 eval '[ -e "$ports" ] || ! kill -0 '"$!"' 2>/dev/null'
    [ -e "$ports" ] || bail_out "the test's listeners did not start ($*)"
    while IFS= read -r line; do
        printf -v "${line%%=*}" '%s' "${line#*=}"
    done <"$ports"
}

stop_listeners() {
    local p
    for p in "${LISTENER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${LISTENER_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    LISTENER_PIDS=()
}

on_free_port() { # FN ARGS...
    local fn=$1 port try
    shift
    for try in 1 2 3 4 5 6 7 8 9 10; do
        port=$(free_port) || return 1
        "$fn" "$port" "$@" && return 0
        diag "port $port was taken before it could be used (try $try): another"
    done
    return 1
}
