/*
 * flows.c — N flows from a model with a class mix (model.h, nd_dm_sample_flows): the one
 * sampling policy behind `netdiffus replay MODEL.ndm` and live's in-process replay. The
 * model gives windows (dm.c); this file decides how many of each class, redraws the
 * ones that would send nothing, and orders them. docs/REPLAY.md describes the policy.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* What the sampling of one call shares between its classes. */
typedef struct flows_run {
    nd_dm *m;
    const nd_flows_opts *o;
    nd_dataset *ds;
    float *x; /* (batch, C, L) */
    size_t batch, WL;
    int down, up;       /* channels of bytes_down and bytes_up; -1: none */
    uint64_t t0, shown; /* start, last status line */
    uint64_t done, redrawn;
} flows_run;

/* Appends count windows of class k to r->ds, redrawing empty ones (at most count
 * redraws). Returns 0 or a code with e filled. */
static int sample_class(flows_run *r, uint32_t k, uint64_t count, nd_rng *rng, nd_error *e)
{
    const nd_flows_opts *o = r->o;
    const char *name = nd_dm_dataset(r->m)->class_names[k];
    uint64_t need = count, budget = count, kept_empty = 0;
    while (need) {
        if (o->stop && *o->stop)
            return nd_error_set(e, ND_EINTR,
                                "stopped by signal while sampling (%llu of %u "
                                "windows)",
                                (unsigned long long)r->done, o->flows);
        size_t B = need < r->batch ? (size_t)need : r->batch;
        int rc = nd_dm_sample(r->m, (int)k, B, r->x, NULL, rng, e);
        if (rc) return rc;
        for (size_t i = 0; i < B; i++) {
            if (window_empty(r->x + i * r->WL, r->ds->L, r->down, r->up)) {
                if (budget) {
                    budget--, r->redrawn++;
                    continue;
                }
                kept_empty++;
            }
            if (nd_dataset_append(r->ds, (uint16_t)k, r->ds->n_windows, r->x + i * r->WL))
                return nd_error_set(e, -ENOMEM, "out of memory for %u sampled windows",
                                    o->flows);
            need--, r->done++;
        }
        if (!o->quiet && o->flows > r->batch && nd_now_ns() - r->shown >= ND_NS_PER_SEC / 4) {
            r->shown = nd_now_ns();
            double s = (double)(r->shown - r->t0) * 1e-9;
            nd_status("%s: sampling %llu/%u windows (%s), %.1f windows/s", o->tag,
                      (unsigned long long)r->done, o->flows, name,
                      s > 0 ? (double)r->done / s : 0.0);
        }
    }
    if (kept_empty)
        nd_log(o->quiet ? ND_LOG_DEBUG : ND_LOG_WARN,
               "%s: %llu sampled windows of class '%s' "
               "have no bytes even after redrawing: those flows send nothing",
               o->tag, (unsigned long long)kept_empty, name);
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
    if (!K) {
        nd_error_set(e, ND_EUSAGE, "sample flows: the model has no classes");
        return NULL;
    }
    if (weights_check(o->weights, K, e)) return NULL;
    flows_run r = {.m = m, .o = o, .down = -1, .up = -1, .t0 = nd_now_ns()};
    r.batch = o->batch ? o->batch : ms->batch;
    r.WL = (size_t)h->n_channels * h->L;
    for (uint32_t c = 0; c < h->n_channels; c++) {
        if (!strcmp(h->channel_names[c], "bytes_down")) r.down = (int)c;
        if (!strcmp(h->channel_names[c], "bytes_up")) r.up = (int)c;
    }
    uint64_t *count = calloc(K, sizeof *count);
    double *frac = calloc(K, sizeof *frac);
    r.x = malloc(r.batch * r.WL * sizeof *r.x);
    r.ds = nd_dataset_new_like(h);
    int rc = count && frac && r.x && r.ds
                 ? 0
                 : nd_error_set(e, -ENOMEM, "out of memory for %u sampled windows", o->flows);
    if (!rc) flows_split(count, frac, o->weights, K, o->flows);
    for (uint32_t k = 0; !rc && k < K; k++) rc = sample_class(&r, k, count[k], rng, e);
    if (!o->quiet) nd_status_end();
    if (!rc) {
        double s = (double)(nd_now_ns() - r.t0) * 1e-9;
        nd_log(o->quiet ? ND_LOG_DEBUG : ND_LOG_INFO,
               "%s: sampled %u windows in %.1f s (%.1f windows/s; %s, %u steps, guidance %g)",
               o->tag, o->flows, s, s > 0 ? o->flows / s : 0.0, nd_sampler_name(ms->sampler),
               ms->steps, ms->guidance);
        if (r.redrawn)
            nd_debug("%s: %llu sampled windows without bytes were drawn again", o->tag,
                     (unsigned long long)r.redrawn);
        shuffle(r.ds, r.x, rng);
    }
    free(count);
    free(frac);
    free(r.x);
    if (!rc) return r.ds;
    nd_dataset_free(r.ds);
    return NULL;
}
