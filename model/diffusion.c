/*
 * diffusion.c — the denoising diffusion process over GAF images (docs/MODEL.md): noise
 * schedule, training pairs (ε or v targets), and three samplers with classifier-free
 * guidance and clipping of the predicted clean image at every step:
 *
 *   DDIM (Song et al.; η = 0 deterministic), DDPM ancestral (the posterior q(x_s | x_t,
 *   x̂0) over the chosen step subsequence; all T steps gives Ho et al.'s sampler), and
 *   DPM-Solver++(2M) (Lu et al. 2022, data prediction, multistep second order), which
 *   keeps its quality at 10–20 steps.
 *
 * The network is a callback, so tests can plug in an oracle that knows the true noise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "model.h"

/* ---- schedule and training pairs --------------------------------------------------- */

int nd_diffusion_init(nd_diffusion *d, int T, int schedule, int pred, nd_error *e)
{
    if (T < 2 || T > ND_DIFF_MAX_T)
        return nd_error_set(e, ND_ECONFIG, "model.timesteps: %d is out of 2..%d", T,
                            ND_DIFF_MAX_T);
    d->T = T;
    d->pred = pred;
    double abar = 1.0;
    if (schedule == ND_SCHEDULE_COSINE) {
        const double s = 0.008, pi2 = 1.5707963267948966;
        double f0 = cos(s / (1 + s) * pi2);
        f0 *= f0;
        double prev = 1.0;
        for (int t = 0; t < T; t++) {
            double f = cos(((double)(t + 1) / T + s) / (1 + s) * pi2);
            double a = f * f / f0;
            double beta = 1.0 - a / prev;
            if (beta > 0.999) beta = 0.999;
            abar *= 1.0 - beta;
            d->abar[t] = abar;
            prev = a;
        }
    } else if (schedule == ND_SCHEDULE_LINEAR) {
        double b0 = 1e-4 * 1000.0 / T, b1 = 0.02 * 1000.0 / T;
        for (int t = 0; t < T; t++) {
            abar *= 1.0 - (b0 + (b1 - b0) * t / (T - 1));
            d->abar[t] = abar;
        }
    } else {
        return nd_error_set(e, ND_ECONFIG, "model.schedule: unknown schedule %d", schedule);
    }
    return 0;
}

void nd_diffusion_q_sample(const nd_diffusion *d, float *xt, float *target, const float *x0,
                           const float *eps, int t, size_t n)
{
    float a = (float)sqrt(d->abar[t]), s = (float)sqrt(1.0 - d->abar[t]);
    for (size_t i = 0; i < n; i++) {
        xt[i] = a * x0[i] + s * eps[i];
        target[i] = d->pred == ND_PRED_V ? a * eps[i] - s * x0[i] : eps[i];
    }
}

/* Names by enum value. */
static const char *const sampler_names[] = {"ddim", "ddpm", "dpmpp"};
static const char *const clip_names[] = {"dynamic", "clip", "none"};
static const char *const pred_names[] = {"eps", "v"};
static const char *const schedule_names[] = {"cosine", "linear"};
#define NAMES(a) (a), (int)(sizeof(a) / sizeof(a)[0])

static int from_name(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}
static const char *name_of(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : "?";
}

int nd_sampler_from_name(const char *s) { return from_name(NAMES(sampler_names), s); }
int nd_clip_from_name(const char *s) { return from_name(NAMES(clip_names), s); }
int nd_pred_from_name(const char *s) { return from_name(NAMES(pred_names), s); }
int nd_schedule_from_name(const char *s) { return from_name(NAMES(schedule_names), s); }
const char *nd_sampler_name(int sampler) { return name_of(NAMES(sampler_names), sampler); }
const char *nd_clip_name(int clip) { return name_of(NAMES(clip_names), clip); }

/* ---- sampling ---------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Clip one predicted clean image in place. Dynamic thresholding (Saharia et al. 2022):
 * q = 99.5th percentile of |x̂0|, and when q > 1 the image is clipped to [−q, q] and
 * divided by q, which pulls saturated images back inside without flattening them. */
