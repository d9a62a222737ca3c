/* Buffers and sockets: a client's frames queued, written, read and handed to its kind's
 * on_frame; closing a client. The kinds whose frames go on their socket: a connection before
 * its HELLO, and a socket client. A client's misbehaviour (bad frame, broken connection,
 * unread output) removes that client with an event naming it; it never stops the hub. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hub-internal.h"
#include "log.h"
#include "transport.h"

#define READS_PER_TURN 16 /* 64 KiB reads of one client per epoll turn */

/* ---- buffers ------------------------------------------------------------------------------ */

void hub_buf_reserve(struct buf *b, size_t extra)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + extra <= b->cap)
        return;
    if (b->off > 0) { /* compact first */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap)
            return;
    }
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + extra)
        ncap *= 2;
    uint8_t *p = realloc(b->data, ncap);
    if (!p)
        abort();
    b->data = p;
    b->cap = ncap;
}

void hub_buf_put(struct buf *b, uint16_t type, uint16_t flags, uint64_t time, uint32_t src,
                 uint32_t dst, const void *payload, uint32_t len)
{
    hub_buf_reserve(b, TSV_HEADER_SIZE + len);
    b->len += tsv_frame_put(b->data + b->len, type, flags, time, src, dst, payload, len);
}

int hub_queue(struct tsv_hub *hub, struct client *c, uint16_t type, uint64_t time, uint32_t src,
              uint32_t dst, const uint8_t *payload, uint32_t len)
{
    size_t waiting = c->out.len - c->out.off;
    if (waiting + TSV_HEADER_SIZE + len > hub->limits.out_bytes) {
        hub_fail(hub, c, "does not read what it is sent (%zu bytes wait for it, bound %llu)",
                 waiting, (unsigned long long)hub->limits.out_bytes);
        return -1;
    }
    hub_buf_put(&c->out, type, 0, time, src, dst, payload, len);
    return 0;
}

void hub_send(struct tsv_hub *hub, struct client *c, uint16_t type, uint64_t time, uint32_t src,
              uint32_t dst, const uint8_t *payload, uint32_t len)
{
    if (hub_queue(hub, c, type, time, src, dst, payload, len) == 0)
        c->ops->flush(hub, c);
}

/* ---- closing ------------------------------------------------------------------------------ */

void hub_close(struct tsv_hub *hub, struct client *c)
{
    if (c->state == C_DEAD)
        return;
    if (c->index >= 0) { /* a client of the run, not a connection before HELLO or a relay's */
        if (c->state == C_RUNNING) {
            hub->waiting--;
            if (c->ops->leave_round)
                c->ops->leave_round(hub, c);
        }
        hub->alive--;
    }
    c->state = C_DEAD;
    TSV_LOG(TSV_DEBUG, "closing %s (%s)", c->name, c->ops->kind);
    c->ops->close(hub, c);
}

void hub_fail(struct tsv_hub *hub, struct client *c, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hub_event(hub, TSV_HUB_FAILED, c, "%s: %s", c->name, msg);
    hub_close(hub, c);
}

void hub_left(struct tsv_hub *hub, struct client *c)
{
    hub_event(hub, TSV_HUB_LEFT, c, "%s left", c->name);
    hub_close(hub, c);
}

