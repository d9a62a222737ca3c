/* The client's end of its connection to the coordinator's hub: its socket, or the shared-memory
 * channel the hub gives a local participant at HELLO (tansiv-protocol.h, common/shm.h). The
 * same frames either way; session.c does not tell them apart.
 *
 * Everything here may run in the process back end's deadline signal handler: system calls
 * and the rings' atomics only, no allocation, no stdio. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "client"
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth.h"
#include "client-internal.h"
#include "log.h"
#include "transport.h"

#define LIVENESS_MS 1000 /* a sleeping participant checks this often that the hub is there */

/* ---- the socket ------------------------------------------------------------------------------ */

/* The whole frame, or -1 with errno set. */
static int socket_send(int fd, const struct tsv_header *h, const void *payload)
{
    struct iovec iov[2] = {{(void *)h, TSV_HEADER_SIZE}, {(void *)payload, h->len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = h->len ? 2 : 1};
    size_t left = TSV_HEADER_SIZE + h->len;
    while (left > 0) {
        /* MSG_NOSIGNAL: a vanished peer is an error, not a SIGPIPE. */
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        left -= (size_t)n;
        while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
            n -= (ssize_t)msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen) {
            msg.msg_iov->iov_base = (uint8_t *)msg.msg_iov->iov_base + n;
            msg.msg_iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* A header from the socket; 0, or -1 after logging why. fds (if not NULL) receives up to
 * three descriptors sent with it, *nfds how many. */
static int socket_header(struct vsg_context *ctx, struct tsv_header *h, int *fds, int *nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(3 * sizeof(int))];
    } control;
    size_t done = 0;
    while (done < TSV_HEADER_SIZE) {
        struct iovec iov = {(uint8_t *)h + done, TSV_HEADER_SIZE - done};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fds && done == 0) {
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof(control.buf);
        }
        ssize_t n = recvmsg(ctx->fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 && done == 0)
                TSV_LOG(TSV_ERROR, "coordinator closed the connection");
            else if (n == 0 || errno == ECONNRESET)
                TSV_LOG(TSV_ERROR, "coordinator closed the connection in the middle of a frame");
            else
                TSV_LOG(TSV_ERROR, "reading from the coordinator: %s", strerrordesc_np(errno));
            return -1;
        }
        if (fds && done == 0) {
            *nfds = 0;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                    int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                    memcpy(fds, CMSG_DATA(cm), (size_t)(k < 3 ? k : 3) * sizeof(int));
                    *nfds = k < 3 ? k : 3;
                }
        }
        done += (size_t)n;
    }
    char why[96];
    if (tsv_header_check(h, why, sizeof(why))) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: %s", why);
        return -1;
    }
    return 0;
}

static int socket_read(struct vsg_context *ctx, struct tsv_header *h, int *fds, int *nfds)
{
    if (socket_header(ctx, h, fds, nfds))
        return -1;
    if (h->len && tsv_read_full(ctx->fd, ctx->scratch, h->len) != (ssize_t)h->len) {
        TSV_LOG(TSV_ERROR, "coordinator closed the connection in the middle of a frame");
        return -1;
    }
    return 0;
}

/* ---- the channel ----------------------------------------------------------------------------- */

/* Whether the hub is gone: its end of the socket closed (it sends nothing after CHANNEL). */
static int hub_gone(struct vsg_context *ctx)
{
    struct pollfd p = {.fd = ctx->fd, .events = POLLIN};
    char byte;
    return poll(&p, 1, 0) > 0 && recv(ctx->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

/* Sleeps until *word is no longer seen; -1 (logged) if the hub went away meanwhile. */
static int sleep_on(struct vsg_context *ctx, _Atomic uint32_t *word, uint32_t seen)
{
    while (atomic_load(word) == seen) {
        if (tsv_futex_wait(word, seen, LIVENESS_MS) < 0 && errno == ETIMEDOUT &&
            hub_gone(ctx)) {
            TSV_LOG(TSV_ERROR, "coordinator closed the connection");
            return -1;
        }
    }
    return 0;
}

static void signal_hub(struct tsv_hubconn *l)
{
    uint64_t one = 1;
    ssize_t ignored = write(l->event_fd, &one, sizeof(one));
    (void)ignored;
}

static int channel_open(struct vsg_context *ctx, const struct tsv_channel *info, int fds[3])
{
    struct tsv_hubconn *l = &ctx->hubconn;
    if (!tsv_shm_ring_size_ok(info->ring_size)) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: CHANNEL with rings of %u bytes",
                info->ring_size);
        return -1;
    }
    l->barrier = tsv_shm_map(fds[0], TSV_SHM_BARRIER_SIZE);
    l->map_size = tsv_shm_channel_size(info->ring_size);
    l->map = tsv_shm_map(fds[1], l->map_size);
    close(fds[0]);
    close(fds[1]);
    l->event_fd = fds[2];
    if (!l->barrier || !l->map) {
        TSV_LOG(TSV_ERROR, "cannot map the shared-memory channel: %s", strerror(errno));
        return -1;
    }
    l->to_hub = tsv_shm_channel_ring(l->map, info->ring_size, TSV_RING_TO_HUB);
    l->from_hub = tsv_shm_channel_ring(l->map, info->ring_size, TSV_RING_TO_PARTICIPANT);
    l->channel = 1;
    return 0;
}

