/*
 * conv_direct_impl.h — private to conv_direct.c and conv_bf16.c, both compiled for
 * AVX-512 (CMakeLists.txt): the output tiles and accumulator loads and stores the
 * float32 and bfloat16 kernels share.
 */
#ifndef ND_CONV_DIRECT_IMPL_H
#define ND_CONV_DIRECT_IMPL_H

#include <immintrin.h>

#include "nn_impl.h"

/* Input channels per pass over the pixels (the float32 kernel: 48 × 72 weights, 13.5 KiB,
 * half of L1; the bf16 kernel: 48 channel pairs). */
#define DIRECT_CCHUNK 48

/* Two vectors of 16 output pixels, numbers i and i+1 in row-major vector order (an odd
 * last one repeats the first and is not stored), with lane masks for W not a multiple
 * of 16; and the 8×2 accumulators' load (bias, or the output when accumulating) and
 * store. Shared by the float32 and bf16 kernels; always inlined so that the
 * accumulators stay in registers. */
typedef struct tile2 {
    int y0, x0, y1, x1, two;
    __mmask16 m0, m1;
} tile2;

static inline __attribute__((always_inline)) tile2 tile_at(int i, int NV, int nvx, int W)
{
    tile2 t;
    int i1 = i + 1 < NV ? i + 1 : i;
    t.two = i1 != i;
    t.y0 = i / nvx, t.x0 = (i % nvx) * 16, t.y1 = i1 / nvx, t.x1 = (i1 % nvx) * 16;
    t.m0 = W - t.x0 >= 16 ? 0xFFFF : (__mmask16)((1u << (W - t.x0)) - 1);
    t.m1 = W - t.x1 >= 16 ? 0xFFFF : (__mmask16)((1u << (W - t.x1)) - 1);
    return t;
}

static inline __attribute__((always_inline)) void acc_load(__m512 *a0, __m512 *a1,
                                                           const float *out, const float *bias,
                                                           const tile2 *t, int ob, int H, int W,
                                                           int from_out)
{
    for (int j = 0; j < 8; j++) {
        int o = ob * 8 + j;
        if (from_out) {
            a0[j] = _mm512_maskz_loadu_ps(t->m0, out + ((size_t)o * H + t->y0) * W + t->x0);
            a1[j] = _mm512_maskz_loadu_ps(t->m1, out + ((size_t)o * H + t->y1) * W + t->x1);
        } else {
            a0[j] = a1[j] = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        }
    }
}

static inline __attribute__((always_inline)) void
acc_store(float *out, const __m512 *a0, const __m512 *a1, const tile2 *t, int ob, int H, int W)
{
    for (int j = 0; j < 8; j++) {
        int o = ob * 8 + j;
        _mm512_mask_storeu_ps(out + ((size_t)o * H + t->y0) * W + t->x0, t->m0, a0[j]);
        if (t->two)
            _mm512_mask_storeu_ps(out + ((size_t)o * H + t->y1) * W + t->x1, t->m1, a1[j]);
    }
}

#endif
