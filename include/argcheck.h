/* Argument checks for the C functions of ferry's Lua modules that name the
 * function as the API documents it ('stats.declare', 'uuid.v5'), whatever
 * the call looks like.  luaL_argerror takes the name from the call site:
 * 'declare' for stats.declare{...}, 'v5' for uuid.v5(...), and the
 * module's name only for a call through pcall(f, ...) -- one function, two
 * messages.  As luaL_argerror, the error is raised at the caller's line. */
#ifndef FERRY_ARGCHECK_H
#define FERRY_ARGCHECK_H
#include <lua.h>
#include <lauxlib.h>

static inline int ferry_argerror(lua_State *L, int arg, const char *fn, const char *msg) {
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fn, msg);
}

/* "<tname> expected, got <type>", the type named as luaL_typeerror names it */
static inline int ferry_typeerror(lua_State *L, int arg, const char *fn, const char *tname) {
    const char *got;
    if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
    else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) got = "light userdata";
    else got = luaL_typename(L, arg);
    return ferry_argerror(L, arg, fn, lua_pushfstring(L, "%s expected, got %s", tname, got));
}

static inline const char *ferry_checklstring(lua_State *L, int arg, const char *fn, size_t *len) {
    const char *s = lua_tolstring(L, arg, len);
    if (!s) ferry_typeerror(L, arg, fn, "string");
    return s;
}

static inline lua_Integer ferry_checkinteger(lua_State *L, int arg, const char *fn) {
    int is_int;
    lua_Integer v = lua_tointegerx(L, arg, &is_int);
    if (!is_int) {
        if (lua_isnumber(L, arg)) ferry_argerror(L, arg, fn, "number has no integer representation");
        else ferry_typeerror(L, arg, fn, "number");
    }
    return v;
}

static inline lua_Integer ferry_optinteger(lua_State *L, int arg, const char *fn, lua_Integer def) {
    return lua_isnoneornil(L, arg) ? def : ferry_checkinteger(L, arg, fn);
}

#endif
