/*
 * test_calib.c — the decode calibration (model/calib.c, sample.calibrate): the fitted
 * threshold gives exactly the target share of idle bins, busy values land on the
 * target quantiles, the map is monotone and handles classes that are all idle or never
 * idle; the volume map gives windows the training data's volumes (entirely idle ones
 * included, as many as in the training data even when the model's threshold leaves
 * far more idle) without changing their shape, and the idle share stays the target's; the
 * chosen score filter brings the autocorrelation near the target's; on a
 * model, calibrated samples have the training data's idle share, the
 * calibration is stored in the model file and refitted when the sampler setting or the
 * model step changes; files of the older calibration layouts load.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "eval.h"
#include "model.h"
#include "tiny_model.h"

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

static void test_map(void)
{
    enum { N = 400, L = 16, NB = N * L };
    static float x[NB], scratch[2 * NB + N], score[NB], lval[NB], out[NB], busy[NB];
    float t[ND_CAL_SLOTS], cal[ND_CAL_SLOTS];
    nd_rng r;
    nd_rng_seed(&r, 3);
    /* training windows: a quarter of the bins idle, busy ones log-uniform in [5, 12] */
    size_t idle = 0;
    for (size_t i = 0; i < NB; i++) {
        int off = nd_rng_uniform(&r) < 0.25;
        idle += (size_t)off;
        x[i] = off ? 0.0f : expm1f(5.0f + 7.0f * nd_rng_uniform(&r));
    }
    nd_cal_target(t, x, N, 1, L, 0, scratch);
    CHECK_NEAR(t[0], (double)idle / NB, 1e-6, 0);
    t[ND_CAL_ACF] = NAN; /* the maps alone, on the raw scores (the filter: test_filter) */
    for (int k = 1; k <= ND_CAL_Q; k++) CHECK(t[k + 1] >= t[k]);
    CHECK(t[1] >= 5.0f && t[ND_CAL_Q + 1] <= 12.0f + 1e-4f);
    /* the model's view: scores in [0, 1], busy values squeezed into [8, 10] */
    for (size_t i = 0; i < NB; i++) {
        score[i] = nd_rng_uniform(&r);
        lval[i] = 8.0f + 2.0f * nd_rng_uniform(&r);
    }
    nd_cal_fit(cal, t, score, lval, N, L, &r, scratch);
    size_t zeros = 0, nb = 0;
    for (size_t i = 0; i < NB; i++) {
        out[i] = nd_cal_apply(cal, t, score[i], lval[i]);
        if (out[i] == 0.0f) zeros++;
        else busy[nb++] = log1pf(out[i]);
    }
    /* idle share exact (distinct scores), busy values on the target's quantiles */
    CHECK_EQ(zeros, (size_t)lround(t[0] * NB));
    for (size_t i = 0, n = 0; i < NB; i++)
        if (x[i] > 0.0f) scratch[n++] = log1pf(x[i]);
    size_t ntrain = NB - idle;
    double qs[] = {0.1, 0.5, 0.9};
    for (int k = 0; k < 3; k++) {
        float want = quantile(scratch, ntrain, qs[k]), got = quantile(busy, nb, qs[k]);
        CHECK_NEAR(got, want, 0.15, 0);
    }
    /* monotone in the value, and outside the model's range clamped to the target's ends */
    float prev = 0.0f;
    for (float l = 7.0f; l < 11.0f; l += 0.01f) {
        float v = nd_cal_apply(cal, t, 1.0f, l);
        CHECK(v >= prev);
        prev = v;
    }
    CHECK_NEAR(log1pf(nd_cal_apply(cal, t, 1.0f, 0.0f)), t[1], 1e-4, 0);
    CHECK_NEAR(log1pf(nd_cal_apply(cal, t, 1.0f, 30.0f)), t[ND_CAL_Q + 1], 1e-4, 1e-6);
    CHECK(nd_cal_apply(cal, t, 0.0f, 9.0f) == 0.0f); /* a score below every threshold */

    /* a class that is never idle: every bin busy, whatever its score */
    for (size_t i = 0; i < NB; i++) x[i] = 100.0f + (float)i;
    nd_cal_target(t, x, N, 1, L, 0, scratch);
    CHECK(t[0] == 0.0f);
    nd_cal_fit(cal, t, score, lval, N, L, &r, scratch);
    CHECK(isinf(cal[0]) && cal[0] < 0);
    CHECK(nd_cal_apply(cal, t, 0.0f, 9.0f) > 0.0f);
    /* one that is always idle: nothing busy, no quantiles, every bin 0 */
    memset(x, 0, sizeof x);
    nd_cal_target(t, x, N, 1, L, 0, scratch);
    CHECK(t[0] == 1.0f && isnan(t[1]));
    nd_cal_fit(cal, t, score, lval, N, L, &r, scratch);
    CHECK(isinf(cal[0]) && cal[0] > 0);
    CHECK(nd_cal_apply(cal, t, 1.0f, 9.0f) == 0.0f);
    /* no data at all: nothing fitted */
    nd_cal_target(t, x, 0, 1, L, 0, scratch);
    CHECK(isnan(t[0]));
    nd_cal_fit(cal, t, score, lval, N, L, &r, scratch);
    CHECK(isnan(cal[0]));
}

