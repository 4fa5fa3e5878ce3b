#!/usr/bin/env bash
# bench/batch5.sh -- times Batch 5 (20251115_backfill_memory_notes) on the
# database in DATABASE_URL, which holds leads with state_metadata (e.g. from
# bench/generate.sql) and no Batch 5 notes yet:
#
#   DATABASE_URL=postgresql:///bench?host=... bash bench/batch5.sh
#
# prints, for `make bench` to collect (leads/s counts every lead streamed,
# processed or skipped):
#
#   batch5 run <seconds> <leads/s>       the first run: every note created
#   batch5 rerun <seconds> <leads/s>     the re-run: every note compared, none written
#
# Environment: FERRY, FERRY_DIR, BENCH_FERRY_ARGS as bench/time-migration.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
M5=20251115_backfill_memory_notes
PSQL=/usr/lib/postgresql/15/bin/psql
[ -x "$PSQL" ] || PSQL=psql
: "${DATABASE_URL:?DATABASE_URL is not set (the database with the generated leads)}"
existing=$("$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c \
  "SELECT count(*) FROM \"MemoryNote\" WHERE metadata->>'createdBy' = '$M5'")
if [ "$existing" != 0 ]; then
  echo "bench/batch5.sh: warning: $existing Batch 5 notes exist already; the first run is not a first run" >&2
fi
exec bash bench/time-migration.sh batch5 "$M5"
