#!/usr/bin/env bash
# The reader of ferry's output goes away mid-run (ferry up | head -3, a
# closed log pipe): ferry is not killed by SIGPIPE.  Its next write to its
# stdout or stderr stops the run as an interruption does -- the statement
# cancelled, what is not committed rolled back, the run recorded failed
# ("interrupted (SIGPIPE: output closed)"), exit 141 (128 + SIGPIPE, what a
# shell shows for a program SIGPIPE killed) -- and the next run resumes.  A
# pipe a script opened itself, and ferry's database sessions, never
# interrupt a run: a write there fails with EPIPE as it should.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_output_closed)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
# A data migration of 200 batches of 5 rows, each a transaction with its
# checkpoint, that says so on stdout and on stderr after each: the reader
# (head) goes after the first lines, long before the last batch.
put "$D/migrations/20250101_talky/up.lua" 'local conn = db.open()
conn:exec("CREATE TABLE IF NOT EXISTS items (n int PRIMARY KEY)")
local last = ctx.checkpoint.get() or 0
stats.declare{"items_created"}
for b = last // 5, 199 do
  db.transaction(function()
    conn:exec("SELECT pg_sleep(0.02)")
    for n = b * 5 + 1, b * 5 + 5 do
      conn:exec("INSERT INTO items VALUES ($1)", n)
      stats.inc("items_created")
    end
    ctx.checkpoint.save(b * 5 + 5)
  end)
  print("batch " .. b .. " done")
  io.stderr:write("batch ", b, " done (stderr)\n")
end'

history_row() { psql_val "$db" "SELECT status || '|' || error FROM ferry.history WHERE migration = '20250101_talky' ORDER BY id DESC LIMIT 1"; }
committed() { psql_val "$db" "SELECT count(*) = (SELECT (position #>> '{}')::int FROM ferry.checkpoint) FROM items"; }
reset() { psql_val "$db" "DROP TABLE IF EXISTS items; DELETE FROM ferry.history; DELETE FROM ferry.checkpoint" >/dev/null; }

# --- stdout read by head, which leaves after two lines
"$FERRY" --dir "$D" run 20250101 2>"$TAP_TMPDIR/err" | head -n 2 >"$TAP_TMPDIR/out"
RC=${PIPESTATUS[0]}
ERR=$(cat "$TAP_TMPDIR/err")
is "$RC" 141 "stdout closed: exit 141"
is "$(cat "$TAP_TMPDIR/out")" "==> 20250101_talky
batch 0 done" "stdout closed: the reader had its lines"
like "$ERR" "ferry: 20250101_talky: interrupted \\(SIGPIPE: output closed\\); the run had got to: .*items_created=[0-9]+.*\\(everything up to the last checkpoint is committed\\); re-run to resume" \
     "stdout closed: one line on stderr says why it stopped, how far it got and what to do"
is "$(history_row)" "failed|interrupted (SIGPIPE: output closed)" "stdout closed: the run is recorded as failed: interrupted"
is "$(committed)" t "stdout closed: the rows committed are exactly those up to the checkpoint"
run_ferry --dir "$D" -q run 20250101
is "$RC|$(psql_val "$db" "SELECT count(*) || ' ' || count(DISTINCT n) FROM items")" "0|1000 1000" \
   "stdout closed: the next run resumes and completes, every row once"

# --- ferry up 2>&1 | head -n 1: the message cannot be shown, but the run
# is stopped and recorded all the same
reset
"$FERRY" --dir "$D" up 2>&1 | head -n 1 >"$TAP_TMPDIR/out"
RC=${PIPESTATUS[0]}
is "$RC" 141 "2>&1 | head: exit 141"
is "$(history_row)" "failed|interrupted (SIGPIPE: output closed)" "2>&1 | head: the run is recorded as failed: interrupted"
is "$(committed)" t "2>&1 | head: the rows committed are exactly those up to the checkpoint"

