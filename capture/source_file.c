/*
 * source_file.c — "pcap:FILE" sources. Classic pcap files (magic a1b2c3d4 with µs or
 * a1b23c4d with ns timestamps, either byte order, version 2.4, a link type the parser
 * knows) are read in place: the file (or FIFO, or pipe) is read in blocks of 256 KiB
 * into one buffer that stays in the core's cache, and each burst hands over pointers into
 * it: one kernel copy, no library call and no copy per packet (libpcap freads each header
 * and packet from a 4 KiB stdio buffer into its own). A mapping of the file was measured
 * too and was slower: page faults, unmapping and cache misses cost more than the copy.
 * A file smaller than the buffer gets a buffer of its own size: a folder of small
 * captures (or a fuzzer's inputs) then costs no fresh half-megabyte mapping per file.
 * Everything else (pcapng, other versions and link types, "-" for stdin) is read by
 * libpcap (source.c).
 *
 * Same packets as libpcap: the file header is checked by libpcap itself (from a copy of
 * its 24 bytes), so open errors, link type and snapshot length are libpcap's; every
 * record is checked as libpcap 1.10 sf-pcap.c checks it, in the same order and with the
 * same messages: a caplen above 262144 is an error, one above the file's snapshot length
 * is cut to it (the rest skipped), a record cut short by the end of the file is an error.
 * Timestamps are widened as libpcap widens them (signed in host byte order, unsigned when
 * swapped).
 * tests/capture/test_capture_file.c compares both readers record by record.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* fopencookie */
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture_impl.h"

enum {
    FILE_HDR = 24,       /* pcap file header */
    REC_HDR = 16,        /* record header: ts_sec, ts_frac, caplen, len */
    MAX_CAPLEN = 262144, /* libpcap's MAXIMUM_SNAPLEN (max_snaplen_for_dlt of every
                            link type read here) */
    BLOCK = 1 << 18,     /* bytes per read(): fits the L2 cache with room to spare */
    PREFETCH = 4096,     /* the file is prefetched this far ahead of the record read:
                            a dozen records, more than a memory latency's worth */
    FILE_BURST = 32,
};
#define BUF_MAX ((size_t)BLOCK + REC_HDR + MAX_CAPLEN)

typedef struct file_source {
    capture_source base;
    int fd;
    uint8_t *buf;      /* BLOCK + one largest record, or the whole of a smaller file */
    size_t cap;        /* bytes at buf */
    size_t len;        /* valid bytes at buf */
    size_t pos;        /* next record header at buf + pos */
    size_t ahead;      /* bytes before buf + ahead have been prefetched */
    int eof;           /* no bytes beyond len */
    int swapped;       /* file byte order is not the host's */
    uint32_t ts_mult;  /* ns per timestamp fraction unit: 1000 (µs file) or 1 */
    uint32_t snapshot; /* the file's snapshot length as libpcap adjusts it */
    uint32_t snap;     /* capture_opts.snaplen: bytes handed over per packet */
    int pending;       /* CAPTURE_END or ND_ETRUNC, held back until the burst is used */
    char why[PCAP_ERRBUF_SIZE]; /* text of a pending ND_ETRUNC, as libpcap words it */
    uint64_t errors;
} file_source;

static inline uint32_t rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

/* Reads what there is for the next record (stream only): at least its whole header and
 * data, or up to the end of the input. Moves the unread tail to the front first, which
 * ends the life of the previous burst's packets (allowed: they live until the next rx). */
