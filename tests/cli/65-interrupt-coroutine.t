#!/usr/bin/env bash
# Ctrl-C (SIGINT) and SIGTERM stop a script busy inside a coroutine as they
# stop one busy in the main thread (tests/robust/50-interrupt.t): the same
# exit code (130, 143), the same message, the run recorded the same way.
# (Lua's hooks are per thread: the one a signal sets on the main thread
# alone never fires while a coroutine runs.)  The coroutine may have been
# created before the signal or after it, may run inside another one, and
# its error may be re-raised (coroutine.wrap) or returned
# (coroutine.resume: the thread that resumed it is interrupted in turn).
# Once the interruption has reached the main thread, a script that caught
# it can clean up, in coroutines too, without being interrupted again.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_interrupt_coroutine)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
MARK=$TAP_TMPDIR/looping

# Each script creates the file named by its first argument once it is in
# its loop; the loops never end by themselves.
MARKER='local marker = ...
local function mark() local f = assert(io.open(marker, "w")); f:close() end
'
script() { put "$D/$1.lua" "$MARKER$2"; }
script main         'mark()
while true do end'
script wrap         'coroutine.wrap(function()
  mark()
  while true do end
end)()'
script resume       'local co = coroutine.create(function() mark(); while true do end end)
local ok, err = coroutine.resume(co)       -- (interrupted as it returns:)
print("resume returned", ok, err)          -- not reached
while true do end                          -- (nor the loop)'
script nested       'coroutine.wrap(function()
  coroutine.wrap(function()
    mark()
    while true do end
  end)()
end)()'
script nested_resume 'coroutine.wrap(function()
  local inner = coroutine.create(function() mark(); while true do end end)
  local ok, err = coroutine.resume(inner)  -- (interrupted as it returns:)
  print("resume returned", ok, err)        -- not reached
  while true do end                        -- (nor the loop)
end)()'
# the coroutines that run when the signal comes are made after it
script fresh        'coroutine.wrap(function()
  mark()
  while true do
    coroutine.wrap(function() local n = 0; for i = 1, 1000 do n = n + i end end)()
  end
end)()'
script generator    'local gen = coroutine.wrap(function()
  while true do
    local n = 0
    for i = 1, 100000 do n = n + i end
    coroutine.yield(n)
  end
end)
mark()
while true do gen() end'
# resumed from C: a table.sort comparator, a string.gsub callback, a
# <close> variable's __close
script sort         'table.sort({3, 2, 1}, function(a, b)
  coroutine.wrap(function() mark(); while true do end end)()
  return a < b
end)'
script gsub         'string.gsub("abc", ".", function()
  coroutine.resume(coroutine.create(function() mark(); while true do end end))
end)'
script close        'do
  local z <close> = setmetatable({}, {__close = function() coroutine.wrap(function() mark(); while true do end end)() end})
end'
# resumed by a finalizer (__gc): Lua only warns of an error there and goes
# on, so the interruption is raised again once the finalizer has returned
# (it was lost: the script went on, uninterrupted)
script finalizer    'do setmetatable({}, {__gc = function() coroutine.wrap(function() mark(); while true do end end)() end}) end
collectgarbage()
print("not reached")
while true do end'
# caught: the script catches the interruption, then cleans up -- in a
# coroutine too -- without being interrupted again; the engine ends the
# command afterwards all the same
CLEANUP='
local sum = 0
for i in coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end) do sum = sum + i end
print("caught: " .. tostring(err) .. "; cleaned up: " .. sum)
return 0'
script caught_main  'local ok, err = pcall(function() mark(); while true do end end)'"$CLEANUP"
script caught_wrap  'local ok, err = pcall(coroutine.wrap(function() mark(); while true do end end))'"$CLEANUP"
# caught inside the coroutine: the main thread, which resumed it, still is
script caught_inner 'coroutine.wrap(function()
  local ok, err = pcall(function() mark(); while true do end end)
  print("caught in the coroutine: " .. tostring(err))
end)()
print("not reached")'

