/*
 * sched.c — the replay scheduler: plans flows (class, window, start time), merges their
 * packets with a min-heap keyed by absolute deadline, paces paced sinks, counts.
 *
 * Every packet's deadline is t0 + offset / speed, offset being its series time since the
 * start of the run: never "sleep since the previous packet", which drifts. Waiting is a
 * clock_nanosleep(TIMER_ABSTIME) to spin_ns before the deadline, then a busy-wait on
 * CLOCK_MONOTONIC (the vDSO reads the TSC). Packets whose deadline has passed are queued
 * without waiting, which is what makes DPDK bursts. Flows are generated lazily, one bin
 * at a time, each with its own PRNG stream: memory follows the number of active flows.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include "replay_impl.h"

#define PCAP_EPOCH_NS (946684800ull * ND_NS_PER_SEC) /* 2000-01-01T00:00:00Z */
#define PACED_LEAD_NS 1000000ull                     /* t0 = start + 1 ms */

void replay_opts_defaults(replay_opts *o)
{
    memset(o, 0, sizeof *o);
    o->speed = 1.0;
    o->loop = 1;
    o->seed = 1;
    /* RFC 2544 benchmarking (198.18.0.0/15) and RFC 3849 documentation (2001:db8::/32)
     * ranges: replayed packets never carry anyone's real addresses */
    o->client_pool = "198.18.0.0/16";
    o->server_pool = "198.19.0.0/16";
    o->client_pool6 = "2001:db8:0:1::/64";
    o->server_pool6 = "2001:db8:0:2::/64";
    o->clients = 256;
    o->servers = 16;
    o->mac_src = "02:00:00:00:00:01"; /* locally administered */
    o->mac_dst = "02:00:00:00:00:02";
    o->spin_ns = 30000; /* wake-ups with 1 ns timer slack land within ~10-20 us here */
    o->status = nd_status_enabled();
}

/* ------------------------------------------------------------------------------------ */
/* Waiting                                                                              */
/* ------------------------------------------------------------------------------------ */

void sched_wait_until(uint64_t deadline, uint64_t spin_ns, volatile sig_atomic_t *stop)
{
    uint64_t now = nd_now_ns();
    while (now + spin_ns < deadline) {
        if (stop && *stop) return;
        uint64_t wake = deadline - spin_ns;
        struct timespec ts = {(time_t)(wake / ND_NS_PER_SEC), (long)(wake % ND_NS_PER_SEC)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL); /* EINTR: look again */
        now = nd_now_ns();
    }
    while (now < deadline) {
        __builtin_ia32_pause();
        now = nd_now_ns();
    }
}

/* ------------------------------------------------------------------------------------ */
/* Flow heap: min-heap of active flows keyed by their next packet's series time          */
/* ------------------------------------------------------------------------------------ */

static inline uint64_t flow_key(const pkt_flow *f) { return f->start + f->pk[f->pos].t; }

/* Entries carry their key, so that sifting never chases a flow's packet array. */
typedef struct heap_ent {
    uint64_t key, id; /* next packet's series time; flow id breaks ties (determinism) */
    pkt_flow *f;
} heap_ent;

static inline int ent_before(const heap_ent *a, const heap_ent *b)
{
    return a->key < b->key || (a->key == b->key && a->id < b->id);
}

typedef struct sched_heap {
    heap_ent *h;
    size_t n, cap;
} sched_heap;

static void heap_down(sched_heap *q, size_t i)
{
    heap_ent x = q->h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && ent_before(&q->h[c + 1], &q->h[c])) c++;
        if (!ent_before(&q->h[c], &x)) break;
        q->h[i] = q->h[c];
        i = c;
    }
    q->h[i] = x;
}

