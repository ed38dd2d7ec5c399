/*
 * test_dm_next.c — windows sampled as the continuation of others (nd_dm_sample_next,
 * inpainting) on a tiny model trained briefly on windows of random levels: a continued
 * window's first K bins give back the context's last K (uncalibrated, up to rounding)
 * while windows sampled without it do not; a flow (nd_dm_sample_flow) is the first
 * window and each continuation's new bins, the same as sampling them one by one from
 * the model's own values of the window before (nd_dm_sample_cont), which a continuation
 * gives back in its first K bins;
 * resampled steps keep the context; bad arguments are refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "tiny_model.h"

enum { L = 8, C = 2, WL = C * L, K = 4, N = 16 };

/* Windows of class 0: each channel a ramp of log1p values from a random level (3..11),
 * so that what a window ends with differs from window to window. */
static nd_dataset *windows(int n, nd_rng *r)
{
    const char *names[C] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(C, names, L, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "ramp"), 0);
    for (int w = 0; w < n; w++) {
        float x[WL];
        for (int c = 0; c < C; c++) {
            double a = 3 + 8 * nd_rng_uniform(r), b = 2 * nd_rng_uniform(r) - 1;
            for (int i = 0; i < L; i++) x[c * L + i] = roundf((float)expm1(a + b * i / L));
        }
        CHECK_EQ(nd_dataset_append(ds, 0, (uint64_t)w, x), 0);
    }
    return ds;
}

/* Mean |log1p difference| between the first K bins of x and the last K of prev. */
static double seam(const float *x, const float *prev, size_t n)
{
    double s = 0;
    for (size_t f = 0; f < n; f++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < K; i++)
                s += fabs(log1p(x[f * WL + c * L + i]) -
                          log1p(prev[f * WL + c * L + L - K + i]));
    return s / (double)(n * C * K);
}

int main(void)
{
    nd_config cfg;
    tiny_model_config(&cfg, "train.val_fraction=0", "sample.steps=8", "sample.guidance=1",
                      "sample.batch=8", "sample.calibrate=0");
    nd_rng r;
    nd_rng_seed(&r, 11);
    nd_dataset *ds = windows(64, &r);
    nd_error e = {0};
    nd_dm *m = tiny_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_train_opts o = {.steps = 60, .quiet = 1};
    nd_train_report rep;
    CHECK_EQ(nd_dm_train(m, ds, &o, &rep, &e), 0);

    /* the context: training windows; continued, their bins come back */
    float *prev = ds->values, x[N * WL], y[N * WL];
    nd_rng a0, a1;
    CHECK_EQ(nd_dm_sample_next(m, 0, N, K, prev, x, &r, &e), 0);
    CHECK_EQ(nd_dm_sample(m, 0, N, y, NULL, &r, &e), 0);
    double with = seam(x, prev, N), without = seam(y, prev, N);
    printf("mean |log1p step| at the seam: continued %.4f, independent %.4f\n", with, without);
    for (size_t f = 0; f < N; f++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < K; i++) {
                double want = prev[f * WL + c * L + L - K + i], got = x[f * WL + c * L + i];
                CHECK_NEAR(got, want, 1.0, 1e-3);
            }
    CHECK(without > 0.5);
    CHECK(with < 0.01 * without);

    /* RePaint's resampling: the context still comes back, and the new bins are drawn
     * anew (what it does to the seams of a trained model: docs/MODEL.md) */
    float z[N * WL];
    nd_rng_seed(&a0, 3), nd_rng_seed(&a1, 3);
    CHECK_EQ(nd_dm_sample_next(m, 0, N, K, prev, x, &a0, &e), 0);
    nd_dm_set_resample(m, 4);
    CHECK_EQ(nd_dm_sample_next(m, 0, N, K, prev, z, &a1, &e), 0);
    nd_dm_set_resample(m, 1);
    CHECK(seam(z, prev, N) < 0.01 * without);
    CHECK(memcmp(x, z, sizeof x));

    /* a flow: the first window, then each continuation's new bins, as one by one, each
     * continuing the model's own values of the window before (its state) */
    enum { W = 3, T = L + (W - 1) * (L - K), CI = 2 * C };
    float flow[N * C * T], w0[N * WL], w1[N * WL], w2[N * WL], s0[N * CI * L], s1[N * CI * L];
    nd_rng a, b;
    nd_rng_seed(&a, 5), nd_rng_seed(&b, 5);
    CHECK_EQ(nd_gaf_channels(nd_dm_gaf(m)), CI);
    CHECK_EQ(nd_dm_sample_flow(m, 0, N, W, K, flow, &a, &e), 0);
    CHECK_EQ(nd_dm_sample_cont(m, 0, N, 0, 0, NULL, w0, s0, &b, &e), 0);
    CHECK_EQ(nd_dm_sample_cont(m, 0, N, K, L - K, s0, w1, s1, &b, &e), 0);
    CHECK_EQ(nd_dm_sample_cont(m, 0, N, K, 2 * (L - K), s1, w2, NULL, &b, &e), 0);
    /* the state's last K bins are the continuation's first K, in the model's values */
    float s2[N * CI * L];
    nd_rng_seed(&b, 5);
    CHECK_EQ(nd_dm_sample_cont(m, 0, N, 0, 0, NULL, w0, s0, &b, &e), 0);
    CHECK_EQ(nd_dm_sample_cont(m, 0, N, K, L - K, s0, w1, s2, &b, &e), 0);
    for (size_t f = 0; f < N; f++)
        for (int c = 0; c < CI; c++)
            for (int i = 0; i < K; i++)
                CHECK_NEAR(s2[(f * CI + c) * L + i], s0[(f * CI + c) * L + L - K + i], 1e-3, 0);
    for (size_t f = 0; f < N; f++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++) {
                const float *src = t < L ? w0 : t < L + (L - K) ? w1 : w2;
                int at = t < L ? t : t < L + (L - K) ? t - (L - K) : t - 2 * (L - K);
                CHECK(flow[(f * C + c) * T + t] == src[f * WL + c * L + at]);
            }
    /* K 0: independent windows end to end, as nd_dm_sample gives them */
    float flat[N * C * 2 * L];
    nd_rng_seed(&a, 9), nd_rng_seed(&b, 9);
    CHECK_EQ(nd_dm_sample_flow(m, 0, N, 2, 0, flat, &a, &e), 0);
    CHECK_EQ(nd_dm_sample(m, 0, N, w0, NULL, &b, &e), 0);
    CHECK_EQ(nd_dm_sample(m, 0, N, w1, NULL, &b, &e), 0);
    for (size_t f = 0; f < N; f++)
        for (int c = 0; c < C; c++)
            CHECK(!memcmp(flat + (f * C + c) * 2 * L + L, w1 + f * WL + c * L,
                          L * sizeof(float)));

    /* refused: a context as long as the window, no window, a class out of range, a
     * context with no window to continue */
    CHECK_EQ(nd_dm_sample_next(m, 0, N, L, prev, x, &r, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "context of 8 bins");
    CHECK_EQ(nd_dm_sample_flow(m, 0, N, 0, K, flow, &r, &e), ND_EUSAGE);
    CHECK_EQ(nd_dm_sample_next(m, 3, N, K, prev, x, &r, &e), ND_EUSAGE);
    CHECK_EQ(nd_dm_sample_cont(m, 0, N, K, -1, NULL, x, NULL, &r, &e), ND_EUSAGE);
    nd_dm_free(m);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
    printf("ok\n");
    return 0;
}
