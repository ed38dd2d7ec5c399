/*
 * test_capture_lcores.c — `netdiffus capture` of one pcap through DPDK net_pcap with
 * capture.lcores 1, 2 and 3 (one rx queue: the reading lcore hands each packet to the
 * lcore of its flow) writes the same dataset: every section but the embedded config
 * (which records the lcore count) byte for byte, windows in the same order with the same
 * groups. The lcores' figures in --json add up to the totals, every lcore got flows, and
 * the flow count equals one lcore's: a flow whose two directions went to two lcores
 * would count twice (and its windows would differ). The counters and statistics equal
 * those of the one-thread path (capture.lcores 0). One process per capture: the EAL
 * starts once per process.
 */
#include <stdio.h>
#include <string.h>

#include "pktgen.h"
#include "base/tmpdir.h"
#include "run_cli.h"
#include "json_check.h"

/* Captures file with n lcores into out, the --json summary into json; skips when DPDK
 * cannot start here. */
static void capture(const char *conf, const char *file, unsigned n, const char *out,
                    const char *json)
{
    char src[1024], set[64];
    snprintf(src, sizeof src,
             "dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry "
             "--vdev=net_pcap0,rx_pcap=%s",
             file);
    snprintf(set, sizeof set, "capture.lcores=%u", n);
    int rc = RUN("capture", "-c", conf, "--source", src, "--set", set, "--json", "-o", out);
    if (rc && strstr(err_text, "EAL init failed")) SKIP("DPDK cannot start here: %s", err_text);
    if (rc) CHECK_FAIL_("capture with %u lcores: exit %d\n%s", n, rc, err_text);
    write_bytes(json, out_text, strlen(out_text));
}

/* Section tag tag of a and b hold the same bytes. */
static void section_same(const ndf_reader *a, const ndf_reader *b, uint32_t tag,
                         const char *what)
{
    const void *da, *db;
    size_t la, lb;
    nd_error e = {0};
    CHECK(ndf_find(a, tag, &da, &la, &e) == 0);
    CHECK(ndf_find(b, tag, &db, &lb, &e) == 0);
    if (la != lb || memcmp(da, db, la))
        CHECK_FAIL_("%s: section %.4s differs (%zu and %zu bytes)", what, (const char *)&tag,
                    la, lb);
}

/* STAT sections a and b hold the same statistics, but the flow gaps and covered time,
 * which N lcores measure on their 1/N shares of the flows and scale by N: an
 * approximation (docs/REPLAY.md, "Arrivals"), printed, not compared. */
static void stats_same(const unsigned char *a, const unsigned char *b, uint64_t la, uint64_t lb,
                       const char *what)
{
    size_t rec = nd_stats_record_bytes();
    CHECK_U64_EQ(la, lb);
    for (size_t off = 8; off + rec <= la; off += rec) {
        nd_class_stats x, y;
        nd_stats_decode(&x, a + off);
        nd_stats_decode(&y, b + off);
        double rx = nd_arrival_rate(&x), ry = nd_arrival_rate(&y);
        printf("%s: class %zu: %.4g and %.4g flows/s\n", what, (off - 8) / rec, rx, ry);
        x.arrival_inputs = y.arrival_inputs = x.arrival_gap_ns = y.arrival_gap_ns = 0;
        memset(x.arrival_hist, 0, sizeof x.arrival_hist);
        memset(y.arrival_hist, 0, sizeof y.arrival_hist);
        memset(x.hour_seen_ns, 0, sizeof x.hour_seen_ns);
        memset(y.hour_seen_ns, 0, sizeof y.hour_seen_ns);
        if (memcmp(&x, &y, sizeof x))
            CHECK_FAIL_("%s: class %zu: statistics differ", what, (off - 8) / rec);
    }
}

