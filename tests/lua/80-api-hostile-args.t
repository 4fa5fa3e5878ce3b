#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
-- ferry: allow-shell
local T = require("ferry.testing").tap()
-- Hostile arguments and re-entrancy across the Lua API: every function the
-- modules register called with a pool of odd values (no crash, no
-- sanitizer or valgrind report, a Lua error naming what is wrong), and
-- metamethods, finalizers and coroutines that use the same connection,
-- COPY or state while a binding is in the middle of its work.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end
local function works(conn, name)
  T.is(err_of(function() assert(conn:one("SELECT 41 + 1 AS x").x == 42) end), nil, name)
end

local other = db.connect()
other:exec_script("DROP TABLE IF EXISTS ferry_hostile_t; CREATE TABLE ferry_hostile_t (a text, b int)")

---------------------------------------------------------------- w:abort(reason)
-- The reason goes to the server in the COPY's CopyFail message, which the
-- server takes up to 10,000 bytes of: a longer one made it end the session
-- ("invalid message length"), abort() returned as if all was well and the
-- next statement found the connection lost.  It is cut (at a character).
do
  local w = other:copy("COPY ferry_hostile_t FROM STDIN")
  w:put("x", 1)
  T.is(err_of(w.abort, w, string.rep("é", 20000)), nil, "abort with a 40,000-byte reason returns")
  works(other, "...and the session is still there")
  other:exec("BEGIN")
  w = other:copy("COPY ferry_hostile_t FROM STDIN")
  w:abort(string.rep("r", 1 << 20))
  T.like(err_of(other.one, other, "SELECT 1 AS x"), "^query failed: current transaction is aborted",
         "abort with a 1 MB reason inside a transaction: the transaction failed, the session lives")
  other:exec("ROLLBACK")
  works(other, "...and works after the ROLLBACK")
  w = other:copy("COPY ferry_hostile_t FROM STDIN")
  T.is(err_of(w.abort, w, "a\0b"), nil, "abort with a NUL in the reason")
  w = other:copy("COPY ferry_hostile_t FROM STDIN")
  T.is(err_of(w.abort, w, "\xff\xfe"), nil, "abort with a reason that is not UTF-8")
  w = other:copy("COPY ferry_hostile_t FROM STDIN")
  T.like(err_of(function() w:abort({}) end), ":%d+: bad argument #1 to 'abort' %(string expected, got table%)$",
         "abort with a table for the reason")
  w:abort()
  works(other, "the session works after them all")
  T.is(other:one("SELECT count(*) AS n FROM ferry_hostile_t").n, 0, "nothing was stored")
end

---------------------------------------------------------------- json depth setters
-- More arguments than the setter takes were refused by cjson's own check,
-- under ferry's wrapper, which could not name the function.
T.like(err_of(function() json.decode_max_depth(100, 1) end),
       "^tests/lua/80%-api%-hostile%-args%.t:%d+: bad argument #2 to 'decode_max_depth' %(found too many arguments%)$",
       "json.decode_max_depth(n, extra)")
T.is(err_of(json.encode_max_depth, 100, nil),
     "bad argument #2 to 'json.encode_max_depth' (found too many arguments)", "json.encode_max_depth(n, nil)")
T.is(err_of(json.encode_max_depth, nil, 3),
     "bad argument #2 to 'json.encode_max_depth' (found too many arguments)", "json.encode_max_depth(nil, n)")
local inst = json.new()
T.like(err_of(function() inst.decode_max_depth(5, 6) end),
       ":%d+: bad argument #2 to 'decode_max_depth' %(found too many arguments%)$",
       "an instance's decode_max_depth(n, extra)")
T.is(json.decode_max_depth(), 20000, "json's depths unchanged by the refused calls")
T.is(json.encode_max_depth(), 20000, "...both")

