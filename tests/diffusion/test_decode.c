/*
 * test_decode.c — the decoder (model/decode.c, sample.calibrate): the target's idle share
 * per position is the training windows' share over the position and its neighbours; the
 * fitted thresholds give each position the target's share of idle bins, busy values land
 * on the target quantiles, the map is monotone and handles classes that are all idle or
 * never idle; training windows that idle only towards their end decode so, from a model
 * whose scores know nothing of the position; the volume map gives windows the training
 * data's volumes (entirely idle ones included, as many as in the training data even when
 * the model's thresholds leave far more idle) keeping the order of their bins, and the
 * idle share at every position stays the target's; no pile of windows at the training
 * maximum; on a model, calibrated samples have the training data's idle share, the
 * calibration is stored in the model file and refitted when the sampler setting or the
 * model step changes; files of the older layouts (DECO versions 1 and 2, MARG and CALB in
 * three generations, and DMCF version 1) load their targets and refit their maps.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eval.h"
#include "model.h"
#include "tiny_model.h"

static double idle_share(const float *x, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++) z += x[i] == 0.0f;
    return (double)z / (double)n;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* q-quantile of the n values v (sorted in place), nearest rank */
static float quantile(float *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_float);
    return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

/* Share of idle bins at each position of n windows x (n, L) in share (L). */
static void position_shares(double *share, const float *x, size_t n, int L)
{
    for (int i = 0; i < L; i++) share[i] = 0.0;
    for (size_t w = 0; w < n; w++)
        for (int i = 0; i < L; i++) share[i] += x[w * L + i] == 0.0f;
    for (int i = 0; i < L; i++) share[i] /= (double)n;
}

static void test_map(void)
{
    enum { N = 400, L = 16, NB = N * L };
    static float x[NB], scratch[2 * NB + N], score[NB], lval[NB], out[NB], busy[NB];
    nd_decoder_target t;
    nd_decoder_map cal;
    nd_rng r;
    nd_rng_seed(&r, 3);
    /* training windows: a quarter of the bins idle, at random; busy ones log-uniform in
     * [5, 12] */
    size_t idle = 0;
    for (size_t i = 0; i < NB; i++) {
        int off = nd_rng_uniform(&r) < 0.25;
        idle += (size_t)off;
        x[i] = off ? 0.0f : expm1f(5.0f + 7.0f * nd_rng_uniform(&r));
    }
    nd_decoder_target_measure(&t, x, N, 1, L, 0, scratch);
    CHECK_NEAR(t.idle, (double)idle / NB, 1e-6, 0);
    for (int k = 0; k < ND_DECODER_Q; k++) CHECK(t.busy[k + 1] >= t.busy[k]);
    CHECK(t.busy[0] >= 5.0f && t.busy[ND_DECODER_Q] <= 12.0f + 1e-4f);
    /* the model's view: scores in [0, 1], busy values squeezed into [8, 10] */
    for (size_t i = 0; i < NB; i++) {
        score[i] = nd_rng_uniform(&r);
        lval[i] = 8.0f + 2.0f * nd_rng_uniform(&r);
    }
    nd_decoder_fit(&cal, &t, score, lval, N, L, scratch);
    CHECK(isnan(cal.threshold_at[L]));
    size_t zeros = 0, nb = 0;
    for (size_t i = 0; i < NB; i++) {
        out[i] = nd_decoder_bin(&cal, &t, (int)(i % L), score[i], lval[i]);
        if (out[i] == 0.0f) zeros++;
        else busy[nb++] = log1pf(out[i]);
    }
    /* the idle share at every position is the target's there (up to the noise of 400
     * windows), and so is the whole */
    double share[L];
    position_shares(share, out, N, L);
    for (int i = 0; i < L; i++) CHECK_NEAR(share[i], t.idle_at[i], 0.07, 0);
    CHECK_NEAR((double)zeros / NB, t.idle, 0.015, 0);
    /* busy values on the target's quantiles */
    for (size_t i = 0, n = 0; i < NB; i++)
        if (x[i] > 0.0f) scratch[n++] = log1pf(x[i]);
    size_t ntrain = NB - idle;
    double qs[] = {0.1, 0.5, 0.9};
    for (int k = 0; k < 3; k++) {
        float want = quantile(scratch, ntrain, qs[k]), got = quantile(busy, nb, qs[k]);
        CHECK_NEAR(got, want, 0.15, 0);
    }
    /* monotone in the value; outside the model's range the target's ends */
    float prev = 0.0f;
    for (float l = 7.0f; l < 11.0f; l += 0.01f) {
        float v = nd_decoder_bin(&cal, &t, 0, 1.0f, l);
        CHECK(v >= prev);
        prev = v;
    }
    /* (then the position's level shift, not clamped: the output map of the whole window
     * brings values back into the target's range, without a pile at its ends; below the
     * smallest value b a value v goes to b·exp((v−b)/b), never to 0) */
    float sh = cal.shift_at[0], b = t.busy[0];
    CHECK_NEAR(log1pf(nd_decoder_bin(&cal, &t, 0, 1.0f, 0.0f)),
               sh >= 0.0f ? b + sh : b * expf(sh / b), 1e-4, 0);
    CHECK_NEAR(log1pf(nd_decoder_bin(&cal, &t, 0, 1.0f, 30.0f)), t.busy[ND_DECODER_Q] + sh,
               1e-4, 1e-6);
    for (int i = 0; i < L; i++) /* a score below every threshold */
        CHECK(nd_decoder_bin(&cal, &t, i, -1.0f, 9.0f) == 0.0f);

    /* a class that is never idle: every bin busy, whatever its score */
    for (size_t i = 0; i < NB; i++) x[i] = 100.0f + (float)i;
    nd_decoder_target_measure(&t, x, N, 1, L, 0, scratch);
    CHECK(t.idle == 0.0f && t.idle_at[0] == 0.0f && t.idle_at[L - 1] == 0.0f);
    nd_decoder_fit(&cal, &t, score, lval, N, L, scratch);
    for (int i = 0; i < L; i++) CHECK(isinf(cal.threshold_at[i]) && cal.threshold_at[i] < 0);
    CHECK(nd_decoder_bin(&cal, &t, 3, -1.0f, 9.0f) > 0.0f);
    /* one that is always idle: nothing busy, no quantiles, every bin 0 */
    memset(x, 0, sizeof x);
    nd_decoder_target_measure(&t, x, N, 1, L, 0, scratch);
    CHECK(t.idle == 1.0f && t.idle_at[5] == 1.0f && isnan(t.busy[0]));
    nd_decoder_fit(&cal, &t, score, lval, N, L, scratch);
    for (int i = 0; i < L; i++) CHECK(isinf(cal.threshold_at[i]) && cal.threshold_at[i] > 0);
    CHECK(nd_decoder_bin(&cal, &t, 3, 1.0f, 9.0f) == 0.0f);
    /* no data at all: nothing fitted */
    nd_decoder_target_measure(&t, x, 0, 1, L, 0, scratch);
    CHECK(isnan(t.idle) && isnan(t.idle_at[0]));
    nd_decoder_fit(&cal, &t, score, lval, N, L, scratch);
    CHECK(isnan(cal.threshold_at[0]));
}

