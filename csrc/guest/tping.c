/* tping: ICMP echo round-trip times in nanoseconds, one JSON line per probe.
 *
 *   tping [-c COUNT] [-i INTERVAL_MS] [-s SIZE] [-w WARMUP] [-W TIMEOUT_MS] [-u UP_MS]
 *         [-a WAIT_MS] PEER...
 *
 * Peers are probed one after the other, COUNT times each (after WARMUP probes reported with
 * "warmup": true), one probe at a time. The round trip is measured with CLOCK_MONOTONIC
 * around sendto and the matching reply.
 *
 * Barriers, for VMs that run in real time, each at its own pace (netem): with -u, each peer
 * is first probed (sequence 0, not reported) until it answers, for at most UP_MS, so that a
 * peer still starting is waited for rather than counted lost; with -a, tping then stays (and
 * its guest up, answering) until every peer's own last probe to it has arrived (sequence
 * WARMUP + COUNT: the peers run the same tping), for at most WAIT_MS: a mesh's end.
 *
 * Exit status 3 if a probe past the warmup got no reply (warmup probes absorb a start).
 * Needs a raw socket (root). Static, for the guest. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint16_t checksum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (; len > 1; p += 2, len -= 2)
        sum += (uint32_t)(p[0] << 8 | p[1]);
    if (len)
        sum += (uint32_t)(p[0] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static void sleep_ns(uint64_t d)
{
    struct timespec ts = {.tv_sec = (time_t)(d / 1000000000u), .tv_nsec = (long)(d % 1000000000u)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The peers, and the highest echo-request sequence number each has sent us (for -a). */
static struct in_addr *peers;
static uint16_t *heard;
static int npeers;

static int all_heard(int last)
{
    for (int i = 0; i < npeers; i++)
        if (heard[i] < last)
            return 0;
    return 1;
}

/* Reads ICMP messages until the deadline. With a probe (peer, id, seq): until its echo reply,
 * and returns its arrival time. Without (peer NULL): until every peer's echo request `last`
 * has arrived, and returns the time it did. 0 at the deadline. Echo requests are noted either
 * way (the kernel answers them; a raw socket sees a copy). */
static uint64_t wait_icmp(int fd, const struct in_addr *peer, uint16_t id, uint16_t seq,
                          int last, uint64_t deadline)
{
    uint8_t buf[65536];
    for (;;) {
        uint64_t now = now_ns();
        if (!peer && all_heard(last))
            return now;
        if (now >= deadline)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
        if (n <= 0)
            continue;
        struct sockaddr_in from;
        socklen_t fromlen = sizeof(from);
        ssize_t len = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
        uint64_t at = now_ns();
        if (len < (ssize_t)sizeof(struct ip))
            continue;
        size_t hl = (size_t)((const struct ip *)buf)->ip_hl * 4;
        if (hl < sizeof(struct ip) || (size_t)len < hl + sizeof(struct icmphdr))
            continue;
        const struct icmphdr *icmp = (const struct icmphdr *)(buf + hl);
        for (int i = 0; i < npeers; i++)
            if (icmp->type == ICMP_ECHO && peers[i].s_addr == from.sin_addr.s_addr &&
                ntohs(icmp->un.echo.sequence) > heard[i])
                heard[i] = ntohs(icmp->un.echo.sequence);
        if (peer && from.sin_addr.s_addr == peer->s_addr && icmp->type == ICMP_ECHOREPLY &&
            ntohs(icmp->un.echo.id) == id && ntohs(icmp->un.echo.sequence) == seq)
            return at;
    }
}

/* Sends echo request (id, seq) of size payload bytes to a peer; the time it left, 0 on error. */
static uint64_t probe(int fd, uint8_t *pkt, size_t size, const struct sockaddr_in *to,
                      uint16_t id, uint16_t seq)
{
    struct icmphdr *icmp = (struct icmphdr *)pkt;
    memset(pkt, 0, sizeof(*icmp));
    for (size_t b = 0; b < size; b++)
        pkt[sizeof(*icmp) + b] = (uint8_t)b;
    icmp->type = ICMP_ECHO;
    icmp->un.echo.id = htons(id);
    icmp->un.echo.sequence = htons(seq);
    icmp->checksum = checksum(pkt, sizeof(*icmp) + size);
    uint64_t sent = now_ns();
    if (sendto(fd, pkt, sizeof(*icmp) + size, 0, (const struct sockaddr *)to, sizeof(*to)) < 0) {
        perror("tping: sendto");
        return 0;
    }
    return sent;
}

