-- rules.text: the message text of an audit, first match wins.
--
--   1. the payload itself, when it is a JSON string
--   2. payload.text, payload.message, payload.content (strings only)
--   3. payload.body, only for the actions in M.body_actions
--   4. a non-empty object or array: its compact JSON (PostgreSQL's jsonb
--      text without the whitespace between tokens), cut to
--      M.max_compact_chars characters
--   5. otherwise nothing: the audit is skipped ("no extractable text")
--
-- A string counts when it has a non-whitespace character; it is used
-- unchanged.  Edit the lists below and re-run: no rebuild.
local json = require "json"

local M = {}

M.fields = {"text", "message", "content"}
M.body_field = "body"
M.body_actions = {message_sent = true, message_received = true}
M.max_compact_chars = 1000

local has_text = json.has_text
-- An object json.decode refuses for its depth (nested deeper than its
-- 20,000 levels, which PostgreSQL stores when max_stack_depth is raised)
-- has its string members cut out of the text instead (ferry.jsontext: no
-- recursion).
local object_strings = require("ferry.jsontext").object_strings

--- extract(payload, action) -> content, source | nil
-- payload is the jsonb's text as PostgreSQL prints it (payload::text), or
-- nil for SQL NULL.  source is "payload", "payload.<field>" or
-- "compact_json".
function M.extract(payload, action)
  if payload == nil then return nil end
  local first = payload:sub(1, 1)
  if first == '"' then
    local s = json.decode(payload)
    if has_text(s) then return s, "payload" end
    return nil
  end
  if first == "{" then
    if payload == "{}" then return nil end
    local ok, obj = pcall(json.decode, payload)
    if not ok then
      -- only past json.decode's depth; any other refusal stays an error
      if not tostring(obj):find("too many nested", 1, true) then error(obj, 0) end
      obj = object_strings(payload)
    end
    for _, f in ipairs(M.fields) do
      local v = obj[f]
      if has_text(v) then return v, "payload." .. f end
    end
    if M.body_actions[action] then
      local v = obj[M.body_field]
      if has_text(v) then return v, "payload." .. M.body_field end
    end
    return json.compact(payload, M.max_compact_chars), "compact_json"
  end
  if first == "[" then
    if payload == "[]" then return nil end
    return json.compact(payload, M.max_compact_chars), "compact_json"
  end
  return nil     -- numbers, booleans, JSON null
end

local t = require "ferry.testing"
M.tests = {
  ["json string payload"] = function()
    t.eq({M.extract('"Hello there"', "x")}, {"Hello there", "payload"})
    t.eq(M.extract('"   "', "x"), nil)
    t.eq(M.extract('""', "x"), nil)
  end,
  ["field priority"] = function()
    t.eq({M.extract('{"text": "a", "message": "b", "content": "c"}', "x")}, {"a", "payload.text"})
    t.eq({M.extract('{"message": "b", "content": "c"}', "x")}, {"b", "payload.message"})
    t.eq({M.extract('{"content": "c"}', "x")}, {"c", "payload.content"})
  end,
  ["non-string and blank fields fall through"] = function()
    t.eq({M.extract('{"text": 42, "message": "  ", "content": "ok"}', "x")}, {"ok", "payload.content"})
    t.eq({M.extract('{"text": {"a": 1}}', "x")}, {'{"text":{"a":1}}', "compact_json"})
  end,
  ["body only for message actions"] = function()
    t.eq({M.extract('{"body": "hi"}', "message_sent")}, {"hi", "payload.body"})
    t.eq({M.extract('{"body": "hi"}', "message_received")}, {"hi", "payload.body"})
    t.eq({M.extract('{"body": "hi"}', "stage_changed")}, {'{"body":"hi"}', "compact_json"})
  end,
  ["compact json keeps text exactly"] = function()
    t.eq({M.extract('{"a": 1, "b": [1, 2], "s": "x y"}', "x")}, {'{"a":1,"b":[1,2],"s":"x y"}', "compact_json"})
    t.eq({M.extract('[1, 2.50, 123456789012345678901234567890.000001]', "x")},
         {"[1,2.50,123456789012345678901234567890.000001]", "compact_json"})
  end,
  ["cut at 1000 characters, never inside a character"] = function()
    local long = '{"k": "' .. string.rep("é", 1200) .. '"}'
    local s = M.extract(long, "x")
    t.eq(json.utf8_len(s), 1000)
    t.eq(json.utf8_valid(s), true)
  end,
  ["objects deeper than json.decode goes"] = function()
    local deep = string.rep("[", 25000) .. string.rep("]", 25000)
    t.eq({M.extract('{"x": ' .. deep .. ', "text": "beside"}', "x")}, {"beside", "payload.text"})
    t.eq({M.extract('{"text": {"a": ' .. deep .. '}, "message": 7, "b\\"}": "]", "body": "say \\"hi\\""}', "message_sent")},
         {'say "hi"', "payload.body"})
    local s, src = M.extract('{"a": ' .. deep .. '}', "x")
    t.eq({s, src}, {'{"a":' .. string.rep("[", 995), "compact_json"})
    -- (only for that: text json.decode refuses for another reason is an error)
    t.eq((pcall(M.extract, '{"text": "hi", garbage', "x")), false)
  end,
  ["nothing to extract"] = function()
    for _, p in ipairs{"{}", "[]", "null", "42", "true", "false", "-1.5"} do t.eq(M.extract(p, "x"), nil, p) end
    t.eq(M.extract(nil, "x"), nil)
  end,
}

return M
