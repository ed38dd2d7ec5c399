/*
 * eval.c — fidelity of synthetic windows against real ones (`netdiffus eval`):
 *
 *   marginal   1-D Wasserstein (W1) between the per-bin values of real and synthetic
 *              windows, on log1p(bytes), per channel;
 *   autocorr   mean |difference| of the class-mean autocorrelation (lags 1..L/4,
 *              log1p values) per channel;
 *   volume     W1 between log1p(total bytes of a window) per channel;
 *   each per class, then the mean over classes; and, when training windows are given,
 *   the same for train-vs-real (the floor a perfect generator reaches, since it sees
 *   only the training part) and for a naive generator that draws every bin on its own
 *   from the training windows of its class at that bin (no time structure).
 *
 *   downstream classifiers tested on the real windows: TRTR (trained on train), TSTR
 *   (trained on synthetic), TRSTR (on both): logistic regression, 5-NN and a random
 *   forest (forest.c) on the 18 features per channel of nde_features() below, and a
 *   small CNN on GASF images.
 *
 *   memorisation: L2 distance (log1p values, all channels) from each synthetic window
 *   to its nearest training window, against the same for the real windows; flagged
 *   when synthetic windows sit much closer to the training data than real unseen ones.
 *   A peer's windows get the same check on the channels they have.
 *
 * Then judge.c's measures, which nothing in the model is fitted to. Real, synthetic,
 * training and peer files are matched by class name.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"
#include "model.h"
#include "nn.h"

int nde_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void nde_init_uniform(const nde_init *layers, size_t count, nd_rng *r)
{
    for (size_t k = 0; k < count; k++)
        for (size_t i = 0; i < layers[k].n; i++)
            layers[k].w[i] = (float)((2 * nd_rng_uniform(r) - 1) / sqrt(layers[k].fan_in));
}

double nd_w1(double *a, size_t na, double *b, size_t nb)
{
    if (!na || !nb) return NAN;
    qsort(a, na, sizeof *a, nde_cmp_double);
    qsort(b, nb, sizeof *b, nde_cmp_double);
    /* ∫0^1 |Fa⁻¹(u) − Fb⁻¹(u)| du over the merged breakpoints i/na and j/nb */
    double w = 0.0, u = 0.0;
    size_t i = 0, j = 0;
    while (i < na && j < nb) {
        double ua = (double)(i + 1) / na, ub = (double)(j + 1) / nb;
        double next = ua < ub ? ua : ub;
        w += (next - u) * fabs(a[i] - b[j]);
        u = next;
        if (ua <= next) i++;
        if (ub <= next) j++;
    }
    return w;
}

void nd_mean_acf(double *acf, const float *x, size_t n, int C, int L, int c, int K)
{
    for (int k = 0; k < K; k++) acf[k] = 0.0;
    if (!n) return;
    double y[4096];
    ND_ASSERT(L <= 4096);
    for (size_t w = 0; w < n; w++) {
        const float *s = x + (w * C + c) * (size_t)L;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < L; i++) m += y[i] = log1p(s[i] > 0 ? s[i] : 0);
        m /= L;
        for (int i = 0; i < L; i++) v += (y[i] - m) * (y[i] - m);
        if (v <= 1e-12) continue; /* constant window: 0 */
        for (int k = 1; k <= K; k++) {
            double a = 0.0;
            for (int i = 0; i + k < L; i++) a += (y[i] - m) * (y[i + k] - m);
            acf[k - 1] += a / v;
        }
    }
    for (int k = 0; k < K; k++) acf[k] /= (double)n;
}

/* ---- windows of one class, gathered --------------------------------------------- */

int nde_gather(nde_set *s, const nd_dataset *ds, const nd_dataset *real, int cls,
               const int *chmap)
{
    int C = (int)real->n_channels, L = (int)real->L;
    size_t WL = (size_t)C * L, DWL = (size_t)ds->n_channels * ds->L;
    int map[ND_MAX_CLASSES];
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        map[k] = -1;
        for (uint32_t r = 0; r < real->n_classes; r++)
            if (!strcmp(ds->class_names[k], real->class_names[r])) map[k] = (int)r;
    }
    s->n = 0;
    s->x = malloc((ds->n_windows + 1) * WL * sizeof(float));
    s->y = malloc((ds->n_windows + 1) * sizeof(int));
    if (!s->x || !s->y) return -ENOMEM;
    for (uint64_t w = 0; w < ds->n_windows; w++) {
        int r = map[ds->labels[w]];
        if (r < 0 || (cls >= 0 && r != cls)) continue;
        float *x = s->x + s->n * WL;
        if (!chmap) memcpy(x, ds->values + w * DWL, WL * sizeof(float));
        else
            for (int c = 0; c < C; c++)
                if (chmap[c] < 0) memset(x + (size_t)c * L, 0, L * sizeof(float));
                else
                    memcpy(x + (size_t)c * L, ds->values + w * DWL + (size_t)chmap[c] * L,
                           L * sizeof(float));
        s->y[s->n++] = r;
    }
    return 0;
}

void nde_set_free(nde_set *s)
{
    free(s->x);
    free(s->y);
    s->x = NULL;
    s->y = NULL;
}

int nde_view(nde_set *out, const nde_set *in, int C, int L, const int *chs, int nch)
{
    out->n = in->n;
    out->x = malloc((in->n * nch + 1) * (size_t)L * sizeof(float));
    out->y = malloc((in->n + 1) * sizeof(int));
    if (!out->x || !out->y) return -ENOMEM;
    for (size_t w = 0; w < in->n; w++) {
        for (int c = 0; c < nch; c++)
            memcpy(out->x + (w * nch + c) * L, in->x + (w * C + chs[c]) * L, L * sizeof(float));
        out->y[w] = in->y[w];
    }
    return 0;
}

/* ---- the three distances ---------------------------------------------------------- */

typedef struct dist {
    double marg, acf, vol; /* means over channels */
} dist;

size_t nde_bin_values(double *v, const nde_set *s, int C, int L, int c)
{
    size_t n = 0;
    for (size_t w = 0; w < s->n; w++)
        for (int i = 0; i < L; i++) v[n++] = log1p(fmax(0, s->x[(w * C + c) * L + i]));
    return n;
}

void nde_volumes(double *v, const nde_set *s, int C, int L, int c)
{
    for (size_t w = 0; w < s->n; w++) {
        double t = 0;
        for (int i = 0; i < L; i++) t += fmax(0, s->x[(w * C + c) * L + i]);
        v[w] = log1p(t);
    }
}