/* n·L raw windows out of the fitted decoder: nd_decoder_window on each (per-bin maps
 * with the level shifts, the revive, the volume map, the output map per position),
 * checking that they leave idle the bins the per-bin maps left idle. Returns the share of
 * idle bins; *idle_windows, vol (n): entirely idle windows, log1p volumes. */
static double calibrate_windows(const nd_decoder_map *cal, const nd_decoder_target *t,
                                const float *score, const float *lval, size_t n, int L,
                                float *out, float *vol, double *idle_windows)
{
    size_t zeros = 0, idle = 0;
    for (size_t w = 0; w < n; w++) {
        float *o = out + w * L, before[256];
        int busy = 0;
        for (int i = 0; i < L; i++) {
            before[i] = nd_decoder_bin(cal, t, i, score[w * L + i], lval[w * L + i]);
            busy |= before[i] > 0.0f;
        }
        nd_decoder_window(cal, t, o, score + w * L, lval + w * L, L);
        float total = 0.0f;
        for (int i = 0; i < L; i++) {
            zeros += o[i] == 0.0f;
            total += o[i];
            /* the volume map idles whole windows, the revive lifts one bin of an idle one */
            if (before[i] == 0.0f && busy) CHECK(o[i] == 0.0f);
        }
        idle += total == 0.0f;
        vol[w] = log1pf(total);
    }
    *idle_windows = (double)idle / (double)n;
    return (double)zeros / (double)(n * L);
}

/* Training windows of very different volumes, 30 % of them entirely idle; the model's
 * are all alike in volume and, first, never idle, then far too often idle (its scores
 * low in a whole window: a sharper model's). */
static void test_volume(void)
{
    enum { N = 500, L = 16, NB = N * L };
    static float x[NB], scratch[2 * NB + N], score[NB], lval[NB], out[NB], vol[N], tvol[N];
    nd_decoder_target t;
    nd_decoder_map cal;
    nd_rng r;
    nd_rng_seed(&r, 7);
    for (int w = 0; w < N; w++) {
        int off = nd_rng_uniform(&r) < 0.3;
        float level = 4.0f + 8.0f * nd_rng_uniform(&r);
        for (int i = 0; i < L; i++)
            x[w * L + i] = off || nd_rng_uniform(&r) < 0.2
                               ? 0.0f
                               : expm1f(level + 0.5f * nd_rng_uniform(&r));
    }
    nd_decoder_target_measure(&t, x, N, 1, L, 0, scratch);
    CHECK(t.volume[0] == 0.0f && t.volume[ND_DECODER_Q / 4] == 0.0f);
    CHECK(t.volume[ND_DECODER_Q / 2] > 4.0f);
    for (int k = 0; k < ND_DECODER_Q; k++) CHECK(t.volume[k + 1] >= t.volume[k]);
    for (int w = 0; w < N; w++) { /* the training windows' volumes */
        float total = 0.0f;
        for (int i = 0; i < L; i++) total += x[w * L + i];
        tvol[w] = log1pf(total);
    }
    for (int quiet = 0; quiet < 2; quiet++) {
        for (int w = 0; w < N; w++) {
            /* with quiet, 40 % of the model's windows have every score below 0.05:
             * the threshold alone makes them all idle */
            float top = quiet && w % 5 < 2 ? 0.05f : 1.0f;
            for (int i = 0; i < L; i++) {
                score[w * L + i] = top * nd_rng_uniform(&r);
                lval[w * L + i] = 8.0f + 0.5f * nd_rng_uniform(&r);
            }
        }
        nd_decoder_fit(&cal, &t, score, lval, N, L, scratch);
        double idle_windows,
            share = calibrate_windows(&cal, &t, score, lval, N, L, out, vol, &idle_windows);
        fprintf(stderr,
                "volume map%s: idle share %.3f (target %.3f), idle windows %.3f (0.3)\n",
                quiet ? ", a model with many quiet windows" : "", share, t.idle, idle_windows);
        /* the idle share is the target's although whole windows became idle, and as many
         * windows are idle as in the training data */
        CHECK_NEAR(share, t.idle, 0.01, 0);
        CHECK_NEAR(idle_windows, 0.3, 0.05, 0);
        /* and so is the share at every position */
        double at[L];
        position_shares(at, out, N, L);
        for (int i = 0; i < L; i++) CHECK_NEAR(at[i], t.idle_at[i], 0.07, 0);
        double qs[] = {0.5, 0.7, 0.9};
        for (int k = 0; k < 3; k++)
            CHECK_NEAR(quantile(vol, N, qs[k]), quantile(tvol, N, qs[k]), 0.3, 0);
    }

    /* targets without volume quantiles (model files from before the volume map): the
     * per-bin maps only */
    for (int k = 0; k <= ND_DECODER_Q; k++) t.volume[k] = NAN;
    nd_decoder_fit(&cal, &t, score, lval, N, L, scratch);
    CHECK(isnan(cal.volume[0]));
    float w0[L], w1[L];
    for (int i = 0; i < L; i++) w0[i] = nd_decoder_bin(&cal, &t, i, score[i], lval[i]);
    nd_decoder_window(&cal, &t, w1, score, lval, L);
    CHECK(memcmp(w0, w1, sizeof w0) == 0);
}

