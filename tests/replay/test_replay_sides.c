/*
 * test_replay_sides.c — two-sided replay (replay_sink_open_sides, --to-server).
 *
 * Files: a pair of pcap files holds the one-sided replay's frames, split by direction
 * (client-to-server in the client file, the rest in the server file) and, merged by
 * time, the same frames with the same timestamps (one schedule); the same pcapng file on
 * both sides is one file with an interface per side, read back by libpcap and tshark;
 * VLAN tags per side and MAC pools (a client address keeps one MAC) are in the frames;
 * next hops per side (a routing DUT) set the destination MAC of each side's frames and
 * nothing else, and unset (or empty) leave the frames as they were; pairs that cannot
 * work and MACs that are not MACs are refused, by the library and by the command line.
 *
 * `test_replay_sides live` (its own ctest entry): a namespace made by the test with two
 * veth pairs joined by a bridge, a stand-in for a DUT between the sides; iface: on each
 * side, the frames that come in on each bridge port are that side's direction only, and
 * tshark follows every TCP stream of the bridge's capture from SYN to the last ACK.
 * `test_replay_sides live-dpdk` does the same with both sides DPDK net_af_packet ports of
 * one EAL (--to-server dpdk:port=1). Skips (77) without root, `ip` or tshark.
 */
#include <pcap/pcap.h>
#include <unistd.h>

#include "../base/tmpdir.h"
#include "netns.h"
#include "replay_test.h"

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const cls1[] = {"web"};

typedef struct frame {
    uint64_t t;
    uint32_t len;
    uint8_t data[1600];
} frame;

/* Every frame of a pcap or pcapng file (libpcap reads both), in file order. */
static frame *read_all(const char *path, size_t *n)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) CHECK_FAIL_("%s: %s", path, err);
    CHECK_EQ(pcap_datalink(p), DLT_EN10MB);
    size_t cap = 1024;
    frame *f = malloc(cap * sizeof *f);
    CHECK(f);
    *n = 0;
    struct pcap_pkthdr *h;
    const u_char *d;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        if (*n == cap) CHECK((f = realloc(f, (cap *= 2) * sizeof *f)));
        CHECK(h->caplen == h->len && h->len <= sizeof f->data);
        f[*n].t = (uint64_t)h->ts.tv_sec * ND_NS_PER_SEC + (uint64_t)h->ts.tv_usec;
        f[*n].len = h->len;
        memcpy(f[*n].data, d, h->len);
        (*n)++;
    }
    CHECK_EQ(rc, PCAP_ERROR_BREAK);
    pcap_close(p);
    return f;
}

/* The frame's direction from its addresses: client pool 198.18/16, 2001:db8:0:1::/64. */
static int is_up(const frame *f)
{
    uint32_t off = 12;
    if (f->data[12] == 0x81 && f->data[13] == 0x00) off = 16; /* VLAN tag */
    const uint8_t *ip = f->data + off + 2;
    if (f->data[off] == 0x08) return ip[12] == 198 && ip[13] == 18;
    return ip[8 + 7] == 1; /* the /64's last 16 bits: 0001 client, 0002 server */
}

/* n windows of 10 bins of 20 ms, bins of up to most bytes (a third of them empty). */
static nd_dataset *make_data(uint64_t n, uint64_t most)
{
    nd_dataset *ds = tds_new(2, ch2, 10, 20000000ull, 1, cls1, n);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    trng r = {5};
    for (uint64_t w = 0; w < n; w++)
        for (uint32_t c = 0; c < 2; c++)
            for (uint32_t b = 0; b < ds->L; b++)
                *tds_at(ds, w, c, b) = trng_below(&r, 3) ? (float)trng_below(&r, most) : 0.0f;
    return ds;
}

static replay_opts quiet_opts(void)
{
    replay_opts o;
    replay_opts_defaults(&o);
    o.status = 0;
    o.seed = 3;
    return o;
}

static void run_to(replay_sink *s, const nd_dataset *ds, const replay_opts *o)
{
    nd_error e;
    if (!s) CHECK_FAIL_("sink did not open");
    if (replay_run(ds, o, s, NULL, &e)) CHECK_FAIL_("replay_run: %s", e.msg);
    CHECK_EQ(replay_sink_close(s, &e), 0);
}

