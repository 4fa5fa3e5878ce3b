# shellcheck shell=bash
# tests/lib/tap.sh - a tiny TAP library for bash tests run by `prove`.
#
#   #!/usr/bin/env bash
#   . "$(dirname "$0")/../lib/tap.sh"
#   plan 3                       # or call done_testing at the end
#   ok $? "name"                 # pass if the exit code is 0
#   is "$got" "expected" "name"
#   like "$got" 'regex' "name"   # bash ERE ([[ =~ ]])
#   unlike "$got" 'regex' "name"
#   diag "message"               # '# ' lines on stderr
#   done_testing
#
# Every assertion returns 0 when it passes and 1 when it fails, so do not run
# tests under `set -e` (a failure would end the script early).
#
# ferry helpers (need the environment of `scripts/pg.sh env`, which
# scripts/with-pg.sh exports):
#   fresh_db NAME        (re)create database NAME, print its libpq URI
#   crm_db NAME [FILE..] fresh_db with the CRM schema (Batches 1-3) and FILEs
#   plan_with_contract N plan N, $CONTRACT = the contract schema, or skip all
#   psql_val DBURI SQL   print the single value SQL returns
#   run_ferry ARGS...    run "$FERRY" ARGS; stdout -> $OUT, stderr -> $ERR,
#                        exit code -> $RC (never aborts the script)
#   require_pg           bail out unless DATABASE_URL is set
#   wait_until SECONDS CMD...  run CMD until it succeeds (0) or SECONDS
#                        have passed (1): a wait on the real condition (a
#                        row of pg_stat_activity, a file), its deadline one
#                        no loaded machine comes near
#   output_is WANT CMD... 0 when CMD prints WANT (for wait_until)

# ---------------------------------------------------------------- TAP core

_TAP_COUNT=0
_TAP_FAILED=0
_TAP_PLANNED=''
_TAP_DONE=''

REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
FERRY=${FERRY:-$REPO_ROOT/bin/ferry}
if [ -x /usr/lib/postgresql/15/bin/psql ]; then
    PSQL=${PSQL:-/usr/lib/postgresql/15/bin/psql}
else
    PSQL=${PSQL:-psql}
fi

plan() {
    _TAP_PLANNED=$1
    echo "1..$1"
}

diag() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        echo "# $line"
    done <<<"$*" >&2
}

note() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        echo "# $line"
    done <<<"$*"
}