# --- stderr read by head, stdout to a file: the same
reset
"$FERRY" --dir "$D" run 20250101 2>&1 >"$TAP_TMPDIR/out" | head -n 1 >"$TAP_TMPDIR/err"
RC=${PIPESTATUS[0]}
is "$RC" 141 "stderr closed: exit 141"
is "$(cat "$TAP_TMPDIR/err")" "batch 0 done (stderr)" "stderr closed: the reader had its line"
is "$(history_row)" "failed|interrupted (SIGPIPE: output closed)" "stderr closed: the run is recorded as failed: interrupted"
like "$(cat "$TAP_TMPDIR/out")" "^==> 20250101_talky
batch 0 done" "stderr closed: stdout has the run's lines until then"

# --- --json: stdout is written at the end only; stderr closed mid-run
# stops the run, and the JSON object says so
reset
"$FERRY" --dir "$D" --json run 20250101 2>&1 >"$TAP_TMPDIR/out" | head -n 1 >/dev/null
RC=${PIPESTATUS[0]}
is "$RC" 141 "--json, stderr closed: exit 141"
is "$(json_eval "$(cat "$TAP_TMPDIR/out")" 'str(j["ok"]) + "|" + j["error"]')" "False|interrupted (SIGPIPE: output closed)" \
   "--json, stderr closed: {ok: false, error: interrupted (SIGPIPE: output closed)}"

# --- a pipe a script opened, whose reader is gone: the write fails with
# EPIPE, the script goes on
put "$TAP_TMPDIR/popen.lua" '-- ferry: allow-shell
local p = assert(io.popen("exit 0", "w"))
p:setvbuf("no")
local ok, err
for _ = 1, 1000 do                     -- (blocks once the pipe is full, until the reader is gone)
  ok, err = p:write(string.rep("x", 65536))
  if not ok then break end
end
print("write:", ok, err)
print("close:", p:close())
print("still running")'
run_ferry --dir "$D" exec "$TAP_TMPDIR/popen.lua"
is "$RC|$OUT|$ERR" "0|write:	nil	Broken pipe
close:	true	exit	0
still running|" "a script's own pipe closed: its write fails with EPIPE, the script goes on, exit 0"

# --- a database session the server ended, written to: libpq reports the
# lost connection (its sockets never raise SIGPIPE), no interruption
put "$TAP_TMPDIR/gone.lua" 'local a, b = db.connect(), db.open()
local pid = a:one("SELECT pg_backend_pid() AS pid").pid
b:exec("SELECT pg_terminate_backend($1, 5000)", pid)
local ok, err
for _ = 1, 20 do
  ok, err = pcall(a.exec, a, "SELECT length($1)", string.rep("x", 1 << 20))
  if not ok then break end
end
print(ok, (tostring(err):gsub("\n.*", "")))
print("still running")'
run_ferry --dir "$D" exec "$TAP_TMPDIR/gone.lua"
is "$RC" 0 "a session the server ended: no SIGPIPE, exit 0"
like "$OUT" "^false	.*(connection|server closed).*
still running$" "...the script got libpq's error and went on"

# --- the reader gone once the work is done and recorded: the lines ferry
# writes after the record (the statistics, "✓ ... applied") meet the
# closed pipe.  The migration is applied (or rolled back) and stays so;
# ferry says that it stopped after it had finished (as after a Ctrl-C that
# comes then), not that the run was interrupted -- which would send the
# operator to re-run what is done.  (The scripts wait at their end until
# head, which leaves after the heading and their own line, is surely
# gone.)
D2=$TAP_TMPDIR/proj2
put "$D2/migrations/20250102_done/up.lua" 'stats.declare{"things_done"}
stats.inc("things_done")
print("working")
db.exec("SELECT pg_sleep(1)")'
put "$D2/migrations/20250102_done/down.lua" 'print("undoing")
db.exec("SELECT pg_sleep(1)")'
put "$D2/migrations/20250103_after/up.lua" 'print("the next one")'
done_row() { psql_val "$db" "SELECT operation || '|' || status || '|' || coalesce(error, '') FROM ferry.history WHERE migration = '20250102_done' ORDER BY id DESC LIMIT 1"; }
reset
"$FERRY" --dir "$D2" up 2>"$TAP_TMPDIR/err" | head -n 2 >/dev/null
RC=${PIPESTATUS[0]}
is "$RC|$(done_row)|$(psql_val "$db" "SELECT count(*) FROM ferry.history WHERE migration = '20250103_after'")" \
   "141|up|applied||0" "up, stdout closed after the record: applied, exit 141, nothing after it run"
