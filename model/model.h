/*
 * model.h — the diffusion model (libnd_model): windows to Gramian Angular Field images
 * and back (gaf.c), the noise schedule and samplers (diffusion.c), the decoder that turns
 * sampled images into bytes per bin (decode.c), the class-conditional model with its
 * trainer and model file (dm.c), and the sampling policy of every replay (flows.c). The
 * network itself is nn.h's; measuring what the model makes is eval.h's, which nothing
 * here calls. Settings come in as the structs below, which the program fills from its
 * config (app/opts_model.c). See docs/MODEL.md.
 */
#ifndef ND_MODEL_H
#define ND_MODEL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nd.h"
#include "nn.h"

/* ------------------------------------------------------------------------------------ */
/* GAF: series windows <-> Gramian Angular Summation Field images (gaf.c)                */
/* ------------------------------------------------------------------------------------ */

/* The longest window a model takes (its image side): GAF images grow as L², and the
 * decoders keep one window's channel on the stack. */
#define ND_MODEL_MAX_L 256
/* The largest class scale (log1p of bytes per bin): expm1 of it is a finite float32. */
#define ND_GAF_MAX_LOG 88.0f

/* Per class and channel, log1p of the smallest non-zero and of the largest value seen in
 * training: what maps raw bytes to GAF values and back. */
typedef struct nd_gaf_scale {
    float lo[ND_MAX_CHANNELS], hi[ND_MAX_CHANNELS];
} nd_gaf_scale;

/* ND_GAF_HEADROOM is zero-aware scaling with the largest training value below the top
 * of the range (ND_GAF_VMAX): the image's diagonal 2v² − 1 cannot pass 1, so a sampled
 * bin that overshoots the top would decode to exactly the class's largest value, and
 * busy video bins sit close to it. With room above, an overshoot decodes to a value a
 * little above the largest instead of piling up on it. */
enum nd_gaf_scaling { ND_GAF_ZERO_AWARE = 0, ND_GAF_LOG = 1, ND_GAF_HEADROOM = 2 };
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

/* Zero-aware scaling: non-zero values land in [ND_GAF_VMIN, 1] (ND_GAF_HEADROOM:
 * [ND_GAF_VMIN, ND_GAF_VMAX]), zeros at 0. */
#define ND_GAF_VMIN 0.5f
#define ND_GAF_VMAX 0.9f
/* An activity image's bin is busy above this decoded value: √½, where the image's
 * diagonal 2v² − 1 is 0, halfway between idle (−1) and busy (+1). The network draws
 * the diagonal, so an undecided bin sits near 0 there; halfway in v (0.5, the diagonal's
 * −0.5) would call most undecided bins busy. */
#define ND_GAF_ACTIVE 0.70710678f

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

/* ------------------------------------------------------------------------------------ */
/* Decoder: a sampled image's decoded series to raw bytes per bin (decode.c)            */
/* ------------------------------------------------------------------------------------ */

/* The last stage of sampling, per class and channel. A small model ranks bins well but
 * gets their levels wrong; the decoder keeps its ranking and fixes the levels with
 * monotone maps fitted on the model's own samples against targets measured on the
 * training windows (docs/MODEL.md, "Decoder"):
 *   - an activity threshold per bin position that gives, at each position, the training
 *     data's share of idle bins there (the model's scores pooled over the position and
 *     its two neighbours either side: real windows idle differently at their start and
 *     end);
 *   - a map of busy log1p values from the model's quantiles onto the training data's,
 *     then a shift per position to the training data's mean busy level there;
 *   - the same for the window's volume (log1p of its total), applied as one scale of
 *     the whole window;
 *   - last, busy values onto the training data's at each position (its two neighbours
 *     either side pooled), the window then scaled back to its volume;
 *   - across channels, which bins are idle together: each channel's activity score is
 *     mixed with the mean of the other channels' by one weight per class, the one that
 *     gives the training data's share of bins where every channel is idle (each channel
 *     alone has its own share either way).
 * The time structure (which bins are idle next to which) is the model's own. The
 * decoder uses nothing of eval.h, whose measures stay independent of it.
 * Quantiles are ND_DECODER_Q + 1 values at k/Q, piecewise linear in between. */
#define ND_DECODER_Q 64
/* Quantiles per position of the output map: ND_DECODER_QP + 1 values at k/QP, fewer than
 * ND_DECODER_Q because a position's pooled values are a fifth of a window's or fewer. */
#define ND_DECODER_QP 32

/* What the decoder aims at, measured on a class's training windows (one channel). NaN
 * where there was nothing to measure: idle NaN when the class has no windows, busy NaN
 * when it has no busy bin; volume NaN in targets read from model files written before
 * the volume map existed (the decoder then does without it). */
typedef struct nd_decoder_target {
    float idle; /* share of idle (zero) bins */
    /* share of idle bins at each position; NaN beyond L. Targets of older model files
     * have none: the overall share at every position. */
    float idle_at[ND_MODEL_MAX_L];
    /* mean log1p of the busy bins at each position; NaN where none is busy and beyond
     * L (and in targets of older model files) */
    float level_at[ND_MODEL_MAX_L];
    float busy[ND_DECODER_Q + 1];   /* log1p quantiles of busy bins */
    float volume[ND_DECODER_Q + 1]; /* log1p quantiles of the windows' totals */
    /* at each position i, the log1p quantiles of the busy bins at i (with fewer than 128
     * busy there, at i-2..i+2 pooled, truncated at the window's edges); NaN where fewer
     * than 16 are busy, beyond L, and in targets of model files from before the output
     * map was per position */
    float busy_at[ND_MODEL_MAX_L][ND_DECODER_QP + 1];
    /* share of bins where every channel of the window is idle (the same in each channel's
     * target of a class); NaN in targets of model files from before the channels were
     * coupled */
    float idle_all;
} nd_decoder_target;

