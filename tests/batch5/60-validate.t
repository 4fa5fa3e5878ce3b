#!/usr/bin/env bash
# ferry validate 20251115_backfill_memory_notes: every leaf has exactly one
# note, no duplicate (lead, key) among backfilled notes, the full-text search
# uses MemoryNote_content_fts_idx, metadata/lead/kind consistent, each
# note's content what the rules give its lead's state_metadata now -- each
# check passes, and fails when its property is broken.
. "$(dirname "$0")/lib.sh"

URI=$(b5_db b5_60_validate "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
L=1ead0000-0000-4000-8000-00000000000
line() { printf '%s\n' "$OUT" | grep -F "$1"; }

b5 validate "$B5"
is "$RC" 1 "before the backfill: validate fails"
like "$(line 'every leaf')" '✗ FAIL every leaf of state_metadata has exactly one note  \(14 leaves: 14 without a note' \
   "... the completeness check says why"

# a live note for one leaf: the backfill leaves that leaf to it
q "$URI" "INSERT INTO \"MemoryNote\" (lead_id, kind, key, content) VALUES ('${L}7', 'fact', 'language', 'Speaks French')" >/dev/null
b5_run -q
before=$(b5_tables "$URI")
b5 validate "$B5"
is "$RC" 0 "after the backfill: validate passes"
is "$(printf '%s\n' "$OUT" | grep -E '^✓ PASS|^✗ FAIL' | sed 's/  (.*//')" "✓ PASS every leaf of state_metadata has exactly one note
✓ PASS no two backfilled notes share (lead, key)
✓ PASS full-text search uses MemoryNote_content_fts_idx
✓ PASS backfilled notes match their lead, key and kind
✓ PASS backfilled notes have the content the rules give
✓ PASS backfilled notes exist" "six checks, all pass"
like "$(line 'every leaf')" '\(14 leaves: 0 without a note, 0 with more than one, 1 covered by a live note\)' "completeness detail"
like "$(line 'full-text')" 'Bitmap Index Scan on "MemoryNote_content_fts_idx"' "the plan line that uses the index"
like "$(line 'exist')" '\(fact 7, preference 4, summary 2\)' "notes by kind"
is "$(line 'the content')" "✓ PASS backfilled notes have the content the rules give  (13 backfilled notes, 0 whose content differs from what the rules give)" \
   "content check: every backfilled note compared, none differs"
is "$(b5_tables "$URI")" "$before" "validate writes nothing"

b5 --json validate "$B5"
v=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["ok"], j["mode"], len(j["checks"]), all(c["ok"] for c in j["checks"]))' "$OUT")
is "$RC|$v" "0|True validate 6 True" "--json validate: one object, six passing checks"

# --- a missing note
q "$URI" "DELETE FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'tags'" >/dev/null
b5 validate "$B5"
is "$RC" 1 "a leaf without its note: validate fails"
like "$(line 'every leaf')" '✗ FAIL .*\(14 leaves: 1 without a note, 0 with more than one' "... and counts it"
b5_run -q

# --- a duplicate backfilled note
q "$URI" "INSERT INTO \"MemoryNote\" (lead_id, customer_id, kind, key, content, metadata)
          SELECT lead_id, customer_id, kind, key, content, metadata FROM \"MemoryNote\"
           WHERE lead_id = '${L}1' AND key = 'budget'" >/dev/null
b5 validate "$B5"
is "$RC" 1 "a duplicate (lead, key): validate fails"
like "$(line 'no two')" '✗ FAIL no two backfilled notes share \(lead, key\)  \(1 duplicated \(lead, key\) pairs\)' "duplicate check"
like "$(line 'every leaf')" '✗ FAIL .*0 without a note, 1 with more than one' "completeness check sees it too"
q "$URI" "DELETE FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'budget'
            AND id <> (SELECT min(id::text)::uuid FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'budget')" >/dev/null

# --- a note whose kind no longer follows the rules
q "$URI" "UPDATE \"MemoryNote\" SET kind = 'fact' WHERE lead_id = '${L}1' AND key = 'summary'" >/dev/null
b5 validate "$B5"
like "$(line 'match their lead')" '✗ FAIL .*\(13 backfilled notes, 1 that do not match' "a wrong kind fails the shape check"
b5_run -q
b5 validate "$B5"
is "$RC" 0 "a re-run repairs it (kind updated)"

