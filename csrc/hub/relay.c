/* A relay: the hub of a remote node's participants (a local tsv_hub, shared-memory channels)
 * and, for all of them, one client of the coordinator's hub over TCP (protocol: relay).
 *
 * A round: GOTO(D) from upstream starts the same round on the local hub; once every local
 * participant reached D, their packets (the local hub's order), the departures of the round
 * (GONE) and one AT_DEADLINE go upstream in one write. A round that takes longer than a
 * slice also reports, each slice, the participants that reached D (AT_DEADLINE, header.src
 * saying who), so that a stall is blamed on the participant that stalled, not its node.
 * Between rounds, DELIVERs (by header.dst) come down; a GONE (a member removed) or END may
 * come at any time, a round included: a removed participant leaves the local round at once
 * (and is reported to the caller, who stops its process: tsv_relay_removed). */
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
#include <sys/time.h>
#include <unistd.h>

#include "auth.h"
#include "hub-internal.h"
#include "log.h"
#include "transport.h"

#define LOCAL_SLICE_MS 100 /* while the local round runs, the coordinator is checked this often */
#define HANDSHAKE_S 10     /* the coordinator answers the relay's HELLO within this */

struct tsv_relay {
    struct tsv_hub *local;
    int fd;
    struct buf in;  /* from upstream; bytes [off, len) not handled yet */
    struct buf out; /* one round's answer */
    uint64_t rounds;
    int in_round;
    int begun;      /* the local hub started (tsv_hub_begin), at the first GOTO */
    uint8_t *told; /* per local client: said to have reached this round's deadline */
    int told_cap;
    uint32_t *removed; /* members the coordinator removed, for the caller to stop */
    int nremoved, removed_cap;
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

/* One frame of the handshake, of this type and length, into payload (blocking, bounded by
 * the socket's receive timeout). 0, or -1. */
static int handshake_frame(struct tsv_relay *r, uint16_t type, const char *what, uint8_t *payload,
                           uint32_t len)
{
    struct tsv_header h;
    if (tsv_read_full(r->fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
        return fail(r, "no %s from the coordinator: %s", what,
                    errno == EAGAIN ? "timed out" : "the connection ended");
    if (h.type != type || h.len != len)
        return fail(r, "frame type %u (%u bytes) from the coordinator instead of its %s", h.type,
                    h.len, what);
    if (tsv_read_full(r->fd, payload, len) != (ssize_t)len)
        return fail(r, "the coordinator's %s was cut short", what);
    return 0;
}

/* Both ends prove they know the run's secret, which never crosses the network (auth.h). */
static int handshake(struct tsv_relay *r, const uint8_t *secret)
{
    struct timeval limit = {.tv_sec = HANDSHAKE_S}, none = {0};
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    uint8_t hub_nonce[TSV_NONCE_SIZE], proof[TSV_PROOF_SIZE], expected[TSV_PROOF_SIZE];
    if (handshake_frame(r, TSV_CHALLENGE, "CHALLENGE", hub_nonce, sizeof(hub_nonce)))
        return -1;
    struct tsv_hello hello = {.magic = TSV_MAGIC, .version = TSV_VERSION,
                              .role = TSV_ROLE_RELAY, .pid = (uint32_t)getpid()};
    if (tsv_random(hello.nonce, sizeof(hello.nonce)))
        return fail(r, "no random nonce: %s", strerror(errno));
    tsv_auth_hello_proof(secret, hub_nonce, hello.nonce, 0, hello.role, hello.proof);
    hub_buf_put(&r->out, TSV_HELLO, 0, 0, 0, 0, &hello, sizeof(hello));
    if (send_out(r) || handshake_frame(r, TSV_WELCOME, "WELCOME", proof, sizeof(proof)))
        return -1;
    tsv_auth_welcome_proof(secret, hub_nonce, hello.nonce, expected);
    if (!tsv_auth_equal(expected, proof, sizeof(proof)))
        return fail(r, "the coordinator did not prove it knows the run's secret: not this "
                       "run's coordinator");
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    return 0;
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
    if (handshake(r, secret)) {
        snprintf(error, error_len, "%s", r->error);
        tsv_relay_free(r);
        return NULL;
    }
    for (int i = 0; i < tsv_hub_client_count(local); i++) {
        struct tsv_member m = {.pid = tsv_hub_client_pid(local, i),
                               .role = (uint16_t)tsv_hub_client_role(local, i)};
        hub_buf_put(&r->out, TSV_MEMBER, 0, tsv_hub_client_date(local, i),
                    tsv_hub_client_address(local, i), 0, &m, sizeof(m));
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

/* Reads what the coordinator sent, waiting at most timeout_ms: 1 if bytes came, 0 if none,
 * -1 if the connection ended or broke. */
static int read_upstream(struct tsv_relay *r, int timeout_ms)
{
    hub_buf_reserve(&r->in, TSV_HEADER_SIZE + TSV_MAX_PAYLOAD);
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n < 0 && errno != EINTR)
        return fail(r, "poll: %s", strerror(errno));
    if (n <= 0)
        return 0;
    ssize_t got = recv(r->fd, r->in.data + r->in.len, r->in.cap - r->in.len, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (got <= 0)
        return fail(r, "the coordinator closed the connection%s%s", got < 0 ? ": " : "",
                    got < 0 ? strerror(errno) : "");
    r->in.len += (size_t)got;
    return 1;
}

static int on_frame(struct tsv_relay *r, const struct tsv_header *h, const uint8_t *payload);

/* Handles every whole frame buffered: 1 once END came, 0, or -1. */
static int handle_buffered(struct tsv_relay *r)
{
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
    return next < 0 ? fail(r, "from the coordinator: %s", why) : 0;
}

/* Says upstream which local participants reached the deadline since the last report. */
static int report_reached(struct tsv_relay *r, uint64_t deadline)
{
    int n = tsv_hub_client_count(r->local);
    for (int i = 0; i < n; i++)
        if (!r->told[i] && tsv_hub_client_alive(r->local, i) &&
            !tsv_hub_client_waiting(r->local, i)) {
            r->told[i] = 1;
            hub_buf_put(&r->out, TSV_AT_DEADLINE, 0, deadline,
                        tsv_hub_client_address(r->local, i), 0, NULL, 0);
        }
    return r->out.len ? send_out(r) : 0;
}

static int round_to(struct tsv_relay *r, uint64_t deadline)
{
    struct tsv_hub *local = r->local;
    int n = tsv_hub_client_count(local);
    if (n > r->told_cap) {
        free(r->told);
        if (!(r->told = malloc((size_t)n)))
            abort();
        r->told_cap = n;
    }
    memset(r->told, 0, (size_t)n);
    if (tsv_hub_goto(local, deadline))
        return fail(r, "local round: %s", tsv_hub_error(local));
    int rc;
    while ((rc = tsv_hub_wait(local, LOCAL_SLICE_MS)) == 0) {
        /* A long round: a removal or END may come meanwhile; say who is there already. */
        int up = read_upstream(r, 0);
        if (up > 0)
            up = handle_buffered(r);
        if (up)
            return up;
        if (report_reached(r, deadline))
            return -1;
    }
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
    case TSV_GOTO: {
        if (r->in_round)
            return fail(r, "GOTO during a round");
        if (!r->begun) { /* the first says when the run starts, if not at 0 */
            struct tsv_date start = {.ns = 0};
            if (h->len == sizeof(start))
                memcpy(&start, payload, sizeof(start));
            else if (h->len)
                return fail(r, "first GOTO with %u bytes", h->len);
            if (tsv_hub_begin(r->local, start.ns))
                return fail(r, "starting: %s", tsv_hub_error(r->local));
            r->begun = 1;
        }
        r->in_round = 1;
        int rc = round_to(r, h->time);
        r->in_round = 0;
        return rc;
    }
    case TSV_DELIVER:
        i = local_client(r, h->dst);
        /* One gone since is skipped: the coordinator learns it from this round's GONE. */
        if (i >= 0 && tsv_hub_client_alive(r->local, i) &&
            tsv_hub_inject(r->local, i, h->time, h->src, h->dst, payload, h->len))
            return fail(r, "delivering: %s", tsv_hub_error(r->local));
        return 0;
    case TSV_GONE:
        i = local_client(r, h->dst);
        if (i >= 0 && tsv_hub_remove(r->local, i, "removed by the coordinator") == 0) {
            r->removed = hub_grow(r->removed, &r->removed_cap, r->nremoved + 1,
                                  sizeof(*r->removed));
            r->removed[r->nremoved++] = h->dst;
        }
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
    /* Returns once timeout_ms passed even while rounds follow each other: the caller has
     * its own work (signals, the removed participants' processes). */
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : hub_now() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int rc = handle_buffered(r); /* every whole frame buffered first */
        if (rc)
            return rc;
        int ms = hub_remaining_ms(end);
        if (ms == 0)
            return 0;
        if (read_upstream(r, ms) < 0)
            return -1;
    }
}

int tsv_relay_removed(struct tsv_relay *r, uint32_t *address)
{
    if (!r->nremoved)
        return 0;
    *address = r->removed[--r->nremoved];
    return 1;
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
    free(r->told);
    free(r->removed);
    free(r);
}
