#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- json: lua-cjson decode/encode and its settings, compact (on text that
-- PostgreSQL printed), truncate, has_text, utf8_len, utf8_valid, null,
-- array/object/encode_ordered.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return type(e) == "table" and tostring(e.message) or tostring(e)
end

---------------------------------------------------------------- decode / encode
local v = json.decode('{"a": [1, 2.5, "x", true, false, null], "b": {"c": "\\u00e9\\n"}}')
T.is(v.a[1], 1, "decode: numbers")
T.is(math.type(v.a[1]), "float", "decode: every number is a Lua float (cjson)")
T.is(v.a[2], 2.5, "decode: fractions")
T.is({v.a[3], v.a[4], v.a[5]}, {"x", true, false}, "decode: strings and booleans")
T.ok(v.a[6] == json.null, "decode: null is json.null")
T.is(#v.a, 6, "decode: null keeps its array slot")
T.is(v.b.c, "é\n", "decode: escapes and \\u sequences")
T.is(json.decode("123456789012345678"), 1.2345678901234568e17, "decode: big integers lose precision (doubles)")
T.like(err_of(json.decode, "{bad"), "Expected object key string but found invalid token at character 2", "decode: invalid JSON raises")
T.like(err_of(json.decode, ""), "Expected value but found T_END at character 1", "decode: empty text raises")

T.is(json.encode({1, 2, 3}), "[1,2,3]", "encode: array")
T.is(json.encode({a = "x"}), '{"a":"x"}', "encode: object")
T.is(json.encode("a/b"), '"a\\/b"', "encode: cjson escapes '/'")
T.is(json.encode("é\n\"\1"), '"é\\n\\"\\u0001"', "encode: UTF-8 kept, control characters escaped")
T.is(json.encode(json.null), "null", "encode: json.null")
T.is(json.encode({}), "{}", "encode: an empty table is an object")
T.is(json.encode(123), "123", "encode: integer")
T.is(json.encode(0.1 + 0.2), "0.3", "encode: 14 significant digits (encode_number_precision)")
T.is(json.encode({[1] = 1, [3] = 3}), "[1,null,3]", "encode: a sparse array gets nulls")
T.like(err_of(json.encode, {[1] = 1, [20] = 3}), "excessively sparse array", "encode: an excessively sparse array raises")
T.like(err_of(json.encode, 0 / 0), "must not be NaN or Inf", "encode: NaN raises")
T.like(err_of(json.encode, print), "Cannot serialise function", "encode: a function raises")
T.is(json.decode(json.encode({k = {1, "two", {three = 3}}})), {k = {1, "two", {three = 3}}}, "round trip")

-- the settings ferry gives its own cjson instance
T.is(json.decode_max_depth(), 20000, "decode_max_depth is 20000")
T.is(json.encode_max_depth(), 20000, "encode_max_depth is 20000")
T.is(json.encode_number_precision(), 14, "encode_number_precision is 14")
T.is({json.encode_sparse_array()}, {false, 2, 10}, "encode_sparse_array: cjson's defaults")
T.is(json.encode_invalid_numbers(), false, "encode_invalid_numbers: off")
T.is(json.decode_invalid_numbers(), true, "decode_invalid_numbers: on")
T.is(json.encode_keep_buffer(), true, "encode_keep_buffer: on")
local fresh = json.new()
T.is(fresh.decode_max_depth(), 1000, "json.new(): a separate cjson instance with cjson's defaults")
T.is(fresh.compact, nil, "json.new(): without ferry's helpers")
T.is(json._NAME, "cjson", "_NAME")
-- the depths cannot be raised past 20000: cjson recurses on the C stack,
-- and a deep enough document then crashed ferry (a segmentation fault)
T.like(err_of(json.decode_max_depth, 20001), "bad argument #1 to 'json%.decode_max_depth' %(at most 20000",
       "decode_max_depth above 20000 raises")
T.like(err_of(json.encode_max_depth, 2e6), "at most 20000", "encode_max_depth above 20000 raises")
T.like(err_of(json.new().decode_max_depth, 1e6), "at most 20000", "... on an instance from json.new() too")
T.like(err_of(json.new().new().decode_max_depth, 1e6), "at most 20000", "... and from its own new()")
T.like(err_of(require("cjson").decode_max_depth, 1e6), "at most 20000", "... and on require 'cjson'")
T.like(err_of(require("cjson").new().encode_max_depth, 1e6), "at most 20000", "... and on its new()")
T.like(err_of(json.decode_max_depth, 0), "bad argument #1 to 'json%.decode_max_depth' %(expected integer between 1 and 20000%)",
       "a depth below 1 raises, naming the function")
T.is(json.decode_max_depth(100), 100, "a lower depth is taken")
T.like(err_of(json.decode, string.rep("[", 101) .. string.rep("]", 101)), "too many nested data structures",
       "and applies")
T.is(json.decode_max_depth(20000), 20000, "20000 is taken")
T.is(json.decode_max_depth(), 20000, "without an argument: the current value")

-- deep nesting: 10000 levels decode (webhooks have sent such payloads)
local deep = string.rep("[", 10000) .. "1" .. string.rep("]", 10000)
local ok, d = pcall(json.decode, deep)
local depth, x = 0, d
while type(x) == "table" do depth = depth + 1; x = x[1] end
T.ok(ok and depth == 10000 and x == 1, "10000 nested arrays decode")
T.is(json.encode(d), deep, "and encode back")
local deepo = string.rep('{"a":', 10000) .. "null" .. string.rep("}", 10000)
ok, d = pcall(json.decode, deepo)
depth, x = 0, d
while type(x) == "table" do depth = depth + 1; x = x.a end
T.ok(ok and depth == 10000, "10000 nested objects decode")
T.like(err_of(json.decode, string.rep("[", 20001) .. string.rep("]", 20001)), "Found too many nested data structures %(20001%)",
       "more than 20000 levels raise")

---------------------------------------------------------------- compact on PostgreSQL's text
local src = [[{"b": [1, 2.50, {"x": "a  b"}], "a": "\u00e9 \"q\"", "long_key": 1e5, "e": 1.5E+3,
              "s": "tab\there\nnl", "u": "\ud83d\ude00", "z": {"y": [ ], "x": {}}, "n": -0.0, "t": true, "f": null}]]
local pg = db.one("SELECT $1::jsonb::text AS t", src).t
T.is(pg, [[{"a": "é \"q\"", "b": [1, 2.50, {"x": "a  b"}], "e": 1500, "f": null, "n": 0.0, "s": "tab\there\nnl", "t": true, "u": "😀", "z": {"x": {}, "y": []}, "long_key": 100000}]],
     "PostgreSQL's jsonb text (sample)")
T.is(json.compact(pg), [[{"a":"é \"q\"","b":[1,2.50,{"x":"a  b"}],"e":1500,"f":null,"n":0.0,"s":"tab\there\nnl","t":true,"u":"😀","z":{"x":{},"y":[]},"long_key":100000}]],
     "compact: PostgreSQL's key order and number text (2.50, 0.0), spaces inside strings kept")
T.is(json.decode(json.compact(pg)), json.decode(pg), "compact is the same JSON")
local pg2 = db.one([[SELECT '[{"a": 1}, {}, [], "x", null, true, "back\\slash \" quote"]'::jsonb::text AS t]]).t
T.is(json.compact(pg2), '[{"a":1},{},[],"x",null,true,"back\\\\slash \\" quote"]', "compact: arrays, escapes")
local pgjson = db.one([[SELECT '{ "k" :  [ 1 ,2 ] ,"k2":"v" }'::json::text AS t]]).t
T.is(json.compact(pgjson), '{"k":[1,2],"k2":"v"}', "compact: json (not jsonb) text keeps its own order")
T.is(json.compact("  [ 1 ,\t2 ]\n"), "[1,2]", "compact: all four JSON blanks go")
T.is(json.compact(""), "", "compact: empty")
T.is(json.compact('{"a":"b'), '{"a":"b', "compact: never fails on malformed text")
T.is(json.compact('{"a": "héllo"}', 8), '{"a":"hé', "compact with max_chars: cut at a character")
T.is(json.compact('["😀😀"]', 3), '["😀', "compact with max_chars never splits a character")
T.is(json.compact("[1, 2]", -1), "[1,2]", "compact: negative max_chars = no limit")

---------------------------------------------------------------- truncate / utf8
T.is(json.truncate("héllo", 2), "hé", "truncate counts characters, not bytes")
T.is(json.truncate("😀😀", 1), "😀", "truncate keeps a whole 4-byte character")
T.is(#json.truncate("😀😀", 1), 4, "4 bytes")
T.is(json.truncate("日本語", 0), "", "truncate to 0")
T.is(json.truncate("abc", 10), "abc", "truncate longer than the string")
for n = 0, 8 do
  local cut = json.truncate("a日😀é", n)
  if not json.utf8_valid(cut) then T.ok(false, "truncate split a character at " .. n) end
end
T.ok(true, "truncate never yields broken UTF-8 at any length")
T.is(json.truncate("a\xffb", 2), "a\xff", "an invalid byte counts as one character")
T.like(err_of(json.truncate, "abc", -1), "bad argument #2 to 'json.truncate' %(must be >= 0%)", "truncate: negative raises")

T.is(json.utf8_len("héllo😀"), 6, "utf8_len counts characters")
T.is(json.utf8_len(""), 0, "utf8_len of empty")
T.is(json.utf8_len("a\xffb"), 3, "utf8_len: an invalid byte counts one")
T.is(json.utf8_valid("é日😀"), true, "utf8_valid: valid")
T.is(json.utf8_valid("\xff"), false, "utf8_valid: 0xFF")
T.is(json.utf8_valid("\xc0\xaf"), false, "utf8_valid: overlong")
T.is(json.utf8_valid("\xed\xa0\x80"), false, "utf8_valid: surrogate")
T.is(json.utf8_valid("\xf4\x90\x80\x80"), false, "utf8_valid: above U+10FFFF")
T.is(json.utf8_valid("\xe6\x97"), false, "utf8_valid: truncated sequence")
T.is(json.utf8_valid(""), true, "utf8_valid: empty")

---------------------------------------------------------------- has_text
T.is(json.has_text("x"), true, "has_text: a letter")
T.is(json.has_text("  x  "), true, "has_text: surrounded by blanks")
T.is(json.has_text(""), false, "has_text: empty")
T.is(json.has_text(" \t\n\r\v\f"), false, "has_text: ASCII blanks")
local blanks = {"\u{85}", "\u{A0}", "\u{1680}", "\u{2000}", "\u{2005}", "\u{200A}", "\u{2028}", "\u{2029}",
                "\u{202F}", "\u{205F}", "\u{3000}"}
for _, b in ipairs(blanks) do
  T.is(json.has_text(" " .. b .. " "), false, string.format("has_text: U+%04X is blank", utf8.codepoint(b)))
end
T.is(json.has_text(table.concat(blanks)), false, "has_text: all Unicode blanks together")
T.is(json.has_text("\u{200B}"), true, "has_text: U+200B ZERO WIDTH SPACE is not White_Space")
T.is(json.has_text("\u{FEFF}"), true, "has_text: U+FEFF is not White_Space")
T.is(json.has_text("\u{3000}あ"), true, "has_text: ideographic space then a letter")
T.is(json.has_text("\xff"), true, "has_text: an invalid byte counts as content")
T.is(json.has_text(nil), false, "has_text(nil) is false")
T.is(json.has_text(5), false, "has_text of a number is false")
T.is(json.has_text({}), false, "has_text of a table is false")

---------------------------------------------------------------- array / object / encode_ordered
T.is(json.encode_ordered(json.object({"z", "a", "m"}, {z = 1, a = 2, m = 3})), '{"z":1,"a":2,"m":3}',
     "object keeps the given key order")
T.is(json.encode_ordered(json.object({"z", "a"}, {z = 1})), '{"z":1}', "object: nil keys are left out")
T.is(json.encode_ordered(json.object({"a", "b"}, {a = 1, b = 2, c = 3})), '{"a":1,"b":2}', "object: only the listed keys")
T.is(json.encode_ordered(json.array{}), "[]", "array{} encodes as [] with encode_ordered")
T.is(json.encode(json.array{}), "{}", "(cjson's encode does not know json.array)")
T.is(json.encode_ordered(json.array{1, "a"}), '[1,"a"]', "array with values")
T.is(json.encode_ordered({b = 1, a = {1, 2}, c = json.null}), '{"a":[1,2],"b":1,"c":null}', "plain tables: sorted keys")
T.is(json.encode_ordered({}), "{}", "plain empty table: {}")
T.is(json.encode_ordered(json.object({"list", "obj"}, {list = json.array{}, obj = {y = 1, x = 2}})),
     '{"list":[],"obj":{"x":2,"y":1}}', "nesting")
T.is(json.encode_ordered("a/b"), '"a\\/b"', "scalars as json.encode")
T.is(json.encode_ordered(1.5), "1.5", "number")
local o = json.object({"k"})
o.k = "v"
T.is(json.encode_ordered(o), '{"k":"v"}', "object(keys) without a table starts empty")

-- ferry.jsontext: the scanner the rules cut values out of PostgreSQL's
-- JSON text with (no recursion, numbers as written)
local jt = require "ferry.jsontext"
T.is(jt.object_strings('{"a": "x", "b": 2.50, "c": {"d": "y"}, "e": ["z"], "f": null, "g\\"h": "q\\"r"}'),
     {a = "x", ['g"h'] = 'q"r'}, "object_strings: the string members only, escapes resolved")
T.is(jt.object_strings("{}"), {}, "object_strings of {}")
local deep = string.rep("[", 30000) .. string.rep("]", 30000)
T.is(jt.object_strings('{"x": ' .. deep .. ', "text": "beside"}'), {text = "beside"}, "...past any depth")
T.is({jt.scalar("2.50, 1", 1)}, {"2.50", 5}, "scalar: the text as written and the index after it")
local s = '{"k": [1, {"a": "]"}], "m": 1}'
T.is(jt.container_end(s, 7), 21, "container_end: a ']' inside a string does not close it")
for _, bad in ipairs{'{"a" 1}', '{"a": "x"', '["a"]', '{"a": 1 "b": 2}', '{"a": }'} do
  local ok, e = pcall(jt.object_strings, bad)
  T.like(tostring(e), "JSON text$", "object_strings refuses " .. bad)
  T.is(ok, false, "...raising")
end
-- a string with an escape JSON has not ("\q", "\u00", a lone surrogate):
-- "malformed string in JSON text", not cjson's words placed inside ferry's
-- own file ("[ferry]/ferry.jsontext.lua:42: Expected value but found
-- invalid unicode escape code at character 2")
for _, bad in ipairs{'{"a": "\\u00"}', '{"\\q": "x"}', '{"a": "\\ud800"}', '{"a": "\\uZZZZ"}'} do
  T.is({pcall(jt.object_strings, bad)}, {false, "malformed string in JSON text"}, "object_strings refuses " .. bad)
end
T.is({pcall(jt.string_value, '"\\x"', 1, 4)}, {false, "malformed string in JSON text"},
     "string_value refuses an unknown escape")
-- a wrong argument: said as Lua says it, naming the function, at the
-- calling line -- not an index error inside ferry's own ferry.jsontext.lua
-- ("[ferry]/ferry.jsontext.lua:30: bad argument #1 to 'find'")
local function jt_err(f) local ok, e = pcall(f); return not ok and tostring(e) or "no error" end
local JT_HERE = "^[^%[]*20%-json%.t:%d+: bad argument "
T.like(jt_err(function() jt.string_end(nil, 1) end),
       JT_HERE .. "#1 to 'ferry%.jsontext%.string_end' %(string expected, got nil%)$", "jsontext: s not a string")
T.like(jt_err(function() jt.skip_ws("abc") end),
       JT_HERE .. "#2 to 'ferry%.jsontext%.skip_ws' %(an integer expected, got nil%)$", "jsontext: i missing")
T.like(jt_err(function() jt.skip_ws("abc", 9) end),
       JT_HERE .. "#2 to 'ferry%.jsontext%.skip_ws' %(9 is out of the text: 1 to 4%)$", "jsontext: i past the end")
T.like(jt_err(function() jt.scalar("abc", 1.5) end),
       JT_HERE .. "#2 to 'ferry%.jsontext%.scalar' %(number has no integer representation%)$", "jsontext: i a fraction")
T.like(jt_err(function() jt.string_value('"a"', 1, 3.5) end),
       JT_HERE .. "#3 to 'ferry%.jsontext%.string_value' %(number has no integer representation%)$", "jsontext: j a fraction")
T.like(jt_err(function() jt.skip_ws("abc", "2") end),
       JT_HERE .. "#2 to 'ferry%.jsontext%.skip_ws' %(an integer expected, got string%)$", "jsontext: i a numeric string")
-- a float holding a whole number is that position, as Lua's own string
-- functions, db.array's n and copy_rows' n take it (2.0, what arithmetic
-- on positions can give)
T.is(jt.skip_ws("a  b", 2.0), 4, "jsontext: i = 2.0 is 2")
T.is(math.type(jt.skip_ws("a  b", 2.0)), "integer", "...and the index it gives back is an integer")
T.is({jt.scalar("[12, 3]", 2.0)}, {"12", 4}, "jsontext: scalar at 2.0")
T.is(jt.string_value('x"a\\"b"', 2.0, 7.0), 'a"b', "jsontext: string_value from 2.0 to 7.0")
T.is(jt.container_end("[[1]]", 2.0), 4, "jsontext: container_end at 2.0")
T.is(jt.string_end('x"ab"', 2.0), 5, "jsontext: string_end at 2.0")
T.like(jt_err(function() jt.skip_ws("abc", 9.0) end),
       JT_HERE .. "#2 to 'ferry%.jsontext%.skip_ws' %(9 is out of the text: 1 to 4%)$", "jsontext: 9.0 past the end says 9")
T.like(jt_err(function() jt.string_value('"a"', 1, {}) end),
       JT_HERE .. "#3 to 'ferry%.jsontext%.string_value' %(an integer expected, got table%)$", "jsontext: j not a number")
T.like(jt_err(function() jt.container_end("[]", 0) end),
       JT_HERE .. "#2 to 'ferry%.jsontext%.container_end' %(0 is out of the text: 1 to 3%)$", "jsontext: i = 0")
T.like(jt_err(function() jt.object_strings(5) end),
       JT_HERE .. "#1 to 'ferry%.jsontext%.object_strings' %(string expected, got number%)$", "jsontext: a number for s")
T.is(jt.skip_ws("ab", 3), 3, "jsontext: i just past the end is the end")

return T.done()
