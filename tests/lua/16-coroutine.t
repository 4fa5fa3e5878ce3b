#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- coroutine.resume, .wrap and .close are ferry's (they keep track of the
-- coroutine running, for Ctrl-C: tests/cli/65-interrupt-coroutine.t) and
-- behave as Lua's own: values, errors, statuses, to-be-closed variables.

local SRC = debug.getinfo(1, "S").short_src
local function pack(...) return table.pack(...) end
local function closer(log, name) return setmetatable({}, {__close = function(_, e) log[#log + 1] = name .. ":" .. tostring(e) end}) end

-- resume: arguments in, yielded and returned values out
local co = coroutine.create(function(a, b)
  local c, d = coroutine.yield(a + b, "y")
  return c .. d, nil, 3
end)
T.is(pack(coroutine.resume(co, 1, 2)), {n = 3, true, 3, "y"}, "resume: true and the values yielded")
T.is(coroutine.status(co), "suspended", "...suspended")
T.is(pack(coroutine.resume(co, "a", "b")), {n = 4, true, "ab", nil, 3}, "resume: true and the values returned, nils kept")
T.is(coroutine.status(co), "dead", "...dead")
T.is(pack(coroutine.resume(co)), {n = 2, false, "cannot resume dead coroutine"}, "resume of a dead one: false and why")

-- resume: an error in the coroutine is returned, any value
co = coroutine.create(function() error("boom") end)
T.is(pack(coroutine.resume(co)), {n = 2, false, SRC .. ":24: boom"}, "resume: false and the error, with its place")
T.is(coroutine.status(co), "dead", "...the coroutine is dead")
local obj = {}
T.is(select(2, coroutine.resume(coroutine.create(function() error(obj) end))) == obj, true, "resume: an error object as it is")
T.raises(function() coroutine.resume(1) end, "bad argument #1 to 'resume' %(thread expected, got number%)",
         "resume: not a coroutine: argument error")
T.is(pack(coroutine.resume(coroutine.running())), {n = 2, false, "cannot resume non-suspended coroutine"},
     "resume of the running one: false and why")

-- nested: status and running as seen from inside
local outer
outer = coroutine.create(function()
  local inner = coroutine.create(function()
    return coroutine.status(outer), coroutine.status(coroutine.running()), coroutine.isyieldable()
  end)
  return coroutine.resume(inner)
end)
T.is(pack(coroutine.resume(outer)), {n = 5, true, true, "normal", "running", true}, "nested: the outer one is normal, the inner running")

-- wrap: values; errors raised again, a string with the caller's place
local gen = coroutine.wrap(function(n) for i = 1, n do coroutine.yield(i) end return "end" end)
local got = {gen(3), gen(), gen(), gen()}
T.is(got, {1, 2, 3, "end"}, "wrap: yields and returns")
T.raises(function() gen() end, ": cannot resume dead coroutine$", "wrap: a dead one raises")
local sum = 0
for i in coroutine.wrap(function() for i = 1, 4 do coroutine.yield(i) end end) do sum = sum + i end
T.is(sum, 10, "wrap: as an iterator")
local ok, err = pcall(coroutine.wrap(function() error("in wrap") end))
T.is({ok, err}, {false, SRC .. ":52: in wrap"}, "wrap: its error raised again")
ok, err = pcall(coroutine.wrap(function() error(obj) end))
T.is(err == obj, true, "wrap: an error object as it is")
ok, err = pcall(function() coroutine.wrap(function() error("up", 0) end)() end)
T.is(err, SRC .. ":56: up", "wrap: a string error gets the caller's place")
T.raises(function() coroutine.wrap(1) end, "bad argument #1 to 'wrap' %(function expected, got number%)",
         "wrap: not a function: argument error")

-- wrap: the to-be-closed variables of a coroutine that dies run first
local log = {}
ok, err = pcall(coroutine.wrap(function()
  local a <close> = closer(log, "a")
  error("e", 0)
end))
T.is({ok, err, log}, {false, "e", {"a:e"}}, "wrap: a coroutine that dies closes its variables, then its error goes on")
log = {}
ok, err = pcall(coroutine.wrap(function()
  local a <close> = setmetatable({}, {__close = function() error("in close", 0) end})
  error("e", 0)
end))
T.is({ok, err}, {false, "in close"}, "wrap: an error in closing replaces it")

-- close
log = {}
co = coroutine.create(function()
  local a <close> = closer(log, "a")
  local b <close> = closer(log, "b")
  coroutine.yield()
end)
coroutine.resume(co)
T.is({coroutine.close(co), coroutine.status(co), log}, {true, "dead", {"b:nil", "a:nil"}}, "close: a suspended one closes its variables")
T.is(coroutine.close(co), true, "close: a dead one: true")
T.is(coroutine.close(coroutine.create(print)), true, "close: one never started: true")
co = coroutine.create(function()
  local a <close> = setmetatable({}, {__close = function() error("closing", 0) end})
  coroutine.yield()
end)
coroutine.resume(co)
T.is(pack(coroutine.close(co)), {n = 2, false, "closing"}, "close: false and the error of a variable's closing")
co = coroutine.create(function() error("died", 0) end)
coroutine.resume(co)
T.is(pack(coroutine.close(co)), {n = 2, false, "died"}, "close: one that died: false and its error")
T.raises(function() coroutine.close(coroutine.running()) end, "cannot close a running coroutine", "close: the running one: error")
outer = coroutine.create(function() return pcall(coroutine.wrap(function() coroutine.close(outer) end)) end)
T.is(pack(coroutine.resume(outer)), {n = 3, true, false, SRC .. ":96: cannot close a normal coroutine"},
     "close: a normal one: error")
T.raises(function() coroutine.close({}) end, "bad argument #1 to 'close' %(thread expected, got table%)",
         "close: not a coroutine: argument error")

-- more of Lua's own answers (each checked against stock lua5.4 5.4.4)
local main = coroutine.running()
T.is(pack(coroutine.resume(coroutine.create(function() return coroutine.resume(main) end))),
     {n = 3, true, false, "cannot resume non-suspended coroutine"}, "resume of the main thread from a coroutine: false and why")
T.is({pcall(coroutine.wrap(function() error(42) end))}, {false, 42}, "wrap: a number error as it is, no place added")
T.is(pack(pcall(coroutine.wrap(function() error() end))), {n = 2, false, nil}, "wrap: a nil error as it is")
co = coroutine.create(function()
  local a <close> = setmetatable({}, {__close = function(_, e) error("A:" .. tostring(e), 0) end})
  local b <close> = setmetatable({}, {__close = function(_, e) error("B:" .. tostring(e), 0) end})
  coroutine.yield()
end)
coroutine.resume(co)
T.is(pack(coroutine.close(co)), {n = 2, false, "A:B:nil"}, "close: each variable's __close erring, the last error, each seeing the one before")
-- yields across pcall, a metamethod and a for iterator
co = coroutine.create(function()
  local ok, v = pcall(function() return coroutine.yield("in pcall") end)
  local t = setmetatable({}, {__index = function(_, k) return coroutine.yield("in __index " .. k) end})
  local x = t.k
  local s = 0
  for i in function(_, i) i = (i or 0) + 1; if i <= 2 then coroutine.yield("in iterator"); return i end end do s = s + i end
  return ok, v, x, s
end)
got = {}
local res = pack(coroutine.resume(co))
while coroutine.status(co) == "suspended" do got[#got + 1] = res[2]; res = pack(coroutine.resume(co, #got)) end
T.is({got, res}, {{"in pcall", "in __index k", "in iterator", "in iterator"}, {n = 5, true, true, 1, 2, 3}},
     "yields across pcall, a metamethod, a for iterator")
T.is(pack(coroutine.resume(coroutine.create(function() table.sort({2, 1}, function(a, b) coroutine.yield() return a < b end) end))),
     {n = 2, false, "attempt to yield across a C-call boundary"}, "a yield across table.sort: Lua's error")
-- resumed from C: a finalizer, a comparator, a callback
local gco = coroutine.create(function(x) return x * 2 end)
local from_gc
do setmetatable({}, {__gc = function() from_gc = pack(coroutine.resume(gco, 21)) end}) end
collectgarbage(); collectgarbage()
T.is(from_gc, {n = 2, true, 42}, "resumed by a finalizer")
local tick = coroutine.wrap(function() local n = 0; while true do n = n + 1; coroutine.yield(n) end end)
local t = {3, 1, 2}
table.sort(t, function(a, b) tick(); return a < b end)
T.is({t, (string.gsub("ab", ".", function(c) return c .. tick() end)) ~= nil}, {{1, 2, 3}, true}, "resumed by a table.sort comparator, a gsub callback")
-- nested 250 deep: past Lua's limit of C calls the innermost resume fails
local depth, deepest = 0, nil
local function nest(n)
  depth = n
  local r = pack(coroutine.resume(coroutine.create(function() return nest(n + 1) end)))
  if not r[1] then deepest = r[2] end
  return table.unpack(r, 1, r.n)
end
T.is({nest(0), deepest, depth > 150 and depth < 200}, {true, "C stack overflow", true}, "resume 200 coroutines deep: C stack overflow, as Lua")
local function nestw(n) return coroutine.wrap(function() return nestw(n + 1) end)() end
T.like(select(2, pcall(nestw, 0)), "C stack overflow$", "wrap 200 coroutines deep: C stack overflow, as Lua")

-- ferry keeps no coroutine alive once it is back from it (it records the
-- thread running, for Ctrl-C): one dropped is collected
local weak = setmetatable({}, {__mode = "k"})
local function drop()
  co = coroutine.create(function() coroutine.yield() end)
  weak[co] = "resumed"
  coroutine.resume(co)
  co = nil
  local w = coroutine.wrap(function() coroutine.yield() end)
  w()
  weak[w] = "wrapped"
  local c = coroutine.create(function() local x <close> = closer({}, "x"); coroutine.yield() end)
  coroutine.resume(c)
  coroutine.close(c)
  weak[c] = "closed"
end
drop()
collectgarbage(); collectgarbage()
T.is(next(weak), nil, "coroutines resumed, wrapped or closed, then dropped, are collected")

-- A rows() loop or a COPY suspended in a coroutine holds its session until
-- the coroutine is closed (its loop's closing value runs) or collected;
-- then the session is free and out of any transaction.
local core = require "db.core"
local function free(conn)
  local ok, r = pcall(conn.one, conn, "SELECT 1 AS x")
  return {ok and r.x, core.busy_with(conn), (conn:in_transaction())}
end
co = coroutine.create(function()
  for r in db.rows("SELECT g FROM generate_series(1, 5) g") do coroutine.yield(r.g) end
end)
T.is(pack(coroutine.resume(co)), {n = 2, true, 1}, "db.rows in a coroutine: yields its first row")
T.like(select(2, pcall(db.one, "SELECT 1")), "connection busy: a rows%(%) iteration",
       "...the main session is busy while the coroutine is suspended")
T.is(pack(coroutine.close(co)), {n = 1, true}, "...coroutine.close closes it")
T.is(free(db.main()), {1, nil, false}, "...and the main session is free again")
do
  local gen = coroutine.wrap(function()
    for r in db.rows("SELECT g FROM generate_series(1, 5) g") do coroutine.yield(r.g) end
  end)
  gen()
end
collectgarbage(); collectgarbage()
T.is(free(db.main()), {1, nil, false}, "a coroutine suspended in a rows() loop, dropped: collected, the session freed")
local co_copy = "ferry_co_copy_" .. db.backend_pid()
db.exec("SET client_min_messages = warning")
db.exec("DROP TABLE IF EXISTS " .. co_copy)
db.exec("CREATE TABLE " .. co_copy .. " (a int)")
local other = db.connect()
do
  local c = coroutine.create(function()
    local w <close> = other:copy("COPY " .. co_copy .. " FROM STDIN")
    w:put(1)
    coroutine.yield()
    w:finish()
  end)
  T.is(pack(coroutine.resume(c)), {n = 1, true}, "a COPY in a coroutine: put, then yields")
  T.is(core.busy_with(other), "a COPY", "...its session busy meanwhile")
end
collectgarbage(); collectgarbage()
T.is(free(other), {1, nil, false}, "a coroutine suspended with a COPY open, dropped: the COPY aborted, the session freed")
T.is(db.one("SELECT count(*) AS n FROM " .. co_copy).n, 0, "...and nothing of it stored")
other:close()
db.exec("DROP TABLE " .. co_copy)

-- coroutine.yield outside any coroutine (a loop body pasted from a
-- coroutine to the top of a script) raised Lua's "attempt to yield from
-- outside a coroutine" with no position: ferry's error line named no
-- file:line.  It is raised at the calling line now; inside a coroutine,
-- yield is Lua's.
do
  local l = debug.getinfo(1, "l").currentline + 1
  local ok, e = pcall(function() coroutine.yield(1) end)
  T.is(ok, false, "yield outside a coroutine raises")
  T.like(tostring(e), "^[^%[\n]*16%-coroutine%.t:" .. l .. ": attempt to yield from outside a coroutine$", "...at the calling line")
  local c = coroutine.wrap(function(a) local b = coroutine.yield(a + 1); return b * 2 end)
  T.is({c(1), c(5)}, {2, 10}, "...and inside one it yields and resumes as Lua's")
  T.is(pack(coroutine.isyieldable()), {n = 1, false}, "coroutine.isyieldable() is untouched")
end

return T.done()
