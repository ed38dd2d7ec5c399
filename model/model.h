/*
 * model.h — the netdiffus model core (libnd_model): tensor layers with forward and
 * backward passes on OpenBLAS, the reference U-Net "unet-ref" (DESIGN.md §6), AdamW with
 * gradient clipping, warm-up and EMA.
 *
 * It sits between the GAF images (model/gaf, issue 5) and the diffusion trainer and
 * samplers: the diffusion code draws x_t and t, calls nd_unet_forward for the network's
 * prediction (ε or v, the network does not care), puts its loss gradient into
 * nd_unet_backward, and steps nd_adamw. See docs/MODEL.md.
 *
 * Conventions (llm.c style): every tensor is a flat float32 buffer, images are
 * (N, C, H, W) row-major; layer functions come in forward/backward pairs with outputs
 * first, const inputs, dimensions last. Backward functions ACCUMULATE (+=) into every
 * gradient they are given (input and parameter gradients alike): callers zero them.
 * A NULL input gradient is skipped. Broken shapes are ND_ASSERTs.
 */
#ifndef ND_MODEL_H
#define ND_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* ------------------------------------------------------------------------------------ */
/* Context: threads, scratch memory and the per-layer profile                           */
/* ------------------------------------------------------------------------------------ */

/* Layer kinds of the profile (nd_ctx_profile_print). */
enum nd_prof {
    ND_PROF_CONV3,    /* 3×3 convolution, stride 1 */
    ND_PROF_CONV3S2,  /* 3×3 convolution, stride 2 */
    ND_PROF_CONV1,    /* 1×1 convolution */
    ND_PROF_GNSILU,   /* GroupNorm (+ fused SiLU) */
    ND_PROF_ATTN,     /* softmax attention core (q·k, softmax, ·v) */
    ND_PROF_EMB,      /* timestep/class embeddings, linear layers, their SiLU */
    ND_PROF_UPCAT,    /* nearest upsample, channel concat, embedding add */
    ND_PROF_LOSS,     /* MSE */
    ND_PROF_OPTIM,    /* AdamW + EMA */
    ND_PROF_OTHER,    /* zeroing gradients, residual adds */
    ND_PROF_N
};

/* Owns the threads setting and a scratch area that layers borrow (im2col columns,
 * per-thread partial weight gradients). Not shared between threads that call layers
 * at the same time: give each its own. */
typedef struct nd_ctx nd_ctx;

/* threads: parallel loops of the layers (0 = all online cores). OpenBLAS is kept at one
 * thread inside those loops, so the two never oversubscribe the cores. NULL on -ENOMEM. */
nd_ctx *nd_ctx_new(int threads);
void nd_ctx_free(nd_ctx *ctx); /* NULL is a no-op */
int nd_ctx_threads(const nd_ctx *ctx);
/* 3×3 stride-1 convolutions: direct AVX-512 kernel where it fits (on, the default) or
 * im2col + sgemm everywhere (off; for comparisons). Same results up to rounding. */
void nd_ctx_set_direct_conv(nd_ctx *ctx, int on);
/* bfloat16 products (off by default): the direct 3×3 kernel's forward and input-gradient
 * products take bf16 inputs and weights (8-bit mantissa) with float32 sums, at twice the
 * multiply rate (AVX512-BF16). Relative error per convolution ~1e-2·(typical term);
 * meant for sampling, measured for training (docs/PERFORMANCE.md). Returns whether it is
 * on (0 when the CPU build lacks AVX512-BF16). */
int nd_ctx_set_bf16(nd_ctx *ctx, int on);
/* Profiling on/off (off by default); when on, layers add their wall time per kind. */
void nd_ctx_profile(nd_ctx *ctx, int on);
void nd_ctx_profile_reset(nd_ctx *ctx);
/* Seconds spent in a kind, forward (dir 0) or backward (dir 1). */
double nd_ctx_profile_seconds(const nd_ctx *ctx, int kind, int dir);
const char *nd_prof_name(int kind);

/* ------------------------------------------------------------------------------------ */
/* Matrix products: the one place where FLOPs are spent                                  */
/* ------------------------------------------------------------------------------------ */

/* C (M×N) = alpha·op(A)·op(B) + beta·C, row-major, explicit leading dimensions;
 * op(A) is M×K (A is K×M when ta), op(B) is K×N (B is N×K when tb). cblas_sgemm. */
void nd_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
/* y (M) = alpha·A·x + beta·y, A row-major M×N with leading dimension lda. cblas_sgemv. */
void nd_sgemv(int M, int N, float alpha, const float *A, int lda, const float *x, float beta,
              float *y);
/* The same with plain loops and double accumulation: the reference for tests. */
void nd_sgemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* FLOPs counted by nd_sgemm since the start (2·M·N·K each), for GFLOP/s reports. */
uint64_t nd_sgemm_flops(void);

