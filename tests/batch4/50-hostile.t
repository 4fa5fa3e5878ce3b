#!/usr/bin/env bash
# Issue 4 points 4 and 5 for Batch 4: hostile payloads and actors, each
# mapped exactly by the rules or skipped with a reason, never a crash; rule
# failures recorded per row; --max-errors; re-runs after a fixed rule.
. "$(dirname "$0")/lib.sh"

H=ba000000-0000-4000-8000-000000000
# A database in a UTF-8 locale (as production databases usually are), so
# that lower() in SQL is the locale's, not plain ASCII.
URI=$(db_uri b4_50_hostile)
if ! "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres \
    -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS b4_50_hostile WITH (FORCE)" \
    -c "CREATE DATABASE b4_50_hostile TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8'" >/dev/null 2>&1; then
    diag "no C.utf8 locale here: the hostile data runs in the default locale"
    URI=$(fresh_db b4_50_hostile) || bail_out "cannot create the database"
fi
"$FERRY" --dir "$REPO_ROOT" --db "$URI" -q up --to 20251108 >/dev/null || bail_out "ferry up failed"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" >/dev/null <<'SQL' || bail_out "cannot load the hostile data"
CREATE SCHEMA b4test;
CREATE FUNCTION b4test.compact(j jsonb) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT regexp_replace(j::text, '("(?:[^"\\]|\\.)*")|([,:]) ', '\1\2', 'g') $$;
BEGIN;
INSERT INTO "Lead" (id, channel, messenger_psid, phone, stage, created_at) VALUES
  ('ba1e0000-0000-4000-8000-000000000001', 'messenger', '''); DROP TABLE "Lead"; --', NULL, 'qualifié ✓ "x"', '2025-01-01 00:00:00+00');
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
SELECT ('ba000000-0000-4000-8000-000000000' || n)::uuid, 'ba1e0000-0000-4000-8000-000000000001',
       actor, action, payload::jsonb, '2025-02-01 00:00:00+00'::timestamptz + n::int * interval '1 second'
FROM (VALUES
  ('101', 'customer', 'm', '"a JSON string, with ''quotes'' and \"double quotes\""'),
  ('102', 'customer', 'm', '123'),
  ('103', 'customer', 'm', 'true'),
  ('104', 'customer', 'm', 'false'),
  ('105', 'customer', 'm', 'null'),
  ('106', 'customer', 'm', NULL),
  ('107', 'customer', 'm', '""'),
  ('108', 'customer', 'm', '"  \t\n\r "'),
  ('109', 'customer', 'm', '{"text": "   "}'),
  ('110', 'customer', 'm', '{"text": 42}'),
  ('111', 'customer', 'm', '{"text": "42"}'),
  ('112', 'customer', 'm', '{"text": {"nested": {"deep": true}}}'),
  ('113', 'customer', 'm', '123456789012345678901234567890.000001e-3'),
  ('114', 'customer', 'm', '{"n": 123456789012345678901234567890.000001e-3, "f": 1.0e+30, "z": -0.000}'),
  ('115', 'customer', 'm', '{"text": "👨‍👩‍👧 e\u0301 שלום עולם مرحبا ‏RTL‎ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"}'),
  ('116', 'customer', 'm', '{"text": "bell\u0007 tab\t nl\n cr\r ff\f bs\b esc\u001b del\u007f"}'),
  ('117', 'customer', 'm', '{"k": "\u0001\n\\\"", "text": ["x"]}'),
  ('118', 'customer', 'm', '{"text": "''); DROP TABLE \"Message\"; --"}'),
  ('119', 'customer', 'm', '"''); DROP TABLE \"Message\"; --"'),
  ('120', 'customer', 'message_sent', '{"body": "line 1\n\\.\nline 3 \\N \\t"}'),
  ('121', 'customer', '''); DROP TABLE "Audit"; --', '{"body": "not a message action"}'),
  ('122', ' Customer ', 'm', '{"text": "spaced actor"}'),
  ('123', 'AGENT', 'm', '{"text": "shouting actor"}'),
  ('124', E'\tSystem\n', 'm', '{"text": "tab-newline actor"}'),
  ('125', 'ASSİSTANT', 'm', '{"text": "dotted capital I: not an ASCII key"}'),
  ('126', E'customer\u00a0', 'm', '{"text": "no-break space is not trimmed"}'),
  ('127', 'CUSTOMER', 'm', '{"message": "\u00a0\u2003"}'),
  ('128', E'agent\x0b', 'm', '{"text": "vertical tab trimmed, as Lua''s %s"}'),
  ('129', 'vagent', 'm', '{"text": "a v is a letter, not a blank: no key"}')
) v(n, actor, action, payload);
-- big ones: 10 MB of text, 10,000 levels of objects, 10,000 of arrays,
-- a 4-byte character straddling the 1000-character cut (compact text
-- '{"a":"' is 6 characters, then 992 more, then two emoji: the cut keeps
-- both, at characters 999 and 1000, bytes 999-1006)
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at) VALUES
  ('ba000000-0000-4000-8000-000000000201', 'ba1e0000-0000-4000-8000-000000000001', 'agent', 'm',
   jsonb_build_object('text', repeat('0123456789', 1048576)), '2025-03-01 00:00:01+00'),
  ('ba000000-0000-4000-8000-000000000202', 'ba1e0000-0000-4000-8000-000000000001', 'agent', 'm',
   (repeat('{"a": ', 10000) || '"leaf"' || repeat('}', 10000))::jsonb, '2025-03-01 00:00:02+00'),
  ('ba000000-0000-4000-8000-000000000203', 'ba1e0000-0000-4000-8000-000000000001', 'agent', 'm',
   (repeat('[', 10000) || '1' || repeat(']', 10000))::jsonb, '2025-03-01 00:00:03+00'),
  ('ba000000-0000-4000-8000-000000000204', 'ba1e0000-0000-4000-8000-000000000001', 'agent', 'm',
   jsonb_build_object('a', repeat('ab', 496) || '😀😀' || 'tail'), '2025-03-01 00:00:04+00'),
  ('ba000000-0000-4000-8000-000000000205', 'ba1e0000-0000-4000-8000-000000000001', 'agent', 'm',
   jsonb_build_object('a', repeat('ab', 496) || 'x😀' || 'tail'), '2025-03-01 00:00:05+00');
