/* l_stats.c: the Lua "stats" module.  Counters and per-row errors live in
 * C, in a userdata that is both the functions' upvalue and a registry
 * entry, so the host can still print the summary after a Lua error. */
#include <lua.h>
#include <lauxlib.h>
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "argcheck.h"
#include "ferry.h"
#include "jsontext.h"
#include "l_modules.h"

#define MAX_KEPT_ERRORS 1000   /* all are counted; the first ones are kept */

typedef struct counter { char *name; long long value; } counter;
typedef struct row_error { char *key; char *message; } row_error;

typedef struct stats_state {
    counter *counters;
    int ncounters, cap;
    row_error *errors;
    int nerrors, ecap;
    long long max_errors;      /* < 0: no limit */
    unsigned long resets;      /* clear_all()s so far: the kept strings were freed */
} stats_state;

#define STATE(L) ((stats_state *)lua_touserdata(L, lua_upvalueindex(1)))

static void clear_all(stats_state *s) {
    for (int i = 0; i < s->ncounters; i++) free(s->counters[i].name);
    for (int i = 0; i < s->nerrors; i++) { free(s->errors[i].key); free(s->errors[i].message); }
    s->ncounters = s->nerrors = 0;
    s->resets++;
}

static int stats_gc(lua_State *L) {
    stats_state *s = lua_touserdata(L, 1);
    clear_all(s);
    free(s->counters);
    free(s->errors);
    s->counters = NULL;
    s->errors = NULL;
    s->cap = s->ecap = 0;
    return 0;
}

static counter *find(stats_state *s, const char *name) {
    for (int i = 0; i < s->ncounters; i++)
        if (strcmp(s->counters[i].name, name) == 0) return &s->counters[i];
    return NULL;
}

static counter *find_or_add(lua_State *L, stats_state *s, const char *name) {
    counter *c = find(s, name);
    if (c) return c;
    if (s->ncounters == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        counter *nc = realloc(s->counters, (size_t)cap * sizeof *nc);
        if (!nc) luaL_error(L, "stats: out of memory");
        s->counters = nc;
        s->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) luaL_error(L, "stats: out of memory");
    c = &s->counters[s->ncounters++];
    c->name = copy;
    c->value = 0;
    return c;
}

/* The counter name at idx, checked.  With found, its counter goes there
 * (NULL when there is none yet), and only a new name's UTF-8 is checked --
 * an existing counter's was when it was made: stats.inc runs for every
 * row, and needs no more than the lookup it does anyway.  (No allocation
 * happens here after the lookup: the caller may use *found until it
 * allocates.) */
static const char *check_name(lua_State *L, int idx, const char *fn, stats_state *s, counter **found) {
    size_t len;
    const char *name = ferry_checklstring(L, idx, fn, &len);
    if (len == 0) ferry_argerror(L, idx, fn, "empty counter name");
    /* the name is kept as a C string: "a\0b" would be counter "a" */
    if (strlen(name) != len) ferry_argerror(L, idx, fn, "counter name contains a NUL byte");
    counter *c = found ? find(s, name) : NULL;
    /* (the names are keys of the history row's jsonb, which the server
     * refuses otherwise: the run could not be recorded) */
    if (!c && !utf8_valid(name, len)) ferry_argerror(L, idx, fn, "counter name is not valid UTF-8");
    if (found) *found = c;
    return name;
}

/* A name of stats.declare{names}: what is wrong with it is said as an
 * error of argument #1, naming the element (check_name, given the
 * element's stack index, would say "bad argument #-1"). */
static const char *check_listed_name(lua_State *L, lua_Integer i) {
    size_t len;
    const char *name = lua_isstring(L, -1) ? lua_tolstring(L, -1, &len) : NULL;   /* a number too, as check_name */
    if (!name)
        ferry_argerror(L, 1, "stats.declare", lua_pushfstring(L, "name %I: string expected, got %s", i, luaL_typename(L, -1)));
    if (len == 0) ferry_argerror(L, 1, "stats.declare", lua_pushfstring(L, "name %I: empty counter name", i));
    if (strlen(name) != len)
        ferry_argerror(L, 1, "stats.declare", lua_pushfstring(L, "name %I: counter name contains a NUL byte", i));
    if (!utf8_valid(name, len))
        ferry_argerror(L, 1, "stats.declare", lua_pushfstring(L, "name %I: counter name is not valid UTF-8", i));
    return name;
}

/* stats.declare(name, ...) or stats.declare{names}: counters at 0, in the
 * order the summary prints them.  Every name is checked before any counter
 * is created: a call that raises declares nothing. */
static int stats_declare(lua_State *L) {
    stats_state *s = STATE(L);
    if (lua_istable(L, 1)) {
        /* (luaL_len's own "object length is not an integer" names nothing) */
        lua_len(L, 1);
        int is_int;
        lua_Integer n = lua_tointegerx(L, -1, &is_int);
        if (!is_int) return ferry_argerror(L, 1, "stats.declare", "its length is not an integer");
        lua_pop(L, 1);
        for (int pass = 0; pass < 2; pass++) {
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, 1, i);
                const char *name = check_listed_name(L, i);
                if (pass == 1) find_or_add(L, s, name);
                lua_pop(L, 1);
            }
        }
        return 0;
    }
    int top = lua_gettop(L);
    for (int i = 1; i <= top; i++) check_name(L, i, "stats.declare", s, NULL);
    for (int i = 1; i <= top; i++) find_or_add(L, s, lua_tostring(L, i));
    return 0;
}

