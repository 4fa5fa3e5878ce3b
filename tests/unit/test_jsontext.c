/* Unit tests for src/jsontext.c: JSON compaction, UTF-8 prefix/count/
 * validation and whitespace-only detection.
 *
 * test_corpus_matches_expected compares compact(fuzz/corpus/X) with
 * fuzz/expected/X. It finds the directory through $FERRY_FUZZ_DIR, else
 * tries fuzz, ../fuzz and ../../fuzz from the working directory, and fails
 * when none exists: cmocka 1.1.5 (Debian 12) prints a skip() as
 * "not ok N # SKIP", which prove counts as a failure anyway. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* opendir; the Makefile also sets it */
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>

#include <cmocka.h>

#include "jsontext.h"

/* ---- helpers ------------------------------------------------------------ */

/* Compacts into a buffer of exactly `len` bytes (ASan flags any overrun),
 * checks the result, and checks that compacting again changes nothing. */
static void check_compact(const char *in, size_t len, const char *want, size_t want_len)
{
    char *out = malloc(len ? len : 1);
    char *again = malloc(len ? len : 1);
    size_t n, m;

    assert_non_null(out);
    assert_non_null(again);
    n = jsontext_compact(in, len, out);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);

    m = jsontext_compact(out, n, again);
    assert_int_equal(m, n);
    assert_memory_equal(again, out, n);
    free(out);
    free(again);
}

/* For string literals: sizeof - 1 keeps embedded NULs. */
#define COMPACT(in, want) check_compact((in), sizeof(in) - 1, (want), sizeof(want) - 1)
#define LIT(s) (s), (sizeof(s) - 1)

/* ---- jsontext_compact --------------------------------------------------- */

static void test_compact_basic(void **state)
{
    (void)state;
    COMPACT("{\"a\": 1, \"b\": [1, 2]}", "{\"a\":1,\"b\":[1,2]}");
    COMPACT("[]", "[]");
    COMPACT("{}", "{}");
    COMPACT("", "");
    COMPACT("   ", "");
    COMPACT("null", "null");
    COMPACT(" true ", "true");
}

static void test_compact_nested(void **state)
{
    (void)state;
    COMPACT("{\"a\": {\"b\": {\"c\": [1, [2, [3, {\"d\": []}]]]}}, \"e\": [{}, []]}",
            "{\"a\":{\"b\":{\"c\":[1,[2,[3,{\"d\":[]}]]]}},\"e\":[{},[]]}");
    COMPACT("[[1, 2], [3, [4, [5, []]]], [], [[]]]",
            "[[1,2],[3,[4,[5,[]]]],[],[[]]]");
}

/* All four JSON whitespace bytes go, as in jsonb_pretty() output. */
static void test_compact_pretty_whitespace(void **state)
{
    (void)state;
    COMPACT("{\n    \"a\": 1,\n    \"b\": [\n        1,\n        [\n        ]\n    ]\n}",
            "{\"a\":1,\"b\":[1,[]]}");
    COMPACT("\r\n\t[ 1 ,\t2\r\n]\t", "[1,2]");
}

static void test_compact_strings_keep_spaces(void **state)
{
    (void)state;
    COMPACT("{\"k e y\": \"a b  c\", \"t\": \" \\t \\n \"}",
            "{\"k e y\":\"a b  c\",\"t\":\" \\t \\n \"}");
    /* raw tab/newline inside a string (invalid JSON, still kept verbatim) */
    COMPACT("[\"a\tb\nc\"]", "[\"a\tb\nc\"]");
    /* JSON text inside a string is not compacted */
    COMPACT("{\"payload\": \"{\\\"x\\\": 1, \\\"y\\\": [2, 3]}\"}",
            "{\"payload\":\"{\\\"x\\\": 1, \\\"y\\\": [2, 3]}\"}");
}

