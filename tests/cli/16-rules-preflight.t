#!/usr/bin/env bash
# The preflight compiles the rules only for a command that runs Lua of a
# migration (up.lua, down.lua, validate.lua): a syntax error in a rule then
# stops it before anything is written (exit 2, file:line).  A command that
# runs only SQL files (up.sql, rollback.sql), or none, does not read rules/:
# a rule in the middle of an edit must not block an emergency rollback.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

B3=20251108_link_customers
B4=20251110_backfill_conversations_messages
B4_MINE="metadata->>'createdBy' = '$B4'"

# ------------------------------------------- the repository's migrations
# A database with every migration applied, and a copy of migrations/ and
# rules/ whose rules/memory_notes.lua an operator is editing.
db=$(crm_db ferry_cli_preflight "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
D=$TAP_TMPDIR/repo
mkdir -p "$D"
cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$D/"
run_ferry --db "$db" --dir "$D" -q up
is "$RC|$ERR" "0|" "every migration applied"
messages=$(psql_val "$db" "SELECT count(*) FROM \"Message\" WHERE $B4_MINE")
like "$messages" '^[1-9][0-9]*$' "Batch 4 wrote messages"

echo 'local x = = 1' >>"$D/rules/memory_notes.lua"
broken_line=$(wc -l <"$D/rules/memory_notes.lua")
SYNTAX="ferry: rules/memory_notes.lua:$broken_line: <eof> expected near 'local'"

# rollback.sql: runs, and is recorded
run_ferry --db "$db" --dir "$D" rollback 20251110
is "$RC" 0 "a syntax error in a rule: a rollback.sql still runs (exit 0)"
is "$OUT" "==> rolling back $B4
✓ $B4 rolled back" "...with its usual output"
is "$ERR" "note: applied after $B4, and left applied: 20251115_backfill_memory_notes (if it stands on it, roll it back first, newest first)
NOTICE:  rollback of $B4 verified: no backfilled message, conversation or run record remains" \
   "...and rollback.sql's own notice, no error (the note: Batch 5 stays applied)"
is "$(psql_val "$db" "SELECT count(*) FROM \"Message\" WHERE $B4_MINE")" 0 "...the backfilled messages are gone"
is "$(history "$db" "WHERE migration = '$B4'")" "$B4|up|applied
$B4|rollback|rolled back" "...and the history records the rollback"

# up.sql: a dry run and a real run
run_ferry --db "$db" --dir "$D" run 20251108 --dry-run
is "$RC|$ERR" "0|" "run of an up.sql --dry-run: exit 0"
like "$OUT" $'^==> '"$B3"$' \\(dry run\\)\n   \\[DRY RUN\\] Would run migrations/'"$B3"$'/up.sql in one transaction\n\u2713 '"$B3"' dry run finished in [0-9]+\.[0-9]{2} s$' \
     "...reporting what it would run"
run_ferry --db "$db" --dir "$D" run 20251108
is "$RC|$ERR" "0|" "run of an up.sql: exit 0"
like "$OUT" $'^==> '"$B3"$'\n\u2713 '"$B3"' applied in [0-9]+\.[0-9]{2} s$' "...applied"
is "$(history "$db" "WHERE migration = '$B3'")" "$B3|up|applied
$B3|run|applied" "...and recorded"

# up with only SQL migrations to run, or none
run_ferry --db "$db" --dir "$D" up --to 20251108
is "$RC|$OUT|$ERR" "0|Nothing to do: every migration up to 20251108 is applied.|" "up with nothing to run: exit 0"

# Lua of a migration: refused, before anything is written -- also when the
# script does not require the broken rule (Batch 4 does not): any script
# may require any rule, at any point of its run
before=$(db_snapshot "$db")
run_ferry --db "$db" --dir "$D" up
is "$RC|$OUT|$ERR" "2||$SYNTAX" "up with Batch 4's up.lua pending: exit 2 naming the rule's file:line"
run_ferry --db "$db" --dir "$D" run 20251110
is "$RC|$OUT|$ERR" "2||$SYNTAX" "run of an up.lua: exit 2"
run_ferry --db "$db" --dir "$D" run 20251110 --dry-run
is "$RC|$OUT|$ERR" "2||$SYNTAX" "run of an up.lua --dry-run: exit 2"
run_ferry --db "$db" --dir "$D" validate 20251110
is "$RC|$OUT|$ERR" "2||$SYNTAX" "validate (validate.lua): exit 2"
is "$(db_snapshot "$db")" "$before" "...none of them wrote anything"

