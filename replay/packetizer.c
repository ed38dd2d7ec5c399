/*
 * packetizer.c — series → packet descriptors (docs/REPLAY.md), one bin at a time.
 *
 * For each bin and direction the packetizer emits packets whose frame sizes add up to the
 * bytes of the series: sizes are drawn from the class's per-direction size histogram and
 * the last packet of the bin takes the remainder. Bytes that cannot make a legal frame (a
 * remainder below the smallest frame of the flow) are carried to the next bin, so that the
 * error of any bin stays below one minimum frame (54 bytes for TCP/IPv4); forced TCP
 * packets (handshake, FIN) that do not fit a bin's bytes are taken from the next bins.
 * Send times inside a bin come from the class's inter-arrival histogram. docs/REPLAY.md
 * has the details and the bounds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "replay_impl.h"

#define ETH_HDR          14
#define IP4_HDR          20
#define IP6_HDR          40
#define TCP_HDR          20
#define TCP_SYN_OPT      4 /* MSS option on SYN and SYN-ACK */
#define UDP_HDR          8
#define MAX_FRAME        1514       /* Ethernet, 1500-byte MTU, no VLAN tag, no FCS */
#define MAX_PKTS_PER_BIN (1u << 22) /* per direction: bounds memory on absurd series */

/* ------------------------------------------------------------------------------------ */
/* Draw tables                                                                          */
/* ------------------------------------------------------------------------------------ */

int pkt_cdf_init(pkt_cdf *c, const uint64_t *hist, uint32_t len)
{
    memset(c, 0, sizeof *c);
    uint32_t n = 0;
    for (uint32_t i = 0; i < len; i++) n += hist[i] != 0;
    if (!n) return 0;
    c->value = malloc(n * sizeof *c->value);
    c->cum = malloc(n * sizeof *c->cum);
    if (!c->value || !c->cum) {
        pkt_cdf_free(c);
        return -ENOMEM;
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (!hist[i]) continue;
        sum += hist[i];
        c->value[c->n] = i;
        c->cum[c->n++] = sum;
    }
    return 0;
}

void pkt_cdf_free(pkt_cdf *c)
{
    free(c->value);
    free(c->cum);
    memset(c, 0, sizeof *c);
}

