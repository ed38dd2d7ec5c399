/*
 * test_distill.c — distillation (model/distill.c). A tiny teacher learns windows that
 * burst at a class's own positions and are noisy elsewhere, with classifier-free
 * guidance. Its student, distilled from 16 DDIM steps down to 2 with the guidance scale
 * as an input (1 to 4), must sample in 2 steps what the teacher samples in 50 (DDPM,
 * guidance 2): per position, the mean and spread of log1p bytes, and the idle share,
 * closer to the teacher's than the same network sampled in 2 steps before distillation
 * (the teacher's weights, unguided: what an untrained student gives). Asked for scale 1
 * and for scale 4, it must sample closer to the teacher's own DDIM at that scale than at
 * the other (a student blind to its input fails this). A student with the teacher's
 * scale learnt in instead (no input) samples the teacher's as well. Then a distillation
 * stopped half-way, saved, loaded and resumed ends bit-identical to one that never
 * stopped, across a round's end; the file keeps how the student was made; a finished
 * student is distilled further (2 steps to 1) from its own steps only, keeping its
 * input; a teacher or a range that cannot be distilled is refused with a reason.
 */
#include <math.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "tiny_model.h"

enum { L = 16, PER_CLASS = 64, SAMPLES = 256, BURST = 3, MID = 8 };

static int burst_at(int cls, int i)
{
    int lo = cls ? MID : 0;
    return i >= lo && i < lo + BURST;
}

static nd_dataset *burst_dataset(void)
{
    const char *names[] = {"bytes_down"};
    nd_dataset *ds = nd_dataset_new(1, names, L, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "start"), 0);
    CHECK_EQ(nd_dataset_class(ds, "middle"), 1);
    nd_rng r;
    nd_rng_seed(&r, 5);
    for (int w = 0; w < PER_CLASS; w++)
        for (int k = 0; k < 2; k++) {
            float x[L];
            for (int i = 0; i < L; i++) {
                double u = nd_rng_uniform(&r);
                if (burst_at(k, i)) x[i] = (float)(1e5 * exp(3.0 * u));
                else x[i] = u < 0.3 ? 0.0f : (float)(100.0 * exp(4.0 * u));
            }
            CHECK_EQ(nd_dataset_append(ds, (uint16_t)k, (uint64_t)(2 * w + k), x), 0);
        }
    return ds;
}

/* Per class and position: mean and spread of log1p, idle share. */
typedef struct profile {
    double mean[2][L], sd[2][L], idle[2][L];
} profile;

static void measure(nd_dm *m, profile *p, uint64_t seed)
{
    nd_error e = {0};
    nd_rng r;
    nd_rng_seed(&r, seed);
    float x[SAMPLES * L];
    for (int k = 0; k < 2; k++) {
        if (nd_dm_sample(m, k, SAMPLES, x, NULL, &r, &e)) CHECK_FAIL_("sample: %s", e.msg);
        for (int i = 0; i < L; i++) {
            double s = 0, s2 = 0, z = 0;
            for (int n = 0; n < SAMPLES; n++) {
                double v = log1p(fmax(x[n * L + i], 0.0));
                s += v;
                s2 += v * v;
                z += x[n * L + i] < 0.5f;
            }
            p->mean[k][i] = s / SAMPLES;
            p->sd[k][i] = sqrt(fmax(s2 / SAMPLES - p->mean[k][i] * p->mean[k][i], 0.0));
            p->idle[k][i] = z / SAMPLES;
        }
    }
}

/* Mean distance of two profiles over classes and positions: |Δmean| + |Δsd| (log1p) +
 * 5 |Δidle share|. */
static double distance(const profile *a, const profile *b)
{
    double d = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < L; i++)
            d += fabs(a->mean[k][i] - b->mean[k][i]) + fabs(a->sd[k][i] - b->sd[k][i]) +
                 5.0 * fabs(a->idle[k][i] - b->idle[k][i]);
    return d / (2 * L);
}

static void print(const char *what, const profile *p)
{
    fprintf(stderr, "%-28s class 0 mean/sd/idle by position:", what);
    for (int i = 0; i < L; i++)
        fprintf(stderr, " %.1f/%.1f/%.2f", p->mean[0][i], p->sd[0][i], p->idle[0][i]);
    fprintf(stderr, "\n");
}

static void teacher_config(nd_config *cfg)
{
    tiny_model_config(cfg, "capture.window=16", "model.max_classes=2", "model.prediction=v",
                      "model.decode=lsq", "train.warmup_steps=20", "train.checkpoint_every=0",
                      "train.val_fraction=0", "train.class_dropout=0.2", "sample.sampler=ddpm",
                      "sample.steps=50", "sample.guidance=2", "sample.batch=32",
                      "sample.calibrate=0"); /* the network's own samples */
}