/* No pile at the top: training windows whose first bin is always busier than the rest,
 * a model that knows nothing of the position, so that the first position's values are
 * lifted and windows scaled past the training range. Decoded from fresh windows, a window's
 * largest bin lands on the training data's largest value about as often as a training
 * window's does (1 in N), not whenever a shift or the volume map took it past the
 * range (a clamp there gave 13 % of windows, and on real traffic a classifier read the
 * window's largest value before anything else). */
static void test_top(int N)
{
    enum { NMAX = 500, M = 500, D = 2000, L = 16 };
    ND_ASSERT(N <= NMAX);
    static float x[NMAX * L], scratch[2 * M * L + M], score[(M + D) * L], lval[(M + D) * L],
        out[D * L];
    nd_decoder_target t;
    nd_decoder_map cal;
    nd_rng r;
    nd_rng_seed(&r, 23);
    for (int w = 0; w < N; w++)
        for (int i = 0; i < L; i++)
            x[w * L + i] = expm1f(i == 0 ? 10.0f + 2.0f * nd_rng_uniform(&r)
                                         : 5.0f + 7.0f * nd_rng_uniform(&r));
    nd_decoder_target_measure(&t, x, N, 1, L, 0, scratch);
    for (int i = 0; i < (M + D) * L; i++) {
        score[i] = nd_rng_uniform(&r);
        lval[i] = 8.0f + 0.5f * nd_rng_uniform(&r);
    }
    nd_decoder_fit(&cal, &t, score, lval, M, L, scratch);
    size_t top = 0;
    for (int w = 0; w < D; w++) {
        float *o = out + w * L, hi = 0.0f;
        nd_decoder_window(&cal, &t, o, score + (size_t)(M + w) * L, lval + (size_t)(M + w) * L,
                          L);
        for (int i = 0; i < L; i++) hi = fmaxf(hi, log1pf(o[i]));
        top += fabsf(hi - t.busy[ND_DECODER_Q]) < 1e-3f;
    }
    fprintf(stderr, "windows whose largest bin is the training maximum: %.4f (training %.4f)\n",
            (double)top / D, 1.0 / N);
    CHECK((double)top / D < 0.01);
    /* The spread at a position is the training windows' there, not the model's: their
     * first bin varies over 2 log1p units and the others over 7, the model's every bin
     * over 0.5 (a map for all positions gave the first bin the spread of all of them) */
    static float a[D], b[NMAX];
    int pos[] = {0, L / 2};
    for (int k = 0; k < 2; k++) {
        int i = pos[k];
        for (int w = 0; w < D; w++) a[w] = log1pf(out[w * L + i]);
        for (int w = 0; w < N; w++) b[w] = log1pf(x[w * L + i]);
        float got[3], want[3];
        for (int q = 0; q < 3; q++)
            got[q] = quantile(a, D, 0.1 + 0.4 * q), want[q] = quantile(b, N, 0.1 + 0.4 * q);
        fprintf(stderr,
                "position %d: log1p deciles 1, 5, 9 %.2f %.2f %.2f (training %.2f %.2f %.2f)\n",
                i, got[0], got[1], got[2], want[0], want[1], want[2]);
        for (int q = 0; q < 3; q++) CHECK_NEAR(got[q], want[q], 0.5, 0);
    }
}

/* Training windows that never idle in their first 4 bins, idle 10 % of the time in the
 * next 12 and 60 % in their last 16 (a session starts busy and tails off); the model's
 * scores are noise that knows nothing of the position. The target's share at a position
 * is the training share over it and its neighbours; windows decoded from fresh noise have
 * no idle bin in their first positions (but for the neighbours' 10 % that the smoothing
 * brings into positions 2 and 3) and about 60 % in their last 16. One threshold per
 * class would give every position the overall share, 34 %. */
