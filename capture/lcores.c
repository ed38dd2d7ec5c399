/*
 * lcores.c — a dpdk: source read by several threads (capture.lcores), one flow table each,
 * and the merge of their windows into one context in an order that does not depend on the
 * threads' timing (capture_lcores_* in capture.h).
 *
 * Threads: one pthread per lcore, registered with the EAL (rte_thread_register: a mempool
 * cache of its own) and pinned to the CPU of the EAL's lcore of the same rank (-l, all
 * CPUs by default). pthreads rather than rte_eal_remote_launch: `live` starts the EAL
 * from its capture thread, which then is the EAL's main lcore and merges, and N lcores
 * need not be N + 1 EAL lcores.
 *
 * Dispatch: queue q is read by lcore q mod N. When every queue holds whole flows (one
 * port, symmetric RSS or af_packet fanout: capture_dpdk_whole_flows) and there are at
 * least N queues, each lcore keeps what it reads. Otherwise (net_pcap, net_ring, fewer
 * queues than lcores) the reading lcore parses each packet and hands it, by a symmetric
 * hash of its 5-tuple + VLAN, to the lcore that owns the flow through a single-producer,
 * single-consumer rte_ring per pair of lcores: nothing on the packet path is shared by
 * more than two threads, and nothing is locked. Later IP fragments carry no ports: the
 * reader remembers where each first fragment went.
 *
 * Merge: every window carries its flow's key, start time t0 and its index k; it sorts by
 * (start = t0 + k·L·bin, t0, key, k), one total order of the windows a capture makes,
 * which depends on the packets alone. An lcore publishes a watermark after each round:
 * no window it makes later starts before it. Its flows' open windows started after
 * (now − 2 idle timeouts − L·bin): a flow idle longer than a timeout has ended, to within
 * one more (the LRU order is exact to within the time a flow waits to move; the context's
 * clock is advanced to the readers' clock, so that idle expiry runs on lcores that get no
 * packets), and new flows start at or after the readers' clock, since every reader's
 * packets come in time order. The merger takes the minimum watermark, drains the lcores'
 * window rings into a min-heap and releases every window that starts before it; at the
 * end (flush) the watermarks are infinite. A window that starts before what was
 * released already (a source whose time goes back) is released at once, late: the only
 * case where the order depends on timing. Windows of a flow end identically on any
 * lcore count unless the table is full (eviction picks its victim among the flows of
 * one lcore).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "capture_impl.h"

#define BURST      32
#define PKT_RING   1024 /* packets in flight from one lcore to another */
#define WIN_RING   1024 /* windows of one lcore waiting for the merger */
#define FRAG_SLOTS 1024 /* first fragments remembered by a reader */

/* A packet handed to another lcore: its mbuf and the timestamp its reader gave it. */
typedef struct handoff {
    struct rte_mbuf *m;
    uint64_t ts;
} handoff;

typedef struct win_rec {
    uint64_t start, t0, index, group;
    uint8_t key[48];
    uint32_t cls;
    float v[]; /* (C, L) */
} win_rec;

/* A heap entry: the first keys inline, so that the heap's compares rarely touch the
 * records (a capture to a file holds most windows until the end). */
typedef struct heap_ent {
    uint64_t start, t0;
    win_rec *r;
} heap_ent;

typedef struct frag_dest {
    uint8_t src[16], dst[16];
    uint32_t id, vlan;
    uint8_t proto, used;
    uint16_t lcore;
} frag_dest;

typedef struct lcore {
    capture_lcores *m;
    unsigned idx;
    pthread_t tid;
    int started;
    capture_ctx *ctx;
    unsigned *q, n_q;     /* the queues it reads */
    struct rte_ring *win; /* win_rec * to the merger */
    struct rte_ring **in; /* [reader]: handoffs to this lcore; NULL when none */
    frag_dest *frags;     /* software dispatch: where first fragments went */
    size_t rec_bytes;
    int err; /* out of memory for a window (read by the merger once done) */
    /* published with release, read with acquire */
    _Atomic uint64_t clock; /* a reader: its later packets are no older; UINT64_MAX ended */
    _Atomic uint64_t last;  /* a reader: the latest timestamp it read (set before it ends) */
    _Atomic uint64_t mark;  /* its later windows start at or after this */
    _Atomic int done;
    /* figures, written by the lcore alone */
    _Atomic uint64_t rx, sent, packets, bytes, skipped, flows, active, windows;
} lcore;

