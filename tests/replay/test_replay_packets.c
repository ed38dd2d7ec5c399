/*
 * test_replay_packets.c — the packetizer and header builder through the scheduler, with a
 * function sink that checks every frame:
 *   - bytes per bin match the series exactly when every bin can hold a frame, and within
 *     the documented bounds (one minimum frame, plus forced TCP packets) otherwise;
 *   - the packets channel is honoured when present;
 *   - IPv4, TCP and UDP checksums verify with an independent byte-wise computation;
 *   - TCP: SYN, SYN-ACK, ACK first, FIN at the end, seq/ack consistent in both directions;
 *   - addresses from the pools, ports/MSS/TTL from the class statistics;
 *   - packets come in deadline order and inside their bin;
 *   - classes without statistics fall back to MTU-sized frames at even times;
 *   - RIPng (UDP 521) payloads are a header and whole 20-byte route entries, and the
 *     bytes they cannot make are carried within the one-frame bound.
 */
#include "replay_test.h"

#define MAXF 4000

typedef struct flow_obs {
    int seen, l4, v6;
    uint32_t window;
    uint64_t start;
    int pad;
    double bytes[2][64];
    uint32_t count[2][64];
    uint32_t next_seq[2];
    int seq_known[2];
    int n_pk, syn_state, fin[2];
    uint8_t last_flags;
    uint16_t sport, cport;
} flow_obs;

typedef struct obs {
    const nd_dataset *ds;
    flow_obs f[MAXF];
    uint64_t last_deadline, packets;
    int empty_stats; /* class has no statistics: check the defaults */
    int ripng;       /* every flow goes to UDP 521: payloads of 4 + 20·k bytes */
    uint64_t iat_min_seen;
} obs;

static int in_pool(const tframe *t, const uint8_t *a)
{
    if (!t->v6) return a[0] == 198 && (a[1] == 18 || a[1] == 19);
    return a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8;
}

static int on_packet(const uint8_t *frame, uint32_t len, uint64_t deadline,
                     const replay_pkt_info *in, void *arg)
{
    obs *o = arg;
    CHECK(in->flow < MAXF);
    CHECK(deadline >= o->last_deadline);
    o->last_deadline = deadline;
    o->packets++;
    const nd_dataset *ds = o->ds;
    CHECK(in->bin < ds->L);
    CHECK(in->offset_ns >= in->start_ns + in->bin * ds->bin_ns);
    CHECK(in->offset_ns < in->start_ns + (in->bin + 1) * ds->bin_ns);
    CHECK(len <= 1514);

    tframe t = tframe_parse(frame, len);
    CHECK(t.ip_ok);
    CHECK(t.l4_ok);
    CHECK_EQ(t.v6, in->ipv6);
    CHECK_EQ(t.proto, in->l4 == ND_L4_TCP ? 6 : 17);
    CHECK(in_pool(&t, t.src) && in_pool(&t, t.dst));
    uint16_t server_port = in->dir == ND_UP ? t.dport : t.sport;
    uint16_t client_port = in->dir == ND_UP ? t.sport : t.dport;
    uint8_t ttl_expect = in->dir == ND_DOWN ? 52 : 64;
    if (o->empty_stats) {
        CHECK_EQ(server_port, 443);
        CHECK_EQ(t.ttl, 64);
        CHECK_EQ(t.proto, 6);
        CHECK_EQ(t.v6, 0);
    } else if (o->ripng) {
        CHECK_EQ(server_port, 521);
        CHECK_EQ(t.proto, 17);
        CHECK(t.payload >= 4 && (t.payload - 4) % 20 == 0);
    } else {
        CHECK(server_port == 443 || server_port == 8080 || server_port == 5201);
        CHECK(t.ttl == ttl_expect || t.ttl == 128);
    }
    CHECK(client_port >= 32768);

    flow_obs *f = &o->f[in->flow];
    if (!f->seen) {
        f->seen = 1;
        f->l4 = in->l4;
        f->v6 = in->ipv6;
        f->window = in->window;
        f->start = in->start_ns;
        f->sport = server_port;
        f->cport = client_port;
    }
    CHECK_EQ(f->sport, server_port); /* one 5-tuple per flow */
    CHECK_EQ(f->cport, client_port);
    CHECK_EQ(f->window, in->window);
    f->bytes[in->dir][in->bin] += len;
    f->count[in->dir][in->bin]++;
    f->n_pk++;

    if (t.proto == 6) {
        int d = in->dir;
        CHECK_EQ(t.flags, in->tcp_flags);
        if (f->fin[d]) CHECK(t.flags == 0x10 && t.payload == 0); /* only ACKs after FIN */
        if (f->n_pk == 1) CHECK(t.flags == 0x02 && d == ND_UP);
        if (f->n_pk == 2) CHECK(t.flags == 0x12 && d == ND_DOWN);
        if (f->n_pk == 3) CHECK(t.flags == 0x10 && d == ND_UP);
        if (t.flags & 0x02) {
            CHECK(t.mss == 1460 || t.mss == 1400 || (o->empty_stats && t.mss == 1460));
            CHECK_EQ(t.payload, 0);
        } else {
            CHECK(t.flags & 0x10);
            CHECK(f->seq_known[d]);
            CHECK_EQ(t.seq, f->next_seq[d]);
        }
        if (t.flags & 0x10) {
            CHECK(f->seq_known[!d]);
            CHECK_EQ(t.ack, f->next_seq[!d]); /* acknowledges all the peer sent before */
        }
        f->next_seq[d] =
            t.seq + t.payload + ((t.flags & 0x02) ? 1 : 0) + ((t.flags & 0x01) ? 1 : 0);
        f->seq_known[d] = 1;
        if (t.flags & 0x01) f->fin[d] = 1;
        f->last_flags = t.flags;
        if (t.payload > 0) {
            uint32_t mss = f->v6 ? 1440 : 1460;
            CHECK(t.payload <= mss);
        }
    }
    return 0;
}

