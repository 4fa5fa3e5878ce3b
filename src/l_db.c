/* l_db.c: the Lua "db" core: connections, parameterised queries, streaming
 * iteration in single-row mode, and COPY FROM STDIN writers.
 *
 * Resource rules (liolib's pattern): every binding checks its arguments,
 * then creates its userdata with a metatable, and only then acquires the
 * libpq resource and stores it in the userdata; so a Lua error at any later
 * point leaves the resource to a finalizer.  One finalizer serves close,
 * __gc and __close, and is safe to run twice.  Errors copy the message onto
 * the Lua stack and release the libpq resource before they raise. */
#include <ctype.h>
#include <lua.h>
#include <lauxlib.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "copytext.h"
#include "ferry.h"
#include "l_modules.h"
#include "interrupt.h"
#include "jsontext.h"
#include "pgconn.h"

#define CONN_MT "ferry.conn"
#define RESULT_MT "ferry.result"
#define PQMEM_MT "ferry.pqmem"
#define ROWS_MT "ferry.rows"
#define COPY_MT "ferry.copy"
#define BUF_MT "ferry.copybuf"

/* Module state: shared by every function as upvalue 1. */
struct conn;

#define NOTICE_MAX_BYTES 2000  /* of a notice shown: the rest is counted, not shown */
#define NOTICE_KINDS 32        /* kinds of notice counted; later ones are all shown */
#define NOTICE_SHOWN 3         /* times a kind is shown before it is only counted */
#define RECENT_ERRORS 4        /* server errors whose routine core.error_routine tells */
#define ERRMSG_MAX 2048        /* an error's text, kept in C memory (errmsg) */

typedef struct db_state {
    char *conninfo;            /* may hold a password: never given to Lua */
    char *lock_timeout;
    char *statement_timeout;
    int read_only;
    int quiet;                 /* --quiet: notices below WARNING are dropped */
    int empty_url;             /* DATABASE_URL set but empty, no --db: no session may open */
    /* Connections with a COPY under way, whose data may still sit in
     * libpq's buffer (end_data returns without waiting): sent on while the
     * client waits on another connection. */
    struct conn *senders[PGCONN_MAX_OTHERS];
    int nsenders;
    int nconns;                /* connection objects not yet closed or collected */
    int gc_at;                 /* collect garbage before opening one more than this */
    /* The notices the server repeats (notice_receiver): each kind is shown
     * NOTICE_SHOWN times, then only counted. */
    struct notice_kind {
        uint64_t key;          /* hash of its severity and message */
        unsigned long seen;
        char text[200];        /* "NOTICE:  word is too long to be indexed" */
    } notices[NOTICE_KINDS];
    int nnotices;
    /* conninfo leads to a connection pooler that keeps one server session
     * for each client (pooled_session): its sessions' backend pids are the
     * pooler's, not the server's */
    int session_pooler;
    /* The last server errors raised: the first line of each one's text
     * and the routine of the server that raised it, which no lc_messages
     * translates (core.error_routine). */
    struct recent_error {
        char text[ERRMSG_MAX];
        char routine[64];
    } recent[RECENT_ERRORS];
    int next_recent;
    /* "connection lost" raised on any session (raise_pg), for
     * core.lost_raised: the engine tells by it, not by the words, that a
     * session of the run's was lost */
    lua_Integer lost_raised;
} db_state;

typedef struct conn {
    db_state *st;      /* the module's state (its sender list) */
    PGconn *pg;
    char *info;        /* conninfo given to db.connect(), for redaction; NULL: the module's */
    const char *busy;  /* what holds the connection (re-entrancy guard) */
    int pending;       /* started by connect_start, not ready yet: first use completes it */
    long started_ms;   /* when it was started (pgconn_now_ms) */
    PGTransactionStatusType busy_tx;   /* the transaction state when it became busy */
    int keep_open;     /* the main connection: close() and <close> leave it open */
    int counted;       /* in st->nconns until closed or collected */
    int cancel_slot;   /* interrupt.c's slot: a signal cancels its running statement; -1 none */
    int hold_tx;       /* its transaction is ferry's (core.hold_transaction): no BEGIN/COMMIT of a script's */
    int server_pid;    /* pg_backend_pid() (PQbackendPID is a pooler's own, when one is in between) */
    int copy_abandoned;   /* a writer closed or collected mid-COPY aborted it (core.take_abandoned_copy) */
    int holds_lock;    /* holds ferry's migration lock (core.hold_lock): nothing may release it */
    int read_only_seen;   /* default_transaction_read_only seen on while the sessions are to be read-only */
    int named_read_only;  /* the last statement sent named it (see keep_read_only) */
    int settings_reset;   /* a statement sent reset ferry's session settings (see keep_settings) */
    /* What made it busy, for core.release_busy: the Lua side may never see
     * it (an interruption at the instruction after the call that started
     * it).  Not references: each is cleared by its own release, which its
     * finalizer runs, so neither outlives the object it names. */
    struct rows *busy_rows;
    struct copy_writer *busy_copy;
} conn;

typedef struct result_box { PGresult *res; } result_box;
typedef struct pqmem_box { char *p; } pqmem_box;   /* memory libpq allocated */

typedef struct rows {
    conn *c;           /* kept alive through the uservalue */
    int active;
    int building;      /* a row is being built from the iterator's result */
    int in_block;      /* started inside BEGIN ... COMMIT: never cancel */
} rows;

/* COPY text rows being built in memory: a writer's send buffer, or a
 * db.buffer() that a script fills now and hands to a writer later. */
typedef struct copy_buf {
    char *buf;
    size_t len, cap;
    long long rows;
    size_t unreported;   /* bytes allocated since the collector was told (buf_report) */
    /* A db.buffer() holding more than BUF_SPILL_AT bytes of rows keeps the
     * older ones in a temporary file (buf_spill), so that one batch bigger
     * than usual (Batch 4's batch is whole leads: one lead of a million
     * audits is one batch) costs disk, not memory. */
    int spill;           /* the file's descriptor + 1; 0: none yet */
    size_t spilled;      /* bytes of rows in it, before those in buf */
} copy_buf;

typedef struct copy_writer {
    conn *c;
    copy_buf b;
    long long rows;    /* rows put so far */
    int active;        /* COPY in progress on the connection */
    int ended;         /* end of data sent, result not yet collected */
} copy_writer;

#define STATE(L) ((db_state *)lua_touserdata(L, lua_upvalueindex(1)))

/* ---------- errors ---------- */

/* Raises "what: message" for a result or connection error, with the
 * password redacted.  The caller has already released its resources or left
 * them to a finalizer. */
/* The connection string c's password is redacted with: its own
 * (db.connect(conninfo)), else the module's. */
static const char *conn_info(const db_state *st, const conn *c) {
    return c && c->info ? c->info : (st ? st->conninfo : NULL);
}

/* msg with c's password (or the module's) redacted into buf: a server's
 * error (server) or libpq's text (see pgconn.h). */
static void redact_msg(db_state *st, conn *c, const char *msg, int server, char *buf, size_t n) {
    const char *info = conn_info(st, c);
    if (server) pgconn_redact_server(info, msg ? msg : "", buf, n);
    else pgconn_redact(info, msg ? msg : "", buf, n);
}

/* The word the server (or a connection pooler) sent as it closed pg's
 * session, e.g. "FATAL:  query_wait_timeout" (PgBouncer: no server session
 * came free for it in time), when libpq kept it on the connection only
 * and msg, the statement's error, lacks it: its first line, redacted, and
 * "; " in out; else "". */
static void closing_word(db_state *st, conn *c, const char *msg, char *out, size_t n) {
    char said[1024];
    const char *text = PQerrorMessage(c->pg);
    size_t len = strcspn(text, "\n");
    out[0] = '\0';
    if ((strncmp(text, "FATAL:", 6) != 0 && strncmp(text, "ERROR:", 6) != 0) || len >= sizeof said) return;
    memcpy(said, text, len);
    said[len] = '\0';
    /* (the result's text has the message without its severity) */
    const char *words = said + 6 + strspn(said + 6, " ");
    if (msg && strstr(msg, words)) return;
    redact_msg(st, c, said, 0, out, n - 2);
    strcat(out, "; ");
}

static int raise_pg(lua_State *L, db_state *st, conn *c, const char *what, const char *msg, int server) {
    /* after Ctrl-C the statement's error is its cancellation: say why */
    if (interrupt_received()) return ferry_raise_interrupted(L);
    char buf[2048];
    redact_msg(st, c, msg, server, buf, sizeof buf);
    if (c && c->pg && PQstatus(c->pg) == CONNECTION_BAD) {
        char said[1024];
        closing_word(st, c, msg, said, sizeof said);
        if (st) st->lost_raised++;
        return luaL_error(L, "connection lost: %s%s (%s)", said, buf, what);
    }
    return luaL_error(L, "%s: %s", what, buf);
}

/* An error message kept in C memory while the results still to come are
 * read and cleared: nothing is allocated on the Lua side until every
 * resource is released, so not even a memory error can raise in between
 * and leave a connection with results unread ("clean up, then raise"). */
typedef struct errmsg {
    char text[ERRMSG_MAX];
    int server;        /* the server's error (a result's fields), not libpq's */
} errmsg;

/* src into dst (room bytes with its NUL); when it does not fit, cut at a
 * character boundary and marked "...". */
static void copy_cut(char *dst, size_t room, const char *src) {
    size_t len = strlen(src);
    if (len < room) { memcpy(dst, src, len + 1); return; }
    size_t keep = room > 4 ? room - 4 : 0;
    keep = utf8_cut(src, keep);
    memcpy(dst, src, keep);
    memcpy(dst + keep, "...", 4);
}

/* m's text: `text` with c's password redacted (as a server's error, or as
 * libpq's text), then, when it does not fit, cut at a character boundary
 * and marked "...", with `suffix` (the SQLSTATE, exec_script's line)
 * always whole.  Redacted before the cut: a password the cut went through
 * would leave its first bytes, which no later redaction finds. */
static void errmsg_fill(const conn *c, errmsg *m, const char *text, const char *suffix, int server) {
    size_t len = strlen(text), redsz = 3 * len + 4;   /* (redaction can grow the text: pgconn.c) */
    char *red = malloc(redsz);
    m->server = server;
    if (!red) { snprintf(m->text, sizeof m->text, "(error message withheld: out of memory)%s", suffix); return; }
    const char *info = c ? conn_info(c->st, c) : NULL;
    if (server) pgconn_redact_server(info, text, red, redsz);
    else pgconn_redact(info, text, red, redsz);
    copy_cut(m->text, sizeof m->text - strlen(suffix), red);
    free(red);
    strcat(m->text, suffix);
}

/* Keeps the first line of text, a server's error as raised, with the
 * routine of the server that raised it (PG_DIAG_SOURCE_FUNCTION; "" when
 * the server does not say), for core.error_routine. */
static void remember_routine(db_state *st, const char *text, const char *routine) {
    struct recent_error *e = &st->recent[st->next_recent];
    st->next_recent = (st->next_recent + 1) % RECENT_ERRORS;
    snprintf(e->text, sizeof e->text, "%.*s", (int)strcspn(text, "\n"), text);
    snprintf(e->routine, sizeof e->routine, "%s", routine ? routine : "");
}

/* The error of a result on c: its message, detail and SQLSTATE. */
/* ... with `tail` (or nothing) after the SQLSTATE: exec_script's " (line N)". */
static const char *result_error_text_with(const conn *c, const PGresult *res, errmsg *m, const char *tail) {
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    /* a COPY's context is the row at fault ("COPY t, line 1234, column c:
     * ...") -- without it nobody finds the bad row in a batch of 5000; its
     * first line only (other contexts are call stacks, left out) */
    const char *context = PQresultErrorField(res, PG_DIAG_CONTEXT);
    int ctx_len = 0;
    if (context && strncmp(context, "COPY ", 5) == 0) ctx_len = (int)strcspn(context, "\n");
    else context = NULL;
    if (!primary) {
        errmsg_fill(c, m, PQresultErrorMessage(res), tail ? tail : "", 0);
        return m->text;
    }
    /* the SQLSTATE always fits: what is cut for room is the text before
     * it (the engine's advice for 23503/23505 reads it) */
    char suffix[64] = "";
    snprintf(suffix, sizeof suffix, "%s%.5s%s%s", state ? " [SQLSTATE " : "", state ? state : "",
             state ? "]" : "", tail ? tail : "");
    const char *fmt = "%s%s%s%s%s%.*s%s";
#define PARTS primary, detail ? " (" : "", detail ? detail : "", detail ? ")" : "", \
              context ? " (" : "", ctx_len, context ? context : "", context ? ")" : ""
    int n = snprintf(NULL, 0, fmt, PARTS);
    char *whole = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!whole) {
        errmsg_fill(c, m, "(error message withheld: out of memory)", suffix, 0);
        return m->text;
    }
    snprintf(whole, (size_t)n + 1, fmt, PARTS);
#undef PARTS
    errmsg_fill(c, m, whole, suffix, primary != NULL && state != NULL);
    free(whole);
    if (c) remember_routine(c->st, m->text, PQresultErrorField(res, PG_DIAG_SOURCE_FUNCTION));
    return m->text;
}

