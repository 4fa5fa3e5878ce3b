#!/usr/bin/env bash
# Batch 4 on the seed document's example (tests/fixtures/seed_example.sql):
# the counts 3/0/20/5/25/0/0, the output, the exact rows, the run record, the
# dry run (writes nothing, same counts as the real run), the second run.
# Issue 3 rules 3-9 and 11.
. "$(dirname "$0")/lib.sh"

URI=$(b4_db b4_10_seed "$REPO_ROOT/tests/fixtures/seed_example.sql") || bail_out "cannot build the database"
SEED_BLOCK=$(stats_block 3 0 20 5 25 0 0)

# ------------------------------------------------------------ dry run
before=$(b4_tables "$URI")
b4_run --dry-run
is "$RC" 0 "dry run exits 0"
is "$(stats_of "$OUT")" "$SEED_BLOCK" "dry run: the seed's statistics block, exactly"
steps=$(printf '%s\n' "$OUT" | grep -E '^\[[1-4]/4\]')
is "$steps" "[1/4] Fetching audit records...
[2/4] Creating conversations for leads...
[3/4] Creating messages from audit logs...
[4/4] Recording audit log..." "the four steps, in order"
like "$OUT" $'🚀 Starting Batch 4: Conversation & Message Backfill\n   Mode: 🔍 DRY RUN\n' "dry run: banner and mode"
like "$OUT" $'📊 Found 25 audit records with messages\n🔗 Grouped into 3 leads with audit history\n' "dry run: audits found, leads grouped"
like "$OUT" $'═{59}\n🔍 DRY RUN COMPLETE\n═{59}\n' "dry run: DRY RUN COMPLETE between rules"
is "$(printf '%s\n' "$OUT" | grep -c 'DRY RUN\] Would create')" 1 "without --verbose: one [DRY RUN] line"
is "$(printf '%s\n' "$OUT" | grep 'DRY RUN\] Would create')" "   [DRY RUN] Would create audit log" "... and it is the audit log one"
unlike "$OUT" 'Skipping audit|Creating (conversation for|message from)' "without --verbose: no per-row lines"
is "$(b4_tables "$URI")" "$before" "dry run wrote nothing (not even ferry's history tables)"
# the migration's README shows this output: the block under "## Output",
# line for line (the time aside)
readme_out=$(awk '/^## Output$/ { on = 1; next } on && /^```$/ { if (inb) exit; inb = 1; next } inb { print }' "$B4_PATH/README.md")
is "$(printf '%s\n' "$OUT" | sed -E 's/ in [0-9]+\.[0-9]+ s$/ in T s/')" "$(printf '%s\n' "$readme_out" | sed -E 's/ in [0-9]+\.[0-9]+ s$/ in T s/')" \
   "dry run: the output the migration's README shows, line for line"

b4_run --dry-run --verbose
is "$RC" 0 "dry run --verbose exits 0"
is "$(printf '%s\n' "$OUT" | grep -c '^   \[DRY RUN\] Would create message from audit ')" 20 "--verbose: one Would-create line per message (20)"
is "$(printf '%s\n' "$OUT" | grep '^   \[DRY RUN\] Would create conversation for lead ')" \
"   [DRY RUN] Would create conversation for lead 5eed0000-0000-4000-8000-000000000001
   [DRY RUN] Would create conversation for lead 5eed0000-0000-4000-8000-000000000002
   [DRY RUN] Would create conversation for lead 5eed0000-0000-4000-8000-000000000003" \
    "--verbose: one Would-create line per conversation"
like "$OUT" $'\n   \\[DRY RUN\\] Would create message from audit 5eeda000-0000-4000-8000-000000000001 \\(Hello, I need a quote for two oak doors\\.\\)\n' \
    "--verbose: message line with its text preview"
like "$OUT" $'\n   \\[DRY RUN\\] Would create message from audit 5eeda000-0000-4000-8000-000000000007 \\(Order confirmed\\. Installation is on Frid\\.\\.\\.\\)\n' \
    "--verbose: long texts previewed with ..."
