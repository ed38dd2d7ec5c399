/*
 * test_capture_live.c — live capture on a veth pair inside a network namespace that this
 * test creates (and deletes, also on failure): tcpreplay sends a known set of frames out of
 * one end, the capture reads the other end through libpcap (`iface:`, no argument) or
 * DPDK net_af_packet (`dpdk:`, argument "dpdk"; "dpdk-mq": two rx queues; "dpdk-lcores":
 * two rx queues read by two lcores, capture.lcores, whose windows merge into the
 * context), and the class's windows must add up to exactly the bytes and packets sent.
 *
 * Both veth ends live in the test's namespace (../netns.h) and the test process joins it:
 * nothing can be routed anywhere else. Skips (77) when not root or when namespaces, veth
 * or tcpreplay are unavailable.
 */
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pktgen.h"
#include "netns.h"

#define N_UP   100
#define N_DOWN 50
#define N_TCP  21

int main(int argc, char **argv)
{
    /* "dpdk-mq": two af_packet queue pairs (PACKET_FANOUT by flow hash, like RSS), both
     * polled: the multi-queue path must lose nothing either. */
    int use_dpdk = argc > 1 && !strncmp(argv[1], "dpdk", 4);
    int lcores = argc > 1 && !strcmp(argv[1], "dpdk-lcores");
    int mq = lcores || (argc > 1 && !strcmp(argv[1], "dpdk-mq"));
    if (test_sh("command -v tcpreplay >/dev/null 2>&1")) SKIP("tcpreplay not installed");
    test_netns net = netns_setup("cap");
    const char *if_cap = net.a, *if_send = net.b;
    int id = (int)getpid();

    /* The frames: a UDP flow (100 up, 50 down) and a TCP flow (SYN + 20) on port 7777,
     * plus UDP noise on another port that the class rule leaves to "other". */
    char file[64];
    snprintf(file, sizeof file, "live-%d.pcap", id);
    pcap_out o;
    pcap_out_open(&o, file, DLT_EN10MB, 0);
    uint8_t buf[16384];
    uint64_t t = 1700000000ull * ND_NS_PER_SEC;
    for (int i = 0; i < N_UP + N_DOWN; i++) {
        int down = i % 3 == 2;
        pkt_spec s = {.src = down ? "10.9.0.2" : "10.9.0.1",
                      .dst = down ? "10.9.0.1" : "10.9.0.2",
                      .sport = down ? 8888 : 7777,
                      .dport = down ? 7777 : 8888,
                      .ip_total = down ? 1000 : 500};
        size_t len = pkt_build(buf, &s);
        pcap_out_write(&o, t += 1000000, buf, len, 0);
    }
    for (int i = 0; i < N_TCP; i++) {
        pkt_spec s = {.src = "10.9.0.1",
                      .dst = "10.9.0.2",
                      .sport = 40000,
                      .dport = 7777,
                      .proto = 6,
                      .tcp_flags = i ? PARSE_TCP_ACK : PARSE_TCP_SYN,
                      .mss = i ? 0 : 1400,
                      .ip_total = i ? 300 : 44,
                      .ttl = 9};
        size_t len = pkt_build(buf, &s);
        pcap_out_write(&o, t += 1000000, buf, len, 0);
    }
    for (int i = 0; i < 10; i++) { /* ten flows, so that both queues of "dpdk-mq" get some */
        pkt_spec s = {.src = "10.9.0.3",
                      .dst = "10.9.0.4",
                      .sport = (uint16_t)(1 + i),
                      .dport = 2,
                      .ip_total = 200};
        size_t len = pkt_build(buf, &s);
        pcap_out_write(&o, t += 1000000, buf, len, 0);
    }
    pcap_out_close(&o);

    /* Join the namespace: the capture sees its interfaces, nothing else. */
    netns_enter(&net);

    capture_opts opt;
    capture_opts_defaults(&opt);
    opt.window = 8;
    opt.channels = 4;
    opt.flow_capacity = 1024;
    opt.buffer_size = 1 << 20;
    opt.rx_queues = mq ? 2 : 1;
    opt.lcores = lcores ? 2 : 0;
    static const char *const rules[][2] = {{"test", "port 7777"}};
    opts_classes(&opt, 1, rules);

    char spec[256];
    if (use_dpdk)
        snprintf(spec, sizeof spec,
                 "dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry "
                 "--vdev=net_af_packet0,iface=%s%s",
                 if_cap, mq ? ",qpairs=2" : "");
    else snprintf(spec, sizeof spec, "iface:%s", if_cap);
    nd_error e = {0};
    capture_source *src = capture_source_open(spec, &opt, &e);
    if (!src) CHECK_FAIL_("%s", e.msg);
    CHECK_EQ(capture_source_linktype(src), DLT_EN10MB);

    win_list l = {.C = 4, .L = 8};
    capture_ctx *c = capture_ctx_new(&opt, NULL, win_collect, &l, &e);
    CHECK(c);
    CHECK_EQ(capture_lcores_count(src), lcores ? 2u : 0u);
    if (lcores && capture_lcores_start(src, c, &opt, &e)) CHECK_FAIL_("%s", e.msg);
    CHECK_EQ(test_sh("ip netns exec %s tcpreplay -q -t -i %s %s >/dev/null 2>&1", net.name,
                     if_send, file),
             0);

    /* Read until 1 s passes without packets (10 s at most). */
    capture_pkt pkts[32];
    uint64_t start = nd_now_ns(), last = start, seen = 0;
    while (nd_now_ns() - last < ND_NS_PER_SEC && nd_now_ns() - start < 10 * ND_NS_PER_SEC) {
        if (lcores) { /* the lcores read; this thread merges */
            CHECK_EQ(capture_lcores_merge(src, &e), 0);
            capture_source_stats now;
            capture_source_stats_get(src, &now);
            if (now.received > seen) seen = now.received, last = nd_now_ns();
            nanosleep(&(struct timespec){0, 10000000}, NULL);
            continue;
        }
        int n = capture_source_rx(src, pkts, 32, 50, &e);
        if (n < 0) CHECK_FAIL_("rx: %d %s", n, e.msg);
        if (n > 0) {
            capture_ctx_burst(c, capture_source_linktype(src), pkts, (unsigned)n);
            last = nd_now_ns();
        }
    }
    capture_lcores_figures lf = {0};
    if (lcores) {
        CHECK_EQ(capture_lcores_finish(src, &e), 0);
        capture_lcores_figures_get(src, &lf);
        CHECK_EQ(lf.n, 2u);
        CHECK_EQ(lf.nq, 2u);
        /* af_packet's fanout keeps flows whole: each lcore keeps what it reads */
        for (unsigned i = 0; i < 2; i++) {
            CHECK_U64_EQ(lf.lc[i].sent, 0);
            CHECK_U64_EQ(lf.lc[i].rx, lf.q[i].packets);
        }
    }
    capture_source_stats st;
    capture_source_stats_get(src, &st);
    capture_source_report(src);
    capture_ctx_flush(c);
    if (lcores) CHECK_U64_EQ(lf.lc[0].packets + lf.lc[1].packets, st.received);

    /* Sum the class's windows per channel. */
    double sum[4] = {0};
    for (size_t i = 0; i < l.n; i++)
        if (l.w[i].cls == 0)
            for (int ch = 0; ch < 4; ch++)
                for (int b = 0; b < 8; b++) sum[ch] += l.w[i].v[ch * 8 + b];
    double up_bytes = (N_UP)*514.0 + 58 + (N_TCP - 1) * 314.0;
    CHECK_NEAR(sum[ND_DOWN], N_DOWN * 1014.0, 0, 0);
    CHECK_NEAR(sum[ND_UP], up_bytes, 0, 0);
    CHECK_NEAR(sum[2 + ND_DOWN], N_DOWN, 0, 0);
    CHECK_NEAR(sum[2 + ND_UP], N_UP + N_TCP, 0, 0);
    const nd_class_stats *cs = capture_ctx_class_stats(c, 0);
    CHECK_U64_EQ(cs->flows, 2);
    CHECK_U64_EQ(cs->mss[0], 1400);
    CHECK_U64_EQ(cs->ttl_hist[ND_UP][9], N_TCP);
    CHECK(capture_ctx_class_windows(c, 1) >= 10); /* the noise flows, class "other" */
    CHECK_U64_EQ(st.dropped, 0);
    printf("ok: %s captured %llu packets, %zu windows\n", spec, (unsigned long long)st.received,
           l.n);

    capture_ctx_free(c);
    capture_source_close(src);
    win_list_free(&l);
    unlink(file);
    return 0;
}