static const char *result_error_text(const conn *c, const PGresult *res, errmsg *m) {
    return result_error_text_with(c, res, m, NULL);
}

/* Any text (libpq's connection error, a message of ours), redacted for c
 * before it is cut. */
static const char *errmsg_set(const conn *c, errmsg *m, const char *text) {
    errmsg_fill(c, m, text ? text : "", "", 0);
    return m->text;
}

/* Text for libpq, which reads up to the first NUL: one inside would cut
 * the statement (or identifier) short without a word. */
static const char *check_text(lua_State *L, int idx, const char *what) {
    size_t n;
    const char *s = luaL_checklstring(L, idx, &n);
    if (strlen(s) != n) luaL_error(L, "%s contains a NUL byte", what);
    return s;
}

/* ---------- connections ---------- */

static void complete_connect(lua_State *L, conn *c);

static conn *check_conn(lua_State *L, int idx) {
    conn *c = luaL_checkudata(L, idx, CONN_MT);
    if (c->pending) complete_connect(L, c);
    if (!c->pg) luaL_error(L, "attempt to use a closed connection");
    return c;
}

static conn *check_idle_conn(lua_State *L, int idx) {
    conn *c = check_conn(L, idx);
    if (c->busy)
        luaL_error(L, "connection busy: %s is in progress on it (use another connection from db.connect())", c->busy);
    return c;
}

/* The connection at index 1 checked again once a binding has made what it
 * needs on the Lua side, just before it sends: those allocations may run
 * a finalizer that closed the connection, or started a rows() iteration or
 * a COPY on it -- libpq would then refuse the statement ("connection
 * pointer is NULL", "another command is already in progress"), and the
 * binding's cleanup drain the other's results, ending its COPY. */
static void recheck_idle_conn(lua_State *L) {
    check_idle_conn(L, 1);
}

/* ---------- waiting on one connection, feeding the others ---------- */

static void sender_add(conn *c) {
    db_state *st = c->st;
    for (int i = 0; i < st->nsenders; i++) if (st->senders[i] == c) return;
    /* beyond the limit a COPY's data is only sent by its own calls */
    if (st->nsenders < PGCONN_MAX_OTHERS) st->senders[st->nsenders++] = c;
}

static void sender_remove(conn *c) {
    db_state *st = c->st;
    for (int i = 0; i < st->nsenders; i++)
        if (st->senders[i] == c) { st->senders[i] = st->senders[--st->nsenders]; return; }
}

/* PQgetResult for c, but the wait for it also sends the COPY data other
 * connections still hold: while a pipeline waits on writer A (its commit,
 * its next batch's start), writer B's server goes on receiving the batch
 * it is storing instead of idling with half of it.  Errors are left to
 * PQgetResult, as before. */
static PGresult *next_result(conn *c) {
    db_state *st = c->st;
    PGconn *others[PGCONN_MAX_OTHERS];
    int n = 0;
    for (int i = 0; i < st->nsenders; i++)
        if (st->senders[i] != c && st->senders[i]->pg) others[n++] = st->senders[i]->pg;
    if (n > 0 || PQisnonblocking(c->pg)) pgconn_wait(c->pg, others, n);
    return PQgetResult(c->pg);
}

/* What to use instead of a COPY sent where no COPY goes (where: "exec/
 * query", "rows()"), into buf: a COPY ... FROM STDIN is db.copy()'s; a
 * COPY ... TO STDOUT nothing of ferry's reads -- conn:copy() takes only
 * FROM STDIN, so pointing there led to another refusal. */
static const char *copy_refusal(ExecStatusType s, const char *where, char *buf, size_t bufsz) {
    if (s == PGRES_COPY_IN) snprintf(buf, bufsz, "COPY ... FROM STDIN goes through db.copy() (conn:copy()), not %s", where);
    else snprintf(buf, bufsz, "COPY ... TO STDOUT is not supported: read the rows with a SELECT (db.rows, db.query)");
    return buf;
}

/* What PQexec / PQexecParams return for the query just sent (sent: the
 * PQsend* call's result): the last result, or a COPY's start at once;
 * NULL when sending failed.  Waits as next_result does. */
static PGresult *exec_result(conn *c, int sent) {
    if (!sent) return NULL;
    PGresult *last = NULL, *r;
    while ((r = next_result(c)) != NULL) {
        PQclear(last);
        last = r;
        if (pgconn_is_copy(PQresultStatus(r)) || PQstatus(c->pg) == CONNECTION_BAD) break;
    }
    return last;
}

/* Ends c's session (first out of interrupt.c's reach); safe twice. */
static void finish_pg(conn *c) {
    interrupt_unwatch(c->cancel_slot);
    c->cancel_slot = -1;
    if (c->pg) { PQfinish(c->pg); c->pg = NULL; }
}

/* The finalizer (__gc): ends the session, whatever it is; safe twice. */
static int conn_release(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    if (c->counted) { c->counted = 0; c->st->nconns--; }
    c->pending = 0;
    sender_remove(c);
    finish_pg(c);
    c->busy = NULL;   /* a rows() or COPY still open finds pg gone and says so */
    free(c->info);
    c->info = NULL;
    return 0;
}

/* conn:close() and <close>: as the finalizer, except on the main
 * connection, which holds ferry's lock and records the run: that one is
 * left open and close() returns nil and why, as io.stdout:close() does. */
static int conn_close(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    if (c->keep_open) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot close the main connection: ferry closes it when the command ends "
                           "(db.connect() opens a connection of your own)");
        return 2;
    }
    return conn_release(L);
}

/* core.keep_open(conn, on): marks (or unmarks, before ferry closes it) the
 * main connection. */
static int db_keep_open(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    c->keep_open = lua_toboolean(L, 2);
    return 0;
}

/* The names of ferry validate's own savepoints on the held session begin
 * so (db.lua's VALIDATE_SP, CHECK_SP). */
#define HELD_SAVEPOINTS "ferry_validate"

/* core.hold_transaction(conn, on): while on, a statement on conn that
 * begins or ends a transaction (BEGIN, COMMIT, ROLLBACK, END, ...: see
 * pgconn_find_transaction_control) is refused before it is sent, and so is
 * one that takes, releases or rolls back to a savepoint named as ferry
 * validate's own (HELD_SAVEPOINTS...: db.lua lifts the hold for its own).
 * ferry validate holds the main session's transaction so for its checks:
 * one snapshot for all of them.  Other savepoints (db.transaction's, a
 * script's) stay allowed. */
static int db_hold_transaction(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    c->hold_tx = lua_toboolean(L, 2);
    return 0;
}

/* core.hold_lock(conn, on): whether conn holds ferry's migration lock (a
 * session advisory lock), which a statement sent on it then may not
 * release (refuse_held): DISCARD ALL, pg_advisory_unlock_all(). */
static int db_hold_lock(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    c->holds_lock = lua_toboolean(L, 2);
    return 0;
}

/* Raises, before anything is sent, when sql would begin or end the
 * transaction ferry holds on c (core.hold_transaction), or release the
 * migration lock it holds (core.hold_lock): released, another ferry could
 * take it and run the same migration at once. */
static void refuse_held(lua_State *L, const conn *c, const char *sql) {
    char word[32];
    if (c->holds_lock && pgconn_find_lock_release(sql, word, sizeof word))
        luaL_error(L, "%s refused: this session holds ferry's migration lock while the command runs, and it would "
                      "release it (another ferry could then run migrations on this database at the same time); "
                      "nothing was sent", word);
    if (!c->hold_tx) return;
    if (pgconn_find_transaction_control(sql, NULL, word, sizeof word))
        luaL_error(L, "%s refused: ferry validate runs every check in one transaction, on one snapshot, and ends "
                      "it itself (db.transaction nests as a savepoint); nothing was sent", word);
    if (pgconn_find_savepoint(sql, HELD_SAVEPOINTS, word, sizeof word))
        luaL_error(L, "%s " HELD_SAVEPOINTS "... refused: the savepoints named " HELD_SAVEPOINTS "... are ferry "
                      "validate's own (each check runs under one, rolled back when it ends); name yours otherwise, "
                      "or nest with db.transaction; nothing was sent", word);
}

/* ferry's settings of a session (apply_settings says why each): $1
 * lock_timeout, $2 statement_timeout, $3 default_transaction_read_only
 * (NULL: what the server, database or role set); idle_session_timeout,
 * from PostgreSQL 14 on, apart. */
#define FERRY_SETTINGS \
        " set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)," \
        " set_config('default_transaction_read_only', coalesce($3, current_setting('default_transaction_read_only')), false)," \
        " set_config('datestyle', 'ISO', false)," \
        " set_config('idle_in_transaction_session_timeout', '0', false)," \
        " set_config('default_transaction_isolation', 'read committed', false)," \
        " set_config('jit', 'off', false), set_config('row_security', 'off', false)," \
        " set_config('client_min_messages', 'notice', false)," \
        " set_config('standard_conforming_strings', 'on', false)"
#define IDLE_SESSION_SETTING ", set_config('idle_session_timeout', '0', false)"

/* A script's RESET ALL or DISCARD ALL (a script tidying its session) puts
 * ferry's settings back to the server's, database's or role's for the
 * rest of the session: row_security on (a policy would hide rows from the
 * run instead of failing its statement), no --lock-timeout, another
 * DateStyle for the times read as text...  So before the next statement
 * on that session they are set again.  (A reset inside a transaction that
 * then fails cannot be undone there: tried again before each statement
 * until it takes.  A setting the script changes by name is its own.) */
static void keep_settings(conn *c, int resets) {
    /* (busy or closed: a finalizer run by the call's argument checks did
     * it, and recheck_idle_conn raises before the send; a statement here
     * would end that COPY or drain those rows) */
    if (c->busy || !c->pg) return;
    if (c->settings_reset) {
        const db_state *st = c->st;
        const char *vals[3] = {st->lock_timeout, st->statement_timeout, st->read_only ? "on" : NULL};
        PGresult *r = PQexecParams(c->pg,
            PQserverVersion(c->pg) >= 140000 ? "SELECT" FERRY_SETTINGS IDLE_SESSION_SETTING : "SELECT" FERRY_SETTINGS,
            3, NULL, vals, NULL, NULL, 0);
        c->settings_reset = PQresultStatus(r) != PGRES_TUPLES_OK;
        PQclear(r);
    }
    if (resets) c->settings_reset = 1;
}

/* A dry run's sessions, and validate's, are read-only by their
 * default_transaction_read_only, which a statement that resets the
 * session turns off as well (RESET ALL, DISCARD ALL: a script tidying its
 * session, a helper function doing so): the transactions after it would
 * write, and commit.  The server reports the setting after every statement
 * that changes it (ParameterStatus, PostgreSQL 14 on; before, libpq has no
 * value and nothing is checked), so before a statement is sent on a
 * session seen read-only, the setting found off is set back on -- unless
 * the statement before named it (SET default_transaction_read_only = off,
 * SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE): the script's own
 * choice, the setting being a guard against script bugs, not a security
 * boundary (lua-api.md, Dry runs). */
static int names_read_only(const char *sql) {
    for (const char *p = sql; *p; p++)
        if (strncasecmp(p, "read_only", 9) == 0 || strncasecmp(p, "read write", 10) == 0) return 1;
    return 0;
}

static void keep_read_only(conn *c, const char *sql) {
    if (c->busy || !c->pg) return;     /* (as keep_settings) */
    const char *v = c->st->read_only ? PQparameterStatus(c->pg, "default_transaction_read_only") : NULL;
    if (!v) {
        c->read_only_seen = 0;
        return;
    }
    if (strcmp(v, "on") == 0) {
        c->read_only_seen = 1;
    } else if (c->read_only_seen && c->named_read_only) {
        c->read_only_seen = 0;
    } else if (c->read_only_seen) {
        PQclear(PQexec(c->pg, "SET default_transaction_read_only = on"));
    }
    c->named_read_only = names_read_only(sql);
}

/* What every statement a script sends on c (exec, query, one, rows,
 * exec_script, copy) passes first, before anything is sent: refused when
 * it holds a RESET ALL or DISCARD ALL with statements after it (they
 * would run before keep_settings can set ferry's settings again) or what
 * refuse_held refuses; ferry's settings and a dry run's read-only set again
 * where the statement before undid them. */
static void prepare_send(lua_State *L, conn *c, const char *sql) {
    int followed;
    const char *reset = pgconn_find_session_reset(sql, &followed);
    if (reset && followed)
        luaL_error(L, "%s refused: the statements after it in the same call would run without ferry's session "
                      "settings (row_security off, the lock and statement timeouts: docs/cli.md, The settings of "
                      "ferry's sessions), which ferry sets again only before its next call: end the call with it, "
                      "or reset by name what the script set (RESET work_mem); nothing was sent",
                   (*reset == 'r' || *reset == 'R') ? "RESET ALL" : "DISCARD ALL");
    refuse_held(L, c, sql);
    keep_settings(c, reset != NULL);
    keep_read_only(c, sql);
}

static int rows_release(lua_State *L, rows *r);
static int copy_release(copy_writer *w, const char *abort_msg);

