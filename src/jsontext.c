/* jsontext: byte-level helpers for JSON text as PostgreSQL prints it.
 *
 * Everything here works on raw bytes with an explicit length: inputs may
 * contain NUL, invalid UTF-8 or half a JSON document (fuzz/fuzz_jsontext.c
 * feeds arbitrary bytes), so no function reads past `len` or fails. */
#include "jsontext.h"

#include <stdint.h>

/* ---- JSON compaction ---------------------------------------------------- */

/* The four whitespace bytes of the JSON grammar (RFC 8259, section 2). */
static int json_is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Copies one string body starting just after its opening quote, up to and
 * including the closing quote. A backslash always takes the following byte
 * with it, so neither \" nor the second byte of \\ is mistaken for the end
 * of the string. Stops at `len` if the string is unterminated. Returns the
 * index of the first byte after the copied run; *o is advanced. */
static size_t copy_string_body(const char *in, size_t i, size_t len,
                               char *out, size_t *o)
{
    while (i < len) {
        char c = in[i++];
        out[(*o)++] = c;
        if (c == '"')
            break;
        if (c == '\\' && i < len)
            out[(*o)++] = in[i++];
    }
    return i;
}

/* Never writes ahead of the byte being read (o <= i throughout), so the
 * output is at most `len` bytes and out == in also works. */
size_t jsontext_compact(const char *in, size_t len, char *out)
{
    size_t i = 0, o = 0;

    while (i < len) {
        unsigned char c = (unsigned char)in[i++];
        if (c == '"') {
            out[o++] = (char)c;
            i = copy_string_body(in, i, len, out, &o);
        } else if (!json_is_ws(c)) {
            /* Outside strings there are no escapes: a stray backslash in
             * malformed input is an ordinary byte. */
            out[o++] = (char)c;
        }
    }
    return o;
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* Length (1-4) of the well-formed UTF-8 sequence starting at s[0], or 0 when
 * s[0] does not start one within s[0..len). Follows Unicode Table 3-7
 * ("Well-Formed UTF-8 Byte Sequences"): the allowed range of the second byte
 * depends on the lead byte, which is what rules out overlongs (C0, C1, E0 80,
 * F0 80), surrogates (ED A0..ED BF) and code points above U+10FFFF (F4 90+,
 * F5..FF). Requires len >= 1. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n, k;

    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;                       /* continuation byte or C0/C1 */
    if (c < 0xE0) {
        n = 2;
    } else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;                  /* overlong 3-byte form */
        else if (c == 0xED)
            hi = 0x9F;                  /* U+D800..U+DFFF surrogates */
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;                  /* overlong 4-byte form */
        else if (c == 0xF4)
            hi = 0x8F;                  /* above U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (k = 2; k < n; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Byte length of the character at s[0]: its sequence length when valid,
 * else 1 (an invalid byte is a character of its own). Requires len >= 1. */
static size_t utf8_step(const unsigned char *s, size_t len)
{
    size_t n = utf8_seq_len(s, len);
    return n ? n : 1;
}

size_t utf8_prefix_bytes(const char *s, size_t len, size_t max_chars)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, chars = 0;

    /* Whole characters only: the loop stops before a character rather than
     * inside it, so a multi-byte sequence is either kept or dropped. */
    while (i < len && chars < max_chars) {
        i += utf8_step(u + i, len - i);
        chars++;
    }
    return i;
}

size_t utf8_char_count(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, chars = 0;

    while (i < len) {
        i += utf8_step(u + i, len - i);
        chars++;
    }
    return chars;
}

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq_len(u + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* ---- whitespace-only detection ------------------------------------------ */

/* Code point of a sequence already checked by utf8_seq_len (n = 1..4). */
static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
    static const unsigned char lead_mask[5] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
    uint32_t cp = s[0] & lead_mask[n];
    size_t k;

    for (k = 1; k < n; k++)
        cp = (cp << 6) | (uint32_t)(s[k] & 0x3F);
    return cp;
}

/* Unicode White_Space property (PropList.txt), which also covers the ASCII
 * \t \n \v \f \r and space. */
static int is_unicode_space(uint32_t cp)
{
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20:
    case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

int text_has_content(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq_len(u + i, len - i);
        /* An invalid byte is not whitespace, so it counts as content. */
        if (n == 0 || !is_unicode_space(utf8_decode(u + i, n)))
            return 1;
        i += n;
    }
    return 0;
}
