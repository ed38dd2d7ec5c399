/*
 * stream.c — the window stream between capture hosts and a `live` trainer
 * (docs/FORMATS.md, "Window streams"): frames of a type, a length, a payload and a CRC-32;
 * the sender's HELLO (format version, binning, class names), windows with a sequence
 * number, per-class replay statistics, BYE; the trainer's ACCEPT, REFUSE and ACK.
 *
 * The reader (nd_ws_read) is a pure function of the bytes received so far and its own
 * state, so that the trainer calls it after every read and the fuzzer on anything
 * (tests/fuzz/fuzz_wstream.c). Every length is checked against its bound before anything
 * sized by it is used, and a frame longer than the largest one of its kind is refused at
 * its first 8 bytes, so that a peer can never make the trainer buffer more than one frame.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "live_impl.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the window stream is little-endian and copies floats as they are in memory"
#endif

static const char ws_magic[4] = {'N', 'D', 'W', 'S'};

/* ---- writing frames --------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

size_t nd_ws_frame_size(size_t payload) { return ND_WS_FRAME_HEAD + payload + 4; }

/* Writes the frame's head and its CRC around the payload already at buf + 8. */
size_t nd_ws_frame_seal(uint8_t *buf, uint32_t type, size_t payload)
{
    put_u32(buf, type);
    put_u32(buf + 4, (uint32_t)payload);
    uLong crc = crc32(0L, buf, (uInt)(ND_WS_FRAME_HEAD + payload));
    put_u32(buf + ND_WS_FRAME_HEAD + payload, (uint32_t)crc);
    return nd_ws_frame_size(payload);
}

uint8_t *nd_ws_hello_new(const nd_dataset *hdr, const char *name, uint64_t first_seq,
                         size_t *len)
{
    size_t nl = strnlen(name, ND_NAME_MAX - 1);
    size_t payload = 32 + 1 + nl;
    for (uint32_t k = 0; k < hdr->n_classes; k++) payload += 1 + strlen(hdr->class_names[k]);
    uint8_t *b = calloc(1, nd_ws_frame_size(payload));
    if (!b) return NULL;
    uint8_t *p = b + ND_WS_FRAME_HEAD;
    memcpy(p, ws_magic, 4);
    uint16_t version = ND_WS_VERSION, channels = (uint16_t)hdr->n_channels;
    memcpy(p + 4, &version, 2);
    memcpy(p + 6, &channels, 2);
    put_u32(p + 8, hdr->L);
    put_u64(p + 12, hdr->bin_ns);
    put_u64(p + 20, first_seq);
    put_u32(p + 28, hdr->n_classes);
    p += 32;
    *p++ = (uint8_t)nl;
    memcpy(p, name, nl);
    p += nl;
    for (uint32_t k = 0; k < hdr->n_classes; k++) {
        size_t cl = strlen(hdr->class_names[k]);
        *p++ = (uint8_t)cl;
        memcpy(p, hdr->class_names[k], cl);
        p += cl;
    }
    *len = nd_ws_frame_seal(b, ND_WS_HELLO, payload);
    return b;
}

size_t nd_ws_window_put(uint8_t *buf, uint32_t cls, uint64_t group, uint64_t seq,
                        const float *values, size_t wf)
{
    uint8_t *p = buf + ND_WS_FRAME_HEAD;
    put_u32(p, cls);
    put_u32(p + 4, 0);
    put_u64(p + 8, group);
    put_u64(p + 16, seq);
    memcpy(p + 24, values, wf * sizeof(float));
    return nd_ws_frame_seal(buf, ND_WS_WINDOW, 24 + wf * sizeof(float));
}

size_t nd_ws_stats_put(uint8_t *buf, uint32_t cls, const nd_class_stats *st)
{
    uint8_t *p = buf + ND_WS_FRAME_HEAD;
    size_t rec = nd_stats_record_bytes();
    put_u32(p, cls);
    put_u32(p + 4, (uint32_t)rec);
    nd_stats_encode(p + 8, st);
    return nd_ws_frame_seal(buf, ND_WS_STATS, 8 + rec);
}

