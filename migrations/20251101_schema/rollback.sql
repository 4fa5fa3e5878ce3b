-- Rolls back Batch 1 (20251101_schema): drops the application tables.
--
-- DESTRUCTIVE: this deletes every customer, lead, audit, conversation,
-- message and memory note. It is meant for throwaway databases (tests, the
-- demo), never for a user's real data.
--
-- Runs on its own:  psql -v ON_ERROR_STOP=1 -f rollback.sql
-- Tables are dropped children first, so no CASCADE is needed and nothing
-- outside this migration (a view or foreign key someone added later) is
-- silently dropped with them: such a dependency makes this fail instead.
-- The Batch 2 indexes go with their tables.

BEGIN;

DROP TABLE IF EXISTS "MemoryNote";
DROP TABLE IF EXISTS "Message";
DROP TABLE IF EXISTS "Conversation";
DROP TABLE IF EXISTS "Audit";
DROP TABLE IF EXISTS "Lead";
DROP TABLE IF EXISTS "Customer";

COMMIT;
