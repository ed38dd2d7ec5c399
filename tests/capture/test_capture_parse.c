/*
 * test_capture_parse.c — the packet parser: every link type, VLAN/QinQ, IPv4 options and
 * fragments, IPv6 extension headers and fragments, TCP MSS, ICMP echo ids; each
 * malformed case under its named reason; every prefix of every test packet (in a buffer
 * of exactly that size, so that the sanitizer build catches any read past it) and random
 * mutations never crash and never succeed on a cut header.
 */
#include <stdio.h>

#include "pktgen.h"

static int parse_exact(const uint8_t *pkt, size_t len, int lt, parse_info *pi)
{
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees one byte too far */
    CHECK(copy);
    memcpy(copy, pkt, len);
    int rc = parse_packet(copy, (uint32_t)len, lt, pi);
    free(copy);
    return rc;
}

static void test_link_types(void)
{
    uint8_t eth[16384], buf[16384];
    pkt_spec s = {.src = "192.0.2.1",
                  .dst = "192.0.2.2",
                  .sport = 1111,
                  .dport = 2222,
                  .proto = 6,
                  .tcp_flags = PARSE_TCP_SYN,
                  .mss = 1360,
                  .ip_total = 300,
                  .ttl = 33};
    size_t len = pkt_build(eth, &s);
    parse_info pi;
    CHECK_EQ(parse_exact(eth, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    CHECK_EQ(pi.ipver, 4);
    CHECK_EQ(pi.proto, 6);
    CHECK_EQ(pi.sport, 1111);
    CHECK_EQ(pi.dport, 2222);
    CHECK_EQ(pi.mss, 1360);
    CHECK_EQ(pi.ttl, 33);
    CHECK_EQ(pi.bytes, 314);
    CHECK_EQ(pi.l2_len, 14);
    CHECK_EQ(pi.src[0], 192);
    CHECK_EQ(pi.dst[3], 2);
    size_t iplen = len - 14;

    /* Linux cooked v1: 16-byte header, protocol at 14 */
    memset(buf, 0, 16);
    put16(buf + 14, 0x0800);
    memcpy(buf + 16, eth + 14, iplen);
    CHECK_EQ(parse_exact(buf, 16 + iplen, CAPTURE_LINK_SLL, &pi), PARSE_OK);
    CHECK_EQ(pi.bytes, 314); /* counted as on Ethernet */
    CHECK_EQ(pi.dport, 2222);
    /* v2: 20 bytes, protocol first */
    memset(buf, 0, 20);
    put16(buf, 0x0800);
    memcpy(buf + 20, eth + 14, iplen);
    CHECK_EQ(parse_exact(buf, 20 + iplen, CAPTURE_LINK_SLL2, &pi), PARSE_OK);
    CHECK_EQ(pi.sport, 1111);
    /* BSD loopback, family in either byte order; OpenBSD loop in network order */
    memcpy(buf, "\x02\x00\x00\x00", 4);
    memcpy(buf + 4, eth + 14, iplen);
    CHECK_EQ(parse_exact(buf, 4 + iplen, CAPTURE_LINK_NULL, &pi), PARSE_OK);
    memcpy(buf, "\x00\x00\x00\x02", 4);
    CHECK_EQ(parse_exact(buf, 4 + iplen, CAPTURE_LINK_NULL, &pi), PARSE_OK);
    CHECK_EQ(parse_exact(buf, 4 + iplen, CAPTURE_LINK_LOOP, &pi), PARSE_OK);
    memcpy(buf, "\x00\x00\x00\x07", 4);
    CHECK_EQ(parse_exact(buf, 4 + iplen, CAPTURE_LINK_LOOP, &pi), PARSE_NOT_IP);
    /* raw IP */
    CHECK_EQ(parse_exact(eth + 14, iplen, CAPTURE_LINK_RAW, &pi), PARSE_OK);
    CHECK_EQ(pi.bytes, 314);
    CHECK_EQ(parse_exact(eth + 14, iplen, CAPTURE_LINK_IPV4, &pi), PARSE_OK);
    /* unknown link type */
    CHECK_EQ(parse_exact(eth, len, 147, &pi), PARSE_LINKTYPE);
    CHECK_STR_EQ(parse_status_name(PARSE_LINKTYPE), "parse.unknown_linktype");

    /* IPv6 over raw IP, with a fragment header of a first fragment */
    pkt_spec s6 = {.ipver = 6,
                   .src = "2001:db8::a",
                   .dst = "2001:db8::b",
                   .sport = 5,
                   .dport = 6,
                   .frag = 1,
                   .frag_id = 0xdeadbeef,
                   .v6_ext = 1};
    len = pkt_build(eth, &s6);
    CHECK_EQ(parse_exact(eth + 14, len - 14, CAPTURE_LINK_RAW, &pi), PARSE_OK);
    CHECK_EQ(pi.ipver, 6);
    CHECK_EQ(pi.frag, PARSE_FRAG_FIRST);
    CHECK_U64_EQ(pi.frag_id, 0xdeadbeef);
    CHECK_EQ(pi.sport, 5);
    CHECK_EQ(parse_exact(eth + 14, len - 14, CAPTURE_LINK_IPV6, &pi), PARSE_OK);
}

static void test_malformed(void)
{
    uint8_t p[16384];
    parse_info pi;
    pkt_spec s = {.src = "192.0.2.1",
                  .dst = "192.0.2.2",
                  .sport = 1,
                  .dport = 2,
                  .proto = 6,
                  .ip_total = 100};
    size_t len = pkt_build(p, &s);
    /* three VLAN tags */
    uint8_t q[16384];
    memcpy(q, p, 12);
    for (int t = 0; t < 3; t++) {
        put16(q + 12 + 4 * t, 0x8100);
        put16(q + 14 + 4 * t, (uint16_t)(t + 1));
    }
    memcpy(q + 24, p + 12, len - 12);
    CHECK_EQ(parse_exact(q, len + 12, CAPTURE_LINK_ETHERNET, &pi), PARSE_VLAN_DEPTH);
    /* QinQ key */
    pkt_spec sq = s;
    sq.vlan[0] = 300, sq.vlan[1] = 7;
    size_t lq = pkt_build(q, &sq);
    CHECK_EQ(parse_exact(q, lq, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    CHECK_U64_EQ(pi.vlan, 2u << 24 | 300u << 12 | 7u);
    CHECK_EQ(pi.bytes, 122);
    /* ARP */
    memcpy(q, p, len);
    put16(q + 12, 0x0806);
    CHECK_EQ(parse_exact(q, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_NOT_IP);
    /* IHL 4, total length below the header, wrong version */
    memcpy(q, p, len);
    q[14] = 0x44;
    CHECK_EQ(parse_exact(q, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_BAD_IPV4);
    memcpy(q, p, len);
    put16(q + 16, 19);
    CHECK_EQ(parse_exact(q, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_BAD_IPV4);
    memcpy(q, p, len);
    q[14] = 0x55;
    CHECK_EQ(parse_exact(q, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_BAD_IPV4);
    /* TCP data offset 4 words, and beyond the IP payload */
    memcpy(q, p, len);
    q[14 + 20 + 12] = 0x40;
    CHECK_EQ(parse_exact(q, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_BAD_TCP);
    memcpy(q, p, len);
    q[14 + 20 + 12] = 0xf0; /* 60 bytes > 80 - 20? no: IP payload is 80: fits */
    CHECK_EQ(parse_exact(q, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    put16(q + 16, 20 + 40);
    CHECK_EQ(parse_exact(q, len, CAPTURE_LINK_ETHERNET, &pi), PARSE_BAD_TCP);
    /* Ethernet padding is not payload: a 46-byte IP packet padded to 60 bytes counts 60
     * (14 + 46), and a TCP header in the padding is not read */
    pkt_spec su = {.src = "192.0.2.1", .dst = "192.0.2.2", .sport = 1, .dport = 2};
    size_t lu = pkt_build(q, &su);
    CHECK_EQ(lu, 42);
    CHECK_EQ(parse_exact(q, 60, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    CHECK_EQ(pi.bytes, 42);
    put16(q + 16, 24); /* IP says 24 bytes: the UDP header does not fit in it */
    CHECK_EQ(parse_exact(q, 60, CAPTURE_LINK_ETHERNET, &pi), PARSE_TRUNC_L4);
    /* IPv6: version 5, and a chain of 9 extension headers */
    pkt_spec s6 = {.ipver = 6,
                   .src = "2001:db8::a",
                   .dst = "2001:db8::b",
                   .v6_ext = 9,
                   .sport = 1,
                   .dport = 2};
    size_t l6 = pkt_build(q, &s6);
    CHECK_EQ(parse_exact(q, l6, CAPTURE_LINK_ETHERNET, &pi), PARSE_BAD_IPV6_EXT);
    s6.v6_ext = 8;
    l6 = pkt_build(q, &s6);
    CHECK_EQ(parse_exact(q, l6, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    q[14] = 0x50;
    CHECK_EQ(parse_exact(q, l6, CAPTURE_LINK_ETHERNET, &pi), PARSE_BAD_IPV6);
    /* later fragments carry no ports */
    pkt_spec sf = {.src = "192.0.2.1",
                   .dst = "192.0.2.2",
                   .frag = 2,
                   .frag_off = 10,
                   .frag_id = 9,
                   .ip_total = 200};
    size_t lf = pkt_build(q, &sf);
    CHECK_EQ(parse_exact(q, lf, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    CHECK_EQ(pi.frag, PARSE_FRAG_LATER);
    CHECK_EQ(pi.sport, 0);
    CHECK_EQ(pi.frag_id, 9);
    /* ICMP echo: identifier as both ports; ICMPv6 too */
    pkt_spec si = {.src = "192.0.2.1", .dst = "192.0.2.2", .proto = 1, .icmp_id = 777};
    size_t li = pkt_build(q, &si);
    CHECK_EQ(parse_exact(q, li, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    CHECK_EQ(pi.sport, 777);
    CHECK_EQ(pi.dport, 777);
    pkt_spec si6 = {
        .ipver = 6, .src = "2001:db8::a", .dst = "2001:db8::b", .proto = 58, .icmp_id = 778};
    li = pkt_build(q, &si6);
    CHECK_EQ(parse_exact(q, li, CAPTURE_LINK_ETHERNET, &pi), PARSE_OK);
    CHECK_EQ(pi.sport, 778);
}

/* Every prefix: a cut inside the headers is an error, a cut after them parses the same. */
static void test_prefixes(void)
{
    // clang-format off
    const pkt_spec specs[] = {
        {.src = "10.0.0.1", .dst = "10.0.0.2", .sport = 1, .dport = 2, .ip_total = 100},
        {.src = "10.0.0.1", .dst = "10.0.0.2", .sport = 1, .dport = 2, .proto = 6,
         .tcp_flags = PARSE_TCP_SYN, .mss = 1460, .ip_options = 12, .vlan = {5, 6}},
        {.ipver = 6, .src = "::1", .dst = "::2", .sport = 1, .dport = 2, .proto = 6,
         .v6_ext = 3, .frag = 1, .frag_id = 4},
        {.ipver = 6, .src = "::1", .dst = "::2", .proto = 58, .icmp_id = 3, .vlan = {9}},
        {.src = "10.0.0.1", .dst = "10.0.0.2", .frag = 2, .frag_off = 3, .frag_id = 1},
    };
    // clang-format on
    uint8_t p[16384];
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        size_t len = pkt_build(p, &specs[k]);
        parse_info full, pi;
        CHECK_EQ(parse_exact(p, len, CAPTURE_LINK_ETHERNET, &full), PARSE_OK);
        int seen_ok = 0;
        for (size_t n = 0; n <= len; n++) {
            int rc = parse_exact(p, n, CAPTURE_LINK_ETHERNET, &pi);
            if (rc == PARSE_OK) {
                seen_ok = 1;
                CHECK_EQ(pi.bytes, full.bytes);
                CHECK_EQ(pi.sport, full.sport);
                CHECK_EQ(pi.proto, full.proto);
            } else {
                /* once the headers fit, every longer prefix parses */
                if (seen_ok)
                    CHECK_FAIL_("packet %zu: prefix %zu fails (%s) after a shorter "
                                "one parsed",
                                k, n, parse_status_name(rc));
            }
        }
    }
}

/* Random bytes and random mutations of valid packets: only named outcomes, no crash. */
static void test_mutations(void)
{
    uint64_t seed = 7;
    uint8_t p[16384];
    const int lts[] = {CAPTURE_LINK_ETHERNET, CAPTURE_LINK_RAW, CAPTURE_LINK_SLL,
                       CAPTURE_LINK_SLL2, CAPTURE_LINK_NULL};
    uint64_t outcomes[PARSE_N_STATUS] = {0};
    for (int it = 0; it < 200000; it++) {
        pkt_spec s = {.ipver = it & 1 ? 6 : 4,
                      .src = it & 1 ? "::1" : "1.2.3.4",
                      .dst = it & 1 ? "::2" : "5.6.7.8",
                      .proto = (uint8_t)(it % 3 ? 6 : 17),
                      .sport = 1,
                      .dport = 2,
                      .v6_ext = (uint8_t)(it % 4),
                      .ip_options = (uint8_t)(4 * (it % 3)),
                      .vlan = {(uint16_t)(it % 5)}};
        size_t len = pkt_build(p, &s);
        int flips = 1 + (int)(mix_rand(&seed) % 6);
        for (int f = 0; f < flips; f++) p[mix_rand(&seed) % 80] = (uint8_t)mix_rand(&seed);
        size_t n = mix_rand(&seed) % (len + 1);
        parse_info pi;
        int rc = parse_exact(p, n, lts[it % 5], &pi);
        CHECK(rc >= 0 && rc < PARSE_N_STATUS);
        outcomes[rc]++;
        if (rc == PARSE_OK) CHECK(pi.ipver == 4 || pi.ipver == 6);
    }
    CHECK(outcomes[PARSE_OK] > 1000);
}

int main(void)
{
    test_link_types();
    test_malformed();
    test_prefixes();
    test_mutations();
    printf("ok\n");
    return 0;
}
