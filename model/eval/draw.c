/*
 * draw.c — plotting pieces on cairo for the pictures of libnd_eval: axes with ticks in
 * time, counts with k/M/G suffixes or plain numbers, text through cairo's toy font API
 * (fontconfig picks a sans-serif face, DejaVu Sans on Debian), lines, legends, and PNG
 * output through the atomic writer.
 */
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "draw_impl.h"
#include "eval.h"

const ndd_rgb ndd_channel_rgb[ND_MAX_CHANNELS] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50}};

static const ndd_rgb ink = {0.15, 0.15, 0.15}, grid = {0.88, 0.88, 0.88};

cairo_t *ndd_start(int w, int h)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(s);
    cairo_surface_destroy(s); /* cr holds its own reference */
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(cr);
        return NULL;
    }
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return cr;
}

/* cairo's PNG encoder writes into the atomic writer, so that a failed picture keeps the
 * previous one. */
typedef struct png_sink {
    nd_afile *f;
    nd_error *e;
    int rc; /* first failure */
} png_sink;

static cairo_status_t png_sink_write(void *closure, const unsigned char *data, unsigned int len)
{
    png_sink *o = closure;
    if (!o->rc) o->rc = nd_afile_write(o->f, data, len, o->e);
    return o->rc ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

/* A picture was drawn: cairo and fontconfig hold fonts (nd_eval_draw_release). */
static int drew;

void nd_eval_draw_release(void)
{
    if (!drew) return;
    cairo_debug_reset_static_data();
    FcFini();
    drew = 0;
}

int ndd_finish(cairo_t *cr, const char *path, nd_error *e)
{
    cairo_surface_t *s = cairo_get_target(cr);
    cairo_surface_flush(s);
    cairo_status_t st = cairo_status(cr);
    png_sink o = {st == CAIRO_STATUS_SUCCESS ? nd_afile_open(path, e) : NULL, e, 0};
    if (st != CAIRO_STATUS_SUCCESS)
        o.rc = nd_error_set(e, -ENOMEM, "%s: cairo failed to draw: %s", path,
                            cairo_status_to_string(st));
    else if (!o.f) o.rc = e ? e->code : -EIO;
    else if ((st = cairo_surface_write_to_png_stream(s, png_sink_write, &o)) && !o.rc)
        o.rc = nd_error_set(e, -EIO, "%s: cairo failed to write the PNG: %s", path,
                            cairo_status_to_string(st));
    cairo_destroy(cr);
    drew = 1;
    if (o.rc) {
        nd_afile_abort(o.f);
        return o.rc;
    }
    return nd_afile_commit(o.f, e);
}

void ndd_text(cairo_t *cr, double x, double y, double size, int align, int bold,
              const ndd_rgb *c, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t t;
    cairo_text_extents(cr, buf, &t);
    c = c ? c : &ink;
    cairo_set_source_rgb(cr, c->r, c->g, c->b);
    cairo_move_to(cr, x - (align == 1 ? t.x_advance / 2 : align == 2 ? t.x_advance : 0), y);
    cairo_show_text(cr, buf);
}

void ndd_count(char *buf, size_t n, double x)
{
    static const char suffix[] = " kMGTP";
    int k = 0;
    while (fabs(x) >= 999.5 && k < 5) x /= 1000, k++;
    if (k) snprintf(buf, n, "%.3g%c", x, suffix[k]);
    else snprintf(buf, n, "%.3g", x);
}

static double clamp01(double r) { return r > 0 ? (r < 1 ? r : 1) : 0; }

double ndd_px(const ndd_panel *p, double v)
{
    double span = p->ax.hi - p->ax.lo;
    return p->x + p->w * clamp01(span > 0 ? (v - p->ax.lo) / span : 0);
}

double ndd_py(const ndd_panel *p, double v)
{
    double span = p->ay.hi - p->ay.lo;
    return p->y + p->h * (1 - clamp01(span > 0 ? (v - p->ay.lo) / span : 0));
}

/* Up to max tick values of a into t: for NDD_LOG1P the log1p of 0, 1, 10, 100, ... (or
 * of 1, 2, 5 times the powers of ten when fewer than three decades fit), for NDD_LINEAR
 * multiples of 1, 2 or 5 times a power of ten, about five of them. Returns how many. */
static int ticks(const ndd_axis *a, double *t, int max)
{
    int n = 0;
    if (!(a->hi > a->lo)) return 0;
    if (a->kind == NDD_LOG1P) {
        for (int fine = 0; fine < 2 && n < 3; fine++) {
            n = 0;
            if (a->lo <= 0) t[n++] = 0;
            /* 1 sits too close to 0 to label when the axis spans thousands */
            double d0 = a->lo <= 0 && a->hi > log1p(1000) ? 10 : 1;
            for (double d = d0; d < 1e15 && n < max; d *= 10)
                for (int m = 1; m <= 5 && n < max; m += m == 1 ? 1 : 3) {
                    if (!fine && m > 1) break;
                    double v = log1p(d * m);
                    if (v >= a->lo - 1e-9 && v <= a->hi + 1e-9) t[n++] = v;
                }
        }
        return n;
    }
    double raw = (a->hi - a->lo) / 5, p = pow(10, floor(log10(raw))), step = p;
    if (raw / p > 5) step = 10 * p;
    else if (raw / p > 2) step = 5 * p;
    else if (raw / p > 1) step = 2 * p;
    for (double v = ceil(a->lo / step - 1e-9) * step; v <= a->hi + 1e-9 * step && n < max;
         v += step)
        t[n++] = fabs(v) < 1e-9 * step ? 0 : v;
    return n;
}

static void tick_label(char *buf, size_t n, const ndd_axis *a, double v)
{
    if (a->kind == NDD_LOG1P) ndd_count(buf, n, expm1(v));
    else snprintf(buf, n, "%g", v);
}

void ndd_axes(const ndd_panel *p, const char *title, const char *xlabel, const char *ylabel,
              int xticks)
{
    cairo_t *cr = p->cr;
    double t[32];
    char lab[32];
    cairo_set_line_width(cr, 1);
    int n = ticks(&p->ay, t, 32);
    for (int i = 0; i < n; i++) {
        double y = floor(ndd_py(p, t[i])) + 0.5;
        cairo_set_source_rgb(cr, grid.r, grid.g, grid.b);
        cairo_move_to(cr, p->x, y);
        cairo_line_to(cr, p->x + p->w, y);
        cairo_stroke(cr);
        tick_label(lab, sizeof lab, &p->ay, t[i]);
        ndd_text(cr, p->x - 4, y + 3.5, 10, 2, 0, NULL, "%s", lab);
    }
    n = xticks ? ticks(&p->ax, t, 32) : 0;
    for (int i = 0; i < n; i++) {
        double x = floor(ndd_px(p, t[i])) + 0.5;
        cairo_set_source_rgb(cr, ink.r, ink.g, ink.b);
        cairo_move_to(cr, x, p->y + p->h);
        cairo_line_to(cr, x, p->y + p->h + 4);
        cairo_stroke(cr);
        tick_label(lab, sizeof lab, &p->ax, t[i]);
        ndd_text(cr, x, p->y + p->h + 15, 10, 1, 0, NULL, "%s", lab);
    }
    cairo_set_source_rgb(cr, ink.r, ink.g, ink.b);
    cairo_rectangle(cr, floor(p->x) + 0.5, floor(p->y) + 0.5, floor(p->w), floor(p->h));
    cairo_stroke(cr);
    if (title) ndd_text(cr, p->x, p->y - 5, 11, 0, 1, NULL, "%s", title);
    if (xlabel && xticks)
        ndd_text(cr, p->x + p->w / 2, p->y + p->h + 28, 10, 1, 0, NULL, "%s", xlabel);
    if (ylabel) {
        cairo_save(cr);
        cairo_translate(cr, p->x - 38, p->y + p->h / 2);
        cairo_rotate(cr, -M_PI / 2);
        ndd_text(cr, 0, 0, 10, 1, 0, NULL, "%s", ylabel);
        cairo_restore(cr);
    }
}

static void stroke_style(cairo_t *cr, const ndd_rgb *c, double width, int dashed)
{
    static const double dash[] = {5, 3};
    cairo_set_source_rgb(cr, c->r, c->g, c->b);
    cairo_set_line_width(cr, width);
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
}

void ndd_line(const ndd_panel *p, const double *xs, const double *ys, int n, const ndd_rgb *c,
              double width, int dashed)
{
    cairo_t *cr = p->cr;
    cairo_save(cr);
    cairo_rectangle(cr, p->x, p->y, p->w, p->h);
    cairo_clip(cr);
    stroke_style(cr, c, width, dashed);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    int open = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(xs[i]) || !isfinite(ys[i])) {
            open = 0;
            continue;
        }
        double x = ndd_px(p, xs[i]), y = ndd_py(p, ys[i]);
        if (open) cairo_line_to(cr, x, y);
        else cairo_move_to(cr, x, y);
        open = 1;
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

double ndd_legend(cairo_t *cr, double x, double y, const ndd_rgb *c, int dashed,
                  const char *text)
{
    cairo_save(cr);
    stroke_style(cr, c, 2.5, dashed);
    cairo_move_to(cr, x, y - 4);
    cairo_line_to(cr, x + 22, y - 4);
    cairo_stroke(cr);
    cairo_restore(cr);
    ndd_text(cr, x + 27, y, 11, 0, 0, NULL, "%s", text);
    cairo_text_extents_t t;
    cairo_text_extents(cr, text, &t);
    return x + 27 + t.x_advance + 16;
}
