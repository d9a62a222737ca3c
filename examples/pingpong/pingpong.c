/* pingpong: COUNT round trips of SIZE-byte messages between two participants, each timed
 * with vsg_gettimeofday (simulated time) and printed as one JSON line.
 *
 *   pingpong SOCKET [vsg options] -- client PEER [COUNT [SIZE]]
 *   pingpong SOCKET [vsg options] -- server PEER [COUNT]
 *
 * tansiv run passes the coordinator's SOCKET first; the vsg options (at least -n ADDRESS) come
 * from the deployment. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vsg-program.h>

static void die(const char *what, int err)
{
    fprintf(stderr, "pingpong: %s: %s\n", what, err ? strerror(err) : "failed");
    exit(1);
}

/* vsg_wait, not a semaphore posted by the receive callback: the coordinator then knows this
 * participant does nothing until a message comes (idle horizons). */
static void wait_message(const struct vsg_context *ctx, uint8_t *buf, uint32_t *len, int seq,
                         int count)
{
    int rc = vsg_wait(ctx, NULL);
    if (rc == EPIPE) { /* the simulation ended (--until, --main): not this program's failure */
        fprintf(stderr, "pingpong: the simulation ended before message %d of %d\n", seq, count);
        exit(0);
    }
    if (rc)
        die("vsg_wait", rc);
    rc = vsg_recv(ctx, NULL, NULL, len, buf);
    if (rc)
        die("vsg_recv", rc);
}

int main(int argc, char *argv[])
{
    struct vsg_program_args args;
    struct vsg_context *ctx = vsg_program_init(
        argc, argv, "pingpong SOCKET [vsg options] -- client|server PEER [COUNT [SIZE]]",
        NULL, &args);
    if (!ctx)
        die("vsg_init", errno);
    if (args.argc < 2) {
        fprintf(stderr, "pingpong: expected client|server PEER after --\n");
        return 2;
    }
    const char *role = args.argv[0];
    const char *peer_str = args.argv[1];
    int count = args.argc > 2 ? atoi(args.argv[2]) : 10;
    uint32_t size = args.argc > 3 ? (uint32_t)atoi(args.argv[3]) : 1000;
    struct in_addr peer;
    if (inet_pton(AF_INET, peer_str, &peer) != 1) {
        fprintf(stderr, "pingpong: bad peer address '%s'\n", peer_str);
        return 2;
    }
    if (count <= 0 || size > MAX_PACKET_SIZE) {
        fprintf(stderr, "pingpong: COUNT must be > 0 and SIZE <= %d\n", MAX_PACKET_SIZE);
        return 2;
    }
    int is_client = strcmp(role, "client") == 0;
    if (!is_client && strcmp(role, "server") != 0) {
        fprintf(stderr, "pingpong: role must be client or server, not '%s'\n", role);
        return 2;
    }

    vsg_program_start(ctx, "pingpong");

    uint8_t buf[MAX_PACKET_SIZE];
    for (int seq = 1; seq <= count; seq++) {
        if (is_client) {
            memset(buf, seq & 0xff, size);
            long long t0 = vsg_program_now_us(ctx);
            int rc = vsg_send(ctx, peer.s_addr, size, buf);
            if (rc)
                die("vsg_send", rc);
            uint32_t len = sizeof(buf);
            wait_message(ctx, buf, &len, seq, count);
            long long t1 = vsg_program_now_us(ctx);
            printf("{\"event\": \"rtt\", \"seq\": %d, \"size\": %u, \"peer\": \"%s\", "
                   "\"send_us\": %lld, \"rtt_us\": %lld}\n",
                   seq, size, peer_str, t0, t1 - t0);
            fflush(stdout);
        } else {
            uint32_t len = sizeof(buf);
            wait_message(ctx, buf, &len, seq, count);
            int rc = vsg_send(ctx, peer.s_addr, len, buf);
            if (rc)
                die("vsg_send", rc);
        }
    }
    vsg_stop(ctx);
    vsg_cleanup(ctx);
    return 0;
}
