/* ferry: the host.  Parses the command line, builds one Lua state with the
 * host's modules, and runs the embedded engine prelude inside a single
 * protected call with a traceback message handler (the pattern of lua.c). */
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry.h"
#include "interrupt.h"
#include "l_modules.h"
#include "pgconn.h"

typedef struct cli {
    db_options db;
    log_options log;
    int argc;
    char **argv;        /* a copy of main's: that one is scrubbed (scrub_passwords) */
} cli;

/* Options that take a value; everything else starting with '-' is a flag. */
static const char *const value_options[] = {
    "--db", "--dir", "--to", "--batch-size", "--jobs", "--max-errors",
    "--lock-timeout", "--statement-timeout", NULL
};
static const char *const flag_options[] = {
    "--verbose", "-v", "--quiet", "-q", "--json", "--dry-run", "--help", "-h",
    "--version", "--sql", "--pipeline", "--force", NULL
};

static int in_list(const char *const *list, const char *s, size_t n) {
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == n && strncmp(list[i], s, n) == 0) return 1;
    return 0;
}

/* Pushes a table {flags = {name = value|true}, args = {...}} built from argv,
 * or raises a usage error (a table {code = 2, message = ...}). */
static void push_usage_error(lua_State *L, const char *fmt, const char *arg) {
    lua_createtable(L, 0, 2);
    luaL_setmetatable(L, FERRY_ERROR_MT);
    lua_pushinteger(L, FERRY_EXIT_USAGE);
    lua_setfield(L, -2, "code");
    lua_pushfstring(L, fmt, arg);
    lua_setfield(L, -2, "message");
}

static int push_cli(lua_State *L, int argc, char **argv) {
    lua_createtable(L, 0, 2);
    lua_newtable(L);  /* flags */
    lua_newtable(L);  /* args */
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, ++nargs); }
            break;
        }
        if (a[0] != '-' || a[1] == '\0') { lua_pushstring(L, a); lua_rawseti(L, -2, ++nargs); continue; }
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const char *name = a[1] == '-' ? a + 2 : a + 1;
        size_t name_len = n - (size_t)(name - a);
        if (in_list(value_options, a, n)) {
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) { push_usage_error(L, "option %s needs a value", a); return 0; }
            /* --db "$UNSET": libpq would take the PG* variables' database --
             * another than the one meant, and no error to say so */
            if (strncmp(a, "--db", n) == 0 && !*v) {
                push_usage_error(L, "option %s is empty: give a connection string, or leave --db out (then "
                                    "DATABASE_URL, then libpq's PG* variables, are used)", "--db");
                return 0;
            }
            /* "ferry --db status": the value taken is the command itself,
             * which Lua then says; only a word of lowercase letters, which
             * is no connection string with a password */
            if (strncmp(a, "--db", n) == 0 && !eq && strspn(v, "abcdefghijklmnopqrstuvwxyz") == strlen(v)) {
                lua_pushstring(L, v);
                lua_setfield(L, -4, "db_word");
            }
            lua_pushlstring(L, name, name_len);
            /* the connection string may hold a password: it stays in C */
            if (strncmp(a, "--db", n) == 0) lua_pushboolean(L, 1); else lua_pushstring(L, v);
            lua_rawset(L, -4);
        } else if (!eq && in_list(flag_options, a, n)) {
            lua_pushlstring(L, name, name_len);
            lua_pushboolean(L, 1);
            lua_rawset(L, -4);
        } else {
            /* only the option's name: "--db-url=postgres://u:pw@h" must not echo a password,
             * nor "--dbpostgres://u:pw@h" (a value glued on without '='): cut at the first
             * character no option name has */
            size_t shown = 1 + strspn(a + 1, "-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
            lua_pushlstring(L, a, shown < n ? shown : n);
            push_usage_error(L, in_list(flag_options, a, n) ? "option %s takes no value"
                                                             : "unknown option %s (see 'ferry --help')",
                             lua_tostring(L, -1));
            return 0;
        }
    }
    lua_setfield(L, -3, "args");
    lua_setfield(L, -2, "flags");
    return 1;
}

