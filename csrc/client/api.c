/* The vsg_* functions of tansiv-client.h: argument checks, locking, then session.c. */
#define TSV_LOG_COMPONENT "client"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "log.h"

/* The API takes const contexts (as TANSIV's does) but the context is the library's state. */
#define CTX(c) ((struct vsg_context *)(c))

struct vsg_poll_send_cb {
    VSG_POLL_SEND_FN callback;
    uintptr_t arg;
};

struct vsg_context *vsg_init(int argc, const char *const argv[], int *next_arg_p,
                             vsg_recv_cb recv_cb, uintptr_t recv_cb_arg,
                             vsg_deadline_cb deadline_cb, uintptr_t deadline_cb_arg)
{
    struct vsg_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        errno = ENOMEM;
        return NULL;
    }
    int next = 0;
    int rc = tsv_parse_options(argc, argv, &next, &ctx->opt);
    if (rc) {
        free(ctx);
        errno = rc;
        return NULL;
    }
    ctx->ring = calloc(ctx->opt.num_buffers, sizeof(*ctx->ring));
    if (!ctx->ring) {
        TSV_LOG(TSV_ERROR, "vsg_init: cannot allocate %u receive buffers", ctx->opt.num_buffers);
        tsv_free_options(&ctx->opt);
        free(ctx);
        errno = ENOMEM;
        return NULL;
    }
    ctx->ring_cap = ctx->opt.num_buffers;
    if (tsv_session_init(ctx)) {
        free(ctx->ring);
        tsv_free_options(&ctx->opt);
        free(ctx);
        errno = ENOMEM;
        return NULL;
    }
    ctx->recv_cb = recv_cb;
    ctx->recv_cb_arg = recv_cb_arg;
    ctx->deadline_cb = deadline_cb;
    ctx->deadline_cb_arg = deadline_cb_arg;
    ctx->backend = &tsv_default_backend;
    ctx->fd = -1;
    atomic_flag_clear(&ctx->lock);
    atomic_store(&ctx->state, TSV_STATE_INIT);
    if (next_arg_p)
        *next_arg_p = next;
    return ctx;
}

void vsg_cleanup(struct vsg_context *context)
{
    if (!context)
        return;
    if (tsv_session_interrupting(context))
        return; /* from a handler during a synchronization: see vsg_stop; not freed */
    vsg_stop(context);
    if (context->backend->release)
        context->backend->release(context);
    if (atomic_load(&context->rx_dropped))
        TSV_LOG(TSV_WARN, "%llu delivered messages were dropped (receive queue full or too "
                          "large): raise -b", (unsigned long long)atomic_load(&context->rx_dropped));
    free(context->ring);
    tsv_session_free(context);
    tsv_free_options(&context->opt);
    free(context);
}

int vsg_start(const struct vsg_context *context, struct timespec *offset)
{
    struct vsg_context *ctx = CTX(context);
    if (!ctx)
        return EINVAL;
    if (atomic_load(&ctx->state) != TSV_STATE_INIT || ctx->fd >= 0)
        return EALREADY;
    int rc = tsv_session_connect(ctx);
    if (rc)
        return rc;
    rc = tsv_session_start(ctx);
    if (rc) {
        tsv_session_close(ctx);
        return rc;
    }
    if (offset) {
        offset->tv_sec = (time_t)(ctx->opt.initial_ns / 1000000000);
        offset->tv_nsec = (long)(ctx->opt.initial_ns % 1000000000);
    }
    return 0;
}

int vsg_stop(const struct vsg_context *context)
{
    struct vsg_context *ctx = CTX(context);
    if (!ctx)
        return EINVAL;
    if (tsv_session_interrupting(ctx)) {
        /* A handler (SIGINT, SIGTERM...) that interrupted a synchronization of this thread:
         * taking the lock would spin forever. The synchronization stops when it returns. */
        atomic_store(&ctx->stop_asked, 1);
        return 0;
    }
    struct tsv_guard guard;
    ctx->backend->enter(ctx, &guard);
    tsv_session_close(ctx);
    ctx->backend->leave(ctx, &guard);
    return 0;
}

