#!/usr/bin/env bash
# Mistakes an author makes writing a migration with the plain API (found by
# writing two batches from the docs alone): each fails saying what is wrong
# instead of passing or failing obscurely.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_author_mistakes)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj

# 1. A check that gives a count, or a text, where a boolean belongs: Lua
# takes 0 (and "") for true, so check("no orphans", r.n) passed whatever
# it counted.
put "$D/migrations/20250101_checks/up.lua" 'stats.inc("n")'
put "$D/migrations/20250101_checks/validate.lua" 'check("count given (fn)", function() return db.one("SELECT 5 AS n").n end)
check("count given (value)", db.one("SELECT 0 AS n").n)
check("text given", function() return "3 missing", "detail" end)
check("comparison", function() local n = db.one("SELECT 0 AS n").n return n == 0, n .. " missing" end)
check("row given", db.one("SELECT 1 AS one"))
check("nil given", function() end)'
run_ferry --dir "$D" -q run 20250101_checks
is "$RC" 0 "the migration runs"
run_ferry --dir "$D" validate 20250101_checks
is "$RC" 1 "validate: exit 1"
is "$OUT" '==> validating 20250101_checks
✗ FAIL count given (fn)  (it gave 5, a number, not true or false: Lua takes every number (0 too) for true, so it would pass whatever it found; give a comparison (n == 0, n .. " found"))
✗ FAIL count given (value)  (it gave 0, a number, not true or false: Lua takes every number (0 too) for true, so it would pass whatever it found; give a comparison (n == 0, n .. " found"))
✗ FAIL text given  (it gave "3 missing", a string, not true or false: Lua takes every string ("" too) for true, so it would pass whatever it found; give a comparison (n == 0, n .. " found"); detail)
✓ PASS comparison  (0 missing)
✓ PASS row given
✗ FAIL nil given
6 check(s), 4 failed' "a number or a string given as a check's result fails, saying why; a comparison, a row, nil as before"
run_ferry --dir "$D" --json validate 20250101_checks
is "$(json_eval "$OUT" '[c["ok"] for c in j["checks"]]')" '[false,false,false,true,true,false]' "--json: the same verdicts"

# 2. A write in a dry run: the server's read-only error, and what it means
# here (a script's write, which only the real run may do).
put "$D/migrations/20250102_writes/up.lua" 'stats.declare{"rows_written"}
stats.inc("rows_written")
db.exec("CREATE TABLE written (n int)")'
run_ferry --dir "$D" run 20250102_writes --dry-run
is "$RC" 1 "a dry run that writes: exit 1"
is "$(printf '%s\n' "$ERR" | tail -n 1)" "ferry: migrations/20250102_writes/up.lua:3: query failed: cannot execute CREATE TABLE in a read-only transaction [SQLSTATE 25006]; this is a dry run (--dry-run): every session is read-only and the script wrote: do its writes only in the real run (if not ctx.dry_run then ... end) and count where it decides, so that the dry run reports the real run's counts" \
   "...says that the script wrote in a dry run and what to do"
run_ferry --dir "$D" up --dry-run
is "$(printf '%s\n' "$ERR" | tail -n 1)" "ferry: migrations/20250102_writes/up.lua:3: query failed: cannot execute CREATE TABLE in a read-only transaction [SQLSTATE 25006]; this is a dry run (--dry-run): every session is read-only and the script wrote: do its writes only in the real run (if not ctx.dry_run then ... end) and count where it decides, so that the dry run reports the real run's counts" \
   "...up --dry-run too"
run_ferry --dir "$D" -q run 20250102_writes
is "$RC|$ERR" "0|" "the real run writes"