/* Looks up a command-line option before Lua runs: the C side needs the
 * connection options and verbosity to set up its modules.  The last one
 * given counts, as in the Lua side's flags (an alias's --db A, then --db B
 * on the command line: B). */
static const char *find_option(int argc, char **argv, const char *opt) {
    size_t n = strlen(opt);
    const char *found = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strncmp(argv[i], opt, n) == 0) {
            if (argv[i][n] == '=') found = argv[i] + n + 1;
            else if (argv[i][n] == '\0') {
                found = (in_list(value_options, opt, n) && i + 1 < argc) ? argv[i + 1] : "";
                if (i + 1 < argc) i++;          /* (its value is no option) */
            }
        }
    }
    return found;
}

static int has_flag(int argc, char **argv, const char *lng, const char *shrt) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], lng) == 0 || (shrt && strcmp(argv[i], shrt) == 0)) return 1;
    }
    return 0;
}

static void read_cli(cli *c, int argc, char **argv) {
    memset(c, 0, sizeof *c);
    c->argc = argc;
    c->argv = argv;
    c->db.conninfo = find_option(argc, argv, "--db");
    if (!c->db.conninfo) c->db.conninfo = getenv("DATABASE_URL");
    /* DATABASE_URL="" (a secret not filled in) is no connection string:
     * taken for unset, libpq would connect where PG* says, another
     * database than the one meant (l_db.c refuses to connect) */
    if (c->db.conninfo && !*c->db.conninfo) {
        c->db.conninfo = NULL;
        c->db.empty_url = 1;
    }
    c->db.lock_timeout = find_option(argc, argv, "--lock-timeout");
    if (!c->db.lock_timeout) c->db.lock_timeout = "5s";
    c->db.statement_timeout = find_option(argc, argv, "--statement-timeout");
    if (!c->db.statement_timeout) c->db.statement_timeout = "0";
    c->db.read_only = has_flag(argc, argv, "--dry-run", NULL);
    c->log.verbose = has_flag(argc, argv, "--verbose", "-v");
    c->log.quiet = has_flag(argc, argv, "--quiet", "-q");
    c->db.quiet = c->log.quiet;
    c->log.json = has_flag(argc, argv, "--json", NULL);
    c->log.conninfo = c->db.conninfo;
}

/* A copy of argv (argc strings and a NULL), or NULL when out of memory. */
static char **copy_args(int argc, char **argv) {
    char **copy = calloc((size_t)argc + 1, sizeof *copy);
    for (int i = 0; copy && i < argc; i++) {
        if (!(copy[i] = strdup(argv[i]))) {
            for (int j = 0; j < i; j++) free(copy[j]);
            free(copy);
            copy = NULL;
        }
    }
    return copy;
}

static void free_args(char **args) {
    for (int i = 0; args[i]; i++) free(args[i]);
    free(args);
}

/* The process's argument list is what ps and /proc/PID/cmdline show every
 * user: once the command line is read (from copy, its copy, which ferry
 * goes on with), the passwords in argv are overwritten in place with x's
 * of the same length -- those of every --db value (--db X, --db=X), and of
 * any other argument that holds a connection string with one (one put
 * where ferry takes something else, an argument of an exec script).  A URL
 * is read from wherever it begins in an argument (--db=postgresql://...,
 * a mistyped -qpostgres://..., a dbname=postgresql://...), as every
 * message is redacted for one.  (Until then, a moment after start, the
 * password shows, as with any program that takes one on its command
 * line.) */
static void scrub_passwords(int argc, char **argv, char *const *copy) {
    for (int i = 1; i < argc; i++) pgconn_scrub_passwords(copy[i], argv[i]);
}

/* package.preload's loader of an embedded prelude (ferry_load_prelude:
 * its bytecode, or its source if this Lua refuses that bytecode). */
