/*
 * decode.c — the decoder (docs/MODEL.md, "Decoder"): the last step from a sampled GAF
 * image's decoded series to raw bytes per bin, fitted once per model step and sampling
 * setting; and a model's decoder as a whole (model_impl.h): its targets and maps per
 * class and channel, what the maps were fitted for, and its section of the model file.
 *
 * A small diffusion model trained on a CPU budget ranks bins well (which bins are idle,
 * which are busier than others) but gets the levels wrong: it under-produces idle bins
 * (its activity images rarely reach the idle value, so a fixed halfway threshold keeps
 * most bins busy) and its busy values are too smooth. Per class and channel, monotone
 * corrections fix the levels and keep the model's ranking:
 *   - the activity threshold is set per bin position: at position i, the quantile of the
 *     model's activity scores at positions i-2..i+2 (pooled over the calibration
 *     windows, truncated at the window's edges) that makes the share of idle bins at i
 *     that of the training windows at exactly i (idle_at; not pooled, since real windows
 *     change sharply there: no idle bin at a session's very start). Where
 *     a bin sits in the window matters to real traffic: a video session never idles in
 *     its first bins and idles in 40 % of its last ones, and one threshold for every
 *     position spread the extra idle bins evenly, which gave the windows away. Pooling
 *     five positions keeps each quantile steady on the few dozen windows a fit samples;
 *   - a busy bin's log1p value is mapped through F_train⁻¹(F_model(·)), both CDFs as
 *     ND_DECODER_Q + 1 quantiles (piecewise linear between them), the same map at every
 *     position: a monotone map keeps the model's own differences between positions,
 *     then a level shift per position (shift_at) adds what the position's mean busy
 *     level still misses against the training windows' (level_at) after all maps,
 *     since a position-blind map moves an error at one position with the rest;
 *   - then the window's volume (log1p of the channel's total) goes through the same kind
 *     of map, by scaling the window's bins: the per-bin maps get the levels right but
 *     not how busy whole windows are (the model's windows are too alike in volume), and
 *     a uniform scale keeps the window's shape. Windows whose volume maps to 0 (the
 *     training data has windows with this channel entirely idle) become idle, and those
 *     only: a window the thresholds left entirely idle keeps its most nearly busy bin
 *     before the map;
 *   - last, busy values go through one more quantile map per position (out_at), from the
 *     model's busy values at the position (pooled with two neighbours either side where
 *     few are busy) after the maps above onto the training windows' there, and the window
 *     is scaled back to the volume the volume map gave it: the shifts and the volume
 *     scale move values past the training data's range, and clamping them there (as this
 *     decoder did) piled the largest bins of many windows onto exactly the training
 *     maximum, which a classifier reads at once (a window's largest value was its
 *     strongest feature). The map and the scale keep the order the other maps left and
 *     make no point mass; a value may end above the training maximum, as values of unseen
 *     real windows do. The map is per position because one map for all positions left the
 *     spread of values at a position to the model, whose first bins are far narrower than
 *     real ones (a session's first bin varies over 8 log1p units in the training windows,
 *     under 2 in the model's): compared on the training windows, the bin values at a few
 *     positions were the features that differed most. The output map alone, without the
 *     scale back, moved the volumes further from real than the clamp had.
 * Across channels, the thresholds of each channel alone give every channel its idle
 * share but not the share of bins where the channels idle together, which real traffic
 * has high (a video download's uplink idles where its downlink does: in the training
 * windows of videoTrain 17 % of bins have both idle and 9 % one only; a distilled
 * student's samples through per-channel thresholds, 16 % and 12 %). So each channel's
 * activity score is mixed with the mean of the others' by a weight per class
 * (nd_decoder_fit_class), the one that gives the training windows' share of bins
 * idle in every channel: the channels' idle bins move together without changing either
 * channel's own share.
 * The time structure is left to the model: an earlier decoder also filtered the scores
 * to match the training windows' autocorrelation, and matching that one statistic made
 * the run lengths of idle and busy bins less like real ones.
 * The model side comes from windows the model samples with the settings in use, so the
 * maps belong to one model step and one sampling setting (nd_decoder_key; dm.c refits
 * them when either changes).
 *
 * Model file section DECO (docs/FORMATS.md §3), little-endian:
 *   u32 version (5), Q (64), L, classes K, channels C, windows per class the maps were
 *       fitted on (0: no maps), fit revision, 0;
 *   u64 model step; u32 sampler, steps, clip, projection, decode, 0; f64 guidance, eta
 *       (the key of the maps);
 *   K·C targets (class-major): f32 idle, idle_at[L], level_at[L], busy[Q+1], volume[Q+1],
 *       busy_at[L][QP+1], idle_all;
 *   with windows, K·C maps: f32 threshold_at[L], busy[Q+1], volume[Q+1], shift_at[L],
 *       out_at[L][QP+1], couple.
 * Version 4 did not couple the channels: its targets load without idle_all (the weight
 * stays 0 until `train --resume` measures them again) and its maps are refitted.
 * Version 3 had one output map for all positions (out[Q+1] in the map, no busy_at in the
 * target), version 2 none: their targets load without busy_at (no output map until
 * `train --resume` measures them again) and their maps are refitted.
 * Version 1 (16 in place of L) held one threshold per map, a score filter and the
 * target's autocorrelation; older files hold MARG (targets) and CALB (maps) instead, as
 * slot arrays in three generations. Their targets load with the overall idle share at
 * every position and their maps are not used (the next sample refits them): read_v1 and
 * read_legacy.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "model.h"

/* Rounds of the fit that move the level shifts. */
#define SHIFT_ROUNDS 3

/* Positions either side of a bin whose model scores count for its threshold: a width of
 * 5, so that the few dozen windows of a fit give a steady quantile at every position. */
#define SPAN 2

/* Busy values a position's quantiles (busy_at, out_at) need at the position alone (two
 * per quantile: a videoTrain class has about 100 training windows, and asking for more
 * pooled every position of its targets), and pooled with its neighbours; fewer: none. */
#define MIN_EXACT  (2 * ND_DECODER_QP)
#define MIN_POOLED 16

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* q (nq+1): quantiles of v (n > 0, sorted in place) at k/nq, linear between order
 * statistics. */
static void quantiles_n(float *q, int nq, float *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_float);
    for (int k = 0; k <= nq; k++) {
        double pos = (double)k / nq * (double)(n - 1);
        size_t i = (size_t)pos;
        double f = pos - (double)i;
        q[k] = i + 1 < n ? (float)((1.0 - f) * v[i] + f * v[i + 1]) : v[n - 1];
    }
}