int nde_acf_lags(int L) { return L / 4 < 1 ? 1 : L / 4; }

static dist distances(const nde_set *a, const nde_set *b, int C, int L)
{
    dist d = {0, 0, 0};
    int K = nde_acf_lags(L);
    double *va = malloc((a->n * L + 1) * sizeof(double)),
           *vb = malloc((b->n * L + 1) * sizeof(double));
    double acfa[1024], acfb[1024];
    ND_ASSERT(va && vb && K <= 1024);
    for (int c = 0; c < C; c++) {
        size_t n = nde_bin_values(va, a, C, L, c), m = nde_bin_values(vb, b, C, L, c);
        d.marg += nd_w1(va, n, vb, m) / C;
        nd_mean_acf(acfa, a->x, a->n, C, L, c, K);
        nd_mean_acf(acfb, b->x, b->n, C, L, c, K);
        double s = 0.0;
        for (int k = 0; k < K; k++) s += fabs(acfa[k] - acfb[k]);
        d.acf += s / K / C;
        nde_volumes(va, a, C, L, c);
        nde_volumes(vb, b, C, L, c);
        d.vol += nd_w1(va, a->n, vb, b->n) / C;
    }
    free(va);
    free(vb);
    return d;
}

int nde_naive_set(nde_set *s, const nde_set *train, size_t n, int C, int L, nd_rng *r)
{
    size_t WL = (size_t)C * L;
    s->n = train->n ? n : 0;
    s->x = malloc((n + 1) * WL * sizeof(float));
    s->y = malloc((n + 1) * sizeof(int));
    if (!s->x || !s->y) return -ENOMEM;
    for (size_t w = 0; w < s->n; w++) {
        for (size_t j = 0; j < WL; j++)
            s->x[w * WL + j] = train->x[nd_rng_below(r, (uint32_t)train->n) * WL + j];
        s->y[w] = train->y[0];
    }
    return 0;
}

/* ---- classical classifiers on features ------------------------------------------- */

/* Per channel, on log1p values: mean, std, min, max, quartiles (3), zero share, mean
 * |step|, autocorrelation at lags 1, 2, 4, 8, log1p of the total bytes, and the mean of
 * each quarter of the window (4). */
void nde_features(double *f, const float *x, int C, int L)
{
    double y[4096];
    for (int c = 0; c < C; c++, f += NDE_NF_PER_CH) {
        const float *s = x + (size_t)c * L;
        double m = 0, v = 0, mn = INFINITY, mx = -INFINITY, z = 0, st = 0, tot = 0;
        for (int i = 0; i < L; i++) {
            y[i] = log1p(fmax(0, s[i]));
            m += y[i];
            z += s[i] <= 0;
            tot += fmax(0, s[i]);
            mn = fmin(mn, y[i]);
            mx = fmax(mx, y[i]);
            if (i) st += fabs(y[i] - y[i - 1]);
        }
        m /= L;
        for (int i = 0; i < L; i++) v += (y[i] - m) * (y[i] - m);
        double q[4096];
        memcpy(q, y, L * sizeof(double));
        qsort(q, L, sizeof(double), nde_cmp_double);
        f[0] = m;
        f[1] = sqrt(v / L);
        f[2] = mn;
        f[3] = mx;
        f[4] = q[L / 4];
        f[5] = q[L / 2];
        f[6] = q[3 * L / 4];
        f[7] = z / L;
        f[8] = L > 1 ? st / (L - 1) : 0;
        static const int lags[4] = {1, 2, 4, 8};
        for (int k = 0; k < 4; k++) {
            double a = 0;
            for (int i = 0; i + lags[k] < L; i++) a += (y[i] - m) * (y[i + lags[k]] - m);
            f[9 + k] = v > 1e-12 ? a / v : 0;
        }
        f[13] = log1p(tot);
        for (int qd = 0; qd < 4; qd++) {
            double a = 0;
            int lo = qd * L / 4, hi = (qd + 1) * L / 4;
            for (int i = lo; i < hi; i++) a += y[i];
            f[14 + qd] = hi > lo ? a / (hi - lo) : 0;
        }
    }
}

int nde_feats_of(nde_feats *F, const nde_set *s, int C, int L)
{
    F->n = s->n;
    F->nf = C * NDE_NF_PER_CH;
    F->f = malloc((s->n + 1) * F->nf * sizeof(double));
    F->y = s->y;
    if (!F->f) return -ENOMEM;
    for (size_t w = 0; w < s->n; w++)
        nde_features(F->f + w * F->nf, s->x + w * (size_t)C * L, C, L);
    return 0;
}

/* Softmax regression on standardised features (means and deviations of the training
 * set), L2 1e-3, 400 full-batch gradient steps with Adam (lr 0.05). Returns accuracy on
 * test. */
double nde_logreg_accuracy(const nde_feats *tr, const nde_feats *te, int K)
{
    int nf = tr->nf, D = nf + 1;
    double *mu = calloc(nf, sizeof *mu), *sd = calloc(nf, sizeof *sd);
    double *W = calloc((size_t)K * D, sizeof *W), *G = calloc((size_t)K * D, sizeof *G);
    double *m1 = calloc((size_t)K * D, sizeof *m1), *m2 = calloc((size_t)K * D, sizeof *m2);
    double *p = calloc(K, sizeof *p), *xs = calloc(D, sizeof *xs);
    ND_ASSERT(mu && sd && W && G && m1 && m2 && p && xs);
    for (size_t i = 0; i < tr->n; i++)
        for (int j = 0; j < nf; j++) mu[j] += tr->f[i * nf + j] / tr->n;
    for (size_t i = 0; i < tr->n; i++)
        for (int j = 0; j < nf; j++) sd[j] += pow(tr->f[i * nf + j] - mu[j], 2) / tr->n;
    for (int j = 0; j < nf; j++) sd[j] = sqrt(sd[j]) + 1e-9;
    for (int it = 1; it <= 400; it++) {
        memset(G, 0, (size_t)K * D * sizeof *G);
        for (size_t i = 0; i < tr->n; i++) {
            for (int j = 0; j < nf; j++) xs[j] = (tr->f[i * nf + j] - mu[j]) / sd[j];
            xs[nf] = 1;
            double mx = -INFINITY, z = 0;
            for (int k = 0; k < K; k++) {
                double a = 0;
                for (int j = 0; j < D; j++) a += W[k * D + j] * xs[j];
                p[k] = a;
                mx = fmax(mx, a);
            }
            for (int k = 0; k < K; k++) z += p[k] = exp(p[k] - mx);
            for (int k = 0; k < K; k++) {
                double g = (p[k] / z - (k == tr->y[i])) / tr->n;
                for (int j = 0; j < D; j++) G[k * D + j] += g * xs[j];
            }
        }
        for (int q = 0; q < K * D; q++) {
            double g = G[q] + 1e-3 * W[q];
            m1[q] = 0.9 * m1[q] + 0.1 * g;
            m2[q] = 0.999 * m2[q] + 0.001 * g * g;
            W[q] -= 0.05 * (m1[q] / (1 - pow(0.9, it))) /
                    (sqrt(m2[q] / (1 - pow(0.999, it))) + 1e-8);
        }
    }
    size_t ok = 0;
    for (size_t i = 0; i < te->n; i++) {
        for (int j = 0; j < nf; j++) xs[j] = (te->f[i * nf + j] - mu[j]) / sd[j];
        xs[nf] = 1;
        int best = 0;
        double bv = -INFINITY;
        for (int k = 0; k < K; k++) {
            double a = 0;
            for (int j = 0; j < D; j++) a += W[k * D + j] * xs[j];
            if (a > bv) bv = a, best = k;
        }
        ok += best == te->y[i];
    }
    free(mu), free(sd), free(W), free(G), free(m1), free(m2), free(p), free(xs);
    return te->n ? (double)ok / te->n : NAN;
}

