-- ferry.engine: the commands.  The C host calls the function this chunk
-- returns with the parsed command line {flags = {...}, args = {...}} and
-- exits with the code it returns.
local sys = require "ferry.sys"
local log = require "log"
local stats = require "stats"
local json = require "json"
local uuid = require "uuid"
local progress = require "progress"
local db = require "db"
local db_core = require "db.core"

local LOCK_KEY = 7366291803        -- pg_try_advisory_lock key: "ferry" migrations
local LOCK_CLASSID, LOCK_OBJID = LOCK_KEY >> 32, LOCK_KEY & 0xffffffff
-- pg_locks l's rows of that lock granted in this database (a bigint key:
-- its high half in classid, its low half in objid, objsubid 1); the two
-- halves are the query's parameters $<cls> and $<obj>.
local function holds_lock_sql(cls, obj)
  return string.format("l.locktype = 'advisory' AND l.granted AND l.classid = $%d AND l.objid = $%d AND l.objsubid = 1 "
                       .. "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())", cls, obj)
end
-- Whether ferry.history's row h, when 'running', is of a command that is
-- gone (killed, its connection lost): its server session no longer holds
-- the migration lock -- which a command holds from before it writes its
-- first row to after it closes its last -- or that session has written a
-- later row.  Not whether the session is there: a connection pooler lends a
-- server session on once its client is gone (after DISCARD ALL, which
-- drops the lock), and the server may give its pid to a new session.
-- $<cls>, $<obj>: the lock's halves, as for holds_lock_sql.  (The
-- function, not the pg_locks view: planning the view costs a millisecond.)
local function run_gone_sql(cls, obj)
  return string.format([[(h.status = 'running'
     AND (NOT EXISTS (SELECT 1 FROM pg_lock_status() l WHERE l.pid = h.backend_pid AND %s)
          OR EXISTS (SELECT 1 FROM ferry.history later WHERE later.backend_pid = h.backend_pid AND later.id > h.id)))]],
    holds_lock_sql(cls, obj))
end
local EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

-- A check's line (validate, check): a failed one is shown with --quiet too,
-- where it goes without it -- it is what the exit code is about.
local function log_check(ok, line)
  if ok or not log.flags().quiet then
    log.info(line)
  else
    io.stdout:write(sys.redact(line .. "\n"))       -- (as log.info's lines are: see out below)
    io.stdout:flush()
  end
end

-- The help texts, ferry --help's and each command's, and the options that
-- are a command's own (COMMANDS_WITH): ferry.help.lua.
local help = require "ferry.help"

-- Errors the engine raises carry their exit code.
local function fail(code, fmt, ...)
  error(setmetatable({code = code, message = select("#", ...) > 0 and string.format(fmt, ...) or fmt},
                     sys.error_meta), 0)
end
local function usage_error(fmt, ...) fail(EXIT_USAGE, fmt, ...) end

local errors = require "ferry.errors"
local is_ferry_error, error_text = errors.is_ferry, errors.text

-- stats.error(key, err) takes any error value, as pcall returned it (a
-- rule may raise a table); ferry's own errors that end the run (the
-- --max-errors stop, a usage error in a rule loaded late) are raised on,
-- not counted as a row's.
-- The key is shown as text: a table one (a composite key such as
-- {lead_id, "budget"}) as JSON unless it has a __tostring, rather than
-- "table: 0x...", which says nothing of the row.
local record_row_error = stats.error
local function key_text(key)
  local mt = type(key) == "table" and getmetatable(key)
  if mt ~= false and not (type(mt) == "table" and mt.__tostring) then
    local ok, s = pcall(json.encode_ordered or json.encode, key)
    if ok then return s end
  end
  return tostring(key)
end
function stats.error(key, err)
  if is_ferry_error(err) then error(err, 0) end
  -- (redacted here, before stats.error cuts a long key or message: a cut
  -- inside a password leaves a beginning of it no later redaction finds)
  return record_row_error(sys.redact(errors.valid_utf8(key_text(key))), sys.redact(error_text(err)))
end

----------------------------------------------------------------------------
-- ordered JSON output (cjson does not keep key order)

-- A number as JSON text that reads back as the same number: an integer
-- exactly, a float with the fewest digits that round-trip (cjson keeps 14
-- significant digits, which turns 1234567890123456 into 1.2345678901235e+15).
local function encode_number(n)
  if math.type(n) == "integer" then return string.format("%d", n) end
  if n ~= n or n == math.huge or n == -math.huge then
    error("json.encode_ordered: " .. (n ~= n and "NaN" or n > 0 and "inf" or "-inf") .. " is not a JSON number (NaN and infinities have no JSON form)")
  end
  -- a float past 2^53 (whole, as they all are) in the range of 64-bit
  -- integers keeps a ".0": jsonb prints 1e16 as 10000000000000000, which
  -- would read back as the integer
  if math.abs(n) >= 2^53 and math.abs(n) <= 2^63 then return string.format("%.1f", n) end
  for digits = 14, 17 do
    local s = string.format("%." .. digits .. "g", n)
    if tonumber(s) == n then return s end
  end
  return string.format("%.17g", n)
end

