#!/usr/bin/env bash
# make bench: Batch 4 as plain SQL (the yardstick) against ferry, side by
# side, each from the same fresh copy of generated data (CREATE DATABASE
# ... TEMPLATE).  Prints a table and writes bench/results/<time>.json.
#   BENCH_SIZES   audits per size (default "10000 100000 1000000"), ten per lead
#   BENCH_MODES   default "sql ferry ferry-rerun ferry-dry-run naive" (naive only
#                 at the smallest size)
#   BENCH_FERRY_ARGS  extra flags for ferry (e.g. "--jobs 2 --batch-size 20000")
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
FERRY=${FERRY:-$root/bin/ferry}
PSQL=/usr/lib/postgresql/15/bin/psql
[ -x "$PSQL" ] || PSQL=psql
: "${DATABASE_URL:?DATABASE_URL is not set (run through make bench)}"
SIZES=${BENCH_SIZES:-10000 100000 1000000}
MODES=${BENCH_MODES:-sql ferry ferry-rerun ferry-dry-run naive}
ARGS=${BENCH_FERRY_ARGS:-}
M4=20251110_backfill_conversations_messages
results=${BENCH_RESULTS:-bench/results}
mkdir -p "$results"
out=$results/$(date -u +%Y%m%dT%H%M%SZ).json
smallest=$(printf '%s\n' $SIZES | sort -n | head -1)

# A URI for database $1 on the same server.
db_url() {
  python3 - "$DATABASE_URL" "$1" <<'PY'
import sys, urllib.parse as u
url, name = sys.argv[1], sys.argv[2]
p = u.urlsplit(url)
print(p.scheme + "://" + p.netloc + "/" + name + ("?" + p.query if p.query else ""))
PY
}
q() { "$PSQL" "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }

# Times a command; sets SECS and RSS_KB (peak resident set of the process).
timed() {
  local t0 t1 tf
  tf=$(mktemp)
  t0=$(now)
  /usr/bin/time -f '%M' -o "$tf" "$@" >/dev/null
  t1=$(now)
  SECS=$(echo "$t1 - $t0" | bc -l)
  RSS_KB=$(tail -1 "$tf")
  rm -f "$tf"
}

# The rows Batch 4 produced, as one digest: (auditId, role, content).
digest() {
  "$PSQL" "$1" -X -A -t -q -c "SELECT count(*) || ' ' || md5(coalesce(string_agg(
      (metadata->>'auditId') || '|' || role || '|' || coalesce(content, '<null>'), E'\n'
      ORDER BY metadata->>'auditId'), ''))
    FROM \"Message\" WHERE metadata->>'source' = 'audit_backfill'"
}

printf '%-9s %-14s %9s %10s %9s %9s\n' size mode seconds audits/s vs_sql rss_MB
echo '{"machine": "'"$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m)"'", "results": [' > "$out"
first=1
emit() { # size mode secs rss_kb ratio
  local rate mb
  rate=$(echo "$1 / $3" | bc -l)
  mb=$( [ -n "$4" ] && echo "$4 / 1024" | bc -l || echo 0)
  printf '%-9s %-14s %9.2f %10.0f %9s %9s\n' "$1" "$2" "$3" "$rate" "$5" "$( [ -n "$4" ] && printf '%.1f' "$mb" || echo -)"
  [ $first = 1 ] || echo ',' >> "$out"
  first=0
  printf '{"size": %s, "mode": "%s", "seconds": %.3f, "audits_per_s": %.0f, "ratio_to_sql": "%s", "peak_rss_kb": %s}' \
    "$1" "$2" "$3" "$rate" "$5" "${4:-null}" >> "$out"
}

for size in $SIZES; do
  leads=$((size / 10))
  tpl=bench_tpl_$size
  q -c "DROP DATABASE IF EXISTS $tpl" -c "CREATE DATABASE $tpl"
  tpl_url=$(db_url "$tpl")
  "$FERRY" --db "$tpl_url" --quiet up --to 20251105
  "$PSQL" "$tpl_url" -X -q -v ON_ERROR_STOP=1 -v leads=$leads -v audits_per_lead=10 -f bench/generate.sql
  "$PSQL" "$tpl_url" -X -q -c 'VACUUM ANALYZE'
  sql_secs=""
  sql_digest=""
  for mode in $MODES; do
    # the per-row loop is quadratic (a scan of Message per audit): smallest size only, at most 20000
    [ "$mode" = naive ] && { [ "$size" != "$smallest" ] || [ "$size" -gt 20000 ]; } && continue
    [ "$mode" = ferry-rerun ] && continue          # runs right after "ferry"
    db=bench_${mode//-/_}_$size
    q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db TEMPLATE $tpl"
    url=$(db_url "$db")
    case $mode in
      sql)   timed "$PSQL" "$url" -X -q -v ON_ERROR_STOP=1 -v stats=off -f bench/backfill.sql
             sql_secs=$SECS; sql_digest=$(digest "$url"); RSS_KB="" ;;
      ferry) timed "$FERRY" --db "$url" --quiet run $M4 $ARGS ;;
      ferry-dry-run) timed "$FERRY" --db "$url" --quiet run $M4 --dry-run $ARGS ;;
      naive) timed "$FERRY" --db "$url" --quiet exec bench/naive.lua ;;
    esac
    ratio=$( [ -n "$sql_secs" ] && printf '%.2f' "$(echo "$SECS / $sql_secs" | bc -l)" || echo -)
    emit "$size" "$mode" "$SECS" "$RSS_KB" "$ratio"
    if [ "$mode" = ferry ]; then
      d=$(digest "$url")
      if [ -n "$sql_digest" ] && [ "$d" != "$sql_digest" ]; then
        echo "bench: ferry's rows differ from the sql rows at size $size: $d vs $sql_digest" >&2
        exit 1
      fi
      [ -n "$sql_digest" ] && echo "          rows equal to sql: $d"
      first_secs=$SECS
      if [[ " $MODES " == *" ferry-rerun "* ]]; then
        timed "$FERRY" --db "$url" --quiet run $M4 $ARGS
        emit "$size" ferry-rerun "$SECS" "$RSS_KB" "$(printf '%.2f' "$(echo "$SECS / $sql_secs" | bc -l)")"
        echo "          re-run / first run: $(printf '%.2f' "$(echo "$SECS / $first_secs" | bc -l)")"
      fi
    fi
    q -c "DROP DATABASE IF EXISTS $db"
  done
  # Batch 5 on the same data (its leads carry state_metadata): first run and re-run.
  if [[ " $MODES " == *" ferry "* ]]; then
    db=bench_batch5_$size
    q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db TEMPLATE $tpl"
    while read -r label mode secs rate; do
      printf '%-9s %-14s %9.2f %10.0f %9s %9s   (%s leads/s)\n' "$size" "batch5-$mode" "$secs" "$(echo "$size / $secs" | bc -l)" - - "$rate"
      echo ',' >> "$out"
      printf '{"size": %s, "mode": "batch5-%s", "seconds": %.3f, "leads_per_s": %.0f}' "$size" "$mode" "$secs" "$rate" >> "$out"
    done < <(DATABASE_URL=$(db_url "$db") bash bench/batch5.sh | grep '^batch5 ')
    q -c "DROP DATABASE IF EXISTS $db"
  fi
  q -c "DROP DATABASE IF EXISTS $tpl"
done
echo ']}' >> "$out"
echo "results: $out"
