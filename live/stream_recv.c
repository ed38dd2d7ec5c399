/*
 * stream_recv.c — the trainer's end of window streams (live_impl.h, nd_wrecv): `live
 * --listen [ADDR:]PORT` takes windows from capture hosts (nd_wsend) besides its own
 * capture. One thread serves every sender from one poll loop over non-blocking sockets
 * and is the single producer of a ring of its own, which the trainer drains beside the
 * capture thread's (two SPSC rings rather than one ring with two producers: neither
 * producer ever takes a lock).
 *
 * A full ring is not a drop here: that connection is not read until there is room, so
 * TCP's flow control carries the pressure back to the sender, whose bounded queue drops
 * its oldest windows and counts them (the numbers of the windows show the gaps here).
 * A bad peer costs only its connection: a foreign, corrupt or oversized frame, a wrong
 * version or settings, a reset — each is logged with the peer's address and name,
 * counted, answered with REFUSE where it can still be, and closed; the trainer and what
 * it learnt are not touched.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "live_impl.h"

/* 16 connections side by side; 64 sender names remembered (the least recently connected
 * one that is not connected gives its place to a new name); a connection has 5 s to send
 * its HELLO. */
enum { PEERS = 16, SENDERS = 64, HELLO_MS = 5000 };

typedef struct ws_sender {
    nd_wsender_info info;
    uint64_t next_seq;      /* the number after the last window taken */
    uint64_t last_connect;  /* nd_now_ns() of its last HELLO */
    nd_class_stats **stats; /* (n_classes) its newest statistics per class, or NULL */
} ws_sender;

typedef struct ws_peer {
    int fd; /* -1: a free slot */
    char addr[64];
    uint64_t hello_by; /* nd_now_ns() by which HELLO must have come */
    nd_ws_reader *rd;
    uint8_t *buf;
    size_t cap, in;
    int sender;     /* index in senders after HELLO, else -1 */
    int pending;    /* a window read that the full ring has not taken yet */
    uint32_t p_cls; /* that window's class, group (values: the reader's copy) */
    uint64_t p_group, p_seq, p_lost;
    const float *p_values;
    uint64_t taken; /* windows of this connection into the ring */
} ws_peer;

struct nd_wrecv {
    int fd;
    char where[96];
    const nd_dataset *hdr;
    nd_wring *ring;
    volatile sig_atomic_t stop;
    pthread_t thr;
    pthread_mutex_t mu; /* guards senders and refused: the trainer reads them */
    ws_sender senders[SENDERS];
    uint32_t n_senders;
    uint64_t refused; /* connections closed for an error before their HELLO was taken */
    ws_peer peers[PEERS];
};

/* ---- answers ----------------------------------------------------------------------- */

/* A small frame to the peer, without waiting: a reply that does not fit the socket's
 * buffer is lost, never waited for. */
static void reply(ws_peer *p, uint32_t type, const void *payload, size_t len)
{
    uint8_t buf[1100];
    if (len > sizeof buf - nd_ws_frame_size(0)) len = sizeof buf - nd_ws_frame_size(0);
    memcpy(buf + ND_WS_FRAME_HEAD, payload, len);
    size_t n = nd_ws_frame_seal(buf, type, len);
    send(p->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT); /* a peer gone: nothing to tell */
}

static void peer_close(nd_wrecv *R, ws_peer *p)
{
    if (p->sender >= 0) {
        pthread_mutex_lock(&R->mu);
        R->senders[p->sender].info.connected = 0;
        pthread_mutex_unlock(&R->mu);
    }
    close(p->fd);
    nd_ws_reader_free(p->rd);
    free(p->buf);
    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->sender = -1;
}

/* Drops a peer for why (logged with its address and name, counted, and told when it
 * can still hear it). */
static void peer_fail(nd_wrecv *R, ws_peer *p, const char *why, int tell)
{
    const char *name = p->rd ? nd_ws_reader_name(p->rd) : NULL;
    nd_warn("live: stream from %s%s%s%s: %s; connection closed", p->addr, name ? " (" : "",
            name ? name : "", name ? ")" : "", why);
    if (tell) reply(p, ND_WS_REFUSE, why, strlen(why));
    pthread_mutex_lock(&R->mu);
    if (p->sender >= 0) R->senders[p->sender].info.errors++;
    else R->refused++;
    pthread_mutex_unlock(&R->mu);
    peer_close(R, p);
}

/* ---- senders ----------------------------------------------------------------------- */