/* core.release_busy(conn) -> what held the connection ("a rows() iteration",
 * "a COPY") or nil: ends it as the holder's close would -- a rows() query
 * stopped, a COPY aborted (which fails its transaction, remembered as a
 * writer collected mid-COPY is) -- for a holder the Lua side never got
 * (db.lua's release_holder). */
static int db_release_busy(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    const char *held = c->pg ? c->busy : NULL;
    if (c->busy_copy && c->busy_copy->active) {
        if (!c->busy_copy->ended && c->pg) c->copy_abandoned = 1;
        copy_release(c->busy_copy, "ferry: COPY abandoned");
    } else if (c->busy_rows && c->busy_rows->active) {
        rows_release(L, c->busy_rows);
    }
    if (held) lua_pushstring(L, held);
    else lua_pushnil(L);
    return 1;
}

/* core.busy_with(conn) -> what holds the connection ("a rows() iteration",
 * "a COPY") or nil: db.transaction ends a transaction only when fn has let
 * go of its connection. */
static int db_busy_with(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    if (c->busy && c->pg) lua_pushstring(L, c->busy);
    else lua_pushnil(L);
    return 1;
}

/* A userdata owning a PGresult, created before the result exists: a Lua
 * error (even a memory error while a message is pushed) leaves the result
 * to its finalizer. */
static result_box *new_result_box(lua_State *L) {
    result_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->res = NULL;
    luaL_setmetatable(L, RESULT_MT);
    return b;
}

/* Writes a server notice's text to f with its control characters escaped
 * as the engine shows a script's text (`shown` in ferry.engine.lua): C0
 * controls but tab and newline, and DEL, as \xNN; C1 controls (U+0080 to
 * U+009F, CSI is U+009B) as \u00NN.  An escape sequence in a notice would
 * otherwise clear or recolour the terminal.  Newlines stay: libpq puts
 * each part of a notice (DETAIL, HINT) on a line of its own, and ends it
 * with one. */
static void write_escaped_n(FILE *f, const char *s, size_t len) {
    char buf[512];
    size_t n = 0;
    const unsigned char *end = (const unsigned char *)s + len;
    for (const unsigned char *p = (const unsigned char *)s; p < end && *p; p++) {
        if (n > sizeof buf - 8) { fwrite(buf, 1, n, f); n = 0; }
        if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f) {
            n += (size_t)snprintf(buf + n, sizeof buf - n, "\\x%02x", *p);
        } else if (*p == 0xc2 && p + 1 < end && p[1] >= 0x80 && p[1] <= 0x9f) {
            n += (size_t)snprintf(buf + n, sizeof buf - n, "\\u%04x", p[1]);
            p++;
        } else {
            buf[n++] = (char)*p;
        }
    }
    fwrite(buf, 1, n, f);
}
static void write_escaped(FILE *f, const char *s) { write_escaped_n(f, s, strlen(s)); }

/* A notice's text with c's password redacted (as in the server's errors:
 * a value the data holds can show it), in memory the caller frees; NULL
 * when out of memory.  Redacted whole, before anything cuts it. */
static char *redacted_notice(const conn *c, const char *text) {
    size_t redsz = 3 * strlen(text) + 4;   /* (redaction can grow the text: pgconn.c) */
    char *red = malloc(redsz);
    if (red) pgconn_redact_server(conn_info(c->st, c), text, red, redsz);
    return red;
}

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL;        /* (a separator between strings) */
}

/* Whether this notice is one the server has sent NOTICE_SHOWN times
 * already (the same severity and message, whatever its DETAIL): then it is
 * only counted.  A backfill can make one per row ("word is too long to be
 * indexed"), which would bury everything else ferry prints. */
static int repeated_notice(const conn *c, const PGresult *res, const char *severity) {
    db_state *st = c->st;
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!severity || !primary) return 0;
    uint64_t key = fnv1a(fnv1a(0xcbf29ce484222325ULL, severity), primary);
    for (int i = 0; i < st->nnotices; i++) {
        if (st->notices[i].key == key) return ++st->notices[i].seen > NOTICE_SHOWN;
    }
    if (st->nnotices == NOTICE_KINDS) return 0;
    const char *shown = PQresultErrorField(res, PG_DIAG_SEVERITY);
    size_t n = strlen(shown ? shown : severity) + strlen(primary) + 4;
    char *text = malloc(n);
    char *red = text ? (snprintf(text, n, "%s:  %s", shown ? shown : severity, primary), redacted_notice(c, text)) : NULL;
    free(text);
    if (!red) return 0;                            /* (not counted: shown) */
    struct notice_kind *k = &st->notices[st->nnotices++];
    k->key = key;
    k->seen = 1;
    copy_cut(k->text, sizeof k->text, red);
    free(red);
    return 0;
}

/* The server's notices, printed as libpq prints them (on stderr) but with
 * control characters escaped (write_escaped), with the password redacted
 * as in the server's errors, with --quiet ("only errors") none below
 * WARNING, and one the server repeats shown NOTICE_SHOWN times, then only
 * counted.  arg: the connection, which outlives its PGconn (its finalizer
 * ends the session first). */
static void notice_receiver(void *arg, const PGresult *res) {
    const conn *c = arg;
    const db_state *st = c->st;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (st->quiet && severity && strcmp(severity, "WARNING") != 0) return;
    if (repeated_notice(c, res, severity)) return;
    const char *text = PQresultErrorMessage(res);
    size_t len = strlen(text);
    char *red = redacted_notice(c, text);
    if (!red) {
        fputs("(a notice withheld: out of memory)\n", stderr);
    } else {
        /* A notice quoting a 1 MB value was written whole: one 1 MB line.
         * Cut after NOTICE_MAX_BYTES (at a character), saying how much of
         * it was left out; the severity and the start of its text stay. */
        size_t rlen = strlen(red);
        if (rlen > 0 && red[rlen - 1] == '\n') rlen--;
        if (rlen > NOTICE_MAX_BYTES) {
            size_t keep = NOTICE_MAX_BYTES;
            keep = utf8_cut(red, keep);
            write_escaped_n(stderr, red, keep);
            fprintf(stderr, "... (%zu more bytes of this notice not shown)", rlen - keep);
        } else {
            write_escaped_n(stderr, red, rlen);
        }
        /* (redaction drops the newline a notice ends with) */
        if (len > 0 && text[len - 1] == '\n') fputc('\n', stderr);
        free(red);
    }
    fflush(stderr);
}

/* db.core.report_repeated_notices(): one line on stderr per notice the
 * server sent more often than it was shown, with how many were not; then
 * starts counting afresh.  The engine calls it when a command ends. */
static int db_report_repeated_notices(lua_State *L) {
    db_state *st = STATE(L);
    for (int i = 0; i < st->nnotices; i++) {
        const struct notice_kind *k = &st->notices[i];
        if (k->seen <= NOTICE_SHOWN) continue;
        unsigned long more = k->seen - NOTICE_SHOWN;
        fprintf(stderr, "note: the server sent this notice %lu more time%s (not shown): ", more, more == 1 ? "" : "s");
        write_escaped(stderr, k->text);
        fputc('\n', stderr);
    }
    fflush(stderr);
    st->nnotices = 0;
    return 0;
}

/* The notices of a session started ahead, until its settings are applied:
 * as notice_receiver, but the server's FATAL one that ends it while it
 * waited ("terminating connection due to idle-session timeout") is left
 * out -- such a session is connected again (complete_connect). */
static void prestart_notice(void *arg, const PGresult *res) {
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity && strcmp(severity, "FATAL") == 0) return;
    notice_receiver(arg, res);
}

/* Where msg first holds name as a word of its own (no letter, digit or
 * '_' either side), or NULL. */
static const char *word_at(const char *msg, const char *name) {
    size_t n = strlen(name);
    for (const char *p = msg; (p = strstr(p, name)) != NULL; p++) {
        int before = p > msg && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
        int after = isalnum((unsigned char)p[n]) || p[n] == '_';
        if (!before && !after) return p;
    }
    return NULL;
}

/* The flag whose value the server refused, from its message, which names
 * the parameter in whatever language it speaks ('invalid value for
 * parameter "lock_timeout": ...', German 'ungültiger Wert für Parameter
 * »lock_timeout«: ...'; '-1 ms is outside the valid range for parameter
 * "statement_timeout" ...'): the one named first; both when it names
 * neither. */
static const char *timeout_flag(const char *msg) {
    const char *lock = word_at(msg, "lock_timeout"), *statement = word_at(msg, "statement_timeout");
    if (lock && (!statement || lock < statement)) return "--lock-timeout";
    if (statement) return "--statement-timeout";
    return "--lock-timeout / --statement-timeout";
}

/* For c, connected through a connection pooler (apply_settings): returns
 * when the pooler keeps one server session for c (session pooling);
 * otherwise raises "cannot connect to the database: ..." with what to
 * do, c closed, nothing set on the pool's sessions.  ferry keeps state in
 * its sessions that a pool lending them per transaction or statement
 * would lose or hand on: the migration lock (another ferry could take it
 * on the session lent back), the settings (a dry run's read-only, left for
 * the next client), a data migration's reader snapshot and writers.
 * Once known for the module's connection string, its later sessions are
 * not asked again. */
static void pooled_session(lua_State *L, db_state *st, conn *c) {
    char err[1024] = "", line[2048], buf[2048];
    int pinned = pgconn_session_pinned(c->pg, conn_info(st, c), err, sizeof err);
    if (pinned == 1) {
        if (!c->info) st->session_pooler = 1;
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_receiver, c);
    finish_pg(c);
    if (pinned == 0) {
        lua_pushstring(L, "cannot connect to the database: a connection pooler between ferry and the server does not "
                      "keep one server session for ferry's connection (PgBouncer with pool_mode = transaction or "
                      "statement): ferry keeps its migration lock and its settings (a dry run's read-only) in its "
                      "session; connect to the server directly, or through a pool in session mode");
        lua_error(L);
    }
    redact_msg(st, c, err, 0, line, sizeof line);
    pgconn_one_line(line, buf, sizeof buf);
    lua_pushfstring(L, "cannot connect to the database: a connection pooler is between ferry and the server, and a "
                  "second session to find out whether it keeps one server session for ferry's connection failed: "
                  "%s; connect to the server directly, or give the pool room for one more session", buf);
    lua_error(L);
}

/* c is inside a transaction after its settings, a statement that begins
 * none: one a connection pooler opened around it.  pgpool-II in raw mode
 * (backend_clustering_mode = 'raw') does so before the first statement
 * it takes for a write (the settings' FOR UPDATE) on a server session it
 * has just opened, and never ends it: ferry's writes would never be
 * committed (rolled back with the session), and the engine would take it
 * for a transaction a script left open.  Ended here with COMMIT (the
 * settings are kept), after which pgpool opens none of its own on this
 * session: it then works as on the server.  written: that transaction
 * has an xid -- it has written, so it is not such a one but another
 * client's, in the middle of which a pooler handed ferry its server
 * session: neither committed (its writes would be ferry's doing) nor
 * rolled back (its client's work), but c closed and refused.  Raises
 * "cannot connect to the database: ..." with what to do, c closed; a
 * COMMIT that fails, with its own error ("connection lost: ..." when the
 * connection went in it).  b: the caller's box for the COMMIT's result. */
static void end_foreign_transaction(lua_State *L, db_state *st, conn *c, result_box *b, int written) {
    if (written) {
        finish_pg(c);
        lua_pushstring(L, "cannot connect to the database: a connection pooler between ferry and the server handed "
                          "ferry a server session inside another client's transaction, one that has written: ferry "
                          "neither commits nor rolls back another client's work; connect to the server directly, or "
                          "through a pool in session mode");
        lua_error(L);
    }
    b->res = PQexec(c->pg, "COMMIT");
    if (PQresultStatus(b->res) != PGRES_COMMAND_OK) {
        errmsg m;
        const char *msg = result_error_text(c, b->res, &m);
        PQclear(b->res);
        b->res = NULL;
#define WHAT "cannot commit the transaction that was open around the session settings"
        if (PQstatus(c->pg) == CONNECTION_BAD) raise_pg(L, st, c, WHAT, msg, m.server);
        char buf[2048];
        redact_msg(st, c, msg, m.server, buf, sizeof buf);
        finish_pg(c);
        lua_pushfstring(L, "cannot connect to the database: " WHAT ": %s", buf);
#undef WHAT
        lua_error(L);
    }
    PQclear(b->res);
    b->res = NULL;
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE) return;
    /* COMMIT went through, and a transaction is open again */
    finish_pg(c);
    lua_pushstring(L, "cannot connect to the database: a connection pooler between ferry and the server opens a "
                      "transaction of its own before a statement that writes and leaves it open (pgpool-II with "
                      "backend_clustering_mode = 'raw'): ferry's writes would never be committed; connect to the "
                      "server directly, or through pgpool-II in streaming_replication mode");
    lua_error(L);
}

