/* The hub's end of the shared-memory channels (hub-internal.h, common/shm.h).
 *
 * Set-up: a client that says HELLO with TSV_HELLO_CHANNEL on the Unix socket gets CHANNEL
 * and three file descriptors: the barrier (one page for all), its channel (two rings) and the
 * hub's eventfd. Then, per round: the barrier's count of participants to wait for is set,
 * GOTO (or END) goes into every channel's ring to the participant, and each participant
 * sleeping on its ring is woken (one futex wake each: woken together, with one wake for all
 * as in bench/barrier.c, N participants crowd 2 cores at once, which measured slower); a
 * participant puts its SENDs in its ring to the hub as it sends them, then AT_DEADLINE, and
 * the last one to get there signals the eventfd. A full ring is waited for,
 * never overrun: the participant sleeps until the hub drains its ring; the hub keeps what does
 * not fit in c->out and moves it along as the participant reads.
 *
 * A channel client is the kind channel_ops: a socket client but for where its frames go. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hub-internal.h"
#include "log.h"

/* Bytes of one ring handled per turn of the hub's loop (as a socket's READS_PER_TURN): one
 * that floods cannot starve the others. */
#define DRAIN_PER_TURN (16u * 65536u)

struct channel {
    int fd;
    void *map;
    size_t size;
    struct tsv_ring_end to_hub, to_participant;
};

int channels_init(struct tsv_hub *hub, uint32_t ring_size)
{
    void *map;
    if (!tsv_shm_ring_size_ok(ring_size)) {
        snprintf(hub->error, sizeof(hub->error), "ring size %u: expected a power of two from "
                 "128 KiB to 1 GiB", ring_size);
        return -1;
    }
    hub->barrier_fd = tsv_shm_create("tansiv-barrier", TSV_SHM_BARRIER_SIZE, &map);
    hub->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (hub->barrier_fd < 0 || hub->event_fd < 0) {
        snprintf(hub->error, sizeof(hub->error), "shared-memory channels: %s", strerror(errno));
        channels_free(hub);
        return -1;
    }
    hub->shared = map;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &hub->event_fd};
    epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->event_fd, &ev);
    hub->ring_size = ring_size;
    return 0;
}

void channels_free(struct tsv_hub *hub)
{
    if (hub->shared)
        munmap(hub->shared, TSV_SHM_BARRIER_SIZE);
    if (hub->barrier_fd >= 0)
        close(hub->barrier_fd);
    if (hub->event_fd >= 0)
        close(hub->event_fd);
    hub->shared = NULL;
    hub->barrier_fd = hub->event_fd = -1;
    hub->ring_size = 0;
}

/* CHANNEL and the three descriptors, in one message. */
static int send_channel(struct tsv_hub *hub, struct client *c, int channel_fd)
{
    struct tsv_channel info = {.ring_size = hub->ring_size};
    struct tsv_header h = {.type = TSV_CHANNEL, .len = sizeof(info)};
    struct iovec iov[2] = {{&h, TSV_HEADER_SIZE}, {&info, sizeof(info)}};
    int fds[3] = {hub->barrier_fd, channel_fd, hub->event_fd};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(fds))];
    } control;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    return n == (ssize_t)(TSV_HEADER_SIZE + sizeof(info)) ? 0 : -1;
}

static const struct client_ops channel_ops;

int channel_offer(struct tsv_hub *hub, struct client *c, const struct tsv_header *hello)
{
    if (!hub->ring_size || !c->from_unix || !(hello->flags & TSV_HELLO_CHANNEL))
        return 0;
    struct channel *ch = calloc(1, sizeof(*ch));
    char name[80];
    snprintf(name, sizeof(name), "tansiv-channel-%d", c->index);
    if (!ch || (ch->fd = tsv_shm_create(name, tsv_shm_channel_size(hub->ring_size),
                                        &ch->map)) < 0) {
        free(ch);
        hub_fail(hub, c, "cannot make its shared-memory channel: %s", strerror(errno));
        return -1;
    }
    ch->size = tsv_shm_channel_size(hub->ring_size);
    ch->to_hub = tsv_shm_channel_ring(ch->map, hub->ring_size, TSV_RING_TO_HUB);
    ch->to_participant = tsv_shm_channel_ring(ch->map, hub->ring_size, TSV_RING_TO_PARTICIPANT);
    c->channel = ch;
    c->ops = &channel_ops;
    if (send_channel(hub, c, ch->fd)) {
        hub_fail(hub, c, "cannot send its channel: %s", strerror(errno));
        return -1;
    }
    /* The hub's copy of the memfd is no longer needed: the mapping keeps the memory. */
    close(ch->fd);
    ch->fd = -1;
    return 0;
}

static void channel_close(struct tsv_hub *hub, struct client *c)
{
    hub_socket_close(hub, c);
    struct channel *ch = c->channel;
    if (ch->map)
        munmap(ch->map, ch->size);
    if (ch->fd >= 0)
        close(ch->fd);
    free(ch);
    c->channel = NULL;
}

