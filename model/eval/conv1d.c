/*
 * conv1d.c — a small 1-D convolutional network that tells two sets of windows apart
 * (the classifier two-sample test of judge.c): the series of every channel, standardised
 * per channel with the training windows' mean and deviation, go through two width-5
 * convolutions (16 filters each, zero padding, ReLU), global mean and max pooling per
 * filter, and one linear output (logistic loss). Adam, 30 epochs of mini-batches of 32.
 * It looks at the series the way the summary features do not: local shapes anywhere in
 * the window.
 *
 * Written out here because it is small (nn.h has 3×3 and 1×1 convolutions only). A batch
 * lies in one row per channel, window after window, each with its PAD zeros on both
 * sides: a convolution is then one matrix product over the whole batch (im2col, then
 * nd_sgemm), fast even in a sanitizer build. Outputs at the padding positions straddle
 * two windows and are set to 0 after every layer. The caller keeps OpenBLAS at one
 * thread (nd_ctx) when it trains several networks at once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"
#include "nn.h"

enum { F1 = 16, F2 = 16, KW = 5, PAD = KW / 2, EPOCHS = 30, BATCH = 32 };

typedef struct net {
    int C, L;
    float *w1, *b1, *w2, *b2, *wo, *bo; /* views into one parameter block */
} net;

static size_t net_size(int C)
{
    return (size_t)F1 * C * KW + F1 + F2 * F1 * KW + F2 + 2 * F2 + 1;
}

static void net_point(net *n, float *p)
{
    n->w1 = p, p += (size_t)F1 * n->C * KW;
    n->b1 = p, p += F1;
    n->w2 = p, p += F2 * F1 * KW;
    n->b2 = p, p += F2;
    n->wo = p, p += 2 * F2;
    n->bo = p;
}

/* Activations of a batch of B windows; rows of R = B·(L + 2 PAD) values. */
typedef struct act {
    int B;
    size_t R;
    float *xp;   /* (C, R) input */
    float *h1;   /* (F1, R) before ReLU */
    float *a1;   /* (F1, R) after ReLU */
    float *h2;   /* (F2, R) before ReLU */
    float *pool; /* (B, 2 F2) means, then maxima */
    int *arg;    /* (B, F2) position of each maximum in the row, −1 when all are 0 */
    float *d1, *d2;
    float *col1; /* (C·KW, R) the input, shifted */
    float *col2; /* (F1·KW, R) a1, shifted */
    float *dcol; /* (F1·KW, R) */
} act;

/* col (Ci·KW, R): row c·KW + k holds in (Ci, R) shifted by k − PAD, at every position
 * that has KW neighbours (0 at the others), so that a convolution is one product. */
static void im2col(float *col, const float *in, int Ci, size_t R)
{
    for (int c = 0; c < Ci; c++)
        for (int k = 0; k < KW; k++) {
            float *d = col + ((size_t)c * KW + k) * R;
            const float *x = in + (size_t)c * R;
            for (int j = 0; j < PAD; j++) d[j] = d[R - 1 - j] = 0;
            for (size_t j = PAD; j < R - PAD; j++) d[j] = x[j + k - PAD];
        }
}

/* out (Co, R) = w (Co, Ci·KW) · col + b; the caller zeroes the padding positions. */
static void conv(float *out, const float *col, const float *w, const float *b, int Ci, int Co,
                 size_t R)
{
    for (int o = 0; o < Co; o++)
        for (size_t j = 0; j < R; j++) out[(size_t)o * R + j] = b[o];
    nd_sgemm(0, 0, Co, (int)R, Ci * KW, 1.0f, w, Ci * KW, col, (int)R, 1.0f, out, (int)R);
}

/* Gradients of conv from dy (Co, R), zero at the padding positions: dw, db added to;
 * din (Ci, R) added to when not NULL, through dcol (Ci·KW, R). */
static void conv_back(float *din, float *dcol, float *dw, float *db, const float *dy,
                      const float *col, const float *w, int Ci, int Co, size_t R)
{
    for (int o = 0; o < Co; o++) {
        const float *g = dy + (size_t)o * R;
        double s = 0;
        for (size_t j = 0; j < R; j++) s += g[j];
        db[o] += (float)s;
    }
    nd_sgemm(0, 1, Co, Ci * KW, (int)R, 1.0f, dy, (int)R, col, (int)R, 1.0f, dw, Ci * KW);
    if (!din) return;
    nd_sgemm(1, 0, Ci * KW, (int)R, Co, 1.0f, w, Ci * KW, dy, (int)R, 0.0f, dcol, (int)R);
    for (int c = 0; c < Ci; c++)
        for (int k = 0; k < KW; k++) {
            const float *d = dcol + ((size_t)c * KW + k) * R;
            float *x = din + (size_t)c * R;
            for (size_t j = PAD; j < R - PAD; j++) x[j + k - PAD] += d[j];
        }
}

