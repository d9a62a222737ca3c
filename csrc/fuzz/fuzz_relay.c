/* libFuzzer harness: a relay (relay.c) fed by a hostile coordinator.
 *
 * An input is what the coordinator's end of the relay's connection sends, after one control
 * byte: [0] % 3 participants (raw clients of the harness) say HELLO to the relay's local hub
 * first, so that GOTO, DELIVER and GONE reach them; [0] bit 2: the stream starts with the
 * handshake's frames (CHALLENGE, WELCOME: relay.c's handshake reads them). The stream is
 * then closed; the relay serves until it says END or fails. Whatever it gets, it must not crash, leak (ASan) or
 * hang, and its local hub must hold no payload at the end. */

/* The relay's own file, to give it a connection without a listening coordinator. */
#include "relay.c"

#include <sys/un.h>

static char path[108];

static int hello(int addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
        abort();
    struct tsv_hello h = {.magic = TSV_MAGIC, .version = TSV_VERSION,
                          .role = TSV_ROLE_PROCESS, .pid = 1};
    uint8_t frame[TSV_HEADER_SIZE + sizeof(h)];
    size_t n = tsv_frame_put(frame, TSV_HELLO, 0, 0, (uint32_t)addr, 0, &h, sizeof(h));
    if (tsv_write_all(fd, frame, n))
        abort();
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int members = data[0] % 3, handshaking = data[0] & 4;
    data++, size--;
    if (!path[0])
        snprintf(path, sizeof(path), "/tmp/tansiv-fuzz-relay-%d.sock", (int)getpid());
    unlink(path);
    char err[256];
    struct tsv_hub *local = tsv_hub_new(path, err, sizeof(err));
    if (!local)
        abort();
    int clients[2];
    for (int i = 0; i < members; i++)
        clients[i] = hello(0x0200000a + (i << 24));
    if (members && tsv_hub_accept(local, members, 1000) != members)
        abort();
    /* Raw clients never answer: a GOTO's local round would wait for them. They leave at
     * once, so that every round ends (with their GONEs). */
    for (int i = 0; i < members; i++)
        close(clients[i]);

    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair))
        abort();
    struct tsv_relay *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->local = local;
    r->fd = pair[0];
    /* What the coordinator says, then it is gone; the relay's answers are drained. */
    if (size && send(pair[1], data, size < 65536 ? size : 65536, MSG_NOSIGNAL) < 0)
        abort();
    shutdown(pair[1], SHUT_WR);
    static const uint8_t secret[TSV_SECRET_SIZE] = {1, 2, 3};
    int rc = handshaking ? handshake(r, secret) : 0;
    for (int turns = 0; rc == 0 && turns < 64; turns++) {
        rc = tsv_relay_serve(r, 0);
        char sink[4096];
        while (recv(pair[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
            ;
    }
    if (tsv_hub_payloads_held(local) != 0)
        abort();
    tsv_relay_free(r);
    close(pair[1]);
    tsv_hub_free(local);
    return 0;
}
