/* Process time back end: virtual time runs with CLOCK_MONOTONIC and stops at each deadline.
 *
 * A POSIX timer sends TSV_SIGNAL to the thread that called vsg_start when the clock reaches
 * the deadline; its handler synchronizes with the coordinator, so that thread is held for as
 * long as the coordinator holds the simulation, and the time it was held is then subtracted
 * from the clock (see synchronize() in session.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "client"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "client-internal.h"
#include "log.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define TSV_SIGNAL (SIGRTMIN + 4)

struct process_data {
    timer_t timer;
    int have_timer;
};

static uint64_t clock_ns(struct vsg_context *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_end(struct vsg_context *ctx, int lost)
{
    /* Without its coordinator the program cannot go on in simulated time: end it the way
     * a supervisor would, leaving it the chance to clean up in its own SIGTERM handler.
     * After END, the program may go on (its clock stopped); tansiv run ends it later. */
    (void)ctx;
    if (lost) {
        TSV_LOG(TSV_ERROR, "lost the coordinator: terminating this participant");
        raise(SIGTERM);
    }
}

/* The contexts whose timers may still signal, and the handlers under way: a deadline signal
 * already pending when vsg_cleanup deletes the timer (on another thread) may be delivered
 * after; it must find its context gone, not freed memory. */
#define MAX_CONTEXTS 64
static _Atomic(struct vsg_context *) live[MAX_CONTEXTS];
static _Atomic int handlers;

static int is_live(const struct vsg_context *ctx)
{
    for (int i = 0; i < MAX_CONTEXTS; i++)
        if (atomic_load(&live[i]) == ctx)
            return 1;
    return 0;
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    struct vsg_context *ctx = si->si_value.sival_ptr;
    if (si->si_code != SI_TIMER || !ctx)
        return;
    int saved_errno = errno;
    atomic_fetch_add(&handlers, 1); /* before the check: release() waits for us */
    if (is_live(ctx))
        tsv_session_deadline(ctx);
    atomic_fetch_sub(&handlers, 1);
    errno = saved_errno;
}

static int start(struct vsg_context *ctx)
{
    struct process_data *pd = calloc(1, sizeof(*pd));
    if (!pd)
        return ENOMEM;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, TSV_SIGNAL);
    if (sigaction(TSV_SIGNAL, &sa, NULL) < 0) {
        int err = errno;
        free(pd);
        TSV_LOG(TSV_ERROR, "sigaction: %s", strerror(err));
        return err;
    }
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = TSV_SIGNAL;
    sev.sigev_value.sival_ptr = ctx;
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &pd->timer) < 0) {
        int err = errno;
        free(pd);
        TSV_LOG(TSV_ERROR, "timer_create: %s", strerror(err));
        return err;
    }
    pd->have_timer = 1;
    ctx->backend_data = pd;
    for (int i = 0; i < MAX_CONTEXTS; i++) {
        struct vsg_context *none = NULL;
        if (atomic_compare_exchange_strong(&live[i], &none, ctx))
            return 0;
    }
    TSV_LOG(TSV_ERROR, "more than %d contexts started in this process", MAX_CONTEXTS);
    return EMFILE;
}

static int arm(struct vsg_context *ctx, uint64_t when)
{
    struct process_data *pd = ctx->backend_data;
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(when / 1000000000),
                                          .tv_nsec = (long)(when % 1000000000)}};
    if (timer_settime(pd->timer, TIMER_ABSTIME, &its, NULL) < 0) {
        TSV_LOG(TSV_ERROR, "timer_settime: %s", strerror(errno));
        return errno;
    }
    return 0;
}

static void stop(struct vsg_context *ctx)
{
    struct process_data *pd = ctx->backend_data;
    struct itimerspec off = {{0, 0}, {0, 0}};
    if (pd && pd->have_timer)
        timer_settime(pd->timer, 0, &off, NULL);
}

static void release(struct vsg_context *ctx)
{
    struct process_data *pd = ctx->backend_data;
    if (pd && pd->have_timer)
        timer_delete(pd->timer);
    for (int i = 0; i < MAX_CONTEXTS; i++) {
        struct vsg_context *self = ctx;
        atomic_compare_exchange_strong(&live[i], &self, NULL);
    }
    /* A handler that saw ctx live finishes before ctx is freed (vsg_cleanup is never called
     * from a handler that interrupted a synchronization: see tansiv-client.h). */
    while (atomic_load(&handlers) > 0)
        nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    free(pd);
    ctx->backend_data = NULL;
}

static void enter(struct vsg_context *ctx, struct tsv_guard *guard)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, TSV_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &block, &guard->mask);
    tsv_spin_lock(&ctx->lock);
}

static void leave(struct vsg_context *ctx, struct tsv_guard *guard)
{
    tsv_spin_unlock(&ctx->lock);
    pthread_sigmask(SIG_SETMASK, &guard->mask, NULL);
}

/* Idle while its one thread waits in vsg_wait (session.c), until the date it waits for. */
static uint64_t idle_until(struct vsg_context *ctx, uint64_t d)
{
    (void)d;
    return atomic_load(&ctx->wait_until);
}

/* Mirrors the table of backend_qemu.c field for field, on purpose: a back end is this table
 * of its own functions; the logic both need is in session.c. */
const struct tsv_backend tsv_default_backend = {
    .name = "process",
    .role = TSV_ROLE_PROCESS,
    .clock_ns = clock_ns,
    .start = start,
    .arm = arm,
    .stop = stop,
    .release = release,
    .enter = enter,
    .leave = leave,
    .on_end = on_end,
    .idle_until = idle_until,
};
