#!/usr/bin/env bash
# Hostile data, ferry against the yardstick: bench/backfill.sql (Batch 4 as
# set-based SQL, what make bench times ferry against) must give exactly the
# rows ferry gives -- bench/run.sh's digest, and the metadata -- on a copy
# of the same database, in a UTF-8 locale as production databases have
# (where lower() is the locale's: lower('ASSİSTANT') is 'assistant').
# Payloads of every JSON type, numbers past double precision, odd Unicode,
# emoji at the 1000-character cut, timestamps at -infinity and infinity,
# NULL payloads and leads, orphans, a lead with a thousand audits and a
# thousand leads with one.
. "$(dirname "$0")/lib.sh"

TPL=b4_57_tpl
URI=$(db_uri "$TPL")
if ! "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres \
    -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS b4_57_ferry WITH (FORCE)" -c "DROP DATABASE IF EXISTS b4_57_sql WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS $TPL WITH (FORCE)" \
    -c "CREATE DATABASE $TPL TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8'" >/dev/null 2>&1; then
    plan 1
    skip "no C.utf8 locale here" 1
    exit 0
fi
"$FERRY" --dir "$REPO_ROOT" --db "$URI" -q up --to 20251108 >/dev/null || bail_out "ferry up failed"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" >/dev/null <<'SQL' || bail_out "cannot load the hostile data"
INSERT INTO "Customer" (id, name) VALUES ('c0570000-0000-4000-8000-000000000001', 'C');
INSERT INTO "Lead" (id, customer_id, channel, messenger_psid, phone, stage, created_at) VALUES
  ('a1570000-0000-4000-8000-000000000001', 'c0570000-0000-4000-8000-000000000001', 'messenger', '', NULL, ' Qualified ', '-infinity'),
  ('a1570000-0000-4000-8000-000000000002', NULL, 'sms', NULL, NULL, 'NEW', 'infinity'),
  ('a1570000-0000-4000-8000-000000000003', NULL, 'web', '  ', '+1', E'\t', '2025-01-01');
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT ('a0570000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'a1570000-0000-4000-8000-000000000001',
       actor, action, payload::jsonb, t::timestamptz
FROM (VALUES
  (1, 'customer', 'm', 'null', '2025-01-01 00:00:01+00'),
  (2, 'customer', 'm', '"str"', 'infinity'),
  (3, 'customer', 'm', '-1e400', '-infinity'),
  (4, 'customer', 'm', '[1e400, 12345678901234567890123, -0.000]', '2025-01-01 00:00:02+00'),
  (5, 'customer', 'm', '{"": "empty key", "a.b": 1, "q\"uote": 2, "ü": 3}', '2025-01-01 00:00:03+00'),
  (6, 'customer', 'm', '{"text": "a", "text": "b"}', '2025-01-01 00:00:04+00'),
  (7, 'customer', 'm', '{"text": "\\ud800 a lone surrogate as text"}', '2025-01-01 00:00:05+00'),
  (8, 'customer', 'm', '{"text": "\u200f\u200e"}', '2025-01-01 00:00:06+00'),
  (9, 'customer', 'm', '{"text": "\u200b", "message": "\ufeff"}', '2025-01-01 00:00:07+00'),
  (10, 'customer', 'm', '{"text": "\u0085", "message": "\u180e"}', '2025-01-01 00:00:08+00'),
  (11, 'customer', 'm', '{"text": "\u001c\u001d\u001e\u001f"}', '2025-01-01 00:00:09+00'),
  (12, 'ASSİSTANT', 'm', '{"text": "a dotted capital I: no ASCII key"}', '2025-01-01 00:00:10+00'),
  (13, 'ASSISTANT', 'm', '{"text": "plain capitals"}', '2025-01-01 00:00:11+00'),
  (14, E'\u00a0agent', 'm', '{"text": "a no-break space is not trimmed"}', '2025-01-01 00:00:12+00'),
  (15, 'TOOL', 'message_sent', '{"body": "  "}', '2025-01-01 00:00:13+00'),
  (16, 'user', 'MESSAGE_SENT', '{"body": "upper-case action"}', '2025-01-01 00:00:14+00'),
  (17, 'user', 'message_sent', '{"body": 5, "text": null}', '2025-01-01 00:00:15+00'),
  (18, 'user', 'm', '{"text": "   ", "message": "\t", "content": " x "}', '2025-01-01 00:00:16+00'),
  (19, 'user', 'm', '{"k": "\\", "k2": "\",\" : ,"}', '2025-01-01 00:00:17+00'),
  (20, 'user', 'm', '{"a": [], "b": {}}', '2025-01-01 00:00:18+00'),
  (21, 'user', 'm', '[{}]', '2025-01-01 00:00:19+00'),
  (22, 'user', 'm', '{"content": "\u3000\u2028"}', '2025-01-01 00:00:20+00'),
  (23, E' Customer\t', 'm', '{"text": "spaced"}', '2025-01-01 00:00:21+00'),
  (24, 'agent', 'm', NULL, '2025-01-01 00:00:22+00')
) v(n, actor, action, payload, t);
INSERT INTO "Audit" (lead_id, actor, action, payload) VALUES (NULL, 'customer', 'm', '{"text": "no lead"}');
-- the 1000-character cut of compact JSON through a 4-byte emoji and a
-- ZWJ sequence, at every offset around it; 1,000 levels of objects
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT ('a0570000-0000-4000-8000-' || lpad((100 + n)::text, 12, '0'))::uuid, 'a1570000-0000-4000-8000-000000000002', 'agent', 'm',
       jsonb_build_object('a', repeat('x', 980 + n) || '😀👨‍👩‍👧'), '2025-01-02'::timestamptz + n * interval '1 s'
FROM generate_series(0, 20) n;
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at) VALUES
  ('a0570000-0000-4000-8000-000000000200', 'a1570000-0000-4000-8000-000000000002', 'agent', 'm',
   (repeat('{"a": ', 1000) || '1' || repeat('}', 1000))::jsonb, '2025-01-03'),
  ('a0570000-0000-4000-8000-000000000201', 'dead0000-0000-4000-8000-000000000001', 'customer', 'm', '{"text": "orphan"}', '2025-01-04');
