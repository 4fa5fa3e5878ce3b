#!/usr/bin/env bash
# Rollback of Batch 5, under `ferry rollback` and plain `psql -f`: only the
# notes this backfill created (updated ones included) and its run records
# go; live notes stay, even for a (lead, key) the backfill also had; leads
# and other audits stay; it verifies itself and can run twice.
. "$(dirname "$0")/lib.sh"

URI=$(b5_db b5_50_rollback "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
L=1ead0000-0000-4000-8000-00000000000
RB=$REPO_ROOT/migrations/$B5/rollback.sql

live_sql() {
    q "$URI" "INSERT INTO \"MemoryNote\" (id, lead_id, kind, key, content, metadata) VALUES
      ('99000000-0000-4000-8000-00000000000$1', '${L}$2', 'fact', '$3', '$4', '$5')" >/dev/null
}
others() {   # everything but the backfill's notes and run records
    q "$URI" "SELECT 'L', md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \"Lead\" t
      UNION ALL SELECT 'A', md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \"Audit\" t WHERE action <> 'backfill_memory_notes'
      UNION ALL SELECT 'N', string_agg(id::text || ':' || content, ',' ORDER BY id) FROM \"MemoryNote\"
                            WHERE metadata->>'createdBy' IS DISTINCT FROM '$B5'"
}

live_sql 1 7 language 'Speaks French' '{}'                                     # before the run: its key is skipped
live_sql 2 1 mood cheerful '{"createdBy": "agent", "source": "chat"}'          # a key the backfill never has
# A note that looks like the backfill's but names another migration: live too.
live_sql 3 5 summary 'old summary' '{"createdBy": "20240101_other", "source": "state_metadata_backfill"}'
# "createdBy" ours but another source: not the backfill's shape, so it stays.
live_sql 4 4 source 'typed by hand' "{\"createdBy\": \"$B5\", \"source\": \"manual\"}"

b5_run
is "$RC|$(stats_of "$OUT")" "0|$(stats_block 5 2 11 0 3 0)" "run: 11 created, 3 left to live notes"
live_sql 5 1 budget 'Budget is flexible' '{}'                                  # after the run: same (lead, key) as a backfilled note
q "$URI" "UPDATE \"Lead\" SET state_metadata = jsonb_set(state_metadata, '{budget}', '650') WHERE id = '${L}1'" >/dev/null
b5_run
is "$(stats_of "$OUT")" "$(stats_block 5 2 0 1 13 0)" "second run: the changed budget updated"
keep=$(others)
is "$(q "$URI" "SELECT count(*) FROM \"Audit\" WHERE action = 'backfill_memory_notes'")" 2 "two run records"

b5 rollback "$B5"
is "$RC" 0 "ferry rollback exits 0"
like "$OUT$ERR" 'rollback of 20251115_backfill_memory_notes verified: removed 11 backfilled notes and 2 run records; 5 other notes kept' \
   "it reports what it removed and verified"
is "$(others)" "$keep" "leads, other audits and the 5 live notes are exactly as before"
is "$(q "$URI" "SELECT string_agg(right(id::text, 1), ',' ORDER BY id) FROM \"MemoryNote\"")" "1,2,3,4,5" \
   "only the live notes remain (incl. the one sharing (lead, key) with a backfilled note)"
is "$(q "$URI" "SELECT count(*) FROM \"Audit\" WHERE action = 'backfill_memory_notes'")" 0 "run records gone"
is "$(q "$URI" "SELECT status FROM ferry.history WHERE migration = '$B5' ORDER BY id DESC LIMIT 1")" "rolled back" \
   "history: rolled back"
b5 status
like "$OUT" "$B5 +rolled back" "status shows it rolled back"

b5 rollback "$B5"
is "$RC" 0 "a second rollback is a harmless no-op"

# --- plain psql -f, with a checkpoint of an interrupted run to clear
b5_run
is "$(stats_of "$OUT")" "$(stats_block 5 2 10 0 4 0)" "run again: 10 created (4 keys have live notes now)"
q "$URI" "INSERT INTO ferry.checkpoint (migration, run_id, position) VALUES ('$B5', gen_random_uuid(), '\"x\"')" >/dev/null
v=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$RB" 2>&1)
ok $? "psql -v ON_ERROR_STOP=1 -f rollback.sql exits 0"
like "$v" 'verified: removed 10 backfilled notes and 1 run records; 5 other notes kept' "psql shows the verification"
is "$(others)" "$keep" "psql -f: live data exactly as before"
is "$(q "$URI" "SELECT count(*) FROM \"MemoryNote\" WHERE metadata->>'source' = 'state_metadata_backfill' AND metadata->>'createdBy' = '$B5'")" 0 \
   "psql -f: no backfilled note left"
is "$(q "$URI" "SELECT count(*) FROM ferry.checkpoint")" 0 "psql -f: ferry's checkpoint for Batch 5 removed"

# --- psql -f on a database without ferry's schema
b5_run
q "$URI" "SET client_min_messages = warning; DROP SCHEMA ferry CASCADE" >/dev/null
v=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$RB" 2>&1)
ok $? "psql -f works where ferry's history does not exist"
is "$(others)" "$keep" "... and spares the live data there too"

done_testing
