/* Start-up shared by tansiv's small participants (csrc/tests, csrc/bench), started by tansiv
 * run as `prog SOCKET [vsg options] -- ARGS...`. Returns the started context and points *args
 * at the program's own arguments; exits with a message on failure. */
#ifndef TANSIV_VSG_PROGRAM_H
#define TANSIV_VSG_PROGRAM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tansiv-client.h"

static inline struct vsg_context *start_participant(int argc, char *argv[], int min_args,
                                                    const char *usage, const char *const **args)
{
    /* argv[0] becomes "-a": argv[1] (the socket) is its value. */
    const char **vargv = calloc((size_t)argc + 1, sizeof(*vargv));
    vargv[0] = "-a";
    for (int i = 1; i < argc; i++)
        vargv[i] = argv[i];
    int next = 0;
    struct vsg_context *ctx = vsg_init(argc, vargv, &next, NULL, 0, NULL, 0);
    if (!ctx || argc - next < min_args) {
        fprintf(stderr, "usage: %s\n", usage);
        exit(2);
    }
    int rc = vsg_start(ctx, NULL);
    if (rc) {
        fprintf(stderr, "%s: vsg_start: %s\n", argv[0], strerror(rc));
        exit(1);
    }
    *args = vargv + next;
    return ctx;
}

static inline long long now_us(const struct vsg_context *ctx)
{
    struct timeval tv;
    vsg_gettimeofday(ctx, &tv, NULL);
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

#endif
