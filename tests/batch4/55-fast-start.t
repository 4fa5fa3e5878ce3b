#!/usr/bin/env bash
# Batch 4's fast start: on a first run the first leads (about an eighth of
# the audits, at least min(--batch-size, 1000), cut at a lead) are read on a
# session of their own in the reader's snapshot and written while the
# reader's server sorts the rest.  Whatever the cut (no head, a head and a rest, no rest),
# the rows and the counts are those of one stream, and each batch holds
# whole leads.
. "$(dirname "$0")/lib.sh"

SEED=$REPO_ROOT/tests/fixtures/seed_example.sql     # leads ...01 (10 audits), ...02 (8), ...03 (7)
L1=5eed0000-0000-4000-8000-000000000001
L2=5eed0000-0000-4000-8000-000000000002
L3=5eed0000-0000-4000-8000-000000000003
ROWS_SQL="SELECT c.lead_id || '|' || (m.metadata->>'auditId') || '|' || m.role || '|' || coalesce(m.content, '<null>')
            FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id ORDER BY 1"
# The leads of each batch: rows a transaction wrote share its xmin.
BATCHES_SQL="SELECT string_agg(DISTINCT right(c.lead_id::text, 1), ',' ORDER BY right(c.lead_id::text, 1))
               FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
              GROUP BY m.xmin::text ORDER BY 1"

URI=$(b4_db b4_55_ref "$SEED") || bail_out "cannot build the database"
b4_run
is "$RC" 0 "reference run (every lead in the head: no rest) exits 0"
REF_ROWS=$(q "$URI" "$ROWS_SQL")
REF_STATS=$(stats_of "$OUT")
is "$(printf '%s\n' "$REF_ROWS" | wc -l | tr -d ' ')" 20 "reference: 20 messages"
is "$(q "$URI" "$BATCHES_SQL")" "1,2,3" "reference: one batch (the head) holds the three leads"

# size  the lead at that place in the index   head     batches
for case in "5|$L1|none|1 2 3" "12|$L2|1|1 2,3" "18|$L3|1,2|1,2 3" "25||1,2,3|1,2,3"; do
    IFS='|' read -r size boundary head batches <<<"$case"
    URI=$(b4_db "b4_55_$size" "$SEED") || bail_out "cannot build the database"
    is "$(q "$URI" "SELECT lead_id FROM \"Audit\" WHERE lead_id > '00000000-0000-0000-0000-000000000000'
                     ORDER BY lead_id OFFSET $size LIMIT 1")" "$boundary" \
        "--batch-size $size: the head ends before lead ${boundary:-(none: every lead)}"
    b4_run --batch-size "$size"
    is "$RC" 0 "--batch-size $size (head: leads $head): exits 0"
    is "$(stats_of "$OUT")" "$REF_STATS" "--batch-size $size: the reference counts"
    is "$(q "$URI" "$ROWS_SQL")" "$REF_ROWS" "--batch-size $size: the reference rows, each in its lead's conversation"
    is "$(q "$URI" "$BATCHES_SQL" | tr '\n' ' ' | sed 's/ $//')" "$batches" \
        "--batch-size $size: batches of whole leads, the head's leads first on their own"
    b4_run --batch-size "$size"
    like "$OUT" "Messages created: +0
" "--batch-size $size: a second run creates nothing"
done

# Runs whose default batches are smaller than the head (the last batches
# are cut down to 250 audits): no batch may go out while the head is still
# being read, on the main session.  Exact rows against the SQL yardstick.
for leads in 80 300; do
    URI=$(crm_db "b4_55_gen_$leads") || bail_out "cannot build the database"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -v leads=$leads -v audits_per_lead=10 -d "$URI" \
        -f "$REPO_ROOT/bench/generate.sql" >/dev/null || bail_out "cannot generate data"
    REF=$(crm_db "b4_55_gen_${leads}_sql") || bail_out "cannot build the database"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -v leads=$leads -v audits_per_lead=10 -d "$REF" \
        -f "$REPO_ROOT/bench/generate.sql" >/dev/null || bail_out "cannot generate data"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -v stats=off -d "$REF" -f "$REPO_ROOT/bench/backfill.sql" >/dev/null \
        || bail_out "the SQL yardstick failed"
    b4_run
    is "$RC" 0 "$((leads * 10)) audits, default batches (tapered below the head's size): exits 0"
    [ "$RC" = 0 ] || diag "$ERR"
    DIGEST="SELECT count(*) || ' ' || md5(string_agg((metadata->>'auditId') || '|' || role || '|' || coalesce(content, ''),
              E'\n' ORDER BY metadata->>'auditId')) FROM \"Message\" WHERE metadata->>'source' = 'audit_backfill'"
    is "$(q "$URI" "$DIGEST")" "$(q "$REF" "$DIGEST")" "$((leads * 10)) audits: the rows of the SQL yardstick"
done
# A head of several batches: the planner knows the table (3,000 audits: a
# head of 375), --batch-size 100.
URI=$(crm_db b4_55_gen_multi) || bail_out "cannot build the database"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -v leads=300 -v audits_per_lead=10 -d "$URI" \
    -f "$REPO_ROOT/bench/generate.sql" >/dev/null || bail_out "cannot generate data"
q "$URI" 'ANALYZE "Audit"' >/dev/null
b4_run --batch-size 100
is "$RC" 0 "a head of several batches (--batch-size 100, 375 audits in the head): exits 0"
is "$(q "$URI" "$DIGEST")" "$(q "$REF" "$DIGEST")" "... the rows of the SQL yardstick"
is "$(q "$URI" "SELECT max(n) <= 110 FROM (SELECT count(*) AS n FROM \"Message\" GROUP BY xmin::text) b")" "t" \
   "... no batch over about 100 audits, the head's included (a head of one batch would hold some 280 messages)"