static int stream_fill(file_source *fs)
{
    for (;;) {
        size_t avail = fs->len - fs->pos;
        if (avail >= REC_HDR) {
            uint32_t caplen = rd32(fs->buf + fs->pos + 8, fs->swapped);
            /* An impossible caplen fails on its header alone, as in libpcap. */
            if (caplen > MAX_CAPLEN || avail - REC_HDR >= caplen) return 0;
        }
        if (fs->eof) return 0;
        if (fs->pos) {
            memmove(fs->buf, fs->buf + fs->pos, avail);
            fs->len = avail;
            fs->pos = 0;
            fs->ahead = 0;
        }
        /* The buffer holds BLOCK + a largest record, so the record always fits; or the
         * whole file as it was at open, which grows to that if the file did. */
        if (fs->len == fs->cap && fs->cap < BUF_MAX) {
            uint8_t *b = realloc(fs->buf, BUF_MAX);
            if (!b) {
                snprintf(fs->why, sizeof fs->why, "out of memory");
                return ND_ETRUNC;
            }
            fs->buf = b;
            fs->cap = BUF_MAX;
        }
        size_t room = fs->cap - fs->len;
        ssize_t r = read(fs->fd, fs->buf + fs->len, room < BLOCK ? room : BLOCK);
        if (r < 0) {
            snprintf(fs->why, sizeof fs->why, "error reading dump file: %s", strerror(errno));
            return ND_ETRUNC;
        }
        if (r == 0) fs->eof = 1;
        fs->len += (size_t)r;
    }
}

static int file_pending(file_source *fs, nd_error *e)
{
    if (fs->pending == CAPTURE_END) return CAPTURE_END;
    fs->errors++;
    return capture_file_error(&fs->base, fs->why, e);
}

static int file_rx(capture_source *s, capture_pkt *pkts, unsigned max, int timeout_ms,
                   nd_error *e)
{
    (void)timeout_ms; /* a file read blocks, as libpcap's does */
    file_source *fs = (file_source *)s;
    if (fs->pending) return file_pending(fs, e);
    if (stream_fill(fs)) {
        fs->pending = ND_ETRUNC;
        return file_pending(fs, e);
    }
    if (max > FILE_BURST) max = FILE_BURST;
    const uint8_t *buf = fs->buf;
    const size_t len = fs->len;
    const int sw = fs->swapped;
    size_t pos = fs->pos;
    unsigned n = 0;
    while (n < max) {
        /* pos <= len always: every step below is checked against len - pos first. */
        size_t avail = len - pos;
        if (avail < REC_HDR) {
            if (!fs->eof) break; /* stream: the rest comes with the next read */
            if (avail) {
                snprintf(fs->why, sizeof fs->why,
                         "truncated dump file; tried to read %d "
                         "header bytes, only got %zu",
                         REC_HDR, avail);
                fs->pending = ND_ETRUNC;
            } else {
                fs->pending = CAPTURE_END;
            }
            break;
        }
        /* Each line of the buffer is prefetched once, PREFETCH bytes before its turn:
         * the part of a block the kernel copied first may have left L1/L2 already. */
        size_t want = len - pos > PREFETCH ? pos + PREFETCH : len;
        for (size_t a = fs->ahead; a < want; a += 64) capture_prefetch(buf + a);
        if (want > fs->ahead) fs->ahead = (want + 63) & ~(size_t)63;
        const uint8_t *h = buf + pos;
        uint32_t caplen = rd32(h + 8, sw);
        if (caplen > MAX_CAPLEN) {
            if (caplen > fs->snapshot)
                snprintf(fs->why, sizeof fs->why,
                         "invalid packet capture length %u, bigger "
                         "than snaplen of %u",
                         caplen, fs->snapshot);
            else
                snprintf(fs->why, sizeof fs->why,
                         "invalid packet capture length %u, bigger "
                         "than maximum of %u",
                         caplen, (unsigned)MAX_CAPLEN);
            fs->pending = ND_ETRUNC;
            break;
        }
        /* libpcap delivers at most the snapshot length and skips the rest of the record. */
        uint32_t keep = caplen < fs->snapshot ? caplen : fs->snapshot;
        if (avail - REC_HDR < caplen) {
            if (!fs->eof) break;
            size_t got = avail - REC_HDR;
            snprintf(fs->why, sizeof fs->why,
                     "truncated dump file; tried to read %u "
                     "captured bytes, only got %zu",
                     got < keep ? keep : caplen, got);
            fs->pending = ND_ETRUNC;
            break;
        }
        /* As libpcap 1.10 widens them: seconds and fraction are signed 32-bit in a file
         * of the host's byte order, unsigned in a swapped one (its SWAPLONG); µs are
         * scaled to ns in 64 bits. */
        uint32_t rs = rd32(h, sw), rf = rd32(h + 4, sw);
        uint64_t sec = sw ? rs : (uint64_t)(int64_t)(int32_t)rs;
        uint64_t frac = sw ? rf : (uint64_t)(int64_t)(int32_t)rf;
        pkts[n].data = h + REC_HDR;
        pkts[n].caplen = keep < fs->snap ? keep : fs->snap;
        pkts[n].wirelen = rd32(h + 12, sw);
        pkts[n].ts_ns = (uint64_t)sec * ND_NS_PER_SEC + (uint64_t)frac * fs->ts_mult;
        pos += REC_HDR + (size_t)caplen;
        n++;
    }
    fs->pos = pos;
    s->received += n;
    if (n) return (int)n;
    if (fs->pending) return file_pending(fs, e);
    /* A stream whose next record is not complete yet, with no packet in hand: cannot
     * happen after stream_fill (it reads until the record is whole or the input ends). */
    ND_ASSERT(0);
    return CAPTURE_END;
}

