/*
 * test_capture_file.c — the pcap: file reader (capture/source_file.c reads classic pcap in
 * place) against libpcap's pcap_next_ex on files written byte by byte here: little- and
 * big-endian, µs and ns, six link types (one that libpcap reads instead), header snaplen
 * below the packets and 0, odd timestamps (negative seconds, fraction above a second);
 * files cut at and inside every record header and inside packets, absurd caplen values, bad
 * headers; from a FIFO written in small pieces (classic pcap and pcapng); a file that grows
 * after it was opened (the reader sizes its buffer for a small file); and the windows
 * and counters of a capture through the source and through a bare libpcap loop.
 */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pktgen.h"

static char path[256], fifo[256];

/* ------------------------------------------------------------------------------------ */
/* Writing pcap files byte by byte                                                       */
/* ------------------------------------------------------------------------------------ */

typedef struct pbuf {
    uint8_t *b;
    size_t n, cap;
    int be;
    size_t rec[4096]; /* offset of each record */
    int n_rec;
} pbuf;

static void put(pbuf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->b = realloc(o->b, o->cap);
        CHECK(o->b);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void u32(pbuf *o, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[o->be ? i : 3 - i] = (uint8_t)(v >> (24 - 8 * i));
    put(o, b, 4);
}

static void u16(pbuf *o, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(o->be ? v >> 8 : v), (uint8_t)(o->be ? v : v >> 8)};
    put(o, b, 2);
}

static void file_header(pbuf *o, int be, uint32_t magic, uint16_t major, uint16_t minor,
                        uint32_t snaplen, uint32_t linktype)
{
    memset(o, 0, sizeof *o);
    o->be = be;
    u32(o, magic);
    u16(o, major);
    u16(o, minor);
    u32(o, 0);
    u32(o, 0);
    u32(o, snaplen);
    u32(o, linktype);
}

/* A record whose header says caplen/len, followed by n data bytes. */
static void record(pbuf *o, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len,
                   const uint8_t *data, size_t n)
{
    CHECK(o->n_rec < 4096);
    o->rec[o->n_rec++] = o->n;
    u32(o, sec);
    u32(o, frac);
    u32(o, caplen);
    u32(o, len);
    put(o, data, n);
}

static void save(const pbuf *o, size_t n, const char *file)
{
    FILE *f = fopen(file, "wb");
    CHECK(f);
    CHECK_EQ(fwrite(o->b, 1, n, f), n);
    CHECK_EQ(fclose(f), 0);
}

static uint64_t rnd_state = 12345;
static uint32_t rnd(uint32_t n) { return (uint32_t)(mix_rand(&rnd_state) % n); }

/* The Ethernet frame eth (no VLAN) under another link layer, in out. */
static size_t relink(uint8_t *out, const uint8_t *eth, size_t len, uint32_t linktype)
{
    uint16_t et = (uint16_t)(eth[12] << 8 | eth[13]);
    size_t hl = 0;
    switch (linktype) {
    case 1:   /* Ethernet */
    case 189: /* USB Linux: not a link type the parser knows, libpcap reads it */
        memcpy(out, eth, len);
        return len;
    case 101: hl = 0; break; /* raw IP */
    case 113:
        hl = 16;
        memset(out, 0, 16);
        put16(out + 14, et);
        break; /* SLL */
    case 276:
        hl = 20;
        memset(out, 0, 20);
        put16(out, et);
        break; /* SLL2 */
    case 0: {  /* BSD loopback, family in host order */
        uint32_t fam = et == 0x86DD ? 10 : 2;
        hl = 4;
        memcpy(out, &fam, 4);
        break;
    }
    default: CHECK_FAIL_("link type %u", linktype);
    }
    memcpy(out + hl, eth + 14, len - 14);
    return hl + len - 14;
}

static const uint32_t linktypes[] = {1, 101, 113, 0, 276, 189};
#define N_LT (sizeof linktypes / sizeof linktypes[0])

/* A file of n records with random frames of flows 0..flows-1 (parsable), caplen sometimes
 * below len, and, when odd, timestamps that libpcap widens oddly. */
