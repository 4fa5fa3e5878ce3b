/* Unit tests for pgconn_find_transaction_control (src/pgconn.c): the scan
 * that refuses an up.sql holding its own BEGIN/COMMIT, which would commit
 * part of a migration that ferry runs in one transaction -- and for
 * pgconn_find_savepoint, which ferry validate's hold reads with it, and for
 * pgconn_each_statement and pgconn_statement_tokens, which a dry run of an
 * up.sql reads its CREATEs with.  Every input is
 * placed right before an unreadable page, so that reading one byte past its
 * NUL crashes the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgconn.h"

/* A copy of s (NUL included) that ends where an inaccessible page begins. */
typedef struct guarded { char *map; size_t mapsz; char *s; } guarded;

static guarded guard(const char *s, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (len + 1 + page - 1) / page * page;
    guarded g;
    g.mapsz = data + page;
    g.map = mmap(NULL, g.mapsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + data, page, PROT_NONE), 0);
    g.s = g.map + data - (len + 1);
    memcpy(g.s, s, len);
    g.s[len] = '\0';
    return g;
}

static void unguard(guarded *g) { munmap(g->map, g->mapsz); }

static int lines_before(const char *s, const char *p)
{
    int n = 1;
    for (; s < p; s++)
        if (*s == '\n') n++;
    return n;
}

/* Checks what holds for any result: it points into s at the start of a
 * statement (scanning from there finds it again, on line 1), its line is
 * the count of newlines before it, and its word is one of the commands. */
static void check_result(const char *s, const char *p, int line, const char *word)
{
    static const char *const words[] = {"BEGIN", "START TRANSACTION", "COMMIT", "COMMIT PREPARED", "END",
                                        "ROLLBACK", "ROLLBACK PREPARED", "ABORT", "PREPARE TRANSACTION", NULL};
    size_t len = strlen(s);
    assert_true(p >= s && p < s + len);
    assert_int_equal(line, lines_before(s, p));
    int known = 0;
    for (int i = 0; words[i]; i++) known |= strcmp(word, words[i]) == 0;
    assert_true(known);
    int line2 = 0;
    char word2[32];
    assert_ptr_equal(pgconn_find_transaction_control(p, &line2, word2, sizeof word2), p);
    assert_int_equal(line2, 1);
    assert_string_equal(word2, word);
}

/* "LINE:WORD|text at the statement, to 12 bytes or the end of its line",
 * or "-" when sql has no such statement. */
static const char *scan(const char *sql)
{
    static char out[128];
    guarded g = guard(sql, strlen(sql));
    int line = 0;
    char word[32] = "";
    const char *p = pgconn_find_transaction_control(g.s, &line, word, sizeof word);
    if (!p) {
        snprintf(out, sizeof out, "-");
    } else {
        check_result(g.s, p, line, word);
        snprintf(out, sizeof out, "%d:%s|%.*s", line, word, (int)strcspn(p, "\n") < 12 ? (int)strcspn(p, "\n") : 12, p);
    }
    unguard(&g);
    return out;
}

static void test_each_command(void **state)
{
    (void)state;
    assert_string_equal(scan("BEGIN;"), "1:BEGIN|BEGIN;");
    assert_string_equal(scan("begin;"), "1:BEGIN|begin;");
    assert_string_equal(scan("BEGIN WORK;"), "1:BEGIN|BEGIN WORK;");
    assert_string_equal(scan("Begin Transaction Isolation Level Serializable;"), "1:BEGIN|Begin Transa");
    assert_string_equal(scan("START TRANSACTION;"), "1:START TRANSACTION|START TRANSA");
    assert_string_equal(scan("start\ttransaction read only;"), "1:START TRANSACTION|start\ttransa");
    assert_string_equal(scan("COMMIT;"), "1:COMMIT|COMMIT;");
    assert_string_equal(scan("commit work"), "1:COMMIT|commit work");
    assert_string_equal(scan("COMMIT AND CHAIN;"), "1:COMMIT|COMMIT AND C");
    assert_string_equal(scan("END;"), "1:END|END;");
    assert_string_equal(scan("end transaction;"), "1:END|end transact");
    assert_string_equal(scan("ROLLBACK;"), "1:ROLLBACK|ROLLBACK;");
    assert_string_equal(scan("rollback work;"), "1:ROLLBACK|rollback wor");
    assert_string_equal(scan("ROLLBACK AND NO CHAIN;"), "1:ROLLBACK|ROLLBACK AND");
    assert_string_equal(scan("ABORT;"), "1:ABORT|ABORT;");
    assert_string_equal(scan("abort transaction;"), "1:ABORT|abort transa");
    assert_string_equal(scan("COMMIT PREPARED 'gid-1';"), "1:COMMIT PREPARED|COMMIT PREPA");
    assert_string_equal(scan("rollback prepared 'gid-1';"), "1:ROLLBACK PREPARED|rollback pre");
    assert_string_equal(scan("PREPARE TRANSACTION 'gid-1';"), "1:PREPARE TRANSACTION|PREPARE TRAN");
    assert_string_equal(scan("prepare transaction E'gid';"), "1:PREPARE TRANSACTION|prepare tran");
    /* words apart, with comments between them */
    assert_string_equal(scan("START/* c */TRANSACTION;"), "1:START TRANSACTION|START/* c */");
    assert_string_equal(scan("commit -- c\n prepared 'x';"), "1:COMMIT PREPARED|commit -- c");
}

