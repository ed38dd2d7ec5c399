/*
 * distill.c — a student that samples in few steps: progressive distillation (Salimans &
 * Ho 2022) with the teacher's classifier-free guidance learnt in its first round (Meng et
 * al. 2023). The trainer (dm.c) runs it: nd_dm_train on a student takes
 * nd_distill_grad's loss instead of the denoising loss, and calls nd_distill_next_round
 * before every step.
 *
 * One image of a batch, in round r, student steps S = from_steps / 2^(r+1), on the nested
 * grid τ(S, k) (nd_diffusion_grid; τ(S, S) is the clean image):
 *   k uniform in 0..S−1, t = τ(S, k), t' = τ(2S, 2k+1), t'' = τ(S, k+1);
 *   z_t = α_t x0 + σ_t ε from a training window x0;
 *   the teacher takes two DDIM steps, z_t → z_t' → z_t'' (guided in round 0; clipped and
 *   projected as the model samples);
 *   with a guidance range [lo, hi] the image's scale is w = lo + (hi − lo)·u, u the
 *   trainer's uniform draw for it: round 0's teacher guides by w (unless it takes w as
 *   an input itself), and every network reads w from its guidance table, at the row
 *   (w − lo)/(hi − lo)·(rows − 1); the table starts at zero, so the student starts as
 *   its teacher's conditional pass;
 *   x̃ is the clean image from which one DDIM step of the student lands on z_t'':
 *   x̃ = (z_t'' − (σ''/σ) z_t) / (α'' − (σ''/σ) α), or z_t'' itself when t'' is clean;
 *   the student's v-target is ṽ = (α z_t − x̃)/σ, and its loss the mean of
 *   max(α², σ²)·(v̂ − ṽ)², which is Salimans & Ho's truncated-SNR weighting of the error
 *   in x̂ (max(SNR, 1)·|x̂ − x̃|², as x̂ − x̃ = −σ(v̂ − ṽ)).
 *
 * Model file sections of a student (after the model's own):
 *   DIST  u32 version (2), from_steps, to_steps, teacher_sampler, teacher_steps, round,
 *         teacher_clip, teacher_project; u64 round_steps, start; f64 guidance, lr
 *         (version 1 ends here: guidance learnt in); f64 guidance_lo, guidance_hi; u32
 *         teacher_input, 0
 *   TCHW  f32 × n   the weights of the round's teacher
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "model.h"

#define TAG_DIST      ND_FOURCC('D', 'I', 'S', 'T')
#define TAG_TCHW      ND_FOURCC('T', 'C', 'H', 'W')
#define DIST_VERSION  2
#define DIST_V1_BYTES (8 * 4 + 2 * 8 + 2 * 8)
#define DIST_BYTES    (DIST_V1_BYTES + 2 * 8 + 2 * 4)
#define DIST_MAX_STEP 4096 /* from_steps at most: the samplers' T is larger still */

uint32_t nd_distill_rounds(const nd_dm_distill *d)
{
    uint32_t r = 0;
    for (uint32_t s = d->to_steps; s < d->from_steps; s *= 2) r++;
    return r;
}

uint32_t nd_distill_round_at(const nd_dm_distill *d, uint64_t step)
{
    uint32_t R = nd_distill_rounds(d);
    if (step <= d->start) return 0;
    uint64_t r = (step - d->start - 1) / d->round_steps;
    return r < R ? (uint32_t)r : R - 1;
}

uint32_t nd_distill_steps(const nd_dm_distill *d, uint32_t round)
{
    return d->from_steps >> (round + 1);
}

int nd_distill_takes_guidance(const nd_dm_distill *d)
{
    return d->guidance_lo < d->guidance_hi;
}

float nd_distill_guide_row(const nd_dm_distill *d, double w)
{
    double u = (w - d->guidance_lo) / (d->guidance_hi - d->guidance_lo);
    u = u < 0 ? 0 : u > 1 ? 1 : u; /* rounding at the ends */
    return (float)(u * (ND_DM_GUIDE_ROWS - 1));
}

const nd_dm_distill *nd_dm_distilled(const nd_dm *m) { return m->dist ? &m->dist->d : NULL; }

