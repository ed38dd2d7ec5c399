/*
 * test_judge.c — eval's independent measures on inputs with known answers: the random
 * forest on separable and on indistinguishable data, the classifier two-sample test of
 * both classifiers, per-position profiles with an idle start against a burst, run
 * lengths and coupling of constructed series, and the report's peer and SUMMARY lines.
 */
#include "check.h"
#include "eval_impl.h"

enum { L = 32, C = 2 };

/* ---- the forest ------------------------------------------------------------------------ */

enum { NF = 10 };

/* n rows of NF uniform features; feature 3 is shifted by 2 for class 1 when shift. */
static void rows(double *X, int *y, int n, int shift, nd_rng *r)
{
    for (int i = 0; i < n; i++) {
        y[i] = i % 2;
        for (int f = 0; f < NF; f++) X[i * NF + f] = nd_rng_uniform(r);
        if (shift && y[i]) X[i * NF + 3] += 2;
    }
}

static double forest_acc(const nde_forest *f, const double *X, const int *y, int n)
{
    int ok = 0;
    double p[2];
    for (int i = 0; i < n; i++) ok += nde_forest_predict(f, X + i * NF, p) == y[i];
    return (double)ok / n;
}

static void test_forest(void)
{
    enum { N = 300 };
    static double X[N * NF], Xt[N * NF];
    static int y[N], yt[N];
    nd_rng r;
    nd_rng_seed(&r, 5);
    /* one informative feature among ten: told apart */
    rows(X, y, N, 1, &r);
    rows(Xt, yt, N, 1, &r);
    nde_forest_opts o = {.trees = 100, .seed = 1, .threads = 1};
    nde_forest *f = nde_forest_fit(X, y, N, NF, 2, &o);
    CHECK(f);
    CHECK(forest_acc(f, Xt, yt, N) > 0.98);
    /* the same seed gives the same forest, whatever the threads */
    o.threads = 2;
    nde_forest *g = nde_forest_fit(X, y, N, NF, 2, &o);
    double p[2], q[2];
    for (int i = 0; i < N; i++) {
        nde_forest_predict(f, Xt + i * NF, p);
        nde_forest_predict(g, Xt + i * NF, q);
        CHECK(p[0] == q[0] && p[1] == q[1]);
    }
    nde_forest_free(f), nde_forest_free(g);
    /* both "classes" from one distribution: chance on fresh rows */
    rows(X, y, N, 0, &r);
    rows(Xt, yt, N, 0, &r);
    f = nde_forest_fit(X, y, N, NF, 2, &o);
    double acc = forest_acc(f, Xt, yt, N);
    fprintf(stderr, "forest on indistinguishable sets: accuracy %.3f\n", acc);
    CHECK(fabs(acc - 0.5) * 2 < 0.25);
    nde_forest_free(f);
    /* a constant feature never splits: only feature 0 varies */
    for (int i = 0; i < N; i++)
        for (int k = 0; k < NF; k++) X[i * NF + k] = k ? 1.0 : (double)y[i];
    f = nde_forest_fit(X, y, N, NF, 2, &o);
    CHECK_NEAR(forest_acc(f, X, y, N), 1.0, 0, 0);
    nde_forest_free(f);
}

/* ---- windows ------------------------------------------------------------------------- */

/* Bursty traffic of 2 classes: per class a level, 30 % idle bins; kind 1: a smooth sine
 * at the same level instead (plainly different); kind 2: the bursty kind whose first
 * three bins are idle on both channels. */
static nde_set windows(int n_per_class, int kind, uint64_t seed)
{
    nde_set s = {.n = 2 * (size_t)n_per_class};
    s.x = malloc(s.n * C * L * sizeof(float));
    s.y = malloc(s.n * sizeof(int));
    CHECK(s.x && s.y);
    nd_rng r;
    nd_rng_seed(&r, seed);
    for (size_t w = 0; w < s.n; w++) {
        int k = (int)(w % 2);
        s.y[w] = k;
        double ph = 6.283 * nd_rng_uniform(&r);
        for (int c = 0; c < C; c++)
            for (int i = 0; i < L; i++) {
                float *v = &s.x[(w * C + c) * L + i];
                double level = 6 + 2 * k - c;
                if (kind == 1) *v = (float)expm1(level + sin(ph + 0.4 * i));
                else
                    *v = nd_rng_uniform(&r) < 0.3 ? 0.0f
                                                  : (float)expm1(level + nd_rng_normal(&r));
                if (kind == 2 && i < 3) *v = 0;
                if (kind == 0 && i < 3) *v = (float)expm1(level + 3); /* a start burst */
            }
    }
    return s;
}

