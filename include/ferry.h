/* ferry: shared definitions of the host. */
#ifndef FERRY_H
#define FERRY_H

#define FERRY_VERSION "0.1.0"

/* Exit codes (documented in README.md). */
enum {
    FERRY_EXIT_OK = 0,      /* success */
    FERRY_EXIT_FAIL = 1,    /* the run failed, recorded per-row errors, a check failed, lock held */
    FERRY_EXIT_USAGE = 2    /* usage or configuration error */
};

/* Registry keys of the host's module states. */
#define FERRY_STATS_KEY "ferry.stats"
#define FERRY_LOG_KEY   "ferry.log"

#endif
