#!/usr/bin/env bash
# ferry's own Lua (src/lua/*.lua) is embedded as bytecode compiled at build
# time, not stripped: what a traceback shows of it is what the source gives
# -- the chunk name [ferry]/db.lua and the very line -- as when the source
# was compiled at start.  The lines expected are read from src/lua/db.lua.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg
cd "$REPO_ROOT" || exit 1

# methods.transaction: where it begins, where it calls fn at the top level
# (after its BEGIN) and where it raises fn's error again (its last error())
db_lua=src/lua/db.lua
begins=$(awk '/^function methods.transaction\(/ {print NR; exit}' "$db_lua")
calls=$(awk -v b="$begins" 'NR > b && /own\(conn, "exec", "BEGIN"\)/ {f = 1} f && /xpcall\(fn, mark/ {print NR; exit}' "$db_lua")
raises=$(awk -v b="$begins" 'NR > b && /^end/ {print last; exit} NR > b && /error\(res\[2\], 0\)/ {last = NR}' "$db_lua")
like "$begins $calls $raises" '^[0-9]+ [0-9]+ [0-9]+$' "the lines of db.transaction in src/lua/db.lua ($begins $calls $raises)"

S=$TAP_TMPDIR/tb.lua
put "$S" 'local tb = db.transaction(function() return debug.traceback("here", 1) end)
print((tb:gsub("\t", "")))
'
run_ferry exec "$S"
is "$RC|$ERR" "0|" "a traceback taken inside db.transaction's fn: exit 0"
is "$(printf '%s\n' "$OUT" | sed -n 5p)" "[ferry]/db.lua:$calls: in function <[ferry]/db.lua:$begins>" \
   "it shows db.lua's frame as [ferry]/db.lua and the line of its xpcall"

E=$TAP_TMPDIR/err.lua
put "$E" 'db.transaction(function()
  error("boom")
end)
'
run_ferry -v exec "$E"
is "$RC|$OUT" "1|" "an error raised through db.transaction: exit 1"
is "$(printf '%s\n' "$ERR" | sed -n '1,4p' | tr -d '\t')" "ferry: $E:2: boom
stack traceback:
[C]: in function 'error'
[ferry]/db.lua:$raises: in function <[ferry]/db.lua:$begins>" \
   "--verbose: the error names the script's line; the traceback, db.lua's line that raised it again"
like "$ERR" $'\n\t\\[ferry\\]/ferry\\.engine\\.lua:[0-9]+: in function <\\[ferry\\]/ferry\\.engine\\.lua:[0-9]+>' \
   "...and the engine's frames as [ferry]/ferry.engine.lua"

done_testing
