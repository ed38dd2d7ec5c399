/*
 * test_replay_sched.c — the flow plan and the limits of a run: --flows, --loop (new flow
 * numbers and 5-tuples each pass, passes one after another), --duration (nothing at or
 * after it, flows spread over it when no arrival rate is known), flow arrivals at the
 * class's rate, class shares from replay.mix, --speed on deadlines, and pacing on a real
 * paced sink is not needed here: deadlines are checked in series time.
 */
#include "replay_test.h"

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const cls2[] = {"a", "b"};

#define MAXFLOWS 4096

typedef struct seen {
    uint64_t n, flows, last_deadline, max_offset;
    uint64_t start[MAXFLOWS];
    uint32_t cls[MAXFLOWS];
    uint16_t cport[MAXFLOWS];
    uint8_t have[MAXFLOWS];
} seen;

static int on_pkt(const uint8_t *frame, uint32_t len, uint64_t deadline,
                  const replay_pkt_info *in, void *arg)
{
    seen *s = arg;
    CHECK(in->flow < MAXFLOWS);
    CHECK(deadline >= s->last_deadline);
    s->last_deadline = deadline;
    s->n++;
    if (in->offset_ns > s->max_offset) s->max_offset = in->offset_ns;
    if (!s->have[in->flow]) {
        s->have[in->flow] = 1;
        s->flows++;
        s->start[in->flow] = in->start_ns;
        s->cls[in->flow] = in->cls;
        tframe t = tframe_parse(frame, len);
        s->cport[in->flow] = in->dir == ND_UP ? t.sport : t.dport;
    }
    return 0;
}

static seen *run(const nd_dataset *ds, const replay_opts *o, replay_stats *st)
{
    static seen s;
    memset(&s, 0, sizeof s);
    replay_sink *k = replay_sink_func(on_pkt, &s);
    nd_error e;
    int rc = replay_run(ds, o, k, st, &e);
    if (rc) CHECK_FAIL_("replay_run: %s", e.msg);
    replay_sink_close(k, &e);
    return &s;
}

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    const uint32_t L = 10;
    const uint64_t bin = 10000000ull, window = L * bin; /* 100 ms windows */
    nd_dataset *ds = tds_new(2, ch2, L, bin, 2, cls2, 20);
    tds_web_stats(&ds->stats[0], 0.5, 0.0);
    tds_web_stats(&ds->stats[1], 0.5, 0.0);
    for (int k = 0; k < 2; k++) tds_arrivals(&ds->stats[k], 0); /* no arrival rate */
    for (uint64_t w = 0; w < 20; w++) {
        ds->labels[w] = (uint16_t)(w < 15 ? 0 : 1);
        for (uint32_t i = 0; i < 2 * L; i++) ds->values[w * 2 * L + i] = 3000.0f;
    }
    replay_opts o;
    replay_opts_defaults(&o);
    o.status = 0;
    o.speed = 0;
    replay_stats st;

    /* one flow per window, spread over one window length */
    seen *s = run(ds, &o, &st);
    CHECK_U64_EQ(s->flows, 20);
    CHECK_U64_EQ(st.flows, 20);
    for (int i = 0; i < 20; i++) CHECK_U64_EQ(s->start[i], window * (uint64_t)i / 20);

    /* --flows 50 --loop 3: 150 flows, passes one after another, new client ports */
    o.flows = 50;
    o.loop = 3;
    s = run(ds, &o, &st);
    CHECK_U64_EQ(s->flows, 150);
    uint64_t span = s->start[49] + window; /* a pass ends when its last window ends */
    for (int i = 0; i < 50; i++) {
        CHECK_U64_EQ(s->start[50 + i], span + s->start[i]);
        CHECK_U64_EQ(s->start[100 + i], 2 * span + s->start[i]);
    }
    int same = 0;
    for (int i = 0; i < 50; i++) same += s->cport[i] == s->cport[50 + i];
    CHECK(same < 5);

    /* --duration 1 s (speed 1): flows spread over it, nothing at or after it */
    o.speed = 1;
    o.flows = 40;
    o.loop = 0; /* until the duration */
    o.duration_ns = ND_NS_PER_SEC;
    s = run(ds, &o, &st);
    CHECK(s->max_offset < ND_NS_PER_SEC);
    CHECK(s->flows >= 40);
    CHECK_U64_EQ(s->start[1], ND_NS_PER_SEC / 40);
    /* at speed 2 the same duration holds twice the series time */
    o.speed = 2;
    s = run(ds, &o, &st);
    CHECK(s->max_offset < 2 * ND_NS_PER_SEC);
    CHECK(s->max_offset > ND_NS_PER_SEC);
    CHECK_U64_EQ(s->start[1], 2 * ND_NS_PER_SEC / 40);

    /* gaps from the statistics: 10 ms, drawn within their bucket (8.4 .. 10.5 ms) */
    for (int k = 0; k < 2; k++) tds_arrivals(&ds->stats[k], 10000000ull);
    o.speed = 0;
    o.duration_ns = 0;
    o.loop = 1;
    o.flows = 2000;
    s = run(ds, &o, &st);
    CHECK_U64_EQ(s->flows, 2000);
    double mean_gap = (double)s->start[1999] / 1999.0;
    CHECK_NEAR(mean_gap, 1e7, 0, 0.1); /* 10 ms ± 10 % */

    /* replay.mix: class b gets 3 flows out of 4, although it has 5 windows of 20 */
    o.mix[0] = (replay_mix_entry){"a", 1.0};
    o.mix[1] = (replay_mix_entry){"b", 3.0};
    o.n_mix = 2;
    s = run(ds, &o, &st);
    uint32_t nb = 0;
    for (int i = 0; i < 2000; i++) nb += s->cls[i] == 1;
    CHECK_NEAR(nb, 1500, 90, 0);
    /* --class wins over the mix */
    o.only_class = "a";
    s = run(ds, &o, &st);
    for (int i = 0; i < 2000; i++) CHECK_EQ(s->cls[i], 0);

    tds_free(ds);
    printf("replay sched: ok\n");
    return 0;
}