is "$(printf '%s\n' "$OUT" | grep 'Skipping audit')" \
"   ⊙ Skipping audit 5eeda000-0000-4000-8000-000000000009 (no extractable text)
   ⊙ Skipping audit 5eeda000-0000-4000-8000-000000000010 (no extractable text)
   ⊙ Skipping audit 5eeda000-0000-4000-8000-000000000018 (no extractable text)
   ⊙ Skipping audit 5eeda000-0000-4000-8000-000000000024 (no extractable text)
   ⊙ Skipping audit 5eeda000-0000-4000-8000-000000000025 (no extractable text)" \
    "--verbose: rule 4.5 skip lines for the five audits without text"
is "$(stats_of "$OUT")" "$SEED_BLOCK" "dry run --verbose: same statistics"
is "$(b4_tables "$URI")" "$before" "dry run --verbose wrote nothing"

b4_run --dry-run --json
is "$RC" 0 "dry run --json exits 0"
is "$(printf '%s\n' "$OUT" | sed -E 's/"duration_ms":[0-9]+/"duration_ms":N/')" \
   "{\"migration\":\"$B4\",\"mode\":\"dry-run\",\"ok\":true,\"stats\":$(json_stats 3 0 20 5 25 0 0),\"errors\":[],\"duration_ms\":N}" \
   "dry run --json: one JSON object, exact stats"
is "$(b4_tables "$URI")" "$before" "dry run --json wrote nothing"

# ------------------------------------------------------------ real run
t0=$(q "$URI" "SELECT now()")
b4_run
t1=$(q "$URI" "SELECT now()")
is "$RC" 0 "real run exits 0"
is "$(stats_of "$OUT")" "$SEED_BLOCK" "real run: exactly the counts the dry run reported"
like "$OUT" $'   Mode: ✍️  APPLY\n' "real run: APPLY mode"
like "$OUT" $'═{59}\n✅ BACKFILL COMPLETE\n═{59}\n' "real run: BACKFILL COMPLETE"
like "$OUT" $'\\[4/4\\] Recording audit log...\n   ✓ Audit log recorded\n' "real run: audit log recorded"
unlike "$OUT" 'DRY RUN|Creating (conversation for|message from)' "real run without --verbose: no per-row or dry-run lines"

rows=$(q "$URI" "SELECT right(a.id::text, 2), right(c.lead_id::text, 1), m.role, m.metadata->>'textSource',
                        m.created_at, m.content
                   FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                   JOIN \"Conversation\" c ON c.id = m.conversation_id ORDER BY a.id")
