/* A relay: the hub of a remote node's participants (a local tsv_hub, shared-memory channels)
 * and, for all of them, one client of the coordinator's hub over TCP (protocol: relay).
 *
 * A round: GOTO(D) from upstream starts the same round on the local hub; once every local
 * participant reached D, their packets (the local hub's order), the departures of the round
 * (GONE) and one AT_DEADLINE go upstream in one write. Between rounds, DELIVERs (by
 * header.dst) and GONEs (a member removed) come down; END ends the local participants. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "relay"
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hub-internal.h"
#include "log.h"
#include "transport.h"

#define LOCAL_SLICE_MS 100 /* while the local round runs, the coordinator is checked this often */

struct tsv_relay {
    struct tsv_hub *local;
    int fd;
    struct buf in;  /* from upstream; bytes [off, len) not handled yet */
    struct buf out; /* one round's answer */
    uint64_t rounds;
    char error[256];
};

static int fail(struct tsv_relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct tsv_relay *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    return -1;
}

static int send_out(struct tsv_relay *r)
{
    int rc = tsv_write_all(r->fd, r->out.data, r->out.len);
    r->out.off = r->out.len = 0;
    return rc ? fail(r, "writing to the coordinator: %s", strerror(errno)) : 0;
}

struct tsv_relay *tsv_relay_new(struct tsv_hub *local, const char *upstream,
                                const uint8_t *secret, char *error, size_t error_len)
{
    struct tsv_relay *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->local = local;
    char why[128] = "";
    r->fd = tsv_connect(upstream, why, sizeof(why));
    if (r->fd < 0) {
        snprintf(error, error_len, "cannot reach the coordinator at %s: %s", upstream,
                 why[0] ? why : strerror(errno));
        free(r);
        return NULL;
    }
    struct tsv_hello hello = {.magic = TSV_MAGIC, .version = TSV_VERSION,
                              .role = TSV_ROLE_RELAY, .pid = (uint32_t)getpid()};
    memcpy(hello.secret, secret, TSV_SECRET_SIZE);
    hub_buf_put(&r->out, TSV_HELLO, 0, 0, 0, 0, &hello, sizeof(hello));
    for (int i = 0; i < tsv_hub_client_count(local); i++) {
        struct tsv_member m = {.pid = tsv_hub_client_pid(local, i),
                               .role = (uint16_t)tsv_hub_client_role(local, i)};
        hub_buf_put(&r->out, TSV_MEMBER, 0, 0, tsv_hub_client_address(local, i), 0, &m,
                    sizeof(m));
    }
    if (send_out(r)) {
        snprintf(error, error_len, "%s", r->error);
        tsv_relay_free(r);
        return NULL;
    }
    return r;
}

/* The local client with this address, or -1. */
static int local_client(struct tsv_relay *r, uint32_t addr)
{
    for (int i = 0; i < tsv_hub_client_count(r->local); i++)
        if (tsv_hub_client_address(r->local, i) == addr)
            return i;
    return -1;
}

/* Whether the coordinator closed the connection (or broke it) while nothing was due. */
static int upstream_gone(struct tsv_relay *r)
{
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    char byte;
    ssize_t n = recv(r->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static int round_to(struct tsv_relay *r, uint64_t deadline)
{
    struct tsv_hub *local = r->local;
    if (tsv_hub_goto(local, deadline))
        return fail(r, "local round: %s", tsv_hub_error(local));
    int rc;
    while ((rc = tsv_hub_wait(local, LOCAL_SLICE_MS)) == 0)
        if (upstream_gone(r))
            return fail(r, "the coordinator closed the connection during a round");
    if (rc < 0)
        return fail(r, "local round: %s", tsv_hub_error(local));
    /* Packets first: what a participant sent before it went is delivered. */
    const struct tsv_hub_packet *p = tsv_hub_packets(local);
    for (int i = 0; i < tsv_hub_packet_count(local); i++) {
        uint32_t len;
        const uint8_t *data = tsv_hub_payload(local, p[i].handle, &len);
        hub_buf_put(&r->out, TSV_SEND, 0, p[i].time, p[i].src, p[i].dst, data, len);
        tsv_hub_drop(local, p[i].handle);
    }
    struct tsv_hub_event e;
    while (tsv_hub_next_event(local, &e))
        if (e.client >= 0 && (e.kind == TSV_HUB_LEFT || e.kind == TSV_HUB_FAILED))
            hub_buf_put(&r->out, TSV_GONE, e.kind == TSV_HUB_FAILED ? TSV_GONE_FAILED : 0,
                        e.time, tsv_hub_client_address(local, e.client), 0, e.message,
                        (uint32_t)strnlen(e.message, TSV_GONE_MESSAGE));
    hub_buf_put(&r->out, TSV_AT_DEADLINE, 0, deadline, 0, 0, NULL, 0);
    r->rounds++;
    return send_out(r);
}

/* Handles one frame from upstream: 1 for END, 0, or -1. */
static int on_frame(struct tsv_relay *r, const struct tsv_header *h, const uint8_t *payload)
{
    int i;
    switch (h->type) {
    case TSV_GOTO:
        return round_to(r, h->time);
    case TSV_DELIVER:
        i = local_client(r, h->dst);
        /* One gone since is skipped: the coordinator learns it from this round's GONE. */
        if (i >= 0 && tsv_hub_client_alive(r->local, i) &&
            tsv_hub_inject(r->local, i, h->time, h->src, h->dst, payload, h->len))
            return fail(r, "delivering: %s", tsv_hub_error(r->local));
        return 0;
    case TSV_GONE:
        i = local_client(r, h->dst);
        if (i >= 0)
            tsv_hub_remove(r->local, i, "removed by the coordinator");
        return 0;
    case TSV_END:
        tsv_hub_end(r->local, 1000);
        return 1;
    default:
        return fail(r, "unexpected frame type %u from the coordinator", h->type);
    }
}

int tsv_relay_serve(struct tsv_relay *r, int timeout_ms)
{
    for (;;) {
        /* Every whole frame buffered first. */
        struct tsv_header h;
        const uint8_t *payload;
        char why[96];
        int next;
        while ((next = tsv_frame_next(r->in.data, r->in.len, &r->in.off, &h, &payload, why,
                                      sizeof(why))) > 0) {
            int rc = on_frame(r, &h, payload);
            if (rc)
                return rc;
        }
        if (next < 0)
            return fail(r, "from the coordinator: %s", why);
        hub_buf_reserve(&r->in, TSV_HEADER_SIZE + TSV_MAX_PAYLOAD);
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int n = poll(&p, 1, timeout_ms);
        if (n < 0 && errno != EINTR)
            return fail(r, "poll: %s", strerror(errno));
        if (n == 0)
            return 0;
        if (n < 0)
            continue;
        ssize_t got = recv(r->fd, r->in.data + r->in.len, r->in.cap - r->in.len, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0)
            return fail(r, "the coordinator closed the connection%s%s", got < 0 ? ": " : "",
                        got < 0 ? strerror(errno) : "");
        r->in.len += (size_t)got;
    }
}

const char *tsv_relay_error(const struct tsv_relay *r) { return r->error; }
uint64_t tsv_relay_rounds(const struct tsv_relay *r) { return r->rounds; }

void tsv_relay_free(struct tsv_relay *r)
{
    if (!r)
        return;
    close(r->fd);
    free(r->in.data);
    free(r->out.data);
    free(r);
}
