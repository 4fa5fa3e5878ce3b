/* Unit tests for src/pgconn.c: pgconn_redact, which keeps a password out of
 * every message ferry prints (libpq's errors may quote the connection
 * string, or a piece of it when it reads the string differently from the
 * user). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgconn.h"

typedef void redactor(const char *, const char *, char *, size_t);

static const char *redact_with(redactor *fn, const char *conninfo, const char *msg)
{
    static char out[2048];
    fn(conninfo, msg, out, sizeof out);
    return out;
}

static const char *redact(const char *conninfo, const char *msg) { return redact_with(pgconn_redact, conninfo, msg); }
static const char *redact_server(const char *conninfo, const char *msg)
{
    return redact_with(pgconn_redact_server, conninfo, msg);
}

static void test_plain_password(void **state)
{
    (void)state;
    assert_string_equal(redact("postgresql://app:s3cret-pw@db/x", "auth failed for s3cret-pw"), "auth failed for ***");
    assert_string_equal(redact("host=db password=s3cret-pw", "bad: s3cret-pw"), "bad: ***");
    assert_string_equal(redact("host=db password='s3cret pw'", "bad: s3cret pw"), "bad: ***");
    assert_string_equal(redact("postgresql://app@db/x", "nothing to hide"), "nothing to hide");
    assert_string_equal(redact(NULL, "no conninfo\n"), "no conninfo");
}

/* An '@' in a URL's password that is not percent-encoded: libpq ends the
 * user info at the first '@' and takes the rest for the host. */
static void test_url_password_with_at(void **state)
{
    (void)state;
    const char *ci = "postgresql://app:Zq9@xK7wSecret@127.0.0.1:5432/ferry";
    assert_string_equal(redact(ci, "could not translate host name \"xK7wSecret@127.0.0.1\" to address"),
                        "could not translate host name \"***@127.0.0.1\" to address");
    assert_string_equal(redact(ci, "password for Zq9 failed"), "password for *** failed");
}

/* A '/' or '?' in it: libpq ends the authority there and reads
 * "app:Ab12" as host and port. */
static void test_url_password_with_slash_or_question_mark(void **state)
{
    (void)state;
    assert_string_equal(redact("postgresql://app:Ab12/xK7wSecret@127.0.0.1:5432/ferry",
                               "invalid integer value \"Ab12\" for connection option \"port\""),
                        "invalid integer value \"***\" for connection option \"port\"");
    assert_string_equal(redact("postgresql://app:Ab12/xK7wSecret@127.0.0.1:5432/ferry",
                               "database \"xK7wSecret@127.0.0.1:5432/ferry\" does not exist"),
                        "database \"***@127.0.0.1:5432/ferry\" does not exist");
    assert_string_equal(redact("postgresql://app:Ab12?xK7wSecret@127.0.0.1:5432/ferry",
                               "invalid URI query parameter: \"xK7wSecret@127.0.0.1:5432/ferry\""),
                        "invalid URI query parameter: \"***@127.0.0.1:5432/ferry\"");
}

/* Pieces of such a password that hold percent-encoded characters (encoded
 * by a tool that leaves '/' alone, as Python's urllib.parse.quote does):
 * libpq decodes each piece it reads as a port, host or database before
 * quoting it, so the decoded piece is redacted too. */
static void test_url_password_pieces_percent_decoded(void **state)
{
    (void)state;
    assert_string_equal(redact("postgresql://app:Sec%40ret/Pa%3Fss%23w0rd@127.0.0.1:5432/ferry",
                               "invalid integer value \"Sec@ret\" for connection option \"port\""),
                        "invalid integer value \"***\" for connection option \"port\"");
    assert_string_equal(redact("postgresql://app:1234/Pa%3Fss%23w0rd@127.0.0.1:5432/ferry",
                               "FATAL:  database \"Pa?ss#w0rd@127.0.0.1:5432/ferry\" does not exist"),
                        "FATAL:  database \"***@127.0.0.1:5432/ferry\" does not exist");
    assert_string_equal(redact("postgresql://app:Sec%2Fret@Pa%23ss@127.0.0.1:5432/ferry",
                               "could not translate host name \"Pa#ss@127.0.0.1\" to address"),
                        "could not translate host name \"***@127.0.0.1\" to address");
    /* a short decoded piece goes only as libpq quotes a value */
    assert_string_equal(redact("postgresql://app:A%40/xK7wSecret@127.0.0.1:5432/ferry",
                               "invalid integer value \"A@\" for connection option \"port\": A@b"),
                        "invalid integer value \"***\" for connection option \"port\": A@b");
}

