#!/usr/bin/env bash
# Batch 4 on demo/data.sql: the counts its header promises, every audit's
# fate (rules 1-5), the live conversation (rule 3), the orphan (rule 2),
# re-runs and audits added later (rule 9), validate (rule 11).
. "$(dirname "$0")/lib.sh"

URI=$(b4_db b4_20_demo "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
L=1ead0000-0000-4000-8000-00000000000
LIVE=cc000000-0000-4000-8000-000000000001

before=$(b4_tables "$URI")
b4_run --dry-run
is "$RC" 0 "dry run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 4 1 21 10 33 2 0)" "dry run: the demo header's counts"
is "$(b4_tables "$URI")" "$before" "dry run wrote nothing"

b4_run
is "$RC" 0 "real run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 4 1 21 10 33 2 0)" "real run: same counts as the dry run"
is "$(printf '%s\n' "$OUT" | grep '⚠')" "   ⚠ Lead 1ead0000-0000-4000-8000-0000000000ff not found, skipping" \
    "rule 2: one ⚠ line for the missing lead (without --verbose)"

# Every audit: which message it became (or none), role, text source, content.
# 025's compact JSON is checked against PostgreSQL's own text below.
rows=$(q "$URI" "SELECT right(a.id::text, 3), coalesce(m.role, '-'), coalesce(m.metadata->>'textSource', '-'),
                        CASE WHEN a.id::text LIKE '%025' THEN '(cut)' ELSE coalesce(m.content, '-') END
                   FROM \"Audit\" a LEFT JOIN \"Message\" m ON m.metadata->>'auditId' = a.id::text
                  WHERE a.id::text LIKE 'a0000000-%' ORDER BY a.id")
is "$rows" '001|user|payload|Hi! Do you deliver on Saturdays?
002|assistant|payload.text|Yes, Saturday mornings from 8 to 12.
003|user|payload.message|Great. What'"'"'s the price for a 2 m oak door?
004|assistant|payload.content|A 2 m oak door is $480, installed.
005|user|payload.body|Can I pay by card?
006|assistant|payload.body|Card is fine, or bank transfer.
007|assistant|compact_json|{"body":"Customer prefers mornings"}
008|system|compact_json|{"to":"qualified","from":"new","reason":"budget: ok, timeline: soon"}
009|tool|compact_json|{"args":{"width_m":0.90,"height_m":2.10},"tool":"quote_calculator","result":[480,"USD"]}
010|-|-|-
011|-|-|-
012|user|payload.text|  Also: do you install?  
013|assistant|payload.text|We do; installation is included.
014|-|-|-
015|-|-|-
016|-|-|-
017|-|-|-
018|-|-|-
019|-|-|-
020|-|-|-
021|-|-|-
022|user|compact_json|{"text":12345}
023|user|payload.message|Can I send photos here?
024|user|compact_json|["photo_1.jpg","photo_2.jpg"]
025|assistant|compact_json|(cut)
026|user|payload.text|12345
027|user|payload.text|Bonjour, I'"'"'d like a quote for 3 windows — 120×80 cm 😊
028|assistant|payload.message|Sure! Which colour: white or anthracite?
029|system|payload|Reminder: your quote expires in 7 days.
030|-|-|-
031|-|-|-
032|user|payload.text|When will my door ship?
033|assistant|payload.text|It shipped today, tracking is in your email.
034|-|-|-
035|-|-|-
036|-|-|-
037|-|-|-
038|-|-|-' "rules 1, 4, 5: each demo audit's message (role, text source, exact content) or none"
is "$(q "$URI" "SELECT char_length(m.content), m.content = left(b4test.compact(a.payload), 1000),
                       char_length(b4test.compact(a.payload)) > 1000
                  FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE a.id = 'a0000000-0000-4000-8000-000000000025'")" "1000|t|t" \
   "rule 4.4: 025's compact JSON is PostgreSQL's text without whitespace, cut to 1000 characters"
is "$(q "$URI" "SELECT string_agg(s || ' ' || n, ', ' ORDER BY s) FROM
                 (SELECT metadata->>'textSource' s, count(*) n FROM \"Message\" WHERE metadata ? 'auditId' GROUP BY 1) x")" \
   "compact_json 6, payload 2, payload.body 2, payload.content 1, payload.message 3, payload.text 7" "text sources as the header says"
is "$(q "$URI" "SELECT string_agg(role || ' ' || n, ', ' ORDER BY role) FROM
                 (SELECT role, count(*) n FROM \"Message\" WHERE metadata ? 'auditId' GROUP BY 1) x")" \
   "assistant 8, system 2, tool 1, user 10" "roles as the header says"

convs=$(q "$URI" "SELECT lead_id, coalesce(customer_id::text, 'NULL'), channel, coalesce(external_id, 'NULL'), started_at,
                         coalesce(last_message_at::text, 'NULL'), metadata->>'leadStage', coalesce(metadata->>'source', '{}'),
                         (SELECT count(*) FROM \"Message\" m WHERE m.conversation_id = c.id)
                    FROM \"Conversation\" c ORDER BY lead_id")
is "$convs" "${L}1|c0000000-0000-4000-8000-000000000002|messenger|psid-ben-2002|2025-10-01 08:00:00+00|2025-10-01 09:12:00+00|qualified|audit_backfill|11
${L}2|NULL|whatsapp|+15550000101|2025-10-02 08:00:00+00|2025-10-02 09:12:00+00|new|audit_backfill|5
${L}3|NULL|sms|+15550000104|2025-10-03 08:00:00+00|2025-10-03 09:02:00+00|quoted|audit_backfill|3
${L}5|c0000000-0000-4000-8000-000000000003|messenger|psid-chloe-3003|2025-10-05 08:00:00+00|2025-10-22 14:00:00+00||{}|3
${L}6|c0000000-0000-4000-8000-000000000003|sms|+15550000103|2025-10-06 08:00:00+00|NULL|lost|audit_backfill|0" \
   "rule 3: L1-L3 and L6 get one conversation each; L5 keeps its live one (raised to 10-22 14:00); L4, L7 and the orphan none"
is "$(q "$URI" "SELECT string_agg(right(m.metadata->>'auditId', 3), ',' ORDER BY m.created_at)
                  FROM \"Message\" m WHERE m.conversation_id = '$LIVE' AND m.metadata ? 'auditId'")" "032,033" \
   "rule 3: L5's audits went into the live conversation"
is "$(q "$URI" "SELECT content || '|' || metadata::text || '|' || created_at FROM \"Message\"
                 WHERE id = 'e0000000-0000-4000-8000-000000000001'")" \
   "Your door ships on Monday.|{}|2025-10-20 10:05:00+00" "the live message is untouched"
is "$(q "$URI" "SELECT count(*) FROM \"Conversation\" WHERE lead_id = '${L}5'")" 1 "no second conversation for L5"

# ------------------------------------------------------------ second run
b4_run
is "$RC" 0 "second run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 0 5 0 31 33 2 0)" "rule 9: second run creates nothing (header: 0/5/0/31/33/2/0)"
is "$(q "$URI" "SELECT count(*) FROM \"Message\"")|$(q "$URI" "SELECT count(*) FROM \"Conversation\"")" "22|5" \
   "still 22 messages, 5 conversations"

