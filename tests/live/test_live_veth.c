/*
 * test_live_veth.c — live's end-to-end test: a veth pair inside a network namespace
 * that this test creates (../netns.h: unique names; deleted at exit, also when a check
 * fails).
 * tcpreplay sends two classes of generated traffic into one end, `netdiffus live` learns
 * online on the other: both classes join the model, the training loss falls, a
 * checkpoint is written, SIGINT ends it cleanly within a second, and `--resume`
 * continues from the checkpoint with new traffic (and with --steps counted in total).
 * Skips (77) without root, namespaces, veth or tcpreplay. Traffic stays inside the
 * namespace.
 */
#include "live_test.h"
#include "netns.h"

static double stats_wait(const char *stats, const char *key, double at_least, double seconds,
                         pid_t pid, const char *log)
{
    double t0 = live_now(), v = NAN;
    while (live_now() - t0 < seconds) {
        v = live_json(live_last_line(stats), key);
        if (v >= at_least) return v;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            CHECK_FAIL_("live exited early (status %d); log:\n%s", st, live_text(log));
        usleep(50000);
    }
    CHECK_FAIL_("%s stayed below %g for %.0f s (last %g); log:\n%s", key, at_least, seconds, v,
                live_text(log));
}

int main(void)
{
    if (test_sh("command -v tcpreplay >/dev/null 2>&1")) SKIP("tcpreplay not installed");
    test_netns net = netns_setup("live");
    const char *ns = net.name, *if_cap = net.a, *if_send = net.b;

    char pcap[512], conf[512], ckpt[512], src[64], s1[512], s2[512], s3[512], log[512], a[4096];
    LIVE_PATH(pcap, "two.pcap");
    LIVE_PATH(conf, "live.yaml");
    LIVE_PATH(ckpt, "live.ndm");
    LIVE_PATH(s1, "s1.jsonl");
    LIVE_PATH(s2, "s2.jsonl");
    LIVE_PATH(s3, "s3.jsonl");
    LIVE_PATH(log, "log.txt");
    snprintf(src, sizeof src, "iface:%s", if_cap);
    live_write_two_class_pcap(pcap, 16, 48, 150, 1); /* 7.2 s of traffic */
    live_write_config(conf, src, ckpt, "  capture_core: 0\n");

    /* learn: live on one end, two classes sent into the other (twice as fast) */
    snprintf(a, sizeof a, "ip netns exec %s %s live -c %s --stats %s >>%s 2>&1", ns, ND_BINARY,
             conf, s1, log);
    pid_t pid = live_spawn(a);
    stats_wait(s1, "t", 0, 30, pid, log); /* capturing */
    CHECK_EQ(test_sh("ip netns exec %s tcpreplay -q -i %s -x 2 %s >>%s 2>&1", ns, if_send, pcap,
                     log),
             0);
    /* both classes in the model, enough steps to see the loss fall, a checkpoint */
    stats_wait(s1, "step", 150, 120, pid, log);
    stats_wait(s1, "checkpoints", 1, 30, pid, log);
    live_sigint(pid, "veth");
    const char *l = live_last_line(s1);
    CHECK_CONTAINS(l, "\"final\":true");
    double packets = live_json(l, "packets"), step1 = live_json(l, "step");
    double loss_end = live_json(l, "loss");
    fprintf(stderr, "veth: %g packets, %g windows, %g dropped, step %g\n", packets,
            live_json(l, "windows"), live_json(l, "ring_dropped"), step1);
    CHECK(packets > 1000);
    CHECK_EQ(live_json(l, "checkpoint_step"), step1);
    const char *bulk = strstr(l, "\"bulk\":"), *chat = strstr(l, "\"chat\":");
    CHECK(bulk && chat);
    CHECK(live_json(bulk, "model_class") >= 0);
    CHECK(live_json(chat, "model_class") >= 0);
    double loss_early = live_json(live_line_at_step(s1, 5), "loss");
    fprintf(stderr, "veth: loss %.4f near step 5, %.4f at step %g\n", loss_early, loss_end,
            step1);
    CHECK(loss_end < 0.7 * loss_early);
    snprintf(a, sizeof a, "%s inspect %s | grep -q 'training: %.0f steps'", ND_BINARY, ckpt,
             step1);
    CHECK_EQ(test_sh("%s", a), 0);

    /* --resume: new traffic; the step goes on from the checkpoint, the classes' window
     * counts from theirs. Stopped by SIGINT once the new traffic's windows are in and 50
     * more steps are done (with --steps alone it could end before they arrive). */
    const char *b = strstr(live_last_line(s1), "\"bulk\":");
    double bulk1 = b ? live_json(b, "windows") : NAN, bulk2 = NAN;
    snprintf(a, sizeof a, "ip netns exec %s %s live -c %s --resume --stats %s >>%s 2>&1", ns,
             ND_BINARY, conf, s2, log);
    pid = live_spawn(a);
    stats_wait(s2, "t", 0, 30, pid, log);
    CHECK(live_json(live_last_line(s2), "step") >= step1);
    CHECK_EQ(test_sh("ip netns exec %s tcpreplay -q -i %s -x 4 %s >>%s 2>&1", ns, if_send, pcap,
                     log),
             0);
    for (double t0 = live_now(); live_now() - t0 < 60; usleep(50000)) {
        b = strstr(live_last_line(s2), "\"bulk\":");
        if (b && (bulk2 = live_json(b, "windows")) > bulk1) break;
    }
    fprintf(stderr, "veth: resumed at step %g, bulk windows %g -> %g\n", step1, bulk1, bulk2);
    CHECK(bulk2 > bulk1);
    stats_wait(s2, "step", step1 + 50, 120, pid, log);
    live_sigint(pid, "veth resume");
    l = live_last_line(s2);
    double step2 = live_json(l, "step");
    CHECK_EQ(live_json(l, "checkpoint_step"), step2);

    /* --steps N on a resume: N in total, counted from the checkpoint's step (the
     * reservoirs came back with it, so it trains without new traffic) */
    snprintf(a, sizeof a,
             "ip netns exec %s %s live -c %s --resume --steps %.0f --stats %s "
             ">>%s 2>&1",
             ns, ND_BINARY, conf, step2 + 20, s3, log);
    pid = live_spawn(a);
    CHECK_EQ(live_wait(pid, 120), 0);
    CHECK_EQ(live_json(live_last_line(s3), "step"), step2 + 20);
    char *text = live_text(log);
    CHECK_CONTAINS(text, "live: resuming");
    free(text);
    return 0;
}
