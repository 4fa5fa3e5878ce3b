-- rules.memory_notes: how Batch 5 turns a lead's state_metadata into
-- MemoryNote rows.  Edit and re-run: no rebuild.
--
--   leaves    every leaf of the object, nested objects flattened to dotted
--             keys ({"preferences": {"color": "red"}} -> preferences.color);
--             an array of scalars is one leaf, its items joined with ", ";
--             an array holding an object (or an array) is one leaf, its
--             compact JSON; null and blank strings are no leaf
--   kind      key "summary" -> summary, keys under "preferences." ->
--             preference, everything else -> fact
--   content   "<key>: <value>"
--   metadata  {"source", "leadId", "key", "createdBy"}
--
-- Exactness.  The input is the jsonb's text exactly as PostgreSQL prints it
-- (state_metadata::text), and the leaves are cut out of that text rather
-- than out of a decoded Lua table: a number keeps PostgreSQL's text (1500,
-- 2.50, 12345678901234567890.5, never 1500.0 or 1.2345678901235e+19), a
-- boolean is true/false, and an array holding objects becomes
-- json.compact() of its own substring -- PostgreSQL's text with the
-- whitespace between tokens removed, so key order (jsonb's: shorter keys
-- first, then bytewise), escapes and numbers are PostgreSQL's.  Only
-- strings are decoded (their escapes resolved) before they are used.
local json = require "json"

local M = {}

M.source = "state_metadata_backfill"

--- HAS_STATE_SQL: a "Lead" l is processed when its state_metadata is a
-- non-empty JSON object.
M.HAS_STATE_SQL = [[jsonb_typeof(l.state_metadata) = 'object' AND l.state_metadata <> '{}'::jsonb]]
--- MINE_SQL: a "MemoryNote" m is this backfill's ($1 the migration id, $2
-- M.source); every other note is live.
M.MINE_SQL = [[(m.metadata->>'createdBy' = $1 AND m.metadata->>'source' = $2) IS TRUE]]
M.separator = "."          -- between the keys of nested objects
M.join = ", "              -- between the items of an array of scalars

-- Kinds: exact keys first, then key prefixes (first match wins), then the
-- default.
M.kind_by_key = {summary = "summary"}
M.kind_by_prefix = {{"preferences.", "preference"}}
M.default_kind = "fact"

