/*
 * pktgen.h — test helpers for the capture tests: build Ethernet frames (VLAN, QinQ,
 * IPv4 with options and fragments, IPv6 with extension headers, TCP/UDP/ICMP), write them
 * to pcap files with libpcap's own writer, and collect the windows a capture context
 * emits. Header-only (static functions) so that each test program stays one file.
 */
#ifndef ND_TEST_PKTGEN_H
#define ND_TEST_PKTGEN_H

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "check.h"

typedef struct pkt_spec {
    int ipver;             /* 4 (default) or 6 */
    const char *src, *dst; /* addresses as text */
    uint16_t sport, dport;
    uint8_t proto; /* 6, 17 (default), 1, 58 */
    uint8_t tcp_flags;
    uint16_t mss;       /* TCP MSS option when non-zero */
    uint16_t vlan[2];   /* tags, outer first; 0 = none */
    uint32_t ip_total;  /* IP total length (IPv6: 40 + payload); 0: headers only */
    uint8_t ip_options; /* IPv4 option bytes (multiple of 4) */
    uint8_t v6_ext;     /* IPv6: number of 8-byte destination-options headers */
    int frag;           /* 0 none, 1 first (MF), 2 later (offset frag_off) */
    uint16_t frag_off;  /* in 8-byte units */
    uint32_t frag_id;
    uint8_t ttl; /* 0: 64 */
    uint16_t icmp_id;
} pkt_spec;

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}
static inline void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* Builds the frame into buf (at least 16 KB) and returns its length. */
static inline size_t pkt_build(uint8_t *buf, const pkt_spec *s)
{
    int v6 = s->ipver == 6;
    uint8_t proto = s->proto ? s->proto : 17;
    memset(buf, 0, 16384);
    memcpy(buf, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
    size_t off = 12;
    for (int t = 0; t < 2 && s->vlan[t]; t++) {
        put16(buf + off, t == 0 && s->vlan[1] ? 0x88A8 : 0x8100);
        put16(buf + off + 2, s->vlan[t]);
        off += 4;
    }
    put16(buf + off, v6 ? 0x86DD : 0x0800);
    off += 2;
    uint8_t *ip = buf + off;
    size_t iphl = v6 ? 40 : 20u + s->ip_options;
    size_t ext = v6 ? 8u * s->v6_ext + (s->frag ? 8 : 0) : 0;
    size_t l4hl = s->frag == 2 ? 0 : proto == 6 ? (s->mss ? 24 : 20) : 8;
    uint32_t total = s->ip_total ? s->ip_total : (uint32_t)(iphl + ext + l4hl);
    CHECK(total >= iphl + ext + l4hl && total < 16000);
    uint8_t *l4;
    if (!v6) {
        ip[0] = (uint8_t)(0x40 | iphl / 4);
        put16(ip + 2, (uint16_t)total);
        put16(ip + 4, (uint16_t)s->frag_id);
        put16(ip + 6,
              (uint16_t)((s->frag == 1 ? 0x2000 : 0) | (s->frag == 2 ? s->frag_off : 0)));
        ip[8] = s->ttl ? s->ttl : 64;
        ip[9] = proto;
        CHECK(inet_pton(AF_INET, s->src, ip + 12) == 1);
        CHECK(inet_pton(AF_INET, s->dst, ip + 16) == 1);
        for (size_t i = 20; i < iphl; i++) ip[i] = 1; /* NOP options */
        l4 = ip + iphl;
    } else {
        ip[0] = 0x60;
        put16(ip + 4, (uint16_t)(total - 40));
        ip[7] = s->ttl ? s->ttl : 64;
        CHECK(inet_pton(AF_INET6, s->src, ip + 8) == 1);
        CHECK(inet_pton(AF_INET6, s->dst, ip + 24) == 1);
        uint8_t *nh = ip + 6, *p = ip + 40;
        for (int k = 0; k < s->v6_ext; k++) { /* destination options, 8 bytes, PadN */
            *nh = 60;
            nh = p;
            p[1] = 0;
            p[2] = 1;
            p[3] = 4;
            p += 8;
        }
        if (s->frag) {
            *nh = 44;
            nh = p;
            put16(p + 2, (uint16_t)((s->frag == 2 ? s->frag_off << 3 : 0) | (s->frag == 1)));
            put32(p + 4, s->frag_id);
            p += 8;
        }
        *nh = proto;
        l4 = p;
    }
    if (s->frag != 2) {
        if (proto == 6) {
            put16(l4, s->sport);
            put16(l4 + 2, s->dport);
            l4[12] = (uint8_t)((l4hl / 4) << 4);
            l4[13] = s->tcp_flags ? s->tcp_flags : PARSE_TCP_ACK;
            if (s->mss) {
                l4[20] = 2;
                l4[21] = 4;
                put16(l4 + 22, s->mss);
            }
        } else if (proto == 17) {
            put16(l4, s->sport);
            put16(l4 + 2, s->dport);
            put16(l4 + 4, (uint16_t)(total - iphl - ext));
        } else if (proto == 1 || proto == 58) {
            l4[0] = proto == 1 ? 8 : 128; /* echo request */
            put16(l4 + 4, s->icmp_id);
        }
    }
    return off + total;
}

/* A pcap file written through libpcap (µs or ns timestamps). */
typedef struct pcap_out {
    pcap_t *dead;
    pcap_dumper_t *d;
    int nano;
} pcap_out;

static inline void pcap_out_open(pcap_out *o, const char *path, int linktype, int nano)
{
    o->dead = pcap_open_dead_with_tstamp_precision(
        linktype, 262144, nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO);
    CHECK(o->dead);
    o->d = pcap_dump_open(o->dead, path);
    if (!o->d) CHECK_FAIL_("pcap_dump_open %s: %s", path, pcap_geterr(o->dead));
    o->nano = nano;
}

/* Writes len bytes (caplen bytes of them kept when caplen < len) at ts_ns. */
static inline void pcap_out_write(pcap_out *o, uint64_t ts_ns, const uint8_t *pkt, size_t len,
                                  size_t caplen)
{
    struct pcap_pkthdr h;
    h.ts.tv_sec = (time_t)(ts_ns / 1000000000u);
    h.ts.tv_usec = (suseconds_t)(ts_ns % 1000000000u / (o->nano ? 1 : 1000));
    h.len = (uint32_t)len;
    h.caplen = (uint32_t)(caplen && caplen < len ? caplen : len);
    pcap_dump((u_char *)o->d, &h, pkt);
}

static inline void pcap_out_close(pcap_out *o)
{
    pcap_dump_close(o->d);
    pcap_close(o->dead);
}

/* ------------------------------------------------------------------------------------ */
/* Collected windows                                                                     */
/* ------------------------------------------------------------------------------------ */

typedef struct win_rec {
    uint32_t cls;
    uint64_t group;
    float *v; /* (C, L) */
} win_rec;

typedef struct win_list {
    uint32_t C, L;
    size_t n, cap;
    win_rec *w;
} win_list;

static inline int win_collect(void *user, uint32_t cls, uint64_t group, const float *values)
{
    win_list *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->w = realloc(l->w, l->cap * sizeof *l->w);
        CHECK(l->w);
    }
    win_rec *r = &l->w[l->n++];
    r->cls = cls;
    r->group = group;
    r->v = malloc((size_t)l->C * l->L * sizeof *r->v);
    CHECK(r->v);
    memcpy(r->v, values, (size_t)l->C * l->L * sizeof *r->v);
    return 0;
}

