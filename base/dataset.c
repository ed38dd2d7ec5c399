/*
 * dataset.c — the in-memory dataset of labelled windows and its container sections.
 *
 * Capture and import fill an nd_dataset; it is saved as a .ndd container (sections META,
 * CLAS, STAT, VALS, LABL, GRUP, CNTR, CONF: docs/FORMATS.md) and loaded by train, export,
 * render and inspect. Model files embed the same sections without windows. Loading checks
 * every size and index against the others: a bad file is an error, never a crash.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ndfile_impl.h"

#define TAG_META ND_FOURCC('M', 'E', 'T', 'A')
#define TAG_CLAS ND_FOURCC('C', 'L', 'A', 'S')
#define TAG_STAT ND_FOURCC('S', 'T', 'A', 'T')
#define TAG_VALS ND_FOURCC('V', 'A', 'L', 'S')
#define TAG_LABL ND_FOURCC('L', 'A', 'B', 'L')
#define TAG_GRUP ND_FOURCC('G', 'R', 'U', 'P')
#define TAG_CNTR ND_FOURCC('C', 'N', 'T', 'R')
#define TAG_CONF ND_FOURCC('C', 'O', 'N', 'F')

#define META_FIXED   32 /* META bytes before the channel names */
#define COUNTER_NAME ((int)sizeof(((nd_counter *)0)->name))
#define COUNTER_REC  (COUNTER_NAME + 8) /* CNTR record: name, u64 value */

/* ------------------------------------------------------------------------------------ */
/* The STAT record                                                                      */
/* ------------------------------------------------------------------------------------ */

/* Walks the fields of one nd_class_stats in file order, encoding (w set), decoding
 * (r set) or only counting bytes (neither). One list serves all three, so that writer
 * and reader cannot drift apart. */
typedef struct stat_io {
    unsigned char *w;
    const unsigned char *r;
    size_t n; /* bytes so far */
} stat_io;

static void io_u64(stat_io *io, uint64_t *v, size_t count)
{
    for (size_t i = 0; i < count; i++, io->n += 8) {
        if (io->w) nd_put_u64(io->w + io->n, v[i]);
        if (io->r) v[i] = nd_get_u64(io->r + io->n);
    }
}

static void io_u16(stat_io *io, uint16_t *v, size_t count)
{
    for (size_t i = 0; i < count; i++, io->n += 2) {
        if (io->w) nd_put_u16(io->w + io->n, v[i]);
        if (io->r) v[i] = nd_get_u16(io->r + io->n);
    }
}

/* The STAT record's layouts (the u32 after the record size): 0 ends at last_flow_ns;
 * 1 adds the arrivals measured within each input; 2 the flow durations. A reader reads
 * every layout up to its own, so that the files of earlier builds still load (what they
 * lack stays zero). */
#define STAT_LAYOUT 2u

/* The capture module owns nd_class_stats: a field added there is added here, in the same
 * place for both directions, behind a new layout. The record size and layout are stored
 * in STAT, so that a file written with another list is refused with a clear message
 * instead of being misread. */
static void stats_fields(stat_io *io, nd_class_stats *s, uint32_t layout)
{
    for (int d = 0; d < 2; d++) io_u64(io, s->size_hist[d], ND_SIZE_HIST);
    for (int d = 0; d < 2; d++) io_u64(io, s->iat_hist[d], ND_IAT_HIST);
    for (int d = 0; d < 2; d++) io_u64(io, s->ttl_hist[d], 256);
    io_u64(io, s->l4_flows, 3);
    io_u64(io, &s->ipv6_flows, 1);
    io_u16(io, s->port, ND_PORT_TOP);
    io_u64(io, s->port_count, ND_PORT_TOP);
    io_u16(io, s->mss, ND_MSS_TOP);
    io_u64(io, s->mss_count, ND_MSS_TOP);
    io_u64(io, &s->flows, 1);
    io_u64(io, &s->first_flow_ns, 1);
    io_u64(io, &s->last_flow_ns, 1);
    if (layout < 1) return;
    io_u64(io, &s->arrival_inputs, 1);
    io_u64(io, s->arrival_hist, ND_ARRIVAL_HIST);
    io_u64(io, &s->arrival_gap_ns, 1);
    io_u64(io, s->hour_flows, ND_DAY_HOURS);
    io_u64(io, s->hour_seen_ns, ND_DAY_HOURS);
    if (layout < 2) return;
    io_u64(io, s->duration_hist, ND_DURATION_HIST);
    io_u64(io, &s->duration_bins, 1);
}