/* Zeroes the padding positions of rows (n, R). */
static void zero_pads(float *x, int n, int B, int L)
{
    size_t P = (size_t)L + 2 * PAD;
    for (int r = 0; r < n; r++)
        for (int b = 0; b < B; b++) {
            float *row = x + (size_t)r * B * P + (size_t)b * P;
            for (int i = 0; i < PAD; i++) row[i] = row[P - 1 - i] = 0;
        }
}

/* Logits z (B) of the windows x[0..B) (each (C, L)), standardised with mu, sd. */
static void forward(const net *n, act *a, const float *const *x, int B, const float *mu,
                    const float *sd, float *z)
{
    int C = n->C, L = n->L;
    size_t P = (size_t)L + 2 * PAD, R = (size_t)B * P;
    a->B = B, a->R = R;
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++) {
            float *row = a->xp + c * R + b * P;
            for (int i = 0; i < L; i++)
                row[PAD + i] = (x[b][(size_t)c * L + i] - mu[c]) / sd[c];
        }
    zero_pads(a->xp, C, B, L);
    im2col(a->col1, a->xp, C, R);
    conv(a->h1, a->col1, n->w1, n->b1, C, F1, R);
    zero_pads(a->h1, F1, B, L);
    for (size_t j = 0; j < F1 * R; j++) a->a1[j] = a->h1[j] > 0 ? a->h1[j] : 0;
    im2col(a->col2, a->a1, F1, R);
    conv(a->h2, a->col2, n->w2, n->b2, F1, F2, R);
    zero_pads(a->h2, F2, B, L);
    for (int b = 0; b < B; b++) {
        float zb = n->bo[0];
        for (int g = 0; g < F2; g++) {
            const float *h = a->h2 + g * R + b * P + PAD;
            float s = 0, m = 0; /* the maximum of ReLU outputs is at least 0 */
            int arg = -1;
            for (int i = 0; i < L; i++) {
                float v = h[i] > 0 ? h[i] : 0;
                s += v;
                if (v > m) m = v, arg = i;
            }
            a->pool[b * 2 * F2 + g] = s / L;
            a->pool[b * 2 * F2 + F2 + g] = m;
            a->arg[b * F2 + g] = arg;
            zb += n->wo[g] * (s / L) + n->wo[F2 + g] * m;
        }
        z[b] = zb;
    }
}

/* Adds the gradients of dz (B) (d loss / d logit) for the batch of a into gr. */
static void backward(const net *n, net *gr, act *a, const float *dz)
{
    int C = n->C, L = n->L, B = a->B;
    size_t P = (size_t)L + 2 * PAD, R = a->R;
    memset(a->d2, 0, F2 * R * sizeof(float));
    for (int b = 0; b < B; b++) {
        gr->bo[0] += dz[b];
        for (int g = 0; g < 2 * F2; g++) gr->wo[g] += dz[b] * a->pool[b * 2 * F2 + g];
        for (int g = 0; g < F2; g++) {
            const float *h = a->h2 + g * R + b * P + PAD;
            float *d = a->d2 + g * R + b * P + PAD, dm = dz[b] * n->wo[g] / L;
            for (int i = 0; i < L; i++) d[i] = h[i] > 0 ? dm : 0;
            int arg = a->arg[b * F2 + g];
            if (arg >= 0) d[arg] += dz[b] * n->wo[F2 + g];
        }
    }
    memset(a->d1, 0, F1 * R * sizeof(float));
    conv_back(a->d1, a->dcol, gr->w2, gr->b2, a->d2, a->col2, n->w2, F1, F2, R);
    /* the gradient at h1: through the ReLU, none at the padding */
    for (size_t j = 0; j < F1 * R; j++)
        if (!(a->h1[j] > 0)) a->d1[j] = 0;
    zero_pads(a->d1, F1, B, L);
    conv_back(NULL, NULL, gr->w1, gr->b1, a->d1, a->col1, n->w1, C, F1, R);
}

