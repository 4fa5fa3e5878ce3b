#!/usr/bin/env bash
# docs/authoring.md, followed literally: every ```sh block, in order, in one
# shell started at the root of the checkout (as the guide says), must
# succeed; the outputs the guide shows must be what they print.
. "$(dirname "$0")/lib.sh"

GUIDE=$REPO_ROOT/docs/authoring.md
script=$TAP_TMPDIR/guide.sh
awk '/^```sh$/ { on = 1; next } /^```$/ { if (on) print ""; on = 0; next } on { print }' "$GUIDE" >"$script"
n=$(grep -c '^```sh$' "$GUIDE")
[ "$n" -ge 10 ]
ok $? "the guide has its sh blocks ($n)"

export G=$TAP_TMPDIR/guide-tree GUIDE_DB=b5_80_guide
out=$TAP_TMPDIR/guide.out
(cd "$REPO_ROOT" && bash -eo pipefail -x "$script") >"$out" 2>&1
rc=$?
is "$rc" 0 "every sh block of docs/authoring.md runs as written"
[ "$rc" = 0 ] || diag "$(tail -30 "$out")"
log=$(cat "$out")

# section 2: Batch 5 end to end
like "$log" 'Leads processed:  5
   Leads skipped:    2
   Notes created:    14' "section 2: Batch 5's counts as shown"
like "$log" '   \[DRY RUN\] Would update note budget of lead 1ead0000-0000-4000-8000-000000000001: budget: 650' \
    "section 2: the update line as shown"
like "$log" '✓ PASS full-text search uses MemoryNote_content_fts_idx' "section 2: validate passes"
# section 3: the scaffold
like "$log" 'ok   migrations/[0-9]{8}_lead_stage_notes/up.lua' "section 3: the scaffold passes check"
# section 4: the rule's tests
like "$log" 'ok   rules\.stage_notes  2 tests passed' "section 4: rules.stage_notes' tests pass"
# section 5: counts promised in the text
like "$log" 'Leads processed:  4
   Leads skipped:    3
   Notes created:    4' "section 5: 4 processed, 3 skipped, 4 created"
like "$log" 'Notes created:    0
   Notes updated:    0
   Notes skipped:    4' "section 5: the re-run creates nothing"
like "$log" '   Updating note of lead 1ead0000-0000-4000-8000-000000000003: Lead stage: done
   Notes created:    0
   Notes updated:    1
   Notes skipped:    3' "section 5: the stage change, as shown"
# section 7: validate fails, then passes, as shown
like "$log" "✗ FAIL every lead past 'new' has exactly one stage note  \(4 leads: 0 without a note, 1 with more than one\)" \
    "section 7: validate fails on the duplicate, as shown"
like "$log" "✓ PASS every lead past 'new' has exactly one stage note  \(4 leads: 0 without a note, 0 with more than one\)
✓ PASS stage notes say the lead's current stage  \(0 stale\)" "section 7: then passes, as shown"
# section 8
like "$log" 'rollback of [0-9]{8}_lead_stage_notes verified' "section 8: the rollback verifies itself"
like "$log" '"mode":"dry-run"' "section 8: --json"
like "$log" 'note: 20251110_backfill_conversations_messages is older than 20251115_backfill_memory_notes, which is applied: it runs after it, out of version order' \
    "section 8: up notes that Batch 4 runs out of version order, as shown"
# section 9
like "$(printf '%s\n' "$log" | grep -E '^(batch5|lead_stage_notes) ')" \
    $'^batch5 run [0-9.]+ [0-9]+\nbatch5 rerun [0-9.]+ [0-9]+\nlead_stage_notes run [0-9.]+ [0-9]+\nlead_stage_notes rerun [0-9.]+ [0-9]+$' \
    "section 9: the bench lines as shown"
# section 10: a schema migration first
like "$log" $'\ncreated migrations/[0-9]{8}_stage_counts_1_table/ \\(up\\.sql, rollback\\.sql, validate\\.lua, README\\.md\\)\n' \
    "section 10: new --sql scaffolds the schema step with an up.sql"
like "$log" $'\nDROP TABLE IF EXISTS stage_counts;\nCOMMIT;\n' "section 10: the scaffold's rollback.sql ends with our DROP TABLE"
like "$log" 'ferry: migrations/[0-9]{8}_stage_counts_2_fill/up\.lua:4: query failed: relation "stage_counts" does not exist \[SQLSTATE 42P01\]; this dry run applied nothing of [0-9]{8}_stage_counts_1_table before it \(a dry run runs no up\.sql\): apply it first: ferry up --to [0-9]{8}_stage_counts_1_table \(which also runs what is pending before it\), then dry-run this one' \
    "section 10: up --dry-run of both fails on the table, as shown"
like "$log" $'\ndry run failed, as it should' "...and the guide's echo says so (the dry run exited non-zero)"
like "$log" '✓ PASS stage_counts exists' "section 10: the schema step applied alone, and validated"
like "$log" 'Stages created:  4
   Stages updated:  0
   Stages skipped:  0
✓ [0-9]{8}_stage_counts_2_fill dry run finished' "section 10: then the data step's dry run passes"
like "$log" 'Stages created:  0
   Stages updated:  0
   Stages skipped:  4
✓ [0-9]{8}_stage_counts_2_fill applied' "section 10: its re-run writes nothing"
# section 11: in place, with the plain API and a down.lua
like "$log" 'Messages seen:       22
   Messages tagged:     22
   Messages unchanged:  0
   Errors:              0
✓ [0-9]{8}_message_tags dry run finished' "section 11: the dry run tags every message"
like "$log" 'Messages seen:       22
   Messages tagged:     0
   Messages unchanged:  22
   Errors:              0
✓ [0-9]{8}_message_tags applied' "section 11: the re-run changes nothing, as shown"
like "$log" '✓ PASS every message has the tag its text gives  \(22 messages, 0 with another tag\)' "section 11: validate passes"
like "$log" '   Tagging message [0-9a-f-]{36}: greeting
   Messages tagged:     1' "section 11: the rule's edit changes one message"
like "$log" 'restored the tags of 22 messages

📊 Statistics:
   Messages restored:  22
✓ [0-9]{8}_message_tags rolled back' "section 11: down.lua restores every message, and says so in its statistics"
like "$log" $'\n0\n' "section 11: no message keeps a tag after the rollback"
# clean-up
[ ! -e "$G" ]
ok $? "the scratch tree is removed at the end"
is "$(q "$DATABASE_URL" "SELECT count(*) FROM pg_database WHERE datname LIKE 'b5_80_guide%'")" 0 "the scratch databases are dropped"

done_testing
