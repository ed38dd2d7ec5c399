/*
 * png.c — pictures of windows for people (cairo): per class a labelled block, per window
 * a plot of its series (bytes per bin on a log scale against time in seconds, one colour
 * per channel) and small GASF images of its channels (blue −1 .. white 0 .. red +1);
 * several datasets (real, synthetic) side by side in columns that share the axes, so that
 * their rows line up per class. Used by `render` and `sample --png`; never training data.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "draw_impl.h"
#include "eval.h"
#include "model.h"

#define PLOT_W  300 /* series plot, pixels */
#define PLOT_H  84
#define AXIS_L  56 /* room for the y tick labels and axis label */
#define TILE    36 /* GASF image side: two fit beside a plot */
#define ROW_GAP 10
#define TICKS_H 34 /* x ticks and label under a class's last row */
#define HEAD_H  28 /* class header */
#define TOP_H   78 /* title, legend, column titles */

/* Windows of class name in ds: indices of the first up to max into idx, the total as the
 * return value. */
static size_t class_windows(const nd_dataset *ds, const char *name, uint64_t *idx, int max)
{
    int k = -1;
    for (uint32_t j = 0; j < ds->n_classes; j++)
        if (!strcmp(ds->class_names[j], name)) k = (int)j;
    size_t n = 0;
    for (uint64_t w = 0; w < ds->n_windows && k >= 0; w++)
        if (ds->labels[w] == k) {
            if (n < (size_t)max) idx[n] = w;
            n++;
        }
    return n;
}

/* The GASF image of channel c of img (C, L, L) as a tile at (x, y). */
static void draw_gasf(cairo_t *cr, const float *img, int c, int L, double x, double y)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, L, L);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return; /* the picture lacks a tile; ndd_finish reports cairo's failures */
    }
    cairo_surface_flush(s);
    unsigned char *px = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            float v = img[((size_t)c * L + i) * L + j], a = fabsf(v);
            if (!(a <= 1)) a = 1; /* a NaN pixel draws saturated */
            uint32_t lo = (uint32_t)(255 * (1 - a)), hi = 255;
            uint32_t rgb = v >= 0 ? hi << 16 | lo << 8 | lo : lo << 16 | lo << 8 | hi;
            memcpy(px + (size_t)i * stride + (size_t)j * 4, &rgb, 4);
        }
    cairo_surface_mark_dirty(s);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, (double)TILE / L, (double)TILE / L);
    cairo_set_source_surface(cr, s, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_surface_destroy(s);
}

/* One window x (C, L) as a step plot on p (log1p values; NaN breaks the line). */
static void draw_series(const ndd_panel *p, const float *x, int C, int L, double bin_s,
                        double *xs, double *ys)
{
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < L; i++) {
            float v = x[(size_t)c * L + i];
            double y = isnan(v) ? NAN : v > 0 ? log1p((double)v) : 0;
            xs[2 * i] = i * bin_s, xs[2 * i + 1] = (i + 1) * bin_s;
            ys[2 * i] = ys[2 * i + 1] = isinf(y) ? p->ay.hi : y;
        }
        ndd_line(p, xs, ys, 2 * L, &ndd_channel_rgb[c], 1.4, 0);
    }
}

/* "bytes" when every channel counts bytes (bytes_*), else "bytes or packets". */
static const char *unit_of(const nd_dataset *ds)
{
    for (uint32_t c = 0; c < ds->n_channels; c++)
        if (strncmp(ds->channel_names[c], "bytes", 5)) return "bytes or packets";
    return "bytes";
}

/* A channel's name with its direction spelled out: "bytes_down (downlink)". */
static void channel_label(char *buf, size_t n, const char *name)
{
    size_t len = strlen(name);
    const char *dir = len > 5 && !strcmp(name + len - 5, "_down") ? " (downlink)"
                      : len > 3 && !strcmp(name + len - 3, "_up") ? " (uplink)"
                                                                  : "";
    snprintf(buf, n, "%s%s", name, dir);
}