# once the rule is fixed, the Lua runs again
cp "$REPO_ROOT/rules/memory_notes.lua" "$D/rules/memory_notes.lua"
run_ferry --db "$db" --dir "$D" -q up
is "$RC|$OUT|$ERR" "0||note: 20251110_backfill_conversations_messages is older than 20251115_backfill_memory_notes, which is applied: it runs after it, out of version order" \
   "rule fixed: up applies Batch 4 again (-q: out of version order, said)"
is "$(psql_val "$db" "SELECT count(*) FROM \"Message\" WHERE $B4_MINE")" "$messages" "...all its messages"

# ------------------------------------------------- down.lua and up --to
db2=$(fresh_db ferry_cli_preflight_down)
P=$TAP_TMPDIR/down
put "$P/migrations/20250101_sql/up.sql" 'CREATE TABLE s (x int); INSERT INTO s VALUES (1);'
put "$P/migrations/20250101_sql/rollback.sql" 'DROP TABLE s;'
put "$P/migrations/20250102_lua/up.sql" 'CREATE TABLE l (x int);'
put "$P/migrations/20250102_lua/down.lua" 'db.exec("DROP TABLE l")'
put "$P/migrations/20250103_later/up.lua" 'db.exec("CREATE TABLE later (x int)")'
put "$P/rules/broken.lua" 'return {'
RULE_SYNTAX="ferry: rules/broken.lua:1: unexpected symbol near <eof>"
tables() { psql_val "$db2" "SELECT concat_ws(',', to_regclass('ferry.history'), to_regclass('s'), to_regclass('l'), to_regclass('later'))"; }

run_ferry --db "$db2" --dir "$P" -q up --to 20250102
is "$RC|$OUT|$ERR" "0||" "up --to: two up.sql migrations run with a broken rule beside them"
is "$(tables)" "ferry.history,s,l" "...both applied"
run_ferry --db "$db2" --dir "$P" up
is "$RC|$OUT|$ERR" "2||$RULE_SYNTAX" "up with an up.lua pending: exit 2"
is "$(tables)" "ferry.history,s,l" "...nothing written"
run_ferry --db "$db2" --dir "$P" rollback 20250102_lua
is "$RC|$OUT|$ERR" "2||$RULE_SYNTAX" "rollback by down.lua: exit 2"
is "$(tables)" "ferry.history,s,l" "...nothing written"
run_ferry --db "$db2" --dir "$P" -q rollback 20250101_sql
is "$RC|$OUT|$ERR" "0||note: applied after 20250101_sql, and left applied: 20250102_lua (if it stands on it, roll it back first, newest first)" \
   "rollback by rollback.sql: exit 0 (-q: the later one left applied, said)"
is "$(tables)" "ferry.history,l" "...its table dropped"
is "$(history "$db2")" "20250101_sql|up|applied
20250102_lua|up|applied
20250101_sql|rollback|rolled back" "history: the two up.sql runs and the rollback.sql"

# ------------------------------------------- a rule in a folder of rules/
# require "rules.crm.stage" loads rules/crm/stage.lua: a rule there is a
# rule like any other -- compiled before anything is written, and its
# tests run by check
db3=$(fresh_db ferry_cli_preflight_sub)
S=$TAP_TMPDIR/sub
put "$S/migrations/20250101_fill/up.lua" 'db.exec("CREATE TABLE IF NOT EXISTS filled (x int)")
db.exec("INSERT INTO filled VALUES (1)")
local stage = require "rules.crm.stage"
assert(stage.ok())'
put "$S/rules/crm/stage.lua" 'local M = {}
function M.ok() return true end
M.tests = {["ok is true"] = function() assert(M.ok() == true) end,
           ["fails"] = function() error("no", 0) end}
return M'
put "$S/rules/.hidden/x.lua" 'this is no Lua'
run_ferry --dir "$S" check
is "$RC|$OUT|$ERR" '1|ok   migrations/20250101_fill/up.lua
FAIL rules.crm.stage test "fails"  no|' "check: a rule in rules/crm/ has its tests run (a dotfolder is left alone)"
put "$S/rules/crm/stage.lua" 'return {'
run_ferry --db "$db3" --dir "$S" run 20250101_fill
is "$RC|$OUT|$ERR" "2||ferry: rules/crm/stage.lua:1: unexpected symbol near <eof>" \
   "run: a syntax error in rules/crm/stage.lua stops it before anything is written (exit 2)"
is "$(psql_val "$db3" "SELECT concat_ws(',', to_regclass('ferry.history'), to_regclass('filled'))")" "" "...nothing written"
run_ferry --dir "$S" check
is "$RC|$OUT|$ERR" '2|ok   migrations/20250101_fill/up.lua
FAIL rules.crm.stage  does not compile: rules/crm/stage.lua:1: unexpected symbol near <eof>|' "check: it does not compile (exit 2)"

done_testing