/* \" must not end the string; \\ must, when followed by a quote. */
static void test_compact_escapes(void **state)
{
    (void)state;
    COMPACT("{\"q\": \"say \\\"hi there\\\" ok\", \"n\": 1}",
            "{\"q\":\"say \\\"hi there\\\" ok\",\"n\":1}");
    COMPACT("{\"p\": \"C:\\\\ dir\\\\\", \"x\": 1}",
            "{\"p\":\"C:\\\\ dir\\\\\",\"x\":1}");
    COMPACT("[\"\\\\\\\"  \", \"\\\\\\\\\" , 2]",
            "[\"\\\\\\\"  \",\"\\\\\\\\\",2]");
    COMPACT("[\"\\\" \\\" \", 1]", "[\"\\\" \\\" \",1]");
}

static void test_compact_control_escapes(void **state)
{
    (void)state;
    COMPACT("{\"c\": \"\\u0001 \\u001f x\", \"d\": \"\\b \\f \\r\"}",
            "{\"c\":\"\\u0001 \\u001f x\",\"d\":\"\\b \\f \\r\"}");
    COMPACT("[\"\\ud83d\\ude00 \"]", "[\"\\ud83d\\ude00 \"]");
}

/* Number text is never normalised. */
static void test_compact_numbers_verbatim(void **state)
{
    (void)state;
    COMPACT("{\"big\": 123456789012345678901234567890.000001e-3, \"n\": -0.0, \"f\": 12.50}",
            "{\"big\":123456789012345678901234567890.000001e-3,\"n\":-0.0,\"f\":12.50}");
    COMPACT("[1E+400, -1e-400, 00012]", "[1E+400,-1e-400,00012]");
}

static void test_compact_unicode(void **state)
{
    (void)state;
    /* emoji (4-byte, skin tone modifier, ZWJ family) */
    COMPACT("{\"e\": \"\xF0\x9F\x98\x80 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD "
            "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\"}",
            "{\"e\":\"\xF0\x9F\x98\x80 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD "
            "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\"}");
    /* combining marks: e + U+0301, n + U+0303 */
    COMPACT("[\"e\xCC\x81\" , \"n\xCC\x83 x\"]", "[\"e\xCC\x81\",\"n\xCC\x83 x\"]");
    /* RTL: Hebrew, Arabic, RLM and RLO/PDF controls */
    COMPACT("{\"he\": \"\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\", "
            "\"ar\": \"\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7\", "
            "\"bidi\": \"\xE2\x80\x8F" "abc\xE2\x80\xAE def\xE2\x80\xAC\"}",
            "{\"he\":\"\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\","
            "\"ar\":\"\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7\","
            "\"bidi\":\"\xE2\x80\x8F" "abc\xE2\x80\xAE def\xE2\x80\xAC\"}");
    /* Unicode spaces are not JSON whitespace: kept even outside strings */
    COMPACT("[1,\xC2\xA0 2,\xE3\x80\x80 3]", "[1,\xC2\xA0" "2,\xE3\x80\x80" "3]");
}

/* Malformed input: never fails, copies the rest of an open string. */
static void test_compact_malformed(void **state)
{
    (void)state;
    COMPACT("{\"a\": \"b  c", "{\"a\":\"b  c");
    COMPACT("\"abc\\", "\"abc\\");
    COMPACT("\"", "\"");
    COMPACT("\\ \" x \\\" y", "\\\" x \\\" y");    /* backslash outside a string is plain */
    COMPACT("} ] , : {", "}],:{");
    COMPACT("[1, \"a\0 b\", \0 2]", "[1,\"a\0 b\",\0" "2]");
    COMPACT("\xFF \xFE\x80 \"\xC0 \xAF\" ", "\xFF\xFE\x80\"\xC0 \xAF\"");
}

/* The implementation compacts in place (out == in) too. */
static void test_compact_in_place(void **state)
{
    char buf[] = "{\"a\": [1, 2], \"s\": \"x \\\" y\"}";
    size_t n;
    (void)state;

    n = jsontext_compact(buf, strlen(buf), buf);
    assert_int_equal(n, strlen("{\"a\":[1,2],\"s\":\"x \\\" y\"}"));
    assert_memory_equal(buf, "{\"a\":[1,2],\"s\":\"x \\\" y\"}", n);
}

