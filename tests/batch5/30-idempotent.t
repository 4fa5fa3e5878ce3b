#!/usr/bin/env bash
# Rule 4 of issue 5: idempotent by (lead, key).  Live notes are never
# touched (and their keys are not backfilled); a changed value updates the
# backfilled note in place (notes_updated); a new key is created; the rest is
# notes_skipped; the dry run before each real run reports its counts and
# writes nothing; an operator's edit of rules/memory_notes.lua applies on the
# next run without a rebuild.
. "$(dirname "$0")/lib.sh"

URI=$(b5_db b5_30_idem "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
L=1ead0000-0000-4000-8000-00000000000

# Live notes, as the running agent writes them (no createdBy of ours).
q "$URI" "INSERT INTO \"MemoryNote\" (id, lead_id, kind, key, content, metadata, created_at, updated_at) VALUES
  ('99000000-0000-4000-8000-000000000001', '${L}7', 'fact', 'language', 'Speaks French', '{}', '2025-11-01', '2025-11-01'),
  ('99000000-0000-4000-8000-000000000002', '${L}5', 'summary', 'summary', 'Happy; wants a second door',
   '{\"createdBy\": \"agent\"}', '2025-11-01', '2025-11-01'),
  ('99000000-0000-4000-8000-000000000003', '${L}1', 'fact', 'mood', 'cheerful', '{}', '2025-11-01', '2025-11-01'),
  ('99000000-0000-4000-8000-000000000004', '${L}1', 'fact', NULL, 'no key at all', '{}', '2025-11-01', '2025-11-01')" >/dev/null
live() { q "$URI" "SELECT md5(string_agg(n::text, ',' ORDER BY id)) FROM \"MemoryNote\" n WHERE id::text LIKE '99000000-%'"; }
live_before=$(live)

before=$(b5_tables "$URI")
b5_run --dry-run
is "$(stats_of "$OUT")" "$(stats_block 5 2 12 0 2 0)" "dry run: 12 to create, 2 leaves left to their live notes"
is "$(b5_tables "$URI")" "$before" "dry run wrote nothing"
b5_run --verbose
is "$RC" 0 "first run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 5 2 12 0 2 0)" "first run: the dry run's counts"
like "$OUT" "⊙ Lead ${L}7 has a live note language: leaving it" "--verbose names the live note it leaves alone"
is "$(live)" "$live_before" "live notes untouched"
is "$(q "$URI" "SELECT count(*) FROM \"MemoryNote\" WHERE key IN ('language', 'summary') AND lead_id IN ('${L}5', '${L}7')")" 2 \
   "no backfilled note next to a live one for the same (lead, key)"

# --- the data changes
q "$URI" "UPDATE \"Lead\" SET state_metadata = jsonb_set(state_metadata, '{budget}', '650') WHERE id = '${L}1';
          UPDATE \"Lead\" SET state_metadata = state_metadata - 'windows' || '{\"budget\": 900}' WHERE id = '${L}3';
          UPDATE \"Lead\" SET customer_id = 'c0000000-0000-4000-8000-000000000001' WHERE id = '${L}4'" >/dev/null
ids_before=$(q "$URI" "SELECT string_agg(id::text, ',' ORDER BY id) FROM \"MemoryNote\"")

before=$(b5_tables "$URI")
b5_run --dry-run --verbose
is "$(stats_of "$OUT")" "$(stats_block 5 2 1 2 11 0)" "dry run: 1 new key, 2 changed notes, 11 skipped"
like "$OUT" "\[DRY RUN\] Would update note budget of lead ${L}1: budget: 650" "--verbose: the update it would make"
is "$(b5_tables "$URI")" "$before" "dry run wrote nothing"
b5_run
is "$RC" 0 "second run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 5 2 1 2 11 0)" "second run: the dry run's counts"
is "$(notes "$URI" "lead_id IN ('${L}1', '${L}3', '${L}4') AND key IN ('budget', 'windows', 'source')")" '01|budget|fact|budget: 650|2
03|budget|fact|budget: 900|-
03|windows|fact|windows: 3|-
04|source|fact|source: web form|1' \
   "changed value updated in place, new key created, customer follows the lead; a removed key's note stays"
v=$(q "$URI" "SELECT (updated_at > created_at)::text FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'budget'")
is "$v" true "the updated note's updated_at moved"
v=$(q "$URI" "SELECT count(*) FROM unnest(string_to_array('$ids_before', ',')) AS i(id)
               WHERE NOT EXISTS (SELECT 1 FROM \"MemoryNote\" n WHERE n.id::text = i.id)")
is "$v" 0 "no note was replaced: every id from before is still there"
is "$(q "$URI" "SELECT count(*) FROM \"MemoryNote\"")" 17 "17 notes: 13 backfilled + 4 live"
is "$(live)" "$live_before" "live notes still untouched"

b5_run
is "$(stats_of "$OUT")" "$(stats_block 5 2 0 0 14 0)" "third run: nothing created or updated"

# --- an operator edits the rules (content template): no rebuild, re-run
B5_DIR=$(b5_scratch)
sed -i 's|return key .. ": " .. value|return "The customer'"'"'s " .. key .. " is " .. value .. "."|' "$B5_DIR/rules/memory_notes.lua"
grep -q "The customer's" "$B5_DIR/rules/memory_notes.lua"
ok $? "rules/memory_notes.lua edited in the operator's tree"
b5 check
is "$RC" 1 "ferry check flags the rule tests the edit broke"
b5_run --dry-run
is "$(stats_of "$OUT")" "$(stats_block 5 2 0 12 2 0)" "dry run with the edited rule: 12 notes to update"
b5_run
is "$(stats_of "$OUT")" "$(stats_block 5 2 0 12 2 0)" "real run with the edited rule: 12 updated"
is "$(notes "$URI" "lead_id = '${L}1' AND key IN ('budget', 'tags')")" "01|budget|fact|The customer's budget is 650.|2
01|tags|fact|The customer's tags is vip, repeat, door.|2" "the new content is in the table"
is "$(live)" "$live_before" "live notes untouched by the edit too"

# --- an edit of a kind alone (content and customer as they are): the notes
#     of that key are updated, and only they
sed -i 's|^M.kind_by_key = {summary = "summary"}$|M.kind_by_key = {summary = "summary", budget = "preference"}|' "$B5_DIR/rules/memory_notes.lua"
grep -q '^M.kind_by_key = {summary = "summary", budget = "preference"}$' "$B5_DIR/rules/memory_notes.lua"
ok $? "rules/memory_notes.lua edited: the key budget is a preference"
b5_run
is "$RC|$(stats_of "$OUT")" "0|$(stats_block 5 2 0 2 12 0)" "a kind edited: the budget notes updated, the rest skipped"
is "$(notes "$URI" "key = 'budget' OR kind = 'preference'")" "01|budget|preference|The customer's budget is 650.|2
01|preferences.color|preference|The customer's preferences.color is oak.|2
01|preferences.delivery.day|preference|The customer's preferences.delivery.day is saturday.|2
01|preferences.delivery.window|preference|The customer's preferences.delivery.window is morning.|2
03|budget|preference|The customer's budget is 900.|-
03|preferences.color|preference|The customer's preferences.color is white.|-" \
   "the two budget notes have the new kind, their content as it was; no other note became a preference"
is "$(live)" "$live_before" "live notes untouched by that edit"
B5_DIR=$REPO_ROOT

done_testing
