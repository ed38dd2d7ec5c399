/*
 * gaf.c — flow windows <-> Gramian Angular Summation Field images (docs/MODEL.md).
 *
 * Sits between the dataset (raw bytes per bin) and the diffusion model: a window of C
 * series of L bins is scaled per class into [0, 1], each series becomes one L×L GASF
 * image, and sampled images are decoded back to bytes. With a mask, each channel also
 * gets an activity image (the GASF of the 0/1 "bin is busy" series), which is how idle
 * bins (20–35 % of real bins) are modelled explicitly instead of as a value at the
 * image's edge.
 *
 * GASF with v in [0, 1]: φ = arccos v in [0, π/2], G_ij = cos(φ_i + φ_j). The diagonal
 * cos(2φ_i) = 2v_i² − 1 is one-to-one on [0, 1], so v_i = √((G_ii+1)/2).
 */
#include <math.h>
#include <string.h>

#include "model.h"
#include "model_impl.h"

int nd_gaf_channels(const nd_gaf_spec *g) { return g->mask ? 2 * g->C : g->C; }

void nd_gaf_fit_scale(nd_gaf_scale *s, const float *x, size_t n, int C, int L)
{
    for (int c = 0; c < C; c++) {
        float lo = INFINITY, hi = 0.0f;
        for (size_t k = 0; k < n; k++) {
            const float *row = x + (k * C + c) * L;
            for (int i = 0; i < L; i++) {
                /* +inf would make the scale infinite and every value scale to 0 or NaN;
                 * it scales to the top (clamp01) of a finite scale instead */
                if (!(row[i] > 0.0f) || isinf(row[i])) continue;
                float l = log1pf(row[i]);
                if (l < lo) lo = l;
                if (l > hi) hi = l;
            }
        }
        s->lo[c] = isinf(lo) ? 0.0f : lo;
        s->hi[c] = hi;
    }
    for (int c = C; c < ND_MAX_CHANNELS; c++) s->lo[c] = s->hi[c] = 0.0f;
}

static inline float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

void nd_gaf_encode(float *img, const float *v, int C, int L)
{
    for (int c = 0; c < C; c++) {
        const float *x = v + (size_t)c * L;
        float *G = img + (size_t)c * L * L;
        for (int i = 0; i < L; i++) {
            float xi = clamp01(x[i]), si = sqrtf(1.0f - xi * xi);
            for (int j = 0; j < L; j++) {
                float xj = clamp01(x[j]);
                G[(size_t)i * L + j] = xi * xj - si * sqrtf(1.0f - xj * xj);
            }
        }
    }
}

/* One channel: φ minimising Σ_ij (cos(φ_i+φ_j) − S_ij)² over φ in [0, π/2], S the
 * symmetrised, clamped image. Gauss–Seidel over coordinates, one Gauss–Newton step on
 * each: with r_kj = cos(φ_k+φ_j) − S_kj and s_kj = sin(φ_k+φ_j), the gradient in φ_k
 * is −4 Σ_j r_kj s_kj and the Gauss–Newton curvature 4 Σ_{j≠k} s_kj² + 8 s_kk². */
static void decode_lsq_channel(float *v, const float *S, int L, float *phi)
{
    const float half_pi = 1.57079632679f;
    for (int i = 0; i < L; i++) phi[i] = 0.5f * acosf(S[(size_t)i * L + i]);
    for (int sweep = 0; sweep < 12; sweep++) {
        for (int k = 0; k < L; k++) {
            double g = 0.0, h = 0.0;
            const float *row = S + (size_t)k * L;
            for (int j = 0; j < L; j++) {
                float a = phi[k] + phi[j];
                double r = cos(a) - row[j], s = sin(a);
                g += r * s;
                h += (j == k ? 2.0 : 1.0) * s * s;
            }
            if (h < 1e-12) continue;
            /* g and h carry the same factor 4: the step is g/h */
            float p = phi[k] + (float)(g / h);
            phi[k] = p < 0.0f ? 0.0f : p > half_pi ? half_pi : p;
        }
    }
    for (int i = 0; i < L; i++) v[i] = cosf(phi[i]);
}

