/*
 * sink.c — the sink table: choosing a sink from "scheme:argument", the timing-error
 * histogram every paced sink shares, the function sink, and the pcap file sink.
 *
 * The pcap sink writes nanosecond pcap (magic a1b23c4d, LINKTYPE_ETHERNET) without
 * waiting: deadlines become timestamps, counted from 2000-01-01T00:00:00Z so that the
 * file depends on the seed only. Records are appended to a buffer and written whole, so
 * a stop between packets (SIGINT) always leaves a readable file; a failed write (full
 * disk) cuts the file back to its last complete record and reports the error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "replay_impl.h"

/* ------------------------------------------------------------------------------------ */
/* Timing-error histogram                                                               */
/* ------------------------------------------------------------------------------------ */

void sink_errhist_add(sink_errhist *h, uint64_t deadline, uint64_t now)
{
    uint64_t v = 0;
    if (now < deadline) h->early++;
    else v = now - deadline;
    uint32_t idx;
    if (v < 64) {
        idx = (uint32_t)v;
    } else {
        uint32_t ex = 63 - (uint32_t)__builtin_clzll(v); /* >= 6 */
        idx = (ex - 5) * 64 + (uint32_t)((v >> (ex - 6)) & 63);
    }
    h->count[idx]++;
    h->n++;
    if (v > h->max) h->max = v;
}