static size_t stats_record_size(uint32_t layout)
{
    static nd_class_stats dummy;
    stat_io io = {0};
    stats_fields(&io, &dummy, layout);
    return io.n;
}

size_t nd_stats_record_bytes(void) { return stats_record_size(STAT_LAYOUT); }

void nd_stats_encode(unsigned char *rec, const nd_class_stats *s)
{
    stat_io io = {.w = rec};
    stats_fields(&io, (nd_class_stats *)s, STAT_LAYOUT); /* encoding only reads s */
}

void nd_stats_decode(nd_class_stats *s, const unsigned char *rec)
{
    stat_io io = {.r = rec};
    stats_fields(&io, s, STAT_LAYOUT);
}

uint32_t nd_arrival_bucket(uint64_t gap_ns)
{
    if (gap_ns < 4) return (uint32_t)gap_ns;
    uint32_t e = (uint32_t)(63 - __builtin_clzll(gap_ns));
    return 4 * (e - 1) + (uint32_t)((gap_ns >> (e - 2)) & 3);
}

double nd_arrival_rate(const nd_class_stats *s)
{
    uint64_t gaps = 0;
    for (int i = 0; i < ND_ARRIVAL_HIST; i++) gaps += s->arrival_hist[i];
    return gaps && s->arrival_gap_ns ? (double)gaps * 1e9 / (double)s->arrival_gap_ns : 0;
}

void nd_arrival_range(uint32_t b, uint64_t *first_ns, uint64_t *width_ns)
{
    if (b < 4) {
        *first_ns = b;
        *width_ns = 1;
        return;
    }
    uint32_t e = b / 4 + 1, s = b % 4;
    *width_ns = 1ull << (e - 2);
    *first_ns = (1ull << e) + s * *width_ns;
}

uint32_t nd_duration_bucket(uint64_t bins)
{
    if (bins < 64) return (uint32_t)bins;
    uint32_t e = (uint32_t)(63 - __builtin_clzll(bins));
    return 64 + 16 * (e - 6) + (uint32_t)((bins >> (e - 4)) & 15);
}

void nd_duration_range(uint32_t b, uint64_t *first, uint64_t *width)
{
    if (b < 64) {
        *first = b;
        *width = 1;
        return;
    }
    uint32_t e = (b - 64) / 16 + 6, s = (b - 64) % 16;
    *width = 1ull << (e - 4);
    *first = (1ull << e) + s * *width;
}

uint64_t nd_duration_flows(const nd_class_stats *s)
{
    uint64_t n = 0;
    for (int b = 0; b < ND_DURATION_HIST; b++) n += s->duration_hist[b];
    return n;
}

double nd_duration_quantile(const nd_class_stats *s, double q)
{
    uint64_t n = nd_duration_flows(s), first, width;
    if (!n) return 0;
    /* the smallest bucket whose cumulative count reaches q of the flows (at least one) */
    double want = q * (double)n, cum = 0;
    if (want < 1) want = 1;
    uint32_t b = 0;
    for (; b < ND_DURATION_HIST - 1; b++) {
        cum += (double)s->duration_hist[b];
        if (cum >= want) break;
    }
    nd_duration_range(b, &first, &width);
    return (double)first + (double)(width - 1) / 2;
}

/* ------------------------------------------------------------------------------------ */
/* Building                                                                             */
/* ------------------------------------------------------------------------------------ */

/* Names end up in CSV headers and terminal output: printable, no separators or quotes
 * for channels (they make up column names), no control characters for classes. */
static int name_ok(const char *s, size_t max, int channel)
{
    size_t n = strnlen(s, max);
    if (n == 0 || n >= max) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return 0;
        if (channel && (c == ',' || c == '"' || c == ' ')) return 0;
    }
    return 1;
}

