-- bench/generate.sql -- deterministic, production-like data for Batch 4.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -v leads=100000 -v audits_per_lead=10 \
--        -f bench/generate.sql
--
-- Variables (all optional):
--   leads            number of leads                         (default 1000)
--   audits_per_lead  audits per lead; total = leads x this   (default 10)
--   live_every       every Nth lead already has a live conversation with
--                    one live message, as on a running system; 0 = none
--                                                            (default 100)
--
-- Run it on a database built by Batches 1-3 (or from the contract schema),
-- with no rows yet: it appends. Deterministic: no random(), no now(); every
-- id, value and timestamp is a function of the row number, so equal
-- parameters give equal rows and runs can be compared.
--
-- The mix, per audit (drawn from a multiplicative hash of its number):
--   ~85% actors that carry messages: customer 37%, agent 27%, user 4%,
--        assistant 4%, system 8%, tool 4%, and 1% odd spellings
--        (' Customer ', 'CUSTOMER', 'Agent') that rule 1 normalises;
--   ~15% actors outside the role map: webhook, crm, scheduler (ignored);
--   ~1% orphans (lead_id of a lead that does not exist), ~2% no lead.
-- Payloads of message actors: JSON string 5%, text 30%, message 20%,
-- content 12%, body 14%, blank text with a message 2%, structured objects
-- (compact JSON) 8%, and no text 9% (NULL, {}, JSON null, blank string).
-- System audits are stage changes (compact JSON, 10% NULL); tool audits are
-- calls with arguments and results (compact JSON; 5% {}, 1% a log over 1000
-- characters, which Batch 4 cuts).
-- Sentences are 40-120 characters, customers asking, agents answering.
-- Leads: four channels, five stages, 80% linked to a customer, 10% unlinked
-- although their customer exists (Batch 3 would link the three in four that
-- share a phone or PSID with it; the rest are web leads that left no
-- phone), 10% with no customer;
-- 3 in 4 have a state_metadata object (nested objects, arrays, nulls, blank
-- strings, "summary", "preferences") for Batch 5.
--
-- Speed: one INSERT ... SELECT per table over generate_series, no correlated
-- subqueries: words come from constant arrays indexed by hash digits.
-- JIT is off: compiling these big expressions costs more than it saves.
-- Measured: leads=100000 (1,000,000 audits) in about 16 s on 2 cores,
-- two thirds of it maintaining Audit's two indexes.

\set ON_ERROR_STOP on
\if :{?leads}
\else
  \set leads 1000
\endif
\if :{?audits_per_lead}
\else
  \set audits_per_lead 10
\endif
\if :{?live_every}
\else
  \set live_every 100
\endif

BEGIN;

SET LOCAL jit = off;   -- see "Speed" above

-- The vocabulary, one row of arrays. Cross-joined into the big INSERTs it is
-- a constant: indexing an array costs nanoseconds, a lookup query per row
-- would cost microseconds.
CREATE TEMP TABLE vocab ON COMMIT DROP AS
SELECT
    -- customers ask ...
    ARRAY['Hi', 'Hello', 'Good morning', 'Thanks', 'Quick question',
          'Sorry to bother you', 'Hey there', 'Just checking', 'Bonjour',
          'Good evening'] AS ask_open,
    ARRAY['could you send me a quote for', 'do you still have in stock',
          'when could you deliver', 'what would be the price of',
          'I would like to change the order for', 'is there a discount on',
          'can someone come and install', 'please confirm the booking for',
          'how long is the warranty on', 'I still have a problem with'] AS ask_verb,
    ARRAY['?', ' next week?', ' before the weekend?', ', thanks!',
          ' at the usual address.', ' if possible, the sooner the better.',
          '. Is Saturday morning possible?', ' in white or anthracite?',
          ' — my budget is around $', ' (order #'] AS ask_tail,
    -- ... agents answer
    ARRAY['Thanks for reaching out', 'Sure', 'Good news', 'Of course',
          'Happy to help', 'Sorry for the wait', 'Absolutely', 'Great question',
          'Noted', 'Bonjour'] AS reply_open,
    ARRAY['we can deliver', 'we have in stock', 'I have booked an installer for',
          'I sent the quote for', 'there is a 10% discount on',
          'the warranty is 5 years on', 'I updated the order for',
          'our team can measure', 'the best price we can do is for',
          'we just restocked'] AS reply_verb,
    ARRAY[' this week.', ' on Friday morning.', '. Anything else?',
          ', see you soon!', ' — reply YES to confirm.',
          '. Let me know if that works for you.', ' at no extra cost.',
          ' from our Lyon warehouse.', ' (ref #', ' for $'] AS reply_tail,
    ARRAY['the oak door', 'two kitchen windows', 'a bathroom cabinet',
          'the white sliding door', 'three roof windows', 'a garden gate',
          'the model we discussed', 'a replacement handle',
          'the anthracite frame', 'four interior doors',
          'the café-style shutters', 'a 120×80 cm window'] AS thing,
    ARRAY['new', 'qualified', 'quoted', 'done', 'lost'] AS stages,
    ARRAY['messenger', 'whatsapp', 'sms', 'web'] AS channels,
    ARRAY['red', 'white', 'oak', 'anthracite', 'walnut'] AS colors,
    ARRAY['monday', 'tuesday', 'friday', 'saturday'] AS days,
    ARRAY['quote_calculator', 'stock_lookup', 'calendar_booking', 'address_check'] AS tools;

