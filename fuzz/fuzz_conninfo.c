/* libFuzzer target for where src/pgconn.c finds the passwords of a
 * connection string: pgconn_scrub_passwords (ferry's argument list, which
 * ps shows every user) and pgconn_redact_arg (a usage error echoing an
 * argument), which read the same spans (each_password_span) of an
 * untrusted string -- a URL's user info and query, password= values quoted
 * or not, percent-encoded keywords.  What this checks is that no input
 * makes them read or write out of bounds (ASan) or loop for ever
 * (libFuzzer's timeout), and that the scrub only ever writes 'x' over
 * bytes of the string: same length, nothing else changed.
 * The same input is also read as a connection's error text by
 * pgconn_connect_error (a server's message in any language, with libpq's
 * SQLSTATE in it): into a small buffer and a large one, always ended
 * inside it, and valid UTF-8 in gives valid UTF-8 out (a cut never splits
 * a character).
 *
 * Build and run (make fuzz runs it after the other two targets):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libpq) \
 *         fuzz/fuzz_conninfo.c src/pgconn.c $(pkg-config --libs libpq) -o /tmp/fuzz_conninfo
 *   /tmp/fuzz_conninfo -max_total_time=60 CORPUS_DIR */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "fuzz_check.h"

/* 1 when the n bytes at s are well-formed UTF-8 (no overlong forms or
 * surrogates is not asked here: only the sequence lengths) */
static int utf8_shaped(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static void check_connect_error(const char *s, size_t len) {
    size_t sizes[] = {1, 7, 16, 64, 4 * len + 64};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char *out = malloc(sizes[k]);
        if (!out) return;
        memset(out, 'z', sizes[k]);
        pgconn_connect_error(s, out, sizes[k]);
        CHECK(memchr(out, '\0', sizes[k]) != NULL);
        if (utf8_shaped((const unsigned char *)s, len)) CHECK(utf8_shaped((const unsigned char *)out, strlen(out)));
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a C string, as an argument is: up to the first NUL */
    char *s = malloc(size + 1), *out = malloc(size + 1);
    if (!s || !out) { free(s); free(out); return 0; }
    memcpy(s, data, size);
    s[size] = '\0';
    size_t len = strlen(s);
    memcpy(out, s, len + 1);
    pgconn_scrub_passwords(s, out);
    CHECK(strlen(out) == len);
    for (size_t i = 0; i < len; i++) CHECK(out[i] == s[i] || out[i] == 'x');
    /* a second scrub of the same text writes the same */
    char *again = malloc(len + 1);
    if (again) {
        memcpy(again, s, len + 1);
        pgconn_scrub_passwords(s, again);
        CHECK(memcmp(again, out, len + 1) == 0);
        free(again);
    }
    /* the argument echoed in a message of its own, into a short buffer and
     * a large one: ended inside it */
    char small[16], *large = malloc(4 * len + 64);
    memset(small, 'z', sizeof small);
    pgconn_redact_arg(s, s, small, sizeof small);
    CHECK(memchr(small, '\0', sizeof small) != NULL);
    if (large) {
        pgconn_redact_arg(s, s, large, 4 * len + 64);
        CHECK(memchr(large, '\0', 4 * len + 64) != NULL);
        free(large);
    }
    check_connect_error(s, len);
    free(s);
    free(out);
    return 0;
}
