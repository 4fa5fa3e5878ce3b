#!/usr/bin/env bash
# A migration folder renamed after it was applied is not applied a second
# time: a migration the history has never seen, with the version or the
# scripts (checksum) of an applied one whose folder is gone, "looks
# renamed".  status notes it on both lines (and in --json); up, up
# --dry-run and run refuse it before anything is written (exit 2) with one
# line naming both ids and the ways out; baseline records it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE t (x int);
INSERT INTO t VALUES (1);
'
put "$D/migrations/20250102_idx/up.sql" 'CREATE INDEX t_x ON t (x);
'
put "$D/migrations/20250103_c/up.sql" 'INSERT INTO t VALUES (3);
'
put "$D/migrations/20250103_c/rollback.sql" 'DELETE FROM t WHERE x = 3;
'
put "$D/migrations/20250104_d/up.lua" 'local r = require "rules.r"
db.exec("INSERT INTO t VALUES ($1)", r.value)
'
put "$D/rules/r.lua" 'return {value = 4}
'
rows() { psql_val "$1" "SELECT string_agg(x::text, ' ' ORDER BY x) FROM t"; }

# ------------------------------------------------------------ same version, same scripts
db=$(fresh_db ferry_cli_renamed)
export DATABASE_URL=$db
run_ferry --dir "$D" -q up --to 20250102
is "$RC|$ERR" "0|" "up --to 20250102: a and idx applied"
mv "$D/migrations/20250102_idx" "$D/migrations/20250102_index"

run_ferry --dir "$D" status
is "$RC|$ERR" "0|" "status with a renamed folder: exit 0"
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" ok)
$(status_line 20250102_index pending - "renamed from 20250102_idx? (applied $TS)")
$(status_line 20250103_c pending - -)
$(status_line 20250104_d pending - -)
$(status_line 20250102_idx applied "$TS" "file missing from migrations/; renamed to 20250102_index?")" \
   "status: the pending line says renamed from, the missing one's renamed to"
applied_idx=$(psql_val "$db" "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                               FROM ferry.history WHERE migration = '20250102_idx'")
like "$OUT" "renamed from 20250102_idx\\? \\(applied $applied_idx\\)" "the time shown is 20250102_idx's"

run_ferry --dir "$D" --json status
is "$RC" 0 "status --json: exit 0"
is "$(json_eval "$OUT" '[[m["migration"], m["status"], m.get("renamed_from"), m.get("renamed_to"), m["missing"]] for m in j["migrations"]]')" \
   '[["20250101_a","applied",null,null,false],["20250102_index","pending","20250102_idx",null,false],["20250103_c","pending",null,null,false],["20250104_d","pending",null,null,false],["20250102_idx","applied",null,"20250102_index",true]]' \
   "status --json: renamed_from on the pending one, renamed_to on the missing one"

before=$(db_snapshot "$db")
MSG="ferry: 20250102_index looks like 20250102_idx renamed (same version and scripts; 20250102_idx was applied at $applied_idx and its folder is gone): not run a second time. Rename the folder back to 20250102_idx; or, if it is 20250102_idx under a new name, record it as applied without running it: 'ferry baseline 20250102_index'; or, if it is a different migration, give it a new version"
run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "2||$MSG" "up refuses a renamed migration: exit 2, one line, nothing printed before"
is "$(db_snapshot "$db")" "$before" "up wrote nothing (c and d, before and after it, did not run either)"
run_ferry --dir "$D" up --dry-run
is "$RC|$OUT|$ERR" "2||$MSG" "up --dry-run refuses it the same way"
run_ferry --dir "$D" up --to 20250104
is "$RC|$OUT|$ERR" "2||$MSG" "up --to a later version refuses it"
run_ferry --dir "$D" --json up
is "$RC|$ERR" "2|${MSG}" "up --json: exit 2, the line on stderr"
is "$(json_eval "$OUT" 'j["error"]')" "${MSG#ferry: }" "up --json: the same line in the object"
run_ferry --dir "$D" run 20250102_index
is "$RC|$OUT|$ERR" "2||$MSG" "run refuses it"
run_ferry --dir "$D" run 20250102_index --dry-run
is "$RC|$OUT|$ERR" "2||$MSG" "run --dry-run refuses it"
is "$(db_snapshot "$db")" "$before" "nothing was written by any of them"
run_ferry --dir "$D" up --to 20250101
is "$RC|$OUT|$ERR" "0|Nothing to do: every migration up to 20250101 is applied.|" \
   "up --to before the renamed one: not refused"