uint64_t nd_dm_distill_end(const nd_dm *m)
{
    const nd_dm_distill *d = nd_dm_distilled(m);
    return d ? d->start + nd_distill_rounds(d) * d->round_steps : m->step;
}

void nd_distill_free(nd_distill *d)
{
    if (!d) return;
    free(d->rows);
    nd_unet_free(d->teacher);
    free(d);
}

/* The student's optimiser, fresh: moments zero, warm-up from the start (the round's
 * first step is its step 1). */
static void fresh_moments(nd_dm *m)
{
    size_t n = nd_unet_num_params(m->net);
    memset(nd_adamw_moments(m->opt), 0, 2 * n * sizeof(float));
    nd_adamw_set_steps(m->opt, 0);
}

/* The sampling settings of a student in round r: DDIM, η 0, guidance 1 (learnt in) or
 * the teacher's scale as its input, no projection, at the round's steps; the rest
 * (clipping, decode, calibration) the teacher's. */
static void student_sampling(nd_dm *m, uint32_t round)
{
    nd_dm_sampling *s = &m->s.sample;
    const nd_dm_distill *d = &m->dist->d;
    s->sampler = ND_SAMPLER_DDIM;
    s->eta = 0.0;
    s->guidance = nd_distill_takes_guidance(d) ? d->guidance : 1.0;
    s->project = 0;
    s->steps = nd_distill_steps(&m->dist->d, round);
}

/* d's problem for model m, in why; 0: none. */
static int distill_problem(const nd_dm *m, const nd_dm_distill *d, char *why, size_t len)
{
    uint32_t R = nd_distill_rounds(d);
    if (d->to_steps < 1 || d->from_steps > DIST_MAX_STEP || d->from_steps > (uint32_t)m->diff.T)
        snprintf(why, len, "steps %u to %u: expected 1 <= to < from <= %d", d->from_steps,
                 d->to_steps, m->diff.T < DIST_MAX_STEP ? m->diff.T : DIST_MAX_STEP);
    else if (!R || d->to_steps << R != d->from_steps)
        snprintf(why, len, "%u steps do not halve to %u (from = to x 2, 4, 8, ...)",
                 d->from_steps, d->to_steps);
    else if (d->round_steps < 1 || d->round_steps > (UINT64_MAX - d->start) / R)
        snprintf(why, len, "%llu steps per round: expected a positive number",
                 (unsigned long long)d->round_steps);
    else if (!(d->lr > 0 && d->lr < 1))
        snprintf(why, len, "learning rate %g: expected a number in (0, 1)", d->lr);
    else if (d->teacher_clip > ND_CLIP_NONE || d->teacher_project > 1 ||
             d->teacher_sampler > ND_SAMPLER_DPMPP)
        snprintf(why, len, "teacher sampler %u, clip %u, project %u: out of range",
                 d->teacher_sampler, d->teacher_clip, d->teacher_project);
    else if (!(d->guidance >= 0 && d->guidance <= 100))
        snprintf(why, len, "guidance %g is out of 0..100", d->guidance);
    else if (!(d->guidance_lo >= 0 && d->guidance_lo <= d->guidance_hi &&
               d->guidance_hi <= 100) ||
             (nd_distill_takes_guidance(d) &&
              !(d->guidance >= d->guidance_lo && d->guidance <= d->guidance_hi)))
        snprintf(why, len,
                 "guidance range %g to %g: expected 0 <= low <= high <= 100, around the "
                 "teacher's %g",
                 d->guidance_lo, d->guidance_hi, d->guidance);
    else if (d->teacher_input > 1 || (d->teacher_input && !nd_distill_takes_guidance(d)))
        snprintf(why, len, "teacher input %u without a guidance range", d->teacher_input);
    else return 0;
    return 1;
}

/* The teacher network for m's batches, weights w. NULL on -ENOMEM. */
static nd_unet *teacher_new(const nd_dm *m, const float *w)
{
    nd_unet *t = nd_unet_new(&m->s.net, 2 * m->max_batch, m->s.train.seed);
    if (t) memcpy(nd_unet_params(t), w, nd_unet_num_params(t) * sizeof(float));
    return t;
}

