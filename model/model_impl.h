/*
 * model_impl.h — private to libnd_model: the context's layout, scratch memory, the
 * profile timer and a vectorisable exp for SiLU and softmax.
 */
#ifndef ND_MODEL_IMPL_H
#define ND_MODEL_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "nd.h"

struct nd_ctx {
    int threads;
    int profile;
    float *scratch; /* 64-byte aligned, scratch_n floats, grown by nd_ctx_scratch */
    size_t scratch_n;
    double prof_s[ND_PROF_N][2];
};

/* At least n floats of scratch (contents undefined), valid until the next call. Only
 * from outside parallel regions. Aborts on -ENOMEM (a training step cannot go on). */
float *nd_ctx_scratch(nd_ctx *ctx, size_t n);

/* Profile: t0 = nd_prof_begin(ctx); ...; nd_prof_end(ctx, kind, dir, t0). */
static inline uint64_t nd_prof_begin(const nd_ctx *ctx) { return ctx->profile ? nd_now_ns() : 0; }
static inline void nd_prof_end(nd_ctx *ctx, int kind, int dir, uint64_t t0) {
    if (ctx->profile) ctx->prof_s[kind][dir] += (double)(nd_now_ns() - t0) * 1e-9;
}

/* exp(x) to ~2 ulp for x in [-87, 88] (clamped outside), branch-free so that GCC
 * vectorises loops that call it (libm's expf does not vectorise without -ffast-math).
 * Cody–Waite reduction x = n·ln2 + r, |r| <= ln2/2, then a degree-6 polynomial. */
static inline float nd_expf(float x) {
    x = fminf(fmaxf(x, -87.0f), 88.0f);
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
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float nd_sigmoidf(float x) { return 1.0f / (1.0f + nd_expf(-x)); }

#endif