static void quantiles(float *q, float *v, size_t n) { quantiles_n(q, ND_DECODER_Q, v, n); }

/* The map through nq+1 quantiles qm (the model's) onto qt (the target's) at l, piecewise
 * linear, clamped to the target's ends outside the model's range. */
static float qmap_n(const float *qm, const float *qt, int nq, float l)
{
    if (l <= qm[0]) return qt[0];
    if (l >= qm[nq]) return qt[nq];
    int lo = 0, hi = nq; /* qm[lo] <= l < qm[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (qm[mid] <= l) lo = mid;
        else hi = mid;
    }
    float span = qm[hi] - qm[lo], f = span > 0.0f ? (l - qm[lo]) / span : 0.0f;
    return qt[lo] + f * (qt[hi] - qt[lo]);
}

static float qmap(const float *qm, const float *qt, float l)
{
    return qmap_n(qm, qt, ND_DECODER_Q, l);
}

static float sum(const float *x, int L)
{
    double s = 0.0;
    for (int i = 0; i < L; i++) s += x[i];
    return (float)s;
}

/* The positions that count for position i: [*lo, *hi], truncated at the edges. */
static void neighbours(int i, int L, int *lo, int *hi)
{
    *lo = i - SPAN < 0 ? 0 : i - SPAN;
    *hi = i + SPAN >= L ? L - 1 : i + SPAN;
}

/* q (QP+1): the log1p quantiles of the busy values (> 0) of n windows x (row stride
 * `stride`) at position i alone when MIN_EXACT of them are busy there, else pooled with
 * its neighbours (NaN when fewer than MIN_POOLED are busy). Pooling steadies the
 * quantiles of a fit on a few dozen windows, but a session's start changes within a bin
 * or two: position 0 pooled with 1 and 2 took their spread. pool: room for
 * n·(2·SPAN+1) floats. */
static void pooled_quantiles(float *q, const float *x, size_t n, size_t stride, int L, int i,
                             float *pool)
{
    int lo, hi;
    neighbours(i, L, &lo, &hi);
    size_t m = 0;
    for (size_t w = 0; w < n; w++) {
        float v = x[w * stride + (size_t)i];
        if (v > 0.0f) pool[m++] = log1pf(v);
    }
    if (m < MIN_EXACT) {
        m = 0;
        for (size_t w = 0; w < n; w++)
            for (int j = lo; j <= hi; j++) {
                float v = x[w * stride + (size_t)j];
                if (v > 0.0f) pool[m++] = log1pf(v);
            }
    }
    if (m < MIN_POOLED)
        for (int k = 0; k <= ND_DECODER_QP; k++) q[k] = NAN;
    else quantiles_n(q, ND_DECODER_QP, pool, m);
}

/* share (L): the share of idle bins (x not above 0) at each position of n windows x
 * (row stride `stride`). */
static void idle_shares(double *share, const float *x, size_t n, size_t stride, int L)
{
    ND_ASSERT(L <= ND_MODEL_MAX_L);
    for (int i = 0; i < L; i++) share[i] = 0.0;
    for (size_t w = 0; w < n; w++)
        for (int i = 0; i < L; i++) share[i] += !(x[w * stride + (size_t)i] > 0.0f);
    for (int i = 0; i < L; i++) share[i] /= (double)n;
}

/* level (L): the mean log1p of the busy bins at each position of n windows x (row stride
 * `stride`); NaN where none is busy. */
static void levels(float *level, const float *x, size_t n, size_t stride, int L)
{
    for (int i = 0; i < L; i++) {
        double sum = 0.0;
        size_t busy = 0;
        for (size_t w = 0; w < n; w++) {
            float v = x[w * stride + (size_t)i];
            if (v > 0.0f) sum += log1p(v), busy++;
        }
        level[i] = busy ? (float)(sum / (double)busy) : NAN;
    }
}

/* Bins (window w < n, position i < L) idle (not above 0) in every one of C channels of x,
 * bin (c, w, i) at c·cs + w·ws + i. */
static size_t idle_everywhere(const float *x, size_t n, int L, int C, size_t cs, size_t ws)
{
    size_t all = 0;
    for (size_t w = 0; w < n; w++)
        for (int i = 0; i < L; i++) {
            int c = 0;
            while (c < C && !(x[(size_t)c * cs + w * ws + (size_t)i] > 0.0f)) c++;
            all += c == C;
        }
    return all;
}

static void map_clear(nd_decoder_map *f)
{
    for (int i = 0; i < ND_MODEL_MAX_L; i++) f->threshold_at[i] = NAN, f->shift_at[i] = 0.0f;
    for (int k = 0; k <= ND_DECODER_Q; k++) f->busy[k] = f->volume[k] = NAN;
    for (int i = 0; i < ND_MODEL_MAX_L; i++)
        for (int k = 0; k <= ND_DECODER_QP; k++) f->out_at[i][k] = NAN;
    f->couple = 0.0f;
}

static void target_clear(nd_decoder_target *t)
{
    t->idle = t->idle_all = NAN;
    for (int i = 0; i < ND_MODEL_MAX_L; i++) t->idle_at[i] = t->level_at[i] = NAN;
    for (int k = 0; k <= ND_DECODER_Q; k++) t->busy[k] = t->volume[k] = NAN;
    for (int i = 0; i < ND_MODEL_MAX_L; i++)
        for (int k = 0; k <= ND_DECODER_QP; k++) t->busy_at[i][k] = NAN;
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
    t->idle_all = (float)idle_everywhere(x, n, L, C, (size_t)L, (size_t)C * L) / (float)total;
    double share[ND_MODEL_MAX_L];
    idle_shares(share, x + (size_t)c * L, n, (size_t)C * L, L);
    for (int i = 0; i < L; i++) t->idle_at[i] = (float)share[i];
    levels(t->level_at, x + (size_t)c * L, n, (size_t)C * L, L);
    if (busy) quantiles(t->busy, scratch, busy);
    for (size_t k = 0; k < n; k++) scratch[k] = log1pf(sum(x + (k * C + c) * L, L));
    quantiles(t->volume, scratch, n);
    for (int i = 0; i < L; i++)
        pooled_quantiles(t->busy_at[i], x + (size_t)c * L, n, (size_t)C * L, L, i, scratch);
}

/* The thresholds for idle shares s (L): at position i, halfway between the last idle and
 * the first busy of the n windows' scores at i's neighbours, pooled and sorted, when a
 * share s[i] of them is idle; outside the score range when all (or none) are. pool: room
 * for n·L floats. */
static void fit_thresholds(nd_decoder_map *f, const double *s, const float *score, size_t n,
                           int L, float *pool)
{
    for (int i = 0; i < L; i++) {
        int lo, hi;
        neighbours(i, L, &lo, &hi);
        size_t m = 0;
        for (size_t w = 0; w < n; w++)
            for (int j = lo; j <= hi; j++) pool[m++] = score[w * L + (size_t)j];
        qsort(pool, m, sizeof *pool, cmp_float);
        size_t idle = s[i] <= 0.0 ? 0 : (size_t)lround(s[i] * (double)m);
        f->threshold_at[i] = idle == 0   ? -INFINITY
                             : idle >= m ? INFINITY
                                         : 0.5f * (pool[idle - 1] + pool[idle]);
    }
}

/* The busy-value map: quantiles of the log1p values of the bins the thresholds keep
 * busy, at every position alike. scratch: n·L floats. */
static void fit_busy(nd_decoder_map *f, const nd_decoder_target *t, const float *score,
                     const float *lval, size_t n, int L, float *scratch)
{
    for (int k = 0; k <= ND_DECODER_Q; k++) f->busy[k] = NAN;
    size_t busy = 0;
    for (size_t w = 0; w < n; w++)
        for (int i = 0; i < L; i++)
            if (score[w * L + i] > f->threshold_at[i]) scratch[busy++] = lval[w * L + i];
    if (busy && isfinite(t->busy[0])) quantiles(f->busy, scratch, busy);
}

/* A busy bin's raw value at position i from its uncalibrated log1p value l: the busy map,
 * then the position's level shift. Not clamped to the target's range: a clamp puts every
 * value beyond it on one value, the window maxima most of all, and that point mass was
 * the discriminator's strongest feature; the output map (out_value) brings the values
 * back to the target's distribution, in order. Below the target's smallest busy value b
 * the shifted value goes smoothly towards 0 (b·exp((v−b)/b): continuous, increasing,
 * never idle). */
static float busy_value(const nd_decoder_map *f, const nd_decoder_target *t, int i, float l)
{
    if (!isfinite(f->busy[0])) return expm1f(l); /* no busy bin in the model's samples */
    float v = qmap(f->busy, t->busy, l) + f->shift_at[i], b = t->busy[0];
    if (v < b) v = b > 0.0f ? b * expf((v - b) / b) : 0.0f;
    return fmaxf(expm1f(v), FLT_MIN);
}

/* The volume map on one window's channel x (L raw values from nd_decoder_bin), in place:
 * one scale for every bin (a window whose volume maps to 0 becomes idle). Returns the
 * window's new volume, NaN where no map applies. */
static float volume(const nd_decoder_map *f, const nd_decoder_target *t, float *x, int L)
{
    float total = sum(x, L);
    if (!(total > 0.0f) || !isfinite(f->volume[0]) || !isfinite(t->volume[0])) return NAN;
    float want = expm1f(qmap(f->volume, t->volume, log1pf(total))), g = want / total;
    for (int i = 0; i < L; i++)
        if (x[i] > 0.0f) x[i] = g == 0.0f ? 0.0f : fmaxf(x[i] * g, FLT_MIN);
    return want;
}

/* x (L) scaled to the volume `want` (NaN: left as it is). */
static void rescale(float *x, int L, float want)
{
    float total = sum(x, L);
    if (!(total > 0.0f) || !(want > 0.0f)) return;
    for (int i = 0; i < L; i++) x[i] *= want / total;
}

/* The output map on one window's channel x (L raw values after the volume map), in
 * place: at position i, each busy bin's log1p value through F_train⁻¹(F_out(·)), both
 * the busy values at i (pooled with its neighbours where few are busy; F_out: the
 * model's windows after the volume map), so that busy values have the training data's
 * distribution at their position, its top included, in the order the other maps left
 * them (the caller then scales the window back to its volume: rescale). Positions
 * without either side's quantiles pass unmapped. */
static void out_value(const nd_decoder_map *f, const nd_decoder_target *t, float *x, int L)
{
    for (int i = 0; i < L; i++)
        if (x[i] > 0.0f && isfinite(f->out_at[i][0]) && isfinite(t->busy_at[i][0]))
            x[i] =
                fmaxf(expm1f(qmap_n(f->out_at[i], t->busy_at[i], ND_DECODER_QP, log1pf(x[i]))),
                      FLT_MIN);
}

/* The output map's quantiles from n windows x (n·L, after the volume map); pool: n·L
 * floats. */
static void fit_out(nd_decoder_map *f, const float *x, size_t n, int L, float *pool)
{
    for (int i = 0; i < L; i++) pooled_quantiles(f->out_at[i], x, n, (size_t)L, L, i, pool);
}

/* A channel the thresholds left entirely idle keeps its most nearly busy bin (the one
 * whose score is least far below its position's threshold; never one at a position the
 * training windows always idle), so that the volume map (below) alone decides which
 * windows are idle, as many as the training data has (the smallest): as the model
 * trains, its activity gets sharper and the thresholds alone leave far more windows idle
 * than the data has (3-4x in live's web-tls), or some in classes that never have one.
 * Targets from before the volume map: no revive. */
static void revive(const nd_decoder_map *f, const nd_decoder_target *t, float *x,
                   const float *score, const float *lval, int L)
{
    if (!isfinite(t->volume[0])) return;
    int top = -1;
    float best = -INFINITY;
    for (int i = 0; i < L; i++) {
        if (x[i] > 0.0f) return;
        float margin = score[i] - f->threshold_at[i];
        if (f->threshold_at[i] < INFINITY && (top < 0 || margin > best)) top = i, best = margin;
    }
    if (top >= 0) x[top] = busy_value(f, t, top, lval[top]);
}

/* Thresholds and maps (f) for target t, and in x (n·L) the n windows after all maps;
 * vol: room for n floats, pool: n·L. */
static void fit_maps(nd_decoder_map *f, const nd_decoder_target *t, const float *score,
                     const float *lval, size_t n, int L, float *x, float *vol, float *pool)
{
    double s[ND_MODEL_MAX_L], before[ND_MODEL_MAX_L], after[ND_MODEL_MAX_L];
    float got[ND_MODEL_MAX_L];
    for (int i = 0; i < L; i++) s[i] = t->idle_at[i];
    /* The revive and the volume map move the idle share at each position after the
     * thresholds (whole windows become idle, or keep a bin), so the thresholds aim at the
     * rest: a few rounds of setting each position's share to the target's minus what the
     * later maps added there. The same rounds set each position's level shift: the busy
     * and volume maps are the same at every position, so where the model's level is off
     * at one position only (a session's first bin, say) they move it with the rest; the
     * shift adds what the position still misses after the volume map (which then sees
     * the shifted windows). A shift needs a few busy bins to be measured. The shifts
     * settle in SHIFT_ROUNDS rounds, the idle shares in the rounds after them (each
     * moves the other; fitting both in every round converges slowly). */
    for (int round = 0; round < SHIFT_ROUNDS + 4; round++) {
        fit_thresholds(f, s, score, n, L, x);
        fit_busy(f, t, score, lval, n, L, x);
        for (size_t w = 0; w < n; w++)
            for (int i = 0; i < L; i++)
                x[w * L + i] = nd_decoder_bin(f, t, i, score[w * L + i], lval[w * L + i]);
        if (!isfinite(t->volume[0])) break; /* targets from before the volume map */
        idle_shares(before, x, n, (size_t)L, L);
        for (size_t w = 0; w < n; w++) revive(f, t, x + w * L, score + w * L, lval + w * L, L);
        for (size_t w = 0; w < n; w++) vol[w] = log1pf(sum(x + w * L, L));
        quantiles(f->volume, vol, n);
        for (size_t w = 0; w < n; w++) vol[w] = volume(f, t, x + w * L, L);
        fit_out(f, x, n, L, pool);
        for (size_t w = 0; w < n; w++) {
            out_value(f, t, x + w * L, L);
            rescale(x + w * L, L, vol[w]);
        }
        idle_shares(after, x, n, (size_t)L, L);
        double moved = 0.0, lifted = 0.0;
        for (int i = 0; i < L; i++) {
            double want = fmin(fmax(t->idle_at[i] - (after[i] - before[i]), 0.0), 1.0);
            moved = fmax(moved, fabs(want - s[i]));
            s[i] = want;
        }
        levels(got, x, n, (size_t)L, L);
        for (int i = 0; i < L && round < SHIFT_ROUNDS; i++) {
            size_t busy = 0;
            for (size_t w = 0; w < n; w++) busy += x[w * L + (size_t)i] > 0.0f;
            if (busy < 8 || !isfinite(got[i]) || !isfinite(t->level_at[i])) continue;
            float d = t->level_at[i] - got[i];
            f->shift_at[i] += d;
            lifted = fmax(lifted, fabs(d));
        }
        /* less than half a bin's idle share and 0.05 of log1p level at any position */
        if (moved * (double)n < 0.5 && lifted < 0.05) break;
    }
}

void nd_decoder_fit(nd_decoder_map *f, const nd_decoder_target *t, const float *score,
                    const float *lval, size_t n, int L, float *scratch)
{
    map_clear(f);
    if (!n || !isfinite(t->idle)) return;
    ND_ASSERT(L <= ND_MODEL_MAX_L);
    fit_maps(f, t, score, lval, n, L, scratch, scratch + n * (size_t)L,
             scratch + n * (size_t)L + n);
}

float nd_decoder_bin(const nd_decoder_map *f, const nd_decoder_target *t, int i, float score,
                     float l)
{
    return score > f->threshold_at[i] ? busy_value(f, t, i, l) : 0.0f;
}

void nd_decoder_window(const nd_decoder_map *f, const nd_decoder_target *t, float *x,
                       const float *score, const float *lval, int L)
{
    for (int i = 0; i < L; i++) x[i] = nd_decoder_bin(f, t, i, score[i], lval[i]);
    revive(f, t, x, score, lval, L);
    float want = volume(f, t, x, L);
    out_value(f, t, x, L);
    rescale(x, L, want);
}

/* ---- the channels of a class together ---------------------------------------------- */

/* out (m): channel c's scores of score (C, m) mixed with the mean of the other channels'
 * by weight a. */
static void mix_scores(float *out, const float *score, int C, size_t m, int c, float a)
{
    for (size_t j = 0; j < m; j++) {
        float others = 0.0f;
        for (int o = 0; o < C; o++)
            if (o != c) others += score[(size_t)o * m + j];
        out[j] = C > 1 ? (1.0f - a) * score[(size_t)c * m + j] + a * others / (float)(C - 1)
                       : score[(size_t)c * m + j];
    }
}

/* The maps f (C) fitted with weight a, and the share of the n windows' bins where every
 * channel is idle after them. scratch as nd_decoder_fit_class's. */
static double fit_coupled(nd_decoder_map *f, const nd_decoder_target *t, int C,
                          const float *score, const float *lval, size_t n, int L, float a,
                          float *scratch)
{
    size_t nb = n * (size_t)L;
    float *mixed = scratch, *x = mixed + nb, *fit = x + (size_t)C * nb;
    for (int c = 0; c < C; c++) {
        mix_scores(mixed, score, C, nb, c, a);
        nd_decoder_fit(&f[c], &t[c], mixed, lval + (size_t)c * nb, n, L, fit);
        f[c].couple = a;
        for (size_t w = 0; w < n; w++)
            nd_decoder_window(&f[c], &t[c], x + (size_t)c * nb + w * L, mixed + w * L,
                              lval + (size_t)c * nb + w * L, L);
    }
    return nb ? (double)idle_everywhere(x, n, L, C, nb, (size_t)L) / (double)nb : 0.0;
}

/* Bisection steps for the weight: 0.5 / 2^7, under 0.004 (with the fits at 0, at the
 * largest weight and at the end, up to ten fits of a class's maps). */
#define COUPLE_ROUNDS 7

void nd_decoder_fit_class(nd_decoder_map *f, const nd_decoder_target *t, int C,
                          const float *score, const float *lval, size_t n, int L,
                          float *scratch)
{
    double want = t[0].idle_all;
    /* The share rises with the weight: the more a channel's score follows the others',
     * the more its idle bins fall where theirs do. The model's own channels may already
     * agree more than the training windows' (then the weight stays 0: mixing cannot
     * take them apart). */
    double got = fit_coupled(f, t, C, score, lval, n, L, 0.0f, scratch);
    if (C < 2 || !n || !isfinite(want) || got >= want) return;
    float lo = 0.0f, hi = ND_DECODER_MAX_COUPLE;
    if (fit_coupled(f, t, C, score, lval, n, L, hi, scratch) <= want) return;
    for (int r = 0; r < COUPLE_ROUNDS; r++) {
        float mid = 0.5f * (lo + hi);
        if (fit_coupled(f, t, C, score, lval, n, L, mid, scratch) < want) lo = mid;
        else hi = mid;
    }
    fit_coupled(f, t, C, score, lval, n, L, 0.5f * (lo + hi), scratch);
}

void nd_decoder_window_class(const nd_decoder_map *f, const nd_decoder_target *t, int C,
                             float *x, const float *score, const float *lval, int L)
{
    for (int c = 0; c < C; c++) {
        float mixed[ND_MODEL_MAX_L];
        mix_scores(mixed, score, C, (size_t)L, c, f[c].couple);
        nd_decoder_window(&f[c], &t[c], x + (size_t)c * L, mixed, lval + (size_t)c * L, L);
    }
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

/* The key's settings as text, for `inspect`. */
static void key_text(const nd_decoder_key *k, char *buf, size_t len)
{
    snprintf(buf, len,
             "%s %u steps, guidance %g, eta %g, clip %s, projection %s, decode %s, "
             "fit %u",
             nd_sampler_name(k->sampler), k->steps, k->guidance, k->eta, nd_clip_name(k->clip),
             k->project ? "on" : "off", k->decode == ND_GAF_DIAG ? "diag" : "lsq", k->revision);
}

nd_decoder *nd_decoder_new(int rows, int C, int L)
{
    nd_decoder *d = calloc(1, sizeof *d);
    size_t n = (size_t)rows * C;
    if (!d) return NULL;
    ND_ASSERT(L >= 1 && L <= ND_MODEL_MAX_L);
    d->rows = rows;
    d->C = C;
    d->L = L;
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

/* A new alternate's maps (rows × C), or NULL on -ENOMEM. */
static nd_decoder_map *alt_maps(const nd_decoder *d)
{
    return malloc(((size_t)d->rows * d->C + 1) * sizeof(nd_decoder_map));
}

nd_decoder *nd_decoder_copy(const nd_decoder *d)
{
    nd_decoder *c = nd_decoder_new(d->rows, d->C, d->L);
    if (!c) return NULL;
    size_t n = (size_t)d->rows * d->C;
    memcpy(c->target, d->target, n * sizeof *d->target);
    memcpy(c->map, d->map, n * sizeof *d->map);
    c->key = d->key;
    for (int i = 0; i < d->n_alt; i++) {
        if (!(c->alt[i].map = alt_maps(d))) {
            nd_decoder_free(c);
            return NULL;
        }
        memcpy(c->alt[i].map, d->alt[i].map, n * sizeof *d->map);
        c->alt[i].key = d->alt[i].key;
        c->n_alt = i + 1;
    }
    return c;
}

void nd_decoder_free(nd_decoder *d)
{
    if (!d) return;
    for (int i = 0; i < d->n_alt; i++) free(d->alt[i].map);
    free(d->target);
    free(d->map);
    free(d);
}

/* Drops alternate i. */
static void alt_drop(nd_decoder *d, int i)
{
    free(d->alt[i].map);
    memmove(&d->alt[i], &d->alt[i + 1], (size_t)(d->n_alt - i - 1) * sizeof d->alt[0]);
    d->n_alt--;
}

/* A slot for maps of key k among the alternates: the one already holding k's, a free
 * one, or the oldest's (dropped). NULL on -ENOMEM. */
static nd_decoder_alt *alt_slot(nd_decoder *d, const nd_decoder_key *k)
{
    for (int i = 0; i < d->n_alt; i++)
        if (nd_decoder_key_equal(&d->alt[i].key, k)) return &d->alt[i];
    if (d->n_alt == ND_DECODER_ALT) alt_drop(d, 0);
    nd_decoder_alt *a = &d->alt[d->n_alt];
    if (!(a->map = alt_maps(d))) return NULL;
    d->n_alt++;
    return a;
}

int nd_decoder_stash(nd_decoder *d, uint64_t step)
{
    const nd_decoder_key *k = &d->key;
    if (!k->windows || k->step != step || k->revision != ND_DECODER_REVISION) return 0;
    nd_decoder_alt *a = alt_slot(d, k);
    if (!a) return -ENOMEM;
    a->key = *k;
    memcpy(a->map, d->map, (size_t)d->rows * d->C * sizeof *d->map);
    return 0;
}

int nd_decoder_recall(nd_decoder *d, const nd_decoder_key *k)
{
    for (int i = 0; i < d->n_alt; i++) {
        nd_decoder_alt *a = &d->alt[i];
        if (!nd_decoder_key_equal(&a->key, k)) continue;
        nd_decoder_map *m = d->map;
        nd_decoder_key was = d->key;
        d->map = a->map;
        d->key = a->key;
        a->map = m;
        a->key = was;
        if (!was.windows || was.step != k->step) alt_drop(d, i); /* nothing, or stale */
        return 1;
    }
    return 0;
}

#define TAG_DECO     ND_FOURCC('D', 'E', 'C', 'O')
#define TAG_MARG     ND_FOURCC('M', 'A', 'R', 'G')
#define TAG_CALB     ND_FOURCC('C', 'A', 'L', 'B')
#define TAG_DECA     ND_FOURCC('D', 'E', 'C', 'A') /* an alternate's maps */
#define DECO_VERSION 5
#define DECO_HEADER  80 /* bytes before the targets */
#define QUANTILES    (ND_DECODER_Q + 1)
#define QPOS         (ND_DECODER_QP + 1)
#define V1_LAGS      16 /* version 1: the target's autocorrelation at lags 1..16 */
#define V1_TARGET    (4 * (1 + 2 * QUANTILES + V1_LAGS))
#define V1_MAP       (4 * (1 + 2 * QUANTILES) + 4) /* threshold, quantiles, u32 filter */

/* Bytes of one target and of one map in DECO version 2 to 5 (v), for windows of L bins:
 * version 5 couples the channels (the target's idle_all, the map's weight), version 4's
 * output map is per position (QP+1 quantiles at each, and the target's busy_at), version
 * 3's one of Q+1 quantiles, version 2 has none. */
static size_t target_bytes(int L, uint32_t v)
{
    return 4 * (1 + 2 * (size_t)L + 2 * QUANTILES + (v >= 4 ? (size_t)L * QPOS : 0) + (v >= 5));
}
static size_t map_bytes(int L, uint32_t v)
{
    size_t out = v >= 4 ? (size_t)L * QPOS : v == 3 ? QUANTILES : 0;
    return 4 * (2 * (size_t)L + 2 * QUANTILES + out + (v >= 5));
}

/* What DECO version v (2 to 5) holds for `rows` rows of L bins, maps stored or not. */
static size_t deco_bytes(size_t rows, int L, int maps, uint32_t v)
{
    return DECO_HEADER + rows * (target_bytes(L, v) + (maps ? map_bytes(L, v) : 0));
}

static unsigned char *put_floats(unsigned char *p, const float *v, int n)
{
    for (int i = 0; i < n; i++) p = nd_rec_put_f32(p, v[i]);
    return p;
}
static void get_floats(const unsigned char **p, float *v, int n)
{
    for (int i = 0; i < n; i++) v[i] = nd_rec_f32(p);
}

/* A target without positional shares and levels (the older layouts): the overall idle
 * share at every position (NaN beyond L), no level (no shift). */
static void flat_positions(nd_decoder_target *t, int L)
{
    for (int i = 0; i < ND_MODEL_MAX_L; i++) {
        t->idle_at[i] = i < L ? t->idle : NAN;
        t->level_at[i] = NAN;
    }
}

/* DECO's header (DECO_HEADER bytes) for maps of key k. */
static unsigned char *put_header(unsigned char *p, const nd_decoder *d, uint32_t classes,
                                 const nd_decoder_key *k)
{
    uint32_t h[] = {DECO_VERSION,   ND_DECODER_Q, (uint32_t)d->L, classes,
                    (uint32_t)d->C, k->windows,   k->revision,    0};
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) p = nd_rec_put_u32(p, h[i]);
    p = nd_rec_put_u64(p, k->step);
    uint32_t s[] = {(uint32_t)k->sampler, k->steps, (uint32_t)k->clip, (uint32_t)k->project,
                    (uint32_t)k->decode,  0};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) p = nd_rec_put_u32(p, s[i]);
    p = nd_rec_put_f64(p, k->guidance);
    return nd_rec_put_f64(p, k->eta);
}

static unsigned char *put_maps(unsigned char *p, const nd_decoder_map *maps, size_t n, int L)
{
    for (size_t i = 0; i < n; i++) {
        const nd_decoder_map *f = &maps[i];
        p = put_floats(p, f->threshold_at, L);
        p = put_floats(p, f->busy, QUANTILES);
        p = put_floats(p, f->volume, QUANTILES);
        p = put_floats(p, f->shift_at, L);
        p = put_floats(p, &f->out_at[0][0], L * QPOS);
        p = nd_rec_put_f32(p, f->couple);
    }
    return p;
}

/* The DECA sections: the alternates fitted at the current maps' step. */
static int write_alternates(const nd_decoder *d, uint32_t classes, ndf_writer *w, nd_error *e)
{
    size_t n = (size_t)classes * d->C, len = DECO_HEADER + n * map_bytes(d->L, DECO_VERSION);
    int rc = 0;
    for (int i = 0; !rc && i < d->n_alt; i++) {
        const nd_decoder_alt *a = &d->alt[i];
        if (!d->key.windows || a->key.step != d->key.step) continue;
        unsigned char *buf = malloc(len);
        if (!buf) return nd_error_set(e, -ENOMEM, "decoder: out of memory");
        unsigned char *p = put_maps(put_header(buf, d, classes, &a->key), a->map, n, d->L);
        ND_ASSERT((size_t)(p - buf) == len);
        rc = ndf_write_section(w, TAG_DECA, buf, len, e);
        free(buf);
    }
    return rc;
}

int nd_decoder_write(const nd_decoder *d, uint32_t classes, ndf_writer *w, nd_error *e)
{
    const nd_decoder_key *k = &d->key;
    size_t n = (size_t)classes * d->C;
    int L = d->L;
    size_t len = deco_bytes(n, L, k->windows != 0, DECO_VERSION);
    unsigned char *buf = malloc(len), *p = buf;
    if (!buf) return nd_error_set(e, -ENOMEM, "decoder: out of memory");
    p = put_header(p, d, classes, k);
    for (size_t i = 0; i < n; i++) {
        const nd_decoder_target *t = &d->target[i];
        p = nd_rec_put_f32(p, t->idle);
        p = put_floats(p, t->idle_at, L);
        p = put_floats(p, t->level_at, L);
        p = put_floats(p, t->busy, QUANTILES);
        p = put_floats(p, t->volume, QUANTILES);
        p = put_floats(p, &t->busy_at[0][0], L * QPOS);
        p = nd_rec_put_f32(p, t->idle_all);
    }
    if (k->windows) p = put_maps(p, d->map, n, L);
    ND_ASSERT((size_t)(p - buf) == len);
    int rc = ndf_write_section(w, TAG_DECO, buf, len, e);
    free(buf);
    return rc ? rc : write_alternates(d, classes, w, e);
}

/* ---- the values a file may hold --------------------------------------------------- */

/* A table of floats read from a file and the values it may hold: NaN (no data) always,
 * else shares in [0, 1] or log1p values (finite, >= 0), or a finite shift. */
enum range { SHARE, LOG, FINITE };
typedef struct table {
    const char *name;
    const float *v;
    int n;
    enum range range;
} table;

/* 0, or ND_EFORMAT naming section, class, channel, table, position and value of the
 * first value of the n tables outside its range. */
static int check_tables(const table *t, size_t n, const char *path, const char *section,
                        size_t row, int C, nd_error *e)
{
    static const char *const want[] = {"a share in 0..1", "a finite log1p value >= 0",
                                       "finite"};
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < t[k].n; i++) {
            float x = t[k].v[i];
            int ok = isnan(x) || (t[k].range == SHARE ? x >= 0.0f && x <= 1.0f
                                  : t[k].range == LOG ? x >= 0.0f && isfinite(x)
                                                      : isfinite(x));
            if (!ok)
                return nd_error_set(e, ND_EFORMAT,
                                    "%s: section %s: class %zu, channel %zu: %s[%d] is %g, "
                                    "expected NaN or %s",
                                    path, section, row / C, row % C, t[k].name, i, (double)x,
                                    want[t[k].range]);
        }
    return 0;
}

