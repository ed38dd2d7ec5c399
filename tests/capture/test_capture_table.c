/*
 * test_capture_table.c — the flow table's growing hash index. Packets built here go
 * through capture_ctx_burst twice: into a context whose index starts small and grows (by
 * whole rehash) with the flows present, and into one whose index is at its largest size
 * from the start (what the table was before it grew). Both must end and evict the same
 * flows at the same moments, so they give the same windows, counters and totals; and the
 * growing index is checked entry by entry every few bursts.
 *   growth:   the flows present rise to over 16 384 (the index doubles from 4096 to
 *             65 536 slots) while older flows time out and are removed (backward-shift
 *             deletion before, across and after every resize), then fall again;
 *   capacity: 10 000 flows through a table of 3000, evicting on most new flows, with the
 *             index at its largest size.
 */
#include <stdio.h>

#include "capture_impl.h"
#include "pktgen.h"

#define T0 (1700000000ull * ND_NS_PER_SEC)

/* Ethernet/IPv4 frames of flow f (TCP for 3 flows in 4, else UDP) from the sender side
 * dir, IP length len: a template per protocol from pkt_build, addresses and ports patched
 * in (a whole pkt_build per packet would clear 16 KB each time). */
static uint8_t tmpl[2][64];

static void templates(void)
{
    static uint8_t buf[16384];
    for (int tcp = 0; tcp < 2; tcp++) {
        pkt_spec sp = {.src = "10.0.0.1", .dst = "192.168.0.1", .proto = tcp ? 6 : 17};
        CHECK(pkt_build(buf, &sp) <= 64);
        memcpy(tmpl[tcp], buf, 64);
    }
}

static void frame(uint8_t *b, uint32_t f, int dir, uint16_t len)
{
    int tcp = f % 4 != 0;
    memcpy(b, tmpl[tcp], 64);
    uint8_t *ip = b + 14;
    uint32_t cli = 10u << 24 | f, srv = (192u << 24 | 168u << 16 | (f % 7) << 8 | 1);
    uint16_t cport = (uint16_t)(1024 + f % 50000), sport = tcp ? 443 : 53;
    put16(ip + 2, len);
    put32(ip + 12, dir ? srv : cli);
    put32(ip + 16, dir ? cli : srv);
    put16(ip + 20, dir ? sport : cport);
    put16(ip + 22, dir ? cport : sport);
}

/* The traffic: n packets over `seconds` of traffic time; packet k belongs to a flow drawn
 * from the ids [lo(k), hi(k)), hi rising steadily and the span (the flows present) given
 * by span(k). Ids below lo stop sending and go idle. */
typedef struct traffic {
    uint32_t n, seconds;
    uint32_t (*span)(uint32_t k, uint32_t n);
    uint32_t rate; /* new ids per 1000 packets */
} traffic;

/* Rises to 24 000 flows at two thirds of the run, then falls to 2000. */
static uint32_t span_growth(uint32_t k, uint32_t n)
{
    uint64_t top = 24000, peak = 2 * (uint64_t)n / 3;
    if (k <= peak) return (uint32_t)(100 + (top - 100) * k / peak);
    return (uint32_t)(top - (top - 2000) * (k - peak) / (n - peak));
}

/* 10 000 flows at once from the start. */
static uint32_t span_wide(uint32_t k, uint32_t n)
{
    (void)k, (void)n;
    return 10000;
}

typedef struct run_out {
    win_list w;
    capture_ctx *c;
    uint32_t growths, checks;
} run_out;

/* Runs the traffic through a new context; grow_full: index at its largest from the start.
 * Checks the index every 16 bursts. */
