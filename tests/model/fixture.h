/*
 * fixture.h — reads the PyTorch parity fixtures written by scripts/torch_reference.py:
 * b"NDFX", u32 count, then per tensor u32 name length, name, u32 count, float32 data
 * (little endian). Header-only, for tests/model.
 */
#ifndef ND_TEST_FIXTURE_H
#define ND_TEST_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct fx_tensor {
    char name[96];
    uint32_t n;
    float *v;
} fx_tensor;

typedef struct fixture {
    uint32_t count;
    fx_tensor *t;
} fixture;

static inline uint32_t fx_u32(FILE *f, const char *path)
{
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) CHECK_FAIL_("%s: truncated", path);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline fixture fx_load(const char *path)
{
    fixture fx = {0, NULL};
    FILE *f = fopen(path, "rb");
    if (!f)
        CHECK_FAIL_("%s: cannot open (regenerate: scripts/torch_reference.py fixtures)", path);
    char magic[4];
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "NDFX", 4))
        CHECK_FAIL_("%s: not NDFX", path);
    fx.count = fx_u32(f, path);
    fx.t = calloc(fx.count, sizeof *fx.t);
    CHECK(fx.t);
    for (uint32_t i = 0; i < fx.count; i++) {
        uint32_t len = fx_u32(f, path);
        CHECK(len < sizeof fx.t[i].name);
        if (fread(fx.t[i].name, 1, len, f) != len) CHECK_FAIL_("%s: truncated", path);
        fx.t[i].n = fx_u32(f, path);
        fx.t[i].v = malloc(sizeof(float) * (fx.t[i].n + 1));
        CHECK(fx.t[i].v);
        if (fread(fx.t[i].v, sizeof(float), fx.t[i].n, f) != fx.t[i].n)
            CHECK_FAIL_("%s: truncated in %s", path, fx.t[i].name);
    }
    fclose(f);
    return fx;
}

static inline const fx_tensor *fx_get(const fixture *fx, const char *name)
{
    for (uint32_t i = 0; i < fx->count; i++)
        if (!strcmp(fx->t[i].name, name)) return &fx->t[i];
    CHECK_FAIL_("fixture has no tensor %s", name);
    return NULL;
}

static inline void fx_free(fixture *fx)
{
    for (uint32_t i = 0; i < fx->count; i++) free(fx->t[i].v);
    free(fx->t);
}

/* Every element: |a − b| <= atol + rtol·max|b| (a scale-aware tolerance: gradients of
 * one tensor share a scale). Prints the worst element on failure. */
static inline void check_close(const char *what, const float *a, const float *b, size_t n,
                               double atol, double rtol)
{
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)b[i]));
    double worst = -1.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) {
            worst = d;
            wi = i;
        }
    }
    if (n && !(worst <= atol + rtol * mx))
        CHECK_FAIL_("%s: element %zu of %zu: %.9g vs %.9g (diff %.3g > %.3g + %.3g·%.3g)", what,
                    wi, n, a[wi], b[wi], worst, atol, rtol, mx);
}

#endif