static void file_stats(capture_source *s, capture_source_stats *st)
{
    memset(st, 0, sizeof *st);
    st->received = s->received;
    st->errors = ((file_source *)s)->errors;
}

static void file_report(capture_source *s)
{
    nd_info("%s: %" PRIu64 " packets", s->spec, s->received);
}

static void file_close(capture_source *s)
{
    file_source *fs = (file_source *)s;
    free(fs->buf);
    close(fs->fd);
    free(fs);
}

static const capture_source_ops file_ops = {file_rx, file_stats, file_report, file_close};

/* A stream that yields the bytes already read from fd, then the rest of fd: libpcap
 * reads a FIFO whose head this file looked at. Owns fd. */
typedef struct replay {
    int fd;
    size_t n, off;
    uint8_t head[FILE_HDR];
} replay;

static ssize_t replay_read(void *cookie, char *buf, size_t size)
{
    replay *r = cookie;
    if (r->off < r->n) {
        size_t k = r->n - r->off < size ? r->n - r->off : size;
        memcpy(buf, r->head + r->off, k);
        r->off += k;
        return (ssize_t)k;
    }
    return read(r->fd, buf, size);
}

static int replay_close(void *cookie)
{
    replay *r = cookie;
    int rc = close(r->fd);
    free(r);
    return rc;
}

/* Hands fd (head[0..n) already read from it) to libpcap. */
static capture_source *to_libpcap_stream(const char *spec, int fd, const uint8_t *head,
                                         size_t n, const capture_opts *o, nd_error *e)
{
    replay *r = calloc(1, sizeof *r);
    FILE *f = NULL;
    if (r) {
        r->fd = fd;
        r->n = n;
        memcpy(r->head, head, n);
        f = fopencookie(r, "r",
                        (cookie_io_functions_t){.read = replay_read, .close = replay_close});
    }
    if (!f) {
        free(r);
        close(fd);
        nd_error_set(e, -ENOMEM, "%s: out of memory", spec);
        return NULL;
    }
    return capture_libpcap_file_open(spec, NULL, f, o, e);
}

/* Reads up to FILE_HDR bytes from fd. Returns the count, or -errno. */
static ssize_t read_head(int fd, uint8_t *head)
{
    size_t n = 0;
    while (n < FILE_HDR) {
        ssize_t r = read(fd, head + n, FILE_HDR - n);
        if (r < 0) return -errno;
        if (r == 0) break;
        n += (size_t)r;
    }
    return (ssize_t)n;
}

/* Byte order (0 host, 1 swapped) and ns flag of a classic pcap 2.4 header, or -1. */
static int classic_header(const uint8_t *head, int *nano)
{
    uint32_t m;
    memcpy(&m, head, 4);
    int sw;
    if (m == 0xa1b2c3d4u || m == 0xa1b23c4du) sw = 0;
    else if (__builtin_bswap32(m) == 0xa1b2c3d4u || __builtin_bswap32(m) == 0xa1b23c4du) sw = 1;
    else return -1;
    *nano = (sw ? __builtin_bswap32(m) : m) == 0xa1b23c4du;
    uint16_t major, minor;
    memcpy(&major, head + 4, 2);
    memcpy(&minor, head + 6, 2);
    if (sw) major = __builtin_bswap16(major), minor = __builtin_bswap16(minor);
    /* 2.4 only: older minors have caplen and len swapped in some writers (libpcap
     * handles that). */
    return major == 2 && minor == 4 ? sw : -1;
}

