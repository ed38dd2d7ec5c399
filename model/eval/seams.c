/*
 * seams.c — eval's flow mode (`netdiffus eval --flows`): the windows of one group and
 * class, in file order, are one flow, their series joined end to end, and a generator's flows
 * are held against real ones:
 *
 *   duration  W1 of flow durations in bins (up to the last bin busy on any channel);
 *   bytes     W1 of log1p(bytes per flow), the mean over channels;
 *   jump      mean |step| of log1p values between the last bin of a window and the first
 *             of the next, divided by the mean |step| between neighbours inside windows
 *             (steps up to the flow's last busy bin: the rest is no traffic):
 *             about 1 when a flow runs on across its windows' edges, above 1 at a seam;
 *   corr gap  lag-1 correlation of log1p values inside windows minus across the edges
 *             (Pearson over all pairs of a class, the mean over channels): about 0
 *             without a seam, up to the within-window correlation when windows are
 *             independent.
 *
 * Each beside the real-vs-real floor: real's flows of a class dealt alternately into two
 * halves, and the same measures between the halves. A distance that is a few times its
 * floor is what sampling noise alone would not give.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"

enum { WITHIN = 0, ACROSS = 1 };

/* What the measures need from a set of flows of one class. */
typedef struct fstats {
    size_t n, cap;
    double *dur;   /* (n) bins */
    double *bytes; /* (n, C) log1p of each channel's total */
    size_t windows;
    double step[2], nstep[2];           /* [kind] sum of |step|, steps */
    double pair[ND_MAX_CHANNELS][2][6]; /* [c][kind] n, Σx, Σy, Σx², Σy², Σxy */
} fstats;

static void fstats_free(fstats *s)
{
    free(s->dur);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}

/* One flow, windows x (m, C, L), into s. 0 or -ENOMEM. */
static int add_flow(fstats *s, const float *x, size_t m, int C, int L)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        double *d = realloc(s->dur, cap * sizeof *d);
        if (d) s->dur = d;
        double *b = realloc(s->bytes, cap * C * sizeof *b);
        if (b) s->bytes = b;
        if (!d || !b) return -ENOMEM;
        s->cap = cap;
    }
    size_t T = m * L, last = 0;
    for (size_t t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            if (x[((t / L) * C + c) * L + t % L] > 0) last = t + 1;
    /* steps up to the last busy bin: the idle rest of a flow's last window is no traffic */
    for (int c = 0; c < C; c++) {
        double total = 0, prev = 0;
        for (size_t t = 0; t < last; t++) {
            double v = fmax(0, x[((t / L) * C + c) * L + t % L]);
            double y = log1p(v);
            total += v;
            if (t > 0) {
                int k = t % L == 0 ? ACROSS : WITHIN;
                double *p = s->pair[c][k];
                s->step[k] += fabs(y - prev);
                s->nstep[k] += 1;
                p[0] += 1, p[1] += prev, p[2] += y;
                p[3] += prev * prev, p[4] += y * y, p[5] += prev * y;
            }
            prev = y;
        }
        s->bytes[s->n * C + c] = log1p(total);
    }
    s->dur[s->n++] = (double)last;
    s->windows += m;
    return 0;
}

/* A window of the class: its group and its index in the file. */
typedef struct gw {
    uint64_t group, index;
} gw;

static int by_group(const void *a, const void *b)
{
    const gw *x = a, *y = b;
    if (x->group != y->group) return (x->group > y->group) - (x->group < y->group);
    return (x->index > y->index) - (x->index < y->index);
}

/* The flows of class cls (real's numbering) of ds into all and, when half is not NULL,
 * alternately into half[0] and half[1] (by group id). A flow is the windows of one group
 * and class, in file order (other flows' windows may lie between them). 0 or -ENOMEM. */
static int collect(fstats *all, fstats *half, const nd_dataset *ds, const nd_dataset *real,
                   int cls)
{
    int C = (int)ds->n_channels, L = (int)ds->L, label = -1;
    for (uint32_t k = 0; k < ds->n_classes; k++)
        if (!strcmp(ds->class_names[k], real->class_names[cls])) label = (int)k;
    if (label < 0) return 0;
    size_t WL = (size_t)C * L, n = 0, flows = 0;
    gw *idx = malloc((ds->n_windows + 1) * sizeof *idx);
    float *x = malloc((ds->n_windows + 1) * WL * sizeof *x);
    int rc = idx && x ? 0 : -ENOMEM;
    for (uint64_t w = 0; !rc && w < ds->n_windows; w++)
        if (ds->labels[w] == label) idx[n++] = (gw){ds->groups[w], w};
    if (!rc) qsort(idx, n, sizeof *idx, by_group);
    for (size_t i = 0; !rc && i < n;) {
        size_t end = i;
        for (; end < n && idx[end].group == idx[i].group; end++)
            memcpy(x + (end - i) * WL, ds->values + idx[end].index * WL, WL * sizeof *x);
        rc = add_flow(all, x, end - i, C, L);
        if (!rc && half) rc = add_flow(&half[flows % 2], x, end - i, C, L);
        flows++;
        i = end;
    }
    free(idx);
    free(x);
    return rc;
}

