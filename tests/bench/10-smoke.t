#!/usr/bin/env bash
# Issue 6: the benchmark at CI size, as a smoke test of correctness only
# (ferry's rows equal the plain-SQL yardstick's; no timing is asserted:
# timings belong in make bench).
. "$(dirname "$0")/../lib/tap.sh"
require_pg
out=$(BENCH_SIZES=10000 BENCH_MODES="sql ferry ferry-rerun ferry-dry-run" BENCH_RESULTS="$TAP_TMPDIR/results" \
      bash "$REPO_ROOT/bench/run.sh" 2>&1)
rc=$?
is "$rc" 0 "bench/run.sh at 10000 audits succeeds" || diag "$out"
like "$out" "rows equal to sql: 7529 " "ferry's messages and conversations equal the SQL yardstick's"
like "$out" "\(ferry: median of 3 runs: [0-9.]+ [0-9.]+ [0-9.]+ s\)" "small sizes: each mode runs three times, the median is reported"
for mode in sql ferry ferry-rerun ferry-dry-run batch5-run batch5-rerun; do
    like "$out" "10000 +$mode +[0-9.]+ " "the table has a $mode row"
done
json=$(ls "$TAP_TMPDIR"/results/*.json)
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["results"]) == 6, d' "$json"
ok $? "the JSON results parse, one entry per row"
done_testing
