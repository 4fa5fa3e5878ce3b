#!/usr/bin/env bash
# A data migration left part way -- its run failed or was interrupted after
# some batches committed, its resume point saved -- and the commands an
# operator runs around it.  Its next run resumes after what it committed,
# without looking at those rows again: what a command does meanwhile to
# those rows, or to the record of the migration, must be said, or the
# resumed run skips them and reports the migration applied.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
# a: the tables (a schema step); b: copies src into dst one row per
# committed batch, its position the last id copied; FAIL_AT stops it there
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE src (id int PRIMARY KEY);
INSERT INTO src SELECT generate_series(1, 10);
CREATE TABLE dst (id int PRIMARY KEY);'
put "$D/migrations/20250101_a/rollback.sql" 'DROP TABLE dst; DROP TABLE src;'
put "$D/migrations/20250102_b/up.lua" 'local from = ctx.checkpoint.get() or 0
for _, r in ipairs(db.query("SELECT id FROM src WHERE id > $1 ORDER BY id", from)) do
  if r.id == tonumber(os.getenv("FAIL_AT") or "-1") then error("stopped at " .. r.id) end
  if not ctx.dry_run then
    db.transaction(function()
      db.exec("INSERT INTO dst VALUES ($1) ON CONFLICT DO NOTHING", r.id)
      stats.inc("copied")
      ctx.checkpoint.save(r.id)
    end)
  end
end
'
put "$D/migrations/20250102_b/rollback.sql" 'DELETE FROM dst;'
put "$D/migrations/20250103_c/up.sql" 'CREATE TABLE c (x int);'
put "$D/migrations/20250103_c/rollback.sql" 'DROP TABLE c;'
mkdir -p "$D/rules"
dst() { psql_val "$db" "SELECT count(*) || ' ' || coalesce(min(id), 0) || '-' || coalesce(max(id), 0) FROM dst"; }

# --- the rollback of a migration a part-way one comes after
db=$(fresh_db ferry_cli_part_way)
export DATABASE_URL=$db
FAIL_AT=5 run_ferry --dir "$D" -q up
is "$RC|$(dst)|$(psql_val "$db" "SELECT position FROM ferry.checkpoint WHERE migration = '20250102_b'")" "1|4 1-4|4" \
   "b stopped at row 5: 4 rows committed, its resume point after row 4"
run_ferry --dir "$D" rollback 20250101
is "$RC|$ERR" "0|note: after 20250101_a, 20250102_b stopped part way (its last run failed; the rows it committed stay) and its next run resumes from its checkpoint: if it stands on 20250101_a, roll it back first (ferry rollback 20250102_b), or that run skips the rows it committed before, which this rollback removes" \
   "rolling back a, which the part-way b comes after: exit 0, a note naming b, what its next run does, and what to do"
run_ferry --dir "$D" -q up --to 20250101
run_ferry --dir "$D" --json rollback 20250101
like "$RC $ERR" "^0 note: after 20250101_a, 20250102_b stopped part way \\(its last run failed;" "--json too (on stderr)"
run_ferry --dir "$D" -q up --to 20250101
# (b interrupted, its process gone, reads the same)
psql_val "$db" "UPDATE ferry.history SET status = 'running', finished_at = NULL, pid = 0 WHERE migration = '20250102_b'" >/dev/null
run_ferry --dir "$D" rollback 20250101
is "$RC|$ERR" "0|note: after 20250101_a, 20250102_b stopped part way (its last run was interrupted; the rows it committed stay) and its next run resumes from its checkpoint: if it stands on 20250101_a, roll it back first (ferry rollback 20250102_b), or that run skips the rows it committed before, which this rollback removes" \
   "...b interrupted: the same note"
run_ferry --dir "$D" -q up --to 20250101

# the note not heeded: up re-applies a and resumes b past what it had
# committed -- which a's rollback dropped -- and says so as it resumes
FAIL_AT=5 run_ferry --dir "$D" -q up --to 20250102
run_ferry --dir "$D" -q rollback 20250101
run_ferry --dir "$D" up --to 20250102
like "$RC $ERR" "^0 note: this run resumes 20250102_b from its checkpoint \\(saved [0-9TZ:-]+\\), and 20250101_a, before it, was rolled back since \\(at [0-9TZ:-]+\\): if the rows 20250102_b had committed were among what that rollback removed, this run skips them; to write every row, roll 20250102_b back \\(ferry rollback 20250102_b\\) and run it again\$" \
     "the resumed run of b: a note that a, before it, was rolled back since its checkpoint, and what to do"
is "$(dst)" "6 5-10" "...(rows 1-4 skipped, as it says)"
run_ferry --dir "$D" -q rollback 20250102
run_ferry --dir "$D" -q up --to 20250102
is "$RC|$ERR|$(dst)" "0||10 1-10" "as it says: b rolled back and run again writes every row, no note"
run_ferry --dir "$D" -q rollback 20250102