/* 5 nearest neighbours (standardised features, Euclidean), majority vote (ties: the
 * nearest's class). */
double nde_knn_accuracy(const nde_feats *tr, const nde_feats *te, int K)
{
    int nf = tr->nf;
    double *mu = calloc(nf, sizeof *mu), *sd = calloc(nf, sizeof *sd);
    ND_ASSERT(mu && sd);
    for (size_t i = 0; i < tr->n; i++)
        for (int j = 0; j < nf; j++) mu[j] += tr->f[i * nf + j] / tr->n;
    for (size_t i = 0; i < tr->n; i++)
        for (int j = 0; j < nf; j++) sd[j] += pow(tr->f[i * nf + j] - mu[j], 2) / tr->n;
    for (int j = 0; j < nf; j++) sd[j] = sqrt(sd[j]) + 1e-9;
    size_t ok = 0;
    for (size_t i = 0; i < te->n; i++) {
        double bd[5] = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
        int bl[5] = {0};
        for (size_t t = 0; t < tr->n; t++) {
            double d = 0;
            for (int j = 0; j < nf; j++)
                d += pow((te->f[i * nf + j] - tr->f[t * nf + j]) / sd[j], 2);
            for (int s = 0; s < 5; s++)
                if (d < bd[s]) {
                    for (int u = 4; u > s; u--) bd[u] = bd[u - 1], bl[u] = bl[u - 1];
                    bd[s] = d;
                    bl[s] = tr->y[t];
                    break;
                }
        }
        int votes[ND_MAX_CLASSES] = {0}, best = bl[0];
        size_t kk = tr->n < 5 ? tr->n : 5;
        for (size_t s = 0; s < kk; s++) votes[bl[s]]++;
        for (int k = 0; k < K; k++)
            if (votes[k] > votes[best]) best = k;
        ok += best == te->y[i];
    }
    free(mu), free(sd);
    return te->n ? (double)ok / te->n : NAN;
}

/* ---- CNN on GASF images ------------------------------------------------------------ */

/* conv3×3/s2 C→16, GN+SiLU, conv3×3/s2 16→32, GN+SiLU, conv3×3/s2 32→32, GN+SiLU,
 * global mean, linear 32→K; softmax cross-entropy, AdamW lr 2e-3, batch 32, steps
 * from options. Images: log-scaled GASF (one scale per channel from the training set).
 * Returns accuracy on test. */
typedef struct cnn {
    int C, L, K, B;
    size_t np;
    float *p, *g;
    float *w1, *b1, *g1, *be1, *w2, *b2, *g2, *be2, *w3, *b3, *g3, *be3, *wl, *bl;
    float *dw1, *db1, *dg1, *dbe1, *dw2, *db2, *dg2, *dbe2, *dw3, *db3, *dg3, *dbe3, *dwl, *dbl;
} cnn;

static void cnn_point(cnn *n, float *base, int grads)
{
    int C = n->C, K = n->K;
    float *q = base;
#define TAKE(field, count)                                                                     \
    do {                                                                                       \
        if (grads) n->d##field = q;                                                            \
        else n->field = q;                                                                     \
        q += (count);                                                                          \
    } while (0)
    TAKE(w1, 16 * C * 9);
    TAKE(b1, 16);
    TAKE(g1, 16);
    TAKE(be1, 16);
    TAKE(w2, 32 * 16 * 9);
    TAKE(b2, 32);
    TAKE(g2, 32);
    TAKE(be2, 32);
    TAKE(w3, 32 * 32 * 9);
    TAKE(b3, 32);
    TAKE(g3, 32);
    TAKE(be3, 32);
    TAKE(wl, K * 32);
    TAKE(bl, K);
#undef TAKE
    n->np = (size_t)(q - base);
}

typedef struct cnn_act {
    float *a1, *h1, *m1, *r1, *a2, *h2, *m2, *r2, *a3, *h3, *m3, *r3, *pool, *logit;
    float *d1, *d2, *d3, *dp, *dl;
} cnn_act;

static void cnn_forward(cnn *n, nd_ctx *ctx, cnn_act *a, const float *x, int B)
{
    int C = n->C, L = n->L, L1 = (L - 1) / 2 + 1, L2 = (L1 - 1) / 2 + 1, L3 = (L2 - 1) / 2 + 1;
    nd_conv2d_forward(ctx, a->a1, x, n->w1, n->b1, B, C, L, L, 16, 3, 2);
    nd_groupnorm_forward(ctx, a->h1, a->m1, a->r1, a->a1, n->g1, n->be1, B, 16, L1 * L1, 4, 1);
    nd_conv2d_forward(ctx, a->a2, a->h1, n->w2, n->b2, B, 16, L1, L1, 32, 3, 2);
    nd_groupnorm_forward(ctx, a->h2, a->m2, a->r2, a->a2, n->g2, n->be2, B, 32, L2 * L2, 8, 1);
    nd_conv2d_forward(ctx, a->a3, a->h2, n->w3, n->b3, B, 32, L2, L2, 32, 3, 2);
    nd_groupnorm_forward(ctx, a->h3, a->m3, a->r3, a->a3, n->g3, n->be3, B, 32, L3 * L3, 8, 1);
    int P = L3 * L3;
    for (int i = 0; i < B * 32; i++) {
        double s = 0;
        for (int j = 0; j < P; j++) s += a->h3[(size_t)i * P + j];
        a->pool[i] = (float)(s / P);
    }
    nd_linear_forward(ctx, a->logit, a->pool, n->wl, n->bl, B, 32, n->K);
}

