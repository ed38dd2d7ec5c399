/*
 * test_capture_durations.c — capture records each class's flow durations in bins (the
 * partial last window as far as its last packet): a generated pcap with flows of known
 * lengths gives exactly their histogram and sum, through the dataset file and back; a
 * flow's windows reach the dataset in order under one group id; and the bucket functions
 * tile the u64 range.
 */
#include <stdio.h>
#include <unistd.h>

#include "pktgen.h"

#define T0    (1600000000ull * ND_NS_PER_SEC)
#define BIN   (100ull * 1000000ull) /* 100 ms */
#define L     4
#define NFLOW 7

/* Flow i lasts dur[i] bins: one packet in each of its bins, the packet of bin b of
 * 100 + b bytes of IP, so that a window's first bin tells where in its flow it lies.
 * Flows start 10 ms apart and interleave in the file. */
static const uint64_t dur[NFLOW] = {1, 3, 4, 5, 9, 63, 70};

static void write_flows(const char *path)
{
    pcap_out o;
    pcap_out_open(&o, path, DLT_EN10MB, 1);
    static uint8_t buf[16384];
    for (uint64_t b = 0; b < 70; b++)
        for (int i = 0; i < NFLOW; i++) {
            if (b >= dur[i]) continue;
            pkt_spec s = {.src = "10.0.0.1",
                          .dst = "10.0.0.2",
                          .sport = (uint16_t)(1000 + i),
                          .dport = 53,
                          .proto = 17,
                          .ip_total = (uint32_t)(100 + b)};
            uint64_t ts = T0 + (uint64_t)i * 10000000ull + b * BIN;
            pcap_out_write(&o, ts, buf, pkt_build(buf, &s), 0);
        }
    pcap_out_close(&o);
}

static void check_buckets(void)
{
    uint64_t first, width, prev_end = 0;
    for (uint32_t b = 0; b < ND_DURATION_HIST; b++) {
        nd_duration_range(b, &first, &width);
        CHECK_U64_EQ(first, prev_end); /* buckets tile the u64 range without holes */
        CHECK_EQ(nd_duration_bucket(first), b);
        CHECK_EQ(nd_duration_bucket(first + width - 1), b);
        CHECK(b < 64 ? width == 1 : width * 16 <= first); /* at most 6.25 % wide */
        prev_end = first + width;
    }
    CHECK_U64_EQ(prev_end, 0); /* the last bucket ends at 2^64 */
    CHECK_EQ(nd_duration_bucket(UINT64_MAX), ND_DURATION_HIST - 1);
}

/* The class's histogram holds exactly the flows of dur[] (70 bins: the bucket 68..71). */
static void check_hist(const nd_class_stats *st)
{
    nd_class_stats want = {0};
    uint64_t sum = 0;
    for (int i = 0; i < NFLOW; i++) {
        want.duration_hist[nd_duration_bucket(dur[i])]++;
        sum += dur[i];
    }
    CHECK(!memcmp(st->duration_hist, want.duration_hist, sizeof want.duration_hist));
    CHECK_U64_EQ(st->duration_bins, sum);
    CHECK_U64_EQ(st->duration_hist[3], 1);
    CHECK_U64_EQ(st->duration_hist[63], 1);
    CHECK_U64_EQ(st->duration_hist[nd_duration_bucket(68)], 1);
    CHECK_U64_EQ(nd_duration_flows(st), NFLOW);
    CHECK(nd_duration_quantile(st, 0.5) == 5.0); /* the 4th of 7 */
    CHECK(nd_duration_quantile(st, 1) == 69.5);  /* the middle of 68..71 */
    CHECK(nd_duration_quantile(st, 0) == 1.0);   /* the shortest */
}

int main(void)
{
    check_buckets();
    nd_log_set_level(ND_LOG_WARN);
    char dir[] = "/tmp/nd_durations_XXXXXX", pcap[64], spec[80], path[80];
    CHECK(mkdtemp(dir));
    snprintf(pcap, sizeof pcap, "%s/a.pcap", dir);
    snprintf(spec, sizeof spec, "pcap:%s", pcap);
    snprintf(path, sizeof path, "%s/a.ndd", dir);
    write_flows(pcap);

    capture_opts opt;
    capture_opts_defaults(&opt);
    opt.window = L;
    opt.bin_ns = BIN;
    opt.flow_capacity = 64;
    static const char *const rules[][2] = {{"dns", "udp port 53"}};
    opts_classes(&opt, 1, rules);
    win_list l;
    nd_error e = {0};
    int rc;
    capture_ctx *c = capture_into(spec, &opt, &l, &rc, &e);
    CHECK_EQ(rc, 0);
    const nd_class_stats *st = capture_ctx_class_stats(c, 0);
    CHECK_U64_EQ(st->flows, NFLOW);
    check_hist(st);

    /* Each flow's windows: ceil(dur / L) of them, in order under one group. */
    nd_dataset *ds = nd_dataset_new(2, (const char *[]){"bytes_down", "bytes_up"}, L, BIN);
    CHECK(ds);
    for (size_t i = 0; i < l.n; i++)
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)nd_dataset_class(ds, "dns"), l.w[i].group,
                                   l.w[i].v),
                 0);
    CHECK_EQ(capture_ctx_to_dataset(c, ds, &e), 0);
    CHECK_EQ(nd_dataset_save(ds, path, &e), 0);
    nd_dataset *back = nd_dataset_load(path, &e);
    CHECK(back);
    check_hist(&back->stats[0]);
    size_t windows = 0;
    for (int i = 0; i < NFLOW; i++) windows += (size_t)((dur[i] + L - 1) / L);
    CHECK_U64_EQ(back->n_windows, windows);
    for (uint64_t n = 0; n < back->n_windows; n++) {
        /* the k-th window of its group so far starts with the packet of bin k*L */
        uint64_t k = 0;
        for (uint64_t m = 0; m < n; m++) k += back->groups[m] == back->groups[n];
        const float *v = back->values + n * 2 * L;
        float first = v[0] + v[L]; /* one direction holds it; frames count the 14-byte L2 */
        CHECK(first == (float)(14 + 100 + k * L));
    }
    nd_dataset_free(back);
    nd_dataset_free(ds);
    capture_ctx_free(c);
    win_list_free(&l);
    unlink(pcap), unlink(path), rmdir(dir);
    printf("ok\n");
    return 0;
}
