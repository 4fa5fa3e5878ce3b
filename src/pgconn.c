/* pgconn: libpq helpers that never touch Lua. */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <pg_config.h>          /* DEF_PGPORT_STR */
#include <pg_config_manual.h>   /* DEFAULT_PGSOCKET_DIR */

#include "interrupt.h"
#include "jsontext.h"
#include "pgconn.h"

/* expand_dbname=1 lets "dbname" carry a whole URI or key=value string;
 * keywords after it override it, so application_name is always ours, and
 * so is client_encoding: the rules read and write UTF-8 (character cuts,
 * Unicode whitespace), whatever PGCLIENTENCODING, the URI or a non-UTF-8
 * database's own encoding would make the session's text. */
#define CONN_PARAMS(conninfo)                                                           \
    const char *keys[] = {"dbname", "application_name", "client_encoding", NULL};       \
    const char *vals[] = {(conninfo) ? (conninfo) : "", "ferry", "UTF8", NULL};         \
    if (!(conninfo)) { keys[0] = "application_name"; vals[0] = "ferry";                 \
                       keys[1] = "client_encoding"; vals[1] = "UTF8"; keys[2] = NULL; }

PGconn *pgconn_open(const char *conninfo) {
    CONN_PARAMS(conninfo);
    return PQconnectdbParams(keys, vals, 1);
}

/* Waits until the socket of pg is ready for what `want` asks, at most
 * timeout_ms (-1: no limit): 1 ready, 0 not (yet: timed out, or a signal
 * came), -1 a poll error. */
static int wait_socket(PGconn *pg, PostgresPollingStatusType want, int timeout_ms) {
    struct pollfd p = {.fd = PQsocket(pg), .events = want == PGRES_POLLING_READING ? POLLIN : POLLOUT};
    if (p.fd < 0) return -1;
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR ? 0 : -1;
    return r > 0;
}

static PGconn *start_params(const char *const *keys, const char *const *vals, int expand_dbname) {
    PGconn *pg = PQconnectStartParams(keys, vals, expand_dbname);
    if (!pg) return pg;
    /* A session the server refuses has no result to ask its SQLSTATE of:
     * only the error text, in the server's language (53300's "too many
     * clients already" is German on a German server).  At this verbosity
     * libpq writes the SQLSTATE into that text (pgconn_connect_error reads
     * it out); pgconn_complete puts the default back once connected. */
    PQsetErrorVerbosity(pg, PQERRORS_VERBOSE);
    if (PQstatus(pg) == CONNECTION_BAD) return pg;
    /* Send the startup packet now if the socket takes it at once (a local
     * server does): the server then authenticates and sets the backend up
     * while we do other work.  Anything that would wait is left to
     * pgconn_complete. */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st == PGRES_POLLING_WRITING && wait_socket(pg, st, 0) == 1) st = PQconnectPoll(pg);
    return pg;
}

PGconn *pgconn_start(const char *conninfo) {
    CONN_PARAMS(conninfo);
    return start_params(keys, vals, 1);
}

long pgconn_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pg's connect_timeout (the option, or PGCONNECT_TIMEOUT) in milliseconds,
 * read as libpq's blocking connect reads it (a value below 2 s counts as
 * 2 s; blanks around it go), or -1: none, or -2: not a whole number, which
 * libpq refuses ("invalid integer value"). */
static int connect_timeout_ms(PGconn *pg) {
    PQconninfoOption *opts = PQconninfo(pg);
    int ms = -1;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "connect_timeout") != 0 || !o->val) continue;
        char *end;
        errno = 0;
        long s = strtol(o->val, &end, 10);
        while (isspace((unsigned char)*end)) end++;
        if (end == o->val || errno || s != (int)s || *end) ms = -2;
        else if (s > 0) ms = (int)((s < 2 ? 2 : (s > 86400 ? 86400 : s)) * 1000);
    }
    PQconninfoFree(opts);
    return ms;
}

/* Drives pg, started at started_ms, until it is ready (1), has failed (0)
 * or has used up its connect_timeout counted from its start (-1; also for
 * a poll error): on this path libpq leaves the timeout to us.  Sessions
 * started together run out together; one started long ago is still given
 * what its socket already holds.  A signal ferry takes for an
 * interruption (Ctrl-C) ends the wait too (-2): a server that never
 * answers, with no connect_timeout, would keep ferry waiting for as long
 * as the network does (minutes), the first Ctrl-C lost. */
#define WAIT_SLICE_MS 1000
/* Which entry of its host list, address and port pg is trying: as one
 * string (into out), and the entry itself (*entry).  libpq has no call
 * for the entry's index, and host=a,a with one port makes two entries
 * that read the same; but PQhost and PQport return the strings of the
 * entry being tried, each entry's its own copy, so where the strings are
 * alike the pointers still tell the entries apart.  (An entry tried again
 * -- sslmode=prefer without TLS -- keeps its pointers: libpq does not
 * restart its time for that either.) */
typedef struct {
    const char *host, *port;
} host_entry;

static void trying(PGconn *pg, char *out, size_t outsz, host_entry *entry) {
    const char *host = PQhost(pg), *addr = PQhostaddr(pg), *port = PQport(pg);
    snprintf(out, outsz, "%s|%s|%s", host ? host : "", addr ? addr : "", port ? port : "");
    entry->host = host;
    entry->port = port;
}

static int drive(PGconn *pg, long started_ms) {
    int timeout = connect_timeout_ms(pg);
    long deadline = started_ms + timeout;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    char was[1024], now[1024];
    host_entry was_entry, now_entry;
    trying(pg, was, sizeof was, &was_entry);
    /* A session started long before it is used (db.prestart) may have run
     * out of its time meanwhile, while ferry did other work.  If the host
     * answered what it was last sent (its socket has the server's answer,
     * or the connection it was waiting for was made), the rest of the
     * exchange -- a password's round trips, TLS -- is given the time from
     * now, not none; if it did not, it had its whole time to answer and is
     * out of time. */
    ConnStatusType cs = PQstatus(pg);
    if (timeout >= 0 && cs != CONNECTION_BAD && cs != CONNECTION_OK && deadline - pgconn_now_ms() <= 0) {
        int ready = wait_socket(pg, cs == CONNECTION_STARTED || cs == CONNECTION_MADE
                                    ? PGRES_POLLING_WRITING : PGRES_POLLING_READING, 0);
        if (ready != 1) return -1;
        deadline = pgconn_now_ms() + timeout;
    }
    for (;;) {
        if (PQstatus(pg) == CONNECTION_OK || st == PGRES_POLLING_OK) return 1;
        if (PQstatus(pg) == CONNECTION_BAD || st == PGRES_POLLING_FAILED) return 0;
        /* libpq went on to another host or address of its own (one that
         * refused, or was no standby): that one has its own connect_timeout
         * from now, as libpq's blocking connect gives it -- the same host
         * listed again too (robust/31). */
        trying(pg, now, sizeof now, &now_entry);
        if (strcmp(now, was) != 0 || now_entry.host != was_entry.host || now_entry.port != was_entry.port) {
            memcpy(was, now, sizeof was);
            was_entry = now_entry;
            deadline = pgconn_now_ms() + timeout;
        }
        /* A signal taken before the wait would not end it: it is looked
         * for first, and the wait comes back each second to look again
         * (one taken between the look and the wait). */
        if (interrupt_received()) return -2;
        int left = WAIT_SLICE_MS;
        if (timeout >= 0) {
            long l = deadline - pgconn_now_ms();
            if (l < left) left = l > 0 ? (int)l : 0;
        }
        int ready = wait_socket(pg, st, left);
        if (ready < 0) return -1;
        if (ready == 0) {
            if (interrupt_received()) return -2;
            if (timeout >= 0 && deadline - pgconn_now_ms() <= 0) return -1;
            continue;                       /* another signal, or a second gone: wait again */
        }
        st = PQconnectPoll(pg);
    }
}

/* ---- a host that never answers ----------------------------------------
 * libpq's blocking connect gives each address of each host connect_timeout
 * and goes on to the next; on the non-blocking path that is the caller's
 * to do, and libpq has no call to skip an address.  So an address that
 * used up its time is dropped here and a new connection started over what
 * comes after it -- the other addresses of its host name, then the hosts
 * after it: each waited for the same interruptible way, none tried twice. */

/* The number of entries in a comma-separated list ("" and NULL: 0). */
static int list_count(const char *list) {
    if (!list || !*list) return 0;
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    return n;
}

/* Entry i of list when list holds n entries (its start, its length in
 * *len), else "" (not given, or one entry for all: no entry of its own). */
static const char *entry(const char *list, int n, int i, size_t *len) {
    *len = 0;
    if (list_count(list) != n || i >= n) return "";
    const char *p = list;
    for (; i > 0; i--) p = strchr(p, ',') + 1;
    *len = strcspn(p, ",");
    return p;
}

static int same(const char *e, size_t len, const char *what) {
    return what && strlen(what) == len && strncmp(e, what, len) == 0;
}

/* Appends the n bytes at s to the malloc'd string *acc (NULL: empty); 0
 * when out of memory, *acc left as it was. */
static int append_n(char **acc, const char *s, size_t n) {
    size_t had = *acc ? strlen(*acc) : 0;
    char *grown = realloc(*acc, had + n + 1);
    if (!grown) return 0;
    memcpy(grown + had, s, n);
    grown[had + n] = '\0';
    *acc = grown;
    return 1;
}

static int append(char **acc, const char *text) { return append_n(acc, text, strlen(text)); }

/* Adds the len bytes at e as an entry of the malloc'd comma-separated list
 * *list (NULL: no entry yet; an empty first entry makes it ""); 0 when out
 * of memory. */
static int add_entry(char **list, const char *e, size_t len) {
    return (!*list || append_n(list, ",", 1)) && append_n(list, e, len);
}

/* The "connection to server at" line libpq begins for each address it
 * tries (libpq 14 and later; the client's messages are not translated:
 * ferry sets no locale). */
#define SERVER_AT "connection to server at \""