struct capture_lcores {
    capture_source *s;
    capture_ctx *c;
    unsigned n, nq, C, L;
    uint64_t win_ns; /* L·bin */
    int soft;        /* software dispatch */
    uint64_t span;   /* 2 idle timeouts + L·bin: how long before now an open window can
                        start (one timeout, and one for the LRU order being exact only to
                        within the time a flow waits to move) */
    lcore *lc;
    _Atomic uint64_t *qrx; /* [nq] packets read per queue */
    atomic_int stop;
    heap_ent *heap;
    size_t nh, cap;
    uint64_t released; /* start of the last window released */
    int rc, finished;
};

/* ------------------------------------------------------------------------------------ */
/* Software dispatch                                                                     */
/* ------------------------------------------------------------------------------------ */

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0xff51afd7ed558ccdull;
    return h ^ h >> 32;
}

/* The same for both directions: the (address, port) sides in a fixed order first. */
static unsigned flow_lcore(const parse_info *pi, unsigned n)
{
    int c = memcmp(pi->src, pi->dst, 16);
    int src_first = c < 0 || (c == 0 && pi->sport <= pi->dport);
    const uint8_t *a = src_first ? pi->src : pi->dst, *b = src_first ? pi->dst : pi->src;
    uint16_t pa = src_first ? pi->sport : pi->dport, pb = src_first ? pi->dport : pi->sport;
    uint64_t h = 0x9E3779B97F4A7C15ull;
    h = mix(h, load64(a)), h = mix(h, load64(a + 8));
    h = mix(h, load64(b)), h = mix(h, load64(b + 8));
    h = mix(h, (uint64_t)pa << 48 | (uint64_t)pb << 32 | (uint64_t)pi->proto << 24);
    h = mix(h, pi->vlan);
    return (unsigned)((h >> 32) * n >> 32);
}

static frag_dest *frag_find(frag_dest *t, const parse_info *pi)
{
    uint64_t h = mix(
        mix(mix(load64(pi->src) ^ load64(pi->src + 8), load64(pi->dst)), load64(pi->dst + 8)),
        (uint64_t)pi->frag_id << 8 | pi->proto);
    return &t[h & (FRAG_SLOTS - 1)];
}

/* The lcore a packet belongs to; self for what does not parse (counted where read). */
static unsigned dispatch_to(lcore *l, const capture_pkt *p)
{
    parse_info pi;
    if (parse_packet(p->data, p->caplen, CAPTURE_LINK_ETHERNET, &pi) != PARSE_OK) return l->idx;
    if (pi.frag == PARSE_FRAG_NONE) return flow_lcore(&pi, l->m->n);
    frag_dest *fd = frag_find(l->frags, &pi);
    if (pi.frag == PARSE_FRAG_FIRST) {
        memcpy(fd->src, pi.src, 16);
        memcpy(fd->dst, pi.dst, 16);
        fd->id = pi.frag_id;
        fd->vlan = pi.vlan;
        fd->proto = pi.proto;
        fd->used = 1;
        fd->lcore = (uint16_t)flow_lcore(&pi, l->m->n);
        return fd->lcore;
    }
    if (fd->used && fd->id == pi.frag_id && fd->proto == pi.proto && fd->vlan == pi.vlan &&
        !memcmp(fd->src, pi.src, 16) && !memcmp(fd->dst, pi.dst, 16))
        return fd->lcore;
    return l->idx; /* its first fragment is unknown: an orphan wherever it goes */
}

/* ------------------------------------------------------------------------------------ */
/* The lcores                                                                            */
/* ------------------------------------------------------------------------------------ */

/* One wait for another thread (a full ring): a few pauses, then the core goes to whoever
 * it is waiting for, which on a shared machine may be runnable on this very core (a
 * spinning reader doubled the CPU time of a 2-lcore capture on 2 busy cores). */
static void backoff(unsigned *spins)
{
    if (++*spins < 64) rte_pause();
    else sched_yield();
}

