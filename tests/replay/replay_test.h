/*
 * replay_test.h — helpers for the replay tests: datasets built by hand in plain arrays
 * (no dependency on the dataset code), a frame parser and checksum verification written
 * independently of replay/headers.c (byte-wise sums over a copied pseudo-header), and
 * runs of the netdiffus program for the command-line tests.
 */
#ifndef ND_REPLAY_TEST_H
#define ND_REPLAY_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "replay.h"

/* The tests' own generator (splitmix64), independent of the library's. */
typedef struct trng {
    uint64_t x;
} trng;
static inline uint64_t trng_next(trng *r)
{
    uint64_t z = (r->x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t trng_below(trng *r, uint64_t n) { return trng_next(r) % n; }

/* A dataset with C channels named chan[], K classes and n windows of zeros (class 0),
 * made with the dataset API; the tests then write values, labels and statistics. */
static inline nd_dataset *tds_new(uint32_t C, const char *const *chan, uint32_t L,
                                  uint64_t bin_ns, uint32_t K, const char *const *classes,
                                  uint64_t n)
{
    nd_dataset *ds = nd_dataset_new(C, chan, L, bin_ns);
    CHECK(ds);
    for (uint32_t k = 0; k < K; k++) CHECK_EQ(nd_dataset_class(ds, classes[k]), k);
    float *zero = calloc((size_t)C * L, sizeof *zero);
    CHECK(zero);
    for (uint64_t w = 0; w < n; w++) CHECK_EQ(nd_dataset_append(ds, 0, w, zero), 0);
    free(zero);
    return ds;
}

static inline void tds_free(nd_dataset *ds) { nd_dataset_free(ds); }

static inline float *tds_at(nd_dataset *ds, uint64_t w, uint32_t c, uint32_t b)
{
    return &ds->values[(w * ds->n_channels + c) * ds->L + b];
}

/* Flow starts of one input every gap_ns (1000 of them), or none when gap_ns is 0. */
static inline void tds_arrivals(nd_class_stats *st, uint64_t gap_ns)
{
    memset(st->arrival_hist, 0, sizeof st->arrival_hist);
    st->arrival_hist[nd_arrival_bucket(gap_ns)] = gap_ns ? 999 : 0;
    st->arrival_gap_ns = 999 * gap_ns;
    st->arrival_inputs = gap_ns ? 1 : 0;
}

/* Statistics that look like a capture of web traffic: ACK-sized and MTU-sized frames,
 * gaps of 1 us .. 1 ms, a TCP/UDP and IPv4/IPv6 mix, three ports, two MSS values. */
static inline void tds_web_stats(nd_class_stats *st, double udp_share, double v6_share)
{
    memset(st, 0, sizeof *st);
    for (int d = 0; d < 2; d++) {
        st->size_hist[d][54] = d == ND_UP ? 600 : 100;
        st->size_hist[d][66] = 100;
        st->size_hist[d][583] = 50;
        st->size_hist[d][1514] = d == ND_DOWN ? 700 : 20;
        st->size_hist[d][1518] = 5; /* larger than the MTU: must be clamped */
        for (int k = 10; k < 20; k++) st->iat_hist[d][k] = (uint64_t)(20 - k);
        st->ttl_hist[d][d == ND_DOWN ? 52 : 64] = 10;
        st->ttl_hist[d][128] = 1;
    }
    st->flows = 1000;
    st->l4_flows[ND_L4_UDP] = (uint64_t)(udp_share * 1000);
    st->l4_flows[ND_L4_TCP] = 1000 - st->l4_flows[ND_L4_UDP];
    st->ipv6_flows = (uint64_t)(v6_share * 1000);
    st->port[0] = 443, st->port_count[0] = 80;
    st->port[1] = 8080, st->port_count[1] = 15;
    st->port[2] = 5201, st->port_count[2] = 5;
    st->mss[0] = 1460, st->mss_count[0] = 9;
    st->mss[1] = 1400, st->mss_count[1] = 1;
    st->first_flow_ns = 0;
    st->last_flow_ns = 999ull * 10000000ull;
    tds_arrivals(st, 10000000ull); /* 100 flows/s */
}

/* ------------------------------------------------------------------------------------ */
/* Frame parsing and checksum verification                                              */
/* ------------------------------------------------------------------------------------ */

typedef struct tframe {
    int v6, proto; /* 6 TCP, 17 UDP */
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags, ttl;
    uint16_t mss; /* MSS option, 0 when absent */
    uint32_t payload;
    int ip_ok, l4_ok; /* checksums verify */
} tframe;

static inline uint32_t tget16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t tget32(const uint8_t *p) { return tget16(p) << 16 | tget16(p + 2); }

/* Ones'-complement sum of bytes, one byte at a time: even offsets are the high byte. */
static inline uint64_t tsum_bytes(uint64_t s, const uint8_t *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++) s += ((start + i) % 2 == 0) ? (uint64_t)p[i] << 8 : p[i];
    return s;
}

static inline int tsum_valid(uint64_t s)
{
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return s == 0xffff;
}

/* Parses an Ethernet frame of len bytes; fails the test on anything malformed. */
static inline tframe tframe_parse(const uint8_t *f, uint32_t len)
{
    tframe t;
    memset(&t, 0, sizeof t);
    CHECK(len >= 42);
    uint32_t et = tget16(f + 12);
    const uint8_t *ip = f + 14, *l4;
    uint32_t l4len;
    uint8_t ph[40];
    size_t phlen;
    if (et == 0x0800) {
        CHECK_EQ(ip[0], 0x45);
        CHECK_EQ(tget16(ip + 2) + 14, len);
        t.proto = ip[9];
        t.ttl = ip[8];
        memcpy(t.src, ip + 12, 4);
        memcpy(t.dst, ip + 16, 4);
        t.ip_ok = tsum_valid(tsum_bytes(0, ip, 20, 0));
        l4 = ip + 20;
        l4len = len - 34;
        memcpy(ph, ip + 12, 8);
        ph[8] = 0, ph[9] = (uint8_t)t.proto, ph[10] = (uint8_t)(l4len >> 8),
        ph[11] = (uint8_t)l4len;
        phlen = 12;
    } else {
        CHECK_EQ(et, 0x86dd);
        t.v6 = 1;
        CHECK_EQ(ip[0] >> 4, 6);
        CHECK_EQ(tget16(ip + 4) + 54, len);
        t.proto = ip[6];
        t.ttl = ip[7];
        memcpy(t.src, ip + 8, 16);
        memcpy(t.dst, ip + 24, 16);
        t.ip_ok = 1; /* IPv6 has no header checksum */
        l4 = ip + 40;
        l4len = len - 54;
        memcpy(ph, ip + 8, 32);
        ph[32] = ph[33] = 0, ph[34] = (uint8_t)(l4len >> 8), ph[35] = (uint8_t)l4len;
        ph[36] = ph[37] = ph[38] = 0, ph[39] = (uint8_t)t.proto;
        phlen = 40;
    }
    t.sport = (uint16_t)tget16(l4);
    t.dport = (uint16_t)tget16(l4 + 2);
    if (t.proto == 6) {
        CHECK(l4len >= 20);
        uint32_t off = (uint32_t)(l4[12] >> 4) * 4;
        CHECK(off >= 20 && off <= l4len);
        t.seq = tget32(l4 + 4);
        t.ack = tget32(l4 + 8);
        t.flags = l4[13];
        if (off >= 24 && l4[20] == 2 && l4[21] == 4) t.mss = (uint16_t)tget16(l4 + 22);
        t.payload = l4len - off;
    } else {
        CHECK_EQ(t.proto, 17);
        CHECK_EQ(tget16(l4 + 4), l4len);
        CHECK(tget16(l4 + 6) != 0); /* replay always fills the UDP checksum */
        t.payload = l4len - 8;
    }
    t.l4_ok = tsum_valid(tsum_bytes(tsum_bytes(0, ph, phlen, 0), l4, l4len, 0));
    return t;
}

/* Reads every TCP stream of the pcap at path with tshark and fails the test unless each
 * runs as a replay's does: SYN, SYN-ACK, both FINs, a last pure ACK. Returns the number
 * of streams (tshark must be installed). */
static inline int tshark_tcp_streams(const char *path)
{
    enum { MAX_STREAMS = 4096 };
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "tshark -n -r '%s' -Y tcp -T fields -e tcp.stream -e tcp.flags 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    CHECK(p);
    static struct {
        int n, fins;
        unsigned first, second, last;
    } sm[MAX_STREAMS];
    memset(sm, 0, sizeof sm);
    int streams = 0, id;
    unsigned flags;
    while (fscanf(p, "%d %x", &id, &flags) == 2) {
        CHECK(id >= 0 && id < MAX_STREAMS);
        if (id >= streams) streams = id + 1;
        if (sm[id].n == 0) sm[id].first = flags;
        if (sm[id].n == 1) sm[id].second = flags;
        sm[id].last = flags;
        sm[id].fins += (flags & 1) != 0;
        sm[id].n++;
    }
    CHECK_EQ(pclose(p), 0);
    for (int i = 0; i < streams; i++)
        if (sm[i].first != 0x002 || sm[i].second != 0x012 || sm[i].fins != 2 ||
            sm[i].last != 0x010)
            CHECK_FAIL_("%s: tcp.stream %d: first flags 0x%03x, second 0x%03x, %d FINs, last "
                        "0x%03x",
                        path, i, sm[i].first, sm[i].second, sm[i].fins, sm[i].last);
    return streams;
}

#ifdef PCAP_ERRBUF_SIZE /* the test included <pcap/pcap.h> */
/* Reads a pcap file to a clean end (failing the test on anything else), checking every
 * frame's checksums; returns the number of packets and adds their bytes to *bytes. */
static inline uint64_t tpcap_read(const char *path, uint64_t *bytes)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) CHECK_FAIL_("pcap_open_offline: %s", err);
    CHECK_EQ(pcap_datalink(p), DLT_EN10MB);
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t n = 0, last = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        uint64_t t = (uint64_t)h->ts.tv_sec * ND_NS_PER_SEC + (uint64_t)h->ts.tv_usec;
        CHECK(t >= last); /* nanoseconds, in deadline order */
        last = t;
        CHECK_EQ(h->caplen, h->len);
        tframe f = tframe_parse(data, h->caplen);
        CHECK(f.ip_ok && f.l4_ok);
        if (bytes) *bytes += h->len;
        n++;
    }
    if (rc != PCAP_ERROR_BREAK) CHECK_FAIL_("%s: %s", path, pcap_geterr(p));
    pcap_close(p);
    return n;
}
#endif

