/*
 * pipe_report.c — what `netdiffus live` tells (live_impl.h): the status line, the
 * --stats JSON lines and the Prometheus text, all from one set of figures; the metrics
 * thread that serves that text on 127.0.0.1; the memory bounds shown at start.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "live_impl.h"

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The figures every report shares: capture totals, ring counters, step, loss, RSS. */
void nd_live_gather(nd_live *L, const nd_online_info *in, nd_live_figures *f, uint64_t t0,
                    uint64_t now)
{
    pthread_mutex_lock(&L->mu);
    f->packets = L->snap.tot.packets;
    f->skipped = L->snap.tot.skipped;
    f->src = L->snap.src;
    f->flows = L->snap.tot.flows;
    f->active = L->snap.tot.active_flows;
    f->windows = L->snap.tot.windows;
    pthread_mutex_unlock(&L->mu);
    f->t = (double)(now - t0) * 1e-9;
    f->pushed = nd_wring_pushed(L->ring);
    f->dropped = nd_wring_dropped(L->ring);
    f->popped = nd_wring_popped(L->ring);
    f->step = in->step;
    f->loss = in->loss;
    f->rss = rss_bytes();
}

/* Appends ,"name":"value" to a JSON object, value escaped (it is a path). */
static void json_string_field(FILE *out, const char *name, const char *value)
{
    fprintf(out, ",\"%s\":\"", name);
    for (const unsigned char *c = (const unsigned char *)value; *c; c++)
        if (*c == '"' || *c == '\\') fprintf(out, "\\%c", *c);
        else if (*c < 0x20) fprintf(out, "\\u%04x", *c);
        else fputc(*c, out);
    fputc('"', out);
}

