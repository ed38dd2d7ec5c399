/*
 * conv_bf16.c — the bfloat16 variant of the forward kernel (opt-in, nd_ctx_set_bf16): inputs
 * and weights rounded to bf16 (8-bit mantissa, round to nearest even), products summed in
 * float32 by vdpbf16ps, which multiplies two channels per 32-bit lane: twice the multiply rate
 * of the float32 kernel. Layouts: padded input pairs padbf[(C+1)/2][H+2][W+2] (u32: channel 2cp
 * in the low half, 2cp+1 in the high half, 0 past C); weights wtbf[OC/8][(C+1)/2][9][8] paired
 * the same way.
 *
 * Compiled with -mavx512f -mavx512bf16 (CMakeLists.txt) and called only at kernel level
 * ND_CPU_AVX512BF16 (cpu.c); without such a compiler, stubs that are never called.
 */
#include <string.h>

#include "nn_impl.h"

#if ND_NN_AVX512BF16
#include "conv_direct_impl.h"

static inline uint32_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest even; inputs are finite */
    return u >> 16;
}

void nd_conv3_bf16_pack(uint32_t *wt, const float *w, int C, int OC, int flip)
{
    int KI = flip ? OC : C, KO = flip ? C : OC, KP = (KI + 1) / 2;
    for (int ob = 0; ob < KO / 8; ob++)
        for (int cp = 0; cp < KP; cp++)
            for (int k = 0; k < 9; k++)
                for (int j = 0; j < 8; j++) {
                    int co = ob * 8 + j;
                    uint32_t h[2] = {0, 0};
                    for (int e = 0; e < 2; e++) {
                        int ci = 2 * cp + e;
                        if (ci >= KI) break;
                        float v = flip ? w[((size_t)ci * C + co) * 9 + (8 - k)]
                                       : w[((size_t)co * C + ci) * 9 + k];
                        h[e] = f2bf(v);
                    }
                    wt[(((size_t)ob * KP + cp) * 9 + k) * 8 + j] = h[0] | h[1] << 16;
                }
}

void nd_conv3_bf16_image(float *out, uint32_t *pad, const float *inp, const uint32_t *wt,
                         const float *bias, int C, int H, int W, int OC, int accumulate)
{
    int Wp = W + 2, CP = (C + 1) / 2, nvx = (W + 15) / 16, NV = H * nvx;
    size_t plane = (size_t)(H + 2) * Wp;
    for (int cp = 0; cp < CP; cp++) {
        uint32_t *pc = pad + cp * plane;
        const float *x0 = inp + (size_t)(2 * cp) * H * W;
        const float *x1 = 2 * cp + 1 < C ? x0 + (size_t)H * W : NULL;
        memset(pc, 0, sizeof(uint32_t) * Wp);
        memset(pc + (size_t)(H + 1) * Wp, 0, sizeof(uint32_t) * Wp);
        for (int y = 0; y < H; y++) {
            uint32_t *row = pc + (size_t)(y + 1) * Wp;
            row[0] = row[W + 1] = 0;
            for (int x = 0; x < W; x++)
                row[x + 1] =
                    f2bf(x0[(size_t)y * W + x]) | (x1 ? f2bf(x1[(size_t)y * W + x]) << 16 : 0u);
        }
    }
    for (int ob = 0; ob < OC / 8; ob++)
        for (int c0 = 0; c0 < CP; c0 += DIRECT_CCHUNK) {
            int c1 = c0 + DIRECT_CCHUNK < CP ? c0 + DIRECT_CCHUNK : CP;
            const uint32_t *wb = wt + (size_t)ob * CP * 72;
            for (int i = 0; i < NV; i += 2) {
                tile2 t = tile_at(i, NV, nvx, W);
                __m512 a0[8], a1[8];
                acc_load(a0, a1, out, bias, &t, ob, H, W, accumulate || c0 > 0);
                const uint32_t *p0 = pad + (size_t)t.y0 * Wp + t.x0,
                               *p1 = pad + (size_t)t.y1 * Wp + t.x1;
                for (int cp = c0; cp < c1; cp++) {
                    const uint32_t *wc = wb + (size_t)cp * 72;
                    const uint32_t *q0 = p0 + cp * plane, *q1 = p1 + cp * plane;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            __m512bh v0 =
                                (__m512bh)_mm512_maskz_loadu_epi32(t.m0, q0 + ky * Wp + kx);
                            __m512bh v1 =
                                (__m512bh)_mm512_maskz_loadu_epi32(t.m1, q1 + ky * Wp + kx);
                            const uint32_t *wk = wc + (ky * 3 + kx) * 8;
                            for (int j = 0; j < 8; j++) {
                                __m512bh wv = (__m512bh)_mm512_set1_epi32((int)wk[j]);
                                a0[j] = _mm512_dpbf16_ps(a0[j], v0, wv);
                                a1[j] = _mm512_dpbf16_ps(a1[j], v1, wv);
                            }
                        }
                }
                acc_store(out, a0, a1, &t, ob, H, W);
            }
        }
}

#else
void nd_conv3_bf16_pack(uint32_t *wt, const float *w, int C, int OC, int flip) { ND_ASSERT(0); }
void nd_conv3_bf16_image(float *out, uint32_t *pad, const float *inp, const uint32_t *wt,
                         const float *bias, int C, int H, int W, int OC, int accumulate)
{
    ND_ASSERT(0);
}
#endif
