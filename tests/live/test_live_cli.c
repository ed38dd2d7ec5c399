/*
 * test_live_cli.c — `netdiffus live` end to end on a generated two-class pcap file played
 * through the capture thread: usage errors and exit codes; a run to --steps with every
 * window accounted for (captured = taken by the ring + dropped, all taken trained on);
 * while a paced run goes on, `netdiffus replay CHECKPOINT` reads the checkpoint live
 * keeps rewriting and the Prometheus endpoint answers on 127.0.0.1; SIGINT ends it
 * within a second with a last checkpoint; --resume continues step and reservoirs.
 */
#include <sys/stat.h>

#include "live_test.h"

static char nd[1024];

static int run_nd(const char *args)
{
    return test_sh("%s %s >>%s 2>&1", nd, args, tmp_path("log.txt"));
}

static int fetch_metrics(int port, char *buf, size_t len)
{
    return http_fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, len);
}

/* Clients that send a request and reset the connection before the answer (SO_LINGER 0:
 * RST on close), so that live's answer meets a closed socket: EPIPE, not SIGPIPE. */
static void reset_clients(int port, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = http_connect(port);
        CHECK(fd >= 0);
        const char *req = "GET /metrics HTTP/1.0\r\n\r\n";
        CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
        struct linger lg = {1, 0};
        CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(fd);
    }
}

static double wait_for(const char *stats, const char *key, double at_least, double seconds,
                       pid_t pid)
{
    double t0 = live_now(), v = NAN;
    while (live_now() - t0 < seconds) {
        v = live_json(live_last_line(stats), key);
        if (v >= at_least) return v;
        int st;
        if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid)
            CHECK_FAIL_("live exited early (status %d); log:\n%s", st,
                        live_text(tmp_path("log.txt")));
        usleep(50000);
    }
    CHECK_FAIL_("%s stayed below %g for %.0f s (last %g); log:\n%s", key, at_least, seconds, v,
                live_text(tmp_path("log.txt")));
}

int main(void)
{
    snprintf(nd, sizeof nd, "%s", ND_BINARY);
    live_files f;
    live_files_make(&f);
    const char *conf = f.conf, *ckpt = f.ckpt, *src = f.src;
    char s1[512], s2[512], s3[512];
    LIVE_PATH(s1, "s1.jsonl");
    LIVE_PATH(s2, "s2.jsonl");
    LIVE_PATH(s3, "s3.jsonl");
    char a[4096];
    struct stat st;

    /* usage and config errors: 2; a missing input: 1 */
    CHECK_EQ(run_nd("live"), 2);
    snprintf(a, sizeof a, "live -c %s --bogus", conf);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --set live.replay=true", conf);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --source iface:lo --source %s", conf, src);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --steps 0", conf);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --source pcap:%s/absent.pcap", conf, tmp_dir());
    CHECK_EQ(run_nd(a), 1);
    snprintf(a, sizeof a, "live -c %s --resume", conf); /* no checkpoint yet */
    CHECK_EQ(run_nd(a), 1);
    /* sources are all open at once: at most 8, and files, not a folder; the checkpoint
     * is rewritten as it learns: not standard output */
    int len = snprintf(a, sizeof a,
                       "live -c %s -s %s -s %s -s %s -s %s -s %s -s %s -s %s -s %s -s %s", conf,
                       src, src, src, src, src, src, src, src, src);
    CHECK(len > 0 && len < (int)sizeof a);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --source pcap:%s", conf, tmp_dir());
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --set live.checkpoint=-", conf);
    CHECK_EQ(run_nd(a), 2);
    snprintf(a, sizeof a, "live -c %s --set replay.context=4096", conf);
    CHECK_EQ(run_nd(a), 2);
    char *errors = live_text(tmp_path("log.txt"));
    CHECK_CONTAINS(errors, "9 sources, at most 8");
    CHECK_CONTAINS(errors, "is a folder");
    CHECK_CONTAINS(errors, "live.checkpoint: '-'");
    CHECK_CONTAINS(errors, "replay.context 4096: expected 0 to");
    free(errors);

    /* to a step count, as fast as the file reads: every window accounted for */
    snprintf(a, sizeof a, "live -c %s --speed 0 --steps 40 --stats %s", conf, s1);
    CHECK_EQ(run_nd(a), 0);
    const char *l = live_last_line(s1);
    CHECK_CONTAINS(l, "\"final\":true");
    CHECK_EQ(live_json(l, "step"), 40);
    CHECK_EQ(live_json(l, "checkpoint_step"), 40);
    char *said = live_text(tmp_path("log.txt"));
    CHECK_CONTAINS(said, "live: memory at most (used as it fills): flow table");
    free(said);
    double windows = live_json(l, "windows"), pushed = live_json(l, "ring_pushed");
    double dropped = live_json(l, "ring_dropped"), taken = live_json(l, "windows_taken");
    fprintf(stderr, "live: %g windows, %g through the ring, %g dropped\n", windows, pushed,
            dropped);
    CHECK(windows >= 30);
    CHECK_EQ(pushed + dropped, windows);
    CHECK_EQ(taken, pushed);
    /* packets: every one handed over by the source was fed, and the skipped ones add up
     * to their reasons (the named counters, parse.* and orphan fragments) */
    CHECK(live_json(l, "packets") > 0);
    CHECK_EQ(live_json(l, "packets"), live_json(strstr(l, "\"source\":"), "received"));
    double reasons = live_json(l, "flow.orphan_fragment");
    for (const char *p = strstr(l, "\"parse."); p; p = strstr(p + 1, "\"parse."))
        reasons += strtod(strchr(p, ':') + 1, NULL);
    CHECK_EQ(reasons, live_json(l, "skipped"));
    CHECK_EQ(live_json(l, "checkpoint_failures"), 0);
    CHECK(strstr(l, "\"bulk\":{") && strstr(l, "\"chat\":{"));
    CHECK(live_json(strstr(l, "\"bulk\":"), "model_class") >= 0); /* both learnt */
    CHECK(live_json(strstr(l, "\"chat\":"), "model_class") >= 0);
    CHECK(isfinite(live_json(l, "loss")) && live_json(l, "loss") > 0);
    snprintf(a, sizeof a, "inspect %s | grep -q 'training: 40 steps'", ckpt);
    CHECK_EQ(run_nd(a), 0);

