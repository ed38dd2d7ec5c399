/*
 * judge.c — measures of eval that nothing in the model or its decoder is fitted to, for
 * every source (decoded and raw synthetic windows, the naive baseline, the training
 * windows as the real-vs-real floor, a peer generator's windows) against the held-out
 * real windows:
 *
 *   two-sample test  can a classifier tell the source's windows from real ones? Per class
 *                    as many of each, 5-fold cross-validated accuracy of a random forest
 *                    (log1p of every bin + the summary features) and of a small 1-D CNN
 *                    on the log1p series; score |acc − 0.5| × 2;
 *   TSTR/TRTR        classifiers of the classes trained on the source, tested on real,
 *                    against the same trained on the training windows (logistic, 5-NN,
 *                    random forest on the summary features);
 *   profiles         per bin position, the mean log1p(bytes) and the idle share, and how
 *                    many positions lie outside two standard errors of real's;
 *   runs             the lengths of idle and busy runs (W1 and means);
 *   coupling         per window, the correlation of the two channels (W1 and mean);
 *   memorisation     median distance to the nearest training window against real's.
 *
 * Profiles, runs and coupling pool the windows of every class, so each source is redrawn
 * to the held-out windows' class mix for them (mix_like): sample draws as many windows of
 * every class, real captures are unbalanced, and the pooled figures would otherwise
 * differ by the mix alone.
 *
 * Every measure is given on all channels and on the first channel alone, so that a peer
 * that has only that one (a downlink-only generator) can be compared on it; a source
 * that lacks channels is measured on those it has, marked, and its all-channel values
 * are left out of the SUMMARY lines. Every random choice comes from the report's seed.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"
#include "nn.h"

#define FOLDS 5
#define IDLE  0.5 /* bytes: a bin under this is idle */

static double lg(float v) { return v >= IDLE ? log1p(v) : 0.0; }

/* ---- two-sample test ------------------------------------------------------------------ */

typedef struct pooled {
    size_t n;
    const float **x; /* (n) windows (nch, L) */
    int *label;      /* 1 real, 0 source */
    int *fold;
} pooled;

/* Per class min(|R_k|, |S_k|) windows of each, drawn without replacement; folds assigned
 * in turn within every (class, label) stratum, continuing across strata so that folds
 * have equal sizes. */
static int pool_draw(pooled *p, const nde_set *R, const nde_set *S, size_t WL, int K, nd_rng *r)
{
    size_t cap = R->n + S->n + 1, off = 0;
    p->n = 0;
    p->x = malloc(cap * sizeof *p->x);
    p->label = malloc(cap * sizeof(int));
    p->fold = malloc(cap * sizeof(int));
    size_t *ir = malloc(cap * sizeof *ir), *is = malloc(cap * sizeof *is);
    if (!p->x || !p->label || !p->fold || !ir || !is) {
        free(ir), free(is);
        return -ENOMEM;
    }
    for (int k = 0; k < K; k++) {
        size_t nr = 0, ns = 0;
        for (size_t i = 0; i < R->n; i++)
            if (R->y[i] == k) ir[nr++] = i;
        for (size_t i = 0; i < S->n; i++)
            if (S->y[i] == k) is[ns++] = i;
        size_t m = nr < ns ? nr : ns;
        for (int side = 1; side >= 0; side--) {
            size_t *id = side ? ir : is, cnt = side ? nr : ns;
            const nde_set *src = side ? R : S;
            for (size_t i = 0; i < m; i++) { /* partial Fisher–Yates */
                size_t j = i + nd_rng_below(r, (uint32_t)(cnt - i)), t = id[i];
                id[i] = id[j], id[j] = t;
                p->x[p->n] = src->x + id[i] * WL;
                p->label[p->n] = side;
                p->fold[p->n++] = (int)((off + i) % FOLDS);
            }
            off += m;
        }
    }
    free(ir), free(is);
    return 0;
}

static void pool_free(pooled *p) { free(p->x), free(p->label), free(p->fold); }

/* Forest features of one window (nch, L): log1p of every bin, then the summary features. */
static int rf_nf(int nch, int L) { return nch * L + nch * NDE_NF_PER_CH; }
static void rf_features(double *f, const float *x, int nch, int L)
{
    for (int j = 0; j < nch * L; j++) f[j] = log1p(fmax(0, x[j]));
    nde_features(f + nch * L, x, nch, L);
}

static size_t disc_rf(const pooled *p, int nch, int L, uint64_t seed, int threads)
{
    int nf = rf_nf(nch, L);
    double *X = malloc((p->n + 1) * nf * sizeof *X), *Xtr = malloc((p->n + 1) * nf * sizeof *X);
    int *ytr = malloc((p->n + 1) * sizeof *ytr);
    ND_ASSERT(X && Xtr && ytr);
    for (size_t i = 0; i < p->n; i++) rf_features(X + i * nf, p->x[i], nch, L);
    size_t ok = 0;
    for (int f = 0; f < FOLDS; f++) {
        size_t n = 0;
        for (size_t i = 0; i < p->n; i++)
            if (p->fold[i] != f) {
                memcpy(Xtr + n * nf, X + i * nf, nf * sizeof *X);
                ytr[n++] = p->label[i];
            }
        nde_forest_opts o = {.seed = seed + 1000003u * (uint64_t)f, .threads = threads};
        nde_forest *rf = nde_forest_fit(Xtr, ytr, n, nf, 2, &o);
        ND_ASSERT(rf);
        double pr[2];
        for (size_t i = 0; i < p->n; i++)
            if (p->fold[i] == f) ok += nde_forest_predict(rf, X + i * nf, pr) == p->label[i];
        nde_forest_free(rf);
    }
    free(X), free(Xtr), free(ytr);
    return ok;
}

