/*
 * figure.c — the picture of `eval --png` (cairo): per class of the real file a row of
 * panels, per channel the histogram of per-bin values, the mean autocorrelation by lag
 * and the distribution of window totals, for real, synthetic and, when given, raw and
 * training windows (the floor), with the distance eval reports for each. The curves come
 * from the very values eval.c's distances compare (nde_bin_values, nd_mean_acf,
 * nde_volumes).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "draw_impl.h"
#include "eval.h"
#include "eval_impl.h"

#define PANEL_W NDD_FIG_PANEL_W
#define PANEL_H NDD_FIG_PANEL_H
#define CELL_W  NDD_FIG_CELL_W
#define ROW_H   NDD_FIG_ROW_H
#define TOP_H   NDD_FIG_TOP_H
#define HBINS   30 /* histogram bins */

enum { S_REAL, S_SYNTH, S_RAW, S_TRAIN, S_N };
static const char *const s_name[S_N] = {"real", "synthetic", "raw synthetic",
                                        "training (the floor)"};
static const ndd_rgb s_rgb[S_N] = {
    {0.05, 0.05, 0.05}, {0.84, 0.15, 0.16}, {0.58, 0.40, 0.74}, {0.45, 0.45, 0.45}};
static const double s_width[S_N] = {2.4, 1.8, 1.5, 1.5};
static const int s_dashed[S_N] = {0, 0, 1, 1};

/* The values of one class and channel, per source (n == 0: absent or no windows). */
typedef struct curves {
    size_t nb[S_N], nw[S_N];
    double *bins[S_N]; /* log1p of every bin */
    double *vol[S_N];  /* log1p of every window's total, sorted */
    double acf[S_N][1024];
} curves;

/* The distance between real's and source s's values a (na) and b (nb) as the report
 * gives it, in a copy (nd_w1 sorts). NaN when either is empty. */
static double w1_of(const double *a, size_t na, const double *b, size_t nb, double *tmp)
{
    if (!na || !nb) return NAN;
    memcpy(tmp, a, na * sizeof *a);
    memcpy(tmp + na, b, nb * sizeof *b);
    return nd_w1(tmp, na, tmp + na, nb);
}

/* "W1 0.31, floor 0.20" (synthetic against real, the training windows against real)
 * under the panel's axis label. */
static void distance_note(const ndd_panel *p, const char *what, double syn, double floor)
{
    char b[96];
    int at = snprintf(b, sizeof b, "%s %.3g", what, syn);
    if (isfinite(floor)) snprintf(b + at, sizeof b - at, ", floor %.3g", floor);
    if (isfinite(syn)) ndd_text(p->cr, p->x, p->y + p->h + 44, 10, 0, 0, NULL, "%s", b);
}

static void hist_panel(ndd_panel *p, const curves *v, const char *ch, double *tmp)
{
    double hi = p->ax.hi, share[S_N][HBINS], top = 0;
    for (int s = 0; s < S_N; s++) {
        for (int b = 0; b < HBINS; b++) share[s][b] = 0;
        for (size_t i = 0; i < v->nb[s]; i++)
            if (v->bins[s][i] > 0) {
                double r = v->bins[s][i] / hi; /* +inf: the last bin */
                share[s][r < 1 ? (int)(r * HBINS) : HBINS - 1] += 1.0 / (double)v->nb[s];
            }
        for (int b = 0; b < HBINS && v->nb[s]; b++) top = fmax(top, share[s][b]);
    }
    p->ay = (ndd_axis){0, top > 0 ? top * 1.15 : 1, NDD_LINEAR};
    char t[ND_NAME_MAX + 32];
    snprintf(t, sizeof t, "%s: busy bins", ch);
    ndd_axes(p, t, "bytes per bin", "share of bins", 1);
    for (int s = S_N - 1; s >= 0; s--) {
        if (!v->nb[s]) continue;
        double xs[2 * HBINS + 2], ys[2 * HBINS + 2];
        for (int b = 0; b < HBINS; b++) {
            xs[2 * b] = hi * b / HBINS, xs[2 * b + 1] = hi * (b + 1) / HBINS;
            ys[2 * b] = ys[2 * b + 1] = share[s][b];
        }
        ndd_line(p, xs, ys, 2 * HBINS, &s_rgb[s], s_width[s], s_dashed[s]);
    }
    /* idle bins are the rest of each histogram's mass; their share, per source */
    static const char *const brief[S_N] = {"real", "synth", "raw", "train"};
    char idle[160];
    int at = snprintf(idle, sizeof idle, "idle:");
    for (int s = 0; s < S_N && at < (int)sizeof idle; s++) {
        if (!v->nb[s]) continue;
        size_t z = 0;
        for (size_t i = 0; i < v->nb[s]; i++) z += !(v->bins[s][i] > 0);
        at += snprintf(idle + at, sizeof idle - at, "%s %s %.0f%%", s ? "," : "", brief[s],
                       100.0 * (double)z / (double)v->nb[s]);
    }
    ndd_text(p->cr, p->x, p->y + p->h + 57, 10, 0, 0, NULL, "%s", idle);
    distance_note(p, "W1",
                  w1_of(v->bins[S_REAL], v->nb[S_REAL], v->bins[S_SYNTH], v->nb[S_SYNTH], tmp),
                  w1_of(v->bins[S_REAL], v->nb[S_REAL], v->bins[S_TRAIN], v->nb[S_TRAIN], tmp));
}

