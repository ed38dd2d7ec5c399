/*
 * test_live_metrics.c — the Prometheus endpoint of a running `netdiffus live` against
 * hostile and clumsy clients on 127.0.0.1: every series has # HELP and # TYPE lines;
 * requests that arrive in pieces are answered by
 * what they ask (200 GET/HEAD /metrics, 404 other paths, 405 other methods with Allow,
 * 400 rubbish), while another client is served in between; a request head beyond the
 * bound gets 431; a client that sends a byte at a time is cut off (408) and does not
 * keep other clients from being served meanwhile; clients that reset mid-answer or
 * mid-request leave live running; more idle clients than the endpoint keeps do not lock
 * it; and SIGINT still ends live at once with idle clients connected.
 */
#include <poll.h>

#include "live_test.h"

static int port;
static char ans[65536];

/* A connection that sends s (whatever the endpoint does with it meanwhile). */
static int send_part(int fd, const char *s, size_t n)
{
    return (int)send(fd, s, n, MSG_NOSIGNAL);
}

/* GET /metrics on a connection of its own: must be answered 200 with the metrics. */
static void normal_client(const char *when)
{
    static char buf[65536];
    if (http_fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf) <= 0)
        CHECK_FAIL_("%s: no answer", when);
    if (!strstr(buf, "HTTP/1.0 200 OK") || !strstr(buf, "netdiffus_live_train_step "))
        CHECK_FAIL_("%s: answer:\n%s", when, buf);
}

/* A request sent in two parts with a whole request of another client served between
 * them; the answer to it in ans. */
static void split(const char *a, const char *b)
{
    int fd = http_connect(port);
    CHECK(fd >= 0);
    CHECK_EQ(send_part(fd, a, strlen(a)), (int)strlen(a));
    normal_client("between the parts of another request");
    CHECK_EQ(send_part(fd, b, strlen(b)), (int)strlen(b));
    CHECK(http_read_all(fd, ans, sizeof ans) > 0);
    close(fd);
}

/* Waits for the endpoint of the live just started to answer. */
static void wait_endpoint(pid_t pid)
{
    double t0 = live_now();
    while (http_fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", ans, sizeof ans) <= 0 ||
           !strstr(ans, "netdiffus_live_train_step ")) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            CHECK_FAIL_("live exited (status %d); log:\n%s", st,
                        live_text(tmp_path("log.txt")));
        if (live_now() - t0 > 60) CHECK_FAIL_("no metrics endpoint on port %d", port);
        usleep(50000);
    }
}

int main(void)
{
    live_files f;
    live_files_make(&f);
    char a[4096];
    port = 20000 + (int)((getpid() + 7919) % 20000);
    snprintf(a, sizeof a, "%s live -c %s --duration 300s --set live.metrics_port=%d >>%s 2>&1",
             ND_BINARY, f.conf, port, tmp_path("log.txt"));
    pid_t pid = live_spawn(a);
    wait_endpoint(pid);
    http_check_prometheus(ans); /* # HELP and # TYPE for every series */

    /* requests in pieces, another client served in between */
    split("GET /metr", "ics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    CHECK_CONTAINS(ans, "HTTP/1.0 200 OK");
    CHECK_CONTAINS(ans, "netdiffus_live_class_windows_total");
    split("HEAD /metrics HTTP/1.0\r\n", "\r\n");
    CHECK_CONTAINS(ans, "HTTP/1.0 200 OK");
    CHECK_CONTAINS(ans, "Content-Length: ");
    CHECK(!strstr(ans, "netdiffus_live")); /* no body */
    split("GET /other HTTP/1.0\r\nAccept: */", "*\r\n\r\n");
    CHECK_CONTAINS(ans, "HTTP/1.0 404 Not Found");
    split("DELETE /metrics HTTP/1.0\r\n", "Content-Length: 0\r\n\r\n");
    CHECK_CONTAINS(ans, "HTTP/1.0 405 Method Not Allowed");
    CHECK_CONTAINS(ans, "Allow: GET, HEAD\r\n");
    split("GET /metrics HT", "XP/1.0\r\n\r\n");
    CHECK_CONTAINS(ans, "HTTP/1.0 400 Bad Request");
    CHECK(http_fetch(port, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 200 OK");

    /* a head beyond the bound: 431, and the answer arrives although the request was not
     * read to its end */
    {
        static char big[3 * 8192]; /* three times the bound of a head */
        size_t n = (size_t)snprintf(big, sizeof big, "GET /metrics HTTP/1.0\r\nX-Pad: ");
        memset(big + n, 'a', sizeof big - n - 4);
        memcpy(big + sizeof big - 4, "\r\n\r\n", 4);
        int fd = http_connect(port);
        CHECK(fd >= 0);
        send_part(fd, big, sizeof big); /* may be cut short once the answer is out */
        CHECK(http_read_all(fd, ans, sizeof ans) > 0);
        CHECK_CONTAINS(ans, "HTTP/1.0 431 Request Header Fields Too Large");
        close(fd);
    }

    /* a slow client: one byte every 200 ms, never a whole head. Others are served while
     * it goes on; it is answered 408 and closed within its deadline */
    {
        int fd = http_connect(port);
        CHECK(fd >= 0);
        const char *start = "GET /metrics HTTP/1.0\r\nX-Slow: ";
        CHECK_EQ(send_part(fd, start, strlen(start)), (int)strlen(start));
        int closed = 0;
        for (int i = 0; i < 200 && !closed; i++) {
            if (i % 5 == 0) normal_client("while a slow client sends");
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 200) > 0) closed = 1;
            else if (send_part(fd, "a", 1) != 1) closed = 1;
        }
        CHECK(closed);
        http_read_all(fd, ans, sizeof ans);
        CHECK_CONTAINS(ans, "HTTP/1.0 408 Request Timeout");
        close(fd);
    }

    /* clients that reset: mid-answer (a receive buffer far smaller than the answer,
     * reset after its first bytes) and mid-request */
    for (int i = 0; i < 10; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), small = 256;
        CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        const char *req = i % 2 ? "GET /metrics HTTP/1.0\r\n\r\n" : "GET /metrics HTTP/1.0\r\n";
        CHECK_EQ(send_part(fd, req, strlen(req)), (int)strlen(req));
        if (i % 2) {
            char first[16];
            CHECK(read(fd, first, sizeof first) > 0); /* the answer has begun */
        }
        struct linger lg = {1, 0};
        CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(fd); /* RST */
    }
    normal_client("after clients reset");
    CHECK_EQ(waitpid(pid, NULL, WNOHANG), 0); /* live goes on */

    /* more idle clients than the endpoint keeps: the oldest are let go, so that a new
     * client is served while the newest idle ones still wait */
    int idle[40];
    for (int i = 0; i < 40; i++) {
        idle[i] = http_connect(port);
        CHECK(idle[i] >= 0);
        CHECK_EQ(send_part(idle[i], "GET /", 5), 5);
    }
    normal_client("with 40 idle clients connected");
    for (int i = 32; i < 40; i++) { /* the newest are still waiting for their request */
        struct pollfd p = {.fd = idle[i], .events = POLLIN};
        if (poll(&p, 1, 0) != 0) CHECK_FAIL_("idle client %d was answered or closed", i);
    }

    /* SIGINT with idle clients still connected: live ends at once, as always */
    live_sigint(pid, "live with idle metrics clients");
    for (int i = 0; i < 40; i++) close(idle[i]);
    CHECK(http_fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", ans, sizeof ans) < 0);
    return 0;
}
