/* l_log.c: the Lua "log" and "progress" modules, and "ferry.sys" (the few
 * system calls the engine prelude needs).  log and progress share one state
 * (an upvalue) so that a log line first clears a progress bar drawn on a
 * terminal. */
#define _GNU_SOURCE          /* fopencookie (ferry_watch_stdout) */
#include <lua.h>
#include <lauxlib.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "ferry.h"
#include "hash.h"
#include "jsontext.h"
#include "l_modules.h"
#include "pgconn.h"
#include "rate.h"

typedef struct log_state {
    int verbose, quiet, json;
    int bar_drawn;          /* a progress bar occupies the terminal's last line */
    double interval;        /* seconds between plain progress lines */
} log_state;

typedef struct progress {
    log_state *log;
    char label[64];
    long long done, total;
    double last_draw;
    rate_meter rate;        /* the rate and ETA shown (rate.c) */
    int tty, finished;
    int lines;              /* plain lines printed so far */
} progress;

#define LOGSTATE(L) ((log_state *)lua_touserdata(L, lua_upvalueindex(1)))

/* ---------- ferry's own output, redacted ---------- */

/* The command's connection string (log_options.conninfo), and in the
 * registry under ECHOED_KEY the command-line words the engine named
 * (sys.echoed): what a line of ferry's own may echo a password from. */
static const char *own_conninfo;
/* The passwords pgconn_redact_output would replace for it (its own and
 * PGPASSWORD's, when 8 bytes or more), each NUL-terminated, in a userdata
 * the registry keeps (OWN_PASSWORDS_KEY): parsed once, so that a line
 * pays a strstr per password, not a conninfo parse (about 2 us a line). */
static const char *own_passwords;
static int own_password_count;     /* how many (-1: not known, redact every line) */
#define OWN_PASSWORDS_KEY "ferry.own_passwords"
#define ECHOED_KEY "ferry.echoed"

/* Replaces the string on top of the stack by redact(info, it) (room for
 * what redaction can grow it to: pgconn.c). */
