/* Unit tests for src/rate.c: the rate and ETA a progress indicator shows
 * (progress in l_log.c), driven by a clock of the test's own -- every
 * time below is made up, none is read, so nothing here depends on how busy
 * the machine is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "rate.h"

/* What the indicator shows after the update (t, done). */
static const char *shown(rate_meter *m, double t, long long done, long long total) {
    static char out[64];
    rate_update(m, t, done);
    rate_describe(m, t, done, total, 0, out, sizeof out);
    return out;
}

static const char *shown_final(rate_meter *m, double t, long long done, long long total) {
    static char out[64];
    rate_update(m, t, done);
    rate_describe(m, t, done, total, 1, out, sizeof out);
    return out;
}

/* Counts steadily at `per_second` on from (from, done), the count at
 * `from`, to `to`: an update every `step` seconds after `from` (the calls
 * an indicator gets from p:add); the count at `to`. */
static long long run_steady(rate_meter *m, double from, double to, long long done, double per_second, double step) {
    long long start = done;
    for (double t = from + step; t <= to + 1e-9; t += step) {
        done = start + (long long)llround((t - from) * per_second);
        rate_update(m, t, done);
    }
    return done;
}

/* The rate the text shows ("-" -> -1). */
static double shown_rate(const char *text) {
    if (strncmp(text, "-/s", 3) == 0) return -1;
    return atof(text);
}

/* The ETA the text shows in seconds ("-" -> -1). */
static long shown_eta(const char *text) {
    const char *e = strstr(text, "ETA ");
    assert_non_null(e);
    long h, mi, s;
    if (sscanf(e + 4, "%ld:%ld:%ld", &h, &mi, &s) != 3) return -1;
    return h * 3600 + mi * 60 + s;
}

static void test_nothing_counted(void **state) {
    (void)state;
    rate_meter m;
    char out[64];
    rate_reset(&m);
    rate_describe(&m, 10, 0, 100, 0, out, sizeof out);
    assert_string_equal(out, "-/s ETA -");
    rate_describe(&m, 10, 0, 100, 1, out, sizeof out);
    assert_string_equal(out, "-/s ETA -");
}

/* The first 5 s of counting show no rate and no ETA; from then on the
 * steady pace, exactly. */
static void test_warmup(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    assert_string_equal(shown(&m, 100.0, 0, 100000), "-/s ETA -");
    long long done = run_steady(&m, 100.0, 104.75, 0, 1000, 0.25);
    assert_int_equal(done, 4750);
    assert_string_equal(shown(&m, 104.9, 4900, 100000), "-/s ETA -");
    /* 95000 left at 1000/s */
    assert_string_equal(shown(&m, 105.0, 5000, 100000), "1000/s ETA 0:01:35");
    assert_string_equal(shown(&m, 105.25, 5250, 100000), "1000/s ETA 0:01:35");
    assert_string_equal(shown(&m, 106.0, 6000, 100000), "1000/s ETA 0:01:34");
}

/* The time before the first update (a query sorting before its first row,
 * the process starting) is not counted: the clock starts at the first
 * add or set.  The average since progress.new would show 143/s here. */
static void test_startup_not_counted(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);                                   /* progress.new at t = 0 */
    rate_update(&m, 60.0, 1);                         /* the first row at t = 60 */
    long long done = run_steady(&m, 60.0, 70.0, 1, 1000, 0.25);
    assert_int_equal(done, 10001);
    assert_string_equal(shown(&m, 70.0, done, 70001), "1000/s ETA 0:01:00");
}

/* A first p:set(n) (a script that counts what an earlier run did) is where
 * the count starts, not n items done in no time. */
static void test_first_set_is_the_start(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 500000);
    long long done = run_steady(&m, 0.0, 10.0, 500000, 1000, 0.25);
    assert_string_equal(shown(&m, 10.0, done, 1000000), "1000/s ETA 0:08:10");
}

/* The writers' start: the first batches are mapped at once, before the
 * writers push back.  The first frame used to show that burst as the
 * rate (here 100000/s: an ETA of 10 s for a run of 1000 s). */