/* pg's host lists (PQconninfo's), for append_named. */
typedef struct {
    const char *host, *hostaddr, *port;
    int n;
} named_lists;

/* The port of entry i as libpq names it: its own, or the one for all, or
 * libpq's default. */
static const char *port_of(const named_lists *l, int i, size_t *len) {
    const char *p = l->port ? l->port : "";
    if (list_count(p) == l->n) p = entry(p, l->n, i, len);
    else *len = strlen(p);
    if (*len == 0) {
        *len = strlen(DEF_PGPORT_STR);
        return DEF_PGPORT_STR;
    }
    return p;
}

/* 1 when an entry after the first `named` is called as named entry j is:
 * its hostaddr, or with none its host, is j's address, and its port j's
 * (host=name,127.0.0.1: the name's address 127.0.0.1 and the host after). */
static int shadowed(const named_lists *l, int named, int j) {
    size_t alen, plen, len, qlen;
    const char *a = entry(l->hostaddr, l->n, j, &alen), *p = port_of(l, j, &plen);
    for (int i = named; i < l->n; i++) {
        const char *e = entry(l->hostaddr, l->n, i, &len);
        if (len == 0) e = entry(l->host, l->n, i, &len);
        const char *q = port_of(l, i, &qlen);
        if (len == alen && strncmp(e, a, len) == 0 && qlen == plen && strncmp(q, p, plen) == 0) return 1;
    }
    return 0;
}

/* Whether line is libpq's 'connection to server at "addr", port ' of
 * named entry j of l. */
static int line_of(const char *line, const named_lists *l, int j) {
    size_t alen, at = strlen(SERVER_AT);
    const char *a = entry(l->hostaddr, l->n, j, &alen);
    return alen > 0 && strncmp(line, SERVER_AT, at) == 0 && strncmp(line + at, a, alen) == 0 &&
           strncmp(line + at + alen, "\", port ", 8) == 0;
}

/* Appends msg, pg's error text, to *why.  pg's first `named` entries are
 * a host name's addresses that ferry gave libpq as hostaddr entries under
 * that name (next_lists), which libpq calls by the address alone, where
 * its blocking connect, resolving the name itself, says 'connection to
 * server at "name" (addr), port p failed: '; each line libpq begins for
 * one of them says so too.  Taken in the order they were tried: a line is
 * of the entry after the last one's, or of the last one again (libpq tries
 * an address twice with sslmode=prefer or allow) unless a host after them
 * is called the same; from a line of any other host on, none is.  0 when
 * out of memory, *why as it was. */
static int append_named(char **why, const char *msg, PGconn *pg, int named) {
    PQconninfoOption *opts = named > 0 ? PQconninfo(pg) : NULL;
    if (named > 0 && !opts) return 0;
    named_lists l = {0};
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0) l.host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0) l.hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0) l.port = o->val;
    }
    l.n = list_count(l.host);
    const size_t at = strlen(SERVER_AT);
    int last = -1, ok = 1;
    char *out = NULL;
    for (const char *line = msg; *line && ok;) {
        size_t len = strcspn(line, "\n");
        len += line[len] == '\n';
        int j = -1;
        if (last + 1 < named && line_of(line, &l, last + 1)) j = last + 1;
        else if (last >= 0 && last < named && line_of(line, &l, last) && !shadowed(&l, named, last)) j = last;
        if (j >= 0) {
            size_t alen, hlen;
            const char *a = entry(l.hostaddr, l.n, j, &alen), *h = entry(l.host, l.n, j, &hlen);
            ok = append_n(&out, line, at) && append_n(&out, h, hlen) && append(&out, "\" (") &&
                 append_n(&out, a, alen) && append(&out, ")") &&
                 append_n(&out, line + at + alen + 1, len - at - alen - 1);
            last = j;
        } else {
            if (strncmp(line, "connection to server ", 21) == 0) last = named;   /* another host's */
            ok = append_n(&out, line, len);
        }
        line += len;
    }
    ok = ok && (!out || append(why, out));
    free(out);
    PQconninfoFree(opts);
    return ok;
}

/* What libpq's blocking connect says of a host that ran out of time, after
 * what pg holds already (its first `named` entries: see append_named): the
 * hosts and addresses before it that failed, and (libpq 15) this one's
 * 'connection to server at "h", port p failed: ' -- a line begun, which
 * "timeout expired" ends. */
static int append_timeout(PGconn *pg, int named, char **why) {
    char line[1024];
    const char *held = PQerrorMessage(pg), *host = PQhost(pg), *port = PQport(pg), *addr = PQhostaddr(pg);
    size_t n = strlen(held);
    if (n > 0 && held[n - 1] != '\n') return append_named(why, held, pg, named) && append(why, "timeout expired\n");
    if (!host) host = "";
    if (!port) port = "";
    if (host[0] == '/' || host[0] == '@')
        snprintf(line, sizeof line, "connection to server on socket \"%s/.s.PGSQL.%s\" failed: timeout expired\n", host, port);
    else if (addr && *addr && strcmp(addr, host) != 0)
        snprintf(line, sizeof line, "connection to server at \"%s\" (%s), port %s failed: timeout expired\n", host, addr, port);
    else
        snprintf(line, sizeof line, "connection to server at \"%s\", port %s failed: timeout expired\n", host, port);
    return append_named(why, held, pg, named) && append(why, line);
}

/* A connection's host lists as PQconninfo gives them (NULL: not given),
 * and the number of hosts: of host, or of hostaddr when host is not given.
 * port holds one entry per host, or one for all. */
typedef struct {
    const char *host, *hostaddr, *port;
    int n;
} host_lists;

/* Which entry of h the address pg is trying belongs to, or -1 when that
 * cannot be told: the first whose host (or, with none, hostaddr) is
 * PQhost, whose hostaddr, when it has one, is PQhostaddr, and whose port,
 * when it has one of its own, is PQport -- the same name listed twice with
 * two addresses, or two ports, is two entries. */
static int current_host(PGconn *pg, const host_lists *h) {
    for (int i = 0; i < h->n; i++) {
        size_t len;
        const char *name = entry(h->host, h->n, i, &len);
        if (len == 0) name = entry(h->hostaddr, h->n, i, &len);
        if (!same(name, len, PQhost(pg))) continue;
        const char *addr = entry(h->hostaddr, h->n, i, &len);
        if (len > 0 && !same(addr, len, PQhostaddr(pg))) continue;
        const char *port = entry(h->port, h->n, i, &len);
        if (len > 0 && !same(port, len, PQport(pg))) continue;
        return i;
    }
    return -1;
}

/* The addresses after addr that the host name `name` resolves to, resolved
 * as libpq resolves it, each added to the list *addrs; how many (0: none,
 * or addr is not among them; -1: out of memory).  (A name that DNS serves
 * in turn may come back in another order: those after addr are then not
 * the ones libpq would go on to, yet still the name's.) */
static int next_addresses(const char *name, const char *port, const char *addr, char **addrs) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (!addr || !*addr || getaddrinfo(name, port, &hints, &res) != 0) return 0;
    int m = 0, after = 0;
    for (struct addrinfo *a = res; a && m >= 0; a = a->ai_next) {
        char text[NI_MAXHOST];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST) != 0) continue;
        if (after) m = add_entry(addrs, text, strlen(text)) ? m + 1 : -1;
        else after = strcmp(text, addr) == 0;
    }
    freeaddrinfo(res);
    return m;
}

/* The host lists of what comes after the address pg is trying, entry k of
 * h: the other addresses of k's host name (a name: not an address, not a
 * socket directory) -- as hostaddr entries under that name, *named of
 * them -- then the entries after k.  A list stays NULL where h's was not
 * given and is not needed, the port list too when it has one port for
 * all.  Returns how many entries, -1 when out of memory. */
static int next_lists(PGconn *pg, const host_lists *h, int k, char **host, char **hostaddr, char **port, int *named) {
    size_t hlen, alen, plen, len;
    const char *hk = entry(h->host, h->n, k, &hlen), *pk = entry(h->port, h->n, k, &plen);
    int m = 0, ok = 1, per_host_ports = h->n > 1 && list_count(h->port) == h->n;
    *named = 0;
    entry(h->hostaddr, h->n, k, &alen);
    if (hlen > 0 && alen == 0 && hk[0] != '/' && hk[0] != '@') {
        char *name = strndup(hk, hlen);
        m = name ? next_addresses(name, PQport(pg), PQhostaddr(pg), hostaddr) : -1;
        free(name);
        if (m < 0) return -1;
    }
    for (int j = 0; j < m; j++) {
        ok = ok && add_entry(host, hk, hlen);
        if (per_host_ports) ok = ok && add_entry(port, pk, plen);
    }
    for (int i = k + 1; i < h->n; i++) {
        const char *e;
        if (list_count(h->host) == h->n) {
            e = entry(h->host, h->n, i, &len);
            ok = ok && add_entry(host, e, len);
        }
        if (list_count(h->hostaddr) == h->n || m > 0) {
            e = entry(h->hostaddr, h->n, i, &len);
            ok = ok && add_entry(hostaddr, e, len);
        }
        if (per_host_ports) {
            e = entry(h->port, h->n, i, &len);
            ok = ok && add_entry(port, e, len);
        }
    }
    *named = m;
    return ok ? m + h->n - k - 1 : -1;
}

/* A list of one empty entry is no list to libpq (the option not given:
 * PGHOST's or PGPORT's value then); the entry's own meaning, libpq's
 * default, is written in its place.  (An empty hostaddr entry is dropped:
 * PGHOSTADDR, when set, would then be used -- a case left as it is.) */
static void empty_entry_as_default(char **host, char **hostaddr, char **port) {
    static const char socket_dir[] = DEFAULT_PGSOCKET_DIR;
    if (*hostaddr && !**hostaddr) {
        free(*hostaddr);
        *hostaddr = NULL;
    }
    if (*host && !**host && !*hostaddr) {
        free(*host);
        *host = strdup(socket_dir[0] ? socket_dir : "localhost");
    }
    if (*port && !**port) {
        free(*port);
        *port = strdup(DEF_PGPORT_STR);
    }
}

