/* The hub: the coordinator's side of the wire protocol, the hot path of every round.
 *
 * It accepts the participants, sends each round's deadline to all of them, gathers their
 * packets in parallel until every one reached the deadline, keeps the payloads and hands out
 * only metadata, and delivers payloads by handle. The coordinator (Python, through cffi)
 * decides deadlines and delivery times; the hub checks that every participant keeps to them.
 *
 * Read by cffi (tansiv/run/hub.py): declarations only, no macros in them.
 */
#ifndef TANSIV_HUB_H
#define TANSIV_HUB_H

#include <stddef.h>
#include <stdint.h>

struct tsv_hub;

/* One packet a participant sent during the last round. */
struct tsv_hub_packet {
    uint64_t time;   /* virtual send time, ns */
    uint64_t handle; /* its payload, until tsv_hub_deliver or tsv_hub_drop */
    uint32_t src;    /* in_addr_t, as the sender wrote it */
    uint32_t dst;    /* in_addr_t */
    uint32_t size;   /* payload bytes */
    int32_t client;  /* index of the sending client */
    uint32_t seq;    /* order of arrival in the round */
};

enum tsv_hub_event_kind {
    TSV_HUB_JOINED = 1, /* said HELLO */
    TSV_HUB_LEFT = 2,   /* closed its connection between frames */
    TSV_HUB_FAILED = 3  /* broke the protocol or the connection; disconnected */
};

struct tsv_hub_event {
    int32_t kind;
    int32_t client; /* -1 for a connection that never said HELLO */
    uint64_t time;  /* the barrier time when it happened, ns */
    char message[256];
};

struct tsv_hub_stats {
    uint64_t rounds;
    uint64_t packets;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t busy_ns; /* wall time inside hub calls, not blocked */
    uint64_t cpu_ns;  /* the hub's CPU time inside its calls (busy_ns minus preemption) */
    uint64_t wait_ns; /* blocked waiting for participants */
    uint64_t sat_out; /* rounds clients sat out, idle (tsv_hub_set_horizons), summed */
};

/* Listens on a Unix socket path or on tcp:HOST:PORT. NULL on error, with the reason in
 * error[0..error_len). */
struct tsv_hub *tsv_hub_new(const char *address, char *error, size_t error_len);
void tsv_hub_free(struct tsv_hub *hub);
/* Where clients connect: the path, or tcp:IP:PORT with the port actually bound. */
const char *tsv_hub_address(const struct tsv_hub *hub);

/* Also listens on tcp:HOST:PORT, for relays (and clients) on other nodes; tcp_address then
 * says where they connect. Before any client connects. 0, or -1 on error. */
int tsv_hub_listen_tcp(struct tsv_hub *hub, const char *address);
const char *tsv_hub_tcp_address(const struct tsv_hub *hub);

/* Local participants (on the Unix socket) get shared-memory channels (common/shm.h), each
 * ring ring_size bytes (a power of two, 128 KiB to 1 GiB), instead of speaking on their
 * socket. Before any client connects. 0 (also on a TCP hub, which keeps sockets), -1 on
 * error. */
int tsv_hub_channels(struct tsv_hub *hub, uint32_t ring_size);
/* Whether a client speaks through a shared-memory channel (1) or its socket (0). */
int tsv_hub_client_channel(const struct tsv_hub *hub, int client);

/* Accepts connections until `count` clients said HELLO or timeout_ms passed (< 0: forever).
 * Returns the number of clients that said HELLO, -1 on error (tsv_hub_error). Stops
 * listening when it returns `count`. */