uint64_t sink_errhist_quantile(const sink_errhist *h, double q)
{
    if (!h->n) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n), seen = 0;
    if (rank >= h->n) rank = h->n - 1;
    for (uint32_t i = 0; i < SINK_ERR_BUCKETS; i++) {
        seen += h->count[i];
        if (seen > rank) {
            if (i < 64) return i;
            uint32_t ex = i / 64 + 5, sub = i % 64;
            uint64_t lo = (uint64_t)(64 + sub) << (ex - 6), width = 1ull << (ex - 6);
            uint64_t mid = lo + width / 2;
            return mid < h->max ? mid : h->max;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------------------------------ */
/* Choosing a sink                                                                       */
/* ------------------------------------------------------------------------------------ */

replay_sink *replay_sink_open(const char *spec, nd_error *e)
{
    if (!strncmp(spec, "pcap:", 5)) return sink_pcap_open(spec + 5, e);
    if (!strncmp(spec, "iface:", 6)) return sink_iface_open(spec + 6, e);
    if (!strncmp(spec, "dpdk:", 5)) return sink_dpdk_open(spec + 5, e);
    nd_error_set(e, ND_EUSAGE,
                 "unknown sink '%s': expected pcap:FILE, iface:NAME or dpdk:EAL-ARGS", spec);
    return NULL;
}

int replay_sink_close(replay_sink *s, nd_error *e)
{
    if (!s) return 0;
    return s->ops->close(s, e);
}

/* ------------------------------------------------------------------------------------ */
/* Function sink                                                                         */
/* ------------------------------------------------------------------------------------ */

uint8_t *sink_frame_alloc(replay_sink *s, uint32_t len, nd_error *e)
{
    ND_ASSERT(len <= sizeof((sink_framed *)s)->frame);
    return ((sink_framed *)s)->frame;
}

int sink_flush_none(replay_sink *s, nd_error *e) { return 0; }

typedef struct sink_func {
    sink_framed fr;
    replay_sink_fn fn;
    void *arg;
} sink_func;

static int func_send(replay_sink *s, uint32_t len, uint64_t deadline,
                     const replay_pkt_info *info, nd_error *e)
{
    sink_func *f = (sink_func *)s;
    int rc = f->fn(f->fr.frame, len, deadline, info, f->arg);
    if (rc)
        return nd_error_set(e, rc, "packet %llu refused: %s",
                            (unsigned long long)s->packets + 1, nd_strerror(rc));
    s->packets++;
    s->bytes += len;
    return 0;
}

static int func_close(replay_sink *s, nd_error *e)
{
    free(s);
    return 0;
}

static const sink_ops func_ops = {"func",          0,         sink_frame_alloc, func_send,
                                  sink_flush_none, func_close};

replay_sink *replay_sink_func(replay_sink_fn fn, void *arg)
{
    sink_func *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->fr.base.ops = &func_ops;
    f->fr.base.base_ns = 0;
    f->fn = fn;
    f->arg = arg;
    return &f->fr.base;
}

/* ------------------------------------------------------------------------------------ */
/* pcap file sink                                                                        */
/* ------------------------------------------------------------------------------------ */

#define PCAP_BUF (1u << 20)

typedef struct sink_pcap {
    replay_sink base;
    int fd;
    char *path;
    uint8_t *buf;
    size_t len;        /* bytes in buf, whole records only */
    uint64_t written;  /* bytes in the file */
    uint64_t flushed;  /* packets in the file */
    uint64_t buf_pkts; /* packets in buf */
    int failed;        /* a write failed: nothing more is written */
} sink_pcap;

static int pfile_write_out(sink_pcap *p, nd_error *e)
{
    if (p->failed) return nd_error_set(e, p->failed, "%s: %s", p->path, nd_strerror(p->failed));
    size_t off = 0;
    while (off < p->len) {
        ssize_t n = write(p->fd, p->buf + off, p->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = n < 0 ? -errno : -EIO;
            p->failed = err;
            /* keep the file readable: cut it back to the last whole record written */
            size_t keep = 0;
            uint64_t kept = 0;
            while (p->written && keep + 16 <= off) {
                uint32_t caplen;
                memcpy(&caplen, p->buf + keep + 8, 4);
                if (keep + 16 + caplen > off) break;
                keep += 16 + caplen;
                kept++;
            }
            if (ftruncate(p->fd, (off_t)(p->written + keep))) { /* not a regular file */
            }
            return nd_error_set(e, err, "%s: %s (the file keeps the first %llu packets)",
                                p->path, nd_strerror(err),
                                (unsigned long long)(p->flushed + kept));
        }
        off += (size_t)n;
    }
    p->written += p->len;
    p->flushed += p->buf_pkts;
    p->len = 0;
    p->buf_pkts = 0;
    return 0;
}

static uint8_t *pfile_alloc(replay_sink *s, uint32_t len, nd_error *e)
{
    sink_pcap *p = (sink_pcap *)s;
    if (p->len + 16 + len > PCAP_BUF && pfile_write_out(p, e)) return NULL;
    return p->buf + p->len + 16;
}

static int pfile_send(replay_sink *s, uint32_t len, uint64_t deadline,
                      const replay_pkt_info *info, nd_error *e)
{
    sink_pcap *p = (sink_pcap *)s;
    uint32_t rec[4] = {(uint32_t)(deadline / ND_NS_PER_SEC),
                       (uint32_t)(deadline % ND_NS_PER_SEC), len, len};
    memcpy(p->buf + p->len, rec, 16); /* host byte order, as the magic says */
    p->len += 16 + len;
    p->buf_pkts++;
    s->packets++;
    s->bytes += len;
    return 0;
}

static int pfile_close(replay_sink *s, nd_error *e)
{
    sink_pcap *p = (sink_pcap *)s;
    int rc = p->failed ? 0 : pfile_write_out(p, e);
    if (close(p->fd) && !rc && !p->failed)
        rc = nd_error_set(e, -errno, "%s: %s", p->path, strerror(errno));
    if (p->failed && !rc)
        rc = nd_error_set(e, p->failed, "%s: %s", p->path, nd_strerror(p->failed));
    free(p->buf);
    free(p->path);
    free(p);
    return rc;
}

static const sink_ops pfile_ops = {
    "pcap",          0,          pfile_alloc, pfile_send,
    sink_flush_none, pfile_close}; /* writes when full or at close */

replay_sink *sink_pcap_open(const char *path, nd_error *e)
{
    if (!*path) {
        nd_error_set(e, ND_EUSAGE, "pcap: needs a file name (pcap:FILE)");
        return NULL;
    }
    sink_pcap *p = calloc(1, sizeof *p);
    if (!p) goto nomem;
    p->buf = malloc(PCAP_BUF);
    p->path = strdup(path);
    if (!p->buf || !p->path) goto nomem;
    p->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        nd_error_set(e, -errno, "%s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    p->base.ops = &pfile_ops;
    p->base.base_ns = 946684800ull * ND_NS_PER_SEC; /* 2000-01-01T00:00:00Z */
    const uint32_t hdr[6] = {0xa1b23c4d, 2u | 4u << 16, 0, 0, 65535, 1 /* Ethernet */};
    memcpy(p->buf, hdr, sizeof hdr);
    p->len = sizeof hdr;
    /* the header goes out now, so that an early stop still leaves a pcap file */
    if (pfile_write_out(p, e)) {
        close(p->fd);
        goto fail;
    }
    return &p->base;
nomem:
    nd_error_set(e, -ENOMEM, "out of memory");
fail:
    if (p) {
        free(p->buf);
        free(p->path);
    }
    free(p);
    return NULL;
}
