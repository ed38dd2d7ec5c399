/*
 * bench_capture.c — capture benchmarks behind scripts/bench-capture (built, never run by
 * ctest):
 *
 *   bench_capture mem FLOWS [PACKETS]        parse + flow table + binning on packets in
 *                                            memory, one core, Mpps
 *   bench_capture genpcap FILE PACKETS FLOWS a large pcap (µs, Ethernet, IMIX-like sizes)
 *   bench_capture bare FILE                  a bare pcap_next_ex loop over FILE, Mpps
 *   bench_capture file FILE                  capture_run over pcap:FILE (no dataset), Mpps,
 *                                            and the process's peak RSS
 *   bench_capture ring FLOWS PACKETS         DPDK net_ring vdev: tx into the ring, rx +
 *                                            capture on the same core, Mpps
 *
 * Output: one line "name: X Mpps (details)" per run, for the script to collect.
 */
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "capture.h"

/* One stream for every synthetic packet: the same flows and sizes on every run. */
static nd_rng rng = {{0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 1}};
static uint64_t next_u64(void) { return nd_rng_u64(&rng); }

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }

/* One Ethernet/IPv4 frame of flow f in direction dir (0 client→server); 3 of 4 flows TCP.
 * ip_total is what the headers say (the frame buffer holds hdr_len bytes). */
static size_t frame(uint8_t *b, uint32_t f, int dir, uint16_t ip_total)
{
    memset(b, 0, 64);
    memcpy(b, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
    uint8_t *ip = b + 14;
    int tcp = f % 4 != 0;
    ip[0] = 0x45;
    put16(ip + 2, ip_total);
    ip[8] = 64;
    ip[9] = tcp ? 6 : 17;
    uint8_t cli[4] = {10, (uint8_t)(f >> 16), (uint8_t)(f >> 8), (uint8_t)f};
    uint8_t srv[4] = {192, 168, (uint8_t)(f % 13), (uint8_t)(1 + f % 250)};
    memcpy(ip + 12, dir ? srv : cli, 4);
    memcpy(ip + 16, dir ? cli : srv, 4);
    uint8_t *l4 = ip + 20;
    uint16_t cport = (uint16_t)(1024 + f % 60000), sport = tcp ? 443 : 53;
    put16(l4, dir ? sport : cport);
    put16(l4 + 2, dir ? cport : sport);
    if (tcp) {
        l4[12] = 0x50;
        l4[13] = 0x10;
    }
    return 14 + 20 + (tcp ? 20 : 8);
}

/* IMIX-like sizes: 7 small, 4 medium, 1 large. */
static uint16_t imix(void)
{
    uint64_t r = next_u64() % 12;
    return r < 7 ? 60 : r < 11 ? 576 : 1500;
}

/* CPU time of this thread: on a machine whose two cores are shared with other work, wall
 * time measures the neighbours; CPU time measures this code on one core. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * ND_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static int count_window(void *user, uint32_t cls, uint64_t group, const float *v)
{
    (void)cls, (void)group, (void)v;
    ++*(uint64_t *)user;
    return 0;
}

static void bench_opts(capture_opts *o, uint32_t flows)
{
    capture_opts_defaults(o);
    o->flow_capacity = flows + flows / 4 + 1024;
    /* 100 ms bins, 64-bin windows: at 10 Mpps of traffic time every flow closes a bin
     * now and then and windows go out, as on a real link (1 s bins would hardly close any
     * in a few seconds of packets). */
    o->bin_ns = 100000000;
    o->window = 64;
    o->idle_timeout_ns = 3600 * ND_NS_PER_SEC;
    o->active_timeout_ns = 7200 * ND_NS_PER_SEC;
}