/* What was fitted on the model's own samples (one class and channel). threshold_at[0]
 * NaN: not fitted (the class decodes uncalibrated); busy NaN: no busy bin in the samples
 * (busy values pass unmapped); volume NaN: no volume map. */
typedef struct nd_decoder_map {
    /* a bin at position i is busy when its activity score is above threshold_at[i]
     * (-inf: always, +inf: never); NaN beyond L */
    float threshold_at[ND_MODEL_MAX_L];
    float busy[ND_DECODER_Q + 1];   /* log1p quantiles of the model's busy bins */
    float volume[ND_DECODER_Q + 1]; /* log1p quantiles of its windows' totals after the
                                       per-bin map */
    /* last, added to the log1p value of a busy bin at position i: the target's level_at
     * minus what the other maps give there (0 where either is unknown) */
    float shift_at[ND_MODEL_MAX_L];
    /* at each position i, the log1p quantiles of its busy bins there after all the maps
     * above, pooled as busy_at is, mapped last onto the target's busy_at[i] (NaN: no
     * output map at i) */
    float out_at[ND_MODEL_MAX_L][ND_DECODER_QP + 1];
    /* the bin's activity score is (1 - couple)·its own + couple·the mean of the other
     * channels' at the bin (0: its own alone) */
    float couple;
} nd_decoder_map;

/* The largest weight of the other channels in a channel's activity score. */
#define ND_DECODER_MAX_COUPLE 0.5f

/* Target t of channel c of n raw windows x (n,C,L). scratch: n·L floats. */
void nd_decoder_target_measure(nd_decoder_target *t, const float *x, size_t n, int C, int L,
                               int c, float *scratch);
/* Map f for target t from n windows of L decoded bins of the model's own samples: score
 * (activity: the mask's decoded value, or the value without masks) and lval (log1p of the
 * uncalibrated raw value), both (n, L). The threshold at position i is the quantile of
 * the scores at positions i-2..i+2 (pooled, truncated at the edges) that makes the share
 * of idle bins at i after all maps t->idle_at[i]. With n 0 or a target without data
 * (idle NaN) nothing is fitted (threshold_at NaN). scratch: 2·n·L + n floats. */
void nd_decoder_fit(nd_decoder_map *f, const nd_decoder_target *t, const float *score,
                    const float *lval, size_t n, int L, float *scratch);
/* Raw value of a bin at position i with this score and uncalibrated log1p value l (the
 * per-bin maps only). */
float nd_decoder_bin(const nd_decoder_map *f, const nd_decoder_target *t, int i, float score,
                     float l);
/* One window's channel through the decoder: x[i] the raw value of bin i (score: its L
 * activity scores, lval: uncalibrated log1p values) after the per-bin maps and the level
 * shift of each position, the volume map (one scale for the window; windows the
 * thresholds left entirely idle keep their most nearly busy bin for it, and it makes idle
 * as many as the target has) and the output map (busy values onto the target's at their
 * position, in order), then scaled back to the volume the volume map gave it. */
void nd_decoder_window(const nd_decoder_map *f, const nd_decoder_target *t, float *x,
                       const float *score, const float *lval, int L);
/* The maps f (C: a class's channels, in order) for its targets t (C) from n windows of
 * the model's own samples, score and lval (C, n, L) as for nd_decoder_fit: each
 * channel's, fitted on its activity scores mixed with the other channels' (couple), the
 * weight found by bisection in [0, ND_DECODER_MAX_COUPLE] so that the share of bins
 * where every channel is idle after all maps is the target's idle_all (0 when it is
 * already that high, or without idle_all or a second channel; ND_DECODER_MAX_COUPLE when
 * even that falls short). scratch: (C + 3)·n·L + n floats. */
void nd_decoder_fit_class(nd_decoder_map *f, const nd_decoder_target *t, int C,
                          const float *score, const float *lval, size_t n, int L,
                          float *scratch);
/* One window of a class through its maps f (C): x, score and lval (C, L); each channel
 * by nd_decoder_window on its mixed scores. */
void nd_decoder_window_class(const nd_decoder_map *f, const nd_decoder_target *t, int C,
                             float *x, const float *score, const float *lval, int L);

/* ------------------------------------------------------------------------------------ */
/* Diffusion: schedule, training targets, samplers (diffusion.c)                         */
/* ------------------------------------------------------------------------------------ */

enum nd_pred { ND_PRED_EPS = 0, ND_PRED_V = 1 };
enum nd_schedule { ND_SCHEDULE_COSINE = 0, ND_SCHEDULE_LINEAR = 1 };
enum nd_sampler { ND_SAMPLER_DDIM = 0, ND_SAMPLER_DDPM = 1, ND_SAMPLER_DPMPP = 2 };
enum nd_clip { ND_CLIP_DYNAMIC = 0, ND_CLIP_HARD = 1, ND_CLIP_NONE = 2 };

#define ND_DIFF_MAX_T 10000

