/*
 * fuzz_parse.c — fuzz target for the packet parser (capture/parse.c) and the flow table
 * and binner behind it. The input is a sequence of packets, each [link index (1 byte),
 * length (2 bytes, little endian), bytes]: every packet is parsed alone from an exact-size
 * copy (so that ASan sees any read past caplen), then all go through a capture context
 * in order, 1 ms apart, and its flows are flushed into windows. The context lives across
 * inputs (flushed after each, its clock only moving forward, as on a wire): making one
 * costs a fresh mapping of its tables, which would be most of the time of a run.
 * libFuzzer target with ND_LIBFUZZER=ON; otherwise replay_main.c runs it over seeds.
 */
#include <stdlib.h>
#include <string.h>

#include "capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int links[] = {CAPTURE_LINK_ETHERNET,
                            CAPTURE_LINK_RAW,
                            CAPTURE_LINK_SLL,
                            CAPTURE_LINK_SLL2,
                            CAPTURE_LINK_NULL,
                            CAPTURE_LINK_LOOP,
                            CAPTURE_LINK_IPV4,
                            CAPTURE_LINK_IPV6,
                            12,
                            14,
                            147 /* not known: refused */};
enum { N_LINKS = sizeof links / sizeof *links, MAX_PKTS = 64 };

static int on_window(void *user, uint32_t cls, uint64_t group, const float *values)
{
    (void)user, (void)cls, (void)group, (void)values;
    return 0;
}

static capture_ctx *context(void)
{
    static capture_ctx *c;
    if (c) return c;
    capture_opts o;
    capture_opts_defaults(&o);
    o.bin_ns = 1000000, o.window = 4, o.min_active_bins = 1, o.channels = 4;
    o.flow_capacity = 16, o.idle_timeout_ns = 5000000, o.active_timeout_ns = 20000000;
    o.default_class = "any";
    nd_error e = {0};
    if (!(c = capture_ctx_new(&o, NULL, on_window, NULL, &e))) abort();
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t t = 1700000000000000000ull;
    capture_ctx *c = context();
    capture_totals before, tot;
    capture_ctx_totals(c, &before);
    capture_pkt pkts[MAX_PKTS];
    uint8_t *copies[MAX_PKTS];
    unsigned n = 0;
    size_t off = 0;
    while (size - off >= 3 && n < MAX_PKTS) {
        int link = links[data[off] % N_LINKS];
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off) len = size - off;
        uint8_t *p = malloc(len ? len : 1);
        if (!p) abort();
        memcpy(p, data + off, len);
        off += len;
        parse_info info;
        int rc = parse_packet(p, (uint32_t)len, link, &info);
        if (rc < 0 || rc >= PARSE_N_STATUS || !parse_status_name(rc)) abort();
        if (rc == PARSE_OK && ((info.ipver != 4 && info.ipver != 6) || info.l2_len > len))
            abort();
        /* one link type per burst: a packet of another type goes in a burst of its own */
        capture_pkt k = {.data = p,
                         .caplen = (uint32_t)len,
                         .wirelen = (uint32_t)len,
                         .ts_ns = t += 1000000};
        capture_ctx_burst(c, link, &k, 1);
        copies[n] = p;
        pkts[n++] = k;
    }
    /* the same packets again as one Ethernet burst, later: flows resume or time out */
    for (unsigned i = 0; i < n; i++) pkts[i].ts_ns += 30000000;
    capture_ctx_burst(c, CAPTURE_LINK_ETHERNET, pkts, n);
    capture_ctx_advance(c, t += 100000000);
    capture_ctx_flush(c);
    t += 100000000;
    capture_ctx_totals(c, &tot);
    /* every packet counted, used or not; no flow left open */
    if (tot.packets - before.packets != 2 * (uint64_t)n || tot.active_flows) abort();
    for (unsigned i = 0; i < n; i++) free(copies[i]);
    return 0;
}
