/*
 * test_model_cpu.c — every kernel level this build and CPU have (nn.h, enum nd_cpu)
 * gives the generic path's results on the same inputs: 3×3 convolutions (output, input,
 * weight and bias gradients) at shapes each kernel takes or declines, and a whole small
 * U-Net forward and backward. Levels the CPU lacks are skipped (the generic path alone
 * then runs); CI also runs the model tests with ND_CPU=generic.
 *
 * Tolerances, per tensor |level − generic| <= atol + rtol·max|generic| (fixture.h):
 *   float32 kernels: one convolution 1e-5 + 1e-5 (the same products summed in another
 *   order); the U-Net, whose GroupNorms rescale those differences, 1e-5 + 1e-4;
 *   bfloat16 products (nn.h: ~1e-2 of a typical term): one convolution 1e-2 relative,
 *   the U-Net's output 3e-2.
 * Also: ND_CPU names a level and forces it, and is refused when it names none or one
 * this build or CPU lacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "nn.h"

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float *rnd(size_t n, float scale)
{ /* uniform [-scale, scale) */
    float *p = malloc(sizeof(float) * (n ? n : 1));
    CHECK(p);
    for (size_t i = 0; i < n; i++) {
        rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
        p[i] = scale * (float)((double)(rs >> 11) * 0x1.0p-52 - 1.0);
    }
    return p;
}
static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    CHECK(p);
    return p;
}

/* A context at level, or NULL when this build or CPU does not reach it. */
static nd_ctx *ctx_at(int threads, int level)
{
    nd_ctx *ctx = nd_ctx_new(threads);
    CHECK(ctx);
    if (nd_ctx_set_cpu(ctx, level) == level) return ctx;
    nd_ctx_free(ctx);
    return NULL;
}

/* --- one convolution ------------------------------------------------------------------ */

typedef struct conv_out {
    float *y, *dx, *dw, *db;
} conv_out;

static conv_out conv_run(nd_ctx *ctx, const float *x, const float *w, const float *b,
                         const float *dy, int B, int C, int OC, int H, int W)
{
    conv_out o = {zeros((size_t)B * OC * H * W), zeros((size_t)B * C * H * W),
                  zeros((size_t)OC * C * 9), zeros(OC)};
    nd_conv2d_forward(ctx, o.y, x, w, b, B, C, H, W, OC, 3, 1);
    nd_conv2d_backward(ctx, o.dx, o.dw, o.db, dy, x, w, B, C, H, W, OC, 3, 1);
    return o;
}

static void conv_free(conv_out *o) { free(o->y), free(o->dx), free(o->dw), free(o->db); }

static void test_conv(int C, int OC, int H, int W)
{
    enum { B = 3 };
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
    float *x = rnd(nx, 1), *w = rnd(nw, 0.5f), *b = rnd(OC, 0.5f), *dy = rnd(ny, 1);
    nd_ctx *gen = ctx_at(1, ND_CPU_GENERIC);
    conv_out ref = conv_run(gen, x, w, b, dy, B, C, OC, H, W);
    char what[96];
    for (int level = ND_CPU_GENERIC + 1; level < ND_CPU_N; level++) {
        nd_ctx *ctx = ctx_at(1, level);
        if (!ctx) continue;
        int bf = level == ND_CPU_AVX512BF16;
        CHECK_EQ(nd_ctx_set_bf16(ctx, bf), bf);
        conv_out o = conv_run(ctx, x, w, b, dy, B, C, OC, H, W);
        /* bf16 products: the output and the input gradient (the weight gradient stays
         * float32) */
        double rtol = bf ? 1e-2 : 1e-5, atol = bf ? 0 : 1e-5;
#define CMP(field, n, at, rt)                                                                  \
    snprintf(what, sizeof what, "%s conv %d->%d %dx%d: " #field, nd_cpu_name(level), C, OC, H, \
             W);                                                                               \
    check_close(what, o.field, ref.field, n, at, rt)
        CMP(y, ny, atol, rtol);
        CMP(dx, nx, atol, rtol);
        CMP(dw, nw, 1e-5, 1e-5);
        CMP(db, (size_t)OC, 1e-5, 1e-5);
#undef CMP
        /* one image on two threads takes the split-by-output-block path */
        nd_ctx *two = ctx_at(2, level);
        CHECK(two);
        float *y1 = zeros(ny / B);
        nd_conv2d_forward(two, y1, x, w, b, 1, C, H, W, OC, 3, 1);
        snprintf(what, sizeof what, "%s conv %d->%d: one image vs batch", nd_cpu_name(level), C,
                 OC);
        check_close(what, y1, ref.y, ny / B, 1e-5, 1e-5);
        free(y1);
        nd_ctx_free(two);
        conv_free(&o);
        nd_ctx_free(ctx);
    }
    conv_free(&ref);
    nd_ctx_free(gen);
    free(x), free(w), free(b), free(dy);
}

/* --- the whole U-Net ------------------------------------------------------------------ */

typedef struct net_out {
    float *out, *dx, *grads;
} net_out;

