/* Unit tests for src/copytext.c: COPY text-format field escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "copytext.h"

/* Escapes a NUL-terminated string into an exactly-sized heap buffer (2*len,
 * so ASan catches any overrun) and checks the result. */
static void check(const char *in, size_t len, const char *want, size_t want_len)
{
    char *out = malloc(2 * len + 1);
    size_t n;

    assert_non_null(out);
    n = copytext_escape(in, len, out);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);
    free(out);
}

#define CHECK(in, want) check((in), sizeof(in) - 1, (want), sizeof(want) - 1)

static void test_plain_passthrough(void **state)
{
    (void)state;
    CHECK("", "");
    CHECK("hello world", "hello world");
    CHECK("N", "N");
    CHECK("\"quoted\" 'single' |pipe| ,comma;", "\"quoted\" 'single' |pipe| ,comma;");
}

static void test_each_special(void **state)
{
    (void)state;
    CHECK("\\", "\\\\");
    CHECK("\t", "\\t");
    CHECK("\n", "\\n");
    CHECK("\r", "\\r");
    CHECK("a\tb\nc\rd\\e", "a\\tb\\nc\\rd\\\\e");
    CHECK("line1\r\nline2", "line1\\r\\nline2");
}

/* A literal backslash-N or backslash-dot must not turn into the NULL marker
 * or the end-of-data line. */
static void test_markers_cannot_appear(void **state)
{
    (void)state;
    CHECK("\\N", "\\\\N");
    CHECK("\\.", "\\\\.");
    CHECK("\\x41\\101", "\\\\x41\\\\101");
}

/* Other control bytes are read literally by COPY and are left alone. */
static void test_other_controls_untouched(void **state)
{
    (void)state;
    CHECK("\b\f\v\x01\x1f\x7f", "\b\f\v\x01\x1f\x7f");
}

static void test_utf8_untouched(void **state)
{
    (void)state;
    CHECK("caf\xc3\xa9 \xf0\x9f\x98\x80 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d",
          "caf\xc3\xa9 \xf0\x9f\x98\x80 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d");
    CHECK("\xff\xfe\x80", "\xff\xfe\x80");
}

static void test_worst_case_doubles(void **state)
{
    char in[64], want[128];
    (void)state;

    memset(in, '\\', sizeof in);
    memset(want, '\\', sizeof want);
    check(in, sizeof in, want, sizeof want);
}

/* Embedded NUL is just another byte: length-driven, not string-driven. */
static void test_embedded_nul(void **state)
{
    (void)state;
    check("a\0b\t", 4, "a\0b\\t", 5);
}

/* Inverse for the four escapes produced above (what COPY FROM does). */
static size_t unescape(const char *in, size_t len, char *out)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (in[i] == '\\' && i + 1 < len) {
            char c = in[++i];
            out[o++] = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

/* Every byte value round-trips, and the escaped form never contains a raw
 * tab, newline or CR, and every backslash starts a known escape. */
static void test_roundtrip_all_bytes(void **state)
{
    char in[256], esc[512], back[256];
    size_t n, m, i;
    (void)state;

    for (i = 0; i < 256; i++)
        in[i] = (char)i;
    n = copytext_escape(in, sizeof in, esc);
    assert_int_equal(n, 256 + 4);
    for (i = 0; i < n; i++) {
        assert_true(esc[i] != '\t' && esc[i] != '\n' && esc[i] != '\r');
        if (esc[i] == '\\') {
            assert_true(i + 1 < n);
            assert_true(esc[i + 1] != '\0' && strchr("\\tnr", esc[i + 1]) != NULL);
            i++;
        }
    }
    m = unescape(esc, n, back);
    assert_int_equal(m, sizeof in);
    assert_memory_equal(back, in, sizeof in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_passthrough),
        cmocka_unit_test(test_each_special),
        cmocka_unit_test(test_markers_cannot_appear),
        cmocka_unit_test(test_other_controls_untouched),
        cmocka_unit_test(test_utf8_untouched),
        cmocka_unit_test(test_worst_case_doubles),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_roundtrip_all_bytes),
    };
    return cmocka_run_group_tests_name("copytext", tests, NULL, NULL);
}