static void test_positions(void)
{
    enum { N = 400, M = 400, D = 2000, L = 32 };
    static float x[N * L], scratch[2 * N * L + N], score[(M + D) * L], lval[(M + D) * L],
        out[D * L];
    nd_decoder_target t;
    nd_decoder_map cal;
    nd_rng r;
    nd_rng_seed(&r, 17);
    for (int w = 0; w < N; w++)
        for (int i = 0; i < L; i++) {
            double p = i < 4 ? 0.0 : i < 16 ? 0.1 : 0.6;
            x[w * L + i] =
                nd_rng_uniform(&r) < p ? 0.0f : expm1f(5.0f + 5.0f * nd_rng_uniform(&r));
        }
    nd_decoder_target_measure(&t, x, N, 1, L, 0, scratch);
    /* the target: the share at each position */
    double raw[L];
    position_shares(raw, x, N, L);
    for (int i = 0; i < L; i++) CHECK_NEAR(t.idle_at[i], raw[i], 1e-6, 0);
    for (int i = 0; i < 4; i++) CHECK(t.idle_at[i] == 0.0f);
    CHECK(isnan(t.idle_at[L]));
    CHECK(t.idle > 0.3f);
    /* fitted on M windows of the model's, decoded on D fresh ones */
    for (int i = 0; i < (M + D) * L; i++) {
        score[i] = nd_rng_uniform(&r);
        lval[i] = 7.0f + nd_rng_uniform(&r);
    }
    nd_decoder_fit(&cal, &t, score, lval, M, L, scratch);
    for (int w = 0; w < D; w++)
        nd_decoder_window(&cal, &t, out + w * L, score + (size_t)(M + w) * L,
                          lval + (size_t)(M + w) * L, L);
    double at[L], first = 0.0, last = 0.0;
    position_shares(at, out, D, L);
    for (int i = 0; i < 4; i++) first += at[i] / 4;
    for (int i = L - 16; i < L; i++) last += at[i] / 16;
    fprintf(stderr, "idle share by position: first 4 %.3f (training 0), last 16 %.3f (0.6)\n",
            first, last);
    CHECK(at[0] == 0.0 && at[1] == 0.0);
    CHECK(first < 0.03);
    CHECK_NEAR(last, 0.6, 0.05, 0);
    /* and every position its target's (up to the noise of a fit on 400 windows) */
    for (int i = 0; i < L; i++) CHECK_NEAR(at[i], t.idle_at[i], 0.06, 0);
}

/* Share of the n bins of two channels a and b (n each) idle in both. */
static double both_idle(const float *a, const float *b, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++) z += a[i] == 0.0f && b[i] == 0.0f;
    return (double)z / (double)n;
}

/* Two channels that idle together: in the training windows a bin is idle in both with
 * probability 0.25 and in one only with 0.05 each; the model's scores of each channel
 * are a common activity plus noise of its own, so that thresholds per channel alone
 * leave far fewer bins idle in both. The class fit mixes the channels' scores until the
 * share idle in both is the training windows' on windows it has not seen, and each
 * channel keeps its own idle share. */
static void test_coupled(void)
{
    enum { N = 400, M = 400, D = 1000, L = 16, C = 2 };
    static float x[N * C * L], scratch[(C + 3) * M * L + M], score[C * (M + D) * L],
        lval[C * (M + D) * L], out[D * C * L], u0[M * L], u1[M * L];
    nd_decoder_target t[C];
    nd_decoder_map f[C];
    nd_rng r;
    nd_rng_seed(&r, 41);
    for (int w = 0; w < N; w++)
        for (int i = 0; i < L; i++) {
            double u = nd_rng_uniform(&r);
            for (int c = 0; c < C; c++) {
                int idle = u < 0.25 || (u >= 0.25 + 0.05 * c && u < 0.3 + 0.05 * c);
                x[(w * C + c) * L + i] = idle ? 0.0f : expm1f(5.0f + 5.0f * nd_rng_uniform(&r));
            }
        }
    for (int c = 0; c < C; c++) nd_decoder_target_measure(&t[c], x, N, C, L, c, scratch);
    CHECK_NEAR(t[0].idle_all, 0.25, 0.03, 0);
    CHECK_EQ(t[0].idle_all, t[1].idle_all);
    CHECK_NEAR(t[0].idle, 0.30, 0.03, 0);
    /* the model's windows (M to fit, D to check): (C, M + D, L), channel by channel */
    size_t nb = (size_t)(M + D) * L;
    for (size_t j = 0; j < nb; j++) {
        float common = nd_rng_uniform(&r);
        for (int c = 0; c < C; c++) {
            score[c * nb + j] = common + nd_rng_uniform(&r);
            lval[c * nb + j] = 7.0f + nd_rng_uniform(&r);
        }
    }
    /* the fit reads (C, M, L): the first M windows of each channel, packed */
    static float fs[C * M * L], fl[C * M * L];
    for (int c = 0; c < C; c++) {
        memcpy(fs + c * M * L, score + c * nb, M * L * sizeof(float));
        memcpy(fl + c * M * L, lval + c * nb, M * L * sizeof(float));
    }
    /* each channel alone */
    for (int c = 0; c < C; c++)
        nd_decoder_fit(&f[c], &t[c], fs + c * M * L, fl + c * M * L, M, L, scratch);
    for (int w = 0; w < M; w++) {
        nd_decoder_window(&f[0], &t[0], u0 + w * L, fs + w * L, fl + w * L, L);
        nd_decoder_window(&f[1], &t[1], u1 + w * L, fs + M * L + w * L, fl + M * L + w * L, L);
    }
    double alone = both_idle(u0, u1, M * L);
    nd_decoder_fit_class(f, t, C, fs, fl, M, L, scratch);
    CHECK(f[0].couple > 0.0f && f[0].couple <= ND_DECODER_MAX_COUPLE);
    CHECK_EQ(f[0].couple, f[1].couple);
    for (int w = 0; w < D; w++) {
        float s[C * L], l[C * L];
        for (int c = 0; c < C; c++) {
            memcpy(s + c * L, score + c * nb + (size_t)(M + w) * L, L * sizeof(float));
            memcpy(l + c * L, lval + c * nb + (size_t)(M + w) * L, L * sizeof(float));
        }
        nd_decoder_window_class(f, t, C, out + w * C * L, s, l, L);
    }
    static float a[D * L], b[D * L];
    for (int w = 0; w < D; w++) {
        memcpy(a + w * L, out + w * C * L, L * sizeof(float));
        memcpy(b + w * L, out + w * C * L + L, L * sizeof(float));
    }
    double both = both_idle(a, b, D * L);
    fprintf(stderr,
            "idle in both channels: training %.3f, channels alone %.3f, coupled (weight %.3f) "
            "%.3f; idle shares %.3f %.3f (training %.3f %.3f)\n",
            t[0].idle_all, alone, f[0].couple, both, idle_share(a, D * L), idle_share(b, D * L),
            t[0].idle, t[1].idle);
    CHECK(alone < t[0].idle_all - 0.05);
    CHECK_NEAR(both, t[0].idle_all, 0.02, 0);
    CHECK_NEAR(idle_share(a, D * L), t[0].idle, 0.02, 0);
    CHECK_NEAR(idle_share(b, D * L), t[1].idle, 0.02, 0);
}