int tsv_hub_accept(struct tsv_hub *hub, int count, int timeout_ms);
int tsv_hub_client_count(const struct tsv_hub *hub);
uint32_t tsv_hub_client_address(const struct tsv_hub *hub, int client);
uint32_t tsv_hub_client_pid(const struct tsv_hub *hub, int client);
/* The date it is at: its HELLO's, then the last deadline it reached. */
uint64_t tsv_hub_client_date(const struct tsv_hub *hub, int client);
int tsv_hub_client_role(const struct tsv_hub *hub, int client);
int tsv_hub_client_alive(const struct tsv_hub *hub, int client);
/* Total wall time the client spent stopped at barriers (from its AT_DEADLINE to the next
 * GOTO): how long the coordinator held it. */
uint64_t tsv_hub_client_held_ns(const struct tsv_hub *hub, int client);
int tsv_hub_alive_count(const struct tsv_hub *hub);
/* Whether the client was given a deadline it has not reported reaching yet. */
int tsv_hub_client_waiting(const struct tsv_hub *hub, int client);
/* Removes a client (a FAILED event with `why`): its connection is closed, the round goes on
 * without it. 0, or -1 if it is gone already. */
int tsv_hub_remove(struct tsv_hub *hub, int client, const char *why);

/* Clients over TCP must prove they know this secret (TSV_SECRET_SIZE bytes; the hub proves
 * it too: tansiv-protocol.h); those on the Unix socket (private to its user) need not. A hub
 * without a secret refuses every client over TCP. Before any client connects. */
void tsv_hub_set_secret(struct tsv_hub *hub, const uint8_t *secret);
/* What one client may make the hub hold; going over a bound removes it (a FAILED event
 * naming the bound), and the packets it sent in that round are discarded. */
struct tsv_hub_limits {
    uint64_t round_bytes;      /* payload bytes it may send per round */
    uint64_t round_packets;    /* packets it may send per round (zero-byte ones count) */
    uint64_t inflight_bytes;   /* payload bytes of its packets held (sent, neither delivered
                                * nor dropped yet) */
    uint64_t inflight_packets; /* its packets held */
    uint64_t out_bytes;        /* bytes of frames waiting for it to read them */
};
/* The defaults: plain numbers, which Python reads from this header too. */
#define TSV_HUB_ROUND_BYTES 67108864
#define TSV_HUB_ROUND_PACKETS 262144
#define TSV_HUB_INFLIGHT_BYTES 268435456
#define TSV_HUB_INFLIGHT_PACKETS 262144
#define TSV_HUB_OUT_BYTES 268435456
void tsv_hub_set_limits(struct tsv_hub *hub, const struct tsv_hub_limits *limits);

/* Where the run starts: every client said in its HELLO the date it is at (a VM restored from
 * a snapshot: the snapshot's virtual date; others 0). tsv_hub_start_date is the latest of
 * them; tsv_hub_begin(at), before the first round, puts the barrier there (at >= every
 * client's date; 0 or -1). Clients behind it get the date with their first GOTO: their time
 * starts there (tansiv-protocol.h). Without tsv_hub_begin the run starts at 0. */
uint64_t tsv_hub_start_date(const struct tsv_hub *hub);
int tsv_hub_begin(struct tsv_hub *hub, uint64_t at);
/* Starts a round: every live client may run until `deadline` (ns, > the last one). */
int tsv_hub_goto(struct tsv_hub *hub, uint64_t deadline);
/* Starts rounds: the first to `deadline`, then, as long as a round ends idle (no packet, no
 * client came or went) before `limit`, the next, `step` ns longer (at most to limit), without
 * returning to the caller: the coordinator is needed only when something happens. */
int tsv_hub_run(struct tsv_hub *hub, uint64_t deadline, uint64_t step, uint64_t limit);
/* Idle horizons (rounds.c, tansiv-protocol.h): on, a client that said it is idle until a
 * date sits out the rounds that end before it (unless a packet is delivered to it), and
 * tsv_hub_run's rounds end at the earliest date anyone can act plus the step. Off by
 * default; the same run either way. */
void tsv_hub_set_horizons(struct tsv_hub *hub, int on);
/* The earliest date a live client may act by itself: the barrier, unless every one said it
 * is idle beyond it (UINT64_MAX: every one waits for a packet). */
