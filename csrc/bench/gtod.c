/* gtod: the cost of reading the time, libc's gettimeofday against vsg_gettimeofday, as TANSIV's
 * process-mode benchmark measures it. Prints one JSON line.
 *
 *   gtod SOCKET [vsg options] -- CALLS
 *
 * Each loop of CALLS calls is timed with CLOCK_MONOTONIC (real time): the vsg loop's cost
 * includes the deadlines that interrupt it, so it depends on the lookahead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "tansiv-client.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char *argv[])
{
    const char **vargv = calloc((size_t)argc + 1, sizeof(*vargv));
    vargv[0] = "-a";
    for (int i = 1; i < argc; i++)
        vargv[i] = argv[i];
    int next = 0;
    struct vsg_context *ctx = vsg_init(argc, vargv, &next, NULL, 0, NULL, 0);
    if (!ctx || next >= argc) {
        fprintf(stderr, "usage: gtod SOCKET [vsg options] -- CALLS\n");
        return 2;
    }
    long calls = atol(vargv[next]);
    if (calls <= 0 || vsg_start(ctx, NULL)) {
        fprintf(stderr, "gtod: CALLS must be > 0, and vsg_start must succeed\n");
        return 1;
    }
    struct timeval tv;
    volatile long sink = 0;
    double t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        gettimeofday(&tv, NULL);
        sink += tv.tv_usec;
    }
    double t1 = now_ns();
    for (long i = 0; i < calls; i++) {
        vsg_gettimeofday(ctx, &tv, NULL);
        sink += tv.tv_usec;
    }
    double t2 = now_ns();
    printf("{\"event\": \"gtod\", \"calls\": %ld, \"libc_ns_per_call\": %.2f, "
           "\"vsg_ns_per_call\": %.2f}\n", calls, (t1 - t0) / (double)calls,
           (t2 - t1) / (double)calls);
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    free(vargv);
    return 0;
}