/* Applies the session settings every ferry connection has, with values
 * bound as parameters.  Returns 1; 0 (nothing raised, nothing printed)
 * when `may_retry` and the server had closed the session: one started
 * ahead (db.prestart) and first used after longer than the database's or
 * role's idle_session_timeout, which these settings would have turned off
 * -- the caller connects again. */
static int apply_settings(lua_State *L, db_state *st, conn *c, int may_retry) {
    PQsetNoticeReceiver(c->pg, may_retry ? prestart_notice : notice_receiver, c);
    /* default_transaction_read_only: on under --dry-run; otherwise what
     * the server, database, role or PGOPTIONS set (NULL: kept) -- a
     * database its DBA set read-only is not written by ferry behind the
     * DBA's back. */
    const char *vals[4] = {st->lock_timeout, st->statement_timeout, st->read_only ? "on" : NULL, NULL};
    /* $4: the backend pid libpq was given at connection.  The settings
     * apply only where it is the session's own: otherwise a connection
     * pooler is in between (its pid is its own), which may lend this
     * session to other clients -- the settings would stay there for them
     * (a dry run's read-only for the application) -- see pooled_session. */
    char pid[24];
    if (!(st->session_pooler && !c->info)) {
        snprintf(pid, sizeof pid, "%d", PQbackendPID(c->pg));
        vals[3] = pid;
    }
    result_box *b = new_result_box(L);
    /* The box's allocation may run a finalizer that closed c (a session
     * started ahead, at its first use): its settings would fail as on a
     * session the server ended, and complete_connect connect it again --
     * a connection the script closed, open. */
    if (!c->pg) luaL_error(L, "attempt to use a closed connection");
    /* DateStyle ISO: times travel as text (a row read, a COPY written), and
     * the other styles print zone abbreviations that do not read back as
     * the same zone (China's CST is US Central to the parser).  ISO alone
     * keeps the database's day/month order for input. */
    /* A data migration's writer sits idle inside its transaction by design
     * (a batch commits when its writer's turn comes again, while Lua maps
     * the next one; at a million audits the head's writers wait seconds
     * for the reader's sort), and a session waits idle while another works:
     * a timeout set for the application on the database or role would end
     * it, and every re-run the same way.  Both off for ferry's sessions, as
     * statement_timeout is unless --statement-timeout says otherwise
     * (idle_session_timeout exists from PostgreSQL 14 on). */
    /* What a DBA may set on the database or role for the application
     * that the engine is built the other way round for:
     * - READ COMMITTED: a data migration's writers take batches in turn,
     *   each moving the same resume point; a SERIALIZABLE or REPEATABLE
     *   READ default refuses the second writer's update of it ("could not
     *   serialize access due to concurrent update"), on every re-run.  The
     *   reader and validate ask for their snapshot with BEGIN ISOLATION
     *   LEVEL, and so may a script.
     * - jit off: with low jit_*_above_cost every statement is compiled,
     *   down to the foreign-key check of each row a writer COPYs (a run
     *   hundreds of times slower); the readers turned it off already.
     * - row_security off: a policy that applies to ferry's role on a
     *   table fails the statement (an error the engine explains) instead
     *   of hiding rows -- from the run, its checks, its rollback.
     * - client_min_messages notice, PostgreSQL's default: debug1 would
     *   show the server's DEBUG lines about ferry's own statements,
     *   warning would hide the NOTICE a rollback verifies itself with.
     * - standard_conforming_strings on, the default since 9.1: ferry reads
     *   every SQL file that way (a backslash escapes only in E'...') to
     *   find a BEGIN/COMMIT before it is sent; off, the server would read
     *   a string on past where ferry saw it end, and store 'a\b' as 'a'
     *   and a backspace. */
    /* The second column: whether the transaction the statement ran in
     * has an xid (see end_foreign_transaction); pg_current_xact_id_if_assigned
     * from PostgreSQL 13 on, txid_current_if_assigned (10 on) before. */
#define SESSION_SETTINGS(xid) "SELECT pg_backend_pid(), " xid "_if_assigned() IS NOT NULL," FERRY_SETTINGS
    /* FOR UPDATE locks nothing here (there is no table), and the server
     * takes it in a read-only transaction too; but pgpool-II in raw mode
     * (backend_clustering_mode = 'raw') takes the statement for a write,
     * as it does every INSERT, UPDATE and DELETE ferry sends (all with
     * the extended protocol), and opens a transaction of its own before
     * it that it never ends: the writes would never be committed (rolled
     * back when the session ends).  So its transaction shows here, on
     * this first statement, before anything is written, and is ended: see
     * end_foreign_transaction. */
#define OWN_SESSION " WHERE $4::int IS NULL OR pg_backend_pid() = $4::int FOR UPDATE"
    int version = PQserverVersion(c->pg);
  again:
    b->res = PQexecParams(c->pg,
        version >= 140000
            ? SESSION_SETTINGS("pg_current_xact_id") IDLE_SESSION_SETTING OWN_SESSION
            : version >= 130000 ? SESSION_SETTINGS("pg_current_xact_id") OWN_SESSION
            : SESSION_SETTINGS("txid_current") OWN_SESSION,
        4, NULL, vals, NULL, NULL, 0);
#undef SESSION_SETTINGS
#undef OWN_SESSION
    if (PQresultStatus(b->res) == PGRES_TUPLES_OK && PQntuples(b->res) == 0) {
        /* nothing set: a pooler in between */
        PQclear(b->res);
        b->res = NULL;
        pooled_session(L, st, c);
        vals[3] = NULL;
        goto again;
    }
    if (PQresultStatus(b->res) != PGRES_TUPLES_OK) {
        /* A value the server cannot read (--lock-timeout banana): a
         * configuration error, raised without a script position, the
         * session closed first rather than left to the collector. */
        errmsg m;
        const char *msg = result_error_text(c, b->res, &m);
        PQclear(b->res);
        b->res = NULL;
        if (PQstatus(c->pg) == CONNECTION_BAD && may_retry) {
            lua_pop(L, 1);
            return 0;
        }
        PQsetNoticeReceiver(c->pg, notice_receiver, c);
        if (PQstatus(c->pg) == CONNECTION_BAD) raise_pg(L, st, c, "cannot apply session settings", msg, m.server);
        char buf[2048];
        redact_msg(st, c, msg, m.server, buf, sizeof buf);
        finish_pg(c);
        lua_pushfstring(L, "cannot apply the session settings: %s: %s", timeout_flag(buf), buf);
        lua_error(L);
    }
    c->server_pid = atoi(PQgetvalue(b->res, 0, 0));
    int written = strcmp(PQgetvalue(b->res, 0, 1), "t") == 0;
    PQclear(b->res);
    b->res = NULL;
    PQsetNoticeReceiver(c->pg, notice_receiver, c);
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) end_foreign_transaction(L, st, c, b, written);
    /* client_connection_check_interval (PostgreSQL 14 and later): a ferry
     * killed while the server sorts a million audits would otherwise leave
     * that query running for minutes, holding its snapshot and a core.  On
     * its own, and a refusal ignored: a server that cannot watch its
     * clients (Windows) takes only 0. */
    b->res = PQserverVersion(c->pg) >= 140000
        ? PQexec(c->pg, "SELECT set_config('client_connection_check_interval', '1s', false)") : NULL;
    PQclear(b->res);
    b->res = NULL;
    lua_pop(L, 1);
    c->cancel_slot = interrupt_watch(c->pg);
    return 1;
}

/* A session costs the server a process but Lua only a small userdata, so
 * the collector never hurries for it: a script that drops its connections
 * unclosed would run out of max_connections long before a collection.
 * So once GC_EVERY more connections are open than after the last full
 * collection, one runs before the next is opened. */
#define GC_EVERY 16

/* A connection userdata with its metatable, before any resource exists. */
static conn *new_conn(lua_State *L, db_state *st) {
    if (st->nconns >= st->gc_at) {
        lua_gc(L, LUA_GCCOLLECT);
        st->gc_at = st->nconns + GC_EVERY;
    }
    conn *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->st = st;
    c->pg = NULL;
    c->busy = NULL;
    c->info = NULL;
    c->pending = 0;
    c->started_ms = 0;
    c->busy_tx = PQTRANS_IDLE;
    c->keep_open = 0;
    c->counted = 1;
    c->cancel_slot = -1;
    c->hold_tx = 0;
    c->server_pid = 0;
    c->copy_abandoned = 0;
    c->holds_lock = 0;
    c->read_only_seen = 0;
    c->named_read_only = 0;
    c->settings_reset = 0;
    c->busy_rows = NULL;
    c->busy_copy = NULL;
    st->nconns++;
    luaL_setmetatable(L, CONN_MT);
    return c;
}

/* Raises "cannot connect" for c (password redacted), closing it first:
 * one line -- libpq writes a line for each host it tried, and its advice
 * on a line of its own -- with a server's SQLSTATE after its message
 * ("FATAL:  ... [SQLSTATE 53300]"), as ferry shows any other error. */
static int raise_connect_failure(lua_State *L, conn *c, const char *info, char *why) {
    char red[2048], buf[2048], line[2048];
    /* Redacted whole first, then cut (a password cut in two is no longer
     * found); then each server's message with its SQLSTATE after it (what
     * the engine's advice keys on: the words are in the server's language) */
    pgconn_redact(info, why ? why : PQerrorMessage(c->pg), red, sizeof red);
    free(why);
    pgconn_connect_error(red, buf, sizeof buf);
    pgconn_one_line(buf, line, sizeof line);
    PQfinish(c->pg);
    c->pg = NULL;
    /* (libpq's words for a server that wants a password none was given
     * for say nothing of where one goes) */
    const char *advice = strstr(line, "no password supplied")
        ? "; the server asks for a password: give it in PGPASSWORD, in a password file (~/.pgpass, or the one "
          "PGPASSFILE names: host:port:database:user:password) or in the connection string"
        : "";
    /* A URL read from a file or a secret with its newline: libpq takes the
     * break as part of its last value (the database's name, a parameter's
     * value), and what it says of that value does not show why.  (A
     * key=value string's trailing blanks libpq ignores.) */
    size_t n = info ? strlen(info) : 0;
    if (n > 0 && (info[n - 1] == '\n' || info[n - 1] == '\r') &&
        (strncmp(info, "postgresql://", 13) == 0 || strncmp(info, "postgres://", 11) == 0))
        advice = "; the connection string ends with a line break (read from a file or a secret with its newline?), "
                 "which libpq takes as part of its last value: remove it";
    lua_pushfstring(L, "cannot connect to the database: %s%s", line, advice);
    return lua_error(L);
}

/* Raises when c's session could not be set up (c->pg stays c's, for its
 * finalizer). */
static void check_opened(lua_State *L, conn *c, const char *info, char *why) {
    if (!c->pg) {
        free(why);
        luaL_error(L, "cannot connect: out of memory");
    }
    if (PQstatus(c->pg) != CONNECTION_OK) raise_connect_failure(L, c, info, why);   /* frees why */
    else free(why);
}

/* Raises, c closed, when info is the command's connection string and that
 * is DATABASE_URL set but empty (no --db): libpq would take the PG*
 * variables' database, another than the one meant, and nothing would say
 * so (cf. --db "", a usage error). */
static void refuse_empty_url(lua_State *L, conn *c, const char *info) {
    if (info || !STATE(L)->empty_url) return;
    finish_pg(c);
    lua_pushstring(L, "cannot connect to the database: DATABASE_URL is set but empty (a variable or a secret not "
                      "filled in?): give it a connection string, or give --db; unset it to connect where libpq's "
                      "PG* variables say");
    lua_error(L);
}

/* c's connection from pgconn_start, driven until it is ready, then
 * checked: a Ctrl-C while it waited raises the interruption (not
 * connected), a failure "cannot connect". */
static void complete_pg(lua_State *L, conn *c, const char *info) {
    char *why;      /* each host's error, when one ran out of time */
    refuse_empty_url(L, c, info);
    c->pg = pgconn_complete(c->pg, info, c->started_ms, &why);
    if (interrupt_received()) {
        free(why);
        finish_pg(c);
        ferry_raise_interrupted(L);
    }
    check_opened(L, c, info, why);
}

/* Connects c to info, waiting (a Ctrl-C ends the wait), and applies the
 * session settings. */
static void open_blocking(lua_State *L, db_state *st, conn *c, const char *info) {
    c->started_ms = pgconn_now_ms();
    refuse_empty_url(L, c, info);
    c->pg = pgconn_start(info);
    complete_pg(L, c, info);
    apply_settings(L, st, c, 0);
}

/* db.connect([conninfo]) -> connection.  Without an argument it opens
 * another session to the database ferry was pointed at. */
static int db_connect(lua_State *L) {
    db_state *st = STATE(L);
    const char *info = lua_isnoneornil(L, 1) ? st->conninfo : check_text(L, 1, "conninfo");
    conn *c = new_conn(L, st);
    if (info && info != st->conninfo && !(c->info = strdup(info))) return luaL_error(L, "cannot connect: out of memory");
    open_blocking(L, st, c, info);
    return 1;
}

/* connect_start() -> connection, started but not waited for (a session to
 * the database ferry was pointed at): the server sets it up while the
 * script goes on.  Its first use (or conn:ready()) waits for it and raises
 * what db.connect() would have; closing it unused just drops it. */