is "$rows" '01|1|user|payload.text|2025-10-01 10:01:00+00|Hello, I need a quote for two oak doors.
02|1|assistant|payload.text|2025-10-01 10:02:00+00|Happy to help! What size are the doors?
03|1|user|payload.message|2025-10-01 10:03:00+00|Both are 80 by 200 cm.
04|1|system|compact_json|2025-10-01 10:04:00+00|{"to":"qualified","from":"new"}
05|1|assistant|payload.content|2025-10-01 10:05:00+00|Your quote: 2 oak doors, $960 installed.
06|1|user|payload.body|2025-10-01 10:06:00+00|Great, please go ahead.
07|1|assistant|payload.text|2025-10-01 10:07:00+00|Order confirmed. Installation is on Friday.
08|1|user|payload|2025-10-01 10:08:00+00|Thank you!
11|2|user|payload.text|2025-10-02 10:01:00+00|Hi, do you sell kitchen windows?
12|2|assistant|payload.text|2025-10-02 10:02:00+00|Yes, we do. How many do you need?
13|2|user|payload.message|2025-10-02 10:03:00+00|Three, white frames please.
14|2|assistant|payload.body|2025-10-02 10:04:00+00|I will send you a quote by email today.
15|2|system|payload|2025-10-02 10:05:00+00|Quote Q-2002 sent to tom@example.com
16|2|user|payload.content|2025-10-02 10:06:00+00|Got the quote, can you do a discount?
17|2|assistant|payload.text|2025-10-02 10:07:00+00|We can offer 5% off for three windows.
19|3|user|payload.text|2025-10-03 10:01:00+00|Is the bathroom cabinet still available?
20|3|assistant|payload.text|2025-10-03 10:02:00+00|It is. Would you like it delivered?
21|3|user|payload.message|2025-10-03 10:03:00+00|Yes, next week if possible.
22|3|assistant|payload.text|2025-10-03 10:04:00+00|Delivery booked for Tuesday morning.
23|3|user|payload.body|2025-10-03 10:05:00+00|Perfect, thanks.' "the 20 messages: audit, lead, role, text source, time, content"
is "$(q "$URI" "SELECT count(*) FROM \"Message\"")" 20 "no other message"
is "$(q "$URI" "SELECT string_agg(role || ' ' || n, ', ' ORDER BY role) FROM (SELECT role, count(*) n FROM \"Message\" GROUP BY role) r")" \
   "assistant 8, system 2, user 10" "roles: user 10, assistant 8, system 2 (as the fixture says)"

bad=$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                 WHERE m.metadata <> jsonb_build_object('auditId', a.id::text, 'auditAction', a.action,
                         'auditActor', a.actor, 'source', 'audit_backfill', 'createdBy', '$B4',
                         'textSource', m.metadata->>'textSource')
                    OR m.created_at <> a.created_at")
is "$bad" 0 "rule 5: message metadata is exactly {auditId, auditAction, auditActor, source, createdBy, textSource}"

convs=$(q "$URI" "SELECT lead_id, coalesce(customer_id::text, 'NULL'), channel, external_id, started_at,
                         last_message_at, (metadata - 'createdAt')::text
                    FROM \"Conversation\" ORDER BY lead_id")
