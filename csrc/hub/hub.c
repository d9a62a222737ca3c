/* The hub (see tansiv-hub.h; its files: hub-internal.h): creating and freeing one, its events
 * and errors, what the caller reads of its clients. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "hub"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "hub-internal.h"
#include "log.h"
#include "transport.h"

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t hub_now(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

struct span hub_span_begin(const struct tsv_hub *hub)
{
    return (struct span){hub_now(), clock_ns(CLOCK_THREAD_CPUTIME_ID), hub->stats.wait_ns};
}

void hub_span_end(struct tsv_hub *hub, struct span s)
{
    hub->stats.busy_ns += hub_now() - s.wall - (hub->stats.wait_ns - s.wait);
    hub->stats.cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - s.cpu;
}

void *hub_grow(void *array, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return array;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(array, (size_t)ncap * elem);
    if (!p) {
        TSV_LOG(TSV_ERROR, "out of memory");
        abort();
    }
    *cap = ncap;
    return p;
}

void hub_set_error(struct tsv_hub *hub, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hub->error, sizeof(hub->error), fmt, ap);
    va_end(ap);
}

void hub_event(struct tsv_hub *hub, int kind, struct client *c, const char *fmt, ...)
{
    if (hub->ev_head > 0 && hub->ev_head == hub->ev_len) {
        hub->ev_head = hub->ev_len = 0;
    }
    hub->events = hub_grow(hub->events, &hub->ev_cap, hub->ev_len + 1, sizeof(*hub->events));
    struct tsv_hub_event *ev = &hub->events[hub->ev_len++];
    hub->events_total++;
    ev->kind = kind;
    ev->client = c ? c->index : -1;
    ev->time = hub->barrier;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->message, sizeof(ev->message), fmt, ap);
    va_end(ap);
    TSV_LOG(kind == TSV_HUB_FAILED ? TSV_WARN : TSV_INFO, "%s", ev->message);
}

/* ---- life --------------------------------------------------------------------------------- */

struct tsv_hub *tsv_hub_new(const char *address, char *error, size_t error_len)
{
    struct tsv_hub *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return NULL;
    hub->barrier_fd = hub->event_fd = hub->tcp_fd = -1;
    hub->limits = (struct tsv_hub_limits){
        .round_bytes = TSV_HUB_ROUND_BYTES,
        .round_packets = TSV_HUB_ROUND_PACKETS,
        .inflight_bytes = TSV_HUB_INFLIGHT_BYTES,
        .inflight_packets = TSV_HUB_INFLIGHT_PACKETS,
        .out_bytes = TSV_HUB_OUT_BYTES,
    };
    hub->listen_fd = tsv_listen(address, hub->address, sizeof(hub->address), hub->error,
                                sizeof(hub->error));
    if (hub->listen_fd >= 0) {
        if (!tsv_is_tcp_address(address))
            hub->unix_path = strdup(address); /* removed when the hub stops listening */
        hub->epfd = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (hub->epfd < 0 || epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->listen_fd, &ev) < 0)
            hub_set_error(hub, "epoll: %s", strerror(errno));
        else
            return hub;
    }
    if (error && error_len)
        snprintf(error, error_len, "%s", hub->error);
    tsv_hub_free(hub);
    return NULL;
}

void tsv_hub_free(struct tsv_hub *hub)
{
    if (!hub)
        return;
    hub_stop_listening(hub);
    for (int i = 0; i < hub->nrelays; i++) /* before their members, which they close */
        hub_close(hub, hub->relays[i]);
    for (int i = 0; i < hub->nclients; i++) {
        hub_close(hub, hub->clients[i]);
        free(hub->clients[i]);
    }
    for (int i = 0; i < hub->npending; i++) {
        hub_close(hub, hub->pending[i]);
        free(hub->pending[i]);
    }
    for (int i = 0; i < hub->nrelays; i++)
        free(hub->relays[i]);
    free(hub->relays);
    hub_slots_free(hub);
    channels_free(hub);
    if (hub->epfd > 0)
        close(hub->epfd);
    free(hub->clients);
    free(hub->pending);
    free(hub->packets);
    free(hub->events);
    free(hub);
}

/* ---- accessors ---------------------------------------------------------------------------- */

static const struct client *get(const struct tsv_hub *hub, int i)
{
    return i >= 0 && i < hub->nclients ? hub->clients[i] : NULL;
}

int tsv_hub_channels(struct tsv_hub *hub, uint32_t ring_size)
{
    if (hub->nclients || hub->npending || hub->ring_size) {
        hub_set_error(hub, "channels are set before any client connects, once");
        return -1;
    }
    if (!hub->unix_path)
        return 0; /* TCP: no shared memory with participants that may be elsewhere */
    return channels_init(hub, ring_size);
}

int tsv_hub_client_channel(const struct tsv_hub *hub, int i)
{
    return get(hub, i) && get(hub, i)->channel;
}

void tsv_hub_set_secret(struct tsv_hub *hub, const uint8_t *secret)
{
    memcpy(hub->secret, secret, TSV_SECRET_SIZE);
    hub->has_secret = 1;
}

void tsv_hub_set_limits(struct tsv_hub *hub, const struct tsv_hub_limits *limits)
{
    hub->limits = *limits;
}

int tsv_hub_client_waiting(const struct tsv_hub *hub, int i)
{
    const struct client *c = get(hub, i);
    return c && c->state == C_RUNNING && !c->reached;
}

int tsv_hub_remove(struct tsv_hub *hub, int i, const char *why)
{
    struct client *c = i >= 0 && i < hub->nclients ? hub->clients[i] : NULL;
    if (!c || c->state == C_DEAD)
        return -1;
    hub_fail(hub, c, "%s", why);
    return 0;
}

uint64_t tsv_hub_barrier(const struct tsv_hub *hub) { return hub->barrier; }
uint64_t tsv_hub_deadline(const struct tsv_hub *hub) { return hub->deadline; }
int tsv_hub_client_count(const struct tsv_hub *hub) { return hub->nclients; }
int tsv_hub_alive_count(const struct tsv_hub *hub) { return hub->alive; }

uint32_t tsv_hub_client_address(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->addr : 0;
}

uint32_t tsv_hub_client_pid(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->pid : 0;
}

uint64_t tsv_hub_client_date(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->at : 0;
}

int tsv_hub_client_role(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->role : 0;
}

uint64_t tsv_hub_client_held_ns(const struct tsv_hub *hub, int i)
{
    return get(hub, i) ? get(hub, i)->held_ns : 0;
}

int tsv_hub_client_alive(const struct tsv_hub *hub, int i)
{
    return get(hub, i) && get(hub, i)->state != C_DEAD;
}

int tsv_hub_next_event(struct tsv_hub *hub, struct tsv_hub_event *event)
{
    if (hub->ev_head >= hub->ev_len)
        return 0;
    *event = hub->events[hub->ev_head++];
    return 1;
}

const char *tsv_hub_error(const struct tsv_hub *hub) { return hub->error; }
const char *tsv_hub_address(const struct tsv_hub *hub) { return hub->address; }
const char *tsv_hub_tcp_address(const struct tsv_hub *hub) { return hub->tcp_address; }

void tsv_hub_get_stats(const struct tsv_hub *hub, struct tsv_hub_stats *stats)
{
    *stats = hub->stats;
}
