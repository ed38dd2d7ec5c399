/*
 * forest.c — a random forest classifier (Breiman's): every tree grows on a bootstrap
 * sample of the rows, each split picks the best Gini threshold among a random subset of
 * the features, trees grow until their leaves are pure (or reach the smallest leaf), and
 * the forest predicts the class with the highest mean leaf share. Each tree draws from a
 * generator of its own (seed + tree index), so trees can grow in parallel and the forest
 * is the same for a seed whatever the number of threads.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"

typedef struct node {
    int feat;   /* −1: leaf */
    double thr; /* x[feat] <= thr goes left */
    int left, right;
    int prob; /* leaf: offset of its K class shares in tree.prob */
} node;

typedef struct tree {
    node *nodes;
    size_t n_nodes, cap_nodes;
    float *prob;
    size_t n_prob, cap_prob;
} tree;

struct nde_forest {
    int nf, K, n_trees;
    tree *trees;
};

typedef struct pair {
    double v;
    size_t row;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    return (x->v > y->v) - (x->v < y->v);
}

/* rank (n, nf): per feature, the rank of each row's value among all rows' values, equal
 * values sharing one, so that rows sort by integer keys; rval (nf, n): the value of each
 * rank; nr (nf): how many ranks. 0 or -ENOMEM. */
static int ranks(uint32_t *rank, double *rval, uint32_t *nr, const double *X, size_t n, int nf)
{
    pair *p = malloc(n * sizeof *p);
    if (!p) return -ENOMEM;
    for (int f = 0; f < nf; f++) {
        for (size_t i = 0; i < n; i++) p[i] = (pair){X[i * nf + f], i};
        qsort(p, n, sizeof *p, cmp_pair);
        uint32_t r = 0;
        for (size_t i = 0; i < n; i++) {
            if (i && p[i].v != p[i - 1].v) r++;
            rank[p[i].row * nf + f] = r;
            rval[(size_t)f * n + r] = p[i].v;
        }
        nr[f] = r + 1;
    }
    free(p);
    return 0;
}

typedef struct grower {
    const double *X;
    const uint32_t *rank; /* (n, nf) rank of each row's value among all rows' (ties share) */
    const double *rval;   /* (nf, n) the value of each rank */
    const uint32_t *nr;   /* (nf) ranks per feature */
    size_t n;             /* rows */
    int *hist;            /* (n, K) class counts per rank, zero between uses */
    int *tot;             /* (n) rows per rank, zero between uses */
    const int *y;
    int nf, K, mtry, min_leaf;
    nd_rng rng;
    int *feats;      /* (nf) feature order, shuffled per node */
    uint64_t *order; /* (n) a node's rows by one feature: rank << 32 | row, sorted */
    size_t *tmp;     /* (n) */
    int *cnt, *cl;   /* (K) class counts: node, left side */
    tree *t;
    int oom;
} grower;

static int new_node(grower *g)
{
    tree *t = g->t;
    if (t->n_nodes == t->cap_nodes) {
        size_t cap = t->cap_nodes ? 2 * t->cap_nodes : 64;
        node *p = realloc(t->nodes, cap * sizeof *p);
        if (!p) return g->oom = 1, -1;
        t->nodes = p, t->cap_nodes = cap;
    }
    return (int)t->n_nodes++;
}

static int new_leaf(grower *g, int id, const int *cnt, size_t n)
{
    tree *t = g->t;
    if (t->n_prob + g->K > t->cap_prob) {
        size_t cap = t->cap_prob ? 2 * t->cap_prob : 64 * (size_t)g->K;
        float *p = realloc(t->prob, cap * sizeof *p);
        if (!p) return g->oom = 1, -1;
        t->prob = p, t->cap_prob = cap;
    }
    t->nodes[id] = (node){.feat = -1, .prob = (int)t->n_prob};
    for (int k = 0; k < g->K; k++) t->prob[t->n_prob++] = (float)cnt[k] / (float)n;
    return 0;
}

/* Quicksort with a median-of-three pivot, insertion sort below 16: sorting a node's rows
 * is most of a forest's time, and qsort's call per comparison doubled it. */
