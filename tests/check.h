/*
 * check.h — assertions for netdiffus tests: on failure they print where, the expression
 * and both values, then exit 1. SKIP() exits 77, which ctest reports as skipped.
 */
#ifndef ND_CHECK_H
#define ND_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define CHECK_FAIL_(...)                                                                       \
    do {                                                                                       \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
        fprintf(stderr, __VA_ARGS__);                                                          \
        fputc('\n', stderr);                                                                   \
        exit(1);                                                                               \
    } while (0)

#define CHECK(x)                                                                               \
    do {                                                                                       \
        if (!(x)) CHECK_FAIL_("check failed: %s", #x);                                         \
    } while (0)

#define CHECK_INT(a, op, b)                                                                    \
    do {                                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                                    \
        if (!(a_ op b_))                                                                       \
            CHECK_FAIL_("check failed: %s %s %s (%lld vs %lld)", #a, #op, #b, a_, b_);         \
    } while (0)
#define CHECK_EQ(a, b) CHECK_INT(a, ==, b)

#define CHECK_U64_EQ(a, b)                                                                     \
    do {                                                                                       \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                       \
        if (a_ != b_)                                                                          \
            CHECK_FAIL_("check failed: %s == %s (%" PRIu64 " vs %" PRIu64 ")", #a, #b, a_,     \
                        b_);                                                                   \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                     \
    do {                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                       \
        if (!a_ || !b_ || strcmp(a_, b_))                                                      \
            CHECK_FAIL_("check failed: %s == %s (\"%s\" vs \"%s\")", #a, #b,                   \
                        a_ ? a_ : "(null)", b_ ? b_ : "(null)");                               \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                            \
    do {                                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                                \
        if (!h_ || !strstr(h_, n_))                                                            \
            CHECK_FAIL_("check failed: \"%s\" does not contain \"%s\"", h_ ? h_ : "(null)",    \
                        n_);                                                                   \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_NEAR(a, b, atol, rtol)                                                           \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b);                                             \
        if (!(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_)))                                      \
            CHECK_FAIL_("check failed: %s ~ %s (%.9g vs %.9g, diff %.3g)", #a, #b, a_, b_,     \
                        fabs(a_ - b_));                                                        \
    } while (0)

#define SKIP(...)                                                                              \
    do {                                                                                       \
        fprintf(stderr, "skipped: ");                                                          \
        fprintf(stderr, __VA_ARGS__);                                                          \
        fputc('\n', stderr);                                                                   \
        exit(77);                                                                              \
    } while (0)

/* Runs a shell command (printf-style) and returns its exit code, -1 when it did not
 * exit normally: for the tests that drive ip, tcpreplay and the like. */
static inline int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int test_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#endif
