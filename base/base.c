/*
 * base.c — logging, error text, clocks, random numbers and contract checks for every
 * netdiffus module.
 */
#include <errno.h>
#include <math.h>
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
    log_level = level < ND_LOG_ERROR   ? ND_LOG_ERROR
                : level > ND_LOG_DEBUG ? ND_LOG_DEBUG
                                       : level;
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
    if (tty < 0) {
        /* A status line moves the cursor back (\r) and clears the line (ANSI): a dumb
         * terminal (Emacs shell buffers, some CI consoles) shows both as debris. */
        const char *term = getenv("TERM");
        tty = isatty(STDERR_FILENO) && term && *term && strcmp(term, "dumb");
    }
    return tty && log_level >= ND_LOG_INFO;
}

void nd_format_time_left(char *buf, size_t size, double seconds)
{
    /* rounded once, then split: rounding the parts apart gives "0 min 60 s" */
    double t = seconds > 0 && seconds < 1e15 ? round(seconds) : 0;
    unsigned long long s = (unsigned long long)t;
    if (s < 60) snprintf(buf, size, "%llu s", s);
    else if (s < 3600) snprintf(buf, size, "%llu min %02llu s", s / 60, s % 60);
    else snprintf(buf, size, "%llu h %02llu min", s / 3600, s / 60 % 60);
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

/* ---- random numbers ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void nd_rng_seed(nd_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nd_rng_u64(nd_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double nd_rng_uniform(nd_rng *r) { return (double)(nd_rng_u64(r) >> 11) * 0x1.0p-53; }

uint32_t nd_rng_below(nd_rng *r, uint32_t n)
{
    ND_ASSERT(n > 0);
    return (uint32_t)(((nd_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

float nd_rng_normal(nd_rng *r)
{
    /* Box–Muller with one value per call (no cached twin: the state alone is the
     * generator, which keeps checkpoints simple) */
    double u1 = nd_rng_uniform(r), u2 = nd_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