/* Moves the client's pending frames (c->out) into its ring while they fit. */
static int channel_flush(struct tsv_hub *hub, struct client *c)
{
    struct channel *ch = c->channel;
    struct buf *b = &c->out;
    int moved = 0;
    while (b->len - b->off >= TSV_HEADER_SIZE) {
        struct tsv_header h;
        memcpy(&h, b->data + b->off, TSV_HEADER_SIZE);
        if (tsv_ring_put(&ch->to_participant, &h, b->data + b->off + TSV_HEADER_SIZE)) {
            /* Full: the participant tells the eventfd once it has read some. */
            atomic_store(&ch->to_participant.ring->producer_waits, 1);
            if (tsv_ring_free(&ch->to_participant) < tsv_ring_frame_size(h.len))
                break;
            atomic_store(&ch->to_participant.ring->producer_waits, 0);
            continue; /* it read meanwhile: try again */
        }
        b->off += TSV_HEADER_SIZE + h.len;
        hub->stats.bytes_out += TSV_HEADER_SIZE + h.len;
        moved = 1;
    }
    if (b->off == b->len)
        b->off = b->len = 0;
    if (moved)
        tsv_ring_tell(ch->to_participant.ring, &ch->to_participant.ring->consumer_waits);
    return 0;
}

/* Handles the frames the client put in its ring, at most `budget` bytes of them (0: all);
 * 1 if some are left. */
static int channel_drain(struct tsv_hub *hub, struct client *c, size_t budget)
{
    static uint8_t payload[TSV_MAX_PAYLOAD];
    struct channel *ch = c->channel;
    struct tsv_header h;
    size_t drained = 0;
    int rc = 0;
    while (c->state != C_DEAD && (!budget || drained < budget) &&
           (rc = tsv_ring_get(&ch->to_hub, &h, payload, sizeof(payload))) != 0) {
        if (rc < 0) {
            hub_fail(hub, c, "broke its ring to the hub (a frame that does not fit)");
            return 0;
        }
        hub->stats.bytes_in += TSV_HEADER_SIZE + h.len;
        drained += TSV_HEADER_SIZE + h.len;
        hub_client_on_frame(hub, c, &h, payload);
    }
    if (drained && c->state != C_DEAD)
        tsv_ring_tell(ch->to_hub.ring, &ch->to_hub.ring->producer_waits);
    return c->state != C_DEAD && rc != 0;
}

/* Its socket closed: what it sent before going is in its ring still, and counts. */
static void channel_hangup(struct tsv_hub *hub, struct client *c)
{
    channel_drain(hub, c, 0);
    if (c->state != C_DEAD)
        hub_left(hub, c);
}

/* It goes before reaching the deadline (or the hub removes it before reading that it did):
 * unless its ring holds its AT_DEADLINE (then it counted itself out of the shared barrier),
 * the hub counts it out. If it was the last one the barrier waited for, the others counted
 * themselves out without waking the hub, which wakes itself (its eventfd) to take their
 * AT_DEADLINEs. Its ring's frames go with it. */
static void channel_leave_round(struct tsv_hub *hub, struct client *c)
{
    static uint8_t payload[TSV_MAX_PAYLOAD];
    struct tsv_header h;
    while (tsv_ring_get(&c->channel->to_hub, &h, payload, sizeof(payload)) > 0)
        if (h.type == TSV_AT_DEADLINE)
            return;
    if (atomic_fetch_sub(&hub->shared->remaining, 1) == 1) {
        uint64_t one = 1;
        ssize_t ignored = write(hub->event_fd, &one, sizeof(one));
        (void)ignored;
    }
}

static const struct client_ops channel_ops = {
    .kind = "channel",
    .on_frame = hub_client_on_frame,
    .flush = channel_flush,
    .go = hub_direct_go,
    .deliver = hub_direct_deliver,
    .end = hub_direct_end,
    .hangup = channel_hangup,
    .leave_round = channel_leave_round,
    .close = channel_close,
};

void channels_expect(struct tsv_hub *hub, uint64_t deadline)
{
    int running = 0;
    for (int i = 0; i < hub->nclients; i++) {
        const struct client *c = hub->clients[i];
        running += c->state == C_IDLE && c->channel && !hub_sits_out(hub, c, deadline);
    }
    if (running)
        atomic_store(&hub->shared->remaining, running);
}

void channels_service(struct tsv_hub *hub)
{
    uint64_t count;
    ssize_t ignored = read(hub->event_fd, &count, sizeof(count));
    (void)ignored;
    int left = 0;
    for (int i = 0; i < hub->nclients; i++) {
        struct client *c = hub->clients[i];
        if (c->state == C_DEAD || !c->channel)
            continue;
        left |= channel_drain(hub, c, DRAIN_PER_TURN);
        if (c->state != C_DEAD && c->out.len > c->out.off)
            channel_flush(hub, c);
    }
    if (left) { /* the rest at the next turn, after the sockets' */
        count = 1;
        ignored = write(hub->event_fd, &count, sizeof(count));
    }
}