static void test_not_transaction_control(void **state)
{
    (void)state;
    /* a savepoint is rolled back inside the transaction */
    assert_string_equal(scan("ROLLBACK TO SAVEPOINT a;"), "-");
    assert_string_equal(scan("rollback to a;"), "-");
    assert_string_equal(scan("ROLLBACK WORK TO SAVEPOINT a;"), "-");
    assert_string_equal(scan("ROLLBACK TRANSACTION /* c */ TO a;"), "-");
    assert_string_equal(scan("SAVEPOINT a; RELEASE SAVEPOINT a;"), "-");
    assert_string_equal(scan("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;"), "-");
    assert_string_equal(scan("SET LOCAL lock_timeout = '1s';"), "-");
    /* a prepared statement named "transaction", and ordinary ones */
    assert_string_equal(scan("PREPARE transaction AS SELECT 1;"), "-");
    assert_string_equal(scan("PREPARE transaction (int) AS SELECT $1;"), "-");
    assert_string_equal(scan("PREPARE q AS SELECT 1;"), "-");
    assert_string_equal(scan("START;"), "-");
    /* words that only start like the commands */
    assert_string_equal(scan("BEGINNING; COMMITTED; ENDS; ABORTED; begin_x; end$; commit1;"), "-");
    /* the words elsewhere than first in a statement */
    assert_string_equal(scan("SELECT 1 AS begin; SELECT 1 AS commit;"), "-");
    assert_string_equal(scan("CREATE TABLE t (commit int, \"end\" text);"), "-");
    assert_string_equal(scan("ALTER TABLE t ADD COLUMN begin int;"), "-");
    assert_string_equal(scan("UPDATE t SET x = 1 -- COMMIT\n;"), "-");
    assert_string_equal(scan("\"BEGIN\"; \"commit\";"), "-");   /* a quoted name is no keyword */
    assert_string_equal(scan(""), "-");
    assert_string_equal(scan("  \n\t "), "-");
    assert_string_equal(scan(";;;"), "-");
    assert_string_equal(scan("-- only a comment: BEGIN;"), "-");
}

static void test_statement_position_and_line(void **state)
{
    (void)state;
    assert_string_equal(scan("SELECT 1; COMMIT;"), "1:COMMIT|COMMIT;");
    assert_string_equal(scan("CREATE TABLE t (x int);\n\n  -- done\n  COMMIT;\n"), "4:COMMIT|COMMIT;");
    assert_string_equal(scan("SELECT 'a\nb';\n/* x\ny */ commit"), "4:COMMIT|commit");
    assert_string_equal(scan("SELECT 1;\r\nCOMMIT;\r\n"), "2:COMMIT|COMMIT;\r");
    assert_string_equal(scan("/* c */ begin"), "1:BEGIN|begin");
    assert_string_equal(scan("--x\nBEGIN"), "2:BEGIN|BEGIN");
    assert_string_equal(scan("(SELECT 1);\nEND"), "2:END|END");
    assert_string_equal(scan(";;\n;ABORT"), "2:ABORT|ABORT");
    /* the first one only */
    assert_string_equal(scan("BEGIN;\nALTER TABLE \"Lead\" ADD COLUMN vip boolean;\nCOMMIT;\nUPDATE \"Lead\" SET vip = tru;"),
                        "1:BEGIN|BEGIN;");
    assert_string_equal(scan("ALTER TABLE \"Lead\" ADD COLUMN vip boolean;\nCOMMIT;\nBEGIN;"), "2:COMMIT|COMMIT;");
    /* a semicolon in parentheses does not end the statement */
    assert_string_equal(scan("SELECT (1\n; COMMIT);"), "-");
}

static void test_strings(void **state)
{
    (void)state;
    assert_string_equal(scan("SELECT 'BEGIN;'; SELECT ';COMMIT';"), "-");
    assert_string_equal(scan("SELECT 'it''s; COMMIT; ''x'; SELECT 1;"), "-");
    /* standard_conforming_strings: a backslash is an ordinary character */
    assert_string_equal(scan("SELECT 'a\\'; COMMIT; --';"), "1:COMMIT|COMMIT; --';");
    /* E'...' takes backslash escapes, and '' too */
    assert_string_equal(scan("SELECT E'\\'; COMMIT; --';"), "-");
    assert_string_equal(scan("SELECT e'\\\\'; COMMIT;"), "1:COMMIT|COMMIT;");
    assert_string_equal(scan("SELECT E'it''s; COMMIT'; SELECT 1;"), "-");
    assert_string_equal(scan("DO E'BEGIN RAISE NOTICE \\'x; COMMIT\\'; END';"), "-");
    /* E only as a word of its own: xe'...' is the name xe and a plain string */
    assert_string_equal(scan("SELECT xe'\\'; COMMIT;"), "1:COMMIT|COMMIT;");
    /* an E string continued on the next line stays an E string */
    assert_string_equal(scan("SELECT E'a'\n'\\'; COMMIT; --';"), "-");
    assert_string_equal(scan("SELECT E'a' -- c\n  '\\'; COMMIT; --';"), "-");
    /* ... but not on the same line (a syntax error, read as the server does) */
    assert_string_equal(scan("SELECT E'a' '\\'; COMMIT; --';"), "1:COMMIT|COMMIT; --';");
    /* other prefixes quote as plain strings */
    assert_string_equal(scan("SELECT B'01', X'ff', N'x\\'; COMMIT;"), "1:COMMIT|COMMIT;");
    assert_string_equal(scan("SELECT U&'d\\0061t\\+000061'; END;"), "1:END|END;");
}