/* Every byte value, every position: output never longer than input. */
static void test_compact_all_bytes(void **state)
{
    char in[512], out[512];
    size_t i, n;
    (void)state;

    for (i = 0; i < sizeof in; i++)
        in[i] = (char)(i * 37 + 11);
    for (i = 0; i <= sizeof in; i++) {
        n = jsontext_compact(in, i, out);
        assert_true(n <= i);
    }
}

/* ---- fuzz corpus vs expected -------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (!f)
        return NULL;
    for (;;) {
        if (n == cap) {
            char *p = realloc(buf, cap ? cap * 2 : 4096);
            if (!p) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
            cap = cap ? cap * 2 : 4096;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Opens <dir>/corpus for the first candidate directory that has one. */
static DIR *open_corpus(const char **dir_out)
{
    static const char *const candidates[] = { "fuzz", "../fuzz", "../../fuzz" };
    const char *env = getenv("FERRY_FUZZ_DIR");
    char path[4096];
    size_t i;
    DIR *d;

    if (env && *env) {
        snprintf(path, sizeof path, "%s/corpus", env);
        *dir_out = env;
        return opendir(path);
    }
    for (i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        snprintf(path, sizeof path, "%s/corpus", candidates[i]);
        if ((d = opendir(path)) != NULL) {
            *dir_out = candidates[i];
            return d;
        }
    }
    return NULL;
}

static void test_corpus_matches_expected(void **state)
{
    const char *dir = NULL;
    char cpath[4096], epath[4096];
    struct dirent *de;
    DIR *d;
    int compared = 0;
    (void)state;

    d = open_corpus(&dir);
    if (!d)
        print_error("fuzz/corpus not found: run from the repository root "
                    "or set FERRY_FUZZ_DIR\n");
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t clen, elen, n;
        char *c, *e, *out;

        if (de->d_name[0] == '.')
            continue;
        snprintf(cpath, sizeof cpath, "%s/corpus/%s", dir, de->d_name);
        snprintf(epath, sizeof epath, "%s/expected/%s", dir, de->d_name);
        c = read_file(cpath, &clen);
        e = read_file(epath, &elen);
        if (!c || !e)
            print_error("missing or unreadable: %s / %s\n", cpath, epath);
        assert_non_null(c);
        assert_non_null(e);
        out = malloc(clen ? clen : 1);
        assert_non_null(out);
        n = jsontext_compact(c, clen, out);
        if (n != elen || memcmp(out, e, n) != 0)
            print_error("compact(%s) differs from %s\n", cpath, epath);
        assert_int_equal(n, elen);
        assert_memory_equal(out, e, n);
        free(out);
        free(c);
        free(e);
        compared++;
    }
    closedir(d);
    assert_true(compared > 0);
}

/* ---- UTF-8 -------------------------------------------------------------- */

#define EMOJI "\xF0\x9F\x98\x80"        /* U+1F600, 4 bytes */

static void test_prefix_ascii(void **state)
{
    (void)state;
    assert_int_equal(utf8_prefix_bytes(LIT("hello"), 0), 0);
    assert_int_equal(utf8_prefix_bytes(LIT("hello"), 3), 3);
    assert_int_equal(utf8_prefix_bytes(LIT("hello"), 5), 5);
    assert_int_equal(utf8_prefix_bytes(LIT("hello"), 99), 5);
    assert_int_equal(utf8_prefix_bytes(LIT("hello"), (size_t)-1), 5);
    assert_int_equal(utf8_prefix_bytes(LIT(""), 10), 0);
}