int nd_dm_distill_begin(nd_dm *m, const nd_dm_distill *d, nd_error *e)
{
    if (m->dist && m->step < nd_dm_distill_end(m))
        return nd_error_set(e, ND_EUSAGE,
                            "the model is a student whose distillation (to %u steps) is not "
                            "done: continue it with --resume",
                            m->dist->d.to_steps);
    if (m->dist && d->from_steps != m->dist->d.to_steps)
        return nd_error_set(e, ND_EUSAGE,
                            "the model is a student of %u steps: it is distilled further from "
                            "those (teacher steps %u, not %u)",
                            m->dist->d.to_steps, m->dist->d.to_steps, d->from_steps);
    if (m->diff.pred != ND_PRED_V)
        return nd_error_set(e, ND_EUSAGE,
                            "distillation needs a model trained with "
                            "model.prediction: v (this one predicts eps)");
    if (m->s.context)
        return nd_error_set(e, ND_EUSAGE,
                            "distillation of a model with context planes (model.context) is "
                            "not supported: its student would not learn the context");
    nd_dm_distill dd = *d;
    dd.start = m->step;
    dd.guidance = m->s.sample.guidance;
    dd.teacher_input = m->dist && nd_distill_takes_guidance(&m->dist->d);
    if (dd.teacher_input) { /* its range and default scale go on */
        dd.guidance = m->dist->d.guidance;
        dd.guidance_lo = m->dist->d.guidance_lo;
        dd.guidance_hi = m->dist->d.guidance_hi;
    } else if (m->dist) { /* guidance learnt in already */
        dd.guidance_lo = dd.guidance_hi = dd.guidance;
    } else if (dd.guidance_lo == 0 && dd.guidance_hi == 0) {
        dd.guidance_lo = 1.0;
        dd.guidance_hi = dd.guidance > 1 ? 2 * dd.guidance : 2.0;
    }
    dd.teacher_sampler = (uint32_t)m->s.sample.sampler;
    dd.teacher_steps = m->s.sample.steps;
    dd.teacher_clip = (uint32_t)m->s.sample.clip;
    dd.teacher_project = (uint32_t)m->s.sample.project;
    char why[160];
    if (distill_problem(m, &dd, why, sizeof why))
        return nd_error_set(e, ND_EUSAGE, "distill: %s", why);
    if (nd_distill_takes_guidance(&dd) && !m->s.net.guide_rows && nd_dm_add_guide_table(m, e))
        return e ? e->code : -ENOMEM;
    nd_distill *ds = calloc(1, sizeof *ds);
    nd_unet *t = ds ? teacher_new(m, m->ema) : NULL;
    if (ds) ds->rows = malloc(3 * (size_t)m->max_batch * sizeof *ds->rows);
    nd_adamw_config oc = {
        .lr = (float)dd.lr,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = (float)m->s.train.weight_decay,
        .grad_clip = (float)m->s.train.grad_clip,
        .warmup = m->s.train.warmup_steps,
    };
    size_t n = nd_unet_num_params(m->net);
    nd_adamw *opt = t && ds->rows ? nd_adamw_new(&oc, n, m->ema) : NULL;
    if (!opt) {
        nd_unet_free(t);
        if (ds) free(ds->rows);
        free(ds);
        return nd_error_set(e, -ENOMEM, "distill: out of memory");
    }
    ds->d = dd;
    ds->teacher = t;
    nd_distill_free(m->dist); /* a finished student's: the new one records its own */
    m->dist = ds;
    nd_adamw_free(m->opt);
    m->opt = opt;
    m->s.train.lr = dd.lr;
    memcpy(nd_unet_params(m->net), m->ema, n * sizeof(float));
    fresh_moments(m);
    student_sampling(m, 0);
    return 0;
}

void nd_distill_next_round(nd_dm *m)
{
    nd_distill *ds = m->dist;
    const nd_dm_distill *d = &ds->d;
    if (m->step <= d->start || (m->step - d->start) % d->round_steps ||
        m->step >= nd_dm_distill_end(m))
        return;
    size_t n = nd_unet_num_params(m->net);
    memcpy(nd_unet_params(ds->teacher), m->ema, n * sizeof(float));
    memcpy(nd_unet_params(m->net), m->ema, n * sizeof(float));
    fresh_moments(m);
    ds->round = (uint32_t)((m->step - d->start) / d->round_steps);
    student_sampling(m, ds->round);
}