static void test_startup_burst(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 0);
    assert_string_equal(shown(&m, 0.2, 20000, 1000000), "-/s ETA -");
    long long done = run_steady(&m, 0.0, 5.0, 20000, 1000, 0.25);
    /* the first rate shown is high (the burst is a fifth of what was
     * counted), but not the burst's */
    double r = shown_rate(shown(&m, 5.0, done, 1000000));
    assert_true(r > 1000 && r < 6000);
    /* after a minute and a half the burst is mostly forgotten: within 5 % */
    done = run_steady(&m, 5.0, 90.0, done, 1000, 0.25);
    r = shown_rate(shown(&m, 90.0, done, 1000000));
    assert_true(r >= 1000 && r <= 1050);
    done = run_steady(&m, 90.0, 180.0, done, 1000, 0.25);
    r = shown_rate(shown(&m, 180.0, done, 1000000));
    assert_true(r >= 1000 && r <= 1005);
}

/* The pace halves twice: the rate follows within a minute or two, where
 * the average since the start would still say 678/s. */
static void test_follows_the_recent_pace(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 0);
    long long done = run_steady(&m, 0.0, 120.0, 0, 1000, 0.25);
    assert_string_equal(shown(&m, 120.0, done, 1000000), "1000/s ETA 0:14:40");
    done = run_steady(&m, 120.0, 150.0, done, 250, 0.25);
    double r = shown_rate(shown(&m, 150.0, done, 1000000));
    assert_true(r > 250 && r < 550);                  /* on its way: 1 - 1/e */
    done = run_steady(&m, 150.0, 210.0, done, 250, 0.25);
    r = shown_rate(shown(&m, 210.0, done, 1000000));
    assert_true(r >= 250 && r <= 300);
    /* and back up */
    done = run_steady(&m, 210.0, 400.0, done, 2000, 0.25);
    r = shown_rate(shown(&m, 400.0, done, 1000000));
    assert_true(r >= 1950 && r <= 2000);
}

/* Items that come in batches (1000 at each whole second) and frames drawn
 * every 0.2 s: the ETA counts down by about the frame's time, never jumps. */
static void test_no_jumps_frame_to_frame(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    long long total = 1000000;
    long prev = -1;
    for (int frame = 0; frame <= 5 * 600; frame++) {  /* 10 minutes */
        double t = frame * 0.2;
        long long done = 1000 * (long long)floor(t + 1e-9);
        const char *text = shown(&m, t, done, total);
        long eta = shown_eta(text);
        if (t < 5.0) { assert_string_equal(text, "-/s ETA -"); continue; }
        /* (the warm-up ends at the first update folded after 5 s) */
        if (t < 5.0 + RATE_STEP && eta < 0) continue;
        assert_true(eta > 0);
        if (prev >= 0 && t >= 30) {
            long change = labs(eta - prev);
            if (change > 2 + prev / 50) {             /* 2 s and 2 % */
                print_error("t=%.1f: ETA %ld -> %ld (%s)\n", t, prev, eta, text);
                fail();
            }
        }
        prev = eta;
    }
}

/* Updates as a pipelined run gives them: a batch of 2000 rows mapped in a
 * tenth of a second (an add per 20), then nothing for 1.9 s while the
 * writers are busy; a frame at an update 0.2 s or more after the last
 * (as on a terminal).  The ETA counts down, never jumps up. */
static void test_no_jumps_with_batches(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    long long done = 0, total = 2000000;
    double last_frame = -1;
    long prev = -1;
    for (int batch = 0; batch < 300; batch++) {
        for (int i = 0; i < 100; i++) {
            double t = batch * 2.0 + i * 0.001;
            done += 20;
            rate_update(&m, t, done);
            if (t - last_frame < 0.2) continue;
            last_frame = t;
            const char *text = shown(&m, t, done, total);
            long eta = shown_eta(text);
            if (t < 5.0) { assert_string_equal(text, "-/s ETA -"); continue; }
            if (eta < 0 && t < 7.0) continue;
            assert_true(eta > 0);
            if (prev >= 0 && t >= 30 && (eta > prev || prev - eta > 2 + prev / 50)) {
                print_error("t=%.3f: ETA %ld -> %ld (%s)\n", t, prev, eta, text);
                fail();
            }
            prev = eta;
        }
    }
}

