/*
 * test_capture_windows.c — generated pcaps with a known traffic schedule through
 * `pcap:` + capture_run, checked window by window and bin by bin: bin boundaries,
 * windows across L, idle and active timeouts, a full table (LRU eviction), VLAN and QinQ,
 * IPv6 with extension headers, IPv4/IPv6 fragments, BPF classes and the default class,
 * timestamps going backwards, min_active_bins, snaplen-cut packets, ns timestamps, and
 * the packets channels; and the same packets as little- and big-endian pcap and pcapng.
 */
#include <stdio.h>
#include <unistd.h>

#include "pktgen.h"

#define T0    (1700000000ull * ND_NS_PER_SEC)
#define MS(x) ((uint64_t)(x)*1000000ull)
#define US(x) ((uint64_t)(x)*1000ull)
#define L_    4

typedef struct ev {
    uint64_t t; /* ns after T0 */
    pkt_spec s;
    uint32_t caplen; /* 0: whole frame */
} ev;

static char path[256];

static void write_events(const ev *e, int n, int nano)
{
    pcap_out o;
    pcap_out_open(&o, path, DLT_EN10MB, nano);
    static uint8_t buf[16384];
    for (int i = 0; i < n; i++) {
        size_t len = pkt_build(buf, &e[i].s);
        pcap_out_write(&o, T0 + e[i].t, buf, len, e[i].caplen);
    }
    pcap_out_close(&o);
}

static void base_opts(capture_opts *opt)
{
    capture_opts_defaults(opt);
    opt->bin_ns = ND_NS_PER_SEC;
    opt->window = L_;
    opt->min_active_bins = 1;
    opt->channels = 2;
    opt->flow_capacity = 1024;
    opt->idle_timeout_ns = 10 * ND_NS_PER_SEC;
    opt->active_timeout_ns = 1000 * ND_NS_PER_SEC;
    opt->default_class = "other";
}

/* Writes the events, captures them with opt into l; returns the context (caller frees). */
static capture_ctx *run(const ev *e, int n, const capture_opts *opt, win_list *l, int nano)
{
    write_events(e, n, nano);
    char spec[300];
    snprintf(spec, sizeof spec, "pcap:%s", path);
    nd_error err = {0};
    int rc;
    capture_ctx *c = capture_into(spec, opt, l, &rc, &err);
    if (rc) CHECK_FAIL_("capture_run: %s", err.msg);
    return c;
}

/* Checks window k of group: class and both channels, bin by bin. */
static void expect_(int line, const win_list *l, uint64_t group, int k, uint32_t cls,
                    const float *down, const float *up)
{
    const win_rec *w = win_find(l, group, k);
    if (!w)
        CHECK_FAIL_("line %d: no window %d of group %llu", line, k, (unsigned long long)group);
    if (w->cls != cls)
        CHECK_FAIL_("line %d: group %llu window %d: class %u, expected %u", line,
                    (unsigned long long)group, k, w->cls, cls);
    for (int b = 0; b < L_; b++)
        if (w->v[b] != down[b] || w->v[L_ + b] != up[b])
            CHECK_FAIL_("line %d: group %llu window %d bin %d: down %g up %g, expected %g %g",
                        line, (unsigned long long)group, k, b, w->v[b], w->v[L_ + b], down[b],
                        up[b]);
}
#define EXPECT(l, g, k, cls, ...)                                                              \
    do {                                                                                       \
        const float d_[2][L_] = __VA_ARGS__;                                                   \
        expect_(__LINE__, l, g, k, cls, d_[0], d_[1]);                                         \
    } while (0)

/* UDP packet from a to b; ip bytes = IP total length (frame = 14 + ip). */
#define UDP4(a, sp, b, dp, ip)                                                                 \
    {                                                                                          \
        .src = a, .dst = b, .sport = sp, .dport = dp, .ip_total = ip                           \
    }

