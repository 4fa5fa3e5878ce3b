/* The Lua modules the host provides: one C file each. */
#ifndef FERRY_L_MODULES_H
#define FERRY_L_MODULES_H
#include <lua.h>
#include <stdio.h>

/* l_db.c: connections, queries, streaming rows, COPY. The connection string
 * is kept in C (it may hold a password) and never handed to Lua. */
typedef struct db_options {
    const char *conninfo;          /* NULL: libpq defaults and PG* variables */
    const char *lock_timeout;      /* e.g. "5s" */
    const char *statement_timeout; /* e.g. "0" */
    int read_only;                 /* --dry-run: every session read-only */
    int quiet;                     /* --quiet: server notices below WARNING are not shown */
} db_options;
int luaopen_ferry_db(lua_State *L, const db_options *opts);

/* l_json.c: lua-cjson plus compact/truncate helpers. */
int luaopen_ferry_json(lua_State *L);

/* l_uuid.c: v4, v5, valid. */
int luaopen_ferry_uuid(lua_State *L);

/* l_stats.c: counters and per-row errors kept in C. */
int luaopen_ferry_stats(lua_State *L);
/* Prints the statistics block for whatever is in the registry's stats. */
void ferry_stats_print(lua_State *L, FILE *out);

/* l_log.c: log and progress; verbosity flags from the command line. */
typedef struct log_options { int verbose, quiet, json; } log_options;
int luaopen_ferry_log(lua_State *L, const log_options *opts);
int luaopen_ferry_progress(lua_State *L);
/* Lower-level functions the engine prelude needs (time, tty, host, sha256,
 * whether ferry was interrupted). */
int luaopen_ferry_sys(lua_State *L);

/* l_interrupt.c: Ctrl-C and SIGTERM on the Lua side.
 * Raises ferry's "interrupted (SIGINT)" error (exit code 128 + the signal's
 * number) for the signal interrupt.h received; the interruption has then
 * come to L: the hook the signal set on L is taken off (see below). */
int ferry_raise_interrupted(lua_State *L);
/* Called from the signal handler: sets a hook on L (the main thread) and on
 * the coroutine running, if one is, that raises that error at the next Lua
 * instruction, once; from a coroutine it goes on up to the main thread.
 * sys.interrupted() takes it off again (the engine stops the command
 * itself). */
void ferry_arm_interrupt(lua_State *L);
/* sys.interrupted() -> that error when a signal came (taking the hooks
 * off), or nil. */
int ferry_sys_interrupted(lua_State *L);
/* Records L's main thread and replaces coroutine.resume, .wrap and .close
 * (after luaL_openlibs) by versions that keep track of the thread running,
 * for ferry_arm_interrupt. */
void ferry_track_coroutines(lua_State *L);

/* preludes.c (generated): embedded Lua sources by module name. */
const char *ferry_prelude(const char *name, size_t *len);

#endif