capture_source *capture_file_open(const char *spec, const char *path, const capture_opts *o,
                                  nd_error *e)
{
    if (nd_is_stdio(path))
        return nd_stdio_claim(0, e) ? NULL : capture_libpcap_file_open(spec, path, NULL, o, e);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        nd_error_set(e, err == ENOENT ? -ENOENT : ND_EFORMAT,
                     "%s: %s: %s (expected a pcap or pcapng capture file)", spec, path,
                     strerror(err));
        return NULL;
    }
    nd_input_note(fd); /* so that no output of the run replaces it */
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return capture_libpcap_file_open(spec, path, NULL, o, e);
    }
    if (S_ISDIR(st.st_mode)) { /* capture_run reads a folder's files; one source is a file */
        close(fd);
        nd_error_set(e, ND_EUSAGE,
                     "%s: is a folder, expected a pcap or pcapng file (`capture` "
                     "reads the files of a folder in name order)",
                     spec);
        return NULL;
    }
    int stream = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode);
    uint8_t head[FILE_HDR];
    ssize_t got = read_head(fd, head);
    if (got < 0) {
        close(fd);
        nd_error_set(e, ND_EFORMAT,
                     "%s: error reading dump file: %s (expected a pcap or "
                     "pcapng capture file)",
                     spec, strerror((int)-got));
        return NULL;
    }
    int nano = 0, sw = got == FILE_HDR ? classic_header(head, &nano) : -1;
    int lt = -1;
    uint32_t snapshot = 0;
    if (sw >= 0) {
        /* libpcap reads the header: its errors, link type and snapshot length. */
        char err[PCAP_ERRBUF_SIZE] = "";
        FILE *hf = fmemopen(head, FILE_HDR, "r");
        pcap_t *p =
            hf ? pcap_fopen_offline_with_tstamp_precision(hf, PCAP_TSTAMP_PRECISION_NANO, err)
               : NULL;
        if (!p) {
            if (hf) fclose(hf);
            close(fd);
            nd_error_set(e, ND_EFORMAT, "%s: %s (expected a pcap or pcapng capture file)", spec,
                         hf ? err : "out of memory");
            return NULL;
        }
        lt = pcap_datalink(p);
        snapshot = (uint32_t)pcap_snapshot(p);
        pcap_close(p); /* closes hf */
        parse_info pi;
        /* Link types the parser does not know are libpcap's (some have pseudo-headers it
         * byte-swaps, or larger record limits). */
        if (parse_packet(head, 0, lt, &pi) == PARSE_LINKTYPE) sw = -1;
    }
    if (sw < 0) {
        if (stream) return to_libpcap_stream(spec, fd, head, (size_t)got, o, e);
        close(fd);
        return capture_libpcap_file_open(spec, path, NULL, o, e);
    }

    file_source *fs = calloc(1, sizeof *fs);
    if (!fs) goto nomem;
    fs->base.ops = &file_ops;
    fs->base.linktype = lt;
    fs->fd = fd;
    fs->swapped = sw;
    fs->ts_mult = nano ? 1 : 1000;
    fs->snapshot = snapshot;
    fs->snap = o->snaplen ? o->snaplen : MAX_CAPLEN;
    /* A file smaller than the buffer gets one its size (and a byte, to see its end in
     * one read): a folder of small captures does not map half a megabyte per file. */
    fs->cap = BUF_MAX;
    if (!stream && st.st_size >= 0 && (uint64_t)st.st_size < BUF_MAX)
        fs->cap = (size_t)st.st_size + 1;
    fs->buf = malloc(fs->cap);
    if (!fs->buf) goto nomem;
    return &fs->base;

nomem:
    free(fs);
    close(fd);
    nd_error_set(e, -ENOMEM, "%s: out of memory", spec);
    return NULL;
}
