/*
 * eval.h — evaluation (libnd_eval): how close synthetic windows are to real ones
 * (marginals, volume, autocorrelation, classifiers trained on one and tested on the
 * other, memorisation, and measures nothing is fitted to), the report of `netdiffus
 * eval`, and PNG pictures of windows. No stage calls it to fit itself: what it measures
 * stays an independent measurement.
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

/* PNG grid of windows: per window its GAF images and a plot of its series (log scale),
 * rows grouped by class, up to per_class windows each. imgs may be NULL (computed with a
 * per-dataset scale). Returns 0 or a code. */
int nd_png_windows(const char *path, const nd_dataset *ds, int per_class, nd_error *e);

#endif
