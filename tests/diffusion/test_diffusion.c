/*
 * test_diffusion.c — the diffusion process: cosine and linear schedules, training pairs
 * (ε and v targets), and every sampler driven by an oracle that knows the clean images:
 * with the true noise each must land on x0 (DDIM η = 0 and DPM-Solver++ whatever the
 * start, DDPM whatever its noise), with and without guidance and clipping.
 */
#include "check.h"
#include "model.h"

enum { IMG = 32, B = 3 };

typedef struct oracle {
    const nd_diffusion *d;
    const float *x0; /* (B, IMG): the clean image of class y is x0[y] */
    int calls;
} oracle;

/* Returns the exact ε or v for x_t given x0 of the class (the null class: of class 0;
 * guidance then mixes equal predictions for class 0 and different ones otherwise, so
 * the test uses class 0 with guidance). */
static void oracle_fn(void *arg, float *out, const float *x, const float *t, const int *y,
                      int n)
{
    oracle *o = arg;
    o->calls++;
    for (int b = 0; b < n; b++) {
        int cls = y[b] >= B ? 0 : y[b];
        int ti = (int)t[b];
        CHECK((float)ti == t[b] && ti >= 0 && ti < o->d->T);
        double a = sqrt(o->d->abar[ti]), s = sqrt(1 - o->d->abar[ti]);
        for (int i = 0; i < IMG; i++) {
            double x0 = o->x0[cls * IMG + i], xt = x[b * IMG + i];
            double eps = (xt - a * x0) / s;
            out[b * IMG + i] = (float)(o->d->pred == ND_PRED_V ? a * eps - s * x0 : eps);
        }
    }
}

static void test_schedule(void)
{
    nd_diffusion d;
    nd_error e = {0};
    CHECK_EQ(nd_diffusion_init(&d, 1000, ND_SCHEDULE_COSINE, ND_PRED_EPS, &e), 0);
    CHECK(d.abar[0] > 0.9999 && d.abar[0] < 1.0);
    CHECK(d.abar[999] < 1e-4);
    for (int t = 1; t < 1000; t++) CHECK(d.abar[t] < d.abar[t - 1]);
    /* cosine: ᾱ(t = T/2) is cos²(π/4 · (0.5 + s)/(0.5 + ... )) ≈ 0.49 */
    CHECK_NEAR(d.abar[499], 0.4936, 0.01, 0);
    CHECK_EQ(nd_diffusion_init(&d, 1000, ND_SCHEDULE_LINEAR, ND_PRED_EPS, &e), 0);
    CHECK_NEAR(d.abar[0], 1 - 1e-4, 1e-9, 0);
    CHECK(d.abar[999] < 1e-4);
    CHECK_EQ(nd_diffusion_init(&d, 1000, 2, ND_PRED_EPS, &e), ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "schedule 2");
}

static void test_targets(void)
{
    nd_diffusion d;
    CHECK_EQ(nd_diffusion_init(&d, 1000, ND_SCHEDULE_COSINE, ND_PRED_V, NULL), 0);
    float x0[IMG], eps[IMG], xt[IMG], v[IMG];
    nd_rng r;
    nd_rng_seed(&r, 3);
    for (int i = 0; i < IMG; i++)
        x0[i] = 2 * (float)nd_rng_uniform(&r) - 1, eps[i] = nd_rng_normal(&r);
    for (int t = 0; t < 1000; t += 111) {
        nd_diffusion_q_sample(&d, xt, v, x0, eps, t, IMG);
        double a = sqrt(d.abar[t]), s = sqrt(1 - d.abar[t]);
        for (int i = 0; i < IMG; i++) {
            CHECK_NEAR(xt[i], a * x0[i] + s * eps[i], 1e-5, 0);
            /* v-parameterisation identities: x0 = a·xt − s·v, ε = s·xt + a·v */
            CHECK_NEAR(a * xt[i] - s * v[i], x0[i], 1e-5, 0);
            CHECK_NEAR(s * xt[i] + a * v[i], eps[i], 1e-5, 0);
        }
    }
    /* the normal generator: mean 0, variance 1 */
    double m = 0, q = 0;
    for (int i = 0; i < 100000; i++) {
        double z = nd_rng_normal(&r);
        m += z, q += z * z;
    }
    CHECK_NEAR(m / 1e5, 0, 0.02, 0);
    CHECK_NEAR(q / 1e5, 1, 0.02, 0);
}