static void test_prefix_multibyte(void **state)
{
    /* a(1) e-acute(2) euro(3) emoji(4) b(1) */
    static const char s[] = "a\xC3\xA9\xE2\x82\xAC" EMOJI "b";
    (void)state;

    assert_int_equal(utf8_prefix_bytes(LIT(s), 1), 1);
    assert_int_equal(utf8_prefix_bytes(LIT(s), 2), 3);
    assert_int_equal(utf8_prefix_bytes(LIT(s), 3), 6);
    assert_int_equal(utf8_prefix_bytes(LIT(s), 4), 10);
    assert_int_equal(utf8_prefix_bytes(LIT(s), 5), 11);
    assert_int_equal(utf8_char_count(LIT(s)), 5);
}

/* A 4-byte emoji around a 1000-character cut: kept whole when it is the
 * 1000th character, dropped whole when it would be the 1001st; the cut
 * never lands inside it. */
static void test_prefix_emoji_at_1000(void **state)
{
    char buf[1100];
    size_t i, p;
    (void)state;

    /* 999 'a' + emoji + "b": the emoji is character 1000. */
    memset(buf, 'a', 999);
    memcpy(buf + 999, EMOJI "b", 5);
    assert_int_equal(utf8_prefix_bytes(buf, 1004, 1000), 1003);
    assert_int_equal(utf8_prefix_bytes(buf, 1004, 999), 999);
    assert_int_equal(utf8_char_count(buf, 1004), 1001);

    /* 1000 'a' + emoji: the emoji straddles byte 1000 and is excluded. */
    memset(buf, 'a', 1000);
    memcpy(buf + 1000, EMOJI, 4);
    p = utf8_prefix_bytes(buf, 1004, 1000);
    assert_int_equal(p, 1000);
    assert_true(utf8_valid(buf, p));

    /* 998 'a' + emoji (bytes 998..1001) + "zz": cut by chars, never splits. */
    memset(buf, 'a', 998);
    memcpy(buf + 998, EMOJI "zz", 6);
    assert_int_equal(utf8_prefix_bytes(buf, 1004, 998), 998);
    assert_int_equal(utf8_prefix_bytes(buf, 1004, 999), 1002);
    assert_int_equal(utf8_prefix_bytes(buf, 1004, 1000), 1003);

    /* every cut of a string of emoji lands on a 4-byte boundary */
    for (i = 0; i < 250; i++)
        memcpy(buf + 4 * i, EMOJI, 4);
    for (i = 0; i <= 251; i++) {
        p = utf8_prefix_bytes(buf, 1000, i);
        assert_int_equal(p, (i < 250 ? i : 250) * 4);
        assert_true(utf8_valid(buf, p));
    }
}

/* When `len` itself cuts a sequence, the stranded bytes are invalid and,
 * per the header, count one character of one byte each. */
static void test_prefix_truncated_sequence(void **state)
{
    static const char s[] = "ab\xF0\x9F";       /* emoji cut after 2 bytes */
    (void)state;

    assert_int_equal(utf8_char_count(LIT(s)), 4);
    assert_int_equal(utf8_prefix_bytes(LIT(s), 2), 2);
    assert_int_equal(utf8_prefix_bytes(LIT(s), 3), 3);
    assert_false(utf8_valid(LIT(s)));
    assert_true(utf8_valid(s, utf8_prefix_bytes(LIT(s), 2)));
}

static void test_valid_accepts(void **state)
{
    (void)state;
    assert_true(utf8_valid(LIT("")));
    assert_true(utf8_valid(NULL, 0));
    assert_true(utf8_valid(LIT("plain ascii \x01\x7F")));
    assert_true(utf8_valid(LIT("\xC2\x80")));                  /* U+0080 */
    assert_true(utf8_valid(LIT("\xDF\xBF")));                  /* U+07FF */
    assert_true(utf8_valid(LIT("\xE0\xA0\x80")));              /* U+0800 */
    assert_true(utf8_valid(LIT("\xED\x9F\xBF")));              /* U+D7FF */
    assert_true(utf8_valid(LIT("\xEE\x80\x80")));              /* U+E000 */
    assert_true(utf8_valid(LIT("\xEF\xBF\xBF")));              /* U+FFFF */
    assert_true(utf8_valid(LIT("\xF0\x90\x80\x80")));          /* U+10000 */
    assert_true(utf8_valid(LIT("\xF4\x8F\xBF\xBF")));          /* U+10FFFF */
    assert_true(utf8_valid(LIT("a\0b")));                      /* NUL is valid */
    assert_true(utf8_valid(LIT("e\xCC\x81 \xD7\xA9 " EMOJI)));
}

