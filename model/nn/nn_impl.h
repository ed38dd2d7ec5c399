/*
 * nn_impl.h — private to libnd_nn: the context's layout, scratch memory, the
 * profile timer and a vectorisable exp for SiLU and softmax.
 */
#ifndef ND_NN_IMPL_H
#define ND_NN_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn.h"
#include "nd.h"

struct nd_ctx {
    int threads;
    int profile;
    int cpu;        /* kernel level (enum nd_cpu): >= ND_CPU_AVX512 runs 3×3 stride-1
                       convolutions through conv_direct.c where the shape fits */
    int bf16;       /* ... and their forward and input-gradient products in bfloat16 */
    float *scratch; /* 64-byte aligned, scratch_n floats, grown by nd_ctx_scratch */
    size_t scratch_n;
    double prof_s[ND_PROF_N][2];
};

/* The attribute of a function's AVX-512 copy (layers.c: loops that vectorise far better
 * with it), called only at kernel level ND_CPU_AVX512 and above; without a compiler that
 * targets AVX-512, a second baseline copy. */
#if ND_NN_AVX512
#define ND_TARGET_AVX512 __attribute__((target("avx512f")))
#else
#define ND_TARGET_AVX512
#endif

/* At least n floats of scratch (contents undefined), valid until the next call. Only
 * from outside parallel regions. Aborts on -ENOMEM (a training step cannot go on). */
float *nd_ctx_scratch(nd_ctx *ctx, size_t n);

/* y (M) = alpha·A·x + beta·y, A row-major M×N with leading dimension lda (cblas_sgemv):
 * the linear layer's product, one batch row at a time (layers.c says why). */
void nd_sgemv(int M, int N, float alpha, const float *A, int lda, const float *x, float beta,
              float *y);

/* 3×3 stride-1 direct convolution (conv_direct.c; AVX-512: only at kernel level
 * ND_CPU_AVX512 and above). ok: whether it handles a shape (input channels C, output channels
 * OC). pack: weights (OC,C,3,3) into the kernel's blocked layout, OC·C·9 floats (flip: for the
 * input gradient, see there). image: one image, pad is scratch of C·(H+2)·(W+2) floats. */
int nd_conv3_direct_ok(int C, int OC);
void nd_conv3_direct_pack(float *wt, const float *w, int C, int OC, int flip);
void nd_conv3_direct_image(float *out, float *pad, const float *inp, const float *wt,
                           const float *bias, int C, int H, int W, int OC, int accumulate);
/* The same in two parts, for parallel loops over output blocks within an image: the
 * padded copy, then output channels [8·ob, 8·ob+8). */
void nd_conv3_direct_pad(float *pad, const float *inp, int C, int H, int W);
void nd_conv3_direct_block(float *out, const float *pad, const float *wt, const float *bias,
                           int C, int H, int W, int ob, int accumulate);

/* bfloat16 forward kernel (conv_bf16.c; AVX512-BF16: only at kernel level
 * ND_CPU_AVX512BF16): pack into OC·((C+1)/2)·9 u32; pad is ((C+1)/2)·(H+2)·(W+2) u32 of
 * scratch. */
void nd_conv3_bf16_pack(uint32_t *wt, const float *w, int C, int OC, int flip);
void nd_conv3_bf16_image(float *out, uint32_t *pad, const float *inp, const uint32_t *wt,
                         const float *bias, int C, int H, int W, int OC, int accumulate);

/* Weight gradient of one image into dwt (C·9, OC) (transposed!) and db (OC), both
 * accumulated; pad: C·(H+2)·(W+2) and doutT: H·W·OC floats of scratch. */
int nd_conv3_direct_dw_ok(int C, int OC);
void nd_conv3_direct_dw_image(float *dwt, float *db, float *pad, float *doutT, const float *inp,
                              const float *dout, int C, int H, int W, int OC);

/* Profile: t0 = nd_prof_begin(ctx); ...; nd_prof_end(ctx, kind, dir, t0). */
static inline uint64_t nd_prof_begin(const nd_ctx *ctx)
{
    return ctx->profile ? nd_now_ns() : 0;
}
static inline void nd_prof_end(nd_ctx *ctx, int kind, int dir, uint64_t t0)
{
    if (ctx->profile) ctx->prof_s[kind][dir] += (double)(nd_now_ns() - t0) * 1e-9;
}

/* exp(x) to ~2 ulp for x in [-87, 88] (clamped outside), branch-free so that GCC
 * vectorises loops that call it (libm's expf does not vectorise without -ffast-math).
 * Cody–Waite reduction x = n·ln2 + r, |r| <= ln2/2, then a degree-6 polynomial. */
static inline float nd_expf(float x)
{
    x = x < -87.0f ? -87.0f : x; /* not fminf/fmaxf: GCC leaves those as libm calls */
    x = x > 88.0f ? 88.0f : x;
    float n = rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* NaN in, NaN out (through p): converting a NaN n to an integer is undefined */
    int32_t bits = ((n == n ? (int32_t)n : 0) + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Class embedding (nn.h) at fractional rows u (B, each in [0, K−1]): the rows either side of u
 * mixed linearly, so that a continuous input (a guidance scale) picks a point between learnt
 * rows; the backward splits dout between those two rows alike. */
void nd_lerp_embedding_forward(float *out, const float *table, const float *u, int B, int K,
                               int D);
void nd_lerp_embedding_backward(float *dtable, const float *dout, const float *u, int B, int K,
                                int D);

static inline float nd_sigmoidf(float x) { return 1.0f / (1.0f + nd_expf(-x)); }

#endif