static void gen_file(pbuf *o, int be, int nano, uint32_t snaplen, uint32_t linktype, int n,
                     int flows, int odd)
{
    file_header(o, be, nano ? 0xa1b23c4d : 0xa1b2c3d4, 2, 4, snaplen, linktype);
    static uint8_t eth[16384], frame[16384];
    uint32_t sec = 1700000000, frac = 0, unit = nano ? 1000000000u : 1000000u;
    for (int i = 0; i < n; i++) {
        int f = (int)rnd((uint32_t)flows), reply = (int)rnd(2);
        char a[64], b[64];
        pkt_spec s = {.ipver = f % 3 == 2 ? 6 : 4, .proto = f % 2 ? 6 : 17};
        if (s.ipver == 4) {
            snprintf(a, sizeof a, "10.9.%d.1", f);
            snprintf(b, sizeof b, "192.168.9.%d", 1 + f % 100);
        } else {
            snprintf(a, sizeof a, "2001:db8:9::%x", f + 1);
            snprintf(b, sizeof b, "2001:db8:a::%x", 1 + f % 100);
        }
        s.src = reply ? b : a;
        s.dst = reply ? a : b;
        s.sport = reply ? 443 : (uint16_t)(20000 + f);
        s.dport = reply ? (uint16_t)(20000 + f) : 443;
        s.ip_total = (s.ipver == 6 ? 80 : 60) + rnd(1200);
        size_t len = relink(frame, eth, pkt_build(eth, &s), linktype);
        uint32_t caplen = (uint32_t)len;
        if (rnd(5) == 0) caplen = rnd((uint32_t)len + 1); /* cut, possibly to nothing */
        frac += rnd(unit / 4);
        if (frac >= unit) sec++, frac -= unit;
        uint32_t ts_sec = sec, ts_frac = frac;
        if (odd && i % 7 == 3) ts_sec = 0x80000000u + (uint32_t)i; /* negative as int32 */
        if (odd && i % 7 == 5) ts_frac = 0xfffffff0u;              /* negative fraction */
        if (odd && i % 7 == 6) ts_frac = unit + 5;                 /* above one second */
        record(o, ts_sec, ts_frac, caplen, (uint32_t)len, frame, caplen);
    }
}

/* ------------------------------------------------------------------------------------ */
/* Packets                                                                               */
/* ------------------------------------------------------------------------------------ */

/* Every variant, two capture snaplens: the same packets as libpcap, read in place. */
static void test_variants(void)
{
    static const uint32_t snaplens[] = {65535, 0, 300};
    for (int be = 0; be < 2; be++)
        for (int nano = 0; nano < 2; nano++)
            for (size_t lt = 0; lt < N_LT; lt++)
                for (int sl = 0; sl < 3; sl++) {
                    pbuf o;
                    gen_file(&o, be, nano, snaplens[sl], linktypes[lt], 150, 20, 1);
                    save(&o, o.n, path);
                    for (uint32_t snap = 64; snap <= 262144; snap *= 64) {
                        int in_place;
                        uint64_t n = readers_check_same(path, path, snap, &in_place);
                        CHECK_U64_EQ(n, 150);
                        /* The parser's link types are read in place; 189 by libpcap
                         * (snaplen 300 cuts most records: not back to back). */
                        if (snaplens[sl] != 300 || linktypes[lt] == 189)
                            CHECK_EQ(in_place, linktypes[lt] != 189);
                    }
                    free(o.b);
                }
}

/* Prefixes of two files: cut at every byte of the file header and of each record header,
 * at each record's end and the bytes before it, and inside packets; the packets before
 * the cut, then libpcap's message after the same packet. */
