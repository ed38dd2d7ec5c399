/*
 * test_live_online.c — the online trainer (model/online.c) on a small synthetic stream:
 * nothing trains before a class has warmed up; the loss falls; a class that appears
 * later joins the model at the next row; a checkpoint resumes bit-identically (model,
 * optimiser, EMA, step, reservoirs, recent windows, RNG); the scale refit rule; a class
 * with no model row left; resume errors, among them LIVE sections out of their bounds.
 */
#include "check.h"
#include "live.h"
#include "tiny_model.h"
#include "../base/tmpdir.h"

enum { L = 8, C = 2, WF = C * L };

static uint64_t mix64_(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The trainer's options of cfg's live.* (app/opts_model.c). */
static nd_online *online_new(const nd_config *cfg, const nd_dataset *hdr, nd_error *e)
{
    nd_online_opts lo;
    opts_online(&lo, cfg);
    nd_dm_settings ms = tiny_settings(cfg);
    return nd_online_new(&lo, &ms, NULL, hdr, e);
}

static nd_online *online_resume(const char *path, const nd_config *cfg, const nd_dataset *hdr,
                                nd_error *e)
{
    nd_online_opts lo;
    opts_online(&lo, cfg);
    return nd_online_resume(path, &lo, NULL, hdr, e);
}

static void tiny_config(nd_config *cfg, const char *extra)
{
    tiny_model_config(cfg, "model.max_classes=3", "train.warmup_steps=10",
                      "train.class_dropout=0", "live.reservoir=32", "live.recent=16",
                      "live.warmup=4", "live.recent_share=0.25", "sample.steps=10",
                      "sample.guidance=1", "sample.batch=4");
    nd_error e = {0};
    if (extra && nd_config_set(cfg, extra, &e)) CHECK_FAIL_("%s: %s", extra, e.msg);
}

static nd_dataset *header(void)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *h = nd_dataset_new(C, names, L, 100000000ull);
    CHECK(h);
    CHECK_EQ(nd_dataset_class(h, "a"), 0);
    CHECK_EQ(nd_dataset_class(h, "b"), 1);
    CHECK_EQ(nd_dataset_class(h, "c"), 2);
    return h;
}

/* Class a: a burst pattern; class b: steady small values; scale multiplies a's. */
static void window(float *x, int cls, uint64_t *seed, float scale)
{
    for (int i = 0; i < L; i++) {
        float u = (float)(mix64_(seed) % 1000) / 1000.0f;
        if (cls == 0) {
            x[i] = (i % 2 ? 0.0f : (3000.0f + 2000.0f * u)) * scale;
            x[L + i] = i % 2 ? 0.0f : 80.0f;
        } else {
            x[i] = 100.0f + 50.0f * u;
            x[L + i] = 200.0f;
        }
    }
}

static void add(nd_online *o, int cls, uint64_t *seed, float scale)
{
    float x[WF];
    window(x, cls, seed, scale);
    nd_error e = {0};
    if (nd_online_add(o, (uint32_t)cls, *seed, x, &e)) CHECK_FAIL_("add: %s", e.msg);
}

static float step(nd_online *o)
{
    nd_error e = {0};
    int r = nd_online_step(o, &e);
    if (r != 1) CHECK_FAIL_("step returned %d: %s", r, e.msg);
    nd_online_info in;
    nd_online_get_info(o, &in);
    return (float)in.last_loss;
}

static void same_state(nd_online *a, nd_online *b)
{
    nd_online_info ia, ib;
    nd_online_get_info(a, &ia);
    nd_online_get_info(b, &ib);
    CHECK_U64_EQ(ia.step, ib.step);
    CHECK_U64_EQ(ia.windows, ib.windows);
    CHECK_EQ(ia.n_classes, ib.n_classes);
    CHECK_EQ(ia.model_classes, ib.model_classes);
    for (uint32_t k = 0; k < ia.n_classes; k++) {
        nd_online_class_info ca, cb;
        nd_online_class(a, k, &ca);
        nd_online_class(b, k, &cb);
        CHECK_STR_EQ(ca.name, cb.name);
        CHECK_U64_EQ(ca.seen, cb.seen);
        CHECK_EQ(ca.kept, cb.kept);
        CHECK_EQ(ca.model_class, cb.model_class);
        CHECK_U64_EQ(ca.clipped, cb.clipped);
        CHECK_EQ(ca.refits, cb.refits);
    }
}

