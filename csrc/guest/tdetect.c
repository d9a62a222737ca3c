/* tdetect: a timing-detection battery. The techniques sandbox-evasion code uses to tell it is
 * observed by watching how time advances, each printing its raw readings as one JSON line
 * {"event": "detect", "technique": ...} (no verdicts; same keys in the same order every run),
 * or an "absent" reason where it cannot run; then {"event": "detect_done", ...}.
 *
 *   tdetect [--peer ADDR] [--reps N] [--quick]
 *   tdetect --serve
 *
 * In order: environment (clocksource, CPUID hypervisor bit and vendor, TSC flags); the cost of
 * rdtsc, rdtscp and cpuid (which traps to a hypervisor); tsc_rate (the TSC against four
 * clocks); rtc (TSC and CLOCK_MONOTONIC across RTC seconds); acpi_pm and hpet (hardware
 * counters against both); sleep (seven primitives, measured by CLOCK_MONOTONIC and the TSC);
 * cpu_work (a loop of known instruction count); clock_gaps (steps between consecutive reads);
 * then against the --peer: icmp_rtt and udp_rtt (round trips, a local 100 us timer counted
 * during each) and tcp_timestamps (the peer's TCP TSval clock against ours). --reps N
 * repetitions of each measurement (default 20); --quick shortens the windows, for tests.
 * --serve is the peer: UDP and TCP echo on port 7007, until killed. Static, for the guest. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <linux/rtc.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define PORT 7007
#define ECHO_ID 0x7464          /* ICMP id, and the mark of our UDP probes */
#define TIMEOUT_NS 1000000000u /* for a network reply */

static int reps = 20, quick, has_peer, techniques;
static struct in_addr peer;
static uint64_t window_ns = 10000000; /* rate measurements; 2 ms with --quick */
static double tsc_per_ns;             /* the TSC against CLOCK_MONOTONIC, from tsc_rate */