static int db_connect_start(lua_State *L) {
    db_state *st = STATE(L);
    conn *c = new_conn(L, st);
    c->started_ms = pgconn_now_ms();
    c->pg = st->empty_url ? NULL : pgconn_start(st->conninfo);   /* (refused at its first use) */
    c->pending = 1;
    return 1;
}

static void complete_connect(lua_State *L, conn *c) {
    db_state *st = STATE(L);
    c->pending = 0;
    if (c->pg) PQsetNoticeReceiver(c->pg, prestart_notice, c);
    complete_pg(L, c, st->conninfo);
    /* A session started ahead waits idle until its first use, before the
     * settings turn idle_session_timeout off: the server may have ended it
     * meanwhile.  Connected again then, once, the blocking way. */
    if (apply_settings(L, st, c, 1)) return;
    PQfinish(c->pg);
    c->pg = NULL;
    open_blocking(L, st, c, st->conninfo);
}

/* conn:ready(): waits until a connection from connect_start is set up. */
static int conn_ready(lua_State *L) {
    check_conn(L, 1);
    return 0;
}

/* ---------- parameters ---------- */

/* The SQL text of a float: NaN and the infinities as PostgreSQL spells
 * them (C's "nan"/"inf" it refuses); a whole number in the 64-bit range as
 * integer text, which a bigint or integer column reads too (%.17g writes
 * 1e17 as "1e+17"); any other with %.17g, every bit of the double (unlike
 * tostring's %.14g). */
static const char *float_sql_text(double d, char *buf, size_t size) {
    if (isnan(d)) return "NaN";
    if (isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    if (d == floor(d) && d > -9223372036854775808.0 && d < 9223372036854775808.0)
        snprintf(buf, size, "%.0f", d);
    else
        snprintf(buf, size, "%.17g", d);
    return buf;
}

/* core.float_text(x) -> the text a float is sent as (db.array's elements
 * use it, so that an array element reads as a parameter does). */
static int db_float_text(lua_State *L) {
    char buf[64];
    lua_pushstring(L, float_sql_text(luaL_checknumber(L, 1), buf, sizeof buf));
    return 1;
}

/* The text of the Lua value at idx as a SQL value, for a parameter or a
 * COPY column: NULL for nil and db.NULL / json.null; t/f for booleans;
 * integers as Lua prints them; floats as float_sql_text writes them (the
 * text replaces the number on the stack, so it lives as long as the value
 * does); strings as they are.  Raises
 * "<what><n>: ..." (+ hint) for anything else, and for a NUL byte, which no
 * text value can hold (libpq would cut a parameter there, the server
 * refuses it in COPY data). */
static const char *sql_value_text(lua_State *L, int idx, const char *what, int n, const char *hint,
                                  size_t *len) {
    *len = 0;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return NULL;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) return NULL;
        break;
    case LUA_TBOOLEAN:
        *len = 1;
        return lua_toboolean(L, idx) ? "t" : "f";
    case LUA_TNUMBER:
        if (!lua_isinteger(L, idx)) {
            char tmp[64];
            lua_pushstring(L, float_sql_text(lua_tonumber(L, idx), tmp, sizeof tmp));
            lua_replace(L, idx);
        }
        return lua_tolstring(L, idx, len);
    case LUA_TSTRING: {
        const char *v = lua_tolstring(L, idx, len);
        if (memchr(v, '\0', *len))
            luaL_error(L, "%s%d: a string with a NUL byte is not a SQL text value", what, n);
        return v;
    }
    }
    luaL_error(L, "%s%d: a %s is not a SQL value%s", what, n, luaL_typename(L, idx), hint);
    return NULL;
}

/* Collects Lua values from stack index `first` to the top as text
 * parameters.  The array lives in a userdata (freed by the GC even when an
 * error unwinds) and the strings stay on the stack during the call. */
static const char *const *collect_params(lua_State *L, int first, int *nparams) {
    int top = lua_gettop(L);
    int n = top >= first ? top - first + 1 : 0;
    const char **values = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(char *), 0);
    for (int i = 0; i < n; i++) {
        size_t len;
        values[i] = sql_value_text(L, first + i, "parameter $", i + 1,
                                   " (encode tables with json.encode or db.array)", &len);
    }
    *nparams = n;
    return values;
}

/* ---------- results to Lua values ---------- */

static void push_value(lua_State *L, PGresult *res, int row, int col) {
    const char *v = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    long long iv;
    switch (PQftype(res, col)) {
    case 16: lua_pushboolean(L, v[0] == 't'); return;                 /* bool */
    case 20: case 21: case 23: case 26:                               /* int8 int2 int4 oid */
        if (pgconn_integer_fits(v, &iv)) { lua_pushinteger(L, (lua_Integer)iv); return; }
        break;
    case 700: case 701:                                               /* float4 float8 */
        lua_pushnumber(L, strtod(v, NULL)); return;
    case 1700:                                                        /* numeric */
        if (!strpbrk(v, ".eE") && pgconn_integer_fits(v, &iv)) { lua_pushinteger(L, (lua_Integer)iv); return; }
        if (strpbrk(v, ".eE") && pgconn_numeric_fits_double(v)) { lua_pushnumber(L, strtod(v, NULL)); return; }
        break;
    }
    lua_pushlstring(L, v, (size_t)len);
}

/* Pushes the column names as a table the row builder indexes by position. */
static void push_names(lua_State *L, PGresult *res) {
    int nf = PQnfields(res);
    lua_createtable(L, nf, 0);
    int dups = 0;
    for (int f = 0; f < nf; f++) {
        lua_pushstring(L, PQfname(res, f));
        lua_rawseti(L, -2, f + 1);
        for (int g = 0; g < f && !dups; g++) dups = strcmp(PQfname(res, f), PQfname(res, g)) == 0;
    }
    /* [0] = true when two columns share a name: push_row then also clears
     * a name for a NULL (once per query, so that rows without duplicate
     * names skip their NULLs at no cost) */
    if (dups) {
        lua_pushboolean(L, 1);
        lua_rawseti(L, -2, 0);
    }
}

/* Pushes row `row` as a table keyed by column name; SQL NULL is absent
 * (nil).  `names` is the stack index of push_names' table.  Of two columns
 * with one name the last wins, a NULL too: it removes what an earlier one
 * set (setting nil where there is no key adds none). */
static void push_row(lua_State *L, PGresult *res, int row, int names) {
    int nf = PQnfields(res);
    int dups = lua_rawgeti(L, names, 0) == LUA_TBOOLEAN;
    lua_pop(L, 1);
    lua_createtable(L, 0, nf);
    for (int f = 0; f < nf; f++) {
        int null = PQgetisnull(res, row, f);
        if (null && !dups) continue;
        lua_rawgeti(L, names, f + 1);
        if (null) lua_pushnil(L);
        else push_value(L, res, row, f);
        lua_rawset(L, -3);
    }
}

/* ---------- one-shot queries ---------- */

static int pqmem_gc(lua_State *L) {
    pqmem_box *m = luaL_checkudata(L, 1, PQMEM_MT);
    if (m->p) { PQfreemem(m->p); m->p = NULL; }
    return 0;
}

static int result_gc(lua_State *L) {
    result_box *b = luaL_checkudata(L, 1, RESULT_MT);
    if (b->res) { PQclear(b->res); b->res = NULL; }
    return 0;
}

/* Runs sql with the parameters from stack index 3 on, leaving a result box
 * (owner of the PGresult) on top of the stack.  Raises on failure. */
static result_box *run_query(lua_State *L, conn *c) {
    db_state *st = STATE(L);
    const char *sql = check_text(L, 2, "SQL text");
    prepare_send(L, c, sql);
    int n;
    const char *const *values = collect_params(L, 3, &n);
    result_box *b = new_result_box(L);
    recheck_idle_conn(L);
    b->res = exec_result(c, PQsendQueryParams(c->pg, sql, n, NULL, values, NULL, NULL, 0));
    if (!b->res) return raise_pg(L, st, c, "query failed", PQerrorMessage(c->pg), 0), NULL;
    ExecStatusType s = PQresultStatus(b->res);
    if (pgconn_is_copy(s)) {
        PQclear(b->res);
        b->res = NULL;
        pgconn_end_unexpected_copy(c->pg, s);
        pgconn_drain(c->pg);
        char why[160];
        luaL_error(L, "query failed: %s", copy_refusal(s, "exec/query", why, sizeof why));
    }
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK && s != PGRES_EMPTY_QUERY) {
        errmsg m;
        const char *msg = result_error_text(c, b->res, &m);
        PQclear(b->res);
        b->res = NULL;
        raise_pg(L, st, c, "query failed", msg, m.server);
    }
    return b;
}

/* The rows a statement affected (its command tag's count) or returned:
 * the server's count is 64-bit, and an UPDATE of a table of billions of
 * rows goes past an int's. */
static lua_Integer affected_rows(PGresult *res) {
    const char *t = PQcmdTuples(res);
    return *t ? (lua_Integer)strtoll(t, NULL, 10) : PQntuples(res);
}

/* conn:exec(sql, ...) -> number of rows affected (or returned). */
static int conn_exec(lua_State *L) {
    conn *c = check_idle_conn(L, 1);
    result_box *b = run_query(L, c);
    lua_Integer n = affected_rows(b->res);
    PQclear(b->res);
    b->res = NULL;
    lua_pushinteger(L, n);
    return 1;
}

/* conn:query(sql, ...) -> array of rows (tables by column name), count. */
static int conn_query(lua_State *L) {
    conn *c = check_idle_conn(L, 1);
    result_box *b = run_query(L, c);
    int box = lua_gettop(L);
    int nt = PQntuples(b->res);
    push_names(L, b->res);
    int names = lua_gettop(L);
    lua_createtable(L, nt, 0);
    for (int r = 0; r < nt; r++) {
        push_row(L, b->res, r, names);
        lua_rawseti(L, -2, r + 1);
    }
    lua_pushinteger(L, nt);
    PQclear(b->res);
    b->res = NULL;
    (void)box;
    return 2;
}

/* conn:one(sql, ...) -> first row or nil. */
static int conn_one(lua_State *L) {
    conn *c = check_idle_conn(L, 1);
    result_box *b = run_query(L, c);
    if (PQntuples(b->res) == 0) { PQclear(b->res); b->res = NULL; lua_pushnil(L); return 1; }
    push_names(L, b->res);
    push_row(L, b->res, 0, lua_gettop(L));
    PQclear(b->res);
    b->res = NULL;
    return 1;
}

/* The line of sql (1-based) at the server's error position (characters,
 * 1-based, in the whole script), or 0 when the error has none. */
static long script_error_line(const PGresult *res, const char *sql) {
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    long chars = pos ? atol(pos) : 0, line = 1;
    if (chars <= 0) return 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        if ((*p & 0xC0) != 0x80 && --chars == 0) break;   /* a character starts here */
        if (*p == '\n') line++;
    }
    return line;
}

/* conn:exec_script(sql) -> runs several statements at once (simple query
 * protocol, no parameters): for up.sql and rollback.sql files.  An error
 * the server places in the script ends with " (line N)". */
static int conn_exec_script(lua_State *L) {
    conn *c = check_idle_conn(L, 1);
    db_state *st = STATE(L);
    const char *sql = check_text(L, 2, "SQL text");
    prepare_send(L, c, sql);
    result_box *b = new_result_box(L);
    recheck_idle_conn(L);
    PGTransactionStatusType before = PQtransactionStatus(c->pg);
    if (!PQsendQuery(c->pg, sql)) return raise_pg(L, st, c, "script failed", PQerrorMessage(c->pg), 0);
    /* Read every result; keep the first error, drain the rest. */
    errmsg m;
    int failed = 0;
    while ((b->res = next_result(c)) != NULL) {
        ExecStatusType s = PQresultStatus(b->res);
        if (pgconn_is_copy(s)) {
            if (!failed)
                errmsg_set(c, &m, s == PGRES_COPY_IN
                                  ? "COPY ... FROM STDIN in a script is not supported (load data with db.copy())"
                                  : "COPY ... TO STDOUT in a script is not supported (read the rows with a SELECT: "
                                    "db.rows, db.query)");
            failed = 1;
            PQclear(b->res);
            b->res = NULL;
            if (s == PGRES_COPY_BOTH) break;
            pgconn_end_unexpected_copy(c->pg, s);
            continue;
        }
        if (!failed && s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK && s != PGRES_EMPTY_QUERY) {
            long line = script_error_line(b->res, sql);
            char at[32] = "";
            if (line > 0) snprintf(at, sizeof at, " (line %ld)", line);
            result_error_text_with(c, b->res, &m, at);     /* the SQLSTATE and line kept whole */
            failed = 1;
        }
        PQclear(b->res);
        b->res = NULL;
    }
    if (failed) {
        /* A transaction the script began (BEGIN; ...; COMMIT) and failed
         * in: the rest of it, its COMMIT too, never ran; left failed, it
         * would refuse every later statement.  One the caller began is
         * the caller's to end. */
        if (before == PQTRANS_IDLE && PQtransactionStatus(c->pg) == PQTRANS_INERROR) PQclear(PQexec(c->pg, "ROLLBACK"));
        return raise_pg(L, st, c, "script failed", m.text, m.server);
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) return raise_pg(L, st, c, "script failed", PQerrorMessage(c->pg), 0);
    return 0;
}

