/*
 * decode.c — the decoder (docs/MODEL.md, "Decoder"): the last step from a sampled GAF
 * image's decoded series to raw bytes per bin, fitted once per model step and sampling
 * setting; and a model's decoder as a whole (model_impl.h): its targets and maps per
 * class and channel, what the maps were fitted for, and its section of the model file.
 *
 * A small diffusion model trained on a CPU budget ranks bins well (which bins are idle,
 * which are busier than others) but gets the levels wrong: it under-produces idle bins
 * (its activity images rarely reach the idle value, so a fixed halfway threshold keeps
 * most bins busy) and its busy values are too smooth. Per class and channel, two
 * monotone corrections fix the levels and keep the model's ranking, so the time
 * structure is the model's own:
 *   - the activity threshold is the quantile of the model's activity scores that makes
 *     the share of idle bins that of the training data;
 *   - a busy bin's log1p value is mapped through F_train⁻¹(F_model(·)), both CDFs as
 *     ND_DECODER_Q + 1 quantiles (piecewise linear between them);
 *   - then the window's volume (log1p of the channel's total) goes through the same kind
 *     of map, by scaling the window's bins: the per-bin maps get the levels right but
 *     not how busy whole windows are (the model's windows are too alike in volume), and
 *     a uniform scale keeps the window's shape (busy bins are kept within the training
 *     data's range of busy values). Windows whose volume maps to 0 (the training data
 *     has windows with this channel entirely idle) become idle, and those only: a window
 *     the threshold left entirely idle keeps its highest-scoring bin busy before the map.
 *   - the scores go through a filter before the threshold, the one of a small family
 *     (none; Gaussian dither; sharpening against the neighbours; moving averages) that
 *     gives the calibrated windows the training data's time structure: what the choice
 *     optimises is the distance between the class-mean autocorrelations of log1p values
 *     at lags 1..min(L/4, 16) (time_structure below, the decoder's own measure; eval.h's
 *     measures are not used, so that `eval` stays a measurement the decoder was not
 *     fitted to). The threshold usually has to make more bins idle than the model did,
 *     and which bins it picks decides the time structure: the lowest raw scores are those
 *     next to the model's idle bins, which lengthens idle runs (videoTrain's dense
 *     windows: a dither or sharpening breaks them up), while in sparse traffic bursts are
 *     runs of busy bins and a moving average keeps them together.
 * The model side comes from windows the model samples with the settings in use, so the
 * maps belong to one model step and one sampling setting (nd_decoder_key; dm.c refits
 * them when either changes).
 *
 * Model file section DECO (docs/FORMATS.md §3), little-endian:
 *   u32 version (1), Q (64), lags (16), classes K, channels C, windows per class the
 *       maps were fitted on (0: no maps), fit revision, 0;
 *   u64 model step; u32 sampler, steps, clip, projection, decode, 0; f64 guidance, eta
 *       (the key of the maps);
 *   K·C targets (class-major): f32 idle, busy[Q+1], volume[Q+1], acf[lags];
 *   with windows, K·C maps: f32 threshold, busy[Q+1], volume[Q+1]; u32 filter.
 * Older files hold MARG (targets) and CALB (maps) instead, as ND_CAL_SLOTS-float slot
 * arrays in three generations; read_legacy reads them.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "model.h"

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* q (Q+1): quantiles of v (n > 0, sorted in place) at k/Q, linear between order
 * statistics. */
static void quantiles(float *q, float *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_float);
    for (int k = 0; k <= ND_DECODER_Q; k++) {
        double pos = (double)k / ND_DECODER_Q * (double)(n - 1);
        size_t i = (size_t)pos;
        double f = pos - (double)i;
        q[k] = i + 1 < n ? (float)((1.0 - f) * v[i] + f * v[i + 1]) : v[n - 1];
    }
}

/* The map through quantiles qm (the model's) onto qt (the target's) at l, piecewise
 * linear, clamped to the target's ends outside the model's range. */
