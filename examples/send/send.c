/* send: two participants exchange one message, then print what they received and when.
 *
 *   send SOCKET [vsg options] -- PEER
 */
#include <arpa/inet.h>
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vsg-program.h>

static sem_t arrived;

static void on_message(uintptr_t arg)
{
    (void)arg;
    sem_post(&arrived);
}

int main(int argc, char *argv[])
{
    struct vsg_program_args args;
    sem_init(&arrived, 0, 0);
    struct vsg_context *ctx =
        vsg_program_init(argc, argv, "send SOCKET [vsg options] -- PEER", on_message, &args);
    struct in_addr peer;
    if (!ctx || args.argc < 1 || inet_pton(AF_INET, args.argv[0], &peer) != 1) {
        fprintf(stderr, "send: expected [vsg options] -- PEER\n");
        return 2;
    }
    vsg_program_start(ctx, "send");

    char msg[64];
    snprintf(msg, sizeof(msg), "hello from pid %d", (int)getpid());
    int rc = vsg_send(ctx, peer.s_addr, (uint32_t)strlen(msg) + 1, (const uint8_t *)msg);
    if (rc) {
        fprintf(stderr, "send: vsg_send: %s\n", strerror(rc));
        return 1;
    }

    while (sem_wait(&arrived) < 0 && errno == EINTR)
        ;
    char buf[MAX_PACKET_SIZE];
    uint32_t src, dst, len = sizeof(buf) - 1;
    rc = vsg_recv(ctx, &src, &dst, &len, (uint8_t *)buf);
    if (rc) {
        fprintf(stderr, "send: vsg_recv: %s\n", strerror(rc));
        return 1;
    }
    buf[len] = '\0';
    struct timeval tv;
    vsg_gettimeofday(ctx, &tv, NULL);
    char src_str[INET_ADDRSTRLEN], dst_str[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &src, src_str, sizeof(src_str));
    inet_ntop(AF_INET, &dst, dst_str, sizeof(dst_str));
    printf("received from %s to %s at %ld.%06ld s: %s\n", src_str, dst_str, (long)tv.tv_sec,
           (long)tv.tv_usec, buf);
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}