/* Target i (row i of classes x channels) read from section. */
static int check_target(const nd_decoder *d, size_t i, const char *path, const char *section,
                        nd_error *e)
{
    const nd_decoder_target *t = &d->target[i];
    const table tt[] = {
        {"idle", &t->idle, 1, SHARE},          {"idle_at", t->idle_at, d->L, SHARE},
        {"level_at", t->level_at, d->L, LOG},  {"busy", t->busy, QUANTILES, LOG},
        {"volume", t->volume, QUANTILES, LOG}, {"busy_at", &t->busy_at[0][0], d->L * QPOS, LOG},
        {"idle_all", &t->idle_all, 1, SHARE}};
    return check_tables(tt, sizeof tt / sizeof tt[0], path, section, i, d->C, e);
}

/* Map i: its quantiles and shifts (thresholds may be anything: -inf always busy, +inf
 * never, NaN unfitted). */
static int check_map(const nd_decoder *d, const nd_decoder_map *f, size_t i, const char *path,
                     const char *section, nd_error *e)
{
    const table tt[] = {{"map busy", f->busy, QUANTILES, LOG},
                        {"map volume", f->volume, QUANTILES, LOG},
                        {"shift_at", f->shift_at, d->L, FINITE},
                        {"map out_at", &f->out_at[0][0], d->L * QPOS, LOG},
                        {"map couple", &f->couple, 1, SHARE}};
    return check_tables(tt, sizeof tt / sizeof tt[0], path, section, i, d->C, e);
}