-- Customers 1..90% of leads; customer c has the contact details of lead c.
INSERT INTO "Customer" (id, name, email, phone, messenger_psid, created_at, updated_at)
SELECT md5('ferry-customer-' || c)::uuid,
       'Customer ' || c,
       'customer' || c || '@example.com',
       CASE WHEN c % 4 <> 0 THEN '+1555' || lpad(c::text, 7, '0') END,   -- lead c's phone
       CASE WHEN c % 4 = 0  THEN 'psid-' || c END,                       -- lead c's PSID
       timestamptz '2024-01-01 00:00:00+00' + c * interval '30 seconds',
       timestamptz '2024-01-01 00:00:00+00' + c * interval '30 seconds'
FROM generate_series(1, (:leads * 9) / 10) c;

-- Leads. Lead g is created g x 30 s after 2024-01-01.
INSERT INTO "Lead" (id, customer_id, channel, messenger_psid, phone, stage,
                    state_metadata, created_at, updated_at)
SELECT md5('ferry-lead-' || g)::uuid,
       -- 80% linked; g % 10 = 9: unlinked although customer g matches (what
       -- Batch 3 would link); beyond 90% of leads: no customer at all.
       CASE WHEN g <= (:leads * 9) / 10 AND g % 10 <> 9 THEN md5('ferry-customer-' || g)::uuid END,
       v.channels[1 + g % 4],
       CASE WHEN g % 4 = 0 THEN 'psid-' || g END,
       CASE WHEN g % 4 IN (1, 2) OR (g % 4 = 3 AND g % 8 = 3)              -- web: half give a phone
            THEN '+1555' || lpad(g::text, 7, '0') END,
       v.stages[1 + (g * 7) % 5],
       CASE g % 4
           WHEN 0 THEN NULL
           WHEN 1 THEN jsonb_build_object(
               'summary', 'Wants ' || v.thing[1 + g % 12] || ', budget around $' || (g % 40 + 2) * 100,
               'budget', (g % 40 + 2) * 100,
               'preferences', jsonb_build_object(
                   'color', v.colors[1 + g % 5],
                   'delivery', jsonb_build_object('day', v.days[1 + g % 4], 'window', 'morning')),
               'tags', jsonb_build_array('door', CASE WHEN g % 3 = 0 THEN 'vip' ELSE 'new' END))
           WHEN 2 THEN jsonb_build_object(
               'rooms', jsonb_build_array(
                   jsonb_build_object('name', 'kitchen', 'doors', 1 + g % 3),
                   jsonb_build_object('name', 'hall', 'windows', g % 4)),
               'notes', NULL,
               'nickname', '',
               'preferences', jsonb_build_object('color', v.colors[1 + (g / 5) % 5], 'material', NULL))
           ELSE jsonb_build_object('summary', '   ', 'preferences', '{}'::jsonb, 'followUp', '[]'::jsonb)
       END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '30 seconds',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '30 seconds'
FROM generate_series(1, :leads) g
CROSS JOIN vocab v;

-- Live conversations (what the running application wrote before Batch 4):
-- metadata {} and one live message an hour after the lead came in.
INSERT INTO "Conversation" (id, lead_id, customer_id, channel, external_id,
                            started_at, last_message_at, metadata, created_at, updated_at)
