/* QEMU time back end of the client library, compiled into QEMU with tantap.c.
 *
 * Virtual time is QEMU_CLOCK_VIRTUAL. Each deadline is a timer on that clock; under icount
 * (-icount shift=0,sleep=off) the vCPU stops exactly at it, and the callback runs on the vCPU
 * thread with the BQL held: while it blocks in the synchronization no virtual time passes and
 * the guest is frozen, every clock included. The callback talks to the coordinator on its own
 * channel or socket, never through the main loop, which is stalled meanwhile.
 *
 * An idle guest's round: if, once released, the guest is halted and the next deadline is the
 * earliest virtual timer, QEMU would hand the vCPU thread to the main loop, which warps virtual
 * time to that deadline (icount sleep=off), and back: two thread hand-offs that cost more than
 * the round's synchronization. The callback warps virtual time itself, exactly as the main
 * loop would, and synchronizes again, for as long as the guest stays idle, at most
 * IDLE_LOOP_ROUNDS times before the main loop gets its turn. It must be the same run either
 * way, to the instruction: so the limit is a count, never wall time, and the callback warps
 * only when its deadline is strictly the earliest timer (with a guest timer due at the same
 * instant, QEMU's order of the two callbacks is the main loop's to keep). Our timer carries an
 * attribute bit of its own, so that the earliest of the others can be asked for.
 * TANSIV_IDLE_WARP=0 in the environment turns this off, for measuring what it saves
 * (bench/round_breakdown.py); runs are bit-identical with and without.
 *
 * Idle horizons (tansiv-protocol.h): at a deadline, an idle guest (every vCPU halted, no
 * instructions unaccounted) tells the hub the date of its earliest virtual timer, before
 * which only a delivered packet can wake it. The hub may leave it out of rounds until then;
 * when it wakes it, virtual time jumps (icount's bias, as the warp above) to the barrier.
 * TANSIV_IDLE_HORIZON=0 turns it off: guests whose idle time follows the host's (icount
 * sleep=on) or that wait for host I/O (disks) must not say they are idle. */
#include "qemu/osdep.h"
#include "hw/core/cpu.h"
#include "qemu/error-report.h"
#include "qemu/seqlock.h"
#include "qemu/timer.h"
#include "system/cpu-timers-internal.h"
#include "system/cpu-timers.h"
#include "system/cpus.h"
#include "system/runstate.h"

#include "client-internal.h"

struct qemu_data {
    QEMUTimer *timer;
    bool idle_warp;    /* see the top of the file */
    bool idle_horizon; /* likewise */
};

static uint64_t clock_ns(struct vsg_context *ctx)
{
    (void)ctx;
    return (uint64_t)qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
}

#define IDLE_LOOP_ROUNDS 100
/* Marks our deadline timer (QEMU defines bit 0 only, QEMU_TIMER_ATTR_EXTERNAL). */
#define TSV_TIMER_ATTR ((int)BIT(1))
QEMU_BUILD_BUG_ON(TSV_TIMER_ATTR & QEMU_TIMER_ATTR_EXTERNAL);

/* Every vCPU halted, with no instructions not yet in icount (the clock would be behind). */
static bool guest_idle(void)
{
    CPUState *cpu;
    if (!all_cpu_threads_idle())
        return false;
    CPU_FOREACH(cpu)
        if (qatomic_read(&cpu->icount_budget))
            return false;
    return true;
}

/* ns to the earliest virtual timer but ours (-1: none). */
static int64_t others_ns(void)
{
    return qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL,
                                      ~(QEMU_TIMER_ATTR_EXTERNAL | TSV_TIMER_ATTR));
}

/* Moves virtual time on by ns, as icount_start_warp_timer does with sleep=off. */
static void warp(int64_t ns)
{
    seqlock_write_lock(&timers_state.vm_clock_seqlock, &timers_state.vm_clock_lock);
    qatomic_set_i64(&timers_state.qemu_icount_bias, timers_state.qemu_icount_bias + ns);
    seqlock_write_unlock(&timers_state.vm_clock_seqlock, &timers_state.vm_clock_lock);
}

/* If the guest is idle and our deadline is strictly the earliest virtual timer, moves virtual
 * time to it and says so. */
static bool warp_to_deadline(struct qemu_data *qd)
{
    if (!timer_pending(qd->timer) || !guest_idle())
        return false;
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    int64_t ours = (int64_t)timer_expire_time_ns(qd->timer) - now;
    int64_t others = others_ns();
    if (ours <= 0 || (others >= 0 && others <= ours))
        return false;
    warp(ours);
    return true;
}

static uint64_t idle_until(struct vsg_context *ctx, uint64_t d)
{
    struct qemu_data *qd = ctx->backend_data;
    if (!qd->idle_horizon || !guest_idle())
        return 0;
    int64_t others = others_ns();
    if (others < 0)
        return UINT64_MAX;
    return others > 0 && (uint64_t)others < UINT64_MAX - d ? d + (uint64_t)others : 0;
}

static void jump(struct vsg_context *ctx, uint64_t ns)
{
    (void)ctx;
    warp((int64_t)ns);
}

static void on_deadline(void *opaque)
{
    struct vsg_context *ctx = opaque;
    struct qemu_data *qd = ctx->backend_data;
    int rounds = 0;
    do {
        tsv_session_deadline(ctx);
    } while (qd->idle_warp && atomic_load(&ctx->state) == TSV_STATE_RUNNING &&
             ++rounds < IDLE_LOOP_ROUNDS && warp_to_deadline(qd));
}

static int start(struct vsg_context *ctx)
{
    struct qemu_data *qd = g_new0(struct qemu_data, 1);
    qd->timer = timer_new_full(NULL, QEMU_CLOCK_VIRTUAL, SCALE_NS, TSV_TIMER_ATTR, on_deadline,
                               ctx);
    const char *warp_env = getenv("TANSIV_IDLE_WARP");
    qd->idle_warp = !(warp_env && strcmp(warp_env, "0") == 0);
    const char *horizon = getenv("TANSIV_IDLE_HORIZON");
    qd->idle_horizon = !(horizon && strcmp(horizon, "0") == 0);
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

/* Guest instructions executed so far (icount): what a round's guest did. */
static uint64_t work(struct vsg_context *ctx)
{
    (void)ctx;
    return (uint64_t)icount_get_raw();
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
    .work = work,
    .idle_until = idle_until,
    .jump = jump,
};