/* n maps at *p (DECO_VERSION) into maps, checked. */
static int get_maps(const nd_decoder *d, nd_decoder_map *maps, size_t n,
                    const unsigned char **p, const char *path, const char *section, nd_error *e)
{
    int L = d->L;
    for (size_t i = 0; i < n; i++) {
        nd_decoder_map *f = &maps[i];
        map_clear(f);
        get_floats(p, f->threshold_at, L);
        get_floats(p, f->busy, QUANTILES);
        get_floats(p, f->volume, QUANTILES);
        get_floats(p, f->shift_at, L);
        get_floats(p, &f->out_at[0][0], L * QPOS);
        get_floats(p, &f->couple, 1);
        int rc = check_map(d, f, i, path, section, e);
        if (rc) return rc;
    }
    return 0;
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

/* DECO version 1 after its header (p), h its header words, len the section's: the
 * targets without their autocorrelation; the maps (one threshold per class and channel,
 * and a score filter) are not read, so the next sample refits them. */
static int read_v1(nd_decoder *d, const uint32_t h[8], const unsigned char *p, size_t len,
                   const char *path, nd_error *e)
{
    size_t n = (size_t)h[3] * d->C;
    size_t want = DECO_HEADER + n * V1_TARGET + (h[5] ? n * V1_MAP : 0);
    if (h[1] != ND_DECODER_Q || h[2] != V1_LAGS || len != want)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECO version 1 (%u quantiles, %u lags, %zu bytes) "
                            "does not match the model (%d, %d, %zu)",
                            path, h[1], h[2], len, ND_DECODER_Q, V1_LAGS, want);
    for (size_t i = 0; i < n; i++) {
        nd_decoder_target *t = &d->target[i];
        get_floats(&p, &t->idle, 1);
        get_floats(&p, t->busy, QUANTILES);
        get_floats(&p, t->volume, QUANTILES);
        p += 4 * V1_LAGS;
        flat_positions(t, d->L);
        int rc = check_target(d, i, path, "DECO", e);
        if (rc) return rc;
    }
    d->key.windows = 0;
    return 0;
}