/* LIVE offsets (docs/FORMATS.md): the u32 header words, then after rng, windows and
 * images the first class: name, four u64 counters, kept, refits, then its first window's
 * group and values. */
enum { LIVE_N = 4, LIVE_WF = 8, LIVE_CAP = 12, LIVE_HEAD = 20, LIVE_VALUE0 = 72 + 64 + 40 + 8 };

/* One u32 or f32 of the LIVE section changed. */
static size_t live_off;
static uint32_t live_u32;
static float live_f32;
static int live_is_float;
static void live_edit(ndf_writer *w, uint32_t tag, const void *data, size_t len)
{
    unsigned char *b = malloc(len + 1);
    CHECK(b);
    memcpy(b, data, len);
    if (tag == ND_FOURCC('L', 'I', 'V', 'E')) {
        CHECK(live_off + 4 <= len);
        if (live_is_float) nd_put_f32(b + live_off, live_f32);
        else nd_put_u32(b + live_off, live_u32);
    }
    nd_error e = {0};
    CHECK_EQ(ndf_write_section(w, tag, b, len, &e), 0);
    free(b);
}

/* The checkpoint at path with one LIVE field changed does not resume: ND_EFORMAT, the
 * message naming the field. */
static void live_refused(const char *path, const nd_config *cfg, const nd_dataset *hdr,
                         size_t off, int is_float, double v, const char *needle)
{
    char bad[512];
    snprintf(bad, sizeof bad, "%s/live-bad.ndm", tmp_dir());
    live_off = off;
    live_is_float = is_float;
    live_u32 = (uint32_t)v;
    live_f32 = (float)v;
    tiny_rewrite(path, bad, live_edit);
    nd_error e = {0};
    nd_online *o = online_resume(bad, cfg, hdr, &e);
    if (o) CHECK_FAIL_("resumed with LIVE byte %zu set to %g", off, v);
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "section LIVE");
    CHECK_CONTAINS(e.msg, needle);
}