static float qmap(const float *qm, const float *qt, float l)
{
    if (l <= qm[0]) return qt[0];
    if (l >= qm[ND_DECODER_Q]) return qt[ND_DECODER_Q];
    int lo = 0, hi = ND_DECODER_Q; /* qm[lo] <= l < qm[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (qm[mid] <= l) lo = mid;
        else hi = mid;
    }
    float span = qm[hi] - qm[lo], f = span > 0.0f ? (l - qm[lo]) / span : 0.0f;
    return qt[lo] + f * (qt[hi] - qt[lo]);
}

static float sum(const float *x, int L)
{
    double s = 0.0;
    for (int i = 0; i < L; i++) s += x[i];
    return (float)s;
}

/* The score filters: Gaussian noise of this spread, sharpening s + a (s - mean of the two
 * neighbours), or (1 - weight) s + weight (moving average of width bins). */
static const struct {
    float dither, sharpen, weight;
    int width;
} filters[] = {
    {0}, /* none: 0, also for targets without an autocorrelation */
    {.dither = 0.01f},
    {.dither = 0.02f},
    {.dither = 0.04f},
    {.dither = 0.08f},
    {.sharpen = 1},
    {.sharpen = 2},
    {.weight = 1, .width = 3},
    {.weight = 0.5f, .width = 5},
    {.weight = 1, .width = 5},
    {.weight = 0.5f, .width = 9},
    {.weight = 1, .width = 9},
};
enum { NFILTERS = sizeof filters / sizeof filters[0] };

static void filter(float *s, int L, int f, nd_rng *rng)
{
    if (!(f > 0 && f < NFILTERS)) return;
    if (filters[f].dither > 0.0f) {
        for (int i = 0; i < L; i++) s[i] += filters[f].dither * nd_rng_normal(rng);
        return;
    }
    float in[ND_MODEL_MAX_L];
    ND_ASSERT(L <= ND_MODEL_MAX_L);
    memcpy(in, s, (size_t)L * sizeof *s);
    int h = filters[f].width / 2;
    for (int i = 0; i < L; i++) { /* ends: the edge value repeated */
        if (filters[f].sharpen > 0.0f) {
            float nb = 0.5f * (in[i > 0 ? i - 1 : 0] + in[i + 1 < L ? i + 1 : L - 1]);
            s[i] = in[i] + filters[f].sharpen * (in[i] - nb);
        } else {
            float m = 0.0f;
            for (int j = i - h; j <= i + h; j++) m += in[j < 0 ? 0 : j >= L ? L - 1 : j];
            s[i] =
                (1.0f - filters[f].weight) * in[i] + filters[f].weight * m / (float)(2 * h + 1);
        }
    }
}

static int lags(int L) { return L / 4 < ND_DECODER_LAGS ? L / 4 : ND_DECODER_LAGS; }

/* What the score filter is chosen to match: the time structure of n windows x (n rows
 * of L raw values, row stride `stride`), as the mean over windows of the autocorrelation
 * of log1p values at lags 1..K (a window with no variance adds 0). The decoder's own
 * measure, so that the figures of `eval` stay a measurement it was not fitted to. */
static void time_structure(double *acf, const float *x, size_t n, size_t stride, int L, int K)
{
    double y[ND_MODEL_MAX_L];
    ND_ASSERT(L <= ND_MODEL_MAX_L);
    for (int k = 0; k < K; k++) acf[k] = 0.0;
    for (size_t w = 0; w < n; w++) {
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < L; i++) {
            float v = x[w * stride + (size_t)i];
            y[i] = log1p(v > 0.0f ? v : 0.0f);
            mean += y[i];
        }
        mean /= L;
        for (int i = 0; i < L; i++) y[i] -= mean, var += y[i] * y[i];
        if (var <= 1e-12) continue;
        for (int k = 1; k <= K; k++) {
            double a = 0.0;
            for (int i = 0; i + k < L; i++) a += y[i] * y[i + k];
            acf[k - 1] += a / var;
        }
    }
    for (int k = 0; k < K && n; k++) acf[k] /= (double)n;
}