static void test_truncated(void)
{
    for (int v = 0; v < 2; v++) {
        pbuf o;
        /* The second file's snaplen cuts most records: a cut inside the skipped part. */
        gen_file(&o, v, v, v ? 100 : 65535, 1, 12, 4, 0);
        uint64_t expect = 0;
        size_t r = 0; /* the record that holds byte len - 1 */
        for (size_t len = 0; len <= o.n; len++) {
            while (r + 1 < (size_t)o.n_rec && o.rec[r + 1] < len) r++;
            /* Every cut in the file header and in each record header, the last bytes of
             * each record, and every 37th byte inside packets. */
            size_t end = r + 1 < (size_t)o.n_rec ? o.rec[r + 1] : o.n;
            if (len > 24 && len - o.rec[r] > 17 && end - len > 2 && len % 37) continue;
            save(&o, len, path);
            uint64_t n = readers_check_same(path, path, 256, NULL);
            /* Packets: the records that end at or before len. */
            while ((int)expect < o.n_rec &&
                   (expect + 1 < (uint64_t)o.n_rec ? o.rec[expect + 1] : o.n) <= len)
                expect++;
            if (n != expect)
                CHECK_FAIL_("prefix %zu of %zu: %" PRIu64 " packets, expected %" PRIu64, len,
                            o.n, n, expect);
        }
        CHECK_U64_EQ(expect, 12);
        free(o.b);
    }
}

/* caplen beyond libpcap's 262144, beyond the snapshot with and without the bytes, 0; a
 * bad magic, versions other than 2.4, snaplen 0, FCS bits in the link type field. */
static void test_absurd(void)
{
    static uint8_t big[300000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7);
    static const uint32_t caplens[] = {262145, 0x7fffffffu, 0xffffffffu, 262144, 70000, 0};
    for (int be = 0; be < 2; be++)
        for (size_t c = 0; c < sizeof caplens / sizeof caplens[0]; c++)
            for (int whole = 0; whole < 2; whole++) {
                pbuf o;
                gen_file(&o, be, 0, 65535, 1, 5, 2, 0);
                size_t data = caplens[c] <= sizeof big ? caplens[c] : 100;
                if (!whole) data /= 2;
                record(&o, 1700000100, 0, caplens[c], 1500, big, data);
                record(&o, 1700000101, 0, 60, 60, big, 60);
                save(&o, o.n, path);
                uint64_t n = readers_check_same(path, path, 256, NULL);
                /* The five before it; the bad one (cut to the snapshot, or empty) and the
                 * next too when libpcap can read it. */
                int readable = caplens[c] <= 262144 && (whole || caplens[c] == 0);
                CHECK_U64_EQ(n, readable ? 7 : 5);
                free(o.b);
            }
    /* Headers. */
    static const struct {
        uint32_t magic;
        uint16_t major, minor;
        uint32_t snaplen, lt;
    } h[] = {
        {0xa1b2c3d5, 2, 4, 65535, 1},          /* not a capture file */
        {0xa1b2c3d4, 2, 3, 65535, 1},          /* 2.3: libpcap may swap caplen and len */
        {0xa1b2c3d4, 2, 2, 65535, 1},          /* 2.2: libpcap swaps them */
        {0xa1b2c3d4, 3, 0, 65535, 1},          /* unknown version */
        {0xa1b2c3d4, 1, 0, 65535, 1},          /* archaic */
        {0xa1b2c3d4, 2, 4, 0, 1},              /* snaplen 0: libpcap's maximum */
        {0xa1b2c3d4, 2, 4, 300000, 1},         /* above the maximum: the maximum */
        {0xa1b2c3d4, 2, 4, 65535, 0x10000001}, /* FCS length bits on Ethernet */
        {0xa1b2cd34, 2, 4, 65535, 1},          /* Kuznetzov's patched format: libpcap */
    };
    for (int be = 0; be < 2; be++)
        for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
            pbuf o, body;
            gen_file(&body, be, 0, 65535, 1, 8, 3, 0);
            file_header(&o, be, h[i].magic, h[i].major, h[i].minor, h[i].snaplen, h[i].lt);
            put(&o, body.b + 24, body.n - 24);
            save(&o, o.n, path);
            readers_check_same(path, path, 256, NULL);
            save(&o, 24, path); /* a header and nothing else */
            CHECK_U64_EQ(readers_check_same(path, path, 256, NULL), 0);
            free(o.b);
            free(body.b);
        }
}

/* A FIFO written in pieces of 1 to 2000 bytes (records split across reads): the same
 * packets as libpcap on the file; pcapng through a FIFO goes to libpcap with the bytes
 * the reader looked at put back. */
/* Reads path through a pcap: source (snaplen 0) while append bytes are added after the
 * first burst; the packets and caplen bytes it saw. */
