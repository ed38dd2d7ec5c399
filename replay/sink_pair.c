/*
 * sink_pair.c — two-sided replay: a sink made of a client-side and a server-side sink.
 * Client-to-server frames (ND_UP) leave on the client side, server-to-client frames
 * (ND_DOWN) on the server side, so that a device under test between the two sees each
 * direction arrive on its own port. One scheduler feeds both, so the deadlines of both
 * sides are one schedule (docs/REPLAY.md, "Two sides").
 *
 * Both sides are files (pcap:, pcapng:) or both are live (iface:, dpdk:): a pair of a
 * file that takes deadlines as timestamps and a line that waits for them has no common
 * clock. Two dpdk: sides are two ports of one EAL with a tx queue per lcore each: queue q
 * of the pair is queue q of both ports, fed by the scheduler on lcore q. The same
 * pcapng:FILE on both sides is one file with an interface per side (sink_pcapng.c), not
 * a pair.
 *
 * Frames leave in deadline order across the sides too: when the side changes, what the
 * other side queued (a DPDK burst) is flushed first, so bursts are at most as long as a
 * run of frames of one direction. The pair's counters are the sums of its sides', and both
 * sides of a queue record their timing errors in the pair's histogram (one thread drives them).
 */
#include <errno.h>
#include <stdlib.h>

#include "replay_impl.h"

typedef struct sink_pair sink_pair;

struct sink_pair {
    replay_sink base;
    replay_sink *side[2]; /* [ND_UP] the client side, [ND_DOWN] the server side */
    sink_errhist *own[2]; /* the sides' own histograms, given back before they close */
    sink_pair *first;     /* queue 0: the pair replay_sink_open_sides returned */
    sink_pair *more;      /* (nq - 1, on the first) the pairs of queues 1.. */
    uint32_t nq;
    int last; /* the side of the frame last allocated */
};

/* Gives the sides of x their own histograms back and frees the pair's. */
static void pair_unhook(sink_pair *x)
{
    for (int d = 0; d < 2; d++)
        if (x->side[d] && x->base.err && x->side[d]->err == x->base.err)
            x->side[d]->err = x->own[d];
    free(x->base.err);
    x->base.err = NULL;
}

/* The counters of the pair: its sides'. */
static void pair_sync(sink_pair *p)
{
    replay_sink *a = p->side[0], *b = p->side[1];
    p->base.packets = a->packets + b->packets;
    p->base.bytes = a->bytes + b->bytes;
    p->base.drops = a->drops + b->drops;
}

static uint8_t *pair_alloc(replay_sink *s, uint32_t len, const replay_pkt_info *info,
                           nd_error *e)
{
    sink_pair *p = (sink_pair *)s;
    const int d = info->dir == ND_UP ? ND_UP : ND_DOWN;
    replay_sink *k = p->side[d];
    /* what the other side holds back (a DPDK burst) leaves first: a SYN queued on one port
     * never reaches the DUT after the SYN-ACK sent on the other */
    if (d != p->last) {
        replay_sink *o = p->side[p->last];
        int rc = o->ops->flush(o, e);
        pair_sync(p);
        if (rc) return NULL;
        p->last = d;
    }
    k->timed = s->timed; /* set by the scheduler on the pair */
    uint8_t *buf = k->ops->alloc(k, len, info, e);
    s->build_flags = k->build_flags; /* the frame is built for the side it leaves from */
    return buf;
}

static int pair_send(replay_sink *s, uint32_t len, uint64_t deadline,
                     const replay_pkt_info *info, nd_error *e)
{
    sink_pair *p = (sink_pair *)s;
    replay_sink *k = p->side[info->dir == ND_UP ? ND_UP : ND_DOWN];
    int rc = k->ops->send(k, len, deadline, info, e);
    pair_sync(p);
    return rc;
}

static int pair_flush(replay_sink *s, nd_error *e)
{
    sink_pair *p = (sink_pair *)s;
    int rc = p->side[0]->ops->flush(p->side[0], e);
    if (!rc) rc = p->side[1]->ops->flush(p->side[1], e);
    pair_sync(p);
    return rc;
}

static int pair_close(replay_sink *s, nd_error *e)
{
    sink_pair *p = (sink_pair *)s;
    int rc = 0;
    for (uint32_t q = 1; q < p->nq; q++) pair_unhook(&p->more[q - 1]);
    pair_unhook(p);
    for (int d = 0; d < 2; d++) { /* a side closes all its queues */
        nd_error se = {0};
        p->side[d]->discard = s->discard;
        int r = p->side[d]->ops->close(p->side[d], &se);
        if (r && !rc) {
            rc = r;
            if (e) *e = se;
        }
    }
    free(p->more);
    free(p);
    return rc;
}

static uint32_t pair_n_queues(replay_sink *s) { return ((sink_pair *)s)->nq; }