_tap_result() { # PASSED(0|1) NAME
    _TAP_COUNT=$((_TAP_COUNT + 1))
    local name=${2:-}
    name=${name//$'\n'/ }
    name=${name//#/\\#}
    if [ "$1" = 0 ]; then
        echo "ok $_TAP_COUNT${name:+ - $name}"
        return 0
    fi
    _TAP_FAILED=$((_TAP_FAILED + 1))
    echo "not ok $_TAP_COUNT${name:+ - $name}"
    local where="${BASH_SOURCE[2]:-?} line ${BASH_LINENO[1]:-?}"
    diag "  Failed test${2:+ '$2'}"$'\n'"  at $where."
    return 1
}

ok() { # EXIT_CODE NAME
    local rc=$1
    if [ "$rc" = 0 ]; then _tap_result 0 "${2:-}"; else _tap_result 1 "${2:-}"; fi
}

pass() { _tap_result 0 "${1:-}"; }
fail() { _tap_result 1 "${1:-}"; }

is() { # GOT EXPECTED NAME
    if [ "$1" == "$2" ]; then
        _tap_result 0 "${3:-}"
        return 0
    fi
    _tap_result 1 "${3:-}"
    if [[ "$1$2" == *$'\n'* ]]; then
        diag "$(diff -u --label expected --label got <(printf '%s\n' "$2") <(printf '%s\n' "$1"))"
    else
        diag "         got: '$1'"$'\n'"    expected: '$2'"
    fi
    return 1
}

isnt() { # GOT UNEXPECTED NAME
    if [ "$1" != "$2" ]; then
        _tap_result 0 "${3:-}"
        return 0
    fi
    _tap_result 1 "${3:-}"
    diag "         got: '$1'"$'\n'"    expected: anything else"
    return 1
}

like() { # GOT REGEX NAME
    if [[ $1 =~ $2 ]]; then
        _tap_result 0 "${3:-}"
        return 0
    fi
    _tap_result 1 "${3:-}"
    diag "                  '$1'"$'\n'"    doesn't match '$2'"
    return 1
}

unlike() { # GOT REGEX NAME
    if ! [[ $1 =~ $2 ]]; then
        _tap_result 0 "${3:-}"
        return 0
    fi
    _tap_result 1 "${3:-}"
    diag "                  '$1'"$'\n'"          matches '$2'"
    return 1
}

skip() { # REASON [COUNT]
    local i
    for (( i = 0; i < ${2:-1}; i++ )); do
        _TAP_COUNT=$((_TAP_COUNT + 1))
        echo "ok $_TAP_COUNT # skip ${1:-}"
    done
}

skip_all() { # REASON
    echo "1..0 # SKIP ${1:-}"
    _TAP_DONE=1
    exit 0
}

bail_out() { # REASON
    echo "Bail out! ${1:-}"
    _TAP_DONE=1
    exit 255
}

done_testing() {
    _TAP_DONE=1
    if [ -z "$_TAP_PLANNED" ]; then
        echo "1..$_TAP_COUNT"
    elif [ "$_TAP_PLANNED" != "$_TAP_COUNT" ]; then
        diag "Looks like you planned $_TAP_PLANNED tests but ran $_TAP_COUNT."
        return 1
    fi
    if [ "$_TAP_FAILED" -gt 0 ]; then
        diag "Looks like you failed $_TAP_FAILED test(s) of $_TAP_COUNT."
        return 1
    fi
    return 0
}

# A per-script temp folder ($TAP_TMPDIR), removed at exit.
TAP_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/ferry-tap.XXXXXX")

# If a test script sets its own EXIT trap, it should call _tap_at_exit in it,
# and run it only in the test's own shell: trap 'in_test_shell && ...' EXIT.
# (A signal that reaches a child bash forked for a background command
# before it has exec'd the command -- a slow machine's window -- runs the
# EXIT trap in that child: it removed TAP_TMPDIR and stopped the test's
# listeners in mid-test, and every later step failed.)
_TAP_PID=$BASHPID
in_test_shell() { [ "$BASHPID" = "$_TAP_PID" ]; }
_tap_at_exit() {
    local rc=$?
    if [ -n "${TAP_TMPDIR:-}" ]; then rm -rf "$TAP_TMPDIR"; fi
    if [ -z "$_TAP_DONE" ] && [ -n "$_TAP_PLANNED" ] && [ "$_TAP_PLANNED" != "$_TAP_COUNT" ]; then
        diag "Looks like you planned $_TAP_PLANNED tests but ran $_TAP_COUNT."
    fi
    return "$rc"
}
trap 'in_test_shell && _tap_at_exit' EXIT

# ---------------------------------------------------------------- ferry helpers

output_is() { [ "$("${@:2}")" = "$1" ]; }

wait_until() { # SECONDS CMD...
    local end=$(( SECONDS + $1 ))
    shift
    while :; do
        "$@" && return 0
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.05
    done
}

# urlencode STRING (shared with scripts/pg.sh)
. "$REPO_ROOT/scripts/urlencode.sh"

require_pg() {
    if [ -z "${DATABASE_URL:-}" ] || [ -z "${PGHOST:-}" ] || [ -z "${PGPORT:-}" ]; then
        bail_out "no private PostgreSQL: run the tests under scripts/with-pg.sh (make test does)"
    fi
}

# db_uri NAME: the libpq URI of database NAME on the private cluster
db_uri() {
    printf 'postgresql:///%s?host=%s&port=%s&user=%s\n' \
        "$(urlencode "$1")" "$(urlencode "${PGHOST:?PGHOST not set}")" \
        "${PGPORT:?PGPORT not set}" "$(urlencode "${PGUSER:-postgres}")"
}

# fresh_db NAME: drop (if it exists) and create database NAME; print its URI
fresh_db() {
    local name=$1 ident
    ident="\"${name//\"/\"\"}\""
    PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" \
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres \
        -c "DROP DATABASE IF EXISTS $ident WITH (FORCE)" \
        -c "CREATE DATABASE $ident" >/dev/null || {
        diag "fresh_db: could not create database $name"
        return 1
    }
    db_uri "$name"
}

# plan_with_contract N: plans N assertions about the contract schema users
# have, ../shared/contract/schema.sql (in $CONTRACT); when it is not beside
# the repo (only CI and the developers' machines have it), skips all N and
# ends the test.
plan_with_contract() {
    plan "$1"
    CONTRACT=$REPO_ROOT/../shared/contract/schema.sql
    if [ ! -r "$CONTRACT" ]; then
        skip "no contract" "$1"
        exit 0
    fi
}

# crm_db NAME [SQL_FILE...]: a fresh database NAME with the CRM schema
# (ferry up --to 20251108: Batches 1-3) and the files loaded; prints its URI
crm_db() {
    local name=$1 uri f
    shift
    uri=$(fresh_db "$name") || return 1
    "$FERRY" --dir "$REPO_ROOT" --db "$uri" -q up --to 20251108 >/dev/null || {
        diag "crm_db: ferry up --to 20251108 failed on $name"
        return 1
    }
    for f in "$@"; do
        "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$uri" -f "$f" >/dev/null || {
            diag "crm_db: loading $f into $name failed"
            return 1
        }
    done
    printf '%s\n' "$uri"
}

# psql_val DBURI SQL: print the single value SQL returns
psql_val() {
    "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# db_snapshot URI: one line per table of the public and ferry schemas, its
# name and an md5 of all its rows, for "nothing was written" checks (a
# ferry schema that appears shows as new lines).
db_snapshot() {
    psql_val "$1" "SELECT coalesce(string_agg(n.nspname || '.' || c.relname || ' ' ||
        (xpath('/row/m/text()', query_to_xml(format(
           'SELECT md5(coalesce(string_agg(t::text, '','' ORDER BY t::text), '''')) AS m FROM %I.%I t',
           n.nspname, c.relname), false, true, '')))[1]::text,
        E'\n' ORDER BY n.nspname, c.relname), 'no tables')
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND n.nspname IN ('public', 'ferry')"
}

# run_ferry ARGS...: stdout -> $OUT, stderr -> $ERR, exit code -> $RC.
# stdin is passed through.  Trailing newlines of OUT and ERR are dropped.
# shellcheck disable=SC2034  # OUT, ERR and RC are for the caller
run_ferry() {
    local tmp=$TAP_TMPDIR
    RC=0
    "$FERRY" "$@" >"$tmp/run.out" 2>"$tmp/run.err" || RC=$?
    OUT=$(cat "$tmp/run.out")
    ERR=$(cat "$tmp/run.err")
    return 0
}

# sigint_after_checkpoint DBURI MIGRATION ARGS...: runs ferry ARGS in the
# background and sends it SIGINT once MIGRATION has a checkpoint in DBURI
# (a batch committed; give it a slow target so that more remain): exit
# code -> $RC, stdout and stderr in $TAP_TMPDIR/bg.out and bg.err.  (set
# -m: a background job of a non-interactive shell ignores SIGINT otherwise,
# see robust/50-interrupt.t)
_checkpointed() { # DBURI MIGRATION
    [ "$(psql_val "$1" "SELECT count(*) FROM ferry.checkpoint WHERE migration = '$2'" 2>/dev/null)" = 1 ]
}
# shellcheck disable=SC2034  # RC is for the caller
sigint_after_checkpoint() {
    local db=$1 id=$2 pid
    shift 2
    set -m
    "$FERRY" "$@" >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
    pid=$!
    wait_until 60 _checkpointed "$db" "$id"
    kill -INT "$pid"
    RC=0
    wait "$pid" || RC=$?
    set +m
}
