#!/bin/sh
--[[ 2>/dev/null; exec "${FERRY:-ferry}" exec "$0" "$@"; ]]
local T = require("ferry.testing").tap()
-- uuid: v4, v5, valid, the namespace constants.

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return tostring(e)
end

local FORMAT = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

---------------------------------------------------------------- v4
local a, b = uuid.v4(), uuid.v4()
T.like(a, FORMAT, "v4: 8-4-4-4-12 hex digits")
T.is(a, a:lower(), "v4: lower case")
T.is(a:sub(15, 15), "4", "v4: version nibble 4")
T.like(a:sub(20, 20), "^[89ab]$", "v4: RFC 4122 variant (8, 9, a or b)")
T.isnt(a, b, "v4: two calls differ")
local seen, dup, bad = {}, false, 0
for _ = 1, 2000 do
  local u = uuid.v4()
  if seen[u] then dup = true end
  seen[u] = true
  if not (u:match(FORMAT) and u:sub(15, 15) == "4" and u:sub(20, 20):match("[89ab]")) then bad = bad + 1 end
end
T.ok(not dup, "v4: 2000 ids, no duplicate")
T.is(bad, 0, "v4: every one well-formed")
T.is(db.one("SELECT $1::uuid::text AS u", a).u, a, "v4: PostgreSQL reads it as a uuid")