static void acf_panel(ndd_panel *p, const curves *v, const char *ch, int K, double bin_s)
{
    double lo = 0, xs[1024], d[S_N] = {0};
    for (int s = 0; s < S_N; s++)
        for (int k = 0; k < K && v->nw[s]; k++) lo = fmin(lo, v->acf[s][k]);
    p->ay = (ndd_axis){lo < 0 ? lo - 0.05 : 0, 1, NDD_LINEAR};
    char t[ND_NAME_MAX + 32];
    snprintf(t, sizeof t, "%s: autocorrelation", ch);
    ndd_axes(p, t, "lag (s)", "mean over windows", 1);
    for (int k = 0; k < K; k++) xs[k] = (k + 1) * bin_s;
    for (int s = S_N - 1; s >= 0; s--) {
        if (!v->nw[s]) continue;
        ndd_line(p, xs, v->acf[s], K, &s_rgb[s], s_width[s], s_dashed[s]);
        for (int k = 0; k < K; k++) d[s] += fabs(v->acf[s][k] - v->acf[S_REAL][k]) / K;
    }
    distance_note(p, "mean |diff|", v->nw[S_SYNTH] ? d[S_SYNTH] : NAN,
                  v->nw[S_TRAIN] ? d[S_TRAIN] : NAN);
}

static void volume_panel(ndd_panel *p, const curves *v, const char *ch, double *tmp)
{
    p->ay = (ndd_axis){0, 1, NDD_LINEAR};
    char t[ND_NAME_MAX + 32];
    snprintf(t, sizeof t, "%s: window totals", ch);
    ndd_axes(p, t, "bytes per window", "cumulative share", 1);
    for (int s = S_N - 1; s >= 0; s--) {
        size_t n = v->nw[s];
        double *xs = tmp, *ys = tmp + 2 * n + 2;
        for (size_t i = 0; i < n; i++) {
            xs[2 * i] = xs[2 * i + 1] = v->vol[s][i];
            ys[2 * i] = (double)i / (double)n, ys[2 * i + 1] = (double)(i + 1) / (double)n;
        }
        if (n) ndd_line(p, xs, ys, (int)(2 * n), &s_rgb[s], s_width[s], s_dashed[s]);
    }
    distance_note(p, "W1",
                  w1_of(v->vol[S_REAL], v->nw[S_REAL], v->vol[S_SYNTH], v->nw[S_SYNTH], tmp),
                  w1_of(v->vol[S_REAL], v->nw[S_REAL], v->vol[S_TRAIN], v->nw[S_TRAIN], tmp));
}