static void test_quoted_names(void **state)
{
    (void)state;
    assert_string_equal(scan("SELECT 1 AS \"x\"\";COMMIT;--\"; SELECT 2;"), "-");
    assert_string_equal(scan("CREATE TABLE \"a;\nBEGIN\" (x int);\nEND;"), "3:END|END;");
    assert_string_equal(scan("SELECT U&\"d;commit\";"), "-");
}

static void test_dollar_quotes(void **state)
{
    (void)state;
    assert_string_equal(scan("DO $$ BEGIN PERFORM 1; END $$;"), "-");
    assert_string_equal(scan("DO $$ BEGIN PERFORM 1; END $$;\nCOMMIT;"), "2:COMMIT|COMMIT;");
    assert_string_equal(scan("DO $body$ BEGIN RAISE NOTICE '$$'; COMMIT; END $body$;"), "-");
    assert_string_equal(scan("DO $a$ x $b$; COMMIT; $b$ y $a$;"), "-");
    assert_string_equal(scan("DO $outer$ BEGIN EXECUTE $inner$ COMMIT $inner$; END $outer$; END;"), "1:END|END;");
    assert_string_equal(scan("DO $t1$ ; COMMIT; $t1$;"), "-");
    assert_string_equal(scan("DO $_$ ; COMMIT; $_$;"), "-");
    assert_string_equal(scan("DO $\xc3\xa9$ ; COMMIT; $\xc3\xa9$;"), "-");
    /* tags are case-sensitive */
    assert_string_equal(scan("DO $A$ ; $a$ ; COMMIT; $A$;"), "-");
    /* the closing tag may follow another dollar at once */
    assert_string_equal(scan("SELECT $a$x$$a$; COMMIT;"), "1:COMMIT|COMMIT;");
    /* $1 is a parameter, $1$ no tag, a$$ a name: none starts a quote */
    assert_string_equal(scan("PREPARE q(int) AS SELECT $1; COMMIT;"), "1:COMMIT|COMMIT;");
    assert_string_equal(scan("SELECT $1$; COMMIT;"), "1:COMMIT|COMMIT;");
    assert_string_equal(scan("SELECT 1 AS a$$; COMMIT; $$;"), "1:COMMIT|COMMIT; $$;");
    assert_string_equal(scan("SELECT $a; COMMIT;"), "1:COMMIT|COMMIT;");
    /* a function body, and a statement after it */
    assert_string_equal(scan("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$\nBEGIN\n  COMMIT;\nEND\n$fn$;\n"
                             "ROLLBACK;"),
                        "6:ROLLBACK|ROLLBACK;");
}

static void test_comments(void **state)
{
    (void)state;
    assert_string_equal(scan("/* a /* b */ COMMIT; */ SELECT 1;"), "-");
    assert_string_equal(scan("/* a /* b */ ; */ COMMIT;"), "1:COMMIT|COMMIT;");
    assert_string_equal(scan("SELECT 1 -- ; COMMIT;\n;"), "-");
    assert_string_equal(scan("SELECT 1 /* ; */ ; /* x */ -- y\n BEGIN;"), "2:BEGIN|BEGIN;");
    assert_string_equal(scan("SELECT 1 --; COMMIT"), "-");
    assert_string_equal(scan("SELECT 2 */ 1; COMMIT;"), "1:COMMIT|COMMIT;");   /* an operator, not a comment */
    assert_string_equal(scan("SELECT 2 -/**/-1; COMMIT;"), "1:COMMIT|COMMIT;");
    /* a -- comment ends at a carriage return too (old Mac line ends) */
    assert_string_equal(scan("-- x\rCOMMIT;"), "1:COMMIT|COMMIT;");
}

/* A SQL-standard function body (BEGIN ATOMIC ... END) is one statement,
 * semicolons and all, as psql reads it. */
