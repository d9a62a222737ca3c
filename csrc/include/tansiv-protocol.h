/* tansiv wire protocol between participants (clients) and the coordinator (hub).
 *
 * One framing for everything: a fixed 24-byte header followed by `len` payload bytes.
 * All integers are little-endian (every supported host is). Addresses are IPv4 addresses
 * as in_addr_t values, i.e. the four octets in network order.
 *
 * Conversation (T is the barrier time, D the next deadline, times in ns of simulated time):
 *  (hub -> client   CHALLENGE    over TCP only: payload a nonce, TSV_NONCE_SIZE bytes)
 *   client -> hub   HELLO        payload: struct tsv_hello; header.src = client address,
 *                                header.time = the date it is at (below)
 *  (hub -> client   WELCOME      over TCP only: payload the hub's proof, TSV_PROOF_SIZE bytes)
 *   hub -> client   GOTO(D)      run until virtual time D            (the first one: see below)
 *   client -> hub   SEND(t)      a packet sent at virtual time t, T <= t < D; src/dst set
 *   client -> hub   AT_DEADLINE(D)  reached D, every SEND of [T, D) was written before this
 *   hub -> client   DELIVER(t)   a packet delivered at t == the client's current time (a barrier)
 *   hub -> client   GOTO(D') ... or END (the simulation is over)
 *
 * Idle horizons: an AT_DEADLINE may carry 8 bytes, a date U > D (UINT64_MAX: none) before
 * which the client does nothing by itself (a halted VM: its earliest timer; a process: waiting
 * in vsg_wait), unless a packet is delivered to it. The hub may then leave it at D for rounds
 * in which nothing reaches it, as long as they end before U (it gets no GOTO meanwhile). When
 * it wakes it, at a barrier B > D, the client's time jumps from D to B (nothing happened to it
 * in between): the DELIVERs carry B, and the GOTO 8 bytes, B (END's time is B as always). A
 * client that did not say it was idle never gets a date other than its own.
 *
 * Start: a VM is at its virtual date (a VM restored from a snapshot: the date the snapshot was
 * taken at), a process at 0; the HELLO says it. The simulation starts at S, the latest of
 * those dates: the first GOTO of a client whose date is before S carries 8 bytes, S, and its
 * time starts there (a VM's jumps ahead, as after an idle stretch). A relay's first GOTO
 * carries S too (when S > 0), for its own hub, and its MEMBERs carry their HELLOs' dates.
 *
 * Shared-memory channel (a local participant, on the Unix socket): the HELLO's header.flags has
 * TSV_HELLO_CHANNEL; the hub may answer CHANNEL (payload struct tsv_channel, and three file
 * descriptors: the barrier's memory, the channel's memory, the hub's eventfd; common/shm.h).
 * The same frames then go through the channel's two rings instead of the socket, each end
 * waking the other when it waits (futexes in the rings, the eventfd); the socket stays open,
 * for noticing an end that goes away.
 * A hub that answers GOTO instead keeps the socket.
 *
 * TCP: the hub asks every connection to prove it knows the run's secret without sending it
 * (csrc/common/auth.h): CHALLENGE carries the hub's nonce; HELLO a nonce of the client's and
 * its proof, HMAC-SHA256(secret, "tansiv hello" | hub nonce | client nonce | header.src |
 * role); WELCOME, once the hub accepted the HELLO, the hub's proof, HMAC-SHA256(secret,
 * "tansiv welcome" | client nonce | hub nonce), which the client checks before it goes on.
 * A hub without a secret refuses every client over TCP. On the Unix socket (private to its
 * user) none of this happens: nonce and proof are zeros and not looked at.
 *
 * Relay (one per remote node of a SLURM allocation, csrc/hub/relay.c): it is the hub of its
 * node's participants and one client of the coordinator's hub, over TCP, for all of them. Its
 * HELLO has role TSV_ROLE_RELAY; then, after the WELCOME and before the run starts, one
 * MEMBER per participant behind it (header.src its address, payload struct tsv_member). It
 * gets one GOTO per round and answers with every SEND of its members (header.src saying whose)
 * and one AT_DEADLINE: a round costs one exchange per node, not per participant. DELIVERs
 * for its members carry header.dst. GONE (header.src: the member) says a member left during
 * the round, before the AT_DEADLINE; from the hub, GONE (header.dst) removes a member, at
 * any time. In a round that lasts, the relay also sends AT_DEADLINE with header.src = a
 * member that reached the deadline (once each): the hub then knows who is late; the round
 * still ends with the AT_DEADLINE of header.src 0, after the members' SENDs.
 *
 * This header is read by C (client, hub, tests) and by Python through cffi
 * (tansiv/run/protocol.py): keep it to integer #defines, enums and plain structs.
 */
#ifndef TANSIV_PROTOCOL_H
#define TANSIV_PROTOCOL_H

#include <stdint.h>

#define TSV_MAGIC 0x5653544e
#define TSV_VERSION 5
#define TSV_HEADER_SIZE 24
#define TSV_MAX_PAYLOAD 65536
#define TSV_SECRET_SIZE 16
#define TSV_NONCE_SIZE 16
#define TSV_PROOF_SIZE 32 /* HMAC-SHA256 */
#define TSV_HELLO_CHANNEL 1 /* HELLO's header.flags: the client can take a shared-memory channel */
#define TSV_GONE_FAILED 1   /* GONE's header.flags: the member broke the protocol (else it left) */
#define TSV_GONE_MESSAGE 200 /* at most this many bytes of text in a GONE */

enum tsv_msg_type {
    TSV_HELLO = 1,
    TSV_SEND = 2,
    TSV_AT_DEADLINE = 3,
    TSV_MEMBER = 4, /* relay -> hub */
    TSV_GONE = 5,   /* relay <-> hub */
    TSV_GOTO = 16,
    TSV_DELIVER = 17,
    TSV_END = 18,
    TSV_CHANNEL = 19,
    TSV_CHALLENGE = 20,
    TSV_WELCOME = 21
};

enum tsv_role {
    TSV_ROLE_PROCESS = 1,
    TSV_ROLE_VM = 2,
    TSV_ROLE_RELAY = 3
};

struct tsv_header {
    uint16_t type;  /* enum tsv_msg_type */
    uint16_t flags; /* reserved, 0 */
    uint32_t len;   /* payload bytes that follow, <= TSV_MAX_PAYLOAD */
    uint64_t time;  /* ns since simulation start */
    uint32_t src;   /* in_addr_t */
    uint32_t dst;   /* in_addr_t */
};

struct tsv_hello {
    uint32_t magic;   /* TSV_MAGIC */
    uint16_t version; /* TSV_VERSION */
    uint16_t role;    /* enum tsv_role */
    uint32_t pid;
    uint32_t reserved;
    uint8_t nonce[TSV_NONCE_SIZE]; /* over TCP: the client's (zeros on the Unix socket) */
    uint8_t proof[TSV_PROOF_SIZE]; /* over TCP: that it knows the run's secret */
};

/* MEMBER's payload: a participant behind a relay, as its own HELLO said. */
struct tsv_member {
    uint32_t pid; /* on the relay's node */
    uint16_t role; /* enum tsv_role (process or VM) */
    uint16_t reserved;
};

/* AT_DEADLINE's payload when idle; GOTO's when the client was left behind (see the top). */
struct tsv_date {
    uint64_t ns;
};

/* CHANNEL's payload. */
struct tsv_channel {
    uint32_t ring_size; /* bytes of each ring's data, a power of two */
    uint32_t reserved;
};

#endif /* TANSIV_PROTOCOL_H */
