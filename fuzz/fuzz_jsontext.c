/* libFuzzer target for src/jsontext.c.
 *
 * Build and run (see fuzz/README.md):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *         fuzz/fuzz_jsontext.c src/jsontext.c -o /tmp/fuzz_jsontext
 *   /tmp/fuzz_jsontext -max_total_time=60 CORPUS_COPY_DIR
 *
 * Every invariant failure calls abort() after naming the check on stderr,
 * so libFuzzer saves the input as a crash-* file. The reference models
 * below are deliberately written differently from the implementation
 * (a grammar-driven JSON re-printer, a decode-then-check UTF-8 decoder), so
 * a shared misunderstanding is less likely to hide a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "fuzz_check.h"


static int json_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---- reference 1: strict JSON re-printer ---------------------------------
 * Parses RFC 8259 JSON with recursive descent and prints every token with
 * no whitespace in between. For input that parses (what PostgreSQL prints
 * as jsonb text or jsonb_pretty always does), this is by definition
 * "whitespace outside strings removed", without any string-state tracking. */

#define REF_MAX_DEPTH 256       /* deeper input is simply not checked */

struct ref {
    const uint8_t *s;
    size_t n, i;
    uint8_t *out;
    size_t o;
    int depth;
};

static void ref_ws(struct ref *r)
{
    while (r->i < r->n && json_ws(r->s[r->i]))
        r->i++;
}

static void ref_emit(struct ref *r, size_t from, size_t to)
{
    memcpy(r->out + r->o, r->s + from, to - from);
    r->o += to - from;
}

/* Consumes one expected byte and prints it. */
static int ref_punct(struct ref *r, uint8_t c)
{
    if (r->i >= r->n || r->s[r->i] != c)
        return 0;
    ref_emit(r, r->i, r->i + 1);
    r->i++;
    return 1;
}

static int ref_is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int ref_string(struct ref *r)
{
    size_t start = r->i++;              /* opening quote already checked */

    for (;;) {
        if (r->i >= r->n)
            return 0;
        uint8_t c = r->s[r->i++];
        if (c == '"')
            break;
        if (c < 0x20)
            return 0;                   /* raw control chars are not JSON */
        if (c != '\\')
            continue;
        if (r->i >= r->n)
            return 0;
        c = r->s[r->i++];
        if (c == 'u') {
            int k;
            for (k = 0; k < 4; k++)
                if (r->i >= r->n || !ref_is_hex(r->s[r->i++]))
                    return 0;
        } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
            return 0;
        }
    }
    ref_emit(r, start, r->i);
    return 1;
}

static size_t ref_digits(struct ref *r)
{
    size_t k = 0;

    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') {
        r->i++;
        k++;
    }
    return k;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int ref_number(struct ref *r)
{
    size_t start = r->i;

    if (r->s[r->i] == '-')
        r->i++;
    if (r->i < r->n && r->s[r->i] == '0')
        r->i++;
    else if (ref_digits(r) == 0)
        return 0;
    if (r->i < r->n && r->s[r->i] == '.') {
        r->i++;
        if (ref_digits(r) == 0)
            return 0;
    }
    if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
        r->i++;
        if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-'))
            r->i++;
        if (ref_digits(r) == 0)
            return 0;
    }
    ref_emit(r, start, r->i);
    return 1;
}

static int ref_literal(struct ref *r, const char *word)
{
    size_t len = strlen(word);

    if (r->n - r->i < len || memcmp(r->s + r->i, word, len) != 0)
        return 0;
    ref_emit(r, r->i, r->i + len);
    r->i += len;
    return 1;
}

static int ref_value(struct ref *r);

/* Members or elements of an object/array; the opener is printed already. */
static int ref_container(struct ref *r, int is_object)
{
    uint8_t close = is_object ? '}' : ']';

    ref_ws(r);
    if (ref_punct(r, close))
        return 1;
    for (;;) {
        if (is_object) {
            ref_ws(r);
            if (r->i >= r->n || r->s[r->i] != '"' || !ref_string(r))
                return 0;
            ref_ws(r);
            if (!ref_punct(r, ':'))
                return 0;
        }
        if (!ref_value(r))
            return 0;
        ref_ws(r);
        if (ref_punct(r, close))
            return 1;
        if (!ref_punct(r, ','))
            return 0;
    }
}