static void run(const traffic *t, const capture_opts *o, int grow_full, run_out *r)
{
    memset(r, 0, sizeof *r);
    r->w.C = o->channels;
    r->w.L = o->window;
    nd_error e = {0};
    r->c = capture_ctx_new(o, NULL, win_collect, &r->w, &e);
    if (!r->c) CHECK_FAIL_("capture_ctx_new: %s", e.msg);
    if (grow_full) capture_ctx_index_grow_full(r->c);
    uint32_t slots = capture_ctx_index_check(r->c);
    CHECK(slots > 0);
    static uint8_t data[32][64];
    capture_pkt pk[32];
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    uint64_t step = (uint64_t)t->seconds * ND_NS_PER_SEC / t->n;
    for (uint32_t k = 0, burst = 0; k < t->n; burst++) {
        uint32_t m = 0;
        for (; m < 32 && k < t->n; m++, k++) {
            uint32_t hi = (uint32_t)((uint64_t)k * t->rate / 1000) + t->span(k, t->n);
            uint32_t span = t->span(k, t->n), lo = hi - span;
            uint64_t x = mix_rand(&rng);
            frame(data[m], lo + (uint32_t)(x % span), (int)(x >> 40 & 1),
                  (uint16_t)(40 + (x >> 44) % 1400));
            pk[m] = (capture_pkt){data[m], 64, 64, T0 + k * step};
        }
        capture_ctx_burst(r->c, CAPTURE_LINK_ETHERNET, pk, m);
        /* The index is checked every 16 bursts (512 packets): a growth is seen as a new
         * slot count, and the removals right after it are checked with it. */
        if (burst % 16 != 15 && k < t->n) continue;
        uint32_t now = capture_ctx_index_check(r->c);
        if (now == 0) CHECK_FAIL_("index inconsistent after burst %u", burst);
        r->checks++;
        if (now != slots) r->growths++, slots = now;
    }
}

static void check_same(run_out *a, run_out *b, const char *what)
{
    capture_ctx_flush(a->c);
    capture_ctx_flush(b->c);
    CHECK(capture_ctx_index_check(a->c) > 0);
    win_list_check_equal(&a->w, &b->w, what);
    ctx_counters_check_equal(a->c, b->c, what);
    capture_totals ta, tb;
    capture_ctx_totals(a->c, &ta);
    capture_ctx_totals(b->c, &tb);
    CHECK_U64_EQ(ta.flows, tb.flows);
    CHECK_U64_EQ(ta.windows, tb.windows);
    CHECK_U64_EQ(ta.active_flows, 0);
}

static void opts(capture_opts *o, uint32_t capacity)
{
    capture_opts_defaults(o);
    o->bin_ns = ND_NS_PER_SEC / 4;
    o->window = 8;
    o->channels = 4;
    o->flow_capacity = capacity;
    o->idle_timeout_ns = 2 * ND_NS_PER_SEC;
    o->active_timeout_ns = 3 * ND_NS_PER_SEC;
    o->default_class = "other";
}

static void free_run(run_out *r)
{
    capture_ctx_free(r->c);
    win_list_free(&r->w);
}

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    templates();
    capture_opts o;

    /* growth: over 16 384 flows present at the peak in a table of 50 000 (at most 131 072
     * slots; the growing index stops at 65 536) */
    opts(&o, 50000);
    traffic g = {.n = 400000, .seconds = 10, .span = span_growth, .rate = 150};
    run_out grow, full;
    run(&g, &o, 0, &grow);
    run(&g, &o, 1, &full);
    CHECK_EQ(full.growths, 0);
    CHECK_EQ(grow.growths, 4); /* 4096 -> 8192 -> 16384 -> 32768 -> 65536 */
    CHECK_EQ(capture_ctx_index_check(grow.c), 65536);
    CHECK_EQ(capture_ctx_index_check(full.c), 131072);
    CHECK(ctx_counter(grow.c, "flow.active_timeout") > 1000);
    CHECK(ctx_counter(grow.c, "flow.idle_timeout") > 30000); /* removals all along */
    CHECK_EQ(ctx_counter(grow.c, "flow.evicted"), 0);
    check_same(&grow, &full, "growing index vs full-size index");
    CHECK(grow.w.n > 10000);
    free_run(&grow);
    free_run(&full);

    /* capacity: 10 000 flows through 3000 places (index 8192 slots at most) */
    opts(&o, 3000);
    traffic w = {.n = 200000, .seconds = 20, .span = span_wide, .rate = 0};
    run(&w, &o, 0, &grow);
    run(&w, &o, 1, &full);
    CHECK_EQ(grow.growths, 1); /* 4096 -> 8192 */
    capture_totals t;
    capture_ctx_totals(grow.c, &t);
    CHECK_U64_EQ(t.active_flows, 3000);
    CHECK(ctx_counter(grow.c, "flow.evicted") > 100000);
    check_same(&grow, &full, "full table, growing index vs full-size index");
    free_run(&grow);
    free_run(&full);
    return 0;
}