/* n·L raw windows out of the fitted calibration: nd_cal_window on each (scores through
 * the filter, per-bin maps, the revive, the volume map), checking that busy bins stay in
 * the training range and that the volume map keeps each window's shape. Returns the
 * share of idle bins; *idle_windows, vol (n): entirely idle windows, log1p volumes. */
static double calibrate_windows(const float *cal, const float *t, const float *score,
                                const float *lval, size_t n, int L, float *out, float *vol,
                                double *idle_windows, nd_rng *r)
{
    size_t zeros = 0, idle = 0;
    for (size_t w = 0; w < n; w++) {
        float *o = out + w * L, before[256], s[256];
        for (int i = 0; i < L; i++) before[i] = nd_cal_apply(cal, t, score[w * L + i], lval[w * L + i]);
        memcpy(s, score + w * L, (size_t)L * sizeof *s);
        nd_cal_window(cal, t, o, s, lval + w * L, L, r);
        float total = 0.0f, f = -1.0f;
        for (int i = 0; i < L; i++) {
            zeros += o[i] == 0.0f;
            total += o[i];
            /* busy bins within the training range; one scale for the whole window (but
             * for the bins clamped to that range): its shape is kept */
            if (o[i] > 0.0f)
                CHECK(log1pf(o[i]) >= t[1] - 1e-4f && log1pf(o[i]) <= t[ND_CAL_Q + 1] + 1e-4f);
            if (before[i] > 0.0f && o[i] > expm1f(t[1]) * 1.001f &&
                o[i] < expm1f(t[ND_CAL_Q + 1]) * 0.999f) {
                if (f < 0.0f) f = o[i] / before[i];
                else CHECK_NEAR(o[i] / before[i], f, 1e-4, 0);
            }
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
    float t[ND_CAL_SLOTS], cal[ND_CAL_SLOTS];
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
    nd_cal_target(t, x, N, 1, L, 0, scratch);
    t[ND_CAL_ACF] = NAN;
    CHECK(t[ND_CAL_VOL] == 0.0f && t[ND_CAL_VOL + ND_CAL_Q / 4] == 0.0f);
    CHECK(t[ND_CAL_VOL + ND_CAL_Q / 2] > 4.0f);
    for (int k = 0; k < ND_CAL_Q; k++) CHECK(t[ND_CAL_VOL + k + 1] >= t[ND_CAL_VOL + k]);
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
        nd_cal_fit(cal, t, score, lval, N, L, &r, scratch);
        double idle_windows, share = calibrate_windows(cal, t, score, lval, N, L, out, vol,
                                                       &idle_windows, &r);
        fprintf(stderr, "volume map%s: idle share %.3f (target %.3f), idle windows %.3f (0.3)\n",
                quiet ? ", a model with many quiet windows" : "", share, t[0], idle_windows);
        /* the idle share is the target's although whole windows became idle, and as many
         * windows are idle as in the training data */
        CHECK_NEAR(share, t[0], 0.01, 0);
        CHECK_NEAR(idle_windows, 0.3, 0.05, 0);
        double qs[] = {0.5, 0.7, 0.9};
        for (int k = 0; k < 3; k++)
            CHECK_NEAR(quantile(vol, N, qs[k]), quantile(tvol, N, qs[k]), 0.3, 0);
    }

    /* targets without volume quantiles (model files from before the volume map): the
     * per-bin maps only */
    for (int k = ND_CAL_VOL; k < ND_CAL_SLOTS; k++) t[k] = NAN;
    nd_cal_fit(cal, t, score, lval, N, L, &r, scratch);
    CHECK(isnan(cal[ND_CAL_VOL]));
    float w0[L], w1[L], s[L];
    memcpy(s, score, sizeof s);
    for (int i = 0; i < L; i++) w0[i] = nd_cal_apply(cal, t, score[i], lval[i]);
    nd_cal_window(cal, t, w1, s, lval, L, &r);
    CHECK(memcmp(w0, w1, sizeof w0) == 0);
}

/* Autocorrelation distance of n calibrated windows (lags 1..L/4) to the target's. */
static double acf_miss(const float *t, const float *x, size_t n, int L)
{
    double acf[ND_CAL_LAGS], d = 0.0;
    nd_mean_acf(acf, x, n, 1, L, 0, L / 4);
    for (int k = 0; k < L / 4; k++) d += fabs(acf[k] - t[ND_CAL_ACF + k]);
    return d / (L / 4);
}

/* Training windows with one burst of 8 busy bins each; the model knows where its bursts
 * are but its scores are noisy, so a plain threshold breaks them into pieces. The filter
 * chosen by the fit brings the windows' autocorrelation much nearer the training data's
 * than no filter does, and keeps the idle share. */
static void test_filter(void)
{
    enum { N = 256, L = 32, NB = N * L, RUN = 8 };
    static float x[NB], scratch[2 * NB + N], score[NB], s[NB], lval[NB], out[NB];
    float t[ND_CAL_SLOTS], none[ND_CAL_SLOTS], cal[ND_CAL_SLOTS];
    nd_rng r;
    nd_rng_seed(&r, 3);
    for (int w = 0; w < N; w++) {
        int a = (int)nd_rng_below(&r, L - RUN + 1), b = (int)nd_rng_below(&r, L - RUN + 1);
        for (int i = 0; i < L; i++) {
            x[w * L + i] = i >= a && i < a + RUN ? expm1f(6.0f + 4.0f * nd_rng_uniform(&r)) : 0.0f;
            score[w * L + i] = (i >= b && i < b + RUN ? 1.0f : 0.0f) + 0.4f * nd_rng_normal(&r);
            lval[w * L + i] = 8.0f + nd_rng_uniform(&r);
        }
    }
    nd_cal_target(t, x, N, 1, L, 0, scratch);
    CHECK(t[ND_CAL_ACF] > 0.5f && isnan(t[ND_CAL_ACF + L / 4]));
    float tn[ND_CAL_SLOTS];
    memcpy(tn, t, sizeof tn);
    tn[ND_CAL_ACF] = NAN; /* no target autocorrelation: no filter */
    nd_cal_fit(none, tn, score, lval, N, L, &r, scratch);
    CHECK(none[ND_CAL_ACF] == 0.0f);
    nd_cal_fit(cal, t, score, lval, N, L, &r, scratch);
    CHECK(cal[ND_CAL_ACF] > 0.0f);
    double miss[2];
    for (int k = 0; k < 2; k++) {
        memcpy(s, score, sizeof s);
        for (int w = 0; w < N; w++)
            nd_cal_window(k ? cal : none, t, out + w * L, s + w * L, lval + w * L, L, &r);
        miss[k] = acf_miss(t, out, N, L);
        size_t zeros = 0;
        for (size_t i = 0; i < NB; i++) zeros += out[i] == 0.0f;
        CHECK_NEAR((double)zeros / NB, t[0], 0.03, 0);
    }
    fprintf(stderr, "autocorrelation miss: no filter %.3f, filter %d %.3f\n", miss[0],
            (int)cal[ND_CAL_ACF], miss[1]);
    CHECK(miss[1] < 0.5 * miss[0]);
}

enum { ML = 8, WINDOWS = 48 };

static double idle_share(const float *x, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++) z += x[i] == 0.0f;
    return (double)z / (double)n;
}

