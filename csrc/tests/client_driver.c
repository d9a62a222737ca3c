/* client_driver: runs the client library under a script, for tests/test_client.py, which plays
 * the coordinator. Every step prints one JSON line on stdout.
 *
 *   client_driver init [vsg options...]          vsg_init only: {"ok": .., "errno": .., "next": ..}
 *   client_driver run SOCKET ADDRESS [-b N] STEP...
 *
 * Steps:
 *   spin:US            read vsg_gettimeofday in a loop until it reaches US microseconds;
 *                      report the largest step between two reads
 *   send:DST:SIZE:US   spin until US, then send SIZE bytes (byte i = i % 251) to DST
 *   sendnow:DST:SIZE   send now
 *   wait:N             wait until N messages in total were announced by recv_cb
 *   recv:BUFSIZE       vsg_recv into a BUFSIZE buffer; report rc, src, len, checksum
 *   poll               vsg_poll's result
 *   time               the current virtual time
 *   mask               block real-time signals (the process back end's deadline signal)
 *   sleep:MS           nanosleep MS milliseconds of real time (deadlines fire meanwhile)
 *   vwait:US|-         vsg_wait for at most US microseconds of simulated time (-: no bound)
 *   stop               vsg_stop
 */
#include <arpa/inet.h>
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tansiv-client.h"

static sem_t arrived;
static volatile int deadlines_seen;

static void on_message(uintptr_t arg)
{
    (void)arg;
    sem_post(&arrived);
}

static void on_deadline(uintptr_t arg, struct timespec deadline)
{
    (void)arg;
    (void)deadline;
    deadlines_seen++;
}

static long long now_us(const struct vsg_context *ctx)
{
    struct timeval tv;
    vsg_gettimeofday(ctx, &tv, NULL);
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case EMSGSIZE: return "EMSGSIZE";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENOTCONN: return "ENOTCONN";
    case EALREADY: return "EALREADY";
    case EPROTO: return "EPROTO";
    case ENOMEM: return "ENOMEM";
    case ECONNABORTED: return "ECONNABORTED";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENOENT: return "ENOENT";
    default: return strerror(e);
    }
}

static long long spin_until(const struct vsg_context *ctx, long long until)
{
    long long prev = now_us(ctx), max_gap = 0;
    while (prev < until) {
        long long t = now_us(ctx);
        if (t - prev > max_gap)
            max_gap = t - prev;
        if (t < prev) {
            printf("{\"op\": \"error\", \"what\": \"time went back\", \"from\": %lld, \"to\": %lld}\n",
                   prev, t);
            exit(3);
        }
        prev = t;
    }
    return max_gap;
}

static int do_init(int argc, const char *const argv[])
{
    int next = -1;
    errno = 0;
    struct vsg_context *ctx = vsg_init(argc, argv, &next, on_message, 0, NULL, 0);
    if (!ctx) {
        printf("{\"ok\": false, \"errno\": \"%s\"}\n", errname(errno));
        return 0;
    }
    printf("{\"ok\": true, \"next\": %d}\n", next);
    vsg_cleanup(ctx);
    return 0;
}

