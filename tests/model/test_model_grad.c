/*
 * test_model_grad.c — the model core's gradients against central finite differences.
 *
 * For a layer y = f(x, θ) the test takes a random r and the scalar S = Σ y·r (summed in
 * double), gets ∂S/∂x and ∂S/∂θ from the backward with dout = r, and compares them with
 * (S(x+h) − S(x−h)) / 2h. Layers linear in what is perturbed (convolution, linear,
 * upsample, concat) use a large h, which is exact up to rounding; the others use
 * h = 1e-2 (truncation ~h²). Tolerance per tensor: |analytic − numeric| <= atol +
 * rtol·max|numeric|. Also: sgemm against its naive reference, the whole small U-Net
 * (loss and a sample of every parameter tensor), and determinism of a training step.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "nn.h"

static uint64_t rs = 88172645463325252ull;
static float frand(void)
{ /* uniform [-1, 1) */
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) * 0x1.0p-52 - 1.0);
}
static float *rnd(size_t n, float scale)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    CHECK(p);
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}
static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    CHECK(p);
    return p;
}
static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*fwd_fn)(void *st);

/* Compares g (analytic ∂S/∂x) with central differences on up to max_samples elements
 * of x spread over the tensor. */
static void fd_check(const char *what, fwd_fn f, void *st, float *x, const float *g, size_t n,
                     float h, double atol, double rtol, size_t max_samples)
{
    size_t m = n < max_samples ? n : max_samples;
    float *num = zeros(m), *ana = zeros(m);
    for (size_t k = 0; k < m; k++) {
        size_t i = m == n ? k : (k * 7919 + 13) % n;
        float save = x[i];
        x[i] = save + h;
        float hp = x[i] - save;
        double lp = f(st);
        x[i] = save - h;
        float hm = save - x[i];
        double lm = f(st);
        x[i] = save;
        num[k] = (float)((lp - lm) / ((double)hp + hm));
        ana[k] = g[i];
    }
    check_close(what, ana, num, m, atol, rtol);
    free(num);
    free(ana);
}

/* ------------------------------------------------------------------------------------ */

static void test_sgemm(void)
{
    for (int rep = 0; rep < 8; rep++) {
        int ta = rep & 1, tb = (rep >> 1) & 1;
        int M = 3 + rep, N = 17 - rep, K = 5 + 2 * rep;
        int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        float *A = rnd((size_t)(ta ? K : M) * lda, 1), *B = rnd((size_t)(tb ? N : K) * ldb, 1);
        float *C1 = rnd((size_t)M * ldc, 1), *C2 = malloc(sizeof(float) * M * ldc);
        memcpy(C2, C1, sizeof(float) * M * ldc);
        float beta = rep >= 4 ? 0.5f : 0.0f;
        nd_sgemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C1, ldc);
        nd_sgemm_naive(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C2, ldc);
        check_close("sgemm vs naive", C1, C2, (size_t)M * ldc, 1e-5, 1e-5);
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
}

/* --- convolution --------------------------------------------------------------------- */

typedef struct conv_st {
    nd_ctx *ctx;
    int B, C, H, W, OC, k, s, Ho, Wo;
    float *x, *w, *b, *y, *r;
} conv_st;

static double conv_f(void *p)
{
    conv_st *c = p;
    nd_conv2d_forward(c->ctx, c->y, c->x, c->w, c->b, c->B, c->C, c->H, c->W, c->OC, c->k,
                      c->s);
    return dot(c->y, c->r, (size_t)c->B * c->OC * c->Ho * c->Wo);
}

