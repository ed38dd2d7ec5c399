/*
 * draw_impl.h — private to libnd_eval: the plotting pieces (cairo) that the pictures of
 * windows (png.c) and of eval's measures (figure.c) share: panels with ticked, labelled
 * axes in time, bytes or plain numbers, text, lines, legends, and the PNG writer.
 */
#ifndef ND_DRAW_IMPL_H
#define ND_DRAW_IMPL_H

#include <cairo.h>

#include "nd.h"

/* How an axis labels its ticks: plain numbers, or values v = log1p(x) labelled with x
 * in bytes or packets (0, 1, 10, 100, 1k, ... 1M ...). */
enum { NDD_LINEAR, NDD_LOG1P };

typedef struct ndd_axis {
    double lo, hi;
    int kind;
} ndd_axis;

/* A plot area of w x h pixels at (x, y) in the picture, mapping ax and ay onto it. */
typedef struct ndd_panel {
    cairo_t *cr;
    double x, y, w, h;
    ndd_axis ax, ay;
} ndd_panel;

typedef struct ndd_rgb {
    double r, g, b;
} ndd_rgb;

/* Channel colours (blue, orange, green, red, ...) and the colours of eval's sources. */
extern const ndd_rgb ndd_channel_rgb[ND_MAX_CHANNELS];

/* The largest side of a picture cairo draws (its image surfaces' limit). */
#define NDD_MAX_SIDE 32767
/* A white w x h picture and its context; NULL (both freed) when cairo fails. */
cairo_t *ndd_start(int w, int h);
/* Writes the picture of cr to path through the atomic writer (the file is replaced only
 * when whole) and frees cr and its surface. 0 or a code with e filled. */
int ndd_finish(cairo_t *cr, const char *path, nd_error *e);

/* Text at (x, y): align 0 left, 1 centre, 2 right of x; y is the baseline. bold 0/1. */
void ndd_text(cairo_t *cr, double x, double y, double size, int align, int bold,
              const ndd_rgb *c, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
/* The frame of p, its ticks and tick labels (bottom axis only when xticks), a title above
 * it and the axis labels (either may be NULL). */
void ndd_axes(const ndd_panel *p, const char *title, const char *xlabel, const char *ylabel,
              int xticks);
/* Picture coordinates of a value on p's axes, clamped to the panel. */
double ndd_px(const ndd_panel *p, double v);
double ndd_py(const ndd_panel *p, double v);
/* A line through (xs[i], ys[i]), i < n, in axis units; dashed 0/1. Non-finite points break
 * the line. */
void ndd_line(const ndd_panel *p, const double *xs, const double *ys, int n, const ndd_rgb *c,
              double width, int dashed);
/* A legend entry at (x, y): a short line in c, then the text. Returns the x after it. */
double ndd_legend(cairo_t *cr, double x, double y, const ndd_rgb *c, int dashed,
                  const char *text);
/* x (bytes, packets: any count) with a k, M or G suffix: "0", "950", "1.5k", "12M". */
void ndd_count(char *buf, size_t n, double x);

/* The layout of eval's picture (figure.c), which its tests check panels against: per class
 * of real with windows a row of NDD_FIG_ROW_H pixels under a top of NDD_FIG_TOP_H; in a
 * row, panels of NDD_FIG_PANEL_W x NDD_FIG_PANEL_H at y NDD_FIG_PANEL_Y within the row
 * and x NDD_FIG_X0 + i·NDD_FIG_CELL_W: per channel the histograms, then per channel the
 * autocorrelations, then per channel the window totals. */
enum {
    NDD_FIG_PANEL_W = 210,
    NDD_FIG_PANEL_H = 118,
    NDD_FIG_CELL_W = NDD_FIG_PANEL_W + 74, /* panel, its y axis and a gap */
    NDD_FIG_ROW_H = NDD_FIG_PANEL_H + 118, /* header, title, panel, ticks, two notes */
    NDD_FIG_TOP_H = 70,
    NDD_FIG_PANEL_Y = 46,
    NDD_FIG_X0 = 72,
};

#endif