static void test_bin_boundaries_and_windows(void)
{
    // clang-format off
    const ev e[] = {
        /* group 1: edges of bin 0 and 1, last instant of the window */
        {MS(0), UDP4("10.0.0.1", 1000, "10.0.0.2", 53, 100)},
        {US(999999), UDP4("10.0.0.1", 1000, "10.0.0.2", 53, 200)},
        {MS(1000), UDP4("10.0.0.2", 53, "10.0.0.1", 1000, 300)}, /* exactly on bin 1 */
        {US(3999999), UDP4("10.0.0.2", 53, "10.0.0.1", 1000, 86)},
        /* group 2: TCP, one packet per bin over 10 bins → windows 0..3, 4..7, 8..9+pad;
         * the first packet is a SYN from 10.0.0.3, the client */
        {MS(500), {.src = "10.0.0.3", .dst = "10.0.0.4", .sport = 40000, .dport = 80,
                   .proto = 6, .tcp_flags = PARSE_TCP_SYN, .mss = 1460, .ip_total = 60}},
        {MS(1500), {.src = "10.0.0.4", .dst = "10.0.0.3", .sport = 80, .dport = 40000,
                    .proto = 6, .ip_total = 1000}},
        {MS(2500), {.src = "10.0.0.4", .dst = "10.0.0.3", .sport = 80, .dport = 40000,
                    .proto = 6, .ip_total = 1000}},
        {MS(3500), {.src = "10.0.0.4", .dst = "10.0.0.3", .sport = 80, .dport = 40000,
                    .proto = 6, .ip_total = 1000}},
        {MS(4500), {.src = "10.0.0.4", .dst = "10.0.0.3", .sport = 80, .dport = 40000,
                    .proto = 6, .ip_total = 1000}},
        /* bins 5..8 empty: window 1 has one active bin; 10 s is bin 9, in window 2 */
        {MS(10000), {.src = "10.0.0.3", .dst = "10.0.0.4", .sport = 40000, .dport = 80,
                    .proto = 6, .tcp_flags = PARSE_TCP_FIN | PARSE_TCP_ACK, .ip_total = 40}},
        /* group 3: the SYN was missed; the first packet is the SYN-ACK from the server
         * 10.0.0.6:443, so 10.0.0.5 is the client and this packet goes down */
        {MS(600), {.src = "10.0.0.6", .dst = "10.0.0.5", .sport = 443, .dport = 50000,
                   .proto = 6, .tcp_flags = PARSE_TCP_SYN | PARSE_TCP_ACK, .ip_total = 60}},
        {MS(700), {.src = "10.0.0.5", .dst = "10.0.0.6", .sport = 50000, .dport = 443,
                   .proto = 6, .ip_total = 52}},
    };
    // clang-format on
    /* events must be in time order in a pcap: sort by t */
    ev s[sizeof e / sizeof e[0]];
    int n = (int)(sizeof e / sizeof e[0]);
    memcpy(s, e, sizeof e);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && s[j].t < s[j - 1].t; j--) {
            ev t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    capture_opts opt;
    base_opts(&opt);
    win_list l;
    capture_ctx *c = run(s, n, &opt, &l, 0);
    /* Groups number flows in order of their first packet: 1 at 0 ms, 2 at 500, 3 at 600. */
    EXPECT(&l, 1, 0, 0, {{0, 314, 0, 100}, {114 + 214, 0, 0, 0}});
    CHECK_EQ(win_count(&l, 1), 1);
    EXPECT(&l, 2, 0, 0, {{0, 1014, 1014, 1014}, {74, 0, 0, 0}});
    EXPECT(&l, 2, 1, 0, {{1014, 0, 0, 0}, {0, 0, 0, 0}});
    EXPECT(&l, 2, 2, 0, {{0, 0, 0, 0}, {0, 54, 0, 0}});
    CHECK_EQ(win_count(&l, 2), 3);
    EXPECT(&l, 3, 0, 0, {{74, 0, 0, 0}, {66, 0, 0, 0}});
    CHECK_EQ(l.n, 5);
    CHECK_U64_EQ(ctx_counter(c, "flow.input_end"), 3);

    /* Replay statistics of the class. */
    const nd_class_stats *st = capture_ctx_class_stats(c, 0);
    CHECK_U64_EQ(st->flows, 3);
    CHECK_U64_EQ(st->l4_flows[ND_L4_TCP], 2);
    CHECK_U64_EQ(st->l4_flows[ND_L4_UDP], 1);
    CHECK_U64_EQ(st->size_hist[ND_DOWN][1014], 4);
    CHECK_U64_EQ(st->size_hist[ND_UP][114], 1);
    CHECK_U64_EQ(st->mss[0], 1460);
    CHECK_U64_EQ(st->mss_count[0], 1);
    CHECK_U64_EQ(st->ttl_hist[ND_UP][64], 5);
    CHECK_U64_EQ(st->first_flow_ns, T0);
    CHECK_U64_EQ(st->last_flow_ns, T0 + MS(600));
    /* server ports 53, 80, 443: one flow each, smallest first on ties */
    CHECK_EQ(st->port[0], 53);
    CHECK_EQ(st->port[1], 80);
    CHECK_EQ(st->port[2], 443);
    /* inter-arrival inside one bin: group 1 up 0 → 0.999999 s (bucket 29: 2^29 ns =
     * 0.54 s), group 3 none twice in one direction */
    CHECK_U64_EQ(st->iat_hist[ND_UP][29], 1);
    uint64_t iat = 0;
    for (int k = 0; k < ND_IAT_HIST; k++) iat += st->iat_hist[0][k] + st->iat_hist[1][k];
    CHECK_U64_EQ(iat, 1);
    capture_ctx_free(c);
    win_list_free(&l);
}