void nde_conv1d_fit_predict(int *pred, const float *xtr, const int *ytr, size_t ntr,
                            const float *xte, size_t nte, int C, int L, uint64_t seed)
{
    size_t np = net_size(C), WL = (size_t)C * L, R = (size_t)BATCH * ((size_t)L + 2 * PAD);
    float *mem = calloc(4 * np + 2 * (size_t)C + (C + 3 * F1 + 2 * F2) * R + BATCH * 2 * F2 +
                            2 * BATCH + (C + 2 * F1) * KW * R,
                        sizeof(float));
    int *arg = malloc(BATCH * F2 * sizeof *arg);
    size_t *order = malloc((ntr + 1) * sizeof *order);
    const float **xb = malloc(BATCH * sizeof *xb);
    ND_ASSERT(mem && arg && order && xb);
    float *p = mem, *gp = p + np, *m1 = gp + np, *m2 = m1 + np, *mu = m2 + np, *sd = mu + C;
    act a = {.xp = sd + C, .arg = arg};
    a.h1 = a.xp + C * R;
    a.a1 = a.h1 + F1 * R;
    a.d1 = a.a1 + F1 * R;
    a.h2 = a.d1 + F1 * R;
    a.d2 = a.h2 + F2 * R;
    a.pool = a.d2 + F2 * R;
    float *z = a.pool + BATCH * 2 * F2, *dz = z + BATCH;
    a.col1 = dz + BATCH;
    a.col2 = a.col1 + (size_t)C * KW * R;
    a.dcol = a.col2 + (size_t)F1 * KW * R;
    net n = {.C = C, .L = L}, g = {.C = C, .L = L};
    net_point(&n, p);
    net_point(&g, gp);
    /* per-channel standardisation from the training windows */
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (size_t w = 0; w < ntr; w++)
            for (int i = 0; i < L; i++) {
                double v = xtr[w * WL + (size_t)c * L + i];
                s += v, s2 += v * v;
            }
        double cnt = (double)(ntr ? ntr : 1) * L, m = s / cnt, v = s2 / cnt - m * m;
        mu[c] = (float)m;
        sd[c] = (float)(v > 1e-12 ? sqrt(v) : 1.0);
    }
    /* PyTorch's default initialisation: U(±1/√fan_in) */
    nd_rng r;
    nd_rng_seed(&r, seed);
    nde_init init[] = {{n.w1, (size_t)F1 * C * KW + F1, C * KW},
                       {n.w2, F2 * F1 * KW + F2, F1 * KW},
                       {n.wo, 2 * F2 + 1, 2 * F2}};
    nde_init_uniform(init, sizeof init / sizeof init[0], &r);
    for (size_t i = 0; i < ntr; i++) order[i] = i;
    const float lr = 3e-3f, beta1 = 0.9f, beta2 = 0.999f;
    int step = 0;
    for (int ep = 0; ep < EPOCHS && ntr; ep++) {
        for (size_t i = ntr - 1; i > 0; i--) {
            size_t j = nd_rng_below(&r, (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (size_t s = 0; s < ntr; s += BATCH) {
            int nb = (int)(ntr - s < BATCH ? ntr - s : BATCH);
            for (int b = 0; b < nb; b++) xb[b] = xtr + order[s + b] * WL;
            forward(&n, &a, xb, nb, mu, sd, z);
            for (int b = 0; b < nb; b++)
                dz[b] = (1.0f / (1.0f + expf(-z[b])) - (float)ytr[order[s + b]]) / (float)nb;
            memset(gp, 0, np * sizeof(float));
            backward(&n, &g, &a, dz);
            step++;
            float c1 = 1 - powf(beta1, (float)step), c2 = 1 - powf(beta2, (float)step);
            for (size_t q = 0; q < np; q++) {
                m1[q] = beta1 * m1[q] + (1 - beta1) * gp[q];
                m2[q] = beta2 * m2[q] + (1 - beta2) * gp[q] * gp[q];
                p[q] -= lr * (m1[q] / c1) / (sqrtf(m2[q] / c2) + 1e-8f);
            }
        }
    }
    for (size_t s = 0; s < nte; s += BATCH) {
        int nb = (int)(nte - s < BATCH ? nte - s : BATCH);
        for (int b = 0; b < nb; b++) xb[b] = xte + (s + b) * WL;
        forward(&n, &a, xb, nb, mu, sd, z);
        for (int b = 0; b < nb; b++) pred[s + b] = z[b] > 0;
    }
    free(mem), free(arg), free(order), free(xb);
}
