#!/usr/bin/env bash
# A memory error inside a binding (an allocation Lua could not make even
# after an emergency collection) must leave the connection as it found it:
# idle, its transaction to the caller.  An LD_PRELOAD shim makes one chosen
# allocation fail; a run where it cannot act (under valgrind, which
# replaces the allocator first) skips.
. "$(dirname "$0")/../lib/tap.sh"
require_pg
plan 6

cat >"$TAP_TMPDIR/oom.c" <<'C'
/* The script arms it by allocating a string of 1,000,000 + n bytes
 * (string.rep("x", 1000000 + n), n from 1 to 999; n = 0 disarms): the
 * n-th realloc after that fails, and so does Lua's retry of it after an
 * emergency collection. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

#define STRING_BYTES(len) (24 + (len) + 1)   /* a Lua 5.4 string on 64-bit: header, text, NUL */

void *realloc(void *p, size_t size) {
    static void *(*real)(void *, size_t);
    static long countdown;        /* > 0: reallocs left until the one to fail */
    static size_t failed;         /* the size failed: its retry fails too, */
    static int retry_within;      /* if it comes soon (the collection reallocs a few blocks first) */
    if (!real) real = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    if (size >= STRING_BYTES(1000000) && size < STRING_BYTES(1001000)) {
        countdown = (long)(size - STRING_BYTES(1000000));
    } else if (failed && size == failed) {
        failed = 0;
        return NULL;
    } else if (countdown > 0 && --countdown == 0 && size > 0) {
        failed = size;
        retry_within = 8;
        return NULL;
    } else if (failed && --retry_within == 0) {
        failed = 0;
    }
    return real(p, size);
}
C
if ! ${CC:-cc} -shared -fPIC -O1 -o "$TAP_TMPDIR/oom.so" "$TAP_TMPDIR/oom.c" -ldl 2>"$TAP_TMPDIR/cc.err"; then
    skip "cannot build the allocation shim: $(head -1 "$TAP_TMPDIR/cc.err")" 6
    exit 0
fi

db=$(fresh_db ferry_oom)
# (the collector stopped: a rows() iterator nobody holds stays unfinalized,
# so a connection it left busy shows at once, not when the collector finds it)
LD_PRELOAD=$TAP_TMPDIR/oom.so ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
run_ferry --db "$db" exec /dev/stdin <<'LUA'
local c = db.connect()
local function arm(n) local _ = string.rep("x", 1000000 + n) end
local function memory_error(e) return tostring(e):find("not enough memory", 1, true) ~= nil end
local failed, busy, open = 0, {}, {}
for n = 1, 12 do
  collectgarbage("stop")
  local ok, e = pcall(function() arm(n); for _ in c:rows("SELECT 1 AS x") do end end)
  pcall(arm, 0)
  if not ok and memory_error(e) then
    failed = failed + 1
    local idle, why = pcall(c.one, c, "SELECT 1 AS x")
    if not idle then busy[#busy + 1] = n .. ": " .. tostring(why) end
  end
  collectgarbage("restart"); collectgarbage()
  collectgarbage("stop")
  -- (disarmed once rows() returned: the memory error is one of rows())
  ok, e = pcall(c.transaction, c, function()
    arm(n)
    local it, s, ctl, closer = c:rows("SELECT 1 AS x")
    pcall(arm, 0)
    for _ in it, s, ctl, closer do end
  end)
  pcall(arm, 0)
  if not ok and memory_error(e) and c:in_transaction() then open[#open + 1] = tostring(n) end
  collectgarbage("restart"); collectgarbage()
  if c:in_transaction() then c:exec("ROLLBACK") end
end
-- a memory error in db.transaction's own bookkeeping (after fn returned:
-- packing its results, the checks, COMMIT): the transaction is ended and
-- the session's savepoint depth reset, so the next db.transaction is a
-- transaction of its own, not a savepoint inside one left open
local broken = {}
for n = 1, 40 do
  collectgarbage("stop")
  pcall(c.transaction, c, function() c:exec("SELECT 1"); arm(n) end)
  pcall(arm, 0)
  collectgarbage("restart"); collectgarbage()
  local ok2, e2 = pcall(c.transaction, c, function() return c:one("SELECT 1 AS x").x end)
  if not ok2 or c:in_transaction() then
    broken[#broken + 1] = n .. ": " .. (ok2 and "left inside a transaction" or tostring(e2))
    pcall(c.exec, c, "ROLLBACK")
  end
end
print(failed)
print(#busy == 0 and "idle" or table.concat(busy, "; "))
print(#open == 0 and "ended" or "left open at " .. table.concat(open, ", "))
print(#broken == 0 and "usable" or table.concat(broken, "; "))
LUA
first=$(printf '%s\n' "$OUT" | sed -n 1p)
if [ "$RC" != 0 ] || [ -z "$first" ] || [ "$first" = 0 ]; then
    skip "the allocation shim had no effect here (rc $RC: $(printf '%s' "$ERR" | head -1))" 6
    exit 0
fi
pass "memory errors were raised inside conn:rows() ($first)"
is "$(printf '%s\n' "$OUT" | sed -n 2p)" "idle" \
   "a memory error in conn:rows() leaves the connection idle (not busy with an iterator nobody holds)"
is "$(printf '%s\n' "$OUT" | sed -n 3p)" "ended" \
   "...so db.transaction rolls back after one (its ROLLBACK was refused as 'connection busy': the transaction stayed open)"
is "$(printf '%s\n' "$OUT" | sed -n 4p)" "usable" \
   "a memory error in db.transaction's own work after fn returned: ended, and the next db.transaction is one of its own"

# A memory error that lua_resume raises itself, outside the coroutine's own
# protected call (the message for a dead coroutine, which it could not
# make), goes straight to the main thread's pcall, past the end of ferry's
# coroutine.resume that sets the thread running back (l_interrupt.c): the
# coroutine still named running must not be freed, or Ctrl-C's handler
# sets its hook in freed memory.  Here strings of a coroutine's size take
# its place once it is collected (glibc's malloc gives the block freed
# last): ferry crashed on Ctrl-C, exit 139.
set -m      # (the job started with SIGINT not ignored)
MARK=$TAP_TMPDIR/looping
cat >"$TAP_TMPDIR/stale.lua" <<'LUA'
local marker = ...
local function arm(n) local _ = string.rep("x", 1000000 + n) end
local co = coroutine.create(function() end)
coroutine.resume(co)
collectgarbage()
arm(1)
local ok, e = pcall(coroutine.resume, co)
pcall(arm, 0)
print(ok and "resumed" or tostring(e))
co = nil
collectgarbage(); collectgarbage()
local fill = {}
for i = 1, 8 do fill[i] = string.rep("\255", 184) .. i end
local f = assert(io.open(marker, "w")); f:close()
while true do end
LUA
LD_PRELOAD=$TAP_TMPDIR/oom.so ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
"$FERRY" exec "$TAP_TMPDIR/stale.lua" "$MARK" >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
PID=$!
for _ in $(seq 1 400); do [ -e "$MARK" ] && break; kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
kill -INT "$PID" 2>/dev/null
for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID"; fi
RC=0; wait "$PID" 2>/dev/null || RC=$?
is "$(cat "$TAP_TMPDIR/bg.out")" "not enough memory" "coroutine.resume: a memory error in lua_resume's own work goes to the main thread's pcall"
is "$RC|$(head -1 "$TAP_TMPDIR/bg.err")" "130|ferry: interrupted (SIGINT)" \
   "...and Ctrl-C afterwards, once that coroutine is collected: interrupted, exit 130 (no hook set in freed memory)"
