/*
 * test_dm.c — the trainer and the model file: a tiny model overfits a two-window
 * dataset (loss falls to near zero and samples decode to the training windows), a run
 * stopped half-way, saved, loaded and resumed ends bit-identical to one that never
 * stopped, and broken model files give clear errors.
 */
#include <unistd.h>

#include "check.h"
#include "model.h"
#include "tiny_model.h"

enum { L = 8 };

static void tiny_config(nd_config *cfg, const char *pred)
{
    tiny_model_config(cfg, "model.max_classes=2", "train.warmup_steps=10",
                      "train.checkpoint_every=0", "train.val_fraction=0",
                      "train.class_dropout=0", "sample.steps=20", "sample.guidance=1",
                      "sample.batch=4",
                      "sample.calibrate=0", /* the network is under test (test_calib: the map) */
                      "model.decode=lsq"); /* the whole-image decode: precise on a fitted model */
    snprintf(cfg->model.prediction, sizeof cfg->model.prediction, "%s", pred);
}

static const float win[2][L] = {{1000, 0, 5000, 200, 0, 0, 80000, 100},
                                {0, 300, 300, 0, 9000, 9000, 0, 40}};

static nd_dataset *tiny_dataset(int copies)
{
    const char *names[] = {"bytes_down"};
    nd_dataset *ds = nd_dataset_new(1, names, L, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "a"), 0);
    CHECK_EQ(nd_dataset_class(ds, "b"), 1);
    for (int c = 0; c < copies; c++)
        for (int k = 0; k < 2; k++) CHECK_EQ(nd_dataset_append(ds, (uint16_t)k, (uint64_t)(2 * c + k), win[k]), 0);
    return ds;
}

static void test_overfit(const char *pred, int steps)
{
    nd_config cfg;
    tiny_config(&cfg, pred);
    nd_dataset *ds = tiny_dataset(1);
    nd_error e = {0};
    nd_dm *m = nd_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_train_opts o = {.steps = 15, .quiet = 1};
    nd_train_report rep;
    CHECK_EQ(nd_dm_train(m, ds, &o, &rep, &e), 0);
    double first = rep.last_loss;
    o.steps = (uint64_t)steps;
    CHECK_EQ(nd_dm_train(m, ds, &o, &rep, &e), 0);
    fprintf(stderr, "%s: loss %.4f after 15 steps, %.4f after %llu (%.1f s)\n", pred, first,
            rep.last_loss, (unsigned long long)nd_dm_step(m), rep.seconds);
    CHECK_U64_EQ(nd_dm_step(m), (uint64_t)steps);
    CHECK(rep.last_loss < 0.2 * first);
    if (steps < 800) goto done; /* a shorter run: the loss falls, no sample checks */
    CHECK(rep.last_loss < 0.1 * first);
    CHECK(rep.last_loss < 0.08);
    /* samples of each class come back as that class's window */
    float x[4 * L];
    nd_rng r;
    nd_rng_seed(&r, 5);
    for (int k = 0; k < 2; k++) {
        CHECK_EQ(nd_dm_sample(m, k, 4, x, NULL, &r, &e), 0);
        for (int s = 0; s < 4; s++)
            for (int i = 0; i < L; i++) {
                float got = x[s * L + i], want = win[k][i];
                if (want == 0) CHECK(got == 0);
                else /* within 20% of the class's log1p range of values */
                    CHECK_NEAR(log1pf(got), log1pf(want),
                               0.2 * (nd_dm_scale(m, k)->hi[0] - nd_dm_scale(m, k)->lo[0]), 0);
            }
    }
done:
    nd_dm_free(m);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
}