/* Class names of every column (only the class named only, when not NULL), the first
 * column's first, then those only later columns have, each once. Returns how many (at
 * most ND_MAX_CLASSES). */
static int union_classes(const nd_png_column *cols, int ncols, const char *only,
                         const char **names)
{
    int n = 0;
    for (int j = 0; j < ncols; j++)
        for (uint32_t k = 0; k < cols[j].ds->n_classes && n < ND_MAX_CLASSES; k++) {
            int seen = only && strcmp(only, cols[j].ds->class_names[k]);
            for (int i = 0; i < n && !seen; i++)
                seen = !strcmp(names[i], cols[j].ds->class_names[k]);
            if (!seen) names[n++] = cols[j].ds->class_names[k];
        }
    return n;
}

int nd_png_windows(const char *path, const nd_png_column *cols, int ncols, int per_class,
                   const char *only_class, nd_error *e)
{
    if (ncols < 1 || ncols > ND_PNG_MAX_COLUMNS || per_class < 1)
        return nd_error_set(e, ND_EUSAGE, "%s: %d columns of %d windows: expected 1..%d, >= 1",
                            path, ncols, per_class, ND_PNG_MAX_COLUMNS);
    const nd_dataset *d0 = cols[0].ds;
    int C = (int)d0->n_channels, L = (int)d0->L;
    if (L > ND_MODEL_MAX_L)
        return nd_error_set(e, ND_EUSAGE, "%s: windows of %d bins are too long to draw", path,
                            L);
    for (int j = 1; j < ncols; j++)
        if (cols[j].ds->n_channels != d0->n_channels || cols[j].ds->L != d0->L)
            return nd_error_set(e, ND_EUSAGE,
                                "%s: %s windows are %u x %u, %s ones %d x %d: they cannot "
                                "share axes",
                                path, cols[j].title, cols[j].ds->n_channels, cols[j].ds->L,
                                cols[0].title, C, L);
    const char *names[ND_MAX_CLASSES];
    int K = union_classes(cols, ncols, only_class, names);
    /* rows per class: the most any column shows */
    int rows[ND_MAX_CLASSES], total_rows = 0, blocks = 0;
    double vmax = 0;
    for (int k = 0; k < K; k++) {
        rows[k] = 0;
        for (int j = 0; j < ncols; j++) {
            size_t n = class_windows(cols[j].ds, names[k], NULL, 0);
            int r = n < (size_t)per_class ? (int)n : per_class;
            if (r > rows[k]) rows[k] = r;
        }
        total_rows += rows[k];
        blocks += rows[k] > 0;
    }
    for (int j = 0; j < ncols; j++) {
        const nd_dataset *ds = cols[j].ds;
        for (size_t i = 0; i < ds->n_windows * (size_t)C * L; i++)
            if (isfinite(ds->values[i]) && ds->values[i] > vmax) vmax = ds->values[i];
    }
    if (!total_rows)
        return nd_error_set(e, ND_EUSAGE, "%s: no windows%s%s to draw", path,
                            only_class ? " of class " : "", only_class ? only_class : "");
    int tile_cols = (C + 1) / 2;
    int col_w = AXIS_L + PLOT_W + 10 + tile_cols * (TILE + 4) + 24;
    int W = 16 + ncols * col_w,
        H = TOP_H + blocks * (HEAD_H + TICKS_H) + total_rows * (PLOT_H + ROW_GAP) + 8;
    if (W < 600) W = 600; /* room for the title lines */
    if (H > NDD_MAX_SIDE)
        return nd_error_set(e, ND_EUSAGE,
                            "%s: %d rows of windows are %d pixels high, more than a picture "
                            "holds (%d): draw fewer per class or one class",
                            path, total_rows, H, NDD_MAX_SIDE);
    cairo_t *cr = ndd_start(W, H);
    uint64_t *idx = malloc(((size_t)per_class + 1) * sizeof *idx);
    float *img = malloc((size_t)C * L * L * sizeof(float));
    double *xs = malloc(4 * (size_t)L * sizeof(double)), *ys = xs + 2 * (size_t)L;
    nd_gaf_scale *sc = malloc((size_t)ncols * sizeof *sc);
    if (!cr || !idx || !img || !xs || !sc) {
        if (cr) cairo_destroy(cr);
        free(idx), free(img), free(xs), free(sc);
        return nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    }
    /* one GASF scale per dataset and channel, as the model's own per-file fit */
    for (int j = 0; j < ncols; j++)
        nd_gaf_fit_scale(&sc[j], cols[j].ds->values, cols[j].ds->n_windows, C, L);
    nd_gaf_spec g = {.C = C, .L = L, .scaling = ND_GAF_LOG, .mask = 0, .decode = ND_GAF_DIAG};
    double bin_s = (double)d0->bin_ns / ND_NS_PER_SEC;
    const char *ylabel = strcmp(unit_of(d0), "bytes") ? "per bin" : "bytes / bin";

    /* title, legend, column titles */
    ndd_text(cr, 16, 22, 14, 0, 1, NULL, "%s per bin (log scale) against time", unit_of(d0));
    ndd_text(cr, 16 + 8, 40, 11, 0, 0, NULL,
             "bin %g ms, window %g s; up to %d per class; GASF images: blue -1, white 0, "
             "red +1",
             bin_s * 1e3, bin_s * L, per_class);
    double lx = 16;
    for (int c = 0; c < C; c++) {
        char lab[ND_NAME_MAX + 16];
        channel_label(lab, sizeof lab, d0->channel_names[c]);
        lx = ndd_legend(cr, lx, 58, &ndd_channel_rgb[c], 0, lab);
    }
    for (int j = 0; j < ncols; j++)
        ndd_text(cr, 16 + j * col_w + AXIS_L, TOP_H - 4, 13, 0, 1, NULL, "%s", cols[j].title);

    double y = TOP_H;
    ndd_axis ax = {0, bin_s * L, NDD_LINEAR}, ay = {0, vmax > 0 ? log1p(vmax) : 1, NDD_LOG1P};
    for (int k = 0; k < K; k++) {
        if (!rows[k]) continue;
        char head[512];
        int at = snprintf(head, sizeof head, "%s  —", names[k]);
        for (int j = 0; j < ncols && at < (int)sizeof head; j++)
            at += snprintf(head + at, sizeof head - at, "%s %s: %zu window%s", j ? "," : "",
                           cols[j].title, class_windows(cols[j].ds, names[k], NULL, 0),
                           class_windows(cols[j].ds, names[k], NULL, 0) == 1 ? "" : "s");
        ndd_text(cr, 16, y + 20, 13, 0, 1, NULL, "%s", head);
        y += HEAD_H;
        for (int j = 0; j < ncols; j++) {
            const nd_dataset *ds = cols[j].ds;
            size_t n = class_windows(ds, names[k], idx, per_class);
            for (int r = 0; r < rows[k]; r++) {
                int last = r == rows[k] - 1;
                ndd_panel p = {cr,
                               16 + j * col_w + AXIS_L,
                               y + r * (PLOT_H + ROW_GAP) + 8,
                               PLOT_W,
                               PLOT_H - 8,
                               ax,
                               ay};
                if ((size_t)r >= n) {
                    ndd_text(cr, p.x + p.w / 2, p.y + p.h / 2, 11, 1, 0, NULL,
                             r ? "" : "no windows of this class");
                    continue;
                }
                ndd_axes(&p, NULL, "time (s)", r ? NULL : ylabel, last || (size_t)r == n - 1);
                const float *x = ds->values + idx[r] * (size_t)C * L;
                draw_series(&p, x, C, L, bin_s, xs, ys);
                nd_gaf_window_to_image(img, x, &g, &sc[j]);
                for (int c = 0; c < C; c++)
                    draw_gasf(cr, img, c, L, p.x + p.w + 10 + (c / 2) * (TILE + 4),
                              p.y + (c % 2) * (TILE + 4));
            }
        }
        y += rows[k] * (PLOT_H + ROW_GAP) + TICKS_H;
    }
    free(idx), free(img), free(xs), free(sc);
    return ndd_finish(cr, path, e);
}
