/*
 * ctx.c — the model core's context (threads, kernel level, scratch, profile) and the one
 * sgemm wrapper every layer's matrix products go through, plus its naive reference.
 */
#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_impl.h"

/* ------------------------------------------------------------------------------------ */
/* Context                                                                                */
/* ------------------------------------------------------------------------------------ */

nd_ctx *nd_ctx_new(int threads)
{
    nd_error e = {0};
    int cpu = nd_cpu_select(&e);
    if (cpu < 0) {
        nd_err("%s", e.msg);
        return NULL;
    }
    nd_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->cpu = cpu;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    ctx->threads = threads;
    /* Layers parallelise over images themselves and call OpenBLAS from inside those
     * loops: OpenBLAS's own threads would only oversubscribe the cores. */
    openblas_set_num_threads(1);
    return ctx;
}

void nd_ctx_free(nd_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->scratch);
    free(ctx);
}

int nd_ctx_set_cpu(nd_ctx *ctx, int level)
{
    if (level >= 0 && level < ctx->cpu) ctx->cpu = level;
    if (ctx->cpu < ND_CPU_AVX512BF16) ctx->bf16 = 0;
    return ctx->cpu;
}

int nd_ctx_set_bf16(nd_ctx *ctx, int on)
{
    ctx->bf16 = on && ctx->cpu >= ND_CPU_AVX512BF16;
    return ctx->bf16;
}

float *nd_ctx_scratch(nd_ctx *ctx, size_t n)
{
    if (n <= ctx->scratch_n) return ctx->scratch;
    free(ctx->scratch);
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    ctx->scratch = aligned_alloc(64, bytes);
    ND_ASSERT(ctx->scratch != NULL);
    ctx->scratch_n = n;
    return ctx->scratch;
}

void nd_ctx_profile(nd_ctx *ctx, int on) { ctx->profile = on; }
double nd_ctx_profile_seconds(const nd_ctx *ctx, int kind, int dir)
{
    ND_ASSERT(kind >= 0 && kind < ND_PROF_N && (dir == 0 || dir == 1));
    return ctx->prof_s[kind][dir];
}

const char *nd_prof_name(int kind)
{
    static const char *const names[ND_PROF_N] = {
        [ND_PROF_CONV3] = "conv3x3",         [ND_PROF_CONV3S2] = "conv3x3/s2",
        [ND_PROF_CONV1] = "conv1x1",         [ND_PROF_GNSILU] = "groupnorm+silu",
        [ND_PROF_ATTN] = "attention",        [ND_PROF_EMB] = "embedding+linear",
        [ND_PROF_UPCAT] = "upsample+concat", [ND_PROF_LOSS] = "mse",
        [ND_PROF_OPTIM] = "adamw+ema",       [ND_PROF_OTHER] = "other",
    };
    return kind >= 0 && kind < ND_PROF_N ? names[kind] : "?";
}

/* ------------------------------------------------------------------------------------ */
/* sgemm                                                                                  */
/* ------------------------------------------------------------------------------------ */

void nd_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nd_sgemv(int M, int N, float alpha, const float *A, int lda, const float *x, float beta,
              float *y)
{
    if (M <= 0) return;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, M, N, alpha, A, lda, x, 1, beta, y, 1);
}

void nd_sgemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            /* beta 0 ignores C (it may hold NaN), as BLAS does */
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

const char *nd_blas_config(void) { return openblas_get_config(); }