static void test_conv(nd_ctx *ctx, int C, int OC, int k, int s, int H, int W)
{
    conv_st c = {ctx, 3, C, H, W, OC, k, s, (H - 1) / s + 1, (W - 1) / s + 1, 0, 0, 0, 0, 0};
    size_t nx = (size_t)c.B * c.C * H * W, nw = (size_t)c.OC * c.C * k * k;
    size_t ny = (size_t)c.B * c.OC * c.Ho * c.Wo;
    c.x = rnd(nx, 1);
    c.w = rnd(nw, 0.5f);
    c.b = rnd(c.OC, 0.5f);
    c.y = zeros(ny);
    c.r = rnd(ny, 1);
    float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(c.OC);
    conv_f(&c);
    nd_conv2d_backward(ctx, dx, dw, db, c.r, c.x, c.w, c.B, c.C, H, W, c.OC, k, s);
    char what[64];
    snprintf(what, sizeof what, "conv%dx%d/s%d %d->%d %dx%d dx", k, k, s, C, OC, H, W);
    fd_check(what, conv_f, &c, c.x, dx, nx, 0.5f, 1e-4, 1e-4, 150);
    what[strlen(what) - 1] = 'w';
    fd_check(what, conv_f, &c, c.w, dw, nw, 0.5f, 1e-4, 1e-4, 150);
    what[strlen(what) - 1] = 'b';
    fd_check(what, conv_f, &c, c.b, db, c.OC, 0.5f, 1e-4, 1e-4, 400);
    /* the backward accumulates: a second call doubles every gradient */
    float *dx2 = zeros(nx);
    memcpy(dx2, dx, sizeof(float) * nx);
    nd_conv2d_backward(ctx, dx2, NULL, NULL, c.r, c.x, c.w, c.B, c.C, H, W, c.OC, k, s);
    for (size_t i = 0; i < nx; i++) CHECK_NEAR(dx2[i], 2.0f * dx[i], 1e-5, 1e-5);
    free(dx2);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(dx), free(dw), free(db);
}

/* --- linear -------------------------------------------------------------------------- */

typedef struct lin_st {
    nd_ctx *ctx;
    int N, I, O;
    float *x, *w, *b, *y, *r;
} lin_st;

static double lin_f(void *p)
{
    lin_st *c = p;
    nd_linear_forward(c->ctx, c->y, c->x, c->w, c->b, c->N, c->I, c->O);
    return dot(c->y, c->r, (size_t)c->N * c->O);
}

static void test_linear(nd_ctx *ctx)
{
    lin_st c = {ctx, 5, 7, 3, 0, 0, 0, 0, 0};
    c.x = rnd(35, 1), c.w = rnd(21, 1), c.b = rnd(3, 1), c.y = zeros(15), c.r = rnd(15, 1);
    float *dx = zeros(35), *dw = zeros(21), *db = zeros(3);
    nd_linear_backward(ctx, dx, dw, db, c.r, c.x, c.w, c.N, c.I, c.O);
    fd_check("linear dx", lin_f, &c, c.x, dx, 35, 0.5f, 1e-5, 1e-5, 100);
    fd_check("linear dw", lin_f, &c, c.w, dw, 21, 0.5f, 1e-5, 1e-5, 100);
    fd_check("linear db", lin_f, &c, c.b, db, 3, 0.5f, 1e-5, 1e-5, 100);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(dx), free(dw), free(db);
}

/* --- GroupNorm (+SiLU) --------------------------------------------------------------- */

typedef struct gn_st {
    nd_ctx *ctx;
    int B, C, P, G, silu;
    float *x, *g, *b, *y, *r, *mean, *rstd;
} gn_st;

static double gn_f(void *p)
{
    gn_st *c = p;
    nd_groupnorm_forward(c->ctx, c->y, c->mean, c->rstd, c->x, c->g, c->b, c->B, c->C, c->P,
                         c->G, c->silu);
    return dot(c->y, c->r, (size_t)c->B * c->C * c->P);
}

static void test_groupnorm(nd_ctx *ctx, int silu)
{
    gn_st c = {ctx, 3, 6, 10, 3, silu, 0, 0, 0, 0, 0, 0, 0};
    size_t n = (size_t)c.B * c.C * c.P;
    c.x = rnd(n, 2), c.g = rnd(c.C, 1), c.b = rnd(c.C, 1), c.y = zeros(n), c.r = rnd(n, 1);
    for (int i = 0; i < c.C; i++) c.g[i] += 1.0f;
    c.mean = zeros(c.B * c.G), c.rstd = zeros(c.B * c.G);
    float *dx = zeros(n), *dg = zeros(c.C), *db = zeros(c.C);
    gn_f(&c);
    nd_groupnorm_backward(ctx, dx, dg, db, c.r, c.x, c.mean, c.rstd, c.g, c.b, c.B, c.C, c.P,
                          c.G, silu);
    fd_check(silu ? "gn+silu dx" : "gn dx", gn_f, &c, c.x, dx, n, 1e-2f, 2e-4, 2e-3, 180);
    fd_check(silu ? "gn+silu dgamma" : "gn dgamma", gn_f, &c, c.g, dg, c.C, 1e-2f, 2e-4, 2e-3,
             100);
    fd_check(silu ? "gn+silu dbeta" : "gn dbeta", gn_f, &c, c.b, db, c.C, 1e-2f, 2e-4, 2e-3,
             100);
    free(c.x), free(c.g), free(c.b), free(c.y), free(c.r), free(c.mean), free(c.rstd);
    free(dx), free(dg), free(db);
}