int nd_decoder_filters(void) { return NFILTERS; }

static void map_clear(nd_decoder_map *f)
{
    f->threshold = NAN;
    for (int k = 0; k <= ND_DECODER_Q; k++) f->busy[k] = f->volume[k] = NAN;
    f->filter = 0;
}

static void target_clear(nd_decoder_target *t)
{
    t->idle = NAN;
    for (int k = 0; k <= ND_DECODER_Q; k++) t->busy[k] = t->volume[k] = NAN;
    for (int k = 0; k < ND_DECODER_LAGS; k++) t->acf[k] = NAN;
}

void nd_decoder_target_measure(nd_decoder_target *t, const float *x, size_t n, int C, int L,
                               int c, float *scratch)
{
    size_t busy = 0, total = n * (size_t)L;
    for (size_t k = 0; k < n; k++) {
        const float *row = x + (k * C + c) * L;
        for (int i = 0; i < L; i++)
            if (row[i] > 0.0f) scratch[busy++] = log1pf(row[i]);
    }
    target_clear(t);
    if (!total) return;
    t->idle = (float)(total - busy) / (float)total;
    if (busy) quantiles(t->busy, scratch, busy);
    for (size_t k = 0; k < n; k++) scratch[k] = log1pf(sum(x + (k * C + c) * L, L));
    quantiles(t->volume, scratch, n);
    double acf[ND_DECODER_LAGS];
    time_structure(acf, x + (size_t)c * L, n, (size_t)C * L, L, lags(L));
    for (int k = 0; k < lags(L); k++) t->acf[k] = (float)acf[k];
}

/* The per-bin part of the fit for a share s of idle bins: threshold and busy quantiles. */
static void fit_bins(nd_decoder_map *f, const nd_decoder_target *t, double s,
                     const float *score, const float *lval, size_t nb, float *scratch)
{
    for (size_t i = 0; i < nb; i++) scratch[i] = score[i];
    qsort(scratch, nb, sizeof *scratch, cmp_float);
    size_t idle = s <= 0.0 ? 0 : (size_t)lround(s * (double)nb);
    /* halfway between the last idle and the first busy score; outside the score range
     * when every bin (or none) is idle */
    f->threshold = idle == 0    ? -INFINITY
                   : idle >= nb ? INFINITY
                                : 0.5f * (scratch[idle - 1] + scratch[idle]);
    for (int k = 0; k <= ND_DECODER_Q; k++) f->busy[k] = NAN;
    size_t busy = 0;
    for (size_t i = 0; i < nb; i++)
        if (score[i] > f->threshold) scratch[busy++] = lval[i];
    if (busy && isfinite(t->busy[0])) quantiles(f->busy, scratch, busy);
}

/* The volume map on one window's channel x (L raw values from nd_decoder_bin), in place:
 * one scale for every bin, busy bins clamped to the target's range of busy values. */
static void volume(const nd_decoder_map *f, const nd_decoder_target *t, float *x, int L)
{
    float total = sum(x, L);
    if (!(total > 0.0f) || !isfinite(f->volume[0]) || !isfinite(t->volume[0])) return;
    float g = expm1f(qmap(f->volume, t->volume, log1pf(total))) / total;
    /* busy bins stay within the training data's range of busy values: in sparse traffic
     * a window the model made with too many busy bins for its volume would otherwise get
     * bins smaller than any real one */
    float lo = expm1f(t->busy[0]), hi = expm1f(t->busy[ND_DECODER_Q]);
    for (int i = 0; i < L; i++)
        if (x[i] > 0.0f) x[i] = g == 0.0f ? 0.0f : fminf(fmaxf(x[i] * g, lo), hi);
}

