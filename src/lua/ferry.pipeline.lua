-- ferry.pipeline: writes batches of COPY rows through --jobs writer
-- sessions taken in turn, each batch one transaction with its checkpoint.
--
--   local pipe <close> = db.pipeline{jobs = ctx.jobs, dry_run = ctx.dry_run,
--                                    checkpoint = ctx.checkpoint}
--   pipe:send{copies = {{sql = "COPY t (a, b) FROM STDIN", buffer = buf}, ...},
--             after = function(conn) ... end,   -- optional, before COMMIT
--             position = last_key}              -- the resume point it covers
--   pipe:pump()      -- now and then while mapping: keeps data moving
--   pipe:finish()    -- commits what is in flight
--
-- The last COPY of a batch is ended without waiting for the server
-- (end_data), and the batch commits when its writer's turn comes again:
-- the server stores (and indexes) batch k while Lua maps batch k+1, and
-- with jobs > 1 several backends share that work.  Batches commit in the
-- order they were sent, so the checkpoint only moves forward.  The data is
-- copied out of the buffers by send(): clear and refill them at once.  In
-- a dry run nothing is written; send() only moves the in-memory checkpoint.
-- Leaving the pipeline's scope commits what is in flight, except after an
-- error, which rolls it back (the checkpoint stays at the last committed
-- batch) -- but the controlled stop of --max-errors commits the good
-- batches already sent.
local errors = require "ferry.errors"
local sys = require "ferry.sys"

local P = {}

-- The pipelines of this process that write (weak: a dropped one is still
-- collected), and how many the garbage collector found with batches in
-- flight: the engine asks unfinished() when a script returns, so that a
-- pipeline the script never finished fails the run instead of its
-- batches vanishing under a run recorded applied.
local live = setmetatable({}, {__mode = "k"})
local dropped = 0

function P.new(db, opts)
  local self = setmetatable({writers = {}, turn = 0, dry_run = opts.dry_run, checkpoint = opts.checkpoint, db = db}, P)
  if not opts.dry_run then
    db.open()
    for i = 1, math.max(1, opts.jobs or 1) do
      self.writers[i] = {conn = i == 1 and db.main() or db.connect(), own = i > 1}
    end
    if opts.checkpoint and opts.checkpoint._track_commits then opts.checkpoint._track_commits() end
    live[self] = true
  end
  return self
end

-- While a batch's after runs, its pipeline is marked in_after (set back
-- however after ends): send, finish and abort refuse to run from it.
-- An after that raised a nil error (error(nil), error()) is let go by Lua
-- as a normal exit would be (__close gets a nil error): the pipeline went on
-- to finish and failed with "COPY is finished or aborted".  The mark knows
-- whether after returned.
local AFTER_NIL = "db.pipeline: the batch's after raised a nil error (error() with no message): the batch is not stored"
local IN_AFTER = {__close = function(mark, err)
  mark.pipe.in_after = nil
  if not mark.returned and err == nil then error(AFTER_NIL, 0) end
end}

local AFTER_LEFT_COPY = "db.pipeline: a batch's after function returned with a COPY still open on its conn "
  .. "(finish() or abort() it first)"
local AFTER_FAILED = {
  abandoned = "db.pipeline: a batch's after function left a COPY unfinished: its writer was closed or collected "
    .. "before w:finish(), which aborted the COPY and failed the batch's transaction (finish() it before after returns)",
  caught = "db.pipeline: a batch's after function caught the error of a statement that failed on its conn: the "
    .. "batch's transaction is failed, and its COMMIT would only roll it back (let the error go on, or catch it "
    .. "inside conn:transaction)",
}

-- Runs f(...) -- a COPY's finish, a batch's COMMIT -- for a batch that
-- carries a description, its _what (db.fill's "db.fill: in the batch of
-- keys 11 .. 15: "; not documented, nil for other callers, whose messages
-- stay as they were).  The server's refusal (its message begins with
-- `refused`: "COPY failed: ", naming a line of the batch, "query failed: ",
-- a deferred constraint at the COMMIT) names no key: the description goes
-- before it -- the server's words, which core.error_routine looks up, and
-- the SQLSTATE at the end, which the engine's advice reads, stay whole.  A
-- string is raised again with a place in ferry's Lua, which the API's
-- wrapper turns into the script's line, as it does for a C function's
-- error; an error object (an interruption) as it is.
local function described(what, refused, f, ...)
  if what == nil then return f(...) end
  local ok, e = pcall(f, ...)
  if ok then return end
  if type(e) ~= "string" then error(e, 0) end
  error((e:find(refused) and what or "") .. e, 2)
