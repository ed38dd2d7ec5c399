/*
 * test_model_torch.c — parity of the model core with PyTorch, from the fixtures in
 * tests/fixtures/model (written by scripts/torch_reference.py fixtures; CI has no torch
 * and only reads them).
 *
 * layers.bin: one forward + backward per layer type with a random upstream gradient.
 * unet_small.bin: a small unet-ref (every layer type, 39k parameters): the output, the
 * loss, every parameter gradient and one clipped AdamW step.
 *
 * Tolerances (|C − torch| <= atol + rtol·max|torch| per tensor): layers 1e-5 + 1e-4;
 * U-Net output and loss 1e-5 + 2e-4, gradients 1e-6 + 2e-3 (the float sums of two
 * BLAS libraries differ in order through ~40 layers), AdamW step 3e-5 absolute.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "nn.h"

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    CHECK(p);
    return p;
}

static const float *V(const fixture *fx, const char *pfx, const char *name, size_t n)
{
    char full[96];
    snprintf(full, sizeof full, "%s.%s", pfx, name);
    const fx_tensor *t = fx_get(fx, full);
    if (n && t->n != n) CHECK_FAIL_("%s: %u elements, expected %zu", full, t->n, n);
    return t->v;
}

#define LAT 1e-5
#define LRT 1e-4

static void layer_conv(nd_ctx *ctx, const fixture *fx, const char *pfx, int k, int s)
{
    int B = 2, C = 3, H = 7, W = 6, OC = 4, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    size_t nx = (size_t)B * C * H * W, nw = (size_t)OC * C * k * k,
           ny = (size_t)B * OC * Ho * Wo;
    const float *x = V(fx, pfx, "in0", nx), *w = V(fx, pfx, "p0", nw),
                *b = V(fx, pfx, "p1", OC);
    const float *dy = V(fx, pfx, "dout", ny);
    float *y = zeros(ny), *dx = zeros(nx), *dw = zeros(nw), *db = zeros(OC);
    nd_conv2d_forward(ctx, y, x, w, b, B, C, H, W, OC, k, s);
    nd_conv2d_backward(ctx, dx, dw, db, dy, x, w, B, C, H, W, OC, k, s);
    char what[64];
    snprintf(what, sizeof what, "%s out", pfx);
    check_close(what, y, V(fx, pfx, "out", ny), ny, LAT, LRT);
    snprintf(what, sizeof what, "%s dx", pfx);
    check_close(what, dx, V(fx, pfx, "din0", nx), nx, LAT, LRT);
    snprintf(what, sizeof what, "%s dw", pfx);
    check_close(what, dw, V(fx, pfx, "dp0", nw), nw, LAT, LRT);
    snprintf(what, sizeof what, "%s db", pfx);
    check_close(what, db, V(fx, pfx, "dp1", OC), OC, LAT, LRT);
    free(y), free(dx), free(dw), free(db);
}

static void layer_gn(nd_ctx *ctx, const fixture *fx, const char *pfx, int G, int silu)
{
    int B = 2, C = 6, P = 20;
    size_t n = (size_t)B * C * P;
    const float *x = V(fx, pfx, "in0", n), *g = V(fx, pfx, "p0", C), *b = V(fx, pfx, "p1", C);
    float *y = zeros(n), *dx = zeros(n), *dg = zeros(C), *db = zeros(C);
    float mean[8], rstd[8];
    nd_groupnorm_forward(ctx, y, mean, rstd, x, g, b, B, C, P, G, silu);
    nd_groupnorm_backward(ctx, dx, dg, db, V(fx, pfx, "dout", n), x, mean, rstd, g, b, B, C, P,
                          G, silu);
    check_close(pfx, y, V(fx, pfx, "out", n), n, LAT, LRT);
    check_close(pfx, dx, V(fx, pfx, "din0", n), n, LAT, LRT);
    check_close(pfx, dg, V(fx, pfx, "dp0", C), C, LAT, LRT);
    check_close(pfx, db, V(fx, pfx, "dp1", C), C, LAT, LRT);
    free(y), free(dx), free(dg), free(db);
}

/* The attention block as unet.c composes it: x + proj(attention(qkv(GN(x)))). */
static void layer_attn(nd_ctx *ctx, const fixture *fx)
{
    int B = 2, C = 8, H = 3, W = 4, P = H * W, G = 2;
    size_t n = (size_t)B * C * P;
    const float *x = V(fx, "attn", "in0", n), *gw = V(fx, "attn", "p0", C),
                *gb = V(fx, "attn", "p1", C), *qw = V(fx, "attn", "p2", 3 * C * C),
                *qb = V(fx, "attn", "p3", 3 * C), *pw = V(fx, "attn", "p4", C * C),
                *pb = V(fx, "attn", "p5", C), *dy = V(fx, "attn", "dout", n);
    float *hn = zeros(n), *qkv = zeros(3 * n), *att = zeros((size_t)B * P * P), *o = zeros(n);
    float *y = zeros(n), mean[4], rstd[4];
    nd_groupnorm_forward(ctx, hn, mean, rstd, x, gw, gb, B, C, P, G, 0);
    nd_conv2d_forward(ctx, qkv, hn, qw, qb, B, C, H, W, 3 * C, 1, 1);
    nd_attention_forward(ctx, o, att, qkv, B, C, P);
    nd_conv2d_forward(ctx, y, o, pw, pb, B, C, H, W, C, 1, 1);
    for (size_t i = 0; i < n; i++) y[i] += x[i];
    check_close("attn out", y, V(fx, "attn", "out", n), n, LAT, LRT);
    float *dx = zeros(n), *dgw = zeros(C), *dgb = zeros(C), *dqw = zeros(3 * C * C),
          *dqb = zeros(3 * C), *dpw = zeros(C * C), *dpb = zeros(C), *dO = zeros(n),
          *dqkv = zeros(3 * n), *dhn = zeros(n);
    memcpy(dx, dy, sizeof(float) * n);
    nd_conv2d_backward(ctx, dO, dpw, dpb, dy, o, pw, B, C, H, W, C, 1, 1);
    nd_attention_backward(ctx, dqkv, dO, qkv, att, B, C, P);
    nd_conv2d_backward(ctx, dhn, dqw, dqb, dqkv, hn, qw, B, C, H, W, 3 * C, 1, 1);
    nd_groupnorm_backward(ctx, dx, dgw, dgb, dhn, x, mean, rstd, gw, gb, B, C, P, G, 0);
    check_close("attn dx", dx, V(fx, "attn", "din0", n), n, LAT, LRT);
    check_close("attn dgn.w", dgw, V(fx, "attn", "dp0", C), C, LAT, LRT);
    check_close("attn dgn.b", dgb, V(fx, "attn", "dp1", C), C, LAT, LRT);
    check_close("attn dqkv.w", dqw, V(fx, "attn", "dp2", 3 * C * C), 3 * C * C, LAT, LRT);
    check_close("attn dqkv.b", dqb, V(fx, "attn", "dp3", 3 * C), 3 * C, LAT, LRT);
    check_close("attn dproj.w", dpw, V(fx, "attn", "dp4", C * C), C * C, LAT, LRT);
    check_close("attn dproj.b", dpb, V(fx, "attn", "dp5", C), C, LAT, LRT);
    free(hn), free(qkv), free(att), free(o), free(y), free(dx), free(dgw), free(dgb);
    free(dqw), free(dqb), free(dpw), free(dpb), free(dO), free(dqkv), free(dhn);
}

