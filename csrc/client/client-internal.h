/* Internals of the client library, shared by its modules:
 *   options.c          argv options of vsg_init
 *   session.c          the protocol (hello, synchronization at deadlines, sends, receive queue)
 *   hubconn.c          its way to the hub: the socket, or a shared-memory channel
 *   backend_process.c  process time back end (CLOCK_MONOTONIC, POSIX timer + signal)
 *   api.c              the vsg_* functions
 */
#ifndef TANSIV_CLIENT_INTERNAL_H
#define TANSIV_CLIENT_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "shm.h"
#include "tansiv-client.h"
#include "tansiv-protocol.h"
#include "trace.h"

struct tsv_options {
    char *socket;          /* -a */
    uint32_t address;      /* -n, in_addr_t */
    int64_t initial_ns;    /* -t, ns since the Epoch */
    uint32_t num_buffers;  /* -b */
};

/* Parses argv up to "--"; returns 0, or an errno value after logging why. */
int tsv_parse_options(int argc, const char *const argv[], int *next_arg, struct tsv_options *out);
void tsv_free_options(struct tsv_options *opt);

/* What enter() saves for leave(). */
struct tsv_guard {
    sigset_t mask;
};

/* A time back end gives the clock virtual time is read from, and fires tsv_session_deadline()
 * when that clock reaches a date. Virtual time = clock - offset, never past the deadline. */
struct tsv_backend {
    const char *name;
    uint16_t role; /* enum tsv_role, sent in HELLO */
    uint64_t (*clock_ns)(struct vsg_context *ctx);
    /* Called once the first deadline is known, from vsg_start. */
    int (*start)(struct vsg_context *ctx);
    /* Fire at clock date `when` (replaces any previous date). */
    int (*arm)(struct vsg_context *ctx, uint64_t when);
    /* No more deadlines (async-signal-safe). */
    void (*stop)(struct vsg_context *ctx);
    /* Frees what start allocated (from vsg_cleanup). */
    void (*release)(struct vsg_context *ctx);
    /* Serialize protocol use between application threads and the deadline (lock/unlock). */
    void (*enter)(struct vsg_context *ctx, struct tsv_guard *guard);
    void (*leave)(struct vsg_context *ctx, struct tsv_guard *guard);
    /* After a synchronization in which the session ended: END (lost = 0), or the coordinator
     * went away or broke the protocol (lost = 1). Called outside enter/leave. */
    void (*on_end)(struct vsg_context *ctx, int lost);
    /* Work done so far, for the round trace (QEMU: guest instructions); may be NULL. */
    uint64_t (*work)(struct vsg_context *ctx);
    /* At the deadline d, with nothing received: a date after d before which the participant
     * does nothing by itself (UINT64_MAX: none), or 0 if it may (idle horizons,
     * tansiv-protocol.h). Called in the synchronization. */
    uint64_t (*idle_until)(struct vsg_context *ctx, uint64_t d);
    /* Stopped and idle, its virtual time jumps ahead by ns (the hub left it out of rounds);
     * NULL if the time base's offset is all there is to it. */
    void (*jump)(struct vsg_context *ctx, uint64_t ns);
};

enum tsv_state { TSV_STATE_INIT, TSV_STATE_RUNNING, TSV_STATE_ENDED, TSV_STATE_STOPPED };

/* The shared-memory channel, once the hub gave one (hubconn.c). */
struct tsv_hubconn {
    int channel;                     /* 1: frames go through the rings, not the socket */
    struct tsv_shm_barrier *barrier;
    void *map;                       /* the two rings */
    size_t map_size;
    struct tsv_ring_end to_hub, from_hub;
    int event_fd;                    /* the hub's: signalled when it has something to do */
};

struct tsv_rx_slot {
    uint32_t src, dst, len;
    uint8_t data[MAX_PACKET_SIZE];
};

struct tsv_time_base {
    _Atomic uint64_t deadline; /* current deadline D, ns of virtual time */
    _Atomic uint64_t offset;   /* clock date of virtual time 0 */
};

struct vsg_context {
    struct tsv_options opt;
    vsg_recv_cb recv_cb;
    uintptr_t recv_cb_arg;
    vsg_deadline_cb deadline_cb;
    uintptr_t deadline_cb_arg;

    const struct tsv_backend *backend;
    void *backend_data;