static int load_prelude(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    size_t len, bc_len;
    const char *src = ferry_prelude(name, &len);
    const char *bc = ferry_prelude_bytecode(name, &bc_len);
    if (!src) return luaL_error(L, "no embedded prelude %s", name);
    if (ferry_load_prelude(L, name, bc, bc_len, src, len) != LUA_OK) return lua_error(L);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    return 1;
}

/* Makes every embedded prelude loadable with require(name). */
static void register_preludes(lua_State *L) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (int i = 0; ferry_prelude_name(i); i++) {
        lua_pushcfunction(L, load_prelude);
        lua_setfield(L, -2, ferry_prelude_name(i));
    }
    lua_pop(L, 2);
}

static void preload(lua_State *L, const char *name) {
    /* the module table is on top of the stack */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

static int ferry_error_tostring(lua_State *L) {
    lua_getfield(L, 1, "message");
    luaL_tolstring(L, -1, NULL);
    return 1;
}

/* Everything below runs inside the protected call. */
static int pmain(lua_State *L) {
    cli *c = lua_touserdata(L, 1);
    luaL_openlibs(L);
    ferry_track_coroutines(L);       /* (Ctrl-C: see l_interrupt.c) */
    luaL_newmetatable(L, FERRY_ERROR_MT);
    lua_pushcfunction(L, ferry_error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaopen_ferry_stats(L);          preload(L, "stats");
    luaopen_ferry_log(L, &c->log);   preload(L, "log");
    luaopen_ferry_progress(L);       preload(L, "progress");
    luaopen_ferry_json(L);           preload(L, "json");
    luaopen_ferry_uuid(L);           preload(L, "uuid");
    luaopen_ferry_db(L, &c->db);     preload(L, "db.core");
    luaopen_ferry_sys(L);            preload(L, "ferry.sys");
    register_preludes(L);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "ferry.engine");
    lua_call(L, 1, 1);
    /* A command line ferry cannot read goes to the engine as {error = ...},
     * which reports it as any other usage error (as JSON with --json). */
    int top = lua_gettop(L);
    if (!push_cli(L, c->argc, c->argv)) {
        lua_replace(L, top + 1);     /* the error, over what push_cli left half built */
        lua_settop(L, top + 1);
        lua_createtable(L, 0, 1);
        lua_insert(L, -2);
        lua_setfield(L, -2, "error");
    }
    lua_call(L, 1, 1);
    return 1;
}

/* Ctrl-C, SIGTERM, SIGHUP and SIGPIPE, as lua.c handles Ctrl-C: the signal handler only
 * sets a hook that raises at the next Lua instruction, on the main thread
 * and on the coroutine running (see l_interrupt.c); a statement waited for
 * returns at once (interrupt.c cancels it). */
static lua_State *volatile globalL;

static void on_interrupt(int signo) {
    (void)signo;
    if (globalL) ferry_arm_interrupt(globalL);
}

/* A closed standard descriptor (ferry ... >&-) would be reused by the next
 * file opened -- a database socket, where print() would then write. */
static void open_std_descriptors(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (null >= 0 && null != fd) { dup2(null, fd); close(null); }
        }
    }
}

/* Message handler: strings get a traceback (shown only with --verbose);
 * the engine's own error tables {code, message} pass through untouched. */