/* A new connection over what comes after the address pg is trying
 * (next_lists), with pg's other settings, started as pgconn_start starts
 * one: *started 1 then, and *named the number of its first entries that
 * are a host name's addresses (append_named), given pg's.  NULL, *started
 * 0, when nothing comes after it; NULL, *started -1, when out of memory
 * or when pg's address cannot be told (current_host; libpq 16's
 * load_balance_hosts, which tries the hosts in a random order). */
static PGconn *start_next_hosts(PGconn *pg, int *named, int *started) {
    PQconninfoOption *opts = PQconninfo(pg);
    *started = -1;
    if (!opts) return NULL;
    host_lists h = {0};
    const char *balance = NULL;
    int nopts = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++, nopts++) {
        if (strcmp(o->keyword, "host") == 0) h.host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0) h.hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0) h.port = o->val;
        else if (strcmp(o->keyword, "load_balance_hosts") == 0) balance = o->val;
    }
    h.n = list_count(h.host) ? list_count(h.host) : list_count(h.hostaddr);
    char *host = NULL, *hostaddr = NULL, *port = NULL;
    const char **keys = NULL, **vals = NULL;
    PGconn *next = NULL;
    int k = h.n > 1 ? current_host(pg, &h) : 0;
    if (k < 0 || (h.n > 1 && balance && strcmp(balance, "disable") != 0)) goto done;
    int resolved, more = next_lists(pg, &h, k, &host, &hostaddr, &port, &resolved);
    /* (pg's own named entries after k come first, and k's name was not
     * resolved again: they are its other addresses) */
    *named = k < *named ? *named - k - 1 : resolved;
    if (more == 0) *started = 0;
    if (more <= 0) goto done;
    empty_entry_as_default(&host, &hostaddr, &port);
    keys = calloc((size_t)nopts + 1, sizeof *keys);
    vals = calloc((size_t)nopts + 1, sizeof *vals);
    if (!keys || !vals) goto done;
    int m = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *val = o->val;
        if (strcmp(o->keyword, "host") == 0) val = host;
        else if (strcmp(o->keyword, "hostaddr") == 0) val = hostaddr;
        else if (strcmp(o->keyword, "port") == 0 && port) val = port;
        if (!val) continue;
        keys[m] = o->keyword;
        vals[m++] = val;
    }
    /* (dbname is a plain name now: a connection string in it was expanded
     * into these options the first time) */
    next = start_params(keys, vals, 0);
    *started = next ? 1 : -1;
done:
    free(keys);
    free(vals);
    free(host);
    free(hostaddr);
    free(port);
    PQconninfoFree(opts);
    return next;
}

PGconn *pgconn_complete(PGconn *pg, const char *conninfo, long started_ms, char **why) {
    *why = NULL;
    if (!pg) return pgconn_open(conninfo);
    if (connect_timeout_ms(pg) == -2) {     /* libpq's blocking connect says what is wrong */
        PQfinish(pg);
        return pgconn_open(conninfo);
    }
    /* A session started a second or more ago may have been dropped by the
     * server meanwhile, for want of its password (authentication_timeout):
     * one that fails then is started over, once.  A quick failure of a
     * fresh one (a wrong password, nobody listening) is reported as it is,
     * not tried twice; and so is a host that ran out of time (drive: it
     * never answered in all that time), which is gone on from. */
    int stale = pgconn_now_ms() - started_ms >= 1000;
    int r = drive(pg, started_ms);
    if (r == 0 && stale) {
        PQfinish(pg);
        started_ms = pgconn_now_ms();
        if (!(pg = pgconn_start(conninfo))) return NULL;
        r = drive(pg, started_ms);
    }
    int named = 0;                          /* pg's first entries that are a name's addresses */
    while (r == -1) {
        int started;
        PGconn *next = append_timeout(pg, named, why) ? start_next_hosts(pg, &named, &started) : (started = -1, NULL);
        if (started == 0) return pg;        /* the last host: *why tells it all */
        PQfinish(pg);
        if (started < 0) {                  /* connect again the blocking way, as libpq would */
            free(*why);
            *why = NULL;
            return pgconn_open(conninfo);
        }
        pg = next;
        r = drive(pg, pgconn_now_ms());
    }
    if (r == 0 && *why && !append_named(why, PQerrorMessage(pg), pg, named)) {
        free(*why);
        *why = NULL;
    }
    if (r != 0) {                           /* connected, or interrupted */
        free(*why);
        *why = NULL;
    }
    if (PQstatus(pg) == CONNECTION_OK) PQsetErrorVerbosity(pg, PQERRORS_DEFAULT);
    return pg;
}

/* The lines only PQERRORS_VERBOSE writes, after a server's message. */
static const char *const VERBOSE_ONLY[] = {"LOCATION:  ", "SCHEMA NAME:  ", "TABLE NAME:  ", "COLUMN NAME:  ",
                                           "DATATYPE NAME:  ", "CONSTRAINT NAME:  ", NULL};

static int verbose_only(const char *line) {
    for (const char *const *v = VERBOSE_ONLY; *v; v++)
        if (strncmp(line, *v, strlen(*v)) == 0) return 1;
    return 0;
}

static int sqlstate_char(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); }

/* Where line (len bytes) holds a SQLSTATE as libpq writes it at
 * PQERRORS_VERBOSE, after the severity: "FATAL:  53300: ..." -- the
 * ":  " before it (the code at +3), or NULL. */
static const char *verbose_sqlstate(const char *line, size_t len) {
    for (const char *p = line; p + 10 <= line + len; p++) {
        if (p[0] != ':' || p[1] != ' ' || p[2] != ' ') continue;
        int code = 1;
        for (int i = 3; i < 8; i++) code = code && sqlstate_char(p[i]);
        if (code && p[8] == ':' && p[9] == ' ') return p;
    }
    return NULL;
}

/* Appends n bytes of s to out (size outsz, *at used), as many as fit,
 * and no part of a character. */
static void put(char *out, size_t outsz, size_t *at, const char *s, size_t n) {
    if (*at + 1 >= outsz) return;
    if (n > outsz - 1 - *at) {              /* cut at a character's start */
        n = utf8_cut(s, outsz - 1 - *at);
    }
    memcpy(out + *at, s, n);
    *at += n;
    out[*at] = '\0';
}

/* Whether line begins what follows a server's message, not a line of the
 * message itself: a field ("DETAIL:  ", "LOCATION:  ", another
 * "FATAL:  ": upper-case words and ":  "), the next host's "connection to
 * server ...", or libpq's own advice ("\tIs the server running ..."). */
static int message_ends_before(const char *line) {
    if (*line == '\t' || strncmp(line, "connection to server ", 21) == 0) return 1;
    const char *p = line;
    if (!(*p >= 'A' && *p <= 'Z')) return 0;
    while ((*p >= 'A' && *p <= 'Z') || *p == ' ') p++;
    return p[0] == ':' && p[1] == ' ' && p[2] == ' ';
}

/* Appends n bytes of s, a carriage return written \r. */
static void put_escaped_cr(char *out, size_t outsz, size_t *at, const char *s, size_t n) {
    for (const char *cr; n > 0 && (cr = memchr(s, '\r', n)) != NULL; n -= (size_t)(cr + 1 - s), s = cr + 1) {
        put(out, outsz, at, s, (size_t)(cr - s));
        put(out, outsz, at, "\\r", 2);
    }
    put(out, outsz, at, s, n);
}

void pgconn_connect_error(const char *msg, char *out, size_t outsz) {
    size_t at = 0;
    if (outsz == 0) return;
    out[0] = '\0';
    for (const char *line = msg; *line;) {
        size_t len = strcspn(line, "\n");
        int nl = line[len] == '\n';
        const char *code = verbose_only(line) ? line + len : verbose_sqlstate(line, len);
        if (!code) {
            put(out, outsz, &at, line, len + nl);
        } else if (code < line + len) {
            /* "...failed: FATAL:  53300: words" -> "...: FATAL:  words [SQLSTATE 53300]" */
            put(out, outsz, &at, line, (size_t)(code + 3 - line));
            put_escaped_cr(out, outsz, &at, code + 10, (size_t)(line + len - (code + 10)));
            /* a message with a line break in it (a database name that
             * ends with the newline of a DATABASE_URL read from a file)
             * goes on on the next lines: the break written \n, the
             * SQLSTATE after the whole message -- not inside it, the rest
             * taken for another line */
            while (nl && line[len + 1] && !message_ends_before(line + len + 1)) {
                line += len + 1;
                len = strcspn(line, "\n");
                nl = line[len] == '\n';
                put(out, outsz, &at, "\\n", 2);
                put_escaped_cr(out, outsz, &at, line, len);
            }
            put(out, outsz, &at, " [SQLSTATE ", 11);
            put(out, outsz, &at, code + 3, 5);
            put(out, outsz, &at, "]", 1);
            put(out, outsz, &at, "\n", (size_t)nl);
        }
        line += len + nl;
    }
}