static void redact_top(lua_State *L, const char *info,
                       void (*redact)(const char *, const char *, char *, size_t)) {
    const char *cur = lua_tostring(L, -1);
    size_t room = 3 * strlen(cur) + 4;
    char *out = lua_newuserdatauv(L, room, 0);
    redact(info, cur, out, room);
    lua_pushstring(L, out);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* Whether text holds any of own_passwords (else redaction leaves it as
 * it is). */
static int shows_own_password(const char *text) {
    if (own_password_count < 0) return 1;
    const char *pw = own_passwords;
    for (int i = 0; i < own_password_count; i++, pw += strlen(pw) + 1)
        if (strstr(text, pw)) return 1;
    return 0;
}

struct password_list { char *at; size_t size, cap; int n; };

static void add_password(const char *pw, void *ud) {
    struct password_list *l = ud;
    size_t n = strlen(pw) + 1;
    /* (the second pass parses again: never more than the first measured) */
    if (l->at && l->size + n > l->cap) return;
    if (l->at) memcpy(l->at + l->size, pw, n);
    l->size += n;
    l->n++;
}

/* Sets own_passwords for conninfo: a first pass measures, the userdata is
 * made (it may raise: nothing is held then), a second copies. */
static void keep_own_passwords(lua_State *L, const char *conninfo) {
    struct password_list l = {NULL, 0, 0, 0};
    pgconn_each_output_password(conninfo, add_password, &l);
    l.cap = l.size;
    l.at = lua_newuserdatauv(L, l.cap + 1, 0);
    l.size = 0;
    l.n = 0;
    int found = pgconn_each_output_password(conninfo, add_password, &l);
    /* (a password the copy had no room for: every line gets the whole
     * redaction, as before the list) */
    own_password_count = found == l.n ? l.n : -1;
    own_passwords = l.at;
    lua_setfield(L, LUA_REGISTRYINDEX, OWN_PASSWORDS_KEY);
}

/* Pushes the len bytes at s as ferry writes them -- every line of its own
 * goes through here: log's lines, the --json object (sys.write_stdout),
 * the engine's other lines (sys.redact) -- with "***" for the password of
 * each command-line word (sys.echoed) that is a connection string holding
 * one (pgconn_redact_arg: one put where ferry takes a migration, a file, a
 * flag's value), then for that of the command's connection string and
 * PGPASSWORD when it is 8 bytes or more (pgconn_redact_output: the rule of
 * the server's errors; a shorter one would garble ids, numbers and
 * SQLSTATEs).  Each piece between NUL bytes on its own (the C side reads
 * up to the first).  With no password anywhere (the common case: only
 * echoed words holding one are kept), the text as it is, at no cost: this
 * runs for every line, a --verbose run's line per row too. */
static void push_redacted(lua_State *L, const char *s, size_t len) {
    luaL_checkstack(L, 8, NULL);
    lua_getfield(L, LUA_REGISTRYINDEX, ECHOED_KEY);
    if (!own_password_count && !lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, s, len);
        return;
    }
    int words = lua_gettop(L), parts = 0;
    for (const char *p = s, *end = s + len; p <= end; p += strlen(p) + 1) {
        if (parts > 0) { lua_pushlstring(L, "", 1); lua_concat(L, 2); }
        lua_pushstring(L, p);
        if (lua_istable(L, words)) {
            for (lua_Integer i = 1; lua_rawgeti(L, words, i) == LUA_TSTRING; i++) {
                lua_insert(L, -2);                      /* (the word under the text) */
                redact_top(L, lua_tostring(L, -2), pgconn_redact_arg);
                lua_remove(L, -2);
            }
            lua_pop(L, 1);
        }
        if (own_password_count && shows_own_password(lua_tostring(L, -1)))
            redact_top(L, own_conninfo, pgconn_redact_output);
        if (parts > 0) lua_concat(L, 2);
        parts++;
    }
    lua_remove(L, words);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void clear_bar(log_state *s) {
    if (s->bar_drawn) { fputs("\r\033[K", stderr); s->bar_drawn = 0; }
}

/* Human output goes to stdout, except in --json mode, where stdout holds
 * the JSON document alone and everything else goes to stderr. */
static FILE *info_stream(log_state *s) { return s->json ? stderr : stdout; }

/* Formats the arguments like print(): string.format when there are more
 * than one and the first has a '%', else tostring() joined by spaces.  A
 * format that fails raises at the script's line that called log.NAME
 * ("x.lua:3: log.info: bad argument #2 to 'format' (number expected, got
 * string)"): string.format, called from here, has neither a line nor a
 * name of its own to give. */
static const char *format_args(lua_State *L, const char *name, size_t *len) {
    int n = lua_gettop(L);
    size_t first_len = 0;
    const char *first = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &first_len) : NULL;
    if (n >= 2 && first && memchr(first, '%', first_len)) {
        lua_getglobal(L, "string");
        lua_getfield(L, -1, "format");
        lua_remove(L, -2);
        lua_insert(L, 1);
        int rc = lua_pcall(L, n, 1, 0);
        if (rc != LUA_OK) {
            /* an error object (a __tostring that raised one) or a memory
             * error goes on as it is */
            if (rc != LUA_ERRRUN || lua_type(L, -1) != LUA_TSTRING) return lua_error(L), NULL;
            const char *msg = luaL_gsub(L, lua_tostring(L, -1), "'string.format'", "'format'");
            luaL_where(L, 1);
            lua_pushfstring(L, "%slog.%s: %s", lua_tostring(L, -1), name, msg);
            return lua_error(L), NULL;
        }
        return lua_tolstring(L, -1, len);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return lua_tolstring(L, -1, len);
}

static int emit(lua_State *L, FILE *f, const char *name, const char *prefix) {
    log_state *s = LOGSTATE(L);
    size_t len;
    format_args(L, name, &len);
    push_redacted(L, lua_tostring(L, -1), len);
    const char *msg = lua_tolstring(L, -1, &len);
    clear_bar(s);
    /* every byte, as print() writes it: a NUL is not the end of the line */
    fputs(prefix, f);
    fwrite(msg, 1, len, f);
    fputc('\n', f);
    fflush(f);
    return 0;
}

static int log_info(lua_State *L) {
    log_state *s = LOGSTATE(L);
    return s->quiet ? 0 : emit(L, info_stream(s), "info", "");
}
static int log_verbose(lua_State *L) {
    log_state *s = LOGSTATE(L);
    return (s->quiet || !s->verbose) ? 0 : emit(L, info_stream(s), "verbose", "");
}
static int log_warn(lua_State *L) {
    return LOGSTATE(L)->quiet ? 0 : emit(L, stderr, "warn", "");
}
/* A warning the operator must see though the command succeeds, under
 * --quiet too (a cron job's only output): what a run leaves in the data
 * or finds about it -- rows made by two versions of the rules, triggers
 * off, a migration run out of order, a folder that is no migration. */
static int log_alert(lua_State *L) { return emit(L, stderr, "alert", ""); }
static int log_error(lua_State *L) { return emit(L, stderr, "error", "error: "); }

static int log_flags(lua_State *L) {
    log_state *s = LOGSTATE(L);
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, s->verbose); lua_setfield(L, -2, "verbose");
    lua_pushboolean(L, s->quiet); lua_setfield(L, -2, "quiet");
    lua_pushboolean(L, s->json); lua_setfield(L, -2, "json");
    return 1;
}

