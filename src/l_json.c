/* l_json.c: the Lua "json" module: lua-cjson's encode/decode plus the
 * helpers rules need that cjson lacks (PostgreSQL-exact compact JSON and
 * UTF-8-safe cuts), implemented in jsontext.c. */
#include <lua.h>
#include <lauxlib.h>
#include <lua-cjson.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

#include "argcheck.h"
#include "jsontext.h"
#include "l_modules.h"

/* Deep enough for the 10,000-level payloads webhooks have been seen to
 * send; cjson's default (1000) would refuse them. */
#define JSON_MAX_DEPTH 20000

/* json.compact(pg_json_text [, max_chars]) -> compact text.  The input is
 * jsonb's text form (payload::text); whitespace between tokens goes, every
 * other byte stays, so key order, escapes and number text are PostgreSQL's. */
static int json_compact(lua_State *L) {
    size_t len;
    const char *s = ferry_checklstring(L, 1, "json.compact", &len);
    lua_Integer max = ferry_optinteger(L, 2, "json.compact", -1);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len ? len : 1);
    size_t n = jsontext_compact(s, len, out);
    if (max >= 0) n = utf8_prefix_bytes(out, n, (size_t)max);
    luaL_pushresultsize(&b, n);
    return 1;
}

/* json.truncate(s, n) -> the first n UTF-8 characters of s. */
static int json_truncate(lua_State *L) {
    size_t len;
    const char *s = ferry_checklstring(L, 1, "json.truncate", &len);
    lua_Integer max = ferry_checkinteger(L, 2, "json.truncate");
    if (max < 0) ferry_argerror(L, 2, "json.truncate", "must be >= 0");
    lua_pushlstring(L, s, utf8_prefix_bytes(s, len, (size_t)max));
    return 1;
}

/* json.has_text(v) -> true when v is a string with a non-whitespace char. */
static int json_has_text(lua_State *L) {
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING) { lua_pushboolean(L, 0); return 1; }
    const char *s = lua_tolstring(L, 1, &len);
    lua_pushboolean(L, text_has_content(s, len));
    return 1;
}

static int json_utf8_len(lua_State *L) {
    size_t len;
    const char *s = ferry_checklstring(L, 1, "json.utf8_len", &len);
    lua_pushinteger(L, (lua_Integer)utf8_char_count(s, len));
    return 1;
}

static int json_utf8_valid(lua_State *L) {
    size_t len;
    const char *s = ferry_checklstring(L, 1, "json.utf8_valid", &len);
    lua_pushboolean(L, utf8_valid(s, len));
    return 1;
}

static const luaL_Reg helpers[] = {
    {"compact", json_compact}, {"truncate", json_truncate}, {"has_text", json_has_text},
    {"utf8_len", json_utf8_len}, {"utf8_valid", json_utf8_valid}, {NULL, NULL}
};

static void call_setting(lua_State *L, const char *name, lua_Integer v) {
    lua_getfield(L, -1, name);
    lua_pushinteger(L, v);
    lua_call(L, 1, 0);
}

/* cjson's depth settings, bounded: its decoder and encoder recurse on the C
 * stack, a frame or more per level, so a limit raised far past ours let a
 * deep enough document overflow the stack -- a crash, not an error.
 * Upvalue 1: cjson's setter. */