void pgconn_one_line(const char *msg, char *out, size_t outsz) {
    if (outsz == 0) return;
    size_t n = 0;
    for (const char *p = msg; *p && n + 1 < outsz;) {
        if (*p != '\n' && *p != '\r') {
            out[n++] = *p++;
            continue;
        }
        /* the break and the blanks around it: "; ", or nothing at the end */
        while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t')) n--;
        while (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t') p++;
        if (!*p) break;
        for (const char *sep = "; "; *sep && n + 1 < outsz; sep++) out[n++] = *sep;
    }
    out[n] = '\0';
}

/* ---- a connection pooler in between ----------------------------------- */

/* pg_backend_pid() of the server session pg's statement runs on, or -1. */
static int server_pid(PGconn *pg) {
    PGresult *r = PQexec(pg, "SELECT pg_backend_pid()");
    int pid = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return pid;
}

int pgconn_session_pinned(PGconn *pg, const char *conninfo, char *err, size_t errsz) {
    int first = server_pid(pg);
    if (first < 0) {
        snprintf(err, errsz, "%s", PQerrorMessage(pg));
        return -1;
    }
    /* A second client runs a transaction.  A pool that lends its server
     * sessions per transaction (PgBouncer's transaction mode) lends by
     * default the one used last: pg's own, idle between pg's statements --
     * or, when it lends another, that one goes back first in line, and
     * pg's next statement runs there.  A pool that lends them in turn
     * (server_round_robin) lends pg's next two statements two different
     * sessions when it has two idle.  A pool in session mode keeps each
     * client's own throughout; one in statement mode refuses the BEGIN. */
    PGconn *other = pgconn_open(conninfo);
    if (!other || PQstatus(other) != CONNECTION_OK) {
        snprintf(err, errsz, "%s", other ? PQerrorMessage(other) : "out of memory");
        PQfinish(other);
        return -1;
    }
    PGresult *r = PQexec(other, "BEGIN");
    int began = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    /* A BEGIN refused by a pool in statement mode ("transaction blocks not
     * allowed in statement pooling mode", the session left open or not)
     * is an answer; one that failed otherwise is none -- a pool with no
     * server session free for the second client ("query_wait_timeout"). */
    if (!began && PQstatus(other) == CONNECTION_BAD && !strstr(PQerrorMessage(other), "statement pooling")) {
        /* the pooler's word, without libpq's guess at a server crash */
        const char *why = PQerrorMessage(other);
        int severity = strncmp(why, "FATAL:", 6) == 0 || strncmp(why, "ERROR:", 6) == 0;
        snprintf(err, errsz, "%.*s", severity ? (int)strcspn(why, "\n") : (int)strlen(why), why);
        PQfinish(other);
        return -1;
    }
    int theirs = began ? server_pid(other) : -1;
    PQclear(PQexec(other, "COMMIT"));
    int again = server_pid(pg), then = again < 0 ? -1 : server_pid(pg);
    if (then < 0) snprintf(err, errsz, "%s", PQerrorMessage(pg));
    PQfinish(other);
    if (then < 0) return -1;
    return theirs >= 0 && theirs != first && again == first && then == first;
}

/* ---- draining and flushing --------------------------------------------- */

void pgconn_end_unexpected_copy(PGconn *pg, ExecStatusType s) {
    if (s == PGRES_COPY_IN) {
        PQputCopyEnd(pg, "ferry: COPY FROM STDIN is only supported through conn:copy()");
    } else if (s == PGRES_COPY_OUT) {
        char *data;
        while (PQgetCopyData(pg, &data, 0) > 0) PQfreemem(data);
    }
}

int pgconn_is_copy(ExecStatusType s) {
    return s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH;
}

/* p past blanks and SQL comments (block comments nest), or NULL inside an
 * unterminated one. */
static const char *skip_blank(const char *p) {
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') p++;
        if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n\r");              /* the server's newline is either */
        } else if (p[0] == '/' && p[1] == '*') {
            int depth = 0;
            do {
                if (p[0] == '/' && p[1] == '*') { depth++; p += 2; }
                else if (p[0] == '*' && p[1] == '/') { depth--; p += 2; }
                else if (*p) p++;
                else return NULL;
            } while (depth > 0);
        } else {
            return p;
        }
    }
}

static int ident_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '$'; }

/* p past the keyword kw (case-insensitive, a whole word), or NULL. */
static const char *keyword(const char *p, const char *kw) {
    size_t n = strlen(kw);
    if (!p || strncasecmp(p, kw, n) != 0 || ident_char(p[n]) || (unsigned char)p[n] >= 0x80) return NULL;
    return p + n;
}

/* p past one name, plain or "quoted" (with "" inside), or NULL. */
static const char *name(const char *p) {
    if (*p == '"') {
        for (p++; *p; p++)
            if (*p == '"') { if (p[1] == '"') p++; else return p + 1; }
        return NULL;
    }
    const char *q = p;
    while (ident_char(*q) || (unsigned char)*q >= 0x80) q++;
    return q > p ? q : NULL;
}

/* ---- SQL text --------------------------------------------------------- */

/* The tokens are read as PostgreSQL's lexer (scan.l) reads them, with
 * standard_conforming_strings on (the default since 9.1) unless said: a
 * backslash escapes only in E'...'.  Names are ASCII letters, '_' and any byte from
 * 0x80, then digits and '$' too. */
static int word_start(unsigned char c) { return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' || c >= 0x80; }
static int tag_char(unsigned char c) { return word_start(c) || (c >= '0' && c <= '9'); }
static int word_char(unsigned char c) { return tag_char(c) || c == '$'; }

/* The end of the word that starts at p. */
static const char *word_end(const char *p) {
    do p++; while (word_char((unsigned char)*p));
    return p;
}

static int is_word(const char *w, const char *end, const char *kw) {
    size_t n = strlen(kw);
    return (size_t)(end - w) == n && strncasecmp(w, kw, n) == 0;
}

/* The word after p (past blanks and comments): its start in *w, its end
 * returned; NULL when what comes next is no word. */
static const char *next_word(const char *p, const char **w) {
    p = skip_blank(p);
    if (!p || !word_start((unsigned char)*p)) return NULL;
    *w = p;
    return word_end(p);
}

/* p at a quote q: past the quoted text ("" or '' inside it stands for the
 * quote; with backslash, a backslash escapes the next byte), or NULL when
 * it is not closed. */
static const char *skip_quoted(const char *p, char q, int backslash) {
    for (p++; *p; p++) {
        if (backslash && *p == '\\') {
            if (!p[1]) break;
            p++;
        } else if (*p == q) {
            if (p[1] != q) return p + 1;
            p++;
        }
    }
    return NULL;
}

/* After a string constant that ended at p: the quote that continues it, or
 * NULL.  'a' <newline> 'b' is 'ab' (blanks and -- comments around the
 * newline), which matters for E'...': its continuation is an E string too. */
static const char *continuation(const char *p) {
    int newline = 0;
    for (;;) {
        if (*p == ' ' || *p == '\t' || *p == '\f' || (newline && *p == '\v')) p++;
        else if (*p == '\n' || *p == '\r') { newline = 1; p++; }
        else if (p[0] == '-' && p[1] == '-') p += strcspn(p, "\n\r");
        else return newline && *p == '\'' ? p : NULL;
    }
}

/* p at the quote of E'...': past the string and its continuations, or
 * NULL when one is not closed. */
static const char *skip_e_string(const char *p) {
    for (;;) {
        if (!(p = skip_quoted(p, '\'', 1))) return NULL;
        const char *q = continuation(p);
        if (!q) return p;
        p = q;
    }
}

/* p at a word: past it -- and past the string, when it is the E of
 * E'...' (a word of its own: xe'...' is a name and a string); NULL when
 * that string is not closed. */
static const char *skip_word(const char *p) {
    const char *e = word_end(p);
    if (e - p == 1 && (*p | 0x20) == 'e' && *e == '\'') return skip_e_string(e);
    return e;
}

/* p at '$': past the dollar-quoted string that starts there ($$...$$ or
 * $tag$...$tag$, a tag being a name without '$' that does not start with a
 * digit), or at the NUL when it is not closed; past the '$' alone when
 * none starts there ($1, or a '$' the server refuses). */
static const char *skip_dollar(const char *p) {
    const char *t = p + 1;
    if (*t != '$') {
        if (!word_start((unsigned char)*t)) return p + 1;
        while (tag_char((unsigned char)*t)) t++;
        if (*t != '$') return p + 1;
    }
    size_t n = (size_t)(t - p) + 1;              /* the delimiter, "$tag$" */
    /* (each try stops by the next '$' at the latest: the tag has none) */
    for (const char *q = t + 1; (q = strchr(q, '$')) != NULL; q++)
        if (strncmp(q, p, n) == 0) return q + n;
    return t + 1 + strlen(t + 1);
}

/* 1 when nothing follows the statement's options at p but one optional
 * ';' and blanks or comments: the statement goes out as a simple query,
 * where a second statement would run.  Strings, quoted names and comments
 * are skipped whole (a ';' option), read as the server reads them:
 * `plain_escapes` when standard_conforming_strings is off; one not closed,
 * and a dollar quote, are refused. */
static int nothing_after(const char *p, int plain_escapes) {
    while (p && *p) {
        unsigned char c = (unsigned char)*p;
        if (word_start(c)) p = skip_word(p);
        else if (c == '\'') p = skip_quoted(p, '\'', plain_escapes);
        else if (c == '"') p = skip_quoted(p, '"', 0);
        else if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) p = skip_blank(p);
        else if (c == ';') return (p = skip_blank(p + 1)) != NULL && *p == '\0';
        else if (c == '$') return 0;
        else p++;
    }
    return p != NULL;
}

/* p past "STDIN" of "COPY table [(columns)] FROM STDIN", or NULL. */
/* Reads "COPY table [(columns)] FROM STDIN" at the start of sql: where
 * STDIN ends, or NULL.  With fn, each part of the table's name and each
 * column is handed to it (pgconn_copy_target), and the column list must be
 * names and commas; without, the list is only skipped to its ')' (a name
 * written U&"..." is the server's to read). */
static const char *copy_from_stdin_walk(const char *sql, pgconn_name_fn *fn, void *ud) {
    const char *p = keyword(skip_blank(sql), "copy"), *e;
    if (!p || !(p = skip_blank(p))) return 0;
    /* the table: name[.name[.name]] -- not "(query)", which only goes TO */
    for (;;) {
        if (!(e = name(p))) return 0;
        if (fn) fn(0, p, (size_t)(e - p), ud);
        if (!(p = skip_blank(e))) return 0;
        if (*p != '.') break;
        if (!(p = skip_blank(p + 1))) return 0;
    }
    if (*p == '(') {                     /* the column list */
        if (fn) {                        /* name [, name ...] */
            do {
                if (!(p = skip_blank(p + 1)) || !(e = name(p))) return 0;
                fn(1, p, (size_t)(e - p), ud);
                if (!(p = skip_blank(e))) return 0;
            } while (*p == ',');
        } else {
            for (p++; *p && *p != ')';) {
                if (*p == '"') { if (!(p = name(p))) return 0; } else p++;
            }
        }
        if (*p != ')' || !(p = skip_blank(p + 1))) return 0;
    }
    p = keyword(p, "from");
    if (!p || !(p = skip_blank(p))) return 0;
    return keyword(p, "stdin");
}