# the way the note says: b rolled back first, then a; up then copies all
FAIL_AT=5 run_ferry --dir "$D" -q up --to 20250102
run_ferry --dir "$D" rollback 20250102
is "$RC|$ERR" "0|note: 20250102_b is not recorded as applied; running its rollback anyway" "b rolled back first"
run_ferry --dir "$D" rollback 20250101
is "$RC|$ERR" "0|" "...then a: no note"
run_ferry --dir "$D" -q up
is "$RC|$(dst)" "0|10 1-10" "up then copies every row"

# an applied migration and a part-way one after it: both notes
FAIL_AT=5 run_ferry --dir "$D" -q run 20250102
run_ferry --dir "$D" rollback 20250101
is "$RC|$ERR" "0|note: applied after 20250101_a, and left applied: 20250103_c, 20250102_b (if they stand on it, roll them back first, newest first)" \
   "a re-run of the applied b that failed: b is applied, named as such (its resume point with it)"
# --- a rollback that stops part way: what it removed is not skipped by the
# next run (its resume point goes as the rollback starts)
db=$(fresh_db ferry_cli_part_way_down)
export DATABASE_URL=$db
FAIL_AT=5 run_ferry --dir "$D" -q up --to 20250102
put "$D/migrations/20250102_b/down.lua" 'for _, r in ipairs(db.query("SELECT id FROM dst ORDER BY id")) do
  if r.id == 3 then error("down stopped at " .. r.id) end
  db.exec("DELETE FROM dst WHERE id = $1", r.id)
end'
mv "$D/migrations/20250102_b/rollback.sql" "$TAP_TMPDIR/b-rollback.sql"
run_ferry --dir "$D" -q rollback 20250102
is "$RC|$ERR|$(dst)" "1|ferry: 20250102_b: rollback failed: migrations/20250102_b/down.lua:2: down stopped at 3|2 3-4" \
   "b's down.lua deleted rows 1 and 2, then failed"
run_ferry --dir "$D" status
like "$(norm_times "$OUT")" "$(status_line 20250102_b failed - -)" "status: no resume point left, the next run starts b again"
run_ferry --dir "$D" -q run 20250102
is "$RC|$(dst)" "0|10 1-10" "the next run of b starts again: rows 1 and 2 written back, every row there"
rm "$D/migrations/20250102_b/down.lua"
mv "$TAP_TMPDIR/b-rollback.sql" "$D/migrations/20250102_b/rollback.sql"

# --- baseline over a part-way data migration: recorded applied, and said
db=$(fresh_db ferry_cli_part_way_baseline)
export DATABASE_URL=$db
FAIL_AT=5 run_ferry --dir "$D" -q up
run_ferry --dir "$D" baseline 20250102
is "$RC|$OUT|$ERR" "0|baselined 20250102_b (recorded as applied, not run)|note: 20250102_b stopped part way here (its last run failed; the rows it committed stay): recorded as applied, it lacks what that run did not write; its resume point is kept: ferry run 20250102_b writes the rest" \
   "baseline of b, stopped part way: exit 0, recorded, with a note that it lacks the rest and how to write it"
db2=$(fresh_db ferry_cli_part_way_baseline_interrupted)
FAIL_AT=5 run_ferry --db "$db2" --dir "$D" -q up
psql_val "$db2" "UPDATE ferry.history SET status = 'running', finished_at = NULL, pid = 0 WHERE migration = '20250102_b'" >/dev/null
run_ferry --db "$db2" --dir "$D" baseline 20250102
is "$RC|$ERR" "0|note: 20250102_b stopped part way here (its last run was interrupted; the rows it committed stay): recorded as applied, it lacks what that run did not write; its resume point is kept: ferry run 20250102_b writes the rest" \
   "...b interrupted (its row running, its process gone): the same note"
run_ferry --dir "$D" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" ok)
$(status_line 20250102_b applied "$TS" 'baseline; the next run resumes from its checkpoint')
$(status_line 20250103_c pending - -)" "status says the resume point of the baselined b"
run_ferry --dir "$D" --json baseline 20250103
is "$RC|$OUT|$ERR" '0|{"ok":true,"baselined":["20250103_c"]}|' "a baseline with no part-way migration: no note"
run_ferry --dir "$D" -q run 20250102
is "$RC|$(dst)" "0|10 1-10" "ferry run b writes the rest, as the note says"
run_ferry --dir "$D" status
like "$(norm_times "$OUT")" "$(status_line 20250102_b applied "$TS" ok)" "...now applied by that run, its resume point gone"
done_testing
