/*
 * nn.h — the network core (libnd_nn): tensor layers with forward and backward passes on
 * OpenBLAS, the U-Net "unet-ref" (docs/MODEL.md), and AdamW with gradient clipping,
 * warm-up and EMA. It knows nothing of traffic, GAF images or diffusion: the diffusion
 * model (model.h) draws x_t and t, calls nd_unet_forward for the network's prediction,
 * puts its loss gradient into nd_unet_backward and steps nd_adamw.
 *
 * Conventions (llm.c style): every tensor is a flat float32 buffer, images are
 * (N, C, H, W) row-major; layer functions come in forward/backward pairs with outputs
 * first, const inputs, dimensions last. Backward functions ACCUMULATE (+=) into every
 * gradient they are given (input and parameter gradients alike): callers zero them.
 * A NULL input gradient is skipped. Broken shapes are ND_ASSERTs.
 */
#ifndef ND_NN_H
#define ND_NN_H

#include <stddef.h>
#include <stdint.h>

#include "nd.h"

/* ------------------------------------------------------------------------------------ */
/* Context: threads, scratch memory and the per-layer profile                           */
/* ------------------------------------------------------------------------------------ */

/* Layer kinds of the profile (nd_ctx_profile_print). */
enum nd_prof {
    ND_PROF_CONV3,   /* 3×3 convolution, stride 1 */
    ND_PROF_CONV3S2, /* 3×3 convolution, stride 2 */
    ND_PROF_CONV1,   /* 1×1 convolution */
    ND_PROF_GNSILU,  /* GroupNorm (+ fused SiLU) */
    ND_PROF_ATTN,    /* softmax attention core (q·k, softmax, ·v) */
    ND_PROF_EMB,     /* timestep/class embeddings, linear layers, their SiLU */
    ND_PROF_UPCAT,   /* nearest upsample, channel concat, embedding add */
    ND_PROF_LOSS,    /* MSE */
    ND_PROF_OPTIM,   /* AdamW + EMA */
    ND_PROF_OTHER,   /* zeroing gradients, residual adds */
    ND_PROF_N
};

/* Owns the threads setting and a scratch area that layers borrow (im2col columns,
 * per-thread partial weight gradients). Not shared between threads that call layers
 * at the same time: give each its own. */
typedef struct nd_ctx nd_ctx;

/* Kernel levels of the 3×3 stride-1 convolutions. The build compiles every kernel its
 * compiler can target, the rest of the program for the baseline CPU; which kernels run
 * is decided at run time from the CPU's features, so that one binary runs on any x86-64
 * and uses AVX-512 where the CPU has it. Every level gives the same results up to
 * float32 rounding (the bfloat16 products, opt-in, up to bf16 rounding). */
enum nd_cpu {
    ND_CPU_GENERIC,    /* im2col + OpenBLAS sgemm (OpenBLAS picks its own CPU kernels) */
    ND_CPU_AVX512,     /* a direct AVX-512 kernel where the shape fits (conv_direct.c) */
    ND_CPU_AVX512BF16, /* ... and the bfloat16 kernel for nd_ctx_set_bf16 (conv_bf16.c) */
    ND_CPU_N
};
const char *nd_cpu_name(int level); /* "generic", "avx512", "avx512bf16" */
/* Whether this build compiled a level's kernels; whether this CPU runs them too. */
int nd_cpu_compiled(int level);
int nd_cpu_supported(int level);
/* The level contexts run at: the highest level nd_cpu_supported, or the one the
 * environment variable ND_CPU names (generic, avx512 or avx512bf16), which forces a lower
 * path (tests, comparisons). ND_ECONFIG with e saying why when ND_CPU names no level, or
 * one this build or CPU lacks. */
int nd_cpu_select(nd_error *e);

/* threads: parallel loops of the layers (0 = all online cores). OpenBLAS is kept at one
 * thread inside those loops, so the two never oversubscribe the cores. The kernel level
 * is nd_cpu_select's. NULL on -ENOMEM, or when nd_cpu_select refuses ND_CPU (logged). */
nd_ctx *nd_ctx_new(int threads);
void nd_ctx_free(nd_ctx *ctx); /* NULL is a no-op */
/* Lowers the context's kernel level to level (for comparisons; never above the level it
 * was created with, nor above what the CPU has). Returns the level in effect. Lowering
 * below ND_CPU_AVX512BF16 turns the bfloat16 products off. */
int nd_ctx_set_cpu(nd_ctx *ctx, int level);
/* bfloat16 products (off by default): the direct 3×3 kernel's forward and input-gradient
 * products take bf16 inputs and weights (8-bit mantissa) with float32 sums, at twice the
 * multiply rate (AVX512-BF16). Relative error per convolution ~1e-2·(typical term);
 * meant for sampling, measured for training (docs/PERFORMANCE.md). Returns whether it is
 * on (0 below kernel level ND_CPU_AVX512BF16). */
