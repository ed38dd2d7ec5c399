/*
 * test_sample_flows_cli.c — `sample --flow-windows W --context K [--resample U]` as a person
 * runs it, on the tiny model of the CLI tests (tiny_cli.h, never calibrated): the CSV and the
 * dataset hold W windows per flow and count flows per class, each flow under a group id
 * of its own; K 0 and K > 0 both work; mistakes are refused with exit 2 and a message
 * naming the option.
 *
 * The context: a flow's windows are cut from one series at multiples of L, so the
 * sampled windows (which advance by L − K bins and overlap by K) are not in the output
 * as such. The test samples the first flow's first two windows again in-process with the
 * same model and seed (nd_dm_sample_cont, the first window's state the second's
 * context, the rng in the order nd_dm_sample_flow draws it), and checks that the CLI's
 * first window is that first window, that the continuation starts with its last K bins
 * (up to the decoder: exact, uncalibrated, up to rounding), and that the CLI's second
 * window starts with the continuation's new bins.
 */
#include <math.h>

#include "../base/tmpdir.h"
#include "check.h"
#include "model.h"
#include "run_cli.h"
#include "tiny_cli.h"

enum { L = 8, C = 2, WL = C * L, W = 3, COUNT = 2, CLASSES = 2, K = 3, SEED = 7 };

static char P[8][512];
static const char *path(int i, const char *name)
{
    snprintf(P[i], sizeof P[i], "%s", tmp_path(name));
    return P[i];
}

/* The CSV and the dataset of one --flow-windows run: W windows per group, COUNT groups
 * per class, a group's windows in a row, one class each. Returns the dataset. */
static nd_dataset *check_flows(const char *csv, const char *ndd)
{
    nd_error e = {0};
    nd_dataset *c = nd_csv_read(csv, ND_NS_PER_SEC, &e), *d = nd_dataset_load(ndd, &e);
    if (!c || !d) CHECK_FAIL_("%s", e.msg);
    CHECK_U64_EQ(c->n_windows, (uint64_t)COUNT * CLASSES * W);
    CHECK_U64_EQ(d->n_windows, c->n_windows);
    CHECK(!memcmp(c->values, d->values, c->n_windows * WL * sizeof(float)));
    for (uint64_t i = 0; i < d->n_windows; i++) {
        uint64_t flow = i / W;
        CHECK_EQ(d->labels[i], (uint16_t)(flow / COUNT)); /* classes in turn */
        CHECK_EQ(c->labels[i], d->labels[i]);
        CHECK_U64_EQ(d->groups[i], flow); /* class k's flows are k·COUNT + f */
        for (int j = 0; j < WL; j++)
            CHECK(isfinite(d->values[i * WL + j]) && d->values[i * WL + j] >= 0);
    }
    nd_dataset_free(c);
    return d;
}