typedef struct nd_diffusion {
    int T;
    int pred;                   /* enum nd_pred */
    double abar[ND_DIFF_MAX_T]; /* ᾱ_t for t = 0..T-1 (t = 0 is the least noisy) */
} nd_diffusion;

/* schedule ND_SCHEDULE_COSINE (Nichol & Dhariwal, s = 0.008, β ≤ 0.999) or
 * ND_SCHEDULE_LINEAR (β from 1e-4 to 0.02 scaled to T). Returns 0 or ND_ECONFIG. */
int nd_diffusion_init(nd_diffusion *d, int T, int schedule, int pred, nd_error *e);
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
    const float *guidances; /* (B) each image's own w instead, with its null pass; NULL:
                               guidance for all */
    float eta;              /* DDIM stochasticity */
    int clip;               /* enum nd_clip */
    int null_class;         /* class row of the unconditional pass */
    /* Optional: maps one predicted clean image (img floats) in place onto the valid
     * images (after clipping, at every step), e.g. the nearest GASF; NULL: none. */
    void (*project)(void *arg, float *x0);
    void *project_arg;
    /* Optional: inpainting, the part of each image that is known set at every step
     * (RePaint's replacement). Called for image b of the batch
     * with its predicted clean image (abar 1, after project) and with the next, noisier
     * image (abar its ᾱ), which it sets to the known part noised to that level. NULL:
     * nothing is known. */
    void (*inpaint)(void *arg, float *x, int b, double abar);
    void *inpaint_arg;
    /* With inpaint: each DDPM or DDIM step but the last is taken this many times, the
     * image noised back to the step's level in between (RePaint's resampling, jumps of
     * one step), so that the unknown part comes to agree with the known; 0 or 1: once. */
    int resample;
    int nested; /* 0/1: the timestep grid, the samplers' or the nested one (model_impl.h) */
} nd_sample_opts;

/* Samples B images of img floats each for classes y (B) into x (B, img), starting from
 * noise drawn from rng. f is called with up to 2B images (guidance != 1: conditional
 * and null copies in one batch). Deterministic for a seed (and for DDIM with eta 0 a
 * function of the starting noise only). */
void nd_diffusion_sample(const nd_diffusion *d, const nd_sample_opts *o, nd_denoise_fn f,
                         void *arg, float *x, const int *y, int B, size_t img, nd_rng *rng);
/* Parses "ddim|ddpm|dpmpp", "dynamic|clip|none", "eps|v", "cosine|linear"; -1 when
 * unknown. */
int nd_sampler_from_name(const char *s);
int nd_clip_from_name(const char *s);
int nd_pred_from_name(const char *s);
int nd_schedule_from_name(const char *s);
/* The names those parse ("?" for a value out of range). */
const char *nd_sampler_name(int sampler);
const char *nd_clip_name(int clip);

/* ------------------------------------------------------------------------------------ */
/* Trainer and model files (dm.c)                                                        */
/* ------------------------------------------------------------------------------------ */

/* A trained (or training) class-conditional diffusion model over GAF images: the
 * network, optimiser state, class scales, the decoder, the classes and replay statistics
 * of the dataset, and its settings. Saved as a .ndm file (docs/FORMATS.md §3).
 *
 * Settings are what a model file stores so that it can be resumed and sampled without
 * the program's config (nd_dm_settings); options (nd_train_opts) belong to one call. */
typedef struct nd_dm nd_dm;

/* How the model samples: the program's sample.* settings and model.decode. A model file
 * stores them as its defaults; nd_dm_set_sampling changes them. */
typedef struct nd_dm_sampling {
    int sampler;        /* enum nd_sampler */
    uint32_t steps;     /* S >= 1 (the samplers take at most T) */
    double guidance;    /* classifier-free guidance scale w; 1: no null pass */
    double eta;         /* DDIM stochasticity */
    int clip;           /* enum nd_clip: the predicted clean image at every step */
    int project;        /* 0/1: the predicted clean image onto the nearest GASF image */
    int decode;         /* enum nd_gaf_decode: image to series */
    uint32_t calibrate; /* windows per class the decoder is fitted on; 0: uncalibrated */
    uint32_t batch;     /* images per sampler run (twice that with guidance) */
    uint64_t seed;      /* the decoder fit's noise; the program's default sampling seed */
} nd_dm_sampling;

/* How the model trains: the program's train.* settings and model.threads. */
typedef struct nd_dm_training {
    uint64_t steps; /* default total of a run (the program's --steps) */
    uint32_t batch;
    double lr, weight_decay, grad_clip;
    uint32_t warmup_steps; /* linear learning-rate warm-up */
    double ema_decay;
    int ema_warmup;            /* 0/1: decay min(ema_decay, (1+s)/(10+s)) at step s */
    double class_dropout;      /* share of images trained as the null class */
    double val_fraction;       /* share of groups held out for validation */
    uint64_t checkpoint_every; /* steps; 0: only at the end */
    uint64_t seed;             /* weights, batches, noise, the validation split */
    uint32_t threads;          /* 0: all cores; same seed and threads, same weights */
} nd_dm_training;

