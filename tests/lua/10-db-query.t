#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- db: exec/query/one/exec_script/quote_ident/array/connect/close/NULL,
-- backend_pid/in_transaction, the type mapping, parameters, errors.

local SRC = debug.getinfo(1, "S").short_src

-- the error message fn raises (nil when it does not raise)
local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end

local function keys_of(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

local function is_typed(v, ty, expected, name)
  local got = math.type(v) or type(v)
  local pass = got == ty and (v == expected or (expected ~= expected and v ~= v))
  T.ok(pass, name)
  if not pass then T.diag(string.format("got %s %s, expected %s %s", got, tostring(v), ty, tostring(expected))) end
end

db.exec("SET TimeZone = 'UTC'")

---------------------------------------------------------------- exec
db.exec("CREATE TEMP TABLE q (id int PRIMARY KEY, name text)")
T.is(db.exec("INSERT INTO q VALUES (1, 'a'), (2, 'b'), (3, 'c')"), 3, "exec: INSERT returns rows inserted")
T.is(db.exec("UPDATE q SET name = upper(name) WHERE id >= $1", 2), 2, "exec: UPDATE returns rows updated")
T.is(db.exec("DELETE FROM q WHERE id = $1", 99), 0, "exec: DELETE of nothing returns 0")
T.is(db.exec("SELECT * FROM q"), 3, "exec: SELECT returns rows returned")
T.is(db.exec("SELECT 1 WHERE false"), 0, "exec: empty SELECT returns 0")
T.is(db.exec("CREATE TEMP TABLE q2 (x int)"), 0, "exec: DDL returns 0")
T.is(math.type(db.exec("SELECT 1")), "integer", "exec returns an integer")
T.is(db.exec(""), 0, "exec: an empty query string returns 0 (no error)")
T.is(db.exec("-- only a comment"), 0, "exec: a comment-only query returns 0")
T.like(err_of(db.exec, "SELECT 1; SELECT 2"), "cannot insert multiple commands into a prepared statement %[SQLSTATE 42601%]",
       "exec: one statement only (exec_script runs several)")

---------------------------------------------------------------- query / one
local rows, n = db.query("SELECT id, name FROM q ORDER BY id")
T.is(n, 3, "query: count")
T.is(rows, {{id = 1, name = "a"}, {id = 2, name = "B"}, {id = 3, name = "C"}}, "query: array of rows keyed by column name")
rows, n = db.query("SELECT id FROM q WHERE id > $1", 100)
T.is({rows, n}, {{}, 0}, "query: no rows -> {}, 0")
T.is(db.one("SELECT id, name FROM q WHERE id = $1", 2), {id = 2, name = "B"}, "one: the row")
T.is(db.one("SELECT id FROM q ORDER BY id DESC"), {id = 3}, "one: the first row of several")
T.is(db.one("SELECT id FROM q WHERE false"), nil, "one: nil without rows")
T.is(select("#", db.one("SELECT id FROM q WHERE false")), 1, "one: exactly one value (nil)")
T.is(db.one("SELECT 1 AS a, 2 AS a"), {a = 2}, "duplicate column names: the last one wins")
-- ... a NULL too: `SELECT s.*, t.status` with no row in t read s's status
T.is(db.one("SELECT 1 AS a, NULL::int AS a"), {}, "duplicate column names: a NULL last one wins (the key is absent)")
T.is(db.query("SELECT 1 AS a, NULL::int AS a, 3 AS b"), {{b = 3}}, "...in query")
local dup = {}
for row in db.rows("SELECT 1 AS a, NULL::int AS a") do dup[#dup + 1] = row end
T.is(dup, {{}}, "...and in rows")
T.is(db.one("SELECT NULL::int AS a, 2 AS a"), {a = 2}, "...a value after a NULL wins")
T.is(db.one("SELECT 1, 2 AS b"), {["?column?"] = 1, b = 2}, "unnamed columns are named as PostgreSQL names them")
T.is(db.one(""), nil, "one: empty query string -> nil")
T.is({db.query("")}, {{}, 0}, "query: empty query string -> {}, 0")

---------------------------------------------------------------- type mapping
local r = db.one([[SELECT 'héllo'::text AS t, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid AS u,
  '2025-01-02 03:04:05.678+02'::timestamptz AS ts, '2025-01-02'::date AS d, '1 day 02:00'::interval AS i,
  '\x0102'::bytea AS b, ARRAY[1,2] AS a, 'x'::char(3) AS c, 'abc'::varchar AS v, 'abc'::name AS nm]])
T.is(r.t, "héllo", "text -> string")
T.is(r.u, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "uuid -> lower-case string")
T.is(r.ts, "2025-01-02 01:04:05.678+00", "timestamptz -> string as PostgreSQL prints it (session TimeZone)")
T.is(r.d, "2025-01-02", "date -> string")
T.is(r.i, "1 day 02:00:00", "interval -> string")
T.is(r.b, "\\x0102", "bytea -> hex text")
T.is(r.a, "{1,2}", "array -> its text form")
T.is(r.c, "x  ", "char(n) -> padded string")
T.is(r.v, "abc", "varchar -> string")
T.is(r.nm, "abc", "name -> string")

r = db.one([[SELECT 32767::int2 AS i2, (-2147483648)::int4 AS i4, 42::int8 AS i8, 12::oid AS o,
  9007199254740992::int8 AS edge, (-9007199254740992)::int8 AS nedge,
  9007199254740993::int8 AS big, (-9007199254740993)::int8 AS nbig, 9223372036854775807::int8 AS max8]])
is_typed(r.i2, "integer", 32767, "int2 -> integer")
is_typed(r.i4, "integer", -2147483648, "int4 -> integer")
is_typed(r.i8, "integer", 42, "int8 -> integer")
is_typed(r.o, "integer", 12, "oid -> integer")
is_typed(r.edge, "integer", 9007199254740992, "int8 2^53 -> integer")
is_typed(r.nedge, "integer", -9007199254740992, "int8 -2^53 -> integer")
is_typed(r.big, "string", "9007199254740993", "int8 2^53+1 -> string (exact)")
is_typed(r.nbig, "string", "-9007199254740993", "int8 -(2^53+1) -> string")
is_typed(r.max8, "string", "9223372036854775807", "int8 max -> string")

r = db.one([[SELECT 100::numeric AS int_n, 12345.25::numeric AS frac, 0.1::numeric AS tenth,
  123456789012345::numeric AS d15, 1234567890.12345::numeric AS f15, 1234567890.123456::numeric AS f16,
  12345678901234567890::numeric AS d20, 9007199254740993::numeric AS n53, 1e-20::numeric AS tiny,
  'NaN'::numeric AS nan, 'Infinity'::numeric AS inf, 2.50::numeric AS scale]])
is_typed(r.int_n, "integer", 100, "numeric integer -> integer")
is_typed(r.frac, "float", 12345.25, "numeric with a fraction -> float")
is_typed(r.tenth, "float", 0.1, "numeric 0.1 -> float 0.1")
is_typed(r.d15, "integer", 123456789012345, "numeric 15-digit integer -> integer")
is_typed(r.f15, "float", 1234567890.12345, "numeric with 15 digits -> float")
is_typed(r.f16, "string", "1234567890.123456", "numeric beyond 15 digits -> string (exact)")
is_typed(r.d20, "string", "12345678901234567890", "numeric integer beyond 2^53 -> string")
is_typed(r.n53, "string", "9007199254740993", "numeric 2^53+1 -> string")
is_typed(r.tiny, "string", "0.00000000000000000001", "numeric 1e-20 (21 digits) -> string")
is_typed(r.nan, "string", "NaN", "numeric NaN -> string")
is_typed(r.inf, "string", "Infinity", "numeric Infinity -> string")
is_typed(r.scale, "float", 2.5, "numeric 2.50 -> float 2.5")

r = db.one([[SELECT 1.5::float8 AS f, 0.1::float8 AS tenth, 1e300::float8 AS huge, 'Infinity'::float8 AS inf,
  '-Infinity'::float8 AS ninf, 'NaN'::float8 AS nan, 1.5::float4 AS f4, 3::float8 AS whole]])
is_typed(r.f, "float", 1.5, "float8 -> float")
is_typed(r.tenth, "float", 0.1, "float8 0.1 -> exactly 0.1")
is_typed(r.huge, "float", 1e300, "float8 1e300 -> float")
is_typed(r.inf, "float", math.huge, "float8 Infinity -> math.huge")
is_typed(r.ninf, "float", -math.huge, "float8 -Infinity -> -math.huge")
is_typed(r.nan, "float", 0 / 0, "float8 NaN -> NaN")
is_typed(r.f4, "float", 1.5, "float4 -> float")
is_typed(r.whole, "float", 3.0, "float8 3 -> float 3.0 (stays a float)")

r = db.one("SELECT true AS t, false AS f")
T.ok(r.t == true and r.f == false, "bool -> boolean")

r = db.one([[SELECT '{"b": 1, "a": [1, 2.50]}'::jsonb AS jb, '{"b" : 1,  "a":[1]}'::json AS j,
  'null'::jsonb AS jnull, '"s"'::jsonb AS jstr]])
is_typed(r.jb, "string", '{"a": [1, 2.50], "b": 1}', "jsonb -> its raw text (PostgreSQL's key order)")
is_typed(r.j, "string", '{"b" : 1,  "a":[1]}', "json -> its raw text, byte for byte")
is_typed(r.jnull, "string", "null", "jsonb null -> the string 'null' (not SQL NULL)")
is_typed(r.jstr, "string", '"s"', "jsonb string -> quoted text")
T.is(json.decode(r.jb).a[2], 2.5, "json.decode reads it")

r = db.one("SELECT NULL::text AS a, 1 AS b, NULL::int AS c, NULL::jsonb AS d, NULL::bool AS e")
T.is(keys_of(r), {"b"}, "SQL NULL: the key is absent")
T.ok(r.a == nil and r.c == nil and r.d == nil and r.e == nil, "SQL NULL reads as nil")
rows = db.query("SELECT NULL::int AS x UNION ALL SELECT 5")
T.is(rows, {{}, {x = 5}}, "query: a row of NULLs is an empty table")

---------------------------------------------------------------- parameters
T.is(db.one("SELECT $1::text IS NULL AS isnull", nil).isnull, true, "param nil binds NULL")
T.is(db.one("SELECT $1::int IS NULL AS isnull", db.NULL).isnull, true, "param db.NULL binds NULL")
T.is(db.one("SELECT $1::jsonb IS NULL AS isnull", json.null).isnull, true, "param json.null binds NULL")
T.is(db.one("SELECT $1::text IS NULL AS a, $2::text AS b, $3::text IS NULL AS c", nil, "x", nil),
     {a = true, b = "x", c = true}, "nil in the middle of the parameters keeps positions")
T.ok(db.NULL == json.null, "db.NULL == json.null")
T.is(type(db.NULL), "userdata", "db.NULL is a light userdata")
T.is(db.one("SELECT $1::bool AS t, $2::bool AS f", true, false), {t = true, f = false}, "param booleans")
T.is(db.one("SELECT $1::text AS t, $2::text AS f", true, false), {t = "t", f = "f"}, "booleans are sent as t/f")
T.is(db.one("SELECT $1::int AS v", 42).v, 42, "param integer")
T.is(db.one("SELECT $1::text AS v", -7).v, "-7", "integers are sent as their decimal text")
T.is(db.one("SELECT $1::int8::text AS v", math.maxinteger).v, "9223372036854775807", "param maxinteger is exact")
T.is(db.one("SELECT $1::text AS v", 0.1).v, "0.10000000000000001", "floats are sent with 17 significant digits")
T.is(db.one("SELECT $1::text AS v", 0.1 + 0.2).v, "0.30000000000000004", "0.1 + 0.2 keeps every bit")
T.is(db.one("SELECT $1::float8 = 0.1::float8 + 0.2::float8 AS eq", 0.1 + 0.2).eq, true, "float param round-trips exactly")
T.is(db.one("SELECT $1::int AS v", 3.0).v, 3, "a float with an integral value binds to an int column")
T.is(db.one("SELECT $1::float8 AS v", 2 ^ 60).v, 2 ^ 60, "large float param")
T.is(db.one("SELECT $1::text AS v", "").v, "", "empty string is not NULL")
T.is(db.one("SELECT $1::text AS v", "ünï 😀").v, "ünï 😀", "UTF-8 param")
T.is(db.one("SELECT $1::text AS s, $1::int AS i", "7"), {s = "7", i = 7}, "one parameter used twice")

local msg = err_of(db.one, "SELECT $1", {})
T.like(msg, "parameter %$1: a table is not a SQL value %(encode tables with json%.encode or db%.array%)$",
       "param table raises a clear error")
T.like(err_of(db.exec, "SELECT $1, $2", 1, {1}), "parameter %$2: a table is not a SQL value", "the error names the parameter")
T.like(err_of(db.exec, "SELECT $1", print), "parameter %$1: a function is not a SQL value", "param function raises")
T.like(err_of(db.exec, "SELECT $1", db.connect()), "parameter %$1: a userdata is not a SQL value", "param userdata raises")
T.like(select(2, pcall(function() db.connect({}) end)),
       "^[^%[]*10%-db%-query%.t:%d+: bad argument #1 to 'db%.connect' %(string expected, got table%)$",
       "db.connect({}): named db.connect (not db.core.connect, the C function behind it)")
T.like(err_of(db.exec, "SELECT $1", "a\0b"), "parameter %$1: .*NUL", "a string with a NUL byte raises (it would be cut)")
T.like(err_of(db.exec, "SELECT $1::text, $2::text", 1),
       "query failed: bind message supplies 1 parameters, but prepared statement \"\" requires 2 %[SQLSTATE 08P01%]",
       "too few parameters: the server's error")

-- values are bound, never spliced into the SQL
db.exec("CREATE TEMP TABLE victim (v text)")
local evil = "'); DROP TABLE victim; --"
db.exec("INSERT INTO victim VALUES ($1)", evil)
T.is(db.one("SELECT v FROM victim").v, evil, "an injection attempt is stored as data")
T.is(db.one("SELECT $1::text AS v", evil).v, evil, "and round-trips unchanged")
T.is(db.one("SELECT count(*) AS n FROM victim WHERE v = $1", "x' OR '1'='1").n, 0, "a quote in a WHERE parameter matches nothing")
T.is(db.one("SELECT to_regclass('pg_temp.victim') IS NOT NULL AS there").there, true, "the table is still there")
T.is(db.one("SELECT $1::text AS v", "$1 $2 \\ ' \" ;").v, "$1 $2 \\ ' \" ;", "placeholders and quotes inside a value are data")

---------------------------------------------------------------- errors
msg = err_of(db.exec, "SELECT 1/0")
T.like(msg, "query failed: division by zero %[SQLSTATE 22012%]$", "errors carry SQLSTATE")
msg = err_of(db.exec, "SELEC 1")
T.like(msg, "query failed: syntax error at or near \"SELEC\" %[SQLSTATE 42601%]$", "syntax error: SQLSTATE 42601")
T.like(err_of(db.exec, "SELECT * FROM no_such_table"), "relation \"no_such_table\" does not exist %[SQLSTATE 42P01%]",
       "undefined table: SQLSTATE 42P01")
msg = err_of(db.exec, "INSERT INTO q VALUES (1, 'dup')")
T.like(msg, "query failed: duplicate key value violates unique constraint \"q_pkey\" %(Key %(id%)=%(1%) already exists%.%) %[SQLSTATE 23505%]$",
       "the DETAIL is included in parentheses")
local line
msg = err_of(function() db.exec("SELECT 1/0") end); line = debug.getinfo(1, "l").currentline
T.is(msg, SRC .. ":" .. line .. ": query failed: division by zero [SQLSTATE 22012]",
     "db.exec errors name the calling script's file:line")
msg = err_of(function() db.one("SELECT 1/0") end); line = debug.getinfo(1, "l").currentline
T.is(msg, SRC .. ":" .. line .. ": query failed: division by zero [SQLSTATE 22012]", "db.one too")
local c0 = db.connect()
msg = err_of(function() c0:query("SELECT 1/0") end); line = debug.getinfo(1, "l").currentline
T.is(msg, SRC .. ":" .. line .. ": query failed: division by zero [SQLSTATE 22012]", "conn:query too")
c0:close()
T.is(db.one("SELECT 7 AS x").x, 7, "the connection works after errors")

---------------------------------------------------------------- exec_script
T.is(select("#", db.exec_script([[
  CREATE TEMP TABLE s (a int);
  INSERT INTO s VALUES (1), (2);
  INSERT INTO s SELECT a + 10 FROM s;
]])), 0, "exec_script returns nothing")
T.is(db.one("SELECT sum(a) AS n FROM s").n, 26, "exec_script ran every statement")
T.is(select("#", db.exec_script("")), 0, "exec_script: empty script")
msg = err_of(db.exec_script, "INSERT INTO s VALUES (100); SELECT 1/0; INSERT INTO s VALUES (200)")
T.like(msg, "script failed: division by zero %[SQLSTATE 22012%]$", "exec_script error carries SQLSTATE")
T.is(db.one("SELECT count(*) AS n FROM s").n, 4, "a failing script without BEGIN/COMMIT is one implicit transaction: nothing kept")
T.like(err_of(db.exec_script, "SELECT 1; SELEC 2"), "script failed: syntax error", "exec_script: syntax error")
T.is(db.one("SELECT 1 AS x").x, 1, "the connection works after a failed script")
T.is(err_of(db.exec_script, "CREATE TEMP TABLE sc (a int); COPY sc FROM STDIN; SELECT 1"),
     "script failed: COPY ... FROM STDIN in a script is not supported (load data with db.copy())",
     "exec_script: a COPY FROM STDIN in a script raises, saying why")
T.is(db.one("SELECT 1 AS x").x, 1, "the connection works after a script's COPY was ended")
T.like(err_of(db.exec, "SELECT 1\0; DROP TABLE x"), "SQL text contains a NUL byte", "a NUL in SQL text is refused, not cut")
T.like(err_of(db.exec_script, "SELECT 1\0; SELECT 2"), "SQL text contains a NUL byte", "...in exec_script too")
T.like(err_of(function() for _ in db.rows("SELECT 1\0") do end end), "SQL text contains a NUL byte", "...in rows")
T.like(err_of(db.copy, "COPY t FROM STDIN\0"), "SQL text contains a NUL byte", "...in copy")
T.like(err_of(db.quote_ident, "a\0b"), "an identifier contains a NUL byte", "...and in quote_ident")
T.is(err_of(db.array, "abc"), "db.array: a table of values is needed, not a string", "db.array of a string raises")
T.is(err_of(db.array, nil), "db.array: a table of values is needed, not a nil", "db.array of nil raises")
-- an n (or a __len) far past what an array holds built "NULL" parts
-- until memory ran out: the process was killed, no error
T.is(err_of(db.array, {n = math.maxinteger}), "db.array: 9223372036854775807 elements, more than a PostgreSQL "
     .. "array holds (134217727)", "db.array with n = 2^63 - 1 raises at once")
T.is(err_of(db.array, setmetatable({}, {__len = function() return 134217728 end})),
     "db.array: 134217728 elements, more than a PostgreSQL array holds (134217727)", "...and so with a __len saying so")
T.is(err_of(db.array, {n = -1}), "db.array: n must be a whole number >= 0, not -1", "db.array with n = -1 raises")
T.is(err_of(db.array, {n = 2.5}), "db.array: n must be a whole number >= 0, not 2.5", "...n = 2.5 too")
T.is(err_of(db.array, {n = "3"}), "db.array: n must be a whole number >= 0, not a string", "...n = '3' too")
T.is(db.array{"a", n = 2.0}, '{"a",NULL}', "db.array: a float n with a whole value is taken")
T.is(err_of(db.pipeline, {jobs = "x"}), "db.pipeline: jobs must be a whole number from 1 to 100, not a string (\"x\")", "db.pipeline with bad jobs raises")
T.is(err_of(db.pipeline, {jobs = "4"}), "db.pipeline: jobs must be a whole number from 1 to 100, not a string (\"4\")", "...also a number in a string")
T.like(err_of(db.exec_script, "SELECT 1;\n\nSELEC 2"), "^script failed: syntax error at or near \"SELEC\" .* %(line 3%)$",
       "exec_script: an error the server places ends with the script's line")
T.like(err_of(db.exec_script, "SELECT 1;\nSELECT '" .. string.rep("x", 3000) .. "'::int"), "xxx%.%.%. %[SQLSTATE 22P02%] %(line 2%)$",
       "...also after a message too long to keep whole (cut before its SQLSTATE, which stays)")
T.is(err_of(db.exec_script, "COPY (SELECT 1) TO STDOUT"),
     "script failed: COPY ... TO STDOUT in a script is not supported (read the rows with a SELECT: db.rows, db.query)",
     "exec_script: COPY TO STDOUT raises, saying what to do instead")
T.is(db.one("SELECT 1 AS x").x, 1, "the connection works after a script's COPY output was read")
T.is(err_of(db.exec_script, "CREATE TEMP TABLE sd (a int PRIMARY KEY); INSERT INTO sd VALUES (1), (1)"),
     'script failed: duplicate key value violates unique constraint "sd_pkey" (Key (a)=(1) already exists.) '
     .. "[SQLSTATE 23505]", "exec_script: the server's message, detail and SQLSTATE")
db.exec_script("SET client_min_messages = warning; DO $$ BEGIN RAISE NOTICE 'hi'; END $$; RESET client_min_messages")
T.ok(true, "exec_script: DO blocks and NOTICEs are fine")

---------------------------------------------------------------- quote_ident
T.is(db.quote_ident("simple"), '"simple"', "quote_ident always quotes")
T.is(db.quote_ident('we"ird'), '"we""ird"', "quote_ident doubles quotes")
T.is(db.quote_ident("Mixed Case"), '"Mixed Case"', "quote_ident keeps case and spaces")
T.is(err_of(db.quote_ident, "caf\xc3"), "quote_ident: incomplete multibyte character",
     "quote_ident of text that is not UTF-8: libpq's reason, one line (no newline at its end)")
local weird = 'tbl "x"; DROP TABLE q; --'
db.exec("CREATE TEMP TABLE " .. db.quote_ident(weird) .. " (v int)")
db.exec("INSERT INTO " .. db.quote_ident(weird) .. " VALUES (1)")
T.is(db.one("SELECT count(*) AS n FROM " .. db.quote_ident(weird)).n, 1, "a quoted identifier is one name")
T.is(db.one("SELECT count(*) AS n FROM q").n, 3, "nothing was injected")

---------------------------------------------------------------- array
T.is(db.array{1, 2, 3}, '{"1","2","3"}', "array: numbers")
T.is(db.array{"a", 'q"x', "b\\c", "d e", ""}, '{"a","q\\"x","b\\\\c","d e",""}', "array: quotes and backslashes escaped")
T.is(db.array{"a", nil, "c", n = 3}, '{"a",NULL,"c"}', "array: nil with n is NULL")
T.is(db.array{"a", db.NULL}, '{"a",NULL}', "array: db.NULL is NULL")
T.is(db.array{}, "{}", "array: empty")
T.is(db.array{true, false}, '{"true","false"}', "array: booleans")
local texts = {"plain", 'q"x', "b\\c", "{brace}", "comma,x", "NULL", "", "ü😀"}
rows = db.query("SELECT u.v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, o) ORDER BY o", db.array(texts))
local back = {}
for i, row in ipairs(rows) do back[i] = row.v end
T.is(back, texts, "array: every element round-trips through text[]")
T.is(db.one("SELECT $1::text[] AS a", db.array{"x", nil, "y z", n = 3}).a, '{x,NULL,"y z"}', "array: NULL elements")
T.is(db.one("SELECT count(*) AS n FROM q WHERE id = ANY($1::int[])", db.array{1, 3, 99}).n, 2, "array with = ANY($1::int[])")
T.is(db.one("SELECT ($1::float8[])[1] = 0.1::float8 + 0.2::float8 AS eq", db.array{0.1 + 0.2}).eq, true,
     "array: floats keep 17 digits like parameters")
T.like(err_of(db.array, {{1, 2}}), "table", "array: a table element raises")

---------------------------------------------------------------- connections
local main_pid = db.backend_pid()
T.is(math.type(main_pid), "integer", "backend_pid is an integer")
T.is(db.one("SELECT pg_backend_pid() AS p").p, main_pid, "backend_pid is the server's pid of the session")
T.is(db.in_transaction(), false, "in_transaction: false outside a transaction")
T.is(db.one("SELECT current_setting('application_name') AS a").a, "ferry", "application_name is ferry")

local c = db.connect()
T.is(tostring(c), "ferry connection", "connect: a connection")
T.isnt(c:backend_pid(), main_pid, "connect: another session")
T.is(c:one("SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s, current_setting('default_transaction_read_only') AS r, current_setting('application_name') AS a"),
     {l = "5s", s = "0", r = "off", a = "ferry"}, "connect: the session settings of every ferry connection")
-- a client killed while its query runs: the server notices within a second
-- and stops (a million-row sort went on for minutes after a kill -9)
T.is(c:one("SELECT current_setting('client_connection_check_interval') AS i").i, "1s",
     "connect: client_connection_check_interval 1s (PostgreSQL 14 and later)")
T.is(c:exec("SELECT 1"), 1, "conn:exec")
T.is({c:query("SELECT 1 AS x")}, {{{x = 1}}, 1}, "conn:query")
T.is(c:one("SELECT 2 AS x"), {x = 2}, "conn:one")
T.is(c:quote_ident("a b"), '"a b"', "conn:quote_ident")
T.is(c:in_transaction(), false, "conn:in_transaction")
c:exec_script("CREATE TEMP TABLE cc (a int); INSERT INTO cc VALUES (5)")
T.is(c:one("SELECT a FROM cc").a, 5, "conn:exec_script")
T.is(db.one("SELECT to_regclass('pg_temp.cc') IS NULL AS separate").separate, true, "temp tables are per session")
T.is(select("#", c:close()), 0, "close returns nothing")
T.is(tostring(c), "ferry connection (closed)", "tostring of a closed connection")
c:close()
T.ok(true, "close twice is safe")
T.like(err_of(c.exec, c, "SELECT 1"), "attempt to use a closed connection", "exec on a closed connection raises")
T.like(err_of(c.one, c, "SELECT 1"), "attempt to use a closed connection", "one on a closed connection raises")
T.like(err_of(c.rows, c, "SELECT 1"), "attempt to use a closed connection", "rows on a closed connection raises")
T.like(err_of(c.copy, c, "COPY x FROM STDIN"), "attempt to use a closed connection", "copy on a closed connection raises")
T.like(err_of(c.backend_pid, c), "attempt to use a closed connection", "backend_pid on a closed connection raises")
T.like(err_of(c.transaction, c, function() end), "attempt to use a closed connection", "transaction on a closed connection raises")

local url = os.getenv("DATABASE_URL")
local c2 = db.connect(url)
T.is(c2:one("SELECT current_database() AS d").d, db.one("SELECT current_database() AS d").d, "connect(conninfo) with a URI")
c2:close()
do
  local scoped <close> = db.connect()
  T.is(scoped:one("SELECT 1 AS x").x, 1, "a connection works as a to-be-closed variable")
end
msg = err_of(db.connect, "postgresql:///ferry_no_such_db?host=" .. os.getenv("PGHOST") .. "&port=" .. os.getenv("PGPORT"))
T.like(msg, "^cannot connect to the database: .*ferry_no_such_db.*does not exist", "connect: a clear error")
local port = os.getenv("FERRY_PG_TCP_PORT") or os.getenv("PGPORT")
msg = err_of(db.connect, "postgresql://ferry_pw:Wr0ng-Secret-xyz@127.0.0.1:" .. port .. "/ferry?sslmode=disable")
T.like(msg, "^cannot connect to the database: .*password authentication failed", "connect: a wrong password fails")
T.ok(msg and not msg:find("Wr0ng-Secret-xyz", 1, true), "the password never appears in the error")
msg = err_of(db.connect, "host=127.0.0.1 port=" .. port .. " user=ferry_pw password=Wr0ng-Secret-xyz dbname=ferry sslmode=disable")
T.ok(msg and msg:find("^cannot connect") and not msg:find("Wr0ng-Secret-xyz", 1, true), "key=value form: password redacted too")

-- db.open / db.main / db.close
T.is(db.main(), db.open(), "db.open returns the main connection (db.main)")
T.is(tostring(db.main()), "ferry connection", "db.main is a connection")
db.close()
T.is(db.main(), nil, "db.close closes the main connection")
db.close()
T.ok(true, "db.close twice is safe")
T.isnt(db.backend_pid(), main_pid, "the next call connects again (a new session)")
T.is(db.read_only, false, "db.read_only is false without --dry-run")

-- db.prestart: sessions started ahead, handed out by db.connect()
db.prestart(2)
local a, b = db.connect(), db.connect()
T.isnt(a:backend_pid(), b:backend_pid(), "prestart: db.connect() hands out the started sessions, each its own")
T.is(a:one("SELECT current_setting('lock_timeout') AS t").t, db.one("SELECT current_setting('lock_timeout') AS t").t,
     "prestart: a started session has ferry's session settings, as a connected one")
local c = db.connect()
T.ok(c:backend_pid() > 0, "prestart: when none is left, db.connect() connects")
a:close(); b:close(); c:close()
-- (the sessions started from here on: a count of all ferry's sessions
-- raced with the backends of those closed above -- and of the main session
-- db.close() ended before them -- leaving pg_stat_activity a moment later)
local since = db.one("SELECT clock_timestamp()::text AS t").t
db.prestart(3)
db.drop_spares()
local function sessions()   -- (0 for 0.2 s at least: a spare still connecting would show by then)
  local n
  for i = 1, 200 do
    n = db.one([[SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'ferry'
                   AND datname = current_database() AND backend_start >= $1::timestamptz
                   AND pid <> pg_backend_pid()]], since).n
    if n == 0 and i >= 20 then break end
    db.exec("SELECT pg_sleep(0.01)")
  end
  return n
end
T.is(sessions(), 0, "drop_spares: the sessions nobody took are closed")
db.prestart(1)
local d = db.connect()
d:close()
T.is(select(2, pcall(d.exec, d, "SELECT 1")), "attempt to use a closed connection", "a started session closed is closed")
-- ...also when a finalizer closes it while its first use sets it up: the
-- allocation of the settings' result box may run one, and the settings
-- then failed on the closed session as on one the server had ended,
-- whereupon ferry connected it again -- a session the script had closed
-- came back, open.
do
  local core = require "db.core"
  local started = core.connect_start()
  collectgarbage("generational")
  setmetatable({}, {__gc = function() started:close() end})
  collectgarbage("stop"); collectgarbage("restart")   -- (the next allocation collects)
  local e = err_of(started.ready, started)
  collectgarbage("incremental")
  T.is({e, tostring(started)}, {"attempt to use a closed connection", "ferry connection (closed)"},
       "a started session closed by a finalizer during its first use: closed, and said so (not connected again)")
end

-- ...and a session whose settings a RESET ALL undid (set again before its
-- next statement), on which a finalizer run during that next call starts
-- a rows(): the call raises as busy, the rows stay whole (a statement sent
-- on the busy session would drain them: libpq discards what is pending
-- before a new query), and the settings are set at the statement after.
do
  local c = db.connect()
  c:exec("RESET ALL")
  local it
  collectgarbage("generational")
  setmetatable({}, {__gc = function() it = c:rows("SELECT g FROM generate_series(1, 3) g") end})
  collectgarbage("stop"); collectgarbage("restart")   -- (the next allocation collects)
  local _, e = pcall(c.exec, c, 42)
  collectgarbage("incremental")
  local got = {}
  if it then for r in it do got[#got + 1] = r.g end end
  T.is({e, table.concat(got, ","), c:one("SELECT current_setting('row_security') AS s").s},
       {"connection busy: a rows() iteration is in progress on it (use another connection from db.connect())", "1,2,3", "off"},
       "RESET ALL, then a finalizer starts rows() during the next call's checks: busy, the rows intact, the settings set after")
  c:close()
end

T.like(err_of(db.connect, "dbname=postgres\0 host=elsewhere"), "conninfo contains a NUL byte",
       "db.connect: a conninfo with a NUL byte raises (libpq would read it cut short)")

-- Connections dropped unclosed are collected before they exhaust the
-- server's max_connections (Lua sees only a small userdata for each).
local max = tonumber(db.one("SHOW max_connections").max_connections)
local opened = 0
for _ = 1, max + 20 do
  local dropped = db.connect()
  dropped:one("SELECT 1 AS x")
  opened = opened + 1
end
T.is(opened, max + 20, "max_connections + 20 connections opened and dropped unclosed, one after the other")

-- The main connection is ferry's (its lock, its run record): closing it
-- through its handle is refused, as io.stdout:close() is in Lua, and a
-- <close> variable holding it leaves it open.
local main_pid = db.backend_pid()
local ok, why = db.open():close()
T.is(ok, nil, "main:close() is refused (returns nil)")
T.like(why, "^cannot close the main connection", "main:close() says why")
T.is(db.backend_pid(), main_pid, "the main connection is still open after main:close()")
do
  local m <close> = db.open()
  m:exec("SELECT 1")
end
T.is(db.one("SELECT 1 AS x").x, 1, "a <close> variable holding the main connection leaves it open")
T.is(db.backend_pid(), main_pid, "... the same session")

-- exec_script of a script that begins a transaction and fails inside it:
-- that transaction is rolled back (the rest of the script, its COMMIT
-- included, never ran), not left failed for every later statement
T.is(pcall(db.exec_script, "BEGIN; SELECT 1/0; COMMIT;"), false, "exec_script: BEGIN, a failing statement: raises")
T.is({db.in_transaction()}, {false, false}, "...and the transaction it began is rolled back")
T.is(db.one("SELECT 2 AS x").x, 2, "...the session is usable")
-- one the caller began stays the caller's to end (db.transaction does)
db.exec("BEGIN")
T.is(pcall(db.exec_script, "SELECT 1/0"), false, "exec_script failing inside the caller's transaction: raises")
T.is({db.in_transaction()}, {true, true}, "...that transaction is left to its owner (failed)")
db.exec("ROLLBACK")
-- a script that leaves a transaction open on purpose, without failing: open
db.exec_script("BEGIN; SELECT 1;")
T.is({db.in_transaction()}, {true, false}, "exec_script: a transaction the script opens and does not fail in stays open")
db.exec("ROLLBACK")

-- floats as parameters, array elements and COPY columns: whole ones in
-- the 64-bit range as integer text (1e17 is "100000000000000000", which a
-- bigint reads; %.17g wrote "1e+17", which it refuses), NaN and the
-- infinities as PostgreSQL spells them (C's "-nan" and "inf" it refuses)
T.is(db.one("SELECT $1::bigint::text AS v", 1e17).v, "100000000000000000", "1e17 as a bigint parameter")
T.is(db.one("SELECT $1::bigint::text AS v", -2.0^62).v, "-4611686018427387904", "-2^62 (a float) as a bigint parameter")
T.is(db.one("SELECT $1::float8 = 'NaN' AS v", 0/0).v, true, "NaN as a float8 parameter")
T.is(db.one("SELECT $1::numeric::text AS v", 0/0).v, "NaN", "NaN as a numeric parameter")
T.is(db.one("SELECT $1::float8 = 'Infinity' AS a, $2::float8 = '-Infinity' AS b", math.huge, -math.huge),
     {a = true, b = true}, "the infinities as float8 parameters")
T.is(db.one("SELECT $1::float8 AS v", 0.1).v, 0.1, "a float with a fraction keeps every bit")
T.is(db.one("SELECT $1::float8 AS v", 1e300).v, 1e300, "a whole float beyond 2^63 still reads as itself")
T.is(db.array{1e17, 0/0, math.huge, -math.huge, 2.5}, '{"100000000000000000","NaN","Infinity","-Infinity","2.5"}',
     "db.array: the same texts")
T.is(db.one("SELECT ($1::bigint[])[1]::text AS v", db.array{1e17}).v, "100000000000000000", "...which a bigint[] reads")
db.exec("DROP TABLE IF EXISTS fl_copy")
db.exec("CREATE TABLE fl_copy (b bigint, f float8)")
do
  local w <close> = db.copy("COPY fl_copy (b, f) FROM STDIN")
  w:put(1e17, 0/0)
  w:put(-1e18, math.huge)
  T.is(w:finish(), 2, "COPY: whole floats into bigint, NaN and Infinity into float8")
end
T.is(db.query("SELECT b::text AS b, f::text AS f FROM fl_copy ORDER BY b"), {{b = "-1000000000000000000", f = "Infinity"}, {b = "100000000000000000", f = "NaN"}},
     "...stored as those values")
db.exec("DROP TABLE fl_copy")

-- db.arrays(rows, n): a batch of rows turned into one array literal per
-- column, for UPDATE ... FROM unnest($1::uuid[], $2::text[], ...) -- the
-- transposition every batched UPDATE wrote by hand (Batches 4 and 5's
-- after functions, an author's Batch 6), NULLs (nil) included
local a1, a2, a3 = db.arrays({{1, "x", true}, {2, nil, false}, {3, "q\"z", db.NULL}}, 3)
T.is({a1, a2, a3}, {'{"1","2","3"}', '{"x",NULL,"q\\"z"}', '{"true","false",NULL}'},
     "db.arrays: one array per column, nil and db.NULL as NULL")
T.is(select("#", db.arrays({}, 2)), 2, "db.arrays of no rows: n arrays ...")
T.is({db.arrays({}, 2)}, {"{}", "{}"}, "...each empty")
T.is({db.arrays({{"a"}, {nil}}, 2)}, {'{"a",NULL}', "{NULL,NULL}"}, "db.arrays: a row shorter than n ends in NULLs")
db.exec("CREATE TEMP TABLE arrs (id int PRIMARY KEY, v text, b bool)")
db.exec("INSERT INTO arrs SELECT g, 'old', true FROM generate_series(1, 3) g")
T.is(db.exec([[UPDATE arrs a SET v = u.v, b = u.b FROM unnest($1::int[], $2::text[], $3::bool[]) AS u(id, v, b)
               WHERE a.id = u.id]], db.arrays({{1, "new", false}, {3, nil, nil}}, 3)), 2,
     "db.arrays: bound as an UPDATE's unnest()")
T.is(db.query("SELECT id, v, b FROM arrs ORDER BY id"), {{id = 1, v = "new", b = false}, {id = 2, v = "old", b = true}, {id = 3}},
     "...which wrote each row's values, NULL where nil")
T.is(err_of(db.arrays, "abc", 2), "db.arrays: rows is a list of rows (tables), not a string", "db.arrays of a string raises")
T.is(err_of(db.arrays, {}, 0), "db.arrays: n, the number of columns, must be a whole number >= 1, not 0",
     "db.arrays: n of 0 raises")
T.is(err_of(db.arrays, {{1}}), "db.arrays: n, the number of columns, must be a whole number >= 1, not nil",
     "db.arrays: n left out raises")
T.is(err_of(db.arrays, {{1}}, "2"), "db.arrays: n, the number of columns, must be a whole number >= 1, not a string (\"2\")",
     "db.arrays: n as a string raises, shown as a string")
T.is(err_of(db.arrays, {{1}, "x"}, 1), "db.arrays: row 2 is a string, not a table", "db.arrays: a row that is no table raises")
T.is(err_of(db.arrays, {{1, {}}}, 2), "db.arrays: row 1, column 2 is a table, not a SQL value",
     "db.arrays: a value that is no SQL value raises, naming row and column")
T.is(err_of(db.arrays, {{1, 2}, {1, 2, 3}}, 2), "db.arrays: row 2 has a value in column 3, beyond the 2 columns asked for",
     "db.arrays: a row longer than n raises (the SQL has fewer columns than the rows)")
-- limits checked before anything is built, as db.array's: an n of 2^40
-- made 2^40 column tables until memory ran out (the process was killed),
-- and rows past what an array holds were all transposed before db.array
-- refused them, in db.array's words
T.is(err_of(db.arrays, {{1}}, 1 << 40), "db.arrays: n = 1099511627776 columns, more than a row has (1600)",
     "db.arrays with n = 2^40 raises at once")
T.is(err_of(db.arrays, {{1}}, 1601), "db.arrays: n = 1601 columns, more than a row has (1600)", "...and so with 1601")
T.is(select("#", db.arrays({{1}}, 1600)), 1600, "...1600 columns are fine")
T.is(err_of(db.arrays, setmetatable({}, {__len = function() return 134217728 end, __index = function() return {1} end}), 1),
     "db.arrays: 134217728 rows, more than a PostgreSQL array holds (134217727)",
     "db.arrays: rows past what an array holds raise at once")
-- a whole number that is a float (2^40, 6 / 2) is a whole number, as
-- db.array's n and copy_rows' take it: it said 'must be a whole number
-- >= 1, not 3.0'
T.is({db.arrays({{1, "a", true}}, 6 / 2)}, {"{\"1\"}", "{\"a\"}", "{\"true\"}"}, "db.arrays: n = 3.0 is 3 columns")
T.is(err_of(db.arrays, {{1}}, 2^40), "db.arrays: n = 1099511627776 columns, more than a row has (1600)",
     "db.arrays: n = 2^40 (a float) raises as past the columns of a row")
T.is(err_of(db.arrays, {{1}}, 1.5), "db.arrays: n, the number of columns, must be a whole number >= 1, not 1.5",
     "db.arrays: n = 1.5 raises")

return T.done()