---------------------------------------------------------------- the sweep
-- Every function of the modules (and of db.core and ferry.sys, which a
-- script can require; ferry.jsontext; ctx's, its checkpoint's in memory
-- under ferry exec) and every method of a connection, a COPY writer, a
-- buffer, a rows() closer and a progress bar: called with no argument, with
-- each value of the pool first, after a plausible first argument, and six
-- times over.  Each returns or raises a Lua error (a string, or ferry's
-- error object with a message); an argument error names its function.  Not
-- called: what writes on stdout (log.info, log.verbose, sys.write_stdout,
-- sys.divert_stdout) or stderr (log.warn and log.error: below, in a
-- ferry of their own), sys.mkdir, and what changes the state the rest of
-- the run works in (db.core.set_read_only; db's private _functions, the
-- engine's, such as ferry validate's hold on the main session; json's
-- settings, tried on an instance of json.new() instead).
local core = require "db.core"
local sys = require "ferry.sys"
local closed_conn = db.connect()
closed_conn:close()
local closed_copy = other:copy("COPY ferry_hostile_t FROM STDIN")
closed_copy:abort()
local it, st, ctl, done_closer = other:rows("SELECT 1")
for _ in it, st, ctl, done_closer do end
local cyclic = {}
cyclic[1], cyclic.self = cyclic, cyclic
local deep = {}
do local t = deep for _ = 1, 200 do t[1] = {} t = t[1] end end
local raising = setmetatable({}, {
  __index = function() error("__index ran") end, __newindex = function() error("__newindex ran") end,
  __len = function() error("__len ran") end, __tostring = function() error("__tostring ran") end,
  __pairs = function() error("__pairs ran") end, __eq = function() error("__eq ran") end,
  __lt = function() error("__lt ran") end, __le = function() error("__le ran") end,
  __concat = function() error("__concat ran") end, __call = function() error("__call ran") end})
local suspended = coroutine.create(function() coroutine.yield() end)
coroutine.resume(suspended)
local dead = coroutine.wrap(function() end)
local pool = {
  {"nil", nil}, {"true", true}, {"false", false}, {"0", 0}, {"-1", -1}, {"mininteger", math.mininteger},
  {"maxinteger", math.maxinteger}, {"2^63", 2^63}, {"NaN", 0/0}, {"inf", math.huge}, {"-inf", -math.huge},
  {"-0.0", -0.0}, {"1.5", 1.5}, {"\"\"", ""}, {"1 MB", string.rep(" ", 1 << 20) .. "x"}, {"NUL", "a\0b"},
  {"not UTF-8", "\xff\xfe\xc3"}, {"{}", {}}, {"deep", deep}, {"cyclic", cyclic}, {"raising", raising},
  {"function", dead}, {"coroutine", suspended}, {"closed conn", closed_conn}, {"closed COPY", closed_copy},
  {"finished rows", done_closer}, {"db.NULL", db.NULL}, {"json.null", json.null}, {"file", io.stderr},
}
local firsts = {{}, {"SELECT $1::text"}, {"COPY ferry_hostile_t FROM STDIN"}, {{"a"}}, {"x", 1}}

local unclean, unnamed, internal, calls = {}, {}, {}, 0
local function record(list, what, e)
  if #list < 5 then list[#list + 1] = what .. ": " .. tostring(e):sub(1, 200) end
end
-- (the main session and `other` back to idle, out of any transaction)
local function settle()
  for _, conn in ipairs{db.main(), other} do
    if conn and core.busy_with(conn) then db._release(conn) end
    local ok, open = pcall(conn.in_transaction, conn)
    if ok and open then conn:exec("ROLLBACK") end
  end