static const char *copy_from_stdin_rest(const char *sql) { return copy_from_stdin_walk(sql, NULL, NULL); }

int pgconn_is_copy_from_stdin(const char *sql, int plain_escapes) {
    return nothing_after(copy_from_stdin_rest(sql), plain_escapes);
}

int pgconn_copy_target(const char *sql, pgconn_name_fn *fn, void *ud) {
    return copy_from_stdin_walk(sql, fn, ud) != NULL;
}

/* The options that change how a row of COPY's text format is read
 * (DELIMITERS: the old syntax's [USING] DELIMITERS 'c', DELIMITER's
 * twin).  FORMAT and ENCODING are read by their values, below. */
static const char *const FORMAT_OPTIONS[] = {
    "binary", "csv", "delimiter", "delimiters", "null", "header", "quote", "escape",
    "force_quote", "force_not_null", "force_null", "force", "default", NULL
};

/* The value after the option name that ends at e: a word, a 'string' or a
 * "name", its text in *v..*ve (NULL, NULL when there is none). */
static void option_value(const char *e, const char **v, const char **ve) {
    const char *a = skip_blank(e), *b = NULL;
    if (a && word_start((unsigned char)*a)) b = word_end(a);
    else if (a && (*a == '\'' || *a == '"')) { b = skip_quoted(a, *a, 0); if (b) { a++; b--; } }
    *v = b ? a : NULL;
    *ve = b;
}

/* 1 when v..ve names UTF8, as the server reads an encoding's name: its
 * letters and digits only, in any case (UTF8, utf-8, UTF_8, Unicode). */
static int names_utf8(const char *v, const char *ve) {
    char name[16];
    size_t n = 0;
    for (const char *q = v; q && q < ve; q++) {
        if (!isalnum((unsigned char)*q)) continue;
        if (n + 1 >= sizeof name) return 0;
        name[n++] = (char)tolower((unsigned char)*q);
    }
    name[n] = '\0';
    return strcmp(name, "utf8") == 0 || strcmp(name, "unicode") == 0;
}

static void upper_word(const char *w, const char *e, const char *suffix, const char *suffix_end,
                       char *word, size_t wordsz) {
    size_t n = 0;
    for (const char *q = w; q < e && n + 1 < wordsz; q++) word[n++] = (char)toupper((unsigned char)*q);
    if (suffix && n + 1 < wordsz) word[n++] = ' ';
    for (const char *q = suffix; q && q < suffix_end && n + 1 < wordsz; q++) word[n++] = *q;
    word[n] = '\0';
}

/* 1 when the option name w..e is kw: a word in any case, a "quoted" name
 * as written (the server compares the names it reads with its own, in
 * lower case: "header" is HEADER, "HEADER" no option). */
static int is_option(const char *w, const char *e, int quoted, const char *kw) {
    if (!quoted) return is_word(w, e, kw);
    size_t n = strlen(kw);
    return (size_t)(e - w) == n && strncmp(w, kw, n) == 0;
}

int pgconn_copy_format_option(const char *sql, int plain_escapes, char *word, size_t wordsz) {
    const char *p = copy_from_stdin_rest(sql);
    while (p && *p) {
        unsigned char c = (unsigned char)*p;
        if (word_start(c) || c == '"') {
            /* a name: a word, or a quoted one ("header" true is HEADER) */
            int quoted = c == '"';
            const char *w = p, *e, *next;
            if (quoted) {
                if (!(next = skip_quoted(p, '"', 0))) return 0;
                w = p + 1;
                e = next - 1;
            } else {
                e = word_end(p);
                next = skip_word(p);
                if (is_word(p, e, "where")) return 0;         /* a condition, not options */
            }
            int format = is_option(w, e, quoted, "format"), encoding = is_option(w, e, quoted, "encoding");
            if (format || encoding) {
                /* by its value: FORMAT text only; ENCODING UTF8 only, what
                 * ferry sends (another would read é as Ã©, without an error) */
                const char *v, *ve;
                option_value(e + quoted, &v, &ve);
                int ok = ve && (format ? (size_t)(ve - v) == 4 && strncasecmp(v, "text", 4) == 0
                                       : names_utf8(v, ve));
                if (!ok) {
                    upper_word(w, e, v, ve, word, wordsz);
                    return 1;
                }
                p = ve + (*ve == '\'' || *ve == '"');
                continue;
            }
            for (int i = 0; FORMAT_OPTIONS[i]; i++)
                if (is_option(w, e, quoted, FORMAT_OPTIONS[i])) { upper_word(w, e, NULL, NULL, word, wordsz); return 1; }
            p = next;
        }
        else if (c == '\'') p = skip_quoted(p, '\'', plain_escapes);
        else if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) p = skip_blank(p);
        else p++;
    }
    return 0;
}

/* ---- transaction control in a script ----------------------------------- */

/* The command at the start of a statement, when it begins or ends a
 * transaction ("BEGIN", "COMMIT PREPARED", ...), else NULL.  p is at the
 * statement's first word. */
static const char *transaction_command(const char *p) {
    const char *e1 = word_end(p), *w2 = NULL, *e2 = next_word(e1, &w2), *w, *e;
    int second_is_transaction = e2 && is_word(w2, e2, "transaction");
    if (is_word(p, e1, "begin")) return "BEGIN";
    if (is_word(p, e1, "end")) return "END";
    if (is_word(p, e1, "abort")) return "ABORT";
    if (is_word(p, e1, "start")) return second_is_transaction ? "START TRANSACTION" : NULL;
    if (is_word(p, e1, "commit")) return e2 && is_word(w2, e2, "prepared") ? "COMMIT PREPARED" : "COMMIT";
    if (is_word(p, e1, "rollback")) {
        if (e2 && is_word(w2, e2, "prepared")) return "ROLLBACK PREPARED";
        /* ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name: the
         * transaction goes on */
        w = w2;
        e = e2;
        if (e2 && (is_word(w2, e2, "work") || second_is_transaction)) e = next_word(e2, &w);
        return e && is_word(w, e, "to") ? NULL : "ROLLBACK";
    }
    if (is_word(p, e1, "prepare") && second_is_transaction) {
        /* PREPARE transaction [(types)] AS ...: a statement of that name */
        const char *q = skip_blank(e2);
        if (q && *q == '(') return NULL;
        w = NULL;
        e = next_word(e2, &w);
        return e && is_word(w, e, "as") ? NULL : "PREPARE TRANSACTION";
    }
    return NULL;
}

/* What the scan knows of the statement it is in.  A SQL-standard routine
 * body, CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END,
 * holds semicolons that do not end the statement (and its END would read
 * as a statement of its own): as psql does, the scan counts BEGIN, and
 * CASE inside it, against END, outside parentheses -- whose semicolons do
 * not end a statement either: CREATE RULE ... DO (a; b).  Unlike psql it
 * counts a BEGIN only before ATOMIC: elsewhere begin may be a name
 * (RETURN begin), and a count that never comes back to 0 would hide the
 * rest of the file. */
enum head { HEAD_NONE, HEAD_CREATE, HEAD_OR, HEAD_REPLACE, HEAD_ROUTINE, HEAD_OTHER };
typedef struct statement {
    enum head head;    /* how far its first words go as CREATE [OR REPLACE] FUNCTION|PROCEDURE */
    int parens;        /* open parentheses */
    int atomic;        /* open BEGIN ATOMIC and CASE (in one) */
} statement;

static enum head next_head(enum head h, const char *w, const char *e) {
    int routine = is_word(w, e, "function") || is_word(w, e, "procedure");
    switch (h) {
    case HEAD_NONE: return is_word(w, e, "create") ? HEAD_CREATE : HEAD_OTHER;
    case HEAD_CREATE: return is_word(w, e, "or") ? HEAD_OR : routine ? HEAD_ROUTINE : HEAD_OTHER;
    case HEAD_OR: return is_word(w, e, "replace") ? HEAD_REPLACE : HEAD_OTHER;
    case HEAD_REPLACE: return routine ? HEAD_ROUTINE : HEAD_OTHER;
    default: return h;
    }
}

/* Takes note of the word from w to e in statement s. */
static void see_word(statement *s, const char *w, const char *e) {
    if (s->head != HEAD_ROUTINE) {
        s->head = next_head(s->head, w, e);
        return;
    }
    if (s->parens > 0) return;
    const char *w2 = NULL, *e2;
    if (is_word(w, e, "begin")) {
        if ((e2 = next_word(e, &w2)) != NULL && is_word(w2, e2, "atomic")) s->atomic++;
    } else if (is_word(w, e, "case")) {
        if (s->atomic > 0) s->atomic++;
    } else if (is_word(w, e, "end")) {
        if (s->atomic > 0) s->atomic--;
    }
}

/* p at a token outside any statement's first word: past it, with s
 * updated; *ends set when it is the semicolon that ends the statement. */
static const char *skip_token(const char *p, statement *s, int *ends) {
    unsigned char c = (unsigned char)*p;
    *ends = 0;
    const char *past;
    if (word_start(c)) {
        const char *e = word_end(p);
        if ((past = skip_word(p)) != e) return past ? past : p + strlen(p);   /* an E'...' */
        see_word(s, p, e);
        return e;
    }
    switch (c) {
    case '\'':                                   /* also B'', X'', N'', U&'' */
    case '"': return (past = skip_quoted(p, (char)c, 0)) ? past : p + strlen(p);
    case '$': return skip_dollar(p);
    case '(': s->parens++; break;
    case ')': if (s->parens > 0) s->parens--; break;
    case ';': *ends = s->parens == 0 && s->atomic == 0; break;
    default: break;
    }
    return p + 1;
}

/* p at the name after SAVEPOINT, RELEASE [SAVEPOINT] or ROLLBACK ... TO
 * [SAVEPOINT] (or at blanks and comments before it): 1 when the name begins
 * with prefix -- a plain one in any case (the server folds it to lower
 * case), a "quoted" one as written. */
