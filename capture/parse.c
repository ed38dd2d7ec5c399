/*
 * parse.c — packet headers for the flow table: link layer (Ethernet with up to two VLAN
 * tags, Linux cooked v1/v2, BSD loopback, raw IP), IPv4 (options, fragments), IPv6
 * (extension headers, fragments), TCP (flags, MSS), UDP, ICMP/ICMPv6.
 *
 * First stage after a source. Stateless: fragments are tied to their flow by the caller
 * (capture.c) through frag_id. Every read is bounded by the captured length and by the
 * IP total length; anything that does not fit is a named parse_status, never a crash.
 */
#include <string.h>

#include "capture.h"

static const char *const status_names[PARSE_N_STATUS] = {
    [PARSE_OK] = "parse.ok",
    [PARSE_LINKTYPE] = "parse.unknown_linktype",
    [PARSE_TRUNC_L2] = "parse.truncated_l2",
    [PARSE_TRUNC_VLAN] = "parse.truncated_vlan",
    [PARSE_VLAN_DEPTH] = "parse.too_many_vlan_tags",
    [PARSE_NOT_IP] = "parse.not_ip",
    [PARSE_TRUNC_IPV4] = "parse.truncated_ipv4",
    [PARSE_BAD_IPV4] = "parse.bad_ipv4_header",
    [PARSE_TRUNC_IPV6] = "parse.truncated_ipv6",
    [PARSE_BAD_IPV6] = "parse.bad_ipv6_header",
    [PARSE_BAD_IPV6_EXT] = "parse.bad_ipv6_ext_header",
    [PARSE_TRUNC_L4] = "parse.truncated_l4",
    [PARSE_BAD_TCP] = "parse.bad_tcp_header",
};

const char *parse_status_name(int status)
{
    if (status < 0 || status >= PARSE_N_STATUS) return "parse.unknown";
    return status_names[status];
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum {
    ETH_IPV4 = 0x0800,
    ETH_IPV6 = 0x86DD,
    ETH_VLAN = 0x8100,
    ETH_QINQ = 0x88A8,
    ETH_QINQ_OLD = 0x9100
};

/* TCP options of a SYN: the MSS (kind 2, length 4), or 0. opt/len are bounded by both the
 * data offset and the captured bytes. */
static uint16_t tcp_mss(const uint8_t *opt, uint32_t len)
{
    uint32_t i = 0;
    while (i < len) {
        uint8_t kind = opt[i];
        if (kind == 0) break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= len) break;
        uint8_t olen = opt[i + 1];
        if (olen < 2 || i + olen > len) break;
        if (kind == 2 && olen == 4) return rd16(opt + i + 2);
        i += olen;
    }
    return 0;
}

/* Transport header at p, n bytes available (captured and inside the IP payload),
 * ip_payload = bytes of payload the IP header announces (for the TCP offset check). */
static int parse_l4(const uint8_t *p, uint32_t n, uint32_t ip_payload, parse_info *out)
{
    switch (out->proto) {
    case 6: { /* TCP */
        if (n < 20) return PARSE_TRUNC_L4;
        uint32_t doff = (uint32_t)(p[12] >> 4) * 4;
        if (doff < 20 || doff > ip_payload) return PARSE_BAD_TCP;
        out->sport = rd16(p);
        out->dport = rd16(p + 2);
        out->tcp_flags = p[13];
        if (p[13] & PARSE_TCP_SYN) {
            uint32_t optlen = (doff < n ? doff : n) - 20; /* snaplen may cut options */
            out->mss = tcp_mss(p + 20, optlen);
        }
        return PARSE_OK;
    }
    case 17:  /* UDP */
    case 136: /* UDP-Lite: same port layout */
        if (n < 8) return PARSE_TRUNC_L4;
        out->sport = rd16(p);
        out->dport = rd16(p + 2);
        return PARSE_OK;
    case 1:    /* ICMP */
    case 58: { /* ICMPv6 */
        if (n < 4) return PARSE_TRUNC_L4;
        uint8_t type = p[0];
        int echo = out->proto == 1 ? (type == 8 || type == 0) : (type == 128 || type == 129);
        if (echo) { /* request and reply share the identifier: one flow per ping session */
            if (n < 8) return PARSE_TRUNC_L4;
            out->sport = out->dport = rd16(p + 4);
        }
        return PARSE_OK;
    }
    default: /* other protocols: a flow per address pair and protocol */ return PARSE_OK;
    }
}

static int parse_ipv4(const uint8_t *p, uint32_t n, parse_info *out)
{
    if (n < 20) return PARSE_TRUNC_IPV4;
    uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;
    uint32_t total = rd16(p + 2);
    if (p[0] >> 4 != 4 || ihl < 20 || total < ihl) return PARSE_BAD_IPV4;
    if (n < ihl) return PARSE_TRUNC_IPV4;
    out->ipver = 4;
    out->ttl = p[8];
    out->proto = p[9];
    memcpy(out->src, p + 12, 4);
    memcpy(out->dst, p + 16, 4);
    out->bytes += total;
    uint16_t fl = rd16(p + 6);
    uint32_t off = fl & 0x1fff;
    out->frag_id = rd16(p + 4);
    if (off) {
        out->frag = PARSE_FRAG_LATER;
        return PARSE_OK;
    }
    if (fl & 0x2000) out->frag = PARSE_FRAG_FIRST;
    uint32_t end = total < n ? total : n; /* past total: Ethernet padding */
    return parse_l4(p + ihl, end - ihl, total - ihl, out);
}