static int on_window(void *user, uint32_t cls, uint64_t group, const float *values)
{
    lcore *l = user;
    (void)group; /* per lcore; the merged group comes from the flow */
    win_rec *r = malloc(l->rec_bytes);
    if (!r) {
        l->err = -ENOMEM;
        return 0; /* counted by the merger as the capture's error */
    }
    capture_window_flow wf;
    capture_ctx_window_flow(l->ctx, &wf);
    r->t0 = wf.t0;
    r->index = wf.index;
    r->start = wf.t0 + wf.index * l->m->win_ns;
    memcpy(r->key, wf.key, sizeof r->key);
    r->cls = cls;
    uint64_t h = 0x243F6A8885A308D3ull;
    for (int i = 0; i < 48; i += 8) h = mix(h, load64(wf.key + i));
    r->group = mix(h, wf.t0) | 1; /* never 0 */
    memcpy(r->v, values, (size_t)l->m->C * l->m->L * sizeof(float));
    /* The merger may be behind: wait for it rather than lose the window (the order must
     * not depend on who is faster). */
    for (unsigned spins = 0; rte_ring_sp_enqueue(l->win, r);) backoff(&spins);
    return 0;
}

static void feed(lcore *l, const capture_pkt *p, unsigned n)
{
    if (n) capture_ctx_burst(l->ctx, CAPTURE_LINK_ETHERNET, p, n);
}

/* Takes every packet waiting in the rings to l; returns how many. */
static unsigned drain(lcore *l)
{
    unsigned got = 0;
    for (unsigned r = 0; r < l->m->n; r++) {
        if (!l->in[r]) continue;
        handoff h[BURST];
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(l->in[r], h, sizeof *h, BURST, NULL))) {
            capture_pkt p[BURST];
            struct rte_mbuf *mb[BURST];
            for (unsigned j = 0; j < n; j++) {
                mb[j] = h[j].m;
                p[j] = (capture_pkt){rte_pktmbuf_mtod(h[j].m, const uint8_t *),
                                     h[j].m->data_len, h[j].m->pkt_len, h[j].ts};
            }
            feed(l, p, n);
            rte_pktmbuf_free_bulk(mb, n);
            got += n;
        }
    }
    return got;
}

/* Software dispatch of one burst: l's own packets into its table, the others to their
 * lcores (waiting, and taking l's own incoming packets meanwhile, when a ring is full). */
static void dispatch(lcore *l, struct rte_mbuf **mb, const capture_pkt *p, unsigned n)
{
    capture_lcores *m = l->m;
    handoff out[CAPTURE_MAX_LCORES][BURST];
    unsigned n_out[CAPTURE_MAX_LCORES] = {0}, n_own = 0;
    capture_pkt own[BURST];
    struct rte_mbuf *own_m[BURST];
    for (unsigned j = 0; j < n; j++) {
        unsigned t = dispatch_to(l, &p[j]);
        if (t == l->idx) own[n_own] = p[j], own_m[n_own++] = mb[j];
        else out[t][n_out[t]++] = (handoff){mb[j], p[j].ts_ns};
    }
    uint64_t sent = 0;
    for (unsigned t = 0; t < m->n; t++) {
        unsigned done = 0, spins = 0;
        while (done < n_out[t]) {
            done += rte_ring_sp_enqueue_burst_elem(m->lc[t].in[l->idx], out[t] + done,
                                                   sizeof(handoff), n_out[t] - done, NULL);
            if (done < n_out[t] && !drain(l)) backoff(&spins);
        }
        sent += n_out[t];
    }
    atomic_fetch_add_explicit(&l->sent, sent, memory_order_relaxed);
    feed(l, own, n_own);
    if (n_own) rte_pktmbuf_free_bulk(own_m, n_own);
}

static void publish_figures(lcore *l)
{
    capture_totals t;
    capture_ctx_totals(l->ctx, &t);
    atomic_store_explicit(&l->packets, t.packets, memory_order_relaxed);
    atomic_store_explicit(&l->bytes, t.bytes, memory_order_relaxed);
    atomic_store_explicit(&l->skipped, t.skipped, memory_order_relaxed);
    atomic_store_explicit(&l->flows, t.flows, memory_order_relaxed);
    atomic_store_explicit(&l->active, t.active_flows, memory_order_relaxed);
    atomic_store_explicit(&l->windows, t.windows, memory_order_relaxed);
}