static size_t disc_cnn(const pooled *p, int nch, int L, uint64_t seed, int threads)
{
    size_t WL = (size_t)nch * L, ok = 0;
    float *S = malloc((p->n + 1) * WL * sizeof *S);
    ND_ASSERT(S);
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < WL; j++) S[i * WL + j] = (float)log1p(fmax(0, p->x[i][j]));
    /* folds train independently, each on one thread: the result does not depend on how
     * many run at once. The context keeps OpenBLAS's own threads out of those loops. */
    nd_ctx *ctx = nd_ctx_new(threads);
    ND_ASSERT(ctx);
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(+ : ok)
    for (int f = 0; f < FOLDS; f++) {
        float *xtr = malloc((p->n + 1) * WL * sizeof *xtr),
              *xte = malloc((p->n + 1) * WL * sizeof *xte);
        int *ytr = malloc((p->n + 1) * sizeof *ytr), *yte = malloc((p->n + 1) * sizeof *yte),
            *pred = malloc((p->n + 1) * sizeof *pred);
        ND_ASSERT(xtr && xte && ytr && yte && pred);
        size_t ntr = 0, nte = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (p->fold[i] != f) {
                memcpy(xtr + ntr * WL, S + i * WL, WL * sizeof *S);
                ytr[ntr++] = p->label[i];
            } else {
                memcpy(xte + nte * WL, S + i * WL, WL * sizeof *S);
                yte[nte++] = p->label[i];
            }
        }
        nde_conv1d_fit_predict(pred, xtr, ytr, ntr, xte, nte, nch, L, seed + (uint64_t)f);
        for (size_t i = 0; i < nte; i++) ok += pred[i] == yte[i];
        free(xtr), free(xte), free(ytr), free(yte), free(pred);
    }
    nd_ctx_free(ctx);
    free(S);
    return ok;
}

double nde_disc_score(const nde_set *R, const nde_set *S, int nch, int L, int K, int clf,
                      uint64_t seed, int threads, double *acc)
{
    if (threads <= 0) threads = omp_get_num_procs();
    nd_rng r;
    nd_rng_seed(&r, seed);
    pooled p;
    ND_ASSERT(!pool_draw(&p, R, S, (size_t)nch * L, K, &r));
    double a = NAN;
    if (p.n >= 10) {
        size_t ok = clf == NDE_DISC_RF ? disc_rf(&p, nch, L, seed, threads)
                                       : disc_cnn(&p, nch, L, seed, threads);
        a = (double)ok / p.n;
    }
    pool_free(&p);
    if (acc) *acc = a;
    return fabs(a - 0.5) * 2;
}

/* ---- per-position profiles, runs, coupling ------------------------------------------- */

void nde_profile(const nde_set *s, int C, int L, int c, double *mean, double *var_mean,
                 double *idle, double *var_idle)
{
    for (int i = 0; i < L; i++) {
        double m = 0, m2 = 0, z = 0;
        for (size_t w = 0; w < s->n; w++) {
            float v = s->x[(w * C + c) * L + i];
            double y = lg(v);
            m += y, m2 += y * y, z += v < IDLE;
        }
        double n = (double)s->n;
        mean[i] = n > 0 ? m / n : NAN;
        var_mean[i] = n > 1 ? fmax(0, (m2 - m * m / n) / (n - 1)) : 0;
        idle[i] = n > 0 ? z / n : NAN;
        var_idle[i] = n > 0 ? idle[i] * (1 - idle[i]) : 0;
    }
}

int nde_profile_outside(const double *a, const double *va, size_t na, const double *b,
                        const double *vb, size_t nb, int L, double *mad)
{
    int out = 0;
    double s = 0;
    for (int i = 0; i < L; i++) {
        double d = fabs(a[i] - b[i]), band = 2 * sqrt(va[i] / (double)na + vb[i] / (double)nb);
        s += d;
        out += d > band + 1e-12;
    }
    *mad = s / L;
    return out;
}

size_t nde_runs(double *len, const nde_set *s, int C, int L, int c, int busy)
{
    size_t n = 0;
    for (size_t w = 0; w < s->n; w++) {
        const float *x = s->x + (w * C + c) * (size_t)L;
        int run = 0;
        for (int i = 0; i <= L; i++) {
            int in = i < L && (x[i] >= IDLE) == busy;
            if (in) run++;
            else if (run) len[n++] = run, run = 0;
        }
    }
    return n;
}

