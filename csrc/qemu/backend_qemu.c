/* QEMU time back end of the client library, compiled into QEMU with tantap.c.
 *
 * Virtual time is QEMU_CLOCK_VIRTUAL. Each deadline is a timer on that clock; under icount
 * (-icount shift=0,sleep=off) the vCPU stops exactly at it, and the callback runs on the vCPU
 * thread with the BQL held: while it blocks in the synchronization no virtual time passes and
 * the guest is frozen, every clock included. The callback talks to the coordinator on its own
 * blocking socket, never through the main loop, which is stalled meanwhile. */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/timer.h"
#include "system/runstate.h"

#include "client-internal.h"

struct qemu_data {
    QEMUTimer *timer;
};

static uint64_t clock_ns(struct vsg_context *ctx)
{
    (void)ctx;
    return (uint64_t)qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
}

static void on_deadline(void *opaque)
{
    tsv_session_deadline(opaque);
}

static int start(struct vsg_context *ctx)
{
    struct qemu_data *qd = g_new0(struct qemu_data, 1);
    qd->timer = timer_new_ns(QEMU_CLOCK_VIRTUAL, on_deadline, ctx);
    ctx->backend_data = qd;
    return 0;
}

static int arm(struct vsg_context *ctx, uint64_t when)
{
    struct qemu_data *qd = ctx->backend_data;
    timer_mod(qd->timer, (int64_t)when);
    return 0;
}

static void stop(struct vsg_context *ctx)
{
    struct qemu_data *qd = ctx->backend_data;
    if (qd)
        timer_del(qd->timer);
}

static void release(struct vsg_context *ctx)
{
    struct qemu_data *qd = ctx->backend_data;
    if (qd) {
        timer_free(qd->timer);
        g_free(qd);
        ctx->backend_data = NULL;
    }
}

/* Every caller holds the BQL: the lock only guards against misuse. */
static void enter(struct vsg_context *ctx, struct tsv_guard *guard)
{
    (void)guard;
    tsv_spin_lock(&ctx->lock);
}

static void leave(struct vsg_context *ctx, struct tsv_guard *guard)
{
    (void)guard;
    tsv_spin_unlock(&ctx->lock);
}

static void on_end(struct vsg_context *ctx, int lost)
{
    (void)ctx;
    if (lost) {
        error_report("tantap: lost the coordinator: stopping the VM");
        qemu_system_shutdown_request_with_code(SHUTDOWN_CAUSE_HOST_ERROR, 1);
    } else {
        info_report("tantap: the simulation ended: stopping the VM");
        qemu_system_shutdown_request(SHUTDOWN_CAUSE_HOST_SIGNAL);
    }
}

/* The same fields as backend_process.c's table, on purpose (the interface, filled in). */
const struct tsv_backend tsv_default_backend = {
    .name = "qemu",
    .role = TSV_ROLE_VM,
    .clock_ns = clock_ns,
    .start = start,
    .arm = arm,
    .stop = stop,
    .release = release,
    .enter = enter,
    .leave = leave,
    .on_end = on_end,
};
