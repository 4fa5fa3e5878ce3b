#!/usr/bin/env bash
# --quiet in a cron job: "nothing on success but what the command is asked
# for" -- but a note about the data a command leaves, or finds, is what
# the operator reading the cron mail must see, and it was silenced with the
# rest: a run resuming an interrupted one after a rule was edited (the rows
# made two ways), a migration applied out of version order, triggers off
# (session_replication_role), a rollback leaving later migrations applied,
# validate's checks run on a migration not applied, a baseline over a run
# stopped part way, a folder that is no migration (so never applied).
# These now show under --quiet too (stderr, stdout untouched); the
# progress, headings and statistics stay silent, and so does an author's
# note (a script's return value).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_quiet_notes)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/rules/scale.lua" 'return {factor = 2, stop_at = 3}'
put "$D/migrations/20250101_scale/up.lua" 'local scale = require "rules.scale"
stats.declare{"rows_created"}
db.exec("CREATE TABLE IF NOT EXISTS scaled (n int PRIMARY KEY, v int)")
for b = (ctx.checkpoint.get() or 0) + 1, 5 do
  if b == scale.stop_at then error("stopped at batch " .. b) end
  db.transaction(function()
    for n = b * 2 - 1, b * 2 do
      db.exec("INSERT INTO scaled VALUES ($1, $2) ON CONFLICT DO NOTHING", n, n * scale.factor)
      stats.inc("rows_created")
    end
    ctx.checkpoint.save(b)
  end)
end'
put "$D/migrations/20250101_scale/rollback.sql" 'DROP TABLE scaled;'

# 1. the fix-a-rule-and-re-run flow from cron
run_ferry --dir "$D" -q run 20250101
is "$RC|$OUT|$ERR" "1||ferry: migrations/20250101_scale/up.lua:5: stopped at batch 3" "-q: the failed run's error line only"
put "$D/rules/scale.lua" 'return {factor = 3}'
run_ferry --dir "$D" -q run 20250101
is "$RC|$OUT|$ERR" "0||note: changed since the interrupted run this one resumes: rules/scale.lua; the rows it committed were made by the earlier version, the rest by this one (to have every row made by this one, roll back the migration and run it again)" \
   "-q, a resumed run after a rule was edited: the note, nothing else"
run_ferry --dir "$D" -q run 20250101
is "$RC|$OUT|$ERR" "0||" "-q, a re-run with nothing to say: nothing"

# 2. an author's note stays quiet
put "$D/migrations/20250102_ret/up.lua" 'return false'
run_ferry --dir "$D" -q up
is "$RC|$OUT|$ERR" "0||" "-q: a script's return value, an author's note, is not said"
run_ferry --dir "$D" up
is "$RC|$(grep -c '^note: migrations/20250102_ret/up.lua returned false' <<<"$ERR")" "0|0" "(applied already: nothing run)"

# 3. out of version order, and a rollback leaving a later one applied
put "$D/migrations/20250101_late/up.sql" 'CREATE TABLE late (i int);'
put "$D/migrations/20250101_late/rollback.sql" 'DROP TABLE late;'
run_ferry --dir "$D" -q up
is "$RC|$OUT|$ERR" "0||note: 20250101_late is older than 20250102_ret, which is applied: it runs after it, out of version order" \
   "-q up: out of version order, said"
run_ferry --dir "$D" -q rollback 20250101_late
is "$RC|$OUT|$ERR" "0||note: applied after 20250101_late, and left applied: 20250102_ret, 20250101_scale (if they stand on it, roll them back first, newest first)" \
   "-q rollback: the later migration left applied, said"

# 4. validate of a migration not applied
put "$D/migrations/20250101_late/validate.lua" 'check("late is there", function() return db.one("SELECT to_regclass($1) IS NOT NULL AS e", "late").e end)'
run_ferry --dir "$D" -q validate 20250101_late
like "$ERR" "^note: 20250101_late is not applied on this database \\(rolled back at [^)]*\\): its checks look for what it leaves behind" \
     "-q validate, not applied: the note"
is "$RC|$OUT" "1|✗ FAIL late is there" "...and the failed check's line, exit 1"

