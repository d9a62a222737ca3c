/* tping: ICMP echo round-trip times in nanoseconds, one JSON line per probe.
 *
 *   tping [-c COUNT] [-i INTERVAL_MS] [-s SIZE] [-w WARMUP] [-W TIMEOUT_MS] PEER...
 *
 * Peers are probed one after the other, COUNT times each (after WARMUP probes reported with
 * "warmup": true), one probe at a time. The round trip is measured with CLOCK_MONOTONIC
 * around sendto and the matching reply. Exit status 3 if a probe past the warmup got no reply
 * (warmup probes absorb a start: a peer still booting, in real time, under netem). Needs a raw
 * socket (root). Static, for the guest. */
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

/* Waits for the echo reply (id, seq) from peer; its arrival time, or 0 on timeout. */
static uint64_t wait_reply(int fd, struct in_addr peer, uint16_t id, uint16_t seq,
                           uint64_t deadline)
{
    uint8_t buf[65536];
    for (;;) {
        uint64_t now = now_ns();
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
        if (len < (ssize_t)sizeof(struct ip) || from.sin_addr.s_addr != peer.s_addr)
            continue;
        const struct ip *iph = (const struct ip *)buf;
        size_t hl = (size_t)iph->ip_hl * 4;
        if ((size_t)len < hl + sizeof(struct icmphdr))
            continue;
        const struct icmphdr *icmp = (const struct icmphdr *)(buf + hl);
        if (icmp->type == ICMP_ECHOREPLY && ntohs(icmp->un.echo.id) == id &&
            ntohs(icmp->un.echo.sequence) == seq)
            return at;
    }
}

int main(int argc, char **argv)
{
    int count = 10, warmup = 1, opt;
    uint64_t interval = 100, timeout = 2000;
    size_t size = 56;
    while ((opt = getopt(argc, argv, "c:i:s:w:W:")) != -1) {
        switch (opt) {
        case 'c': count = atoi(optarg); break;
        case 'i': interval = strtoull(optarg, NULL, 10); break;
        case 's': size = strtoul(optarg, NULL, 10); break;
        case 'w': warmup = atoi(optarg); break;
        case 'W': timeout = strtoull(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: tping [-c N] [-i MS] [-s SIZE] [-w WARMUP] [-W MS] PEER...\n");
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
    uint16_t id = (uint16_t)getpid();
    uint8_t *pkt = calloc(1, sizeof(struct icmphdr) + size);
    int lost = 0;
    for (int p = optind; p < argc; p++) {
        struct sockaddr_in to = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, argv[p], &to.sin_addr) != 1) {
            fprintf(stderr, "tping: bad address %s\n", argv[p]);
            return 2;
        }
        for (int k = 0; k < warmup + count; k++) {
            uint16_t seq = (uint16_t)(k + 1);
            struct icmphdr *icmp = (struct icmphdr *)pkt;
            memset(pkt, 0, sizeof(*icmp));
            for (size_t b = 0; b < size; b++)
                pkt[sizeof(*icmp) + b] = (uint8_t)b;
            icmp->type = ICMP_ECHO;
            icmp->un.echo.id = htons(id);
            icmp->un.echo.sequence = htons(seq);
            icmp->checksum = checksum(pkt, sizeof(*icmp) + size);
            uint64_t sent = now_ns();
            if (sendto(fd, pkt, sizeof(*icmp) + size, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
                perror("tping: sendto");
                return 1;
            }
            uint64_t got = wait_reply(fd, to.sin_addr, id, seq, sent + timeout * 1000000u);
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
    free(pkt);
    return lost ? 3 : 0;
}