/* A channel the threshold left entirely idle keeps its highest-scoring bin busy, so that
 * the volume map (below) alone decides which windows are idle, as many as the training
 * data has (the smallest): as the model trains, its activity gets sharper and the
 * threshold alone leaves far more windows idle than the data has (3-4x in live's
 * web-tls), or some in classes that never have one. Targets from before the volume map:
 * no revive. */
static void revive(const nd_decoder_map *f, const nd_decoder_target *t, float *x,
                   const float *score, const float *lval, int L)
{
    if (!isfinite(t->volume[0])) return;
    int top = 0;
    for (int i = 0; i < L; i++) {
        if (x[i] > 0.0f) return;
        if (score[i] > score[top]) top = i;
    }
    x[top] = nd_decoder_bin(f, t, INFINITY, lval[top]);
}

/* The fit for filtered scores: threshold and maps (f), and in x (n·L) the n windows
 * after both maps; vol: room for n floats. */
static void fit_maps(nd_decoder_map *f, const nd_decoder_target *t, const float *score,
                     const float *lval, size_t n, int L, float *x, float *vol)
{
    size_t nb = n * (size_t)L;
    /* Windows whose volume maps to 0 become idle on top of the threshold's idle bins, so
     * the threshold aims at the rest: a few rounds of moving its share by the miss. */
    double s = t->idle;
    for (int round = 0; round < 4; round++) {
        fit_bins(f, t, s, score, lval, nb, x);
        for (size_t i = 0; i < nb; i++) x[i] = nd_decoder_bin(f, t, score[i], lval[i]);
        if (!isfinite(t->volume[0])) break; /* targets from before the volume map */
        for (size_t w = 0; w < n; w++) revive(f, t, x + w * L, score + w * L, lval + w * L, L);
        for (size_t w = 0; w < n; w++) vol[w] = log1pf(sum(x + w * L, L));
        quantiles(f->volume, vol, n);
        size_t idle = 0;
        for (size_t w = 0; w < n; w++) volume(f, t, x + w * L, L);
        for (size_t i = 0; i < nb; i++) idle += x[i] == 0.0f;
        double miss = t->idle - (double)idle / (double)nb;
        if (fabs(miss) * (double)nb < 0.5) break;
        s = fmin(fmax(s + miss, 0.0), 1.0);
    }
}

void nd_decoder_fit(nd_decoder_map *f, const nd_decoder_target *t, const float *score,
                    const float *lval, size_t n, int L, nd_rng *rng, float *scratch)
{
    map_clear(f);
    size_t nb = n * (size_t)L;
    if (!n || !isfinite(t->idle)) return;
    float *fs = scratch, *x = scratch + nb, *vol = scratch + 2 * nb;
    int K = isfinite(t->acf[0]) ? lags(L) : 0;
    double best = INFINITY;
    for (int k = 0; k < (K ? NFILTERS : 1); k++) {
        nd_decoder_map c;
        map_clear(&c);
        memcpy(fs, score, nb * sizeof *fs);
        for (size_t w = 0; w < n; w++) filter(fs + w * L, L, k, rng);
        fit_maps(&c, t, fs, lval, n, L, x, vol);
        c.filter = k;
        double acf[ND_DECODER_LAGS], d = 0.0;
        time_structure(acf, x, n, (size_t)L, L, K);
        for (int j = 0; j < K; j++) d += fabs(acf[j] - t->acf[j]);
        if (d < best) {
            best = d;
            *f = c;
        }
    }
}

float nd_decoder_bin(const nd_decoder_map *f, const nd_decoder_target *t, float score, float l)
{
    if (!(score > f->threshold)) return 0.0f;
    if (!isfinite(f->busy[0])) return expm1f(l); /* no busy bin in the model's samples */
    return expm1f(qmap(f->busy, t->busy, l));
}

void nd_decoder_window(const nd_decoder_map *f, const nd_decoder_target *t, float *x,
                       float *score, const float *lval, int L, nd_rng *rng)
{
    filter(score, L, f->filter, rng);
    for (int i = 0; i < L; i++) x[i] = nd_decoder_bin(f, t, score[i], lval[i]);
    revive(f, t, x, score, lval, L);
    volume(f, t, x, L);
}