/* ---------- streaming rows (single-row mode) ---------- */

/* Ends the query (the result a row is built from is the iterator's, in its
 * box: see rows_next). */
static int rows_release(lua_State *L, rows *r) {
    (void)L;
    if (r->c->busy_rows == r) r->c->busy_rows = NULL;
    if (r->active) {
        r->active = 0;
        if (r->c->pg) {
            /* Stopped early: ask the server to stop sending, then drain.
             * (Inside a transaction block a cancel would abort the
             * transaction: there the rest is only drained.) */
            PGcancel *cancel = r->in_block ? NULL : PQgetCancel(r->c->pg);
            if (cancel) {
                char err[256];
                PQcancel(cancel, err, sizeof err);
                PQfreeCancel(cancel);
            }
            pgconn_drain(r->c->pg);
        }
        r->c->busy = NULL;
    }
    return 0;
}

static int rows_close(lua_State *L) {
    return rows_release(L, luaL_checkudata(L, 1, ROWS_MT));
}

static int rows_next(lua_State *L) {
    rows *r = lua_touserdata(L, lua_upvalueindex(1));
    db_state *st = lua_touserdata(L, lua_upvalueindex(2));
    if (!r->active) return 0;
    if (!r->c->pg) {   /* conn:close() under the iteration */
        rows_release(L, r);
        return luaL_error(L, "this rows() iteration's connection is closed");
    }
    /* The result lives in the iterator's box (one per iteration, freed by
     * its finalizer whatever unwinds), not in r: building the row
     * allocates, so a finalizer may run meanwhile and close the iteration,
     * which must not free the result the row is read from.  Nor may one
     * call the iterator again then. */
    result_box *b = lua_touserdata(L, lua_upvalueindex(4));
    if (r->building)
        return luaL_error(L, "this rows() iteration is building a row (called from a finalizer, or after a memory error)");
    if (b->res) { PQclear(b->res); b->res = NULL; }
    b->res = next_result(r->c);
    ExecStatusType s = b->res ? PQresultStatus(b->res) : PGRES_FATAL_ERROR;
    if (s == PGRES_SINGLE_TUPLE) {
        r->building = 1;
        if (lua_isnil(L, lua_upvalueindex(3))) {   /* names, once per query */
            push_names(L, b->res);
            lua_replace(L, lua_upvalueindex(3));
        }
        push_row(L, b->res, 0, lua_upvalueindex(3));
        r->building = 0;
        PQclear(b->res);
        b->res = NULL;
        return 1;
    }
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK || s == PGRES_EMPTY_QUERY) {   /* the end */
        PQclear(b->res);
        b->res = NULL;
        pgconn_drain(r->c->pg);
        r->active = 0;
        r->c->busy = NULL;
        return 0;
    }
    errmsg m;
    char why[160];
    const char *msg = pgconn_is_copy(s) ? errmsg_set(r->c, &m, copy_refusal(s, "rows()", why, sizeof why))
                    : b->res ? result_error_text(r->c, b->res, &m) : errmsg_set(r->c, &m, PQerrorMessage(r->c->pg));
    if (b->res) { PQclear(b->res); b->res = NULL; }
    pgconn_end_unexpected_copy(r->c->pg, s);
    pgconn_drain(r->c->pg);
    r->active = 0;
    r->c->busy = NULL;
    return raise_pg(L, st, r->c, "query failed while reading rows", msg, m.server);
}

/* conn:rows(sql, ...) -> iterator, for use as
 *   for row in conn:rows(sql, ...) do ... end
 * Rows are streamed one at a time (bounded memory, whatever the size); the
 * fourth value makes the loop close the query when it is left early. */
static int conn_rows(lua_State *L) {
    conn *c = check_idle_conn(L, 1);
    db_state *st = STATE(L);
    const char *sql = check_text(L, 2, "SQL text");
    prepare_send(L, c, sql);
    int n;
    const char *const *values = collect_params(L, 3, &n);
    rows *r = lua_newuserdatauv(L, sizeof *r, 1);
    r->c = c;
    r->active = 0;
    r->building = 0;
    r->in_block = 0;
    luaL_setmetatable(L, ROWS_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);   /* the connection outlives the iterator */
    int ud = lua_gettop(L);
    /* The iterator is made before the query is sent: a memory error once
     * the connection is busy would leave it so, held by an iterator nobody
     * has to close, until the collector found it (and a transaction's
     * ROLLBACK refused meanwhile).  From the send on nothing allocates. */
    lua_pushvalue(L, ud);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    new_result_box(L);
    lua_pushcclosure(L, rows_next, 4);
    recheck_idle_conn(L);
    c->busy_tx = PQtransactionStatus(c->pg);
    r->in_block = c->busy_tx == PQTRANS_INTRANS;
    if (!PQsendQueryParams(c->pg, sql, n, NULL, values, NULL, NULL, 0))
        return raise_pg(L, st, c, "query failed", PQerrorMessage(c->pg), 0);
    r->active = 1;
    c->busy = "a rows() iteration";
    c->busy_rows = r;
    if (!PQsetSingleRowMode(c->pg)) {
        rows_release(L, r);
        return luaL_error(L, "cannot enter single-row mode");
    }
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, ud);
    return 4;
}

/* ---------- COPY FROM STDIN ---------- */

#define COPY_FLUSH_AT (256 * 1024)
#define BUF_SPILL_AT ((size_t)16 << 20)    /* a db.buffer()'s rows in memory, at most (but one row) */
#define SPILL_CHUNK (64 * 1024)            /* read from its file at once */
#define SPILL_WAIT_EVERY 16                /* chunks handed to libpq between waits: 1 MB */

static void buf_free(copy_buf *b);

static int copy_release(copy_writer *w, const char *abort_msg) {
    if (w->c->busy_copy == w) w->c->busy_copy = NULL;
    if (w->active) {
        w->active = 0;
        sender_remove(w->c);
        if (w->c->pg) {
            pgconn_flush_and_block(w->c->pg);
            if (!w->ended) PQputCopyEnd(w->c->pg, abort_msg);
            pgconn_drain(w->c->pg);
        }
        w->c->busy = NULL;
    }
    buf_free(&w->b);
    return 0;
}

/* __gc and __close: a COPY whose data was never ended is aborted, which
 * fails the transaction it runs in; the connection remembers it, so that
 * db.transaction says why rather than blame an error fn caught. */
static int copy_gc(lua_State *L) {
    copy_writer *w = luaL_checkudata(L, 1, COPY_MT);
    if (w->active && !w->ended && w->c->pg) w->c->copy_abandoned = 1;
    return copy_release(w, "ferry: COPY abandoned");
}

/* core.take_abandoned_copy(conn [, put]) -> whether a writer was closed or
 * collected mid-COPY on conn since the last call (which forgets it, or, with
 * put true, leaves it said: a nested db.transaction puts back the outer
 * level's when it ends). */
static int db_take_abandoned_copy(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    int put = lua_toboolean(L, 2);
    lua_pushboolean(L, c->copy_abandoned);
    c->copy_abandoned = put;
    return 1;
}

static copy_writer *check_active_copy(lua_State *L) {
    copy_writer *w = luaL_checkudata(L, 1, COPY_MT);
    if (!w->active) luaL_error(L, "COPY is finished or aborted");
    if (!w->c->pg) {   /* conn:close() under it: nothing left to end */
        copy_release(w, NULL);
        luaL_error(L, "COPY's connection is closed");
    }
    return w;
}

static copy_writer *check_open_copy(lua_State *L) {
    copy_writer *w = check_active_copy(L);
    if (w->ended) luaL_error(L, "COPY data is already ended (call finish)");
    return w;
}

static void buf_free(copy_buf *b) {
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
    b->rows = 0;
    if (b->spill) close(b->spill - 1);
    b->spill = 0;
    b->spilled = 0;
}

/* Raises what stops a run, not a row's error: ferry's own error table
 * (code 1), which stats.error raises on instead of counting -- a temporary
 * file that cannot be made or written fails every row after it, and
 * counting them up to --max-errors said to fix the rule. */
static int raise_spill_error(lua_State *L, const char *what, const char *dir, int err) {
    char msg[1400];
    snprintf(msg, sizeof msg, "db.buffer: more than %d MB of rows, and %s in %.1024s: %s (set TMPDIR to a folder with room for them, then re-run)",
             (int)(BUF_SPILL_AT >> 20), what, dir, strerror(err));
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    luaL_setmetatable(L, FERRY_ERROR_MT);
    return lua_error(L);
}

/* Moves the rows in b's memory to the end of its temporary file (made at
 * the first call, in $TMPDIR or /tmp, and unlinked at once: it goes away
 * with the buffer, or with the process however it ends).  On an error
 * the buffer is as it was. */
static void buf_spill(lua_State *L, copy_buf *b) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    if (!b->spill) {
        char path[1024];
        int fd = -1;
        if (snprintf(path, sizeof path, "%s/ferry-buffer.XXXXXX", dir) < (int)sizeof path) fd = mkstemp(path);
        else errno = ENAMETOOLONG;
        if (fd < 0) raise_spill_error(L, "no temporary file for them", dir, errno);
        unlink(path);
        b->spill = fd + 1;
    }
    size_t done = 0;
    while (done < b->len) {
        ssize_t n = pwrite(b->spill - 1, b->buf + done, b->len - done, (off_t)(b->spilled + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) raise_spill_error(L, "its temporary file cannot take them", dir, n < 0 ? errno : ENOSPC);
        done += (size_t)n;
    }
    b->spilled += b->len;
    b->len = 0;
}

static void buf_reserve(lua_State *L, copy_buf *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < b->len + more) cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb) luaL_error(L, "COPY: out of memory");
    b->unreported += cap - b->cap;
    b->buf = nb;
    b->cap = cap;
}

/* Tells the collector about the memory b grew by, as if Lua had allocated
 * it: a buffer is a few bytes of Lua memory holding megabytes of C memory,
 * and dropped without clear() it would otherwise be collected only when
 * other allocations happened to start a cycle (400 dropped buffers of a
 * megabyte were all alive at once).  Called once a row is written, never
 * while one is half-written: the step may run finalizers. */
static void buf_report(lua_State *L, copy_buf *b) {
    if (b->unreported < 64 * 1024) return;
    size_t kb = b->unreported / 1024;
    b->unreported = 0;
    if (lua_gc(L, LUA_GCISRUNNING))          /* (not when the script stopped it) */
        lua_gc(L, LUA_GCSTEP, kb > INT_MAX ? INT_MAX : (int)kb);
}

#define ROW_COLS_AT_ONCE 32

/* Appends the values at stack indexes first..top as one COPY text row.
 * Every value is checked, and the room for the whole row reserved, before
 * a byte is written: a rejected row leaves nothing behind.  With spill (a
 * db.buffer()), rows that would take the memory part past BUF_SPILL_AT
 * go to the temporary file first. */
static void buf_put_row(lua_State *L, copy_buf *b, int first, int spill) {
    int n = lua_gettop(L);
    if (n < first) luaL_error(L, "COPY: a row needs at least one value");
    /* the texts of the first columns are kept from the checking pass (the
     * usual row); a wider row looks the rest up again */
    const char *text[ROW_COLS_AT_ONCE];
    size_t lens[ROW_COLS_AT_ONCE];
    size_t need = 0, len;
    for (int i = first; i <= n; i++) {
        const char *t = sql_value_text(L, i, "COPY column ", i - first + 1, "", &len);
        if (i - first < ROW_COLS_AT_ONCE) { text[i - first] = t; lens[i - first] = len; }
        need += 2 * len + 3;   /* escaped text or \N, and the separator */
    }
    if (spill && b->len > 0 && b->len + need > BUF_SPILL_AT) buf_spill(L, b);
    buf_reserve(L, b, need);
    for (int i = first; i <= n; i++) {
        const char *s;
        if (i - first < ROW_COLS_AT_ONCE) { s = text[i - first]; len = lens[i - first]; }
        else s = sql_value_text(L, i, "COPY column ", i - first + 1, "", &len);
        if (s) {
            b->len += copytext_escape(s, len, b->buf + b->len);
        } else {
            memcpy(b->buf + b->len, "\\N", 2);
            b->len += 2;
        }
        b->buf[b->len++] = (i == n) ? '\n' : '\t';
    }
    b->rows++;
}

/* Hands bytes to libpq.  The connection is non-blocking during a COPY:
 * libpq queues what the socket cannot take yet, and conn:flush() or
 * finish() sends it, so the client goes on mapping meanwhile. */
