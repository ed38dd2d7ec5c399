/*
 * stream_send.c — the capture host's end of a window stream (live.h, nd_wsend): the
 * capture pushes finished windows into a bounded queue (a full queue drops the oldest and
 * counts it: the capture never waits for the network); a thread connects to the trainer,
 * sends HELLO, and streams the queue as WINDOW frames, the replay statistics as STATS
 * frames, and at the end BYE, waiting for the ACK. A trainer that goes away costs the
 * windows in flight (the trainer sees the gap in the numbers and counts them); the thread
 * reconnects with backoff from 100 ms to 5 s. A REFUSE (settings that are not the
 * trainer's) ends the stream: retrying cannot help.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "live_impl.h"

enum { SEND_BATCH = 64, BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000, REPLY_MS = 5000 };

struct nd_wsend {
    char host[256], port[16], spec[300];
    uint8_t *hello; /* re-sealed with the first window's number at each connection */
    size_t hello_len;
    size_t wf;
    uint32_t n_classes, cap;
    pthread_mutex_t mu; /* guards everything below up to the thread's own state */
    pthread_cond_t cv;
    uint64_t head, tail; /* windows pushed, taken (or dropped) from the queue */
    uint32_t *cls;       /* (cap) */
    uint64_t *groups;    /* (cap) */
    float *vals;         /* (cap, wf) */
    uint64_t dropped;
    nd_class_stats *stats; /* (n_classes) the newest of each class */
    uint8_t *dirty;        /* (n_classes) newer than what was sent */
    int closing;           /* close: send the rest and BYE */
    int quit;              /* close gave up: end now */
    int done;              /* the thread ended (acked, refused or quit) */
    int bye_acked;         /* the trainer acknowledged BYE: the stream ended whole */
    int refused;           /* the trainer refused: err says why */
    nd_error err;
    uint64_t sent, acked, connections;
    /* the thread's own */
    pthread_t thr;
    uint8_t *buf; /* one batch of frames */
    size_t buf_cap;
};

/* ---- sockets ----------------------------------------------------------------------- */

/* Splits tcp:HOST:PORT ([IPv6]:PORT). 0 or ND_EUSAGE. */
static int parse_spec(nd_wsend *s, const char *spec, nd_error *e)
{
    const char *p = spec + 4;
    const char *colon = *p == '[' ? strchr(p, ']') : strrchr(p, ':');
    if (*p == '[' && colon) colon = colon[1] == ':' ? colon + 1 : NULL;
    size_t hl = colon ? (size_t)(colon - p) : 0;
    if (*p == '[' && hl >= 2) p++, hl -= 2;
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (strncmp(spec, "tcp:", 4) || !colon || !hl || hl >= sizeof s->host || !colon[1] ||
        *end || port < 1 || port > 65535)
        return nd_error_set(e, ND_EUSAGE, "%s: expected tcp:HOST:PORT (PORT 1..65535)", spec);
    memcpy(s->host, p, hl);
    s->host[hl] = 0;
    snprintf(s->port, sizeof s->port, "%ld", port);
    snprintf(s->spec, sizeof s->spec, "%s", spec);
    return 0;
}

/* Waits for fd to be ready for ev up to ms; 1 ready, 0 not yet, -1 error. */
static int wait_fd(int fd, short ev, int ms)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int r = poll(&p, 1, ms);
    return r < 0 ? (errno == EINTR ? 0 : -1) : r > 0;
}

/* A connection to the trainer (each address in turn, 2 s each), or -errno. */
static int connect_trainer(nd_wsend *s)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int g = getaddrinfo(s->host, s->port, &hints, &ai);
    if (g) return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
    int fd = -1, err = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r && errno == EINPROGRESS && wait_fd(fd, POLLOUT, 2000) == 1) {
            socklen_t l = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
            r = err ? -1 : 0;
            errno = err ? err : errno;
        }
        if (r) {
            err = -(errno ? errno : ETIMEDOUT);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) return err;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one); /* a trainer host gone */
    return fd;
}

/* Stops the waits of the thread: close gave up. */
static int quitting(nd_wsend *s)
{
    pthread_mutex_lock(&s->mu);
    int q = s->quit;
    pthread_mutex_unlock(&s->mu);
    return q;
}

/* Writes all of buf (waiting for room in 200 ms steps until quit). 0 or -errno. */
static int send_all(nd_wsend *s, int fd, const uint8_t *buf, size_t n)
{
    while (n) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w, n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        if (quitting(s)) return -ETIMEDOUT;
        if (wait_fd(fd, POLLOUT, 200) < 0) return -errno;
    }
    return 0;
}

/* The trainer's next frame within ms: its type (f filled, payload in buf) or -errno /
 * a stream error (e filled). */
