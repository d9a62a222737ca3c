/* The hub's internals, shared by its files:
 *   hub.c       creating and freeing a hub, its events, the accessors of tansiv-hub.h
 *   slots.c     payload slots: a packet's payload, held until delivered or dropped
 *   conn.c      buffers and sockets: queueing, writing and reading frames, closing a client;
 *               the kinds "connection before HELLO" and "socket client"
 *   frames.c    what clients say: HELLO (which chooses their kind), SEND, AT_DEADLINE
 *   listen.c    listening, accepting, the epoll loop and its housekeeping
 *   rounds.c    rounds: GOTO, waiting for the deadline, the packets in order, DELIVER, END
 *   channel.c   the kind "channel client": shared-memory channels to local participants
 *   relayconn.c the kinds "relay connection" and "member": the participants of a remote node
 *   relay.c     a relay (tsv_relay_*): the far end of a relay connection
 * A client speaks the same frames on its socket or through its channel's rings, its socket
 * then only telling the hub when it goes away. What a kind does differently is in its ops
 * (struct client_ops); the rest of the hub does not tell kinds apart. */
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
struct client;

/* What the kinds of client do differently (as QEMU's NetClientInfo for its network clients).
 * A connection starts as hub_pending_ops; its HELLO makes it a socket client, a channel
 * client (channel_offer) or a relay's connection; the relay's MEMBERs are members. NULL:
 * never called for that kind. */
struct client_ops {
    const char *kind;
    /* A frame it sent (on its socket or ring; a member's, through its relay's connection). */
    void (*on_frame)(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                     const uint8_t *payload);
    /* Moves its pending frames (c->out) along; -1 if that failed it. */
    int (*flush)(struct tsv_hub *hub, struct client *c);
    /* A round starts: its GOTO queued, not flushed yet; -1 if that failed it. */
    int (*go)(struct tsv_hub *hub, struct client *c, uint64_t deadline);
    /* A DELIVER for it, on its way. */
    void (*deliver)(struct tsv_hub *hub, struct client *c, uint64_t time, uint32_t src,
                    uint32_t dst, const uint8_t *data, uint32_t len);
    /* The run ended: its END on its way. */
    void (*end)(struct tsv_hub *hub, struct client *c);
    /* Its socket ended between frames. */
    void (*hangup)(struct tsv_hub *hub, struct client *c);
    /* It goes (closing) in the middle of a round it had not finished; may be NULL. */
    void (*leave_round)(struct tsv_hub *hub, struct client *c);
    /* From hub_close, c C_DEAD already: frees what it holds, tells whom it concerns. */
    void (*close)(struct tsv_hub *hub, struct client *c);
};

struct client {
    const struct client_ops *ops;
    int fd;    /* -1: a member */
    int index; /* in hub->clients; -1 before HELLO, and for a relay's connection */
    enum client_state state;
    uint32_t addr, pid;
    int role;
    int want_out; /* EPOLLOUT registered */
    int from_unix; /* connected on the Unix socket: may take a channel */
    uint8_t nonce[TSV_NONCE_SIZE]; /* over TCP: the CHALLENGE it was sent */
    uint64_t since;       /* when it connected (HELLO_TIMEOUT_NS) */
    uint64_t round_bytes, round_packets; /* sent in the current round (hub->limits) */
    uint64_t held_bytes, held_packets;   /* of its packets, held in slots (hub->limits) */
    uint64_t stopped_at, held_ns; /* when it reached the barrier; total time held there */
    uint64_t at;          /* the deadline it reached last: behind the barrier if left idle */
    uint64_t idle_until;  /* its AT_DEADLINE's idle date (protocol); 0: busy */
    int due;              /* a DELIVER at the barrier is on its way: it runs the next round */
    struct buf in, out; /* out: frames for it, not yet written (to its socket or ring) */
    struct channel *channel; /* a channel client's shared memory (channel.c) */
    struct client *via;      /* a member's: its relay's connection, which carries its frames */
    int gone_told;           /* a member whose relay knows it is gone (no GONE to send) */
    int reached;             /* a member its relay said reached the deadline; it waits for
                              * the relay's own AT_DEADLINE, which brings its SENDs */
    char name[64];
};

struct slot {
    uint8_t *data;
    uint32_t len, gen;
    uint32_t src, dst;
    int used;
    struct client *owner; /* its sender, whose held_* it counts in */
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
    struct client **relays; /* relays' connections, after their HELLO */
    int nrelays, relays_cap;
    int ended;             /* END was sent: relays closing now are not lost */
    int tcp_fd;            /* a second listener, for relays (tsv_hub_listen_tcp), or -1 */
    char tcp_address[128];
    uint64_t accept_paused_until; /* out of descriptors: accepting again then (0: not) */
    uint8_t secret[TSV_SECRET_SIZE]; /* TCP clients must prove they know it */
    int has_secret;                  /* without one, TCP clients are refused */
    struct tsv_hub_limits limits; /* what one client may make the hub hold */

    uint64_t barrier, deadline; /* slice [barrier, deadline) */
    int waiting;                /* clients yet to reach the deadline */
    uint64_t step, limit;       /* idle rounds: the slice after an idle one, and how far */
    int rounds_on;              /* rounds go on by themselves while idle (tsv_hub_run) */
    int started;                /* a round started: too late for tsv_hub_begin */
    int horizons;               /* idle clients left out of rounds (tsv_hub_set_horizons) */