uint32_t pkt_cdf_draw(const pkt_cdf *c, nd_rng *r)
{
    uint64_t x = replay_rng_below(r, c->cum[c->n - 1]);
    uint32_t lo = 0, hi = c->n - 1; /* first entry with cum > x */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->cum[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return c->value[lo];
}

int pkt_class_init(pkt_class *pc, const nd_class_stats *st, const char *name)
{
    memset(pc, 0, sizeof *pc);
    pc->name = name;
    pc->st = st;
    int rc = 0;
    for (int d = 0; d < 2 && !rc; d++) {
        rc = pkt_cdf_init(&pc->size[d], st->size_hist[d], ND_SIZE_HIST);
        if (!rc) rc = pkt_cdf_init(&pc->iat[d], st->iat_hist[d], ND_IAT_HIST);
        if (!rc) rc = pkt_cdf_init(&pc->ttl[d], st->ttl_hist[d], 256);
        /* a capture's TTL 1 (and 0) belongs to link-local multicast and broadcast (mDNS,
         * SSDP, DHCP): given to a unicast flow it would die at the first router */
        uint64_t uni[256];
        memcpy(uni, st->ttl_hist[d], sizeof uni);
        uni[0] = uni[1] = 0;
        if (!rc) rc = pkt_cdf_init(&pc->ttl_uni[d], uni, 256);
    }
    uint64_t ports[ND_PORT_TOP];
    for (int i = 0; i < ND_PORT_TOP; i++)
        ports[i] = st->port[i] && st->port[i] < PKT_EPHEMERAL_PORT ? st->port_count[i] : 0;
    if (!rc) rc = pkt_cdf_init(&pc->port, ports, ND_PORT_TOP);
    uint64_t mss[ND_MSS_TOP];
    for (int i = 0; i < ND_MSS_TOP; i++) mss[i] = st->mss[i] >= 64 ? st->mss_count[i] : 0;
    if (!rc) rc = pkt_cdf_init(&pc->mss, mss, ND_MSS_TOP);
    if (rc) {
        pkt_class_free(pc);
        return rc;
    }
    uint64_t tcp = st->l4_flows[ND_L4_TCP], udp = st->l4_flows[ND_L4_UDP];
    pc->p_udp = tcp + udp ? (double)udp / (double)(tcp + udp) : 0.0;
    pc->p_ipv6 = st->flows ? (double)st->ipv6_flows / (double)st->flows : 0.0;
    pc->has_sizes = pc->size[0].n || pc->size[1].n;
    pc->has_iat = pc->iat[0].n || pc->iat[1].n;
    return 0;
}

void pkt_class_free(pkt_class *pc)
{
    for (int d = 0; d < 2; d++) {
        pkt_cdf_free(&pc->size[d]);
        pkt_cdf_free(&pc->iat[d]);
        pkt_cdf_free(&pc->ttl[d]);
        pkt_cdf_free(&pc->ttl_uni[d]);
    }
    pkt_cdf_free(&pc->port);
    pkt_cdf_free(&pc->mss);
}

/* ------------------------------------------------------------------------------------ */
/* Address pools and MACs                                                               */
/* ------------------------------------------------------------------------------------ */

int pkt_pool_parse(pkt_pool *p, const char *text, uint32_t count, const char *what, nd_error *e)
{
    memset(p, 0, sizeof *p);
    p->count = count ? count : 1;
    char buf[PKT_POOL_TEXT];
    if (!text || strlen(text) >= sizeof buf)
        return nd_error_set(e, ND_ECONFIG, "%s: expected prefixes like 198.18.0.0/16", what);
    strcpy(buf, text);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        char *slash = strchr(tok, '/');
        int six = strchr(tok, ':') != NULL, max = six ? 128 : 32;
        long plen = max;
        if (slash) {
            char *end;
            *slash = 0;
            plen = strtol(slash + 1, &end, 10);
            if (*end || plen < 0 || plen > max)
                return nd_error_set(e, ND_ECONFIG, "%s: bad prefix length in '%s'", what, text);
        }
        uint8_t a[16];
        if (inet_pton(six ? AF_INET6 : AF_INET, tok, a) != 1)
            return nd_error_set(e, ND_ECONFIG, "%s: '%s' is not an IPv%d address", what, tok,
                                six ? 6 : 4);
        if (!six) {
            uint32_t base =
                (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
            uint64_t size = 1ull << (32 - plen);
            base &= plen ? ~(uint32_t)(size - 1) : 0;
            /* network and broadcast addresses are left out of prefixes that have them */
            p->base4 = size > 2 ? base : base - 1;
            p->span4 = (uint32_t)(size > 2 ? size - 2 : size);
            p->has4 = 1;
            if (p->count > p->span4)
                return nd_error_set(e, ND_ECONFIG, "%s: %u addresses asked, %s/%ld has %u",
                                    what, p->count, tok, plen, p->span4);
        } else {
            for (int i = 0; i < 16; i++) {
                int bits = (int)plen - 8 * i;
                uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
                p->base6[i] = a[i] & mask;
            }
            p->span6 = plen >= 65 ? (1ull << (128 - plen)) - 1 : UINT64_MAX;
            p->has6 = 1;
            if (p->count > p->span6)
                return nd_error_set(e, ND_ECONFIG, "%s: %u addresses asked, %s/%ld is smaller",
                                    what, p->count, tok, plen);
        }
    }
    if (!p->has4 && !p->has6)
        return nd_error_set(e, ND_ECONFIG, "%s: no prefix in '%s'", what, text);
    return 0;
}

void pkt_pool_addr4(const pkt_pool *p, uint32_t i, uint8_t out[4])
{
    uint32_t a = p->base4 + 1 + i % p->span4;
    out[0] = (uint8_t)(a >> 24), out[1] = (uint8_t)(a >> 16);
    out[2] = (uint8_t)(a >> 8), out[3] = (uint8_t)a;
}

void pkt_pool_addr6(const pkt_pool *p, uint32_t i, uint8_t out[16])
{
    memcpy(out, p->base6, 16);
    uint64_t add = 1 + (uint64_t)i % p->span6, lo = 0;
    for (int k = 8; k < 16; k++) lo = lo << 8 | out[k];
    lo += add; /* the host part: prefixes up to /64 never carry out of it */
    for (int k = 15; k >= 8; k--, lo >>= 8) out[k] = (uint8_t)lo;
}

int pkt_mac_parse(const char *text, uint8_t out[6])
{
    unsigned v[6];
    char tail;
    if (!text || sscanf(text, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                        &tail) != 6)
        return -1;
    for (int i = 0; i < 6; i++) {
        if (v[i] > 255) return -1;
        out[i] = (uint8_t)v[i];
    }
    return 0;
}

int pkt_l2_init(pkt_l2 *l2, const replay_opts *o, nd_error *e)
{
    if (pkt_mac_parse(o->mac_src, l2->mac[ND_UP]))
        return nd_error_set(e, ND_ECONFIG, "replay.mac_src: '%s' is not a MAC address",
                            o->mac_src);
    if (pkt_mac_parse(o->mac_dst, l2->mac[ND_DOWN]))
        return nd_error_set(e, ND_ECONFIG, "replay.mac_dst: '%s' is not a MAC address",
                            o->mac_dst);
    if (o->vlan_client > 4094 || o->vlan_server > 4094)
        return nd_error_set(e, ND_ECONFIG, "replay.vlan_%s: %u; VLAN ids go from 1 to 4094",
                            o->vlan_client > 4094 ? "client" : "server",
                            o->vlan_client > 4094 ? o->vlan_client : o->vlan_server);
    const char *gw[2];
    gw[ND_UP] = o->gateway_client, gw[ND_DOWN] = o->gateway_server;
    for (int d = 0; d < 2; d++) {
        l2->has_gw[d] = gw[d] && gw[d][0];
        if (l2->has_gw[d] && pkt_mac_parse(gw[d], l2->gw[d]))
            return nd_error_set(e, ND_ECONFIG,
                                "replay.gateway_%s: '%s' is not a MAC address (expected "
                                "six hex bytes like 02:00:00:00:00:fe)",
                                d == ND_UP ? "client" : "server", gw[d]);
    }
    l2->n_mac[ND_UP] = o->client_macs ? o->client_macs : 1;
    l2->n_mac[ND_DOWN] = o->server_macs ? o->server_macs : 1;
    l2->vlan[ND_UP] = o->vlan_client;
    l2->vlan[ND_DOWN] = o->vlan_server;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Flows                                                                                */
/* ------------------------------------------------------------------------------------ */

uint16_t pkt_hdr_len(int ipv6, int l4, int syn)
{
    return (uint16_t)(ETH_HDR + (ipv6 ? IP6_HDR : IP4_HDR) +
                      (l4 == ND_L4_UDP ? UDP_HDR : TCP_HDR + (syn ? TCP_SYN_OPT : 0)));
}

static double win_at(const pkt_flow *f, const pkt_layout *lay, int ch, uint32_t b)
{
    if (ch < 0) return 0.0;
    double v = f->win[((size_t)(b / lay->L) * lay->C + (size_t)ch) * lay->L + b % lay->L];
    return isfinite(v) && v > 0 ? v : 0.0;
}

/* DHCPv6 and TLS: a header alone is malformed to tshark, one byte more is not */
const uint8_t pkt_app_len[PKT_APP_COUNT] = {0, 12, 240, 5, 14, 7, 6, 48, 4, 20, 11};
#define RIPNG_ENTRY 20 /* a RIPng route entry: prefix, tag, prefix length, metric */

/* The protocol a flow's payloads start with, by its transport and server port. */
static uint8_t app_of(int l4, uint16_t port)
{
    static const struct {
        uint8_t l4, app;
        uint16_t port;
    } table[] = {
        {ND_L4_UDP, PKT_APP_DNS, 53},        {ND_L4_UDP, PKT_APP_DNS, 137},  /* NBNS */
        {ND_L4_UDP, PKT_APP_DNS, 5353},      {ND_L4_UDP, PKT_APP_DNS, 5355}, /* mDNS, LLMNR */
        {ND_L4_UDP, PKT_APP_DHCP, 67},       {ND_L4_UDP, PKT_APP_DHCP, 68},
        {ND_L4_UDP, PKT_APP_DHCP6, 546},     {ND_L4_UDP, PKT_APP_DHCP6, 547},
        {ND_L4_TCP, PKT_APP_DNS_TCP, 53},    {ND_L4_TCP, PKT_APP_DNS_TCP, 5353},
        {ND_L4_TCP, PKT_APP_DHCP6_TCP, 547}, {ND_L4_TCP, PKT_APP_TLS, 443},
        {ND_L4_TCP, PKT_APP_TLS, 465},       {ND_L4_TCP, PKT_APP_TLS, 853},
        {ND_L4_TCP, PKT_APP_TLS, 993},       {ND_L4_TCP, PKT_APP_TLS, 995},
        {ND_L4_TCP, PKT_APP_TLS, 5061},      {ND_L4_TCP, PKT_APP_TLS, 8443},
        {ND_L4_UDP, PKT_APP_NTP, 123},       {ND_L4_TCP, PKT_APP_NTP, 123},
        {ND_L4_UDP, PKT_APP_RIPNG, 521},     {ND_L4_TCP, PKT_APP_WINSREPL, 42},
        {ND_L4_UDP, PKT_APP_NBDS, 138},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (table[i].l4 == l4 && table[i].port == port) return table[i].app;
    return PKT_APP_NONE;
}

/* Multicast or broadcast (IPv4 224/4 and up, IPv6 ff00::/8): where a TTL of 1 is at home. */
static int is_group(const uint8_t *a, int v6) { return v6 ? a[0] == 0xff : a[0] >= 224; }

/* The i-th MAC of a pool that starts at base (the 48 bits counted as one number). */
static void mac_nth(uint8_t out[6], const uint8_t base[6], uint32_t i)
{
    uint64_t m = 0;
    for (int k = 0; k < 6; k++) m = m << 8 | base[k];
    m += i;
    for (int k = 5; k >= 0; k--, m >>= 8) out[k] = (uint8_t)m;
}

void pkt_flow_init(pkt_flow *f, const pkt_layout *lay, const pkt_pool *cli, const pkt_pool *srv,
                   const pkt_l2 *l2)
{
    const pkt_class *pc = f->pc;
    const nd_class_stats *st = pc->st;
    nd_rng *r = &f->rng;

    f->l4 = nd_rng_uniform(r) < pc->p_udp ? ND_L4_UDP : ND_L4_TCP;
    int v6 = nd_rng_uniform(r) < pc->p_ipv6;
    if (v6 && !(cli->has6 && srv->has6)) v6 = 0;
    if (!v6 && !(cli->has4 && srv->has4)) v6 = 1;
    f->ipv6 = (uint8_t)v6;
    f->mss = pc->mss.n ? st->mss[pkt_cdf_draw(&pc->mss, r)] : (uint16_t)(v6 ? 1440 : 1460);
    f->sport = pc->port.n ? st->port[pkt_cdf_draw(&pc->port, r)] : 443;
    f->cport = (uint16_t)(PKT_EPHEMERAL_PORT + replay_rng_below(r, 28232)); /* to 60999 */
    uint32_t ci = (uint32_t)replay_rng_below(r, cli->count);
    uint32_t si = (uint32_t)replay_rng_below(r, srv->count);
    /* a host keeps its MAC: the MAC follows the address index, not a draw of its own */
    mac_nth(f->mac[ND_UP], l2->mac[ND_UP], ci % l2->n_mac[ND_UP]);
    mac_nth(f->mac[ND_DOWN], l2->mac[ND_DOWN], si % l2->n_mac[ND_DOWN]);
    for (int d = 0; d < 2; d++)
        memcpy(f->dst_mac[d], l2->has_gw[d] ? l2->gw[d] : f->mac[!d], 6);
    f->vlan[ND_UP] = l2->vlan[ND_UP];
    f->vlan[ND_DOWN] = l2->vlan[ND_DOWN];
    memset(f->caddr, 0, 16);
    memset(f->saddr, 0, 16);
    if (v6) {
        pkt_pool_addr6(cli, ci, f->caddr);
        pkt_pool_addr6(srv, si, f->saddr);
    } else {
        pkt_pool_addr4(cli, ci, f->caddr);
        pkt_pool_addr4(srv, si, f->saddr);
    }
    /* TTL by the kind of the packet's destination: up goes to the server, down to the
     * client; unicast never takes a TTL below 2 */
    for (int d = 0; d < 2; d++) {
        const pkt_cdf *t =
            is_group(d == ND_UP ? f->saddr : f->caddr, v6) ? &pc->ttl[d] : &pc->ttl_uni[d];
        f->ttl[d] = t->n ? (uint8_t)pkt_cdf_draw(t, r) : 64;
        if (!f->ttl[d]) f->ttl[d] = 64;
    }
    f->addr_sum = pkt_addr_sum(f);
    f->port_sum = (uint32_t)f->cport + f->sport;
    f->snd_nxt[0] = (uint32_t)nd_rng_u64(r);
    f->snd_nxt[1] = (uint32_t)nd_rng_u64(r);

    unsigned maxf = MAX_FRAME;
    const unsigned hdr = pkt_hdr_len(v6, f->l4, 0);
    if (f->l4 == ND_L4_TCP && hdr + f->mss < maxf) maxf = hdr + f->mss;
    /* the app's header: in every UDP payload; in every TCP segment with data, which
     * needs frames of two such segments to fit the largest frame (a tiny MSS keeps
     * zero payloads) */
    f->app = app_of(f->l4, f->sport);
    const unsigned app = pkt_app_len[f->app];
    if (f->l4 == ND_L4_TCP && maxf < 2 * (hdr + app)) f->app = PKT_APP_NONE;
    f->min_frame = (uint16_t)(hdr + (f->l4 == ND_L4_UDP ? pkt_app_len[f->app] : 0));
    f->app_min = (uint16_t)(f->l4 == ND_L4_TCP ? pkt_app_len[f->app] : 0);
    /* RIPng: the header, then whole route entries up to the largest frame */
    f->step = f->app == PKT_APP_RIPNG ? RIPNG_ENTRY : 1;
    f->max_frame = (uint16_t)(f->min_frame + (maxf - f->min_frame) / f->step * f->step);

    f->first_bin = UINT32_MAX;
    f->last_bin = 0;
    for (uint32_t b = 0; b < f->nbins; b++)
        if (win_at(f, lay, lay->bytes[0], b) >= 0.5 ||
            win_at(f, lay, lay->bytes[1], b) >= 0.5) {
            if (f->first_bin == UINT32_MAX) f->first_bin = b;
            f->last_bin = b;
        }
    f->next_bin = f->first_bin;
    f->carry[0] = f->carry[1] = 0;
    f->n = f->pos = 0;
}

void pkt_flow_free(pkt_flow *f)
{
    free(f->pk);
    free(f->tmp);
    f->pk = f->tmp = NULL;
    f->tmp_cap = 0;
    f->n = f->cap = f->pos = 0;
}

static int push(pkt_flow *f, uint64_t t, uint16_t len, uint8_t dir, uint8_t flags)
{
    if (f->n == f->cap) {
        uint32_t cap = f->cap ? 2 * f->cap : 64;
        pkt_desc *p = realloc(f->pk, cap * sizeof *p);
        if (!p) return -ENOMEM;
        f->pk = p;
        f->cap = cap;
    }
    pkt_desc *d = &f->pk[f->n];
    d->t = t;
    d->len = len;
    d->dir = dir;
    d->flags = flags;
    d->seq = d->ack = 0;
    d->order = f->n++;
    return 0;
}

/* Frame sizes adding up to exactly B bytes (B sendable, below), appended with time 0;
 * want > 0 asks for that many packets (bytes win when both cannot hold; flows with an
 * app_min never ask). Sets *cut (and leaves it alone otherwise) when MAX_PKTS_PER_BIN
 * packets were drawn before the bytes were met. */
static int fill_sizes(pkt_flow *f, uint8_t dir, int64_t B, int64_t want, uint32_t *count,
                      int *cut)
{
    const pkt_cdf *c = &f->pc->size[dir];
    const int64_t minf = f->min_frame, maxf = f->max_frame, gap = f->app_min;
    uint32_t first = f->n;
#define DRAW()   (c->n ? (int64_t)pkt_cdf_draw(c, &f->rng) : maxf)
#define CLAMP(s) ((s) < minf ? minf : (s) > maxf ? maxf : (s))
    if (want > 0) {
        /* in units of the flow's step above the smallest frame (bytes but for RIPng),
         * so that every size stays legal: u in [0, top] is the frame minf + u·step */
        const int64_t step = f->step, top = (maxf - minf) / step;
        int64_t lo = (B + maxf - 1) / maxf, hi = B / minf;
        int64_t n = want < lo ? lo : want > hi ? hi : want;
        int64_t sum = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t s = DRAW();
            s = CLAMP(s);
            if (push(f, 0, (uint16_t)s, dir, 0)) return -ENOMEM;
            sum += (s - minf) / step;
        }
        ND_ASSERT((B - n * minf) % step == 0); /* B is what n legal frames carry */
#define UCLAMP(u) ((u) < 0 ? 0 : (u) > top ? top : (u))
        /* spread the difference evenly, then settle what the bounds held back */
        int64_t diff = (B - n * minf) / step - sum, each = diff / n;
        for (uint32_t i = first; i < f->n; i++) {
            int64_t u = (f->pk[i].len - minf) / step, v = UCLAMP(u + each);
            diff -= v - u;
            f->pk[i].len = (uint16_t)(minf + v * step);
        }
        for (uint32_t i = first; i < f->n && diff; i++) {
            int64_t u = (f->pk[i].len - minf) / step, v = UCLAMP(u + diff);
            diff -= v - u;
            f->pk[i].len = (uint16_t)(minf + v * step);
        }
#undef UCLAMP
        ND_ASSERT(diff == 0);
    } else {
        int64_t R = B;
        /* small drawn frames could pass the buffer's packets: the rest is cut */
        while (R > 0 && f->n - first < MAX_PKTS_PER_BIN) {
            int64_t s = DRAW();
            s = CLAMP(s);
            if (s > minf && s < minf + gap) s = minf + gap; /* room for the app's header */
            if (s != R && !PKT_SENDABLE(R - s, minf, gap)) {
                /* s would leave a remainder no frames can carry: take all of it, or
                 * leave one smallest frame (with data when that is what fits) */
                s = R <= maxf ? R : R - minf;
                if (s > maxf) s = R - minf - gap;
            }
            if (push(f, 0, (uint16_t)s, dir, 0)) return -ENOMEM;
            R -= s;
        }
        *cut |= R > 0;
    }
#undef DRAW
#undef CLAMP
    *count = f->n - first;
    return 0;
}

/* Flows with a step (RIPng): of budget (at least one smallest frame), the most bytes
 * that n frames of minf + k·step bytes carry, n also set; the rest, below one step, is
 * the caller's to carry. Every n from ceil(budget / maxf) to budget / minf can carry
 * budget less its remainder modulo the step; that remainder repeats every step values of
 * n, so step of them around the wanted count (*n on entry, else as many frames as sizes
 * drawn from the histogram fill the budget) hold the least remainder, the nearest wins. */
static int64_t stepped_budget(pkt_flow *f, uint8_t dir, int64_t budget, int64_t *n)
{
    const int64_t minf = f->min_frame, maxf = f->max_frame, step = f->step;
    const pkt_cdf *c = &f->pc->size[dir];
    int64_t lo = (budget + maxf - 1) / maxf, hi = budget / minf, want = *n;
    if (hi > MAX_PKTS_PER_BIN) hi = lo > MAX_PKTS_PER_BIN ? lo : MAX_PKTS_PER_BIN;
    if (want <= 0)
        for (int64_t sum = 0; sum < budget && want < hi; want++)
            sum += c->n ? (int64_t)pkt_cdf_draw(c, &f->rng) : maxf;
    int64_t from = want - step / 2, best = -1, best_n = lo;
    if (from + step - 1 > hi) from = hi - step + 1;
    if (from < lo) from = lo;
    for (int64_t k = from; k <= hi && k < from + step; k++) {
        int64_t b = k * minf + (budget - k * minf) / step * step;
        if (b > best || (b == best && llabs(k - want) < llabs(best_n - want)))
            best = b, best_n = k;
    }
    *n = best_n;
    return best;
}

/* Gives packets [first, first+n) times in [lo, hi): gaps from the class's inter-arrival
 * histogram (squeezed to fit the interval when they are longer), else evenly spaced. */
static void place_times(pkt_flow *f, uint8_t dir, uint32_t first, uint32_t n, uint64_t lo,
                        uint64_t hi)
{
    if (!n) return;
    uint64_t S = hi > lo ? hi - lo : 1;
    const pkt_cdf *c = &f->pc->iat[dir];
    pkt_desc *p = f->pk + first;
    if (!c->n) {
        const uint64_t den = 2ull * n;
        if (S <= UINT64_MAX / den) /* S·(2i+1) fits 64 bits: the usual case, and fast */
            for (uint32_t i = 0; i < n; i++) p[i].t = lo + S * (2 * i + 1) / den;
        else /* 128-bit: S·(2n) passes 2^64 for very long bins */
            for (uint32_t i = 0; i < n; i++)
                p[i].t = lo + (uint64_t)((unsigned __int128)S * (2 * i + 1) / den);
        return;
    }
    uint64_t G = 0;
    p[0].t = 0;
    for (uint32_t i = 1; i < n; i++) {
        uint32_t k = pkt_cdf_draw(c, &f->rng);
        uint64_t g = k ? (1ull << k) + replay_rng_below(&f->rng, 1ull << k)
                       : replay_rng_below(&f->rng, 2);
        if (g > S) g = S;
        G += g;
        p[i].t = G; /* cumulative; G <= n·S stays far from 2^64 */
    }
    if (G >= S) {
        double scale = (double)(S - 1) / (double)G;
        for (uint32_t i = 0; i < n; i++) p[i].t = lo + (uint64_t)((double)p[i].t * scale);
    } else {
        uint64_t u = replay_rng_below(&f->rng, S - G);
        for (uint32_t i = 0; i < n; i++) p[i].t += lo + u;
    }
}

static inline int desc_before(const pkt_desc *x, const pkt_desc *y)
{
    return x->t < y->t || (x->t == y->t && x->order < y->order);
}

/* Merges the sorted runs a[0..na) and b[0..nb) into out. */
static void merge_runs(pkt_desc *restrict out, const pkt_desc *a, uint32_t na,
                       const pkt_desc *b, uint32_t nb)
{
    uint32_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) out[k++] = desc_before(&b[j], &a[i]) ? b[j++] : a[i++];
    while (i < na) out[k++] = a[i++];
    while (j < nb) out[k++] = b[j++];
}

/* The bin's packets are three runs already in time order (control packets, down data,
 * up data): two linear merges put them in send order, ties in generation order. */
static int sort_bin(pkt_flow *f, uint32_t end_ctrl, uint32_t end_down)
{
    if (f->tmp_cap < f->n) {
        pkt_desc *t = realloc(f->tmp, f->cap * sizeof *t);
        if (!t) return -ENOMEM;
        f->tmp = t;
        f->tmp_cap = f->cap;
    }
    merge_runs(f->tmp, f->pk, end_ctrl, f->pk + end_ctrl, end_down - end_ctrl);
    merge_runs(f->pk, f->tmp, end_down, f->pk + end_down, f->n - end_down);
    return 0;
}

static int fill_bin(pkt_flow *f, const pkt_layout *lay, uint32_t b)
{
    const int tcp = f->l4 == ND_L4_TCP;
    const int first = b == f->first_bin, last = b == f->last_bin;
    const uint64_t bin = lay->bin_ns;
    const uint64_t h = bin / 64 < 50000 ? bin / 64 : 50000; /* control-packet spacing */
    const uint16_t hdr = f->min_frame, syn = pkt_hdr_len(f->ipv6, f->l4, 1);
    uint64_t lo = 0, hi = bin;
    int64_t ctrl_bytes[2] = {0, 0}, ctrl_pkts[2] = {0, 0};
    int rc = 0;

    if (tcp && first) { /* three-way handshake at the start of the first active bin */
        rc |= push(f, 0, syn, ND_UP, TCPF_SYN);
        rc |= push(f, h, syn, ND_DOWN, TCPF_SYN | TCPF_ACK);
        rc |= push(f, 2 * h, hdr, ND_UP, TCPF_ACK);
        ctrl_bytes[ND_UP] += syn + hdr, ctrl_pkts[ND_UP] += 2;
        ctrl_bytes[ND_DOWN] += syn, ctrl_pkts[ND_DOWN] += 1;
        lo = 3 * h;
    }
    if (!tcp && first) {
        /* a capture takes the first packet's sender as the client and counts bins from
         * that packet: UDP flows open with a client packet at the very start of their
         * first bin, sized from the class's histogram within that bin's client bytes */
        int64_t room = llround(win_at(f, lay, lay->bytes[ND_UP], b));
        int64_t s = f->pc->size[ND_UP].n ? (int64_t)pkt_cdf_draw(&f->pc->size[ND_UP], &f->rng)
                                         : f->max_frame;
        int64_t npk = lay->pkts[ND_UP] >= 0 ? llround(win_at(f, lay, lay->pkts[ND_UP], b)) : 0;
        if (npk > 0) s = room / npk; /* the bin's mean size keeps the packet count feasible */
        if (s > room) s = room;
        if (s > f->max_frame) s = f->max_frame;
        if (s < hdr) s = hdr;
        if (room - s > 0 && room - s < hdr && room <= f->max_frame) s = room; /* no crumbs */
        s = hdr + (s - hdr) / f->step * f->step; /* RIPng: whole route entries */
        rc |= push(f, 0, (uint16_t)s, ND_UP, 0);
        ctrl_bytes[ND_UP] += s, ctrl_pkts[ND_UP] += 1;
        lo = h;
    }
    if (tcp && last) { /* client closes at the end of the last active bin */
        rc |= push(f, bin - 3 * h, hdr, ND_UP, TCPF_FIN | TCPF_ACK);
        rc |= push(f, bin - 2 * h, hdr, ND_DOWN, TCPF_FIN | TCPF_ACK);
        rc |= push(f, bin - h, hdr, ND_UP, TCPF_ACK);
        ctrl_bytes[ND_UP] += 2 * hdr, ctrl_pkts[ND_UP] += 2;
        ctrl_bytes[ND_DOWN] += hdr, ctrl_pkts[ND_DOWN] += 1;
        hi = bin - 3 * h;
    }
    if (rc) return -ENOMEM;

    /* what the line carries in a bin, and what the packet buffer holds (memory) */
    const int64_t minf = hdr, most = (int64_t)MAX_PKTS_PER_BIN * f->max_frame,
                  cap = lay->bin_cap < most ? lay->bin_cap : most;
    uint32_t run_end[2];
    const uint32_t end_ctrl = f->n;
    for (uint8_t d = 0; d < 2; d++) {
        run_end[d] = f->n;
        double x = win_at(f, lay, lay->bytes[d], b);
        int64_t target = x > (double)cap ? cap : llround(x);
        int cut = x > (double)cap;
        int64_t budget = target + f->carry[d] - ctrl_bytes[d];
        if (!PKT_SENDABLE(budget, minf, f->app_min) || budget <= 0) {
            /* nothing legal fits: carry the bytes (or the debt) on */
            f->carry[d] = budget;
            if (budget > 0) f->carried++;
            f->capped += cut;
            continue;
        }
        f->carry[d] = 0;
        int64_t want = 0;
        if (lay->pkts[d] >= 0 && !f->app_min) {
            double p = win_at(f, lay, lay->pkts[d], b);
            want = (p > MAX_PKTS_PER_BIN ? MAX_PKTS_PER_BIN : llround(p)) - ctrl_pkts[d];
        }
        if (f->step > 1) { /* bytes that make no whole step are carried like remainders */
            int64_t sent = stepped_budget(f, d, budget, &want);
            f->carry[d] = budget - sent;
            f->carried += sent < budget;
            budget = sent;
        }
        uint32_t first_data = f->n, n = 0;
        if (fill_sizes(f, d, budget, want, &n, &cut)) return -ENOMEM;
        f->capped += cut;
        place_times(f, d, first_data, n, lo, hi);
        run_end[d] = f->n;
    }
    if (sort_bin(f, end_ctrl, run_end[ND_DOWN])) return -ENOMEM;
    for (uint32_t i = 0; i < f->n; i++) f->pk[i].t += (uint64_t)b * bin; /* since flow start */

    /* UDP: a packet number per direction, in send order, which a DNS header takes as
     * its id: queries (and responses) with ids of their own are not retransmissions */
    if (!tcp)
        for (uint32_t i = 0; i < f->n; i++) f->pk[i].seq = f->snd_nxt[f->pk[i].dir]++;
    /* sequence and acknowledgement numbers in send order: each packet acknowledges all
     * that the other side sent before it */
    if (tcp)
        for (uint32_t i = 0; i < f->n; i++) {
            pkt_desc *p = &f->pk[i];
            int is_syn = p->flags & TCPF_SYN;
            uint32_t payload = p->len - (is_syn ? syn : hdr);
            if (!p->flags) p->flags = payload ? TCPF_PSH | TCPF_ACK : TCPF_ACK;
            p->seq = f->snd_nxt[p->dir];
            p->ack = p->flags & TCPF_ACK ? f->snd_nxt[!p->dir] : 0;
            f->snd_nxt[p->dir] += payload + (is_syn ? 1 : 0) + (p->flags & TCPF_FIN ? 1 : 0);
        }
    return 0;
}

int pkt_flow_next_bin(pkt_flow *f, const pkt_layout *lay)
{
    if (f->first_bin == UINT32_MAX) return 0;
    while (f->next_bin <= f->last_bin) {
        uint32_t b = f->next_bin++;
        f->n = f->pos = 0;
        f->cur_bin = b;
        int rc = fill_bin(f, lay, b);
        if (rc < 0) return rc;
        if (f->n) return 1;
    }
    return 0;
}
