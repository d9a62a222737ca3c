/* tantap: a QEMU network backend whose wire is tansiv's simulated network.
 *
 *   -netdev tantap,id=ID,socket=PATH,address=IPV4[,initial-time=DATE][,num-buffers=N]
 *
 * Frames from the guest's NIC are stamped with the virtual time they leave at and handed to
 * the coordinator at the next deadline, addressed to the IPv4 destination they carry (the
 * target address for ARP). Frames the simulation delivers enter the NIC at the deadline they
 * are delivered at, from the deadline callback: at an exact virtual time, the same run after
 * run. A frame that arrives while the NIC cannot receive (driver not ready) waits in our
 * queue for the first deadline at which it can; at most PENDING_MAX of them, as a NIC's full
 * receive ring drops what comes next. A VM restored from a snapshot (-incoming) joins the
 * simulation when it first runs, once its state is loaded: its HELLO says the virtual date the
 * snapshot was taken at, from which the simulation starts (tansiv-protocol.h).
 *
 * Built with the client library (csrc/client/sources.txt) and backend_qemu.c for time. */
#include "qemu/osdep.h"
#include "../clients.h" /* QEMU's net/clients.h: this file is built in net/tantap/ */
#include "net/net.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/queue.h"
#include "system/runstate.h"

#define TSV_LOG_COMPONENT "tantap"
#include "client-internal.h" /* the client library, copied next to this file by build-qemu.sh */
#include "log.h"

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define PENDING_MAX 4096

typedef struct TantapFrame {
    QSIMPLEQ_ENTRY(TantapFrame) next;
    uint32_t len;
    uint8_t data[];
} TantapFrame;

typedef struct TantapState {
    NetClientState nc;
    struct vsg_context *ctx;
    QSIMPLEQ_HEAD(, TantapFrame) pending; /* delivered, waiting for the NIC */
    uint32_t npending;
    uint64_t overflow;                    /* delivered frames dropped: pending was full */
    uint64_t unroutable;                  /* guest frames without an IPv4 destination */
    char *socket;                         /* for messages */
    bool joined;                          /* vsg_start returned */
} TantapState;

/* The IPv4 address a frame is for (in_addr_t), or 0 if it has none we can route. */
static uint32_t frame_destination(const uint8_t *buf, size_t size)
{
    uint32_t dst;
    if (size < ETH_HLEN)
        return 0;
    uint16_t type = (uint16_t)(buf[12] << 8 | buf[13]);
    if (type == ETHERTYPE_IPV4 && size >= ETH_HLEN + 20) {
        memcpy(&dst, buf + ETH_HLEN + 16, 4);
        return dst;
    }
    if (type == ETHERTYPE_ARP && size >= ETH_HLEN + 28) {
        memcpy(&dst, buf + ETH_HLEN + 24, 4); /* target protocol address */
        return dst;
    }
    return 0;
}

static ssize_t tantap_receive(NetClientState *nc, const uint8_t *buf, size_t size)
{
    TantapState *s = DO_UPCAST(TantapState, nc, nc);
    uint32_t dst = frame_destination(buf, size);
    if (!dst || size > MAX_PACKET_SIZE) {
        if (s->unroutable++ == 0)
            warn_report("tantap: dropping guest frames without an IPv4 destination, or "
                        "larger than %d bytes (first: %zu bytes)", MAX_PACKET_SIZE, size);
        return size;
    }
    TSV_LOG(TSV_DEBUG, "guest sends %zu bytes to %08x at %llu ns", size, dst,
            (unsigned long long)tsv_session_now(s->ctx));
    int rc = vsg_send(s->ctx, dst, (uint32_t)size, buf);
    if (rc && rc != EPIPE)
        warn_report("tantap: cannot send a %zu-byte frame: %s", size, strerror(rc));
    return size;
}

/* Hands waiting frames to the NIC while it can take them. */
static void tantap_flush(TantapState *s)
{
    TantapFrame *f;
    while ((f = QSIMPLEQ_FIRST(&s->pending)) && qemu_can_send_packet(&s->nc)) {
        QSIMPLEQ_REMOVE_HEAD(&s->pending, next);
        s->npending--;
        ssize_t n = qemu_send_packet(&s->nc, f->data, f->len);
        TSV_LOG(TSV_DEBUG, "%u bytes to the guest at %llu ns: %zd", f->len,
                (unsigned long long)tsv_session_now(s->ctx), n);
        g_free(f);
    }
    if (QSIMPLEQ_FIRST(&s->pending))
        TSV_LOG(TSV_DEBUG, "the NIC cannot receive yet: frames wait");
}