/* ------------------------------------------------------------------------------------ */
/* Layers                                                                               */
/* ------------------------------------------------------------------------------------ */

/* Convolution, k = 3 (padding 1, stride 1 or 2) or k = 1 (stride 1, no padding).
 * inp is (B,C,H,W), w is (OC,C,k,k), b is (OC) or NULL, out is (B,OC,Ho,Wo) with
 * Ho = (H-1)/stride+1 (same for W). */
void nd_conv2d_forward(nd_ctx *ctx, float *out, const float *inp, const float *w,
                       const float *b, int B, int C, int H, int W, int OC, int k,
                       int stride);
void nd_conv2d_backward(nd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int B, int C, int H, int W,
                        int OC, int k, int stride);

/* Linear: inp is (N,IN), w is (OUT,IN) (PyTorch layout), b is (OUT), out is (N,OUT). */
void nd_linear_forward(nd_ctx *ctx, float *out, const float *inp, const float *w,
                       const float *b, int N, int IN, int OUT);
void nd_linear_backward(nd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int N, int IN, int OUT);

/* GroupNorm over (C/G channels × P pixels) per image and group, eps 1e-5, then an
 * optional SiLU (silu != 0) fused in. inp is (B,C,P); gamma, beta are (C);
 * mean and rstd are (B,G) outputs kept for the backward. The backward recomputes the
 * normalised values from inp, mean and rstd instead of storing them. */
void nd_groupnorm_forward(nd_ctx *ctx, float *out, float *mean, float *rstd,
                          const float *inp, const float *gamma, const float *beta, int B,
                          int C, int P, int G, int silu);
void nd_groupnorm_backward(nd_ctx *ctx, float *dinp, float *dgamma, float *dbeta,
                           const float *dout, const float *inp, const float *mean,
                           const float *rstd, const float *gamma, const float *beta, int B,
                           int C, int P, int G, int silu);

/* SiLU x·σ(x), elementwise over n values. */
void nd_silu_forward(float *out, const float *inp, size_t n);
void nd_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Nearest ×2 upsample: inp is (B,C,H,W), out is (B,C,2H,2W). */
void nd_upsample2_forward(nd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
                          int W);
void nd_upsample2_backward(nd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H,
                           int W);

/* Channel concat: a is (B,C1,P), b is (B,C2,P), out is (B,C1+C2,P). */
void nd_concat_forward(nd_ctx *ctx, float *out, const float *a, const float *b, int B,
                       int C1, int C2, int P);
void nd_concat_backward(nd_ctx *ctx, float *da, float *db, const float *dout, int B, int C1,
                        int C2, int P);

/* Single-head softmax self-attention core. qkv is (B,3C,P): q = channels [0,C),
 * k = [C,2C), v = [2C,3C). att (B,P,P) keeps softmax(qᵀk/√C) (rows: queries) for the
 * backward; out is (B,C,P) with out[c][i] = Σ_j v[c][j]·att[i][j]. The GroupNorm, the
 * 1×1 qkv and output projections and the residual of the attention block are the layers
 * above (see unet.c). */
void nd_attention_forward(nd_ctx *ctx, float *out, float *att, const float *qkv, int B,
                          int C, int P);
void nd_attention_backward(nd_ctx *ctx, float *dqkv, const float *dout, const float *qkv,
                           const float *att, int B, int C, int P);

/* Sinusoidal timestep embedding: t is (B) (float, so fractional steps work), out is
 * (B,D), D even: out[n] = [sin(t·f_0..f_{D/2-1}) | cos(t·f_0..)], f_i = 10000^(-2i/D).
 * No backward: t is not learnt. */
void nd_timestep_embedding(float *out, const float *t, int B, int D);

/* Class embedding: rows of table (K,D) picked by y (B) (values in [0,K)). */
void nd_class_embedding_forward(float *out, const float *table, const int *y, int B, int K,
                                int D);
void nd_class_embedding_backward(float *dtable, const float *dout, const int *y, int B,
                                 int K, int D);

/* Per-channel add of a (B,C) vector to (B,C,P) maps, in place, and its backward. */
void nd_add_channel_forward(float *h, const float *e, int B, int C, int P);
void nd_add_channel_backward(float *de, const float *dh, int B, int C, int P);

/* Mean squared error over n values; the backward writes (overwrites) dout =
 * dloss·2(out−target)/n. */
float nd_mse_forward(const float *out, const float *target, size_t n);
void nd_mse_backward(float *dout, const float *out, const float *target, size_t n,
                     float dloss);

/* ------------------------------------------------------------------------------------ */
/* The U-Net                                                                            */
/* ------------------------------------------------------------------------------------ */

#define ND_UNET_MAX_LEVELS 6