enum { ML = 8, WINDOWS = 48 };

/* Older layouts of the decoder's section (docs/FORMATS.md §3), made from a file of this
 * build (DECO version 5: after the 80-byte header, per class and channel a target of
 * 1 + 2L + 2(Q+1) + L(QP+1) + 1 floats, idle share, idle_at, level_at, busy and volume
 * quantiles, busy_at, idle_all, then a map of 2L + 2(Q+1) + L(QP+1) + 1, threshold_at,
 * busy and volume quantiles, shift_at, out_at, couple):
 *   - OLD_DECO4: DECO version 4, without idle_all and couple;
 *   - OLD_DECO3: DECO version 3, targets without busy_at and one output map of Q+1
 *     quantiles for all positions (out);
 *   - OLD_DECO2: DECO version 2, whose maps had no output map;
 *   - OLD_DECO1: DECO version 1 (lags, 16, in place of L): targets of OLD_SLOTS floats
 *     (idle share, busy and volume quantiles, the autocorrelation at lags 1..16), maps of
 *     OLD_ACF floats (one threshold, busy and volume quantiles) and a u32 score filter;
 *   - before the decoder had its own section: DMCF version 1 (settings only in the
 *     embedded config), targets as MARG (u32 Q, then per class and channel old_k floats
 *     of a version-1 target: all OLD_SLOTS, or OLD_VOL before the volume map, OLD_ACF
 *     before the score filter) and, with all slots, the maps as CALB (u32 Q, u32 windows,
 *     u64 step, char[256] the settings as text, then per class and channel OLD_SLOTS
 *     floats, the filter index as a float at OLD_ACF);
 *   - OLD_BAD_L: this build's DECO claiming windows of another length. */
enum {
    OLD_Q = 64,
    OLD_VOL = OLD_Q + 2,
    OLD_ACF = 2 * OLD_Q + 3,
    OLD_SLOTS = OLD_ACF + 16,
    OLD_DECO1 = 1,
    OLD_BAD_L = 2,
    OLD_DECO2 = 3,
    OLD_DECO3 = 4,
    OLD_DECO4 = 5,
    DECO_HEADER = 80
};
static size_t old_k;       /* floats per MARG row; OLD_DECO1..4, OLD_BAD_L: those layouts */
static int old_alternates; /* DECA sections rewritten as version 4 */
static char old_key[256];  /* CALB's text; "": no CALB */

static void put_section(ndf_writer *w, uint32_t tag, const void *data, size_t len)
{
    nd_error e = {0};
    CHECK_EQ(ndf_write_section(w, tag, data, len, &e), 0);
}

/* Bytes of a target and of a map in DECO version 5 for windows of L bins, and the part
 * of each that versions 4 (all but idle_all, all but couple), 2 and 3 (nor busy_at, nor
 * out_at) have first. */
static size_t v5_target(size_t L) { return 4 * (2 + 2 * L + 2 * (OLD_Q + 1) + L * 33); }
static size_t v5_map(size_t L) { return 4 * (1 + 2 * L + 2 * (OLD_Q + 1) + L * 33); }
static size_t v4_target(size_t L) { return v5_target(L) - 4; }
static size_t v4_map(size_t L) { return v5_map(L) - 4; }
static size_t v2_target(size_t L) { return 4 * (1 + 2 * L + 2 * (OLD_Q + 1)); }
static size_t v2_map(size_t L) { return 4 * (2 * L + 2 * (OLD_Q + 1)); }

