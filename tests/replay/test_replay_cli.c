/*
 * test_replay_cli.c — `netdiffus replay` as a user runs it: series CSV and dataset file
 * in, pcap out, same seed ⇒ same file; exit codes and messages of the errors (unknown
 * class, a device or an input as the output, missing interface, bad options, a missing
 * model file); a failed run leaves an earlier pcap as it was; --duration and Ctrl-C in
 * the middle of an endless replay stop it with a valid pcap in place.
 */
#include <pcap/pcap.h>
#include <sys/stat.h>

#include "replay_test.h"

#define EXPECT(code, args, needle) TCLI_EXPECT("replay_cli.err", code, args, needle)

int main(void)
{
    /* a series CSV: 2 classes, 6 windows of 8 bins */
    FILE *f = fopen("replay_cli.csv", "w");
    CHECK(f);
    fputs("class", f);
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 8; b++) fprintf(f, ",%s_%d", c ? "bytes_up" : "bytes_down", b);
    fputc('\n', f);
    trng r = {3};
    for (int w = 0; w < 6; w++) {
        fputs(w % 2 ? "video" : "web", f);
        for (int i = 0; i < 16; i++)
            fprintf(f, ",%llu", (unsigned long long)trng_below(&r, 90000));
        fputc('\n', f);
    }
    fclose(f);
    CHECK_EQ(test_sh("cp replay_cli.csv replay_cli_copy.csv"), 0);

    EXPECT(0, "replay --series replay_cli.csv --bin 100ms --to pcap:replay_cli1.pcap --seed 4",
           "6 flows");
    CHECK_CONTAINS(tcli_err, "no statistics"); /* a CSV has none: the defaults are said */
    EXPECT(0, "replay --series replay_cli.csv --bin 100ms --to pcap:replay_cli2.pcap --seed 4",
           "");
    EXPECT(0, "replay --series replay_cli.csv --bin 100ms --to pcap:replay_cli3.pcap --seed 5",
           "");
    CHECK(tcli_same_file("replay_cli1.pcap", "replay_cli2.pcap"));
    CHECK(!tcli_same_file("replay_cli1.pcap", "replay_cli3.pcap"));
    CHECK(tpcap_read("replay_cli1.pcap", NULL) > 100);
    EXPECT(
        0,
        "replay --series replay_cli.csv --bin 100ms --to pcap:replay_cli4.pcap --class video --flows 7 "
        "--loop 2 --speed 4",
        "14 flows");

    /* a dataset file with statistics */
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(2, names, 8, 50000000ull);
    CHECK(ds);
    int k = nd_dataset_class(ds, "web");
    CHECK(k == 0);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    float v[16];
    for (int w = 0; w < 5; w++) {
        for (int i = 0; i < 16; i++) v[i] = (float)trng_below(&r, 50000);
        CHECK_EQ(nd_dataset_append(ds, 0, (uint64_t)w, v), 0);
    }
    nd_error e;
    if (nd_dataset_save(ds, "replay_cli.ndd", &e)) CHECK_FAIL_("save: %s", e.msg);
    nd_dataset_free(ds);
    EXPECT(0, "replay --series replay_cli.ndd --to pcap:replay_cli5.pcap", "5 flows");
    CHECK_CONTAINS(tcli_err, "windows of 8 bins of 50ms"); /* the bin width is said */
    /* the bin width: a CSV has none (refused without --bin), a dataset has its own */
    EXPECT(2, "replay --series replay_cli.csv --to pcap:x.pcap",
           "a series CSV does not carry its bin width, and none was given: give --bin");
    EXPECT(2, "replay --series replay_cli.ndd --bin 1s --to pcap:x.pcap",
           "replay_cli.ndd has bins of 50ms, not 1s (--bin)");
    CHECK(!strstr(tcli_err, "no statistics"));
    CHECK(tpcap_read("replay_cli5.pcap", NULL) > 100);

    /* errors: clear message, exit 1 for runtime failures, 2 for usage */
    EXPECT(1, "replay missing.ndm --to pcap:x.pcap",
           "missing.ndm"); /* model path: test_replay_model */
    EXPECT(2, "replay --series replay_cli.csv --bin 100ms --to pcap:x.pcap --class nope",
           "unknown class 'nope' (the data has: web, video)");
    /* outputs replace regular files only, never a device (as root /dev/null would go) */
    EXPECT(2, "replay --series replay_cli.csv --bin 100ms --to pcap:/dev/full",
           "/dev/full is a character device, not a regular file");
    struct stat st;
    CHECK(!stat("/dev/full", &st) && S_ISCHR(st.st_mode));
    /* ... nor one of the run's inputs */
    EXPECT(2, "replay --series replay_cli.csv --bin 100ms --to pcap:replay_cli.csv",
           "replay_cli.csv is also an input of this run");
    CHECK(tcli_same_file("replay_cli.csv", "replay_cli_copy.csv"));
    /* a failed run leaves the pcap of an earlier one as it was, and no temporary file */
    CHECK_EQ(test_sh("cp replay_cli1.pcap replay_keep.pcap"), 0);
    f = fopen("replay_cli_bad.csv", "w");
    CHECK(f);
    fputs("class,pkts_0,pkts_1\nweb,1,2\n", f); /* no byte channels: replay_run fails */
    fclose(f);
    EXPECT(1, "replay --series replay_cli_bad.csv --to pcap:replay_keep.pcap --bin 100ms",
           "bytes_down and bytes_up");
    CHECK(tcli_same_file("replay_cli1.pcap", "replay_keep.pcap"));
    EXPECT(2,
           "replay --series replay_cli.csv --bin 100ms --to pcap:replay_keep.pcap --class nope",
           "unknown class");
    CHECK(tcli_same_file("replay_cli1.pcap", "replay_keep.pcap"));
    CHECK_EQ(test_sh("! ls -A | grep -q '^\\.replay_keep'"), 0);
    /* a run ended by a bound keeps what it wrote: a valid pcap in place of the old one */
    EXPECT(0,
           "replay --series replay_cli.csv --bin 100ms --to pcap:replay_keep.pcap --loop 0 "
           "--duration 3s",
           "");
    CHECK(tpcap_read("replay_keep.pcap", NULL) > 0);
    CHECK(!tcli_same_file("replay_cli1.pcap", "replay_keep.pcap"));
    EXPECT(1, "replay --series replay_cli.csv --bin 100ms --to iface:nd-no-such0",
           "no such interface");
    EXPECT(2, "replay --series replay_cli.csv --bin 100ms --to udp:1.2.3.4", "unknown sink");