/* Puts a frame in the ring to the hub, waiting for room if need be. Always leaves room for
 * AT_DEADLINE, so that reaching the deadline never waits. */
static int channel_send(struct vsg_context *ctx, const struct tsv_header *h, const void *payload)
{
    struct tsv_hubconn *l = &ctx->hubconn;
    struct tsv_ring *r = l->to_hub.ring;
    size_t need = tsv_ring_frame_size(h->len) +
                  (h->type == TSV_AT_DEADLINE ? 0 : tsv_ring_frame_size(0));
    while (tsv_ring_free(&l->to_hub) < need) {
        uint32_t seen = atomic_load(&r->wake);
        atomic_store(&r->producer_waits, 1);
        if (tsv_ring_free(&l->to_hub) >= need)
            break;
        signal_hub(l); /* drain it */
        if (sleep_on(ctx, &r->wake, seen)) {
            errno = EPIPE;
            return -1;
        }
    }
    return tsv_ring_put(&l->to_hub, h, payload);
}

static int channel_read(struct vsg_context *ctx, struct tsv_header *h)
{
    struct tsv_hubconn *l = &ctx->hubconn;
    struct tsv_ring *r = l->from_hub.ring;
    for (;;) {
        int rc = tsv_ring_get(&l->from_hub, h, ctx->scratch, TSV_MAX_PAYLOAD);
        if (rc > 0) {
            if (atomic_exchange(&r->producer_waits, 0))
                signal_hub(l); /* it has more for us */
            return 0;
        }
        if (rc < 0) {
            TSV_LOG(TSV_ERROR, "protocol error from the coordinator: a frame that does not fit "
                               "in the ring");
            return -1;
        }
        /* Nothing there yet: sleep until the hub puts something (GOTO, END, deliveries). */
        uint32_t seen = atomic_load(&r->wake);
        atomic_store(&r->consumer_waits, 1);
        if (atomic_load(&r->head) == atomic_load(&r->tail) && sleep_on(ctx, &r->wake, seen))
            return -1;
    }
}

/* ---- either ---------------------------------------------------------------------------------- */

/* The run's secret, TANSIV_SECRET (TSV_SECRET_SIZE bytes in hex), which a hub listening on
 * TCP requires. -1 if it is missing or malformed. */
static int secret_from_env(uint8_t *secret)
{
    const char *hex = getenv("TANSIV_SECRET");
    if (!hex || strlen(hex) != 2 * TSV_SECRET_SIZE)
        return -1;
    for (int i = 0; i < TSV_SECRET_SIZE; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
            !isxdigit((unsigned char)hex[2 * i + 1]))
            return -1;
        secret[i] = (uint8_t)v;
    }
    return 0;
}

/* Over TCP: answers the hub's CHALLENGE in the HELLO (auth.h); secret is kept for the
 * WELCOME. 0, or -1 (logged). */
static int prove(struct vsg_context *ctx, const struct tsv_header *h, struct tsv_hello *hello,
                 uint8_t *secret, uint8_t *hub_nonce)
{
    struct tsv_header challenge;
    if (secret_from_env(secret)) {
        TSV_LOG(TSV_ERROR, "a coordinator over TCP needs the run's secret: TANSIV_SECRET, %d "
                           "hexadecimal digits (in the run's folder, file secret)",
                2 * TSV_SECRET_SIZE);
        return -1;
    }
    if (socket_read(ctx, &challenge, NULL, NULL))
        return -1;
    if (challenge.type != TSV_CHALLENGE || challenge.len != TSV_NONCE_SIZE) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: frame type %u (%u bytes) "
                           "instead of its CHALLENGE", challenge.type, challenge.len);
        return -1;
    }
    memcpy(hub_nonce, ctx->scratch, TSV_NONCE_SIZE);
    if (tsv_random(hello->nonce, TSV_NONCE_SIZE)) {
        TSV_LOG(TSV_ERROR, "no random nonce: %s", strerrordesc_np(errno));
        return -1;
    }
    tsv_auth_hello_proof(secret, hub_nonce, hello->nonce, h->src, hello->role, hello->proof);
    return 0;
}