static void clip_x0(float *x0, size_t n, int mode, float *tmp)
{
    if (mode == ND_CLIP_NONE) return;
    float q = 1.0f;
    if (mode == ND_CLIP_DYNAMIC) {
        for (size_t i = 0; i < n; i++) tmp[i] = fabsf(x0[i]);
        qsort(tmp, n, sizeof *tmp, cmp_float);
        size_t k = (size_t)(0.995 * (double)(n - 1));
        if (tmp[k] > 1.0f) q = tmp[k];
    }
    for (size_t i = 0; i < n; i++) {
        float v = x0[i] < -q ? -q : x0[i] > q ? q : x0[i];
        x0[i] = v / q;
    }
}

int nd_diffusion_grid(const nd_diffusion *d, int S, int nested, int k)
{
    int T = d->T;
    if (k >= S) return -1;
    if (nested) return (int)((double)(T - 1) * (S - k) / S + 0.5);
    if (S == 1) return T - 1;
    return (int)((double)(T - 1) * (S - 1 - k) / (S - 1) + 0.5);
}

/* The sampler's steps: o->steps within 1..T. */
static int sample_steps(const nd_diffusion *d, const nd_sample_opts *o)
{
    return o->steps < 1 ? 1 : o->steps > d->T ? d->T : o->steps;
}

/* Timestep t of step k of S, and s, the next (less noisy) one; s −1: the step to the
 * clean image. */
static void step_pair(const nd_diffusion *d, const nd_sample_opts *o, int S, int k, int *t,
                      int *s)
{
    *t = nd_diffusion_grid(d, S, o->nested, k);
    *s = nd_diffusion_grid(d, S, o->nested, k + 1);
}

/* DDIM's noise scale from ᾱ_t to ᾱ_s: fresh noise is drawn when it is above 0. */
static double ddim_sigma(double eta, double at, double as)
{
    return eta * sqrt((1.0 - as) / (1.0 - at)) * sqrt(1.0 - at / as);
}

/* How many times step k (to s) is taken: o->resample's with inpainting, else once. */
static int step_takes(const nd_sample_opts *o, int s)
{
    return o->inpaint && o->resample > 1 && s >= 0 && o->sampler != ND_SAMPLER_DPMPP
               ? o->resample
               : 1;
}

size_t nd_diffusion_draws(const nd_diffusion *d, const nd_sample_opts *o, int B, size_t img)
{
    size_t n = (size_t)B * img, draws = n; /* the starting noise */
    int S = sample_steps(d, o);
    for (int k = 0; k < S; k++) {
        int t, s;
        step_pair(d, o, S, k, &t, &s);
        if (s < 0 || o->sampler == ND_SAMPLER_DPMPP) continue;
        size_t u = (size_t)step_takes(o, s);
        draws += (u - 1) * n; /* the noise back between takes */
        if (o->sampler == ND_SAMPLER_DDPM || ddim_sigma(o->eta, d->abar[t], d->abar[s]) > 0.0)
            draws += u * n;
    }
    return draws;
}

/* The known part of each of the B images x at noise level abar (o->inpaint). */
static void known(const nd_sample_opts *o, float *x, int B, size_t img, double abar)
{
    for (int b = 0; o->inpaint && b < B; b++)
        o->inpaint(o->inpaint_arg, x + (size_t)b * img, b, abar);
}

/* The predicted clean images x0 (B, img) of the B images x at timesteps t (B): the
 * network on x (and on a null-class copy with guidance, in one call of up to 2B images),
 * guidance, then o's clipping, projection and the known part. xin, out: 2B images; tmp:
 * img floats; tt, yy: 2B. y: the B classes. */