COMMIT;
SQL

b4_run
is "$RC" 0 "the run over hostile payloads exits 0 (no crash, no error)"
[ "$RC" = 0 ] || diag "$ERR"
# processed: 101-124, 127 and 128 (26) + 5 big ones = 31 (125 and 126 are
# not keys: lower-casing is ASCII, whatever the database's locale; nor is
# 129); no text: 102-108, 113
is "$(stats_of "$OUT")" "$(stats_block 1 0 23 8 31 0 0)" "statistics"
rows=$(q "$URI" "SELECT right(a.id::text, 3), coalesce(m.role, '-'), coalesce(m.metadata->>'textSource', '-'),
                        coalesce(CASE WHEN right(a.id::text, 3) >= '200' THEN char_length(m.content) || ' chars'
                                      ELSE replace(replace(replace(m.content, E'\n', '<NL>'), E'\t', '<TAB>'), E'\r', '<CR>') END, '-')
                   FROM \"Audit\" a LEFT JOIN \"Message\" m ON m.metadata->>'auditId' = a.id::text
                  WHERE a.id::text LIKE 'ba000000-%' ORDER BY a.id")
is "$rows" "101|user|payload|a JSON string, with 'quotes' and \"double quotes\"
102|-|-|-
103|-|-|-
104|-|-|-
105|-|-|-
106|-|-|-
107|-|-|-
108|-|-|-
109|user|compact_json|{\"text\":\"   \"}
110|user|compact_json|{\"text\":42}
111|user|payload.text|42
112|user|compact_json|{\"text\":{\"nested\":{\"deep\":true}}}
113|-|-|-
114|user|compact_json|{\"f\":1000000000000000000000000000000,\"n\":123456789012345678901234567.890000001,\"z\":0.000}
115|user|payload.text|👨‍👩‍👧 e$(printf '\xcc\x81') שלום עולם مرحبا ‏RTL‎ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢
116|user|payload.text|bell$(printf '\a') tab<TAB> nl<NL> cr<CR> ff$(printf '\f') bs$(printf '\b') esc$(printf '\033') del$(printf '\177')
117|user|compact_json|{\"k\":\"\\u0001\\n\\\\\\\"\",\"text\":[\"x\"]}
118|user|payload.text|'); DROP TABLE \"Message\"; --
119|user|payload|'); DROP TABLE \"Message\"; --
120|user|payload.body|line 1<NL>\\.<NL>line 3 \\N \\t
121|user|compact_json|{\"body\":\"not a message action\"}
122|user|payload.text|spaced actor
123|assistant|payload.text|shouting actor
124|system|payload.text|tab-newline actor
125|-|-|-
126|-|-|-
127|user|compact_json|{\"message\":\"$(printf '\xc2\xa0\xe2\x80\x83')\"}
128|assistant|payload.text|vertical tab trimmed, as Lua's %s
129|-|-|-
201|assistant|payload.text|10485760 chars
202|assistant|compact_json|1000 chars
203|assistant|compact_json|1000 chars
204|assistant|compact_json|1000 chars
205|assistant|compact_json|1000 chars" "each hostile payload and actor: mapped exactly, or skipped"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE CASE m.metadata->>'textSource'
                         WHEN 'compact_json' THEN m.content <> left(b4test.compact(a.payload), 1000)
                         WHEN 'payload' THEN m.content IS DISTINCT FROM a.payload #>> '{}'
                         ELSE m.content IS DISTINCT FROM a.payload->>(substr(m.metadata->>'textSource', 9)) END")" 0 \
   "every content equals PostgreSQL's own text of the payload (compact: whitespace removed outside strings)"
is "$(q "$URI" "SELECT m.content FROM \"Message\" m WHERE m.metadata->>'auditId' = '${H}114'")" \
   "$(q "$URI" "SELECT replace(payload::text, ' ', '') FROM \"Audit\" WHERE id = '${H}114'")" \
   "the number beyond double precision keeps PostgreSQL's exact text"
is "$(q "$URI" "SELECT octet_length(m.content) || ' ' || right(m.content, 3) FROM \"Message\" m WHERE m.metadata->>'auditId' IN ('${H}204', '${H}205') ORDER BY 1")" \
   "1003 bx😀
1006 b😀😀" "4-byte characters at the cut: kept whole, never split"
is "$(q "$URI" "SELECT md5(m.content) = md5(a.payload->>'text') FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE a.id = '${H}201'")" t "the 10 MB string arrives unchanged"
is "$(q "$URI" "SELECT left(m.content, 12) FROM \"Message\" m WHERE m.metadata->>'auditId' = '${H}202'")" '{"a":{"a":{"' \
   "10,000 nested objects: compact JSON, cut"
is "$(q "$URI" "SELECT external_id || ' | ' || (metadata->>'leadStage') FROM \"Conversation\"")" \
   "'); DROP TABLE \"Lead\"; -- | qualifié ✓ \"x\"" "SQL-looking PSID and odd stage stored as plain data"
is "$(q "$URI" "SELECT m.metadata->>'auditAction' FROM \"Message\" m WHERE m.metadata->>'auditId' = '${H}121'")" \
   "'); DROP TABLE \"Audit\"; --" "SQL-looking action stored as plain data in the metadata"
is "$(q "$URI" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" 6 "all six tables still exist"
b4 validate "$B4"
is "$RC" 0 "validate passes on the hostile data"
[ "$RC" = 0 ] || diag "$OUT"
b4_run
is "$(stats_of "$OUT")" "$(stats_block 0 1 0 31 31 0 0)" "a second run creates nothing"
is "$RC" 0 "... and exits 0"

# ------------------------------------------------- deeper than json.decode
# PostgreSQL stores payloads nested deeper than json.decode's 20,000 levels
# when max_stack_depth is raised (4 MB is enough for 20,001): rule 4 still
# applies to them -- a top-level field's text, else the compact JSON -- and
# none is a row error.
URI=$(b4_db b4_50_deep) || bail_out "cannot build the database"
D=de000000-0000-4000-8000-000000000
if q "$URI" "SET max_stack_depth = '6MB'" >/dev/null 2>&1; then
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" >/dev/null <<SQL || bail_out "cannot load the deep payloads"
SET max_stack_depth = '6MB';
INSERT INTO "Lead" (id, channel, phone, created_at) VALUES ('de1e0000-0000-4000-8000-000000000001', 'sms', '+1', '2025-01-01 00:00:00+00');
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at) VALUES
  ('${D}001', 'de1e0000-0000-4000-8000-000000000001', 'customer', 'm',
   ('{"x": ' || repeat('[', 25000) || repeat(']', 25000) || ', "text": "beside 25,000 arrays"}')::jsonb, '2025-02-01 00:00:01+00'),
  ('${D}002', 'de1e0000-0000-4000-8000-000000000001', 'customer', 'm',
   ('{"x": ' || repeat('{"a": ', 25000) || '"leaf"' || repeat('}', 25000) || '}')::jsonb, '2025-02-01 00:00:02+00'),
  ('${D}003', 'de1e0000-0000-4000-8000-000000000001', 'agent', 'message_sent',
   ('{"text": ' || repeat('{"a": ', 25000) || '"t"' || repeat('}', 25000) || ', "body": "the \\"body\\", escaped", "message": 7}')::jsonb,
   '2025-02-01 00:00:03+00'),
  ('${D}004', 'de1e0000-0000-4000-8000-000000000001', 'agent', 'm',
   ('{"content": "c", "a\\"b": ' || repeat('[', 25000) || repeat(']', 25000) || '}')::jsonb, '2025-02-01 00:00:04+00');
SQL
    b4_run
    is "$RC" 0 "payloads nested 25,000 deep: exit 0, no row error"
    [ "$RC" = 0 ] || diag "$OUT"
    is "$(stats_of "$OUT")" "$(stats_block 1 0 4 0 4 0 0)" "... statistics: four messages"
    is "$(q "$URI" "SELECT right(a.id::text, 3), m.metadata->>'textSource',
                           CASE WHEN m.metadata->>'textSource' = 'compact_json'
                                THEN (m.content = left(b4test.compact(a.payload), 1000))::text ELSE m.content END
                      FROM \"Audit\" a LEFT JOIN \"Message\" m ON m.metadata->>'auditId' = a.id::text
                     WHERE a.lead_id IS NOT NULL ORDER BY a.id")" \
       "001|payload.text|beside 25,000 arrays
002|compact_json|true
003|payload.body|the \"body\", escaped
004|payload.content|c" "... each mapped by rule 4: a top-level field's text, else the compact JSON (PostgreSQL's, cut)"
    b4 validate "$B4"
    is "$RC" 0 "... validate passes"
else
    skip "max_stack_depth cannot be raised here" 4
fi

# ------------------------------------------------------------ rule failures
SEED=$REPO_ROOT/tests/fixtures/seed_example.sql
A=5eeda000-0000-4000-8000-0000000000
# result URI: the backfill's rows, without ids and run times
result() {
    q "$1" "SELECT md5(string_agg(concat_ws('|', m.metadata->>'auditId', m.role, m.content, m.created_at,
                 m.metadata - 'auditId', c.lead_id, c.customer_id, c.channel, c.external_id, c.started_at,
                 c.last_message_at, c.metadata - 'createdAt'), ',' ORDER BY m.metadata->>'auditId'))
              || ' ' || (SELECT count(*) FROM \"Conversation\")
              FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id"
}
URI=$(b4_db b4_50_clean "$SEED") || bail_out "cannot build the database"
b4_run -q
clean=$(result "$URI")

