/* Mutual authentication over TCP without the secret on the wire (tansiv-protocol.h, "TCP").
 *
 * The hub sends a fresh nonce (CHALLENGE); the client answers in its HELLO with a nonce of
 * its own and HMAC-SHA256(secret, "tansiv hello" | hub nonce | client nonce | address | role);
 * the hub, once it checked that, proves it knows the secret too (WELCOME: HMAC-SHA256(secret,
 * "tansiv welcome" | client nonce | hub nonce)). A listener learns nothing of the secret, and
 * neither end can be played by one that does not know it; what follows is not encrypted.
 *
 * SHA-256 is FIPS 180-4's, HMAC is RFC 2104's; tested against their published vectors
 * (tests/test_auth.py, through the hub's library). */
#ifndef TANSIV_AUTH_H
#define TANSIV_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "tansiv-protocol.h"

#define TSV_SHA256_SIZE 32

void tsv_sha256(const void *data, size_t len, uint8_t out[TSV_SHA256_SIZE]);
void tsv_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t len,
                     uint8_t out[TSV_SHA256_SIZE]);

/* The HELLO's proof and the WELCOME's. */
void tsv_auth_hello_proof(const uint8_t *secret, const uint8_t *hub_nonce,
                          const uint8_t *client_nonce, uint32_t address, uint16_t role,
                          uint8_t out[TSV_SHA256_SIZE]);
void tsv_auth_welcome_proof(const uint8_t *secret, const uint8_t *hub_nonce,
                            const uint8_t *client_nonce, uint8_t out[TSV_SHA256_SIZE]);

/* Whether two buffers are equal, in a time that does not depend on where they differ. */
int tsv_auth_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* len bytes from the kernel's random source: 0, or -1 with errno set. */
int tsv_random(void *buf, size_t len);

#endif