/* Row j of a version-1 target (OLD_SLOTS floats at o) and, with map, of a version-1 map
 * (OLD_ACF floats and the filter at map) from DECO version 5 at p. */
static void old_rows(const unsigned char *p, size_t j, unsigned char *o, unsigned char *map)
{
    size_t L = nd_get_u32(p + 8), rows = (size_t)nd_get_u32(p + 12) * nd_get_u32(p + 16);
    size_t TB = v5_target(L), MB = v5_map(L);
    const unsigned char *t = p + DECO_HEADER + j * TB,
                        *f = p + DECO_HEADER + rows * TB + j * MB;
    memcpy(o, t, 4);                                         /* idle share */
    memcpy(o + 4, t + 4 * (1 + 2 * L), 4 * 2 * (OLD_Q + 1)); /* busy, volume */
    for (int k = OLD_ACF; k < OLD_SLOTS; k++) nd_put_f32(o + 4 * k, 0.1f);
    if (!map) return;
    memcpy(map, f, 4);                               /* the threshold at position 0 */
    memcpy(map + 4, f + 4 * L, 4 * 2 * (OLD_Q + 1)); /* busy, volume */
    nd_put_u32(map + 4 * OLD_ACF, 3);                /* a score filter */
}

static void old_layout(ndf_writer *w, uint32_t tag, const void *data, size_t len)
{
    const unsigned char *p = data;
    if (tag == ND_FOURCC('D', 'M', 'C', 'F') && old_k > OLD_DECO2 && old_k != OLD_DECO4) {
        unsigned char rec[23 * 4 + 7 * 8];
        memcpy(rec, p, sizeof rec);
        nd_put_u32(rec, 1);
        put_section(w, tag, rec, sizeof rec);
        return;
    }
    if (tag == ND_FOURCC('D', 'E', 'C', 'A') && old_k == OLD_DECO4) {
        /* the alternate's maps without couple */
        size_t L = nd_get_u32(p + 8), rows = (size_t)nd_get_u32(p + 12) * nd_get_u32(p + 16);
        unsigned char *out = malloc(DECO_HEADER + rows * v4_map(L));
        CHECK(out != NULL);
        memcpy(out, data, DECO_HEADER);
        nd_put_u32(out, 4);
        for (size_t j = 0; j < rows; j++)
            memcpy(out + DECO_HEADER + j * v4_map(L), p + DECO_HEADER + j * v5_map(L),
                   v4_map(L));
        put_section(w, tag, out, DECO_HEADER + rows * v4_map(L));
        free(out);
        old_alternates++;
        return;
    }
    if (tag != ND_FOURCC('D', 'E', 'C', 'O')) {
        put_section(w, tag, data, len);
        return;
    }
    CHECK_EQ(nd_get_u32(p), 5);
    CHECK_EQ(ND_DECODER_QP + 1, 33); /* v5_target, v5_map */
    size_t rows = (size_t)nd_get_u32(p + 12) * nd_get_u32(p + 16), TB = 4 * OLD_SLOTS,
           MB = 4 * OLD_ACF + 4;
    CHECK(nd_get_u32(p + 20)); /* maps stored */
    unsigned char *out = calloc(1, len + DECO_HEADER + 16 + 256 + rows * (TB + MB));
    if (old_k == OLD_DECO4) {
        size_t L = nd_get_u32(p + 8), tb = v4_target(L), mb = v4_map(L),
               o = DECO_HEADER + rows * tb;
        const unsigned char *maps = p + DECO_HEADER + rows * v5_target(L);
        memcpy(out, data, DECO_HEADER);
        nd_put_u32(out, 4);
        for (size_t j = 0; j < rows; j++) {
            memcpy(out + DECO_HEADER + j * tb, p + DECO_HEADER + j * v5_target(L), tb);
            memcpy(out + o + j * mb, maps + j * v5_map(L), mb);
        }
        put_section(w, tag, out, o + rows * mb);
    } else if (old_k == OLD_DECO2 || old_k == OLD_DECO3) {
        /* targets without busy_at; maps without out_at, and in version 3 with Q+1
         * quantiles of an output map for all positions (the busy map's stand in) */
        size_t L = nd_get_u32(p + 8), tb = v2_target(L), mb = v2_map(L),
               ob = old_k == OLD_DECO3 ? 4 * (OLD_Q + 1) : 0, o = DECO_HEADER + rows * tb;
        const unsigned char *maps = p + DECO_HEADER + rows * v5_target(L);
        memcpy(out, data, DECO_HEADER);
        nd_put_u32(out, old_k == OLD_DECO3 ? 3 : 2);
        for (size_t j = 0; j < rows; j++) {
            memcpy(out + DECO_HEADER + j * tb, p + DECO_HEADER + j * v5_target(L), tb);
            unsigned char *m = out + o + j * (mb + ob);
            memcpy(m, maps + j * v5_map(L), mb);
            memcpy(m + mb, m + 4 * L, ob);
        }
        put_section(w, tag, out, o + rows * (mb + ob));
    } else if (old_k == OLD_BAD_L) {
        memcpy(out, data, len);
        nd_put_u32(out + 8, nd_get_u32(p + 8) + 1);
        put_section(w, tag, out, len);
    } else if (old_k == OLD_DECO1) {
        memcpy(out, data, DECO_HEADER);
        nd_put_u32(out, 1);
        nd_put_u32(out + 8, 16);
        for (size_t j = 0; j < rows; j++)
            old_rows(p, j, out + DECO_HEADER + j * TB, out + DECO_HEADER + rows * TB + j * MB);
        put_section(w, tag, out, DECO_HEADER + rows * (TB + MB));
    } else {
        nd_put_u32(out, OLD_Q);
        unsigned char row[4 * OLD_SLOTS];
        for (size_t j = 0; j < rows; j++) {
            old_rows(p, j, row, NULL);
            memcpy(out + 4 + j * old_k * 4, row, old_k * 4);
        }
        put_section(w, ND_FOURCC('M', 'A', 'R', 'G'), out, 4 + rows * old_k * 4);
    }
    if (old_k == OLD_SLOTS && old_key[0]) {
        memset(out, 0, 16 + 256 + rows * TB);
        nd_put_u32(out, OLD_Q);
        nd_put_u32(out + 4, nd_get_u32(p + 20)); /* windows */
        nd_put_u64(out + 8, nd_get_u64(p + 32)); /* step */
        memcpy(out + 16, old_key, sizeof old_key);
        for (size_t j = 0; j < rows; j++) {
            unsigned char row[4 * OLD_SLOTS], map[4 * OLD_ACF + 4];
            unsigned char *o = out + 16 + 256 + j * TB;
            old_rows(p, j, row, map);
            memcpy(o, map, 4 * OLD_ACF);
            nd_put_f32(o + 4 * OLD_ACF, (float)nd_get_u32(map + 4 * OLD_ACF));
            for (int k = OLD_ACF + 1; k < OLD_SLOTS; k++) nd_put_f32(o + 4 * k, NAN);
        }
        put_section(w, ND_FOURCC('C', 'A', 'L', 'B'), out, 16 + 256 + rows * TB);
    }
    free(out);
}

