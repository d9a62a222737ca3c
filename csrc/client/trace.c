#include "trace.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TSV_TRACE_BUFFER 65536
#define LINE_MAX_BYTES (5 * 21)

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tsv_trace_open(struct tsv_trace *t, uint32_t address)
{
    const char *folder = getenv("TANSIV_TRACE");
    t->fd = -1;
    if (!folder || !*folder)
        return;
    char ip[INET_ADDRSTRLEN], path[4096];
    struct in_addr a = {.s_addr = address};
    inet_ntop(AF_INET, &a, ip, sizeof(ip));
    snprintf(path, sizeof(path), "%s/%s.trace", folder, ip);
    t->buf = malloc(TSV_TRACE_BUFFER);
    t->len = 0;
    if (t->buf)
        t->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static void flush(struct tsv_trace *t)
{
    size_t done = 0;
    while (done < t->len) {
        ssize_t n = write(t->fd, t->buf + done, t->len - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    t->len = 0;
}

void tsv_trace_reached(struct tsv_trace *t)
{
    if (t->fd >= 0)
        t->reached = monotonic_ns();
}

void tsv_trace_sent(struct tsv_trace *t)
{
    if (t->fd >= 0)
        t->sent = monotonic_ns();
}

/* Decimal digits of v, before end; returns where they start (no stdio: signal handler). */
static char *digits(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

void tsv_trace_resumed(struct tsv_trace *t, uint64_t deadline, uint64_t work)
{
    if (t->fd < 0)
        return;
    uint64_t fields[] = {deadline, t->reached, t->sent, monotonic_ns(), work};
    char line[LINE_MAX_BYTES], *p = line + sizeof(line);
    *--p = '\n';
    for (int i = 4; i >= 0; i--) {
        p = digits(p, fields[i]);
        if (i)
            *--p = ' ';
    }
    size_t n = (size_t)(line + sizeof(line) - p);
    if (t->len + n > TSV_TRACE_BUFFER)
        flush(t);
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

void tsv_trace_close(struct tsv_trace *t)
{
    if (t->fd >= 0) {
        flush(t);
        close(t->fd);
    }
    free(t->buf);
    t->buf = NULL;
    t->fd = -1;
}