# ------------------------------------------------------------ audits added after a run
q "$URI" "INSERT INTO \"Audit\" (id, lead_id, actor, action, payload, created_at) VALUES
  ('a0000000-0000-4000-8000-000000000101', '${L}1', 'customer', 'message_received', '{\"text\": \"One more thing: a doorstop?\"}', '2025-10-25 10:00:00+00'),
  ('a0000000-0000-4000-8000-000000000102', '${L}5', 'customer', 'message_received', '{\"text\": \"(an older message)\"}', '2025-10-10 10:00:00+00'),
  ('a0000000-0000-4000-8000-000000000103', '${L}4', 'customer', 'message_received', '{\"text\": \"Now I write as a customer\"}', '2025-10-26 10:00:00+00')"
b4_run
is "$RC" 0 "run after new audits exits 0"
is "$(stats_of "$OUT")" "$(stats_block 1 5 3 31 36 2 0)" "rule 9: the three new audits are picked up (L4 gets its first conversation)"
is "$(q "$URI" "SELECT right(c.lead_id::text, 1) || ' ' || (c.metadata->>'source') || ' ' || m.content
                  FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
                 WHERE m.metadata->>'auditId' = 'a0000000-0000-4000-8000-000000000101'")" \
   "1 audit_backfill One more thing: a doorstop?" "the new L1 audit went into L1's existing (backfilled) conversation"
is "$(q "$URI" "SELECT last_message_at FROM \"Conversation\" WHERE lead_id = '${L}1'")" "2025-10-25 10:00:00+00" \
   "and raised its last_message_at"
is "$(q "$URI" "SELECT conversation_id || ' ' || last_message_at FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
                 WHERE m.metadata->>'auditId' = 'a0000000-0000-4000-8000-000000000102'")" "$LIVE 2025-10-22 14:00:00+00" \
   "the older L5 audit went into the live conversation, whose last_message_at is not lowered"