/* ---------- progress ---------- */

/* Draws the bar at time t: "R/s ETA H:MM:SS" is rate_describe's (the
 * recent rate, or the average on the final line). */
static void draw(progress *p, double t, int final) {
    char speed[64];
    rate_describe(&p->rate, t, p->done, p->total, final, speed, sizeof speed);
    char count[64];
    if (p->total > 0)
        snprintf(count, sizeof count, "%lld/%lld (%.1f%%)", p->done, p->total, 100.0 * (double)p->done / (double)p->total);
    else
        snprintf(count, sizeof count, "%lld", p->done);
    if (p->tty) {
        char bar[31] = "";
        if (p->total > 0) {
            /* (the count within 0..total: a p:set to a negative count
             * would make a double no int holds, an undefined cast) */
            long long in = p->done < 0 ? 0 : p->done > p->total ? p->total : p->done;
            int filled = (int)(30.0 * (double)in / (double)p->total);
            for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
            bar[30] = '\0';
        }
        fprintf(stderr, "\r\033[K%s [%s] %s %s", p->label, bar, count, speed);
        p->log->bar_drawn = 1;
        if (final) { fputc('\n', stderr); p->log->bar_drawn = 0; }
    } else {
        fprintf(stderr, "progress: %s %s %s\n", p->label, count, speed);
        p->lines++;
    }
    fflush(stderr);
    p->last_draw = t;
}

static progress *check_progress(lua_State *L) { return luaL_checkudata(L, 1, "ferry.progress"); }

/* After each add or set: the count goes to the rate (from the first, the
 * time before it -- start-up, a query sorting before its first row -- is
 * not counted), and a frame is drawn when it is time. */
static void maybe_draw(progress *p) {
    if (p->log->quiet || p->finished) return;
    double t = now_seconds();
    rate_update(&p->rate, t, p->done);
    if (t - p->last_draw >= (p->tty ? 0.2 : p->log->interval)) draw(p, t, 0);
}

/* p:add(n) */
static int progress_add(lua_State *L) {
    progress *p = check_progress(L);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    long long v;
    if (__builtin_add_overflow(p->done, n, &v)) return luaL_error(L, "progress: add would overflow");
    p->done = v;
    maybe_draw(p);
    return 0;
}

/* p:set(done [, total]) */
static int progress_set(lua_State *L) {
    progress *p = check_progress(L);
    p->done = luaL_checkinteger(L, 2);
    if (!lua_isnoneornil(L, 3)) p->total = luaL_checkinteger(L, 3);
    maybe_draw(p);
    return 0;
}

