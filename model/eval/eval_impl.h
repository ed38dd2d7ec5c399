/*
 * eval_impl.h — private to libnd_eval (and its tests): the windows of a source gathered
 * in the real file's class numbering, the summary features and the classical classifiers
 * of eval.c, the random forest (forest.c), the small 1-D convolutional classifier
 * (conv1d.c) and the independent measures of judge.c, which eval.c's report calls.
 */
#ifndef ND_EVAL_IMPL_H
#define ND_EVAL_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eval.h"

int nde_cmp_double(const void *a, const void *b);
/* n weights of a layer with fan_in inputs. */
typedef struct nde_init {
    float *w;
    size_t n;
    int fan_in;
} nde_init;
/* PyTorch's default initialisation, U(±1/√fan_in), of count layers' weights from r. */
void nde_init_uniform(const nde_init *layers, size_t count, nd_rng *r);

/* ---- windows -------------------------------------------------------------------------- */

typedef struct nde_set {
    size_t n;
    float *x; /* (n, C, L) */
    int *y;   /* (n) class index in the real file's numbering */
} nde_set;

/* Windows of ds whose class (mapped to real's numbering by name) is cls (−1: all), in
 * real's channel layout. chmap[c] is the channel of ds that holds real's channel c, −1
 * when ds lacks it (filled with 0); NULL: the same channels in the same order. 0 or
 * -ENOMEM. */
int nde_gather(nde_set *s, const nd_dataset *ds, const nd_dataset *real, int cls,
               const int *chmap);
void nde_set_free(nde_set *s);
/* Channels chs[0..nch-1] of the windows of in (n, C, L) as a set of its own (nch, L),
 * labels copied. 0 or -ENOMEM. */
int nde_view(nde_set *out, const nde_set *in, int C, int L, const int *chs, int nch);
/* The naive generator: n windows with the label of train's first window, bin i of
 * channel c drawn from the bin i, channel c value of a random window of train (one
 * class). 0 or -ENOMEM. */
int nde_naive_set(nde_set *s, const nde_set *train, size_t n, int C, int L, nd_rng *r);
/* Distance from each window of s to its nearest window of train (log1p, L2 over WL
 * values). */
void nde_nn_dist(double *d, const nde_set *s, const nde_set *train, size_t WL);

/* The values the three distances compare, for channel c of the windows of s: log1p of
 * every bin (negative values as 0) into v (room for s->n·L; returns how many), log1p of
 * every window's total into v (room for s->n), and the lags 1..nde_acf_lags(L) of the
 * autocorrelation distance. The pictures of eval --png draw the same. */
size_t nde_bin_values(double *v, const nde_set *s, int C, int L, int c);
void nde_volumes(double *v, const nde_set *s, int C, int L, int c);
int nde_acf_lags(int L);
/* Checks that every set of sets[0..n-1] (NULL: absent) has real's channels and bins;
 * what[i] names set i in the error. 0 or ND_EUSAGE. */
int nde_check_shapes(const nd_dataset *real, const nd_dataset *const *sets,
                     const char *const *what, int n, nd_error *e);

/* ---- features and classical classifiers ---------------------------------------------- */

#define NDE_NF_PER_CH 18
/* The 18 summary features of each of the C channels of one window x (C, L) into f. */
void nde_features(double *f, const float *x, int C, int L);

typedef struct nde_feats {
    size_t n;
    int nf;
    double *f; /* (n, nf) */
    const int *y;
} nde_feats;
/* The summary features of every window of s (C channels). 0 or -ENOMEM. */
int nde_feats_of(nde_feats *F, const nde_set *s, int C, int L);
/* Accuracy on te of classifiers trained on tr (K classes); NaN when either is empty. */
double nde_logreg_accuracy(const nde_feats *tr, const nde_feats *te, int K);
double nde_knn_accuracy(const nde_feats *tr, const nde_feats *te, int K);
double nde_forest_accuracy(const nde_feats *tr, const nde_feats *te, int K, uint64_t seed,
                           int threads);

/* ---- random forest (forest.c) --------------------------------------------------------- */