# --- a note whose content is not what the rules give (edited by hand)
q "$URI" "UPDATE \"MemoryNote\" SET content = 'summary: edited by hand' WHERE lead_id = '${L}1' AND key = 'summary'" >/dev/null
b5 validate "$B5"
is "$RC" 1 "a hand-edited content: validate fails"
is "$(line 'the content')" "✗ FAIL backfilled notes have the content the rules give  (13 backfilled notes, 1 whose content differs from what the rules give: lead ${L}1 key \"summary\" (a re-run updates them))" \
   "... the content check, naming the (lead, key)"
is "$(printf '%s\n' "$OUT" | grep -c '^✗ FAIL')" 1 "... and it is the only check failing"
b5_run -q
is "$(q "$URI" "SELECT content FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'summary'")" "summary: Wants a 2 m oak door delivered on a Saturday morning." \
   "a re-run puts the rules' content back"
b5 validate "$B5"
is "$RC" 0 "after the re-run validate passes"

# ... several of them: the first three (lead, key) pairs in (lead, key)
# order, and how many more
q "$URI" "UPDATE \"MemoryNote\" SET content = content || ' (edited)' WHERE lead_id = '${L}1' AND key IN ('budget', 'currency', 'tags');
          UPDATE \"MemoryNote\" SET content = 'preferences.color: Walnut' WHERE lead_id = '${L}3' AND key = 'preferences.color'" >/dev/null
b5 validate "$B5"
is "$(line 'the content')" "✗ FAIL backfilled notes have the content the rules give  (13 backfilled notes, 4 whose content differs from what the rules give: lead ${L}1 key \"budget\", lead ${L}1 key \"currency\", lead ${L}1 key \"tags\" and 1 more (a re-run updates them))" \
   "four differing notes: the first three named, one more counted"
b5_run -q
b5 validate "$B5"
is "$RC" 0 "a re-run repairs them all"

# ... a value the live system changed after the run: its note has the old
# value's content until the next run
q "$URI" "UPDATE \"Lead\" SET state_metadata = jsonb_set(state_metadata, '{currency}', '\"EUR\"') WHERE id = '${L}1'" >/dev/null
b5 validate "$B5"
is "$(line 'the content')" "✗ FAIL backfilled notes have the content the rules give  (13 backfilled notes, 1 whose content differs from what the rules give: lead ${L}1 key \"currency\" (a re-run updates them))" \
   "a changed value: its note differs"
b5_run -q
is "$(q "$URI" "SELECT content FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'currency'")" "currency: EUR" "... a re-run updates it"
b5 validate "$B5"
is "$RC" 0 "... and validate passes"

# ... the rule changed after the run (an operator's edit of rules.content):
# every note differs until a run with the new rule updates them
B5_DIR=$(b5_scratch)
sed -i 's|return key .. ": " .. value|return key .. " = " .. value|' "$B5_DIR/rules/memory_notes.lua"
b5 validate "$B5"
is "$(line 'the content')" "✗ FAIL backfilled notes have the content the rules give  (13 backfilled notes, 13 whose content differs from what the rules give: lead ${L}1 key \"budget\", lead ${L}1 key \"currency\", lead ${L}1 key \"preferences.color\" and 10 more (a re-run updates them))" \
   "an edited content rule: every note differs"
b5_run -q
is "$(notes "$URI" "lead_id = '${L}4'")" "04|source|fact|source = web form|-" "the run with the new rule rewrote the content"
b5 validate "$B5"
is "$RC" 0 "validate with the new rule passes after that run"
B5_DIR=$REPO_ROOT
b5 validate "$B5"
like "$(line 'the content')" "✗ FAIL .*\(13 backfilled notes, 13 whose content differs" "with the repo's rule again they all differ"
b5_run -q
b5 validate "$B5"
is "$RC" 0 "... until a run with it"

# ... a lead the rules cannot map now (two leaves flatten to one key): a
# run reports it and writes none of its notes, so its notes are not
# compared; check 1 fails for it
q "$URI" "UPDATE \"Lead\" SET state_metadata = state_metadata || '{\"a.b\": 1, \"a\": {\"b\": 2}}' WHERE id = '${L}3';
          UPDATE \"MemoryNote\" SET content = 'windows: 4' WHERE lead_id = '${L}3' AND key = 'windows'" >/dev/null