# 3. A run that saves its checkpoints itself (ctx.checkpoint.save inside its
# db.transaction, as lua-api.md's example) and fails part way reports what
# it committed, as a db.pipeline run does: before, the counters of the rows
# it had mapped past its last commit, which its history row kept and its
# resumed run did not restore.
psql_val "$db" "CREATE TABLE dst (id int PRIMARY KEY)" >/dev/null
put "$D/migrations/20250103_batches/up.lua" 'stats.declare{"rows_seen", "rows_written"}
local last = ctx.checkpoint.get() or 0
local fail_at = tonumber(os.getenv("FAIL_AT") or "0")
local batch = {}
local function flush()
  if #batch == 0 then return end
  db.transaction(function()
    db.copy_rows("COPY dst (id) FROM STDIN", batch)
    stats.inc("rows_written", #batch)
    ctx.checkpoint.save(batch[#batch][1])
  end)
  batch = {}
end
local read <close> = db.connect()
for r in read:rows("SELECT g AS id FROM generate_series($1::int + 1, 25) g ORDER BY g", last) do
  stats.inc("rows_seen")
  batch[#batch + 1] = {r.id}
  if r.id == fail_at then error("boom at " .. r.id) end
  if #batch >= 10 then flush() end
end
flush()'
last_stats() { psql_val "$db" "SELECT (stats->'stats')::text FROM ferry.history WHERE migration = '$1' ORDER BY id DESC LIMIT 1"; }
FAIL_AT=5 run_ferry --dir "$D" run 20250103_batches
is "$RC|$(printf '%s\n' "$ERR" | tail -n 1)" "1|ferry: migrations/20250103_batches/up.lua:18: boom at 5" "a run that fails in its first batch: exit 1"
is "$(last_stats 20250103_batches)" '{"rows_seen": 5, "rows_written": 0}' "...before its first save: what it counted (ferry cannot tell it from a script that saves none)"
FAIL_AT=13 run_ferry --dir "$D" run 20250103_batches
like "$OUT" "Rows seen: +10
   Rows written: +10" "failing in its second batch: the first batch's counters, not the 13 rows it had read"
is "$(last_stats 20250103_batches)|$(psql_val "$db" "SELECT count(*) FROM dst")" '{"rows_seen": 10, "rows_written": 10}|10' "...its history row, as the table holds it"
FAIL_AT=23 run_ferry --dir "$D" run 20250103_batches
like "$OUT" "Rows seen: +20
   Rows written: +20" "a resumed run failing in its second batch: the counters it restored plus its first batch's"
is "$(last_stats 20250103_batches)" '{"rows_seen": 20, "rows_written": 20}' "...its history row too"

FAIL_AT=0 run_ferry --dir "$D" run 20250103_batches

like "$OUT" "Rows seen: +25
   Rows written: +25" "the run that finishes: the totals of an uninterrupted run"
is "$RC|$(psql_val "$db" "SELECT count(*) || ' ' || sum(id) FROM dst")" "0|25 325" "...every row written once"

# 4. Interrupted, a run that has saved no checkpoint (none resumed from)
# said "everything up to the last checkpoint is committed; re-run to
# resume": there is none, and its next run starts from the beginning.
psql_val "$db" "CREATE TABLE nocp (n int)" >/dev/null
put "$D/migrations/20250104_nocp/up.lua" 'stats.declare{"rows_written"}
db.transaction(function() db.exec("INSERT INTO nocp VALUES (1)"); stats.inc("rows_written") end)
db.exec("SELECT pg_sleep(60) /* ferry_nocp_sleep */")'
sleeping() { psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* ferry_nocp_sleep */%' AND pid <> pg_backend_pid()"; }
set -m
"$FERRY" --dir "$D" run 20250104_nocp >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
PID=$!
wait_until 60 output_is 1 sleeping
kill -INT "$PID"
RC=0
wait "$PID" || RC=$?
set +m
is "$RC|$(tail -n 1 "$TAP_TMPDIR/bg.err")" "130|ferry: 20250104_nocp: interrupted (SIGINT); the run had got to: rows_written=1; no checkpoint is saved (ctx.checkpoint.save), so the next run starts from the beginning, what this one committed kept: re-run it" \
   "interrupted with no checkpoint saved: says the next run starts from the beginning, not that it resumes"
is "$(psql_val "$db" "SELECT count(*) FROM nocp")" 1 "...what it committed is kept"

# 5. A db.pipeline whose dry_run was left out (lua-api.md: pass dry_run =
# ctx.dry_run): its dry run failed at the first COPY on a read-only
# session; it is now a dry-run pipeline there, counting as the real run.
psql_val "$db" "CREATE TABLE piped (id int)" >/dev/null
put "$D/migrations/20250105_pipe/up.lua" 'stats.declare{"rows_created"}
local pipe <close> = db.pipeline{jobs = ctx.jobs, checkpoint = ctx.checkpoint}
local buf = db.buffer()
for b = 1, 3 do
  for i = 1, 10 do buf:put((b - 1) * 10 + i); stats.inc("rows_created") end
  pipe:send{copies = {{sql = "COPY piped (id) FROM STDIN", buffer = buf}}, position = b * 10}
  buf:clear()
end
pipe:finish()
log.info("position %s", ctx.checkpoint.get())'
run_ferry --dir "$D" run 20250105_pipe --dry-run
is "$RC|$ERR" "0|" "a pipeline without dry_run: its dry run passes"
like "$OUT" "position 30" "...saving each batch's position in memory"
like "$OUT" "Rows created: +30" "...with the real run's counts"
is "$(psql_val "$db" "SELECT count(*) FROM piped")" 0 "...writing nothing"
run_ferry --dir "$D" run 20250105_pipe
is "$RC|$ERR|$(psql_val "$db" "SELECT count(*) || ' ' || sum(id) FROM piped")" "0||30 465" "the real run writes every batch"

# 6. ctx.checkpoint.save after the batch's db.transaction, not in it: the
# position commits apart from the rows it covers.  Noted once a run.
put "$D/migrations/20250106_apart/up.lua" 'psql = nil
for b = 1, 3 do
  db.transaction(function() if not ctx.dry_run then db.exec("INSERT INTO nocp VALUES ($1)", b) end end)
  ctx.checkpoint.save(b)
end'
run_ferry --dir "$D" run 20250106_apart
is "$RC|$ERR" "0|note: migrations/20250106_apart/up.lua:4: ctx.checkpoint.save outside a transaction: the position commits by itself, apart from the rows it covers, so a run stopped between the two resumes past rows never written, or writes some twice; save it inside the db.transaction that writes the batch" \
   "a save outside any transaction is noted, once"
run_ferry --dir "$D" run 20250106_apart --dry-run
is "$RC|$ERR" "0|" "...not in a dry run, which saves nothing"

# 7. ferry exec --dry-run: a write says so too.
put "$TAP_TMPDIR/w.lua" 'db.exec("CREATE TEMP TABLE q (a int)")'
run_ferry --dry-run exec "$TAP_TMPDIR/w.lua"
is "$RC|$ERR" "1|ferry: $TAP_TMPDIR/w.lua:1: query failed: cannot execute CREATE TABLE in a read-only transaction [SQLSTATE 25006]; this is a dry run (--dry-run): every session is read-only and the script wrote: write only when ctx.dry_run is false (if not ctx.dry_run then ... end)" \
   "exec --dry-run: a write is said to be one in a dry run"
run_ferry exec "$TAP_TMPDIR/w.lua"
is "$RC|$ERR" "0|" "...without --dry-run it writes"

# 8. A session of the script's own closed inside a transaction that wrote
# (BEGIN, INSERT, close() -- or a <close> variable leaving its scope):
# closing rolled it back without a word, and the run was recorded applied
# with the rows it counted lost.
psql_val "$db" "CREATE TABLE lost (n int)" >/dev/null
put "$D/migrations/20250107_lost/up.lua" 'stats.declare{"rows_written"}
local w = db.connect()
w:exec("BEGIN")
w:exec("INSERT INTO lost VALUES (1)")
stats.inc("rows_written")
w:close()'
run_ferry --dir "$D" run 20250107_lost
is "$RC|$ERR|$(psql_val "$db" "SELECT count(*) FROM lost")|$(history "$db" "WHERE migration = '20250107_lost'")" \
   "1|ferry: migrations/20250107_lost/up.lua:6: conn:close: the session was closed inside a transaction that wrote (a BEGIN with no COMMIT): closing it rolled that back, and its writes are lost: COMMIT before closing it (ROLLBACK, to drop them), or write in conn:transaction(fn), which commits|0|20250107_lost|run|failed" \
   "conn:close() of a session with uncommitted writes: the run fails, saying why, recorded failed"
put "$D/migrations/20250107_lost/up.lua" 'do
  local c <close> = db.connect()
  c:exec("BEGIN")
  c:exec("INSERT INTO lost VALUES (2)")
end'
run_ferry --dir "$D" run 20250107_lost
is "$RC|$ERR|$(psql_val "$db" "SELECT count(*) FROM lost")" \
   "1|ferry: migrations/20250107_lost/up.lua:4: a session of the script's own (db.connect()) went out of scope, as a <close> variable, inside a transaction that wrote (a BEGIN with no COMMIT): closing it rolled that back, and its writes are lost: COMMIT before closing it (ROLLBACK, to drop them), or write in conn:transaction(fn), which commits|0" \
   "...a <close> session leaving its scope the same"
# ...and one dropped on purpose: ROLLBACK, then close, says nothing
put "$D/migrations/20250107_lost/up.lua" 'local w = db.connect()
w:exec("BEGIN")
w:exec("INSERT INTO lost VALUES (9)")
w:exec("ROLLBACK")
w:close()'
run_ferry --dir "$D" run 20250107_lost
is "$RC|$ERR|$(psql_val "$db" "SELECT count(*) FROM lost")" "0||0" "...a ROLLBACK before the close drops them without a word"
psql_val "$db" "DELETE FROM ferry.history WHERE migration = '20250107_lost'" >/dev/null
# ...and one whose session the server ended meanwhile: the close did not
# roll anything back -- the writes went with the session -- said as such
put "$D/migrations/20250107_lost/up.lua" 'local w = db.connect()
w:exec("BEGIN")
w:exec("INSERT INTO lost VALUES (8)")
db.one("SELECT pg_terminate_backend($1) AS k", w:backend_pid())
db.one("SELECT pg_sleep(0.2) AS s")
w:close()'
run_ferry --dir "$D" run 20250107_lost
is "$RC|$ERR|$(psql_val "$db" "SELECT count(*) FROM lost")" \
   "1|ferry: migrations/20250107_lost/up.lua:6: conn:close: the session was found lost inside a transaction that wrote or may have (a BEGIN with no COMMIT), and its writes with it: its server session had ended: FATAL:  terminating connection due to administrator command; server closed the connection unexpectedly|0" \
   "...a session the server ended: its loss is said, not a rollback by the close"
put "$D/migrations/20250107_lost/up.lua" 'do
  local c <close> = db.connect()
  c:exec("BEGIN")
  c:exec("INSERT INTO lost VALUES (3)")
  error("my own error")
end'
run_ferry --dir "$D" run 20250107_lost
is "$RC|$ERR|$(psql_val "$db" "SELECT count(*) FROM lost")" "1|ferry: migrations/20250107_lost/up.lua:5: my own error|0" \
   "...while an error unwinds the scope, that error stands (the writes rolled back)"
put "$D/migrations/20250107_lost/up.lua" 'local w = db.connect()
w:exec("BEGIN")
w:exec("INSERT INTO lost VALUES (4)")
w:exec("COMMIT")
w:close()
do
  local c <close> = db.connect()
  c:exec("BEGIN")
  c:one("SELECT count(*) AS n FROM lost")      -- read only: closed without a word
end
local r <close> = db.reader()
r:one("SELECT 1 AS one")
local c = db.connect()
c:transaction(function() c:exec("INSERT INTO lost VALUES (5)") end)
c:close()
local f = db.connect()
f:exec("BEGIN")
f:one("SELECT count(*) AS n FROM lost")
assert(not pcall(f.exec, f, "SELECT 1/0"))    -- failed, having only read: closed without a word
f:close()
local l = db.connect()
l:exec("BEGIN")
l:one("SELECT n FROM lost WHERE n = 4 FOR UPDATE")   -- row locks (a transaction id), no write
l:close()
local k = db.connect()
k:exec("BEGIN")
k:one("SELECT n FROM lost WHERE n = 5 FOR SHARE")    -- the same, left open at the end
k:one("SELECT txid_current() AS x")'
run_ferry --dir "$D" run 20250107_lost
is "$RC|$ERR|$(psql_val "$db" "SELECT string_agg(n::text, ',' ORDER BY n) FROM lost")" "0||4,5" \
   "...a session committed, one that only read or locked rows, a reader and conn:transaction close as before"

# 9. A down.lua's counters: recorded, and in --json, but no statistics
# block was printed for the rollback, as one is for a run.
put "$D/migrations/20250108_down/up.lua" 'stats.inc("rows_written", 2)'
put "$D/migrations/20250108_down/down.lua" 'stats.declare{"rows_restored", "rows_skipped"}
stats.inc("rows_restored", 2)'
put "$D/migrations/20250109_down_plain/up.lua" 'stats.inc("n")'
put "$D/migrations/20250109_down_plain/down.lua" 'log.info("nothing to count")'
run_ferry --dir "$D" -q run 20250108_down
run_ferry --dir "$D" -q run 20250109_down_plain
run_ferry --dir "$D" rollback 20250108_down
is "$RC|$OUT" "0|==> rolling back 20250108_down

📊 Statistics:
   Rows restored:  2
   Rows skipped:   0
✓ 20250108_down rolled back" "a down.lua's rollback prints its counters, as a run does"
run_ferry --dir "$D" rollback 20250109_down_plain
is "$RC|$OUT" "0|==> rolling back 20250109_down_plain
nothing to count
✓ 20250109_down_plain rolled back" "...one that counts nothing, no block"
done_testing
