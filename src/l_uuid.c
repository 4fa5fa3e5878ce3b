/* l_uuid.c: the Lua "uuid" module: random (v4) and name-based (v5) UUIDs.
 * Deterministic v5 ids make idempotency cheap: the same source row always
 * maps to the same primary key. */
#include <lua.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "argcheck.h"
#include "hash.h"
#include "l_modules.h"

static void push_uuid(lua_State *L, const uuid_t u) {
    char out[37];
    uuid_format_text(u, out);
    lua_pushlstring(L, out, 36);
}

/* 1 when the Lua value at idx is a UUID in its 36-character text form. */
static int to_uuid(lua_State *L, int idx, uuid_t out) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return s && len == 36 && uuid_parse_text(s, out) == 0;
}

/* uuid.v4() -> random UUID text. */
static int uuid_v4(lua_State *L) {
    uuid_t u;
    uuid_generate_random(u);
    push_uuid(L, u);
    return 1;
}

/* The text of the number at idx, by its value and not its Lua subtype:
 * json.decode gives 42.0 for a key a row gives as 42, and both must name
 * the same id.  Whole numbers as integers (2^53 in full), other floats in
 * the fewest digits that read back as the same double. */
static const char *number_name(lua_State *L, int idx, char *buf, size_t n, size_t *len) {
    lua_Number d = lua_tonumber(L, idx);
    lua_Integer i;
    if (lua_isinteger(L, idx)) {
        snprintf(buf, n, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else if (!isfinite(d)) {
        ferry_argerror(L, idx, "uuid.v5", "not a finite number");
    } else if (d == floor(d) && lua_numbertointeger(d, &i)) {
        snprintf(buf, n, LUA_INTEGER_FMT, (LUAI_UACINT)i);
    } else {
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, n, "%.*g", digits, d);
            if (strtod(buf, NULL) == d) break;
        }
    }
    *len = strlen(buf);
    return buf;
}

/* uuid.v5(namespace_uuid, name) -> UUID text (RFC 4122 section 4.3). */
static int uuid_v5(lua_State *L) {
    size_t len;
    ferry_checklstring(L, 1, "uuid.v5", &len);
    char num[64];
    const char *name = lua_type(L, 2) == LUA_TNUMBER ? number_name(L, 2, num, sizeof num, &len)
                                                     : ferry_checklstring(L, 2, "uuid.v5", &len);
    uuid_t nsu, out;
    if (!to_uuid(L, 1, nsu)) return ferry_argerror(L, 1, "uuid.v5", "not a UUID");
    uuid5_generate(nsu, name, len, out);
    push_uuid(L, out);
    return 1;
}

/* uuid.valid(s) -> true when s is a UUID in its 36-character text form. */
static int uuid_valid(lua_State *L) {
    uuid_t u;
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && to_uuid(L, 1, u));
    return 1;
}

static const luaL_Reg funcs[] = {{"v4", uuid_v4}, {"v5", uuid_v5}, {"valid", uuid_valid}, {NULL, NULL}};

int luaopen_ferry_uuid(lua_State *L) {
    luaL_newlib(L, funcs);
    lua_pushliteral(L, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    lua_setfield(L, -2, "NAMESPACE_DNS");
    lua_pushliteral(L, "6ba7b811-9dad-11d1-80b4-00c04fd430c8");
    lua_setfield(L, -2, "NAMESPACE_URL");
    return 1;
}