# A first run where some audit has its message already, but beyond the
# first 100,000 messages (the done-audit probe looks no further): the head
# and the rest still find it.  (When the probe sees the whole table and no
# message with an auditId, the streams leave that lookup out.)
URI=$(b4_db b4_55_far "$SEED") || bail_out "cannot build the database"
q "$URI" "INSERT INTO \"Conversation\" (id, channel) VALUES ('c0ffee00-0000-4000-8000-000000000001', 'web');
          INSERT INTO \"Message\" (conversation_id, role, content)
          SELECT 'c0ffee00-0000-4000-8000-000000000001', 'user', 'live' FROM generate_series(1, 100000);
          INSERT INTO \"Message\" (conversation_id, role, content, metadata)
          VALUES ('c0ffee00-0000-4000-8000-000000000001', 'user', 'Hi, I need help with my order',
                  '{\"auditId\": \"5eeda000-0000-4000-8000-000000000001\", \"source\": \"audit_backfill\"}')" >/dev/null \
    || bail_out "cannot add the messages"
b4_run
is "$RC" 0 "an audit done beyond the first 100,000 messages: exits 0"
[ "$RC" = 0 ] || diag "$ERR"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" WHERE metadata->>'auditId' = '5eeda000-0000-4000-8000-000000000001'")" 1 \
   "... its message is not written again"
is "$(stats_of "$OUT" | sed -n 's/^   Messages created: *//p;s/^   Messages skipped: *//p' | tr '\n' ' ')" \
   "$(stats_of "$REF_STATS" | awk '/Messages created/ {c=$3-1} /Messages skipped/ {s=$3+1} END {print c " " s " "}')" \
   "... it is counted as skipped, not created"

# The same with many done audits past the probe's reach and a small
# work_mem: the lookup of done audits must stay a join (an IN (subquery)
# that no longer fits in work_mem rescans Message for every audit: hours).
# 3,000 audits; 100,000 live messages first, then the backfill's, a tenth
# of them deleted again; the next run restores exactly those.
URI=$(crm_db b4_55_far_many) || bail_out "cannot build the database"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -v leads=300 -v audits_per_lead=10 -d "$URI" \
    -f "$REPO_ROOT/bench/generate.sql" >/dev/null || bail_out "cannot generate data"
q "$URI" "INSERT INTO \"Conversation\" (id, channel) VALUES ('c0ffee00-0000-4000-8000-000000000002', 'web');
          INSERT INTO \"Message\" (conversation_id, role, content)
          SELECT 'c0ffee00-0000-4000-8000-000000000002', 'user', 'live' FROM generate_series(1, 100000)" >/dev/null \
    || bail_out "cannot add the messages"
b4_run
is "$RC" 0 "many done audits past the probe: the first run exits 0"
q "$URI" "DELETE FROM \"Message\" WHERE metadata->>'auditId' IS NOT NULL AND right(metadata->>'auditId', 1) = '0'" >/dev/null
DELETED=$(q "$URI" "SELECT count(*) FROM \"Audit\" a WHERE right(a.id::text, 1) = '0'
                     AND NOT EXISTS (SELECT 1 FROM \"Message\" m WHERE m.metadata->>'auditId' = a.id::text)
                     AND EXISTS (SELECT 1 FROM \"Lead\" l WHERE l.id = a.lead_id)")
RC=0
PGOPTIONS="-c work_mem=64kB" timeout 120 "$FERRY" --dir "$REPO_ROOT" --db "$URI" run "$B4" \
    >"$TAP_TMPDIR/run.out" 2>"$TAP_TMPDIR/run.err" || RC=$?
OUT=$(cat "$TAP_TMPDIR/run.out")
is "$RC" 0 "... the next run, work_mem 64kB: exits 0 (124: it did not finish in 2 minutes)"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" WHERE metadata->>'auditId' IS NOT NULL
                 GROUP BY metadata->>'auditId' HAVING count(*) > 1")" "" "... no audit has two messages"
like "$OUT" "Messages created: +$(q "$URI" "SELECT count(*) FROM \"Message\" WHERE metadata->>'auditId' IS NOT NULL
                                              AND right(metadata->>'auditId', 1) = '0'")
" "... it restores the messages deleted"

# A resumed run reads in one stream, without a head: some audits have
# their message already, and finding them means a scan of every message,
# which a head would only repeat.  Stopped by a failing row in lead 3 once
# lead 1 (the head) was sent, then resumed with the rule fixed.
URI=$(b4_db b4_55_resume "$SEED") || bail_out "cannot build the database"
BROKEN=$TAP_TMPDIR/broken
broken_rules "$BROKEN" "Yes, next week"
run_ferry --dir "$BROKEN" --db "$URI" run "$B4" --max-errors 0 --batch-size 12
is "$RC" 1 "a failing row in lead 3, --max-errors 0: exit 1"
is "$(q "$URI" "SELECT position #>> '{}' FROM ferry.checkpoint")" "$L1" "the checkpoint is at the head's lead"
b4_run --batch-size 12
is "$RC" 0 "the resumed run exits 0"
is "$(stats_of "$OUT")" "$REF_STATS" "resumed: the reference counts"
is "$(q "$URI" "$ROWS_SQL")" "$REF_ROWS" "resumed: the reference rows"
is "$(q "$URI" "$BATCHES_SQL" | tr '\n' ' ' | sed 's/ $//')" "1 2,3" \
    "resumed: lead 1 from the first run, then leads 2 and 3 in one stream (no head: some audits were done)"
done_testing
