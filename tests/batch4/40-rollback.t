#!/usr/bin/env bash
# Issue 3 rule 10: rollback, by `ferry rollback` and by plain psql on a
# database with no ferry history.  It removes the backfilled messages and
# conversations and the run records, verifies that, and spares everything
# else: live messages and conversations, every other audit, and a backfilled
# conversation the live system has written into (kept, reported by NOTICE).
. "$(dirname "$0")/lib.sh"

L=1ead0000-0000-4000-8000-00000000000
LIVE=cc000000-0000-4000-8000-000000000001

# live_rows URI: what the live system owns (must survive any rollback)
live_rows() {
    q "$1" "SELECT 'messages', count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM \"Message\" t
             WHERE t.metadata->>'createdBy' IS DISTINCT FROM '$B4'
            UNION ALL
            SELECT 'conversations', count(*), md5(coalesce(string_agg(t.id || t.metadata::text, ',' ORDER BY t.id), '')) FROM \"Conversation\" t
             WHERE t.metadata->>'createdBy' IS DISTINCT FROM '$B4'
            UNION ALL
            SELECT 'audits', count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM \"Audit\" t
             WHERE t.action <> 'backfill_conversations_messages'"
}

# live_writes URI: the live system after the backfill: a message into L1's
# backfilled conversation, one into L5's live conversation, a new live
# conversation for L7 with a message, and a new audit.
live_writes() {
    q "$1" "INSERT INTO \"Message\" (id, conversation_id, role, content, metadata, created_at)
            SELECT 'e1000000-0000-4000-8000-000000000001', id, 'assistant', 'live reply in a backfilled conversation',
                   '{\"app\": \"live\"}', '2025-11-20 10:00:00+00'
              FROM \"Conversation\" WHERE lead_id = '${L}1';
            INSERT INTO \"Message\" (id, conversation_id, role, content, metadata, created_at) VALUES
              ('e1000000-0000-4000-8000-000000000002', '$LIVE', 'user', 'live message in the live conversation', '{}', '2025-11-21 10:00:00+00');
            INSERT INTO \"Conversation\" (id, lead_id, channel, started_at, last_message_at, metadata) VALUES
              ('cc000000-0000-4000-8000-000000000007', '${L}7', 'whatsapp', '2025-11-22', '2025-11-22 10:00:00+00', '{\"app\": \"live\"}');
            INSERT INTO \"Message\" (id, conversation_id, role, content, created_at) VALUES
              ('e1000000-0000-4000-8000-000000000003', 'cc000000-0000-4000-8000-000000000007', 'user', 'hello', '2025-11-22 10:00:00+00');
            INSERT INTO \"Audit\" (id, lead_id, actor, action, payload) VALUES
              ('a1000000-0000-4000-8000-000000000001', '${L}7', 'system', 'live_event', '{\"x\": 1}')" >/dev/null
}