D1=$TAP_TMPDIR/one
broken_rules "$D1" "Both are 80"
ok $? "rules/text.lua edited to raise for audit ${A}03"
URI=$(b4_db b4_50_err1 "$SEED") || bail_out "cannot build the database"
run_ferry --dir "$D1" --db "$URI" run "$B4"
is "$RC" 1 "one failing row: exit 1"
is "$(stats_of "$OUT")" "$(stats_block 3 0 19 5 25 0 1)" "... errors 1, the other rows written"
like "$OUT" "⚠ Errors \\(1\\):"$'\n'"   ${A}03: .*rules/text\\.lua:[0-9]+: rule exploded on purpose" \
    "... the error names the audit and the rule's message"
like "$ERR" "1 row error\\(s\\) recorded" "... and stderr says so"
is "$(q "$URI" "SELECT payload->'errors'->0->>'key' || ' ' || (payload->'errors'->0->>'message' LIKE '%rule exploded on purpose')
                       || ' ' || jsonb_array_length(payload->'errors') || ' ' || (payload->'stats'->>'errors')
                  FROM \"Audit\" WHERE action = 'backfill_conversations_messages'")" "${A}03 true 1 1" \
   "the run record holds the error (key and message)"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" WHERE metadata->>'auditId' = '${A}03'")" 0 "the failed audit has no message"
