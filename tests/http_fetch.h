/*
 * http_fetch.h — a plain HTTP client for the tests of the metrics endpoints (live,
 * capture, replay) on 127.0.0.1: connect, send a request, read the answer until the
 * endpoint closes. Include after check.h.
 */
#ifndef ND_TEST_HTTP_FETCH_H
#define ND_TEST_HTTP_FETCH_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection to 127.0.0.1:port, or -1. */
static inline int http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads from fd until the peer closes (or resets), into buf (NUL-terminated); returns
 * the bytes read. */
static inline int http_read_all(int fd, char *buf, size_t len)
{
    size_t n = 0;
    ssize_t r;
    while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    return (int)n;
}

/* The request req to 127.0.0.1:port, its answer into buf. Returns bytes read, -1 when
 * not reachable. */
static inline int http_fetch(int port, const char *req, char *buf, size_t len)
{
    int fd = http_connect(port);
    if (fd < 0) return -1;
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    int n = http_read_all(fd, buf, len);
    close(fd);
    return n;
}

/* Checks Prometheus text (an answer's body, or anything after it): every sample's
 * family has its "# HELP" and "# TYPE" lines before it, a counter's name ends in _total,
 * and there is at least one sample. */
static inline void http_check_prometheus(const char *text)
{
    const char *body = strstr(text, "\r\n\r\n");
    int samples = 0;
    for (const char *p = body ? body + 4 : text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[0] != '#') {
            char name[128], help[160], type[160];
            size_t k = strcspn(p, "{ ");
            if (k >= sizeof name) CHECK_FAIL_("long metric name in: %.*s", (int)n, p);
            snprintf(name, sizeof name, "%.*s", (int)k, p);
            snprintf(help, sizeof help, "# HELP %s ", name);
            snprintf(type, sizeof type, "# TYPE %s ", name);
            const char *h = strstr(text, help), *t = strstr(text, type);
            if (!h || !t || h > p || t > p)
                CHECK_FAIL_("%s: no # HELP or # TYPE before it", name);
            int counter = !strncmp(t + strlen(type), "counter\n", 8);
            if (!counter && strncmp(t + strlen(type), "gauge\n", 6))
                CHECK_FAIL_("%s: type is neither counter nor gauge", name);
            if (counter != (k > 6 && !strncmp(name + k - 6, "_total", 6)))
                CHECK_FAIL_("%s: a counter's name, and only a counter's, ends in _total", name);
            samples++;
        }
        p += n + (nl != NULL);
    }
    CHECK(samples > 0);
}

#endif
