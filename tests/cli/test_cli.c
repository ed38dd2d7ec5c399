/*
 * test_cli.c — the netdiffus program as a person meets it: --help everywhere, exit codes
 * (0 ok, 1 runtime failure, 2 usage or config error), every subcommand without its input,
 * `inspect` on good, missing, foreign, truncated and corrupt files and on configs, and
 * the options as getopt_long reads them (--opt=value, `--`, errors).
 */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/tmpdir.h"
#include "check.h"
#include "nd.h"
#include "run_cli.h"

static void test_help(void)
{
    EXPECT(0, "--help");
    CHECK_CONTAINS(out_text, "usage: netdiffus");
    CHECK_CONTAINS(out_text, "exit codes");
    char *help = strdup(out_text);
    EXPECT(0, "-h");
    EXPECT(0, "help", "inspect");
    CHECK_CONTAINS(out_text, "usage: netdiffus inspect");

    /* Every command listed by --help answers its own --help with a usage line, and run
     * with nothing to work on it says what is missing and points at --help (exit 2). */
    int commands = 0;
    char *list = strstr(help, "commands:\n");
    CHECK(list);
    for (char *line = strtok(list + 10, "\n");
         line && !strncmp(line, "  ", 2) && line[2] != ' '; line = strtok(NULL, "\n")) {
        char name[32];
        CHECK_EQ(sscanf(line, " %31s", name), 1);
        char usage[64], hint[64];
        snprintf(usage, sizeof usage, "usage: netdiffus %s", name);
        snprintf(hint, sizeof hint, "Try 'netdiffus %s --help'", name);
        EXPECT(0, name, "--help");
        if (strstr(out_text, "%%")) CHECK_FAIL_("%s --help prints '%%%%'", name);
        CHECK_CONTAINS(out_text, usage);
        EXPECT(0, name, "-h");
        CHECK_CONTAINS(out_text, usage);
        EXPECT(2, name);
        CHECK_CONTAINS(err_text, hint);
        commands++;
    }
    CHECK_INT(commands, >=, 10); /* the ten of the first release, and any added since */
    free(help);

    EXPECT(2, NULL);
    CHECK_CONTAINS(err_text, "usage: netdiffus");
    EXPECT(2, "frobnicate");
    CHECK_CONTAINS(err_text, "unknown command 'frobnicate'");
    EXPECT(2, "-v");
}

/* --version: the version, the commit (a hash, or "unknown" outside git) and date, and
 * the features; ND_CPU forces a lower kernel level and a bad one is refused (exit 2). */
static void test_version(void)
{
    char *outer = getenv("ND_CPU") ? strdup(getenv("ND_CPU")) : NULL;
    unsetenv("ND_CPU");
    EXPECT(0, "--version");
    CHECK_CONTAINS(out_text, "netdiffus 0.");
    CHECK_CONTAINS(out_text, " (commit ");
    CHECK_CONTAINS(out_text, ", built 2");
    CHECK_CONTAINS(out_text, ND_HAVE_DPDK ? "DPDK yes" : "DPDK no");
    CHECK_CONTAINS(out_text, ND_HAVE_MPI ? "MPI yes" : "MPI no");
    CHECK_CONTAINS(out_text, "CPU kernels: compiled generic");
    CHECK_CONTAINS(out_text, "(the best this CPU has)");
    CHECK_CONTAINS(out_text, "OpenBLAS: OpenBLAS ");
    setenv("ND_CPU", "generic", 1);
    EXPECT(0, "--version");
    CHECK_CONTAINS(out_text, "selected generic (forced by ND_CPU)");
    setenv("ND_CPU", "avx2", 1);
    EXPECT(2, "inspect", "--config", "/nonexistent.yaml");
    CHECK_CONTAINS(err_text, "ND_CPU=avx2: expected generic, avx512 or avx512bf16");
    if (outer) setenv("ND_CPU", outer, 1);
    else unsetenv("ND_CPU");
    free(outer);
}

/* A small dataset file (two classes, statistics, a counter, a config): its path. */
static const char *make_dataset(void)
{
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(2, names, 4, ND_NS_PER_SEC / 2);
    CHECK(ds);
    int web = nd_dataset_class(ds, "web"), dns = nd_dataset_class(ds, "dns");
    float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 0; i < 3; i++)
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)web, (uint64_t)i, w), 0);
    CHECK_EQ(nd_dataset_append(ds, (uint16_t)dns, 9, w), 0);
    nd_class_stats *s = &ds->stats[web];
    s->flows = 3;
    s->l4_flows[ND_L4_TCP] = 3;
    s->port[0] = 443;
    s->port_count[0] = 3;
    s->size_hist[ND_DOWN][1500] = 10;
    s->size_hist[ND_UP][60] = 10;
    nd_dataset_count(ds, "parse.truncated_ipv4", 2);
    nd_dataset_set_config(ds, "capture:\n  bin: 500ms\n");
    const char *ndd = tmp_path("data.ndd");
    nd_error e = {0};
    if (nd_dataset_save(ds, ndd, &e)) CHECK_FAIL_("%s", e.msg);
    nd_dataset_free(ds);
    return ndd;
}