/* Status line, JSON line and metrics text from the same figures. */
void nd_live_report(nd_live *L, const nd_live_figures *f, int final)
{
    nd_online *o = L->online;
    FILE *stats = L->o->stats;
    nd_online_info in;
    nd_online_get_info(o, &in);
    char cls[512] = "";
    size_t off = 0;
    for (uint32_t i = 0; i < in.n_classes && off < sizeof cls - 1; i++) {
        nd_online_class_info ci;
        nd_online_class(o, i, &ci);
        int n = snprintf(cls + off, sizeof cls - off, "%s%s=%" PRIu64 "%s", i ? " " : "",
                         ci.name, ci.seen,
                         ci.model_class == ND_ONLINE_NO_ROW ? "(no row)"
                         : ci.model_class < 0 && ci.seen    ? "(warm-up)"
                                                            : "");
        off += n > 0 ? (size_t)n : 0;
    }
    char ck[64];
    if (f->ckpt_count)
        snprintf(ck, sizeof ck, "step %" PRIu64 " %.0fs ago", f->ckpt_step, f->ckpt_age);
    else snprintf(ck, sizeof ck, "none yet");
    char loss[32] = "-"; /* none before the first step */
    if (f->step) snprintf(loss, sizeof loss, "%.4f", f->loss);
    if (!final)
        nd_status("%.0f pkt/s  flows %" PRIu64 "  windows %s  ring drops %" PRIu64
                  "  step %" PRIu64 "  loss %s  %.1f img/s  ckpt %s",
                  f->pps, f->active, cls, f->dropped, f->step, loss, f->ips, ck);
    if (stats) {
        fprintf(stats,
                "{\"t\":%.3f,\"packets\":%" PRIu64 ",\"pps\":%.1f,\"flows\":%" PRIu64
                ",\"active_flows\":%" PRIu64 ",\"windows\":%" PRIu64 ",\"ring_pushed\":%" PRIu64
                ",\"ring_dropped\":%" PRIu64 ",\"windows_taken\":%" PRIu64 ",\"step\":%" PRIu64
                ",\"loss\":%.6f,\"images_per_s\":%.2f,\"rss_bytes\":%" PRIu64
                ",\"checkpoints\":%" PRIu64 ",\"checkpoint_step\":%" PRIu64
                ",\"input_done\":%s,\"final\":%s,\"classes\":{",
                f->t, f->packets, f->pps, f->flows, f->active, f->windows, f->pushed,
                f->dropped, f->popped, f->step, f->loss, f->ips, f->rss, f->ckpt_count,
                f->ckpt_step, f->input_done ? "true" : "false", final ? "true" : "false");
        for (uint32_t i = 0; i < in.n_classes; i++) {
            nd_online_class_info ci;
            nd_online_class(o, i, &ci);
            fprintf(stats,
                    "%s\"%s\":{\"windows\":%" PRIu64 ",\"kept\":%u,\"model_class\":%d,"
                    "\"clipped\":%" PRIu64 ",\"refits\":%u}",
                    i ? "," : "", ci.name, ci.seen, ci.kept, ci.model_class, ci.clipped,
                    ci.refits);
        }
        /* the accounting: packets = parsed + skipped (each reason a counter); what the
         * sources handed over and lost; checkpoints that could not be written */
        fprintf(stats,
                "},\"skipped\":%" PRIu64 ",\"checkpoint_failures\":%" PRIu64
                ",\"source\":{\"received\":%" PRIu64 ",\"dropped\":%" PRIu64
                ",\"if_dropped\":%" PRIu64 ",\"nombuf\":%" PRIu64 ",\"errors\":%" PRIu64
                "},\"counters\":{",
                f->skipped, f->ckpt_failed, f->src.received, f->src.dropped, f->src.if_dropped,
                f->src.nombuf, f->src.errors);
        pthread_mutex_lock(&L->mu);
        for (uint32_t i = 0; i < L->snap.n_counters; i++)
            fprintf(stats, "%s\"%s\":%" PRIu64, i ? "," : "", L->snap.counter_names[i],
                    L->snap.counters[i]);
        pthread_mutex_unlock(&L->mu);
        fputc('}', stats);
        if (f->ckpt_fallback) json_string_field(stats, "checkpoint_fallback", f->ckpt_fallback);
        fputs("}\n", stats);
        fflush(stats);
    }
    if (L->o->metrics_port) {
        char *m = malloc(ND_LIVE_METRICS_MAX);
        if (!m) return;
        int n = snprintf(
            m, ND_LIVE_METRICS_MAX,
            "# TYPE netdiffus_live_packets_total counter\nnetdiffus_live_packets_total %" PRIu64
            "\n"
            "# TYPE netdiffus_live_packets_skipped_total counter\n"
            "netdiffus_live_packets_skipped_total %" PRIu64 "\n"
            "# TYPE netdiffus_live_flows_total counter\nnetdiffus_live_flows_total %" PRIu64
            "\n"
            "# TYPE netdiffus_live_flows_active gauge\nnetdiffus_live_flows_active %" PRIu64
            "\n"
            "# TYPE netdiffus_live_windows_total counter\nnetdiffus_live_windows_total %" PRIu64
            "\n"
            "# TYPE netdiffus_live_ring_dropped_total counter\nnetdiffus_live_ring_dropped_total %" PRIu64
            "\n"
            "# TYPE netdiffus_live_train_step gauge\nnetdiffus_live_train_step %" PRIu64 "\n"
            "# TYPE netdiffus_live_train_loss gauge\nnetdiffus_live_train_loss %.6f\n"
            "# TYPE netdiffus_live_images_per_second gauge\nnetdiffus_live_images_per_second %.2f\n"
            "# TYPE netdiffus_live_checkpoint_step gauge\nnetdiffus_live_checkpoint_step %" PRIu64
            "\n"
            "# TYPE netdiffus_live_checkpoint_failures_total counter\n"
            "netdiffus_live_checkpoint_failures_total %" PRIu64 "\n"
            "# TYPE netdiffus_live_rss_bytes gauge\nnetdiffus_live_rss_bytes %" PRIu64 "\n"
            "# TYPE netdiffus_live_class_windows_total counter\n",
            f->packets, f->skipped, f->flows, f->active, f->windows, f->dropped, f->step,
            f->loss, f->ips, f->ckpt_step, f->ckpt_failed, f->rss);
        for (uint32_t i = 0; i < in.n_classes && n > 0 && (size_t)n < ND_LIVE_METRICS_MAX;
             i++) {
            nd_online_class_info ci;
            nd_online_class(o, i, &ci);
            n += snprintf(m + n, ND_LIVE_METRICS_MAX - (size_t)n,
                          "netdiffus_live_class_windows_total{class=\"%s\"} %" PRIu64 "\n",
                          ci.name, ci.seen);
        }
        pthread_mutex_lock(&L->mu);
        memcpy(L->metrics, m, ND_LIVE_METRICS_MAX);
        pthread_mutex_unlock(&L->mu);
        free(m);
    }
}

void nd_live_show_memory(const nd_live *L)
{
    const nd_live_opts *o = L->o;
    uint32_t n_classes = L->n_classes;
    size_t wf = (size_t)o->capture.channels * o->capture.window;
    /* a flow is three 64-byte lines plus two 8-byte index slots (docs/CAPTURE.md) */
    double flows = (double)o->capture.flow_capacity * (3 * 64 + 2 * 8);
    double ring = (double)nd_wring_bytes(o->ring_size, wf);
    double res = (double)nd_online_memory_bound(&o->online, n_classes, wf),
           mib = 1024.0 * 1024.0;
    /* Bounds, not use: the flow table's pages are touched only as flows arrive, so an
     * input of 80 flows uses a few hundred KiB of it. */
    nd_info("live: memory at most (used as it fills): flow table %.1f MiB for %u concurrent "
            "flows (capture.flow_capacity), ring %.1f MiB (%u windows), reservoirs + recent "
            "%.1f MiB (%u classes x %u + %u windows): %.1f MiB in all, plus the model",
            flows / mib, o->capture.flow_capacity, ring / mib, o->ring_size, res / mib,
            n_classes, o->online.reservoir, o->online.recent, (flows + ring + res) / mib);
}

