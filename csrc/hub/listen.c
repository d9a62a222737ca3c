/* Listening: accepting connections (the Unix or TCP listener, and tsv_hub_listen_tcp's second
 * one, for relays), their HELLO timeout, pausing when out of descriptors; and the epoll loop
 * that every call waiting for clients turns. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "auth.h"
#include "hub-internal.h"
#include "log.h"
#include "transport.h"

/* Bounds on what one client may cost the others (tansiv-hub.h's defaults). */
#define HELLO_TIMEOUT_NS (10ull * 1000000000u) /* a connection must say HELLO by then */
#define ACCEPT_PAUSE_NS (100ull * 1000000u)    /* out of descriptors: accept again after */
#define MAX_PENDING 64 /* connections without HELLO; one more closes the oldest (participants
                        * say HELLO as soon as they connect: the oldest is the likeliest idle) */

void hub_stop_listening(struct tsv_hub *hub)
{
    if (hub->listen_fd < 0)
        return;
    /* Connections that have not said HELLO will not be part of this run. */
    for (int i = 0; i < hub->npending; i++)
        if (hub->pending[i]->state != C_DEAD)
            hub_fail(hub, hub->pending[i], "the run started before its HELLO");
    if (!hub->accept_paused_until) {
        epoll_ctl(hub->epfd, EPOLL_CTL_DEL, hub->listen_fd, NULL);
        if (hub->tcp_fd >= 0)
            epoll_ctl(hub->epfd, EPOLL_CTL_DEL, hub->tcp_fd, NULL);
    }
    close(hub->listen_fd);
    hub->listen_fd = -1;
    if (hub->tcp_fd >= 0)
        close(hub->tcp_fd);
    hub->tcp_fd = -1;
    hub->accept_paused_until = 0;
    if (hub->unix_path) {
        unlink(hub->unix_path);
        free(hub->unix_path);
        hub->unix_path = NULL;
    }
}

int tsv_hub_listen_tcp(struct tsv_hub *hub, const char *address)
{
    if (!tsv_is_tcp_address(address) || hub->tcp_fd >= 0 || hub->listen_fd < 0) {
        hub_set_error(hub, "a second listener is one tcp:HOST:PORT, before the run starts");
        return -1;
    }
    hub->tcp_fd = tsv_listen(address, hub->tcp_address, sizeof(hub->tcp_address), hub->error,
                             sizeof(hub->error));
    if (hub->tcp_fd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &hub->tcp_fd};
    if (epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->tcp_fd, &ev) < 0) {
        hub_set_error(hub, "epoll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Out of descriptors: the pending connection stays in the backlog, where epoll would report
 * it again at once. Stop watching the listener a moment (pending HELLOs may free some). */
static void pause_accepting(struct tsv_hub *hub)
{
    if (hub->accept_paused_until)
        return;
    TSV_LOG(TSV_WARN, "out of file descriptors (%s): not accepting for %llu ms",
            strerror(errno), (unsigned long long)(ACCEPT_PAUSE_NS / 1000000));
    epoll_ctl(hub->epfd, EPOLL_CTL_DEL, hub->listen_fd, NULL);
    if (hub->tcp_fd >= 0)
        epoll_ctl(hub->epfd, EPOLL_CTL_DEL, hub->tcp_fd, NULL);
    hub->accept_paused_until = hub_now() + ACCEPT_PAUSE_NS;
}

static int live_pending(const struct tsv_hub *hub)
{
    int n = 0;
    for (int i = 0; i < hub->npending; i++)
        n += hub->pending[i]->state != C_DEAD;
    return n;
}

static void close_oldest_pending(struct tsv_hub *hub)
{
    for (int i = 0; i < hub->npending; i++)
        if (hub->pending[i]->state != C_DEAD) {
            /* No event: a flood of connections would make as many. */
            TSV_LOG(TSV_DEBUG, "closing %s: %d newer connections without HELLO",
                    hub->pending[i]->name, MAX_PENDING);
            hub_close(hub, hub->pending[i]);
            return;
        }
}

static void accept_all(struct tsv_hub *hub, int listen_fd)
{
    for (;;) {
        int fd = tsv_accept(listen_fd);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(hub);
            return;
        }
        struct client *c = calloc(1, sizeof(*c));
        if (!c)
            abort();
        c->ops = &hub_pending_ops;
        c->fd = fd;
        c->index = -1;
        c->state = C_CONNECTED;
        c->since = hub_now();
        c->from_unix = listen_fd == hub->listen_fd && hub->unix_path != NULL;
        snprintf(c->name, sizeof(c->name), "connection fd %d (before HELLO)", fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(hub->epfd, EPOLL_CTL_ADD, fd, &ev);
        if (live_pending(hub) >= MAX_PENDING)
            close_oldest_pending(hub);
        hub->pending = hub_grow(hub->pending, &hub->pending_cap, hub->npending + 1, sizeof(c));
        hub->pending[hub->npending++] = c;
        if (c->from_unix)
            continue;
        /* Over TCP, the client must prove it knows the run's secret (auth.h). */
        if (tsv_random(c->nonce, sizeof(c->nonce)))
            hub_fail(hub, c, "no random nonce for its CHALLENGE: %s", strerror(errno));
        else
            hub_send(hub, c, TSV_CHALLENGE, 0, 0, 0, c->nonce, sizeof(c->nonce));
    }
}

/* Connections without HELLO in time go; a paused listener is watched again. Returns how
 * long epoll_wait may sleep before this has more to do (ms, -1: no bound). */
static int housekeeping(struct tsv_hub *hub)
{
    if (!hub->npending && !hub->accept_paused_until)
        return -1; /* the usual case once the run started: not even a clock read */
    uint64_t t = hub_now(), next = UINT64_MAX;
    if (hub->accept_paused_until && hub->listen_fd >= 0) {
        if (t >= hub->accept_paused_until) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
            epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->listen_fd, &ev);
            if (hub->tcp_fd >= 0) {
                ev.data.ptr = &hub->tcp_fd;
                epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->tcp_fd, &ev);
            }
            hub->accept_paused_until = 0;
        } else {
            next = hub->accept_paused_until;
        }
    }
    int kept = 0;
    for (int i = 0; i < hub->npending; i++) {
        struct client *c = hub->pending[i];
        if (c->state != C_DEAD && t - c->since >= HELLO_TIMEOUT_NS)
            hub_fail(hub, c, "no HELLO within %llu s of connecting",
                     (unsigned long long)(HELLO_TIMEOUT_NS / 1000000000u));
        if (c->state == C_DEAD) {
            free(c);
            continue;
        }
        if (c->since + HELLO_TIMEOUT_NS < next)
            next = c->since + HELLO_TIMEOUT_NS;
        hub->pending[kept++] = c;
    }
    hub->npending = kept;
    return next == UINT64_MAX ? -1 : (int)((next - t + 999999) / 1000000);
}