run_ferry --dir "$D" baseline 20250102_index
is "$RC|$OUT|$ERR" "0|baselined 20250102_index (recorded as applied, not run)|" \
   "the way out: baseline the new id records it alone"
run_ferry --dir "$D" status
is "$(norm_times "$OUT")" "$STATUS_HEADER
$(status_line 20250101_a applied "$TS" ok)
$(status_line 20250102_index applied "$TS" baseline)
$(status_line 20250103_c pending - -)
$(status_line 20250104_d pending - -)
$(status_line 20250102_idx applied "$TS" "file missing from migrations/")" \
   "status after baseline: no rename noted any more"
run_ferry --dir "$D" -q up
is "$RC|$ERR" "0|" "up after baseline: exit 0"
is "$(history "$db")" "20250101_a|up|applied
20250102_idx|up|applied
20250102_index|baseline|applied
20250103_c|up|applied
20250104_d|up|applied" "history: the index ran once; c and d ran"
is "$(rows "$db")" "1 3 4" "the rows of a, c and d"

# a migration rolled back, then renamed: it is not applied, so the new
# name runs as any pending migration
run_ferry --dir "$D" -q rollback 20250103_c
is "$RC|$ERR" "0|note: applied after 20250103_c, and left applied: 20250104_d (if it stands on it, roll it back first, newest first)" "rollback c (-q: the note about d said)"
mv "$D/migrations/20250103_c" "$D/migrations/20250103_c2"
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep '_c')" "$(status_line 20250103_c2 pending - -)
$(status_line 20250103_c 'rolled back' - "file missing from migrations/")" \
   "status: a rolled-back migration renamed is no rename"
run_ferry --dir "$D" -q up
is "$RC|$ERR" "0|note: 20250103_c2 is older than 20250104_d, which is applied: it runs after it, out of version order" "up runs the rolled-back migration's new name (-q: out of order, said)"
is "$(rows "$db")" "1 3 4" "c2 ran"
mv "$D/migrations/20250103_c2" "$D/migrations/20250103_c"

# ------------------------------------------------------------ same version, other scripts
mv "$D/migrations/20250102_index" "$D/migrations/20250102_idx"
db2=$(fresh_db ferry_cli_renamed_version)
export DATABASE_URL=$db2
run_ferry --dir "$D" -q up --to 20250102
is "$RC|$ERR" "0|" "db2: a and idx applied"
rm -r "$D/migrations/20250102_idx"
put "$D/migrations/20250102_other/up.sql" 'CREATE INDEX t_x2 ON t (x);
'
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep 20250102)" "$(status_line 20250102_other pending - "renamed from 20250102_idx? (applied $TS)")
$(status_line 20250102_idx applied "$TS" "file missing from migrations/; renamed to 20250102_other?")" \
   "status: a new migration with the version of a missing applied one is noted"
applied_idx=$(psql_val "$db2" "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                                FROM ferry.history WHERE migration = '20250102_idx'")
run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "2||ferry: 20250102_other looks like 20250102_idx renamed (same version; 20250102_idx was applied at $applied_idx and its folder is gone): not run a second time. Rename the folder back to 20250102_idx; or, if it is 20250102_idx under a new name, record it as applied without running it: 'ferry baseline 20250102_other'; or, if it is a different migration, give it a new version" \
   "up refuses it: same version"
mv "$D/migrations/20250102_other" "$D/migrations/20250105_other"
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep -c renamed)" 0 "given a new version, it is no rename"
run_ferry --dir "$D" -q up
is "$RC|$ERR" "0|" "and up runs it"
is "$(psql_val "$db2" "SELECT string_agg(indexname, ' ' ORDER BY indexname) FROM pg_indexes WHERE tablename = 't'")" \
   "t_x t_x2" "both indexes"
