/*
 * test_flows.c — nd_dm_sample_flows, the sampling policy of replay and live's replay, on
 * an untrained tiny model: flows split over classes by largest remainders (a class of
 * weight 0 gets none, NULL weights split evenly), windows without a byte drawn again up
 * to as many redraws as the class has flows and then kept, the same windows as the
 * model's own sampler gives for the same noise, the classes shuffled together, a stop
 * seen, bad weights refused; streamed, a class's windows the same in the same order
 * whatever the number of sampler threads, the queue within its bound. Flows longer than a
 * window (a class given durations of 20 and 30 bins): each a run of windows of one group,
 * as many as its duration from its first busy bin takes, zero past it; cut and counted at
 * the cap; streamed, the same flows with one thread and two, the queue in windows.
 */
#include <string.h>

#include "check.h"
#include "model.h"
#include "tiny_model.h"

enum { L = 8, C = 2, WL = C * L, BATCH = 4 };
enum {
    SILENT,
    BUSY,
    SPARE,
    K
}; /* SILENT's training windows are all zero: so are its samples */

static nd_dm *tiny_model(nd_dataset **ds)
{
    nd_config cfg;
    tiny_model_config(&cfg, "model.max_classes=3", "train.val_fraction=0", "sample.steps=2",
                      "sample.guidance=1", "sample.batch=4", "sample.calibrate=0");
    const char *names[C] = {"bytes_down", "bytes_up"};
    *ds = nd_dataset_new(C, names, L, ND_NS_PER_SEC);
    CHECK(*ds);
    CHECK_EQ(nd_dataset_class(*ds, "silent"), SILENT);
    CHECK_EQ(nd_dataset_class(*ds, "busy"), BUSY);
    CHECK_EQ(nd_dataset_class(*ds, "spare"), SPARE);
    float zero[WL] = {0}, busy[WL];
    for (int i = 0; i < WL; i++) busy[i] = (float)(100 * (i + 1));
    for (uint64_t g = 0; g < 3; g++) {
        CHECK_EQ(nd_dataset_append(*ds, SILENT, 3 * g, zero), 0);
        CHECK_EQ(nd_dataset_append(*ds, BUSY, 3 * g + 1, busy), 0);
        CHECK_EQ(nd_dataset_append(*ds, SPARE, 3 * g + 2, busy), 0);
    }
    nd_error e = {0};
    nd_dm *m = tiny_dm_new(&cfg, *ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    nd_config_free(&cfg);
    return m;
}

static int empty(const float *x)
{
    for (int i = 0; i < WL; i++)
        if (x[i] >= 0.5f) return 0;
    return 1;
}

static nd_dataset *flows(nd_dm *m, const double *w, uint32_t n, uint64_t seed)
{
    nd_rng rng;
    nd_rng_seed(&rng, seed);
    nd_flows_opts o = {.weights = w, .flows = n, .tag = "test", .quiet = 1};
    nd_error e = {0};
    nd_dataset *ds = nd_dm_sample_flows(m, &o, &rng, &e);
    if (!ds) CHECK_FAIL_("nd_dm_sample_flows: %s", e.msg);
    CHECK_U64_EQ(ds->n_windows, n);
    CHECK_EQ(ds->n_classes, K);
    for (uint64_t i = 0; i < n; i++) CHECK_U64_EQ(ds->groups[i], i);
    return ds;
}

static void check_split(nd_dm *m, const double *w, uint32_t n, int a, int b, int c)
{
    nd_dataset *ds = flows(m, w, n, 1);
    int count[K] = {0};
    for (uint64_t i = 0; i < ds->n_windows; i++) count[ds->labels[i]]++;
    if (count[0] != a || count[1] != b || count[2] != c)
        CHECK_FAIL_("%u flows by %g:%g:%g gave %d %d %d, expected %d %d %d", n, w ? w[0] : 1,
                    w ? w[1] : 1, w ? w[2] : 1, count[0], count[1], count[2], a, b, c);
    nd_dataset_free(ds);
}

static void test_split(nd_dm *m)
{
    /* 5·1/3 = 1.67 each: 1 1 1, the two left over to the first of the equal fractions */
    check_split(m, (const double[]){1, 1, 1}, 5, 2, 2, 1);
    check_split(m, NULL, 5, 2, 2, 1); /* NULL: even */
    /* 5·1/3 = 1.67 and 5·2/3 = 3.33: the one left over to the larger fraction, class 0,
     * not to the larger weight */
    check_split(m, (const double[]){1, 2, 0}, 5, 2, 3, 0);
    /* a class of weight 0 gets no flow, even when the others' fractions are small */
    check_split(m, (const double[]){0, 1, 1}, 1, 0, 1, 0);
    check_split(m, (const double[]){0, 1, 1}, 3, 0, 2, 1);
    check_split(m, (const double[]){0, 3, 1}, 8, 0, 6, 2); /* docs/REPLAY.md's 3:1 over 8 */
}

/* Sorts n windows (n, WL) by their bytes, to compare samples as sets. */
static int cmp_window(const void *a, const void *b) { return memcmp(a, b, WL * sizeof(float)); }

static void test_redraw(nd_dm *m)
{
    /* silent: 3 flows, every window empty; busy: 5 flows. The reference draws what the
     * policy must: batches of sample.batch, class after class from one stream, silent's
     * 3 windows drawn again once (3 redraws) and then kept, busy's as they come */
    enum { NS = 3, NB = 5 };
    nd_rng r;
    nd_rng_seed(&r, 9);
    nd_error e = {0};
    float silent[NS * WL], busy[BATCH * WL], want[NB * WL];
    for (int pass = 0; pass < 2; pass++)
        CHECK_EQ(nd_dm_sample(m, SILENT, NS, silent, NULL, &r, &e), 0);
    for (int i = 0; i < NS; i++) CHECK(empty(silent + i * WL));
    int got_busy = 0, redraws = NB;
    while (got_busy < NB) {
        int B = NB - got_busy < BATCH ? NB - got_busy : BATCH;
        CHECK_EQ(nd_dm_sample(m, BUSY, (size_t)B, busy, NULL, &r, &e), 0);
        for (int i = 0; i < B; i++) {
            if (empty(busy + i * WL) && redraws) {
                redraws--;
                continue;
            }
            memcpy(want + got_busy++ * WL, busy + i * WL, WL * sizeof(float));
        }
    }
    fprintf(stderr, "busy: %d of its windows were empty and drawn again\n", NB - redraws);

    nd_dataset *ds = flows(m, (const double[]){3, 5, 0}, NS + NB, 9);
    float got[NB * WL];
    int n_silent = 0, n_busy = 0, sorted = 1;
    for (uint64_t i = 0; i < ds->n_windows; i++) {
        const float *x = ds->values + i * WL;
        if (i && ds->labels[i] < ds->labels[i - 1]) sorted = 0;
        if (ds->labels[i] == SILENT) {
            CHECK(empty(x));
            n_silent++;
        } else {
            CHECK_EQ(ds->labels[i], BUSY);
            memcpy(got + n_busy++ * WL, x, WL * sizeof(float));
        }
    }
    CHECK_EQ(n_silent, NS);
    CHECK_EQ(n_busy, NB);
    CHECK(!sorted); /* shuffled: the classes interleave (for this seed) */
    /* busy's windows are the reference's only if silent's were drawn twice before them */
    qsort(got, NB, sizeof got[0] * WL, cmp_window);
    qsort(want, NB, sizeof want[0] * WL, cmp_window);
    CHECK(!memcmp(got, want, sizeof got));
    nd_dataset_free(ds);
}

static void test_errors(nd_dm *m)
{
    nd_rng r;
    nd_rng_seed(&r, 1);
    nd_error e = {0};
    volatile sig_atomic_t stop = 1;
    nd_flows_opts o = {.flows = 4, .stop = &stop, .tag = "test", .quiet = 1};
    CHECK(!nd_dm_sample_flows(m, &o, &r, &e));
    CHECK_EQ(e.code, ND_EINTR);
    CHECK_CONTAINS(e.msg, "stopped by signal while sampling (0 of 4 flows)");
    o.stop = NULL;
    o.weights = (const double[]){0, 0, 0};
    CHECK(!nd_dm_sample_flows(m, &o, &r, &e));
    CHECK_EQ(e.code, ND_EUSAGE);
    o.weights = (const double[]){1, -1, 0};
    CHECK(!nd_dm_sample_flows(m, &o, &r, &e));
    CHECK_EQ(e.code, ND_EUSAGE);
}

/* n windows of class BUSY streamed by `threads` sampler threads into out, and the
 * stream's figures. */
static void stream_windows(nd_dm *m, uint32_t threads, float *out, int n,
                           nd_flows_stream_stats *st)
{
    nd_flows_stream_opts o = {.weights = (const double[]){0, 1, 1},
                              .queue = 8,
                              .batch = 2,
                              .threads = threads,
                              .seed = 5};
    nd_error e = {0};
    nd_flows_stream *s = nd_flows_stream_start(m, &o, &e);
    if (!s) CHECK_FAIL_("nd_flows_stream_start: %s", e.msg);
    /* filled before the first take: as many flows as asked, or as many as it holds */
    CHECK_EQ(nd_flows_stream_fill(s, 3, &e), 0);
    nd_flows_stream_stats_get(s, st);
    CHECK(st->flows >= 3 && st->taken == 0);
    CHECK_EQ(nd_flows_stream_fill(s, 1000, &e), 0);
    nd_flows_stream_stats_get(s, st);
    CHECK_U64_EQ(st->depth, st->bound);
    float *x = NULL;
    size_t cap = 0;
    uint32_t nwin = 0;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(nd_flows_stream_take(s, BUSY, &x, &cap, &nwin, UINT64_MAX, &e), 0);
        CHECK_EQ(nwin, 1); /* no durations: one window per flow */
        memcpy(out + i * WL, x, WL * sizeof *x);
    }
    CHECK_EQ(nd_flows_stream_take(s, SILENT, &x, &cap, &nwin, UINT64_MAX, &e),
             ND_EUSAGE); /* weight 0 */
    free(x);
    nd_flows_stream_stats_get(s, st);
    nd_flows_stream_free(s);
}