static void set_guidance(nd_dm *m, double w)
{
    nd_dm_sampling s = nd_dm_get_settings(m)->sample;
    s.guidance = w;
    nd_error e = {0};
    if (nd_dm_set_sampling(m, &s, &e)) CHECK_FAIL_("sampling: %s", e.msg);
}

/* m sampled at guidance w (its sampler otherwise) into p. */
static void measure_at(nd_dm *m, double w, profile *p, uint64_t seed)
{
    set_guidance(m, w);
    measure(m, p, seed);
}

static nd_dm *trained_teacher(const nd_dataset *ds)
{
    nd_config cfg;
    teacher_config(&cfg);
    nd_error e = {0};
    nd_dm *m = tiny_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_train_opts o = {.steps = 1500, .quiet = 1};
    CHECK_EQ(nd_dm_train(m, ds, &o, NULL, &e), 0);
    CHECK_EQ(nd_dm_save(m, "teacher.ndm", &e), 0);
    return m;
}

/* a range of scales needs rounds of 1,200 steps here to tell 1 from 4 (400 blur them) */
static const nd_dm_distill plan = {
    .from_steps = 16, .to_steps = 2, .round_steps = 1200, .lr = 2e-3};

static void test_student(const nd_dataset *ds)
{
    nd_error e = {0};
    nd_dm *m = trained_teacher(ds);
    profile ref, before, after;
    measure(m, &ref, 1); /* DDPM 50, guidance 2 */
    print("teacher, DDPM 50, w 2", &ref);

    /* the teacher's own DDIM at 16 steps (what the student learns) at scales 1, 2, 4 */
    profile t1, t2, t4;
    tiny_set_sampling(m, sampler, ND_SAMPLER_DDIM);
    tiny_set_sampling(m, steps, 16);
    measure_at(m, 1.0, &t1, 3);
    measure_at(m, 4.0, &t4, 3);
    measure_at(m, 2.0, &t2, 3); /* and back to the teacher's scale */
    tiny_set_sampling(m, sampler, ND_SAMPLER_DDPM);
    tiny_set_sampling(m, steps, 50);

    CHECK_EQ(nd_dm_distill_begin(m, &plan, &e), 0);
    const nd_dm_distill *d = nd_dm_distilled(m);
    CHECK(d);
    CHECK_U64_EQ(nd_dm_distill_end(m), 1500 + 3 * plan.round_steps);
    CHECK_EQ(d->guidance, 2.0);
    CHECK(d->guidance_lo == 1.0 && d->guidance_hi == 4.0 && !d->teacher_input);
    CHECK_EQ(nd_unet_cfg(nd_dm_unet(m))->guide_rows, 8);
    CHECK_EQ((int)d->teacher_sampler, ND_SAMPLER_DDPM);
    tiny_set_sampling(m, steps, 2); /* the untrained student, at 2 steps: its table is zero */
    measure(m, &before, 2);
    print("teacher's weights, 2 steps", &before);

    nd_train_opts o = {.steps = nd_dm_distill_end(m), .quiet = 1};
    nd_train_report rep;
    CHECK_EQ(nd_dm_train(m, ds, &o, &rep, &e), 0);
    CHECK(isfinite(rep.last_loss));
    CHECK(rep.val_loss < 0); /* a student has no denoising validation loss */
    const nd_dm_sampling *s = &nd_dm_get_settings(m)->sample;
    CHECK_EQ(s->steps, 2u); /* the last round's */
    CHECK_EQ((int)s->sampler, ND_SAMPLER_DDIM);
    CHECK_EQ(s->guidance, 2.0); /* the teacher's, now an input */
    measure(m, &after, 2);
    print("student, 2 steps", &after);
    double d0 = distance(&before, &t2), d1 = distance(&after, &t2);
    fprintf(stderr,
            "distance to the teacher's DDIM 16: %.3f before, %.3f after (loss %.4f); to its "
            "DDPM 50: %.3f before, %.3f after, DDIM 16's %.3f\n",
            d0, d1, rep.last_loss, distance(&before, &ref), distance(&after, &ref),
            distance(&t2, &ref));
    CHECK(d1 < 0.8 * d0);
    /* the bursts are where the teacher's are */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < L; i++)
            if (burst_at(k, i)) CHECK(after.mean[k][i] > ref.mean[k][i] - 1.5);
    /* the scale is an input: at 1 and at 4 the student samples the teacher's at that
     * scale more closely than at the other */
    profile s1, s4, again_at_2;
    measure_at(m, 1.0, &s1, 4);
    measure_at(m, 4.0, &s4, 4);
    double d11 = distance(&s1, &t1), d14 = distance(&s1, &t4);
    double d44 = distance(&s4, &t4), d41 = distance(&s4, &t1);
    fprintf(stderr,
            "student at 1: %.3f from the teacher's 1, %.3f from its 4; at 4: %.3f from its 4, "
            "%.3f from its 1 (the teacher's 1 and 4 are %.3f apart)\n",
            d11, d14, d44, d41, distance(&t1, &t4));
    CHECK(d11 < d14 && d44 < d41);
    nd_dm_sampling out_of_range = *s;
    out_of_range.guidance = 5.0;
    CHECK_EQ(nd_dm_set_sampling(m, &out_of_range, &e), 0);
    float x1[L];
    nd_rng r;
    nd_rng_seed(&r, 1);
    CHECK_EQ(nd_dm_sample(m, 0, 1, x1, NULL, &r, &e), ND_EUSAGE);
    CHECK(strstr(e.msg, "learnt guidance 1 to 4"));
    measure_at(m, 2.0, &again_at_2, 2);
    CHECK(!memcmp(&again_at_2, &after, sizeof after));

    /* an ordinary model file, which says how it was made */
    CHECK_EQ(nd_dm_save(m, "student.ndm", &e), 0);
    nd_dm *b = nd_dm_load("student.ndm", ND_DM_BATCH_SAMPLE, NULL, &e);
    if (!b) CHECK_FAIL_("load: %s", e.msg);
    CHECK(nd_dm_distilled(b) && nd_dm_distilled(b)->to_steps == 2);
    profile again;
    measure(b, &again, 2);
    CHECK(!memcmp(&again, &after, sizeof again));
    /* a finished student is distilled further from its own steps only, and then says
     * so: 2 steps to 1 */
    CHECK_EQ(nd_dm_distill_begin(b, &plan, &e), ND_EUSAGE);
    CHECK(strstr(e.msg, "a student of 2 steps"));
    const nd_dm_distill further = {
        .from_steps = 2, .to_steps = 1, .round_steps = 50, .lr = 1e-3};
    CHECK_EQ(nd_dm_distill_begin(b, &further, &e), 0);
    CHECK(nd_dm_distilled(b)->to_steps == 1 && nd_dm_distilled(b)->teacher_steps == 2);
    /* the input and its range go on; the teacher is not guided a second time */
    CHECK_EQ(nd_dm_distilled(b)->guidance, 2.0);
    CHECK(nd_dm_distilled(b)->guidance_hi == 4.0 && nd_dm_distilled(b)->teacher_input);
    o.steps = nd_dm_distill_end(b);
    CHECK_U64_EQ(o.steps, 1500 + 3 * plan.round_steps + 50);
    CHECK_EQ(nd_dm_train(b, ds, &o, &rep, &e), 0);
    CHECK(isfinite(rep.last_loss));
    CHECK_EQ(nd_dm_get_settings(b)->sample.steps, 1u);
    nd_dm_free(b);
    nd_dm_free(m);
}