/* Replays ds into an obs; returns the stats. */
static replay_stats run(const nd_dataset *ds, obs *o, uint64_t seed)
{
    memset(o, 0, sizeof *o);
    o->ds = ds;
    o->empty_stats = ds->stats[0].flows == 0;
    o->ripng = ds->stats[0].port[0] == 521;
    replay_opts opt;
    replay_opts_defaults(&opt);
    opt.speed = 0;
    opt.seed = seed;
    opt.status = 0;
    replay_sink *s = replay_sink_func(on_packet, o);
    CHECK(s);
    replay_stats st;
    nd_error e = {0};
    int rc = replay_run(ds, &opt, s, &st, &e);
    if (rc) fprintf(stderr, "replay_run: %s\n", e.msg);
    CHECK_EQ(rc, 0);
    CHECK_EQ(replay_sink_close(s, &e), 0);
    CHECK_U64_EQ(st.packets, o->packets);
    return st;
}

static double target(const nd_dataset *ds, uint64_t w, int ch, uint32_t b)
{
    return (double)llround(ds->values[(w * ds->n_channels + (uint32_t)ch) * ds->L + b]);
}

/* Every flow is closed (TCP: both FINs seen, last packet a pure ACK). */
static void check_closed(const obs *o, uint64_t flows)
{
    for (uint64_t i = 0; i < flows; i++) {
        const flow_obs *f = &o->f[i];
        CHECK(f->seen);
        if (f->l4 == ND_L4_TCP) {
            CHECK(f->fin[0] && f->fin[1]);
            CHECK_EQ(f->last_flags, 0x10);
        }
    }
}

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const ch4[] = {"bytes_down", "bytes_up", "pkts_down", "pkts_up"};
static const char *const cls1[] = {"web"};