---------------------------------------------------------------- v5
T.is(uuid.NAMESPACE_DNS, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "NAMESPACE_DNS (RFC 4122)")
T.is(uuid.NAMESPACE_URL, "6ba7b811-9dad-11d1-80b4-00c04fd430c8", "NAMESPACE_URL (RFC 4122)")
T.is(uuid.v5(uuid.NAMESPACE_DNS, "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d", "v5: known vector (DNS, python.org)")
T.is(uuid.v5(uuid.NAMESPACE_URL, "http://python.org/"), "4c565f0d-3f5a-5890-b41b-20cf47701c5e", "v5: known vector (URL)")
T.is(uuid.v5("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d",
     "v5: an upper-case namespace is the same namespace")
T.is(uuid.v5(uuid.NAMESPACE_DNS, "python.org"), uuid.v5(uuid.NAMESPACE_DNS, "python.org"), "v5: deterministic")
T.isnt(uuid.v5(uuid.NAMESPACE_DNS, "python.org"), uuid.v5(uuid.NAMESPACE_URL, "python.org"), "v5: the namespace matters")
local v = uuid.v5(uuid.NAMESPACE_DNS, "")
T.like(v, FORMAT, "v5: an empty name works")
T.is(v:sub(15, 15), "5", "v5: version nibble 5")
T.like(v:sub(20, 20), "^[89ab]$", "v5: RFC 4122 variant")
T.isnt(uuid.v5(uuid.NAMESPACE_DNS, "a\0b"), uuid.v5(uuid.NAMESPACE_DNS, "a"), "v5: the name may hold NUL bytes (all bytes count)")
T.is(uuid.v5(uuid.NAMESPACE_DNS, "ünï"), uuid.v5(uuid.NAMESPACE_DNS, "ünï"), "v5: UTF-8 names")
T.is(uuid.v5(uuid.NAMESPACE_DNS, 42), uuid.v5(uuid.NAMESPACE_DNS, "42"), "v5: a number name is its decimal text")
-- a number by its value, not its Lua subtype: json.decode gives 42.0 for
-- the key a database row gives as 42 (the ids differed: "42.0" vs "42")
T.is(uuid.v5(uuid.NAMESPACE_DNS, 42.0), uuid.v5(uuid.NAMESPACE_DNS, "42"), "v5: a whole float is its integer text")
T.is(uuid.v5(uuid.NAMESPACE_DNS, json.decode('{"id": 42}').id), uuid.v5(uuid.NAMESPACE_DNS, 42),
     "v5: a key from json.decode gives the id the same key from a row gives")
T.is(uuid.v5(uuid.NAMESPACE_DNS, -0.0), uuid.v5(uuid.NAMESPACE_DNS, "0"), "v5: -0.0 is 0")
T.is(uuid.v5(uuid.NAMESPACE_DNS, 2^53), uuid.v5(uuid.NAMESPACE_DNS, "9007199254740992"), "v5: 2^53 in full, not 9.007199254741e+15")
T.is(uuid.v5(uuid.NAMESPACE_DNS, 0.1), uuid.v5(uuid.NAMESPACE_DNS, "0.1"), "v5: a fraction: its shortest exact text")
T.is(uuid.v5(uuid.NAMESPACE_DNS, 1/3), uuid.v5(uuid.NAMESPACE_DNS, "0.3333333333333333"), "v5: 1/3 to the digits that give it back")
T.is(uuid.v5(uuid.NAMESPACE_DNS, 1e300), uuid.v5(uuid.NAMESPACE_DNS, "1e+300"), "v5: a float beyond the integers: exponent form")
T.like(err_of(uuid.v5, uuid.NAMESPACE_DNS, 0/0), "bad argument #2 to 'uuid%.v5' %(not a finite number%)", "v5: NaN raises")
T.like(err_of(uuid.v5, uuid.NAMESPACE_DNS, math.huge), "bad argument #2 to 'uuid%.v5' %(not a finite number%)", "v5: inf raises")
-- the id a migration derives from a source row's key
local ns = uuid.v5(uuid.NAMESPACE_URL, "ferry:conversation")
T.is(uuid.v5(ns, "audit:1"), uuid.v5(ns, "audit:1"), "v5 over a derived namespace is stable")
T.like(err_of(uuid.v5, "not-a-uuid", "x"), "bad argument #1 to 'uuid%.v5' %(not a UUID%)", "v5: a bad namespace raises")
T.like(err_of(uuid.v5, uuid.NAMESPACE_DNS), "bad argument #2 to 'uuid%.v5' %(string expected, got no value%)", "v5: the name is required")

---------------------------------------------------------------- valid
T.is(uuid.valid("886313e1-3b8a-5372-9b90-0c9aee199e5d"), true, "valid: lower case")
T.is(uuid.valid("886313E1-3B8A-5372-9B90-0C9AEE199E5D"), true, "valid: upper case")
T.is(uuid.valid(uuid.v4()), true, "valid: a v4")
T.is(uuid.valid("00000000-0000-0000-0000-000000000000"), true, "valid: the nil UUID")
T.is(uuid.valid("886313e13b8a53729b900c9aee199e5d"), false, "valid: no dashes -> false")
T.is(uuid.valid("886313e1-3b8a-5372-9b90-0c9aee199e5d\0"), false, "valid: a NUL byte after the 36 characters -> false")
T.is(pcall(uuid.v5, "886313e1-3b8a-5372-9b90-0c9aee199e5d\0x", "n"), false, "v5: a namespace with bytes after the UUID is refused")
T.is(uuid.valid("{886313e1-3b8a-5372-9b90-0c9aee199e5d}"), false, "valid: braces -> false")
T.is(uuid.valid("886313e1-3b8a-5372-9b90-0c9aee199e5dx"), false, "valid: trailing text -> false")
T.is(uuid.valid(" 886313e1-3b8a-5372-9b90-0c9aee199e5d"), false, "valid: leading space -> false")
T.is(uuid.valid("886313e1-3b8a-5372-9b90-0c9aee199e5"), false, "valid: too short -> false")
T.is(uuid.valid("886313e1-3b8a-5372-9b90-0c9aee199e5g"), false, "valid: a non-hex digit -> false")
T.is(uuid.valid(""), false, "valid: empty -> false")
T.is(uuid.valid(nil), false, "valid: nil -> false")
T.is(uuid.valid(42), false, "valid: a number -> false")
T.is(uuid.valid({}), false, "valid: a table -> false")

return T.done()
