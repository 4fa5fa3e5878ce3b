/* ferry: shared definitions of the host. */
#ifndef FERRY_H
#define FERRY_H

#define FERRY_VERSION "0.1.0"

/* Exit codes (documented in README.md). */
enum {
    FERRY_EXIT_OK = 0,      /* success */
    FERRY_EXIT_FAIL = 1,    /* the run failed, recorded per-row errors, a check failed, lock held */
    FERRY_EXIT_USAGE = 2    /* usage or configuration error */
};                          /* and 128 + the signal's number: interrupted (interrupt.h) */

/* The metatable (in the registry) of ferry's own error tables {code,
 * message}: errors that end a command with their exit code (usage errors,
 * the --max-errors stop).  A table without it is a script's error object,
 * reported like any other error. */
#define FERRY_ERROR_MT "ferry.error"

/* Registry keys of the host's module states. */
#define FERRY_STATS_KEY "ferry.stats"
#define FERRY_LOG_KEY   "ferry.log"

#endif
