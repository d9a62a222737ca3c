/* libFuzzer harness: the client library's side of the wire, fed by a hostile hub.
 *
 * An input is what the "hub" sends after the participant's HELLO: frames (GOTO, DELIVER,
 * END, CHANNEL without its descriptors, anything), cut off at the end. The client goes
 * through its start (the first GOTO) and then synchronizes at every deadline, as its time
 * back end would make it, until the session ends or the stream does. Time is a fake clock
 * that is always past the deadline, so that every synchronization reads frames. The library
 * must reject what is wrong without reading or writing out of bounds (ASan, UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client-internal.h"
#include "transport.h"

static uint64_t fake_clock;

static uint64_t clock_ns(struct vsg_context *ctx)
{
    (void)ctx;
    return fake_clock += 1000000000000ull; /* always past any deadline it was given */
}
static int start(struct vsg_context *ctx) { (void)ctx; return 0; }
static int arm(struct vsg_context *ctx, uint64_t when) { (void)ctx, (void)when; return 0; }
static void stop(struct vsg_context *ctx) { (void)ctx; }
static void enter(struct vsg_context *ctx, struct tsv_guard *g) { (void)ctx, (void)g; }
static void leave(struct vsg_context *ctx, struct tsv_guard *g) { (void)ctx, (void)g; }

static const struct tsv_backend fuzz_backend = {
    .name = "fuzz", .role = TSV_ROLE_PROCESS, .clock_ns = clock_ns, .start = start,
    .arm = arm, .stop = stop, .enter = enter, .leave = leave};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 100000)
        return 0; /* stays within the socket's buffer: written before the client reads */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        abort();
    int sndbuf = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (size && tsv_write_all(sv[1], data, size))
        abort();
    shutdown(sv[1], SHUT_WR); /* the stream ends there */

    struct vsg_context *ctx = calloc(1, sizeof(*ctx));
    ctx->opt.socket = strdup("fuzz.sock");
    ctx->opt.address = 0x0100000a;
    ctx->opt.num_buffers = 4;
    ctx->ring_cap = 4;
    ctx->ring = calloc(ctx->ring_cap, sizeof(*ctx->ring));
    ctx->backend = &fuzz_backend;
    ctx->fd = sv[0];
    if (tsv_session_init(ctx))
        abort();
    if (tsv_session_start(ctx) == 0) {
        for (int i = 0; i < 1000 && atomic_load(&ctx->state) == TSV_STATE_RUNNING; i++) {
            tsv_session_deadline(ctx);
            /* The application takes what was delivered. */
            atomic_store(&ctx->rx_head, atomic_load(&ctx->rx_tail));
        }
    }
    tsv_session_close(ctx);
    tsv_session_free(ctx);
    free(ctx->ring);
    free(ctx->opt.socket);
    free(ctx);
    close(sv[1]);
    return 0;
}
