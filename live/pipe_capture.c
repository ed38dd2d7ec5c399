/*
 * pipe_capture.c — the capture thread of `netdiffus live` (live_impl.h): sources →
 * capture_ctx → window callback → nd_wring (a full ring drops and counts, never waits).
 *
 * pcap files are played at their own pace (packet timestamps, x speed) on one timeline
 * starting now, so that windows leave when they would on a wire; live sources are polled
 * in turn. A dpdk: source with capture.lcores is read by its lcores (capture_lcores_*),
 * and this thread merges their windows into the context in their fixed order. Pinned to
 * capture_core when one is given.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "live_impl.h"

/* Totals for the status view; with stats, also the per-class replay statistics that
 * checkpoints store (reducing them to top lists costs a pass over 64k counters per
 * class, so the capture thread does it once a second, not on every publish). */
static void publish(nd_live *L, int stats)
{
    pthread_mutex_lock(&L->mu);
    capture_ctx_totals(L->ctx, &L->snap.tot);
    capture_source_stats sum = {0};
    for (unsigned k = 0; k < L->n_src; k++) {
        capture_lcores_totals_add(L->src[k].s, &L->snap.tot);
        capture_lcores_figures_get(L->src[k].s, &L->snap.lcores);
        capture_source_stats st;
        capture_source_stats_get(L->src[k].s, &st);
        sum.received += st.received;
        sum.dropped += st.dropped;
        sum.if_dropped += st.if_dropped;
        sum.nombuf += st.nombuf;
        sum.errors += st.errors;
    }
    L->snap.src = sum;
    for (uint32_t i = 0; i < L->snap.n_counters; i++) {
        const char *name;
        capture_ctx_counter(L->ctx, i, &name, &L->snap.counters[i]);
    }
    for (uint32_t i = 0; i < L->n_classes; i++) {
        L->snap.class_windows[i] = capture_ctx_class_windows(L->ctx, i);
        if (stats) L->snap.stats[i] = *capture_ctx_class_stats(L->ctx, i);
    }
    L->snap.gen++;
    pthread_mutex_unlock(&L->mu);
}

void nd_live_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / ND_NS_PER_SEC), (long)(ns % ND_NS_PER_SEC)};
    nanosleep(&ts, NULL);
}

/* Next file packet on the shared timeline: the source whose head is earliest. Refills
 * bursts; marks ended files. Returns the source or NULL when every file has ended. */
static nd_live_src *next_file_packet(nd_live *L, uint64_t base, int *rc)
{
    nd_live_src *best = NULL;
    uint64_t best_t = UINT64_MAX;
    for (unsigned k = 0; k < L->n_src; k++) {
        nd_live_src *s = &L->src[k];
        if (!s->file || s->ended) continue;
        if (s->i == s->n) {
            nd_error re = {0};
            int n = capture_source_rx(s->s, s->pkts, ND_LIVE_BURST, 0, &re);
            if (n == CAPTURE_END || n == ND_ETRUNC) {
                if (n == ND_ETRUNC) nd_warn("%s", re.msg);
                s->ended = 1;
                nd_info("live: %s: input ended", capture_source_spec(s->s));
                continue;
            }
            if (n < 0) {
                *rc = nd_error_set(&L->cap_err, n, "%s", re.msg);
                return NULL;
            }
            if (!s->t0 && n > 0) s->t0 = s->pkts[0].ts_ns ? s->pkts[0].ts_ns : 1;
            /* each file's clock starts at base: files recorded at different times play
             * side by side, and one flow-table clock stays monotonic */
            for (int j = 0; j < n; j++) {
                uint64_t d = s->pkts[j].ts_ns > s->t0 ? s->pkts[j].ts_ns - s->t0 : 0;
                s->pkts[j].ts_ns = base + d;
            }
            s->n = (unsigned)n;
            s->i = 0;
            if (!n) continue;
        }
        if (s->pkts[s->i].ts_ns < best_t) {
            best_t = s->pkts[s->i].ts_ns;
            best = s;
        }
    }
    return best;
}

/* One round of the files' timeline at virtual time vnow: up to 256 packets that are
 * due, then a wait for the next one (at most 50 ms), ending idle flows. Returns 0, 1 once
 * every file has ended, or a negative code (L->cap_err filled). */
