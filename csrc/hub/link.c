/* Relays' connections (links): one connection carries the participants of a remote node.
 *
 * A member is a client like any other for the caller (an index, an address, events), with
 * no descriptor of its own: its frames go through its link, which gets one GOTO per round for
 * all its members, answers with their SENDs (header.src saying whose) and one AT_DEADLINE,
 * and takes their DELIVERs (header.dst saying whose). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub-internal.h"

void link_hello(struct tsv_hub *hub, struct client *c)
{
    hub->links = hub_grow(hub->links, &hub->links_cap, hub->nlinks + 1, sizeof(c));
    hub->links[hub->nlinks++] = c;
    c->is_link = 1;
    c->state = C_IDLE;
    snprintf(c->name, sizeof(c->name), "relay %d (pid %u)", hub->nlinks - 1, c->pid);
}

/* The live member of link with this address, or NULL. */
static struct client *member(struct tsv_hub *hub, struct client *link, uint32_t addr)
{
    for (int i = 0; i < hub->nclients; i++) {
        struct client *m = hub->clients[i];
        if (m->link == link && m->addr == addr)
            return m;
    }
    return NULL;
}

static void on_member(struct tsv_hub *hub, struct client *link, const struct tsv_header *h,
                      const uint8_t *payload)
{
    struct tsv_member info;
    if (link->state != C_IDLE || hub->listen_fd < 0) {
        hub_fail(hub, link, "MEMBER after the run started");
        return;
    }
    if (h->len != sizeof(info)) {
        hub_fail(hub, link, "MEMBER of %u bytes, expected %zu", h->len, sizeof(info));
        return;
    }
    if (member(hub, link, h->src)) {
        hub_fail(hub, link, "the same MEMBER twice");
        return;
    }
    memcpy(&info, payload, sizeof(info));
    struct client *m = calloc(1, sizeof(*m));
    if (!m)
        abort();
    m->fd = -1;
    m->link = link;
    m->addr = h->src;
    m->pid = info.pid;
    m->role = info.role;
    m->state = C_IDLE;
    hub->clients = hub_grow(hub->clients, &hub->clients_cap, hub->nclients + 1, sizeof(m));
    m->index = hub->nclients;
    hub->clients[hub->nclients++] = m;
    hub->alive++;
    hub_describe(m);
    hub_event(hub, TSV_HUB_JOINED, m, "%s joined through %s (role %u)", m->name, link->name,
              info.role);
}

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

void link_on_frame(struct tsv_hub *hub, struct client *link, const struct tsv_header *h,
                   const uint8_t *payload)
{
    if (h->type == TSV_MEMBER) {
        on_member(hub, link, h, payload);
        return;
    }
    if (link->state != C_RUNNING) {
        hub_fail(hub, link, "sent a frame of type %u while stopped at the barrier %llu ns",
                 h->type, (unsigned long long)hub->barrier);
        return;
    }
    if (h->type == TSV_AT_DEADLINE) {
        if (h->time != hub->deadline || h->len != 0) {
            hub_fail(hub, link, "AT_DEADLINE(%llu ns, %u bytes) while the deadline is %llu ns",
                     (unsigned long long)h->time, h->len, (unsigned long long)hub->deadline);
            return;
        }
        for (int i = 0; i < hub->nclients; i++) {
            struct client *m = hub->clients[i];
            if (m->link == link && m->state == C_RUNNING)
                hub_at_deadline(hub, m);
        }
        link->state = C_IDLE;
        return;
    }
    if (h->type != TSV_SEND && h->type != TSV_GONE) {
        hub_fail(hub, link, "unexpected frame type %u", h->type);
        return;
    }
    struct client *m = member(hub, link, h->src);
    if (!m) {
        hub_fail(hub, link, "a frame of type %u for an address that is not its member",
                 h->type);
        return;
    }
    if (m->state == C_DEAD)
        return; /* removed by the hub: what its relay sent before knowing is dropped */
    if (h->type == TSV_GONE)
        on_gone(hub, m, h, payload);
    else
        hub_on_send(hub, m, h, payload);
}

void link_closing(struct tsv_hub *hub, struct client *link, const char *why)
{
    for (int i = 0; i < hub->nclients; i++) {
        struct client *m = hub->clients[i];
        if (m->link != link || m->state == C_DEAD)
            continue;
        m->gone_told = 1;
        if (hub->ended) {
            hub_close(hub, m); /* the run is over: its relay closing is its end */
            continue;
        }
        hub_event(hub, TSV_HUB_FAILED, m, "%s: its relay's connection was %s", m->name, why);
        hub_close(hub, m);
    }
}

void link_member_gone(struct tsv_hub *hub, struct client *m)
{
    struct client *link = m->link;
    if (m->gone_told || link->state == C_DEAD)
        return;
    m->gone_told = 1;
    if (hub_queue(hub, link, TSV_GONE, hub->barrier, 0, m->addr, NULL, 0) == 0)
        hub_flush(hub, link);
}

void links_start_round(struct tsv_hub *hub, uint64_t deadline)
{
    for (int i = 0; i < hub->nlinks; i++) {
        struct client *link = hub->links[i];
        if (link->state != C_IDLE)
            continue;
        int running = 0;
        for (int k = 0; k < hub->nclients; k++)
            running += hub->clients[k]->link == link && hub->clients[k]->state == C_RUNNING;
        if (!running)
            continue;
        if (hub_queue(hub, link, TSV_GOTO, deadline, 0, 0, NULL, 0))
            continue; /* failed: its members with it */
        link->state = C_RUNNING;
        hub_flush(hub, link);
    }
}
