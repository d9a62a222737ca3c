/* libFuzzer harness: the reader of a shared-memory ring, fed by a hostile writer.
 *
 * The other end of a ring is another process: it may write any bytes and any head and tail.
 * An input gives the ring's head and tail (8 bytes each) and its data (a 4 KiB ring, the
 * rest zero); the reader takes frames until the ring is empty or it says the ring is broken,
 * and must never read or write outside the ring or its payload buffer (ASan). Then the
 * writer's side, which the hub is on a participant's ring whose tail that participant
 * moves: frames of the input's sizes are put with the head and tail the input gave, and
 * must stay inside the ring whatever those say. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm.h"
#include "tansiv-protocol.h"

#define RING 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16)
        return 0;
    struct tsv_ring *r = calloc(1, sizeof(*r) + RING);
    uint64_t head, tail;
    memcpy(&head, data, 8);
    memcpy(&tail, data + 8, 8);
    atomic_store(&r->head, head);
    atomic_store(&r->tail, tail);
    memcpy(r->data, data + 16, size - 16 < RING ? size - 16 : RING);
    struct tsv_ring_end e = {.ring = r, .size = RING};
    uint8_t *payload = malloc(TSV_MAX_PAYLOAD);
    struct tsv_header h;
    for (int i = 0; i < 1024; i++) {
        int rc = tsv_ring_get(&e, &h, payload, TSV_MAX_PAYLOAD);
        if (rc <= 0)
            break;
        if (h.len > TSV_MAX_PAYLOAD)
            abort();
    }
    atomic_store(&r->head, head);
    atomic_store(&r->tail, tail);
    for (size_t i = 16; i + 2 <= size && i < 16 + 64; i += 2) {
        h.len = (uint32_t)(data[i] | data[i + 1] << 8);
        if (tsv_ring_put(&e, &h, payload))
            break;
    }
    free(payload);
    free(r);
    return 0;
}
