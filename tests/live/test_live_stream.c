/*
 * test_live_stream.c — the window stream between capture hosts and a live trainer
 * (live/stream*.c, docs/FORMATS.md "Window streams"): frames written by the sender's
 * encoders read back by the trainer's reader, whole and in every shorter piece; the
 * reader refusing foreign, corrupt, oversized, out-of-order and mismatched streams with
 * messages that say what (a peer of the release before STAT layout 2, stream version 1,
 * at its HELLO; its STATS frame too, should one come); the fuzz seed written from
 * FORMATS.md; and the sender's bounded queue dropping its oldest windows while no trainer
 * listens.
 */
#include <math.h>

#include "../base/tmpdir.h"
#include "check.h"
#include "live.h"

static const char *const chans[2] = {"bytes_down", "bytes_up"};
enum { C = 2, L = 16, WF = C * L };

static nd_dataset *header(const char *const *classes, int n, uint32_t bins)
{
    nd_dataset *h = nd_dataset_new(C, chans, bins, 100000000ull);
    CHECK(h);
    for (int i = 0; i < n; i++) CHECK_EQ(nd_dataset_class(h, classes[i]), i);
    return h;
}

/* A stream: HELLO, windows, STATS, BYE, in one buffer (*len bytes). */
static uint8_t *stream_bytes(const nd_dataset *sender, size_t *len, uint64_t first, int windows)
{
    size_t hl, wl = nd_ws_frame_size(24 + WF * sizeof(float));
    uint8_t *hello = nd_ws_hello_new(sender, "host-a", first, &hl);
    CHECK(hello);
    size_t cap = hl + (size_t)windows * wl + nd_ws_frame_size(8 + nd_stats_record_bytes()) +
                 nd_ws_frame_size(8);
    uint8_t *b = malloc(cap);
    CHECK(b);
    memcpy(b, hello, hl);
    free(hello);
    size_t n = hl;
    float v[WF];
    for (int k = 0; k < windows; k++) {
        for (int i = 0; i < WF; i++) v[i] = (float)(k * 100 + i);
        /* numbers first, first+1, first+3, ...: one window lost after the second */
        uint64_t seq = first + (uint64_t)k + (k >= 2);
        n += nd_ws_window_put(b + n, (uint32_t)(k % 2), 1000 + (uint64_t)k, seq, v, WF);
    }
    nd_class_stats st = {0};
    st.flows = 7;
    st.size_hist[0][100] = 3;
    n += nd_ws_stats_put(b + n, 1, &st);
    n += nd_ws_u64_put(b + n, ND_WS_BYE, first + (uint64_t)windows + 1);
    CHECK(n == cap);
    *len = n;
    return b;
}

/* Reads a whole stream; checks each item. Returns the frames read. */
static int read_all(nd_ws_reader *r, const uint8_t *b, size_t n, uint64_t first)
{
    size_t off = 0;
    int frames = 0, windows = 0;
    while (off < n) {
        nd_ws_item it;
        nd_error e = {0};
        long t = nd_ws_read(r, b + off, n - off, &it, &e);
        if (t <= 0) CHECK_FAIL_("frame %d: %ld: %s", frames, t, e.msg);
        if (it.type == ND_WS_HELLO) CHECK_EQ(it.seq, first);
        if (it.type == ND_WS_WINDOW) {
            /* the sender's class k % 2 ("chat", "bulk") is the trainer's 1 - k % 2 */
            CHECK_EQ(it.cls, (uint32_t)(1 - windows % 2));
            CHECK_EQ(it.group, 1000 + (uint64_t)windows);
            CHECK_EQ(it.lost, (uint64_t)(windows == 2));
            CHECK(it.values[3] == (float)(windows * 100 + 3));
            windows++;
        }
        if (it.type == ND_WS_STATS) {
            CHECK_EQ(it.cls, 0u); /* "bulk" */
            CHECK_EQ(it.stats->flows, 7u);
            CHECK_EQ(it.stats->size_hist[0][100], 3u);
        }
        if (it.type == ND_WS_BYE) CHECK_EQ(it.lost, 0u);
        off += (size_t)t;
        frames++;
    }
    CHECK_STR_EQ(nd_ws_reader_name(r), "host-a");
    return frames;
}

/* The reader's verdict on the stream b[0..n) after its good frames: the message. */
static const char *refused(const nd_dataset *trainer, const uint8_t *b, size_t n)
{
    static nd_error e;
    memset(&e, 0, sizeof e);
    nd_ws_reader *r = nd_ws_reader_new(trainer);
    CHECK(r);
    size_t off = 0;
    long t = 1;
    while (t > 0 && off < n) {
        nd_ws_item it;
        t = nd_ws_read(r, b + off, n - off, &it, &e);
        if (t > 0) off += (size_t)t;
    }
    nd_ws_reader_free(r);
    if (t >= 0) CHECK_FAIL_("not refused (%zu of %zu bytes read)", off, n);
    return e.msg;
}