is "$(q "$URI" "SELECT count(*) || ' ' || max(last_message_at) FROM \"Conversation\" WHERE lead_id = '${L}4'")" "1 2025-10-26 10:00:00+00" \
   "L4 now has one conversation"
invariant_ok "$(record_stats "$URI")"
ok $? "rule 6 invariant on the last run record"

# ------------------------------------------------------------ validate
b4 validate "$B4"
is "$RC" 0 "validate passes"
is "$(printf '%s\n' "$OUT" | grep -c '^✓ PASS ')" 8 "8 PASS lines"
like "$OUT" 'PASS full-text search uses Message_content_fts_idx' "the FTS check passes"

# Check 5 fails without the GIN index (the plan has no index to use), and it
# alone: with it always passing, a dropped index went unnoticed.
q "$URI" 'DROP INDEX "Message_content_fts_idx"' >/dev/null
b4 validate "$B4"
is "$RC|$(printf '%s\n' "$OUT" | grep -E '^(✓ PASS|✗ FAIL)' | grep -v '^✓ PASS' | sed 's/  (.*//')|$(printf '%s\n' "$OUT" | tail -n 1)" \
   "1|✗ FAIL full-text search uses Message_content_fts_idx|8 check(s), 1 failed" \
   "without the GIN index: validate exits 1, the FTS check the only one failing"
q "$URI" "CREATE INDEX \"Message_content_fts_idx\" ON \"Message\" USING GIN (to_tsvector('english', COALESCE(content, '')))" >/dev/null
b4 validate "$B4"
is "$RC|$(printf '%s\n' "$OUT" | grep -c '^✓ PASS ')" "0|8" "index back: validate passes again, 8 PASS lines"

q "$URI" "INSERT INTO \"Message\" (conversation_id, role, content, metadata, created_at)
          SELECT conversation_id, role, content, metadata, created_at FROM \"Message\"
           WHERE metadata->>'auditId' = 'a0000000-0000-4000-8000-000000000002'"
b4 validate "$B4"
is "$RC" 1 "validate fails (exit 1) with a duplicated auditId"
like "$OUT" '✗ FAIL no two messages share an auditId  \(1 duplicated auditIds\)' "... naming the duplicate check"
like "$OUT" '✗ FAIL every processed audit with text and an existing lead has exactly one message' "... and the one-message check"
q "$URI" "DELETE FROM \"Message\" WHERE metadata->>'auditId' = 'a0000000-0000-4000-8000-000000000002'"
b4 validate "$B4"
is "$RC" 1 "validate fails when an audit with text has no message"
like "$OUT" '✗ FAIL every processed audit with text and an existing lead has exactly one message  \(24 audits with text: 1 without a message' \
    "... the completeness check says which"
b4_run
is "$(stats_of "$OUT")" "$(stats_block 0 6 1 33 36 2 0)" "a re-run restores the deleted message"
b4 validate "$B4"
is "$RC" 0 "and validate passes again"

# A backfilled conversation beside an older one of its lead (what a live
# conversation opened while a run was writing leaves: the run read the lead
# without one): validate says so.
lead=$(q "$URI" "SELECT lead_id FROM \"Conversation\" WHERE metadata->>'createdBy' = '$B4' ORDER BY lead_id LIMIT 1")
q "$URI" "INSERT INTO \"Conversation\" (lead_id, channel, metadata, created_at)
          VALUES ('$lead', 'sms', '{\"app\": \"live\"}', '2000-01-01 00:00:00+00')" >/dev/null
b4 validate "$B4"
is "$RC" 1 "validate fails when a backfilled conversation has an older one beside it"
like "$OUT" '✗ FAIL every backfilled conversation belongs to an existing lead, one per lead  \([0-9]+ conversations, 0 without lead, 0 duplicate leads, 1 beside an older conversation of its lead\)' \
    "... naming it"
q "$URI" "DELETE FROM \"Conversation\" WHERE metadata->>'app' = 'live'" >/dev/null

# A backfilled conversation whose lead_id was cleared: one without lead, and
# no duplicate (a NULL lead_id is no lead shared with another conversation).
q "$URI" "UPDATE \"Conversation\" SET lead_id = NULL WHERE lead_id = '$lead' AND metadata->>'createdBy' = '$B4'" >/dev/null
b4 validate "$B4"
is "$RC" 1 "validate fails when a backfilled conversation has no lead"
like "$OUT" '✗ FAIL every backfilled conversation belongs to an existing lead, one per lead  \([0-9]+ conversations, 1 without lead, 0 duplicate leads, 0 beside an older conversation of its lead\)' \
    "... counted without lead, not as a duplicate"

done_testing