static uint64_t read_growing(const uint8_t *append, size_t n, uint64_t *bytes)
{
    capture_opts o;
    capture_opts_defaults(&o);
    o.snaplen = 0;
    char spec[300];
    snprintf(spec, sizeof spec, "pcap:%s", path);
    nd_error e = {0};
    capture_source *s = capture_source_open(spec, &o, &e);
    if (!s) CHECK_FAIL_("%s", e.msg);
    capture_pkt pk[32];
    uint64_t count = 0;
    *bytes = 0;
    for (int burst = 0;; burst++) {
        if (burst == 1 && append) {
            FILE *f = fopen(path, "ab");
            CHECK(f && fwrite(append, 1, n, f) == n && fclose(f) == 0);
        }
        int r = capture_source_rx(s, pk, 32, 0, &e);
        if (r == CAPTURE_END) break;
        if (r < 0) CHECK_FAIL_("burst %d: %s", burst, e.msg);
        for (int i = 0; i < r; i++) *bytes += pk[i].caplen;
        count += (uint64_t)r;
    }
    capture_source_close(s);
    return count;
}

/* A file that grows after it was opened: the source sized its buffer for the file as it
 * was (a few records) and must grow it for what follows, a 70,000-byte record included. */
static void test_growing(void)
{
    static uint8_t big[70000];
    pbuf o;
    gen_file(&o, 0, 0, 262144, 1, 40, 5, 0);
    record(&o, 1700000100, 0, sizeof big, sizeof big, big, sizeof big);
    for (int i = 0; i < 60; i++) record(&o, 1700000101, 0, 60, 60, big, 60);
    uint64_t whole_bytes, grown_bytes;
    save(&o, o.n, path);
    uint64_t whole = read_growing(NULL, 0, &whole_bytes);
    CHECK_U64_EQ(whole, (uint64_t)o.n_rec);
    size_t head = o.rec[3];
    save(&o, head, path);
    uint64_t grown = read_growing(o.b + head, o.n - head, &grown_bytes);
    CHECK_U64_EQ(grown, whole);
    CHECK_U64_EQ(grown_bytes, whole_bytes);
    free(o.b);
}

static void fifo_check(const uint8_t *b, size_t n, uint64_t expect)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        FILE *f = fopen(fifo, "wb");
        if (!f) _exit(1);
        for (size_t off = 0; off < n;) {
            size_t k = 1 + mix_rand(&rnd_state) % 2000;
            if (k > n - off) k = n - off;
            if (fwrite(b + off, 1, k, f) != k || fflush(f)) _exit(1);
            off += k;
            if (mix_rand(&rnd_state) % 8 == 0) usleep(200);
        }
        _exit(fclose(f) != 0);
    }
    CHECK_U64_EQ(readers_check_same(path, fifo, 256, NULL), expect);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_fifo(void)
{
    CHECK(!mkfifo(fifo, 0600));
    pbuf o;
    gen_file(&o, 1, 1, 65535, 1, 400, 30, 1);
    save(&o, o.n, path);
    fifo_check(o.b, o.n, 400);
    /* Cut inside the last record: the same message after the same packet. */
    save(&o, o.n - 10, path);
    fifo_check(o.b, o.n - 10, 399);
    free(o.b);

    /* pcapng: section header, one Ethernet interface (µs), enhanced packet blocks. */
    pbuf g = {0};        /* little-endian */
    u32(&g, 0x0A0D0D0A); /* section header block: BOM, version 1.0, length unknown */
    u32(&g, 28);
    u32(&g, 0x1A2B3C4D);
    u16(&g, 1);
    u16(&g, 0);
    u32(&g, 0xffffffff);
    u32(&g, 0xffffffff);
    u32(&g, 28);
    u32(&g, 1); /* interface description block: Ethernet, snaplen 65535 */
    u32(&g, 20);
    u16(&g, 1);
    u16(&g, 0);
    u32(&g, 65535);
    u32(&g, 20);
    static uint8_t eth[16384];
    for (int i = 0; i < 50; i++) {
        pkt_spec s = {.src = "10.1.1.1",
                      .dst = "10.1.1.2",
                      .sport = 5,
                      .dport = 6,
                      .ip_total = 40u + (uint32_t)i};
        uint32_t len = (uint32_t)pkt_build(eth, &s), pad = (4 - len % 4) % 4;
        uint64_t us = 1700000000000000ull + 1000u * (uint64_t)i;
        u32(&g, 6); /* enhanced packet block */
        u32(&g, 32 + len + pad);
        u32(&g, 0);
        u32(&g, (uint32_t)(us >> 32));
        u32(&g, (uint32_t)us);
        u32(&g, len);
        u32(&g, len);
        put(&g, eth, len);
        put(&g, "\0\0\0", pad);
        u32(&g, 32 + len + pad);
    }
    save(&g, g.n, path);
    CHECK_U64_EQ(readers_check_same(path, path, 256, NULL), 50);
    fifo_check(g.b, g.n, 50);
    free(g.b);
    unlink(fifo);
}

