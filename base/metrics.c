/*
 * metrics.c — the metrics endpoint (nd.h) of the long runs (live, capture, replay):
 * Prometheus text built family by family, and the thread that serves the newest text on
 * 127.0.0.1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd.h"

/* ---- the text ---------------------------------------------------------------------- */

static void prom_printf(nd_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prom_printf(nd_prom *p, const char *fmt, ...)
{
    for (int pass = 0; pass < 2 && !p->failed; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n =
            vsnprintf(p->buf ? p->buf + p->len : NULL, p->buf ? p->cap - p->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) p->failed = 1;
        else if (p->buf && (size_t)n < p->cap - p->len) {
            p->len += (size_t)n;
            return;
        } else {
            size_t cap = p->cap ? p->cap : 4096;
            while (cap - p->len <= (size_t)n) cap *= 2;
            char *b = realloc(p->buf, cap);
            if (!b) p->failed = 1;
            else p->buf = b, p->cap = cap;
        }
    }
}

void nd_prom_family(nd_prom *p, const char *name, int type, const char *help)
{
    size_t n = strlen(name);
    ND_ASSERT(type != ND_PROM_COUNTER || (n > 6 && !strcmp(name + n - 6, "_total")));
    prom_printf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                type == ND_PROM_COUNTER ? "counter" : "gauge");
}

void nd_prom_sample(nd_prom *p, const char *name, const char *label, const char *value,
                    double v)
{
    char num[32];
    if (isnan(v)) snprintf(num, sizeof num, "NaN");
    else if (isinf(v)) snprintf(num, sizeof num, v > 0 ? "+Inf" : "-Inf");
    else snprintf(num, sizeof num, "%.17g", v);
    if (!label) {
        prom_printf(p, "%s %s\n", name, num);
        return;
    }
    /* a label value escapes backslash, double quote and line feed */
    prom_printf(p, "%s{%s=\"", name, label);
    for (const char *c = value; *c; c++)
        prom_printf(p, "%s",
                    *c == '\\'   ? "\\\\"
                    : *c == '"'  ? "\\\""
                    : *c == '\n' ? "\\n"
                                 : (char[2]){*c, 0});
    prom_printf(p, "\"} %s\n", num);
}

void nd_prom_metric(nd_prom *p, const char *name, int type, const char *help, double v)
{
    nd_prom_family(p, name, type, help);
    nd_prom_sample(p, name, NULL, NULL, v);
}

void nd_prom_free(nd_prom *p)
{
    free(p->buf);
    *p = (nd_prom){0};
}

/* ---- the endpoint ------------------------------------------------------------------ */

/* A file answer (file_route) may take longer than the 5 s of a text answer:
 * its deadline, set when the answer starts, adds one second per MiB (a peer reading
 * slower than 1 MiB/s is cut off). */
#define FILE_BYTES_PER_SEC (1024u * 1024u)

/* Every socket is non-blocking and one poll loop serves them all, so that no client can
 * hold the endpoint or anything else: a client has HTTP_DEADLINE_MS from its accept to be
 * answered and gone (never extended: one byte a second buys nothing), a request head is
 * read up to ND_HTTP_HEAD_MAX bytes (431 beyond), and with every slot taken a new client
 * replaces the oldest one. */
enum { HTTP_CLIENTS = 16, HTTP_DEADLINE_MS = 5000, HTTP_POLL_MS = 200, HTTP_HDR_MAX = 256 };

typedef struct http_client {
    int fd;            /* -1: a free slot */
    uint64_t deadline; /* nd_now_ns() by which it is closed, whatever its state */
    size_t in;         /* bytes of req received */
    size_t out, sent;  /* bytes of ans to send, sent; out 0: still reading the request */
    int draining;      /* answered and shut for writing: reading until the client closes */
    char *ans;         /* the answer (malloc'd); for a file, its head */
    int file;          /* the file being sent after the head, or -1 */
    off_t file_off, file_len;
    char req[ND_HTTP_HEAD_MAX];
} http_client;

struct nd_metrics {
    int fd;
    volatile sig_atomic_t stop;
    pthread_t thr;
    pthread_mutex_t mu; /* guards text */
    char *text;         /* the newest text published (malloc'd), NULL: none yet */
    char *file_route;   /* a file served besides the text (malloc'd), NULL: none */
    char *file_path;
    http_client cl[HTTP_CLIENTS];
};

static void client_close(http_client *c)
{
    close(c->fd);
    c->fd = -1;
    if (c->file >= 0) close(c->file);
    c->file = -1;
    free(c->ans);
    c->ans = NULL;
}

static int path_is(const nd_http_req *r, const char *path)
{
    return path && r->path_len == strlen(path) && !memcmp(r->path, path, r->path_len);
}

/* The status of the answer to a whole request head: GET and HEAD of /metrics and of the
 * file's route only. */
static const char *metrics_status(nd_metrics *M, const nd_http_req *r)
{
    if (!path_is(r, "/metrics") && !path_is(r, M->file_route)) return "404 Not Found";
    int get = r->method_len == 3 && !memcmp(r->method, "GET", 3);
    int head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);
    return get || head ? "200 OK" : "405 Method Not Allowed";
}

