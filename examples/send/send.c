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

#include <tansiv-client.h>

static sem_t arrived;

static void on_message(uintptr_t arg)
{
    (void)arg;
    sem_post(&arrived);
}

int main(int argc, char *argv[])
{
    if (argc < 2) {
        fprintf(stderr, "usage: send SOCKET [vsg options] -- PEER\n");
        return 2;
    }
    const char **vsg_argv = calloc((size_t)argc + 1, sizeof(*vsg_argv));
    vsg_argv[0] = "-a";
    vsg_argv[1] = argv[1];
    for (int i = 2; i < argc; i++)
        vsg_argv[i] = argv[i];
    int next = 0;
    sem_init(&arrived, 0, 0);
    struct vsg_context *ctx = vsg_init(argc, vsg_argv, &next, on_message, 0, NULL, 0);
    struct in_addr peer;
    if (!ctx || next >= argc || inet_pton(AF_INET, vsg_argv[next], &peer) != 1) {
        fprintf(stderr, "send: expected [vsg options] -- PEER\n");
        return 2;
    }
    int rc = vsg_start(ctx, NULL);
    if (rc) {
        fprintf(stderr, "send: vsg_start: %s\n", strerror(rc));
        return 1;
    }

    char msg[64];
    snprintf(msg, sizeof(msg), "hello from pid %d", (int)getpid());
    rc = vsg_send(ctx, peer.s_addr, (uint32_t)strlen(msg) + 1, (const uint8_t *)msg);
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
    free(vsg_argv);
    return 0;
}
