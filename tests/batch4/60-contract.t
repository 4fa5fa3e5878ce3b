#!/usr/bin/env bash
# Issue 3 "The database": a user's database is the contract schema
# (../shared/contract/schema.sql) with no ferry history.  Batch 4 must run on
# it after `ferry baseline 20251108` + `ferry up`, and with `ferry run`
# directly, giving the same rows as on a database ferry built itself.  The
# contract is only read by this test, when it exists (CI has ../shared beside
# the repo); otherwise these assertions are skipped.
. "$(dirname "$0")/lib.sh"

N=26
plan_with_contract $N

# What Batch 4 wrote, without the ids and times that differ between runs.
result() {
    q "$1" "SELECT 'M', md5(string_agg(concat_ws('|', m.metadata->>'auditId', m.role, m.content, m.created_at,
                          m.metadata - 'auditId', c.lead_id), ',' ORDER BY m.metadata->>'auditId'))
              FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
            UNION ALL
            SELECT 'C', md5(string_agg(concat_ws('|', lead_id, customer_id, channel, external_id, started_at,
                          last_message_at, metadata - 'createdAt'), ',' ORDER BY lead_id))
              FROM \"Conversation\""
}
contract_db() {
    local uri
    uri=$(fresh_db "$1") || return 1
    "$PSQL" -X -q -1 -v ON_ERROR_STOP=1 -d "$uri" -f "$CONTRACT" >/dev/null || return 1
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$uri" -f "$REPO_ROOT/demo/data.sql" >/dev/null || return 1
    printf '%s\n' "$uri"
}

# The reference: ferry's own Batches 1-3 on an empty database.
URI=$(b4_db b4_60_ref "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the reference database"
b4_run -q
is "$RC" 0 "reference: Batch 4 on a ferry-built database"
want=$(result "$URI")

# ------------------------------------------------------------ baseline + up
URI=$(contract_db b4_60_baseline) || bail_out "cannot build a database from the contract"
is "$(q "$URI" "SELECT to_regnamespace('ferry') IS NULL")" t "contract database: no ferry history"
# a dry run of up tells in advance that Batch 1 would fail, and what to do
b4 up --dry-run
is "$RC" 1 "ferry up --dry-run on the contract database: exit 1 ..."
like "$ERR" "migrations/20251101_schema/up.sql: a dry run: the script would fail: relation \"Customer\" already exists \\(and [0-9]+ more of what it creates\\); .*'ferry baseline VERSION'" \
     "... Batch 1 would fail on what the database has: baseline"
b4 baseline 20251108
is "$RC" 0 "ferry baseline 20251108 exits 0"
is "$(printf '%s\n' "$OUT" | grep -c '^baselined ')" 3 "Batches 1-3 baselined"
b4 status
like "$OUT" "$B4 +pending" "status: Batch 4 pending"
like "$OUT" "20251108_link_customers +applied .*baseline" "status: Batch 3 applied by baseline"
b4 up
is "$RC" 0 "ferry up exits 0"
like "$OUT" "==> $B4" "ferry up ran Batch 4 ..."
unlike "$OUT" "==> 2025110[158]" "... and only Batch 4"
is "$(stats_of "$OUT")" "$(stats_block 4 1 21 10 33 2 0)" "the demo's counts"
is "$(result "$URI")" "$want" "same messages and conversations as on the ferry-built database"
b4 validate "$B4"
is "$RC" 0 "validate passes"
is "$(printf '%s\n' "$OUT" | grep -c '^✓ PASS ')" 8 "8 PASS lines"
b4 up
is "$RC" 0 "a second ferry up exits 0"
like "$OUT" "Nothing to do" "... with nothing to do"
b4 status
like "$OUT" "$B4 +applied" "status: Batch 4 applied"

# ------------------------------------------------------------ run directly
URI=$(contract_db b4_60_run) || bail_out "cannot build a database from the contract"
b4_run --dry-run
is "$RC" 0 "ferry run --dry-run on the contract database"
is "$(q "$URI" "SELECT to_regnamespace('ferry') IS NULL")" t "the dry run left no trace, not even ferry's schema"
b4_run
is "$RC" 0 "ferry run directly on the contract database exits 0"
is "$(stats_of "$OUT")" "$(stats_block 4 1 21 10 33 2 0)" "the demo's counts"
is "$(result "$URI")" "$want" "same rows as on the ferry-built database"
b4 validate "$B4"
is "$RC" 0 "validate passes"
out=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$B4_PATH/rollback.sql" 2>&1)
is "$?" 0 "rollback.sql under psql on it"
is "$(q "$URI" "SELECT (SELECT count(*) FROM \"Message\") || ' ' || (SELECT count(*) FROM \"Conversation\")")" "1 1" \
   "back to the live conversation and its message"

done_testing
