#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- ferry.testing: eq, raises, same, show (what rules' tests use), and the
-- tap() producer's own functions (its failure output: 60-exec-ctx-rules.t).
local t = require "ferry.testing"

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return tostring(e)
end

T.is(t.same(1, 1), true, "same: equal scalars")
T.is(t.same({a = {1, 2}}, {a = {1, 2}}), true, "same: deep tables")
T.is(t.same({a = {1, 2}}, {a = {1, 3}}), false, "same: a deep difference")
T.is(t.same({a = 1}, {a = 1, b = 2}), false, "same: an extra key")
T.is(t.same({}, {}), true, "same: empty tables")
T.is(t.same(1, "1"), false, "same: no coercion")
T.is(t.same(nil, false), false, "same: nil is not false")

-- tables that contain themselves: compared without end, not a stack overflow
local c1 = {n = 1}; c1.self = c1
local c2 = {n = 1}; c2.self = c2
local c3 = {n = 2}; c3.self = c3
local ring_a, ring_b = {v = 1}, {v = 1}
ring_a.next = {v = 2, next = ring_a}
ring_b.next = {v = 2, next = ring_b}
local ring_c = {v = 1}
ring_c.next = {v = 2, next = {v = 1, next = ring_c}}
local shared = {1}
T.is(t.same(c1, c1), true, "same: a self-referencing table is itself")
T.is(t.same(c1, c2), true, "same: two self-referencing tables alike")
T.is(t.same(c1, c3), false, "same: two self-referencing tables that differ")
T.is(t.same(ring_a, ring_b), true, "same: two cycles of two tables alike")
T.is(t.same(ring_a, ring_c), false, "same: a cycle of two and one of three: a difference (next.next.next.v)")
T.is(t.same({shared, shared}, {{1}, {1}}), true, "same: a table met twice (not a cycle)")
T.is(t.same({shared, shared}, {{1}, {2}}), false, "same: ...and a difference at its second place")
T.is(select("#", t.eq(c1, c1)), 0, "eq: a self-referencing table passes")
T.is(select("#", t.eq(c1, c2)), 0, "eq: two alike pass")
T.like(err_of(t.eq, c1, c3), "^expected {n=2, self=<cycle>}, got {n=1, self=<cycle>}$",
       "eq: two that differ raise, naming both (the cycle shown as <cycle>)")
T.is(t.show(c1), "{n=1, self=<cycle>}", "show: a table inside itself is <cycle>")
T.is(t.show({shared, shared}), "{1={1=1}, 2={1=1}}", "show: a table met twice, not in a cycle, is shown twice")
T.ok(T.is(c1, c2, "T.is: two self-referencing tables alike"), "T.is compares them too")

T.is(t.show("a\t"), [["a\9"]], "show: strings quoted with %q")
T.is(t.show({b = 1, a = {"x"}}), '{a={1="x"}, b=1}', "show: tables with sorted keys")
T.is(t.show(nil), "nil", "show: nil")

T.is(select("#", t.eq({1, {2}}, {1, {2}})), 0, "eq: passes silently")
T.like(err_of(t.eq, 1, 2), "expected 2, got 1$", "eq: the message names both")
T.like(err_of(t.eq, "a", "b", "the name"), "the name: expected \"b\", got \"a\"$", "eq: with a description")
local line
local msg = err_of(function() t.eq(1, 2) end); line = debug.getinfo(1, "l").currentline
T.like(msg, "61%-testing%.t:" .. line .. ": expected 2, got 1$", "eq: the error points at the test's line")

T.is(select("#", t.raises(function() error("boom") end, "bo+m")), 0, "raises: passes when fn raises a matching error")
T.is(select("#", t.raises(function() error("anything") end)), 0, "raises: without a pattern any error passes")
T.like(err_of(t.raises, function() end, "x"), "expected an error$", "raises: fails when fn does not raise")
T.like(err_of(t.raises, function() error("other") end, "^boom"), 'error ".-other" does not match "%^boom"', "raises: fails on another error")
T.is(select("#", t.raises(function() error({code = 1, message = "too many row errors"}) end, "too many")), 0,
     "raises: an error table is matched by its message (as T.raises does)")
-- raises(fn) with fn not a function (a misspelt M.name, nil) passed: the
-- call of nil raised "attempt to call a nil value", which raises took for
-- fn's error; a pattern that is no string, or a malformed one, raised
-- inside ferry.testing.lua ("[ferry]/ferry.testing.lua:51: bad argument
-- #1 to 'find'").  Both are the test's mistake, said at its line.
local HERE = "^tests/lua/61%-testing%.t:%d+: "
T.like(err_of(function() t.raises(nil) end), HERE .. "bad argument #1 to 'raises' %(function expected, got nil%)$",
       "raises(nil) fails, naming the argument")
T.like(err_of(function() t.raises(t.no_such_function, "attempt") end),
       HERE .. "bad argument #1 to 'raises' %(function expected, got nil%)$", "...with a pattern too")
T.is(select("#", t.raises(setmetatable({}, {__call = function() error("called") end}), "called")), 0,
     "raises: a table with __call is a function")
T.like(err_of(function() t.raises(function() error("x") end, {}) end),
       HERE .. "bad argument #2 to 'raises' %(string expected, got table%)$", "raises: a pattern that is no string")
T.like(err_of(function() t.raises(function() error("x") end, "[") end),
       HERE .. "bad argument #2 to 'raises' %(malformed pattern %(missing ']'%)%)$", "raises: a malformed pattern")
T.like(err_of(function() T.raises(nil, nil, "T.raises(nil)") end),
       HERE .. "bad argument #1 to 'T.raises' %(function expected, got nil%)$", "T.raises(nil) raises too")
T.like(err_of(function() T.raises(function() error("x") end, "(", "T.raises, bad pattern") end),
       HERE .. "bad argument #2 to 'T.raises' %(unfinished capture%)$", "T.raises: a malformed pattern")
T.like(err_of(function() T.like("abc", nil, "T.like, no pattern") end),
       HERE .. "bad argument #2 to 'T.like' %(string expected, got nil%)$", "T.like: no pattern")

-- the tap() producer
T.is(T.ok(true, "T.ok passes with a true value"), true, "T.ok returns true when it passes")
T.is(T.isnt(1, 2, "T.isnt passes when the values differ"), true, "T.isnt returns true when it passes")
T.is(T.like("abc", "^a", "T.like passes on a match"), true, "T.like returns true")
T.is(T.raises(function() error({message = "tbl msg"}) end, "tbl", "T.raises reads .message of error tables"), true,
     "T.raises returns true")
T.diag("T.diag writes '# ' lines\nsecond line")
T.ok(type(T.done) == "function", "T.done prints the plan and returns the exit code")

return T.done()