static void test_stream(nd_dm *m)
{
    enum { N = 20 };
    float a[N * WL], b[N * WL];
    nd_flows_stream_stats sa, sb;
    stream_windows(m, 1, a, N, &sa);
    stream_windows(m, 2, b, N, &sb);
    CHECK(!memcmp(a, b, sizeof a));
    /* the queue of 8 shared by BUSY and SPARE, 2 batches of 2 each */
    CHECK_U64_EQ(sa.bound, 8);
    CHECK_U64_EQ(sa.batch, 2);
    CHECK_U64_EQ(sa.taken, N);
    CHECK(sa.sampled >= N && sa.max_depth <= sa.bound && sb.max_depth <= sb.bound);
    nd_flows_stream_opts bad = {.queue = 8, .threads = 0};
    nd_error e = {0};
    CHECK(!nd_flows_stream_start(m, &bad, &e));
    CHECK_EQ(e.code, ND_EUSAGE);
}

/* The first busy bin of window x (either bytes channel at 0.5 or more; L when none). */
static int first_busy(const float *x)
{
    for (int b = 0; b < L; b++)
        if (x[b] >= 0.5f || x[L + b] >= 0.5f) return b;
    return L;
}

/* A flow of nwin windows x (nwin, C, L) whose first busy bin is f0 lasted one of BUSY's
 * durations, 20 or 30 bins (cut at cap windows): as many windows as that takes, zero past
 * it. */