-- a thousand audits for one lead; one audit for each of a thousand leads
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT ('a0571000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'a1570000-0000-4000-8000-000000000003',
       (ARRAY['customer', 'agent', 'system'])[n % 3 + 1], 'message_received',
       jsonb_build_object('text', 'message ' || n), '2025-01-01'::timestamptz + (n % 50) * interval '1 s'
FROM generate_series(1, 1000) n;
INSERT INTO "Lead" (id, channel, phone, created_at)
SELECT ('b2570000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'sms', '+' || n, '2024-01-01'
FROM generate_series(1, 1000) n;
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT ('a0572000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, ('b2570000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       'customer', 'message_received', jsonb_build_object('text', 'hi ' || n), '2024-02-01'
FROM generate_series(1, 1000) n;
SQL
FERRY_DB=$(db_uri b4_57_ferry)
SQL_DB=$(db_uri b4_57_sql)
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres \
    -c "CREATE DATABASE b4_57_ferry TEMPLATE $TPL" -c "CREATE DATABASE b4_57_sql TEMPLATE $TPL" >/dev/null \
    || bail_out "cannot copy the database"

# bench/run.sh's digest (bench/digest.sql); and the metadata (without the
# run's time)
digest() {
    PGOPTIONS="-c timezone=UTC -c datestyle=ISO" "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -f "$REPO_ROOT/bench/digest.sql"
}
metadata() {
    q "$1" "SELECT md5(string_agg(metadata::text, E'\n' ORDER BY metadata->>'auditId')) FROM \"Message\"
            UNION ALL
            SELECT md5(string_agg((metadata - 'createdAt')::text || lead_id, E'\n' ORDER BY lead_id)) FROM \"Conversation\""
}
record() {
    q "$1" "SELECT payload->'stats' FROM \"Audit\" WHERE action = 'backfill_conversations_messages'"
}

URI=$FERRY_DB
b4_run --batch-size 100
is "$RC" 0 "ferry over the hostile audits: exit 0"
[ "$RC" = 0 ] || diag "$ERR"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$SQL_DB" -f "$REPO_ROOT/bench/backfill.sql" >/dev/null 2>&1
ok $? "bench/backfill.sql over the same audits"

is "$(digest "$SQL_DB")" "$(digest "$FERRY_DB")" "the yardstick's rows are ferry's (bench/run.sh's digest)"
is "$(metadata "$SQL_DB")" "$(metadata "$FERRY_DB")" "... and so is their metadata"
is "$(record "$SQL_DB")" "$(record "$FERRY_DB")" "... and the statistics of the run records"
# the actors whose lower-case is an ASCII key only in the locale's lower()
is "$(q "$SQL_DB" "SELECT count(*) FROM \"Message\" WHERE metadata->>'auditActor' = 'ASSİSTANT'")" 0 \
   "the yardstick lower-cases ASCII only, as ferry does: 'ASSİSTANT' is no actor"
is "$(digest "$FERRY_DB" | cut -d' ' -f1)" 2041 \
   "2,041 messages: 19 of the 24 odd audits (2 actors not mapped, 3 without text), 21 + 1 big ones, 1,000 + 1,000"

done_testing