static void cnn_backward(cnn *n, nd_ctx *ctx, cnn_act *a, const float *x, const float *dlogit,
                         int B)
{
    int C = n->C, L = n->L, L1 = (L - 1) / 2 + 1, L2 = (L1 - 1) / 2 + 1, L3 = (L2 - 1) / 2 + 1;
    int P = L3 * L3;
    memset(a->dp, 0, (size_t)B * 32 * sizeof(float));
    nd_linear_backward(ctx, a->dp, n->dwl, n->dbl, dlogit, a->pool, n->wl, B, 32, n->K);
    for (int i = 0; i < B * 32; i++)
        for (int j = 0; j < P; j++) a->dl[(size_t)i * P + j] = a->dp[i] / P;
    memset(a->d3, 0, (size_t)B * 32 * P * sizeof(float));
    nd_groupnorm_backward(ctx, a->d3, n->dg3, n->dbe3, a->dl, a->a3, a->m3, a->r3, n->g3,
                          n->be3, B, 32, P, 8, 1);
    memset(a->d2, 0, (size_t)B * 32 * L2 * L2 * sizeof(float));
    nd_conv2d_backward(ctx, a->d2, n->dw3, n->db3, a->d3, a->h2, n->w3, B, 32, L2, L2, 32, 3,
                       2);
    memset(a->dl, 0, (size_t)B * 32 * L2 * L2 * sizeof(float));
    nd_groupnorm_backward(ctx, a->dl, n->dg2, n->dbe2, a->d2, a->a2, a->m2, a->r2, n->g2,
                          n->be2, B, 32, L2 * L2, 8, 1);
    memset(a->d1, 0, (size_t)B * 16 * L1 * L1 * sizeof(float));
    nd_conv2d_backward(ctx, a->d1, n->dw2, n->db2, a->dl, a->h1, n->w2, B, 16, L1, L1, 32, 3,
                       2);
    memset(a->d2, 0, (size_t)B * 16 * L1 * L1 * sizeof(float));
    nd_groupnorm_backward(ctx, a->d2, n->dg1, n->dbe1, a->d1, a->a1, a->m1, a->r1, n->g1,
                          n->be1, B, 16, L1 * L1, 4, 1);
    nd_conv2d_backward(ctx, NULL, n->dw1, n->db1, a->d2, x, n->w1, B, C, L, L, 16, 3, 2);
}

static double cnn_accuracy(const nde_set *tr, const nde_set *te, int C, int L, int K, int steps,
                           uint64_t seed, nd_ctx *ctx)
{
    if (!tr->n || !te->n) return NAN;
    int B = 32, L1 = (L - 1) / 2 + 1;
    cnn n = {.C = C, .L = L, .K = K, .B = B};
    cnn_point(&n, NULL, 0);
    size_t np = n.np;
    float *pg = calloc(2 * np + 2, sizeof(float));
    size_t img = (size_t)C * L * L, big = (size_t)B * 32 * L1 * L1 + (size_t)B * 16 * L1 * L1;
    float *mem = calloc(12 * big + (size_t)B * (img + 128), sizeof(float));
    ND_ASSERT(pg && mem);
    n.p = pg;
    n.g = pg + np;
    cnn_point(&n, n.p, 0);
    cnn_point(&n, n.g, 1);
    nd_rng r;
    nd_rng_seed(&r, seed);
    /* PyTorch-like init: U(±1/√fan_in); GroupNorm 1, 0 */
    nde_init init[] = {{n.w1, 16 * (size_t)C * 9, C * 9}, {n.b1, 16, C * 9},
                       {n.w2, 32 * 16 * 9, 144},          {n.b2, 32, 144},
                       {n.w3, 32 * 32 * 9, 288},          {n.b3, 32, 288},
                       {n.wl, (size_t)K * 32, 32},        {n.bl, (size_t)K, 32}};
    nde_init_uniform(init, sizeof init / sizeof init[0], &r);
    for (int i = 0; i < 16; i++) n.g1[i] = 1;
    for (int i = 0; i < 32; i++) n.g2[i] = n.g3[i] = 1;
    float *q = mem;
    cnn_act a;
    float **fields[] = {&a.a1, &a.h1, &a.a2, &a.h2, &a.a3, &a.h3, &a.d1, &a.d2, &a.d3, &a.dl};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) *fields[k] = q, q += big;
    a.m1 = q, q += B * 64;
    a.r1 = q, q += B * 64;
    a.m2 = q, q += B * 64;
    a.r2 = q, q += B * 64;
    a.m3 = q, q += B * 64;
    a.r3 = q, q += B * 64;
    float *x = q;
    q += (size_t)B * img;
    a.pool = q, q += B * 32;
    a.dp = q, q += B * 32;
    a.logit = malloc((size_t)B * K * sizeof(float));
    float *dlogit = malloc((size_t)B * K * sizeof(float));
    ND_ASSERT(a.logit && dlogit);
    /* one log scale per channel, from the training windows; diagonal GASF */
    nd_gaf_scale sc;
    nd_gaf_fit_scale(&sc, tr->x, tr->n, C, L);
    nd_gaf_spec g = {.C = C, .L = L, .scaling = ND_GAF_LOG};
    nd_adamw_config oc = {.lr = 2e-3f,
                          .beta1 = 0.9f,
                          .beta2 = 0.999f,
                          .eps = 1e-8f,
                          .weight_decay = 1e-4f,
                          .grad_clip = 5.0f};
    nd_adamw *opt = nd_adamw_new(&oc, np, n.p);
    ND_ASSERT(opt);
    size_t WL = (size_t)C * L;
    for (int s = 0; s < steps; s++) {
        int y[32];
        for (int b = 0; b < B; b++) {
            size_t w = nd_rng_below(&r, (uint32_t)tr->n);
            y[b] = tr->y[w];
            nd_gaf_window_to_image(x + b * img, tr->x + w * WL, &g, &sc);
        }
        cnn_forward(&n, ctx, &a, x, B);
        for (int b = 0; b < B; b++) {
            float mx = -INFINITY, z = 0;
            for (int k = 0; k < K; k++) mx = fmaxf(mx, a.logit[b * K + k]);
            for (int k = 0; k < K; k++) z += dlogit[b * K + k] = expf(a.logit[b * K + k] - mx);
            for (int k = 0; k < K; k++)
                dlogit[b * K + k] = (dlogit[b * K + k] / z - (k == y[b])) / B;
        }
        memset(n.g, 0, np * sizeof(float));
        cnn_backward(&n, ctx, &a, x, dlogit, B);
        nd_adamw_step(opt, ctx, n.p, n.g);
    }
    size_t ok = 0;
    for (size_t i = 0; i < te->n; i += (size_t)B) {
        int nb = (int)(te->n - i < (size_t)B ? te->n - i : (size_t)B);
        for (int b = 0; b < nb; b++)
            nd_gaf_window_to_image(x + b * img, te->x + (i + b) * WL, &g, &sc);
        cnn_forward(&n, ctx, &a, x, nb);
        for (int b = 0; b < nb; b++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (a.logit[b * K + k] > a.logit[b * K + best]) best = k;
            ok += best == te->y[i + b];
        }
    }
    nd_adamw_free(opt);
    free(a.logit);
    free(dlogit);
    free(pg);
    free(mem);
    return (double)ok / te->n;
}