/* nd_denoise_fn of the teacher network, in batches it takes; image i (of a batch and its
 * null-class copies) has the guidance row of the batch's image i mod rows_B. */
static void teacher_denoise(void *arg, float *out, const float *x, const float *t, const int *y,
                            int B)
{
    nd_dm *m = arg;
    nd_distill *ds = m->dist;
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    int TB = 2 * m->max_batch;
    for (int i = 0; i < B; i += TB) {
        int n = B - i < TB ? B - i : TB;
        float *rows = ds->rows + ds->rows_B; /* after the batch's own */
        for (int j = 0; j < n; j++) rows[j] = ds->rows[(i + j) % ds->rows_B];
        nd_unet_set_guide(ds->teacher, rows);
        nd_unet_forward(ds->teacher, m->ctx, out + i * img, x + i * img, t + i, y + i, n);
    }
}

float nd_distill_grad(nd_dm *m, const float *x0, const float *eps, const int *k, const float *g,
                      const int *y, float *xt, float *target, float *out, int B, int total)
{
    nd_distill *ds = m->dist;
    const nd_diffusion *d = &m->diff;
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    int S = (int)nd_distill_steps(&ds->d, ds->round);
    /* round 0: the teacher's guidance, clipping and projection; later the last student's
     * way of sampling */
    int first = ds->round == 0, input = nd_distill_takes_guidance(&ds->d);
    int guided = first && !ds->d.teacher_input; /* the teacher's own two passes */
    float *scale_of = malloc((size_t)B * sizeof(float));
    ND_ASSERT(scale_of);
    for (int b = 0; b < B; b++) {
        double wb = ds->d.guidance_lo + (ds->d.guidance_hi - ds->d.guidance_lo) * g[b];
        scale_of[b] = (float)(input ? wb : ds->d.guidance);
        ds->rows[b] = input ? nd_distill_guide_row(&ds->d, wb) : 0.0f;
    }
    ds->rows_B = B;
    nd_sample_opts so = {
        .sampler = ND_SAMPLER_DDIM,
        .guidance = guided ? (float)ds->d.guidance : 1.0f,
        .guidances = guided && input ? scale_of : NULL,
        .clip = first ? (int)ds->d.teacher_clip : m->s.sample.clip,
        .null_class = m->s.net.max_classes,
        .project = first && ds->d.teacher_project ? nd_dm_project : NULL,
        .project_arg = m,
        .nested = 1,
    };
    int *t0 = calloc((size_t)B * 3, sizeof(int));
    float *tt = malloc((size_t)B * sizeof(float));
    ND_ASSERT(t0 && tt);
    int *t1 = t0 + B, *t2 = t0 + 2 * B;
    for (int b = 0; b < B; b++) {
        t0[b] = nd_diffusion_grid(d, S, 1, k[b]);
        t1[b] = nd_diffusion_grid(d, 2 * S, 1, 2 * k[b] + 1);
        t2[b] = nd_diffusion_grid(d, S, 1, k[b] + 1);
        tt[b] = (float)t0[b];
        double sa = sqrt(d->abar[t0[b]]), ss = sqrt(1.0 - d->abar[t0[b]]);
        const float *xb = x0 + b * img, *eb = eps + b * img;
        for (size_t i = 0; i < img; i++) xt[b * img + i] = (float)(sa * xb[i] + ss * eb[i]);
    }
    /* the teacher's two steps, z_t -> z_t' -> z_t'' (in target) */
    memcpy(target, xt, (size_t)B * img * sizeof(float));
    nd_diffusion_ddim_step(d, &so, teacher_denoise, m, target, t0, t1, y, B, img);
    nd_diffusion_ddim_step(d, &so, teacher_denoise, m, target, t1, t2, y, B, img);
    nd_unet_set_guide(m->net, ds->rows);
    nd_unet_forward(m->net, m->ctx, out, xt, tt, y, B);
    double loss = 0.0, scale = 2.0 / ((double)total * (double)img);
    for (int b = 0; b < B; b++) {
        double a = sqrt(d->abar[t0[b]]), s = sqrt(1.0 - d->abar[t0[b]]);
        double a2 = t2[b] < 0 ? 1.0 : sqrt(d->abar[t2[b]]);
        double s2 = t2[b] < 0 ? 0.0 : sqrt(1.0 - d->abar[t2[b]]);
        double w = a > s ? a * a : s * s, r = s2 / s, den = a2 - r * a;
        float *tb = target + b * img, *ob = out + b * img;
        const float *zb = xt + b * img;
        for (size_t i = 0; i < img; i++) {
            double xs = (tb[i] - r * zb[i]) / den; /* x̃ */
            double v = (a * zb[i] - xs) / s, diff = ob[i] - v;
            loss += w * diff * diff;
            ob[i] = (float)(scale * w * diff); /* the loss gradient, in place */
        }
    }
    nd_unet_zero_grad(m->net);
    nd_unet_backward(m->net, m->ctx, NULL, out);
    free(t0);
    free(tt);
    free(scale_of);
    return (float)(loss / ((double)B * (double)img));
}