#ifdef ND_BINARY
/* ------------------------------------------------------------------------------------ */
/* Running netdiffus, for the tests of the command line                                 */
/* ------------------------------------------------------------------------------------ */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char tcli_err[8192]; /* stderr of the last run */

/* Reads the file path into tcli_err (cut to its size). */
static inline void tcli_read_err(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f);
    size_t n = fread(tcli_err, 1, sizeof tcli_err - 1, f);
    tcli_err[n] = 0;
    fclose(f);
}

/* Runs netdiffus with args (a shell fragment), stderr into err_path (one per test
 * program: ctest may run them at once); returns the exit code, stderr in tcli_err. */
static inline int tcli_run(const char *err_path, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>%s >/dev/null", ND_BINARY, args, err_path);
    int st = system(cmd);
    tcli_read_err(err_path);
    CHECK(WIFEXITED(st));
    return WEXITSTATUS(st);
}

#define TCLI_EXPECT(err_path, code, args, needle)                                              \
    do {                                                                                       \
        int rc_ = tcli_run(err_path, args);                                                    \
        if (rc_ != (code))                                                                     \
            CHECK_FAIL_("netdiffus %s: exit %d, expected %d; stderr:\n%s", args, rc_, code,    \
                        tcli_err);                                                             \
        CHECK_CONTAINS(tcli_err, needle);                                                      \
    } while (0)

static inline int tcli_same_file(const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    return system(cmd) == 0;
}

/* Starts netdiffus with argv (after the program name, NULL-terminated), stderr into
 * err_path, sends SIGINT after wait_ms and returns the exit code (stderr in tcli_err).
 * A process the signal killed (it came before the handler was set: a slow start on a
 * loaded host) is run again with twice the wait. */
static inline int tcli_interrupt(const char *err_path, const char *const *argv, int wait_ms)
{
    const char *args[32] = {ND_BINARY};
    for (int i = 0; argv[i]; i++) {
        CHECK(i + 2 < 32);
        args[i + 1] = argv[i];
    }
    for (;; wait_ms *= 2) {
        CHECK(wait_ms < 30000);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            if (!freopen(err_path, "w", stderr)) _exit(99);
            execv(ND_BINARY, (char *const *)args);
            _exit(98);
        }
        usleep((useconds_t)wait_ms * 1000);
        CHECK_EQ(kill(pid, SIGINT), 0);
        int st;
        CHECK_EQ(waitpid(pid, &st, 0), pid);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) continue;
        CHECK(WIFEXITED(st));
        tcli_read_err(err_path);
        return WEXITSTATUS(st);
    }
}
#endif

#endif
