/* The client side of the protocol (tansiv-protocol.h), independent of the time back end.
 *
 * Locking: every function that writes to the socket or changes the time base runs between
 * backend->enter and backend->leave (the process back end blocks its deadline signal and takes
 * ctx->lock). Readers of the time base use the sequence lock ctx->seq and never block, so that
 * vsg_gettimeofday can be called from anywhere, even while a synchronization is under way. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "client"
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client-internal.h"
#include "log.h"
#include "transport.h"

void tsv_spin_lock(atomic_flag *lock)
{
    while (atomic_flag_test_and_set_explicit(lock, memory_order_acquire))
        sched_yield();
}

void tsv_spin_unlock(atomic_flag *lock)
{
    atomic_flag_clear_explicit(lock, memory_order_release);
}

/* ---- time base ---------------------------------------------------------------------------- */

static void set_time_base(struct vsg_context *ctx, uint64_t deadline, uint64_t offset)
{
    atomic_fetch_add_explicit(&ctx->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&ctx->deadline, deadline, memory_order_relaxed);
    atomic_store_explicit(&ctx->offset, offset, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&ctx->seq, 1, memory_order_relaxed);
}

/* Consistent (deadline, virtual time not clamped). */
static void read_time(struct vsg_context *ctx, uint64_t *deadline, uint64_t *raw)
{
    for (;;) {
        uint32_t s1 = atomic_load_explicit(&ctx->seq, memory_order_acquire);
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        uint64_t d = atomic_load_explicit(&ctx->deadline, memory_order_relaxed);
        uint64_t off = atomic_load_explicit(&ctx->offset, memory_order_relaxed);
        uint64_t clk = ctx->backend->clock_ns(ctx);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&ctx->seq, memory_order_relaxed) != s1)
            continue;
        *deadline = d;
        *raw = clk > off ? clk - off : 0;
        return;
    }
}

uint64_t tsv_session_raw_now(struct vsg_context *ctx)
{
    uint64_t d, raw;
    read_time(ctx, &d, &raw);
    return raw;
}

uint64_t tsv_session_now(struct vsg_context *ctx)
{
    uint64_t d, raw;
    if (atomic_load(&ctx->state) == TSV_STATE_INIT)
        return 0;
    read_time(ctx, &d, &raw);
    return raw < d ? raw : d;
}

/* ---- frames out ---------------------------------------------------------------------------
 * Frames to the coordinator are gathered in ctx->out and written at the deadline with
 * AT_DEADLINE, in one write (or earlier when much is pending). There is always room left for
 * one header, so that the deadline, which may run in a signal handler, never allocates. */

#define OUT_INITIAL (64 * 1024)
#define OUT_FLUSH_AT (256 * 1024)

int tsv_session_init(struct vsg_context *ctx)
{
    ctx->out = malloc(OUT_INITIAL);
    ctx->out_cap = ctx->out ? OUT_INITIAL : 0;
    ctx->out_len = 0;
    return ctx->out ? 0 : ENOMEM;
}

void tsv_session_free(struct vsg_context *ctx)
{
    free(ctx->out);
    ctx->out = NULL;
}

/* Room for a frame of len payload bytes, plus the spare header. */
static int out_reserve(struct vsg_context *ctx, uint32_t len)
{
    size_t need = ctx->out_len + 2 * TSV_HEADER_SIZE + len;
    if (need <= ctx->out_cap)
        return 0;
    size_t cap = ctx->out_cap * 2;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(ctx->out, cap);
    if (!p)
        return ENOMEM;
    ctx->out = p;
    ctx->out_cap = cap;
    return 0;
}

static void out_frame(struct vsg_context *ctx, uint16_t type, uint64_t time, uint32_t dst,
                      const void *payload, uint32_t len)
{
    ctx->out_len += tsv_frame_put(ctx->out + ctx->out_len, type, time, ctx->opt.address, dst,
                                  payload, len);
}

static int out_flush(struct vsg_context *ctx)
{
    int rc = tsv_write_all(ctx->fd, ctx->out, ctx->out_len);
    ctx->out_len = 0;
    return rc;
}

/* ---- frames in ---------------------------------------------------------------------------- */

static void discard(int fd, uint32_t len)
{
    unsigned char scratch[4096];
    while (len > 0) {
        uint32_t n = len < sizeof(scratch) ? len : sizeof(scratch);
        if (tsv_read_full(fd, scratch, n) != (ssize_t)n)
            return;
        len -= n;
    }
}

/* Reads one header; 0, or -1 after logging why (end of file, I/O or framing error). */
static int read_header(struct vsg_context *ctx, struct tsv_header *h)
{
    ssize_t n = tsv_read_full(ctx->fd, h, sizeof(*h));
    if (n == 0) {
        TSV_LOG(TSV_ERROR, "coordinator closed the connection");
        return -1;
    }
    if (n < 0) {
        if (errno == ECONNRESET)
            TSV_LOG(TSV_ERROR, "coordinator closed the connection in the middle of a frame");
        else
            TSV_LOG(TSV_ERROR, "reading from the coordinator: %s", strerror(errno));
        return -1;
    }
    char why[96];
    if (tsv_header_check(h, why, sizeof(why))) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: %s", why);
        return -1;
    }
    return 0;
}