static void test_pcap_pair(const nd_dataset *ds)
{
    nd_error e;
    replay_opts o = quiet_opts();
    run_to(replay_sink_open("pcap:one.pcap", &e), ds, &o);
    run_to(replay_sink_open_sides("pcap:cli.pcap", "pcap:srv.pcap", &e), ds, &o);
    size_t n1, nc, ns;
    frame *one = read_all("one.pcap", &n1), *c = read_all("cli.pcap", &nc),
          *s = read_all("srv.pcap", &ns);
    CHECK(nc > 100 && ns > 100);
    CHECK_EQ(nc + ns, n1);
    for (size_t i = 0; i < nc; i++) CHECK(is_up(&c[i]));
    for (size_t i = 0; i < ns; i++) CHECK(!is_up(&s[i]));
    /* merged by time (ties: the one-sided order, which the sides keep), the same frames */
    size_t i = 0, j = 0;
    for (size_t k = 0; k < n1; k++) {
        const frame *x = is_up(&one[k]) ? &c[i++] : &s[j++];
        CHECK(i <= nc && j <= ns);
        CHECK_U64_EQ(x->t, one[k].t);
        CHECK_EQ(x->len, one[k].len);
        CHECK(!memcmp(x->data, one[k].data, x->len));
    }
    printf("sides: pcap pair: %zu client-side and %zu server-side frames, the one-sided "
           "replay's %zu split by direction\n",
           nc, ns, n1);
    free(one), free(c), free(s);
}

/* Runs cmd and returns its first line as a number. */
static long count_of(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    CHECK(p);
    long v = -1;
    CHECK_EQ(fscanf(p, "%ld", &v), 1);
    pclose(p);
    return v;
}

static void test_pcapng_vlan_macs(const nd_dataset *ds)
{
    nd_error e;
    replay_opts o = quiet_opts();
    o.vlan_client = 10;
    o.vlan_server = 20;
    o.client_macs = 4;
    o.server_macs = 3;
    o.clients = 40;
    run_to(replay_sink_open_sides("pcapng:both.pcapng", "pcapng:both.pcapng", &e), ds, &o);
    size_t n;
    frame *f = read_all("both.pcapng", &n);
    CHECK(n > 200);
    /* client MAC of each client address: one each, 4 in all */
    uint8_t mac_of[256][6];
    int seen[256] = {0}, macs = 0;
    uint8_t first[4][6];
    for (size_t i = 0; i < n; i++) {
        const frame *x = &f[i];
        int up = is_up(x);
        CHECK(x->data[12] == 0x81 && x->data[13] == 0);
        CHECK_EQ(tget16(x->data + 14), up ? 10u : 20u);
        const uint8_t *cmac = up ? x->data + 6 : x->data;
        if (x->data[16] != 0x08) continue; /* IPv4 for the address check */
        uint8_t host = x->data[18 + (up ? 15 : 19)];
        if (!seen[host]) {
            memcpy(mac_of[host], cmac, 6);
            seen[host] = 1;
            int known = 0;
            for (int k = 0; k < macs; k++) known |= !memcmp(first[k], cmac, 6);
            if (!known) {
                CHECK(macs < 4);
                memcpy(first[macs++], cmac, 6);
            }
        }
        CHECK(!memcmp(mac_of[host], cmac, 6));
    }
    CHECK_EQ(macs, 4);
    free(f);
    if (system("command -v tshark >/dev/null 2>&1")) {
        printf("sides: no tshark: the pcapng interfaces not checked by it\n");
        return;
    }
    /* tshark: two interfaces, each frame on its side's, tags as configured */
    long wrong = count_of("tshark -r both.pcapng -Y '(frame.interface_id == 0 && "
                          "!(vlan.id == 10 && (ip.src == 198.18.0.0/16 || ipv6.src == "
                          "2001:db8:0:1::/64))) || (frame.interface_id == 1 && !(vlan.id == 20 "
                          "&& (ip.src == 198.19.0.0/16 || ipv6.src == 2001:db8:0:2::/64)))' "
                          "2>/dev/null | wc -l");
    long names = count_of("tshark -r both.pcapng -T fields -e frame.interface_name 2>/dev/null "
                          "| sort -u | grep -c -e '^client$' -e '^server$'");
    long all = count_of("tshark -r both.pcapng 2>/dev/null | wc -l");
    CHECK_EQ(wrong, 0);
    CHECK_EQ(names, 2);
    CHECK_EQ(all, (long)n);
    printf("sides: pcapng with interfaces client and server, %zu frames, VLAN 10/20, 4 client "
           "MACs over 40 clients\n",
           n);
}

