/* The client side of the protocol (tansiv-protocol.h), independent of the time back end.
 *
 * Locking: every function that writes to the hub or changes the time base runs between
 * backend->enter and backend->leave (the process back end blocks its deadline signal and takes
 * ctx->lock). Readers of the time base never wait for a writer (two copies, ctx->seq), so
 * that vsg_gettimeofday can be called from anywhere, even from a signal handler that
 * interrupted a synchronization. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "client"
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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

/* Two copies of the time base: the writer fills the one readers do not use, then publishes it
 * by bumping seq (whose low bit names the current copy). A reader never waits for a write in
 * progress, not even a signal handler that interrupted the writer on its own thread; it only
 * retries if a copy was published while it read. */
static void set_time_base(struct vsg_context *ctx, uint64_t deadline, uint64_t offset)
{
    uint32_t s = atomic_load_explicit(&ctx->seq, memory_order_relaxed);
    struct tsv_time_base *next = &ctx->time_base[(s + 1) & 1];
    /* A reader that sees what follows sees seq >= s too (with its acquire fence), hence
     * knows the copy it read changed under it. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&next->deadline, deadline, memory_order_relaxed);
    atomic_store_explicit(&next->offset, offset, memory_order_relaxed);
    atomic_store_explicit(&ctx->seq, s + 1, memory_order_release);
}

/* Consistent (deadline, virtual time not clamped). */
static void read_time(struct vsg_context *ctx, uint64_t *deadline, uint64_t *raw)
{
    for (;;) {
        uint32_t s1 = atomic_load_explicit(&ctx->seq, memory_order_acquire);
        const struct tsv_time_base *tb = &ctx->time_base[s1 & 1];
        uint64_t d = atomic_load_explicit(&tb->deadline, memory_order_relaxed);
        uint64_t off = atomic_load_explicit(&tb->offset, memory_order_relaxed);
        uint64_t clk = ctx->backend->clock_ns(ctx);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&ctx->seq, memory_order_relaxed) != s1)
            continue; /* a newer copy, being written over the one read: read again */
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

/* ---- frames ------------------------------------------------------------------------------ */

int tsv_session_init(struct vsg_context *ctx)
{
    tsv_trace_open(&ctx->trace, ctx->opt.address);
    ctx->hubconn.event_fd = -1;
    ctx->scratch = malloc(TSV_MAX_PAYLOAD);
    return ctx->scratch ? 0 : ENOMEM;
}

void tsv_session_free(struct vsg_context *ctx)
{
    tsv_trace_close(&ctx->trace);
    free(ctx->scratch);
    ctx->scratch = NULL;
}

/* Stores a delivery's payload (ctx->scratch) in the receive ring, or drops it with a
 * warning: 1 if stored, 0 if dropped. */
static int receive_delivery(struct vsg_context *ctx, const struct tsv_header *h)
{
    uint32_t head = atomic_load_explicit(&ctx->rx_head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&ctx->rx_tail, memory_order_relaxed);
    if (h->len > MAX_PACKET_SIZE || tail - head >= ctx->ring_cap) {
        TSV_LOG(TSV_WARN, "dropping a %u-byte message delivered at %llu ns: %s", h->len,
                (unsigned long long)h->time,
                h->len > MAX_PACKET_SIZE ? "larger than MAX_PACKET_SIZE" : "receive queue full");
        atomic_fetch_add(&ctx->rx_dropped, 1);
        return 0;
    }
    struct tsv_rx_slot *slot = &ctx->ring[tail % ctx->ring_cap];
    memcpy(slot->data, ctx->scratch, h->len);
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
    struct tsv_header h;
    /* A VM's clock is its virtual date (a VM restored from a snapshot: the snapshot's); a
     * process starts at 0. The simulation starts at the latest of its participants' dates. */
    int vm = ctx->backend->role == TSV_ROLE_VM;
    uint64_t date = vm ? ctx->backend->clock_ns(ctx) : 0;
    if (tsv_hubconn_open(ctx, ctx->backend->role, date, &h))
        return EPROTO;
    if (h.type == TSV_END) {
        TSV_LOG(TSV_ERROR, "the coordinator ended the simulation before it started");
        return ECONNABORTED;
    }
    struct tsv_date start = {.ns = date};
    if (h.type == TSV_GOTO && h.len == sizeof(start))
        memcpy(&start, ctx->scratch, sizeof(start));
    if (h.type != TSV_GOTO || (h.len != 0 && h.len != sizeof(start)) || start.ns < date ||
        h.time <= start.ns) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: expected GOTO with a "
                           "deadline after the start (%llu ns, ours %llu ns) after HELLO, got "
                           "type %u len %u time %llu", (unsigned long long)start.ns,
                (unsigned long long)date, h.type, h.len, (unsigned long long)h.time);
        return EPROTO;
    }
    int rc = ctx->backend->start(ctx);
    if (rc)
        return rc;
    /* Behind the start: a VM's time jumps there (as after an idle stretch); a process's
     * virtual time is its clock less an offset. */
    if (vm && start.ns > date && ctx->backend->jump)
        ctx->backend->jump(ctx, start.ns - date);
    uint64_t now = ctx->backend->clock_ns(ctx);
    if (now < start.ns) {
        TSV_LOG(TSV_ERROR, "the simulation starts at %llu ns, beyond this clock (%llu ns)",
                (unsigned long long)start.ns, (unsigned long long)now);
        return EPROTO;
    }
    set_time_base(ctx, h.time, now - start.ns);
    atomic_store(&ctx->state, TSV_STATE_RUNNING);
    return ctx->backend->arm(ctx, now - start.ns + h.time);
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