/* ---- memorisation ------------------------------------------------------------------ */

void nde_nn_dist(double *d, const nde_set *s, const nde_set *train, size_t WL)
{
    /* log1p once per value, not once per pair of windows: the same numbers, faster */
    double *lt = malloc((train->n * WL + 1) * sizeof *lt), *ls = malloc((WL + 1) * sizeof *ls);
    ND_ASSERT(lt && ls);
    for (size_t j = 0; j < train->n * WL; j++) lt[j] = log1p(fmax(0, train->x[j]));
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < WL; j++) ls[j] = log1p(fmax(0, s->x[i * WL + j]));
        double best = INFINITY;
        for (size_t t = 0; t < train->n; t++) {
            double a = 0;
            const double *q = lt + t * WL;
            for (size_t j = 0; j < WL && a < best; j++) {
                double u = ls[j] - q[j];
                a += u * u;
            }
            if (a < best) best = a;
        }
        d[i] = sqrt(best);
    }
    free(lt), free(ls);
}

/* ---- the report -------------------------------------------------------------------- */

static void concat(nde_set *out, const nde_set *a, const nde_set *b, size_t WL)
{
    out->n = a->n + b->n;
    out->x = malloc((out->n + 1) * WL * sizeof(float));
    out->y = malloc((out->n + 1) * sizeof(int));
    ND_ASSERT(out->x && out->y);
    memcpy(out->x, a->x, a->n * WL * sizeof(float));
    memcpy(out->x + a->n * WL, b->x, b->n * WL * sizeof(float));
    memcpy(out->y, a->y, a->n * sizeof(int));
    memcpy(out->y + a->n, b->y, b->n * sizeof(int));
}

static void print_ratio(FILE *out, double v, double floor)
{
    if (floor > 0 && isfinite(v)) fprintf(out, " %7.2fx", v / floor);
    else fprintf(out, " %8s", "-");
}

/* The sources of a report, in row order: the decoded synthetic windows, the raw model's
 * (decoder off) when given, the naive baseline and the real training windows (the floor)
 * when training windows are given. */
enum { SRC_SYNTH, SRC_RAW, SRC_NAIVE, SRC_REAL, NSRC };
static const char *const src_name[NSRC] = {"synth", "raw", "naive", "real"};

typedef struct report {
    FILE *out;
    nd_json *js;                       /* the same report as JSON (NULL: none) */
    nd_json *dist_classes;             /* js's distances per class */
    nd_json *mem;                      /* js's memorisation checks */
    const nd_dataset *real, *ds[NSRC]; /* ds[SRC_NAIVE] is drawn per class, never given */
    const nd_eval_opts *o;
    int C, L, K, nw; /* nw: width of the class column */
    nd_rng rng;
} report;

/* v / floor, NaN without a floor. */
static double ratio(double v, double floor)
{
    return floor > 0 && isfinite(v) ? v / floor : NAN;
}

/* One row of the distance table, to out and as object src_name[src] of parent (n 0: the
 * mean row). */
static void print_dist_row(const report *p, nd_json *parent, const char *cls, int src, size_t n,
                           const dist *d, const dist *floor)
{
    nd_json *r = nd_json_obj(parent, src_name[src]);
    if (n) nd_json_u64(r, "n", n);
    nd_json_num(r, "marginal", d->marg);
    nd_json_num(r, "marginal_x_floor", ratio(d->marg, floor->marg));
    nd_json_num(r, "autocorr", d->acf);
    nd_json_num(r, "autocorr_x_floor", ratio(d->acf, floor->acf));
    nd_json_num(r, "volume", d->vol);
    nd_json_num(r, "volume_x_floor", ratio(d->vol, floor->vol));
    char nb[24] = "";
    if (n) snprintf(nb, sizeof nb, "%zu", n);
    fprintf(p->out, "%-*s %-8s %6s %9.4f", p->nw, cls, src_name[src], nb, d->marg);
    print_ratio(p->out, d->marg, floor->marg);
    fprintf(p->out, " %9.4f", d->acf);
    print_ratio(p->out, d->acf, floor->acf);
    fprintf(p->out, " %9.4f", d->vol);
    print_ratio(p->out, d->vol, floor->vol);
    fputc('\n', p->out);
}

/* The distances of every source to the real windows of one class (adds them to sum);
 * returns 0 when the class has no real or no synthetic window, 1 when it was reported,
 * -ENOMEM. */
static int report_class(report *p, int k, dist *sum)
{
    nde_set s[NSRC] = {{0}}, r = {0};
    int rc = nde_gather(&r, p->real, p->real, k, NULL);
    for (int i = 0; i < NSRC && !rc; i++)
        if (p->ds[i]) rc = nde_gather(&s[i], p->ds[i], p->real, k, NULL);
    if (!rc && r.n && s[SRC_SYNTH].n && s[SRC_REAL].n)
        rc = nde_naive_set(&s[SRC_NAIVE], &s[SRC_REAL], s[SRC_SYNTH].n, p->C, p->L, &p->rng);
    if (!rc && r.n && s[SRC_SYNTH].n) {
        dist d[NSRC], none = {NAN, NAN, NAN};
        for (int i = 0; i < NSRC; i++) d[i] = s[i].n ? distances(&s[i], &r, p->C, p->L) : none;
        nd_json *cj = nd_json_obj(p->dist_classes, p->real->class_names[k]);
        for (int i = 0; i < NSRC; i++) {
            if (!s[i].n) continue;
            print_dist_row(p, cj, p->real->class_names[k], i, s[i].n, &d[i], &d[SRC_REAL]);
            sum[i].marg += d[i].marg, sum[i].acf += d[i].acf, sum[i].vol += d[i].vol;
        }
        rc = 1;
    }
    for (int i = 0; i < NSRC; i++) nde_set_free(&s[i]);
    nde_set_free(&r);
    return rc;
}

