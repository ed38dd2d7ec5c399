/*
 * conv_direct.c — 3×3 stride-1 convolution computed directly with AVX-512, without
 * im2col: the forward pass, and (with flipped, transposed weights) the input gradient.
 *
 * Why: im2col writes 9× the input per image and OpenBLAS then packs it again; at
 * unet-ref's shapes (32..128 channels, 16..128 pixels wide) a register-blocked direct
 * kernel reads the zero-padded input once per output-channel block and keeps
 * 8 output channels × 2 vectors of 16 pixels in 16 zmm accumulators. Where the CPU lacks
 * AVX-512 (or a shape does not fit: output channels not a multiple of 8) layers.c uses
 * im2col + sgemm.
 *
 * This file alone is compiled with -mavx512f (CMakeLists.txt), and nothing in it runs
 * unless the context's kernel level (cpu.c, checked against the CPU at run time) is
 * ND_CPU_AVX512 or above: the rest of the program runs on any x86-64. Without a compiler
 * that targets AVX-512 the functions are stubs that are never called.
 *
 * Layouts: inp (C,H,W); pad (C,H+2,W+2) zero border; packed weights
 * wt[OC/8][C][9][8] (the 8 of one output block contiguous, so that each tap is one
 * broadcast per output channel); out (OC,H,W).
 */
#include <string.h>

#include "nn_impl.h"

#if ND_NN_AVX512
#include "conv_direct_impl.h"

int nd_conv3_direct_ok(int C, int OC) { return C >= 1 && OC % 8 == 0; }

void nd_conv3_direct_pack(float *wt, const float *w, int C, int OC, int flip)
{
    /* flip = 0: wt for out = conv(inp, w), w (OC,C,3,3).
     * flip = 1: wt for dinp = conv(dout_pad, w'), w'[c][o][k] = w[o][c][8−k]: the
     *           input gradient of a stride-1 "same" convolution is a convolution of the
     *           output gradient with the flipped kernel, in- and out-channels swapped.
     *           Then the kernel's input channels are OC and its outputs C. */
    int KI = flip ? OC : C, KO = flip ? C : OC;
    for (int ob = 0; ob < KO / 8; ob++)
        for (int ci = 0; ci < KI; ci++)
            for (int k = 0; k < 9; k++)
                for (int j = 0; j < 8; j++) {
                    int co = ob * 8 + j;
                    float v = flip ? w[((size_t)ci * C + co) * 9 + (8 - k)]
                                   : w[((size_t)co * C + ci) * 9 + k];
                    wt[(((size_t)ob * KI + ci) * 9 + k) * 8 + j] = v;
                }
}

void nd_conv3_direct_pad(float *restrict pad, const float *restrict inp, int C, int H, int W)
{
    int Wp = W + 2;
    for (int c = 0; c < C; c++) {
        float *pc = pad + (size_t)c * (H + 2) * Wp;
        memset(pc, 0, sizeof(float) * Wp);
        memset(pc + (size_t)(H + 1) * Wp, 0, sizeof(float) * Wp);
        for (int y = 0; y < H; y++) {
            float *row = pc + (size_t)(y + 1) * Wp;
            row[0] = 0.0f;
            memcpy(row + 1, inp + ((size_t)c * H + y) * W, sizeof(float) * W);
            row[W + 1] = 0.0f;
        }
    }
}

/* out (OC,H,W) = [out +] bias + conv(pad), pad holding C·(H+2)·(W+2), in parts:
 * input channels [c0, c1) of one output block ob: 8 outputs × C·9 taps of weights
 * (c1 − c0 <= 48: 13.5 KiB, half of L1, stays there while the pixels stream by). */
static void direct_part(float *out, const float *pad, const float *wt, const float *bias, int C,
                        int c0, int c1, int H, int W, int ob, int accumulate)
{
    int Wp = W + 2, nvx = (W + 15) / 16, NV = H * nvx;
    size_t plane = (size_t)(H + 2) * Wp;
    {
        const float *wb = wt + (size_t)ob * C * 72;
        for (int i = 0; i < NV; i += 2) {
            tile2 t = tile_at(i, NV, nvx, W);
            __m512 a0[8], a1[8];
            acc_load(a0, a1, out, bias, &t, ob, H, W, accumulate);
            const float *p0 = pad + (size_t)t.y0 * Wp + t.x0,
                        *p1 = pad + (size_t)t.y1 * Wp + t.x1;
            for (int c = c0; c < c1; c++) {
                const float *wc = wb + (size_t)c * 72;
                const float *q0 = p0 + c * plane, *q1 = p1 + c * plane;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        __m512 v0 = _mm512_maskz_loadu_ps(t.m0, q0 + ky * Wp + kx);
                        __m512 v1 = _mm512_maskz_loadu_ps(t.m1, q1 + ky * Wp + kx);
                        const float *wk = wc + (ky * 3 + kx) * 8;
                        for (int j = 0; j < 8; j++) {
                            __m512 wv = _mm512_set1_ps(wk[j]);
                            a0[j] = _mm512_fmadd_ps(wv, v0, a0[j]);
                            a1[j] = _mm512_fmadd_ps(wv, v1, a1[j]);
                        }
                    }
            }
            acc_store(out, a0, a1, &t, ob, H, W);
        }
    }
}