/* The settings text an older file's CALB holds for sampling settings s: the one such a
 * file kept its maps for. */
static void old_key_of(const nd_dm_sampling *s)
{
    snprintf(old_key, sizeof old_key,
             "%s %u steps, guidance %g, eta %g, clip %s, "
             "projection %s, decode %s, fit 2",
             nd_sampler_name(s->sampler), s->steps, s->guidance, s->eta, nd_clip_name(s->clip),
             s->project ? "on" : "off", s->decode == ND_GAF_DIAG ? "diag" : "lsq");
}

/* What `inspect` says about the decoder of the model file at path. */
static char *inspect_text(const char *path)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open(path, NDF_KIND_MODEL, &e);
    if (!r) CHECK_FAIL_("%s", e.msg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    CHECK_EQ(nd_dm_inspect(r, f, NULL, &e), 0);
    fclose(f);
    ndf_close(r);
    return text;
}

/* calib.ndm (a trained, calibrated tiny model whose class 0 sampled x with seed 5) in
 * the older layouts: each loads its targets (the overall idle share at every position)
 * without its maps, which one threshold per class made, and refits them; `inspect` says
 * so. A DECO for windows of another length is refused. */
static void test_old_layouts(double want)
{
    static float y[WINDOWS * ML];
    nd_error e = {0};
    nd_rng r;
    char *text = inspect_text("calib.ndm");
    CHECK_CONTAINS(text, "activity thresholds per bin position (first and last 3 of 8):");
    CHECK_CONTAINS(text, "  class 1, channel 0: ");
    free(text);
    size_t layouts[] = {OLD_DECO1, OLD_DECO2, OLD_VOL,  OLD_ACF,
                        OLD_SLOTS, OLD_DECO3, OLD_DECO4};
    for (int k = 0; k < 7; k++) {
        nd_dm *cur = nd_dm_load("calib.ndm", 32, NULL, &e);
        if (!cur) CHECK_FAIL_("load: %s", e.msg);
        old_k = layouts[k];
        old_key_of(&nd_dm_get_settings(cur)->sample);
        nd_dm_free(cur);
        tiny_rewrite("calib.ndm", "calib-old.ndm", old_layout);
        text = inspect_text("calib-old.ndm");
        if (k < 2 || k >= 4) CHECK_CONTAINS(text, "stored by an older build");
        else CHECK_CONTAINS(text, "decode calibration: none stored");
        if (k == 1) CHECK_CONTAINS(text, "DECO version 2, no output map");
        if (k == 5) CHECK_CONTAINS(text, "DECO version 3, one output map for all positions");
        if (k == 6) {
            CHECK_CONTAINS(text, "DECO version 4, channels not coupled");
            CHECK(!strstr(text, "train --resume")); /* one channel: nothing to couple */
        }
        free(text);
        nd_dm *old = nd_dm_load("calib-old.ndm", 32, opts_dm_legacy, &e);
        if (!old) CHECK_FAIL_("load layout %d: %s", k, e.msg);
        CHECK_EQ(nd_dm_calibrated(old), 0);
        nd_rng_seed(&r, 5);
        CHECK_EQ(nd_dm_sample(old, 0, WINDOWS, y, NULL, &r, &e), 0);
        CHECK_EQ(nd_dm_calibrated(old), 2);
        CHECK_NEAR(idle_share(y, WINDOWS * ML), want, 0.12, 0);
        nd_dm_free(old);
    }
    /* a version-4 file with maps for other settings too (DECA): they are skipped */
    nd_dm *alt = nd_dm_load("calib.ndm", 32, NULL, &e);
    if (!alt) CHECK_FAIL_("load: %s", e.msg);
    tiny_set_sampling(alt, steps, 6);
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(alt, 0, 1, y, NULL, &r, &e), 0);
    CHECK_EQ(nd_dm_save(alt, "calib-alt.ndm", &e), 0);
    nd_dm_free(alt);
    old_k = OLD_DECO4;
    tiny_rewrite("calib-alt.ndm", "calib-old.ndm", old_layout);
    CHECK(old_alternates > 0);
    alt = nd_dm_load("calib-old.ndm", 32, NULL, &e);
    if (!alt) CHECK_FAIL_("load a version-4 alternate: %s", e.msg);
    CHECK_EQ(nd_dm_calibrated(alt), 0);
    nd_dm_free(alt);
    old_k = OLD_BAD_L;
    tiny_rewrite("calib.ndm", "calib-old.ndm", old_layout);
    CHECK(nd_dm_load("calib-old.ndm", 32, NULL, &e) == NULL);
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "section DECO");
}