static double jump_ratio(const fstats *s)
{
    if (!s->nstep[ACROSS] || !s->nstep[WITHIN]) return NAN;
    double within = s->step[WITHIN] / s->nstep[WITHIN];
    return within > 0 ? s->step[ACROSS] / s->nstep[ACROSS] / within : NAN;
}

static double pearson(const double *p)
{
    double n = p[0];
    if (n < 2) return NAN;
    double vx = p[3] - p[1] * p[1] / n, vy = p[4] - p[2] * p[2] / n;
    double cxy = p[5] - p[1] * p[2] / n;
    return vx > 1e-12 && vy > 1e-12 ? cxy / sqrt(vx * vy) : NAN;
}

static double corr_gap(const fstats *s, int C)
{
    double sum = 0;
    int n = 0;
    for (int c = 0; c < C; c++) {
        double w = pearson(s->pair[c][WITHIN]), a = pearson(s->pair[c][ACROSS]);
        if (isfinite(w) && isfinite(a)) sum += w - a, n++;
    }
    return n ? sum / n : NAN;
}

/* W1 of a's and b's durations (which) or log1p bytes of channel c. */
static double w1_of(const fstats *a, const fstats *b, int C, int c, double *ta, double *tb)
{
    for (size_t i = 0; i < a->n; i++) ta[i] = c < 0 ? a->dur[i] : a->bytes[i * C + c];
    for (size_t i = 0; i < b->n; i++) tb[i] = c < 0 ? b->dur[i] : b->bytes[i * C + c];
    return nd_w1(ta, a->n, tb, b->n);
}

/* The four measures of s against r. */
typedef struct fdist {
    double dur, bytes, jump, gap; /* W1, W1, |jump ratio difference|, |gap difference| */
} fdist;

static int distance(fdist *d, const fstats *s, const fstats *r, int C)
{
    size_t n = (s->n > r->n ? s->n : r->n) + 1;
    double *ta = malloc(n * sizeof *ta), *tb = malloc(n * sizeof *tb);
    if (!ta || !tb) {
        free(ta), free(tb);
        return -ENOMEM;
    }
    d->dur = w1_of(s, r, C, -1, ta, tb);
    d->bytes = 0;
    for (int c = 0; c < C; c++) d->bytes += w1_of(s, r, C, c, ta, tb) / C;
    d->jump = fabs(jump_ratio(s) - jump_ratio(r));
    d->gap = fabs(corr_gap(s, C) - corr_gap(r, C));
    free(ta), free(tb);
    return 0;
}

/* Adds d's finite measures to sum and counts them in n (means over classes skip the
 * classes where a measure is undefined: no window edge, a constant channel). */
static void accumulate(double *sum, double *n, const fdist *d)
{
    const double v[4] = {d->dur, d->bytes, d->jump, d->gap};
    for (int j = 0; j < 4; j++)
        if (isfinite(v[j])) sum[j] += v[j], n[j] += 1;
}

static double xf(double v, double floor) { return floor > 0 && isfinite(v) ? v / floor : NAN; }

static void print_num(FILE *out, double v, int width, int prec)
{
    if (isfinite(v)) fprintf(out, " %*.*f", width, prec, v);
    else fprintf(out, " %*s", width, "-");
}

/* One row: a source's flows, its own seam values and its distances to real (d NULL: the
 * real row) with their ratios to the floor f. */
static void row(FILE *out, nd_json *o, const char *cls, int nw, const char *src,
                const fstats *s, const fdist *d, const fdist *f, int C)
{
    double jr = jump_ratio(s), g = corr_gap(s, C);
    fprintf(out, "%-*s %-8s %7zu %6.2f", nw, cls, src, s->n,
            s->n ? (double)s->windows / (double)s->n : 0.0);
    print_num(out, jr, 6, 2);
    print_num(out, g, 6, 3);
    nd_json_u64(o, "flows", s->n);
    nd_json_num(o, "windows_per_flow", s->n ? (double)s->windows / (double)s->n : NAN);
    nd_json_num(o, "jump_ratio", jr);
    nd_json_num(o, "corr_gap", g);
    if (d) {
        const double v[4] = {d->dur, d->bytes, d->jump, d->gap};
        const double fl[4] = {f->dur, f->bytes, f->jump, f->gap};
        static const char *const key[4] = {"duration_w1", "bytes_w1", "jump_diff", "gap_diff"};
        for (int i = 0; i < 4; i++) {
            char k[32];
            print_num(out, v[i], 8, 3);
            print_num(out, xf(v[i], fl[i]), 6, 1);
            nd_json_num(o, key[i], v[i]);
            snprintf(k, sizeof k, "%s_x_floor", key[i]);
            nd_json_num(o, k, xf(v[i], fl[i]));
        }
    }
    fprintf(out, "\n");
}

