#!/usr/bin/env bash
# Every ```lua example of docs/lua-api.md runs with `ferry exec` against a
# real PostgreSQL and exits 0 (the examples check themselves with assert).
# Blocks whose first line is "-- file: ..." or "#!..." are files of a
# migration tree, not scripts: they are skipped.  An example that reads
# ctx.dry_run also runs with --dry-run.
. "$(dirname "$0")/../lib/tap.sh"
require_pg

doc=$REPO_ROOT/docs/lua-api.md
[ -f "$doc" ] || bail_out "no $doc"
db=$(fresh_db ferry_lua_docs)
ex=$TAP_TMPDIR/examples
mkdir -p "$ex"

# split the document: examples/NNNN-LINE.lua
awk -v dir="$ex" '
  /^[ \t]*```lua[ \t]*$/ { inblock = 1; n++; start = NR + 1; file = sprintf("%s/%04d-%d.lua", dir, n, start); next }
  /^[ \t]*```/ && inblock { inblock = 0; close(file); next }
  inblock { print > file }
' "$doc"

count=0
for f in "$ex"/*.lua; do
  [ -e "$f" ] || continue
  first=$(head -n 1 "$f")
  case $first in "-- file:"*|"#!"*) continue ;; esac
  count=$((count + 1))
  line=${f##*-}; line=${line%.lua}
  (cd "$TAP_TMPDIR" && FERRY_PROGRESS_INTERVAL=3600 "$FERRY" --db "$db" exec "$f") >"$f.out" 2>"$f.err"
  rc=$?
  is "$rc" 0 "docs/lua-api.md line $line: the example runs" || diag "$(cat "$f.err")"
  if grep -q 'ctx\.dry_run' "$f" && ! grep -q 'assert(ctx.dry_run == false)' "$f"; then
    (cd "$TAP_TMPDIR" && "$FERRY" --db "$db" exec --dry-run "$f") >"$f.out" 2>"$f.err"
    rc=$?
    is "$rc" 0 "docs/lua-api.md line $line: the example runs with --dry-run" || diag "$(cat "$f.err")"
  fi
done
[ "$count" -ge 30 ]
ok $? "the document has its examples ($count run)"

done_testing