void nde_coupling(double *r, const nde_set *s, int C, int L)
{
    for (size_t w = 0; w < s->n; w++) {
        const float *a = s->x + w * C * (size_t)L, *b = a + L;
        double ma = 0, mb = 0;
        for (int i = 0; i < L; i++) ma += lg(a[i]), mb += lg(b[i]);
        ma /= L, mb /= L;
        double sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < L; i++) {
            double u = lg(a[i]) - ma, v = lg(b[i]) - mb;
            sab += u * v, saa += u * u, sbb += v * v;
        }
        r[w] = saa > 1e-12 && sbb > 1e-12 ? sab / sqrt(saa * sbb) : 0;
    }
}

/* ---- the report ---------------------------------------------------------------------- */

static const char *const src_name[NDE_NSRC] = {"synth", "raw", "naive", "real", "peer"};

/* What goes into a source's SUMMARY line: [0] all channels, [1] the first channel. */
typedef struct summary {
    double disc[2][2]; /* [view][NDE_DISC_RF/CNN] */
    double tstr[2];    /* mean TSTR/TRTR of logistic, 5-NN, forest */
    double pos_mean[2], pos_idle[2];
    int pos_out[2], pos_idle_out[2];
    double run_idle[2], run_busy[2];
    double coupling;
    double nn[2];
} summary;

typedef struct judge {
    const nde_judge *j;
    FILE *out;
    nd_json *ind; /* js's "independent" object */
    int C, L, K;
    int chs[NDE_NSRC][2][ND_MAX_CHANNELS], nch[NDE_NSRC][2]; /* per view */
    int complete[NDE_NSRC];                                  /* has all of real's channels */
    summary sum[NDE_NSRC];
    const char *ch0; /* name of the first channel */
} judge;

static int present(const judge *g, int i) { return g->j->src[i] && g->j->src[i]->n > 0; }

static const char *view_name(const judge *g, int v, char *buf, size_t cap)
{
    if (v == 0) snprintf(buf, cap, "all channels");
    else snprintf(buf, cap, "%s only", g->ch0);
    return buf;
}

/* Source name, with '*' when measured on fewer channels than real has. */
static const char *row_name(const judge *g, int i, int v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", src_name[i], v == 0 && !g->complete[i] ? "*" : "");
    return buf;
}

static void footnote(const judge *g, int v)
{
    for (int i = 0; i < NDE_NSRC; i++) {
        if (v || !present(g, i) || g->complete[i]) continue;
        fprintf(g->out, "  * %s: on the channels it has:", src_name[i]);
        for (int c = 0; c < g->nch[i][0]; c++)
            fprintf(g->out, " %s", g->j->real->channel_names[g->chs[i][0][c]]);
        fputc('\n', g->out);
    }
}

static void print_num(FILE *out, int w, const char *fmt, double v)
{
    if (isnan(v)) fprintf(out, " %*s", w, "-");
    else fprintf(out, fmt, w, v);
}

static const char *const view_key[2] = {"all", "ch0"};

/* Views of R, T and source i on view v's channels. */
typedef struct views {
    nde_set R, T, S;
    int nch;
} views;

static void views_make(views *vw, const judge *g, int i, int v)
{
    const nde_judge *j = g->j;
    const nde_set *T = j->src[NDE_REAL];
    vw->nch = g->nch[i][v];
    memset(&vw->T, 0, sizeof vw->T);
    ND_ASSERT(!nde_view(&vw->R, j->R, g->C, g->L, g->chs[i][v], vw->nch));
    ND_ASSERT(!nde_view(&vw->S, j->src[i], g->C, g->L, g->chs[i][v], vw->nch));
    if (T && T->n) ND_ASSERT(!nde_view(&vw->T, T, g->C, g->L, g->chs[i][v], vw->nch));
}

static void views_free(views *vw)
{
    nde_set_free(&vw->R), nde_set_free(&vw->T), nde_set_free(&vw->S);
}