rm -r "$D/migrations/20250105_other"
put "$D/migrations/20250102_idx/up.sql" 'CREATE INDEX t_x ON t (x);
'

# ------------------------------------------------------------ other version, same scripts (a data migration)
db3=$(fresh_db ferry_cli_renamed_scripts)
export DATABASE_URL=$db3
run_ferry --dir "$D" -q up
is "$RC|$ERR" "0|" "db3: everything applied"
mv "$D/migrations/20250104_d" "$D/migrations/20250109_d2"
put "$D/migrations/20250105_e/up.sql" 'INSERT INTO t VALUES (5);
'
applied_d=$(psql_val "$db3" "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                              FROM ferry.history WHERE migration = '20250104_d'")
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep '_[de]')" "$(status_line 20250105_e pending - -)
$(status_line 20250109_d2 pending - "renamed from 20250104_d? (applied $TS)")
$(status_line 20250104_d applied "$TS" "file missing from migrations/; renamed to 20250109_d2?")" \
   "status: a new version with the scripts (and loaded rules) of a missing applied one is noted"
before=$(db_snapshot "$db3")
run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "2||ferry: 20250109_d2 looks like 20250104_d renamed (same scripts; 20250104_d was applied at $applied_d and its folder is gone): not run a second time. Rename the folder back to 20250104_d (a data migration is known by its id: its runs, resume point and checks go by it, and so may the rows it wrote, through ctx.migration); or, to run its scripts a second time, rename the folder back and 'ferry run 20250104_d'" \
   "up refuses it: same scripts; a data migration's way out is its old name (not baselined under the new one)"
is "$(db_snapshot "$db3")" "$before" "up refused before e, pending before it, ran"
run_ferry --dir "$D" -q up --to 20250105_e
is "$RC|$ERR" "0|" "up --to 20250105_e"
run_ferry --dir "$D" baseline 20250109_d2
is "$RC|$OUT" "0|baselined 20250109_d2 (recorded as applied, not run)" "baseline 20250109_d2"
run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "0|Nothing to do: every migration is applied.|" "nothing left to run"
is "$(rows "$db3")" "1 3 4 5" "d ran once, e once"
# a baselined migration renamed in turn: said as baselined (the version and
# scripts of 20250109_d2 beat the scripts alone of 20250104_d)
mv "$D/migrations/20250109_d2" "$D/migrations/20250109_d3"
based=$(psql_val "$db3" "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                          FROM ferry.history WHERE migration = '20250109_d2'")
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep '_d')" "$(status_line 20250109_d3 pending - "renamed from 20250109_d2? (baselined $TS)")
$(status_line 20250104_d applied "$TS" "file missing from migrations/")
$(status_line 20250109_d2 applied "$TS" "file missing from migrations/; renamed to 20250109_d3?")" \
   "status: renamed from a baselined migration"
run_ferry --dir "$D" run 20250109_d3
is "$RC|$OUT|$ERR" "2||ferry: 20250109_d3 looks like 20250109_d2 renamed (same version and scripts; 20250109_d2 was baselined at $based and its folder is gone): not run a second time. Rename the folder back to 20250109_d2 (a data migration is known by its id: its runs, resume point and checks go by it, and so may the rows it wrote, through ctx.migration); or, if it is a different migration, give it a new version" \
   "run refuses it, saying baselined"
mv "$D/migrations/20250109_d3" "$D/migrations/20250109_d2"

# the checksum compared is the one recorded: the scripts and the rules the
# run loaded, as they are now -- a rule changed since is other scripts
db4=$(fresh_db ferry_cli_renamed_rules)
export DATABASE_URL=$db4
rm -r "$D/migrations/20250105_e"
mv "$D/migrations/20250109_d2" "$D/migrations/20250104_d"
run_ferry --dir "$D" -q up
is "$RC|$ERR" "0|" "db4: everything applied"
mv "$D/migrations/20250104_d" "$D/migrations/20250109_d2"
put "$D/rules/r.lua" 'return {value = 40}
'
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep '_d')" "$(status_line 20250109_d2 pending - -)
$(status_line 20250104_d applied "$TS" "file missing from migrations/")" \
   "status: a rule the run loaded changed since: the scripts differ, no rename noted"

