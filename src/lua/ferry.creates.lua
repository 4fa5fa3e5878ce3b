-- ferry.creates: what a dry run of a schema step (up.sql) can tell without
-- running it -- which of the objects its CREATEs name the database has
-- already (moved out of ferry.engine, whose main chunk is at Lua's limit
-- of 200 locals; used by its dry runs of up and run).
local db = require "db"
local db_core = require "db.core"

-- What a dry run of a schema step (up.sql) can tell without running it:
-- whether the database has already what the script creates, which makes
-- the real run fail with "already exists" (on a database set up without
-- ferry: a schema dump, the contract schema).  The script's statements are
-- read as the server splits them (comments, strings and dollar-quoted
-- bodies skipped), and of each CREATE its first words: a table, index,
-- sequence, view, schema, type or extension with a name, not IF NOT
-- EXISTS, OR REPLACE or TEMP, looked up where the CREATE would put it.
-- Better a check missed than a dry run that fails a script that would
-- pass, so only what comes before anything that could change what exists
-- or where names go counts: the reading stops at the first statement that
-- is no CREATE, COMMENT, GRANT, REVOKE or INSERT (a DROP, an ALTER, a DO
-- block, a SET search_path, a SELECT of a function ...), and once a step
-- of an `up --dry-run` has one, the steps after it are not read either
-- (what it would have done is not there).  A name the tokens do not end
-- cleanly (U&"...") or that has more parts than schema.name is left to the
-- real run.
local CREATES = {table = "relation", index = "index", sequence = "relation", view = "relation",
                 schema = "schema", type = "type", extension = "extension"}
local CREATE_MODIFIERS = {global = true, ["local"] = true, unlogged = true, unique = true, recursive = true,
                          materialized = true}
-- the statements that change nothing of what exists or where names go
local HARMLESS = {create = true, comment = true, grant = true, revoke = true, insert = true}
local NAMEDATALEN = 64

local function lower_at(t, i) return t[i] and t[i]:lower() end

