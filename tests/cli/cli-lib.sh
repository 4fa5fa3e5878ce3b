# shellcheck shell=bash
# tests/cli/cli-lib.sh - helpers shared by the CLI tests (tests/cli/*.t).
# shellcheck disable=SC2034  # BG_PID, STATUS_HEADER and TS are for the tests
# Sourced after tests/lib/tap.sh.
#
#   put FILE TEXT          write TEXT (printf %s) to FILE, creating folders
#   json_eval JSON EXPR    parse JSON (must be exactly one JSON object), print
#                          the Python expression EXPR over it (variable j):
#                          strings as they are, anything else as compact JSON.
#                          Exits non-zero (and prints the reason) otherwise.
#   history DBURI [WHERE]  "migration|operation|status" of ferry.history rows,
#                          one a line, in id order
#   history_errors DBURI MIGRATION
#                          "operation|status|error" of MIGRATION's rows, in
#                          id order, joined by ' / '
#   ferry_bg OUTPREFIX ARGS...
#                          run ferry in the background; OUTPREFIX.out/.err/.rc
#                          get its stdout, stderr, exit code; OUTPREFIX.ms
#                          the wall time in milliseconds, OUTPREFIX.end the
#                          time it ended (now_ms).  Sets BG_PID.
#   now_ms                 milliseconds since the epoch
#   status_line MIG STATUS APPLIED NOTE
#                          one line of `ferry status` as it is formatted
#   norm_times TEXT        replace ISO timestamps (2025-01-01T00:00:00Z) with
#                          YYYY-MM-DDTHH:MM:SSZ

put() {
    mkdir -p "$(dirname "$1")" && printf '%s' "$2" >"$1"
}

json_eval() {
    python3 - "$1" "$2" <<'PY'
import json, sys
try:
    j = json.loads(sys.argv[1])
except ValueError as e:
    print("NOT ONE JSON DOCUMENT: %s" % e)
    sys.exit(1)
if not isinstance(j, dict):
    print("NOT A JSON OBJECT")
    sys.exit(1)
try:
    v = eval(sys.argv[2])
except Exception as e:
    print("EXPR FAILED: %r" % e)
    sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))
PY
}

history() {
    psql_val "$1" "SELECT migration || '|' || operation || '|' || status FROM ferry.history ${2:-} ORDER BY id"
}

history_errors() {
    psql_val "$1" "SELECT string_agg(operation || '|' || status || '|' || coalesce(error, ''), ' / ' ORDER BY id) FROM ferry.history WHERE migration = '$2'"
}

now_ms() { date +%s%3N; }

ferry_bg() {
    local pre=$1
    shift
    (
        t0=$(now_ms)
        rc=0
        "$FERRY" "$@" >"$pre.out" 2>"$pre.err" || rc=$?
        t1=$(now_ms)
        echo $(( t1 - t0 )) >"$pre.ms"
        echo "$t1" >"$pre.end"
        echo "$rc" >"$pre.rc"
    ) &
    BG_PID=$!
}

status_line() {
    printf '%-45s %-12s %-21s %s' "$1" "$2" "$3" "$4"
}

norm_times() {
    sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/YYYY-MM-DDTHH:MM:SSZ/g' <<<"$1"
}

STATUS_HEADER=$(status_line MIGRATION STATUS "APPLIED AT" CHECKSUM)
TS=YYYY-MM-DDTHH:MM:SSZ

# The advice after a session the server refused for want of a connection
# slot (53300), for --jobs JOBS: lower --jobs only when there is more than one.
connection_slot_hint() {   # JOBS
    local lower="lower --jobs, or "
    [ "$1" -gt 1 ] || lower=""
    echo "; the server refused one more session (a data migration opens its own: --jobs $1 writers, the main session one of them, and its readers): ${lower}ask the DBA for more connections (max_connections, or the CONNECTION LIMIT of the role or the database), and re-run to resume (everything up to the last checkpoint is committed)"
}