-- (The errors raised here are placed in this file: json.encode_ordered, the
-- scripts' entry, raises them again at the line that called it.)
local MAX_DEPTH = 20000             -- as json.encode: deeper is a table that contains itself
local encode_ordered
-- While emit_json encodes ferry's own object: what each of its strings
-- (keys too) is written as -- redacted, string by string, so that no
-- number or piece of JSON syntax is ever touched.  nil otherwise.
local text_filter = nil
local function encode_text(s) return json.encode(text_filter and text_filter(s) or s) end

local function encode_value(v, depth)
  local ty = type(v)
  if ty == "number" then return encode_number(v) end
  if ty == "string" then return encode_text(v) end
  if ty ~= "table" then
    if ty == "function" or ty == "thread" or (ty == "userdata" and v ~= json.null) then
      error("json.encode_ordered: a " .. ty .. " is not a JSON value")
    end
    return json.encode(v)
  end
  depth = (depth or 0) + 1
  if depth > MAX_DEPTH then
    error("json.encode_ordered: tables nested more than " .. MAX_DEPTH .. " deep (a table that contains itself?)")
  end
  local mt = getmetatable(v)
  if type(mt) == "table" and mt.__keys then return encode_ordered(v, depth) end
  local marked = rawequal(mt, "array")
  if next(v) == nil then return marked and "[]" or "{}" end
  -- positive integer keys, not too sparse (as cjson): an array, holes null;
  -- any other keys: an object, keys sorted as text
  local count, max, ints = 0, 0, true
  for k in pairs(v) do
    count = count + 1
    if math.type(k) == "integer" and k > 0 then
      if k > max then max = k end
    else
      ints = false
    end
  end
  if ints and (marked or max <= 10 or max <= 2 * count) then
    local parts = {}
    for i = 1, max do parts[i] = v[i] == nil and "null" or encode_value(v[i], depth) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = encode_text(tostring(k)) .. ":" .. encode_value(v[k], depth) end
  return "{" .. table.concat(parts, ",") .. "}"
end
encode_ordered = function(obj, depth)
  local parts, seen = {}, {}
  for i, k in ipairs(getmetatable(obj).__keys) do
    -- (checked by json.object too; the list may have changed since)
    if type(k) ~= "string" then
      error(string.format("json.encode_ordered: key %d of a json.object is a %s, not a string (JSON object keys are strings)", i, type(k)))
    end
    if seen[k] then
      error(string.format("json.encode_ordered: key %d of a json.object, %q, is listed before: a JSON object has each key once", i, errors.shown(k)))
    end
    seen[k] = true
    if obj[k] ~= nil then parts[#parts + 1] = encode_text(k) .. ":" .. encode_value(obj[k], depth) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
-- A table whose metatable cannot be replaced (a json.array's is protected).
local function protected(t) local mt = debug.getmetatable(t); return mt ~= nil and rawget(mt, "__metatable") ~= nil end
-- object(keys...) -> a table whose JSON keeps the given key order
local function object(keys, t)
  if type(keys) ~= "table" then
    error("bad argument #1 to 'json.object' (a list of key names expected, got " .. type(keys) .. ")", 2)
  end
  local seen = {}
  for i, k in ipairs(keys) do
    if type(k) ~= "string" then
      error(string.format("bad argument #1 to 'json.object' (key %d is a %s: JSON object keys are strings)", i, type(k)), 2)
    end
    -- (written twice, which one a reader keeps is its own choice)
    if seen[k] then
      error(string.format("bad argument #1 to 'json.object' (key %d, %q, is listed before: a JSON object has each key once)", i, errors.shown(k)), 2)
    end
    seen[k] = true
  end
  if t ~= nil and type(t) ~= "table" then
    error("bad argument #2 to 'json.object' (table expected, got " .. type(t) .. ")", 2)
  end
  if t ~= nil and protected(t) then
    error("bad argument #2 to 'json.object' (its metatable is protected: a json.array, or a table like it)", 2)
  end
  return setmetatable(t or {}, {__keys = keys})
end
local function array(t)
  if t ~= nil and type(t) ~= "table" then
    error("bad argument #1 to 'json.array' (table expected, got " .. type(t) .. ")", 2)
  end
  if t ~= nil and protected(t) then
    if rawequal(getmetatable(t), "array") then return t end           -- one already
    error("bad argument #1 to 'json.array' (its metatable is protected)", 2)
  end
  return setmetatable(t or {}, {__metatable = "array"})
end

-- Scripts get these too: json.array(t) encodes as [] even when empty,
-- json.object(keys, t) keeps key order, json.encode_ordered encodes both
-- (other tables with sorted keys).  An error in encode_ordered names the
-- script's line that called it (errors.api), not this file's.
json.array, json.object = array, object
json.encode_ordered = errors.api(function(v) return encode_value(v) end)

local function stats_object()
  local keys, t = {}, {}
  for _, c in ipairs(stats.counters()) do keys[#keys + 1] = c.name; t[c.name] = c.value end
  return object(keys, t)
end
local function errors_array()
  local out = array()
  for i, e in ipairs(stats.errors()) do out[i] = object({"key", "message"}, e) end
  return out
end

----------------------------------------------------------------------------
-- files and migrations

-- (nil and "path: reason" as io.open gives it, for a file that opens but
-- cannot be read too: a folder, "Is a directory")
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s, rerr = f:read("a")
  f:close()
  if not s then return nil, path .. ": " .. tostring(rerr) end
  return s
end

-- Whether path is there: a file that cannot be read (chmod 000, another
-- owner) is, and reading it is the error that names it -- not taken for a
-- missing one (an up.sql would run in place of an unreadable up.lua).
local function exists(path)
  local ENOENT, ENOTDIR = 2, 20
  local f, _, code = io.open(path, "rb")
  if f then f:close() return true end
  return code ~= ENOENT and code ~= ENOTDIR
end

local SCRIPT_FILES = {"up.lua", "up.sql", "down.lua", "rollback.sql", "validate.lua"}

-- The entries of folder dir, or nil when it is not there; one that is
-- there but cannot be read is an error naming it (not taken for none).
local function list_folder(dir)
  local names, err = sys.listdir(dir)
  if not names and sys.isdir(dir) then usage_error("cannot read %s", err) end
  return names
end

local function discover(root)
  local dir = root .. "/migrations"
  local names = list_folder(dir)
  if not names then usage_error("no migrations folder at %s (use --dir)", dir) end
  local list, by_id, ignored = {}, {}, {}
  for _, entry in ipairs(names) do
    local version, name = entry:match("^(%d+)_([%w_%-]+)$")
    local is_dir = sys.isdir(dir .. "/" .. entry)
    if is_dir and not version and entry:sub(1, 1) ~= "." then ignored[#ignored + 1] = entry end
    if version and is_dir then
      local m = {id = entry, version = version, name = name, path = dir .. "/" .. entry,
                 rel = "migrations/" .. entry, files = {}}
      -- a folder that cannot be searched (chmod 000) would have every
      -- script "there" (exists: each open fails with EACCES): named instead
      if not sys.isdir(m.path .. "/.") then usage_error("cannot read %s: Permission denied", m.path) end
      for _, f in ipairs(SCRIPT_FILES) do
        if exists(m.path .. "/" .. f) then m.files[f] = true end
      end
      list[#list + 1] = m
      by_id[entry] = m
    end
  end
  table.sort(list, function(a, b)
    if a.version ~= b.version then
      if #a.version ~= #b.version then return #a.version < #b.version end
      return a.version < b.version
    end
    return a.name < b.name
  end)
  table.sort(ignored)
  return list, by_id, ignored
end


-- The migration `key` names on the command line (README's Usage says the
-- rule): its id; else the one id it begins; else the one migration of that
-- name, even when it begins another's; else the one name it begins.
local function find_migration(list, key)
  if not key then usage_error("which migration? (give its id or name, or a unique prefix of either)") end
  -- ("$UNSET" in a script: a prefix of every id, it would name the only
  -- migration of a folder, which "ferry rollback ''" then rolled back)
  if key == "" then
    usage_error("the migration given is empty: give its id or name, or a unique prefix of either ('ferry status' lists them)")
  end
  local found = {}
  for _, m in ipairs(list) do
    if m.id == key then return m end
    if m.id:sub(1, #key) == key then found[#found + 1] = m end
  end
  if #found == 0 then      -- also a unique prefix of the name: "backfill_memory"
    local exact = {}        -- or the name itself: "stats" beside "stats_table"
    for _, m in ipairs(list) do
      if m.name:sub(1, #key) == key then found[#found + 1] = m end
      if m.name == key then exact[#exact + 1] = m end
    end
    if #exact == 1 then return exact[1] end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then usage_error("unknown migration %s", key) end
  local ids = {}
  for i, m in ipairs(found) do ids[i] = m.id end
  usage_error("ambiguous migration %s: %s", key, table.concat(ids, ", "))
end

-- A file under root as checksums read it: line endings normalised, so a
-- checkout with CRLF does not look changed; nil when it cannot be read.
local function checksum_text(root, rel)
  local s = read_file(root .. "/" .. rel)
  return s and (s:gsub("\r\n", "\n"))
end

-- SHA-256 over the migration's scripts and the rule files it loaded.  The
-- scripts are hashed with their paths (migrations/<id>/up.sql): as_rel, when
-- given, is the folder they are hashed as being in (migrations/<other id>),
-- their text still read from m's -- what the checksum of another id's
-- folder holding these very files would be.
local function checksum(root, m, rules, as_rel)
  local parts = {}
  local files = {}
  for _, f in ipairs(SCRIPT_FILES) do
    if m.files[f] then files[#files + 1] = {m.rel .. "/" .. f, (as_rel or m.rel) .. "/" .. f} end
  end
  local sorted_rules = {}
  for i, r in ipairs(rules or {}) do sorted_rules[i] = r end
  table.sort(sorted_rules)
  for _, r in ipairs(sorted_rules) do files[#files + 1] = {r, r} end
  for _, f in ipairs(files) do
    parts[#parts + 1] = f[2] .. "\0" .. (checksum_text(root, f[1]) or "") .. "\0"
  end
  return sys.sha256(table.concat(parts))
end

----------------------------------------------------------------------------
-- the Lua environment of scripts and rules

local shell = {execute = os.execute, popen = io.popen}
os.execute, io.popen = nil, nil    -- scripts ask for them with "-- ferry: allow-shell"

local loaded_rules          -- rule files (relative paths) loaded by the current migration
local root_dir = "."

local function forget_rules()
  for name in pairs(package.loaded) do
    if name:match("^rules%.") then package.loaded[name] = nil end
  end
end

-- Loads a Lua file with chunkname relative to --dir, so that errors read
-- "migrations/x/up.lua:12: ...".  A syntax error is a usage error (exit 2).
-- A script's text without a UTF-8 byte order mark some editors write (lua
-- and require skip one too).
local function without_bom(src)
  return src:sub(1, 3) == "\239\187\191" and src:sub(4) or src
end

local function load_script(rel, env, path)
  local src, err = read_file(path or (root_dir .. "/" .. rel))
  if not src then
    -- (io.open's message begins with the path: exec's file, named as given, said once)
    if err:sub(1, #rel + 2) == rel .. ": " then err = err:sub(#rel + 3) end
    usage_error("cannot read %s: %s", rel, err)
  end
  src = without_bom(src)
  if src:sub(1, 2) == "#!" then src = "--" .. src end    -- a script may start with #! (keeps line numbers)
  -- (without env, the global one: load's fourth argument given as nil
  -- would leave the chunk no environment at all)
  local chunk, lerr
  errors.known_chunk(rel)
  if env ~= nil then chunk, lerr = load(src, "@" .. rel, "t", env) else chunk, lerr = load(src, "@" .. rel, "t") end
  if not chunk then usage_error("%s", lerr) end
  return chunk, src
end

-- Rules are plain Lua modules under --dir: require "rules.roles" loads
-- <dir>/rules/roles.lua, named rules/roles.lua in errors and tracebacks as
-- the scripts are, whatever --dir.  The searcher records each file for the
-- checksum.
-- A rules.* module is looked for there only: one missing from --dir is an
-- error naming that file, not another tree's rules/x.lua that Lua's own
-- searchers would find (package.path has ./?.lua: the current folder).
local function rules_searcher(modname)
  local rel = modname:gsub("%.", "/") .. ".lua"
  local path = root_dir .. "/" .. rel
  if not exists(path) then
    if modname:match("^rules%.") then
      -- level 3: the line that called require (1 is this loader, 2 require)
      return function() error(string.format("module '%s' not found: no file '%s'", modname, path), 3) end
    end
    return "\n\tno file '" .. path .. "'"
  end
  local chunk = load_script(rel)
  if loaded_rules then loaded_rules[#loaded_rules + 1] = rel end
  return chunk, path
end
table.insert(package.searchers, 2, rules_searcher)

-- Whether a script asks for os.execute and io.popen: a line that is the
-- comment "-- ferry: allow-shell" alone (spaces around and after "--" and
-- ":" optional) among the comments and blank lines the file starts with
-- (its header), before its first code.  A block comment (--[[ ... ]],
-- --[==[ ... ]==]) may be part of the header, but the marker inside one
-- does not count, nor does one after code or inside a string.  (A "#!"
-- first line is a comment by now: see load_script.)
local function wants_shell(src)
  local pos, line_start = 1, true
  while true do
    pos = src:match("^[ \t\f\v]*()", pos)
    local c = src:sub(pos, pos)
    if c == "\n" or c == "\r" then                -- (a CR alone ends a line for Lua too)
      pos, line_start = pos + 1, true
    elseif src:sub(pos, pos + 1) ~= "--" then
      return false                                  -- code, or the end: the header is over
    else
      local level = src:match("^%[(=*)%[", pos + 2)
      if level then                                 -- a block comment: skipped whole
        local _, close = src:find("]" .. level .. "]", pos + 4 + #level, true)
        if not close then return false end
        pos, line_start = close + 1, false
      else
        local eol = src:find("[\r\n]", pos) or #src + 1
        if line_start and src:sub(pos, eol - 1):find("^%-%-%s*ferry:%s*allow%-shell%s*$") then return true end
        pos, line_start = eol + 1, true
      end
    end
  end
end

local function script_env(ctx)
  db._ctx = ctx                  -- (db.fill's: the ctx of the script that runs)
  local env = setmetatable({ctx = ctx, db = db, json = json, uuid = uuid, stats = stats,
                            log = log, progress = progress}, {__index = _G})
  env._G = env
  return env
end

----------------------------------------------------------------------------
-- history, lock, checkpoints

-- (the schema apart: CREATE SCHEMA, IF NOT EXISTS too, asks for CREATE on
-- the database before it looks whether the schema is there, and a DBA may
-- have made it for a role that has no such right)
local SCHEMA_DDL = "CREATE SCHEMA IF NOT EXISTS ferry;\n"
local HISTORY_DDL = [[
CREATE TABLE IF NOT EXISTS ferry.history (
  id            bigserial PRIMARY KEY,
  migration     text NOT NULL,
  version       text NOT NULL,
  name          text NOT NULL,
  operation     text NOT NULL CHECK (operation IN ('up', 'run', 'rollback', 'baseline')),
  status        text NOT NULL CHECK (status IN ('running', 'applied', 'failed', 'rolled back')),
  run_id        uuid NOT NULL,
  checksum      text,
  rules         text[] NOT NULL DEFAULT '{}',
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  stats         jsonb,
  error         text,
  host          text,
  pid           integer,
  backend_pid   integer,
  ferry_version text
);
CREATE INDEX IF NOT EXISTS history_migration_idx ON ferry.history (migration, id);
]]
local CHECKPOINT_DDL = [[
CREATE TABLE IF NOT EXISTS ferry.checkpoint (
  migration  text PRIMARY KEY,
  run_id     uuid NOT NULL,
  position   jsonb,
  stats      jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);
]]

-- Once seen (or made), the history tables stay for the rest of the
-- process: asked once, not before every history or checkpoint statement.
local history_seen = false
-- Runs f(...) on ferry's own tables; a permission the role lacks
-- (SQLSTATE 42501) is a configuration error saying what the role needs:
-- "create" the schema, or "read"/"write" its tables.
-- (each with the GRANTs that give it; the history's id is a bigserial, so
-- writing it takes USAGE on its sequence too)
local NEEDS = {
  read = "this role needs USAGE on schema ferry and SELECT on its tables (to run migrations, also INSERT, UPDATE, "
         .. "DELETE on them and USAGE on its sequence): GRANT USAGE ON SCHEMA ferry TO %s; GRANT SELECT ON ALL "
         .. "TABLES IN SCHEMA ferry TO %s",
  write = "this role needs USAGE on schema ferry, SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its "
          .. "sequence: GRANT USAGE ON SCHEMA ferry TO %s; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN "
          .. "SCHEMA ferry TO %s; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO %s",
  -- the schema not there yet
  create = "this role needs CREATE on the database once (GRANT CREATE ON DATABASE %s TO %s), or have the DBA "
           .. "create the schema for it (CREATE SCHEMA ferry AUTHORIZATION %s), or the database owner run ferry first",
  -- the schema there (made by the DBA), its tables not
  tables = "this role needs CREATE on schema ferry once, to make its tables there (GRANT CREATE ON SCHEMA ferry "
           .. "TO %s), or have the schema's owner run ferry first",
}
local function on_history(doing, f, ...)
  local res = table.pack(pcall(f, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  local e = res[2]
  local foreign = type(e) == "string" and e:find("[SQLSTATE 42703]", 1, true)
  if type(e) ~= "string" or not (foreign or e:find("[SQLSTATE 42501]", 1, true)) then error(e, 0) end
  -- the server's message, without a position or "query failed: "
  -- (and the " (line N)" of ferry's own script's statement)
  local msg = e:match("^[^\n]*"):gsub("^[^%s:]+:%d+: ", "", 1):gsub("^%a+ failed: ", "", 1):gsub(" %(line %d+%)$", "")
  -- (a column of its own not there: the table is another's -- its columns
  -- are the first version's, README "Upgrading ferry")
  if foreign then
    fail(EXIT_USAGE, "cannot %s ferry's history (schema ferry): %s; ferry.history is not the table ferry makes "
                     .. "(another application's, in a schema of the same name?): ferry keeps its history and "
                     .. "checkpoints in the schema ferry, which must be its own", doing, msg)
  end
  local who = db.one("SELECT quote_ident(current_database()) AS d, quote_ident(current_user) AS u, "
                     .. "to_regnamespace('ferry') IS NOT NULL AS schema")
  local needs
  if doing ~= "create" then
    needs = NEEDS[doing]:gsub("%%s", function() return who.u end)
  elseif who.schema then
    needs = string.format(NEEDS.tables, who.u)
  else
    needs = string.format(NEEDS.create, who.d, who.u, who.u)
  end
  fail(EXIT_USAGE, "cannot %s ferry's history (schema ferry): %s; %s", doing, msg, needs)
end

-- Whether ferry.history is there (its runs can be read); with
-- checkpoints, whether ferry.checkpoint is there too.  The history without
-- the checkpoint table (dropped by hand, or the history alone restored) is
-- read as it is, with no resume point: taken for no bookkeeping at all, it
-- had status show every migration pending.
-- (the second result: the history table alone is there)
local function history_exists(checkpoints)
  if history_seen then return true end
  local r = on_history("read", db.one,
                       "SELECT to_regclass('ferry.history') IS NOT NULL AS h, to_regclass('ferry.checkpoint') IS NOT NULL AS c")
  history_seen = r.h and r.c
  if checkpoints then return r.h and r.c, r.h end
  return r.h
end

-- Makes what is missing of ferry's tables, and only that: the IF NOT
-- EXISTS of what is there would show the server's NOTICE ("relation
-- history already exists, skipping") to the operator.
local function ensure_history()
  if db.read_only then return history_exists() end
  local both, history_only = history_exists(true)
  if not both then
    local schema = db.one("SELECT to_regnamespace('ferry') IS NOT NULL AS s").s
    local ddl = history_only and CHECKPOINT_DDL or HISTORY_DDL .. CHECKPOINT_DDL
    on_history("create", db.exec_script, schema and ddl or SCHEMA_DDL .. ddl)
    history_seen = true
  end
  return true
end

-- The state of each migration from its history, oldest row first: the
-- latest row counts, except that a failed rollback changes nothing (the
-- migration stays applied), and neither does a failed or abandoned run of
-- a migration that is applied -- its transaction rolled back, or the rows
-- it had written are still there -- which is only noted (failed_after).
local function load_states()
  local states = {}
  if not history_exists() then return states end
  local rows = on_history("read", db.query, [[
    SELECT h.migration, h.version, h.status, h.operation, h.checksum, h.rules,
           to_char(h.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS finished_at,
           to_char(h.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started_at,
           h.host, h.pid, h.backend_pid, ]] .. run_gone_sql(1, 2) .. [[ AS gone
      FROM ferry.history h
     ORDER BY h.migration, h.id]], LOCK_CLASSID, LOCK_OBJID)
  for _, r in ipairs(rows) do
    local st = states[r.migration]
    local attempt_failed = r.status == "failed" or (r.status == "running" and r.gone)
    if r.operation == "rollback" and r.status ~= "rolled back" then
      -- a rollback that failed or was cut short leaves the migration
      -- applied -- but what it committed before (a rollback.sql's own
      -- transactions, a down.lua's) stays: noted
      if st and st.status == "applied" and attempt_failed then st.rollback_failed_after, st.failed_rollback = true, r end
    elseif st and st.status == "applied" and attempt_failed then
      st.failed_after = true
    else
      states[r.migration] = r
    end
  end
  return states
end

local function parse_pg_array(s)
  local out = {}
  if not s or s == "{}" then return out end
  for item in s:sub(2, -2):gmatch('[^,]+') do out[#out + 1] = (item:gsub('^"(.*)"$', "%1")) end
  return out
end

-- The migrations of list that look renamed: one the history has never seen
-- with the version, or the scripts, of a migration recorded applied (or
-- baselined) whose folder is gone.  The scripts compare exactly: the
-- checksum that history row holds (the scripts, and the rule files its run
-- loaded, as they were then) against the one of this folder's scripts
-- hashed under the old folder's name with those rule files as they are now
-- (a rule changed since is other scripts).  The version alone does not
-- count once a migration of the folder with that version is recorded
-- applied: two made the same day share it (a sibling applied, or the
-- renamed one baselined: the other migrations of that day are no rename).
-- {[id] = {id =, st =, version = true|false, scripts = true|false}}: for
-- each, the best match (version and scripts, then scripts, then version;
-- then the first id).  Nothing is hashed when no applied migration's folder
-- is gone.
local function renamed_from(list, by_id, states)
  local found, gone, applied_versions = {}, {}, {}
  for id, st in pairs(states) do
    if st.status == "applied" then
      if by_id[id] then applied_versions[by_id[id].version] = true
      else gone[#gone + 1] = {id = id, st = st} end
    end
  end
  if #gone == 0 then return found end
  table.sort(gone, function(a, b) return a.id < b.id end)
  for _, m in ipairs(list) do
    if not states[m.id] then
      local score = 0
      for _, g in ipairs(gone) do
        local version = g.st.version == m.version
        local scripts = g.st.checksum ~= nil
                        and checksum(root_dir, m, parse_pg_array(g.st.rules), "migrations/" .. g.id) == g.st.checksum
        local s = (scripts and 2 or 0) + (version and not applied_versions[m.version] and 1 or 0)
        if s > score then found[m.id], score = {id = g.id, st = g.st, version = version, scripts = scripts}, s end
      end
    end
  end
  return found
end

-- The session holding the lock (a session lock goes with its session: once
-- that connection is gone there is nothing to release).
local lock_conn = nil
local function take_lock()
  if lock_conn and lock_conn == db.main() then return end
  local r = db.one("SELECT pg_try_advisory_lock($1::bigint) AS ok", LOCK_KEY)
  if r.ok then
    lock_conn = db.main()
    -- a script closing the session would drop the lock: another ferry
    -- could then run the same migration at once
    db._hold("the main connection holds ferry's migration lock; it closes when the command ends")
    return
  end
  local h = db.one([[
    SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket') AS client,
           to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"') AS since
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE ]] .. holds_lock_sql(1, 2) .. [[ LIMIT 1]], LOCK_CLASSID, LOCK_OBJID)
  local who = "another session"
  if h then
    who = string.format("%s (backend pid %d, client %s, connected since %s)",
                        h.application_name ~= "" and h.application_name or "a session", h.pid, h.client, h.since)
    if history_exists() then
      local run = db.one([[SELECT migration, host, pid FROM ferry.history
                           WHERE backend_pid = $1 AND status = 'running' ORDER BY id DESC LIMIT 1]], h.pid)
      if run then
        who = who .. string.format(", running %s as pid %d on %s", run.migration, run.pid, run.host)
        -- killed (kill -9): the server ends its session only once it
        -- notices, a few seconds at most (client_connection_check_interval)
        if run.host == sys.hostname() and not sys.process_exists(run.pid) then
          fail(EXIT_FAIL, "another ferry holds the migration lock on this database: %s; that process is gone, and "
                          .. "the server ends its session within a few seconds: try again then", who)
        end
      end
    end
  end
  -- (a session that is not ferry's: a rollback.sql run with psql takes the lock too)
  if h and h.application_name ~= "ferry" then
    fail(EXIT_FAIL, "another session holds ferry's migration lock on this database: %s; try again when it has "
                    .. "finished (a rollback.sql run with psql takes it too)", who)
  end
  fail(EXIT_FAIL, "another ferry holds the migration lock on this database: %s; try again when it has finished", who)
end

local function release_lock()
  local conn = lock_conn
  lock_conn = nil
  db._hold(nil)
  -- only on the session that took it: after a lost connection db.main()
  -- is a new session (or none), where an unlock would only draw a warning
  if conn and conn == db.main() then
    pcall(conn.exec, conn, "SELECT pg_advisory_unlock($1::bigint)", LOCK_KEY)
  end
end

-- A saved position as the script saved it: numbers are read back as
-- integers when they are whole (cjson reads every number as a float, and
-- "8000.0" is not what a script that saved 8000 expects), an integer
-- literal exactly (past 2^53 a float would round it).
-- cjson reads every number as a double, so an integer past 2^53 inside a
-- table (an id of 16 digits or more) would come back rounded: each integer
-- literal of 16 digits or more outside the strings is swapped for a marker
-- string before decoding, and the marker for the exact integer after.
local BIG_MARK = "\0ferry-int:"
local function mark_big_integers(text)
  local bigs, n, out, pos = {}, 0, {}, 1
  while pos <= #text do
    local q = text:find('"', pos, true)
    local chunk = text:sub(pos, (q or #text + 1) - 1)
    out[#out + 1] = chunk:gsub("%-?%d+%.?%d*[eE]?[%+%-]?%d*", function(num)
      local int = num:match("^%-?%d+$") and #num:gsub("^%-", "") >= 16 and math.tointeger(tonumber(num))
      -- (past 64 bits it stays a float, as before)
      if not int or string.format("%d", int) ~= num then return nil end
      n = n + 1
      local mark = BIG_MARK .. n
      bigs[mark] = int
      return '"\\u0000' .. mark:sub(2) .. '"'
    end)
    if not q then break end
    -- the string from q to its closing quote, escapes included, as it is
    local e = q + 1
    while true do
      local c = text:find('["\\]', e)
      if not c then e = #text break end
      if text:sub(c, c) == "\\" then e = c + 2 else e = c break end
    end
    out[#out + 1] = text:sub(q, e)
    pos = e + 1
  end
  return table.concat(out), bigs
end

local function decode_position(text)
  local exact = text:match("^%-?%d+$") and math.tointeger(tonumber(text))
  if exact then return exact end
  local marked, bigs = mark_big_integers(text)
  local function whole(v)
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then return math.tointeger(v) end
    if type(v) == "string" and bigs[v] then return bigs[v] end
    if type(v) == "table" then
      for k, x in pairs(v) do v[k] = whole(x) end
    end
    return v
  end
  return whole(json.decode(marked))
end

-- A position must read back as it was saved: JSON has lists (keys 1..n,
-- no hole) and objects (text keys), nothing in between -- a table keyed by
-- ids would come back keyed by their text.
local function check_position(v, depth)
  depth = depth or 0
  -- (a string cut inside a character: the dry run took it, and the real
  -- run's jsonb refused it at its first save, SQLSTATE 22021)
  if (type(v) == "string" and not json.utf8_valid(v)) then
    error("ctx.checkpoint.save: the position has no JSON form: a string in it is not valid UTF-8 "
          .. "(a key cut inside a character?)")
  end
  -- (JSON writes a NUL \u0000, which jsonb refuses, SQLSTATE 22P05)
  if type(v) == "string" and v:find("\0", 1, true) then
    error("ctx.checkpoint.save: the position has no JSON form: a string in it holds a NUL byte "
          .. "(jsonb cannot store \\u0000)")
  end
  if type(v) ~= "table" or depth > 100 then return end
  local n, count, texts, ints = #v, 0, 0, 0
  for k, x in pairs(v) do
    if type(k) == "string" then check_position(k, depth + 1) end   -- (a key's UTF-8)
    count = count + 1
    if type(k) == "string" then texts = texts + 1 elseif math.type(k) == "integer" then ints = ints + 1 end
    check_position(x, depth + 1)
  end
  if count > 0 and not (texts == count or (ints == count and n == count)) then
    error("ctx.checkpoint.save: a position table must be a list (keys 1..n) or have text keys only "
          .. "(JSON would give other keys back as text)")      -- (raised at the script's line: see api below)
  end
end

-- What ctx.checkpoint.save is given, checked the same way in a real run,
-- a dry run and under ferry exec (which keep the position in memory), so
-- that a dry run or a test under exec refuses what the real run would:
-- pos must have a JSON form (the real run stores it as jsonb), conn be a
-- connection or nil, snapshot a cp.snapshot() or nil.  Returns pos's JSON.
local function check_save_args(pos, conn, snapshot)
  -- nil (a key read from a misspelt column) would be stored as JSON null,
  -- which the resumed run's get() gives back as json.null: truthy, so
  -- `get() or 0` binds NULL and the run reads nothing, then says applied
  if pos == nil or pos == json.null then
    error("ctx.checkpoint.save: the position is " .. (pos == nil and "nil" or "json.null")
          .. ": save where the batch ends (the key of its last row); a run resuming from a nil or "
          .. "json.null position could not tell it from none, and would start over or read nothing")
  end
  check_position(pos)
  local ok, text = pcall(encode_value, pos)
  if not ok then
    error("ctx.checkpoint.save: the position has no JSON form: "
          .. (tostring(text):gsub("^%[ferry%][^:]*:%d+: ", ""):gsub("^json%.encode_ordered: ", "")))
  end
  if conn ~= nil and debug.getmetatable(conn) ~= debug.getregistry()["ferry.conn"] then
    error("ctx.checkpoint.save: argument #2 is the session to save on (db.connect(), or the conn a pipeline "
          .. "hands to after), or nil for the main one, not a " .. type(conn))
  end
  if snapshot ~= nil and (type(snapshot) ~= "table" or math.type(snapshot.errors) ~= "integer"
                          or type(snapshot.payload) ~= "string") then
    error("ctx.checkpoint.save: argument #3 is a ctx.checkpoint.snapshot() or nil, not a "
          .. (type(snapshot) == "table" and "table of another shape" or type(snapshot)))
  end
  return text
end

-- Checkpoints: a data migration saves its resume point in the same
-- transaction as the batch it covers, through ctx.checkpoint.
-- The sha256 of a file under --dir (line ends as in checksum), or "missing".
local function file_sum(rel)
  local s = checksum_text(root_dir, rel)
  return s and sys.sha256(s) or "missing"
end

-- The sums of the files that make a data migration's rows: its up.lua and
-- the rule files it has loaded so far ({rel = sum}).  Saved with each
-- checkpoint, so that the run resuming it can tell what was edited since.
local function code_sums(m, rules)
  local sums = {[m.rel .. "/up.lua"] = file_sum(m.rel .. "/up.lua")}
  for _, r in ipairs(rules or {}) do sums[r] = file_sum(r) end
  return sums
end

-- The files of saved (a checkpoint's code_sums) that differ now, sorted.
local function changed_since(saved)
  local changed = {}
  for rel, sum in pairs(saved) do
    if type(rel) == "string" and file_sum(rel) ~= sum then changed[#changed + 1] = rel end
  end
  table.sort(changed)
  return changed
end

-- The counters a history row h's run had committed, as the checkpoint it
-- saved holds them (jsonb {name: value}, or NULL): for a row still
-- 'running' -- a run in progress, or one killed before it recorded its
-- own.  (A checkpoint's counters are totals, as a resumed run's are.)
local CHECKPOINT_COUNTERS = [[
  (SELECT jsonb_object_agg(c->>0, c->1)
     FROM ferry.checkpoint k
     CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(k.stats->'counters') = 'array'
                                                  THEN k.stats->'counters' ELSE '[]' END) c
    WHERE k.migration = h.migration AND k.run_id = h.run_id
      AND jsonb_typeof(c) = 'array' AND c->>0 IS NOT NULL AND jsonb_typeof(c->1) = 'number')]]

-- A run killed before it recorded its counters (kill -9, the machine
-- gone): once history_start has closed its row, failed with none, they
-- are those of the checkpoint it saved -- what it had committed.  Written
-- there before that checkpoint goes: replaced by the next run's, deleted
-- by a rollback (its rollback.sql may do it itself).  Not when the run had
-- row errors and committed batches past its checkpoint (after_errors).
local function keep_killed_counters(migration)
  db.exec([[UPDATE ferry.history h
               SET stats = jsonb_build_object('stats', coalesce(]] .. CHECKPOINT_COUNTERS .. [[, '{}'), 'errors', '[]'::jsonb)
             WHERE h.migration = $1 AND h.status = 'failed' AND h.stats IS NULL
               AND EXISTS (SELECT 1 FROM ferry.checkpoint k
                            WHERE k.migration = h.migration AND k.run_id = h.run_id AND k.stats->'after_errors' IS NULL)]],
          migration)
end

local RESUME_MIXED = "the rows it committed were made by the earlier version, the rest by this one "
                     .. "(to have every row made by this one, roll back the migration and run it again)"

-- A checkpoint saved by a ferry from before the sums (2026-12-06) holds
-- none.  The checksum of m's scripts that its run's history row recorded
-- when it started stands in: it tells whether they changed, not which, and
-- nothing of the rule files (that row names none).  A note either way, so
-- that the resumed run of an upgrade does not read as one checked.
local function unsummed_checkpoint_note(m, run_id)
  local r = db.one([[SELECT checksum FROM ferry.history
                      WHERE migration = $1 AND run_id = $2::uuid AND operation IN ('up', 'run') AND checksum IS NOT NULL
                      ORDER BY id DESC LIMIT 1]], m.id, run_id)
  local older = "saved by an older ferry, which kept no sums of the files"
  if not r then
    log.alert(string.format("note: the checkpoint this run resumes was %s, and no history row of its run is left: "
                           .. "whether the scripts of %s or a rule file they load were edited since cannot be told",
                           older, m.rel))
  elseif r.checksum ~= checksum(root_dir, m, {}) then
    log.alert(string.format("note: changed since the interrupted run this one resumes: the scripts of %s (its checkpoint, "
                           .. "saved by an older ferry, holds no sums of its files: which of them, and whether a rule "
                           .. "file they load was edited too, cannot be told); %s", m.rel, RESUME_MIXED))
  else
    log.alert(string.format("note: the checkpoint this run resumes was %s: the scripts of %s are as its run started them; "
                           .. "whether a rule file they load was edited since cannot be told", older, m.rel))
  end
end

-- A run resuming m from its checkpoint skips the rows m had committed
-- before, without looking at them again: if a migration before m was
-- rolled back since that checkpoint was saved, its rollback may have
-- removed them (a schema step's DROP TABLE, the table made again when it
-- was applied again), and the run would record m applied without them.
-- Said, as the rollback said it (part_way_after).
local function rolled_back_since_note(m)
  local r = db.one([[
    SELECT h.migration,
           to_char(k.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS saved,
           to_char(h.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at
      FROM ferry.checkpoint k JOIN ferry.history h ON h.finished_at > k.updated_at
     WHERE k.migration = $1 AND h.operation = 'rollback' AND h.status = 'rolled back' AND h.migration <> $1
       AND (CASE WHEN h.version ~ '^[0-9]+$' THEN h.version::numeric END, h.migration) < ($2::numeric, $1)
     ORDER BY h.id DESC LIMIT 1]], m.id, tonumber(m.version) and m.version or "0")
  if not r then return end
  log.alert(string.format("note: this run resumes %s from its checkpoint (saved %s), and %s, before it, was rolled back "
                         .. "since (at %s): if the rows %s had committed were among what that rollback removed, this "
                         .. "run skips them; to write every row, roll %s back (ferry rollback %s) and run it again",
                         m.id, r.saved, r.migration, r.at, m.id, m.id, m.id))
end

local function new_checkpoint(ctx, m)
  local cp = {}
  local saved
  if history_exists(true) then
    -- (a real run's rights on it asked for already, as its row was
    -- written: a dry run's SELECT said as any read of ferry's tables)
    local r = on_history("read", db.one, [[SELECT position::text AS position, stats::text AS stats, run_id::text AS run_id
                                             FROM ferry.checkpoint WHERE migration = $1]], ctx.migration)
    if r then saved = r end
  end
  local position = saved and saved.position and decode_position(saved.position) or nil
  if position == json.null then position = nil end     -- (saved as nil by a ferry that took it)
  ctx.resumed = saved ~= nil
  if saved then rolled_back_since_note(m) end
  -- Restore the counters of the interrupted run so that the resumed run's
  -- totals equal those of an uninterrupted one.  (No row errors to restore:
  -- a checkpoint is only saved while a run has none, see cp.save.)  Not
  -- when that run had row errors and committed batches past its
  -- checkpoint (after_errors): this run finds their rows done, and counts
  -- its own work.
  if saved and saved.stats then
    local s = json.decode(saved.stats)
    local changed = type(s.code) == "table" and changed_since(s.code) or {}
    if #changed > 0 then
      log.alert("note: changed since the interrupted run this one resumes: " .. table.concat(changed, ", ")
               .. "; " .. RESUME_MIXED)
    elseif s.code == nil then
      unsummed_checkpoint_note(m, saved.run_id)
    end
    if s.after_errors then
      log.info("   (the previous run had row errors and committed batches past its resume point: "
               .. "these statistics count this run's own work)")
    else
      for _, c in ipairs(s.counters or {}) do stats.set(c[1], c[2]) end
      if not ctx.dry_run then keep_killed_counters(ctx.migration) end
    end
  end

  function cp.get() return position end

  --- cp.save(pos [, conn]): records pos (any JSON value) and the counters
  -- so far, on conn (default: the main connection), which should be inside
  -- the transaction that wrote the batch.  In a dry run it is kept in memory.
  -- The error count when this run started (after the restore): once a
  -- row has failed, the resume point stays before it, so that a re-run
  -- with the rule or the data fixed reaches that row again.
  local errors_at_start = stats.get("errors")

  --- cp.snapshot() -> the counters so far, for a save() that happens
  -- later (a batch committed after the next one was mapped).
  local sums, sums_of = nil, -1        -- code_sums, for that many rules loaded
  function cp.snapshot()
    local counters = array()
    for i, c in ipairs(stats.counters()) do counters[i] = array{c.name, c.value} end
    local rules = loaded_rules or {}
    if #rules ~= sums_of then sums, sums_of = code_sums(m, rules), #rules end
    return {errors = stats.get("errors"), counters = counters,
            payload = encode_value(object({"counters", "code"}, {counters = counters, code = sums}))}
  end

  -- What the run has committed, for the statistics of a run that fails:
  -- the batches it was mapping or had in flight are not in the database.
  -- A writer (db.pipeline) says it tracks its commits, then reports each.
  -- (The baseline is taken when the writer starts: after the script's
  -- stats.declare, with the counters restored from a checkpoint.)
  local committed, saved_here, at_start, noted_apart = nil, nil, {counters = {}}, false
  for i, c in ipairs(stats.counters()) do at_start.counters[i] = {c.name, c.value} end
  function cp._track_commits() committed = committed or cp.snapshot() end
  function cp._committed(snapshot) committed = snapshot end
  --- cp._rewind_to_committed(): the counters (all but errors) back to the
  -- last committed batch's, when a writer tracked its commits; a counter
  -- that batch did not have yet goes back to 0.  A script that saved its
  -- checkpoints itself (ctx.checkpoint.save in its db.transaction) and had
  -- no row error: back to the counters of the checkpoint that committed,
  -- as the table holds it, or to those the run started with when none of
  -- its saves committed -- the batch it was mapping, or writing when it
  -- was stopped, is not in the database (it reported those rows as if
  -- they were, and its resumed run restored fewer).
  function cp._rewind_to_committed()
    if not committed and saved_here and stats.get("errors") == errors_at_start then
      local got, r = pcall(db.one, [[SELECT stats->'counters' AS counters FROM ferry.checkpoint
                                      WHERE migration = $1 AND run_id = $2]], ctx.migration, ctx.run_id)
      if got then committed = r and {counters = json.decode(r.counters)} or at_start end
    end
    if not committed then return end
    local at = {}
    for _, c in ipairs(committed.counters) do at[c[1]] = c[2] end
    for _, c in ipairs(stats.counters()) do
      if c.name ~= "errors" then stats.set(c.name, at[c.name] or 0) end
    end
  end

  --- cp.save(pos [, conn [, snapshot]]) -> true when saved: records pos
  -- (any JSON value) and the counters (now, or a cp.snapshot() taken when
  -- the batch closed) on conn (default: the main connection), which should
  -- be inside the transaction that wrote the batch.  After a row error in
  -- this run it saves nothing (see above).  A dry run keeps it in memory.
  function cp.save(pos, conn, snapshot)
    local encoded = check_save_args(pos, conn, snapshot)
    snapshot = snapshot or cp.snapshot()
    if snapshot.errors > errors_at_start then
      -- the batch commits without moving the checkpoint: mark it, so that
      -- the next run does not restore counters these rows are not in
      if not ctx.dry_run then
        ;(conn or db.main()):exec([[UPDATE ferry.checkpoint SET stats = stats || '{"after_errors": true}'
                                     WHERE migration = $1]], ctx.migration)
      end
      return false
    end
    position = pos
    if ctx.dry_run then return true end
    saved_here = true
    -- A save outside any transaction commits by itself, apart from the
    -- batch it covers (saved after that batch's db.transaction, not in
    -- it): a run stopped between the two resumes past rows never written
    -- or writes some twice.  Said once a run.
    local on = conn or db.main()
    if not noted_apart and on then
      local asked, open = pcall(on.in_transaction, on)
      if asked and not open then
        noted_apart = true
        log.warn("note: " .. errors.where(2) .. "ctx.checkpoint.save outside a transaction: the position commits "
                 .. "by itself, apart from the rows it covers, so a run stopped between the two resumes past "
                 .. "rows never written, or writes some twice; save it inside the db.transaction that writes the "
                 .. "batch")
      end
    end
    ;(conn or db.main()):exec([[
      INSERT INTO ferry.checkpoint (migration, run_id, position, stats, updated_at)
      VALUES ($1, $2, $3::jsonb, $4::jsonb, now())
      ON CONFLICT (migration) DO UPDATE
        SET run_id = EXCLUDED.run_id, position = EXCLUDED.position,
            stats = EXCLUDED.stats, updated_at = now()]],
      ctx.migration, ctx.run_id, encoded, snapshot.payload)
    return true
  end

  function cp.clear()
    position = nil
    saved_here = nil        -- (no row to rewind to: the counters stand as they are)
    if not ctx.dry_run and history_exists(true) then
      db.exec("DELETE FROM ferry.checkpoint WHERE migration = $1", ctx.migration)
    end
  end
  -- errors at the script's line, caught or not
  cp.save, cp.clear = errors.api(cp.save), errors.api(cp.clear)
  -- (db.pipeline's: a real run saves a batch's position only at its
  -- commit, after its COPY went out; checked at the send that gives it)
  cp._check = errors.api(check_save_args)
  return cp
end

----------------------------------------------------------------------------
-- running one migration

local opts = {}       -- the parsed command line

-- The smallest batch ctx.batch_size_for() picks by itself: below it the
-- few round trips every batch costs outweigh the earlier start.
local MIN_AUTO_BATCH = 1000
-- The smallest of the last, tapered batches (ctx.batch_size_for(total, left)).
local MIN_TAPER_BATCH = 250

local function make_ctx(m, dry_run, operation)
  local flags = log.flags()
  local ctx = {
    migration = m.id, version = m.version, name = m.name,
    dir = m.path, root = root_dir,
    dry_run = dry_run, verbose = flags.verbose, quiet = flags.quiet, json = flags.json,
    run_id = uuid.v4(), started_at = sys.iso_now(), operation = operation,
    batch_size = opts.batch_size, jobs = opts.jobs, max_errors = opts.max_errors,
  }
  --- ctx.batch_size_for(total) -> the batch size for a run of `total`
  -- rows: --batch-size when it was given.  Otherwise the default, lowered
  -- for small runs so that each writer gets about four batches (never
  -- fewer than 1000 rows): the server starts writing after the first
  -- small batch instead of idling while Lua maps a big one, and the
  -- writers finish together.  Large runs keep the default.
  --
  -- ctx.batch_size_for(total, left) -> the size of the next batch when
  -- `left` rows are still to be sent (mapped or not yet read): the same,
  -- until the last ones, which are cut smaller (down to MIN_TAPER_BATCH) so
  -- that the writers finish together instead of one writing the last big
  -- batch alone.  Not with --batch-size: then every batch has that size.
  function ctx.batch_size_for(total, left)
    -- (a count read from the database may come as text: a bigint past 2^53)
    local t, l = tonumber(total), left ~= nil and tonumber(left) or nil
    if not t or (left ~= nil and not l) then
      error("ctx.batch_size_for(total [, left]): numbers, not " .. type(total) .. (left ~= nil and ", " .. type(left) or ""), 2)
    end
    total, left = t, l
    if opts.batch_size_given then return ctx.batch_size end
    local jobs = math.max(1, ctx.jobs or 1)
    local shaped = math.ceil(total / (4 * jobs))
    local size = math.max(1, math.min(ctx.batch_size, math.max(MIN_AUTO_BATCH, shaped)))
    if left and left < 2 * jobs * size then
      size = math.min(size, math.max(MIN_TAPER_BATCH, math.ceil(left / (2 * jobs))))
    end
    return size
  end
  return ctx
end

-- An error raised inside ferry's own embedded Lua on a script's behalf (a
-- session's error inside db.pipeline, a checkpoint save) names the line of
-- the script that was running -- the one a user can read and edit -- not a
-- line of "[ferry]/...".  Called from the message handler, while the stack
-- that raised is still there; the traceback keeps every frame.  With no
-- script line on the stack (the engine's own work) the position goes.
local script_where = errors.where

local FERRY_POSITION = "^%[ferry%]/[%w%._%-]+%.lua:%d+: "   -- a position in ferry's own Lua

local function at_script_line(e)
  local prefix = e:match(FERRY_POSITION)
  if not prefix then return e end
  return script_where(3) .. e:sub(#prefix + 1)
end

-- The message handler of a script's run and of the whole command: the
-- engine's error tables pass untouched; a string gets its script line (see
-- above), any other value (a script's error object) the place it was
-- raised and its text; both a traceback (shown with --verbose).
local function on_error(e)
  errors.restore_stdlib()                 -- (what the script replaced in table, string, ... is not ferry's)
  if is_ferry_error(e) then return e end
  -- (valid_utf8: a NUL reads U+FFFD, as an invalid byte does -- the
  -- traceback is built from a C string, which would end the message there)
  if type(e) == "string" then e = errors.valid_utf8(at_script_line(e)) else e = (errors.at(e, 2) or script_where(2)) .. error_text(e) end
  return debug.traceback(e, 2)
end

-- Runs a Lua script of migration m with ctx; returns the rule files loaded.
-- os.exit in a migration's script (or a rule it calls) would end ferry
-- there: the run left 'running', unrecorded, with the script's exit code
-- (0 for os.exit(), the rest of `up` skipped).  While one runs it raises
-- instead, and the run fails as for any error.  (exec keeps it.)
local real_exit = os.exit
local NO_EXIT = "os.exit is not available to a migration's script (it would end ferry before the run is "
                .. "recorded or reported): return to end the script, or raise an error to fail it"
local function no_exit() error(NO_EXIT, 2) end

-- A value a script returned, for the note: a string quoted on one line and
-- cut at 60 bytes, a number or boolean as it is, anything else by its type.
local function returned_text(v)
  if type(v) == "string" then
    local q = string.format("%q", v:sub(1, 60)):gsub("\\\n", "\\n")
    return #v > 60 and q:sub(1, -2) .. '..."' or q
  end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return "a " .. type(v)
end

local function run_lua(m, file, ctx)
  forget_rules()
  loaded_rules = {}
  local env = script_env(ctx)
  local chunk, src = load_script(m.rel .. "/" .. file, env)
  local allow = wants_shell(src)
  if allow then os.execute, io.popen = shell.execute, shell.popen end
  os.exit = no_exit
  local ok, err = xpcall(chunk, on_error)
  errors.restore_stdlib()
  os.exit = real_exit
  if allow then os.execute, io.popen = nil, nil end
  local rules = loaded_rules
  loaded_rules = nil
  if not ok then error(err, 0) end
  -- `return false` (or an exit code, as under exec) does not fail a run:
  -- say so rather than take it for success in silence
  if err ~= nil then
    log.warn(string.format("note: %s/%s returned %s: ferry does not use what a script returns "
                           .. "(to fail the run, raise an error: error(\"...\"))", m.rel, file, returned_text(err)))
  end
  return rules
end

-- An error of a SQL file is shown at its place: "migrations/<id>/up.sql:N:"
-- (N from the server's error position, when it gives one).
local function run_sql_file(m, file, in_transaction, and_then)
  local sql, err = read_file(m.path .. "/" .. file)
  if not sql then usage_error("cannot read %s/%s: %s", m.rel, file, err) end
  sql = without_bom(sql)                       -- (the server would read it as text)
  -- (whether an error came from the COMMIT: after a lost connection, what
  -- the server kept is known then only from the server -- see sql_step_lost)
  m.commit_sent = false
  local ok, e = pcall(function()
    if in_transaction then
      db.transaction(function()
        db.exec_script(sql)
        if and_then then and_then() end
        m.commit_sent = true
      end)
    else
      db.exec_script(sql)
    end
  end)
  if ok then return end
  if type(e) ~= "string" then error(e, 0) end
  e = e:gsub(FERRY_POSITION, "", 1)
  local first, rest = e:match("^([^\n]*)(.*)$")
  local msg, line = first:match("^(.-) %(line (%d+)%)$")
  error(m.rel .. "/" .. file .. ":" .. (line and line .. ":" or "") .. " " .. (msg or first) .. rest, 0)
end

-- A run of m's that ended without recording its outcome (ferry killed, its
-- connection or the server lost) left its row 'running'.  With the lock
-- held no other ferry runs here, so when m runs (or is rolled back) again
-- such a row whose session has ended is closed as failed, saying why: the
-- history shows no run as running that is not.  Its finish time stays
-- unknown (NULL).  (Until then status shows it as interrupted.)
local STALE_RUN = "interrupted: ferry ended before recording the outcome (killed, its connection lost, "
                  .. "or the server crashed); closed when this migration was next run or rolled back"

-- history_start(m, operation, run_id, sum) -> the id of the run's new
-- history row, 'running' (a row left running by a killed ferry closed as
-- failed).
-- A run or a rollback goes on to write ferry.checkpoint: a rollback
-- deletes the resume point as it starts; a run reads its own, saves one
-- with each batch (a data migration: an upsert, or an UPDATE after a row
-- error) and deletes it as it is recorded applied.  A right on that table
-- the role lacks (its grants made table by table, one forgotten) is raised
-- here, before the row, and said by on_history (exit 2, the GRANTs) --
-- nothing of the migration run, nothing recorded -- not after a backfill,
-- as its outcome is recorded, nor as a rollback's failure.  (Also with no
-- resume point to delete: the server asks for the right all the same.)
-- The server's own error, from EXPLAIN of such statements (it checks the
-- rights of a statement it plans as of one it runs, and writes nothing);
-- only when has_table_privilege, which takes no lock, finds one missing
-- (EXPLAIN would wait for a lock on the table: a wait said by the read of
-- the resume point, after the row, as before) -- and the history's own
-- rights there: the INSERT below says what is missing of those, as before.
local function history_start(m, operation, run_id, sum)
  if operation ~= "baseline" then
    local data = operation ~= "rollback" and m.files["up.lua"] ~= nil
    local has = db.one([[
      SELECT has_table_privilege('ferry.history', 'SELECT') AND has_table_privilege('ferry.history', 'INSERT')
               AND has_table_privilege('ferry.history', 'UPDATE') AS history,
             has_table_privilege('ferry.checkpoint', 'SELECT') AND has_table_privilege('ferry.checkpoint', 'DELETE')
               AND (NOT $1 OR (has_table_privilege('ferry.checkpoint', 'INSERT')
                               AND has_table_privilege('ferry.checkpoint', 'UPDATE'))) AS checkpoint]], data)
    if has.history and not has.checkpoint then
      db.exec("EXPLAIN DELETE FROM ferry.checkpoint RETURNING *")             -- (RETURNING: SELECT on it too)
      if data then
        db.exec([[EXPLAIN INSERT INTO ferry.checkpoint (migration, run_id, position, stats, updated_at)
                  SELECT migration, run_id, position, stats, updated_at FROM ferry.checkpoint
                  ON CONFLICT (migration) DO UPDATE
                    SET run_id = EXCLUDED.run_id, position = EXCLUDED.position,
                        stats = ferry.checkpoint.stats || EXCLUDED.stats, updated_at = now()]])
      end
    end
  end
  local r = db.one([[
    WITH closed AS (
      UPDATE ferry.history h SET status = 'failed', error = coalesce(h.error, $10)
       WHERE h.migration = $1 AND h.status = 'running'
         -- (a row of this very session is one a killed ferry left on it:
         -- this command has closed its own)
         AND (]] .. run_gone_sql(11, 12) .. [[ OR h.backend_pid = pg_backend_pid()))
    INSERT INTO ferry.history (migration, version, name, operation, status, run_id, checksum,
                               host, pid, backend_pid, ferry_version)
    VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, pg_backend_pid(), $9)
    RETURNING id]], m.id, m.version, m.name, operation, run_id, sum, sys.hostname(), sys.pid(), sys.version(),
    STALE_RUN, LOCK_CLASSID, LOCK_OBJID)
  return r.id
end

-- The id of the row history_start wrote for run_id, still running, or nil:
-- for a command interrupted as that INSERT went through (the signal's
-- cancel came too late for it), which raised before its id came back.
-- (Asked once the interruption is taken: nothing interrupts this.)
local function started_row(run_id)
  local ok, r = pcall(db.one, "SELECT id FROM ferry.history WHERE run_id = $1 AND status = 'running'", run_id)
  return ok and r and r.id or nil
end

-- A password the run's error holds (a script's own text, built from a
-- value that happens to be it) reads "***" in the history too, as in every
-- line ferry writes (the server's errors are redacted where they are
-- raised; the row errors by stats.error, before it cuts them).  The
-- counters' names are kept: a resumed run restores its counters by them.
local function history_finish(id, status, sum, rules, err)
  local payload = encode_value(object({"stats", "errors"}, {stats = stats_object(), errors = errors_array()}))
  if type(err) == "string" then err = sys.redact(err) end
  db.exec([[
    UPDATE ferry.history
       SET status = $2, finished_at = clock_timestamp(), checksum = coalesce($3, checksum),
           rules = coalesce($4::text[], rules), stats = $5::jsonb, error = $6
     WHERE id = $1 AND status = 'running']], id, status, sum, rules and db.array(rules) or nil, payload, err)
end

-- After a lost connection the main one is dead: record the failure on a
-- new one if the server is back, and say how far the run got.  Returns the
-- row's status as the server has it then ("applied" when what was lost was
-- the reply to an up.sql's COMMIT that went through: the row was written
-- in that transaction), nil when the server cannot be reached.
local function record_lost(hid, err)
  local got, status = pcall(function()
    db._hold(nil)                  -- (the lock went with the lost session)
    db.close()
    db.open()
    history_finish(hid, "failed", nil, nil, err)
    return db.one("SELECT status FROM ferry.history WHERE id = $1", hid).status
  end)
  return got and status or nil
end

-- A script that leaves the main session inside a transaction (a BEGIN
-- without COMMIT) would take the history row into it, to be lost with it
-- at exit: roll it back, and a run that looked good fails.
local LEFT_OPEN = "the script left a transaction open on the main session; it was rolled back "
                  .. "(end it with COMMIT, or use db.transaction)"
-- A db.pipeline neither finished nor closed leaves batches in flight (on
-- the main session too): they are rolled back, and the run is no success.
local LEFT_PIPELINE = "a db.pipeline still had batches in flight when the script ended; they were rolled back "
                      .. "(end it with pipe:finish(), or declare it `local pipe <close> = db.pipeline{...}`)"
-- The same on a session the script opened itself (db.connect()): rolled
-- back when it closes, writes and all.
local LEFT_OPEN_CONN = "the script left a transaction with writes open on a session of its own (db.connect()); "
                       .. "it was rolled back (end it with COMMIT, or use conn:transaction)"
-- A COPY neither finished nor aborted: its rows are not stored (and its
-- session stays busy, which the history row cannot be written through).
local LEFT_COPY = "the script ended with a COPY still open on %s; it was aborted "
                  .. "(end every COPY with w:finish(), which stores its rows)"
local function close_open_transaction(ok, err)
  local pipeline = package.loaded["ferry.pipeline"]
  if pipeline and pipeline.unfinished() and ok then ok, err = false, LEFT_PIPELINE end
  local copy = db._end_busy()
  if copy and ok then ok, err = false, string.format(LEFT_COPY, copy) end
  if db._end_open() and ok then ok, err = false, LEFT_OPEN_CONN end
  local main = db.main()
  if not main then return ok, err end
  local known, open = pcall(main.in_transaction, main)
  if known and open then
    pcall(main.exec, main, "ROLLBACK")
    if ok then return false, LEFT_OPEN end
  end
  return ok, err
end

-- Ends a run's history row: finish() (the history update and whatever
-- goes with it) in one transaction on the main session, or, when that
-- session is lost or unusable (a script left it busy), the failure on a
-- new one.  Returns an error message when the run could not be recorded,
-- and then the row's status as the server has it, read on a new session
-- (nil: not known): "applied" or "rolled back" when the connection was
-- lost as the COMMIT that wrote it went through, its reply never read --
-- the outcome is recorded, and the caller says so.  The third result:
-- the record failed because the main session was lost.
-- (lost: the main session is -- db._main_lost, libpq's word for it, never
-- the words "connection lost" in errtext, which a session of the script's
-- own, the script's error or a row's data can say too)
local function close_history(hid, lost, errtext, finish)
  if lost then return nil, record_lost(hid, errtext) end
  local done, ferr = pcall(db.transaction, finish)
  -- Ctrl-C as the outcome was being written (after the command had looked
  -- for one): the outcome is what it is all the same -- a run that had
  -- finished stays applied -- so it is written again, the interruption
  -- taken by now (nothing interrupts the second try; finish() does nothing
  -- twice), and the command stops after it (after_interrupt).
  if not done and is_ferry_error(ferr) and ferr.signal then done, ferr = pcall(db.transaction, finish) end
  if done then return nil end
  -- (the server's words, without the place in ferry's own Lua that ran
  -- the history update)
  local msg = "cannot record the run: " .. (error_text(ferr):match("^[^\n]*"):gsub(FERRY_POSITION, "", 1))
  local main_lost = db._main_lost()
  return msg, record_lost(hid, errtext or msg), main_lost
end

-- Whether the transaction xid of an up.sql whose history row it could not
-- write (a script that made it read-only, or switched to a role that
-- cannot write ferry's history) committed: its COMMIT's reply lost to an
-- interruption (asked on the session) or with the connection (lost: on a
-- new one -- the lock went with the old).  False when the server cannot
-- tell.  (txid_status: PostgreSQL 10 on.)
local function step_committed(xid, lost)
  local got, committed = pcall(function()
    if lost then
      db._hold(nil)
      db.close()
      db.open()
    end
    return db.one("SELECT txid_status($1) = 'committed' AS c", xid).c
  end)
  return got and committed == true
end

-- The line for a schema step (up.sql, one transaction) whose connection
-- was lost: what the server kept -- not the data migrations' batches and
-- resume.  Lost before its COMMIT, nothing; lost in it, the history row
-- written in the step's own transaction tells, if the server can be
-- reached (status: that row's status then, nil if it cannot).
local function sql_step_lost(m, first, status)
  first = m.id .. ": " .. first
  if status == "applied" then
    return string.format("%s: the connection was lost as its COMMIT went through: it is applied (its history row, "
                         .. "written in that transaction, says so); nothing after it was run", m.id)
  elseif status or not m.commit_sent then
    return first .. "; nothing of it is committed (up.sql runs in one transaction); re-run to apply it"
  end
  return first .. "; the server cannot be reached to tell whether its COMMIT went through: once it is back, "
         .. "'ferry status' shows it applied, or not (then re-run to apply it)"
end

local function progress_line()
  local parts = {}
  for _, c in ipairs(stats.counters()) do
    if c.value ~= 0 then parts[#parts + 1] = c.name .. "=" .. c.value end
  end
  return #parts > 0 and table.concat(parts, ", ") or "nothing counted yet"
end

-- Text from a script (a row error, an error message) as the terminal may
-- show it: control characters escaped (\x1b...), a tab kept -- an escape
-- sequence in a message would otherwise clear or recolour the screen.
local function shown(text)
  return (tostring(text):gsub("[%c\127]", function(c)
    if c == "\t" then return c end
    return string.format("\\x%02x", c:byte())
  end):gsub("\194([\128-\159])", function(c)       -- C1 controls (U+0080-U+009F: CSI is U+009B)
    return string.format("\\u%04x", c:byte())
  end))
end

-- ferry's own lines on stdout and stderr, as log's lines and the --json
-- object are written: redacted (sys.redact: the password of the command's
-- connection, 8 bytes or more, and of a connection string given as an
-- argument read "***").  A script's own print and io.write stay its own.
local function out(...) io.write(sys.redact(table.concat({...}))) end
local function err_out(...) io.stderr:write(sys.redact(table.concat({...}))) end

-- What a command writes once the outcome of its migration is recorded
-- (the statistics, "✓ ... applied"): an interruption that comes meanwhile
-- -- typically the reader of stdout gone by then (ferry run X | head -3),
-- whose SIGPIPE is the next write's -- must not cut it short as if the
-- run had been interrupted, with a line that sends the operator to re-run
-- what is done.  It is left to sys.interrupted(), which the caller asks
-- (after_interrupt): "... after X had finished (applied)".
local function write_after_record(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok and not (is_ferry_error(err) and err.signal) then error(err, 0) end
end

-- Folders under migrations/ that discover() passes over (not
-- <version>_<name>; dotfolders aside): named on stderr by the commands
-- that would otherwise leave one out without a word (status, up).  A name
-- is any bytes: shown as a script's text is, and as UTF-8.
local function ignored_name(entry)
  return "migrations/" .. shown(errors.valid_utf8(entry))
end
local function note_ignored(ignored)
  for _, entry in ipairs(ignored) do
    log.alert(string.format("note: %s is not a migration folder (the name must be <version>_<name>): ignored",
                           ignored_name(entry)))
  end
end

-- (--quiet: the row errors alone, as validate's failed checks are shown)
local function print_summary()
  if log.flags().json then return end
  local quiet = log.flags().quiet
  if #stats.counters() > 0 and not quiet then
    out("\n", stats.summary())
  end
  local errs = stats.errors()
  if #errs > 0 then
    out(quiet and "" or "\n", "\u{26A0} Errors (", stats.get("errors"), "):\n")
    for i, e in ipairs(errs) do
      if i > 20 then out("   ... (", #errs - 20, " more in --json and the history row)\n") break end
      out("   ", shown(e.key), ": ", shown(e.message), "\n")
    end
  end
  io.flush()
end

-- SQLSTATEs a data migration can meet when the live system changes a row
-- under it: foreign_key_violation, unique_violation.
local LIVE_CHANGE = {["23503"] = "deleted", ["23505"] = "wrote"}

-- "Already exists" (duplicate_table, _column, _object, _schema, _function)
-- met by a schema step (up.sql) not applied yet: the database was most likely set up
-- without ferry (a schema dump, the contract schema), and baseline is the way.
local ALREADY_EXISTS = {["42P07"] = true, ["42701"] = true, ["42710"] = true, ["42P06"] = true, ["42723"] = true}
local ALREADY_EXISTS_HINT = "; the database already has what this migration creates: if it was set up without ferry "
  .. "(from a schema dump), record the migrations it already has as applied with 'ferry baseline VERSION' "
  .. "(the version of the last migration it has: 'ferry status' lists them), then run 'ferry up' again"

-- m has no applied run in the history (nil when the history cannot be read).
local function never_applied(m)
  local got, states = pcall(load_states)
  if not got then return nil end
  local st = states[m.id]
  return not st or st.status ~= "applied"
end

-- What a dry run of a schema step can tell without running it: ferry.creates.
local existing_creations = require("ferry.creates").existing_creations

local dry_run_state = {}             -- (existing_creations, for the steps of one up --dry-run)

-- A data migration reads through db.reader() and writes through --jobs
-- sessions (the main one and jobs - 1 more).  They are started ahead, so
-- that the server sets them up while ferry does other work (loading the
-- rules, its own bookkeeping): `run` starts them as soon as its main
-- session is open, apply() otherwise.  Once per migration; the sessions nobody
-- takes are dropped after it.
local prestarted = {}
local function prestart_sessions(m, dry_run)
  if prestarted[m.id] or not m.files["up.lua"] then return end
  prestarted[m.id] = true
  db.prestart(dry_run and 1 or math.max(1, opts.jobs or 1))
end

-- What to do after a statement cancelled on the server (57014), for the
-- end of the error line first ("" for any other error): it ran longer than
-- --statement-timeout (the flag's value), than a statement_timeout set
-- otherwise (with the flag off, 0 in any unit: one set_by, SET
-- statement_timeout), or another session cancelled it (pg_cancel_backend:
-- a DBA, a watchdog); ferry's own Ctrl-C is no such error.  what names the
-- statement ("a statement", "ferry's own bookkeeping (...)"), why says more
-- of it ("" or " (...)"), rerun what a re-run does.
-- Which of the two it was, only the message's text says (both are 57014,
-- raised by the same routine of the server, ProcessInterrupts: no field of
-- the error tells them apart), and only in English: a server with lc_messages in another language
-- (initdb takes it from the machine's locale) says it in that language, and
-- then both are named, not one guessed.
local function cancelled_advice(first, what, why, set_by, rerun)
  if not first:find("[SQLSTATE 57014]", 1, true) then return "" end
  local timeout = first:find("statement timeout", 1, true)
  if not timeout and first:find("user request", 1, true) then
    return "; another session cancelled the statement (pg_cancel_backend): " .. rerun
  end
  -- (not English: "the server cancelled the statement: it ran longer than
  -- ..., or another session cancelled it")
  local either = not timeout and "the server cancelled the statement: it" or what
  local or_cancel = not timeout and ", or another session cancelled it (pg_cancel_backend)" or ""
  local amount = opts.statement_timeout:match("^%s*%+?([%d%.]+)%s*%a*%s*$")
  if amount and tonumber(amount) == 0 then
    return string.format("; %s ran longer than a statement_timeout %s; --statement-timeout is 0, off)%s: raise or "
                         .. "remove that setting, and %s", either, set_by, or_cancel, rerun)
  end
  return string.format("; %s ran longer than --statement-timeout %s%s%s: give --statement-timeout more, or 0 (off, "
                       .. "the default), and %s", either, opts.statement_timeout, why, or_cancel, rerun)
end

-- Whether a 54000 error (a limit of the server) is a tsvector over its
-- 1 MB.  Its words are in the server's language ("string is too long for
-- tsvector", German "Zeichenkette ist zu lang für tsvector"): the routine
-- of the server that raised it tells it in any -- to_tsvector's
-- make_tsvector, tsvector_concat (||), and tsvectorin (a text cast to
-- tsvector), which raises 54000 for a word over 2 KB too: that one is
-- told apart by the limit its message gives, 1048575 bytes (MAXSTRPOS),
-- in digits in every language, where a word's is 2046.
local TSVECTOR_ROUTINES = {make_tsvector = true, tsvector_concat = true, tsvectorin = "1048575"}
-- Whether the error line first names was raised by one of the server's
-- routines in `routines` (core.error_routine: no lc_messages translates
-- it), holding the text that routine's entry asks for too (true: none).
local function raised_by(first, routines)
  local want = routines[db_core.error_routine(first) or ""]
  return want == true or (type(want) == "string" and first:find(want, 1, true) ~= nil)
end

-- What to do about a condition of the server or its data that an error
-- line first names, whichever command met it, for the end of that line
-- ("" for any other): rerun says how to go on ("re-run to resume ...").
--   53100, the server out of disk space ("could not extend file ...: No
--     space left on device"): nothing ferry can do, nothing lost;
--   22021, text that is not UTF-8 ("invalid byte sequence for encoding
--     \"UTF8\""): ferry's sessions read and write UTF-8, so either the
--     database holds other bytes (a SQL_ASCII one stores any, unchecked)
--     and the server refuses to send them, or a COPY wrote some;
--   54000 from to_tsvector ("string is too long for tsvector (N bytes, max
--     1048575 bytes)"): a text written into a table with a full-text index
--     (the CRM's Message and MemoryNote) has more words and positions than
--     a tsvector holds, and the same row stops every re-run (raised_by,
--     TSVECTOR_ROUTINES).
--   row-level security ("query would be affected by row-level security
--     policy for table ...", 42501, from check_enable_rls; "COPY FROM not
--     supported with row-level security", 0A000, from DoCopy): a policy
--     applies to ferry's role on a table it reads or writes.  Its sessions
--     turn row_security off, so such a statement fails rather than see
--     part of the table: a run that skipped rows it cannot see, a check
--     that passed on them, a rollback verified on them would each be wrong
--     without a word.  (Told by the routine, which no lc_messages
--     translates.)
local ROW_SECURITY_ROUTINES = {check_enable_rls = "[SQLSTATE 42501]", DoCopy = "[SQLSTATE 0A000]"}
local function server_condition_advice(first, rerun)
  if raised_by(first, ROW_SECURITY_ROUTINES) then
    return "; a row-level security policy on that table applies to this role, and ferry reads and writes whole "
           .. "tables (row_security is off on its sessions: a policy fails the statement rather than hide rows from "
           .. "the run, its checks or its rollback): run ferry as a role the policies do not apply to (the table's "
           .. "owner, or a role with BYPASSRLS), then " .. rerun
  end
  if first:find("[SQLSTATE 53100]", 1, true) then
    return "; the server is out of disk space: free space on it (or have the DBA do so), then " .. rerun
  end
  if first:find("[SQLSTATE 54000]", 1, true) and raised_by(first, TSVECTOR_ROUTINES) then
    return "; a text is too long for a full-text index (a tsvector holds at most 1 MB of words and their "
           .. "positions: some megabytes of text with many different words), and the same row stops every run: "
           .. "shorten that text in the data, or have the rule that makes it cut such text, then " .. rerun
  end
  if first:find("[SQLSTATE 22021]", 1, true) then
    if first:find("COPY failed", 1, true) then
      return "; what the run wrote holds bytes that are not valid UTF-8 (a rule that cut a character in two, or "
             .. "built text from bytes): correct the rule, then " .. rerun
    end
    return "; the database holds text that is not valid UTF-8 (a SQL_ASCII database stores any bytes unchecked), "
           .. "and ferry reads it as UTF-8: correct those bytes (or convert the database to UTF8), then " .. rerun
  end
  return ""
end

-- Whether a connection error is the server's refusal for want of a
-- connection slot, SQLSTATE 53300 (max_connections, the superusers' share
-- of it, the CONNECTION LIMIT of the role or the database).  libpq gives no
-- SQLSTATE for a session it could not open; db.core writes it after the
-- server's words, as for any error ("FATAL:  sorry, too many clients
-- already [SQLSTATE 53300]"), and those words are in the server's language.
local function no_connection_left(msg)
  return msg:find("cannot connect to the database", 1, true) ~= nil and msg:find("[SQLSTATE 53300]", 1, true) ~= nil
end

-- session_replication_role = replica, the DBA's (on the database or role,
-- or in PGOPTIONS): the rows a migration writes or deletes fire none of the
-- tables' ordinary triggers, and no foreign-key check or cascade.  A bulk
-- load may want that, and only a superuser may change it: ferry leaves it,
-- and says so once, before the first migration it runs or rolls back.
local note_replica_role
do
  local noted = false
  function note_replica_role()
    if noted then return end
    noted = true
    if db.one("SELECT current_setting('session_replication_role') = 'replica' AS r").r then
      log.alert("note: session_replication_role is replica on ferry's sessions (set for this database or role, or "
               .. "in PGOPTIONS): the rows a migration writes or deletes fire none of the tables' ordinary "
               .. "triggers, and no foreign-key check or cascade")
    end
  end
end

--- Applies (or dry-runs) migration m.  Returns a result object.
local function apply(m, operation, dry_run)
  stats.reset()
  stats.max_errors(opts.max_errors)
  local t0 = sys.clock()
  local ctx = make_ctx(m, dry_run, operation)
  ensure_history()
  note_replica_role()
  local lost_before = db._lost_raised()   -- (a session of the run's lost meanwhile: more)
  local hid
  local scripts_sum = not dry_run and checksum(root_dir, m, {}) or nil   -- (the scripts alone: an up.sql's whole checksum)
  local would_exist = false     -- a dry run found what the up.sql creates in the database already
  local started = false         -- the history row written, the checkpoint read: the script's turn
  -- From the history row on, in one protected call: Ctrl-C can come at
  -- any instruction, also once the row's INSERT has gone through and
  -- before the script starts, and that row must not be left "running"
  -- (see started_row below).
  local ok, err = pcall(function()
    if not dry_run then hid = on_history("write", history_start, m, operation, ctx.run_id, scripts_sum) end
    if not log.flags().json then
      log.info(string.format("==> %s%s", m.id, dry_run and " (dry run)" or ""))
    end
    -- (its notes come under the heading)
    ctx.checkpoint = new_checkpoint(ctx, m)
    started = true
    if m.files["up.lua"] then
      prestart_sessions(m, dry_run)
      return run_lua(m, "up.lua", ctx)
    elseif m.files["up.sql"] then
      if dry_run then
        log.info("   [DRY RUN] Would run " .. m.rel .. "/up.sql in one transaction")
        local found = existing_creations(without_bom(read_file(m.path .. "/up.sql") or ""), dry_run_state)
        if #found > 0 then
          would_exist = true
          error(string.format("%s/up.sql: a dry run: the script would fail: %s \"%s\" already exists%s", m.rel,
                              found[1].kind, found[1].last,
                              #found > 1 and string.format(" (and %d more of what it creates)", #found - 1) or ""), 0)
        end
      else
        -- the history row says applied in the up.sql's own transaction: a
        -- COMMIT that goes through is recorded, whatever comes after it
        -- (Ctrl-C while it waited for a synchronous standby)
        -- (in a savepoint: a script that made its transaction read-only, or
        -- another role's, cannot write it there -- then it is written after
        -- the COMMIT, as for any migration)
        -- (not written there: the transaction's id, by which the server
        -- tells whether its COMMIT went through when its reply is lost to
        -- an interruption or with the connection -- see step_committed)
        m.xid = nil
        run_sql_file(m, "up.sql", true, function()
          if not pcall(db.transaction, function() history_finish(hid, "applied", scripts_sum, {}, nil) end) then
            m.xid = db.one("SELECT txid_current() AS x").x
          end
        end)
      end
      return {}
    end
    usage_error("%s has neither up.lua nor up.sql", m.rel)
  end)
  -- Ctrl-C / SIGTERM: a run that failed failed because of it, whatever
  -- its error says (a statement's cancellation, an error the script caught
  -- and turned into another); one that finished -- an up.sql whose COMMIT
  -- went through, a script that caught it and went on -- is what it is,
  -- and the command stops after it (see after_interrupt)
  local stop = sys.interrupted()
  if stop and not ok then err = stop end
  -- Interrupted as its history row was written: the row is there, its id
  -- maybe not yet known here.
  if stop and not dry_run and not hid then hid = started_row(ctx.run_id) end
  if not ok and not started and not stop then
    -- Failed before the script started (the history not writable, the
    -- checkpoint not readable -- a statement timeout): said as it is, the
    -- row, if written, closed failed rather than left "running".
    if hid then
      local why = error_text(err)
      close_history(hid, db._main_lost(), why, function()
        history_finish(hid, "failed", nil, nil, why)
      end)
    end
    error(err, 0)
  end
  -- an up.sql recorded applied inside its own transaction: committed, even
  -- if what came after the COMMIT (the interruption) raised
  local committed_lost     -- an up.sql's COMMIT went through, its reply lost with the connection (see step_committed)
  if not ok and hid and m.files["up.sql"] and not m.files["up.lua"] then
    local got, row = pcall(db.one, "SELECT status FROM ferry.history WHERE id = $1", hid)
    if got and row and row.status == "applied" then
      ok, err = true, {}
    elseif m.xid and m.commit_sent then
      local lost_now = db._main_lost()
      if step_committed(m.xid, lost_now) then ok, err, committed_lost = true, {}, lost_now end
    end
  end
  db.drop_spares()
  ok, err = close_open_transaction(ok, err)
  -- a run that failed reports what it committed, not what it had mapped
  if not ok and not dry_run and ctx.checkpoint then ctx.checkpoint._rewind_to_committed() end
  local rules = ok and err or nil
  local errtext = not ok and error_text(err) or nil
  -- the main session lost (its history row then recorded on a new one)
  local lost = errtext and db._main_lost()
  local row_errors = stats.get("errors")
  local good = ok and row_errors == 0
  local recorded_lost      -- the line to show when the run finished but its record was lost
  local lost_status        -- the history row's status once the connection was lost (nil: not known)
  local row_status         -- what its history row holds once recorded (--json "status"; nil: not known)
  if not dry_run and hid then
    -- applied and no resume point left, or neither: one transaction (the
    -- files are read and hashed before it begins)
    local sum = ok and checksum(root_dir, m, rules) or nil
    local failure, lost_recording
    failure, lost_status, lost_recording = close_history(hid, lost, errtext, function()
      history_finish(hid, good and "applied" or "failed", sum, rules,
                     errtext or (row_errors > 0 and (row_errors .. " row errors") or nil))
      if good then ctx.checkpoint.clear() end
    end)
    -- (the outcome written, or, the connection lost, as read on a new session)
    if lost or failure then row_status = lost_status else row_status = good and "applied" or "failed" end
    -- the step applied, its row written now on a new session: the command
    -- stops all the same, its session and lock gone
    if committed_lost and not failure then
      recorded_lost = string.format("%s: the connection was lost as its COMMIT went through: it is applied (the "
                                    .. "server, asked on a new session, says its transaction committed; its history "
                                    .. "row is written now); nothing after it was run", m.id)
      ok, err, good = false, recorded_lost, false
      errtext = recorded_lost:sub(#m.id + 3)
    end
    if failure and ok then
      ok, err, errtext, good = false, failure, failure, false
      -- the connection lost as the COMMIT that recorded the run went
      -- through (its reply lost with it): applied, as the row says -- the
      -- command stops all the same, its session and lock gone
      -- (robust/53-held-record-reply.t)
      if lost_status == "applied" then
        errtext = "the connection was lost as the COMMIT recording its run went through: it is applied (its history "
                  .. "row, read on a new session, says so); nothing after it was run"
        recorded_lost = m.id .. ": " .. errtext          -- (the --json "error" is the line without the id)
      -- the connection lost (the server crashed, or ended the session)
      -- after the script's last commit, before the history update: its
      -- work is done, or, with the commits the crash lost, resumable
      -- (a data migration: an up.sql records itself applied inside its own
      -- transaction, so once it committed there is nothing to re-run)
      elseif lost_recording and m.files["up.lua"] then
        recorded_lost = string.format("%s: the script finished, but the run could not be recorded: %s; "
                                      .. "re-run it (it finds the rows committed done; a crash "
                                      .. "of the server can have lost the last few commits, which the re-run redoes)",
                                      m.id, failure:gsub("^cannot record the run: ", "", 1))
      end
    end
  end
  local result = object({"migration", "mode", "ok", "status", "stats", "errors", "duration_ms", "error"}, {
    migration = m.id, mode = dry_run and "dry-run" or "apply", ok = good, status = row_status,
    stats = stats_object(), errors = errors_array(),
    duration_ms = math.floor((sys.clock() - t0) * 1000 + 0.5),
    error = errtext and errtext:match("^[^\n]*") or nil,
  })
  write_after_record(print_summary)
  if not ok then
    local code = is_ferry_error(err) and err.code or EXIT_FAIL
    local first = errtext:match("^[^\n]*")
    if is_ferry_error(err) and err.signal then
      if dry_run then
        first = string.format("%s: %s (a dry run: nothing was written)", m.id, err.message)
      elseif m.files["up.lua"] and started and ctx.checkpoint and ctx.checkpoint.get() == nil then
        -- (no checkpoint saved, none resumed from: the next run does not
        -- resume, it starts from the beginning -- a script that saves none
        -- writes again what it committed unless it finds it done)
        first = string.format("%s: %s; the run had got to: %s; no checkpoint is saved (ctx.checkpoint.save), so the "
                              .. "next run starts from the beginning, what this one committed kept: re-run it",
                              m.id, err.message, progress_line())
      elseif m.files["up.lua"] then
        first = string.format("%s: %s; the run had got to: %s (everything up to the last checkpoint is committed); "
                              .. "re-run to resume", m.id, err.message, progress_line())
      else
        first = string.format("%s: %s; nothing of it is committed (up.sql runs in one transaction); re-run to apply it",
                              m.id, err.message)
      end
    elseif recorded_lost then
      first = recorded_lost
    elseif lost and m.files["up.sql"] and not m.files["up.lua"] then
      first = sql_step_lost(m, first, lost_status)
    -- (the main session lost, or a session of the script's own -- its
    -- reader, a pipeline's writer, a db.connect() -- whose error the run
    -- failed by: said "connection lost" by l_db.c, and one was raised)
    elseif lost or (db._lost_raised() > lost_before and first:find("connection lost", 1, true)) then
      -- (not "everything up to the last checkpoint": the batches commit
      -- with synchronous_commit off, and a server that crashed can have
      -- lost the last ones it said were committed -- with their
      -- checkpoints, so the re-run redoes them)
      first = string.format("%s: %s; the run had got to: %s (the batches the server had committed are kept: a crash "
                            .. "of the server can lose the last few, which the re-run redoes); re-run to resume",
                            m.id, first, progress_line())
    elseif dry_run and is_ferry_error(err) and err.max_errors then
      result.error = string.format("%s (a dry run: nothing was written); fix the rule or the data and dry-run again",
                                   (err.message:gsub(";.*", "")))
      first = m.id .. ": " .. result.error
    elseif not first:find(m.id, 1, true) then
      first = m.id .. ": " .. first
    end
    -- what a re-run does: a data migration resumes, anything else runs again
    local rerun = "re-run to " .. (m.files["up.lua"] and not dry_run
                                   and "resume (everything up to the last checkpoint is committed)" or "try again")
    -- Another session held a lock the run needed for longer than
    -- --lock-timeout (a live transaction on the same rows or table).
    if first:find("[SQLSTATE 55P03]", 1, true) then
      first = first .. string.format("; another session held a lock it needed for more than --lock-timeout %s: "
                                     .. "%s, or give --lock-timeout more", opts.lock_timeout, rerun)
      -- A data migration's reader keeps its snapshot, and the locks of
      -- what it read, until the run ends: a LOCK TABLE or VACUUM FULL of
      -- a table the run also writes waits for the run, and the writes
      -- queue behind it -- a wait through ferry, which the server's
      -- deadlock detector cannot see, and which no --lock-timeout ends
      -- well (with 0, none ends it).
      if m.files["up.lua"] and not dry_run then
        first = first .. "; or another session asked for a lock on a table this run reads and writes (LOCK TABLE, "
                      .. "VACUUM FULL, ALTER TABLE): that waits for the run to end, and the run's writes wait behind "
                      .. "it, so a longer --lock-timeout does not help: re-run once that session is done"
      end
    end
    first = first .. server_condition_advice(first, rerun)
    -- A session the server refused for want of a connection slot (53300:
    -- --jobs more than max_connections or a CONNECTION LIMIT leaves).
    if no_connection_left(first) then
      -- (how many it opens is the script's: Batch 4 a reader, a second
      -- reader for the first leads and --jobs - 1 writers besides the main)
      first = first .. string.format("; the server refused one more session (a data migration opens its own: --jobs %d "
                                     .. "writers, the main session one of them, and its readers): %sask the DBA for more "
                                     .. "connections (max_connections, or the CONNECTION LIMIT of the role or the "
                                     .. "database), and %s",
                                     opts.jobs, opts.jobs > 1 and "lower --jobs, or " or "", rerun)
    end
    -- A session a connection pooler found no server session for (its
    -- pool full: the application's sessions and the run's own) within its
    -- query_wait_timeout, after which it closes it.
    if first:find("FATAL:  query_wait_timeout", 1, true) then
      first = first .. string.format("; the connection pooler found no server session free for one of the run's "
                                     .. "sessions in time (PgBouncer's query_wait_timeout; a data migration opens its "
                                     .. "own: --jobs %d writers, the main session one of them, and its readers): %shave "
                                     .. "its pool made larger (default_pool_size), or connect to the server directly",
                                     opts.jobs, opts.jobs > 1 and "lower --jobs, or " or "")
    end
    first = first .. cancelled_advice(first, "a statement", " (a streaming read is one statement that lasts as long "
                                      .. "as the run)", "the migration set itself (SET statement_timeout, in the "
                                      .. "script, the up.sql or a function they call", rerun)
    -- A row a batch refers to was deleted, or one it writes was written,
    -- by the live system while the run wrote it: the next run reads them
    -- as they are then.
    local live = m.files["up.lua"] and LIVE_CHANGE[first:match("%[SQLSTATE (%w+)%]")]
    if live then
      first = first .. "; if the live system " .. live .. " that row meanwhile, re-run to resume (everything up to "
                   .. "the last checkpoint is committed)"
    end
    -- A write in a dry run (every session read-only): the script's, which
    -- only a real run may do -- said so, not left to read as a database
    -- set read-only.
    if dry_run and m.files["up.lua"] and first:find("[SQLSTATE 25006]", 1, true) then
      first = first .. "; this is a dry run (--dry-run): every session is read-only and the script wrote: do "
                   .. "its writes only in the real run (if not ctx.dry_run then ... end) and count where it decides, "
                   .. "so that the dry run reports the real run's counts"
    end
    -- (a schema step only: baselining a data migration would skip its rows)
    if m.files["up.sql"] and not m.files["up.lua"]
       and (would_exist or ALREADY_EXISTS[first:match("%[SQLSTATE (%w+)%]$") or ""]) and never_applied(m) then
      first = first .. ALREADY_EXISTS_HINT
    end
    result.exit = code
    result.message = first
    result.traceback = errtext
  elseif not good then
    result.exit = EXIT_FAIL
    result.message = string.format("%s: %d row error(s) recorded; fix the rule or the data and re-run", m.id, row_errors)
  else
    if not log.flags().json then
      write_after_record(log.info, string.format("\u{2713} %s %s in %.2f s", m.id,
                                                 dry_run and "dry run finished" or "applied", result.duration_ms / 1000))
    end
  end
  return result
end

----------------------------------------------------------------------------
-- commands

local commands = {}

-- (on the real stdout: under --json a script's stdout is stderr, see main)
-- cjson writes "/" as "\/" (valid JSON, but a path a person reads looks
-- broken): written plain here.  Exact: in cjson's text a backslash before a
-- slash is always that escape's -- a backslash of the data is "\\", and a
-- slash of the data never follows one unescaped.
-- One object per command, with the exit code that goes with it (code):
-- once written, both stand (main exits with that code, and no second
-- object follows), so a command writes it last, once its code is known.
local function emit_json(obj, code)
  text_filter = sys.redact
  local ok, text = pcall(encode_value, obj)
  text_filter = nil
  if not ok then error(text, 0) end
  sys.write_stdout((text:gsub("\\/", "/")) .. "\n", code)
end

local function report_failure(result)
  err_out("ferry: ", shown(result.message), "\n")
  if log.flags().verbose and result.traceback and result.traceback:find("\n") then
    err_out(result.traceback, "\n")
  end
end

local LUA_SCRIPTS = {"up.lua", "down.lua", "validate.lua"}

-- The rule files under rules/, by path from there: rules/*.lua and those
-- in its folders (require "rules.crm.stage" loads rules/crm/stage.lua, a
-- rule like any other), dotfolders left alone.  (Nested at most
-- RULE_DEPTH deep: a folder linked into itself ends there.)
local RULE_DEPTH = 8
local function rule_files()
  local files = {}
  local function walk(rel, depth)
    local dir = root_dir .. "/rules" .. (rel == "" and "" or "/" .. rel)
    for _, f in ipairs(list_folder(dir) or {}) do
      local path = rel == "" and f or rel .. "/" .. f
      if f:match("%.lua$") then
        files[#files + 1] = path
      elseif f:sub(1, 1) ~= "." and depth < RULE_DEPTH and sys.isdir(dir .. "/" .. f) then
        walk(path, depth + 1)
      end
    end
  end
  walk("", 1)
  return files
end

-- Compiles the Lua scripts of the migrations in list and, when the command
-- runs one of them (runs_lua), every rule: a syntax error stops the command
-- (exit 2) before anything is written.  Every rule, because a script may
-- require any of them, at any point of its run.  A command that runs only
-- SQL files does not read rules/: a rule in the middle of an edit must not
-- block a rollback.sql or an up.sql.
local function preflight(list, runs_lua)
  if runs_lua then
    for _, f in ipairs(rule_files()) do load_script("rules/" .. f) end
  end
  for _, m in ipairs(list) do
    for _, f in ipairs(LUA_SCRIPTS) do
      if m.files[f] then load_script(m.rel .. "/" .. f) end
    end
  end
end

-- true when one of the migrations in list has an up.lua (which up and run
-- run instead of an up.sql)
local function any_up_lua(list)
  for _, m in ipairs(list) do
    if m.files["up.lua"] then return true end
  end
  return false
end

-- An up.sql runs in one transaction that ferry begins and commits (a
-- rollback.sql does not: it may hold its own).  A BEGIN, COMMIT, END,
-- ROLLBACK, ... of its own would commit part of it -- the server only warns
-- -- and leave the rest to fail, to be re-run over what was committed: it
-- is refused before anything runs, as a syntax error is (exit 2).  Only
-- the up.sql that runs (none when up.lua is beside it) is read.
local OWN_TRANSACTION = "up.sql runs in one transaction that ferry begins and commits; "
                        .. "leave BEGIN/COMMIT out (an up.lua can commit in steps)"
local function refuse_own_transaction(m)
  if m.files["up.lua"] or not m.files["up.sql"] then return end
  local rel = m.rel .. "/up.sql"
  local sql, err = read_file(m.path .. "/up.sql")
  if not sql then usage_error("cannot read %s: %s", rel, err) end
  local line, command = db_core.find_transaction_control(without_bom(sql))
  if line then usage_error("%s:%d: %s: %s", rel, line, command, OWN_TRANSACTION) end
  -- A statement the server refuses inside any transaction block can never
  -- run in up.sql's: check and the dry run passed it, the real run failed.
  -- (Every top-level statement's first words; a name is no keyword here.)
  local every = setmetatable({}, {__index = function() return true end})
  for _, t in ipairs(db_core.statement_heads(without_bom(sql), every, 16)) do
    local w = {}
    for i = 1, #t do w[i] = t[i]:lower() end
    local cmd
    if w[1] == "vacuum" then cmd = "VACUUM"
    elseif w[1] == "alter" and w[2] == "system" then cmd = "ALTER SYSTEM"
    elseif (w[1] == "create" or w[1] == "drop") and (w[2] == "database" or w[2] == "tablespace") then
      cmd = w[1]:upper() .. " " .. w[2]:upper()
    elseif w[1] == "create" and w[2] == "index" and w[3] == "concurrently" then cmd = "CREATE INDEX CONCURRENTLY"
    elseif w[1] == "create" and w[2] == "unique" and w[3] == "index" and w[4] == "concurrently" then
      cmd = "CREATE UNIQUE INDEX CONCURRENTLY"
    elseif w[1] == "drop" and w[2] == "index" and w[3] == "concurrently" then cmd = "DROP INDEX CONCURRENTLY"
    elseif w[1] == "reindex" then
      -- REINDEX [(options)] {INDEX | TABLE | SCHEMA | DATABASE | SYSTEM} [CONCURRENTLY] name: concurrently
      -- (the word, or the option not followed by false, off or 0), or of a whole schema, database or system
      local i, concurrently = 2, false
      if w[2] == "(" then
        repeat
          i = i + 1
          if w[i] == "concurrently" then
            local v = w[i + 1]
            concurrently = not (v == "false" or v == "off" or (v == nil and t.stop == "0"))
          end
        until w[i] == nil or w[i] == ")"
        i = i + 1
      end
      if concurrently or w[i + 1] == "concurrently" then cmd = "REINDEX CONCURRENTLY"
      elseif w[i] == "schema" or w[i] == "database" or w[i] == "system" then cmd = "REINDEX " .. w[i]:upper() end
    elseif w[1] == "discard" and w[2] == "all" then cmd = "DISCARD ALL"
    elseif w[1] == "cluster" then
      -- CLUSTER [VERBOSE | (options)] with no table: every table clustered before
      local i = 2
      if w[2] == "verbose" then i = 3
      elseif w[2] == "(" then repeat i = i + 1 until w[i] == nil or w[i] == ")"; i = i + 1 end
      if w[i] == nil then cmd = "CLUSTER" end
    end
    -- (DISCARD ALL has no up.lua to go to: on ferry's session it would
    -- release the migration lock, which db.exec refuses there)
    if cmd == "DISCARD ALL" then
      usage_error("%s:%d: DISCARD ALL cannot run inside a transaction block, and up.sql runs in one that ferry "
                  .. "begins and commits: leave it out (on ferry's session it would also release ferry's migration "
                  .. "lock; DISCARD PLANS, SEQUENCES and TEMP run in a transaction)", rel, t.line)
    elseif cmd then
      usage_error("%s:%d: %s cannot run inside a transaction block, and up.sql runs in one that ferry begins and "
                  .. "commits: run it from an up.lua with db.exec, outside the dry run (see docs/authoring.md, "
                  .. "section 10)", rel, t.line, cmd)
    end
  end
end

-- What up and run refuse before anything is written: that, and a
-- migration with neither script (it would fail with a heading and a failed
-- history row for a folder that is not finished).
local function refuse_bad_up_script(m)
  if not m.files["up.lua"] and not m.files["up.sql"] then usage_error("%s has neither up.lua nor up.sql", m.rel) end
  refuse_own_transaction(m)
end

-- The place in list (sorted) of the last migration up to target: a
-- migration id, or a version (then the last of the migrations of that
-- version).  Positions, not a comparison of version strings, which would
-- put 10 before 2.  nil when no migration has it.
local function last_up_to(list, target)
  local last
  for i, m in ipairs(list) do
    if m.id == target or m.version == target then last = i end
  end
  return last
end

-- The migrations of list up to its position last that are not applied, in order.
local function pending_up_to(list, last, states)
  local pending = {}
  for i = 1, last do
    local st = states[list[i].id]
    if not (st and st.status == "applied") then pending[#pending + 1] = list[i] end
  end
  return pending
end

-- The last migration before m in list that is not applied (nil when none):
-- what `ferry baseline ID_OF_M` would record as applied along with m.
local function pending_before(list, states, m)
  local last
  for _, x in ipairs(list) do
    if x == m then break end
    local st = states[x.id]
    if not (st and st.status == "applied") then last = x end
  end
  return last
end

local function renamed_why(r)
  return r.version and r.scripts and "same version and scripts" or (r.version and "same version" or "same scripts")
end

-- "NEW looks like OLD renamed (why; OLD was applied at TIME and its folder is gone)"
local function looks_renamed(m, r)
  return string.format("%s looks like %s renamed (%s; %s was %s at %s and its folder is gone)", m.id, r.id,
                       renamed_why(r), r.id, r.st.operation == "baseline" and "baselined" or "applied",
                       r.st.finished_at)
end

-- up and run do not run a migration that looks renamed (renamed_from: r):
-- it would run a second time what was applied under its old name (a schema
-- step run twice fails or does damage).  A configuration error, exit 2,
-- before anything is written, naming the ways out.
local function refuse_renamed(list, states, m, r)
  local why = renamed_why(r)
  local before = pending_before(list, states, m)
  local record = before and string.format("'ferry up --to %s' (what is pending before it), then 'ferry baseline %s'",
                                          before.id, m.id)
                        or string.format("'ferry baseline %s'", m.id)
  local other = r.version and "if it is a different migration, give it a new version"
                or string.format("to run its scripts a second time, rename the folder back and 'ferry run %s'", r.id)
  -- A data migration is not baselined under a new name: what it wrote may
  -- be tagged with its old id (ctx.migration), which its rollback and
  -- checks look for, and its resume point is kept under that id.
  if m.files["up.lua"] then
    usage_error("%s: not run a second time. Rename the folder back to %s (a data migration is known by its id: its "
                .. "runs, resume point and checks go by it, and so may the rows it wrote, through ctx.migration); "
                .. "or, %s", looks_renamed(m, r), r.id, other)
  end
  usage_error("%s: not run a second time. Rename the folder back to %s; or, if it is %s under a new name, record it "
              .. "as applied without running it: %s; or, %s", looks_renamed(m, r), r.id, r.id, record, other)
end

-- What rollback and validate, which go by the recorded id, refuse: a
-- folder that looks like r renamed (see renamed_from).
local function refuse_renamed_for(command, m, r)
  local what = command == "rollback" and "its rollback belongs to it" or "its checks look for it"
  local force = command == "rollback"
                and string.format("; or, to run this folder's rollback all the same: ferry rollback %s --force", m.id)
                or ""
  usage_error("%s: what %s did is recorded under that id, and %s. Rename the folder back to %s and 'ferry %s %s'%s",
              looks_renamed(m, r), r.id, what, r.id, command, r.id, force)
end

-- After a migration that finished although Ctrl-C came meanwhile: the
-- command stops there; nil when no signal came.
-- Returns the exit code and the line said (the --json object's error).
local function after_interrupt(m, dry_run)
  local stop = sys.interrupted()
  if not stop then return nil end
  local line = string.format("%s after %s had finished (%s); nothing after it was run", stop.message, m.id,
                             dry_run and "a dry run" or "applied")
  err_out("ferry: ", line, "\n")
  return stop.code, line
end

-- missing_object(m, r) -> whether r, m's result, is a data migration's
-- failure on a table, column, function, type or schema its statement names
-- that is not there (a schema step before it not applied): what
-- later_schema_hint and pending_schema_hint add their advice to.
local missing_object, add_advice, pending_schema_step
do
  local UNDEFINED_OBJECT = {["42P01"] = true, ["42703"] = true, ["42883"] = true, ["42704"] = true, ["3F000"] = true}
  function missing_object(m, r)
    return r.exit and m.files["up.lua"] and r.message
           and UNDEFINED_OBJECT[r.message:match("%[SQLSTATE (%w+)%]") or ""] or false
  end
  -- add_advice(r, advice): added to the error line (r.message) and to the --json
  -- "error" (r.error), which a program driving ferry shows its user
  function add_advice(r, advice)
    r.message = r.message .. advice
    if r.error then r.error = r.error .. advice end
  end
  -- whether x is a schema step (up.sql, no up.lua) not applied here
  function pending_schema_step(x, states)
    local st = states[x.id]
    return x.files["up.sql"] and not x.files["up.lua"] and not (st and st.status == "applied")
  end
end

-- A data migration that failed on a missing table, column, function, type
-- or schema while a schema step of the same version that sorts after it
-- (the same day's `ferry new X --sql` and `ferry new X_stats`, which sorts
-- first) is not applied here: `up --to` that step would run this one first,
-- so the way out is a name that sorts it first.  For a missing table, only
-- a step whose CREATEs name it (ferry.creates' may_create): one making
-- other tables is no reason to rename.
local function later_schema_hint(list, states, m, r)
  if not missing_object(m, r) then return end
  local after, past, may_create = {}, false, require("ferry.creates").may_create
  for _, x in ipairs(list) do
    -- (a step whose CREATEs do not name the missing table is no reason)
    if past and x.version == m.version and pending_schema_step(x, states)
       and may_create(without_bom(read_file(x.path .. "/up.sql") or ""), r.message) then
      after[#after + 1] = x.id
    end
    past = past or x.id == m.id
  end
  if #after == 0 then return end
  add_advice(r, string.format("; %s, %s of the same version, sort%s after it (migrations of one version run "
                              .. "in name order) and %s not applied here: if %s what this one reads, rename "
                              .. "the folders so that %s first (e.g. %s_1_%s, %s_2_%s; the id in their "
                              .. "files with it), then run them in order",
                              table.concat(after, ", "), #after == 1 and "a schema step" or "schema steps",
                              #after == 1 and "s" or "", #after == 1 and "is" or "are",
                              #after == 1 and "it makes" or "they make", #after == 1 and "it sorts" or "they sort",
                              m.version, after[1]:sub(#m.version + 2), m.version, m.name))
end

-- A data migration that failed on a missing table, column, function, type
-- or schema (missing_object) while a schema step (up.sql) before it is not
-- applied here: say which step and what to do.  ran_nothing_of: the steps
-- `up --dry-run` ran nothing of before it (a dry run runs no up.sql); nil
-- for `run`, which runs only the migration it is given (an author runs the
-- fill before its table's step): then the history says which are not applied.
local function pending_schema_hint(list, states, m, r, dry_run, ran_nothing_of)
  if not missing_object(m, r) then return end
  local before = ran_nothing_of or {}
  if not ran_nothing_of then
    for _, x in ipairs(list) do
      if x.id == m.id then break end
      if pending_schema_step(x, states) then before[#before + 1] = x.id end
    end
  end
  if #before == 0 then return end
  local one = #before == 1
  if ran_nothing_of then
    add_advice(r, string.format("; this dry run applied nothing of %s before it (a dry run runs no "
                                .. "up.sql): apply %s first: ferry up --to %s (which also runs what is pending "
                                .. "before it), then dry-run this one",
                                table.concat(before, ", "), one and "it" or "them", before[#before]))
  else
    add_advice(r, string.format("; %s, %s before it, %s not applied here (ferry run runs only the migration "
                                .. "it is given): apply %s first: ferry up --to %s (which also runs what is "
                                .. "pending before it), then %s this one again",
                                table.concat(before, ", "), one and "a schema step" or "schema steps",
                                one and "is" or "are", one and "it" or "them",
                                before[#before], dry_run and "dry-run" or "run"))
  end
end

-- A data migration that failed on a missing table, function or type while
-- the session's search_path names no schema that exists (a DBA's
-- search_path = '' on the role or database, or one naming only "$user"):
-- the script's unqualified names were looked up nowhere.  (ferry leaves
-- search_path as the server, database, role or connection sets it: the
-- application's tables are where its own sessions find them.)
local function search_path_hint(m, r)
  if not missing_object(m, r) then return end
  local ok, p = pcall(db.one, "SELECT current_setting('search_path') AS path, "
                      .. "cardinality(current_schemas(false)) AS schemas")
  if not ok or p.schemas > 0 then return end
  add_advice(r, string.format("; the session's search_path (%s, as the database, the role or PGOPTIONS set it) names "
                              .. "no schema that exists, so the names the script does not qualify are looked up "
                              .. "nowhere: give ferry the application's search_path (in the connection string, "
                              .. "options=-csearch_path%%3Dpublic; or PGOPTIONS='-c search_path=public'), or have the "
                              .. "DBA set it (ALTER ROLE ... SET search_path = ...), then re-run",
                              p.path))
end

function commands.up(args)
  if #args > 0 then usage_error("up takes no arguments (did you mean 'ferry run %s'?)", args[1]) end
  local list, by_id, ignored = discover(root_dir)
  note_ignored(ignored)
  local last = #list
  if opts.to then
    if opts.to == "" then usage_error("--to is empty: give the version (or the id) of the last migration to apply") end
    last = last_up_to(list, opts.to)
    if not last then usage_error("--to %s: no migration has that version", opts.to) end
  end
  db.open()
  take_lock()
  -- the history first, read only: whether a pending migration is Lua decides
  -- whether the preflight compiles the rules, and the preflight comes
  -- before ensure_history, which may write (the history tables)
  local states = load_states()
  local pending = pending_up_to(list, last, states)
  local renamed = renamed_from(pending, by_id, states)
  for _, m in ipairs(pending) do
    if renamed[m.id] then refuse_renamed(list, states, m, renamed[m.id]) end
  end
  preflight(list, any_up_lua(pending))
  for _, m in ipairs(pending) do refuse_bad_up_script(m) end
  ensure_history()
  local results, code, stop_line = array(), EXIT_OK, nil
  -- the newest applied migration, by version: a pending one older than it
  -- (a late arrival, from a branch merged after) runs out of version order
  -- (positions in the sorted list, not version strings: 10 sorts after 9)
  local newest_applied, newest_at, at = nil, 0, {}
  for i, m in ipairs(list) do
    at[m] = i
    local st = states[m.id]
    if st and st.status == "applied" then newest_applied, newest_at = m, i end
  end
  local dry_sql = {}          -- the schema steps this dry run ran nothing of, so far
  for _, m in ipairs(pending) do
    if at[m] < newest_at then
      log.alert(string.format("note: %s is older than %s, which is applied: it runs after it, out of version order",
                             m.id, newest_applied.id))
    end
    local r = apply(m, "up", opts.dry_run)
    results[#results + 1] = r
    -- A data migration reading what a schema step before it creates: in a
    -- dry run that step ran nothing, so say which and what to do.
    if opts.dry_run then pending_schema_hint(list, states, m, r, true, dry_sql) end
    later_schema_hint(list, states, m, r)
    search_path_hint(m, r)
    if opts.dry_run and m.files["up.sql"] and not m.files["up.lua"] then dry_sql[#dry_sql + 1] = m.id end
    if r.exit then
      code, stop_line = r.exit, r.message:match("^[^\n]*")
      -- applied all the same, as its history row says (the connection
      -- lost as the COMMIT recording it went through): its entry says so
      -- as that of one a Ctrl-C stopped the command after; the command's
      -- "ok" and "error" say that it stopped
      if r.status == "applied" then r.ok, r.error = true, nil end
      if not log.flags().json then report_failure(r) else err_out("ferry: ", shown(r.message), "\n") end
      break
    end
    local stopped, line = after_interrupt(m, opts.dry_run)
    if stopped then code, stop_line = stopped, line break end
  end
  if #pending == 0 and not log.flags().json then
    log.info(opts.to and string.format("Nothing to do: every migration up to %s is applied.", opts.to)
                      or "Nothing to do: every migration is applied.")
  end
  -- ("ok" for the whole command: false also when it stopped after a
  -- migration that went well, interrupted; "error": the line said)
  if log.flags().json then
    emit_json(object({"ok", "migrations", "error"}, {ok = code == EXIT_OK, migrations = results, error = stop_line}), code)
  end
  return code
end

-- A migration to run, roll back or validate that only the history knows (its folder was
-- deleted or never checked out): "unknown migration" would send the
-- operator looking in the wrong place.
local function refuse_missing_folder(key, to_do)
  -- (a database that cannot be reached: "unknown migration" as before;
  -- Ctrl-C meanwhile is still one)
  local opened, e = pcall(db.open)
  if not opened then
    if is_ferry_error(e) and e.signal then error(e, 0) end
    return
  end
  local states = load_states()
  local known = {}                   -- (as discover lists them, for find_migration)
  for id in pairs(states) do known[#known + 1] = {id = id, name = id:match("^%d+_(.*)$") or ""} end
  local found, m = pcall(find_migration, known, key)
  if not found then return end
  usage_error("%s is in the history (%s) but its folder %s/migrations/%s is gone: restore it (from version control) "
              .. "to %s", m.id, states[m.id].status, root_dir, m.id, to_do)
end

-- The migration key names among the folder's; one only the history knows
-- (its folder gone) is said so, to_do ("validate it") needing the folder.
local function find_in_folder(list, key, to_do)
  local found, m = pcall(find_migration, list, key)
  if found then return m end
  if is_ferry_error(m) and m.message:find("^unknown migration") then refuse_missing_folder(key, to_do) end
  error(m, 0)
end

function commands.run(args)
  if #args ~= 1 then usage_error(help.usage("run")) end
  local list, by_id = discover(root_dir)
  local m = find_in_folder(list, args[1], "run it")
  preflight({m}, m.files["up.lua"])
  refuse_bad_up_script(m)
  db.open()
  -- (once the main session has its slot: started beside it, the others
  -- could take the last slots of a CONNECTION LIMIT first, and the
  -- command fail at its start, exit 2, instead of the run with its hint)
  prestart_sessions(m, opts.dry_run)
  take_lock()
  local states = load_states()
  local renamed = renamed_from({m}, by_id, states)[m.id]
  if renamed then refuse_renamed(list, states, m, renamed) end
  local r = apply(m, "run", opts.dry_run)
  pending_schema_hint(list, states, m, r, opts.dry_run)
  later_schema_hint(list, states, m, r)
  search_path_hint(m, r)
  if r.exit then
    if log.flags().json then emit_json(r, r.exit) end
    if not log.flags().json then report_failure(r) else err_out("ferry: ", shown(r.message), "\n") end
    return r.exit
  end
  -- finished, though interrupted meanwhile: ok false, with the line
  local code, line = after_interrupt(m, opts.dry_run)
  if code then r.ok, r.error = false, line end
  if log.flags().json then emit_json(r, code or EXIT_OK) end
  return code or EXIT_OK
end

-- The migrations after m (in the folder's order, and those only the
-- history knows, by version) that are applied, newest first.
local function applied_after(list, states, m)
  local later, after, seen = {}, false, {}
  for _, x in ipairs(list) do
    seen[x.id] = true
    if after and states[x.id] and states[x.id].status == "applied" then later[#later + 1] = x.id end
    if x.id == m.id then after = true end
  end
  local v = tonumber(m.version) or math.huge
  for id, st in pairs(states) do
    if not seen[id] and st.status == "applied" and (tonumber(id:match("^(%d+)_")) or -1) > v then
      later[#later + 1] = id
    end
  end
  table.sort(later, function(a, b) return a > b end)
  return later
end

-- The migrations with a saved resume point (a run that failed or was
-- interrupted after a batch committed: the next run resumes from it).
local function saved_checkpoints()
  local saved = {}
  if not history_exists(true) then return saved end
  for _, r in ipairs(on_history("read", db.query, "SELECT migration FROM ferry.checkpoint")) do saved[r.migration] = true end
  return saved
end

-- How a migration whose state is st stopped part way, with a resume
-- point saved (has_checkpoint): "failed", or "was interrupted" (its run's
-- row running, its process gone); nil when it did not.
local function stopped_part_way(st, has_checkpoint)
  if not (st and has_checkpoint) then return nil end
  if st.status == "failed" then return "failed" end
  if st.status == "running" and st.gone then return "was interrupted" end
end

-- The migrations after m (in the folder, or only in the history with a
-- later version) that stopped part way: not applied, their last run failed
-- or interrupted with a resume point saved.  Their next run resumes after
-- the rows they committed without looking at them again, so a rollback of
-- m that removes those rows (a schema step's DROP TABLE) would have that
-- run skip them -- and record the migration applied.  {{id =, how =}}, in
-- version order.
local function part_way_after(list, states, m)
  local saved = saved_checkpoints()
  local found, after, seen = {}, false, {}
  local function add(id, st)
    local how = stopped_part_way(st, saved[id])
    if how then found[#found + 1] = {id = id, how = how} end
  end
  for _, x in ipairs(list) do
    seen[x.id] = true
    if after then add(x.id, states[x.id]) end
    if x.id == m.id then after = true end
  end
  local v = tonumber(m.version) or math.huge
  for id, st in pairs(states) do
    if not seen[id] and (tonumber(id:match("^(%d+)_")) or -1) > v then add(id, st) end
  end
  table.sort(found, function(a, b) return a.id < b.id end)
  return found
end

-- A rollback undoes what ferry did on this database; without --force it
-- refuses, before anything is written, what ferry did not do: a migration
-- recorded applied by baseline (the database had it before ferry: a
-- schema step's rollback.sql would drop a live schema), one ferry has no
-- record of here, and a folder that looks like an applied one renamed
-- (what that one did is recorded under its old id), and a schema step
-- whose runs all failed (an up.sql commits nothing when it fails).  One
-- ferry ran -- applied, rolled back, or a data migration that failed or
-- was interrupted (its committed batches stay) -- is rolled back as asked.
local function refuse_foreign_rollback(list, by_id, states, m)
  local st = states[m.id]
  local force = string.format("To roll it back all the same: ferry rollback %s --force", m.id)
  if st and st.status == "applied" and st.operation == "baseline" then
    usage_error("%s was recorded as applied by 'ferry baseline' at %s, not run by ferry here: its rollback would undo "
                .. "what the database had before ferry. %s", m.id, st.finished_at, force)
  end
  -- (a schema step that failed committed nothing: one never applied did nothing)
  if st and m.files["up.sql"] and not m.files["up.lua"] and st.status ~= "applied" and st.status ~= "rolled back" then
    usage_error("ferry never applied %s on this database (its runs failed, and a schema step that fails commits "
                .. "nothing): its rollback would undo what the database had before ferry. %s", m.id, force)
  end
  if st then return end
  local r = renamed_from({m}, by_id, states)[m.id]
  if r then refuse_renamed_for("rollback", m, r) end
  usage_error("ferry has no record of %s on this database (never run or baselined here): its rollback would undo "
              .. "what ferry did not do. %s", m.id, force)
end

function commands.rollback(args)
  if #args ~= 1 then usage_error(help.usage("rollback")) end
  if opts.dry_run then usage_error("rollback has no --dry-run (read %s instead)", "its rollback.sql") end
  local list, by_id = discover(root_dir)
  local m = find_in_folder(list, args[1], "roll it back")
  if not (m.files["rollback.sql"] or m.files["down.lua"]) then
    usage_error("%s has no rollback.sql or down.lua", m.id)
  end
  preflight({m}, m.files["down.lua"])
  db.open()
  take_lock()
  ensure_history()
  local states = load_states()
  local st = states[m.id]
  if not opts.force then refuse_foreign_rollback(list, by_id, states, m) end
  -- A later migration still applied may stand on this one (a schema's
  -- rollback drops the tables every later batch wrote into) and would stay
  -- recorded as applied over nothing; or not (two independent backfills):
  -- said, not refused.
  -- (said once the rollback is recorded as started: not before a right on
  -- ferry's tables that the role lacks stops it)
  local later, part_way = applied_after(list, states, m), part_way_after(list, states, m)
  local function say_notes()
    if #later > 0 then
      log.alert(string.format("note: applied after %s, and left applied: %s (if %s on it, roll %s back first, newest "
                             .. "first)", m.id, table.concat(later, ", "), #later == 1 and "it stands" or "they stand",
                             #later == 1 and "it" or "them"))
    end
    if not (st and st.status == "applied") and not log.flags().json then
      log.warn(string.format("note: %s is not recorded as applied; running its rollback anyway", m.id))
    end
    for _, p in ipairs(part_way) do
      log.alert(string.format("note: after %s, %s stopped part way (its last run %s; the rows it committed stay) and "
                             .. "its next run resumes from its checkpoint: if it stands on %s, roll it back first "
                             .. "(ferry rollback %s), or that run skips the rows it committed before, which this "
                             .. "rollback removes", m.id, p.id, p.how, m.id, p.id))
    end
  end
  note_replica_role()
  stats.reset()
  stats.max_errors(opts.max_errors)
  local t0 = sys.clock()
  local ctx = make_ctx(m, false, "rollback")
  local sum = checksum(root_dir, m, {})
  local hid
  -- (the history row in the protected call too: an interruption as its
  -- INSERT went through must not leave it "running", see apply)
  local ok, err = pcall(function()
    hid = on_history("write", history_start, m, "rollback", ctx.run_id, sum)
    say_notes()
    keep_killed_counters(m.id)
    -- The resume point goes before the rollback touches a row: one that
    -- stops part way (a down.lua's or a rollback.sql's own transactions)
    -- has removed rows before it, which a run resuming from it would skip.
    -- Gone, the next run starts again and finds what is still there done.
    db.exec("DELETE FROM ferry.checkpoint WHERE migration = $1", m.id)
    if not log.flags().json then log.info("==> rolling back " .. m.id) end
    if m.files["down.lua"] then run_lua(m, "down.lua", ctx)
    else run_sql_file(m, "rollback.sql", false) end
  end)
  local stop = sys.interrupted()
  if stop then ok, err = false, stop end
  if stop and not hid then hid = started_row(ctx.run_id) end
  -- (the history not writable: said as it is, nothing was run)
  if not ok and not hid and not stop then error(err, 0) end
  ok, err = close_open_transaction(ok, err)
  local errtext = not ok and error_text(err) or nil
  local failure, recorded
  if hid then
    failure, recorded = close_history(hid, errtext and db._main_lost(), errtext, function()
      history_finish(hid, ok and "rolled back" or "failed", nil, nil, errtext)
      if ok then db.exec("DELETE FROM ferry.checkpoint WHERE migration = $1", m.id) end
    end)
  end
  -- (the connection lost as the COMMIT that recorded it went through: it
  -- is recorded rolled back, and said so -- see apply)
  local lost_at_commit = failure and ok and recorded == "rolled back"
  if lost_at_commit then
    failure = "the connection was lost as the COMMIT recording it went through: it is rolled back (its history row, "
              .. "read on a new session, says so)"
  end
  -- what its history row holds (--json "status"), nil when not known
  local row_status
  if hid then
    local lost = errtext and db._main_lost()
    if lost or failure then row_status = recorded else row_status = ok and "rolled back" or "failed" end
  end
  if failure and ok then ok, err, errtext = false, failure, failure end
  local result = object({"migration", "mode", "ok", "status", "stats", "errors", "duration_ms", "error"}, {
    migration = m.id, mode = "rollback", ok = ok, status = row_status, stats = stats_object(), errors = errors_array(),
    duration_ms = math.floor((sys.clock() - t0) * 1000 + 0.5), error = errtext and errtext:match("^[^\n]*"),
  })
  -- a rollback that finished though interrupted meanwhile (as its outcome
  -- was recorded): ok false, with the line
  local late = ok and sys.interrupted()
  if late then
    result.ok, result.error = false, string.format("%s after the rollback of %s had finished (rolled back)", late.message, m.id)
  end
  if log.flags().json then emit_json(result, not ok and (is_ferry_error(err) and err.code or EXIT_FAIL)
                                             or late and late.code or EXIT_OK) end
  -- a down.lua's counters, as a run's: the block (nothing without any;
  -- not under --json or --quiet), before the line saying how it ended
  if m.files["down.lua"] then write_after_record(print_summary) end
  if not ok then
    if stop then
      err_out("ferry: ", m.id, ": rollback ", stop.message, "; it may have run in part: run `ferry rollback ",
              m.id, "` again to finish it\n")
    elseif lost_at_commit then
      err_out("ferry: ", m.id, ": ", errtext, "\n")
    else
      local first = errtext:match("^[^\n]*")
      err_out("ferry: ", m.id, ": rollback failed: ", shown(first),
              server_condition_advice(first, "run `ferry rollback " .. m.id .. "` again"), "\n")
    end
    return is_ferry_error(err) and err.code or EXIT_FAIL
  end
  if not log.flags().json then write_after_record(log.info, string.format("\u{2713} %s rolled back", m.id)) end
  stop = late or sys.interrupted()
  if stop then
    err_out("ferry: ", stop.message, " after the rollback of ", m.id, " had finished (rolled back)\n")
    return stop.code
  end
  return EXIT_OK
end

-- validate's note when m's backfill is not whole because a run or a
-- rollback of it stopped part way (failed, or killed before it could
-- say: 'running', its process gone): its checks then fail on what that
-- left out, which says nothing of the rules.
local function stopped_note(operation, m, row, consequence, remedy)
  local interrupted = row.status == "running"
  return string.format("note: the last %s of %s %s (started %s; 'ferry history %s' says %s): %s; %s, then validate again",
                       operation, m.id, interrupted and "was interrupted" or "failed", row.started_at, m.id,
                       interrupted and "more" or "why", consequence, remedy)
end

local function unfinished_run_note(m, st)
  if not st then return nil end
  if st.status == "applied" and st.failed_rollback then        -- (applied still: the rollback stopped part way)
    return stopped_note("rollback", m, st.failed_rollback,
                        "it may have removed part of what the migration wrote, which the checks count as missing",
                        string.format("finish it (ferry rollback %s), or run the migration again (ferry run %s) "
                                      .. "to write that back", m.id, m.id))
  end
  if st.status == "failed" or (st.status == "running" and st.gone) then
    return stopped_note("run", m, st, "the checks see what it committed and count what it did not write as missing",
                        string.format("re-run it (ferry run %s)", m.id))
  end
  return nil
end

-- not_applied_note(m, st) -> state, note when m is not applied on this
-- database (nil when it is): "pending" (ferry has no record of it here)
-- or "rolled back".  Its checks look for what it leaves behind, so a
-- failed one -- often a raw query error, a table not there yet -- says
-- nothing of the migration: said first, and as the --json object's
-- "not_applied".  (A run that failed or is in progress has notes of its
-- own, above.)
local function not_applied_note(m, st)
  local state, why
  if not st then
    state, why = "pending", "pending: ferry has no record of it here"
  elseif st.status == "rolled back" then
    state, why = "rolled back", "rolled back at " .. st.finished_at
  else
    return nil
  end
  return state, string.format("note: %s is not applied on this database (%s): its checks look for what it leaves "
                              .. "behind, and fail where they do not find it; apply it first: ferry up --to %s "
                              .. "(which also runs what is pending before it), then validate again", m.id, why, m.id)
end

function commands.validate(args)
  if #args ~= 1 then usage_error(help.usage("validate")) end
  local list, by_id = discover(root_dir)
  local m = find_in_folder(list, args[1], "validate it")
  if not m.files["validate.lua"] then usage_error("%s has no validate.lua", m.id) end
  preflight({m}, true)
  db.open()
  -- (checks that look for what the old id wrote would pass over nothing)
  local states = history_exists() and load_states() or {}
  local r = not states[m.id] and next(states) and renamed_from({m}, by_id, states)[m.id]
  if r then refuse_renamed_for("validate", m, r) end
  -- A run (or rollback) of m in progress on this database: the checks see
  -- the batches it had committed when their snapshot was taken, so their
  -- failures and counts say nothing yet.  Said, not refused.  (A running
  -- row not gone, by the one test status and history use: its session
  -- still holds the migration lock -- a row a killed ferry left running
  -- whose backend pid the server has given to another session since is no
  -- run.)
  if history_exists() then
    local busy = on_history("read", db.one, [[
      SELECT h.operation, h.host, h.pid,
             to_char(h.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS since
        FROM ferry.history h
       WHERE h.migration = $1 AND h.status = 'running' AND NOT ]] .. run_gone_sql(2, 3) .. [[
       ORDER BY h.id DESC LIMIT 1]], m.id, LOCK_CLASSID, LOCK_OBJID)
    if busy then
      log.alert(string.format("note: a %s of %s is in progress on this database (pid %s on %s, since %s): the checks "
                             .. "see what it had committed when they began (one snapshot for all of them), not "
                             .. "the batches it commits meanwhile; validate again when it has finished",
                             busy.operation == "rollback" and "rollback" or "run", m.id, tostring(busy.pid),
                             busy.host, busy.since))
    else
      local note = unfinished_run_note(m, states[m.id])
      if note then log.alert(note) end
    end
  end
  local not_applied, note = not_applied_note(m, states[m.id])
  if note then log.alert(note) end
  -- checks only read: the main session and every one they open are
  -- read-only while they run
  local was_read_only = db.read_only
  local function set_read_only(on)
    db_core.set_read_only(on)
    db.read_only = on
    -- (back: the session's own value, which a database its DBA set
    -- read-only keeps -- RESET, not "off")
    db.exec(on and "SET default_transaction_read_only = on" or "RESET default_transaction_read_only")
  end
  set_read_only(true)
  local checks = array()
  local failed = 0
  local ctx = make_ctx(m, true, "validate")
  local function check(name, fn, detail)
    -- (a name left out, check(fn), was a FAIL named "function: 0x55...",
    -- and no JSON object at all under --json)
    if math.type(name) then name = tostring(name) end
    if type(name) ~= "string" then
      error(string.format('check(name, fn): the name is a string, not a %s (check("what it checks", fn))', type(name)), 2)
    end
    local ok, info, pok, a, b
    if type(fn) == "function" then
      -- (under a savepoint of the checks' transaction, rolled back after it)
      pok, a, b = db._snapshot_check(fn)
      local stop = sys.interrupted()
      if stop then error(stop, 0) end          -- Ctrl-C: no more checks
      if pok then ok, info = a and true or false, b else ok, info = false, "error: " .. error_text(a) end
    else
      ok, info, pok, a = fn and true or false, detail, true, fn
    end
    -- A count or a text given as the result: Lua takes every number (0
    -- too) and every string for true, so check("no orphans", r.n) passed
    -- whatever it counted.  It fails, saying so.
    if pok and (math.type(a) or type(a) == "string") then
      ok = false
      info = string.format("it gave %s, a %s, not true or false: Lua takes every %s (%s too) for true, so it would "
                           .. "pass whatever it found; give a comparison (n == 0, n .. \" found\")%s",
                           math.type(a) and tostring(a) or string.format("%q", #a > 40 and a:sub(1, 40) .. "..." or a),
                           math.type(a) and "number" or "string", math.type(a) and "number" or "string",
                           math.type(a) and "0" or '""', info ~= nil and ("; " .. tostring(info)) or "")
    end
    if not ok then failed = failed + 1 end
    -- (valid UTF-8, as an error's text: a name or detail cut from data
    -- inside a character would make the --json object no JSON)
    name, info = errors.valid_utf8(name), info and errors.valid_utf8(tostring(info)) or nil
    checks[#checks + 1] = object({"name", "ok", "detail"}, {name = name, ok = ok, detail = info})
    if not log.flags().json then
      log_check(ok, string.format("%s %s%s", ok and "\u{2713} PASS" or "\u{2717} FAIL", shown(name),
                                  info and ("  (" .. shown(info) .. ")") or ""))
    end
    return ok
  end
  ctx.check = check
  if not log.flags().json then log.info("==> validating " .. m.id) end
  forget_rules()
  local env = script_env(ctx)
  env.check = check
  local chunk = load_script(m.rel .. "/validate.lua", env)
  -- The whole script, every check, in one REPEATABLE READ READ ONLY
  -- transaction on the main session: one snapshot for all the checks,
  -- whatever the application commits meanwhile.  It only reads, so it is
  -- rolled back, on every way out.
  local ok, err
  do
    local snapshot <close> = setmetatable({}, {__close = function() db._snapshot_end() end})
    db._snapshot_begin()
    os.exit = no_exit
    ok, err = pcall(chunk)
    errors.restore_stdlib()
    os.exit = real_exit
  end
  local stop = sys.interrupted()
  if stop then ok, err = false, stop end
  set_read_only(was_read_only)
  if not ok then
    failed = failed + 1
    checks[#checks + 1] = object({"name", "ok", "detail"}, {name = "validate.lua", ok = false, detail = error_text(err)})
    if not log.flags().json then log_check(false, "\u{2717} FAIL validate.lua stopped: " .. shown(error_text(err):match("^[^\n]*"))) end
  end
  local code = stop and stop.code or failed == 0 and EXIT_OK or EXIT_FAIL
  if log.flags().json then
    emit_json(object({"migration", "mode", "not_applied", "ok", "checks"},
                     {migration = m.id, mode = "validate", not_applied = not_applied, ok = failed == 0, checks = checks}),
              code)
  else
    log.info(string.format("%d check(s), %d failed", #checks, failed))
  end
  return code
end

function commands.baseline(args)
  if #args ~= 1 then usage_error(help.usage("baseline")) end
  local version = args[1]
  if version == "" then
    usage_error("baseline: the version is empty: give the version (or the id) of the last migration to record")
  end
  local list = discover(root_dir)
  local last = last_up_to(list, version)
  if not last then usage_error("baseline %s: no migration has that version", version) end
  if opts.dry_run then usage_error("baseline has no --dry-run") end
  db.open()
  take_lock()
  ensure_history()
  local states = load_states()
  local todo = {}
  for i, m in ipairs(list) do
    if i > last then break end
    local st = states[m.id]
    if not (st and st.status == "applied") then todo[#todo + 1] = m end
  end
  -- A data migration that stopped part way here (its run failed or was
  -- interrupted, its resume point kept) has written only some of its rows:
  -- recorded applied, nothing would say the rest is missing
  local saved = saved_checkpoints()   -- (none on a read-only database: the baseline fails as it writes)
  local function note_part_way(m)
    local how = stopped_part_way(states[m.id], saved[m.id])
    if not how then return end
    log.alert(string.format("note: %s stopped part way here (its last run %s; the rows it committed stay): recorded "
                           .. "as applied, it lacks what that run did not write; its resume point is kept: ferry run "
                           .. "%s writes the rest", m.id, how, m.id))
  end
  local done = array()
  -- Ctrl-C, or the reader of stdout gone: what is recorded stays; the line
  -- says how far it got and to baseline again for the rest
  local function stopped(stop)
    local line = string.format("%s after baselining %d of %d migrations%s; run 'ferry baseline %s' again for the rest",
                               stop.message, #done, #todo, #done > 0 and " (the last: " .. done[#done] .. ")" or "", version)
    err_out("ferry: ", line, "\n")
    if log.flags().json then
      emit_json(object({"ok", "baselined", "error"}, {ok = false, baselined = done, error = line}), stop.code)
    end
    return stop.code
  end
  for _, m in ipairs(todo) do
    stats.reset()
    local run_id = uuid.v4()
    local sum = checksum(root_dir, m, {})
    -- (one transaction: an interruption between the two leaves no row
    -- "running" for a migration nothing ran of)
    local ok, err = pcall(db.transaction, function()
      history_finish(history_start(m, "baseline", run_id, sum), "applied", nil, nil, nil)
    end)
    -- Ctrl-C as the COMMIT's reply came is raised after it: the row may be
    -- committed all the same, and is then counted as baselined, as the
    -- history has it (asked once the interruption is taken: nothing
    -- interrupts this).  (robust/53-held-record-reply.t)
    if not ok and is_ferry_error(err) and err.signal then
      local got, row = pcall(db.one, "SELECT 1 AS one FROM ferry.history WHERE run_id = $1 AND status = 'applied'", run_id)
      if got and row then ok = true end
    end
    if not ok then
      if is_ferry_error(err) and err.signal then return stopped(err) end
      -- (a right on ferry's history missing: what the role needs, as for
      -- run -- said once the transaction is rolled back)
      on_history("write", error, err, 0)
    end
    done[#done + 1] = m.id
    if not log.flags().json then write_after_record(log.info, "baselined " .. m.id .. " (recorded as applied, not run)") end
    note_part_way(m)
    local stop = sys.interrupted()
    if stop then return stopped(stop) end
  end
  if log.flags().json then emit_json(object({"ok", "baselined"}, {ok = true, baselined = done}), EXIT_OK)
  elseif #done == 0 then log.info("Nothing to baseline: every migration up to " .. version .. " is applied.") end
  return EXIT_OK
end

-- The fields of a migration in `status --json` (a field with no value --
-- a pending migration's applied_at, checksum_changed -- is left out).
local STATUS_KEYS = {"migration", "version", "name", "status", "applied_at", "checksum_changed", "baseline",
                     "later_run_failed", "later_rollback_failed", "missing", "renamed_from", "renamed_to",
                     "checkpoint", "exists_already"}

function commands.status(args)
  if #args > 0 then usage_error("status takes no arguments") end
  local list, by_id, ignored = discover(root_dir)
  note_ignored(ignored)
  db.open()
  local states = load_states()
  local saved = saved_checkpoints()
  local renamed = renamed_from(list, by_id, states)
  local renamed_to = {}              -- the missing migration's id -> the first that looks like it renamed
  for _, m in ipairs(list) do
    local r = renamed[m.id]
    if r and not renamed_to[r.id] then renamed_to[r.id] = m.id end
  end
  local rows = array()
  local read_state = {}              -- (see existing_creations)
  local exists_already = {}          -- id -> what its up.sql creates that the database has
  for _, m in ipairs(list) do
    local st = states[m.id]
    local state, applied, drift = "pending", nil, nil
    if st then
      state = st.status
      if state == "running" and st.gone then state = "interrupted" end
      if state == "applied" then
        applied = st.finished_at
        if st.operation ~= "baseline" and st.checksum then
          drift = checksum(root_dir, m, parse_pg_array(st.rules)) ~= st.checksum
        end
      end
    end
    rows[#rows + 1] = object(STATUS_KEYS,
      {migration = m.id, version = m.version, name = m.name, status = state, applied_at = applied,
       checksum_changed = drift, baseline = st ~= nil and st.operation == "baseline",
       later_run_failed = st ~= nil and st.failed_after == true,
       later_rollback_failed = st ~= nil and st.rollback_failed_after == true, missing = false,
       renamed_from = renamed[m.id] and renamed[m.id].id, checkpoint = saved[m.id] == true})
    -- A schema step to run whose objects the database has already (set up
    -- without ferry): its run would fail with "already exists".
    -- (a folder that looks renamed says that instead: its objects are the
    -- old id's)
    if m.files["up.sql"] and not m.files["up.lua"] and not renamed[m.id]
       and (state == "pending" or state == "failed" or state == "rolled back") then
      local found = existing_creations(without_bom(read_file(m.path .. "/up.sql") or ""), read_state)
      if #found > 0 then
        exists_already[m.id] = found
        rows[#rows].exists_already = true
      end
    end
  end
  -- migrations the history knows and the folder no longer has, in order
  local gone = {}
  for id, st in pairs(states) do
    if not by_id[id] then gone[#gone + 1] = {id = id, st = st, version = id:match("^(%d+)_")} end
  end
  table.sort(gone, function(a, b)
    local va, vb = tonumber(a.version) or math.huge, tonumber(b.version) or math.huge
    if va ~= vb then return va < vb end
    return a.id < b.id
  end)
  for _, g in ipairs(gone) do
    local st = g.st
    rows[#rows + 1] = object(STATUS_KEYS,
      {migration = g.id, version = g.version, name = g.id:match("^%d+_(.+)$"), status = st.status,
       applied_at = st.status == "applied" and st.finished_at or nil, baseline = st.operation == "baseline",
       later_run_failed = st.failed_after == true, later_rollback_failed = st.rollback_failed_after == true,
       missing = true, renamed_to = renamed_to[g.id], checkpoint = saved[g.id] == true})
  end
  if log.flags().json then
    emit_json(object({"migrations"}, {migrations = rows}), EXIT_OK)
    return EXIT_OK
  end
  local fmt = "%-45s %-12s %-21s %s\n"
  out(string.format(fmt, "MIGRATION", "STATUS", "APPLIED AT", "CHECKSUM"))
  for _, r in ipairs(rows) do
    local note = r.checksum_changed and "CHANGED since applied" or (r.checksum_changed == false and "ok" or "-")
    if r.baseline then note = "baseline" end
    if r.missing then
      note = "file missing from migrations/" .. (r.renamed_to and "; renamed to " .. r.renamed_to .. "?" or "")
    end
    if r.renamed_from then
      local st = renamed[r.migration].st
      note = string.format("renamed from %s? (%s %s)", r.renamed_from,
                           st.operation == "baseline" and "baselined" or "applied", st.finished_at)
    end
    local next_run = r.checkpoint and "the next run resumes from its checkpoint" or "the next run starts it again"
    if r.status == "interrupted" then note = "process gone; " .. next_run
    elseif r.status == "failed" and r.checkpoint then note = next_run
    -- (a part-way run baselined: `ferry run` resumes it)
    elseif r.status == "applied" and r.checkpoint and not r.later_run_failed then note = note .. "; " .. next_run end
    if r.later_run_failed then
      -- (a data migration's re-run that committed batches: `ferry run` resumes it)
      note = note .. "; a later run failed" .. (r.checkpoint and r.status == "applied" and "; " .. next_run or "")
    end
    if r.later_rollback_failed then note = note .. "; a later rollback failed" end
    local found = exists_already[r.migration]
    if found then
      note = string.format("%s \"%s\"%s exists already: set up without ferry? (see 'ferry baseline')",
                           found[1].kind, found[1].last, #found > 1 and string.format(" (and %d more it creates)", #found - 1) or "")
    end
    out(string.format(fmt, r.migration, r.status, r.applied_at or "-", note))
  end
  return EXIT_OK
end

-- ferry history [MIGRATION]: the runs ferry.history records, oldest
-- first, for every migration or one -- a folder's (its id or name, or a
-- unique prefix of either) or one only the history knows (its folder gone).
local HISTORY_KEYS = {"id", "migration", "operation", "status", "started_at", "finished_at", "duration_ms",
                      "stats", "errors", "error", "traceback", "host", "pid", "ferry_version", "run_id"}

-- The migration `key` names among the folder's and those only the
-- history knows (find_migration's rules).
local function history_migration(key, ids)
  -- (no migrations folder at all -- the history read from elsewhere --:
  -- the migrations the history knows)
  local list, by_id = {}, {}
  if sys.isdir(root_dir .. "/migrations") then list, by_id = discover(root_dir) end
  local all = {}
  for _, m in ipairs(list) do all[#all + 1] = m end
  for _, id in ipairs(ids) do
    if not by_id[id] then all[#all + 1] = {id = id, name = id:match("^%d+_(.+)$") or id} end
  end
  return find_migration(all, key).id
end

-- A script's text of several lines (an error, its traceback) as shown():
-- each line escaped, the lines after the first indented under it.
local function shown_lines(text)
  return (text:gsub("[^\n]+", shown):gsub("\n", "\n    "))
end

-- "name value, ..." of a run's counters, by name.
local function counters_line(t)
  local names = {}
  for k in pairs(t) do names[#names + 1] = k end
  table.sort(names)
  for i, k in ipairs(names) do names[i] = k .. " " .. tostring(t[k]) end
  return table.concat(names, ", ")
end

function commands.history(args)
  if #args > 1 then usage_error("history takes at most one migration") end
  db.open()
  local rows = {}
  local flags = log.flags()
  if history_exists() then
    local id = db.NULL
    if args[1] then
      local ids = {}
      for i, r in ipairs(on_history("read", db.query, "SELECT DISTINCT migration FROM ferry.history ORDER BY 1")) do
        ids[i] = r.migration
      end
      id = history_migration(args[1], ids)
    end
    -- (stats of another shape -- a row edited by hand -- read as none; the
    -- row errors, up to 1000 a run, only when they are shown)
    rows = on_history("read", db.query, [[
      SELECT h.id, h.migration, h.operation, h.status::text AS status,
             to_char(h.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started_at,
             to_char(h.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS finished_at,
             round(extract(epoch FROM h.finished_at - h.started_at) * 1000)::bigint AS duration_ms,
             CASE WHEN jsonb_typeof(h.stats->'stats') = 'object' THEN h.stats->'stats'
                  WHEN h.status = 'running' THEN coalesce(]] .. (history_exists(true) and CHECKPOINT_COUNTERS or "NULL::jsonb")
                                                          .. [[, '{}')
                  ELSE '{}' END::text AS stats,
             CASE WHEN $2 AND jsonb_typeof(h.stats->'errors') = 'array'
                  THEN (SELECT coalesce(jsonb_agg(e), '[]') FROM jsonb_array_elements(h.stats->'errors') e
                         WHERE jsonb_typeof(e) = 'object')
                  ELSE '[]' END::text AS errors,
             h.error, h.host, h.pid, h.ferry_version, h.run_id::text AS run_id, ]] .. run_gone_sql(3, 4) .. [[ AS gone
        FROM ferry.history h
       WHERE $1::text IS NULL OR h.migration = $1
       ORDER BY h.id]], id, flags.json or flags.verbose or false, LOCK_CLASSID, LOCK_OBJID)
  elseif args[1] then
    history_migration(args[1], {})     -- (unknown, ambiguous: said as for any other)
  end
  local runs = array()
  for _, r in ipairs(rows) do
    if r.gone then r.status = "interrupted" end
    r.gone = nil
    -- (stats keep no order in jsonb: by name)
    local counters = decode_position(r.stats)       -- (counters are integers)
    local names = {}
    for k in pairs(counters) do names[#names + 1] = k end
    table.sort(names)
    r.stats = object(names, counters)
    local errs = array()
    for i, e in ipairs(json.decode(r.errors)) do
      errs[i] = object({"key", "message"}, {key = tostring(e.key), message = tostring(e.message)})
    end
    r.errors = errs
    -- (a script's error is kept with its traceback: apart)
    if r.error then
      local msg, tb = r.error:match("^(.-)\n(stack traceback:\n.*)$")
      if msg then r.error, r.traceback = msg, tb end
    end
    runs[#runs + 1] = object(HISTORY_KEYS, r)
  end
  if log.flags().json then
    emit_json(object({"runs"}, {runs = runs}), EXIT_OK)
    return EXIT_OK
  end
  if #runs == 0 then
    out(args[1] and "no runs of this migration recorded on this database\n" or "no runs recorded on this database\n")
    return EXIT_OK
  end
  local fmt = "%-21s %-45s %-9s %-12s %s\n"
  out(string.format(fmt, "STARTED AT", "MIGRATION", "OPERATION", "STATUS", "TIME"))
  local verbose = log.flags().verbose
  for _, r in ipairs(runs) do
    local took = r.duration_ms and string.format("%.2f s", r.duration_ms / 1000) or "-"
    out(string.format(fmt, r.started_at, r.migration, r.operation, r.status, took))
    if next(r.stats) then out("    ", counters_line(r.stats), "\n") end
    -- (with -v the traceback the history keeps too; a script's text, as
    -- the run's summary shows it: control characters escaped, line by line)
    if r.error then out("    error: ", shown_lines(r.error), "\n") end
    if r.traceback and verbose then out("    ", shown_lines(r.traceback), "\n") end
    if verbose then
      for _, e in ipairs(r.errors) do out("    row ", shown(e.key), ": ", shown(e.message), "\n") end
      out(string.format("    by %s pid %s, ferry %s, run %s\n", r.host or "?", tostring(r.pid or "?"),
                        r.ferry_version or "?", r.run_id))
    end
  end
  return EXIT_OK
end

-- ferry exec FILE [ARG...]: runs a Lua file with the whole API (the
-- database is connected on first use).  For ad-hoc scripts and the Lua
-- tests.  The file's integer return value is the exit code.
function commands.exec(args)
  local file = table.remove(args, 1)
  if not file or file == "" then usage_error(help.usage("exec")) end
  local m = {id = "exec", version = "0", name = file, path = root_dir, rel = "."}
  local ctx = make_ctx(m, opts.dry_run, "exec")
  ctx.args = args
  -- no history for ad-hoc scripts: a checkpoint that lives in memory only
  local position
  ctx.checkpoint = {get = function() return position end,
                    save = errors.api(function(pos, conn, snapshot)
                      check_save_args(pos, conn, snapshot)       -- refused as in up.lua
                      position = pos
                      return true
                    end),
                    _check = errors.api(check_save_args),   -- (see new_checkpoint)
                    snapshot = function() return {errors = 0, counters = array(), payload = "{}"} end,
                    clear = function() position = nil end}
  local env = script_env(ctx)
  env.arg = args
  local chunk, src = load_script(file, env, file)     -- relative to the current folder
  local allow = wants_shell(src)
  if allow then os.execute, io.popen = shell.execute, shell.popen end
  -- os.exit stays the script's own (no history to record), but it ends
  -- the command: the closing count of the notices not shown comes first
  -- (only when it will exit: arguments it refuses raise as they did)
  os.exit = function(code, close)
    local n = tonumber(code)
    if code == nil or type(code) == "boolean" or (n and math.tointeger(n)) then db_core.report_repeated_notices() end
    local exit = real_exit
    return exit(code, close)
  end
  local res = chunk(table.unpack(args))
  errors.restore_stdlib()
  os.exit = real_exit
  if allow then os.execute, io.popen = nil, nil end
  local stop = sys.interrupted()
  if stop then error(stop, 0) end            -- (the script caught it, or it came at the end)
  local _, left_open = close_open_transaction(true)
  if left_open then error(file .. ": " .. left_open, 0) end
  local code = math.tointeger(res)
  if (code and (code < 0 or code > 255)) or (type(res) == "number" and not code) then
    -- the system keeps 8 bits: 256 would read as success; 2.5 is a bug,
    -- not the success a nil code would make of it
    log.warn(string.format("exec: %s is no exit code (0-255); exiting 1", code or tostring(res)))
    return EXIT_FAIL
  end
  return code or EXIT_OK
end

local function today()
  return os.date("!%Y%m%d")
end
-- The scaffolds' templates (and the parts they share), fields of one table:
-- the main chunk stays under Lua's 200 locals (PIPELINE, below, likewise).
local TEMPLATE = {}

TEMPLATE.up = [=[
-- %s: a data migration.  Run it with
--   ferry run %s --dry-run     (read-only: counts only)
--   ferry run %s
--
-- The example below is a complete, runnable pattern over a real table
-- (pg_catalog.pg_namespace, present in every database): stream rows in
-- bounded memory, map each through a rule, write in batches, checkpoint.
-- Replace the query, the mapping and the write with your own.
stats.declare{"rows_seen", "rows_written", "rows_skipped", "errors"}

local read = db.reader()           -- a second session: one snapshot, tuned for streaming
local batch, last = {}, ctx.checkpoint.get()

local function flush()
  if #batch == 0 then return end
  -- counted before the save, which keeps the counters with the batch
  stats.inc("rows_written", #batch)
  if not ctx.dry_run then
    db.transaction(function()
      -- Write with COPY, e.g.:
      --   local w <close> = db.copy('COPY "MyTable" (id, note) FROM STDIN')
      --   for _, r in ipairs(batch) do w:put(r.id, r.note) end
      --   w:finish()
      ctx.checkpoint.save(batch[#batch].key)   -- same transaction as the batch
    end)
  end
  batch = {}
end

for row in read:rows([[SELECT oid::bigint AS key, nspname FROM pg_catalog.pg_namespace
                        WHERE oid::bigint > $1 AND nspname <> 'ferry'   -- ferry's own schema appears
                        ORDER BY oid]], last or 0) do                   -- only once a real run made it
  stats.inc("rows_seen")
  local ok, err = pcall(function()
    if row.nspname:match("^pg_toast") then stats.inc("rows_skipped"); return end
    batch[#batch + 1] = {key = row.key, note = "schema " .. row.nspname}
    log.verbose(ctx.dry_run and "would write" or "to write", row.nspname)
  end)
  if not ok then stats.error(row.key, err) end
  if #batch >= ctx.batch_size then flush() end
end
flush()
read:close()
]=]

-- The rollback.sql of both scaffolds: its header, a convention, then
-- BEGIN, ferry's migration lock (TEMPLATE.rollback_lock), the body and COMMIT.
TEMPLATE.rollback_head = [=[
-- Rollback of %s.  Works with `ferry rollback %s` and on its own:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f rollback.sql
]=]
TEMPLATE.rollback_lock = [=[
BEGIN;
-- Not while a ferry command works on this database (it holds its migration
-- lock, key 7366291803, while it runs or rolls back a migration): beside a
-- run, this would undo what the run has committed so far while it goes
-- on.  Under `ferry rollback` the session holds the lock already; under
-- psql it is held until this transaction ends, so no ferry starts meanwhile.
DO $$
DECLARE
  holder int;
BEGIN
  IF NOT pg_try_advisory_xact_lock(7366291803) THEN
    SELECT l.pid INTO holder FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((l.classid::bigint << 32) | l.objid::bigint) = 7366291803
     LIMIT 1;
    RAISE EXCEPTION 'another session holds ferry''s migration lock on this database (backend pid %%): a ferry run or rollback is in progress there; nothing was rolled back: run this again when it has finished',
      coalesce(holder::text, 'unknown');
  END IF;
END $$;
]=]
local function rollback_template(convention, body)
  return TEMPLATE.rollback_head .. convention .. TEMPLATE.rollback_lock .. body .. "COMMIT;\n"
end

TEMPLATE.rollback = rollback_template([=[
-- Convention: delete only the rows this migration created (tag them, e.g.
-- metadata->>'createdBy' = '%s'), never rows the live system wrote, and
-- verify inside the transaction that they are gone.
]=], [=[
-- DELETE FROM "MyTable" WHERE metadata->>'createdBy' = '%s';
DO $$
BEGIN
  -- IF EXISTS (SELECT 1 FROM "MyTable" WHERE metadata->>'createdBy' = '%s') THEN
  --   RAISE EXCEPTION 'rollback incomplete';
  -- END IF;
  -- The resume point of an interrupted run goes too (ferry rollback deletes
  -- it itself; run on its own, the next run would resume past rows deleted
  -- above).
  IF to_regclass('ferry.checkpoint') IS NOT NULL THEN
    DELETE FROM ferry.checkpoint WHERE migration = '%s';
  END IF;
  RAISE NOTICE 'rollback of %s: nothing to undo in the example';
END $$;
]=])

-- ferry new NAME --sql: a schema step's up.sql and rollback.sql.
TEMPLATE.up_sql = [=[
-- %s: a schema migration (a table, a column, an index).  Run it with
--   ferry run %s --dry-run     (runs nothing; fails if what it creates exists already)
--   ferry run %s               (or ferry up)
--
-- ferry runs this whole file in one transaction that it begins and commits:
-- leave BEGIN/COMMIT out, and with them CREATE INDEX CONCURRENTLY, VACUUM
-- and the rest that cannot run in a transaction (check, run and up refuse
-- them all; an up.lua runs those: docs/authoring.md, section 10).  When a
-- statement fails, everything before it is rolled back too and the run is
-- recorded failed: fix it and run again.  Each statement waits for a lock at
-- most --lock-timeout (default 5s; ALTER TABLE waits for every query on
-- its table to end): past that it fails, the whole file with it.
--
-- Write it so that running it again does no harm, e.g.:
-- CREATE TABLE IF NOT EXISTS my_table (
--   id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
--   note text NOT NULL
-- );
-- ALTER TABLE my_table ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
-- CREATE INDEX IF NOT EXISTS my_table_created_at_idx ON my_table (created_at);
--
-- Until then it changes nothing, so that it runs as it is:
DO $$ BEGIN RAISE NOTICE '%s: nothing to do yet'; END $$;
]=]

TEMPLATE.rollback_sql = rollback_template([=[
-- Convention: drop only what this migration's up.sql made, with IF EXISTS
-- (so that it runs whether up.sql ran or not), newest first.  A DROP takes
-- the rows in it along: keep what you need before you run this.
]=], [=[
-- DROP INDEX IF EXISTS my_table_created_at_idx;
-- ALTER TABLE IF EXISTS my_table DROP COLUMN IF EXISTS created_at;
-- DROP TABLE IF EXISTS my_table;
DO $$ BEGIN RAISE NOTICE 'rollback of %s: nothing to undo yet'; END $$;
]=])

TEMPLATE.validate_head = [=[
-- Checks for %s: `ferry validate %s` prints each with PASS/FAIL and exits
-- 1 if any fails.  check(name, fn): fn returns ok [, detail].  Every check
-- reads one snapshot (the script runs in one read-only transaction).
check("the database answers", function()
  local r = db.one("SELECT 1 AS one")
  return r.one == 1
end)
]=]

TEMPLATE.validate = TEMPLATE.validate_head .. [=[

check("pg_namespace has rows", function()
  local r = db.one("SELECT count(*) AS n FROM pg_catalog.pg_namespace")
  return r.n > 0, r.n .. " schemas"
end)
]=]

TEMPLATE.validate_sql = TEMPLATE.validate_head .. [=[

-- What up.sql made is there, e.g.:
-- check("my_table has created_at", function()
--   local r = db.one([[SELECT count(*) AS n FROM information_schema.columns
--                       WHERE table_name = 'my_table' AND column_name = 'created_at']])
--   return r.n == 1, r.n .. " column(s)"
-- end)
]=]

-- (a schema step's README has no statistics line: it counts nothing)
TEMPLATE.readme_sql = [=[
# %s

What this migration does, why, and what it changes.

- Apply: `ferry run %s --dry-run`, then `ferry run %s` (or `ferry up`)
- Validate: `ferry validate %s`
- Roll back: `ferry rollback %s` (or `psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f rollback.sql`)
]=]
TEMPLATE.readme = TEMPLATE.readme_sql .. [=[

Statistics: rows_seen, rows_written, rows_skipped, errors.
]=]

-- ferry new NAME --pipeline: a fill of many rows as Batch 5 does it --
-- streamed, mapped by a rule module of its own (rules/NAME.lua, %N below),
-- written with COPY through db.pipeline, resumable, idempotent.  The places
-- only the author can fill raise "TODO left in the scaffold" when reached,
-- and the rule's test fails in `ferry check` until its map is written.
-- the --pipeline scaffold's files (one table: the main chunk is near Lua's 200 locals)
local PIPELINE = {}
PIPELINE.up = [=[
-- %s: a streaming, pipelined, resumable fill.  Run it with
--   ferry run %s --dry-run    (reads everything, writes nothing, reports the counts)
--   ferry run %s              (--jobs N writer sessions; an interrupted run resumes)
--
-- db.fill (docs/lua-api.md) runs Batch 5's flow, in small: a reader session
-- streams SOURCE_SQL ordered by key, from the checkpoint on, in the snapshot
-- KEYS_SQL counted in; the rows of each key are mapped by rules/%N.lua
-- into target rows, put into a COPY buffer; every ctx.batch_size_for() keys,
-- between two keys, db.pipeline sends the batch: its COPY and its checkpoint
-- (the batch's last key) commit together on one of --jobs writer sessions
-- while the next batch is mapped; a dry run maps and counts the same.
-- Idempotent: the source says which keys the target has already (done), and
-- a re-run skips them.  Fill in the three TODOs here (a run stops at the
-- first one left) and the rule's map and test (`ferry check` runs it).
local rule = require "rules.%N"
local function TODO(what) error("TODO left in the scaffold: " .. what, 2) end

-- TODO: how many keys SOURCE_SQL gives, done or not, as n; $1 is the resume
-- key, NULL on a fresh start (cast to the key's type: $1::uuid for uuid keys),
-- e.g. (count(DISTINCT ...): a key has many source rows)
--   [[SELECT count(DISTINCT s.source_id) AS n FROM source s
--      WHERE $1::bigint IS NULL OR s.source_id > $1]]
local KEYS_SQL = TODO "KEYS_SQL, the count of the keys left"
-- TODO: the source rows after key $1, ordered by key (then a tie-breaker when
-- a key has many rows), as key, done (true when the target has the key's rows
-- already; $2 is ctx.migration, the tag on them) and what rule.map reads, e.g.
--   [[SELECT s.source_id AS key, s.name, EXISTS (SELECT 1 FROM target t
--            WHERE t.source_id = s.source_id AND t.created_by = $2) AS done
--       FROM source s WHERE $1::bigint IS NULL OR s.source_id > $1 ORDER BY s.source_id, s.id]]
-- key: one column, never NULL (WHERE ... IS NOT NULL when it may be); done: a
-- boolean, EXISTS (...), not a count (Lua takes a 0 for true: the key skipped).
-- A key with no source rows is not in a plain join: LEFT JOIN its rows to
-- the table of keys (the rule then gets one row without them).  A target
-- with a unique key (one row per key) that the live system writes too:
-- leave out `AND t.created_by = $2`, so that its row counts as done (else
-- COPY stops at it: duplicate key).  $1, $2: passed when the query uses
-- them (a query with $2 uses $1 too, as resuming needs: $1 has no type else).
local SOURCE_SQL = TODO "SOURCE_SQL, the source rows ordered by key"
-- TODO: the target with its column list (trailing nils need it), in rule.map's order, e.g.
--   [[COPY target (source_id, name, created_by) FROM STDIN]]
-- (several targets: a list of COPYs, parent table first, and rule.map returns
-- one list of rows per COPY; a batched UPDATE in each batch's transaction:
-- after = [[UPDATE ... WHERE key = ANY($1::bigint[])]], $1 the keys it wrote)
local TARGET_COPY = TODO "TARGET_COPY, the COPY of the target rows"

db.fill{count = KEYS_SQL, source = SOURCE_SQL, copy = TARGET_COPY, map = rule.map}
]=]

PIPELINE.rule = [=[
-- rules.%N: the mapping of migrations/%s, the source rows
-- of one key to target rows.  Loaded on every run (edit it and re-run: no
-- rebuild); `ferry check` runs M.tests.
local t = require "ferry.testing"
local json = require "json"                -- json.encode(t): a jsonb value; json.null: a NULL
local M = {}

--- map(key, rows, ctx) -> the target rows of one key: a list of rows, each a
-- list of values in the order of TARGET_COPY's columns (a nil is NULL: db.fill
-- fills each row up to those listed); {} skips the key.  rows: the key's source
-- rows, tables by column name (SQL NULL absent), in the stream's order.
-- Raising rejects the key: the run records its key and message, goes on.
function M.map(key, rows, ctx)
  error("TODO left in the scaffold: write rules.%N's map, the target rows of one key")
end

M.tests = {
  -- TODO: the rows of a key as the source gives them, and the target rows
  -- they make; a test for each case that matters (a key skipped, a NULL).
  -- A value is a string, number, boolean or nil: an array column takes
  -- db.array(t) (local db = require "db" above: a rule sees none of the
  -- script's globals); text cut with sub at a byte may split a UTF-8 character.
  ["maps the rows of a key"] = function()
    t.eq(M.map(1, {{key = 1, name = "a"}}, {migration = "test"}), {{1, "a", "test"}})
  end,
}

return M
]=]

PIPELINE.rollback = rollback_template([=[
-- Convention: delete only the rows this migration wrote (tagged, e.g.
-- created_by = '%s'), never rows the live system wrote.
]=], [=[
-- TODO: delete the rows this migration wrote (and undo what db.fill's after
-- updated, if it has one), e.g.
--   DELETE FROM target WHERE created_by = '%s';
-- and then the next line.
DO $$ BEGIN RAISE EXCEPTION 'TODO left in the scaffold: rollback.sql of %s deletes nothing yet (nothing was rolled back)'; END $$;
-- The resume point of an interrupted run goes too (ferry rollback deletes it
-- itself; run on its own, the next run would resume past the rows deleted).
DO $$ BEGIN
  IF to_regclass('ferry.checkpoint') IS NOT NULL THEN
    DELETE FROM ferry.checkpoint WHERE migration = '%s';
  END IF;
END $$;
]=])

PIPELINE.validate = [=[
-- Checks for %s: `ferry validate %s` prints each with PASS/FAIL and exits
-- 1 if any fails.  Run it after the first real run.  check(name, fn): fn
-- returns ok [, detail]; every check reads one snapshot.
local function TODO(what) error("TODO left in the scaffold: " .. what, 2) end

-- TODO: the source keys that have no target rows (and should), as n; $1 is
-- ctx.migration (passed only when the query uses it; as up.lua's done,
-- count a row the live system wrote when the target has a unique key), e.g.
--   [[SELECT count(*) AS n FROM source s WHERE NOT EXISTS (SELECT 1 FROM target t
--       WHERE t.source_id = s.id AND t.created_by = $1)]]
local MISSING_SQL = TODO "MISSING_SQL, the count of the keys without their rows"
-- TODO: the keys with their rows written twice, as n (none can be when the
-- target's key is unique: [[SELECT 0 AS n]]), e.g.
--   [[SELECT count(*) AS n FROM (SELECT source_id FROM target WHERE created_by = $1
--       GROUP BY source_id HAVING count(*) > 1) d]]
local TWICE_SQL = TODO "TWICE_SQL, the count of the keys written twice"
local function tag(sql) if sql:find("$1", 1, true) then return ctx.migration end end

check("every source key has its target rows", function()
  local n = db.one(MISSING_SQL, tag(MISSING_SQL)).n
  return n == 0, n .. " keys without them"
end)

check("no key has its target rows twice", function()
  local n = db.one(TWICE_SQL, tag(TWICE_SQL)).n
  return n == 0, n .. " keys written twice"
end)
]=]

PIPELINE.readme = TEMPLATE.readme_sql .. [=[

How it runs: `up.lua`'s `db.fill` streams the source by key, maps each key's
rows with `rules/%N.lua` and writes them with COPY in batches of whole keys
through `db.pipeline` (`--jobs N` writers), each batch with its checkpoint; an
interrupted run resumes after the last committed batch, and a re-run skips
the keys the target has (see docs/authoring.md, section 5).

Statistics: keys_processed, keys_skipped, rows_created, errors.
]=]

-- The files of each scaffold, in the order they are listed.
local SCAFFOLD = {}
SCAFFOLD.lua = {{"up.lua", TEMPLATE.up}, {"rollback.sql", TEMPLATE.rollback},
               {"validate.lua", TEMPLATE.validate}, {"README.md", TEMPLATE.readme}}
SCAFFOLD.sql = {{"up.sql", TEMPLATE.up_sql}, {"rollback.sql", TEMPLATE.rollback_sql},
               {"validate.lua", TEMPLATE.validate_sql}, {"README.md", TEMPLATE.readme_sql}}
SCAFFOLD.pipeline = {{"up.lua", PIPELINE.up}, {"rollback.sql", PIPELINE.rollback},
                    {"validate.lua", PIPELINE.validate}, {"README.md", PIPELINE.readme}}

-- A template filled in: every %s is the migration's id, %N its name, %% a
-- percent sign (no count of ids to keep in step with the text).
local function scaffold_text(template, id, name)
  local with = {s = id, N = name, ["%"] = "%"}
  return (template:gsub("%%([%%sN])", with))
end

-- write_file(path, text): the whole file, or a usage error naming it.
local function write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then usage_error("cannot create %s", err) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then usage_error("cannot write %s", werr) end
end

-- ferry new NAME [--sql|--pipeline]: nothing is created when the folder,
-- or with --pipeline the rule module rules/NAME.lua, is there already.
function commands.new(args)
  if #args ~= 1 then usage_error(help.usage("new")) end
  if opts.sql and opts.pipeline then usage_error("--sql and --pipeline exclude each other (%s)", help.usage("new")) end
  local name = args[1]
  if not name:match("^[a-z0-9][a-z0-9_]*$") then
    usage_error("migration names use lowercase letters, digits and underscores, and begin with a letter or digit: %s", name)
  end
  local id = today() .. "_" .. name
  -- (find_migration takes a key as an id's beginning before it takes it as a name)
  if name:match("^%d+$") then
    usage_error("a migration name of digits only reads as a version (ferry run %s would name the migration whose id "
                .. "begins so, not %s): give it a word: %s", name, id, name)
  end
  local mdir = root_dir .. "/migrations"
  local path = mdir .. "/" .. id
  if sys.isdir(path) then usage_error("%s already exists", "migrations/" .. id) end
  local rule = "rules/" .. name .. ".lua"
  -- (the module-level exists: a path under a file named rules is not there)
  if opts.pipeline and exists(root_dir .. "/rules") and not sys.isdir(root_dir .. "/rules") then
    usage_error("rules is not a folder: --pipeline writes the rule module %s in it", rule)
  end
  if opts.pipeline and exists(root_dir .. "/" .. rule) then
    usage_error("%s already exists: --pipeline writes the rule module of migrations/%s there (give the migration "
                .. "another name)", rule, id)
  end
  for _, dir in ipairs{mdir, path, opts.pipeline and root_dir .. "/rules" or nil} do
    if not sys.isdir(dir) then
      local ok, err = sys.mkdir(dir)
      if not ok then usage_error("cannot create %s", err) end
    end
  end
  local files = opts.sql and SCAFFOLD.sql or opts.pipeline and SCAFFOLD.pipeline or SCAFFOLD.lua
  local names = {}
  for i, f in ipairs(files) do
    write_file(path .. "/" .. f[1], scaffold_text(f[2], id, name))
    names[i] = f[1]
  end
  if opts.pipeline then write_file(root_dir .. "/" .. rule, scaffold_text(PIPELINE.rule, id, name)) end
  local created = "migrations/" .. id
  if log.flags().json then
    emit_json(object({"created", "rule"}, {created = created, rule = opts.pipeline and rule or nil}), EXIT_OK)
  else
    log.info("created " .. created .. "/ (" .. table.concat(names, ", ") .. ")"
             .. (opts.pipeline and " and " .. rule or ""))
  end
  return EXIT_OK
end

-- ferry check reports each script and each rule as an entry of its own,
-- and goes on after one that fails: a rule with a syntax error is one
-- failing entry naming its file:line, and the other rules are still loaded
-- and tested.

-- What a check caught, as an entry's detail and whether it is a usage
-- error (a file that does not compile: exit 2).  A signal is no finding:
-- it ends the check (a test that caught it does not hide it either).
local function check_failure(err)
  local stop = sys.interrupted()
  if stop then error(stop, 0) end
  local usage = is_ferry_error(err) and err.code == EXIT_USAGE
  return error_text(err):match("^[^\n]*"), usage
end

-- compile_error(rel) -> nil when rel compiles, else load_script's error as
-- text ("file:line: message" for a syntax error)
local function compile_error(rel)
  local ok, err = pcall(load_script, rel)
  if ok then return nil end
  return (check_failure(err))
end

-- The checks of one migration folder: an up script, not two, and each Lua
-- script compiles.
local function check_migration(m, report)
  if not (m.files["up.lua"] or m.files["up.sql"]) then report(m.rel, false, "no up.lua or up.sql") end
  -- both: only the .lua one runs (a scaffold's up.lua beside the up.sql
  -- one meant to write would run in its place, unseen)
  for _, pair in ipairs{{"up.lua", "up.sql"}, {"down.lua", "rollback.sql"}} do
    if m.files[pair[1]] and m.files[pair[2]] then
      report(m.rel, false, string.format("has both %s and %s: only %s runs (delete the one you do not mean)",
                                         pair[1], pair[2], pair[1]))
    end
  end
  for _, f in ipairs(LUA_SCRIPTS) do
    if m.files[f] then
      local rel = m.rel .. "/" .. f
      local err = compile_error(rel)
      report(rel, err == nil, err and ("does not compile: " .. err), err ~= nil)
    end
  end
  -- an up.sql with its own BEGIN/COMMIT (no "ok" entry for an up.sql: it
  -- could be read as the SQL being checked)
  local ok, err = pcall(refuse_own_transaction, m)
  if not ok then
    local why, usage = check_failure(err)
    report(m.rel .. "/up.sql", false, why, usage)
  end
end

-- The checks of one rule, rules/<mod>.lua: it compiles, loads (require
-- runs it, and the rules it requires) and each of its M.tests passes.
local function check_rule(file, report)
  local name = "rules." .. file:gsub("%.lua$", ""):gsub("/", ".")
  local err = compile_error("rules/" .. file)
  if err then report(name, false, "does not compile: " .. err, true) return end
  forget_rules()
  local ok, rule = pcall(require, name)
  if not ok then
    local why, usage = check_failure(rule)      -- (usage: a rule it requires does not compile)
    report(name, false, "does not load: " .. why, usage)
    return
  end
  -- (require gives true for a module that returned nothing: a rule that
  -- forgot its `return M`, whose tests cannot be found and whose functions
  -- every run would fail to call)
  if rule == true then report(name, false, "returns nothing: a rule module ends with `return M` (its tests were not run)") return end
  if not (type(rule) == "table" and type(rule.tests) == "table") then report(name, true, "no tests") return end
  local tnames = {}
  for tn in pairs(rule.tests) do tnames[#tnames + 1] = tn end
  -- (names of any type: a test written as a list entry has a number)
  table.sort(tnames, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  local bad = 0
  for _, tn in ipairs(tnames) do
    local test = rule.tests[tn]
    local tok, terr
    if type(test) == "function" then
      tok, terr = pcall(test)
    else
      tok, terr = false, string.format("not a function (a %s): M.tests maps each test's name to its function, "
                                       .. 'M.tests = {["name"] = function() ... end}', type(test))
    end
    if not tok then
      bad = bad + 1
      local why, usage = check_failure(terr)
      report(string.format("%s test %s", name, type(tn) == "string" and string.format("%q", tn) or tostring(tn)), false, why, usage)
    end
  end
  if bad == 0 then report(name, true, string.format("%d tests passed", #tnames)) end
end

function commands.check(args)
  if #args > 0 then usage_error("check takes no arguments") end
  local list, _, ignored = discover(root_dir)
  local results = array()
  local failed, usage_errors = 0, 0
  -- report(what, ok [, detail [, usage]]): one entry; usage marks a file
  -- that does not compile
  local function report(what, ok, detail, usage)
    results[#results + 1] = object({"name", "ok", "detail"}, {name = what, ok = ok, detail = detail})
    if not ok then failed = failed + 1 end
    if usage then usage_errors = usage_errors + 1 end
    if not log.flags().json then
      log_check(ok, string.format("%s %s%s", ok and "ok  " or "FAIL", what, detail and ("  " .. detail) or ""))
    end
  end
  for _, m in ipairs(list) do check_migration(m, report) end
  for _, entry in ipairs(ignored) do
    report(ignored_name(entry), false, "not a migration folder: the name must be <version>_<name> (digits, '_', "
           .. "then letters, digits, '_' or '-'); every command ignores it")
  end
  -- (a rule's test that calls os.exit fails, as in a run: it would end
  -- check there, with its code, the rules after it untested)
  os.exit = no_exit
  for _, f in ipairs(rule_files()) do check_rule(f, report) end
  os.exit = real_exit
  -- the documented codes: a syntax error is a usage error (2), as in every
  -- other command; a failed check is 1
  local code = usage_errors > 0 and EXIT_USAGE or failed == 0 and EXIT_OK or EXIT_FAIL
  if log.flags().json then emit_json(object({"ok", "checks"}, {ok = failed == 0, checks = results}), code) end
  return code
end

----------------------------------------------------------------------------
-- main

local function number_flag(flags, name, default, min, max)
  local v = flags[name]
  if v == nil then return default end
  local n = type(v) == "string" and v:match("^%d+$") and math.tointeger(tonumber(v))
  -- (a flag with a top says its whole range, whatever is wrong)
  if max and not (n and n >= min and n <= max) then
    usage_error("--%s needs a whole number from %d to %d, not %s", name, min, max, tostring(v))
  end
  -- (digits past a 64-bit integer: "a whole number >= 1" would read as
  -- if it were none)
  if not n and type(v) == "string" and v:match("^%d+$") then
    usage_error("--%s needs a whole number from %d to %d, not %s", name, min, math.maxinteger, v)
  end
  if not n or n < min then usage_error("--%s needs a whole number >= %d, not %s", name, min, tostring(v)) end
  return n
end

-- The commands that always work on the database.
local DB_COMMANDS = {up = true, run = true, rollback = true, validate = true, baseline = true, status = true,
                     history = true}

local command_run           -- the command main runs (for the closing error line)

-- An option given no value of its own takes the next word: "ferry --db
-- status" leaves no command, "ferry --to up 2025" the unknown command
-- 2025.  The option and the command it took, if one did (--db's value
-- stays in C; the host passes it on only as a bare word, db_word).
local function swallowed_command(cli)
  for _, name in ipairs({"db", "dir", "to", "lock-timeout", "statement-timeout"}) do
    local word = name == "db" and cli.db_word or cli.flags[name]
    if type(word) == "string" and (commands[word] or word == "help") then return name, word end
  end
end

-- A command word that names no command: said so, with the option that
-- took the command as its value if one did ("ferry --to up 2025").
local function unknown_command(cmd, swallowed, word)
  if swallowed then
    usage_error("unknown command %s: --%s took '%s' as its value (see 'ferry --help')", cmd, swallowed, word)
  end
  usage_error("unknown command %s (see 'ferry --help')", cmd)
end

-- ferry --help; ferry COMMAND --help (or -h, anywhere among the command's
-- words); ferry help [COMMAND]: the text on stdout ({"usage": TEXT} under
-- --json), exit 0.  Before anything else is read -- no other option
-- checked, no folder read, no database connected -- so that it works where
-- nothing is set up.  A word after -- is no option (the host takes none
-- there): "ferry run -- --help" runs the migration named --help, "ferry
-- exec FILE -- --help" hands --help to the script.
local function show_help(cli)
  local args, flags = cli.args, cli.flags
  local name = args[1]
  if name == "help" then
    if #args > 2 then usage_error(help.usage("help")) end
    -- (ferry help --help: help's own text)
    name = args[2] or ((flags.help or flags.h) and "help" or nil)
  end
  local swallowed, word = swallowed_command(cli)
  if name == nil and swallowed then
    usage_error("no command given: --%s took '%s' as its value (see 'ferry --help')", swallowed, word)
  end
  local text = help.text(name)
  if not text then unknown_command(name, swallowed, word) end
  if flags.json then emit_json(object({"usage"}, {usage = text}), EXIT_OK) else out(text) end
  return EXIT_OK
end

local function main(cli)
  if cli.error then error(cli.error, 0) end     -- a command line the host could not read
  local flags = cli.flags
  if flags.version then
    if flags.json then emit_json(object({"version"}, {version = sys.version()}), EXIT_OK)
    else out("ferry ", sys.version(), "\n") end
    return EXIT_OK
  end
  if flags.help or flags.h or cli.args[1] == "help" then return show_help(cli) end
  if (flags.verbose or flags.v) and (flags.quiet or flags.q) then usage_error("--verbose and --quiet exclude each other") end
  -- the numbers first: "ferry --jobs run X" took the command as --jobs's value
  opts.batch_size = number_flag(flags, "batch-size", 5000, 1)
  opts.batch_size_given = flags["batch-size"] ~= nil
  -- (the writers' sessions, which a run starts ahead with db.prestart)
  opts.jobs = number_flag(flags, "jobs", 2, 1, db.MAX_PRESTART)
  opts.max_errors = number_flag(flags, "max-errors", 100, 0)
  local swallowed, word = swallowed_command(cli)
  if #cli.args == 0 and swallowed then
    usage_error("no command given: --%s took '%s' as its value (see 'ferry --help')", swallowed, word)
  end
  if #cli.args == 0 then
    err_out(help.USAGE)
    if flags.json then emit_json(object({"ok", "error"}, {ok = false, error = "no command given (see 'ferry --help')"}), EXIT_USAGE) end
    return EXIT_USAGE
  end
  local cmd = table.remove(cli.args, 1)
  if not commands[cmd] then unknown_command(cmd, swallowed, word) end
  command_run = cmd
  for flag, allowed in pairs(help.COMMANDS_WITH) do
    if flags[flag] and not allowed[cmd] then usage_error("--%s does not apply to '%s'", flag, cmd) end
  end
  -- --json: stdout holds the JSON object alone; whatever the scripts and
  -- rules write to stdout (print, io.write, a program they start) goes to
  -- stderr.  Not under exec, whose stdout is the script's.
  if flags.json and cmd ~= "exec" then sys.divert_stdout() end
  opts.dry_run = flags["dry-run"] == true
  opts.to = flags.to
  opts.sql = flags.sql == true
  opts.pipeline = flags.pipeline == true
  opts.force = flags.force == true
  opts.lock_timeout = type(flags["lock-timeout"]) == "string" and flags["lock-timeout"] or "5s"
  opts.statement_timeout = type(flags["statement-timeout"]) == "string" and flags["statement-timeout"] or "0"
  if flags.dir == "" then      -- (--dir "$UNSET": not the current folder, unasked)
    usage_error("option --dir is empty: give a folder, or leave --dir out (then the current folder is used)")
  end
  root_dir = flags.dir or "."
  if not sys.isdir(root_dir) then usage_error("--dir %s: no such folder", root_dir) end
  -- the server sets the session up while the migrations are read
  if DB_COMMANDS[cmd] then db._open_ahead() end
  return commands[cmd](cli.args)
end

-- The command line's words a message may echo (main takes the command off
-- cli.args): a connection string put where ferry takes a command, a
-- migration, a file or an option's value is shown without its password.
local function echoed_words(cli)
  local words = {}
  for _, a in ipairs(cli.args or {}) do words[#words + 1] = a end
  for _, v in pairs(cli.flags or {}) do
    if type(v) == "string" then words[#words + 1] = v end
  end
  return words
end

-- How a command ends, once main has returned (ok, its exit code) or
-- failed (res, its error): the lock released, the sessions closed, and an
-- error said -- on stderr, and under --json as the object {ok: false,
-- error}, unless the command wrote its object already: that one stands (a
-- signal that came after it is not said; another error is, on stderr).
local function conclude(ok, res)
  db_core.report_repeated_notices()
  release_lock()
  if ok then db.close() return res end
  local written = sys.json_written()
  if written and is_ferry_error(res) and res.signal then pcall(db.close) return written end
  local code, msg = EXIT_FAIL, sys.redact(error_text(res))
  if is_ferry_error(res) then code = res.code end
  -- a statement that ran into --statement-timeout here is ferry's own
  -- bookkeeping (a migration's own statements are its run's), or under
  -- exec the script's
  local first = msg:match("^[^\n]*")
  local advice = command_run == "exec"
    and cancelled_advice(first, "a statement", "", "the script set itself (SET statement_timeout", "re-run")
    or cancelled_advice(first, "ferry's own bookkeeping (its history and checkpoints)", "",
                        "set on ferry's session (SET statement_timeout", "re-run")
  advice = advice .. server_condition_advice(first, "re-run")
  -- ferry's own write refused because the session is read-only: the
  -- database, role or server (or PGOPTIONS) has default_transaction_read_only
  -- on, which ferry keeps, or the server is a standby -- a configuration
  -- error, said as one
  if command_run == "exec" and opts.dry_run and first:find("[SQLSTATE 25006]", 1, true) then
    -- (the script's write under exec --dry-run, which made every session read-only)
    advice = advice .. "; this is a dry run (--dry-run): every session is read-only and the script wrote: write only "
             .. "when ctx.dry_run is false (if not ctx.dry_run then ... end)"
  elseif command_run ~= "exec" and first:find("[SQLSTATE 25006]", 1, true) then
    code = EXIT_USAGE
    -- (a standby: no setting the DBA could turn off makes it take writes)
    local asked, r = pcall(db.one, "SELECT pg_is_in_recovery() AS standby")
    if asked and r.standby then
      advice = advice .. "; the server is a standby (in recovery), which takes no writes whatever its settings: "
               .. "connect to the primary (with several hosts in the connection string, target_session_attrs=read-write "
               .. "picks it), and re-run"
    else
      advice = advice .. "; the session is read-only: default_transaction_read_only is on for this database, role or "
               .. "server (or in PGOPTIONS), or the server is a standby; ferry writes only where the server lets it "
               .. "(it sets that setting only for --dry-run): connect to the primary, or have the DBA turn it off "
               .. "(ALTER DATABASE ... SET default_transaction_read_only = off), and re-run"
    end
  end
  msg = first .. advice .. msg:sub(#first + 1)
  -- a database that cannot be reached, or settings it cannot take, is a
  -- configuration error
  if msg:find("^cannot connect to the database") then code = EXIT_USAGE end
  local settings = msg:match("^cannot apply the session settings: (.*)")
  if settings then code, msg = EXIT_USAGE, settings end
  err_out("ferry: ", shown(msg:match("^[^\n]*")), "\n")
  if log.flags().verbose and msg:find("\n") then err_out(msg:match("\n(.*)$"), "\n") end
  if log.flags().json and not written then
    emit_json(object({"ok", "error"}, {ok = false, error = msg:match("^[^\n]*")}), code)
  end
  pcall(db.close)
  return written or code
end

return function(cli)
  sys.echoed(echoed_words(cli))
  local ok, res = xpcall(main, on_error, cli)
  -- A signal that comes as ferry concludes (the first: a second Ctrl-C
  -- ends it at once) is raised there, once: the command then concludes
  -- with it -- said, and under --json its object, unless one is out.
  local done, code = xpcall(conclude, on_error, ok, res)
  if not done then done, code = xpcall(conclude, on_error, false, code) end
  if not done then error(code, 0) end
  return code
end
