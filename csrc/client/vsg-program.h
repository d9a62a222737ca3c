/* Start-up of a small participant program, which tansiv run starts, as TANSIV did, as
 *
 *   prog SOCKET [vsg options] -- ARGS...
 *
 * (the coordinator's socket, then vsg_init's options from the deployment, then the program's
 * own arguments). Header-only; installed next to tansiv-client.h for any participant. */
#ifndef TANSIV_VSG_PROGRAM_H
#define TANSIV_VSG_PROGRAM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tansiv-client.h"

/* The program's own arguments, those after "--". */
struct vsg_program_args {
    int argc;
    const char *const *argv;
};

/* Without a SOCKET, prints "usage: USAGE" and exits with status 2. Otherwise returns
 * vsg_init(["-a", SOCKET, vsg options...]) with recv_cb (may be NULL; it runs in the deadline
 * signal handler, with argument 0) and sets *args; NULL with errno set (and the reason
 * logged) when the vsg options are wrong. */
static inline struct vsg_context *vsg_program_init(int argc, char *argv[], const char *usage,
                                                   vsg_recv_cb recv_cb,
                                                   struct vsg_program_args *args)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s\n", usage);
        exit(2);
    }
    /* vsg_init's argv has no program name: argv[0] becomes "-a", whose value is argv[1].
     * Kept until exit, as *args points into it. */
    const char **vsg_argv = (const char **)calloc((size_t)argc + 1, sizeof(*vsg_argv));
    if (!vsg_argv)
        return NULL;
    vsg_argv[0] = "-a";
    for (int i = 1; i < argc; i++)
        vsg_argv[i] = argv[i];
    int next = argc;
    struct vsg_context *ctx = vsg_init(argc, vsg_argv, &next, recv_cb, 0, NULL, 0);
    args->argc = argc - next;
    args->argv = vsg_argv + next;
    return ctx;
}

/* vsg_start: simulated time starts. On failure, prints "NAME: vsg_start: REASON" and exits
 * with status 1. */
static inline void vsg_program_start(struct vsg_context *ctx, const char *name)
{
    int rc = vsg_start(ctx, NULL);
    if (rc) {
        fprintf(stderr, "%s: vsg_start: %s\n", name, strerror(rc));
        exit(1);
    }
}

/* Both, for a program that checks nothing but the number of its arguments before starting:
 * prints the usage and exits with status 2 if the vsg options are wrong or fewer than
 * min_args arguments follow them. */
static inline struct vsg_context *vsg_program_join(int argc, char *argv[], const char *usage,
                                                   int min_args, vsg_recv_cb recv_cb,
                                                   struct vsg_program_args *args)
{
    struct vsg_context *ctx = vsg_program_init(argc, argv, usage, recv_cb, args);
    if (!ctx || args->argc < min_args) {
        fprintf(stderr, "usage: %s\n", usage);
        exit(2);
    }
    vsg_program_start(ctx, argv[0]);
    return ctx;
}

/* The simulated date in microseconds since the Epoch (time 0 is the -t date, 1970 by
 * default). */
static inline long long vsg_program_now_us(const struct vsg_context *ctx)
{
    struct timeval tv;
    vsg_gettimeofday(ctx, &tv, NULL);
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

#endif
