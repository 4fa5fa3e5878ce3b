-- ferry.jsontext: a scanner over JSON text as PostgreSQL prints it (a
-- jsonb's ::text), for rules that cut values out of that text rather than
-- decode it whole: numbers keep PostgreSQL's text, and no nesting depth
-- limits it (it counts brackets; nothing recurses).  Positions are byte
-- indexes into the text; malformed text raises "... in JSON text".
--
--   local jt = require "ferry.jsontext"
--   jt.skip_ws(s, i)          -> the index of the first non-blank at or after i
--   jt.string_end(s, i)       -> i at a string's opening quote: its closing quote
--   jt.string_value(s, i, j)  -> the string from quote i to quote j, escapes resolved
--   jt.container_end(s, i)    -> i at '{' or '[': its closing bracket
--   jt.scalar(s, i)           -> i at a number, true, false or null: its text, the index after it
--   jt.object_strings(s)      -> the members of the object s whose values are strings, {key = value}
local json = require "json"

local M = {}

local find, sub, byte = string.find, string.sub, string.byte
local B_QUOTE, B_LBRACE, B_LBRACKET = byte('"'), byte("{"), byte("[")
local B_RBRACE, B_COMMA = byte("}"), byte(",")

-- (the scanner's own calls go to these locals, unchecked; the functions
-- of M check their arguments first: see the end)
local function skip_ws(s, i)
  local _, e = find(s, "^[ \t\n\r]*", i)
  return e + 1
end

local function string_end(s, i)
  local p = i + 1
  while true do
    local j = find(s, '["\\]', p)
    if not j then error("unterminated string in JSON text", 0) end
    if byte(s, j) == B_QUOTE then return j end
    p = j + 2
  end
end

local function string_value(s, i, j)
  local raw = sub(s, i + 1, j - 1)
  if not find(raw, "\\", 1, true) then return raw end
  -- (an escape JSON has not -- "\q", "\u00", a lone surrogate -- in the
  -- words of the other malformed texts, not cjson's)
  local ok, v = pcall(json.decode, sub(s, i, j))
  if not ok or type(v) ~= "string" then error("malformed string in JSON text", 0) end
  return v
end

local function container_end(s, i)
  local depth, p = 0, i
  while true do
    local j = find(s, '["{}%[%]]', p)
    if not j then error("unterminated container in JSON text", 0) end
    local b = byte(s, j)
    if b == B_QUOTE then
      p = string_end(s, j) + 1
    else
      if b == B_LBRACE or b == B_LBRACKET then depth = depth + 1 else depth = depth - 1 end
      if depth == 0 then return j end
      p = j + 1
    end
  end
end

local function scalar(s, i)
  local j = find(s, "[,%]}%s]", i) or (#s + 1)
  return sub(s, i, j - 1), j
end

-- (the index after the value at i)
local function value_end(s, i)
  local b = byte(s, i)
  if b == B_QUOTE then return string_end(s, i) + 1 end
  if b == B_LBRACE or b == B_LBRACKET then return container_end(s, i) + 1 end
  local v, j = scalar(s, i)
  if v == "" then error("malformed JSON text", 0) end
  return j
end

local function object_strings(s)
  local out = {}
  local p = skip_ws(s, 1)
  if byte(s, p) ~= B_LBRACE then error("malformed object in JSON text", 0) end
  p = skip_ws(s, p + 1)
  if byte(s, p) == B_RBRACE then return out end
  while true do
    if byte(s, p) ~= B_QUOTE then error("malformed object in JSON text", 0) end
    local j = string_end(s, p)
    local key = string_value(s, p, j)
    p = skip_ws(s, j + 1)
    if sub(s, p, p) ~= ":" then error("malformed object in JSON text", 0) end
    local v = skip_ws(s, p + 1)
    p = value_end(s, v)
    if byte(s, v) == B_QUOTE then out[key] = string_value(s, v, p - 1) end
    p = skip_ws(s, p)
    local b = byte(s, p)
    if b == B_RBRACE then return out end
    if b ~= B_COMMA then error("malformed object in JSON text", 0) end
    p = skip_ws(s, p + 1)
  end
end

-- A wrong argument is said as Lua says it, at the caller's line and naming
-- the function, not as an error inside this file ("bad argument #1 to
-- 'find'", "attempt to perform arithmetic on a nil value").  Positions are
-- byte indexes in the text, from 1 to just past its end.
local function bad(name, n, why)
  error(string.format("bad argument #%d to 'ferry.jsontext.%s' (%s)", n, name, why), 4)
end
local function check_text(name, s)
  if type(s) ~= "string" then bad(name, 1, "string expected, got " .. type(s)) end
end
-- A float holding a whole number (2.0) is that position, as Lua's own
-- string functions take it; 1.5 is refused in their words.  math.type
-- first: math.tointeger would also turn the string "2" into 2.
-- Returns the position as an integer.
local function check_index(name, s, n, i)
  if not math.type(i) then bad(name, n, "an integer expected, got " .. type(i)) end
  local int = math.tointeger(i)
  if not int then bad(name, n, "number has no integer representation") end
  if int < 1 or int > #s + 1 then bad(name, n, string.format("%d is out of the text: 1 to %d", int, #s + 1)) end
  return int
end
local function at(name, f)
  return function(s, i)
    check_text(name, s)
    return f(s, check_index(name, s, 2, i))
  end
end
M.skip_ws = at("skip_ws", skip_ws)
M.string_end = at("string_end", string_end)
M.container_end = at("container_end", container_end)
M.scalar = at("scalar", scalar)
function M.string_value(s, i, j)
  check_text("string_value", s)
  i = check_index("string_value", s, 2, i)
  j = check_index("string_value", s, 3, j)
  return string_value(s, i, j)
end
function M.object_strings(s)
  check_text("object_strings", s)
  return object_strings(s)
end

return M