/* Everything a model is built from. */
typedef struct nd_dm_settings {
    nd_unet_config net; /* unet-ref's numbers; channels and L come from the dataset */
    int scaling;        /* GAF value scaling, enum nd_gaf_scaling */
    int mask;           /* 0/1: an activity image per channel */
    uint32_t timesteps; /* T */
    int schedule;       /* enum nd_schedule */
    int pred;           /* enum nd_pred */
    int context;        /* 0/1: the network takes a window's known first bins as input
                           planes (net.cond: image channels + 1), trained on windows of
                           flows that continue the one before (docs/MODEL.md) */
    int flow_position;  /* 0/1, with context: the network is told where in its flow a
                           window starts (net.pos_rows, a row per doubling of the windows
                           since the flow's first; row 0: not known); context models
                           from before it have none */
    nd_dm_training train;
    nd_dm_sampling sample;
} nd_dm_settings;

/* Upper bounds of settings that size memory (the config's): nd_dm_new and a model file's
 * DMCF record are held to them. */
#define ND_DM_MAX_BATCH     4096   /* train.batch, sample.batch */
#define ND_DM_MAX_CALIBRATE 100000 /* sample.calibrate: windows per class */
#define ND_DM_MAX_THREADS   1024   /* model.threads */

/* A new model for training on ds (classes, channels, L) with settings s (copied). The
 * class scales and the decoder's targets are measured on ds's training part: windows
 * whose group is not held out for validation (s->train.val_fraction, by group).
 * provenance: text stored in the file beside the settings (the program's config, which
 * `inspect` shows); NULL: ds's. NULL with e filled (ND_ECONFIG for a setting that does
 * not fit) on failure. */
nd_dm *nd_dm_new(const nd_dm_settings *s, const nd_dataset *ds, const char *provenance,
                 nd_error *e);

/* Settings of a model file written before its DMCF record held them (record version 1),
 * from the config text the file embeds (yaml; path for messages): the program parses it,
 * model/ reads no YAML. Only the training and sampling parts are used (the network's
 * numbers are in the record). Returns 0 or a code with e set. */
typedef int (*nd_dm_legacy_fn)(nd_dm_settings *s, const char *yaml, const char *path,
                               nd_error *e);
/* max_batch of nd_dm_load and nd_dm_snapshot: the stored train.batch (in an MPI run of
 * N ranks its N-th part, rounded up: what a rank trains on), or twice the stored
 * sample.batch (guidance runs conditional and null copies in one batch). */
#define ND_DM_BATCH_TRAIN  (-1)
#define ND_DM_BATCH_SAMPLE (-2)
/* Loads a model file; max_batch: the largest batch the caller will train or sample at
 * once, or ND_DM_BATCH_*. legacy: reads the settings of version-1 files (NULL: those are
 * refused with ND_EVERSION). NULL with e filled on failure. */
nd_dm *nd_dm_load(const char *path, int max_batch, nd_dm_legacy_fn legacy, nd_error *e);
/* Writes the model file atomically (temporary file, fsync, rename). */
int nd_dm_save(nd_dm *m, const char *path, nd_error *e);
void nd_dm_free(nd_dm *m); /* NULL is a no-op */

const nd_dm_settings *nd_dm_get_settings(const nd_dm *m);
/* Replaces the sampling settings (stored with the model when it is next saved); the
 * decoder is refitted by the next sample when they change what it was fitted for.
 * ND_ECONFIG (nothing changed) when a field is out of range. */
int nd_dm_set_sampling(nd_dm *m, const nd_dm_sampling *s, nd_error *e);
const nd_dataset *nd_dm_dataset(const nd_dm *m); /* classes, channels, statistics */
const nd_gaf_spec *nd_dm_gaf(const nd_dm *m);    /* decode: the sampling setting's */
const nd_gaf_scale *nd_dm_scale(const nd_dm *m, int cls);
nd_unet *nd_dm_unet(nd_dm *m);
/* The EMA of the weights (nd_unet_num_params floats, laid out as nd_dm_unet's parameter
 * block): what sampling runs the network with. */
const float *nd_dm_ema(const nd_dm *m);
uint64_t nd_dm_step(const nd_dm *m);
/* Writes the network's EMA weights as a safetensors file (docs/FORMATS.md, "Safetensors
 * export"): one F32 tensor per parameter under PyTorch's names and shapes (the ".w" and
 * ".b" of nd_unet_tensor spelled ".weight" and ".bias"), so that the U-Net of
 * scripts/torch_reference.py loads them with load_state_dict; the network's settings as
 * metadata. Written atomically. */
int nd_dm_export_safetensors(nd_dm *m, const char *path, nd_error *e);
/* The model-specific part of `netdiffus inspect` for an open model file, printed to out
 * and/or as a "model" object in js (either may be NULL), after
 * checking its network record as nd_dm_load does (bounds, the parameter count against
 * the file's PARM, EMAW and ADAM): a record no model can be loaded from is an error. */
int nd_dm_inspect(const ndf_reader *r, FILE *out, nd_json *js, nd_error *e);

typedef struct nd_train_progress {
    uint64_t step, steps; /* the model's step; the step training goes to */
    double loss;          /* running mean of the batch loss */
    double val_loss;      /* validation loss (EMA weights) measured at this step, else NaN */
    double lr;            /* learning rate of the step */
    double images_per_s;  /* training images per second since the run started */
    double seconds;       /* since the run started */
    double allreduce_s;   /* of those, in summing gradients over the ranks of an MPI run
                             (waits for the slowest rank included); 0 in one process */
    int final;            /* the end of the run (trained, stopped or out of time) */
} nd_train_progress;

