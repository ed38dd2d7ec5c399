/*
 * test_live_veth.c — issue 7's acceptance test: a veth pair inside a network namespace
 * that this test creates (../netns.h: unique names; deleted at exit, also when a check
 * fails).
 * tcpreplay sends two classes of generated traffic into one end, `netdiffus live` learns
 * online on the other: both classes join the model, the training loss falls, a
 * checkpoint is written, SIGINT ends it cleanly within a second, and `--resume`
 * continues from the checkpoint with new traffic. Skips (77) without root, namespaces,
 * veth or tcpreplay. Traffic stays inside the namespace.
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
    CHECK_FAIL_("%s stayed below %g for %.0f s (last %g); log:\n%s", key, at_least, seconds,
                v, live_text(log));
}

int main(void)
{
    if (test_sh("command -v tcpreplay >/dev/null 2>&1")) SKIP("tcpreplay not installed");
    test_netns net = netns_setup("live");
    const char *ns = net.name, *if_cap = net.a, *if_send = net.b;

    char pcap[512], conf[512], ckpt[512], src[64], s1[512], s2[512], log[512], a[4096];
    LIVE_PATH(pcap, "two.pcap");
    LIVE_PATH(conf, "live.yaml");
    LIVE_PATH(ckpt, "live.ndm");
    LIVE_PATH(s1, "s1.jsonl");
    LIVE_PATH(s2, "s2.jsonl");
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
                     log), 0);
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
    fprintf(stderr, "veth: loss %.4f near step 5, %.4f at step %g\n", loss_early, loss_end, step1);
    CHECK(loss_end < 0.7 * loss_early);
    snprintf(a, sizeof a, "%s inspect %s | grep -q 'training: %.0f steps'", ND_BINARY, ckpt, step1);
    CHECK_EQ(test_sh("%s", a), 0);

    /* --resume: new traffic, the step goes on from the checkpoint */
    snprintf(a, sizeof a, "ip netns exec %s %s live -c %s --resume --steps %.0f --stats %s "
             ">>%s 2>&1", ns, ND_BINARY, conf, step1 + 50, s2, log);
    pid = live_spawn(a);
    stats_wait(s2, "t", 0, 30, pid, log);
    l = live_last_line(s2);
    CHECK(live_json(l, "step") >= step1);
    CHECK_EQ(test_sh("ip netns exec %s tcpreplay -q -i %s -x 4 %s >>%s 2>&1", ns, if_send, pcap,
                     log), 0);
    CHECK_EQ(live_wait(pid, 120), 0);
    l = live_last_line(s2);
    CHECK_EQ(live_json(l, "step"), step1 + 50);
    CHECK(live_json(strstr(l, "\"bulk\":"), "windows") >
          live_json(strstr(live_last_line(s1), "\"bulk\":"), "windows"));
    char *text = live_text(log);
    CHECK_CONTAINS(text, "live: resuming");
    free(text);
    return 0;
}