static void test_timeouts(void)
{
    capture_opts opt;
    base_opts(&opt);
    opt.active_timeout_ns = 6 * ND_NS_PER_SEC;
    ev e[32];
    int n = 0;
    /* group 1: idle timeout. Packets at 0 and 1 s, then silence of 11 s > 10 s. */
    e[n++] = (ev){MS(0), UDP4("10.1.0.1", 1, "10.1.0.2", 2, 100)};
    e[n++] = (ev){MS(1000), UDP4("10.1.0.1", 1, "10.1.0.2", 2, 100)};
    /* group 2: active timeout 6 s: one packet per second 0..9 → cut when t - t0 > 6 s,
     * i.e. at 7 s; the rest (7, 8, 9 s) is group 3 */
    for (int k = 0; k < 10; k++)
        e[n++] = (ev){MS(1000 * k + 100), UDP4("10.1.0.3", 3, "10.1.0.4", 4, 200)};
    /* group 4: same 5-tuple as group 1 after the idle gap */
    e[n++] = (ev){MS(12001), UDP4("10.1.0.2", 2, "10.1.0.1", 1, 300)};
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && e[j].t < e[j - 1].t; j--) {
            ev t = e[j];
            e[j] = e[j - 1];
            e[j - 1] = t;
        }
    win_list l;
    capture_ctx *c = run(e, n, &opt, &l, 0);
    EXPECT(&l, 1, 0, 0, {{0, 0, 0, 0}, {114, 114, 0, 0}});
    CHECK_EQ(win_count(&l, 1), 1);
    EXPECT(&l, 2, 0, 0, {{0, 0, 0, 0}, {214, 214, 214, 214}});
    EXPECT(&l, 2, 1, 0, {{0, 0, 0, 0}, {214, 214, 214, 0}});
    CHECK_EQ(win_count(&l, 2), 2);
    EXPECT(&l, 3, 0, 0, {{0, 0, 0, 0}, {214, 214, 214, 0}});
    /* group 4: 10.1.0.2 sent first this time, so it is the client: up */
    EXPECT(&l, 4, 0, 0, {{0, 0, 0, 0}, {314, 0, 0, 0}});
    CHECK_EQ(l.n, 5);
    /* group 1 only: at 12.001 s group 3 (last packet 9.1 s) is not idle yet */
    CHECK_U64_EQ(ctx_counter(c, "flow.idle_timeout"), 1);
    CHECK_U64_EQ(ctx_counter(c, "flow.active_timeout"), 1);
    capture_ctx_free(c);
    win_list_free(&l);
}

