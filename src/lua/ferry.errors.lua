-- ferry.errors: telling ferry's own errors from a script's, and showing
-- any error value as text.  Shared by the engine, db.transaction,
-- db.pipeline and ferry.testing.
--
-- ferry's own errors are tables {code, message} with the registry's
-- "ferry.error" metatable (sys.error_meta): a usage error, the --max-errors
-- stop.  They end a command with their code.  Any other value raised --
-- a string, or a table (an error object) -- is a script's error.
local sys = require "ferry.sys"

local M = {}

-- The standard library as it was when ferry loaded (before any script):
-- a script shares the tables table, string, math and utf8 with ferry's own
-- Lua, and the base functions of _G with the rules (required into _G), so
-- `table.concat = f` in an up.lua hijacked the engine's work after it --
-- the outcome was never recorded (its history row left "running").
-- restore_stdlib() puts the functions that were there back (what a script
-- added stays); the engine calls it as soon as a script ends.
local next_, rawset_, rawget_, getmt = next, rawset, rawget, debug.getmetatable
local G = _G
local STDLIB, BASE = {}, {}
for _, name in ipairs({"table", "string", "math", "utf8"}) do
  local saved = {}
  for k, v in next_, G[name] do saved[k] = v end
  STDLIB[name] = {lib = G[name], saved = saved}
end
for _, k in ipairs({"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
                    "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "xpcall",
                    "require", "load", "print"}) do
  BASE[k] = G[k]
end
local string_mt, string_lib = getmt(""), G.string
function M.restore_stdlib()
  for name, s in next_, STDLIB do
    rawset_(G, name, s.lib)
    for k, v in next_, s.saved do if rawget_(s.lib, k) ~= v then rawset_(s.lib, k, v) end end
  end
  for k, v in next_, BASE do if rawget_(G, k) ~= v then rawset_(G, k, v) end end
  if string_mt then string_mt.__index = string_lib end
end

--- is_ferry(e) -> true for ferry's own error tables
function M.is_ferry(e) return getmetatable(e) == sys.error_meta end