static void test_valid_rejects(void **state)
{
    (void)state;
    assert_false(utf8_valid(LIT("\x80")));                     /* lone continuation */
    assert_false(utf8_valid(LIT("\xBF")));
    assert_false(utf8_valid(LIT("\xFF")));
    assert_false(utf8_valid(LIT("\xFE")));
    assert_false(utf8_valid(LIT("\xC0\x80")));                 /* overlong NUL */
    assert_false(utf8_valid(LIT("\xC1\xBF")));                 /* overlong 2-byte */
    assert_false(utf8_valid(LIT("\xE0\x80\x80")));             /* overlong 3-byte */
    assert_false(utf8_valid(LIT("\xE0\x9F\xBF")));
    assert_false(utf8_valid(LIT("\xF0\x80\x80\x80")));         /* overlong 4-byte */
    assert_false(utf8_valid(LIT("\xF0\x8F\xBF\xBF")));
    assert_false(utf8_valid(LIT("\xED\xA0\x80")));             /* U+D800 surrogate */
    assert_false(utf8_valid(LIT("\xED\xBF\xBF")));             /* U+DFFF surrogate */
    assert_false(utf8_valid(LIT("\xED\xA0\xBD\xED\xB8\x80")));  /* CESU-8 pair */
    assert_false(utf8_valid(LIT("\xF4\x90\x80\x80")));         /* U+110000 */
    assert_false(utf8_valid(LIT("\xF5\x80\x80\x80")));
    assert_false(utf8_valid(LIT("\xF8\x88\x80\x80\x80")));     /* 5-byte form */
    assert_false(utf8_valid(LIT("\xE2\x82")));                 /* truncated */
    assert_false(utf8_valid(LIT("\xE2\x82" "A")));             /* bad continuation */
    assert_false(utf8_valid(LIT("\xC3" "A")));
    assert_false(utf8_valid(LIT("ok" "\x80" "ok")));
}

/* Invalid bytes count one character each. */
static void test_count_invalid(void **state)
{
    (void)state;
    assert_int_equal(utf8_char_count(LIT("")), 0);
    assert_int_equal(utf8_char_count(LIT("\xFF\xFE")), 2);
    assert_int_equal(utf8_char_count(LIT("\xC0\x80")), 2);
    assert_int_equal(utf8_char_count(LIT("\xED\xA0\x80")), 3);
    assert_int_equal(utf8_char_count(LIT("\xF0\x80\x80\x80")), 4);
    assert_int_equal(utf8_char_count(LIT("\xE2\x82" "A")), 3);
    assert_int_equal(utf8_char_count(LIT("a\xFF" EMOJI "\x80")), 4);
    assert_int_equal(utf8_prefix_bytes(LIT("\xED\xA0\x80xyz"), 2), 2);
    assert_int_equal(utf8_prefix_bytes(LIT("\xFF" EMOJI "z"), 2), 5);
}

/* For valid text, every cut is valid and holds min(k, count) characters. */
static void test_prefix_every_cut(void **state)
{
    static const char s[] = "x\xC3\xA9\xE2\x82\xAC" EMOJI "e\xCC\x81\xD7\xA9\xE3\x80\x80" "z";
    size_t count = utf8_char_count(LIT(s)), k, p, prev = 0;
    (void)state;

    assert_int_equal(count, 9);
    for (k = 0; k <= count + 2; k++) {
        p = utf8_prefix_bytes(LIT(s), k);
        assert_true(utf8_valid(s, p));
        assert_int_equal(utf8_char_count(s, p), k < count ? k : count);
        assert_true(p >= prev);
        prev = p;
    }
    assert_int_equal(prev, sizeof s - 1);
}