typedef struct nd_unet_config {
    int channels;     /* C: image channels (series channels) */
    int L;            /* image side; divisible by 2^(levels-1) */
    int base;         /* base_channels */
    int levels;       /* length of mult */
    int mult[ND_UNET_MAX_LEVELS];
    int res_blocks;   /* per encoder level; the decoder has one more */
    int attn_min_res; /* middle attention when the lowest resolution <= this; 0 = none */
    int groups;       /* GroupNorm groups; divides every channel count */
    int emb_dim;      /* time/class embedding width, even */
    int max_classes;  /* class rows; row max_classes is the null class (guidance) */
} nd_unet_config;

/* unet-ref's numbers from the model section of a config, at image side L and C channels.
 * Returns 0, or ND_ECONFIG with e saying which setting does not fit. */
int nd_unet_config_from(nd_unet_config *uc, const nd_config *cfg, int C, int L,
                        nd_error *e);
/* The DESIGN.md §6 defaults (base 32, mult 1,2,2, 2 ResBlocks, attention at L/4,
 * 8 groups, embedding 128), for tests and benchmarks. */
void nd_unet_config_default(nd_unet_config *uc, int C, int L, int max_classes);

typedef struct nd_unet nd_unet;

/* Builds the network for batches up to max_batch and initialises the weights from
 * seed (PyTorch's default: U(±1/√fan_in) for convolutions and linear layers, N(0,1)
 * class rows, GroupNorm 1 and 0). Owns its parameter, gradient and activation memory.
 * NULL on bad configuration (logged) or -ENOMEM. */
nd_unet *nd_unet_new(const nd_unet_config *uc, int max_batch, uint64_t seed);
void nd_unet_free(nd_unet *m); /* NULL is a no-op */
const nd_unet_config *nd_unet_cfg(const nd_unet *m);

/* Parameters and gradients: one contiguous block each, n floats. */
size_t nd_unet_num_params(const nd_unet *m);
float *nd_unet_params(nd_unet *m);
float *nd_unet_grads(nd_unet *m);
/* The parameter table, in block order: name (e.g. "enc.0.1.conv1.w", PyTorch's names
 * with .weight/.bias shortened to .w/.b), offset into the block and element count. */
size_t nd_unet_num_tensors(const nd_unet *m);
void nd_unet_tensor(const nd_unet *m, size_t i, const char **name, size_t *offset,
                    size_t *numel);
/* Index of a named tensor, or -1. */
long nd_unet_find_tensor(const nd_unet *m, const char *name);
/* Multiply-adds ×2 of one image's forward pass (backward is about twice that). */
double nd_unet_flops_per_image(const nd_unet *m);

/* out (B,C,L,L) = net(x (B,C,L,L), t (B) timesteps, y (B) class rows). Keeps what the
 * backward needs; B <= max_batch. With train = 0 the same arithmetic runs (sampling). */
void nd_unet_forward(nd_unet *m, nd_ctx *ctx, float *out, const float *x, const float *t,
                     const int *y, int B);
/* Accumulates the parameter gradients of the last forward for dout (B,C,L,L) into the
 * gradient block (nd_unet_zero_grad first). dx (B,C,L,L) may be NULL. */
void nd_unet_backward(nd_unet *m, nd_ctx *ctx, float *dx, const float *dout);
void nd_unet_zero_grad(nd_unet *m);

/* ------------------------------------------------------------------------------------ */
/* Optimiser                                                                            */
/* ------------------------------------------------------------------------------------ */

typedef struct nd_adamw_config {
    float lr;           /* peak learning rate */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* decoupled, PyTorch AdamW semantics: p -= lr·wd·p */
    float grad_clip;    /* global L2 norm clip; 0 = off */
    uint32_t warmup;    /* linear warm-up steps from lr/warmup to lr; 0 = none */
    float ema_decay;    /* EMA of the weights; 0 = no EMA */
} nd_adamw_config;

typedef struct nd_adamw nd_adamw;

/* Moments (m, v) and the EMA copy of n parameters, each one contiguous block; the EMA
 * starts as a copy of params. NULL on -ENOMEM. */
nd_adamw *nd_adamw_new(const nd_adamw_config *oc, size_t n, const float *params);
void nd_adamw_free(nd_adamw *o); /* NULL is a no-op */
/* One step: clip grads to grad_clip (scaling them in place), update params, update the
 * EMA. Deterministic for a thread count. Returns the gradient norm before clipping. */
float nd_adamw_step(nd_adamw *o, nd_ctx *ctx, float *params, float *grads);
float *nd_adamw_ema(nd_adamw *o);     /* (n) */
float *nd_adamw_moments(nd_adamw *o); /* (2n): m then v, for checkpoints */
uint64_t nd_adamw_steps(const nd_adamw *o);
void nd_adamw_set_steps(nd_adamw *o, uint64_t steps); /* resuming from a checkpoint */
/* Learning rate of step s (1-based) with warm-up. */
float nd_adamw_lr(const nd_adamw_config *oc, uint64_t s);

