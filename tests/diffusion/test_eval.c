/*
 * test_eval.c — the fidelity metrics on inputs with known answers: W1 of small samples,
 * autocorrelation of constructed series, and the report's floor, naive baseline,
 * classifiers and memorisation flag on synthetic classes that are easy to tell apart;
 * pictures of windows and of eval holding any float (infinities, NaN, huge, negative)
 * are drawn.
 */
#include "../base/tmpdir.h"
#include "check.h"
#include "eval.h"
#include "model.h"

enum { L = 32, C = 2 };

static void test_w1(void)
{
    double a[] = {0, 1}, b[] = {1, 2};
    CHECK_NEAR(nd_w1(a, 2, b, 2), 1.0, 1e-12, 0);
    double c[] = {3, 1, 2}, d[] = {2, 3, 1};
    CHECK_NEAR(nd_w1(c, 3, d, 3), 0.0, 1e-12, 0);
    /* unequal sizes: {0} vs {0, 2}: half the mass moves by 2 */
    double e[] = {0}, f[] = {2, 0};
    CHECK_NEAR(nd_w1(e, 1, f, 2), 1.0, 1e-12, 0);
    /* {0,0,0,1} vs {0,1}: quantiles differ on (0.5, 0.75] by 1 */
    double g[] = {0, 1, 0, 0}, h[] = {1, 0};
    CHECK_NEAR(nd_w1(g, 4, h, 2), 0.25, 1e-12, 0);
    CHECK(isnan(nd_w1(g, 0, h, 2)));
}

static void test_acf(void)
{
    /* alternating series: lag-1 autocorrelation −(L−1)/L, lag 2 +(L−2)/L */
    float x[C * L];
    for (int i = 0; i < L; i++) {
        x[i] = i % 2 ? (float)expm1(3.0) : 0.0f;
        x[L + i] = 5.0f; /* constant channel: 0 */
    }
    double acf[4];
    nd_mean_acf(acf, x, 1, C, L, 0, 4);
    CHECK_NEAR(acf[0], -(L - 1.0) / L, 1e-9, 0);
    CHECK_NEAR(acf[1], (L - 2.0) / L, 1e-9, 0);
    nd_mean_acf(acf, x, 1, C, L, 1, 4);
    CHECK(acf[0] == 0 && acf[3] == 0);
}

/* Class 0: slow sine (strong autocorrelation), class 1: white noise with idle bins. */
static nd_dataset *make(int n, uint64_t seed)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(C, names, L, ND_NS_PER_SEC);
    nd_dataset_class(ds, "smooth");
    nd_dataset_class(ds, "bursty");
    nd_rng r;
    nd_rng_seed(&r, seed);
    float x[C * L];
    for (int w = 0; w < n; w++)
        for (int k = 0; k < 2; k++) {
            double ph = 6.283 * nd_rng_uniform(&r), amp = 1 + nd_rng_uniform(&r);
            for (int c = 0; c < C; c++)
                for (int i = 0; i < L; i++) {
                    if (k == 0)
                        x[c * L + i] =
                            (float)exp(6 + amp * sin(ph + i * 0.3) + 0.1 * nd_rng_normal(&r));
                    else
                        x[c * L + i] = nd_rng_uniform(&r) < 0.4
                                           ? 0.0f
                                           : (float)exp(5 + 2 * nd_rng_uniform(&r));
                }
            CHECK_EQ(nd_dataset_append(ds, (uint16_t)k, (uint64_t)(2 * w + k), x), 0);
        }
    return ds;
}

/* Appends the first n windows of src to ds (the same classes): exact copies. */
static void append_copies(nd_dataset *ds, const nd_dataset *src, uint64_t n)
{
    for (uint64_t w = 0; w < n; w++)
        CHECK_EQ(nd_dataset_append(ds, src->labels[w], 1000 + w,
                                   src->values + w * src->n_channels * src->L),
                 0);
}

static char *report(const nd_dataset *real, const nd_dataset *synth, const nd_dataset *raw,
                    const nd_dataset *train)
{
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    nd_eval_opts o = {.seed = 1, .cnn_steps = 60, .threads = 1};
    nd_error e = {0};
    int rc = nd_eval_report(f, NULL, real, synth, raw, train, NULL, &o, &e);
    fclose(f);
    if (rc) CHECK_FAIL_("eval: %s", e.msg);
    fprintf(stderr, "%s\n", buf);
    return buf;
}

/* Parses "MEAN <source> <marg> <x> <acf> <x> <vol> <x>" rows. */
static void mean_row(const char *rep, const char *source, double *m, double *a, double *v)
{
    char key[64];
    snprintf(key, sizeof key, "MEAN             %s", source);
    const char *p = strstr(rep, key);
    CHECK(p);
    p += strlen(key);
    char xs[3][16];
    CHECK_EQ(sscanf(p, "%lf %15s %lf %15s %lf %15s", m, xs[0], a, xs[1], v, xs[2]), 6);
}

static double accuracy(const char *rep, const char *clf, int col)
{
    const char *p = strstr(rep, clf);
    CHECK(p);
    p += strlen(clf);
    char v[6][16];
    CHECK(sscanf(p, "%15s %15s %15s %15s %15s %15s", v[0], v[1], v[2], v[3], v[4], v[5]) > col);
    return strcmp(v[col], "-") ? strtod(v[col], NULL) : NAN;
}