static uint64_t ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timespec to_ts(uint64_t t)
{
    return (struct timespec){(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
}

static void sleep_ns(uint64_t d)
{
    struct timespec ts = to_ts(d);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t tsc_to_ns(uint64_t ticks)
{
    return tsc_per_ns > 0 ? (uint64_t)((double)ticks / tsc_per_ns + 0.5) : 0;
}

/* ---- Output: one line per technique, flushed at once (the host reads it live). ---- */

static void json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f) /* bytes, maybe not UTF-8: escaped, the line stays JSON */
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void begin(const char *name)
{
    printf("{\"event\": \"detect\", \"technique\": \"%s\"", name);
}

static int end(void)
{
    printf("}\n");
    fflush(stdout);
    techniques++;
    return 0;
}

static int absent(const char *name, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    begin(name);
    printf(", \"absent\": ");
    json_str(why, strlen(why));
    return end();
}

/* For a failed call: "what: strerror(errno)". */
static int absent_errno(const char *name, const char *what)
{
    return absent(name, "%s: %s", what, strerror(errno));
}

/* ---- Statistics ---- */

struct stats {
    uint64_t min, median, max;
    double mean, cv; /* cv: standard deviation / mean */
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v. sqrtsd rather than libm's sqrt: no -lm. */
static struct stats stats_u64(uint64_t *v, size_t n)
{
    double mean = 0, sq = 0, sd;
    for (size_t i = 0; i < n; i++)
        mean += (double)v[i] / (double)n;
    for (size_t i = 0; i < n; i++)
        sq += ((double)v[i] - mean) * ((double)v[i] - mean) / (double)n;
    __asm__("sqrtsd %1, %0" : "=x"(sd) : "x"(sq));
    qsort(v, n, sizeof(*v), cmp_u64);
    return (struct stats){v[0], v[n / 2], v[n - 1], mean, mean > 0 ? sd / mean : 0};
}

static void print_stats(const char *key, const struct stats *s, int with_cv)
{
    printf(", \"%s\": {\"min\": %" PRIu64 ", \"median\": %" PRIu64 ", \"max\": %" PRIu64
           ", \"mean\": %.10g",
           key, s->min, s->median, s->max, s->mean);
    if (with_cv)
        printf(", \"cv\": %.6g", s->cv);
    printf("}");
}

/* A series of rates: its mean (times scale) and relative spread (max - min) / mean. */
static void print_series(const char *key, const double *v, int n, double scale)
{
    double sum = 0, lo = v[0], hi = v[0];
    for (int i = 0; i < n; i++) {
        sum += v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    printf(", \"%s\": {\"mean\": %.10g, \"spread\": %.6g}", key, sum / n * scale,
           sum != 0 ? (hi - lo) / (sum / n) : 0);
}

/* Per-probe values; null where have[i] is 0 (a lost probe). */
static void print_array(const char *key, const uint64_t *v, const uint64_t *have, int n)
{
    printf(", \"%s\": [", key);
    for (int i = 0; i < n; i++)
        printf(have[i] ? "%s%" PRIu64 : "%snull", i ? ", " : "", v[i]);
    printf("]");
}

/* ---- 1. environment ---- */

/* The first line of path (the first starting with prefix, if any), without its newline. */
static void read_line(const char *path, const char *prefix, char *buf, int size)
{
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    while (f && fgets(buf, size, f) && prefix && strncmp(buf, prefix, strlen(prefix)) != 0)
        buf[0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    if (f)
        fclose(f);
}

static int has_word(const char *line, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = line; (p = strstr(p, word)); p += n)
        if ((p == line || p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || !p[n]))
            return 1;
    return 0;
}

static int environment(void)
{
    static const char *const flags[] = {"constant_tsc", "nonstop_tsc", "tsc_known_freq", "rdtscp"};
    char cur[256], avail[256], cpuinfo[8192], vendor[12] = {0};
    unsigned a = 0, b = 0, c = 0, d = 0;
    read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", NULL, cur, 256);
    read_line("/sys/devices/system/clocksource/clocksource0/available_clocksource", NULL, avail,
              256);
    read_line("/proc/cpuinfo", "flags", cpuinfo, sizeof(cpuinfo));
    __get_cpuid(1, &a, &b, &c, &d);
    int hv = (int)(c >> 31);
    if (hv) { /* the hypervisor's leaves: beyond __get_cpuid's range check */
        __cpuid(0x40000000, a, b, c, d);
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &c, 4);
        memcpy(vendor + 8, &d, 4);
    }
    begin("environment");
    printf(", \"clocksource\": ");
    json_str(cur, strlen(cur));
    printf(", \"available_clocksource\": ");
    json_str(avail, strlen(avail));
    printf(", \"hypervisor\": %d, \"hypervisor_vendor\": ", hv);
    json_str(vendor, hv ? 12 : 0);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        printf(", \"%s\": %d", flags[i], has_word(cpuinfo, flags[i]));
    return end();
}

/* ---- 2-4. rdtsc, rdtscp, cpuid: what one instruction costs, in TSC ticks ---- */

enum insn { RDTSC, RDTSCP, CPUID };
#define INSN_N 1000

static int insn_cost(const char *name, enum insn insn)
{
    uint64_t v[INSN_N], prev;
    unsigned a, b, c, d, aux;
    if (insn == RDTSCP && (!__get_cpuid(0x80000001, &a, &b, &c, &d) || !(d & 1u << 27)))
        return absent(name, "no RDTSCP (CPUID 0x80000001 EDX bit 27)");
    prev = insn == RDTSCP ? __rdtscp(&aux) : __rdtsc();
    for (int i = 0; i < INSN_N; i++) {
        uint64_t t;
        if (insn == RDTSC) /* back to back: each read times the one before */
            t = __rdtsc();
        else if (insn == RDTSCP)
            t = __rdtscp(&aux);
        else { /* a VM exit under hardware virtualization */
            prev = __rdtsc();
            __cpuid(0, a, b, c, d);
            t = __rdtsc();
        }
        v[i] = t - prev;
        prev = t;
    }
    struct stats s = stats_u64(v, INSN_N);
    begin(name);
    printf(", \"n\": %d", INSN_N);
    print_stats("ticks", &s, 0);
    return end();
}

/* ---- 5. tsc_rate: TSC ticks per ns of four clocks, window by window ---- */

static int tsc_rate(void)
{
    static const clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME,
                                       CLOCK_BOOTTIME};
    static const char *const names[] = {"monotonic", "monotonic_raw", "realtime", "boottime"};
    enum { K = 4 };
    double *rate = malloc(sizeof(double) * K * (size_t)reps), disagree = 0;
    if (!rate)
        return absent_errno("tsc_rate", "malloc");
    for (int w = 0; w < reps; w++) {
        uint64_t t0[K], t1[K], c0 = __rdtsc(), c1;
        for (int k = 0; k < K; k++)
            t0[k] = ns(clocks[k]);
        while (ns(CLOCK_MONOTONIC) - t0[0] < window_ns)
            ;
        c1 = __rdtsc();
        for (int k = 0; k < K; k++)
            t1[k] = ns(clocks[k]);
        double lo = 1e300, hi = 0, sum = 0;
        for (int k = 0; k < K; k++) {
            double r = rate[k * reps + w] = (double)(c1 - c0) / (double)(t1[k] - t0[k]);
            lo = r < lo ? r : lo;
            hi = r > hi ? r : hi;
            sum += r;
        }
        if ((hi - lo) / (sum / K) > disagree)
            disagree = (hi - lo) / (sum / K);
    }
    for (int w = 0; w < reps; w++) /* CLOCK_MONOTONIC's rate, for the techniques after */
        tsc_per_ns += rate[w] / reps;
    begin("tsc_rate");
    printf(", \"windows\": %d, \"window_ns\": %" PRIu64, reps, window_ns);
    for (int k = 0; k < K; k++) /* ticks per ns, as MHz */
        print_series(names[k], rate + k * reps, reps, 1000.0);
    printf(", \"max_disagreement\": %.6g", disagree);
    free(rate);
    return end();
}

/* ---- 6. rtc: TSC and CLOCK_MONOTONIC across RTC second boundaries ---- */

/* Waits for the RTC's next update, 3 s at most: its update interrupt if uie, else polling
 * its time for the second to change (*last: the second seen last, -1 at first). */
static int rtc_next_update(int fd, int uie, int *last)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    struct rtc_time tm;
    unsigned long data;
    if (uie) {
        int r = poll(&p, 1, 3000);
        errno = r == 0 ? ETIMEDOUT : errno;
        return r > 0 && read(fd, &data, sizeof(data)) == sizeof(data) ? 0 : -1;
    }
    for (int i = 0; i < 3000; i++, sleep_ns(1000000)) {
        if (ioctl(fd, RTC_RD_TIME, &tm) < 0)
            return -1;
        if (tm.tm_sec != *last)
            return *last = tm.tm_sec, 0;
    }
    errno = ETIMEDOUT;
    return -1;
}

static int rtc(void)
{
    int fd = open("/dev/rtc0", O_RDONLY);
    if (fd < 0 && errno == ENOENT)
        fd = open("/dev/rtc", O_RDONLY);
    if (fd < 0)
        return absent_errno("rtc", "open /dev/rtc0, /dev/rtc");
    int uie = ioctl(fd, RTC_UIE_ON, 0) == 0, last = -1, points = quick ? 2 : 3, i;
    uint64_t tsc[3], mono[3];
    /* The first update is skipped: a pending interrupt, or the first poll, is no boundary. */
    for (i = -1; i < points; i++) {
        if (rtc_next_update(fd, uie, &last) < 0)
            break;
        if (i >= 0)
            tsc[i] = __rdtsc(), mono[i] = ns(CLOCK_MONOTONIC);
    }
    if (i < points)
        absent_errno("rtc", uie ? "RTC update interrupt" : "RTC_RD_TIME");
    else {
        begin("rtc");
        printf(", \"mode\": \"%s\", \"tsc_ticks_per_s\": [", uie ? "uie" : "poll");
        for (i = 1; i < points; i++)
            printf("%s%" PRIu64, i > 1 ? ", " : "", tsc[i] - tsc[i - 1]);
        printf("], \"mono_ns_per_s\": [");
        for (i = 1; i < points; i++)
            printf("%s%" PRIu64, i > 1 ? ", " : "", mono[i] - mono[i - 1]);
        printf("]");
        end();
    }
    if (uie)
        ioctl(fd, RTC_UIE_OFF, 0);
    return close(fd);
}

/* ---- 7-8. acpi_pm, hpet: a hardware counter against CLOCK_MONOTONIC and the TSC ---- */

struct counter {
    int bits;
    uint16_t port;                /* the ACPI PM timer's I/O port, or */
    const volatile uint8_t *mmio; /* the HPET's registers */
};

static uint64_t counter_read(const struct counter *c)
{
    return c->mmio ? *(const volatile uint64_t *)(c->mmio + 0xf0) : inl(c->port);
}

/* Over reps windows: the counter's rate by CLOCK_MONOTONIC, TSC ticks per counter tick, and
 * what one read costs. */
static int counter_report(const char *name, const struct counter *c, double nominal_hz)
{
    uint64_t mask = c->bits == 64 ? UINT64_MAX : (1ull << c->bits) - 1, cost[100];
    double *hz = malloc(sizeof(double) * 2 * (size_t)reps), *per;
    if (!hz)
        return absent_errno(name, "malloc");
    per = hz + reps;
    for (int w = 0; w < reps; w++) {
        uint64_t c0 = __rdtsc(), p0 = counter_read(c), t0 = ns(CLOCK_MONOTONIC), t1;
        while ((t1 = ns(CLOCK_MONOTONIC)) - t0 < window_ns)
            ;
        uint64_t c1 = __rdtsc(), ticks = (counter_read(c) - p0) & mask; /* a window < one wrap */
        if (ticks == 0) {
            free(hz);
            return absent(name, "counter does not advance");
        }
        hz[w] = (double)ticks * 1e9 / (double)(t1 - t0);
        per[w] = (double)(c1 - c0) / (double)ticks;
    }
    for (int i = 0; i < 100; i++) {
        uint64_t t0 = __rdtsc();
        counter_read(c);
        cost[i] = __rdtsc() - t0;
    }
    begin(name);
    printf(", \"bits\": %d, \"nominal_hz\": %.10g, \"windows\": %d", c->bits, nominal_hz, reps);
    print_series("hz", hz, reps, 1.0);
    print_series("tsc_per_tick", per, reps, 1.0);
    printf(", \"read_cost_ticks\": %" PRIu64, stats_u64(cost, 100).median);
    free(hz);
    return end();
}

/* The PM timer's port and width from the FADT; iopl for inl. */
static int acpi_pm(void)
{
    uint8_t f[256];
    uint32_t port = 0, flags = 0;
    int fd = open("/sys/firmware/acpi/tables/FACP", O_RDONLY);
    if (fd < 0)
        return absent_errno("acpi_pm", "open /sys/firmware/acpi/tables/FACP");
    ssize_t n = read(fd, f, sizeof(f));
    close(fd);
    if (n < 0)
        return absent_errno("acpi_pm", "read /sys/firmware/acpi/tables/FACP");
    if (n < 116)
        return absent("acpi_pm", "FADT of %zd bytes", n);
    memcpy(&port, f + 76, 4); /* PM_TMR_BLK; x86 is little-endian like ACPI */
    memcpy(&flags, f + 112, 4);
    if (port == 0 || port > 0xfffc)
        return absent("acpi_pm", "no PM timer port in the FADT (PM_TMR_BLK %" PRIu32 ")", port);
    if (iopl(3) < 0)
        return absent_errno("acpi_pm", "iopl");
    struct counter c = {flags & 1u << 8 ? 32 : 24, (uint16_t)port, NULL}; /* TMR_VAL_EXT */
    counter_report("acpi_pm", &c, 3579545.0);
    return iopl(0);
}

/* The HPET mapped from /dev/hpet (Debian's kernels refuse the mmap without hpet_mmap=1). */
static int hpet(void)
{
    int fd = open("/dev/hpet", O_RDONLY);
    if (fd < 0)
        return absent_errno("hpet", "open /dev/hpet");
    void *m = mmap(NULL, 1024, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return absent_errno("hpet", "mmap /dev/hpet");
    uint64_t cap = *(const volatile uint64_t *)m;
    uint32_t period_fs = (uint32_t)(cap >> 32);
    struct counter c = {cap & 1u << 13 ? 64 : 32, 0, m}; /* COUNT_SIZE_CAP */
    if (period_fs == 0 || period_fs > 100000000u)
        absent("hpet", "counter period of %" PRIu32 " fs", period_fs);
    else
        counter_report("hpet", &c, 1e15 / period_fs);
    return munmap(m, 1024);
}

/* ---- 9. sleep: seven primitives, the elapsed time by CLOCK_MONOTONIC and by the TSC ---- */

enum prim { NANOSLEEP, CLOCK_NANOSLEEP_ABS, TIMERFD, SELECT, POLL, EPOLL_WAIT, POSIX_TIMER, NPRIM };
static const char *const prim_names[NPRIM] = {"nanosleep", "clock_nanosleep_abs", "timerfd",
                                              "select", "poll", "epoll_wait", "posix_timer"};

struct waiters {
    int tfd, epfd;
    timer_t timer;
    sigset_t alrm; /* the posix timer's signal, blocked, taken by sigwaitinfo */
};

/* Waits req ns with primitive p: 0, or -1 with errno. */
static int wait_once(enum prim p, struct waiters *w, uint64_t req)
{
    struct timespec ts = to_ts(req);
    struct itimerspec its = {.it_value = ts};
    struct timeval tv = {ts.tv_sec, ts.tv_nsec / 1000};
    struct epoll_event ev;
    uint64_t expirations;
    int r;
    switch (p) {
    case NANOSLEEP:
        while ((r = nanosleep(&ts, &ts)) < 0 && errno == EINTR)
            ;
        return r;
    case CLOCK_NANOSLEEP_ABS:
        ts = to_ts(ns(CLOCK_MONOTONIC) + req);
        while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
            ;
        return (errno = r) ? -1 : 0;
    case TIMERFD:
        if (timerfd_settime(w->tfd, 0, &its, NULL) < 0)
            return -1;
        return read(w->tfd, &expirations, 8) == 8 ? 0 : -1;
    case SELECT:
        return select(0, NULL, NULL, NULL, &tv);
    case POLL: /* ms: requests of 1 ms and more only */
        return poll(NULL, 0, (int)(req / 1000000));
    case EPOLL_WAIT:
        return epoll_wait(w->epfd, &ev, 1, (int)(req / 1000000));
    default:
        if (timer_settime(w->timer, 0, &its, NULL) < 0)
            return -1;
        return sigwaitinfo(&w->alrm, NULL) == SIGALRM ? 0 : -1;
    }
}

/* The object of one primitive and request; el and tsc: reps-long scratch. */
static void sleep_slot(enum prim p, struct waiters *w, uint64_t req, uint64_t *el, uint64_t *tsc)
{
    int shorter = 0;
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = ns(CLOCK_MONOTONIC), c0 = __rdtsc();
        int r = wait_once(p, w, req);
        uint64_t c1 = __rdtsc(), t1 = ns(CLOCK_MONOTONIC);
        if (r < 0) {
            const char *why = strerror(errno);
            printf("{\"absent\": ");
            json_str(why, strlen(why));
            printf("}");
            return;
        }
        el[i] = t1 - t0;
        tsc[i] = tsc_to_ns(c1 - c0);
        shorter += el[i] < req || tsc[i] < req;
    }
    struct stats m = stats_u64(el, (size_t)reps), t = stats_u64(tsc, (size_t)reps);
    printf("{\"min_ns\": %" PRIu64 ", \"median_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64
           ", \"tsc_min_ns\": %" PRIu64 ", \"tsc_median_ns\": %" PRIu64 ", \"tsc_max_ns\": %" PRIu64
           ", \"short\": %d}",
           m.min, m.median, m.max, t.min, t.median, t.max, shorter);
}

static int sleep_battery(void)
{
    static const uint64_t requests[] = {100000, 1000000, 10000000};
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM};
    struct waiters w = {timerfd_create(CLOCK_MONOTONIC, 0), epoll_create1(0), 0, {{0}}};
    uint64_t *el = malloc(sizeof(uint64_t) * 2 * (size_t)reps);
    sigset_t old;
    sigemptyset(&w.alrm);
    sigaddset(&w.alrm, SIGALRM);
    sigprocmask(SIG_BLOCK, &w.alrm, &old);
    if (!el || w.tfd < 0 || w.epfd < 0 || timer_create(CLOCK_MONOTONIC, &sev, &w.timer) < 0) {
        absent_errno("sleep", !el ? "malloc" : w.tfd < 0 ? "timerfd_create"
                              : w.epfd < 0 ? "epoll_create1" : "timer_create");
    } else {
        begin("sleep");
        printf(", \"reps\": %d", reps);
        for (int p = 0; p < NPRIM; p++) {
            printf(", \"%s\": {", prim_names[p]);
            for (int k = 0; k < (quick ? 2 : 3); k++) {
                printf("%s\"%" PRIu64 "\": ", k ? ", " : "", requests[k]);
                if ((p == POLL || p == EPOLL_WAIT) && requests[k] < 1000000)
                    printf("null");
                else
                    sleep_slot((enum prim)p, &w, requests[k], el, el + reps);
            }
            printf("}");
        }
        end();
        timer_delete(w.timer);
    }
    if (w.epfd >= 0)
        close(w.epfd);
    if (w.tfd >= 0)
        close(w.tfd);
    free(el);
    return sigprocmask(SIG_SETMASK, &old, NULL);
}