# validate with the same rules cannot judge that audit: check 8 fails and
# says so (as Batch 5's check 1 does for a lead its rules cannot map)
run_ferry --dir "$D1" --db "$URI" validate "$B4"
is "$RC" 1 "validate with the failing rule: exit 1"
like "$OUT" "✗ FAIL every processed audit with text and an existing lead has exactly one message  \\(19 audits with text: 0 without a message, 0 with more than one, 1 audits the rules cannot map\\)" \
    "... check 8 counts the audit the rules cannot map"
started=$(q "$URI" "SELECT to_char(max(started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM ferry.history WHERE migration = '$B4'")
is "$ERR" "note: the last run of $B4 failed (started $started; 'ferry history $B4' says why): the checks see what it committed and count what it did not write as missing; re-run it (ferry run $B4), then validate again" \
   "... and stderr notes that the last run failed, and what to do"
# the same run as a killed one leaves it: 'running', its process gone
q "$URI" "UPDATE ferry.history SET status = 'running', finished_at = NULL, backend_pid = 0 WHERE migration = '$B4'" >/dev/null
run_ferry --dir "$D1" --db "$URI" validate "$B4"
is "$ERR" "note: the last run of $B4 was interrupted (started $started; 'ferry history $B4' says more): the checks see what it committed and count what it did not write as missing; re-run it (ferry run $B4), then validate again" \
   "... a run killed before it recorded its outcome: noted as interrupted"
