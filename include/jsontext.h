/* jsontext: byte-level helpers for JSON text as PostgreSQL prints it.
 * Pure C, no Lua, no libpq: fuzzed by fuzz/fuzz_jsontext.c. */
#ifndef FERRY_JSONTEXT_H
#define FERRY_JSONTEXT_H
#include <stddef.h>

/* Removes the whitespace between tokens of JSON text (outside strings),
 * keeping every other byte as it is: key order, escapes and number text stay
 * exactly as PostgreSQL printed them. `out` must hold at least `len` bytes.
 * Returns the number of bytes written. Never reads past `len`, never fails:
 * on malformed input (e.g. an unterminated string) it copies the rest. */
size_t jsontext_compact(const char *in, size_t len, char *out);

/* Byte length of the first `max_chars` UTF-8 characters of s[0..len):
 * never splits a multi-byte sequence. An invalid byte counts as one
 * character of one byte. */
size_t utf8_prefix_bytes(const char *s, size_t len, size_t max_chars);

/* Where to cut s to at most n bytes (s holding more than n) without
 * cutting inside a character: n, stepped back over the continuation bytes
 * at s[n] -- at most 3, the most a UTF-8 character has, so that bytes that
 * are not UTF-8 are cut where they fall. */
static inline size_t utf8_cut(const char *s, size_t n)
{
    for (int back = 0; back < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; back++) n--;
    return n;
}

/* Number of UTF-8 characters in s[0..len) (invalid bytes count one each). */
size_t utf8_char_count(const char *s, size_t len);

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF), else 0. */
int utf8_valid(const char *s, size_t len);

/* 1 when s has at least one non-whitespace character, where whitespace is
 * ASCII space, \t \n \v \f \r and the Unicode White_Space code points
 * (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000), else 0. */
int text_has_content(const char *s, size_t len);

#endif
