/* libFuzzer harness: the hub's side of the wire, fed by a hostile participant.
 *
 * An input is a connection's byte stream, after two control bytes:
 *   [0] bit 0: a valid HELLO goes first (to reach the frames after it)
 *       bit 1: then a round starts (SEND and AT_DEADLINE are then in phase)
 *       bit 2: the connection asks for a shared-memory channel in that HELLO
 *       bit 3: the HELLO is a relay's (its MEMBERs, SENDs and GONEs follow: relayconn.c), with
 *              one member, 10.0.0.2, when a round starts
 *       bit 4: over TCP: the hub has a secret and sends a CHALLENGE, which that HELLO answers
 *              with a valid proof (auth.c); without bit 0 the stream answers it
 *   [1] the stream is written in chunks of ([1] % 17) + 1 bytes, the hub's loop turning once
 *       between chunks (frames split anywhere), and the connection is closed at the end
 *       (mid-frame, often).
 * The hub must stay consistent: every packet it reports has its payload, and freeing it
 * leaks nothing (ASan). */

/* The hub's internals, for hub_poll(): the harness turns the hub's loop one turn at a time,
 * in every phase. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "hub-internal.h"
#include "transport.h"

static char path[108];

/* Writes without blocking: a hub that stopped reading (the connection failed) must not hang
 * the harness. -1 when it takes no more. */
static int put(struct tsv_hub *hub, int fd, const uint8_t *p, size_t n)
{
    for (int tries = 0; n > 0 && tries < 4;) {
        ssize_t k = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0) {
            if (errno != EAGAIN)
                return -1;
            hub_poll(hub, 0);
            tries++;
            continue;
        }
        p += k, n -= (size_t)k;
    }
    return n ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0], chunk = (uint8_t)(data[1] % 17 + 1);
    data += 2, size -= 2;
    if (!path[0])
        snprintf(path, sizeof(path), "/tmp/tansiv-fuzz-hub-%d.sock", (int)getpid());
    unlink(path);
    char err[256];
    int tcp = (mode & 16) != 0;
    struct tsv_hub *hub = tsv_hub_new(tcp ? "tcp:127.0.0.1:0" : path, err, sizeof(err));
    if (!hub)
        abort();
    if (mode & 4)
        tsv_hub_channels(hub, 128 << 10);
    static const uint8_t secret[TSV_SECRET_SIZE] = {1, 2, 3};
    uint8_t challenge[TSV_HEADER_SIZE + TSV_NONCE_SIZE];
    int fd;
    if (tcp) {
        tsv_hub_set_secret(hub, secret);
        fd = tsv_connect(tsv_hub_address(hub), err, sizeof(err));
        hub_poll(hub, 0); /* accepts: its CHALLENGE */
        if (fd < 0 || recv(fd, challenge, sizeof(challenge), MSG_WAITALL) != sizeof(challenge))
            abort();
    } else {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
            abort();
    }
    if (mode & 1) {
        int relay = (mode & 8) != 0;
        struct tsv_hello hello = {.magic = TSV_MAGIC, .version = TSV_VERSION,
                                  .role = relay ? TSV_ROLE_RELAY : TSV_ROLE_PROCESS, .pid = 1};
        if (tcp)
            tsv_auth_hello_proof(secret, challenge + TSV_HEADER_SIZE, hello.nonce, 0x0100000a,
                                 hello.role, hello.proof);
        struct tsv_member member = {.pid = 2, .role = TSV_ROLE_PROCESS};
        uint8_t frame[2 * TSV_HEADER_SIZE + sizeof(hello) + sizeof(member)];
        size_t n = tsv_frame_put(frame, TSV_HELLO, mode & 4 ? TSV_HELLO_CHANNEL : 0, 0,
                                 0x0100000a, 0, &hello, sizeof(hello));
        if (relay && (mode & 2))
            n += tsv_frame_put(frame + n, TSV_MEMBER, 0, 0, 0x0200000a, 0, &member,
                               sizeof(member));
        put(hub, fd, frame, n);
        if (tsv_hub_accept(hub, 1, 100) == 1 && (mode & 2))
            tsv_hub_goto(hub, 1000000);
    }
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (put(hub, fd, data + off, n))
            break;
        hub_poll(hub, 0);
    }
    close(fd);
    hub_poll(hub, 0);
    hub_poll(hub, 0);
    struct tsv_hub_event ev;
    while (tsv_hub_next_event(hub, &ev))
        ;
    if (hub->waiting == 0 && hub->deadline)
        hub_end_round(hub); /* the round ended: its packets, sorted */
    int count = tsv_hub_packet_count(hub);
    const struct tsv_hub_packet *p = tsv_hub_packets(hub);
    for (int i = 0; i < count; i++) {
        uint32_t len;
        if (!tsv_hub_payload(hub, p[i].handle, &len) || len != p[i].size)
            abort();
        tsv_hub_drop(hub, p[i].handle);
    }
    if (tsv_hub_payloads_held(hub) != 0)
        abort();
    tsv_hub_free(hub);
    return 0;
}