typedef struct nd_train_opts {
    uint64_t steps;     /* train until this many steps in total (a resumed run counts
                           those already done) */
    double max_seconds; /* stop (and save) after this much wall time; 0: no limit */
    const char *path;   /* model file for checkpoints and the end; NULL: none */
    volatile int *stop; /* set (by a signal handler) to stop after the current step */
    int quiet;          /* no status line */
    /* progress for a log (train --log): report is called every report_every steps (0:
     * none between), after each validation and at the end; NULL: never */
    void (*report)(void *arg, const nd_train_progress *p);
    void *report_arg;
    uint64_t report_every;
} nd_train_opts;

typedef struct nd_train_report {
    uint64_t steps_done;                 /* in this call */
    double seconds, last_loss, val_loss; /* val_loss < 0: no validation part */
    double allreduce_s;                  /* nd_train_progress's */
    int interrupted;
} nd_train_report;

/* Trains m on ds (the same dataset it was made or last trained with: classes must
 * match) with class-balanced batches; held-out groups give the validation loss. Saves to
 * o->path every checkpoint_every steps (the settings'), at the end, and when stopped. The same
 * seed, thread count and total steps give bit-identical parameters whether or not the
 * run was interrupted and resumed. In an MPI run of N ranks (nd_mpi_start) every rank
 * calls it alike, with o->path on one rank only (validation and checkpoints happen there):
 * train.batch is the global batch, of which each rank trains on its B/N images, and the
 * ranks sum their gradients, so that the model is one process's up to the order of the
 * float sums (docs/SCALE.md); any N resumes any other's file. Returns 0, ND_EINTR (stopped,
 * saved) or a code. */
int nd_dm_train(nd_dm *m, const nd_dataset *ds, const nd_train_opts *o, nd_train_report *rep,
                nd_error *e);

/* Samples n windows of class cls into x (n, C, L) raw units, with the EMA weights and
 * the model's sampling settings; rng gives the noise. The values are whole counts (the
 * decode rounded to the nearest integer, halves away from zero). Returns 0 or a code.
 * imgs, when not NULL, receives the images (n, nd_gaf_channels, L, L). */
int nd_dm_sample(nd_dm *m, int cls, size_t n, float *x, float *imgs, nd_rng *rng, nd_error *e);
/* Samples n windows of class cls into x (n, C, L), window i continuing prev[i] (n, C, L,
 * raw units): its first K bins are prev[i]'s last K, known while it is sampled
 * (inpainting: the K×K block of its image that those bins fix is set, noised to the
 * sampler's level, at every step, and every predicted clean image is made the GASF of
 * its decoded series with the known bins put back; a model with context planes,
 * settings.context, is also given them as its planes). The decode gives the known bins
 * back up to the decoder's maps (exactly, uncalibrated, up to rounding); a caller joins
 * windows at bin K. K 0 is nd_dm_sample. Whole counts, with the model's sampling
 * settings; one process (refused under MPI). 0 or a code (ND_EUSAGE: class, K not in
 * 0..L−1, or with context planes not in 0..L/2). docs/MODEL.md, "Flows longer than a
 * window". */
int nd_dm_sample_next(nd_dm *m, int cls, size_t n, int K, const float *prev, float *x,
                      nd_rng *rng, nd_error *e);
/* As nd_dm_sample_next, with each window's context given in the model's own values:
 * known (n, nd_gaf_channels, L) the decoded series in [0, 1] of the windows continued,
 * before the decoder's maps (NULL with K 0: independent windows); state (NULL: not
 * wanted) receives the new windows' own, for the next call. pos: the bins from the
 * windows' flow's first bin to theirs (0: flows' first windows; < 0: not known), which a
 * model with a position table (settings.flow_position) is given and others ignore. A
 * flow sampled window after window this way continues what the model made, not the
 * decoder's output of it read back into the model's scale: the decoder moves levels by
 * position and by a scale of the whole window, and that output is a context the model
 * would not have made. */
int nd_dm_sample_cont(nd_dm *m, int cls, size_t n, int K, long pos, const float *known,
                      float *x, float *state, nd_rng *rng, nd_error *e);
/* n flows of class cls, each `windows` windows long, each window after the first
 * sampled by nd_dm_sample_cont from the one before's state: a flow advances by L − K bins a
 * window, x (n, C, T) with T = L + (windows − 1)(L − K). K 0: independent windows end to
 * end (the baseline). 0 or a code (ND_EUSAGE: windows < 1, K not in 0..L−1). */
int nd_dm_sample_flow(nd_dm *m, int cls, size_t n, int windows, int K, float *x, nd_rng *rng,
                      nd_error *e);
/* Fits the decoder's maps (nd_decoder_fit on `calibrate` sampled windows per class) for
 * the current step and sampling settings, unless calibrate is 0 or they are already
 * fitted for them; nd_dm_sample does this itself when needed, and nd_dm_save stores
 * them. Classes without training data stay uncalibrated. Returns 0 or a code. */
int nd_dm_calibrate(nd_dm *m, nd_error *e);
/* bfloat16 products in the network's 3×3 convolutions while sampling (nd_ctx_set_bf16: on
 * CPUs with AVX512-BF16 only; off by default). Returns whether they are on. */
int nd_dm_set_bf16(nd_dm *m, int on);
/* RePaint's resampling (nd_sample_opts.resample) in the windows nd_dm_sample_next,
 * nd_dm_sample_cont and what calls them sample: each step taken u times (1 to 100; 1, the
 * default: once). Not stored in the model file. docs/MODEL.md, "Flows longer than a window". */