/* No progress for a while: the rate shown falls (no ETA from a pace long
 * gone); when the count moves again the ETA comes back. */
static void test_stall(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 0);
    long long done = run_steady(&m, 0.0, 60.0, 0, 1000, 0.25);
    assert_string_equal(shown(&m, 60.0, done, 200000), "1000/s ETA 0:02:20");
    /* a quiet minute (a second stream still sorting), then an update */
    assert_string_equal(shown(&m, 120.0, done, 200000), "55/s ETA 0:42:03");
    done = run_steady(&m, 120.0, 240.0, done, 1000, 0.25);
    /* two minutes on, the quiet minute still weighs a little (e^-4 of its
     * 60 s: 964/s) */
    double r = shown_rate(shown(&m, 240.0, done, 200000));
    assert_true(r >= 950 && r < 1000);
    done = run_steady(&m, 240.0, 360.0, done, 1000, 0.25);
    r = shown_rate(shown(&m, 360.0, done, 400000));
    assert_true(r >= 999 && r <= 1000);
}

/* A count that goes back (p:set to less) starts the measure again. */
static void test_count_going_back(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 0);
    long long done = run_steady(&m, 0.0, 10.0, 0, 1000, 0.25);
    assert_string_equal(shown(&m, 10.0, done, 100000), "1000/s ETA 0:01:30");
    assert_string_equal(shown(&m, 10.25, 0, 100000), "-/s ETA -");
    done = run_steady(&m, 10.25, 15.0, 0, 500, 0.25);
    assert_string_equal(shown(&m, 15.0, done, 100000), "-/s ETA -");
    done = run_steady(&m, 15.0, 15.25, done, 500, 0.25);
    assert_string_equal(shown(&m, 15.25, done, 100000), "500/s ETA 0:03:15");
}

/* No total (0), a total reached or passed: no ETA; a rate of 0 after the
 * warm-up: 0/s and no ETA. */
static void test_no_eta(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 0);
    long long done = run_steady(&m, 0.0, 10.0, 0, 1000, 0.25);
    assert_string_equal(shown(&m, 10.0, done, 0), "1000/s ETA -");
    assert_string_equal(shown(&m, 10.0, done, 10000), "1000/s ETA -");
    assert_string_equal(shown(&m, 10.0, done, 5000), "1000/s ETA -");
    rate_reset(&m);
    rate_update(&m, 0.0, 7);
    run_steady(&m, 0.0, 10.0, 7, 0, 0.25);
    assert_string_equal(shown(&m, 10.0, 7, 100), "0/s ETA -");
}

/* An ETA past what a C long holds in seconds (a total near the largest
 * integer at a rate below 1/s) is "-", not a negative time. */
static void test_eta_too_far(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 1);
    assert_string_equal(shown(&m, 6.0, 2, INT64_MAX), "0/s ETA -");
    char out[32];
    rate_format_duration(1e300, out, sizeof out);
    assert_string_equal(out, "-");
    rate_format_duration(NAN, out, sizeof out);
    assert_string_equal(out, "-");
    rate_format_duration(3599.5, out, sizeof out);
    assert_string_equal(out, "1:00:00");
    rate_format_duration(360000, out, sizeof out);
    assert_string_equal(out, "100:00:00");
}

/* The final line: the average over the whole count (from the first update
 * to the last), and no ETA -- also for a run that stopped short (an error
 * unwinding through the <close> bar), which used to get one. */