is "$(cat "$TAP_TMPDIR/err")" "ferry: interrupted (SIGPIPE: output closed) after 20250102_done had finished (applied); nothing after it was run" \
   "up, stdout closed after the record: the line says the migration had finished, not that the run was interrupted"
"$FERRY" --dir "$D2" rollback 20250102_done 2>"$TAP_TMPDIR/err" | head -n 2 >/dev/null
RC=${PIPESTATUS[0]}
is "$RC|$(done_row)" "141|rollback|rolled back|" "rollback, stdout closed after the record: recorded rolled back, exit 141"
is "$(cat "$TAP_TMPDIR/err")" "ferry: interrupted (SIGPIPE: output closed) after the rollback of 20250102_done had finished (rolled back)" \
   "rollback, stdout closed after the record: the line says the rollback had finished"
"$FERRY" --dir "$D2" run 20250102_done 2>"$TAP_TMPDIR/err" | head -n 2 >/dev/null
RC=${PIPESTATUS[0]}
is "$RC|$(done_row)" "141|run|applied|" "run, stdout closed after the record: recorded applied, exit 141"
is "$(cat "$TAP_TMPDIR/err")" "ferry: interrupted (SIGPIPE: output closed) after 20250102_done had finished (applied); nothing after it was run" \
   "run, stdout closed after the record: the line says so"

# --- baseline: its reader gone after the first line.  The second
# migration's record is held a second (a trigger), so that head is gone
# when its line is written.  What was recorded stays; the line says how far
# it got and to baseline again for the rest (it used to say only
# "interrupted (SIGPIPE: output closed)").
D3=$TAP_TMPDIR/proj3
for m in 20250201_a 20250202_b 20250203_c; do put "$D3/migrations/$m/up.sql" "SELECT 1;"; done
psql_val "$db" "CREATE FUNCTION public.slow_b() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN IF NEW.migration = '20250202_b' THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END \$\$;
CREATE TRIGGER slow_b BEFORE INSERT ON ferry.history FOR EACH ROW EXECUTE FUNCTION public.slow_b()" >/dev/null
"$FERRY" --dir "$D3" baseline 20250203 2>"$TAP_TMPDIR/err" | head -n 1 >"$TAP_TMPDIR/out"
RC=${PIPESTATUS[0]}
psql_val "$db" "DROP TRIGGER slow_b ON ferry.history; DROP FUNCTION public.slow_b()" >/dev/null
is "$RC|$(cat "$TAP_TMPDIR/out")" "141|baselined 20250201_a (recorded as applied, not run)" "baseline, stdout closed: exit 141"
is "$(psql_val "$db" "SELECT string_agg(migration || ' ' || status, ',' ORDER BY migration) FROM ferry.history WHERE operation = 'baseline'")" \
   "20250201_a applied,20250202_b applied" "baseline, stdout closed: what it recorded stays, nothing after it"
is "$(cat "$TAP_TMPDIR/err")" "ferry: interrupted (SIGPIPE: output closed) after baselining 2 of 3 migrations (the last: 20250202_b); run 'ferry baseline 20250203' again for the rest" \
   "baseline, stdout closed: the line says how far it got and what to do"
"$FERRY" --dir "$D3" baseline 20250203 >"$TAP_TMPDIR/out" 2>&1
is "$?|$(cat "$TAP_TMPDIR/out")" "0|baselined 20250203_c (recorded as applied, not run)" "baseline again: the rest"

done_testing
