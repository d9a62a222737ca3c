/* TANSIV's tansiv-client.h declarations, written again after including ours: a C11 compiler
 * rejects any that differs (return type, parameter types, typedefs, MAX_PACKET_SIZE). */
#include <tansiv-client.h>

#if MAX_PACKET_SIZE != 2048
#error "MAX_PACKET_SIZE differs from TANSIV's"
#endif

struct vsg_context;
struct vsg_poll_send_cb;

typedef void (*vsg_recv_cb)(uintptr_t recv_cb_arg);
typedef void (*vsg_deadline_cb)(uintptr_t deadline_cb_arg, struct timespec deadline);
typedef void (*vsg_poll_send_cb)(uintptr_t poll_send_cb_arg);

struct vsg_context* vsg_init(int argc, const char* const argv[], int* next_arg_p,
                             vsg_recv_cb recv_cb, uintptr_t recv_cb_arg,
                             vsg_deadline_cb, uintptr_t deadline_cb_arg);
void vsg_cleanup(struct vsg_context* context);

int vsg_start(const struct vsg_context* context, struct timespec* offset);
int vsg_stop(const struct vsg_context* context);

struct vsg_poll_send_cb *vsg_poll_send_callback_new(vsg_poll_send_cb callback, uintptr_t arg);
void vsg_poll_send_callback_free(struct vsg_poll_send_cb *callback);

int vsg_gettimeofday(const struct vsg_context* context, struct timeval* timeval, void* timezone);
int vsg_may_start_send(const struct vsg_context* context, struct vsg_poll_send_cb *callback);
int vsg_send(const struct vsg_context* context, uint32_t dest, uint32_t msglen, const uint8_t* msg);
void vsg_stop_send(const struct vsg_context* context, struct vsg_poll_send_cb *callback);
int vsg_recv(const struct vsg_context* context, uint32_t* src, uint32_t* dest, uint32_t* msglen, uint8_t* msg);
int vsg_poll(const struct vsg_context* context);
void vsg_poll_send(const struct vsg_context* context, struct vsg_poll_send_cb *callback);

static void count(uintptr_t arg)
{
    ++*(int *)arg;
}

/* The poll-send API: without client-side flow control, sending is always possible and the
 * callback runs at once. */
int main(void)
{
    int calls = 0;
    struct vsg_poll_send_cb *cb = vsg_poll_send_callback_new(count, (uintptr_t)&calls);
    const char *const argv[] = {"-a", "/nowhere", "-n", "10.0.0.1"};
    struct vsg_context *ctx = vsg_init(4, argv, NULL, NULL, 0, NULL, 0);
    if (!cb || !ctx || vsg_may_start_send(ctx, cb) != 1 || vsg_may_start_send(NULL, cb) != 0)
        return 1;
    vsg_poll_send(ctx, cb);
    vsg_stop_send(ctx, cb);
    vsg_stop_send(ctx, NULL);
    vsg_poll_send_callback_free(cb);
    vsg_cleanup(ctx);
    return calls == 2 ? 0 : 1;
}
