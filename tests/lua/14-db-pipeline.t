#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- db.pipeline: batches of COPY rows through writer sessions in turn, each
-- batch one transaction with its checkpoint; dry run; rollback on error.

local tbl = "ferry_lua_pipe_" .. db.backend_pid()
db.exec("SET client_min_messages = warning")
db.exec("DROP TABLE IF EXISTS " .. tbl)
db.exec("CREATE TABLE " .. tbl .. " (id int, v text)")
local COPY = "COPY " .. tbl .. " (id, v) FROM STDIN"
local observer = db.connect()   -- writer 1 is the main connection: it is busy while a batch is in flight
local function count() return observer:one("SELECT count(*) AS n FROM " .. tbl).n end

-- a checkpoint that records what the pipeline asks of it
local function fake_checkpoint()
  local cp = {saved = {}, snaps = 0}
  function cp.snapshot() cp.snaps = cp.snaps + 1; return {n = cp.snaps} end
  function cp.save(pos, conn, snap)
    cp.saved[#cp.saved + 1] = {pos = pos, in_tx = conn and conn:in_transaction() or false, snap = snap and snap.n}
    return true
  end
  return cp
end

---------------------------------------------------------------- two writers
local cp = fake_checkpoint()
local buf, extra = db.buffer(), db.buffer()
local afters = {}
do
  local pipe <close> = db.pipeline{jobs = 2, checkpoint = cp}
  for batch = 1, 5 do
    for i = 1, 100 do buf:put((batch - 1) * 100 + i, "b" .. batch) end
    extra:put(1000 + batch, "extra")
    pipe:send{copies = {{sql = COPY, buffer = extra}, {sql = COPY, buffer = buf}},
              after = function(conn) afters[#afters + 1] = conn:in_transaction() end,
              position = batch * 100}
    buf:clear()
    extra:clear()
    pipe:pump()
  end
  -- (send k commits batch k - 2, its writer's last: batches 1-3 are in,
  -- 4 and 5 in flight, one per writer)
  T.is(count(), 303, "two batches in flight, one per writer, not committed yet; the three before them are")
  pipe:finish()
end
T.is(count(), 505, "finish commits every batch (all copies of each)")
T.is(db.one("SELECT count(DISTINCT v) AS n FROM " .. tbl .. " WHERE v LIKE 'b%'").n, 5, "every batch's rows")
local positions = {}
for i, s in ipairs(cp.saved) do positions[i] = s.pos end
T.is(positions, {100, 200, 300, 400, 500}, "checkpoints saved in the order the batches were sent")
T.ok(cp.saved[1].in_tx and cp.saved[5].in_tx, "each checkpoint is saved inside its batch's transaction")
T.is(cp.saved[1].snap, 1, "with the snapshot taken when the batch was sent")
T.is(afters, {true, true, true, true, true}, "after(conn) runs inside each batch's transaction")
T.is(db.in_transaction(), false, "no transaction left open on the main connection")

---------------------------------------------------------------- a position table reused between sends
-- The position is saved when the batch commits, a turn or two later: a
-- table the script goes on changing must be taken as it was at send (the
-- checkpoint of batch 1 said "after batch 3" and a resume lost rows).
db.exec("DELETE FROM " .. tbl)
cp = fake_checkpoint()
do
  local pipe <close> = db.pipeline{jobs = 2, checkpoint = cp}
  local pos = {last = {id = 0}}
  for batch = 1, 3 do
    buf:clear()
    buf:put(batch, "reused")
    pos.last.id = batch * 1000
    pipe:send{copies = {{sql = COPY, buffer = buf}}, position = pos}
  end
  pos.last.id = -1
  pipe:finish()
end
positions = {}
for i, s in ipairs(cp.saved) do positions[i] = s.pos.last.id end
T.is(positions, {1000, 2000, 3000}, "a position table changed after send: each batch saves it as it was at its send")
cp = fake_checkpoint()
do
  local pipe <close> = db.pipeline{jobs = 2, checkpoint = cp}
  buf:clear(); buf:put(1, "arr")
  pipe:send{copies = {{sql = COPY, buffer = buf}}, position = {ids = json.array{7, 8}, empty = json.array{}}}
  pipe:finish()
end
T.is(getmetatable(cp.saved[1].pos.empty), "array", "a json.array in a position stays one (its metatable is protected)")
T.is(cp.saved[1].pos.ids, {7, 8}, "... with its values")
local cyclic = {}
cyclic.self = cyclic
T.like(select(2, pcall(function()
  local pipe <close> = db.pipeline{jobs = 1, checkpoint = fake_checkpoint()}
  pipe:send{copies = {{sql = COPY, buffer = buf}}, position = cyclic}
end)), "a position cannot contain itself", "a position that contains itself is refused")

---------------------------------------------------------------- dry run
db.exec("DELETE FROM " .. tbl)
cp = fake_checkpoint()
do
  local pipe <close> = db.pipeline{jobs = 3, dry_run = true, checkpoint = cp}
  buf:put(1, "x")
  pipe:send{copies = {{sql = COPY, buffer = buf}}, position = "p1"}
  pipe:pump()
  pipe:finish()
end
T.is(count(), 0, "dry run: nothing written")
T.is(cp.saved[1].pos, "p1", "dry run: send moves the checkpoint")

---------------------------------------------------------------- an error rolls back what is in flight
buf:clear()
local ok, err = pcall(function()
  local pipe <close> = db.pipeline{jobs = 2}
  buf:put(1, "committed?")
  pipe:send{copies = {{sql = COPY, buffer = buf}}}
  pipe:send{copies = {{sql = COPY, buffer = buf}}}
  error("mapping failed")
end)
T.ok(not ok and tostring(err):find("mapping failed$") ~= nil, "the error propagates")
T.is(count(), 0, "leaving the pipeline with an error rolls back every batch in flight")
T.is(db.one("SELECT 1 AS x").x, 1, "the main connection is usable")
T.is(db.in_transaction(), false, "and not in a transaction")

---------------------------------------------------------------- used after it was closed
-- A closed pipeline refuses to go on: send reopened a COPY and a
-- transaction on the main session, which nothing would end.
local function err_at(fn)
  local ok, e = pcall(fn)
  return not ok and tostring(e) or nil
end
local closed_msg = "14%-db%-pipeline%.t:(%d+): db%.pipeline: used after it was closed"
db.exec("DELETE FROM " .. tbl)
for _, jobs in ipairs{1, 2} do
  local kept
  do
    local pipe <close> = db.pipeline{jobs = jobs}
    kept = pipe
    buf:clear(); buf:put(1, "before close")
    pipe:send{copies = {{sql = COPY, buffer = buf}}}
  end
  T.is(count(), 1, "jobs " .. jobs .. ": leaving the scope committed the batch")
  local line = debug.getinfo(1, "l").currentline + 1
  local e = err_at(function() kept:send{copies = {{sql = COPY, buffer = buf}}} end)
  T.is(e and e:match(closed_msg), tostring(line),
       "jobs " .. jobs .. ": send after <close> raises 'used after it was closed' at the caller's line")
  T.like(err_at(function() kept:pump() end), closed_msg, "jobs " .. jobs .. ": so does pump")
  T.like(err_at(function() kept:finish() end), closed_msg, "jobs " .. jobs .. ": and finish")
  T.is(db.in_transaction(), false, "jobs " .. jobs .. ": the main session is not left in a transaction")
  T.is(count(), 1, "jobs " .. jobs .. ": nothing more written")
  T.is(select("#", getmetatable(kept).__close(kept)), 0, "jobs " .. jobs .. ": closing again is safe")
  db.exec("BEGIN")
  kept:abort()
  T.is(db.in_transaction(), true, "jobs " .. jobs .. ": abort after close does nothing (a transaction begun since stays)")
  db.exec("COMMIT")
  db.exec("DELETE FROM " .. tbl)
end
do
  local pipe = db.pipeline{jobs = 1}
  buf:clear(); buf:put(2, "x")
  pipe:send{copies = {{sql = COPY, buffer = buf}}}
  pipe:__close()                      -- its __close called directly: commits, as <close> does
  T.is(count(), 1, "a pipeline closed by a call to its __close commits what is in flight")
  T.like(err_at(function() pipe:send{copies = {{sql = COPY, buffer = buf}}} end), closed_msg,
         "...and refuses a send after it")
  T.is(db.in_transaction(), false, "...which opens no transaction")
  pipe:__close()
  T.ok(true, "...and may be closed twice")
  db.exec("DELETE FROM " .. tbl)
end
cp = fake_checkpoint()
do
  local kept
  do
    local pipe <close> = db.pipeline{jobs = 2, dry_run = true, checkpoint = cp}
    kept = pipe
    pipe:send{copies = {{sql = COPY, buffer = buf}}, position = "p1"}
  end
  T.like(err_at(function() kept:send{copies = {{sql = COPY, buffer = buf}}, position = "p2"} end), closed_msg,
         "dry run: send after close raises too")
  T.is(#cp.saved, 1, "dry run: ...without moving the checkpoint")
end

---------------------------------------------------------------- an after that uses its own pipeline
-- after runs while its batch commits.  A send from it committed the next
-- writer's batch first (with jobs = 2 the checkpoint went back: batch 2's
-- position saved, then batch 1's), a finish from it finished the batch's
-- COPY twice ('COPY is finished or aborted', on every later send), and an
-- abort from it rolled the batch back, whose checkpoint was then saved
-- outside any transaction.  Refused at the line that calls it; the error
-- rolls back what is in flight, as any other error.
db.exec("DELETE FROM " .. tbl)
local from_after = {
  send = function(pipe) pipe:send{copies = {{sql = COPY, buffer = buf}}, position = 9} end,
  finish = function(pipe) pipe:finish() end,
  abort = function(pipe) pipe:abort() end,
}
for _, jobs in ipairs{1, 2} do
  for _, method in ipairs{"send", "finish", "abort"} do
    local what = "jobs " .. jobs .. ", pipe:" .. method .. " in after"
    cp = fake_checkpoint()
    local ok, e = pcall(function()
      local pipe <close> = db.pipeline{jobs = jobs, checkpoint = cp}
      for i = 1, 3 do
        buf:clear(); buf:put(i, "reentrant")
        pipe:send{copies = {{sql = COPY, buffer = buf}}, position = i,
                  after = i == 1 and function() from_after[method](pipe) end or nil}
      end
      pipe:finish()
    end)
    T.like(not ok and tostring(e) or "", "^[^%[]*14%-db%-pipeline%.t:%d+: db%.pipeline: pipe:" .. method
           .. " called from a batch's after function",
           what .. ": refused at the calling line")
    local saved = {}
    for i, s in ipairs(cp.saved) do saved[i] = s.pos end
    T.is(saved, {}, what .. ": no checkpoint saved (none out of order, none of a batch rolled back)")
    T.is(count(), 0, what .. ": the batches in flight are rolled back")
    T.is(db.in_transaction(), false, what .. ": the main session is left out of a transaction")
  end
end
do
  local pipe <close> = db.pipeline{jobs = 1}
  buf:clear(); buf:put(1, "pump")
  pipe:send{copies = {{sql = COPY, buffer = buf}}, after = function() pipe:pump() end}
  pipe:finish()
  T.is(count(), 1, "pipe:pump in after is allowed (it only sends on what is in flight)")
  db.exec("DELETE FROM " .. tbl)
end

---------------------------------------------------------------- an after that leaves its conn busy
-- An after that took a first row of conn:rows() and returned, or left a
-- COPY open on conn, left the writer busy: its COMMIT was refused
-- ("connection busy"), and so was the ROLLBACK of the error that followed,
-- so the main session (writer 1) stayed inside the batch's transaction --
-- later statements of the script joined it, and were lost with it.  As in
-- db.transaction: a rows() loop left open is ended and the batch commits;
-- a COPY left open is refused, and the batches in flight are rolled back.
for _, jobs in ipairs{1, 2} do
  db.exec("DELETE FROM " .. tbl)
  local ok, e = pcall(function()
    local pipe <close> = db.pipeline{jobs = jobs}
    for i = 1, 2 do
      buf:clear(); buf:put(i, "rows-left")
      pipe:send{copies = {{sql = COPY, buffer = buf}}, after = function(conn)
        local it = conn:rows("SELECT g FROM generate_series(1, 1000) g")
        it()                                       -- a first row, then left
      end}
    end
    pipe:finish()
  end)
  T.is({ok, e}, {true, nil}, "jobs " .. jobs .. ": an after that leaves a rows() loop open: the batch commits")
  T.is(count(), 2, "jobs " .. jobs .. ": ...its rows stored")
  T.is({db.in_transaction()}, {false, false}, "jobs " .. jobs .. ": ...the main session out of any transaction")
  T.is(require("db.core").busy_with(db.main()), nil, "jobs " .. jobs .. ": ...and not busy")

  db.exec("DELETE FROM " .. tbl)
  local w
  ok, e = pcall(function()
    local pipe <close> = db.pipeline{jobs = jobs}
    for i = 1, 2 do
      buf:clear(); buf:put(i, "copy-left")
      pipe:send{copies = {{sql = COPY, buffer = buf}}, after = function(conn)
        w = conn:copy(COPY)
        w:put(100 + i, "never finished")
      end}
    end
    pipe:finish()
  end)
  T.like(not ok and tostring(e) or "", "^[^%[]*14%-db%-pipeline%.t:%d+: db%.pipeline: a batch's after function "
         .. "returned with a COPY still open on its conn %(finish%(%) or abort%(%) it first%)$",
         "jobs " .. jobs .. ": an after that leaves a COPY open: refused at the line that sent or finished")
  T.is(count(), 0, "jobs " .. jobs .. ": ...the batches in flight rolled back, that COPY's rows too")
  T.is({db.in_transaction()}, {false, false}, "jobs " .. jobs .. ": ...the main session out of any transaction")
  T.is(require("db.core").busy_with(db.main()), nil, "jobs " .. jobs .. ": ...and not busy")
  T.raises(function() w:put(1, "x") end, "COPY is finished or aborted", "jobs " .. jobs .. ": ...that COPY aborted")
  db.exec("INSERT INTO " .. tbl .. " VALUES (7, 'later')")
  T.is(count(), 1, "jobs " .. jobs .. ": a later statement on the main session commits on its own")
end
db.exec("DELETE FROM " .. tbl)

---------------------------------------------------------------- an after that leaves the batch failed
-- An after that let a COPY writer go before w:finish() (a <close> writer,
-- or one collected), or that caught the error of a statement it ran on
-- conn, leaves the batch's transaction failed: its COMMIT only rolled it
-- back, without an error, so pipe:finish() returned and the run went on
-- as if the batch were stored -- its rows and the after's work gone in
-- silence.  It raises instead, saying which, and the batches roll back.
for _, case in ipairs{
  {"a <close> COPY writer left unfinished", function(conn, i)
     local w <close> = conn:copy(COPY)
     w:put(100 + i, "never finished")
   end, "db%.pipeline: a batch's after function left a COPY unfinished: its writer was closed or collected "
        .. "before w:finish%(%), which aborted the COPY and failed the batch's transaction %(finish%(%) it "
        .. "before after returns%)$"},
  {"a failed statement's error caught", function(conn)
     pcall(conn.exec, conn, "SELECT 1/0")
   end, "db%.pipeline: a batch's after function caught the error of a statement that failed on its conn: the "
        .. "batch's transaction is failed, and its COMMIT would only roll it back %(let the error go on, or "
        .. "catch it inside conn:transaction%)$"},
} do
  for _, jobs in ipairs{1, 2} do
    db.exec("DELETE FROM " .. tbl)
    local ok, e = pcall(function()
      local pipe <close> = db.pipeline{jobs = jobs}
      for i = 1, 2 do
        buf:clear(); buf:put(i, "failed-after")
        pipe:send{copies = {{sql = COPY, buffer = buf}}, after = function(conn) case[2](conn, i) end}
      end
      pipe:finish()
    end)
    T.like(not ok and tostring(e) or "", "^[^%[]*14%-db%-pipeline%.t:%d+: " .. case[3],
           "jobs " .. jobs .. ": " .. case[1] .. " in after: raised at the line that sent or finished")
    T.is(count(), 0, "jobs " .. jobs .. ": ...the batches in flight rolled back")
    T.is({db.in_transaction()}, {false, false}, "jobs " .. jobs .. ": ...the main session out of any transaction")
    db.exec("INSERT INTO " .. tbl .. " VALUES (7, 'later')")
    T.is(count(), 1, "jobs " .. jobs .. ": ...and a later statement on it commits on its own")
  end
end
-- the same after inside a nested conn:transaction: its savepoint rolls
-- back, and the batch commits
db.exec("DELETE FROM " .. tbl)
do
  local pipe <close> = db.pipeline{jobs = 1}
  buf:clear(); buf:put(1, "caught-in-savepoint")
  pipe:send{copies = {{sql = COPY, buffer = buf}}, after = function(conn)
    pcall(conn.transaction, conn, function() conn:exec("SELECT 1/0") end)
  end}
  pipe:finish()
end
T.is(count(), 1, "an after that catches an error inside conn:transaction: the batch commits")
db.exec("DELETE FROM " .. tbl)

---------------------------------------------------------------- foreign keys checked by index
-- The server checks each row's foreign key with a plan it makes once per
-- session.  Made while the referenced table is tiny (the first batch of a
-- backfill), a plan that scans the whole table would be kept for every
-- later row, each scan longer as the table grows: the writers plan with
-- sequential scans off, so the check looks the key up in the index.
local parent, child = tbl .. "_parent", tbl .. "_child"
db.exec("CREATE TABLE " .. parent .. " (id int PRIMARY KEY)")
db.exec("CREATE TABLE " .. child .. " (id int, parent_id int NOT NULL REFERENCES " .. parent .. ")")
db.exec("INSERT INTO " .. parent .. " VALUES (0)")
db.exec("VACUUM ANALYZE " .. parent)     -- the planner now knows it as one page, not as an unknown table
local parents, children = db.buffer(), db.buffer()
local scans = {}
do
  local pipe <close> = db.pipeline{jobs = 1}
  local next_parent, next_child = 0, 0
  for batch = 1, 4 do
    local n = batch == 1 and 1 or 20          -- a first batch of one parent
    for _ = 1, n do
      next_parent = next_parent + 1   -- (the counts add up over the session)
      parents:put(next_parent)
      for _ = 1, 10 do next_child = next_child + 1; children:put(next_child, next_parent) end
    end
    pipe:send{copies = {{sql = "COPY " .. parent .. " (id) FROM STDIN", buffer = parents},
                        {sql = "COPY " .. child .. " (id, parent_id) FROM STDIN", buffer = children}},
              after = function(conn)
                scans[#scans + 1] = conn:one("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = $1::regclass",
                                             parent).seq_scan
              end}
    parents:clear(); children:clear()
  end
  pipe:finish()
end
T.is(db.one("SELECT count(*) AS n FROM " .. child).n, 610, "every child row written")
-- (the view counts since the session last reported its statistics, which
-- can include a scan from before the batches, but never one per row)
local most = math.max(table.unpack(scans))
T.ok(#scans == 4 and most < 10, "no check scans the referenced table: each key is looked up in its index"
                                 .. " (seq scans seen: " .. table.concat(scans, ", ") .. ")")
db.exec("DROP TABLE " .. child)
db.exec("DROP TABLE " .. parent)

observer:close()
db.exec("DROP TABLE " .. tbl)
-- a pipeline dropped without finish() or <close>: its batch in flight is
-- rolled back when it is collected, and the main session is not left
-- inside a transaction that later statements would join and lose
do
  db.exec("CREATE TEMP TABLE IF NOT EXISTS dropped (x int)")
  local buf = db.buffer()
  buf:put(1)
  local p = db.pipeline{jobs = 1}
  p:send{copies = {{sql = "COPY dropped (x) FROM STDIN", buffer = buf}}}
  p = nil    -- luacheck: ignore
  collectgarbage(); collectgarbage()
  T.is(db.in_transaction(), false, "a dropped pipeline: the main session is out of its transaction once it is collected")
  db.exec("INSERT INTO dropped VALUES (2)")
  T.is(db.one("SELECT string_agg(x::text, ',') AS s FROM dropped").s, "2", "...its batch rolled back, a later insert kept")
  -- the engine is told, so that the script fails at its end instead of
  -- passing with that batch gone (tests/cli/52-pipeline-unfinished.t);
  -- asking resets it, so this file still ends with its own exit code
  local pipeline = require "ferry.pipeline"
  T.is(pipeline.unfinished(), true, "...and reported as unfinished when the script ends")
  T.is(pipeline.unfinished(), false, "...once")
end
-- a pipeline whose main-session writer is inside a transaction of the
-- script's (a db.transaction, or its own BEGIN) refuses to send: its batch
-- COMMIT committed the script's transaction, which a later error or
-- ROLLBACK then did not undo
do
  db.exec("CREATE TEMP TABLE IF NOT EXISTS in_tx (x int)")
  local buf = db.buffer()
  buf:put(1)
  local ok, e = pcall(db.transaction, function()
    db.exec("INSERT INTO in_tx VALUES (0)")
    local pipe <close> = db.pipeline{jobs = 1}
    pipe:send{copies = {{sql = "COPY in_tx (x) FROM STDIN", buffer = buf}}}
    pipe:finish()
    error("undo all")
  end)
  T.like(tostring(e), "14%-db%-pipeline%.t:%d+: pipe:send: the main connection is inside a transaction",
         "a pipeline inside db.transaction: send raises at its line")
  T.is(db.query("SELECT x FROM in_tx"), {}, "...nothing of the transaction committed")
  db.exec("BEGIN")
  db.exec("INSERT INTO in_tx VALUES (0)")
  ok = pcall(function()
    local pipe <close> = db.pipeline{jobs = 2}
    pipe:send{copies = {{sql = "COPY in_tx (x) FROM STDIN", buffer = buf}}}
  end)
  T.is({ok, (db.in_transaction())}, {false, true}, "inside the script's own BEGIN: refused, the script's transaction left open")
  db.exec("ROLLBACK")
  T.is(db.query("SELECT x FROM in_tx"), {}, "...and its ROLLBACK undoes its rows")
  -- a dry run refuses it too, so that it finds what the real run would
  -- fail on (it sends nothing either way)
  local dry <close> = db.pipeline{jobs = 1, dry_run = true}
  ok, e = pcall(db.transaction, function() dry:send{copies = {{sql = "COPY in_tx (x) FROM STDIN", buffer = buf}}} end)
  T.like(tostring(e), "14%-db%-pipeline%.t:%d+: pipe:send: the main connection is inside a transaction",
         "a dry-run pipeline inside db.transaction: refused as in a real run")
  dry:send{copies = {{sql = "COPY in_tx (x) FROM STDIN", buffer = buf}}}
  T.is(db.query("SELECT x FROM in_tx"), {}, "...outside one it sends nothing")
end
---------------------------------------------------------------- a batch's shape, checked at once
-- A batch or options not as documented are refused at the send (or the
-- db.pipeline call) that has them, before anything is sent, and in a dry
-- run too: a mistake that a real run would only meet at a batch's commit,
-- or not at all (a misspelt key, a single {sql =, buffer =} not in a list:
-- nothing written, while the stats count every row), is a run that looks
-- done and is not.
do
  db.exec("DROP TABLE IF EXISTS shape_t")
  db.exec("CREATE TABLE shape_t (x int)")
  local buf = db.buffer()
  buf:put(1)
  local SQL = "COPY shape_t (x) FROM STDIN"
  local function refused(pipe, batch)
    local ok, e = pcall(function() pipe:send(batch) end)
    return not ok and tostring(e) or "sent"
  end
  for _, dry in ipairs{false, true} do
    local mode = dry and "dry run" or "real run"
    local pipe <close> = db.pipeline{jobs = 2, dry_run = dry}
    T.like(refused(pipe, {copies = {sql = SQL, buffer = buf}}),
           "14%-db%-pipeline%.t:%d+: pipe:send: copies is a list of {sql =, buffer =} tables, one per COPY: "
           .. "write copies = {{sql = ..., buffer = ...}}$",
           mode .. ": copies = {sql =, buffer =} (not in a list) is refused, not sent as no COPY at all")
    T.like(refused(pipe, {copies = {{sql = SQL, buffer = "1\n"}}}),
           "pipe:send: copies%[1%]%.buffer must be a db%.buffer%(%), not a string$",
           mode .. ": a buffer that is not a db.buffer() is refused at send")
    T.like(refused(pipe, {copies = {{sql = SQL, buffer = buf}}, after = "UPDATE shape_t SET x = 2"}),
           "pipe:send: after must be a function %(conn%), not a string$",
           mode .. ": an after that is not a function is refused at send, not at the batch's commit")
    T.like(refused(pipe, {copies = {{sql = SQL, buffer = buf}}, positon = 7}),
           "pipe:send: unknown key 'positon' in the batch %(its keys are copies, after, position%)$",
           mode .. ": a misspelt key is refused (a position never saved, an after never run)")
    T.is(refused(pipe, {copies = {}, after = false}), "sent", mode .. ": after = false is no after, as nil is")
    pipe:finish()
  end
  T.is(db.one("SELECT count(*) AS n FROM shape_t").n, 0, "...and none of them wrote a row")
  local ok, e = pcall(function() db.pipeline(2) end)
  T.like(not ok and e or "", "^[^%[]*14%-db%-pipeline%.t:%d+: db%.pipeline: its options are a table "
         .. "{jobs =, dry_run =, checkpoint =}, not a number$",
         "db.pipeline(2): said at the calling line, not an index error in ferry's own db.lua")
  ok, e = pcall(function() db.pipeline{job = 2} end)
  T.like(not ok and e or "", "14%-db%-pipeline%.t:%d+: db%.pipeline: unknown option 'job' %(its options are jobs, dry_run, checkpoint%)$",
         "db.pipeline{job = 2}: a misspelt option is refused")
  ok, e = pcall(function() db.pipeline{dryrun = true} end)
  T.like(not ok and e or "", "unknown option 'dryrun'", "db.pipeline{dryrun = true}: refused, not a real run")
  local pipe <close> = db.pipeline()
  pipe:send{copies = {{sql = SQL, buffer = buf}}}
  pipe:finish()
  T.is(db.one("SELECT count(*) AS n FROM shape_t").n, 1, "db.pipeline() with no options still works")
  db.exec("DROP TABLE shape_t")
end

---------------------------------------------------------------- jobs is 1 to 100
-- jobs had no upper bound, while --jobs and db.prestart(n) stop at 100
-- (db.MAX_PRESTART, a server's default max_connections): db.pipeline{jobs
-- = 2000} went on to open sessions past what the server allows.  It is
-- refused at the call, naming it, before any session is opened.
do
  -- (sessions started since, not a count of all: a writer session an
  -- earlier case closed may still be ending when the count before is
  -- taken, and gone after -- seen once under ASan in a loaded full run)
  local since = db.one("SELECT clock_timestamp()::text AS t").t
  for _, bad in ipairs{101, 2000, 0, -1, math.maxinteger} do
    T.like(err_at(function() db.pipeline{jobs = bad} end),
           "^[^%[]*14%-db%-pipeline%.t:%d+: db%.pipeline: jobs must be a whole number from 1 to 100, not "
           .. tostring(bad):gsub("%-", "%%-") .. "$", "db.pipeline{jobs = " .. bad .. "} raises at the calling line")
  end
  T.is(db.one("SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' "
              .. "AND backend_start >= $1::timestamptz", since).n, 0,
       "...with no session opened")
  local pipe <close> = db.pipeline{jobs = 100, dry_run = true}
  T.is(db.MAX_PRESTART, 100, "100 writers (db.MAX_PRESTART, --jobs's bound) are taken")
  -- a float holding a whole number is that number, as db.array's n and
  -- copy_rows' n take it; 1.5 is not
  local opts = {jobs = 2.0, dry_run = true}
  local two <close> = db.pipeline(opts)
  T.is(math.type(opts.jobs), "float", "db.pipeline{jobs = 2.0} is taken, the caller's table left as it was")
  T.like(err_at(function() db.pipeline{jobs = 1.5} end),
         "14%-db%-pipeline%.t:%d+: db%.pipeline: jobs must be a whole number from 1 to 100, not 1%.5$",
         "db.pipeline{jobs = 1.5} is refused")
end
---------------------------------------------------------------- a position needs a checkpoint
-- A batch's position is saved by the pipeline's checkpoint; given to a
-- pipeline without one (checkpoint = ctx.checkpoint left out) it was
-- dropped without a word: the run looked resumable and an interrupted one
-- started over.  Refused at the send, in a dry run too, before anything is
-- sent; a pipeline without a checkpoint and batches without a position
-- still work.
do
  db.exec("CREATE TABLE nocp_t (x int)")
  local b = db.buffer()
  b:put(1)
  for _, dry in ipairs{false, true} do
    local mode = dry and "dry run" or "real run"
    local pipe <close> = db.pipeline{jobs = 2, dry_run = dry}
    T.like(err_at(function() pipe:send{copies = {{sql = "COPY nocp_t (x) FROM STDIN", buffer = b}}, position = 1} end),
           "^[^%[]*14%-db%-pipeline%.t:%d+: pipe:send: the batch has a position, but this db%.pipeline has no "
           .. "checkpoint to save it in %(db%.pipeline{checkpoint = ctx%.checkpoint, %.%.%.}%): it would never be "
           .. "saved, and an interrupted run would start over$",
           mode .. ": a position without a checkpoint is refused at the calling line")
    pipe:send{copies = {{sql = "COPY nocp_t (x) FROM STDIN", buffer = b}}}
    pipe:finish()
  end
  T.is(db.one("SELECT count(*) AS n FROM nocp_t").n, 1, "...nothing of the refused batch was written, the next one was")
  db.exec("DROP TABLE nocp_t")
end
---------------------------------------------------------------- a position no run could resume from
-- json.null, a NaN, a string cut inside a character: ctx.checkpoint.save
-- refuses them, but a real run's pipeline saves at the batch's commit --
-- so it sent the batch's COPY and raised at the line of the next send or
-- finish.  Refused at the send that gives it, as a dry run does, nothing
-- of that batch sent.
do
  db.exec("CREATE TABLE badpos_t (x int)")
  local b = db.buffer()
  b:put(1)
  local pipe <close> = db.pipeline{jobs = 2, checkpoint = ctx.checkpoint}
  for _, bad in ipairs{{json.null, "the position is json%.null: ", "json.null"},
                       {{a = 0/0}, "the position has no JSON form: ", "holding a NaN"},
                       {"\xC3", "the position has no JSON form: a string in it is not valid UTF%-8 ", "cut inside a character"}} do
    local line = debug.getinfo(1, "l").currentline + 1
    local e = err_at(function() pipe:send{copies = {{sql = "COPY badpos_t (x) FROM STDIN", buffer = b}}, position = bad[1]} end)
    T.like(e, "^[^%[]*14%-db%-pipeline%.t:" .. line .. ": ctx%.checkpoint%.save: " .. bad[2],
           "real run: a position " .. bad[3] .. " is refused at the send that gives it")
  end
  pipe:send{copies = {{sql = "COPY badpos_t (x) FROM STDIN", buffer = b}}}
  pipe:finish()
  T.is(db.one("SELECT count(*) AS n FROM badpos_t").n, 1, "...nothing of the refused batches was written, the next one was")
  db.exec("DROP TABLE badpos_t")
end
---------------------------------------------------------------- its methods
-- a pipeline has the methods lua-api.md documents, no more: ferry's own
-- helpers (commit, check_rights) and the module's functions (new,
-- unfinished -- which would roll back and forget another pipeline's
-- batches) are not methods a script can call by mistake
do
  local pipe <close> = db.pipeline{jobs = 1}
  local names = {}
  for _, name in ipairs{"send", "pump", "finish", "abort", "commit", "check_rights", "new", "unfinished"} do
    if type(pipe[name]) == "function" then names[#names + 1] = name end
  end
  T.is(table.concat(names, " "), "send pump finish abort", "a pipeline's methods: send, pump, finish, abort")
  local ok, err = pcall(function() pipe:commit() end)
  T.like(tostring(err), "attempt to call a nil value %(method 'commit'%)$", "pipe:commit() is no method (a guess at finish)")
  T.is(ok, false, "...it raises")
end

return T.done()
