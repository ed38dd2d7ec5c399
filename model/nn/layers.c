/*
 * layers.c — the tensor layers of the model core: forward/backward pairs over flat
 * float32 (N,C,H,W) buffers. Matrix products go through nd_sgemm (model.c); the loops
 * here run in parallel over images (OpenMP, ctx->threads) with OpenBLAS at one thread
 * inside, so that the two never compete for the cores.
 *
 * Determinism: work is split statically by image, and reductions across images
 * (weight gradients) are summed per thread then added in thread order, so a seed and a
 * thread count give the same bits every run.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn_impl.h"

/* Thread t's share [lo, hi) of n items, static and contiguous. */
static void split(int n, int nt, int t, int *lo, int *hi)
{
    *lo = (int)((long)n * t / nt);
    *hi = (int)((long)n * (t + 1) / nt);
}

/* Threads worth starting for n independent items. */
static int team(const nd_ctx *ctx, int n)
{
    return n < ctx->threads ? (n > 0 ? n : 1) : ctx->threads;
}

/* ------------------------------------------------------------------------------------ */
/* Convolution: im2col + sgemm per image                                                 */
/* ------------------------------------------------------------------------------------ */

/* col (C·9, Ho·Wo) of one image (C,H,W) for a 3×3 kernel, padding 1, stride s:
 * col[(c·9 + ky·3 + kx)][oy·Wo + ox] = inp[c][oy·s + ky − 1][ox·s + kx − 1] or 0. */
static void im2col3(float *restrict col, const float *restrict inp, int C, int H, int W, int s)
{
    int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                float *restrict dst = col + (size_t)((c * 3 + ky) * 3 + kx) * Ho * Wo;
                /* ox range with 0 <= ox·s + kx − 1 < W */
                int ox0 = kx == 0 ? 1 : 0;
                int ox1 = (W - kx) / s + 1; /* first ox with ox·s + kx − 1 >= W */
                if (ox1 > Wo) ox1 = Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s + ky - 1;
                    float *restrict d = dst + (size_t)oy * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(d, 0, sizeof(float) * Wo);
                        continue;
                    }
                    const float *restrict src = inp + ((size_t)c * H + iy) * W + kx - 1;
                    for (int ox = 0; ox < ox0; ox++) d[ox] = 0.0f;
                    if (s == 1)
                        for (int ox = ox0; ox < ox1; ox++) d[ox] = src[ox];
                    else
                        for (int ox = ox0; ox < ox1; ox++) d[ox] = src[ox * s];
                    for (int ox = ox1; ox < Wo; ox++) d[ox] = 0.0f;
                }
            }
}

/* The adjoint of im2col3: dinp += scatter of dcol. */
static void col2im3(float *restrict dinp, const float *restrict dcol, int C, int H, int W,
                    int s)
{
    int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                const float *restrict src = dcol + (size_t)((c * 3 + ky) * 3 + kx) * Ho * Wo;
                int ox0 = kx == 0 ? 1 : 0;
                int ox1 = (W - kx) / s + 1;
                if (ox1 > Wo) ox1 = Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * s + ky - 1;
                    if (iy < 0 || iy >= H) continue;
                    float *restrict d = dinp + ((size_t)c * H + iy) * W + kx - 1;
                    const float *restrict sr = src + (size_t)oy * Wo;
                    if (s == 1)
                        for (int ox = ox0; ox < ox1; ox++) d[ox] += sr[ox];
                    else
                        for (int ox = ox0; ox < ox1; ox++) d[ox * s] += sr[ox];
                }
            }
}

static void conv_check(int k, int stride)
{
    ND_ASSERT((k == 3 && (stride == 1 || stride == 2)) || (k == 1 && stride == 1));
}