/* The entry of name: its own, a new one, or the place of the least recently connected
 * sender that is not connected; -1 when every one is connected. Under mu. */
static int sender_slot(nd_wrecv *R, const char *name)
{
    int old = -1;
    for (uint32_t i = 0; i < R->n_senders; i++) {
        if (!strcmp(R->senders[i].info.name, name)) return (int)i;
        if (!R->senders[i].info.connected &&
            (old < 0 || R->senders[i].last_connect < R->senders[old].last_connect))
            old = (int)i;
    }
    int i = R->n_senders < SENDERS ? (int)R->n_senders++ : old;
    if (i < 0) return -1;
    ws_sender *s = &R->senders[i];
    if (s->stats)
        for (uint32_t c = 0; c < R->hdr->n_classes; c++) free(s->stats[c]);
    free(s->stats);
    memset(s, 0, sizeof *s);
    snprintf(s->info.name, sizeof s->info.name, "%s", name);
    return i;
}

/* A HELLO taken: the peer becomes its sender's connection. 0, or -1 (told why). */
static int on_hello(nd_wrecv *R, ws_peer *p, const nd_ws_item *it)
{
    const char *name = nd_ws_reader_name(p->rd);
    char why[256] = "";
    pthread_mutex_lock(&R->mu);
    int i = sender_slot(R, name);
    ws_sender *s = i >= 0 ? &R->senders[i] : NULL;
    if (!s)
        snprintf(why, sizeof why, "%d senders are connected, the most this trainer takes",
                 SENDERS);
    else if (s->info.connected)
        snprintf(why, sizeof why,
                 "a sender named '%s' is already connected (from %s): give "
                 "each sender its own live.sender_name",
                 name, s->info.addr);
    if (!why[0]) {
        /* windows numbered between the last one taken and this connection's first were
         * sent on a connection that broke, or dropped from the sender's full queue */
        if (s->info.connections && it->seq > s->next_seq) s->info.lost += it->seq - s->next_seq;
        s->next_seq = it->seq;
        s->info.connected = 1;
        s->info.connections++;
        s->last_connect = nd_now_ns();
        snprintf(s->info.addr, sizeof s->info.addr, "%s", p->addr);
        p->sender = i;
    }
    pthread_mutex_unlock(&R->mu);
    if (why[0]) {
        peer_fail(R, p, why, 1);
        return -1;
    }
    reply(p, ND_WS_ACCEPT, "", 0);
    nd_info("live: sender %s connected from %s", name, p->addr);
    return 0;
}

/* The pending window into the ring: 1 taken, 0 the ring is full. */
static int push_pending(nd_wrecv *R, ws_peer *p)
{
    if (!nd_wring_push(R->ring, p->p_cls, p->p_group, p->p_values)) return 0;
    p->pending = 0;
    p->taken++;
    pthread_mutex_lock(&R->mu);
    ws_sender *s = &R->senders[p->sender];
    s->info.windows++;
    s->info.lost += p->p_lost;
    s->next_seq = p->p_seq + 1;
    pthread_mutex_unlock(&R->mu);
    return 1;
}

/* One frame taken from p. 0 go on, -1 the peer is closed. */
static int on_item(nd_wrecv *R, ws_peer *p, const nd_ws_item *it)
{
    switch (it->type) {
    case ND_WS_HELLO: return on_hello(R, p, it);
    case ND_WS_WINDOW:
        p->pending = 1;
        p->p_cls = it->cls;
        p->p_group = it->group;
        p->p_seq = it->seq;
        p->p_lost = it->lost;
        p->p_values = it->values;
        push_pending(R, p);
        return 0;
    case ND_WS_STATS: {
        pthread_mutex_lock(&R->mu);
        ws_sender *s = &R->senders[p->sender];
        if (!s->stats) s->stats = calloc(R->hdr->n_classes, sizeof *s->stats);
        if (s->stats && !s->stats[it->cls]) s->stats[it->cls] = malloc(sizeof(nd_class_stats));
        if (s->stats && s->stats[it->cls]) {
            *s->stats[it->cls] = *it->stats;
            s->info.stats++;
        }
        pthread_mutex_unlock(&R->mu);
        return 0;
    }
    case ND_WS_BYE: {
        pthread_mutex_lock(&R->mu);
        ws_sender *s = &R->senders[p->sender];
        s->info.lost += it->lost;
        s->next_seq += it->lost;
        pthread_mutex_unlock(&R->mu);
        uint8_t ack[8];
        memcpy(ack, &p->taken, 8);
        reply(p, ND_WS_ACK, ack, 8);
        nd_info("live: sender %s (%s) ended its stream: %" PRIu64 " windows on this connection",
                nd_ws_reader_name(p->rd), p->addr, p->taken);
        peer_close(R, p);
        return -1;
    }
    }
    return 0;
}