b5 validate "$B5"
is "$(line 'the content')" "✓ PASS backfilled notes have the content the rules give  (13 backfilled notes, 0 whose content differs from what the rules give; not compared: 3 of leads the rules cannot map)" \
   "an unmappable lead's notes are not compared"
like "$(line 'every leaf')" '✗ FAIL .*1 leads the rules cannot map' "... check 1 fails for that lead"
q "$URI" "UPDATE \"Lead\" SET state_metadata = state_metadata - 'a.b' - 'a' WHERE id = '${L}3'" >/dev/null
b5 validate "$B5"
like "$(line 'the content')" "✗ FAIL .*\(13 backfilled notes, 1 whose content differs from what the rules give: lead ${L}3 key \"windows\" " \
   "mappable again: its edited note differs"
b5_run -q
b5 validate "$B5"
is "$RC" 0 "a re-run repairs it"

# --- the lead's customer changes and one of its keys vanishes: the note of
# the vanished key keeps its customer (a run never touches it), and
# validate does not hold that against it; the notes of the keys still
# there follow the customer after a re-run
q "$URI" "INSERT INTO \"Customer\" (id, name) VALUES ('c0000000-0000-4000-8000-0000000000aa', 'New owner')" >/dev/null
q "$URI" "UPDATE \"Lead\" SET customer_id = 'c0000000-0000-4000-8000-0000000000aa',
                               state_metadata = state_metadata - 'budget' WHERE id = '${L}1'" >/dev/null
b5 validate "$B5"
like "$(line 'match their lead')" '✗ FAIL .*that do not match \(a re-run updates them\)' "a changed customer: the notes of keys still there do not match yet"
b5_run -q
b5 validate "$B5"
is "$RC" 0 "after a re-run validate passes, the vanished key's note keeping its old customer"
[ "$RC" = 0 ] || diag "$OUT"
is "$(q "$URI" "SELECT count(*) FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'budget' AND customer_id <> 'c0000000-0000-4000-8000-0000000000aa'")" 1 \
   "(the vanished key's note is still there, with its old customer)"
# ... and with a kind the rules no longer give (the kind rule edited since
# it was written): no run touches it, so validate does not hold that
# against it either -- it said "a re-run updates them", which it never did
q "$URI" "UPDATE \"MemoryNote\" SET kind = 'kind_of_an_older_rule' WHERE lead_id = '${L}1' AND key = 'budget'" >/dev/null
b5 validate "$B5"
is "$RC" 0 "the vanished key's note with a kind the rules no longer give: validate passes"
[ "$RC" = 0 ] || diag "$OUT"
# ... and with content edited since: a re-run leaves it as it is, so the
# content check does not compare it (it says so)
q "$URI" "UPDATE \"MemoryNote\" SET content = 'budget: 499' WHERE lead_id = '${L}1' AND key = 'budget'" >/dev/null
b5 validate "$B5"
is "$RC" 0 "the vanished key's note with edited content: validate passes"
is "$(line 'the content')" "✓ PASS backfilled notes have the content the rules give  (13 backfilled notes, 0 whose content differs from what the rules give; not compared: 1 of keys gone from state_metadata (no run touches them))" \
   "... the content check says it did not compare that note"
b5_run -q
is "$(q "$URI" "SELECT content FROM \"MemoryNote\" WHERE lead_id = '${L}1' AND key = 'budget'")" "budget: 499" \
   "(a re-run indeed leaves it as it is)"

# --- a fresh run over values whose text must be exact (numbers as
# PostgreSQL prints them, compact JSON of arrays of objects, escapes,
# Unicode, a key with a quote and a newline): validate agrees with the
# backfill, byte for byte
q "$URI" "$(cat <<'SQL'
UPDATE "Lead" SET state_metadata = '{"big": 12345678901234567890.5, "ratio": 2.50, "vip": true,
  "rooms": [{"name": "hall", "doors": 1}, {"q": "say \"hi\", [ok]"}],
  "mix": [1, "two", null, 3.50], "note": "line one\nline two \u00e9 chêne 😊",
  "we\"ird": {"k\nx": "v"}}'
 WHERE id = '1ead0000-0000-4000-8000-000000000004'
