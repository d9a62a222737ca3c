/* The date of SimGrid's next event, which its Python bindings do not expose.
 * Read by cffi (tansiv/run/platform.py): declarations only. */
#ifndef TANSIV_SGNEXT_H
#define TANSIV_SGNEXT_H

/* Date (s) of the next event of the running simulation: the earliest of every model's next
 * occurring event (completions, latency ends) and of the kernel timers; -1 if none. */
double tsv_sg_next_event(void);

#endif