SELECT md5('ferry-conversation-' || l.g)::uuid,
       md5('ferry-lead-' || l.g)::uuid,
       CASE WHEN l.g <= (:leads * 9) / 10 AND l.g % 10 <> 9 THEN md5('ferry-customer-' || l.g)::uuid END,
       v.channels[1 + l.g % 4],
       CASE WHEN l.g % 4 = 0 THEN 'psid-' || l.g ELSE '+1555' || lpad(l.g::text, 7, '0') END,
       l.t,
       l.t + interval '1 hour',
       '{}',
       l.t + interval '1 hour',
       l.t + interval '1 hour'
FROM (SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '30 seconds' AS t
      FROM generate_series(1, :leads) g) l
CROSS JOIN vocab v
WHERE :live_every > 0 AND l.g % greatest(:live_every, 1) = 0;

INSERT INTO "Message" (id, conversation_id, role, content, metadata, created_at)
SELECT md5('ferry-message-' || g)::uuid,
       md5('ferry-conversation-' || g)::uuid,
       'assistant',
       'Thanks for your message, an advisor will call you today.',
       '{}',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '30 seconds' + interval '1 hour'
FROM generate_series(1, :leads) g
WHERE :live_every > 0 AND g % greatest(:live_every, 1) = 0;

-- Audits. Audit a belongs to lead l = 1 + (a-1) % leads and is that lead's
-- i-th audit, i = (a-1) / leads: rows are written round-robin over the leads,
-- so like a real event log the table interleaves many leads rather than
-- storing each lead's history contiguously. The i-th audit of a lead comes
-- i x 7 minutes (plus up to 2 minutes) after the lead.
--
-- h1 and h2 are two multiplicative hashes of a (Knuth's 2654435761 and
-- xxHash's 2246822519, mod 2^32): well spread, cheap, reproducible. Their
-- decimal digits pick the actor, the payload shape and the words.
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT md5('ferry-audit-' || r.a)::uuid,
       CASE WHEN r.q = 0      THEN md5('ferry-ghost-' || r.l)::uuid   -- 1% orphans
            WHEN r.q IN (1, 2) THEN NULL                              -- 2% no lead
            ELSE md5('ferry-lead-' || r.l)::uuid END,
       s.actor,
       s.action,
       s.payload,
       timestamptz '2024-01-01 00:00:00+00' + r.l * interval '30 seconds'
           + r.i * interval '7 minutes' + (r.h1 % 120) * interval '1 second'
FROM (
    SELECT a, l, i, h1, h2,
           h1 % 1000                AS k,    -- actor, per mille
           (h1 / 1000) % 100        AS p,    -- payload shape, percent
           h2 % 100                 AS q,    -- orphan / no lead, percent
           (h2 / 100) % 10          AS w1,   -- words ...
           (h2 / 1000) % 10         AS w2,
           (h2 / 10000) % 12        AS w3,
           (h2 / 120000) % 10       AS w4,
           (h2 / 1200000) % 3000    AS n     -- a number for order refs, prices
    FROM (
        SELECT a,
               1 + (a - 1) % :leads AS l,
               (a - 1) / :leads     AS i,
               (a * 2654435761) % 4294967296                AS h1,
               (a * 2246822519 + 3266489917) % 4294967296   AS h2
        FROM generate_series(1::bigint, :leads::bigint * :audits_per_lead) a
    ) x
) r
CROSS JOIN vocab v
CROSS JOIN LATERAL (
    -- One sentence per row: customers and users ask, everyone else answers
    -- (only the branch taken is evaluated).
    SELECT CASE WHEN r.k < 378 OR r.k BETWEEN 650 AND 689 THEN
                v.ask_open[1 + r.w1] || ', ' || v.ask_verb[1 + r.w2] || ' ' || v.thing[1 + r.w3]
                || v.ask_tail[1 + r.w4]
                || CASE r.w4 WHEN 8 THEN (r.n % 200 + 3) * 10 || '.' WHEN 9 THEN 10000 + r.n || ').' ELSE '' END
           ELSE
                v.reply_open[1 + r.w1] || ', ' || v.reply_verb[1 + r.w2] || ' ' || v.thing[1 + r.w3]
                || v.reply_tail[1 + r.w4]
                || CASE r.w4 WHEN 8 THEN 20000 + r.n || ').' WHEN 9 THEN (r.n % 200 + 3) * 10 || '.' ELSE '' END
           END AS msg
) m
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN r.k < 370 THEN 'customer'
             WHEN r.k < 375 THEN ' Customer '      -- odd spellings, same actor
             WHEN r.k < 378 THEN 'CUSTOMER'
             WHEN r.k < 380 THEN 'Agent'
             WHEN r.k < 650 THEN 'agent'
             WHEN r.k < 690 THEN 'user'
             WHEN r.k < 730 THEN 'assistant'
             WHEN r.k < 810 THEN 'system'
             WHEN r.k < 850 THEN 'tool'
             WHEN r.k < 900 THEN 'webhook'         -- from here on: not in the role map
             WHEN r.k < 950 THEN 'crm'
             ELSE 'scheduler' END AS actor,
        CASE WHEN r.k < 378 OR r.k BETWEEN 650 AND 689 THEN 'message_received'
             WHEN r.k < 730 THEN 'message_sent'
             WHEN r.k < 810 THEN 'stage_changed'
             WHEN r.k < 850 THEN 'tool_called'
             WHEN r.k < 900 THEN 'message_received' -- a webhook's message is still ignored
             WHEN r.k < 950 THEN 'contact_synced'
             ELSE 'reminder' END AS action,
        CASE
            -- customers, users, agents, assistants: conversation
            WHEN r.k < 730 THEN
                CASE
                    WHEN r.p < 4   THEN NULL
                    WHEN r.p < 7   THEN '{}'::jsonb
                    WHEN r.p = 7   THEN '"   "'::jsonb                          -- blank string
                    WHEN r.p = 8   THEN 'null'::jsonb
                    WHEN r.p < 14  THEN to_jsonb(m.msg)                         -- JSON string
                    WHEN r.p < 44  THEN jsonb_build_object('text', m.msg, 'channel', v.channels[1 + r.l % 4])
                    WHEN r.p < 64  THEN jsonb_build_object('message', m.msg, 'lang', 'en')
                    WHEN r.p < 76  THEN jsonb_build_object('content', m.msg, 'attachments', '[]'::jsonb)
                    WHEN r.p < 90  THEN jsonb_build_object('body', m.msg, 'to', '+1555' || lpad(r.l::text, 7, '0'))
                    WHEN r.p < 92  THEN jsonb_build_object('text', '  ', 'message', m.msg)
                    WHEN r.p < 97  THEN jsonb_build_object('type', 'quick_reply',
                                            'label', 'Confirm: delivery on ' || v.days[1 + r.w1 % 4] || ', 9:00',
                                            'options', jsonb_build_array('Yes', 'No', 'Call me'))
                    WHEN r.p = 97  THEN jsonb_build_object('text', 10000 + r.n)  -- a number, not text
                    ELSE jsonb_build_object('attachments', jsonb_build_array(jsonb_build_object(
                             'type', 'image', 'url', 'https://cdn.example.com/u/' || r.a || '.jpg')))
                END
            -- system: stage changes
            WHEN r.k < 810 THEN
                CASE WHEN r.p < 10 THEN NULL
                     ELSE jsonb_build_object('from', v.stages[1 + r.w1 % 5], 'to', v.stages[1 + r.w2 % 5],
                                             'reason', 'rule ' || r.w4 || ': budget ok, timeline soon')
                END
            -- tool: calls with arguments and results; 1% with a long log
            WHEN r.k < 850 THEN
                CASE WHEN r.p < 5  THEN '{}'::jsonb
                     WHEN r.p = 99 THEN jsonb_build_object('tool', v.tools[1 + r.w1 % 4],
                                            'log', repeat('step ok, retry: 0; ', 70))
                     ELSE jsonb_build_object('tool', v.tools[1 + r.w1 % 4],
                              'args', jsonb_build_object('width_m', 0.60 + r.w2 * 0.10, 'height_m', 2.10),
                              'result', jsonb_build_array(300 + r.n, 'USD'))
                END
            -- ignored actors carry all sorts: it must not matter
            ELSE
                CASE WHEN r.p < 50 THEN jsonb_build_object('text', 'event ' || r.a || ': delivered')
                     WHEN r.p < 80 THEN jsonb_build_object('status', 'ok', 'id', r.a)
                     ELSE NULL
                END
        END AS payload
) s;

COMMIT;

ANALYZE "Customer", "Lead", "Conversation", "Message", "Audit";
