/*
 * test_replay_flowlen.c — `netdiffus replay MODEL.ndm` sends flows as long as the captured
 * ones (docs/REPLAY.md, "Flows longer than a window"). Two pcaps written here hold TCP
 * flows of 9 to 48 bins of 50 ms (two to six windows of 8 bins), a packet each way in
 * every bin, their lengths drawn alike: `capture` turns each into a dataset, a tiny model
 * is trained for a few seconds on the first, and its replay is captured again. The
 * replayed flows' durations must be as close to the held-out second half's as twice the
 * distance between the two real halves (1-Wasserstein over the captured duration
 * histograms); every replayed flow is one connection (one SYN, one flow in the
 * recapture); --max-flow-windows 1 gives flows of one window; replay.max_flow_windows,
 * replay.context and replay.resample do what the options do; a flow rate holds from the
 * first packet on; the same seed gives the same pcap; streamed (--duration), the same
 * pcap with one sampler thread and two.
 */
#include <pcap/pcap.h>

#include "../capture/pktgen.h"
#include "json_check.h"
#include "replay_test.h"
#include "tiny_cli.h"

#define ERR  "replay_flowlen.err"
#define T0   (1600000000ull * ND_NS_PER_SEC)
#define BIN  (50ull * 1000000ull) /* 50 ms */
#define NBIN 8                    /* bins per window */
#define HALF 100                  /* flows per real half */

typedef struct pkt_rec {
    uint64_t ts;
    pkt_spec s;
} pkt_rec;

static int by_time(const void *a, const void *b)
{
    const pkt_rec *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* HALF TCP flows to port 443 of 9..48 bins each (from r), starting 20 ms apart, a packet
 * up at 2 ms and one down at 10 ms into each bin: SYN first, FIN last. */
static void write_half(const char *path, trng *r, int half)
{
    static pkt_rec pk[HALF * 48 * 2];
    static char src[HALF][20];
    size_t n = 0;
    for (int i = 0; i < HALF; i++) {
        uint64_t dur = 9 + trng_below(r, 40), t0 = T0 + (uint64_t)i * 20000000ull;
        snprintf(src[i], sizeof src[i], "10.%d.%d.%d", half, i / 200, 1 + i % 200);
        for (uint64_t b = 0; b < dur; b++)
            for (int up = 1; up >= 0; up--) {
                pkt_spec s = {.src = up ? src[i] : "10.9.0.1",
                              .dst = up ? "10.9.0.1" : src[i],
                              .sport = (uint16_t)(up ? 40000 + i : 443),
                              .dport = (uint16_t)(up ? 443 : 40000 + i),
                              .proto = 6,
                              .tcp_flags = (uint8_t)(b == 0 && up ? 0x02 : 0x10),
                              .ip_total = (uint32_t)(up ? 100 + trng_below(r, 200)
                                                        : 600 + trng_below(r, 800))};
                if (b + 1 == dur) s.tcp_flags |= 0x01;
                pk[n++] = (pkt_rec){t0 + b * BIN + (up ? 2 : 10) * 1000000ull, s};
            }
    }
    qsort(pk, n, sizeof *pk, by_time);
    pcap_out o;
    pcap_out_open(&o, path, DLT_EN10MB, 1);
    static uint8_t buf[16384];
    for (size_t i = 0; i < n; i++)
        pcap_out_write(&o, pk[i].ts, buf, pkt_build(buf, &pk[i].s), 0);
    pcap_out_close(&o);
}

static void run_ok(const char *args) { TCLI_EXPECT(ERR, 0, args, ""); }

/* `capture` of pcap into ndd (class web, windows of NBIN bins of BIN); its one class's
 * statistics. */
static nd_class_stats capture(const char *pcap, const char *ndd)
{
    char args[512];
    snprintf(args, sizeof args,
             "capture -q -c flowlen.yaml --source pcap:%s --class web --set capture.bin=50ms "
             "-o %s",
             pcap, ndd);
    run_ok(args);
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(ndd, &e);
    if (!ds) CHECK_FAIL_("%s", e.msg);
    CHECK_EQ(ds->n_classes, 1);
    CHECK_EQ(ds->L, NBIN);
    nd_class_stats st = ds->stats[0];
    nd_dataset_free(ds);
    return st;
}

/* Packets of a pcap in [a, b) seconds after its first. */
static uint64_t packets_in(const char *path, double a, double b)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) CHECK_FAIL_("%s: %s", path, err);
    struct pcap_pkthdr *h;
    const u_char *data;
    double t0 = -1;
    uint64_t n = 0;
    while (pcap_next_ex(p, &h, &data) == 1) {
        double t = (double)h->ts.tv_sec + (double)h->ts.tv_usec * 1e-9;
        if (t0 < 0) t0 = t;
        n += t - t0 >= a && t - t0 < b;
    }
    pcap_close(p);
    return n;
}