static void test_begin_atomic(void **state)
{
    (void)state;
    assert_string_equal(scan("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nSELECT 2;"),
                        "-");
    assert_string_equal(scan("CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
                             "  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nCOMMIT;"),
                        "6:COMMIT|COMMIT;");
    assert_string_equal(scan("create procedure p() language sql begin atomic insert into t values (1); end; rollback;"),
                        "1:ROLLBACK|rollback;");
    assert_string_equal(scan("CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC\n"
                             "  INSERT INTO t VALUES (1);\n  UPDATE t SET x = CASE x WHEN 1 THEN 2 END;\nEND;\nEND;"),
                        "5:END|END;");
    /* parentheses in the header do not count: a parameter named begin */
    assert_string_equal(scan("CREATE FUNCTION g(begin int) RETURNS int LANGUAGE sql RETURN begin;\nCOMMIT;"),
                        "2:COMMIT|COMMIT;");
    /* BEGIN opens a body only before ATOMIC: begin is a name elsewhere */
    assert_string_equal(scan("CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT begin FROM t; END;\nCOMMIT;"),
                        "2:COMMIT|COMMIT;");
    /* other statements: begin is only a name there */
    assert_string_equal(scan("CREATE TABLE begin_t (x int); ALTER TABLE t RENAME COLUMN begin TO b;\nCOMMIT;"),
                        "2:COMMIT|COMMIT;");
}

static void test_word_buffer(void **state)
{
    (void)state;
    int line = 0;
    char word[4] = "zzz";
    const char *sql = "SELECT 1;\nCOMMIT PREPARED 'x';";
    assert_ptr_equal(pgconn_find_transaction_control(sql, &line, word, sizeof word), sql + 10);
    assert_int_equal(line, 2);
    assert_string_equal(word, "COM");
    assert_ptr_equal(pgconn_find_transaction_control(sql, NULL, NULL, 0), sql + 10);
    assert_ptr_equal(pgconn_find_transaction_control(sql, NULL, word, 0), sql + 10);
    assert_string_equal(word, "COM");
    line = 7;
    assert_null(pgconn_find_transaction_control("SELECT 1;", &line, word, sizeof word));
    assert_int_equal(line, 7);
}

/* Unterminated strings, names, quotes and comments end the scan at the
 * NUL; a command before them is still found. */
static void test_unterminated(void **state)
{
    (void)state;
    static const char *const none[] = {
        "SELECT 'abc", "SELECT 'abc''", "SELECT E'abc\\", "SELECT E'abc\\'", "SELECT e'", "SELECT \"abc",
        "SELECT \"a\"\"", "SELECT $$abc", "SELECT $a$ abc $a", "SELECT $a$ abc $A$", "SELECT $", "SELECT $a",
        "SELECT $a$", "SELECT E", "SELECT E'a'\n", "SELECT E'a'\n  -- c", "/* abc", "/* /* */", "/*", "/", "-",
        "-- abc", "SELECT 1; /* COMMIT", "SELECT 1; 'COMMIT", "ROLLBACK TO", "ROLLBACK WORK TO", "PREPARE",
        "PREPARE TRANSACTION AS", "START", "START /* TRANSACTION", "CREATE FUNCTION f() BEGIN ATOMIC; COMMIT",
        "SELECT ((((; COMMIT",
    };
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        if (strcmp(scan(none[i]), "-") != 0) fail_msg("found a command in \"%s\": %s", none[i], scan(none[i]));
    }
    assert_string_equal(scan("COMMIT"), "1:COMMIT|COMMIT");
    assert_string_equal(scan("ROLLBACK WORK"), "1:ROLLBACK|ROLLBACK WOR");
    assert_string_equal(scan("ROLLBACK /* TO"), "1:ROLLBACK|ROLLBACK /* ");
    assert_string_equal(scan("PREPARE TRANSACTION"), "1:PREPARE TRANSACTION|PREPARE TRAN");
    assert_string_equal(scan("START TRANSACTION"), "1:START TRANSACTION|START TRANSA");
    assert_string_equal(scan("COMMIT; SELECT 'x"), "1:COMMIT|COMMIT; SELE");
    assert_string_equal(scan("END; /* x"), "1:END|END; /* x");
}

/* Every prefix of a script that uses every construct: whatever the cut,
 * no read past the end, and the answer agrees with the invariants. */
static const char SCRIPT[] =
    "-- header ; COMMIT\n"
    "/* a /* nested ; END */ comment */\n"
    "CREATE TABLE \"x;\"\"BEGIN\" (a text DEFAULT 'it''s; COMMIT', b text DEFAULT E'\\'; END');\n"
    "DO $do$ BEGIN PERFORM $$ ; $$; END $do$;\n"
    "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 END; END;\n"
    "SELECT E'a'\n'\\'; ROLLBACK; --', U&\"\\0061\", $1, a$$;\n"
    "ROLLBACK TO SAVEPOINT s;\n"
    "COMMIT;\n";

static void test_every_prefix(void **state)
{
    (void)state;
    assert_string_equal(scan(SCRIPT), "9:COMMIT|COMMIT;");
    size_t n = strlen(SCRIPT);
    /* the first command: "ROLLBACK TO" cut to "ROLLBACK", then COMMIT */
    size_t rollback = (size_t)(strstr(SCRIPT, "ROLLBACK TO") - SCRIPT) + strlen("ROLLBACK");
    size_t commit = (size_t)(strstr(SCRIPT, "COMMIT;\n") - SCRIPT) + strlen("COMMIT");
    for (size_t cut = 0; cut <= n; cut++) {
        guarded g = guard(SCRIPT, cut);
        int line = 0;
        char word[32] = "";
        const char *p = pgconn_find_transaction_control(g.s, &line, word, sizeof word);
        if (p) check_result(g.s, p, line, word);
        if (cut < rollback || (cut >= rollback + 3 && cut < commit)) assert_null(p);
        else assert_non_null(p);
        unguard(&g);
    }
}

