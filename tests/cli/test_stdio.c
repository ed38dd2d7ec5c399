/*
 * test_stdio.c — "-" for standard input and output, in pipelines as a person writes them
 * (bash with pipefail): a pcap piped into `capture --source pcap:-`, `export - --csv -`,
 * `import ... - -o -`, `inspect -`, `replay --series - --to pcap:-` into `tcpdump -r -` and
 * into `capture --source pcap:-`, `replay - --to pcap:-` from a model on standard input,
 * `sample --csv -` (whole counts, nothing but CSV on standard output) and `--ndd -`; each
 * gives the bytes the same command gives with files. Two inputs or two outputs on "-",
 * and `train -o -`, are refused (exit 2).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../base/tmpdir.h"
#include "../capture/pktgen.h"

static char err_text[1 << 16];

/* Runs cmd with bash -o pipefail in the scratch folder, $ND the program; its stderr in
 * err_text. Returns the exit code. */
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    CHECK(n > 0 && (size_t)n < sizeof cmd);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(tmp_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(tmp_dir())) _exit(126);
        dup2(fd, 2);
        setenv("ND", ND_BINARY, 1);
        execl("/bin/bash", "bash", "-o", "pipefail", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    FILE *f = fopen(tmp_path("stderr.txt"), "r");
    size_t got = f ? fread(err_text, 1, sizeof err_text - 1, f) : 0;
    err_text[got] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define SH_OK(...)                                                                             \
    do {                                                                                       \
        int rc_ = sh(__VA_ARGS__);                                                             \
        if (rc_) CHECK_FAIL_("exit %d:\n%s", rc_, err_text);                                   \
    } while (0)

/* The same bytes in the two scratch files a and b. */
static void check_same(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = read_bytes(tmp_path(a), &na), *y = read_bytes(tmp_path(b), &nb);
    CHECK(x && y);
    if (na != nb || memcmp(x, y, na)) CHECK_FAIL_("%s and %s differ", a, b);
    CHECK(na > 0);
    free(x);
    free(y);
}

/* Captured windows through pipes: dataset and CSV in and out, pcap in and out. */
static void test_capture_pipes(void)
{
    write_mixed_pcap(tmp_path("mix.pcap"), 12, 600, 30, 3);
    SH_OK("cat mix.pcap | $ND capture --source pcap:- --class web -o cap.ndd");
    SH_OK("$ND capture --source pcap:mix.pcap --class web -o ref.ndd");
    SH_OK("$ND export - --csv - < cap.ndd > a.csv");
    SH_OK("$ND export ref.ndd --csv b.csv");
    check_same("a.csv", "b.csv");
    /* a CSV in, a dataset out through a temporary file, read back from a pipe */
    SH_OK("$ND import --format csv - -o - < a.csv | $ND export - --csv c.csv");
    check_same("a.csv", "c.csv");
    SH_OK("$ND capture --source pcap:mix.pcap --class web -o - | $ND inspect - > i.txt");
    char *inspect = (char *)read_bytes(tmp_path("i.txt"), &(size_t){0});
    CHECK_CONTAINS(inspect, "web");
    free(inspect);

    /* replay to standard output: tcpdump reads it, and capture does */
    SH_OK("$ND replay --series a.csv --bin 1s --to pcap:r.pcap");
    SH_OK("$ND replay --series - --bin 1s --to pcap:- < a.csv > s.pcap");
    check_same("r.pcap", "s.pcap");
    SH_OK("$ND replay --series - --bin 1s --to pcap:- < a.csv | tcpdump -r - -nn > td1.txt");
    SH_OK("tcpdump -r r.pcap -nn > td2.txt");
    check_same("td1.txt", "td2.txt");
    SH_OK(
        "$ND replay --series a.csv --bin 1s --to pcap:- | $ND capture --source pcap:- --class web "
        "-o back.ndd && $ND export back.ndd --csv back.csv");
    SH_OK("$ND capture --source pcap:r.pcap --class web -o back2.ndd && "
          "$ND export back2.ndd --csv back2.csv");
    check_same("back.csv", "back2.csv");
    /* the human messages go to standard error, the pcap alone to standard output */
    SH_OK("$ND replay --series a.csv --bin 1s --to pcap:- > p.pcap");
    CHECK_CONTAINS(err_text, "packets");
    size_t len;
    unsigned char *pcap = read_bytes(tmp_path("p.pcap"), &len);
    CHECK(len > 24 && !memcmp(pcap, "\x4d\x3c\xb2\xa1", 4)); /* ns pcap, little-endian */
    free(pcap);
    check_same("p.pcap", "r.pcap");

    /* one input and one output at most on "-" */
    CHECK_EQ(sh("$ND eval --real - --synth - < a.csv"), 2);
    CHECK_CONTAINS(err_text, "standard input is already read");
    CHECK_EQ(sh("cat mix.pcap | $ND capture --source pcap:- --source pcap:- -o x.ndd"), 2);
    CHECK_CONTAINS(err_text, "pcap:- twice");
    CHECK_EQ(sh("ls x.ndd x.partial.ndd 2>/dev/null"), 2); /* refused before reading */
}

/* A tiny model: sampled and replayed to standard output, read from standard input. */
static void test_model_pipes(void)
{
    FILE *f = fopen(tmp_path("tiny.yaml"), "w");
    CHECK(f);
    fprintf(f, "capture: {window: 8, min_active_bins: 1}\n"
               "model: {base_channels: 8, channel_mult: [1, 2], res_blocks: 1, attn_min_res: "
               "0,\n        groups: 4, emb_dim: 16, max_classes: 4, threads: 1}\n"
               "train: {steps: 10, batch: 4, checkpoint_every: 0, val_fraction: 0.2}\n"
               "sample: {steps: 3, batch: 8, calibrate: 8}\n");
    fclose(f);
    SH_OK("$ND capture -c tiny.yaml --source pcap:mix.pcap --class web -o w.ndd");
    CHECK_EQ(sh("$ND train -c tiny.yaml w.ndd -o -"), 2);
    CHECK_CONTAINS(err_text, "-o -");
    SH_OK("$ND train -c tiny.yaml - -o m.ndm < w.ndd");

    SH_OK("$ND replay m.ndm --flows 4 --to pcap:rm.pcap");
    SH_OK("$ND replay - --flows 4 --to pcap:- < m.ndm > sm.pcap");
    check_same("rm.pcap", "sm.pcap");
    SH_OK("$ND replay m.ndm --flows 4 --to pcap:- | tcpdump -r - -nn > t1.txt");
    SH_OK("tcpdump -r rm.pcap -nn > t2.txt");
    check_same("t1.txt", "t2.txt");

    /* sample --csv -: nothing but the CSV on standard output, and whole counts */
    SH_OK("$ND sample m.ndm --count 3 --csv - > s.csv");
    SH_OK("$ND sample m.ndm --count 3 --csv s2.csv");
    check_same("s.csv", "s2.csv");
    char *csv = (char *)read_bytes(tmp_path("s.csv"), &(size_t){0});
    CHECK(!strncmp(csv, "class,bytes_down_0,", 19));
    int rows = 0;
    for (char *line = strchr(csv, '\n') + 1; *line; line = strchr(line, '\n') + 1, rows++)
        for (char *v = strchr(line, ','); v && v < strchr(line, '\n'); v = strchr(v + 1, ','))
            if (strspn(v + 1, "0123456789") != strcspn(v + 1, ",\n"))
                CHECK_FAIL_("not a whole count: %.20s", v + 1);
    CHECK_EQ(rows, 3);
    free(csv);
    SH_OK("$ND sample m.ndm --count 2 --ndd - | $ND inspect - > si.txt");
    char *si = (char *)read_bytes(tmp_path("si.txt"), &(size_t){0});
    CHECK_CONTAINS(si, "web");
    free(si);
    CHECK_EQ(sh("$ND sample m.ndm --count 2 --csv - --raw-csv -"), 2);
    CHECK_CONTAINS(err_text, "standard output carries one");
}

int main(void)
{
    test_capture_pipes();
    test_model_pipes();
    return 0;
}
