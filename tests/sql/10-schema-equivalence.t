#!/usr/bin/env bash
# The schema ferry's Batches 1-2 build from an empty database equals the
# contract users have (../shared/contract/schema.sql), by
# tests/sql/schema_equivalence.sh.  The contract is read only here, when it
# exists beside the repo (CI); otherwise the assertions are skipped.
. "$(dirname "$0")/../lib/tap.sh"
require_pg

N=7
plan_with_contract $N
EQ=$REPO_ROOT/tests/sql/schema_equivalence.sh

A=$(fresh_db b4_eq_contract) || bail_out "cannot create database"
B=$(fresh_db b4_eq_ferry) || bail_out "cannot create database"
"$FERRY" --dir "$REPO_ROOT" --db "$B" -q up --to 20251105 >/dev/null
ok $? "ferry up --to 20251105 on an empty database"

out=$(bash "$EQ" --load-a "$CONTRACT" "$A" "$B" 2>&1)
rc=$?
is "$rc" 0 "contract vs ferry up --to 20251105: identical public schemas"
[ "$rc" = 0 ] || diag "$out"
like "$out" '^schema_equivalence: identical \([0-9]+ catalog facts\)$' "the comparison reports identical"

"$FERRY" --dir "$REPO_ROOT" --db "$B" -q up --to 20251108 >/dev/null
ok $? "ferry up --to 20251108 (Batch 3 is data only)"
out=$(bash "$EQ" -q "$A" "$B" 2>&1)
is "$?|$out" "0|" "still identical after Batch 3"

# The comparison has teeth: without Batch 2 the FTS indexes are missing.
C=$(fresh_db b4_eq_partial) || bail_out "cannot create database"
"$FERRY" --dir "$REPO_ROOT" --db "$C" -q up --to 20251101 >/dev/null
out=$(bash "$EQ" "$A" "$C" 2>&1)
is "$?" 1 "contract vs Batch 1 alone: different (exit 1)"
like "$out" $'\n-index "Message"\\."Message_content_fts_idx"' "... the diff names the missing FTS index"

done_testing