static void check_reader(void)
{
    const char *tc[] = {"bulk", "chat", "other"}, *sc[] = {"chat", "bulk"};
    nd_dataset *trainer = header(tc, 3, L), *sender = header(sc, 2, L);
    size_t n;
    uint8_t *b = stream_bytes(sender, &n, 40, 5);
    nd_ws_reader *r = nd_ws_reader_new(trainer);
    CHECK_EQ(read_all(r, b, n, 40), 1 + 5 + 1 + 1);
    nd_ws_reader_free(r);
    /* in pieces: every prefix of the next frame asks for more bytes */
    r = nd_ws_reader_new(trainer);
    size_t off = 0;
    for (size_t k = 1; off < n; k++) {
        nd_ws_item it;
        nd_error e = {0};
        long t = nd_ws_read(r, b + off, k, &it, &e);
        CHECK(t >= 0);
        if (t > 0) off += (size_t)t, k = 0;
    }
    nd_ws_reader_free(r);

    /* refusals, each with what is wrong */
    uint8_t *c = malloc(n);
    CHECK_CONTAINS(refused(trainer, (const uint8_t *)"GET / HTTP/1.0\r\n\r\n", 18),
                   "not a netdiffus window stream");
    /* the STATS frame carries the STAT record without its layout: a new layout is a new
     * stream version, and the record of this one is pinned here (base/dataset.c) */
    CHECK_EQ(ND_WS_VERSION, 2);
    CHECK_EQ(nd_stats_record_bytes(), 40240u);
    uint32_t plen;
    for (int v = 1; v <= 3; v += 2) { /* the previous release's, and a later one */
        memcpy(c, b, n);
        c[ND_WS_FRAME_HEAD + 4] = (uint8_t)v; /* CRC made right */
        memcpy(&plen, c + 4, 4);
        nd_ws_frame_seal(c, ND_WS_HELLO, plen);
        char want[128];
        snprintf(want, sizeof want,
                 "window stream version %d, this trainer reads version 2: run the same "
                 "netdiffus release on both sides",
                 v);
        CHECK_CONTAINS(refused(trainer, c, n), want);
    }
    /* a version-1 STATS frame (a STAT record of layout 1, 32 296 bytes) after a HELLO of
     * this version: refused by its size, never read as this layout */
    size_t hl0, old_rec = 32296;
    uint8_t *h0 = nd_ws_hello_new(sender, "host-a", 0, &hl0);
    uint8_t *o = calloc(1, hl0 + nd_ws_frame_size(8 + old_rec));
    CHECK(h0 && o);
    memcpy(o, h0, hl0);
    uint32_t head[2] = {0, (uint32_t)old_rec};
    memcpy(o + hl0 + ND_WS_FRAME_HEAD, head, 8);
    size_t ol = hl0 + nd_ws_frame_seal(o + hl0, ND_WS_STATS, 8 + old_rec);
    CHECK_CONTAINS(refused(trainer, o, ol),
                   "STATS of 32304 bytes, this trainer reads records of 40248 bytes (8 + "
                   "40240)");
    free(o);
    free(h0);
    memcpy(c, b, n);
    c[20] ^= 1; /* a byte of the HELLO: its CRC no longer matches */
    CHECK_CONTAINS(refused(trainer, c, n), "CRC-32");
    uint8_t big[8] = {ND_WS_HELLO, 0, 0, 0, 0, 0, 0, 0x10}; /* 256 MiB */
    CHECK_CONTAINS(refused(trainer, big, 8), "more than the");
    size_t hl;
    uint8_t *h = nd_ws_hello_new(sender, "host-a", 0, &hl);
    float v[WF] = {0};
    uint8_t w[4096];
    size_t wl = nd_ws_window_put(w, 0, 1, 0, v, WF);
    CHECK_CONTAINS(refused(trainer, w, wl), "WINDOW frame before the HELLO");
    memcpy(c, h, hl);
    memcpy(c + hl, h, hl);
    CHECK_CONTAINS(refused(trainer, c, 2 * hl), "a second HELLO");
    /* numbers that fall; a value that is not a count; a class the sender has not */
    memcpy(c, h, hl);
    size_t m = hl + nd_ws_window_put(c + hl, 0, 1, 5, v, WF);
    m += nd_ws_window_put(c + m, 0, 1, 5, v, WF);
    CHECK_CONTAINS(refused(trainer, c, m), "WINDOW number 5 after 5");
    v[7] = NAN;
    m = hl + nd_ws_window_put(c + hl, 0, 1, 0, v, WF);
    CHECK_CONTAINS(refused(trainer, c, m), "value 7 is nan");
    v[7] = 0;
    m = hl + nd_ws_window_put(c + hl, 2, 1, 0, v, WF);
    CHECK_CONTAINS(refused(trainer, c, m), "WINDOW of class 2, the sender has 2");
    /* a window of the wrong size (a shorter one, sealed right) */
    m = hl + nd_ws_window_put(c + hl, 0, 1, 0, v, WF - 1);
    CHECK_CONTAINS(refused(trainer, c, m), "expected");
    free(h);
    /* settings that are not the trainer's: bins per window, an unknown class */
    nd_dataset *other_l = header(sc, 2, 8);
    h = nd_ws_hello_new(other_l, "host-b", 0, &hl);
    CHECK_CONTAINS(refused(trainer, h, hl), "capture.window");
    free(h);
    const char *xc[] = {"video"};
    nd_dataset *other_c = header(xc, 1, L);
    h = nd_ws_hello_new(other_c, "host-c", 0, &hl);
    CHECK_CONTAINS(
        refused(trainer, h, hl),
        "the sender's class 'video' is not one of the trainer's (bulk, chat, other)");
    free(h);
    nd_dataset_free(other_l);
    nd_dataset_free(other_c);
    free(c);
    free(b);
    nd_dataset_free(trainer);
    nd_dataset_free(sender);
}