/* ---- 10. cpu_work: a loop of known instruction count, by the TSC and CLOCK_MONOTONIC ---- */

#define WORK_N 1000000

static int cpu_work(void)
{
    uint64_t *tsc = malloc(sizeof(uint64_t) * 2 * (size_t)reps), *mono = tsc + reps;
    if (!tsc)
        return absent_errno("cpu_work", "malloc");
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = ns(CLOCK_MONOTONIC), c0 = __rdtsc();
        __asm__ volatile("mov %0, %%rcx\n1: dec %%rcx\njnz 1b" : : "i"(WORK_N) : "rcx", "cc");
        tsc[i] = __rdtsc() - c0;
        mono[i] = ns(CLOCK_MONOTONIC) - t0;
    }
    struct stats st = stats_u64(tsc, (size_t)reps), sm = stats_u64(mono, (size_t)reps);
    begin("cpu_work");
    printf(", \"instructions\": %d, \"reps\": %d", 2 * WORK_N + 1, reps); /* mov; dec, jnz */
    print_stats("tsc_ticks", &st, 1);
    print_stats("mono_ns", &sm, 1);
    free(tsc);
    return end();
}

/* ---- 11. clock_gaps: the largest step between consecutive reads (tprobe's section 1) ---- */

/* Reads clock, or the TSC if tsc, in batches of 1024 until CLOCK_MONOTONIC says duration has
 * passed: the largest step (ns) and the steps over 1 ms. */
