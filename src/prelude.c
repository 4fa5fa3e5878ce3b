/* Loading an embedded prelude (the chunk; main.c's package.preload loader
 * runs it): its bytecode, compiled at build time by tools/embed.c, or its
 * source when this Lua refuses that bytecode. */
#include <lauxlib.h>
#include <lua.h>

#include "l_modules.h"

int ferry_load_prelude(lua_State *L, const char *name, const char *bc, size_t bc_len,
                       const char *src, size_t src_len) {
    const char *chunkname = lua_pushfstring(L, FERRY_PRELUDE_CHUNKNAME, name);
    /* A Lua of another version or build refuses the bytecode (its header
     * says which Lua wrote it): then the source, which any 5.4 compiles.
     * Both carry the same chunk name and line numbers (embed does not
     * strip), so errors and tracebacks read the same either way. */
    if (bc && luaL_loadbufferx(L, bc, bc_len, chunkname, "b") == LUA_OK) {
        lua_remove(L, -2);                          /* the chunk name */
        return LUA_OK;
    }
    if (bc) lua_pop(L, 1);                          /* the refusal */
    int rc = luaL_loadbufferx(L, src, src_len, chunkname, "t");
    lua_remove(L, -2);
    return rc;
}