static void sort_u64(uint64_t *a, size_t n)
{
    while (n > 16) {
        size_t m = n / 2;
        uint64_t t;
#define SWAP(i, j) (t = a[i], a[i] = a[j], a[j] = t)
        if (a[m] < a[0]) SWAP(m, 0);
        if (a[n - 1] < a[0]) SWAP(n - 1, 0);
        if (a[n - 1] < a[m]) SWAP(n - 1, m);
        uint64_t piv = a[m];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < piv) i++;
            while (piv < a[j]) j--;
            if (i >= j) break;
            SWAP(i, j);
            i++, j--;
        }
#undef SWAP
        /* a[0..j] <= pivot <= a[j+1..n): recurse into the smaller part */
        size_t nl = j + 1;
        if (nl < n - nl) {
            sort_u64(a, nl);
            a += nl, n -= nl;
        } else {
            sort_u64(a + nl, n - nl);
            n = nl;
        }
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t x = a[i];
        size_t j = i;
        while (j > 0 && x < a[j - 1]) a[j] = a[j - 1], j--;
        a[j] = x;
    }
}

/* The best split so far: its impurity, feature (−1: none) and threshold. */
typedef struct split {
    double imp, thr;
    int f;
} split;

/* A candidate between values v and w (the next larger) of feature f, with nl rows left of
 * it and Σ c² over the classes sl left and sr right. Candidates are offered in ascending
 * order: the first valid one, then only strictly better ones, win. */
static void consider(const grower *g, split *b, int f, size_t n, size_t nl, double sl,
                     double sr, double v, double w)
{
    size_t nr = n - nl;
    if (nl < (size_t)g->min_leaf || nr < (size_t)g->min_leaf) return;
    double imp = (double)n - sl / (double)nl - sr / (double)nr;
    if (imp < b->imp - 1e-12 || b->f < 0) {
        b->imp = imp, b->f = f;
        b->thr = v + (w - v) / 2;
        if (!(b->thr < w)) b->thr = v; /* v and w adjacent doubles */
    }
}

/* Offers every split of rows[0..n) on feature f: rows sorted by (rank, row). Returns
 * whether f varies over the rows. */
static int search_sorted(grower *g, split *b, int f, const size_t *rows, size_t n, double sumsq)
{
    int nf = g->nf;
    for (size_t i = 0; i < n; i++)
        g->order[i] = (uint64_t)g->rank[rows[i] * nf + f] << 32 | rows[i];
    sort_u64(g->order, n);
    if (g->order[0] >> 32 == g->order[n - 1] >> 32) return 0;
    memset(g->cl, 0, g->K * sizeof *g->cl);
    double sl = 0, sr = sumsq; /* Σ c² left and right */
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r = (uint32_t)(g->order[i] >> 32), r2 = (uint32_t)(g->order[i + 1] >> 32);
        int k = g->y[g->order[i] & 0xffffffffu];
        int cr = g->cnt[k] - g->cl[k];
        sl += 2.0 * g->cl[k] + 1;
        sr -= 2.0 * cr - 1;
        g->cl[k]++;
        if (r != r2)
            consider(g, b, f, n, i + 1, sl, sr, g->rval[(size_t)f * g->n + r],
                     g->rval[(size_t)f * g->n + r2]);
    }
    return 1;
}

/* The same by counting the rows of each rank, for nodes with many rows for the ranks:
 * the same candidates in the same order, with the same (whole-number) sums. */