static void test_report(void)
{
    nd_dataset *train = make(40, 1), *real = make(20, 2), *fresh = make(40, 3);
    /* a "generator" that draws new windows of the true process: near the floor, no
     * memorisation, TSTR about TRTR */
    char *rep = report(real, fresh, NULL, train);
    double m, a, v, fm, fa, fv, nm, na, nv;
    mean_row(rep, "synth", &m, &a, &v);
    mean_row(rep, "real", &fm, &fa, &fv);
    mean_row(rep, "naive", &nm, &na, &nv);
    CHECK(m < 2 * fm + 0.05 && a < 2 * fa + 0.02);
    /* the naive generator keeps marginals but loses the smooth class's autocorrelation */
    CHECK(na > 3 * fa);
    CHECK(accuracy(rep, "logistic regression", 0) > 0.95);
    CHECK(accuracy(rep, "logistic regression", 1) > 0.95);
    CHECK(accuracy(rep, "5-NN (features)", 1) > 0.95);
    CHECK(accuracy(rep, "CNN (GASF images)", 0) > 0.8);
    CHECK(accuracy(rep, "random forest (features)", 1) > 0.95);
    CHECK(accuracy(rep, "mean of the three above", 3) > 0.9); /* TSTR/TRTR */
    CHECK_CONTAINS(rep, "no memorisation flag");
    /* a "generator" that returns its training data: flagged */
    rep = report(real, train, NULL, train);
    CHECK_CONTAINS(rep, "FLAG: synthetic windows sit much closer");
    /* Where the real held-out windows repeat training windows (short flows that recur
     * exactly), a generator with fewer copies than they have is not memorising: here a
     * third of the held-out windows are copies, two of the 82 synthetic ones. */
    nd_dataset *real_cp = make(20, 2), *fresh_cp = make(40, 3);
    append_copies(real_cp, train, 20);
    append_copies(fresh_cp, train, 2);
    rep = report(real_cp, fresh_cp, NULL, train);
    CHECK_CONTAINS(rep, "near-copies of a training window: 2 (2.4%; real held-out 33.3%)");
    CHECK_CONTAINS(rep, "no memorisation flag");
    /* ... and one that copies more often than real traffic recurs is flagged */
    nd_dataset *fresh_many = make(40, 3);
    append_copies(fresh_many, train, 60);
    rep = report(real_cp, fresh_many, NULL, train);
    CHECK_CONTAINS(rep, "near-copies of a training window: 60 (42.9%; real held-out 33.3%)");
    CHECK_CONTAINS(rep, "FLAG: synthetic windows sit much closer");
    nd_dataset_free(real_cp), nd_dataset_free(fresh_cp), nd_dataset_free(fresh_many);
    /* the raw model's windows beside the decoded ones: their own rows, classifier columns
     * and memorisation check (here the decoded set is fresh, the raw one a copy) */
    rep = report(real, fresh, train, train);
    double rm, ra, rv;
    mean_row(rep, "raw", &rm, &ra, &rv);
    CHECK(rm == fm && ra == fa && rv == fv); /* the copy of the training data is the floor */
    CHECK_CONTAINS(rep, "TSTR raw");
    CHECK(accuracy(rep, "5-NN (features)", 4) > 0.95); /* TSTR raw: trained on the copy */
    const char *mem = strstr(rep, "memorisation (raw)");
    CHECK(mem && strstr(mem, "FLAG: synthetic windows sit much closer"));
    CHECK(strstr(rep, "no memorisation flag") < mem);
    /* classes matched by name: a synthetic file with swapped labels scores 0 TSTR */
    nd_dataset *swapped = make(20, 4);
    snprintf(swapped->class_names[0], ND_NAME_MAX, "bursty");
    snprintf(swapped->class_names[1], ND_NAME_MAX, "smooth");
    rep = report(real, swapped, NULL, NULL);
    CHECK(accuracy(rep, "logistic regression", 1) < 0.05);
    CHECK(isnan(accuracy(rep, "logistic regression", 0))); /* no TRTR without --train */
    nd_dataset_free(train), nd_dataset_free(real), nd_dataset_free(fresh),
        nd_dataset_free(swapped);
}

/* A crafted model or CSV can put any float in a window: +inf once made the plot's scale
 * infinite and its height an out-of-range int, and the picture wrote outside its buffer;
 * a histogram bin index is an int the same way. */
static void test_png_any_value(void)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    const float odd[] = {INFINITY, -INFINITY, NAN, 3.4e38f, -5.0f, 1e-40f, 0.0f, 1500.0f};
    const int n_odd = (int)(sizeof odd / sizeof odd[0]);
    for (int all = 0; all < 2; all++) {
        nd_dataset *ds = nd_dataset_new(C, names, L, ND_NS_PER_SEC);
        nd_dataset_class(ds, "odd");
        float x[C * L];
        for (int w = 0; w < 3; w++) {
            /* all: every bin +inf (the scale has no finite value at all) */
            for (int i = 0; i < C * L; i++) x[i] = all ? INFINITY : odd[(i + w) % n_odd];
            CHECK_EQ(nd_dataset_append(ds, 0, (uint64_t)w, x), 0);
        }
        nd_error e = {0};
        const char *png = tmp_path(all ? "inf.png" : "odd.png");
        nd_png_column col = {ds, "odd"};
        for (int fig = 0; fig < 2; fig++) {
            CHECK_EQ(fig ? nd_eval_png(png, ds, ds, ds, ds, &e)
                         : nd_png_windows(png, &col, 1, 3, NULL, &e),
                     0);
            FILE *f = fopen(png, "rb");
            unsigned char sig[4] = {0};
            CHECK(f && fread(sig, 1, 4, f) == 4 && !memcmp(sig, "\x89PNG", 4));
            fclose(f);
        }
        nd_dataset_free(ds);
    }
}

int main(void)
{
    test_png_any_value();
    test_w1();
    test_acf();
    test_report();
    nd_eval_draw_release(); /* what a leak checker would see */
    return 0;
}