static void gaps(const char *key, int tsc, clockid_t clock, uint64_t duration)
{
    uint64_t end = ns(CLOCK_MONOTONIC) + duration, max = 0, over_1ms = 0, reads = 0;
    uint64_t ms = tsc ? (uint64_t)(1e6 * tsc_per_ns) : 1000000, prev = tsc ? __rdtsc() : ns(clock);
    for (;;) {
        for (int i = 0; i < 1024; i++) {
            uint64_t t = tsc ? __rdtsc() : ns(clock);
            max = t - prev > max ? t - prev : max;
            over_1ms += t - prev > ms;
            prev = t;
        }
        reads += 1024;
        if ((tsc || clock != CLOCK_MONOTONIC ? ns(CLOCK_MONOTONIC) : prev) >= end)
            break;
        if (tsc) /* the clock_gettime above is no gap of the TSC */
            prev = __rdtsc();
    }
    printf(", \"%s\": {\"max_gap_ns\": %" PRIu64 ", \"gaps_over_1ms\": %" PRIu64
           ", \"reads\": %" PRIu64 "}",
           key, tsc ? tsc_to_ns(max) : max, over_1ms, reads);
}

static int clock_gaps(void)
{
    uint64_t d = quick ? 60000000u : 300000000u;
    begin("clock_gaps");
    printf(", \"loop_ns\": %" PRIu64, d);
    gaps("monotonic", 0, CLOCK_MONOTONIC, d);
    gaps("realtime", 0, CLOCK_REALTIME, d);
    gaps("tsc", 1, 0, d);
    return end();
}