/* Without a range the teacher's scale is learnt in: no table, sampled at guidance 1. */
static void test_learnt_in(const nd_dataset *ds)
{
    nd_error e = {0};
    nd_dm *m = nd_dm_load("teacher.ndm", ND_DM_BATCH_TRAIN, NULL, &e);
    if (!m) CHECK_FAIL_("load: %s", e.msg);
    profile ref, before, after;
    measure(m, &ref, 1);
    nd_dm_distill p = plan;
    p.guidance_lo = p.guidance_hi = 2.0;
    p.round_steps = 400; /* one scale is learnt faster than a range of them */
    CHECK_EQ(nd_dm_distill_begin(m, &p, &e), 0);
    CHECK_EQ(nd_unet_cfg(nd_dm_unet(m))->guide_rows, 0);
    CHECK_EQ(nd_dm_get_settings(m)->sample.guidance, 1.0);
    tiny_set_sampling(m, steps, 2);
    measure(m, &before, 2);
    nd_train_opts o = {.steps = nd_dm_distill_end(m), .quiet = 1};
    CHECK_EQ(nd_dm_train(m, ds, &o, NULL, &e), 0);
    measure(m, &after, 2);
    double d0 = distance(&before, &ref), d1 = distance(&after, &ref);
    fprintf(stderr, "learnt in: %.3f before, %.3f after\n", d0, d1);
    CHECK(d1 < 0.8 * d0);
    CHECK_EQ(nd_dm_save(m, "learnt.ndm", &e), 0);
    nd_dm *b = nd_dm_load("learnt.ndm", ND_DM_BATCH_SAMPLE, NULL, &e);
    if (!b) CHECK_FAIL_("load: %s", e.msg);
    CHECK_EQ(nd_dm_distilled(b)->guidance_lo, nd_dm_distilled(b)->guidance_hi);
    nd_dm_free(b);
    nd_dm_free(m);
}

