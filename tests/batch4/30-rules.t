#!/usr/bin/env bash
# Issue 3 rules 1, 3, 4 and 5 one by one on made-up data: which actors count
# (case, spaces), every text source in its order, blank strings, body only
# for message_sent/received, compact JSON exactly as PostgreSQL prints it
# (key order, escapes, number text) cut at 1000 characters without splitting
# a 4-byte character, message metadata, external_id, and which existing
# conversation receives the messages.
. "$(dirname "$0")/lib.sh"

URI=$(b4_db b4_30_rules) || bail_out "cannot build the database"

# Leads c3...0N; audits ad...0NNN; every audit on lead 1 unless said.
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" >/dev/null <<'SQL' || bail_out "cannot load the data"
BEGIN;
INSERT INTO "Customer" (id, name) VALUES ('c3c00000-0000-4000-8000-000000000001', 'Cy');
INSERT INTO "Lead" (id, customer_id, channel, messenger_psid, phone, stage, created_at) VALUES
  ('c3000000-0000-4000-8000-000000000001', 'c3c00000-0000-4000-8000-000000000001', 'sms', NULL, '+1000', 'qualified', '2025-01-01 00:00:00+00'),
  ('c3000000-0000-4000-8000-000000000002', NULL, 'messenger', 'psid-2', '+2000', 'new', '2025-01-02 00:00:00+00'),
  ('c3000000-0000-4000-8000-000000000003', NULL, 'whatsapp', '', '+3000', 'new', '2025-01-03 00:00:00+00'),
  ('c3000000-0000-4000-8000-000000000004', NULL, 'web', NULL, NULL, 'done', '2025-01-04 00:00:00+00'),
  ('c3000000-0000-4000-8000-000000000005', NULL, 'sms', NULL, '+5000', 'new', '2025-01-05 00:00:00+00'),
  ('c3000000-0000-4000-8000-000000000006', NULL, 'sms', NULL, '+6000', 'new', '2025-01-06 00:00:00+00'),
  ('c3000000-0000-4000-8000-000000000007', NULL, 'sms', NULL, '+7000', 'new', '2025-01-07 00:00:00+00');

-- Lead 5 has three live conversations: the one that gets the messages is the
-- earliest by created_at, then id: ..0a, not ..0b (same time, larger id),
-- not ..01 (smallest id, but created later).
-- Lead 6 has one whose last_message_at is newer than any backfilled message.
INSERT INTO "Conversation" (id, lead_id, channel, started_at, last_message_at, metadata, created_at) VALUES
  ('c0c00000-0000-4000-8000-000000000001', 'c3000000-0000-4000-8000-000000000005', 'sms', '2025-01-05', '2025-03-01', '{"live": 3}', '2025-02-02 00:00:00+00'),
  ('c0c00000-0000-4000-8000-00000000000b', 'c3000000-0000-4000-8000-000000000005', 'sms', '2025-01-05', NULL,         '{"live": 2}', '2025-02-01 00:00:00+00'),
  ('c0c00000-0000-4000-8000-00000000000a', 'c3000000-0000-4000-8000-000000000005', 'sms', '2025-01-05', NULL,         '{"live": 1}', '2025-02-01 00:00:00+00'),
  ('c0c00000-0000-4000-8000-000000000006', 'c3000000-0000-4000-8000-000000000006', 'sms', '2025-01-06', '2030-01-01', '{}',          '2025-02-01 00:00:00+00'),
  ('c0c00000-0000-4000-8000-000000000007', NULL,                                   'sms', '2025-01-07', NULL,         '{}',          '2025-02-01 00:00:00+00');

INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT ('ad000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       ('c3000000-0000-4000-8000-' || lpad(l::text, 12, '0'))::uuid,
       actor, action, payload::jsonb, '2025-06-01 00:00:00+00'::timestamptz + n * interval '1 minute'
FROM (VALUES
  -- rule 1: actors
  (101, 1, ' Customer ', 'message_received', '{"text": "spaced and capitalised"}'),
  (102, 1, 'AGENT', 'message_sent', '{"text": "upper case agent"}'),
  (103, 1, E'\tSystem\n', 'note', '{"text": "tab and newline around"}'),
  (104, 1, 'Tool', 'tool_called', '{"text": "tool"}'),
  (105, 1, 'USER ', 'message_received', '{"text": "user"}'),
  (106, 1, 'assistant', 'message_sent', '{"text": "assistant"}'),
  (107, 1, 'webhook', 'message_received', '{"text": "not mapped"}'),
  (108, 1, 'cust omer', 'message_received', '{"text": "not mapped"}'),
  (109, 1, 'customers', 'message_received', '{"text": "not mapped"}'),
  (110, 1, '', 'message_received', '{"text": "not mapped"}'),
  -- rule 4.1: the payload is a JSON string
  (201, 1, 'customer', 'x', '"just a string"'),
  (202, 1, 'customer', 'x', '"   "'),
  (203, 1, 'customer', 'x', '""'),
  (204, 1, 'customer', 'x', '"  padded  "'),
  (205, 1, 'customer', 'x', '"\u00a0\u3000\n"'),
  -- rule 4.2: text, then message, then content; strings with text only
  (301, 1, 'customer', 'message_sent', '{"text": "T", "message": "M", "content": "C", "body": "B"}'),
  (302, 1, 'customer', 'message_sent', '{"text": "  ", "message": "M", "content": "C", "body": "B"}'),
  (303, 1, 'customer', 'message_sent', '{"text": 1, "message": null, "content": "C", "body": "B"}'),
  (304, 1, 'customer', 'message_sent', '{"text": "", "message": " \n", "content": "\t", "body": "B"}'),
  (305, 1, 'customer', 'x', '{"message": "M only"}'),
  (306, 1, 'customer', 'x', '{"content": "C only", "other": "z"}'),
  (307, 1, 'customer', 'x', '{"text": "\u00a0", "message": "\u3000", "content": "after unicode blanks"}'),
  (308, 1, 'customer', 'x', '{"text": "  keep  my  spaces \n"}'),
  -- rule 4.3: body only for message_sent / message_received
  (401, 1, 'customer', 'message_received', '{"body": "B received"}'),
  (402, 1, 'customer', 'message_sent', '{"body": "B sent"}'),
  (403, 1, 'customer', 'note_added', '{"body": "B note"}'),
  (404, 1, 'customer', 'Message_Sent', '{"body": "B wrong case"}'),
  (405, 1, 'customer', 'message_sent', '{"body": "   "}'),
  (406, 1, 'customer', 'message_sent', '{"body": 5}'),
  -- rule 4.4: compact JSON
  (501, 1, 'customer', 'x', '{"a": 1, "b": [1, 2]}'),
  (502, 1, 'customer', 'x', '{"bb": 1, "a": 2, "ccc": 3, "B": 4}'),
  (503, 1, 'customer', 'x', '{"k": "tab\there \"q\" back\\slash \u0001 \u00e9 \u001f /, : "}'),
  (504, 1, 'customer', 'x', '{"n": 1.50, "m": 1e3, "o": -0.0, "p": 100000000000000000000, "q": 1E-2}'),
  (505, 1, 'customer', 'x', '["x", 1, [], {}, null, true]'),
  (506, 1, 'customer', 'x', '[" "]'),
  (507, 1, 'customer', 'x', '{"text": {"a": 1}}'),
  (508, 1, 'customer', 'x', '{"text": ["a"], "message": 2, "content": false}'),
  (509, 1, 'customer', 'x', '{"": ""}'),
  -- rule 4.5: nothing to extract
  (601, 1, 'customer', 'x', '{}'),
  (602, 1, 'customer', 'x', '[]'),
  (603, 1, 'customer', 'x', 'null'),
  (604, 1, 'customer', 'x', '42'),
  (605, 1, 'customer', 'x', 'true'),
  (606, 1, 'customer', 'x', 'false'),
  (607, 1, 'customer', 'x', '-1.5e-7'),
  (608, 1, 'customer', 'x', NULL),
  -- rule 3: external_id and existing conversations
  (701, 2, 'customer', 'x', '{"text": "lead 2"}'),
  (702, 3, 'customer', 'x', '{"text": "lead 3"}'),
  (703, 4, 'customer', 'x', '{"text": "lead 4"}'),
  (704, 5, 'customer', 'x', '{"text": "lead 5 a"}'),
  (705, 5, 'agent', 'x', '{"text": "lead 5 b"}'),
  (706, 6, 'customer', 'x', '{"text": "lead 6"}'),
  (707, 7, 'customer', 'x', '{}')
) v(n, l, actor, action, payload);

-- rule 4.4's cut: compact text '{"k":"' is 6 characters.
--   801: 993 x then an emoji: the emoji is character 1000 (kept whole)
--   802: 994 x then an emoji: the emoji is character 1001 (dropped whole)
--   803: 992 x, an emoji at character 999 whose bytes cross byte 1000
--   804: multi-byte text throughout (é is 2 bytes): 1000 characters, 1994 bytes
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at) VALUES
  ('ad000000-0000-4000-8000-000000000801', 'c3000000-0000-4000-8000-000000000001', 'agent', 'x',
   jsonb_build_object('k', repeat('x', 993) || '😀' || repeat('y', 50)), '2025-07-01 00:00:01+00'),
  ('ad000000-0000-4000-8000-000000000802', 'c3000000-0000-4000-8000-000000000001', 'agent', 'x',
   jsonb_build_object('k', repeat('x', 994) || '😀' || repeat('y', 50)), '2025-07-01 00:00:02+00'),
  ('ad000000-0000-4000-8000-000000000803', 'c3000000-0000-4000-8000-000000000001', 'agent', 'x',
   jsonb_build_object('k', repeat('x', 992) || '😀' || repeat('y', 50)), '2025-07-01 00:00:03+00'),
  ('ad000000-0000-4000-8000-000000000804', 'c3000000-0000-4000-8000-000000000001', 'agent', 'x',
   jsonb_build_object('k', repeat('é', 2000)), '2025-07-01 00:00:04.123456+00');
COMMIT;
SQL

b4_run
is "$RC" 0 "the run exits 0"
# processed: lead 1: 6 actors + 5 + 8 + 6 + 9 + 8 + 4 = 46; leads 2-7: 7
# messages: 6 + 2 + 8 + 6 + 9 + 4 + 6 (701-706) = 41; skipped: 3 + 8 + 1 (707) = 12
# conversations: leads 1-4 and 7 created; 5 and 6 have live ones
is "$(stats_of "$OUT")" "$(stats_block 5 2 41 12 53 0 0)" "statistics"

rows=$(q "$URI" "SELECT right(a.id::text, 3), coalesce(m.role, '-'), coalesce(m.metadata->>'textSource', '-'),
                        coalesce(replace(replace(m.content, E'\n', '<NL>'), E'\t', '<TAB>'), '-')
                   FROM \"Audit\" a LEFT JOIN \"Message\" m ON m.metadata->>'auditId' = a.id::text
                  WHERE a.id::text LIKE 'ad000000-%' AND right(a.id::text, 3) < '800' ORDER BY a.id")
is "$rows" '101|user|payload.text|spaced and capitalised
102|assistant|payload.text|upper case agent
103|system|payload.text|tab and newline around
104|tool|payload.text|tool
105|user|payload.text|user
106|assistant|payload.text|assistant
107|-|-|-
108|-|-|-
109|-|-|-
110|-|-|-
201|user|payload|just a string
202|-|-|-
203|-|-|-
204|user|payload|  padded  
205|-|-|-
301|user|payload.text|T
302|user|payload.message|M
303|user|payload.content|C
304|user|payload.body|B
305|user|payload.message|M only
306|user|payload.content|C only
307|user|payload.content|after unicode blanks
308|user|payload.text|  keep  my  spaces <NL>
401|user|payload.body|B received
402|user|payload.body|B sent
403|user|compact_json|{"body":"B note"}
404|user|compact_json|{"body":"B wrong case"}
405|user|compact_json|{"body":"   "}
406|user|compact_json|{"body":5}
501|user|compact_json|{"a":1,"b":[1,2]}
502|user|compact_json|{"B":4,"a":2,"bb":1,"ccc":3}
503|user|compact_json|{"k":"tab\there \"q\" back\\slash \u0001 é \u001f /, : "}
504|user|compact_json|{"m":1000,"n":1.50,"o":0.0,"p":100000000000000000000,"q":0.01}
505|user|compact_json|["x",1,[],{},null,true]
506|user|compact_json|[" "]
507|user|compact_json|{"text":{"a":1}}
508|user|compact_json|{"text":["a"],"content":false,"message":2}
509|user|compact_json|{"":""}
601|-|-|-
602|-|-|-
603|-|-|-
604|-|-|-
605|-|-|-
606|-|-|-
607|-|-|-
608|-|-|-
701|user|payload.text|lead 2
702|user|payload.text|lead 3
703|user|payload.text|lead 4
704|user|payload.text|lead 5 a
705|assistant|payload.text|lead 5 b
706|user|payload.text|lead 6
707|-|-|-' "rules 1, 4, 5: role, text source and exact content of every audit"

is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE m.metadata->>'textSource' = 'compact_json' AND m.content <> left(b4test.compact(a.payload), 1000)")" 0 \
   "every compact_json content equals PostgreSQL's own text without whitespace (cut at 1000)"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE m.metadata->>'textSource' LIKE 'payload.%'
                   AND m.content IS DISTINCT FROM a.payload->>(substr(m.metadata->>'textSource', 9))")" 0 \
   "every payload.<field> content equals PostgreSQL's own value of that field"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE m.metadata->>'textSource' = 'payload' AND m.content IS DISTINCT FROM a.payload #>> '{}'")" 0 \
   "every JSON-string payload content equals PostgreSQL's own value of it"

cut=$(q "$URI" "SELECT right(a.id::text, 3), char_length(m.content), octet_length(m.content), right(m.content, 2),
                       m.content = left(b4test.compact(a.payload), 1000), m.created_at
                  FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE right(a.id::text, 3) >= '800' ORDER BY a.id")
is "$cut" '801|1000|1003|x😀|t|2025-07-01 00:00:01+00
802|1000|1000|xx|t|2025-07-01 00:00:02+00
803|1000|1003|😀y|t|2025-07-01 00:00:03+00
804|1000|1994|éé|t|2025-07-01 00:00:04.123456+00' \
   "rule 4.4: cut to exactly 1000 characters, a 4-byte character kept or dropped whole, never split"
is "$(q "$URI" "SELECT bool_and(content ~ '^{\"k\":\"') FROM \"Message\" WHERE metadata->>'auditId' LIKE '%80_'")" t \
   "cut texts start as compact JSON"

# rule 5: metadata keeps the audit's actor and action as written
is "$(q "$URI" "SELECT m.metadata::text FROM \"Message\" m WHERE m.metadata->>'auditId' = 'ad000000-0000-4000-8000-000000000103'")" \
   "{\"source\": \"audit_backfill\", \"auditId\": \"ad000000-0000-4000-8000-000000000103\", \"createdBy\": \"$B4\", \"auditActor\": \"\\tSystem\\n\", \"textSource\": \"payload.text\", \"auditAction\": \"note\"}" \
   "rule 5: message metadata, exactly (auditActor as written in the audit)"
is "$(q "$URI" "SELECT m.metadata->>'auditActor' FROM \"Message\" m WHERE m.metadata->>'auditId' = 'ad000000-0000-4000-8000-000000000101'")" \
   " Customer " "auditActor ' Customer ' kept with its spaces"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE m.created_at <> a.created_at")" 0 "rule 5: created_at = Audit.created_at (microseconds kept)"

