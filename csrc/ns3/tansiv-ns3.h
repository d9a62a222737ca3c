/* A packet-level network in ns-3, driven the way the coordinator drives a network model
 * (tansiv/run/network.py): frames go in at their send dates, fates come out.
 *
 * Every link is a full-duplex point-to-point channel (its bandwidth and latency; ns-3's
 * SimpleNetDevice, which adds no header, so a frame of S bytes takes S*8/rate exactly) between
 * two nodes, its ends; each direction has its own queue. A frame is one packet of its real
 * size that follows its route hop by hop, stored and forwarded: received whole at the end of
 * a hop, it goes into the next hop's queue at once. Queues: DropTail, or a queue discipline
 * of ns-3's traffic control (RED, CoDel, FQ-CoDel, PIE) before a device queue of one packet;
 * either way the size given is the direction's whole buffer. Loss: ns-3's error model on
 * the receiving end, each frame dropped with the link's probability. All randomness from one
 * seed (ns-3's run number; the streams are fixed per link and direction).
 *
 * One model per process (ns-3's simulator is a singleton). Times are integer ns. Read by cffi
 * (tansiv/run/ns3.py): declarations only. */
#ifndef TANSIV_NS3_H
#define TANSIV_NS3_H

#include <stddef.h>
#include <stdint.h>

/* Queue disciplines (their names, lower case without the prefix, are the command line's). */
enum tsv_ns3_queue {
    TSV_NS3_DROPTAIL = 0,
    TSV_NS3_RED = 1,
    TSV_NS3_CODEL = 2,
    TSV_NS3_FQ_CODEL = 3,
    TSV_NS3_PIE = 4
};

/* What became of a frame. */
enum tsv_ns3_fate_kind {
    TSV_NS3_DELIVERED = 0,
    TSV_NS3_QUEUE_FULL = 1, /* no room in the queue (or FQ-CoDel's overlimit drop) */
    TSV_NS3_LOSS = 2,       /* the link's loss probability */
    TSV_NS3_AQM = 3         /* the queue discipline's own decision (RED, CoDel, PIE) */
};

struct tsv_ns3_fate {
    uint64_t id;
    uint64_t time_ns; /* delivered at, or dropped at */
    uint32_t link;    /* a drop's link and direction (0: from end A, 1: from end B) */
    uint32_t dir;
    int32_t kind;     /* enum tsv_ns3_fate_kind */
    char detail[60];  /* a drop: what ns-3 said */
};

/* A new, empty model (an earlier one is freed). 0, or -1 with the reason in error. */
int tsv_ns3_init(uint64_t seed, char *error, size_t error_len);
void tsv_ns3_fini(void);

/* A link, known as `link` (consecutive from 0). queue_size: packets (in_packets) or bytes;
 * loss: each frame's probability of being lost at its receiving end. 0, or -1 with the
 * reason in error. */
int tsv_ns3_add_link(uint32_t link, uint64_t bandwidth_Bps, uint64_t latency_ns, int queue,
                     uint64_t queue_size, int in_packets, double loss, char *error,
                     size_t error_len);

/* The route from host src to host dst (any numbering of the caller's): n hops, each a link and
 * the direction it is crossed in. 0, or -1. */
int tsv_ns3_add_route(uint32_t src, uint32_t dst, uint32_t n, const uint32_t *links,
                      const uint8_t *dirs);

/* Runs the model to time_ns, then sends a frame of size bytes from src to dst, known as id,
 * of a flow (what FQ-CoDel's hash tells apart; 0: the pair src, dst). 0; -1 no such route;
 * -2 time_ns is in the past; -3 larger than a frame can be (65535). */
int tsv_ns3_send(uint32_t src, uint32_t dst, uint32_t size, uint64_t time_ns, uint64_t id,
                 uint32_t flow);

/* Processes every event up to time_ns included. 0, or -1 if time_ns is in the past. */
int tsv_ns3_run_until(uint64_t time_ns);
uint64_t tsv_ns3_now_ns(void);

/* The earliest date a frame in flight can be delivered, whatever frames are sent from now on
 * (these only ever delay others): each frame's remaining hops at their latency and its
 * serialization, after what its current hop's link still has to send. UINT64_MAX with
 * nothing in flight. */
uint64_t tsv_ns3_next_delivery_ns(void);

/* Fates since the last call, in the order they happened: at most max; how many. */
int tsv_ns3_fates(struct tsv_ns3_fate *out, int max);

int tsv_ns3_in_flight(void);

/* Ends every frame in flight, writing at most max of their ids; how many there were. */
int tsv_ns3_cancel_all(uint64_t *ids, int max);

#endif