/* ------------------------------------------------------------------------------------ */
/* GAF: series windows <-> Gramian Angular Summation Field images (issue 5, gaf.c)       */
/* ------------------------------------------------------------------------------------ */

/* Per class and channel, log1p of the smallest non-zero and of the largest value seen in
 * training: what maps raw bytes to GAF values and back. */
typedef struct nd_gaf_scale {
    float lo[ND_MAX_CHANNELS], hi[ND_MAX_CHANNELS];
} nd_gaf_scale;

enum nd_gaf_scaling { ND_GAF_ZERO_AWARE = 0, ND_GAF_LOG = 1 };
enum nd_gaf_decode { ND_GAF_LSQ = 0, ND_GAF_DIAG = 1 };

/* How windows of C channels × L bins become images. With mask, each value channel gets an
 * activity channel (1 where the bin is non-zero), so images have 2C channels: values
 * first, then activities. */
typedef struct nd_gaf_spec {
    int C, L;
    int scaling; /* enum nd_gaf_scaling */
    int mask;    /* 0/1 */
    int decode;  /* enum nd_gaf_decode */
} nd_gaf_spec;

/* Zero-aware scaling: non-zero values land in [ND_GAF_VMIN, 1], zeros at 0. */
#define ND_GAF_VMIN 0.5f

/* Image channels of a spec: C, or 2C with mask. */
int nd_gaf_channels(const nd_gaf_spec *g);
/* Scale of n windows x (n,C,L) raw units (one class). A channel with no non-zero value
 * gets lo = hi = 0. */
void nd_gaf_fit_scale(nd_gaf_scale *s, const float *x, size_t n, int C, int L);
/* GASF of series v (C,L) with values in [0,1] (clamped): img (C,L,L),
 * img[c][i][j] = v_i·v_j − √(1−v_i²)·√(1−v_j²). */
void nd_gaf_encode(float *img, const float *v, int C, int L);
/* Inverse of nd_gaf_encode on (possibly noisy) images: symmetrise and clamp to [−1, 1],
 * then v_i = √((G_ii+1)/2) (diag), or the φ = arccos v that minimises
 * Σ_ij (cos(φ_i+φ_j) − G_ij)² over the whole image, from the diagonal's answer (lsq,
 * Gauss–Seidel Gauss–Newton sweeps). v is (C,L). */
void nd_gaf_decode(float *v, const float *img, int C, int L, int mode);
/* One raw window x (C,L) -> image (nd_gaf_channels, L, L), and back (decode by
 * g->decode unless mode >= 0). */
void nd_gaf_window_to_image(float *img, const float *x, const nd_gaf_spec *g,
                            const nd_gaf_scale *s);
void nd_gaf_image_to_window(float *x, const float *img, const nd_gaf_spec *g,
                            const nd_gaf_scale *s, int mode);
/* Decoded value v of channel c (a busy bin) -> raw units: the inverse of the scaling. */
float nd_gaf_unscale(float v, const nd_gaf_spec *g, const nd_gaf_scale *s, int c);

/* Decode calibration (calib.c): per class and channel, the activity threshold that
 * gives the training data's share of idle bins, a monotone map of busy log1p values
 * from the model's quantiles onto the training data's, the same for the window's
 * volume (log1p of its total), applied as a scale of the whole window, and a filter of
 * the activity scores before the threshold, chosen so that the windows' autocorrelation
 * is the training data's. Both sides are ND_CAL_SLOTS floats: [0] idle share or
 * threshold, [1..ND_CAL_Q+1] busy quantiles, [ND_CAL_VOL..] volume quantiles,
 * [ND_CAL_ACF..] the target's class-mean autocorrelation at lags 1..ND_CAL_LAGS, or the
 * calibration's filter (one float); NaN where there was nothing to fit. */
#define ND_CAL_Q 64
#define ND_CAL_VOL (ND_CAL_Q + 2)
#define ND_CAL_ACF (2 * ND_CAL_Q + 3)
#define ND_CAL_LAGS 16
#define ND_CAL_SLOTS (ND_CAL_ACF + ND_CAL_LAGS)
/* Target t of channel c of n raw windows x (n,C,L): t[0] the share of idle (zero) bins,
 * then the log1p quantiles of busy bins and of the windows' totals, then the class-mean
 * autocorrelation (nd_mean_acf) at lags 1..min(L/4, ND_CAL_LAGS). scratch: n·L floats. */
