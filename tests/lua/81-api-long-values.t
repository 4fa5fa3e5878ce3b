#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
-- ferry: allow-shell
local T = require("ferry.testing").tap()
local sys = require "ferry.sys"
-- Values a script gives, quoted in an error, are cut (60 characters, at a
-- character, then "..."): a 1 MB value made a 1 MB error line.  ferry's own
-- code that runs after a script does not use what the script replaced in
-- the standard library.  A transaction whose fn closed its own session,
-- and a batch's after that raised a nil error, are said as that.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end
local big = string.rep("é", 1 << 19)                 -- 1 MB
local cut = string.rep("é", 60) .. "..."
local loud = setmetatable({}, {__tostring = function() error("__tostring ran") end})

---------------------------------------------------------------- item 1: values cut
T.is(err_of(json.encode_keep_buffer, big),
     "bad argument #1 to 'json.encode_keep_buffer' (invalid option '" .. cut .. "')",
     "cjson option setter: a 1 MB option is cut")
T.is(err_of(function() json.encode_invalid_numbers("x" .. big) end),
     "tests/lua/81-api-long-values.t:" .. (debug.getinfo(1, "l").currentline - 1)
     .. ": bad argument #1 to 'encode_invalid_numbers' (invalid option 'x" .. string.rep("é", 59) .. "...')",
       "...called directly, the line and name as cjson gives them")
local e = err_of(function() json.encode_invalid_numbers("x" .. big) end)
T.is(#e < 300, true, "...and short (" .. #e .. " bytes)")
T.like(err_of(json.encode_keep_buffer, "nope"), "%(invalid option 'nope'%)$", "a short invalid option is shown whole")
T.is(err_of(json.encode_keep_buffer, "on"), nil, "a valid option still works")
json.encode_keep_buffer(true)
T.is(err_of(db.arrays, setmetatable({}, {__len = function() return big end}), 1),
     "db.arrays: #rows must be a whole number >= 0, not " .. cut, "db.arrays: a 1 MB #rows is cut")
T.is(err_of(db.arrays, setmetatable({}, {__len = function() return loud end}), 1),
     "db.arrays: #rows must be a whole number >= 0, not a table", "...a table's __tostring is not run")
T.is(err_of(json.object, {big, big}),
     "bad argument #1 to 'json.object' (key 2, \"" .. cut .. "\", is listed before: a JSON object has each key once)",
     "json.object: a 1 MB repeated key is cut")
T.like(err_of(db.copy_rows, "COPY x FROM STDIN", {{n = big}}),
       "^copy_rows: row 1 has n = " .. cut:gsub("%.", "%%.") .. ": a row's n",
       "copy_rows: a 1 MB n is cut")
T.is(err_of(db.pipeline, {[big] = 1}):find(cut, 1, true) ~= nil and #err_of(db.pipeline, {[big] = 1}) < 300, true,
     "db.pipeline: a 1 MB unknown option is cut")

---------------------------------------------------------------- item 3: table.sort replaced
do
  local real_sort = table.sort
  table.sort = function() error("the script's table.sort") end
  local ok, names = pcall(sys.listdir, "tests/lua")
  table.sort = real_sort
  T.is(ok, true, "sys.listdir does not use the script's table.sort")
  T.is(ok and names[1], "10-db-query.t", "...and its names are sorted")
end

---------------------------------------------------------------- item 4: fn closes its session
do
  local c = db.connect()
  T.like(err_of(function() c:transaction(function() c:close() end) end),
         "^tests/lua/81%-api%-long%-values%.t:%d+: transaction: fn closed the session itself",
         "transaction: fn that closes its own connection is named at the script's line")
  local c2 = db.connect()
  c2:exec("BEGIN")
  T.like(err_of(function() c2:transaction(function() c2:close() end) end),
         "^tests/lua/81%-api%-long%-values%.t:%d+: transaction: fn closed the session itself",
         "...nested (a savepoint) too")
end

---------------------------------------------------------------- item 5: after raises nil
do
  local tbl = "ferry_lua_long_" .. db.backend_pid()
  local observer = db.connect()
  observer:exec("DROP TABLE IF EXISTS " .. tbl)
  observer:exec("CREATE TABLE " .. tbl .. " (id int)")
  local err = err_of(function()
    local pipe <close> = db.pipeline{jobs = 2}
    local buf = db.buffer()
    buf:put(1)
    pipe:send{copies = {{sql = "COPY " .. tbl .. " (id) FROM STDIN", buffer = buf}}, after = function() error(nil) end}
    pipe:finish()
  end)
  T.like(err, "^db%.pipeline: the batch's after raised a nil error %(error%(%) with no message%): the batch is not stored$", "pipeline: after's error(nil) is said as that (" .. tostring(err) .. ")")
  T.is(observer:one("SELECT count(*) AS n FROM " .. tbl).n, 0, "...and nothing was stored")
  observer:exec("DROP TABLE " .. tbl)
end
T.done()
