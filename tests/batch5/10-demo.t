#!/usr/bin/env bash
# Batch 5 on demo/data.sql: the counts its README promises, every note's
# row (flattening, kinds, content, metadata, ids), dry run = real run and
# writing nothing, the run record, --json, output, a re-run creating nothing.
. "$(dirname "$0")/lib.sh"

URI=$(b5_db b5_10_demo "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"

# --- dry run: the counts, nothing written
before=$(b5_tables "$URI")
b5_run --dry-run
is "$RC" 0 "dry run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 5 2 14 0 0 0)" "dry run: 5 leads processed, 2 skipped, 14 notes"
is "$(b5_tables "$URI")" "$before" "dry run wrote nothing (no note, audit, history or checkpoint)"
unlike "$OUT" 'Would create note' "no per-note lines without --verbose"
like "$OUT" '\[DRY RUN\] Would create audit log' "dry run: says it would create the run record"
like "$OUT" '🔍 DRY RUN COMPLETE' "dry run: its banner"

b5_run --dry-run --verbose
is "$(printf '%s\n' "$OUT" | grep -c '\[DRY RUN\] Would create note')" 14 "--verbose: one [DRY RUN] line per note"
like "$OUT" '\[DRY RUN\] Would create note preferences\.delivery\.day for lead 1ead0000-0000-4000-8000-000000000001 \(preference\): preferences\.delivery\.day: saturday' \
    "--verbose: the line names key, lead, kind and content"
like "$OUT" '⊙ Skipping lead 1ead0000-0000-4000-8000-000000000002 \(state_metadata is not a non-empty object\)' \
    "--verbose: the NULL lead is skipped"
like "$OUT" '⊙ Skipping lead 1ead0000-0000-4000-8000-000000000006 ' "--verbose: the {} lead is skipped"

# --- real run
b5_run
is "$RC" 0 "real run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 5 2 14 0 0 0)" "real run: the dry run's counts"
steps=$(printf '%s\n' "$OUT" | grep -E '^\[[0-9]/3\]')
is "$steps" "[1/3] Fetching leads...
[2/3] Creating memory notes...
[3/3] Recording audit log..." "the three steps"
like "$OUT" '✓ notes: 14 created, 0 updated, 0 skipped' "summary line"
like "$OUT" '✅ BACKFILL COMPLETE' "banner"

is "$(notes "$URI")" '01|budget|fact|budget: 500|2
01|currency|fact|currency: USD|2
01|preferences.color|preference|preferences.color: oak|2
01|preferences.delivery.day|preference|preferences.delivery.day: saturday|2
01|preferences.delivery.window|preference|preferences.delivery.window: morning|2
01|rooms|fact|rooms: [{"name":"hall","doors":1},{"name":"kitchen","doors":2}]|2
01|summary|summary|summary: Wants a 2 m oak door delivered on a Saturday morning.|2
01|tags|fact|tags: vip, repeat, door|2
03|preferences.color|preference|preferences.color: white|-
03|quoted|fact|quoted: true|-
03|windows|fact|windows: 3|-
04|source|fact|source: web form|-
05|summary|summary|summary: Door delivered; happy customer.|3
07|language|fact|language: fr|-' \
   "every note: nested keys, joined array, compact JSON of the array of objects, kinds, content, customer"

v=$(q "$URI" "SELECT count(*) FROM \"MemoryNote\" n JOIN \"Lead\" l ON l.id = n.lead_id
               WHERE n.metadata = jsonb_build_object('source', 'state_metadata_backfill', 'leadId', l.id::text,
                                                    'key', n.key, 'createdBy', '$B5')
                 AND n.customer_id IS NOT DISTINCT FROM l.customer_id")
is "$v" 14 "metadata is exactly {source, leadId, key, createdBy} on every note"

v=$(q "$URI" "SELECT id FROM \"MemoryNote\" WHERE key = 'tags'")
is "$v" "$(python3 -c 'import sys, uuid; print(uuid.uuid5(uuid.UUID(sys.argv[1]), sys.argv[2]))' \
            "$NS5" 1ead0000-0000-4000-8000-000000000001:tags)" "note id = uuid v5 of (NS, lead id:key) (checked with Python)"

v=$(q "$URI" "SELECT to_jsonb(n.*) - 'id' - 'lead_id' - 'customer_id' - 'created_at' - 'updated_at' - 'metadata'
                FROM \"MemoryNote\" n WHERE key = 'rooms'")
is "$v" '{"key": "rooms", "kind": "fact", "content": "rooms: [{\"name\":\"hall\",\"doors\":1},{\"name\":\"kitchen\",\"doors\":2}]"}' \
   "the array of objects keeps jsonb's key order (name before doors)"

# --- run record
v=$(q "$URI" "SELECT count(*) || '|' || string_agg(actor || '|' || coalesce(lead_id::text, 'NULL') || '|' || payload::text, '')
                FROM \"Audit\" WHERE action = 'backfill_memory_notes'")
is "$v" "1|system|NULL|{\"stats\": {\"errors\": 0, \"leads_skipped\": 2, \"notes_created\": 14, \"notes_skipped\": 0, \"notes_updated\": 0, \"leads_processed\": 5}, \"errors\": [], \"source\": \"state_metadata_backfill\", \"migration\": \"$B5\"}" \
   "one run record: lead NULL, actor system, payload {source, migration, stats, errors}"
v=$(q "$URI" "SELECT status || '|' || (stats->'stats')::text FROM ferry.history WHERE migration = '$B5' ORDER BY id DESC LIMIT 1")
is "$v" 'applied|{"errors": 0, "leads_skipped": 2, "notes_created": 14, "notes_skipped": 0, "notes_updated": 0, "leads_processed": 5}' \
   "history: applied with the same stats"
is "$(q "$URI" "SELECT count(*) FROM ferry.checkpoint")" 0 "no checkpoint left after a complete run"

# --- re-run: nothing created, all skipped
b5_run
is "$RC" 0 "re-run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 5 2 0 0 14 0)" "re-run: 0 created, 14 skipped"
is "$(q "$URI" 'SELECT count(*) FROM "MemoryNote"')" 14 "still 14 notes"
is "$(record_stats "$URI")" "5 2 0 0 14 0" "second run record has the re-run's stats"

# --- --json
b5_run --json --dry-run
is "$RC" 0 "--json --dry-run exits 0"
v=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(json.dumps([j["migration"], j["mode"], j["ok"], j["stats"], j["errors"]], separators=(",", ":")))' "$OUT")
is "$v" "[\"$B5\",\"dry-run\",true,$(json_stats 5 2 0 0 14 0),[]]" "--json: one object, stats in declared order"
is "$(printf '%s\n' "$OUT" | wc -l)" 1 "--json: stdout is the JSON line alone"
b5_run --json
is "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["mode"])' "$OUT")" apply "--json real run: mode apply"

# --- the full-text search the agent will use
v=$(q "$URI" "SELECT string_agg(key, ',' ORDER BY key) FROM \"MemoryNote\"
               WHERE to_tsvector('english', COALESCE(content, '')) @@ plainto_tsquery('english', 'oak')")
is "$v" "preferences.color,summary" "full-text search over the notes finds 'oak'"

done_testing