/* Stores a DELIVER frame's payload in the receive ring, or drops it with a warning. */
static int receive_delivery(struct vsg_context *ctx, const struct tsv_header *h)
{
    uint32_t head = atomic_load_explicit(&ctx->rx_head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&ctx->rx_tail, memory_order_relaxed);
    if (h->len > MAX_PACKET_SIZE || tail - head >= ctx->ring_cap) {
        TSV_LOG(TSV_WARN, "dropping a %u-byte message delivered at %llu ns: %s", h->len,
                (unsigned long long)h->time,
                h->len > MAX_PACKET_SIZE ? "larger than MAX_PACKET_SIZE" : "receive queue full");
        atomic_fetch_add(&ctx->rx_dropped, 1);
        discard(ctx->fd, h->len);
        return 0;
    }
    struct tsv_rx_slot *slot = &ctx->ring[tail % ctx->ring_cap];
    if (h->len && tsv_read_full(ctx->fd, slot->data, h->len) != (ssize_t)h->len) {
        TSV_LOG(TSV_ERROR, "reading a delivery from the coordinator: %s", strerror(errno));
        return -1;
    }
    slot->src = h->src;
    slot->dst = h->dst;
    slot->len = h->len;
    atomic_store_explicit(&ctx->rx_tail, tail + 1, memory_order_release);
    return 1;
}

/* ---- connection and start ----------------------------------------------------------------- */

int tsv_session_connect(struct vsg_context *ctx)
{
    const char *address = ctx->opt.socket;
    char why[256];
    int fd = tsv_connect(address, why, sizeof(why));
    if (fd < 0) {
        int err = errno;
        if (why[0])
            TSV_LOG(TSV_ERROR, "%s", why);
        TSV_LOG(TSV_ERROR, "cannot connect to the coordinator at %s: %s", address,
                strerror(err));
        return err;
    }
    ctx->fd = fd;
    return 0;
}

int tsv_session_start(struct vsg_context *ctx)
{
    struct tsv_hello hello = {.magic = TSV_MAGIC, .version = TSV_VERSION,
                              .role = ctx->backend->role, .pid = (uint32_t)getpid()};
    out_frame(ctx, TSV_HELLO, 0, 0, &hello, sizeof(hello));
    if (out_flush(ctx)) {
        TSV_LOG(TSV_ERROR, "sending HELLO: %s", strerror(errno));
        return EIO;
    }
    struct tsv_header h;
    if (read_header(ctx, &h))
        return EPROTO;
    if (h.type == TSV_END) {
        TSV_LOG(TSV_ERROR, "the coordinator ended the simulation before it started");
        return ECONNABORTED;
    }
    if (h.type != TSV_GOTO || h.len != 0 || h.time == 0) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: expected GOTO with a "
                           "deadline > 0 after HELLO, got type %u len %u time %llu",
                h.type, h.len, (unsigned long long)h.time);
        return EPROTO;
    }
    int rc = ctx->backend->start(ctx);
    if (rc)
        return rc;
    uint64_t now = ctx->backend->clock_ns(ctx);
    set_time_base(ctx, h.time, now);
    atomic_store(&ctx->state, TSV_STATE_RUNNING);
    return ctx->backend->arm(ctx, now + h.time);
}

/* ---- synchronization ---------------------------------------------------------------------- */

static void end_session(struct vsg_context *ctx, uint64_t at, int lost)
{
    ctx->backend->stop(ctx);
    set_time_base(ctx, at, ctx->backend->clock_ns(ctx) - at);
    if (lost)
        atomic_store(&ctx->lost, 1);
    atomic_store(&ctx->state, TSV_STATE_ENDED);
}

/* Called under ctx->lock once virtual time reached the deadline (a call before that is
 * ignored). Blocks while the coordinator holds the simulation. Returns the number of messages
 * delivered (the state is ENDED if END came), or -1 when the coordinator went away or broke
 * the protocol (ctx->lost is set). */
