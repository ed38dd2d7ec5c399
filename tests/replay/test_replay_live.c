/*
 * test_replay_live.c — live replay onto a veth pair inside a network namespace that the
 * test creates (and always removes), received by a libpcap capture on the other end.
 * Built four times: test_replay_live_iface sends through libpcap (iface:),
 * test_replay_live_dpdk (LIVE_DPDK) through DPDK's net_af_packet PMD, and
 * test_replay_live_dpdk_2q (LIVE_DPDK_2Q) through net_af_packet with two tx queues on two
 * lcores, and test_replay_live_dpdk_tap (LIVE_DPDK_TAP) through DPDK's net_tap PMD, whose
 * checksum offload checks the offload path (the tap interface is made by the PMD, inside the
 * test's namespace).
 *
 * Every frame captured must be, byte for byte and in order, the frame the pcap sink
 * writes for the same data and seed. Traffic exists only inside the namespace (made by
 * ../netns.h): the addresses are the RFC 2544/3849 pools and nothing routes them. Skips
 * (77) without root or network namespaces.
 */
#include <stdarg.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include "netns.h"
#include "replay_test.h"

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const cls1[] = {"web"};

typedef struct frames {
    uint8_t **data;
    uint32_t *len;
    size_t n, cap;
} frames;

static void frames_add(frames *f, const uint8_t *d, uint32_t len)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 1024;
        f->data = realloc(f->data, f->cap * sizeof *f->data);
        f->len = realloc(f->len, f->cap * sizeof *f->len);
        CHECK(f->data && f->len);
    }
    f->data[f->n] = malloc(len);
    CHECK(f->data[f->n]);
    memcpy(f->data[f->n], d, len);
    f->len[f->n++] = len;
}

#ifdef LIVE_DPDK_2Q
static int frame_cmp(const void *a, const void *b)
{
    const uint8_t *const *x = a, *const *y = b;
    return memcmp(*x, *y, 64); /* equal keys: equal frames (the IP length is in them) */
}

/* Sorts the frames (and their lengths with them) by their first 64 bytes. */
static void sort_frames(frames *f)
{
    uint8_t **p = malloc(f->n * sizeof *p);
    CHECK(p);
    for (size_t i = 0; i < f->n; i++) {
        p[i] = malloc(64 + 4);
        CHECK(p[i]);
        memset(p[i], 0, 68);
        memcpy(p[i], f->data[i], f->len[i] < 64 ? f->len[i] : 64);
        memcpy(p[i] + 64, &i, sizeof(uint32_t)); /* index rides along after the key */
    }
    qsort(p, f->n, sizeof *p, frame_cmp);
    uint8_t **data = malloc(f->n * sizeof *data);
    uint32_t *len = malloc(f->n * sizeof *len);
    CHECK(data && len);
    for (size_t i = 0; i < f->n; i++) {
        uint32_t k;
        memcpy(&k, p[i] + 64, sizeof k);
        data[i] = f->data[k];
        len[i] = f->len[k];
        free(p[i]);
    }
    free(p);
    free(f->data);
    free(f->len);
    f->data = data;
    f->len = len;
}
#endif

static int keep_frame(const uint8_t *frame, uint32_t len, uint64_t deadline,
                      const replay_pkt_info *info, void *arg)
{
    frames_add(arg, frame, len);
    return 0;
}

static void on_capture(u_char *arg, const struct pcap_pkthdr *h, const u_char *data)
{
    CHECK_EQ(h->caplen, h->len);
    frames_add((frames *)arg, data, h->caplen);
}