int main(int argc, char **argv)
{
    int count = 10, warmup = 1, opt;
    uint64_t interval = 100, timeout = 2000, stay = 0, up = 0;
    size_t size = 56;
    while ((opt = getopt(argc, argv, "c:i:s:w:W:a:u:")) != -1) {
        switch (opt) {
        case 'c': count = atoi(optarg); break;
        case 'i': interval = strtoull(optarg, NULL, 10); break;
        case 's': size = strtoul(optarg, NULL, 10); break;
        case 'w': warmup = atoi(optarg); break;
        case 'W': timeout = strtoull(optarg, NULL, 10); break;
        case 'a': stay = strtoull(optarg, NULL, 10); break;
        case 'u': up = strtoull(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: tping [-c N] [-i MS] [-s SIZE] [-w WARMUP] [-W MS] [-u MS] "
                            "[-a MS] PEER...\n");
            return 2;
        }
    }
    if (optind >= argc || count < 1 || warmup < 0 || size < 8 || size > 65000) {
        fprintf(stderr, "tping: need PEER...; -c >= 1, -w >= 0, 8 <= -s <= 65000\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd < 0) {
        perror("tping: raw socket");
        return 1;
    }
    npeers = argc - optind;
    peers = calloc((size_t)npeers, sizeof(*peers));
    heard = calloc((size_t)npeers, sizeof(*heard));
    for (int i = 0; i < npeers; i++)
        if (inet_pton(AF_INET, argv[optind + i], &peers[i]) != 1) {
            fprintf(stderr, "tping: bad address %s\n", argv[optind + i]);
            return 2;
        }
    uint16_t id = (uint16_t)getpid();
    uint8_t *pkt = calloc(1, sizeof(struct icmphdr) + size);
    int lost = 0;
    for (int p = optind; p < argc; p++) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = peers[p - optind]};
        for (uint64_t until = now_ns() + up * 1000000u; up && now_ns() < until;) {
            if (!probe(fd, pkt, size, &to, id, 0))
                return 1;
            if (wait_icmp(fd, &to.sin_addr, id, 0, 0, now_ns() + 1000000000u))
                break;
        }
        for (int k = 0; k < warmup + count; k++) {
            uint16_t seq = (uint16_t)(k + 1);
            uint64_t sent = probe(fd, pkt, size, &to, id, seq);
            if (!sent)
                return 1;
            uint64_t got = wait_icmp(fd, &to.sin_addr, id, seq, 0, sent + timeout * 1000000u);
            if (got)
                printf("{\"event\": \"rtt\", \"peer\": \"%s\", \"seq\": %u, \"size\": %zu, "
                       "\"rtt_ns\": %llu, \"warmup\": %s}\n", argv[p], seq, size,
                       (unsigned long long)(got - sent), k < warmup ? "true" : "false");
            else {
                printf("{\"event\": \"lost\", \"peer\": \"%s\", \"seq\": %u, \"size\": %zu, "
                       "\"warmup\": %s}\n", argv[p], seq, size, k < warmup ? "true" : "false");
                lost += k >= warmup;
            }
            fflush(stdout);
            uint64_t next = sent + interval * 1000000u;
            if (now_ns() < next)
                sleep_ns(next - now_ns());
        }
    }
    /* A peer that has not sent us its last probe yet is answered until it has (or WAIT_MS). */
    if (stay && !wait_icmp(fd, NULL, 0, 0, warmup + count, now_ns() + stay * 1000000u))
        fprintf(stderr, "tping: -a: not every peer's last probe arrived within %llu ms\n",
                (unsigned long long)stay);
    free(pkt);
    return lost ? 3 : 0;
}
