#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- A db.buffer() past 16 MB of rows keeps the older ones in a temporary
-- file (Batch 4's batch is whole leads: one lead of a million audits is
-- one batch, whose rows were all held in memory, twice -- the buffer, and
-- libpq's copy of it handed over without waiting).  Its rows, count and
-- bytes are those of a buffer that did not spill; sending it waits until
-- the server has taken them; and a pipeline commits the batches in flight
-- before it sends such a batch, since one of them may hold a lock its rows
-- wait for (before: a run that never ended).

local tbl = "ferry_lua_spill_" .. db.backend_pid()
db.exec("SET client_min_messages = warning")
db.exec("DROP TABLE IF EXISTS " .. tbl)
db.exec("CREATE TABLE " .. tbl .. " (id int PRIMARY KEY, v text)")
local COPY = "COPY " .. tbl .. " (id, v) FROM STDIN"
local observer = db.connect()
local function digest()
  return observer:one("SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS d FROM " .. tbl).d
end
-- 20,000 rows of 1.5 KB of COPY text: 30 MB, of which 16 MB at a time spill
local N = 20000
local function row(i) return i, string.format("%05d", i) .. string.rep("x\t\\y", 250) end
local want = observer:one("SELECT " .. N .. " || ' ' || md5(string_agg(g || ':' || lpad(g::text, 5, '0') || repeat(E'x\\t\\\\y', 250), ',' ORDER BY g)) AS d FROM generate_series(1, " .. N .. ") g").d

local buf = db.buffer()
for i = 1, 100 do buf:put(row(i)) end
T.is(buf:spilled(), false, "a buffer of 100 rows stays in memory")
for i = 101, N do buf:put(row(i)) end
T.is(buf:spilled(), true, "one of 30 MB has spilled to its temporary file")
T.is(buf:count(), N, "... count() counts every row")
local bytes = 0        -- each row: the id, a tab, 5 digits, 250 x \t \\ y escaped (6 bytes), a newline
for i = 1, N do bytes = bytes + #tostring(i) + 1 + 5 + 250 * 6 + 1 end
T.is(buf:bytes(), bytes, "... bytes() every byte, in the file and in memory")

-- sent by a writer of its own
do
  local w <close> = db.connect():copy(COPY)
  w:put_buffer(buf)
  w:finish()
end
T.is(digest(), want, "put_buffer sends every row, in order, byte for byte")
db.exec("TRUNCATE " .. tbl)

-- sent twice (the buffer stays as it is), then cleared and reused
do
  local w <close> = db.connect():copy("COPY " .. tbl .. " (id, v) FROM STDIN")
  w:put_buffer(buf)
  w:abort()
end
buf:clear()
T.is(buf:spilled(), false, "clear() empties the file too")
T.is(buf:count() .. " " .. buf:bytes(), "0 0", "... and the counts")
for i = 1, N do buf:put(row(i)) end
T.is(buf:spilled(), true, "refilled, it spills again")

-- a pipeline: batch 1 (id 1) is in flight on writer 1 when batch 2, of
-- 30 MB, also holding id 1, goes to writer 2.  Its server waits for batch
-- 1 to end before it can tell whether id 1 is a duplicate; waiting for
-- that server to take the batch before committing batch 1 was a wait
-- without end.  Batch 1 commits first: batch 2 fails on the duplicate.
local one = db.buffer()
one:put(1, "first")
local ok, err = pcall(function()
  local pipe <close> = db.pipeline{jobs = 2}
  pipe:send{copies = {{sql = COPY, buffer = one}}}
  pipe:send{copies = {{sql = COPY, buffer = buf}}}
  pipe:finish()
end)
T.is(ok, false, "a spilled batch that meets the batch in flight before it: an error, not a wait without end")
T.like(tostring(err), "duplicate key value violates unique constraint", "... the duplicate, as without spilling")
T.is(observer:one("SELECT string_agg(v, ',') AS v FROM " .. tbl).v, "first", "batch 1 committed, batch 2 rolled back")

-- the same batches in order: every row written, as one transaction each
db.exec("TRUNCATE " .. tbl)
local small = db.buffer()
small:put(N + 1, "after")
do
  local pipe <close> = db.pipeline{jobs = 2}
  pipe:send{copies = {{sql = COPY, buffer = buf}}}
  buf:clear()
  pipe:send{copies = {{sql = COPY, buffer = small}}}
  pipe:finish()
end
T.is(observer:one("SELECT count(*) AS n FROM " .. tbl).n, N + 1, "a pipeline writes a spilled batch and the next one")

db.exec("DROP TABLE " .. tbl)
return T.done()
