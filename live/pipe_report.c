/*
 * pipe_report.c — what `netdiffus live` tells (live_impl.h): the status line, the
 * --stats JSON lines and the Prometheus text, all from one set of figures; the metrics
 * thread that serves that text on 127.0.0.1; the memory bounds shown at start.
 */
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
    if (!final)
        nd_status("%.0f pkt/s  flows %" PRIu64 "  windows %s  ring drops %" PRIu64
                  "  step %" PRIu64 "  loss %.4f  %.1f img/s  ckpt %s",
                  f->pps, f->active, cls, f->dropped, f->step, f->loss, f->ips, ck);
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
            "# TYPE netdiffus_live_rss_bytes gauge\nnetdiffus_live_rss_bytes %" PRIu64 "\n"
            "# TYPE netdiffus_live_class_windows_total counter\n",
            f->packets, f->flows, f->active, f->windows, f->dropped, f->step, f->loss, f->ips,
            f->ckpt_step, f->rss);
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
    nd_info("live: memory bounds: flow table %.1f MiB (%u flows), ring %.1f MiB (%u windows), "
            "reservoirs + recent %.1f MiB (%u classes x %u + %u windows): %.1f MiB, plus the "
            "model",
            flows / mib, o->capture.flow_capacity, ring / mib, o->ring_size, res / mib,
            n_classes, o->online.reservoir, o->online.recent, (flows + ring + res) / mib);
}

/* The status line of the answer to one request (req: n bytes, the first read of it): the
 * endpoint serves GET (and HEAD) of /metrics only. */
static const char *metrics_status(const char *req, size_t n)
{
    size_t m = 0;
    while (m < n && req[m] != ' ') m++;
    if (m == n) return "400 Bad Request";
    int get = m == 3 && !memcmp(req, "GET", 3), head = m == 4 && !memcmp(req, "HEAD", 4);
    if (!get && !head) return "405 Method Not Allowed";
    const char *path = req + m + 1, *end = req + n;
    size_t k = 0;
    while (path + k < end && path[k] != ' ' && path[k] != '?' && path[k] != '\r') k++;
    return k == 8 && !memcmp(path, "/metrics", 8) ? "200 OK" : "404 Not Found";
}

/* Writes all of buf to a client, or gives up: a client that went away (EPIPE, ECONNRESET)
 * costs nothing but its answer; MSG_NOSIGNAL keeps SIGPIPE from ending the process. */
static void send_all(int c, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = send(c, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        buf += w, n -= (size_t)w;
    }
}

/* One client: at most sizeof req bytes of request, read within a second (a client that
 * sends nothing gets an answer to nothing: 400), then the answer and close. */
static void metrics_serve(nd_live_metrics *M, int c, char *body, char *req, size_t req_len)
{
    struct pollfd pc = {.fd = c, .events = POLLIN};
    ssize_t n = poll(&pc, 1, 1000) > 0 ? recv(c, req, req_len, 0) : 0;
    const char *status = metrics_status(req, n > 0 ? (size_t)n : 0);
    size_t len = 0;
    if (status[0] == '2') {
        pthread_mutex_lock(&M->L->mu);
        memcpy(body, M->L->metrics, ND_LIVE_METRICS_MAX);
        pthread_mutex_unlock(&M->L->mu);
        len = strlen(body);
    }
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr,
                     "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\n%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, !strncmp(status, "405", 3) ? "Allow: GET, HEAD\r\n" : "", len);
    send_all(c, hdr, (size_t)h);
    if (len && !(n >= 4 && !memcmp(req, "HEAD", 4))) send_all(c, body, len);
}

void *nd_live_metrics_main(void *arg)
{
    nd_live_metrics *M = arg;
    char req[2048], *body = malloc(ND_LIVE_METRICS_MAX);
    while (!M->stop && body) {
        struct pollfd p = {.fd = M->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        int c = accept(M->fd, NULL, NULL);
        if (c < 0) continue;
        metrics_serve(M, c, body, req, sizeof req);
        close(c);
    }
    free(body);
    return NULL;
}

int nd_live_metrics_open(uint32_t port, nd_error *e)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nd_error_set(e, -errno, "live: metrics socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* localhost only, never a wire */
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 8)) {
        int err = errno;
        close(fd);
        return nd_error_set(e, -err, "live: metrics on 127.0.0.1:%u: %s (live.metrics_port)",
                            port, strerror(err));
    }
    return fd;
}