static inline void win_list_free(win_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->w[i].v);
    free(l->w);
    memset(l, 0, sizeof *l);
}

/* k-th window (in emission order) of a flow group, or NULL. */
static inline const win_rec *win_find(const win_list *l, uint64_t group, int k)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->w[i].group == group && k-- == 0) return &l->w[i];
    return NULL;
}

static inline size_t win_count(const win_list *l, uint64_t group)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) n += l->w[i].group == group;
    return n;
}

/* Sets o's class rules from n (name, filter) pairs, replacing any; o points into rules. */
static inline void opts_classes(capture_opts *o, int n, const char *const (*rules)[2])
{
    CHECK(n >= 0 && n <= ND_MAX_CLASSES);
    o->n_classes = (uint32_t)n;
    for (int i = 0; i < n; i++) o->classes[i] = (capture_class){rules[i][0], rules[i][1]};
}

/* Captures one source spec with o into l (emptied first) and returns the context (the
 * caller frees it); *rc is capture_run's result, e its message. */
static inline capture_ctx *capture_into(const char *spec, const capture_opts *o, win_list *l,
                                        int *rc, nd_error *e)
{
    memset(l, 0, sizeof *l);
    l->C = o->channels;
    l->L = o->window;
    capture_ctx *c = capture_ctx_new(o, NULL, win_collect, l, e);
    if (!c) CHECK_FAIL_("capture_ctx_new: %s", e->msg);
    const char *specs[] = {spec};
    *rc = capture_run(c, specs, 1, o, NULL, 0, e);
    return c;
}

/* Same windows in the same order: class, group and every value. */
static inline void win_list_check_equal(const win_list *a, const win_list *b, const char *what)
{
    if (a->n != b->n) CHECK_FAIL_("%s: %zu windows, expected %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        CHECK_EQ(a->w[i].cls, b->w[i].cls);
        CHECK_U64_EQ(a->w[i].group, b->w[i].group);
        for (uint32_t k = 0; k < a->C * a->L; k++)
            if (a->w[i].v[k] != b->w[i].v[k])
                CHECK_FAIL_("%s: window %zu value %u: %g, expected %g", what, i, k,
                            a->w[i].v[k], b->w[i].v[k]);
    }
}