int hub_poll(struct tsv_hub *hub, int timeout_ms)
{
    struct epoll_event evs[64];
    int due = housekeeping(hub);
    if (due >= 0 && (timeout_ms < 0 || due < timeout_ms))
        timeout_ms = due;
    uint64_t t0 = hub_now();
    int n = epoll_wait(hub->epfd, evs, 64, timeout_ms);
    hub->stats.wait_ns += hub_now() - t0;
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        hub_set_error(hub, "epoll_wait: %s", strerror(errno));
        return -1;
    }
    if (n == 0 && hub->ring_size)
        channels_service(hub);
    for (int i = 0; i < n; i++) {
        struct client *c = evs[i].data.ptr;
        if (!c) {
            accept_all(hub, hub->listen_fd);
            continue;
        }
        if (evs[i].data.ptr == &hub->tcp_fd) {
            accept_all(hub, hub->tcp_fd);
            continue;
        }
        if (evs[i].data.ptr == &hub->event_fd) {
            channels_service(hub);
            continue;
        }
        if (c->state == C_DEAD)
            continue;
        if (evs[i].events & EPOLLOUT)
            c->ops->flush(hub, c);
        if (c->state != C_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            hub_read(hub, c);
    }
    return 0;
}

int hub_remaining_ms(uint64_t end)
{
    if (end == UINT64_MAX)
        return -1;
    uint64_t t = hub_now();
    return t >= end ? 0 : (int)((end - t + 999999) / 1000000);
}

int tsv_hub_accept(struct tsv_hub *hub, int count, int timeout_ms)
{
    struct span span = hub_span_begin(hub);
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : span.wall + (uint64_t)timeout_ms * 1000000u;
    int rc = 0;
    /* Polls at least once, even with timeout_ms 0. */
    while (hub->nclients < count && hub->listen_fd >= 0) {
        if (hub_poll(hub, hub_remaining_ms(end)) < 0) {
            rc = -1;
            break;
        }
        if (hub_remaining_ms(end) == 0)
            break;
    }
    if (hub->nclients >= count)
        hub_stop_listening(hub);
    hub_span_end(hub, span);
    return rc < 0 ? -1 : hub->nclients;
}
