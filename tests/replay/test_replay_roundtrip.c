/*
 * test_replay_roundtrip.c — the round trip of docs/REPLAY.md: `netdiffus capture` of a replayed
 * pcap gives back the replayed series, bin for bin, within one minimum packet size per
 * bin. TCP and UDP flows over IPv4 and IPv6. First with bins that every hold frames
 * (exact), then with small and empty bins in the middle of the flows, where remainders
 * are carried: the error of a bin stays below the flow's minimum frame (42 bytes for
 * UDP/IPv4 up to 74 for TCP/IPv6), so the test allows 74.
 */
#include <sys/wait.h>

#include "replay_test.h"

static void run(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s", ND_BINARY, args);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) CHECK_FAIL_("failed (status %d): %s", st, cmd);
}

/* Replays windows (all of class web) and captures them back; fails unless every
 * window comes back with each bin within tol bytes. */
static void roundtrip(nd_dataset *ds, double tol, const char *tag)
{
    const uint32_t L = ds->L, N = (uint32_t)ds->n_windows;
    nd_error e;
    char in[64], pcap[64], out[64], args[512];
    snprintf(in, sizeof in, "roundtrip_%s.ndd", tag);
    snprintf(pcap, sizeof pcap, "roundtrip_%s.pcap", tag);
    snprintf(out, sizeof out, "roundtrip_%s_back.ndd", tag);
    if (nd_dataset_save(ds, in, &e)) CHECK_FAIL_("%s", e.msg);
    snprintf(args, sizeof args, "replay -q --series %s --to pcap:%s --seed 3", in, pcap);
    run(args);
    snprintf(args, sizeof args,
             "capture -q --source pcap:%s --class web --set capture.bin=100ms "
             "--set capture.window=%u --set capture.min_active_bins=1 -o %s",
             pcap, L, out);
    run(args);
    nd_dataset *got = nd_dataset_load(out, &e);
    if (!got) CHECK_FAIL_("%s", e.msg);
    CHECK_EQ(got->L, L);
    int down = -1, up = -1;
    for (uint32_t c = 0; c < got->n_channels; c++) {
        if (!strcmp(got->channel_names[c], "bytes_down")) down = (int)c;
        if (!strcmp(got->channel_names[c], "bytes_up")) up = (int)c;
    }
    CHECK(down >= 0 && up >= 0);
    if (got->n_windows != N)
        CHECK_FAIL_("%s: capture found %llu windows, replay sent %u flows", tag,
                    (unsigned long long)got->n_windows, N);

    /* every replayed window has its own captured window within tol in every bin */
    int used[256] = {0};
    double worst = 0;
    CHECK(N <= 256);
    for (uint32_t w = 0; w < N; w++) {
        const float *a = ds->values + (size_t)w * 2 * L;
        int match = -1;
        double match_err = 0;
        for (uint32_t k = 0; k < N && match < 0; k++) {
            if (used[k]) continue;
            const float *b = got->values + (size_t)k * got->n_channels * L;
            double err = 0;
            for (uint32_t i = 0; i < L; i++) {
                double e0 = fabs(a[i] - b[(size_t)down * L + i]);
                double e1 = fabs(a[L + i] - b[(size_t)up * L + i]);
                if (e0 > err) err = e0;
                if (e1 > err) err = e1;
            }
            if (err < tol) match = (int)k, match_err = err;
        }
        if (match < 0) {
            fprintf(stderr, "replayed window %u:", w);
            for (uint32_t i = 0; i < 2 * L; i++) fprintf(stderr, " %.0f", a[i]);
            fputc('\n', stderr);
            CHECK_FAIL_("%s: no captured window within %.0f bytes per bin", tag, tol);
        }
        used[match] = 1;
        if (match_err > worst) worst = match_err;
    }
    printf("replay round trip (%s): %u windows back, largest bin error %.0f bytes\n", tag, N,
           worst);
    nd_dataset_free(got);
}

int main(void)
{
    const uint32_t L = 16, N = 40;
    const char *names[] = {"bytes_down", "bytes_up"};
    trng r = {77};
    float v[2 * 16];

    /* 1. every bin holds frames: exact */
    nd_dataset *ds = nd_dataset_new(2, names, L, 100000000ull);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "web"), 0);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    for (uint32_t w = 0; w < N; w++) {
        for (uint32_t i = 0; i < 2 * L; i++) v[i] = (float)(2000 + trng_below(&r, 100000));
        CHECK_EQ(nd_dataset_append(ds, 0, w, v), 0);
    }
    roundtrip(ds, 1, "exact");
    nd_dataset_free(ds);

    /* 2. small and empty bins between a first and a last bin that hold the TCP
     * handshake and FIN: within one minimum frame */
    ds = nd_dataset_new(2, names, L, 100000000ull);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "web"), 0);
    tds_web_stats(&ds->stats[0], 0.4, 0.4);
    for (uint32_t w = 0; w < N; w++) {
        for (uint32_t c = 0; c < 2; c++)
            for (uint32_t i = 0; i < L; i++) {
                uint64_t k = trng_below(&r, 4);
                float x = k == 0   ? 0.0f
                          : k == 1 ? (float)trng_below(&r, 80)
                          : k == 2 ? (float)(40 + trng_below(&r, 300))
                                   : (float)trng_below(&r, 30000);
                if (i == 0 || i == L - 1) x = (float)(1000 + trng_below(&r, 30000));
                v[c * L + i] = x;
            }
        CHECK_EQ(nd_dataset_append(ds, 0, w, v), 0);
    }
    roundtrip(ds, 74, "carry");
    nd_dataset_free(ds);
    return 0;
}