static int report_distances(report *p, nd_error *e)
{
    fprintf(p->out, "fidelity (lower is better; xF = times the real-vs-real floor)\n");
    fprintf(p->out, "%-*s %-8s %6s %9s %8s %9s %8s %9s %8s\n", p->nw, "class", "source", "n",
            "marginal", "", "autocorr", "", "volume", "");
    nd_json *dj = nd_json_obj(p->js, "distances");
    p->dist_classes = nd_json_obj(dj, "classes");
    dist sum[NSRC] = {{0}};
    int ncls = 0;
    for (int k = 0; k < p->K; k++) {
        int rc = report_class(p, k, sum);
        if (rc < 0) return nd_error_set(e, rc, "eval: out of memory");
        ncls += rc;
    }
    if (!ncls)
        return nd_error_set(e, ND_EUSAGE,
                            "eval: no class has both real and synthetic "
                            "windows (classes are matched by name)");
    dist mean[NSRC], none = {0, 0, 0};
    for (int i = 0; i < NSRC; i++)
        mean[i] = (dist){sum[i].marg / ncls, sum[i].acf / ncls, sum[i].vol / ncls};
    nd_json *mj = nd_json_obj(dj, "mean");
    for (int i = 0; i < NSRC; i++)
        if (i == SRC_SYNTH || p->ds[i == SRC_NAIVE ? SRC_REAL : i])
            print_dist_row(p, mj, "MEAN", i, 0, &mean[i],
                           p->ds[SRC_REAL] ? &mean[SRC_REAL] : &none);
    return 0;
}

/* Accuracy on the real windows R of classifiers trained on T (TRTR), on each synthetic
 * source (TSTR) and on T + S (TRSTR); NaN where the training set is absent. */
typedef struct accuracy {
    double trtr, tstr[2], trstr;
} accuracy;

enum { CLF_LOGREG, CLF_KNN, CLF_RF, CLF_CNN, NCLF };

static double classical(int c, const nde_feats *tr, const nde_feats *te, int K, uint64_t seed,
                        int threads)
{
    return c == CLF_LOGREG ? nde_logreg_accuracy(tr, te, K)
           : c == CLF_KNN  ? nde_knn_accuracy(tr, te, K)
                           : nde_forest_accuracy(tr, te, K, seed, threads);
}

static void report_classifiers(const report *p, const nde_set *R, const nde_set *T,
                               const nde_set *S, const nde_set *TS, const nde_feats *FR,
                               const nde_feats *FT, const nde_feats *FS, const nde_feats *FTS)
{
    int K = p->K, raw = S[1].n > 0, with_cnn = p->o->cnn_steps > 0;
    uint64_t fseed = p->o->seed + 99; /* the forest's: the same as in the per-source table */
    accuracy acc[NCLF];
    for (int c = 0; c < NCLF; c++) acc[c] = (accuracy){NAN, {NAN, NAN}, NAN};
    for (int c = 0; c < CLF_CNN; c++) {
        for (int j = 0; j < 1 + raw; j++)
            acc[c].tstr[j] = classical(c, &FS[j], FR, K, fseed, p->o->threads);
        if (T->n) {
            acc[c].trtr = classical(c, FT, FR, K, fseed, p->o->threads);
            acc[c].trstr = classical(c, FTS, FR, K, fseed, p->o->threads);
        }
    }
    nd_ctx *ctx = with_cnn ? nd_ctx_new(p->o->threads) : NULL;
    if (ctx) {
        int st = p->o->cnn_steps;
        uint64_t seed = p->o->seed;
        for (int j = 0; j < 1 + raw; j++)
            acc[CLF_CNN].tstr[j] = cnn_accuracy(&S[j], R, p->C, p->L, K, st, seed, ctx);
        if (T->n) {
            acc[CLF_CNN].trtr = cnn_accuracy(T, R, p->C, p->L, K, st, seed, ctx);
            acc[CLF_CNN].trstr = cnn_accuracy(TS, R, p->C, p->L, K, st, seed, ctx);
        }
        nd_ctx_free(ctx);
    }
    fprintf(p->out, "\ndownstream accuracy on the %zu real windows (chance %.2f)\n", R->n,
            1.0 / K);
    fprintf(p->out, "%-24s %8s %8s %8s %12s", "classifier", "TRTR", "TSTR", "TRSTR",
            "TSTR/TRTR");
    if (raw) fprintf(p->out, " %8s %11s", "TSTR raw", "raw/TRTR");
    fputc('\n', p->out);
    const char *name[NCLF] = {"logistic regression", "5-NN (features)",
                              "random forest (features)", "CNN (GASF images)"};
    /* after the classifiers on features, the mean of their ratios */
    accuracy mean = {NAN, {0, 0}, NAN};
    for (int c = 0; c < CLF_CNN; c++)
        for (int j = 0; j < 2; j++) mean.tstr[j] += acc[c].tstr[j] / acc[c].trtr / CLF_CNN;
    nd_json *dj = nd_json_obj(p->js, "downstream");
    nd_json_u64(dj, "real_windows", R->n);
    nd_json_num(dj, "chance", 1.0 / K);
    nd_json *cj = nd_json_obj(dj, "classifiers");
    static const char *const key[NCLF + 1] = {"logistic", "knn5", "random_forest", "cnn",
                                              "mean_of_features"};
    int rows[NCLF + 1] = {CLF_LOGREG, CLF_KNN, CLF_RF, NCLF, CLF_CNN};
    for (int r = 0; r < NCLF + 1; r++) {
        int c = rows[r];
        if (c == CLF_CNN && !with_cnn) continue;
        const accuracy *a = c < NCLF ? &acc[c] : &mean;
        double v[6] = {a->trtr,    a->tstr[0],          a->trstr, a->tstr[0] / a->trtr,
                       a->tstr[1], a->tstr[1] / a->trtr};
        if (c == NCLF) v[3] = a->tstr[0], v[5] = a->tstr[1], v[1] = v[4] = NAN;
        static const char *const vkey[6] = {"trtr",      "tstr",     "trstr",
                                            "tstr_trtr", "tstr_raw", "raw_trtr"};
        nd_json *rj = nd_json_obj(cj, key[c]);
        for (int i = 0; i < (raw ? 6 : 4); i++)
            if (c != NCLF || i == 3 || i == 5) nd_json_num(rj, vkey[i], v[i]);
        fprintf(p->out, "%-24s", c < NCLF ? name[c] : "mean of the three above");
        for (int i = 0; i < (raw ? 6 : 4); i++) {
            int w = i == 3 ? 12 : i == 5 ? 11 : 8;
            if (isnan(v[i])) fprintf(p->out, " %*s", w, "-");
            else fprintf(p->out, i == 3 || i == 5 ? " %*.2f" : " %*.3f", w, v[i]);
        }
        fputc('\n', p->out);
    }
}