/* Classifier two-sample test, every source, both views. */
static void report_disc(judge *g)
{
    const nde_judge *j = g->j;
    FILE *out = g->out;
    double acc[NDE_NSRC][2][2], sc[NDE_NSRC][2][2];
    size_t n[NDE_NSRC][2];
    /* the first-channel view first: for a source with only that channel the all-channel
     * values are the same, not computed twice */
    for (int v = 1; v >= 0; v--)
        for (int i = 0; i < NDE_NSRC; i++) {
            n[i][v] = 0;
            acc[i][v][0] = acc[i][v][1] = sc[i][v][0] = sc[i][v][1] = NAN;
            if (!present(g, i) || !g->nch[i][v]) continue;
            if (v == 0 && g->nch[i][0] == 1 && g->chs[i][0][0] == 0) {
                memcpy(acc[i][0], acc[i][1], sizeof acc[i][0]);
                memcpy(sc[i][0], sc[i][1], sizeof sc[i][0]);
                n[i][0] = n[i][1];
                continue;
            }
            views vw;
            views_make(&vw, g, i, v);
            for (int k = 0; k < g->K; k++) {
                size_t a = 0, b = 0;
                for (size_t w = 0; w < vw.R.n; w++) a += vw.R.y[w] == k;
                for (size_t w = 0; w < vw.S.n; w++) b += vw.S.y[w] == k;
                n[i][v] += 2 * (a < b ? a : b);
            }
            for (int c = 0; c < 2; c++)
                sc[i][v][c] = nde_disc_score(&vw.R, &vw.S, vw.nch, g->L, g->K, c, j->seed + 77,
                                             j->threads, &acc[i][v][c]);
            views_free(&vw);
        }
    fprintf(out, "\nclassifier two-sample test: does a classifier tell the source's windows "
                 "from held-out ones?\n"
                 "  per class min(real, source) windows of each at random (n: both, pooled); "
                 "5-fold cross-\n"
                 "  validated accuracy; score |acc - 0.5| x 2 (0: indistinguishable, 1: always "
                 "told apart).\n"
                 "  RF: random forest, 200 trees, on log1p of every bin and the summary "
                 "features; CNN: two\n"
                 "  width-5 convolutions on the log1p series\n");
    nd_json *dj = nd_json_obj(g->ind, "two_sample");
    for (int v = 0; v < 2; v++) {
        char vb[96];
        nd_json *vj = nd_json_obj(dj, view_key[v]);
        fprintf(out, "%-10s %6s %8s %8s %8s %8s    (%s)\n", "source", "n", "RF acc", "score",
                "CNN acc", "score", view_name(g, v, vb, sizeof vb));
        for (int i = 0; i < NDE_NSRC; i++) {
            g->sum[i].disc[v][0] = sc[i][v][0], g->sum[i].disc[v][1] = sc[i][v][1];
            if (!present(g, i) || !g->nch[i][v]) continue;
            nd_json *sj = nd_json_obj(vj, src_name[i]);
            nd_json_u64(sj, "n", n[i][v]);
            nd_json_num(sj, "rf_acc", acc[i][v][0]);
            nd_json_num(sj, "rf_score", sc[i][v][0]);
            nd_json_num(sj, "cnn_acc", acc[i][v][1]);
            nd_json_num(sj, "cnn_score", sc[i][v][1]);
            char nb[32];
            fprintf(out, "%-10s %6zu", row_name(g, i, v, nb, sizeof nb), n[i][v]);
            for (int c = 0; c < 2; c++) {
                print_num(out, 8, " %*.3f", acc[i][v][c]);
                print_num(out, 8, " %*.3f", sc[i][v][c]);
            }
            fputc('\n', out);
        }
        footnote(g, v);
    }
}

/* Classifiers of the classes trained on every source, tested on real, both views. */
static void report_tstr(judge *g)
{
    const nde_judge *j = g->j;
    FILE *out = g->out;
    fprintf(out,
            "\nclassifiers of the classes trained on each source, tested on the %zu "
            "held-out real windows\n  (summary features; the row real is TRTR)\n",
            j->R->n);
    unsigned cache_mask[2 * NDE_NSRC];
    double cache[2 * NDE_NSRC][3];
    int ncache = 0;
    nd_json *tj = nd_json_obj(g->ind, "tstr");
    for (int v = 0; v < 2; v++) {
        char vb[96];
        nd_json *vj = nd_json_obj(tj, view_key[v]);
        fprintf(out, "%-10s %-26s   %-35s (%s)\n", "", "accuracy", "/ TRTR",
                view_name(g, v, vb, sizeof vb));
        fprintf(out, "%-10s %8s %8s %8s   %8s %8s %8s %8s\n", "source", "logistic", "5-NN",
                "RF", "logistic", "5-NN", "RF", "mean");
        for (int i = 0; i < NDE_NSRC; i++) {
            g->sum[i].tstr[v] = NAN;
            if (!present(g, i) || !g->nch[i][v]) continue;
            views vw;
            views_make(&vw, g, i, v);
            nde_feats FR, FS, FT = {0};
            ND_ASSERT(!nde_feats_of(&FR, &vw.R, vw.nch, g->L) &&
                      !nde_feats_of(&FS, &vw.S, vw.nch, g->L) &&
                      !nde_feats_of(&FT, &vw.T, vw.nch, g->L));
            double a[3], t[3], mean = 0;
            a[0] = nde_logreg_accuracy(&FS, &FR, g->K);
            a[1] = nde_knn_accuracy(&FS, &FR, g->K);
            a[2] = nde_forest_accuracy(&FS, &FR, g->K, j->seed + 99, j->threads);
            /* TRTR once per channel set */
            unsigned mask = 0;
            for (int c = 0; c < vw.nch; c++) mask |= 1u << g->chs[i][v][c];
            int hit = 0;
            while (hit < ncache && cache_mask[hit] != mask) hit++;
            if (hit == ncache) {
                cache_mask[ncache++] = mask;
                cache[hit][0] = nde_logreg_accuracy(&FT, &FR, g->K);
                cache[hit][1] = nde_knn_accuracy(&FT, &FR, g->K);
                cache[hit][2] = nde_forest_accuracy(&FT, &FR, g->K, j->seed + 99, j->threads);
            }
            memcpy(t, cache[hit], sizeof t);
            char nb[32];
            fprintf(out, "%-10s", row_name(g, i, v, nb, sizeof nb));
            for (int c = 0; c < 3; c++) print_num(out, 8, " %*.3f", a[c]);
            fprintf(out, "  ");
            for (int c = 0; c < 3; c++) {
                print_num(out, 8, " %*.2f", a[c] / t[c]);
                mean += a[c] / t[c] / 3;
            }
            print_num(out, 8, " %*.2f", mean);
            fputc('\n', out);
            g->sum[i].tstr[v] = mean;
            static const char *const ck[3] = {"logistic", "knn5", "random_forest"};
            static const char *const rk[3] = {"logistic_trtr", "knn5_trtr",
                                              "random_forest_trtr"};
            nd_json *sj = nd_json_obj(vj, src_name[i]);
            for (int c = 0; c < 3; c++) nd_json_num(sj, ck[c], a[c]);
            for (int c = 0; c < 3; c++) nd_json_num(sj, rk[c], a[c] / t[c]);
            nd_json_num(sj, "mean", mean);
            free(FR.f), free(FS.f), free(FT.f);
            views_free(&vw);
        }
        footnote(g, v);
    }
}