b4_run
is "$RC" 0 "re-run with the rule fixed exits 0"
[ "$RC" = 0 ] || diag "$OUT"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" WHERE metadata->>'auditId' = '${A}03'")" 1 "the failed audit now has its message"
is "$(result "$URI")" "$clean" "final rows equal those of a clean run"
invariant_ok "$(record_stats "$URI")"
ok $? "the re-run's record keeps the stats invariant"
# a rollback of it that failed after that (as its history row says):
# validate notes that it may have removed part of the backfill
q "$URI" "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, started_at, finished_at, error)
          VALUES ('$B4', '20251110', 'backfill_conversations_messages', 'rollback', 'failed', gen_random_uuid(),
                  '2026-01-02 03:04:05+00', '2026-01-02 03:04:06+00', 'canceling statement due to lock timeout')" >/dev/null
b4 validate "$B4"
is "$RC|$ERR" "0|note: the last rollback of $B4 failed (started 2026-01-02T03:04:05Z; 'ferry history $B4' says why): it may have removed part of what the migration wrote, which the checks count as missing; finish it (ferry rollback $B4), or run the migration again (ferry run $B4) to write that back, then validate again" \
   "a rollback that failed after the run: validate notes it"
q "$URI" "DELETE FROM ferry.history WHERE operation = 'rollback'" >/dev/null