/* --- SiLU, upsample, concat, embeddings, per-channel add, MSE ------------------------ */

typedef struct ew_st {
    nd_ctx *ctx;
    int kind; /* 0 silu, 1 upsample, 2 concat, 3 class embedding, 4 add channel */
    int B, C, H, W, C2;
    float *x, *x2, *y, *r;
    int *lab;
} ew_st;

static size_t ew_ny(const ew_st *c)
{
    switch (c->kind) {
    case 0: return (size_t)c->B * c->C;
    case 1: return (size_t)c->B * c->C * 4 * c->H * c->W;
    case 2: return (size_t)c->B * (c->C + c->C2) * c->H * c->W;
    case 3: return (size_t)c->B * c->W;
    default: return (size_t)c->B * c->C * c->H * c->W;
    }
}

static double ew_f(void *p)
{
    ew_st *c = p;
    size_t ny = ew_ny(c);
    switch (c->kind) {
    case 0: nd_silu_forward(c->y, c->x, ny); break;
    case 1: nd_upsample2_forward(c->ctx, c->y, c->x, c->B, c->C, c->H, c->W); break;
    case 2: nd_concat_forward(c->ctx, c->y, c->x, c->x2, c->B, c->C, c->C2, c->H * c->W); break;
    case 3: nd_class_embedding_forward(c->y, c->x, c->lab, c->B, c->C, c->W); break;
    default:
        memcpy(c->y, c->x2, sizeof(float) * ny);
        nd_add_channel_forward(c->y, c->x, c->B, c->C, c->H * c->W);
    }
    return dot(c->y, c->r, ny);
}

static void test_elementwise(nd_ctx *ctx)
{
    int lab[3] = {2, 0, 2};
    for (int kind = 0; kind < 5; kind++) {
        ew_st c = {ctx, kind, 3, 4, 3, 5, 2, 0, 0, 0, 0, lab};
        size_t nx = kind == 0   ? (size_t)c.B * c.C
                    : kind == 3 ? (size_t)c.C * c.W
                    : kind == 4 ? (size_t)c.B * c.C
                                : (size_t)c.B * c.C * c.H * c.W;
        size_t nx2 = kind == 4 ? (size_t)c.B * c.C * c.H * c.W : (size_t)c.B * c.C2 * c.H * c.W;
        size_t ny = ew_ny(&c);
        c.x = rnd(nx, 3), c.x2 = rnd(nx2, 1), c.y = zeros(ny), c.r = rnd(ny, 1);
        float *dx = zeros(nx), *dx2 = zeros(nx2);
        const char *what = "?";
        float h = 0.5f;
        switch (kind) {
        case 0:
            nd_silu_backward(dx, c.r, c.x, nx);
            what = "silu dx";
            h = 1e-2f;
            break;
        case 1:
            nd_upsample2_backward(ctx, dx, c.r, c.B, c.C, c.H, c.W);
            what = "upsample dx";
            break;
        case 2:
            nd_concat_backward(ctx, dx, dx2, c.r, c.B, c.C, c.C2, c.H * c.W);
            what = "concat da";
            fd_check("concat db", ew_f, &c, c.x2, dx2, nx2, h, 1e-5, 1e-5, 200);
            break;
        case 3:
            nd_class_embedding_backward(dx, c.r, lab, c.B, c.C, c.W);
            what = "class embedding dtable";
            break;
        default: nd_add_channel_backward(dx, c.r, c.B, c.C, c.H * c.W); what = "add channel de";
        }
        fd_check(what, ew_f, &c, c.x, dx, nx, h, 2e-5, 2e-4, 200);
        free(c.x), free(c.x2), free(c.y), free(c.r), free(dx), free(dx2);
    }
    /* MSE: the backward is the derivative of the forward */
    float *o = rnd(20, 1), *t = rnd(20, 1), *d = zeros(20);
    nd_mse_backward(d, o, t, 20, 1.0f);
    for (int i = 0; i < 20; i++) {
        float save = o[i];
        o[i] = save + 1e-2f;
        double lp = nd_mse_forward(o, t, 20);
        o[i] = save - 1e-2f;
        double lm = nd_mse_forward(o, t, 20);
        o[i] = save;
        CHECK_NEAR(d[i], (lp - lm) / 2e-2, 1e-5, 1e-3);
    }
    free(o), free(t), free(d);
    /* timestep embedding: sin/cos of t·10000^(-i/half) */
    float tt[2] = {0.0f, 999.0f}, e[2 * 8];
    nd_timestep_embedding(e, tt, 2, 8);
    CHECK_NEAR(e[0], 0.0, 1e-7, 0);
    CHECK_NEAR(e[4], 1.0, 1e-7, 0);
    CHECK_NEAR(e[8 + 1], sin(999.0 * pow(10000.0, -0.25)), 1e-6, 0);
    CHECK_NEAR(e[8 + 4 + 3], cos(999.0 * pow(10000.0, -0.75)), 1e-6, 0);
}

