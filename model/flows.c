/*
 * flows.c — flows from a model with a class mix (model.h): the one sampling policy behind
 * `netdiffus replay MODEL.ndm` and live's in-process replay. The model gives windows
 * (dm.c); this file decides how many of each class, redraws the ones that would send
 * nothing, and orders them: all at once (nd_dm_sample_flows), or streamed by sampler
 * threads ahead of a replay through a bounded queue (nd_flows_stream). docs/REPLAY.md
 * describes the policy.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

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

/* How windows of one model are drawn: the model, a batch of scratch, the channels the
 * empty test reads, and what the draws did. */
typedef struct flows_draw {
    nd_dm *m;
    float *x; /* (batch, C, L) */
    size_t batch, WL;
    uint32_t L;
    int down, up; /* channels of bytes_down and bytes_up; -1: none */
    uint64_t redrawn, kept_empty;
} flows_draw;

static int draw_init(flows_draw *d, nd_dm *m, size_t batch)
{
    const nd_dataset *h = nd_dm_dataset(m);
    memset(d, 0, sizeof *d);
    d->m = m;
    d->batch = batch;
    d->L = h->L;
    d->WL = (size_t)h->n_channels * h->L;
    d->down = d->up = -1;
    for (uint32_t c = 0; c < h->n_channels; c++) {
        if (!strcmp(h->channel_names[c], "bytes_down")) d->down = (int)c;
        if (!strcmp(h->channel_names[c], "bytes_up")) d->up = (int)c;
    }
    d->x = malloc(batch * d->WL * sizeof *d->x);
    return d->x ? 0 : -ENOMEM;
}

/* Takes one window of class k that the policy keeps; 0 or a code with e filled. */
typedef int (*keep_fn)(void *arg, uint32_t k, const float *x, nd_error *e);

/* Draws count windows of class k in batches of d->batch from rng and hands each kept one
 * to keep, redrawing empty ones (at most count redraws, then they are kept). stop (may be
 * NULL) is looked at between batches. Returns 0 or a code with e filled. */