static void test_disc(void)
{
    nde_set R = windows(100, 0, 1), same = windows(100, 0, 2), other = windows(100, 1, 3);
    for (int clf = 0; clf < 2; clf++) {
        double acc, sc = nde_disc_score(&R, &same, C, L, 2, clf, 7, 2, &acc);
        fprintf(stderr, "%s: same process %.3f (acc %.3f)", clf ? "CNN" : "RF", sc, acc);
        CHECK(sc < 0.25);
        sc = nde_disc_score(&R, &other, C, L, 2, clf, 7, 2, &acc);
        fprintf(stderr, ", other process %.3f (acc %.3f)\n", sc, acc);
        CHECK(sc > 0.9);
        /* deterministic for a seed, whatever the threads */
        double a2, s2 = nde_disc_score(&R, &other, C, L, 2, clf, 7, 1, &a2);
        CHECK(s2 == sc && a2 == acc);
    }
    /* too few windows: NaN */
    nde_set tiny = {.n = 2, .x = R.x, .y = R.y};
    double acc;
    CHECK(isnan(nde_disc_score(&tiny, &tiny, C, L, 2, NDE_DISC_RF, 7, 1, &acc)));
    nde_set_free(&R), nde_set_free(&same), nde_set_free(&other);
}

static void test_profiles(void)
{
    nde_set R = windows(60, 0, 1), S = windows(60, 2, 4), T = windows(60, 0, 5);
    double rm[L], rv[L], ri[L], riv[L], sm[L], sv[L], si[L], siv[L], mad;
    for (int c = 0; c < C; c++) {
        nde_profile(&R, C, L, c, rm, rv, ri, riv);
        nde_profile(&S, C, L, c, sm, sv, si, siv);
        /* the burst: every real window busy at 0..2, every source window idle */
        for (int i = 0; i < 3; i++) CHECK(ri[i] == 0 && si[i] == 1 && sm[i] == 0);
        CHECK_EQ(nde_profile_outside(sm, sv, S.n, rm, rv, R.n, 3, &mad), 3);
        CHECK_EQ(nde_profile_outside(si, siv, S.n, ri, riv, R.n, 3, &mad), 3);
        CHECK_NEAR(mad, 1.0, 1e-12, 0);
        /* the rest comes from the same process: few positions outside */
        int o = nde_profile_outside(sm + 3, sv + 3, S.n, rm + 3, rv + 3, R.n, L - 3, &mad);
        CHECK(o <= 4);
        /* a second real sample is inside nearly everywhere */
        nde_profile(&T, C, L, c, sm, sv, si, siv);
        CHECK(nde_profile_outside(sm, sv, T.n, rm, rv, R.n, L, &mad) <= 5);
    }
    /* the mean of log1p with idle bins as 0 and its variance, by hand */
    float x[2 * C * L] = {0};
    x[0] = (float)expm1(2.0), x[C * L] = 0.4f; /* position 0: log 2 and idle (0.4 bytes) */
    int y[2] = {0, 0};
    nde_set two = {.n = 2, .x = x, .y = y};
    nde_profile(&two, C, L, 0, sm, sv, si, siv);
    CHECK_NEAR(sm[0], 1.0, 1e-6, 0);
    CHECK_NEAR(sv[0], 2.0, 1e-6, 0); /* sample variance of {2, 0} */
    CHECK_NEAR(si[0], 0.5, 0, 0);
    CHECK_NEAR(siv[0], 0.25, 0, 0);
    nde_set_free(&R), nde_set_free(&S), nde_set_free(&T);
}