/* Positions printed: the first five and the last three (all when L is small). */
static int shown_positions(int *pos, int L)
{
    int n = 0;
    for (int i = 0; i < L; i++)
        if (i < 5 || i >= L - 3) pos[n++] = i;
    return n;
}

static void report_profiles(judge *g)
{
    const nde_judge *j = g->j;
    FILE *out = g->out;
    int C = g->C, L = g->L, pos[8], np = shown_positions(pos, L);
    double *m = malloc(8 * L * sizeof *m);
    ND_ASSERT(m);
    double *rm = m, *rv = m + L, *ri = m + 2 * L, *riv = m + 3 * L;
    double *sm = m + 4 * L, *sv = m + 5 * L, *si = m + 6 * L, *siv = m + 7 * L;
    fprintf(out,
            "\nper-position profiles over all windows: mean log1p(bytes) (idle bins, under "
            "0.5 bytes, as 0)\n  and idle share at every bin position; mean|d|: mean over "
            "positions of |source - held-out|;\n  outside: positions where that exceeds 2 x "
            "sqrt(var_held-out/n_held-out + var_source/n_source)\n");
    for (int i = 0; i < NDE_NSRC; i++)
        for (int v = 0; v < 2; v++) {
            g->sum[i].pos_mean[v] = g->sum[i].pos_idle[v] = 0;
            g->sum[i].pos_out[v] = g->sum[i].pos_idle_out[v] = 0;
        }
    nd_json *pj = nd_json_obj(g->ind, "profiles");
    for (int c = 0; c < C; c++) {
        nde_profile(j->R, C, L, c, rm, rv, ri, riv);
        nd_json *cj = nd_json_obj(pj, j->real->channel_names[c]);
        for (int what = 0; what < 2; what++) {
            nd_json *wj = nd_json_obj(cj, what ? "idle_share" : "mean_log1p");
            fprintf(out, "%s, %s\n", j->real->channel_names[c],
                    what ? "idle share" : "mean log1p(bytes)");
            fprintf(out, "%-10s %6s %8s %8s", "source", "n", "mean|d|", "outside");
            for (int k = 0; k < np; k++) {
                if (k && pos[k] != pos[k - 1] + 1) fprintf(out, " %4s", "...");
                fprintf(out, " %6d", pos[k]);
            }
            fputc('\n', out);
            const double *ref = what ? ri : rm;
            nd_json *hj = nd_json_obj(wj, "held_out");
            nd_json_u64(hj, "n", j->R->n);
            nd_json *hv = nd_json_arr(hj, "values");
            for (int k = 0; k < L; k++) nd_json_num(hv, NULL, ref[k]);
            fprintf(out, "%-10s %6zu %8s %8s", "held-out", j->R->n, "", "");
            for (int k = 0; k < np; k++) {
                if (k && pos[k] != pos[k - 1] + 1) fprintf(out, " %4s", "");
                fprintf(out, " %6.2f", ref[pos[k]]);
            }
            fputc('\n', out);
            for (int i = 0; i < NDE_NSRC; i++) {
                if (!present(g, i) || !j->has[i][c]) continue;
                const nde_set *S = j->src[i];
                nde_profile(S, C, L, c, sm, sv, si, siv);
                double mad;
                int o = what ? nde_profile_outside(si, siv, S->n, ri, riv, j->R->n, L, &mad)
                             : nde_profile_outside(sm, sv, S->n, rm, rv, j->R->n, L, &mad);
                summary *s = &g->sum[i];
                for (int v = 0; v < 2; v++) {
                    if (v == 1 && c != 0) continue;
                    double w = v ? 1.0 : 1.0 / C;
                    if (what) s->pos_idle[v] += w * mad, s->pos_idle_out[v] += o;
                    else s->pos_mean[v] += w * mad, s->pos_out[v] += o;
                }
                char ob[32];
                snprintf(ob, sizeof ob, "%d/%d", o, L);
                fprintf(out, "%-10s %6zu %8.3f %8s", src_name[i], S->n, mad, ob);
                const double *val = what ? si : sm;
                nd_json *sj = nd_json_obj(wj, src_name[i]);
                nd_json_u64(sj, "n", S->n);
                nd_json_num(sj, "mean_abs_diff", mad);
                nd_json_int(sj, "outside", o);
                nd_json *vals = nd_json_arr(sj, "values");
                for (int k = 0; k < L; k++) nd_json_num(vals, NULL, val[k]);
                for (int k = 0; k < np; k++) {
                    if (k && pos[k] != pos[k - 1] + 1) fprintf(out, " %4s", "");
                    fprintf(out, " %6.2f", val[pos[k]]);
                }
                fputc('\n', out);
            }
        }
    }
    free(m);
}

