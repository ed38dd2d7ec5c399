/*
 * test_replay_load.c — load targets on a pcap sink, measured from the pcap's timestamps
 * (never the wall clock): --pps, --mbps, --flows-per-s and --concurrency hold within 5 %
 * over 10 s of output time from the first packet on, --duration ends the run on time with
 * flows reused, and targets that cannot be held are refused or said.
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <unistd.h>

#include "replay_test.h"

#define EPOCH_NS (946684800ull * ND_NS_PER_SEC) /* the pcap sink's time 0 */
#define DUR      (10 * ND_NS_PER_SEC)

static const char *const ch4[] = {"bytes_down", "bytes_up", "pkts_down", "pkts_up"};
static const char *const cls1[] = {"web"};

/* What a pcap holds: packets, frame bytes, and each flow's first and last packet. */
typedef struct load {
    uint64_t packets, bytes, last;
    uint64_t flows, started_after_1s;
    double active_s; /* sum over flows of their life within [0, DUR) */
} load;

typedef struct fl {
    uint64_t key, first, last;
} fl;

static load measure(const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    CHECK(p);
    enum { SLOTS = 1 << 16 };
    fl *t = calloc(SLOTS, sizeof *t);
    CHECK(t);
    load m = {0};
    struct pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        uint64_t ts =
            (uint64_t)h->ts.tv_sec * ND_NS_PER_SEC + (uint64_t)h->ts.tv_usec - EPOCH_NS;
        tframe f = tframe_parse(d, h->caplen);
        m.packets++, m.bytes += h->len, m.last = ts;
        /* the flow: both directions' 5-tuple, in one order */
        uint64_t a = (uint64_t)tget32(f.src) << 16 | f.sport,
                 b = (uint64_t)tget32(f.dst) << 16 | f.dport;
        uint64_t key =
            (a < b ? a * 0x9e3779b97f4a7c15ull + b : b * 0x9e3779b97f4a7c15ull + a) | 1;
        uint32_t i = (uint32_t)(key >> 40) & (SLOTS - 1);
        while (t[i].key && t[i].key != key) i = (i + 1) & (SLOTS - 1);
        if (!t[i].key) t[i] = (fl){key, ts, ts}, m.flows++;
        t[i].last = ts;
        CHECK(m.flows < SLOTS / 2);
    }
    pcap_close(p);
    for (uint32_t i = 0; i < SLOTS; i++) {
        if (!t[i].key) continue;
        uint64_t a = t[i].first, b = t[i].last < DUR ? t[i].last : DUR;
        if (b > a) m.active_s += (double)(b - a) / 1e9;
        m.started_after_1s += a >= ND_NS_PER_SEC;
    }
    free(t);
    return m;
}

static load run(const nd_dataset *ds, const replay_opts *o, const char *path)
{
    nd_error e = {0};
    replay_sink *k = replay_sink_open(path, &e);
    CHECK(k);
    replay_stats st;
    int rc = replay_run(ds, o, k, &st, &e);
    if (rc) printf("replay_run: %s\n", e.msg);
    CHECK_EQ(rc, 0);
    CHECK_EQ(st.ended, REPLAY_END_DURATION);
    CHECK_EQ(replay_sink_close(k, &e), 0);
    load m = measure(path + 5);
    /* --duration stops on time: nothing at or after 10 s, and the load up to its end */
    CHECK(m.last < DUR);
    CHECK(m.last > DUR - 20000000ull);
    CHECK_U64_EQ(st.packets, m.packets);
    return m;
}

static void expect_refused(const nd_dataset *ds, const replay_opts *o, const char *what)
{
    nd_error e = {0};
    replay_sink *k = replay_sink_open("pcap:load_refused.pcap", &e);
    CHECK(k);
    CHECK_EQ(replay_run(ds, o, k, NULL, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, what);
    replay_sink_discard(k);
}

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    /* 8 windows of 10 bins of 100 ms: every bin 10 frames down (1000 B) and 5 up (100 B) */
    const uint32_t L = 10;
    nd_dataset *ds = tds_new(4, ch4, L, 100000000ull, 1, cls1, 8);
    tds_web_stats(&ds->stats[0], 0.0, 0.0);
    for (uint64_t w = 0; w < 8; w++)
        for (uint32_t b = 0; b < L; b++) {
            *tds_at(ds, w, 0, b) = 10000, *tds_at(ds, w, 1, b) = 500;
            *tds_at(ds, w, 2, b) = 10, *tds_at(ds, w, 3, b) = 5;
        }
    replay_opts o;
    replay_opts_defaults(&o);
    o.status = 0;
    o.speed = 0;
    o.loop = 0; /* flows reused until the duration */
    o.duration_ns = DUR;

    o.pps = 20000;
    load m = run(ds, &o, "pcap:load_pps.pcap");
    printf("--pps 20000: %.0f pps over 10 s (%llu flows)\n", (double)m.packets / 10,
           (unsigned long long)m.flows);
    CHECK_NEAR((double)m.packets / 10, 20000, 0, 0.05);
    o.pps = 0;

    o.mbps = 100;
    m = run(ds, &o, "pcap:load_mbps.pcap");
    printf("--mbps 100: %.2f Mbit/s over 10 s\n", (double)m.bytes * 8 / 10 / 1e6);
    CHECK_NEAR((double)m.bytes * 8 / 10 / 1e6, 100, 0, 0.05);
    o.mbps = 0;

    o.flows_per_s = 50;
    m = run(ds, &o, "pcap:load_fps.pcap");
    printf("--flows-per-s 50: %.1f flows/s started in [1 s, 10 s)\n",
           (double)m.started_after_1s / 9);
    CHECK_NEAR((double)m.started_after_1s / 9, 50, 0, 0.05);
    o.flows_per_s = 0;

    o.concurrency = 40;
    m = run(ds, &o, "pcap:load_conc.pcap");
    printf("--concurrency 40: %.2f flows active on average over 10 s\n", m.active_s / 10);
    CHECK_NEAR(m.active_s / 10, 40, 0, 0.05);

    /* refused: two targets, a speed other than 1 or 0, more than the line carries */
    o.pps = 1000;
    expect_refused(ds, &o, "give one load target");
    o.pps = 0;
    o.speed = 2;
    expect_refused(ds, &o, "--speed must be 1");
    o.speed = 0;
    o.concurrency = 0;
    o.mbps = 2000;
    o.line_bps = 1e9;
    expect_refused(ds, &o, "more than the line rate of 1 Gbit/s");

    unlink("load_pps.pcap"), unlink("load_mbps.pcap"), unlink("load_fps.pcap");
    unlink("load_conc.pcap");
    tds_free(ds);
    printf("replay load: ok\n");
    return 0;
}
