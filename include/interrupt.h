#ifndef FERRY_INTERRUPT_H
#define FERRY_INTERRUPT_H
/* interrupt: Ctrl-C (SIGINT), SIGTERM, SIGHUP and SIGPIPE, apart from Lua.
 *
 * The first signal cancels the statements running on ferry's sessions (a
 * query waited for returns at once, with the server's cancel error) and
 * calls back (main sets a Lua hook that raises "interrupted"); a second
 * SIGINT or a SIGTERM then ends ferry at once, the default way (a second
 * SIGHUP or SIGPIPE does nothing: see interrupt.c).  A SIGINT or SIGHUP
 * ignored when ferry starts (a background job, nohup) stays ignored.
 * SIGPIPE counts only when ferry's stdout or stderr is a pipe whose reader
 * has gone; otherwise it is as if ignored: ferry is never killed by it.
 * The handlers stay to the end: once the command has ended, main calls
 * nothing back (its callback sees no Lua state), so a signal then changes
 * nothing -- the command's outcome and exit code are known by then. */
#include <libpq-fe.h>

void interrupt_install(void (*callback)(int signo));
int interrupt_received(void);                   /* 0, or the signal's number */
const char *interrupt_signal_name(int signo);   /* "SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE" */
/* "SIGINT", "SIGTERM", "SIGHUP: hung up", "SIGPIPE: output closed" */
const char *interrupt_signal_reason(int signo);

/* Sessions whose running statement a signal cancels.  watch returns a slot
 * (-1: none free, the session is then not cancelled); unwatch before the
 * session is finished.  Neither is called from a signal handler. */
int interrupt_watch(PGconn *pg);
void interrupt_unwatch(int slot);

#endif