static void test_full_table(void)
{
    capture_opts opt;
    base_opts(&opt);
    opt.flow_capacity = 2;
    const ev e[] = {
        {MS(0), UDP4("10.2.0.1", 1, "10.2.0.9", 9, 100)},    /* X: group 1 */
        {MS(1000), UDP4("10.2.0.2", 1, "10.2.0.9", 9, 100)}, /* Y: group 2 */
        {MS(2000), UDP4("10.2.0.1", 1, "10.2.0.9", 9, 100)}, /* X again: Y is LRU */
        {MS(3000), UDP4("10.2.0.3", 1, "10.2.0.9", 9, 100)}, /* Z: group 3, evicts Y */
        {MS(4000), UDP4("10.2.0.2", 1, "10.2.0.9", 9, 100)}, /* Y: group 4, evicts X */
    };
    win_list l;
    capture_ctx *c = run(e, 5, &opt, &l, 0);
    CHECK_U64_EQ(ctx_counter(c, "flow.evicted"), 2);
    CHECK_EQ(l.w[0].group, 2); /* evicted first */
    CHECK_EQ(l.w[1].group, 1);
    EXPECT(&l, 1, 0, 0, {{0, 0, 0, 0}, {114, 0, 114, 0}});
    EXPECT(&l, 2, 0, 0, {{0, 0, 0, 0}, {114, 0, 0, 0}});
    EXPECT(&l, 3, 0, 0, {{0, 0, 0, 0}, {114, 0, 0, 0}});
    EXPECT(&l, 4, 0, 0, {{0, 0, 0, 0}, {114, 0, 0, 0}});
    CHECK_EQ(l.n, 4);
    capture_ctx_free(c);
    win_list_free(&l);
}

static void test_vlan_ipv6_fragments(void)
{
    capture_opts opt;
    base_opts(&opt);
    // clang-format off
    const ev e[] = {
        /* groups 1-4: one 5-tuple untagged, VLAN 10, VLAN 20, QinQ 100/10: four flows;
         * frames count 4 bytes per tag */
        {MS(0), UDP4("10.3.0.1", 5, "10.3.0.2", 6, 100)},
        {MS(1), {.src = "10.3.0.1", .dst = "10.3.0.2", .sport = 5, .dport = 6, .ip_total = 100,
                 .vlan = {10}}},
        {MS(2), {.src = "10.3.0.1", .dst = "10.3.0.2", .sport = 5, .dport = 6, .ip_total = 100,
                 .vlan = {20}}},
        {MS(3), {.src = "10.3.0.1", .dst = "10.3.0.2", .sport = 5, .dport = 6, .ip_total = 100,
                 .vlan = {100, 10}}},
        /* group 5: IPv6 TCP with two destination-options headers, IPv4 options elsewhere */
        {MS(4), {.ipver = 6, .src = "2001:db8::1", .dst = "2001:db8::2", .sport = 7000,
                 .dport = 22, .proto = 6, .tcp_flags = PARSE_TCP_SYN, .ip_total = 40 + 16 + 20,
                 .v6_ext = 2}},
        {MS(1004), {.ipver = 6, .src = "2001:db8::2", .dst = "2001:db8::1", .sport = 22,
                    .dport = 7000, .proto = 6, .ip_total = 1240, .v6_ext = 2}},
        /* group 6: IPv4 UDP datagram in two fragments (ports only in the first) */
        {MS(5), {.src = "10.3.0.5", .dst = "10.3.0.6", .sport = 4000, .dport = 4001,
                 .ip_total = 1500, .frag = 1, .frag_id = 77, .ip_options = 8}},
        {MS(6), {.src = "10.3.0.5", .dst = "10.3.0.6", .ip_total = 520, .frag = 2,
                 .frag_off = 185, .frag_id = 77}},
        /* a later fragment whose first one never came: counted, not binned */
        {MS(7), {.src = "10.3.0.5", .dst = "10.3.0.6", .ip_total = 520, .frag = 2,
                 .frag_off = 185, .frag_id = 78}},
        /* group 7: IPv6 fragments */
        {MS(8), {.ipver = 6, .src = "2001:db8::5", .dst = "2001:db8::6", .sport = 9,
                 .dport = 10, .ip_total = 1280, .frag = 1, .frag_id = 0x12345}},
        {MS(9), {.ipver = 6, .src = "2001:db8::5", .dst = "2001:db8::6", .ip_total = 400,
                 .frag = 2, .frag_off = 154, .frag_id = 0x12345}},
        /* snaplen: a 1000-byte IP packet of which 60 bytes were kept counts 1014 */
        {MS(10), UDP4("10.3.0.1", 5, "10.3.0.2", 6, 1000), .caplen = 60},
        /* malformed: IPv4 header cut after 10 bytes */
        {MS(11), UDP4("10.3.0.7", 5, "10.3.0.8", 6, 100), .caplen = 24},
        /* ICMP echo: one flow per identifier */
        {MS(12), {.src = "10.3.0.9", .dst = "10.3.0.10", .proto = 1, .icmp_id = 42,
                  .ip_total = 84}},
    };
    // clang-format on
    win_list l;
    capture_ctx *c = run(e, (int)(sizeof e / sizeof e[0]), &opt, &l, 0);
    EXPECT(&l, 1, 0, 0, {{0, 0, 0, 0}, {114 + 1014, 0, 0, 0}});
    EXPECT(&l, 2, 0, 0, {{0, 0, 0, 0}, {118, 0, 0, 0}});
    EXPECT(&l, 3, 0, 0, {{0, 0, 0, 0}, {118, 0, 0, 0}});
    EXPECT(&l, 4, 0, 0, {{0, 0, 0, 0}, {122, 0, 0, 0}});
    EXPECT(&l, 5, 0, 0, {{0, 1254, 0, 0}, {90, 0, 0, 0}});
    EXPECT(&l, 6, 0, 0, {{0, 0, 0, 0}, {1514 + 534, 0, 0, 0}});
    EXPECT(&l, 7, 0, 0, {{0, 0, 0, 0}, {1294 + 414, 0, 0, 0}});
    EXPECT(&l, 8, 0, 0, {{0, 0, 0, 0}, {98, 0, 0, 0}});
    CHECK_EQ(l.n, 8);
    CHECK_U64_EQ(ctx_counter(c, "flow.orphan_fragment"), 1);
    CHECK_U64_EQ(ctx_counter(c, "parse.truncated_ipv4"), 1);
    const nd_class_stats *st = capture_ctx_class_stats(c, 0);
    CHECK_U64_EQ(st->ipv6_flows, 2);
    CHECK_U64_EQ(st->l4_flows[ND_L4_OTHER], 1);
    capture_ctx_free(c);
    win_list_free(&l);
}

