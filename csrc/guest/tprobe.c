/* tprobe: what a program inside a VM can learn by watching time. Prints one JSON line.
 *
 *   tprobe [--loop-ms MS] [--windows N] [--window-ms MS] [--sleeps N]
 *
 * 1. Tight loops reading CLOCK_MONOTONIC, CLOCK_REALTIME and the TSC for --loop-ms each: the
 *    largest step between two consecutive reads (a pause of the VM that the guest could see
 *    shows up there), and how many steps exceeded 1 ms.
 * 2. The TSC rate against CLOCK_MONOTONIC over --windows windows of --window-ms: mean rate and
 *    relative spread (a VM paused behind the guest's back skews one against the other).
 * 3. nanosleep of 100 us, 1 ms and 10 ms, --sleeps times each: overshoot, median and max.
 * Static, for the guest image. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

static uint64_t ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct gaps {
    uint64_t max, over_1ms, reads;
};

static struct gaps clock_loop(clockid_t clock, uint64_t duration)
{
    struct gaps g = {0, 0, 0};
    uint64_t start = ns(clock), prev = start, t;
    do {
        t = ns(clock);
        uint64_t step = t - prev;
        if (step > g.max)
            g.max = step;
        if (step > 1000000)
            g.over_1ms++;
        g.reads++;
        prev = t;
    } while (t - start < duration);
    return g;
}

/* TSC loop bounded by CLOCK_MONOTONIC, checked every 1024 reads so the TSC reads stay tight. */
static struct gaps tsc_loop(uint64_t duration, double ticks_per_ns)
{
    struct gaps g = {0, 0, 0};
    uint64_t end = ns(CLOCK_MONOTONIC) + duration;
    uint64_t prev = __rdtsc();
    uint64_t over = (uint64_t)(1e6 * ticks_per_ns);
    for (;;) {
        for (int i = 0; i < 1024; i++) {
            uint64_t t = __rdtsc();
            uint64_t step = t - prev;
            if (step > g.max)
                g.max = step;
            if (step > over)
                g.over_1ms++;
            prev = t;
        }
        g.reads += 1024;
        if (ns(CLOCK_MONOTONIC) >= end)
            break;
        prev = __rdtsc(); /* the clock_gettime above is not a gap of the TSC */
    }
    return g;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    uint64_t loop_ms = 1000, window_ms = 10;
    int windows = 50, sleeps = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--loop-ms") == 0)
            loop_ms = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--windows") == 0)
            windows = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--window-ms") == 0)
            window_ms = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--sleeps") == 0)
            sleeps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "tprobe: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (windows < 2 || sleeps < 1 || loop_ms == 0 || window_ms == 0) {
        fprintf(stderr, "tprobe: --windows >= 2, --sleeps >= 1, durations > 0\n");
        return 2;
    }

    /* TSC rate, window by window. */
    double *rates = calloc((size_t)windows, sizeof(*rates)), sum = 0, lo = 1e300, hi = 0;
    for (int w = 0; w < windows; w++) {
        uint64_t t0 = ns(CLOCK_MONOTONIC), c0 = __rdtsc(), t1;
        while ((t1 = ns(CLOCK_MONOTONIC)) - t0 < window_ms * 1000000u)
            ;
        uint64_t c1 = __rdtsc();
        rates[w] = (double)(c1 - c0) / (double)(t1 - t0);
        sum += rates[w];
        lo = rates[w] < lo ? rates[w] : lo;
        hi = rates[w] > hi ? rates[w] : hi;
    }
    double rate = sum / windows; /* ticks per ns */

    struct gaps mono = clock_loop(CLOCK_MONOTONIC, loop_ms * 1000000u);
    struct gaps real = clock_loop(CLOCK_REALTIME, loop_ms * 1000000u);
    struct gaps tsc = tsc_loop(loop_ms * 1000000u, rate);

    static const uint64_t requested[] = {100000, 1000000, 10000000};
    uint64_t *over = calloc((size_t)sleeps, sizeof(*over));
    printf("{\"event\": \"probe\", \"loop_ms\": %llu, "
           "\"monotonic\": {\"max_gap_ns\": %llu, \"gaps_over_1ms\": %llu, \"reads\": %llu}, "
           "\"realtime\": {\"max_gap_ns\": %llu, \"gaps_over_1ms\": %llu, \"reads\": %llu}, "
           "\"tsc\": {\"max_gap_ns\": %.0f, \"gaps_over_1ms\": %llu, \"reads\": %llu, "
           "\"mhz\": %.3f, \"rate_spread\": %.3e, \"windows\": %d}, \"sleep\": {",
           (unsigned long long)loop_ms, (unsigned long long)mono.max,
           (unsigned long long)mono.over_1ms, (unsigned long long)mono.reads,
           (unsigned long long)real.max, (unsigned long long)real.over_1ms,
           (unsigned long long)real.reads, (double)tsc.max / rate,
           (unsigned long long)tsc.over_1ms, (unsigned long long)tsc.reads, rate * 1000.0,
           (hi - lo) / rate, windows);
    for (size_t k = 0; k < sizeof(requested) / sizeof(requested[0]); k++) {
        for (int i = 0; i < sleeps; i++) {
            struct timespec req = {.tv_sec = 0, .tv_nsec = (long)requested[k]};
            uint64_t t0 = ns(CLOCK_MONOTONIC);
            nanosleep(&req, NULL);
            over[i] = ns(CLOCK_MONOTONIC) - t0 - requested[k];
        }
        qsort(over, (size_t)sleeps, sizeof(*over), cmp_u64);
        printf("%s\"%llu\": {\"median_overshoot_ns\": %llu, \"max_overshoot_ns\": %llu}",
               k ? ", " : "", (unsigned long long)requested[k],
               (unsigned long long)over[sleeps / 2], (unsigned long long)over[sleeps - 1]);
    }
    printf("}}\n");
    free(rates);
    free(over);
    return 0;
}