static int synchronize(struct vsg_context *ctx)
{
    if (atomic_load(&ctx->state) != TSV_STATE_RUNNING)
        return 0;
    uint64_t d, raw;
    read_time(ctx, &d, &raw);
    if (raw < d)
        return 0; /* a stale or early signal */

    out_frame(ctx, TSV_AT_DEADLINE, d, 0, NULL, 0);
    if (out_flush(ctx)) {
        TSV_LOG(TSV_ERROR, "sending AT_DEADLINE(%llu): %s", (unsigned long long)d,
                strerror(errno));
        goto lost;
    }
    int delivered = 0;
    for (;;) {
        struct tsv_header h;
        if (read_header(ctx, &h))
            goto lost;
        switch (h.type) {
        case TSV_DELIVER:
            if (h.time != d) {
                TSV_LOG(TSV_ERROR, "protocol error from the coordinator: delivery at %llu ns "
                                   "while stopped at the deadline %llu ns",
                        (unsigned long long)h.time, (unsigned long long)d);
                goto lost;
            }
            switch (receive_delivery(ctx, &h)) {
            case 1:
                delivered++;
                break;
            case -1:
                goto lost;
            }
            break;
        case TSV_GOTO:
            if (h.len != 0 || h.time <= d) {
                TSV_LOG(TSV_ERROR, "protocol error from the coordinator: GOTO(%llu ns, %u "
                                   "bytes) at the deadline %llu ns",
                        (unsigned long long)h.time, h.len, (unsigned long long)d);
                goto lost;
            }
            uint64_t now = ctx->backend->clock_ns(ctx);
            /* Hide every ns spent since the deadline: virtual time resumes at d. */
            set_time_base(ctx, h.time, now - d);
            if (ctx->backend->arm(ctx, now - d + h.time))
                goto lost;
            return delivered;
        case TSV_END:
            TSV_LOG(TSV_INFO, "the coordinator ended the simulation at %llu ns",
                    (unsigned long long)d);
            discard(ctx->fd, h.len);
            end_session(ctx, d, 0);
            return delivered;
        default:
            TSV_LOG(TSV_ERROR, "protocol error from the coordinator: unexpected frame type %u "
                               "at the deadline %llu ns", h.type, (unsigned long long)d);
            goto lost;
        }
    }
lost:
    end_session(ctx, d, 1);
    return -1;
}

void tsv_session_notify(struct vsg_context *ctx, int n)
{
    for (int i = 0; i < n; i++)
        if (ctx->recv_cb)
            ctx->recv_cb(ctx->recv_cb_arg);
    if (atomic_load(&ctx->state) == TSV_STATE_ENDED) {
        if (!atomic_exchange(&ctx->end_told, 1) && ctx->backend->on_end)
            ctx->backend->on_end(ctx, atomic_load(&ctx->lost));
        return;
    }
    if (ctx->deadline_cb && atomic_load(&ctx->state) == TSV_STATE_RUNNING) {
        uint64_t d = atomic_load(&ctx->deadline);
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000000),
                              .tv_nsec = (long)(d % 1000000000)};
        ctx->deadline_cb(ctx->deadline_cb_arg, ts);
    }
}

/* Both back ends' deadline callback. The lock is taken directly, not through backend->enter:
 * the process back end runs this in its signal handler, where the signal is already blocked. */
void tsv_session_deadline(struct vsg_context *ctx)
{
    tsv_spin_lock(&ctx->lock);
    int n = synchronize(ctx);
    tsv_spin_unlock(&ctx->lock);
    tsv_session_notify(ctx, n > 0 ? n : 0);
}

/* Sends at the current virtual time; first synchronizes if the deadline is already reached,
 * so that every send is stamped inside the slice it belongs to. *delivered counts messages
 * delivered by such synchronizations. */
int tsv_session_send(struct vsg_context *ctx, uint32_t dst, uint32_t len, const uint8_t *msg,
                     int *delivered)
{
    *delivered = 0;
    for (;;) {
        int state = atomic_load(&ctx->state);
        if (state == TSV_STATE_INIT)
            return ENOTCONN;
        if (state != TSV_STATE_RUNNING)
            return EPIPE;
        uint64_t d, raw;
        read_time(ctx, &d, &raw);
        if (raw < d) {
            if (out_reserve(ctx, len))
                return ENOMEM;
            out_frame(ctx, TSV_SEND, raw, dst, msg, len);
            if (ctx->out_len >= OUT_FLUSH_AT && out_flush(ctx)) {
                TSV_LOG(TSV_ERROR, "sending to the coordinator: %s", strerror(errno));
                end_session(ctx, d, 1);
                return EPIPE;
            }
            return 0;
        }
        int n = synchronize(ctx);
        if (n < 0)
            return EPIPE;
        *delivered += n;
    }
}

void tsv_session_close(struct vsg_context *ctx)
{
    if (atomic_load(&ctx->state) == TSV_STATE_RUNNING) {
        if (ctx->out_len && out_flush(ctx)) /* what was sent before leaving still counts */
            TSV_LOG(TSV_WARN, "could not hand the last packets to the coordinator: %s",
                    strerror(errno));
        uint64_t now = tsv_session_now(ctx);
        ctx->backend->stop(ctx);
        set_time_base(ctx, now, ctx->backend->clock_ns(ctx) - now);
        atomic_store(&ctx->state, TSV_STATE_STOPPED);
    }
    if (ctx->fd >= 0) {
        close(ctx->fd);
        ctx->fd = -1;
    }
}