/* At a deadline, for each delivered frame (from the deadline callback, vCPU thread). */
static void tantap_delivered(uintptr_t arg)
{
    TantapState *s = (TantapState *)arg;
    uint8_t buf[MAX_PACKET_SIZE];
    uint32_t len = sizeof(buf);
    if (vsg_recv(s->ctx, NULL, NULL, &len, buf) != 0)
        return;
    if (s->npending >= PENDING_MAX) {
        if (s->overflow++ == 0)
            warn_report("tantap: the NIC takes no frames and %d wait: dropping what the "
                        "simulation delivers until it does", PENDING_MAX);
        return;
    }
    s->npending++;
    TantapFrame *f = g_malloc(sizeof(*f) + len);
    f->len = len;
    memcpy(f->data, buf, len);
    QSIMPLEQ_INSERT_TAIL(&s->pending, f, next);
    tantap_flush(s);
}

/* At every deadline: frames the NIC could not take earlier may go now. */
static void tantap_deadline(uintptr_t arg, struct timespec deadline)
{
    (void)deadline;
    tantap_flush((TantapState *)arg);
}

static void tantap_cleanup(NetClientState *nc)
{
    TantapState *s = DO_UPCAST(TantapState, nc, nc);
    TantapFrame *f;
    if (s->ctx) {
        vsg_cleanup(s->ctx);
        s->ctx = NULL;
    }
    while ((f = QSIMPLEQ_FIRST(&s->pending))) {
        QSIMPLEQ_REMOVE_HEAD(&s->pending, next);
        g_free(f);
    }
    g_free(s->socket);
    s->socket = NULL;
}

static NetClientInfo net_tantap_info = {
    .type = NET_CLIENT_DRIVER_TANTAP,
    .size = sizeof(TantapState),
    .receive = tantap_receive,
    .cleanup = tantap_cleanup,
};

/* A restored VM joins the simulation when it first runs, its state loaded (main loop, before
 * the vCPUs resume). */
static void tantap_vm_started(void *opaque, bool running, RunState state)
{
    TantapState *s = opaque;
    if (!running || s->joined)
        return;
    s->joined = true;
    int rc = vsg_start(s->ctx, NULL);
    if (rc) {
        error_report("tantap: cannot join the simulation at %s: %s", s->socket, strerror(rc));
        qemu_system_shutdown_request_with_code(SHUTDOWN_CAUSE_HOST_ERROR, 1);
    }
}

int net_init_tantap(const Netdev *netdev, const char *name, NetClientState *peer,
                    Error **errp)
{
    const NetdevTantapOptions *opts = &netdev->u.tantap;
    g_autofree char *buffers = NULL;
    const char *argv[8];
    int argc = 0;

    assert(netdev->type == NET_CLIENT_DRIVER_TANTAP);
    argv[argc++] = "-a";
    argv[argc++] = opts->socket;
    argv[argc++] = "-n";
    argv[argc++] = opts->address;
    if (opts->initial_time) {
        argv[argc++] = "-t";
        argv[argc++] = opts->initial_time;
    }
    if (opts->has_num_buffers) {
        buffers = g_strdup_printf("%" PRIu32, opts->num_buffers);
        argv[argc++] = "-b";
        argv[argc++] = buffers;
    }

    NetClientState *nc = qemu_new_net_client(&net_tantap_info, peer, "tantap", name);
    TantapState *s = DO_UPCAST(TantapState, nc, nc);
    QSIMPLEQ_INIT(&s->pending);
    s->ctx = vsg_init(argc, argv, NULL, tantap_delivered, (uintptr_t)s, tantap_deadline,
                      (uintptr_t)s);
    if (!s->ctx) {
        error_setg(errp, "tantap: invalid options (socket=%s, address=%s): see the message "
                   "above", opts->socket, opts->address);
        qemu_del_net_client(nc);
        return -1;
    }
    s->socket = g_strdup(opts->socket);
    qemu_set_info_str(nc, "tantap: %s via %s", opts->address, opts->socket);
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        /* Restored from a snapshot (-incoming): the guest's state, its virtual date with it,
         * is loaded after this; the session starts at that date, when the VM starts. */
        qemu_add_vm_change_state_handler(tantap_vm_started, s);
        return 0;
    }
    /* Blocks until every participant joined and the coordinator said when time starts. */
    int rc = vsg_start(s->ctx, NULL);
    if (rc) {
        error_setg(errp, "tantap: cannot join the simulation at %s: %s", opts->socket,
                   strerror(rc));
        qemu_del_net_client(nc);
        return -1;
    }
    s->joined = true;
    return 0;
}