static int bench_mem(uint32_t flows, uint32_t n)
{
    /* Packets as an rx ring hands them over: a ring of RING 64-byte buffers, refilled
     * (untimed) before each pass over it, so that they are in cache as DDIO leaves them.
     * Flows are picked uniformly at random, the worst case for the flow table's caches (a
     * mirror port mixes flows; real traffic is burstier). */
    enum { RING = 4096 };
    static uint8_t data[RING * 64];
    static capture_pkt pk[RING];
    capture_opts o;
    bench_opts(&o, flows);
    uint64_t windows = 0;
    nd_error e = {0};
    capture_ctx *c = capture_ctx_new(&o, NULL, count_window, &windows, &e);
    if (!c) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    uint64_t t = 1700000000ull * ND_NS_PER_SEC;
    double best = 0;
    /* Pass 0 creates the flows (and touches their memory); passes 1..3 are measured. */
    for (int pass = 0; pass < 4; pass++) {
        uint64_t busy = 0;
        for (uint32_t done = 0; done < n; done += RING) {
            for (uint32_t i = 0; i < RING; i++) {
                uint32_t f = (uint32_t)(next_u64() % flows);
                frame(data + (size_t)i * 64, f, (int)(next_u64() & 1), imix());
                pk[i] = (capture_pkt){data + (size_t)i * 64, 64, 64, t += 100};
            }
            uint64_t c0 = cpu_ns();
            for (uint32_t i = 0; i < RING; i += 32)
                capture_ctx_burst(c, CAPTURE_LINK_ETHERNET, pk + i, 32);
            busy += cpu_ns() - c0;
        }
        double mpps = (double)(n / RING * RING) / (busy / 1e3);
        if (pass && mpps > best) best = mpps;
    }
    capture_totals tot;
    capture_ctx_totals(c, &tot);
    printf("mem %u flows: %.2f Mpps on one core (CPU time of the capture calls; best of 3 "
           "passes of %u packets; %" PRIu64 " flows in table, %" PRIu64 " windows)\n",
           flows, best, n, tot.active_flows, windows);
    capture_ctx_free(c);
    return 0;
}

static int gen_pcap(const char *path, uint32_t n, uint32_t flows)
{
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t *d = pcap_dump_open(dead, path);
    if (!d) {
        fprintf(stderr, "%s: %s\n", path, pcap_geterr(dead));
        return 1;
    }
    static uint8_t buf[1600];
    uint64_t t = 1700000000ull * 1000000;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t f = (uint32_t)(next_u64() % flows);
        uint16_t ip = (uint16_t)(imix() - 14);
        frame(buf, f, (int)(next_u64() & 1), ip);
        struct pcap_pkthdr h;
        t += 1 + next_u64() % 20;
        h.ts.tv_sec = (time_t)(t / 1000000);
        h.ts.tv_usec = (suseconds_t)(t % 1000000);
        h.len = h.caplen = 14u + ip;
        pcap_dump((u_char *)d, &h, buf);
    }
    pcap_dump_close(d);
    pcap_close(dead);
    return 0;
}

static int bare(const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    uint64_t t0 = nd_now_ns(), c0 = cpu_ns();
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct pcap_pkthdr *h;
    const u_char *d;
    uint64_t n = 0, bytes = 0;
    while (pcap_next_ex(p, &h, &d) == 1) {
        n++;
        bytes += h->caplen + d[0]; /* touch the data, as any consumer must */
    }
    pcap_close(p);
    double s = (nd_now_ns() - t0) / 1e9, cs = (cpu_ns() - c0) / 1e9;
    printf("bare %s: %.2f Mpps per CPU-second (%.2f Mpps wall; %" PRIu64
           " packets, %.3f s CPU, "
           "checksum %" PRIu64 ")\n",
           path, n / cs / 1e6, n / s / 1e6, n, cs, bytes);
    return 0;
}