/* Copies model file from to to with the calibration sections in an older layout: k
 * floats per class and channel (ND_CAL_VOL before the volume map, ND_CAL_ACF before the
 * score filter). */
static void write_old_layout(const char *from, const char *to, size_t k)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open(from, NDF_KIND_MODEL, &e);
    ndf_writer *w = r ? ndf_writer_open(to, NDF_KIND_MODEL, &e) : NULL;
    if (!w) CHECK_FAIL_("%s", e.msg);
    for (size_t i = 0; i < ndf_section_count(r); i++) {
        uint32_t tag;
        const void *data;
        size_t len;
        ndf_section_at(r, i, &tag, &data, &len);
        size_t hdr = tag == ND_FOURCC('M', 'A', 'R', 'G') ? 4
                     : tag == ND_FOURCC('C', 'A', 'L', 'B') ? 16 + 256 /* docs/FORMATS.md */
                                                           : 0;
        if (!hdr) {
            CHECK_EQ(ndf_write_section(w, tag, data, len, &e), 0);
            continue;
        }
        size_t rows = (len - hdr) / (4 * ND_CAL_SLOTS);
        unsigned char *out = malloc(hdr + rows * k * 4);
        memcpy(out, data, hdr);
        for (size_t j = 0; j < rows; j++)
            memcpy(out + hdr + j * k * 4, (const unsigned char *)data + hdr + j * ND_CAL_SLOTS * 4,
                   k * 4);
        CHECK_EQ(ndf_write_section(w, tag, out, hdr + rows * k * 4, &e), 0);
        free(out);
    }
    CHECK_EQ(ndf_writer_commit(w, &e), 0);
    ndf_close(r);
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
    nd_dm *m = nd_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_train_opts o = {.steps = 30, .quiet = 1};
    CHECK_EQ(nd_dm_train(m, ds, &o, NULL, &e), 0);
    CHECK_EQ(nd_dm_calibrated(m), 0);

    static float x[WINDOWS * ML], y[WINDOWS * ML];
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(m, 0, WINDOWS, x, NULL, &r, &e), 0); /* fits it on the way */
    CHECK_EQ(nd_dm_calibrated(m), 2);
    double got = idle_share(x, WINDOWS * ML);
    nd_dm_config_mut(m)->sample.calibrate = 0;
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(m, 0, WINDOWS, y, NULL, &r, &e), 0);
    CHECK_EQ(nd_dm_calibrated(m), 0);
    fprintf(stderr, "idle share: training %.3f, calibrated %.3f, uncalibrated %.3f\n", want,
            got, idle_share(y, WINDOWS * ML));
    CHECK_NEAR(got, want, 0.12, 0);
    /* the same images: the calibration moves values, never the order within a window's
     * busy bins */
    for (int w = 0; w < WINDOWS; w++)
        for (int i = 0; i < ML; i++)
            for (int j = 0; j < ML; j++) {
                const float *a = x + w * ML, *b = y + w * ML;
                if (a[i] > 0 && a[j] > 0 && b[i] > 0 && b[j] > 0 && b[i] < b[j])
                    CHECK(a[i] <= a[j]);
            }

    /* stored with the model: a loaded copy samples the same without refitting */
    nd_dm_config_mut(m)->sample.calibrate = 24;
    CHECK_EQ(nd_dm_calibrate(m, &e), 0);
    CHECK_EQ(nd_dm_save(m, "calib.ndm", &e), 0);
    nd_dm *l = nd_dm_load("calib.ndm", 32, &e);
    if (!l) CHECK_FAIL_("load: %s", e.msg);
    CHECK_EQ(nd_dm_calibrated(l), 2);
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(l, 0, WINDOWS, y, NULL, &r, &e), 0);
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* another sampler setting or another step: stale until the next sample refits it */
    nd_dm_config_mut(l)->sample.steps = 6;
    CHECK_EQ(nd_dm_calibrated(l), 0);
    nd_rng_seed(&r, 5);
    CHECK_EQ(nd_dm_sample(l, 1, 4, y, NULL, &r, &e), 0);
    CHECK_EQ(nd_dm_calibrated(l), 2);
    /* class b never has an idle window: none is sampled (a window the threshold left
     * idle keeps its top bin), and its idle share is the training data's */
    CHECK_EQ(nd_dm_sample(l, 1, WINDOWS, y, NULL, &r, &e), 0);
    for (int w = 0; w < WINDOWS; w++) CHECK(idle_share(y + w * ML, ML) < 1.0);
    CHECK_NEAR(idle_share(y, WINDOWS * ML), 1.0 - 1.0 / ML, 0.1, 0);
    /* files of the older layouts load, drop their calibration, and refit it on the
     * targets they have */
    size_t layouts[] = {ND_CAL_VOL, ND_CAL_ACF};
    for (int k = 0; k < 2; k++) {
        write_old_layout("calib.ndm", "calib-old.ndm", layouts[k]);
        nd_dm *old = nd_dm_load("calib-old.ndm", 32, &e);
        if (!old) CHECK_FAIL_("load: %s", e.msg);
        CHECK_EQ(nd_dm_calibrated(old), 0);
        nd_rng_seed(&r, 5);
        CHECK_EQ(nd_dm_sample(old, 0, WINDOWS, y, NULL, &r, &e), 0);
        CHECK_EQ(nd_dm_calibrated(old), 2);
        CHECK_NEAR(idle_share(y, WINDOWS * ML), want, 0.12, 0);
        nd_dm_free(old);
    }
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
    test_filter();
    test_model();
    return 0;
}