/* p:finish(): draws the final state once; safe to call twice (it is also
 * the __close of the object). */
static int progress_finish(lua_State *L) {
    progress *p = check_progress(L);
    if (!p->finished) {
        /* A plain-text final line only closes a series: a short run that
         * printed no line prints none. */
        if (!p->log->quiet && (p->tty ? p->done > 0 : p->lines > 0)) {
            double t = now_seconds();
            rate_update(&p->rate, t, p->done);
            draw(p, t, 1);
        }
        p->finished = 1;
    }
    return 0;
}

static int progress_done(lua_State *L) {
    progress *p = check_progress(L);
    lua_pushinteger(L, p->done);
    return 1;
}

/* Copies label into out (size n), cut to n - 1 bytes at most, and never
 * inside a UTF-8 character: a cut that would fall in one moves back to its
 * first byte (at most 3 bytes back, so that bytes that are not UTF-8 are
 * cut where they fall). */
static void copy_label(char *out, size_t n, const char *label) {
    size_t len = strlen(label);
    if (len > n - 1) len = utf8_cut(label, n - 1);
    memcpy(out, label, len);
    out[len] = '\0';
}

/* progress.new(label, total) -> p.  Total 0 or nil: unknown. */
static int progress_new(lua_State *L) {
    log_state *s = LOGSTATE(L);
    size_t label_len;
    luaL_checklstring(L, 1, &label_len);
    lua_Integer total = luaL_optinteger(L, 2, 0);
    push_redacted(L, lua_tostring(L, 1), label_len);
    const char *label = lua_tostring(L, -1);
    progress *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, "ferry.progress");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setiuservalue(L, -2, 1);   /* keeps the log state alive */
    p->log = s;
    copy_label(p->label, sizeof p->label, label);
    p->total = total;
    p->last_draw = now_seconds();
    rate_reset(&p->rate);
    p->tty = isatty(STDERR_FILENO);
    return 1;
}

static const luaL_Reg log_funcs[] = {
    {"info", log_info}, {"verbose", log_verbose}, {"warn", log_warn}, {"alert", log_alert},
    {"error", log_error},
    {"flags", log_flags}, {NULL, NULL}
};
static const luaL_Reg progress_methods[] = {
    {"add", progress_add}, {"set", progress_set}, {"finish", progress_finish}, {"done", progress_done},
    {NULL, NULL}
};

/* FERRY_PROGRESS_INTERVAL: seconds between plain progress lines, a number
 * >= 0 (decimals allowed); unset, or anything else, the default 10 (atof
 * read "abc" and "" as 0 and "-5" as less: a line for every update of a
 * big run). */
static double progress_interval(const char *v) {
    char *end;
    double d = v ? strtod(v, &end) : -1;
    if (!v || end == v || *end != '\0' || !isfinite(d) || d < 0) return 10.0;
    return d;
}

int luaopen_ferry_log(lua_State *L, const log_options *opts) {
    log_state *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->verbose = opts->verbose;
    s->quiet = opts->quiet;
    s->json = opts->json;
    own_conninfo = opts->conninfo;
    keep_own_passwords(L, own_conninfo);
    s->interval = progress_interval(getenv("FERRY_PROGRESS_INTERVAL"));
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, FERRY_LOG_KEY);
    luaL_newlibtable(L, log_funcs);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, log_funcs, 1);
    lua_remove(L, -2);
    return 1;
}

int luaopen_ferry_progress(lua_State *L) {
    luaL_newmetatable(L, "ferry.progress");
    lua_newtable(L);
    luaL_setfuncs(L, progress_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, progress_finish);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_getfield(L, LUA_REGISTRYINDEX, FERRY_LOG_KEY);
    lua_pushcclosure(L, progress_new, 1);
    lua_setfield(L, -2, "new");
    return 1;
}

/* ---------- ferry.sys ---------- */

static int sys_clock(lua_State *L) { lua_pushnumber(L, now_seconds()); return 1; }

/* ISO-8601 UTC time with milliseconds, as the run record stores it. */
static int sys_iso_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    lua_pushstring(L, buf);
    return 1;
}