/* A: every bin can hold its packets: bytes match exactly, bin for bin. */
static void test_exact(void)
{
    const uint32_t L = 16, N = 300;
    nd_dataset *ds = tds_new(2, ch2, L, 100000000ull, 1, cls1, N);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    trng r = {42};
    for (uint64_t w = 0; w < N; w++)
        for (uint32_t c = 0; c < 2; c++)
            for (uint32_t b = 0; b < L; b++)
                *tds_at(ds, w, c, b) = (float)(600 + trng_below(&r, 300000)) + 0.3f;
    static obs o;
    replay_stats st = run(ds, &o, 7);
    CHECK_U64_EQ(st.flows, N);
    CHECK_U64_EQ(st.carried, 0);
    uint32_t v6 = 0, udp = 0;
    for (uint64_t i = 0; i < N; i++) {
        const flow_obs *f = &o.f[i];
        v6 += f->v6;
        udp += f->l4 == ND_L4_UDP;
        for (int d = 0; d < 2; d++)
            for (uint32_t b = 0; b < L; b++) {
                double want = target(ds, f->window, d, b);
                if (f->bytes[d][b] != want)
                    CHECK_FAIL_("flow %llu dir %d bin %u: %.0f bytes sent, series %.0f",
                                (unsigned long long)i, d, b, f->bytes[d][b], want);
            }
    }
    CHECK(v6 > N / 10 && v6 < N / 2);   /* 30 % asked */
    CHECK(udp > N / 10 && udp < N / 2); /* 30 % asked */
    check_closed(&o, N);
    tds_free(ds);
}

/* B: small and zero bins: the cumulative deficit stays within one minimum frame, and
 * forced TCP packets overshoot by at most the handshake and FIN bytes. With ripng, every
 * flow is UDP to 521: frame sizes go in steps of a route entry, and what a bin's bytes
 * cannot make of them (below one step) is carried, within the same bound. */
static void test_bounds(int ripng)
{
    const uint32_t L = 32, N = 400;
    nd_dataset *ds = tds_new(2, ch2, L, 10000000ull, 1, cls1, N);
    nd_class_stats *cs = &ds->stats[0];
    tds_web_stats(cs, ripng ? 1.0 : 0.5, 0.5);
    if (ripng)
        for (int i = 0; i < ND_PORT_TOP; i++) cs->port[i] = i ? 0 : 521, cs->port_count[i] = !i;
    trng r = {43};
    for (uint64_t w = 0; w < N; w++)
        for (uint32_t c = 0; c < 2; c++)
            for (uint32_t b = 0; b < L; b++) {
                uint64_t k = trng_below(&r, 4);
                *tds_at(ds, w, c, b) = k == 0   ? 0.0f
                                       : k == 1 ? (float)trng_below(&r, 80)
                                       : k == 2 ? (float)(60 + trng_below(&r, 200))
                                                : (float)trng_below(&r, 20000);
            }
    static obs o;
    replay_stats st = run(ds, &o, 8);
    CHECK(st.carried > 0);
    for (uint64_t i = 0; i < N; i++) {
        const flow_obs *f = &o.f[i];
        if (!f->seen) continue; /* an all-zero window sends nothing */
        /* headers, and RIPng's own 4 bytes */
        const double minf =
            (f->v6 ? 54 + 20 : 54) - (f->l4 == ND_L4_UDP ? 12 : 0) + (ripng ? 4 : 0);
        /* TCP: handshake and FIN; UDP: the client packet that opens the flow */
        const double forced = f->l4 == ND_L4_TCP ? 2 * (minf + 4) + 3 * minf : minf;
        /* TLS to 443: a segment with data holds a record of one byte or more, so the
         * bytes of a bin between a pure ACK and that are carried too */
        const double deficit = minf + (f->l4 == ND_L4_TCP && f->sport == 443 ? 6 : 0);
        for (int d = 0; d < 2; d++) {
            double T = 0, S = 0;
            for (uint32_t b = 0; b < L; b++) {
                T += target(ds, f->window, d, b);
                S += f->bytes[d][b];
                if (!(T - S < deficit && S - T <= forced))
                    CHECK_FAIL_("flow %llu (%s, v%d) dir %d bin %u: cumulative %.0f sent, "
                                "series %.0f (min frame %.0f, forced %.0f)",
                                (unsigned long long)i, f->l4 ? "udp" : "tcp", f->v6 ? 6 : 4, d,
                                b, S, T, minf, forced);
            }
        }
    }
    tds_free(ds);
}