nd_dataset *nd_dataset_new(uint32_t C, const char *const *names, uint32_t L, uint64_t bin_ns)
{
    if (C == 0 || C > ND_MAX_CHANNELS || L == 0 || L > ND_MAX_BINS || bin_ns == 0 || !names)
        return NULL;
    for (uint32_t c = 0; c < C; c++) {
        if (!names[c] || !name_ok(names[c], ND_NAME_MAX, 1)) return NULL;
        for (uint32_t k = 0; k < c; k++)
            if (!strcmp(names[c], names[k])) return NULL;
    }
    nd_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->n_channels = C;
    for (uint32_t c = 0; c < C; c++) strcpy(ds->channel_names[c], names[c]);
    ds->L = L;
    ds->bin_ns = bin_ns;
    return ds;
}

nd_dataset *nd_dataset_new_like(const nd_dataset *h)
{
    const char *names[ND_MAX_CHANNELS];
    for (uint32_t c = 0; c < h->n_channels; c++) names[c] = h->channel_names[c];
    nd_dataset *ds = nd_dataset_new(h->n_channels, names, h->L, h->bin_ns);
    for (uint32_t k = 0; ds && k < h->n_classes; k++) {
        if (nd_dataset_class(ds, h->class_names[k]) != (int)k) {
            nd_dataset_free(ds);
            return NULL;
        }
        ds->stats[k] = h->stats[k];
    }
    return ds;
}

void nd_dataset_free(nd_dataset *ds)
{
    if (!ds) return;
    free(ds->class_names);
    free(ds->stats);
    free(ds->values);
    free(ds->labels);
    free(ds->groups);
    free(ds->counters);
    free(ds->config_yaml);
    free(ds);
}

int nd_dataset_class(nd_dataset *ds, const char *name)
{
    if (!name || !name_ok(name, ND_NAME_MAX, 0)) return -1;
    for (uint32_t k = 0; k < ds->n_classes; k++)
        if (!strcmp(ds->class_names[k], name)) return (int)k;
    if (ds->n_classes >= ND_MAX_CLASSES) return -1;
    /* The arrays hold the next power of two >= n_classes entries (implied, no field):
     * they grow only when n_classes is 0 or a power of two. A class costs ~30 KB of
     * statistics, so growing one by one would copy O(n^2) of them. */
    uint32_t n = ds->n_classes;
    if ((n & (n - 1)) == 0) {
        uint32_t cap = n ? 2 * n : 1;
        char(*names)[ND_NAME_MAX] = realloc(ds->class_names, cap * sizeof *names);
        if (!names) return -1;
        ds->class_names = names;
        nd_class_stats *st = realloc(ds->stats, cap * sizeof *st);
        if (!st) return -1;
        ds->stats = st;
    }
    memset(&ds->stats[n], 0, sizeof *ds->stats);
    strcpy(ds->class_names[n], name);
    ds->n_classes = n + 1;
    return (int)n;
}

static size_t window_floats(const nd_dataset *ds) { return (size_t)ds->n_channels * ds->L; }

/* Makes room for cap windows; the three arrays grow together. */
static int reserve(nd_dataset *ds, uint64_t cap)
{
    size_t wf = window_floats(ds);
    if (cap > SIZE_MAX / sizeof(float) / wf) return -ENOMEM;
    float *v = realloc(ds->values, (size_t)cap * wf * sizeof *v);
    if (!v) return -ENOMEM;
    ds->values = v;
    uint16_t *l = realloc(ds->labels, (size_t)cap * sizeof *l);
    if (!l) return -ENOMEM;
    ds->labels = l;
    uint64_t *g = realloc(ds->groups, (size_t)cap * sizeof *g);
    if (!g) return -ENOMEM;
    ds->groups = g;
    ds->cap_windows = cap;
    return 0;
}

int nd_dataset_append(nd_dataset *ds, uint16_t label, uint64_t group, const float *values)
{
    ND_ASSERT(label < ds->n_classes);
    if (ds->n_windows == ds->cap_windows) {
        /* Doubling keeps appends amortised O(1) for captures of millions of windows. */
        uint64_t cap = ds->cap_windows ? ds->cap_windows * 2 : 64;
        int rc = reserve(ds, cap);
        if (rc) return rc;
    }
    size_t wf = window_floats(ds);
    memcpy(ds->values + (size_t)ds->n_windows * wf, values, wf * sizeof(float));
    ds->labels[ds->n_windows] = label;
    ds->groups[ds->n_windows] = group;
    ds->n_windows++;
    return 0;
}

