#!/usr/bin/env bash
# bench/batch5.sh on a small generated data set (bench/generate.sql): two
# lines "batch5 <mode> <seconds> <leads/s>", and the runs it timed did the
# work (first run creates, re-run creates nothing).
. "$(dirname "$0")/lib.sh"

URI=$(fresh_db b5_90_bench) || bail_out "cannot create the database"
"$FERRY" --dir "$REPO_ROOT" --db "$URI" -q up --to 20251105 >/dev/null || bail_out "schema"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -v leads=400 -v audits_per_lead=0 -f "$REPO_ROOT/bench/generate.sql" >/dev/null \
    || bail_out "bench/generate.sql failed"

out=$(DATABASE_URL=$URI bash "$REPO_ROOT/bench/batch5.sh" 2>"$TAP_TMPDIR/err")
ok $? "bench/batch5.sh exits 0"
like "$out" $'^batch5 run [0-9]+\.[0-9]{2} [0-9]+\nbatch5 rerun [0-9]+\.[0-9]{2} [0-9]+$' "two lines: batch5 <mode> <seconds> <leads/s>"
is "$(cat "$TAP_TMPDIR/err")" "" "nothing on stderr"
# generate.sql: lead g % 4 = 0 has no state_metadata, 1 gives 6 leaves,
# 2 gives 2, 3 only blanks and empty containers (processed, no leaf)
is "$(record_stats "$URI" 2)" "300 100 800 0 0 0" "the timed first run created every note"
is "$(record_stats "$URI" 1)" "300 100 0 0 800 0" "the timed re-run created nothing"

out=$(DATABASE_URL=$URI bash "$REPO_ROOT/bench/batch5.sh" 2>&1 >/dev/null)
like "$out" 'warning: 800 Batch 5 notes exist already' "it warns when the first run cannot be a first run"

done_testing