static replay_sink *pair_queue(replay_sink *s, uint32_t q)
{
    sink_pair *p = ((sink_pair *)s)->first;
    ND_ASSERT(q < p->nq);
    return q ? &p->more[q - 1].base : &p->base;
}

/* The client side's lcores run both sides' queues (one EAL). */
static void pair_launch(replay_sink *s, uint32_t q, int (*fn)(void *), void *arg)
{
    replay_sink *c = ((sink_pair *)s)->side[ND_UP];
    c->ops->launch(c, q, fn, arg);
}

static void pair_wait(replay_sink *s)
{
    replay_sink *c = ((sink_pair *)s)->side[ND_UP];
    c->ops->wait(c);
}

static const sink_ops pair_file_ops = {"pair",     0,    pair_alloc, pair_send, pair_flush,
                                       pair_close, NULL, NULL,       NULL,      NULL};
static const sink_ops pair_line_ops = {"pair",      1,          pair_alloc,    pair_send,
                                       pair_flush,  pair_close, pair_n_queues, pair_queue,
                                       pair_launch, pair_wait};

/* The sink of spec for side server (0: client); NULL with e filled. */
static replay_sink *side_open(const char *spec, int server, nd_error *e)
{
#if ND_HAVE_DPDK
    if (!strncmp(spec, "dpdk:", 5)) return sink_dpdk_open(spec + 5, server, e);
#endif
    return replay_sink_open(spec, e);
}

replay_sink *replay_sink_open_sides(const char *client, const char *server, nd_error *e)
{
    if (!strncmp(client, "pcapng:", 7) && !strcmp(client, server))
        return sink_pcapng_open(client + 7, 1, e);
    if (!strcmp(client, server)) {
        nd_error_set(e, ND_EUSAGE,
                     "client and server side are both '%s': give two sinks (or the same "
                     "pcapng:FILE, one file with an interface per side)",
                     client);
        return NULL;
    }
    sink_pair *p = calloc(1, sizeof *p);
    if (!p) {
        nd_error_set(e, -ENOMEM, "out of memory");
        return NULL;
    }
    if (!(p->side[ND_UP] = side_open(client, 0, e))) goto fail;
    if (!(p->side[ND_DOWN] = side_open(server, 1, e))) goto fail;
    replay_sink *c = p->side[ND_UP], *v = p->side[ND_DOWN];
    if (c->ops->paced != v->ops->paced) {
        nd_error_set(e, ND_EUSAGE,
                     "client side '%s' and server side '%s': both files (pcap:, pcapng:) or "
                     "both lines (iface:, dpdk:), so that one clock paces both",
                     client, server);
        goto fail;
    }
    uint32_t nq = c->ops->n_queues ? c->ops->n_queues(c) : 1;
    uint32_t nv = v->ops->n_queues ? v->ops->n_queues(v) : 1;
    if (nq != nv) { /* one scheduler per queue pair: both ports need the lcores' queues */
        nd_error_set(e, ND_EUSAGE,
                     "client side '%s' has %u tx queues, server side '%s' %u: the two DPDK "
                     "ports need as many (one per lcore; fewer lcores: -l)",
                     client, nq, server, nv);
        goto fail;
    }
    if (nq > 1 && !strncmp(client, "dpdk:", 5) != !strncmp(server, "dpdk:", 5)) {
        nd_error_set(e, ND_EUSAGE, "several lcores drive DPDK ports only: '%s' and '%s'",
                     client, server);
        goto fail;
    }
    if (nq > 1 && !(p->more = calloc(nq - 1, sizeof *p->more))) {
        nd_error_set(e, -ENOMEM, "out of memory");
        goto fail;
    }
    p->nq = nq;
    for (uint32_t q = 0; q < nq; q++) {
        sink_pair *x = q ? &p->more[q - 1] : p;
        x->base.ops = c->ops->paced ? &pair_line_ops : &pair_file_ops;
        x->side[ND_UP] = q ? c->ops->queue(c, q) : c;
        x->side[ND_DOWN] = q ? v->ops->queue(v, q) : v;
        x->base.base_ns = c->base_ns;
        x->base.line_bps = c->line_bps > 0 && (v->line_bps <= 0 || c->line_bps < v->line_bps)
                               ? c->line_bps
                               : v->line_bps;
        x->first = p;
        x->nq = nq;
        if (!(x->base.err = calloc(1, sizeof *x->base.err))) {
            nd_error_set(e, -ENOMEM, "out of memory");
            goto fail;
        }
        for (int d = 0; d < 2; d++) {
            x->own[d] = x->side[d]->err;
            x->side[d]->err = x->base.err;
        }
    }
    return &p->base;
fail:
    for (uint32_t q = 1; q < p->nq; q++) pair_unhook(&p->more[q - 1]);
    pair_unhook(p);
    free(p->more);
    for (int d = 0; d < 2; d++)
        if (p->side[d]) replay_sink_discard(p->side[d]);
    free(p);
    return NULL;
}