/* Up to 23 random pieces, end to end, in buf: their length. */
static size_t random_script(char *buf, size_t bufsz, const char *const *pieces, size_t np)
{
    size_t len = 0;
    int count = rand() % 24;
    for (int i = 0; i < count; i++) {
        const char *piece = pieces[(size_t)rand() % np];
        size_t pl = strlen(piece);
        if (len + pl >= bufsz) break;
        memcpy(buf + len, piece, pl);
        len += pl;
    }
    return len;
}

/* Random text made of the pieces that matter: never a crash or a read past
 * the end, and every answer agrees with the invariants. */
static void test_random_text(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "'", "''", "\"", "$", "$$", "$a$", "$A$", "$1", "E'", "e'", "\\", "\\'", "--", "/*", "*/", "\n", "\r\n", ";",
        "(", ")", " ", "\t", "BEGIN", "begin", "COMMIT", "end", "ROLLBACK", "TO", "WORK", "PREPARE", "PREPARED",
        "TRANSACTION", "START", "ABORT", "CREATE", "OR", "REPLACE", "FUNCTION", "PROCEDURE", "ATOMIC", "CASE", "x",
        "1", "U&", "\xc3\xa9", "\xff",
    };
    size_t np = sizeof pieces / sizeof *pieces;
    srand(20261207);
    char buf[512];
    for (int iter = 0; iter < 30000; iter++) {
        size_t len = random_script(buf, sizeof buf, pieces, np);
        guarded g = guard(buf, len);
        int line = 0;
        char word[32] = "";
        const char *p = pgconn_find_transaction_control(g.s, &line, word, sizeof word);
        if (p) check_result(g.s, p, line, word);
        unguard(&g);
    }
}

/* A 1 MB script: found at its end with the right line, in linear time
 * (the test would take minutes otherwise); and 1 MB inside one string,
 * one comment and one dollar quote, unterminated. */
static void test_one_megabyte(void **state)
{
    (void)state;
    static const char stmt[] =
        "INSERT INTO t VALUES ('a; COMMIT', E'\\'', $q$;END;$q$) /* ; BEGIN */; -- ROLLBACK\n";
    size_t n = 1 << 20, len = 0, lines = 0;
    char *big = malloc(n + 64);
    assert_non_null(big);
    while (len + sizeof stmt - 1 < n) {
        memcpy(big + len, stmt, sizeof stmt - 1);
        len += sizeof stmt - 1;
        lines++;
    }
    guarded g = guard(big, len);
    assert_null(pgconn_find_transaction_control(g.s, NULL, NULL, 0));
    unguard(&g);
    memcpy(big + len, "COMMIT;", 8);
    g = guard(big, len + 7);
    int line = 0;
    char word[32];
    assert_ptr_equal(pgconn_find_transaction_control(g.s, &line, word, sizeof word), g.s + len);
    assert_int_equal(line, (int)lines + 1);
    assert_string_equal(word, "COMMIT");
    unguard(&g);

    /* each opener with a body that never closes it */
    static const char *const open[][2] = {
        {"SELECT '", ";\n$\\x"}, {"SELECT E'", ";\n$\\x"}, {"SELECT \"", ";\n$'x"},
        {"SELECT $tag$", ";\n$'\"x"}, {"/*", ";\n$'\"x/"}, {"--", ";$'\"x*/"},
    };
    for (size_t i = 0; i < sizeof open / sizeof *open; i++) {
        size_t ol = strlen(open[i][0]), nb = strlen(open[i][1]);
        memcpy(big, open[i][0], ol);
        for (size_t k = ol; k < n; k++) big[k] = k % 7 ? 'x' : open[i][1][(k / 7) % nb];
        big[n - 1] = '\\';                 /* a backslash just before the end */
        g = guard(big, n);
        assert_null(pgconn_find_transaction_control(g.s, NULL, NULL, 0));
        unguard(&g);
    }
    /* deep nesting: 1 MB of comment openers, and of parentheses */
    for (size_t k = 0; k + 1 < n; k += 2) { big[k] = '/'; big[k + 1] = '*'; }
    g = guard(big, n);
    assert_null(pgconn_find_transaction_control(g.s, NULL, NULL, 0));
    unguard(&g);
    memset(big, '(', n);
    g = guard(big, n);
    assert_null(pgconn_find_transaction_control(g.s, NULL, NULL, 0));
    unguard(&g);
    free(big);
}

/* pgconn_find_savepoint: "WORD|text at the statement, to 14 bytes", or
 * "-": ferry validate refuses a statement naming one of its own
 * savepoints (names beginning "ferry_validate"). */
static const char *scan_sp(const char *sql)
{
    static char out[128];
    guarded g = guard(sql, strlen(sql));
    char word[32] = "";
    const char *p = pgconn_find_savepoint(g.s, "ferry_validate", word, sizeof word);
    if (!p) {
        snprintf(out, sizeof out, "-");
    } else {
        assert_true(p >= g.s && p < g.s + strlen(g.s));
        /* found again from there, with the same command */
        char word2[32];
        assert_ptr_equal(pgconn_find_savepoint(p, "ferry_validate", word2, sizeof word2), p);
        assert_string_equal(word2, word);
        snprintf(out, sizeof out, "%s|%.14s", word, p);
    }
    unguard(&g);
    return out;
}