void nd_conv2d_forward(nd_ctx *ctx, float *out, const float *inp, const float *w,
                       const float *b, int B, int C, int H, int W, int OC, int k, int stride)
{
    conv_check(k, stride);
    uint64_t t0 = nd_prof_begin(ctx);
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1, P = Ho * Wo;
    int K = C * k * k;
    int nt = team(ctx, B);
    int direct =
        ctx->cpu >= ND_CPU_AVX512 && k == 3 && stride == 1 && nd_conv3_direct_ok(C, OC);
    /* scratch: direct: packed weights (shared) + a padded image per thread;
     * im2col: the columns per thread */
    size_t nwt = direct ? (size_t)OC * K : 0;
    size_t per = direct ? (size_t)C * (H + 2) * (W + 2) : k == 1 ? 0 : (size_t)K * P;
    nwt = (nwt + 15) & ~(size_t)15;
    per = (per + 15) & ~(size_t)15;
    float *ws = nwt + per ? nd_ctx_scratch(ctx, nwt + per * nt) : NULL;
    int bf = direct && ctx->bf16;
    if (bf) nd_conv3_bf16_pack((uint32_t *)ws, w, C, OC, 0);
    else if (direct) nd_conv3_direct_pack(ws, w, C, OC, 0);
    if (direct && !bf && B < ctx->threads) {
        /* Fewer images than threads (sampling a window or two): split each image's
         * output-channel blocks over the threads instead. */
        float *pad = ws + nwt;
        for (int n = 0; n < B; n++) {
            nd_conv3_direct_pad(pad, inp + (size_t)n * C * H * W, C, H, W);
            float *y = out + (size_t)n * OC * P;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
            for (int ob = 0; ob < OC / 8; ob++)
                nd_conv3_direct_block(y, pad, ws, b, C, H, W, ob, 0);
        }
        nd_prof_end(ctx, ND_PROF_CONV3, 0, t0);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), lo, hi;
        split(B, nt, t, &lo, &hi);
        float *col = per ? ws + nwt + per * t : NULL;
        for (int n = lo; n < hi; n++) {
            const float *x = inp + (size_t)n * C * H * W;
            float *y = out + (size_t)n * OC * P;
            if (bf) {
                nd_conv3_bf16_image(y, (uint32_t *)col, x, (const uint32_t *)ws, b, C, H, W, OC,
                                    0);
                continue;
            }
            if (direct) {
                nd_conv3_direct_image(y, col, x, ws, b, C, H, W, OC, 0);
                continue;
            }
            if (k == 3) im2col3(col, x, C, H, W, stride);
            nd_sgemm(0, 0, OC, P, K, 1.0f, w, K, k == 3 ? col : x, P, 0.0f, y, P);
            if (b)
                for (int o = 0; o < OC; o++) {
                    float bo = b[o];
                    float *restrict yo = y + (size_t)o * P;
                    for (int p = 0; p < P; p++) yo[p] += bo;
                }
        }
    }
    nd_prof_end(ctx,
                k == 1        ? ND_PROF_CONV1
                : stride == 2 ? ND_PROF_CONV3S2
                              : ND_PROF_CONV3,
                0, t0);
}