/* --- attention core ------------------------------------------------------------------ */

typedef struct att_st {
    nd_ctx *ctx;
    int B, C, P;
    float *qkv, *att, *y, *r;
} att_st;

static double att_f(void *p)
{
    att_st *c = p;
    nd_attention_forward(c->ctx, c->y, c->att, c->qkv, c->B, c->C, c->P);
    return dot(c->y, c->r, (size_t)c->B * c->C * c->P);
}

static void test_attention(nd_ctx *ctx)
{
    att_st c = {ctx, 3, 4, 9, 0, 0, 0, 0};
    size_t n = (size_t)c.B * 3 * c.C * c.P, ny = (size_t)c.B * c.C * c.P;
    c.qkv = rnd(n, 1.5f), c.att = zeros((size_t)c.B * c.P * c.P), c.y = zeros(ny);
    c.r = rnd(ny, 1);
    float *d = zeros(n);
    att_f(&c);
    for (int i = 0; i < c.P; i++) { /* rows of the softmax sum to one */
        double s = 0.0;
        for (int j = 0; j < c.P; j++) s += c.att[(size_t)i * c.P + j];
        CHECK_NEAR(s, 1.0, 1e-5, 0);
    }
    nd_attention_backward(ctx, d, c.r, c.qkv, c.att, c.B, c.C, c.P);
    fd_check("attention dqkv", att_f, &c, c.qkv, d, n, 1e-2f, 2e-4, 2e-3, 400);
    free(c.qkv), free(c.att), free(c.y), free(c.r), free(d);
}

/* --- the whole U-Net ----------------------------------------------------------------- */

static void small_config(nd_unet_config *uc)
{
    memset(uc, 0, sizeof *uc);
    uc->channels = 2;
    uc->L = 8;
    uc->base = 8;
    uc->levels = 2;
    uc->mult[0] = 1;
    uc->mult[1] = 2;
    uc->res_blocks = 1;
    uc->attn_min_res = 4;
    uc->groups = 4;
    uc->emb_dim = 16;
    uc->max_classes = 3;
}

typedef struct net_st {
    nd_unet *m;
    nd_ctx *ctx;
    int B;
    float *x, *t, *tgt, *out;
    int *y;
    const float *cond;  /* conditioning planes (NULL: none) */
    const int *pos;     /* position rows (NULL: row 0) */
    const float *guide; /* fractional guidance rows (NULL: row 0) */
} net_st;

static double net_f(void *p)
{
    net_st *s = p;
    const nd_unet_config *c = nd_unet_cfg(s->m);
    size_t n = (size_t)s->B * c->channels * c->L * c->L;
    nd_unet_set_cond(s->m, s->cond);
    nd_unet_set_pos(s->m, s->pos);
    nd_unet_set_guide(s->m, s->guide);
    nd_unet_forward(s->m, s->ctx, s->out, s->x, s->t, s->y, s->B);
    double l = 0.0; /* MSE in double: the loss differences are ~1e-4 of the loss */
    for (size_t i = 0; i < n; i++) {
        double d = (double)s->out[i] - s->tgt[i];
        l += d * d;
    }
    return l / (double)n;
}

/* coords: with the coordinate planes; cond: that many conditioning planes, random (their
 * conv_in weights and the image part of the input gradient are checked like the rest);
 * pos_rows: a position table of that many rows, the images on rows 2, 0, 1 (its rows'
 * gradients are checked like the rest); guide_rows: a guidance table of that many rows,
 * random rather than zero, the images between rows (0.25, the last, and 1 exactly). */
