/*
 * optim.c — AdamW (PyTorch semantics: decoupled weight decay, bias-corrected moments)
 * with global gradient-norm clipping, linear learning-rate warm-up and an EMA of the
 * weights, over the one contiguous parameter block of a model.
 *
 * The norm is summed per thread over fixed chunks in double and the partial sums added
 * in chunk order: one seed and thread count give the same bits on every run.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn_impl.h"

struct nd_adamw {
    nd_adamw_config cfg;
    size_t n;
    uint64_t t; /* steps taken */
    float *mv;  /* (2n): first moments, then second moments */
    float *ema; /* (n) */
};

nd_adamw *nd_adamw_new(const nd_adamw_config *oc, size_t n, const float *params)
{
    nd_adamw *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->cfg = *oc;
    o->n = n;
    o->mv = calloc(2 * n + 1, sizeof(float));
    o->ema = malloc((n + 1) * sizeof(float));
    if (!o->mv || !o->ema) {
        nd_adamw_free(o);
        return NULL;
    }
    memcpy(o->ema, params, n * sizeof(float));
    return o;
}

void nd_adamw_free(nd_adamw *o)
{
    if (!o) return;
    free(o->mv);
    free(o->ema);
    free(o);
}

float *nd_adamw_moments(nd_adamw *o) { return o->mv; }
uint64_t nd_adamw_steps(const nd_adamw *o) { return o->t; }
void nd_adamw_set_steps(nd_adamw *o, uint64_t steps) { o->t = steps; }

/* Learning rate of step s (1-based) with warm-up. */
static float adamw_lr(const nd_adamw_config *oc, uint64_t s)
{
    if (oc->warmup == 0 || s >= oc->warmup) return oc->lr;
    return oc->lr * (float)s / (float)oc->warmup;
}

#define CHUNKS 64 /* fixed, so that the norm's summation order ignores the thread count */

float nd_adamw_step(nd_adamw *o, nd_ctx *ctx, float *params, float *grads)
{
    uint64_t t0 = nd_prof_begin(ctx);
    const nd_adamw_config *c = &o->cfg;
    size_t n = o->n;
    double part[CHUNKS];
    int nt = ctx->threads;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < CHUNKS; k++) {
        size_t lo = n * k / CHUNKS, hi = n * (k + 1) / CHUNKS;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)grads[i] * grads[i];
        part[k] = s;
    }
    double ss = 0.0;
    for (int k = 0; k < CHUNKS; k++) ss += part[k];
    float norm = (float)sqrt(ss);
    /* PyTorch's clip_grad_norm_: scale by max/(norm + 1e-6) when that is below 1. */
    float gscale = 1.0f;
    if (c->grad_clip > 0.0f) {
        float coef = c->grad_clip / (norm + 1e-6f);
        if (coef < 1.0f) gscale = coef;
    }
    o->t++;
    float lr = adamw_lr(c, o->t);
    float b1 = c->beta1, b2 = c->beta2;
    float bc1 = (float)(1.0 - pow(b1, (double)o->t));
    float bc2s = (float)sqrt(1.0 - pow(b2, (double)o->t));
    float step = lr / bc1, decay = 1.0f - lr * c->weight_decay;
    float ed = c->ema_decay;
    float *restrict m1 = o->mv, *restrict m2 = o->mv + n, *restrict ema = o->ema;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < CHUNKS; k++) {
        size_t lo = n * k / CHUNKS, hi = n * (k + 1) / CHUNKS;
        for (size_t i = lo; i < hi; i++) {
            float g = grads[i] * gscale;
            grads[i] = g;
            float mm = b1 * m1[i] + (1.0f - b1) * g;
            float vv = b2 * m2[i] + (1.0f - b2) * g * g;
            m1[i] = mm;
            m2[i] = vv;
            float p = params[i] * decay;
            p -= step * mm / (sqrtf(vv) / bc2s + c->eps);
            params[i] = p;
            if (ed > 0.0f) ema[i] = ed * ema[i] + (1.0f - ed) * p;
        }
    }
    nd_prof_end(ctx, ND_PROF_OPTIM, 0, t0);
    return norm;
}
