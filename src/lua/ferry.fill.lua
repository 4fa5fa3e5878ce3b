-- ferry.fill: db.fill{count =, source =, copy =, map =}, the streamed,
-- pipelined, resumable fill of `ferry new NAME --pipeline` (Batch 5's flow,
-- in small) as one call, so that a migration's up.lua holds only its
-- queries and its mapping:
--
--   db.fill{count  = [[SELECT count(DISTINCT ...) AS n ... $1 ...]],  -- the keys left
--           source = [[SELECT ... AS key, ... AS done, ... ORDER BY key, ...]],
--           copy   = [[COPY target (a, b, c) FROM STDIN]],   -- or a list of them
--           map    = rule.map}                               -- (key, rows, ctx) -> target rows
--
-- A reader session (db.reader()) counts the keys left and streams the
-- source ordered by key, from the checkpoint on, in one snapshot; the rows
-- of each key are mapped by map, a key at a time, into a COPY buffer; every
-- ctx.batch_size_for() keys (tapered at the end), between two keys, the
-- batch goes to db.pipeline: its COPYs and its checkpoint (the batch's last
-- key) commit together on one of --jobs writer sessions while the next
-- batch is mapped.  Counted as it maps (keys_processed, keys_skipped,
-- rows_created, errors), so a dry run reports the real run's counts.
local errors = require "ferry.errors"
local stats = require "stats"
local log = require "log"
local progress = require "progress"

local F = {}

local OPTIONS = {count = true, source = true, copy = true, map = true, after = true, label = true}
local NAMES = "count, source, copy, map, after, label"
local WHAT = {
  count = "the SQL that counts the keys left (SELECT count(...) AS n ...; $1 the resume key)",
  source = "the SQL of the source rows ordered by key (SELECT ... AS key, ... AS done, ... ORDER BY key)",
  copy = "the COPY of the target rows (COPY target (columns) FROM STDIN), or a list of them",
  map = "a function (key, rows, ctx) that returns the key's target rows",
}

local function callable(f)
  return type(f) == "function"
      or (type(f) == "table" and type((debug.getmetatable(f) or {}).__call) == "function")
end

-- The options, checked before anything is read: a field missing or
-- misspelt is said, naming the valid ones.  Returns the list of COPY
-- statements and whether map returns one list of rows per statement.
local function check_options(o)
  if type(o) ~= "table" then
    error("db.fill: its options are a table {count =, source =, copy =, map = [, after =, label =]}, not a "
          .. type(o))
  end
  local unknown = errors.unknown_key(o, OPTIONS)
  if unknown then error("db.fill: unknown option " .. unknown .. " (its options are " .. NAMES .. ")") end
  for _, name in ipairs{"count", "source", "copy", "map"} do
    if o[name] == nil then error("db.fill: " .. name .. " is missing: " .. WHAT[name]) end
  end
  for _, name in ipairs{"count", "source"} do
    if type(o[name]) ~= "string" then
      error("db.fill: " .. name .. " must be " .. WHAT[name] .. ", not a " .. type(o[name]))
    end
  end
  local copies = o.copy
  if type(copies) == "string" then
    copies = {copies}
  elseif type(copies) ~= "table" or #copies == 0 then
    error("db.fill: copy must be " .. WHAT.copy .. ", not " .. (type(copies) == "table" and "an empty table"
          or "a " .. type(copies)))
  else
    for i = 1, #copies do
      if type(copies[i]) ~= "string" then
        error(string.format("db.fill: copy[%d] must be a COPY statement (a string), not a %s", i, type(copies[i])))
      end
    end
  end
  if not callable(o.map) then error("db.fill: map must be " .. WHAT.map .. ", not a " .. type(o.map)) end
  if o.after ~= nil and type(o.after) ~= "string" and not callable(o.after) then
    error("db.fill: after must be an SQL string or a function (conn, keys), not a " .. type(o.after))
  end
  if o.label ~= nil and type(o.label) ~= "string" then
    error("db.fill: label must be a string (the progress bar's), not a " .. type(o.label))
  end
  return copies, type(o.copy) == "table"
end