static int sys_hostname(lua_State *L) {
    char buf[256];
    if (gethostname(buf, sizeof buf) != 0) strcpy(buf, "unknown");
    buf[sizeof buf - 1] = '\0';
    lua_pushstring(L, buf);
    return 1;
}

static int sys_pid(lua_State *L) { lua_pushinteger(L, (lua_Integer)getpid()); return 1; }

static int sys_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

static int sys_sha256(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[65];
    sha256_hex(s, len, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* sys.listdir(path) -> sorted array of entry names (no . and ..), or nil
 * and a message. */
typedef struct dir_box { DIR *d; } dir_box;

static int dir_box_gc(lua_State *L) {
    dir_box *b = lua_touserdata(L, 1);
    if (b->d) { closedir(b->d); b->d = NULL; }
    return 0;
}

static int sys_listdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    /* The DIR lives in a userdata with a finalizer, created before it is
     * opened: a memory error while names are pushed cannot leak it. */
    dir_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->d = NULL;
    if (luaL_newmetatable(L, "ferry.dir")) { lua_pushcfunction(L, dir_box_gc); lua_setfield(L, -2, "__gc"); }
    lua_setmetatable(L, -2);
    b->d = opendir(path);
    if (!b->d) { lua_pushnil(L); lua_pushfstring(L, "%s: %s", path, strerror(errno)); return 2; }
    lua_newtable(L);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(b->d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(b->d);
    b->d = NULL;
    /* table.sort as it was when ferry.sys was loaded (upvalue 1): a script
     * that replaces the global's must not change ferry's own listings */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
    return 1;
}

static int sys_isdir(lua_State *L) {
    struct stat st;
    lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0 && S_ISDIR(st.st_mode));
    return 1;
}

static int sys_mkdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    if (mkdir(path, 0777) != 0) { lua_pushnil(L); lua_pushfstring(L, "%s: %s", path, strerror(errno)); return 2; }
    lua_pushboolean(L, 1);
    return 1;
}

static int sys_version(lua_State *L) { lua_pushliteral(L, FERRY_VERSION); return 1; }

/* sys.process_exists(pid) -> whether a process with that pid runs on this
 * host (one of another user's counts: EPERM). */
static int sys_process_exists(lua_State *L) {
    lua_Integer pid = luaL_checkinteger(L, 1);
    lua_pushboolean(L, pid > 0 && pid <= 0x7fffffff && (kill((pid_t)pid, 0) == 0 || errno == EPERM));
    return 1;
}

/* --json: the real stdout is kept for ferry's JSON object, and fd 1 (C's
 * stdout, hence print, io.write, io.stdout, io.output() and any program a
 * script starts) goes to stderr, unbuffered as stderr is, so that the lines
 * keep their order among ferry's own.  -1 while stdout is stdout. */
static int json_fd = -1;

/* The first write to the real stdout that failed (its errno), 0: none.  The
 * engine does not stop for it -- the run is done by then -- but ferry must
 * not exit 0 with its output lost: main says so (ferry_close_stdout). */
static int stdout_errno;

static void stdout_failed(int e) {
    if (!stdout_errno) stdout_errno = e ? e : EIO;
}

/* The write function of the stream ferry_watch_stdout makes C's stdout: as
 * the C library's own, but a failure is kept (at fd 1 while stdout is
 * stdout: under --json fd 1 is stderr, not counted). */