/* ---- a model's decoder (model_impl.h) ----------------------------------------------- */

void nd_decoder_key_of(nd_decoder_key *k, const nd_dm_sampling *s, uint64_t step)
{
    memset(k, 0, sizeof *k);
    k->sampler = s->sampler;
    k->clip = s->clip;
    k->project = s->project;
    k->decode = s->decode;
    k->steps = s->steps;
    k->guidance = s->guidance;
    k->eta = s->eta;
    k->windows = s->calibrate;
    k->step = step;
    k->revision = ND_DECODER_REVISION;
}

int nd_decoder_key_equal(const nd_decoder_key *a, const nd_decoder_key *b)
{
    return a->sampler == b->sampler && a->clip == b->clip && a->project == b->project &&
           a->decode == b->decode && a->steps == b->steps && a->guidance == b->guidance &&
           a->eta == b->eta && a->windows == b->windows && a->step == b->step &&
           a->revision == b->revision;
}

/* The key's settings as text: what `inspect` shows, and what older files stored. */
static void key_text(const nd_decoder_key *k, char *buf, size_t len)
{
    snprintf(buf, len,
             "%s %u steps, guidance %g, eta %g, clip %s, projection %s, decode %s, "
             "fit %u",
             nd_sampler_name(k->sampler), k->steps, k->guidance, k->eta, nd_clip_name(k->clip),
             k->project ? "on" : "off", k->decode == ND_GAF_DIAG ? "diag" : "lsq", k->revision);
}

nd_decoder *nd_decoder_new(int rows, int C)
{
    nd_decoder *d = calloc(1, sizeof *d);
    size_t n = (size_t)rows * C;
    if (!d) return NULL;
    d->rows = rows;
    d->C = C;
    d->target = malloc((n + 1) * sizeof *d->target);
    d->map = malloc((n + 1) * sizeof *d->map);
    if (!d->target || !d->map) {
        nd_decoder_free(d);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        target_clear(&d->target[i]);
        map_clear(&d->map[i]);
    }
    return d;
}

nd_decoder *nd_decoder_copy(const nd_decoder *d)
{
    nd_decoder *c = nd_decoder_new(d->rows, d->C);
    if (!c) return NULL;
    size_t n = (size_t)d->rows * d->C;
    memcpy(c->target, d->target, n * sizeof *d->target);
    memcpy(c->map, d->map, n * sizeof *d->map);
    c->key = d->key;
    return c;
}

void nd_decoder_free(nd_decoder *d)
{
    if (!d) return;
    free(d->target);
    free(d->map);
    free(d);
}

#define TAG_DECO     ND_FOURCC('D', 'E', 'C', 'O')
#define TAG_MARG     ND_FOURCC('M', 'A', 'R', 'G')
#define TAG_CALB     ND_FOURCC('C', 'A', 'L', 'B')
#define DECO_VERSION 1
#define DECO_HEADER  80 /* bytes before the targets */
#define DECO_TARGET  (4 * (1 + 2 * (ND_DECODER_Q + 1) + ND_DECODER_LAGS)) /* bytes each */
#define DECO_MAP     (4 * (1 + 2 * (ND_DECODER_Q + 1)) + 4)

static unsigned char *put_floats(unsigned char *p, const float *v, int n)
{
    for (int i = 0; i < n; i++) p = nd_rec_put_f32(p, v[i]);
    return p;
}
static void get_floats(const unsigned char **p, float *v, int n)
{
    for (int i = 0; i < n; i++) v[i] = nd_rec_f32(p);
}