static void test_classes(void)
{
    capture_opts opt;
    base_opts(&opt);
    static const char *const rules[][2] = {{"web", "tcp port 80 or tcp port 443"},
                                           {"dns", "udp port 53"}};
    opts_classes(&opt, 2, rules);
    // clang-format off
    const ev e[] = {
        {MS(0), {.src = "10.4.0.1", .dst = "10.4.0.2", .sport = 1234, .dport = 443, .proto = 6,
                 .tcp_flags = PARSE_TCP_SYN}},
        {MS(1), UDP4("10.4.0.1", 1234, "10.4.0.3", 53, 60)},
        {MS(2), UDP4("10.4.0.1", 1234, "10.4.0.3", 5353, 60)},
        /* reply of the web flow: the class was set by the first packet */
        {MS(3), {.src = "10.4.0.2", .dst = "10.4.0.1", .sport = 443, .dport = 1234, .proto = 6,
                 .tcp_flags = PARSE_TCP_SYN | PARSE_TCP_ACK}},
    };
    // clang-format on
    win_list l;
    capture_ctx *c = run(e, 4, &opt, &l, 0);
    CHECK_EQ(capture_ctx_n_classes(c), 3);
    CHECK_STR_EQ(capture_ctx_class_name(c, 0), "web");
    CHECK_STR_EQ(capture_ctx_class_name(c, 1), "dns");
    CHECK_STR_EQ(capture_ctx_class_name(c, 2), "other");
    EXPECT(&l, 1, 0, 0, {{54, 0, 0, 0}, {54, 0, 0, 0}});
    EXPECT(&l, 2, 0, 1, {{0, 0, 0, 0}, {74, 0, 0, 0}});
    EXPECT(&l, 3, 0, 2, {{0, 0, 0, 0}, {74, 0, 0, 0}});
    CHECK_U64_EQ(ctx_counter(c, "class.unmatched"), 1);
    CHECK_U64_EQ(ctx_counter(c, "class.unmatched_dropped"), 0);
    capture_ctx_free(c);
    win_list_free(&l);

    /* No default class: unmatched flows are dropped, and counted. */
    opt.default_class = NULL;
    c = run(e, 4, &opt, &l, 0);
    CHECK_EQ(capture_ctx_n_classes(c), 2);
    CHECK_EQ(l.n, 2);
    CHECK_U64_EQ(ctx_counter(c, "class.unmatched_dropped"), 1);
    capture_ctx_free(c);
    win_list_free(&l);

    /* The context copies the rules and names: the caller's strings may go as soon as it
     * exists (the filters compile again for each new link type; ASan sees late reads). */
    char *str[5] = {strdup("web"), strdup("tcp port 80 or tcp port 443"), strdup("dns"),
                    strdup("udp port 53"), strdup("other")};
    capture_opts *tmp = malloc(sizeof *tmp);
    CHECK(tmp && str[0] && str[1] && str[2] && str[3] && str[4]);
    *tmp = opt;
    tmp->classes[0] = (capture_class){str[0], str[1]};
    tmp->classes[1] = (capture_class){str[2], str[3]};
    tmp->default_class = str[4];
    nd_error err = {0};
    l = (win_list){.C = opt.channels, .L = opt.window};
    c = capture_ctx_new(tmp, NULL, win_collect, &l, &err);
    CHECK(c);
    for (int i = 0; i < 5; i++) free(str[i]);
    free(tmp);
    write_events(e, 4, 0);
    char spec[300];
    snprintf(spec, sizeof spec, "pcap:%s", path);
    const char *specs[] = {spec};
    CHECK_EQ(capture_run(c, specs, 1, &opt, NULL, 0, &err), 0);
    CHECK_STR_EQ(capture_ctx_class_name(c, 1), "dns");
    CHECK_STR_EQ(capture_ctx_class_name(c, 2), "other");
    EXPECT(&l, 1, 0, 0, {{54, 0, 0, 0}, {54, 0, 0, 0}});
    EXPECT(&l, 2, 0, 1, {{0, 0, 0, 0}, {74, 0, 0, 0}});
    EXPECT(&l, 3, 0, 2, {{0, 0, 0, 0}, {74, 0, 0, 0}});
    capture_ctx_free(c);
    win_list_free(&l);

    /* A filter libpcap rejects fails at creation, naming the class. */
    opt.classes[1].filter = "udp prot 53";
    CHECK(!capture_ctx_new(&opt, NULL, NULL, NULL, &err));
    CHECK_EQ(err.code, ND_ECONFIG);
    CHECK_CONTAINS(err.msg, "class 'dns'");
    CHECK_CONTAINS(err.msg, "udp prot 53");

    /* A forced class ignores the rules. */
    c = capture_ctx_new(&opt, "video", NULL, NULL, &err);
    CHECK(c);
    CHECK_EQ(capture_ctx_n_classes(c), 1);
    CHECK_STR_EQ(capture_ctx_class_name(c, 0), "video");
    capture_ctx_free(c);
}

