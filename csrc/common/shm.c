/* See shm.h. Built into the hub, the client library and QEMU's tantap. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ALIGN 8

int tsv_futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected,
                      timeout_ms < 0 ? NULL : &ts, NULL, 0);
    if (rc == 0 || errno == EAGAIN)
        return 0;
    return -1;
}

void tsv_futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

size_t tsv_ring_frame_size(uint32_t len)
{
    return (TSV_HEADER_SIZE + (size_t)len + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

uint64_t tsv_ring_free(const struct tsv_ring_end *e)
{
    uint64_t head = atomic_load_explicit(&e->ring->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&e->ring->tail, memory_order_acquire);
    uint64_t used = head - tail;
    return used > e->size ? 0 : e->size - used;
}

/* Copies between linear memory and the ring at position pos, wrapping around its end. */
static void copy_in(const struct tsv_ring_end *e, uint64_t pos, const void *src, size_t n)
{
    size_t at = (size_t)(pos & (e->size - 1)), first = n < e->size - at ? n : e->size - at;
    memcpy(e->ring->data + at, src, first);
    memcpy(e->ring->data, (const uint8_t *)src + first, n - first);
}

static void copy_out(const struct tsv_ring_end *e, uint64_t pos, void *dst, size_t n)
{
    size_t at = (size_t)(pos & (e->size - 1)), first = n < e->size - at ? n : e->size - at;
    memcpy(dst, e->ring->data + at, first);
    memcpy((uint8_t *)dst + first, e->ring->data, n - first);
}

int tsv_ring_put(const struct tsv_ring_end *e, const struct tsv_header *h, const void *payload)
{
    size_t need = tsv_ring_frame_size(h->len);
    if (tsv_ring_free(e) < need)
        return -1;
    uint64_t head = atomic_load_explicit(&e->ring->head, memory_order_relaxed);
    copy_in(e, head, h, TSV_HEADER_SIZE);
    if (h->len)
        copy_in(e, head + TSV_HEADER_SIZE, payload, h->len);
    atomic_store_explicit(&e->ring->head, head + need, memory_order_release);
    return 0;
}

int tsv_ring_get(const struct tsv_ring_end *e, struct tsv_header *h, void *payload,
                 size_t payload_cap)
{
    uint64_t tail = atomic_load_explicit(&e->ring->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&e->ring->head, memory_order_acquire);
    if (head == tail)
        return 0;
    uint64_t used = head - tail;
    if (used < TSV_HEADER_SIZE || used > e->size)
        return -1;
    copy_out(e, tail, h, TSV_HEADER_SIZE);
    size_t size = tsv_ring_frame_size(h->len);
    if (h->len > payload_cap || size > used)
        return -1;
    if (h->len)
        copy_out(e, tail + TSV_HEADER_SIZE, payload, h->len);
    atomic_store_explicit(&e->ring->tail, tail + size, memory_order_release);
    return 1;
}

void tsv_ring_tell(struct tsv_ring *r, _Atomic uint32_t *flag)
{
    /* Orders the ring's head or tail just published before reading the flag: the other end
     * sets the flag, then looks at the ring again before it sleeps (no lost wake-up). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_exchange(flag, 0)) {
        atomic_fetch_add(&r->wake, 1);
        tsv_futex_wake(&r->wake, 1);
    }
}

int tsv_shm_ring_size_ok(uint64_t n)
{
    return n >= (128u << 10) && n <= (1u << 30) && (n & (n - 1)) == 0;
}

size_t tsv_shm_channel_size(uint32_t ring_size)
{
    return 2 * (sizeof(struct tsv_ring) + (size_t)ring_size);
}

struct tsv_ring_end tsv_shm_channel_ring(void *channel, uint32_t ring_size, int which)
{
    uint8_t *at = (uint8_t *)channel + (size_t)which * (sizeof(struct tsv_ring) + ring_size);
    return (struct tsv_ring_end){(struct tsv_ring *)at, ring_size};
}

int tsv_shm_create(const char *name, size_t size, void **map)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    /* Sealed at its size: a participant holding it cannot shrink it under the hub's mapping
     * (whose next access would then be a SIGBUS) nor grow it, nor unseal it. */
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
        !(*map = tsv_shm_map(fd, size))) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

void *tsv_shm_map(int fd, size_t size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    if ((size_t)st.st_size < size) {
        errno = EINVAL;
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}
