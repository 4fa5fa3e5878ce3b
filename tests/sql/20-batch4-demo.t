#!/usr/bin/env bash
# pgTAP: the database after Batches 1-3, demo/data.sql and Batch 4 (the
# checks are in 20-batch4-demo.sql; psql prints their TAP).
. "$(dirname "$0")/../lib/tap.sh"
require_pg

URI=$(fresh_db b4_sql_demo) || bail_out "cannot create the database"
"$FERRY" --dir "$REPO_ROOT" --db "$URI" -q up --to 20251108 >/dev/null || bail_out "ferry up --to 20251108 failed"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$REPO_ROOT/demo/data.sql" >/dev/null || bail_out "cannot load demo/data.sql"
"$FERRY" --dir "$REPO_ROOT" --db "$URI" -q run 20251110_backfill_conversations_messages >/dev/null \
    || bail_out "Batch 4 failed"
# psql prints the plan and the results; the exit trap cleans up after it
"$PSQL" -X -q -t -A -v ON_ERROR_STOP=1 -d "$URI" -f "$(dirname "$0")/20-batch4-demo.sql"
exit $?