void hub_socket_close(struct tsv_hub *hub, struct client *c)
{
    epoll_ctl(hub->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    free(c->in.data);
    free(c->out.data);
    memset(&c->in, 0, sizeof(c->in));
    memset(&c->out, 0, sizeof(c->out));
}

/* ---- the socket --------------------------------------------------------------------------- */

static void watch_output(struct tsv_hub *hub, struct client *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(hub->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

int hub_socket_flush(struct tsv_hub *hub, struct client *c)
{
    struct buf *b = &c->out;
    while (b->off < b->len) {
        ssize_t n = send(c->fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                watch_output(hub, c, 1);
                return 0;
            }
            hub_fail(hub, c, "write error: %s", strerror(errno));
            return -1;
        }
        b->off += (size_t)n;
        hub->stats.bytes_out += (uint64_t)n;
    }
    b->off = b->len = 0;
    watch_output(hub, c, 0);
    return 0;
}

void hub_read(struct tsv_hub *hub, struct client *c)
{
    for (int turn = 0; turn < READS_PER_TURN; turn++) {
        /* Before its HELLO, a connection gets room for the HELLO alone. */
        size_t pending = c->in.len - c->in.off;
        size_t room = c->state == C_CONNECTED
                          ? TSV_HEADER_SIZE + sizeof(struct tsv_hello) - pending
                          : 65536;
        if (room == 0) {
            hub_fail(hub, c, "sent more than a HELLO before its HELLO");
            return;
        }
        hub_buf_reserve(&c->in, room);
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno != ECONNRESET) {
                hub_fail(hub, c, "read error: %s", strerror(errno));
                return;
            }
            n = 0; /* a peer that closed with unread input: an end of file like another */
        }
        if (n == 0) {
            if (c->in.len > c->in.off)
                hub_fail(hub, c, "connection closed in the middle of a frame");
            else
                c->ops->hangup(hub, c);
            return;
        }
        c->in.len += (size_t)n;
        hub->stats.bytes_in += (uint64_t)n;
        struct tsv_header h;
        const uint8_t *payload;
        char why[96];
        int rc;
        /* Its kind may change with a frame (HELLO): each goes to the ops it has then. */
        while (c->state != C_DEAD && (rc = tsv_frame_next(c->in.data, c->in.len, &c->in.off, &h,
                                                          &payload, why, sizeof(why))) != 0) {
            if (rc < 0) {
                hub_fail(hub, c, "%s", why);
                return;
            }
            c->ops->on_frame(hub, c, &h, payload);
        }
        if (c->state == C_DEAD)
            return;
        /* A short read drained the socket: spare the recv() that would say EAGAIN (epoll
         * reports anything that arrives later). */
        if ((size_t)n < room)
            return;
    }
    /* More is waiting: epoll (level-triggered) reports it again, after the others' turns. */
}

/* ---- a client on a connection of its own -------------------------------------------------- */

int hub_direct_go(struct tsv_hub *hub, struct client *c, uint64_t deadline)
{
    if (c->at < hub->barrier) { /* it sat out rounds: its time jumps to the barrier */
        struct tsv_date from = {.ns = hub->barrier};
        return hub_queue(hub, c, TSV_GOTO, deadline, 0, 0, (const uint8_t *)&from,
                         sizeof(from));
    }
    return hub_queue(hub, c, TSV_GOTO, deadline, 0, 0, NULL, 0);
}

void hub_direct_deliver(struct tsv_hub *hub, struct client *c, uint64_t time, uint32_t src,
                        uint32_t dst, const uint8_t *data, uint32_t len)
{
    hub_send(hub, c, TSV_DELIVER, time, src, dst, data, len);
}

void hub_direct_end(struct tsv_hub *hub, struct client *c)
{
    hub_send(hub, c, TSV_END, hub->barrier, 0, 0, NULL, 0);
}

static void pending_hangup(struct tsv_hub *hub, struct client *c)
{
    hub_fail(hub, c, "connection closed before HELLO");
}

/* Not a client yet: its one frame is a HELLO. */
const struct client_ops hub_pending_ops = {
    .kind = "connection",
    .on_frame = hub_on_hello,
    .flush = hub_socket_flush,
    .hangup = pending_hangup,
    .close = hub_socket_close,
};

const struct client_ops hub_socket_ops = {
    .kind = "socket",
    .on_frame = hub_client_on_frame,
    .flush = hub_socket_flush,
    .go = hub_direct_go,
    .deliver = hub_direct_deliver,
    .end = hub_direct_end,
    .hangup = hub_left,
    .close = hub_socket_close,
};
