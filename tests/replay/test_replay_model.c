/*
 * test_replay_model.c — `netdiffus replay MODEL.ndm`: windows sampled fresh from a model
 * become packets. A tiny two-class model (web: TCP to 443/8080/5201 with an arrival rate;
 * voip: UDP to 5060 in 200-byte frames, no rate) is trained here in a second, then
 * replayed into pcap files that must read back valid with N flows split over the
 * classes as asked (by training flows, --class, --mix), sizes and ports from the model's
 * statistics, the same bytes for the same seed and other bytes for another. Bad input (unknown
 * class, untrained or corrupt model, --flows 0, a mix naming classes the model lacks) gives its
 * message and exit code; Ctrl-C while sampling ends cleanly. Streamed (--duration): the pcap
 * ends on time and has packets from its start, the same bytes with one sampler thread and
 * two, and the queue within --queue; `live` (a veth pair in a namespace made here): a load
 * that sampling cannot keep up with counts its late flows and says so.
 */
#include <pcap/pcap.h>
#include <sys/stat.h>

#include "json_check.h"
#include "model.h"
#include "netns.h"
#include "replay_test.h"
#include "tiny_model.h"

#define EXPECT(code, args, needle) TCLI_EXPECT("replay_model.err", code, args, needle)

enum { L = 8, MAX_FLOWS = 64 };

/* What a pcap holds, flow by flow (a flow: protocol and its unordered address/port pair). */
typedef struct flow_key {
    int proto;
    uint8_t a[16], b[16];
    uint16_t pa, pb;
    uint64_t first_ns;
} flow_key;

typedef struct pcap_summary {
    uint32_t n_flows, tcp_flows, udp_flows;
    flow_key flows[MAX_FLOWS];
    uint64_t packets, udp_packets, udp_200; /* UDP frames of exactly 200 bytes */
    uint64_t bad_port;                      /* packets whose ports miss the class's ports */
    uint64_t first_ns, last_ns; /* the first and last timestamp, since the pcap's 2000-01-01 */
} pcap_summary;

static int port_of_class(int proto, uint16_t sport, uint16_t dport)
{
    if (proto == 17) return sport == 5060 || dport == 5060;
    static const uint16_t web[] = {443, 8080, 5201};
    for (int i = 0; i < 3; i++)
        if (sport == web[i] || dport == web[i]) return 1;
    return 0;
}

static pcap_summary summarise(const char *path)
{
    CHECK(tpcap_read(path, NULL) > 0); /* valid to a clean end, every checksum right */
    pcap_summary s;
    memset(&s, 0, sizeof s);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) CHECK_FAIL_("%s: %s", path, err);
    struct pcap_pkthdr *h;
    const u_char *data;
    while (pcap_next_ex(p, &h, &data) == 1) {
        tframe f = tframe_parse(data, h->caplen);
        uint64_t t = (uint64_t)h->ts.tv_sec * ND_NS_PER_SEC + (uint64_t)h->ts.tv_usec;
        uint64_t since = t - 946684800ull * ND_NS_PER_SEC;
        if (!s.packets++ || since < s.first_ns) s.first_ns = since;
        if (since > s.last_ns) s.last_ns = since;
        if (f.proto == 17) {
            s.udp_packets++;
            s.udp_200 += h->len == 200;
        }
        s.bad_port += !port_of_class(f.proto, f.sport, f.dport);
        flow_key k = {.proto = f.proto, .pa = f.sport, .pb = f.dport, .first_ns = t};
        memcpy(k.a, f.src, 16);
        memcpy(k.b, f.dst, 16);
        if (memcmp(k.a, k.b, 16) > 0 || (!memcmp(k.a, k.b, 16) && k.pa > k.pb)) {
            memcpy(k.a, f.dst, 16);
            memcpy(k.b, f.src, 16);
            k.pa = f.dport, k.pb = f.sport;
        }
        uint32_t i = 0;
        for (; i < s.n_flows; i++)
            if (s.flows[i].proto == k.proto && s.flows[i].pa == k.pa && s.flows[i].pb == k.pb &&
                !memcmp(s.flows[i].a, k.a, 16) && !memcmp(s.flows[i].b, k.b, 16))
                break;
        if (i == s.n_flows) {
            CHECK(s.n_flows < MAX_FLOWS);
            s.flows[s.n_flows++] = k;
            if (f.proto == 6) s.tcp_flows++;
            else s.udp_flows++;
        }
    }
    pcap_close(p);
    return s;
}

/* The pcap at path is valid, holds tcp TCP flows and udp UDP flows, and every packet has
 * a port of its class. */