int nd_decoder_write(const nd_decoder *d, uint32_t classes, ndf_writer *w, nd_error *e)
{
    const nd_decoder_key *k = &d->key;
    size_t n = (size_t)classes * d->C;
    size_t len = DECO_HEADER + n * DECO_TARGET + (k->windows ? n * DECO_MAP : 0);
    unsigned char *buf = malloc(len), *p = buf;
    if (!buf) return nd_error_set(e, -ENOMEM, "decoder: out of memory");
    uint32_t h[] = {DECO_VERSION,   ND_DECODER_Q, ND_DECODER_LAGS, classes,
                    (uint32_t)d->C, k->windows,   k->revision,     0};
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) p = nd_rec_put_u32(p, h[i]);
    p = nd_rec_put_u64(p, k->step);
    uint32_t s[] = {(uint32_t)k->sampler, k->steps, (uint32_t)k->clip, (uint32_t)k->project,
                    (uint32_t)k->decode,  0};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) p = nd_rec_put_u32(p, s[i]);
    p = nd_rec_put_f64(p, k->guidance);
    p = nd_rec_put_f64(p, k->eta);
    for (size_t i = 0; i < n; i++) {
        const nd_decoder_target *t = &d->target[i];
        p = nd_rec_put_f32(p, t->idle);
        p = put_floats(p, t->busy, ND_DECODER_Q + 1);
        p = put_floats(p, t->volume, ND_DECODER_Q + 1);
        p = put_floats(p, t->acf, ND_DECODER_LAGS);
    }
    for (size_t i = 0; k->windows && i < n; i++) {
        const nd_decoder_map *f = &d->map[i];
        p = nd_rec_put_f32(p, f->threshold);
        p = put_floats(p, f->busy, ND_DECODER_Q + 1);
        p = put_floats(p, f->volume, ND_DECODER_Q + 1);
        p = nd_rec_put_u32(p, (uint32_t)f->filter);
    }
    ND_ASSERT((size_t)(p - buf) == len);
    int rc = ndf_write_section(w, TAG_DECO, buf, len, e);
    free(buf);
    return rc;
}

/* DECO's header at *p (DECO_HEADER bytes): h[8] its first words, and the key. */
static void read_header(const unsigned char **p, uint32_t h[8], nd_decoder_key *k)
{
    for (int i = 0; i < 8; i++) h[i] = nd_rec_u32(p);
    k->windows = h[5];
    k->revision = h[6];
    k->step = nd_rec_u64(p);
    k->sampler = (int)nd_rec_u32(p);
    k->steps = nd_rec_u32(p);
    k->clip = (int)nd_rec_u32(p);
    k->project = (int)nd_rec_u32(p);
    k->decode = (int)nd_rec_u32(p);
    *p += 4;
    k->guidance = nd_rec_f64(p);
    k->eta = nd_rec_f64(p);
}

/* The DECO section (data, len) of a file with `classes` classes. */
static int read_deco(nd_decoder *d, uint32_t classes, const unsigned char *p, size_t len,
                     const char *path, nd_error *e)
{
    size_t n = (size_t)classes * d->C;
    if (len < DECO_HEADER)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECO holds %zu bytes, less than its "
                            "header",
                            path, len);
    uint32_t h[8];
    nd_decoder_key *k = &d->key;
    read_header(&p, h, k);
    if (h[0] != DECO_VERSION)
        return nd_error_set(e, ND_EVERSION, "%s: section DECO version %u, this build reads %d",
                            path, h[0], DECO_VERSION);
    size_t want = DECO_HEADER + n * DECO_TARGET + (k->windows ? n * DECO_MAP : 0);
    if (h[1] != ND_DECODER_Q || h[2] != ND_DECODER_LAGS || h[3] != classes ||
        h[4] != (uint32_t)d->C || len != want)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECO (%u quantiles, %u lags, %u "
                            "classes, %u channels, %zu bytes) does not match the model (%d, "
                            "%d, %u, %d, %zu)",
                            path, h[1], h[2], h[3], h[4], len, ND_DECODER_Q, ND_DECODER_LAGS,
                            classes, d->C, want);
    for (size_t i = 0; i < n; i++) {
        nd_decoder_target *t = &d->target[i];
        get_floats(&p, &t->idle, 1);
        get_floats(&p, t->busy, ND_DECODER_Q + 1);
        get_floats(&p, t->volume, ND_DECODER_Q + 1);
        get_floats(&p, t->acf, ND_DECODER_LAGS);
    }
    for (size_t i = 0; k->windows && i < n; i++) {
        nd_decoder_map *f = &d->map[i];
        get_floats(&p, &f->threshold, 1);
        get_floats(&p, f->busy, ND_DECODER_Q + 1);
        get_floats(&p, f->volume, ND_DECODER_Q + 1);
        uint32_t filter = nd_rec_u32(&p);
        if (filter >= NFILTERS)
            return nd_error_set(e, ND_EFORMAT,
                                "%s: section DECO: score filter %u of class "
                                "%zu, this build has %d",
                                path, filter, i / d->C, NFILTERS);
        f->filter = (int)filter;
    }
    return 0;
}

