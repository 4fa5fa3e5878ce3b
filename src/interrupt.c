/* interrupt: Ctrl-C (SIGINT), SIGTERM, SIGHUP and SIGPIPE, apart from Lua
 * (see interrupt.h). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

#include "interrupt.h"

/* Slots written by the main program and read by the handler, which may
 * run between any two of its instructions: a slot is filled cancel first,
 * session last, and emptied session first, so the handler, which skips a
 * slot without a session, never sees a half-made or freed one. */
#define SLOTS 256
static struct {
    PGconn *volatile pg;
    PGcancel *volatile cancel;
} slots[SLOTS];

static volatile sig_atomic_t received;
static void (*on_signal)(int);

/* PQcancel is safe in a signal handler (libpq's documentation says so);
 * PQtransactionStatus only reads the connection.  Only a session with a
 * statement in flight is cancelled: an idle server process ignores a
 * cancel anyway, and one sent while it starts its next statement (ferry's
 * own ROLLBACK, the history row) would cancel that. */
static void cancel_running(void) {
    char err[256];
    for (int i = 0; i < SLOTS; i++) {
        PGconn *pg = slots[i].pg;
        PGcancel *cancel = slots[i].cancel;
        if (pg && cancel && PQtransactionStatus(pg) == PQTRANS_ACTIVE) PQcancel(cancel, err, sizeof err);
    }
}

/* The signals this module caught (not ignored at start). */
static volatile sig_atomic_t caught_int, caught_term, caught_hup;

/* Whether ferry's stdout or stderr is a pipe whose reader has gone (poll
 * says POLLERR), or a socket whose peer has (POLLHUP).  (poll is safe in a
 * signal handler.) */
static int output_closed(void) {
    struct pollfd p[2] = {{.fd = STDOUT_FILENO, .events = POLLOUT}, {.fd = STDERR_FILENO, .events = POLLOUT}};
    if (poll(p, 2, 0) <= 0) return 0;
    return ((p[0].revents | p[1].revents) & (POLLERR | POLLHUP)) != 0;
}

static void handler(int signo) {
    int saved = errno;
    /* SIGPIPE comes from a write to a pipe nobody reads any more.  When
     * that is ferry's stdout or stderr (ferry up | head -3, a log reader
     * gone), the run stops as for any interruption: carrying on blind is no
     * better -- its errors and outcome go nowhere, and it goes on changing
     * the database while the operator, back at the prompt the pipeline
     * returned to, thinks it over.  Stopped, it is recorded, and the next
     * run resumes.  Any other pipe (one a script opened, PQcancel's socket)
     * is that writer's business: the write fails with EPIPE, and that is
     * all.  (libpq's own sockets never raise it: they are written with
     * MSG_NOSIGNAL.) */
    if (signo == SIGPIPE && !output_closed()) { errno = saved; return; }
    /* A hang-up often comes twice -- the shell passes the one it got on to
     * its jobs, the kernel sends its own to the terminal's foreground
     * process group, logind follows its TERM with one -- and is no one's
     * wish to stop harder; nor is each write to a closed output after the
     * first: after the first signal, they do nothing (not even cancel
     * again, which could hit ferry's own ROLLBACK or history row). */
    if ((signo == SIGHUP || signo == SIGPIPE) && received) { errno = saved; return; }
    /* A second Ctrl-C or a TERM ends ferry at once -- also while this one
     * waits in PQcancel for a server that does not answer (no timeout
     * there): both go back to the default action first, and the handler
     * runs with the signal unblocked (SA_NODEFER). */
    if (caught_int) signal(SIGINT, SIG_DFL);
    if (caught_term) signal(SIGTERM, SIG_DFL);
    if (!received) received = signo;
    cancel_running();
    if (on_signal) on_signal(signo);
    errno = saved;
}

/* A signal ignored when ferry starts stays ignored: a shell starts its
 * background jobs (ferry ... &) with SIGINT ignored, so that Ctrl-C at the
 * terminal does not reach them, and nohup does the same for SIGHUP. */
static int catch_unless_ignored(int signo, const struct sigaction *sa) {
    struct sigaction old;
    if (sigaction(signo, NULL, &old) == 0 && old.sa_handler == SIG_IGN) return 0;
    return sigaction(signo, sa, NULL) == 0;
}

void interrupt_install(void (*callback)(int signo)) {
    struct sigaction sa;
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    on_signal = callback;
    caught_int = catch_unless_ignored(SIGINT, &sa);
    caught_term = catch_unless_ignored(SIGTERM, &sa);
    caught_hup = catch_unless_ignored(SIGHUP, &sa);
    /* SIGPIPE is caught even when ignored at start: ignored, a closed
     * output would go unnoticed, and caught it still never ends ferry.  (Not
     * ignored here either: a program a script starts would inherit that,
     * where a caught signal goes back to the default action at exec.) */
    sigaction(SIGPIPE, &sa, NULL);
}

int interrupt_received(void) { return received; }

const char *interrupt_signal_name(int signo) {
    switch (signo) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    default: return "a signal";
    }
}

/* What "interrupted (...)" says: the name, and what it means where the
 * name alone does not tell an operator (SIGINT and SIGTERM are known) */
const char *interrupt_signal_reason(int signo) {
    switch (signo) {
    case SIGHUP: return "SIGHUP: hung up";
    case SIGPIPE: return "SIGPIPE: output closed";
    default: return interrupt_signal_name(signo);
    }
}

int interrupt_watch(PGconn *pg) {
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].pg || slots[i].cancel) continue;
        PGcancel *cancel = PQgetCancel(pg);
        if (!cancel) return -1;
        slots[i].cancel = cancel;
        slots[i].pg = pg;
        return i;
    }
    return -1;
}

void interrupt_unwatch(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    slots[slot].pg = NULL;
    PGcancel *cancel = slots[slot].cancel;
    slots[slot].cancel = NULL;
    PQfreeCancel(cancel);
}
