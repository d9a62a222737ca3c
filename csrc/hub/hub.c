/* The hub (see tansiv-hub.h): non-blocking sockets, one epoll set, per-client input and
 * output buffers, and local participants' shared-memory channels (channel.c). A client's
 * misbehaviour (bad frame, early or late time, broken connection) removes that client with an
 * event naming it; it never stops the hub. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hub-internal.h"
#include "log.h"
#include "transport.h"

/* Bounds on what one client may cost the others (tansiv-hub.h's defaults). */
#define HELLO_TIMEOUT_NS (10ull * 1000000000u) /* a connection must say HELLO by then */
#define ACCEPT_PAUSE_NS (100ull * 1000000u)    /* out of descriptors: accept again after */
#define READS_PER_TURN 16                      /* 64 KiB reads of one client per epoll turn */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t hub_now(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* Accounting of one public call: wall time outside epoll_wait, and the thread's CPU time
 * (which excludes the time other processes ran instead of the hub, on a busy machine). */
struct span {
    uint64_t wall, cpu, wait;
};

static struct span span_begin(const struct tsv_hub *hub)
{
    return (struct span){hub_now(), clock_ns(CLOCK_THREAD_CPUTIME_ID), hub->stats.wait_ns};
}

static void span_end(struct tsv_hub *hub, struct span s)
{
    hub->stats.busy_ns += hub_now() - s.wall - (hub->stats.wait_ns - s.wait);
    hub->stats.cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - s.cpu;
}

void *hub_grow(void *array, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return array;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(array, (size_t)ncap * elem);
    if (!p) {
        TSV_LOG(TSV_ERROR, "out of memory");
        abort();
    }
    *cap = ncap;
    return p;
}

static void set_error(struct tsv_hub *hub, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hub->error, sizeof(hub->error), fmt, ap);
    va_end(ap);
}

void hub_event(struct tsv_hub *hub, int kind, struct client *c, const char *fmt, ...)
{
    if (hub->ev_head > 0 && hub->ev_head == hub->ev_len) {
        hub->ev_head = hub->ev_len = 0;
    }
    hub->events = hub_grow(hub->events, &hub->ev_cap, hub->ev_len + 1, sizeof(*hub->events));
    struct tsv_hub_event *ev = &hub->events[hub->ev_len++];
    hub->events_total++;
    ev->kind = kind;
    ev->client = c ? c->index : -1;
    ev->time = hub->barrier;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->message, sizeof(ev->message), fmt, ap);
    va_end(ap);
    TSV_LOG(kind == TSV_HUB_FAILED ? TSV_WARN : TSV_INFO, "%s", ev->message);
}

/* ---- payload slots ------------------------------------------------------------------------ */

static uint64_t slot_store(struct tsv_hub *hub, const uint8_t *data, uint32_t len, uint32_t src,
                           uint32_t dst)
{
    uint32_t i;
    if (hub->nfree) {
        i = hub->free_slots[--hub->nfree];
    } else {
        int cap = (int)hub->slots_cap;
        hub->slots = hub_grow(hub->slots, &cap, (int)hub->nslots + 1, sizeof(*hub->slots));
        hub->free_slots = realloc(hub->free_slots, (size_t)cap * sizeof(*hub->free_slots));
        if (!hub->free_slots)
            abort();
        for (uint32_t k = hub->slots_cap; k < (uint32_t)cap; k++)
            hub->slots[k].gen = 0;
        hub->slots_cap = (uint32_t)cap;
        i = hub->nslots++;
    }
    struct slot *s = &hub->slots[i];
    s->data = malloc(len ? len : 1);
    if (!s->data)
        abort();
    memcpy(s->data, data, len);
    s->len = len;
    s->src = src;
    s->dst = dst;
    s->used = 1;
    s->gen++;
    hub->held++;
    return ((uint64_t)s->gen << 32) | i;
}

static struct slot *slot_get(const struct tsv_hub *hub, uint64_t handle)
{
    uint32_t i = (uint32_t)handle;
    if (i >= hub->nslots)
        return NULL;
    struct slot *s = &hub->slots[i];
    if (!s->used || s->gen != (uint32_t)(handle >> 32))
        return NULL;
    return s;
}