static void test_layers(nd_ctx *ctx)
{
    fixture fx = fx_load(ND_MODEL_FIXTURES "/layers.bin");
    layer_conv(ctx, &fx, "conv3s1", 3, 1);
    layer_conv(ctx, &fx, "conv3s2", 3, 2);
    layer_conv(ctx, &fx, "conv1", 1, 1);
    layer_gn(ctx, &fx, "gnsilu", 3, 1);
    layer_gn(ctx, &fx, "groupnorm", 2, 0);

    /* linear (5,7) -> (5,3) */
    const float *x = V(&fx, "linear", "in0", 35), *w = V(&fx, "linear", "p0", 21),
                *b = V(&fx, "linear", "p1", 3), *dy = V(&fx, "linear", "dout", 15);
    float y[15], dx[35] = {0}, dw[21] = {0}, db[3] = {0};
    nd_linear_forward(ctx, y, x, w, b, 5, 7, 3);
    nd_linear_backward(ctx, dx, dw, db, dy, x, w, 5, 7, 3);
    check_close("linear out", y, V(&fx, "linear", "out", 15), 15, LAT, LRT);
    check_close("linear dx", dx, V(&fx, "linear", "din0", 35), 35, LAT, LRT);
    check_close("linear dw", dw, V(&fx, "linear", "dp0", 21), 21, LAT, LRT);
    check_close("linear db", db, V(&fx, "linear", "dp1", 3), 3, LAT, LRT);

    /* upsample (2,3,3,4) -> (2,3,6,8) */
    float up[2 * 3 * 6 * 8], dup[2 * 3 * 3 * 4] = {0};
    nd_upsample2_forward(ctx, up, V(&fx, "upsample", "in0", 72), 2, 3, 3, 4);
    nd_upsample2_backward(ctx, dup, V(&fx, "upsample", "dout", 288), 2, 3, 3, 4);
    check_close("upsample out", up, V(&fx, "upsample", "out", 288), 288, LAT, LRT);
    check_close("upsample dx", dup, V(&fx, "upsample", "din0", 72), 72, LAT, LRT);

    /* concat (2,3,4,4) + (2,5,4,4) */
    float cat[2 * 8 * 16], da[2 * 3 * 16] = {0}, dbb[2 * 5 * 16] = {0};
    nd_concat_forward(ctx, cat, V(&fx, "concat", "in0", 96), V(&fx, "concat", "in1", 160), 2, 3,
                      5, 16);
    nd_concat_backward(ctx, da, dbb, V(&fx, "concat", "dout", 256), 2, 3, 5, 16);
    check_close("concat out", cat, V(&fx, "concat", "out", 256), 256, 0, 0);
    check_close("concat da", da, V(&fx, "concat", "din0", 96), 96, 0, 0);
    check_close("concat db", dbb, V(&fx, "concat", "din1", 160), 160, 0, 0);

    layer_attn(ctx, &fx);

    float temb[4 * 10];
    nd_timestep_embedding(temb, fx_get(&fx, "temb.t")->v, 4, 10);
    check_close("timestep embedding", temb, V(&fx, "temb", "out", 40), 40, 1e-6, 0);
    fx_free(&fx);
}