    int fd;
    _Atomic int state;     /* enum tsv_state */
    _Atomic int lost;      /* the coordinator went away or broke the protocol */
    _Atomic int end_told;  /* backend->on_end was called */
    atomic_flag lock;      /* protocol writes and synchronizations */
    _Atomic int sync_tid;  /* the thread synchronizing (holding lock in the deadline), or 0 */
    _Atomic int stop_asked; /* vsg_stop from a handler that interrupted that synchronization */

    struct tsv_trace trace; /* TANSIV_TRACE */
    struct tsv_hubconn hubconn;
    uint8_t *scratch;       /* TSV_MAX_PAYLOAD bytes: the payload of the frame just read */

    /* Time base, written by the synchronization, read anywhere (session.c, set_time_base). */
    _Atomic uint32_t seq;      /* copies published; time_base[seq & 1] is the current one */
    struct tsv_time_base time_base[2];

    /* Single-producer (synchronization) single-consumer (vsg_recv) receive ring. */
    struct tsv_rx_slot *ring;
    uint32_t ring_cap;
    _Atomic uint32_t rx_head, rx_tail;
    _Atomic uint64_t rx_dropped;

    /* vsg_wait: the date it waits until (0: nobody waits, or not alone in its process), and
     * a count bumped (and futex-woken) by every synchronization, for its waiters. */
    _Atomic uint64_t wait_until;
    _Atomic uint32_t wake_gen;
    _Atomic int waiters;
};

/* session.c */
int tsv_session_init(struct vsg_context *ctx);
void tsv_session_free(struct vsg_context *ctx);
int tsv_session_connect(struct vsg_context *ctx);
/* Says HELLO and waits for the first GOTO; sets time 0. */
int tsv_session_start(struct vsg_context *ctx);
/* Virtual time, clamped to the deadline. */
uint64_t tsv_session_now(struct vsg_context *ctx);
/* Whether the receive queue holds a message (lock-free). */
int tsv_session_has_message(struct vsg_context *ctx);
/* Virtual time of the back end's clock, not clamped. */
uint64_t tsv_session_raw_now(struct vsg_context *ctx);
/* To be called by the back end, outside enter/leave, when its clock reached the deadline (an
 * early call is ignored): synchronizes with the coordinator, blocking while it holds the
 * simulation, then runs the callbacks owed (tsv_session_notify). */
void tsv_session_deadline(struct vsg_context *ctx);
/* Callbacks owed after a synchronization that delivered n messages, and the back end's
 * on_end once the session is over; outside the lock. */
void tsv_session_notify(struct vsg_context *ctx, int n);
/* Sends at the current virtual time, synchronizing first if the deadline is reached
 * (*delivered counts the messages that synchronization delivered). 0 or an errno value. */
int tsv_session_send(struct vsg_context *ctx, uint32_t dst, uint32_t len, const uint8_t *msg,
                     int *delivered);
void tsv_session_close(struct vsg_context *ctx);
/* Waits until a message is in the receive queue (0), virtual time reaches until (ETIMEDOUT)
 * or the session is over (EPIPE); see vsg_wait. */
int tsv_session_wait(struct vsg_context *ctx, uint64_t until);
/* Whether the caller runs in a signal handler that interrupted this thread's synchronization
 * (which holds the lock): it must not take the lock. Async-signal-safe. */
int tsv_session_interrupting(struct vsg_context *ctx);

/* hubconn.c: under the lock. 0, or -1 after logging why (the coordinator is lost). */
/* Says HELLO; returns the session's first frame (payload in ctx->scratch), after setting up
 * the channel if the hub gives one. */
/* HELLO (date: the virtual date the client is at), and the hub's first answer. */
int tsv_hubconn_open(struct vsg_context *ctx, uint16_t role, uint64_t date,
                     struct tsv_header *first);
/* Writes a frame through to the hub (a send is in its reach when this returns). */
int tsv_hubconn_send(struct vsg_context *ctx, uint16_t type, uint64_t time, uint32_t dst,
                     const void *payload, uint32_t len);
/* After AT_DEADLINE: the last participant to get there wakes the hub. */
void tsv_hubconn_reached(struct vsg_context *ctx);
/* The next frame from the hub, waiting for it; its payload in ctx->scratch. */
int tsv_hubconn_read(struct vsg_context *ctx, struct tsv_header *h);
void tsv_hubconn_close(struct vsg_context *ctx);

void tsv_spin_lock(atomic_flag *lock);
void tsv_spin_unlock(atomic_flag *lock);

/* The back end vsg_init uses: backend_process.c in libtansiv-client, backend_qemu.c in QEMU. */
extern const struct tsv_backend tsv_default_backend;

#endif