size_t nd_ws_u64_put(uint8_t *buf, uint32_t type, uint64_t v)
{
    put_u64(buf + ND_WS_FRAME_HEAD, v);
    return nd_ws_frame_seal(buf, type, 8);
}

/* ---- reading frames --------------------------------------------------------------- */

/* The largest payload of a HELLO: the fixed part, a name and ND_MAX_CLASSES names. */
#define HELLO_MAX (32 + ND_MAX_CLASSES * ND_NAME_MAX + ND_NAME_MAX)

static const char *type_name(uint32_t t)
{
    switch (t) {
    case ND_WS_HELLO: return "HELLO";
    case ND_WS_WINDOW: return "WINDOW";
    case ND_WS_STATS: return "STATS";
    case ND_WS_BYE: return "BYE";
    case ND_WS_ACCEPT: return "ACCEPT";
    case ND_WS_REFUSE: return "REFUSE";
    case ND_WS_ACK: return "ACK";
    default: return NULL;
    }
}

long nd_ws_frame_parse(const uint8_t *buf, size_t n, size_t max_payload, nd_ws_frame *f,
                       nd_error *e)
{
    if (n < ND_WS_FRAME_HEAD) return 0;
    uint32_t type = get_u32(buf), len = get_u32(buf + 4);
    if (!type_name(type)) {
        char shown[9] = {0};
        for (int i = 0; i < 8; i++) shown[i] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '.';
        return nd_error_set(e, ND_EFORMAT,
                            "not a netdiffus window stream: frame type 0x%08" PRIx32
                            " (first bytes '%s')",
                            type, shown);
    }
    if (len > max_payload)
        return nd_error_set(e, ND_EFORMAT,
                            "%s frame of %" PRIu32 " bytes, more than the %zu this stream "
                            "allows",
                            type_name(type), len, max_payload);
    size_t whole = nd_ws_frame_size(len);
    if (n < whole) return 0;
    uint32_t want = get_u32(buf + ND_WS_FRAME_HEAD + len);
    uint32_t got = (uint32_t)crc32(0L, buf, (uInt)(ND_WS_FRAME_HEAD + len));
    if (want != got)
        return nd_error_set(e, ND_ECRC,
                            "%s frame of %" PRIu32 " bytes: CRC-32 %08" PRIx32
                            ", its bytes give %08" PRIx32,
                            type_name(type), len, want, got);
    *f = (nd_ws_frame){.type = type, .len = len, .payload = buf + ND_WS_FRAME_HEAD};
    return (long)whole;
}

struct nd_ws_reader {
    const nd_dataset *hdr;
    size_t wf;
    int hello;          /* HELLO read: the stream's settings are known */
    uint64_t next_seq;  /* windows numbered below it have been read (or lost) */
    uint32_t n_classes; /* the sender's */
    uint16_t *map;      /* (ND_MAX_CLASSES) sender's class -> hdr's */
    float *values;      /* (wf) the last window read */
    nd_class_stats *stats;
    char name[ND_NAME_MAX];
};

nd_ws_reader *nd_ws_reader_new(const nd_dataset *hdr)
{
    nd_ws_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->hdr = hdr;
    r->wf = (size_t)hdr->n_channels * hdr->L;
    r->map = calloc(ND_MAX_CLASSES, sizeof *r->map);
    r->values = malloc(r->wf * sizeof(float));
    r->stats = malloc(sizeof *r->stats);
    if (!r->map || !r->values || !r->stats) {
        nd_ws_reader_free(r);
        return NULL;
    }
    return r;
}

void nd_ws_reader_free(nd_ws_reader *r)
{
    if (!r) return;
    free(r->map);
    free(r->values);
    free(r->stats);
    free(r);
}

const char *nd_ws_reader_name(const nd_ws_reader *r) { return r->hello ? r->name : NULL; }

