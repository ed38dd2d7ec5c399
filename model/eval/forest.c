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
 * values sharing one, so that rows sort by integer keys. 0 or -ENOMEM. */
static int ranks(uint32_t *rank, const double *X, size_t n, int nf)
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
        }
    }
    free(p);
    return 0;
}

typedef struct grower {
    const double *X;
    const uint32_t *rank; /* (n, nf) rank of each row's value among all rows' (ties share) */
    const int *y;
    int nf, K, mtry, min_leaf;
    nd_rng rng;
    int *feats;      /* (nf) feature order, shuffled per node */
    uint64_t *order; /* (n) a node's rows by one feature: rank << 32 | row, sorted */
    size_t *tmp;   /* (n) */
    int *cnt, *cl; /* (K) class counts: node, left side */
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
    double best = (double)n - sumsq / (double)n, best_thr = 0;
    int best_f = -1, tried = 0;
    for (int j = 0; j < nf; j++) g->feats[j] = j;
    for (int j = 0; j < nf && tried < g->mtry; j++) {
        int s = j + (int)nd_rng_below(&g->rng, (uint32_t)(nf - j));
        int f = g->feats[s];
        g->feats[s] = g->feats[j], g->feats[j] = f;
        /* by rank, then row: the order (and so the forest) is fixed by the rows alone */
        for (size_t i = 0; i < n; i++)
            g->order[i] = (uint64_t)g->rank[rows[i] * nf + f] << 32 | rows[i];
        sort_u64(g->order, n);
        if (g->order[0] >> 32 == g->order[n - 1] >> 32) continue; /* constant here */
        tried++;
        memset(g->cl, 0, K * sizeof *g->cl);
        double sl = 0, sr = sumsq; /* Σ c² left and right */
        for (size_t i = 0; i + 1 < n; i++) {
            size_t row = g->order[i] & 0xffffffffu, next = g->order[i + 1] & 0xffffffffu;
            int k = g->y[row];
            int cr = cnt[k] - g->cl[k];
            sl += 2.0 * g->cl[k] + 1;
            sr -= 2.0 * cr - 1;
            g->cl[k]++;
            size_t nl = i + 1, nr = n - nl;
            if (g->order[i] >> 32 == g->order[i + 1] >> 32 || nl < (size_t)g->min_leaf ||
                nr < (size_t)g->min_leaf)
                continue;
            double v = g->X[row * nf + f], w = g->X[next * nf + f];
            double imp = (double)n - sl / (double)nl - sr / (double)nr;
            if (imp < best - 1e-12 || best_f < 0) {
                best = imp, best_f = f;
                best_thr = v + (w - v) / 2;
                if (!(best_thr < w)) best_thr = v; /* v and w adjacent doubles */
            }
        }
    }
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
    uint32_t *rank = malloc(n * nf * sizeof *rank);
    if (!rank || ranks(rank, X, n, nf)) return free(rank), NULL;
    nde_forest *f = calloc(1, sizeof *f);
    if (!f) return free(rank), NULL;
    f->nf = nf, f->K = K;
    f->n_trees = o->trees > 0 ? o->trees : 200;
    f->trees = calloc(f->n_trees, sizeof *f->trees);
    if (!f->trees) return free(f), free(rank), NULL;
    int mtry = o->mtry > 0 ? o->mtry : (int)floor(sqrt((double)nf));
    if (mtry < 1) mtry = 1;
    if (mtry > nf) mtry = nf;
    int min_leaf = o->min_leaf > 0 ? o->min_leaf : 1;
    int threads = o->threads > 0 ? o->threads : omp_get_num_procs();
    int oom = 0;
#pragma omp parallel num_threads(threads) reduction(| : oom)
    {
        grower g = {.X = X, .rank = rank, .y = y, .nf = nf, .K = K, .mtry = mtry, .min_leaf = min_leaf};
        size_t *rows = malloc(n * sizeof *rows);
        g.feats = malloc(nf * sizeof *g.feats);
        g.order = malloc(n * sizeof *g.order);
        g.tmp = malloc(n * sizeof *g.tmp);
        g.cnt = malloc(K * sizeof *g.cnt);
        g.cl = malloc(K * sizeof *g.cl);
        oom |= !rows || !g.feats || !g.order || !g.tmp || !g.cnt || !g.cl;
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
        free(g.cl);
    }
    free(rank);
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