void nd_conv2d_backward(nd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int B, int C, int H, int W, int OC,
                        int k, int stride)
{
    conv_check(k, stride);
    uint64_t t0 = nd_prof_begin(ctx);
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1, P = Ho * Wo;
    int K = C * k * k;
    int nt = team(ctx, B);
    int s1 = ctx->cpu >= ND_CPU_AVX512 && k == 3 && stride == 1;
    /* Input gradient: a stride-1 3×3 convolution's is the direct kernel run on dout with
     * flipped weights (conv_direct.c), else dcol = wᵀ·dout and col2im.
     * Weight gradient: the direct kernel on transposed dout, else dout·colᵀ (im2col).
     * Shared scratch: the flipped packed weights (nwt). Per thread (per): the columns or
     * the padded input (ncol), dcol or the padded dout (ndcol), dout transposed (nT),
     * and partial weight and bias gradients (npart), summed in thread order. */
    int ddirect = dinp && s1 && nd_conv3_direct_ok(OC, C);
    int wdirect = s1 && nd_conv3_direct_dw_ok(C, OC);
    size_t pad_in = (size_t)C * (H + 2) * (W + 2), pad_out = (size_t)OC * (H + 2) * (W + 2);
    size_t nwt = ddirect ? ((size_t)OC * K + 15) & ~(size_t)15 : 0;
    size_t ncol = wdirect ? pad_in : k == 3 ? (size_t)K * P : 0;
    size_t ndcol = ddirect ? pad_out : k == 3 && dinp ? (size_t)K * P : 0;
    size_t nT = wdirect ? (size_t)P * OC : 0;
    size_t npart = (size_t)OC * K + OC;
    ncol = (ncol + 15) & ~(size_t)15;
    ndcol = (ndcol + 15) & ~(size_t)15;
    nT = (nT + 15) & ~(size_t)15;
    size_t per = ncol + ndcol + nT + npart;
    per = (per + 15) & ~(size_t)15; /* keep every thread's area 64-byte aligned */
    float *ws0 = nd_ctx_scratch(ctx, nwt + per * nt), *ws = ws0 + nwt;
    int bf = ddirect && ctx->bf16;
    if (bf) nd_conv3_bf16_pack((uint32_t *)ws0, w, C, OC, 1);
    else if (ddirect) nd_conv3_direct_pack(ws0, w, C, OC, 1);
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), lo, hi;
        split(B, nt, t, &lo, &hi);
        float *col = ws + per * t;
        float *dcol = col + ncol, *dT = dcol + ndcol;
        float *pw = dT + nT, *pb = pw + (size_t)OC * K; /* pw is (C·9, OC) when wdirect */
        memset(pw, 0, sizeof(float) * npart);
        for (int n = lo; n < hi; n++) {
            const float *x = inp + (size_t)n * C * H * W;
            const float *dy = dout + (size_t)n * OC * P;
            if (wdirect) {
                nd_conv3_direct_dw_image(pw, pb, col, dT, x, dy, C, H, W, OC);
            } else {
                const float *cx = x;
                if (k == 3) {
                    im2col3(col, x, C, H, W, stride);
                    cx = col;
                }
                /* dw (OC,K) += dy (OC,P) · colᵀ (P,K) */
                nd_sgemm(0, 1, OC, K, P, 1.0f, dy, P, cx, P, 1.0f, pw, K);
                for (int o = 0; o < OC; o++) {
                    const float *restrict dyo = dy + (size_t)o * P;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int p = 0; p < P; p++) s += dyo[p];
                    pb[o] += s;
                }
            }
            if (dinp) {
                float *dx = dinp + (size_t)n * C * H * W;
                if (bf) {
                    nd_conv3_bf16_image(dx, (uint32_t *)dcol, dy, (const uint32_t *)ws0, NULL,
                                        OC, H, W, C, 1);
                } else if (ddirect) {
                    nd_conv3_direct_image(dx, dcol, dy, ws0, NULL, OC, H, W, C, 1);
                } else if (k == 1) {
                    /* dx (C,P) += wᵀ (C,OC) · dy (OC,P) */
                    nd_sgemm(1, 0, C, P, OC, 1.0f, w, K, dy, P, 1.0f, dx, P);
                } else {
                    nd_sgemm(1, 0, K, P, OC, 1.0f, w, K, dy, P, 0.0f, dcol, P);
                    col2im3(dx, dcol, C, H, W, stride);
                }
            }
        }
    }
    for (int t = 0; t < nt; t++) {
        const float *pw = ws + per * t + ncol + ndcol + nT, *pb = pw + (size_t)OC * K;
        if (dw && wdirect) {
            for (int o = 0; o < OC; o++)
                for (int kk = 0; kk < K; kk++)
                    dw[(size_t)o * K + kk] += pw[(size_t)kk * OC + o];
        } else if (dw) {
            for (size_t i = 0; i < (size_t)OC * K; i++) dw[i] += pw[i];
        }
        if (db)
            for (int o = 0; o < OC; o++) db[o] += pb[o];
    }
    nd_prof_end(ctx,
                k == 1        ? ND_PROF_CONV1
                : stride == 2 ? ND_PROF_CONV3S2
                              : ND_PROF_CONV3,
                1, t0);
}

/* ------------------------------------------------------------------------------------ */
/* Linear                                                                                */
/* ------------------------------------------------------------------------------------ */

