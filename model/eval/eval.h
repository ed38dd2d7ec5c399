/*
 * eval.h — evaluation (libnd_eval): how close synthetic windows are to real ones
 * (marginals, volume, autocorrelation, classifiers trained on one and tested on the
 * other, memorisation, and measures nothing is fitted to), the report of `netdiffus
 * eval`, and PNG pictures (cairo) of windows and of the distances. No stage calls it
 * to fit itself: what it measures stays an independent measurement.
 */
#ifndef ND_EVAL_H
#define ND_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nd.h"

/* 1-D Wasserstein distance between two samples (sorted in place). */
double nd_w1(double *a, size_t na, double *b, size_t nb);
/* Mean autocorrelation over windows, lags 1..K, of channel c of windows x (n,C,L) on
 * log1p values: acf (K). Constant windows count as 0. */
void nd_mean_acf(double *acf, const float *x, size_t n, int C, int L, int c, int K);

typedef struct nd_eval_opts {
    uint64_t seed;
    int cnn_steps; /* CNN classifier training steps; 0 skips the CNN */
    int threads;
} nd_eval_opts;
/* The full report of `netdiffus eval` to out: distances to the real windows per class,
 * classifiers trained on each source and tested on the real windows, memorisation, then
 * measures nothing in the model is fitted to (a classifier two-sample test, per-position
 * profiles, idle and busy runs, cross-channel coupling) and one SUMMARY line per source.
 * synth holds the decoded synthetic windows; raw (may be NULL) the same model's windows
 * with the decoder off, reported beside them so that what the network learnt and what the
 * decoder adds can be told apart; train (may be NULL) the training windows: without them
 * there is no real-vs-real floor, no naive baseline, no memorisation and no TRTR; peer
 * (may be NULL) another generator's windows, with some of real's channels (matched by
 * name), reported in the memorisation check and the independent measures on the channels
 * it has. Every other set shares real's channels and L; classes are matched by name.
 * js (may be NULL) receives the whole report as JSON, every table and figure of the text
 * (unmeasured values null; README.md lists its keys). */
int nd_eval_report(FILE *out, nd_json *js, const nd_dataset *real, const nd_dataset *synth,
                   const nd_dataset *raw, const nd_dataset *train, const nd_dataset *peer,
                   const nd_eval_opts *o, nd_error *e);

/* Flow mode (seams.c): in real and in each of sets[0..nsets-1] (1..8, named by names[i]),
 * the windows of one group and class, in file order, are one flow. Per class (matched by name)
 * with two real flows or more, to out: the W1 distances of flow durations (bins up to the last
 * busy one) and of log1p(bytes per flow), and the seam measures: the jump ratio (mean
 * |step| of log1p values across window edges over the same inside windows) and the
 * correlation gap (lag-1 correlation inside windows minus across edges), each source's
 * beside real's and their differences beside the real-vs-real floor (real's flows dealt
 * alternately into two halves); then one 'SUMMARY flows NAME' line per source with the
 * means over classes. js (may be NULL) gets the same under "flows". 0 or a code with e
 * filled (ND_EUSAGE: shapes differ, no class with two flows). */
int nd_eval_flows(FILE *out, nd_json *js, const nd_dataset *real, const nd_dataset *const *sets,
                  const char *const *names, int nsets, nd_error *e);

/* One column of a picture of windows: a dataset and what it holds ("real", ...). */
typedef struct nd_png_column {
    const nd_dataset *ds;
    const char *title;
} nd_png_column;
#define ND_PNG_MAX_COLUMNS 4
/* PNG picture of windows, for people: per class (every column's, matched by name; only
 * only_class when not NULL) up to
 * per_class windows of each of the ncols (1..ND_PNG_MAX_COLUMNS) columns side by side,
 * rows lined up; each window a plot of its series (log scale, time in s, one colour per
 * channel, axes shared by all columns) and small GASF images of its channels. Every
 * column has the first's channels and bins. 0 or a code with e filled. */
int nd_png_windows(const char *path, const nd_png_column *cols, int ncols, int per_class,
                   const char *only_class, nd_error *e);
/* PNG picture of eval's three distances, a row per class with real and synthetic windows
 * (as in the report's distance table): for each channel the histogram of per-bin values,
 * the autocorrelation by lag and the distribution of window totals, drawn for real and
 * synth and, when given (else NULL), raw and train (the floor), from the same values the
 * distances compare. Each set shares real's channels and bins; classes are matched by
 * name. 0 or a code with e filled. */
int nd_eval_png(const char *path, const nd_dataset *real, const nd_dataset *synth,
                const nd_dataset *raw, const nd_dataset *train, nd_error *e);
/* Lets go of the fonts cairo and fontconfig keep for the life of the process once a
 * picture has been drawn (nothing when none was), so that a leak checker finds nothing
 * left. Tears down their static data: call it once, at the end of a program, when no
 * thread draws and no cairo object is alive, and never from a program that uses cairo
 * or fontconfig itself. */
void nd_eval_draw_release(void);

#endif
