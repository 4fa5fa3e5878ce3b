-- pgTAP checks of the database after Batch 4 on demo/data.sql (run by
-- tests/sql/20-batch4-demo.t with psql -X -q -t -A: psql prints the TAP).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
BEGIN;
SELECT plan(42);

-- the migrated schema (Batches 1-3)
SELECT has_table('public', t, format('table %s exists', t))
  FROM unnest(ARRAY['Customer', 'Lead', 'Audit', 'Conversation', 'Message', 'MemoryNote']) t;
SELECT col_type_is('public', 'Audit', 'lead_id', 'uuid', 'Audit.lead_id is uuid');
SELECT col_type_is('public', 'Audit', 'payload', 'jsonb', 'Audit.payload is jsonb');
SELECT col_type_is('public', 'Audit', 'created_at', 'timestamp with time zone', 'Audit.created_at is timestamptz');
SELECT col_type_is('public', 'Conversation', 'lead_id', 'uuid', 'Conversation.lead_id is uuid');
SELECT col_type_is('public', 'Conversation', 'external_id', 'text', 'Conversation.external_id is text');
SELECT col_type_is('public', 'Conversation', 'last_message_at', 'timestamp with time zone', 'Conversation.last_message_at is timestamptz');
SELECT col_type_is('public', 'Conversation', 'metadata', 'jsonb', 'Conversation.metadata is jsonb');
SELECT col_type_is('public', 'Message', 'conversation_id', 'uuid', 'Message.conversation_id is uuid');
SELECT col_type_is('public', 'Message', 'role', 'text', 'Message.role is text');
SELECT col_type_is('public', 'Message', 'content', 'text', 'Message.content is text');
SELECT col_type_is('public', 'Message', 'metadata', 'jsonb', 'Message.metadata is jsonb');
SELECT col_not_null('public', 'Message', 'conversation_id', 'Message.conversation_id is NOT NULL');
SELECT col_not_null('public', 'Message', 'metadata', 'Message.metadata is NOT NULL');
SELECT indexes_are('public', 'Audit', ARRAY['Audit_pkey', 'Audit_lead_id_created_at_idx'], 'Audit indexes');
SELECT indexes_are('public', 'Conversation', ARRAY['Conversation_pkey', 'Conversation_lead_id_idx'], 'Conversation indexes');
SELECT indexes_are('public', 'Message',
       ARRAY['Message_pkey', 'Message_conversation_id_created_at_idx', 'Message_content_fts_idx'], 'Message indexes');
SELECT indexes_are('public', 'MemoryNote',
       ARRAY['MemoryNote_pkey', 'MemoryNote_lead_id_idx', 'MemoryNote_content_fts_idx'], 'MemoryNote indexes');
SELECT index_is_type('public', 'Message', 'Message_content_fts_idx', 'gin', 'Message_content_fts_idx is GIN');
SELECT index_is_type('public', 'MemoryNote', 'MemoryNote_content_fts_idx', 'gin', 'MemoryNote_content_fts_idx is GIN');
SELECT col_is_fk('public', 'Message', 'conversation_id', 'Message.conversation_id references Conversation');
SELECT fk_ok('public', 'Message', 'conversation_id', 'public', 'Conversation', 'id', 'Message -> Conversation(id)');
SELECT has_check('public', 'Message', 'Message has its role CHECK');

-- Batch 4's result on the demo data (see demo/data.sql's header)
SELECT results_eq(
  $$SELECT lead_id::text, count(*)::int FROM "Conversation" GROUP BY lead_id ORDER BY lead_id$$,
  $$VALUES ('1ead0000-0000-4000-8000-000000000001', 1), ('1ead0000-0000-4000-8000-000000000002', 1),
           ('1ead0000-0000-4000-8000-000000000003', 1), ('1ead0000-0000-4000-8000-000000000005', 1),
           ('1ead0000-0000-4000-8000-000000000006', 1)$$,
  'one conversation per lead with processed audits (L4, L7 and the orphan none)');
SELECT results_eq(
  $$SELECT c.lead_id::text, count(m.id)::int FROM "Conversation" c LEFT JOIN "Message" m ON m.conversation_id = c.id
     GROUP BY c.lead_id ORDER BY c.lead_id$$,
  $$VALUES ('1ead0000-0000-4000-8000-000000000001', 11), ('1ead0000-0000-4000-8000-000000000002', 5),
           ('1ead0000-0000-4000-8000-000000000003', 3), ('1ead0000-0000-4000-8000-000000000005', 3),
           ('1ead0000-0000-4000-8000-000000000006', 0)$$,
  'messages per lead (L5: the live one + 2 backfilled)');