static void test_backwards_sparse_packets_nano(void)
{
    capture_opts opt;
    base_opts(&opt);
    opt.min_active_bins = 2;
    opt.channels = 4;
    const ev e[] = {
        {MS(2000), UDP4("10.5.0.1", 1, "10.5.0.2", 2, 100)},
        {MS(1000), UDP4("10.5.0.2", 2, "10.5.0.1", 1, 100)},     /* back in time: bin 0 */
        {MS(3000) + 1, UDP4("10.5.0.1", 1, "10.5.0.2", 2, 100)}, /* ns stamp: bin 1 */
        {MS(2500), UDP4("10.5.0.3", 1, "10.5.0.4", 2, 100)},     /* one active bin: dropped */
    };
    win_list l;
    capture_ctx *c = run(e, 4, &opt, &l, 1);
    CHECK_EQ(l.n, 1);
    const win_rec *w = win_find(&l, 1, 0);
    CHECK(w);
    const float want[4][L_] = {{114, 0, 0, 0}, {114, 114, 0, 0}, {1, 0, 0, 0}, {1, 1, 0, 0}};
    for (int ch = 0; ch < 4; ch++)
        for (int b = 0; b < L_; b++)
            if (w->v[ch * L_ + b] != want[ch][b])
                CHECK_FAIL_("channel %d bin %d: %g, expected %g", ch, b, w->v[ch * L_ + b],
                            want[ch][b]);
    CHECK_U64_EQ(ctx_counter(c, "bin.ts_backwards"), 1);
    CHECK_U64_EQ(ctx_counter(c, "bin.window_sparse"), 1);
    capture_ctx_free(c);
    win_list_free(&l);
}

