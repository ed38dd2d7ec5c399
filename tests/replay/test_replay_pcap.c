/*
 * test_replay_pcap.c — the pcap sink and the errors a user can meet:
 *   - same seed ⇒ the same pcap, byte for byte; another seed ⇒ another file;
 *   - libpcap reads the file back: nanosecond timestamps in order, every packet there;
 *   - a disk that fills in the middle of a run (a 256 KiB tmpfs in a private mount
 *     namespace, root only): a clear error, the previous file at that path as it was and
 *     no temporary file left;
 *   - pcap:/dev/full (refused: not a regular file), a directory that does not exist, an
 *     unknown sink, an interface
 *     that does not exist, an unknown class, an empty dataset, missing channels, a bad
 *     pool: each a clear error, never a crash.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replay_test.h"

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const cls2[] = {"web", "bulk"};

static nd_dataset *make_ds(uint64_t n)
{
    nd_dataset *ds = tds_new(2, ch2, 16, 100000000ull, 2, cls2, n);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    trng r = {11};
    for (uint64_t w = 0; w < n; w++) {
        ds->labels[w] = (uint16_t)(w % 2);
        for (uint32_t c = 0; c < 2; c++)
            for (uint32_t b = 0; b < ds->L; b++)
                *tds_at(ds, w, c, b) = (float)trng_below(&r, 50000);
    }
    return ds;
}

static int write_pcap(const nd_dataset *ds, const char *path, uint64_t seed, replay_stats *st,
                      nd_error *e)
{
    replay_opts o;
    replay_opts_defaults(&o);
    o.seed = seed;
    o.status = 0;
    char spec[300];
    snprintf(spec, sizeof spec, "pcap:%s", path);
    replay_sink *s = replay_sink_open(spec, e);
    if (!s) return e->code;
    int rc = replay_run(ds, &o, s, st, e);
    if (rc) {
        replay_sink_discard(s); /* as netdiffus replay does after a failed run */
        return rc;
    }
    return replay_sink_close(s, e);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_determinism(void)
{
    nd_dataset *ds = make_ds(40);
    replay_stats st;
    nd_error e;
    CHECK_EQ(write_pcap(ds, "replay_a.pcap", 3, &st, &e), 0);
    CHECK_EQ(write_pcap(ds, "replay_b.pcap", 3, NULL, &e), 0);
    CHECK_EQ(write_pcap(ds, "replay_c.pcap", 4, NULL, &e), 0);
    size_t la, lb, lc;
    char *a = slurp("replay_a.pcap", &la), *b = slurp("replay_b.pcap", &lb),
         *c = slurp("replay_c.pcap", &lc);
    CHECK(la > 10000);
    CHECK_EQ(la, lb);
    CHECK(memcmp(a, b, la) == 0);
    CHECK(la != lc || memcmp(a, c, la) != 0);
    free(a), free(b), free(c);

    /* libpcap reads it back: every packet, nanosecond timestamps in order */
    uint64_t bytes = 0, n = tpcap_read("replay_a.pcap", &bytes);
    CHECK_U64_EQ(n, st.packets);
    CHECK_U64_EQ(bytes, st.bytes);
    CHECK_U64_EQ(st.flows, 40);
    tds_free(ds);
}

static void expect_error(int rc, const nd_error *e, const char *needle)
{
    if (rc == 0) CHECK_FAIL_("expected an error containing '%s', got success", needle);
    CHECK_CONTAINS(e->msg, needle);
    fprintf(stderr, "  expected error: %s\n", e->msg);
}

