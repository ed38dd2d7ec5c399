/*
 * test_live_remote.c — `live` across hosts, shown with processes on this machine (all
 * traffic on 127.0.0.1): a trainer (`live --listen`, no capture of its own) and two
 * capture processes that stream their windows to it (`capture -o tcp:`), each a class of
 * its own from a pcap of its own. The trainer learns both (per-sender window counts in
 * its --stats and metrics equal what each sender says the trainer took; both classes in
 * the checkpoint), a replay process fetches the checkpoint from the trainer's endpoint
 * (http://127.0.0.1:PORT/model.ndm) and writes a pcap. Meanwhile bad peers: not a
 * stream, a newer version, an oversized frame, a reset inside a frame, a peer that never
 * says HELLO, a sender with other settings (refused, capture exits 1 with the reason);
 * the trainer goes on and ends on SIGINT with its last checkpoint.
 */
#include <sys/stat.h>

#include "live.h"
#include "live_test.h"

static char nd[1024];

static int run_nd(const char *args, const char *log)
{
    return test_sh("%s %s >>%s 2>&1", nd, args, tmp_path(log));
}

/* Sends bytes on a new connection to the trainer's stream port and returns what it
 * answers before it closes (a REFUSE frame's text after its 8-byte head). */
static const char *answer_to(int port, const void *bytes, size_t n)
{
    static char buf[4096];
    int fd = http_connect(port);
    CHECK(fd >= 0);
    CHECK(write(fd, bytes, n) == (ssize_t)n);
    int got = http_read_all(fd, buf, sizeof buf);
    close(fd);
    CHECK(got > 12);
    uint32_t type;
    memcpy(&type, buf, 4);
    CHECK_EQ(type, ND_WS_REFUSE);
    buf[got - 4] = 0; /* the CRC */
    return buf + ND_WS_FRAME_HEAD;
}

/* Waits up to `seconds` for the trainer's last stats line to satisfy ok(). */
static const char *wait_line(const char *stats, int (*ok)(const char *), double seconds,
                             pid_t trainer)
{
    double t0 = live_now();
    while (live_now() - t0 < seconds) {
        const char *l = live_last_line(stats);
        if (ok(l)) return l;
        int st;
        if (waitpid(trainer, &st, WNOHANG) == trainer)
            CHECK_FAIL_("the trainer exited (status %d); log:\n%s", st,
                        live_text(tmp_path("trainer.log")));
        usleep(100000);
    }
    CHECK_FAIL_("the trainer did not get there in %.0f s; last stats: %s\nlog:\n%s", seconds,
                live_last_line(stats), live_text(tmp_path("trainer.log")));
}

static double sender_windows(const char *l, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *p = strstr(l, "\"senders\":");
    p = p ? strstr(p, key) : NULL;
    return p ? live_json(p, "windows") : NAN;
}