#if ND_HAVE_DPDK
    /* a DPDK port (net_pcap over the same file): the capture thread polls it, the port
     * ends with its file, training goes on to --steps */
    char s4[512];
    LIVE_PATH(s4, "s4.jsonl");
    snprintf(a, sizeof a,
             "live -c %s --steps 20 --stats %s --set live.checkpoint=%s/dpdk.ndm "
             "--source 'dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry "
             "--file-prefix=ndlive%d --vdev=net_pcap0,rx_pcap=%s'",
             conf, s4, tmp_dir(), (int)getpid(), f.pcap);
    CHECK_EQ(run_nd(a), 0);
    l = live_last_line(s4);
    CHECK_EQ(live_json(l, "step"), 20);
    CHECK_CONTAINS(l, "\"input_done\":true");
    CHECK(live_json(l, "packets") > 1000);
#endif

    /* in-process replay: each new checkpoint is sampled and replayed to the sink (20 s:
     * under the sanitizers on a busy machine the first sampling can take most of 10) */
    char inproc[512], ck2[512];
    LIVE_PATH(inproc, "inproc.pcap");
    LIVE_PATH(ck2, "ck2.ndm");
    snprintf(a, sizeof a,
             "live -c %s --duration 20s --set live.checkpoint=%s "
             "--set live.checkpoint_every=20 --set live.replay=true --set replay.flows=4 "
             "--replay-to pcap:%s",
             conf, ck2, inproc);
    CHECK_EQ(run_nd(a), 0);
    CHECK_EQ(stat(inproc, &st), 0);
    fprintf(stderr, "live: in-process replay wrote %lld bytes\n", (long long)st.st_size);
    CHECK(st.st_size > 24 + 16 * 4);
    char *text = live_text(tmp_path("log.txt"));
    CHECK_CONTAINS(text, "live: replayed ");
    free(text);

    /* paced (4x), with metrics; replay reads the checkpoint while live rewrites it */
    int port = 20000 + (int)(getpid() % 20000);
    snprintf(a, sizeof a,
             "%s live -c %s --speed 4 --stats %s --set live.metrics_port=%d "
             "--set live.checkpoint_every=20 >>%s 2>&1",
             nd, conf, s2, port, tmp_path("log.txt"));
    pid_t pid = live_spawn(a);
    wait_for(s2, "checkpoints", 2, 60, pid);
    char rep[512];
    LIVE_PATH(rep, "rep.pcap");
    snprintf(a, sizeof a, "replay %s --flows 4 --to pcap:%s --seed 2", ckpt, rep);
    CHECK_EQ(run_nd(a), 0);
    CHECK_EQ(stat(rep, &st), 0);
    CHECK(st.st_size > 24 + 16 * 4); /* pcap header and packets */
    static char metrics[65536];
    CHECK(fetch_metrics(port, metrics, sizeof metrics) > 0);
    CHECK_CONTAINS(metrics, "HTTP/1.0 200 OK");
    CHECK_CONTAINS(metrics, "netdiffus_live_train_step ");
    CHECK_CONTAINS(metrics, "netdiffus_live_class_windows_total{class=\"bulk\"}");
    /* clients that reset the connection do not end live; only GET /metrics is served */
    reset_clients(port, 5);
    CHECK(fetch_metrics(port, metrics, sizeof metrics) > 0);
    CHECK_CONTAINS(metrics, "HTTP/1.0 200 OK");
    CHECK_EQ(waitpid(pid, NULL, WNOHANG), 0); /* still running */
    CHECK(http_fetch(port, "GET /other HTTP/1.0\r\n\r\n", metrics, sizeof metrics) > 0);
    CHECK_CONTAINS(metrics, "HTTP/1.0 404 Not Found");
    CHECK(http_fetch(port, "POST /metrics HTTP/1.0\r\n\r\n", metrics, sizeof metrics) > 0);
    CHECK_CONTAINS(metrics, "HTTP/1.0 405 Method Not Allowed");
    CHECK_CONTAINS(metrics, "Allow: GET, HEAD");
    /* SIGINT: out within a second, with a last checkpoint */
    live_sigint(pid, "live");
    l = live_last_line(s2);
    CHECK_CONTAINS(l, "\"final\":true");
    double step_b = live_json(l, "step");
    CHECK_EQ(live_json(l, "checkpoint_step"), step_b);
    double bulk_b = live_json(strstr(l, "\"bulk\":"), "windows");
    CHECK(fetch_metrics(port, metrics, sizeof metrics) < 0); /* the endpoint is gone */

    /* --resume: the step and the reservoirs go on from the checkpoint */
    snprintf(a, sizeof a, "live -c %s --resume --speed 0 --steps %.0f --stats %s", conf,
             step_b + 30, s3);
    CHECK_EQ(run_nd(a), 0);
    l = live_last_line(s3);
    CHECK_EQ(live_json(l, "step"), step_b + 30);
    double bulk_c = live_json(strstr(l, "\"bulk\":"), "windows");
    CHECK(bulk_c > bulk_b); /* restored count plus this run's windows */
    char *log = live_text(tmp_path("log.txt"));
    CHECK_CONTAINS(log, "live: resuming");
    free(log);
    return 0;
}
