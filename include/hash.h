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
#endif