/* The number after "key": in pretty-printed JSON (inspect --json); NAN when absent. */
static double pretty_num(const char *text, const char *key)
{
    char k[96];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(text, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

static double g_a, g_b; /* windows each sender says the trainer took */

static int both_taken(const char *l)
{
    return sender_windows(l, "a") == g_a && sender_windows(l, "b") == g_b &&
           live_json(l, "checkpoint_step") >= 20;
}

static int five_refused(const char *l)
{
    const char *s = strstr(l, "\"streams\":");
    return s && live_json(s, "refused") >= 5;
}

/* "N windows: M taken by the trainer" of a capture's log: M (N must equal it). */
static double taken_by_trainer(const char *log)
{
    char *text = live_text(tmp_path(log));
    const char *p = strstr(text, " windows: ");
    CHECK(p);
    const char *q = p;
    while (q > text && q[-1] >= '0' && q[-1] <= '9') q--;
    double made = strtod(q, NULL), taken = strtod(p + 10, NULL);
    CHECK_CONTAINS(p, "taken by the trainer on the last of 1 connection(s), 0 dropped");
    free(text);
    CHECK(made > 0);
    CHECK_EQ(made, taken);
    return taken;
}

int main(void)
{
    snprintf(nd, sizeof nd, "%s", ND_BINARY);
    char conf[512], ckpt[512], pa[512], pb[512], stats[512], out[512], a[4096];
    LIVE_PATH(conf, "live.yaml");
    LIVE_PATH(ckpt, "live.ndm");
    LIVE_PATH(pa, "a.pcap");
    LIVE_PATH(pb, "b.pcap");
    LIVE_PATH(stats, "stats.jsonl");
    LIVE_PATH(out, "replayed.pcap");
    live_write_two_class_pcap(pa, 6, 48, 200, 1);
    live_write_two_class_pcap(pb, 6, 48, 200, 2);
    live_write_config(conf, "", ckpt, NULL);
    int port = 20000 + (int)((getpid() * 7) % 20000), mport = port + 1;

    /* no source and nothing to listen on: a usage error */
    snprintf(a, sizeof a, "live -c %s", conf);
    CHECK_EQ(run_nd(a, "usage.log"), 2);
    snprintf(a, sizeof a, "capture -c %s -s pcap:%s -o tcp:127.0.0.1", conf, pa);
    CHECK_EQ(run_nd(a, "usage.log"), 2);
    char *said = live_text(tmp_path("usage.log"));
    CHECK_CONTAINS(said, "expected tcp:HOST:PORT");
    free(said);

    /* the trainer: windows from other hosts only */
    snprintf(a, sizeof a,
             "%s live -c %s --listen 127.0.0.1:%d --set live.metrics_port=%d "
             "--set live.checkpoint_every=20 --stats %s >%s 2>&1",
             nd, conf, port, mport, stats, tmp_path("trainer.log"));
    pid_t trainer = live_spawn(a);
    double t0 = live_now();
    int fd;
    while ((fd = http_connect(mport)) < 0 && live_now() - t0 < 30) usleep(50000);
    CHECK(fd >= 0);
    close(fd);
    /* before the first checkpoint there is no model to fetch */
    char ans[65536];
    CHECK(http_fetch(mport, "HEAD /model.ndm HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 503 Service Unavailable");
    CHECK_CONTAINS(ans, "Retry-After: 5");

    /* a peer that never says HELLO, answered at the end (the stream listener starts just
     * after the metrics server: on a loaded machine it may not be up yet) */
    int slow;
    t0 = live_now();
    while ((slow = http_connect(port)) < 0 && live_now() - t0 < 30) usleep(50000);
    CHECK(slow >= 0);
    CHECK(write(slow, "\x01", 1) == 1);

    /* two capture hosts, a class each, side by side */
    snprintf(a, sizeof a,
             "%s capture -c %s --class bulk -s pcap:%s -o tcp:127.0.0.1:%d "
             "--set live.sender_name=a >%s 2>&1",
             nd, conf, pa, port, tmp_path("a.log"));
    pid_t sa = live_spawn(a);
    snprintf(a, sizeof a,
             "%s capture -c %s --class chat -s pcap:%s -o tcp:127.0.0.1:%d "
             "--set live.sender_name=b >%s 2>&1",
             nd, conf, pb, port, tmp_path("b.log"));
    pid_t sb = live_spawn(a);
    int ra = live_wait(sa, 120), rb = live_wait(sb, 120);
    if (ra || rb)
        CHECK_FAIL_("senders exited %d, %d; logs:\n%s\n%s\ntrainer:\n%s", ra, rb,
                    live_text(tmp_path("a.log")), live_text(tmp_path("b.log")),
                    live_text(tmp_path("trainer.log")));
    g_a = taken_by_trainer("a.log");
    g_b = taken_by_trainer("b.log");
    fprintf(stderr, "senders: a %g windows, b %g windows\n", g_a, g_b);

    /* the trainer has every window of both, and trains on both classes */
    const char *l = wait_line(stats, both_taken, 120, trainer);
    CHECK(strstr(l, "\"a\":{\"addr\":\"127.0.0.1:"));
    CHECK_EQ(live_json(strstr(l, "\"senders\":"), "lost"), 0);
    CHECK_EQ(live_json(strstr(l, "\"bulk\":"), "windows"), g_a);
    CHECK_EQ(live_json(strstr(l, "\"chat\":"), "windows"), g_b);
    CHECK(live_json(strstr(l, "\"bulk\":"), "model_class") >= 0);
    CHECK(live_json(strstr(l, "\"chat\":"), "model_class") >= 0);
    CHECK(http_fetch(mport, "GET /metrics HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    char want[128];
    snprintf(want, sizeof want, "netdiffus_live_sender_windows_total{sender=\"a\"} %g\n", g_a);
    CHECK_CONTAINS(ans, want);
    snprintf(want, sizeof want, "netdiffus_live_sender_windows_total{sender=\"b\"} %g\n", g_b);
    CHECK_CONTAINS(ans, want);
    CHECK_CONTAINS(ans, "netdiffus_live_sender_connected{sender=\"a\"} 0\n");
    http_check_prometheus(ans);

    /* the checkpoint, from the trainer's endpoint: its head, then a replay host */
    CHECK(http_fetch(mport, "HEAD /model.ndm HTTP/1.0\r\n\r\n", ans, sizeof ans) > 0);
    CHECK_CONTAINS(ans, "HTTP/1.0 200 OK");
    CHECK_CONTAINS(ans, "ETag: \"");
    CHECK_CONTAINS(ans, "Content-Type: application/octet-stream");
    snprintf(a, sizeof a, "replay http://127.0.0.1:%d/model.ndm --flows 6 --to pcap:%s", mport,
             out);
    if (run_nd(a, "replay.log"))
        CHECK_FAIL_("replay of the fetched model failed:\n%s",
                    live_text(tmp_path("replay.log")));
    struct stat st;
    CHECK_EQ(stat(out, &st), 0);
    CHECK(st.st_size > 24 + 16 * 6); /* a pcap header and packets */
    snprintf(a, sizeof a, "sample http://127.0.0.1:%d/nothing.ndm --count 1 --csv -", mport);
    CHECK_EQ(run_nd(a, "replay.log"), 1);
    said = live_text(tmp_path("replay.log"));
    CHECK_CONTAINS(said, "404");
    free(said);

    /* bad peers: each costs only its connection, refused with the reason */
    CHECK_CONTAINS(answer_to(port, "GET / HTTP/1.0\r\n\r\n", 18),
                   "not a netdiffus window stream");
    uint8_t big[8] = {ND_WS_HELLO, 0, 0, 0, 0, 0, 0, 0x40}; /* a 1 GiB HELLO */
    CHECK_CONTAINS(answer_to(port, big, 8), "more than the");
    nd_dataset *h =
        nd_dataset_new(2, (const char *const[]){"bytes_down", "bytes_up"}, 16, 100000000ull);
    CHECK_EQ(nd_dataset_class(h, "bulk"), 0);
    size_t hl;
    uint8_t *hello = nd_ws_hello_new(h, "v2", 0, &hl);
    hello[ND_WS_FRAME_HEAD + 4] = hello[ND_WS_FRAME_HEAD + 5] = 0xff; /* version 65535 */
    nd_ws_frame_seal(hello, ND_WS_HELLO, hl - nd_ws_frame_size(0));
    CHECK_CONTAINS(answer_to(port, hello, hl), "window stream version 65535");
    /* a reset inside a frame */
    fd = http_connect(port);
    CHECK(fd >= 0);
    CHECK(write(fd, hello, hl / 2) == (ssize_t)(hl / 2));
    struct linger lg = {1, 0};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);
    free(hello);
    nd_dataset_free(h);
    /* a capture host with other settings: refused, and it says why */
    snprintf(a, sizeof a,
             "capture -c %s --class bulk -s pcap:%s -o tcp:127.0.0.1:%d --set capture.window=8",
             conf, pa, port);
    CHECK_EQ(run_nd(a, "c.log"), 2); /* a config that is not the trainer's */
    said = live_text(tmp_path("c.log"));
    CHECK_CONTAINS(said, "the trainer refused this sender");
    CHECK_CONTAINS(said, "capture.window");
    free(said);
    /* the peer without HELLO was told at 5 s */
    int got = http_read_all(slow, ans, sizeof ans);
    close(slow);
    CHECK(got > 12);
    CHECK_CONTAINS(ans + ND_WS_FRAME_HEAD, "no HELLO within 5 s");

    /* the trainer counted them, named the peers, and trains on */
    l = wait_line(stats, five_refused, 30, trainer);
    double step = live_json(l, "step");
    char *tl = live_text(tmp_path("trainer.log"));
    CHECK_CONTAINS(tl, "live: stream from 127.0.0.1:");
    CHECK_CONTAINS(tl, "Connection reset by peer; connection closed");
    CHECK_CONTAINS(tl, "live: sender a connected from 127.0.0.1:");
    free(tl);
    live_sigint(trainer, "trainer");
    l = live_last_line(stats);
    CHECK_CONTAINS(l, "\"final\":true");
    CHECK(live_json(l, "step") >= step);
    /* both classes in the last checkpoint, with the senders' replay statistics */
    snprintf(a, sizeof a, "inspect %s --json", ckpt);
    CHECK_EQ(test_sh("%s %s >%s 2>&1", nd, a, tmp_path("inspect.json")), 0);
    char *ins = live_text(tmp_path("inspect.json"));
    const char *bulk = strstr(ins, "\"bulk\": {"), *chat = strstr(ins, "\"chat\": {");
    if (!bulk || !chat || pretty_num(bulk, "flows") != 12 || pretty_num(chat, "flows") != 12)
        CHECK_FAIL_("the checkpoint lacks the senders' statistics (12 flows each):\n%s", ins);
    free(ins);
    return 0;
}
