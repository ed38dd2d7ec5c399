/*
 * test_context.c — context planes (model.context): a network trained on flows learns how
 * a flow's next window follows the one before, which inpainting alone cannot tell it.
 * Flows of two windows, each window flat at one of two levels, the second always at the
 * other level than the first (class "switch": either first). Continued with K known
 * bins (nd_dm_sample_next, no place in the flow given), a window's new bins must switch
 * level. A network with context planes does so; the same network without them, trained
 * on the same windows, continues the known level (every window it saw is flat), so the
 * check fails when the planes are not trained or not read. Its position rows: in class
 * "burst" every flow starts high and ends low, so that its flows' first windows
 * (nd_dm_sample_flow) are high where any window of it (nd_dm_sample, no place given) is
 * high half the time, and a network blind to the rows makes both alike. Also:
 * the setting survives the model file; more context than training gave and distilling
 * such a model are refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "tiny_model.h"

enum { L = 8, C = 1, K = 4, FLOWS = 64, N = 32 };

static const double LOW = 3.0, HIGH = 10.0; /* log1p levels */

/* FLOWS flows of each class, one group each: a window flat at one level, then one flat
 * at the other, each bin jittered a little; class 0 ("switch") starts at either level,
 * flow f at row 2f, class 1 ("burst") always high. */
static nd_dataset *flows(nd_rng *r)
{
    const char *names[C] = {"bytes_down"};
    nd_dataset *ds = nd_dataset_new(C, names, L, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "switch"), 0);
    CHECK_EQ(nd_dataset_class(ds, "burst"), 1);
    for (int f = 0; f < 2 * FLOWS; f++) {
        int k = f >= FLOWS, high = k || f % 2;
        for (int w = 0; w < 2; w++) {
            float x[L];
            double level = (high ^ w) ? HIGH : LOW;
            for (int i = 0; i < L; i++)
                x[i] = roundf((float)expm1(level + 0.3 * (nd_rng_uniform(r) - 0.5)));
            CHECK_EQ(nd_dataset_append(ds, k, (uint64_t)f, x), 0);
        }
    }
    return ds;
}

/* Share of the N continued windows x whose new bins (K..L-1) sit nearer the level other
 * than their context's (prev: the flows' first windows, flow f's at row 2f). */
static double switched(const float *x, const nd_dataset *ds)
{
    int n = 0;
    for (int f = 0; f < N; f++) {
        double known = log1p(ds->values[(size_t)2 * f * L]), mean = 0;
        for (int i = K; i < L; i++) mean += log1p(x[(size_t)f * L + i]) / (L - K);
        double other = known > 0.5 * (LOW + HIGH) ? LOW : HIGH;
        n += fabs(mean - other) < fabs(mean - (LOW + HIGH - other));
    }
    return (double)n / N;
}

/* Share of the n windows x (n, L) whose mean log1p is nearer HIGH than LOW. */
static double high_share(const float *x, int n)
{
    int h = 0;
    for (int f = 0; f < n; f++) {
        double mean = 0;
        for (int i = 0; i < L; i++) mean += log1p(x[(size_t)f * L + i]) / L;
        h += mean > 0.5 * (LOW + HIGH);
    }
    return (double)h / n;
}

/* A model with or without context planes trained on ds; the share of its continuations
 * that switch level. */
static double trained(const nd_dataset *ds, int context)
{
    nd_config cfg;
    tiny_model_config(&cfg, context ? "model.context=true" : "model.context=false",
                      "model.prediction=v", "train.warmup_steps=20", "train.checkpoint_every=0",
                      "train.val_fraction=0", "train.class_dropout=0", "sample.sampler=dpmpp",
                      "sample.steps=10", "sample.guidance=1", "sample.batch=16",
                      "sample.calibrate=0", "train.ema_decay=0.99");
    nd_error e = {0};
    nd_dm *m = tiny_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_train_opts o = {.steps = 1200, .quiet = 1};
    nd_train_report rep;
    CHECK_EQ(nd_dm_train(m, ds, &o, &rep, &e), 0);
    /* the flows' first windows, continued */
    float prev[N * L], x[N * L];
    for (int f = 0; f < N; f++)
        memcpy(prev + f * L, ds->values + (size_t)2 * f * L, sizeof(float) * L);
    nd_rng r;
    nd_rng_seed(&r, 7);
    CHECK_EQ(nd_dm_sample_next(m, 0, N, K, prev, x, &r, &e), 0);
    double s = switched(x, ds);
    if (context) {
        /* continued by more bins than it was trained on: refused */
        CHECK_EQ(nd_dm_sample_next(m, 0, N, L / 2 + 1, prev, x, &r, &e), ND_EUSAGE);
        CHECK_CONTAINS(e.msg, "1 to 4 (L/2) bins");
        float flow[N * (2 * L)];
        CHECK_EQ(nd_dm_sample_flow(m, 0, N, 2, L / 2 + 1, flow, &r, &e), ND_EUSAGE);
        CHECK_CONTAINS(e.msg, "1 to 4 (L/2) bins");
        /* flows' first windows, by their position row, against any window of the class */
        float first[4 * N * L];
        CHECK_EQ(nd_dm_sample_flow(m, 1, 4 * N, 1, 0, first, &r, &e), 0);
        double starts = high_share(first, 4 * N);
        CHECK_EQ(nd_dm_sample(m, 1, 4 * N, first, NULL, &r, &e), 0);
        double any = high_share(first, 4 * N);
        printf("burst windows that are high: flows' first %.2f (training 1), any %.2f (0.5)\n",
               starts, any);
        CHECK(starts >= 0.8);
        CHECK(starts - any >= 0.2);
        /* the setting is in the model file, and a student could not learn it */
        CHECK_EQ(nd_dm_save(m, "context.ndm", &e), 0);
        nd_dm *back = nd_dm_load("context.ndm", 8, NULL, &e);
        if (!back) CHECK_FAIL_("nd_dm_load: %s", e.msg);
        CHECK_EQ(nd_dm_get_settings(back)->context, 1);
        CHECK_EQ(nd_dm_get_settings(back)->flow_position, 1);
        CHECK_EQ(nd_dm_get_settings(back)->net.cond, 2 * C + 1);
        CHECK(nd_dm_get_settings(back)->net.pos_rows > 1);
        nd_dm_free(back);
        nd_dm_distill d = {.from_steps = 8, .to_steps = 4, .round_steps = 10, .lr = 1e-3};
        CHECK(nd_dm_distill_begin(m, &d, &e) != 0);
        CHECK_CONTAINS(e.msg, "context planes");
        remove("context.ndm");
    }
    nd_dm_free(m);
    return s;
}

int main(void)
{
    nd_rng r;
    nd_rng_seed(&r, 5);
    nd_dataset *ds = flows(&r);
    double with = trained(ds, 1), without = trained(ds, 0);
    printf("continued windows that switch level: with context planes %.2f, without %.2f\n",
           with, without);
    CHECK(with >= 0.7);
    CHECK(without <= 0.5);
    nd_dataset_free(ds);
    printf("test_context: ok\n");
    return 0;
}