/* Puts the answer with this status in c->ans (body: the metrics text for a 200, none for
 * HEAD or errors). Out of memory, the client is closed unanswered. */
static void client_answer(nd_metrics *M, http_client *c, const char *status, int head)
{
    int ok = status[0] == '2';
    pthread_mutex_lock(&M->mu);
    size_t len = ok && M->text ? strlen(M->text) : 0;
    free(c->ans);
    c->ans = malloc(HTTP_HDR_MAX + len);
    if (c->ans && len) memcpy(c->ans + HTTP_HDR_MAX, M->text, len);
    pthread_mutex_unlock(&M->mu);
    if (!c->ans) {
        client_close(c);
        return;
    }
    int h = snprintf(c->ans, HTTP_HDR_MAX,
                     "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\n%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status,
                     !strncmp(status, "405", 3)   ? "Allow: GET, HEAD\r\n"
                     : !strncmp(status, "503", 3) ? "Retry-After: 5\r\n"
                                                  : "",
                     len);
    if (head) len = 0;
    memmove(c->ans + h, c->ans + HTTP_HDR_MAX, len);
    c->out = (size_t)h + len;
    c->sent = 0;
}

/* The file of the route as it is now: the head in c->ans, the file sent after it from an
 * open descriptor (a file replaced by rename meanwhile is still sent whole: the atomic
 * writer never changes a file in place). No file yet: 503 with Retry-After. Its ETag
 * changes with every new file (inode, size, modification time). */
