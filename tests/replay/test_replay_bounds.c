/*
 * test_replay_bounds.c — what bounds the output of a replay: the bytes of a bin are cut
 * to what it carries at the line rate (and counted), and --duration, --max-bytes and
 * --max-packets end the run the normal way, leaving a complete pcap. The series are
 * crafted here: values of 3.4e38 and 1e12 bytes in one bin, as a crafted model or dataset
 * makes them (a series CSV refuses them since it is read with the same bound).
 */
#include <pcap/pcap.h>

#include "replay_test.h"

#define EXPECT(code, args, needle) TCLI_EXPECT("replay_bounds.err", code, args, needle)

enum { L = 4 };
#define BIN_NS 1000000ull /* 1 ms: carries 125 000 bytes at 1 Gbit/s, 12.5 MB at 100 */

typedef struct count {
    uint64_t packets, bytes;
} count;

static int counting(const uint8_t *frame, uint32_t len, uint64_t deadline,
                    const replay_pkt_info *info, void *arg)
{
    (void)frame, (void)deadline, (void)info;
    count *c = arg;
    c->packets++;
    c->bytes += len;
    return 0;
}

/* flows windows: bytes_down 3.4e38, 1e12, +inf, 1500; bytes_up 1e12, then 0 */
static nd_dataset *huge(uint64_t flows)
{
    const char *chan[] = {"bytes_down", "bytes_up"}, *cls[] = {"web"};
    nd_dataset *ds = tds_new(2, chan, L, BIN_NS, 1, cls, flows);
    for (uint64_t w = 0; w < flows; w++) {
        *tds_at(ds, w, 0, 0) = 3.4e38f;
        *tds_at(ds, w, 0, 1) = 1e12f;
        *tds_at(ds, w, 0, 2) = INFINITY; /* not a number of bytes: 0, like NaN */
        *tds_at(ds, w, 0, 3) = 1500;
        *tds_at(ds, w, 1, 0) = 1e12f;
    }
    return ds;
}

static replay_stats run(const nd_dataset *ds, const replay_opts *o, count *c, int want_rc)
{
    replay_stats st;
    nd_error e = {0};
    memset(c, 0, sizeof *c);
    replay_sink *sink = replay_sink_func(counting, c);
    int rc = replay_run(ds, o, sink, &st, &e);
    if (rc != want_rc) CHECK_FAIL_("replay_run: %d (%s), expected %d", rc, e.msg, want_rc);
    CHECK_EQ(replay_sink_close(sink, &e), 0);
    if (!rc) {
        CHECK_U64_EQ(st.packets, c->packets);
        CHECK_U64_EQ(st.bytes, c->bytes);
    }
    return st;
}

/* Each bin is cut to what it carries: TCP forced packets and one bin's remainder aside,
 * at most 3 cut bins at the line rate plus the 1500-byte bin. */
static void test_line_rate(void)
{
    nd_dataset *ds = huge(1);
    replay_opts o;
    replay_opts_defaults(&o);
    o.speed = 0;
    count c;
    const double rates[] = {1e9, 0 /* default: 100 Gbit/s */};
    for (int i = 0; i < 2; i++) {
        o.line_bps = rates[i];
        replay_stats st = run(ds, &o, &c, 0);
        double carries = (double)BIN_NS * (rates[i] ? rates[i] : 100e9) / 8e9;
        CHECK_EQ(st.capped, 3);
        CHECK(st.line_bps == (rates[i] ? rates[i] : REPLAY_DEFAULT_LINE_BPS));
        CHECK_EQ(st.ended, REPLAY_END_NONE);
        CHECK(c.bytes >= 3 * carries);
        CHECK(c.bytes <= 3 * carries + 1500 + 4 * 1514);
    }
    /* out of range: refused before anything is sent */
    o.line_bps = 2e12;
    nd_error e = {0};
    replay_sink *sink = replay_sink_func(counting, &c);
    CHECK_EQ(replay_run(ds, &o, sink, NULL, &e), ND_EUSAGE);
    CHECK_CONTAINS(e.msg, "replay.line_rate");
    replay_sink_close(sink, NULL);
    tds_free(ds);
}

/* --max-packets and --max-bytes over several flows: rc 0, exactly the bound's packets,
 * or the bytes up to the frame that would pass the bound. */
