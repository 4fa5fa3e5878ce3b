-- bench/backfill.sql -- Batch 4 written as plain set-based SQL: the yardstick.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f bench/backfill.sql
--   psql ... -v stats=off -f bench/backfill.sql   # the three statements only
--
-- This is what a user would write instead of running ferry: the rules of
-- issue 3 (Batch 4) translated directly into
--   1. one INSERT ... SELECT of conversations (leads with processed audits
--      and no conversation yet),
--   2. one INSERT ... SELECT of messages (text computed with CASE/COALESCE
--      over jsonb operators, each audit joined to its lead's earliest
--      conversation, audits that already have a message skipped),
--   3. one UPDATE of Conversation.last_message_at,
-- all in ONE transaction. `make bench` times it against ferry and checks that
-- both produce the same (auditId, role, content) rows, so every rule below
-- must mean exactly what the Lua rules mean.
--
-- With stats on (the default) it also counts the seven statistics of rule 6,
-- prints them, and writes the run-record audit of rule 7, as ferry does. The
-- counting is one extra read of Audit (reading is 10-30x cheaper than the
-- writes), so it barely moves the timing; stats=off leaves it out.
--
-- Idempotent like ferry: a second run creates nothing.
-- Temporary objects live in pg_temp and vanish with the session.

\set ON_ERROR_STOP on
\if :{?stats}
\else
  \set stats on
\endif
\set migration '20251110_backfill_conversations_messages'

BEGIN;

-- ---------------------------------------------------------------------------
-- Rule 1: the role map. Keys are actors lower-cased and trimmed; an audit is
-- processed when its lead_id is set and its normalised actor is a key.
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE role_map (actor text PRIMARY KEY, role text NOT NULL) ON COMMIT DROP;
INSERT INTO role_map VALUES
    ('customer',  'user'),
    ('user',      'user'),
    ('agent',     'assistant'),
    ('assistant', 'assistant'),
    ('system',    'system'),
    ('tool',      'tool');
ANALYZE role_map;   -- so the planner knows it is six rows, not a guess

-- Small SQL helpers. Single-SELECT SQL functions are inlined by the planner,
-- so they cost nothing per row over writing the expressions out; they exist
-- to say each rule once.

