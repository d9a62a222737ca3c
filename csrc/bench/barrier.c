/* barrier: the machine's floor for a round, against which bench/sync_rounds.py and
 * bench/vm_speed.py measure tansiv's: N processes and a hub over shared memory and futexes,
 * nothing else. Each round the hub bumps an epoch and wakes all; each process acknowledges;
 * the last wakes the hub. Prints one JSON line.
 *
 *   barrier N ROUNDS */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

struct shared {
    _Atomic uint32_t epoch; /* processes sleep on it */
    _Atomic uint32_t hub;   /* the hub sleeps on it */
    _Atomic int32_t remaining;
    _Atomic uint32_t stop;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void participant(struct shared *s)
{
    uint32_t seen = 0;
    for (;;) {
        while (atomic_load(&s->epoch) == seen)
            tsv_futex_wait(&s->epoch, seen, -1);
        seen = atomic_load(&s->epoch);
        if (atomic_load(&s->stop))
            _exit(0);
        if (atomic_fetch_sub(&s->remaining, 1) == 1) {
            atomic_fetch_add(&s->hub, 1);
            tsv_futex_wake(&s->hub, 1);
        }
    }
}

int main(int argc, char *argv[])
{
    int n = argc > 2 ? atoi(argv[1]) : 0;
    long rounds = argc > 2 ? atol(argv[2]) : 0;
    if (n < 1 || rounds < 1) {
        fprintf(stderr, "usage: barrier N ROUNDS\n");
        return 2;
    }
    struct shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return 1;
    for (int i = 0; i < n; i++)
        if (fork() == 0)
            participant(s);
    double t0 = now_us();
    for (long r = 0; r < rounds; r++) {
        uint32_t hub = atomic_load(&s->hub);
        atomic_store(&s->remaining, n);
        atomic_fetch_add(&s->epoch, 1);
        tsv_futex_wake(&s->epoch, INT_MAX);
        while (atomic_load(&s->remaining) > 0) {
            tsv_futex_wait(&s->hub, hub, -1);
            hub = atomic_load(&s->hub);
        }
    }
    double us = (now_us() - t0) / (double)rounds;
    atomic_store(&s->stop, 1);
    atomic_fetch_add(&s->epoch, 1);
    tsv_futex_wake(&s->epoch, INT_MAX);
    while (wait(NULL) > 0)
        ;
    printf("{\"event\": \"barrier\", \"processes\": %d, \"rounds\": %ld, \"us_per_round\": %.2f}\n",
           n, rounds, us);
    return 0;
}