/* The DECO section (data, len) of a file with `classes` classes. */
static int read_deco(nd_decoder *d, uint32_t classes, const unsigned char *p, size_t len,
                     const char *path, nd_error *e)
{
    size_t n = (size_t)classes * d->C;
    int L = d->L;
    if (len < DECO_HEADER)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECO holds %zu bytes, less than its "
                            "header",
                            path, len);
    uint32_t h[8];
    nd_decoder_key *k = &d->key;
    read_header(&p, h, k);
    if (h[0] < 1 || h[0] > DECO_VERSION)
        return nd_error_set(e, ND_EVERSION,
                            "%s: section DECO version %u, this build reads 1 to %d", path, h[0],
                            DECO_VERSION);
    if (h[3] != classes || h[4] != (uint32_t)d->C)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECO has %u classes and %u channels, the model %u "
                            "and %d",
                            path, h[3], h[4], classes, d->C);
    if (h[0] == 1) return read_v1(d, h, p, len, path, e);
    size_t want = deco_bytes(n, L, k->windows != 0, h[0]);
    if (h[1] != ND_DECODER_Q || h[2] != (uint32_t)L || len != want)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECO (%u quantiles, %u bins, %zu bytes) does not "
                            "match the model (%d, %d, %zu)",
                            path, h[1], h[2], len, ND_DECODER_Q, L, want);
    for (size_t i = 0; i < n; i++) {
        nd_decoder_target *t = &d->target[i];
        target_clear(t);
        get_floats(&p, &t->idle, 1);
        get_floats(&p, t->idle_at, L);
        get_floats(&p, t->level_at, L);
        get_floats(&p, t->busy, QUANTILES);
        get_floats(&p, t->volume, QUANTILES);
        if (h[0] >= 4) get_floats(&p, &t->busy_at[0][0], L * QPOS);
        if (h[0] >= 5) get_floats(&p, &t->idle_all, 1);
        int rc = check_target(d, i, path, "DECO", e);
        if (rc) return rc;
    }
    /* maps of an older layout (without the per-position output map or the channels'
     * coupling) are refitted */
    if (h[0] < DECO_VERSION) k->windows = 0;
    return k->windows ? get_maps(d, d->map, n, &p, path, "DECO", e) : 0;
}