void nd_gaf_decode(float *v, const float *img, int C, int L, int mode)
{
    static _Thread_local float
        S[ND_MODEL_MAX_L * ND_MODEL_MAX_L]; /* one channel, symmetrised */
    float phi[ND_MODEL_MAX_L];
    ND_ASSERT(L <= ND_MODEL_MAX_L);
    for (int c = 0; c < C; c++) {
        const float *G = img + (size_t)c * L * L;
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++) {
                float a = 0.5f * (G[(size_t)i * L + j] + G[(size_t)j * L + i]);
                S[(size_t)i * L + j] = a < -1.0f ? -1.0f : a > 1.0f ? 1.0f : a;
            }
        if (mode == ND_GAF_LSQ) {
            decode_lsq_channel(v + (size_t)c * L, S, L, phi);
        } else {
            for (int i = 0; i < L; i++)
                v[(size_t)c * L + i] = sqrtf(0.5f * (S[(size_t)i * L + i] + 1.0f));
        }
    }
}

/* The value that the largest training value maps to. */
static float vtop(const nd_gaf_spec *g)
{
    return g->scaling == ND_GAF_HEADROOM ? ND_GAF_VMAX : 1.0f;
}

/* Raw value -> [0, 1] for channel c of a class. */
static float scale_value(float x, const nd_gaf_spec *g, const nd_gaf_scale *s, int c)
{
    if (!(x > 0.0f)) return 0.0f;
    float l = log1pf(x);
    if (g->scaling == ND_GAF_LOG) return s->hi[c] > 0.0f ? clamp01(l / s->hi[c]) : 0.0f;
    float span = s->hi[c] - s->lo[c];
    float u = span > 0.0f ? clamp01((l - s->lo[c]) / span) : 1.0f;
    return ND_GAF_VMIN + (vtop(g) - ND_GAF_VMIN) * u;
}

float nd_gaf_unscale(float v, const nd_gaf_spec *g, const nd_gaf_scale *s, int c)
{
    if (g->scaling == ND_GAF_LOG) return expm1f(clamp01(v) * s->hi[c]);
    /* with headroom, values above the top decode above the largest training value (u
     * up to (1 − VMIN) / (VMAX − VMIN) = 1.25 of the span) */
    float u = (clamp01(v) - ND_GAF_VMIN) / (vtop(g) - ND_GAF_VMIN);
    u = u < 0.0f ? 0.0f : u;
    return expm1f(s->lo[c] + u * (s->hi[c] - s->lo[c]));
}

void nd_gaf_scale_window(float *v, const float *x, const nd_gaf_spec *g, const nd_gaf_scale *s)
{
    int C = g->C, L = g->L;
    ND_ASSERT(L <= ND_MODEL_MAX_L && C <= ND_MAX_CHANNELS);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < L; i++) {
            float xi = x[(size_t)c * L + i];
            v[c * L + i] = scale_value(xi, g, s, c);
            if (g->mask) v[(C + c) * L + i] = xi > 0.0f ? 1.0f : 0.0f;
        }
}

void nd_gaf_window_to_image(float *img, const float *x, const nd_gaf_spec *g,
                            const nd_gaf_scale *s)
{
    float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    nd_gaf_scale_window(v, x, g, s);
    nd_gaf_encode(img, v, nd_gaf_channels(g), g->L);
}

void nd_gaf_image_to_window(float *x, const float *img, const nd_gaf_spec *g,
                            const nd_gaf_scale *s, int mode)
{
    float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    ND_ASSERT(g->L <= ND_MODEL_MAX_L && g->C <= ND_MAX_CHANNELS);
    nd_gaf_decode(v, img, nd_gaf_channels(g), g->L, mode < 0 ? g->decode : mode);
    nd_gaf_unscale_window(x, v, g, s);
}

void nd_gaf_unscale_window(float *x, const float *v, const nd_gaf_spec *g,
                           const nd_gaf_scale *s)
{
    int C = g->C, L = g->L;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < L; i++) {
            float vi = v[c * L + i];
            int active;
            if (g->mask) active = v[(C + c) * L + i] > ND_GAF_ACTIVE;
            else if (g->scaling != ND_GAF_LOG) active = vi > 0.5f * ND_GAF_VMIN;
            else active = vi > 0.0f;
            x[(size_t)c * L + i] = active ? nd_gaf_unscale(vi, g, s, c) : 0.0f;
        }
}