static void client_answer_file(nd_metrics *M, http_client *c, int head)
{
    int fd = open(M->file_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        client_answer(M, c, "503 Service Unavailable", 0);
        return;
    }
    free(c->ans);
    if (!(c->ans = malloc(HTTP_HDR_MAX))) {
        close(fd);
        client_close(c);
        return;
    }
    int h = snprintf(c->ans, HTTP_HDR_MAX,
                     "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %lld\r\nETag: \"%llx-%llx-%llx.%09ld\"\r\n"
                     "Connection: close\r\n\r\n",
                     (long long)st.st_size, (unsigned long long)st.st_ino,
                     (unsigned long long)st.st_size, (unsigned long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
    c->out = (size_t)h;
    c->sent = 0;
    c->file_off = 0;
    c->file_len = head ? 0 : st.st_size;
    if (head) close(fd);
    else c->file = fd;
    c->deadline += (uint64_t)st.st_size / FILE_BYTES_PER_SEC * 1000000000u;
}

/* Sends what the socket takes of the answer; when all is sent, shuts the writing side
 * and drains. A client that went away (EPIPE, ECONNRESET) costs nothing but its answer;
 * MSG_NOSIGNAL keeps SIGPIPE from ending the process. */
static void client_write(http_client *c)
{
    while (c->sent < c->out) {
        ssize_t w = send(c->fd, c->ans + c->sent, c->out - c->sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (w <= 0) {
            client_close(c);
            return;
        }
        c->sent += (size_t)w;
    }
    while (c->file >= 0 && c->file_off < c->file_len) {
        ssize_t w = sendfile(c->fd, c->file, &c->file_off, (size_t)(c->file_len - c->file_off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (w <= 0) { /* gone, or the file shorter than it was: the length is wrong now */
            client_close(c);
            return;
        }
    }
    /* Closing with unread bytes would send a reset that can destroy the answer before
     * the client reads it (an oversize request): shut writing, read until the client
     * closes or its deadline. */
    shutdown(c->fd, SHUT_WR);
    c->draining = 1;
}

/* Reads what the client sent; answers once the request head is whole or wrong. */
static void client_read(nd_metrics *M, http_client *c)
{
    for (;;) {
        char scratch[4096];
        char *to = c->draining ? scratch : c->req + c->in;
        size_t room = c->draining ? sizeof scratch : sizeof c->req - c->in;
        if (!room) return; /* answered already (431): the answer is being written */
        ssize_t r = recv(c->fd, to, room, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) { /* the client closed or reset: nothing to answer to */
            client_close(c);
            return;
        }
        if (c->draining || c->out) continue;
        c->in += (size_t)r;
        nd_http_req q;
        int rc = nd_http_parse(c->req, c->in, sizeof c->req, &q);
        if (rc == ND_HTTP_INCOMPLETE) continue;
        int head = q.method_len == 4 && !memcmp(q.method, "HEAD", 4);
        const char *status = rc == ND_HTTP_COMPLETE ? metrics_status(M, &q) : NULL;
        if (status && status[0] == '2' && path_is(&q, M->file_route))
            client_answer_file(M, c, head);
        else if (status) client_answer(M, c, status, head);
        else
            client_answer(M, c,
                          rc == ND_HTTP_TOO_LARGE ? "431 Request Header Fields Too Large"
                                                  : "400 Bad Request",
                          0);
        if (c->fd >= 0) client_write(c);
        return;
    }
}

/* A new client into a free slot, or into the oldest client's; 0, or -1 when none was
 * waiting (the listening socket is non-blocking: one that left before its accept must not
 * stop the loop). */
static int client_accept(int fd, http_client *cl)
{
    int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s < 0) return -1;
    http_client *c = &cl[0];
    for (int i = 0; i < HTTP_CLIENTS; i++) {
        if (cl[i].fd < 0) {
            c = &cl[i];
            break;
        }
        if (cl[i].deadline < c->deadline) c = &cl[i];
    }
    if (c->fd >= 0) client_close(c);
    c->fd = s;
    c->deadline = nd_now_ns() + (uint64_t)HTTP_DEADLINE_MS * 1000000u;
    c->in = c->out = c->sent = 0;
    c->draining = 0;
    c->file = -1;
    return 0;
}

/* A client whose deadline passed: a request still coming is told 408 (one try, no
 * waiting), then closed. */
static void client_expire(nd_metrics *M, http_client *c)
{
    if (!c->out) {
        client_answer(M, c, "408 Request Timeout", 0);
        if (c->fd < 0) return;
        send(c->fd, c->ans, c->out, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    client_close(c);
}

static void *metrics_main(void *arg)
{
    nd_metrics *M = arg;
    http_client *cl = M->cl;
    while (!M->stop) {
        struct pollfd p[1 + HTTP_CLIENTS] = {{.fd = M->fd, .events = POLLIN}};
        int who[1 + HTTP_CLIENTS], n = 1;
        uint64_t now = nd_now_ns(), wait = (uint64_t)HTTP_POLL_MS * 1000000u;
        for (int i = 0; i < HTTP_CLIENTS; i++) {
            if (cl[i].fd < 0) continue;
            if (cl[i].deadline <= now) {
                client_expire(M, &cl[i]);
                continue;
            }
            if (cl[i].deadline - now < wait) wait = cl[i].deadline - now;
            int writing = cl[i].out && !cl[i].draining;
            p[n] = (struct pollfd){.fd = cl[i].fd, .events = writing ? POLLOUT : POLLIN};
            who[n++] = i;
        }
        if (poll(p, (nfds_t)n, (int)(wait / 1000000u) + 1) <= 0) continue;
        for (int k = 1; k < n; k++) {
            http_client *c = &cl[who[k]];
            if (!p[k].revents || c->fd < 0) continue;
            if (c->out && !c->draining) client_write(c);
            else client_read(M, c);
        }
        if (p[0].revents & POLLIN)
            for (int k = 0; k < HTTP_CLIENTS; k++)
                if (client_accept(M->fd, cl)) break;
    }
    return NULL;
}

nd_metrics *nd_metrics_start(const char *addr, uint32_t port, const char *file_route,
                             const char *file_path, const char *what, nd_error *e)
{
    nd_metrics *M = calloc(1, sizeof *M);
    if (!addr) addr = "127.0.0.1";
    if (M && file_route &&
        !((M->file_route = strdup(file_route)) && (M->file_path = strdup(file_path)))) {
        free(M->file_route);
        free(M);
        M = NULL;
    }
    if (!M) {
        nd_error_set(e, -ENOMEM, "metrics: out of memory");
        return NULL;
    }
    for (int i = 0; i < HTTP_CLIENTS; i++) M->cl[i].fd = M->cl[i].file = -1;
    pthread_mutex_init(&M->mu, NULL);
    char ps[8];
    snprintf(ps, sizeof ps, "%" PRIu32, port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV},
                    *ai = NULL;
    int g = getaddrinfo(addr, ps, &hints, &ai), one = 1, err = 0;
    M->fd = -1;
    if (g) err = EINVAL;
    else if ((M->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        err = errno;
    if (!err) {
        setsockopt(M->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        err =
            bind(M->fd, ai->ai_addr, ai->ai_addrlen) || listen(M->fd, HTTP_CLIENTS) ? errno : 0;
    }
    if (ai) freeaddrinfo(ai);
    if (!err) err = pthread_create(&M->thr, NULL, metrics_main, M);
    if (!err) return M;
    nd_error_set(e, -err, "metrics on %s:%u: %s (%s)", addr, port,
                 g ? "not a numeric IPv4 or IPv6 address" : strerror(err), what);
    if (M->fd >= 0) close(M->fd);
    pthread_mutex_destroy(&M->mu);
    free(M->file_route);
    free(M->file_path);
    free(M);
    return NULL;
}

void nd_metrics_publish(nd_metrics *m, const nd_prom *p)
{
    char *text = p->failed || !p->buf ? NULL : strdup(p->buf);
    if (!text) return; /* the previous text stays */
    pthread_mutex_lock(&m->mu);
    char *old = m->text;
    m->text = text;
    pthread_mutex_unlock(&m->mu);
    free(old);
}

void nd_metrics_stop(nd_metrics *m)
{
    if (!m) return;
    m->stop = 1;
    pthread_join(m->thr, NULL);
    for (int i = 0; i < HTTP_CLIENTS; i++)
        if (m->cl[i].fd >= 0) client_close(&m->cl[i]);
    close(m->fd);
    pthread_mutex_destroy(&m->mu);
    free(m->text);
    free(m->file_route);
    free(m->file_path);
    free(m);
}
