-- rules.roles: which audits carry messages, and the Message.role of each.
--
-- An audit is processed when its actor, lower-cased and trimmed, is a key
-- of M.map.  Add a key to add an actor: no code change, no rebuild; re-run
-- the backfill and the new actor's audits are picked up.
local M = {}

M.map = {
  customer  = "user",
  user      = "user",
  agent     = "assistant",
  assistant = "assistant",
  system    = "system",
  tool      = "tool",
}

-- The roles the Message table accepts (its CHECK constraint).
M.valid_roles = {user = true, assistant = true, system = true, tool = true}

--- normalize(actor) -> the actor lower-cased, whitespace trimmed.
-- The SQL side filters with lower(btrim(actor, <the same whitespace>)).
-- A backfill meets the same few actors again and again: each is normalized
-- once (the cache holds at most 1000 of them, then starts over).
local normalized, cached = {}, 0
function M.normalize(actor)
  local n = normalized[actor]
  if n then return n end
  n = actor:lower():match("^%s*(.-)%s*$")
  if cached >= 1000 then normalized, cached = {}, 0 end
  normalized[actor], cached = n, cached + 1
  return n
end

--- role(actor) -> the message role, or nil when the actor is not mapped.
function M.role(actor)
  if type(actor) ~= "string" then return nil end
  local role = M.map[M.normalize(actor)]
  if role and not M.valid_roles[role] then
    error(string.format("rules.roles maps %q to %q, which Message.role does not allow", actor, role))
  end
  return role
end

--- PROCESSED_SQL: the SQL twin of role(a.actor) ~= nil for an "Audit" a
-- with a lead, $1 being db.array(actors()).  The whitespace set is Lua's
-- %s (vertical tab as \x0b: PostgreSQL's E'' strings have no \v, which
-- would be the letter v), and lower() is ASCII-only (COLLATE "C", as Lua's string.lower), so
-- SQL and normalize agree whatever the database's locale (in a UTF-8
-- locale lower('ASSİSTANT') would be 'assistant').  An actor already in
-- normal form (most are) matches the plain equality first, which costs a
-- fraction of lower(btrim()).
M.PROCESSED_SQL = [[
  a.lead_id IS NOT NULL
  AND (a.actor = ANY($1::text[])
       OR lower(btrim(a.actor, E' \t\n\r\f\x0b') COLLATE "C") = ANY($1::text[]))]]

--- actors() -> the mapped actor names, sorted (bound as a text[] filter).
function M.actors()
  local list = {}
  -- (a key not lower-case and trimmed matches no actor, in Lua as in SQL;
  -- the "keys in normal form" test below makes `ferry check` say so)
  for k in pairs(M.map) do
    if M.normalize(k) == k then list[#list + 1] = k end
  end
  table.sort(list)
  return list
end

local t = require "ferry.testing"
M.tests = {
  ["default map"] = function()
    t.eq(M.role("customer"), "user")
    t.eq(M.role("user"), "user")
    t.eq(M.role("agent"), "assistant")
    t.eq(M.role("assistant"), "assistant")
    t.eq(M.role("system"), "system")
    t.eq(M.role("tool"), "tool")
  end,
  ["case and spaces"] = function()
    t.eq(M.role(" Customer "), "user")
    t.eq(M.role("AGENT"), "assistant")
    t.eq(M.role("\tSystem\n"), "system")
  end,
  -- These three hold for any valid map, so adding an actor above keeps them green.
  ["unmapped actors"] = function()
    for _, a in ipairs{"webhook", "crm", "scheduler", "nobody at all"} do
      if M.map[a] == nil then t.eq(M.role(a), nil, a) end
    end
    t.eq(M.role(""), nil)
    t.eq(M.role(nil), nil)
  end,
  ["keys in normal form"] = function()
    for k in pairs(M.map) do
      t.eq(M.normalize(k), k, string.format("map key %q: actors are lower-cased and trimmed before the lookup, "
                                             .. "so write it as %q", k, M.normalize(k)))
    end
  end,
  -- M.role refuses a mapped role the Message table does not allow: every
  -- row of that actor would be an error.
  ["mapped roles are valid"] = function()
    local allowed = {}
    for r in pairs(M.valid_roles) do allowed[#allowed + 1] = r end
    table.sort(allowed)
    for k, role in pairs(M.map) do
      if not M.valid_roles[role] then
        error(string.format("map key %s: role %s is not one Message.role allows (%s)",
                            t.show(k), t.show(role), table.concat(allowed, ", ")))
      end
    end
  end,
  ["actors sorted"] = function()
    local keys = {}
    for k in pairs(M.map) do keys[#keys + 1] = k end
    table.sort(keys)
    t.eq(M.actors(), keys)
    for _, a in ipairs{"agent", "assistant", "customer", "system", "tool", "user"} do
      t.eq(M.map[a] ~= nil, true, a)
    end
  end,
}

return M
