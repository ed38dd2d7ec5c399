/*
 * bench_model.c — speed of the model core, for scripts/bench-model (which runs it beside
 * the PyTorch reference, scripts/torch_reference.py bench, in the same run).
 *
 * Reports, for unet-ref at image side L, batch B and a thread count:
 *   - the bare cblas_sgemm peak at that thread count (1024³, the best of a few calls);
 *   - training images/s: forward + MSE + backward + AdamW (clip, EMA) per step;
 *   - achieved GFLOP/s of the network's multiply-adds (forward ×3 for a training step);
 *   - DDIM sampling images/s: S deterministic DDIM steps (η = 0, cosine schedule,
 *     T = 1000, x₀ clipped to [−1, 1]) on a batch of B, the same loop as the reference;
 *   - with --profile, the time per layer kind, forward and backward.
 * One line "c L=.. batch=.. threads=.. train_img_s=.. ddimS_img_s=.. gflops=.. peak=.."
 * is what the script parses.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "nd.h"

static double now_s(void) { return (double)nd_now_ns() * 1e-9; }

static double sgemm_peak(int threads)
{
    int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 1.0f / (float)(1 + i % 7);
    openblas_set_num_threads(threads);
    double best = 0.0;
    for (int r = 0; r < 6; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        double g = 2.0 * n * n * n / (now_s() - t0) * 1e-9;
        if (g > best) best = g;
    }
    openblas_set_num_threads(1);
    free(a), free(b), free(c);
    return best;
}

static double alpha_bar(double t, double T)
{
    double s = 0.008, f0 = cos(s / (1 + s) * M_PI / 2);
    double f = cos((t / T + s) / (1 + s) * M_PI / 2);
    double a = (f * f) / (f0 * f0);
    return a < 1e-9 ? 1e-9 : a > 1.0 ? 1.0 : a;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float nrand(void)
{
    double u[2];
    for (int k = 0; k < 2; k++) {
        rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
        u[k] = ((double)(rs >> 11) + 0.5) * 0x1.0p-53;
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(2.0 * M_PI * u[1]));
}

int main(int argc, char **argv)
{
    int L = 64, B = 16, C = 2, threads = 2, steps = 5, ddim = 50, profile = 0, im2col = 0,
        bf16 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--L")) L = atoi(v), i++;
        else if (!strcmp(a, "--batch")) B = atoi(v), i++;
        else if (!strcmp(a, "--channels")) C = atoi(v), i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--ddim-steps")) ddim = atoi(v), i++;
        else if (!strcmp(a, "--profile")) profile = 1;
        else if (!strcmp(a, "--im2col")) im2col = 1;
        else if (!strcmp(a, "--bf16")) bf16 = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--L 64] [--batch 16] [--channels 2] [--threads 2] [--steps 5]\n"
                    "          [--ddim-steps 50 (0: skip)] [--profile] [--im2col] [--bf16]\n",
                    argv[0]);
            return 2;
        }
    }
    double peak = sgemm_peak(threads);
    nd_ctx *ctx = nd_ctx_new(threads);
    if (ctx && im2col) nd_ctx_set_cpu(ctx, ND_CPU_GENERIC);
    if (ctx && bf16 && !nd_ctx_set_bf16(ctx, 1)) {
        /* 77, the skip code, so that scripts/bench-model leaves the bf16 rows empty on CPUs
         * without AVX512-BF16 instead of failing */
        fprintf(stderr, "bench_model: no AVX512-BF16 kernels (this build or CPU, or ND_CPU)\n");
        return 77;
    }
    nd_unet_config uc;
    nd_unet_config_default(&uc, C, L, 4);
    nd_unet *m = nd_unet_new(&uc, B, 1);
    if (!ctx || !m) return 1;
    nd_adamw_config oc = {2e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 0, 0.999f};
    nd_adamw *o = nd_adamw_new(&oc, nd_unet_num_params(m), nd_unet_params(m));
    size_t n = (size_t)B * C * L * L;
    float *x = malloc(sizeof(float) * n), *eps = malloc(sizeof(float) * n),
          *out = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
    float *t = malloc(sizeof(float) * B);
    int *y = malloc(sizeof(int) * B);
    if (!o || !x || !eps || !out || !d || !t || !y) return 1;
    for (size_t i = 0; i < n; i++) x[i] = nrand(), eps[i] = nrand();
    for (int i = 0; i < B; i++) t[i] = (float)((i * 379) % 1000), y[i] = i % 4;

    double prof[ND_PROF_N][2];
    memset(prof, 0, sizeof prof);
    double t_loss = 0.0;
    double t0 = 0.0;
    for (int s = -1; s < steps; s++) { /* step -1 warms up */
        if (s == 0) {
            t0 = now_s();
            nd_ctx_profile(ctx, profile);
        }
        nd_unet_forward(m, ctx, out, x, t, y, B);
        double tl = now_s();
        nd_mse_forward(out, eps, n);
        nd_mse_backward(d, out, eps, n, 1.0f);
        t_loss += s >= 0 ? now_s() - tl : 0.0;
        nd_unet_zero_grad(m);
        nd_unet_backward(m, ctx, NULL, d);
        nd_adamw_step(o, ctx, nd_unet_params(m), nd_unet_grads(m));
    }
    double dt = now_s() - t0;
    nd_ctx_profile(ctx, 0);
    for (int k = 0; k < ND_PROF_N; k++)
        for (int dir = 0; dir < 2; dir++) prof[k][dir] = nd_ctx_profile_seconds(ctx, k, dir);
    prof[ND_PROF_LOSS][0] = t_loss;
    double train_ips = B * steps / dt;
    double fl = nd_unet_flops_per_image(m);
    double gflops = 3.0 * fl * train_ips * 1e-9;

    double ddim_ips = 0.0;
    if (ddim > 0) {
        /* DDIM, η = 0: x_{t'} = √ᾱ' x̂₀ + √(1−ᾱ') ε̂, x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ clipped. */
        double T = 1000.0;
        for (size_t i = 0; i < n; i++) x[i] = nrand();
        nd_unet_forward(m, ctx, out, x, t, y, B); /* warm-up */
        double s0 = now_s();
        for (int i = 0; i < ddim; i++) {
            double ti = ddim > 1 ? round(T - 1 - i * (T - 1) / (ddim - 1)) : T - 1;
            double tn = i + 1 < ddim ? round(T - 1 - (i + 1) * (T - 1) / (ddim - 1)) : -1;
            for (int k = 0; k < B; k++) t[k] = (float)ti;
            nd_unet_forward(m, ctx, out, x, t, y, B);
            double ab = alpha_bar(ti, T), abn = tn >= 0 ? alpha_bar(tn, T) : 1.0;
            float sa = (float)sqrt(ab), s1a = (float)sqrt(1 - ab);
            float san = (float)sqrt(abn), s1an = (float)sqrt(1 - abn);
            for (size_t j = 0; j < n; j++) {
                float x0 = (x[j] - s1a * out[j]) / sa;
                x0 = x0 < -1.0f ? -1.0f : x0 > 1.0f ? 1.0f : x0;
                x[j] = san * x0 + s1an * out[j];
            }
        }
        ddim_ips = B / (now_s() - s0);
    }

    printf("c%s%s L=%d batch=%d threads=%d train_img_s=%.3f ddim%d_img_s=%.4f gflops=%.1f "
           "peak=%.1f params=%zu fwd_gflop_per_img=%.3f\n",
           im2col ? "-im2col" : "", bf16 ? "-bf16" : "", L, B, threads, train_ips, ddim,
           ddim_ips, gflops, peak, nd_unet_num_params(m), fl * 1e-9);
    if (profile) {
        double tot = 0.0;
        for (int k = 0; k < ND_PROF_N; k++) tot += prof[k][0] + prof[k][1];
        printf("profile over %d training steps (%.3f s measured of %.3f s wall):\n", steps, tot,
               dt);
        printf("  %-18s %10s %10s %7s\n", "layer", "fwd ms", "bwd ms", "share");
        for (int k = 0; k < ND_PROF_N; k++)
            printf("  %-18s %10.1f %10.1f %6.1f%%\n", nd_prof_name(k), prof[k][0] * 1e3 / steps,
                   prof[k][1] * 1e3 / steps, 100.0 * (prof[k][0] + prof[k][1]) / dt);
    }
    free(x), free(eps), free(out), free(d), free(t), free(y);
    nd_adamw_free(o);
    nd_unet_free(m);
    nd_ctx_free(ctx);
    return 0;
}