/* C: the packets channel sets the count per bin when it is feasible. */
static void test_pkts_channel(void)
{
    const uint32_t L = 8, N = 100;
    nd_dataset *ds = tds_new(4, ch4, L, 50000000ull, 1, cls1, N);
    tds_web_stats(&ds->stats[0], 1.0, 0.0); /* UDP over IPv4: no forced packets */
    trng r = {44};
    for (uint64_t w = 0; w < N; w++)
        for (uint32_t c = 0; c < 2; c++)
            for (uint32_t b = 0; b < L; b++) {
                uint64_t n = 1 + trng_below(&r, 60);
                *tds_at(ds, w, c, b) = (float)(n * (60 + trng_below(&r, 1400)));
                *tds_at(ds, w, c + 2, b) = (float)n;
            }
    static obs o;
    run(ds, &o, 9);
    for (uint64_t i = 0; i < N; i++)
        for (int d = 0; d < 2; d++)
            for (uint32_t b = 0; b < L; b++) {
                const flow_obs *f = &o.f[i];
                CHECK_EQ(f->count[d][b], target(ds, f->window, 2 + d, b));
                CHECK_EQ(f->bytes[d][b], target(ds, f->window, d, b));
            }
    tds_free(ds);
}

/* D: no statistics (imported series): MTU-sized frames, TCP/IPv4 to 443, even times. */
static void test_defaults(void)
{
    const uint32_t L = 4, N = 20;
    nd_dataset *ds = tds_new(2, ch2, L, 1000000000ull, 1, cls1, N);
    for (uint64_t w = 0; w < N; w++)
        for (uint32_t b = 0; b < L; b++) {
            *tds_at(ds, w, 0, b) = 1514.0f * 40 + 700;
            *tds_at(ds, w, 1, b) = 54.0f * 20;
        }
    static obs o;
    run(ds, &o, 10);
    for (uint64_t i = 0; i < N; i++)
        for (uint32_t b = 1; b + 1 < L; b++) {      /* middle bins: no handshake, no FIN */
            CHECK_EQ(o.f[i].count[ND_DOWN][b], 41); /* 40 full frames + the remainder */
            CHECK_EQ(o.f[i].bytes[ND_DOWN][b], 1514 * 40 + 700);
            CHECK_EQ(o.f[i].count[ND_UP][b], 1); /* 1080 bytes fit one frame */
        }
    check_closed(&o, N);
    tds_free(ds);
}

/* E: same seed, same packets; another seed, other packets. */
static uint64_t hash_acc;
static int hash_packet(const uint8_t *frame, uint32_t len, uint64_t deadline,
                       const replay_pkt_info *in, void *arg)
{
    for (uint32_t i = 0; i < len; i++) hash_acc = (hash_acc ^ frame[i]) * 0x100000001b3ull;
    hash_acc = (hash_acc ^ deadline) * 0x100000001b3ull;
    return 0;
}

static uint64_t run_hash(const nd_dataset *ds, uint64_t seed)
{
    replay_opts opt;
    replay_opts_defaults(&opt);
    opt.speed = 0;
    opt.seed = seed;
    opt.status = 0;
    opt.flows = 50;
    opt.loop = 2;
    hash_acc = 0xcbf29ce484222325ull;
    replay_sink *s = replay_sink_func(hash_packet, NULL);
    nd_error e;
    CHECK_EQ(replay_run(ds, &opt, s, NULL, &e), 0);
    replay_sink_close(s, &e);
    return hash_acc;
}

static void test_seed(void)
{
    nd_dataset *ds = tds_new(2, ch2, 8, 10000000ull, 1, cls1, 10);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    for (uint64_t i = 0; i < 10 * 2 * 8; i++) ds->values[i] = (float)(1000 + 37 * i);
    uint64_t a = run_hash(ds, 5), b = run_hash(ds, 5), c = run_hash(ds, 6);
    CHECK_U64_EQ(a, b);
    CHECK(a != c);
    tds_free(ds);
}

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    test_exact();
    test_bounds(0);
    test_bounds(1);
    test_pkts_channel();
    test_defaults();
    test_seed();
    printf("replay packets: ok\n");
    return 0;
}