int nd_eval_png(const char *path, const nd_dataset *real, const nd_dataset *synth,
                const nd_dataset *raw, const nd_dataset *train, nd_error *e)
{
    const nd_dataset *src[S_N] = {real, synth, raw, train};
    int rc = nde_check_shapes(real, src + 1, s_name + 1, S_N - 1, e);
    if (rc) return rc;
    int C = (int)real->n_channels, L = (int)real->L, K = nde_acf_lags(L);
    if (L > 4096 || K > 1024)
        return nd_error_set(e, ND_EUSAGE, "%s: windows longer than 4096 bins", path);
    size_t most = 0; /* windows of the largest source */
    for (int s = 0; s < S_N; s++)
        if (src[s] && src[s]->n_windows > most) most = src[s]->n_windows;
    int rows = 0; /* classes with real and synthetic windows */
    for (uint32_t k = 0; k < real->n_classes; k++) {
        size_t n = 0, m = 0;
        for (uint64_t w = 0; w < real->n_windows; w++) n += real->labels[w] == k;
        for (uint32_t j = 0; j < synth->n_classes && n; j++)
            if (!strcmp(synth->class_names[j], real->class_names[k]))
                for (uint64_t w = 0; w < synth->n_windows; w++) m += synth->labels[w] == j;
        rows += n && m;
    }
    if (!rows)
        return nd_error_set(e, ND_EUSAGE, "%s: no class has both real and synthetic windows",
                            path);
    int W = 16 + 3 * C * CELL_W, H = TOP_H + rows * ROW_H;
    if (H > NDD_MAX_SIDE)
        return nd_error_set(e, ND_EUSAGE,
                            "%s: %d classes are %d pixels high, more than a picture holds (%d)",
                            path, rows, H, NDD_MAX_SIDE);
    cairo_t *cr = ndd_start(W, H);
    double *tmp = malloc((4 * most * (size_t)L + 4) * sizeof(double));
    nde_set set[S_N] = {{0}};
    curves *v = calloc(1, sizeof *v);
    if (!cr || !tmp || !v) {
        if (cr) cairo_destroy(cr);
        free(tmp), free(v);
        return nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    }
    double bin_s = (double)real->bin_ns / ND_NS_PER_SEC;
    ndd_text(cr, 16, 22, 14, 0, 1, NULL,
             "eval: real against synthetic, per class and channel (log1p values, as eval "
             "measures them)");
    double lx = 16;
    for (int s = 0; s < S_N; s++)
        if (src[s]) lx = ndd_legend(cr, lx, 46, &s_rgb[s], s_dashed[s], s_name[s]);
    ndd_text(
        cr, lx, 46, 11, 0, 0, NULL,
        "   bin %g ms, window %g s; under each panel: the distance eval reports for synthetic, and its floor",
        bin_s * 1e3, bin_s * L);

    int row = 0;
    for (uint32_t k = 0; k < real->n_classes && !rc; k++) {
        for (int s = 0; s < S_N && !rc; s++)
            if (src[s]) rc = nde_gather(&set[s], src[s], real, (int)k, NULL);
        if (rc || !set[S_REAL].n ||
            !set[S_SYNTH].n) { /* as the report, which leaves them out */
            for (int s = 0; s < S_N; s++) nde_set_free(&set[s]);
            continue;
        }
        double y0 = TOP_H + row++ * ROW_H;
        char head[256];
        int at = snprintf(head, sizeof head, "%s  —", real->class_names[k]);
        for (int s = 0; s < S_N && at < (int)sizeof head; s++)
            if (src[s])
                at += snprintf(head + at, sizeof head - at, "%s %s: %zu", s ? "," : "",
                               s_name[s], set[s].n);
        ndd_text(cr, 16, y0 + 18, 13, 0, 1, NULL, "%s windows", head);
        for (int c = 0; c < C && !rc; c++) {
            for (int s = 0; s < S_N; s++) {
                v->nw[s] = v->nb[s] = 0;
                free(v->bins[s]), free(v->vol[s]);
                v->bins[s] = malloc((set[s].n * L + 1) * sizeof(double));
                v->vol[s] = malloc((set[s].n + 1) * sizeof(double));
                if (!v->bins[s] || !v->vol[s]) rc = -ENOMEM;
                if (rc || !set[s].n) continue;
                v->nb[s] = nde_bin_values(v->bins[s], &set[s], C, L, c);
                nde_volumes(v->vol[s], &set[s], C, L, c);
                qsort(v->vol[s], set[s].n, sizeof(double), nde_cmp_double);
                v->nw[s] = set[s].n;
                nd_mean_acf(v->acf[s], set[s].x, set[s].n, C, L, c, K);
            }
            if (rc) break;
            double bmax = 0, vlo = INFINITY, vhi = 0;
            for (int s = 0; s < S_N; s++) {
                for (size_t i = 0; i < v->nb[s]; i++)
                    if (isfinite(v->bins[s][i])) bmax = fmax(bmax, v->bins[s][i]);
                for (size_t i = 0; i < v->nw[s]; i++)
                    if (isfinite(v->vol[s][i]))
                        vlo = fmin(vlo, v->vol[s][i]), vhi = fmax(vhi, v->vol[s][i]);
            }
            const char *ch = real->channel_names[c];
            double py = y0 + NDD_FIG_PANEL_Y;
            ndd_panel hp = {cr,
                            NDD_FIG_X0 + c * CELL_W,
                            py,
                            PANEL_W,
                            PANEL_H,
                            {0, bmax > 0 ? bmax : 1, NDD_LOG1P},
                            {0, 1, NDD_LINEAR}};
            hist_panel(&hp, v, ch, tmp);
            ndd_panel ap = {cr,
                            NDD_FIG_X0 + (C + c) * CELL_W,
                            py,
                            PANEL_W,
                            PANEL_H,
                            {0, (K + 1) * bin_s, NDD_LINEAR},
                            {0, 1, NDD_LINEAR}};
            acf_panel(&ap, v, ch, K, bin_s);
            if (!(vhi > vlo)) vlo = vlo > 1 ? vlo - 1 : 0, vhi = vlo + 2;
            ndd_panel vp = {cr,
                            NDD_FIG_X0 + (2 * C + c) * CELL_W,
                            py,
                            PANEL_W,
                            PANEL_H,
                            {vlo, vhi, NDD_LOG1P},
                            {0, 1, NDD_LINEAR}};
            volume_panel(&vp, v, ch, tmp);
        }
        for (int s = 0; s < S_N; s++) nde_set_free(&set[s]);
    }
    for (int s = 0; s < S_N; s++) free(v->bins[s]), free(v->vol[s]), nde_set_free(&set[s]);
    free(v), free(tmp);
    if (rc) {
        cairo_destroy(cr);
        return nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    }
    return ndd_finish(cr, path, e);
}
