-- db: the Lua side of the database API.  The C core ("db.core") gives
-- connections with exec/query/one/rows/copy; this prelude adds the
-- conveniences (transactions, arrays, module-level calls on the main
-- connection) that need no C.
local core = require "db.core"
local methods = core.methods

local M = {NULL = core.NULL, read_only = core.read_only, buffer = core.buffer}
-- (ferry.pipeline's, for a dry run's check of the rights its COPYs need)
M._copy_target, M._busy_with = core.copy_target, core.busy_with

-- n as an integer when it is a whole number -- an integer, or a float
-- holding one (6 / 2) -- else nil: the counts the API takes (a row's n,
-- db.array's, db.arrays', db.pipeline's jobs), as Lua's own string
-- functions take them.  (math.type first: math.tointeger reads "2" too.)
local function whole(n) return math.type(n) and math.tointeger(n) or nil end
-- What a bad count was, for its error: a number as itself, a string
-- quoted as one ("4" is no number to the option, and read "not 4" it
-- looked like one), anything else by its type.
local function shown_count(v)
  if math.type(v) or v == nil then return tostring(v) end
  if type(v) == "string" then return string.format("a string (%q)", #v > 20 and v:sub(1, 20) .. "..." or v) end
  return "a " .. type(v)
end

-- The most columns a row has (MaxHeapAttributeNumber) and elements an
-- array holds (MaxArraySize): bounds checked before anything is built.
local MAX_COLUMNS, MAX_ARRAY = 1600, 134217727

--- conn:transaction(fn, ...) runs fn(...) between BEGIN and COMMIT and
-- returns its results; on error it rolls back and re-raises the error.
-- Nested calls use a savepoint, so an inner failure can be caught.
local savepoints = setmetatable({}, {__mode = "k"})
-- (errors.mark: an error object raised in fn keeps the place it was raised
-- at, which the stack no longer shows once it is raised again here)
local errors = require "ferry.errors"
local mark = errors.mark

-- The methods written here in Lua raise what goes wrong at the script's
-- line that called them, as the C methods do: checked(api, pcall(f,
-- conn, ...)), called (not tail-called) by the method, raises f's error
-- at its caller's line.  A C method called through pcall cannot name
-- itself and counts the connection as argument #1: "bad argument #2 to
-- '?'" becomes "bad argument #1 to 'rows'", as conn:exec(nil) says it.
local function argument(e, api, shift)
  if type(e) ~= "string" then return e end
  local n, rest = e:match("^bad argument #(%d+) to '%?'(.*)")
  if not n then return e end
  return string.format("bad argument #%d to '%s'%s", tonumber(n) - shift, api, rest)
end
local function checked(api, ok, ...)
  if ok then return ... end
  errors.reraise(argument((...), api, 1), 3, true)
end

-- The methods written here in Lua, called with a dot (conn.rows(sql)) or on
-- something else than a connection, say so as the C methods do
-- ("bad argument #1 to 'exec' (ferry.conn expected, got string)"): not an
-- error inside this file ("table index is nil", "attempt to index a nil
-- value (local 'conn')").  level: where the caller is, as for error.
local function is_conn(x)
  local mt = getmetatable(x)
  return type(mt) == "table" and rawget(mt, "__index") == methods
end
local function check_self(conn, api, level)
  if is_conn(conn) then return end
  local mt = getmetatable(conn)
  local name = type(mt) == "table" and type(rawget(mt, "__name")) == "string" and rawget(mt, "__name") or type(conn)
  error(string.format("bad argument #1 to '%s' (ferry.conn expected, got %s)", api, name), level + 1)
end

-- What holds each session (its last rows() or copy(); weak): a transaction
-- that fails while one is still open ends it first, so that its ROLLBACK
-- is not refused as "connection busy" -- which would leave the session
-- inside a dead transaction that later statements join and are lost with.
local holder = setmetatable({}, {__mode = "kv"})
-- (its slot is made before the call: recording what the call returns then
-- allocates nothing, so that no memory error can come between the session
-- becoming busy and its holder being known; a holder already there stays
-- -- a call refused as "connection busy" must not forget the one open)
local raw_rows, raw_copy = methods.rows, methods.copy
function methods.rows(conn, ...)
  check_self(conn, "rows", 2)
  if holder[conn] == nil then holder[conn] = false end
  local it, s, c, closer = checked("rows", pcall(raw_rows, conn, ...))
  holder[conn] = closer
  return it, s, c, closer
end
function methods.copy(conn, ...)
  check_self(conn, "copy", 2)
  if holder[conn] == nil then holder[conn] = false end
  local w = checked("copy", pcall(raw_copy, conn, ...))
  holder[conn] = w
  return w
end
local function release_holder(conn)
  local h = holder[conn]
  holder[conn] = nil
  if h then
    pcall(function() if h.abort then h:abort() else h:close() end end)
  end
  -- (one the Lua side never got: an interruption, which the hook raises at
  -- the first instruction after the call, between the call that started
  -- it and the line above that notes it -- the C side ends it)
  if core.busy_with(conn) then core.release_busy(conn) end
end
--- db._release(conn) -> what held conn ("a rows() iteration", "a COPY")
-- or nil; a rows() loop left open on it is ended, a COPY aborted, as
-- db.transaction does when its fn is done.  ferry.pipeline calls it when
-- a batch's after has returned and before it rolls a batch back: a ROLLBACK
-- refused as "connection busy" would leave the writer inside the batch's
-- transaction, and later statements on it would join it.
function M._release(conn)
  local held = core.busy_with(conn)
  if held then release_holder(conn) end
  return held
end
--- db._failed_how(conn) -> nil while conn's transaction (if any) can
-- commit; "abandoned" when it failed after a COPY writer was closed or
-- collected before w:finish() (which aborted its COPY), "caught" when a
-- statement in it failed and its error was caught; or nil and the error of
-- asking.  Forgets the abandoned COPY (core.take_abandoned_copy): call it
-- once before the code it judges, once after.  A COMMIT of a failed
-- transaction only rolls it back, with no error: db.transaction and
-- ferry.pipeline (a batch's after) raise instead.
function M._failed_how(conn)
  local abandoned = core.take_abandoned_copy(conn)
  local ok, open, failed = pcall(conn.in_transaction, conn)
  if not ok then return nil, open end
  if failed then return abandoned and "abandoned" or "caught" end
  return nil
end
local CAUGHT = "transaction rolled back: a statement in it failed and its error was caught "
               .. "(to go on after an error, catch it with a nested transaction)"
local ENDED_BY_FN = "transaction: fn ended the transaction itself (a COMMIT or ROLLBACK in it): what it wrote "
                    .. "before that was committed or rolled back then, not as one with the rest; leave the ending "
                    .. "to db.transaction"
-- conn:method(...) for transaction's own statements (BEGIN, COMMIT, the
-- savepoints): an error names the line that called transaction; fn's
-- errors keep their place.  (A tail call: checked's caller is transaction.)
-- fn closed its own session: said at the line that called transaction
-- ("attempt to use a closed connection" named no line of the script)
local CLOSED_BY_FN = "transaction: fn closed the session itself (conn:close() inside its transaction): what it wrote "
                     .. "in the transaction was rolled back"
local function closed_by_fn(conn)
  local ok, e = pcall(conn.in_transaction, conn)
  return not ok and tostring(e):find("closed connection", 1, true) ~= nil
end
local function own(conn, method, ...)
  return checked("transaction", pcall(conn[method], conn, ...))
end
-- fn returned: what would keep its transaction from ending as it should is
-- raised at the line that called transaction (transaction's guard rolls
-- back at that level as the error leaves it).  A rows() loop fn left open is ended (read to its
-- end, as inside a transaction it always is) and does not; a COPY never
-- finished is not fn's rows stored; a failed statement whose error fn
-- caught leaves a transaction that COMMIT would only roll back.
-- A writer fn let go of before finish() (its <close> scope, or the
-- collector) aborted its COPY, which failed the transaction: said as that.
local ABANDONED = "transaction rolled back: fn left a COPY unfinished: its writer was closed or collected before "
                  .. "w:finish(), which aborted the COPY (finish() it before fn returns, or abort() it)"
local function refuse_unfinished(conn)
  local held = core.busy_with(conn)
  if held then
    release_holder(conn)
    if held == "a COPY" then
      error("transaction rolled back: fn returned with a COPY still open (finish() or abort() it first)", 3)
    end
  end
  local how, err = M._failed_how(conn)
  -- (own's errors name its caller's caller: here that is transaction, so
  -- one level up by hand, to the line that called transaction)
  if err then errors.reraise(err, 3, true) end
  if how then error(how == "abandoned" and ABANDONED or CAUGHT, 3) end
end

-- How a transaction ends when it does not commit: fn failed, fn returned
-- with something unfinished (refuse_unfinished), or a memory error came in
-- transaction's own work (packing fn's results, its checks, the call that
-- commits).  A to-be-closed guard rolls back at its level (a ROLLBACK, or
-- a ROLLBACK TO and RELEASE of its savepoint) and resets the session's
-- savepoint depth as the error leaves transaction -- not a pcall, so that
-- the errors keep the line that called transaction.  One fn ended itself
-- is not rolled back again (no server warning), and fn's error goes on.
local TX_GUARD = {__close = function(g)
  -- a nested one, however it ends: a COPY its fn abandoned went with its
  -- savepoint (or was said), and the outer level's is the outer's again
  if g.nested then core.take_abandoned_copy(g.conn, g.carried) end
  if g.done then return end
  savepoints[g.conn] = g.outer
  -- (not while its BEGIN is not known to have returned: one refused as
  -- "connection busy" leaves the holder the caller has open -- a rows()
  -- loop it reads on -- and one that went through leaves none)
  if not g.beginning then release_holder(g.conn) end
  local ok, open = pcall(g.conn.in_transaction, g.conn)
  if not (ok and open) then return end
  if g.name then
    pcall(g.conn.exec_script, g.conn, "ROLLBACK TO SAVEPOINT " .. g.name .. "; RELEASE SAVEPOINT " .. g.name)
  else
    pcall(g.conn.exec, g.conn, "ROLLBACK")
  end
end}

function methods.transaction(conn, fn, ...)
  check_self(conn, "transaction", 2)
  if type(fn) ~= "function" and not (type(fn) == "table" and type((debug.getmetatable(fn) or {}).__call) == "function") then
    error("transaction: fn must be a function, not " .. type(fn), 2)
  end
  local open = own(conn, "in_transaction")
  local outer = savepoints[conn]
  -- a depth recorded with no transaction open: that of a transaction
  -- whose coroutine was dropped while fn had yielded (no to-be-closed
  -- variable of it ever runs), ended since -- this one begins afresh
  if outer and not open then outer = nil; savepoints[conn] = nil end
  local depth = outer
  -- (one before fn's is none of fn's; nested, it is the outer level's,
  -- which the guard puts back as this one ends)
  local carried = core.take_abandoned_copy(conn)
  -- inside a transaction the script began itself (db.exec("BEGIN")) this
  -- is a savepoint too: a BEGIN/COMMIT of its own would commit the
  -- script's transaction early and leave its later ROLLBACK undoing nothing
  if not depth and open then depth = 0 end
  -- (done until the transaction or savepoint is there)
  local guard <close> = setmetatable({conn = conn, outer = outer, done = true, nested = depth ~= nil,
                                      carried = carried}, TX_GUARD)
  if depth then
    local name = "ferry_sp_" .. (depth + 1)
    guard.name = name
    own(conn, "exec", "SAVEPOINT " .. name)
    guard.done = false
    savepoints[conn] = depth + 1
    local res = table.pack(xpcall(fn, mark, ...))
    savepoints[conn] = outer
    if res[1] then
      if closed_by_fn(conn) then guard.done = true; error(CLOSED_BY_FN, 2) end
      refuse_unfinished(conn)             -- (as below, at this level)
      own(conn, "exec", "RELEASE SAVEPOINT " .. name)
      guard.done = true
      return table.unpack(res, 2, res.n)
    end
    error(res[2], 0)          -- (the guard rolls the savepoint back, and releases it)
  end
  -- The guard is armed before the BEGIN, not after it: Ctrl-C while the
  -- BEGIN waits for its reply lets it go through (a cancel between
  -- statements does nothing) and raises at the next Lua instruction --
  -- had that been before `guard.done = false`, the transaction would stay
  -- open, unseen, and what came next on the session (close_history's
  -- second try at the outcome) would run inside it as a savepoint, its
  -- "commit" a RELEASE, rolled back as ferry exits.  The guard goes by the
  -- session (in_transaction): a BEGIN that never ran leaves nothing to
  -- roll back.  (robust/53-held-record-reply.t)  Not so for a SAVEPOINT,
  -- which the session does not tell: one left by such a raise holds
  -- nothing (fn never ran) and goes with the level around it.
  guard.done, guard.beginning = false, true
  own(conn, "exec", "BEGIN")
  guard.beginning = nil
  savepoints[conn] = 0
  local res = table.pack(xpcall(fn, mark, ...))
  savepoints[conn] = nil
  if res[1] then
    if closed_by_fn(conn) then guard.done = true; error(CLOSED_BY_FN, 2) end
    refuse_unfinished(conn)
    -- fn ended the transaction itself: all of fn or none of it no longer
    -- holds (a COMMIT here would only make the server warn)
    if not own(conn, "in_transaction") then guard.done = true; error(ENDED_BY_FN, 2) end
    own(conn, "exec", "COMMIT")
    guard.done = true
    return table.unpack(res, 2, res.n)
  end
  -- fn failed: the guard rolls back (unless fn ended the transaction
  -- itself); the original error is the one to report, even when the
  -- connection is gone
  error(res[2], 0)
end

--- conn:copy_rows("COPY t (a, b) FROM STDIN", rows) writes an array of
-- arrays with one COPY and returns the count stored.
-- (errors.api, as for share_snapshot below: what fails in it is raised at
-- the line that called it)
local function copy_rows(conn, sql, rows)
  check_self(conn, "copy_rows", 2)
  if type(sql) ~= "string" then error("bad argument #1 to 'copy_rows' (string expected, got " .. type(sql) .. ")", 0) end
  if type(rows) ~= "table" then error("bad argument #2 to 'copy_rows' (table expected, got " .. type(rows) .. ")", 0) end
  for i = 1, #rows do
    local r = rows[i]
    if type(r) ~= "table" then
      error(string.format("copy_rows: row %d is a %s, not a table of values", i, type(r)), 0)
    end
    -- (an n of 1e9 made Lua's "too many results to unpack", naming nothing;
    -- a table has at most 1600 columns)
    local n = r.n
    if n ~= nil and not (whole(n) and n >= 1 and n <= MAX_COLUMNS) then
      error(string.format("copy_rows: row %d has n = %s: a row's n is its number of values, a whole number from 1 "
                          .. "to " .. MAX_COLUMNS, i, errors.shown(n)), 0)
    end
  end
  local w <close> = conn:copy(sql)
  for i = 1, #rows do
    local r = rows[i]
    w:put(table.unpack(r, 1, r.n or #r))
  end
  return w:finish()
end
methods.copy_rows = errors.api(copy_rows, true)

-- ferry validate's transaction on the main session, while it is open
-- (M._snapshot_begin to M._snapshot_end): {conn =, id = the snapshot it
-- exported, depth = checks running inside one another}.  db.reader() and
-- the main session's share_snapshot give other sessions that snapshot.
local validating = nil

-- The statements that open a REPEATABLE READ READ ONLY transaction
-- reading the snapshot exported as id.  SET TRANSACTION SNAPSHOT takes no
-- parameter: the id, the server's own, is checked against its format
-- before it goes into the statement.
local function begin_in_snapshot(id)
  if not id:match("^%x+%-%x+%-%d+$") then error("unexpected snapshot id from the server: " .. id, 0) end
  return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '" .. id .. "'"
end

--- conn:share_snapshot(other) opens on session `other` a REPEATABLE READ
-- READ ONLY transaction that sees exactly what conn sees (conn must be in a
-- REPEATABLE READ transaction, as a db.reader() is, and idle): two sessions
-- then read one consistent state at the same time.  End it with
-- other:exec("COMMIT").  (In validate.lua the main session's is the
-- snapshot every check sees, exported when it was taken: the checks run
-- inside savepoints, where none can be exported.)
local function share_snapshot(conn, other)
  check_self(conn, "share_snapshot", 2)
  if getmetatable(other) ~= getmetatable(conn) then
    error("share_snapshot: the other session must be a connection (db.connect()), not " .. type(other), 2)
  end
  -- its own transaction would be rolled back on the way
  if other:in_transaction() then
    error("share_snapshot: the other session is in a transaction already (end it first)", 2)
  end
  local id = validating and validating.conn == conn and validating.id
  if not id then
    -- outside a transaction the snapshot would be gone before its import; in
    -- READ COMMITTED conn itself moves on at its next statement
    if not conn:in_transaction() then
      error("share_snapshot: this session is not in a transaction (use db.reader(), or "
            .. "BEGIN ISOLATION LEVEL REPEATABLE READ first)", 2)
    end
    local snap = conn:one("SELECT pg_export_snapshot() AS id, current_setting('transaction_isolation') AS iso")
    if snap.iso ~= "repeatable read" and snap.iso ~= "serializable" then
      error("share_snapshot: this session's transaction is " .. snap.iso:upper()
            .. ", which moves on at each statement (it must be REPEATABLE READ, as db.reader() is)", 2)
    end
    id = snap.id
  end
  local ok, err = pcall(other.exec_script, other, begin_in_snapshot(id))
  if not ok then
    pcall(other.exec, other, "ROLLBACK")
    error(err, 0)
  end
end
methods.share_snapshot = errors.api(share_snapshot, true)

--- db.array(t) -> PostgreSQL array literal text for a Lua array, bound as
-- a parameter: db.exec("... = ANY($1::text[])", db.array{"a", "b"}).
function M.array(t)
  if type(t) ~= "table" then error("db.array: a table of values is needed, not a " .. type(t), 2) end
  -- (checked before the loop: an n of 2^63 -- or a __len saying so --
  -- built "NULL" parts until memory ran out, and the process was killed)
  local n = t.n
  if n == nil then n = #t end
  local count = whole(n)
  if not count or count < 0 then
    error("db.array: n must be a whole number >= 0, not " .. (math.type(n) and tostring(n) or "a " .. type(n)), 2)
  end
  if count > MAX_ARRAY then
    error(string.format("db.array: %d elements, more than a PostgreSQL array holds (%d)", count, MAX_ARRAY), 2)
  end
  local parts = {}
  for i = 1, count do
    local v = t[i]
    local ty = type(v)
    if v == nil or v == core.NULL then
      parts[i] = "NULL"
    elseif ty ~= "string" and ty ~= "number" and ty ~= "boolean" then
      error(string.format("db.array: element %d is a %s, not a SQL value", i, ty), 2)
    else
      -- floats as parameters are sent (every bit; NaN, Infinity; a whole
      -- one as integer text): tostring keeps 14 digits
      local s = math.type(v) == "float" and core.float_text(v) or tostring(v)
      parts[i] = '"' .. s:gsub('[\\"]', "\\%0") .. '"'
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- db.arrays(rows, n) -> n array literals, one per column of rows (a list
-- of rows, each a list of n values; nil or db.NULL is NULL): a batch's
-- rows bound column by column, as UPDATE ... FROM unnest($1::uuid[],
-- $2::text[], ...) takes them -- the transposition every batched UPDATE
-- would otherwise write by hand, with each column's NULLs counted right.
function M.arrays(rows, n)
  if type(rows) ~= "table" then error("db.arrays: rows is a list of rows (tables), not a " .. type(rows), 2) end
  -- (a float that is a whole number, 6 / 2, is that number, as db.array's n
  -- and copy_rows' take it)
  local columns = whole(n)
  if not (columns and columns >= 1) then
    error("db.arrays: n, the number of columns, must be a whole number >= 1, not " .. shown_count(n), 2)
  end
  n = columns
  -- (checked before anything is built, as db.array's n: an n of 2^40 made
  -- column tables until memory ran out; a row has at most 1600 columns)
  if n > MAX_COLUMNS then error(string.format("db.arrays: n = %d columns, more than a row has (%d)", n, MAX_COLUMNS), 2) end
  local count = #rows
  if math.type(count) ~= "integer" or count < 0 then
    error("db.arrays: #rows must be a whole number >= 0, not " .. errors.shown(count), 2)
  end
  if count > MAX_ARRAY then
    error(string.format("db.arrays: %d rows, more than a PostgreSQL array holds (%d)", count, MAX_ARRAY), 2)
  end
  local cols = {}
  for k = 1, n do cols[k] = {n = count} end
  for i = 1, count do
    local row = rows[i]
    if type(row) ~= "table" then error(string.format("db.arrays: row %d is a %s, not a table", i, type(row)), 2) end
    for k = 1, n do
      local v = row[k]
      local ty = type(v)
      if v ~= nil and v ~= core.NULL and ty ~= "string" and ty ~= "number" and ty ~= "boolean" then
        error(string.format("db.arrays: row %d, column %d is a %s, not a SQL value", i, k, ty), 2)
      end
      cols[k][i] = v
    end
    if row[n + 1] ~= nil then
      error(string.format("db.arrays: row %d has a value in column %d, beyond the %d columns asked for", i, n + 1, n), 2)
    end
  end
  for k = 1, n do cols[k] = M.array(cols[k]) end
  return table.unpack(cols, 1, n)
end

--- db.pipeline{jobs=, dry_run=, checkpoint=} -> batches written by writer
-- sessions in turn (see ferry.pipeline).
local PIPELINE_OPTIONS = {jobs = true, dry_run = true, checkpoint = true}
function M.pipeline(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("db.pipeline: its options are a table {jobs =, dry_run =, checkpoint =}, not a " .. type(opts), 2)
  end
  local unknown = errors.unknown_key(opts, PIPELINE_OPTIONS)
  if unknown then
    error("db.pipeline: unknown option " .. unknown .. " (its options are jobs, dry_run, checkpoint)", 2)
  end
  -- (at most MAX_PRESTART, --jobs's bound: writers past what the server
  -- allows would fail one by one as they connect, after it forked them)
  -- (a float holding a whole number is that number, as db.array's n; the
  -- caller's table is left as it was)
  local jobs = whole(opts.jobs)
  if opts.jobs ~= nil and not (jobs and jobs >= 1 and jobs <= M.MAX_PRESTART) then
    error("db.pipeline: jobs must be a whole number from 1 to " .. M.MAX_PRESTART .. ", not " .. shown_count(opts.jobs), 2)
  end
  if math.type(opts.jobs) == "float" then opts = {jobs = jobs, dry_run = opts.dry_run, checkpoint = opts.checkpoint} end
  -- dry_run left out where the sessions are read-only (--dry-run): a
  -- dry-run pipeline -- its writers would only have failed at their first
  -- COPY, as if the script wrote in a dry run (the caller's table is left
  -- as it was)
  if opts.dry_run == nil and M.read_only then
    opts = {jobs = opts.jobs, dry_run = true, checkpoint = opts.checkpoint}
  end
  return require("ferry.pipeline").new(M, opts)
end

--- db.fill{count =, source =, copy =, map = [, after =, label =]} -> keys,
-- rows: the streamed, pipelined, resumable fill of `ferry new --pipeline`
-- (see ferry.fill) with the ctx of the script that runs (M._ctx, which the
-- engine sets as it starts one).  Its errors name the line that called it.
M.fill = errors.api(function(o) return require("ferry.fill").fill(M, M._ctx, o) end)

-- Re-raises an error of a binding one level up, so that it names the
-- script line that called db.exec (...), not this file; an argument error
-- names the db function and counts its arguments as the script wrote them
-- ("bad argument #1 to 'db.exec'", not "#2 to '?'" -- the main connection
-- is argument #1 of the method -- nor "#1 to 'rows'").  shift: 1 for a
-- method of the main connection, else 0.  Called as a tail call.
-- ("cannot connect ..." has no position: ferry's exit code 2 reads it.)
local function relay(api, shift, ok, ...)
  if ok then return ... end
  local e = argument((...), "db." .. api, shift)
  if type(e) == "string" then
    -- (a C function of db.core that Lua found by name in package.loaded:
    -- db.connect's is 'db.core.connect')
    local n, rest = e:match("^bad argument #(%d+) to '" .. api .. "'(.*)")
    if not n then n, rest = e:match("^bad argument #(%d+) to 'db%.core%." .. api .. "'(.*)") end
    if n then e = "bad argument #" .. n .. " to 'db." .. api .. "'" .. rest end
  end
  errors.reraise(e, 2, true)
end

-- Sessions started ahead of need (db.prestart): the server forks and sets
-- up their backends while the script does other work.  db.connect() with
-- no conninfo hands them out first.
local spares = {}

--- db.prestart(n): starts n more sessions to the database without waiting
-- for them; the next db.connect() calls take them (and raise, as
-- db.connect() would, if one could not be set up).  n is 0 to
-- MAX_PRESTART: sessions past what the server allows would fail only when
-- used, after the server had forked them all.
local MAX_PRESTART = 100        -- (a server's default max_connections; --jobs's bound)
M.MAX_PRESTART = MAX_PRESTART
function M.prestart(n)
  if math.type(n) ~= "integer" then error("bad argument #1 to 'db.prestart' (an integer expected, got " .. (math.type(n) or type(n)) .. ")", 2) end
  if n < 0 or n > MAX_PRESTART then
    error(string.format("bad argument #1 to 'db.prestart' (0 to %d sessions expected, got %d)", MAX_PRESTART, n), 2)
  end
  for _ = 1, n do
    local ok, conn = pcall(core.connect_start)
    if not ok then errors.reraise(conn, 2, true) end
    spares[#spares + 1] = conn
  end
end

--- db.drop_spares(): closes the sessions db.prestart started that nobody took.
function M.drop_spares()
  for i = #spares, 1, -1 do
    pcall(spares[i].close, spares[i])
    spares[i] = nil
  end
end

-- The sessions handed to the script (weak: one dropped is still
-- collected), for M._end_open(): a transaction it left open on one of them
-- is rolled back when its session closes, writes and all, without a word.
local handed = setmetatable({}, {__mode = "k"})
-- The readers (db.reader()): their transaction, READ ONLY, writes nothing,
-- even when a statement of it failed.
local reading = setmetatable({}, {__mode = "k"})

-- (marks the session of a pcall(core.connect) that succeeded, passing the
-- results on, so that relay stays a tail call: its errors name the line
-- that called db.connect)
local function hand(ok, conn, ...)
  if ok then handed[conn] = true end
  return ok, conn, ...
end

function M.connect(conninfo)
  if conninfo == nil and #spares > 0 then
    local conn = table.remove(spares, 1)
    conn:ready()
    handed[conn] = true
    return conn
  end
  return relay("connect", 0, hand(pcall(core.connect, conninfo)))
end

--- db._end_busy() -> where the script left a COPY open (a writer neither
-- finished nor aborted): "the main session", "a session of its own
-- (db.connect())", or nil.  Each such COPY is aborted now: its rows were
-- not the script's to keep unfinished, and its session is free again (the
-- run is recorded on the main one).  A rows() loop left open on the main
-- session (a first row read by hand) is ended too, without a word: it
-- wrote nothing, and the run's history row is written on that session.
-- The engine calls it when a script has returned (after a pipeline's own
-- are ended).
function M._end_busy()
  local where
  local function look(conn, name)
    if core.busy_with(conn) == "a COPY" then
      release_holder(conn)
      where = where or name
    end
  end
  local main = M.main()
  if main and core.busy_with(main) == "a rows() iteration" then release_holder(main) end
  if main then look(main, "the main session") end
  for conn in pairs(handed) do look(conn, "a session of its own (db.connect())") end
  return where
end

--- db._end_open() -> true when the script left, on a session it opened
-- (db.connect(), db.reader()), a transaction that wrote something (or
-- failed): each such transaction is rolled back now; one that only read
-- (a reader's snapshot) is ended as well, without a word.  A session
-- still busy (a rows() loop or a COPY not ended) is left to its close.
-- The engine calls it when a script has returned.
-- Whether the session's open transaction wrote: a transaction id assigned,
-- and rows changed (catalog rows too: DDL, TRUNCATE) as the transaction's
-- own statistics count them -- a SELECT ... FOR UPDATE / FOR SHARE, or
-- txid_current(), takes a transaction id and writes nothing.  (With
-- track_counts off there are no such counts: the id alone says it.)
local WROTE_SQL = [[
  SELECT CASE WHEN txid_current_if_assigned() IS NULL THEN false
              WHEN NOT current_setting('track_counts')::bool THEN true
              ELSE EXISTS (SELECT FROM pg_stat_xact_all_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0)
         END AS w]]

function M._end_open()
  local wrote = false
  for conn in pairs(handed) do
    local ok, open, failed = pcall(conn.in_transaction, conn)
    -- (busy: no statement can run on it, to ask or to roll back)
    if ok and open and not core.busy_with(conn) then
      local w = false
      if not reading[conn] then
        w = failed
        if not w then
          local got, r = pcall(conn.one, conn, WROTE_SQL)
          w = not got or r.w
        end
      end
      pcall(conn.exec, conn, "ROLLBACK")
      wrote = wrote or w
    end
  end
  return wrote
end

-- A session of the script's own closed (conn:close(), or a `<close>`
-- variable going out of scope) inside a transaction that wrote: closing
-- rolled it back without a word, and the run that counted those rows was
-- recorded applied with none of them (db.connect(); BEGIN; INSERT;
-- close()).  It is rolled back and closed as before, and the close raises
-- at the script's line -- not while another error unwinds the scope (that
-- one stands, the run fails by it).  A reader's transaction wrote nothing.
local CLOSED_WITH_WRITES = "%s inside a transaction that wrote (a BEGIN with no COMMIT): closing it rolled "
  .. "that back, and its writes are lost: COMMIT before closing it (ROLLBACK, to drop them), or write in "
  .. "conn:transaction(fn), which commits"
-- (a session the server ended meanwhile -- terminated, restarted -- which
-- ferry learns only now: the writes went with it, not with the close)
local LOST_WITH_WRITES = "%s inside a transaction that wrote or may have (a BEGIN with no COMMIT), and its writes "
  .. "with it: its server session had ended: %s"
local raw_close = methods.close
-- true when the session's open transaction wrote; false; or nil and the
-- error of the question (its connection lost, an interruption)
local function wrote_open(conn)
  if not handed[conn] or reading[conn] or core.busy_with(conn) then return false end
  local ok, open, failed = pcall(conn.in_transaction, conn)
  if not (ok and open) then return false end
  -- (failed, a statement's error caught: the server rolled its writes
  -- back then -- the script saw that error -- and the close loses nothing)
  if failed then return false end
  local got, r = pcall(conn.one, conn, WROTE_SQL)
  if got then return r.w end
  return nil, r
end
-- Closes conn with close (its C close or __close, given rest) and, when
-- its transaction wrote, raises what was lost at the script's line, the
-- session said as said[1] (closed) or said[2] (lost).
local function close_guarded(conn, close, said, ...)
  local wrote, err = wrote_open(conn)
  if wrote == false then return close(conn, ...) end
  pcall(conn.exec, conn, "ROLLBACK")
  close(conn)
  -- (an interruption, an error object, goes on as it is)
  if err ~= nil and type(err) ~= "string" then error(err, 0) end
  -- (said as a session of the script's own, not with l_db.c's
  -- "connection lost: " first)
  if err and err:find("^connection lost: ") then
    error(errors.where(1) .. string.format(LOST_WITH_WRITES, said[2], err:sub(#"connection lost: " + 1)), 0)
  end
  error(errors.where(1) .. string.format(CLOSED_WITH_WRITES, said[1]), 0)
end
local CLOSE_SAID = {"conn:close: the session was closed", "conn:close: the session was found lost"}
local RELEASE_SAID = {"a session of the script's own (db.connect()) went out of scope, as a <close> variable,",
                      "a session of the script's own (db.connect()), going out of scope as a <close> variable, was "
                      .. "found lost"}
function methods.close(conn, ...)
  check_self(conn, "close", 2)
  return close_guarded(conn, raw_close, CLOSE_SAID, ...)
end
do
  local mt = debug.getregistry()["ferry.conn"]      -- (l_db.c's CONN_MT)
  local raw_release = mt and mt.__close
  if raw_release then
    mt.__close = function(conn, err)
      if err ~= nil then return raw_release(conn, err) end
      return close_guarded(conn, raw_release, RELEASE_SAID, err)
    end
  end
end

--- db.reader() -> a new session for streaming a big read: one consistent
-- snapshot for all its queries (REPEATABLE READ READ ONLY), work_mem 64MB,
-- and no parallel workers or JIT (one client consumes the stream at its own
-- pace: workers would each build the same hash tables for nothing).  Close
-- it with read:close() when done.  In validate.lua its snapshot is the one
-- every check sees.
M.reader = errors.api(function()
  local begin = validating and begin_in_snapshot(validating.id) or "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
  local conn = M.connect()
  local ok, err = pcall(conn.exec_script, conn, "SET work_mem = '64MB'; SET max_parallel_workers_per_gather = 0; "
                        .. "SET jit = off; " .. begin)
  if not ok then
    pcall(conn.close, conn)
    error(err, 0)
  end
  reading[conn] = true
  return conn
end, true)


--- db.plan(sql, ...) -> the EXPLAIN text of sql on the main connection,
-- with sequential scans disabled, so that "can an index serve this query"
-- does not depend on the table's size (validation checks of FTS indexes).
function M.plan(sql, ...)
  if type(sql) ~= "string" then error("bad argument #1 to 'db.plan' (string expected, got " .. type(sql) .. ")", 2) end
  local args = table.pack(...)
  -- (a tail call: an error names the caller's line, not this file's)
  return relay("plan", 0, pcall(M.transaction, function()
    -- (set back after: inside a transaction of the script's this is a
    -- savepoint, and a SET LOCAL outlives its release)
    local was = M.one("SELECT current_setting('enable_seqscan') AS v").v
    M.exec("SET LOCAL enable_seqscan = off")
    local lines = {}
    for _, r in ipairs(M.query("EXPLAIN " .. sql, table.unpack(args, 1, args.n))) do
      lines[#lines + 1] = r["QUERY PLAN"]
    end
    M.one("SELECT set_config('enable_seqscan', $1, true) AS v", was)
    return table.concat(lines, "\n")
  end))
end

local main
--- Opens the main connection (the engine does this once per command).
function M.open()
  if not main then main = core.connect(); core.keep_open(main, true) end
  main:ready()
  return main
end
--- Starts opening the main connection without waiting for it: the engine
-- calls it as soon as it knows the command needs the database, so that the
-- server sets the session up while ferry reads the migrations.
function M._open_ahead()
  if not main then main = core.connect_start(); core.keep_open(main, true) end
end
function M.main() return main end
-- The engine's: whether its main session is lost (libpq found the server
-- gone from it; none open), which decides how a run is recorded -- not the
-- words "connection lost", which a session of the script's own, a
-- script's error or a row's data can say too.
function M._main_lost() return main == nil or core.connection_lost(main) end
-- How many "connection lost" errors the sessions have raised so far.
function M._lost_raised() return core.lost_raised() end
-- Why the main connection must stay open until the command ends (it holds
-- ferry's migration lock), or nil: the engine sets it (M._hold).
local held_for
function M._hold(why)
  held_for = why
  -- (the lock's session: a statement that would release it is refused)
  if main then core.hold_lock(main, why ~= nil) end
end

--- Closes the main connection (the engine, when the command ends: a
-- script's main:close() is refused, and so is db.close() while the
-- connection holds ferry's lock or validate's transaction).
function M.close()
  if held_for then error("db.close: " .. held_for, 2) end
  M.drop_spares()
  if main then
    core.keep_open(main, false)
    main:close()
    main = nil
  end
end

-- ferry validate: every check sees one snapshot.
local VALIDATE_HOLD = "the main session holds the transaction of ferry validate's checks (one snapshot for all "
                      .. "of them); it ends when the command ends"
-- (their names begin as l_db.c's HELD_SAVEPOINTS: a script's statement
-- naming one is refused on the held session, so ferry's own go through
-- own_savepoint)
local VALIDATE_SP, CHECK_SP = "ferry_validate", "ferry_validate_check"

-- conn:method(sql) for validate's own savepoint statements, the hold lifted
-- for them.
local function own_savepoint(conn, method, sql)
  core.hold_transaction(conn, false)
  local ok, err = pcall(conn[method], conn, sql)
  core.hold_transaction(conn, true)
  if not ok then error(err, 0) end
end

--- db._snapshot_begin(): (the engine's, for ferry validate) opens on the
-- main session a REPEATABLE READ READ ONLY transaction, takes its snapshot
-- now and exports it (db.reader() and the main session's share_snapshot
-- hand it to other sessions: only outside a savepoint can it be exported),
-- and holds it until M._snapshot_end(): a statement that would begin or end
-- a transaction on the main session is refused before it is sent
-- (core.hold_transaction), and so is db.close().  A savepoint taken then
-- is where M._snapshot_check rolls back a statement of the script that
-- failed outside any check, its error caught.
function M._snapshot_begin()
  local conn = M.open()
  conn:exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
  local ok, err = pcall(function()
    local id = conn:one("SELECT pg_export_snapshot() AS id").id
    conn:exec("SAVEPOINT " .. VALIDATE_SP)
    return id
  end)
  if not ok then
    pcall(conn.exec, conn, "ROLLBACK")
    error(err, 0)
  end
  validating = {conn = conn, id = err, depth = 0}
  core.hold_transaction(conn, true)
  held_for = held_for or VALIDATE_HOLD
end

--- db._snapshot_check(fn) -> what pcall(fn) returns.  fn (a check) runs
-- under a savepoint that is rolled back when fn has ended, whichever way:
-- what it did (a SET, a statement that failed) is undone and the locks it
-- took are let go, so that every check starts from the same state; a rows()
-- loop it left open on the main session is ended first.  A check at the top
-- (in no other check, no db.transaction) that finds the transaction failed
-- (a statement of the script's outside the checks failed, its error
-- caught) first rolls back to the savepoint of M._snapshot_begin.  Found
-- failed anywhere else, the failure is inside something of the script's
-- that rolling back so far would undo too (a db.transaction's savepoint):
-- fn runs as it is and fails at its first statement, as the script's own
-- would there.  So does fn with the main session busy (a check called
-- inside a rows() loop on it): it cannot use that session either.
-- Raises when the transaction cannot be restored (the connection lost).
function M._snapshot_check(fn)
  local v = validating
  local conn = v and v.conn
  if not conn or core.busy_with(conn) then return pcall(fn) end
  local _, failed = conn:in_transaction()
  if failed then
    if v.depth > 0 or savepoints[conn] then return pcall(fn) end
    own_savepoint(conn, "exec", "ROLLBACK TO SAVEPOINT " .. VALIDATE_SP)
  end
  own_savepoint(conn, "exec", "SAVEPOINT " .. CHECK_SP)
  v.depth = v.depth + 1
  local res = table.pack(pcall(fn))
  v.depth = v.depth - 1
  release_holder(conn)
  local ok, err = pcall(own_savepoint, conn, "exec_script",
                        "ROLLBACK TO SAVEPOINT " .. CHECK_SP .. "; RELEASE SAVEPOINT " .. CHECK_SP)
  if not ok then
    err = tostring(err)
    -- (the check's savepoint gone: the check released, or rolled back to,
    -- one of the script's taken before it began)
    local gone = err:find("[SQLSTATE 3B001]", 1, true)
    error("the checks' transaction could not be restored after a check: "
          .. (gone and "its savepoint is gone (the check released, or rolled back to, a savepoint taken before it "
                       .. "began): " or "") .. err, 0)
  end
  return table.unpack(res, 1, res.n)
end

--- db._snapshot_end(): rolls validate's transaction back (it only read),
-- whatever state the script left the main session in.
function M._snapshot_end()
  local v = validating
  if not v then return end
  validating = nil
  if held_for == VALIDATE_HOLD then held_for = nil end
  core.hold_transaction(v.conn, false)
  release_holder(v.conn)
  local ok, open = pcall(v.conn.in_transaction, v.conn)
  if ok and open then pcall(v.conn.exec, v.conn, "ROLLBACK") end
end


-- db.exec(...), db.query(...), ... act on the main connection.
for _, name in ipairs{"exec", "query", "one", "rows", "copy", "copy_rows", "exec_script",
                      "quote_ident", "transaction", "backend_pid", "in_transaction", "flush",
                      "share_snapshot"} do
  if name == "transaction" then   -- fn's own errors keep their place
    M[name] = function(...)
      if not main then M.open() end      -- connect on first use
      return main[name](main, ...)
    end
  else
    M[name] = function(...)
      if not main then M.open() end      -- connect on first use
      return relay(name, 1, pcall(main[name], main, ...))
    end
  end
end

return M
