/* copytext: PostgreSQL COPY text-format escaping.
 *
 * In COPY text format a tab separates columns, a newline ends the row and a
 * backslash starts an escape, so those bytes (and CR, which COPY rejects raw
 * as a line-ending mix-up) must be written as escapes. Escaping the backslash
 * itself also means a value can never read as the NULL marker \N or the
 * end-of-data line \. . All other bytes, including other control characters
 * and multi-byte UTF-8, pass through unchanged: COPY reads them literally. */
#include "copytext.h"

#include <string.h>

/* The escape letter for a byte that needs one, else 0. */
static char escape_letter(unsigned char c)
{
    switch (c) {
    case '\\': return '\\';
    case '\t': return 't';
    case '\n': return 'n';
    case '\r': return 'r';
    default:   return 0;
    }
}

/* Bytes that need an escape: a table lookup per byte, and plain runs are
 * copied whole (the usual value has no byte to escape at all). */
static const unsigned char needs_escape[256] = {['\\'] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

size_t copytext_escape(const char *in, size_t len, char *out)
{
    size_t i = 0, o = 0;

    while (i < len) {
        size_t run = i;
        while (run < len && !needs_escape[(unsigned char)in[run]]) run++;
        memcpy(out + o, in + i, run - i);
        o += run - i;
        if (run == len) break;
        out[o++] = '\\';
        out[o++] = escape_letter((unsigned char)in[run]);
        i = run + 1;
    }
    return o;
}