static void test_inspect(void)
{
    /* Usage errors. */
    EXPECT(2, "inspect");
    CHECK_CONTAINS(err_text, "no file given");
    EXPECT(2, "inspect", "--bogus");
    CHECK_CONTAINS(err_text, "unknown option '--bogus'");
    EXPECT(2, "inspect", "--config");
    EXPECT(2, "inspect", "--config", "a.yaml", "b.ndd");

    /* A dataset file. */
    const char *ndd = make_dataset();
    EXPECT(0, "inspect", ndd);
    CHECK_CONTAINS(out_text, "netdiffus dataset file (kind NDDS), format version 1");
    CHECK_CONTAINS(out_text, "windows: 4, L = 4 bins of 500ms (2s per window), C = 2 channels: "
                             "bytes_down bytes_up");
    CHECK_CONTAINS(out_text, "classes: 2");
    CHECK_CONTAINS(out_text, "  web  ");
    CHECK_CONTAINS(out_text, " 3 windows (75.0%)");
    CHECK_CONTAINS(out_text, "flows 3 (tcp 100%, udp 0%, other 0%; ipv6 0%)");
    CHECK_CONTAINS(out_text, "top ports 443 (100%)");
    CHECK_CONTAINS(out_text, "down 10 packets, mean 1500.0 bytes");
    CHECK_CONTAINS(out_text, "up   10 packets, mean 60.0 bytes");
    CHECK_CONTAINS(out_text, "no traffic statistics");
    CHECK_CONTAINS(out_text, "parse.truncated_ipv4");
    CHECK_CONTAINS(out_text, "config: 22 bytes of YAML embedded");
    CHECK_CONTAINS(out_text, "META");
    CHECK_CONTAINS(out_text, "VALS");
    fprintf(stderr, "--- inspect output ---\n%s----------------------\n", out_text);

    /* Missing, foreign, truncated and corrupt files: 1, with the reason. */
    EXPECT(1, "inspect", tmp_path("missing.ndd"));
    CHECK_CONTAINS(err_text, "missing.ndd: cannot open: No such file or directory");
    const char *txt = tmp_path("notes.txt");
    write_bytes(txt, "just some text\n", 15);
    EXPECT(1, "inspect", txt);
    CHECK_CONTAINS(err_text, "notes.txt: not a netdiffus dataset or model file");
    size_t n;
    unsigned char *bytes = read_bytes(ndd, &n);
    const char *cut = tmp_path("cut.ndd");
    write_bytes(cut, bytes, n / 2);
    EXPECT(1, "inspect", cut);
    CHECK_CONTAINS(err_text, "truncated");
    bytes[n - 3] ^= 0x40; /* inside the last section (CONF) */
    write_bytes(cut, bytes, n);
    EXPECT(1, "inspect", cut);
    CHECK_CONTAINS(err_text, "corrupt: section 'CONF'");
    free(bytes);
    /* Several files: each reported, the worst exit code wins. */
    EXPECT(1, "inspect", ndd, txt);
    CHECK_CONTAINS(out_text, "windows: 4");
    CHECK_CONTAINS(err_text, "notes.txt");

    /* Configs: effective config for a good one, 2 for bad ones, 1 for a missing one. */
    const char *good = tmp_path("good.yaml"), *bad = tmp_path("bad.yaml"),
               *unknown = tmp_path("unknown.yaml");
    write_bytes(good, "capture:\n  bin: 250ms\n", 22);
    write_bytes(bad, "capture:\n  bin: [\n", 18);
    write_bytes(unknown, "capture:\n  bins: 1s\n", 20);
    EXPECT(0, "inspect", "--config", good);
    CHECK_CONTAINS(out_text, "capture:");
    CHECK_CONTAINS(out_text, "bin: 250ms");
    EXPECT(0, "inspect", "-c", good);
    EXPECT(2, "inspect", "--config", bad);
    CHECK_CONTAINS(err_text, "bad.yaml:");
    EXPECT(2, "inspect", "--config", unknown);
    CHECK_CONTAINS(err_text, "unknown.yaml:2:");
    EXPECT(1, "inspect", "--config", tmp_path("missing.yaml"));
    CHECK_CONTAINS(err_text, "missing.yaml");
    /* class filters as capture compiles them: one it refuses is an invalid config here */
    const char *bpf = tmp_path("bpf.yaml");
    static const char bad_bpf[] = "classes:\n  - {name: web, filter: \"tcp port 443\"}\n"
                                  "  - {name: dns, filter: \"udp port 53 and and\"}\n";
    write_bytes(bpf, bad_bpf, sizeof bad_bpf - 1);
    EXPECT(2, "inspect", "--config", bpf);
    CHECK_CONTAINS(err_text, "bpf.yaml: class 'dns': filter \"udp port 53 and and\": ");
    CHECK(!strstr(out_text, "classes:"));
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* getopt_long everywhere: --opt=value, attached short values, abbreviations, `--` ending
 * options, global options anywhere; unknown options, missing and stray values, numbers
 * with junk: exit 2 with the command's hint. */
static void test_options(void)
{
    size_t n;
    unsigned char *bytes = read_bytes(make_dataset(), &n);
    CHECK(!chdir(tmp_dir())); /* relative names that look like options */
    write_bytes("data.ndd", bytes, n);

    /* --opt=value, -ovalue, an abbreviation, global options between */
    EXPECT(0, "export", "data.ndd", "--csv=a.csv");
    CHECK(exists("a.csv"));
    EXPECT(0, "export", "-ob.csv", "data.ndd");
    CHECK(exists("b.csv"));
    EXPECT(0, "export", "--out", "c.csv", "-q", "data.ndd");
    CHECK(exists("c.csv"));
    CHECK(!strstr(err_text, "windows")); /* -q after the command: no info line */
    EXPECT(0, "render", "data.ndd", "--count=2", "-v", "--png=p.png");
    CHECK(exists("p.png"));
    EXPECT(0, "import", "--format=csv", "--set=capture.bin=2s", "a.csv", "--output=back.ndd");
    EXPECT(0, "inspect", "back.ndd");
    CHECK_CONTAINS(out_text, "L = 4 bins of 2s");

    /* `--`: what follows is a file, even named like an option (global ones included) */
    write_bytes("--config", bytes, n);
    write_bytes("-v", bytes, n);
    write_bytes("--help", bytes, n);
    EXPECT(0, "inspect", "--", "--config", "-v", "--help");
    CHECK_CONTAINS(out_text, "windows: 4");
    CHECK(!strstr(out_text, "usage:"));
    EXPECT(0, "export", "--csv", "d.csv", "--", "-v");
    CHECK(exists("d.csv"));
    EXPECT(2, "export", "--csv", "e.csv", "--", "data.ndd", "--help");
    CHECK_CONTAINS(err_text, "one input only ('data.ndd' and '--help')");
    free(bytes);

    /* unknown options, missing values, values to options without one, ambiguity */
    EXPECT(2, "export", "data.ndd", "--bogus=1", "--csv", "x.csv");
    CHECK_CONTAINS(err_text, "netdiffus export: unknown option '--bogus'");
    CHECK_CONTAINS(err_text, "Try 'netdiffus export --help'.");
    EXPECT(2, "sample", "m.ndm", "-x");
    CHECK_CONTAINS(err_text, "unknown option '-x'");
    EXPECT(2, "export", "data.ndd", "--csv");
    CHECK_CONTAINS(err_text, "--csv needs a value");
    EXPECT(2, "export", "data.ndd", "-o");
    CHECK_CONTAINS(err_text, "-o needs a value");
    EXPECT(2, "render", "data.ndd", "--png", "p.png", "--cou");
    CHECK_CONTAINS(err_text, "--count needs a value");
    EXPECT(2, "train", "data.ndd", "-o", "m.ndm", "--resume=yes");
    CHECK_CONTAINS(err_text, "--resume takes no value");
    EXPECT(2, "capture", "--c", "x", "-o", "x.ndd");
    CHECK_CONTAINS(err_text, "ambiguous option '--c' (--config, --class?)");
    EXPECT(2, "replay", "m.ndm", "--to", "pcap:x.pcap", "--flows=3", "stray");
    CHECK_CONTAINS(err_text, "unexpected argument 'stray'");
    EXPECT(2, "live", "-c", "x.yaml", "--set");
    CHECK_CONTAINS(err_text, "--set needs a value");

    /* numbers: the whole text */
    EXPECT(2, "render", "data.ndd", "--png=p.png", "--count=3x");
    CHECK_CONTAINS(err_text, "--count 3x");
    EXPECT(2, "render", "data.ndd", "--png=p.png", "--count=");
    EXPECT(2, "replay", "m.ndm", "--to=pcap:x.pcap", "--flows= 3");
    CHECK_CONTAINS(err_text, "--flows: expected a whole number");
    EXPECT(2, "replay", "m.ndm", "--to=pcap:x.pcap", "--seed=-1");
    EXPECT(2, "eval", "--real=a.csv", "--synth=a.csv", "--threads=2.5");
    CHECK_CONTAINS(err_text, "--threads 2.5: expected a number >= 0");
    EXPECT(2, "train", "data.ndd", "-o", "m.ndm", "-c", "x.yaml", "--minutes=nan");
    EXPECT(2, "sample", "m.ndm", "--count=2", "--csv=s.csv", "--guidance=1,5");
    CHECK(!chdir("/"));
}

int main(void)
{
    test_help();
    test_version();
    test_inspect();
    test_options();
    free(out_text);
    free(err_text);
    printf("cli: ok\n");
    return 0;
}
