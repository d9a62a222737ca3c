/* idle: a participant that only lets simulated time pass, for bench/sync_rounds.py.
 *
 *   idle SOCKET [vsg options] -- UNTIL_US [wait|sleep]
 *
 * Waits until its simulated clock reaches UNTIL_US, then leaves: in vsg_wait (the default),
 * so that the coordinator knows it does nothing before (idle horizons), or in nanosleep, so
 * that it does not (as any program that sleeps by itself). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "vsg-program.h"

int main(int argc, char *argv[])
{
    struct vsg_program_args args;
    struct vsg_context *ctx = vsg_program_join(
        argc, argv, "idle SOCKET [vsg options] -- UNTIL_US [wait|sleep]", 1, NULL, &args);
    long long until = atoll(args.argv[0]);
    int sleeps = args.argc > 1 && strcmp(args.argv[1], "sleep") == 0;
    for (long long left; (left = until - vsg_program_now_us(ctx)) > 0;) {
        struct timespec ts = {.tv_sec = left / 1000000, .tv_nsec = (left % 1000000) * 1000};
        if (sleeps) {
            nanosleep(&ts, NULL); /* cut short by deadlines: the loop reads the clock again */
            continue;
        }
        if (vsg_wait(ctx, &ts) == EPIPE)
            break;
        uint32_t len = 0; /* nothing is sent to it; whatever comes is dropped */
        while (vsg_recv(ctx, NULL, NULL, &len, NULL) != EAGAIN)
            len = 0;
    }
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}
