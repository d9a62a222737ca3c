/* gtod: the cost of reading the time, libc's gettimeofday against vsg_gettimeofday, as TANSIV's
 * process-mode benchmark measures it. Prints one JSON line.
 *
 *   gtod SOCKET [vsg options] -- CALLS
 *
 * Each loop of CALLS calls is timed with CLOCK_MONOTONIC (real time): the vsg loop's cost
 * includes the deadlines that interrupt it, so it depends on the lookahead. */
#include <sys/time.h>
#include <time.h>

#include "vsg-program.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char *argv[])
{
    struct vsg_program_args args;
    struct vsg_context *ctx =
        vsg_program_join(argc, argv, "gtod SOCKET [vsg options] -- CALLS", 1, NULL, &args);
    long calls = atol(args.argv[0]);
    if (calls <= 0) {
        fprintf(stderr, "gtod: CALLS must be > 0\n");
        return 2;
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
    return 0;
}
