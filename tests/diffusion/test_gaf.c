/*
 * test_gaf.c — GASF encode/decode: exact round trips on valid images (diagonal and
 * least-squares decodes), raw windows through the class scaling and activity masks,
 * and decodes of noisy images (the whole-image decode must beat the diagonal).
 */
#include "check.h"
#include "model.h"

enum { L = 64, C = 2 };

static nd_rng rng;

static void test_round_trip(void)
{
    static float v[C * L], img[C * L * L], back[C * L];
    for (int i = 0; i < C * L; i++) v[i] = (float)nd_rng_uniform(&rng);
    v[3] = 0.0f;
    v[4] = 1.0f;
    v[5] = 1e-3f;
    nd_gaf_encode(img, v, C, L);
    /* a valid GASF: symmetric, in [-1, 1], G_ij = cos(φ_i + φ_j) */
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            CHECK(img[i * L + j] == img[j * L + i]);
            CHECK(fabsf(img[i * L + j]) <= 1.0f + 1e-6f);
            CHECK_NEAR(img[i * L + j], cos(acos(v[i]) + acos(v[j])), 2e-6, 0);
        }
    nd_gaf_decode(back, img, C, L, ND_GAF_LSQ);
    for (int i = 0; i < C * L; i++) CHECK_NEAR(back[i], v[i], 2e-6, 1e-6);
    /* the diagonal alone loses precision near v = 0 (√ of a rounding error), not
     * elsewhere */
    nd_gaf_decode(back, img, C, L, ND_GAF_DIAG);
    for (int i = 0; i < C * L; i++)
        if (v[i] > 0.1f) CHECK_NEAR(back[i], v[i], 0, 1e-5);
        else CHECK_NEAR(back[i], v[i], 6e-4, 0);
}

static void test_window_round_trip(int scaling, int mask)
{
    nd_gaf_spec g = {.C = C, .L = L, .scaling = scaling, .mask = mask, .decode = ND_GAF_LSQ};
    static float x[C * L], img[2 * C * L * L], back[C * L];
    for (int i = 0; i < C * L; i++) {
        double u = nd_rng_uniform(&rng);
        x[i] = u < 0.3 ? 0.0f : (float)floor(exp(4 + 10 * nd_rng_uniform(&rng)));
    }
    x[0] = 54.0f; /* somewhere a small value */
    nd_gaf_scale sc;
    nd_gaf_fit_scale(&sc, x, 1, C, L);
    CHECK_NEAR(sc.lo[0], log1pf(54.0f), 1e-6, 0);
    CHECK_EQ(nd_gaf_channels(&g), mask ? 2 * C : C);
    nd_gaf_window_to_image(img, x, &g, &sc);
    nd_gaf_image_to_window(back, img, &g, &sc, -1);
    for (int i = 0; i < C * L; i++) {
        if (x[i] == 0.0f) CHECK(back[i] == 0.0f);
        else CHECK_NEAR(back[i], x[i], 0, 2e-4); /* float log/exp of up to 1e6 bytes */
    }
}

/* Noise on the image: the least-squares decode uses L² entries for L unknowns and must
 * be closer than the diagonal, which reads one entry per value. */
static void test_noisy(void)
{
    static float v[C * L], img[C * L * L], a[C * L], b[C * L];
    double ed = 0, el = 0;
    for (int rep = 0; rep < 8; rep++) {
        for (int i = 0; i < C * L; i++) v[i] = 0.2f + 0.8f * (float)nd_rng_uniform(&rng);
        nd_gaf_encode(img, v, C, L);
        for (int i = 0; i < C * L * L; i++) img[i] += 0.1f * nd_rng_normal(&rng);
        nd_gaf_decode(a, img, C, L, ND_GAF_DIAG);
        nd_gaf_decode(b, img, C, L, ND_GAF_LSQ);
        for (int i = 0; i < C * L; i++) {
            CHECK(a[i] >= 0 && a[i] <= 1 && b[i] >= 0 && b[i] <= 1);
            ed += (a[i] - v[i]) * (a[i] - v[i]);
            el += (b[i] - v[i]) * (b[i] - v[i]);
        }
    }
    ed = sqrt(ed / (8 * C * L));
    el = sqrt(el / (8 * C * L));
    fprintf(stderr, "noisy decode RMS: diag %.4f lsq %.4f\n", ed, el);
    CHECK(el < 0.5 * ed);
    CHECK(el < 0.02);
    /* out-of-range and asymmetric images still decode into [0, 1] */
    for (int i = 0; i < C * L * L; i++) img[i] = 3.0f * nd_rng_normal(&rng);
    nd_gaf_decode(b, img, C, L, ND_GAF_LSQ);
    for (int i = 0; i < C * L; i++) CHECK(b[i] >= 0 && b[i] <= 1);
}

/* Headroom scaling: the largest training value sits at ND_GAF_VMAX, not at the top, so
 * noise on an image of busy bins near the largest decodes to values spread around it
 * (some above) instead of many bins at exactly the largest, as zero-aware scaling gives
 * (the GASF diagonal cannot pass 1). */
static void test_headroom(void)
{
    static float x[C * L], img[C * L * L], back[C * L];
    nd_gaf_scale sc = {.lo = {log1pf(54.0f)}, .hi = {log1pf(2e6f)}};
    int at_max[2] = {0, 0}, above = 0;
    for (int s = 0; s < 2; s++) {
        nd_gaf_spec g = {.C = 1,
                         .L = L,
                         .scaling = s ? ND_GAF_HEADROOM : ND_GAF_ZERO_AWARE,
                         .mask = 0,
                         .decode = ND_GAF_DIAG};
        nd_rng_seed(&rng, 7);
        for (int rep = 0; rep < 16; rep++) {
            for (int i = 0; i < L; i++)
                x[i] = (float)exp(log1p(2e6) - 0.5 * nd_rng_uniform(&rng));
            nd_gaf_window_to_image(img, x, &g, &sc);
            for (int i = 0; i < L * L; i++) img[i] += 0.1f * nd_rng_normal(&rng);
            nd_gaf_image_to_window(back, img, &g, &sc, -1);
            for (int i = 0; i < L; i++) {
                CHECK(back[i] > 0.0f);
                at_max[s] += fabsf(log1pf(back[i]) - sc.hi[0]) < 1e-3f;
                if (s) above += log1pf(back[i]) > sc.hi[0] + 1e-3f;
            }
        }
    }
    fprintf(stderr,
            "bins decoded at the largest value: zero-aware %d, headroom %d of %d; "
            "above it (headroom) %d\n",
            at_max[0], at_max[1], 16 * L, above);
    CHECK(at_max[0] > 16 * L / 10);
    CHECK(at_max[1] < 16 * L / 100); /* only by chance within 1e-3 of it */
    CHECK(above > 0);
    /* and exactly the largest value still round-trips */
    nd_gaf_spec g = {.C = 1, .L = L, .scaling = ND_GAF_HEADROOM, .decode = ND_GAF_DIAG};
    x[0] = 2e6f;
    nd_gaf_window_to_image(img, x, &g, &sc);
    CHECK_NEAR(img[0], 2 * ND_GAF_VMAX * ND_GAF_VMAX - 1, 1e-5, 0);
}

int main(void)
{
    nd_rng_seed(&rng, 42);
    test_round_trip();
    test_headroom();
    for (int s = 0; s < 3; s++)
        for (int m = 0; m < 2; m++) test_window_round_trip(s, m);
    test_noisy();
    return 0;
}