void nd_dm_set_resample(nd_dm *m, int u);
/* Sampling and calibration check *stop (set by a signal handler; NULL: never) between
 * batches and return ND_EINTR once it is set, the calibration left unfitted. */
void nd_dm_set_stop(nd_dm *m, volatile int *stop);
/* Seconds this model has spent in its network's passes while sampling (calibration
 * included), since it was made or loaded: the rest of a sampling run's time is the
 * sampler's arithmetic, the decode and the decoder's maps. */
double nd_dm_net_seconds(const nd_dm *m);
/* Classes whose samples the decoder's current maps cover (0: decoded uncalibrated, e.g.
 * with calibrate 0 or a model file made before the decoder's maps existed). */
int nd_dm_calibrated(const nd_dm *m);

/* ------------------------------------------------------------------------------------ */
/* Distillation: a student that samples in few steps (distill.c)                         */
/* ------------------------------------------------------------------------------------ */

/* Progressive distillation (Salimans & Ho, ICLR 2022) with the guidance learnt in (Meng
 * et al., CVPR 2023): in round 0 the student learns, in one pass per step, two
 * deterministic DDIM steps of the teacher with its classifier-free guidance (two passes
 * each), on the nested grid of from_steps; each later round the last round's student is
 * the teacher and the steps halve again, down to to_steps. With a guidance range
 * (guidance_lo < guidance_hi) the guidance scale is an input of the student: each
 * image of a batch draws its scale from the range, the teacher guides by it and the
 * student reads it from a guidance table (nd_unet_config.guide_rows) that the network
 * gains when distillation begins; `sample --guidance` then picks a scale in the range
 * at one pass a step, the teacher's scale by default. Without a range the teacher's
 * scale is learnt in and the student samples at guidance 1.
 * The student is an ordinary model: it samples by DDIM (η 0) at its steps on the nested
 * grid (model_impl.h), with the teacher's clipping and decode and without the
 * projection: what the student predicts at a step is the clean image from which one DDIM
 * step lands where the teacher's two (projected) steps did, which is not itself a GASF
 * image.
 * docs/MODEL.md, "Distillation". */
typedef struct nd_dm_distill {
    uint32_t from_steps;             /* the first teacher's DDIM steps, to_steps × 2^rounds */
    uint32_t to_steps;               /* the student's steps at the end, >= 1 */
    uint64_t round_steps;            /* optimiser steps per round */
    uint64_t start;                  /* the model step it started at (the teacher's step) */
    double guidance;                 /* the teacher's guidance scale: learnt in round 0, or the
                                        student's default input */
    double guidance_lo, guidance_hi; /* the scales the student takes as an input; equal:
                                        none (guidance is learnt in); both 0 when
                                        beginning: 1 to twice the teacher's (at least 2) */
    double lr;                       /* the student's peak learning rate */
    uint32_t teacher_sampler, teacher_steps; /* how the teacher sampled (provenance) */
    uint32_t teacher_clip, teacher_project;  /* how its steps are taken in round 0 */
    uint32_t teacher_input; /* 1: round 0's teacher took the scale as an input itself (a
                               student distilled further), so it is not guided twice */
} nd_dm_distill;

/* Makes m (a teacher: a v-prediction model, or a student whose distillation is done, then
 * from its own steps) the student of distillation d (d->start, d->guidance and the
 * teacher_ fields are taken from m, whose DIST it replaces; a student that takes the
 * scale as an input keeps its range): its weights
 * start as the teacher's EMA (a new guidance table zero), with fresh optimiser moments
 * at learning rate d->lr, and
 * nd_dm_train then trains it by distillation, round after round, to nd_dm_distill_end (the
 * model file keeps the round's teacher, so that --resume continues the same trajectory).
 * ND_EUSAGE (ε-prediction, context planes, a student not done or from other steps than
 * its own, steps that do not halve to to_steps, more steps than T, a guidance range
 * outside 0..100 or one that leaves the teacher's scale out), -ENOMEM. */
int nd_dm_distill_begin(nd_dm *m, const nd_dm_distill *d, nd_error *e);
/* The distillation of a student (NULL: m is not one). */
const nd_dm_distill *nd_dm_distilled(const nd_dm *m);
/* The model step at which a student's last round ends. */
uint64_t nd_dm_distill_end(const nd_dm *m);

/* ------------------------------------------------------------------------------------ */
/* Step-level access to the trainer, for online learning (dm.c)                         */
/* ------------------------------------------------------------------------------------ */

/* Writes more sections into the model file being saved, after the model's own. */
typedef int (*nd_dm_extra_fn)(ndf_writer *w, void *arg, nd_error *e);
/* nd_dm_save, with extra (may be NULL) adding sections before the atomic commit. */
int nd_dm_save_with(nd_dm *m, const char *path, nd_dm_extra_fn extra, void *arg, nd_error *e);
/* One optimiser step (then the EMA) on B <= the model's max_batch raw windows x
 * (B, C, L) of model classes labels (B): timesteps, class dropout and noise come from
 * the model's RNG, as in nd_dm_train. A student (nd_dm_distill_begin) takes a step of
 * its distillation, moving to the next round when it is due, as nd_dm_train does; past
 * nd_dm_distill_end it goes on in the last round. *loss (may be NULL) gets the batch loss.
 * Returns 0, or ND_EFORMAT when the loss is not finite. */
