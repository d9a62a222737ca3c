/* crasher: a participant that dies at a given simulated time, for the coordinator's tests.
 *
 *   crasher SOCKET [vsg options] -- AT_US abort|exit|stop|hang|block|sigint
 *
 * abort: SIGABRT; exit: exit status 7 without vsg_stop; stop: vsg_stop, then exit 0; and two
 * ways of stalling the run: hang (SIGSTOP to itself) and block (every signal blocked, the
 * deadline's too, then sleep); and sigint: a SIGINT handler that calls vsg_stop, prints
 * "stopped" and exits with status 5 (a signal may come while the library synchronizes). */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "vsg-program.h"

static struct vsg_context *the_ctx;

static void on_sigint(int sig)
{
    (void)sig;
    int rc = vsg_stop(the_ctx);
    static const char said[] = "stopped\n";
    if (rc == 0 && write(1, said, sizeof(said) - 1) < 0)
        _exit(6);
    _exit(5);
}

int main(int argc, char *argv[])
{
    struct vsg_program_args args;
    struct vsg_context *ctx = vsg_program_join(
        argc, argv, "crasher SOCKET [vsg options] -- AT_US abort|exit|stop|hang|block|sigint", 2,
        NULL, &args);
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
    if (strcmp(how, "hang") == 0)
        raise(SIGSTOP);
    if (strcmp(how, "sigint") == 0) {
        the_ctx = ctx;
        signal(SIGINT, on_sigint);
        for (;;) /* deadlines come, and synchronize, while it sleeps */
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    if (strcmp(how, "block") == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        for (;;)
            nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
    }
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}