static int msghandler(lua_State *L) {
    if (lua_type(L, 1) == LUA_TTABLE) return 1;
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Output ferry could not write to stdout (a full disk, an I/O error) is
 * said, and a command that would have succeeded fails: a JSON object or a
 * report lost in silence is worse than an error.  Not a reader that went
 * away (EPIPE: ferry status | grep -q ..., | head -1): that is the
 * reader's choice, and during a run SIGPIPE stopped it and said so
 * ("interrupted (SIGPIPE: output closed)"). */
static int check_stdout(int code) {
    int err = ferry_close_stdout();
    if (!err || err == EPIPE) return code;
    fprintf(stderr, "ferry: cannot write to stdout: %s\n", strerror(err));
    return code == FERRY_EXIT_OK ? FERRY_EXIT_FAIL : code;
}

/* Prints the first line of an error; the rest (the traceback) only when
 * verbose.  Returns the exit code the error stands for. */
static int report_error(lua_State *L, const cli *c) {
    int code = FERRY_EXIT_FAIL, signal = 0;
    const char *msg;
    if (lua_type(L, -1) == LUA_TTABLE) {
        signal = lua_getfield(L, -1, "signal") == LUA_TSTRING;
        lua_getfield(L, -2, "code");
        if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
        lua_getfield(L, -3, "message");
        msg = lua_tostring(L, -1);
    } else {
        msg = lua_tostring(L, -1);
    }
    if (!msg) msg = "unknown error";
    /* an interruption that came after the --json object was written: the
     * object and its code stand (main), and nothing is said of it */
    if (signal && c->log.json && ferry_json_written(NULL)) return code;
    /* (redacted as the engine's own lines are: pgconn_redact_output) */
    size_t redsz = 3 * strlen(msg) + 4;
    char *red = malloc(redsz);
    if (red) { pgconn_redact_output(c->log.conninfo, msg, red, redsz); msg = red; }
    else msg = "(error message withheld: out of memory)";
    const char *nl = strchr(msg, '\n');
    int first = nl ? (int)(nl - msg) : (int)strlen(msg);
    fprintf(stderr, "ferry: %.*s\n", first, msg);
    if (nl && c->log.verbose) fprintf(stderr, "%s\n", nl + 1);
    /* --json: an error that reached here (a signal before the engine took
     * over, or as it finished) has no object yet: this is it */
    if (c->log.json) {
        char *line = strndup(msg, (size_t)first);
        ferry_write_json_error(line ? line : "(error message withheld: out of memory)", code);
        free(line);
    }
    free(red);
    return code;
}

int main(int argc, char **argv) {
    /* (first: a signal from here on is noted, and raised once Lua runs --
     * a command with --json then still prints its one object) */
    interrupt_install(on_interrupt);
    open_std_descriptors();
    ferry_watch_stdout();
    char **args = copy_args(argc, argv);
    if (!args) { fprintf(stderr, "ferry: cannot read the command line: not enough memory\n"); return FERRY_EXIT_FAIL; }
    cli c;
    read_cli(&c, argc, args);
    scrub_passwords(argc, argv, args);
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "ferry: cannot create Lua state: not enough memory\n");
        free_args(args);
        return FERRY_EXIT_FAIL;
    }
    globalL = L;
    if (interrupt_received()) ferry_arm_interrupt(L);     /* (one that came before there was a state) */
    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &c);
    int status = lua_pcall(L, 1, 1, 1);
    /* The command has ended: a signal from now on changes nothing -- its
     * outcome is said, its --json object written -- so the handler stays
     * to the exit, and only notes it (no hook may touch the state being
     * closed; a second Ctrl-C still ends ferry at once).  Before, the
     * default actions were back here, and a SIGTERM as ferry closed killed
     * it: exit 143 after an object that said "ok": true. */
    globalL = NULL;
    ferry_interrupt_over(L);
    int code;
    if (status == LUA_OK) {
        code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : FERRY_EXIT_OK;
    } else {
        code = report_error(L, &c);
        /* The counters live in C: a run that died still shows how far it got. */
        if (code == FERRY_EXIT_FAIL && !c.log.quiet && !c.log.json) ferry_stats_print(L, stderr);
    }
    /* --json: the object written and its exit code agree, whatever came
     * after it (a signal, the SIGPIPE its own write raised: the reader's
     * choice, as without --json) */
    int json_code;
    if (c.log.json && ferry_json_written(&json_code)) code = json_code;
    lua_close(L);                /* (a finalizer may still write) */
    code = check_stdout(code);
    free_args(args);
    return code;
}