/* 1-Wasserstein distance in bins between two classes' duration histograms (each bucket
 * at its middle). */
static double w1(const nd_class_stats *a, const nd_class_stats *b)
{
    double na = (double)nd_duration_flows(a), nb = (double)nd_duration_flows(b);
    CHECK(na > 0 && nb > 0);
    double fa = 0, fb = 0, d = 0, x = 0;
    for (uint32_t k = 0; k < ND_DURATION_HIST; k++) {
        uint64_t first, width;
        nd_duration_range(k, &first, &width);
        double mid = (double)first + (double)(width - 1) / 2;
        if (k) d += fabs(fa - fb) * (mid - x);
        x = mid;
        fa += (double)a->duration_hist[k] / na;
        fb += (double)b->duration_hist[k] / nb;
    }
    return d;
}

static double mean(const nd_class_stats *s)
{
    return (double)s->duration_bins / (double)nd_duration_flows(s);
}

/* The longest captured duration in bins (the top of its bucket). */
static uint64_t longest(const nd_class_stats *s)
{
    uint64_t first = 0, width = 1;
    for (uint32_t k = 0; k < ND_DURATION_HIST; k++)
        if (s->duration_hist[k]) nd_duration_range(k, &first, &width);
    return first + width - 1;
}

/* Every TCP connection of the pcap (by its address/port pair) begins with one SYN, and
 * there are `flows` of them. */
static void one_syn_each(const char *path, uint32_t flows)
{
    enum { MAX = 512 };
    static struct {
        uint8_t a[16], b[16];
        uint16_t pa, pb;
        uint32_t syn;
    } c[MAX];
    uint32_t n = 0;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, err);
    if (!p) CHECK_FAIL_("%s: %s", path, err);
    struct pcap_pkthdr *h;
    const u_char *data;
    while (pcap_next_ex(p, &h, &data) == 1) {
        tframe f = tframe_parse(data, h->caplen);
        CHECK_EQ(f.proto, 6);
        int fwd =
            memcmp(f.src, f.dst, 16) < 0 || (!memcmp(f.src, f.dst, 16) && f.sport < f.dport);
        const uint8_t *a = fwd ? f.src : f.dst, *b = fwd ? f.dst : f.src;
        uint16_t pa = fwd ? f.sport : f.dport, pb = fwd ? f.dport : f.sport;
        uint32_t i = 0;
        while (i < n && (memcmp(c[i].a, a, 16) || memcmp(c[i].b, b, 16) || c[i].pa != pa ||
                         c[i].pb != pb))
            i++;
        if (i == n) {
            CHECK(n < MAX);
            memcpy(c[n].a, a, 16), memcpy(c[n].b, b, 16);
            c[n].pa = pa, c[n].pb = pb, c[n++].syn = 0;
        }
        c[i].syn += (f.flags & 0x12) == 0x02; /* SYN without ACK */
    }
    pcap_close(p);
    CHECK_EQ(n, flows);
    for (uint32_t i = 0; i < n; i++) CHECK_EQ(c[i].syn, 1);
}