SELECT results_eq(
  $$SELECT role, count(*)::int FROM "Message" WHERE metadata->>'source' = 'audit_backfill' GROUP BY role ORDER BY role$$,
  $$VALUES ('assistant', 8), ('system', 2), ('tool', 1), ('user', 10)$$,
  'backfilled messages by role');
SELECT results_eq(
  $$SELECT metadata->>'textSource', count(*)::int FROM "Message" WHERE metadata ? 'auditId' GROUP BY 1 ORDER BY 1$$,
  $$VALUES ('compact_json', 6), ('payload', 2), ('payload.body', 2), ('payload.content', 1),
           ('payload.message', 3), ('payload.text', 7)$$,
  'backfilled messages by text source');
SELECT is_empty(
  $$SELECT metadata->>'auditId' FROM "Message" WHERE metadata ? 'auditId' GROUP BY 1 HAVING count(*) > 1$$,
  'no two messages share an auditId');
SELECT is_empty(
  $$SELECT m.id FROM "Message" m LEFT JOIN "Audit" a ON a.id::text = m.metadata->>'auditId'
     WHERE m.metadata ? 'auditId' AND (a.id IS NULL OR a.created_at <> m.created_at)$$,
  'every backfilled message points at its audit and carries its time');
SELECT is(
  (SELECT last_message_at FROM "Conversation" WHERE id = 'cc000000-0000-4000-8000-000000000001'),
  '2025-10-22 14:00:00+00'::timestamptz, 'the live conversation''s last_message_at was raised');
SELECT is(
  (SELECT metadata FROM "Conversation" WHERE id = 'cc000000-0000-4000-8000-000000000001'),
  '{}'::jsonb, 'the live conversation''s metadata is untouched');
SELECT results_eq(
  $$SELECT DISTINCT metadata - 'createdAt' FROM "Conversation" WHERE lead_id = '1ead0000-0000-4000-8000-000000000001'$$,
  $$VALUES ('{"source": "audit_backfill", "leadStage": "qualified",
              "createdBy": "20251110_backfill_conversations_messages"}'::jsonb)$$,
  'a backfilled conversation''s metadata');
SELECT matches(
  (SELECT metadata->>'createdAt' FROM "Conversation" WHERE lead_id = '1ead0000-0000-4000-8000-000000000001'),
  '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$', 'createdAt is an ISO-8601 UTC time');

-- the run record and ferry's history
SELECT results_eq(
  $$SELECT actor, lead_id IS NULL, payload FROM "Audit" WHERE action = 'backfill_conversations_messages'$$,
  $$VALUES ('system', true, '{"source": "audit_backfill", "migration": "20251110_backfill_conversations_messages",
      "stats": {"conversations_created": 4, "conversations_skipped": 1, "messages_created": 21, "messages_skipped": 10,
                "audits_processed": 33, "audits_skipped": 2, "errors": 0},
      "errors": []}'::jsonb)$$,
  'one run record: actor system, no lead, stats and errors []');
SELECT results_eq(
  $$SELECT operation, status, stats->'stats', stats->'errors', checksum IS NOT NULL, finished_at >= started_at
      FROM ferry.history WHERE migration = '20251110_backfill_conversations_messages'$$,
  $$VALUES ('run', 'applied', '{"conversations_created": 4, "conversations_skipped": 1, "messages_created": 21,
      "messages_skipped": 10, "audits_processed": 33, "audits_skipped": 2, "errors": 0}'::jsonb, '[]'::jsonb, true, true)$$,
  'ferry.history: one row, run applied, with the stats');
SELECT results_eq(
  $$SELECT migration, operation, status FROM ferry.history WHERE migration < '20251110' ORDER BY id$$,
  $$VALUES ('20251101_schema', 'up', 'applied'), ('20251105_fts_indexes', 'up', 'applied'),
           ('20251108_link_customers', 'up', 'applied')$$,
  'ferry.history: Batches 1-3 applied by ferry up');
SELECT is_empty($$SELECT 1 FROM ferry.checkpoint$$, 'no checkpoint left after a finished run');

SELECT * FROM finish();
ROLLBACK;