static void test_learn_and_resume(void)
{
    nd_config cfg;
    tiny_config(&cfg, NULL);
    nd_dataset *hdr = header();
    nd_error e = {0};
    nd_online *o = online_new(&cfg, hdr, &e);
    CHECK(o);
    uint64_t seed = 1;
    char path[512];
    snprintf(path, sizeof path, "%s/live.ndm", tmp_dir());
    int written = -1;
    CHECK_EQ(nd_online_save(o, path, &written, &e), 0); /* nothing to save yet */
    CHECK_EQ(written, 0);
    CHECK(access(path, F_OK) != 0);
    for (int i = 0; i < 3; i++) add(o, 0, &seed, 1);
    CHECK_EQ(nd_online_step(o, &e), 0); /* still warming up */
    CHECK(nd_online_model(o) == NULL);
    add(o, 0, &seed, 1); /* the 4th: class a joins */
    CHECK(nd_online_model(o));
    nd_online_class_info ci;
    nd_online_class(o, 0, &ci);
    CHECK_EQ(ci.model_class, 0);

    double first = 0, last = 0;
    for (int s = 0; s < 120; s++) {
        if (s % 4 == 0) add(o, 0, &seed, 1);
        if (s >= 30 && s % 2 == 0) add(o, 1, &seed, 1); /* class b appears later */
        float l = step(o);
        if (s < 10) first += l / 10;
        if (s >= 110) last += l / 10;
    }
    nd_online_class(o, 1, &ci);
    CHECK_EQ(ci.model_class, 1);
    CHECK_EQ(nd_dm_dataset(nd_online_model(o))->n_classes, 2);
    CHECK_STR_EQ(nd_dm_dataset(nd_online_model(o))->class_names[1], "b");
    nd_online_class(o, 2, &ci);
    CHECK_EQ(ci.model_class, -1); /* c never came */
    CHECK_U64_EQ(ci.seen, 0);
    fprintf(stderr, "online: loss %.4f over the first 10 steps, %.4f over the last 10\n", first,
            last);
    CHECK(last < 0.6 * first);

    /* checkpoint; then the same windows and steps on the original and on a resumed copy */
    CHECK_EQ(nd_online_save(o, path, &written, &e), 0);
    CHECK_EQ(written, 1);
    nd_online *r = online_resume(path, &cfg, hdr, &e);
    if (!r) CHECK_FAIL_("resume: %s", e.msg);
    same_state(o, r);
    uint64_t seed2 = seed;
    for (int s = 0; s < 20; s++) {
        if (s % 2 == 0) add(o, s % 4 ? 0 : 1, &seed, 1), add(r, s % 4 ? 0 : 1, &seed2, 1);
        step(o);
        step(r);
    }
    same_state(o, r);
    nd_unet *ua = nd_dm_unet(nd_online_model(o)), *ub = nd_dm_unet(nd_online_model(r));
    size_t n = nd_unet_num_params(ua);
    CHECK(!memcmp(nd_unet_params(ua), nd_unet_params(ub), n * sizeof(float)));
    /* the checkpoint is an ordinary model file too: sampling works */
    nd_dm *m = nd_dm_load(path, 8, NULL, &e);
    if (!m) CHECK_FAIL_("load: %s", e.msg);
    float x[2 * WF];
    nd_rng rng;
    nd_rng_seed(&rng, 3);
    CHECK_EQ(nd_dm_sample(m, 1, 2, x, NULL, &rng, &e), 0);
    for (int i = 0; i < 2 * WF; i++) CHECK(isfinite(x[i]) && x[i] >= 0);
    nd_dm_free(m);
    nd_online_free(r);
    nd_online_free(o);

    /* resume errors: a model without reservoirs; windows of another shape */
    nd_dataset *ds = nd_dataset_new(C, (const char *[]){"bytes_down", "bytes_up"}, L, 1);
    CHECK_EQ(nd_dataset_class(ds, "a"), 0);
    float w[WF];
    window(w, 0, &seed, 1);
    CHECK_EQ(nd_dataset_append(ds, 0, 1, w), 0);
    m = tiny_dm_new(&cfg, ds, &e);
    CHECK(m);
    char plain[512];
    snprintf(plain, sizeof plain, "%s/plain.ndm", tmp_dir());
    CHECK_EQ(nd_dm_save(m, plain, &e), 0);
    nd_dm_free(m);
    nd_dataset_free(ds);
    CHECK(online_resume(plain, &cfg, hdr, &e) == NULL);
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "no LIVE section");
    nd_dataset *h16 = nd_dataset_new(C, (const char *[]){"bytes_down", "bytes_up"}, 16, 1);
    CHECK(online_resume(path, &cfg, h16, &e) == NULL);
    CHECK_EQ(e.code, ND_ECONFIG);
    nd_dataset_free(h16);
    /* a LIVE section out of its bounds; each message says which count is wrong */
    live_refused(path, &cfg, hdr, LIVE_HEAD, 0, 16 + 5, "head 21");
    live_refused(path, &cfg, hdr, LIVE_CAP, 0, 4294967295.0,
                 "recent capacity 4294967295 out of range 1..16777216");
    live_refused(path, &cfg, hdr, LIVE_N, 0, 5000, "class count 5000, at most 1024");
    live_refused(path, &cfg, hdr, LIVE_WF, 0, 64, "windows of 64 values, the config makes 16");
    live_refused(path, &cfg, hdr, LIVE_VALUE0, 1, NAN, "holds nan, expected a finite value");
    live_refused(path, &cfg, hdr, LIVE_VALUE0, 1, -3, "holds -3, expected a finite value >= 0");
    nd_dataset_free(hdr);
    nd_config_free(&cfg);
}