/* ---- 12-13. icmp_rtt, udp_rtt: round trips to the peer, a local timer counted during each ---- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A 64-byte probe: an ICMP echo request (56 bytes of data), or a UDP payload. */
static void build_probe(uint8_t *pkt, int icmp, uint16_t seq)
{
    uint32_t sum = 0;
    for (int i = 0; i < 64; i++)
        pkt[i] = (uint8_t)i;
    put16(pkt, icmp ? 8 << 8 : ECHO_ID); /* type 8, code 0 */
    put16(pkt + 2, icmp ? 0 : seq);
    put16(pkt + 4, ECHO_ID);
    put16(pkt + 6, seq);
    for (int i = 0; icmp && i < 64; i += 2)
        sum += get16(pkt + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    if (icmp)
        put16(pkt + 2, (uint16_t)~sum);
}

/* Whether buf is the reply to seq: an echo reply after its IP header (a raw socket reads
 * that too), or our UDP payload back. */
static int is_reply(const uint8_t *b, size_t n, int icmp, uint16_t seq)
{
    size_t ihl = n ? (size_t)(b[0] & 15) * 4 : 0;
    if (!icmp)
        return n == 64 && get16(b) == ECHO_ID && get16(b + 2) == seq;
    return n >= 28 && (b[0] >> 4) == 4 && ihl >= 20 && n >= ihl + 8 && b[ihl] == 0 &&
           get16(b + ihl + 4) == ECHO_ID && get16(b + ihl + 6) == seq;
}

/* Waits for the reply to seq until deadline: 1, 0 on timeout, -1 on error. */
static int await_reply(int fd, int icmp, uint16_t seq, uint64_t deadline)
{
    uint8_t buf[2048];
    for (uint64_t now; (now = ns(CLOCK_MONOTONIC)) < deadline;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
        ssize_t n = r > 0 ? recv(fd, buf, sizeof(buf), MSG_DONTWAIT) : 0;
        if (n < 0 && errno == ECONNREFUSED) /* the peer's port said no: lost */
            return 0;
        if ((r < 0 && errno != EINTR) || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (n > 0 && is_reply(buf, (size_t)n, icmp, seq))
            return 1;
    }
    return 0;
}

/* A socket connected to the peer (to port 7007, but for raw ICMP), or -1, the absent line
 * printed. */
static int peer_socket(const char *name, int type, int proto)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT), .sin_addr = peer};
    struct timeval tmo = {2, 0}; /* bounds a TCP connect */
    int fd = has_peer ? socket(AF_INET, type, proto) : -1;
    if (!has_peer)
        absent(name, "no peer (--peer)");
    else if (fd < 0)
        absent_errno(name, "socket");
    else if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo)) < 0 ||
             connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        absent_errno(name, "connect");
        close(fd);
        fd = -1;
    }
    return fd;
}

