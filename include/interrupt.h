#ifndef FERRY_INTERRUPT_H
#define FERRY_INTERRUPT_H
/* interrupt: Ctrl-C (SIGINT) and SIGTERM, apart from Lua.
 *
 * The first signal cancels the statements running on ferry's sessions (a
 * query waited for returns at once, with the server's cancel error) and
 * calls back (main sets a Lua hook that raises "interrupted"); a second
 * one ends ferry at once, the default way. */
#include <libpq-fe.h>

void interrupt_install(void (*callback)(int signo));
/* Back to the default actions (before the Lua state the callback uses goes). */
void interrupt_uninstall(void);
int interrupt_received(void);                   /* 0, or the signal's number */
const char *interrupt_signal_name(int signo);   /* "SIGINT", "SIGTERM" */

/* Sessions whose running statement a signal cancels.  watch returns a slot
 * (-1: none free, the session is then not cancelled); unwatch before the
 * session is finished.  Neither is called from a signal handler. */
int interrupt_watch(PGconn *pg);
void interrupt_unwatch(int slot);

#endif