/* Stopped at step 1500 + 600 (in round 1), saved, loaded, resumed to the end: the same
 * weights as without the stop. */
static void test_resume(const nd_dataset *ds)
{
    nd_error e = {0};
    nd_dm_distill short_plan = plan;
    short_plan.round_steps = 40;
    nd_dm *a = nd_dm_load("teacher.ndm", ND_DM_BATCH_TRAIN, NULL, &e);
    nd_dm *b = nd_dm_load("teacher.ndm", ND_DM_BATCH_TRAIN, NULL, &e);
    if (!a || !b) CHECK_FAIL_("load: %s", e.msg);
    CHECK_EQ(nd_dm_distill_begin(a, &short_plan, &e), 0);
    CHECK_EQ(nd_dm_distill_begin(b, &short_plan, &e), 0);
    uint64_t end = nd_dm_distill_end(a);
    nd_train_opts o = {.steps = end, .quiet = 1};
    CHECK_EQ(nd_dm_train(a, ds, &o, NULL, &e), 0);
    o.steps = 1500 + 60;
    o.path = "half.ndm";
    CHECK_EQ(nd_dm_train(b, ds, &o, NULL, &e), 0);
    nd_dm_free(b);
    b = nd_dm_load("half.ndm", ND_DM_BATCH_TRAIN, NULL, &e);
    if (!b) CHECK_FAIL_("load: %s", e.msg);
    CHECK_EQ(nd_dm_get_settings(b)->sample.steps, 4u);            /* round 1 */
    CHECK_EQ(nd_dm_distill_begin(b, &short_plan, &e), ND_EUSAGE); /* not done */
    CHECK(strstr(e.msg, "continue it with --resume"));
    o.steps = end;
    o.path = NULL;
    CHECK_EQ(nd_dm_train(b, ds, &o, NULL, &e), 0);
    size_t n = nd_unet_num_params(nd_dm_unet(a));
    CHECK(!memcmp(nd_dm_ema(a), nd_dm_ema(b), n * sizeof(float)));
    CHECK(!memcmp(nd_unet_params(nd_dm_unet(a)), nd_unet_params(nd_dm_unet(b)),
                  n * sizeof(float)));
    nd_dm_free(a);
    nd_dm_free(b);
}

/* Teachers and plans that cannot be distilled. */
static void test_refused(const nd_dataset *ds)
{
    nd_error e = {0};
    nd_dm *m = nd_dm_load("teacher.ndm", ND_DM_BATCH_TRAIN, NULL, &e);
    if (!m) CHECK_FAIL_("load: %s", e.msg);
    nd_dm_distill p = plan;
    p.from_steps = 12;
    CHECK_EQ(nd_dm_distill_begin(m, &p, &e), ND_EUSAGE);
    CHECK(strstr(e.msg, "do not halve"));
    p = plan;
    p.to_steps = 16;
    CHECK_EQ(nd_dm_distill_begin(m, &p, &e), ND_EUSAGE);
    p = plan;
    p.round_steps = 0;
    CHECK_EQ(nd_dm_distill_begin(m, &p, &e), ND_EUSAGE);
    p = plan; /* a range that leaves the teacher's scale (2) out */
    p.guidance_lo = 3.0;
    p.guidance_hi = 4.0;
    CHECK_EQ(nd_dm_distill_begin(m, &p, &e), ND_EUSAGE);
    CHECK(strstr(e.msg, "guidance range 3 to 4"));
    CHECK_EQ(nd_unet_cfg(nd_dm_unet(m))->guide_rows, 0); /* nothing changed */
    CHECK(!nd_dm_distilled(m));
    nd_dm_free(m);

    nd_config cfg;
    teacher_config(&cfg);
    snprintf(cfg.model.prediction, sizeof cfg.model.prediction, "eps");
    m = tiny_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    CHECK_EQ(nd_dm_distill_begin(m, &plan, &e), ND_EUSAGE);
    CHECK(strstr(e.msg, "prediction: v"));
    nd_dm_free(m);
}

int main(void)
{
    nd_dataset *ds = burst_dataset();
    test_student(ds);
    test_learnt_in(ds);
    test_resume(ds);
    test_refused(ds);
    nd_dataset_free(ds);
    printf("test_distill: ok\n");
    return 0;
}