int nd_dataset_count(nd_dataset *ds, const char *name, uint64_t v)
{
    char key[COUNTER_NAME] = {0}; /* all of it is copied below, and written to files */
    snprintf(key, sizeof key, "%s", name);
    for (uint32_t i = 0; i < ds->n_counters; i++)
        if (!strcmp(ds->counters[i].name, key)) {
            ds->counters[i].value += v;
            return 0;
        }
    nd_counter *c = realloc(ds->counters, (ds->n_counters + 1) * sizeof *c);
    if (!c) return -ENOMEM;
    ds->counters = c;
    memset(&c[ds->n_counters], 0, sizeof *c);
    memcpy(c[ds->n_counters].name, key, sizeof key);
    c[ds->n_counters].value = v;
    ds->n_counters++;
    return 0;
}

uint64_t nd_dataset_counter(const nd_dataset *ds, const char *name)
{
    for (uint32_t i = 0; i < ds->n_counters; i++)
        if (!strncmp(ds->counters[i].name, name, COUNTER_NAME)) return ds->counters[i].value;
    return 0;
}

int nd_dataset_set_config(nd_dataset *ds, const char *yaml)
{
    char *copy = NULL;
    if (yaml && *yaml && !(copy = strdup(yaml))) return -ENOMEM;
    free(ds->config_yaml);
    ds->config_yaml = copy;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Writing                                                                              */
/* ------------------------------------------------------------------------------------ */

/* Writes n fixed-size records produced by enc(ds, i, rec) through a bounded buffer, so
 * that no section needs a second copy of the dataset in memory. */
typedef void (*rec_encoder)(const nd_dataset *ds, uint64_t i, unsigned char *rec);

static int write_records(ndf_writer *w, uint32_t tag, const nd_dataset *ds, uint64_t n,
                         size_t rec_size, rec_encoder enc, const void *prefix,
                         size_t prefix_len, nd_error *e)
{
    size_t per = rec_size >= (1u << 16) ? 1 : (1u << 16) / rec_size;
    unsigned char *buf = malloc(per * rec_size);
    if (!buf) return nd_error_set(e, -ENOMEM, "out of memory");
    int rc = ndf_section_begin(w, tag, e);
    if (!rc && prefix_len) rc = ndf_section_write(w, prefix, prefix_len, e);
    for (uint64_t i = 0; !rc && i < n;) {
        size_t k = 0;
        for (; k < per && i < n; k++, i++) enc(ds, i, buf + k * rec_size);
        rc = ndf_section_write(w, buf, k * rec_size, e);
    }
    if (!rc) rc = ndf_section_end(w, e);
    free(buf);
    return rc;
}

static void enc_class(const nd_dataset *ds, uint64_t i, unsigned char *rec)
{
    memset(rec, 0, ND_NAME_MAX);
    strcpy((char *)rec, ds->class_names[i]);
}

static void enc_stats(const nd_dataset *ds, uint64_t i, unsigned char *rec)
{
    nd_stats_encode(rec, &ds->stats[i]);
}

static void enc_window(const nd_dataset *ds, uint64_t i, unsigned char *rec)
{
    size_t wf = window_floats(ds);
    const float *v = ds->values + (size_t)i * wf;
    for (size_t k = 0; k < wf; k++) nd_put_f32(rec + 4 * k, v[k]);
}

static void enc_label(const nd_dataset *ds, uint64_t i, unsigned char *rec)
{
    nd_put_u16(rec, ds->labels[i]);
}

static void enc_group(const nd_dataset *ds, uint64_t i, unsigned char *rec)
{
    nd_put_u64(rec, ds->groups[i]);
}

static void enc_counter(const nd_dataset *ds, uint64_t i, unsigned char *rec)
{
    memset(rec, 0, COUNTER_REC);
    memcpy(rec, ds->counters[i].name, COUNTER_NAME - 1); /* always NUL-terminated */
    nd_put_u64(rec + COUNTER_NAME, ds->counters[i].value);
}

int nd_dataset_write_sections(const nd_dataset *ds, ndf_writer *w, int with_windows,
                              nd_error *e)
{
    uint64_t n = with_windows ? ds->n_windows : 0;
    unsigned char meta[META_FIXED + ND_MAX_CHANNELS * ND_NAME_MAX] = {0};
    nd_put_u32(meta, ds->n_channels);
    nd_put_u32(meta + 4, ds->L);
    nd_put_u64(meta + 8, ds->bin_ns);
    nd_put_u64(meta + 16, n);
    nd_put_u32(meta + 24, ds->n_classes);
    for (uint32_t c = 0; c < ds->n_channels; c++)
        strcpy((char *)meta + META_FIXED + c * ND_NAME_MAX, ds->channel_names[c]);
    size_t meta_len = META_FIXED + (size_t)ds->n_channels * ND_NAME_MAX;

    unsigned char stat_hdr[8] = {0};
    size_t rec = nd_stats_record_bytes();
    nd_put_u32(stat_hdr, (uint32_t)rec);
    nd_put_u32(stat_hdr + 4, STAT_LAYOUT);

    const char *conf = ds->config_yaml ? ds->config_yaml : "";
    int rc = ndf_write_section(w, TAG_META, meta, meta_len, e);
    if (!rc)
        rc = write_records(w, TAG_CLAS, ds, ds->n_classes, ND_NAME_MAX, enc_class, NULL, 0, e);
    if (!rc) rc = write_records(w, TAG_STAT, ds, ds->n_classes, rec, enc_stats, stat_hdr, 8, e);
    if (!rc)
        rc = write_records(w, TAG_VALS, ds, n, window_floats(ds) * 4, enc_window, NULL, 0, e);
    if (!rc) rc = write_records(w, TAG_LABL, ds, n, 2, enc_label, NULL, 0, e);
    if (!rc) rc = write_records(w, TAG_GRUP, ds, n, 8, enc_group, NULL, 0, e);
    if (!rc)
        rc = write_records(w, TAG_CNTR, ds, ds->n_counters, COUNTER_REC, enc_counter, NULL, 0,
                           e);
    if (!rc) rc = ndf_write_section(w, TAG_CONF, conf, strlen(conf), e);
    return rc;
}

int nd_dataset_save(const nd_dataset *ds, const char *path, nd_error *e)
{
    nd_error local;
    if (!e) e = &local;
    ndf_writer *w = ndf_writer_open(path, NDF_KIND_DATASET, e);
    if (!w) return e->code;
    int rc = nd_dataset_write_sections(ds, w, 1, e);
    if (rc) {
        ndf_writer_abort(w);
        return rc;
    }
    return ndf_writer_commit(w, e);
}

/* ------------------------------------------------------------------------------------ */
/* Reading                                                                              */
/* ------------------------------------------------------------------------------------ */

/* Fetches a required section and checks its exact length. */
static int section(const ndf_reader *r, uint32_t tag, uint64_t want, const unsigned char **p,
                   nd_error *e)
{
    const void *d;
    size_t len;
    int rc = ndf_find(r, tag, &d, &len, e);
    if (rc) return rc;
    char t[5];
    ndf_tag_str(tag, t);
    if (len != want)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section %s is %zu bytes, expected %llu from the META counts",
                            ndf_path(r), t, len, (unsigned long long)want);
    *p = d;
    return 0;
}