int nd_dm_train_step(nd_dm *m, const float *x, const int *labels, int B, float *loss,
                     nd_error *e);
/* Adds a class with scale s at the next class row (row index = returned class index).
 * ND_ECONFIG when all max_classes rows are in use, ND_EUSAGE for a name that is
 * already there or not valid, -ENOMEM. */
int nd_dm_add_class(nd_dm *m, const char *name, const nd_gaf_scale *s, nd_error *e);
/* Replaces the scale of class cls (the images of that class change meaning: the caller
 * decides when that is acceptable, see docs/LIVE.md). */
void nd_dm_set_scale(nd_dm *m, int cls, const nd_gaf_scale *s);
/* The model's dataset header, for replacing class statistics and counters (classes are
 * added only through nd_dm_add_class). */
nd_dataset *nd_dm_dataset_mut(nd_dm *m);
/* Replaces the decoder's targets of class cls by those of n raw windows x (n, C, L)
 * (online: the class's reservoir); the next sample refits the maps. 0 or -ENOMEM. */
int nd_dm_set_target(nd_dm *m, int cls, const float *x, size_t n);
/* A sampling-only copy of m for batches up to max_batch (see nd_dm_load): settings,
 * decoder, classes and statistics, GAF spec, class scales, step, and m's EMA weights as both
 * its parameters and its EMA. nd_dm_sample gives the same windows on it as on m for the same
 * rng state, and training m afterwards leaves it unchanged. It has no optimiser: do not
 * train or save it. Reads m only, so call it on the thread that trains m, between
 * steps; the copy may then move to another thread. The caller owns it (nd_dm_free).
 * NULL with e filled on -ENOMEM. */
nd_dm *nd_dm_snapshot(const nd_dm *m, int max_batch, nd_error *e);

/* ------------------------------------------------------------------------------------ */
/* The ranks of an MPI run (mpi.c)                                                       */
/* ------------------------------------------------------------------------------------ */

/* `mpirun -np N netdiffus train|sample` (docs/SCALE.md): nd_dm_train gives each rank its
 * part of every batch and sums the gradients over the ranks, nd_dm_sample and
 * nd_dm_calibrate give each rank its part of the sampler's batches and share the results,
 * so that every rank ends with the same model and windows. Every rank makes the same
 * calls in the same order. */

/* Joins the MPI run when mpirun started this process (it sets OMPI_COMM_WORLD_SIZE, or
 * PMI_SIZE); a process started otherwise is a run of one rank and initialises nothing.
 * Returns the number of ranks, or ND_EUSAGE when mpirun started several copies of a build
 * without MPI. Call once, before any thread starts. */
int nd_mpi_start(int *argc, char ***argv, nd_error *e);
int nd_mpi_rank(void);  /* 0..ranks-1; 0 outside a run */
int nd_mpi_ranks(void); /* 1 outside a run */
/* Leaves the run: after status 0 as every rank does, else by MPI_Abort(status), which
 * ends the other ranks too (they may be waiting for this one). No-op outside a run. */
void nd_mpi_end(int status);

/* ------------------------------------------------------------------------------------ */
/* N flows from a model with a class mix (flows.c)                                       */
/* ------------------------------------------------------------------------------------ */

/* Flows longer than a window (docs/REPLAY.md, "Flows longer than a window"): each flow
 * of a class whose statistics have durations lasts D bins drawn from them (a bucket of
 * duration_hist by its count, uniform within it). D <= L: one window, as sampled. D > L:
 * the first window, then windows continuing the one before with `context` bins of it
 * (nd_dm_sample_cont), the flows of a batch still alive at each step together, stitched
 * and cut D bins after the first window's first busy bin, or at max_windows windows of L
 * bins (counted as cut). A flow is laid out as its windows of L bins (nwin, C, L), zero
 * past its end. A class without durations (nd_duration_flows 0: models of older data,
 * imports) keeps one window per flow, said once at info level. */

/* What the sampling of flows did. */
typedef struct nd_flows_counts {
    uint64_t flows;   /* flows drawn */
    uint64_t windows; /* windows of L bins they hold (one each when none is longer) */
    uint64_t sampled; /* windows the sampler drew: first windows, redraws, continuations */
    uint64_t longer;  /* flows of more than one window */
    uint64_t cut;     /* flows cut at max_windows windows */
} nd_flows_counts;

typedef struct nd_flows_opts {
    const double *weights;       /* (n_classes) share of the flows per class, >= 0, not all
                                    0; NULL: even */
    uint32_t flows;              /* flows to sample */
    uint32_t batch;              /* flows per sampler call, the stop is seen between
                                    calls; 0: the model's sampling batch */
    volatile sig_atomic_t *stop; /* set by a signal handler: stop (NULL: never) */
    const char *tag;             /* prefix of the messages, e.g. "replay" */
    int quiet;                   /* no status line; its messages only at debug level */
    uint32_t max_windows;        /* a flow's windows at most; 0 or 1: one window per flow
                                    (no duration is drawn) */
    int context;                 /* bins of context of a continued window, 0..L-1; < 0:
                                    L/2 */
    nd_flows_counts *counts;     /* filled when not NULL */
} nd_flows_opts;