/* A DECA section (data, len): an alternate's maps, for the model's `classes` classes. */
static int read_deca(nd_decoder *d, uint32_t classes, const unsigned char *p, size_t len,
                     const char *path, nd_error *e)
{
    size_t n = (size_t)classes * d->C, want = DECO_HEADER + n * map_bytes(d->L, DECO_VERSION);
    uint32_t h[8];
    nd_decoder_key k;
    if (len < DECO_HEADER)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECA holds %zu bytes, less than its "
                            "header",
                            path, len);
    read_header(&p, h, &k);
    /* an older build's alternate: maps of an older layout are refitted, not used */
    if (h[0] >= 4 && h[0] < DECO_VERSION) return 0;
    if (h[0] != DECO_VERSION || h[1] != ND_DECODER_Q || h[2] != (uint32_t)d->L ||
        h[3] != classes || h[4] != (uint32_t)d->C || !k.windows || len != want)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DECA (version %u, %u quantiles, %u bins, %u classes, "
                            "%u channels, %u windows, %zu bytes) does not match the model "
                            "(%d, %d, %d, %u, %d, > 0, %zu)",
                            path, h[0], h[1], h[2], h[3], h[4], k.windows, len, DECO_VERSION,
                            ND_DECODER_Q, d->L, classes, d->C, want);
    nd_decoder_alt *a = d->n_alt < ND_DECODER_ALT ? alt_slot(d, &k) : NULL;
    if (!a)
        return d->n_alt < ND_DECODER_ALT ? nd_error_set(e, -ENOMEM, "%s: out of memory", path)
                                         : 0; /* more than this build keeps */
    a->key = k;
    int rc = get_maps(d, a->map, n, &p, path, "DECA", e);
    if (rc) alt_drop(d, (int)(a - d->alt));
    return rc;
}