# --max-errors 2 with three failing rows, one per lead, a batch per lead
D3=$TAP_TMPDIR/three
broken_rules "$D3" "Both are 80" "Three, white frames" "Yes, next week"
URI=$(b4_db b4_50_err3 "$SEED") || bail_out "cannot build the database"
run_ferry --dir "$D3" --db "$URI" run "$B4" --max-errors 2 --batch-size 1
is "$RC" 1 "three failing rows, --max-errors 2: exit 1"
like "$ERR" "too many row errors \\(3, more than --max-errors 2\\)" "... stopped, saying why"
# Lead 1's batch was committed when lead 3 failed (lead 2's may still have
# been in flight, and is then rolled back); lead 3 never is.
like "$(q "$URI" "SELECT string_agg(right(c.lead_id::text, 1) || ':' || (SELECT count(*) FROM \"Message\" m WHERE m.conversation_id = c.id), ' ' ORDER BY c.lead_id)
                  FROM \"Conversation\" c")" '^1:7( 2:6)?$' "the batches committed before the stop are kept"
is "$(q "$URI" "SELECT count(*) FROM ferry.checkpoint")" 0 "no resume point past the failed rows"
is "$(q "$URI" "SELECT status FROM ferry.history WHERE migration = '$B4' ORDER BY id DESC LIMIT 1")" "failed" "history: failed"
# The statistics of a stopped run are those of what it committed: the rows
# of the batch it was mapping, never sent, are not counted as created.
is "$(q "$URI" "SELECT (stats->'stats'->>'conversations_created') || ' ' || (stats->'stats'->>'messages_created')
                  FROM ferry.history WHERE migration = '$B4' ORDER BY id DESC LIMIT 1")" \
   "$(q "$URI" "SELECT (SELECT count(*) FROM \"Conversation\") || ' ' || (SELECT count(*) FROM \"Message\")")" \
   "a stopped run's conversations_created and messages_created are the rows it committed"
b4_run --batch-size 1
is "$RC" 0 "re-run with the rule fixed exits 0"
is "$(result "$URI")" "$clean" "final rows equal those of a clean run (the failed rows of committed batches included)"
rs=$(record_stats "$URI")
invariant_ok "$rs"
ok $? "stats invariant on the completing run ($rs)"
like "$rs" '^[0-9]+ [0-9]+ [0-9]+ [0-9]+ 25 0 0$' "the completing run accounts for all 25 audits, no errors"

# Stopped after committed batches, resumed: the totals of the resumed run
# equal those of an uninterrupted run (the orphan is counted once).
URI=$(b4_db b4_50_resume "$SEED") || bail_out "cannot build the database"
q "$URI" "INSERT INTO \"Audit\" (id, lead_id, actor, action, payload) VALUES
          ('${A}99', '5eed0000-0000-4000-8000-0000000000ff', 'customer', 'message_received', '{\"text\": \"orphan\"}')"
D4=$TAP_TMPDIR/last
broken_rules "$D4" "Yes, next week"
run_ferry --dir "$D4" --db "$URI" run "$B4" --max-errors 0 --batch-size 1
is "$RC" 1 "a failing row in the last lead, --max-errors 0: exit 1"
like "$(q "$URI" "SELECT count(*) FROM \"Conversation\"")" '^[12]$' "lead 1 (and perhaps lead 2) committed"
like "$(q "$URI" "SELECT position #>> '{}' FROM ferry.checkpoint")" '^5eed0000-0000-4000-8000-00000000000[12]$' \
    "the checkpoint is at the last committed lead, before the failing one"
b4_run --batch-size 1
is "$RC" 0 "the resumed run exits 0"
is "$(stats_of "$OUT")" "$(stats_block 3 0 20 5 26 1 0)" "resumed totals equal an uninterrupted run's (orphan counted once)"
is "$(result "$URI")" "$clean" "final rows equal a clean run's"

# A row error in lead 2, batches of one lead: lead 1 commits with its
# checkpoint, the checkpoint stays there, leads 2 and 3 commit without it.
# The re-run resumes after lead 1 and finds most of leads 2 and 3 done: its
# statistics are its own work (the row it creates now), not lead 1's
# counters plus its own, which would count the rows of leads 2 and 3 as
# skipped on top of the restored ones.
D6=$TAP_TMPDIR/middle
broken_rules "$D6" "Three, white frames"
URI=$(b4_db b4_50_err6 "$SEED") || bail_out "cannot build the database"
run_ferry --dir "$D6" --db "$URI" run "$B4" --batch-size 1
is "$RC" 1 "a failing row in lead 2: exit 1, the rest written"
like "$(q "$URI" "SELECT position #>> '{}' FROM ferry.checkpoint")" '^5eed0000-0000-4000-8000-000000000001$' \
    "the checkpoint stays after lead 1"
