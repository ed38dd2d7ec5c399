/*
 * sink.c — the sink table: choosing a sink from "scheme:argument", the timing-error
 * histogram every paced sink shares, the function sink, and the pcap file sink.
 *
 * The pcap sink writes nanosecond pcap (magic a1b23c4d, LINKTYPE_ETHERNET) without
 * waiting: deadlines become timestamps, counted from 2000-01-01T00:00:00Z so that the
 * file depends on the seed only. It and the pcapng sink are file sinks, written with
 * the atomic writer (nd.h):
 * records go to a temporary file beside the target, which replaces the target when the
 * run ends normally (also when a signal or a bound stopped it: the records written so far
 * are a valid pcap) and is removed on an error (full disk, bad input), so that a failed
 * run leaves the previous file as it was.
 */
#include <errno.h>
#include <stdlib.h>

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
    if (!strncmp(spec, "pcapng:", 7)) return sink_pcapng_open(spec + 7, 0, e);
    if (!strncmp(spec, "iface:", 6)) return sink_iface_open(spec + 6, e);
#if ND_HAVE_DPDK
    if (!strncmp(spec, "dpdk:", 5)) return sink_dpdk_open(spec + 5, 0, e);
#else
    if (!strncmp(spec, "dpdk:", 5)) {
        nd_error_set(e, ND_EUSAGE, "sink '%s': %s", spec, ND_NO_DPDK);
        return NULL;
    }
#endif
    nd_error_set(e, ND_EUSAGE,
                 "unknown sink '%s': expected pcap:FILE, pcapng:FILE, iface:NAME or "
                 "dpdk:EAL-ARGS",
                 spec);
    return NULL;
}

int replay_sink_close(replay_sink *s, nd_error *e)
{
    if (!s) return 0;
    return s->ops->close(s, e);
}

void replay_sink_discard(replay_sink *s)
{
    if (!s) return;
    s->discard = 1;
    s->ops->close(s, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* Function sink                                                                         */
/* ------------------------------------------------------------------------------------ */

uint8_t *sink_frame_alloc(replay_sink *s, uint32_t len, const replay_pkt_info *info,
                          nd_error *e)
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
/* File sinks: pcap here, pcapng in sink_pcapng.c                                        */
/* ------------------------------------------------------------------------------------ */

#define FILE_BUF (1u << 20)

static int file_write_out(sink_file *p, nd_error *e)
{
    int rc = nd_afile_write(p->f, p->buf, p->len, e);
    p->len = 0;
    return rc;
}

uint8_t *sink_file_room(sink_file *p, uint32_t need, nd_error *e)
{
    ND_ASSERT(need <= FILE_BUF);
    if (p->len + need > FILE_BUF && file_write_out(p, e)) return NULL;
    return p->buf + p->len;
}

int sink_file_close(replay_sink *s, nd_error *e)
{
    sink_file *p = (sink_file *)s;
    int rc = 0;
    if (s->discard) nd_afile_abort(p->f);
    else if ((rc = file_write_out(p, e))) nd_afile_abort(p->f);
    else rc = nd_afile_commit(p->f, e);
    free(p->buf);
    free(p);
    return rc;
}

sink_file *sink_file_open(const char *path, const char *scheme, const sink_ops *ops,
                          const void *head, size_t head_len, nd_error *e)
{
    if (!*path) {
        nd_error_set(e, ND_EUSAGE, "%s: needs a file name (%s:FILE)", scheme, scheme);
        return NULL;
    }
    sink_file *p = calloc(1, sizeof *p);
    if (p) p->buf = malloc(FILE_BUF);
    if (!p || !p->buf) {
        nd_error_set(e, -ENOMEM, "out of memory");
        goto fail;
    }
    if (!(p->f = nd_afile_open(path, e))) goto fail;
    p->base.ops = ops;
    p->base.base_ns = 946684800ull * ND_NS_PER_SEC; /* 2000-01-01T00:00:00Z */
    memcpy(p->buf, head, head_len);
    p->len = head_len;
    return p;
fail:
    if (p) free(p->buf);
    free(p);
    return NULL;
}

static uint8_t *pcap_alloc(replay_sink *s, uint32_t len, const replay_pkt_info *info,
                           nd_error *e)
{
    uint8_t *rec = sink_file_room((sink_file *)s, 16 + len, e);
    return rec ? rec + 16 : NULL;
}

static int pcap_send(replay_sink *s, uint32_t len, uint64_t deadline,
                     const replay_pkt_info *info, nd_error *e)
{
    sink_file *p = (sink_file *)s;
    uint32_t rec[4] = {(uint32_t)(deadline / ND_NS_PER_SEC),
                       (uint32_t)(deadline % ND_NS_PER_SEC), len, len};
    memcpy(p->buf + p->len, rec, 16); /* host byte order, as the magic says */
    p->len += 16 + len;
    s->packets++;
    s->bytes += len;
    return 0;
}

static const sink_ops pcap_ops = {"pcap",         0, pcap_alloc, pcap_send, sink_flush_none,
                                  sink_file_close}; /* writes when full */

replay_sink *sink_pcap_open(const char *path, nd_error *e)
{
    const uint32_t hdr[6] = {0xa1b23c4d, 2u | 4u << 16, 0, 0, 65535, 1 /* Ethernet */};
    sink_file *p = sink_file_open(path, "pcap", &pcap_ops, hdr, sizeof hdr, e);
    return p ? &p->base : NULL;
}
