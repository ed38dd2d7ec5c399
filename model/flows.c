/*
 * flows.c — flows from a model with a class mix (model.h): the one sampling policy behind
 * `netdiffus replay MODEL.ndm` and live's in-process replay. The model gives windows
 * (dm.c); this file decides how many flows of each class, how long each one is (a
 * duration from the class's captured ones, its windows continued one from the other),
 * redraws the first windows that would send nothing, and orders them: all at once
 * (nd_dm_sample_flows), or streamed by sampler threads ahead of a replay through a
 * bounded queue (nd_flows_stream). docs/REPLAY.md describes the policy.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "model_impl.h"

/* count (K) = largest-remainder shares of flows by w (K, sum W > 0): the whole parts
 * of flows·w/W, then the flows left over one each to the largest fractions (the first
 * class among equal ones). A class of weight 0 gets none. frac: K doubles of scratch. */
static void flows_split(uint64_t *count, double *frac, const double *w, uint32_t K,
                        uint32_t flows)
{
    double W = 0;
    uint64_t given = 0;
    for (uint32_t k = 0; k < K; k++) W += w ? w[k] : 1;
    for (uint32_t k = 0; k < K; k++) {
        double wk = w ? w[k] : 1, q = (double)flows * wk / W;
        count[k] = (uint64_t)q;
        frac[k] = wk > 0 ? q - (double)count[k] : -1;
        given += count[k];
    }
    while (given < flows) {
        uint32_t best = 0;
        for (uint32_t k = 1; k < K; k++)
            if (frac[k] > frac[best]) best = k;
        count[best]++, frac[best] = -1, given++;
    }
}

/* True when window x (C, L) has no bin with a byte in either direction: the packetizer
 * would send nothing for it. */