-- ' Customer ' -> 'customer'. Trims ASCII whitespace (space, \t, \n, \v, \f,
-- \r), like Lua's %s, not just spaces as plain btrim() would, and
-- lower-cases ASCII only (COLLATE "C"), like Lua's string.lower: in a UTF-8
-- locale plain lower('ASSİSTANT') would be 'assistant', an actor ferry does
-- not take (rules/roles.lua's PROCESSED_SQL does the same).
CREATE FUNCTION pg_temp.actor_key(actor text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT lower(btrim(actor, E' \t\n\r\f\x0b') COLLATE "C") $$;

-- Rule 4: "a string counts when it has at least one non-whitespace
-- character". Whitespace is ASCII space, \t \n \v \f \r and the Unicode
-- White_Space code points -- the same set as text_has_content() in
-- include/jsontext.h, so ferry and this file agree on "   " and on a lone
-- U+00A0. (PostgreSQL's [:space:] depends on the locale; this list does not.)
-- NULL in, NULL (not true) out.
CREATE FUNCTION pg_temp.has_text(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT s ~ '[^ \t\n\r\v\f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]' $$;

-- Rule 4.4: compact JSON = PostgreSQL's jsonb text with the whitespace
-- between tokens removed. jsonb output puts whitespace in exactly two places,
-- the ", " between elements and the ": " after a key, and never elsewhere
-- outside strings. Inside strings a ", " or ": " is data and must stay.
-- The regexp walks the text left to right matching either a whole string
-- literal ("...", with \" and \\ escapes) -- group 1, put back unchanged --
-- or a separator followed by its space -- group 2, put back without the
-- space. Because a string literal is consumed whole as soon as its opening
-- quote is reached, the separator branch can only ever match outside strings.
-- Key order, escapes and number text (2.10 stays 2.10) are PostgreSQL's own.
CREATE FUNCTION pg_temp.compact_json(j jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT regexp_replace(j::text, '("(?:[^"\\]|\\.)*")|([,:]) ', '\1\2', 'g') $$;

-- The run's time, ISO-8601 in UTC like JavaScript's toISOString(), for the
-- conversations' metadata.createdAt. now() is the transaction start: one
-- value for the whole run.
SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS run_at
\gset

-- ---------------------------------------------------------------------------
-- Rules 1, 2, 6: how many audits are processed, and how many of them are
-- orphans (their lead no longer exists) and so skipped. Counted before
-- anything is written; only needed for the statistics.
-- ---------------------------------------------------------------------------
\if :stats
SELECT count(*)                           AS audits_processed,
       count(*) FILTER (WHERE l.id IS NULL) AS audits_skipped
FROM "Audit" a
JOIN role_map r ON r.actor = pg_temp.actor_key(a.actor)
LEFT JOIN "Lead" l ON l.id = a.lead_id
WHERE a.lead_id IS NOT NULL
\gset
\endif

-- ---------------------------------------------------------------------------
-- Rule 3: one conversation per existing lead with at least one processed
-- audit, unless the lead already has one (made by the live system or by an
-- earlier run): those are counted as skipped.
-- ---------------------------------------------------------------------------
WITH leads_with_audits AS (
    -- Joining Lead drops orphans: a deleted lead gets no conversation.
    SELECT l.*
    FROM "Lead" l
    WHERE EXISTS (
        SELECT 1
        FROM "Audit" a
        JOIN role_map r ON r.actor = pg_temp.actor_key(a.actor)
        WHERE a.lead_id = l.id
    )
),
created AS (
    INSERT INTO "Conversation"
        (lead_id, customer_id, channel, external_id, started_at, metadata)
    SELECT l.id,
           l.customer_id,
           l.channel,
           COALESCE(NULLIF(l.messenger_psid, ''), l.phone),   -- PSID, else phone (an empty PSID is none)
           l.created_at,
           jsonb_build_object(
               'source',    'audit_backfill',
               'leadStage', l.stage,
               'createdBy', :'migration',
               'createdAt', :'run_at')
    FROM leads_with_audits l
    WHERE NOT EXISTS (SELECT 1 FROM "Conversation" c WHERE c.lead_id = l.id)
    -- last_message_at stays NULL here; the UPDATE at the end sets it.
    RETURNING 1
)
SELECT (SELECT count(*) FROM created)                                      AS conversations_created,
       (SELECT count(*) FROM leads_with_audits) - (SELECT count(*) FROM created) AS conversations_skipped
\gset

-- ---------------------------------------------------------------------------
-- Rules 4 and 5: one message per processed audit of an existing lead that
-- has extractable text and no message yet.
-- ---------------------------------------------------------------------------
WITH created AS (
    INSERT INTO "Message" (conversation_id, role, content, metadata, created_at)
    SELECT conv.id,
           x.role,
           x.content,
           jsonb_build_object(
               'auditId',     x.audit_id,
               'auditAction', x.action,
               'auditActor',  x.actor,          -- as stored, not normalised
               'source',      'audit_backfill',
               'createdBy',   :'migration',
               'textSource',  x.text_source),
           x.created_at
    FROM (
        SELECT a.id AS audit_id, a.lead_id, a.actor, a.action, a.created_at, r.role,
               src.text_source,
               -- The text itself, taken from where rule 4 found it, unchanged
               -- (no trimming): only the compact JSON is cut, at 1000
               -- characters (left() counts characters, not bytes, so a UTF-8
               -- sequence is never split).
               CASE src.text_source
                   WHEN 'payload'         THEN a.payload #>> '{}'   -- the JSON string, unescaped
                   WHEN 'payload.text'    THEN a.payload ->> 'text'
                   WHEN 'payload.message' THEN a.payload ->> 'message'
                   WHEN 'payload.content' THEN a.payload ->> 'content'
                   WHEN 'payload.body'    THEN a.payload ->> 'body'
                   WHEN 'compact_json'    THEN left(pg_temp.compact_json(a.payload), 1000)
               END AS content
        FROM "Audit" a
        JOIN role_map r ON r.actor = pg_temp.actor_key(a.actor)
        -- Rule 4, first match wins. "->" yields NULL when the payload is not
        -- an object (or lacks the key), and jsonb_typeof = 'string' keeps a
        -- number such as {"text": 12345} from counting as text.
        CROSS JOIN LATERAL (
            SELECT CASE
                -- 4.1 the payload itself is a JSON string
                WHEN jsonb_typeof(a.payload) = 'string'
                     AND pg_temp.has_text(a.payload #>> '{}')          THEN 'payload'
                -- 4.2 text, message, content: strings only
                WHEN jsonb_typeof(a.payload -> 'text') = 'string'
                     AND pg_temp.has_text(a.payload ->> 'text')        THEN 'payload.text'
                WHEN jsonb_typeof(a.payload -> 'message') = 'string'
                     AND pg_temp.has_text(a.payload ->> 'message')     THEN 'payload.message'
                WHEN jsonb_typeof(a.payload -> 'content') = 'string'
                     AND pg_temp.has_text(a.payload ->> 'content')     THEN 'payload.content'
                -- 4.3 body, only for actual message events
                WHEN a.action IN ('message_sent', 'message_received')
                     AND jsonb_typeof(a.payload -> 'body') = 'string'
                     AND pg_temp.has_text(a.payload ->> 'body')        THEN 'payload.body'
                -- 4.4 any other non-empty object or array: compact JSON
                WHEN jsonb_typeof(a.payload) IN ('object', 'array')
                     AND a.payload NOT IN ('{}'::jsonb, '[]'::jsonb)   THEN 'compact_json'
                -- 4.5 NULL, JSON null, {}, [], numbers, booleans, blank
                -- strings: no text (counted in messages_skipped)
            END AS text_source
            -- OFFSET 0 keeps the planner from pasting this CASE into each of
            -- its uses (the filter, the content CASE, the metadata), which
            -- would run its regexps three or four times per row.
            OFFSET 0
        ) src
        WHERE a.lead_id IS NOT NULL
    ) x
    -- The lead's earliest conversation, by (created_at, id): a live one if
    -- the lead had one, else the one created above. Orphans have none
    -- (Conversation.lead_id references Lead), so this join drops them.
    JOIN (
        SELECT DISTINCT ON (lead_id) lead_id, id
        FROM "Conversation"
        WHERE lead_id IS NOT NULL
        ORDER BY lead_id, created_at, id
    ) conv ON conv.lead_id = x.lead_id
    WHERE x.text_source IS NOT NULL
      -- Idempotency: an audit that already has a message gets no second one.
      AND NOT EXISTS (
          SELECT 1 FROM "Message" m
          WHERE m.metadata ->> 'auditId' = x.audit_id::text)
    RETURNING 1
)
SELECT count(*) AS messages_created FROM created
\gset

-- ---------------------------------------------------------------------------
-- Rule 3: last_message_at = greatest(existing value, latest backfilled
-- message). A live conversation keeps a newer live value; a conversation
-- whose audits had no text keeps NULL. Rows already up to date are not
-- rewritten (no dead tuples on a re-run).
-- ---------------------------------------------------------------------------
UPDATE "Conversation" c
SET last_message_at = m.last_at
FROM (
    SELECT conversation_id, max(created_at) AS last_at
    FROM "Message"
    WHERE metadata ->> 'source' = 'audit_backfill'
    GROUP BY conversation_id
) m
WHERE c.id = m.conversation_id
  AND (c.last_message_at IS NULL OR c.last_message_at < m.last_at);

-- ---------------------------------------------------------------------------
-- Rules 6 and 7: statistics and the run record.
-- Every processed audit is exactly one of: a message created, skipped (no
-- text, or it already had a message), skipped as an orphan, or an error.
-- Plain SQL has no per-row errors (any error aborts the transaction), so
-- errors = 0 and messages_skipped is the remainder.
-- ---------------------------------------------------------------------------
\if :stats
SELECT :audits_processed - :messages_created - :audits_skipped AS messages_skipped
\gset

INSERT INTO "Audit" (lead_id, actor, action, payload)
VALUES (NULL, 'system', 'backfill_conversations_messages',
        jsonb_build_object(
            'source',    'audit_backfill',
            'migration', :'migration',
            'runner',    'bench/backfill.sql',
            'stats', jsonb_build_object(
                'conversations_created', :conversations_created,
                'conversations_skipped', :conversations_skipped,
                'messages_created',      :messages_created,
                'messages_skipped',      :messages_skipped,
                'audits_processed',      :audits_processed,
                'audits_skipped',        :audits_skipped,
                'errors',                0),
            'errors', '[]'::jsonb));

\echo 'Statistics:'
\echo '   Conversations created: ' :conversations_created
\echo '   Conversations skipped: ' :conversations_skipped
\echo '   Messages created:      ' :messages_created
\echo '   Messages skipped:      ' :messages_skipped
\echo '   Audits processed:      ' :audits_processed
\echo '   Audits skipped:        ' :audits_skipped
\echo '   Errors:                 0'
\endif

COMMIT;
