/* What clients say: the HELLO that makes a connection a client of its kind, then, in a
 * round, SEND and AT_DEADLINE; early or late times and foreign addresses fail the sender. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "hub-internal.h"

/* Over TCP: whether the HELLO proves its sender knows the run's secret (auth.h). */
static int proves_secret(const struct tsv_hub *hub, const struct client *c,
                         const struct tsv_header *h, const struct tsv_hello *hello)
{
    uint8_t expected[TSV_PROOF_SIZE];
    tsv_auth_hello_proof(hub->secret, c->nonce, hello->nonce, h->src, hello->role, expected);
    return tsv_auth_equal(expected, hello->proof, TSV_PROOF_SIZE);
}

/* Over TCP: the hub's proof, before anything else the new client gets. */
static void welcome(struct tsv_hub *hub, struct client *c, const struct tsv_hello *hello)
{
    uint8_t proof[TSV_PROOF_SIZE];
    tsv_auth_welcome_proof(hub->secret, c->nonce, hello->nonce, proof);
    hub_send(hub, c, TSV_WELCOME, 0, 0, 0, proof, sizeof(proof));
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

void hub_register(struct tsv_hub *hub, struct client *c, const struct client_ops *ops,
                  uint32_t addr, int role)
{
    hub->clients = hub_grow(hub->clients, &hub->clients_cap, hub->nclients + 1, sizeof(c));
    c->index = hub->nclients;
    hub->clients[hub->nclients++] = c;
    c->ops = ops;
    c->addr = addr;
    c->role = role;
    c->state = C_IDLE;
    c->at = hub->barrier;
    hub->alive++;
    char ip[INET_ADDRSTRLEN] = "?";
    struct in_addr a = {.s_addr = addr};
    inet_ntop(AF_INET, &a, ip, sizeof(ip));
    snprintf(c->name, sizeof(c->name), "client %d (%s, pid %u)", c->index, ip, c->pid);
}

void hub_on_hello(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
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
    if (!c->from_unix && !hub->has_secret) {
        hub_fail(hub, c, "connected over TCP to a hub without a secret: refused");
        return;
    }
    if (!c->from_unix && !proves_secret(hub, c, h, &hello)) {
        hub_fail(hub, c, "HELLO without proof of the run's secret (TANSIV_SECRET)");
        return;
    }
    if (!c->from_unix)
        welcome(hub, c, &hello);
    if (c->state == C_DEAD)
        return; /* still pending: the housekeeping frees it */
    for (int i = 0; i < hub->npending; i++)
        if (hub->pending[i] == c) {
            hub->pending[i] = hub->pending[--hub->npending];
            break;
        }
    c->pid = peer_pid(c->fd, hello.pid);
    if (hello.role == TSV_ROLE_RELAY) {
        relay_conn_hello(hub, c);
        return;
    }
    hub_register(hub, c, &hub_socket_ops, h->src, hello.role);
    c->at = h->time; /* the date it is at: the run starts at the latest (tsv_hub_begin) */
    hub_event(hub, TSV_HUB_JOINED, c, "%s joined (role %u)", c->name, hello.role);
    channel_offer(hub, c, h);
}

int hub_in_round(struct tsv_hub *hub, struct client *c, const struct tsv_header *h)
{
    if (c->state != C_RUNNING) {
        hub_fail(hub, c, "sent a frame of type %u while stopped at the barrier %llu ns", h->type,
                 (unsigned long long)hub->barrier);
        return 0;
    }
    if (h->type == TSV_AT_DEADLINE && (h->time != hub->deadline ||
                                       (h->len != 0 && h->len != sizeof(struct tsv_date)))) {
        hub_fail(hub, c, "AT_DEADLINE(%llu ns, %u bytes) while the deadline is %llu ns",
                 (unsigned long long)h->time, h->len, (unsigned long long)hub->deadline);
        return 0;
    }
    return 1;
}

/* c went over one of its bounds: removed, and what it sent this round discarded (a flood is
 * nobody's traffic; what it has in flight from earlier rounds goes on). */
static void over_bound(struct tsv_hub *hub, struct client *c, const char *fmt,
                       unsigned long long bound)
{
    int kept = 0, discarded = 0;
    for (int i = 0; i < hub->npackets; i++) {
        struct tsv_hub_packet *p = &hub->packets[i];
        if (p->client == c->index) {
            tsv_hub_drop(hub, p->handle);
            discarded++;
        } else {
            hub->packets[kept++] = *p;
        }
    }
    hub->npackets = kept;
    char why[160];
    snprintf(why, sizeof(why), fmt, bound);
    hub_fail(hub, c, "%s: removed, its %d packets of the round discarded", why, discarded);
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
    const struct tsv_hub_limits *max = &hub->limits;
    c->round_bytes += h->len;
    c->round_packets++;
    if (c->round_bytes > max->round_bytes)
        over_bound(hub, c, "sent more than %llu bytes in one round (--round-bytes)",
                   max->round_bytes);
    else if (c->round_packets > max->round_packets)
        over_bound(hub, c, "sent more than %llu packets in one round (--round-packets)",
                   max->round_packets);
    else if (c->held_bytes + h->len > max->inflight_bytes)
        over_bound(hub, c, "has more than %llu bytes in flight (--inflight-bytes)",
                   max->inflight_bytes);
    else if (c->held_packets + 1 > max->inflight_packets)
        over_bound(hub, c, "has more than %llu packets in flight (--inflight-packets)",
                   max->inflight_packets);
    if (c->state == C_DEAD)
        return;
    hub->packets = hub_grow(hub->packets, &hub->packets_cap, hub->npackets + 1,
                            sizeof(*hub->packets));
    struct tsv_hub_packet *p = &hub->packets[hub->npackets];
    p->time = h->time;
    p->handle = hub_slot_store(hub, c, payload, h->len, h->src, h->dst);
    p->src = h->src;
    p->dst = h->dst;
    p->size = h->len;
    p->client = c->index;
    p->seq = hub->seq++; /* not npackets: a discard (over_bound) may have lowered it */
    hub->npackets++;
    hub->stats.packets++;
}

void hub_at_deadline(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                     const uint8_t *payload)
{
    c->idle_until = 0;
    if (h && h->len == sizeof(struct tsv_date)) {
        struct tsv_date idle;
        memcpy(&idle, payload, sizeof(idle));
        if (idle.ns <= hub->deadline) {
            hub_fail(hub, c, "said it is idle until %llu ns, not after its deadline %llu ns",
                     (unsigned long long)idle.ns, (unsigned long long)hub->deadline);
            return;
        }
        c->idle_until = idle.ns;
    }
    c->at = hub->deadline;
    c->state = C_IDLE;
    c->stopped_at = hub_now();
    hub->waiting--;
}

void hub_client_on_frame(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                         const uint8_t *payload)
{
    if (!hub_in_round(hub, c, h))
        return;
    switch (h->type) {
    case TSV_SEND:
        hub_on_send(hub, c, h, payload);
        break;
    case TSV_AT_DEADLINE:
        hub_at_deadline(hub, c, h, payload);
        break;
    default:
        hub_fail(hub, c, "unexpected frame type %u", h->type);
    }
}