/* The lcore's CPU: that of the EAL lcore of the same rank (the EAL pinned the thread that
 * started it, and threads inherit that). */
static void pin(unsigned idx)
{
    unsigned rank = idx % rte_lcore_count(), id = rte_get_next_lcore(-1, 0, 1);
    while (rank--) id = rte_get_next_lcore(id, 0, 1);
    rte_cpuset_t set = rte_lcore_cpuset(id);
    int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (err) nd_warn("capture lcore %u: cannot pin it: %s", idx, strerror(err));
}

static void *lcore_main(void *arg)
{
    lcore *l = arg;
    capture_lcores *m = l->m;
    const capture_source *s = m->s;
    pin(l->idx);
    int registered = rte_thread_register() == 0;
    struct rte_mbuf *mb[BURST];
    capture_pkt p[BURST];
    uint64_t clock = 0;
    unsigned n_open = l->n_q, round = 0;
    unsigned char *ended = calloc(l->n_q ? l->n_q : 1, 1);
    if (!ended) l->err = -ENOMEM, n_open = 0;
    if (!n_open) atomic_store_explicit(&l->clock, UINT64_MAX, memory_order_release);
    for (;;) {
        unsigned got = 0;
        if (n_open) {
            if (atomic_load_explicit(&m->stop, memory_order_relaxed)) n_open = 0;
            for (unsigned k = 0; n_open && k < l->n_q; k++) {
                if (ended[k]) continue;
                unsigned n = capture_dpdk_rx_queue(s, l->q[k], mb, p, BURST);
                if (!n) {
                    if (!s->live) ended[k] = 1, n_open--; /* net_pcap file: its end */
                    continue;
                }
                got += n;
                for (unsigned j = 0; j < n; j++)
                    if (p[j].ts_ns > clock) clock = p[j].ts_ns;
                atomic_fetch_add_explicit(&m->qrx[l->q[k]], n, memory_order_relaxed);
                atomic_fetch_add_explicit(&l->rx, n, memory_order_relaxed);
                if (m->soft) dispatch(l, mb, p, n);
                else feed(l, p, n), rte_pktmbuf_free_bulk(mb, n);
            }
            if (!n_open) {
                atomic_store_explicit(&l->last, clock, memory_order_relaxed);
                clock = UINT64_MAX;
            } else if (!got && s->live) {
                uint64_t now = capture_dpdk_now(s);
                if (now > clock) clock = now;
            }
            atomic_store_explicit(&l->clock, clock, memory_order_release);
        }
        /* The readers' clock before taking their packets: all they read up to it is in
         * the rings, and what they read later is no older. */
        uint64_t min = UINT64_MAX;
        for (unsigned r = 0; r < m->n; r++)
            if (r == l->idx || l->in[r]) {
                uint64_t c = atomic_load_explicit(&m->lc[r].clock, memory_order_acquire);
                if (c < min) min = c;
            }
        got += drain(l);
        if (min == UINT64_MAX) break; /* its readers have ended, their rings are empty */
        if (min) capture_ctx_advance(l->ctx, min);
        atomic_store_explicit(&l->mark, min > m->span ? min - m->span : 0,
                              memory_order_release);
        if (!got || (++round & 63) == 0) publish_figures(l);
        if (!got) {
            struct timespec ts = {0, 20000}; /* an idle port: yield the core */
            nanosleep(&ts, NULL);
        }
    }
    /* The flows still open end at the input's end: the latest packet of all (what one
     * flow table would have seen), so that idle flows count as idle timeouts alike. */
    uint64_t end = 0;
    for (unsigned r = 0; r < m->n; r++) {
        while (atomic_load_explicit(&m->lc[r].clock, memory_order_acquire) != UINT64_MAX) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
        uint64_t t = atomic_load_explicit(&m->lc[r].last, memory_order_relaxed);
        if (t > end) end = t;
    }
    capture_ctx_advance(l->ctx, end);
    capture_ctx_flush(l->ctx);
    publish_figures(l);
    atomic_store_explicit(&l->mark, UINT64_MAX, memory_order_release);
    free(ended);
    if (registered) rte_thread_unregister();
    atomic_store_explicit(&l->done, 1, memory_order_release);
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* The merge                                                                             */
/* ------------------------------------------------------------------------------------ */

static int ent_less(const heap_ent *a, const heap_ent *b)
{
    if (a->start != b->start) return a->start < b->start;
    if (a->t0 != b->t0) return a->t0 < b->t0;
    int c = memcmp(a->r->key, b->r->key, sizeof a->r->key);
    if (c) return c < 0;
    return a->r->index < b->r->index;
}

static int heap_push(capture_lcores *m, win_rec *r)
{
    if (m->nh == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1024;
        heap_ent *h = realloc(m->heap, cap * sizeof *h);
        if (!h) return -ENOMEM;
        m->heap = h;
        m->cap = cap;
    }
    heap_ent e = {r->start, r->t0, r};
    size_t i = m->nh++;
    while (i && ent_less(&e, &m->heap[(i - 1) / 2])) {
        m->heap[i] = m->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->heap[i] = e;
    return 0;
}

static win_rec *heap_pop(capture_lcores *m)
{
    win_rec *top = m->heap[0].r;
    heap_ent last = m->heap[--m->nh];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= m->nh) break;
        if (k + 1 < m->nh && ent_less(&m->heap[k + 1], &m->heap[k])) k++;
        if (!ent_less(&m->heap[k], &last)) break;
        m->heap[i] = m->heap[k];
        i = k;
    }
    if (m->nh) m->heap[i] = last;
    return top;
}