static void predict_x0(const nd_diffusion *d, const nd_sample_opts *o, nd_denoise_fn f,
                       void *arg, float *x0, const float *x, const int *t, const int *y, int B,
                       size_t img, float *xin, float *out, float *tmp, float *tt, int *yy)
{
    int guided = o->guidances || o->guidance != 1.0f, NB = guided ? 2 * B : B;
    size_t n = (size_t)B * img;
    memcpy(xin, x, n * sizeof(float));
    if (guided) memcpy(xin + n, x, n * sizeof(float));
    for (int b = 0; b < B; b++) {
        tt[b] = (float)t[b];
        yy[b] = y[b];
        if (guided) {
            tt[B + b] = (float)t[b];
            yy[B + b] = o->null_class;
        }
    }
    f(arg, out, xin, tt, yy, NB);
    for (int b = 0; b < B; b++) {
        float w = o->guidances ? o->guidances[b] : o->guidance;
        float *ob = out + (size_t)b * img, *x0b = x0 + (size_t)b * img;
        const float *xb = x + (size_t)b * img;
        double at = d->abar[t[b]], sa = sqrt(at), ss = sqrt(1.0 - at);
        if (guided) {
            const float *un = out + n + (size_t)b * img;
            for (size_t i = 0; i < img; i++) ob[i] = un[i] + w * (ob[i] - un[i]);
        }
        for (size_t i = 0; i < img; i++)
            x0b[i] = d->pred == ND_PRED_V ? (float)(sa * xb[i] - ss * ob[i])
                                          : (float)((xb[i] - ss * ob[i]) / sa);
        clip_x0(x0b, img, o->clip, tmp);
        if (o->project) o->project(o->project_arg, x0b);
        if (o->inpaint) o->inpaint(o->inpaint_arg, x0b, b, 1.0);
    }
}

/* Buffers of predict_x0 for B images. */
typedef struct pred_buf {
    float *xin, *out, *x0, *tmp, *tt;
    int *yy, *t;
} pred_buf;

static void pred_buf_alloc(pred_buf *p, int B, size_t img)
{
    p->xin = malloc(2 * (size_t)B * img * sizeof(float));
    p->out = malloc(2 * (size_t)B * img * sizeof(float));
    p->x0 = malloc((size_t)B * img * sizeof(float));
    p->tmp = malloc(img * sizeof(float));
    p->tt = malloc(2 * (size_t)B * sizeof(float));
    p->yy = malloc(2 * (size_t)B * sizeof(int));
    p->t = malloc((size_t)B * sizeof(int));
    ND_ASSERT(p->xin && p->out && p->x0 && p->tmp && p->tt && p->yy && p->t);
}

static void pred_buf_free(pred_buf *p)
{
    free(p->xin);
    free(p->out);
    free(p->x0);
    free(p->tmp);
    free(p->tt);
    free(p->yy);
    free(p->t);
}

static void predict(const nd_diffusion *d, const nd_sample_opts *o, nd_denoise_fn f, void *arg,
                    pred_buf *p, const float *x, const int *y, int B, size_t img)
{
    predict_x0(d, o, f, arg, p->x0, x, p->t, y, B, img, p->xin, p->out, p->tmp, p->tt, p->yy);
}

void nd_diffusion_ddim_step(const nd_diffusion *d, const nd_sample_opts *o, nd_denoise_fn f,
                            void *arg, float *x, const int *t, const int *s, const int *y,
                            int B, size_t img)
{
    pred_buf p;
    pred_buf_alloc(&p, B, img);
    memcpy(p.t, t, (size_t)B * sizeof(int));
    predict(d, o, f, arg, &p, x, y, B, img);
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * img;
        const float *x0b = p.x0 + (size_t)b * img;
        if (s[b] < 0) {
            memcpy(xb, x0b, img * sizeof(float));
            continue;
        }
        double at = d->abar[t[b]], as = d->abar[s[b]];
        double sa = sqrt(at), ss = sqrt(1.0 - at), ra = sqrt(as), rs = sqrt(1.0 - as);
        for (size_t i = 0; i < img; i++) {
            double eps = (xb[i] - sa * x0b[i]) / ss;
            xb[i] = (float)(ra * x0b[i] + rs * eps);
        }
    }
    pred_buf_free(&p);
}

