/* Rounds: the slice [barrier, deadline) granted to every client stopped at the barrier, the
 * wait for all of them to reach the deadline, the round's packets in order; deliveries at the
 * barrier between rounds; the run's END.
 *
 * Idle horizons (tsv_hub_set_horizons): a client that said, at its deadline, that it does
 * nothing by itself before a date U sits out the rounds that end before U, unless a packet is
 * delivered to it; it stays at the deadline it reached, and its time jumps to the barrier
 * when it is woken (tansiv-protocol.h). The next round then ends at the earliest date anyone
 * can act, plus the lookahead (a packet sent then arrives no earlier); if nobody can act at
 * the barrier, a round everybody sits out (no GOTO: it costs nothing) first takes the run to
 * 1 ns before that date. A run of idle participants goes from timer to timer, not lookahead
 * to lookahead. Exact: a client sits out only rounds that end strictly before its own date,
 * so its first instruction after the wait comes at the date it would have come at in every
 * round. */
#define TSV_LOG_COMPONENT "hub"
#include <arpa/inet.h>
#include <stdlib.h>

#include "hub-internal.h"

void tsv_hub_set_horizons(struct tsv_hub *hub, int on)
{
    hub->horizons = on != 0;
}

int hub_sits_out(const struct tsv_hub *hub, const struct client *c, uint64_t deadline)
{
    return hub->horizons && c->idle_until > deadline && !c->due;
}

uint64_t tsv_hub_idle_until(const struct tsv_hub *hub)
{
    uint64_t earliest = UINT64_MAX;
    for (int i = 0; i < hub->nclients; i++) {
        const struct client *c = hub->clients[i];
        if (c->state == C_DEAD)
            continue;
        uint64_t from = c->state == C_IDLE && hub_sits_out(hub, c, hub->barrier)
                            ? c->idle_until : hub->barrier;
        if (from < earliest)
            earliest = from;
    }
    return earliest;
}

/* The end of the round after the barrier, given how far the run goes (limit) and the
 * lookahead (step): the earliest date a client can act, plus step (what it sends then
 * arrives no earlier). */
static uint64_t next_deadline(const struct tsv_hub *hub, uint64_t step, uint64_t limit)
{
    uint64_t earliest = tsv_hub_idle_until(hub);
    /* Nobody can act before earliest: a round that every client sits out (it costs no
     * GOTO) takes the run to just before it, so that those who then wake jump there. */
    if (earliest != UINT64_MAX && earliest > hub->barrier + 1)
        return earliest - 1 < limit ? earliest - 1 : limit;
    if (limit < step || earliest > limit - step)
        return limit;
    return earliest + step;
}

/* Starts the slice [barrier, deadline) for every client stopped at the barrier that does not
 * sit it out. */
static void start_round(struct tsv_hub *hub, uint64_t deadline)
{
    hub->started = 1;
    hub->barrier = hub->deadline;
    hub->deadline = deadline;
    hub->npackets = 0;
    hub->seq = 0;
    channels_expect(hub, deadline); /* before any GOTO: they may reach D at once */
    for (int i = 0; i < hub->nclients; i++) {
        struct client *c = hub->clients[i];
        if (c->state != C_IDLE)
            continue;
        if (hub_sits_out(hub, c, deadline)) {
            hub->stats.sat_out++;
            continue;
        }
        c->due = 0;
        c->idle_until = 0;
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

uint64_t tsv_hub_start_date(const struct tsv_hub *hub)
{
    uint64_t latest = 0;
    for (int i = 0; i < hub->nclients; i++)
        if (hub->clients[i]->state != C_DEAD && hub->clients[i]->at > latest)
            latest = hub->clients[i]->at;
    return latest;
}

int tsv_hub_begin(struct tsv_hub *hub, uint64_t at)
{
    if (hub->started) {
        hub_set_error(hub, "the run started already");
        return -1;
    }
    uint64_t latest = tsv_hub_start_date(hub);
    if (at < latest) {
        hub_set_error(hub, "cannot start at %llu ns: a client is at %llu ns",
                      (unsigned long long)at, (unsigned long long)latest);
        return -1;
    }
    hub->barrier = hub->deadline = at;
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
    if (hub->horizons && step > 0) { /* the caller's deadline is the lookahead's */
        uint64_t later = next_deadline(hub, step, limit);
        if (later > deadline)
            deadline = later;
    }
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
        start_round(hub, next_deadline(hub, hub->step, hub->limit));
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
    c->due = 1;
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
