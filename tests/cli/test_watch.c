/*
 * test_watch.c — the figures of long capture and replay runs while they go: --stats lines
 * and the --metrics-port endpoint on 127.0.0.1. A capture reads a pcap through a FIFO the
 * test holds open, so that the run lasts until the test closes it; a replay sends to the
 * loopback interface in real time (root only) until SIGINT. During each run the endpoint
 * serves Prometheus text with # HELP and # TYPE for every series and 404 for another
 * path; after it, every --stats line parses as JSON, only the last says "final": true,
 * and its counters are those of the run's --json summary.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../base/tmpdir.h"
#include "../capture/pktgen.h"
#include "check.h"
#include "http_fetch.h"
#include "json_check.h"

static char ans[1 << 20];

/* netdiffus with args (a shell word list), stdout to out, stderr to err. */
static pid_t spawn(const char *args, const char *out, const char *err)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s %s >%s 2>%s", ND_BINARY, args, out, err);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The value of the sample "family VALUE" in ans, or -1 when there is none. */
static double metric_value(const char *family)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s ", family);
    const char *at = strstr(ans, key);
    return at ? strtod(at + strlen(key), NULL) : -1;
}

/* Waits until the endpoint on port serves family, with a value above 0 when `counted`
 * (the run has sent something, so that a stop then has something to report); fails when
 * the run pid ends first (its stderr in err). */
static void wait_metrics(int port, pid_t pid, const char *family, int counted, const char *err)
{
    for (;;) {
        if (http_fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0 &&
            metric_value(family) >= 0 && (!counted || metric_value(family) > 0))
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            size_t n;
            char *t = (char *)read_bytes(err, &n);
            CHECK_FAIL_("the run ended (status %d) before its endpoint served %s:\n%s", st,
                        family, t);
        }
        usleep(20000);
    }
}

/* The endpoint while the run goes: every series described, other paths 404. */
static void check_endpoint(int port)
{
    CHECK_CONTAINS(ans, "HTTP/1.0 200 OK");
    http_check_prometheus(ans);
    CHECK(http_fetch(port, "GET /stats HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 404 Not Found");
}

static int exit_code(pid_t pid)
{
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* The stats lines against the --json summary: keys (a Python list of the counters that
 * must be equal). */
static void check_stats(const char *stats, const char *summary, const char *keys)
{
    char expr[1024];
    snprintf(expr, sizeof expr,
             "len(d) >= 1 and [l['final'] for l in d] == [False] * (len(d) - 1) + [True] and "
             "all(l['t'] >= 0 for l in d) and "
             "all(d[-1][k] == json.load(open('%s'))[k] for k in %s)",
             summary, keys);
    CHECK(json_holds(stats, 1, expr));
}

static void capture(int port)
{
    char pcap[512], fifo[512], out[512], err[512], stats[512], ndd[512], args[4096];
    snprintf(pcap, sizeof pcap, "%s", tmp_path("mix.pcap"));
    snprintf(fifo, sizeof fifo, "%s", tmp_path("mix.fifo"));
    snprintf(out, sizeof out, "%s", tmp_path("capture.json"));
    snprintf(err, sizeof err, "%s", tmp_path("capture.err"));
    snprintf(stats, sizeof stats, "%s", tmp_path("capture.jsonl"));
    snprintf(ndd, sizeof ndd, "%s", tmp_path("capture.ndd"));
    write_mixed_pcap(pcap, 40, 2000, 20, 7);
    CHECK_EQ(mkfifo(fifo, 0600), 0);
    snprintf(args, sizeof args,
             "capture --source pcap:%s -o %s --json --stats %s --metrics-port %d", fifo, ndd,
             stats, port);
    pid_t pid = spawn(args, out, err);
    int w = open(fifo, O_WRONLY); /* until the capture opens it */
    CHECK(w >= 0);
    size_t len;
    unsigned char *bytes = read_bytes(pcap, &len);
    CHECK(write(w, bytes, len) == (ssize_t)len);
    free(bytes);
    /* the run goes on while the FIFO is open */
    /* (a capture from a FIFO counts its packets once libpcap's buffer is read) */
    wait_metrics(port, pid, "netdiffus_capture_packets_total", 0, err);
    check_endpoint(port);
    close(w);
    CHECK_EQ(exit_code(pid), 0);
    CHECK(json_holds(out, 0,
                     "d['packets'] == d['source']['received'] >= 2000 and d['windows'] > 0 and "
                     "d['flows'] > 0 and 'flow.evicted' in d['counters']"));
    check_stats(stats, out,
                "['packets', 'bytes', 'skipped', 'flows', 'windows', 'classes', 'counters', "
                "'source']");
}

static void replay(int port)
{
    char csv[512], out[512], err[512], stats[512], args[4096];
    snprintf(csv, sizeof csv, "%s", tmp_path("series.csv"));
    snprintf(out, sizeof out, "%s", tmp_path("replay.json"));
    snprintf(err, sizeof err, "%s", tmp_path("replay.err"));
    snprintf(stats, sizeof stats, "%s", tmp_path("replay.jsonl"));
    FILE *f = fopen(csv, "w");
    CHECK(f);
    fputs("class", f);
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 8; b++) fprintf(f, ",%s_%d", c ? "bytes_up" : "bytes_down", b);
    fputc('\n', f);
    for (int w = 0; w < 4; w++) {
        fputs("web", f);
        for (int i = 0; i < 16; i++) fprintf(f, ",%d", 3000 + 100 * i);
        fputc('\n', f);
    }
    fclose(f);
    /* real time on the loopback interface, until SIGINT */
    snprintf(args, sizeof args,
             "replay --series %s --to iface:lo --bin 100ms --loop 0 --duration 10m --json "
             "--stats %s --metrics-port %d",
             csv, stats, port);
    pid_t pid = spawn(args, out, err);
    wait_metrics(port, pid, "netdiffus_replay_packets_total", 1, err);
    check_endpoint(port);
    kill(pid, SIGINT);
    CHECK_EQ(exit_code(pid), 0);
    CHECK(json_holds(out, 0, "d['interrupted'] is True and d['flows'] > 0 and 'drops' in d"));
    check_stats(stats, out, "['flows', 'packets', 'bytes', 'drops', 'capped_bins']");
}

int main(void)
{
    int port = 20000 + (int)((getpid() * 13) % 20000);
    capture(port);
    if (geteuid() != 0) {
        printf("skipped the replay part: injecting on lo needs root\n");
        return 77;
    }
    replay(port + 1);
    return 0;
}
