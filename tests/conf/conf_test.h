/*
 * conf_test.h — helpers shared by the conf tests: parse YAML text expecting success or
 * an error (printing both messages when the expectation fails), and read files.
 */
#ifndef ND_CONF_TEST_H
#define ND_CONF_TEST_H

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conf_impl.h"

/* Parses text as "t.yaml"; any error fails the test with the message. */
#define PARSE_OK(cfg, text)                                                                    \
    do {                                                                                       \
        nd_error e_ = {0};                                                                     \
        const char *t_ = (text);                                                               \
        if (nd_config_parse((cfg), t_, strlen(t_), "t.yaml", &e_))                             \
            CHECK_FAIL_("unexpected error for:\n%s\n-> %s", t_, e_.msg);                       \
    } while (0)

/* Parses text as "t.yaml": it must fail with ND_ECONFIG and a message containing want. */
#define PARSE_ERR(text, want)                                                                  \
    do {                                                                                       \
        nd_error e_ = {0};                                                                     \
        nd_config c_;                                                                          \
        const char *t_ = (text);                                                               \
        int rc_ = nd_config_parse(&c_, t_, strlen(t_), "t.yaml", &e_);                         \
        nd_config_free(&c_);                                                                   \
        if (rc_ != ND_ECONFIG)                                                                 \
            CHECK_FAIL_("expected an error containing \"%s\" for:\n%s\n-> rc %d", (want), t_,  \
                        rc_);                                                                  \
        if (!strstr(e_.msg, (want)))                                                           \
            CHECK_FAIL_("error for:\n%s\n-> \"%s\"\ndoes not contain \"%s\"", t_, e_.msg,      \
                        (want));                                                               \
    } while (0)

/* What fn writes, as a malloc'd string. */
static inline char *conf_test_capture(void (*fn)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    fn(f);
    CHECK(fclose(f) == 0);
    return buf;
}

/* A whole file, malloc'd and NUL-terminated; NULL when it cannot be read. */
static inline char *conf_test_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
        n = fread(buf + len, 1, 4096, f);
        len += n;
    } while (n);
    fclose(f);
    buf[len] = 0;
    return buf;
}

#endif