# ------------------------------------------------------------ the version alone, with a sibling of it applied
# Two migrations made the same day share a version.  Once a migration of
# the folder with that version is recorded applied -- the renamed one
# baselined (the way out), or a sibling -- the version alone no longer says
# "renamed": the other migrations of that day run.  (Before, the way out
# left every other migration of the day refused for good.)
rm -r "$D/migrations/20250109_d2"
db5=$(fresh_db ferry_cli_renamed_sibling)
export DATABASE_URL=$db5
run_ferry --dir "$D" -q up --to 20250102
is "$RC|$ERR" "0|" "db5: a and idx applied"
mv "$D/migrations/20250102_idx" "$D/migrations/20250102_index"
put "$D/migrations/20250102_more/up.sql" 'INSERT INTO t VALUES (2);
'
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep 20250102)" "$(status_line 20250102_index pending - "renamed from 20250102_idx? (applied $TS)")
$(status_line 20250102_more pending - "renamed from 20250102_idx? (applied $TS)")
$(status_line 20250102_idx applied "$TS" "file missing from migrations/; renamed to 20250102_index?")" \
   "status: both migrations of the day are noted while none of them is applied"
run_ferry --dir "$D" baseline 20250102_index
is "$RC|$ERR" "0|" "the way out: baseline 20250102_index"
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep -c renamed)" 0 "status: with 20250102_index applied, the version alone notes nothing"
run_ferry --dir "$D" -q up --to 20250102
is "$RC|$ERR" "0|" "up runs 20250102_more, the other migration of that day"
is "$(rows "$db5")" "1 2" "its row is there; the index ran once"
# a migration of that day deleted on purpose, a new one of the same day
rm -r "$D/migrations/20250102_more"
put "$D/migrations/20250102_new/up.sql" 'INSERT INTO t VALUES (22);
'
run_ferry --dir "$D" status
is "$(norm_times "$OUT" | grep 20250102)" "$(status_line 20250102_index applied "$TS" baseline)
$(status_line 20250102_new pending - -)
$(status_line 20250102_idx applied "$TS" "file missing from migrations/")
$(status_line 20250102_more applied "$TS" "file missing from migrations/")" \
   "status: a new migration of a day with one applied is no rename of the deleted ones"
run_ferry --dir "$D" -q up --to 20250102
is "$RC|$ERR" "0|" "up runs it"
is "$(rows "$db5")" "1 2 22" "its row is there"

# a schema step renamed, another pending before it: the baseline way out
# runs that one first
db6=$(fresh_db ferry_cli_renamed_before)
P=$TAP_TMPDIR/before
put "$P/migrations/20250101_s/up.sql" 'CREATE TABLE s1 (x int);'
put "$P/migrations/20250103_u/up.sql" 'CREATE TABLE s3 (x int);'
run_ferry --db "$db6" --dir "$P" -q up
is "$RC|$ERR" "0|" "db6: s and u applied"
mv "$P/migrations/20250103_u" "$P/migrations/20250104_u2"
put "$P/migrations/20250102_n/up.sql" 'CREATE TABLE s2 (x int);'
applied_u=$(psql_val "$db6" "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                              FROM ferry.history WHERE migration = '20250103_u'")
run_ferry --db "$db6" --dir "$P" up
is "$RC|$OUT|$ERR" "2||ferry: 20250104_u2 looks like 20250103_u renamed (same scripts; 20250103_u was applied at $applied_u and its folder is gone): not run a second time. Rename the folder back to 20250103_u; or, if it is 20250103_u under a new name, record it as applied without running it: 'ferry up --to 20250102_n' (what is pending before it), then 'ferry baseline 20250104_u2'; or, to run its scripts a second time, rename the folder back and 'ferry run 20250103_u'" \
   "a schema step: the baseline way out, after what is pending before it"
run_ferry --db "$db6" --dir "$P" -q up --to 20250102_n
run_ferry --db "$db6" --dir "$P" -q baseline 20250104_u2
run_ferry --db "$db6" --dir "$P" up
is "$RC|$OUT" "0|Nothing to do: every migration is applied." "...which works"

done_testing
