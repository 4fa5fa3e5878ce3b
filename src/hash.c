/* hash: SHA-1 (FIPS 180-4, used only for RFC 4122 UUID v5) and SHA-256
 * (migration checksums). Portable C: byte order is handled explicitly, so the
 * results do not depend on host endianness or alignment. */
#include "hash.h"

#include <string.h>

static uint32_t rotl32(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }
static uint32_t rotr32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void store_be64(uint8_t *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

/* Shared Merkle-Damgard plumbing: both hashes use 64-byte blocks, a 0x80
 * terminator and the message length in bits as a big-endian 64-bit trailer. */
typedef void (*block_fn)(uint32_t *h, const uint8_t block[64]);

static void md_update(uint32_t *h, uint64_t *total, uint8_t buf[64], size_t *n,
                      const void *data, size_t len, block_fn compress)
{
    const uint8_t *p = data;

    if (len == 0)                       /* data may be NULL then */
        return;
    *total += len;
    if (*n > 0) {                       /* top up a partial block first */
        size_t take = 64 - *n < len ? 64 - *n : len;
        memcpy(buf + *n, p, take);
        *n += take;
        p += take;
        len -= take;
        if (*n < 64)
            return;
        compress(h, buf);
        *n = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        compress(h, p);
    memcpy(buf, p, len);
    *n = len;
}

static void md_pad(uint32_t *h, uint64_t total, uint8_t buf[64], size_t n,
                   block_fn compress)
{
    buf[n++] = 0x80;
    if (n > 56) {                       /* no room for the length: extra block */
        memset(buf + n, 0, 64 - n);
        compress(h, buf);
        n = 0;
    }
    memset(buf + n, 0, 56 - n);
    store_be64(buf + 56, total * 8);
    compress(h, buf);
}

/* ---- SHA-1 -------------------------------------------------------------- */

static void sha1_block(uint32_t *h, const uint8_t block[64])
{
    uint32_t w[80], a, b, c, d, e, f, k, t;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = load_be32(block + 4 * i);
    for (i = 16; i < 80; i++)
        w[i] = rotl32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);

    /* four rounds of 20, each a loop of its own: no branch per step (a
     * uuid v5 per message makes this the hot path of a backfill) */
#define SHA1_ROUND(from, to, F, K)                                  \
    for (i = (from); i < (to); i++) {                               \
        f = (F); k = (K);                                           \
        t = rotl32(a, 5) + f + e + k + w[i];                        \
        e = d; d = c; c = rotl32(b, 30); b = a; a = t;              \
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];
    SHA1_ROUND(0, 20, (b & c) | (~b & d), 0x5A827999)
    SHA1_ROUND(20, 40, b ^ c ^ d, 0x6ED9EBA1)
    SHA1_ROUND(40, 60, (b & c) | (b & d) | (c & d), 0x8F1BBCDC)
    SHA1_ROUND(60, 80, b ^ c ^ d, 0xCA62C1D6)
#undef SHA1_ROUND
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

void sha1_init(sha1_ctx *c)
{
    static const uint32_t iv[5] = {
        0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
    };
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->n = 0;
}

void sha1_update(sha1_ctx *c, const void *data, size_t len)
{
    md_update(c->h, &c->len, c->buf, &c->n, data, len, sha1_block);
}

void sha1_final(sha1_ctx *c, uint8_t out[20])
{
    int i;

    md_pad(c->h, c->len, c->buf, c->n, sha1_block);
    for (i = 0; i < 5; i++)
        store_be32(out + 4 * i, c->h[i]);
    memset(c, 0, sizeof *c);
}

/* ---- SHA-256 ------------------------------------------------------------ */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

static void sha256_block(uint32_t *h, const uint8_t block[64])
{
    uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = load_be32(block + 4 * i);
    for (i = 16; i < 64; i++) {
        uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }

    a = h[0]; b = h[1]; c = h[2]; d = h[3];
    e = h[4]; f = h[5]; g = h[6]; hh = h[7];
    for (i = 0; i < 64; i++) {
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        t1 = hh + (rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25)) + ch + K256[i] + w[i];
        t2 = (rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22)) + maj;
        hh = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void sha256_init(sha256_ctx *c)
{
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->n = 0;
}

void sha256_update(sha256_ctx *c, const void *data, size_t len)
{
    md_update(c->h, &c->len, c->buf, &c->n, data, len, sha256_block);
}

void sha256_final(sha256_ctx *c, uint8_t out[32])
{
    int i;

    md_pad(c->h, c->len, c->buf, c->n, sha256_block);
    for (i = 0; i < 8; i++)
        store_be32(out + 4 * i, c->h[i]);
    memset(c, 0, sizeof *c);
}

void sha256_hex(const void *data, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    sha256_ctx c;
    uint8_t d[32];
    int i;

    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, d);
    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 0x0F];
    }
    hex[64] = '\0';
}

/* ---- UUID v5 ------------------------------------------------------------ */

void uuid5_generate(const uint8_t ns[16], const void *name, size_t len, uint8_t out[16])
{
    sha1_ctx c;
    uint8_t d[20];

    sha1_init(&c);
    sha1_update(&c, ns, 16);
    sha1_update(&c, name, len);
    sha1_final(&c, d);
    memcpy(out, d, 16);                 /* RFC 4122 4.3: first 128 bits */
    out[6] = (uint8_t)((out[6] & 0x0F) | 0x50);     /* version 5 */
    out[8] = (uint8_t)((out[8] & 0x3F) | 0x80);     /* variant 10xx */
}

/* ---- UUID text ---------------------------------------------------------- */

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Per row of a backfill (two v5 ids each): libuuid's uuid_parse runs
 * strtoul for every byte, several times the cost of this. */
int uuid_parse_text(const char *s, uint8_t out[16])
{
    int i, b = 0;

    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return -1;
            continue;
        }
        int hi = hex_value((unsigned char)s[i]);
        if (hi < 0) return -1;
        int lo = hex_value((unsigned char)s[++i]);
        if (lo < 0) return -1;
        out[b++] = (uint8_t)(hi << 4 | lo);
    }
    return s[36] == '\0' ? 0 : -1;
}

void uuid_format_text(const uint8_t u[16], char out[37])
{
    static const char digits[] = "0123456789abcdef";
    int i, o = 0;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = digits[u[i] >> 4];
        out[o++] = digits[u[i] & 0x0F];
    }
    out[o] = '\0';
}