void nd_conv3_direct_block(float *out, const float *pad, const float *wt, const float *bias,
                           int C, int H, int W, int ob, int accumulate)
{
    for (int c0 = 0; c0 < C; c0 += DIRECT_CCHUNK) {
        int c1 = c0 + DIRECT_CCHUNK < C ? c0 + DIRECT_CCHUNK : C;
        direct_part(out, pad, wt, bias, C, c0, c1, H, W, ob, accumulate || c0 > 0);
    }
}

void nd_conv3_direct_image(float *out, float *pad, const float *inp, const float *wt,
                           const float *bias, int C, int H, int W, int OC, int accumulate)
{
    nd_conv3_direct_pad(pad, inp, C, H, W);
    for (int ob = 0; ob < OC / 8; ob++)
        nd_conv3_direct_block(out, pad, wt, bias, C, H, W, ob, accumulate);
}

/* Weight gradient of one image, kept transposed: dwt[c][k][o] += Σ_p dout[o][p] ·
 * pad[c][p + tap k]; db[o] += Σ_p dout[o][p]. doutT (P,OC) is dout transposed, so that
 * 16 output channels are one vector and each input pixel one broadcast: NV vectors
 * (16·NV output channels) × 9 taps accumulate in registers over the whole image. */
static inline __attribute__((always_inline)) void
dw_block(float *restrict dwt, float *restrict db, const float *restrict doutT,
         const float *restrict pad, int C, int H, int W, int OC, int o0, const int NV)
{
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    for (int c = 0; c < C; c++) {
        __m512 acc[9][2], bacc[2];
        for (int k = 0; k < 9; k++)
            for (int v = 0; v < NV; v++)
                acc[k][v] = _mm512_loadu_ps(dwt + ((size_t)c * 9 + k) * OC + o0 + 16 * v);
        for (int v = 0; v < NV; v++) bacc[v] = _mm512_setzero_ps();
        const float *pc = pad + c * plane;
        for (int y = 0; y < H; y++) {
            const float *r0 = pc + (size_t)y * Wp, *r1 = r0 + Wp, *r2 = r1 + Wp;
            const float *d = doutT + (size_t)y * W * OC + o0;
            for (int x = 0; x < W; x++, d += OC) {
                __m512 dv[2];
                for (int v = 0; v < NV; v++) dv[v] = _mm512_loadu_ps(d + 16 * v);
                if (c == 0)
                    for (int v = 0; v < NV; v++) bacc[v] = _mm512_add_ps(bacc[v], dv[v]);
                const float *rr[3] = {r0 + x, r1 + x, r2 + x};
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        __m512 s = _mm512_set1_ps(rr[ky][kx]);
                        for (int v = 0; v < NV; v++)
                            acc[ky * 3 + kx][v] =
                                _mm512_fmadd_ps(s, dv[v], acc[ky * 3 + kx][v]);
                    }
            }
        }
        for (int k = 0; k < 9; k++)
            for (int v = 0; v < NV; v++)
                _mm512_storeu_ps(dwt + ((size_t)c * 9 + k) * OC + o0 + 16 * v, acc[k][v]);
        if (c == 0)
            for (int v = 0; v < NV; v++)
                _mm512_storeu_ps(db + o0 + 16 * v,
                                 _mm512_add_ps(_mm512_loadu_ps(db + o0 + 16 * v), bacc[v]));
    }
}

int nd_conv3_direct_dw_ok(int C, int OC) { return C >= 1 && OC % 16 == 0; }

void nd_conv3_direct_dw_image(float *dwt, float *db, float *pad, float *doutT, const float *inp,
                              const float *dout, int C, int H, int W, int OC)
{
    nd_conv3_direct_pad(pad, inp, C, H, W);
    size_t P = (size_t)H * W;
    for (size_t p0 = 0; p0 < P; p0 += 64) /* transpose dout (OC,P) -> (P,OC) in tiles */
        for (int o = 0; o < OC; o++)
            for (size_t p = p0; p < P && p < p0 + 64; p++) doutT[p * OC + o] = dout[o * P + p];
    int o0 = 0;
    for (; o0 + 32 <= OC; o0 += 32) dw_block(dwt, db, doutT, pad, C, H, W, OC, o0, 2);
    if (o0 < OC) dw_block(dwt, db, doutT, pad, C, H, W, OC, o0, 1);
}

#else /* no AVX-512 compiler: layers.c keeps im2col + sgemm */

int nd_conv3_direct_ok(int C, int OC) { return 0; }
void nd_conv3_direct_pad(float *pad, const float *inp, int C, int H, int W) { ND_ASSERT(0); }
void nd_conv3_direct_block(float *out, const float *pad, const float *wt, const float *bias,
                           int C, int H, int W, int ob, int accumulate)
{
    ND_ASSERT(0);
}
int nd_conv3_direct_dw_ok(int C, int OC) { return 0; }
void nd_conv3_direct_dw_image(float *dwt, float *db, float *pad, float *doutT, const float *inp,
                              const float *dout, int C, int H, int W, int OC)
{
    ND_ASSERT(0);
}
void nd_conv3_direct_pack(float *wt, const float *w, int C, int OC, int flip) { ND_ASSERT(0); }
void nd_conv3_direct_image(float *out, float *pad, const float *inp, const float *wt,
                           const float *bias, int C, int H, int W, int OC, int accumulate)
{
    ND_ASSERT(0);
}

#endif
