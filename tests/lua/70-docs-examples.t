#!/usr/bin/env bash
# Every ```lua example of docs/lua-api.md runs with `ferry exec` against a
# real PostgreSQL and exits 0 (the examples check themselves with assert).
# Blocks whose first line is "#!..." or "-- file: ..." are files, not
# scripts: the latter make a migration tree, run below.  An example that reads
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

# The "-- file: PATH" blocks make one migration tree: the rules and
# validate.lua as given, each up.lua block run in turn (ferry check, a dry
# run, a run), then validate.lua, on a "Source" of 2,500 ids and an empty
# "Target" (what the examples read and write).
tree=$TAP_TMPDIR/tree
files=0
for f in "$ex"/*.lua; do
  path=$(head -n 1 "$f" | sed -n 's/^-- file: //p')
  [ -n "$path" ] || continue
  files=$((files + 1))
  case $path in */up.lua) ;; *) mkdir -p "$tree/$(dirname "$path")" && cp "$f" "$tree/$path" ;; esac
done
psql_val "$db" 'CREATE TABLE "Source" (id int PRIMARY KEY); CREATE TABLE "Target" (source_id int);
  INSERT INTO "Source" SELECT generate_series(1, 2500)' >/dev/null
for f in "$ex"/*.lua; do
  path=$(head -n 1 "$f" | sed -n 's/^-- file: //p')
  case $path in */up.lua) ;; *) continue ;; esac
  line=${f##*-}; line=${line%.lua}
  mkdir -p "$tree/$(dirname "$path")" && cp "$f" "$tree/$path"
  id=$(basename "$(dirname "$path")")
  for cmd in check "run $id --dry-run" "run $id --batch-size 1000"; do
    # shellcheck disable=SC2086
    "$FERRY" --db "$db" --dir "$tree" $cmd >"$f.out" 2>"$f.err"
    rc=$?
    is "$rc" 0 "docs/lua-api.md line $line ($path): ferry $cmd" || diag "$(cat "$f.out" "$f.err")"
  done
done
is "$(psql_val "$db" 'SELECT count(*) || '"'"' '"'"' || count(DISTINCT source_id) FROM "Target"')" "2500 2500" \
   "the checkpoint example copied every source row once"
"$FERRY" --db "$db" --dir "$tree" validate 20251201_example >"$ex/validate.out" 2>&1
is "$?|$(cat "$ex/validate.out")" "0|==> validating 20251201_example
✓ PASS every source row has its target  (0 missing)
✓ PASS the database answers
2 check(s), 0 failed" "the validate.lua example passes"
is "$files" 4 "(the document's four migration-tree files)"

done_testing