void nd_cal_target(float *t, const float *x, size_t n, int C, int L, int c, float *scratch);
/* Calibration cal of one class and channel from n windows of L decoded bins of the
 * model's own samples: score (activity: the mask's decoded value, or the value without
 * masks) and lval (log1p of the uncalibrated raw value), both (n, L). cal[0] is the
 * threshold (a bin is busy when its filtered score is above it), then the quantiles of
 * lval over busy bins, then those of the windows' log1p totals after the per-bin map;
 * the threshold is set so that the share of idle bins after both maps is t[0]. Each
 * score filter is fitted in turn and the one whose windows' autocorrelation is nearest
 * t's is kept (without a target autocorrelation: none). rng: the filters' dither.
 * scratch: 2·n·L + n floats. */
void nd_cal_fit(float *cal, const float *t, const float *score, const float *lval, size_t n,
                int L, nd_rng *rng, float *scratch);
/* Raw value of a bin with this filtered score and uncalibrated log1p value l (per-bin
 * maps). */
float nd_cal_apply(const float *cal, const float *t, float score, float l);
/* One window's channel through the calibration: its L scores through cal's filter (in
 * place), then x[i] the raw value of bin i (lval: uncalibrated log1p values) after the
 * per-bin maps and the volume map (one scale for the window, busy bins within the
 * target's range; windows the threshold left entirely idle keep their top bin for it,
 * and it makes idle as many as the target has). */
void nd_cal_window(const float *cal, const float *t, float *x, float *score, const float *lval,
                   int L, nd_rng *rng);

/* ------------------------------------------------------------------------------------ */
/* Diffusion: schedule, training targets, samplers (issue 5, diffusion.c)                */
/* ------------------------------------------------------------------------------------ */

enum nd_pred { ND_PRED_EPS = 0, ND_PRED_V = 1 };
enum nd_sampler { ND_SAMPLER_DDIM = 0, ND_SAMPLER_DDPM = 1, ND_SAMPLER_DPMPP = 2 };
enum nd_clip { ND_CLIP_DYNAMIC = 0, ND_CLIP_HARD = 1, ND_CLIP_NONE = 2 };

#define ND_DIFF_MAX_T 10000

typedef struct nd_diffusion {
    int T;
    int pred;                     /* enum nd_pred */
    double abar[ND_DIFF_MAX_T];   /* ᾱ_t for t = 0..T-1 (t = 0 is the least noisy) */
} nd_diffusion;

/* schedule "cosine" (Nichol & Dhariwal, s = 0.008, β ≤ 0.999) or "linear" (β from 1e-4
 * to 0.02 scaled to T). Returns 0 or ND_ECONFIG. */
int nd_diffusion_init(nd_diffusion *d, int T, const char *schedule, int pred, nd_error *e);
/* Training pair for one image of n values at step t: xt = √ᾱ x0 + √(1−ᾱ) ε, and the
 * network's target (ε, or v = √ᾱ ε − √(1−ᾱ) x0). */
void nd_diffusion_q_sample(const nd_diffusion *d, float *xt, float *target, const float *x0,
                           const float *eps, int t, size_t n);

/* The denoiser: out (B, img) = network(x (B, img), t (B), y (B)). */
typedef void (*nd_denoise_fn)(void *arg, float *out, const float *x, const float *t,
                              const int *y, int B);

typedef struct nd_sample_opts {
    int sampler;    /* enum nd_sampler */
    int steps;      /* S, 1..T */
    float guidance; /* w: out = out_null + w (out_cond − out_null); 1 = no null pass */
    float eta;      /* DDIM stochasticity */
    int clip;       /* enum nd_clip */
    int null_class; /* class row of the unconditional pass */
    /* Optional: maps one predicted clean image (img floats) in place onto the valid
     * images (after clipping, at every step), e.g. the nearest GASF; NULL: none. */
    void (*project)(void *arg, float *x0);
    void *project_arg;
} nd_sample_opts;

/* Samples B images of img floats each for classes y (B) into x (B, img), starting from
 * noise drawn from rng. f is called with up to 2B images (guidance != 1: conditional
 * and null copies in one batch). Deterministic for a seed (and for DDIM with eta 0 a
 * function of the starting noise only). */
void nd_diffusion_sample(const nd_diffusion *d, const nd_sample_opts *o, nd_denoise_fn f,
                         void *arg, float *x, const int *y, int B, size_t img, nd_rng *rng);
/* Parses "ddim|ddpm|dpmpp", "dynamic|clip|none", "eps|v"; -1 when unknown. */
int nd_sampler_from_name(const char *s);
int nd_clip_from_name(const char *s);
int nd_pred_from_name(const char *s);

/* ------------------------------------------------------------------------------------ */
/* Trainer and model files (issue 5, dm.c)                                               */
/* ------------------------------------------------------------------------------------ */