/* Over TCP: the hub's WELCOME, which proves it knows the secret too. 0, or -1 (logged). */
static int check_welcome(struct vsg_context *ctx, const struct tsv_hello *hello,
                         const uint8_t *secret, const uint8_t *hub_nonce)
{
    struct tsv_header w;
    uint8_t expected[TSV_PROOF_SIZE];
    if (socket_read(ctx, &w, NULL, NULL))
        return -1;
    tsv_auth_welcome_proof(secret, hub_nonce, hello->nonce, expected);
    if (w.type != TSV_WELCOME || w.len != TSV_PROOF_SIZE ||
        !tsv_auth_equal(expected, ctx->scratch, TSV_PROOF_SIZE)) {
        TSV_LOG(TSV_ERROR, "the coordinator at %s did not prove it knows the run's secret: "
                           "not this run's coordinator", ctx->opt.socket);
        return -1;
    }
    return 0;
}

int tsv_hubconn_open(struct vsg_context *ctx, uint16_t role, uint64_t date,
                     struct tsv_header *first)
{
    struct tsv_hello hello = {.magic = TSV_MAGIC, .version = TSV_VERSION, .role = role,
                              .pid = (uint32_t)getpid()};
    struct tsv_header h = {.type = TSV_HELLO, .len = sizeof(hello), .time = date,
                           .src = ctx->opt.address};
    uint8_t secret[TSV_SECRET_SIZE], hub_nonce[TSV_NONCE_SIZE];
    int tcp = tsv_is_tcp_address(ctx->opt.socket);
    if (!tcp)
        h.flags = TSV_HELLO_CHANNEL;
    else if (prove(ctx, &h, &hello, secret, hub_nonce))
        return -1;
    if (socket_send(ctx->fd, &h, &hello)) {
        TSV_LOG(TSV_ERROR, "sending HELLO: %s", strerror(errno));
        return -1;
    }
    if (tcp && check_welcome(ctx, &hello, secret, hub_nonce))
        return -1;
    int fds[3], nfds = 0;
    if (socket_read(ctx, first, fds, &nfds))
        return -1;
    if (first->type != TSV_CHANNEL) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        return 0; /* the socket it is */
    }
    struct tsv_channel info;
    if (first->len != sizeof(info) || nfds != 3) {
        TSV_LOG(TSV_ERROR, "protocol error from the coordinator: CHANNEL of %u bytes with %d "
                           "descriptors", first->len, nfds);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        return -1;
    }
    memcpy(&info, ctx->scratch, sizeof(info));
    if (channel_open(ctx, &info, fds))
        return -1;
    return channel_read(ctx, first);
}

int tsv_hubconn_send(struct vsg_context *ctx, uint16_t type, uint64_t time, uint32_t dst,
                     const void *payload, uint32_t len)
{
    struct tsv_header h = {.type = type, .len = len, .time = time, .src = ctx->opt.address,
                           .dst = dst};
    return ctx->hubconn.channel ? channel_send(ctx, &h, payload)
                                : socket_send(ctx->fd, &h, payload);
}

void tsv_hubconn_reached(struct vsg_context *ctx)
{
    struct tsv_hubconn *l = &ctx->hubconn;
    if (l->channel && atomic_fetch_sub(&l->barrier->remaining, 1) == 1)
        signal_hub(l); /* the last one there */
}

int tsv_hubconn_read(struct vsg_context *ctx, struct tsv_header *h)
{
    return ctx->hubconn.channel ? channel_read(ctx, h) : socket_read(ctx, h, NULL, NULL);
}

void tsv_hubconn_close(struct vsg_context *ctx)
{
    struct tsv_hubconn *l = &ctx->hubconn;
    if (l->map)
        munmap(l->map, l->map_size);
    if (l->barrier)
        munmap(l->barrier, TSV_SHM_BARRIER_SIZE);
    if (l->event_fd >= 0)
        close(l->event_fd);
    memset(l, 0, sizeof(*l));
    l->event_fd = -1;
}