/* ------------------------------------------------------------------------------------ */
/* Windows                                                                               */
/* ------------------------------------------------------------------------------------ */

/* The capture of path through a bare libpcap loop, as source.c read files before the
 * in-place reader: bursts of 32 copies of the first snaplen bytes. */
static capture_ctx *capture_libpcap(const capture_opts *opt, win_list *l)
{
    memset(l, 0, sizeof *l);
    l->C = opt->channels;
    l->L = opt->window;
    nd_error e = {0};
    capture_ctx *c = capture_ctx_new(opt, NULL, win_collect, l, &e);
    if (!c) CHECK_FAIL_("%s", e.msg);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) CHECK_FAIL_("%s", err);
    uint32_t snap = opt->snaplen;
    uint8_t *copies = malloc(32u * snap);
    CHECK(copies);
    capture_pkt pk[32];
    unsigned n = 0;
    struct pcap_pkthdr *h;
    const u_char *d;
    for (int r = 1; r == 1;) {
        r = pcap_next_ex(p, &h, &d);
        if (r == 1) {
            uint32_t cl = h->caplen < snap ? h->caplen : snap;
            memcpy(copies + (size_t)n * snap, d, cl);
            pk[n] =
                (capture_pkt){copies + (size_t)n * snap, cl, h->len,
                              (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec};
            n++;
        }
        if (n == 32 || (r != 1 && n)) {
            capture_ctx_burst(c, pcap_datalink(p), pk, n);
            n = 0;
        }
    }
    capture_ctx_flush(c);
    pcap_close(p);
    free(copies);
    return c;
}

static void test_windows(void)
{
    capture_opts opt;
    capture_opts_defaults(&opt);
    opt.bin_ns = 100000000; /* 100 ms bins, windows of 8: many windows */
    opt.window = 8;
    opt.min_active_bins = 1;
    opt.flow_capacity = 64; /* fewer than the flows: evictions too */
    opt.snaplen = 96;
    opt.default_class = "other";
    static const char *const rules[][2] = {{"v6", "ip6"}, {"tcp", "tcp"}};
    opts_classes(&opt, 2, rules);
    char spec[300];
    snprintf(spec, sizeof spec, "pcap:%s", path);
    for (int be = 0; be < 2; be++)
        for (int nano = 0; nano < 2; nano++)
            for (size_t lt = 0; lt < N_LT; lt++) {
                pbuf o;
                gen_file(&o, be, nano, 65535, linktypes[lt], 3000, 100, 0);
                save(&o, o.n, path);
                free(o.b);
                win_list a, b;
                nd_error e = {0};
                int rc;
                capture_ctx *ca = capture_into(spec, &opt, &a, &rc, &e);
                if (rc) CHECK_FAIL_("%s", e.msg);
                capture_ctx *cb = capture_libpcap(&opt, &b);
                if (linktypes[lt] != 189) CHECK(b.n > 100);
                win_list_check_equal(&a, &b, "in place vs libpcap");
                ctx_counters_check_equal(ca, cb, "in place vs libpcap");
                capture_ctx_free(ca);
                capture_ctx_free(cb);
                win_list_free(&a);
                win_list_free(&b);
            }
}

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    snprintf(path, sizeof path, "file-%d.pcap", (int)getpid());
    snprintf(fifo, sizeof fifo, "file-%d.fifo", (int)getpid());
    test_variants();
    test_truncated();
    test_absurd();
    test_fifo();
    test_growing();
    test_windows();
    unlink(path);
    printf("ok\n");
    return 0;
}