backfilled() {
    q "$1" "SELECT (SELECT count(*) FROM \"Message\" WHERE metadata->>'createdBy' = '$B4') || ' ' ||
                   (SELECT count(*) FROM \"Conversation\" WHERE metadata->>'createdBy' = '$B4') || ' ' ||
                   (SELECT count(*) FROM \"Audit\" WHERE action = 'backfill_conversations_messages')"
}

# ------------------------------------------------------------ ferry rollback
URI=$(b4_db b4_40_ferry "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
b4_run -q
is "$RC" 0 "Batch 4 runs"
lma() { q "$URI" "SELECT last_message_at FROM \"Conversation\" WHERE id = '$LIVE'"; }
is "$(lma)" "2025-10-22 14:00:00+00" "the backfill raised the live conversation's last_message_at to its newest message"
b4_run -q
live_writes "$URI"
is "$(backfilled "$URI")" "21 4 2" "before: 21 backfilled messages, 4 conversations, 2 run records"
live=$(live_rows "$URI")
kept=$(q "$URI" "SELECT id FROM \"Conversation\" WHERE lead_id = '${L}1'")

b4 rollback "$B4"
is "$RC" 0 "ferry rollback exits 0"
like "$OUT$ERR" "kept conversation $kept of lead ${L}1: the live system wrote 1 message\\(s\\) into it" \
    "the kept conversation is reported (NOTICE)"
like "$OUT$ERR" "rollback of $B4 verified" "the rollback verified itself"
is "$(backfilled "$URI")" "0 1 0" "after: no backfilled message, no run record; one backfilled conversation kept"
is "$(live_rows "$URI")" "$live" "live messages, live conversations and all other audits are untouched"
is "$(q "$URI" "SELECT id || ' ' || last_message_at || ' ' || (SELECT string_agg(content, ',') FROM \"Message\" m WHERE m.conversation_id = c.id)
                  FROM \"Conversation\" c WHERE lead_id = '${L}1'")" \
   "$kept 2025-11-20 10:00:00+00 live reply in a backfilled conversation" \
   "the kept conversation holds only the live message; last_message_at follows it"
is "$(q "$URI" "SELECT string_agg(content, ',' ORDER BY created_at) FROM \"Message\" WHERE conversation_id = '$LIVE'")" \
   "Your door ships on Monday.,live message in the live conversation" "the live conversation keeps its live messages only"
is "$(lma)" "2025-11-21 10:00:00+00" \
   "the live conversation's last_message_at, raised by the backfill, now follows its remaining messages"
is "$(q "$URI" "SELECT count(*) FROM \"Audit\"")" 39 "the 38 demo audits and the live one remain"
is "$(q "$URI" "SELECT operation || ' ' || status FROM ferry.history WHERE migration = '$B4' ORDER BY id DESC LIMIT 1")" \
   "rollback rolled back" "ferry.history records the rollback"
b4 status
like "$OUT" "$B4 +rolled back" "status shows it rolled back"

b4_run
is "$RC" 0 "Batch 4 runs again after the rollback"
is "$(stats_of "$OUT")" "$(stats_block 3 3 22 10 34 2 0)" \
   "... recreating the 21 messages (L1's into its kept conversation) and one for the new system audit of L7"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id WHERE c.lead_id = '${L}1'")" 12 \
   "L1's kept conversation: 11 backfilled + 1 live message"
b4 validate "$B4"
is "$RC" 0 "validate passes after rollback and re-run"

# rollback.sql under psql on the same database (ferry's tables present)
out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$B4_PATH/rollback.sql" 2>&1)
is "$?" 0 "psql -f rollback.sql works where ferry's history exists"
is "$(backfilled "$URI")" "0 1 0" "... and removes the same rows"
is "$(q "$URI" "SELECT count(*) FROM ferry.checkpoint")" 0 "... leaving no checkpoint behind"

# ------------------------------------------------------------ psql, no ferry history
URI=$(fresh_db b4_40_psql) || bail_out "cannot create the database"
for up in "$REPO_ROOT"/migrations/2025110[158]_*/up.sql; do
    "$PSQL" -X -q -1 -v ON_ERROR_STOP=1 -d "$URI" -f "$up" >/dev/null || bail_out "cannot apply $up"
done
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$REPO_ROOT/demo/data.sql" >/dev/null || bail_out "cannot load demo data"
is "$(q "$URI" "SELECT to_regnamespace('ferry') IS NULL")" t "schema built by psql from Batches 1-3: no ferry history"
b4_run -q
is "$RC" 0 "Batch 4 runs on it"
q "$URI" "SET client_min_messages = warning; DROP SCHEMA ferry CASCADE" >/dev/null
is "$(q "$URI" "SELECT to_regnamespace('ferry') IS NULL")" t "ferry's history dropped: a database that never saw ferry"
live_writes "$URI"
live=$(live_rows "$URI")
kept=$(q "$URI" "SELECT id FROM \"Conversation\" WHERE lead_id = '${L}1'")
out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$B4_PATH/rollback.sql" 2>&1)
is "$?" 0 "plain psql -v ON_ERROR_STOP=1 -f rollback.sql exits 0"
like "$out" "NOTICE:  kept conversation $kept of lead ${L}1: the live system wrote 1 message\\(s\\) into it" \
    "psql shows the NOTICE for the kept conversation"
like "$out" "NOTICE:  rollback of $B4 verified" "psql shows the verification NOTICE"
is "$(backfilled "$URI")" "0 1 0" "backfilled messages, conversations (but the kept one) and run records are gone"
is "$(live_rows "$URI")" "$live" "live rows untouched"
is "$(q "$URI" "SELECT to_regnamespace('ferry') IS NULL")" t "rollback.sql did not need or create ferry's schema"
out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$B4_PATH/rollback.sql" 2>&1)
is "$?" 0 "a second psql rollback is harmless"
is "$(live_rows "$URI")|$(backfilled "$URI")" "$live|0 1 0" "... and changes nothing"

# ------------------------------------------------------------ last_message_at of a live conversation
URI=$(b4_db b4_40_lma "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
before=$(q "$URI" "SELECT last_message_at || ' ' || updated_at FROM \"Conversation\" WHERE id = '$LIVE'")
b4_run -q
is "$(lma)" "2025-10-22 14:00:00+00" "Batch 4 raises the live conversation's last_message_at"
b4 rollback "$B4"
is "$RC" 0 "ferry rollback exits 0"
is "$(lma)" "2025-10-20 10:05:00+00" "with no live write since, the rollback gives it back its own value (its newest live message)"
# The live system moved it on after the backfill: its value stays.
b4_run -q
q "$URI" "UPDATE \"Conversation\" SET last_message_at = '2025-10-25 08:00:00+00' WHERE id = '$LIVE'" >/dev/null
b4 rollback "$B4"
is "$(lma)" "2025-10-25 08:00:00+00" "a last_message_at the live system set after the backfill is left as it is"

# ------------------------------------------------------------ a live write while the rollback runs
# The rollback is held up (a transaction holds a backfilled message), and
# meanwhile the live system writes a message into a backfilled
# conversation.  That message must never be deleted with its conversation
# (ON DELETE CASCADE) without its writer knowing: either it is kept, or
# its INSERT fails.
URI=$(b4_db b4_40_race "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
b4_run -q
conv=$(q "$URI" "SELECT id FROM \"Conversation\" WHERE lead_id = '${L}2'")
msg=$(q "$URI" "SELECT id FROM \"Message\" WHERE conversation_id = '$conv' ORDER BY id LIMIT 1")
"$PSQL" -X -q -d "$URI" -c BEGIN -c "UPDATE \"Message\" SET content = content WHERE id = '$msg'" \
        -c "SELECT pg_sleep(3)" -c COMMIT >/dev/null 2>&1 &
holder=$!
sleep 0.5
"$FERRY" --db "$URI" -q rollback "$B4" >"$TAP_TMPDIR/rb.out" 2>&1 &
rb=$!
sleep 1
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" \
        -c "INSERT INTO \"Message\" (conversation_id, role, content) VALUES ('$conv', 'user', 'LIVE during rollback')" \
        >"$TAP_TMPDIR/live.out" 2>&1
live_rc=$?
wait "$holder"
wait "$rb"
is "$?" 0 "the rollback completes"
n=$(q "$URI" "SELECT count(*) FROM \"Message\" WHERE content = 'LIVE during rollback'")
if [ "$live_rc" = 0 ]; then
    is "$n" 1 "a live message written during the rollback and committed is still there"
else
    like "$(cat "$TAP_TMPDIR/live.out")" "violates foreign key constraint" \
         "a live message written into a conversation the rollback removes fails for its writer (not lost silently)"
fi
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m LEFT JOIN \"Conversation\" c ON c.id = m.conversation_id WHERE c.id IS NULL")" 0 \
   "no message is left without its conversation"

done_testing