/* Older files: targets (MARG) and maps (CALB) as slot arrays of LEGACY_SLOTS floats per
 * class and channel: [0] idle share or threshold, [1..Q+1] busy quantiles, [LEGACY_VOL..]
 * volume quantiles, [LEGACY_ACF..] the target's autocorrelation at lags 1..16, or the
 * map's filter (one float). Files from before the volume map hold LEGACY_VOL floats per
 * row, files from before the score filter LEGACY_ACF. */
#define LEGACY_VOL   (ND_DECODER_Q + 2)
#define LEGACY_ACF   (2 * ND_DECODER_Q + 3)
#define LEGACY_SLOTS (LEGACY_ACF + ND_DECODER_LAGS)
#define LEGACY_KEY   256 /* CALB: u32 Q, u32 windows, u64 step, char[LEGACY_KEY] settings */

/* slot[i] of a row of k floats at p, NaN beyond k. */
static float legacy_slot(const unsigned char *p, size_t k, size_t i)
{
    return i < k ? nd_get_f32(p + 4 * i) : NAN;
}

static void legacy_target(nd_decoder_target *t, const unsigned char *p, size_t k)
{
    t->idle = legacy_slot(p, k, 0);
    for (int j = 0; j <= ND_DECODER_Q; j++) {
        t->busy[j] = legacy_slot(p, k, 1 + (size_t)j);
        t->volume[j] = legacy_slot(p, k, LEGACY_VOL + (size_t)j);
    }
    for (int j = 0; j < ND_DECODER_LAGS; j++)
        t->acf[j] = legacy_slot(p, k, LEGACY_ACF + (size_t)j);
}

/* 0, or -1 for a filter that is not one of ours. */
static int legacy_map(nd_decoder_map *f, const unsigned char *p)
{
    nd_decoder_target t; /* the same slots up to the filter */
    legacy_target(&t, p, LEGACY_ACF);
    f->threshold = t.idle;
    memcpy(f->busy, t.busy, sizeof f->busy);
    memcpy(f->volume, t.volume, sizeof f->volume);
    float v = legacy_slot(p, LEGACY_SLOTS, LEGACY_ACF);
    f->filter = 0; /* also for NaN: a class that was not fitted */
    if (isnan(v)) return 0;
    if (!(v >= 0.0f && v < (float)NFILTERS && v == floorf(v))) return -1;
    f->filter = (int)v;
    return 0;
}

/* MARG and CALB, both optional (files from before the decoder's maps have neither).
 * Targets of the two oldest layouts load without what came later (no volume map, no
 * filter, until `train --resume` measures them again) and their CALB is left out (the
 * next sample refits it). A CALB of the last layout is kept with its settings when its
 * text is that of the model's current settings, else it is refitted. */
