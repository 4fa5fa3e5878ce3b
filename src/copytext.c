/* copytext: PostgreSQL COPY text-format escaping.
 *
 * In COPY text format a tab separates columns, a newline ends the row and a
 * backslash starts an escape, so those bytes (and CR, which COPY rejects raw
 * as a line-ending mix-up) must be written as escapes. Escaping the backslash
 * itself also means a value can never read as the NULL marker \N or the
 * end-of-data line \. . All other bytes, including other control characters
 * and multi-byte UTF-8, pass through unchanged: COPY reads them literally. */
#include "copytext.h"

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

size_t copytext_escape(const char *in, size_t len, char *out)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        char e = escape_letter((unsigned char)in[i]);
        if (e) {
            out[o++] = '\\';
            out[o++] = e;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}