/* Memorisation of one source S against the training windows T (windows of WL values). */
/* ... and returns its object in p->js's memorisation checks (NULL without js). */
static nd_json *report_memorisation(const report *p, const char *what, const char *key,
                                    const nde_set *S, const nde_set *T, const nde_set *R,
                                    size_t WL)
{
    double *ds = malloc((S->n + 1) * sizeof(double)), *dr = malloc((R->n + 1) * sizeof(double));
    ND_ASSERT(ds && dr);
    nde_nn_dist(ds, S, T, WL);
    nde_nn_dist(dr, R, T, WL);
    qsort(ds, S->n, sizeof(double), nde_cmp_double);
    qsort(dr, R->n, sizeof(double), nde_cmp_double);
    double p5 = dr[R->n / 20], meds = ds[S->n / 2], medr = dr[R->n / 2];
    /* A near-copy is a window at a negligible distance from a training window: relative
     * to the real median, but never 0, because where short flows repeat exactly (setup
     * captures) the real median itself is 0. Real held-out windows are copies that often
     * too, so synthetic copies count against memorisation only beyond the real share. */
    double tiny = 1e-3 * fmax(medr, 1);
    size_t closer = 0, copies = 0, copies_r = 0;
    for (size_t i = 0; i < S->n; i++) {
        closer += ds[i] < p5;
        copies += ds[i] < tiny;
    }
    for (size_t i = 0; i < R->n; i++) copies_r += dr[i] < tiny;
    double share = (double)closer / S->n, copy_share = (double)copies / S->n,
           copy_share_r = (double)copies_r / R->n;
    int flag = share > 0.2 || meds < 0.5 * medr || copy_share > copy_share_r;
    nd_json *mj = nd_json_obj(p->mem, key);
    nd_json_num(mj, "synth_median", meds);
    nd_json_num(mj, "real_median", medr);
    nd_json_num(mj, "ratio", meds / medr);
    nd_json_num(mj, "real_p5", p5);
    nd_json_num(mj, "closer_share", share);
    nd_json_u64(mj, "near_copies", copies);
    nd_json_num(mj, "near_copy_share", copy_share);
    nd_json_num(mj, "real_near_copy_share", copy_share_r);
    nd_json_bool(mj, "flag", flag);
    FILE *out = p->out;
    fprintf(out,
            "\nmemorisation%s: distance to the nearest training window (log1p bytes, L2)\n",
            what);
    fprintf(out, "  synthetic median %.3f, real held-out median %.3f (ratio %.2f)\n", meds,
            medr, meds / medr);
    fprintf(out,
            "  synthetic closer than the real 5th percentile (%.3f): %.1f%% (5%% expected)\n"
            "  near-copies of a training window: %zu (%.1f%%; real held-out %.1f%%)\n",
            p5, 100 * share, copies, 100 * copy_share, 100 * copy_share_r);
    fprintf(out, "  %s\n",
            flag ? "FLAG: synthetic windows sit much closer to the training data "
                   "than unseen real windows (memorisation)"
                 : "no memorisation flag");
    free(ds);
    free(dr);
    return mj;
}

/* The peer may have learnt from every real window, the held-out ones too: its distance to
 * the nearest of training + held-out windows, against each held-out window's distance to
 * the nearest other one of them. */
static void report_peer_copies(const report *p, nd_json *pj, const nde_set *S, const nde_set *T,
                               const nde_set *R, size_t WL)
{
    nde_set all = {0};
    concat(&all, T, R, WL);
    double *ds = malloc((S->n + 1) * sizeof(double)), *dr = malloc((R->n + 1) * sizeof(double));
    ND_ASSERT(ds && dr);
    nde_nn_dist(ds, S, &all, WL);
    for (size_t i = 0; i < R->n; i++) {
        /* all without held-out window i: its own copy would be at distance 0 */
        nde_set one = {.n = 1, .x = R->x + i * WL}, rest = all;
        double a = INFINITY, b = INFINITY;
        rest.n = T->n + i;
        if (rest.n) nde_nn_dist(&a, &one, &rest, WL);
        rest.x = all.x + (T->n + i + 1) * WL, rest.n = R->n - i - 1;
        if (rest.n) nde_nn_dist(&b, &one, &rest, WL);
        dr[i] = fmin(a, b);
    }
    qsort(ds, S->n, sizeof(double), nde_cmp_double);
    qsort(dr, R->n, sizeof(double), nde_cmp_double);
    nd_json *cj = nd_json_obj(pj, "with_held_out");
    nd_json_num(cj, "peer_median", ds[S->n / 2]);
    nd_json_num(cj, "held_out_median", dr[R->n / 2]);
    nd_json_num(cj, "ratio", ds[S->n / 2] / dr[R->n / 2]);
    fprintf(p->out,
            "  the peer may have learnt from the held-out windows too: to the nearest of "
            "training +\n  held-out windows median %.3f, held-out windows to the nearest "
            "other one %.3f (ratio %.2f)\n",
            ds[S->n / 2], dr[R->n / 2], ds[S->n / 2] / dr[R->n / 2]);
    free(ds), free(dr);
    nde_set_free(&all);
}

/* Where each of real's channels is in ds (by name), −1 when ds lacks it. Returns how many
 * of ds's channels are real's: all of them, or ds does not fit. */
static int channel_map(int *map, const nd_dataset *ds, const nd_dataset *real)
{
    int found = 0;
    for (uint32_t c = 0; c < real->n_channels; c++) {
        map[c] = -1;
        for (uint32_t d = 0; d < ds->n_channels; d++)
            if (!strcmp(ds->channel_names[d], real->channel_names[c])) map[c] = (int)d, found++;
    }
    return found;
}

int nde_check_shapes(const nd_dataset *real, const nd_dataset *const *sets,
                     const char *const *what, int n, nd_error *e)
{
    for (int i = 0; i < n; i++)
        if (sets[i] && (sets[i]->n_channels != real->n_channels || sets[i]->L != real->L))
            return nd_error_set(e, ND_EUSAGE, "eval: %s windows are %u x %u, real ones %u x %u",
                                what[i], sets[i]->n_channels, sets[i]->L, real->n_channels,
                                real->L);
    return 0;
}