#if !ND_HAVE_DPDK
    EXPECT(2, "replay --series replay_cli.csv --bin 100ms --to 'dpdk:--no-pci'",
           "this build has no DPDK");
#endif
    EXPECT(2, "replay --series replay_cli.csv --bin 100ms --to pcap:x.pcap --speed fast",
           "--speed");
    EXPECT(2, "replay --series replay_cli.csv --bin 100ms", "no sink");
    EXPECT(2, "replay --to pcap:x.pcap", "no input");
    EXPECT(1, "replay --series missing.csv --bin 1s --to pcap:x.pcap", "missing.csv");

    /* Ctrl-C in the middle of an endless replay: exit 0, a valid pcap */
    const char *endless[] = {"replay", "--series", "replay_cli.csv",           "--bin",
                             "100ms",  "--to",     "pcap:replay_cli_int.pcap", "--loop",
                             "0",      NULL};
    CHECK_EQ(tcli_interrupt("replay_cli_int.err", endless, 300), 0);
    CHECK_CONTAINS(tcli_err, "stopped by signal");
    CHECK(tpcap_read("replay_cli_int.pcap", NULL) > 1000);
    CHECK_EQ(test_sh("! ls -A | grep -q '^\\.replay_cli_int'"), 0); /* renamed, not left */
    unlink("replay_cli_int.pcap");                                  /* large */
    printf("replay cli: ok\n");
    return 0;
}