static void test_savepoint_names(void **state)
{
    (void)state;
    /* each command, each form, the name plain (in any case) or quoted */
    assert_string_equal(scan_sp("SAVEPOINT ferry_validate_check"), "SAVEPOINT|SAVEPOINT ferr");
    assert_string_equal(scan_sp("savepoint FERRY_VALIDATE;"), "SAVEPOINT|savepoint FERR");
    assert_string_equal(scan_sp("RELEASE SAVEPOINT ferry_validate"), "RELEASE SAVEPOINT|RELEASE SAVEPO");
    assert_string_equal(scan_sp("release ferry_validate_check;"), "RELEASE SAVEPOINT|release ferry_");
    assert_string_equal(scan_sp("ROLLBACK TO SAVEPOINT ferry_validate"), "ROLLBACK TO SAVEPOINT|ROLLBACK TO SA");
    assert_string_equal(scan_sp("rollback to ferry_validate_check"), "ROLLBACK TO SAVEPOINT|rollback to fe");
    assert_string_equal(scan_sp("ROLLBACK WORK TO ferry_validate"), "ROLLBACK TO SAVEPOINT|ROLLBACK WORK ");
    assert_string_equal(scan_sp("rollback transaction to savepoint \"ferry_validate_check\""),
                        "ROLLBACK TO SAVEPOINT|rollback trans");
    /* comments between the words, a statement after another */
    assert_string_equal(scan_sp("SELECT 1; /* a */ RELEASE -- b\n SAVEPOINT /* c */ ferry_validate;"),
                        "RELEASE SAVEPOINT|RELEASE -- b\n ");
    /* other names, other statements: none */
    assert_string_equal(scan_sp("SAVEPOINT mine"), "-");
    assert_string_equal(scan_sp("SAVEPOINT ferry_sp_1"), "-");
    assert_string_equal(scan_sp("SAVEPOINT ferry_valid"), "-");
    assert_string_equal(scan_sp("SAVEPOINT \"FERRY_VALIDATE\""), "-");    /* quoted: another name */
    assert_string_equal(scan_sp("RELEASE SAVEPOINT mine; ROLLBACK TO s"), "-");
    assert_string_equal(scan_sp("ROLLBACK"), "-");
    assert_string_equal(scan_sp("ROLLBACK ferry_validate"), "-");
    assert_string_equal(scan_sp("rollback work"), "-");
    assert_string_equal(scan_sp("ROLLBACK TO"), "-");
    assert_string_equal(scan_sp("RELEASE"), "-");
    assert_string_equal(scan_sp("SAVEPOINT"), "-");
    assert_string_equal(scan_sp("RELEASE SAVEPOINT /* not closed ferry_validate"), "-");
    assert_string_equal(scan_sp("SELECT 'SAVEPOINT ferry_validate'"), "-");
    assert_string_equal(scan_sp("SELECT 1 AS savepoint, 2 AS ferry_validate"), "-");
    assert_string_equal(scan_sp("DO $$ BEGIN EXECUTE 'SAVEPOINT ferry_validate'; END $$"), "-");
    assert_string_equal(scan_sp(""), "-");
    /* a cut word buffer stays ended */
    char word[8];
    assert_non_null(pgconn_find_savepoint("ROLLBACK TO ferry_validate", "ferry_validate", word, sizeof word));
    assert_string_equal(word, "ROLLBAC");
    assert_non_null(pgconn_find_savepoint("SAVEPOINT ferry_validate", "ferry_validate", NULL, 0));
}

/* Every prefix of a script that names one in its last statement: found
 * only once the name's prefix is whole, nothing read past the end. */
static void test_savepoint_every_prefix(void **state)
{
    (void)state;
    static const char script[] = "SAVEPOINT a; RELEASE a; ROLLBACK TO SAVEPOINT b; RELEASE \"ferry_validate_check\"";
    size_t n = strlen(script), whole = (size_t)(strstr(script, "ferry_validate_check") - script) + strlen("ferry_validate");
    for (size_t cut = 0; cut <= n; cut++) {
        guarded g = guard(script, cut);
        const char *p = pgconn_find_savepoint(g.s, "ferry_validate", NULL, 0);
        if (cut < whole) assert_null(p);
        else assert_ptr_equal(p, g.s + (strstr(script, "RELEASE \"") - script));
        unguard(&g);
    }
}

/* ---- pgconn_each_statement and pgconn_statement_tokens ------------------ */

/* Every statement's line, first tokens and where they stopped,
 * "line:tok tok ...@c|..." (@ alone: at the end of the text). */
typedef struct heads { char out[1024]; size_t len; int stop_at; int seen; } heads;