/* A briefly trained tiny model. Class a: 40 % of its training bins are idle, at random;
 * class b: one busy bin per window, anywhere. */
static void test_model(void)
{
    nd_config cfg;
    tiny_model_config(&cfg, "model.max_classes=2", "train.warmup_steps=5",
                      "train.val_fraction=0", "sample.steps=8", "sample.batch=16",
                      "sample.calibrate=24");
    nd_error e = {0};
    const char *names[] = {"bytes_down"};
    nd_dataset *ds = nd_dataset_new(1, names, ML, ND_NS_PER_SEC);
    CHECK(ds && nd_dataset_class(ds, "a") == 0 && nd_dataset_class(ds, "b") == 1);
    nd_rng r;
    nd_rng_seed(&r, 11);
    double want = 0.0;
    for (int w = 0; w < 64; w++) {
        float x[ML];
        for (int i = 0; i < ML; i++)
            x[i] = nd_rng_uniform(&r) < 0.4f ? 0.0f : expm1f(6.0f + 4.0f * nd_rng_uniform(&r));
        x[0] = 1000.0f; /* no window entirely idle */
        if (w % 2) {
            memset(x, 0, sizeof x);
            x[(int)(nd_rng_uniform(&r) * ML) % ML] = 1000.0f;
        } else {
            want += idle_share(x, ML) / 32;
        }
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)(w % 2), (uint64_t)w, x), 0);
    }
    nd_dm *m = opts_dm_new(&cfg, ds, &e); /* the config kept, as older files need */
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_train_opts o = {.steps = 30, .quiet = 1};
    CHECK_EQ(nd_dm_train(m, ds, &o, NULL, &e), 0);
    CHECK_EQ(nd_dm_calibrated(m), 0);

    static float x[WINDOWS * ML], y[WINDOWS * ML];
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(m, 0, WINDOWS, x, NULL, &r, &e), 0); /* fits it on the way */
    CHECK_EQ(nd_dm_calibrated(m), 2);
    double got = idle_share(x, WINDOWS * ML);
    tiny_set_sampling(m, calibrate, 0);
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(m, 0, WINDOWS, y, NULL, &r, &e), 0);
    CHECK_EQ(nd_dm_calibrated(m), 0);
    fprintf(stderr, "idle share: training %.3f, calibrated %.3f, uncalibrated %.3f\n", want,
            got, idle_share(y, WINDOWS * ML));
    CHECK_NEAR(got, want, 0.12, 0);
    /* (that the maps keep the order of values is checked on the per-bin map above: the
     * level shifts of the positions and the volume map's scale of each window may reorder
     * bins across positions and windows, which is what they are for) */

    /* stored with the model: a loaded copy samples the same without refitting */
    tiny_set_sampling(m, calibrate, 24);
    CHECK_EQ(nd_dm_calibrate(m, &e), 0);
    CHECK_EQ(nd_dm_save(m, "calib.ndm", &e), 0);
    nd_dm *l = nd_dm_load("calib.ndm", 32, NULL, &e);
    if (!l) CHECK_FAIL_("load: %s", e.msg);
    CHECK_EQ(nd_dm_calibrated(l), 2);
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(l, 0, WINDOWS, y, NULL, &r, &e), 0);
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* another sampler setting or another step: stale until the next sample refits it */
    tiny_set_sampling(l, steps, 6);
    CHECK_EQ(nd_dm_calibrated(l), 0);
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(l, 1, 4, y, NULL, &r, &e), 0);
    CHECK_EQ(nd_dm_calibrated(l), 2);
    /* class b never has an idle window: none is sampled (a window the threshold left
     * idle keeps its top bin), and its idle share is the training data's */
    CHECK_EQ(nd_dm_sample(l, 1, WINDOWS, y, NULL, &r, &e), 0);
    for (int w = 0; w < WINDOWS; w++) CHECK(idle_share(y + w * ML, ML) < 1.0);
    CHECK_NEAR(idle_share(y, WINDOWS * ML), 1.0 - 1.0 / ML, 0.1, 0);
    test_old_layouts(want);
    o.steps = 31;
    CHECK_EQ(nd_dm_train(m, ds, &o, NULL, &e), 0);
    CHECK_EQ(nd_dm_calibrated(m), 0);
    nd_dm_free(l);
    nd_dm_free(m);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
}

int main(void)
{
    test_map();
    test_volume();
    test_top(500);
    test_top(100); /* a videoTrain class: a position's own 100 values make its quantiles */
    test_positions();
    test_coupled();
    test_model();
    return 0;
}