/* The frames of a pcap pair written with o. */
static void run_pair(const nd_dataset *ds, const replay_opts *o, const char *tag, frame **c,
                     size_t *nc, frame **s, size_t *ns)
{
    nd_error e;
    char cp[64], sp[64];
    snprintf(cp, sizeof cp, "pcap:%s-cli.pcap", tag);
    snprintf(sp, sizeof sp, "pcap:%s-srv.pcap", tag);
    run_to(replay_sink_open_sides(cp, sp, &e), ds, o);
    *c = read_all(cp + 5, nc);
    *s = read_all(sp + 5, ns);
}

/* A MAC of the pool that starts at 02:00:00:00:00:first and has n. */
static int in_mac_pool(const uint8_t *m, int first, int n)
{
    static const uint8_t head[5] = {2, 0, 0, 0, 0};
    return !memcmp(m, head, 5) && m[5] >= first && m[5] < first + n;
}

static void test_gateways(const nd_dataset *ds)
{
    static const uint8_t gw_cli[6] = {0x02, 0, 0, 0, 0x0a, 0x01},
                         gw_srv[6] = {2, 0, 0, 0, 0x0b, 1};
    replay_opts o = quiet_opts();
    o.client_macs = 3; /* 02:..:01 to :03 */
    o.server_macs = 2; /* 02:..:02 and :03 (counted from mac_dst) */
    o.clients = 40;
    frame *c0, *s0, *c1, *s1, *c2, *s2;
    size_t nc0, ns0, nc1, ns1, nc2, ns2;
    run_pair(ds, &o, "gw0", &c0, &nc0, &s0, &ns0); /* unset: a bridging DUT */
    o.gateway_client = o.gateway_server = "";
    run_pair(ds, &o, "gw1", &c1, &nc1, &s1, &ns1); /* empty: the same */
    o.gateway_client = "02:00:00:00:0a:01";
    o.gateway_server = "02:00:00:00:0B:01"; /* hex digits of either case */
    run_pair(ds, &o, "gw2", &c2, &nc2, &s2, &ns2);
    CHECK(nc0 > 100 && ns0 > 100);
    CHECK(nc1 == nc0 && nc2 == nc0 && ns1 == ns0 && ns2 == ns0);
    for (int side = 0; side < 2; side++) {
        const frame *f0 = side ? s0 : c0, *f1 = side ? s1 : c1, *f2 = side ? s2 : c2;
        const uint8_t *gw = side ? gw_srv : gw_cli;
        for (size_t i = 0, n = side ? ns0 : nc0; i < n; i++) {
            /* unset: to the peer's pool MAC, from the sender's; empty: byte for byte */
            const uint8_t *dst = f0[i].data, *src = f0[i].data + 6;
            CHECK(side ? in_mac_pool(dst, 1, 3) && in_mac_pool(src, 2, 2)
                       : in_mac_pool(dst, 2, 2) && in_mac_pool(src, 1, 3));
            CHECK(f1[i].t == f0[i].t && f1[i].len == f0[i].len);
            CHECK(!memcmp(f1[i].data, f0[i].data, f0[i].len));
            /* set: to the side's next hop; the rest of the frame, source MAC included,
             * and its time unchanged */
            CHECK(f2[i].t == f0[i].t && f2[i].len == f0[i].len);
            CHECK(!memcmp(f2[i].data, gw, 6));
            CHECK(!memcmp(f2[i].data + 6, f0[i].data + 6, f0[i].len - 6));
        }
    }
    printf("sides: next hops: %zu client-side frames to 02:00:00:00:0a:01, %zu server-side to "
           "02:00:00:00:0b:01, the rest of each frame as without them\n",
           nc2, ns2);
    free(c0), free(s0), free(c1), free(s1), free(c2), free(s2);
}