--- valid_utf8(s) -> s with each byte that is not part of valid UTF-8, and
-- each NUL, replaced by U+FFFD: an error's text goes into the history row,
-- --json and the run record, which PostgreSQL and JSON readers refuse
-- otherwise (a script cutting "héllo" with s:sub(1, 2) is enough).
function M.valid_utf8(s)
  if utf8.len(s) and not s:find("\0", 1, true) then return s end
  local out, i = {}, 1
  while i <= #s do
    local _, bad = utf8.len(s, i)
    if not bad then out[#out + 1] = s:sub(i) break end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return (table.concat(out):gsub("%z", "\u{FFFD}"))
end

--- text(e) -> the error as text (valid UTF-8): a string as it is; ferry's own error by
-- its message; a table by its __tostring, else its `message` field, else
-- as JSON with sorted keys ("error object {...}"); anything else by
-- tostring.
-- Lua cuts a chunk's name in a position to 60 characters (LUA_IDSIZE),
-- keeping its end behind "...": a script of a long migration id reads
-- "...ns/<id>/validate.lua:12:".  The scripts and rules ferry loads are
-- registered here (known_chunk), and full_names gives such a cut name back
-- whole when exactly one of them ends with it.
local chunk_names = {}
function M.known_chunk(name) chunk_names[name] = true end

-- How many characters of a name Lua keeps behind "..." (LUA_IDSIZE - 4:
-- 56): only a name of exactly that length is a cut one, not a script's own
-- text that has "...x.lua:" in it.
local CUT_LEN = #debug.getinfo(load("return", "@" .. string.rep("x", 200)), "S").short_src - 3

local function whole_name(cut)
  if #cut ~= CUT_LEN then return nil end
  local found
  for name in pairs(chunk_names) do
    if #name > #cut and name:sub(-#cut) == cut then
      if found then return nil end        -- (two end so: leave it cut)
      found = name
    end
  end
  return found
end

function M.full_names(s)
  if not s:find("...", 1, true) then return s end
  return (s:gsub("%.%.%.([^%s:]+%.lua):", function(cut)
    local name = whole_name(cut)
    return name and name .. ":" or nil
  end))
end

function M.text(e)
  if type(e) == "string" then return M.full_names(M.valid_utf8(e)) end
  if M.is_ferry(e) then return M.valid_utf8(tostring(e.message)) end
  if type(e) == "table" then
    local mt = getmetatable(e)
    if type(mt) == "table" and mt.__tostring then return M.valid_utf8(tostring(e)) end
    if type(e.message) == "string" then return M.valid_utf8(e.message) end
    local json = require "json"
    local ok, s = pcall(json.encode_ordered or json.encode, e)
    return M.valid_utf8("error object " .. (ok and s or tostring(e)))
  end
  return M.valid_utf8(tostring(e))
end

--- shown(v) -> a value a script gave, as an error message quotes it: a
-- string cut to its first 60 characters (at a character, then "..."), a
-- number as it is, anything else by its type ("a table": its __tostring
-- is not run).  A 1 MB value made a 1 MB error line.
local SHOWN_CHARS = 60
function M.shown(v)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then return "a " .. type(v) end
  if #v <= SHOWN_CHARS then return v end
  local n, at = 0, 1
  while at <= #v and n < SHOWN_CHARS do
    local b = v:byte(at)
    at = at + (b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1)
    n = n + 1
  end
  if at > #v then return v end
  return v:sub(1, at - 1) .. "..."
end

--- unknown_key(t, known) -> a key of table t that is not in the set
-- known, written for a message ('name', or a number as it is), or nil:
-- an options table or a batch with a misspelt key is refused, not taken
-- as if the key were left out.
function M.unknown_key(t, known)
  for k in pairs(t) do
    if not known[k] then return type(k) == "string" and "'" .. M.shown(k) .. "'" or M.shown(k) end
  end
  return nil
end

--- where(level) -> "file:line: " of the innermost frame of a script or rule
-- on the stack, from the caller's `level` on (as debug.getinfo counts), or
-- "" when there is none (ferry's own Lua is "=[ferry]/...").
function M.where(level)
  for l = level + 1, 1000 do
    local info = debug.getinfo(l, "Sl")
    if not info then break end
    if info.currentline > 0 and info.source:sub(1, 9) ~= "=[ferry]/" then
      -- (the name whole: short_src is cut to 60 characters)
      local name = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
      return name .. ":" .. info.currentline .. ": "
    end
  end
  return ""
end

-- A position in ferry's own Lua ("[ferry]/db.lua:30: "), which a script's
-- reader cannot open or edit.
local FERRY_POSITION = "^%[ferry%]/[%w%._%-]+%.lua:%d+: "
M.FERRY_POSITION = FERRY_POSITION

--- reraise(e, level [, bare]): raises the error e of a call that an API
-- function written in Lua made on the script's behalf, so that it names the
-- line that called that function (`level`, as error() counts from
-- reraise's caller): a string positioned in ferry's own Lua gets that
-- line in place of ferry's; with `bare`, so does a string with no position
-- (a C function called through pcall: no script code ran in between).
-- Anything else goes on untouched: a script's own error (its place is its
-- own), an error object, ferry's error tables, and "cannot connect ..."
-- (no position: ferry's exit code 2 reads it).
function M.reraise(e, level, bare)
  if type(e) == "string" and not e:find("^cannot connect") then
    local p = e:match(FERRY_POSITION)
    if p then error(e:sub(#p + 1), level + 1) end
    if bare then error(e, level + 1) end
  end
  error(e, 0)
end

--- api(f [, bare]) -> a function that calls f and raises its errors at the
-- line of its own caller (see reraise).
function M.api(f, bare)
  local function pass(ok, ...)
    if ok then return ... end
    M.reraise((...), 2, bare)      -- (pass took the wrapper's place: a tail call)
  end
  return function(...) return pass(pcall(f, ...)) end
end

-- An error object has no position of its own; where it was raised is
-- kept here (weak keys) by a handler that sees it first -- db.transaction
-- catches and raises it again, after which the stack no longer shows it.
M.places = setmetatable({}, {__mode = "k"})

-- Whether the error being handled was raised by ferry's own Lua (db.lua
-- raising again what it caught) rather than by a script.  level: the
-- handler's caller's level, as debug.getinfo counts.
local function raised_by_ferry(level)
  for l = level + 1, level + 3 do
    local info = debug.getinfo(l, "S")
    if not info then return false end
    if info.what ~= "C" then return info.source:sub(1, 9) == "=[ferry]/" end
  end
  return false
end

--- mark(e) -> e: as a message handler, keeps the place an error object
-- was raised at; when ferry raises it again (a transaction inside another)
-- the first place stays, when a script raises the same table anew it is
-- that place.
function M.mark(e)
  if type(e) == "table" and not M.is_ferry(e) then
    if M.places[e] == nil or not raised_by_ferry(2) then M.places[e] = M.where(2) end
  end
  return e
end

--- at(e, level) -> the place kept for error object e when ferry raised it
-- again (seen from a message handler at `level`), else nil: a script's own
-- raise is placed where it happens.
function M.at(e, level)
  if type(e) ~= "table" or not raised_by_ferry((level or 1) + 1) then return nil end
  return M.places[e]
end

return M
