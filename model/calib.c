/*
 * calib.c — decode calibration (docs/FIDELITY.md): the last step from a
 * sampled GAF image to raw bytes per bin, fitted once per model and sampler setting.
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
 *     ND_CAL_Q + 1 quantiles (piecewise linear between them);
 *   - then the window's volume (log1p of the channel's total) goes through the same kind
 *     of map, by scaling the window's bins: the per-bin maps get the levels right but
 *     not how busy whole windows are (the model's windows are too alike in volume), and
 *     a uniform scale keeps the window's shape (busy bins are kept within the training
 *     data's range of busy values). Windows whose volume maps to 0 (the training data
 *     has windows with this channel entirely idle) become idle, and those only: a window
 *     the threshold left entirely idle keeps its highest-scoring bin busy before the map.
 *   - the scores go through a filter before the threshold, the one of a small family
 *     (none; Gaussian dither; sharpening against the neighbours; moving averages) that
 *     gives the calibrated windows the training data's autocorrelation. The threshold
 *     usually has to make more bins idle than the model did, and which bins it picks
 *     decides the time structure: the lowest raw scores are those next to the model's
 *     idle bins, which lengthens idle runs (videoTrain's dense windows: a dither or
 *     sharpening breaks them up), while in sparse traffic bursts are runs of busy bins
 *     and a moving average keeps them together.
 * The model side comes from windows the model samples with the settings in use, so the
 * map belongs to one model step and one sampler setting (dm.c keeps it fresh).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    for (int k = 0; k <= ND_CAL_Q; k++) {
        double pos = (double)k / ND_CAL_Q * (double)(n - 1);
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
    if (l >= qm[ND_CAL_Q]) return qt[ND_CAL_Q];
    int lo = 0, hi = ND_CAL_Q; /* qm[lo] <= l < qm[hi] */
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
    {.dither = 0.01f}, {.dither = 0.02f}, {.dither = 0.04f}, {.dither = 0.08f},
    {.sharpen = 1}, {.sharpen = 2},
    {.weight = 1, .width = 3}, {.weight = 0.5f, .width = 5}, {.weight = 1, .width = 5},
    {.weight = 0.5f, .width = 9}, {.weight = 1, .width = 9},
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
            s[i] = (1.0f - filters[f].weight) * in[i] + filters[f].weight * m / (float)(2 * h + 1);
        }
    }
}

static int lags(int L) { return L / 4 < ND_CAL_LAGS ? L / 4 : ND_CAL_LAGS; }

/* What the score filter is chosen to match: the time structure of n windows x (n rows
 * of L raw values, row stride `stride`), as the mean over windows of the autocorrelation
 * of log1p values at lags 1..K (a window with no variance adds 0). The decoder's own
 * target, so that the figures of `eval` stay a measurement it was not fitted to. */
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

void nd_cal_target(float *t, const float *x, size_t n, int C, int L, int c, float *scratch)
{
    size_t busy = 0, total = n * (size_t)L;
    for (size_t k = 0; k < n; k++) {
        const float *row = x + (k * C + c) * L;
        for (int i = 0; i < L; i++)
            if (row[i] > 0.0f) scratch[busy++] = log1pf(row[i]);
    }
    for (int k = 0; k < ND_CAL_SLOTS; k++) t[k] = NAN;
    if (!total) return;
    t[0] = (float)(total - busy) / (float)total;
    if (busy) quantiles(t + 1, scratch, busy);
    for (size_t k = 0; k < n; k++) scratch[k] = log1pf(sum(x + (k * C + c) * L, L));
    quantiles(t + ND_CAL_VOL, scratch, n);
    double acf[ND_CAL_LAGS];
    time_structure(acf, x + (size_t)c * L, n, (size_t)C * L, L, lags(L));
    for (int k = 0; k < lags(L); k++) t[ND_CAL_ACF + k] = (float)acf[k];
}

/* The per-bin part of the fit for a share s of idle bins: threshold and busy quantiles. */
static void fit_bins(float *cal, const float *t, double s, const float *score,
                     const float *lval, size_t nb, float *scratch)
{
    for (size_t i = 0; i < nb; i++) scratch[i] = score[i];
    qsort(scratch, nb, sizeof *scratch, cmp_float);
    size_t idle = s <= 0.0 ? 0 : (size_t)lround(s * (double)nb);
    /* halfway between the last idle and the first busy score; outside the score range
     * when every bin (or none) is idle */
    cal[0] = idle == 0 ? -INFINITY : idle >= nb ? INFINITY
                                                : 0.5f * (scratch[idle - 1] + scratch[idle]);
    for (int k = 1; k < ND_CAL_VOL; k++) cal[k] = NAN;
    size_t busy = 0;
    for (size_t i = 0; i < nb; i++)
        if (score[i] > cal[0]) scratch[busy++] = lval[i];
    if (busy && isfinite(t[1])) quantiles(cal + 1, scratch, busy);
}

/* The volume map on one window's channel x (L raw values from nd_cal_apply), in place:
 * one scale for every bin, busy bins clamped to the target's range of busy values. */
