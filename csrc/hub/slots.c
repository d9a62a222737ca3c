/* Payload slots: the hub keeps each packet's payload and hands out a handle (index and
 * generation: a stale handle is refused), until the caller delivers or drops it. */
#include <stdlib.h>
#include <string.h>

#include "hub-internal.h"

uint64_t hub_slot_store(struct tsv_hub *hub, struct client *c, const uint8_t *data, uint32_t len,
                        uint32_t src, uint32_t dst)
{
    uint32_t i;
    if (hub->nfree) {
        i = hub->free_slots[--hub->nfree];
    } else {
        int cap = (int)hub->slots_cap;
        hub->slots = hub_grow(hub->slots, &cap, (int)hub->nslots + 1, sizeof(*hub->slots));
        hub->free_slots = realloc(hub->free_slots, (size_t)cap * sizeof(*hub->free_slots));
        if (!hub->free_slots)
            abort();
        for (uint32_t k = hub->slots_cap; k < (uint32_t)cap; k++)
            hub->slots[k].gen = 0;
        hub->slots_cap = (uint32_t)cap;
        i = hub->nslots++;
    }
    struct slot *s = &hub->slots[i];
    s->data = malloc(len ? len : 1);
    if (!s->data)
        abort();
    memcpy(s->data, data, len);
    s->len = len;
    s->src = src;
    s->dst = dst;
    s->used = 1;
    s->gen++;
    s->owner = c;
    c->held_packets++;
    c->held_bytes += len;
    hub->held++;
    return ((uint64_t)s->gen << 32) | i;
}

static struct slot *slot_get(const struct tsv_hub *hub, uint64_t handle)
{
    uint32_t i = (uint32_t)handle;
    if (i >= hub->nslots)
        return NULL;
    struct slot *s = &hub->slots[i];
    if (!s->used || s->gen != (uint32_t)(handle >> 32))
        return NULL;
    return s;
}

static void slot_free(struct tsv_hub *hub, struct slot *s)
{
    s->owner->held_packets--;
    s->owner->held_bytes -= s->len;
    free(s->data);
    s->data = NULL;
    s->used = 0;
    hub->free_slots[hub->nfree++] = (uint32_t)(s - hub->slots);
    hub->held--;
}

void hub_slots_free(struct tsv_hub *hub)
{
    for (uint32_t i = 0; i < hub->nslots; i++)
        free(hub->slots[i].data);
    free(hub->slots);
    free(hub->free_slots);
}

int tsv_hub_deliver(struct tsv_hub *hub, uint64_t handle, int client, uint64_t time)
{
    struct slot *s = slot_get(hub, handle);
    if (!s) {
        hub_set_error(hub, "unknown payload handle %llu", (unsigned long long)handle);
        return -1;
    }
    /* Its checks are tsv_hub_inject's; the payload is gone either way. */
    int rc = tsv_hub_inject(hub, client, time, s->src, s->dst, s->data, s->len);
    slot_free(hub, s);
    return rc;
}

const uint8_t *tsv_hub_payload(const struct tsv_hub *hub, uint64_t handle, uint32_t *len)
{
    struct slot *s = slot_get(hub, handle);
    if (!s)
        return NULL;
    *len = s->len;
    return s->data;
}

void tsv_hub_drop(struct tsv_hub *hub, uint64_t handle)
{
    struct slot *s = slot_get(hub, handle);
    if (s)
        slot_free(hub, s);
}

int tsv_hub_payloads_held(const struct tsv_hub *hub) { return (int)hub->held; }
