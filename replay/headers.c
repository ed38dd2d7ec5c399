/*
 * headers.c — packet descriptor → frame bytes: Ethernet, IPv4 or IPv6, TCP or UDP, with
 * correct checksums (or the pseudo-header sum that NIC checksum offload expects).
 *
 * Payload bytes are zeros (but for the header of the protocol the server port names,
 * replay_impl.h): the replay reproduces sizes and timing, never content. Zeros add
 * nothing to the ones'-complement sum, so each checksum costs the headers only.
 */
#include "replay_impl.h"

static inline void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Adds big-endian 16-bit words of p[0..n) (n even) to a 32-bit ones'-complement sum. */
static inline uint32_t sum16(uint32_t s, const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i += 2) s += (uint32_t)p[i] << 8 | p[i + 1];
    return s;
}

static inline uint16_t fold(uint32_t s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* Sum of the 16-bit words of both addresses (and of both ports): the same for either
 * direction, so computed once per flow (pkt_flow_init) and never read back from the
 * frame, which would stall on store forwarding. */
uint32_t pkt_addr_sum(const pkt_flow *f)
{
    uint32_t n = f->ipv6 ? 16 : 4;
    return sum16(sum16(0, f->caddr, n), f->saddr, n);
}

/* Writes the 16-bit word v at p and returns it, for the checksum. */
static inline uint32_t word(uint8_t *p, uint32_t v)
{
    put16(p, v);
    return v & 0xffff;
}

/* The app's header at the start of a zeroed payload of n bytes (the packetizer makes n 0
 * or at least the header); returns the sum of its 16-bit words for the L4 checksum (the
 * payload starts at an even offset of the segment). */
static uint32_t put_app_header(uint8_t *p, uint32_t n, const pkt_flow *f, const pkt_desc *d)
{
    const int up = d->dir == ND_UP;
    if (!n || f->app == PKT_APP_NONE) return 0;
    /* a transaction id per flow: the same on both sides, as a reply carries the request's */
    const uint32_t xid = f->addr_sum * 2654435761u ^ f->cport;
    switch (f->app) {
    case PKT_APP_DNS: /* a query from the client, a response from the server; the id
                       * numbers the direction's packets: no query looks retransmitted */
        return word(p, d->seq) + word(p + 2, up ? 0x0100 : 0x8180);
    case PKT_APP_DNS_TCP: /* one whole message per segment: its length, then as over UDP */
        return word(p, n - 2) + word(p + 2, d->seq ^ d->ack) +
               word(p + 4, up ? 0x0100 : 0x8180);
    case PKT_APP_DHCP: { /* BOOTREQUEST or BOOTREPLY, Ethernet, one transaction */
        uint32_t sum = word(p, up ? 0x0101 : 0x0201) + word(p + 2, 0x0600) /* hlen 6 */ +
                       word(p + 4, xid >> 16) + word(p + 6, xid) + word(p + 236, 0x6382) +
                       word(p + 238, 0x5363); /* the DHCP magic cookie */
        if (n > pkt_app_len[PKT_APP_DHCP])
            sum += word(p + 240, 0xff00); /* end option, then pad */
        return sum;
    }
    case PKT_APP_DHCP6: /* SOLICIT (1) from the client, REPLY (7) from the server */
        return word(p, (up ? 0x0100u : 0x0700u) | (xid >> 16 & 0xff)) + word(p + 2, xid);
    case PKT_APP_DHCP6_TCP: /* LEASEQUERY (14) and LEASEQUERY-REPLY (15), length first */
        return word(p, n - 2) + word(p + 2, (up ? 0x0e00u : 0x0f00u) | (xid >> 16 & 0xff)) +
               word(p + 4, xid);
    case PKT_APP_TLS: /* one application-data record of TLS 1.2 per segment */
    {
        const uint32_t rl = n - 5; /* the record's length: what follows its header */
        p[0] = 0x17, p[1] = 3, p[2] = 3;
        put16(p + 3, rl);
        return 0x1703 + (0x0300 | rl >> 8) + ((rl & 0xff) << 8);
    }
    case PKT_APP_NTP: /* leap 0, version 4, mode 3 (client) or 4 (server); zeros after */
        return word(p, up ? 0x2300 : 0x2400);
    case PKT_APP_RIPNG: /* request (1) from the client, response (2) from the server,
                         * version 1; the route entries after it stay zeros (::/0) */
        return word(p, up ? 0x0101 : 0x0201);
    case PKT_APP_WINSREPL: /* one message per segment: its length (what follows the 4-byte
                            * length), Samba's opcode, association context 0, message type
                            * 3 (replication) with command 0 (table query), which has no
                            * body: the dissector reads nothing past it */
        return word(p + 2, n - 4) + word(p + 6, 0x7800) + word(p + 14, 3);
    case PKT_APP_NBDS: /* DATAGRAM ERROR (0x13), first in a fragment series, its id,
                        * source address 0 and port 138, error 0x82 (no such name) */
        p[10] = 0x82;
        return word(p, 0x1302) + word(p + 2, xid) + word(p + 8, 138) + 0x8200;
    default: return 0;
    }
}

void pkt_build(uint8_t *restrict buf, const pkt_flow *f, const pkt_desc *d, int flags)
{
    const int up = d->dir == ND_UP, v6 = f->ipv6, tcp = f->l4 == ND_L4_TCP;
    const int syn = tcp && (d->flags & TCPF_SYN);
    const uint8_t *src = up ? f->caddr : f->saddr, *dst = up ? f->saddr : f->caddr;
    const uint16_t sport = up ? f->cport : f->sport, dport = up ? f->sport : f->cport;
    const uint32_t tag = f->vlan[d->dir] ? 4 : 0;
    const uint32_t hlen = pkt_hdr_len(v6, f->l4, syn) + tag;
    const uint32_t l3len = d->len - 14u, l4len = l3len - (v6 ? 40u : 20u);
    const uint32_t len = d->len + tag;
    const uint8_t proto = tcp ? 6 : 17, ttl = f->ttl[d->dir];
    ND_ASSERT(d->len + tag >= hlen);

    /* Ethernet, and the side's 802.1Q tag (priority 0) */
    memcpy(buf, f->dst_mac[d->dir], 6);
    memcpy(buf + 6, f->mac[d->dir], 6);
    if (tag) {
        put16(buf + 12, 0x8100);
        put16(buf + 14, f->vlan[d->dir]);
    }
    put16(buf + 12 + tag, v6 ? 0x86dd : 0x0800);

    /* IP; checksums are sums of the field values, the frame is only written */
    uint8_t *ip = buf + 14 + tag, *l4;
    const uint32_t ph = f->addr_sum + proto + l4len; /* pseudo-header */
    if (!v6) {
        const uint32_t id = (d->seq ^ d->ack ^ d->order) & 0xffff; /* any value: DF is set */
        ip[0] = 0x45;
        ip[1] = 0;
        put16(ip + 2, l3len);
        put16(ip + 4, id);
        put16(ip + 6, 0x4000);
        ip[8] = ttl;
        ip[9] = proto;
        memcpy(ip + 12, src, 4);
        memcpy(ip + 16, dst, 4);
        uint32_t ipsum =
            0x4500 + l3len + id + 0x4000 + ((uint32_t)ttl << 8 | proto) + f->addr_sum;
        put16(ip + 10, flags & PKT_CSUM_OFFLOAD ? 0 : (uint16_t)~fold(ipsum));
        l4 = ip + 20;
    } else {
        put32(ip, 0x60000000);
        put16(ip + 4, l4len);
        ip[6] = proto;
        ip[7] = ttl;
        memcpy(ip + 8, src, 16);
        memcpy(ip + 24, dst, 16);
        l4 = ip + 40;
    }

    /* TCP or UDP */
    uint32_t sum = ph + f->port_sum;
    uint8_t *csum;
    put16(l4, sport);
    put16(l4 + 2, dport);
    if (tcp) {
        const uint32_t l4hdr = syn ? 24 : 20, offflags = (l4hdr / 4) << 12 | d->flags;
        put32(l4 + 4, d->seq);
        put32(l4 + 8, d->ack);
        put16(l4 + 12, offflags);
        put16(l4 + 14, 64240);
        put16(l4 + 18, 0);
        sum += (d->seq >> 16) + (d->seq & 0xffff) + (d->ack >> 16) + (d->ack & 0xffff) +
               offflags + 64240;
        if (syn) {
            l4[20] = 2; /* MSS option */
            l4[21] = 4;
            put16(l4 + 22, f->mss);
            sum += 0x0204 + f->mss;
        }
        csum = l4 + 16;
    } else {
        put16(l4 + 4, l4len);
        sum += l4len;
        csum = l4 + 6;
    }

    /* zero payload: only what the previous frame in this buffer may have left, when the
     * caller keeps everything past PKT_HDR_MAX zero */
    uint32_t end = len;
    if ((flags & PKT_ZERO_TAIL) && end > PKT_HDR_MAX) end = PKT_HDR_MAX;
    if (end > hlen) memset(buf + hlen, 0, end - hlen);
    sum += put_app_header(buf + hlen, len - hlen, f, d);

    if (flags & PKT_CSUM_OFFLOAD) {
        put16(csum, fold(ph)); /* the NIC adds the segment and complements */
    } else {
        uint16_t c = (uint16_t)~fold(sum);
        if (!tcp && c == 0) c = 0xffff; /* UDP: 0 means "no checksum" */
        put16(csum, c);
    }
}
