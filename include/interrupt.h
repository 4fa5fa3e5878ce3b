#ifndef FERRY_INTERRUPT_H
#define FERRY_INTERRUPT_H
/* interrupt: Ctrl-C (SIGINT), SIGTERM and SIGHUP, apart from Lua.
 *
 * The first signal cancels the statements running on ferry's sessions (a
 * query waited for returns at once, with the server's cancel error) and
 * calls back (main sets a Lua hook that raises "interrupted"); a second
 * SIGINT or a SIGTERM then ends ferry at once, the default way (a second
 * SIGHUP does nothing: see interrupt.c).  A SIGINT or SIGHUP ignored when
 * ferry starts (a background job, nohup) stays ignored. */
#include <libpq-fe.h>

void interrupt_install(void (*callback)(int signo));
/* Back to the default actions (before the Lua state the callback uses goes). */
void interrupt_uninstall(void);
int interrupt_received(void);                   /* 0, or the signal's number */
const char *interrupt_signal_name(int signo);   /* "SIGINT", "SIGTERM", "SIGHUP" */
const char *interrupt_signal_reason(int signo); /* "SIGINT", "SIGTERM", "SIGHUP: hung up" */

/* Sessions whose running statement a signal cancels.  watch returns a slot
 * (-1: none free, the session is then not cancelled); unwatch before the
 * session is finished.  Neither is called from a signal handler. */
int interrupt_watch(PGconn *pg);
void interrupt_unwatch(int slot);

#endif