end
local function sweep(name, f, self, starts)
  local function call(n, ...)
    calls = calls + 1
    local args = table.pack(...)
    local ok, e
    if self then ok, e = pcall(f, self(), table.unpack(args, 1, n)) else ok, e = pcall(f, table.unpack(args, 1, n)) end
    settle()
    if ok then return end
    if type(e) == "table" then e = rawget(e, "message") end
    if type(e) ~= "string" then record(unclean, name, e)
    elseif e:find("to '?'", 1, true) then record(unnamed, name, e)
    elseif e:find("[ferry]/", 1, true) or e:find("attempt to ", 1, true) or e:find("table index is ", 1, true) then
      -- (an error met inside ferry's own Lua, which says nothing of the argument)
      if not e:find("attempt to use a closed connection", 1, true) and not e:find("attempt to yield", 1, true) then
        record(internal, name, e)
      end
    end
  end
  call(0)
  for _, first in ipairs(starts or firsts) do
    for _, v in ipairs(pool) do
      local args = {table.unpack(first)}
      args[#first + 1] = v[2]
      call(#first + 1, table.unpack(args, 1, #first + 1))
    end
  end
  for _, v in ipairs(pool) do call(6, v[2], v[2], v[2], v[2], v[2], v[2]) end
end

local SKIP = {["log.info"] = true, ["log.verbose"] = true, ["log.warn"] = true, ["log.error"] = true, ["ferry.sys.write_stdout"] = true,
              ["ferry.sys.divert_stdout"] = true, ["ferry.sys.mkdir"] = true, ["db.core.set_read_only"] = true}
local JSON_SETTINGS = {decode_invalid_numbers = true, decode_max_depth = true, encode_invalid_numbers = true,
                       encode_keep_buffer = true, encode_max_depth = true, encode_number_precision = true,
                       encode_sparse_array = true}
local function functions_of(t)
  local names = {}
  for k, v in pairs(t) do if type(v) == "function" then names[#names + 1] = k end end
  table.sort(names)
  return names
end
local modules = {{"db", db}, {"db.core", core}, {"json", json}, {"uuid", uuid}, {"stats", stats}, {"log", log},
                 {"progress", progress}, {"ferry.sys", sys}, {"coroutine", coroutine},
                 {"ferry.jsontext", require "ferry.jsontext"}, {"ctx", ctx}, {"ctx.checkpoint", ctx.checkpoint}}
local swept = 0
for _, m in ipairs(modules) do
  for _, k in ipairs(functions_of(m[2])) do
    local full = m[1] .. "." .. k
    if not SKIP[full] and not (m[1] == "json" and JSON_SETTINGS[k]) and not (m[1] == "db" and k:find("^_")) then
      sweep(full, m[2][k])
      swept = swept + 1
    end
  end
end
-- methods, called as obj:name(...) (so that Lua names them)
local function method_caller(k)
  return load("return function(o, ...) return o:" .. k .. "(...) end")()
end
local function sweep_methods(label, sample, fresh)
  local mt = getmetatable(sample)
  local index = mt and type(mt.__index) == "table" and mt.__index or sample
  for _, k in ipairs(functions_of(index)) do
    sweep(label .. ":" .. k, method_caller(k), fresh, {{}})
    swept = swept + 1
  end
end
local conn
local function live()
  if not conn or not pcall(conn.exec, conn, "SELECT 1") then conn = db.connect() end
  if core.busy_with(conn) then db._release(conn) end
  if conn:in_transaction() then conn:exec("ROLLBACK") end
  return conn
end
sweep_methods("conn", live(), live)
sweep_methods("closed conn", closed_conn, function() return closed_conn end)
sweep_methods("buffer", db.buffer(), db.buffer)
local writer
sweep_methods("COPY", closed_copy, function()
  -- (the writer of the last call while it is still open)
  if not (writer and conn and core.busy_with(conn) == "a COPY" and pcall(writer.put, writer, nil, nil)) then
    writer = live():copy("COPY ferry_hostile_t FROM STDIN")
  end
  return writer
end)
if writer then writer:abort() end
sweep_methods("aborted COPY", closed_copy, function() return closed_copy end)
sweep_methods("rows closer", done_closer, function() local _, _, _, c = live():rows("SELECT 1") return c end)
local bar = progress.new("hostile", 10)
sweep_methods("progress", bar, function() return bar end)
-- and a method called with a dot (conn.rows(sql) for conn:rows(sql)), or
-- on another object: said as a bad argument #1, as the C methods say it
local pipe = db.pipeline{jobs = 1}
for label, sample in pairs{conn = conn, COPY = closed_copy, buffer = db.buffer(), ["rows closer"] = done_closer,
                           progress = bar, pipeline = pipe} do
  local index = getmetatable(sample).__index
  for _, k in ipairs(functions_of(index)) do
    local f = index[k]
    for _, v in ipairs(pool) do
      for _, args in ipairs{{}, {"SELECT 1"}} do
        calls = calls + 1
        local ok, e = pcall(f, v[2], table.unpack(args))
        settle()
        if not ok then
          if type(e) == "table" then e = rawget(e, "message") end
          local what = label .. "." .. k .. "(" .. v[1] .. ")"
          if type(e) ~= "string" then record(unclean, what, e)
          elseif e:find("[ferry]/", 1, true) or e:find("attempt to ", 1, true) or e:find("table index is ", 1, true) then
            if not e:find("attempt to use a closed connection", 1, true) then record(internal, what, e) end
          end
        end
      end
    end
    swept = swept + 1
  end
end
sweep_methods("json.new()", json.new(), json.new)
T.ok(swept >= 100 and calls >= 100 * 150, "the sweep called " .. swept .. " functions and methods (" .. calls .. " calls)")
T.is(unclean, {}, "every error raised is a string or an error object with a string message")
T.is(unnamed, {}, "every argument error names its function")
T.is(internal, {}, "no error is one met inside ferry's own Lua (an index of nil, a call of nil, ...)")
works(db.main(), "the main session works after the sweep")
works(live(), "a session of the sweep works after it")
works(other, "the other session works after it")

-- The methods written in Lua (rows and copy, which note what holds the
-- session; transaction, copy_rows, share_snapshot) called with a dot
-- raised errors from inside db.lua: "[ferry]/db.lua:58: table index is
-- nil" for conn.rows(), "attempt to index a nil value (local 'conn')" for
-- conn.transaction(nil, fn).  Now as the C methods say it (conn.exec(sql)).
local HERE = "^tests/lua/80%-api%-hostile%-args%.t:%d+: "
for _, case in ipairs{
  {"rows", function() local r = other.rows() return r end, "nil"},
  {"rows", function() local r = other.rows("SELECT 1") return r end, "string"},
  {"copy", function() local r = other.copy() return r end, "nil"},
  {"copy", function() local r = other.copy(0/0) return r end, "number"},
  {"transaction", function() local r = other.transaction(function() end) return r end, "function"},
  {"transaction", function() local r = other.transaction(nil, function() end) return r end, "nil"},
  {"copy_rows", function() local r = other.copy_rows("COPY ferry_hostile_t FROM STDIN", {}) return r end, "string"},
  {"share_snapshot", function() local r = other.share_snapshot("x", "y") return r end, "string"},
  {"share_snapshot", function() local r = other.share_snapshot(closed_copy, other) return r end, "ferry.copy"},
  {"exec", function() local r = other.exec("SELECT 1") return r end, "string"},
} do
  T.like(err_of(case[2]), HERE .. "bad argument #1 to '" .. case[1] .. "' %(ferry%.conn expected, got " .. case[3] .. "%)$",
         "conn." .. case[1] .. "(...) with a " .. case[3] .. " for the connection")
end
-- so did a db.pipeline's ("attempt to index a nil value (local 'self')",
-- or pipe.send(batch) saying the batch was nil)
for _, name in ipairs{"send", "pump", "finish", "abort", "__close"} do
  T.like(err_of(function() local r = pipe[name]({copies = {}}) return r end),
         HERE .. "bad argument #1 to '" .. name .. "' %(db%.pipeline expected, got table%)$",
         "pipe." .. name .. "(...) with a table for the pipeline")
end
T.like(err_of(function() local r = pipe.finish() return r end),
       HERE .. "bad argument #1 to 'finish' %(db%.pipeline expected, got nil%)$", "pipe.finish()")
pipe:finish()
works(db.main(), "the main session, the pipeline's writer, works after them")
works(other, "the session works after them")

-- log.warn and log.error (whose formatting log.info and log.verbose share)
-- write on stderr: swept by a ferry of their own, its stderr kept apart.
do
  local script, errfile = os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write([[
local cyclic = {} cyclic[1] = cyclic
local raising = setmetatable({}, {__tostring = function() error("__tostring ran") end})
local closing = setmetatable({}, {__tostring = function() log.warn("inner %s", "warn") return "outer" end})
local pool = {nil, true, false, 0, -1, math.mininteger, math.maxinteger, 2^63, 0/0, math.huge, -0.0, "", "%", "%d",
              "%s %s %s", "%q", "a\0b", "\xff\xfe", string.rep("y", 100000), {}, cyclic, raising, closing,
              print, coroutine.create(print), io.stderr, db.NULL, json.null}
local n, unclean = 0, 0
for _, f in ipairs{log.warn, log.error} do
  for i = 1, #pool + 1 do
    for _, args in ipairs{{pool[i]}, {"%s", pool[i]}, {"x %d", pool[i]}, {pool[i], pool[i], pool[i]}} do
      n = n + 1
      local ok, e = pcall(f, table.unpack(args, 1, 3))
      if not ok and type(e) ~= "string" then unclean = unclean + 1 end
    end
  end
end
print(n, unclean)
]])
  f:close()
  local ok_run, how, code = os.execute(string.format("%s exec %s >%s.out 2>%s", os.getenv("FERRY") or "ferry",
                                                     script, errfile, errfile))
  local got = io.open(errfile .. ".out"):read("a")
  T.is({ok_run, how, code, got}, {true, "exit", 0, "232\t0\n"}, "log.warn and log.error with the pool: clean errors, exit 0")
  if not ok_run then
    local e = io.open(errfile):read("a")
    T.diag(e:sub(-2000))
  end
  os.remove(script) os.remove(errfile) os.remove(errfile .. ".out")
end

---------------------------------------------------------------- re-entrancy: metamethods and coroutines
local BUSY_COPY = "connection busy: a COPY is in progress on it (use another connection from db.connect())"
local BUSY_ROWS = "connection busy: a rows() iteration is in progress on it (use another connection from db.connect())"
local function count(conn) return conn:one("SELECT count(*) AS n FROM ferry_hostile_t").n end
other:exec("TRUNCATE ferry_hostile_t")

-- Values are never asked for their text through a metamethod: a table
-- whose __tostring would close the COPY or the session is refused as a
-- table, and nothing of it runs.
do
  local ran = false
  local closer = setmetatable({}, {__tostring = function() ran = true; other:close() return "1" end,
                                   __index = function() ran = true end, __len = function() ran = true return 1 end})
  T.is(err_of(other.exec, other, "SELECT $1::text", closer),
       "parameter $1: a table is not a SQL value (encode tables with json.encode or db.array)",
       "a parameter whose __tostring closes the session: refused as a table")
  local w = other:copy("COPY ferry_hostile_t FROM STDIN")
  local aborter = setmetatable({}, {__tostring = function() ran = true; w:abort() return "1" end})
  T.is(err_of(w.put, w, "a", aborter), "COPY column 2: a table is not a SQL value",
       "a COPY value whose __tostring aborts the COPY: refused as a table")
  local buf = db.buffer()
  T.is(err_of(buf.put, buf, aborter), "COPY column 1: a table is not a SQL value", "...and in a db.buffer()")
  w:put("b", 2)
  T.is(w:finish(), 1, "the COPY goes on: the row after the refused one is stored")
  T.is(ran, false, "no metamethod of those values ran")
  T.is(json.encode(setmetatable({1, 2}, {__index = function() error("__index ran") end,
                                         __len = function() error("__len ran") end,
                                         __pairs = function() error("__pairs ran") end})), "[1,2]",
       "json.encode reads a table raw: none of its metamethods runs")
  other:exec("TRUNCATE ferry_hostile_t")
end

-- copy_rows reads the rows (a table the script gives) while its COPY is
-- open: an __index that yields leaves the COPY open on a suspended
-- coroutine.  The session is busy meanwhile; closing the coroutine, or
-- dropping it to the collector, aborts the COPY (nothing stored) and
-- frees the session; a session closed meanwhile is said at the resume.
local function yielding_rows()
  local reads = 0
  return setmetatable({}, {__len = function() return 3 end, __index = function(_, i)
    reads = reads + 1
    if reads == 5 then coroutine.yield("mid-COPY") end   -- (the second pass's second row)
    return {"r" .. i, i}
  end})
end
do
  local co = coroutine.create(function() return other:copy_rows("COPY ferry_hostile_t FROM STDIN", yielding_rows()) end)
  T.is({coroutine.resume(co)}, {true, "mid-COPY"}, "copy_rows suspended by a yield in its rows' __index")
  T.is(err_of(other.one, other, "SELECT 1 AS x"), BUSY_COPY, "the session is busy with that COPY")
  T.is({coroutine.close(co)}, {true}, "the coroutine closed")
  works(other, "...which aborted the COPY: the session works")
  T.is(count(other), 0, "...and nothing was stored")
  co = coroutine.create(function() return other:copy_rows("COPY ferry_hostile_t FROM STDIN", yielding_rows()) end)
  coroutine.resume(co)
  co = nil
  collectgarbage() collectgarbage()
  works(other, "a coroutine suspended mid-COPY and collected: the session works")
  T.is(count(other), 0, "...nothing stored")
  local c = db.connect()
  co = coroutine.create(function() return c:copy_rows("COPY ferry_hostile_t FROM STDIN", yielding_rows()) end)
  coroutine.resume(co)
  c:close()
  local ok, e = coroutine.resume(co)
  T.is({ok, tostring(e)}, {false, "COPY's connection is closed"},
       "the session closed under a suspended copy_rows: the resume says so")
  T.is(count(other), 0, "...nothing stored")
  -- the same with a rows() loop
  local wrap = coroutine.wrap(function() for r in other:rows("SELECT g FROM generate_series(1, 5) g") do coroutine.yield(r.g) end end)
  T.is({wrap(), wrap()}, {1, 2}, "a rows() loop suspended in a coroutine")
  T.is(err_of(other.one, other, "SELECT 1 AS x"), BUSY_ROWS, "the session is busy with it")
  wrap = nil
  collectgarbage() collectgarbage()
  works(other, "...collected with its coroutine: the session works")
  co = coroutine.create(function() for r in other:rows("SELECT g FROM generate_series(1, 5) g") do coroutine.yield(r.g) end end)
  coroutine.resume(co)
  T.is({coroutine.close(co)}, {true}, "a coroutine suspended in a rows() loop closed")
  works(other, "...the loop ended with it: the session works")
  -- a transaction suspended in a coroutine, closed: rolled back
  co = coroutine.create(function()
    return other:transaction(function() other:exec("INSERT INTO ferry_hostile_t VALUES ('t', 1)") coroutine.yield() end)
  end)
  coroutine.resume(co)
  T.is(other:in_transaction(), true, "a transaction suspended in a coroutine is open")
  T.is({coroutine.close(co)}, {true}, "the coroutine closed")
  T.is({other:in_transaction()}, {false, false}, "...rolled the transaction back")
  T.is(count(other), 0, "...its row with it")
  -- fn closing its own session
  c = db.connect()
  T.like(err_of(function() return c:transaction(function() c:close() end) end),
         "transaction: fn closed the session itself %(conn:close%(%) inside its transaction%)",
         "a transaction whose fn closes its session: a clean error (said as that)")
end

-- stats.error's key and message are read with tostring, which runs their
-- __tostring: one that resets the stats or adds an error meanwhile.
do
  stats.reset()
  stats.max_errors(-1)
  local key = setmetatable({}, {__tostring = function() stats.reset() stats.error("inner", "first") return "k" end})
  stats.error(key, "m")
  T.is(stats.errors(), {{key = "inner", message = "first"}, {key = "k", message = "m"}},
       "stats.error with a key whose __tostring resets the stats and records another error")
  T.is(stats.get("errors"), 2, "...both counted")
  stats.reset()
end

---------------------------------------------------------------- re-entrancy: finalizers
-- A finalizer that re-arms itself, with the collector as eager as it goes,
-- runs inside the bindings at every allocation -- building parameters, a
-- row, a COPY row's text -- and there closes the session, ends the COPY or
-- the rows() loop, or uses the same session.  Each binding then raises one
-- of the errors below (or finishes), nothing leaks or is read after it is
-- freed (make asan, make valgrind), and the session works after it or is
-- closed.
do
  local S = {}
  local action
  local rearm, fired, seen, any = {}, 0, {}, 0
  rearm.__gc = function()
    any = any + 1
    if action then fired = fired + 1; pcall(action) end
    setmetatable({}, rearm)
  end
  local actions = {
    ["close the session"] = function() S.conn:close() end,
    ["a query on it"] = function() S.conn:exec("SELECT 1") end,
    ["a COPY on it"] = function() S.held = S.conn:copy("COPY ferry_hostile_t FROM STDIN") end,
    ["a rows() loop on it"] = function() S.held = S.conn:rows("SELECT 1") end,
    ["finish the COPY"] = function() if S.w then S.w:finish() end end,
    ["abort the COPY"] = function() if S.w then S.w:abort() end end,
    ["put into the COPY"] = function() if S.w then S.w:put(0.5, 1) end end,
    ["clear the buffer"] = function() if S.buf then S.buf:clear() end end,
    ["close the rows() loop"] = function() if S.closer then S.closer:close() end end,
    ["read the rows() loop"] = function() if S.it then S.it() end end,
    ["collect"] = function() collectgarbage() end,
  }
  local ops = {
    params = function() S.conn:exec("SELECT $1::float8, $2::float8, $3::text, $4::int", 1.25, 2.5, "x", 7) end,
    query = function()
      local r = S.conn:query("SELECT g, g::float8 / 3 AS f, repeat('z', 30) AS s FROM generate_series(1, 100) g")
      assert(#r == 100 and r[100].s == string.rep("z", 30) and r[100].g == 100)
    end,
    rows = function()
      local it, s, c, closer = S.conn:rows("SELECT g, g::float8 / 7 AS f, repeat('q', 40) AS s FROM generate_series(1, 100) g")
      S.it, S.closer = it, closer
      for row in it, s, c, closer do assert(row.s == string.rep("q", 40)) end
    end,
    copy = function()
      S.w = S.conn:copy("COPY ferry_hostile_t FROM STDIN")
      for i = 1, 100 do S.w:put(i / 3, i) end
      S.buf = db.buffer()
      for i = 1, 30 do S.buf:put(i / 7, i) end
      S.w:put_buffer(S.buf)
      S.w:end_data()
      S.w:finish()
    end,
  }
  local expected = {
    "attempt to use a closed connection", "COPY's connection is closed", "COPY is finished or aborted",
    "COPY data is already ended (call finish)", "this rows() iteration's connection is closed",
    BUSY_COPY, BUSY_ROWS,
  }
  local unexpected, broken, runs = {}, {}, 0
  collectgarbage("incremental", 4, 1000)
  -- (until the finalizers run: from then on each one arms the next, for
  -- the rest of the block)
  for _ = 1, 30 do setmetatable({}, rearm) end
  for _ = 1, 1000 do
    if any > 100 then break end
    local t = {}
    for i = 1, 1000 do t[i] = {} end
  end
  for _, op in ipairs{"params", "query", "rows", "copy"} do
    for an, a in pairs(actions) do
      do
        runs = runs + 1
        S = {conn = db.connect()}
        action = a
        local ok, e = pcall(ops[op])
        action = nil
        if not ok then
          e = tostring(type(e) == "table" and e.message or e):gsub("^[^:]*:%d+: ", "")
          local known = false
          for _, m in ipairs(expected) do known = known or e == m end
          seen[e] = true
          if not known and #unexpected < 5 then unexpected[#unexpected + 1] = op .. " / " .. an .. ": " .. e end
        end
        if S.w then pcall(S.w.abort, S.w) end
        if S.closer then pcall(S.closer.close, S.closer) end
        if type(S.held) == "userdata" then pcall(S.held.abort, S.held) end
        if type(S.held) == "function" then S.held = nil; collectgarbage() end
        local ok2, e2 = pcall(S.conn.one, S.conn, "SELECT 42 AS x")
        if not (ok2 and e2.x == 42) and not tostring(e2):find("attempt to use a closed connection", 1, true) then
          if #broken < 5 then broken[#broken + 1] = op .. " / " .. an .. ": " .. tostring(e2) end
        end
        pcall(S.conn.close, S.conn)
      end
    end
  end
  rearm.__gc = nil
  collectgarbage("incremental", 200, 100)
  collectgarbage()
  T.ok(fired > 1000, "the finalizer ran inside the bindings (" .. fired .. " times in " .. runs .. " runs)")
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  T.ok(n >= 3, "...and made them raise (" .. n .. " different errors)")
  T.is(unexpected, {}, "...only the expected errors")
  T.is(broken, {}, "...and each session works after it, or is closed")
end
works(db.main(), "the main session works at the end")
T.done()
