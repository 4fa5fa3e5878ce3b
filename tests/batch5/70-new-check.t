#!/usr/bin/env bash
# Authoring: `ferry check` runs rules.memory_notes' tests with the repo's
# scripts; `ferry new NAME` gives a migration that passes `ferry check`,
# runs under --dry-run and for real, validates and rolls back.
. "$(dirname "$0")/lib.sh"

run_ferry --dir "$REPO_ROOT" check
is "$RC" 0 "ferry check passes on the repo"
like "$OUT" "ok   migrations/$B5/up.lua" "it compiles Batch 5's up.lua"
like "$OUT" "ok   migrations/$B5/validate.lua" "... and its validate.lua"
like "$OUT" 'ok   rules\.memory_notes  [0-9]+ tests passed' "... and runs rules.memory_notes' tests"

# A broken rule test is caught.
B5_DIR=$(b5_scratch)
sed -i 's|t.eq(M.kind("summary"), "summary")|t.eq(M.kind("summary"), "fact")|' "$B5_DIR/rules/memory_notes.lua"
run_ferry --dir "$B5_DIR" check
is "$RC" 1 "a failing rule test fails ferry check"
like "$OUT" 'FAIL rules\.memory_notes test "kinds"  .*expected "fact", got "summary"' "... naming the test and the values"

# ferry new in an empty tree
D=$TAP_TMPDIR/newtree
mkdir -p "$D"
run_ferry --dir "$D" new notes_example
is "$RC" 0 "ferry new exits 0"
id=$(cd "$D/migrations" && ls -d ./*_notes_example | sed 's|^\./||')
like "$id" '^[0-9]{8}_notes_example$' "it creates migrations/<date>_notes_example"
is "$(cd "$D/migrations/$id" && ls | tr '\n' ' ')" "README.md rollback.sql up.lua validate.lua " "with up.lua, rollback.sql, validate.lua, README.md"
like "$OUT" "created migrations/$id/" "it says what it created"

run_ferry --dir "$D" check
is "$RC" 0 "the scaffold passes ferry check"

URI=$(b5_db b5_70_new) || bail_out "cannot build the database"
before=$(b5_tables "$URI")
run_ferry --dir "$D" --db "$URI" run "$id" --dry-run
is "$RC" 0 "the scaffold runs under --dry-run"
like "$OUT" 'Rows seen: +[1-9]' "... over a real table"
is "$(b5_tables "$URI")" "$before" "... writing nothing"
run_ferry --dir "$D" --db "$URI" run "$id"
is "$RC" 0 "the scaffold runs for real"
is "$(q "$URI" "SELECT status FROM ferry.history WHERE migration = '$id'")" applied "... and is recorded as applied"
run_ferry --dir "$D" --db "$URI" validate "$id"
is "$RC" 0 "its validate.lua passes"
run_ferry --dir "$D" --db "$URI" rollback "$id"
is "$RC" 0 "its rollback.sql runs"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$D/migrations/$id/rollback.sql" >/dev/null 2>&1
ok $? "its rollback.sql runs under psql -f"

done_testing
