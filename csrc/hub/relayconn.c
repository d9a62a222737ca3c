/* Relays' connections: one connection carries the participants of a remote node (its relay,
 * relay.c, at the far end).
 *
 * A member is a client like any other for the caller (an index, an address, events), with
 * no descriptor of its own: its frames go through its relay's connection, which gets one GOTO
 * per round for all its members, answers with their SENDs (header.src saying whose) and one
 * AT_DEADLINE, and takes their DELIVERs (header.dst saying whose). The kinds: relay_ops for
 * the connection, member_ops for each member. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub-internal.h"

static const struct client_ops relay_ops, member_ops;

void relay_conn_hello(struct tsv_hub *hub, struct client *c)
{
    hub->relays = hub_grow(hub->relays, &hub->relays_cap, hub->nrelays + 1, sizeof(c));
    hub->relays[hub->nrelays++] = c;
    c->ops = &relay_ops;
    c->state = C_IDLE;
    snprintf(c->name, sizeof(c->name), "relay %d (pid %u)", hub->nrelays - 1, c->pid);
}

/* The live member of relay r with this address, or NULL. */
static struct client *member(struct tsv_hub *hub, struct client *r, uint32_t addr)
{
    for (int i = 0; i < hub->nclients; i++) {
        struct client *m = hub->clients[i];
        if (m->via == r && m->addr == addr)
            return m;
    }
    return NULL;
}

/* ---- the relay's connection --------------------------------------------------------------- */

static void on_member(struct tsv_hub *hub, struct client *r, const struct tsv_header *h,
                      const uint8_t *payload)
{
    struct tsv_member info;
    if (r->state != C_IDLE || hub->listen_fd < 0) {
        hub_fail(hub, r, "MEMBER after the run started");
        return;
    }
    if (h->len != sizeof(info)) {
        hub_fail(hub, r, "MEMBER of %u bytes, expected %zu", h->len, sizeof(info));
        return;
    }
    if (member(hub, r, h->src)) {
        hub_fail(hub, r, "the same MEMBER twice");
        return;
    }
    memcpy(&info, payload, sizeof(info));
    struct client *m = calloc(1, sizeof(*m));
    if (!m)
        abort();
    m->fd = -1;
    m->via = r;
    m->pid = info.pid;
    hub_register(hub, m, &member_ops, h->src, info.role);
    m->at = h->time; /* its HELLO's date, passed on */
    hub_event(hub, TSV_HUB_JOINED, m, "%s joined through %s (role %u)", m->name, r->name,
              info.role);
}

static void member_on_frame(struct tsv_hub *hub, struct client *m, const struct tsv_header *h,
                            const uint8_t *payload);

/* A round that takes long: the relay says which of its members reached the deadline, so that
 * the ones it still waits for, and only they, look late (a stall is named right). */
static void member_reached(struct tsv_hub *hub, struct client *r, uint32_t addr)
{
    struct client *m = member(hub, r, addr);
    if (!m) {
        hub_fail(hub, r, "AT_DEADLINE for an address that is not its member");
        return;
    }
    if (m->state == C_DEAD)
        return; /* removed by the hub meanwhile */
    if (m->state != C_RUNNING || m->reached) {
        hub_fail(hub, r, "%s reached the deadline twice", m->name);
        return;
    }
    m->reached = 1;
}

static void relay_on_frame(struct tsv_hub *hub, struct client *r, const struct tsv_header *h,
                           const uint8_t *payload)
{
    if (h->type == TSV_MEMBER) {
        on_member(hub, r, h, payload);
        return;
    }
    if (!hub_in_round(hub, r, h))
        return;
    if (h->type == TSV_AT_DEADLINE && h->src) {
        member_reached(hub, r, h->src);
        return;
    }
    if (h->type == TSV_AT_DEADLINE) {
        for (int i = 0; i < hub->nclients; i++) {
            struct client *m = hub->clients[i];
            if (m->via == r && m->state == C_RUNNING)
                hub_at_deadline(hub, m, NULL, NULL);
        }
        r->state = C_IDLE;
        return;
    }
    if (h->type != TSV_SEND && h->type != TSV_GONE) {
        hub_fail(hub, r, "unexpected frame type %u", h->type);
        return;
    }
    struct client *m = member(hub, r, h->src);
    if (!m) {
        hub_fail(hub, r, "a frame of type %u for an address that is not its member", h->type);
        return;
    }
    member_on_frame(hub, m, h, payload);
}