end

local function commit_counted(self, wr, p)
  described(p.what, "^query failed: ", wr.conn.exec, wr.conn, "COMMIT")
  wr.pending = nil
  if self.checkpoint and self.checkpoint._committed and p.snapshot then self.checkpoint._committed(p.snapshot) end
end

-- Commits the batch in flight on writer wr, if any.  (Not a method, as
-- check_rights is not: a pipeline's methods are what lua-api.md documents.)
local function commit(self, wr)
  local p = wr.pending
  if not p then return end
  if p.copy then described(p.what, "^COPY failed: ", p.copy.finish, p.copy) end
  if p.after then
    self.db._failed_how(wr.conn)           -- (a COPY abandoned before after is none of after's)
    do
      self.in_after = true
      local mark <close> = setmetatable({pipe = self}, IN_AFTER)
      p.after(wr.conn)
      mark.returned = true
    end
    -- (as db.transaction does with its fn: a rows() loop after left open
    -- is ended, read to its end, and the batch commits; a COPY left open
    -- is not the batch's to store, and its COMMIT would be refused)
    if self.db._release(wr.conn) == "a COPY" then error(AFTER_LEFT_COPY) end
    -- a transaction after left failed: its COMMIT would roll the batch
    -- back without an error, and the run go on as if it were stored
    local how, err = self.db._failed_how(wr.conn)
    if err then error(err, 0) end
    if how then error(AFTER_FAILED[how]) end
  end
  if self.checkpoint and p.position ~= nil then self.checkpoint.save(p.position, wr.conn, p.snapshot) end
  -- The batch is counted committed as soon as its COMMIT's result is read:
  -- a Ctrl-C as the COMMIT waited for its reply, which went through all
  -- the same, is raised only after that, so that the failed run's line and
  -- history row count what the table and the checkpoint hold.  (A COMMIT
  -- that failed, cancelled, raises in exec, before the count.)
  sys.uninterrupted(commit_counted, self, wr, p)
end

-- A copy of a position as it is now: the batch saves it when it commits,
-- later, and a script may reuse and change one table for every batch.
-- Metatables are kept as they are (json.array's is protected: its
-- getmetatable() is the string "array").
local function copy_position(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then error("pipe:send: a position cannot contain itself") end
  seen[v] = true
  local t = {}
  for k, x in pairs(v) do t[k] = copy_position(x, seen) end
  seen[v] = nil
  return setmetatable(t, debug.getmetatable(v))
end

-- Each batch is a transaction of its own: inside the script's (a
-- db.transaction, a BEGIN on the main connection) its COMMIT would commit
-- the script's too, which a later error or ROLLBACK would then not undo.
local IN_TRANSACTION = "pipe:send: the main connection is inside a transaction (a db.transaction or the script's BEGIN): "
  .. "each batch commits on its own, and would commit that transaction too; use db.pipeline outside it"

local BATCH_KEYS = {copies = true, after = true, position = true, _what = true}

local function is_buffer(v)
  local mt = debug.getmetatable(v)
  return type(v) == "userdata" and type(mt) == "table" and rawget(mt, "__name") == "ferry.copybuf"
end

-- A batch as documented, or an error before anything is sent (in a dry run
-- too): a misspelt key (an after never run, a position never saved), one
-- {sql =, buffer =} not in a list (no COPY at all), a buffer or an after
-- of the wrong kind (met only at the batch's commit) would otherwise make a
-- run that looks done and is not.
local function check_batch(batch)
  if type(batch) ~= "table" then
    error("pipe:send: a batch is a table {copies = {{sql =, buffer =}, ...}, after =, position =}, not " .. type(batch))
  end
  local unknown = errors.unknown_key(batch, BATCH_KEYS)
  if unknown == nil and batch._what ~= nil and type(batch._what) ~= "string" then unknown = "_what" end
  if unknown then
    error("pipe:send: unknown key " .. unknown .. " in the batch (its keys are copies, after, position)")
  end
  local copies = batch.copies
  if copies ~= nil and type(copies) ~= "table" then
    error("pipe:send: copies is a list {{sql =, buffer =}, ...}, not a " .. type(copies))
  end
  for k in pairs(copies or {}) do
    if math.type(k) ~= "integer" or k < 1 or k > #copies then
      error("pipe:send: copies is a list of {sql =, buffer =} tables, one per COPY: write copies = {{sql = ..., buffer = ...}}")
    end
  end
  for i, c in ipairs(copies or {}) do
    if type(c) ~= "table" or type(c.sql) ~= "string" or c.buffer == nil then
      error(string.format("pipe:send: copies[%d] must be {sql = \"COPY ... FROM STDIN\", buffer = db.buffer()}", i))
    end
    if not is_buffer(c.buffer) then
      error(string.format("pipe:send: copies[%d].buffer must be a db.buffer(), not a %s", i, type(c.buffer)))
    end
  end
  -- (false as nil: `after = #ups > 0 and update(ups)`)
  if batch.after ~= nil and batch.after ~= false and type(batch.after) ~= "function" then
    error("pipe:send: after must be a function (conn), not a " .. type(batch.after))
  end
end

-- A dry run writes nothing, so the server never sees the COPYs of the real
-- run, nor refuses them for want of a right.  It is asked instead, once per
-- COPY statement a dry run's batches name (one round trip for the new ones
-- of a batch), whether this role could run them: USAGE on the schema a
-- qualified name names (to_regclass raises without it); INSERT on the columns the
-- COPY names (all it can write, without a list); USAGE (or UPDATE) on the
-- sequence of a default it leaves to the server (a serial column: nextval
-- checks it, an identity column's does not); no row-level security policy
-- that applies to it (row_security is off on ferry's sessions: the COPY
-- would fail).  A table the database does not have (yet: the real run may
-- make it first), a column it does not have, or a statement that is no
-- COPY ... FROM STDIN, is not asked about: a dry run must not fail a run
-- that would pass.  A batch's after is not run in a dry run, and what its
-- statements need cannot be told without them: not checked.  Nor are a
-- trigger's statements, or what the script writes outside the pipeline.
-- Every COPY a batch names is asked about, with rows or not: a script
-- commonly fills no buffer in a dry run, so an empty one does not tell
-- that the real run sends it none.
local RIGHTS_SQL = [[
WITH named AS (
  SELECT i, t, parse_ident(t) AS parts FROM unnest($1::text[]) WITH ORDINALITY AS x(t, i)
), target AS (
  SELECT x.i, n.nspname, n.oid IS NULL OR has_schema_privilege(n.oid, 'USAGE') AS usable,
         CASE WHEN n.oid IS NULL OR has_schema_privilege(n.oid, 'USAGE') THEN to_regclass(x.t) END AS rel
    FROM named x LEFT JOIN pg_namespace n
      ON cardinality(x.parts) > 1 AND n.nspname = x.parts[cardinality(x.parts) - 1]
), listed AS (
  SELECT i, (parse_ident(c))[1] AS col FROM unnest($2::int[], $3::text[]) AS l(i, c)
), written AS (
  SELECT t.i, a.attnum, a.attname FROM target t JOIN pg_attribute a ON a.attrelid = t.rel
   WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
     AND (a.attname IN (SELECT col FROM listed l WHERE l.i = t.i) OR NOT EXISTS (SELECT FROM listed l WHERE l.i = t.i))
)
SELECT t.i, 0 AS o, 'schema' AS kind, NULL AS rel, quote_ident(current_user) AS role,
       quote_ident(t.nspname) AS what, NULL AS col
  FROM target t WHERE NOT t.usable
UNION ALL
SELECT t.i, 1, 'insert', t.rel::text AS rel, quote_ident(current_user) AS role,
       CASE WHEN has_any_column_privilege(t.rel, 'INSERT')
            THEN string_agg(quote_ident(w.attname), ', ' ORDER BY w.attnum) END, NULL
  FROM target t JOIN written w ON w.i = t.i
 WHERE NOT has_column_privilege(t.rel, w.attnum, 'INSERT')
 GROUP BY t.i, t.rel
UNION ALL
SELECT t.i, 2, 'sequence', t.rel::text, quote_ident(current_user), s.oid::regclass::text, quote_ident(a.attname)
  FROM target t JOIN pg_attrdef ad ON ad.adrelid = t.rel
  JOIN pg_attribute a ON a.attrelid = t.rel AND a.attnum = ad.adnum AND NOT a.attisdropped
  JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
  JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'   -- (the CASE below: not asked before this)
 WHERE NOT EXISTS (SELECT FROM written w WHERE w.i = t.i AND w.attnum = ad.adnum)
   AND CASE WHEN s.relkind = 'S' THEN NOT has_sequence_privilege(s.oid, 'USAGE, UPDATE') END
UNION ALL
SELECT t.i, 3, 'rls', t.rel::text, quote_ident(current_user), NULL, NULL FROM target t WHERE row_security_active(t.rel)
ORDER BY 1, 2, 6, 7]]

local function missing_right(r)
  if r.kind == "schema" then
    return string.format("role %s has no USAGE on schema %s (GRANT USAGE ON SCHEMA %s TO %s)", r.role, r.what, r.what, r.role)
  elseif r.kind == "insert" and r.what == nil then
    return string.format("role %s has no INSERT on %s (GRANT INSERT ON %s TO %s)", r.role, r.rel, r.rel, r.role)
  elseif r.kind == "insert" then
    return string.format("role %s has no INSERT on columns %s of %s (GRANT INSERT (%s) ON %s TO %s)",
                         r.role, r.what, r.rel, r.what, r.rel, r.role)
  elseif r.kind == "sequence" then
    return string.format("role %s has no USAGE on sequence %s, which fills %s.%s (GRANT USAGE ON SEQUENCE %s TO %s)",
                         r.role, r.what, r.rel, r.col, r.what, r.role)
  end
  return string.format("a row-level security policy on %s applies to role %s: run ferry as a role the policies "
                       .. "do not apply to (the table's owner, or a role with BYPASSRLS)", r.rel, r.role)
end

-- Raises, naming every right missing, when the real run's COPYs of this
-- batch would be refused (see RIGHTS_SQL).
local function check_rights(self, copies)
  self.asked = self.asked or {}
  local tables, idx, cols = {}, {}, {}
  for _, c in ipairs(copies or {}) do
    if not self.asked[c.sql] then
      self.asked[c.sql] = true
      local t, list = self.db._copy_target(c.sql)
      if t then
        tables[#tables + 1] = t
        for _, col in ipairs(list) do idx[#idx + 1] = #tables; cols[#cols + 1] = col end
      end
    end
  end
  if #tables == 0 then return end
  -- (on the main session, the first writer of a real run; busy there --
  -- a rows() loop the script left open -- the real run fails anyway)
  local main = self.db.open()
  if self.db._busy_with(main) then return end
  local missing, seen = {}, {}
  for _, r in ipairs(main:query(RIGHTS_SQL, self.db.array(tables), self.db.array(idx), self.db.array(cols))) do
    local line = missing_right(r)
    if not seen[line] then seen[line] = true; missing[#missing + 1] = line end
  end
  if #missing > 0 then
    error("a dry run: the real run's COPY would be refused: " .. table.concat(missing, "; "))
  end
end

-- A position is saved by the pipeline's checkpoint; without one (the
-- checkpoint = ctx.checkpoint option forgotten) it would be dropped
-- without a word, and an interrupted run start over.
local NO_CHECKPOINT = "pipe:send: the batch has a position, but this db.pipeline has no checkpoint to save it in "
  .. "(db.pipeline{checkpoint = ctx.checkpoint, ...}): it would never be saved, and an interrupted run would start over"

function P:send(batch)
  check_batch(batch)
  if batch.position ~= nil and not self.checkpoint then error(NO_CHECKPOINT) end
  -- (what save would refuse -- json.null, a NaN, a string cut inside a
  -- character -- refused here: a real run saves it only at the batch's
  -- commit, after its COPY, and raised at the next send's line)
  if batch.position ~= nil and self.checkpoint._check then self.checkpoint._check(batch.position) end
  if self.dry_run then
    -- (refused as in a real run, so that the dry run finds it; the main
    -- session is only asked when the script has opened it)
    local main = self.db.main()
    if main and main:in_transaction() then error(IN_TRANSACTION) end
    check_rights(self, batch.copies)
    if self.checkpoint and batch.position ~= nil then self.checkpoint.save(copy_position(batch.position)) end
    return
  end
  -- A batch bigger than a db.buffer keeps in memory (its rows spilled to
  -- a temporary file: one lead of a million audits) is sent waiting until
  -- the server has taken it.  The batches in flight commit first: one of
  -- them may hold a lock its rows wait for (a row it wrote), which only
  -- its commit would release -- the wait would never end.
  for _, c in ipairs(batch.copies or {}) do
    if c.buffer:spilled() then P.finish(self); break end
  end
  self.turn = self.turn % #self.writers + 1
  local wr = self.writers[self.turn]
  commit(self, wr)                                 -- the oldest batch in flight
  local conn = wr.conn
  if conn:in_transaction() then error(IN_TRANSACTION) end
  -- recorded before anything can fail, so that abort() finds what to undo
  -- (a COPY still open, which ROLLBACK alone cannot end)
  local pending = {after = batch.after, position = copy_position(batch.position), what = batch._what,
                   snapshot = self.checkpoint and self.checkpoint.snapshot()}
  wr.pending = pending
  -- One round trip.  A lost commit is redone from the checkpoint.  The
  -- server checks each row's foreign keys with a plan it makes once per
  -- session: made while the referenced table is still small (the first
  -- batch of a backfill) it would scan that table for every later row, each
  -- scan longer as the table grows; with sequential scans off it looks the
  -- key up in the index every foreign key has.
  conn:exec_script("BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL enable_seqscan = off")
  local copies = batch.copies or {}
  for i, c in ipairs(copies) do
    if i < #copies then
      if c.buffer:count() > 0 then
        local w <close> = conn:copy(c.sql)
        w:put_buffer(c.buffer)
        described(batch._what, "^COPY failed: ", w.finish, w)
      end
    else
      pending.copy = conn:copy(c.sql)
      pending.copy:put_buffer(c.buffer)
      pending.copy:end_data()
    end
  end
end

function P:pump()
  for _, wr in ipairs(self.writers) do
    if wr.pending then wr.conn:flush() end
  end
end

function P:finish()
  local n = #self.writers
  for i = 1, n do commit(self, self.writers[(self.turn + i - 1) % n + 1]) end
end

-- Rolls back what writer wr has in flight (db: the db module).
local function abort_writer(wr, db)
  local had = wr.pending
  if had and had.copy then pcall(had.copy.abort, had.copy) end
  wr.pending = nil
  -- (a writer without a batch in flight: a transaction open on it is the
  -- script's -- a db.transaction around the pipeline -- not this one's)
  if not had then return end
  -- a rows() loop or a COPY the batch's after left open on the writer
  -- would make the ROLLBACK below "connection busy"
  pcall(db._release, wr.conn)
  -- only where a transaction is open: a ROLLBACK outside one makes the
  -- server warn on stderr, after the one error line the user should see
  local ok, open = pcall(wr.conn.in_transaction, wr.conn)
  if ok and open then pcall(wr.conn.exec, wr.conn, "ROLLBACK") end
end

local function abort_all(self)
  for _, wr in ipairs(self.writers) do abort_writer(wr, self.db) end
end

-- A batch's after runs while that batch commits, between its COPY's end
-- and its checkpoint: a send from it would commit the next writer's batch
-- first (the checkpoint moving back), a finish would finish that COPY
-- again, an abort would roll back the batch whose checkpoint is saved next
-- (outside any transaction then).  Raised at the line that called them.
local function refuse_in_after(self, name, level)
  if type(self) == "table" and self.in_after then
    error("db.pipeline: pipe:" .. name .. " called from a batch's after function, which runs while that batch "
          .. "commits: after writes through the conn it is given, and leaves the pipeline to the code that sends",
          level + 1)
  end
end

-- A method called with a dot (pipe.finish() for pipe:finish()) or on
-- something else than a pipeline: said as a bad argument #1, as the C
-- methods say it, not as an index of nil inside this file.
local function check_self(self, name, level)
  if getmetatable(self) ~= P then
    error(string.format("bad argument #1 to '%s' (db.pipeline expected, got %s)", name, type(self)), level + 1)
  end
end

-- (nothing once the pipeline is closed: its sessions are no longer its
-- own, and a transaction the script began since is not to be rolled back)
function P:abort()
  check_self(self, "abort", 2)
  refuse_in_after(self, "abort", 2)
  if not self.closed then abort_all(self) end
end

-- Closing: a normal exit commits what is in flight (as finish() would: a
-- script that forgot it loses nothing); so does the controlled stop of
-- --max-errors.  Any other error rolls the batches in flight back.  The
-- extra writer sessions are closed in every case.
-- Dropped without finish() or <close> (a script's bug): the batches in
-- flight are rolled back -- the script never said it was done -- so that
-- no session is left inside a transaction that later statements would
-- silently join and lose.  Only the writers with a batch in flight: a
-- session's own transaction, begun after finish(), is not this pipeline's.
P.__gc = function(self)
  local had = false
  for _, wr in ipairs(self.writers) do
    if wr.pending then abort_writer(wr, self.db); had = true end
  end
  if had then dropped = dropped + 1 end
end

--- unfinished() -> true when a pipeline was left with batches in flight
-- since the last call: one still open (its batches are rolled back now)
-- or one the garbage collector dropped so (rolled back then).  The engine
-- calls it when a script has returned.
function P.unfinished()
  local found = false
  for pipe in pairs(live) do
    if not pipe.closed then
      for _, wr in ipairs(pipe.writers) do
        if wr.pending then abort_writer(wr, pipe.db); found = true end
      end
    end
  end
  -- (read after the loop: a finalizer may run during it, its pipeline
  -- counted now rather than against the next script)
  found = found or dropped > 0
  dropped = 0
  return found
end

-- What a script calls: an error that ferry's own Lua meets in them (a
-- writer session's, a checkpoint save's) names the script's line that
-- called them, not this file's; an `after` function's errors keep their
-- place.  (The methods above call each other unwrapped.)
-- After the pipeline is closed (<close>, or its __close called), send,
-- pump and finish raise: a send would open a COPY and a transaction on
-- the main session again, with nothing left to end them.  (abort, and
-- closing again, do nothing then.)
local function open_only(name, f)
  return function(self, ...)
    check_self(self, name, 1)
    if self.closed then                 -- (check_self: a pipeline, a table)
      error("db.pipeline: used after it was closed (pipe:" .. name .. ")")
    end
    if name ~= "pump" then refuse_in_after(self, name, 1) end
    return f(self, ...)
  end
end

local finish = P.finish
P.new = errors.api(P.new)
for _, name in ipairs{"send", "pump", "finish"} do P[name] = errors.api(open_only(name, P[name])) end

P.__close = function(self, err)
  check_self(self, "__close", 2)
  if self.closed then return end
  self.closed = true                 -- (an `after` that finish runs now cannot send either)
  local committed, ferr = false, nil
  if err == nil or (errors.is_ferry(err) and err.max_errors) then
    committed, ferr = pcall(finish, self)
  end
  if not committed then abort_all(self) end
  for _, wr in ipairs(self.writers) do
    if wr.own then pcall(wr.conn.close, wr.conn) end
  end
  if ferr ~= nil then
    if err == nil then errors.reraise(ferr, 2) end
    -- the --max-errors stop goes on as the error; say why the batches in
    -- flight were not committed after all
    local text = errors.text(ferr)
    local p = text:match(errors.FERRY_POSITION)
    if p then text = errors.where(1) .. text:sub(#p + 1) end
    require("log").warn("could not commit the batches in flight: " .. text)
  end
end

-- A pipeline's methods are these alone (and __close, which lua-api.md
-- says may be called): the module's new and unfinished (which rolls back
-- and forgets the batches of pipelines left in flight, the engine's to
-- ask) are no methods of it.
P.__index = {send = P.send, pump = P.pump, finish = P.finish, abort = P.abort, __close = P.__close}

return P