static void slot_free(struct tsv_hub *hub, struct slot *s)
{
    free(s->data);
    s->data = NULL;
    s->used = 0;
    hub->free_slots[hub->nfree++] = (uint32_t)(s - hub->slots);
    hub->held--;
}

/* ---- buffers and connections -------------------------------------------------------------- */

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

void hub_describe(struct client *c)
{
    char ip[INET_ADDRSTRLEN] = "?";
    struct in_addr a = {.s_addr = c->addr};
    if (c->index >= 0)
        inet_ntop(AF_INET, &a, ip, sizeof(ip));
    if (c->index >= 0)
        snprintf(c->name, sizeof(c->name), "client %d (%s, pid %u)", c->index, ip, c->pid);
    else
        snprintf(c->name, sizeof(c->name), "connection fd %d (before HELLO)", c->fd);
}

void hub_close(struct tsv_hub *hub, struct client *c)
{
    if (c->state == C_DEAD)
        return;
    if (c->state == C_RUNNING && !c->is_link)
        hub->waiting--;
    if (c->index >= 0)
        hub->alive--;
    enum client_state was = c->state;
    c->state = C_DEAD;
    if (c->link) {
        link_member_gone(hub, c);
        return;
    }
    if (c->is_link)
        link_closing(hub, c, was == C_CONNECTED ? "closed" : "lost");
    epoll_ctl(hub->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    channel_release(c);
    free(c->in.data);
    free(c->out.data);
    memset(&c->in, 0, sizeof(c->in));
    memset(&c->out, 0, sizeof(c->out));
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

static void watch_output(struct tsv_hub *hub, struct client *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(hub->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

int hub_flush(struct tsv_hub *hub, struct client *c)
{
    if (c->channel) {
        channel_flush(hub, c);
        return 0;
    }
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

/* Queues a frame for c; -1 if c failed: it leaves more than out_bytes_max unread. */
int hub_queue(struct tsv_hub *hub, struct client *c, uint16_t type, uint64_t time,
                       uint32_t src, uint32_t dst, const uint8_t *payload, uint32_t len)
{
    size_t waiting = c->out.len - c->out.off;
    if (waiting + TSV_HEADER_SIZE + len > hub->out_bytes_max) {
        hub_fail(hub, c, "does not read what it is sent (%zu bytes wait for it, bound %llu)",
                 waiting, (unsigned long long)hub->out_bytes_max);
        return -1;
    }
    hub_buf_reserve(&c->out, TSV_HEADER_SIZE + len);
    c->out.len += tsv_frame_put(c->out.data + c->out.len, type, time, src, dst, payload, len);
    return 0;
}

/* ---- incoming frames ---------------------------------------------------------------------- */

/* Compares in a time that does not depend on where they differ. */
static int same_secret(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (int i = 0; i < TSV_SECRET_SIZE; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* The pid the kernel knows for a Unix-socket peer; the one a HELLO claims over TCP. */
static uint32_t peer_pid(int fd, uint32_t claimed)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0)
        return (uint32_t)cred.pid;
    return claimed;
}

static void on_hello(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                     const uint8_t *payload)
{
    struct tsv_hello hello;
    if (h->type != TSV_HELLO) {
        hub_fail(hub, c, "first frame has type %u, expected HELLO", h->type);
        return;
    }
    if (h->len != sizeof(hello)) {
        hub_fail(hub, c, "HELLO of %u bytes, expected %zu", h->len, sizeof(hello));
        return;
    }
    memcpy(&hello, payload, sizeof(hello));
    if (hello.magic != TSV_MAGIC) {
        hub_fail(hub, c, "HELLO with bad magic 0x%08x: not a tansiv client", hello.magic);
        return;
    }
    if (hello.version != TSV_VERSION) {
        hub_fail(hub, c, "speaks protocol version %u, this hub speaks %u", hello.version,
             TSV_VERSION);
        return;
    }
    if (hub->listen_fd < 0) {
        hub_fail(hub, c, "said HELLO after the run started");
        return;
    }
    if (hub->has_secret && !c->from_unix && !same_secret(hello.secret, hub->secret)) {
        hub_fail(hub, c, "HELLO without the run's secret (TANSIV_SECRET)");
        return;
    }
    for (int i = 0; i < hub->npending; i++)
        if (hub->pending[i] == c) {
            hub->pending[i] = hub->pending[--hub->npending];
            break;
        }
    c->pid = peer_pid(c->fd, hello.pid);
    if (hello.role == TSV_ROLE_RELAY) {
        link_hello(hub, c);
        return;
    }
    hub->clients = hub_grow(hub->clients, &hub->clients_cap, hub->nclients + 1, sizeof(c));
    c->index = hub->nclients;
    hub->clients[hub->nclients++] = c;
    c->addr = h->src;
    c->role = hello.role;
    c->state = C_IDLE;
    hub->alive++;
    hub_describe(c);
    hub_event(hub, TSV_HUB_JOINED, c, "%s joined (role %u)", c->name, hello.role);
    channel_offer(hub, c, h);
}

void hub_on_send(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                 const uint8_t *payload)
{
    if (h->time < hub->barrier || h->time >= hub->deadline) {
        hub_fail(hub, c, "sent a packet stamped %llu ns, outside its slice [%llu, %llu) ns",
                 (unsigned long long)h->time, (unsigned long long)hub->barrier,
                 (unsigned long long)hub->deadline);
        return;
    }
    if (h->src != c->addr) {
        hub_fail(hub, c, "sent a packet with a source address other than its own");
        return;
    }
    c->round_bytes += h->len;
    if (c->round_bytes > hub->round_bytes_max) {
        hub_fail(hub, c, "sent more than %llu bytes in one round (the bound per client)",
                 (unsigned long long)hub->round_bytes_max);
        return;
    }
    hub->packets = hub_grow(hub->packets, &hub->packets_cap, hub->npackets + 1,
                            sizeof(*hub->packets));
    struct tsv_hub_packet *p = &hub->packets[hub->npackets];
    p->time = h->time;
    p->handle = slot_store(hub, payload, h->len, h->src, h->dst);
    p->src = h->src;
    p->dst = h->dst;
    p->size = h->len;
    p->client = c->index;
    p->seq = (uint32_t)hub->npackets++;
    hub->stats.packets++;
}

void hub_at_deadline(struct tsv_hub *hub, struct client *c)
{
    c->state = C_IDLE;
    c->stopped_at = hub_now();
    hub->waiting--;
}

void hub_on_frame(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                  const uint8_t *payload)
{
    if (c->state == C_CONNECTED) {
        on_hello(hub, c, h, payload);
        return;
    }
    if (c->is_link) {
        link_on_frame(hub, c, h, payload);
        return;
    }
    if (c->state != C_RUNNING) {
        hub_fail(hub, c, "sent a frame of type %u while stopped at the barrier %llu ns", h->type,
             (unsigned long long)hub->barrier);
        return;
    }
    switch (h->type) {
    case TSV_SEND:
        hub_on_send(hub, c, h, payload);
        break;
    case TSV_AT_DEADLINE:
        if (h->time != hub->deadline || h->len != 0) {
            hub_fail(hub, c, "AT_DEADLINE(%llu ns, %u bytes) while the deadline is %llu ns",
                 (unsigned long long)h->time, h->len, (unsigned long long)hub->deadline);
            return;
        }
        hub_at_deadline(hub, c);
        break;
    default:
        hub_fail(hub, c, "unexpected frame type %u", h->type);
    }
}

/* Reads what is available and handles every whole frame. */
static void on_readable(struct tsv_hub *hub, struct client *c)
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
            else if (c->state == C_CONNECTED)
                hub_fail(hub, c, "connection closed before HELLO");
            else {
                /* What it sent before going is in its ring still: it counts. */
                if (c->channel)
                    channel_drain(hub, c);
                if (c->state != C_DEAD) {
                    hub_event(hub, TSV_HUB_LEFT, c, "%s left", c->name);
                    hub_close(hub, c);
                }
            }
            return;
        }
        c->in.len += (size_t)n;
        hub->stats.bytes_in += (uint64_t)n;
        while (c->state != C_DEAD && c->in.len - c->in.off >= TSV_HEADER_SIZE) {
            struct tsv_header h;
            char why[96];
            memcpy(&h, c->in.data + c->in.off, TSV_HEADER_SIZE);
            if (tsv_header_check(&h, why, sizeof(why))) {
                hub_fail(hub, c, "%s", why);
                return;
            }
            if (c->in.len - c->in.off < TSV_HEADER_SIZE + h.len)
                break;
            const uint8_t *payload = c->in.data + c->in.off + TSV_HEADER_SIZE;
            c->in.off += TSV_HEADER_SIZE + h.len;
            hub_on_frame(hub, c, &h, payload);
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

/* ---- listening ---------------------------------------------------------------------------- */

struct tsv_hub *tsv_hub_new(const char *address, char *error, size_t error_len)
{
    struct tsv_hub *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return NULL;
    hub->barrier_fd = hub->event_fd = hub->tcp_fd = -1;
    hub->round_bytes_max = TSV_HUB_ROUND_BYTES;
    hub->out_bytes_max = TSV_HUB_OUT_BYTES;
    hub->listen_fd = tsv_listen(address, hub->address, sizeof(hub->address), hub->error,
                                sizeof(hub->error));
    if (hub->listen_fd >= 0) {
        if (!tsv_is_tcp_address(address))
            hub->unix_path = strdup(address); /* removed when the hub stops listening */
        hub->epfd = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (hub->epfd < 0 || epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->listen_fd, &ev) < 0)
            set_error(hub, "epoll: %s", strerror(errno));
        else
            return hub;
    }
    if (error && error_len)
        snprintf(error, error_len, "%s", hub->error);
    tsv_hub_free(hub);
    return NULL;
}

static void stop_listening(struct tsv_hub *hub)
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

void tsv_hub_free(struct tsv_hub *hub)
{
    if (!hub)
        return;
    stop_listening(hub);
    for (int i = 0; i < hub->nlinks; i++) /* before their members, which they close */
        hub_close(hub, hub->links[i]);
    for (int i = 0; i < hub->nclients; i++) {
        hub_close(hub, hub->clients[i]);
        free(hub->clients[i]);
    }
    for (int i = 0; i < hub->npending; i++) {
        hub_close(hub, hub->pending[i]);
        free(hub->pending[i]);
    }
    for (int i = 0; i < hub->nlinks; i++)
        free(hub->links[i]);
    free(hub->links);
    for (uint32_t i = 0; i < hub->nslots; i++)
        free(hub->slots[i].data);
    channels_free(hub);
    if (hub->epfd > 0)
        close(hub->epfd);
    free(hub->clients);
    free(hub->pending);
    free(hub->packets);
    free(hub->slots);
    free(hub->free_slots);
    free(hub->events);
    free(hub);
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
        c->fd = fd;
        c->index = -1;
        c->state = C_CONNECTED;
        c->since = hub_now();
        c->from_unix = listen_fd == hub->listen_fd && hub->unix_path != NULL;
        hub_describe(c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(hub->epfd, EPOLL_CTL_ADD, fd, &ev);
        hub->pending = hub_grow(hub->pending, &hub->pending_cap, hub->npending + 1, sizeof(c));
        hub->pending[hub->npending++] = c;
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

/* Runs one epoll_wait and handles what it reports; -1 on a hub error. */
static int poll_once(struct tsv_hub *hub, int timeout_ms)
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
        set_error(hub, "epoll_wait: %s", strerror(errno));
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
            hub_flush(hub, c);
        if (c->state != C_DEAD && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            on_readable(hub, c);
    }
    return 0;
}

static int remaining_ms(uint64_t end)
{
    if (end == UINT64_MAX)
        return -1;
    uint64_t t = hub_now();
    return t >= end ? 0 : (int)((end - t + 999999) / 1000000);
}

int tsv_hub_accept(struct tsv_hub *hub, int count, int timeout_ms)
{
    struct span span = span_begin(hub);
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : span.wall + (uint64_t)timeout_ms * 1000000u;
    int rc = 0;
    /* Polls at least once, even with timeout_ms 0. */
    while (hub->nclients < count && hub->listen_fd >= 0) {
        if (poll_once(hub, remaining_ms(end)) < 0) {
            rc = -1;
            break;
        }
        if (remaining_ms(end) == 0)
            break;
    }
    if (hub->nclients >= count)
        stop_listening(hub);
    span_end(hub, span);
    return rc < 0 ? -1 : hub->nclients;
}

/* ---- rounds ------------------------------------------------------------------------------- */

/* Starts the slice [barrier, deadline) for every client stopped at the barrier. */
static void start_round(struct tsv_hub *hub, uint64_t deadline)
{
    hub->barrier = hub->deadline;
    hub->deadline = deadline;
    hub->npackets = 0;
    int on_channels = 0;
    for (int i = 0; i < hub->nclients; i++)
        on_channels += hub->clients[i]->state == C_IDLE && hub->clients[i]->channel;
    if (on_channels)
        channels_expect(hub, on_channels); /* before any GOTO: they may reach D at once */
    for (int i = 0; i < hub->nclients; i++) {
        struct client *c = hub->clients[i];
        if (c->state != C_IDLE)
            continue;
        c->round_bytes = 0;
        if (!c->link && hub_queue(hub, c, TSV_GOTO, deadline, 0, 0, NULL, 0))
            continue;
        c->state = C_RUNNING;
        hub->waiting++;
        if (!c->link)
            hub_flush(hub, c);
        if (c->stopped_at)
            c->held_ns += hub_now() - c->stopped_at;
    }
    if (hub->nlinks)
        links_start_round(hub, deadline);
}

static int check_goto(struct tsv_hub *hub, uint64_t deadline)
{
    if (deadline <= hub->deadline) {
        set_error(hub, "deadline %llu ns is not after the previous one (%llu ns)",
                  (unsigned long long)deadline, (unsigned long long)hub->deadline);
        return -1;
    }
    if (hub->waiting) {
        set_error(hub, "a round is still under way");
        return -1;
    }
    return 0;
}

int tsv_hub_goto(struct tsv_hub *hub, uint64_t deadline)
{
    return tsv_hub_run(hub, deadline, 0, deadline);
}

int tsv_hub_run(struct tsv_hub *hub, uint64_t deadline, uint64_t step, uint64_t limit)
{
    if (check_goto(hub, deadline))
        return -1;
    struct span span = span_begin(hub);
    hub->step = step;
    hub->limit = limit;
    hub->rounds_on = step > 0 && deadline < limit;
    start_round(hub, deadline);
    span_end(hub, span);
    return 0;
}

/* Packets sent at the same ns by different participants go into the simulation in the order
 * of their senders' addresses, not of their client indices, which follow the order in which
 * the participants happened to connect: the same run must inject (and, on a link passing one
 * frame at a time, complete) them in the same order. A sender's own packets keep theirs. */
static int cmp_packets(const void *a, const void *b)
{
    const struct tsv_hub_packet *p = a, *q = b;
    if (p->time != q->time)
        return p->time < q->time ? -1 : 1;
    uint32_t ps = ntohl(p->src), qs = ntohl(q->src);
    if (ps != qs)
        return ps < qs ? -1 : 1;
    return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* The round ended: its packets in order, the barrier moved. */
static void end_round(struct tsv_hub *hub)
{
    if (hub->npackets > 1) /* qsort's array may not be NULL, even empty (UBSan) */
        qsort(hub->packets, (size_t)hub->npackets, sizeof(*hub->packets), cmp_packets);
    hub->barrier = hub->deadline;
    hub->stats.rounds++;
}

/* Whether the run goes on by itself: the round that ended was idle (no packet, no event the
 * caller has not seen: no client came or went) and the run's limit is not reached. */
static int goes_on(const struct tsv_hub *hub, uint64_t events_before)
{
    return hub->rounds_on && hub->npackets == 0 && hub->events_total == events_before &&
           hub->ev_head == hub->ev_len && hub->barrier < hub->limit && hub->alive > 0;
}

int tsv_hub_wait(struct tsv_hub *hub, int timeout_ms)
{
    struct span span = span_begin(hub);
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : span.wall + (uint64_t)timeout_ms * 1000000u;
    int rc = 1;
    for (;;) {
        uint64_t events_before = hub->events_total;
        while (hub->waiting > 0) { /* polls at least once, even with timeout_ms 0 */
            if (poll_once(hub, remaining_ms(end)) < 0) {
                rc = -1;
                break;
            }
            if (hub->waiting > 0 && remaining_ms(end) == 0) {
                rc = 0;
                break;
            }
        }
        if (rc != 1)
            break;
        end_round(hub);
        if (!goes_on(hub, events_before))
            break;
        uint64_t next = hub->barrier + hub->step;
        start_round(hub, next < hub->limit ? next : hub->limit);
        if (remaining_ms(end) == 0) { /* the caller's turn; the round goes on meanwhile */
            rc = 0;
            break;
        }
    }
    if (rc != 0)
        hub->rounds_on = 0;
    span_end(hub, span);
    return rc;
}

int tsv_hub_packet_count(const struct tsv_hub *hub)
{
    return hub->npackets;
}

const struct tsv_hub_packet *tsv_hub_packets(const struct tsv_hub *hub)
{
    return hub->packets;
}

int tsv_hub_deliver(struct tsv_hub *hub, uint64_t handle, int client, uint64_t time)
{
    int rc = 0;
    struct slot *s = slot_get(hub, handle);
    if (!s) {
        set_error(hub, "unknown payload handle %llu", (unsigned long long)handle);
        return -1;
    }
    if (hub->waiting || time != hub->barrier) {
        set_error(hub, "delivery at %llu ns outside the barrier (%llu ns)",
                  (unsigned long long)time, (unsigned long long)hub->barrier);
        rc = -1;
    } else {
        rc = tsv_hub_inject(hub, client, time, s->src, s->dst, s->data, s->len);
    }
    slot_free(hub, s);
    return rc;
}

int tsv_hub_inject(struct tsv_hub *hub, int client, uint64_t time, uint32_t src, uint32_t dst,
                   const uint8_t *data, uint32_t len)
{
    if (hub->waiting || time != hub->barrier) {
        set_error(hub, "delivery at %llu ns outside the barrier (%llu ns)",
                  (unsigned long long)time, (unsigned long long)hub->barrier);
        return -1;
    }
    if (client < 0 || client >= hub->nclients || hub->clients[client]->state == C_DEAD) {
        set_error(hub, "delivery to client %d, which is gone", client);
        return -1;
    }
    struct span span = span_begin(hub);
    struct client *c = hub->clients[client];
    /* A member's frames go through its relay, which finds it by header.dst. */
    struct client *wire = c->link ? c->link : c;
    if (hub_queue(hub, wire, TSV_DELIVER, time, src, c->link ? c->addr : dst, data, len) == 0)
        hub_flush(hub, wire);
    span_end(hub, span);
    return 0;
}

const uint8_t *tsv_hub_payload(const struct tsv_hub *hub, uint64_t handle, uint32_t *len)
{
    struct slot *s = slot_get(hub, handle);
    if (!s)
        return NULL;
    *len = s->len;
    return s->data;
}

void tsv_hub_drop(struct tsv_hub *hub, uint64_t handle)
{
    struct slot *s = slot_get(hub, handle);
    if (s)
        slot_free(hub, s);
}

int tsv_hub_end(struct tsv_hub *hub, int timeout_ms)
{
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : hub_now() + (uint64_t)timeout_ms * 1000000u;
    hub->ended = 1;
    int n = hub->nclients + hub->nlinks;
    for (int i = 0; i < n; i++) {
        struct client *c = i < hub->nclients ? hub->clients[i] : hub->links[i - hub->nclients];
        if (c->state == C_DEAD || c->link)
            continue;
        if (hub_queue(hub, c, TSV_END, hub->barrier, 0, 0, NULL, 0) == 0)
            hub_flush(hub, c);
    }
    for (;;) {
        int pending = 0;
        for (int i = 0; i < n; i++) {
            struct client *c = i < hub->nclients ? hub->clients[i] : hub->links[i - hub->nclients];
            if (c->state != C_DEAD && !c->link && c->out.len > c->out.off)
                pending = 1;
        }
        int ms = remaining_ms(end);
        if (!pending || ms == 0)
            return pending ? -1 : 0;
        if (poll_once(hub, ms) < 0)
            return -1;
    }
}

/* ---- accessors ---------------------------------------------------------------------------- */

static const struct client *get(const struct tsv_hub *hub, int i)
{
    return i >= 0 && i < hub->nclients ? hub->clients[i] : NULL;
}

int tsv_hub_channels(struct tsv_hub *hub, uint32_t ring_size)
{
    if (hub->nclients || hub->npending || hub->ring_size) {
        set_error(hub, "channels are set before any client connects, once");
        return -1;
    }
    if (!hub->unix_path)
        return 0; /* TCP: no shared memory with participants that may be elsewhere */
    return channels_init(hub, ring_size);
}

int tsv_hub_client_channel(const struct tsv_hub *hub, int i)
{
    return get(hub, i) && get(hub, i)->channel;
}

void tsv_hub_set_secret(struct tsv_hub *hub, const uint8_t *secret)
{
    memcpy(hub->secret, secret, TSV_SECRET_SIZE);
    hub->has_secret = 1;
}

void tsv_hub_set_limits(struct tsv_hub *hub, uint64_t round_bytes, uint64_t out_bytes)
{
    hub->round_bytes_max = round_bytes;
    hub->out_bytes_max = out_bytes;
}

int tsv_hub_client_waiting(const struct tsv_hub *hub, int i)
{
    const struct client *c = get(hub, i);
    return c && c->state == C_RUNNING;
}

int tsv_hub_remove(struct tsv_hub *hub, int i, const char *why)
{
    struct client *c = i >= 0 && i < hub->nclients ? hub->clients[i] : NULL;
    if (!c || c->state == C_DEAD)
        return -1;
    hub_fail(hub, c, "%s", why);
    return 0;
}

uint64_t tsv_hub_barrier(const struct tsv_hub *hub) { return hub->barrier; }
uint64_t tsv_hub_deadline(const struct tsv_hub *hub) { return hub->deadline; }
int tsv_hub_client_count(const struct tsv_hub *hub) { return hub->nclients; }
int tsv_hub_alive_count(const struct tsv_hub *hub) { return hub->alive; }

uint32_t tsv_hub_client_address(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->addr : 0;
}

uint32_t tsv_hub_client_pid(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->pid : 0;
}

int tsv_hub_client_role(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->role : 0;
}

uint64_t tsv_hub_client_held_ns(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->held_ns : 0;
}

int tsv_hub_client_alive(const struct tsv_hub *hub, int i)
{
    return get(hub, i) && get(hub, i)->state != C_DEAD;
}

int tsv_hub_next_event(struct tsv_hub *hub, struct tsv_hub_event *event)
{
    if (hub->ev_head >= hub->ev_len)
        return 0;
    *event = hub->events[hub->ev_head++];
    return 1;
}

const char *tsv_hub_error(const struct tsv_hub *hub) { return hub->error; }
const char *tsv_hub_address(const struct tsv_hub *hub) { return hub->address; }
const char *tsv_hub_tcp_address(const struct tsv_hub *hub) { return hub->tcp_address; }

int tsv_hub_listen_tcp(struct tsv_hub *hub, const char *address)
{
    if (!tsv_is_tcp_address(address) || hub->tcp_fd >= 0 || hub->listen_fd < 0) {
        set_error(hub, "a second listener is one tcp:HOST:PORT, before the run starts");
        return -1;
    }
    hub->tcp_fd = tsv_listen(address, hub->tcp_address, sizeof(hub->tcp_address), hub->error,
                             sizeof(hub->error));
    if (hub->tcp_fd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &hub->tcp_fd};
    if (epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->tcp_fd, &ev) < 0) {
        set_error(hub, "epoll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void tsv_hub_get_stats(const struct tsv_hub *hub, struct tsv_hub_stats *stats)
{
    *stats = hub->stats;
}

int tsv_hub_payloads_held(const struct tsv_hub *hub) { return (int)hub->held; }
