/*
 * test_replay_cli.c — `netdiffus replay` as a user runs it: series CSV and dataset file
 * in, pcap out, same seed ⇒ same file; exit codes and messages of the errors (unknown
 * class, full disk, missing interface, bad options, a missing model file); Ctrl-C in
 * the middle of an endless replay stops it with a valid pcap.
 */
#include <pcap/pcap.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "replay_test.h"

static char err_text[8192];

/* Runs netdiffus with args (a shell fragment); returns the exit code, stderr in err_text. */
static int nd(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>replay_cli.err >/dev/null", ND_BINARY, args);
    int st = system(cmd);
    FILE *f = fopen("replay_cli.err", "r");
    CHECK(f);
    size_t n = fread(err_text, 1, sizeof err_text - 1, f);
    err_text[n] = 0;
    fclose(f);
    CHECK(WIFEXITED(st));
    return WEXITSTATUS(st);
}

#define EXPECT(code, args, needle)                                                       \
    do {                                                                                 \
        int rc_ = nd(args);                                                              \
        if (rc_ != (code)) CHECK_FAIL_("netdiffus %s: exit %d, expected %d; stderr:\n%s", \
                                       args, rc_, code, err_text);                       \
        CHECK_CONTAINS(err_text, needle);                                                \
    } while (0)

static int same_file(const char *a, const char *b)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    return system(cmd) == 0;
}

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
        for (int i = 0; i < 16; i++) fprintf(f, ",%llu", (unsigned long long)trng_below(&r, 90000));
        fputc('\n', f);
    }
    fclose(f);

    EXPECT(0, "replay --series replay_cli.csv --to pcap:replay_cli1.pcap --seed 4 --bin 100ms",
           "6 flows");
    CHECK_CONTAINS(err_text, "no statistics"); /* a CSV has none: the defaults are said */
    EXPECT(0, "replay --series replay_cli.csv --to pcap:replay_cli2.pcap --seed 4 --bin 100ms", "");
    EXPECT(0, "replay --series replay_cli.csv --to pcap:replay_cli3.pcap --seed 5 --bin 100ms", "");
    CHECK(same_file("replay_cli1.pcap", "replay_cli2.pcap"));
    CHECK(!same_file("replay_cli1.pcap", "replay_cli3.pcap"));
    CHECK(tpcap_read("replay_cli1.pcap", NULL) > 100);
    EXPECT(0, "replay --series replay_cli.csv --to pcap:replay_cli4.pcap --class video --flows 7 "
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
    CHECK(!strstr(err_text, "no statistics"));
    CHECK(tpcap_read("replay_cli5.pcap", NULL) > 100);

    /* errors: clear message, exit 1 for runtime failures, 2 for usage */
    EXPECT(1, "replay missing.ndm --to pcap:x.pcap", "missing.ndm"); /* model path: test_replay_model */
    EXPECT(2, "replay --series replay_cli.csv --to pcap:x.pcap --class nope",
           "unknown class 'nope' (the data has: web, video)");
    EXPECT(1, "replay --series replay_cli.csv --to pcap:/dev/full", "No space left on device");
    EXPECT(1, "replay --series replay_cli.csv --to iface:nd-no-such0", "no such interface");
    EXPECT(2, "replay --series replay_cli.csv --to udp:1.2.3.4", "unknown sink");
    EXPECT(2, "replay --series replay_cli.csv --to pcap:x.pcap --speed fast", "--speed");
    EXPECT(2, "replay --series replay_cli.csv", "no sink");
    EXPECT(2, "replay --to pcap:x.pcap", "no input");
    EXPECT(1, "replay --series missing.csv --to pcap:x.pcap", "missing.csv");

    /* Ctrl-C in the middle of an endless replay: exit 0, a valid pcap */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!freopen("replay_cli_int.err", "w", stderr)) _exit(99);
        execl(ND_BINARY, ND_BINARY, "replay", "--series", "replay_cli.csv", "--to",
              "pcap:replay_cli_int.pcap", "--loop", "0", (char *)NULL);
        _exit(98);
    }
    usleep(300000);
    CHECK_EQ(kill(pid, SIGINT), 0);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    f = fopen("replay_cli_int.err", "r");
    CHECK(f);
    size_t n = fread(err_text, 1, sizeof err_text - 1, f);
    err_text[n] = 0;
    fclose(f);
    CHECK_CONTAINS(err_text, "stopped by signal");
    CHECK(tpcap_read("replay_cli_int.pcap", NULL) > 1000);
    unlink("replay_cli_int.pcap"); /* large */
    printf("replay cli: ok\n");
    return 0;
}
