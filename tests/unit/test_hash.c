/* Unit tests for src/hash.c: SHA-1, SHA-256 and UUID v5 against published
 * vectors (FIPS 180-2 examples, RFC 4122 / Python uuid module) plus lengths
 * around the 55/56/64-byte padding boundaries (values from Python hashlib). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

static void to_hex(const uint8_t *d, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 0x0F];
    }
    hex[2 * n] = '\0';
}

static void sha1_hex_of(const void *data, size_t len, char hex[41])
{
    sha1_ctx c;
    uint8_t d[20];

    sha1_init(&c);
    sha1_update(&c, data, len);
    sha1_final(&c, d);
    to_hex(d, 20, hex);
}

static void sha256_hex_of(const void *data, size_t len, char hex[65])
{
    sha256_ctx c;
    uint8_t d[32];

    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, d);
    to_hex(d, 32, hex);
}

/* Formats a UUID the canonical 8-4-4-4-12 way. */
static void uuid_str(const uint8_t u[16], char s[37])
{
    char hex[33];

    to_hex(u, 16, hex);
    snprintf(s, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}

static const char FIPS_448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

/* Deterministic filler used for the boundary-length vectors. */
static void pattern(uint8_t *buf, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
}

struct len_vector { size_t len; const char *sha1; const char *sha256; };

static const struct len_vector LEN_VECTORS[] = {
    { 55, "ddf57317ef34bfee3b6df83d359098930eb278bc",
          "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b" },
    { 56, "a0d492bb0fc889d0eca3bc137066ab6f4f74f369",
          "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27" },
    { 57, "11a02dcf95859677a62e75024067c22b165d890f",
          "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73" },
    { 63, "c55856749bef509bdfe6bfebfc7bf4e793e82132",
          "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055" },
    { 64, "bede92be29c3874e1b54ddc77988d606fc857a8e",
          "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241" },
    { 65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f",
          "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e" },
    { 119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23",
           "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e" },
    { 120, "82134b02fb3f702491be9bed581eeab59334acb2",
           "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5" },
    { 127, "34d5e582029e9b9b85b2febe31da3db7cdabaaea",
           "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07" },
    { 128, "a09133e6730ffe899efb70204cb5646cd5dc24ee",
           "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6" },
    { 129, "808aea332ce367541d37adae7f94e59c5c1a934e",
           "307f8fc2c1622b92762e818d39a185d4d667ad49a4b07ceae1f4afa008a93ec4" },
    { 1000, "4231a8a50a10fa9758db8ec71fdef855b751048a",
            "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371" },
};

/* ---- SHA-1 -------------------------------------------------------------- */

static void test_sha1_abc(void **state)
{
    char hex[41];
    (void)state;

    sha1_hex_of("abc", 3, hex);
    assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

static void test_sha1_empty(void **state)
{
    char hex[41];
    (void)state;

    sha1_hex_of("", 0, hex);
    assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1_hex_of(NULL, 0, hex);
    assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

static void test_sha1_448bit(void **state)
{
    char hex[41];
    (void)state;

    sha1_hex_of(FIPS_448, strlen(FIPS_448), hex);
    assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void test_sha1_million_a(void **state)
{
    char chunk[1000], hex[41];
    uint8_t d[20];
    sha1_ctx c;
    int i;
    (void)state;

    memset(chunk, 'a', sizeof chunk);
    sha1_init(&c);
    for (i = 0; i < 1000; i++)
        sha1_update(&c, chunk, sizeof chunk);
    sha1_final(&c, d);
    to_hex(d, 20, hex);
    assert_string_equal(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void test_sha1_padding_boundaries(void **state)
{
    uint8_t buf[1000];
    char hex[41];
    size_t i;
    (void)state;

    pattern(buf, sizeof buf);
    for (i = 0; i < sizeof LEN_VECTORS / sizeof LEN_VECTORS[0]; i++) {
        sha1_hex_of(buf, LEN_VECTORS[i].len, hex);
        assert_string_equal(hex, LEN_VECTORS[i].sha1);
    }
}

/* ---- SHA-256 ------------------------------------------------------------ */

static void test_sha256_abc(void **state)
{
    char hex[65];
    (void)state;

    sha256_hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_empty(void **state)
{
    char hex[65];
    (void)state;

    sha256_hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex_of(NULL, 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sha256_448bit(void **state)
{
    char hex[65];
    (void)state;

    sha256_hex_of(FIPS_448, strlen(FIPS_448), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_million_a(void **state)
{
    char hex[65];
    char *big = malloc(1000000);
    (void)state;

    assert_non_null(big);
    memset(big, 'a', 1000000);
    sha256_hex_of(big, 1000000, hex);     /* one update, many whole blocks */
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    sha256_hex(big, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(big);
}

static void test_sha256_padding_boundaries(void **state)
{
    uint8_t buf[1000];
    char hex[65];
    size_t i;
    (void)state;

    pattern(buf, sizeof buf);
    for (i = 0; i < sizeof LEN_VECTORS / sizeof LEN_VECTORS[0]; i++) {
        sha256_hex_of(buf, LEN_VECTORS[i].len, hex);
        assert_string_equal(hex, LEN_VECTORS[i].sha256);
    }
}

/* Any split of the input across update calls gives the one-shot digest:
 * byte by byte, and at every single split point (covers partial-buffer
 * top-up landing exactly on, before and after a block boundary). */
static void test_sha256_incremental(void **state)
{
    uint8_t buf[200], d[32];
    char one[65], inc[65];
    sha256_ctx c;
    size_t n, cut, i;
    (void)state;

    pattern(buf, sizeof buf);
    for (n = 0; n <= sizeof buf; n += 13) {
        sha256_hex(buf, n, one);

        sha256_init(&c);
        for (i = 0; i < n; i++)
            sha256_update(&c, buf + i, 1);
        sha256_final(&c, d);
        to_hex(d, 32, inc);
        assert_string_equal(inc, one);

        for (cut = 0; cut <= n; cut++) {
            sha256_init(&c);
            sha256_update(&c, buf, cut);
            sha256_update(&c, NULL, 0);
            sha256_update(&c, buf + cut, n - cut);
            sha256_final(&c, d);
            to_hex(d, 32, inc);
            assert_string_equal(inc, one);
        }
    }
}

static void test_sha1_incremental(void **state)
{
    uint8_t buf[200], d[20];
    char one[41], inc[41];
    sha1_ctx c;
    size_t n, cut;
    (void)state;

    pattern(buf, sizeof buf);
    for (n = 0; n <= sizeof buf; n += 11) {
        sha1_hex_of(buf, n, one);
        for (cut = 0; cut <= n; cut++) {
            sha1_init(&c);
            sha1_update(&c, buf, cut);
            sha1_update(&c, buf + cut, n - cut);
            sha1_final(&c, d);
            to_hex(d, 20, inc);
            assert_string_equal(inc, one);
        }
    }
}

static void test_sha256_hex_format(void **state)
{
    char hex[65];
    size_t i;
    (void)state;

    memset(hex, 'X', sizeof hex);
    sha256_hex("abc", 3, hex);
    assert_int_equal(hex[64], '\0');
    for (i = 0; i < 64; i++)
        assert_true((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
}

/* ---- UUID v5 ------------------------------------------------------------ */

static const uint8_t NS_DNS[16] = {
    0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
    0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8
};
static const uint8_t NS_URL[16] = {
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
    0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8
};

static void test_uuid5_python_org(void **state)
{
    uint8_t u[16];
    char s[37];
    (void)state;

    uuid5_generate(NS_DNS, "python.org", 10, u);
    uuid_str(u, s);
    assert_string_equal(s, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

/* Extra vectors from Python's uuid.uuid5. */
static void test_uuid5_more_vectors(void **state)
{
    uint8_t u[16];
    char s[37];
    const char *url = "https://example.com/ferry";
    (void)state;

    uuid5_generate(NS_URL, url, strlen(url), u);
    uuid_str(u, s);
    assert_string_equal(s, "3d53a296-7da9-51f2-ba01-a2aa26940f41");

    uuid5_generate(NS_DNS, "", 0, u);
    uuid_str(u, s);
    assert_string_equal(s, "4ebd0208-8328-5d69-8c44-ec50939c0967");
}

static void test_uuid5_version_variant(void **state)
{
    uint8_t u[16], again[16];
    char name[16];
    int i;
    (void)state;

    for (i = 0; i < 200; i++) {
        int n = snprintf(name, sizeof name, "n%d", i);
        uuid5_generate(NS_DNS, name, (size_t)n, u);
        assert_int_equal(u[6] >> 4, 5);             /* version nibble */
        assert_int_equal(u[8] & 0xC0, 0x80);        /* RFC 4122 variant */
        uuid5_generate(NS_DNS, name, (size_t)n, again);
        assert_memory_equal(u, again, 16);          /* deterministic */
    }
    uuid5_generate(NS_URL, "n0", 2, again);
    uuid5_generate(NS_DNS, "n0", 2, u);
    assert_memory_not_equal(u, again, 16);          /* namespace matters */
}

/* uuid_parse_text accepts what libuuid's uuid_parse accepts: 36
 * characters, hyphens at 8, 13, 18 and 23, hex digits (either case) elsewhere. */
static void test_uuid_parse_text(void **state)
{
    uint8_t u[16];
    char s[37];
    (void)state;

    assert_int_equal(uuid_parse_text("886313e1-3b8a-5372-9b90-0c9aee199e5d", u), 0);
    uuid_str(u, s);
    assert_string_equal(s, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    assert_int_equal(uuid_parse_text("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", u), 0);
    assert_memory_equal(u, NS_DNS, 16);
    assert_int_equal(uuid_parse_text("6ba7b810-9dad-11d1-80b4-00c04fd430c8", u), 0);
    assert_memory_equal(u, NS_DNS, 16);

    assert_int_equal(uuid_parse_text("", u), -1);
    assert_int_equal(uuid_parse_text("886313e1-3b8a-5372-9b90-0c9aee199e5", u), -1);    /* 35 */
    assert_int_equal(uuid_parse_text("886313e1-3b8a-5372-9b90-0c9aee199e5d0", u), -1);  /* 37 */
    assert_int_equal(uuid_parse_text("886313e1a3b8a-5372-9b90-0c9aee199e5d", u), -1);   /* no hyphen */
    assert_int_equal(uuid_parse_text("886313e1-3b8a-5372-9b90-0c9aee199e5g", u), -1);  /* not hex */
    assert_int_equal(uuid_parse_text("886313e1-3b8a-5372-9b90-0c9a-e199e5d", u), -1);  /* hyphen misplaced */
    assert_int_equal(uuid_parse_text("{86313e1-3b8a-5372-9b90-0c9aee199e5}", u), -1);
    assert_int_equal(uuid_parse_text("886313e1 3b8a 5372 9b90 0c9aee199e5d", u), -1);
}

static void test_uuid_format_text(void **state)
{
    char s[37];
    (void)state;

    uuid_format_text(NS_URL, s);
    assert_string_equal(s, "6ba7b811-9dad-11d1-80b4-00c04fd430c8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_parse_text),
        cmocka_unit_test(test_uuid_format_text),
        cmocka_unit_test(test_sha1_abc),
        cmocka_unit_test(test_sha1_empty),
        cmocka_unit_test(test_sha1_448bit),
        cmocka_unit_test(test_sha1_million_a),
        cmocka_unit_test(test_sha1_padding_boundaries),
        cmocka_unit_test(test_sha1_incremental),
        cmocka_unit_test(test_sha256_abc),
        cmocka_unit_test(test_sha256_empty),
        cmocka_unit_test(test_sha256_448bit),
        cmocka_unit_test(test_sha256_million_a),
        cmocka_unit_test(test_sha256_padding_boundaries),
        cmocka_unit_test(test_sha256_incremental),
        cmocka_unit_test(test_sha256_hex_format),
        cmocka_unit_test(test_uuid5_python_org),
        cmocka_unit_test(test_uuid5_more_vectors),
        cmocka_unit_test(test_uuid5_version_variant),
    };
    return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
