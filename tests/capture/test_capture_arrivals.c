/*
 * test_capture_arrivals.c — flow arrivals are measured within each input's own time span:
 * three generated pcaps whose clocks are years apart (2017, 2020, 2020 + a day) captured
 * in one run give the rate of each file's own flows, not flows over the 3 years between
 * them; their gaps land in the right histogram buckets, and the hours of the day count the
 * flows and the time each input covered. Also the bucket functions themselves.
 */
#include <stdio.h>
#include <unistd.h>

#include "pktgen.h"

#define T2017 (1500000000ull * ND_NS_PER_SEC) /* 2017-07-14T02:40:00Z */
#define T2020 (1600000000ull * ND_NS_PER_SEC) /* 2020-09-13T12:26:40Z */
#define MS(x) ((uint64_t)(x)*1000000ull)

/* n UDP flows to port 53, one packet each, every gap_ms from t0 into path. */
static void write_flows(const char *path, uint64_t t0, int n, uint64_t gap_ms)
{
    pcap_out o;
    pcap_out_open(&o, path, DLT_EN10MB, 1);
    static uint8_t buf[16384];
    for (int i = 0; i < n; i++) {
        pkt_spec s = {.src = "10.0.0.1",
                      .dst = "10.0.0.2",
                      .sport = (uint16_t)(1000 + i),
                      .dport = 53,
                      .proto = 17,
                      .ip_total = 100};
        pcap_out_write(&o, t0 + (uint64_t)i * MS(gap_ms), buf, pkt_build(buf, &s), 0);
    }
    pcap_out_close(&o);
}

static void check_buckets(void)
{
    uint64_t first, width, prev_end = 0;
    for (uint32_t b = 0; b < ND_ARRIVAL_HIST; b++) {
        nd_arrival_range(b, &first, &width);
        CHECK_U64_EQ(first, prev_end); /* buckets tile the u64 range without holes */
        CHECK_EQ(nd_arrival_bucket(first), b);
        CHECK_EQ(nd_arrival_bucket(first + width - 1), b);
        CHECK(b < 8 || width * 4 <= first); /* at most 25 % wide */
        prev_end = first + width;
    }
    CHECK_U64_EQ(prev_end, 0); /* the last bucket ends at 2^64 */
    CHECK_EQ(nd_arrival_bucket(UINT64_MAX), ND_ARRIVAL_HIST - 1);
}

int main(void)
{
    check_buckets();
    nd_log_set_level(ND_LOG_WARN);
    char dir[] = "/tmp/nd_arrivals_XXXXXX", a[64], b[64], c3[64];
    CHECK(mkdtemp(dir));
    snprintf(a, sizeof a, "%s/a.pcap", dir);
    snprintf(b, sizeof b, "%s/b.pcap", dir);
    snprintf(c3, sizeof c3, "%s/c.pcap", dir);
    write_flows(a, T2017, 21, 100);                                  /* 10 flows/s, 2 s */
    write_flows(b, T2020, 11, 500);                                  /* 2 flows/s, 5 s */
    write_flows(c3, T2020 + 24 * ND_NS_PER_HOUR + MS(250), 5, 1000); /* 1 flow/s, 4 s */

    capture_opts opt;
    capture_opts_defaults(&opt);
    opt.window = 4;
    opt.flow_capacity = 64;
    static const char *const rules[][2] = {{"dns", "udp port 53"}};
    opts_classes(&opt, 1, rules);
    win_list l = {0};
    nd_error e = {0};
    capture_ctx *c = capture_ctx_new(&opt, NULL, win_collect, &l, &e);
    CHECK(c);
    char sa[80], sb[80], sc[80];
    snprintf(sa, sizeof sa, "pcap:%s", a);
    snprintf(sb, sizeof sb, "pcap:%s", b);
    snprintf(sc, sizeof sc, "pcap:%s", c3);
    const char *specs[] = {sa, sb, sc};
    CHECK_EQ(capture_run(c, specs, 3, &opt, NULL, 0, &e), 0);

    const nd_class_stats *st = capture_ctx_class_stats(c, 0);
    CHECK_U64_EQ(st->flows, 37);
    CHECK_U64_EQ(st->arrival_inputs, 3);
    /* gaps: 20 of 100 ms, 10 of 500 ms, 4 of 1 s; never one between two files */
    CHECK_U64_EQ(st->arrival_hist[nd_arrival_bucket(MS(100))], 20);
    CHECK_U64_EQ(st->arrival_hist[nd_arrival_bucket(MS(500))], 10);
    CHECK_U64_EQ(st->arrival_hist[nd_arrival_bucket(MS(1000))], 4);
    uint64_t gaps = 0;
    for (int i = 0; i < ND_ARRIVAL_HIST; i++) gaps += st->arrival_hist[i];
    CHECK_U64_EQ(gaps, 34);
    CHECK_U64_EQ(st->arrival_gap_ns, MS(2000 + 5000 + 4000));
    double rate = nd_arrival_rate(st);
    printf("3 inputs 2017..2020: %.3f flows/s (flows over first..last start would give "
           "%.3g)\n",
           rate, 36e9 / (double)(st->last_flow_ns - st->first_flow_ns));
    CHECK(rate > 3.09 && rate < 3.10); /* 34 gaps in 11 s */
    /* hours: T2017 is 02:40 UTC, T2020 12:26:40 and a day later; each input's time span
     * counts in the hour it lies in */
    CHECK_U64_EQ(st->hour_flows[2], 21);
    CHECK_U64_EQ(st->hour_flows[12], 16);
    CHECK_U64_EQ(st->hour_seen_ns[2], MS(2000));
    CHECK_U64_EQ(st->hour_seen_ns[12], MS(5000 + 4000));
    uint64_t seen = 0;
    for (int h = 0; h < ND_DAY_HOURS; h++) seen += st->hour_seen_ns[h];
    CHECK_U64_EQ(seen, MS(11000));

    /* through the dataset file and back */
    nd_dataset *ds =
        nd_dataset_new(2, (const char *[]){"bytes_down", "bytes_up"}, 4, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(capture_ctx_to_dataset(c, ds, &e), 0);
    char path[80];
    snprintf(path, sizeof path, "%s/a.ndd", dir);
    CHECK_EQ(nd_dataset_save(ds, path, &e), 0);
    nd_dataset *back = nd_dataset_load(path, &e);
    CHECK(back);
    CHECK(!memcmp(&back->stats[0], &ds->stats[0], sizeof ds->stats[0]));
    nd_dataset_free(back);
    nd_dataset_free(ds);
    capture_ctx_free(c);
    win_list_free(&l);
    unlink(a), unlink(b), unlink(c3), unlink(path), rmdir(dir);
    printf("ok\n");
    return 0;
}
