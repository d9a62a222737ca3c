/* burst: messages sent back to back, then an abrupt end, for the coordinator's tests.
 *
 *   burst SOCKET [vsg options] -- send PEER COUNT SIZE return|_exit|kill|stop
 *   burst SOCKET [vsg options] -- recv COUNT
 *
 * send: COUNT messages of SIZE bytes (the first four, if any: the message's index), as fast as
 * vsg_send takes them, then returns from main without vsg_stop, calls _exit, SIGKILLs itself,
 * or (stop) calls vsg_stop first. recv: prints "got INDEX SIZE" for each message, then, after
 * COUNT, vsg_stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include "vsg-program.h"

static sem_t arrived;

static void on_message(uintptr_t arg)
{
    (void)arg;
    sem_post(&arrived);
}

static int send_burst(struct vsg_context *ctx, const char *peer_text, int count, uint32_t size,
                      const char *then)
{
    struct in_addr peer;
    static uint8_t buf[MAX_PACKET_SIZE];
    if (inet_pton(AF_INET, peer_text, &peer) != 1 || size > sizeof(buf)) {
        fprintf(stderr, "burst: bad PEER or SIZE\n");
        return 2;
    }
    for (int i = 0; i < count; i++) {
        memcpy(buf, &i, size < 4 ? size : 4);
        int rc = vsg_send(ctx, peer.s_addr, size, buf);
        if (rc) {
            fprintf(stderr, "burst: vsg_send %d: %s\n", i, strerror(rc));
            return 1;
        }
    }
    printf("burst: sent %d, then %s\n", count, then);
    fflush(stdout);
    if (strcmp(then, "_exit") == 0)
        _exit(0);
    if (strcmp(then, "kill") == 0)
        raise(SIGKILL);
    if (strcmp(then, "stop") == 0) {
        vsg_stop(ctx);
        vsg_cleanup(ctx);
    }
    return 0; /* "return": straight out of main, as a program that forgot vsg_stop */
}

static int receive(struct vsg_context *ctx, int count)
{
    static uint8_t buf[MAX_PACKET_SIZE];
    for (int got = 0; got < count; got++) {
        while (sem_wait(&arrived) < 0)
            if (errno != EINTR)
                return 1;
        uint32_t len = sizeof(buf);
        int rc = vsg_recv(ctx, NULL, NULL, &len, buf);
        if (rc) {
            fprintf(stderr, "burst: vsg_recv: %s\n", strerror(rc));
            return 1;
        }
        int index;
        memcpy(&index, buf, 4);
        printf("got %d %u\n", index, len);
    }
    fflush(stdout);
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}

int main(int argc, char *argv[])
{
    const char *usage = "burst SOCKET [vsg options] -- send PEER COUNT SIZE "
                        "return|_exit|kill|stop | recv COUNT";
    struct vsg_program_args args;
    sem_init(&arrived, 0, 0);
    struct vsg_context *ctx = vsg_program_join(argc, argv, usage, 2, on_message, &args);
    if (strcmp(args.argv[0], "send") == 0 && args.argc == 5)
        return send_burst(ctx, args.argv[1], atoi(args.argv[2]), (uint32_t)atoi(args.argv[3]),
                          args.argv[4]);
    if (strcmp(args.argv[0], "recv") == 0)
        return receive(ctx, atoi(args.argv[1]));
    fprintf(stderr, "usage: %s\n", usage);
    return 2;
}
