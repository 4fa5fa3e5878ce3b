/* hash: SHA-1 (for UUID v5) and SHA-256 (for migration checksums). */
#ifndef FERRY_HASH_H
#define FERRY_HASH_H
#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t h[5]; uint64_t len; uint8_t buf[64]; size_t n; } sha1_ctx;
void sha1_init(sha1_ctx *c);
void sha1_update(sha1_ctx *c, const void *data, size_t len);
void sha1_final(sha1_ctx *c, uint8_t out[20]);

typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t n; } sha256_ctx;
void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* Writes 64 lowercase hex digits and a NUL into hex[65]. */
void sha256_hex(const void *data, size_t len, char hex[65]);

/* RFC 4122 name-based UUID version 5: SHA-1 over namespace bytes then name. */
void uuid5_generate(const uint8_t ns[16], const void *name, size_t len, uint8_t out[16]);

/* Parses a UUID's 36-character text form (hex digits in either case,
 * hyphens at 8, 13, 18, 23; nothing else, as libuuid's uuid_parse) into
 * out; 0 on success, -1 otherwise. */
int uuid_parse_text(const char *s, uint8_t out[16]);
/* Writes u's text form, lowercase, and a NUL into out[37]. */
void uuid_format_text(const uint8_t u[16], char out[37]);
#endif
