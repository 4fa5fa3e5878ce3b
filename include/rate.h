/* rate: the rate and ETA a progress indicator shows (progress, in
 * l_log.c), as arithmetic over the times and counts it is given -- the
 * caller reads the clock, a test gives its own. */
#ifndef FERRY_RATE_H
#define FERRY_RATE_H
#include <stddef.h>

/* Seconds of counting before a rate (and an ETA) is shown: the first
 * instants of a run say little about the rest (the first batches are
 * mapped before the writers push back). */
#define RATE_WARMUP 5.0
/* The time constant of the recent rate, in seconds: what was counted t
 * seconds ago weighs exp(-t / RATE_TAU) of what is counted now. */
#define RATE_TAU 30.0
/* The least time between two updates folded into the rate (the count of
 * the updates in between is folded with the next one). */
#define RATE_STEP 0.25
/* A pause (updates with no more counted) is folded when the count moves
 * again, or once it has lasted this many seconds: a run whose items come
 * in batches (a second of nothing, then a thousand) shows their pace, not
 * a rate that sinks between two batches and leaps at each. */
#define RATE_PAUSE 5.0

typedef struct rate_meter {
    int started;                /* a first update was given */
    double t0, t_last;          /* the time of the first update, of the last folded */
    long long done0, done_last; /* the count then */
    long long done_seen;        /* the count of the latest update, folded or not */
    double items, secs;         /* the items counted and the time, each weighted by its age */
} rate_meter;

/* Nothing counted yet. */
void rate_reset(rate_meter *m);
/* The count is `done` at time `t` (seconds, of any clock that does not go
 * back).  The first update starts the measure (what was counted before
 * it, and the time before it, are not the rate); a count lower than the
 * last given (folded or not) starts it again.  Any counts: the
 * arithmetic is in doubles, the difference of two long longs may not fit
 * in one. */
void rate_update(rate_meter *m, double t, long long done);
/* The recent rate in items a second, -1 before RATE_WARMUP seconds of
 * counting. */
double rate_recent(const rate_meter *m);
/* The average rate from the first update to (t, done), -1 before
 * RATE_WARMUP seconds of counting. */
double rate_average(const rate_meter *m, double t, long long done);
/* Writes "R/s ETA H:MM:SS" into out: the recent rate and the time the
 * total - done left take at it, or the average rate and no ETA when
 * final.  "-" for a rate not known yet; "ETA -" without a total (0), at
 * or past it, at a rate of 0, or for a time too far to count in seconds. */
void rate_describe(const rate_meter *m, double t, long long done, long long total, int final,
                   char *out, size_t n);
/* secs rounded to the second as H:MM:SS, or "-" when it is not a number
 * a long holds. */
void rate_format_duration(double secs, char *out, size_t n);
#endif
