-- bench/digest.sql: the rows Batch 4 produced, as one line "COUNT MD5": the
-- messages' (auditId, role, content, created_at) and, appended, the
-- conversations' (lead, customer, channel, external_id, started_at,
-- last_message_at) -- the rows, not the ids each side makes.  The count is
-- the messages'.  Run with timezone UTC and datestyle ISO (PGOPTIONS), so
-- that the times read alike on every server.  Used by bench/run.sh (ferry's
-- rows against the SQL's) and tests/batch4/57-yardstick-hostile.t.
SELECT (SELECT count(*) FROM "Message" WHERE metadata->>'source' = 'audit_backfill') || ' ' || md5(
  (SELECT coalesce(string_agg((metadata->>'auditId') || '|' || role || '|' || coalesce(content, '<null>')
                              || '|' || created_at, E'\n' ORDER BY metadata->>'auditId'), '')
     FROM "Message" WHERE metadata->>'source' = 'audit_backfill')
  || E'\n--\n' ||
  (SELECT coalesce(string_agg(ROW(lead_id, customer_id, channel, external_id, started_at, last_message_at)::text,
                              E'\n' ORDER BY lead_id), '')
     FROM "Conversation" WHERE metadata->>'source' = 'audit_backfill'));