/* Older files: targets (MARG) as slot arrays of LEGACY_SLOTS floats per class and
 * channel: [0] the idle share, [1..Q+1] busy quantiles, [LEGACY_VOL..] volume quantiles,
 * [LEGACY_ACF..] the autocorrelation at lags 1..16 (not used). Files from before the
 * volume map hold LEGACY_VOL floats per row, files from before the score filter
 * LEGACY_ACF. Their maps (CALB) are not read: the next sample refits them. */
#define LEGACY_VOL   (ND_DECODER_Q + 2)
#define LEGACY_ACF   (2 * ND_DECODER_Q + 3)
#define LEGACY_SLOTS (LEGACY_ACF + V1_LAGS)

/* slot[i] of a row of k floats at p, NaN beyond k. */
static float legacy_slot(const unsigned char *p, size_t k, size_t i)
{
    return i < k ? nd_get_f32(p + 4 * i) : NAN;
}

static void legacy_target(nd_decoder_target *t, const unsigned char *p, size_t k, int L)
{
    t->idle = legacy_slot(p, k, 0);
    for (int j = 0; j <= ND_DECODER_Q; j++) {
        t->busy[j] = legacy_slot(p, k, 1 + (size_t)j);
        t->volume[j] = legacy_slot(p, k, LEGACY_VOL + (size_t)j);
    }
    flat_positions(t, L);
}

