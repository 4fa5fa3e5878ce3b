-- Rolls back Batch 2 (20251105_fts_indexes): drops the two full-text indexes.
-- No data is lost; full-text queries fall back to sequential scans.
--
-- Runs on its own:  psql -v ON_ERROR_STOP=1 -f rollback.sql

BEGIN;

DROP INDEX IF EXISTS "Message_content_fts_idx";
DROP INDEX IF EXISTS "MemoryNote_content_fts_idx";

COMMIT;