void nd_linear_forward(nd_ctx *ctx, float *out, const float *inp, const float *w,
                       const float *b, int N, int IN, int OUT)
{
    /* One matrix-vector product per row rather than one sgemm over the batch: an sgemm
     * kernel may sum a row's products in an order that depends on how many rows share the
     * call (OpenBLAS's Haswell kernels do), so the same window would come out differently
     * in a batch of 8 than in a batch of 16. Per row, every window's embedding depends on
     * that window alone, and a seed samples the same windows whatever the batch size. */
    (void)ctx;
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OUT;
        for (int j = 0; j < OUT; j++) o[j] = b ? b[j] : 0.0f;
        nd_sgemv(OUT, IN, 1.0f, w, IN, inp + (size_t)n * IN, 1.0f, o);
    }
}

void nd_linear_backward(nd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int N, int IN, int OUT)
{
    if (dinp) nd_sgemm(0, 0, N, IN, OUT, 1.0f, dout, OUT, w, IN, 1.0f, dinp, IN);
    if (dw) nd_sgemm(1, 0, OUT, IN, N, 1.0f, dout, OUT, inp, IN, 1.0f, dw, IN);
    if (db)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++) db[o] += dout[(size_t)n * OUT + o];
}

/* ------------------------------------------------------------------------------------ */
/* GroupNorm (+ SiLU)                                                                    */
/* ------------------------------------------------------------------------------------ */

#define GN_EPS 1e-5f

/* The per-(image, group) work of both passes is compiled twice: for the baseline CPU and,
 * with ND_TARGET_AVX512, for AVX-512, picked by the context's kernel level. GroupNorm +
 * SiLU is a fifth to a third of a training step, and its exp (rintf) vectorises only with
 * the wider instruction set: the baseline copy alone made the step 1.5× slower. */
typedef struct gn_args {
    float *out, *mean, *rstd;               /* forward */
    float *dinp, *sg, *sb;                  /* backward; sg, sb (B,C) */
    const float *inp, *dout, *gamma, *beta; /* dout: backward */
    const float *cmean, *crstd;             /* backward: the forward's mean and rstd */
    int C, G, cg, P, silu;
    size_t gs; /* elements per (image, group) */
} gn_args;

static inline __attribute__((always_inline)) void gn_fwd_group(const gn_args *A, int ng)
{
    int g = ng % A->G, cg = A->cg, P = A->P;
    size_t gs = A->gs;
    const float *restrict x = A->inp + (size_t)ng * gs;
    float *restrict y = A->out + (size_t)ng * gs;
    /* Two passes (mean, then centred squares) in double: P·cg reaches 10^5 at L=128. */
    /* omp simd: lets the reductions vectorise (reassociation is otherwise barred). */
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < gs; i++) s += x[i];
    float mu = (float)(s / (double)gs);
    double v = 0.0;
#pragma omp simd reduction(+ : v)
    for (size_t i = 0; i < gs; i++) {
        float d = x[i] - mu;
        v += (double)(d * d);
    }
    float rs = (float)(1.0 / sqrt(v / (double)gs + GN_EPS));
    A->mean[ng] = mu;
    A->rstd[ng] = rs;
    for (int j = 0; j < cg; j++) {
        int c = g * cg + j;
        float a = rs * A->gamma[c], bb = A->beta[c] - mu * a; /* y = a·x + bb */
        const float *restrict xc = x + (size_t)j * P;
        float *restrict yc = y + (size_t)j * P;
        if (A->silu)
            for (int p = 0; p < P; p++) {
                float z = a * xc[p] + bb;
                yc[p] = z / (1.0f + nd_expf(-z));
            }
        else
            for (int p = 0; p < P; p++) yc[p] = a * xc[p] + bb;
    }
}