size_t nd_ws_reader_max(const nd_ws_reader *r)
{
    if (!r->hello) return HELLO_MAX;
    size_t win = 24 + r->wf * sizeof(float), st = 8 + nd_stats_record_bytes();
    return win > st ? win : st;
}

/* A name of n bytes at p: 1..63 bytes, no control characters (as class names). */
static int name_ok(const uint8_t *p, size_t n)
{
    if (!n || n >= ND_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f) return 0;
    return 1;
}

/* The hdr's class names, for a message. */
static void class_list(const nd_dataset *h, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (uint32_t k = 0; k < h->n_classes && n + 2 < len; k++) {
        int w = snprintf(buf + n, len - n, "%s%s", k ? ", " : "", h->class_names[k]);
        if (w < 0) break;
        n += (size_t)w;
    }
}

static int read_hello(nd_ws_reader *r, const uint8_t *p, size_t len, nd_error *e)
{
    const nd_dataset *h = r->hdr;
    if (len < 4 || memcmp(p, ws_magic, 4))
        return nd_error_set(e, ND_EFORMAT,
                            "not a netdiffus window stream: HELLO without "
                            "its magic NDWS");
    if (len < 33) return nd_error_set(e, ND_EFORMAT, "HELLO of %zu bytes, at least 33", len);
    uint16_t version, channels;
    memcpy(&version, p + 4, 2);
    memcpy(&channels, p + 6, 2);
    if (version != ND_WS_VERSION)
        return nd_error_set(e, ND_EVERSION,
                            "window stream version %u, this trainer reads version %d: run "
                            "the same netdiffus release on both sides",
                            version, ND_WS_VERSION);
    uint32_t L = get_u32(p + 8), K = get_u32(p + 28);
    uint64_t bin = get_u64(p + 12);
    if (channels != h->n_channels || L != h->L || bin != h->bin_ns)
        return nd_error_set(e, ND_ECONFIG,
                            "the sender's windows are %u channels x %" PRIu32
                            " bins of %" PRIu64 " ns, the trainer's %u x %u of %" PRIu64
                            " ns: capture.channels, capture.window and capture.bin must "
                            "be the same on both sides",
                            channels, L, bin, h->n_channels, h->L, h->bin_ns);
    if (K == 0 || K > ND_MAX_CLASSES)
        return nd_error_set(e, ND_EFORMAT, "HELLO with %" PRIu32 " classes, expected 1..%d", K,
                            ND_MAX_CLASSES);
    size_t off = 32;
    size_t nl = p[off++];
    if (off + nl > len || !name_ok(p + off, nl))
        return nd_error_set(e, ND_EFORMAT,
                            "HELLO: the sender's name (%zu bytes) is not 1..63 printable "
                            "bytes within the frame",
                            nl);
    memcpy(r->name, p + off, nl);
    r->name[nl] = 0;
    off += nl;
    for (uint32_t k = 0; k < K; k++) {
        size_t cl = off < len ? p[off++] : 0;
        if (off + cl > len || !name_ok(p + off, cl))
            return nd_error_set(e, ND_EFORMAT,
                                "HELLO: class %" PRIu32 " of %" PRIu32
                                " is not a name of 1..63 printable bytes within the frame",
                                k, K);
        char name[ND_NAME_MAX];
        memcpy(name, p + off, cl);
        name[cl] = 0;
        off += cl;
        uint32_t j = 0;
        while (j < h->n_classes && strcmp(h->class_names[j], name)) j++;
        if (j == h->n_classes) {
            char have[512];
            class_list(h, have, sizeof have);
            return nd_error_set(e, ND_ECONFIG,
                                "the sender's class '%s' is not one of the trainer's (%s): "
                                "give both sides the same classes",
                                name, have);
        }
        r->map[k] = (uint16_t)j;
    }
    if (off != len)
        return nd_error_set(e, ND_EFORMAT, "HELLO: %zu bytes after the last class name",
                            len - off);
    r->n_classes = K;
    r->next_seq = get_u64(p + 20);
    r->hello = 1;
    return 0;
}