static int heap_push(sched_heap *q, pkt_flow *f)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 256;
        heap_ent *h = realloc(q->h, cap * sizeof *h);
        if (!h) return -ENOMEM;
        q->h = h;
        q->cap = cap;
    }
    heap_ent x = {flow_key(f), f->id, f};
    size_t i = q->n++;
    while (i && ent_before(&x, &q->h[(i - 1) / 2])) {
        q->h[i] = q->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->h[i] = x;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* The run                                                                              */
/* ------------------------------------------------------------------------------------ */

/* A planned flow: start (series ns from its pass's start) and (first) window (streamed:
 * the class of the flow it takes when it starts). */
typedef struct plan_ent {
    uint64_t t;
    uint32_t w;
} plan_ent;

/* Streamed flows that load_target measures (kept for the first flows of their class):
 * enough for --pps and --mbps, which set the rate from them; a few for the others, which
 * only say what they take (the output waits for them). */
#define STREAM_MEASURE      32
#define STREAM_MEASURE_SAID 4

typedef struct sched {
    const nd_dataset *ds;
    const replay_opts *o;
    pkt_layout lay;
    pkt_pool cli, srv;
    pkt_l2 l2;         /* MAC pools and VLAN tags of both sides */
    pkt_class *pc;     /* (n_classes), built for the classes in use */
    uint8_t *pc_ready; /* (n_classes) */
    uint32_t *elig;    /* eligible flows' (first) windows, in dataset order */
    uint32_t n_elig;
    uint32_t *run;      /* flow_runs: (n_windows) windows of the flow a window begins; NULL:
                           one each */
    uint64_t flow_ns;   /* the eligible flows' mean length (one window: L bins) */
    uint32_t longest;   /* bins of the longest flow (streamed: o->flow_windows) */
    uint32_t **cls_win; /* per class, its eligible windows (mix) */
    uint32_t *cls_n;
    double *mix_cum; /* (n_mix) cumulative weights */
    uint32_t *mix_cls;
    pkt_cdf *arr;       /* (n_classes) flow inter-arrival gaps, built with pc */
    double *arr_mean;   /* (n_classes) their mean in ns */
    double target_rate; /* --flows-per-s, --pps, --mbps: flow starts per second; else 0 */
    uint64_t lead;      /* load targets: series time before the output begins */
    double lead_flows;  /* rate targets: flows active when it begins, on average */
    /* plan of the current loop, by start time */
    uint32_t n_plan;
    plan_ent *plan;
    uint64_t plan_span;
    pkt_flow *free_flows; /* finished flows kept for their packet buffers (list via win) */
    pkt_flow **all_flows;
    size_t n_all, cap_all;
    int quiet; /* another queue's scheduler: leave the log lines to queue 0 */
    /* streamed flows (o->take): the ones measured (STREAM_MEASURE: their windows, classes,
     * taken yet), flows taken so far, and whether the output has begun (from then on a
     * paced sink's flow does not wait past its start for its flow) */
    float *stash[STREAM_MEASURE];
    size_t stash_cap[STREAM_MEASURE];
    uint32_t stash_nwin[STREAM_MEASURE];
    uint32_t stash_cls[STREAM_MEASURE];
    uint8_t stash_used[STREAM_MEASURE];
    uint32_t n_stash;
    uint64_t streamed;
    int primed;
} sched;

static int find_channel(const nd_dataset *ds, const char *a, const char *b)
{
    for (uint32_t c = 0; c < ds->n_channels; c++)
        if (!strcmp(ds->channel_names[c], a) || (b && !strcmp(ds->channel_names[c], b)))
            return (int)c;
    return -1;
}

static int find_class(const nd_dataset *ds, const char *name)
{
    for (uint32_t c = 0; c < ds->n_classes; c++)
        if (!strcmp(ds->class_names[c], name)) return (int)c;
    return -1;
}

static int unknown_class(const nd_dataset *ds, const char *name, nd_error *e)
{
    char list[512] = "";
    size_t len = 0;
    for (uint32_t c = 0; c < ds->n_classes && len + ND_NAME_MAX + 3 < sizeof list; c++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", c ? ", " : "",
                                ds->class_names[c]);
    return nd_error_set(e, ND_EUSAGE, "unknown class '%s' (the data has: %s)", name, list);
}

static const nd_class_stats zero_stats;

static int class_ready(sched *s, uint32_t c)
{
    if (s->pc_ready[c]) return 0;
    const nd_class_stats *st = s->ds->stats ? &s->ds->stats[c] : &zero_stats;
    int rc = pkt_class_init(&s->pc[c], st, s->ds->class_names[c]);
    if (!rc && (rc = pkt_cdf_init(&s->arr[c], st->arrival_hist, ND_ARRIVAL_HIST)))
        pkt_class_free(&s->pc[c]);
    if (rc) return rc;
    s->pc_ready[c] = 1;
    const pkt_class *pc = &s->pc[c];
    /* the mean gap as arrival_gap draws them (a load target divides by it) */
    double n = 0, sum = 0;
    for (uint32_t b = 0; b < ND_ARRIVAL_HIST; b++) {
        uint64_t first, width;
        nd_arrival_range(b, &first, &width);
        n += (double)st->arrival_hist[b];
        sum += (double)st->arrival_hist[b] * ((double)first + (double)width / 2);
    }
    if (n > 0) s->arr_mean[c] = sum / n;
    /* files from before per-input arrivals have flows but no inputs: their first and
     * last flow start may be years apart (unrelated captures), no rate */
    if (!s->quiet && !s->arr[c].n)
        nd_info("replay: class '%s' has no flow arrivals %s: its flows start evenly spread",
                pc->name,
                st->flows && !st->arrival_inputs
                    ? "measured per input (the file predates them: capture again to replay "
                      "the captured arrivals)"
                    : "in its statistics");
    if (!s->quiet && (!pc->has_sizes || !pc->has_iat || !st->flows)) {
        char missing[96] = "", using[160] = "";
        if (!pc->has_sizes)
            strcat(missing, ", packet sizes"), strcat(using, ", MTU-sized frames");
        if (!pc->has_iat)
            strcat(missing, ", inter-arrival times"), strcat(using, ", even send times");
        if (!st->flows) strcat(missing, ", flow mix"), strcat(using, ", TCP/IPv4 to port 443");

        nd_info("replay: class '%s' has no statistics of %s: using %s", pc->name, missing + 2,
                using + 2);
    }
    return 0;
}

static void sched_free(sched *s)
{
    if (s->pc)
        for (uint32_t c = 0; c < s->ds->n_classes; c++)
            if (s->pc_ready[c]) pkt_class_free(&s->pc[c]), pkt_cdf_free(&s->arr[c]);
    free(s->pc);
    free(s->arr);
    free(s->arr_mean);
    free(s->pc_ready);
    free(s->elig);
    if (s->cls_win)
        for (uint32_t c = 0; c < s->ds->n_classes; c++) free(s->cls_win[c]);
    free(s->cls_win);
    free(s->cls_n);
    free(s->mix_cum);
    free(s->mix_cls);
    free(s->plan);
    free(s->run);
    for (uint32_t i = 0; i < STREAM_MEASURE; i++) free(s->stash[i]);
    for (size_t i = 0; i < s->n_all; i++) {
        pkt_flow_free(s->all_flows[i]);
        free(s->all_flows[i]->own);
        free(s->all_flows[i]);
    }
    free(s->all_flows);
}

/* One side's address pool from its prefix lists (either may be NULL or ""). */
static int pool_parse(pkt_pool *p, const char *list, const char *list6, uint32_t count,
                      const char *what, nd_error *e)
{
    char text[PKT_POOL_TEXT];
    int n = snprintf(text, sizeof text, "%s,%s", list ? list : "", list6 ? list6 : "");
    if (n < 0 || (size_t)n >= sizeof text)
        return nd_error_set(e, ND_ECONFIG, "%s: prefix lists longer than %d bytes", what,
                            PKT_POOL_TEXT - 2);
    return pkt_pool_parse(p, text, count, what, e);
}

static int sched_init(sched *s, const nd_dataset *ds, const replay_opts *o, nd_error *e)
{
    memset(s, 0, sizeof *s);
    s->ds = ds;
    s->o = o;
    if (!ds || (!ds->n_windows && !o->take) || !ds->n_classes)
        return nd_error_set(e, ND_EFORMAT, "no windows to replay (the dataset is empty)");
    if (o->take && (!o->n_mix || !o->flows || o->only_class))
        return nd_error_set(e, ND_EUSAGE,
                            "streamed windows need the classes' shares (mix) and flows per "
                            "pass, and no only_class");
    if (!ds->L || !ds->bin_ns || ds->bin_ns < 1000)
        return nd_error_set(e, ND_EFORMAT,
                            "bad window shape: L=%u bins of %llu ns (need >= 1 us)", ds->L,
                            (unsigned long long)ds->bin_ns);
    s->lay.C = ds->n_channels;
    s->lay.L = ds->L;
    s->lay.bin_ns = ds->bin_ns;
    s->lay.bytes[ND_DOWN] = find_channel(ds, "bytes_down", NULL);
    s->lay.bytes[ND_UP] = find_channel(ds, "bytes_up", NULL);
    s->lay.pkts[ND_DOWN] = find_channel(ds, "pkts_down", "packets_down");
    s->lay.pkts[ND_UP] = find_channel(ds, "pkts_up", "packets_up");
    if (s->lay.bytes[0] < 0 || s->lay.bytes[1] < 0)
        return nd_error_set(e, ND_EFORMAT,
                            "the series need channels bytes_down and bytes_up to be replayed");
    if (!(o->speed >= 0) || !isfinite(o->speed))
        return nd_error_set(e, ND_EUSAGE,
                            "speed must be a number >= 0 (0: as fast as possible)");
    int rc = pool_parse(&s->cli, o->client_pool, o->client_pool6, o->clients,
                        "replay.client_pool", e);
    if (!rc)
        rc = pool_parse(&s->srv, o->server_pool, o->server_pool6, o->servers,
                        "replay.server_pool", e);
    if (rc) return rc;
    if ((s->cli.has4 && s->srv.has4) + (s->cli.has6 && s->srv.has6) == 0)
        return nd_error_set(e, ND_ECONFIG,
                            "replay.client_pool and replay.server_pool share no IP version");
    if ((rc = pkt_l2_init(&s->l2, o, e))) return rc;

    uint32_t K = ds->n_classes;
    s->pc = calloc(K, sizeof *s->pc);
    s->pc_ready = calloc(K, 1);
    s->arr = calloc(K, sizeof *s->arr);
    s->arr_mean = calloc(K, sizeof *s->arr_mean);
    s->elig = malloc((ds->n_windows ? ds->n_windows : 1) * sizeof *s->elig); /* streamed: 0 */
    s->cls_win = calloc(K, sizeof *s->cls_win);
    s->cls_n = calloc(K, sizeof *s->cls_n);
    if (!s->pc || !s->pc_ready || !s->arr || !s->arr_mean || !s->elig || !s->cls_win ||
        !s->cls_n)
        return nd_error_set(e, -ENOMEM, "out of memory");

    int only = -1;
    if (o->only_class) {
        only = find_class(ds, o->only_class);
        if (only < 0) return unknown_class(ds, o->only_class, e);
    }
    if (o->flow_runs && !o->take && !(s->run = malloc(ds->n_windows * sizeof *s->run)))
        return nd_error_set(e, -ENOMEM, "out of memory");
    uint64_t elig_windows = 0;
    for (uint64_t w = 0, n; w < ds->n_windows; w += n) {
        uint32_t c = ds->labels[w];
        if (c >= K)
            return nd_error_set(e, ND_EFORMAT, "window %llu has class %u of %u",
                                (unsigned long long)w, c, K);
        for (n = 1; s->run && w + n < ds->n_windows && ds->groups[w + n] == ds->groups[w];) n++;
        if (s->run) s->run[w] = (uint32_t)n;
        if (n * ds->L > s->longest) s->longest = (uint32_t)(n * ds->L);
        if (only >= 0 && (int)c != only) continue;
        s->elig[s->n_elig++] = (uint32_t)w;
        s->cls_n[c]++;
        elig_windows += n;
    }
    s->flow_ns = (uint64_t)ds->L * ds->bin_ns * (s->n_elig ? elig_windows / s->n_elig : 1);
    if (o->take) s->longest = (o->flow_windows ? o->flow_windows : 1) * ds->L;
    if (!s->n_elig && !o->take)
        return nd_error_set(e, ND_EFORMAT, "class '%s' has no windows to replay",
                            o->only_class);

    if (o->n_mix > ND_MAX_CLASSES)
        return nd_error_set(e, ND_EUSAGE, "replay.mix: %u classes, at most %d", o->n_mix,
                            ND_MAX_CLASSES);
    if (o->n_mix && only < 0) {
        s->mix_cum = malloc(o->n_mix * sizeof *s->mix_cum);
        s->mix_cls = malloc(o->n_mix * sizeof *s->mix_cls);
        if (!s->mix_cum || !s->mix_cls) return nd_error_set(e, -ENOMEM, "out of memory");
        double sum = 0;
        for (uint32_t i = 0; i < o->n_mix; i++) {
            int c = find_class(ds, o->mix[i].name);
            if (c < 0) return unknown_class(ds, o->mix[i].name, e);
            if (!s->cls_n[c] && !o->take)
                return nd_error_set(e, ND_EFORMAT, "replay.mix: class '%s' has no windows",
                                    o->mix[i].name);
            if (!(o->mix[i].weight >= 0))
                return nd_error_set(e, ND_ECONFIG, "replay.mix: weight of '%s' must be >= 0",
                                    o->mix[i].name);
            sum += o->mix[i].weight;
            s->mix_cum[i] = sum;
            s->mix_cls[i] = (uint32_t)c;
        }
        if (!(sum > 0)) return nd_error_set(e, ND_ECONFIG, "replay.mix: all weights are 0");
        for (uint32_t c = 0; c < K && !o->take; c++) {
            if (!s->cls_n[c]) continue;
            s->cls_win[c] = malloc(s->cls_n[c] * sizeof **s->cls_win);
            if (!s->cls_win[c]) return nd_error_set(e, -ENOMEM, "out of memory");
            s->cls_n[c] = 0;
        }
        for (uint32_t i = 0; i < s->n_elig; i++) {
            uint32_t c = ds->labels[s->elig[i]];
            s->cls_win[c][s->cls_n[c]++] = s->elig[i];
        }
    }
    s->n_plan = o->flows ? o->flows : s->n_elig;
    s->plan = malloc(s->n_plan * sizeof *s->plan);
    if (!s->plan) return nd_error_set(e, -ENOMEM, "out of memory");
    return 0;
}

/* A gap between two flow starts of class c in ns: a bucket of its histogram, then a
 * point uniform within the bucket. */
static double arrival_gap(const sched *s, uint32_t c, nd_rng *r)
{
    uint64_t first, width;
    nd_arrival_range(pkt_cdf_draw(&s->arr[c], r), &first, &width);
    return (double)first + (double)width * nd_rng_uniform(r);
}

/* Plans loop l: each flow's window and start time. Each flow starts one gap after the
 * one before, drawn from its class's captured gaps, or, with a flow rate to hold
 * (target_rate), of their shape scaled to that rate (exponential when the class has
 * none). Without either, flows are spread evenly over the duration, or over the flows'
 * mean length (whole windows; streamed: one window) when there is no duration. A pass
 * goes on from the last start of the one before. */
static int plan_loop(sched *s, uint64_t l, uint64_t dur_series)
{
    const replay_opts *o = s->o;
    nd_rng r;
    replay_rng_seed(&r, o->seed, (1ull << 63) | l);
    uint64_t last = 0, spread = dur_series ? dur_series : s->flow_ns;
    double t = 0;
    int timed = 0;
    for (uint32_t i = 0; i < s->n_plan; i++) {
        uint32_t w;
        if (s->mix_cum) {
            double x = nd_rng_uniform(&r) * s->mix_cum[o->n_mix - 1];
            uint32_t k = 0;
            while (k + 1 < o->n_mix && s->mix_cum[k] <= x) k++;
            uint32_t c = s->mix_cls[k];
            w = s->o->take ? c : s->cls_win[c][replay_rng_below(&r, s->cls_n[c])];
        } else {
            w = s->elig[i % s->n_elig];
        }
        uint32_t c = s->o->take ? w : s->ds->labels[w];
        int rc = class_ready(s, c);
        if (rc) return rc;
        if (s->target_rate > 0) {
            double g = s->arr[c].n ? arrival_gap(s, c, &r) / s->arr_mean[c]
                                   : -log(1.0 - nd_rng_uniform(&r));
            if (i || l) t += g * 1e9 / s->target_rate;
            timed = 1;
        } else if (s->arr[c].n) {
            if (i || l) t += arrival_gap(s, c, &r);
            timed = 1;
        } else {
            t = (double)((unsigned __int128)spread * i / s->n_plan); /* 128-bit: ns × count */
        }
        s->plan[i] = (plan_ent){t < 1.8e19 ? (uint64_t)t : (uint64_t)1.8e19, w};
        if (s->plan[i].t > last) last = s->plan[i].t;
    }
    /* an evenly spread pass fills the duration; without one, the next starts a flow's
     * mean length after the last start */
    s->plan_span = timed ? last : dur_series ? spread : last + s->flow_ns;
    return 0;
}

static pkt_flow *flow_get(sched *s)
{
    pkt_flow *f = s->free_flows;
    if (f) {
        s->free_flows = (pkt_flow *)(void *)f->win;
        pkt_desc *pk = f->pk, *tmp = f->tmp;
        uint32_t cap = f->cap, tmp_cap = f->tmp_cap;
        float *own = f->own;
        size_t own_cap = f->own_cap;
        memset(f, 0, sizeof *f);
        f->pk = pk, f->cap = cap;
        f->tmp = tmp, f->tmp_cap = tmp_cap;
        f->own = own, f->own_cap = own_cap;
        return f;
    }
    if (s->n_all == s->cap_all) {
        size_t cap = s->cap_all ? 2 * s->cap_all : 256;
        pkt_flow **a = realloc(s->all_flows, cap * sizeof *a);
        if (!a) return NULL;
        s->all_flows = a;
        s->cap_all = cap;
    }
    f = calloc(1, sizeof *f);
    if (f) s->all_flows[s->n_all++] = f;
    return f;
}

static void flow_put(sched *s, pkt_flow *f)
{
    f->win = (const float *)(void *)s->free_flows;
    s->free_flows = f;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * ND_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

void replay_stats_format(const replay_stats *st, char *buf, size_t len)
{
    double cpu_pps = st->cpu_ns ? (double)st->packets * 1e9 / (double)st->cpu_ns : 0;
    int n = snprintf(buf, len,
                     "%llu flows, %llu packets, %.1f MB, %.1f kpps (%.1f kpps per CPU second), "
                     "%llu drops",
                     (unsigned long long)st->flows, (unsigned long long)st->packets,
                     (double)st->bytes / 1e6, st->pps / 1e3, cpu_pps / 1e3,
                     (unsigned long long)st->drops);
    if (st->timed && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n,
                 ", timing error p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us",
                 (double)st->err_p50_ns / 1e3, (double)st->err_p99_ns / 1e3,
                 (double)st->err_p999_ns / 1e3, (double)st->err_max_ns / 1e3);
}

/* What every queue's scheduler has sent, against max_bytes and max_packets. */
typedef struct run_totals {
    _Atomic uint64_t bytes, packets;
} run_totals;

/* One scheduler over the flows with id % parts == part, into one sink (one tx queue). */
typedef struct part_job {
    const nd_dataset *ds;
    const replay_opts *o;
    replay_sink *sink;
    uint32_t part, parts;
    uint64_t base, wall0; /* deadline of offset 0; start of the run */
    int main;             /* draws the status line */
    int64_t bin_cap;      /* most bytes of a bin per direction at the line rate */
    run_totals *sent;
    double line_bps; /* the line rate bins are cut to */
    int rc;
    int ended; /* enum replay_end */
    nd_error e;
    uint64_t flows, carried, capped, cpu_ns;
    uint64_t late; /* streamed flows whose window was not ready at their start */
} part_job;

/* Counts a packet of len bytes against the run's bounds: the bound it would pass, else
 * REPLAY_END_NONE. All queues count into one total, so a run sends at most the bound. */
static int over_bound(const replay_opts *o, run_totals *sent, uint32_t len)
{
    if (!o->max_bytes && !o->max_packets) return REPLAY_END_NONE;
    uint64_t p = atomic_fetch_add_explicit(&sent->packets, 1, memory_order_relaxed);
    uint64_t b = atomic_fetch_add_explicit(&sent->bytes, len, memory_order_relaxed);
    if (o->max_packets && p >= o->max_packets) return REPLAY_END_PACKETS;
    if (o->max_bytes && b + len > o->max_bytes) return REPLAY_END_BYTES;
    return REPLAY_END_NONE;
}

/* What the queue of j has done so far, at now: the figures of replay_stats it knows. */
static void part_so_far(const part_job *j, uint64_t flows, uint64_t carried, uint64_t capped,
                        uint64_t now, replay_stats *st)
{
    const replay_sink *k = j->sink;
    memset(st, 0, sizeof *st);
    st->flows = flows;
    st->late = j->late;
    st->carried = carried;
    st->capped = capped;
    st->packets = k->packets;
    st->bytes = k->bytes;
    st->drops = k->drops;
    st->seconds_ns = now - j->wall0;
    st->pps = st->seconds_ns ? (double)st->packets * 1e9 / (double)st->seconds_ns : 0;
    st->line_bps = j->line_bps;
    if (k->timed && k->err && k->err->n) {
        st->timed = 1;
        st->err_p50_ns = sink_errhist_quantile(k->err, 0.50);
        st->err_p99_ns = sink_errhist_quantile(k->err, 0.99);
        st->err_p999_ns = sink_errhist_quantile(k->err, 0.999);
        st->err_max_ns = k->err->max;
        st->early = k->err->early;
    }
}

/* Where a queue's scheduler is in the plan: pass, its start, next entry. */
typedef struct plan_cursor {
    uint64_t loop, base;
    uint32_t next;
} plan_cursor;

/* Moves c to the next pass, planning it: 0, 1 when the passes are done, or -ENOMEM. */
static int next_pass(sched *s, plan_cursor *c, uint64_t dur_series)
{
    if (s->o->loop && c->loop + 1 >= s->o->loop) return 1;
    c->base += s->plan_span;
    c->loop++;
    c->next = 0;
    return plan_loop(s, c->loop, dur_series);
}

/* A flow of class c that load_target measured and no flow has taken, into f (its
 * windows swap buffers with f's own): 0, or 1 when there is none. */
static int stash_take(sched *s, uint32_t c, pkt_flow *f)
{
    for (uint32_t i = 0; i < s->n_stash; i++)
        if (!s->stash_used[i] && s->stash_cls[i] == c) {
            s->stash_used[i] = 1;
            float *x = f->own;
            size_t cap = f->own_cap;
            f->own = s->stash[i], f->own_cap = s->stash_cap[i];
            s->stash[i] = x, s->stash_cap[i] = cap;
            f->nbins = s->stash_nwin[i] * s->lay.L;
            return 0;
        }
    return 1;
}

/* Gives f the flow of plan entry w: the dataset's windows from w on (one, or its run),
 * or streamed a fresh flow of class w, waiting for it until until_ns. 0, 1 when the
 * streamed one was not ready by then, or a code with e filled. */
static int flow_window(sched *s, pkt_flow *f, uint32_t w, uint64_t until_ns, nd_error *e)
{
    const nd_dataset *ds = s->ds;
    if (!s->o->take) {
        f->window = w;
        f->cls = ds->labels[w];
        f->win = ds->values + (size_t)w * ds->n_channels * ds->L;
        f->nbins = (s->run ? s->run[w] : 1) * ds->L;
        return 0;
    }
    int rc = stash_take(s, w, f);
    uint32_t nwin = 0;
    if (rc) {
        rc = s->o->take(s->o->take_arg, w, &f->own, &f->own_cap, &nwin, until_ns, e);
        f->nbins = nwin * ds->L;
    }
    if (rc) return rc;
    f->window = (uint32_t)s->streamed++; /* the streamed flows' count (wraps) */
    f->cls = w;
    f->win = f->own;
    return 0;
}

/* Sets f, its window given, up as flow id starting at start. */
static void flow_setup(sched *s, pkt_flow *f, uint64_t id, uint64_t start)
{
    f->id = id;
    f->start = start;
    f->pc = &s->pc[f->cls];
    replay_rng_seed(&f->rng, s->o->seed, id);
    pkt_flow_init(f, &s->lay, &s->cli, &s->srv, &s->l2);
}

/* Puts a set-up flow on the heap with its first bin's packets, counting it when it starts
 * in the output (a lead-in flow counts at its first packet sent). A flow without packets
 * goes back to the free list. 1 pushed, 0 not, or -ENOMEM. */
static int flow_push(sched *s, sched_heap *q, pkt_flow *f, uint64_t *flows, uint64_t *capped)
{
    if (f->start >= s->lead) f->counted = 1, ++*flows;
    int more = pkt_flow_next_bin(f, &s->lay);
    if (more < 0) return -ENOMEM;
    if (more) return heap_push(q, f) ? -ENOMEM : 1;
    *capped += f->capped;
    flow_put(s, f);
    return 0;
}

/* --concurrency: starts the next flow of this queue so that its first packet comes at
 * `end` (the last packet of the flow it replaces), or, in the lead-in (also of a rate
 * target), so that it is active at the output's start at a uniform point of its life. Windows
 * without packets are passed over. A streamed window waits until until_ns; when it is not ready
 * by then, the flow is skipped if `skip` (it was late), else left for the next call. 0 (also
 * when the passes are done), 1 not ready, or a code with e filled. */
static int conc_start(sched *s, const part_job *j, sched_heap *q, plan_cursor *c,
                      uint64_t dur_series, uint64_t end, nd_rng *r, uint64_t *flows,
                      uint64_t *capped, uint64_t until_ns, int skip, nd_error *e)
{
    for (uint32_t tries = 0; tries <= s->n_plan; tries++) {
        if (c->next == s->n_plan) {
            int rc = next_pass(s, c, dur_series);
            if (rc) return rc < 0 ? nd_error_set(e, rc, "out of memory") : 0;
        }
        uint64_t id = c->loop * s->n_plan + c->next;
        uint32_t w = s->plan[c->next].w;
        if (j->parts > 1 && id % j->parts != j->part) { /* another queue's flow */
            c->next++;
            continue;
        }
        pkt_flow *f = flow_get(s);
        if (!f) return nd_error_set(e, -ENOMEM, "out of memory");
        int rc = flow_window(s, f, w, until_ns, e);
        if (rc) {
            flow_put(s, f);
            if (rc == 1 && skip) c->next++;
            return rc;
        }
        c->next++;
        flow_setup(s, f, id, 0);
        if (f->first_bin == UINT32_MAX) {
            flow_put(s, f);
            continue;
        }
        uint64_t first = (uint64_t)f->first_bin * s->lay.bin_ns;
        uint64_t life = (uint64_t)(f->last_bin + 1 - f->first_bin) * s->lay.bin_ns;
        uint64_t into = first + (uint64_t)(nd_rng_uniform(r) * (double)life);
        f->start = end < s->lead ? (s->lead > into ? s->lead - into : 0) /* the lead-in */
                   : end > first ? end - first
                                 : 0;
        rc = flow_push(s, q, f, flows, capped);
        if (rc) return rc < 0 ? nd_error_set(e, rc, "out of memory") : 0;
    }
    return 0;
}

/* Load targets: at most one, checked here. For --flows-per-s, --pps and --mbps it sets the
 * flow rate: what an average flow of the plan sends is measured by packetizing flows of
 * the first pass (all of it, or 4096 spread over it; the packets they will send), and the
 * rate is the target over that. Said (queue 0): the flows it takes, and a target the class mix
 * cannot reach. */
static int load_target(sched *s, const part_job *j, nd_error *e)
{
    const replay_opts *o = s->o;
    const char *name = o->concurrency   ? "--concurrency"
                       : o->flows_per_s ? "--flows-per-s"
                       : o->pps         ? "--pps"
                       : o->mbps        ? "--mbps"
                                        : NULL;
    if (!name) return 0;
    if ((o->concurrency > 0) + (o->flows_per_s != 0) + (o->pps != 0) + (o->mbps != 0) > 1)
        return nd_error_set(e, ND_EUSAGE,
                            "give one load target of --concurrency, --flows-per-s, --pps and "
                            "--mbps");
    double target = o->concurrency   ? o->concurrency
                    : o->flows_per_s ? o->flows_per_s
                    : o->pps         ? o->pps
                                     : o->mbps;
    if (!(target > 0) || !isfinite(target))
        return nd_error_set(e, ND_EUSAGE, "%s: %g, expected a number more than 0", name,
                            target);
    if (o->speed != 1.0 && o->speed != 0)
        return nd_error_set(e, ND_EUSAGE,
                            "%s sets the load itself: --speed must be 1 (or max: as fast as "
                            "the sink goes, with the same timestamps), not %g",
                            name, o->speed);
    /* the flows active at the output's start begin at a point of their lives before it
     * (run_part): the lead-in holds the longest flow */
    s->lead = (uint64_t)s->longest * s->lay.bin_ns;
    double pk = 0, by = 0, life = 0;
    /* streamed flows are measured as the first ones come, and kept for the flows */
    uint32_t m = s->n_plan < 4096 ? s->n_plan : 4096;
    const uint32_t streamed = o->pps || o->mbps ? STREAM_MEASURE : STREAM_MEASURE_SAID;
    if (o->take && m > streamed) m = streamed;
    for (uint32_t k = 0; k < m; k++) {
        uint32_t i = o->take ? k : (uint32_t)((uint64_t)k * s->n_plan / m); /* spread */
        pkt_flow f;
        memset(&f, 0, sizeof f);
        if (o->take) {
            uint32_t nwin = 0;
            int rc = o->take(o->take_arg, s->plan[i].w, &s->stash[k], &s->stash_cap[k], &nwin,
                             UINT64_MAX, e);
            if (rc) return rc;
            s->stash_nwin[k] = nwin;
            s->stash_cls[s->n_stash++] = s->plan[i].w;
            f.cls = s->plan[i].w;
            f.win = s->stash[k];
            f.nbins = nwin * s->lay.L;
        } else {
            flow_window(s, &f, s->plan[i].w, 0, e); /* the dataset's: no failure */
        }
        flow_setup(s, &f, i, 0);
        int more;
        while ((more = pkt_flow_next_bin(&f, &s->lay)) > 0)
            for (uint32_t x = 0; x < f.n; x++) pk++, by += pkt_wire_len(&f, &f.pk[x]);
        if (f.first_bin != UINT32_MAX)
            life += (double)(f.last_bin + 1 - f.first_bin) * (double)s->lay.bin_ns / 1e9;
        pkt_flow_free(&f);
        if (more < 0) return nd_error_set(e, -ENOMEM, "out of memory");
    }
    pk /= m, by /= m, life /= m;
    if (!(pk > 0))
        return nd_error_set(e, ND_EUSAGE, "%s: the flows to replay hold no packets", name);
    /* concurrency holds N flows of `life` seconds: N / life flows a second */
    double rate = o->concurrency   ? target / life
                  : o->flows_per_s ? target
                  : o->pps         ? target / pk
                                   : target * 1e6 / 8 / by;
    double bps = rate * by * 8;
    if (bps > j->line_bps)
        return nd_error_set(e, ND_EUSAGE,
                            "%s %g: the class mix's flows (%.1f packets, %.0f frame bytes, "
                            "%.3g s each on average) would need %.4g Gbit/s, more than the "
                            "line rate of %g Gbit/s (--line-rate, replay.line_rate)",
                            name, target, pk, by, life, bps / 1e9, j->line_bps / 1e9);
    if (!o->concurrency) s->target_rate = rate, s->lead_flows = rate * life;
    if (s->quiet) return 0;
    nd_info(
        "replay: %s %g: %.4g flows/s of %.1f packets, %.0f frame bytes and %.3g s each on "
        "average (the class mix of %u flows of the plan): %.4g pps, %.4g Mbit/s, %.4g flows "
        "active",
        name, target, rate, pk, by, life, m, rate * pk, bps / 1e6, rate * life);
    if (!o->concurrency && rate * life < 1)
        nd_warn("replay: %s %g keeps %.2f flows active on average: the class mix's flows "
                "(%.3g s, %.1f packets each) are too few to hold the load steady; it comes "
                "and goes with whole flows",
                name, target, rate * life, life, pk);
    return 0;
}

/* How long a streamed flow that starts at series time start waits for its window: on a
 * paced sink once the output has begun, until its start (then it is late); otherwise as
 * long as it takes (a file sink's time is not the clock's). */
static uint64_t window_until(const sched *s, int paced, uint64_t base, double inv_speed,
                             uint64_t start)
{
    if (!paced || !s->primed) return UINT64_MAX;
    uint64_t out = start > s->lead ? start - s->lead : 0;
    return base + (uint64_t)((double)out * inv_speed);
}

static int run_part(void *arg)
{
    part_job *j = arg;
    const nd_dataset *ds = j->ds;
    const replay_opts *o = j->o;
    replay_sink *sink = j->sink;
    nd_error *e = &j->e;
    sched s;
    sched_heap q = {0};
    int slack = -1; /* timer slack to restore */
    int rc = sched_init(&s, ds, o, e);
    if (rc) goto out;
    s.quiet = !j->main;
    s.lay.bin_cap = j->bin_cap;

    const int paced = sink->ops->paced && o->speed > 0;
    sink->timed = paced;
    /* sleeps end at the deadline asked, not up to 50 us later (the default timer slack) */
    slack = paced ? prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) : -1;
    if (slack > 1) prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* speed 0 (no waiting) keeps real-time timestamps for the sinks that write them */
    const double inv_speed = o->speed > 0 ? 1.0 / o->speed : 1.0;
    const int exact = o->speed == 1.0 || o->speed == 0;
    /* duration is output time; in series time it is that × speed */
    const uint64_t dur_series = !o->duration_ns ? 0
                                : o->speed > 0  ? (uint64_t)((double)o->duration_ns * o->speed)
                                                : o->duration_ns;
    const uint64_t cpu0 = thread_cpu_ns();
    uint64_t base = j->base; /* a streamed run of one queue starts its clock at its output */
    uint64_t now = nd_now_ns(), last_status = j->wall0, next_report = now;
    uint64_t flows = 0, carried = 0, capped = 0;
    plan_cursor cur = {0};
    int arrivals_done = 0; /* the duration is reached: no more flows start */
    replay_pkt_info info;
    nd_rng conc_rng;
    replay_rng_seed(&conc_rng, o->seed, (3ull << 62) | j->part);

    rc = plan_loop(&s, 0, dur_series);
    if (!rc && (rc = load_target(&s, j, e))) goto out;
    if (!rc && s.target_rate > 0) rc = plan_loop(&s, 0, dur_series); /* times at the rate */
    /* the lead-in (load targets) is series time before the output's start */
    const uint64_t lead = s.lead, dur_end = dur_series ? lead + dur_series : 0;
    /* The flows active at the output's start: --concurrency's N, or for a rate about
     * rate x mean life (the same number in every queue), each at a uniform point of its
     * life, so that the load holds from the first packet on however long the flows are.
     * The lead-in waits for its streamed windows; the output's flows, once it has begun,
     * on a paced sink until their start (window_until). */
    uint32_t active = o->concurrency;
    if (s.target_rate > 0) {
        nd_rng r;
        replay_rng_seed(&r, o->seed, 5ull << 61);
        double x = s.lead_flows < 1e7 ? s.lead_flows : 1e7;
        active = (uint32_t)x + (nd_rng_uniform(&r) < x - floor(x));
    }
    for (uint32_t k = 0; !rc && k < active; k++)
        if (k % j->parts == j->part)
            rc = conc_start(&s, j, &q, &cur, dur_series, 0, &conc_rng, &flows, &capped,
                            UINT64_MAX, 1, e);
    if (rc) goto out;
    /* the rate's arrivals begin with the output: the next flow of the plan starts then
     * (or the next pass, when the lead-in took the whole of this one) */
    if (s.target_rate > 0) {
        uint64_t t = cur.next < s.n_plan ? s.plan[cur.next].t : s.plan_span;
        cur.base = lead > t ? lead - t : 0;
    }
    uint32_t pending = 0; /* --concurrency: flows a late window left to start */
    for (uint64_t npk = 0;; npk++) {
        if (o->stop && *o->stop) {
            rc = nd_error_set(e, ND_EINTR, "interrupted");
            break;
        }
        /* --concurrency, streamed: a flow that was late starts once a window is there, at
         * the output's time then (an empty heap waits for one a while) */
        while (pending) {
            uint64_t t = nd_now_ns(), now_off = (t > base ? t - base : 0) + lead;
            if (dur_end && now_off >= dur_end && !q.n) {
                j->ended = REPLAY_END_DURATION;
                break;
            }
            rc = conc_start(&s, j, &q, &cur, dur_series, now_off, &conc_rng, &flows, &capped,
                            q.n ? 0 : t + ND_NS_PER_SEC / 100, 0, e);
            if (rc) break;
            pending--;
        }
        if (rc == 1) rc = 0;
        else if (rc) break;
        if (j->ended) break;
        if (!o->concurrency && cur.next == s.n_plan && !arrivals_done) {
            rc = next_pass(&s, &cur, dur_series); /* next pass over the flows */
            if (rc < 0) {
                nd_error_set(e, rc, "out of memory");
                break;
            }
            arrivals_done = rc;
            rc = 0;
        }
        pkt_flow *top = q.n ? q.h[0].f : NULL;
        uint64_t top_key = top ? q.h[0].key : UINT64_MAX;
        if (!o->concurrency && cur.next < s.n_plan &&
            cur.base + s.plan[cur.next].t <= top_key) {
            uint64_t start = cur.base + s.plan[cur.next].t;
            if (dur_end && start >= dur_end) { /* no flow starts past the duration */
                cur.next = s.n_plan;
                arrivals_done = 1;
                continue;
            }
            uint64_t id = cur.loop * s.n_plan + cur.next;
            uint32_t w = s.plan[cur.next++].w;
            if (j->parts > 1 && id % j->parts != j->part) continue; /* another queue's flow */
            pkt_flow *f = flow_get(&s);
            if (!f) {
                rc = nd_error_set(e, -ENOMEM, "out of memory");
                break;
            }
            rc = flow_window(&s, f, w, window_until(&s, paced, base, inv_speed, start), e);
            if (rc) {
                flow_put(&s, f);
                if (rc != 1) break;
                j->late++, rc = 0; /* skipped: the schedule keeps its time */
                continue;
            }
            flow_setup(&s, f, id, start);
            if (flow_push(&s, &q, f, &flows, &capped) < 0) {
                rc = nd_error_set(e, -ENOMEM, "out of memory");
                break;
            }
            continue;
        }
        if (!top && pending) continue; /* late flows wait for their windows */
        if (!top) break;               /* all flows done, no more to start */

        const pkt_desc *d = &top->pk[top->pos];
        uint64_t off = top_key;
        /* a bound ends the run as its last flow would: flushed, closed, rc 0 */
        if (dur_end && off >= dur_end) {
            j->ended = REPLAY_END_DURATION;
            break;
        }
        if (off >= lead) { /* packets of the lead-in are not sent */
            uint64_t out_off = off - lead;
            const uint32_t len = pkt_wire_len(top, d);
            if ((j->ended = over_bound(o, j->sent, len))) break;
            if (!s.primed) { /* the output begins: the lead-in's windows are there */
                s.primed = 1;
                if (o->take && paced && j->parts == 1) base = nd_now_ns() + PACED_LEAD_NS;
            }
            uint64_t deadline =
                base + (exact ? out_off : (uint64_t)((double)out_off * inv_speed));
            if (paced && deadline > now) {
                if ((rc = sink->ops->flush(sink, e))) break;
                now = nd_now_ns();
                if (deadline > now) {
                    sched_wait_until(deadline, o->spin_ns, o->stop);
                    now = nd_now_ns();
                    if (o->stop && *o->stop) continue;
                }
            }
            info.flow = top->id;
            info.cls = top->cls;
            info.window = top->window;
            info.bin = top->cur_bin;
            info.dir = d->dir;
            info.l4 = top->l4;
            info.ipv6 = top->ipv6;
            info.tcp_flags = top->l4 == ND_L4_TCP ? d->flags : 0;
            info.offset_ns = out_off;
            info.start_ns = top->start > lead ? top->start - lead : 0;
            info.vlan = top->vlan[d->dir];
            uint8_t *buf = sink->ops->alloc(sink, len, &info, e);
            if (!buf) {
                rc = e->code ? e->code : -ENOMEM;
                break;
            }
            pkt_build(buf, top, d, sink->build_flags);
            if ((rc = sink->ops->send(sink, len, deadline, &info, e))) break;
            if (!top->counted) top->counted = 1, flows++;
        }

        if (++top->pos == top->n) {
            int more = pkt_flow_next_bin(top, &s.lay);
            if (more < 0) {
                rc = nd_error_set(e, -ENOMEM, "out of memory");
                break;
            }
            if (!more) {
                carried += top->carried;
                capped += top->capped;
                flow_put(&s, top);
                q.h[0] = q.h[--q.n];
                if (q.n) heap_down(&q, 0);
                top = NULL;
                if (o->concurrency) {
                    rc =
                        conc_start(&s, j, &q, &cur, dur_series, off, &conc_rng, &flows, &capped,
                                   window_until(&s, paced, base, inv_speed, off), 1, e);
                    if (rc == 1) j->late++, pending++, rc = 0;
                    if (rc) break;
                }
            }
        }
        if (top) {
            q.h[0].key = flow_key(top);
            heap_down(&q, 0);
        }

        /* the clock is read every 1024 packets, every 16 on a paced sink (not fast) */
        if (j->main && (o->status || o->report) && !(npk & (paced ? 15 : 1023))) {
            uint64_t t = nd_now_ns();
            if (o->report && t >= next_report) {
                next_report = t + (o->report_ns ? o->report_ns : ND_NS_PER_SEC);
                replay_stats so_far;
                part_so_far(j, flows, carried, capped, t, &so_far);
                o->report(o->report_arg, &so_far);
            }
            if (o->status && t - last_status > 500000000ull) {
                last_status = t;
                double secs = (double)(t - j->wall0) / 1e9;
                char err[64] = "", part[48] = "";
                if (sink->timed && sink->err->n)
                    snprintf(err, sizeof err, ", error p99 %.1f us",
                             (double)sink_errhist_quantile(sink->err, 0.99) / 1e3);
                if (j->parts > 1) snprintf(part, sizeof part, " (queue 0 of %u)", j->parts);
                if (o->take) /* generation behind the schedule shows */
                    snprintf(err + strlen(err), sizeof err - strlen(err), ", %llu late",
                             (unsigned long long)j->late);
                nd_status(
                    "replay%s: %llu flows, %llu packets, %.1f MB, %.1f kpps, %llu drops%s",
                    part, (unsigned long long)flows, (unsigned long long)sink->packets,
                    (double)sink->bytes / 1e6, (double)sink->packets / secs / 1e3,
                    (unsigned long long)sink->drops, err);
            }
        }
    }
    if (rc != ND_EINTR && rc) goto out;
    {
        nd_error fe;
        int frc = sink->ops->flush(sink, &fe);
        if (frc) {
            rc = frc;
            *e = fe;
        }
    }
    for (size_t i = 0; i < q.n; i++) {
        carried += q.h[i].f->carried;
        capped += q.h[i].f->capped;
    }
    j->flows = flows;
    j->carried = carried;
    j->capped = capped;
    j->cpu_ns = thread_cpu_ns() - cpu0;
out:
    if (slack > 1) prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
    free(q.h);
    if (s.ds) sched_free(&s);
    j->rc = rc;
    return rc;
}

int replay_run(const nd_dataset *ds, const replay_opts *o, replay_sink *sink, replay_stats *st,
               nd_error *e)
{
    const double line_bps = o->line_bps > 0      ? o->line_bps
                            : sink->line_bps > 0 ? sink->line_bps
                                                 : REPLAY_DEFAULT_LINE_BPS;
    if (!(line_bps <= (double)ND_MAX_LINE_BPS) || o->line_bps < 0)
        return nd_error_set(e, ND_EUSAGE,
                            "replay.line_rate: %g bit/s; expected more than 0, at most %g",
                            o->line_bps, (double)ND_MAX_LINE_BPS);
    const uint32_t parts = sink->ops->n_queues ? sink->ops->n_queues(sink) : 1;
    part_job *jobs = calloc(parts, sizeof *jobs);
    if (!jobs) return nd_error_set(e, -ENOMEM, "out of memory");
    run_totals sent = {0};
    const uint64_t wall0 = nd_now_ns();
    const uint64_t base = sink->ops->paced ? wall0 + PACED_LEAD_NS : sink->base_ns;
    /* the bytes a bin carries at the line rate (ds is checked by sched_init; bins of
     * years would pass int64, and the packet buffer caps a bin far below 1e18 anyway) */
    const double carries = ds ? (double)ds->bin_ns * line_bps / 8e9 : 0;
    const int64_t bin_cap = carries < 1e18 ? (int64_t)carries : (int64_t)1e18;
    for (uint32_t p = 0; p < parts; p++) {
        jobs[p] = (part_job){ds,    o,       p ? sink->ops->queue(sink, p) : sink,
                             p,     parts,   base,
                             wall0, p == 0,  bin_cap,
                             &sent, line_bps};
    }
    for (uint32_t p = 1; p < parts; p++) sink->ops->launch(sink, p, run_part, &jobs[p]);
    run_part(&jobs[0]);
    if (parts > 1) sink->ops->wait(sink);
    if (o->status) nd_status_end();

    /* the first real error wins over an interruption */
    int rc = 0;
    for (uint32_t p = 0; p < parts; p++) {
        if (!jobs[p].rc || (rc && rc != ND_EINTR)) continue;
        if (!rc || jobs[p].rc != ND_EINTR) {
            rc = jobs[p].rc;
            if (e) *e = jobs[p].e;
        }
    }
    if (st && (!rc || rc == ND_EINTR)) {
        sink_errhist *merged = calloc(1, sizeof *merged); /* 32 KiB */
        if (!merged) {
            free(jobs);
            return nd_error_set(e, -ENOMEM, "out of memory");
        }
        memset(st, 0, sizeof *st);
        int timed = 0;
        for (uint32_t p = 0; p < parts; p++) {
            const replay_sink *k = jobs[p].sink;
            st->flows += jobs[p].flows;
            st->late += jobs[p].late;
            st->carried += jobs[p].carried;
            st->capped += jobs[p].capped;
            if (!st->ended) st->ended = jobs[p].ended;
            st->cpu_ns += jobs[p].cpu_ns;
            st->packets += k->packets;
            st->bytes += k->bytes;
            st->drops += k->drops;
            if (k->timed && k->err) {
                timed = 1;
                for (uint32_t i = 0; i < SINK_ERR_BUCKETS; i++)
                    merged->count[i] += k->err->count[i];
                merged->n += k->err->n;
                merged->early += k->err->early;
                if (k->err->max > merged->max) merged->max = k->err->max;
            }
        }
        st->line_bps = line_bps;
        st->seconds_ns = nd_now_ns() - wall0;
        st->pps = st->seconds_ns ? (double)st->packets * 1e9 / (double)st->seconds_ns : 0;
        if (timed && merged->n) {
            st->timed = 1;
            st->err_p50_ns = sink_errhist_quantile(merged, 0.50);
            st->err_p99_ns = sink_errhist_quantile(merged, 0.99);
            st->err_p999_ns = sink_errhist_quantile(merged, 0.999);
            st->err_max_ns = merged->max;
            st->early = merged->early;
        }
        free(merged);
    }
    free(jobs);
    return rc;
}
