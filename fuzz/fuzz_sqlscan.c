/* libFuzzer target for the SQL scanners of src/pgconn.c: the COPY ...
 * FROM STDIN check, its option check, its table and column reader, the up.sql transaction-control
 * finder and the savepoint-name finder ferry validate refuses with.  They
 * walk untrusted SQL text byte by byte (strings, E-strings with
 * continuations, dollar quotes, nested comments): what this checks is
 * that no input makes them read out of bounds or loop for ever (ASan and
 * libFuzzer's timeout), and a few invariants of their results.
 *
 * Build and run (make fuzz builds and runs it with the other targets):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libpq) \
 *         fuzz/fuzz_sqlscan.c src/pgconn.c $(pkg-config --libs libpq) -o /tmp/fuzz_sqlscan
 *   /tmp/fuzz_sqlscan -max_total_time=60 CORPUS_DIR */
#define _GNU_SOURCE                         /* strcasestr */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgconn.h"
#include "fuzz_check.h"


/* pgconn_copy_target's names: inside the statement, never empty */
struct span { const char *sql; size_t size; };
static void in_bounds(int column, const char *name, size_t len, void *ud) {
    const struct span *s = ud;
    (void)column;
    CHECK(len > 0 && name >= s->sql && name + len <= s->sql + s->size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *sql = malloc(size + 1);
    if (!sql) return 0;
    memcpy(sql, data, size);
    sql[size] = '\0';                       /* the scanners read C strings */
    for (int plain = 0; plain <= 1; plain++) {
        int is_copy = pgconn_is_copy_from_stdin(sql, plain);
        char word[16];
        memset(word, 'x', sizeof word);
        int refused = pgconn_copy_format_option(sql, plain, word, sizeof word);
        if (refused) {
            CHECK(memchr(word, '\0', sizeof word) != NULL);   /* cut to the buffer, ended */
            CHECK(word[0] != '\0');
        }
        /* a statement the COPY check takes starts with COPY */
        if (is_copy) CHECK(strcasestr(sql, "copy") != NULL);
    }
    struct span span = {sql, size};
    if (pgconn_copy_target(sql, in_bounds, &span)) CHECK(strcasestr(sql, "stdin") != NULL);
    int line = 0;
    char cmd[32];
    const char *at = pgconn_find_transaction_control(sql, &line, cmd, sizeof cmd);
    if (at) {
        CHECK(at >= sql && at <= sql + size);
        CHECK(line >= 1);
        CHECK(memchr(cmd, '\0', sizeof cmd) != NULL && cmd[0] != '\0');
    }
    char sp[32];
    const char *named = pgconn_find_savepoint(sql, "ferry_validate", sp, sizeof sp);
    if (named) {
        CHECK(named >= sql && named < sql + size);
        CHECK(strcmp(sp, "SAVEPOINT") == 0 || strcmp(sp, "RELEASE SAVEPOINT") == 0
              || strcmp(sp, "ROLLBACK TO SAVEPOINT") == 0);
        CHECK(strcasestr(named, "ferry_validate") != NULL);
        /* found again from its own start */
        CHECK(pgconn_find_savepoint(named, "ferry_validate", NULL, 0) == named);
    }
    char unlock[32];
    const char *rel = pgconn_find_lock_release(sql, unlock, sizeof unlock);
    if (rel) {
        CHECK(rel >= sql && rel < sql + size);
        CHECK(strcmp(unlock, "DISCARD ALL") == 0 || strcmp(unlock, "pg_advisory_unlock_all()") == 0);
    }
    int followed = -1;
    const char *reset = pgconn_find_session_reset(sql, &followed);
    CHECK(followed == 0 || followed == 1);
    CHECK(reset == pgconn_find_session_reset(sql, NULL));
    CHECK(reset || !followed);
    if (reset) {
        CHECK(reset >= sql && reset < sql + size);
        CHECK(strncasecmp(reset, "reset", 5) == 0 || strncasecmp(reset, "discard", 7) == 0);
    }
    free(sql);
    return 0;
}