# start_ferry ARGS...: ferry in the background, its pid in $PID (job
# control on: otherwise bash starts it with SIGINT ignored).
set -m
start_ferry() {
    rm -f "$MARK"
    "$FERRY" "$@" >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
    PID=$!
    for _ in $(seq 1 400); do
        [ -e "$MARK" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    diag "ferry $* never got to its loop"
}
# stop_ferry SIGNAL: sends it and waits for ferry: $RC, $OUT, $ERR.  A
# ferry still running 30 s later is killed (RC "still running"): the test
# fails instead of hanging.
stop_ferry() {
    kill -"$1" "$PID"
    for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
    RC=0
    if kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID"
        wait "$PID" 2>/dev/null
        RC="still running"
    else
        wait "$PID" || RC=$?
    fi
    OUT=$(cat "$TAP_TMPDIR/bg.out")
    ERR=$(cat "$TAP_TMPDIR/bg.err")
}

# --- ferry exec: a loop in a coroutine stops as one in the main thread
for s in main wrap resume nested nested_resume fresh generator sort gsub close finalizer; do
    start_ferry --dir "$D" exec "$D/$s.lua" "$MARK"
    stop_ferry INT
    is "$RC|$OUT|$ERR" "130||ferry: interrupted (SIGINT)" "exec $s.lua: Ctrl-C: exit 130, one line"
    start_ferry --dir "$D" exec "$D/$s.lua" "$MARK"
    stop_ferry TERM
    is "$RC|$OUT|$ERR" "143||ferry: interrupted (SIGTERM)" "exec $s.lua: SIGTERM: exit 143, one line"
done

for s in caught_main caught_wrap; do
    start_ferry --dir "$D" exec "$D/$s.lua" "$MARK"
    stop_ferry INT
    is "$RC|$OUT|$ERR" "130|caught: interrupted (SIGINT); cleaned up: 6|ferry: interrupted (SIGINT)" \
       "exec $s.lua: the script caught it and cleaned up, uninterrupted; exit 130 all the same"
done
start_ferry --dir "$D" exec "$D/caught_inner.lua" "$MARK"
stop_ferry INT
is "$RC|$OUT|$ERR" "130|caught in the coroutine: interrupted (SIGINT)|ferry: interrupted (SIGINT)" \
   "exec caught_inner.lua: caught in the coroutine, the main thread is interrupted all the same"

# --- a statement waited for when the signal comes: it is cancelled and
# ferry raises the interruption from C, in the thread that waited.  That is
# the interruption raised there, as the hook would have raised it: the
# code that runs next in that thread -- a <close> variable's cleanup, the
# code after a pcall that caught it -- is not interrupted a second time
# (it was: the hook the signal had set was still there and raised again
# at its first instruction).
# shellcheck disable=SC2016
STMT='local c = db.connect()
local function sql() mark(); return c:exec("SELECT pg_sleep(60) /* ferry_co_stmt */") end
local function closer(where) return setmetatable({}, {__close = function(_, e)
  print(where .. " closing: " .. tostring(e))
  local s = 0; for i = 1, 100 do s = s + i end
  print(where .. " closed: " .. s)
end}) end
'
script stmt_close_co   "${STMT}"'coroutine.wrap(function()
  local g <close> = closer("coroutine")
  sql()
end)()'
script stmt_close_main "${STMT}"'do
  local g <close> = closer("main")
  sql()
end'
script stmt_caught_co  "${STMT}"'coroutine.wrap(function()
  local ok, err = pcall(sql)
  print("caught in the coroutine: " .. tostring(err))