/* dz: the thread's cg·P floats for the gradient at the GroupNorm output. */
static inline __attribute__((always_inline)) void gn_bwd_group(const gn_args *A, int ng,
                                                               float *restrict dz)
{
    int n = ng / A->G, g = ng % A->G, cg = A->cg, P = A->P, C = A->C;
    size_t gs = A->gs;
    const float *restrict x = A->inp + (size_t)ng * gs;
    const float *restrict dy = A->dout + (size_t)ng * gs;
    float mu = A->cmean[ng], rs = A->crstd[ng];
    double sdz = 0.0, sdzx = 0.0; /* Σ dx̂, Σ dx̂·x̂ over the group */
    for (int j = 0; j < cg; j++) {
        int c = g * cg + j;
        float gm = A->gamma[c], bt = A->beta[c];
        const float *restrict xc = x + (size_t)j * P;
        const float *restrict dyc = dy + (size_t)j * P;
        float *restrict dzc = dz + (size_t)j * P;
        float a = 0.0f, bsum = 0.0f;
        if (A->silu)
#pragma omp simd reduction(+ : a, bsum)
            for (int p = 0; p < P; p++) {
                float xh = (xc[p] - mu) * rs;
                float z = gm * xh + bt;
                float sg_ = 1.0f / (1.0f + nd_expf(-z));
                float d = dyc[p] * sg_ * (1.0f + z * (1.0f - sg_));
                dzc[p] = d;
                a += d * xh;
                bsum += d;
            }
        else
#pragma omp simd reduction(+ : a, bsum)
            for (int p = 0; p < P; p++) {
                float xh = (xc[p] - mu) * rs;
                float d = dyc[p];
                dzc[p] = d;
                a += d * xh;
                bsum += d;
            }
        A->sg[(size_t)n * C + c] = a;
        A->sb[(size_t)n * C + c] = bsum;
        sdz += (double)bsum * gm;
        sdzx += (double)a * gm;
    }
    if (!A->dinp) return;
    /* dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dz·γ */
    float m1 = (float)(sdz / (double)gs), m2 = (float)(sdzx / (double)gs);
    float *restrict dx = A->dinp + (size_t)ng * gs;
    for (int j = 0; j < cg; j++) {
        float gm = A->gamma[g * cg + j];
        const float *restrict xc = x + (size_t)j * P;
        const float *restrict dzc = dz + (size_t)j * P;
        float *restrict dxc = dx + (size_t)j * P;
        for (int p = 0; p < P; p++) {
            float xh = (xc[p] - mu) * rs;
            dxc[p] += rs * (dzc[p] * gm - m1 - xh * m2);
        }
    }
}

/* The fields both passes share. */
static gn_args gn_shape(const float *inp, const float *gamma, const float *beta, int C, int P,
                        int G, int silu)
{
    return (gn_args){.inp = inp,
                     .gamma = gamma,
                     .beta = beta,
                     .C = C,
                     .G = G,
                     .cg = C / G,
                     .P = P,
                     .silu = silu,
                     .gs = (size_t)(C / G) * P};
}

static void gn_fwd_generic(const gn_args *A, int ng) { gn_fwd_group(A, ng); }
ND_TARGET_AVX512 static void gn_fwd_avx512(const gn_args *A, int ng) { gn_fwd_group(A, ng); }
static void gn_bwd_generic(const gn_args *A, int ng, float *dz) { gn_bwd_group(A, ng, dz); }
ND_TARGET_AVX512 static void gn_bwd_avx512(const gn_args *A, int ng, float *dz)
{
    gn_bwd_group(A, ng, dz);
}

void nd_groupnorm_forward(nd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, int B, int C, int P, int G,
                          int silu)
{
    ND_ASSERT(G > 0 && C % G == 0);
    uint64_t t0 = nd_prof_begin(ctx);
    gn_args A = gn_shape(inp, gamma, beta, C, P, G, silu);
    A.out = out, A.mean = mean, A.rstd = rstd;
    void (*fwd)(const gn_args *, int) =
        ctx->cpu >= ND_CPU_AVX512 ? gn_fwd_avx512 : gn_fwd_generic;
    int nt = team(ctx, B * G);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int ng = 0; ng < B * G; ng++) fwd(&A, ng);
    nd_prof_end(ctx, ND_PROF_GNSILU, 0, t0);
}