static void test_runs_coupling(void)
{
    /* window 0, channel 0: idle 2, busy 3, idle 1, busy 2; channel 1: all busy. window 1,
     * channel 0: busy 1, idle 7 (cut by the edge) */
    enum { LL = 8 };
    float x[2 * C * LL] = {0, 0.4f, 5, 9, 5, 0, 5, 5, /* ch 1 */ 1, 2, 3, 4, 5, 6, 7, 8,
                           7, 0,    0, 0, 0, 0, 0, 0, /* ch 1 */ 0, 0, 0, 0, 0, 0, 0, 0};
    int y[2] = {0, 0};
    nde_set s = {.n = 2, .x = x, .y = y};
    double len[2 * LL];
    size_t n = nde_runs(len, &s, C, LL, 0, 0);
    CHECK_EQ(n, 3);
    CHECK(len[0] == 2 && len[1] == 1 && len[2] == 7);
    n = nde_runs(len, &s, C, LL, 0, 1);
    CHECK_EQ(n, 3);
    CHECK(len[0] == 3 && len[1] == 2 && len[2] == 1);
    n = nde_runs(len, &s, C, LL, 1, 1);
    CHECK_EQ(n, 1);
    CHECK(len[0] == 8);
    CHECK_EQ(nde_runs(len, &s, C, LL, 1, 0), 1); /* window 1's idle channel */
    CHECK(len[0] == 8);

    /* coupling: the same series (r = 1), opposite busy bins (r = −1), a constant
     * channel (0) */
    float z[3 * C * LL];
    for (int w = 0; w < 3; w++)
        for (int i = 0; i < LL; i++) {
            float a = i % 3 ? (float)expm1(4.0) : 0.0f, b = i % 3 ? 0.0f : (float)expm1(4.0);
            z[(w * C) * LL + i] = a;
            z[(w * C + 1) * LL + i] = w == 0 ? a : w == 1 ? b : 100.0f;
        }
    int yz[3] = {0, 0, 0};
    nde_set t = {.n = 3, .x = z, .y = yz};
    double r[3];
    nde_coupling(r, &t, C, LL);
    CHECK_NEAR(r[0], 1.0, 1e-9, 0);
    CHECK_NEAR(r[1], -1.0, 1e-9, 0);
    CHECK(r[2] == 0);
}

/* ---- the report ---------------------------------------------------------------------- */

static nd_dataset *dataset(const nde_set *s, int channels)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new((uint32_t)channels, names, L, ND_NS_PER_SEC);
    nd_dataset_class(ds, "a");
    nd_dataset_class(ds, "b");
    for (size_t w = 0; w < s->n; w++)
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)s->y[w], w, s->x + w * C * L), 0);
    return ds;
}

static char *report(const nd_dataset *real, const nd_dataset *synth, const nd_dataset *train,
                    const nd_dataset *peer, int threads, int *rc)
{
    size_t cap = 1 << 18;
    char *buf = calloc(cap, 1);
    FILE *f = fmemopen(buf, cap, "w");
    nd_eval_opts o = {.seed = 3, .cnn_steps = 0, .threads = threads};
    nd_error e = {0};
    *rc = nd_eval_report(f, NULL, real, synth, NULL, train, peer, &o, &e);
    fclose(f);
    if (*rc) fprintf(stderr, "eval: %s\n", e.msg);
    return buf;
}

/* The value of key in source's SUMMARY line; NaN for '-'. */
static double summary(const char *rep, const char *source, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "SUMMARY %s ", source);
    const char *p = strstr(rep, k);
    CHECK(p);
    const char *end = strchr(p, '\n');
    snprintf(k, sizeof k, " %s=", key);
    const char *q = strstr(p, k);
    CHECK(q && q < end);
    q += strlen(k);
    return *q == '-' ? NAN : strtod(q, NULL);
}