static void report_runs(judge *g)
{
    const nde_judge *j = g->j;
    FILE *out = g->out;
    int C = g->C, L = g->L;
    size_t cap = 1;
    for (int i = 0; i < NDE_NSRC; i++)
        if (present(g, i) && j->src[i]->n > cap) cap = j->src[i]->n;
    if (j->R->n > cap) cap = j->R->n;
    double *a = malloc(cap * L * sizeof *a), *b = malloc(cap * L * sizeof *b);
    ND_ASSERT(a && b);
    fprintf(out, "\nidle and busy runs: lengths in bins of the maximal runs of idle (under 0.5 "
                 "bytes) and of busy\n  bins, those cut by the window's edges as they are; W1 "
                 "to the held-out windows' lengths\n");
    fprintf(out, "%-12s %-10s %7s %8s %7s %7s %8s %7s\n", "channel", "source", "idle n", "W1",
            "mean", "busy n", "W1", "mean");
    for (int i = 0; i < NDE_NSRC; i++)
        for (int v = 0; v < 2; v++) g->sum[i].run_idle[v] = g->sum[i].run_busy[v] = 0;
    nd_json *rj = nd_json_obj(g->ind, "runs");
    for (int c = 0; c < C; c++) {
        nd_json *cj = nd_json_obj(rj, j->real->channel_names[c]);
        for (int i = -1; i < NDE_NSRC; i++) {
            if (i >= 0 && (!present(g, i) || !j->has[i][c])) continue;
            const nde_set *S = i < 0 ? j->R : j->src[i];
            nd_json *sj = nd_json_obj(cj, i < 0 ? "held_out" : src_name[i]);
            fprintf(out, "%-12s %-10s", j->real->channel_names[c],
                    i < 0 ? "held-out" : src_name[i]);
            for (int busy = 0; busy < 2; busy++) {
                size_t nr = nde_runs(a, j->R, C, L, c, busy),
                       ns = nde_runs(b, S, C, L, c, busy);
                double mean = 0;
                for (size_t k = 0; k < ns; k++) mean += b[k] / ns;
                double w1 = i < 0 ? NAN : nd_w1(b, ns, a, nr);
                fprintf(out, " %7zu", ns);
                print_num(out, 8, " %*.3f", w1);
                print_num(out, 7, " %*.2f", ns ? mean : NAN);
                nd_json *bj = nd_json_obj(sj, busy ? "busy" : "idle");
                nd_json_u64(bj, "n", ns);
                nd_json_num(bj, "w1", w1);
                nd_json_num(bj, "mean", ns ? mean : NAN);
                if (i < 0) continue;
                for (int v = 0; v < 2; v++) {
                    if (v == 1 && c != 0) continue;
                    double w = v ? 1.0 : 1.0 / C;
                    if (busy) g->sum[i].run_busy[v] += w * w1;
                    else g->sum[i].run_idle[v] += w * w1;
                }
            }
            fputc('\n', out);
        }
    }
    free(a), free(b);
}

static void report_coupling(judge *g)
{
    const nde_judge *j = g->j;
    FILE *out = g->out;
    for (int i = 0; i < NDE_NSRC; i++) g->sum[i].coupling = NAN;
    if (g->C < 2) return;
    size_t cap = j->R->n + 1;
    for (int i = 0; i < NDE_NSRC; i++)
        if (present(g, i) && j->src[i]->n + 1 > cap) cap = j->src[i]->n + 1;
    double *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    ND_ASSERT(a && b);
    fprintf(out,
            "\ncross-channel coupling: per window the Pearson correlation of log1p %s and %s\n"
            "  (idle bins as 0; 0 when either is constant); W1 to the held-out windows' ones\n",
            j->real->channel_names[0], j->real->channel_names[1]);
    fprintf(out, "%-10s %6s %8s %8s\n", "source", "n", "W1", "mean");
    nd_json *cj = nd_json_obj(g->ind, "coupling");
    for (int i = -1; i < NDE_NSRC; i++) {
        if (i >= 0 && (!present(g, i) || !j->has[i][0] || !j->has[i][1])) continue;
        const nde_set *S = i < 0 ? j->R : j->src[i];
        nde_coupling(a, j->R, g->C, g->L);
        nde_coupling(b, S, g->C, g->L);
        double mean = 0;
        for (size_t k = 0; k < S->n; k++) mean += b[k] / S->n;
        double w1 = i < 0 ? NAN : nd_w1(b, S->n, a, j->R->n);
        fprintf(out, "%-10s %6zu", i < 0 ? "held-out" : src_name[i], S->n);
        print_num(out, 8, " %*.3f", w1);
        fprintf(out, " %8.3f\n", mean);
        if (i >= 0) g->sum[i].coupling = w1;
        nd_json *sj = nd_json_obj(cj, i < 0 ? "held_out" : src_name[i]);
        nd_json_u64(sj, "n", S->n);
        nd_json_num(sj, "w1", w1);
        nd_json_num(sj, "mean", mean);
    }
    for (int i = 0; i < NDE_NSRC; i++)
        if (present(g, i) && (!j->has[i][0] || !j->has[i][1]))
            fprintf(out, "  %s: skipped (lacks a channel)\n", src_name[i]);
    free(a), free(b);
}