/* A fixed-width name field: NUL-terminated inside the field and valid. */
static int name_field(const ndf_reader *r, const unsigned char *f, size_t width, int channel,
                      const char *what, uint64_t i, char *out, nd_error *e)
{
    if (!memchr(f, 0, width))
        return nd_error_set(e, ND_EFORMAT, "%s: %s %llu: name is not NUL-terminated",
                            ndf_path(r), what, (unsigned long long)i);
    if (!name_ok((const char *)f, width, channel))
        return nd_error_set(e, ND_EFORMAT, "%s: %s %llu: empty name or invalid characters",
                            ndf_path(r), what, (unsigned long long)i);
    strcpy(out, (const char *)f);
    return 0;
}

static int decode(const ndf_reader *r, nd_dataset **out, nd_error *e)
{
    const char *p = ndf_path(r);
    const unsigned char *d;
    const void *mv;
    size_t mlen;
    int rc = ndf_find(r, TAG_META, &mv, &mlen, e);
    if (rc) return rc;
    d = mv;
    if (mlen < META_FIXED)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section META is %zu bytes, expected at least %d", p, mlen,
                            META_FIXED);
    uint32_t C = nd_get_u32(d), L = nd_get_u32(d + 4), K = nd_get_u32(d + 24);
    uint64_t bin_ns = nd_get_u64(d + 8), N = nd_get_u64(d + 16);
    if (C == 0 || C > ND_MAX_CHANNELS)
        return nd_error_set(e, ND_EFORMAT, "%s: META: %u channels, expected 1..%d", p, C,
                            ND_MAX_CHANNELS);
    if (L == 0 || L > ND_MAX_BINS)
        return nd_error_set(e, ND_EFORMAT, "%s: META: %u bins per window, expected 1..%d", p, L,
                            ND_MAX_BINS);
    if (bin_ns == 0) return nd_error_set(e, ND_EFORMAT, "%s: META: bin width is 0", p);
    if (K > ND_MAX_CLASSES)
        return nd_error_set(e, ND_EFORMAT, "%s: META: %u classes, at most %d", p, K,
                            ND_MAX_CLASSES);
    if (mlen != META_FIXED + (size_t)C * ND_NAME_MAX)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section META is %zu bytes, expected %zu for %u channels", p,
                            mlen, META_FIXED + (size_t)C * ND_NAME_MAX, C);
    /* N comes from the file: bound it by the VALS length before anything is allocated. */
    uint64_t wbytes = (uint64_t)C * L * 4;
    if (N > UINT64_MAX / wbytes || N > SIZE_MAX / wbytes)
        return nd_error_set(e, ND_EFORMAT, "%s: META: %llu windows cannot fit any file", p,
                            (unsigned long long)N);
    const unsigned char *clas = NULL, *stat, *vals = NULL, *labl = NULL, *grup = NULL;
    if ((rc = section(r, TAG_CLAS, (uint64_t)K * ND_NAME_MAX, &clas, e))) return rc;
    if ((rc = ndf_find(r, TAG_STAT, &mv, &mlen, e))) return rc;
    stat = mv;
    if (mlen < 8)
        return nd_error_set(e, ND_EFORMAT, "%s: section STAT is %zu bytes, expected at least 8",
                            p, mlen);
    uint32_t layout = nd_get_u32(stat + 4);
    if (layout > STAT_LAYOUT)
        return nd_error_set(e, ND_EVERSION,
                            "%s: STAT record layout %u, this build reads layouts up to %u: the "
                            "file comes from a newer netdiffus version",
                            p, layout, STAT_LAYOUT);
    size_t rec = stats_record_size(layout);
    if (nd_get_u32(stat) != rec)
        return nd_error_set(e, ND_EVERSION,
                            "%s: STAT records are %u bytes, this build reads %zu for layout "
                            "%u: the file comes from another netdiffus version",
                            p, nd_get_u32(stat), rec, layout);
    if ((rc = section(r, TAG_STAT, 8 + (uint64_t)K * rec, &stat, e))) return rc;
    if ((rc = section(r, TAG_VALS, N * wbytes, &vals, e))) return rc;
    if ((rc = section(r, TAG_LABL, N * 2, &labl, e))) return rc;
    if ((rc = section(r, TAG_GRUP, N * 8, &grup, e))) return rc;
    const void *cv, *fv;
    size_t clen, flen;
    if ((rc = ndf_find(r, TAG_CNTR, &cv, &clen, e))) return rc;
    if (clen % COUNTER_REC)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section CNTR is %zu bytes, not a multiple of %d", p, clen,
                            COUNTER_REC);
    if ((rc = ndf_find(r, TAG_CONF, &fv, &flen, e))) return rc;
    if (memchr(fv, 0, flen))
        return nd_error_set(e, ND_EFORMAT, "%s: section CONF holds a NUL byte", p);

    char names[ND_MAX_CHANNELS][ND_NAME_MAX];
    const char *np[ND_MAX_CHANNELS];
    for (uint32_t c = 0; c < C; c++) {
        rc = name_field(r, d + META_FIXED + c * ND_NAME_MAX, ND_NAME_MAX, 1, "channel", c,
                        names[c], e);
        if (rc) return rc;
        np[c] = names[c];
        for (uint32_t k = 0; k < c; k++)
            if (!strcmp(names[c], names[k]))
                return nd_error_set(e, ND_EFORMAT, "%s: channel name '%s' appears twice", p,
                                    names[c]);
    }
    nd_dataset *ds = nd_dataset_new(C, np, L, bin_ns);
    if (!ds) return nd_error_set(e, -ENOMEM, "%s: out of memory", p);
    *out = ds;

    for (uint32_t k = 0; k < K; k++) {
        char name[ND_NAME_MAX];
        if ((rc = name_field(r, clas + (size_t)k * ND_NAME_MAX, ND_NAME_MAX, 0, "class", k,
                             name, e)))
            return rc;
        int idx = nd_dataset_class(ds, name);
        if (idx < 0) return nd_error_set(e, -ENOMEM, "%s: out of memory", p);
        if ((uint32_t)idx != k)
            return nd_error_set(e, ND_EFORMAT, "%s: class name '%s' appears twice", p, name);
        stat_io io = {.r = stat + 8 + (size_t)k * rec};
        stats_fields(&io, &ds->stats[k], layout);
    }
    if (N && (rc = reserve(ds, N))) return nd_error_set(e, rc, "%s: out of memory", p);
    size_t wf = (size_t)C * L;
    for (uint64_t i = 0; i < N; i++) {
        uint16_t lab = nd_get_u16(labl + 2 * i);
        if (lab >= K)
            return nd_error_set(e, ND_EFORMAT,
                                "%s: window %llu has class %u, but there are %u classes", p,
                                (unsigned long long)i, lab, K);
        ds->labels[i] = lab;
        ds->groups[i] = nd_get_u64(grup + 8 * i);
    }
    for (size_t i = 0; i < (size_t)N * wf; i++) {
        float v = nd_get_f32(vals + 4 * i);
        /* bytes or packets per bin: a NaN, an infinity or a negative count would pass
         * every later stage silently (no packets, "nan" in a CSV) */
        if (!(v >= 0.0f) || !isfinite(v))
            return nd_error_set(e, ND_EFORMAT,
                                "%s: section VALS: window %zu, channel %s, bin %zu holds %g, "
                                "expected a finite value >= 0",
                                p, i / wf, ds->channel_names[(i / L) % C], i % L, (double)v);
        ds->values[i] = v;
    }
    ds->n_windows = N;

    const unsigned char *cp = cv;
    for (size_t i = 0; i < clen / COUNTER_REC; i++) {
        char name[COUNTER_NAME];
        if ((rc = name_field(r, cp + i * COUNTER_REC, COUNTER_NAME, 0, "counter", i, name, e)))
            return rc;
        if (nd_dataset_count(ds, name, nd_get_u64(cp + i * COUNTER_REC + COUNTER_NAME)))
            return nd_error_set(e, -ENOMEM, "%s: out of memory", p);
    }
    if (flen) {
        char *yaml = strndup(fv, flen);
        if (!yaml) return nd_error_set(e, -ENOMEM, "%s: out of memory", p);
        ds->config_yaml = yaml;
    }
    return 0;
}

nd_dataset *nd_dataset_from_container(const ndf_reader *r, nd_error *e)
{
    nd_dataset *ds = NULL;
    if (decode(r, &ds, e)) {
        nd_dataset_free(ds);
        return NULL;
    }
    return ds;
}

nd_dataset *nd_dataset_load(const char *path, nd_error *e)
{
    ndf_reader *r = ndf_open(path, NDF_KIND_DATASET, e);
    if (!r) return NULL;
    nd_dataset *ds = nd_dataset_from_container(r, e);
    ndf_close(r);
    return ds;
}
