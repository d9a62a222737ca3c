/* SHA-256 (FIPS 180-4, section 6.2), HMAC (RFC 2104), and the protocol's proofs (auth.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "auth.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

/* ---- SHA-256 -------------------------------------------------------------------------------- */

struct sha256 {
    uint32_t h[8];
    uint8_t block[64];
    size_t used;   /* bytes in block */
    uint64_t bits; /* message length so far */
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                      K[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof(h0));
    s->used = 0;
    s->bits = 0;
}

static void sha256_add(struct sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->bits += (uint64_t)len * 8;
    while (len) {
        size_t n = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->block + s->used, p, n);
        s->used += n;
        p += n;
        len -= n;
        if (s->used == 64) {
            sha256_block(s, s->block);
            s->used = 0;
        }
    }
}

static void sha256_end(struct sha256 *s, uint8_t out[TSV_SHA256_SIZE])
{
    uint64_t bits = s->bits;
    static const uint8_t pad = 0x80, zero = 0;
    sha256_add(s, &pad, 1);
    while (s->used != 56)
        sha256_add(s, &zero, 1);
    uint8_t length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_add(s, length, 8);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = (uint8_t)(s->h[i] >> (24 - 8 * k));
}

void tsv_sha256(const void *data, size_t len, uint8_t out[TSV_SHA256_SIZE])
{
    struct sha256 s;
    sha256_init(&s);
    sha256_add(&s, data, len);
    sha256_end(&s, out);
}

/* ---- HMAC ----------------------------------------------------------------------------------- */

struct hmac {
    struct sha256 inner;
    uint8_t opad[64];
};

static void hmac_init(struct hmac *m, const uint8_t *key, size_t key_len)
{
    uint8_t k[64] = {0}, ipad[64];
    if (key_len > 64)
        tsv_sha256(key, key_len, k);
    else
        memcpy(k, key, key_len);
    for (int i = 0; i < 64; i++) {
        ipad[i] = k[i] ^ 0x36;
        m->opad[i] = k[i] ^ 0x5c;
    }
    sha256_init(&m->inner);
    sha256_add(&m->inner, ipad, 64);
}

static void hmac_end(struct hmac *m, uint8_t out[TSV_SHA256_SIZE])
{
    uint8_t inner[TSV_SHA256_SIZE];
    sha256_end(&m->inner, inner);
    struct sha256 outer;
    sha256_init(&outer);
    sha256_add(&outer, m->opad, 64);
    sha256_add(&outer, inner, sizeof(inner));
    sha256_end(&outer, out);
}

void tsv_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t len,
                     uint8_t out[TSV_SHA256_SIZE])
{
    struct hmac m;
    hmac_init(&m, key, key_len);
    sha256_add(&m.inner, msg, len);
    hmac_end(&m, out);
}

/* ---- the protocol's proofs ------------------------------------------------------------------ */

void tsv_auth_hello_proof(const uint8_t *secret, const uint8_t *hub_nonce,
                          const uint8_t *client_nonce, uint32_t address, uint16_t role,
                          uint8_t out[TSV_SHA256_SIZE])
{
    static const char label[] = "tansiv hello";
    struct hmac m;
    hmac_init(&m, secret, TSV_SECRET_SIZE);
    sha256_add(&m.inner, label, sizeof(label) - 1);
    sha256_add(&m.inner, hub_nonce, TSV_NONCE_SIZE);
    sha256_add(&m.inner, client_nonce, TSV_NONCE_SIZE);
    sha256_add(&m.inner, &address, sizeof(address)); /* as on the wire: little-endian */
    sha256_add(&m.inner, &role, sizeof(role));
    hmac_end(&m, out);
}

void tsv_auth_welcome_proof(const uint8_t *secret, const uint8_t *hub_nonce,
                            const uint8_t *client_nonce, uint8_t out[TSV_SHA256_SIZE])
{
    static const char label[] = "tansiv welcome";
    struct hmac m;
    hmac_init(&m, secret, TSV_SECRET_SIZE);
    sha256_add(&m.inner, label, sizeof(label) - 1);
    sha256_add(&m.inner, client_nonce, TSV_NONCE_SIZE);
    sha256_add(&m.inner, hub_nonce, TSV_NONCE_SIZE);
    hmac_end(&m, out);
}

int tsv_auth_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

int tsv_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
