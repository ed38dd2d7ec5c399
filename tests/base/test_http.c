/*
 * test_http.c — the metrics endpoint's request parser (nd_http_parse) on its own:
 * whole heads with their method and path, every prefix of a valid head is "more bytes
 * needed" (a request may arrive one byte at a time), malformed heads are refused as soon
 * as the bytes show it, and a head that does not end within the bound is too large.
 */
#include <string.h>

#include "check.h"
#include "nd.h"

static int parse(const char *s, nd_http_req *r)
{
    return nd_http_parse(s, strlen(s), ND_HTTP_HEAD_MAX, r);
}

/* A whole head: complete with this method and path, and every prefix incomplete. */
static void whole(const char *s, const char *method, const char *path, int minor)
{
    nd_http_req r;
    CHECK_EQ(parse(s, &r), ND_HTTP_COMPLETE);
    CHECK_EQ(r.method_len, strlen(method));
    CHECK(!memcmp(r.method, method, r.method_len));
    CHECK_EQ(r.path_len, strlen(path));
    CHECK(!memcmp(r.path, path, r.path_len));
    CHECK_EQ(r.minor, minor);
    CHECK_EQ(r.head_len, strlen(s));
    for (size_t n = 0; n < strlen(s); n++)
        if (nd_http_parse(s, n, ND_HTTP_HEAD_MAX, &r) != ND_HTTP_INCOMPLETE)
            CHECK_FAIL_("prefix of %zu bytes of \"%s\" is not incomplete", n, s);
}

int main(void)
{
    nd_http_req r;
    whole("GET /metrics HTTP/1.0\r\n\r\n", "GET", "/metrics", 0);
    whole("HEAD /metrics?x=1&y HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: */*\r\n\r\n", "HEAD",
          "/metrics", 1);
    whole("POST /other HTTP/1.1\nContent-Length: 0\n\n", "POST", "/other", 1); /* bare LF */
    whole("GET / HTTP/1.0\r\nX-Empty:\r\nX-Tab: a\tb\r\n\r\n", "GET", "/", 0);
    /* bytes after the head (a body, a pipelined request) are not the head's */
    CHECK_EQ(parse("GET /metrics HTTP/1.0\r\n\r\nGET /", &r), ND_HTTP_COMPLETE);
    CHECK_EQ(r.head_len, 25);

    /* malformed: refused, also before the head ends */
    const char *bad[] = {
        "\r\n\r\n",                              /* no request line */
        " GET /metrics HTTP/1.0\r\n\r\n",        /* empty method */
        "G(T /metrics HTTP/1.0\r\n\r\n",         /* not a token */
        "GET metrics HTTP/1.0\r\n\r\n",          /* not origin form */
        "GET http://x/metrics HTTP/1.0\r\n\r\n", /* absolute form */
        "GET  /metrics HTTP/1.0\r\n\r\n",        /* two spaces */
        "GET /metrics\r\n\r\n",                  /* HTTP/0.9 */
        "GET /metrics HTTP/2.0\r\n\r\n",         /* not 1.x */
        "GET /metrics HTTP/1.2\r\n\r\n",         /* unknown minor */
        "GET /metrics HTTP/1.10\r\n\r\n",        /* trailing */
        "GET /metrics HTTP/1.0 \r\n\r\n",        /* trailing space */
        "GET /met\x01rics HTTP/1.0\r\n\r\n",     /* control in the target */
        "GET /metrics HTTP/1.0\r\nNoColon\r\n\r\n",
        "GET /metrics HTTP/1.0\r\n: empty name\r\n\r\n",
        "GET /metrics HTTP/1.0\r\nBad Name: x\r\n\r\n",
        "GET /metrics HTTP/1.0\r\nA: b\r\n folded\r\n\r\n",
        "GET /metrics HTTP/1.0\r\nA: b\x7f\r\n\r\n",
        "GET /metrics HTTP/1.0\r\nA: b\rc\r\n\r\n", /* a lone CR */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (parse(bad[i], &r) != ND_HTTP_BAD) CHECK_FAIL_("accepted bad head #%zu", i);
    /* found as soon as the bytes show it */
    CHECK_EQ(parse("G(", &r), ND_HTTP_BAD);
    CHECK_EQ(parse("GET x", &r), ND_HTTP_BAD);
    CHECK_EQ(parse("GET / HTTP/2", &r), ND_HTTP_BAD);
    CHECK_EQ(parse("GET / HTTP/1.0\r\nA b", &r), ND_HTTP_BAD);

    /* no head within max bytes: too large, however valid the bytes so far */
    static char big[ND_HTTP_HEAD_MAX + 100];
    size_t n = (size_t)snprintf(big, sizeof big, "GET /metrics HTTP/1.0\r\nX-Pad: ");
    memset(big + n, 'a', sizeof big - n);
    CHECK_EQ(nd_http_parse(big, ND_HTTP_HEAD_MAX - 1, ND_HTTP_HEAD_MAX, &r),
             ND_HTTP_INCOMPLETE);
    CHECK_EQ(nd_http_parse(big, ND_HTTP_HEAD_MAX, ND_HTTP_HEAD_MAX, &r), ND_HTTP_TOO_LARGE);
    CHECK_EQ(nd_http_parse(big, sizeof big, ND_HTTP_HEAD_MAX, &r), ND_HTTP_TOO_LARGE);
    memset(big, '/', sizeof big); /* a request line alone too long */
    memcpy(big, "GET ", 4);
    CHECK_EQ(nd_http_parse(big, sizeof big, ND_HTTP_HEAD_MAX, &r), ND_HTTP_TOO_LARGE);
    /* a head that ends just within the bound is whole */
    n = (size_t)snprintf(big, sizeof big, "GET /metrics HTTP/1.0\r\nX-Pad: ");
    memset(big + n, 'a', ND_HTTP_HEAD_MAX - n - 4);
    memcpy(big + ND_HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
    CHECK_EQ(nd_http_parse(big, ND_HTTP_HEAD_MAX, ND_HTTP_HEAD_MAX, &r), ND_HTTP_COMPLETE);
    return 0;
}