static int read_legacy(nd_decoder *d, uint32_t classes, const ndf_reader *r,
                       const nd_decoder_key *now, nd_error *e)
{
    size_t rows = (size_t)classes * d->C, k = LEGACY_SLOTS; /* floats per row in the file */
    const unsigned char *p;
    const void *data;
    size_t len;
    const char *path = ndf_path(r);
    if (ndf_find(r, TAG_MARG, &data, &len, NULL)) return 0;
    p = data;
    if (len == 4 + 4 * rows * LEGACY_VOL) k = LEGACY_VOL;
    if (len == 4 + 4 * rows * LEGACY_ACF) k = LEGACY_ACF;
    if (len != 4 + 4 * rows * k)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section MARG holds %zu bytes, expected %zu "
                            "(%zu floats)",
                            path, len, 4 + 4 * rows * k, rows * k);
    if (nd_get_u32(p) != ND_DECODER_Q)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section MARG has %u quantiles, this build "
                            "reads %d",
                            path, nd_get_u32(p), ND_DECODER_Q);
    for (size_t i = 0; i < rows; i++) legacy_target(&d->target[i], p + 4 + 4 * i * k, k);
    if (k != LEGACY_SLOTS || ndf_find(r, TAG_CALB, &data, &len, NULL)) return 0;
    p = data;
    size_t hdr = 16 + LEGACY_KEY;
    if (len != hdr + 4 * rows * LEGACY_SLOTS)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section CALB holds %zu bytes, expected %zu "
                            "(%zu floats)",
                            path, len, hdr + 4 * rows * LEGACY_SLOTS, rows * LEGACY_SLOTS);
    if (nd_get_u32(p) != ND_DECODER_Q || !nd_get_u32(p + 4) || p[hdr - 1])
        return nd_error_set(e, ND_EFORMAT, "%s: section CALB: bad header", path);
    for (size_t i = 0; i < rows; i++)
        if (legacy_map(&d->map[i], p + hdr + 4 * i * LEGACY_SLOTS))
            return nd_error_set(e, ND_EFORMAT,
                                "%s: section CALB: bad score filter of class "
                                "%zu",
                                path, i / d->C);
    char text[LEGACY_KEY];
    key_text(now, text, sizeof text);
    d->key = *now;
    if (strcmp(text, (const char *)p + 16)) d->key.revision = 0; /* other settings */
    d->key.windows = nd_get_u32(p + 4);
    d->key.step = nd_get_u64(p + 8);
    return 0;
}

int nd_decoder_read(nd_decoder *d, uint32_t classes, const ndf_reader *r,
                    const nd_decoder_key *now, nd_error *e)
{
    const void *data;
    size_t len;
    d->key.windows = 0;
    if (!ndf_find(r, TAG_DECO, &data, &len, NULL))
        return read_deco(d, classes, data, len, ndf_path(r), e);
    return read_legacy(d, classes, r, now, e);
}

void nd_decoder_inspect(const ndf_reader *r, FILE *out)
{
    const void *data;
    size_t len;
    char text[LEGACY_KEY] = "";
    uint32_t windows = 0;
    uint64_t step = 0;
    if (!ndf_find(r, TAG_DECO, &data, &len, NULL) && len >= DECO_HEADER) {
        const unsigned char *p = data;
        uint32_t h[8];
        nd_decoder_key k;
        read_header(&p, h, &k);
        if (h[0] == DECO_VERSION) {
            windows = k.windows;
            step = k.step;
            key_text(&k, text, sizeof text);
        }
    } else if (!ndf_find(r, TAG_CALB, &data, &len, NULL) && len >= 16 + LEGACY_KEY &&
               !((const unsigned char *)data)[16 + LEGACY_KEY - 1]) {
        windows = nd_get_u32((const unsigned char *)data + 4);
        step = nd_get_u64((const unsigned char *)data + 8);
        memcpy(text, (const char *)data + 16, LEGACY_KEY);
    }
    if (windows)
        fprintf(out, "decode calibration: %u windows per class at step %llu (%s)\n", windows,
                (unsigned long long)step, text);
    else
        fprintf(out, "decode calibration: none stored (sample fits one when "
                     "sample.calibrate is on)\n");
}