static ssize_t stdout_write(void *cookie, const char *buf, size_t size) {
    (void)cookie;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(STDOUT_FILENO, buf + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (json_fd < 0) stdout_failed(errno);
            return done > 0 ? (ssize_t)done : -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

void ferry_watch_stdout(void) {
    /* print and io.write ignore a write that failed, and the C library
     * forgets why once it has dropped what it could not write (a flush
     * that failed empties the buffer): only ferror is left at exit, not
     * "No space left on device".  So C's stdout is made a stream of
     * ferry's own over fd 1, buffered as the C library's is (by line on a
     * terminal), whose writes keep their errno.  (In glibc stdout is a
     * variable, made to be set.  Left as it was when that fails.) */
    FILE *f = fopencookie(NULL, "w", (cookie_io_functions_t){.write = stdout_write});
    if (!f) return;
    setvbuf(f, NULL, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF, BUFSIZ);
    fflush(stdout);
    stdout = f;
}

/* sys.divert_stdout() -> true: from now on stdout writes go to stderr (to
 * /dev/null when stderr is closed), and sys.write_stdout to the real one.
 * nil and a message when the real stdout cannot be kept (it stays as it is). */
static int sys_divert_stdout(lua_State *L) {
    if (json_fd >= 0) { lua_pushboolean(L, 1); return 1; }
    fflush(stdout);
    int keep = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);   /* not inherited by a script's programs */
    if (keep < 0) { luaL_pushfail(L); lua_pushstring(L, strerror(errno)); return 2; }
    if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, STDOUT_FILENO) < 0) {
            int e = errno;
            if (null >= 0) close(null);
            close(keep);
            luaL_pushfail(L); lua_pushstring(L, strerror(e)); return 2;
        }
        close(null);
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    json_fd = keep;
    lua_pushboolean(L, 1);
    return 1;
}

/* The --json object: whether one was written (or its write tried), and
 * the exit code that goes with it.  One object per command, and it stands:
 * main exits with its code whatever comes after it (a signal, the write's
 * own SIGPIPE), and writes no second one (ferry_json_written). */
static int json_written;
static int json_code;

int ferry_json_written(int *code) {
    if (json_written && code) *code = json_code;
    return json_written;
}

/* sys.write_stdout(s[, code]) -> true, or nil and a message: s on the real
 * stdout (the one sys.divert_stdout kept, else stdout), flushed.  With
 * code, s is the command's --json object and code its exit code (noted
 * here, in one C call with the write: the interruption hook fires only
 * before or after it, never between the two). */