/* Windows ten times larger than the warm-up's: counted as out of scale; the rule refits
 * (scale grows) or, with live.scale_refit 0, keeps the scale fixed. */
static void test_scale_rule(const char *rule, int expect_refit)
{
    nd_config cfg;
    tiny_config(&cfg, rule);
    nd_dataset *hdr = header();
    nd_error e = {0};
    nd_online *o = online_new(&cfg, hdr, &e);
    uint64_t seed = 5;
    for (int i = 0; i < 4; i++) add(o, 0, &seed, 1);
    float hi0 = nd_dm_scale(nd_online_model(o), 0)->hi[0];
    CHECK(hi0 > 0 && hi0 < log1pf(5001.0f));
    for (int i = 0; i < 8; i++) add(o, 0, &seed, 10);
    nd_online_class_info ci;
    nd_online_class(o, 0, &ci);
    float hi1 = nd_dm_scale(nd_online_model(o), 0)->hi[0];
    if (expect_refit) {
        /* out of scale until the refit, inside it after */
        CHECK(ci.clipped >= 1 && ci.clipped < 8);
        CHECK(ci.refits >= 1);
        CHECK(hi1 > log1pf(30000.0f)); /* the reservoir's larger windows */
    } else {
        CHECK_U64_EQ(ci.clipped, 8);
        CHECK_EQ(ci.refits, 0);
        CHECK(hi1 == hi0);
    }
    nd_online_free(o);
    nd_dataset_free(hdr);
    nd_config_free(&cfg);
}

/* model.max_classes 1: the second class is counted but gets no row; the run goes on. */
static void test_no_row(void)
{
    nd_config cfg;
    tiny_config(&cfg, "model.max_classes=1");
    nd_dataset *hdr = header();
    nd_error e = {0};
    nd_online *o = online_new(&cfg, hdr, &e);
    uint64_t seed = 9;
    for (int i = 0; i < 6; i++) add(o, 0, &seed, 1), add(o, 1, &seed, 1);
    nd_online_class_info ci;
    nd_online_class(o, 1, &ci);
    CHECK_EQ(ci.model_class, ND_ONLINE_NO_ROW);
    CHECK_U64_EQ(ci.seen, 6);
    CHECK_EQ(nd_dm_dataset(nd_online_model(o))->n_classes, 1);
    step(o);
    nd_online_free(o);
    nd_dataset_free(hdr);
    nd_config_free(&cfg);
}

/* A model with context planes learns from windows in flows, which live does not keep:
 * refused, new or resumed, saying why. */
static void test_context_refused(void)
{
    nd_config cfg;
    tiny_config(&cfg, "model.context=true");
    nd_dataset *hdr = header();
    nd_error e = {0};
    CHECK(online_new(&cfg, hdr, &e) == NULL);
    CHECK_EQ(e.code, ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "model.context");
    /* a context model made by train, then given to live to go on with */
    float x[C * L] = {1, 2, 3};
    for (uint64_t g = 0; g < 4; g++) CHECK_EQ(nd_dataset_append(hdr, 0, g, x), 0);
    nd_dm *m = tiny_dm_new(&cfg, hdr, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/context.ndm", tmp_dir());
    CHECK_EQ(nd_dm_save(m, path, &e), 0);
    nd_dm_free(m);
    CHECK(online_resume(path, &cfg, hdr, &e) == NULL);
    CHECK_EQ(e.code, ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "context planes");
    nd_dataset_free(hdr);
    nd_config_free(&cfg);
}

int main(void)
{
    test_learn_and_resume();
    test_scale_rule("live.scale_refit=0.05", 1);
    test_scale_rule("live.scale_refit=0", 0);
    test_no_row();
    test_context_refused();
    return 0;
}