static int file(const char *path)
{
    capture_opts o;
    capture_opts_defaults(&o);
    uint64_t windows = 0;
    nd_error e = {0};
    capture_ctx *c = capture_ctx_new(&o, NULL, count_window, &windows, &e);
    char spec[4200];
    snprintf(spec, sizeof spec, "pcap:%s", path);
    const char *specs[] = {spec};
    uint64_t t0 = nd_now_ns(), c0 = cpu_ns();
    if (!c || capture_run(c, specs, 1, &o, NULL, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double s = (nd_now_ns() - t0) / 1e9, cs = (cpu_ns() - c0) / 1e9;
    capture_totals t;
    capture_ctx_totals(c, &t);
    /* The flow table's memory at its fullest (the rest of the process is a few MB). */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("file %s: %.2f Mpps per CPU-second (%.2f Mpps wall; %" PRIu64
           " packets, %.3f s CPU, %" PRIu64 " flows, %" PRIu64 " windows, peak RSS %ld MB)\n",
           path, t.packets / cs / 1e6, t.packets / s / 1e6, t.packets, cs, t.flows, windows,
           ru.ru_maxrss / 1024);
    capture_ctx_free(c);
    return 0;
}

static int ring(uint32_t flows, uint32_t n)
{
    capture_opts o;
    bench_opts(&o, flows);
    o.mbufs = 16383;
    nd_error e = {0};
    capture_source *s = capture_source_open(
        "dpdk:--no-huge --no-pci -m 512 --no-shconf --no-telemetry --vdev=net_ring0", &o, &e);
    if (!s) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    struct rte_mempool *mp =
        rte_pktmbuf_pool_create("bench_tx", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    uint64_t windows = 0;
    capture_ctx *c = capture_ctx_new(&o, NULL, count_window, &windows, &e);
    if (!mp || !c) return 1;
    capture_pkt pkts[32];
    struct rte_mbuf *m[32];
    uint64_t done = 0, t0 = cpu_ns(), gen_ns = 0;
    while (done < n) {
        /* Producer: 32 frames into the ring (timed apart, to report the rx side alone). */
        uint64_t g0 = cpu_ns();
        if (rte_pktmbuf_alloc_bulk(mp, m, 32)) break;
        for (int i = 0; i < 32; i++) {
            uint32_t f = (uint32_t)(next_u64() % flows);
            uint8_t *b = (uint8_t *)rte_pktmbuf_append(m[i], 64);
            frame(b, f, (int)(next_u64() & 1), imix());
        }
        uint16_t sent = rte_eth_tx_burst(0, 0, m, 32);
        if (sent < 32) rte_pktmbuf_free_bulk(m + sent, 32u - sent);
        gen_ns += cpu_ns() - g0;
        int k = capture_source_rx(s, pkts, 32, 0, &e);
        if (k > 0) {
            capture_ctx_burst(c, CAPTURE_LINK_ETHERNET, pkts, (unsigned)k);
            done += (uint64_t)k;
        }
    }
    double all = (cpu_ns() - t0) / 1e9, rx = all - gen_ns / 1e9;
    printf("ring %u flows: %.2f Mpps rx+capture on one core (CPU time; %.2f Mpps including "
           "the producer on the same core; %" PRIu64 " packets)\n",
           flows, done / rx / 1e6, done / all / 1e6, done);
    capture_ctx_free(c);
    capture_source_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    nd_log_set_level(ND_LOG_WARN);
    if (argc >= 3 && !strcmp(argv[1], "mem"))
        return bench_mem((uint32_t)atol(argv[2]), argc > 3 ? (uint32_t)atol(argv[3]) : 8000000);
    if (argc == 5 && !strcmp(argv[1], "genpcap"))
        return gen_pcap(argv[2], (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "bare")) return bare(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "file")) return file(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "ring"))
        return ring((uint32_t)atol(argv[2]), (uint32_t)atol(argv[3]));
    fprintf(stderr, "usage: bench_capture mem FLOWS [PACKETS] | genpcap FILE PACKETS FLOWS | "
                    "bare FILE | file FILE | ring FLOWS PACKETS\n");
    return 2;
}