static void check_flow(const float *x, uint32_t nwin, uint32_t cap)
{
    int f0 = first_busy(x), ok = 0;
    for (int d = 20; d <= 30 && !ok; d += 10) {
        uint32_t end = (uint32_t)(f0 + d) < cap * L ? (uint32_t)(f0 + d) : cap * L;
        if (nwin != (end + L - 1) / L) continue;
        ok = 1;
        for (uint32_t b = end; b < nwin * L; b++)
            for (int c = 0; c < C; c++) ok &= x[(b / L) * WL + c * L + b % L] == 0;
    }
    if (!ok)
        CHECK_FAIL_("a flow of %u windows, first busy bin %d: not 20 or 30 bins", nwin, f0);
}

/* The windows a flow of d bins from f0 costs with a context of L/2. */
static uint32_t cost(int f0, int d) { return 1 + (uint32_t)(f0 + d - L + L / 2 - 1) / (L / 2); }

static void test_lengths(nd_dm *m)
{
    nd_class_stats *st = &nd_dm_dataset_mut(m)->stats[BUSY];
    st->duration_hist[20] = st->duration_hist[30] = 3;
    for (int pass = 0; pass < 2; pass++) {
        const uint32_t cap = pass ? 2 : 64;
        nd_rng rng;
        nd_rng_seed(&rng, 4);
        nd_flows_counts n;
        nd_flows_opts o = {.weights = (const double[]){0, 1, 0},
                           .flows = 6,
                           .tag = "test",
                           .quiet = 1,
                           .max_windows = cap,
                           .context = -1,
                           .counts = &n};
        nd_error e = {0};
        nd_dataset *ds = nd_dm_sample_flows(m, &o, &rng, &e);
        if (!ds) CHECK_FAIL_("nd_dm_sample_flows: %s", e.msg);
        uint64_t flows = 0, least = 0;
        for (uint64_t w = 0, k; w < ds->n_windows; w += k, flows++) {
            for (k = 1; w + k < ds->n_windows && ds->groups[w + k] == ds->groups[w];) k++;
            CHECK_U64_EQ(ds->groups[w], flows); /* groups 0..flows-1 in order */
            CHECK(k >= 2 && k <= cap);
            check_flow(ds->values + w * WL, (uint32_t)k, cap);
            int f0 = first_busy(ds->values + w * WL);
            least += cap > 2 ? cost(f0, 20) : 1 + (2 * L - L) / (L / 2);
        }
        CHECK_U64_EQ(flows, 6);
        CHECK_U64_EQ(n.flows, 6);
        CHECK_U64_EQ(n.longer, 6);
        CHECK_U64_EQ(n.windows, ds->n_windows);
        CHECK_U64_EQ(n.cut, cap > 2 ? 0 : 6); /* 20 bins and more pass 2 windows */
        CHECK(n.sampled >= least);            /* the continued windows of each flow */
        nd_dataset_free(ds);
    }

    /* streamed: the same flows whatever the threads; the queue holds a batch of the
     * longest (30 bins from up to bin 7: 5 windows) */
    float *got[2][12];
    uint32_t nwin[2][12];
    for (uint32_t threads = 1; threads <= 2; threads++) {
        nd_flows_stream_opts so = {.weights = (const double[]){0, 1, 1},
                                   .queue = 8,
                                   .batch = 2,
                                   .threads = threads,
                                   .seed = 6,
                                   .max_windows = 64,
                                   .context = -1};
        nd_error e = {0};
        nd_flows_stream *s = nd_flows_stream_start(m, &so, &e);
        if (!s) CHECK_FAIL_("nd_flows_stream_start: %s", e.msg);
        for (int i = 0; i < 12; i++) {
            size_t cap = 0;
            got[threads - 1][i] = NULL;
            CHECK_EQ(nd_flows_stream_take(s, BUSY, &got[threads - 1][i], &cap,
                                          &nwin[threads - 1][i], UINT64_MAX, &e),
                     0);
            check_flow(got[threads - 1][i], nwin[threads - 1][i], 64);
        }
        nd_flows_stream_stats ss;
        nd_flows_stream_stats_get(s, &ss);
        CHECK_U64_EQ(ss.longest, 5);
        CHECK_U64_EQ(ss.taken, 12);
        CHECK(ss.flows >= 12 && ss.longer >= 12 && !ss.cut);
        /* busy's share of 4 windows holds no batch of 5-window flows: one flow of 5 */
        CHECK_U64_EQ(ss.bound, 5 + 4);
        CHECK(ss.max_depth <= ss.bound);
        nd_flows_stream_free(s);
    }
    for (int i = 0; i < 12; i++) {
        CHECK_EQ(nwin[0][i], nwin[1][i]);
        CHECK(!memcmp(got[0][i], got[1][i], nwin[0][i] * WL * sizeof(float)));
        free(got[0][i]);
        free(got[1][i]);
    }
    st->duration_hist[20] = st->duration_hist[30] = 0;
}

int main(void)
{
    nd_dataset *train;
    nd_dm *m = tiny_model(&train);
    test_split(m);
    test_redraw(m);
    test_errors(m);
    test_stream(m);
    test_lengths(m);
    nd_dm_free(m);
    nd_dataset_free(train);
    printf("flows: ok\n");
    return 0;
}
