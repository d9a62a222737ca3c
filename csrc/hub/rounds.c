/* Rounds: the slice [barrier, deadline) granted to every client stopped at the barrier, the
 * wait for all of them to reach the deadline, the round's packets in order; deliveries at the
 * barrier between rounds; the run's END. */
#define TSV_LOG_COMPONENT "hub"
#include <arpa/inet.h>
#include <stdlib.h>

#include "hub-internal.h"

/* Starts the slice [barrier, deadline) for every client stopped at the barrier. */
static void start_round(struct tsv_hub *hub, uint64_t deadline)
{
    hub->barrier = hub->deadline;
    hub->deadline = deadline;
    hub->npackets = 0;
    hub->seq = 0;
    channels_expect(hub); /* before any GOTO: they may reach D at once */
    for (int i = 0; i < hub->nclients; i++) {
        struct client *c = hub->clients[i];
        if (c->state != C_IDLE)
            continue;
        c->round_bytes = c->round_packets = 0;
        c->reached = 0;
        if (c->ops->go(hub, c, deadline))
            continue;
        c->state = C_RUNNING;
        hub->waiting++;
        c->ops->flush(hub, c);
        if (c->stopped_at)
            c->held_ns += hub_now() - c->stopped_at;
    }
    relays_start_round(hub, deadline);
}

static int check_goto(struct tsv_hub *hub, uint64_t deadline)
{
    if (deadline <= hub->deadline) {
        hub_set_error(hub, "deadline %llu ns is not after the previous one (%llu ns)",
                      (unsigned long long)deadline, (unsigned long long)hub->deadline);
        return -1;
    }
    if (hub->waiting) {
        hub_set_error(hub, "a round is still under way");
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
    struct span span = hub_span_begin(hub);
    hub->step = step;
    hub->limit = limit;
    hub->rounds_on = step > 0 && deadline < limit;
    start_round(hub, deadline);
    hub_span_end(hub, span);
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

void hub_end_round(struct tsv_hub *hub)
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
    struct span span = hub_span_begin(hub);
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : span.wall + (uint64_t)timeout_ms * 1000000u;
    int rc = 1;
    for (;;) {
        uint64_t events_before = hub->events_total;
        while (hub->waiting > 0) { /* polls at least once, even with timeout_ms 0 */
            if (hub_poll(hub, hub_remaining_ms(end)) < 0) {
                rc = -1;
                break;
            }
            if (hub->waiting > 0 && hub_remaining_ms(end) == 0) {
                rc = 0;
                break;
            }
        }
        if (rc != 1)
            break;
        hub_end_round(hub);
        if (!goes_on(hub, events_before))
            break;
        uint64_t next = hub->barrier + hub->step;
        start_round(hub, next < hub->limit ? next : hub->limit);
        if (hub_remaining_ms(end) == 0) { /* the caller's turn; the round goes on meanwhile */
            rc = 0;
            break;
        }
    }
    if (rc != 0)
        hub->rounds_on = 0;
    hub_span_end(hub, span);
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

int tsv_hub_inject(struct tsv_hub *hub, int client, uint64_t time, uint32_t src, uint32_t dst,
                   const uint8_t *data, uint32_t len)
{
    if (hub->waiting || time != hub->barrier) {
        hub_set_error(hub, "delivery at %llu ns outside the barrier (%llu ns)",
                      (unsigned long long)time, (unsigned long long)hub->barrier);
        return -1;
    }
    if (client < 0 || client >= hub->nclients || hub->clients[client]->state == C_DEAD) {
        hub_set_error(hub, "delivery to client %d, which is gone", client);
        return -1;
    }
    struct span span = hub_span_begin(hub);
    struct client *c = hub->clients[client];
    c->ops->deliver(hub, c, time, src, dst, data, len);
    hub_span_end(hub, span);
    return 0;
}

/* The clients, then the relays' connections. */
static struct client *client_or_relay(const struct tsv_hub *hub, int i)
{
    return i < hub->nclients ? hub->clients[i] : hub->relays[i - hub->nclients];
}

int tsv_hub_end(struct tsv_hub *hub, int timeout_ms)
{
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : hub_now() + (uint64_t)timeout_ms * 1000000u;
    hub->ended = 1;
    int n = hub->nclients + hub->nrelays;
    for (int i = 0; i < n; i++) {
        struct client *c = client_or_relay(hub, i);
        if (c->state != C_DEAD)
            c->ops->end(hub, c);
    }
    for (;;) {
        int pending = 0;
        for (int i = 0; i < n; i++) {
            /* A member's out stays empty: its frames are its relay's. */
            struct client *c = client_or_relay(hub, i);
            if (c->state != C_DEAD && c->out.len > c->out.off)
                pending = 1;
        }
        int ms = hub_remaining_ms(end);
        if (!pending || ms == 0)
            return pending ? -1 : 0;
        if (hub_poll(hub, ms) < 0)
            return -1;
    }
}