int main(void)
{
#ifdef LIVE_DPDK_TAP
    if (access("/dev/net/tun", R_OK | W_OK)) SKIP("no /dev/net/tun for DPDK's net_tap");
#endif
    test_netns net = netns_setup("rp");
    netns_enter(&net); /* from here on, this process sees only the pair */

    nd_log_set_level(ND_LOG_WARN);
    const uint64_t N = 8;
    nd_dataset *ds = tds_new(2, ch2, 10, 20000000ull, 1, cls1, N);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    tds_arrivals(&ds->stats[0], 0); /* no arrival rate: flows spread over one window */
    trng r = {5};
    for (uint64_t i = 0; i < N * 2 * ds->L; i++) ds->values[i] = (float)trng_below(&r, 20000);

    replay_opts o;
    replay_opts_defaults(&o);
    o.status = 0;
    o.seed = 17;
    o.speed = 1;
    nd_error e;

    /* what must arrive: the same run into a function sink */
    frames want = {0}, got = {0};
    replay_sink *s = replay_sink_func(keep_frame, &want);
    CHECK_EQ(replay_run(ds, &o, s, NULL, &e), 0);
    replay_sink_close(s, &e);
    CHECK(want.n > 500);

    /* the sink first: the DPDK tap PMD creates the interface the capture listens on */
    char spec[256];
    const char *rx_if = net.b;
#if defined(LIVE_DPDK_TAP)
    char tap[16];
    snprintf(tap, sizeof tap, "%.14st", net.name);
    snprintf(spec, sizeof spec,
             "dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry -l 0 "
             "--file-prefix=%s --vdev=net_tap0,iface=%s",
             net.name, tap);
    rx_if = tap;
#elif defined(LIVE_DPDK_2Q)
    /* two lcores, two tx queues, each fed by its own scheduler */
    snprintf(spec, sizeof spec,
             "dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry -l 0-1 "
             "--file-prefix=%s --vdev=net_af_packet0,iface=%s,qpairs=2",
             net.name, net.a);
#elif defined(LIVE_DPDK)
    snprintf(spec, sizeof spec,
             "dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry -l 0 "
             "--file-prefix=%s --vdev=net_af_packet0,iface=%s",
             net.name, net.a);
#else
    snprintf(spec, sizeof spec, "iface:%s", net.a);
#endif
    s = replay_sink_open(spec, &e);
    if (!s) CHECK_FAIL_("%s: %s", spec, e.msg);
#ifdef LIVE_DPDK_TAP
    /* the tap PMD offers checksum offload: its frames must still be byte for byte right */
    test_sh("ip link set %s up", tap);
#endif

    /* the receiving end: everything from our two MACs */
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *cap = pcap_create(rx_if, err);
    if (!cap) CHECK_FAIL_("pcap_create %s: %s", rx_if, err);
    pcap_set_snaplen(cap, 2048);
    pcap_set_promisc(cap, 1);
    pcap_set_immediate_mode(cap, 1);
    pcap_set_buffer_size(cap, 64 << 20);
    CHECK_EQ(pcap_activate(cap), 0);
    struct bpf_program prog;
    CHECK_EQ(pcap_compile(cap, &prog,
                          "ether src 02:00:00:00:00:01 or ether src 02:00:00:00:00:02", 1,
                          PCAP_NETMASK_UNKNOWN),
             0);
    CHECK_EQ(pcap_setfilter(cap, &prog), 0);
    pcap_freecode(&prog);
    CHECK_EQ(pcap_setnonblock(cap, 1, err), 0);

    replay_stats st;
    int rc = replay_run(ds, &o, s, &st, &e);
    if (rc) CHECK_FAIL_("replay_run: %s", e.msg);
    CHECK_EQ(replay_sink_close(s, &e), 0);
    char line[512];
    replay_stats_format(&st, line, sizeof line);
    fprintf(stderr, "%s: %s\n", spec, line);
    CHECK(st.timed);
    CHECK_U64_EQ(st.drops, 0);
    CHECK_U64_EQ(st.packets, want.n);

    /* drain the capture until it is quiet for 300 ms (bounded: 10 s) */
    uint64_t quiet_since = nd_now_ns(), t_end = quiet_since + 10 * ND_NS_PER_SEC;
    while (nd_now_ns() < t_end && got.n < want.n) {
        int n = pcap_dispatch(cap, -1, on_capture, (u_char *)&got);
        CHECK(n >= 0);
        if (n > 0) quiet_since = nd_now_ns();
        else if (nd_now_ns() - quiet_since > 300000000ull) break;
        else usleep(1000);
    }
    struct pcap_stat ps;
    if (pcap_stats(cap, &ps) == 0 && ps.ps_drop)
        fprintf(stderr, "capture dropped %u packets\n", ps.ps_drop);
    pcap_close(cap);
    if (got.n != want.n)
        CHECK_FAIL_("captured %zu frames on %s, replay sent %zu", got.n, rx_if, want.n);
#ifdef LIVE_DPDK_2Q
    /* two queues interleave as they like: compare as sets, in a canonical order */
    sort_frames(&want);
    sort_frames(&got);
#endif
    for (size_t i = 0; i < want.n; i++) {
        if (got.len[i] != want.len[i] || memcmp(got.data[i], want.data[i], want.len[i]))
            CHECK_FAIL_("frame %zu differs: %u bytes captured, %u sent", i, got.len[i],
                        want.len[i]);
        free(got.data[i]);
        free(want.data[i]);
    }
    free(got.data), free(got.len), free(want.data), free(want.len);
    printf("replay live (%s): %zu frames received as sent\n", spec, want.n);
    tds_free(ds);
    return 0;
}