--- kind(key) -> the MemoryNote.kind of a leaf
function M.kind(key)
  local k = M.kind_by_key[key]
  if k then return k end
  for _, p in ipairs(M.kind_by_prefix) do
    if key:sub(1, #p[1]) == p[1] then return p[2] end
  end
  return M.default_kind
end

--- content(key, value, kind) -> the note's sentence; it must contain the
-- value's text (the full-text index searches it).
function M.content(key, value, kind)
  local _ = kind
  return key .. ": " .. value
end

--- metadata(lead_id, key, ctx) -> MemoryNote.metadata
function M.metadata(lead_id, key, ctx)
  return {source = M.source, leadId = lead_id, key = key, createdBy = ctx.migration}
end


----------------------------------------------------------------------------
-- the scanner over PostgreSQL's JSON text

local jt = require "ferry.jsontext"
local sub, byte = string.sub, string.byte
local has_text = json.has_text
local skip_ws, string_end, string_value, container_end, scalar =
  jt.skip_ws, jt.string_end, jt.string_value, jt.container_end, jt.scalar
local B_QUOTE, B_LBRACE, B_LBRACKET, B_RBRACKET = byte('"'), byte("{"), byte("["), byte("]")
local B_RBRACE, B_COMMA = byte("}"), byte(",")

local walk

-- an array at i: one leaf, or none; returns the index after it
local function walk_array(s, i, key, out)
  local items, nested = {}, false
  local p = skip_ws(s, i + 1)
  if byte(s, p) == B_RBRACKET then return p + 1 end           -- []: nothing
  while true do
    local b = byte(s, p)
    if b == B_LBRACE or b == B_LBRACKET then
      nested = true
      p = container_end(s, p) + 1
    elseif b == B_QUOTE then
      local j = string_end(s, p)
      local v = string_value(s, p, j)
      if has_text(v) then items[#items + 1] = v end
      p = j + 1
    else
      local v, j = scalar(s, p)
      if v ~= "null" then items[#items + 1] = v end
      p = j
    end
    p = skip_ws(s, p)
    b = byte(s, p)
    if b == B_RBRACKET then break end
    if b ~= B_COMMA then error("malformed array in JSON text", 0) end
    p = skip_ws(s, p + 1)
  end
  if nested then
    out[#out + 1] = {key = key, value = json.compact(sub(s, i, p))}
  elseif #items > 0 then
    out[#out + 1] = {key = key, value = table.concat(items, M.join)}
  end
  return p + 1
end

-- an object at i: walks its members; returns the index after it
local function walk_object(s, i, prefix, out)
  local p = skip_ws(s, i + 1)
  if byte(s, p) == B_RBRACE then return p + 1 end
  while true do
    if byte(s, p) ~= B_QUOTE then error("malformed object in JSON text", 0) end
    local j = string_end(s, p)
    local k = string_value(s, p, j)
    p = skip_ws(s, j + 1)
    if sub(s, p, p) ~= ":" then error("malformed object in JSON text", 0) end
    p = walk(s, skip_ws(s, p + 1), prefix and (prefix .. M.separator .. k) or k, out)
    p = skip_ws(s, p)
    local b = byte(s, p)
    if b == B_RBRACE then return p + 1 end
    if b ~= B_COMMA then error("malformed object in JSON text", 0) end
    p = skip_ws(s, p + 1)
  end
end

walk = function(s, i, key, out)
  local b = byte(s, i)
  if b == B_LBRACE then return walk_object(s, i, key, out) end
  if b == B_LBRACKET then return walk_array(s, i, key, out) end
  if b == B_QUOTE then
    local j = string_end(s, i)
    local v = string_value(s, i, j)
    if has_text(v) then out[#out + 1] = {key = key, value = v} end
    return j + 1
  end
  local v, j = scalar(s, i)
  if v == "" then error("malformed JSON text", 0) end
  if v ~= "null" then out[#out + 1] = {key = key, value = v} end
  return j
end

--- leaves(text) -> { {key=, value=}, ... } in the text's order.  text is a
-- jsonb's text (state_metadata::text); anything but an object has no leaves.
function M.leaves(text)
  local out = {}
  if type(text) ~= "string" then return out end
  local p = skip_ws(text, 1)
  if byte(text, p) ~= B_LBRACE then return out end
  walk_object(text, p, nil, out)
  return out
end

-- (a kind or content an edited rule made of something else than text)
local function not_text(what, key, value)
  if type(value) ~= "string" then
    error(string.format("rules.memory_notes: %s of %s is %s, not text", what, key,
                        value == nil and "nil" or "a " .. type(value)), 0)
  end
end

--- notes(text) -> { {key=, kind=, content=}, ... }: the notes of one lead.
-- Two leaves that flatten to the same key ({"a.b": 1, "a": {"b": 2}}) are
-- an error: the lead is reported and none of its notes is written.
function M.notes(text)
  local notes, seen = {}, {}
  for i, leaf in ipairs(M.leaves(text)) do
    if seen[leaf.key] then
      error(string.format("two leaves flatten to the key %q", leaf.key), 0)
    end
    seen[leaf.key] = true
    local kind = M.kind(leaf.key)
    local content = M.content(leaf.key, leaf.value, kind)
    not_text("kind", leaf.key, kind)
    if kind == "" then error("rules.memory_notes: kind of " .. leaf.key .. " is empty", 0) end
    not_text("content", leaf.key, content)
    if not has_text(content) then error("rules.memory_notes: content of " .. leaf.key .. " is blank", 0) end
    notes[i] = {key = leaf.key, kind = kind, content = content}
  end
  return notes
end

----------------------------------------------------------------------------
local t = require "ferry.testing"

local function kv(text)
  local out = {}
  for _, l in ipairs(M.leaves(text)) do out[#out + 1] = l.key .. "=" .. l.value end
  return out
end

M.tests = {
  ["flat scalars keep PostgreSQL's text"] = function()
    t.eq(kv('{"budget": 1500, "vip": true, "off": false, "ratio": 2.50, "city": "Lyon"}'),
         {"budget=1500", "vip=true", "off=false", "ratio=2.50", "city=Lyon"})
    t.eq(kv('{"big": 12345678901234567890.5, "neg": -0.001, "digits": "007"}'),
         {"big=12345678901234567890.5", "neg=-0.001", "digits=007"})
  end,
  ["nested objects flatten to dotted keys"] = function()
    t.eq(kv('{"preferences": {"color": "red", "delivery": {"day": "saturday", "window": "morning"}}}'),
         {"preferences.color=red", "preferences.delivery.day=saturday", "preferences.delivery.window=morning"})
    t.eq(kv('{"a": {}, "b": {"c": {}}}'), {})
  end,
  ["arrays of scalars are joined"] = function()
    t.eq(kv('{"tags": ["vip", "repeat", "door"]}'), {"tags=vip, repeat, door"})
    t.eq(kv('{"mix": [1, "two", true, 3.50]}'), {"mix=1, two, true, 3.50"})
    t.eq(kv('{"gaps": ["a", null, "  ", "b"]}'), {"gaps=a, b"})
    t.eq(kv('{"none": [], "blank": ["", null]}'), {})
  end,
  ["arrays holding objects are compact JSON of PostgreSQL's text"] = function()
    t.eq(kv('{"rooms": [{"name": "hall", "doors": 1}, {"name": "kitchen", "doors": 2}]}'),
         {'rooms=[{"name":"hall","doors":1},{"name":"kitchen","doors":2}]'})
    t.eq(kv('{"x": [1, {"a": "b c", "n": 2.50}]}'), {'x=[1,{"a":"b c","n":2.50}]'})
    t.eq(kv('{"x": [[1, 2], [3]]}'), {"x=[[1,2],[3]]"})
    t.eq(kv('{"x": [{}]}'), {"x=[{}]"})
    t.eq(kv('{"x": [{"q": "say \\"hi\\", [ok]"}]}'), {'x=[{"q":"say \\"hi\\", [ok]"}]'})
  end,
  ["null and blank strings are no leaf"] = function()
    t.eq(kv('{"notes": null, "nickname": "", "summary": "   ", "nbsp": "\u{a0}\u{2003}", "ok": "x"}'), {"ok=x"})
  end,
  ["strings are decoded"] = function()
    t.eq(kv('{"q": "say \\"hi\\"\\n\\u00e9", "path": "a\\\\b", "u": "chêne 😊"}'),
         {'q=say "hi"\né', "path=a\\b", "u=chêne 😊"})
    t.eq(kv('{"we\\"ird": {"k": 1}}'), {'we"ird.k=1'})
  end,
  ["only objects have leaves"] = function()
    for _, s in ipairs{"[1, 2]", '"text"', "42", "true", "null", "{}"} do t.eq(M.leaves(s), {}, s) end
    t.eq(M.leaves(nil), {})
  end,
  ["kinds"] = function()
    t.eq(M.kind("summary"), "summary")
    t.eq(M.kind("preferences.color"), "preference")
    t.eq(M.kind("preferences.delivery.day"), "preference")
    t.eq(M.kind("preferences"), "fact")
    t.eq(M.kind("summary.short"), "fact")
    t.eq(M.kind("budget"), "fact")
  end,
  ["notes: kind and content"] = function()
    t.eq(M.notes('{"summary": "Wants a door", "budget": 500, "preferences": {"color": "oak"}}'), {
      {key = "summary", kind = "summary", content = "summary: Wants a door"},
      {key = "budget", kind = "fact", content = "budget: 500"},
      {key = "preferences.color", kind = "preference", content = "preferences.color: oak"},
    })
  end,
  ["two leaves with one key are an error"] = function()
    t.raises(function() M.notes('{"a.b": 1, "a": {"b": 2}}') end, 'two leaves flatten to the key "a.b"')
  end,
  -- notes() refuses a kind that is not text or is empty (the lead is a row
  -- error): holds for any valid kind_by_key, kind_by_prefix, default_kind.
  ["kinds are non-empty text"] = function()
    local function valid(kind, where)
      if type(kind) ~= "string" or kind == "" then
        error(string.format("%s: kind %s is not a non-empty string (notes() refuses it)", where, t.show(kind)))
      end
    end
    for key, kind in pairs(M.kind_by_key) do valid(kind, string.format("kind_by_key[%s]", t.show(key))) end
    for i, p in ipairs(M.kind_by_prefix) do
      local where = string.format("kind_by_prefix[%d]", i)
      if type(p) ~= "table" or type(p[1]) ~= "string" then
        error(string.format("%s: %s is not a {prefix, kind} pair with a string prefix", where, t.show(p)))
      end
      valid(p[2], string.format("%s (prefix %q)", where, p[1]))
    end
    valid(M.default_kind, "default_kind")
  end,
  ["a kind or content that is not text is named as such"] = function()
    local content, kind = M.content, M.kind
    M.content = function() return 500 end
    local _, err = pcall(M.notes, '{"budget": 500}')
    M.content = content
    t.eq(err, "rules.memory_notes: content of budget is a number, not text")
    M.kind = function() return 7 end
    _, err = pcall(M.notes, '{"budget": 500}')
    M.kind = kind
    t.eq(err, "rules.memory_notes: kind of budget is a number, not text")
  end,
  ["metadata"] = function()
    local ctx = {migration = "m5"}
    t.eq(M.metadata("l1", "preferences.color", ctx),
         {source = "state_metadata_backfill", leadId = "l1", key = "preferences.color", createdBy = "m5"})
  end,
}

return M