void nd_groupnorm_backward(nd_ctx *ctx, float *dinp, float *dgamma, float *dbeta,
                           const float *dout, const float *inp, const float *mean,
                           const float *rstd, const float *gamma, const float *beta, int B,
                           int C, int P, int G, int silu)
{
    ND_ASSERT(G > 0 && C % G == 0);
    uint64_t t0 = nd_prof_begin(ctx);
    size_t gs = (size_t)(C / G) * P;
    /* Per (image, channel): Σ dz·x̂ and Σ dz, summed over images below in image order
     * (the same bits for any thread count). dz is the gradient at the GroupNorm output,
     * i.e. after undoing the SiLU. Per thread: dz of one group (cg·P). */
    int nt = team(ctx, B * G);
    size_t dzn = (gs + 15) & ~(size_t)15;
    float *ws = nd_ctx_scratch(ctx, (size_t)2 * B * C + dzn * nt);
    float *sg = ws, *sb = ws + (size_t)B * C, *dzall = ws + (size_t)2 * B * C;
    gn_args A = gn_shape(inp, gamma, beta, C, P, G, silu);
    A.dinp = dinp, A.dout = dout, A.sg = sg, A.sb = sb, A.cmean = mean, A.crstd = rstd;
    void (*bwd)(const gn_args *, int, float *) =
        ctx->cpu >= ND_CPU_AVX512 ? gn_bwd_avx512 : gn_bwd_generic;
#pragma omp parallel num_threads(nt)
    {
        float *dz = dzall + dzn * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int ng = 0; ng < B * G; ng++) bwd(&A, ng, dz);
    }
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            if (dgamma) dgamma[c] += sg[(size_t)n * C + c];
            if (dbeta) dbeta[c] += sb[(size_t)n * C + c];
        }
    nd_prof_end(ctx, ND_PROF_GNSILU, 1, t0);
}

/* ------------------------------------------------------------------------------------ */
/* Elementwise and data movement                                                          */
/* ------------------------------------------------------------------------------------ */

void nd_silu_forward(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = inp[i] / (1.0f + nd_expf(-inp[i]));
}

void nd_silu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + nd_expf(-inp[i]));
        dinp[i] += dout[i] * s * (1.0f + inp[i] * (1.0f - s));
    }
}

void nd_upsample2_forward(nd_ctx *ctx, float *out, const float *inp, int B, int C, int H, int W)
{
    uint64_t t0 = nd_prof_begin(ctx);
    int nt = team(ctx, B * C);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int bc = 0; bc < B * C; bc++) {
        const float *restrict x = inp + (size_t)bc * H * W;
        float *restrict y = out + (size_t)bc * 4 * H * W;
        for (int iy = 0; iy < H; iy++) {
            float *restrict r0 = y + (size_t)(2 * iy) * 2 * W, *restrict r1 = r0 + 2 * W;
            for (int ix = 0; ix < W; ix++) {
                float v = x[(size_t)iy * W + ix];
                r0[2 * ix] = v;
                r0[2 * ix + 1] = v;
            }
            memcpy(r1, r0, sizeof(float) * 2 * W);
        }
    }
    nd_prof_end(ctx, ND_PROF_UPCAT, 0, t0);
}

void nd_upsample2_backward(nd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H,
                           int W)
{
    uint64_t t0 = nd_prof_begin(ctx);
    int nt = team(ctx, B * C);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int bc = 0; bc < B * C; bc++) {
        float *restrict dx = dinp + (size_t)bc * H * W;
        const float *restrict dy = dout + (size_t)bc * 4 * H * W;
        for (int iy = 0; iy < H; iy++) {
            const float *r0 = dy + (size_t)(2 * iy) * 2 * W, *r1 = r0 + 2 * W;
            for (int ix = 0; ix < W; ix++)
                dx[(size_t)iy * W + ix] +=
                    (r0[2 * ix] + r0[2 * ix + 1]) + (r1[2 * ix] + r1[2 * ix + 1]);
        }
    }
    nd_prof_end(ctx, ND_PROF_UPCAT, 1, t0);
}

void nd_concat_forward(nd_ctx *ctx, float *out, const float *a, const float *b, int B, int C1,
                       int C2, int P)
{
    uint64_t t0 = nd_prof_begin(ctx);
    size_t na = (size_t)C1 * P, nb = (size_t)C2 * P;
    for (int n = 0; n < B; n++) {
        memcpy(out + (size_t)n * (na + nb), a + (size_t)n * na, sizeof(float) * na);
        memcpy(out + (size_t)n * (na + nb) + na, b + (size_t)n * nb, sizeof(float) * nb);
    }
    nd_prof_end(ctx, ND_PROF_UPCAT, 0, t0);
}

