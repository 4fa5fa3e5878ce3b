-- Rollback of Batch 4 (20251110_backfill_conversations_messages).
--
--   ferry rollback 20251110_backfill_conversations_messages
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f rollback.sql     (works on its own too)
--
-- Deletes only what this backfill created, recognised by
-- metadata->>'createdBy' = '20251110_backfill_conversations_messages':
--   1. its messages (wherever they are: in its own conversations or in a
--      conversation the live system made);
--   2. its conversations, except one into which the live system has since
--      written messages: that one is kept, and reported;
--   3. its run-record audits (action backfill_conversations_messages);
-- then verifies that they are gone, inside the same transaction.  Live
-- messages, live conversations and every other audit stay.  A live
-- conversation whose last_message_at is still the one the backfill raised
-- it to (the time of its newest backfilled message) gets the time of its
-- newest remaining message back; one the live system has moved on since
-- keeps its value.
BEGIN;

-- Not while a ferry command works on this database: ferry holds its
-- migration lock (a session advisory lock, key 7366291803) while it runs or
-- rolls back a migration.  Run under psql beside a ferry run, this rollback
-- would delete the batches committed so far and the run would go on writing
-- the rest and be recorded applied over half its rows.  Under `ferry
-- rollback` the session already holds the lock and takes it again; under
-- psql the lock is held until this transaction ends, so no ferry starts
-- meanwhile.
DO $$
DECLARE
  holder int;
BEGIN
  IF NOT pg_try_advisory_xact_lock(7366291803) THEN
    SELECT l.pid INTO holder FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((l.classid::bigint << 32) | l.objid::bigint) = 7366291803
     LIMIT 1;
    RAISE EXCEPTION 'another session holds ferry''s migration lock on this database (backend pid %): a ferry run or rollback is in progress there; nothing was rolled back: run this again when it has finished',
      coalesce(holder::text, 'unknown');
  END IF;
END $$;

-- The backfill's conversations are locked first.  A live message being
-- written into one of them (its foreign-key check holds the row) is
-- committed or not before the lists below are made, so it is seen and its
-- conversation kept; one written from now on waits for this rollback and
-- then fails if its conversation is gone.  Without the lock a message that
-- committed after the lists were made would be deleted with its
-- conversation (ON DELETE CASCADE), and no one would know.
DO $$
BEGIN
  PERFORM 1 FROM "Conversation" c
   WHERE c.metadata->>'createdBy' = '20251110_backfill_conversations_messages'
     AND c.metadata->>'source' = 'audit_backfill'
     FOR UPDATE;
END $$;

-- Live conversations holding backfilled messages, with the newest of them.
CREATE TEMP TABLE batch4_raised ON COMMIT DROP AS
SELECT c.id, max(m.created_at) AS backfilled_max
  FROM "Conversation" c
  JOIN "Message" m ON m.conversation_id = c.id
 WHERE c.metadata->>'createdBy' IS DISTINCT FROM '20251110_backfill_conversations_messages'
   AND m.metadata->>'createdBy' = '20251110_backfill_conversations_messages'
   AND m.metadata->>'source' = 'audit_backfill'
 GROUP BY c.id;

CREATE TEMP TABLE batch4_kept ON COMMIT DROP AS
SELECT c.id, c.lead_id, count(*) AS live_messages
  FROM "Conversation" c
  JOIN "Message" m ON m.conversation_id = c.id
 WHERE c.metadata->>'createdBy' = '20251110_backfill_conversations_messages'
   AND m.metadata->>'createdBy' IS DISTINCT FROM '20251110_backfill_conversations_messages'
 GROUP BY c.id, c.lead_id;

DELETE FROM "Message"
 WHERE metadata->>'createdBy' = '20251110_backfill_conversations_messages'
   AND metadata->>'source' = 'audit_backfill';

DELETE FROM "Conversation" c
 WHERE c.metadata->>'createdBy' = '20251110_backfill_conversations_messages'
   AND c.metadata->>'source' = 'audit_backfill'
   AND NOT EXISTS (SELECT 1 FROM batch4_kept k WHERE k.id = c.id);

-- A kept conversation now holds only live messages: its last_message_at
-- follows them.
UPDATE "Conversation" c
   SET last_message_at = (SELECT max(m.created_at) FROM "Message" m WHERE m.conversation_id = c.id),
       updated_at = now()
 WHERE c.id IN (SELECT id FROM batch4_kept);

-- A live conversation's last_message_at that is the backfill's doing
-- follows its remaining messages again.
UPDATE "Conversation" c
   SET last_message_at = (SELECT max(m.created_at) FROM "Message" m WHERE m.conversation_id = c.id),
       updated_at = now()
  FROM batch4_raised r
 WHERE c.id = r.id AND c.last_message_at = r.backfilled_max;

DELETE FROM "Audit"
 WHERE action = 'backfill_conversations_messages'
   AND lead_id IS NULL
   AND payload->>'source' = 'audit_backfill';

DO $$
DECLARE
  n_messages int;
  n_conversations int;
  n_records int;
  kept record;
BEGIN
  SELECT count(*) INTO n_messages FROM "Message"
   WHERE metadata->>'createdBy' = '20251110_backfill_conversations_messages';
  SELECT count(*) INTO n_conversations FROM "Conversation" c
   WHERE c.metadata->>'createdBy' = '20251110_backfill_conversations_messages'
     AND NOT EXISTS (SELECT 1 FROM batch4_kept k WHERE k.id = c.id);
  SELECT count(*) INTO n_records FROM "Audit"
   WHERE action = 'backfill_conversations_messages' AND lead_id IS NULL AND payload->>'source' = 'audit_backfill';
  IF n_messages + n_conversations + n_records > 0 THEN
    RAISE EXCEPTION 'rollback incomplete: % messages, % conversations, % run records remain',
      n_messages, n_conversations, n_records;
  END IF;
  FOR kept IN SELECT * FROM batch4_kept ORDER BY lead_id LOOP
    RAISE NOTICE 'kept conversation % of lead %: the live system wrote % message(s) into it',
      kept.id, kept.lead_id, kept.live_messages;
  END LOOP;
  -- ferry's resume point, when ferry's history exists in this database
  IF to_regclass('ferry.checkpoint') IS NOT NULL THEN
    DELETE FROM ferry.checkpoint WHERE migration = '20251110_backfill_conversations_messages';
  END IF;
  RAISE NOTICE 'rollback of 20251110_backfill_conversations_messages verified: no backfilled message, conversation or run record remains';
END $$;

COMMIT;