/* An unquoted space in password=: libpq takes the next word for a keyword. */
static void test_keyword_password_with_space(void **state)
{
    (void)state;
    assert_string_equal(redact("host=h user=app password=Zq9 xK7wSecret",
                               "missing \"=\" after \"xK7wSecret\" in connection info string"),
                        "missing \"=\" after \"***\" in connection info string");
    assert_string_equal(redact("host=h password=Zq9 xK7wSecret port=5432 user=app",
                               "missing \"=\" after \"xK7wSecret\"; Zq9"),
                        "missing \"=\" after \"***\"; ***");
}

/* A piece shorter than 3 bytes only as libpq quotes it; a word with '='
 * that is no libpq keyword is more of the password. */
static void test_short_pieces_and_fake_keywords(void **state)
{
    (void)state;
    assert_string_equal(redact("postgresql://app:Ab/xK7wSecret@127.0.0.1:5432/ferry",
                               "invalid integer value \"Ab\" for connection option \"port\": Abc"),
                        "invalid integer value \"***\" for connection option \"port\": Abc");
    assert_string_equal(redact("host=h password=Zq9 xK7w=Secret", "invalid connection option \"xK7w\""),
                        "invalid connection option \"***\"");
}

/* A value libpq reads as it is (quoted), or one followed by "keyword =",
 * is not cut: ordinary messages keep their words. */
static void test_valid_passwords_are_not_cut(void **state)
{
    (void)state;
    assert_string_equal(redact("host=h password='the cat and dog'",
                               "relation \"other_things\" does not exist; the cat and dog"),
                        "relation \"other_things\" does not exist; ***");
    assert_string_equal(redact("host=h password=pw1 user = postgres",
                               "relation \"users\" does not exist for user \"postgres\""),
                        "relation \"users\" does not exist for user \"postgres\"");
}

/* An unquoted password with '=' is one value to libpq: its pieces at '='
 * are not cut out of messages ("pass" in "password"). */
static void test_password_with_equals_is_one_word(void **state)
{
    (void)state;
    assert_string_equal(redact("host=h password=my=pass user=app",
                               "FATAL:  password authentication failed for user \"app\": my=pass"),
                        "FATAL:  password authentication failed for user \"app\": ***");
}

/* A query string with an '@' (user=me@corp.com) is not a password: the
 * message keeps the port and the words it quotes. */
static void test_query_with_at_is_not_a_password(void **state)
{
    (void)state;
    assert_string_equal(redact("postgresql://localhost:5432/mydb?user=me@corp.com",
                               "port 5432 failed: password authentication failed for user \"me@corp.com\""),
                        "port 5432 failed: password authentication failed for user \"me@corp.com\"");
}

/* the option of a COPY ... FROM STDIN that changes how ferry's text rows
 * are read, as copy_format_option names it, or "" */
static const char *format_option(const char *sql)
{
    static char word[64];
    return pgconn_copy_format_option(sql, 0, word, sizeof word) ? word : "";
}

