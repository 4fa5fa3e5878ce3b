#!/usr/bin/env bash
# An error whose text holds a NUL byte (a script's error("..." .. value)
# with a value read from a file, a binary payload) was cut at it: the
# traceback ferry adds to an error (debug.traceback) is built from a C
# string.  The error line on stderr, the history row and the --json
# object all said "bad <U+FFFD> and " -- the rest of the message, and
# the escape sequence after the NUL, gone.  The NUL now reads U+FFFD, as
# an invalid byte does, and the whole message is kept (its control
# characters escaped on the terminal, as for any error).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_nul/up.lua" 'stats.declare{"rows"}
error("bad \xff and \0 nul and \x1b[31m red")'
mkdir -p "$D/rules"
db=$(fresh_db ferry_cli_error_nul)
R=$'\xef\xbf\xbd'      # U+FFFD

run_ferry --db "$db" --dir "$D" run 20250101
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/20250101_nul/up.lua:2: bad $R and $R nul and \\x1b[31m red" \
   "the error line keeps what follows a NUL byte, the escape sequence escaped"
is "$(psql_val "$db" "SELECT operation || '|' || status || '|' || split_part(error, E'\\n', 1) FROM ferry.history")" "run|failed|migrations/20250101_nul/up.lua:2: bad $R and $R nul and "$'\x1b'"[31m red" \
   "...and so does the history row (its first line; the traceback follows)"
run_ferry --db "$db" --dir "$D" --json run 20250101
is "$RC|$(json_eval "$OUT" 'j["error"]')" "1|migrations/20250101_nul/up.lua:2: bad $R and $R nul and "$'\x1b'"[31m red" \
   "...and the --json object"

put "$TAP_TMPDIR/x.lua" 'local t = {}
error("left \0 right")'
run_ferry exec "$TAP_TMPDIR/x.lua"
is "$RC|$ERR" "1|ferry: $TAP_TMPDIR/x.lua:2: left $R right" "ferry exec: the same"
done_testing