m0=$(q "$URI" "SELECT count(*) FROM \"Message\"")
run_ferry --db "$URI" --json run "$B4" --batch-size 1
is "$RC" 0 "the re-run with the rule fixed exits 0"
stat() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])["stats"][sys.argv[2]])' "$OUT" "$1"; }
is "$(stat messages_created)" "$(( $(q "$URI" "SELECT count(*) FROM \"Message\"") - m0 ))" \
   "its messages_created is the messages it created"
is "$(stat conversations_created)" 0 "its conversations_created is 0: every conversation was there"
like "$ERR" "the previous run had row errors" "it says why its statistics are its own"
is "$(result "$URI")" "$clean" "final rows equal a clean run's"

# A lead whose id is the all-zero UUID is a lead like any other (the start
# of the stream is no id "before" it), on a first run and with a head.
URI=$(b4_db b4_50_zero "$SEED") || bail_out "cannot build the database"
q "$URI" "INSERT INTO \"Lead\" (id, channel, phone, stage) VALUES ('00000000-0000-0000-0000-000000000000', 'sms', '+0', 'new');
          INSERT INTO \"Audit\" (lead_id, actor, action, payload)
          VALUES ('00000000-0000-0000-0000-000000000000', 'customer', 'message_received', '{\"text\": \"hello from zero\"}')" >/dev/null
for bs in "" "--batch-size 1"; do
    # shellcheck disable=SC2086
    b4_run -q $bs
    is "$RC" 0 "the all-zero lead: exit 0 ${bs:+($bs)}"
    is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
                     WHERE c.lead_id = '00000000-0000-0000-0000-000000000000' AND m.content = 'hello from zero'")" 1 \
       "...its audit has its message in its conversation ${bs:+($bs)}"
    q "$URI" "DELETE FROM \"Message\"; DELETE FROM \"Conversation\"" >/dev/null
done

# A database whose sessions print dates the old way (DateStyle Postgres)
# in a zone whose abbreviation means another zone when read back (China's
# CST is US Central to PostgreSQL's parser): every time is kept exactly.
URI=$(b4_db b4_50_datestyle "$SEED") || bail_out "cannot build the database"
q "$URI" "ALTER DATABASE b4_50_datestyle SET timezone = 'Asia/Shanghai'" >/dev/null
q "$URI" "ALTER DATABASE b4_50_datestyle SET datestyle = 'Postgres, MDY'" >/dev/null
is "$(q "$URI" "SHOW datestyle")" "Postgres, MDY" "(the database's sessions print dates the old way)"
b4_run -q
is "$RC" 0 "DateStyle Postgres, Asia/Shanghai: exit 0"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE m.created_at <> a.created_at")" 0 "every message has its audit's created_at"
is "$(q "$URI" "SELECT count(*) FROM \"Conversation\" c JOIN \"Lead\" l ON l.id = c.lead_id
                 WHERE c.started_at <> l.created_at
                    OR c.last_message_at <> (SELECT max(m.created_at) FROM \"Message\" m WHERE m.conversation_id = c.id)")" 0 \
   "every conversation starts at its lead's created_at and ends at its newest message"

# The rules read and write UTF-8 whatever the client encoding: one asked
# for by the environment (PGCLIENTENCODING, which libpq honours) or a
# database's own (a LATIN1 database's sessions default to LATIN1, whose
# text the rules would read as UTF-8: 'Ã©' is the bytes of 'é').
URI=$(b4_db b4_50_clientenc) || bail_out "cannot build the database"
E=e0000000-0000-4000-8000-000000000
q "$URI" "INSERT INTO \"Lead\" (id, channel, phone) VALUES ('e01e0000-0000-4000-8000-000000000001', 'sms', '+1');
          INSERT INTO \"Audit\" (id, lead_id, actor, action, payload) VALUES
            ('${E}001', 'e01e0000-0000-4000-8000-000000000001', 'customer', 'm', '{\"text\": \"d\u00e9j\u00e0 vu \ud83d\ude00\"}')" >/dev/null