/* Frames of the bytes p holds, until one is incomplete or a window waits for room. */
static void peer_frames(nd_wrecv *R, ws_peer *p)
{
    size_t off = 0;
    while (!p->pending) {
        nd_ws_item it;
        nd_error e = {0};
        long took = nd_ws_read(p->rd, p->buf + off, p->in - off, &it, &e);
        if (took == 0) break;
        if (took < 0) {
            peer_fail(R, p, e.msg, 1);
            return;
        }
        off += (size_t)took;
        if (on_item(R, p, &it)) return; /* closed */
    }
    /* a pending window's values are the reader's copy: its frame can go */
    memmove(p->buf, p->buf + off, p->in - off);
    p->in -= off;
}

/* What the peer sent, then its frames. */
static void peer_read(nd_wrecv *R, ws_peer *p)
{
    ssize_t n = recv(p->fd, p->buf + p->in, p->cap - p->in, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        char why[160];
        if (n < 0) snprintf(why, sizeof why, "%s", strerror(errno));
        else if (p->in)
            snprintf(why, sizeof why, "closed inside a frame (%zu bytes of it)", p->in);
        else snprintf(why, sizeof why, "closed without BYE");
        peer_fail(R, p, why, 0);
        return;
    }
    p->in += (size_t)n;
    peer_frames(R, p);
}

static void peer_accept(nd_wrecv *R)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    int fd = accept4(R->fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    ws_peer tmp = {.fd = fd, .sender = -1}, *p = &tmp;
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
    getnameinfo((struct sockaddr *)&sa, sl, host, sizeof host, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(tmp.addr, sizeof tmp.addr, "%s:%s", host, port);
    for (int i = 0; i < PEERS; i++)
        if (R->peers[i].fd < 0) {
            p = &R->peers[i];
            *p = tmp;
            break;
        }
    if (p == &tmp) {
        char why[96];
        snprintf(why, sizeof why, "%d connections are open, the most this trainer serves",
                 PEERS);
        peer_fail(R, p, why, 1);
        return;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one); /* a sender host gone */
    p->rd = nd_ws_reader_new(R->hdr);
    size_t wf = (size_t)R->hdr->n_channels * R->hdr->L;
    size_t big = 24 + wf * sizeof(float), st = 8 + nd_stats_record_bytes(), hello = 0;
    if (p->rd) hello = nd_ws_reader_max(p->rd);
    if (st > big) big = st;
    if (hello > big) big = hello;
    p->cap = nd_ws_frame_size(big);
    p->buf = malloc(p->cap);
    p->hello_by = nd_now_ns() + (uint64_t)HELLO_MS * 1000000u;
    if (!p->rd || !p->buf) peer_fail(R, p, "out of memory", 0);
}

static void *recv_main(void *arg)
{
    nd_wrecv *R = arg;
    while (!R->stop) {
        struct pollfd pf[1 + PEERS] = {{.fd = R->fd, .events = POLLIN}};
        int who[1 + PEERS], n = 1, waiting = 0;
        uint64_t now = nd_now_ns();
        for (int i = 0; i < PEERS; i++) {
            ws_peer *p = &R->peers[i];
            if (p->fd < 0) continue;
            if (p->pending && push_pending(R, p)) peer_frames(R, p);
            if (p->fd < 0) continue;
            if (p->sender < 0 && now > p->hello_by) {
                peer_fail(R, p, "no HELLO within 5 s", 1);
                continue;
            }
            if (p->pending) { /* the ring is full: read no more until it has room */
                waiting = 1;
                continue;
            }
            pf[n] = (struct pollfd){.fd = p->fd, .events = POLLIN};
            who[n++] = i;
        }
        if (poll(pf, (nfds_t)n, waiting ? 5 : 200) <= 0) continue;
        for (int k = 1; k < n; k++)
            if (pf[k].revents && R->peers[who[k]].fd >= 0) peer_read(R, &R->peers[who[k]]);
        if (pf[0].revents & POLLIN) peer_accept(R);
    }
    return NULL;
}

/* ---- the trainer's side ------------------------------------------------------------ */

/* [ADDR:]PORT ([IPv6]:PORT); ADDR defaults to 127.0.0.1. A bound, listening socket or
 * -errno / ND_EUSAGE with e filled. */
static int listen_on(nd_wrecv *R, const char *spec, nd_error *e)
{
    char host[256] = "127.0.0.1";
    const char *colon = spec[0] == '[' ? strstr(spec, "]:") : strrchr(spec, ':');
    const char *port = colon ? colon + (spec[0] == '[' ? 2 : 1) : spec;
    if (colon) {
        const char *h = spec[0] == '[' ? spec + 1 : spec;
        size_t hl = (size_t)(colon - h);
        if (hl >= sizeof host) hl = 0;
        memcpy(host, h, hl);
        host[hl] = 0;
    }
    char *end;
    long pn = strtol(port, &end, 10);
    if (!*port || *end || pn < 1 || pn > 65535 || !host[0])
        return nd_error_set(e, ND_EUSAGE,
                            "live.listen %s: expected [ADDR:]PORT (PORT 1..65535)", spec);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g) return nd_error_set(e, ND_EUSAGE, "live.listen %s: %s", spec, gai_strerror(g));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, PEERS)) err = errno;
    }
    freeaddrinfo(ai);
    if (err) {
        if (fd >= 0) close(fd);
        return nd_error_set(e, -err, "live.listen %s: %s", spec, strerror(err));
    }
    snprintf(R->where, sizeof R->where, "%s", spec);
    return fd;
}