static int collect_head(const char *p, int line, void *ud)
{
    heads *h = ud;
    pgconn_token tok[8];
    const char *stop;
    int n = pgconn_statement_tokens(p, tok, 8, &stop);
    h->len += (size_t)snprintf(h->out + h->len, sizeof h->out - h->len, "%s%d:", h->len ? "|" : "", line);
    for (int i = 0; i < n; i++)
        h->len += (size_t)snprintf(h->out + h->len, sizeof h->out - h->len, "%s%.*s", i ? " " : "", (int)tok[i].n,
                                   tok[i].s);
    h->len += (size_t)snprintf(h->out + h->len, sizeof h->out - h->len, "@%.*s", stop ? 1 : 0, stop ? stop : "");
    return ++h->seen == h->stop_at;
}

static const char *each(const char *sql, int stop_at, heads *h)
{
    memset(h, 0, sizeof *h);
    h->stop_at = stop_at;
    guarded g = guard(sql, strlen(sql));
    const char *p = pgconn_each_statement(g.s, collect_head, h);
    const char *r = p ? sql + (p - g.s) : NULL;
    unguard(&g);
    return r;
}

static void test_each_statement(void **state)
{
    (void)state;
    heads h;
    const char *sql = "-- a comment; CREATE x\n"
                      "CREATE TABLE public.\"T\"(x int);\n"
                      "/* ; */ create unique index concurrently if not exists i on t (x);\n"
                      "DO $$ BEGIN CREATE TABLE y (a int); END $$;\n"
                      "SELECT 'a;b', E'\\';', \"q;\" FROM z;\n"
                      "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END;\n"
                      "  drop table if exists a, \"B\"\"c\";\n"
                      "(SELECT 1); ;\n"
                      "alter table t rename to e'x';";
    assert_null(each(sql, 0, &h));
    /* (8 tokens at most: the ")" after "int" is the 9th) */
    assert_string_equal(h.out, "2:CREATE TABLE public . \"T\" ( x int@)"
                               "|3:create unique index concurrently if not exists i@o"
                               "|4:DO@$"
                               "|5:SELECT@'"
                               "|6:CREATE FUNCTION f ( ) RETURNS int BEGIN@A"
                               "|7:drop table if exists a , \"B\"\"c\"@;"
                               "|8:( SELECT@1"
                               "|9:alter table t rename to@e");
    /* stopping at the third: where it starts */
    const char *p = each(sql, 3, &h);
    assert_non_null(p);
    assert_true(strncmp(p, "DO $$", 5) == 0);
    assert_string_equal(h.out, "2:CREATE TABLE public . \"T\" ( x int@)|3:create unique index concurrently if not exists i@o|4:DO@$");
    /* nothing, blanks, an unterminated comment or quoted name */
    assert_null(each("", 0, &h));
    assert_string_equal(h.out, "");
    assert_null(each("  \n/* x", 0, &h));
    assert_string_equal(h.out, "");
    assert_null(each("CREATE TABLE \"t", 0, &h));
    assert_string_equal(h.out, "1:CREATE TABLE@\"");
    assert_null(each("CREATE TABLE t", 0, &h));
    assert_string_equal(h.out, "1:CREATE TABLE t@");
    assert_null(each("CREATE TABLE U&\"x\" (a int)", 0, &h));
    assert_string_equal(h.out, "1:CREATE TABLE U@&");
    /* the token limit, and where the tokens stop */
    pgconn_token tok[3];
    const char *stop, *text = "a b c d";
    assert_int_equal(pgconn_statement_tokens(text, tok, 3, &stop), 3);
    assert_ptr_equal(stop, text + 6);                 /* at the 4th, past max */
    assert_int_equal(pgconn_statement_tokens(text, tok, 0, &stop), 0);
    assert_ptr_equal(stop, text);
    assert_int_equal(pgconn_statement_tokens("  ", tok, 3, &stop), 0);
    assert_null(stop);
    assert_int_equal(pgconn_statement_tokens("a -- x", tok, 3, &stop), 1);
    assert_null(stop);
    assert_int_equal(pgconn_statement_tokens("a /* x", tok, 3, &stop), 1);
    assert_null(stop);
    assert_int_equal(pgconn_statement_tokens("a b", tok, 3, NULL), 2);
}

/* Random text: never a read past the end; each statement visited once, in
 * order, on the line it starts, with tokens inside the text. */
static int check_head(const char *p, int line, void *ud)
{
    const char **last = ud;            /* [0]: the text, [1]: the last statement */
    assert_true(p > last[1] || (last[1] == NULL && p >= last[0]));
    assert_int_equal(line, lines_before(last[0], p));
    pgconn_token tok[64];
    const char *stop, *end = last[0] + strlen(last[0]);
    int n = pgconn_statement_tokens(p, tok, 64, &stop);
    assert_true(*p != ';' && *p != ' ' && *p != '\n');   /* at what starts it */
    if (n == 0) assert_ptr_equal(stop, p);            /* (no token: stopped where it starts) */
    for (int i = 0; i < n; i++) assert_true(tok[i].s >= p && tok[i].s + tok[i].n <= end);
    if (stop) assert_true(stop >= (n ? tok[n - 1].s + tok[n - 1].n : p) && stop < end);
    last[1] = p;
    return 0;
}