/* ---- text_has_content --------------------------------------------------- */

static void test_has_content_blank(void **state)
{
    (void)state;
    assert_false(text_has_content(LIT("")));
    assert_false(text_has_content(NULL, 0));
    assert_false(text_has_content(LIT("   ")));
    assert_false(text_has_content(LIT("\t\n")));
    assert_false(text_has_content(LIT("\v\f\r ")));
    assert_false(text_has_content(LIT("\xC2\xA0")));           /* U+00A0 only */
    assert_false(text_has_content(LIT("\xE3\x80\x80")));       /* U+3000 only */
    assert_false(text_has_content(LIT("\xC2\x85")));           /* U+0085 NEL */
    assert_false(text_has_content(LIT("\xE1\x9A\x80")));       /* U+1680 */
    assert_false(text_has_content(LIT("\xE2\x80\x80\xE2\x80\x8A")));  /* U+2000, U+200A */
    assert_false(text_has_content(LIT("\xE2\x80\xA8\xE2\x80\xA9")));  /* U+2028, U+2029 */
    assert_false(text_has_content(LIT("\xE2\x80\xAF\xE2\x81\x9F")));  /* U+202F, U+205F */
    assert_false(text_has_content(LIT(" \xC2\xA0\t\xE3\x80\x80\n")));
}

static void test_has_content_present(void **state)
{
    (void)state;
    assert_true(text_has_content(LIT("a")));
    assert_true(text_has_content(LIT("  a  ")));
    assert_true(text_has_content(LIT("\xC2\xA0" "a")));
    assert_true(text_has_content(LIT(EMOJI)));
    assert_true(text_has_content(LIT("\xCC\x81")));            /* lone combining mark */
    /* not White_Space: zero width space, BOM, U+200F RLM, NUL */
    assert_true(text_has_content(LIT("\xE2\x80\x8B")));
    assert_true(text_has_content(LIT("\xEF\xBB\xBF")));
    assert_true(text_has_content(LIT("\xE2\x80\x8F")));
    assert_true(text_has_content(LIT("\0")));
    /* invalid bytes are content, including a truncated U+00A0 */
    assert_true(text_has_content(LIT("\xFF")));
    assert_true(text_has_content(LIT("\xC2")));
    assert_true(text_has_content(LIT("  \xE3\x80")));
    /* the length bounds the scan */
    assert_false(text_has_content("  x", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compact_basic),
        cmocka_unit_test(test_compact_nested),
        cmocka_unit_test(test_compact_pretty_whitespace),
        cmocka_unit_test(test_compact_strings_keep_spaces),
        cmocka_unit_test(test_compact_escapes),
        cmocka_unit_test(test_compact_control_escapes),
        cmocka_unit_test(test_compact_numbers_verbatim),
        cmocka_unit_test(test_compact_unicode),
        cmocka_unit_test(test_compact_malformed),
        cmocka_unit_test(test_compact_in_place),
        cmocka_unit_test(test_compact_all_bytes),
        cmocka_unit_test(test_corpus_matches_expected),
        cmocka_unit_test(test_prefix_ascii),
        cmocka_unit_test(test_prefix_multibyte),
        cmocka_unit_test(test_prefix_emoji_at_1000),
        cmocka_unit_test(test_prefix_truncated_sequence),
        cmocka_unit_test(test_valid_accepts),
        cmocka_unit_test(test_valid_rejects),
        cmocka_unit_test(test_count_invalid),
        cmocka_unit_test(test_prefix_every_cut),
        cmocka_unit_test(test_has_content_blank),
        cmocka_unit_test(test_has_content_present),
    };
    return cmocka_run_group_tests_name("jsontext", tests, NULL, NULL);
}
