/*
 * test_capture_cli.c — `netdiffus capture`, `import` and `export` as a user runs them:
 * --class labelling and config rules into a dataset file with statistics and counters,
 * export to series CSV and import back bit for bit, videoTrain import (generated traces
 * with known sums, and the real ../shared traces when present), SIGINT on a capture from
 * a FIFO keeps what was read, a failing second source leaves the dataset at -o as it
 * was and saves what was read to OUT.partial.ndd, outputs never replace an input or a
 * device, and the exit codes and messages of the usual mistakes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pktgen.h"

enum { N_MANY = 40 };

static char dir[64];
static char err_text[65536];
static rlim_t child_nofile; /* not 0: the descriptors a run may have open */

/* Runs netdiffus with args (NULL-terminated, at most 126); stderr into err_text. Returns
 * the exit code. */
static int nd_run(const char *const *args)
{
    char errf[128];
    snprintf(errf, sizeof errf, "%s/stderr", dir);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        close(fd);
        struct rlimit rl = {child_nofile, child_nofile};
        if (child_nofile && setrlimit(RLIMIT_NOFILE, &rl)) _exit(126);
        const char *argv[128] = {ND_BINARY};
        for (int i = 0; args[i]; i++) argv[i + 1] = args[i];
        execv(ND_BINARY, (char *const *)argv);
        _exit(127);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    FILE *f = fopen(errf, "r");
    size_t n = f ? fread(err_text, 1, sizeof err_text - 1, f) : 0;
    err_text[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
#define RUN(...) nd_run((const char *const[]){__VA_ARGS__, NULL})

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

static void test_capture_export_import(void)
{
    char pcap[128], src[160], ndd[128], csv[128], ndd2[128], conf[128];
    snprintf(pcap, sizeof pcap, "%s/mix.pcap", dir);
    snprintf(src, sizeof src, "pcap:%s", pcap);
    snprintf(ndd, sizeof ndd, "%s/mix.ndd", dir);
    snprintf(csv, sizeof csv, "%s/mix.csv", dir);
    snprintf(ndd2, sizeof ndd2, "%s/back.ndd", dir);
    snprintf(conf, sizeof conf, "%s/conf.yaml", dir);
    write_mixed_pcap(pcap, 100, 5000, 60, 1);

    /* --class: one class, every flow in it */
    int rc = RUN("capture", "--source", src, "--class", "video", "-o", ndd);
    if (rc) CHECK_FAIL_("capture: exit %d: %s", rc, err_text);
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(ndd, &e);
    if (!ds) CHECK_FAIL_("%s", e.msg);
    CHECK_EQ(ds->n_classes, 1);
    CHECK_STR_EQ(ds->class_names[0], "video");
    CHECK(ds->n_windows > 50);
    CHECK_EQ(ds->n_channels, 2);
    CHECK_STR_EQ(ds->channel_names[0], "bytes_down");
    CHECK_EQ(ds->L, 64);
    CHECK(ds->stats[0].flows >= 100);
    uint64_t sized = 0;
    for (int b = 0; b < ND_SIZE_HIST; b++) sized += ds->stats[0].size_hist[ND_UP][b];
    CHECK(sized > 1000);
    CHECK(ds->config_yaml && strstr(ds->config_yaml, "capture:"));
    int found = 0;
    for (uint32_t i = 0; i < ds->n_counters; i++)
        if (!strcmp(ds->counters[i].name, "bin.windows")) {
            CHECK_U64_EQ(ds->counters[i].value, ds->n_windows);
            found = 1;
        }
    CHECK(found);
    CHECK_CONTAINS(err_text, "class video");

    /* export, then import --format csv: the same windows */
    rc = RUN("export", ndd, "--csv", csv);
    if (rc) CHECK_FAIL_("export: exit %d: %s", rc, err_text);
    rc = RUN("import", "--format", "csv", csv, "-o", ndd2);
    if (rc) CHECK_FAIL_("import csv: exit %d: %s", rc, err_text);
    nd_dataset *back = nd_dataset_load(ndd2, &e);
    CHECK(back);
    CHECK_U64_EQ(back->n_windows, ds->n_windows);
    CHECK(!memcmp(back->values, ds->values, ds->n_windows * 2 * 64 * sizeof(float)));
    CHECK_STR_EQ(back->class_names[back->labels[0]], "video");
    nd_dataset_free(back);
    nd_dataset_free(ds);

    /* config rules + overrides: classes by BPF, 4 channels */
    write_text(conf, "capture:\n  window: 16\n  channels: 4\n  default_class: rest\n"
                     "classes:\n  - name: tls\n    filter: tcp port 443\n"
                     "  - name: dns\n    filter: udp port 53\n");
    rc = RUN("capture", "-c", conf, "--set", "capture.bin=500ms", "-s", src, "-o", ndd);
    if (rc) CHECK_FAIL_("capture -c: exit %d: %s", rc, err_text);
    ds = nd_dataset_load(ndd, &e);
    CHECK(ds);
    CHECK_EQ(ds->n_classes, 3);
    CHECK_STR_EQ(ds->class_names[0], "tls");
    CHECK_STR_EQ(ds->class_names[1], "dns");
    CHECK_STR_EQ(ds->class_names[2], "rest");
    CHECK_EQ(ds->n_channels, 4);
    CHECK_EQ(ds->L, 16);
    CHECK_U64_EQ(ds->bin_ns, ND_NS_PER_SEC / 2);
    CHECK(ds->stats[0].l4_flows[ND_L4_TCP] > 0 && ds->stats[0].l4_flows[ND_L4_UDP] == 0);
    CHECK_EQ(ds->stats[0].port[0], 443);
    CHECK_EQ(ds->stats[1].port[0], 53);
    nd_dataset_free(ds);

    /* mistakes: exit 2 for usage and config, 1 for runtime, and a message that says what */
    CHECK_EQ(RUN("capture", "--source", src), 2);
    CHECK_CONTAINS(err_text, "-o");
    CHECK_EQ(RUN("capture", "--source", "tap:eth0", "-o", ndd), 2);
    CHECK_CONTAINS(err_text, "pcap:FILE");
    CHECK_EQ(RUN("capture", "--source", "pcap:/nonexistent/x.pcap", "-o", ndd), 1);
    CHECK_CONTAINS(err_text, "/nonexistent/x.pcap");
    /* a source failing after another one delivered: exit 1; the dataset already at -o
     * stays as it was, and what was read is saved beside it in OUT.partial.ndd */
    char keep[160], partial[160];
    snprintf(keep, sizeof keep, "%s/mix-before.ndd", dir);
    snprintf(partial, sizeof partial, "%s/mix.partial.ndd", dir);
    CHECK_EQ(test_sh("cp %s %s", ndd, keep), 0);
    CHECK_EQ(RUN("capture", "--source", src, "--source", "pcap:/nonexistent/x.pcap", "--class",
                 "a", "-o", ndd),
             1);
    CHECK_CONTAINS(err_text, "keeping the");
    CHECK_CONTAINS(err_text, "mix.partial.ndd (");
    CHECK_CONTAINS(err_text, "mix.ndd is left as it was");
    CHECK_EQ(test_sh("cmp -s %s %s", ndd, keep), 0);
    ds = nd_dataset_load(partial, &e);
    if (!ds) CHECK_FAIL_("%s", e.msg);
    CHECK(ds->n_windows > 50);
    CHECK_STR_EQ(ds->class_names[0], "a");
    nd_dataset_free(ds);

    /* an output never replaces an input of the run, nor a device */
    char pcap_copy[160];
    snprintf(pcap_copy, sizeof pcap_copy, "%s/mix-copy.pcap", dir);
    CHECK_EQ(test_sh("cp %s %s", pcap, pcap_copy), 0);
    CHECK_EQ(RUN("capture", "--source", src, "--class", "a", "-o", pcap), 2);
    CHECK_CONTAINS(err_text, "mix.pcap is also an input of this run");
    CHECK_EQ(test_sh("cmp -s %s %s", pcap, pcap_copy), 0);
    CHECK_EQ(RUN("export", ndd, "--csv", ndd), 2);
    CHECK_CONTAINS(err_text, "mix.ndd is also an input of this run");
    CHECK_EQ(test_sh("cmp -s %s %s", ndd, keep), 0);
    CHECK_EQ(RUN("import", "--format", "csv", csv, "-o", csv), 2);
    CHECK_CONTAINS(err_text, "mix.csv is also an input of this run");
    CHECK_EQ(RUN("export", ndd, "--csv", "/dev/full"), 2);
    CHECK_CONTAINS(err_text, "/dev/full is a character device, not a regular file");
    struct stat dev;
    CHECK(!stat("/dev/full", &dev) && S_ISCHR(dev.st_mode));
    write_text(conf, "classes:\n  - name: bad\n    filter: tcp prot 80\n");
    CHECK_EQ(RUN("capture", "-c", conf, "--source", src, "-o", ndd), 2);
    CHECK_CONTAINS(err_text, "class 'bad'");
    CHECK_EQ(RUN("capture", "--source", "iface:nd-no-such-if0", "-o", ndd), 1);
    CHECK_CONTAINS(err_text, "nd-no-such-if0");
#if ND_HAVE_DPDK
    CHECK_EQ(RUN("capture", "--source",
                 "dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry "
                 "--vdev=net_pcap0,rx_pcap=/nonexistent/y.pcap",
                 "-o", ndd),
             1);
    CHECK_CONTAINS(err_text, "no port came up");
#else
    CHECK_EQ(RUN("capture", "--source", "dpdk:--no-pci", "-o", ndd), 2);
    CHECK_CONTAINS(err_text, "source 'dpdk:--no-pci': this build has no DPDK");
#endif
    CHECK_EQ(RUN("import", "--format", "parquet", csv, "-o", ndd), 2);
    write_text(csv, "class,bytes_down_0\nx,abc\n");
    CHECK_EQ(RUN("import", "--format", "csv", csv, "-o", ndd), 1);
    CHECK_CONTAINS(err_text, "mix.csv:2");
    CHECK_EQ(RUN("export", "/nonexistent.ndd", "--csv", csv), 1);
    CHECK_CONTAINS(err_text, "/nonexistent.ndd");
}

/* A generated videoTrain layout: class a has one trace with known rows, b one short. */
static void test_import_videotrain(void)
{
    char vt[128], cls[160], f[200], ndd[128];
    snprintf(vt, sizeof vt, "%s/vt", dir);
    snprintf(ndd, sizeof ndd, "%s/vt.ndd", dir);
    CHECK(!mkdir(vt, 0755));
    const char *hdr = ",Vid_pltform,Vid_type,Vid_id,pkt_count_dl,frame_sum_dl,frame_avg_dl,"
                      "frame_var_dl,pkt_count_ul,frame_sum_ul\n";
    for (int c = 0; c < 2; c++) {
        snprintf(cls, sizeof cls, "%s/%s", vt, c ? "b" : "a");
        CHECK(!mkdir(cls, 0755));
        snprintf(f, sizeof f, "%s/Vid_1_cc_1.csv", cls);
        FILE *fp = fopen(f, "w");
        CHECK(fp);
        fputs(hdr, fp);
        int rows = c ? 5 : 241; /* b: 5 rows = 2 full 1-s bins and a half */
        for (int r = 0; r < rows; r++)
            fprintf(fp, "%d,1,1,1,%d.0,%d.0,1.5,,%d.0,%d.0\n", r, r, 1000 * r, 1, 10 * r);
        fclose(fp);
    }
    int rc =
        RUN("import", "--format", "videotrain", vt, "--set", "capture.window=8", "-o", ndd);
    if (rc) CHECK_FAIL_("import videotrain: exit %d: %s", rc, err_text);
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(ndd, &e);
    CHECK(ds);
    CHECK_EQ(ds->n_classes, 2);
    CHECK_EQ(ds->n_windows, 2);
    CHECK_EQ(ds->L, 8);
    /* rows 2k and 2k+1 sum into bin k: down 1000·(4k+1), up 10·(4k+1) */
    for (int k = 0; k < 8; k++) {
        CHECK_NEAR(ds->values[k], 1000.0 * (4 * k + 1), 0, 0);
        CHECK_NEAR(ds->values[8 + k], 10.0 * (4 * k + 1), 0, 0);
    }
    /* short trace: bins 0, 1, then zero (the half bin of row 4 is dropped) */
    const float *w = ds->values + 16;
    CHECK_NEAR(w[0], 1000, 0, 0);
    CHECK_NEAR(w[1], 5000, 0, 0);
    for (int k = 2; k < 8; k++) CHECK_NEAR(w[k], 0, 0, 0);
    CHECK(ds->groups[0] != ds->groups[1]);
    nd_dataset_free(ds);
    CHECK_CONTAINS(err_text, "zero-padded");

    /* a bin that is not a multiple of 0.5 s is a config error */
    CHECK_EQ(
        RUN("import", "--format", "videotrain", vt, "--set", "capture.bin=300ms", "-o", ndd),
        2);
    CHECK_CONTAINS(err_text, "500ms");
    /* a malformed number names file, line and column */
    snprintf(f, sizeof f, "%s/a/Vid_2_cc_1.csv", vt);
    FILE *fp = fopen(f, "w");
    fprintf(fp, "%s0,1,1,1,1.0,12x,1,,1,1\n", hdr);
    fclose(fp);
    CHECK_EQ(RUN("import", "--format", "videotrain", vt, "-o", ndd), 1);
    CHECK_CONTAINS(err_text, "Vid_2_cc_1.csv:2:");
    /* what strtod reads but a count is not: hex, hex floats, inf, values a float loses,
     * more than a 0.5 s row carries at 1 Tbit/s (6.25e10 bytes) */
    static const char *const bad[] = {"0x10", "0x1p3", "inf", "1e-320", "3.4e38", "-5"};
    static const char *const why[] = {
        "is not a plain decimal",   "is not a plain decimal",       "is not a plain decimal",
        "is too small for a float", "is more than a bin can carry", "is negative"};
    for (int i = 0; i < 6; i++) {
        fp = fopen(f, "w");
        fprintf(fp, "%s0,1,1,1,1.0,%s,1,,1,1\n", hdr, bad[i]);
        fclose(fp);
        CHECK_EQ(RUN("import", "--format", "videotrain", vt, "-o", ndd), 1);
        char want[256];
        snprintf(want, sizeof want, "Vid_2_cc_1.csv:2:13: frame_sum_dl: '%s' %s", bad[i],
                 why[i]);
        CHECK_CONTAINS(err_text, want);
    }
    unlink(f);
    /* a class directory whose name is not UTF-8 */
    snprintf(cls, sizeof cls, "%s/c\xff", vt);
    CHECK(!mkdir(cls, 0755));
    snprintf(f, sizeof f, "%s/Vid_1_cc_1.csv", cls);
    fp = fopen(f, "w");
    fprintf(fp, "%s0,1,1,1,1.0,1.0,1,,1,1\n", hdr);
    fclose(fp);
    CHECK_EQ(RUN("import", "--format", "videotrain", vt, "-o", ndd), 1);
    CHECK_CONTAINS(err_text, "is not a valid class name (UTF-8 text");
    unlink(f);
    rmdir(cls);

    /* the real traces, when the shared data is here: 510 traces, 4 classes */
    char real[4200];
    snprintf(real, sizeof real, "%s/datasets/videotrain/original", ND_SHARED_DIR);
    struct stat st;
    if (stat(real, &st)) return;
    rc = RUN("import", "--format", "videotrain", real, "-o", ndd);
    if (rc) CHECK_FAIL_("import real videotrain: exit %d: %s", rc, err_text);
    ds = nd_dataset_load(ndd, &e);
    CHECK(ds);
    CHECK_EQ(ds->n_classes, 4);
    CHECK_EQ(ds->n_windows, 510);
    nd_dataset_free(ds);
}

/* SIGINT while reading a FIFO that stays open: the packets read so far are saved. */
static void test_sigint(void)
{
    char fifo[128], src[160], ndd[128], errf[128];
    snprintf(fifo, sizeof fifo, "%s/live.fifo", dir);
    snprintf(src, sizeof src, "pcap:%s", fifo);
    snprintf(ndd, sizeof ndd, "%s/sigint.ndd", dir);
    snprintf(errf, sizeof errf, "%s/stderr-sigint", dir);
    CHECK(!mkfifo(fifo, 0600));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execl(ND_BINARY, ND_BINARY, "capture", "--source", src, "--class", "x", "-o", ndd,
              (char *)NULL);
        _exit(127);
    }
    /* Writer: pcap header and 30 packets of 3 flows, then hold the FIFO open. */
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
    FILE *fp = fopen(fifo, "w");
    CHECK(fp);
    pcap_dumper_t *d = pcap_dump_fopen(dead, fp);
    CHECK(d);
    uint8_t buf[16384];
    for (int i = 0; i < 30; i++) {
        char a[32];
        snprintf(a, sizeof a, "10.7.0.%d", 1 + i % 3);
        pkt_spec s = {.src = a, .dst = "10.7.1.1", .sport = 9, .dport = 9, .ip_total = 100};
        size_t len = pkt_build(buf, &s);
        struct pcap_pkthdr h = {
            .ts = {1700000000 + i, 0}, .caplen = (uint32_t)len, .len = (uint32_t)len};
        pcap_dump((u_char *)d, &h, buf);
    }
    pcap_dump_flush(d);
    usleep(700000); /* let it read them */
    CHECK_EQ(kill(pid, SIGINT), 0);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    pcap_dump_close(d);
    pcap_close(dead);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(ndd, &e);
    if (!ds) CHECK_FAIL_("%s", e.msg);
    CHECK_EQ(ds->n_windows, 3);
    double sum = 0;
    for (uint64_t i = 0; i < 3 * 2 * 64; i++) sum += ds->values[i];
    CHECK_NEAR(sum, 30 * 114.0, 0, 0);
    nd_dataset_free(ds);
}

/* More sources than descriptors the run may open (40 files, 16 descriptors), named one
 * by one and as their folder: the same dataset; capture.sources takes a folder too. */
static void test_many_sources(void)
{
    char folder[96], spec[N_MANY][160], ndd[128], ndd2[128], conf[128], yaml[256];
    const char *args[2 * N_MANY + 8] = {"capture", "--class", "many"};
    int n = 3;
    snprintf(folder, sizeof folder, "%s/many", dir);
    CHECK(!mkdir(folder, 0755));
    for (int i = 0; i < N_MANY; i++) {
        snprintf(spec[i], sizeof spec[i], "%s/f%02d.pcap", folder, i);
        write_mixed_pcap(spec[i], 3, 30, 3, 500u + (unsigned)i);
        memmove(spec[i] + 5, spec[i], strlen(spec[i]) + 1);
        memcpy(spec[i], "pcap:", 5);
        args[n++] = "--source";
        args[n++] = spec[i];
    }
    snprintf(ndd, sizeof ndd, "%s/many.ndd", dir);
    snprintf(ndd2, sizeof ndd2, "%s/folder.ndd", dir);
    args[n++] = "-o";
    args[n++] = ndd;
    child_nofile = 16;
    int rc = nd_run(args);
    if (rc) CHECK_FAIL_("capture of %d sources: exit %d: %s", N_MANY, rc, err_text);
    snprintf(conf, sizeof conf, "%s/many.yaml", dir);
    snprintf(yaml, sizeof yaml, "capture:\n  sources: [\"pcap:%s\"]\n", folder);
    write_text(conf, yaml);
    rc = RUN("capture", "-c", conf, "--class", "many", "-o", ndd2);
    child_nofile = 0;
    if (rc) CHECK_FAIL_("capture of a folder: exit %d: %s", rc, err_text);
    CHECK_CONTAINS(err_text, "40 files, read in name order");
    nd_error e = {0};
    nd_dataset *a = nd_dataset_load(ndd, &e), *b = nd_dataset_load(ndd2, &e);
    CHECK(a && b);
    CHECK(a->n_windows > N_MANY);
    CHECK_U64_EQ(a->n_windows, b->n_windows);
    CHECK(!memcmp(a->values, b->values, a->n_windows * a->n_channels * a->L * sizeof(float)));
    nd_dataset_free(a);
    nd_dataset_free(b);
}

/* The 30 captures of ../shared/datasets/ndpi-apps in one run, as a folder. */
static int test_ndpi_folder(void)
{
    char folder[4200], src[4300], ndd[128];
    snprintf(folder, sizeof folder, "%s/datasets/ndpi-apps/pcap", ND_SHARED_DIR);
    struct stat st;
    if (stat(folder, &st)) return 77;
    snprintf(src, sizeof src, "pcap:%s", folder);
    snprintf(ndd, sizeof ndd, "%s/ndpi.ndd", dir);
    int rc = RUN("capture", "--source", src, "-o", ndd);
    if (rc) CHECK_FAIL_("capture %s: exit %d: %s", src, rc, err_text);
    CHECK_CONTAINS(err_text, "30 files, read in name order");
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(ndd, &e);
    CHECK(ds && ds->n_windows > 30);
    nd_dataset_free(ds);
    return 0;
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof dir, "cli-%d", (int)getpid());
    CHECK(!mkdir(dir, 0755));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (argc > 1 && !strcmp(argv[1], "ndpi-apps")) {
        int rc = test_ndpi_folder();
        CHECK_EQ(system(cmd), 0);
        return rc;
    }
    test_capture_export_import();
    test_import_videotrain();
    test_sigint();
    test_many_sources();
    CHECK_EQ(system(cmd), 0);
    printf("ok\n");
    return 0;
}