void nd_concat_backward(nd_ctx *ctx, float *da, float *db, const float *dout, int B, int C1,
                        int C2, int P)
{
    uint64_t t0 = nd_prof_begin(ctx);
    size_t na = (size_t)C1 * P, nb = (size_t)C2 * P;
    int nt = team(ctx, B);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int n = 0; n < B; n++) {
        const float *restrict d = dout + (size_t)n * (na + nb);
        if (da) {
            float *restrict x = da + (size_t)n * na;
            for (size_t i = 0; i < na; i++) x[i] += d[i];
        }
        if (db) {
            float *restrict x = db + (size_t)n * nb;
            for (size_t i = 0; i < nb; i++) x[i] += d[na + i];
        }
    }
    nd_prof_end(ctx, ND_PROF_UPCAT, 1, t0);
}

void nd_add_channel_forward(float *h, const float *e, int B, int C, int P)
{
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            float v = e[(size_t)n * C + c];
            float *restrict x = h + ((size_t)n * C + c) * P;
            for (int p = 0; p < P; p++) x[p] += v;
        }
}

void nd_add_channel_backward(float *de, const float *dh, int B, int C, int P)
{
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            const float *restrict x = dh + ((size_t)n * C + c) * P;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int p = 0; p < P; p++) s += x[p];
            de[(size_t)n * C + c] += s;
        }
}

/* ------------------------------------------------------------------------------------ */
/* Attention core                                                                        */
/* ------------------------------------------------------------------------------------ */

void nd_attention_forward(nd_ctx *ctx, float *out, float *att, const float *qkv, int B, int C,
                          int P)
{
    uint64_t t0 = nd_prof_begin(ctx);
    float scale = 1.0f / sqrtf((float)C);
    int nt = team(ctx, B);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int n = 0; n < B; n++) {
        const float *q = qkv + (size_t)n * 3 * C * P, *k = q + (size_t)C * P,
                    *v = k + (size_t)C * P;
        float *A = att + (size_t)n * P * P;
        /* S (P,P) = scale · qᵀ (P,C) · k (C,P) */
        nd_sgemm(1, 0, P, P, C, scale, q, P, k, P, 0.0f, A, P);
        for (int i = 0; i < P; i++) {
            float *restrict r = A + (size_t)i * P;
            float mx = r[0];
#pragma omp simd reduction(max : mx)
            for (int j = 1; j < P; j++) mx = r[j] > mx ? r[j] : mx;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < P; j++) {
                r[j] = nd_expf(r[j] - mx);
                s += r[j];
            }
            float inv = 1.0f / s;
            for (int j = 0; j < P; j++) r[j] *= inv;
        }
        /* out (C,P) = v (C,P) · Aᵀ (P,P) */
        nd_sgemm(0, 1, C, P, P, 1.0f, v, P, A, P, 0.0f, out + (size_t)n * C * P, P);
    }
    nd_prof_end(ctx, ND_PROF_ATTN, 0, t0);
}

void nd_attention_backward(nd_ctx *ctx, float *dqkv, const float *dout, const float *qkv,
                           const float *att, int B, int C, int P)
{
    uint64_t t0 = nd_prof_begin(ctx);
    float scale = 1.0f / sqrtf((float)C);
    int nt = team(ctx, B);
    float *ws = nd_ctx_scratch(ctx, (size_t)P * P * nt);
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), lo, hi;
        split(B, nt, t, &lo, &hi);
        float *dS = ws + (size_t)P * P * t;
        for (int n = lo; n < hi; n++) {
            const float *q = qkv + (size_t)n * 3 * C * P, *k = q + (size_t)C * P,
                        *v = k + (size_t)C * P;
            float *dq = dqkv + (size_t)n * 3 * C * P, *dk = dq + (size_t)C * P,
                  *dv = dk + (size_t)C * P;
            const float *A = att + (size_t)n * P * P, *dy = dout + (size_t)n * C * P;
            /* dv (C,P) += dy (C,P) · A (P,P) */
            nd_sgemm(0, 0, C, P, P, 1.0f, dy, P, A, P, 1.0f, dv, P);
            /* dA (P,P) = dyᵀ (P,C) · v (C,P) */
            nd_sgemm(1, 0, P, P, C, 1.0f, dy, P, v, P, 0.0f, dS, P);
            /* softmax backward, then the scale: dS = scale·A⊙(dA − Σ_j dA⊙A) */
            for (int i = 0; i < P; i++) {
                float *restrict d = dS + (size_t)i * P;
                const float *restrict a = A + (size_t)i * P;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int j = 0; j < P; j++) s += d[j] * a[j];
                for (int j = 0; j < P; j++) d[j] = scale * a[j] * (d[j] - s);
            }
            /* dq (C,P) += k (C,P) · dSᵀ; dk (C,P) += q (C,P) · dS */
            nd_sgemm(0, 1, C, P, P, 1.0f, k, P, dS, P, 1.0f, dq, P);
            nd_sgemm(0, 0, C, P, P, 1.0f, q, P, dS, P, 1.0f, dk, P);
        }
    }
    nd_prof_end(ctx, ND_PROF_ATTN, 1, t0);
}