static int feed_files(nd_live *L, uint64_t base, uint64_t vnow)
{
    int rc = 0;
    unsigned fed = 0;
    nd_live_src *s;
    while (fed < 256 && (s = next_file_packet(L, base, &rc)) && s->pkts[s->i].ts_ns <= vnow) {
        capture_ctx_burst(L->ctx, s->linktype, &s->pkts[s->i], 1);
        s->i++;
        fed++;
    }
    if (rc) return rc;
    if (!s) return 1;
    if (fed < 256) {
        uint64_t wait = (uint64_t)((double)(s->pkts[s->i].ts_ns - vnow) / L->o->speed);
        capture_ctx_advance(L->ctx, vnow);
        nd_live_sleep_ns(wait < 50000000ull ? wait : 50000000ull);
    }
    return 0;
}

/* One round over the live sources: a burst from each that is still open (waiting up to
 * 100 ms when there is only one). Returns 0, 1 once every source has ended, or a
 * negative code (L->cap_err filled). */
static int feed_live(nd_live *L)
{
    int fed = 0, open = 0;
    for (unsigned k = 0; k < L->n_src; k++) {
        nd_live_src *s = &L->src[k];
        if (s->ended) continue;
        open++;
        nd_error re = {0};
        if (s->lcores) {
            int rc = capture_lcores_merge(s->s, &re);
            if (rc == CAPTURE_END) {
                s->ended = 1;
                nd_info("live: %s: input ended", capture_source_spec(s->s));
            } else if (rc < 0) {
                return nd_error_set(&L->cap_err, rc, "%s", re.msg);
            }
            continue; /* its lcores poll; the wait below paces the merging */
        }
        int n = capture_source_rx(s->s, s->pkts, ND_LIVE_BURST, L->n_src == 1 ? 100 : 0, &re);
        if (n > 0) {
            capture_ctx_burst(L->ctx, s->linktype, s->pkts, (unsigned)n);
            fed += n;
        } else if (n == CAPTURE_END) { /* a DPDK net_pcap file port at its end */
            s->ended = 1;
            nd_info("live: %s: input ended", capture_source_spec(s->s));
        } else if (n < 0 && !L->cap_stop) {
            return nd_error_set(&L->cap_err, n, "%s", re.msg);
        }
    }
    if (!open) return 1;
    if (!fed) {
        capture_ctx_advance(L->ctx, nd_realtime_ns());
        if (L->n_src > 1 || L->src[0].lcores) nd_live_sleep_ns(1000000);
    }
    return 0;
}

void *nd_live_capture_main(void *arg)
{
    nd_live *L = arg;
    int core = L->o->capture_core;
    if (core >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(core, &set);
        int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        if (err)
            nd_warn("live: cannot pin the capture thread to CPU %d: %s", core, strerror(err));
    }
    int rc = 0;
    for (unsigned k = 0; k < L->n_src && !rc; k++) {
        nd_live_src *s = &L->src[k];
        s->lcores = capture_lcores_count(s->s) > 0;
        if (s->lcores) rc = capture_lcores_start(s->s, L->ctx, &L->o->capture, &L->cap_err);
    }
    uint64_t base = nd_realtime_ns(), mono0 = nd_now_ns(), next_pub = 0, next_stats = 0;
    while (!L->cap_stop && !rc) {
        uint64_t mono = nd_now_ns();
        if (mono >= next_pub) {
            publish(L, mono >= next_stats);
            next_pub = mono + ND_NS_PER_SEC / 4;
            if (mono >= next_stats) next_stats = mono + ND_NS_PER_SEC;
        }
        /* the files' timeline: virtual now = base + elapsed × speed */
        if (L->files)
            rc = feed_files(L, base,
                            L->o->speed > 0
                                ? base + (uint64_t)((double)(mono - mono0) * L->o->speed)
                                : UINT64_MAX);
        else rc = feed_live(L);
    }
    /* flows still open end here: their last windows go to the trainer too */
    for (unsigned k = 0; k < L->n_src; k++) {
        nd_error fe = {0};
        int frc = capture_lcores_finish(L->src[k].s, &fe);
        if (frc && !rc) rc = nd_error_set(&L->cap_err, frc, "%s", fe.msg);
    }
    capture_ctx_flush(L->ctx);
    publish(L, 1);
    L->cap_rc = rc < 0 ? rc : 0; /* 1: every input ended */
    atomic_store(&L->cap_done, 1);
    return NULL;
}