static int bounded_depth(lua_State *L) {
    /* checked here, not by cjson: an error raised under lua_call could not
     * name the function ("bad argument #2 to '?'") */
    luaL_argcheck(L, lua_gettop(L) <= 1, 2, "found too many arguments");
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer d = luaL_checkinteger(L, 1);
        luaL_argcheck(L, d >= 1, 1, "expected integer between 1 and 20000");
        luaL_argcheck(L, d <= JSON_MAX_DEPTH, 1, "at most 20000 (deeper nesting would overflow the C stack)");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* cjson's on/off setters, checked in front: cjson quotes an invalid
 * option whole ("invalid option '<1 MB>'").  Here it is cut to 60
 * characters, as ferry's Lua messages cut a script's values
 * (errors.shown).  Upvalue 1: cjson's setter; upvalue 2: whether "null" is
 * one of its options (encode_invalid_numbers); upvalue 3: how many
 * arguments it takes. */
#define SHOWN_CHARS 60
static int checked_option(lua_State *L) {
    /* every check cjson makes is made here, so that cjson raises none: one
     * raised under lua_call could not name the function ('?') */
    int nargs = (int)lua_tointeger(L, lua_upvalueindex(3));
    luaL_argcheck(L, lua_gettop(L) <= nargs, nargs + 1, "found too many arguments");
    if (!lua_isnoneornil(L, 1) && !lua_isboolean(L, 1)) {
        size_t len;
        const char *s = luaL_checklstring(L, 1, &len);
        int null_ok = lua_toboolean(L, lua_upvalueindex(2));
        if (strcmp(s, "on") != 0 && strcmp(s, "off") != 0 && !(null_ok && strcmp(s, "null") == 0)) {
            size_t keep = utf8_prefix_bytes(s, len, SHOWN_CHARS);
            return luaL_argerror(L, 1, lua_pushfstring(L, "invalid option '%s%s'",
                                                       lua_pushlstring(L, s, keep), keep < len ? "..." : ""));
        }
    }
    for (int i = 2; i <= nargs; i++) {         /* encode_sparse_array's ratio and safe */
        if (lua_isnoneornil(L, i)) continue;
        lua_Integer v = luaL_checkinteger(L, i);
        luaL_argcheck(L, v >= 0 && v <= INT_MAX, i, "expected integer between 0 and 2147483647");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int json_new(lua_State *L);

/* Puts bounded_depth in front of the depth setters of the cjson instance on
 * top of the stack, and json_new in place of its new (which would make an
 * instance without them). */
static void bound_depths(lua_State *L) {
    static const char *const setters[] = {"decode_max_depth", "encode_max_depth"};
    for (size_t i = 0; i < sizeof setters / sizeof *setters; i++) {
        lua_getfield(L, -1, setters[i]);
        lua_pushcclosure(L, bounded_depth, 1);
        lua_setfield(L, -2, setters[i]);
    }
    /* (a setter this cjson build lacks is skipped) */
    static const struct { const char *name; int null_ok, nargs; } options[] = {
        {"encode_keep_buffer", 0, 1},         {"encode_invalid_numbers", 1, 1},
        {"decode_invalid_numbers", 0, 1},     {"encode_sparse_array", 0, 3},
        {"encode_escape_forward_slash", 0, 1}, {"decode_array_with_array_mt", 0, 1},
        {"encode_empty_table_as_object", 0, 1},
    };
    for (size_t i = 0; i < sizeof options / sizeof *options; i++) {
        if (lua_getfield(L, -1, options[i].name) != LUA_TFUNCTION) { lua_pop(L, 1); continue; }
        lua_pushboolean(L, options[i].null_ok);
        lua_pushinteger(L, options[i].nargs);
        lua_pushcclosure(L, checked_option, 3);
        lua_setfield(L, -2, options[i].name);
    }
    lua_getfield(L, -1, "new");
    if (lua_tocfunction(L, -1) == json_new) {        /* already ours: its upvalue is cjson's */
        lua_pop(L, 1);
        return;
    }
    lua_pushcclosure(L, json_new, 1);
    lua_setfield(L, -2, "new");
}

/* new() of an instance: cjson's (upvalue 1), with the depths bounded. */
static int json_new(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 0, 1);
    bound_depths(L);
    return 1;
}

int luaopen_ferry_json(lua_State *L) {
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    lua_getfield(L, -1, "new");      /* an instance of our own: its settings are ours */
    lua_call(L, 0, 1);
    lua_insert(L, -2);
    bound_depths(L);                 /* require "cjson" gives the bounded module too */
    lua_pop(L, 1);
    bound_depths(L);
    call_setting(L, "decode_max_depth", JSON_MAX_DEPTH);
    call_setting(L, "encode_max_depth", JSON_MAX_DEPTH);
    call_setting(L, "encode_number_precision", 14);
    luaL_setfuncs(L, helpers, 0);
    return 1;
}
