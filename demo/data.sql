-- demo/data.sql -- a small, fixed demo data set for Batch 4.
--
-- Loaded by `make demo` into a database built by Batches 1-3
-- (20251101_schema, 20251105_fts_indexes, 20251108_link_customers), i.e.
-- AFTER Batch 3 has run. Every id and timestamp is fixed, so every run of the
-- demo prints the same numbers. Plain SQL in one transaction (psql -f).
--
-- Ids: customers c0000000-...-00000000000N, leads 1ead0000-...-00000000000N,
-- audits a0000000-...-000000000NNN (NNN as in the table below), the live
-- conversation cc000000-...-000000000001 and its message e0000000-...-001.
--
-- CUSTOMERS (Batch 3 material)
--   C1 Ana   phone +15550000101
--   C2 Ben   psid  psid-ben-2002
--   C3 Chloé phone +15550000103, psid psid-chloe-3003
--   C4 Dan   phone +15550000104, psid ''   (empty string: never matches)
--   C5 Eve   phone +15550000104            (shares Dan's phone)
--
-- LEADS
--   L1 messenger psid-ben-2002    -> C2 already linked  stage qualified
--   L2 whatsapp  +15550000101     unlinked: Batch 3 WOULD link it to C1 (one
--                                 match) had it existed when Batch 3 ran;
--                                 re-running Batch 3 links it
--   L3 sms       +15550000104     unlinked: two customers match (C4, C5), so
--                                 Batch 3 never links it
--   L4 web       no phone/psid    unlinked, only ignored actors: no conversation
--   L5 messenger psid-chloe-3003  -> C3, already has a LIVE conversation
--                                 (metadata {}) with one live message
--   L6 sms       +15550000103     -> C3, only audits without text: gets an
--                                 empty conversation (last_message_at NULL)
--   L7 whatsapp  phone '' psid '' unlinked (empty strings never match), no audits
--
-- AUDITS and what Batch 4 (issue 3's rules) does with each
--   id  lead actor        action           payload                               -> rule: result
--   001 L1 customer       message_received "Hi! Do you deliver ...?" (JSON string) -> 4.1 payload
--   002 L1 agent          message_sent     {text, channel}                        -> 4.2 payload.text
--   003 L1 user           message_received {message}                              -> 4.2 payload.message
--   004 L1 assistant      message_sent     {content}                              -> 4.2 payload.content
--   005 L1 customer       message_received {body}                                 -> 4.3 payload.body
--   006 L1 agent          message_sent     {body}                                 -> 4.3 payload.body
--   007 L1 agent          note_added       {body} (not a message action)          -> 4.4 compact_json
--   008 L1 system         stage_changed    {from,to,reason:"budget: ok, ..."}     -> 4.4 compact_json, spaces inside strings kept
--   009 L1 tool           tool_called      nested object, array, 0.90 / 2.10      -> 4.4 compact_json, number text kept
--   010 L1 webhook        message_received {text}                                 -> ignored actor (not processed)
--   011 L1 crm            sync             {message}                              -> ignored actor (not processed)
--   012 L1 ' Customer '   message_received {text:"  Also: do you install?  "}    -> rule 1 trim/lower: user; 4.2 text kept unchanged
--   013 L1 Agent          message_sent     {text}                                 -> rule 1 lower: assistant; 4.2 payload.text
--   014 L2 customer       message_received NULL                                   -> 4.5 no text
--   015 L2 customer       message_received JSON null                              -> 4.5 no text
--   016 L2 agent          message_sent     {}                                     -> 4.5 no text
--   017 L2 agent          message_sent     []                                     -> 4.5 no text
--   018 L2 system         stage_changed    42                                     -> 4.5 no text
--   019 L2 system         stage_changed    true                                   -> 4.5 no text
--   020 L2 customer       message_received "   " (blank JSON string)              -> 4.5 no text
--   021 L2 customer       message_received "\u00a0\u2003\t" (Unicode blanks)      -> 4.5 no text
--   022 L2 user           message_received {"text": 12345} (a number)             -> 4.4 compact_json {"text":12345}
--   023 L2 customer       message_received {text:"   ", message:"..."}             -> 4.2 payload.message (blank text skipped)
--   024 L2 customer       message_received ["photo_1.jpg", "photo_2.jpg"]          -> 4.4 compact_json (array)
--   025 L2 assistant      message_sent     catalogue object, ~1,400 chars, "chêne" -> 4.4 compact_json cut to 1000 characters
--   026 L2 customer       message_received {"text": "12345"} (digits, a string)   -> 4.2 payload.text
--   027 L3 customer       message_received {text: "... 120×80 cm 😊"}             -> 4.2 payload.text (non-ASCII)
--   028 L3 agent          message_sent     {message, channel}                     -> 4.2 payload.message
--   029 L3 system         reminder_sent    "Reminder: ..." (JSON string)          -> 4.1 payload
--   030 L4 webhook        form_submitted   {text}                                 -> ignored actor
--   031 L4 scheduler      reminder         {message}                              -> ignored actor
--   032 L5 customer       message_received {text}  (10-20 09:55, before the live message)
--                                                                                 -> 4.2, into the LIVE conversation
--   033 L5 agent          message_sent     {text}  (10-22 14:00, after it)        -> 4.2, raises last_message_at
--   034 L6 system         stage_changed    NULL                                   -> 4.5 no text
--   035 L6 agent          message_sent     {}                                     -> 4.5 no text
--   036 --- customer      message_received {text}, lead 1ead...0ff does not exist -> rule 2 orphan: audits_skipped
--   037 --- agent         message_sent     NULL,   lead 1ead...0ff does not exist -> rule 2 orphan (no text, still an orphan)
--   038 NULL system       nightly_job      {text}, lead_id NULL                   -> not processed (rule 1)
--
-- EXPECTED BATCH 4 COUNTS (first real run, and the dry run before it)
--   audits:          38 in all; 5 ignored (010, 011, 030, 031 actors; 038 no lead)
--   audits_processed      33  (L1 11 + L2 13 + L3 3 + L5 2 + L6 2 + 2 orphans)
--   audits_skipped         2  (036, 037)
--   messages_created      21  (L1 11 + L2 5 + L3 3 + L5 2)
--   messages_skipped      10  (014-021, 034, 035)
--   errors                 0        check: 21 + 10 + 2 + 0 = 33
--   conversations_created  4  (L1, L2, L3, L6)
--   conversations_skipped  1  (L5: its live conversation cc000000-...-001 is used)
--   by role:        user 10, assistant 8, system 2, tool 1
--   by textSource:  payload 2, payload.text 7, payload.message 3,
--                   payload.content 1, payload.body 2, compact_json 6
--   afterwards: 5 conversations, 22 messages (21 + the live one); the live
--   conversation's last_message_at goes 2025-10-20 10:05 -> 2025-10-22 14:00;
--   L6's conversation has no messages and last_message_at NULL.
-- SECOND RUN: conversations_created 0, conversations_skipped 5,
--   messages_created 0, messages_skipped 31 (21 already done + 10 no text),
--   audits_processed 33, audits_skipped 2, errors 0. (The run record audit
--   of the first run has lead_id NULL, so it is not processed.)
--
-- STATE_METADATA (Batch 5 material): L1 nested objects, "preferences" with a
-- nested object, an array of scalars, an array of objects, a JSON null and an
-- empty string; L3 a blank "summary" and a null inside "preferences"; L4 an
-- empty array; L5 an empty "preferences" object and an empty array; L6 {};
-- L7 an empty "summary" and a null; L2 SQL NULL.

BEGIN;

INSERT INTO "Customer" (id, name, email, phone, messenger_psid, created_at, updated_at) VALUES
  ('c0000000-0000-4000-8000-000000000001', 'Ana Alves',    'ana@example.com',   '+15550000101', NULL,              '2025-09-01 09:00:00+00', '2025-09-01 09:00:00+00'),
  ('c0000000-0000-4000-8000-000000000002', 'Ben Brooks',   'ben@example.com',   NULL,           'psid-ben-2002',   '2025-09-02 09:00:00+00', '2025-09-02 09:00:00+00'),
  ('c0000000-0000-4000-8000-000000000003', 'Chloé Martin', 'chloe@example.com', '+15550000103', 'psid-chloe-3003', '2025-09-03 09:00:00+00', '2025-09-03 09:00:00+00'),
  ('c0000000-0000-4000-8000-000000000004', 'Dan Diaz',     'dan@example.com',   '+15550000104', '',                '2025-09-04 09:00:00+00', '2025-09-04 09:00:00+00'),
  ('c0000000-0000-4000-8000-000000000005', 'Eve Diaz',     'eve@example.com',   '+15550000104', NULL,              '2025-09-05 09:00:00+00', '2025-09-05 09:00:00+00');

INSERT INTO "Lead" (id, customer_id, channel, messenger_psid, phone, stage, state_metadata, created_at, updated_at) VALUES
  ('1ead0000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000002', 'messenger', 'psid-ben-2002', NULL, 'qualified',
   '{"summary": "Wants a 2 m oak door delivered on a Saturday morning.",
     "budget": 500, "currency": "USD",
     "preferences": {"color": "oak", "delivery": {"day": "saturday", "window": "morning"}},
     "tags": ["vip", "repeat", "door"],
     "rooms": [{"name": "hall", "doors": 1}, {"name": "kitchen", "doors": 2}],
     "notes": null, "nickname": ""}',
   '2025-10-01 08:00:00+00', '2025-10-01 08:00:00+00'),
  ('1ead0000-0000-4000-8000-000000000002', NULL, 'whatsapp', NULL, '+15550000101', 'new',
   NULL,
   '2025-10-02 08:00:00+00', '2025-10-02 08:00:00+00'),
  ('1ead0000-0000-4000-8000-000000000003', NULL, 'sms', NULL, '+15550000104', 'quoted',
   '{"summary": "   ", "preferences": {"color": "white", "material": null}, "windows": 3, "quoted": true}',
   '2025-10-03 08:00:00+00', '2025-10-03 08:00:00+00'),
  ('1ead0000-0000-4000-8000-000000000004', NULL, 'web', NULL, NULL, 'new',
   '{"source": "web form", "tags": []}',
   '2025-10-04 08:00:00+00', '2025-10-04 08:00:00+00'),
  ('1ead0000-0000-4000-8000-000000000005', 'c0000000-0000-4000-8000-000000000003', 'messenger', 'psid-chloe-3003', NULL, 'done',
   '{"summary": "Door delivered; happy customer.", "preferences": {}, "followUp": []}',
   '2025-10-05 08:00:00+00', '2025-10-05 08:00:00+00'),
  ('1ead0000-0000-4000-8000-000000000006', 'c0000000-0000-4000-8000-000000000003', 'sms', NULL, '+15550000103', 'lost',
   '{}',
   '2025-10-06 08:00:00+00', '2025-10-06 08:00:00+00'),
  ('1ead0000-0000-4000-8000-000000000007', NULL, 'whatsapp', '', '', 'new',
   '{"summary": "", "budget": null, "language": "fr"}',
   '2025-10-07 08:00:00+00', '2025-10-07 08:00:00+00');

-- L5's live conversation and message, as the running application made them
-- (metadata {} -- not "audit_backfill"): Batch 4 must reuse it, not add one,
-- and its rollback must never delete it.
INSERT INTO "Conversation" (id, lead_id, customer_id, channel, external_id, started_at, last_message_at, metadata, created_at, updated_at) VALUES
  ('cc000000-0000-4000-8000-000000000001', '1ead0000-0000-4000-8000-000000000005', 'c0000000-0000-4000-8000-000000000003',
   'messenger', 'psid-chloe-3003', '2025-10-05 08:00:00+00', '2025-10-20 10:05:00+00', '{}',
   '2025-10-20 10:00:00+00', '2025-10-20 10:05:00+00');
INSERT INTO "Message" (id, conversation_id, role, content, metadata, created_at) VALUES
  ('e0000000-0000-4000-8000-000000000001', 'cc000000-0000-4000-8000-000000000001', 'assistant',
   'Your door ships on Monday.', '{}', '2025-10-20 10:05:00+00');

INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at) VALUES
  -- L1: every text source, compact JSON, ignored actors, odd actor spelling
  ('a0000000-0000-4000-8000-000000000001', '1ead0000-0000-4000-8000-000000000001', 'customer', 'message_received',
   '"Hi! Do you deliver on Saturdays?"', '2025-10-01 09:00:00+00'),
  ('a0000000-0000-4000-8000-000000000002', '1ead0000-0000-4000-8000-000000000001', 'agent', 'message_sent',
   '{"text": "Yes, Saturday mornings from 8 to 12.", "channel": "messenger"}', '2025-10-01 09:01:00+00'),
  ('a0000000-0000-4000-8000-000000000003', '1ead0000-0000-4000-8000-000000000001', 'user', 'message_received',
   '{"message": "Great. What''s the price for a 2 m oak door?"}', '2025-10-01 09:02:00+00'),
  ('a0000000-0000-4000-8000-000000000004', '1ead0000-0000-4000-8000-000000000001', 'assistant', 'message_sent',
   '{"content": "A 2 m oak door is $480, installed."}', '2025-10-01 09:03:00+00'),
  ('a0000000-0000-4000-8000-000000000005', '1ead0000-0000-4000-8000-000000000001', 'customer', 'message_received',
   '{"body": "Can I pay by card?"}', '2025-10-01 09:04:00+00'),
  ('a0000000-0000-4000-8000-000000000006', '1ead0000-0000-4000-8000-000000000001', 'agent', 'message_sent',
   '{"body": "Card is fine, or bank transfer."}', '2025-10-01 09:05:00+00'),
  ('a0000000-0000-4000-8000-000000000007', '1ead0000-0000-4000-8000-000000000001', 'agent', 'note_added',
   '{"body": "Customer prefers mornings"}', '2025-10-01 09:06:00+00'),
  ('a0000000-0000-4000-8000-000000000008', '1ead0000-0000-4000-8000-000000000001', 'system', 'stage_changed',
   '{"from": "new", "to": "qualified", "reason": "budget: ok, timeline: soon"}', '2025-10-01 09:07:00+00'),
  ('a0000000-0000-4000-8000-000000000009', '1ead0000-0000-4000-8000-000000000001', 'tool', 'tool_called',
   '{"tool": "quote_calculator", "args": {"width_m": 0.90, "height_m": 2.10}, "result": [480, "USD"]}', '2025-10-01 09:08:00+00'),
  ('a0000000-0000-4000-8000-000000000010', '1ead0000-0000-4000-8000-000000000001', 'webhook', 'message_received',
   '{"text": "delivery status: shipped"}', '2025-10-01 09:09:00+00'),
  ('a0000000-0000-4000-8000-000000000011', '1ead0000-0000-4000-8000-000000000001', 'crm', 'sync',
   '{"message": "contact synced"}', '2025-10-01 09:10:00+00'),
  ('a0000000-0000-4000-8000-000000000012', '1ead0000-0000-4000-8000-000000000001', ' Customer ', 'message_received',
   '{"text": "  Also: do you install?  "}', '2025-10-01 09:11:00+00'),
  ('a0000000-0000-4000-8000-000000000013', '1ead0000-0000-4000-8000-000000000001', 'Agent', 'message_sent',
   '{"text": "We do; installation is included."}', '2025-10-01 09:12:00+00'),

  -- L2: payloads with no text, and text edge cases
  ('a0000000-0000-4000-8000-000000000014', '1ead0000-0000-4000-8000-000000000002', 'customer', 'message_received',
   NULL, '2025-10-02 09:00:00+00'),
  ('a0000000-0000-4000-8000-000000000015', '1ead0000-0000-4000-8000-000000000002', 'customer', 'message_received',
   'null', '2025-10-02 09:01:00+00'),
  ('a0000000-0000-4000-8000-000000000016', '1ead0000-0000-4000-8000-000000000002', 'agent', 'message_sent',
   '{}', '2025-10-02 09:02:00+00'),
  ('a0000000-0000-4000-8000-000000000017', '1ead0000-0000-4000-8000-000000000002', 'agent', 'message_sent',
   '[]', '2025-10-02 09:03:00+00'),
  ('a0000000-0000-4000-8000-000000000018', '1ead0000-0000-4000-8000-000000000002', 'system', 'stage_changed',
   '42', '2025-10-02 09:04:00+00'),
  ('a0000000-0000-4000-8000-000000000019', '1ead0000-0000-4000-8000-000000000002', 'system', 'stage_changed',
   'true', '2025-10-02 09:05:00+00'),
  ('a0000000-0000-4000-8000-000000000020', '1ead0000-0000-4000-8000-000000000002', 'customer', 'message_received',
   '"   "', '2025-10-02 09:06:00+00'),
  ('a0000000-0000-4000-8000-000000000021', '1ead0000-0000-4000-8000-000000000002', 'customer', 'message_received',
   '"\u00a0\u2003\t"', '2025-10-02 09:07:00+00'),   -- JSON escapes: no-break space, em space, tab
  ('a0000000-0000-4000-8000-000000000022', '1ead0000-0000-4000-8000-000000000002', 'user', 'message_received',
   '{"text": 12345}', '2025-10-02 09:08:00+00'),
  ('a0000000-0000-4000-8000-000000000023', '1ead0000-0000-4000-8000-000000000002', 'customer', 'message_received',
   '{"text": "   ", "message": "Can I send photos here?"}', '2025-10-02 09:09:00+00'),
  ('a0000000-0000-4000-8000-000000000024', '1ead0000-0000-4000-8000-000000000002', 'customer', 'message_received',
   '["photo_1.jpg", "photo_2.jpg"]', '2025-10-02 09:10:00+00'),
  ('a0000000-0000-4000-8000-000000000026', '1ead0000-0000-4000-8000-000000000002', 'customer', 'message_received',
   '{"text": "12345"}', '2025-10-02 09:12:00+00'),

  -- L3: non-ASCII text, a JSON-string payload from the system
  ('a0000000-0000-4000-8000-000000000027', '1ead0000-0000-4000-8000-000000000003', 'customer', 'message_received',
   '{"text": "Bonjour, I''d like a quote for 3 windows — 120×80 cm 😊"}', '2025-10-03 09:00:00+00'),
  ('a0000000-0000-4000-8000-000000000028', '1ead0000-0000-4000-8000-000000000003', 'agent', 'message_sent',
   '{"message": "Sure! Which colour: white or anthracite?", "channel": "sms"}', '2025-10-03 09:01:00+00'),
  ('a0000000-0000-4000-8000-000000000029', '1ead0000-0000-4000-8000-000000000003', 'system', 'reminder_sent',
   '"Reminder: your quote expires in 7 days."', '2025-10-03 09:02:00+00'),

  -- L4: only actors outside the role map -> no conversation
  ('a0000000-0000-4000-8000-000000000030', '1ead0000-0000-4000-8000-000000000004', 'webhook', 'form_submitted',
   '{"text": "web form: name=Fay, wants a gate"}', '2025-10-04 09:00:00+00'),
  ('a0000000-0000-4000-8000-000000000031', '1ead0000-0000-4000-8000-000000000004', 'scheduler', 'reminder',
   '{"message": "follow up in 2 days"}', '2025-10-04 09:01:00+00'),

  -- L5: goes into the live conversation; 033 is newer than the live message
  ('a0000000-0000-4000-8000-000000000032', '1ead0000-0000-4000-8000-000000000005', 'customer', 'message_received',
   '{"text": "When will my door ship?"}', '2025-10-20 09:55:00+00'),
  ('a0000000-0000-4000-8000-000000000033', '1ead0000-0000-4000-8000-000000000005', 'agent', 'message_sent',
   '{"text": "It shipped today, tracking is in your email."}', '2025-10-22 14:00:00+00'),

  -- L6: processed audits, none with text -> a conversation without messages
  ('a0000000-0000-4000-8000-000000000034', '1ead0000-0000-4000-8000-000000000006', 'system', 'stage_changed',
   NULL, '2025-10-06 09:00:00+00'),
  ('a0000000-0000-4000-8000-000000000035', '1ead0000-0000-4000-8000-000000000006', 'agent', 'message_sent',
   '{}', '2025-10-06 09:01:00+00'),

  -- Orphans: the lead was deleted (audits have no foreign key)
  ('a0000000-0000-4000-8000-000000000036', '1ead0000-0000-4000-8000-0000000000ff', 'customer', 'message_received',
   '{"text": "Hello? Is anyone there?"}', '2025-09-15 09:00:00+00'),
  ('a0000000-0000-4000-8000-000000000037', '1ead0000-0000-4000-8000-0000000000ff', 'agent', 'message_sent',
   NULL, '2025-09-15 09:01:00+00'),

  -- No lead at all
  ('a0000000-0000-4000-8000-000000000038', NULL, 'system', 'nightly_job',
   '{"text": "nightly sync finished"}', '2025-10-08 02:00:00+00');

-- 025: a structured payload whose compact JSON is ~1,400 characters (with
-- non-ASCII "chêne"), so the 1000-character cut applies. Built from a series
-- because 25 catalogue rows are unreadable as a literal; deterministic all
-- the same.
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT 'a0000000-0000-4000-8000-000000000025', '1ead0000-0000-4000-8000-000000000002', 'assistant', 'message_sent',
       jsonb_build_object(
           'note', 'Full catalogue, prices in USD',
           'catalog', (SELECT jsonb_agg(jsonb_build_object(
                                  'sku',   'DOOR-' || lpad(g::text, 3, '0'),
                                  'name',  'Porte chêne ' || g,
                                  'price', 400 + 10 * g) ORDER BY g)
                       FROM generate_series(1, 25) g)),
       '2025-10-02 09:11:00+00';

COMMIT;