PGCLIENTENCODING=LATIN1 b4_run -q
is "$RC" 0 "PGCLIENTENCODING=LATIN1 in the environment: exit 0 (an emoji is no LATIN1 character)"
[ "$RC" = 0 ] || diag "$ERR"
is "$(q "$URI" "SELECT content FROM \"Message\" WHERE metadata->>'auditId' = '${E}001'")" "déjà vu 😀" "... the text arrives unchanged"
URI=$(db_uri b4_50_latin1)
if "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS b4_50_latin1 WITH (FORCE)" \
    -c "CREATE DATABASE b4_50_latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null 2>&1; then
    "$FERRY" --dir "$REPO_ROOT" --db "$URI" -q up --to 20251108 >/dev/null || bail_out "ferry up failed"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" >/dev/null <<SQL || bail_out "cannot load the LATIN1 data"
SET client_encoding = 'UTF8';
CREATE SCHEMA b4test;
CREATE FUNCTION b4test.compact(j jsonb) RETURNS text LANGUAGE sql IMMUTABLE
  AS \$\$ SELECT regexp_replace(j::text, '("(?:[^"\\\\]|\\\\.)*")|([,:]) ', '\\1\\2', 'g') \$\$;
INSERT INTO "Lead" (id, channel, phone) VALUES ('e01e0000-0000-4000-8000-000000000001', 'sms', '+1');
INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at) VALUES
  ('${E}001', 'e01e0000-0000-4000-8000-000000000001', 'customer', 'm', '{"text": "café"}', '2025-01-01 00:00:01+00'),
  ('${E}002', 'e01e0000-0000-4000-8000-000000000001', 'customer', 'm', '{"text": "\u00a0"}', '2025-01-01 00:00:02+00'),
  ('${E}003', 'e01e0000-0000-4000-8000-000000000001', 'customer', 'm', jsonb_build_object('k', repeat('é', 1200)), '2025-01-01 00:00:03+00'),
  ('${E}004', 'e01e0000-0000-4000-8000-000000000001', 'customer', 'm', jsonb_build_object('k', repeat('Ã©', 600)), '2025-01-01 00:00:04+00');
SQL
    b4_run -q
    is "$RC" 0 "a LATIN1 database: exit 0"
    [ "$RC" = 0 ] || diag "$ERR"
    is "$(q "$URI" "SET client_encoding = 'UTF8'; SELECT right(a.id::text, 3), m.metadata->>'textSource', char_length(m.content),
                           m.content = CASE WHEN m.metadata->>'textSource' = 'compact_json' THEN left(b4test.compact(a.payload), 1000)
                                            ELSE a.payload->>'text' END
                      FROM \"Audit\" a JOIN \"Message\" m ON m.metadata->>'auditId' = a.id::text ORDER BY a.id")" \
       "001|payload.text|4|t
002|compact_json|12|t
003|compact_json|1000|t
004|compact_json|1000|t" "... a no-break space is whitespace and the cut is 1000 characters, as in a UTF-8 database"
else
    skip "no LATIN1 database here" 2
fi

# A syntax error in a rule file stops before anything is written: exit 2.
D5=$TAP_TMPDIR/syntax
mkdir -p "$D5"
cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$D5/"
printf 'local broken = = 1\n' >>"$D5/rules/metadata.lua"
URI=$(b4_db b4_50_syntax "$SEED") || bail_out "cannot build the database"
before=$(b4_tables "$URI")
run_ferry --dir "$D5" --db "$URI" run "$B4"
is "$RC" 2 "a syntax error in rules/metadata.lua: exit 2"
like "$ERR" 'rules/metadata\.lua:[0-9]+:' "... naming file:line"
is "$(b4_tables "$URI")" "$before" "... nothing written"

done_testing
