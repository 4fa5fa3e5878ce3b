#!/usr/bin/env bash
# Issue 6: the benchmark at CI size, as a smoke test of correctness only
# (ferry's rows equal the plain-SQL yardstick's; no timing is asserted:
# timings belong in make bench).
. "$(dirname "$0")/../lib/tap.sh"
require_pg
out=$(BENCH_SIZES=10000 BENCH_MODES="sql ferry ferry-rerun ferry-dry-run copy copy-2" BENCH_RESULTS="$TAP_TMPDIR/results" \
      bash "$REPO_ROOT/bench/run.sh" 2>&1)
rc=$?
is "$rc" 0 "bench/run.sh at 10000 audits succeeds" || diag "$out"
like "$out" "rows equal to sql: 7529 " "ferry's messages and conversations equal the SQL yardstick's"
like "$out" "\(ferry: median of 3 runs: [0-9.]+ [0-9.]+ [0-9.]+ s\)" "small sizes: each mode runs three times, the median is reported"
for mode in sql ferry ferry-rerun ferry-dry-run copy copy-2 batch5-run batch5-rerun; do
    like "$out" "10000 +$mode +[0-9.]+ " "the table has a $mode row"
done
json=$(ls "$TAP_TMPDIR"/results/*.json)
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["results"]) == 8, d' "$json"
ok $? "the JSON results parse, one entry per row"
# The copy modes load the rows ferry made (the digest check holds them to
# the SQL's too) and say how far any method could go.
unlike "$out" "rows differ" "the plain COPY of ferry's rows gives the SQL's rows"
like "$out" "\(copy at 10000: [0-9.]+ s, ferry / copy = [0-9.]+\)" "ferry against a plain COPY of its rows is reported"
like "$out" "\(copy-2 at 10000: [0-9.]+ s, ferry / copy-2 = [0-9.]+\)" "and against two sessions' COPY"
# Without the ferry mode there are no rows to load: said, not failed.
out=$(BENCH_SIZES=1000 BENCH_MODES="sql copy" BENCH_REPEAT=1 BENCH_RESULTS="$TAP_TMPDIR/results2" \
      bash "$REPO_ROOT/bench/run.sh" 2>&1)
is "$?" 0 "copy without ferry: the benchmark still succeeds" || diag "$out"
like "$out" "\(copy: left out: it loads the rows of the ferry mode, which has not run at this size\)" "and says why copy is left out"
unlike "$out" "1000 +copy " "no copy row then"
done_testing