-- A name as the server keeps it: folded to lower case unless quoted, cut
-- to NAMEDATALEN - 1 bytes (at a character's start).
local function stored_name(tok)
  local name = tok:sub(1, 1) == '"' and tok:sub(2, -2):gsub('""', '"') or tok:lower()
  if #name >= NAMEDATALEN then
    local cut = NAMEDATALEN
    repeat cut = cut - 1 until cut == 0 or (name:byte(cut + 1) or 0) & 0xC0 ~= 0x80
    name = name:sub(1, cut)
  end
  return name
end

-- The name written from token i of t on (a.b, "A"."b"): {written =, parts
-- = {stored names}}, and the index after it; nil when there is none there,
-- or when the tokens stop right after it at something else than the
-- statement's end (U&"x", a name the tokens do not take whole).
local function name_at(t, i)
  local written, parts = {}, {}
  while true do
    local tok = t[i]
    if not tok or tok:find("^[.,()]") then return nil end
    written[#written + 1] = tok
    parts[#parts + 1] = stored_name(tok)
    i = i + 1
    if t[i] ~= "." then break end
    i = i + 1
  end
  if t[i] == nil and t.stop ~= "" and t.stop ~= ";" then return nil end
  return {written = table.concat(written, "."), parts = parts}, i
end

-- The object a CREATE statement's tokens t name, as {kind =, name =,
-- schema = (nil: the current one), on = (an index's table, as written),
-- on_schema =}, or nil (see above).
local function created_object(t)
  local i, w, temp = 2, lower_at(t, 2), false
  if w == "or" then return nil end
  while w and (CREATE_MODIFIERS[w] or w == "temp" or w == "temporary") do
    temp = temp or w == "temp" or w == "temporary"
    i = i + 1
    w = lower_at(t, i)
  end
  local kind = CREATES[w or ""]
  if temp or not kind then return nil end
  i = i + 1
  if w == "index" and lower_at(t, i) == "concurrently" then i = i + 1 end
  local after = lower_at(t, i)
  if after == "if" or (w == "index" and after == "on") or (w == "schema" and after == "authorization") then
    return nil
  end
  local name, j = name_at(t, i)
  if not name or #name.parts > ((kind == "schema" or kind == "extension" or kind == "index") and 1 or 2) then
    return nil
  end
  local o = {kind = kind, name = name.parts[#name.parts], schema = #name.parts == 2 and name.parts[1] or nil}
  if kind == "index" then
    -- (an index goes in its table's schema)
    if lower_at(t, j) ~= "on" then return nil end
    j = j + 1
    if lower_at(t, j) == "only" then j = j + 1 end
    local on = name_at(t, j)
    if not on or #on.parts > 2 then return nil end
    o.on, o.on_schema = on.written, #on.parts == 2 and on.parts[1] or nil
  end
  return o
end

-- What the up.sql text sql creates that the database has: a list of
-- {kind =, name =} in the script's order (empty when the lookup fails).
-- state: {unsure = true} once a script read (this one included) had a
-- statement that could change what exists, after which nothing is read.
local function existing_creations(sql, state)
  if state.unsure then return {} end
  local heads, stopped = db_core.statement_heads(sql, HARMLESS)
  if stopped then state.unsure = true end
  local wanted = {}
  for _, t in ipairs(heads) do
    local o = t[1]:lower() == "create" and created_object(t)
    if o then wanted[#wanted + 1] = o end
  end
  if #wanted == 0 then return {} end
  local cols = {{}, {}, {}, {}, {}}
  for i, o in ipairs(wanted) do
    cols[1][i], cols[2][i], cols[3][i] = o.kind, o.name, o.schema or db.NULL
    cols[4][i], cols[5][i] = o.on or db.NULL, o.on_schema or db.NULL
  end
  local ok, rows = pcall(db.query, [[
    SELECT x.i FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                    WITH ORDINALITY AS x(kind, name, schema, on_table, on_schema, i)
     CROSS JOIN LATERAL (SELECT CASE WHEN x.kind = 'index'
                                     THEN coalesce((SELECT c.relnamespace FROM pg_class c
                                                     WHERE c.oid = to_regclass(x.on_table)),
                                                   (SELECT n.oid FROM pg_namespace n
                                                     WHERE n.nspname = coalesce(x.on_schema, current_schema())))
                                     ELSE (SELECT n.oid FROM pg_namespace n
                                            WHERE n.nspname = coalesce(x.schema, current_schema())) END AS ns) w
     WHERE CASE x.kind
             WHEN 'schema' THEN EXISTS (SELECT FROM pg_namespace n WHERE n.nspname = x.name)
             WHEN 'extension' THEN EXISTS (SELECT FROM pg_extension e WHERE e.extname = x.name)
             WHEN 'type' THEN EXISTS (SELECT FROM pg_type y WHERE y.typname = x.name AND y.typnamespace = w.ns)
             ELSE EXISTS (SELECT FROM pg_class c WHERE c.relname = x.name AND c.relnamespace = w.ns) END
     ORDER BY x.i]], db.array(cols[1]), db.array(cols[2]), db.array(cols[3]), db.array(cols[4]), db.array(cols[5]))
  if not ok then return {} end
  local found = {}
  for k, r in ipairs(rows) do
    local o = wanted[r.i]
    found[k] = {kind = o.kind == "index" and "relation" or o.kind, last = o.name}
  end
  return found
end

-- Whether the up.sql text sql may make the relation whose absence a
-- statement's error, message, names: false only when that error is the
-- server's "relation \"x\" does not exist" (SQLSTATE 42P01, in English:
-- translated, nothing is told) and no CREATE of a table, view or sequence
-- in sql (IF NOT EXISTS, OR REPLACE, TEMP, UNLOGGED, MATERIALIZED ... too,
-- anywhere in the script) has that name -- as the server keeps it, folded
-- unless quoted; the schemas compared when both name one.  The engine's
-- hint that such a step should sort first is then no reason to rename.
local RELATION_KINDS = {table = true, view = true, sequence = true}
local EVERY_STATEMENT = setmetatable({}, {__index = function() return true end})
local function may_create(sql, message)
  local missing = message:find("[SQLSTATE 42P01]", 1, true) and message:match('relation "([^"]+)" does not exist')
  if not missing then return true end
  local schema, name = missing:match("^([^.]+)%.([^.]+)$")
  name = name or missing
  for _, t in ipairs(db_core.statement_heads(sql, EVERY_STATEMENT)) do
    if lower_at(t, 1) == "create" then
      local i = 2
      while t[i] and not RELATION_KINDS[lower_at(t, i)] and i < 6 do i = i + 1 end
      if RELATION_KINDS[lower_at(t, i) or ""] then
        i = i + 1
        if lower_at(t, i) == "if" then i = i + 3 end       -- IF NOT EXISTS
        local made = name_at(t, i)
        local parts = made and made.parts or {}
        if parts[#parts] == name and (#parts < 2 or not schema or parts[1] == schema) then return true end
      end
    end
  end
  return false
end

return {existing_creations = existing_creations, may_create = may_create}