is "$convs" "5eed0000-0000-4000-8000-000000000001|5eedc000-0000-4000-8000-000000000001|messenger|psid-1001|2025-10-01 10:00:00+00|2025-10-01 10:08:00+00|{\"source\": \"audit_backfill\", \"createdBy\": \"$B4\", \"leadStage\": \"done\"}
5eed0000-0000-4000-8000-000000000002|5eedc000-0000-4000-8000-000000000002|whatsapp|+15550002002|2025-10-02 10:00:00+00|2025-10-02 10:07:00+00|{\"source\": \"audit_backfill\", \"createdBy\": \"$B4\", \"leadStage\": \"quoted\"}
5eed0000-0000-4000-8000-000000000003|NULL|sms|+15550003003|2025-10-03 10:00:00+00|2025-10-03 10:05:00+00|{\"source\": \"audit_backfill\", \"createdBy\": \"$B4\", \"leadStage\": \"new\"}" \
    "rule 3: one conversation per lead, exact columns (last_message_at = its latest message)"
created_at=$(q "$URI" "SELECT DISTINCT metadata->>'createdAt' FROM \"Conversation\"")
like "$created_at" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$' \
    "conversation metadata createdAt is one ISO-8601 UTC time"
is "$(q "$URI" "SELECT '$created_at'::timestamptz BETWEEN '$t0'::timestamptz - interval '1 second'
                                                     AND '$t1'::timestamptz + interval '1 second'")" t \
    "createdAt is the time of the run"
is "$(q "$URI" "SELECT string_agg(DISTINCT k, ',' ORDER BY k) FROM \"Conversation\", jsonb_object_keys(metadata) k")" \
   "createdAt,createdBy,leadStage,source" "conversation metadata has exactly its four keys"

rec=$(q "$URI" "SELECT count(*), bool_and(lead_id IS NULL), string_agg(DISTINCT actor, ','),
                       bool_and(payload = jsonb_build_object('source', 'audit_backfill', 'migration', '$B4',
                                  'stats', '$(json_stats 3 0 20 5 25 0 0)'::jsonb, 'errors', '[]'::jsonb))
                  FROM \"Audit\" WHERE action = 'backfill_conversations_messages'")
is "$rec" "1|t|system|t" "rule 7: one run record: lead_id NULL, actor system, payload {source, migration, stats, errors: []}"
is "$(q "$URI" "SELECT operation || ' ' || status || ' ' || (stats->'stats' = '$(json_stats 3 0 20 5 25 0 0)'::jsonb)
                  FROM ferry.history WHERE migration = '$B4'")" "run applied true" "ferry.history: the run, applied, with its stats"
is "$(q "$URI" "SELECT count(*) FROM ferry.checkpoint")" 0 "a finished run leaves no checkpoint"

# ------------------------------------------------------------ second run
msgs=$(q "$URI" "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \"Message\" t")
conv=$(q "$URI" "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \"Conversation\" t")
b4_run --json
is "$RC" 0 "second run exits 0"
is "$(printf '%s\n' "$OUT" | sed -E 's/"duration_ms":[0-9]+/"duration_ms":N/')" \
   "{\"migration\":\"$B4\",\"mode\":\"apply\",\"ok\":true,\"status\":\"applied\",\"stats\":$(json_stats 0 3 0 25 25 0 0),\"errors\":[],\"duration_ms\":N}" \
   "second run --json: 0 created; 3 conversations and 25 audits skipped"
is "$(q "$URI" "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \"Message\" t")" "$msgs" "second run: messages unchanged"
is "$(q "$URI" "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \"Conversation\" t")" "$conv" "second run: conversations unchanged"
is "$(q "$URI" "SELECT count(*) FROM \"Audit\" WHERE action = 'backfill_conversations_messages'")" 2 "second run: its own run record"
is "$(record_stats "$URI")" "0 3 0 25 25 0 0" "second run record holds the second run's stats"
invariant_ok "$(record_stats "$URI")" && invariant_ok "$(record_stats "$URI" 2)"
ok $? "rule 6: processed = messages created + messages skipped + audits skipped + errors, both runs"

b4_run --verbose
is "$(printf '%s\n' "$OUT" | grep -c '⊙ Conversation already exists for lead ')" 3 "--verbose re-run: 'Conversation already exists' per lead"
is "$(stats_of "$OUT")" "$(stats_block 0 3 0 25 25 0 0)" "third run: statistics again 0 created"

# ------------------------------------------------------------ validate
b4 validate "$B4"
is "$RC" 0 "validate passes after the runs"
is "$(printf '%s\n' "$OUT" | grep -c '^✓ PASS ')" 8 "validate: 8 PASS lines"
unlike "$OUT" 'FAIL' "validate: no FAIL"

# ------------------------------------------------------------ the README's --json example
# The migration's README shows a real run's --json object on the seed
# (wrapped there): the same keys, in the same order, as ferry prints.
URI2=$(b4_db b4_10_seed_json "$REPO_ROOT/tests/fixtures/seed_example.sql") || bail_out "cannot build the database"
readme_json=$(awk '/^`--json` prints/ { on = 1; next } on && /^```json$/ { inb = 1; next } inb && /^```$/ { exit } inb { print }' "$B4_PATH/README.md" |
              sed -E 's/^ +//' | tr -d '\n')
OUT=$("$FERRY" --dir "$REPO_ROOT" --db "$URI2" run "$B4" --json 2>/dev/null); RC=$?
is "$RC" 0 "real run --json exits 0"
is "$(printf '%s' "$OUT" | sed -E 's/"duration_ms":[0-9]+/"duration_ms":N/')" \
   "$(printf '%s' "$readme_json" | sed -E 's/"duration_ms":[0-9]+/"duration_ms":N/')" \
   "real run --json: the object the migration's README shows, key for key"

done_testing