/* Every section of a and b, but CONF, holds the same bytes, in the same order. */
static void datasets_same(const char *pa, const char *pb, const char *what)
{
    nd_error e = {0};
    ndf_reader *a = ndf_open(pa, NDF_KIND_DATASET, &e), *b = ndf_open(pb, NDF_KIND_DATASET, &e);
    if (!a || !b) CHECK_FAIL_("%s: %s", what, e.msg);
    CHECK_EQ(ndf_section_count(a), ndf_section_count(b));
    for (size_t i = 0; i < ndf_section_count(a); i++) {
        uint32_t ta, tb;
        const void *da, *db;
        uint64_t la, lb;
        ndf_section_at(a, i, &ta, &da, &la);
        ndf_section_at(b, i, &tb, &db, &lb);
        CHECK_EQ(ta, tb);
        if (ta == ND_FOURCC('S', 'T', 'A', 'T')) stats_same(da, db, la, lb, what);
        else if (ta != ND_FOURCC('C', 'O', 'N', 'F')) section_same(a, b, ta, what);
    }
    ndf_close(a);
    ndf_close(b);
}

int main(void)
{
    char file[512], conf[512];
    snprintf(file, sizeof file, "%s", tmp_path("mix.pcap"));
    snprintf(conf, sizeof conf, "%s", tmp_path("conf.yaml"));
    /* Both directions of every flow, fragments, VLANs, IPv6, malformed packets; a table
     * large enough that nothing is evicted (eviction picks among one lcore's flows). */
    write_mixed_pcap(file, 400, 30000, 120, 7);
    const char *yaml = "capture:\n"
                       "  window: 16\n"
                       "  channels: 4\n"
                       "  flow_capacity: 65536\n"
                       "classes:\n"
                       "  - name: tls\n"
                       "    filter: tcp port 443\n"
                       "  - name: dns\n"
                       "    filter: udp port 53\n";
    write_bytes(conf, yaml, strlen(yaml));

    char out[4][512], json[4][512];
    for (unsigned n = 0; n < 4; n++) {
        char name[32];
        snprintf(name, sizeof name, "out%u.ndd", n);
        snprintf(out[n], sizeof out[n], "%s", tmp_path(name));
        snprintf(name, sizeof name, "out%u.json", n);
        snprintf(json[n], sizeof json[n], "%s", tmp_path(name));
        capture(conf, file, n, out[n], json[n]);
    }
    datasets_same(out[1], out[2], "1 and 2 lcores");
    datasets_same(out[1], out[3], "1 and 3 lcores");

    /* The one-thread path emits windows in the order flows end (other groups, another
     * order), but counts and measures the same. */
    nd_error e = {0};
    ndf_reader *a = ndf_open(out[0], NDF_KIND_DATASET, &e),
               *b = ndf_open(out[1], NDF_KIND_DATASET, &e);
    CHECK(a && b);
    section_same(a, b, ND_FOURCC('C', 'N', 'T', 'R'), "0 and 1 lcores");
    section_same(a, b, ND_FOURCC('S', 'T', 'A', 'T'), "0 and 1 lcores");
    ndf_close(a);
    ndf_close(b);

    CHECK(json_holds(json[0], 0, "'lcores' not in d and d['windows'] > 300"));
    CHECK(json_holds(
        json[1], 0,
        "len(d['lcores']) == 1 and d['lcores'][0]['flows'] == d['flows'] and "
        "d['lcores'][0]['sent'] == 0 and d['queues'][0]['packets'] == d['packets']"));
    for (unsigned n = 2; n < 4; n++) {
        char expr[2048];
        snprintf(
            expr, sizeof expr,
            "len(d['lcores']) == %u and d['flows'] == json.load(open('%s'))['flows'] and "
            "sum(l['flows'] for l in d['lcores']) == d['flows'] and "
            "sum(l['packets'] for l in d['lcores']) == d['packets'] and "
            "sum(l['windows'] for l in d['lcores']) == d['windows'] and "
            "all(l['flows'] > 0 for l in d['lcores']) and "
            "d['lcores'][0]['rx'] == d['packets'] and "
            "d['lcores'][0]['sent'] == d['packets'] - d['lcores'][0]['packets'] and "
            "d['queues'] == [{'port': 0, 'queue': 0, 'lcore': 0, 'packets': d['packets']}]",
            n, json[1]);
        CHECK(json_holds(json[n], 0, expr));
    }
    printf("ok: 1, 2 and 3 lcores wrote the same dataset\n");
    return 0;
}