/* MARG, optional (files from before the decoder's maps have none). Targets of the two
 * oldest layouts load without what came later (no volume map until `train --resume`
 * measures them again). */
static int read_legacy(nd_decoder *d, uint32_t classes, const ndf_reader *r, nd_error *e)
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
    for (size_t i = 0; i < rows; i++) {
        legacy_target(&d->target[i], p + 4 + 4 * i * k, k, d->L);
        int rc = check_target(d, i, path, "MARG", e);
        if (rc) return rc;
    }
    return 0;
}

int nd_decoder_read(nd_decoder *d, uint32_t classes, const ndf_reader *r, nd_error *e)
{
    const void *data;
    size_t len;
    d->key.windows = 0;
    if (ndf_find(r, TAG_DECO, &data, &len, NULL)) return read_legacy(d, classes, r, e);
    int rc = read_deco(d, classes, data, len, ndf_path(r), e);
    for (size_t i = 0; !rc && i < ndf_section_count(r); i++) {
        uint32_t tag;
        ndf_section_at(r, i, &tag, &data, &len);
        if (tag == TAG_DECA) rc = read_deca(d, classes, data, len, ndf_path(r), e);
    }
    return rc;
}

/* Rows of thresholds `inspect` lists; more are counted. */
#define INSPECT_ROWS 8

/* The thresholds of a DECO section of this version with maps (p after the header, h its
 * header words, len the section's), per class and channel: the first and last three
 * positions, and the weight of the other channels in its activity score. */
static void inspect_thresholds(const unsigned char *p, const uint32_t h[8], size_t len,
                               FILE *out)
{
    size_t rows = (size_t)h[3] * h[4];
    int L = (int)h[2];
    if (L < 1 || L > ND_MODEL_MAX_L || len != deco_bytes(rows, L, 1, DECO_VERSION)) return;
    p += rows * target_bytes(L, DECO_VERSION);
    fprintf(out, "activity thresholds per bin position (first and last 3 of %d):\n", L);
    for (size_t i = 0; i < rows && i < INSPECT_ROWS; i++) {
        const unsigned char *m = p + i * map_bytes(L, DECO_VERSION);
        fprintf(out, "  class %zu, channel %zu:", i / h[4], i % h[4]);
        for (int j = 0; j < L; j++) {
            if (L > 6 && j == 3) {
                fprintf(out, " ...");
                j = L - 3;
            }
            fprintf(out, " %.3g", nd_get_f32(m + 4 * (size_t)j));
        }
        fprintf(out, "; coupled %.3g\n", nd_get_f32(m + map_bytes(L, DECO_VERSION) - 4));
    }
    if (rows > INSPECT_ROWS) fprintf(out, "  (%zu more)\n", rows - INSPECT_ROWS);
}

void nd_decoder_inspect(const ndf_reader *r, FILE *out)
{
    const void *data;
    size_t len;
    if (!ndf_find(r, TAG_DECO, &data, &len, NULL) && len >= DECO_HEADER) {
        const unsigned char *p = data;
        uint32_t h[8];
        nd_decoder_key k;
        char text[256];
        read_header(&p, h, &k);
        if (h[0] == DECO_VERSION && k.windows && h[4]) {
            key_text(&k, text, sizeof text);
            fprintf(out, "decode calibration: %u windows per class at step %llu (%s)\n",
                    k.windows, (unsigned long long)k.step, text);
            inspect_thresholds(p, h, len, out);
            for (size_t i = 0; i < ndf_section_count(r); i++) {
                uint32_t tag;
                const void *ad;
                size_t al;
                ndf_section_at(r, i, &tag, &ad, &al);
                if (tag != TAG_DECA || al < DECO_HEADER) continue;
                const unsigned char *q = ad;
                read_header(&q, h, &k);
                key_text(&k, text, sizeof text);
                fprintf(out,
                        "  also fitted, for other sampling settings: %u windows per class "
                        "(%s)\n",
                        k.windows, text);
            }
            return;
        }
        if (h[0] < DECO_VERSION && k.windows) {
            fprintf(out,
                    "decode calibration: stored by an older build (DECO version %u, %s); "
                    "sample refits it\n",
                    h[0],
                    h[0] == 1   ? "one threshold per class and channel"
                    : h[0] == 2 ? "no output map"
                    : h[0] == 3 ? "one output map for all positions"
                                : "channels not coupled");
            if (h[0] == 4 && h[4] > 1)
                fprintf(out, "  (its channels stay uncoupled until `train --resume` measures "
                             "the training windows again)\n");
            return;
        }
    } else if (!ndf_find(r, TAG_CALB, &data, &len, NULL)) {
        fprintf(out, "decode calibration: stored by an older build (CALB); sample refits "
                     "it\n");
        return;
    }
    fprintf(out, "decode calibration: none stored (sample fits one when "
                 "sample.calibrate is on)\n");
}