static void test_final(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 0);
    long long done = run_steady(&m, 0.0, 100.0, 0, 1000, 0.25);
    done = run_steady(&m, 100.0, 200.0, done, 3000, 0.25);
    /* the recent pace just before */
    double r = shown_rate(shown(&m, 200.0, done, 1000000));
    assert_true(r > 2800 && r <= 3000);
    assert_int_equal(done, 400000);
    assert_string_equal(shown_final(&m, 200.0, done, 1000000), "2000/s ETA -");
    assert_string_equal(shown_final(&m, 200.0, done, 400000), "2000/s ETA -");
    /* a count of under 5 s: no rate */
    rate_reset(&m);
    rate_update(&m, 0.0, 1);
    assert_string_equal(shown_final(&m, 4.9, 4, 4), "-/s ETA -");
    assert_string_equal(shown_final(&m, 5.0, 4, 4), "1/s ETA -");
    /* one update only */
    rate_reset(&m);
    assert_string_equal(shown_final(&m, 1.0, 4, 4), "-/s ETA -");
}

/* A count that goes back from one not folded yet (given less than
 * RATE_STEP after the last folded): less than the count all the same, a
 * new start.  It was compared with the last folded count only, and the
 * rate went on as if 15000 had followed 10000. */
static void test_count_going_back_between_folds(void **state) {
    (void)state;
    rate_meter m;
    rate_reset(&m);
    rate_update(&m, 0.0, 0);
    long long done = run_steady(&m, 0.0, 10.0, 0, 1000, 0.25);
    assert_string_equal(shown(&m, 10.0, done, 100000), "1000/s ETA 0:01:30");
    rate_update(&m, 10.1, 20000);
    assert_string_equal(shown(&m, 10.2, 15000, 100000), "-/s ETA -");
    done = run_steady(&m, 10.2, 15.2, 15000, 500, 0.25);
    assert_string_equal(shown(&m, 15.2, done, 100000), "500/s ETA 0:02:45");
}

/* Counts at the ends of a 64-bit integer (p:set takes any): the
 * differences (a count from math.mininteger to math.maxinteger, a total
 * far above a negative count) do not fit in one; they were taken in
 * integers (undefined; in practice they wrapped: a rate of -0.1/s shown as
 * "-/s", an ETA of "0:00:00" for 2^64 items left). */
static void test_extreme_counts(void **state) {
    (void)state;
    rate_meter m;
    char out[64];
    rate_reset(&m);
    rate_update(&m, 0.0, INT64_MIN);
    rate_update(&m, 10.0, INT64_MAX);
    rate_describe(&m, 10.0, INT64_MAX, 0, 0, out, sizeof out);
    assert_true(shown_rate(out) > 1.8e18);
    rate_describe(&m, 10.0, INT64_MAX, 0, 1, out, sizeof out);
    assert_true(shown_rate(out) > 1.8e18);
    /* 2^64 - 1e10 items left at 1e9/s: 18446744064 s */
    rate_reset(&m);
    rate_update(&m, 0.0, -INT64_MAX);
    rate_update(&m, 10.0, -INT64_MAX + 10000000000LL);
    rate_describe(&m, 10.0, -INT64_MAX + 10000000000LL, INT64_MAX, 0, out, sizeof out);
    assert_string_equal(out, "1000000000/s ETA 5124095:34:24");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_counted),
        cmocka_unit_test(test_warmup),
        cmocka_unit_test(test_startup_not_counted),
        cmocka_unit_test(test_first_set_is_the_start),
        cmocka_unit_test(test_startup_burst),
        cmocka_unit_test(test_follows_the_recent_pace),
        cmocka_unit_test(test_no_jumps_frame_to_frame),
        cmocka_unit_test(test_no_jumps_with_batches),
        cmocka_unit_test(test_stall),
        cmocka_unit_test(test_count_going_back),
        cmocka_unit_test(test_no_eta),
        cmocka_unit_test(test_eta_too_far),
        cmocka_unit_test(test_final),
        cmocka_unit_test(test_count_going_back_between_folds),
        cmocka_unit_test(test_extreme_counts),
    };
    return cmocka_run_group_tests_name("rate", tests, NULL, NULL);
}