/* A trained (or training) class-conditional diffusion model over GAF images: the
 * network, optimiser state, class scales, the classes and replay statistics of the
 * dataset and the config. Saved as a .ndm file (docs/FORMATS.md §3). */
typedef struct nd_dm nd_dm;

/* A new model for training on ds (classes, channels, L), with its config (copied). The
 * class scales are fitted on ds's training part: windows whose group is not held out
 * for validation (train.val_fraction, by group). NULL with e filled on failure. */
nd_dm *nd_dm_new(const nd_config *cfg, const nd_dataset *ds, nd_error *e);
/* Loads a model file; max_batch: largest batch the caller will train or sample
 * (sampling with guidance uses twice sample.batch). NULL with e filled on failure. */
nd_dm *nd_dm_load(const char *path, int max_batch, nd_error *e);
/* Writes the model file atomically (temporary file, fsync, rename). */
int nd_dm_save(nd_dm *m, const char *path, nd_error *e);
void nd_dm_free(nd_dm *m); /* NULL is a no-op */

const nd_config *nd_dm_config(const nd_dm *m);
nd_config *nd_dm_config_mut(nd_dm *m); /* sample.* and model.decode may be changed */
const nd_dataset *nd_dm_dataset(const nd_dm *m); /* classes, channels, statistics */
const nd_gaf_spec *nd_dm_gaf(const nd_dm *m);
const nd_gaf_scale *nd_dm_scale(const nd_dm *m, int cls);
nd_unet *nd_dm_unet(nd_dm *m);
uint64_t nd_dm_step(const nd_dm *m);
/* Prints the model-specific lines of `netdiffus inspect` for an open model file. */
int nd_dm_inspect(const ndf_reader *r, FILE *out, nd_error *e);

typedef struct nd_train_opts {
    uint64_t steps;      /* train until this many steps in total (a resumed run counts
                            those already done) */
    double max_seconds;  /* stop (and save) after this much wall time; 0: no limit */
    const char *path;    /* model file for checkpoints and the end; NULL: none */
    volatile int *stop;  /* set (by a signal handler) to stop after the current step */
    int quiet;           /* no status line */
} nd_train_opts;

typedef struct nd_train_report {
    uint64_t steps_done; /* in this call */
    double seconds, last_loss, val_loss; /* val_loss < 0: no validation part */
    int interrupted;
} nd_train_report;

/* Trains m on ds (the same dataset it was made or last trained with: classes must
 * match) with class-balanced batches; held-out groups give the validation loss. Saves to
 * o->path every train.checkpoint_every steps, at the end, and when stopped. The same
 * seed, thread count and total steps give bit-identical parameters whether or not the
 * run was interrupted and resumed. Returns 0, ND_EINTR (stopped, saved) or a code. */
int nd_dm_train(nd_dm *m, const nd_dataset *ds, const nd_train_opts *o,
                nd_train_report *rep, nd_error *e);

/* Samples n windows of class cls into x (n, C, L) raw units, with the EMA weights and
 * the config's sample.* settings; rng gives the noise. Returns 0 or a code. imgs, when
 * not NULL, receives the images (n, nd_gaf_channels, L, L). */
int nd_dm_sample(nd_dm *m, int cls, size_t n, float *x, float *imgs, nd_rng *rng,
                 nd_error *e);
/* Fits the decode calibration (sample.calibrate windows per class, calib.c) for the
 * current step and sample.* settings, unless it is off or already fitted for them;
 * nd_dm_sample does this itself when needed, and nd_dm_save stores it. Classes without
 * training data stay uncalibrated. Returns 0 or a code. */
int nd_dm_calibrate(nd_dm *m, nd_error *e);
/* Sampling and calibration check *stop (set by a signal handler; NULL: never) between
 * batches and return ND_EINTR once it is set, the calibration left unfitted. */
void nd_dm_set_stop(nd_dm *m, volatile int *stop);
/* Classes whose samples the current calibration covers (0: decoded uncalibrated, e.g.
 * with sample.calibrate 0 or a model file made before the calibration existed). */
int nd_dm_calibrated(const nd_dm *m);
/* Held-out groups of the model's split of ds (same rule as training): 1 if held out. */
int nd_dm_is_val_group(const nd_dm *m, uint64_t group);

/* ------------------------------------------------------------------------------------ */
/* Evaluation (issue 5, eval.c) and pictures (png.c)                                     */
/* ------------------------------------------------------------------------------------ */

/* 1-D Wasserstein distance between two samples (sorted in place). */
double nd_w1(double *a, size_t na, double *b, size_t nb);
/* Mean autocorrelation over windows, lags 1..K, of channel c of windows x (n,C,L) on
 * log1p values: acf (K). Constant windows count as 0. */
void nd_mean_acf(double *acf, const float *x, size_t n, int C, int L, int c, int K);

