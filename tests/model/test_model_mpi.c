/*
 * test_model_mpi.c — `mpirun -np 2 netdiffus train|sample` on the tiny dataset against one
 * process: 20 steps over 2 ranks (batch 4: 2 images each) give the weights of 20 steps in
 * one process (batch 4) within the tolerance of docs/SCALE.md; a run of 2 ranks resumed
 * by one process, and one of one process resumed by 2 ranks, give them too; sample over 2
 * ranks writes the bytes one process writes (the default sampler with the stored
 * calibration, and ddpm, whose other settings refit the calibration over the ranks); a
 * time limit ends every rank at one step;
 * a train.batch below the rank count and a command that does not spread fail on every
 * rank with the reason. Skipped (77) in a build without MPI, after checking that mpirun
 * starting two copies of it is told so.
 */
#include <math.h>

#include "../base/tmpdir.h"
#include "check.h"
#include "json_check.h"
#include "model.h"
#include "run_cli.h"
#include "tiny_cli.h"

/* Weights after 20 steps of 2 ranks differ from one process's by float reassociation
 * alone: the gradient of a weight is the sum of 2 sums of 2 images instead of one sum of
 * 4. AdamW divides each step by the root of the second moment, so a difference of an
 * ulp in a gradient moves a weight by up to about lr·2^-23 relative per step; over 20
 * steps that stays far below this bound (docs/SCALE.md gives the figures measured). */
#define WEIGHT_ATOL 1e-6

static char P[16][512];
static const char *path(int i, const char *name)
{
    snprintf(P[i], sizeof P[i], "%s", tmp_path(name));
    return P[i];
}

/* mpirun with n ranks of netdiffus and its args (NULL-terminated); the exit code. */
static int mpi_run(int n, const char *const *args)
{
    char np[16];
    snprintf(np, sizeof np, "%d", n);
    /* as root in CI; more ranks than cores where CI has fewer (model.threads is 1 in the
     * config: one layer thread a rank) */
    const char *argv[48] = {ND_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-np", np,
                            ND_BINARY};
    int k = 6;
    for (int i = 0; args[i]; i++) argv[k++] = args[i];
    argv[k] = NULL;
    /* In the sanitizer build, LeakSanitizer is off in the ranks alone: Open MPI's own
     * allocations outlive MPI_Finalize in plugins it has unloaded by then, which no
     * suppression can name. AddressSanitizer stays on; one process keeps both. */
    const char *was = getenv("ASAN_OPTIONS");
    char *keep = was ? strdup(was) : NULL, asan[512];
    snprintf(asan, sizeof asan, "%s%sdetect_leaks=0", was ? was : "", was && *was ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    int rc = run_argv(argv);
    if (keep) setenv("ASAN_OPTIONS", keep, 1);
    else unsetenv("ASAN_OPTIONS");
    free(keep);
    return rc;
}
#define MPI_EXPECT(code, n, ...)                                                               \
    do {                                                                                       \
        int rc_ = mpi_run(n, (const char *const[]){__VA_ARGS__, NULL});                        \
        if (rc_ != (code))                                                                     \
            CHECK_FAIL_("mpirun -np %d: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s", n,    \
                        rc_, (code), out_text, err_text);                                      \
    } while (0)

/* Largest difference of the weights and of their EMA of models a and b, which have the
 * same network and step. */
static double weight_diff(const char *a, const char *b)
{
    nd_error e = {0};
    nd_dm *ma = nd_dm_load(a, ND_DM_BATCH_TRAIN, NULL, &e);
    CHECK(ma);
    nd_dm *mb = nd_dm_load(b, ND_DM_BATCH_TRAIN, NULL, &e);
    CHECK(mb);
    CHECK_U64_EQ(nd_dm_step(ma), nd_dm_step(mb));
    size_t n = nd_unet_num_params(nd_dm_unet(ma));
    CHECK_EQ(n, nd_unet_num_params(nd_dm_unet(mb)));
    const float *pa = nd_unet_params(nd_dm_unet(ma)), *pb = nd_unet_params(nd_dm_unet(mb));
    const float *ea = nd_dm_ema(ma), *eb = nd_dm_ema(mb);
    double d = 0.0, moved = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fmax(fabs((double)pa[i] - pb[i]), fabs((double)ea[i] - eb[i])));
        moved = fmax(moved, fabs((double)pa[i] - ea[i]));
    }
    CHECK(moved > 0.0); /* the weights trained at all */
    printf("%s against %s: %zu weights, largest difference %.3g\n", a, b, n, d);
    nd_dm_free(ma);
    nd_dm_free(mb);
    return d;
}