# rule 3: conversations
convs=$(q "$URI" "SELECT right(lead_id::text, 1), coalesce(external_id, 'NULL'), coalesce(customer_id::text, 'NULL'), channel,
                         started_at, coalesce(last_message_at::text, 'NULL'), metadata->>'leadStage'
                    FROM \"Conversation\" WHERE metadata->>'source' = 'audit_backfill' ORDER BY lead_id")
is "$convs" '1|+1000|c3c00000-0000-4000-8000-000000000001|sms|2025-01-01 00:00:00+00|2025-07-01 00:00:04.123456+00|qualified
2|psid-2|NULL|messenger|2025-01-02 00:00:00+00|2025-06-01 11:41:00+00|new
3|+3000|NULL|whatsapp|2025-01-03 00:00:00+00|2025-06-01 11:42:00+00|new
4|NULL|NULL|web|2025-01-04 00:00:00+00|2025-06-01 11:43:00+00|done
7|+7000|NULL|sms|2025-01-07 00:00:00+00|NULL|new' \
   "rule 3: external_id is the PSID, else the phone (an empty PSID counts as none); NULL when neither; lead 7 (no text) gets an empty one"
is "$(q "$URI" "SELECT right(c.id::text, 1) || ':' || string_agg(m.content, ',' ORDER BY m.created_at)
                  FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
                 WHERE c.lead_id = 'c3000000-0000-4000-8000-000000000005' GROUP BY c.id")" "a:lead 5 a,lead 5 b" \
   "rule 3: lead 5's messages go into its earliest conversation by (created_at, id)"
is "$(q "$URI" "SELECT string_agg(right(id::text, 1) || ' ' || coalesce(last_message_at::text, 'NULL') || ' ' || metadata::text, '; ' ORDER BY id)
                  FROM \"Conversation\" WHERE lead_id IN ('c3000000-0000-4000-8000-000000000005', 'c3000000-0000-4000-8000-000000000006')")" \
   '1 2025-03-01 00:00:00+00 {"live": 3}; 6 2030-01-01 00:00:00+00 {}; a 2025-06-01 11:45:00+00 {"live": 1}; b NULL {"live": 2}' \
   "last_message_at raised from NULL, never lowered; live metadata untouched; the others unchanged"
is "$(q "$URI" "SELECT count(*) FROM \"Conversation\" WHERE lead_id IS NULL")" 1 "a conversation without lead is left alone"

done_testing