int nd_distill_write(const nd_dm *m, ndf_writer *w, nd_error *e)
{
    const nd_distill *ds = m->dist;
    if (!ds) return 0;
    unsigned char rec[DIST_BYTES], *p = rec;
    const nd_dm_distill *d = &ds->d;
    p = nd_rec_put_u32(p, DIST_VERSION);
    p = nd_rec_put_u32(p, d->from_steps);
    p = nd_rec_put_u32(p, d->to_steps);
    p = nd_rec_put_u32(p, d->teacher_sampler);
    p = nd_rec_put_u32(p, d->teacher_steps);
    p = nd_rec_put_u32(p, ds->round);
    p = nd_rec_put_u32(p, d->teacher_clip);
    p = nd_rec_put_u32(p, d->teacher_project);
    p = nd_rec_put_u64(p, d->round_steps);
    p = nd_rec_put_u64(p, d->start);
    p = nd_rec_put_f64(p, d->guidance);
    p = nd_rec_put_f64(p, d->lr);
    p = nd_rec_put_f64(p, d->guidance_lo);
    p = nd_rec_put_f64(p, d->guidance_hi);
    p = nd_rec_put_u32(p, d->teacher_input);
    nd_rec_put_u32(p, 0);
    int rc = ndf_write_section(w, TAG_DIST, rec, sizeof rec, e);
    return rc ? rc
              : nd_write_floats(w, TAG_TCHW, nd_unet_params(ds->teacher),
                                nd_unet_num_params(ds->teacher), e);
}

/* The DIST record of r: 1 and *d, *round filled; 0: none; < 0: a code (e set). */
static int read_dist(const ndf_reader *r, nd_dm_distill *d, uint32_t *round, nd_error *e)
{
    const void *data;
    size_t len;
    if (ndf_find(r, TAG_DIST, &data, &len, NULL)) return 0;
    const unsigned char *p = data;
    if (len < 4)
        return nd_error_set(e, ND_EFORMAT, "%s: section DIST holds %zu bytes", ndf_path(r),
                            len);
    uint32_t v = nd_rec_u32(&p);
    if (v < 1 || v > DIST_VERSION)
        return nd_error_set(e, ND_EVERSION,
                            "%s: distillation record version %u; this build reads 1 to %d",
                            ndf_path(r), v, DIST_VERSION);
    size_t want = v == 1 ? DIST_V1_BYTES : DIST_BYTES;
    if (len != want)
        return nd_error_set(e, ND_EFORMAT, "%s: section DIST holds %zu bytes, expected %zu",
                            ndf_path(r), len, want);
    d->from_steps = nd_rec_u32(&p);
    d->to_steps = nd_rec_u32(&p);
    d->teacher_sampler = nd_rec_u32(&p);
    d->teacher_steps = nd_rec_u32(&p);
    *round = nd_rec_u32(&p);
    d->teacher_clip = nd_rec_u32(&p);
    d->teacher_project = nd_rec_u32(&p);
    d->round_steps = nd_rec_u64(&p);
    d->start = nd_rec_u64(&p);
    d->guidance = nd_rec_f64(&p);
    d->lr = nd_rec_f64(&p);
    d->guidance_lo = d->guidance_hi = d->guidance; /* version 1: learnt in */
    d->teacher_input = 0;
    if (v > 1) {
        d->guidance_lo = nd_rec_f64(&p);
        d->guidance_hi = nd_rec_f64(&p);
        d->teacher_input = nd_rec_u32(&p);
    }
    return 1;
}