typedef struct nde_forest nde_forest;
typedef struct nde_forest_opts {
    int trees;    /* 0: 200 */
    int mtry;     /* candidate features per split; 0: floor(sqrt(nf)) */
    int min_leaf; /* smallest leaf; 0: 1 (grow to purity) */
    uint64_t seed;
    int threads; /* trees grown in parallel; 0: all cores. The result does not depend on it */
} nde_forest_opts;
/* Grows a forest on X (n, nf) with labels y in [0, K): every tree on a bootstrap sample,
 * Gini splits. NULL on -ENOMEM or n == 0. */
nde_forest *nde_forest_fit(const double *X, const int *y, size_t n, int nf, int K,
                           const nde_forest_opts *o);
/* Class probabilities p (K) of one row x (nf): the mean over trees of the class shares of
 * the leaf x falls into. Returns the most probable class (ties: the lowest). */
int nde_forest_predict(const nde_forest *f, const double *x, double *p);
void nde_forest_free(nde_forest *f); /* NULL is a no-op */

/* ---- small 1-D convolutional classifier (conv1d.c) ------------------------------------ */

/* Trains a two-layer 1-D CNN (width 5) on the windows xtr (ntr, C, L) of log1p values
 * with labels ytr in {0, 1} and writes its predictions for xte (nte, C, L) to pred.
 * Deterministic for a seed. */
void nde_conv1d_fit_predict(int *pred, const float *xtr, const int *ytr, size_t ntr,
                            const float *xte, size_t nte, int C, int L, uint64_t seed);

/* ---- the independent measures (judge.c) ---------------------------------------------- */

enum { NDE_DISC_RF, NDE_DISC_CNN };
/* Classifier two-sample test of S against R (both nch channels of L bins, labels in
 * [0, K)): per class min(|R_k|, |S_k|) windows of each drawn at random, real labelled 1
 * and S 0, 5-fold cross-validated accuracy stratified by class and label. Returns the
 * score |acc − 0.5| × 2, acc to *acc (either NaN with fewer than 10 windows). */
double nde_disc_score(const nde_set *R, const nde_set *S, int nch, int L, int K, int clf,
                      uint64_t seed, int threads, double *acc);

/* Per-position profile of channel c: mean of log1p(bytes) (bins under 0.5 bytes count as
 * 0) and share of idle bins (under 0.5 bytes) at every position, with their variances
 * (sample variance; p(1 − p) for the share). Arrays of L. */
void nde_profile(const nde_set *s, int C, int L, int c, double *mean, double *var_mean,
                 double *idle, double *var_idle);
/* Positions where |a − b| exceeds twice the standard error of the difference,
 * sqrt(va/na + vb/nb); the mean |a − b| to *mad. */
int nde_profile_outside(const double *a, const double *va, size_t na, const double *b,
                        const double *vb, size_t nb, int L, double *mad);
/* Lengths (bins) of the maximal idle (busy = 0) or busy (busy = 1) runs of channel c in
 * every window of s, runs cut by the window edges as they are. Returns how many were
 * written to len (room for n·L). */
size_t nde_runs(double *len, const nde_set *s, int C, int L, int c, int busy);
/* Per window, the Pearson correlation of channels 0 and 1 (log1p, idle bins 0); 0 when
 * either is constant. r has room for s->n. */
void nde_coupling(double *r, const nde_set *s, int C, int L);

/* What the measures need from eval.c's report: the held-out real windows R and every
 * source's windows (n == 0: absent), all in real's layout; has[i][c] says whether source
 * i has real's channel c (a peer may lack some: those are zeros in its windows). */
enum { NDE_SYNTH, NDE_RAW, NDE_NAIVE, NDE_REAL, NDE_PEER, NDE_NSRC };
typedef struct nde_judge {
    FILE *out;
    nd_json *js; /* receives "independent" and "summary" (NULL: none) */
    const nd_dataset *real;
    const nde_set *R;
    const nde_set *src[NDE_NSRC]; /* src[NDE_REAL]: the training windows */
    int has[NDE_NSRC][ND_MAX_CHANNELS];
    int C, L, K;
    uint64_t seed;
    int threads;
} nde_judge;
/* Prints the independent measures of every source present and the SUMMARY lines. 0 or
 * -ENOMEM. */
int nde_judge_report(const nde_judge *j);

#endif