# 5. a folder that is no migration: never applied, said by status and up
put "$D/migrations/20250103-typo/up.sql" 'CREATE TABLE typo (i int);'
run_ferry --dir "$D" -q status
is "$RC|$(grep -c '^MIGRATION' <<<"$OUT")|$ERR" "0|1|note: migrations/20250103-typo is not a migration folder (the name must be <version>_<name>): ignored" \
   "-q status: the table on stdout, the note on stderr"
run_ferry --dir "$D" -q up --to 20250101
is "$RC|$OUT|$ERR" "0||note: migrations/20250103-typo is not a migration folder (the name must be <version>_<name>): ignored
note: 20250101_late is older than 20250102_ret, which is applied: it runs after it, out of version order" \
   "-q up: a folder that is no migration, said"
rm -r "$D/migrations/20250103-typo"
run_ferry --dir "$D" -q rollback 20250101_late

# 6. triggers off on ferry's sessions
psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_quiet_notes SET session_replication_role = replica" >/dev/null
run_ferry --dir "$D" -q run 20250101_late
is "$RC|$OUT|$ERR" "0||note: session_replication_role is replica on ferry's sessions (set for this database or role, or in PGOPTIONS): the rows a migration writes or deletes fire none of the tables' ordinary triggers, and no foreign-key check or cascade" \
   "-q run with session_replication_role replica: said"
psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_quiet_notes RESET session_replication_role" >/dev/null

# 7. a baseline over a run stopped part way
put "$D/rules/scale.lua" 'return {factor = 2, stop_at = 2}'
run_ferry --dir "$D" -q rollback 20250101_scale
run_ferry --dir "$D" -q run 20250101_scale
is "$RC" 1 "(a run stopped part way)"
run_ferry --dir "$D" -q baseline 20250101
is "$RC|$OUT|$ERR" "0||note: 20250101_scale stopped part way here (its last run failed; the rows it committed stay): recorded as applied, it lacks what that run did not write; its resume point is kept: ferry run 20250101_scale writes the rest" \
   "-q baseline over a run stopped part way: said"

# --json: the notes on stderr as before, stdout the object alone
put "$D/rules/scale.lua" 'return {factor = 4}'
run_ferry --dir "$D" -q --json run 20250101_scale
is "$RC|$(json_eval "$OUT" 'j["ok"]')" "0|true" "-q --json: stdout one object"
like "$ERR" "^note: changed since the interrupted run this one resumes: rules/scale.lua;" "-q --json: the note on stderr"

# row errors: -q said "N row error(s) recorded; fix the rule or the data"
# and not which rows -- they are to the run what a failed check's line is
# to validate: the list is said (stdout, as without -q), not the statistics
put "$D/migrations/20250104_rows/up.lua" 'stats.declare{"seen"}
for i = 1, 4 do
  stats.inc("seen")
  if i % 2 == 0 then stats.error("row-" .. i, "even rows are bad") end
end'
run_ferry --dir "$D" -q run 20250104_rows
is "$RC|$OUT|$ERR" "1|⚠ Errors (2):
   row-2: even rows are bad
   row-4: even rows are bad|ferry: 20250104_rows: 2 row error(s) recorded; fix the rule or the data and re-run" \
   "-q, a run with row errors: their list, and the error line"
run_ferry --dir "$D" -q --json run 20250104_rows
is "$RC|$ERR|$(json_eval "$OUT" 'len(j["errors"])')" "1|ferry: 20250104_rows: 2 row error(s) recorded; fix the rule or the data and re-run|2" \
   "-q --json: the list in the object only"
rm -r "$D/migrations/20250104_rows"

# a script's own: log.alert is said under -q, log.warn is not
put "$TAP_TMPDIR/alert.lua" 'log.warn("a warning")
log.alert("an alert %d", 1)
log.info("info")'
run_ferry -q exec "$TAP_TMPDIR/alert.lua"
is "$RC|$OUT|$ERR" "0||an alert 1" "-q: a script's log.alert said, its log.warn and log.info not"
run_ferry exec "$TAP_TMPDIR/alert.lua"
is "$RC|$OUT|$ERR" "0|info|a warning
an alert 1" "without -q: all three"

done_testing