/* stats.inc(name [, n]) -> new value.  The arguments are checked before
 * the counter is created (a call that raises creates none). */
static int stats_inc(lua_State *L) {
    stats_state *s = STATE(L);
    counter *c;
    const char *name = check_name(L, 1, "stats.inc", s, &c);
    lua_Integer n = ferry_optinteger(L, 2, "stats.inc", 1);
    if (!c) c = find_or_add(L, s, name);
    long long v;
    if (__builtin_add_overflow(c->value, n, &v))       /* the counter is left as it was */
        return luaL_error(L, "stats.inc: counter %s would overflow", name);   /* (c's may be freed meanwhile) */
    c->value = v;
    lua_pushinteger(L, c->value);
    return 1;
}

static int stats_set(lua_State *L) {
    stats_state *s = STATE(L);
    counter *c;
    const char *name = check_name(L, 1, "stats.set", s, &c);
    lua_Integer v = ferry_checkinteger(L, 2, "stats.set");      /* before the counter exists */
    if (!c) c = find_or_add(L, s, name);
    c->value = v;
    return 0;
}

static int stats_get(lua_State *L) {
    size_t len;
    const char *name = ferry_checklstring(L, 1, "stats.get", &len);
    counter *c = strlen(name) == len ? find(STATE(L), name) : NULL;   /* no counter has a NUL */
    lua_pushinteger(L, c ? c->value : 0);
    return 1;
}

/* A kept key or message is cut to this many bytes (at a character
 * boundary), then its size is said: a rule failing on big payloads would
 * otherwise keep megabytes per row, more than the run record can store. */
#define KEPT_KEY_MAX 200
#define KEPT_MESSAGE_MAX 2000

/* A copy of s (len bytes), cut to at most max bytes as said above; NULL when
 * out of memory. */
static char *kept_copy(const char *s, size_t len, size_t max) {
    if (len <= max) return strndup(s, len);
    size_t cut = utf8_cut(s, max);                   /* not inside a character */
    char tail[64];
    int tl = snprintf(tail, sizeof tail, "... (%zu bytes in all)", len);
    char *out = malloc(cut + (size_t)tl + 1);
    if (!out) return NULL;
    memcpy(out, s, cut);
    memcpy(out + cut, tail, (size_t)tl + 1);
    return out;
}

/* stats.error(key, message): records a failed row and counts it in
 * "errors"; raises once the count passes stats.max_errors(). */
static int stats_error(lua_State *L) {
    stats_state *s = STATE(L);
    size_t klen, mlen;
    const char *key = luaL_tolstring(L, 1, &klen);
    const char *msg = luaL_tolstring(L, 2, &mlen);
    counter *c = find_or_add(L, s, "errors");
    /* (stats.set can put it at the largest integer: wrapped round, no
     * --max-errors would ever stop the run.  No position: luaL_error's
     * would be the engine's wrapper of stats.error, not the caller's.) */
    if (c->value == LLONG_MAX) {
        lua_pushliteral(L, "stats.error: counter errors would overflow");
        return lua_error(L);
    }
    c->value++;
    if (s->nerrors < MAX_KEPT_ERRORS) {
        if (s->nerrors == s->ecap) {
            int cap = s->ecap ? s->ecap * 2 : 16;
            row_error *ne = realloc(s->errors, (size_t)cap * sizeof *ne);
            if (!ne) return luaL_error(L, "stats: out of memory");
            s->errors = ne;
            s->ecap = cap;
        }
        char *k = kept_copy(key, klen, KEPT_KEY_MAX), *m = kept_copy(msg, mlen, KEPT_MESSAGE_MAX);
        if (!k || !m) { free(k); free(m); return luaL_error(L, "stats: out of memory"); }
        s->errors[s->nerrors].key = k;
        s->errors[s->nerrors].message = m;
        s->nerrors++;
    }
    /* (read now: a finalizer run by an allocation below may move or free c) */
    long long count = c->value;
    if (s->max_errors >= 0 && count > s->max_errors) {
        lua_Integer limit = (lua_Integer)s->max_errors;
        lua_createtable(L, 0, 3);
        luaL_setmetatable(L, FERRY_ERROR_MT);
        lua_pushinteger(L, FERRY_EXIT_FAIL);
        lua_setfield(L, -2, "code");
        lua_pushfstring(L, "too many row errors (%I, more than --max-errors %I): stopped; "
                        "everything committed so far is kept, fix the rule and re-run to resume",
                        (lua_Integer)count, limit);
        lua_setfield(L, -2, "message");
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "max_errors");
        return lua_error(L);
    }
    return 0;
}

