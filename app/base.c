/*
 * base.c — logging, error text, clocks and contract checks for every netdiffus module.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nd.h"

static int log_level = ND_LOG_INFO;
static int status_open; /* a status line is on screen and must be ended before a log line */

void nd_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "netdiffus: internal error: %s:%d: assertion '%s' failed\n", file, line,
            expr);
    abort();
}

int nd_error_set(nd_error *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *nd_strerror(int code)
{
    switch (code) {
    case ND_OK: return "success";
    case ND_EFORMAT: return "malformed or foreign input";
    case ND_ECRC: return "checksum mismatch";
    case ND_ETRUNC: return "input truncated";
    case ND_EVERSION: return "unsupported format version";
    case ND_ECONFIG: return "invalid configuration";
    case ND_EUSAGE: return "invalid usage";
    case ND_EINTR: return "interrupted";
    }
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
}

void nd_log_set_level(int level)
{
    log_level = level < ND_LOG_ERROR ? ND_LOG_ERROR : level > ND_LOG_DEBUG ? ND_LOG_DEBUG : level;
}

int nd_log_level(void) { return log_level; }

void nd_log(int level, const char *fmt, ...)
{
    static const char *const prefix[] = {"error: ", "warning: ", "", "debug: "};
    if (level > log_level) return;
    if (status_open) nd_status_end();
    va_list ap;
    va_start(ap, fmt);
    fputs("netdiffus: ", stderr);
    fputs(prefix[level], stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int nd_status_enabled(void)
{
    static int tty = -1;
    if (tty < 0) tty = isatty(STDERR_FILENO);
    return tty && log_level >= ND_LOG_INFO;
}

void nd_status(const char *fmt, ...)
{
    if (!nd_status_enabled()) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr); /* back to column 0, clear the old line */
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
    status_open = 1;
}

void nd_status_end(void)
{
    if (!status_open) return;
    fputc('\n', stderr);
    status_open = 0;
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * ND_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t nd_now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t nd_realtime_ns(void) { return clock_ns(CLOCK_REALTIME); }