/* Every counter of a equals b's; what says which two captures. */
static inline void ctx_counters_check_equal(const capture_ctx *a, const capture_ctx *b,
                                            const char *what)
{
    CHECK_EQ(capture_ctx_n_counters(a), capture_ctx_n_counters(b));
    for (uint32_t i = 0; i < capture_ctx_n_counters(a); i++) {
        const char *na, *nb;
        uint64_t va, vb;
        capture_ctx_counter(a, i, &na, &va);
        capture_ctx_counter(b, i, &nb, &vb);
        CHECK_STR_EQ(na, nb);
        if (va != vb) CHECK_FAIL_("%s: counter %s: %" PRIu64 " vs %" PRIu64, what, na, va, vb);
    }
}

/* Counter value by name from a context. */
static inline uint64_t ctx_counter(const capture_ctx *c, const char *name)
{
    for (uint32_t i = 0; i < capture_ctx_n_counters(c); i++) {
        const char *n;
        uint64_t v;
        capture_ctx_counter(c, i, &n, &v);
        if (!strcmp(n, name)) return v;
    }
    CHECK_FAIL_("no counter %s", name);
}

#endif

/* ------------------------------------------------------------------------------------ */
/* Readers: the pcap: source against a bare pcap_next_ex loop                           */
/* ------------------------------------------------------------------------------------ */

/* Reads ref_path with a bare libpcap loop (ns precision) and src_path (the same bytes, or
 * a FIFO they are written into) through capture_source_open("pcap:") with snaplen snap;
 * checks that both give the same packets (the first snap bytes, caplen, wirelen,
 * timestamp in ns), the same link type, and end the same way: at the end, or with
 * libpcap's message after the same packet; or that both refuse to open it. Returns the
 * packet count; *in_place (when not NULL) tells whether consecutive packets of a burst
 * mostly lay back to back in the source's memory, 16-byte record headers between them
 * (read in place; records cut to the file's snapshot length are not). */
static inline uint64_t readers_check_same(const char *ref_path, const char *src_path,
                                          uint32_t snap, int *in_place)
{
    char err[PCAP_ERRBUF_SIZE] = "", spec[4200];
    pcap_t *p =
        pcap_open_offline_with_tstamp_precision(ref_path, PCAP_TSTAMP_PRECISION_NANO, err);
    capture_opts o;
    capture_opts_defaults(&o);
    o.snaplen = snap;
    snprintf(spec, sizeof spec, "pcap:%s", src_path);
    nd_error e = {0};
    capture_source *s = capture_source_open(spec, &o, &e);
    if (in_place) *in_place = 0;
    if (!p) {
        if (s) CHECK_FAIL_("%s: libpcap refuses it (%s), the source opens it", ref_path, err);
        CHECK_CONTAINS(e.msg, err);
        return 0;
    }
    if (!s) CHECK_FAIL_("%s: libpcap opens it, the source does not: %s", ref_path, e.msg);
    CHECK_EQ(capture_source_linktype(s), pcap_datalink(p));
    capture_pkt pk[32];
    int n = 0, k = 0;
    uint64_t adjacent = 0, pairs = 0;
    uint64_t count = 0;
    const uint8_t *prev_end = NULL;
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *d;
        int r = pcap_next_ex(p, &h, &d);
        if (k == n) {
            n = capture_source_rx(s, pk, 32, 0, &e);
            k = 0;
        }
        if (r != 1) {
            if (n > 0)
                CHECK_FAIL_("%s: libpcap ends (%d) after %" PRIu64 " packets, the "
                            "source has more",
                            ref_path, r, count);
            if (r == PCAP_ERROR_BREAK) {
                if (n != CAPTURE_END)
                    CHECK_FAIL_("%s: end after %" PRIu64 " packets; the "
                                "source: %d %s",
                                ref_path, count, n, e.msg);
            } else {
                char after[64];
                if (n != ND_ETRUNC)
                    CHECK_FAIL_("%s: libpcap fails after %" PRIu64 " packets "
                                "(%s); the source: %d",
                                ref_path, count, pcap_geterr(p), n);
                CHECK_CONTAINS(e.msg, pcap_geterr(p));
                snprintf(after, sizeof after, "after packet %" PRIu64 ":", count);
                CHECK_CONTAINS(e.msg, after);
            }
            break;
        }
        if (n <= 0)
            CHECK_FAIL_("%s: packet %" PRIu64 ": libpcap has it, the source returns "
                        "%d (%s)",
                        ref_path, count + 1, n, e.msg);
        const capture_pkt *q = &pk[k++];
        uint32_t cl = h->caplen < snap ? h->caplen : snap;
        uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
        if (q->caplen != cl || q->wirelen != h->len || q->ts_ns != ts || memcmp(q->data, d, cl))
            CHECK_FAIL_("%s: packet %" PRIu64 ": caplen %u wirelen %u ts %" PRIu64 " (data "
                        "%s), libpcap: %u %u %" PRIu64,
                        ref_path, count + 1, q->caplen, q->wirelen, q->ts_ns,
                        memcmp(q->data, d, cl) ? "differs" : "same", cl, h->len, ts);
        pairs += k > 1;
        adjacent += k > 1 && q->data == prev_end + 16;
        prev_end = q->data + h->caplen;
        count++;
    }
    /* Copies into fixed slots are adjacent only when a caplen is exactly snap - 16. */
    if (in_place) *in_place = pairs && 2 * adjacent > pairs;
    capture_source_close(s);
    pcap_close(p);
    return count;
}