uint64_t tsv_hub_idle_until(const struct tsv_hub *hub);
/* Gathers until every live client reached the deadline (of the run's last round): 1 when all
 * did, 0 on timeout (call again: the rounds go on), -1 on error. Clients that fail or leave are
 * dropped from the round (events). */
int tsv_hub_wait(struct tsv_hub *hub, int timeout_ms);
/* The barrier the last round ended at (ns). */
uint64_t tsv_hub_barrier(const struct tsv_hub *hub);
/* The deadline of the round under way (or of the last one). */
uint64_t tsv_hub_deadline(const struct tsv_hub *hub);
/* The packets of the last round, sorted by (time, sender's address, order of sending). */
int tsv_hub_packet_count(const struct tsv_hub *hub);
const struct tsv_hub_packet *tsv_hub_packets(const struct tsv_hub *hub);

/* At a barrier: delivers a payload to a client at `time` (== the barrier time) and frees it.
 * 0, or -1 if the handle is unknown or the client is gone (the payload is freed anyway). */
int tsv_hub_deliver(struct tsv_hub *hub, uint64_t handle, int client, uint64_t time);
void tsv_hub_drop(struct tsv_hub *hub, uint64_t handle);
/* At a barrier: delivers bytes the hub does not hold (a relay's, from upstream) to a client at
 * `time` (== the barrier time), as from src to dst. 0, or -1. */
int tsv_hub_inject(struct tsv_hub *hub, int client, uint64_t time, uint32_t src, uint32_t dst,
                   const uint8_t *data, uint32_t len);
/* A held payload's bytes (valid until it is delivered or dropped) and its length; NULL for
 * an unknown handle. For captures: the coordinator copies them before delivering. */
const uint8_t *tsv_hub_payload(const struct tsv_hub *hub, uint64_t handle, uint32_t *len);
/* Sends END to every live client and flushes (waiting at most timeout_ms). */
int tsv_hub_end(struct tsv_hub *hub, int timeout_ms);

/* Pops the oldest event: 1 if *event was filled, 0 if there is none. */
int tsv_hub_next_event(struct tsv_hub *hub, struct tsv_hub_event *event);
const char *tsv_hub_error(const struct tsv_hub *hub);
void tsv_hub_get_stats(const struct tsv_hub *hub, struct tsv_hub_stats *stats);
/* Payloads held (sent, neither delivered nor dropped). */
int tsv_hub_payloads_held(const struct tsv_hub *hub);

/* ---- a relay (relay.c): the hub of a remote node's participants, one client upstream ---- */

struct tsv_relay;

/* Connects to the coordinator's hub at `upstream` (tcp:HOST:PORT), both proving they know
 * the run's secret (TSV_SECRET_SIZE bytes), and introduces every client of `local` (whose
 * participants all said HELLO) as its member. NULL on error, with the reason in error. */
struct tsv_relay *tsv_relay_new(struct tsv_hub *local, const char *upstream,
                                const uint8_t *secret, char *error, size_t error_len);
/* Serves the coordinator's rounds on the local hub: 1 when it said END (the local
 * participants were told), 0 once timeout_ms passed (call again; a round under way goes on
 * first), -1 on error (the coordinator is gone: tsv_relay_error). */
int tsv_relay_serve(struct tsv_relay *relay, int timeout_ms);
/* Pops a participant the coordinator removed (its address; it is out of the local hub, its
 * process is the caller's to stop): 1, or 0 if there is none. */
int tsv_relay_removed(struct tsv_relay *relay, uint32_t *address);
const char *tsv_relay_error(const struct tsv_relay *relay);
/* Rounds served. */
uint64_t tsv_relay_rounds(const struct tsv_relay *relay);
void tsv_relay_free(struct tsv_relay *relay);

#endif /* TANSIV_HUB_H */
