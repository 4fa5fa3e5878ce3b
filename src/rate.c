/* rate.c: the rate and ETA of a progress indicator (include/rate.h).
 *
 * The recent rate is an exponentially weighted average: items / secs,
 * where each update adds the items counted since the last and the time
 * that took, after both sums were multiplied by exp(-dt / RATE_TAU).  A
 * steady pace gives that pace exactly; early on (secs small next to
 * RATE_TAU) it is the average since the first update; later what was
 * counted a minute ago weighs a seventh of what is counted now, so that
 * the ETA follows a run that slows down or speeds up without jumping with
 * each batch. */
#include <math.h>
#include <stdio.h>

#include "rate.h"

void rate_reset(rate_meter *m) {
    *m = (rate_meter){0};
}

static void start(rate_meter *m, double t, long long done) {
    rate_reset(m);
    m->started = 1;
    m->t0 = m->t_last = t;
    m->done0 = m->done_last = m->done_seen = done;
}

/* b - a, b >= a, as a double: long long's difference overflows for counts
 * far apart (math.mininteger to math.maxinteger: undefined). */
static double span(long long a, long long b) {
    return (double)b - (double)a;
}

void rate_update(rate_meter *m, double t, long long done) {
    /* (against the latest count given, not the last folded: a set back
     * from one given since is a going back too) */
    if (!m->started || done < m->done_seen) { start(m, t, done); return; }
    m->done_seen = done;
    double dt = t - m->t_last;
    if (dt < RATE_STEP || (done == m->done_last && dt < RATE_PAUSE)) return;
    double keep = exp(-dt / RATE_TAU);
    m->items = m->items * keep + span(m->done_last, done);
    m->secs = m->secs * keep + dt;
    m->t_last = t;
    m->done_last = done;
}

double rate_recent(const rate_meter *m) {
    if (!m->started || m->t_last - m->t0 < RATE_WARMUP || !(m->secs > 0)) return -1;
    return m->items / m->secs;
}

double rate_average(const rate_meter *m, double t, long long done) {
    if (!m->started || t - m->t0 < RATE_WARMUP || done < m->done0) return -1;
    return span(m->done0, done) / (t - m->t0);
}

void rate_format_duration(double secs, char *out, size_t n) {
    /* a time a long cannot hold (a total near the largest integer, a rate
     * below 1/s): the cast would be undefined, and printed a negative time */
    if (!(secs + 0.5 < 9223372036854775807.0)) { snprintf(out, n, "-"); return; }
    long t = secs < 0 ? 0 : (long)(secs + 0.5);
    snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

void rate_describe(const rate_meter *m, double t, long long done, long long total, int final,
                   char *out, size_t n) {
    double rate = final ? rate_average(m, t, done) : rate_recent(m);
    char eta[32] = "-";
    if (!final && total > 0 && done < total && rate > 0)
        rate_format_duration(span(done, total) / rate, eta, sizeof eta);
    if (rate < 0) snprintf(out, n, "-/s ETA %s", eta);
    else snprintf(out, n, "%.0f/s ETA %s", rate, eta);
}