static int search_counted(grower *g, split *b, int f, const size_t *rows, size_t n,
                          double sumsq)
{
    int nf = g->nf, K = g->K;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = g->rank[rows[i] * nf + f];
        g->hist[(size_t)r * K + g->y[rows[i]]]++;
        g->tot[r]++;
        if (r < lo) lo = r;
        if (r > hi) hi = r;
    }
    int varies = lo != hi;
    if (varies) {
        memset(g->cl, 0, K * sizeof *g->cl);
        double sl = 0, sr = sumsq;
        size_t nl = 0;
        uint32_t prev = lo;
        for (uint32_t r = lo; r <= hi; r++) {
            if (!g->tot[r]) continue;
            if (r != lo)
                consider(g, b, f, n, nl, sl, sr, g->rval[(size_t)f * g->n + prev],
                         g->rval[(size_t)f * g->n + r]);
            for (int k = 0; k < K; k++) {
                double c = g->hist[(size_t)r * K + k], l = g->cl[k], rr = g->cnt[k] - l;
                sl += (l + c) * (l + c) - l * l;
                sr += (rr - c) * (rr - c) - rr * rr;
                g->cl[k] += (int)c;
            }
            nl += (size_t)g->tot[r];
            prev = r;
        }
    }
    for (uint32_t r = lo; r <= hi; r++) {
        g->tot[r] = 0;
        memset(g->hist + (size_t)r * K, 0, K * sizeof *g->hist);
    }
    return varies;
}