int main(void)
{
    /* a tiny model, trained for a few seconds; the same windows and bins for capture */
    tiny_cli_conf("flowlen.yaml", 400, "");
    trng r = {2024};
    write_half("flowlen_a.pcap", &r, 1);
    write_half("flowlen_b.pcap", &r, 2);
    nd_class_stats a = capture("flowlen_a.pcap", "flowlen_a.ndd");
    nd_class_stats b = capture("flowlen_b.pcap", "flowlen_b.ndd");
    CHECK_U64_EQ(nd_duration_flows(&a), HALF);
    CHECK(longest(&a) > 4 * NBIN);
    run_ok("train -q -c flowlen.yaml flowlen_a.ndd -o flowlen.ndm");

    /* all at once: 200 flows, drawn from the first half's durations */
    run_ok("replay flowlen.ndm --flows 200 --seed 3 --to pcap:flowlen_r.pcap "
           "--stats flowlen_r.json");
    CHECK(json_holds("flowlen_r.json", 1,
                     "d[-1]['final'] and d[-1]['flows'] == 200 and "
                     "d[-1]['lengths']['longer'] == 200 and d[-1]['lengths']['cut'] == 0 and "
                     "d[-1]['lengths']['windows_sampled'] > 3 * 200"));
    one_syn_each("flowlen_r.pcap", 200);
    nd_class_stats got = capture("flowlen_r.pcap", "flowlen_r.ndd");
    CHECK_U64_EQ(nd_duration_flows(&got), 200); /* one flow in the recapture each */
    double floor_w1 = w1(&a, &b), held_out = w1(&got, &b), train_w1 = w1(&got, &a);
    printf("durations (bins): real halves mean %.1f and %.1f, replayed %.1f (longest %llu); "
           "W1 replayed vs held-out %.2f, vs training half %.2f, real vs real %.2f\n",
           mean(&a), mean(&b), mean(&got), (unsigned long long)longest(&got), held_out,
           train_w1, floor_w1);
    CHECK(floor_w1 > 0);
    CHECK(held_out <= 2 * floor_w1);

    /* the same seed, the same pcap */
    run_ok("replay flowlen.ndm --flows 200 --seed 3 --to pcap:flowlen_r2.pcap");
    CHECK(tcli_same_file("flowlen_r.pcap", "flowlen_r2.pcap"));

    /* one window per flow: nothing longer than NBIN bins */
    run_ok("replay flowlen.ndm --flows 50 --seed 3 --max-flow-windows 1 "
           "--to pcap:flowlen_1.pcap --stats flowlen_1.json");
    CHECK(json_holds("flowlen_1.json", 1,
                     "d[-1]['lengths']['longer'] == 0 and "
                     "d[-1]['lengths']['windows_sampled'] >= 50"));
    nd_class_stats one = capture("flowlen_1.pcap", "flowlen_1.ndd");
    CHECK_U64_EQ(nd_duration_flows(&one), 50);
    CHECK(longest(&one) <= NBIN);
    /* a cap of 2 windows cuts every flow (all are longer than 9 bins from their start) */
    run_ok("replay flowlen.ndm --flows 20 --seed 3 --max-flow-windows 2 "
           "--to pcap:flowlen_2.pcap --stats flowlen_2.json");
    CHECK_CONTAINS(tcli_err, "were cut to it");
    CHECK(json_holds("flowlen_2.json", 1, "d[-1]['lengths']['cut'] > 0"));
    nd_class_stats two = capture("flowlen_2.pcap", "flowlen_2.ndd");
    CHECK(longest(&two) <= 2 * NBIN);
    /* the same from the config's replay section: L/4 of the model's 8 bins is the context
     * 2 of the command line; each differs from the defaults (L/2, one take a step) */
    FILE *f = fopen("flowlen_cfg.yaml", "w");
    CHECK(f != NULL);
    fputs("replay:\n  max_flow_windows: 2\n  context: L/4\n  resample: 2\n", f);
    CHECK(fclose(f) == 0);
    run_ok(
        "replay flowlen.ndm -c flowlen_cfg.yaml --flows 20 --seed 3 --to pcap:flowlen_c.pcap");
    CHECK_CONTAINS(tcli_err, "were cut to it");
    run_ok("replay flowlen.ndm --flows 20 --seed 3 --max-flow-windows 2 --context 2 "
           "--resample 2 --to pcap:flowlen_c2.pcap");
    CHECK(tcli_same_file("flowlen_c.pcap", "flowlen_c2.pcap"));
    run_ok("replay flowlen.ndm --flows 20 --seed 3 --max-flow-windows 2 --context 2 "
           "--to pcap:flowlen_c1.pcap");
    CHECK(!tcli_same_file("flowlen_c.pcap", "flowlen_c1.pcap"));
    CHECK(!tcli_same_file("flowlen_c1.pcap", "flowlen_2.pcap"));
    f = fopen("flowlen_cfg8.yaml", "w");
    CHECK(f != NULL);
    fputs("replay:\n  context: 8\n", f);
    CHECK(fclose(f) == 0);
    TCLI_EXPECT(ERR, 2,
                "replay flowlen.ndm -c flowlen_cfg8.yaml --flows 2 --to pcap:flowlen_x.pcap",
                "flowlen_cfg8.yaml: replay.context 8: expected 0 to 7 bins");

    /* a rate target holds from the first packet on although the flows last several
     * windows: about rate x mean life of them are active at the start, each at a point of
     * its life (a lead-in of one window started with a third of them) */
    run_ok("replay flowlen.ndm --flows 300 --flows-per-s 50 --seed 4 "
           "--to pcap:flowlen_rate.pcap");
    double first = (double)packets_in("flowlen_rate.pcap", 0, 0.5),
           steady = (double)packets_in("flowlen_rate.pcap", 1, 3) / 4;
    printf("--flows-per-s 50: %.0f packets in the first 0.5 s, %.0f a 0.5 s later on\n", first,
           steady);
    CHECK(steady > 500);
    CHECK(first > 0.8 * steady && first < 1.25 * steady);

    /* streamed: the same flows whatever the sampler threads, longer than a window, the
     * queue (in windows) within its bound; six at a time for 4 s, started in a lead-in
     * as long as the longest flow (flows of about 1.4 s: some 20 of them) */
    char args[512];
    for (int samplers = 1; samplers <= 2; samplers++) {
        snprintf(args, sizeof args,
                 "replay flowlen.ndm --duration 4s --concurrency 6 --queue 16 --samplers %d "
                 "--seed 5 --to pcap:flowlen_s%d.pcap --stats flowlen_s%d.json",
                 samplers, samplers, samplers);
        TCLI_EXPECT(ERR, 0, args, "streaming flows");
        CHECK(json_holds(args + strlen(args) - strlen("flowlen_s1.json"), 1,
                         "d[-1]['final'] and d[-1]['late'] == 0 and "
                         "d[-1]['flows'] > 12 and d[-1]['lengths']['longer'] > 0 and "
                         "0 < d[-1]['stream']['queue_max'] <= d[-1]['stream']['queue_bound']"));
    }
    CHECK(tcli_same_file("flowlen_s1.pcap", "flowlen_s2.pcap"));
    nd_class_stats s = capture("flowlen_s1.pcap", "flowlen_s1.ndd");
    printf("streamed: %llu flows, mean %.1f bins, longest %llu\n",
           (unsigned long long)nd_duration_flows(&s), mean(&s),
           (unsigned long long)longest(&s));
    CHECK(longest(&s) > NBIN);
    printf("replay flow lengths: ok\n");
    return 0;
}