-- Where map was written, for the message of a map that returns what is no
-- list of rows ("rules/x.lua:12").
local function map_place(map)
  local info = type(map) == "function" and debug.getinfo(map, "S")
  if info and info.linedefined > 0 then
    return " (" .. (info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src) .. ":"
           .. info.linedefined .. ")"
  end
  return ""
end

-- The result of pcall(statement) for count or after: an error said to be
-- that statement's (both read "query failed: ..."); one that is no string
-- goes as it is.
local function of(what, ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) ~= "string" then error(e, 0) end
  error("db.fill: " .. what .. ": " .. e:gsub("^%[ferry%]/[%w%._%-]+%.lua:%d+: ", ""))
end

-- p1 and p2 as the parameters of sql, each passed only when sql uses it
-- ($2 is passed with $1: a query with $2 uses $1 too, as resuming needs).
local function used(sql, p1, p2)
  if sql:find("$2", 1, true) then return p1, p2 end
  if sql:find("$1", 1, true) then return p1 end
end

-- The runs (their ctx, weak) that have had their fill: a second would take
-- the first one's last key for its own resume point, and skip its keys
-- up to it -- the checkpoint is the migration's, and one fill owns it.
local filled = setmetatable({}, {__mode = "k"})

--- F.fill(db, ctx, o): db.fill (see lua-api.md).  Returns the keys read and
-- the target rows mapped by this run.
function F.fill(db, ctx, o)
  local copies, several = check_options(o)
  if type(ctx) ~= "table" or type(ctx.checkpoint) ~= "table" then
    error("db.fill: runs in a migration's up.lua (or under ferry exec), where ctx.checkpoint keeps its resume point")
  end
  if filled[ctx] then
    error("db.fill: called a second time in this run: the migration's checkpoint, where a fill keeps its resume "
          .. "point, is the first fill's (one db.fill per migration: give the second one a migration of its own)")
  end
  filled[ctx] = true
  local map, label = o.map, o.label or "keys"
  stats.declare{"keys_processed", "keys_skipped", "rows_created", "errors"}

  local resume = ctx.checkpoint.get()      -- the last key of the last committed batch, or nil
  if resume then log.info("resuming after key " .. tostring(resume)) end
  -- $1 the resume key, $2 the tag: passed only when the query uses it
  local function args(sql) return used(sql, resume, ctx.migration) end
  -- each target's columns, as the server reads the list: a row of map's is
  -- filled up to them (a trailing nil: NULL); none listed, a row is its own
  local ncols, names, bufs, sends = {}, {}, {}, {}
  for i, sql in ipairs(copies) do
    local _, cols = db._copy_target(sql)
    ncols[i], names[i], bufs[i] = cols and #cols or 0, cols or {}, db.buffer()
    sends[i] = {sql = sql, buffer = bufs[i]}
  end

  local read <close> = db.reader()         -- one snapshot for the count and the stream
  local counted = of("count", pcall(read.one, read, o.count, args(o.count)))
  local total = counted and tonumber(counted.n)
  if not total then error("db.fill: count gave no n: its one row's column n (SELECT count(...) AS n ...)") end
  log.info(string.format("%d keys to fill, up to %d a batch", total, ctx.batch_size_for(total)))
  local bar <close> = progress.new(label, total)
  local pipe <close> = db.pipeline{jobs = ctx.jobs, dry_run = ctx.dry_run, checkpoint = ctx.checkpoint}
  local in_batch, seen, created = 0, 0, 0  -- keys in the batch, keys finished, rows mapped
  local first                              -- the batch's first key
  local written = {}                       -- the keys of the batch that map gave rows for (after's)

  -- after, of the batch's keys written: run in the batch's transaction
  -- once its COPYs are in ($1 the keys as an array, $2 the tag: passed
  -- only when used); none for a batch that wrote no key
  local function after_of(keys)
    if o.after == nil or #keys == 0 then return nil end
    if type(o.after) == "string" then
      local sql = o.after
      return function(conn) of("after", pcall(conn.exec, conn, sql, used(sql, db.array(keys), ctx.migration))) end
    end
    return function(conn) return o.after(conn, keys) end
  end

  -- Sends the batch: its rows and its checkpoint `last` commit together (a
  -- dry run only remembers `last`).
  local function flush(last)
    if in_batch == 0 then return end
    -- (_what: what the pipeline says before a COPY's refusal, which names
    -- a line of the batch, raised at that writer's next turn or at finish)
    pipe:send{copies = sends, after = after_of(written), position = last,
              _what = first == last and "db.fill: in the batch of key " .. tostring(last) .. ": "
                      or string.format("db.fill: in the batch of keys %s .. %s: ", tostring(first), tostring(last))}
    for i = 1, #bufs do bufs[i]:clear() end
    in_batch, written = 0, {}
  end

  -- Buffers the rows of one target (a list of lists of values), in one
  -- pcall a key: a row that is no list, or longer than the COPY's column
  -- list (the server would name a line of the batch, not the key), or a
  -- value that is no SQL value (a table for an array column) is said with
  -- the key, where map is and what to write.
  local function put_rows(buf, list, n)
    for j = 1, #list do
      local t = list[j]
      if type(t) ~= "table" then return j end
      local len = t.n or #t
      if n > 0 and len > n then return j, len end
      buf:put(table.unpack(t, 1, math.max(len, n)))
    end
  end
  local function put(key, i, list)
    local ok, bad, len = pcall(put_rows, bufs[i], list, ncols[i])   -- (bad: the row's index, or the error)
    if ok and bad == nil then return end
    local which = several and string.format("copy[%d]", i) or "copy"
    if not ok then
      local col, what = tostring(bad):match("COPY column (%d+): (.-) is not a SQL value")
      if not col then error(bad, 0) end
      local name = names[i][tonumber(col)]
      error(string.format("db.fill: map%s returned a row whose value %s%s is %s, not a SQL value (key %s): an array "
                          .. "column takes db.array(t), a json one json.encode(t)", map_place(map), col,
                          name and " (" .. name .. ")" or "", what, tostring(key)))
    elseif len then
      error(string.format("db.fill: map%s returned a row of %d values for %s's %d columns (%s) (key %s)",
                          map_place(map), len, which, ncols[i], table.concat(names[i], ", "), tostring(key)))
    end
    error(string.format("db.fill: map%s returned a row that is a %s, not a list of values (key %s%s)",
                        map_place(map), type(list[bad]), tostring(key), several and string.format(
                          ", copy[%d]: copy is a list, so map returns one list of rows per COPY", i) or ""))
  end

  -- map's result for a key: the number of rows it makes (0: the key is
  -- skipped); what is not a list of rows (per target) stops the run.
  local function rows_of(key, out)
    if type(out) ~= "table" then
      error(string.format("db.fill: map%s returned %s, not a list of target rows ({} skips the key)", map_place(map),
                          type(out)))
    end
    if not several then return #out end
    local n = 0
    for i = 1, #out do
      if type(out[i]) ~= "table" then
        error(string.format("db.fill: map%s returned %s for copy[%d], not a list of its rows (copy is a list: "
                            .. "map returns one list of rows per COPY)", map_place(map), type(out[i]), i))
      end
      n = n + #out[i]
    end
    if #out > #copies then
      error(string.format("db.fill: map%s returned %d lists of rows for %d COPY statements (key %s)",
                          map_place(map), #out, #copies, tostring(key)))
    end
    return n
  end

  -- A key whose rows are all read: mapped and counted here (a dry run
  -- counts the same), its rows buffered; the batch goes when full --
  -- between keys.
  local function finish_key(key, rows)
    if rows[1].done then
      stats.inc("keys_skipped")
    else
      local ok, out = pcall(map, key, rows, ctx)
      if not ok then
        stats.error(key, out)              -- counted in errors; the run goes on
      else
        local n = rows_of(key, out)
        if n == 0 then
          stats.inc("keys_skipped")
        else
          if several then
            for i = 1, #out do put(key, i, out[i]) end
          else
            put(key, 1, out)
          end
          written[#written + 1] = key
          created = created + n
          stats.inc("keys_processed")
          stats.inc("rows_created", n)
          if ctx.verbose then
            log.verbose(string.format("%s %d %s for key %s", ctx.dry_run and "would create" or "creating",
                                      n, n == 1 and "row" or "rows", tostring(key)))
          end
        end
      end
    end
    if in_batch == 0 then first = key end
    seen, in_batch = seen + 1, in_batch + 1
    bar:add(1)
    if in_batch >= ctx.batch_size_for(total, total - seen + in_batch) then flush(key) end
  end

  -- The first row of a key: a key and a boolean done (a count's 0 or a
  -- text 'f' is true in Lua: every key would be skipped, nothing written).
  -- A NULL key sorts last, where no resume point (key > $1) reaches it.
  local function check_first(r, before)
    if before == nil and (r.key == nil or r.done == nil) then
      error("db.fill: source gave a row without a key or a done column (name them AS key, AS done; never NULL)")
    elseif r.key == nil then
      error(string.format("db.fill: source gave a row whose key is NULL (after key %s): no resume point reaches it "
                          .. "(key > $1 is never true): leave such rows out of count and source (WHERE key IS NOT "
                          .. "NULL), or give them a key", tostring(before)))
    elseif math.type(r.key) == "float" and r.key ~= math.floor(r.key) or r.key == math.huge or r.key == -math.huge then
      -- (rows() gives a numeric with a fraction as a float: its text as $1,
      -- %.17g of the double, is not the numeric -- 0.3 reads 0.29999...,
      -- below it, so the key after the resume point would be read again,
      -- or one just above left out; a NaN or an infinity has no order)
      error(string.format("db.fill: source's key %s is a float that is not a whole number (a numeric with a "
                          .. "fraction, or a float column's value), which the resume point (key > $1) would not give "
                          .. "back exactly: key the fill by a bigint or a text (cast the key in source and count: "
                          .. "key::text AS key, ordered and compared as text)", tostring(r.key)))
    elseif type(r.done) ~= "boolean" then
      error(string.format("db.fill: source's done at key %s is %s, not a boolean: true when the target has the key's "
                          .. "rows already (EXISTS (SELECT 1 FROM target ...) AS done); in Lua a 0 or a 'f' is true, "
                          .. "and would skip the key", tostring(r.key), r.done == nil and "NULL"
                          or string.format(type(r.done) == "string" and "the %s '%s'" or "the %s %s", type(r.done),
                                           tostring(r.done))))
    elseif math.type(before) == "integer" and math.type(r.key) == "integer" and r.key < before then
      -- (a key that goes back: a resume from the last key of a committed
      -- batch would skip every lower key that came after it.  Integer
      -- keys only: Lua orders strings by bytes, the server by collation)
      error(string.format("db.fill: source is not ordered by key: key %d came after key %d (ORDER BY the key "
                          .. "first, then a tie-breaker: a run resumes after the last key of its last committed "
                          .. "batch, and would skip the keys that came after it in a different order); what was "
                          .. "written before it is kept", r.key, before))
    end
  end

  local key, rows, n = nil, {}, 0
  for r in read:rows(o.source, args(o.source)) do
    if r.key ~= key or n == 0 then         -- a new key: the one before is complete
      check_first(r, key)
      if n > 0 then finish_key(key, rows) end
      key, rows = r.key, {}
    end
    rows[#rows + 1] = r
    n = n + 1
    if n % 256 == 0 then pipe:pump() end   -- keeps the writers' data moving
  end
  if n > 0 then finish_key(key, rows) end
  flush(key)                               -- the last, partial batch
  pipe:finish()                            -- commits every batch in flight
  -- (one snapshot for both: counts that differ are a query that is wrong,
  -- e.g. one that reads nothing on a fresh start)
  if seen ~= total then
    error(string.format("db.fill: count counted %d keys, source gave %d: read in one snapshot, they agree unless "
                        .. "one is wrong: %s; what was written is kept", total, seen, seen < total
                        and "source leaves keys out (on a fresh start $1 is NULL: WHERE $1::type IS NULL OR key > $1; "
                            .. "a key without source rows is not in a JOIN: LEFT JOIN its rows to the keys, or count "
                            .. "only the keys with rows)"
                        or "source gives a key more than once when it is not ordered by key first (ORDER BY key, "
                           .. "then a tie-breaker), or count leaves keys out (count the keys source reads)"))
  end
  bar:finish()
  read:close()
  return seen, created
end

return F