/* reps probes, one at a time, 10 ms apart; each timed by CLOCK_MONOTONIC and the TSC, with a
 * periodic 100 us timerfd armed just before the send, its expirations read after the reply. */
static int rtt_series(const char *name, int icmp)
{
    int fd = peer_socket(name, icmp ? SOCK_RAW : SOCK_DGRAM, icmp ? IPPROTO_ICMP : 0);
    if (fd < 0)
        return 0;
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), lost = 0;
    uint64_t *rtt = calloc((size_t)reps, 4 * sizeof(uint64_t)), *tsc = rtt + reps;
    uint64_t *ticks = tsc + reps, *got = ticks + reps;
    const char *failed = !rtt ? "calloc" : tfd < 0 ? "timerfd_create" : NULL;
    struct itimerspec arm = {.it_value = to_ts(100000), .it_interval = to_ts(100000)}, off = {0};
    for (int i = 0; i < reps && !failed; i++) {
        uint8_t pkt[64];
        uint16_t seq = (uint16_t)(i + 1);
        build_probe(pkt, icmp, seq);
        if (timerfd_settime(tfd, 0, &arm, NULL) < 0) {
            failed = "timerfd_settime";
            break;
        }
        uint64_t t0 = ns(CLOCK_MONOTONIC), c0 = __rdtsc();
        int r = send(fd, pkt, 64, 0) == 64 ? await_reply(fd, icmp, seq, t0 + TIMEOUT_NS) : -2;
        uint64_t c1 = __rdtsc(), t1 = ns(CLOCK_MONOTONIC);
        int err = errno;
        if (read(tfd, &ticks[i], 8) != 8)
            ticks[i] = 0; /* EAGAIN: no expiration yet */
        timerfd_settime(tfd, 0, &off, NULL);
        if (r < 0)
            failed = r == -2 ? "send" : "recv", errno = err;
        if (r == 0 && i == 0) { /* nobody there (a VM alone): not reps timeouts in a row */
            absent(name, "the peer did not answer the first probe");
            goto out;
        }
        got[i] = r > 0;
        lost += r == 0;
        rtt[i] = t1 - t0;
        tsc[i] = tsc_to_ns(c1 - c0);
        if (i + 1 < reps)
            sleep_ns(10000000);
    }
    if (failed)
        absent_errno(name, failed);
    else {
        begin(name);
        printf(", \"probes\": %d, \"lost\": %d", reps, lost);
        print_array("rtt_ns", rtt, got, reps);
        print_array("tsc_rtt_ns", tsc, got, reps);
        print_array("timer_ticks", ticks, got, reps);
        end();
    }
out:
    if (tfd >= 0)
        close(tfd);
    free(rtt);
    return close(fd);
}

