/* One logging macro for the C core: `TSV_LOG(TSV_WARN, "fmt", ...)`.
 * Lines go to stderr as "tansiv-<component>[pid] <level>: message", in a single write(2)
 * so that they stay whole when several processes share a log; the formatting is the core's
 * own (log.c), async-signal-safe, so that the macro can be used from the client's deadline
 * signal handler: %s %c %d %u %x, with l, ll or z and a padded width, nothing else. The
 * threshold comes from the environment variable TANSIV_LOG_LEVEL (error, warning, info,
 * debug, off; default warning). */
#ifndef TANSIV_LOG_H
#define TANSIV_LOG_H

enum tsv_log_level { TSV_ERROR = 0, TSV_WARN = 1, TSV_INFO = 2, TSV_DEBUG = 3 };

void tsv_log(enum tsv_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int tsv_log_enabled(enum tsv_log_level level);

#ifndef TSV_LOG_COMPONENT
#define TSV_LOG_COMPONENT "core"
#endif

#define TSV_LOG(level, ...)                                                                \
    do {                                                                                   \
        if (tsv_log_enabled(level))                                                        \
            tsv_log(level, TSV_LOG_COMPONENT, __VA_ARGS__);                                \
    } while (0)

#endif
