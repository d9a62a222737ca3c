/* Shared memory between the hub and its local participants: futexes, single-producer
 * single-consumer rings of frames, and the memory they live in (memfds, passed over the Unix
 * socket). Both ends, as transport.h: what one writes, the other reads.
 *
 * A ring carries whole frames (tansiv-protocol.h: header, payload), each padded to 8 bytes;
 * a frame may wrap around the end. The producer owns `head`, the consumer `tail`: each
 * reads the other's with acquire and publishes its own with release, so neither locks. The
 * memory is shared with the other end, which may be buggy: a consumer copies a frame out
 * before checking it, and checks every length against the ring's size. */
#ifndef TANSIV_SHM_H
#define TANSIV_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tansiv-protocol.h"

/* ---- futexes (shared between processes: not the private variants) ---- */

/* Sleeps while *word == expected, at most timeout_ms (< 0: no limit). 0 when woken or the
 * value already differed, -1 with errno ETIMEDOUT, EINTR... */
int tsv_futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms);
/* Wakes up to n sleepers on word. */
void tsv_futex_wake(_Atomic uint32_t *word, int n);

/* ---- rings ---- */

struct tsv_ring {
    _Atomic uint64_t head;  /* bytes produced so far */
    uint8_t pad1[56];       /* head and tail on cache lines of their own */
    _Atomic uint64_t tail;  /* bytes consumed so far */
    _Atomic uint32_t wake;  /* futex: the participant sleeps on it, for room or for frames */
    _Atomic uint32_t producer_waits; /* the producer needs room: tell it when there is */
    _Atomic uint32_t consumer_waits; /* the consumer needs frames: tell it when there are */
    uint8_t pad2[44];
    uint8_t data[];         /* as many bytes as the two ends agreed at set-up */
};

/* One end's view of a ring: the ring's size is its own copy (a power of two), never read
 * back from the shared memory, which the other end could change. */
struct tsv_ring_end {
    struct tsv_ring *ring;
    uint64_t size;
};

/* The bytes a frame of len payload bytes takes in a ring. */
size_t tsv_ring_frame_size(uint32_t len);
/* Appends a frame; 0, or -1 if there is not room for it now (nothing written). */
int tsv_ring_put(const struct tsv_ring_end *e, const struct tsv_header *h, const void *payload);
/* Copies the oldest frame out: 1 (*h and payload[0..h->len) set), 0 if the ring is empty,
 * -1 if what is there is not a frame that fits in the ring or in payload_cap (the producer
 * broke it). */
int tsv_ring_get(const struct tsv_ring_end *e, struct tsv_header *h, void *payload,
                 size_t payload_cap);
/* Room left for the producer. */
uint64_t tsv_ring_free(const struct tsv_ring_end *e);

/* Tells the participant sleeping on r's wake, if it asked (flag: producer_waits or
 * consumer_waits). */
void tsv_ring_tell(struct tsv_ring *r, _Atomic uint32_t *flag);

/* ---- the barrier and the channels ---- */

/* One page shared by the hub and all its local participants. */
struct tsv_shm_barrier {
    _Atomic int32_t remaining;  /* participants yet to reach the deadline; the last one to get
                                   there wakes the hub (a hint: the hub checks each) */
};
#define TSV_SHM_BARRIER_SIZE 4096

/* A participant's channel: two rings of ring_size bytes, one after the other. */
enum { TSV_RING_TO_HUB = 0, TSV_RING_TO_PARTICIPANT = 1 };
size_t tsv_shm_channel_size(uint32_t ring_size);
struct tsv_ring_end tsv_shm_channel_ring(void *channel, uint32_t ring_size, int which);
/* Whether n is a ring size both ends accept: a power of two, from 128 KiB (a frame of the
 * largest payload fits) to 1 GiB. */
int tsv_shm_ring_size_ok(uint64_t n);

/* ---- shared memory ---- */

/* A memfd of size bytes, mapped; -1 on failure (errno set). */
int tsv_shm_create(const char *name, size_t size, void **map);
/* Maps a received memfd of at least size bytes; NULL on failure (errno set). */
void *tsv_shm_map(int fd, size_t size);

#endif