int nd_ctx_set_bf16(nd_ctx *ctx, int on);
/* OpenBLAS's build and the CPU kernels it chose (openblas_get_config), for --version. */
const char *nd_blas_config(void);
/* Profiling on/off (off by default); when on, layers add their wall time per kind. */
void nd_ctx_profile(nd_ctx *ctx, int on);
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
/* The same with plain loops and double accumulation: the reference for tests. */
void nd_sgemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);

/* ------------------------------------------------------------------------------------ */
/* Layers                                                                               */
/* ------------------------------------------------------------------------------------ */

/* Convolution, k = 3 (padding 1, stride 1 or 2) or k = 1 (stride 1, no padding).
 * inp is (B,C,H,W), w is (OC,C,k,k), b is (OC) or NULL, out is (B,OC,Ho,Wo) with
 * Ho = (H-1)/stride+1 (same for W). */
void nd_conv2d_forward(nd_ctx *ctx, float *out, const float *inp, const float *w,
                       const float *b, int B, int C, int H, int W, int OC, int k, int stride);
void nd_conv2d_backward(nd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int B, int C, int H, int W, int OC,
                        int k, int stride);

/* Linear: inp is (N,IN), w is (OUT,IN) (PyTorch layout), b is (OUT), out is (N,OUT). */
void nd_linear_forward(nd_ctx *ctx, float *out, const float *inp, const float *w,
                       const float *b, int N, int IN, int OUT);
void nd_linear_backward(nd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int N, int IN, int OUT);

/* GroupNorm over (C/G channels × P pixels) per image and group, eps 1e-5, then an
 * optional SiLU (silu != 0) fused in. inp is (B,C,P); gamma, beta are (C);
 * mean and rstd are (B,G) outputs kept for the backward. The backward recomputes the
 * normalised values from inp, mean and rstd instead of storing them. */
void nd_groupnorm_forward(nd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, int B, int C, int P, int G,
                          int silu);
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
void nd_concat_forward(nd_ctx *ctx, float *out, const float *a, const float *b, int B, int C1,
                       int C2, int P);
void nd_concat_backward(nd_ctx *ctx, float *da, float *db, const float *dout, int B, int C1,
                        int C2, int P);

/* Single-head softmax self-attention core. qkv is (B,3C,P): q = channels [0,C),
 * k = [C,2C), v = [2C,3C). att (B,P,P) keeps softmax(qᵀk/√C) (rows: queries) for the
 * backward; out is (B,C,P) with out[c][i] = Σ_j v[c][j]·att[i][j]. The GroupNorm, the
 * 1×1 qkv and output projections and the residual of the attention block are the layers
 * above (see unet.c). */
void nd_attention_forward(nd_ctx *ctx, float *out, float *att, const float *qkv, int B, int C,
                          int P);
void nd_attention_backward(nd_ctx *ctx, float *dqkv, const float *dout, const float *qkv,
                           const float *att, int B, int C, int P);

/* Sinusoidal timestep embedding: t is (B) (float, so fractional steps work), out is
 * (B,D), D even: out[n] = [sin(t·f_0..f_{D/2-1}) | cos(t·f_0..)], f_i = 10000^(-2i/D).
 * No backward: t is not learnt. */
void nd_timestep_embedding(float *out, const float *t, int B, int D);

/* Class embedding: rows of table (K,D) picked by y (B) (values in [0,K)). */
void nd_class_embedding_forward(float *out, const float *table, const int *y, int B, int K,
                                int D);
void nd_class_embedding_backward(float *dtable, const float *dout, const int *y, int B, int K,
                                 int D);

/* Per-channel add of a (B,C) vector to (B,C,P) maps, in place, and its backward. */
void nd_add_channel_forward(float *h, const float *e, int B, int C, int P);
void nd_add_channel_backward(float *de, const float *dh, int B, int C, int P);

/* Mean squared error over n values; the backward writes (overwrites) dout =
 * dloss·2(out−target)/n. */
float nd_mse_forward(const float *out, const float *target, size_t n);
void nd_mse_backward(float *dout, const float *out, const float *target, size_t n, float dloss);
/* The same for n of the total values the mean is over (a part of a batch that another
 * process has the rest of): dout = dloss·2(out−target)/total, the bits the whole batch's
 * backward gives these values. */
void nd_mse_backward_part(float *dout, const float *out, const float *target, size_t n,
                          size_t total, float dloss);

/* ------------------------------------------------------------------------------------ */
/* The U-Net                                                                            */
/* ------------------------------------------------------------------------------------ */

#define ND_UNET_MAX_LEVELS 6
/* Upper bounds of the other fields (the config's, docs/FORMATS.md): a record read from a
 * file is held to them before anything is sized by it. */
#define ND_UNET_MAX_CHANNELS   (2 * ND_MAX_CHANNELS) /* series and their activity images */
#define ND_UNET_MAX_L          1024
#define ND_UNET_MAX_BASE       512
#define ND_UNET_MAX_MULT       16
#define ND_UNET_MAX_RES_BLOCKS 8
#define ND_UNET_MAX_GROUPS     64
#define ND_UNET_MAX_EMB        2048
#define ND_UNET_MAX_CLASSES    ND_MAX_CLASSES
#define ND_UNET_MAX_COND       (ND_UNET_MAX_CHANNELS + 1)
#define ND_UNET_MAX_POS_ROWS   64
#define ND_UNET_MAX_GUIDE_ROWS 64