static int read_window(nd_ws_reader *r, const uint8_t *p, size_t len, nd_ws_item *it,
                       nd_error *e)
{
    if (len != 24 + r->wf * sizeof(float))
        return nd_error_set(e, ND_EFORMAT, "WINDOW of %zu bytes, expected %zu (%zu values)",
                            len, 24 + r->wf * sizeof(float), r->wf);
    uint32_t cls = get_u32(p);
    uint64_t seq = get_u64(p + 16);
    if (cls >= r->n_classes)
        return nd_error_set(e, ND_EFORMAT,
                            "WINDOW of class %" PRIu32 ", the sender has %" PRIu32, cls,
                            r->n_classes);
    if (seq < r->next_seq)
        return nd_error_set(e, ND_EFORMAT,
                            "WINDOW number %" PRIu64 " after %" PRIu64 ": numbers must rise",
                            seq, r->next_seq - 1);
    memcpy(r->values, p + 24, r->wf * sizeof(float));
    for (size_t i = 0; i < r->wf; i++)
        if (!isfinite(r->values[i]) || r->values[i] < 0)
            return nd_error_set(e, ND_EFORMAT,
                                "WINDOW number %" PRIu64 ": value %zu is %g, expected a "
                                "finite number >= 0",
                                seq, i, (double)r->values[i]);
    it->cls = r->map[cls];
    it->group = get_u64(p + 8);
    it->lost = seq - r->next_seq;
    it->seq = seq;
    it->values = r->values;
    r->next_seq = seq + 1;
    return 0;
}

long nd_ws_read(nd_ws_reader *r, const uint8_t *buf, size_t n, nd_ws_item *it, nd_error *e)
{
    nd_ws_frame f = {0};
    long took = nd_ws_frame_parse(buf, n, nd_ws_reader_max(r), &f, e);
    if (took <= 0) return took;
    memset(it, 0, sizeof *it);
    it->type = f.type;
    int rc = 0;
    if (!r->hello && f.type != ND_WS_HELLO)
        return nd_error_set(e, ND_EFORMAT, "%s frame before the HELLO", type_name(f.type));
    switch (f.type) {
    case ND_WS_HELLO:
        if (r->hello) return nd_error_set(e, ND_EFORMAT, "a second HELLO");
        rc = read_hello(r, f.payload, f.len, e);
        it->seq = r->next_seq; /* the number of the first window to come */
        break;
    case ND_WS_WINDOW: rc = read_window(r, f.payload, f.len, it, e); break;
    case ND_WS_STATS:
        if (f.len != 8 + nd_stats_record_bytes() ||
            get_u32(f.payload + 4) != nd_stats_record_bytes())
            return nd_error_set(e, ND_EFORMAT,
                                "STATS of %" PRIu32 " bytes, this trainer reads records of "
                                "%zu bytes (8 + %zu)",
                                f.len, 8 + nd_stats_record_bytes(), nd_stats_record_bytes());
        if (get_u32(f.payload) >= r->n_classes)
            return nd_error_set(e, ND_EFORMAT,
                                "STATS of class %" PRIu32 ", the sender has %" PRIu32,
                                get_u32(f.payload), r->n_classes);
        it->cls = r->map[get_u32(f.payload)];
        nd_stats_decode(r->stats, f.payload + 8);
        it->stats = r->stats;
        break;
    case ND_WS_BYE:
        if (f.len != 8 || get_u64(f.payload) < r->next_seq)
            return nd_error_set(e, ND_EFORMAT,
                                "BYE of %" PRIu32 " bytes or with a number "
                                "below the windows read",
                                f.len);
        it->lost = get_u64(f.payload) - r->next_seq;
        r->next_seq = get_u64(f.payload);
        break;
    default:
        return nd_error_set(e, ND_EFORMAT, "%s frame: only the trainer sends it",
                            type_name(f.type));
    }
    return rc ? rc : took;
}