static void test_report(void)
{
    nde_set R = windows(30, 0, 1), S = windows(60, 2, 4), T = windows(60, 0, 5);
    nd_dataset *real = dataset(&R, C), *synth = dataset(&S, C), *train = dataset(&T, C);
    /* the peer: the real process, downlink only */
    nde_set P = windows(60, 0, 6);
    nd_dataset *peer = dataset(&P, 1);
    int rc;
    char *rep = report(real, synth, train, peer, 2, &rc);
    CHECK_EQ(rc, 0);
    fputs(rep, stderr);
    /* the idle start: three positions per channel outside in both profiles; the training
     * windows (the floor) hardly any */
    CHECK(summary(rep, "synth", "pos_out") >= 6);
    CHECK(summary(rep, "synth", "pos_idle_out") >= 6);
    CHECK(summary(rep, "synth", "pos_out_ch0") >= 3);
    CHECK(summary(rep, "real", "pos_out") <= 6);
    /* both classifiers see the idle start; the floor is near 0 */
    CHECK(summary(rep, "synth", "disc_rf_all") > 0.9);
    CHECK(summary(rep, "synth", "disc_cnn_all") > 0.9);
    CHECK(summary(rep, "real", "disc_rf_all") < 0.35);
    CHECK(summary(rep, "real", "disc_cnn_all") < 0.35);
    CHECK_NEAR(summary(rep, "real", "tstr_trtr"), 1.0, 1e-9, 0);
    CHECK(isnan(summary(rep, "real", "nn_ratio")));
    CHECK(summary(rep, "naive", "coupling") >= 0);
    /* the peer: measured on its channel, its all-channel values and coupling left out */
    CHECK(isnan(summary(rep, "peer", "disc_rf_all")));
    CHECK(isnan(summary(rep, "peer", "coupling")));
    CHECK(summary(rep, "peer", "disc_rf_ch0") < 0.35);
    CHECK(summary(rep, "peer", "nn_ratio_ch0") > 0);
    CHECK(summary(rep, "peer", "pos_out_ch0") <= 4);
    CHECK_CONTAINS(rep, "memorisation (peer, on bytes_down)");
    CHECK_CONTAINS(rep, "peer*");
    /* deterministic, whatever the threads */
    char *again = report(real, synth, train, peer, 1, &rc);
    CHECK_EQ(rc, 0);
    CHECK_STR_EQ(rep, again);
    free(again), free(rep);
    /* no training windows: no floor, naive, TRTR or memorisation, the rest is there */
    rep = report(real, synth, NULL, NULL, 1, &rc);
    CHECK_EQ(rc, 0);
    CHECK(!strstr(rep, "SUMMARY real") && !strstr(rep, "SUMMARY naive"));
    CHECK(summary(rep, "synth", "disc_rf_all") > 0.9);
    CHECK(isnan(summary(rep, "synth", "tstr_trtr")) &&
          isnan(summary(rep, "synth", "nn_ratio")));
    free(rep);
    /* a peer channel real does not have: refused */
    snprintf(peer->channel_names[0], ND_NAME_MAX, "packets_down");
    rep = report(real, synth, train, peer, 1, &rc);
    CHECK_EQ(rc, ND_EUSAGE);
    free(rep);
    nd_dataset_free(real), nd_dataset_free(synth), nd_dataset_free(train);
    nd_dataset_free(peer);
    nde_set_free(&R), nde_set_free(&S), nde_set_free(&T), nde_set_free(&P);
}

/* Keeps only the first n windows of class k in s. */
static void keep_first(nde_set *s, int k, size_t n)
{
    size_t m = 0, seen = 0;
    for (size_t w = 0; w < s->n; w++) {
        if (s->y[w] == k && seen++ >= n) continue;
        memmove(s->x + m * C * L, s->x + w * C * L, C * L * sizeof *s->x);
        s->y[m++] = s->y[w];
    }
    s->n = m;
}

/* Profiles, runs and coupling pool the classes: a source of the real process in another
 * class mix (sample draws as many windows per class, captures are unbalanced) must not
 * look different for its mix alone. Here class b, two log1p units busier, is an eighth
 * of the held-out and training windows and half of the source's. */
static void test_class_mix(void)
{
    nde_set R = windows(64, 0, 1), S = windows(64, 0, 4), T = windows(64, 0, 5);
    keep_first(&R, 1, 8);
    keep_first(&T, 1, 8);
    nd_dataset *real = dataset(&R, C), *synth = dataset(&S, C), *train = dataset(&T, C);
    int rc;
    char *rep = report(real, synth, train, NULL, 1, &rc);
    CHECK_EQ(rc, 0);
    fputs(rep, stderr);
    CHECK_CONTAINS(rep, "every source redrawn to the held-out windows'");
    /* unmixed, 20 positions lie outside and the mean distance doubles (the floor: 3) */
    CHECK(summary(rep, "synth", "pos_out") <= 12);
    CHECK(summary(rep, "synth", "pos_mean") < 3 * summary(rep, "real", "pos_mean") + 0.05);
    free(rep);
    nd_dataset_free(real), nd_dataset_free(synth), nd_dataset_free(train);
    nde_set_free(&R), nde_set_free(&S), nde_set_free(&T);
}

int main(void)
{
    test_class_mix();
    test_forest();
    test_runs_coupling();
    test_profiles();
    test_disc();
    test_report();
    return 0;
}