/* Grows the subtree of rows[0..n) into node id. */
static void grow(grower *g, int id, size_t *rows, size_t n)
{
    int K = g->K, nf = g->nf;
    int *cnt = g->cnt; /* used up before the recursion */
    memset(cnt, 0, K * sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[g->y[rows[i]]]++;
    int pure = 0;
    for (int k = 0; k < K; k++) pure |= (size_t)cnt[k] == n;
    if (pure || n < 2 * (size_t)g->min_leaf) {
        new_leaf(g, id, cnt, n);
        return;
    }
    /* Gini: minimise Σ_side (n_side − Σ_k c_k² / n_side); features drawn without
     * replacement until mtry of them could split (constant ones do not count, as in
     * scikit-learn), or none is left */
    double sumsq = 0;
    for (int k = 0; k < K; k++) sumsq += (double)cnt[k] * cnt[k];
    split b = {.imp = (double)n - sumsq / (double)n, .f = -1};
    int tried = 0;
    for (int j = 0; j < nf; j++) g->feats[j] = j;
    for (int j = 0; j < nf && tried < g->mtry; j++) {
        int s = j + (int)nd_rng_below(&g->rng, (uint32_t)(nf - j));
        int f = g->feats[s];
        g->feats[s] = g->feats[j], g->feats[j] = f;
        tried += n * 4 >= g->nr[f] ? search_counted(g, &b, f, rows, n, sumsq)
                                   : search_sorted(g, &b, f, rows, n, sumsq);
    }
    double best_thr = b.thr;
    int best_f = b.f;
    if (best_f < 0) {
        new_leaf(g, id, cnt, n);
        return;
    }
    /* partition rows: left first, keeping their order */
    size_t nl = 0, nr = 0;
    for (size_t i = 0; i < n; i++) {
        if (g->X[rows[i] * nf + best_f] <= best_thr) rows[nl++] = rows[i];
        else g->tmp[nr++] = rows[i];
    }
    memcpy(rows + nl, g->tmp, nr * sizeof *rows);
    int l = new_node(g), r = new_node(g);
    if (l < 0 || r < 0) return;
    g->t->nodes[id] = (node){.feat = best_f, .thr = best_thr, .left = l, .right = r};
    grow(g, l, rows, nl);
    if (!g->oom) grow(g, r, rows + nl, nr);
}

nde_forest *nde_forest_fit(const double *X, const int *y, size_t n, int nf, int K,
                           const nde_forest_opts *o)
{
    if (!n || nf < 1 || K < 1) return NULL;
    ND_ASSERT(n < (size_t)1 << 32); /* rows and ranks are 32-bit halves of the sort keys */
    uint32_t *rank = malloc(n * nf * sizeof *rank), *nr = malloc(nf * sizeof *nr);
    double *rval = malloc(n * nf * sizeof *rval);
    nde_forest *f = calloc(1, sizeof *f);
    if (!rank || !nr || !rval || !f || ranks(rank, rval, nr, X, n, nf)) {
        free(rank), free(nr), free(rval), free(f);
        return NULL;
    }
    f->nf = nf, f->K = K;
    f->n_trees = o->trees > 0 ? o->trees : 200;
    f->trees = calloc(f->n_trees, sizeof *f->trees);
    if (!f->trees) {
        free(rank), free(nr), free(rval), free(f);
        return NULL;
    }
    int mtry = o->mtry > 0 ? o->mtry : (int)floor(sqrt((double)nf));
    if (mtry < 1) mtry = 1;
    if (mtry > nf) mtry = nf;
    int min_leaf = o->min_leaf > 0 ? o->min_leaf : 1;
    int threads = o->threads > 0 ? o->threads : omp_get_num_procs();
    int oom = 0;
#pragma omp parallel num_threads(threads) reduction(| : oom)
    {
        grower g = {.X = X,
                    .rank = rank,
                    .rval = rval,
                    .nr = nr,
                    .n = n,
                    .y = y,
                    .nf = nf,
                    .K = K,
                    .mtry = mtry,
                    .min_leaf = min_leaf};
        size_t *rows = malloc(n * sizeof *rows);
        g.feats = malloc(nf * sizeof *g.feats);
        g.order = malloc(n * sizeof *g.order);
        g.tmp = malloc(n * sizeof *g.tmp);
        g.cnt = malloc(K * sizeof *g.cnt);
        g.cl = malloc(K * sizeof *g.cl);
        g.hist = calloc(n * K, sizeof *g.hist);
        g.tot = calloc(n, sizeof *g.tot);
        oom |= !rows || !g.feats || !g.order || !g.tmp || !g.cnt || !g.cl || !g.hist || !g.tot;
#pragma omp for schedule(dynamic)
        for (int t = 0; t < f->n_trees; t++) {
            if (oom) continue;
            g.t = &f->trees[t];
            nd_rng_seed(&g.rng, o->seed + (uint64_t)t);
            for (size_t i = 0; i < n; i++) rows[i] = nd_rng_below(&g.rng, (uint32_t)n);
            int root = new_node(&g);
            if (root >= 0) grow(&g, root, rows, n);
            oom |= g.oom;
        }
        free(rows), free(g.feats), free(g.order), free(g.tmp), free(g.cnt);
        free(g.cl), free(g.hist), free(g.tot);
    }
    free(rank), free(nr), free(rval);
    if (oom) return nde_forest_free(f), NULL;
    return f;
}

int nde_forest_predict(const nde_forest *f, const double *x, double *p)
{
    for (int k = 0; k < f->K; k++) p[k] = 0;
    for (int t = 0; t < f->n_trees; t++) {
        const tree *tr = &f->trees[t];
        int id = 0;
        while (tr->nodes[id].feat >= 0)
            id = x[tr->nodes[id].feat] <= tr->nodes[id].thr ? tr->nodes[id].left
                                                            : tr->nodes[id].right;
        for (int k = 0; k < f->K; k++) p[k] += tr->prob[tr->nodes[id].prob + k];
    }
    int best = 0;
    for (int k = 0; k < f->K; k++) {
        p[k] /= f->n_trees;
        if (p[k] > p[best]) best = k;
    }
    return best;
}

void nde_forest_free(nde_forest *f)
{
    if (!f) return;
    for (int t = 0; t < f->n_trees; t++) free(f->trees[t].nodes), free(f->trees[t].prob);
    free(f->trees);
    free(f);
}

/* The forest on the summary features, standardising nothing (trees do not need it). */
double nde_forest_accuracy(const nde_feats *tr, const nde_feats *te, int K, uint64_t seed,
                           int threads)
{
    if (!tr->n || !te->n) return NAN;
    nde_forest_opts o = {.seed = seed, .threads = threads};
    nde_forest *f = nde_forest_fit(tr->f, tr->y, tr->n, tr->nf, K, &o);
    double *p = malloc(K * sizeof *p);
    ND_ASSERT(f && p);
    size_t ok = 0;
    for (size_t i = 0; i < te->n; i++)
        ok += nde_forest_predict(f, te->f + i * te->nf, p) == te->y[i];
    free(p);
    nde_forest_free(f);
    return (double)ok / te->n;
}
