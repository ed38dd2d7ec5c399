/*
 * test_live_snapshot.c — nd_dm_snapshot, the sampling-only copy of a model that `live`
 * hands to its replay thread after each checkpoint (live/pipe_replay.c): it samples the same
 * windows as the model it was copied from (and as that model's checkpoint file loaded
 * back, which is what the replay thread used to read), it is a copy (training, a new
 * class or freeing the original leave it as it was, also while another thread samples
 * from it), and a later snapshot has the newer weights.
 */
#include <pthread.h>

#include "check.h"
#include "live.h"
#include "tiny_model.h"
#include "../base/tmpdir.h"

enum { L = 8, C = 2, WF = C * L, N = 3 };

static void tiny_config(nd_config *cfg)
{
    /* guidance 2: the null-class pass doubles the denoiser's batch (2 × sample.batch),
     * the case the snapshot's max_batch is sized for */
    tiny_model_config(cfg, "model.max_classes=3", "train.warmup_steps=5",
                      "train.class_dropout=0.2", "sample.steps=8", "sample.guidance=2",
                      "sample.batch=2");
}

static void window(float *x, int cls, int i)
{
    for (int b = 0; b < L; b++) {
        x[b] = cls ? 100.0f + 10.0f * (float)((b + i) % 5)
                   : (b % 2 ? 0.0f : 3000.0f + 100.0f * (float)i);
        x[L + b] = cls ? 200.0f : (b % 2 ? 0.0f : 80.0f);
    }
}

static nd_dataset *tiny_dataset(void)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(C, names, L, 100000000ull);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "a"), 0);
    CHECK_EQ(nd_dataset_class(ds, "b"), 1);
    float x[WF];
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 2; k++) {
            window(x, k, i);
            CHECK_EQ(nd_dataset_append(ds, (uint16_t)k, (uint64_t)(2 * i + k), x), 0);
        }
    return ds;
}

static void train(nd_dm *m, int steps)
{
    float x[8 * WF];
    int y[8];
    nd_error e = {0};
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 8; i++) {
            y[i] = i % 2;
            window(x + i * WF, y[i], (s + i) % 8);
        }
        if (nd_dm_train_step(m, x, y, 8, NULL, &e)) CHECK_FAIL_("train step: %s", e.msg);
    }
}

/* N windows of class cls from m, noise from seed. */
static void sample(nd_dm *m, int cls, uint64_t seed, float *x)
{
    nd_rng r;
    nd_rng_seed(&r, seed);
    nd_error e = {0};
    if (nd_dm_sample(m, cls, N, x, NULL, &r, &e)) CHECK_FAIL_("sample: %s", e.msg);
}

static void check_same(const float *a, const float *b, const char *what)
{
    for (int i = 0; i < N * WF; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)))
            CHECK_FAIL_("%s: value %d differs (%.9g vs %.9g)", what, i, (double)a[i],
                        (double)b[i]);
}

static int differs(const float *a, const float *b)
{
    return memcmp(a, b, N * WF * sizeof(float)) != 0;
}

typedef struct sampler_arg {
    nd_dm *m;
    float x[2][N * WF];
} sampler_arg;

static void *sampler_main(void *arg)
{
    sampler_arg *s = arg;
    for (int k = 0; k < 2; k++) sample(s->m, k, 11, s->x[k]);
    return NULL;
}

int main(void)
{
    nd_config cfg;
    tiny_config(&cfg);
    nd_dataset *ds = tiny_dataset();
    nd_error e = {0};
    nd_dm *m = opts_dm_new(&cfg, ds, &e); /* with the config as provenance */
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    train(m, 20);

    /* same windows as the model, for every class, at its step, classes, scales */
    int mb = 2 * (int)nd_dm_get_settings(m)->sample.batch;
    nd_dm *s1 = nd_dm_snapshot(m, mb, &e);
    if (!s1) CHECK_FAIL_("snapshot: %s", e.msg);
    CHECK_U64_EQ(nd_dm_step(s1), 20);
    CHECK_EQ(nd_dm_dataset(s1)->n_classes, 2);
    CHECK_STR_EQ(nd_dm_dataset(s1)->class_names[1], "b");
    CHECK(!memcmp(&nd_dm_dataset(s1)->stats[1], &nd_dm_dataset(m)->stats[1],
                  sizeof nd_dm_dataset(m)->stats[1]));
    CHECK_STR_EQ(nd_dm_dataset(s1)->config_yaml, nd_dm_dataset(m)->config_yaml);
    for (int k = 0; k < 2; k++)
        CHECK(!memcmp(nd_dm_scale(s1, k), nd_dm_scale(m, k), sizeof(nd_gaf_scale)));
    float a[2][N * WF], b[N * WF];
    for (int k = 0; k < 2; k++) {
        sample(m, k, 11, a[k]);
        sample(s1, k, 11, b);
        check_same(b, a[k], "snapshot vs model");
    }
    CHECK(differs(a[0], a[1]));
    /* ... and as the checkpoint file loaded back (what the replay thread read before) */
    char path[512];
    snprintf(path, sizeof path, "%s/snap.ndm", tmp_dir());
    CHECK_EQ(nd_dm_save(m, path, &e), 0);
    nd_dm *loaded = nd_dm_load(path, mb, NULL, &e);
    if (!loaded) CHECK_FAIL_("load: %s", e.msg);
    for (int k = 0; k < 2; k++) {
        sample(loaded, k, 11, b);
        check_same(b, a[k], "loaded checkpoint vs model");
    }
    nd_dm_free(loaded);

    /* a copy: the model trains on and takes a class while another thread samples the
     * snapshot; the snapshot still gives the windows of step 20 */
    sampler_arg sa = {.m = s1};
    pthread_t thr;
    CHECK_EQ(pthread_create(&thr, NULL, sampler_main, &sa), 0);
    train(m, 15);
    CHECK_EQ(pthread_join(thr, NULL), 0);
    nd_gaf_scale sc = *nd_dm_scale(m, 0);
    CHECK_EQ(nd_dm_add_class(m, "c", &sc, &e), 2);
    CHECK_EQ(nd_dm_dataset(s1)->n_classes, 2);
    CHECK_U64_EQ(nd_dm_step(s1), 20);
    for (int k = 0; k < 2; k++) {
        check_same(sa.x[k], a[k], "snapshot sampled while the model trains");
        sample(s1, k, 11, b);
        check_same(b, a[k], "snapshot after the model trained on");
    }

    /* a new snapshot has the newer weights; both outlive the model */
    nd_dm *s2 = nd_dm_snapshot(m, mb, &e);
    if (!s2) CHECK_FAIL_("snapshot: %s", e.msg);
    CHECK_U64_EQ(nd_dm_step(s2), 35);
    CHECK_EQ(nd_dm_dataset(s2)->n_classes, 3);
    float c[N * WF];
    sample(m, 0, 11, c);
    CHECK(differs(c, a[0]));
    nd_dm_free(m);
    sample(s2, 0, 11, b);
    check_same(b, c, "second snapshot vs model at step 35");
    sample(s1, 0, 11, b);
    check_same(b, a[0], "first snapshot after the model was freed");
    nd_dm_free(s1);
    nd_dm_free(s2);
    nd_dm_free(NULL);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
    fprintf(stderr, "snapshot: same windows as the model and its checkpoint; unchanged by "
                    "15 more steps and a new class\n");
    return 0;
}
