/* What tansiv needs of SimGrid that its Python bindings do not give: the date of the next
 * event, and frames as transfers that say when they complete, by id, without a scan of the
 * ones in flight. Read by cffi (tansiv/run/platform.py): declarations only. */
#ifndef TANSIV_SGNEXT_H
#define TANSIV_SGNEXT_H

#include <stddef.h>
#include <stdint.h>

/* Date (s) of the next event of the running simulation: the earliest of every model's next
 * occurring event (completions, latency ends) and of the kernel timers; -1 if none. */
double tsv_sg_next_event(void);

/* Starts a transfer of `bytes` from host src to host dst now (the engine's clock), known as
 * `id` from then on. 0, or -1 if a host is unknown. */
int tsv_sg_send(const char *src, const char *dst, uint64_t bytes, uint64_t id);

/* Transfers completed since the last call, in the order they completed: up to max of them,
 * their ids and completion dates (s). Returns how many were written. */
int tsv_sg_completed(uint64_t *ids, double *dates, int max);

/* The value of a link's property (a <prop> of the platform), NULL if it has none. */
const char *tsv_sg_link_property(const char *link, const char *key);
/* The names of a link's properties, sorted, one after the other, each followed by a NUL,
 * into out (len bytes): how many bytes that takes (more than len: not all written). */
size_t tsv_sg_link_property_names(const char *link, char *out, size_t len);

/* Transfers in flight. */
int tsv_sg_in_flight(void);

/* Cancels every transfer in flight (an end: SimGrid complains of one dropped unfinished),
 * writing up to max of their ids. Returns how many were cancelled. */
int tsv_sg_cancel_all(uint64_t *ids, int max);

#endif