static void test_copy_format_option(void **state)
{
    (void)state;
    /* what ferry writes as it writes it: accepted */
    assert_string_equal(format_option("COPY t FROM STDIN"), "");
    assert_string_equal(format_option("COPY t (a, b) FROM STDIN WITH (FORMAT text)"), "");
    assert_string_equal(format_option("COPY t FROM STDIN (FORMAT 'text', FREEZE)"), "");
    assert_string_equal(format_option("COPY t FROM STDIN WITH (FREEZE true, ENCODING 'UTF8')"), "");
    assert_string_equal(format_option("COPY t FROM STDIN WHERE a IS NOT NULL AND b <> 'header'"), "");
    assert_string_equal(format_option("COPY t FROM STDIN (FREEZE) WHERE delimiter IS NULL"), "");
    assert_string_equal(format_option("COPY \"null\" (\"header\") FROM STDIN"), "");
    /* what reads them otherwise: the option named */
    assert_string_equal(format_option("COPY t FROM STDIN WITH (HEADER true)"), "HEADER");
    assert_string_equal(format_option("COPY t FROM STDIN (NULL '')"), "NULL");
    assert_string_equal(format_option("COPY t FROM STDIN WITH (FORMAT csv)"), "FORMAT csv");
    assert_string_equal(format_option("copy t from stdin with (format \"binary\")"), "FORMAT binary");
    assert_string_equal(format_option("COPY t FROM STDIN (DELIMITER ',')"), "DELIMITER");
    assert_string_equal(format_option("COPY t FROM STDIN WITH CSV HEADER"), "CSV");
    assert_string_equal(format_option("COPY t FROM STDIN BINARY"), "BINARY");
    assert_string_equal(format_option("COPY t FROM STDIN (FORMAT text, ESCAPE '\\')"), "ESCAPE");
    assert_string_equal(format_option("COPY t FROM STDIN (QUOTE '\"')"), "QUOTE");
    assert_string_equal(format_option("COPY t FROM STDIN (FORCE_NULL (a))"), "FORCE_NULL");
    assert_string_equal(format_option("COPY t FROM STDIN (DEFAULT 'd')"), "DEFAULT");
    assert_string_equal(format_option("COPY t FROM STDIN /* null */ (Header)"), "HEADER");
    /* a quoted option name is the option as the server reads it */
    assert_string_equal(format_option("COPY t FROM STDIN WITH (\"header\" true)"), "HEADER");
    assert_string_equal(format_option("COPY t FROM STDIN (\"null\" '')"), "NULL");
    assert_string_equal(format_option("COPY t FROM STDIN (\"format\" 'csv')"), "FORMAT csv");
    assert_string_equal(format_option("COPY t FROM STDIN (\"format\" text, FREEZE)"), "");
    assert_string_equal(format_option("COPY t FROM STDIN (\"HEADER\" true)"), "");   /* no option: the server refuses it */
    assert_string_equal(format_option("COPY t FROM STDIN (FREEZE) WHERE \"null\" > 1"), "");
    /* the old syntax's DELIMITERS (plural, USING optional) is DELIMITER:
     * it was taken, and the rows read with ',' between columns */
    assert_string_equal(format_option("COPY t FROM STDIN USING DELIMITERS ','"), "DELIMITERS");
    assert_string_equal(format_option("COPY t FROM STDIN DELIMITERS '|'"), "DELIMITERS");
    /* ferry sends UTF-8: another ENCODING read it as that one, é as Ã©,
     * without an error; UTF8 by any of its names is taken */
    assert_string_equal(format_option("COPY t FROM STDIN (ENCODING 'LATIN1')"), "ENCODING LATIN1");
    assert_string_equal(format_option("COPY t FROM STDIN WITH ENCODING 'win1252'"), "ENCODING win1252");
    assert_string_equal(format_option("COPY t FROM STDIN (FREEZE, encoding sql_ascii)"), "ENCODING sql_ascii");
    assert_string_equal(format_option("COPY t FROM STDIN (ENCODING)"), "ENCODING");
    assert_string_equal(format_option("COPY t FROM STDIN (ENCODING 'utf-8')"), "");
    assert_string_equal(format_option("COPY t FROM STDIN (ENCODING \"Unicode\", FREEZE)"), "");
    assert_string_equal(format_option("COPY t FROM STDIN WITH ENCODING 'UTF_8'"), "");
    assert_string_equal(format_option("COPY t FROM STDIN (encoding utf8)"), "");
}

/* what pgconn_copy_target reads of sql: "table.parts|col,col" ("-" when
 * it takes it for no COPY ... FROM STDIN), each name as written */
struct names { char table[128], cols[128]; };

static void add_name(int column, const char *name, size_t len, void *ud)
{
    struct names *n = ud;
    char *out = column ? n->cols : n->table;
    size_t at = strlen(out);
    snprintf(out + at, 128 - at, "%s%.*s", at ? (column ? "," : ".") : "", (int)len, name);
}

static const char *copy_target(const char *sql)
{
    static char out[260];
    struct names n = {"", ""};
    if (!pgconn_copy_target(sql, add_name, &n)) return "-";
    snprintf(out, sizeof out, "%s|%s", n.table, n.cols);
    return out;
}

static void test_copy_target(void **state)
{
    (void)state;
    assert_string_equal(copy_target("COPY t FROM STDIN"), "t|");
    assert_string_equal(copy_target("COPY \"Message\" (id, conversation_id) FROM STDIN"), "\"Message\"|id,conversation_id");
    assert_string_equal(copy_target("copy /* x */ public . \"My\"\"T\"(\"a,b\" , c) -- y\n from stdin with (freeze)"),
                        "public.\"My\"\"T\"|\"a,b\",c");
    assert_string_equal(copy_target("COPY db.s.t (a) FROM STDIN; DELETE FROM d"), "db.s.t|a");
    assert_string_equal(copy_target("COPY t (a,) FROM STDIN"), "-");
    assert_string_equal(copy_target("COPY t () FROM STDIN"), "-");
    assert_string_equal(copy_target("COPY t (a b) FROM STDIN"), "-");
    assert_string_equal(copy_target("COPY t (a FROM STDIN"), "-");
    assert_string_equal(copy_target("COPY t TO STDOUT"), "-");
    assert_string_equal(copy_target("COPY (SELECT 1) TO STDOUT"), "-");
    assert_string_equal(copy_target("COPY t FROM '/tmp/x'"), "-");
    assert_string_equal(copy_target("DELETE FROM t"), "-");
    assert_string_equal(copy_target("COPY \"unterminated FROM STDIN"), "-");
    assert_string_equal(copy_target(""), "-");
}