static void test_unet(nd_ctx *ctx, int coords, int cond, int pos_rows, int guide_rows)
{
    nd_unet_config uc;
    small_config(&uc);
    uc.coords = coords;
    uc.cond = cond;
    uc.pos_rows = pos_rows;
    uc.guide_rows = guide_rows;
    int B = 3;
    nd_unet *m = nd_unet_new(&uc, B, 7);
    CHECK(m);
    size_t n = (size_t)B * uc.channels * uc.L * uc.L;
    int y[3] = {0, 2, 3};
    float t[3] = {3.0f, 500.0f, 999.0f};
    float *planes = cond ? rnd((size_t)B * cond * uc.L * uc.L, 1) : NULL;
    static const int rows[3] = {2, 0, 1};
    const float grows[3] = {0.25f, (float)guide_rows - 1, 1.0f};
    net_st s = {m,
                ctx,
                B,
                rnd(n, 1),
                t,
                rnd(n, 1),
                zeros(n),
                y,
                planes,
                pos_rows ? rows : NULL,
                guide_rows ? grows : NULL};
    /* move GroupNorm off 1/0 so that its gradients are exercised */
    for (size_t i = 0; i < nd_unet_num_tensors(m); i++) {
        const char *name;
        size_t off, numel;
        nd_unet_tensor(m, i, &name, &off, &numel);
        if (strstr(name, "gn"))
            for (size_t j = 0; j < numel; j++) nd_unet_params(m)[off + j] += 0.2f * frand();
        if (!strcmp(name, "gemb.table")) { /* zero at first, and the last tensor */
            CHECK(i + 1 == nd_unet_num_tensors(m) && off + numel == nd_unet_num_params(m));
            for (size_t j = 0; j < numel; j++) CHECK_EQ(nd_unet_params(m)[off + j], 0.0f);
            for (size_t j = 0; j < numel; j++) nd_unet_params(m)[off + j] = frand();
        }
    }
    net_f(&s);
    float *dout = zeros(n), *dx = zeros(n);
    nd_mse_backward(dout, s.out, s.tgt, n, 1.0f);
    nd_unet_zero_grad(m);
    nd_unet_backward(m, ctx, dx, dout);
    fd_check("unet dx", net_f, &s, s.x, dx, n, 1e-2f, 2e-5, 2e-2, 24);
    for (size_t i = 0; i < nd_unet_num_tensors(m); i++) {
        const char *name;
        size_t off, numel;
        nd_unet_tensor(m, i, &name, &off, &numel);
        char what[96];
        snprintf(what, sizeof what, "unet %s", name);
        fd_check(what, net_f, &s, nd_unet_params(m) + off, nd_unet_grads(m) + off, numel, 1e-2f,
                 2e-5, 2e-2, 4);
    }
    if (cond || pos_rows || guide_rows) { /* the planes and rows matter: the same input
                                           * without them gives another output */
        float *with = zeros(n);
        net_f(&s);
        memcpy(with, s.out, n * sizeof(float));
        s.cond = NULL, s.pos = NULL, s.guide = NULL;
        net_f(&s);
        double d = 0.0;
        for (size_t i = 0; i < n; i++) d += fabs((double)with[i] - s.out[i]);
        CHECK(d / (double)n > 1e-3);
        free(with);
    }
    free(s.x), free(s.tgt), free(s.out), free(dout), free(dx), free(planes);
    nd_unet_free(m);
}

/* Same seed, same threads: bit-identical after training steps; a different thread
 * count: the same up to rounding. */
static void train_steps(int threads, float *params_out, float *loss_out)
{
    nd_ctx *ctx = nd_ctx_new(threads);
    nd_unet_config uc;
    small_config(&uc);
    int B = 4;
    nd_unet *m = nd_unet_new(&uc, B, 42);
    CHECK(m && ctx);
    nd_adamw_config oc = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f, 2, 0.99f};
    nd_adamw *o = nd_adamw_new(&oc, nd_unet_num_params(m), nd_unet_params(m));
    CHECK(o);
    size_t n = (size_t)B * uc.channels * uc.L * uc.L;
    uint64_t save = rs;
    rs = 12345;
    float *x = rnd(n, 1), *tgt = rnd(n, 1), *out = zeros(n), *d = zeros(n);
    rs = save;
    float t[4] = {1, 10, 100, 900};
    int y[4] = {0, 1, 2, 3};
    for (int step = 0; step < 3; step++) {
        nd_unet_forward(m, ctx, out, x, t, y, B);
        *loss_out = nd_mse_forward(out, tgt, n);
        nd_mse_backward(d, out, tgt, n, 1.0f);
        nd_unet_zero_grad(m);
        nd_unet_backward(m, ctx, NULL, d);
        nd_adamw_step(o, ctx, nd_unet_params(m), nd_unet_grads(m));
    }
    CHECK_EQ(nd_adamw_steps(o), 3);
    memcpy(params_out, nd_unet_params(m), sizeof(float) * nd_unet_num_params(m));
    free(x), free(tgt), free(out), free(d);
    nd_adamw_free(o);
    nd_unet_free(m);
    nd_ctx_free(ctx);
}