static int names_prefix(const char *p, const char *prefix) {
    size_t n = strlen(prefix);
    if (!(p = skip_blank(p))) return 0;
    if (*p == '"') return strncmp(p + 1, prefix, n) == 0;
    return word_start((unsigned char)*p) && (size_t)(word_end(p) - p) >= n && strncasecmp(p, prefix, n) == 0;
}

/* The command at the start of a statement, when it takes, releases or
 * rolls back to a savepoint whose name begins with prefix (ud), else NULL.
 * p is at the statement's first word. */
static const char *savepoint_command(const char *p, const void *ud) {
    const char *e = word_end(p), *w = NULL, *e2, *cmd;
    if (is_word(p, e, "savepoint")) {
        cmd = "SAVEPOINT";
    } else if (is_word(p, e, "release")) {
        cmd = "RELEASE SAVEPOINT";
        if ((e2 = next_word(e, &w)) != NULL && is_word(w, e2, "savepoint")) e = e2;
    } else if (is_word(p, e, "rollback")) {
        /* ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name */
        cmd = "ROLLBACK TO SAVEPOINT";
        if (!(e2 = next_word(e, &w))) return NULL;
        if (is_word(w, e2, "work") || is_word(w, e2, "transaction")) {
            e = e2;
            if (!(e2 = next_word(e, &w))) return NULL;
        }
        if (!is_word(w, e2, "to")) return NULL;
        e = e2;
        if ((e2 = next_word(e, &w)) != NULL && is_word(w, e2, "savepoint")) e = e2;
    } else {
        return NULL;
    }
    return names_prefix(e, ud) ? cmd : NULL;
}

static const char *transaction_command_of(const char *p, const void *ud) {
    (void)ud;
    return transaction_command(p);
}

const char *pgconn_each_statement(const char *sql, int (*visit)(const char *p, int line, void *ud), void *ud) {
    statement s = {HEAD_NONE, 0, 0};
    int at_start = 1;                 /* the next token starts a statement */
    int line = 1;
    const char *counted = sql;        /* newlines counted up to here */
    for (const char *p = sql;;) {
        p = skip_blank(p);
        if (!p || !*p) return NULL;   /* the end, or in a comment not closed */
        if (at_start && *p != ';') {
            for (; counted < p; counted++) line += *counted == '\n';
            if (visit(p, line, ud)) return p;
        }
        int ends;
        p = skip_token(p, &s, &ends);
        at_start = ends;
        if (ends) s = (statement){HEAD_NONE, 0, 0};
    }
}

/* find_statement's search: the command its callback says, and the line. */
typedef struct command_search {
    const char *(*command)(const char *, const void *);
    const void *ud;
    const char *found;
    int line;
} command_search;

static int visit_for_command(const char *p, int line, void *ud) {
    command_search *cs = ud;
    if (!word_start((unsigned char)*p)) return 0;     /* (SELECT ...): no command of ours */
    cs->found = cs->command(p, cs->ud);
    cs->line = line;
    return cs->found != NULL;
}

/* The first top-level statement of sql for which command(p, ud) -- p at
 * its first word -- says a command, or NULL: see
 * pgconn_find_transaction_control. */
static const char *find_statement(const char *sql, const char *(*command)(const char *, const void *),
                                  const void *ud, int *line, char *word, size_t wordsz) {
    command_search cs = {command, ud, NULL, 0};
    const char *p = pgconn_each_statement(sql, visit_for_command, &cs);
    if (!p) return NULL;
    if (line) *line = cs.line;
    if (word && wordsz) snprintf(word, wordsz, "%s", cs.found);
    return p;
}

const char *pgconn_find_transaction_control(const char *sql, int *line, char *word, size_t wordsz) {
    return find_statement(sql, transaction_command_of, NULL, line, word, wordsz);
}

const char *pgconn_find_savepoint(const char *sql, const char *prefix, char *word, size_t wordsz) {
    return find_statement(sql, savepoint_command, prefix, NULL, word, wordsz);
}

static int token_is(pgconn_token t, const char *kw) {
    return is_word(t.s, t.s + t.n, kw);
}

/* visit of pgconn_find_lock_release: *ud gets the command found. */
static int visit_for_lock_release(const char *p, int line, void *ud) {
    (void)line;
    const char **found = ud;
    pgconn_token tok[8];
    int n = pgconn_statement_tokens(p, tok, 8, NULL);
    if (n >= 2 && token_is(tok[0], "discard") && token_is(tok[1], "all")) *found = "DISCARD ALL";
    for (int i = 0; i + 1 < n && !*found; i++)
        if (token_is(tok[i], "pg_advisory_unlock_all") && token_is(tok[i + 1], "(")) *found = "pg_advisory_unlock_all()";
    return *found != NULL;
}

const char *pgconn_find_lock_release(const char *sql, char *word, size_t wordsz) {
    const char *found = NULL;
    const char *p = pgconn_each_statement(sql, visit_for_lock_release, &found);
    if (p && word && wordsz) snprintf(word, wordsz, "%s", found);
    return p;
}

/* visit of pgconn_find_session_reset: finds RESET ALL or DISCARD ALL, then
 * stops there, or at the statement after it when asked whether one follows. */
typedef struct {
    const char *found;
    int want_followed;
} reset_search;

static int visit_for_session_reset(const char *p, int line, void *ud) {
    (void)line;
    reset_search *r = ud;
    if (r->found) return 1;                         /* a statement after it */
    pgconn_token tok[3];
    int n = pgconn_statement_tokens(p, tok, 3, NULL);
    if (n >= 2 && (token_is(tok[0], "reset") || token_is(tok[0], "discard")) && token_is(tok[1], "all")) {
        r->found = p;
        return !r->want_followed;
    }
    return 0;
}

const char *pgconn_find_session_reset(const char *sql, int *followed) {
    reset_search r = {NULL, followed != NULL};
    const char *stop = pgconn_each_statement(sql, visit_for_session_reset, &r);
    if (followed) *followed = r.found && stop && stop != r.found;
    return r.found;
}

int pgconn_statement_tokens(const char *p, pgconn_token *tok, int max, const char **stop) {
    int n = 0;
    if (stop) *stop = NULL;
    while ((p = skip_blank(p)) != NULL && *p) {
        if (stop) *stop = p;
        if (n == max) break;
        const char *end;
        if (word_start((unsigned char)*p)) {
            end = word_end(p);
            if (skip_word(p) != end) break;                 /* E'...': a string */
        } else if (*p == '"') {
            if (!(end = skip_quoted(p, '"', 0))) break;
        } else if (*p == '.' || *p == ',' || *p == '(' || *p == ')') {
            end = p + 1;
        } else {
            break;
        }
        tok[n++] = (pgconn_token){p, (size_t)(end - p)};
        p = end;
        if (stop) *stop = NULL;
    }
    return n;
}

void pgconn_drain(PGconn *pg) {
    PGresult *res;
    while ((res = PQgetResult(pg)) != NULL) {
        ExecStatusType s = PQresultStatus(res);
        PQclear(res);
        if (s == PGRES_COPY_BOTH) break;   /* replication protocol: never ours */
        pgconn_end_unexpected_copy(pg, s);
    }
}

/* Sends what libpq holds for pg, reading what the server sends meanwhile
 * (so that neither side waits on the other's full buffer), and with
 * until_result goes on until pg's next result can be read without
 * blocking.  Meanwhile the data the connections in others still hold goes
 * out as their sockets take it.  Returns 0, or -1 when pg failed. */
static int pump(PGconn *pg, PGconn *const *others, int nothers, int until_result) {
    struct pollfd p[1 + PGCONN_MAX_OTHERS];
    if (nothers > PGCONN_MAX_OTHERS) nothers = PGCONN_MAX_OTHERS;
    for (;;) {
        int out = PQisnonblocking(pg) ? PQflush(pg) : 0;
        if (out < 0) return -1;
        if (out == 0 && !(until_result && PQisBusy(pg))) return 0;
        int n = 0;
        p[n++] = (struct pollfd){PQsocket(pg), (short)(POLLIN | (out ? POLLOUT : 0)), 0};
        if (p[0].fd < 0) return -1;
        /* the others' sockets only while they still hold data */
        for (int i = 0; i < nothers; i++)
            if (others[i] != pg && PQflush(others[i]) == 1)
                p[n++] = (struct pollfd){PQsocket(others[i]), POLLOUT, 0};
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if ((p[0].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) && !PQconsumeInput(pg)) return -1;
        /* pg and the others are sent to at the top of the loop */
    }
}

int pgconn_wait(PGconn *pg, PGconn *const *others, int nothers) {
    return pump(pg, others, nothers, 1);
}

int pgconn_send_all(PGconn *pg, PGconn *const *others, int nothers) {
    return pump(pg, others, nothers, 0);
}

int pgconn_flush_and_block(PGconn *pg) {
    if (pump(pg, NULL, 0, 0) != 0) return -1;
    return PQsetnonblocking(pg, 0) == 0 ? 0 : -1;
}

/* Replaces every occurrence of needle in buf (capacity bufsz) by repl,
 * searching on after each replacement (so a needle of "***" ends). */
static void replace_with(char *buf, size_t bufsz, const char *needle, const char *repl) {
    size_t n = strlen(needle), r = strlen(repl);
    if (n == 0) return;
    char *from = buf, *p;
    while ((p = strstr(from, needle)) != NULL) {
        size_t tail = strlen(p + n);
        if ((size_t)(p - buf) + r + tail + 1 > bufsz) { *p = '\0'; return; }
        memmove(p + r, p + n, tail + 1);
        memcpy(p, repl, r);
        from = p + r;
    }
}

static void replace_all(char *buf, size_t bufsz, const char *needle) {
    replace_with(buf, bufsz, needle, "***");
}

/* Redacts one piece of k bytes at p (piece: room for k + 3 bytes).  A
 * piece of 3 bytes or more goes wherever it appears; a shorter one only
 * as libpq quotes a value ("Ab"), since two letters appear in every
 * message. */