    struct tsv_hub_packet *packets;
    int npackets, packets_cap;
    uint32_t seq; /* packets sent this round, in order of arrival */

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

/* hub.c */
uint64_t hub_now(void);
void *hub_grow(void *array, int *cap, int need, size_t elem);
void hub_set_error(struct tsv_hub *hub, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hub_event(struct tsv_hub *hub, int kind, struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Accounting of one public call: wall time outside epoll_wait, and the thread's CPU time
 * (which excludes the time other processes ran instead of the hub, on a busy machine). */
struct span {
    uint64_t wall, cpu, wait;
};
struct span hub_span_begin(const struct tsv_hub *hub);
void hub_span_end(struct tsv_hub *hub, struct span s);

/* slots.c */
/* Keeps a copy of a payload c sent; returns its handle. */
uint64_t hub_slot_store(struct tsv_hub *hub, struct client *c, const uint8_t *data, uint32_t len,
                        uint32_t src, uint32_t dst);
void hub_slots_free(struct tsv_hub *hub);

/* conn.c */
/* Room for extra more bytes after b->len (compacting pending bytes to the front first). */
void hub_buf_reserve(struct buf *b, size_t extra);
/* Appends one frame. */
void hub_buf_put(struct buf *b, uint16_t type, uint16_t flags, uint64_t time, uint32_t src,
                 uint32_t dst, const void *payload, uint32_t len);
/* Queues a frame for c; -1 if c failed: it leaves more than out_bytes_max unread. */
int hub_queue(struct tsv_hub *hub, struct client *c, uint16_t type, uint64_t time, uint32_t src,
              uint32_t dst, const uint8_t *payload, uint32_t len);
/* Queues a frame for c and flushes it. */
void hub_send(struct tsv_hub *hub, struct client *c, uint16_t type, uint64_t time, uint32_t src,
              uint32_t dst, const uint8_t *payload, uint32_t len);
/* Reads what c's socket has and handles every whole frame. */
void hub_read(struct tsv_hub *hub, struct client *c);
void hub_close(struct tsv_hub *hub, struct client *c);
void hub_fail(struct tsv_hub *hub, struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* For the kinds' ops: a client on a socket of its own (socket, channel, relay connection). */
int hub_socket_flush(struct tsv_hub *hub, struct client *c);
void hub_socket_close(struct tsv_hub *hub, struct client *c);
int hub_direct_go(struct tsv_hub *hub, struct client *c, uint64_t deadline);
void hub_direct_deliver(struct tsv_hub *hub, struct client *c, uint64_t time, uint32_t src,
                        uint32_t dst, const uint8_t *data, uint32_t len);
void hub_direct_end(struct tsv_hub *hub, struct client *c);
/* Left (LEFT, then closed). */
void hub_left(struct tsv_hub *hub, struct client *c);
extern const struct client_ops hub_pending_ops, hub_socket_ops;

/* frames.c */
void hub_on_hello(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                  const uint8_t *payload);
/* Makes c a client of the run (an index, a name), of that kind; no event yet. */
void hub_register(struct tsv_hub *hub, struct client *c, const struct client_ops *ops,
                  uint32_t addr, int role);
/* Whether c may send h now: it runs, and an AT_DEADLINE is the round's. Else c failed. */
int hub_in_round(struct tsv_hub *hub, struct client *c, const struct tsv_header *h);
/* A SEND of client c (direct, or a member through its relay). */
void hub_on_send(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                 const uint8_t *payload);
/* Reached the deadline; h (may be NULL) and payload: its AT_DEADLINE, which may say until
 * when it is idle. */
void hub_at_deadline(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                     const uint8_t *payload);
/* A frame of a socket or channel client. */
void hub_client_on_frame(struct tsv_hub *hub, struct client *c, const struct tsv_header *h,
                         const uint8_t *payload);

/* listen.c */
/* Runs one epoll_wait and handles what it reports; -1 on a hub error. */
int hub_poll(struct tsv_hub *hub, int timeout_ms);
/* Milliseconds until end (a hub_now() date; UINT64_MAX: -1, no bound). */
int hub_remaining_ms(uint64_t end);
void hub_stop_listening(struct tsv_hub *hub);

/* rounds.c */
/* The round ended: its packets in order, the barrier moved. */
void hub_end_round(struct tsv_hub *hub);
/* Whether c, stopped, sits out the round to deadline: it said it is idle beyond it and
 * nothing is delivered to it at the barrier. */
int hub_sits_out(const struct tsv_hub *hub, const struct client *c, uint64_t deadline);

/* relayconn.c */
/* A HELLO with role TSV_ROLE_RELAY: c becomes a relay's connection. */
void relay_conn_hello(struct tsv_hub *hub, struct client *c);
/* A round starts: each relay with members running gets one GOTO. */
void relays_start_round(struct tsv_hub *hub, uint64_t deadline);

/* channel.c */
/* Creates the barrier and the hub's eventfd (ring_size: each ring's bytes). 0, or -1 with
 * hub->error set. */
int channels_init(struct tsv_hub *hub, uint32_t ring_size);
void channels_free(struct tsv_hub *hub);
/* After its HELLO: gives the client a channel (CHANNEL, with its file descriptors), if it
 * asked for one and may have it, making it a channel client. 0 (channel or socket), -1 if
 * the client failed. */
int channel_offer(struct tsv_hub *hub, struct client *c, const struct tsv_header *hello);
/* A round starts: the participants on channels stopped at the barrier will report reaching
 * its deadline (set before their GOTO, which puts them in their rings, waking each). */
void channels_expect(struct tsv_hub *hub, uint64_t deadline);
/* The hub's eventfd fired: drains every channel, moves pending frames along. */
void channels_service(struct tsv_hub *hub);

#endif