static int parse_ipv6(const uint8_t *p, uint32_t n, parse_info *out)
{
    if (n < 40) return PARSE_TRUNC_IPV6;
    if (p[0] >> 4 != 6) return PARSE_BAD_IPV6;
    uint32_t total = 40 + (uint32_t)rd16(p + 4);
    out->ipver = 6;
    out->ttl = p[7];
    memcpy(out->src, p + 8, 16);
    memcpy(out->dst, p + 24, 16);
    out->bytes += total;
    uint32_t end = total < n ? total : n;
    uint32_t off = 40;
    uint8_t nh = p[6];
    /* Extension headers; a chain longer than 8 is an attack or garbage. */
    for (int depth = 0;; depth++) {
        uint32_t len;
        switch (nh) {
        case 0:
        case 43:
        case 60:
        case 135:
        case 139:
        case 140: /* hop, routing, dest, ... */
            if (depth >= 8 || off + 8 > end) return PARSE_BAD_IPV6_EXT;
            len = ((uint32_t)p[off + 1] + 1) * 8;
            break;
        case 51: /* AH: length in 4-byte words minus 2 */
            if (depth >= 8 || off + 8 > end) return PARSE_BAD_IPV6_EXT;
            len = ((uint32_t)p[off + 1] + 2) * 4;
            break;
        case 44: { /* fragment */
            if (depth >= 8 || off + 8 > end) return PARSE_BAD_IPV6_EXT;
            uint16_t fo = rd16(p + off + 2);
            out->frag_id = rd32(p + off + 4);
            if (fo >> 3) { /* not the first fragment: no transport header here */
                out->proto = p[off];
                out->frag = PARSE_FRAG_LATER;
                return PARSE_OK;
            }
            if (fo & 1) out->frag = PARSE_FRAG_FIRST;
            len = 8;
            break;
        }
        default: out->proto = nh; return parse_l4(p + off, end - off, total - off, out);
        }
        if (off + len > end) return PARSE_BAD_IPV6_EXT;
        nh = p[off];
        off += len;
    }
}

int parse_packet(const uint8_t *data, uint32_t caplen, int linktype, parse_info *out)
{
    memset(out, 0, sizeof *out);
    uint32_t off;
    uint16_t etype;
    switch (linktype) {
    case CAPTURE_LINK_ETHERNET: {
        if (caplen < 14) return PARSE_TRUNC_L2;
        etype = rd16(data + 12);
        off = 14;
        uint32_t ids[2], tags = 0;
        while (etype == ETH_VLAN || etype == ETH_QINQ || etype == ETH_QINQ_OLD) {
            if (tags == 2) return PARSE_VLAN_DEPTH;
            if (caplen < off + 4) return PARSE_TRUNC_VLAN;
            ids[tags++] = rd16(data + off) & 0x0fff;
            etype = rd16(data + off + 2);
            off += 4;
        }
        if (tags) out->vlan = tags << 24 | ids[0] << 12 | (tags == 2 ? ids[1] : 0);
        out->bytes = 14 + 4 * tags;
        break;
    }
    case CAPTURE_LINK_SLL:
        if (caplen < 16) return PARSE_TRUNC_L2;
        etype = rd16(data + 14);
        off = 16;
        out->bytes = 14;
        break;
    case CAPTURE_LINK_SLL2:
        if (caplen < 20) return PARSE_TRUNC_L2;
        etype = rd16(data);
        off = 20;
        out->bytes = 14;
        break;
    case CAPTURE_LINK_NULL:
    case CAPTURE_LINK_LOOP: {
        if (caplen < 4) return PARSE_TRUNC_L2;
        /* NULL stores the family in the capturing host's byte order: accept both. */
        uint32_t fam = rd32(data);
        if (linktype == CAPTURE_LINK_NULL && fam > 0xffff)
            fam = (fam >> 24) | ((fam >> 8) & 0xff00);
        /* AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24, 28 or 30 (BSDs, macOS). */
        etype = fam == 2                                             ? ETH_IPV4
                : (fam == 10 || fam == 24 || fam == 28 || fam == 30) ? ETH_IPV6
                                                                     : 0;
        off = 4;
        out->bytes = 14;
        break;
    }
    case CAPTURE_LINK_RAW:
    case 12: /* DLT_RAW on some BSDs */
    case 14:
    case CAPTURE_LINK_IPV4:
    case CAPTURE_LINK_IPV6:
        if (caplen < 1) return PARSE_TRUNC_L2;
        etype = (data[0] >> 4) == 4 ? ETH_IPV4 : (data[0] >> 4) == 6 ? ETH_IPV6 : 0;
        off = 0;
        out->bytes = 14;
        break;
    default: return PARSE_LINKTYPE;
    }
    out->l2_len = (uint8_t)off;
    if (etype == ETH_IPV4) return parse_ipv4(data + off, caplen - off, out);
    if (etype == ETH_IPV6) return parse_ipv6(data + off, caplen - off, out);
    return PARSE_NOT_IP;
}