static int ref_value(struct ref *r)
{
    int ok;

    if (++r->depth > REF_MAX_DEPTH)
        return 0;
    ref_ws(r);
    if (r->i >= r->n)
        return 0;
    switch (r->s[r->i]) {
    case '{': ok = ref_punct(r, '{') && ref_container(r, 1); break;
    case '[': ok = ref_punct(r, '[') && ref_container(r, 0); break;
    case '"': ok = ref_string(r); break;
    case 't': ok = ref_literal(r, "true"); break;
    case 'f': ok = ref_literal(r, "false"); break;
    case 'n': ok = ref_literal(r, "null"); break;
    default:
        ok = (r->s[r->i] == '-' || (r->s[r->i] >= '0' && r->s[r->i] <= '9'))
             && ref_number(r);
    }
    r->depth--;
    return ok;
}

/* When the input is one complete JSON text, compact() must equal the
 * re-printed tokens. Returns 1 when the input parsed and was checked. */
static int check_json_reference(const uint8_t *data, size_t size,
                                 const char *out, size_t n)
{
    struct ref r = { data, size, 0, NULL, 0, 0 };
    int ok;

    r.out = malloc(size ? size : 1);
    CHECK(r.out != NULL);
    ok = ref_value(&r);
    if (ok) {
        ref_ws(&r);
        ok = r.i == size;
    }
    if (ok) {
        CHECK(r.o == n);
        CHECK(memcmp(r.out, out, n) == 0);
    }
    free(r.out);
    return ok;
}

/* ---- compaction invariants for any bytes --------------------------------- */

static void check_compact(const uint8_t *data, size_t size, const char *out, size_t n)
{
    const char *in = (const char *)data;
    char *again = malloc(n ? n : 1);
    char *inplace = malloc(size ? size : 1);
    size_t j = 0, k, m;

    CHECK(again != NULL && inplace != NULL);
    CHECK(n <= size);

    /* idempotent */
    m = jsontext_compact(out, n, again);
    CHECK(m == n);
    CHECK(memcmp(again, out, n) == 0);

    /* output is the input with some JSON-whitespace bytes deleted */
    for (k = 0; k < n; k++) {
        while (j < size && data[j] != (uint8_t)out[k]) {
            CHECK(json_ws(data[j]));
            j++;
        }
        CHECK(j < size);
        j++;
    }
    for (; j < size; j++)
        CHECK(json_ws(data[j]));

    /* in place gives the same result */
    memcpy(inplace, in, size);
    m = jsontext_compact(inplace, size, inplace);
    CHECK(m == n);
    CHECK(memcmp(inplace, out, n) == 0);

    free(again);
    free(inplace);
}

/* ---- reference 2: UTF-8 by decoding then range checks -------------------- */

/* Length of the valid character at s[0], or 0. Decodes first, then rejects
 * overlongs, surrogates and values above U+10FFFF from the code point. */
