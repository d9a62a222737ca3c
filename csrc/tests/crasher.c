/* crasher: a participant that dies at a given simulated time, for the coordinator's tests.
 *
 *   crasher SOCKET [vsg options] -- AT_US abort|exit|stop
 *
 * abort: SIGABRT; exit: exit status 7 without vsg_stop; stop: vsg_stop, then exit 0. */
#include "vsg-program.h"

int main(int argc, char *argv[])
{
    struct vsg_program_args args;
    struct vsg_context *ctx = vsg_program_join(
        argc, argv, "crasher SOCKET [vsg options] -- AT_US abort|exit|stop", 2, NULL, &args);
    long long at = atoll(args.argv[0]), t;
    const char *how = args.argv[1];
    while ((t = vsg_program_now_us(ctx)) < at)
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
