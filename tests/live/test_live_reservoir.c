/*
 * test_live_reservoir.c — reservoir sampling (algorithm R) keeps every window of a
 * stream with probability cap/n: inclusion counts over many streams against the binomial
 * expectation (each within 5 sigma, and a chi-square over all positions), plus the
 * growing storage and the exact contents while the stream is shorter than cap.
 */
#include "check.h"
#include "live.h"

enum { CAP = 10, NSTREAM = 100, TRIALS = 20000 };

int main(void)
{
    nd_rng rng;
    nd_rng_seed(&rng, 7);
    static uint32_t count[NSTREAM];
    for (int t = 0; t < TRIALS; t++) {
        nd_reservoir r;
        nd_reservoir_init(&r, CAP, 1);
        for (int i = 0; i < NSTREAM; i++) {
            float x = (float)i;
            long slot = nd_reservoir_add(&r, &x, (uint64_t)i, &rng);
            CHECK(slot >= -1 && slot < CAP);
        }
        CHECK_EQ(r.n, CAP);
        CHECK_U64_EQ(r.seen, NSTREAM);
        for (uint32_t k = 0; k < r.n; k++) {
            CHECK_U64_EQ(r.groups[k], (uint64_t)r.x[k]); /* window and group move together */
            count[r.groups[k]]++;
        }
        nd_reservoir_free(&r);
    }
    double p = (double)CAP / NSTREAM, mean = TRIALS * p, sd = sqrt(TRIALS * p * (1 - p));
    double chi2 = 0;
    for (int i = 0; i < NSTREAM; i++) {
        if (fabs(count[i] - mean) > 5 * sd)
            CHECK_FAIL_("window %d kept %u times, expected %.0f +- %.0f", i, count[i], mean,
                        5 * sd);
        chi2 += (count[i] - mean) * (count[i] - mean) / (mean * (1 - p));
    }
    /* 99 degrees of freedom: mean 99, sd 14; 99.99th percentile ~ 160 */
    fprintf(stderr, "reservoir: chi-square %.1f over %d positions\n", chi2, NSTREAM);
    CHECK(chi2 < 160);
    CHECK(chi2 > 50); /* too even would mean it is not random */

    /* shorter than cap: everything, in order; storage grows by doubling */
    nd_reservoir r;
    nd_reservoir_init(&r, 1000, 3);
    for (int i = 0; i < 50; i++) {
        float x[3] = {(float)i, (float)-i, 1};
        CHECK_EQ(nd_reservoir_add(&r, x, (uint64_t)i, &rng), i);
    }
    CHECK_EQ(r.n, 50);
    CHECK(r.alloc >= 50 && r.alloc <= 64);
    for (int i = 0; i < 50; i++) CHECK(r.x[3 * i] == (float)i && r.x[3 * i + 1] == (float)-i);
    nd_reservoir_free(&r);
    return 0;
}
