#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- stats: declare/inc/set/get/error/errors/counters/reset/summary/max_errors.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end

T.is(stats.counters(), {}, "no counters at the start")
T.is(stats.errors(), {}, "no errors at the start")
T.is(stats.max_errors(), -1, "max_errors: -1 (no limit) under ferry exec")

---------------------------------------------------------------- counters
T.is(select("#", stats.declare{"rows_seen", "rows_written"}), 0, "declare{...} returns nothing")
stats.declare("skipped", "x")
T.is(stats.counters(), {{name = "rows_seen", value = 0}, {name = "rows_written", value = 0},
                        {name = "skipped", value = 0}, {name = "x", value = 0}},
     "declare: counters at 0, in declaration order (table form and list form)")
T.is(stats.inc("rows_seen"), 1, "inc returns the new value")
T.is(stats.inc("rows_seen", 4), 5, "inc by n")
T.is(stats.inc("rows_seen", -2), 3, "inc by a negative n")
T.is(math.type(stats.inc("rows_seen", 0)), "integer", "values are integers")
T.is(select("#", stats.set("rows_written", 7)), 0, "set returns nothing")
T.is(stats.get("rows_written"), 7, "get after set")
T.is(stats.get("nope"), 0, "get of an unknown counter is 0")
T.is(#stats.counters(), 4, "get does not create a counter")
T.is(stats.inc("late"), 1, "inc creates a counter on first use")
stats.set("later", 9)
stats.declare("rows_seen")
T.is(stats.get("rows_seen"), 3, "declaring an existing counter keeps its value")
local names = {}
for i, c in ipairs(stats.counters()) do names[i] = c.name end
T.is(names, {"rows_seen", "rows_written", "skipped", "x", "late", "later"}, "and its place; new counters go last")
T.like(err_of(stats.inc, ""), "bad argument #1 to 'stats%.inc' %(empty counter name%)", "an empty name raises")
T.like(err_of(stats.inc, "a", 1.5), "number has no integer representation", "inc by a fraction raises")
T.like(err_of(stats.set, "a"), "bad argument #2 to 'stats%.set'", "set needs a value")
T.like(err_of(stats.declare, {"ok", ""}), "empty counter name", "declare: an empty name raises")
-- a call that raises creates no counter: its arguments are checked first
local before = stats.counters()
T.like(err_of(stats.set, "z"), "bad argument #2 to 'stats%.set' %(number expected, got no value%)", "set without a value raises")
T.like(err_of(stats.set, "z2", "x"), "bad argument #2 to 'stats%.set' %(number expected, got string%)", "set to a non-number raises")
T.like(err_of(stats.inc, "w", 1.5), "bad argument #2 to 'stats%.inc' %(number has no integer representation%)",
       "inc by a fraction raises")
T.like(err_of(stats.declare, "d1", ""), "bad argument #2 to 'stats%.declare' %(empty counter name%)",
       "declare: a bad name after a good one raises")
T.like(err_of(stats.declare, {"d2", "d3", {}}), "bad argument #1 to 'stats%.declare' %(name 3: string expected, got table%)",
       "declare{}: a bad name after good ones raises")
T.is(stats.counters(), before, "...and none of them created a counter (z, z2, w, d1, d2, d3)")
-- a NUL byte would cut the name short in C: "a\0b" and "a\0c" were one counter "a"
T.like(err_of(stats.inc, "a\0b"), "bad argument #1 to 'stats%.inc' %(counter name contains a NUL byte%)",
       "a name with a NUL byte raises")
T.like(err_of(stats.declare, {"ok", "x\0y"}), "counter name contains a NUL byte", "declare: a name with a NUL byte raises")
-- a name that is not UTF-8 ("source_" .. s:sub(1, 2) of "héllo") went
-- into the run's history row as a jsonb key, which the server refused:
-- the run could not be recorded (left 'running', with advice about a
-- SQL_ASCII database), and --json wrote bytes no JSON reader takes
T.is(err_of(stats.inc, "source_h\xc3"), "bad argument #1 to 'stats.inc' (counter name is not valid UTF-8)",
     "inc: a name that is not UTF-8 raises")
T.is(err_of(stats.set, "\xff", 1), "bad argument #1 to 'stats.set' (counter name is not valid UTF-8)", "...set too")
T.is(err_of(stats.declare, {"ok2", "b\xffd"}), "bad argument #1 to 'stats.declare' (name 2: counter name is not valid UTF-8)",
     "...and declare{}, naming the element")
T.is(stats.get("source_h\xc3"), 0, "...none of them created a counter")
T.is(stats.get("ok2"), 0, "...not even the valid name before the bad one")
T.is(stats.inc("caf\u{e9}_\u{1F600}"), 1, "a UTF-8 name beyond ASCII is a name")
T.is(err_of(stats.declare, setmetatable({}, {__len = function() return 2.5 end})),
       "bad argument #1 to 'stats.declare' (its length is not an integer)",
       "declare{}: a __len that is not an integer: an argument error (Lua's 'object length is not an integer' named nothing)")
stats.set("nul_prefix", 5)
T.is(stats.get("nul_prefix\0b"), 0, "get: a name with a NUL byte is no counter (not the one before the NUL)")

-- A kept error is cut: 300 rules raising the 2 MB payload they choked on
-- took 6 GB and made the run record too big to store.
stats.reset()
stats.error(string.rep("k", 5000), string.rep("x", 100000))
stats.error("utf8", string.rep("\u{e9}", 5000))
local kept = stats.errors()
T.is(#kept[1].key, 200 + #"... (5000 bytes in all)", "a key is kept up to 200 bytes")
T.is(kept[1].message, string.rep("x", 2000) .. "... (100000 bytes in all)", "a message up to 2000 bytes, then its size")
T.is(kept[2].message, string.rep("\u{e9}", 1000) .. "... (10000 bytes in all)", "cut after a whole character")
stats.error("odd", "a" .. string.rep("\u{e9}", 5000))
T.is(stats.errors()[3].message, "a" .. string.rep("\u{e9}", 999) .. "... (10001 bytes in all)",
     "not inside one: the cut moves back to the character's start")
T.is(stats.get("errors"), 3, "all counted")
stats.reset()

---------------------------------------------------------------- summary
stats.reset()
stats.declare{"rows_seen", "conversations_created", "x"}
stats.inc("rows_seen", 1234)
stats.inc("conversations_created", 56)
T.is(stats.summary(),
     "📊 Statistics:\n" ..
     "   Rows seen:              1234\n" ..
     "   Conversations created:  56\n" ..
     "   X:                      0\n",
     "summary: humanized names, values aligned two spaces after the longest name")
stats.reset()
T.is(stats.summary(), "📊 Statistics:\n", "summary with no counters: the title only")
-- a name of more than 255 bytes (a counter named from data, "action_" ..
-- r.action) was cut to 255 in the summary, and the padding after it
-- overran a 512-byte line: its value, its newline and every line after it
-- were lost, merged into one line
stats.reset()
local long = "action_" .. string.rep("x", 600)
stats.set(long, 5)
stats.set("rows", 7)
T.is(stats.summary(),
     "📊 Statistics:\n" ..
     "   Action " .. string.rep("x", 600) .. ":  5\n" ..
     "   Rows:" .. string.rep(" ", #long - 2) .. "7\n",
     "summary: a name of 607 bytes whole, every value on its own line")
stats.reset()

---------------------------------------------------------------- errors
stats.reset()
T.is(select("#", stats.error("row-1", "bad value")), 0, "error returns nothing")
stats.error(42, "numeric key")
stats.error(nil, nil)
T.is(stats.errors(), {{key = "row-1", message = "bad value"}, {key = "42", message = "numeric key"},
                      {key = "nil", message = "nil"}}, "errors: {key, message} as text, in order")
T.is(stats.get("errors"), 3, "error counts in the 'errors' counter")
-- a composite key (a list or a record) reads as JSON, not "table: 0x..."
stats.reset()
stats.error({"1ead0000-0000-4000-8000-000000000001", "budget"}, "no value")
stats.error({lead = 7, key = "stage"}, "unknown stage")
stats.error(setmetatable({}, {__tostring = function() return "row seven" end}), "its own text")
stats.error({1, 0/0}, "no JSON form")
T.is(stats.errors()[1].key, '["1ead0000-0000-4000-8000-000000000001","budget"]', "a list key reads as JSON")
T.is(stats.errors()[2].key, '{"key":"stage","lead":7}', "a record key as JSON, its keys sorted")
T.is(stats.errors()[3].key, "row seven", "a key with __tostring as that gives it")
T.like(stats.errors()[4].key, "^table: ", "a key with no JSON form as tostring gives it")
stats.reset()
stats.error("row-1", "bad value"); stats.error(42, "numeric key"); stats.error(nil, nil)
T.is(stats.counters(), {{name = "errors", value = 3}}, "the 'errors' counter is created by the first error")
for i = 4, 1001 do stats.error("k" .. i, "m") end
T.is(stats.get("errors"), 1001, "all errors are counted")
T.is(#stats.errors(), 1000, "the first 1000 are kept")
T.is(stats.errors()[1000].key, "k1000", "the kept ones are the first")

---------------------------------------------------------------- reset
stats.max_errors(5)
stats.reset()
T.is({stats.counters(), stats.errors(), stats.get("errors")}, {{}, {}, 0}, "reset clears counters and errors")
T.is(stats.max_errors(), 5, "reset keeps max_errors")

---------------------------------------------------------------- max_errors
T.is(stats.max_errors(2), 5, "max_errors(n) returns the previous limit")
T.is(stats.max_errors(), 2, "max_errors() reads it")
stats.error("a", "1")
stats.error("b", "2")
local ok, e = pcall(stats.error, "c", "3")
T.is(ok, false, "the error past the limit raises")
T.is(type(e), "table", "with an error object")
T.is(e.code, 1, "code 1 (exit code of a failed run)")
T.is(e.max_errors, true, "max_errors = true")
T.is(e.message, "too many row errors (3, more than --max-errors 2): stopped; everything committed so far is kept, "
       .. "fix the rule and re-run to resume", "the message")
T.is(stats.get("errors"), 3, "the error that raised is counted")
T.is(stats.errors()[3], {key = "c", message = "3"}, "and kept")
T.like(err_of(stats.error, "d", "4"), "too many row errors %(4, more than", "every later error raises too")
stats.max_errors(0)
stats.reset()
T.like(err_of(stats.error, "x", "y"), "too many row errors %(1, more than %-%-max%-errors 0%)", "max_errors 0: the first error raises")
stats.max_errors(-1)
stats.reset()
for i = 1, 50 do stats.error(i, "m") end
T.is(stats.get("errors"), 50, "max_errors -1: no limit")

stats.reset()
-- a counter never wraps round: past the largest integer it raises, unchanged
stats.set("big", math.maxinteger)
T.like(err_of(stats.inc, "big"), "stats.inc: counter big would overflow", "stats.inc past the largest integer raises")
T.is(stats.get("big"), math.maxinteger, "...and leaves the counter as it was")
-- nor does "errors" through stats.error (it wrapped to the smallest
-- integer, which no --max-errors limit is below: the stop never came)
stats.set("errors", math.maxinteger)
local kept = #stats.errors()
T.like(err_of(stats.error, "k", "m"), "stats.error: counter errors would overflow", "stats.error past the largest integer raises")
T.is({stats.get("errors"), #stats.errors()}, {math.maxinteger, kept}, "...the count as it was, the row not kept")
local pr = progress.new("x")
pr:add(math.maxinteger)
T.like(err_of(pr.add, pr, 1), "progress: add would overflow", "progress:add past the largest integer raises")

---------------------------------------------------------------- finalizers
-- A __gc finalizer may run at any allocation inside a stats function and
-- call stats itself: stats.reset() freed the kept strings that
-- stats.errors() / stats.counters() were copying (a use after free: junk
-- keys, or an ASan report), and a declare() moved the counter stats.error
-- was about to report.  (A finalizer that re-arms itself, with the
-- collector made as eager as it goes, runs within those calls.)
stats.reset()
stats.max_errors(-1)
local gc_action
local rearm = {}
rearm.__gc = function()
  if gc_action then local a = gc_action; gc_action = nil; a() end
  setmetatable({}, rearm)
end
setmetatable({}, rearm)
collectgarbage("incremental", 0, 1000)
local reset_hits, junk = 0, 0
for _ = 1, 200 do
  stats.reset()
  for i = 1, 200 do stats.error("key" .. i, "message " .. i) end
  gc_action = stats.reset
  local got = stats.errors()
  gc_action = nil
  if #got < 200 then reset_hits = reset_hits + 1 end
  for i, e in ipairs(got) do
    if e.key ~= "key" .. i or e.message ~= "message " .. i then junk = junk + 1 end
  end
end
T.ok(reset_hits > 0, "stats.reset() ran in a finalizer while stats.errors() built its list")
T.is(junk, 0, "stats.errors(): what it returns is what was kept (up to the reset), never freed memory")
reset_hits, junk = 0, 0
for _ = 1, 200 do
  stats.reset()
  for i = 1, 200 do stats.set("counter_" .. i, i) end
  gc_action = stats.reset
  local got = stats.counters()
  gc_action = nil
  if #got < 200 then reset_hits = reset_hits + 1 end
  for i, c in ipairs(got) do
    if c.name ~= "counter_" .. i or c.value ~= i then junk = junk + 1 end
  end
end
T.ok(reset_hits > 0, "stats.reset() ran in a finalizer while stats.counters() built its list")
T.is(junk, 0, "stats.counters(): likewise")
stats.max_errors(0)
local wrong = 0
for _ = 1, 20000 do
  stats.reset()
  gc_action = function() for i = 1, 64 do stats.declare("d" .. i) end end
  local _, err = pcall(stats.error, "k", "m")
  gc_action = nil
  if not tostring(err.message):find("^too many row errors %(1, more than %-%-max%-errors 0%)") then wrong = wrong + 1 end
end
T.is(wrong, 0, "stats.error past --max-errors: the count it reports, with counters declared by a finalizer meanwhile")
-- stats.summary() writes into a Lua buffer, whose growth (at 1,024 bytes)
-- may run a finalizer: a stats.reset() there freed the name being copied,
-- and the rest of it was read from freed memory (junk bytes in the text,
-- or an ASan report), then the line finished with its padding and value.
-- Names of 92 bytes (lines of 100) put the growth 4 bytes into the 11th.
gc_action = nil
stats.reset()
for i = 1, 12 do stats.set(string.format("s%02d", i) .. string.rep("n", 89), 1) end
local whole = stats.summary()
collectgarbage("generational")
setmetatable({}, {__gc = function() stats.reset() end})
collectgarbage("stop"); collectgarbage("restart")     -- (the next allocation collects)
local cut = stats.summary()
collectgarbage("incremental", 0, 1000)
T.is({#whole, cut}, {1217, whole:sub(1, 1025)},
     "stats.summary(): a reset by a finalizer as its text grows ends the text there, no freed name read")
stats.max_errors(-1)
gc_action = nil
collectgarbage("incremental", 200, 100)
stats.reset()
return T.done()