/* The metrics endpoint serves clients side by side from one poll loop, so that no client
 * can hold it or anything else: every socket is non-blocking, a client has HTTP_DEADLINE_MS
 * from its accept to be answered and gone (never extended: one byte a second buys
 * nothing), a request head is read up to ND_HTTP_HEAD_MAX bytes (431 beyond), and with
 * every slot taken a new client replaces the oldest one. The trainer and the capture
 * thread never wait for this thread: they only share L->metrics, copied under L->mu. */
enum { HTTP_CLIENTS = 16, HTTP_DEADLINE_MS = 5000, HTTP_POLL_MS = 200, HTTP_HDR_MAX = 256 };

typedef struct http_client {
    int fd;            /* -1: a free slot */
    uint64_t deadline; /* nd_now_ns() by which it is closed, whatever its state */
    size_t in;         /* bytes of req received */
    size_t out, sent;  /* bytes of ans to send, sent; out 0: still reading the request */
    int draining;      /* answered and shut for writing: reading until the client closes */
    char req[ND_HTTP_HEAD_MAX];
    char ans[HTTP_HDR_MAX + ND_LIVE_METRICS_MAX];
} http_client;

static void client_close(http_client *c)
{
    close(c->fd);
    c->fd = -1;
}

/* The status of the answer to a whole request head: GET and HEAD of /metrics only. */
static const char *metrics_status(const nd_http_req *r)
{
    if (r->path_len != 8 || memcmp(r->path, "/metrics", 8)) return "404 Not Found";
    int get = r->method_len == 3 && !memcmp(r->method, "GET", 3);
    int head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);
    return get || head ? "200 OK" : "405 Method Not Allowed";
}

/* Puts the answer with this status in c->ans (body: the metrics text for a 200, none for
 * HEAD or errors). */
static void client_answer(nd_live_metrics *M, http_client *c, const char *status, int head)
{
    char *body = c->ans + HTTP_HDR_MAX;
    size_t len = 0;
    if (status[0] == '2') {
        pthread_mutex_lock(&M->L->mu);
        memcpy(body, M->L->metrics, ND_LIVE_METRICS_MAX);
        pthread_mutex_unlock(&M->L->mu);
        body[ND_LIVE_METRICS_MAX - 1] = 0;
        len = strlen(body);
    }
    int h = snprintf(c->ans, HTTP_HDR_MAX,
                     "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\n%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, !strncmp(status, "405", 3) ? "Allow: GET, HEAD\r\n" : "", len);
    if (head) len = 0;
    memmove(c->ans + h, body, len);
    c->out = (size_t)h + len;
    c->sent = 0;
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
    /* Closing with unread bytes would send a reset that can destroy the answer before
     * the client reads it (an oversize request): shut writing, read until the client
     * closes or its deadline. */
    shutdown(c->fd, SHUT_WR);
    c->draining = 1;
}

/* Reads what the client sent; answers once the request head is whole or wrong. */
static void client_read(nd_live_metrics *M, http_client *c)
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
        if (rc == ND_HTTP_COMPLETE)
            client_answer(M, c, metrics_status(&q),
                          q.method_len == 4 && !memcmp(q.method, "HEAD", 4));
        else
            client_answer(M, c,
                          rc == ND_HTTP_TOO_LARGE ? "431 Request Header Fields Too Large"
                                                  : "400 Bad Request",
                          0);
        client_write(c);
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
    return 0;
}

/* A client whose deadline passed: a request still coming is told 408 (one try, no
 * waiting), then closed. */
static void client_expire(nd_live_metrics *M, http_client *c)
{
    if (!c->out) {
        client_answer(M, c, "408 Request Timeout", 0);
        send(c->fd, c->ans, c->out, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    client_close(c);
}

void *nd_live_metrics_main(void *arg)
{
    nd_live_metrics *M = arg;
    http_client *cl = malloc(HTTP_CLIENTS * sizeof *cl);
    if (!cl) return NULL;
    for (int i = 0; i < HTTP_CLIENTS; i++) cl[i].fd = -1;
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
            if (!p[k].revents) continue;
            if (c->out && !c->draining) client_write(c);
            else client_read(M, c);
        }
        if (p[0].revents & POLLIN)
            for (int k = 0; k < HTTP_CLIENTS; k++)
                if (client_accept(M->fd, cl)) break;
    }
    for (int i = 0; i < HTTP_CLIENTS; i++)
        if (cl[i].fd >= 0) close(cl[i].fd);
    free(cl);
    return NULL;
}

int nd_live_metrics_open(uint32_t port, nd_error *e)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return nd_error_set(e, -errno, "live: metrics socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* localhost only, never a wire */
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, HTTP_CLIENTS)) {
        int err = errno;
        close(fd);
        return nd_error_set(e, -err, "live: metrics on 127.0.0.1:%u: %s (live.metrics_port)",
                            port, strerror(err));
    }
    return fd;
}
