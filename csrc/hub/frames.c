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

#include "hub-internal.h"

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
        relay_conn_hello(hub, c);
        return;
    }
    hub_register(hub, c, &hub_socket_ops, h->src, hello.role);
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
    if (h->type == TSV_AT_DEADLINE && (h->time != hub->deadline || h->len != 0)) {
        hub_fail(hub, c, "AT_DEADLINE(%llu ns, %u bytes) while the deadline is %llu ns",
                 (unsigned long long)h->time, h->len, (unsigned long long)hub->deadline);
        return 0;
    }
    return 1;
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
    p->handle = hub_slot_store(hub, payload, h->len, h->src, h->dst);
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
        hub_at_deadline(hub, c);
        break;
    default:
        hub_fail(hub, c, "unexpected frame type %u", h->type);
    }
}