static double median(double *d, size_t n)
{
    qsort(d, n, sizeof *d, nde_cmp_double);
    return n ? d[n / 2] : NAN;
}

static void report_nn(judge *g)
{
    const nde_judge *j = g->j;
    FILE *out = g->out;
    for (int i = 0; i < NDE_NSRC; i++) g->sum[i].nn[0] = g->sum[i].nn[1] = NAN;
    if (!j->src[NDE_REAL] || !j->src[NDE_REAL]->n) return;
    fprintf(out, "\nmemorisation ratio: median distance to the nearest training window (log1p, "
                 "L2),\n  source / held-out real windows\n");
    char v0[96], v1[96];
    fprintf(out, "%-10s %14s %14s\n", "source", view_name(g, 0, v0, sizeof v0),
            view_name(g, 1, v1, sizeof v1));
    nd_json *nj = nd_json_obj(g->ind, "memorisation_ratio");
    for (int i = 0; i < NDE_NSRC; i++) {
        if (i == NDE_REAL || !present(g, i)) continue;
        nd_json *sj = nd_json_obj(nj, src_name[i]);
        char nb[32];
        fprintf(out, "%-10s", row_name(g, i, 0, nb, sizeof nb));
        for (int v = 0; v < 2; v++) {
            double r = NAN;
            if (g->nch[i][v]) {
                views vw;
                views_make(&vw, g, i, v);
                size_t WL = (size_t)vw.nch * g->L;
                double *ds = malloc((vw.S.n + 1) * sizeof *ds),
                       *dr = malloc((vw.R.n + 1) * sizeof *dr);
                ND_ASSERT(ds && dr);
                nde_nn_dist(ds, &vw.S, &vw.T, WL);
                nde_nn_dist(dr, &vw.R, &vw.T, WL);
                r = median(ds, vw.S.n) / median(dr, vw.R.n);
                free(ds), free(dr);
                views_free(&vw);
            }
            g->sum[i].nn[v] = r;
            print_num(out, 14, " %*.2f", r);
            nd_json_num(sj, view_key[v], r);
        }
        fputc('\n', out);
    }
    footnote(g, 0);
}

/* key=v on the SUMMARY line, and as a field of the source's summary object sj. */
static void put(FILE *out, nd_json *sj, const char *key, double v)
{
    nd_json_num(sj, key, v);
    if (isnan(v)) fprintf(out, " %s=-", key);
    else fprintf(out, " %s=%.4g", key, v);
}

static void report_summary(const judge *g)
{
    FILE *out = g->out;
    fputc('\n', out);
    nd_json *sums = nd_json_obj(g->j->js, "summary");
    for (int i = 0; i < NDE_NSRC; i++) {
        if (!present(g, i)) continue;
        nd_json *sj = nd_json_obj(sums, src_name[i]);
        const summary *s = &g->sum[i];
        /* all-channel values only for sources that have every channel, first-channel
         * values only for those that have it */
        double A = g->complete[i] ? 0 : NAN, B = g->nch[i][1] ? 0 : NAN;
        fprintf(out, "SUMMARY %s", src_name[i]);
        put(out, sj, "disc_rf_all", s->disc[0][0] + A);
        put(out, sj, "disc_cnn_all", s->disc[0][1] + A);
        put(out, sj, "disc_rf_ch0", s->disc[1][0] + B);
        put(out, sj, "disc_cnn_ch0", s->disc[1][1] + B);
        put(out, sj, "tstr_trtr", s->tstr[0] + A);
        put(out, sj, "tstr_trtr_ch0", s->tstr[1] + B);
        put(out, sj, "pos_mean", s->pos_mean[0] + A);
        put(out, sj, "pos_out", s->pos_out[0] + A);
        put(out, sj, "pos_idle", s->pos_idle[0] + A);
        put(out, sj, "pos_idle_out", s->pos_idle_out[0] + A);
        put(out, sj, "pos_mean_ch0", s->pos_mean[1] + B);
        put(out, sj, "pos_out_ch0", s->pos_out[1] + B);
        put(out, sj, "pos_idle_ch0", s->pos_idle[1] + B);
        put(out, sj, "pos_idle_out_ch0", s->pos_idle_out[1] + B);
        put(out, sj, "run_idle", s->run_idle[0] + A);
        put(out, sj, "run_busy", s->run_busy[0] + A);
        put(out, sj, "run_idle_ch0", s->run_idle[1] + B);
        put(out, sj, "run_busy_ch0", s->run_busy[1] + B);
        put(out, sj, "coupling", s->coupling + A);
        put(out, sj, "nn_ratio", s->nn[0] + A);
        put(out, sj, "nn_ratio_ch0", s->nn[1] + B);
        fputc('\n', out);
    }
}

