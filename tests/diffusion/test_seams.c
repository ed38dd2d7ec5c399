/*
 * test_seams.c — the flows a model with context planes samples join their windows: on
 * flows of a continuous process (log1p bytes an AR(1), 6 windows each), a tiny model
 * with model.context samples flows window after window (nd_dm_sample_flow, L/2 bins of
 * context), and eval's flow mode finds the correlation lost across their window edges
 * less than half that of the same model's windows sampled independently end to end. A
 * network this small and brief does not reach the real-vs-real floor (docs/MODEL.md,
 * "Context planes", has the figures of a trained one); given the context by its planes
 * alone, without inpainting's replacement, it loses nearly as much as independent windows
 * (0.84 against 0.93 when this was written), which is why the replacement stays on.
 */
#include <math.h>
#include <stdlib.h>

#include "../base/tmpdir.h"
#include "../json_check.h"
#include "check.h"
#include "eval.h"
#include "model.h"
#include "tiny_model.h"

enum { L = 8, C = 1, W = 6, T = W * L, TRAIN = 96, REAL = 64, N = 64 };

static nd_dataset *new_set(void)
{
    const char *names[C] = {"bytes_down"};
    nd_dataset *ds = nd_dataset_new(C, names, L, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "video"), 0);
    return ds;
}

/* n flows of W windows: log1p bytes an AR(1) around 8 (φ 0.9, step sd 0.25) from its
 * stationary law, one group each. */
static void add_flows(nd_dataset *ds, int n, nd_rng *r)
{
    const double phi = 0.9, sd = 0.25;
    for (int f = 0; f < n; f++) {
        double y = 8 + sd / sqrt(1 - phi * phi) * nd_rng_normal(r);
        for (int w = 0; w < W; w++) {
            float x[L];
            for (int i = 0; i < L; i++) {
                y = 8 + phi * (y - 8) + sd * nd_rng_normal(r);
                x[i] = roundf((float)expm1(y));
            }
            CHECK_EQ(nd_dataset_append(ds, 0, (uint64_t)f, x), 0);
        }
    }
}

/* n flows of T bins (n, C, T) as W windows each, one group per flow. */
static nd_dataset *as_windows(const float *x, int n)
{
    nd_dataset *ds = new_set();
    for (int f = 0; f < n; f++)
        for (int w = 0; w < W; w++)
            CHECK_EQ(nd_dataset_append(ds, 0, (uint64_t)f, x + (size_t)f * T + w * L), 0);
    return ds;
}

int main(void)
{
    nd_config cfg;
    tiny_model_config(&cfg, "model.context=true", "model.prediction=v", "train.warmup_steps=20",
                      "train.checkpoint_every=0", "train.val_fraction=0",
                      "train.class_dropout=0", "sample.sampler=dpmpp", "sample.steps=10",
                      "sample.guidance=1", "sample.batch=16", "sample.calibrate=0");
    nd_rng r;
    nd_rng_seed(&r, 9);
    nd_dataset *train = new_set(), *real = new_set();
    add_flows(train, TRAIN, &r);
    add_flows(real, REAL, &r);
    nd_error e = {0};
    nd_dm *m = tiny_dm_new(&cfg, train, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_train_opts o = {.steps = 1500, .quiet = 1};
    nd_train_report rep;
    CHECK_EQ(nd_dm_train(m, train, &o, &rep, &e), 0);

    /* continued: 2W - 1 windows advancing L/2 bins make T bins; independent: W windows */
    float *x = malloc(sizeof(float) * N * T);
    CHECK(x);
    CHECK_EQ(nd_dm_sample_flow(m, 0, N, 2 * W - 1, L / 2, x, &r, &e), 0);
    nd_dataset *cont = as_windows(x, N);
    CHECK_EQ(nd_dm_sample_flow(m, 0, N, W, 0, x, &r, &e), 0);
    nd_dataset *indep = as_windows(x, N);

    nd_json *js = nd_json_new();
    const char *names[] = {"cont", "indep"};
    CHECK_EQ(
        nd_eval_flows(stdout, js, real, (const nd_dataset *const[]){cont, indep}, names, 2, &e),
        0);
    const char *path = tmp_path("seams.json");
    FILE *f = fopen(path, "w");
    CHECK(f);
    CHECK_EQ(nd_json_write(js, f, 0, path, &e), 0);
    fclose(f);
    nd_json_free(js);
    const char *v = "d['flows']['classes']['video']";
    char expr[512];
    snprintf(expr, sizeof expr,
             "%s['indep']['gap_diff'] > 0.5 and %s['cont']['gap_diff'] < 0.5 * "
             "%s['indep']['gap_diff'] and %s['cont']['jump_diff'] < 0.5 * "
             "%s['indep']['jump_diff']",
             v, v, v, v, v);
    CHECK(json_holds(path, 0, expr));

    free(x);
    nd_dataset_free(cont), nd_dataset_free(indep);
    nd_dataset_free(train), nd_dataset_free(real);
    nd_dm_free(m);
    printf("test_seams: ok\n");
    return 0;
}