static void test_max(void)
{
    nd_dataset *ds = huge(3);
    replay_opts o, unbounded;
    replay_opts_defaults(&o);
    o.speed = 0;
    o.line_bps = 1e9;
    unbounded = o;
    count all, c;
    replay_stats st = run(ds, &unbounded, &all, 0);
    CHECK(all.packets > 300);

    o.max_packets = 100;
    st = run(ds, &o, &c, 0);
    CHECK_U64_EQ(c.packets, 100);
    CHECK_EQ(st.ended, REPLAY_END_PACKETS);

    o.max_packets = 0;
    o.max_bytes = 50000;
    st = run(ds, &o, &c, 0);
    CHECK(c.bytes <= 50000 && c.bytes > 50000 - 1514);
    CHECK_EQ(st.ended, REPLAY_END_BYTES);

    /* a bound the run does not reach changes nothing */
    o.max_bytes = all.bytes;
    o.max_packets = all.packets;
    st = run(ds, &o, &c, 0);
    CHECK_U64_EQ(c.bytes, all.bytes);
    CHECK_EQ(st.ended, REPLAY_END_NONE);
    tds_free(ds);
}

/* The command line: a crafted dataset file, each bound ending the run with exit 0, a
 * pcap that reads to a clean end, and what ended it said. */
static void test_cli(void)
{
    nd_dataset *ds = huge(2);
    /* A dataset file holds finite values only (its reader refuses +inf), so the file
     * carries the largest float there instead. */
    for (uint64_t w = 0; w < 2; w++) *tds_at(ds, w, 0, 2) = 3.4e38f;
    nd_error e;
    if (nd_dataset_save(ds, "replay_bounds.ndd", &e)) CHECK_FAIL_("save: %s", e.msg);
    tds_free(ds);
    uint64_t bytes = 0;

    EXPECT(0, "replay --series replay_bounds.ndd --to pcap:replay_bounds1.pcap --max-bytes 1M",
           "ended at --max-bytes (replay.max_bytes) before the flows were done");
    CHECK_CONTAINS(tcli_err, "bins (per flow and direction) held more bytes than a bin "
                             "carries at 100 Gbit/s");
    CHECK(tpcap_read("replay_bounds1.pcap", &bytes) > 100);
    CHECK(bytes <= 1u << 20 && bytes > (1u << 20) - 1514);

    EXPECT(0,
           "replay --series replay_bounds.ndd --to pcap:replay_bounds2.pcap --max-packets 123 "
           "--line-rate 1",
           "ended at --max-packets");
    CHECK_EQ(tpcap_read("replay_bounds2.pcap", NULL), 123);

    /* --duration ends it too, in the middle of cut bins: flows start at 0 and 0.75 ms
     * (spread over the duration); 5 bins are cut, the output stops at 1.5 ms */
    bytes = 0;
    EXPECT(0,
           "replay --series replay_bounds.ndd --to pcap:replay_bounds3.pcap --duration 1500us "
           "--line-rate 1",
           "ended at --duration");
    CHECK_CONTAINS(tcli_err, "5 bins (per flow and direction) held more bytes than a bin "
                             "carries at 1 Gbit/s");
    tpcap_read("replay_bounds3.pcap", &bytes);
    CHECK(bytes > 250000 && bytes < 5 * 125000);

    /* the config keys, and their bounds */
    FILE *f = fopen("replay_bounds.yaml", "w");
    CHECK(f);
    fputs("replay:\n  line_rate: 1\n  max_packets: 7\n", f);
    fclose(f);
    EXPECT(0,
           "replay --series replay_bounds.ndd --to pcap:replay_bounds4.pcap -c "
           "replay_bounds.yaml",
           "carries at 1 Gbit/s");
    CHECK_EQ(tpcap_read("replay_bounds4.pcap", NULL), 7);
    EXPECT(2, "replay --series replay_bounds.ndd --to pcap:x.pcap --line-rate 1001",
           "--line-rate: expected Gbit/s, more than 0 and at most 1000, got '1001'");
    EXPECT(2, "replay --series replay_bounds.ndd --to pcap:x.pcap --max-bytes lots",
           "--max-bytes");
    EXPECT(2, "replay --series replay_bounds.ndd --to pcap:x.pcap --max-packets -1",
           "--max-packets");

    /* a series CSV of such values is refused where it is read */
    f = fopen("replay_bounds.csv", "w");
    CHECK(f);
    fputs("class,bytes_down_0,bytes_up_0\nweb,3.4e38,0\n", f);
    fclose(f);
    EXPECT(1, "replay --series replay_bounds.csv --to pcap:x.pcap --bin 1ms",
           "replay_bounds.csv:2:5: value '3.4e38' (column bytes_down_0) is more than a bin "
           "can carry");
    for (int i = 1; i <= 4; i++) {
        char p[64];
        snprintf(p, sizeof p, "replay_bounds%d.pcap", i);
        unlink(p);
    }
}

int main(void)
{
    test_line_rate();
    test_max();
    test_cli();
    printf("replay bounds: ok\n");
    return 0;
}
