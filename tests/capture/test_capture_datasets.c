/*
 * test_capture_datasets.c — every capture file under ../shared/datasets (IoT Sentinel,
 * nDPI application captures, the partly broken edge-cases) either captures or fails with
 * a message naming the file, and the pcap: source gives the same packets as a bare libpcap
 * loop; nothing crashes (this also runs in the sanitizer build).
 * Skips when ../shared is absent.
 */
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include "pktgen.h"

static capture_opts opt;
static int n_ok, n_failed;
static uint64_t packets, windows, skipped;

static int count_window(void *user, uint32_t cls, uint64_t group, const float *v)
{
    (void)cls, (void)group, (void)v;
    ++*(uint64_t *)user;
    return 0;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)ftw;
    size_t n = strlen(path);
    if (type != FTW_F) return 0;
    int is_cap = (n > 5 && !strcmp(path + n - 5, ".pcap")) ||
                 (n > 7 && !strcmp(path + n - 7, ".pcapng")) ||
                 (n > 4 && !strcmp(path + n - 4, ".cap"));
    if (!is_cap) return 0;
    /* The pcap: source reads the same packets as a bare libpcap loop, and ends or
     * breaks at the same packet with the same message. */
    readers_check_same(path, path, opt.snaplen, NULL);
    uint64_t w = 0;
    nd_error e = {0};
    capture_ctx *c = capture_ctx_new(&opt, NULL, count_window, &w, &e);
    CHECK(c);
    char spec[4200];
    snprintf(spec, sizeof spec, "pcap:%s", path);
    const char *specs[] = {spec};
    int rc = capture_run(c, specs, 1, &opt, NULL, 0, &e);
    if (rc) {
        /* A clear message: names the file and says what is wrong. */
        CHECK_CONTAINS(e.msg, path);
        CHECK(strlen(e.msg) > strlen(spec) + 10);
        printf("failed (expected for broken files): %s\n", e.msg);
        n_failed++;
    } else {
        capture_totals t;
        capture_ctx_totals(c, &t);
        CHECK_U64_EQ(t.windows, w);
        packets += t.packets;
        skipped += t.skipped;
        windows += w;
        n_ok++;
    }
    capture_ctx_free(c);
    return 0;
}

int main(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/datasets", ND_SHARED_DIR);
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) SKIP("%s is absent", dir);
    nd_log_set_level(ND_LOG_WARN); /* one info line per file otherwise */
    capture_opts_defaults(&opt);
    opt.flow_capacity = 4096;
    static const char *const rules[][2] = {{"web", "tcp port 80 or tcp port 443"},
                                           {"dns", "udp port 53"}};
    opts_classes(&opt, 2, rules);
    CHECK_EQ(nftw(dir, visit, 16, FTW_PHYS), 0);
    printf("%d files captured (%llu packets, %llu not usable, %llu windows), %d refused\n",
           n_ok, (unsigned long long)packets, (unsigned long long)skipped,
           (unsigned long long)windows, n_failed);
    CHECK(n_ok >= 500);
    CHECK(windows > 1000);
    return 0;
}