/* ------------------------------------------------------------------------------------ */
/* File formats: the same packets as little-endian µs pcap (libpcap's writer), big-endian
 * ns pcap and pcapng (both written by hand here) give the same windows. */

static void be32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 4, f);
}
static void be16(FILE *f, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 2, f);
}
static void le32(FILE *f, uint32_t v) { fwrite(&v, 1, 4, f); } /* x86: host order is LE */
static void le16(FILE *f, uint16_t v) { fwrite(&v, 1, 2, f); }

static void test_file_formats(void)
{
    static const char *const addr[5] = {"10.6.0.1", "10.6.0.2", "10.6.0.3", "10.6.0.4",
                                        "10.6.0.5"};
    ev e[60];
    int n = 0;
    for (int i = 0; i < 60; i++)
        e[n++] =
            (ev){MS(137 * i), UDP4(addr[i % 5], 1000, "10.6.1.1", 53, (uint32_t)(60 + 7 * i))};
    capture_opts opt;
    base_opts(&opt);
    win_list ref;
    capture_ctx *c = run(e, n, &opt, &ref, 0);
    capture_ctx_free(c);
    CHECK_EQ(ref.n, 10); /* 5 flows over 8 s: two windows of 4 bins each */

    static uint8_t buf[16384];
    char alt[300], spec[320];
    for (int fmt = 0; fmt < 2; fmt++) {
        snprintf(alt, sizeof alt, "%s.%s", path, fmt ? "pcapng" : "be.pcap");
        FILE *f = fopen(alt, "wb");
        CHECK(f);
        if (fmt == 0) { /* big-endian, nanosecond magic */
            be32(f, 0xa1b23c4d);
            be16(f, 2);
            be16(f, 4);
            be32(f, 0);
            be32(f, 0);
            be32(f, 65535);
            be32(f, 1);
        } else { /* pcapng: section header, one Ethernet interface with µs resolution */
            le32(f, 0x0A0D0D0A);
            le32(f, 28);
            le32(f, 0x1A2B3C4D);
            le16(f, 1);
            le16(f, 0);
            le32(f, 0xffffffff);
            le32(f, 0xffffffff);
            le32(f, 28);
            le32(f, 1);
            le32(f, 20);
            le16(f, 1);
            le16(f, 0);
            le32(f, 65535);
            le32(f, 20);
        }
        for (int i = 0; i < n; i++) {
            uint32_t len = (uint32_t)pkt_build(buf, &e[i].s);
            uint64_t ts = T0 + e[i].t;
            if (fmt == 0) {
                be32(f, (uint32_t)(ts / ND_NS_PER_SEC));
                be32(f, (uint32_t)(ts % ND_NS_PER_SEC));
                be32(f, len);
                be32(f, len);
                fwrite(buf, 1, len, f);
            } else { /* enhanced packet block, timestamp in µs split high/low */
                uint32_t pad = (4 - len % 4) % 4, blen = 32 + len + pad;
                uint64_t us = ts / 1000;
                le32(f, 6);
                le32(f, blen);
                le32(f, 0);
                le32(f, (uint32_t)(us >> 32));
                le32(f, (uint32_t)us);
                le32(f, len);
                le32(f, len);
                fwrite(buf, 1, len, f);
                fwrite("\0\0\0", 1, pad, f);
                le32(f, blen);
            }
        }
        fclose(f);
        win_list l;
        nd_error err = {0};
        int rc;
        snprintf(spec, sizeof spec, "pcap:%s", alt);
        c = capture_into(spec, &opt, &l, &rc, &err);
        if (rc) CHECK_FAIL_("%s", err.msg);
        win_list_check_equal(&l, &ref, alt);
        capture_ctx_free(c);
        win_list_free(&l);
        unlink(alt);
    }
    win_list_free(&ref);
}

int main(void)
{
    snprintf(path, sizeof path, "windows-%d.pcap", (int)getpid());
    test_bin_boundaries_and_windows();
    test_timeouts();
    test_full_table();
    test_vlan_ipv6_fragments();
    test_classes();
    test_backwards_sparse_packets_nano();
    test_file_formats();
    unlink(path);
    printf("ok\n");
    return 0;
}
