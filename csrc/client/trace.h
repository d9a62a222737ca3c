/* A trace of a participant's rounds, for measuring where their time goes
 * (bench/round_breakdown.py). With TANSIV_TRACE=FOLDER in its environment, a participant
 * writes FOLDER/ADDRESS.trace, one line per deadline:
 *
 *   DEADLINE_NS REACHED SENT RESUMED WORK
 *
 * REACHED, SENT and RESUMED are the host's CLOCK_MONOTONIC (ns) when the deadline was reached,
 * when the participant told the coordinator so, and when it was let go again; WORK is the
 * time back end's count of work done so far (QEMU: guest instructions; processes: 0).
 * Off (fd -1), it costs one test per deadline. Lines are written 64 KiB at a time, so that
 * tracing costs no system call per round (a participant killed loses its last lines).
 * Async-signal-safe: it runs in the process back end's deadline handler. */
#ifndef TANSIV_TRACE_H
#define TANSIV_TRACE_H

#include <stddef.h>
#include <stdint.h>

struct tsv_trace {
    int fd;
    uint64_t reached, sent;
    char *buf; /* TSV_TRACE_BUFFER bytes, len of them used */
    size_t len;
};

void tsv_trace_open(struct tsv_trace *t, uint32_t address);
void tsv_trace_reached(struct tsv_trace *t);
void tsv_trace_sent(struct tsv_trace *t);
void tsv_trace_resumed(struct tsv_trace *t, uint64_t deadline, uint64_t work);
void tsv_trace_close(struct tsv_trace *t);

#endif
