#!/usr/bin/env bash
# A db.pipeline the script never finished (no pipe:finish(), not a
# <close> variable): its batches in flight are rolled back, so the run must
# fail -- whether the pipeline is still reachable when the script returns
# or the garbage collector already dropped it -- with a line naming the
# pipeline, and keep its checkpoint; never "applied" with rows missing.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg
plan 14

db=$(fresh_db ferry_cli_pipeline_unfinished)
export DATABASE_URL=$db
psql_val "$db" "CREATE TABLE src (id int PRIMARY KEY); INSERT INTO src SELECT generate_series(1, 10);
                CREATE TABLE dst (id int PRIMARY KEY)" >/dev/null
D=$TAP_TMPDIR/proj
# $1: what the script does at its end
up() {
    put "$D/migrations/20250101_pipe/up.lua" "stats.declare{'rows'}
local pipe = db.pipeline{jobs = 2, dry_run = ctx.dry_run, checkpoint = ctx.checkpoint}
local read = db.connect()
local buf, n = db.buffer(), 0
for r in read:rows('SELECT id FROM src WHERE id > \$1 ORDER BY id', ctx.checkpoint.get() or 0) do
  buf:put(r.id); n = n + 1; stats.inc('rows')
  if n % 2 == 0 then pipe:send{copies = {{sql = 'COPY dst (id) FROM STDIN', buffer = buf}}, position = r.id}; buf:clear() end
end
read:close()
$1
"
}
MSG='ferry: 20250101_pipe: a db.pipeline still had batches in flight when the script ended; they were rolled back (end it with pipe:finish(), or declare it `local pipe <close> = db.pipeline{...}`)'

# 1. still reachable at the end
up ''
run_ferry --dir "$D" run 20250101_pipe
is "$RC" 1 "unfinished pipeline: exit 1"
is "$ERR" "$MSG" "one line naming the pipeline, not 'use db.transaction'"
is "$(history "$db")" "20250101_pipe|run|failed" "recorded failed"
is "$(psql_val "$db" "SELECT count(*) FROM dst")" 6 "the committed batches stay (3 of 5)"
is "$(psql_val "$db" "SELECT position FROM ferry.checkpoint")" 6 "the checkpoint stays at the last committed batch"

# 2. dropped and collected before the script returns
psql_val "$db" "TRUNCATE dst; DELETE FROM ferry.checkpoint; DELETE FROM ferry.history" >/dev/null
up 'pipe = nil
collectgarbage(); collectgarbage()'
run_ferry --dir "$D" run 20250101_pipe
is "$RC" 1 "a pipeline collected unfinished: exit 1, not applied"
is "$ERR" "$MSG" "the same line"
is "$(history "$db")" "20250101_pipe|run|failed" "recorded failed, not applied"
is "$(psql_val "$db" "SELECT count(*) FROM ferry.checkpoint")" 1 "the checkpoint is kept"

# 3. the re-run (fixed) resumes and completes: every row once
up 'pipe:finish()'
run_ferry --dir "$D" run 20250101_pipe
is "$RC" 0 "finished pipeline: exit 0"
is "$(psql_val "$db" "SELECT count(*) || ',' || count(DISTINCT id) FROM dst")" "10,10" "every row exactly once"

# 4. a dry run has no batches in flight: no complaint
up ''
run_ferry --dir "$D" run 20250101_pipe --dry-run
is "$RC|$ERR" "0|" "dry run of an unfinished pipeline: nothing was in flight"

# 5. ferry exec says the same
put "$TAP_TMPDIR/x.lua" "db.exec('CREATE TEMP TABLE x (a int)')
local pipe = db.pipeline{jobs = 1}
local buf = db.buffer(); buf:put(1)
pipe:send{copies = {{sql = 'COPY x (a) FROM STDIN', buffer = buf}}}
"
run_ferry exec "$TAP_TMPDIR/x.lua"
is "$RC" 1 "exec: exit 1"
like "$ERR" 'x\.lua: a db\.pipeline still had batches in flight when the script ended' "exec: the same message"
