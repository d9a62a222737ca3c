/* crasher: a participant that dies at a given simulated time, for the coordinator's tests.
 *
 *   crasher SOCKET [vsg options] -- AT_US abort|exit|stop
 *
 * abort: SIGABRT; exit: exit status 7 without vsg_stop; stop: vsg_stop, then exit 0. */
#include "vsg-program.h"

int main(int argc, char *argv[])
{
    const char *const *args;
    struct vsg_context *ctx = start_participant(
        argc, argv, 2, "crasher SOCKET [vsg options] -- AT_US abort|exit|stop", &args);
    long long at = atoll(args[0]), t;
    const char *how = args[1];
    while ((t = now_us(ctx)) < at)
        ;
    printf("crasher: %s at %lld us\n", how, t);
    fflush(stdout);
    if (strcmp(how, "abort") == 0)
        abort();
    if (strcmp(how, "exit") == 0)
        exit(7);
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}