/* The flows of the policy of every replay of a model: the flows split over the classes by
 * the largest remainders of flows x weights (a class of weight 0 gets none), sampled class
 * after class in batches (a status line while it runs), each as long as above, then
 * shuffled flow by flow so that the classes interleave. A first window with no byte in
 * any bin (bytes_down and bytes_up all below 0.5) would start a flow that sends nothing: it
 * is drawn again, up to as many redraws as the class has flows, then kept (and a warning
 * says how many). Everything random comes from rng: the same state, batch, options and
 * model give the same dataset. The dataset has m's channels, bin width, classes and replay
 * statistics; a flow is a run of consecutive windows of one group, groups 0..flows-1 in
 * order (replay_opts.flow_runs); the caller frees it. NULL with e filled: ND_EUSAGE (no
 * classes, bad weights, context), ND_EINTR (*stop was set), -ENOMEM, or nd_dm_sample's
 * code. */
nd_dataset *nd_dm_sample_flows(nd_dm *m, const nd_flows_opts *o, nd_rng *rng, nd_error *e);

/* The same policy streamed (docs/REPLAY.md, "Streaming from a model"): sampler threads draw
 * flows ahead of a replay into a bounded queue, a batch of one class at a time, and the
 * replay takes a flow of the class it wants when it starts. The queue is counted in
 * windows of L bins, a flow holding as many as it has: it is shared by the classes by
 * weight (about `queue` windows), and each class of weight > 0 holds at least a batch of
 * its longest flows, its batch shrinking (to one flow) to fit its share. A thread waits
 * while the class it would draw for has no room for its next batch; a batch's windows
 * leave the queue when its last flow is taken. First windows without bytes are drawn
 * again as above (up to a batch's worth per batch). Batch n of class k has the noise of
 * (seed, k, n), its durations first: the flows a class gives, in order, depend on the
 * seed, the options and the model, not on the threads or on the timing. */
#define ND_FLOWS_STREAM_BATCH       4  /* flows per sampler call by default */
#define ND_FLOWS_STREAM_MAX_THREADS 64 /* sampler threads */
typedef struct nd_flows_stream nd_flows_stream;
typedef struct nd_flows_stream_opts {
    const double *weights;       /* (n_classes) share of the flows per class, as above */
    uint32_t queue;              /* windows held ready, about (see above) */
    uint32_t batch;              /* flows per sampler call, at most sample.batch; 0: 4 */
    uint32_t threads;            /* sampler threads, 1..64: each but the first samples on
                                    an nd_dm_snapshot, with model.threads threads inside */
    uint64_t seed;               /* the noise of every batch */
    volatile sig_atomic_t *stop; /* set by a signal handler: a wait ends (NULL: never) */
    uint32_t max_windows;        /* as nd_flows_opts */
    int context;                 /* as nd_flows_opts */
    const char *tag;             /* prefix of its messages (classes without durations);
                                    NULL: none */
} nd_flows_stream_opts;
/* What a stream has done (nd_flows_stream_stats_get). */
typedef struct nd_flows_stream_stats {
    uint64_t sampled;             /* windows the samplers drew (as nd_flows_counts) */
    uint64_t flows, longer, cut;  /* flows drawn; of them longer than a window, cut */
    uint64_t taken;               /* flows taken by the replay */
    uint64_t redrawn, kept_empty; /* first windows without bytes drawn again; kept */
    uint64_t depth, max_depth;    /* windows reserved or ready in the queue: now, at most */
    uint64_t bound;               /* the most it can hold: the classes' shares */
    uint32_t batch;               /* flows per sampler call (a class's may be fewer) */
    uint32_t longest;             /* windows of the longest flow it can give */
    double windows_per_s;         /* sampled per second since the start */
} nd_flows_stream_stats;
/* Fits the decoder's maps (nd_dm_calibrate) and starts the threads on m, which the stream
 * uses until nd_flows_stream_free. NULL with e filled: ND_EUSAGE (no classes, bad weights,
 * thread count or context), -ENOMEM, or nd_dm_calibrate's code. */
nd_flows_stream *nd_flows_stream_start(nd_dm *m, const nd_flows_stream_opts *o, nd_error *e);
/* Copies the next flow of class k (weight > 0) into *x, its windows (nwin, C, L) (*x grown
 * by realloc when it holds fewer than that many floats, *cap), waiting for it until
 * until_ns (nd_now_ns clock; 0: not at all, UINT64_MAX: as long as it takes). Returns 0,
 * 1 when none was ready by then, ND_EINTR when *stop was set, or a sampler's failure
 * (its code and message in e), or -ENOMEM. One thread at a time. */
int nd_flows_stream_take(nd_flows_stream *s, uint32_t k, float **x, size_t *cap, uint32_t *nwin,
                         uint64_t until_ns, nd_error *e);
/* Waits until `flows` flows are drawn and not taken, or the queue has no room for another
 * batch: a replay that starts many flows at once fills the queue first, so that the
 * first of them to end find flows of their class ready. Returns 0, ND_EINTR when *stop
 * was set, or a sampler's failure (its code and message in e). */
int nd_flows_stream_fill(nd_flows_stream *s, uint64_t flows, nd_error *e);
void nd_flows_stream_stats_get(nd_flows_stream *s, nd_flows_stream_stats *st);
/* Stops the threads (a batch being drawn is cut short) and frees the stream; NULL: no-op. */
void nd_flows_stream_free(nd_flows_stream *s);

#endif