/* ---- 14. tcp_timestamps: the peer's TCP TSval clock against CLOCK_MONOTONIC ---- */

struct sniff {
    int fd;
    uint16_t lport; /* our port, network order */
    int n, cap;
    uint64_t *local; /* CLOCK_MONOTONIC ns when read off the packet socket */
    uint32_t *tsval;
};

/* The TSval of a segment from the peer's port 7007 to ours, if it carries data (pure ACKs and
 * the SYN-ACK may wait in the socket while we sleep: their read time is not their arrival's);
 * -1 if none. */
static int64_t parse_tsval(const uint8_t *b, size_t n, uint16_t lport)
{
    if (n < 40 || (b[0] >> 4) != 4 || b[9] != IPPROTO_TCP || memcmp(b + 12, &peer, 4) != 0)
        return -1;
    size_t ihl = (size_t)(b[0] & 15) * 4, tot = get16(b + 2), doff;
    if (ihl < 20 || tot > n || tot < ihl + 20 || (get16(b + 6) & 0x3fff)) /* or a fragment */
        return -1;
    const uint8_t *t = b + ihl;
    doff = (size_t)(t[12] >> 4) * 4;
    if (get16(t) != PORT || memcmp(t + 2, &lport, 2) != 0 || doff < 20 || ihl + doff >= tot)
        return -1;
    for (size_t i = 20; i < doff && t[i] != 0;) { /* the options, to their end */
        if (t[i] == 1) {
            i++;
            continue;
        }
        if (i + 1 >= doff || t[i + 1] < 2 || i + t[i + 1] > doff)
            return -1;
        if (t[i] == 8 && t[i + 1] == 10)
            return (int64_t)get16(t + i + 2) << 16 | get16(t + i + 4);
        i += t[i + 1];
    }
    return -1;
}

/* Reads every packet waiting on the packet socket, recording the peer's TSvals. */
static void sniff_drain(struct sniff *s)
{
    uint8_t buf[2048];
    struct sockaddr_ll from;
    socklen_t fl = sizeof(from);
    ssize_t n;
    while ((n = recvfrom(s->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) >=
           0) {
        uint64_t now = ns(CLOCK_MONOTONIC);
        int64_t ts = parse_tsval(buf, (size_t)n, s->lport);
        if (from.sll_pkttype != PACKET_OUTGOING && ts >= 0 && s->n < s->cap) /* lo: twice */
            s->local[s->n] = now, s->tsval[s->n++] = (uint32_t)ts;
        fl = sizeof(from);
    }
}

/* Sends a message and reads its echo, sniffing meanwhile: 0, or -1 with errno. */
static int echo_once(int fd, struct sniff *s, const uint8_t *msg, size_t len)
{
    uint8_t buf[64];
    uint64_t deadline = ns(CLOCK_MONOTONIC) + TIMEOUT_NS, now;
    if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -1;
    for (size_t got = 0; got < len;) {
        struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
        if ((now = ns(CLOCK_MONOTONIC)) >= deadline)
            return errno = ETIMEDOUT, -1;
        if (poll(p, 2, (int)((deadline - now + 999999) / 1000000)) < 0 && errno != EINTR)
            return -1;
        sniff_drain(s); /* first: a segment reaches the tap before the socket */
        ssize_t n = p[1].revents ? recv(fd, buf, len - got, MSG_DONTWAIT) : -1;
        if (n == 0 || (n < 0 && p[1].revents && errno != EAGAIN))
            return errno = n ? errno : ECONNRESET, -1;
        got += n > 0 ? (size_t)n : 0;
    }
    return 0;
}

/* A least-squares fit of TSval (unwrapped) against local seconds: slope, largest residual. */
static void print_fit(const struct sniff *s)
{
    double st = 0, sx = 0, stt = 0, stx = 0, x = 0, slope = 0, icpt, res = 0;
    for (int i = 0; i < s->n; i++) {
        double t = (double)(s->local[i] - s->local[0]) / 1e9;
        x += i ? (int32_t)(s->tsval[i] - s->tsval[i - 1]) : 0;
        st += t, sx += x, stt += t * t, stx += t * x;
    }
    if (s->n >= 2 && stt - st * st / s->n > 0)
        slope = (stx - st * sx / s->n) / (stt - st * st / s->n);
    if (slope <= 0) {
        printf(", \"slope_per_s\": null, \"max_residual_ms\": null");
        return;
    }
    icpt = (sx - slope * st) / s->n;
    x = 0;
    for (int i = 0; i < s->n; i++) {
        x += i ? (int32_t)(s->tsval[i] - s->tsval[i - 1]) : 0;
        double r = x - icpt - slope * (double)(s->local[i] - s->local[0]) / 1e9;
        res = r > res ? r : -r > res ? -r : res;
    }
    printf(", \"slope_per_s\": %.10g, \"max_residual_ms\": %.6g", slope, res * 1000 / slope);
}

/* Sniffs (AF_PACKET) the echoes of reps 32-byte messages sent 20 ms apart on a TCP connection. */
static int tcp_timestamps(void)
{
    const char *name = "tcp_timestamps";
    struct sockaddr_in local;
    socklen_t ll = sizeof(local);
    uint8_t msg[32];
    struct sniff s = {-1, 0, 0, 4 * reps + 16, NULL, NULL};
    if (!has_peer)
        return absent(name, "no peer (--peer)");
    if ((s.fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP))) < 0)
        return absent_errno(name, "socket AF_PACKET");
    int fd = peer_socket(name, SOCK_STREAM, 0), i = 0;
    if ((s.local = malloc((sizeof(uint64_t) + sizeof(uint32_t)) * (size_t)s.cap)))
        s.tsval = (uint32_t *)(s.local + s.cap);
    memset(msg, 't', sizeof(msg));
    if (fd < 0)
        i = reps + 1; /* peer_socket said why */
    else if (!s.local)
        absent_errno(name, "malloc");
    else if (getsockname(fd, (struct sockaddr *)&local, &ll) < 0)
        absent_errno(name, "getsockname");
    else {
        s.lport = local.sin_port;
        sniff_drain(&s); /* the handshake's segments: no data, none recorded */
        for (; i < reps && echo_once(fd, &s, msg, sizeof(msg)) == 0; i++) {
            sleep_ns(20000000);
            sniff_drain(&s);
        }
        if (i < reps)
            absent_errno(name, "echo");
    }
    if (i == reps) {
        begin(name);
        printf(", \"messages\": %d, \"count\": %d, \"tsval_delta\": %" PRIu32
               ", \"local_ns\": %" PRIu64,
               reps, s.n, s.n ? s.tsval[s.n - 1] - s.tsval[0] : 0,
               s.n ? s.local[s.n - 1] - s.local[0] : 0);
        print_fit(&s);
        end();
    }
    if (fd >= 0)
        close(fd);
    free(s.local);
    return close(s.fd);
}