static void test_each_statement_random(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "'", "''", "\"", "$", "$$", "$a$", "E'", "\\", "--", "/*", "*/", "\n", ";", "(", ")", ".", ",", " ",
        "CREATE", "TABLE", "x", "\"Q\"", "BEGIN", "ATOMIC", "END", "FUNCTION", "1", "\xc3\xa9",
    };
    size_t np = sizeof pieces / sizeof *pieces;
    srand(20261208);
    char buf[512];
    for (int iter = 0; iter < 30000; iter++) {
        size_t len = random_script(buf, sizeof buf, pieces, np);
        guarded g = guard(buf, len);
        const char *last[2] = {g.s, NULL};
        assert_null(pgconn_each_statement(g.s, check_head, last));
        unguard(&g);
    }
}

/* pgconn_find_lock_release: "WORD|text at the statement, to 14 bytes", or
 * "-": the statements that would release ferry's migration lock. */
static const char *scan_unlock(const char *sql)
{
    static char out[128];
    guarded g = guard(sql, strlen(sql));
    char word[32] = "";
    const char *p = pgconn_find_lock_release(g.s, word, sizeof word);
    if (!p) snprintf(out, sizeof out, "-");
    else snprintf(out, sizeof out, "%s|%.14s", word, p);
    unguard(&g);
    return out;
}

static void test_lock_release(void **state)
{
    (void)state;
    assert_string_equal(scan_unlock("DISCARD ALL"), "DISCARD ALL|DISCARD ALL");
    assert_string_equal(scan_unlock("discard /* x */ all;"), "DISCARD ALL|discard /* x *");
    assert_string_equal(scan_unlock("SET x = 1; SELECT pg_advisory_unlock_all()"),
                        "pg_advisory_unlock_all()|SELECT pg_advi");
    assert_string_equal(scan_unlock("select pg_catalog . PG_ADVISORY_UNLOCK_ALL ( )"),
                        "pg_advisory_unlock_all()|select pg_cata");
    /* not those: other DISCARDs, the words in strings, comments, a name */
    assert_string_equal(scan_unlock("DISCARD PLANS; DISCARD TEMP"), "-");
    assert_string_equal(scan_unlock("SELECT 'DISCARD ALL', 'pg_advisory_unlock_all()'"), "-");
    assert_string_equal(scan_unlock("-- DISCARD ALL\nSELECT 1 /* pg_advisory_unlock_all() */"), "-");
    assert_string_equal(scan_unlock("SELECT pg_advisory_unlock_all_x()"), "-");
    assert_string_equal(scan_unlock("SELECT pg_advisory_unlock(1)"), "-");
    assert_string_equal(scan_unlock(""), "-");
    /* the buffer for the word: cut, NUL-terminated */
    char w[5];
    assert_non_null(pgconn_find_lock_release("DISCARD ALL", w, sizeof w));
    assert_string_equal(w, "DISC");
}

/* pgconn_find_session_reset: where RESET ALL or DISCARD ALL starts, or NULL */
static void test_session_reset(void **state)
{
    (void)state;
    const char *sql = "SET work_mem = 4096; reset /* x */ ALL; SELECT 1";
    assert_ptr_equal(pgconn_find_session_reset(sql, NULL), sql + 21);
    const char *discard = "  DISCARD ALL";
    assert_ptr_equal(pgconn_find_session_reset(discard, NULL), discard + 2);
    assert_non_null(pgconn_find_session_reset("discard all", NULL));
    /* not those: one setting, other DISCARDs, the words in strings or comments */
    assert_null(pgconn_find_session_reset("RESET work_mem; RESET ROLE; DISCARD PLANS; DISCARD TEMP", NULL));
    assert_null(pgconn_find_session_reset("SELECT 'RESET ALL'; -- DISCARD ALL\n/* RESET ALL */ SELECT $$DISCARD ALL$$", NULL));
    assert_null(pgconn_find_session_reset("SELECT reset, all_x FROM t", NULL));
    assert_null(pgconn_find_session_reset("", NULL));
    /* whether a statement follows it: blanks, comments and empty statements do not count */
    int followed = -1;
    assert_non_null(pgconn_find_session_reset("RESET ALL ; ; -- done\n", &followed));
    assert_int_equal(followed, 0);
    assert_non_null(pgconn_find_session_reset("SET x = 1; RESET ALL; UPDATE t SET a = 1", &followed));
    assert_int_equal(followed, 1);
    assert_null(pgconn_find_session_reset("SELECT 1; SELECT 2", &followed));
    assert_int_equal(followed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_command),
        cmocka_unit_test(test_not_transaction_control),
        cmocka_unit_test(test_statement_position_and_line),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_quoted_names),
        cmocka_unit_test(test_dollar_quotes),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_begin_atomic),
        cmocka_unit_test(test_word_buffer),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_random_text),
        cmocka_unit_test(test_one_megabyte),
        cmocka_unit_test(test_savepoint_names),
        cmocka_unit_test(test_savepoint_every_prefix),
        cmocka_unit_test(test_each_statement),
        cmocka_unit_test(test_each_statement_random),
        cmocka_unit_test(test_lock_release),
        cmocka_unit_test(test_session_reset),
    };
    return cmocka_run_group_tests_name("sqlscan", tests, NULL, NULL);
}
