#!/usr/bin/env bash
# bench/time-migration.sh LABEL MIGRATION -- times one data migration on the
# database in DATABASE_URL: `ferry run MIGRATION` (the first run), then the
# same again (the re-run, which should find everything done), and prints one
# line each:
#
#   LABEL run <seconds> <rows/s>
#   LABEL rerun <seconds> <rows/s>
#
# rows/s = the rows BENCH_COUNT_SQL counts (default: every lead) / seconds.
# Environment: DATABASE_URL (required), FERRY (default bin/ferry), FERRY_DIR
# (the --dir holding migrations/ and rules/; default the checkout),
# BENCH_FERRY_ARGS (extra flags, e.g. "--batch-size 20000").  A failing run
# prints ferry's output on stderr and exits 1.
#
# A batch's bench entry is a few lines calling this; see bench/batch5.sh.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 LABEL MIGRATION" >&2; exit 2; }
label=$1 migration=$2
cd "$(dirname "$0")/.."
root=$(pwd -P)
FERRY=${FERRY:-$root/bin/ferry}
FERRY_DIR=${FERRY_DIR:-$root}
PSQL=/usr/lib/postgresql/15/bin/psql
[ -x "$PSQL" ] || PSQL=psql
: "${DATABASE_URL:?DATABASE_URL is not set (the database to run on)}"
read -r -a ARGS <<<"${BENCH_FERRY_ARGS:-}"

rows=$("$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c "${BENCH_COUNT_SQL:-SELECT count(*) FROM \"Lead\"}")

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for mode in run rerun; do
  t0=$(date +%s.%N)
  if ! "$FERRY" --dir "$FERRY_DIR" --db "$DATABASE_URL" --quiet run "$migration" "${ARGS[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "$0: ferry run $migration failed ($mode)" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  awk -v l="$label" -v m="$mode" -v a="$t0" -v b="$t1" -v n="$rows" \
    'BEGIN { s = b - a; if (s <= 0) s = 0.000001; printf "%s %s %.2f %.0f\n", l, m, s, n / s }'
done