end)()
print("not reached")'
# a statement waited for in a finalizer: raised there, the interruption is
# raised again once the finalizer has returned (Lua only warns of an error
# in a finalizer and goes on)
script stmt_finalizer  "${STMT}"'do setmetatable({}, {__gc = function() sql() end}) end
collectgarbage()
print("not reached")
while true do end'
# (c.exec straight from pcall: no Lua code of ferry's in between that the
# second interruption could have spent itself in)
script stmt_caught_main "${STMT}"'mark()
local ok, err = pcall(c.exec, c, "SELECT pg_sleep(60) /* ferry_co_stmt */")'"$CLEANUP"
stmt_running() { psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%/* ferry_co_stmt */%' AND pid <> pg_backend_pid()"; }
wait_stmt() { wait_until 60 output_is 1 stmt_running && return 0; diag "the statement never ran"; }
for s in stmt_close_co:coroutine stmt_close_main:main; do
    start_ferry --dir "$D" exec "$D/${s%%:*}.lua" "$MARK"
    wait_stmt
    stop_ferry INT
    is "$RC|$OUT|$ERR" "130|${s#*:} closing: interrupted (SIGINT)
${s#*:} closed: 5050|ferry: interrupted (SIGINT)" \
       "exec ${s%%:*}.lua: a statement cancelled in the ${s#*:} thread: its <close> variable's cleanup runs whole, once"
done
start_ferry --dir "$D" exec "$D/stmt_finalizer.lua" "$MARK"
wait_stmt
stop_ferry INT
is "$RC|$OUT|$ERR" "130||ferry: interrupted (SIGINT)" \
   "exec stmt_finalizer.lua: a statement cancelled in a finalizer: interrupted once the finalizer has returned"
start_ferry --dir "$D" exec "$D/stmt_caught_co.lua" "$MARK"
wait_stmt
stop_ferry INT
is "$RC|$OUT|$ERR" "130|caught in the coroutine: interrupted (SIGINT)|ferry: interrupted (SIGINT)" \
   "exec stmt_caught_co.lua: a cancelled statement's interruption caught in the coroutine, the main thread interrupted"
start_ferry --dir "$D" exec "$D/stmt_caught_main.lua" "$MARK"
wait_stmt
stop_ferry INT
is "$RC|$OUT|$ERR" "130|caught: interrupted (SIGINT); cleaned up: 6|ferry: interrupted (SIGINT)" \
   "exec stmt_caught_main.lua: a cancelled statement's interruption caught in the main thread, cleanup uninterrupted"

# --- ferry run: the migration's history row as for a loop in the main
# thread -- failed, interrupted -- and the rows up to its checkpoint kept
# shellcheck disable=SC2016  # ($1 is the statement's parameter)
BODY='db.exec("CREATE TABLE IF NOT EXISTS items_%s (n int PRIMARY KEY)")
stats.declare{"items_created"}
local n = (ctx.checkpoint.get() or 0) + 1
db.transaction(function()
  db.exec("INSERT INTO items_%s VALUES ($1)", n)
  stats.inc("items_created")
  ctx.checkpoint.save(n)
end)
local f = assert(io.open("%s", "w")); f:close()
while true do end'
# shellcheck disable=SC2059
put "$D/migrations/20250101_main/up.lua" "$(printf "$BODY" main main "$MARK")"
# shellcheck disable=SC2059
put "$D/migrations/20250102_co/up.lua" "coroutine.wrap(function()
$(printf "$BODY" co co "$MARK")
end)()"
put "$D/migrations/20250103_reader/up.lua" "local reader = coroutine.create(function()
  local f = assert(io.open(\"$MARK\", \"w\")); f:close()
  while true do end
end)
local ok = coroutine.resume(reader)        -- a failure taken for the end of the input
db.exec(\"CREATE TABLE after_reader (x int)\")"

row() { psql_val "$db" "SELECT status || '|' || error FROM ferry.history WHERE migration = '$1' ORDER BY id DESC LIMIT 1"; }

start_ferry --dir "$D" run 20250101
stop_ferry INT
main_err=${ERR//20250101_main/MIGRATION}
is "$RC|$(row 20250101_main)" "130|failed|interrupted (SIGINT)" "run, a loop in the main thread: exit 130, recorded failed: interrupted"

start_ferry --dir "$D" run 20250102
stop_ferry INT
is "$RC" 130 "run, a loop in a coroutine: Ctrl-C: exit 130"
like "$ERR" "ferry: 20250102_co: interrupted \\(SIGINT\\); the run had got to: items_created=1 \\(everything up to the last checkpoint is committed\\); re-run to resume" \
     "...one line says it was interrupted, how far it got and what to do"
is "${ERR//20250102_co/MIGRATION}" "$main_err" "...the same output as for the loop in the main thread"
is "$(row 20250102_co)" "failed|interrupted (SIGINT)" "...recorded failed: interrupted"
is "$(psql_val "$db" "SELECT count(*) || ' ' || (SELECT position #>> '{}' FROM ferry.checkpoint WHERE migration = '20250102_co') FROM items_co")" \
   "1 1" "...the rows committed are those up to its checkpoint"

start_ferry --dir "$D" --json run 20250102
stop_ferry TERM
is "$RC" 143 "run, a loop in a coroutine: SIGTERM: exit 143"
is "$(json_eval "$OUT" 'str(j["ok"]) + "|" + j["error"]')" "False|interrupted (SIGTERM)" "...--json: {ok: false, error: interrupted (SIGTERM)}"
is "$(row 20250102_co)" "failed|interrupted (SIGTERM)" "...recorded failed: interrupted (SIGTERM)"
is "$(psql_val "$db" "SELECT count(*) || ' ' || (SELECT position #>> '{}' FROM ferry.checkpoint WHERE migration = '20250102_co') FROM items_co")" \
   "2 2" "...the resumed run committed its batch, and its checkpoint"

start_ferry --dir "$D" run 20250103
stop_ferry INT
is "$RC" 130 "run, a reader coroutine whose error the script ignores: exit 130"
like "$ERR" "ferry: 20250103_reader: interrupted \\(SIGINT\\)" "...interrupted"
is "$(row 20250103_reader)|$(psql_val "$db" "SELECT to_regclass('after_reader') IS NULL")" "failed|interrupted (SIGINT)|t" \
   "...recorded failed: interrupted; the script went no further"

# --- a statement waited for in a coroutine: cancelled, the batch in
# flight rolled back (the transaction's guard runs as the coroutine is
# closed), the rows committed those up to the checkpoint
put "$D/migrations/20250104_batches/up.lua" "coroutine.wrap(function()
  db.exec('CREATE TABLE IF NOT EXISTS batch_items (n int PRIMARY KEY)')
  stats.declare{'items_created'}
  for b = (ctx.checkpoint.get() or 0) // 5, 39 do
    db.transaction(function()
      for n = b * 5 + 1, b * 5 + 5 do
        db.exec('INSERT INTO batch_items VALUES (\$1)', n)
        stats.inc('items_created')
      end
      if b == 2 then
        local f = assert(io.open('$MARK', 'w')); f:close()
        db.exec('SELECT pg_sleep(60) /* ferry_co_sleep */')
      end
      ctx.checkpoint.save(b * 5 + 5)
    end)
  end
end)()"
sleeping() { psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%/* ferry_co_sleep */%' AND pid <> pg_backend_pid()"; }
start_ferry --dir "$D" run 20250104
wait_until 60 output_is 1 sleeping
is "$(sleeping)" 1 "run, a statement waited for in a coroutine: it is running"
stop_ferry INT
is "$RC" 130 "...Ctrl-C: exit 130"
# (what it had committed: the two batches before the one in flight, whose rows rolled back)
like "$ERR" "ferry: 20250104_batches: interrupted \\(SIGINT\\); the run had got to: items_created=10 \\(everything up to the last checkpoint is committed\\); re-run to resume" \
     "...one line says it was interrupted and how far it got"
unlike "$ERR" "canceling statement|query failed" "...no cancelled-statement error shown in place of the interruption"
wait_until 60 output_is 0 sleeping
is "$(sleeping)" 0 "...the statement was cancelled on the server"
is "$(row 20250104_batches)" "failed|interrupted (SIGINT)" "...recorded failed: interrupted"
is "$(psql_val "$db" "SELECT count(*) || ' ' || max(n) || ' ' || (SELECT position #>> '{}' FROM ferry.checkpoint WHERE migration = '20250104_batches') FROM batch_items")" \
   "10 10 10" "...the batch in flight rolled back: the rows are those up to the checkpoint"

is "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry'")" 0 \
   "no ferry session is left"

done_testing
