/* copytext: PostgreSQL COPY text-format escaping (pure C). */
#ifndef FERRY_COPYTEXT_H
#define FERRY_COPYTEXT_H
#include <stddef.h>
/* Escapes one field value for COPY ... FROM STDIN (text format): backslash,
 * tab, newline, carriage return become \\ \t \n \r. `out` must hold 2*len
 * bytes. Returns bytes written. */
size_t copytext_escape(const char *in, size_t len, char *out);
#endif
