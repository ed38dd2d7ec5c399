/*
 * png.c — pictures of windows for people (libpng): one row per window, its GASF images
 * (one per channel, blue −1 .. white 0 .. red +1) and a plot of its series (log1p of
 * bytes per bin, one colour per channel), rows grouped by class. Used by `sample --png`
 * and `render`; never training data.
 */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "model.h"
#include "nn.h"

#define PLOT_H 64 /* series plot height, pixels */
#define GAP    4

static const unsigned char palette[ND_MAX_CHANNELS][3] = {
    {31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
    {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127}};

/* Plot height in pixels (0 .. PLOT_H - 2) of value v under a channel maximum hi: the ratio
 * is clamped before it becomes an int, because +inf, NaN or a value above the scale (the
 * scale ignores non-finite values) would otherwise convert out of range and draw outside
 * the picture. NaN, negative and zero values sit on the axis, +inf at the top. */
static int plot_height(float v, float hi)
{
    float r = v > 0 ? log1pf(v) / hi : 0;
    if (!(r > 0)) r = 0;
    if (r > 1) r = 1;
    return (int)((PLOT_H - 2) * r + 0.5f);
}

static void put(unsigned char *rgb, int W, int x, int y, const unsigned char c[3])
{
    unsigned char *p = rgb + ((size_t)y * W + x) * 3;
    p[0] = c[0];
    p[1] = c[1];
    p[2] = c[2];
}

/* libpng's output into the atomic writer: the picture replaces path only when it is
 * whole, so that a failed render keeps the previous one. */
typedef struct png_sink {
    nd_afile *f;
    nd_error *e;
    int rc; /* first failure */
} png_sink;

static void png_sink_write(png_structp png, png_bytep data, size_t len)
{
    png_sink *o = png_get_io_ptr(png);
    if (!o->rc) o->rc = nd_afile_write(o->f, data, len, o->e);
}

static void png_sink_flush(png_structp png) { (void)png; }

/* Writes the W x H RGB picture rgb to path. 0 or a code with e filled. */
static int write_png(const char *path, const unsigned char *rgb, int W, int H, nd_error *e)
{
    png_sink o = {nd_afile_open(path, e), e, 0};
    if (!o.f) return e ? e->code : -EIO;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) o.rc = nd_error_set(e, -ENOMEM, "%s: libpng failed to start", path);
    else if (setjmp(png_jmpbuf(png))) {
        if (!o.rc) o.rc = nd_error_set(e, -EIO, "%s: libpng failed to write", path);
    } else {
        png_set_write_fn(png, &o, png_sink_write, png_sink_flush);
        png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < H; y++) png_write_row(png, (png_bytep)rgb + (size_t)y * W * 3);
        png_write_end(png, NULL);
    }
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    if (o.rc) {
        nd_afile_abort(o.f);
        return o.rc;
    }
    return nd_afile_commit(o.f, e);
}

int nd_png_windows(const char *path, const nd_dataset *ds, int per_class, nd_error *e)
{
    int C = (int)ds->n_channels, L = (int)ds->L;
    if (L > ND_MODEL_MAX_L)
        return nd_error_set(e, ND_EUSAGE, "%s: windows of %d bins are too long to draw", path,
                            L);
    /* one scale per dataset and channel, so that pictures of real and synthetic data
     * with similar values look alike */
    nd_gaf_scale sc;
    nd_gaf_fit_scale(&sc, ds->values, ds->n_windows, C, L);
    nd_gaf_spec g = {.C = C, .L = L, .scaling = ND_GAF_LOG, .mask = 0, .decode = ND_GAF_DIAG};
    size_t rows = 0;
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        size_t n = 0;
        for (uint64_t w = 0; w < ds->n_windows; w++) n += ds->labels[w] == k;
        rows += n < (size_t)per_class ? n : (size_t)per_class;
    }
    if (!rows) return nd_error_set(e, ND_EUSAGE, "%s: no windows to draw", path);
    int tile = L < 64 ? 64 : L; /* pixels per GAF image side (nearest-neighbour zoom) */
    int W = GAP + C * (tile + GAP) + 2 * L + GAP, rowh = (tile > PLOT_H ? tile : PLOT_H) + GAP;
    int H = GAP + (int)rows * rowh;
    unsigned char *rgb = malloc((size_t)W * H * 3);
    float *img = malloc((size_t)C * L * L * sizeof(float));
    if (!rgb || !img) {
        free(rgb);
        free(img);
        return nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    }
    memset(rgb, 255, (size_t)W * H * 3);
    int row = 0;
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        int n = 0;
        for (uint64_t w = 0; w < ds->n_windows && n < per_class; w++) {
            if (ds->labels[w] != k) continue;
            n++;
            const float *x = ds->values + w * (size_t)C * L;
            nd_gaf_window_to_image(img, x, &g, &sc);
            int y0 = GAP + row++ * rowh;
            for (int c = 0; c < C; c++) {
                int x0 = GAP + c * (tile + GAP);
                for (int py = 0; py < tile; py++)
                    for (int px = 0; px < tile; px++) {
                        float v = img[((size_t)c * L + py * L / tile) * L + px * L / tile];
                        unsigned char col[3];
                        float a = fabsf(v);
                        if (!(a <= 1)) a = 1; /* a NaN pixel draws saturated, never UB */
                        unsigned char lo = (unsigned char)(255 * (1 - a));
                        if (v >= 0) col[0] = 255, col[1] = lo, col[2] = lo;
                        else col[0] = lo, col[1] = lo, col[2] = 255;
                        put(rgb, W, x0 + px, y0 + py, col);
                    }
            }
            /* the plot: 2 pixels per bin, height log1p(x)/log1p(max of the channel) */
            int px0 = GAP + C * (tile + GAP);
            for (int i = 0; i < 2 * L; i++) put(rgb, W, px0 + i, y0 + PLOT_H - 1, palette[7]);
            for (int c = 0; c < C; c++) {
                float hi = sc.hi[c] > 0 ? sc.hi[c] : 1;
                for (int i = 0; i < L; i++) {
                    int yy = y0 + PLOT_H - 2 - plot_height(x[(size_t)c * L + i], hi);
                    put(rgb, W, px0 + 2 * i, yy, palette[c]);
                    put(rgb, W, px0 + 2 * i + 1, yy, palette[c]);
                }
            }
        }
    }
    free(img);
    int rc = write_png(path, rgb, W, H, e);
    free(rgb);
    return rc;
}