static int sys_write_stdout(lua_State *L) {
    size_t len;
    /* (not redacted here: the engine's --json object is, string by
     * string, before it is encoded -- never in a number or its syntax) */
    const char *s = luaL_checklstring(L, 1, &len);
    if (!lua_isnoneornil(L, 2)) {
        json_code = (int)luaL_checkinteger(L, 2);
        json_written = 1;
    }
    if (json_fd < 0) {
        if (fwrite(s, 1, len, stdout) != len || fflush(stdout) != 0) {
            stdout_failed(errno);
            luaL_pushfail(L); lua_pushstring(L, strerror(errno)); return 2;
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    while (len > 0) {
        ssize_t n = write(json_fd, s, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            stdout_failed(errno);
            luaL_pushfail(L); lua_pushstring(L, strerror(errno)); return 2;
        }
        s += n;
        len -= (size_t)n;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* The --json object of a command that ended before the engine could write
 * one (an error or a signal that reached main, not the engine's handler):
 * {"ok": false, "error": LINE} on the real stdout, LINE redacted by the
 * caller.  JSON's escapes for '"', '\\' and control characters; the text
 * that is not UTF-8 has its other bytes as U+FFFD (JSON is UTF-8).  Nothing
 * when an object was written already. */
void ferry_write_json_error(const char *line, int code) {
    if (json_written) return;
    json_written = 1;
    json_code = code;
    size_t n = strlen(line);
    int valid = utf8_valid(line, n);
    char *buf = malloc(6 * n + 32);
    if (!buf) {
        static const char withheld[] = "{\"ok\":false,\"error\":\"(error message withheld: out of memory)\"}\n";
        if (write(json_fd >= 0 ? json_fd : STDOUT_FILENO, withheld, sizeof withheld - 1) < 0) stdout_failed(errno);
        return;
    }
    size_t k = 0;
    k += (size_t)sprintf(buf, "{\"ok\":false,\"error\":\"");
    for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
        if (*p == '"' || *p == '\\') { buf[k++] = '\\'; buf[k++] = (char)*p; }
        else if (*p < 0x20 || *p == 0x7f) k += (size_t)sprintf(buf + k, "\\u%04x", *p);
        else if (*p >= 0x80 && !valid) k += (size_t)sprintf(buf + k, "\\ufffd");
        else buf[k++] = (char)*p;
    }
    k += (size_t)sprintf(buf + k, "\"}\n");
    int fd = json_fd >= 0 ? json_fd : STDOUT_FILENO;
    if (json_fd < 0) fflush(stdout);
    for (size_t done = 0; done < k;) {
        ssize_t w = write(fd, buf + done, k - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { stdout_failed(errno); break; }
        done += (size_t)w;
    }
    free(buf);
}

int ferry_close_stdout(void) {
    /* C's stdout: everything print, io.write and the engine's reports
     * wrote, still buffered or not (ferror: a write that failed before).
     * Under --json it is stderr (divert_stdout): not counted. */
    errno = 0;
    int failed = fflush(stdout) != 0 || ferror(stdout);
    if (failed && json_fd < 0) stdout_failed(errno);
    errno = 0;
    if (fclose(stdout) != 0 && json_fd < 0) stdout_failed(errno);
    /* (close can report what a file system kept back: NFS, a quota) */
    int fd = json_fd >= 0 ? json_fd : STDOUT_FILENO;
    if (close(fd) != 0 && errno != EINTR) stdout_failed(errno);
    json_fd = -1;
    return stdout_errno;
}

/* sys.redact(s) -> s as ferry writes it (push_redacted): for the engine's
 * lines that do not go through log or sys.write_stdout. */
static int sys_redact(lua_State *L) {
    size_t len;
    luaL_checklstring(L, 1, &len);
    push_redacted(L, lua_tostring(L, 1), len);
    return 1;
}

/* sys.echoed(words): the command-line words (strings) a line of ferry's
 * may echo, for push_redacted: those that hold a password are kept (none:
 * nothing kept). */
static int sys_echoed(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_newtable(L);
    lua_Integer kept = 0;
    for (lua_Integer i = 1; lua_rawgeti(L, 1, i) != LUA_TNIL; i++) {
        if (lua_type(L, -1) == LUA_TSTRING && pgconn_holds_password(lua_tostring(L, -1))) lua_rawseti(L, -2, ++kept);
        else lua_pop(L, 1);
    }
    lua_pop(L, 1);                                  /* (the nil that ended the list) */
    if (kept == 0) { lua_pop(L, 1); lua_pushnil(L); }
    lua_setfield(L, LUA_REGISTRYINDEX, ECHOED_KEY);
    return 0;
}

/* sys.json_written() -> the exit code of the --json object written, or nil:
 * none yet */
static int sys_json_written(lua_State *L) {
    if (json_written) lua_pushinteger(L, json_code); else lua_pushnil(L);
    return 1;
}

static const luaL_Reg sys_funcs[] = {
    {"clock", sys_clock}, {"iso_now", sys_iso_now}, {"hostname", sys_hostname}, {"pid", sys_pid},
    {"isatty", sys_isatty}, {"sha256", sys_sha256}, {"version", sys_version}, {"listdir", NULL},
    {"isdir", sys_isdir}, {"mkdir", sys_mkdir}, {"interrupted", ferry_sys_interrupted},
    {"uninterrupted", ferry_sys_uninterrupted},
    {"divert_stdout", sys_divert_stdout}, {"write_stdout", sys_write_stdout}, {"json_written", sys_json_written},
    {"process_exists", sys_process_exists}, {"redact", sys_redact}, {"echoed", sys_echoed}, {NULL, NULL}
};

int luaopen_ferry_sys(lua_State *L) {
    luaL_newlib(L, sys_funcs);
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_remove(L, -2);
    lua_pushcclosure(L, sys_listdir, 1);
    lua_setfield(L, -2, "listdir");
    /* the engine marks its own errors with it (see FERRY_ERROR_MT) */
    luaL_getmetatable(L, FERRY_ERROR_MT);
    lua_setfield(L, -2, "error_meta");
    return 1;
}
