-- Rollback of Batch 5 (20251115_backfill_memory_notes).
--
--   ferry rollback 20251115_backfill_memory_notes
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f rollback.sql     (works on its own too)
--
-- Deletes only what this backfill created, recognised by
--   metadata->>'createdBy' = '20251115_backfill_memory_notes'
--   AND metadata->>'source' = 'state_metadata_backfill':
--   1. its notes (including ones whose content a re-run updated);
--   2. its run-record audits (action backfill_memory_notes, lead_id NULL);
--   3. ferry's resume point for it, when ferry's history exists here;
-- then verifies that they are gone, inside the same transaction.  Notes the
-- live system wrote (any other metadata) stay, even for a (lead, key) the
-- backfill also had; leads and their state_metadata are never touched.
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

DO $$
DECLARE
  n_removed bigint;
  n_records_removed bigint;
  n_notes bigint;
  n_records bigint;
  n_kept bigint;
BEGIN
  DELETE FROM "MemoryNote"
   WHERE metadata->>'createdBy' = '20251115_backfill_memory_notes'
     AND metadata->>'source' = 'state_metadata_backfill';
  GET DIAGNOSTICS n_removed = ROW_COUNT;

  DELETE FROM "Audit"
   WHERE action = 'backfill_memory_notes'
     AND lead_id IS NULL
     AND payload->>'source' = 'state_metadata_backfill';
  GET DIAGNOSTICS n_records_removed = ROW_COUNT;

  -- verify
  SELECT count(*) INTO n_notes FROM "MemoryNote"
   WHERE metadata->>'createdBy' = '20251115_backfill_memory_notes'
     AND metadata->>'source' = 'state_metadata_backfill';
  SELECT count(*) INTO n_records FROM "Audit"
   WHERE action = 'backfill_memory_notes' AND lead_id IS NULL AND payload->>'source' = 'state_metadata_backfill';
  IF n_notes + n_records > 0 THEN
    RAISE EXCEPTION 'rollback incomplete: % backfilled notes, % run records remain', n_notes, n_records;
  END IF;

  -- ferry's resume point, when ferry's history exists in this database
  IF to_regclass('ferry.checkpoint') IS NOT NULL THEN
    DELETE FROM ferry.checkpoint WHERE migration = '20251115_backfill_memory_notes';
  END IF;

  SELECT count(*) INTO n_kept FROM "MemoryNote";
  RAISE NOTICE 'rollback of 20251115_backfill_memory_notes verified: removed % backfilled notes and % run records; % other notes kept',
    n_removed, n_records_removed, n_kept;
END $$;

COMMIT;