typedef struct nd_eval_opts {
    uint64_t seed;
    int cnn_steps; /* CNN classifier training steps; 0 skips the CNN */
    int threads;
} nd_eval_opts;
/* The full report of `netdiffus eval` to out: real, synth, train share channels and L;
 * train may be NULL (no floor, no naive baseline, no memorisation, no TRTR). */
int nd_eval_report(FILE *out, const nd_dataset *real, const nd_dataset *synth,
                   const nd_dataset *train, const nd_eval_opts *o, nd_error *e);

/* PNG grid of windows: per window its GAF images and a plot of its series (log scale),
 * rows grouped by class, up to per_class windows each. imgs may be NULL (computed with a
 * per-dataset scale). Returns 0 or a code. */
int nd_png_windows(const char *path, const nd_dataset *ds, int per_class, nd_error *e);

/* ------------------------------------------------------------------------------------ */
/* Online learning (issue 7, online.c; step-level trainer access in dm.c)               */
/* ------------------------------------------------------------------------------------ */

/* Step-level access to the trainer, for online learning (dm.c). */

/* Writes more sections into the model file being saved, after the model's own. */
typedef int (*nd_dm_extra_fn)(ndf_writer *w, void *arg, nd_error *e);
/* nd_dm_save, with extra (may be NULL) adding sections before the atomic commit. */
int nd_dm_save_with(nd_dm *m, const char *path, nd_dm_extra_fn extra, void *arg,
                    nd_error *e);
/* One optimiser step (then the EMA) on B <= the model's max_batch raw windows x
 * (B, C, L) of model classes labels (B): timesteps, class dropout and noise come from
 * the model's RNG, as in nd_dm_train. *loss (may be NULL) gets the batch loss.
 * Returns 0, or ND_EFORMAT when the loss is not finite. */
int nd_dm_train_step(nd_dm *m, const float *x, const int *labels, int B, float *loss,
                     nd_error *e);
/* Adds a class with scale s at the next class row (row index = returned class index).
 * ND_ECONFIG when all model.max_classes rows are in use, ND_EUSAGE for a name that is
 * already there or not valid, -ENOMEM. */
int nd_dm_add_class(nd_dm *m, const char *name, const nd_gaf_scale *s, nd_error *e);
/* Replaces the scale of class cls (the images of that class change meaning: the caller
 * decides when that is acceptable, see docs/LIVE.md). */
void nd_dm_set_scale(nd_dm *m, int cls, const nd_gaf_scale *s);
/* The model's dataset header, for replacing class statistics and counters (classes are
 * added only through nd_dm_add_class). */
nd_dataset *nd_dm_dataset_mut(nd_dm *m);
/* Replaces the calibration targets of class cls by those of n raw windows x (n, C, L)
 * (online: the class's reservoir); the next sample refits the calibration. 0 or -ENOMEM. */
int nd_dm_set_target(nd_dm *m, int cls, const float *x, size_t n);
/* A sampling-only copy of m for batches up to max_batch (see nd_dm_load): config,
 * classes and statistics, GAF spec, class scales, step, and m's EMA weights as both its
 * parameters and its EMA. nd_dm_sample gives the same windows on it as on m for the same
 * rng state, and training m afterwards leaves it unchanged. It has no optimiser: do not
 * train or save it. Reads m only, so call it on the thread that trains m, between
 * steps; the copy may then move to another thread. The caller owns it (nd_dm_free).
 * NULL with e filled on -ENOMEM. */
nd_dm *nd_dm_snapshot(const nd_dm *m, int max_batch, nd_error *e);

/* Single-producer single-consumer ring of windows between a capture thread and the
 * trainer: fixed slots (class, group, C·L floats), C11 acquire/release indices, never
 * blocks. A push into a full ring drops the window and counts it. */
typedef struct nd_wring nd_wring;
/* size: slots, a power of two; wf: floats per window. NULL on -ENOMEM or bad size. */
nd_wring *nd_wring_new(uint32_t size, size_t wf);
void nd_wring_free(nd_wring *r); /* NULL is a no-op */
/* Producer side: copies the window in. Returns 1, or 0 when the ring is full (dropped). */
int nd_wring_push(nd_wring *r, uint32_t cls, uint64_t group, const float *values);
/* Consumer side: the oldest window (valid until nd_wring_pop), or NULL when empty. */
const float *nd_wring_peek(nd_wring *r, uint32_t *cls, uint64_t *group);
void nd_wring_pop(nd_wring *r);
/* Counters, readable from any thread: pushed (taken in), dropped (ring full), popped. */
uint64_t nd_wring_pushed(const nd_wring *r);
uint64_t nd_wring_dropped(const nd_wring *r);
uint64_t nd_wring_popped(const nd_wring *r);
/* Bytes the ring holds (all slots). */
size_t nd_wring_bytes(uint32_t size, size_t wf);