int tsv_session_has_message(struct vsg_context *ctx)
{
    return atomic_load_explicit(&ctx->rx_head, memory_order_relaxed) !=
           atomic_load_explicit(&ctx->rx_tail, memory_order_acquire);
}

/* At the deadline d: the date before which this participant does nothing by itself, or 0.
 * Something received and not yet read is something to do. */
static uint64_t idle_date(struct vsg_context *ctx, uint64_t d)
{
    if (!ctx->backend->idle_until || tsv_session_has_message(ctx))
        return 0;
    uint64_t u = ctx->backend->idle_until(ctx, d);
    return u > d ? u : 0;
}

/* The hub left this idle participant out of rounds: its time jumps from *d to t, which must
 * be before the date it said it was idle until. 0, or -1 (protocol error, logged). */
static int jump(struct vsg_context *ctx, uint64_t *d, uint64_t idle, uint64_t t,
                const char *what)
{
    if (!idle || t <= *d || t >= idle) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: %s at %llu ns while stopped "
                           "at the deadline %llu ns (idle until %llu ns)",
                what, (unsigned long long)t, (unsigned long long)*d, (unsigned long long)idle);
        return -1;
    }
    if (ctx->backend->jump)
        ctx->backend->jump(ctx, t - *d);
    *d = t;
    return 0;
}

/* Wakes the threads in vsg_wait (async-signal-safe). */
static void wake_waiters(struct vsg_context *ctx)
{
    atomic_fetch_add(&ctx->wake_gen, 1);
    if (atomic_load(&ctx->waiters) > 0)
        syscall(SYS_futex, &ctx->wake_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
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

    tsv_trace_reached(&ctx->trace);
    uint64_t idle = idle_date(ctx, d);
    struct tsv_date date = {.ns = idle};
    if (tsv_hubconn_send(ctx, TSV_AT_DEADLINE, d, 0, idle ? &date : NULL,
                         idle ? (uint32_t)sizeof(date) : 0)) {
        TSV_LOG(TSV_ERROR, "sending AT_DEADLINE(%llu): %s", (unsigned long long)d,
                strerrordesc_np(errno)); /* strerror is not async-signal-safe */
        goto lost;
    }
    tsv_hubconn_reached(ctx);
    tsv_trace_sent(&ctx->trace);
    int delivered = 0;
    for (;;) {
        struct tsv_header h;
        if (tsv_hubconn_read(ctx, &h))
            goto lost;
        switch (h.type) {
        case TSV_DELIVER:
            if (h.time != d && jump(ctx, &d, idle, h.time, "delivery"))
                goto lost;
            delivered += receive_delivery(ctx, &h);
            break;
        case TSV_GOTO: {
            struct tsv_date from = {.ns = d};
            if (h.len == sizeof(from))
                memcpy(&from, ctx->scratch, sizeof(from));
            if ((h.len != 0 && h.len != sizeof(from)) || h.time <= from.ns) {
                TSV_LOG(TSV_ERROR, "protocol error from the coordinator: GOTO(%llu ns, %u "
                                   "bytes) at the deadline %llu ns",
                        (unsigned long long)h.time, h.len, (unsigned long long)d);
                goto lost;
            }
            if (from.ns != d && jump(ctx, &d, idle, from.ns, "GOTO from"))
                goto lost;
            uint64_t now = ctx->backend->clock_ns(ctx);
            /* Hide every ns spent since the deadline: virtual time resumes at d. */
            set_time_base(ctx, h.time, now - d);
            if (ctx->backend->arm(ctx, now - d + h.time))
                goto lost;
            tsv_trace_resumed(&ctx->trace, d, ctx->backend->work ? ctx->backend->work(ctx) : 0);
            wake_waiters(ctx);
            return delivered;
        }
        case TSV_END:
            if (h.time > d && idle && jump(ctx, &d, idle, h.time, "END"))
                goto lost;
            TSV_LOG(TSV_INFO, "the coordinator ended the simulation at %llu ns",
                    (unsigned long long)d);
            end_session(ctx, d, 0);
            wake_waiters(ctx);
            return delivered;
        default:
            TSV_LOG(TSV_ERROR, "protocol error from the coordinator: unexpected frame type %u "
                               "at the deadline %llu ns", h.type, (unsigned long long)d);
            goto lost;
        }
    }
lost:
    end_session(ctx, d, 1);
    wake_waiters(ctx);
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
        uint64_t d, raw;
        read_time(ctx, &d, &raw);
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
    atomic_store(&ctx->sync_tid, (int)syscall(SYS_gettid));
    int n = synchronize(ctx);
    if (atomic_exchange(&ctx->stop_asked, 0))
        tsv_session_close(ctx); /* vsg_stop came from a handler while we were held */
    atomic_store(&ctx->sync_tid, 0);
    tsv_spin_unlock(&ctx->lock);
    tsv_session_notify(ctx, n > 0 ? n : 0);
}

int tsv_session_interrupting(struct vsg_context *ctx)
{
    int tid = atomic_load(&ctx->sync_tid);
    return tid != 0 && tid == (int)syscall(SYS_gettid);
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
            /* Written through: in the hub's reach even if the program ends right after. */
            if (tsv_hubconn_send(ctx, TSV_SEND, raw, dst, msg, len)) {
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
        uint64_t now = tsv_session_now(ctx);
        ctx->backend->stop(ctx);
        set_time_base(ctx, now, ctx->backend->clock_ns(ctx) - now);
        atomic_store(&ctx->state, TSV_STATE_STOPPED);
        wake_waiters(ctx);
    }
    tsv_hubconn_close(ctx);
    if (ctx->fd >= 0) {
        close(ctx->fd);
        ctx->fd = -1;
    }
}

/* Whether this process runs one thread (/proc/self/stat's 20th field): only then does a
 * thread waiting in vsg_wait mean the whole participant waits. */
static int alone_in_process(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command's name may hold anything */
    long threads = 0;
    /* After ") ": state is field 3; num_threads is field 20. */
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                           "%*d %ld", &threads) == 1)
        return threads == 1;
    return 0;
}