static void test_determinism(void)
{
    nd_unet_config uc;
    small_config(&uc);
    nd_unet *m = nd_unet_new(&uc, 1, 42);
    CHECK(m);
    size_t np = nd_unet_num_params(m);
    nd_unet_free(m);
    float *a = zeros(np), *b = zeros(np), *c = zeros(np), la, lb, lc;
    train_steps(2, a, &la);
    train_steps(2, b, &lb);
    train_steps(1, c, &lc);
    CHECK(memcmp(a, b, sizeof(float) * np) == 0);
    CHECK_NEAR(la, lc, 1e-6, 1e-5);
    check_close("params, 1 vs 2 threads", a, c, np, 1e-5, 1e-4);
    free(a), free(b), free(c);
}

/* A window's output depends on that window alone: neither on how many others share its
 * batch nor on where its buffers lie. Same-seed sampling relies on it (a model loaded
 * with another batch limit samples the same windows); an sgemm over the batch rows breaks
 * it under some OpenBLAS kernels (OPENBLAS_CORETYPE=Haswell). */
static void test_batch_invariance(nd_ctx *ctx)
{
    nd_unet_config uc;
    small_config(&uc);
    uc.emb_dim = 128; /* unet-ref's: wide enough for OpenBLAS's blocked kernels */
    enum { B = 11 };
    nd_unet *big = nd_unet_new(&uc, B, 5), *one = nd_unet_new(&uc, 3, 5);
    CHECK(big && one);
    memcpy(nd_unet_params(one), nd_unet_params(big), nd_unet_num_params(big) * sizeof(float));
    size_t img = (size_t)uc.channels * uc.L * uc.L;
    float *x = rnd(B * img, 1), *out = zeros(B * img), *o1 = zeros(3 * img + 16);
    float t[B];
    int y[B];
    for (int i = 0; i < B; i++) t[i] = (float)(37 * i % 1000), y[i] = i % (uc.max_classes + 1);
    nd_unet_forward(big, ctx, out, x, t, y, B);
    for (int i = 0; i < B; i++) {
        /* alone, in a batch of 1, its output written at an odd float offset */
        float *o = o1 + 1 + i % 3;
        nd_unet_forward(one, ctx, o, x + i * img, t + i, y + i, 1);
        if (memcmp(o, out + i * img, img * sizeof(float)))
            CHECK_FAIL_("window %d: batch of %d and batch of 1 differ", i, B);
    }
    free(x), free(out), free(o1);
    nd_unet_free(big), nd_unet_free(one);
}

int main(void)
{
    /* One thread for the thousands of finite-difference forwards (a parallel region per
     * layer call costs more than the tiny layers on a loaded machine); two threads are
     * covered by the determinism test (1 vs 2 threads), the one-image convolution path
     * and test_model_torch. */
    nd_ctx *ctx = nd_ctx_new(1);
    CHECK(ctx);
    test_sgemm();
    test_conv(ctx, 3, 4, 3, 1, 7, 5);
    test_conv(ctx, 3, 4, 3, 2, 7, 6);
    test_conv(ctx, 3, 4, 3, 2, 8, 8);
    test_conv(ctx, 3, 4, 1, 1, 4, 5);
    /* shapes of the direct kernel (test_model_cpu compares it with im2col): 8k channels
     * both ways, partial and odd vectors */
    test_conv(ctx, 8, 16, 3, 1, 5, 19);
    test_conv(ctx, 16, 8, 3, 1, 3, 33);
    test_conv(ctx, 8, 8, 3, 1, 4, 16);
    test_linear(ctx);
    test_groupnorm(ctx, 0);
    test_groupnorm(ctx, 1);
    test_elementwise(ctx);
    test_attention(ctx);
    test_unet(ctx, 0, 0, 0, 0);
    test_unet(ctx, 1, 0, 0, 0);
    test_unet(ctx, 1, 3, 0, 0);
    test_unet(ctx, 0, 0, 4, 0);
    test_unet(ctx, 0, 0, 0, 3);
    test_batch_invariance(ctx);
    test_determinism();
    nd_ctx_free(ctx);
    printf("test_model_grad: ok\n");
    return 0;
}
