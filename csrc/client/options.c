/* argv options of vsg_init (see tansiv-client.h). Every rejection is logged with the
 * offending argument and returns EINVAL. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define TSV_LOG_COMPONENT "client"
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client-internal.h"
#include "log.h"

#define DEFAULT_NUM_BUFFERS 1024

/* "%Y-%m-%dT%H:%M:%S[.fraction]" in UTC to ns since the Epoch. */
static int parse_time(const char *s, int64_t *ns)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return -1;
    int64_t frac = 0;
    if (*rest == '.') {
        rest++;
        int digits = 0;
        while (isdigit((unsigned char)*rest)) {
            if (digits < 9) {
                frac = frac * 10 + (*rest - '0');
                digits++;
            }
            rest++;
        }
        if (digits == 0)
            return -1;
        while (digits++ < 9)
            frac *= 10;
    }
    if (*rest != '\0')
        return -1;
    time_t secs = timegm(&tm);
    if (secs < 0 || secs > INT64_MAX / 1000000000 - 1)
        return -1;
    *ns = (int64_t)secs * 1000000000 + frac;
    return 0;
}

static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

struct option_spec {
    char short_name;
    const char *long_name;
};

static const struct option_spec specs[] = {
    {'a', "actor"},       {'n', "name"},
    {'t', "initial_time"}, {'b', "num_buffers"},
    {'w', "uplink_bandwidth"}, {'x', "uplink_overhead"},
};

/* Matches argv[*i] against the options; on success sets *opt and *value (which may come from
 * the same argument, "-aPATH" / "--actor=PATH", or the next one). */
static int match(int argc, const char *const argv[], int *i, char *opt, const char **value)
{
    const char *arg = argv[*i];
    const char *inline_value = NULL;
    const struct option_spec *spec = NULL;

    if (arg[0] == '-' && arg[1] == '-' && arg[2] != '\0') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++)
            if (strlen(specs[k].long_name) == len && strncmp(specs[k].long_name, name, len) == 0)
                spec = &specs[k];
        if (eq)
            inline_value = eq + 1;
    } else if (arg[0] == '-' && arg[1] != '\0' && arg[1] != '-') {
        for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++)
            if (specs[k].short_name == arg[1])
                spec = &specs[k];
        if (arg[2] != '\0')
            inline_value = arg + 2;
    }
    if (!spec) {
        TSV_LOG(TSV_ERROR, "vsg_init: unknown option '%s'", arg);
        return -1;
    }
    if (!inline_value) {
        if (*i + 1 >= argc || !argv[*i + 1]) {
            TSV_LOG(TSV_ERROR, "vsg_init: option '%s' needs a value", arg);
            return -1;
        }
        inline_value = argv[++*i];
    }
    *opt = spec->short_name;
    *value = inline_value;
    return 0;
}

int tsv_parse_options(int argc, const char *const argv[], int *next_arg, struct tsv_options *out)
{
    memset(out, 0, sizeof(*out));
    out->num_buffers = DEFAULT_NUM_BUFFERS;
    int have_name = 0;
    int i;

    if (argc < 0 || (argc > 0 && !argv)) {
        TSV_LOG(TSV_ERROR, "vsg_init: invalid argc/argv");
        return EINVAL;
    }
    for (i = 0; i < argc; i++) {
        if (!argv[i]) {
            TSV_LOG(TSV_ERROR, "vsg_init: argv[%d] is NULL", i);
            goto invalid;
        }
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        char opt;
        const char *value;
        if (match(argc, argv, &i, &opt, &value))
            goto invalid;
        unsigned long n;
        struct in_addr addr;
        switch (opt) {
        case 'a':
            if (*value == '\0') {
                TSV_LOG(TSV_ERROR, "vsg_init: empty socket path (-a)");
                goto invalid;
            }
            free(out->socket);
            out->socket = strdup(value);
            if (!out->socket) {
                tsv_free_options(out);
                return ENOMEM;
            }
            break;
        case 'n':
            if (inet_pton(AF_INET, value, &addr) != 1) {
                TSV_LOG(TSV_ERROR, "vsg_init: bad IPv4 address '%s' (-n)", value);
                goto invalid;
            }
            out->address = addr.s_addr;
            have_name = 1;
            break;
        case 't':
            if (parse_time(value, &out->initial_ns)) {
                TSV_LOG(TSV_ERROR,
                        "vsg_init: bad initial time '%s' (-t): expected "
                        "YYYY-MM-DDTHH:MM:SS[.fraction], UTC, not before 1970",
                        value);
                goto invalid;
            }
            break;
        case 'b':
            if (parse_count(value, UINT32_MAX, &n) || n == 0) {
                TSV_LOG(TSV_ERROR, "vsg_init: bad number of buffers '%s' (-b): expected an "
                                   "integer > 0", value);
                goto invalid;
            }
            out->num_buffers = (uint32_t)n;
            break;
        case 'w':
        case 'x':
            if (parse_count(value, ULONG_MAX, &n)) {
                TSV_LOG(TSV_ERROR, "vsg_init: bad value '%s' for -%c: expected an integer",
                        value, opt);
                goto invalid;
            }
            TSV_LOG(TSV_INFO, "vsg_init: -%c accepted and ignored: the simulated network "
                              "shapes the traffic", opt);
            break;
        }
    }
    if (!out->socket) {
        TSV_LOG(TSV_ERROR, "vsg_init: missing coordinator socket (-a)");
        goto invalid;
    }
    if (!have_name) {
        TSV_LOG(TSV_ERROR, "vsg_init: missing participant address (-n)");
        goto invalid;
    }
    if (next_arg)
        *next_arg = i;
    return 0;

invalid:
    tsv_free_options(out);
    return EINVAL;
}

void tsv_free_options(struct tsv_options *opt)
{
    free(opt->socket);
    opt->socket = NULL;
}
