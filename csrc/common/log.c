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

void tsv_log(enum tsv_log_level level, const char *component, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char line[1024];
    int saved_errno = errno;
    int n = snprintf(line, sizeof(line), "tansiv-%s[%d] %s: ", component, (int)getpid(),
                     names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
    errno = saved_errno;
}