static int do_run(int argc, char **argv)
{
    /* argv: SOCKET ADDRESS [-b N] STEP... */
    const char *vargv[6] = {"-a", argv[0], "-n", argv[1], "-b", "1024"};
    int first_step = 2;
    if (argc > 3 && strcmp(argv[2], "-b") == 0) {
        vargv[5] = argv[3];
        first_step = 4;
    }
    struct vsg_context *ctx = vsg_init(6, vargv, NULL, on_message, 0, on_deadline, 0);
    if (!ctx) {
        printf("{\"op\": \"init\", \"rc\": \"%s\"}\n", errname(errno));
        return 1;
    }
    struct timespec offset;
    int rc = vsg_start(ctx, &offset);
    printf("{\"op\": \"start\", \"rc\": \"%s\"}\n", errname(rc));
    fflush(stdout);
    if (rc)
        return 1;
    int announced = 0;
    for (int i = first_step; i < argc; i++) {
        char *step = argv[i];
        if (strncmp(step, "spin:", 5) == 0) {
            long long gap = spin_until(ctx, atoll(step + 5));
            printf("{\"op\": \"spin\", \"max_gap_us\": %lld, \"vt_us\": %lld}\n", gap, now_us(ctx));
        } else if (strncmp(step, "send:", 5) == 0 || strncmp(step, "sendnow:", 8) == 0) {
            char dst_str[32];
            unsigned size = 0;
            long long at = -1;
            int n = step[4] == ':' ? sscanf(step + 5, "%31[^:]:%u:%lld", dst_str, &size, &at)
                                   : sscanf(step + 8, "%31[^:]:%u", dst_str, &size);
            struct in_addr dst;
            if (n < 2 || inet_pton(AF_INET, dst_str, &dst) != 1) {
                fprintf(stderr, "bad step %s\n", step);
                return 2;
            }
            if (at >= 0)
                spin_until(ctx, at);
            uint8_t *buf = malloc(size + 1);
            for (unsigned k = 0; k < size; k++)
                buf[k] = (uint8_t)(k % 251);
            long long before = now_us(ctx);
            rc = vsg_send(ctx, dst.s_addr, size, buf);
            free(buf);
            printf("{\"op\": \"send\", \"rc\": \"%s\", \"vt_us\": %lld}\n", errname(rc), before);
        } else if (strncmp(step, "wait:", 5) == 0) {
            int want = atoi(step + 5);
            while (announced < want) {
                if (sem_wait(&arrived) == 0)
                    announced++;
                else if (errno != EINTR)
                    return 4;
            }
            printf("{\"op\": \"wait\", \"vt_us\": %lld}\n", now_us(ctx));
        } else if (strncmp(step, "recv:", 5) == 0) {
            uint32_t cap = (uint32_t)atoi(step + 5), len = cap, src = 0, dst = 0;
            uint8_t *buf = malloc(cap + 1);
            rc = vsg_recv(ctx, &src, &dst, &len, buf);
            unsigned long sum = 0;
            if (rc == 0)
                for (uint32_t k = 0; k < len; k++)
                    sum = sum * 31 + buf[k];
            char s[INET_ADDRSTRLEN] = "", d[INET_ADDRSTRLEN] = "";
            inet_ntop(AF_INET, &src, s, sizeof(s));
            inet_ntop(AF_INET, &dst, d, sizeof(d));
            printf("{\"op\": \"recv\", \"rc\": \"%s\", \"src\": \"%s\", \"dst\": \"%s\", "
                   "\"len\": %u, \"sum\": %lu, \"vt_us\": %lld}\n",
                   errname(rc), s, d, rc ? 0 : len, sum, now_us(ctx));
            free(buf);
        } else if (strcmp(step, "poll") == 0) {
            printf("{\"op\": \"poll\", \"rc\": \"%s\"}\n", errname(vsg_poll(ctx)));
        } else if (strcmp(step, "time") == 0) {
            printf("{\"op\": \"time\", \"vt_us\": %lld, \"deadlines\": %d}\n", now_us(ctx),
                   deadlines_seen);
        } else if (strcmp(step, "mask") == 0) {
            sigset_t set;
            sigemptyset(&set);
            for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
                sigaddset(&set, sig);
            sigprocmask(SIG_BLOCK, &set, NULL);
            printf("{\"op\": \"mask\"}\n");
        } else if (strncmp(step, "sleep:", 6) == 0) {
            long ms = atol(step + 6);
            struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
            printf("{\"op\": \"sleep\", \"vt_us\": %lld}\n", now_us(ctx));
        } else if (strncmp(step, "vwait:", 6) == 0) {
            long long us = atoll(step + 6);
            struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
            int rc = vsg_wait(ctx, strcmp(step + 6, "-") == 0 ? NULL : &ts);
            printf("{\"op\": \"vwait\", \"rc\": \"%s\", \"vt_us\": %lld}\n", errname(rc),
                   now_us(ctx));
        } else if (strcmp(step, "stop") == 0) {
            printf("{\"op\": \"stop\", \"rc\": \"%s\"}\n", errname(vsg_stop(ctx)));
        } else {
            fprintf(stderr, "unknown step %s\n", step);
            return 2;
        }
        fflush(stdout);
    }
    vsg_cleanup(ctx);
    printf("{\"op\": \"exit\"}\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    sem_init(&arrived, 0, 0);
    if (argc >= 2 && strcmp(argv[1], "init") == 0)
        return do_init(argc - 2, (const char *const *)argv + 2);
    if (argc >= 4 && strcmp(argv[1], "run") == 0)
        return do_run(argc - 2, argv + 2);
    fprintf(stderr, "usage: client_driver init [options] | run SOCKET ADDRESS [-b N] STEP...\n");
    return 2;
}