static void replace_piece(char *buf, size_t bufsz, const char *p, size_t k, char *piece) {
    if (k == 0) return;
    if (k >= 3) {
        memcpy(piece, p, k);
        piece[k] = '\0';
    } else {
        piece[0] = '"';
        memcpy(piece + 1, p, k);
        piece[k + 1] = '"';
        piece[k + 2] = '\0';
    }
    replace_with(buf, bufsz, piece, k >= 3 ? "***" : "\"***\"");
}

/* The k bytes at p with their %XX escapes decoded, as libpq decodes a
 * URL's parts, into out (room for k bytes); returns the length.  An
 * escape libpq would refuse stays as written. */
static size_t percent_decoded(const char *p, size_t k, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        if (p[i] == '%' && i + 2 < k && isxdigit((unsigned char)p[i + 1]) && isxdigit((unsigned char)p[i + 2])) {
            char hex[3] = {p[i + 1], p[i + 2], '\0'};
            out[n++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[n++] = p[i];
        }
    }
    return n;
}

/* Redacts the n bytes at pw and, cut at any of seps (where libpq may cut a
 * string it reads differently from its writer), each piece: its error may
 * quote any one of them -- with `decode`, also as libpq quotes a piece of
 * a URL it has percent-decoded (a password with an unencoded '/' whose
 * other characters were encoded: "Sec%40ret/..." read as the port
 * "Sec@ret"). */
static void replace_password_pieces(char *buf, size_t bufsz, const char *pw, size_t n, const char *seps,
                                    int decode) {
    if (n == 0) return;
    /* (on the heap: a password has no length limit) */
    char *tok = malloc(n + 1), *piece = malloc(n + 3), *plain = malloc(n + 1);
    if (!tok || !piece || !plain) {     /* cannot redact: say nothing of the message */
        snprintf(buf, bufsz, "(error message withheld: out of memory)");
        free(tok);
        free(piece);
        free(plain);
        return;
    }
    memcpy(tok, pw, n);
    tok[n] = '\0';
    replace_all(buf, bufsz, tok);
    for (const char *p = tok; seps && *p;) {
        size_t k = strcspn(p, seps);
        replace_piece(buf, bufsz, p, k, piece);
        if (decode && memchr(p, '%', k)) replace_piece(buf, bufsz, plain, percent_decoded(p, k, plain), piece);
        p += k;
        if (*p) p++;
    }
    free(tok);
    free(piece);
    free(plain);
}

/* Where a URL's user info ends as its writer meant it (auth: the text after
 * "://"): at the last '@' before the query; with no '@' there, at the last
 * '@' after a '?' that starts no query parameter (no '=' up to that '@': a
 * '?' inside the password); else it has none. */
static const char *userinfo_end(const char *auth) {
    const char *q = strchr(auth, '?');
    const char *last = strrchr(auth, '@');
    if (!last) return NULL;
    if (!q || last < q) return last;
    const char *before = NULL;
    for (const char *p = auth; p < q; p++)
        if (*p == '@') before = p;
    if (before) return before;
    return memchr(q, '=', (size_t)(last - q)) ? NULL : last;
}

/* The user info of the postgres:// URL at u (where next_url found one):
 * auth, the text after "://"; end, where the user info ends (its '@', see
 * userinfo_end), or NULL when it has none; colon, the ':' before its
 * password, or NULL when it names none.  The one reading of a URL's user
 * info: each_password_span, url_query_spans and holds_password. */
struct userinfo {
    const char *auth, *end, *colon;
};

static struct userinfo url_userinfo(const char *u) {
    struct userinfo ui;
    ui.auth = strstr(u, "://") + 3;
    ui.end = userinfo_end(ui.auth);
    ui.colon = ui.end ? memchr(ui.auth, ':', (size_t)(ui.end - ui.auth)) : NULL;
    return ui;
}

/* 1 when the n bytes at w are one of libpq's connection keywords. */
static int is_conninfo_keyword(const char *w, size_t n) {
    PQconninfoOption *opts = PQconndefaults();
    int found = 0;
    for (PQconninfoOption *o = opts; o && o->keyword && !found; o++)
        found = strlen(o->keyword) == n && strncmp(o->keyword, w, n) == 0;
    PQconninfoFree(opts);
    return found;
}

/* The end of an unquoted password= value as its writer meant it: up to an
 * '&' (a URL's query), or up to the blank before the next "keyword =" (a
 * libpq keyword: libpq allows blanks around '='); any other word after a
 * blank is taken for more of the password (libpq would take it for a
 * keyword of its own and quote it in its error). */
static const char *keyword_value_end(const char *v) {
    const char *end = v;
    for (;;) {
        end += strcspn(end, "& \t\n");
        if (*end != ' ' && *end != '\t' && *end != '\n') return end;
        const char *w = end;
        while (*w == ' ' || *w == '\t' || *w == '\n') w++;
        size_t wl = strcspn(w, " \t\n&=");
        if (wl == 0) return end;
        const char *after = w + wl;
        while (*after == ' ' || *after == '\t' || *after == '\n') after++;
        if (*after == '=' && is_conninfo_keyword(w, wl)) return end;
        end = w + wl;
        if (*end == '=') end++;
    }
}

/* How a password is written in a connection string, which says where
 * libpq may cut it when it reads the string differently from its writer. */
enum pw_form {
    PW_USERINFO,        /* a URL's user:PASSWORD@ */
    PW_QUOTED,          /* password='...' (read whole) */
    PW_UNQUOTED,        /* password=... */
    PW_ENCODED_KEYWORD  /* a URL's ?pass%77ord=... (read whole) */
};

typedef void pw_span_fn(const char *at, size_t n, enum pw_form form, void *ud);

/* Where the first postgres:// or postgresql:// URL at or after p begins,
 * or NULL.  A URL is a connection string wherever it begins: at the start
 * of one, as a dbname= value ("dbname=postgresql://u:pw@h/db", which
 * libpq reads as a database's name -- it expands a connection string in
 * dbname one level only -- and the server's "database ... does not exist"
 * quotes whole), or after other words of a command-line argument ("x
 * postgres://...", "-qpostgres://..."): the rest of the string is read as
 * the URL, as libpq reads one. */
static const char *next_url(const char *p) {
    for (; (p = strstr(p, "postgres")) != NULL; p++)
        if (strncmp(p, "postgresql://", 13) == 0 || strncmp(p, "postgres://", 11) == 0) return p;
    return NULL;
}

static void url_query_spans(const char *u, pw_span_fn *fn, void *ud);

/* Calls fn with each password s holds as written (not decoded), as the n
 * bytes at at: a postgres:// URL's user:password@ (of every URL in s:
 * next_url); every password=VALUE,
 * in a key=value string or a URL's query, quoted ('...', with backslash
 * escapes, up to its closing quote or the end) or not (up to an '&', or
 * the blank before the next keyword: see keyword_value_end); and a URL's
 * query value whose keyword libpq decodes to "password" (?pass%77ord=).
 * Spans may overlap.  s is only read.  The one reader of a password's
 * place: redaction (replace_raw_passwords) and pgconn_scrub_passwords. */
static void each_password_span(const char *s, pw_span_fn *fn, void *ud) {
    for (const char *u = s; (u = next_url(u)) != NULL; u++) {
        struct userinfo ui = url_userinfo(u);
        if (ui.colon) fn(ui.colon + 1, (size_t)(ui.end - ui.colon - 1), PW_USERINFO, ud);
    }
    for (const char *q = s; (q = strstr(q, "password")) != NULL; q += 8) {
        const char *v = q + 8;
        while (*v == ' ') v++;
        if (*v++ != '=') continue;
        while (*v == ' ') v++;
        if (*v == '\'') {
            /* libpq reads up to the first quote no backslash escapes */
            const char *close = ++v;
            while (*close && *close != '\'') close += (close[0] == '\\' && close[1]) ? 2 : 1;
            fn(v, (size_t)(close - v), PW_QUOTED, ud);
        } else {
            fn(v, (size_t)(keyword_value_end(v) - v), PW_UNQUOTED, ud);
        }
    }
    for (const char *u = s; (u = next_url(u)) != NULL; u++) url_query_spans(u, fn, ud);
}

/* Calls fn with each value of the query of the URL at u whose keyword
 * libpq decodes to "password" while it is written otherwise (?pass%77ord=:
 * one written "password" each_password_span finds as any password=). */
static void url_query_spans(const char *u, pw_span_fn *fn, void *ud) {
    struct userinfo ui = url_userinfo(u);
    const char *query = strchr(ui.end ? ui.end : ui.auth, '?');
    if (!query) return;
    for (const char *p = query + 1; *p;) {
        size_t klen = strcspn(p, "=&"), vlen = 0;
        if (p[klen] == '=') {
            char key[16];
            size_t n = 0;
            for (size_t i = 0; i < klen && n < sizeof key - 1; i++, n++) {
                if (p[i] == '%' && i + 2 < klen && isxdigit((unsigned char)p[i + 1])
                    && isxdigit((unsigned char)p[i + 2])) {
                    char hex[3] = {p[i + 1], p[i + 2], '\0'};
                    key[n] = (char)strtol(hex, NULL, 16);
                    i += 2;
                } else key[n] = p[i];
            }
            key[n] = '\0';
            vlen = strcspn(p + klen + 1, "&");
            /* (a keyword written "password" each_password_span has found) */
            if (strcmp(key, "password") == 0 && memchr(p, '%', klen))
                fn(p + klen + 1, vlen, PW_ENCODED_KEYWORD, ud);
            vlen++;                                  /* (the '=') */
        }
        p += klen + vlen;
        if (*p == '&') p++;
    }
}

struct redact_buf { char *buf; size_t bufsz; const char *s; };

/* The bytes of a connection string just before a password ("//app:",
 * "password="), at most this many, by which a beginning of it is told. */
#define CUT_HEAD 12

/* A password cut short: the server cuts a name to 63 bytes (NAMEDATALEN),
 * and a URL given as dbname= is one to it (next_url): its "database
 * \"postgresql://app:Sup3r-Se\" does not exist" holds a beginning of the
 * password that no search for the whole of it finds.  Wherever buf holds
 * head (the hn bytes before the password in the connection string), the
 * bytes after it that begin the password (pw, n bytes) become "***". */