static size_t ref_utf8_char(const uint8_t *s, size_t len, uint32_t *cp_out)
{
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t need, k;
    uint32_t cp;

    if (s[0] < 0x80) {
        *cp_out = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) { need = 2; cp = s[0] & 0x1F; }
    else if ((s[0] & 0xF0) == 0xE0) { need = 3; cp = s[0] & 0x0F; }
    else if ((s[0] & 0xF8) == 0xF0) { need = 4; cp = s[0] & 0x07; }
    else return 0;
    if (len < need)
        return 0;
    for (k = 1; k < need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min_cp[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *cp_out = cp;
    return need;
}

static int ref_white_space(uint32_t cp)
{
    static const uint32_t ranges[][2] = {
        { 0x09, 0x0D }, { 0x20, 0x20 }, { 0x85, 0x85 }, { 0xA0, 0xA0 },
        { 0x1680, 0x1680 }, { 0x2000, 0x200A }, { 0x2028, 0x2029 },
        { 0x202F, 0x202F }, { 0x205F, 0x205F }, { 0x3000, 0x3000 },
    };
    size_t k;

    for (k = 0; k < sizeof ranges / sizeof ranges[0]; k++)
        if (cp >= ranges[k][0] && cp <= ranges[k][1])
            return 1;
    return 0;
}

/* Computes count, validity and has-content in one pass of the reference. */
static void ref_utf8_scan(const uint8_t *s, size_t len, size_t *count,
                          int *valid, int *content)
{
    size_t i = 0, step;
    uint32_t cp = 0;

    *count = 0;
    *valid = 1;
    *content = 0;
    while (i < len) {
        step = ref_utf8_char(s + i, len - i, &cp);
        if (step == 0) {
            *valid = 0;
            *content = 1;
            step = 1;
        } else if (!ref_white_space(cp)) {
            *content = 1;
        }
        i += step;
        (*count)++;
    }
}

/* One prefix cut: bounded by max chars, on a character boundary, valid when
 * the input is. Returns the cut for monotonicity checks. */
static size_t check_cut(const char *in, size_t size, size_t count, int valid, size_t k)
{
    size_t p = utf8_prefix_bytes(in, size, k);
    size_t want = k < count ? k : count;

    CHECK(p <= size);
    CHECK(utf8_char_count(in, p) == want);      /* never more than k chars */
    CHECK(utf8_char_count(in + p, size - p) == count - want);   /* boundary */
    if (k >= count)
        CHECK(p == size);
    if (valid)
        CHECK(utf8_valid(in, p));
    return p;
}

static void check_utf8(const uint8_t *data, size_t size, const char *out, size_t n)
{
    const char *in = (const char *)data;
    size_t count, ref_count, k, p, prev;
    int valid, ref_valid, ref_content;

    ref_utf8_scan(data, size, &ref_count, &ref_valid, &ref_content);
    count = utf8_char_count(in, size);
    valid = utf8_valid(in, size);
    CHECK(count == ref_count);
    CHECK(valid == ref_valid);
    CHECK(text_has_content(in, size) == ref_content);
    CHECK(count <= size);
    CHECK((count == 0) == (size == 0));

    /* Character by character too: a whole input is rarely all whitespace,
     * but every code point it contains is checked on its own this way. */
    for (k = 0; k < size; k += p) {
        size_t one_count;
        int one_valid, one_content;

        p = utf8_prefix_bytes(in + k, size - k, 1);
        CHECK(p >= 1 && p <= 4);
        ref_utf8_scan(data + k, p, &one_count, &one_valid, &one_content);
        CHECK(one_count == 1);
        CHECK(utf8_valid(in + k, p) == one_valid);
        CHECK(text_has_content(in + k, p) == one_content);
    }

    /* compaction only drops ASCII bytes, which cannot break valid UTF-8 */
    if (valid)
        CHECK(utf8_valid(out, n));

    if (size <= 64) {                   /* small input: every cut */
        prev = 0;
        for (k = 0; k <= count + 1; k++) {
            p = check_cut(in, size, count, valid, k);
            CHECK(p >= prev);
            prev = p;
        }
    } else {
        size_t ks[] = { 0, 1, 2, 3, count / 3, count / 2, count - 1, count,
                        count + 1, (size_t)data[0] * 7 + data[size - 1],
                        SIZE_MAX };
        for (k = 0; k < sizeof ks / sizeof ks[0]; k++)
            check_cut(in, size, count, valid, ks[k]);
    }
}

/* ---- entry point --------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exactly `size` bytes, so ASan reports any write past the contract */
    char *out = malloc(size ? size : 1);
    size_t n;

    CHECK(out != NULL);
    n = jsontext_compact((const char *)data, size, out);
    check_compact(data, size, out, n);
    check_json_reference(data, size, out, n);
    check_utf8(data, size, out, n);
    free(out);
    return 0;
}