/* The lists below are built with Lua allocations, any of which may run a
 * __gc finalizer that calls stats.reset() and frees the kept strings: each
 * string is read only while no reset happened since the list began (its
 * copy is made before the allocation's collector step), and the list stops
 * where a reset came. */
#define RESET_SINCE(s, at) ((s)->resets != (at))

/* stats.errors() -> { {key=, message=}, ... } (the first 1000) */
static int stats_errors(lua_State *L) {
    stats_state *s = STATE(L);
    unsigned long at = s->resets;
    int n = s->nerrors;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n && !RESET_SINCE(s, at); i++) {
        lua_pushstring(L, s->errors[i].key);
        if (RESET_SINCE(s, at)) { lua_pop(L, 1); break; }
        lua_pushstring(L, s->errors[i].message);
        lua_createtable(L, 0, 2);
        lua_insert(L, -3);
        lua_setfield(L, -3, "message");
        lua_setfield(L, -2, "key");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* stats.counters() -> { {name=, value=}, ... } in declaration order */
static int stats_counters(lua_State *L) {
    stats_state *s = STATE(L);
    unsigned long at = s->resets;
    int n = s->ncounters;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n && !RESET_SINCE(s, at); i++) {
        long long value = s->counters[i].value;
        lua_pushstring(L, s->counters[i].name);
        lua_createtable(L, 0, 2);
        lua_insert(L, -2);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, value);
        lua_setfield(L, -2, "value");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int stats_reset(lua_State *L) {
    stats_state *s = STATE(L);
    clear_all(s);
    return 0;
}

static int stats_max_errors(lua_State *L) {
    stats_state *s = STATE(L);
    lua_Integer old = s->max_errors;
    if (!lua_isnone(L, 1)) s->max_errors = ferry_checkinteger(L, 1, "stats.max_errors");
    lua_pushinteger(L, old);
    return 1;
}

/* The summary goes to a Lua buffer or a FILE (a run that died). */
static void emit(luaL_Buffer *b, FILE *f, const char *s, size_t n) {
    if (b) luaL_addlstring(b, s, n); else fwrite(s, 1, n, f);
}

/* Each name humanized ("conversations_created" -> "Conversations
 * created"), values aligned two columns after the longest name.  Written
 * piece by piece: a name of any length stays whole (fixed buffers cut a
 * long one, and the padding after it overran the line, losing its value
 * and every line after it).  Into a Lua buffer, each piece may grow it,
 * and that allocation run a finalizer that calls stats.reset(), which
 * frees the name being copied: the text ends where a reset came (as
 * stats.counters()' list does), each byte read before the piece that may
 * run it. */
#define EMIT(p, n) do { emit(b, f, (p), (n)); if (RESET_SINCE(s, at)) return; } while (0)
static void print_summary(stats_state *s, luaL_Buffer *b, FILE *f) {
    unsigned long at = s->resets;
    size_t width = 0;
    for (int i = 0; i < s->ncounters; i++)
        if (strlen(s->counters[i].name) > width) width = strlen(s->counters[i].name);
    static const char title[] = "\xF0\x9F\x93\x8A Statistics:\n";
    EMIT(title, sizeof title - 1);
    for (int i = 0; i < s->ncounters; i++) {
        const char *name = s->counters[i].name;
        size_t len = strlen(name);
        EMIT("   ", 3);
        for (size_t j = 0; j < len; j++) {
            char c = name[j] == '_' ? ' ' : (j == 0 ? (char)toupper((unsigned char)name[j]) : name[j]);
            EMIT(&c, 1);
        }
        EMIT(":", 1);
        for (size_t j = len; j < width + 2; j++) EMIT(" ", 1);
        char value[32];
        int n = snprintf(value, sizeof value, "%lld\n", s->counters[i].value);
        EMIT(value, (size_t)n);
    }
}
#undef EMIT

/* stats.summary() -> the statistics block as text */
static int stats_summary(lua_State *L) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    print_summary(STATE(L), &b, NULL);
    luaL_pushresult(&b);
    return 1;
}

void ferry_stats_print(lua_State *L, FILE *out) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, FERRY_STATS_KEY) == LUA_TUSERDATA) {
        stats_state *s = lua_touserdata(L, -1);
        if (s->ncounters > 0) { fputc('\n', out); print_summary(s, NULL, out); }
    }
    lua_pop(L, 1);
}

static const luaL_Reg funcs[] = {
    {"declare", stats_declare}, {"inc", stats_inc}, {"set", stats_set}, {"get", stats_get},
    {"error", stats_error}, {"errors", stats_errors}, {"counters", stats_counters},
    {"reset", stats_reset}, {"max_errors", stats_max_errors}, {"summary", stats_summary},
    {NULL, NULL}
};

int luaopen_ferry_stats(lua_State *L) {
    stats_state *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->max_errors = -1;
    lua_newtable(L);
    lua_pushcfunction(L, stats_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, FERRY_STATS_KEY);
    luaL_newlibtable(L, funcs);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, funcs, 1);
    lua_remove(L, -2);
    return 1;
}