static void replace_cut_password(char *buf, size_t bufsz, const char *head, size_t hn, const char *pw, size_t n) {
    char h[CUT_HEAD + 1];
    if (hn == 0 || hn > CUT_HEAD || n == 0) return;
    memcpy(h, head, hn);
    h[hn] = '\0';
    for (char *p = buf; (p = strstr(p, h)) != NULL;) {
        char *v = p + hn;
        size_t k = 0;
        while (k < n && v[k] == pw[k]) k++;        /* (a NUL in buf ends it: pw has none) */
        if (k > 0) {
            size_t tail = strlen(v + k);
            if ((size_t)(v - buf) + 3 + tail + 1 > bufsz) { *v = '\0'; return; }
            memmove(v + 3, v + k, tail + 1);
            memcpy(v, "***", 3);
            v += 3;
        }
        p = v;
    }
}

/* Redacts one password span and the pieces libpq may cut it into, and a
 * beginning of it that the server's cut of a name left (replace_cut_password). */
static void redact_span(const char *at, size_t n, enum pw_form form, void *ud) {
    struct redact_buf *r = ud;
    size_t hn = (size_t)(at - r->s) < CUT_HEAD ? (size_t)(at - r->s) : CUT_HEAD;
    replace_cut_password(r->buf, r->bufsz, at - hn, hn, at, n);
    switch (form) {
    case PW_USERINFO:
        replace_password_pieces(r->buf, r->bufsz, at, n, "@/?#&", 1);
        break;
    case PW_QUOTED:
    case PW_ENCODED_KEYWORD:
        replace_password_pieces(r->buf, r->bufsz, at, n, NULL, 0);
        break;
    case PW_UNQUOTED: {
        /* libpq reads "my=pass" as one value: '=' cuts only the words
         * after a blank, which it takes for keywords */
        size_t blank = strcspn(at, " \t\n");
        replace_password_pieces(r->buf, r->bufsz, at, n, " \t\n&", 0);
        if (blank < n) replace_password_pieces(r->buf, r->bufsz, at + blank, n - blank, " \t\n&=", 0);
        break;
    }
    }
}

/* Redacts a password as written in conninfo (not decoded): libpq's error for
 * a string it cannot parse (e.g. a '%' that is no URL escape), or reads
 * differently (an '@', '/' or '?' not percent-encoded in a URL's password, a
 * blank in an unquoted password=), quotes the raw text or a piece of it.
 * Covers every span each_password_span finds. */
static void replace_raw_passwords(char *buf, size_t bufsz, const char *conninfo) {
    struct redact_buf r = {buf, bufsz, conninfo};
    each_password_span(conninfo, redact_span, &r);
}

/* What redact_to does (see the pgconn_redact* functions). */
enum redact_mode { REDACT_LIBPQ, REDACT_SERVER, REDACT_OUTPUT, REDACT_ARG };

/* Whether conninfo can hold a password at all.  A bare word is a database
 * name (libpq reads it so); otherwise anything that may name one -- an '@'
 * (a URL's user info), "password", a parsed password (percent-encoded
 * keywords included: ?pass%77ord=), or a string libpq cannot parse (its
 * error may quote it whole). */
static int may_hold_password(const char *conninfo) {
    if (!strpbrk(conninfo, "=:/@%?&'\\ ")) return 0;
    if (strchr(conninfo, '@')) return 1;
    for (const char *p = conninfo; *p; p++)
        if (strncasecmp(p, "password", 8) == 0) return 1;
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (!opts) return 1;
    int has = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && *o->val && strcmp(o->keyword, "password") == 0) has = 1;
    PQconninfoFree(opts);
    return has;
}

/* Calls fn with each password value conninfo (as libpq parses it) and
 * PGPASSWORD hold, those of at least min bytes, the longer first: one
 * holding the other (s3cret-pw in xs3cret-pw-env) replaced after it would
 * leave the rest of it showing around the "***" of the shorter.  Returns
 * how many. */
static int each_password_value(const char *conninfo, size_t min, void (*fn)(const char *pw, void *ud), void *ud) {
    const char *env = getenv("PGPASSWORD");
    if (env && strlen(env) < min) env = NULL;
    int n = 0;
    PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "password") != 0 || strlen(o->val) < min) continue;
        if (env && strlen(env) > strlen(o->val)) {
            fn(env, ud);
            n++;
            env = NULL;
        }
        fn(o->val, ud);
        n++;
    }
    PQconninfoFree(opts);
    if (env) {
        fn(env, ud);
        n++;
    }
    return n;
}

struct replace_buf { char *buf; size_t bufsz; };

static void replace_value(const char *pw, void *ud) {
    struct replace_buf *r = ud;
    replace_all(r->buf, r->bufsz, pw);
}

/* The password values (each_password_value) replaced in work -- and with
 * raw, the password as written in conninfo (and its pieces) too. */
static void replace_passwords(const char *conninfo, char *work, size_t worksz, size_t min, int raw) {
    struct replace_buf r = {work, worksz};
    each_password_value(conninfo, min, replace_value, &r);
    if (raw && conninfo) replace_raw_passwords(work, worksz, conninfo);
}

/* Whether s, a command-line argument, is a connection string that holds a
 * password: a postgres:// URL with user:password@ (wherever one begins in
 * s: next_url), anything with a password= (?password=, key=value), or
 * what libpq parses to one. */
static int holds_password(const char *s) {
    for (const char *u = s; (u = next_url(u)) != NULL; u++)
        if (url_userinfo(u).colon) return 1;
    for (const char *p = s; *p; p++)
        if (strncasecmp(p, "password", 8) == 0) return 1;
    if (!strchr(s, '=')) return 0;
    PQconninfoOption *opts = PQconninfoParse(s, NULL);
    int has = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (o->val && *o->val && strcmp(o->keyword, "password") == 0) has = 1;
    PQconninfoFree(opts);
    return has;
}

int pgconn_holds_password(const char *arg) { return holds_password(arg); }

static void redact_to(const char *conninfo, const char *msg, char *out, size_t outsz, enum redact_mode mode);

void pgconn_redact_arg(const char *arg, const char *msg, char *out, size_t outsz) {
    redact_to(arg, msg, out, outsz, REDACT_ARG);
}

struct scrub_buf { const char *s; char *out; };

static void scrub_span(const char *at, size_t n, enum pw_form form, void *ud) {
    struct scrub_buf *b = ud;
    (void)form;
    memset(b->out + (at - b->s), 'x', n);
}

void pgconn_scrub_passwords(const char *s, char *out) {
    struct scrub_buf b = {s, out};
    each_password_span(s, scrub_span, &b);
}

/* libpq's own text: the whole string first -- an unparsable one may echo
 * back verbatim (not a bare database name, which the server's "database
 * ... does not exist" must show) -- then every form of the password. */
static void redact_in_place(const char *conninfo, char *work, size_t worksz) {
    if (conninfo && may_hold_password(conninfo)) replace_all(work, worksz, conninfo);
    replace_passwords(conninfo, work, worksz, 1, 1);
}

/* The server's text: only a password long enough to be one (see
 * pgconn_redact_server). */
#define SERVER_TEXT_MIN 8

void pgconn_redact(const char *conninfo, const char *msg, char *out, size_t outsz) {
    redact_to(conninfo, msg, out, outsz, REDACT_LIBPQ);
}

void pgconn_redact_server(const char *conninfo, const char *msg, char *out, size_t outsz) {
    redact_to(conninfo, msg, out, outsz, REDACT_SERVER);
}

void pgconn_redact_output(const char *conninfo, const char *msg, char *out, size_t outsz) {
    redact_to(conninfo, msg, out, outsz, REDACT_OUTPUT);
}

int pgconn_each_output_password(const char *conninfo, void (*fn)(const char *pw, void *ud), void *ud) {
    return each_password_value(conninfo, SERVER_TEXT_MIN, fn, ud);
}

static void redact_to(const char *conninfo, const char *msg, char *out, size_t outsz, enum redact_mode mode) {
    if (outsz == 0) return;
    /* Redact the whole message first, then cut: a password straddling the
     * cut must not leave a visible part.  Short needles can grow the text
     * (up to 3 bytes per byte), so the work buffer allows for that. */
    size_t len = strlen(msg);
    size_t worksz = 3 * len + 4;
    char *work = malloc(worksz);
    if (!work) { snprintf(out, outsz, "(error message withheld: out of memory)"); return; }
    memcpy(work, msg, len + 1);
    switch (mode) {
    case REDACT_LIBPQ: redact_in_place(conninfo, work, worksz); break;
    case REDACT_SERVER:
    case REDACT_OUTPUT: replace_passwords(conninfo, work, worksz, SERVER_TEXT_MIN, 0); break;
    case REDACT_ARG:
        /* as libpq's own text is redacted (the parsed value, the raw forms
         * -- percent-encoded keywords' values included --, PGPASSWORD) */
        if (holds_password(conninfo)) replace_passwords(conninfo, work, worksz, 1, 1);
        break;
    }
    /* (an error message's trailing newline goes; ferry's own lines keep theirs) */
    size_t wl = strlen(work);
    if (mode == REDACT_LIBPQ || mode == REDACT_SERVER)
        while (wl > 0 && (work[wl - 1] == '\n' || work[wl - 1] == '\r')) work[--wl] = '\0';
    snprintf(out, outsz, "%s", work);
    free(work);
}

int pgconn_integer_fits(const char *s, long long *out) {
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || end == s) return 0;
    const long long limit = 9007199254740992LL; /* 2^53 */
    if (v > limit || v < -limit) return 0;
    *out = v;
    return 1;
}

int pgconn_numeric_fits_double(const char *s) {
    int digits = 0;
    for (const char *p = s; *p && *p != 'e' && *p != 'E'; p++)
        if (isdigit((unsigned char)*p)) digits++;
    /* NaN and Infinity have no digits and stay strings. */
    return digits > 0 && digits <= 15;
}
