/* Unit tests for the generated preludes.c (tools/embed.c): every embedded
 * Lua prelude comes as source and as bytecode compiled at build time (so
 * that no ferry command spends its start compiling them), and the
 * bytecode keeps what errors and tracebacks show: the chunk name
 * "[ferry]/NAME.lua" and the line numbers.  A Lua that refuses the bytecode
 * (another version than the one ferry was built with) gets the source
 * (ferry_load_prelude). */
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
        /* (popped before the buffer is used: a luaL_Buffer wants its slot
         * on top, and one grown past LUAL_BUFFERSIZE is a box there that a
         * pop after it would free) */
        int active = lua_rawgeti(L, -2, line) != LUA_TNIL;
        lua_pop(L, 1);
        if (active) {
            char num[16];
            snprintf(num, sizeof num, "%d,", line);
            luaL_addstring(&b, num);
        }
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

/* A copy of `name`'s bytecode with byte `at` changed (what a Lua of
 * another version, or a damaged build, would see); `len` its length. */
static char *altered_bytecode(const char *name, size_t at, size_t *len)
{
    const char *bc = ferry_prelude_bytecode(name, len);
    assert_non_null(bc);
    assert_true(*len > at);
    char *copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, bc, *len);
    copy[at] = (char)(copy[at] ^ 0x01);
    return copy;
}

/* The chunk on top of the stack came from the text `src`: the same
 * source name and the same active lines as the source loaded alone. */
static void assert_loaded_as(lua_State *L, const char *name, const char *src, size_t len)
{
    char want[256];
    snprintf(want, sizeof want, FERRY_PRELUDE_CHUNKNAME, name);
    lua_Debug ar;
    lua_pushvalue(L, -1);
    lua_getinfo(L, ">S", &ar);
    assert_string_equal(ar.source, want);
    assert_string_equal(ar.what, "main");
    char *got = active_lines(L);                  /* (pops the chunk) */
    assert_int_equal(luaL_loadbufferx(L, src, len, "=src", "t"), LUA_OK);
    char *from_source = active_lines(L);
    assert_string_equal(got, from_source);
    free(got);
    free(from_source);
}

/* Bytecode of another Lua version (the version byte right after the
 * signature), of another format, or cut short: the source is loaded, with
 * the chunk name the bytecode would have had, and nothing is left on the
 * stack but the chunk. */
static void test_refused_bytecode_falls_back_to_the_source(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    for (int i = 0; ferry_prelude_name(i); i++) {
        const char *name = ferry_prelude_name(i);
        size_t src_len = 0;
        const char *src = ferry_prelude(name, &src_len);
        const size_t bytes[] = {4, 5, 8};        /* version, format, LUAC_DATA */
        for (size_t k = 0; k < sizeof bytes / sizeof bytes[0]; k++) {
            size_t len = 0;
            char *bad = altered_bytecode(name, bytes[k], &len);
            int top = lua_gettop(L);
            assert_int_equal(ferry_load_prelude(L, name, bad, len, src, src_len), LUA_OK);
            assert_int_equal(lua_gettop(L), top + 1);
            assert_int_equal(lua_type(L, -1), LUA_TFUNCTION);
            assert_loaded_as(L, name, src, src_len);
            free(bad);
        }
        size_t len = 0;
        const char *bc = ferry_prelude_bytecode(name, &len);
        assert_int_equal(ferry_load_prelude(L, name, bc, len / 2, src, src_len), LUA_OK);
        assert_loaded_as(L, name, src, src_len);
        assert_int_equal(ferry_load_prelude(L, name, NULL, 0, src, src_len), LUA_OK);
        assert_loaded_as(L, name, src, src_len);
        assert_int_equal(lua_gettop(L), 0);
    }
    lua_close(L);
}

/* The bytecode comes first: with it good, the source is not even read (a
 * source that does not compile does not matter); with both bad, the
 * source's error is the one given, under the prelude's chunk name. */
static void test_bytecode_first_and_the_source_error_last(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    const char *name = ferry_prelude_name(0);
    size_t len = 0;
    const char *bc = ferry_prelude_bytecode(name, &len);
    const char *broken = "local x = = 1\n";
    assert_int_equal(ferry_load_prelude(L, name, bc, len, broken, strlen(broken)), LUA_OK);
    size_t src_len = 0;
    const char *src = ferry_prelude(name, &src_len);
    assert_loaded_as(L, name, src, src_len);

    char *bad = altered_bytecode(name, 4, &len);
    assert_int_equal(ferry_load_prelude(L, name, bad, len, broken, strlen(broken)), LUA_ERRSYNTAX);
    assert_int_equal(lua_gettop(L), 1);
    char want[256];
    snprintf(want, sizeof want, "[ferry]/%s.lua:1: unexpected symbol near '='", name);
    assert_string_equal(lua_tostring(L, -1), want);
    free(bad);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_prelude_has_loadable_bytecode),
        cmocka_unit_test(test_bytecode_keeps_the_line_numbers),
        cmocka_unit_test(test_refused_bytecode_falls_back_to_the_source),
        cmocka_unit_test(test_bytecode_first_and_the_source_error_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
