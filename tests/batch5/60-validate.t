#!/usr/bin/env bash
# ferry validate 20251115_backfill_memory_notes: every leaf has exactly one
# note, no duplicate (lead, key) among backfilled notes, the full-text search
# uses MemoryNote_content_fts_idx, metadata/lead/kind consistent -- each
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
✓ PASS backfilled notes exist" "five checks, all pass"
like "$(line 'every leaf')" '\(14 leaves: 0 without a note, 0 with more than one, 1 covered by a live note\)' "completeness detail"
like "$(line 'full-text')" 'Bitmap Index Scan on "MemoryNote_content_fts_idx"' "the plan line that uses the index"
like "$(line 'exist')" '\(fact 7, preference 4, summary 2\)' "notes by kind"
is "$(b5_tables "$URI")" "$before" "validate writes nothing"

b5 --json validate "$B5"
v=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["ok"], j["mode"], len(j["checks"]), all(c["ok"] for c in j["checks"]))' "$OUT")
is "$RC|$v" "0|True validate 5 True" "--json validate: one object, five passing checks"

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

# --- no full-text index
q "$URI" "DROP INDEX \"MemoryNote_content_fts_idx\"" >/dev/null
b5 validate "$B5"
is "$RC" 1 "without the GIN index: validate fails"
like "$(line 'full-text')" '✗ FAIL full-text search uses MemoryNote_content_fts_idx' "the FTS check is the one failing"
q "$URI" "CREATE INDEX \"MemoryNote_content_fts_idx\" ON \"MemoryNote\" USING GIN (to_tsvector('english', COALESCE(content, '')))" >/dev/null
b5 validate "$B5"
is "$RC" 0 "index back: validate passes"

done_testing