/* A uniform sample of up to cap windows of a stream (Vitter's algorithm R): after n
 * windows, each of them is in the sample with probability min(1, cap/n). Storage grows
 * by doubling up to cap windows. */
typedef struct nd_reservoir {
    uint32_t cap, n, alloc; /* capacity, windows held, windows allocated */
    size_t wf;              /* floats per window */
    uint64_t seen;          /* windows offered */
    float *x;               /* (alloc, wf) */
    uint64_t *groups;       /* (alloc) */
} nd_reservoir;
void nd_reservoir_init(nd_reservoir *r, uint32_t cap, size_t wf);
void nd_reservoir_free(nd_reservoir *r);
/* Offers one window: returns the slot it went to, -1 when not kept, -ENOMEM. */
long nd_reservoir_add(nd_reservoir *r, const float *x, uint64_t group, nd_rng *rng);

/* The online trainer of `netdiffus live`: a reservoir per class plus a buffer of the
 * most recent windows; classes join the model when their reservoir holds live.warmup
 * windows (scale fitted then, refit by the live.scale_refit rule); batches take
 * live.recent_share from the recent buffer and the rest class-balanced from the
 * reservoirs. Single-threaded: one thread adds windows and steps. docs/LIVE.md. */
typedef struct nd_online nd_online;

/* A new trainer for windows shaped like hdr (channels, L, bin) whose classes are hdr's
 * classes in order (the capture's class list: the index passed to nd_online_add). cfg
 * gives model, train and live settings (copied). NULL with e filled. */
nd_online *nd_online_new(const nd_config *cfg, const nd_dataset *hdr, nd_error *e);
/* Continues from a checkpoint written by nd_online_save: model, optimiser, EMA, step,
 * reservoirs, recent buffer and counters. The model keeps its stored model/train
 * settings; live.* settings come from cfg. Classes are matched to hdr's by name (a
 * stored class hdr lacks is kept and trained on, it just gets no new windows). */
nd_online *nd_online_resume(const char *path, const nd_config *cfg, const nd_dataset *hdr,
                            nd_error *e);
void nd_online_free(nd_online *o); /* NULL is a no-op */

/* Takes one window of class cls (hdr's index) into the reservoir and recent buffer;
 * adds the class to the model when it has warmed up. Returns 0 or a code. */
int nd_online_add(nd_online *o, uint32_t cls, uint64_t group, const float *x, nd_error *e);
/* One training step. Returns 1 (a step was taken), 0 (no class has warmed up yet) or a
 * negative code. */
int nd_online_step(nd_online *o, nd_error *e);
/* Replay statistics of class cls (hdr's index), stored with the next checkpoint. */
void nd_online_set_stats(nd_online *o, uint32_t cls, const nd_class_stats *st);
/* Writes the checkpoint atomically: the model file (readable by `sample`, `replay`)
 * plus a LIVE section with the reservoirs. Nothing to write before the first class has
 * warmed up: returns 0 and writes nothing (*written = 0). */
int nd_online_save(nd_online *o, const char *path, int *written, nd_error *e);
/* The model (NULL until a class has warmed up). */
nd_dm *nd_online_model(nd_online *o);

#define ND_ONLINE_NO_ROW (-2)
typedef struct nd_online_class_info {
    const char *name;
    uint64_t seen;    /* windows offered */
    uint32_t kept;    /* in the reservoir */
    int model_class;  /* row in the model, -1 while warming up, ND_ONLINE_NO_ROW when
                         every model.max_classes row was taken */
    uint64_t clipped; /* windows with a value outside the fitted scale */
    uint32_t refits;  /* scale refits */
} nd_online_class_info;

typedef struct nd_online_info {
    uint64_t step;          /* model steps in total (resumed runs count earlier ones) */
    uint64_t steps_run;     /* steps in this process */
    uint64_t images;        /* images trained on in this process */
    uint64_t windows;       /* windows taken in (this process and before) */
    double loss;            /* running mean of the batch loss (0.98 decay); 0 before any */
    double last_loss;       /* loss of the last batch */
    uint32_t n_classes;     /* classes known (hdr's and restored ones) */
    uint32_t model_classes; /* classes in the model */
    size_t memory_bytes;    /* reservoirs + recent buffer, at most (the configured bound) */
} nd_online_info;
void nd_online_get_info(const nd_online *o, nd_online_info *info);
/* Class i of nd_online_info.n_classes. */
void nd_online_class(const nd_online *o, uint32_t i, nd_online_class_info *ci);
/* The bound on reservoir and recent-buffer memory for n_classes classes of wf floats. */
size_t nd_online_memory_bound(const nd_config *cfg, uint32_t n_classes, size_t wf);

#endif