/* One merge step: 0, CAPTURE_END when every lcore is done and every window delivered, or
 * a negative code with e filled. */
static int merge(capture_lcores *m, nd_error *e)
{
    uint64_t mark = UINT64_MAX;
    int done = 1;
    for (unsigned i = 0; i < m->n; i++) {
        uint64_t k = atomic_load_explicit(&m->lc[i].mark, memory_order_acquire);
        if (k < mark) mark = k;
        done &= atomic_load_explicit(&m->lc[i].done, memory_order_acquire);
    }
    for (unsigned i = 0; i < m->n; i++) {
        void *r; /* after a failure, windows are dropped so that the lcores can end */
        while (!rte_ring_sc_dequeue(m->lc[i].win, &r))
            if (m->rc || heap_push(m, r)) {
                free(r);
                if (!m->rc) m->rc = nd_error_set(e, -ENOMEM, "capture lcores: out of memory");
            }
        if (done && m->lc[i].err && !m->rc)
            m->rc = nd_error_set(e, m->lc[i].err, "capture lcore %u: out of memory", i);
    }
    if (m->rc) return m->rc;
    while (m->nh && (m->heap[0].start < mark || m->heap[0].start < m->released)) {
        win_rec *r = heap_pop(m);
        if (r->start > m->released) m->released = r->start;
        int rc = capture_ctx_emit(m->c, r->cls, r->group, r->v);
        free(r);
        if (rc) return m->rc = nd_error_set(e, rc, "storing windows: %s", nd_strerror(rc));
    }
    return done && !m->nh ? CAPTURE_END : 0;
}

/* ------------------------------------------------------------------------------------ */
/* Start, stop                                                                           */
/* ------------------------------------------------------------------------------------ */

/* Stops the lcores, merges the rest and moves their figures into c; once. */
static int lcores_stop(capture_lcores *m, nd_error *e)
{
    if (m->finished) return 0;
    m->finished = 1;
    atomic_store(&m->stop, 1);
    int rc = 0;
    for (unsigned i = 0; i < m->n; i++)
        if (!m->lc[i].started) { /* a start that failed part-way */
            atomic_store(&m->lc[i].clock, UINT64_MAX);
            atomic_store(&m->lc[i].mark, UINT64_MAX);
            atomic_store(&m->lc[i].done, 1);
        }
    for (unsigned i = 0; i < m->n; i++)
        if (m->lc[i].started) {
            /* keep merging while it ends: it waits when its window ring is full */
            while (!atomic_load_explicit(&m->lc[i].done, memory_order_acquire)) {
                int r = merge(m, e);
                if (r < 0 && !rc) rc = r;
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
            }
            pthread_join(m->lc[i].tid, NULL);
        }
    if (!rc) rc = merge(m, e); /* every lcore is done: everything goes */
    if (rc == CAPTURE_END) rc = 0;
    for (unsigned i = 0; i < m->n; i++)
        if (m->lc[i].started) capture_ctx_absorb(m->c, m->lc[i].ctx);
    return rc;
}