/* out: S redrawn to R's class mix, as many windows as S has: per class k, round(n_S x
 * share of k in R) of S's class-k windows in a random order, cycling when S has fewer.
 * A class S lacks is left out. 0 or -ENOMEM. */
static int mix_like(nde_set *out, const nde_set *S, const nde_set *R, int K, size_t WL,
                    nd_rng *r)
{
    size_t *id = malloc((S->n + 1) * sizeof *id);
    *out = (nde_set){.x = malloc((S->n + (size_t)K + 1) * WL * sizeof(float)),
                     .y = malloc((S->n + (size_t)K + 1) * sizeof(int))};
    if (!id || !out->x || !out->y) {
        free(id);
        nde_set_free(out);
        return -ENOMEM;
    }
    for (int k = 0; k < K && R->n; k++) {
        size_t nr = 0, m = 0;
        for (size_t w = 0; w < R->n; w++) nr += R->y[w] == k;
        for (size_t w = 0; w < S->n; w++)
            if (S->y[w] == k) id[m++] = w;
        if (!m) continue;
        for (size_t i = m - 1; i > 0; i--) { /* Fisher–Yates */
            size_t t = nd_rng_below(r, (uint32_t)(i + 1)), v = id[i];
            id[i] = id[t], id[t] = v;
        }
        size_t want = (size_t)llround((double)S->n * (double)nr / (double)R->n);
        for (size_t i = 0; i < want; i++) {
            memcpy(out->x + out->n * WL, S->x + id[i % m] * WL, WL * sizeof *out->x);
            out->y[out->n++] = k;
        }
    }
    free(id);
    return 0;
}

int nde_judge_report(const nde_judge *j)
{
    judge g = {.j = j,
               .out = j->out,
               .ind = nd_json_obj(j->js, "independent"),
               .C = j->C,
               .L = j->L,
               .K = j->K};
    g.ch0 = j->real->channel_names[0];
    for (int i = 0; i < NDE_NSRC; i++) {
        g.complete[i] = 1;
        for (int c = 0; c < j->C; c++) {
            if (j->has[i][c]) g.chs[i][0][g.nch[i][0]++] = c;
            else g.complete[i] = 0;
        }
        if (j->has[i][0]) g.chs[i][1][g.nch[i][1]++] = 0;
    }
    FILE *out = j->out;
    fprintf(out,
            "\nindependent measures: nothing in the model or its decoder is fitted to "
            "them; every source\nagainst the %zu held-out real windows. Sources:\n",
            j->R->n);
    static const char *const what[NDE_NSRC] = {
        "the decoded synthetic windows", "the same model's windows with the decoder off",
        "every bin drawn on its own from the training windows of its class at that bin",
        "the training windows: the real-vs-real floor", "the peer's windows, on"};
    nd_json_u64(g.ind, "held_out_windows", j->R->n);
    nd_json *srcs = nd_json_obj(g.ind, "sources");
    for (int i = 0; i < NDE_NSRC; i++) {
        if (!present(&g, i)) continue;
        nd_json *sj = nd_json_obj(srcs, src_name[i]);
        nd_json_str(sj, "what", what[i]);
        nd_json_u64(sj, "windows", j->src[i]->n);
        nd_json *ch = nd_json_arr(sj, "channels");
        for (int c = 0; c < g.nch[i][0]; c++)
            nd_json_str(ch, NULL, j->real->channel_names[g.chs[i][0][c]]);
        fprintf(out, "  %-6s %s", src_name[i], what[i]);
        for (int c = 0; i == NDE_PEER && c < g.nch[i][0]; c++)
            fprintf(out, " %s", j->real->channel_names[g.chs[i][0][c]]);
        fputc('\n', out);
    }
    report_disc(&g);
    report_tstr(&g);
    /* the pooled measures on every source redrawn to the held-out class mix */
    nde_judge jm = *j;
    nde_set mixed[NDE_NSRC] = {{0}};
    nd_rng r;
    nd_rng_seed(&r, j->seed + 91);
    int rc = 0;
    for (int i = 0; i < NDE_NSRC && !rc; i++)
        if (present(&g, i)) {
            rc = mix_like(&mixed[i], j->src[i], j->R, j->K, (size_t)j->C * j->L, &r);
            jm.src[i] = &mixed[i];
        }
    if (!rc) {
        g.j = &jm;
        fprintf(out, "\nprofiles, runs and coupling pool the classes: every source redrawn to "
                     "the held-out windows'\n  class mix for them (its n below)\n");
        report_profiles(&g);
        report_runs(&g);
        report_coupling(&g);
        g.j = j;
    }
    for (int i = 0; i < NDE_NSRC; i++) nde_set_free(&mixed[i]);
    if (rc) return rc;
    report_nn(&g);
    report_summary(&g);
    return 0;
}