static pcap_summary expect_flows(const char *path, uint32_t tcp, uint32_t udp)
{
    pcap_summary s = summarise(path);
    CHECK_EQ(s.tcp_flows, tcp);
    CHECK_EQ(s.udp_flows, udp);
    CHECK_EQ(s.n_flows, tcp + udp);
    CHECK_U64_EQ(s.bad_port, 0);
    return s;
}

/* voip's statistics: UDP/IPv4 only, port 5060, 200-byte frames 1-2 ms apart, no rate. */
static void voip_stats(nd_class_stats *st)
{
    memset(st, 0, sizeof *st);
    for (int d = 0; d < 2; d++) {
        st->size_hist[d][200] = 1000;
        st->iat_hist[d][20] = 10;
        st->ttl_hist[d][64] = 10;
    }
    st->flows = 50;
    st->l4_flows[ND_L4_UDP] = 50;
    st->port[0] = 5060, st->port_count[0] = 50;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    CHECK_EQ(fclose(f), 0);
}

/* Trains the tiny model on two classes and saves it, sampling with `steps`
 * ("sample.steps=N") and calibrating with `calibrate` ("sample.calibrate=N"); also saves the
 * same model untrained, and a copy of the trained file with one byte flipped. */
static void make_models(const char *steps, const char *calibrate)
{
    nd_config cfg;
    /* batches of 4: 12 flows take several, and a partial one */
    tiny_model_config(&cfg, "model.emb_dim=16", "model.max_classes=2", "train.warmup_steps=5",
                      "train.checkpoint_every=0", "train.val_fraction=0", steps, calibrate,
                      "sample.batch=4");
    nd_error e = {0};

    const char *chan[] = {"bytes_down", "bytes_up"};
    const char *classes[] = {"web", "voip"};
    nd_dataset *ds = tds_new(2, chan, L, 50000000ull, 2, classes, 16);
    tds_web_stats(&ds->stats[0], 0, 0); /* TCP/IPv4 only, 100 flows/s */
    voip_stats(&ds->stats[1]);
    trng r = {11};
    for (uint64_t w = 0; w < 16; w++) {
        int voip = w % 2;
        ds->labels[w] = (uint16_t)voip;
        for (uint32_t b = 0; b < L; b++) {
            *tds_at(ds, w, 0, b) = voip ? 4000 : (float)(20000 + trng_below(&r, 40000));
            *tds_at(ds, w, 1, b) = voip ? 4000 : (float)(1000 + trng_below(&r, 2000));
        }
    }
    nd_dm *m = opts_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    if (nd_dm_save(m, "replay_model_untrained.ndm", &e)) CHECK_FAIL_("save: %s", e.msg);
    nd_train_opts o = {.steps = 60, .quiet = 1};
    nd_train_report rep;
    if (nd_dm_train(m, ds, &o, &rep, &e)) CHECK_FAIL_("train: %s", e.msg);
    if (nd_dm_save(m, "replay_model.ndm", &e)) CHECK_FAIL_("save: %s", e.msg);
    nd_dm_free(m);
    tds_free(ds);
    nd_config_free(&cfg);

    FILE *f = fopen("replay_model.ndm", "rb");
    CHECK(f);
    static unsigned char buf[4 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(n > 1000 && n < sizeof buf);
    buf[n / 2] ^= 0x10;
    f = fopen("replay_model_bad.ndm", "wb");
    CHECK(f);
    CHECK_EQ(fwrite(buf, 1, n, f), n);
    CHECK_EQ(fclose(f), 0);
}

/* Streamed into pcap files: four web flows at a time for 3 s of output, through a queue of 8
 * windows (two batches) while dozens are drawn. */
static void test_streamed(const char *M)
{
    char args[512];
    for (int samplers = 1; samplers <= 2; samplers++) {
        snprintf(args, sizeof args,
                 "replay %s --class web --duration 3s --concurrency 4 --queue 8 --samplers %d "
                 "--seed 4 --to pcap:replay_model_s%d.pcap --stats replay_model_s%d.json",
                 M, samplers, samplers, samplers);
        TCLI_EXPECT("replay_model.err", 0, args, "streaming flows");
        /* --concurrency 4 and a batch of web's (4) ready before the first packet */
        CHECK_CONTAINS(tcli_err, "sampling 8 flows before the first packet");
        CHECK_CONTAINS(tcli_err, "the queue held at most");
        CHECK(!strstr(tcli_err, "skipped"));
    }
    pcap_summary s = summarise("replay_model_s1.pcap");
    CHECK(s.tcp_flows > 4 && !s.udp_flows && !s.bad_port); /* web's */
    CHECK(s.first_ns < ND_NS_PER_SEC / 10);                /* the load from the start */
    CHECK(s.last_ns < 3 * ND_NS_PER_SEC && s.last_ns > 2 * ND_NS_PER_SEC); /* to the end */
    CHECK(tcli_same_file("replay_model_s1.pcap", "replay_model_s2.pcap"));
    /* a pcap waits for every window: none late; more windows drawn than the queue holds */
    CHECK(
        json_holds("replay_model_s1.json", 1,
                   "d[-1]['final'] and d[-1]['late'] == 0 and d[-1]['flows'] > 8 and "
                   "d[-1]['stream']['queue_bound'] == 8 and "
                   "0 < d[-1]['stream']['queue_max'] <= 8 and d[-1]['stream']['windows'] > 8"));
    /* the old path for --flows alone, and the options of the new one refused there */
    snprintf(args, sizeof args, "replay %s --flows 2 --queue 8 --to pcap:x.pcap", M);
    TCLI_EXPECT("replay_model.err", 2, args, "for a streamed replay");
}

/* Onto a veth pair: voip flows (320 frames each) at 5 times the rate that the samplers
 * drew windows at in a pcap run, for 1 s after a lead-in of 0.4 s of flows (whose windows
 * are waited for): most flows find no window at their start. A model that samples slowly
 * keeps that to a few dozen flows a second, which the veth carries. In a directory of its
 * own: the pcap cases may run at the same time. */
static int test_live(void)
{
    CHECK(!mkdir("replay_model_live", 0755) || errno == EEXIST);
    CHECK_EQ(chdir("replay_model_live"), 0);
    make_models("sample.steps=100", "sample.calibrate=0"); /* 20 times as slow as below */
    const char *M = "replay_model.ndm";
    char args[640];
    snprintf(
        args, sizeof args,
        "replay %s --class web --duration 1s --concurrency 2 --to pcap:replay_model_r.pcap "
        "--stats replay_model_r.json",
        M);
    TCLI_EXPECT("replay_model.err", 0, args, "streaming flows");
    FILE *f =
        popen("python3 -c \"import json; print(int(json.loads(open("
              "'replay_model_r.json').read().splitlines()[-1])['stream']['windows_per_s']))"
              "\"",
              "r");
    CHECK(f);
    long rate = 0;
    CHECK_EQ(fscanf(f, "%ld", &rate), 1);
    pclose(f);
    rate = rate < 10 ? 50 : 5 * rate;
    test_netns n = netns_setup("rm");
    netns_enter(&n);
    snprintf(args, sizeof args,
             "replay %s --class voip --duration 1s --flows-per-s %ld --queue 8 --to iface:%s "
             "--stats replay_model_late.json",
             M, rate, n.a);
    TCLI_EXPECT("replay_model.err", 0, args, "flows were skipped");
    CHECK(json_holds("replay_model_late.json", 1,
                     "d[-1]['final'] and d[-1]['late'] > 0 and d[-1]['flows'] > 0 and "
                     "d[-1]['stream']['queue_max'] <= d[-1]['stream']['queue_bound']"));
    printf("replay model live: %ld flows/s asked; ok\n", rate);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "live")) return test_live();
    make_models("sample.steps=5", "sample.calibrate=64"); /* the default calibration */
    const char *M = "replay_model.ndm";
    char args[512];

    /* no class, no mix: in proportion to the training flows (web 1000 : voip 50), so of
     * 12 flows the largest-remainder shares are 11 web (TCP) and 1 voip (UDP) */
    snprintf(args, sizeof args, "replay %s --flows 12 --to pcap:replay_model1.pcap --seed 9",
             M);
    EXPECT(0, args, "12 flows");
    CHECK_CONTAINS(tcli_err, "sampled 12 windows");
    CHECK(!strstr(tcli_err, "no statistics")); /* the model's statistics came along */
    /* statistics without durations (as these): one window per flow, said */
    CHECK_CONTAINS(tcli_err, "class 'web' has no flow durations");
    pcap_summary s = expect_flows("replay_model1.pcap", 11, 1);
    CHECK(s.udp_200 * 2 > s.udp_packets); /* voip's sizes, not MTU-sized defaults */

    snprintf(args, sizeof args, "replay %s --flows 12 --to pcap:replay_model2.pcap --seed 9",
             M);
    EXPECT(0, args, "12 flows");
    snprintf(args, sizeof args, "replay %s --flows 12 --to pcap:replay_model3.pcap --seed 10",
             M);
    EXPECT(0, args, "12 flows");
    CHECK(tcli_same_file("replay_model1.pcap", "replay_model2.pcap"));
    CHECK(!tcli_same_file("replay_model1.pcap", "replay_model3.pcap"));

    /* one class; voip has no arrival rate, so its flows are spread over the duration */
    snprintf(args, sizeof args,
             "replay %s --class voip --flows 4 --duration 8s --to pcap:replay_model4.pcap", M);
    EXPECT(0, args, "4 flows");
    s = expect_flows("replay_model4.pcap", 0, 4);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint32_t i = 0; i < s.n_flows; i++) {
        if (s.flows[i].first_ns < lo) lo = s.flows[i].first_ns;
        if (s.flows[i].first_ns > hi) hi = s.flows[i].first_ns;
    }
    CHECK(hi - lo >= 5 * ND_NS_PER_SEC); /* starts 2 s apart: 0, 2, 4, 6 s */
    snprintf(args, sizeof args,
             "replay %s --class web --flows 3 --loop 2 --to pcap:replay_model5.pcap", M);
    EXPECT(0, args, "6 flows");
    expect_flows("replay_model5.pcap", 6, 0);

    /* by the mix of a config: 3 web to 1 voip */
    write_text("replay_model_mix.yaml", "replay:\n  mix: [{class: web, weight: 3}, "
                                        "{class: voip, weight: 1}]\n");
    snprintf(args, sizeof args,
             "replay %s --mix replay_model_mix.yaml --flows 8 --to pcap:replay_model6.pcap", M);
    EXPECT(0, args, "8 flows");
    expect_flows("replay_model6.pcap", 6, 2);
    snprintf(args, sizeof args,
             "replay %s -c replay_model_mix.yaml --flows 4 --to pcap:replay_model7.pcap", M);
    EXPECT(0, args, "4 flows");
    expect_flows("replay_model7.pcap", 3, 1);

    /* errors: 2 for usage and config, 1 for bad model files */
    snprintf(args, sizeof args, "replay %s --class mail --flows 2 --to pcap:x.pcap", M);
    EXPECT(2, args, "unknown class 'mail' (the model has: web, voip)");
    snprintf(args, sizeof args, "replay %s --flows 0 --to pcap:x.pcap", M);
    EXPECT(2, args, "--flows");
    snprintf(args, sizeof args, "replay %s --flows 2 --context 8 --to pcap:x.pcap", M);
    EXPECT(2, args, "--context 8: expected 0 to 7 bins");
    snprintf(args, sizeof args, "replay %s --flows 2 --max-flow-windows 0 --to pcap:x.pcap", M);
    EXPECT(2, args, "--max-flow-windows: from 1");
    EXPECT(2, "replay --series x.csv --context 2 --to pcap:x.pcap", "are for MODEL.ndm");
    write_text("replay_model_mix2.yaml", "replay:\n  mix: [{class: web, weight: 1}, "
                                         "{class: mail, weight: 1}]\n");
    snprintf(args, sizeof args,
             "replay %s --mix replay_model_mix2.yaml --flows 2 --to pcap:x.pcap", M);
    EXPECT(2, args, "class 'mail' is not in the model");
    CHECK_CONTAINS(tcli_err, "(it has: web, voip)");
    write_text("replay_model_nomix.yaml", "replay:\n  seed: 3\n");
    snprintf(args, sizeof args,
             "replay %s --mix replay_model_nomix.yaml --flows 2 --to pcap:x.pcap", M);
    EXPECT(2, args, "no replay.mix");
    snprintf(args, sizeof args,
             "replay %s --mix replay_model_mix.yaml --class web --flows 2 --to pcap:x.pcap", M);
    EXPECT(2, args, "not both");
    EXPECT(1, "replay replay_model_untrained.ndm --flows 2 --to pcap:x.pcap",
           "not been trained");
    EXPECT(1, "replay replay_model_bad.ndm --flows 2 --to pcap:x.pcap", "replay_model_bad.ndm");
    EXPECT(1, "replay replay_model_missing.ndm --flows 2 --to pcap:x.pcap",
           "replay_model_missing.ndm");
    snprintf(args, sizeof args, "replay %s --series replay_model.csv --to pcap:x.pcap", M);
    EXPECT(2, args, "not both");

    /* Ctrl-C while sampling a million windows: a clean exit 0 and an empty, valid pcap */
    const char *big[] = {
        "replay", M, "--flows", "1000000", "--to", "pcap:replay_model_int.pcap", NULL};
    CHECK_EQ(tcli_interrupt("replay_model_int.err", big, 400), 0);
    CHECK_CONTAINS(tcli_err, "stopped by signal while sampling");
    CHECK_CONTAINS(tcli_err, "nothing sent");
    char perr[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline("replay_model_int.pcap", perr);
    if (!p) CHECK_FAIL_("%s", perr);
    struct pcap_pkthdr *h;
    const u_char *data;
    CHECK_EQ(pcap_next_ex(p, &h, &data), PCAP_ERROR_BREAK);
    pcap_close(p);
    test_streamed(M);
    printf("replay model: ok\n");
    return 0;
}
