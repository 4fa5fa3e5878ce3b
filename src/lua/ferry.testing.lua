-- ferry.testing: small assertions for the tests that rules carry.
local M = {}

-- (open: the tables being shown, outer ones; a table inside itself is
-- "<cycle>")
local function show(v, open)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  open = open or {}
  if open[v] then return "<cycle>" end
  open[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k], open) end
  open[v] = nil
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = function(v) return show(v) end

-- Deep equality.  Tables that contain themselves: a pair of tables met
-- again (assumed[a][b]) is taken as equal -- any difference below it is
-- found where the pair was first compared, and makes the whole answer
-- false -- so a cycle is compared once round, not without end.
local function same(a, b, assumed)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  assumed = assumed or {}
  local with_a = assumed[a]
  if not with_a then with_a = {}; assumed[a] = with_a end
  if with_a[b] then return true end
  with_a[b] = true
  for k, v in pairs(a) do if not same(v, b[k], assumed) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.same = function(a, b) return same(a, b) end

--- eq(actual, expected [, what]): deep equality, or an error naming both.
function M.eq(actual, expected, what)
  if not same(actual, expected) then
    error(string.format("%sexpected %s, got %s", what and (what .. ": ") or "", show(expected), show(actual)), 2)
  end
end

-- A test's own mistakes -- fn not a function (a misspelt M.name is nil,
-- whose call raised "attempt to call a nil value", which raises took for
-- fn's error: the test passed), a pattern that is no string or is
-- malformed -- raised at the test's line, naming the argument (level: as
-- error counts, from the caller of the function that checks).
local function check_fn(fn, api, level)
  if type(fn) == "function" then return end
  local mt = getmetatable(fn)
  if type(mt) == "table" and mt.__call then return end
  error(string.format("bad argument #1 to '%s' (function expected, got %s)", api, type(fn)), level + 1)
end
local function check_pattern(pattern, api, n, level)
  if type(pattern) ~= "string" and type(pattern) ~= "number" then
    error(string.format("bad argument #%d to '%s' (string expected, got %s)", n, api, type(pattern)), level + 1)
  end
end
local function matches(s, pattern, api, n, level)
  local ok, at = pcall(string.find, s, pattern)
  if not ok then error(string.format("bad argument #%d to '%s' (%s)", n, api, at), level + 1) end
  return at ~= nil
end

--- raises(fn, pattern): fn must raise an error matching pattern.
function M.raises(fn, pattern)
  check_fn(fn, "raises", 2)
  if pattern ~= nil then check_pattern(pattern, "raises", 2, 2) end
  local ok, err = pcall(fn)
  if ok then error("expected an error", 2) end
  local msg = require("ferry.errors").text(err)
  if pattern and not matches(msg, pattern, "raises", 2, 2) then
    error(string.format("error %q does not match %q", msg, pattern), 2)
  end
end

--- tap(): a TAP producer for Lua tests run with `ferry exec FILE`.
--   local T = require("ferry.testing").tap()
--   T.is(got, expected, "name"); T.ok(cond, "name"); T.like(s, pattern, "name")
--   T.raises(fn, pattern, "name"); T.done()
function M.tap()
  local T, n, failed = {}, 0, 0
  local function result(pass, name, diag)
    n = n + 1
    io.write(pass and "ok " or "not ok ", n, " - ", (name or ""):gsub("\n", " "), "\n")
    if not pass then
      failed = failed + 1
      for line in (diag or ""):gmatch("[^\n]+") do io.write("# ", line, "\n") end
    end
    io.flush()
    return pass
  end
  function T.ok(cond, name) return result(cond and true or false, name, "condition was false") end
  function T.is(got, expected, name)
    return result(same(got, expected), name, "     got: " .. show(got) .. "\nexpected: " .. show(expected))
  end
  function T.isnt(got, unexpected, name)
    return result(not same(got, unexpected), name, "got the value it should not be: " .. show(got))
  end
  function T.like(got, pattern, name)
    check_pattern(pattern, "T.like", 2, 2)
    return result(type(got) == "string" and matches(got, pattern, "T.like", 2, 2), name,
                  "     got: " .. show(got) .. "\n doesn't match: " .. pattern)
  end
  function T.raises(fn, pattern, name)
    check_fn(fn, "T.raises", 2)
    if pattern ~= nil then check_pattern(pattern, "T.raises", 2, 2) end
    local ok, err = pcall(fn)
    local msg = require("ferry.errors").text(err)
    return result(not ok and (pattern == nil or matches(msg, pattern, "T.raises", 2, 2)), name,
                  ok and "no error was raised" or ("error: " .. msg .. "\ndoesn't match: " .. tostring(pattern)))
  end
  function T.diag(msg) for line in tostring(msg):gmatch("[^\n]+") do io.write("# ", line, "\n") end end
  function T.done()
    io.write("1..", n, "\n")
    io.flush()
    return failed == 0 and 0 or 1
  end
  return T
end

return M