int main(void)
{
    const char *csv = path(0, "real.csv"), *ndd = path(1, "real.ndd"),
               *conf = path(2, "tiny.yaml"), *model = path(3, "m.ndm"),
               *fcsv = path(4, "flows.csv"), *fndd = path(5, "flows.ndd"),
               *zcsv = path(6, "flows0.csv"), *zndd = path(7, "flows0.ndd");
    tiny_cli_csv(csv);
    tiny_cli_conf(conf, 30, ", calibrate: 0"); /* never calibrated: the decode is exact */
    EXPECT(0, "import", "--format", "csv", csv, "-o", ndd);
    EXPECT(0, "train", "-c", conf, ndd, "-o", model);

    /* mistakes: exit 2, the option named */
    EXPECT(2, "sample", model, "--count", "2", "--csv", fcsv, "--flow-windows", "0");
    CHECK_CONTAINS(err_text, "--flow-windows N: 1 to 100000 windows per flow");
    EXPECT(2, "sample", model, "--count", "2", "--csv", fcsv, "--flow-windows", "3",
           "--context", "8");
    CHECK_CONTAINS(err_text, "--context 8: expected 0 to 7 bins");
    EXPECT(2, "sample", model, "--count", "2", "--csv", fcsv, "--context", "2");
    CHECK_CONTAINS(err_text, "--context K goes with it");
    EXPECT(2, "sample", model, "--count", "2", "--csv", fcsv, "--flow-windows", "3",
           "--raw-csv", zcsv);
    CHECK_CONTAINS(err_text, "--flow-windows: no --raw-csv");
    EXPECT(2, "sample", model, "--count", "2", "--csv", fcsv, "--resample", "2");
    CHECK_CONTAINS(err_text, "--resample U: 1 to 100, with --flow-windows");
    EXPECT(2, "sample", model, "--count", "2", "--csv", fcsv, "--flow-windows", "3",
           "--resample", "0");
    CHECK_CONTAINS(err_text, "--resample U: 1 to 100");
    CHECK(access(fcsv, F_OK) != 0 && access(zcsv, F_OK) != 0); /* nothing written */

    /* K > 0 and K 0 */
    EXPECT(0, "sample", model, "--count", "2", "--csv", fcsv, "--ndd", fndd, "--flow-windows",
           "3", "--context", "3", "--seed", "7", "--calibrate", "0");
    nd_dataset *k3 = check_flows(fcsv, fndd);
    EXPECT(0, "sample", model, "--count", "2", "--csv", zcsv, "--ndd", zndd, "--flow-windows",
           "3", "--context", "0", "--seed", "7", "--calibrate", "0");
    nd_dataset *k0 = check_flows(zcsv, zndd);
    nd_error e = {0};
    /* the first window of a flow is sampled before any context: the same for any K (the
     * same seed); the windows after it continue it only when K > 0 */
    CHECK(!memcmp(k3->values, k0->values, WL * sizeof(float)));
    CHECK(memcmp(k3->values + WL, k0->values + WL, WL * sizeof(float)));
    /* resampled: the first window as before, its continuations drawn anew */
    EXPECT(0, "sample", model, "--count", "2", "--ndd", zndd, "--flow-windows", "3",
           "--context", "3", "--seed", "7", "--calibrate", "0", "--resample", "3");
    nd_dataset *rs = nd_dataset_load(zndd, &e);
    if (!rs) CHECK_FAIL_("%s", e.msg);
    CHECK(!memcmp(k3->values, rs->values, WL * sizeof(float)));
    CHECK(memcmp(k3->values + WL, rs->values + WL, WL * sizeof(float)));
    nd_dataset_free(rs);

    /* the context, by the first flow (class 0) sampled again in-process */
    nd_dm *m = nd_dm_load(model, ND_DM_BATCH_SAMPLE, NULL, &e);
    if (!m) CHECK_FAIL_("%s", e.msg);
    CHECK(!nd_dm_calibrated(m));
    enum { CI = 2 * C }; /* the tiny model's image channels: values and activity */
    CHECK_EQ(nd_gaf_channels(nd_dm_gaf(m)), CI);
    float w0[COUNT * WL], w1[COUNT * WL], s0[COUNT * CI * L];
    nd_rng rng;
    nd_rng_seed(&rng, SEED);
    CHECK_EQ(nd_dm_sample_cont(m, 0, COUNT, 0, 0, NULL, w0, s0, &rng, &e), 0);
    CHECK_EQ(nd_dm_sample_cont(m, 0, COUNT, K, L - K, s0, w1, NULL, &rng, &e), 0);
    for (int f = 0; f < COUNT; f++) {
        const float *cli = k3->values + (size_t)f * W * WL; /* flow f: its W windows */
        CHECK(!memcmp(cli, w0 + f * WL, WL * sizeof(float)));
        for (int c = 0; c < C; c++) {
            const float *a = w0 + f * WL + c * L, *b = w1 + f * WL + c * L;
            /* the continuation starts with the last K bins of the window before: the
             * uncalibrated decode gives them back up to the rounding of bytes to whole
             * numbers (and float32 at these sizes), so 1 byte or 1e-3 of the value */
            for (int i = 0; i < K; i++) CHECK_NEAR(b[i], a[L - K + i], 1.0, 1e-3);
            /* the flow goes on with its new bins: window 1 starts with them */
            CHECK(!memcmp(cli + WL + c * L, b + K, (L - K) * sizeof(float)));
        }
    }
    printf("sample flows: %d flows of %d windows per class, K 0 and %d; the continuation "
           "starts with its context's %d bins, the CLI's windows are the flow's\n",
           COUNT, W, K, K);
    nd_dm_free(m);
    nd_dataset_free(k3);
    nd_dataset_free(k0);
    return 0;
}
