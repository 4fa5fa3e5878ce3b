#!/usr/bin/env bash
# A lead the rules cannot map is an error (counted, reported, in the run
# record), the rest is written; fixing the data and re-running picks it up.
# An interrupted run resumes from its checkpoint with totals equal to an
# uninterrupted run's.
. "$(dirname "$0")/lib.sh"

URI=$(b5_db b5_40_errors "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
L=1ead0000-0000-4000-8000-00000000000

# --- a collision: two leaves flatten to "a.b"
q "$URI" "UPDATE \"Lead\" SET state_metadata = '{\"a.b\": 1, \"a\": {\"b\": 2}}' WHERE id = '${L}6'" >/dev/null
b5_run --dry-run
is "$(stats_of "$OUT")" "$(stats_block 6 1 14 0 0 1)" "dry run: the lead counts as processed and as an error"
b5_run
is "$RC" 1 "a run with a row error exits 1"
is "$(stats_of "$OUT")" "$(stats_block 6 1 14 0 0 1)" "real run: the dry run's counts; the other leads are written"
like "$OUT" "⚠ Errors \(1\):
   ${L}6: two leaves flatten to the key \"a\.b\"" "the error names the lead and the key"
like "$ERR" '1 row error\(s\) recorded' "stderr says so"
is "$(q "$URI" "SELECT count(*) FROM \"MemoryNote\" WHERE lead_id = '${L}6'")" 0 "none of that lead's notes is written"
is "$(q "$URI" "SELECT payload->'errors' FROM \"Audit\" WHERE action = 'backfill_memory_notes'")" \
   "[{\"key\": \"${L}6\", \"message\": \"two leaves flatten to the key \\\"a.b\\\"\"}]" "the run record lists the error"
is "$(q "$URI" "SELECT status FROM ferry.history WHERE migration = '$B5' ORDER BY id DESC LIMIT 1")" failed "history: failed"
is "$(q "$URI" "SELECT count(*) FROM ferry.checkpoint")" 0 "no resume point past the failed lead (its batch saved none)"

q "$URI" "UPDATE \"Lead\" SET state_metadata = '{\"a.b\": 1}' WHERE id = '${L}6'" >/dev/null
b5_run
is "$RC" 0 "after fixing the data the re-run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 6 1 1 0 14 0)" "... and picks the fixed lead up"
is "$(notes "$URI" "lead_id = '${L}6'")" "06|a.b|fact|a.b: 1|3" "its note"

# --- interrupted and resumed: batches of 2 leads, stop at the first error
URI=$(b5_db b5_40_resume "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
# Lead 6 fails while its batch (L5, L6) is being mapped: the batches in
# flight before it (L1, L2 and L3, L4) are good and commit on this
# controlled stop; the failing lead's batch is never sent.
q "$URI" "UPDATE \"Lead\" SET state_metadata = '{\"x.y\": 1, \"x\": {\"y\": 2}}' WHERE id = '${L}6'" >/dev/null
b5_run --batch-size 2 --max-errors 0
is "$RC" 1 "run stopped by --max-errors 0 exits 1"
is "$(q "$URI" "SELECT position::text FROM ferry.checkpoint WHERE migration = '$B5'")" "\"${L}4\"" \
   "checkpoint: the last lead of the last committed batch"
is "$(q "$URI" "SELECT count(*) FROM \"MemoryNote\"")" 12 "only the committed batches' notes (L1-L4's 12) are there"

q "$URI" "UPDATE \"Lead\" SET state_metadata = '{}' WHERE id = '${L}6'" >/dev/null
b5_run --batch-size 2 --dry-run
is "$(stats_of "$OUT")" "$(stats_block 5 2 14 0 0 0)" "dry run of the resumption: the uninterrupted totals"
b5_run --batch-size 2
is "$RC" 0 "resumed run exits 0"
like "$OUT" "Resuming after lead ${L}4" "it resumes after the checkpoint"
is "$(stats_of "$OUT")" "$(stats_block 5 2 14 0 0 0)" "resumed run: the totals of an uninterrupted run"
is "$(q "$URI" "SELECT count(*) || ' ' || count(DISTINCT (lead_id, key)) FROM \"MemoryNote\"")" "14 14" \
   "14 notes, no duplicate"
is "$(record_stats "$URI")" "5 2 14 0 0 0" "run record of the resumed run: the totals"
is "$(q "$URI" "SELECT count(*) FROM ferry.checkpoint")" 0 "checkpoint cleared"

# --- row errors in a multi-batch run: the resume point stays before them
URI=$(b5_db b5_40_after "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
q "$URI" "UPDATE \"Lead\" SET state_metadata = '{\"x.y\": 1, \"x\": {\"y\": 2}}' WHERE id = '${L}3'" >/dev/null
b5_run --batch-size 2 --jobs 2
is "$RC|$(stats_of "$OUT")" "1|$(stats_block 5 2 11 0 0 1)" "batches of 2 on 2 writers: everything but lead 3 written, 1 error"
is "$(q "$URI" "SELECT position::text FROM ferry.checkpoint WHERE migration = '$B5'")" "\"${L}2\"" \
   "the checkpoint stays at the last batch before the failed lead"
like "$OUT" "BACKFILL FINISHED WITH 1 ROW ERROR\\(S\\): fix the rule or the data and re-run" "the closing banner says it is not complete"
unlike "$OUT" "BACKFILL COMPLETE" "...not BACKFILL COMPLETE"
q "$URI" "UPDATE \"Lead\" SET state_metadata = '{\"windows\": 3}' WHERE id = '${L}3'" >/dev/null
b5_run --batch-size 2 --jobs 2
is "$RC" 0 "after the fix the re-run exits 0"
like "$OUT" "Resuming after lead ${L}2 \\(checkpoint of an earlier run that did not finish\\)" \
     "it resumes before the failed lead (a run stopped by row errors is not called interrupted)"
# the run before committed leads 4-7 past its checkpoint: this run finds
# them done, and counts its own work (not lead 1-2's restored counters plus
# its own, which would count those leads' notes twice)
is "$(stats_of "$OUT")" "$(stats_block 4 1 1 0 3 0)" "its own work: the fixed lead's note created, the later leads' notes found done"
like "$OUT" "the previous run had row errors and committed batches past its resume point" "... saying why"
is "$(q "$URI" "SELECT count(*) || ' ' || count(DISTINCT (lead_id, key)) FROM \"MemoryNote\"")" "12 12" \
   "every note once: L1 8, L3 1, L4 1, L5 1, L7 1"

# --- a rule that raises an error object (a table) fails that lead, not the run
B5_DIR=$(b5_scratch)
sed -i 's/^function M.content(key, value, kind)$/&\n  if key == "budget" then error({reason = "no budgets"}) end/' "$B5_DIR/rules/memory_notes.lua"
grep -q 'error({reason = "no budgets"})' "$B5_DIR/rules/memory_notes.lua"
ok $? "rules/memory_notes.lua edited to raise a table for the key budget"
URI=$(b5_db b5_40_table "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
b5_run
is "$RC" 1 "a rule raising a table: exit 1 (row errors), not a crash"
# lead 1 has a budget (lead 3's is null: no note, so the rule never sees it)
like "$OUT" 'Errors \(1\):
   '"${L}"'1: error object \{"reason":"no budgets"\}' "the lead with a budget is a row error showing the object"
unlike "$ERR" 'ferry: .*: nil' "no 'nil' error"
is "$(q "$URI" "SELECT count(DISTINCT lead_id) FROM \"MemoryNote\"")" 4 "the other four leads' notes are written"
B5_DIR=$REPO_ROOT

done_testing