/* Every tensor of a parameter-shaped block (parameters or gradients) against the
 * fixture's "<prefix>.<name>" tensor of the same name and size. */
static void check_block(const nd_unet *m, const fixture *fx, const float *block,
                        const char *prefix, double atol, double rtol)
{
    for (size_t i = 0; i < nd_unet_num_tensors(m); i++) {
        const char *name;
        size_t off, numel;
        nd_unet_tensor(m, i, &name, &off, &numel);
        char what[96];
        snprintf(what, sizeof what, "%s %s", prefix, name);
        check_close(what, block + off, V(fx, prefix, name, numel), numel, atol, rtol);
    }
}

static void test_unet(nd_ctx *ctx)
{
    fixture fx = fx_load(ND_MODEL_FIXTURES "/unet_small.bin");
    const fx_tensor *cf = fx_get(&fx, "config");
    nd_unet_config uc;
    memset(&uc, 0, sizeof uc);
    int k = 0;
    uc.channels = (int)cf->v[k++];
    uc.L = (int)cf->v[k++];
    uc.base = (int)cf->v[k++];
    uc.levels = (int)cf->v[k++];
    for (int l = 0; l < uc.levels; l++) uc.mult[l] = (int)cf->v[k++];
    uc.res_blocks = (int)cf->v[k++];
    uc.attn_min_res = (int)cf->v[k++];
    uc.groups = (int)cf->v[k++];
    uc.emb_dim = (int)cf->v[k++];
    uc.max_classes = (int)cf->v[k++];
    int B = (int)cf->v[k++];
    CHECK_EQ(k, (int)cf->n);

    nd_unet *m = nd_unet_new(&uc, B, 1);
    CHECK(m);
    /* every C tensor is in the fixture with the same size, and vice versa */
    size_t n_fixture_params = 0;
    for (uint32_t i = 0; i < fx.count; i++)
        if (!strncmp(fx.t[i].name, "param.", 6)) n_fixture_params++;
    CHECK_EQ(n_fixture_params, nd_unet_num_tensors(m));
    for (size_t i = 0; i < nd_unet_num_tensors(m); i++) {
        const char *name;
        size_t off, numel;
        nd_unet_tensor(m, i, &name, &off, &numel);
        memcpy(nd_unet_params(m) + off, V(&fx, "param", name, numel), sizeof(float) * numel);
    }
    size_t n = (size_t)B * uc.channels * uc.L * uc.L;
    const float *x = fx_get(&fx, "x")->v, *t = fx_get(&fx, "t")->v,
                *tgt = fx_get(&fx, "target")->v;
    int y[16];
    for (int i = 0; i < B; i++) y[i] = (int)fx_get(&fx, "y")->v[i];
    float *out = zeros(n), *dout = zeros(n);
    nd_unet_forward(m, ctx, out, x, t, y, B);
    check_close("unet out", out, fx_get(&fx, "out")->v, n, 1e-5, 2e-4);
    float loss = nd_mse_forward(out, tgt, n);
    CHECK_NEAR(loss, fx_get(&fx, "loss")->v[0], 1e-6, 2e-5);
    nd_mse_backward(dout, out, tgt, n, 1.0f);
    nd_unet_zero_grad(m);
    nd_unet_backward(m, ctx, NULL, dout);
    check_block(m, &fx, nd_unet_grads(m), "grad", 1e-6, 2e-3);

    /* one AdamW step, the fixture's settings (scripts/torch_reference.py ADAM) */
    nd_adamw_config oc = {1e-2f, 0.9f, 0.999f, 1e-3f, 0.1f, 0.5f, 0, 0.0f};
    nd_adamw *o = nd_adamw_new(&oc, nd_unet_num_params(m), nd_unet_params(m));
    CHECK(o);
    float norm = nd_adamw_step(o, ctx, nd_unet_params(m), nd_unet_grads(m));
    CHECK_NEAR(norm, fx_get(&fx, "adam.grad_norm")->v[0], 1e-6, 1e-4);
    check_block(m, &fx, nd_unet_params(m), "step1", 3e-5, 0);
    nd_adamw_free(o);
    free(out), free(dout);
    nd_unet_free(m);
    fx_free(&fx);
}

int main(void)
{
    nd_ctx *ctx = nd_ctx_new(2);
    CHECK(ctx);
    test_layers(ctx);
    test_unet(ctx);
    nd_ctx_free(ctx);
    printf("test_model_torch: ok\n");
    return 0;
}
