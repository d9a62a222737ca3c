/* tansiv client library: the API a participant (a process, or QEMU's tantap backend) uses to
 * exchange packets through the simulated network and to read the simulation's time.
 *
 * Source-compatible with TANSIV's tansiv-client.h: a program written against it builds
 * unchanged. Functions returning int return 0 on success or an errno value; vsg_init returns
 * NULL on error (errno set, reason logged on stderr).
 *
 * Options given to vsg_init (parsed up to a "--" argument, whose successor index is stored in
 * *next_arg_p; there is no argv[0]):
 *   -a, --actor PATH            coordinator socket: a Unix socket path, or tcp:HOST:PORT
 *   -n, --name ADDRESS          this participant's IPv4 address
 *   -t, --initial_time TIME     date of simulation time 0, %Y-%m-%dT%H:%M:%S[.fraction], UTC
 *                               (default 1970-01-01T00:00:00)
 *   -b, --num_buffers N         receive queue length in messages (default 1024, > 0)
 *   -w, --uplink_bandwidth BPS, -x, --uplink_overhead BYTES
 *                               accepted for compatibility; the simulated network, not the
 *                               client, shapes the traffic
 *
 * Process time back end: virtual time is CLOCK_MONOTONIC minus the time spent frozen at
 * deadlines; only vsg_gettimeofday() shows it. The thread that calls vsg_start() receives a
 * real-time signal (SIGRTMIN+4) at each deadline and stays in its handler while the
 * coordinator holds the simulation; recv_cb and deadline_cb run in that handler, so they must
 * only do async-signal-safe work (set a flag, sem_post, write to a pipe).
 */
#ifndef __TANSIV_CLIENT_H__
#define __TANSIV_CLIENT_H__

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#define MAX_PACKET_SIZE 2048

#ifdef __cplusplus
extern "C" {
#endif

struct vsg_context;
struct vsg_poll_send_cb;

typedef void (*vsg_recv_cb)(uintptr_t recv_cb_arg);
typedef void (*vsg_deadline_cb)(uintptr_t deadline_cb_arg, struct timespec deadline);
#ifndef __cplusplus
typedef void (*vsg_poll_send_cb)(uintptr_t poll_send_cb_arg);
#define VSG_POLL_SEND_FN vsg_poll_send_cb
#else
/* C++ cannot have a typedef and a struct of the same name: there the callback type is
 * vsg_poll_send_cb_fn and the handle struct vsg_poll_send_cb. */
typedef void (*vsg_poll_send_cb_fn)(uintptr_t poll_send_cb_arg);
#define VSG_POLL_SEND_FN vsg_poll_send_cb_fn
#endif

/* From the application's own signal handlers (SIGINT, SIGTERM...), which may interrupt the
 * library while it synchronizes with the coordinator (processes: in the deadline's signal
 * handler, holding its lock):
 *   vsg_stop             safe: during a synchronization of the same thread it returns 0
 *                        at once and the stop takes effect when the synchronization returns
 *   vsg_gettimeofday, vsg_recv, vsg_poll   safe (lock-free)
 *   vsg_send             returns EAGAIN during a synchronization of the same thread
 *   vsg_cleanup          not from a handler (then it does nothing: no free under the
 *                        synchronization's feet), nor concurrently with other calls
 * Then end the program with _exit (exit is not async-signal-safe). */

/* Parses the options; connects nothing yet. */
struct vsg_context *vsg_init(int argc, const char *const argv[], int *next_arg_p,
                             vsg_recv_cb recv_cb, uintptr_t recv_cb_arg,
                             vsg_deadline_cb deadline_cb, uintptr_t deadline_cb_arg);
void vsg_cleanup(struct vsg_context *context);

/* Connects, says hello and waits for the coordinator's first deadline: simulation time 0
 * starts when it returns. *offset (if not NULL) receives the date of time 0 (the -t option).
 * Errors: EINVAL, EALREADY, ECONNREFUSED and other connect errors, EPROTO. */
int vsg_start(const struct vsg_context *context, struct timespec *offset);
/* Leaves the simulation: the coordinator sees this participant end; the clock stops. */
int vsg_stop(const struct vsg_context *context);

struct vsg_poll_send_cb *vsg_poll_send_callback_new(VSG_POLL_SEND_FN callback, uintptr_t arg);
void vsg_poll_send_callback_free(struct vsg_poll_send_cb *callback);

/* Simulated date: initial time + virtual time. timezone is ignored. */
int vsg_gettimeofday(const struct vsg_context *context, struct timeval *timeval, void *timezone);
/* Always 1 (sending possible): there is no client-side flow control. */
int vsg_may_start_send(const struct vsg_context *context, struct vsg_poll_send_cb *callback);
/* Sends msg[0..msglen) to dest, stamped with the current virtual time.
 * Errors: EINVAL, EMSGSIZE (msglen > MAX_PACKET_SIZE), EPIPE (simulation over or stopped),
 * ENOTCONN (not started), EAGAIN (from a signal handler during a synchronization). */
int vsg_send(const struct vsg_context *context, uint32_t dest, uint32_t msglen, const uint8_t *msg);
void vsg_stop_send(const struct vsg_context *context, struct vsg_poll_send_cb *callback);
/* Takes the oldest delivered message; *msglen holds the buffer size on entry, the message
 * size on return. Errors: EINVAL, EAGAIN (queue empty), EMSGSIZE (buffer too small: the
 * message is dropped). */
int vsg_recv(const struct vsg_context *context, uint32_t *src, uint32_t *dest, uint32_t *msglen,
             uint8_t *msg);
/* 0 if a message is waiting, EAGAIN otherwise. */
int vsg_poll(const struct vsg_context *context);
/* tansiv's own (not in TANSIV's API): waits until a message is waiting (returns 0), for at
 * most *timeout of simulated time (NULL: no bound; then ETIMEDOUT), or until the simulation
 * is over or stopped (EPIPE). Errors also: EINVAL, ENOTCONN, EAGAIN (from a signal handler
 * during a synchronization). While a process's only thread waits here, the process tells
 * the coordinator it does nothing before the timeout (idle horizons): rounds in which
 * nothing reaches it go on without it, and its time jumps over them; a process with more
 * threads waits the same way but does not say so (another thread may send). */
int vsg_wait(const struct vsg_context *context, const struct timespec *timeout);
/* Calls callback at once: sending is always possible. */
void vsg_poll_send(const struct vsg_context *context, struct vsg_poll_send_cb *callback);

#ifdef __cplusplus
}
#endif

#endif /* __TANSIV_CLIENT_H__ */