/* ---- --serve: the peer, UDP and TCP echo on 7007 ---- */

static int serve(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)}, from;
    int one = 1, conn = -1, udp = socket(AF_INET, SOCK_DGRAM, 0);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    uint8_t buf[65536];
    if (udp < 0 || tcp < 0 || setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(udp, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        bind(tcp, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(tcp, 8) < 0) {
        fprintf(stderr, "tdetect: serving on port %d: %s\n", PORT, strerror(errno));
        return 1;
    }
    printf("{\"event\": \"detect_serving\", \"port\": %d}\n", PORT);
    fflush(stdout);
    for (;;) {
        /* One connection at a time: the next waits in the backlog. */
        struct pollfd p[2] = {{.fd = udp, .events = POLLIN},
                              {.fd = conn >= 0 ? conn : tcp, .events = POLLIN}};
        socklen_t fl = sizeof(from);
        if (poll(p, 2, -1) < 0)
            continue;
        ssize_t n = p[0].revents ? recvfrom(udp, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl)
                                 : -1;
        if (n >= 0)
            sendto(udp, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
        if (p[1].revents && conn < 0) {
            conn = accept(tcp, NULL, NULL);
        } else if (p[1].revents) {
            ssize_t w = 0, r = 1;
            n = recv(conn, buf, sizeof(buf), 0);
            while (n > 0 && w < n && (r = send(conn, buf + w, (size_t)(n - w), MSG_NOSIGNAL)) > 0)
                w += r;
            if (n <= 0 || r <= 0)
                close(conn), conn = -1;
        }
    }
}

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "tdetect: ");
    fprintf(stderr, fmt, arg ? arg : "nothing");
    fprintf(stderr, "\nusage: tdetect [--peer ADDR] [--reps N] [--quick] | tdetect --serve\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--serve") == 0)
        return serve();
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *v = argv[i + 1]; /* argv[argc] is NULL */
        char *endp = NULL;
        long n = 0;
        if (strcmp(opt, "--quick") == 0) {
            quick = 1;
        } else if (strcmp(opt, "--peer") == 0) {
            if (!v || inet_pton(AF_INET, v, &peer) != 1)
                return usage("--peer wants an IPv4 address, not %s", v);
            has_peer = 1, i++;
        } else if (strcmp(opt, "--reps") == 0) {
            if (v)
                n = strtol(v, &endp, 10);
            if (!v || !*v || *endp || n < 1 || n > 100000)
                return usage("--reps wants a count in 1..100000, not %s", v);
            reps = (int)n, i++;
        } else {
            return usage(strcmp(opt, "--serve") ? "unknown option %s" : "%s takes no other option",
                         opt);
        }
    }
    window_ns = quick ? 2000000 : 10000000;

    environment();
    insn_cost("rdtsc", RDTSC);
    insn_cost("rdtscp", RDTSCP);
    insn_cost("cpuid", CPUID);
    tsc_rate();
    rtc();
    acpi_pm();
    hpet();
    sleep_battery();
    cpu_work();
    clock_gaps();
    rtt_series("icmp_rtt", 1);
    rtt_series("udp_rtt", 0);
    tcp_timestamps();
    printf("{\"event\": \"detect_done\", \"techniques\": %d}\n", techniques);
    fflush(stdout);
    return 0;
}