static void volume(const float *cal, const float *t, float *x, int L)
{
    float total = sum(x, L);
    if (!(total > 0.0f) || !isfinite(cal[ND_CAL_VOL]) || !isfinite(t[ND_CAL_VOL])) return;
    float f = expm1f(qmap(cal + ND_CAL_VOL, t + ND_CAL_VOL, log1pf(total))) / total;
    /* busy bins stay within the training data's range of busy values: in sparse traffic
     * a window the model made with too many busy bins for its volume would otherwise get
     * bins smaller than any real one */
    float lo = expm1f(t[1]), hi = expm1f(t[ND_CAL_Q + 1]);
    for (int i = 0; i < L; i++)
        if (x[i] > 0.0f) x[i] = f == 0.0f ? 0.0f : fminf(fmaxf(x[i] * f, lo), hi);
}

/* A channel the threshold left entirely idle keeps its highest-scoring bin busy, so that
 * the volume map (below) alone decides which windows are idle, as many as the training
 * data has (the smallest): as the model trains, its activity gets sharper and the
 * threshold alone leaves far more windows idle than the data has (3-4x in live's
 * web-tls), or some in classes that never have one. Targets from before the volume map:
 * no revive. */
static void revive(const float *cal, const float *t, float *x, const float *score,
                   const float *lval, int L)
{
    if (!isfinite(t[ND_CAL_VOL])) return;
    int top = 0;
    for (int i = 0; i < L; i++) {
        if (x[i] > 0.0f) return;
        if (score[i] > score[top]) top = i;
    }
    x[top] = nd_cal_apply(cal, t, INFINITY, lval[top]);
}

/* The fit for filtered scores: threshold and maps (cal), and in x (n·L) the n windows
 * after both maps; vol: room for n floats. */
static void fit_maps(float *cal, const float *t, const float *score, const float *lval,
                     size_t n, int L, float *x, float *vol)
{
    size_t nb = n * (size_t)L;
    /* Windows whose volume maps to 0 become idle on top of the threshold's idle bins, so
     * the threshold aims at the rest: a few rounds of moving its share by the miss. */
    double s = t[0];
    for (int round = 0; round < 4; round++) {
        fit_bins(cal, t, s, score, lval, nb, x);
        for (size_t i = 0; i < nb; i++) x[i] = nd_cal_apply(cal, t, score[i], lval[i]);
        if (!isfinite(t[ND_CAL_VOL])) break; /* targets from before the volume map */
        for (size_t w = 0; w < n; w++) revive(cal, t, x + w * L, score + w * L, lval + w * L, L);
        for (size_t w = 0; w < n; w++) vol[w] = log1pf(sum(x + w * L, L));
        quantiles(cal + ND_CAL_VOL, vol, n);
        size_t idle = 0;
        for (size_t w = 0; w < n; w++) volume(cal, t, x + w * L, L);
        for (size_t i = 0; i < nb; i++) idle += x[i] == 0.0f;
        double miss = t[0] - (double)idle / (double)nb;
        if (fabs(miss) * (double)nb < 0.5) break;
        s = fmin(fmax(s + miss, 0.0), 1.0);
    }
}

void nd_cal_fit(float *cal, const float *t, const float *score, const float *lval, size_t n,
                int L, nd_rng *rng, float *scratch)
{
    for (int k = 0; k < ND_CAL_SLOTS; k++) cal[k] = NAN;
    size_t nb = n * (size_t)L;
    if (!n || !isfinite(t[0])) return;
    float *fs = scratch, *x = scratch + nb, *vol = scratch + 2 * nb;
    int K = isfinite(t[ND_CAL_ACF]) ? lags(L) : 0;
    double best = INFINITY;
    for (int f = 0; f < (K ? NFILTERS : 1); f++) {
        float c[ND_CAL_SLOTS];
        for (int k = 0; k < ND_CAL_SLOTS; k++) c[k] = NAN;
        memcpy(fs, score, nb * sizeof *fs);
        for (size_t w = 0; w < n; w++) filter(fs + w * L, L, f, rng);
        fit_maps(c, t, fs, lval, n, L, x, vol);
        c[ND_CAL_ACF] = (float)f;
        double acf[ND_CAL_LAGS], d = 0.0;
        time_structure(acf, x, n, (size_t)L, L, K);
        for (int k = 0; k < K; k++) d += fabs(acf[k] - t[ND_CAL_ACF + k]);
        if (d < best) {
            best = d;
            memcpy(cal, c, sizeof c);
        }
    }
}

float nd_cal_apply(const float *cal, const float *t, float score, float l)
{
    if (!(score > cal[0])) return 0.0f;
    if (!isfinite(cal[1])) return expm1f(l); /* no busy bin in the model's samples */
    return expm1f(qmap(cal + 1, t + 1, l));
}

void nd_cal_window(const float *cal, const float *t, float *x, float *score, const float *lval,
                   int L, nd_rng *rng)
{
    float f = cal[ND_CAL_ACF]; /* from a file: any float, checked before the cast */
    filter(score, L, f >= 0.0f && f < (float)NFILTERS ? (int)f : 0, rng);
    for (int i = 0; i < L; i++) x[i] = nd_cal_apply(cal, t, score[i], lval[i]);
    revive(cal, t, x, score, lval, L);
    volume(cal, t, x, L);
}
