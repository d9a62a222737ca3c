/* The hub's internals, shared by its two files:
 *   hub.c      clients, frames, rounds, payloads, the API of tansiv-hub.h
 *   channel.c  shared-memory channels to local participants (common/shm.h)
 *   link.c     relays: one connection carrying the participants of a remote node
 * A client speaks the same frames either way: on its socket, or through its channel's rings,
 * its socket then only telling the hub when it goes away. */
#ifndef TANSIV_HUB_INTERNAL_H
#define TANSIV_HUB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"
#include "tansiv-hub.h"
#include "tansiv-protocol.h"

enum client_state {
    C_CONNECTED, /* no HELLO yet */
    C_IDLE,      /* stopped at the barrier */
    C_RUNNING,   /* granted a deadline it has not reached yet */
    C_DEAD
};

struct buf {
    uint8_t *data;
    size_t off, len, cap; /* bytes [off, len) are pending */
};

struct channel;

struct client {
    int fd;
    int index; /* in hub->clients, -1 before HELLO */
    enum client_state state;
    uint32_t addr, pid;
    int role;
    int want_out; /* EPOLLOUT registered */
    int from_unix; /* connected on the Unix socket: may take a channel */
    uint64_t since;       /* when it connected (HELLO_TIMEOUT_NS) */
    uint64_t round_bytes; /* sent in the current round (hub->round_bytes_max) */
    uint64_t stopped_at, held_ns; /* when it reached the barrier; total time held there */
    struct buf in, out; /* out: frames for it, not yet written (to its socket or ring) */
    struct channel *channel; /* its shared-memory channel, or NULL: its socket */
    struct client *link; /* a member: the relay's connection carrying it (it has no fd) */
    int is_link;         /* a relay's connection: not a client, in hub->links */
    int gone_told;       /* a member whose relay knows it is gone (no GONE to send) */
    char name[64];
};

struct slot {
    uint8_t *data;
    uint32_t len, gen;
    uint32_t src, dst;
    int used;
};

struct tsv_hub {
    int listen_fd, epfd;
    char *unix_path;
    char address[128];
    char error[256];

    struct client **clients; /* said HELLO, in that order */
    int nclients, clients_cap;
    struct client **pending; /* connected, no HELLO yet */
    int npending, pending_cap;
    int alive;
    struct client **links; /* relays' connections, after their HELLO */
    int nlinks, links_cap;
    int ended;             /* END was sent: relays closing now are not lost */
    int tcp_fd;            /* a second listener, for relays (tsv_hub_listen_tcp), or -1 */
    char tcp_address[128];
    uint64_t accept_paused_until; /* out of descriptors: accepting again then (0: not) */
    uint8_t secret[TSV_SECRET_SIZE]; /* required of TCP clients if has_secret */
    int has_secret;
    uint64_t round_bytes_max;     /* a client may send this much per round */
    uint64_t out_bytes_max;       /* frames waiting for a client that does not read */

    uint64_t barrier, deadline; /* slice [barrier, deadline) */
    int waiting;                /* clients yet to reach the deadline */
    uint64_t step, limit;       /* idle rounds: the slice after an idle one, and how far */
    int rounds_on;              /* rounds go on by themselves while idle (tsv_hub_run) */

    struct tsv_hub_packet *packets;
    int npackets, packets_cap;

    struct slot *slots;
    uint32_t nslots, slots_cap, *free_slots, nfree, held;

    struct tsv_hub_event *events;
    int ev_head, ev_len, ev_cap;
    uint64_t events_total; /* ever pushed */

    /* Shared-memory channels (channel.c); ring_size 0: sockets only. */
    uint32_t ring_size;
    int barrier_fd, event_fd;
    struct tsv_shm_barrier *shared;

    struct tsv_hub_stats stats;
};

/* hub.c, for channel.c */
void hub_fail(struct tsv_hub *hub, struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hub_on_frame(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                  const uint8_t *payload);

/* hub.c, for link.c */
void *hub_grow(void *array, int *cap, int need, size_t elem);
void hub_event(struct tsv_hub *hub, int kind, struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void hub_close(struct tsv_hub *hub, struct client *c);
int hub_queue(struct tsv_hub *hub, struct client *c, uint16_t type, uint64_t time, uint32_t src,
              uint32_t dst, const uint8_t *payload, uint32_t len);
int hub_flush(struct tsv_hub *hub, struct client *c);
void hub_describe(struct client *c);
/* Room for extra more bytes after b->len (compacting pending bytes to the front first). */
void hub_buf_reserve(struct buf *b, size_t extra);
uint64_t hub_now(void);
/* A SEND of client c (direct, or a member through its relay). */
void hub_on_send(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                 const uint8_t *payload);
/* Reached the deadline. */
void hub_at_deadline(struct tsv_hub *hub, struct client *c);

/* link.c */
/* A HELLO with role TSV_ROLE_RELAY: c becomes a link. */
void link_hello(struct tsv_hub *hub, struct client *c);
void link_on_frame(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                   const uint8_t *payload);
/* Its connection is closing: members fail (unless the run ended). */
void link_closing(struct tsv_hub *hub, struct client *link, const char *why);
/* A member is gone: its relay is told (unless it told the hub). */
void link_member_gone(struct tsv_hub *hub, struct client *member);
/* A round starts: each link with members running gets one GOTO. */
void links_start_round(struct tsv_hub *hub, uint64_t deadline);

/* channel.c */
/* Creates the barrier and the hub's eventfd (ring_size: each ring's bytes). 0, or -1 with
 * hub->error set. */
int channels_init(struct tsv_hub *hub, uint32_t ring_size);
void channels_free(struct tsv_hub *hub);
/* After its HELLO: gives the client a channel (CHANNEL, with its file descriptors), if it
 * asked for one and may have it. 0 (channel or socket), -1 if the client failed. */
int channel_offer(struct tsv_hub *hub, struct client *c, const struct tsv_header *hello);
/* Moves the client's pending frames (c->out) into its ring while they fit. */
void channel_flush(struct tsv_hub *hub, struct client *c);
/* Handles every frame the client put in its ring (hub_on_frame). */
void channel_drain(struct tsv_hub *hub, struct client *c);
/* A round starts: `running` participants on channels will report reaching its deadline (set
 * before their GOTO, which channel_flush puts in their rings, waking each). */
void channels_expect(struct tsv_hub *hub, int running);
/* The hub's eventfd fired: drains every channel, moves pending frames along. */
void channels_service(struct tsv_hub *hub);
void channel_release(struct client *c);

#endif