int vsg_gettimeofday(const struct vsg_context *context, struct timeval *timeval, void *timezone)
{
    (void)timezone;
    struct vsg_context *ctx = CTX(context);
    if (!ctx)
        return EINVAL;
    if (timeval) {
        uint64_t t = (uint64_t)ctx->opt.initial_ns + tsv_session_now(ctx);
        timeval->tv_sec = (time_t)(t / 1000000000);
        timeval->tv_usec = (suseconds_t)((t % 1000000000) / 1000);
    }
    return 0;
}

int vsg_send(const struct vsg_context *context, uint32_t dest, uint32_t msglen, const uint8_t *msg)
{
    struct vsg_context *ctx = CTX(context);
    if (!ctx || (msglen > 0 && !msg))
        return EINVAL;
    if (msglen > MAX_PACKET_SIZE)
        return EMSGSIZE;
    if (tsv_session_interrupting(ctx))
        return EAGAIN; /* from a handler during this thread's synchronization: see vsg_stop */
    struct tsv_guard guard;
    int delivered = 0;
    ctx->backend->enter(ctx, &guard);
    int rc = tsv_session_send(ctx, dest, msglen, msg, &delivered);
    ctx->backend->leave(ctx, &guard);
    tsv_session_notify(ctx, delivered);
    return rc;
}

int vsg_recv(const struct vsg_context *context, uint32_t *src, uint32_t *dest, uint32_t *msglen,
             uint8_t *msg)
{
    struct vsg_context *ctx = CTX(context);
    if (!ctx)
        return EINVAL;
    uint32_t cap = msglen ? *msglen : 0;
    if (cap > 0 && !msg)
        return EINVAL;
    uint32_t head = atomic_load_explicit(&ctx->rx_head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&ctx->rx_tail, memory_order_acquire);
    if (head == tail)
        return EAGAIN;
    const struct tsv_rx_slot *slot = &ctx->ring[head % ctx->ring_cap];
    int rc = 0;
    if (slot->len > cap) {
        rc = EMSGSIZE;
    } else {
        if (slot->len)
            memcpy(msg, slot->data, slot->len);
        if (src)
            *src = slot->src;
        if (dest)
            *dest = slot->dst;
        if (msglen)
            *msglen = slot->len;
    }
    atomic_store_explicit(&ctx->rx_head, head + 1, memory_order_release);
    return rc;
}

int vsg_poll(const struct vsg_context *context)
{
    struct vsg_context *ctx = CTX(context);
    if (!ctx)
        return EINVAL;
    return tsv_session_has_message(ctx) ? 0 : EAGAIN;
}

int vsg_wait(const struct vsg_context *context, const struct timespec *timeout)
{
    struct vsg_context *ctx = CTX(context);
    if (!ctx || (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
                             timeout->tv_nsec >= 1000000000)))
        return EINVAL;
    if (atomic_load(&ctx->state) == TSV_STATE_INIT)
        return ENOTCONN;
    if (tsv_session_interrupting(ctx))
        return EAGAIN;
    uint64_t until = UINT64_MAX, ns, end; /* no bound, or one beyond any date */
    if (timeout && !__builtin_mul_overflow((uint64_t)timeout->tv_sec, 1000000000u, &ns) &&
        !__builtin_add_overflow(ns, (uint64_t)timeout->tv_nsec, &ns) &&
        !__builtin_add_overflow(tsv_session_now(ctx), ns, &end))
        until = end;
    return tsv_session_wait(ctx, until);
}

struct vsg_poll_send_cb *vsg_poll_send_callback_new(vsg_poll_send_cb callback, uintptr_t arg)
{
    struct vsg_poll_send_cb *cb = malloc(sizeof(*cb));
    if (cb) {
        cb->callback = callback;
        cb->arg = arg;
    }
    return cb;
}

void vsg_poll_send_callback_free(struct vsg_poll_send_cb *callback)
{
    free(callback);
}

int vsg_may_start_send(const struct vsg_context *context, struct vsg_poll_send_cb *callback)
{
    return context && callback ? 1 : 0;
}

void vsg_stop_send(const struct vsg_context *context, struct vsg_poll_send_cb *callback)
{
    if (context && callback && callback->callback)
        callback->callback(callback->arg);
}

void vsg_poll_send(const struct vsg_context *context, struct vsg_poll_send_cb *callback)
{
    if (context && callback && callback->callback)
        callback->callback(callback->arg);
}