static void send_bytes(lua_State *L, copy_writer *w, const char *data, size_t len) {
    int retried = 0;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int r = PQputCopyData(w->c->pg, data, chunk);
        if (r == 1) { data += chunk; len -= (size_t)chunk; retried = 0; continue; }
        /* 0: libpq could not grow its buffer for the chunk.  Send all it
         * holds and try once more; retrying without end would spin. */
        if (r == 0 && !retried && pgconn_flush_and_block(w->c->pg) == 0 && PQsetnonblocking(w->c->pg, 1) == 0) {
            retried = 1;
            continue;
        }
        errmsg m;
        errmsg_set(w->c, &m, r == 0 ? "out of memory for the COPY data" : PQerrorMessage(w->c->pg));
        copy_release(w, "ferry: write failed");
        raise_pg(L, STATE(L), w->c, "COPY failed", m.text, m.server);
    }
}

/* Waits until libpq has sent what it holds for w's connection (the data
 * other connections hold goes on out meanwhile, as in next_result). */
static void wait_sent(lua_State *L, copy_writer *w) {
    db_state *st = w->c->st;
    PGconn *others[PGCONN_MAX_OTHERS];
    int n = 0;
    for (int i = 0; i < st->nsenders; i++)
        if (st->senders[i] != w->c && st->senders[i]->pg) others[n++] = st->senders[i]->pg;
    if (pgconn_send_all(w->c->pg, others, n) != 0) {
        errmsg m;
        errmsg_set(w->c, &m, PQerrorMessage(w->c->pg));
        copy_release(w, "ferry: write failed");
        raise_pg(L, st, w->c, "COPY failed", m.text, m.server);
    }
    if (interrupt_received()) ferry_raise_interrupted(L);
}

/* Sends a db.buffer() that spilled to its temporary file: the file a chunk
 * at a time, then the rows in memory, waiting every SPILL_WAIT_EVERY
 * chunks until the server has taken them, so that neither libpq's buffer
 * nor this one holds the batch (it costs the overlap of mapping and
 * sending, for the batches beyond BUF_SPILL_AT only). */
static void send_spilled(lua_State *L, copy_writer *w, copy_buf *b) {
    char chunk[SPILL_CHUNK];
    int since_wait = 0;
    for (size_t off = 0; off < b->spilled;) {
        size_t want = b->spilled - off < sizeof chunk ? b->spilled - off : sizeof chunk;
        ssize_t n = pread(b->spill - 1, chunk, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            char why[256];
            snprintf(why, sizeof why, "cannot read db.buffer's temporary file: %s", n < 0 ? strerror(errno) : "it is shorter than written");
            copy_release(w, "ferry: read failed");
            luaL_error(L, "COPY failed: %s", why);
        }
        send_bytes(L, w, chunk, (size_t)n);
        off += (size_t)n;
        if (++since_wait == SPILL_WAIT_EVERY) { wait_sent(L, w); since_wait = 0; }
    }
    for (size_t off = 0; off < b->len; off += SPILL_CHUNK) {
        send_bytes(L, w, b->buf + off, b->len - off < SPILL_CHUNK ? b->len - off : SPILL_CHUNK);
        if (++since_wait == SPILL_WAIT_EVERY) { wait_sent(L, w); since_wait = 0; }
    }
}

static int copy_flush(lua_State *L, copy_writer *w) {
    if (w->b.len == 0) return 0;
    send_bytes(L, w, w->b.buf, w->b.len);
    w->b.len = 0;
    return 0;
}

/* w:put(v1, v2, ...) appends one row; nil or db.NULL is SQL NULL. */
static int copy_put(lua_State *L) {
    copy_writer *w = check_open_copy(L);
    buf_put_row(L, &w->b, 2, 0);
    /* a value's text is an allocation, where a finalizer may have finished
     * or aborted w, or closed its connection: the row would sit in a
     * buffer nobody sends, counted as put */
    check_open_copy(L);
    w->rows++;
    if (w->b.len >= COPY_FLUSH_AT) copy_flush(L, w);
    return 0;
}

/* w:put_buffer(buf) sends every row of a db.buffer() (which stays as it
 * is: clear it to reuse it). */
static int copy_put_buffer(lua_State *L) {
    copy_writer *w = check_open_copy(L);
    copy_buf *b = luaL_checkudata(L, 2, BUF_MT);
    copy_flush(L, w);
    if (b->spilled) send_spilled(L, w, b);
    else send_bytes(L, w, b->buf, b->len);
    w->rows += b->rows;
    return 0;
}

/* Sends what is buffered and the end of the data, without waiting. */
static void copy_send_end(lua_State *L, copy_writer *w) {
    copy_flush(L, w);
    if (PQputCopyEnd(w->c->pg, NULL) != 1) {
        errmsg m;
        errmsg_set(w->c, &m, PQerrorMessage(w->c->pg));
        copy_release(w, "ferry: COPY failed");
        raise_pg(L, STATE(L), w->c, "COPY failed", m.text, m.server);
    }
    w->ended = 1;
    buf_free(&w->b);
}

/* w:end_data(): ends the data and returns at once, while the server is
 * still storing it; w:finish() later collects the result.  This lets the
 * client map the next batch (or feed another connection) meanwhile. */
static int copy_end_data(lua_State *L) {
    copy_send_end(L, check_open_copy(L));
    return 0;
}

/* w:finish() -> number of rows the server stored. */
static int copy_finish(lua_State *L) {
    /* The box first: its allocation may run a finalizer that finishes w
     * itself (and has its error); w is looked at after that, and from
     * there on nothing allocates until the result is read. */
    result_box *b = new_result_box(L);
    copy_writer *w = check_active_copy(L);
    db_state *st = STATE(L);
    if (!w->ended) copy_send_end(L, w);
    /* send whatever libpq still holds and wait for the result (the other
     * COPYs are fed meanwhile), then back to blocking */
    b->res = next_result(w->c);
    sender_remove(w->c);
    errmsg m;
    if (pgconn_flush_and_block(w->c->pg) != 0) {
        PQclear(b->res);
        b->res = NULL;
        errmsg_set(w->c, &m, PQerrorMessage(w->c->pg));
        copy_release(w, "ferry: COPY failed");
        return raise_pg(L, st, w->c, "COPY failed", m.text, m.server);
    }
    w->active = 0;
    w->c->busy = NULL;
    int failed = 0;
    long long stored = 0;
    while (b->res != NULL) {
        ExecStatusType s = PQresultStatus(b->res);
        if (pgconn_is_copy(s)) {
            /* another COPY after this one: PQgetResult would return it
             * for ever; end it, and fail (a guard: conn:copy sends one
             * statement, by the extended protocol) */
            PQclear(b->res);
            b->res = NULL;
            pgconn_end_unexpected_copy(w->c->pg, s);
            if (!failed) errmsg_set(w->c, &m, "one COPY statement per conn:copy(), with nothing after it");
            failed = 1;
            if (s == PGRES_COPY_BOTH) break;
        } else if (!failed && s != PGRES_COMMAND_OK) {
            result_error_text(w->c, b->res, &m);
            failed = 1;
        } else if (!failed) {
            stored = atoll(PQcmdTuples(b->res));
        }
        PQclear(b->res);
        b->res = next_result(w->c);
    }
    lua_pop(L, 1);                       /* the (empty) box */
    if (failed) return raise_pg(L, st, w->c, "COPY failed", m.text, m.server);
    lua_pushinteger(L, (lua_Integer)stored);
    return 1;
}

/* The most of an abort's reason sent: it travels in the COPY's CopyFail
 * message, which the server takes up to 10,000 bytes of -- a longer one
 * made it end the session ("invalid message length") while abort()
 * returned as if all was well. */
#define ABORT_REASON_MAX 1000

/* w:abort([reason]): the reason cut to ABORT_REASON_MAX bytes, never
 * inside a UTF-8 character (a NUL ends it, as libpq reads it). */
static int copy_abort(lua_State *L) {
    copy_writer *w = luaL_checkudata(L, 1, COPY_MT);
    const char *reason = luaL_optstring(L, 2, "ferry: COPY aborted");
    char cut[ABORT_REASON_MAX + 1];
    size_t len = strlen(reason);
    if (len > ABORT_REASON_MAX) {
        len = utf8_cut(reason, ABORT_REASON_MAX);
        memcpy(cut, reason, len);
        cut[len] = '\0';
        reason = cut;
    }
    return copy_release(w, reason);
}

static int copy_count(lua_State *L) {
    copy_writer *w = luaL_checkudata(L, 1, COPY_MT);
    lua_pushinteger(L, (lua_Integer)w->rows);
    return 1;
}

/* conn:copy("COPY t (a, b) FROM STDIN") -> writer.  Only a COPY is sent,
 * alone: a DELETE given by mistake, or one after the COPY, must not run.
 * It goes out as a simple query, not with the extended protocol: there a
 * COPY the server fails at its start (a view, a statement trigger) leaves
 * a second Sync -- libpq's, after the end of the data -- whose
 * ReadyForQuery the next query would take for its own. */
static int conn_copy(lua_State *L) {
    conn *c = check_idle_conn(L, 1);
    db_state *st = STATE(L);
    const char *sql = check_text(L, 2, "SQL text");
    const char *scs = PQparameterStatus(c->pg, "standard_conforming_strings");
    int plain_escapes = scs && strcmp(scs, "off") == 0;
    if (!pgconn_is_copy_from_stdin(sql, plain_escapes))
        return luaL_error(L, "COPY failed to start: not a COPY ... FROM STDIN statement (nothing was sent)");
    /* put() and buffers write the text format with its defaults: an option
     * that reads it otherwise would drop a row or store a value as another
     * without an error */
    char opt[64];
    if (pgconn_copy_format_option(sql, plain_escapes, opt, sizeof opt))
        return luaL_error(L, "COPY failed to start: the option %s changes how the rows are read; ferry writes them "
                             "in the text format with its defaults (a tab between columns, \\N for NULL): leave it "
                             "out (nothing was sent)", opt);
    prepare_send(L, c, sql);
    copy_writer *w = lua_newuserdatauv(L, sizeof *w, 1);
    memset(w, 0, sizeof *w);
    w->c = c;
    luaL_setmetatable(L, COPY_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    result_box *b = new_result_box(L);
    recheck_idle_conn(L);
    c->busy_tx = PQtransactionStatus(c->pg);
    b->res = exec_result(c, PQsendQuery(c->pg, sql));
    ExecStatusType s = PQresultStatus(b->res);
    if (s != PGRES_COPY_IN) {
        errmsg m;
        const char *msg = (s == PGRES_COPY_OUT || s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
            ? errmsg_set(c, &m, "not a COPY ... FROM STDIN statement")
            : (b->res ? result_error_text(c, b->res, &m) : errmsg_set(c, &m, PQerrorMessage(c->pg)));
        PQclear(b->res);
        b->res = NULL;
        /* consume unwanted output, and end a COPY FROM the statements
         * after it may start: PQgetResult alone would return it for ever */
        pgconn_end_unexpected_copy(c->pg, s);
        pgconn_drain(c->pg);
        return raise_pg(L, st, c, "COPY failed to start", msg, m.server);
    }
    PQclear(b->res);
    b->res = NULL;
    w->active = 1;
    c->busy = "a COPY";
    c->busy_copy = w;
    PQsetnonblocking(c->pg, 1);
    sender_add(c);
    lua_pop(L, 1);
    return 1;
}

/* ---------- db.buffer(): COPY rows built ahead of a writer ---------- */

static int buf_gc(lua_State *L) {
    buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

static int buf_put(lua_State *L) {
    copy_buf *b = luaL_checkudata(L, 1, BUF_MT);
    buf_put_row(L, b, 2, 1);
    buf_report(L, b);
    return 0;
}

static int buf_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)((copy_buf *)luaL_checkudata(L, 1, BUF_MT))->rows);
    return 1;
}

static int buf_bytes(lua_State *L) {
    copy_buf *b = luaL_checkudata(L, 1, BUF_MT);
    lua_pushinteger(L, (lua_Integer)(b->spilled + b->len));
    return 1;
}

/* buf:spilled() -> true when part of its rows wait in its temporary file
 * (more than BUF_SPILL_AT bytes of them): sending it then waits until the
 * server has taken them. */
static int buf_spilled(lua_State *L) {
    lua_pushboolean(L, ((copy_buf *)luaL_checkudata(L, 1, BUF_MT))->spilled > 0);
    return 1;
}

static int buf_clear(lua_State *L) {
    copy_buf *b = luaL_checkudata(L, 1, BUF_MT);
    b->len = 0;
    b->rows = 0;
    if (b->spilled && ftruncate(b->spill - 1, 0) != 0) { /* (only gives the disk back: rewritten from 0 anyway) */ }
    b->spilled = 0;
    return 0;
}

/* db.buffer() -> an empty buffer of COPY rows */
static int db_buffer(lua_State *L) {
    copy_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, BUF_MT);
    return 1;
}

/* ---------- misc ---------- */

/* conn:flush() -> true when libpq has sent everything it holds.  Call it
 * now and then while a COPY's data is still going out (after end_data). */
static int conn_flush(lua_State *L) {
    conn *c = check_conn(L, 1);
    int r = PQflush(c->pg);
    if (r < 0) return raise_pg(L, STATE(L), c, "send failed", PQerrorMessage(c->pg), 0);
    lua_pushboolean(L, r == 0);
    return 1;
}