static void test_errors(void)
{
    nd_dataset *ds = make_ds(4);
    nd_error e;
    memset(&e, 0, sizeof e);
    replay_sink *s;

    /* a device is not replaced by a file (as root, /dev/null would be): refused */
    s = replay_sink_open("pcap:/dev/full", &e);
    CHECK(!s);
    CHECK_EQ(e.code, ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "/dev/full is a character device, not a regular file");
    struct stat st;
    CHECK(!stat("/dev/full", &st) && S_ISCHR(st.st_mode));

    s = replay_sink_open("pcap:/nonexistent-dir/x.pcap", &e);
    CHECK(!s);
    CHECK_CONTAINS(e.msg, "/nonexistent-dir/x.pcap");
    s = replay_sink_open("tcp:1.2.3.4", &e);
    CHECK(!s);
    CHECK_CONTAINS(e.msg, "unknown sink");
    s = replay_sink_open("iface:nd-no-such0", &e);
    CHECK(!s);
    CHECK_CONTAINS(e.msg, "nd-no-such0");
    fprintf(stderr, "  expected error: %s\n", e.msg);

    replay_opts o;
    replay_opts_defaults(&o);
    o.status = 0;
    s = replay_sink_open("pcap:replay_err.pcap", &e);
    CHECK(s);

    o.only_class = "nope";
    expect_error(replay_run(ds, &o, s, NULL, &e), &e,
                 "unknown class 'nope' (the data has: web, bulk)");
    o.only_class = NULL;

    o.mix[0] = (replay_mix_entry){"video", 1.0};
    o.n_mix = 1;
    expect_error(replay_run(ds, &o, s, NULL, &e), &e, "unknown class 'video'");
    o.n_mix = 0;

    o.client_pool = "10.0.0.0/33";
    expect_error(replay_run(ds, &o, s, NULL, &e), &e, "replay.client_pool");
    char long_pool[600];
    memset(long_pool, ' ', sizeof long_pool - 1);
    memcpy(long_pool + sizeof long_pool - 14, "10.0.0.0/16", 12);
    o.client_pool = long_pool; /* never cut short: an error */
    expect_error(replay_run(ds, &o, s, NULL, &e), &e, "prefix lists longer than 512 bytes");
    o.client_pool = "198.18.0.0/30";
    o.clients = 100;
    expect_error(replay_run(ds, &o, s, NULL, &e), &e, "100 addresses asked");
    replay_opts_defaults(&o);
    o.status = 0;
    o.mac_src = "02:00:00:00:00";
    expect_error(replay_run(ds, &o, s, NULL, &e), &e, "replay.mac_src");
    replay_opts_defaults(&o);
    o.status = 0;

    nd_dataset *empty = tds_new(2, ch2, 16, 100000000ull, 1, cls2, 0);
    expect_error(replay_run(empty, &o, s, NULL, &e), &e, "dataset is empty");
    tds_free(empty);

    static const char *const other[] = {"pkts_down", "pkts_up"};
    nd_dataset *nochan = tds_new(2, other, 16, 100000000ull, 1, cls2, 2);
    expect_error(replay_run(nochan, &o, s, NULL, &e), &e, "bytes_down and bytes_up");
    tds_free(nochan);

    /* a class without windows */
    for (uint64_t w = 0; w < ds->n_windows; w++) ds->labels[w] = 0;
    o.only_class = "bulk";
    expect_error(replay_run(ds, &o, s, NULL, &e), &e, "class 'bulk' has no windows");
    o.only_class = "web";
    CHECK_EQ(replay_run(ds, &o, s, NULL, &e), 0); /* the sink still works after errors */
    CHECK_EQ(replay_sink_close(s, &e), 0);
    tds_free(ds);
}

static void test_full_disk(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "  (full-disk case skipped: needs root and a mount namespace)\n");
        return;
    }
    mkdir("replay_small_fs", 0755);
    CHECK_EQ(mount("tmpfs", "replay_small_fs", "tmpfs", 0, "size=256k"), 0);
    nd_dataset *small = make_ds(1), *ds = make_ds(40);
    for (uint32_t i = 0; i < 2 * small->L; i++) small->values[i] = 2000; /* a few KB */
    nd_error e;
    memset(&e, 0, sizeof e);
    /* the pcap of an earlier run, which the failed run must leave as it was */
    CHECK_EQ(write_pcap(small, "replay_small_fs/full.pcap", 3, NULL, &e), 0);
    CHECK_EQ(write_pcap(small, "replay_earlier.pcap", 3, NULL, &e), 0);
    uint64_t before = tpcap_read("replay_small_fs/full.pcap", NULL);
    CHECK(before > 0);
    int rc = write_pcap(ds, "replay_small_fs/full.pcap", 3, NULL, &e);
    CHECK_EQ(rc, -ENOSPC);
    CHECK_CONTAINS(e.msg, "replay_small_fs/full.pcap");
    CHECK_CONTAINS(e.msg, "No space left on device");
    fprintf(stderr, "  expected error: %s\n", e.msg);
    CHECK(tcli_same_file("replay_small_fs/full.pcap", "replay_earlier.pcap"));
    CHECK_EQ(test_sh("test $(ls -A replay_small_fs | wc -l) = 1"), 0); /* no temporary */
    umount("replay_small_fs");
    tds_free(small);
    tds_free(ds);
}

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    test_determinism();
    test_errors();
    test_full_disk();
    printf("replay pcap: ok\n");
    return 0;
}