int main(void)
{
#if !ND_HAVE_MPI
    /* mpirun, where there is one, starting 2 copies of this build: each says why not */
    if (ND_MPIEXEC[0] && !strstr(ND_MPIEXEC, "NOTFOUND")) {
        CHECK(mpi_run(2, (const char *const[]){"train", "x.ndd", "-o", "x.ndm", NULL}) != 0);
        CHECK_CONTAINS(err_text, "this build has no MPI");
    }
    SKIP("this build has no MPI");
#endif
    const char *csv = path(0, "real.csv"), *ndd = path(1, "real.ndd"),
               *conf = path(2, "tiny.yaml"), *one = path(3, "one.ndm"),
               *two = path(4, "two.ndm"), *r21 = path(5, "r21.ndm"), *r12 = path(6, "r12.ndm"),
               *s1 = path(7, "s1.csv"), *s2 = path(8, "s2.csv"), *log = path(9, "two.jsonl"),
               *d1 = path(10, "d1.csv"), *d2 = path(11, "d2.csv");
    tiny_cli_csv(csv);
    tiny_cli_conf(conf, 20, ", calibrate: 8");
    EXPECT(0, "import", "--format", "csv", csv, "-o", ndd);

    /* 20 steps, batch 4: one process, and 2 ranks of 2 images each */
    EXPECT(0, "train", "-c", conf, ndd, "-o", one);
    MPI_EXPECT(0, 2, "train", "-c", conf, ndd, "-o", two, "--log", log, "--log-every", "5");
    CHECK(weight_diff(one, two) <= WEIGHT_ATOL);
    CHECK(json_holds(log, 1,
                     "[l['step'] for l in d] == [5, 10, 15, 20] and "
                     "all(l['ranks'] == 2 and l['allreduce_s'] > 0 for l in d)"));

    /* resumed with another rank count: 2 ranks to step 10, one process on to 20; and
     * the other way round */
    MPI_EXPECT(0, 2, "train", "-c", conf, ndd, "-o", r21, "--steps", "10");
    EXPECT(0, "train", ndd, "-o", r21, "--resume");
    CHECK(weight_diff(one, r21) <= WEIGHT_ATOL);
    EXPECT(0, "train", "-c", conf, ndd, "-o", r12, "--steps", "10");
    MPI_EXPECT(0, 2, "train", ndd, "-o", r12, "--resume");
    CHECK(weight_diff(one, r12) <= WEIGHT_ATOL);

    /* sample: 10 windows a class in batches of 8, 4 batches round 2 ranks; rank 0 alone
     * writes */
    EXPECT(0, "sample", one, "--count", "10", "--seed", "7", "--csv", s1);
    MPI_EXPECT(0, 2, "sample", one, "--count", "10", "--seed", "7", "--csv", s2);
    size_t l1, l2;
    unsigned char *b1 = read_bytes(s1, &l1), *b2 = read_bytes(s2, &l2);
    CHECK(l1 > 0 && l1 == l2 && !memcmp(b1, b2, l1));
    free(b1);
    free(b2);
    /* ddpm draws noise at every step, and its calibration is fitted over the ranks */
    EXPECT(0, "sample", one, "--count", "10", "--sampler", "ddpm", "--csv", d1);
    MPI_EXPECT(0, 2, "sample", one, "--count", "10", "--sampler", "ddpm", "--csv", d2);
    b1 = read_bytes(d1, &l1), b2 = read_bytes(d2, &l2);
    CHECK(l1 > 0 && l1 == l2 && !memcmp(b1, b2, l1));
    free(b1);
    free(b2);

    /* a time limit stops every rank at the same step (their clocks started apart): the
     * run ends, and rank 0 saves the model there */
    const char *timed = path(13, "timed.ndm");
    MPI_EXPECT(0, 2, "train", "-c", conf, ndd, "-o", timed, "--steps", "1000000", "--minutes",
               "0.02");
    nd_error e = {0};
    nd_dm *mt = nd_dm_load(timed, ND_DM_BATCH_TRAIN, NULL, &e);
    CHECK(mt);
    CHECK(nd_dm_step(mt) > 0 && nd_dm_step(mt) < 1000000);
    nd_dm_free(mt);

    /* every rank fails alike, says why and which rank, and the run ends */
    CHECK(mpi_run(2, (const char *const[]){"train", "-c", conf, ndd, "-o", path(12, "x.ndm"),
                                           "--set", "train.batch=1", NULL}) != 0);
    CHECK_CONTAINS(err_text, "train.batch 1 is smaller than the 2 ranks");
    CHECK_CONTAINS(err_text, "of 2 failed");
    CHECK(mpi_run(2, (const char *const[]){"inspect", one, NULL}) != 0);
    CHECK_CONTAINS(err_text, "only train and sample spread");
    return 0;
}