static void test_refused(void)
{
    nd_error e;
    CHECK(!replay_sink_open_sides("pcap:a.pcap", "pcap:a.pcap", &e));
    CHECK_CONTAINS(e.msg, "give two sinks");
    CHECK(!replay_sink_open_sides("pcap:a.pcap", "iface:lo", &e));
    CHECK_CONTAINS(e.msg, "both files");
#if ND_HAVE_DPDK
    CHECK(!replay_sink_open_sides("pcap:a.pcap", "dpdk:port=1", &e));
    CHECK_CONTAINS(e.msg, "client side as dpdk:EAL-ARGS");
#endif
    CHECK(access("a.pcap", F_OK) != 0); /* a refused pair leaves no file */
    replay_opts o = quiet_opts();
    o.vlan_server = 4095;
    nd_dataset *ds = make_data(2, 30000);
    replay_sink *s = replay_sink_open("pcap:v.pcap", &e);
    CHECK(s);
    CHECK(replay_run(ds, &o, s, NULL, &e) == ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "replay.vlan_server: 4095");
    replay_sink_discard(s);
    o.vlan_server = 0;
    o.gateway_server = "02:00:00:00:0b";
    CHECK((s = replay_sink_open("pcap:v.pcap", &e)));
    CHECK(replay_run(ds, &o, s, NULL, &e) == ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "replay.gateway_server: '02:00:00:00:0b' is not a MAC address");
    replay_sink_discard(s);
    /* the config key: checked when the config is read, named with its value */
    CHECK_EQ(nd_dataset_save(ds, "gw.ndd", &e), 0);
    static const char bad[] = "replay:\n  gateway_client: 02:00:00:00:0a\n",
                      good[] = "replay:\n  gateway_client: 02:00:00:00:0a:01\n";
    write_bytes("gw-bad.yaml", bad, sizeof bad - 1);
    TCLI_EXPECT("sides_cli.err", 2,
                "replay -c gw-bad.yaml --series gw.ndd --to pcap:gw.pcap "
                "--to-server pcap:gws.pcap",
                "replay.gateway_client");
    CHECK_CONTAINS(tcli_err, "02:00:00:00:0a");
    CHECK_CONTAINS(tcli_err, "a MAC address like 02:00:00:00:00:01");
    write_bytes("gw.yaml", good, sizeof good - 1);
    TCLI_EXPECT("sides_cli.err", 0,
                "replay -c gw.yaml --series gw.ndd --to pcap:gw.pcap --to-server pcap:gws.pcap",
                "");
    size_t n;
    frame *f = read_all("gw.pcap", &n);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) CHECK(!memcmp(f[i].data, "\x02\0\0\0\x0a\x01", 6));
    free(f);
    tds_free(ds);
}

/* ------------------------------------------------------------------------------------ */
/* Live: two veth pairs and a bridge between them                                       */
/* ------------------------------------------------------------------------------------ */

/* promisc: the bridge hands its device what it forwards only in promiscuous mode. */
static pcap_t *listen_on(const char *ifname, int promisc)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_create(ifname, err);
    CHECK(p);
    pcap_set_snaplen(p, 2048);
    pcap_set_buffer_size(p, 32 << 20);
    pcap_set_immediate_mode(p, 1);
    pcap_set_promisc(p, promisc);
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
    if (pcap_activate(p) < 0) CHECK_FAIL_("%s: %s", ifname, pcap_geterr(p));
    CHECK_EQ(pcap_setdirection(p, PCAP_D_IN), 0);
    CHECK_EQ(pcap_setnonblock(p, 1, err), 0);
    return p;
}

/* What came in on p so far: frames counted by direction, all written to dump. */
static void drain(pcap_t *p, pcap_dumper_t *dump, size_t *up, size_t *down)
{
    struct pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        frame f = {.len = h->caplen};
        memcpy(f.data, d, h->caplen < sizeof f.data ? h->caplen : sizeof f.data);
        uint32_t et = tget16(f.data + 12);
        if (et != 0x0800 && et != 0x86dd) continue; /* not ours: nothing else is sent here */
        (is_up(&f) ? (*up)++ : (*down)++);
        if (dump) pcap_dump((u_char *)dump, h, d);
    }
}