/* ------------------------------------------------------------------------------------ */
/* A mixed capture: many flows of every kind the parser knows, for path comparisons     */
/* ------------------------------------------------------------------------------------ */

static inline uint64_t mix_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Writes n_pkts packets of n_flows flows over `seconds`, µs timestamps, Ethernet:
 * TCP/UDP/ICMP over IPv4 and IPv6, VLAN and QinQ, fragments, snaplen-cut packets and a
 * few malformed ones. Deterministic for a seed. */
static inline void write_mixed_pcap(const char *file, int n_flows, int n_pkts, int seconds,
                                    uint64_t seed)
{
    pcap_out o;
    pcap_out_open(&o, file, DLT_EN10MB, 0);
    static uint8_t buf[16384];
    uint64_t t = 1700000000ull * 1000000000ull;
    uint64_t step = (uint64_t)seconds * 1000000000ull / (uint64_t)n_pkts;
    for (int i = 0; i < n_pkts; i++) {
        t += mix_rand(&seed) % (2 * step + 1);
        t -= t % 1000; /* µs file */
        int f = (int)(mix_rand(&seed) % (uint64_t)n_flows);
        int reply = (int)(mix_rand(&seed) & 1);
        char a[64], b[64];
        pkt_spec s = {0};
        s.ipver = f % 5 == 4 ? 6 : 4;
        if (s.ipver == 4) {
            snprintf(a, sizeof a, "10.%d.%d.1", f >> 8 & 255, f & 255);
            snprintf(b, sizeof b, "192.168.%d.%d", f % 7, 1 + f % 200);
        } else {
            snprintf(a, sizeof a, "2001:db8:%x::1", f);
            snprintf(b, sizeof b, "2001:db8:ffff::%x", 1 + f % 9);
        }
        s.src = reply ? b : a;
        s.dst = reply ? a : b;
        uint16_t cport = (uint16_t)(30000 + f), sport = (uint16_t)(f % 3 == 0 ? 443 : 53);
        s.sport = reply ? sport : cport;
        s.dport = reply ? cport : sport;
        s.proto = f % 11 == 10 ? (s.ipver == 4 ? 1 : 58) : f % 3 == 0 ? 6 : 17;
        s.icmp_id = (uint16_t)f;
        if (s.proto == 6) s.tcp_flags = i < n_flows ? PARSE_TCP_SYN : PARSE_TCP_ACK;
        if (f % 13 == 1) s.vlan[0] = (uint16_t)(1 + f % 4000);
        if (f % 17 == 2) s.vlan[0] = 7, s.vlan[1] = (uint16_t)(1 + f % 4000);
        s.ttl = (uint8_t)(32 + f % 100);
        uint32_t min_total = s.ipver == 6 ? 48 + 20 : 28 + 20;
        s.ip_total = min_total + (uint32_t)(mix_rand(&seed) % (1400 - min_total));
        size_t caplen = 0;
        int kind = (int)(mix_rand(&seed) % 40);
        if (kind == 0 && s.proto == 17) { /* a fragmented pair */
            s.frag = 1;
            s.frag_id = (uint32_t)i;
            size_t len = pkt_build(buf, &s);
            pcap_out_write(&o, t, buf, len, 0);
            s.frag = 2;
            s.frag_off = 100;
            t += 1000;
        } else if (kind == 1) {
            caplen = 60 + mix_rand(&seed) % 40; /* snaplen-cut */
        } else if (kind == 2) {
            caplen = 14 + mix_rand(&seed) % 30; /* cut inside the headers: malformed */
        }
        size_t len = pkt_build(buf, &s);
        pcap_out_write(&o, t, buf, len, caplen);
    }
    pcap_out_close(&o);
}
