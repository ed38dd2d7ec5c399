/*
 * model_impl.h — private to libnd_model: little-endian record cursors for the model
 * file's sections, the GAF scaling's inverse, and a model's decoder as a whole (dm.c uses it,
 * decode.c implements it): a target and a map per class row and channel, what the maps were
 * fitted for, and the decoder's section of the model file (DECO; the targets of older files,
 * in DECO version 1 or MARG, are read too).
 */
#ifndef ND_MODEL_IMPL_H
#define ND_MODEL_IMPL_H

#include <string.h>

#include "model.h"

/* Record cursors: each writes or reads one little-endian value at p and moves past it.
 * The caller has checked the record's length. */
static inline unsigned char *nd_rec_put_u32(unsigned char *p, uint32_t v)
{
    nd_put_u32(p, v);
    return p + 4;
}
static inline unsigned char *nd_rec_put_u64(unsigned char *p, uint64_t v)
{
    nd_put_u64(p, v);
    return p + 8;
}
static inline unsigned char *nd_rec_put_f32(unsigned char *p, float v)
{
    nd_put_f32(p, v);
    return p + 4;
}
static inline unsigned char *nd_rec_put_f64(unsigned char *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return nd_rec_put_u64(p, u);
}
static inline uint32_t nd_rec_u32(const unsigned char **p)
{
    *p += 4;
    return nd_get_u32(*p - 4);
}
static inline uint64_t nd_rec_u64(const unsigned char **p)
{
    *p += 8;
    return nd_get_u64(*p - 8);
}
static inline float nd_rec_f32(const unsigned char **p)
{
    *p += 4;
    return nd_get_f32(*p - 4);
}
static inline double nd_rec_f64(const unsigned char **p)
{
    uint64_t u = nd_rec_u64(p);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* A section of n little-endian floats: written; read (ND_EFORMAT naming the section when
 * it does not hold exactly n). dm.c. */
int nd_write_floats(ndf_writer *w, uint32_t tag, const float *v, size_t n, nd_error *e);
int nd_read_floats(const ndf_reader *r, uint32_t tag, float *v, size_t n, nd_error *e);

/* Decoded value v of channel c (a busy bin) -> raw units: the inverse of the scaling
 * (gaf.c). */
float nd_gaf_unscale(float v, const nd_gaf_spec *g, const nd_gaf_scale *s, int c);
/* One raw window x (C,L) -> the series its image encodes, v (nd_gaf_channels, L) in
 * [0, 1]: the scaled values, then with masks the activities. */
void nd_gaf_scale_window(float *v, const float *x, const nd_gaf_spec *g, const nd_gaf_scale *s);
/* The other way, with the fixed activity threshold (no decoder): decoded series v
 * (nd_gaf_channels, L) -> raw window x (C,L); nd_gaf_image_to_window after its decode. */
void nd_gaf_unscale_window(float *x, const float *v, const nd_gaf_spec *g,
                           const nd_gaf_scale *s);

/* The normal draws nd_diffusion_sample takes from rng for B images: drawing as many
 * skips a batch that another process samples, leaving rng where the batch would. */
size_t nd_diffusion_draws(const nd_diffusion *d, const nd_sample_opts *o, int B, size_t img);

/* Timestep of step k of an S-step sampler (k = S: −1, the clean image). The default grid
 * runs evenly from T−1 to 0, then steps to the clean image; the nested one (a distilled
 * student's, nd_dm_distill_begin) is round((T−1)(S−k)/S), so that the grid of S steps is
 * every other point of the grid of 2S, and its last step goes from (T−1)/S to the clean
 * image. */
int nd_diffusion_grid(const nd_diffusion *d, int S, int nested, int k);
/* One deterministic DDIM step (η 0) of each of the B images x (B, img), image b from
 * timestep t[b] to s[b] (−1: to the predicted clean image), with o's guidance, clipping,
 * projection and known part (o's sampler, steps and eta are not used): the step the
 * samplers take. */
void nd_diffusion_ddim_step(const nd_diffusion *d, const nd_sample_opts *o, nd_denoise_fn f,
                            void *arg, float *x, const int *t, const int *s, const int *y,
                            int B, size_t img);

/* Collectives of the ranks of an MPI run (mpi.c); outside one (one rank) they return
 * their input. Every rank calls them in the same order. */
int nd_mpi_or(int bits);     /* bits ORed over the ranks */
double nd_mpi_sum(double v); /* the sum over the ranks, added in rank order */
/* v (n floats) replaced on every rank by its sum over the ranks, identical bits on each:
 * MPI_Allreduce with Open MPI's ring algorithm (pinned by nd_mpi_start: reduce-scatter,
 * then allgather; 2(N-1)/N·n floats sent per rank), an order of sums fixed by N. 0. */
int nd_mpi_sum_floats(float *v, size_t n);
void nd_mpi_bcast(void *p, size_t bytes, int root); /* root's bytes to every rank */
/* The layer threads of a rank: threads, or with 0 (all cores) the host's cores shared by
 * the ranks on it (at least 1), so that ranks on one host do not oversubscribe it. */
int nd_mpi_threads(int threads);

/* Revision of the fit: maps stored by another one are refitted. 2: windows go idle by the
 * volume map only (decode.c, revive); 3: a threshold per bin position, no score filter;
 * 4: a level shift per position; 5: no clamp to the training range, the output map
 * instead; 6: the output map per position; 7: quantiles at a position alone from 64 busy
 * values there (128 before, which pooled every position of a class of 102 windows); 8: the
 * channels' idle bins coupled. */
#define ND_DECODER_REVISION 8

/* What a decoder's maps were fitted for: the sampling settings that change the samples,
 * the windows per class, the model step and the fit's revision. The maps are used only
 * while this equals the key of the model's current settings (nd_decoder_key_equal). */
typedef struct nd_decoder_key {
    int sampler, clip, project, decode;
    uint32_t steps;
    double guidance, eta;
    uint32_t windows;  /* per class; 0: no maps */
    uint64_t step;     /* model step */
    uint32_t revision; /* ND_DECODER_REVISION; 0: settings unknown (never current) */
} nd_decoder_key;

/* The key maps fitted now, with settings s at model step `step`, would have. */
void nd_decoder_key_of(nd_decoder_key *k, const nd_dm_sampling *s, uint64_t step);
int nd_decoder_key_equal(const nd_decoder_key *a, const nd_decoder_key *b);

/* Maps fitted for other sampling settings than the current ones, kept so that going back
 * to those settings needs no refit (nd_decoder_recall): at most ND_DECODER_ALT sets, the
 * oldest dropped first. */
#define ND_DECODER_ALT 4
typedef struct nd_decoder_alt {
    nd_decoder_key key;
    nd_decoder_map *map; /* (rows, C) */
} nd_decoder_alt;

typedef struct nd_decoder nd_decoder;
struct nd_decoder {
    int rows, C, L;            /* class rows (max_classes: classes join online), channels,
                                  bins */
    nd_decoder_target *target; /* (rows, C) */
    nd_decoder_map *map;       /* (rows, C) */
    nd_decoder_key key;        /* of the maps; key.windows 0: none fitted */
    int n_alt;
    nd_decoder_alt alt[ND_DECODER_ALT];
};

/* A decoder for windows of L bins with nothing measured or fitted (NaN targets and maps).
 * NULL on -ENOMEM. */
nd_decoder *nd_decoder_new(int rows, int C, int L);
nd_decoder *nd_decoder_copy(const nd_decoder *d); /* NULL on -ENOMEM */
void nd_decoder_free(nd_decoder *d);              /* NULL is a no-op */
/* Target and map of class row k, channel c. */
static inline nd_decoder_target *nd_decoder_target_at(const nd_decoder *d, int k, int c)
{
    return &d->target[(size_t)k * d->C + c];
}
static inline nd_decoder_map *nd_decoder_map_at(const nd_decoder *d, int k, int c)
{
    return &d->map[(size_t)k * d->C + c];
}

/* Keeps the current maps among the alternates when they were fitted at model step `step`
 * (maps of older steps are stale: dropped). 0 or -ENOMEM (nothing kept). */
int nd_decoder_stash(nd_decoder *d, uint64_t step);
/* Makes the alternate fitted for key k current, the current maps (when fitted) taking its
 * place among the alternates. 1: found, 0: none fits k. */
int nd_decoder_recall(nd_decoder *d, const nd_decoder_key *k);
/* Writes the DECO section for the first `classes` rows, then a DECA section (the maps
 * only) for each alternate fitted at the current maps' model step. Returns 0 or a code. */
int nd_decoder_write(const nd_decoder *d, uint32_t classes, ndf_writer *w, nd_error *e);
/* Reads the decoder of a model file with `classes` classes: DECO and its DECA alternates,
 * or in older files MARG (none of them: nothing measured). Older layouts (DECO version 1, MARG)
 * give targets with the overall idle share at every position and no maps (the next sample
 * refits them). Returns 0 or ND_EFORMAT / ND_EVERSION. */
int nd_decoder_read(nd_decoder *d, uint32_t classes, const ndf_reader *r, nd_error *e);
/* The `inspect` lines about the decoder's maps of an open model file. */
void nd_decoder_inspect(const ndf_reader *r, FILE *out);

/* ---- the model as a whole (dm.c), and distillation (distill.c) ---------------------- */

typedef struct nd_distill nd_distill;

struct nd_dm {
    nd_dm_settings s;     /* net.channels and net.L: the image's */
    nd_dataset *meta;     /* classes, channels, statistics, config text; no windows */
    nd_gaf_spec gaf;      /* decode: s.sample.decode */
    nd_gaf_scale *scales; /* (n_classes) */
    nd_diffusion diff;
    nd_unet *net;
    int max_batch;
    nd_ctx *ctx;
    nd_adamw *opt;
    float *ema; /* (n): our own EMA, so that it can warm up */
    uint64_t step;
    nd_rng rng; /* batches, timesteps, noise, class dropout */
    uint64_t split_seed;
    nd_decoder *dec;    /* every row of max_classes (classes join online) */
    volatile int *stop; /* set by a signal handler: sampling stops (nd_dm_set_stop) */
    int resample;       /* continued windows: RePaint's resampling (nd_dm_set_resample) */
    uint64_t batches;   /* sampler batches run so far: batch j goes to rank j mod ranks */
    uint64_t net_ns;    /* time in the network's passes while sampling (nd_dm_net_seconds) */
    nd_distill *dist;   /* a distilled student's (distill.c); NULL: none */
    float *cond;        /* (max_batch, net.cond, L, L): a batch's context planes; NULL
                           without them */
    int *pos;           /* (max_batch): its position rows (net.pos_rows); NULL without */
};

/* A student's distillation (nd_dm_distill_begin): its settings, the round its weights are
 * in, and that round's teacher network (guidance in round 0 takes 2B images). */
struct nd_distill {
    nd_dm_distill d;
    uint32_t round; /* 0..rounds-1: the round of the weights */
    nd_unet *teacher;
    float *rows; /* (3 max_batch) a batch's guidance rows (rows_B), then the teacher's */
    int rows_B;
};

/* A guidance table's rows (nd_unet_config.guide_rows) over a student's guidance range. */
#define ND_DM_GUIDE_ROWS 8
/* Gives m's network a zero guidance table: a new network whose block starts with the
 * EMA weights, a new EMA; the optimiser is the caller's to replace. 0 or -ENOMEM. */
int nd_dm_add_guide_table(nd_dm *m, nd_error *e);
/* Whether d's student takes the guidance scale as an input (guidance_lo < guidance_hi). */
int nd_distill_takes_guidance(const nd_dm_distill *d);
/* The guidance table's row of scale w for d's student (w in its range). */
float nd_distill_guide_row(const nd_dm_distill *d, double w);
/* The rounds of d: log2(from_steps / to_steps). */
uint32_t nd_distill_rounds(const nd_dm_distill *d);
/* The round of the weights of a student at model step `step`: the round whose last step
 * it is, or which it is in (round 0 at the start). */
uint32_t nd_distill_round_at(const nd_dm_distill *d, uint64_t step);
/* Before a training step of a student: at the end of a round, the student becomes the
 * next round's teacher and starts again from its own EMA (fresh optimiser moments), and
 * its sampling steps halve. */
void nd_distill_next_round(nd_dm *m);
/* Sampling steps of the student in round r. */
uint32_t nd_distill_steps(const nd_dm_distill *d, uint32_t round);
/* The distillation loss of the B images of a batch of `total` (the rank's part): x0
 * (B, img) clean images, eps their noise, k (B) the student's step of each, g (B) a
 * uniform draw in [0, 1) each (the guidance scale within the range), y classes.
 * Makes x_t, runs the teacher's two steps, then the student (m->net) forward and its
 * weighted loss gradient into the gradient block. xt, target, out: B images of scratch.
 * Returns the batch's loss. */
float nd_distill_grad(nd_dm *m, const float *x0, const float *eps, const int *k, const float *g,
                      const int *y, float *xt, float *target, float *out, int B, int total);
/* DIST and TCHW sections of a student (nothing for other models); reading them on load
 * (none: not a student), and the `inspect` lines. 0 or a code. */
int nd_distill_write(const nd_dm *m, ndf_writer *w, nd_error *e);
int nd_distill_read(nd_dm *m, const ndf_reader *r, nd_error *e);
void nd_distill_inspect(const ndf_reader *r, FILE *out, nd_json *js);
void nd_distill_free(nd_distill *d); /* NULL is a no-op */
/* Whether m continues windows by K bins of context: ND_EUSAGE, e saying why after
 * "who: ", for K not in 0..L−1, and with context planes (settings.context) for K above
 * L/2 (training draws up to L/2); else 0. */
int nd_dm_context_check(const nd_dm *m, int K, const char *who, nd_error *e);
/* Project a predicted clean image onto the GASF images (dm.c; sample.project). */
void nd_dm_project(void *m, float *x0);

#endif