int nd_eval_flows(FILE *out, nd_json *js, const nd_dataset *real, const nd_dataset *const *sets,
                  const char *const *names, int nsets, nd_error *e)
{
    const char *what[8];
    if (nsets < 1 || nsets > 8) return nd_error_set(e, ND_EUSAGE, "eval: 1 to 8 flow sources");
    for (int i = 0; i < nsets; i++) what[i] = names[i];
    int rc = nde_check_shapes(real, sets, what, nsets, e);
    if (rc) return rc;
    int C = (int)real->n_channels, K = (int)real->n_classes, nw = 16;
    for (int k = 0; k < K; k++)
        if ((int)strlen(real->class_names[k]) > nw) nw = (int)strlen(real->class_names[k]);
    fprintf(out,
            "flows (the windows of one group; duration in bins, bytes in log1p; jump: "
            "|step| across window edges / inside windows, 1 without a seam; corr gap: lag-1 "
            "correlation inside windows minus across edges, 0 without a seam; xF: times the "
            "real-vs-real floor, real's flows in two halves)\n");
    fprintf(out, "%-*s %-8s %7s %6s %6s %6s %8s %6s %8s %6s %8s %6s %8s %6s\n", nw, "class",
            "source", "flows", "win/fl", "jump", "gap", "duration", "xF", "bytes", "xF",
            "|jump|", "xF", "|gap|", "xF");
    nd_json *fj = nd_json_obj(js, "flows"), *cj = nd_json_obj(fj, "classes");
    double sum[9][4] = {{0}}, cnt[9][4] = {{0}}; /* [source; nsets: the floor][measure] */
    int used = 0;
    for (int k = 0; k < K && !rc; k++) {
        fstats R = {0}, H[2] = {{0}}, S[8] = {{0}};
        rc = collect(&R, H, real, real, k);
        for (int i = 0; i < nsets && !rc; i++) rc = collect(&S[i], NULL, sets[i], real, k);
        fdist fl = {0}, none = {0}, d[8];
        if (!rc && R.n >= 2) rc = distance(&fl, &H[0], &H[1], C);
        for (int i = 0; i < nsets && !rc; i++) rc = distance(&d[i], &S[i], &R, C);
        if (!rc && R.n >= 2) {
            const char *cls = real->class_names[k];
            nd_json *kj = nd_json_obj(cj, cls);
            row(out, nd_json_obj(kj, "real"), cls, nw, "real", &R, NULL, NULL, C);
            nd_json *hj = nd_json_obj(kj, "floor");
            row(out, hj, "", nw, "halves", &H[0], &fl, &none, C);
            for (int i = 0; i < nsets; i++)
                if (S[i].n)
                    row(out, nd_json_obj(kj, names[i]), "", nw, names[i], &S[i], &d[i], &fl, C);
            used++;
            accumulate(sum[nsets], cnt[nsets], &fl);
            for (int i = 0; i < nsets; i++) accumulate(sum[i], cnt[i], &d[i]);
        }
        fstats_free(&R), fstats_free(&H[0]), fstats_free(&H[1]);
        for (int i = 0; i < nsets; i++) fstats_free(&S[i]);
    }
    if (rc) return nd_error_set(e, -ENOMEM, "eval: out of memory");
    if (!used)
        return nd_error_set(e, ND_EUSAGE,
                            "eval --flows: no class of the real file has two flows or more");
    nd_json *mj = nd_json_obj(fj, "mean");
    for (int i = 0; i < nsets; i++) {
        nd_json *o = nd_json_obj(mj, names[i]);
        fprintf(out, "SUMMARY flows %s classes=%d", names[i], used);
        double v[4], fl[4];
        for (int j = 0; j < 4; j++) {
            v[j] = cnt[i][j] ? sum[i][j] / cnt[i][j] : NAN;
            fl[j] = cnt[nsets][j] ? sum[nsets][j] / cnt[nsets][j] : NAN;
        }
        static const char *const key[4] = {"duration_w1", "bytes_w1", "jump_diff", "gap_diff"};
        for (int j = 0; j < 4; j++) {
            char k[32];
            fprintf(out, " %s=%.4g floor=%.4g", key[j], v[j], fl[j]);
            nd_json_num(o, key[j], v[j]);
            snprintf(k, sizeof k, "%s_floor", key[j]);
            nd_json_num(o, k, fl[j]);
        }
        fprintf(out, "\n");
    }
    return 0;
}