SQL
)" >/dev/null
b5_run -q
is "$(notes "$URI" "lead_id = '${L}4' AND key <> 'source'")" '04|big|fact|big: 12345678901234567890.5|-
04|mix|fact|mix: 1, two, 3.50|-
04|note|fact|note: line one
line two é chêne 😊|-
04|ratio|fact|ratio: 2.50|-
04|rooms|fact|rooms: [{"name":"hall","doors":1},{"q":"say \"hi\", [ok]"}]|-
04|vip|fact|vip: true|-
04|we"ird.k
x|fact|we"ird.k
x: v|-' "(the run wrote the exact values)"
b5 validate "$B5"
is "$RC" 0 "validate passes after that run"
[ "$RC" = 0 ] || diag "$OUT"
is "$(line 'the content')" "✓ PASS backfilled notes have the content the rules give  (20 backfilled notes, 0 whose content differs from what the rules give; not compared: 2 of keys gone from state_metadata (no run touches them))" \
   "... every note of those values compared and equal"
q "$URI" "UPDATE \"MemoryNote\" SET content = content || '!' WHERE lead_id = '${L}4' AND key LIKE 'we%'" >/dev/null
b5 validate "$B5"
is "$(line 'the content')" '✗ FAIL backfilled notes have the content the rules give  (20 backfilled notes, 1 whose content differs from what the rules give: lead '"${L}"'4 key "we\"ird.k\nx" (a re-run updates them); not compared: 2 of keys gone from state_metadata (no run touches them))' \
   "a key holding a quote and a newline is named on one line, quoted"
b5_run -q
b5 validate "$B5"
is "$RC" 0 "a re-run repairs it"

# --- the CRM merges lead 5 into lead 3 (lead 5's state into lead 3's, its
# notes moved to lead 3, lead 5 deleted): the moved note's metadata still
# names lead 5, which no run corrects -- validate said "(a re-run updates
# them)" and named no note; it now tells those apart from a kind or a
# customer a re-run does update, and names them
q "$URI" "UPDATE \"Lead\" SET state_metadata = state_metadata || (SELECT state_metadata FROM \"Lead\" WHERE id = '${L}5') WHERE id = '${L}3';
          UPDATE \"MemoryNote\" SET lead_id = '${L}3' WHERE lead_id = '${L}5';
          DELETE FROM \"Lead\" WHERE id = '${L}5';
          UPDATE \"MemoryNote\" SET kind = 'fact' WHERE lead_id = '${L}1' AND key = 'summary'" >/dev/null
STALE="1 whose metadata does not name its lead and key, or that has no lead: lead ${L}3 key \"summary\" (no run corrects these: set their metadata's leadId and key, or delete them and re-run)"
b5 validate "$B5"
is "$(line 'match their lead')" "✗ FAIL backfilled notes match their lead, key and kind  (20 backfilled notes, 2 that do not match: 1 whose kind or customer is not what the rules give (a re-run updates them), $STALE)" \
   "a note moved to another lead and a wrong kind: told apart, the moved note named"
b5_run -q
b5 validate "$B5"
is "$(line 'match their lead')" "✗ FAIL backfilled notes match their lead, key and kind  (20 backfilled notes, 1 that do not match: $STALE)" \
   "... a re-run updates the kind, and leaves the moved note's metadata as it is"
q "$URI" "DELETE FROM \"MemoryNote\" WHERE lead_id = '${L}3' AND key = 'summary'" >/dev/null
b5_run -q
b5 validate "$B5"
is "$RC" 0 "deleted and re-run: the lead's note is written afresh, and validate passes"
[ "$RC" = 0 ] || diag "$OUT"

# --- no full-text index
q "$URI" "DROP INDEX \"MemoryNote_content_fts_idx\"" >/dev/null
b5 validate "$B5"
is "$RC" 1 "without the GIN index: validate fails"
like "$(line 'full-text')" '✗ FAIL full-text search uses MemoryNote_content_fts_idx' "the FTS check is the one failing"
q "$URI" "CREATE INDEX \"MemoryNote_content_fts_idx\" ON \"MemoryNote\" USING GIN (to_tsvector('english', COALESCE(content, '')))" >/dev/null
b5 validate "$B5"
is "$RC" 0 "index back: validate passes"

done_testing
