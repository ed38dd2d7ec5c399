/*
 * calib.c — decode calibration (issue 5, docs/FIDELITY.md): the last step from a
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
 *     ND_CAL_Q + 1 quantiles (piecewise linear between them).
 * The model side comes from windows the model samples with the settings in use, so the
 * map belongs to one model step and one sampler setting (dm.c keeps it fresh).
 */
#include <math.h>
#include <stdlib.h>

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
}

void nd_cal_fit(float *cal, const float *t, const float *score, const float *lval, size_t n,
                float *scratch)
{
    for (int k = 0; k < ND_CAL_SLOTS; k++) cal[k] = NAN;
    if (!n || !isfinite(t[0])) return;
    for (size_t i = 0; i < n; i++) scratch[i] = score[i];
    qsort(scratch, n, sizeof *scratch, cmp_float);
    size_t idle = (size_t)lround(t[0] * (double)n);
    /* halfway between the last idle and the first busy score; outside the score range
     * when every bin (or none) is idle */
    cal[0] = idle == 0 ? -INFINITY : idle >= n ? INFINITY
                                               : 0.5f * (scratch[idle - 1] + scratch[idle]);
    size_t busy = 0;
    for (size_t i = 0; i < n; i++)
        if (score[i] > cal[0]) scratch[busy++] = lval[i];
    if (busy && isfinite(t[1])) quantiles(cal + 1, scratch, busy);
}

float nd_cal_apply(const float *cal, const float *t, float score, float l)
{
    if (!(score > cal[0])) return 0.0f;
    const float *qm = cal + 1, *qt = t + 1;
    if (!isfinite(qm[0])) return expm1f(l); /* no busy bin in the model's samples */
    if (l <= qm[0]) return expm1f(qt[0]);
    if (l >= qm[ND_CAL_Q]) return expm1f(qt[ND_CAL_Q]);
    int lo = 0, hi = ND_CAL_Q; /* qm[lo] <= l < qm[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (qm[mid] <= l) lo = mid;
        else hi = mid;
    }
    float span = qm[hi] - qm[lo], f = span > 0.0f ? (l - qm[lo]) / span : 0.0f;
    return expm1f(qt[lo] + f * (qt[hi] - qt[lo]));
}