/* ------------------------------------------------------------------------------------ */
/* Embeddings and loss                                                                    */
/* ------------------------------------------------------------------------------------ */

void nd_timestep_embedding(float *out, const float *t, int B, int D)
{
    ND_ASSERT(D % 2 == 0);
    int half = D / 2;
    for (int n = 0; n < B; n++)
        for (int i = 0; i < half; i++) {
            /* In double: t·f reaches 10^3 rad, where float phase error would show. */
            double f = exp(-log(10000.0) * (double)i / (double)half);
            double a = (double)t[n] * f;
            out[(size_t)n * D + i] = (float)sin(a);
            out[(size_t)n * D + half + i] = (float)cos(a);
        }
}

void nd_class_embedding_forward(float *out, const float *table, const int *y, int B, int K,
                                int D)
{
    for (int n = 0; n < B; n++) {
        ND_ASSERT(y[n] >= 0 && y[n] < K);
        memcpy(out + (size_t)n * D, table + (size_t)y[n] * D, sizeof(float) * D);
    }
}

void nd_class_embedding_backward(float *dtable, const float *dout, const int *y, int B, int K,
                                 int D)
{
    for (int n = 0; n < B; n++) {
        ND_ASSERT(y[n] >= 0 && y[n] < K);
        for (int i = 0; i < D; i++) dtable[(size_t)y[n] * D + i] += dout[(size_t)n * D + i];
    }
}

/* Row u's two neighbours and the weight of the upper one. */
static int lerp_row(float u, int K, float *f)
{
    ND_ASSERT(u >= 0.0f && u <= (float)(K - 1));
    int i = (int)u;
    if (i > K - 2) i = K - 2;
    *f = u - (float)i;
    return i;
}

void nd_lerp_embedding_forward(float *out, const float *table, const float *u, int B, int K,
                               int D)
{
    for (int n = 0; n < B; n++) {
        float f;
        int i = lerp_row(u[n], K, &f);
        const float *a = table + (size_t)i * D, *b = a + D;
        for (int j = 0; j < D; j++) out[(size_t)n * D + j] = a[j] + f * (b[j] - a[j]);
    }
}

void nd_lerp_embedding_backward(float *dtable, const float *dout, const float *u, int B, int K,
                                int D)
{
    for (int n = 0; n < B; n++) {
        float f;
        int i = lerp_row(u[n], K, &f);
        float *a = dtable + (size_t)i * D, *b = a + D;
        for (int j = 0; j < D; j++) {
            a[j] += (1.0f - f) * dout[(size_t)n * D + j];
            b[j] += f * dout[(size_t)n * D + j];
        }
    }
}

float nd_mse_forward(const float *out, const float *target, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - target[i];
        s += d * d;
    }
    return (float)(s / (double)n);
}

void nd_mse_backward_part(float *dout, const float *out, const float *target, size_t n,
                          size_t total, float dloss)
{
    float k = 2.0f * dloss / (float)total;
    for (size_t i = 0; i < n; i++) dout[i] = k * (out[i] - target[i]);
}

void nd_mse_backward(float *dout, const float *out, const float *target, size_t n, float dloss)
{
    nd_mse_backward_part(dout, out, target, n, n, dloss);
}