typedef struct nd_unet_config {
    int channels; /* C: image channels (series channels) */
    int L;        /* image side; divisible by 2^(levels-1) */
    int base;     /* base_channels */
    int levels;   /* length of mult */
    int mult[ND_UNET_MAX_LEVELS];
    int res_blocks;   /* per encoder level; the decoder has one more */
    int attn_min_res; /* middle attention when the lowest resolution <= this; 0 = none */
    int groups;       /* GroupNorm groups; divides every channel count */
    int emb_dim;      /* time/class embedding width, even */
    int max_classes;  /* class rows; row max_classes is the null class (guidance) */
    int coords;       /* 0/1: two more input planes, each pixel's row and column in
                         [-1, 1], so that every layer can tell where in the window
                         (which bins) it is, not only near the image border */
    int cond;         /* 0..ND_UNET_MAX_COND: input planes the caller gives with each
                         image (nd_unet_set_cond), between the image and the coordinate
                         planes: what the image is conditioned on besides its class */
    int pos_rows;     /* 0..ND_UNET_MAX_POS_ROWS: rows of a second embedding table,
                         added to the class's row, that the caller picks for each image
                         (nd_unet_set_pos; row 0 without it): where in a sequence the
                         image is, which a constant input plane would tell the network
                         only faintly once the normalisation has scaled it with the noise */
    int guide_rows;   /* 0 or 2..ND_UNET_MAX_GUIDE_ROWS: rows of a third table, zero at
                         first and the last tensor of the block, read at a fractional row
                         (nd_unet_set_guide; row 0 without it) and added to the class's:
                         a guidance scale as an input. A network without the table is
                         therefore a prefix of the same network with it, which computes
                         what it did while the table is zero */
} nd_unet_config;

/* 0, or ND_ECONFIG with e saying which number does not fit, its value and bound (every
 * field within its bounds above, at most 64 ResBlocks in all, divisibility of L and of
 * every channel count by groups, an even embedding). */
int nd_unet_config_check(const nd_unet_config *uc, nd_error *e);
/* The parameter count of the network uc describes, computed without allocating it
 * (nd_unet_num_params of nd_unet_new(uc, ...)); 0 when uc fails nd_unet_config_check or
 * memory runs out. */
size_t nd_unet_config_params(const nd_unet_config *uc);
/* unet-ref's defaults (base 32, mult 1,2,2, 2 ResBlocks, attention at L/4,
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
/* Tensor i's shape as PyTorch lays it out, which is how the block stores it: convolutions
 * (out, in, kh, kw), linear layers (out, in), the class table (max_classes + 1, emb_dim)
 * the position table (pos_rows, emb_dim) and the guidance table (guide_rows, emb_dim),
 * norms and biases (C). Returns the dimension count (1..4); shape[ndim..] is unused. */
int nd_unet_tensor_shape(const nd_unet *m, size_t i, int shape[4]);
/* Multiply-adds ×2 of one image's forward pass (backward is about twice that). */
double nd_unet_flops_per_image(const nd_unet *m);

/* out (B,C,L,L) = net(x (B,C,L,L), t (B) timesteps, y (B) class rows). Keeps what the
 * backward needs; B <= max_batch. With train = 0 the same arithmetic runs (sampling). */
void nd_unet_forward(nd_unet *m, nd_ctx *ctx, float *out, const float *x, const float *t,
                     const int *y, int B);
/* The conditioning planes (B, cond, L, L) the next nd_unet_forward reads for its B images
 * (read during that call only); NULL, the state after it: all zero. A network without
 * cond planes ignores it. */
void nd_unet_set_cond(nd_unet *m, const float *cond);
/* The position rows (B, each 0..pos_rows − 1) the next nd_unet_forward adds for its B
 * images (read during that call only); NULL, the state after it: row 0. A network
 * without position rows ignores it. */
void nd_unet_set_pos(nd_unet *m, const int *rows);
/* The fractional guidance rows (B, each in [0, guide_rows − 1]) the next nd_unet_forward
 * reads for its B images (during that call only); NULL, the state after it: row 0. A
 * network without the guidance table ignores it. */
void nd_unet_set_guide(nd_unet *m, const float *rows);
/* Accumulates the parameter gradients of the last forward for dout (B,C,L,L) into the
 * gradient block (nd_unet_zero_grad first). dx (B,C,L,L) may be NULL (the conditioning
 * and coordinate planes get no gradient). */
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
float *nd_adamw_moments(nd_adamw *o); /* (2n): m then v, for checkpoints */
uint64_t nd_adamw_steps(const nd_adamw *o);
void nd_adamw_set_steps(nd_adamw *o, uint64_t steps); /* resuming from a checkpoint */

#endif