/* dpdk: both sides are net_af_packet ports of one EAL (--to-server dpdk:port=1). */
static int test_live(int dpdk)
{
    if (system("command -v tshark >/dev/null 2>&1")) SKIP("tshark is not installed");
    test_netns n = netns_setup("sd");
    char ca[16], cb[16], br[16];
    snprintf(ca, sizeof ca, "%.13sc", n.name);
    snprintf(cb, sizeof cb, "%.13sd", n.name);
    snprintf(br, sizeof br, "%.13sr", n.name);
    /* client side: a <-> b (b on the bridge); server side: c <-> d (d on the bridge) */
    CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "add", ca, "type", "veth", "peer", "name",
                           cb, (char *)NULL),
             0);
    CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "add", br, "type", "bridge", (char *)NULL),
             0);
    CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "set", n.b, "master", br, (char *)NULL), 0);
    CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "set", cb, "master", br, (char *)NULL), 0);
    const char *up[] = {ca, cb, br};
    for (int i = 0; i < 3; i++)
        CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "set", up[i], "up", (char *)NULL), 0);
    netns_enter(&n);
    usleep(300000); /* the bridge ports go to forwarding (no STP: at once, give it a moment) */

    pcap_t *pc = listen_on(n.b, 0), *ps = listen_on(cb, 0), *pb = listen_on(br, 1);
    char bridge[64], cmd[160]; /* one file per run: the iface and dpdk runs may overlap */
    snprintf(bridge, sizeof bridge, "%s.pcap", n.name);
    pcap_dumper_t *dump = pcap_dump_open(pb, bridge);
    CHECK(dump);
    nd_dataset *ds = make_data(30, 4000); /* a few thousand frames: the buffers hold them */
    replay_opts o = quiet_opts();
    o.speed = 2;
    nd_error e;
    char cli[512], srv[32];
    snprintf(cli, sizeof cli, "iface:%s", n.a);
    snprintf(srv, sizeof srv, "iface:%s", ca);
    if (dpdk) {
        snprintf(cli, sizeof cli,
                 "dpdk:--no-huge --no-pci -m 512 --no-shconf --no-telemetry -l 0 "
                 "--file-prefix=%s --vdev=net_af_packet0,iface=%s "
                 "--vdev=net_af_packet1,iface=%s",
                 n.name, n.a, ca);
        snprintf(srv, sizeof srv, "dpdk:port=1");
    }
    replay_sink *s = replay_sink_open_sides(cli, srv, &e);
    if (!s) CHECK_FAIL_("%s", e.msg);
    replay_stats st;
    if (replay_run(ds, &o, s, &st, &e)) CHECK_FAIL_("replay_run: %s", e.msg);
    CHECK_EQ(replay_sink_close(s, &e), 0);
    CHECK_U64_EQ(st.drops, 0);
    usleep(300000);
    size_t c_up = 0, c_down = 0, s_up = 0, s_down = 0, b_up = 0, b_down = 0;
    drain(pc, NULL, &c_up, &c_down);
    drain(ps, NULL, &s_up, &s_down);
    drain(pb, dump, &b_up, &b_down);
    pcap_dump_close(dump);
    pcap_close(pc), pcap_close(ps), pcap_close(pb);
    /* each bridge port receives its side's direction, every packet of it */
    CHECK_EQ(c_down, 0);
    CHECK_EQ(s_up, 0);
    CHECK_U64_EQ(c_up + s_down, st.packets);
    CHECK(c_up > 100 && s_down > 100);
    CHECK_U64_EQ(b_up + b_down, st.packets);
    /* tshark: every TCP stream from SYN and SYN-ACK to both FINs and a last ACK */
    int streams = tshark_tcp_streams(bridge);
    CHECK(streams > 5);
    snprintf(cmd, sizeof cmd, "tshark -n -r %s -Y _ws.malformed 2>/dev/null | wc -l", bridge);
    long bad = count_of(cmd);
    CHECK_EQ(bad, 0);
    printf("sides live: %zu client-to-server frames in on the client port, %zu "
           "server-to-client on the server port, none crossed; %d TCP streams whole\n",
           c_up, s_down, streams);
    CHECK_EQ(unlink(bridge), 0);
    tds_free(ds);
    return 0;
}

int main(int argc, char **argv)
{
    nd_log_set_level(ND_LOG_WARN);
    if (argc > 1 && !strcmp(argv[1], "live")) return test_live(0);
    if (argc > 1 && !strcmp(argv[1], "live-dpdk")) return test_live(1);
    nd_dataset *ds = make_data(60, 30000);
    test_pcap_pair(ds);
    test_pcapng_vlan_macs(ds);
    test_gateways(ds);
    test_refused();
    tds_free(ds);
    return 0;
}