static void test_is_copy_from_stdin(void **state)
{
    (void)state;
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN", 0));
    assert_true(pgconn_is_copy_from_stdin("  copy public.t (a, \"b c\") from stdin with (format text)", 0));
    assert_true(pgconn_is_copy_from_stdin("-- load\n/* a /* nested */ comment */\n\tCopy \"My\"\"T\" FROM STDIN", 0));
    assert_true(pgconn_is_copy_from_stdin("COPY \"Message\" (id, conversation_id) FROM STDIN", 0));
    assert_true(pgconn_is_copy_from_stdin("COPY t /* c */ FROM /* c */ STDIN;", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY(SELECT 1) TO STDOUT", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t TO STDOUT", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM PROGRAM 'seq 1 5'", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM '/tmp/x'", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDINX", 0));
    assert_false(pgconn_is_copy_from_stdin("DELETE FROM d", 0));
    assert_false(pgconn_is_copy_from_stdin("copyx FROM STDIN", 0));
    assert_false(pgconn_is_copy_from_stdin("/* COPY t FROM STDIN */ DELETE FROM d", 0));
    assert_false(pgconn_is_copy_from_stdin("-- COPY t FROM STDIN", 0));
    assert_false(pgconn_is_copy_from_stdin("/* unterminated COPY", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY \"unterminated FROM STDIN", 0));
    assert_false(pgconn_is_copy_from_stdin("", 0));
    /* COPY goes out as a simple query: one statement, nothing after it */
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER ';', NULL '')  ; -- done\n", 0));
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN (FORMAT csv, QUOTE '''', ESCAPE E'\\'')", 0));
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER e'\\t')", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN; DELETE FROM d", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER ';'); DELETE FROM d", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER E'\\';'); DELETE FROM d", 0));
    /* (one statement: the E string runs to the last quote) */
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER E'\\'); DELETE FROM d; --')", 0));
    /* a plain string read as the session reads it (standard_conforming_strings) */
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER '\\'); DELETE FROM d; --')", 0));
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER '\\'); DELETE FROM d; --')", 1));
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (NULL '\\N')", 0));
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (FORMAT csv, ESCAPE '\\')", 0));
    assert_true(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (NULL U&'\\0041')", 0));
    /* an E prefix only as a word of its own: QUOTE'\' is a plain string */
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (FORMAT csv, DELIMITER E'\\t', QUOTE'\\'); DELETE FROM t; --')", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER $$;$$); DELETE FROM d", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN WITH (DELIMITER 'unterminated", 0));
    assert_false(pgconn_is_copy_from_stdin("COPY t FROM STDIN /* unterminated", 0));
}

/* A password of any length (it was left whole from 1024 bytes on). */
static void test_long_password(void **state)
{
    (void)state;
    char ci[3000], msg[3000], want[200];
    char pw[2001];
    memset(pw, 'S', 2000);
    pw[2000] = '\0';
    snprintf(ci, sizeof ci, "postgresql://u:%s%%zz@127.0.0.1:1/x", pw);
    snprintf(msg, sizeof msg, "invalid percent-encoded token: \"%s%%zz\"", pw);
    snprintf(want, sizeof want, "invalid percent-encoded token: \"***\"");
    assert_string_equal(redact(ci, msg), want);
}

/* A bare database name is no secret: the server's "does not exist" must
 * name it (it was "***"). */
static void test_bare_dbname_is_shown(void **state)
{
    (void)state;
    assert_string_equal(redact("crm7", "FATAL:  database \"crm7\" does not exist"),
                        "FATAL:  database \"crm7\" does not exist");
    assert_string_equal(redact("host=db dbname=crm7", "FATAL:  database \"crm7\" does not exist"),
                        "FATAL:  database \"crm7\" does not exist");
    /* a percent-encoded keyword (pass%77ord) in a URL libpq cannot parse:
     * its error quotes the whole string */
    assert_string_equal(redact("postgresql://[::1/ferry?pass%77ord=Sup3r-Secret-pw",
                               "invalid URI: \"postgresql://[::1/ferry?pass%77ord=Sup3r-Secret-pw\""),
                        "invalid URI: \"***\"");
    assert_string_equal(redact("postgresql://h/db?user=u&pass%77ord=Sup3r-Secret-pw", "bad: Sup3r-Secret-pw"), "bad: ***");
    /* ...whose value libpq cannot decode: its error quotes the value as
     * written, not the whole string (the parsed value is none) */
    assert_string_equal(redact("postgresql://h/db?user=u&pass%77ord=Ab%zzSecret-pw",
                               "invalid percent-encoded token: \"Ab%zzSecret-pw\""),
                        "invalid percent-encoded token: \"***\"");
    /* a string that can hold a password is still replaced whole */
    assert_string_equal(redact("postgresql://u:pw@db/x x", "bad: postgresql://u:pw@db/x x"), "bad: ***");
}

/* The server's own errors: it never sees the password, so a short one
 * (PGPASSWORD=5, password=1234) must not garble keys and SQLSTATEs; a long
 * one (that only data could have put there) is still replaced. */
static void test_server_text(void **state)
{
    (void)state;
    const char *dup = "duplicate key value violates unique constraint \"t_pkey\" (Key (id)=(1234) already exists.) [SQLSTATE 23505]";
    assert_string_equal(redact_server("host=db password=1234", dup), dup);
    assert_string_equal(redact_server("crm7", "relation \"crm7_archive\" does not exist [SQLSTATE 42P01]"),
                        "relation \"crm7_archive\" does not exist [SQLSTATE 42P01]");
    assert_string_equal(redact_server("postgresql://app:s3cret-pw@db/x", "value s3cret-pw too long [SQLSTATE 22001]"),
                        "value *** too long [SQLSTATE 22001]");
    setenv("PGPASSWORD", "5", 1);
    assert_string_equal(redact_server("host=db", dup), dup);
    assert_string_equal(redact("host=db", "password 5 rejected"), "password *** rejected");   /* libpq's text: all */
    setenv("PGPASSWORD", "long-env-secret", 1);
    assert_string_equal(redact_server("host=db", "saw long-env-secret [SQLSTATE 22001]"), "saw *** [SQLSTATE 22001]");
    unsetenv("PGPASSWORD");
}

/* ferry's own output: the server's rule (8 bytes or more, conninfo's or
 * PGPASSWORD's), newlines kept (a status table, a usage text). */
static void test_own_output(void **state)
{
    (void)state;
    assert_string_equal(redact_with(pgconn_redact_output, "postgresql://app:s3cret-pw@db/x",
                                    "unknown migration s3cret-pw\nnext s3cret-pw\n"),
                        "unknown migration ***\nnext ***\n");
    assert_string_equal(redact_with(pgconn_redact_output, "postgresql://app:abc@db/x", "unknown migration abc\n"),
                        "unknown migration abc\n");
    assert_string_equal(redact_with(pgconn_redact_output, "postgresql://app:s3cret-pw@db/x",
                                    "the string postgresql://app:s3cret-pw@db/x"),
                        "the string postgresql://app:***@db/x");
    setenv("PGPASSWORD", "long-env-secret", 1);
    assert_string_equal(redact_with(pgconn_redact_output, NULL, "--jobs needs a whole number >= 1, not long-env-secret"),
                        "--jobs needs a whole number >= 1, not ***");
    setenv("PGPASSWORD", "5", 1);
    assert_string_equal(redact_with(pgconn_redact_output, NULL, "[SQLSTATE 23505]"), "[SQLSTATE 23505]");
    /* one password inside the other: the longer goes whole, not the shorter
     * out of its middle with the rest of the longer left showing */
    setenv("PGPASSWORD", "xs3cret-pw-env", 1);
    assert_string_equal(redact_with(pgconn_redact_output, "postgresql://app:s3cret-pw@db/x", "saw xs3cret-pw-env"),
                        "saw ***");
    assert_string_equal(redact_with(pgconn_redact_server, "postgresql://app:s3cret-pw@db/x", "saw xs3cret-pw-env"),
                        "saw ***");
    assert_string_equal(redact_with(pgconn_redact, "postgresql://app:s3cret-pw@db/x", "saw xs3cret-pw-env"),
                        "saw ***");
    assert_string_equal(redact_with(pgconn_redact_output, "host=db password=s3cret-pw-and-more", "saw s3cret-pw-and-more"),
                        "saw ***");
    unsetenv("PGPASSWORD");
}

/* pgconn_each_output_password: the values pgconn_redact_output replaces,
 * each given once (ferry's output looks for them before it redacts). */
static char seen[4][64];
static int nseen;
static void collect(const char *pw, void *ud)
{
    (void)ud;
    if (nseen < 4) snprintf(seen[nseen++], sizeof seen[0], "%s", pw);
}

static void test_each_output_password(void **state)
{
    (void)state;
    unsetenv("PGPASSWORD");
    nseen = 0;
    assert_int_equal(pgconn_each_output_password("postgresql://app:s3cret-pw@db/x", collect, NULL), 1);
    assert_int_equal(nseen, 1);
    assert_string_equal(seen[0], "s3cret-pw");
    nseen = 0;
    assert_int_equal(pgconn_each_output_password("host=db password=abc", collect, NULL), 0);   /* short: kept */
    assert_int_equal(pgconn_each_output_password("not a conninfo '", collect, NULL), 0);
    assert_int_equal(nseen, 0);
    setenv("PGPASSWORD", "long-env-secret", 1);
    assert_int_equal(pgconn_each_output_password("host=db password='s3cret pw!'", collect, NULL), 2);
    assert_string_equal(seen[0], "long-env-secret");            /* the longer first */
    assert_string_equal(seen[1], "s3cret pw!");
    nseen = 0;
    assert_int_equal(pgconn_each_output_password("host=db password='a-much-longer-s3cret'", collect, NULL), 2);
    assert_string_equal(seen[0], "a-much-longer-s3cret");
    assert_string_equal(seen[1], "long-env-secret");
    nseen = 0;
    assert_int_equal(pgconn_each_output_password(NULL, collect, NULL), 1);
    assert_string_equal(seen[0], "long-env-secret");
    setenv("PGPASSWORD", "short", 1);
    nseen = 0;
    assert_int_equal(pgconn_each_output_password(NULL, collect, NULL), 0);
    assert_int_equal(nseen, 0);
    unsetenv("PGPASSWORD");
}

/* pgconn_scrub_passwords: x's over the password as written, in a copy of
 * the text it reads (as ferry scrubs its argument list); nothing else
 * moves. */
static const char *scrub(const char *s)
{
    static char out[512];
    snprintf(out, sizeof out, "%s", s);
    pgconn_scrub_passwords(s, out);
    return out;
}

static void test_scrub(void **state)
{
    (void)state;
    /* a URL's user info, percent-encoded or with an '@' left as it is */
    assert_string_equal(scrub("postgresql://app:s3cret@db:5432/x"), "postgresql://app:xxxxxx@db:5432/x");
    assert_string_equal(scrub("postgres://app:p%40ss@db/x?sslmode=require"), "postgres://app:xxxxxx@db/x?sslmode=require");
    assert_string_equal(scrub("postgresql://app:Zq9@xK7wSecret@127.0.0.1/x"), "postgresql://app:xxxxxxxxxxxxxx@127.0.0.1/x");
    /* a URL's query: password=, a percent-encoded keyword, and both with
     * the user info */
    assert_string_equal(scrub("postgresql://db/x?user=u&password=s3cret&sslmode=disable"),
                        "postgresql://db/x?user=u&password=xxxxxx&sslmode=disable");
    assert_string_equal(scrub("postgresql://db/x?pass%77ord=Se%2Dcret&user=u"),
                        "postgresql://db/x?pass%77ord=xxxxxxxxx&user=u");
    assert_string_equal(scrub("postgresql://db/x?%70assword=pw"), "postgresql://db/x?%70assword=xx");
    assert_string_equal(scrub("postgresql://u:one@db/x?password=two"), "postgresql://u:xxx@db/x?password=xxx");
    /* key=value: blanks around '=', a word with '=' in it, a blank inside
     * an unquoted password (libpq would split it: all of it goes) */
    assert_string_equal(scrub("host=db password=s3cret port=5432"), "host=db password=xxxxxx port=5432");
    assert_string_equal(scrub("host=db password = s3cret"), "host=db password = xxxxxx");
    assert_string_equal(scrub("password=my=pass host=db"), "password=xxxxxxx host=db");
    assert_string_equal(scrub("password=Zq9 xK7wSecret port=5432"), "password=xxxxxxxxxxxxxx port=5432");
    /* quoted: inside the quotes, backslash escapes included; unterminated:
     * to the end; a backslash at the very end */
    assert_string_equal(scrub("host=db password='p w\\'q' port=1"), "host=db password='xxxxxx' port=1");
    assert_string_equal(scrub("password='a\\\\' user=u"), "password='xxx' user=u");
    assert_string_equal(scrub("host=db password='abc"), "host=db password='xxx");
    assert_string_equal(scrub("password='ab\\"), "password='xxx");
    assert_string_equal(scrub("password=''"), "password=''");
    /* every occurrence (sslpassword is a secret too) */
    assert_string_equal(scrub("password=a password=bb sslpassword=ccc"), "password=x password=xx sslpassword=xxx");
    /* nothing to scrub */
    assert_string_equal(scrub(""), "");
    assert_string_equal(scrub("crm7"), "crm7");
    assert_string_equal(scrub("host=db dbname=x user=password"), "host=db dbname=x user=password");
    assert_string_equal(scrub("postgresql://app@db/x"), "postgresql://app@db/x");
    assert_string_equal(scrub("postgresql://app:@db/x"), "postgresql://app:@db/x");
    assert_string_equal(scrub("postgresql:///x?host=/tmp&user=u"), "postgresql:///x?host=/tmp&user=u");
    assert_string_equal(scrub("postgresql://db/x?user=u@corp"), "postgresql://db/x?user=u@corp");
    /* a string that is no connection string at all */
    assert_string_equal(scrub("migrations/20250101_x"), "migrations/20250101_x");
}

/* A URL inside a connection string -- a dbname= value, which libpq reads
 * as a database's name (it expands a connection string in dbname one
 * level only), so the server's "database ... does not exist" quotes it
 * whole -- or after other words of a command-line argument: its
 * user:password@ is a password as one at the start is. */
static void test_url_inside_a_string(void **state)
{
    (void)state;
    const char *ci = "dbname=postgresql://ferry_pw:Sup3r-Secret-pw@127.0.0.1:5432/ferry";
    assert_string_equal(redact(ci, "FATAL:  database \"postgresql://ferry_pw:Sup3r-Secret-pw@127.0.0.1:5432/ferry\" "
                                   "does not exist"),
                        "FATAL:  database \"postgresql://ferry_pw:***@127.0.0.1:5432/ferry\" does not exist");
    assert_int_equal(pgconn_holds_password(ci), 1);
    assert_int_equal(pgconn_holds_password("x postgres://app:s3cret@db/x"), 1);
    assert_int_equal(pgconn_holds_password("dbname=postgresql://app@db/x"), 0);
    char out[256];
    pgconn_redact_arg(ci, "unknown migration dbname=postgresql://ferry_pw:Sup3r-Secret-pw@127.0.0.1:5432/ferry",
                      out, sizeof out);
    assert_string_equal(out, "unknown migration dbname=postgresql://ferry_pw:***@127.0.0.1:5432/ferry");
    pgconn_redact_arg("x postgres://app:s3cret@db/x", "unknown migration x postgres://app:s3cret@db/x", out, sizeof out);
    assert_string_equal(out, "unknown migration x postgres://app:***@db/x");
    /* the server cuts a name to 63 bytes: the URL taken for a database's
     * name may end inside the password, whose beginning is no less secret */
    assert_string_equal(redact("dbname=postgresql://a_rather_long_application_user_name:Sup3r-Secret-pw@127.0.0.1/ferry",
                               "FATAL:  database \"postgresql://a_rather_long_application_user_name:Sup3r-Secret-p\" "
                               "does not exist"),
                        "FATAL:  database \"postgresql://a_rather_long_application_user_name:***\" does not exist");
    assert_string_equal(redact("dbname='postgresql://127.0.0.1/a_long_database_name_26?password=Sup3r-Secret-pw'",
                               "FATAL:  database \"postgresql://127.0.0.1/a_long_database_name_26?password=Sup3r-S\" "
                               "does not exist"),
                        "FATAL:  database \"postgresql://127.0.0.1/a_long_database_name_26?password=***\" "
                        "does not exist");
    /* the argument list's scrub: the same spans */
    assert_string_equal(scrub("dbname=postgresql://app:s3cret@db/x?pass%77ord=two"),
                        "dbname=postgresql://app:xxxxxx@db/x?pass%77ord=xxx");
    assert_string_equal(scrub("-qpostgres://app:s3cret@db/x"), "-qpostgres://app:xxxxxx@db/x");
    assert_string_equal(scrub("host=db dbname=postgresql://app@db/x"), "host=db dbname=postgresql://app@db/x");
}

static const char *one_line(const char *msg)
{
    static char out[512];
    pgconn_one_line(msg, out, sizeof out);
    return out;
}

/* libpq's connection errors, several lines -- one per host of a multi-host
 * string, and its advice on a line of its own -- made one line: the
 * reason is often on a later line (the host that answered), and so is what
 * to do. */
static void test_one_line(void **state)
{
    (void)state;
    assert_string_equal(one_line("connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n"
                                 "\tIs the server running on that host and accepting TCP/IP connections?\n"
                                 "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password "
                                 "authentication failed for user \"app\"\n"),
                        "connection to server at \"127.0.0.1\", port 1 failed: Connection refused; Is the server "
                        "running on that host and accepting TCP/IP connections?; connection to server at "
                        "\"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"app\"");
    assert_string_equal(one_line("connection to server at \"db\" (10.0.0.5), port 5432 failed: root certificate file "
                                 "\"/home/u/.postgresql/root.crt\" does not exist\nEither provide the file or change "
                                 "sslmode to disable server certificate verification.\n"),
                        "connection to server at \"db\" (10.0.0.5), port 5432 failed: root certificate file "
                        "\"/home/u/.postgresql/root.crt\" does not exist; Either provide the file or change sslmode "
                        "to disable server certificate verification.");
    assert_string_equal(one_line("one line\n"), "one line");
    assert_string_equal(one_line("a\r\n\n  b\n\n"), "a; b");
    assert_string_equal(one_line(""), "");
    /* cut to the buffer, never past it */
    char small[8];
    pgconn_one_line("abc\ndefgh", small, sizeof small);
    assert_string_equal(small, "abc; de");
}

static const char *connect_error(const char *msg)
{
    static char out[512];
    pgconn_connect_error(msg, out, sizeof out);
    return out;
}

/* A connection's error at PQERRORS_VERBOSE made libpq's default text, each
 * server message's SQLSTATE after it: the one place libpq tells the code of
 * a session the server refused, whose words are in the server's language. */
static void test_connect_error(void **state)
{
    (void)state;
    assert_string_equal(connect_error("connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  53300: "
                                      "sorry, too many clients already\nLOCATION:  InitProcess, proc.c:363\n"),
                        "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  sorry, too many "
                        "clients already [SQLSTATE 53300]\n");
    /* German, several hosts, one without a server's word, a DETAIL kept */
    assert_string_equal(connect_error("connection to server at \"a\", port 1 failed: Connection refused\n"
                                      "\tIs the server running on that host and accepting TCP/IP connections?\n"
                                      "connection to server at \"b\", port 5432 failed: FATAL:  53300: zu viele "
                                      "Verbindungen von Rolle \xc2\xbb" "app\xc2\xab\nDETAIL:  d\n"
                                      "LOCATION:  InitializeSessionUserId, miscinit.c:742\n"),
                        "connection to server at \"a\", port 1 failed: Connection refused\n"
                        "\tIs the server running on that host and accepting TCP/IP connections?\n"
                        "connection to server at \"b\", port 5432 failed: FATAL:  zu viele Verbindungen von Rolle "
                        "\xc2\xbb" "app\xc2\xab [SQLSTATE 53300]\nDETAIL:  d\n");
    /* the other lines only that verbosity writes go too */
    assert_string_equal(connect_error("x failed: ERROR:  42P01: no\nSCHEMA NAME:  s\nTABLE NAME:  t\n"
                                      "COLUMN NAME:  c\nDATATYPE NAME:  d\nCONSTRAINT NAME:  k\nLOCATION:  f, g.c:1"),
                        "x failed: ERROR:  no [SQLSTATE 42P01]\n");
    /* a message with a line break in it (a database name ending with the
     * newline of a DATABASE_URL read from a file): the break written \n
     * (\r too), the SQLSTATE after the whole message, not inside it */
    assert_string_equal(connect_error("connection to server at \"h\", port 5 failed: FATAL:  3D000: database \"op\n"
                                      "\" does not exist\nLOCATION:  InitPostgres, postinit.c:1\n"),
                        "connection to server at \"h\", port 5 failed: FATAL:  database \"op\\n\" does not exist "
                        "[SQLSTATE 3D000]\n");
    assert_string_equal(connect_error("x failed: FATAL:  3D000: database \"op\r\n\" does not exist\n"
                                      "LOCATION:  InitPostgres, postinit.c:1"),
                        "x failed: FATAL:  database \"op\\r\\n\" does not exist [SQLSTATE 3D000]\n");
    assert_string_equal(connect_error("a failed: FATAL:  3D000: x\ny\n\nz\nDETAIL:  d\nLOCATION:  f, g.c:1\n"
                                      "connection to server at \"b\" failed: FATAL:  28P01: pw\nLOCATION:  f, g.c:2\n"),
                        "a failed: FATAL:  x\\ny\\n\\nz [SQLSTATE 3D000]\nDETAIL:  d\n"
                        "connection to server at \"b\" failed: FATAL:  pw [SQLSTATE 28P01]\n");
    /* text with no SQLSTATE: as it is (libpq's own, a timeout) */
    assert_string_equal(connect_error("connection to server at \"h\", port 5 failed: timeout expired\n"),
                        "connection to server at \"h\", port 5 failed: timeout expired\n");
    assert_string_equal(connect_error("fe_sendauth: no password supplied\n"), "fe_sendauth: no password supplied\n");
    assert_string_equal(connect_error("FATAL:  5330: short\n"), "FATAL:  5330: short\n");
    assert_string_equal(connect_error("FATAL:  53300 no colon\n"), "FATAL:  53300 no colon\n");
    assert_string_equal(connect_error(""), "");
    /* cut to the buffer, never inside a character */
    char small[12];
    pgconn_connect_error("F:  53300: \xc3\xa4\xc3\xa4\xc3\xa4\n", small, sizeof small);
    assert_string_equal(small, "F:  \xc3\xa4\xc3\xa4\xc3\xa4 ");
    pgconn_connect_error("ab\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4", small, sizeof small);
    assert_string_equal(small, "ab\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_password),
        cmocka_unit_test(test_bare_dbname_is_shown),
        cmocka_unit_test(test_server_text),
        cmocka_unit_test(test_own_output),
        cmocka_unit_test(test_each_output_password),
        cmocka_unit_test(test_url_password_with_at),
        cmocka_unit_test(test_url_password_with_slash_or_question_mark),
        cmocka_unit_test(test_url_password_pieces_percent_decoded),
        cmocka_unit_test(test_keyword_password_with_space),
        cmocka_unit_test(test_query_with_at_is_not_a_password),
        cmocka_unit_test(test_is_copy_from_stdin),
        cmocka_unit_test(test_copy_format_option),
        cmocka_unit_test(test_copy_target),
        cmocka_unit_test(test_short_pieces_and_fake_keywords),
        cmocka_unit_test(test_valid_passwords_are_not_cut),
        cmocka_unit_test(test_password_with_equals_is_one_word),
        cmocka_unit_test(test_long_password),
        cmocka_unit_test(test_scrub),
        cmocka_unit_test(test_url_inside_a_string),
        cmocka_unit_test(test_one_line),
        cmocka_unit_test(test_connect_error),
    };
    return cmocka_run_group_tests_name("pgconn", tests, NULL, NULL);
}