static void test_resume(void)
{
    nd_config cfg;
    tiny_config(&cfg, "v");
    cfg.train.val_fraction = 0.3; /* some groups held out: the split must survive too */
    cfg.train.class_dropout = 0.2;
    nd_dataset *ds = tiny_dataset(6);
    nd_error e = {0};
    const char *path = "resume.ndm";
    /* uninterrupted: 40 steps */
    nd_dm *a = nd_dm_new(&cfg, ds, &e);
    CHECK(a);
    nd_train_opts o = {.steps = 40, .quiet = 1};
    nd_train_report rep;
    CHECK_EQ(nd_dm_train(a, ds, &o, &rep, &e), 0);
    CHECK(rep.val_loss >= 0);
    /* 20, saved (through the trainer's own checkpoint), loaded, 20 more */
    nd_dm *b = nd_dm_new(&cfg, ds, &e);
    o.steps = 20;
    o.path = path;
    CHECK_EQ(nd_dm_train(b, ds, &o, &rep, &e), 0);
    nd_dm_free(b);
    b = nd_dm_load(path, (int)cfg.train.batch, &e);
    if (!b) CHECK_FAIL_("load: %s", e.msg);
    CHECK_U64_EQ(nd_dm_step(b), 20);
    o.steps = 40;
    o.path = NULL;
    CHECK_EQ(nd_dm_train(b, ds, &o, &rep, &e), 0);
    size_t n = nd_unet_num_params(nd_dm_unet(a));
    CHECK_EQ(n, nd_unet_num_params(nd_dm_unet(b)));
    CHECK(memcmp(nd_unet_params(nd_dm_unet(a)), nd_unet_params(nd_dm_unet(b)), n * 4) == 0);
    /* the EMA too: save both and compare the files' EMAW bytes through sampling */
    float xa[4 * L], xb[4 * L];
    nd_rng ra, rb;
    nd_rng_seed(&ra, 9);
    nd_rng_seed(&rb, 9);
    CHECK_EQ(nd_dm_sample(a, 1, 4, xa, NULL, &ra, &e), 0);
    CHECK_EQ(nd_dm_sample(b, 1, 4, xb, NULL, &rb, &e), 0);
    CHECK(memcmp(xa, xb, sizeof xa) == 0);
    /* and a different stop point must not be the same run by accident */
    nd_dm *c = nd_dm_new(&cfg, ds, &e);
    o.steps = 39;
    CHECK_EQ(nd_dm_train(c, ds, &o, &rep, &e), 0);
    CHECK(memcmp(nd_unet_params(nd_dm_unet(a)), nd_unet_params(nd_dm_unet(c)), n * 4) != 0);
    /* a stop request saves and reports ND_EINTR */
    volatile int stop = 1;
    o.stop = &stop;
    o.steps = 100;
    o.path = path;
    CHECK_EQ(nd_dm_train(c, ds, &o, &rep, &e), ND_EINTR);
    CHECK(rep.interrupted);
    nd_dm *d = nd_dm_load(path, 8, &e);
    CHECK(d);
    CHECK_U64_EQ(nd_dm_step(d), 39);
    /* the model keeps the dataset's classes and the class scales */
    CHECK_STR_EQ(nd_dm_dataset(d)->class_names[1], "b");
    CHECK_NEAR(nd_dm_scale(d, 0)->hi[0], log1pf(80000), 1e-5, 0);
    nd_dm_free(a), nd_dm_free(b), nd_dm_free(c), nd_dm_free(d);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
}

static void corrupt(const char *src, const char *dst, long at, int truncate, int want,
                    const char *msg)
{
    FILE *f = fopen(src, "rb");
    CHECK(f);
    static unsigned char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(n > 0 && n < sizeof buf);
    if (truncate) n = (size_t)at;
    else buf[at < 0 ? (long)n + at : at] ^= 0x10;
    f = fopen(dst, "wb");
    CHECK(fwrite(buf, 1, n, f) == n);
    fclose(f);
    nd_error e = {0};
    nd_dm *m = nd_dm_load(dst, 8, &e);
    CHECK(!m);
    CHECK_EQ(e.code, want);
    CHECK_CONTAINS(e.msg, dst);
    CHECK_CONTAINS(e.msg, msg);
}

static void test_bad_files(void)
{
    nd_error e = {0};
    CHECK(!nd_dm_load("no-such-model.ndm", 8, &e));
    CHECK_CONTAINS(e.msg, "no-such-model.ndm");
    corrupt("resume.ndm", "bad-crc.ndm", -100, 0, ND_ECRC, "");
    corrupt("resume.ndm", "bad-trunc.ndm", 3000, 1, ND_ETRUNC, "");
    /* a dataset file is not a model */
    nd_dataset *ds = tiny_dataset(1);
    CHECK_EQ(nd_dataset_save(ds, "data.ndd", &e), 0);
    CHECK(!nd_dm_load("data.ndd", 8, &e));
    CHECK_EQ(e.code, ND_EFORMAT);
    nd_dataset_free(ds);
    /* a model file that lacks the weights */
    ndf_writer *w = ndf_writer_open("noweights.ndm", NDF_KIND_MODEL, &e);
    ds = tiny_dataset(0);
    CHECK_EQ(nd_dataset_write_sections(ds, w, 0, &e), 0);
    CHECK_EQ(ndf_writer_commit(w, &e), 0);
    CHECK(!nd_dm_load("noweights.ndm", 8, &e));
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "DMCF");
    nd_dataset_free(ds);
}

int main(void)
{
    test_overfit("v", 800);
    test_overfit("eps", 250);
    test_resume();
    test_bad_files();
    return 0;
}