/* No trainer: the queue keeps the newest `buffer` windows, drops the rest and says so. */
static void check_send_queue(void)
{
    const char *sc[] = {"bulk"};
    nd_dataset *h = header(sc, 1, L);
    nd_error e = {0};
    CHECK(!nd_wsend_open("udp:127.0.0.1:1", h, "x", 8, &e));
    CHECK_CONTAINS(e.msg, "expected tcp:HOST:PORT");
    CHECK(!nd_wsend_open("tcp:127.0.0.1:0", h, "x", 8, &e));
    /* port 1 on loopback: nothing listens (connection refused), the thread retries */
    nd_wsend *s = nd_wsend_open("tcp:127.0.0.1:1", h, "x", 8, &e);
    if (!s) CHECK_FAIL_("%s", e.msg);
    float v[WF] = {0};
    for (int k = 0; k < 100; k++) CHECK_EQ(nd_wsend_push(s, 0, (uint64_t)k, v, &e), 0);
    nd_wsend_result r;
    CHECK(nd_wsend_close(s, 0, NULL, &r, &e) != 0);
    CHECK_EQ(r.windows, 100u);
    CHECK_EQ(r.dropped, 92u);
    CHECK_EQ(r.unsent, 8u);
    CHECK_EQ(r.connections, 0u);
    CHECK_CONTAINS(e.msg, "8 of 100 windows still queued");
    nd_dataset_free(h);
}

/* The fuzz seed tests/fuzz/make_seeds.py writes from docs/FORMATS.md alone reads whole:
 * the document describes the stream this code reads. */
static void check_documented_seed(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/seeds/ws-stream.bin", ND_SOURCE_DIR);
    size_t n;
    unsigned char *b = read_bytes(path, &n);
    const char *tc[] = {"web", "dns", "other"};
    nd_dataset *h = nd_dataset_new(C, chans, 4, 1000000000ull);
    for (int i = 0; i < 3; i++) CHECK_EQ(nd_dataset_class(h, tc[i]), i);
    nd_ws_reader *r = nd_ws_reader_new(h);
    size_t off = 0;
    int types[8], k = 0;
    while (off < n && k < 8) {
        nd_ws_item it;
        nd_error e = {0};
        long t = nd_ws_read(r, b + off, n - off, &it, &e);
        if (t <= 0) CHECK_FAIL_("%s at byte %zu: %s", path, off, e.msg);
        if (it.type == ND_WS_WINDOW && it.seq == 12) CHECK_EQ(it.lost, 1u); /* 11 lost */
        if (it.type == ND_WS_WINDOW && it.seq == 10) CHECK_EQ(it.cls, 1u);  /* dns */
        types[k++] = (int)it.type;
        off += (size_t)t;
    }
    CHECK_EQ(off, n);
    CHECK_EQ(k, 5);
    CHECK_EQ(types[0], ND_WS_HELLO);
    CHECK_EQ(types[3], ND_WS_STATS);
    CHECK_EQ(types[4], ND_WS_BYE);
    nd_ws_reader_free(r);
    nd_dataset_free(h);
    free(b);
}

int main(void)
{
    check_reader();
    check_documented_seed();
    check_send_queue();
    return 0;
}