static void test_samplers(void)
{
    float x0[B * IMG], x[B * IMG];
    nd_rng r;
    nd_rng_seed(&r, 7);
    for (int i = 0; i < B * IMG; i++) x0[i] = 1.8f * (float)nd_rng_uniform(&r) - 0.9f;
    for (int pred = 0; pred < 2; pred++) {
        nd_diffusion d;
        CHECK_EQ(nd_diffusion_init(&d, 1000, ND_SCHEDULE_COSINE, pred, NULL), 0);
        for (int sampler = 0; sampler < 3; sampler++)
            for (int guided = 0; guided < 2; guided++)
                for (int clip = 0; clip < 3; clip++) {
                    oracle o = {&d, x0, 0};
                    int steps = sampler == ND_SAMPLER_DDPM ? 50 : 10;
                    nd_sample_opts so = {.sampler = sampler,
                                         .steps = steps,
                                         .guidance = guided ? 3.0f : 1.0f,
                                         .eta = 0,
                                         .clip = clip,
                                         .null_class = B};
                    int y[B] = {0, 1, 2};
                    if (guided) y[1] = y[2] = 0;
                    nd_diffusion_sample(&d, &so, oracle_fn, &o, x, y, B, IMG, &r);
                    CHECK_EQ(o.calls, steps);
                    for (int b = 0; b < B; b++)
                        for (int i = 0; i < IMG; i++)
                            CHECK_NEAR(x[b * IMG + i], x0[y[b] * IMG + i], 2e-4, 0);
                }
    }
}

/* A biased oracle (predicted x0 far outside [-1, 1]): without clipping the sample
 * leaves the image range, hard and dynamic clipping keep it inside. */
static void biased_fn(void *arg, float *out, const float *x, const float *t, const int *y,
                      int n)
{
    (void)y;
    const nd_diffusion *d = arg;
    for (int b = 0; b < n; b++) {
        double a = sqrt(d->abar[(int)t[b]]), s = sqrt(1 - d->abar[(int)t[b]]);
        for (int i = 0; i < IMG; i++) {
            double x0 = 5.0 * (i % 2 ? 1 : -1); /* far outside */
            out[b * IMG + i] = (float)((x[b * IMG + i] - a * x0) / s);
        }
    }
}

static int proj_calls;
static void halve(void *arg, float *x0)
{
    (void)arg;
    proj_calls++;
    for (int i = 0; i < IMG; i++) x0[i] *= 0.5f;
}

static void test_clipping(void)
{
    nd_diffusion d;
    CHECK_EQ(nd_diffusion_init(&d, 1000, ND_SCHEDULE_COSINE, ND_PRED_EPS, NULL), 0);
    float x[B * IMG];
    int y[B] = {0, 1, 2};
    for (int clip = 0; clip < 3; clip++) {
        nd_rng r;
        nd_rng_seed(&r, 1);
        nd_sample_opts so = {.sampler = ND_SAMPLER_DDIM,
                             .steps = 20,
                             .guidance = 1,
                             .clip = clip,
                             .null_class = B};
        nd_diffusion_sample(&d, &so, biased_fn, &d, x, y, B, IMG, &r);
        float mx = 0;
        for (int i = 0; i < B * IMG; i++) mx = fmaxf(mx, fabsf(x[i]));
        if (clip == ND_CLIP_NONE) CHECK_NEAR(mx, 5.0, 1e-3, 0);
        else CHECK(mx <= 1.0f + 1e-6f);
    }
    /* a projection runs on every predicted image at every step, after clipping: one that
     * halves x0 makes the deterministic sampler land on half the (clipped) target */
    for (int sampler = 0; sampler < 3; sampler++) {
        nd_rng r;
        nd_rng_seed(&r, 1);
        proj_calls = 0;
        nd_sample_opts so = {.sampler = sampler,
                             .steps = 12,
                             .guidance = 1,
                             .clip = ND_CLIP_HARD,
                             .null_class = B,
                             .project = halve};
        nd_diffusion_sample(&d, &so, biased_fn, &d, x, y, B, IMG, &r);
        CHECK_EQ(proj_calls, 12 * B);
        for (int i = 0; i < B * IMG; i++) CHECK_NEAR(fabsf(x[i]), 0.5, 1e-6, 0);
    }
    CHECK_EQ(nd_sampler_from_name("dpmpp"), ND_SAMPLER_DPMPP);
    CHECK_EQ(nd_sampler_from_name("euler"), -1);
    CHECK_EQ(nd_clip_from_name("dynamic"), ND_CLIP_DYNAMIC);
    CHECK_EQ(nd_pred_from_name("v"), ND_PRED_V);
    CHECK_EQ(nd_schedule_from_name("linear"), ND_SCHEDULE_LINEAR);
    CHECK_EQ(nd_schedule_from_name("quadratic"), -1);
    CHECK_STR_EQ(nd_sampler_name(ND_SAMPLER_DPMPP), "dpmpp");
    CHECK_STR_EQ(nd_clip_name(ND_CLIP_HARD), "clip");
    CHECK_STR_EQ(nd_clip_name(7), "?");
}

int main(void)
{
    test_schedule();
    test_targets();
    test_samplers();
    test_clipping();
    return 0;
}
