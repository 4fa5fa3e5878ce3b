#!/usr/bin/env bash
# Ctrl-C as a db.pipeline batch's COMMIT waits for its reply: the COMMIT
# goes through (the server had run it when the cancel came), and the
# interruption is raised at the first Lua instruction after it.  Before,
# that instruction came before the pipeline counted the batch committed,
# so the failed run's line and its history row counted one batch less
# than the table and the checkpoint hold (a re-run, resuming from the
# checkpoint, totalled right).
#
# A proxy in front of the server (held-lib.sh) holds the reply to the
# COMMIT of the third batch until the Ctrl-C's cancel has gone through it:
# the first COMMIT after the checkpoint that batch saves in its
# transaction, just before it (its counters, rows_created 30, mark it).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_held_batch)
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_fill/up.lua" 'db.exec("CREATE TABLE IF NOT EXISTS pipe_t (id int, tag text)")
stats.declare{"rows_created"}
local buf = db.buffer()
local pipe <close> = db.pipeline{jobs = ctx.jobs, checkpoint = ctx.checkpoint}
for b = (ctx.checkpoint.get() or 0) + 1, 5 do
  buf:clear()
  for i = 1, 10 do
    buf:put(b * 100 + i, "x")
    stats.inc("rows_created")
  end
  pipe:send{copies = {{sql = "COPY pipe_t (id, tag) FROM STDIN", buffer = buf}}, position = b}
end
pipe:finish()
'
HELD_DB=ferry_robust_held_batch
. "$(dirname "$0")/held-lib.sh"

held '["rows_created",30]' COMMIT --jobs 1 run 20250101
is "$RC" 130 "Ctrl-C as batch 3's COMMIT went through: exit 130"
is "$(psql_val "$db" "SELECT count(*) FROM pipe_t")|$(psql_val "$db" "SELECT position FROM ferry.checkpoint WHERE migration = '20250101_fill'")" \
   "30|3" "three batches are committed, the checkpoint at the third"
is "$ERR" "ferry: 20250101_fill: interrupted (SIGINT); the run had got to: rows_created=30 (everything up to the last checkpoint is committed); re-run to resume" \
   "the line counts the three batches committed"
is "$(psql_val "$db" "SELECT status || '|' || (stats->'stats'->>'rows_created') FROM ferry.history WHERE migration = '20250101_fill'")" \
   "failed|30" "the history row counts them too"

run_ferry --db "$db" --dir "$D" --json run 20250101
is "$RC|$(json_eval "$OUT" 'j["stats"]')" '0|{"rows_created":50}' "the re-run resumes and totals the five batches"
is "$(psql_val "$db" "SELECT count(*) FROM pipe_t")" 50 "...which the table holds"

# --- the same with two writers (the batch's COMMIT comes a turn later)
psql_val "$db" "DROP TABLE pipe_t; DELETE FROM ferry.checkpoint; DELETE FROM ferry.history" >/dev/null
held '["rows_created",30]' COMMIT --jobs 2 run 20250101
is "$RC" 130 "two writers: exit 130"
committed=$(psql_val "$db" "SELECT count(*) FROM pipe_t")
is "$committed|$(psql_val "$db" "SELECT position FROM ferry.checkpoint WHERE migration = '20250101_fill'")" \
   "30|3" "two writers: three batches committed, the checkpoint at the third"
is "$ERR" "ferry: 20250101_fill: interrupted (SIGINT); the run had got to: rows_created=30 (everything up to the last checkpoint is committed); re-run to resume" \
   "two writers: the line counts them"
is "$(psql_val "$db" "SELECT stats->'stats'->>'rows_created' FROM ferry.history WHERE migration = '20250101_fill'")" \
   30 "two writers: the history row counts them"
done_testing
