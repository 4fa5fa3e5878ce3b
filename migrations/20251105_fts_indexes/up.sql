-- Batch 2: full-text search over message content and memory notes.
--
-- The expressions must stay exactly as users have them, byte for byte in
-- meaning: queries only use these indexes when they repeat the same
-- expression, e.g.
--   WHERE to_tsvector('english', COALESCE(content, '')) @@ plainto_tsquery('english', 'quote')
-- COALESCE keeps NULL content indexable (as an empty document).
--
-- GIN's default fastupdate = on is kept on purpose: Batch 4 writes messages
-- in bulk, and the pending list makes those inserts much cheaper.
-- The engine runs this file in one transaction: no BEGIN/COMMIT here (and so
-- no CREATE INDEX CONCURRENTLY, which cannot run in a transaction).

CREATE INDEX "Message_content_fts_idx" ON "Message"
    USING GIN (to_tsvector('english', COALESCE(content, '')));

CREATE INDEX "MemoryNote_content_fts_idx" ON "MemoryNote"
    USING GIN (to_tsvector('english', COALESCE(content, '')));
