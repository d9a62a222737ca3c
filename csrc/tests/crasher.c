/* crasher: a participant that dies at a given simulated time, for the coordinator's tests.
 *
 *   crasher SOCKET [vsg options] -- AT_US abort|exit|stop
 *
 * abort: SIGABRT; exit: exit status 7 without vsg_stop; stop: vsg_stop, then exit 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tansiv-client.h"

int main(int argc, char *argv[])
{
    const char **vargv = calloc((size_t)argc + 1, sizeof(*vargv));
    vargv[0] = "-a";
    for (int i = 1; i < argc; i++)
        vargv[i] = argv[i];
    int next = 0;
    struct vsg_context *ctx = vsg_init(argc, vargv, &next, NULL, 0, NULL, 0);
    if (!ctx || argc - next < 2) {
        fprintf(stderr, "usage: crasher SOCKET [vsg options] -- AT_US abort|exit|stop\n");
        return 2;
    }
    long long at = atoll(vargv[next]);
    const char *how = vargv[next + 1];
    int rc = vsg_start(ctx, NULL);
    if (rc) {
        fprintf(stderr, "crasher: vsg_start: %s\n", strerror(rc));
        return 1;
    }
    struct timeval tv;
    do
        vsg_gettimeofday(ctx, &tv, NULL);
    while ((long long)tv.tv_sec * 1000000 + tv.tv_usec < at);
    printf("crasher: %s at %lld us\n", how, (long long)tv.tv_sec * 1000000 + tv.tv_usec);
    fflush(stdout);
    if (strcmp(how, "abort") == 0)
        abort();
    if (strcmp(how, "exit") == 0)
        exit(7);
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}