static int draw_class(flows_draw *d, uint32_t k, uint64_t count, nd_rng *rng,
                      volatile sig_atomic_t *stop, keep_fn keep, void *arg, nd_error *e)
{
    uint64_t need = count, budget = count;
    while (need) {
        if (stop && *stop) return nd_error_set(e, ND_EINTR, "stopped by signal");
        size_t B = need < d->batch ? (size_t)need : d->batch;
        int rc = nd_dm_sample(d->m, (int)k, B, d->x, NULL, rng, e);
        if (rc) return rc;
        for (size_t i = 0; i < B; i++) {
            if (window_empty(d->x + i * d->WL, d->L, d->down, d->up)) {
                if (budget) {
                    budget--, d->redrawn++;
                    continue;
                }
                d->kept_empty++;
            }
            if ((rc = keep(arg, k, d->x + i * d->WL, e))) return rc;
            need--;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* All at once                                                                          */
/* ------------------------------------------------------------------------------------ */

/* What the sampling of one call shares between its classes. */
typedef struct flows_run {
    const nd_flows_opts *o;
    nd_dataset *ds;
    const char *name;   /* the class being sampled */
    uint64_t t0, shown; /* start, last status line */
    uint64_t done;
} flows_run;

static int keep_append(void *arg, uint32_t k, const float *x, nd_error *e)
{
    flows_run *r = arg;
    const nd_flows_opts *o = r->o;
    if (nd_dataset_append(r->ds, (uint16_t)k, r->ds->n_windows, x))
        return nd_error_set(e, -ENOMEM, "out of memory for %u sampled windows", o->flows);
    r->done++;
    if (!o->quiet && o->flows > o->batch && nd_now_ns() - r->shown >= ND_NS_PER_SEC / 4) {
        r->shown = nd_now_ns();
        double s = (double)(r->shown - r->t0) * 1e-9;
        nd_status("%s: sampling %llu/%u windows (%s), %.1f windows/s", o->tag,
                  (unsigned long long)r->done, o->flows, r->name,
                  s > 0 ? (double)r->done / s : 0.0);
    }
    return 0;
}

/* Fisher-Yates over whole windows (values and labels; groups stay 0..n-1): classes
 * interleave in the flow plan. tmp: one window of scratch. */
static void shuffle(nd_dataset *ds, float *tmp, nd_rng *rng)
{
    size_t WL = (size_t)ds->n_channels * ds->L;
    for (uint64_t i = ds->n_windows; i > 1; i--) {
        uint64_t j = nd_rng_below(rng, (uint32_t)i);
        if (j == i - 1) continue;
        float *a = ds->values + (i - 1) * WL, *b = ds->values + j * WL;
        memcpy(tmp, a, WL * sizeof *tmp);
        memcpy(a, b, WL * sizeof *tmp);
        memcpy(b, tmp, WL * sizeof *tmp);
        uint16_t l = ds->labels[i - 1];
        ds->labels[i - 1] = ds->labels[j];
        ds->labels[j] = l;
    }
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
    uint32_t K = h->n_classes;
    if (weights_check(o->weights, K, e)) return NULL;
    nd_flows_opts oo = *o;
    if (!oo.batch) oo.batch = ms->batch;
    flows_run r = {.o = &oo, .t0 = nd_now_ns()};
    flows_draw d;
    uint64_t *count = calloc(K, sizeof *count);
    double *frac = calloc(K, sizeof *frac);
    r.ds = nd_dataset_new_like(h);
    int rc = !draw_init(&d, m, oo.batch) && count && frac && r.ds
                 ? 0
                 : nd_error_set(e, -ENOMEM, "out of memory for %u sampled windows", o->flows);
    if (!rc) flows_split(count, frac, o->weights, K, o->flows);
    for (uint32_t k = 0; !rc && k < K; k++) {
        r.name = h->class_names[k];
        uint64_t empty0 = d.kept_empty;
        rc = draw_class(&d, k, count[k], rng, o->stop, keep_append, &r, e);
        if (rc == ND_EINTR)
            nd_error_set(e, ND_EINTR, "stopped by signal while sampling (%llu of %u windows)",
                         (unsigned long long)r.done, o->flows);
        if (!rc && d.kept_empty > empty0)
            nd_log(o->quiet ? ND_LOG_DEBUG : ND_LOG_WARN,
                   "%s: %llu sampled windows of class '%s' "
                   "have no bytes even after redrawing: those flows send nothing",
                   o->tag, (unsigned long long)(d.kept_empty - empty0), r.name);
    }
    if (!o->quiet) nd_status_end();
    if (!rc) {
        double s = (double)(nd_now_ns() - r.t0) * 1e-9;
        nd_log(o->quiet ? ND_LOG_DEBUG : ND_LOG_INFO,
               "%s: sampled %u windows in %.1f s (%.1f windows/s; %s, %u steps, guidance %g)",
               o->tag, o->flows, s, s > 0 ? o->flows / s : 0.0, nd_sampler_name(ms->sampler),
               ms->steps, ms->guidance);
        if (d.redrawn)
            nd_debug("%s: %llu sampled windows without bytes were drawn again", o->tag,
                     (unsigned long long)d.redrawn);
        shuffle(r.ds, d.x, rng);
    }
    free(count);
    free(frac);
    free(d.x);
    if (!rc) return r.ds;
    nd_dataset_free(r.ds);
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Streamed: sampler threads ahead of a replay, through a bounded queue                 */
/* ------------------------------------------------------------------------------------ */

/* One class's share of the queue: a ring of quota windows reserved a batch at a time by
 * a sampler thread and taken in the order the batches were begun, so that a class's
 * windows are the same whichever thread drew them, and whenever. */
typedef struct stream_class {
    float *win;                /* (quota, C, L) */
    uint8_t *ready;            /* (quota / batch) the batch is drawn */
    uint32_t quota;            /* windows, whole batches; 0: a class of weight 0 */
    uint32_t head, tail, used; /* next to take, next to reserve, reserved or ready */
    uint64_t batches;          /* batches begun: the next one's noise stream */
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
    stream_class *cls;
    stream_worker *w;
    pthread_mutex_t mu;
    pthread_cond_t room, ready; /* a window was taken; a batch was drawn (or a failure) */
    volatile int quit;          /* the samplers stop (nd_dm_sample looks at it too) */
    int rc;                     /* the first sampler failure, e its message */
    nd_error e;
    uint64_t t0;
    nd_flows_stream_stats st;
};

/* The class the next batch is for: of those with room for a batch, the one whose part
 * of its quota is the least filled (the first of equal ones); UINT32_MAX when none. */
static uint32_t stream_pick(const nd_flows_stream *s)
{
    uint32_t best = UINT32_MAX;
    for (uint32_t k = 0; k < s->K; k++) {
        const stream_class *c = &s->cls[k];
        if (!c->quota || c->used + s->B > c->quota) continue;
        if (best == UINT32_MAX ||
            (uint64_t)c->used * s->cls[best].quota < (uint64_t)s->cls[best].used * c->quota)
            best = k;
    }
    return best;
}

/* keep_fn of a sampler thread: the window into the next slot of its batch. */
typedef struct stream_fill {
    float *to;
    size_t WL;
} stream_fill;

static int keep_slot(void *arg, uint32_t k, const float *x, nd_error *e)
{
    (void)k, (void)e;
    stream_fill *f = arg;
    memcpy(f->to, x, f->WL * sizeof *x);
    f->to += f->WL;
    return 0;
}

static void *stream_sampler(void *arg)
{
    stream_worker *w = arg;
    nd_flows_stream *s = w->s;
    flows_draw d;
    nd_error e = {0};
    int rc = draw_init(&d, w->m, s->B) ? nd_error_set(&e, -ENOMEM, "out of memory") : 0;
    pthread_mutex_lock(&s->mu);
    while (!rc && !s->quit) {
        uint32_t k = stream_pick(s);
        if (k == UINT32_MAX) {
            pthread_cond_wait(&s->room, &s->mu);
            continue;
        }
        stream_class *c = &s->cls[k];
        uint32_t slot = c->tail;
        c->tail = (c->tail + s->B) % c->quota;
        c->used += s->B;
        s->st.depth += s->B;
        if (s->st.depth > s->st.max_depth) s->st.max_depth = s->st.depth;
        /* batch n of class k has noise stream (seed, k, n) */
        nd_rng rng;
        nd_rng_seed(&rng,
                    s->o.seed ^ ((((uint64_t)k << 40) | c->batches++) * 0x9e3779b97f4a7c15ull));
        uint64_t redrawn = d.redrawn, kept_empty = d.kept_empty;
        pthread_mutex_unlock(&s->mu);
        stream_fill f = {c->win + (size_t)slot * s->WL, s->WL};
        rc = draw_class(&d, k, s->B, &rng, NULL, keep_slot, &f, &e);
        pthread_mutex_lock(&s->mu);
        if (rc) break;
        c->ready[slot / s->B] = 1;
        s->st.sampled += s->B;
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
    free(d.x);
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
    s->WL = (size_t)h->n_channels * h->L;
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
    /* the queue shared by weight, in whole batches, at least one for a class that has
     * flows: a class that is waited for always has room for one */
    double W = 0;
    for (uint32_t k = 0; k < K; k++) W += o->weights ? o->weights[k] : 1;
    for (uint32_t k = 0; !rc && k < K; k++) {
        double wk = o->weights ? o->weights[k] : 1;
        if (!(wk > 0)) continue;
        double batches = floor((double)o->queue * wk / W / B + 0.5);
        stream_class *c = &s->cls[k];
        c->quota = B * (batches >= 1 ? (uint32_t)batches : 1);
        c->win = malloc((size_t)c->quota * s->WL * sizeof *c->win);
        c->ready = calloc(c->quota / B, 1);
        if (!c->win || !c->ready) rc = -ENOMEM;
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

int nd_flows_stream_take(nd_flows_stream *s, uint32_t k, float *x, uint64_t until_ns,
                         nd_error *e)
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
        if (c->used && c->ready[c->head / s->B]) {
            memcpy(x, c->win + (size_t)c->head * s->WL, s->WL * sizeof *x);
            if (++c->head % s->B == 0) c->ready[c->head / s->B - 1] = 0;
            c->head %= c->quota;
            c->used--;
            s->st.depth--;
            s->st.taken++;
            pthread_cond_broadcast(&s->room);
            rc = 0;
            break;
        }
        if (s->o.stop && *s->o.stop) {
            rc = nd_error_set(e, ND_EINTR, "stopped by signal");
            break;
        }
        uint64_t now = nd_now_ns();
        if (now >= until_ns) break;
        /* wake up now and then to see the stop flag, which a signal sets without a word */
        uint64_t t = until_ns - now > ND_NS_PER_SEC / 10 ? now + ND_NS_PER_SEC / 10 : until_ns;
        struct timespec ts = {(time_t)(t / ND_NS_PER_SEC), (long)(t % ND_NS_PER_SEC)};
        pthread_cond_timedwait(&s->ready, &s->mu, &ts);
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
        free(s->cls[k].win);
        free(s->cls[k].ready);
    }
    free(s->cls);
    free(s->w);
    pthread_cond_destroy(&s->room);
    pthread_cond_destroy(&s->ready);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
