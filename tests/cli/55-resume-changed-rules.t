#!/usr/bin/env bash
# A run that resumes an interrupted one after its rules (or its up.lua)
# were edited says so: the rows committed before were made by the earlier
# version, the rest by this one -- the documented fix-a-rule-and-re-run
# flow keeps working, but nobody is left to find out from the data that
# one migration wrote rows two ways.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_resume_rules)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
# 5 batches of 2 rows, each with its checkpoint; the rule's stop_at makes
# the run fail after a batch (as a crash would).
put "$D/rules/scale.lua" 'local M = {factor = 2, stop_at = 3}
return M'
put "$D/rules/other.lua" 'return {unused = true}'
put "$D/migrations/20250101_scale/up.lua" 'local scale = require "rules.scale"
require "rules.other"
stats.declare{"rows_created"}
db.exec("CREATE TABLE IF NOT EXISTS scaled (n int PRIMARY KEY, v int)")
for b = (ctx.checkpoint.get() or 0) + 1, 5 do
  if b == scale.stop_at then error("stopped at batch " .. b) end
  db.transaction(function()
    for n = b * 2 - 1, b * 2 do
      db.exec("INSERT INTO scaled VALUES ($1, $2)", n, n * scale.factor)
      stats.inc("rows_created")
    end
    ctx.checkpoint.save(b)
  end)
end'

run_ferry --dir "$D" run 20250101
is "$RC" 1 "the first run stops after two batches"
is "$(psql_val "$db" "SELECT position FROM ferry.checkpoint")" 2 "...its checkpoint: batch 2"

# resumed with the rules as they were (but the stop): no note
cp "$D/rules/scale.lua" "$TAP_TMPDIR/scale.orig"
put "$D/rules/scale.lua" 'local M = {factor = 2, stop_at = 4}
return M'
run_ferry --dir "$D" run 20250101
is "$RC" 1 "a resumed run with a rule edited stops at batch 4"
like "$ERR" "note: changed since the interrupted run this one resumes: rules/scale.lua; " \
     "a rule edited between the two runs: named"

# edited again, and up.lua too: both named, in order; rules it did not
# change are not
put "$D/rules/scale.lua" 'local M = {factor = 3}
return M'
printf '\n-- edited\n' >>"$D/migrations/20250101_scale/up.lua"
run_ferry --dir "$D" run 20250101
is "$RC" 0 "the last run completes"
is "$(grep -c '^note: changed since' <<<"$ERR")" 1 "one note"
like "$ERR" "note: changed since the interrupted run this one resumes: migrations/20250101_scale/up.lua, rules/scale.lua; the rows it committed were made by the earlier version, the rest by this one \\(to have every row made by this one, roll back the migration and run it again\\)" \
     "up.lua and the rule both named, and what it means"
unlike "$ERR" "rules/other.lua" "an unchanged rule is not named"
is "$(psql_val "$db" "SELECT string_agg(v::text, ',' ORDER BY n) FROM scaled")" "2,4,6,8,10,12,21,24,27,30" \
   "(the rows: two ways, as the note said)"

# a fresh run (no checkpoint) after edits: nothing to say
psql_val "$db" "DROP TABLE scaled" >/dev/null
run_ferry --dir "$D" run 20250101
is "$RC" 0 "a run that resumes nothing"
unlike "$ERR" "changed since" "...says nothing of changes"

# --json: the note on stderr, stdout one object
psql_val "$db" "DROP TABLE scaled; DELETE FROM ferry.history" >/dev/null
cp "$TAP_TMPDIR/scale.orig" "$D/rules/scale.lua"
run_ferry --dir "$D" run 20250101
put "$D/rules/scale.lua" 'return {factor = 5}'
run_ferry --dir "$D" --json run 20250101
is "$RC|$(json_eval "$OUT" 'j["ok"]')" "0|true" "--json: the resumed run succeeds, stdout one object"
like "$ERR" "note: changed since the interrupted run this one resumes: rules/scale.lua;" "--json: the note on stderr"

done_testing