static int read_reply(int fd, uint8_t *buf, size_t cap, int ms, nd_ws_frame *f, nd_error *e)
{
    size_t in = 0;
    for (int waited = 0; waited < ms; waited += 100) {
        long t = nd_ws_frame_parse(buf, in, cap - nd_ws_frame_size(0), f, e);
        if (t > 0) return (int)f->type;
        if (t < 0) return (int)t;
        int r = wait_fd(fd, POLLIN, 100);
        if (r < 0) return -errno;
        if (!r) continue;
        ssize_t n = recv(fd, buf + in, cap - in, 0);
        if (n == 0) return -ECONNRESET;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -errno;
        if (n > 0) in += (size_t)n;
    }
    return -ETIMEDOUT;
}

/* ---- the thread -------------------------------------------------------------------- */

/* HELLO and the trainer's answer. 1 accepted, 0 to retry, -1 refused (s->err). */
static int handshake(nd_wsend *s, int fd)
{
    pthread_mutex_lock(&s->mu);
    uint64_t first = s->tail;
    pthread_mutex_unlock(&s->mu);
    memcpy(s->hello + ND_WS_FRAME_HEAD + 20, &first, 8);
    nd_ws_frame_seal(s->hello, ND_WS_HELLO, s->hello_len - nd_ws_frame_size(0));
    nd_error e = {0};
    nd_ws_frame f;
    int t = send_all(s, fd, s->hello, s->hello_len);
    if (!t) t = read_reply(fd, s->buf, s->buf_cap, REPLY_MS, &f, &e);
    if (t == ND_WS_ACCEPT) return 1;
    if (t == ND_WS_REFUSE) {
        pthread_mutex_lock(&s->mu);
        s->refused = 1;
        nd_error_set(&s->err, ND_ECONFIG, "%s: the trainer refused this sender: %.*s", s->spec,
                     (int)(f.len < 900 ? f.len : 900), (const char *)f.payload);
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    nd_warn("%s: no answer to HELLO from the trainer: %s", s->spec,
            t < 0 && e.msg[0] ? e.msg : nd_strerror(t < 0 ? t : ND_EFORMAT));
    return 0;
}

/* Frames of what is queued into s->buf: up to SEND_BATCH windows, then the stats that
 * changed; at the end of a close, BYE (*bye). Waits up to 200 ms for something. */
static size_t next_batch(nd_wsend *s, int *bye)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    if (s->head == s->tail && !s->closing) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    for (int k = 0; k < SEND_BATCH && s->tail < s->head; k++, s->tail++) {
        uint32_t i = (uint32_t)(s->tail % s->cap);
        n += nd_ws_window_put(s->buf + n, s->cls[i], s->groups[i], s->tail,
                              s->vals + (size_t)i * s->wf, s->wf);
        s->sent++;
    }
    for (uint32_t c = 0; c < s->n_classes; c++)
        if (s->dirty[c]) {
            n += nd_ws_stats_put(s->buf + n, c, &s->stats[c]);
            s->dirty[c] = 0;
        }
    *bye = s->closing && s->tail == s->head;
    if (*bye) n += nd_ws_u64_put(s->buf + n, ND_WS_BYE, s->head);
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Streams until BYE is acknowledged (1), the connection fails (0) or quit (-1). */
static int stream(nd_wsend *s, int fd)
{
    for (;;) {
        if (quitting(s)) return -1;
        int bye;
        size_t n = next_batch(s, &bye);
        int rc = n ? send_all(s, fd, s->buf, n) : 0;
        if (rc) {
            nd_warn("%s: the connection to the trainer failed: %s; reconnecting (the windows "
                    "in flight are lost, and counted by the trainer)",
                    s->spec, nd_strerror(rc));
            return 0;
        }
        if (!bye) continue;
        nd_error e = {0};
        nd_ws_frame f;
        int t = read_reply(fd, s->buf, s->buf_cap, 10 * REPLY_MS, &f, &e);
        if (t == ND_WS_ACK && f.len == 8) {
            pthread_mutex_lock(&s->mu);
            uint64_t acked;
            memcpy(&acked, f.payload, 8);
            s->acked += acked;
            s->bye_acked = 1;
            pthread_mutex_unlock(&s->mu);
            return 1;
        }
        nd_warn("%s: no ACK of BYE from the trainer: %s", s->spec,
                e.msg[0] ? e.msg : nd_strerror(t < 0 ? t : ND_EFORMAT));
        return 0;
    }
}

/* Sleeps ms in 100 ms steps, ending early on quit. */
static void backoff_sleep(nd_wsend *s, int ms)
{
    for (int t = 0; t < ms && !quitting(s); t += 100) nd_live_sleep_ns(100000000ull);
}

static void *send_main(void *arg)
{
    nd_wsend *s = arg;
    int backoff = BACKOFF_MIN_MS, said = 0;
    while (!quitting(s)) {
        int fd = connect_trainer(s);
        if (fd < 0) {
            if (!said++)
                nd_warn("%s: cannot reach the trainer: %s; retrying (every %d s at most), "
                        "windows wait in a queue of %u (the oldest dropped when full)",
                        s->spec, nd_strerror(fd), BACKOFF_MAX_MS / 1000, s->cap);
            backoff_sleep(s, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        int h = handshake(s, fd), r = 0;
        if (h > 0) {
            pthread_mutex_lock(&s->mu);
            s->connections++;
            pthread_mutex_unlock(&s->mu);
            nd_info("%s: streaming windows to the trainer", s->spec);
            backoff = BACKOFF_MIN_MS;
            said = 0;
            r = stream(s, fd);
        }
        close(fd);
        if (h < 0 || r != 0) break;
        backoff_sleep(s, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the capture's side ------------------------------------------------------------ */

static void wsend_free(nd_wsend *s)
{
    free(s->hello);
    free(s->cls);
    free(s->groups);
    free(s->vals);
    free(s->stats);
    free(s->dirty);
    free(s->buf);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

nd_wsend *nd_wsend_open(const char *spec, const nd_dataset *hdr, const char *name,
                        uint32_t buffer, nd_error *e)
{
    nd_wsend *s = calloc(1, sizeof *s);
    if (!s) {
        nd_error_set(e, -ENOMEM, "%s: out of memory", spec);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (parse_spec(s, spec, e)) {
        wsend_free(s);
        return NULL;
    }
    s->wf = (size_t)hdr->n_channels * hdr->L;
    s->n_classes = hdr->n_classes;
    s->cap = buffer ? buffer : 1;
    size_t wframe = nd_ws_frame_size(24 + s->wf * sizeof(float));
    s->buf_cap = SEND_BATCH * wframe +
                 hdr->n_classes * nd_ws_frame_size(8 + nd_stats_record_bytes()) +
                 nd_ws_frame_size(8) + 4096;
    s->hello = nd_ws_hello_new(hdr, name, 0, &s->hello_len);
    s->cls = calloc(s->cap, sizeof *s->cls);
    s->groups = calloc(s->cap, sizeof *s->groups);
    s->vals = calloc((size_t)s->cap * s->wf, sizeof *s->vals);
    s->stats = calloc(s->n_classes ? s->n_classes : 1, sizeof *s->stats);
    s->dirty = calloc(s->n_classes ? s->n_classes : 1, 1);
    s->buf = malloc(s->buf_cap);
    if (!s->hello || !s->cls || !s->groups || !s->vals || !s->stats || !s->dirty || !s->buf ||
        pthread_create(&s->thr, NULL, send_main, s)) {
        nd_error_set(e, -ENOMEM, "%s: out of memory for a queue of %u windows", spec, s->cap);
        wsend_free(s);
        return NULL;
    }
    return s;
}

int nd_wsend_push(nd_wsend *s, uint32_t cls, uint64_t group, const float *values, nd_error *e)
{
    pthread_mutex_lock(&s->mu);
    if (s->refused) {
        int code = s->err.code;
        if (e) *e = s->err;
        pthread_mutex_unlock(&s->mu);
        return code;
    }
    if (s->head - s->tail >= s->cap) { /* full: the oldest goes, its number stays a gap */
        s->tail++;
        s->dropped++;
    }
    uint32_t i = (uint32_t)(s->head % s->cap);
    s->cls[i] = cls;
    s->groups[i] = group;
    memcpy(s->vals + (size_t)i * s->wf, values, s->wf * sizeof(float));
    s->head++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void nd_wsend_stats(nd_wsend *s, uint32_t cls, const nd_class_stats *st)
{
    if (cls >= s->n_classes) return;
    pthread_mutex_lock(&s->mu);
    s->stats[cls] = *st;
    s->dirty[cls] = 1;
    pthread_mutex_unlock(&s->mu);
}

int nd_wsend_close(nd_wsend *s, uint64_t linger_ns, volatile sig_atomic_t *stop,
                   nd_wsend_result *res, nd_error *e)
{
    uint64_t until = nd_now_ns() + linger_ns;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_broadcast(&s->cv);
    while (!s->done && nd_now_ns() < until && !(stop && *stop)) {
        pthread_mutex_unlock(&s->mu);
        nd_live_sleep_ns(20000000ull);
        pthread_mutex_lock(&s->mu);
    }
    s->quit = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thr, NULL);
    *res = (nd_wsend_result){.windows = s->head,
                             .dropped = s->dropped,
                             .sent = s->sent,
                             .acked = s->acked,
                             .unsent = s->head - s->tail,
                             .connections = s->connections};
    int rc = 0;
    if (s->refused) {
        rc = s->err.code;
        if (e) *e = s->err;
    } else if (!s->bye_acked) {
        rc = stop && *stop ? ND_EINTR : -ETIMEDOUT;
        nd_error_set(e, rc,
                     "%s: the stream did not end whole: %" PRIu64 " of %" PRIu64
                     " windows still queued%s",
                     s->spec, res->unsent, res->windows,
                     rc == ND_EINTR ? " when stopped by a signal"
                                    : ": the trainer did not take them in time");
    }
    wsend_free(s);
    return rc;
}