static int window_empty(const float *x, uint32_t L, int down, int up)
{
    if (down < 0 || up < 0) return 0; /* replay_run says which channels it needs */
    for (uint32_t b = 0; b < L; b++)
        if (x[(size_t)down * L + b] >= 0.5f || x[(size_t)up * L + b] >= 0.5f) return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* Flow lengths                                                                         */
/* ------------------------------------------------------------------------------------ */

/* How long one class's flows are: its captured durations as a cumulative table, and the
 * most windows one of its flows takes (an upper bound, within the cap). */
typedef struct flows_len {
    uint64_t cum[ND_DURATION_HIST]; /* cumulative counts of duration_hist */
    uint32_t longest;               /* 1: one window per flow, no duration is drawn */
} flows_len;

/* The lengths of h's classes for flows of at most max_windows windows of L bins (0, 1:
 * one window each) into len (K). Classes of weight > 0 (w NULL: all) whose statistics
 * have no durations keep one window per flow, said once at info level (unless quiet). */
static void lengths_init(flows_len *len, const nd_dataset *h, const double *w,
                         uint32_t max_windows, const char *tag, int quiet)
{
    for (uint32_t k = 0; k < h->n_classes; k++) {
        flows_len *fl = &len[k];
        const nd_class_stats *st = &h->stats[k];
        uint64_t sum = 0, top = 0, first, width;
        for (uint32_t b = 0; b < ND_DURATION_HIST; b++) {
            sum += st->duration_hist[b];
            fl->cum[b] = sum;
            if (st->duration_hist[b]) top = b;
        }
        fl->longest = 1;
        if (max_windows <= 1 || (w && !(w[k] > 0))) continue;
        if (!sum) {
            if (tag)
                nd_log(quiet ? ND_LOG_DEBUG : ND_LOG_INFO,
                       "%s: class '%s' has no flow durations in its statistics (a model of "
                       "data from before them, or of an import): one window per flow",
                       tag, h->class_names[k]);
            continue;
        }
        nd_duration_range((uint32_t)top, &first, &width);
        uint64_t most = first + width - 1; /* the longest duration it can draw */
        if (most <= h->L) continue;
        /* the flow's life starts at its first window's first busy bin, up to L - 1 in */
        uint64_t n = (most + 2 * (uint64_t)h->L - 2) / h->L;
        fl->longest = n < max_windows ? (uint32_t)n : max_windows;
    }
}

/* A duration in bins from class fl (longest > 1): a bucket of its histogram by count, a
 * point uniform within the bucket; at least 1. */
static uint64_t duration_draw(const flows_len *fl, nd_rng *r)
{
    uint64_t n = fl->cum[ND_DURATION_HIST - 1], first, width;
    uint64_t u = (uint64_t)(((unsigned __int128)nd_rng_u64(r) * n) >> 64);
    uint32_t lo = 0, hi = ND_DURATION_HIST - 1; /* the first bucket whose total passes u */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (fl->cum[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    nd_duration_range(lo, &first, &width);
    uint64_t d = first + (uint64_t)((double)width * nd_rng_uniform(r));
    return d ? d : 1;
}

/* How windows of one model are drawn: the model, a batch of scratch, the channels the
 * empty test reads, how flows longer than a window are continued, and what the draws
 * did. */
typedef struct flows_draw {
    nd_dm *m;
    float *x, *next; /* (batch, C, L) each */
    /* the model's own values (nd_dm_sample_cont's state; batch, image channels, L) of the
     * windows just drawn, of the flows' last windows and of their next ones */
    float *xs, *prev, *nexts;
    size_t batch, WL, SL;
    uint32_t L, K, max_windows; /* bins per window, of context, windows of a flow at most */
    int down, up;               /* channels of bytes_down and bytes_up; -1: none */
    uint64_t redrawn, kept_empty;
    nd_flows_counts n;
} flows_draw;

static int draw_init(flows_draw *d, nd_dm *m, size_t batch, int context, uint32_t max_windows)
{
    const nd_dataset *h = nd_dm_dataset(m);
    memset(d, 0, sizeof *d);
    d->m = m;
    d->batch = batch;
    d->L = h->L;
    d->K = context < 0 ? h->L / 2 : (uint32_t)context;
    d->max_windows = max_windows ? max_windows : 1;
    d->WL = (size_t)h->n_channels * h->L;
    d->SL = (size_t)nd_gaf_channels(nd_dm_gaf(m)) * h->L;
    d->down = d->up = -1;
    for (uint32_t c = 0; c < h->n_channels; c++) {
        if (!strcmp(h->channel_names[c], "bytes_down")) d->down = (int)c;
        if (!strcmp(h->channel_names[c], "bytes_up")) d->up = (int)c;
    }
    d->x = malloc(batch * d->WL * sizeof *d->x);
    d->next = malloc(batch * d->WL * sizeof *d->next);
    d->xs = malloc(batch * d->SL * sizeof *d->xs);
    d->prev = malloc(batch * d->SL * sizeof *d->prev);
    d->nexts = malloc(batch * d->SL * sizeof *d->nexts);
    return d->x && d->next && d->xs && d->prev && d->nexts ? 0 : -ENOMEM;
}

static void draw_free(flows_draw *d)
{
    free(d->x);
    free(d->next);
    free(d->xs);
    free(d->prev);
    free(d->nexts);
}

/* The windows a flow of duration dur (0: one window) takes at most. */
static uint32_t flow_windows_max(const flows_draw *d, uint64_t dur)
{
    if (dur <= d->L) return 1;
    uint64_t n = (dur + 2 * (uint64_t)d->L - 2) / d->L; /* see lengths_init */
    return n < d->max_windows ? (uint32_t)n : d->max_windows;
}

/* A batch of n flows of class k (n <= d->batch) drawn from rng: flow i lasts dur[i] bins
 * (dur NULL: one window each) and gets the windows of out from off[i] on (room for
 * flow_windows_max of its duration), nwin[i] of them, zero past its end. Its first window
 * is drawn, redrawn when it has no byte (*budget redraws, then kept); a flow of more than
 * L bins goes on by nd_dm_sample_cont, the flows still alive at each step together, for
 * dur[i] bins from its first busy bin, up to max_windows windows (then it is cut). stop
 * (may be NULL) is looked at between batches. 0 or a code with e filled. */
static int draw_flows(flows_draw *d, uint32_t k, uint32_t n, const uint64_t *dur, float *out,
                      const uint32_t *off, uint32_t *nwin, uint64_t *budget, nd_rng *rng,
                      volatile sig_atomic_t *stop, nd_error *e)
{
    const size_t WL = d->WL;
    const uint32_t L = d->L, H = L - d->K, C = (uint32_t)(WL / L);
    uint32_t need = n, got = 0, alive = 0;
    uint32_t idx[ND_DM_MAX_BATCH];
    uint64_t bins[ND_DM_MAX_BATCH]; /* series bins of flow idx[j] */
    d->n.flows += n;
    for (uint32_t i = 0; i < n; i++)
        memset(out + off[i] * WL, 0, flow_windows_max(d, dur ? dur[i] : 0) * WL * sizeof *out);
    while (need) { /* first windows */
        if (stop && *stop) return nd_error_set(e, ND_EINTR, "stopped by signal");
        int rc = nd_dm_sample_cont(d->m, (int)k, need, 0, 0, NULL, d->x, d->xs, rng, e);
        if (rc) return rc;
        d->n.sampled += need;
        uint32_t drawn = need;
        for (uint32_t i = 0; i < drawn; i++) {
            const float *x = d->x + i * WL;
            if (window_empty(x, L, d->down, d->up)) {
                if (*budget) {
                    --*budget, d->redrawn++;
                    continue;
                }
                d->kept_empty++;
            }
            memcpy(out + off[got] * WL, x, WL * sizeof *x);
            memcpy(d->prev + got * d->SL, d->xs + i * d->SL, d->SL * sizeof *d->xs);
            nwin[got++] = 1;
            need--;
        }
    }
    for (uint32_t i = 0; dur && i < n; i++) {
        if (dur[i] <= L) continue;
        const float *x = out + off[i] * WL;
        uint64_t f0 = 0; /* the life starts at the first busy bin */
        while (d->down >= 0 && d->up >= 0 && f0 + 1 < L && x[(size_t)d->down * L + f0] < 0.5f &&
               x[(size_t)d->up * L + f0] < 0.5f)
            f0++;
        uint64_t b = f0 + dur[i];
        if (b > (uint64_t)d->max_windows * L) b = (uint64_t)d->max_windows * L, d->n.cut++;
        nwin[i] = (uint32_t)((b + L - 1) / L); /* b > L: two windows or more */
        d->n.longer++;
        memmove(d->prev + alive * d->SL, d->prev + i * d->SL, d->SL * sizeof *d->prev);
        idx[alive] = i, bins[alive++] = b;
    }
    for (uint64_t s = 1; alive; s++) { /* window s of each flow still alive */
        if (stop && *stop) return nd_error_set(e, ND_EINTR, "stopped by signal");
        int rc = nd_dm_sample_cont(d->m, (int)k, alive, (int)d->K, (long)(s * H), d->prev,
                                   d->next, d->nexts, rng, e);
        if (rc) return rc;
        d->n.sampled += alive;
        uint32_t still = 0;
        for (uint32_t j = 0; j < alive; j++) {
            float *to = out + off[idx[j]] * WL;
            const float *y = d->next + j * WL;
            for (uint32_t c = 0; c < C; c++)
                for (uint64_t b = d->K, t = s * H + b; b < L && t < bins[j]; b++, t++)
                    to[(t / L) * WL + c * L + t % L] = y[c * L + b];
            if (s * H + L >= bins[j]) continue; /* the window reached its end */
            memcpy(d->prev + still * d->SL, d->nexts + j * d->SL, d->SL * sizeof *d->prev);
            idx[still] = idx[j], bins[still++] = bins[j];
        }
        alive = still;
    }
    for (uint32_t i = 0; i < n; i++) d->n.windows += nwin[i];
    return 0;
}

/* Durations of a batch of n flows of class fl from rng into dur, and each one's first
 * window in out (off, n + 1 entries: off[n] is the batch's windows); NULL when the class
 * has one window per flow (nothing is drawn then). */
static const uint64_t *batch_lengths(const flows_draw *d, const flows_len *fl, uint32_t n,
                                     uint64_t *dur, uint32_t *off, nd_rng *rng)
{
    off[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        dur[i] = fl->longest > 1 ? duration_draw(fl, rng) : 0;
        off[i + 1] = off[i] + flow_windows_max(d, dur[i]);
    }
    return fl->longest > 1 ? dur : NULL;
}

/* ------------------------------------------------------------------------------------ */
/* All at once                                                                          */
/* ------------------------------------------------------------------------------------ */

/* Fisher-Yates over whole flows, the runs of windows that share a group (values,
 * labels; groups become the flows' new positions 0..n-1): classes interleave in the flow
 * plan. start (flows + 1): each flow's first window, and the end. 0 or -ENOMEM. */
static int shuffle(nd_dataset *ds, const uint64_t *start, uint64_t flows, nd_rng *rng)
{
    size_t WL = (size_t)ds->n_channels * ds->L;
    uint64_t *perm = malloc((flows ? flows : 1) * sizeof *perm);
    float *values = malloc((ds->n_windows ? ds->n_windows : 1) * WL * sizeof *values);
    uint16_t *labels = malloc((ds->n_windows ? ds->n_windows : 1) * sizeof *labels);
    if (!perm || !values || !labels) {
        free(perm), free(values), free(labels);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < flows; i++) perm[i] = i;
    for (uint64_t i = flows; i > 1; i--) {
        uint64_t j = nd_rng_below(rng, (uint32_t)i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    uint64_t w = 0;
    for (uint64_t p = 0; p < flows; p++) {
        uint64_t a = start[perm[p]], n = start[perm[p] + 1] - a;
        memcpy(values + w * WL, ds->values + a * WL, n * WL * sizeof *values);
        for (uint64_t i = 0; i < n; i++, w++) {
            labels[w] = ds->labels[a];
            ds->groups[w] = p;
        }
    }
    free(ds->values);
    free(ds->labels);
    ds->values = values;
    ds->labels = labels;
    ds->cap_windows = ds->n_windows;
    free(perm);
    return 0;
}

/* The weights are usable: K of them, none negative or not finite, not all 0. */
static int weights_check(const double *w, uint32_t K, nd_error *e)
{
    double sum = 0;
    if (!K) return nd_error_set(e, ND_EUSAGE, "sample flows: the model has no classes");
    for (uint32_t k = 0; w && k < K; k++) {
        if (!(w[k] >= 0) || !isfinite(w[k]))
            return nd_error_set(e, ND_EUSAGE,
                                "sample flows: weight %g of class %u is not "
                                "a number >= 0",
                                w[k], k);
        sum += w[k];
    }
    if (w && !(sum > 0))
        return nd_error_set(e, ND_EUSAGE, "sample flows: the weights add up to 0");
    return 0;
}

nd_dataset *nd_dm_sample_flows(nd_dm *m, const nd_flows_opts *o, nd_rng *rng, nd_error *e)
{
    const nd_dataset *h = nd_dm_dataset(m);
    const nd_dm_sampling *ms = &nd_dm_get_settings(m)->sample;
    uint32_t K = h->n_classes, B = o->batch ? o->batch : ms->batch;
    if (weights_check(o->weights, K, e)) return NULL;
    if (o->max_windows > 1 &&
        nd_dm_context_check(m, o->context < 0 ? (int)h->L / 2 : o->context, o->tag, e))
        return NULL;
    if (B > ND_DM_MAX_BATCH) B = ND_DM_MAX_BATCH;
    flows_draw d;
    uint64_t *count = calloc(K, sizeof *count),
             *start = malloc(((size_t)o->flows + 1) * sizeof *start);
    double *frac = calloc(K, sizeof *frac);
    flows_len *len = calloc(K, sizeof *len);
    uint64_t *dur = malloc(B * sizeof *dur), t0 = nd_now_ns(), shown = t0, done = 0;
    uint32_t *off = malloc((B + 1) * sizeof *off), *nwin = malloc(B * sizeof *nwin);
    float *out = NULL;
    size_t out_cap = 0;
    nd_dataset *ds = nd_dataset_new_like(h);
    int rc = !draw_init(&d, m, B, o->context, o->max_windows) && count && start && frac &&
                     len && dur && off && nwin && ds
                 ? 0
                 : nd_error_set(e, -ENOMEM, "out of memory for %u sampled flows", o->flows);
    if (!rc) {
        flows_split(count, frac, o->weights, K, o->flows);
        lengths_init(len, h, o->weights, o->max_windows, o->tag, o->quiet);
    }
    for (uint32_t k = 0; !rc && k < K; k++) {
        uint64_t empty0 = d.kept_empty, budget = count[k];
        for (uint64_t left = count[k]; !rc && left;) {
            uint32_t n = left < B ? (uint32_t)left : B;
            const uint64_t *dl = batch_lengths(&d, &len[k], n, dur, off, rng);
            if (off[n] > out_cap) {
                float *p = realloc(out, off[n] * d.WL * sizeof *out);
                if (!p) {
                    rc = nd_error_set(e, -ENOMEM, "out of memory for %u sampled flows",
                                      o->flows);
                    break;
                }
                out = p, out_cap = off[n];
            }
            rc = draw_flows(&d, k, n, dl, out, off, nwin, &budget, rng, o->stop, e);
            for (uint32_t i = 0; !rc && i < n; i++, done++) {
                start[done] = ds->n_windows;
                for (uint32_t w = 0; !rc && w < nwin[i]; w++)
                    if (nd_dataset_append(ds, (uint16_t)k, done, out + (off[i] + w) * d.WL))
                        rc = nd_error_set(e, -ENOMEM, "out of memory for %u sampled flows",
                                          o->flows);
            }
            left -= n;
            if (!rc && !o->quiet && nd_now_ns() - shown >= ND_NS_PER_SEC / 4) {
                shown = nd_now_ns();
                double s = (double)(shown - t0) * 1e-9;
                nd_status("%s: sampling %llu/%u flows (%s), %.1f windows/s", o->tag,
                          (unsigned long long)done, o->flows, h->class_names[k],
                          s > 0 ? (double)d.n.sampled / s : 0.0);
            }
        }
        if (rc == ND_EINTR)
            nd_error_set(e, ND_EINTR, "stopped by signal while sampling (%llu of %u flows)",
                         (unsigned long long)done, o->flows);
        if (!rc && d.kept_empty > empty0)
            nd_log(o->quiet ? ND_LOG_DEBUG : ND_LOG_WARN,
                   "%s: %llu sampled windows of class '%s' "
                   "have no bytes even after redrawing: those flows send nothing",
                   o->tag, (unsigned long long)(d.kept_empty - empty0), h->class_names[k]);
    }
    if (!o->quiet) nd_status_end();
    if (!rc) {
        double s = (double)(nd_now_ns() - t0) * 1e-9;
        nd_log(o->quiet ? ND_LOG_DEBUG : ND_LOG_INFO,
               "%s: sampled %llu windows for %u flows in %.1f s (%.1f windows/s; %s, %u "
               "steps, guidance %g)",
               o->tag, (unsigned long long)d.n.sampled, o->flows, s,
               s > 0 ? (double)d.n.sampled / s : 0.0, nd_sampler_name(ms->sampler), ms->steps,
               ms->guidance);
        if (d.n.longer)
            nd_log(o->quiet ? ND_LOG_DEBUG : ND_LOG_INFO,
                   "%s: %llu of the flows last longer than a window (%llu windows of %u bins "
                   "in all); %llu cut at %u windows",
                   o->tag, (unsigned long long)d.n.longer, (unsigned long long)d.n.windows,
                   h->L, (unsigned long long)d.n.cut, d.max_windows);
        if (d.redrawn)
            nd_debug("%s: %llu sampled windows without bytes were drawn again", o->tag,
                     (unsigned long long)d.redrawn);
        start[done] = ds->n_windows;
        if (shuffle(ds, start, done, rng))
            rc = nd_error_set(e, -ENOMEM, "out of memory for %u sampled flows", o->flows);
        if (o->counts) *o->counts = d.n;
    }
    free(count);
    free(start);
    free(frac);
    free(len);
    free(dur);
    free(off);
    free(nwin);
    free(out);
    draw_free(&d);
    if (!rc) return ds;
    nd_dataset_free(ds);
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Streamed: sampler threads ahead of a replay, through a bounded queue                 */
/* ------------------------------------------------------------------------------------ */

/* A batch of one class's flows in the queue: drawn by one sampler call, taken flow by
 * flow; its windows leave the queue when its last flow is taken. */
typedef struct stream_batch {
    float *win;     /* (windows, C, L): flow i's nwin[i] windows from off[i] on */
    uint32_t *off;  /* (n + 1) */
    uint32_t *nwin; /* (n) */
    uint32_t n, taken, windows;
    int ready; /* drawn */
} stream_batch;

/* One class's share of the queue: a ring of batches, reserved by a sampler thread and
 * taken in the order they were begun, so that a class's flows are the same whichever
 * thread drew them, and whenever. The next batch's durations come first from its noise
 * stream, so that the windows it reserves are known before a thread takes it on. */
typedef struct stream_class {
    flows_len len;
    uint32_t quota;  /* windows; 0: a class of weight 0 */
    uint32_t B;      /* flows per batch: a batch of its longest flows fits the quota */
    uint32_t used;   /* windows of the batches reserved or ready */
    stream_batch *q; /* (slots) ring: each batch holds one window or more */
    uint32_t slots, head, n_q;
    uint64_t batches; /* batches begun: the next one's noise stream */
    /* the next batch, once looked at: its durations and windows, and its noise after
     * them */
    int known;
    uint64_t *dur;
    uint32_t *off;
    nd_rng rng;
} stream_class;

typedef struct stream_worker {
    nd_flows_stream *s;
    nd_dm *m; /* the caller's model (thread 0) or a snapshot of it */
    pthread_t th;
    int started;
} stream_worker;

struct nd_flows_stream {
    nd_flows_stream_opts o;
    nd_dm *m;
    uint32_t K, B;
    size_t WL;
    uint32_t L;
    stream_class *cls;
    stream_worker *w;
    pthread_mutex_t mu;
    pthread_cond_t room, ready; /* a batch was taken; a batch was drawn (or a failure) */
    volatile int quit;          /* the samplers stop (nd_dm_sample looks at it too) */
    int rc;                     /* the first sampler failure, e its message */
    nd_error e;
    uint64_t t0;
    flows_draw shape; /* what flow_windows_max reads (no buffers) */
    nd_flows_stream_stats st;
};

/* Looks at class k's next batch: batch n of class k has noise stream (seed, k, n), and
 * its durations come first from it. */
static void stream_next(nd_flows_stream *s, uint32_t k)
{
    stream_class *c = &s->cls[k];
    if (c->known) return;
    nd_rng_seed(&c->rng,
                s->o.seed ^ ((((uint64_t)k << 40) | c->batches) * 0x9e3779b97f4a7c15ull));
    batch_lengths(&s->shape, &c->len, c->B, c->dur, c->off, &c->rng);
    c->known = 1;
}

/* The class the next batch is for: of those with room for their next batch, the one
 * whose part of its quota is the least filled (the first of equal ones); UINT32_MAX when
 * none. */
static uint32_t stream_pick(nd_flows_stream *s)
{
    uint32_t best = UINT32_MAX;
    for (uint32_t k = 0; k < s->K; k++) {
        stream_class *c = &s->cls[k];
        if (!c->quota || c->n_q == c->slots) continue;
        stream_next(s, k);
        if (c->used + c->off[c->B] > c->quota) continue;
        if (best == UINT32_MAX ||
            (uint64_t)c->used * s->cls[best].quota < (uint64_t)s->cls[best].used * c->quota)
            best = k;
    }
    return best;
}

static void *stream_sampler(void *arg)
{
    stream_worker *w = arg;
    nd_flows_stream *s = w->s;
    flows_draw d;
    nd_error e = {0};
    uint64_t *dur = malloc(s->B * sizeof *dur);
    int rc = draw_init(&d, w->m, s->B, s->o.context, s->o.max_windows) || !dur
                 ? nd_error_set(&e, -ENOMEM, "out of memory")
                 : 0;
    pthread_mutex_lock(&s->mu);
    while (!rc && !s->quit) {
        uint32_t k = stream_pick(s);
        if (k == UINT32_MAX) {
            pthread_cond_wait(&s->room, &s->mu);
            continue;
        }
        stream_class *c = &s->cls[k];
        stream_batch *b = &c->q[(c->head + c->n_q++) % c->slots];
        uint32_t n = c->B;
        b->n = n, b->taken = 0, b->ready = 0, b->windows = c->off[n];
        memcpy(b->off, c->off, (n + 1) * sizeof *b->off);
        memcpy(dur, c->dur, n * sizeof *dur);
        const uint64_t *dl = c->len.longest > 1 ? dur : NULL;
        nd_rng rng = c->rng;
        c->used += b->windows;
        c->batches++;
        c->known = 0;
        s->st.depth += b->windows;
        if (s->st.depth > s->st.max_depth) s->st.max_depth = s->st.depth;
        uint64_t redrawn = d.redrawn, kept_empty = d.kept_empty, budget = n;
        nd_flows_counts n0 = d.n;
        pthread_mutex_unlock(&s->mu);
        /* the ring's records stay where they are while the batch is drawn: only its
         * head moves, and not past a batch that is not ready */
        float *win = malloc((size_t)b->windows * s->WL * sizeof *win);
        rc = win ? draw_flows(&d, k, n, dl, win, b->off, b->nwin, &budget, &rng, NULL, &e)
                 : nd_error_set(&e, -ENOMEM, "out of memory");
        pthread_mutex_lock(&s->mu);
        b->win = win;
        if (rc) break;
        b->ready = 1;
        s->st.sampled += d.n.sampled - n0.sampled;
        s->st.flows += d.n.flows - n0.flows;
        s->st.longer += d.n.longer - n0.longer;
        s->st.cut += d.n.cut - n0.cut;
        s->st.redrawn += d.redrawn - redrawn;
        s->st.kept_empty += d.kept_empty - kept_empty;
        pthread_cond_broadcast(&s->ready);
    }
    if (rc && !s->quit && !s->rc) { /* an interruption by quit is no failure */
        s->rc = rc;
        s->e = e;
        pthread_cond_broadcast(&s->ready);
    }
    pthread_mutex_unlock(&s->mu);
    draw_free(&d);
    free(dur);
    return NULL;
}

nd_flows_stream *nd_flows_stream_start(nd_dm *m, const nd_flows_stream_opts *o, nd_error *e)
{
    const nd_dataset *h = nd_dm_dataset(m);
    const nd_dm_sampling *ms = &nd_dm_get_settings(m)->sample;
    uint32_t K = h->n_classes;
    if (weights_check(o->weights, K, e)) return NULL;
    if (o->threads < 1 || o->threads > ND_FLOWS_STREAM_MAX_THREADS) {
        nd_error_set(e, ND_EUSAGE, "sample flows: %u sampler threads, expected 1 to %d",
                     o->threads, ND_FLOWS_STREAM_MAX_THREADS);
        return NULL;
    }
    if (o->max_windows > 1 &&
        nd_dm_context_check(m, o->context < 0 ? (int)h->L / 2 : o->context, "sample flows", e))
        return NULL;
    /* the model's buffers hold sample.batch windows (and their guidance copies) */
    uint32_t B = o->batch ? o->batch : ND_FLOWS_STREAM_BATCH;
    if (B > ms->batch) B = ms->batch;
    /* the decoder's maps, fitted once here rather than by every thread */
    if (nd_dm_calibrate(m, e)) return NULL;
    nd_flows_stream *s = calloc(1, sizeof *s);
    if (!s) {
        nd_error_set(e, -ENOMEM, "out of memory");
        return NULL;
    }
    s->o = *o;
    s->m = m;
    s->K = K;
    s->B = B;
    s->L = h->L;
    s->WL = (size_t)h->n_channels * h->L;
    s->shape.L = h->L;
    s->shape.max_windows = o->max_windows ? o->max_windows : 1;
    s->t0 = nd_now_ns();
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* nd_now_ns's clock */
    pthread_cond_init(&s->room, &ca);
    pthread_cond_init(&s->ready, &ca);
    pthread_condattr_destroy(&ca);
    s->cls = calloc(K, sizeof *s->cls);
    s->w = calloc(o->threads, sizeof *s->w);
    int rc = s->cls && s->w ? 0 : -ENOMEM;
    if (!rc) {
        flows_len *len = calloc(K, sizeof *len);
        if (len) lengths_init(len, h, o->weights, s->shape.max_windows, o->tag, 0);
        for (uint32_t k = 0; len && k < K; k++) s->cls[k].len = len[k];
        if (!len) rc = -ENOMEM;
        free(len);
    }
    /* the queue shared by weight, in windows: a class that has flows holds at least a
     * batch of its longest ones (the batch shrinks to fit its share, to one flow), so
     * that a class that is waited for always has room for its next batch */
    double W = 0;
    for (uint32_t k = 0; k < K; k++) W += o->weights ? o->weights[k] : 1;
    for (uint32_t k = 0; !rc && k < K; k++) {
        double wk = o->weights ? o->weights[k] : 1;
        if (!(wk > 0)) continue;
        stream_class *c = &s->cls[k];
        double share = floor((double)o->queue * wk / W + 0.5);
        uint32_t q = share >= 1 ? (uint32_t)fmin(share, 4294967295.0) : 1,
                 per = q / c->len.longest;
        c->B = per < 1 ? 1 : per < B ? per : B;
        c->quota = q > c->B * c->len.longest ? q : c->B * c->len.longest;
        c->slots = c->quota / c->B + 1;
        c->q = calloc(c->slots, sizeof *c->q);
        c->dur = malloc(c->B * sizeof *c->dur);
        c->off = malloc((c->B + 1) * sizeof *c->off);
        if (!c->q || !c->dur || !c->off) rc = -ENOMEM;
        for (uint32_t i = 0; !rc && i < c->slots; i++) {
            c->q[i].off = malloc((c->B + 1) * sizeof *c->q[i].off);
            c->q[i].nwin = malloc(c->B * sizeof *c->q[i].nwin);
            if (!c->q[i].off || !c->q[i].nwin) rc = -ENOMEM;
        }
        s->st.bound += c->quota;
    }
    if (rc) nd_error_set(e, rc, "out of memory for a queue of %u windows", o->queue);
    for (uint32_t i = 0; !rc && i < o->threads; i++) {
        s->w[i].s = s;
        s->w[i].m = i ? nd_dm_snapshot(m, ND_DM_BATCH_SAMPLE, e) : m;
        if (!s->w[i].m) rc = e->code;
    }
    for (uint32_t i = 0; !rc && i < o->threads; i++) {
        nd_dm_set_stop(s->w[i].m, &s->quit);
        rc = pthread_create(&s->w[i].th, NULL, stream_sampler, &s->w[i]);
        if (rc) nd_error_set(e, -rc, "sample flows: cannot start a sampler thread");
        else s->w[i].started = 1;
    }
    if (!rc) return s;
    nd_flows_stream_free(s);
    return NULL;
}

/* One wait of a caller of the stream (s->mu held) for a batch to be drawn, until
 * until_ns at most and a tenth of a second at most (to see the stop flag, which a signal
 * sets without a word): 0, 1 when until_ns has passed, or ND_EINTR (e filled) once *stop
 * is set. */
static int stream_wait(nd_flows_stream *s, uint64_t until_ns, nd_error *e)
{
    if (s->o.stop && *s->o.stop) return nd_error_set(e, ND_EINTR, "stopped by signal");
    uint64_t now = nd_now_ns();
    if (now >= until_ns) return 1;
    uint64_t t = until_ns - now > ND_NS_PER_SEC / 10 ? now + ND_NS_PER_SEC / 10 : until_ns;
    struct timespec ts = {(time_t)(t / ND_NS_PER_SEC), (long)(t % ND_NS_PER_SEC)};
    pthread_cond_timedwait(&s->ready, &s->mu, &ts);
    return 0;
}

int nd_flows_stream_fill(nd_flows_stream *s, uint64_t flows, nd_error *e)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    while (!rc) {
        if (s->rc) {
            rc = nd_error_set(e, s->rc, "%s", s->e.msg);
            break;
        }
        if (s->st.flows - s->st.taken >= flows || stream_pick(s) == UINT32_MAX) break;
        rc = stream_wait(s, UINT64_MAX, e);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nd_flows_stream_take(nd_flows_stream *s, uint32_t k, float **x, size_t *cap, uint32_t *nwin,
                         uint64_t until_ns, nd_error *e)
{
    if (k >= s->K || !s->cls[k].quota)
        return nd_error_set(e, ND_EUSAGE, "sample flows: class %u has no share of the flows",
                            k);
    stream_class *c = &s->cls[k];
    int rc = 1;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->rc) {
            rc = nd_error_set(e, s->rc, "%s", s->e.msg);
            break;
        }
        stream_batch *b = &c->q[c->head];
        if (c->n_q && b->ready) {
            uint32_t i = b->taken++, n = b->nwin[i];
            size_t need = n * s->WL;
            if (need > *cap) {
                float *p = realloc(*x, need * sizeof *p);
                if (!p) {
                    b->taken--;
                    rc = nd_error_set(e, -ENOMEM, "out of memory");
                    break;
                }
                *x = p, *cap = need;
            }
            memcpy(*x, b->win + (size_t)b->off[i] * s->WL, need * sizeof **x);
            *nwin = n;
            s->st.taken++;
            if (b->taken == b->n) { /* the batch leaves the queue */
                free(b->win);
                b->win = NULL;
                c->used -= b->windows;
                s->st.depth -= b->windows;
                c->head = (c->head + 1) % c->slots;
                c->n_q--;
                pthread_cond_broadcast(&s->room);
            }
            rc = 0;
            break;
        }
        if ((rc = stream_wait(s, until_ns, e))) break;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void nd_flows_stream_stats_get(nd_flows_stream *s, nd_flows_stream_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    pthread_mutex_unlock(&s->mu);
    double secs = (double)(nd_now_ns() - s->t0) * 1e-9;
    st->windows_per_s = secs > 0 ? (double)st->sampled / secs : 0;
    st->batch = s->B;
    st->longest = 1;
    for (uint32_t k = 0; k < s->K; k++)
        if (s->cls[k].quota && s->cls[k].len.longest > st->longest)
            st->longest = s->cls[k].len.longest;
}

void nd_flows_stream_free(nd_flows_stream *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->room);
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; s->w && i < s->o.threads; i++) {
        if (s->w[i].started) pthread_join(s->w[i].th, NULL);
        if (s->w[i].m) nd_dm_set_stop(s->w[i].m, NULL);
        if (i && s->w[i].m) nd_dm_free(s->w[i].m);
    }
    for (uint32_t k = 0; s->cls && k < s->K; k++) {
        stream_class *c = &s->cls[k];
        for (uint32_t i = 0; c->q && i < c->slots; i++) {
            free(c->q[i].win);
            free(c->q[i].off);
            free(c->q[i].nwin);
        }
        free(c->q);
        free(c->dur);
        free(c->off);
    }
    free(s->cls);
    free(s->w);
    pthread_cond_destroy(&s->room);
    pthread_cond_destroy(&s->ready);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