/* conn:quote_ident(s): libpq's identifier quoting. */
static int conn_quote_ident(lua_State *L) {
    conn *c = check_conn(L, 1);
    const char *s = check_text(L, 2, "an identifier");
    size_t len = strlen(s);
    /* the libpq string lives in a box with a finalizer while it is copied */
    pqmem_box *m = lua_newuserdatauv(L, sizeof *m, 0);
    m->p = NULL;
    luaL_setmetatable(L, PQMEM_MT);
    check_conn(L, 1);                     /* (closed by a finalizer the box's allocation ran?) */
    m->p = PQescapeIdentifier(c->pg, s, len);
    if (!m->p) {
        char why[512];                    /* (libpq's text ends with a newline) */
        pgconn_one_line(PQerrorMessage(c->pg), why, sizeof why);
        return luaL_error(L, "quote_ident: %s", why);
    }
    lua_pushstring(L, m->p);
    PQfreemem(m->p);
    m->p = NULL;
    return 1;
}

/* conn:backend_pid() and conn:in_transaction() help the engine report. */
static int conn_backend_pid(lua_State *L) {
    conn *c = check_conn(L, 1);
    lua_pushinteger(L, c->server_pid);
    return 1;
}

static int conn_in_transaction(lua_State *L) {
    conn *c = check_conn(L, 1);
    PGTransactionStatusType t = PQtransactionStatus(c->pg);
    /* while a rows() iteration or a COPY runs libpq only says "active":
     * the command runs in the transaction there was when it started */
    if (t == PQTRANS_ACTIVE && c->busy) t = c->busy_tx;
    lua_pushboolean(L, t == PQTRANS_INTRANS || t == PQTRANS_INERROR);
    lua_pushboolean(L, t == PQTRANS_INERROR);   /* failed: only ROLLBACK works now */
    return 2;
}

static int conn_tostring(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    lua_pushstring(L, c->pg ? "ferry connection" : "ferry connection (closed)");
    return 1;
}

/* core.set_read_only(on): whether the sessions opened from now on get
 * default_transaction_read_only (the engine's switch for validate.lua;
 * --dry-run sets it from the start).  Sessions already open keep theirs. */
static int db_set_read_only(lua_State *L) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    STATE(L)->read_only = lua_toboolean(L, 1);
    return 0;
}

static int db_state_gc(lua_State *L) {
    db_state *st = lua_touserdata(L, 1);
    free(st->conninfo);
    free(st->lock_timeout);
    free(st->statement_timeout);
    st->conninfo = st->lock_timeout = st->statement_timeout = NULL;
    return 0;
}

static const luaL_Reg conn_methods[] = {
    {"exec", conn_exec}, {"query", conn_query}, {"one", conn_one}, {"rows", conn_rows},
    {"copy", conn_copy}, {"exec_script", conn_exec_script}, {"quote_ident", conn_quote_ident},
    {"backend_pid", conn_backend_pid}, {"in_transaction", conn_in_transaction}, {"flush", conn_flush},
    {"ready", conn_ready}, {"close", conn_close}, {NULL, NULL}
};
static const luaL_Reg buf_methods[] = {
    {"put", buf_put}, {"count", buf_count}, {"bytes", buf_bytes}, {"clear", buf_clear},
    {"spilled", buf_spilled}, {NULL, NULL}
};
static const luaL_Reg rows_methods[] = {{"close", rows_close}, {NULL, NULL}};
static const luaL_Reg copy_methods[] = {
    {"put", copy_put}, {"put_buffer", copy_put_buffer}, {"end_data", copy_end_data}, {"finish", copy_finish}, {"abort", copy_abort},
    {"count", copy_count},
    {NULL, NULL}
};

/* Creates a metatable whose methods share the module state (on the stack
 * below it), gc as __gc and close as __close: one finalizer for both, but
 * the connections' close leaves the main one open (conn_close). */
static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                      lua_CFunction close) {
    luaL_newmetatable(L, name);
    lua_newtable(L);
    if (methods) { lua_pushvalue(L, -3); luaL_setfuncs(L, methods, 1); }
    lua_setfield(L, -2, "__index");
    if (gc) { lua_pushcfunction(L, gc); lua_setfield(L, -2, "__gc"); }
    if (close) { lua_pushcfunction(L, close); lua_setfield(L, -2, "__close"); }
    lua_pop(L, 1);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* db.core.find_transaction_control(sql) -> line, command ("BEGIN",
 * "COMMIT", ...) of the first statement of the script that begins or ends
 * a transaction, or nil (see pgconn_find_transaction_control; the scan
 * stops at a NUL byte, which exec_script refuses). */
static int db_find_transaction_control(lua_State *L) {
    const char *sql = luaL_checkstring(L, 1);
    char word[32];
    int line;
    if (!pgconn_find_transaction_control(sql, &line, word, sizeof word)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, line);
    lua_pushstring(L, word);
    return 2;
}

/* statement_heads' walk: the Lua stack indexes of its arguments and result,
 * and the first word of the statement that ended it. */
typedef struct heads_walk {
    lua_State *L;
    int firsts, out, max;
    char stopped[32];
} heads_walk;

#define HEAD_TOKENS_MAX 64

static int visit_head(const char *p, int line, void *ud) {
    heads_walk *w = ud;
    lua_State *L = w->L;
    pgconn_token tok[HEAD_TOKENS_MAX];
    const char *stop;
    int n = pgconn_statement_tokens(p, tok, w->max, &stop);
    char first[sizeof w->stopped];
    size_t len = n > 0 ? tok[0].n : 0;
    if (len >= sizeof first) len = sizeof first - 1;  /* (no key is that long: a word cut short is none) */
    for (size_t i = 0; i < len; i++) first[i] = (char)tolower((unsigned char)tok[0].s[i]);
    first[len] = '\0';
    int wanted = n > 0 && lua_getfield(L, w->firsts, first) != LUA_TNIL;
    if (n > 0) lua_pop(L, 1);
    if (!wanted) {
        memcpy(w->stopped, n > 0 ? first : "?", n > 0 ? len + 1 : 2);
        return 1;
    }
    lua_createtable(L, n, 2);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, tok[i].s, tok[i].n);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, line);
    lua_setfield(L, -2, "line");
    lua_pushlstring(L, stop ? stop : "", stop ? 1 : 0);
    lua_setfield(L, -2, "stop");
    lua_rawseti(L, w->out, (lua_Integer)lua_rawlen(L, w->out) + 1);
    return 0;
}

/* db.core.statement_heads(sql, firsts[, max]) -> { {line = n, stop = c,
 * token, ...}, ... }, stopped: the first tokens (up to max, default and at
 * most 64; see pgconn_statement_tokens) of the script's top-level
 * statements, in order, as long as their first word, in lower case, is a
 * key of firsts ({create = true, ...}); stop is the byte the tokens
 * stopped at ("" at the end of the text).  stopped: the first word (lower
 * case, "?" for none) of the statement the walk stopped at, or nil when
 * it went to the end. */
static int db_statement_heads(lua_State *L) {
    const char *sql = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer max = luaL_optinteger(L, 3, HEAD_TOKENS_MAX);
    luaL_argcheck(L, max >= 1 && max <= HEAD_TOKENS_MAX, 3, "between 1 and 64");
    lua_newtable(L);
    heads_walk w = {L, 2, lua_gettop(L), (int)max, ""};
    if (pgconn_each_statement(sql, visit_head, &w)) {
        lua_pushstring(L, w.stopped);
        return 2;
    }
    return 1;
}

/* Appends each name pgconn_copy_target reads to the list on the stack at
 * parts (the table's) or parts + 1 (the columns'). */
static void add_copy_name(int column, const char *name, size_t len, void *ud) {
    lua_State *L = ud;
    int list = lua_gettop(L) - 1 + column;
    lua_pushlstring(L, name, len);
    lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
}

/* core.copy_target(sql) -> the table of "COPY table [(columns)] FROM
 * STDIN" as written, its parts joined by '.' without what was between them
 * (to_regclass reads it), and the list of its columns as written ({} for
 * none); nil when sql does not start so.  A dry run's pipeline asks the
 * server for the rights these need (ferry.pipeline). */
static int db_copy_target(lua_State *L) {
    const char *sql = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_newtable(L);                            /* 2: the table's parts */
    lua_newtable(L);                            /* 3: the columns */
    if (!pgconn_copy_target(sql, add_copy_name, L)) {
        lua_pushnil(L);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '.');
        lua_rawgeti(L, 2, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_pushvalue(L, 3);
    return 2;
}

/* core.error_routine(text) -> the routine of the server that raised the
 * error text tells (PG_DIAG_SOURCE_FUNCTION: "make_tsvector"), or nil:
 * of the last few server errors raised, the newest whose first line text
 * holds.  The words of an error are in the server's language (its
 * lc_messages); its routine is the same in every one. */
static int db_error_routine(lua_State *L) {
    db_state *st = STATE(L);
    const char *text = luaL_checkstring(L, 1);
    for (int k = 1; k <= RECENT_ERRORS; k++) {
        const struct recent_error *e = &st->recent[(st->next_recent + RECENT_ERRORS - k) % RECENT_ERRORS];
        if (e->text[0] && e->routine[0] && strstr(text, e->text)) {
            lua_pushstring(L, e->routine);
            return 1;
        }
    }
    lua_pushnil(L);
    return 1;
}

/* core.connection_lost(conn): whether libpq found conn's connection lost
 * (the server ended the session, or went away) -- the engine asks it of
 * its main session, whatever an error's words say.  A closed conn is lost;
 * one still being opened is not (yet). */
static int db_connection_lost(lua_State *L) {
    conn *c = luaL_checkudata(L, 1, CONN_MT);
    lua_pushboolean(L, !c->pending && (!c->pg || PQstatus(c->pg) == CONNECTION_BAD));
    return 1;
}

/* core.lost_raised() -> how many "connection lost" errors the sessions
 * have raised so far (raise_pg). */
static int db_lost_raised(lua_State *L) {
    lua_pushinteger(L, STATE(L)->lost_raised);
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"connect", db_connect}, {"connect_start", db_connect_start}, {"buffer", db_buffer},
    {"float_text", db_float_text}, {"set_read_only", db_set_read_only}, {"hold_lock", db_hold_lock}, {"keep_open", db_keep_open},
    {"busy_with", db_busy_with}, {"release_busy", db_release_busy}, {"hold_transaction", db_hold_transaction},
    {"take_abandoned_copy", db_take_abandoned_copy},
    {"find_transaction_control", db_find_transaction_control}, {"statement_heads", db_statement_heads},
    {"report_repeated_notices", db_report_repeated_notices}, {"error_routine", db_error_routine},
    {"copy_target", db_copy_target}, {"connection_lost", db_connection_lost}, {"lost_raised", db_lost_raised},
    {NULL, NULL}
};

int luaopen_ferry_db(lua_State *L, const db_options *opts) {
    db_state *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    lua_newtable(L);
    lua_pushcfunction(L, db_state_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    st->conninfo = dup_or_null(opts->conninfo);
    st->empty_url = opts->empty_url;
    st->lock_timeout = dup_or_null(opts->lock_timeout);
    st->statement_timeout = dup_or_null(opts->statement_timeout);
    /* a copy that failed must not read as "not given": NULL is libpq's
     * defaults (PGDATABASE's database) and the server's timeouts */
    if ((opts->conninfo && !st->conninfo) || (opts->lock_timeout && !st->lock_timeout)
        || (opts->statement_timeout && !st->statement_timeout))
        return luaL_error(L, "not enough memory");
    st->read_only = opts->read_only;
    st->quiet = opts->quiet;
    st->gc_at = GC_EVERY;
    int sti = lua_gettop(L);

    lua_pushvalue(L, sti); new_class(L, CONN_MT, conn_methods, conn_release, conn_close); lua_pop(L, 1);
    luaL_getmetatable(L, CONN_MT);
    lua_pushcfunction(L, conn_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_pushvalue(L, sti); new_class(L, COPY_MT, copy_methods, copy_gc, copy_gc); lua_pop(L, 1);
    lua_pushvalue(L, sti); new_class(L, ROWS_MT, rows_methods, rows_close, rows_close); lua_pop(L, 1);
    lua_pushvalue(L, sti); new_class(L, BUF_MT, buf_methods, buf_gc, buf_gc); lua_pop(L, 1);
    luaL_newmetatable(L, RESULT_MT);
    lua_pushcfunction(L, result_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, PQMEM_MT);
    lua_pushcfunction(L, pqmem_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    /* db.core: every function gets the state as its upvalue (those that
     * need none ignore it), as lua-cjson passes its module state */
    luaL_newlibtable(L, core_funcs);
    lua_pushvalue(L, sti);
    luaL_setfuncs(L, core_funcs, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "NULL");
    lua_pushboolean(L, opts->read_only);
    lua_setfield(L, -2, "read_only");
    /* The method table, so that the Lua prelude can add conveniences
     * (transaction, ...) written in Lua. */
    luaL_getmetatable(L, CONN_MT);
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "methods");
    lua_pop(L, 1);
    lua_pushboolean(L, opts->conninfo != NULL);
    lua_setfield(L, -2, "has_url");
    lua_remove(L, sti);
    return 1;
}