/* Its members fail with it (unless the run ended). */
static void relay_close(struct tsv_hub *hub, struct client *r)
{
    for (int i = 0; i < hub->nclients; i++) {
        struct client *m = hub->clients[i];
        if (m->via != r || m->state == C_DEAD)
            continue;
        m->gone_told = 1;
        if (hub->ended) {
            hub_close(hub, m); /* the run is over: its relay closing is its end */
            continue;
        }
        hub_event(hub, TSV_HUB_FAILED, m, "%s: its relay's connection was lost", m->name);
        hub_close(hub, m);
    }
    hub_socket_close(hub, r);
}

void relays_start_round(struct tsv_hub *hub, uint64_t deadline)
{
    for (int i = 0; i < hub->nrelays; i++) {
        struct client *r = hub->relays[i];
        if (r->state != C_IDLE)
            continue;
        int running = 0;
        for (int k = 0; k < hub->nclients; k++)
            running += hub->clients[k]->via == r && hub->clients[k]->state == C_RUNNING;
        if (!running)
            continue;
        /* Its first GOTO says when the run starts, for the relay's own hub (tsv_hub_begin). */
        struct tsv_date start = {.ns = hub->barrier};
        int first = r->at == 0 && start.ns > 0;
        r->at = hub->barrier;
        if (hub_queue(hub, r, TSV_GOTO, deadline, 0, 0, first ? (const uint8_t *)&start : NULL,
                      first ? (uint32_t)sizeof(start) : 0))
            continue; /* failed: its members with it */
        r->state = C_RUNNING;
        r->ops->flush(hub, r);
    }
}

/* Not a client: no GOTO or DELIVER of its own. */
static const struct client_ops relay_ops = {
    .kind = "relay",
    .on_frame = relay_on_frame,
    .flush = hub_socket_flush,
    .end = hub_direct_end,
    .hangup = hub_left,
    .close = relay_close,
};

/* ---- a member ----------------------------------------------------------------------------- */

static void on_gone(struct tsv_hub *hub, struct client *m, const struct tsv_header *h,
                    const uint8_t *payload)
{
    int len = h->len < TSV_GONE_MESSAGE ? (int)h->len : TSV_GONE_MESSAGE;
    m->gone_told = 1;
    hub_event(hub, h->flags & TSV_GONE_FAILED ? TSV_HUB_FAILED : TSV_HUB_LEFT, m, "%s %s: %.*s",
              m->name, h->flags & TSV_GONE_FAILED ? "failed" : "left", len,
              (const char *)payload);
    hub_close(hub, m);
}

/* Its SEND or GONE, from its relay. */
static void member_on_frame(struct tsv_hub *hub, struct client *m, const struct tsv_header *h,
                            const uint8_t *payload)
{
    if (m->state == C_DEAD)
        return; /* removed by the hub: what its relay sent before knowing is dropped */
    if (h->type == TSV_GONE)
        on_gone(hub, m, h, payload);
    else
        hub_on_send(hub, m, h, payload);
}

/* Its relay's one GOTO (relays_start_round) and END are its own. */
static int member_go(struct tsv_hub *hub, struct client *m, uint64_t deadline)
{
    (void)hub, (void)m, (void)deadline;
    return 0;
}

static void member_end(struct tsv_hub *hub, struct client *m)
{
    (void)hub, (void)m;
}

static int member_flush(struct tsv_hub *hub, struct client *m)
{
    (void)hub, (void)m;
    return 0; /* nothing of its own: its frames are queued on its relay's connection */
}

static void member_deliver(struct tsv_hub *hub, struct client *m, uint64_t time, uint32_t src,
                           uint32_t dst, const uint8_t *data, uint32_t len)
{
    (void)dst; /* its relay finds it by header.dst */
    hub_send(hub, m->via, TSV_DELIVER, time, src, m->addr, data, len);
}

/* Gone: its relay is told (unless it told the hub). */
static void member_close(struct tsv_hub *hub, struct client *m)
{
    if (m->gone_told || m->via->state == C_DEAD)
        return;
    m->gone_told = 1;
    hub_send(hub, m->via, TSV_GONE, hub->barrier, 0, m->addr, NULL, 0);
}

/* No socket: no hangup. */
static const struct client_ops member_ops = {
    .kind = "member",
    .on_frame = member_on_frame,
    .flush = member_flush,
    .go = member_go,
    .deliver = member_deliver,
    .end = member_end,
    .close = member_close,
};