/* The program's only thread waits beyond the deadline, with nothing received: nothing can
 * happen to it before, so its time goes to the deadline at once and it synchronizes there,
 * saying it is idle (a wait costs no real time). 1 if it did. */
static int skip_to_deadline(struct vsg_context *ctx, uint64_t until)
{
    struct tsv_guard guard;
    int n = -2; /* not tried */
    ctx->backend->enter(ctx, &guard);
    uint64_t d, raw;
    read_time(ctx, &d, &raw);
    if (atomic_load(&ctx->state) == TSV_STATE_RUNNING && raw < d && until >= d &&
        !tsv_session_has_message(ctx)) {
        atomic_store(&ctx->wait_until, until);
        set_time_base(ctx, d, ctx->backend->clock_ns(ctx) - d);
        atomic_store(&ctx->sync_tid, (int)syscall(SYS_gettid));
        n = synchronize(ctx);
        if (atomic_exchange(&ctx->stop_asked, 0))
            tsv_session_close(ctx);
        atomic_store(&ctx->sync_tid, 0);
    }
    ctx->backend->leave(ctx, &guard);
    if (n == -2)
        return 0;
    tsv_session_notify(ctx, n > 0 ? n : 0); /* and on_end, if it ended */
    return 1;
}

int tsv_session_wait(struct vsg_context *ctx, uint64_t until)
{
    int alone = alone_in_process();
    int rc;
    atomic_fetch_add(&ctx->waiters, 1);
    for (;;) {
        uint32_t gen = atomic_load(&ctx->wake_gen);
        if (tsv_session_has_message(ctx)) {
            rc = 0;
            break;
        }
        if (atomic_load(&ctx->state) != TSV_STATE_RUNNING) {
            rc = EPIPE;
            break;
        }
        uint64_t d, raw;
        read_time(ctx, &d, &raw);
        uint64_t now = raw < d ? raw : d;
        if (now >= until) {
            rc = ETIMEDOUT;
            break;
        }
        if (alone && until >= d && raw < d && skip_to_deadline(ctx, until))
            continue;
        if (alone)
            atomic_store(&ctx->wait_until, until);
        /* Until the date in real time (virtual time runs with it), or a synchronization:
         * past the deadline, only a synchronization moves time on. */
        struct timespec ts, *tsp = NULL;
        if (raw < d) {
            uint64_t left = (until < d ? until : d) - raw;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
            tsp = &ts;
        }
        syscall(SYS_futex, &ctx->wake_gen, FUTEX_WAIT_PRIVATE, gen, tsp, NULL, 0);
    }
    atomic_store(&ctx->wait_until, 0);
    atomic_fetch_sub(&ctx->waiters, 1);
    return rc;
}