int nd_distill_read(nd_dm *m, const ndf_reader *r, nd_error *e)
{
    nd_dm_distill d;
    uint32_t round;
    int rc = read_dist(r, &d, &round, e);
    if (rc <= 0) return rc;
    char why[160];
    int problem = distill_problem(m, &d, why, sizeof why);
    if (!problem &&
        (m->step < d.start || m->step > d.start + nd_distill_rounds(&d) * d.round_steps ||
         round != nd_distill_round_at(&d, m->step))) {
        snprintf(why, sizeof why, "round %u from step %llu does not fit the model's step %llu",
                 round, (unsigned long long)d.start, (unsigned long long)m->step);
        problem = 1;
    }
    if (problem) return nd_error_set(e, ND_EFORMAT, "%s: section DIST: %s", ndf_path(r), why);
    nd_distill *ds = calloc(1, sizeof *ds);
    if (!ds) return nd_error_set(e, -ENOMEM, "%s: out of memory", ndf_path(r));
    ds->d = d;
    ds->round = round;
    m->dist = ds;
    if (nd_distill_takes_guidance(&d) != !!m->s.net.guide_rows)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DIST: guidance %s an input, but the network has %s "
                            "guidance table",
                            ndf_path(r), nd_distill_takes_guidance(&d) ? "is" : "is not",
                            m->s.net.guide_rows ? "a" : "no");
    ds->teacher = nd_unet_new(&m->s.net, 2 * m->max_batch, m->s.train.seed);
    ds->rows = malloc(3 * (size_t)m->max_batch * sizeof *ds->rows);
    if (!ds->teacher || !ds->rows)
        return nd_error_set(e, -ENOMEM, "%s: out of memory", ndf_path(r));
    rc = nd_read_floats(r, TAG_TCHW, nd_unet_params(ds->teacher),
                        nd_unet_num_params(ds->teacher), e);
    if (rc) return rc;
    /* the optimiser counts the round's steps */
    nd_adamw_set_steps(m->opt, m->step - d.start - (uint64_t)round * d.round_steps);
    return 0;
}

void nd_distill_inspect(const ndf_reader *r, FILE *out, nd_json *js)
{
    nd_dm_distill d;
    uint32_t round;
    if (read_dist(r, &d, &round, NULL) <= 0) return;
    uint32_t R = nd_distill_rounds(&d);
    if (!R || !d.round_steps) return;
    if (out) {
        fprintf(out,
                "distilled: from step %llu of the teacher (%s %u steps, guidance %g), "
                "DDIM %u -> %u steps in %u rounds of %llu steps (lr %g); weights of round %u "
                "(%u steps)\n",
                (unsigned long long)d.start, nd_sampler_name((int)d.teacher_sampler),
                d.teacher_steps, d.guidance, d.from_steps, d.to_steps, R,
                (unsigned long long)d.round_steps, d.lr, round, nd_distill_steps(&d, round));
        if (nd_distill_takes_guidance(&d))
            fprintf(out, "guidance: an input, %g to %g (default %g)\n", d.guidance_lo,
                    d.guidance_hi, d.guidance);
    }
    nd_json *j = nd_json_obj(js, "distilled");
    nd_json_u64(j, "teacher_step", d.start);
    nd_json_str(j, "teacher_sampler", nd_sampler_name((int)d.teacher_sampler));
    nd_json_u64(j, "teacher_steps", d.teacher_steps);
    nd_json_num(j, "guidance", d.guidance);
    nd_json_bool(j, "guidance_input", nd_distill_takes_guidance(&d));
    nd_json_num(j, "guidance_lo", d.guidance_lo);
    nd_json_num(j, "guidance_hi", d.guidance_hi);
    nd_json_u64(j, "from_steps", d.from_steps);
    nd_json_u64(j, "to_steps", d.to_steps);
    nd_json_u64(j, "rounds", R);
    nd_json_u64(j, "round_steps", d.round_steps);
    nd_json_num(j, "lr", d.lr);
    nd_json_u64(j, "round", round);
    nd_json_u64(j, "steps", nd_distill_steps(&d, round));
}
