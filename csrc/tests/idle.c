/* idle: a participant that only lets simulated time pass, for bench/sync_rounds.py.
 *
 *   idle SOCKET [vsg options] -- UNTIL_US
 *
 * Sleeps (real time) until its simulated clock reaches UNTIL_US, then leaves. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tansiv-client.h"

int main(int argc, char *argv[])
{
    const char **vargv = calloc((size_t)argc + 1, sizeof(*vargv));
    vargv[0] = "-a";
    for (int i = 1; i < argc; i++)
        vargv[i] = argv[i];
    int next = 0;
    struct vsg_context *ctx = vsg_init(argc, vargv, &next, NULL, 0, NULL, 0);
    if (!ctx || argc - next < 1) {
        fprintf(stderr, "usage: idle SOCKET [vsg options] -- UNTIL_US\n");
        return 2;
    }
    long long until = atoll(vargv[next]);
    int rc = vsg_start(ctx, NULL);
    if (rc) {
        fprintf(stderr, "idle: vsg_start: %s\n", strerror(rc));
        return 1;
    }
    for (;;) {
        struct timeval tv;
        vsg_gettimeofday(ctx, &tv, NULL);
        long long left = until - ((long long)tv.tv_sec * 1000000 + tv.tv_usec);
        if (left <= 0)
            break;
        struct timespec ts = {.tv_sec = left / 1000000, .tv_nsec = (left % 1000000) * 1000};
        nanosleep(&ts, NULL); /* cut short by deadlines: the loop reads the clock again */
    }
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}
