/* Unit tests for the generated preludes.c (tools/embed.c): every embedded
 * Lua prelude comes as source and as bytecode compiled at build time (so
 * that no ferry command spends its start compiling them), and the
 * bytecode keeps what errors and tracebacks show: the chunk name
 * "[ferry]/NAME.lua" and the line numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "l_modules.h"

/* Loads `name`'s bytecode (binary chunks only), leaving its function on
 * the stack; fails the test when there is none or it does not load. */
static void load_bytecode(lua_State *L, const char *name)
{
    size_t len = 0;
    const char *bc = ferry_prelude_bytecode(name, &len);
    assert_non_null(bc);
    assert_true(len > 4);
    assert_memory_equal(bc, LUA_SIGNATURE, 4);
    int rc = luaL_loadbufferx(L, bc, len, "ignored for binary chunks", "b");
    if (rc != LUA_OK) fail_msg("%s: %s", name, lua_tostring(L, -1));
}

static void test_every_prelude_has_loadable_bytecode(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    int n = 0;
    for (int i = 0; ferry_prelude_name(i); i++, n++) {
        const char *name = ferry_prelude_name(i);
        size_t len = 0;
        assert_non_null(ferry_prelude(name, &len));     /* the source stays */
        load_bytecode(L, name);
        lua_Debug ar;
        lua_getinfo(L, ">S", &ar);
        char want[256];
        snprintf(want, sizeof want, "=[ferry]/%s.lua", name);
        assert_string_equal(ar.source, want);
        assert_string_equal(ar.what, "main");
    }
    assert_true(n >= 5);
    assert_null(ferry_prelude_bytecode("no.such.prelude", &(size_t){0}));
    lua_close(L);
}

/* The active lines of a chunk's main function, as one string ("1,4,9,"),
 * from the function on top of the stack (popped). */
static char *active_lines(lua_State *L)
{
    lua_Debug ar;
    lua_getinfo(L, ">L", &ar);                 /* pushes a set: line -> true */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int max = 0;
    lua_pushnil(L);
    while (lua_next(L, -3)) {                  /* (the buffer sits above it) */
        if (lua_tointeger(L, -2) > max) max = (int)lua_tointeger(L, -2);
        lua_pop(L, 1);
    }
    for (int line = 1; line <= max; line++) {
        if (lua_rawgeti(L, -2, line) != LUA_TNIL) {
            char num[16];
            snprintf(num, sizeof num, "%d,", line);
            luaL_addstring(&b, num);
        }
        lua_pop(L, 1);
    }
    luaL_pushresult(&b);
    char *s = strdup(lua_tostring(L, -1));
    lua_pop(L, 2);
    return s;
}

/* The bytecode is not stripped: its line table is the source's, so an
 * error or a traceback from a prelude gives the same line either way. */
static void test_bytecode_keeps_the_line_numbers(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    for (int i = 0; ferry_prelude_name(i); i++) {
        const char *name = ferry_prelude_name(i);
        size_t len = 0;
        const char *src = ferry_prelude(name, &len);
        assert_int_equal(luaL_loadbufferx(L, src, len, "=src", "t"), LUA_OK);
        char *from_source = active_lines(L);
        load_bytecode(L, name);
        char *from_bytecode = active_lines(L);
        assert_true(strlen(from_source) > 20);
        assert_string_equal(from_bytecode, from_source);
        free(from_source);
        free(from_bytecode);
    }
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_prelude_has_loadable_bytecode),
        cmocka_unit_test(test_bytecode_keeps_the_line_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
