#!/usr/bin/env bash
# ferry's output that cannot be written to stdout (a full disk: /dev/full;
# a pipe nobody reads) is not lost in silence: ferry says so on stderr,
# "ferry: cannot write to stdout: <why>", and exits 1 where it would have
# exited 0 (a command that failed keeps its own code) -- every command,
# --json or not, and exec, whose stdout is the script's.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_stdout_write_error)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE t (x int);'
put "$D/migrations/20250101_a/validate.lua" 'check("t exists", function() return db.one("SELECT to_regclass($1) IS NOT NULL AS ok", "t").ok end)'
put "$TAP_TMPDIR/hello.lua" 'print("hello from exec")'

FULL="ferry: cannot write to stdout: No space left on device"
# full ARGS...: ferry ARGS >/dev/full; $RC and $ERR
full() {
    RC=0
    "$FERRY" "$@" >/dev/full 2>"$TAP_TMPDIR/full.err" || RC=$?
    ERR=$(cat "$TAP_TMPDIR/full.err")
}

run_ferry --dir "$D" -q up
is "$RC" 0 "set-up: the migration is applied"

full --dir "$D" --json validate 20250101
is "$RC|$ERR" "1|$FULL" "validate --json >/dev/full: the JSON object is lost: said on stderr, exit 1"
full --dir "$D" validate 20250101
is "$RC|$ERR" "1|$FULL" "validate >/dev/full: the same"
full --dir "$D" --json status
is "$RC|$ERR" "1|$FULL" "status --json >/dev/full: the same"
full --dir "$D" status
is "$RC|$ERR" "1|$FULL" "status >/dev/full: the same"
full --dir "$D" --json up
is "$RC|$ERR" "1|$FULL" "up --json (nothing to do) >/dev/full: the same"
full --dir "$D" --json check
is "$RC|$ERR" "1|$FULL" "check --json >/dev/full: the same"
full --version
is "$RC|$ERR" "1|$FULL" "--version >/dev/full: the same"
full --json --version
is "$RC|$ERR" "1|$FULL" "--json --version >/dev/full: the same"
full --help
is "$RC|$ERR" "1|$FULL" "--help >/dev/full: the same"
full --dir "$D" exec "$TAP_TMPDIR/hello.lua"
is "$RC|$ERR" "1|$FULL" "exec: a script's print to /dev/full: the same"

# a command that failed keeps its code; the lost output is said too
full --dir "$D" --json validate 20250199
is "$RC" 2 "a usage error under --json >/dev/full: exit 2, its own code"
is "$ERR" "ferry: unknown migration 20250199
$FULL" "...both said on stderr"

# output that was written: nothing said, exit 0
run_ferry --dir "$D" --json validate 20250101
is "$RC|$ERR|$(json_eval "$OUT" 'j["ok"]')" "0||true" "validate --json to a file: exit 0, nothing on stderr"

# the reader of stdout gone before ferry writes at the end (ferry status |
# grep -q ..., | head -1): the reader's choice, nothing lost that it wanted
# -- no message, the command's own code (ferry is not killed by SIGPIPE)
"$FERRY" --dir "$D" --json status 2>"$TAP_TMPDIR/err" | true
RC=${PIPESTATUS[0]}
is "$RC|$(cat "$TAP_TMPDIR/err")" "0|" "status --json | true: exit 0, nothing said"
"$FERRY" --dir "$D" validate 20250199 2>"$TAP_TMPDIR/err" | true
RC=${PIPESTATUS[0]}
is "$RC|$(cat "$TAP_TMPDIR/err")" "2|ferry: unknown migration 20250199" "...a command that failed keeps its code and line"

done_testing