nd_wrecv *nd_wrecv_start(const char *listen, const nd_dataset *hdr, uint32_t ring_size,
                         nd_error *e)
{
    nd_wrecv *R = calloc(1, sizeof *R);
    if (!R) {
        nd_error_set(e, -ENOMEM, "live.listen: out of memory");
        return NULL;
    }
    pthread_mutex_init(&R->mu, NULL);
    for (int i = 0; i < PEERS; i++) R->peers[i].fd = -1, R->peers[i].sender = -1;
    R->hdr = hdr;
    R->fd = -1;
    R->ring = nd_wring_new(ring_size, (size_t)hdr->n_channels * hdr->L);
    if (!R->ring) nd_error_set(e, -ENOMEM, "live.listen: out of memory");
    else if ((R->fd = listen_on(R, listen, e)) >= 0 &&
             pthread_create(&R->thr, NULL, recv_main, R) == 0)
        return R;
    else if (R->fd >= 0) nd_error_set(e, -EAGAIN, "live.listen: cannot start its thread");
    if (R->fd >= 0) close(R->fd);
    nd_wring_free(R->ring);
    pthread_mutex_destroy(&R->mu);
    free(R);
    return NULL;
}

nd_wring *nd_wrecv_ring(nd_wrecv *R) { return R->ring; }

uint32_t nd_wrecv_senders(nd_wrecv *R, nd_wsender_info *out, uint32_t max, uint64_t *refused)
{
    pthread_mutex_lock(&R->mu);
    uint32_t n = R->n_senders < max ? R->n_senders : max;
    for (uint32_t i = 0; i < n; i++) out[i] = R->senders[i].info;
    *refused = R->refused;
    pthread_mutex_unlock(&R->mu);
    return n;
}

void nd_wrecv_add_stats(nd_wrecv *R, uint32_t cls, nd_class_stats *acc)
{
    pthread_mutex_lock(&R->mu);
    for (uint32_t i = 0; i < R->n_senders; i++)
        if (R->senders[i].stats && R->senders[i].stats[cls])
            capture_stats_add(acc, R->senders[i].stats[cls]);
    pthread_mutex_unlock(&R->mu);
}

void nd_wrecv_stop(nd_wrecv *R)
{
    if (!R || R->stop) return;
    R->stop = 1;
    pthread_join(R->thr, NULL);
    for (int i = 0; i < PEERS; i++)
        if (R->peers[i].fd >= 0) peer_close(R, &R->peers[i]);
    close(R->fd);
}

void nd_wrecv_free(nd_wrecv *R)
{
    if (!R) return;
    nd_wrecv_stop(R);
    for (uint32_t i = 0; i < R->n_senders; i++) {
        if (R->senders[i].stats)
            for (uint32_t c = 0; c < R->hdr->n_classes; c++) free(R->senders[i].stats[c]);
        free(R->senders[i].stats);
    }
    nd_wring_free(R->ring);
    pthread_mutex_destroy(&R->mu);
    free(R);
}
