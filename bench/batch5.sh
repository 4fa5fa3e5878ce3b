#!/usr/bin/env bash
# bench/batch5.sh -- times Batch 5 (20251115_backfill_memory_notes) on the
# database in DATABASE_URL, which holds leads with state_metadata (e.g. from
# bench/generate.sql) and no Batch 5 notes yet:
#
#   DATABASE_URL=postgresql:///bench?host=... bash bench/batch5.sh
#
# Runs `ferry run 20251115_backfill_memory_notes` (the first run: every note
# created) and then again (the re-run: every note compared, none written),
# and prints one line each, for `make bench` to collect:
#
#   batch5 run <seconds> <leads/s>
#   batch5 rerun <seconds> <leads/s>
#
# leads/s counts every lead the run streams (processed and skipped).
# Environment: FERRY (default bin/ferry), BENCH_FERRY_ARGS (extra flags, e.g.
# "--batch-size 20000").  Exits non-zero, printing ferry's error, if a run
# fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
FERRY=${FERRY:-$root/bin/ferry}
PSQL=/usr/lib/postgresql/15/bin/psql
[ -x "$PSQL" ] || PSQL=psql
: "${DATABASE_URL:?DATABASE_URL is not set (the database with the generated leads)}"
M5=20251115_backfill_memory_notes
read -r -a ARGS <<<"${BENCH_FERRY_ARGS:-}"

leads=$("$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c 'SELECT count(*) FROM "Lead"')
existing=$("$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c \
  "SELECT count(*) FROM \"MemoryNote\" WHERE metadata->>'createdBy' = '$M5'")
if [ "$existing" != 0 ]; then
  echo "bench/batch5.sh: warning: $existing Batch 5 notes exist already; the first run is not a first run" >&2
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for mode in run rerun; do
  t0=$(date +%s.%N)
  if ! "$FERRY" --dir "$root" --db "$DATABASE_URL" --quiet run "$M5" "${ARGS[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "bench/batch5.sh: ferry run $M5 failed ($mode)" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  awk -v m="$mode" -v a="$t0" -v b="$t1" -v n="$leads" \
    'BEGIN { s = b - a; if (s <= 0) s = 0.000001; printf "batch5 %s %.2f %.0f\n", m, s, n / s }'
done