int capture_lcores_free(capture_lcores *m, nd_error *e)
{
    int rc = lcores_stop(m, e);
    for (unsigned i = 0; i < m->n; i++) {
        lcore *l = &m->lc[i];
        capture_ctx_free(l->ctx);
        void *r;
        while (l->win && !rte_ring_sc_dequeue(l->win, &r)) free(r);
        rte_ring_free(l->win);
        for (unsigned k = 0; l->in && k < m->n; k++) rte_ring_free(l->in[k]);
        free(l->in);
        free(l->q);
        free(l->frags);
    }
    while (m->nh) free(heap_pop(m));
    free(m->heap);
    free(m->lc);
    free(m->qrx);
    *capture_dpdk_runner(m->s) = NULL;
    free(m);
    return rc;
}

static struct rte_ring *ring_new(const char *what, unsigned a, unsigned b, unsigned esize,
                                 unsigned size)
{
    char name[RTE_RING_NAMESIZE];
    snprintf(name, sizeof name, "nd_%s%u_%u", what, a, b);
    return rte_ring_create_elem(name, esize, size, SOCKET_ID_ANY,
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
}

int capture_lcores_start(capture_source *s, capture_ctx *c, const capture_opts *o, nd_error *e)
{
    unsigned n = capture_lcores_count(s);
    if (!n || n > CAPTURE_MAX_LCORES)
        return nd_error_set(e, ND_ECONFIG,
                            "%s: capture.lcores %u: expected 1 to %d on a dpdk: source",
                            capture_source_spec(s), n, CAPTURE_MAX_LCORES);
    capture_lcores *m = calloc(1, sizeof *m);
    if (!m) return nd_error_set(e, -ENOMEM, "capture lcores: out of memory");
    m->s = s;
    m->c = c;
    m->n = n;
    m->nq = capture_dpdk_n_queues(s);
    m->C = o->channels;
    m->L = o->window;
    m->win_ns = (uint64_t)o->window * o->bin_ns;
    m->soft = n > 1 && (!capture_dpdk_whole_flows(s) || m->nq < n);
    uint64_t idle = o->idle_timeout_ns;
    m->span = idle && idle < (UINT64_MAX - m->win_ns) / 2 ? 2 * idle + m->win_ns : UINT64_MAX;
    *capture_dpdk_runner(s) = m;
    m->lc = calloc(n, sizeof *m->lc);
    m->qrx = calloc(m->nq ? m->nq : 1, sizeof *m->qrx);
    if (!m->lc || !m->qrx) goto nomem;
    capture_opts lo = *o; /* memory stays bounded by flow_capacity */
    lo.flow_capacity = (o->flow_capacity + n - 1) / n;
    for (unsigned i = 0; i < n; i++) {
        lcore *l = &m->lc[i];
        l->m = m;
        l->idx = i;
        l->rec_bytes = sizeof(win_rec) + (size_t)m->C * m->L * sizeof(float);
        l->q = calloc(m->nq / n + 1, sizeof *l->q);
        l->in = calloc(n, sizeof *l->in);
        if (!l->q || !l->in) goto nomem;
        for (unsigned q = i; q < m->nq; q += n) l->q[l->n_q++] = q;
        l->ctx = capture_ctx_new(&lo, NULL, on_window, l, e);
        if (!l->ctx) goto fail;
        capture_ctx_arrival_share(l->ctx, n);
        if (!(l->win = ring_new("w", i, 0, sizeof(void *), WIN_RING))) goto noring;
        if (m->soft && l->n_q && !(l->frags = calloc(FRAG_SLOTS, sizeof *l->frags))) goto nomem;
    }
    for (unsigned t = 0; m->soft && t < n; t++)
        for (unsigned r = 0; r < n; r++)
            if (r != t && m->lc[r].n_q &&
                !(m->lc[t].in[r] = ring_new("p", r, t, sizeof(handoff), PKT_RING)))
                goto noring;
    nd_info("%s: %u lcores over %u rx queue(s), %s", capture_source_spec(s), n, m->nq,
            n == 1 ? "one flow table"
            : m->soft
                ? "flows handed to their lcore by a symmetric hash of the 5-tuple"
                : "each queue's flows kept by the lcore that reads it (whole flows per queue)");
    for (unsigned i = 0; i < n; i++) {
        int err = pthread_create(&m->lc[i].tid, NULL, lcore_main, &m->lc[i]);
        if (err) {
            nd_error_set(e, -err, "capture lcore %u: cannot start a thread: %s", i,
                         strerror(err));
            goto fail;
        }
        m->lc[i].started = 1;
    }
    return 0;
noring:
    nd_error_set(e, -ENOMEM, "capture lcores: rte_ring: %s (give the EAL more memory: -m)",
                 rte_strerror(rte_errno));
    goto fail;
nomem:
    nd_error_set(e, -ENOMEM, "capture lcores: out of memory");
fail:;
    int rc = e ? e->code : -ENOMEM;
    capture_lcores_free(m, NULL);
    return rc;
}

int capture_lcores_merge(capture_source *s, nd_error *e)
{
    capture_lcores *m = capture_lcores_count(s) ? *capture_dpdk_runner(s) : NULL;
    return m && !m->finished ? merge(m, e) : CAPTURE_END;
}

int capture_lcores_finish(capture_source *s, nd_error *e)
{
    capture_lcores *m = capture_lcores_count(s) ? *capture_dpdk_runner(s) : NULL;
    return m ? lcores_stop(m, e) : 0;
}

static unsigned lcores_stats(capture_source *s, capture_lcore_stats *st, unsigned max)
{
    capture_lcores *m = capture_lcores_count(s) ? *capture_dpdk_runner(s) : NULL;
    if (!m) return 0;
    for (unsigned i = 0; i < m->n && i < max; i++) {
        lcore *l = &m->lc[i];
        st[i] = (capture_lcore_stats){
            .queues = l->n_q,
            .rx = atomic_load_explicit(&l->rx, memory_order_relaxed),
            .sent = atomic_load_explicit(&l->sent, memory_order_relaxed),
            .packets = atomic_load_explicit(&l->packets, memory_order_relaxed),
            .bytes = atomic_load_explicit(&l->bytes, memory_order_relaxed),
            .skipped = atomic_load_explicit(&l->skipped, memory_order_relaxed),
            .flows = atomic_load_explicit(&l->flows, memory_order_relaxed),
            .active_flows = atomic_load_explicit(&l->active, memory_order_relaxed),
            .windows = atomic_load_explicit(&l->windows, memory_order_relaxed),
        };
    }
    return m->n;
}

void capture_lcores_figures_get(capture_source *s, capture_lcores_figures *f)
{
    capture_lcores *m = capture_lcores_count(s) ? *capture_dpdk_runner(s) : NULL;
    if (!m) return;
    f->n = lcores_stats(s, f->lc, CAPTURE_MAX_LCORES);
    f->nq = m->nq; /* at most CAPTURE_MAX_QUEUES: source_dpdk.c sets up no more */
    for (unsigned q = 0; q < m->nq; q++) {
        capture_dpdk_queue_id(s, q, &f->q[q].port, &f->q[q].queue);
        f->q[q].lcore = q % m->n;
        f->q[q].packets = atomic_load_explicit(&m->qrx[q], memory_order_relaxed);
    }
}

uint64_t capture_lcores_received(const capture_lcores *m)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < m->n; i++)
        n += atomic_load_explicit(&m->lc[i].rx, memory_order_relaxed);
    return n;
}

void capture_lcores_totals_add(capture_source *s, capture_totals *t)
{
    capture_lcores *m = capture_lcores_count(s) ? *capture_dpdk_runner(s) : NULL;
    if (!m || m->finished) return; /* in c already */
    capture_lcore_stats st[CAPTURE_MAX_LCORES];
    unsigned n = lcores_stats(s, st, CAPTURE_MAX_LCORES);
    for (unsigned i = 0; i < n; i++) {
        t->packets += st[i].packets;
        t->bytes += st[i].bytes;
        t->skipped += st[i].skipped;
        t->flows += st[i].flows;
        t->active_flows += st[i].active_flows;
    }
}