void nd_diffusion_sample(const nd_diffusion *d, const nd_sample_opts *o, nd_denoise_fn f,
                         void *arg, float *x, const int *y, int B, size_t img, nd_rng *rng)
{
    int S = sample_steps(d, o);
    size_t n = (size_t)B * img;
    pred_buf p;
    pred_buf_alloc(&p, B, img);
    float *x0 = p.x0, *out = p.out;
    float *x0prev = malloc(n * sizeof(float));
    ND_ASSERT(x0prev);
    for (size_t i = 0; i < n; i++) x[i] = nd_rng_normal(rng);
    double h_prev = 0.0;
    for (int k = 0; k < S; k++) {
        int t, s;
        step_pair(d, o, S, k, &t, &s);
        double at = d->abar[t], as = s >= 0 ? d->abar[s] : 1.0;
        double sa = sqrt(at), ss = sqrt(1.0 - at);
        for (int b = 0; b < B; b++) p.t[b] = t;
        for (int u = 0, takes = step_takes(o, s); u < takes; u++) {
            if (u) { /* RePaint: x_s noised back to x_t by q(x_t | x_s), the step again */
                double ats = at / as, c = sqrt(ats), sd = sqrt(1.0 - ats);
                for (size_t i = 0; i < n; i++)
                    x[i] = (float)(c * x[i] + sd * nd_rng_normal(rng));
            }
            predict(d, o, f, arg, &p, x, y, B, img);
            /* ε consistent with the clipped x̂0, for DDIM and DDPM */
            if (o->sampler == ND_SAMPLER_DPMPP) {
                /* λ = log(α/σ); x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) D, D = x̂0 (first
                 * order) or (1 + 1/(2r)) x̂0 − 1/(2r) x̂0_prev with r = h_prev/h (2M) */
                if (s < 0) {
                    memcpy(x, x0, n * sizeof(float));
                } else {
                    double a_s = sqrt(as), sg_s = sqrt(1.0 - as);
                    double h = log(a_s / sg_s) - log(sa / ss);
                    double c1 = sg_s / ss, c2 = -a_s * (exp(-h) - 1.0);
                    int second = k > 0 && s > 0; /* first step and the step to t = 0: order 1 */
                    double r = second ? h_prev / h : 1.0;
                    for (size_t i = 0; i < n; i++) {
                        double D =
                            second ? (1.0 + 0.5 / r) * x0[i] - 0.5 / r * x0prev[i] : x0[i];
                        x[i] = (float)(c1 * x[i] + c2 * D);
                    }
                    h_prev = h;
                    known(o, x, B, img, as);
                }
                memcpy(x0prev, x0, n * sizeof(float));
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                double eps = (x[i] - sa * x0[i]) / ss;
                out[i] = (float)eps;
            }
            if (s < 0) {
                memcpy(x, x0, n * sizeof(float));
                continue;
            }
            if (o->sampler == ND_SAMPLER_DDPM) {
                /* posterior q(x_s | x_t, x̂0) with α_{t|s} = ᾱ_t/ᾱ_s */
                double ats = at / as, beta = 1.0 - ats;
                double c0 = sqrt(as) * beta / (1.0 - at),
                       ct = sqrt(ats) * (1.0 - as) / (1.0 - at);
                double sd = sqrt(beta * (1.0 - as) / (1.0 - at));
                for (size_t i = 0; i < n; i++)
                    x[i] = (float)(c0 * x0[i] + ct * x[i] + sd * nd_rng_normal(rng));
                known(o, x, B, img, as);
            } else {
                double sigma = ddim_sigma(o->eta, at, as);
                double dir = sqrt(fmax(0.0, 1.0 - as - sigma * sigma));
                for (size_t i = 0; i < n; i++) {
                    double v = sqrt(as) * x0[i] + dir * out[i];
                    if (sigma > 0.0) v += sigma * nd_rng_normal(rng);
                    x[i] = (float)v;
                }
                known(o, x, B, img, as);
            }
        }
    }
    free(x0prev);
    pred_buf_free(&p);
}