int nd_eval_report(FILE *out, nd_json *js, const nd_dataset *real, const nd_dataset *synth,
                   const nd_dataset *raw, const nd_dataset *train, const nd_dataset *peer,
                   const nd_eval_opts *o, nd_error *e)
{
    report p = {.out = out,
                .js = js,
                .real = real,
                .ds = {synth, raw, NULL, train},
                .o = o,
                .C = (int)real->n_channels,
                .L = (int)real->L,
                .K = (int)real->n_classes};
    const char *what[NSRC] = {"synthetic", "raw synthetic", "", "training"};
    int rc = nde_check_shapes(real, p.ds, what, NSRC, e);
    if (rc) return rc;
    int peer_map[ND_MAX_CHANNELS];
    for (int c = 0; c < ND_MAX_CHANNELS; c++) peer_map[c] = -1;
    if (peer &&
        (channel_map(peer_map, peer, real) != (int)peer->n_channels || (int)peer->L != p.L))
        return nd_error_set(e, ND_EUSAGE,
                            "eval: the peer's windows must have %d bins and channels among "
                            "real's (matched by name)",
                            p.L);
    if (p.L > 4096) return nd_error_set(e, ND_EUSAGE, "eval: windows longer than 4096 bins");
    nd_rng_seed(&p.rng, o->seed);
    p.nw = 16;
    for (int k = 0; k < p.K; k++)
        if ((int)strlen(real->class_names[k]) > p.nw) p.nw = (int)strlen(real->class_names[k]);
    rc = report_distances(&p, e);
    if (rc) return rc;

    /* downstream accuracy and memorisation over all classes */
    size_t WL = (size_t)p.C * p.L;
    nde_set R = {0}, T = {0}, S[2] = {{0}}, TS = {0}, N = {0}, P = {0};
    nde_feats FR = {0}, FT = {0}, FS[2] = {{0}}, FTS = {0};
    rc = nde_gather(&R, real, real, -1, NULL) || nde_gather(&S[0], synth, real, -1, NULL) ||
         (raw && nde_gather(&S[1], raw, real, -1, NULL)) ||
         (train && nde_gather(&T, train, real, -1, NULL)) ||
         (peer && nde_gather(&P, peer, real, -1, peer_map));
    if (!rc) {
        if (train) concat(&TS, &T, &S[0], WL);
        rc = nde_feats_of(&FR, &R, p.C, p.L) || nde_feats_of(&FT, &T, p.C, p.L) ||
             nde_feats_of(&FS[0], &S[0], p.C, p.L) || nde_feats_of(&FS[1], &S[1], p.C, p.L) ||
             nde_feats_of(&FTS, &TS, p.C, p.L);
    }
    if (!rc) {
        report_classifiers(&p, &R, &T, S, &TS, &FR, &FT, FS, &FTS);
        if (T.n) p.mem = nd_json_obj(js, "memorisation");
        for (int j = 0; j < 2 && T.n; j++)
            if (S[j].n)
                report_memorisation(&p, j ? " (raw)" : "", j ? "raw" : "synth", &S[j], &T, &R,
                                    WL);
    }
    /* the peer's memorisation on its channels */
    nde_set PV = {0}, TV = {0}, RV = {0};
    int pch[ND_MAX_CHANNELS], npch = 0;
    for (int c = 0; c < p.C && peer; c++)
        if (peer_map[c] >= 0) pch[npch++] = c;
    if (!rc && P.n && T.n) {
        rc = nde_view(&PV, &P, p.C, p.L, pch, npch) || nde_view(&TV, &T, p.C, p.L, pch, npch) ||
             nde_view(&RV, &R, p.C, p.L, pch, npch);
        char w[ND_NAME_MAX * ND_MAX_CHANNELS + 16] = " (peer, on";
        for (int c = 0; c < npch; c++)
            snprintf(w + strlen(w), sizeof w - strlen(w), " %s", real->channel_names[pch[c]]);
        snprintf(w + strlen(w), sizeof w - strlen(w), ")");
        if (!rc) {
            nd_json *pj = report_memorisation(&p, w, "peer", &PV, &TV, &RV, (size_t)npch * p.L);
            report_peer_copies(&p, pj, &PV, &TV, &RV, (size_t)npch * p.L);
        }
    }
    /* the naive baseline over all classes, as many windows per class as synth has, from
     * a generator of its own (the distance table's draws stay as they were) */
    if (!rc && T.n) {
        nd_rng r;
        nd_rng_seed(&r, o->seed + 55);
        N.x = malloc((S[0].n + 1) * WL * sizeof(float));
        N.y = malloc((S[0].n + 1) * sizeof(int));
        rc = !N.x || !N.y;
        for (int k = 0; k < p.K && !rc; k++) {
            nde_set tk = {0}, nk = {0};
            size_t nsk = 0;
            for (size_t w = 0; w < S[0].n; w++) nsk += S[0].y[w] == k;
            rc = nde_gather(&tk, train, real, k, NULL);
            if (!rc && tk.n && nsk) rc = nde_naive_set(&nk, &tk, nsk, p.C, p.L, &r);
            if (!rc && nk.n) {
                memcpy(N.x + N.n * WL, nk.x, nk.n * WL * sizeof(float));
                for (size_t w = 0; w < nk.n; w++) N.y[N.n++] = k;
            }
            nde_set_free(&tk), nde_set_free(&nk);
        }
    }
    if (!rc) {
        nde_judge j = {.out = out,
                       .js = js,
                       .real = real,
                       .R = &R,
                       .src = {&S[0], &S[1], &N, &T, &P},
                       .C = p.C,
                       .L = p.L,
                       .K = p.K,
                       .seed = o->seed,
                       .threads = o->threads};
        for (int i = 0; i < NDE_NSRC; i++)
            for (int c = 0; c < p.C; c++) j.has[i][c] = i != NDE_PEER || peer_map[c] >= 0;
        rc = nde_judge_report(&j);
    }
    free(FR.f), free(FT.f), free(FS[0].f), free(FS[1].f), free(FTS.f);
    nde_set_free(&R), nde_set_free(&T), nde_set_free(&S[0]), nde_set_free(&S[1]);
    nde_set_free(&TS), nde_set_free(&N), nde_set_free(&P), nde_set_free(&PV);
    nde_set_free(&TV), nde_set_free(&RV);
    return rc ? nd_error_set(e, -ENOMEM, "eval: out of memory") : 0;
}