static net_out net_run(nd_ctx *ctx, nd_unet *m, const float *x, const float *dout, int B)
{
    const nd_unet_config *c = nd_unet_cfg(m);
    size_t n = (size_t)B * c->channels * c->L * c->L, np = nd_unet_num_params(m);
    net_out o = {zeros(n), zeros(n), zeros(np)};
    float t[4] = {3, 70, 400, 990};
    int y[4] = {0, 1, 2, 3};
    nd_unet_forward(m, ctx, o.out, x, t, y, B);
    nd_unet_zero_grad(m);
    nd_unet_backward(m, ctx, o.dx, dout);
    memcpy(o.grads, nd_unet_grads(m), sizeof(float) * np);
    return o;
}

static void test_unet(void)
{
    /* 8 and 16 channels: the direct kernels take every 3×3 stride-1 convolution but the
     * first (2 + 2 coordinate planes in) and the input gradient of the last (4 out) */
    nd_unet_config uc = (nd_unet_config){.channels = 2,
                                         .L = 16,
                                         .base = 8,
                                         .levels = 2,
                                         .mult = {1, 2},
                                         .res_blocks = 1,
                                         .attn_min_res = 8,
                                         .groups = 4,
                                         .emb_dim = 16,
                                         .max_classes = 3,
                                         .coords = 1};
    enum { B = 4 };
    nd_unet *m = nd_unet_new(&uc, B, 11);
    CHECK(m);
    size_t n = (size_t)B * uc.channels * uc.L * uc.L;
    float *x = rnd(n, 1), *dout = rnd(n, 1e-2f);
    nd_ctx *gen = ctx_at(2, ND_CPU_GENERIC);
    net_out ref = net_run(gen, m, x, dout, B);
    for (int level = ND_CPU_GENERIC + 1; level < ND_CPU_N; level++) {
        nd_ctx *ctx = ctx_at(2, level);
        if (!ctx) continue;
        int bf = level == ND_CPU_AVX512BF16;
        CHECK_EQ(nd_ctx_set_bf16(ctx, bf), bf);
        net_out o = net_run(ctx, m, x, dout, B);
        char what[64];
        snprintf(what, sizeof what, "%s unet: out", nd_cpu_name(level));
        check_close(what, o.out, ref.out, n, bf ? 0 : 1e-5, bf ? 3e-2 : 1e-4);
        if (!bf) { /* bf16 is meant for sampling: the forward is what it is held to */
            snprintf(what, sizeof what, "%s unet: dx", nd_cpu_name(level));
            check_close(what, o.dx, ref.dx, n, 1e-5, 1e-4);
            for (size_t i = 0; i < nd_unet_num_tensors(m); i++) {
                const char *name;
                size_t off, numel;
                nd_unet_tensor(m, i, &name, &off, &numel);
                snprintf(what, sizeof what, "%s unet: grad %s", nd_cpu_name(level), name);
                check_close(what, o.grads + off, ref.grads + off, numel, 1e-5, 1e-4);
            }
        }
        free(o.out), free(o.dx), free(o.grads);
        nd_ctx_free(ctx);
    }
    free(ref.out), free(ref.dx), free(ref.grads);
    nd_ctx_free(gen);
    nd_unet_free(m);
    free(x), free(dout);
}

/* --- ND_CPU ----------------------------------------------------------------------------- */

static void test_env(void)
{
    char *outer = getenv("ND_CPU") ? strdup(getenv("ND_CPU")) : NULL;
    nd_error e = {0};
    unsetenv("ND_CPU");
    int best = nd_cpu_select(&e);
    CHECK(best >= ND_CPU_GENERIC && best < ND_CPU_N);
    CHECK(nd_cpu_supported(best) && nd_cpu_compiled(best));
    for (int level = 0; level < ND_CPU_N; level++) {
        setenv("ND_CPU", nd_cpu_name(level), 1);
        if (level <= best) {
            CHECK_EQ(nd_cpu_select(&e), level);
            nd_ctx *ctx = nd_ctx_new(1);
            CHECK(ctx);
            CHECK_EQ(nd_ctx_set_cpu(ctx, ND_CPU_N - 1), level); /* never raised */
            nd_ctx_free(ctx);
        } else {
            CHECK_EQ(nd_cpu_select(&e), ND_ECONFIG);
            CHECK_CONTAINS(e.msg, "has no");
            CHECK(nd_ctx_new(1) == NULL);
        }
    }
    setenv("ND_CPU", "avx2", 1);
    CHECK_EQ(nd_cpu_select(&e), ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "ND_CPU=avx2: expected generic, avx512 or avx512bf16");
    CHECK(nd_ctx_new(1) == NULL);
    if (outer) setenv("ND_CPU", outer, 1);
    else unsetenv("ND_CPU");
    free(outer);
}

int main(void)
{
    test_env();
    nd_error e = {0};
    int level = nd_cpu_select(&e);
    CHECK(level >= 0);
    printf("test_model_cpu: generic against every level up to %s\n", nd_cpu_name(level));
    test_conv(3, 4, 7, 5);   /* no kernel takes it: every level runs im2col */
    test_conv(8, 16, 5, 19); /* 8k channels both ways, partial and odd vectors */
    test_conv(16, 8, 3, 33); /* the weight gradient's 16-channel blocks decline 8 */
    test_conv(8, 8, 4, 16);
    test_conv(40, 48, 9, 17); /* weight gradient: a 32- and a 16-channel block */
    test_conv(64, 8, 4, 4);   /* input channels in two chunks of the forward kernel */
    test_unet();
    printf("test_model_cpu: ok\n");
    return 0;
}
