#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int threshold = -2; /* -2: not read yet; -1: off */

static int parse_level(const char *s)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (!s || !*s)
        return TSV_WARN;
    if (strcasecmp(s, "off") == 0)
        return -1; /* nothing (the fuzzers) */
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0 || (i == TSV_WARN && strcasecmp(s, "warn") == 0))
            return i;
    return TSV_WARN;
}

int tsv_log_enabled(enum tsv_log_level level)
{
    /* Racing first calls compute the same value: no lock needed. */
    if (threshold == -2)
        threshold = parse_level(getenv("TANSIV_LOG_LEVEL"));
    return (int)level <= threshold;
}

/* The formatting of the core's messages, async-signal-safe (no locale, lock or allocation,
 * unlike vsnprintf), for the client's deadline handler: the conversions they use, %s %c %d
 * %u %x, with l, ll or z and a width padded with spaces or zeros. Others are copied as they
 * are. The output is cut at the end of the buffer. */
struct out {
    char *p;
    size_t left; /* room, the terminating byte excluded */
};

static void put_char(struct out *o, char c)
{
    if (o->left) {
        *o->p++ = c;
        o->left--;
    }
}

static void put_uint(struct out *o, unsigned long long v, unsigned base, int width, char pad)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n < width && n < (int)sizeof(digits))
        digits[n++] = pad;
    while (n)
        put_char(o, digits[--n]);
}

static void format(struct out *o, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put_char(o, *fmt);
            continue;
        }
        const char *spec = fmt++;
        char pad = ' ';
        int width = 0, size = 0; /* size: 1 l, 2 ll, 3 z */
        if (*fmt == '0')
            pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        if (*fmt == 'l')
            size = 1, fmt++;
        if (*fmt == 'l')
            size = 2, fmt++;
        if (*fmt == 'z')
            size = 3, fmt++;
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            for (s = s ? s : "(null)"; *s; s++)
                put_char(o, *s);
            break;
        }
        case 'c':
            put_char(o, (char)va_arg(ap, int));
            break;
        case 'd': {
            long long v = size == 2 ? va_arg(ap, long long)
                        : size == 1 ? va_arg(ap, long)
                        : size == 3 ? va_arg(ap, ssize_t)
                                    : va_arg(ap, int);
            unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            if (v < 0)
                put_char(o, '-');
            put_uint(o, m, 10, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = size == 2 ? va_arg(ap, unsigned long long)
                                 : size == 1 ? va_arg(ap, unsigned long)
                                 : size == 3 ? va_arg(ap, size_t)
                                             : va_arg(ap, unsigned);
            put_uint(o, v, *fmt == 'x' ? 16 : 10, width, pad);
            break;
        }
        case '%':
            put_char(o, '%');
            break;
        default: /* not one of ours: as it is (its argument, if any, is not consumed) */
            for (; spec <= fmt && *spec; spec++)
                put_char(o, *spec);
            if (!*fmt)
                return;
        }
    }
}

static void format_args(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format(o, fmt, ap);
    va_end(ap);
}

void tsv_log(enum tsv_log_level level, const char *component, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char line[1024];
    int saved_errno = errno;
    struct out o = {line, sizeof(line) - 1}; /* room kept for the newline */
    format_args(&o, "tansiv-%s[%d] %s: ", component, (int)getpid(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    format(&o, fmt, ap);
    va_end(ap);
    *o.p++ = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)(o.p - line));
    (void)ignored;
    errno = saved_errno;
}
