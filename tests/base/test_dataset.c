/*
 * test_dataset.c — nd_dataset: building (classes, windows, counters, config), a save/load
 * round trip of every field bit for bit, model-style files without windows, and each
 * inconsistency a damaged or hand-made file can hold, as a clear error.
 */
#include <errno.h>
#include <float.h>
#include <math.h>

#include "check.h"
#include "nd.h"
#include "tmpdir.h"

#define TAG(s) ND_FOURCC(s[0], s[1], s[2], s[3])

static const char *const chans[] = {"bytes_down", "bytes_up", "pkts_down"};

/* Deterministic filler (xorshift) so that every field gets a distinct value. */
static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fill_stats(nd_class_stats *s)
{
    for (int d = 0; d < 2; d++) {
        for (int i = 0; i < ND_SIZE_HIST; i++) s->size_hist[d][i] = next() % 1000;
        for (int i = 0; i < ND_IAT_HIST; i++) s->iat_hist[d][i] = next();
        for (int i = 0; i < 256; i++) s->ttl_hist[d][i] = next() % 7;
    }
    for (int i = 0; i < 3; i++) s->l4_flows[i] = next() % 100;
    s->ipv6_flows = next() % 10;
    for (int i = 0; i < ND_PORT_TOP; i++) {
        s->port[i] = (uint16_t)next();
        s->port_count[i] = next();
    }
    for (int i = 0; i < ND_MSS_TOP; i++) {
        s->mss[i] = (uint16_t)next();
        s->mss_count[i] = next();
    }
    s->flows = next();
    s->first_flow_ns = next();
    s->last_flow_ns = next();
    s->arrival_inputs = next() % 5;
    for (int i = 0; i < ND_ARRIVAL_HIST; i++) s->arrival_hist[i] = next() % 50;
    s->arrival_gap_ns = next();
    for (int h = 0; h < ND_DAY_HOURS; h++) {
        s->hour_flows[h] = next() % 100;
        s->hour_seen_ns[h] = next();
    }
    for (int b = 0; b < ND_DURATION_HIST; b++) s->duration_hist[b] = next() % 20;
    s->duration_bins = next();
}

static float special(uint64_t i)
{
    static const float v[] = {0.0f,    -0.0f,  1.0f,        1500.0f,    FLT_MIN / 4,
                              FLT_MAX, 1e-30f, 3.14159274f, 16777217.0f};
    if (i % 3) return v[i % (sizeof v / sizeof v[0])];
    uint32_t u = (uint32_t)next() & 0x7f7fffffu; /* finite, random bits */
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static nd_dataset *make(uint32_t C, uint32_t L, uint64_t N)
{
    nd_dataset *ds = nd_dataset_new(C, chans, L, 250 * 1000000ull);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "web"), 0);
    CHECK_EQ(nd_dataset_class(ds, "video, \"hd\""), 1);
    CHECK_EQ(nd_dataset_class(ds, "dns"), 2);
    CHECK_EQ(nd_dataset_class(ds, "web"), 0);
    for (uint32_t k = 0; k < ds->n_classes; k++) fill_stats(&ds->stats[k]);
    float *w = malloc(sizeof(float) * C * L);
    for (uint64_t i = 0; i < N; i++) {
        for (uint32_t k = 0; k < C * L; k++) w[k] = special(i * C * L + k);
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)(i % 3), (i / 4) | (1ull << 63), w), 0);
    }
    free(w);
    CHECK_EQ(nd_dataset_count(ds, "parse.truncated_ipv4", 5), 0);
    CHECK_EQ(nd_dataset_count(ds, "flow.evicted", 1), 0);
    CHECK_EQ(nd_dataset_count(ds, "parse.truncated_ipv4", 7), 0);
    CHECK_EQ(nd_dataset_set_config(ds, "capture:\n  bin: 250ms\n"), 0);
    return ds;
}

static void check_same(const nd_dataset *a, const nd_dataset *b, int windows)
{
    CHECK_EQ(a->n_channels, b->n_channels);
    for (uint32_t c = 0; c < a->n_channels; c++)
        CHECK_STR_EQ(a->channel_names[c], b->channel_names[c]);
    CHECK_EQ(a->L, b->L);
    CHECK_U64_EQ(a->bin_ns, b->bin_ns);
    CHECK_EQ(a->n_classes, b->n_classes);
    for (uint32_t k = 0; k < a->n_classes; k++) {
        CHECK_STR_EQ(a->class_names[k], b->class_names[k]);
        /* nd_class_stats has no padding (checked below), so bytes compare fields. */
        if (memcmp(&a->stats[k], &b->stats[k], sizeof a->stats[k]))
            CHECK_FAIL_("class %u: statistics differ after the round trip", k);
    }
    CHECK_U64_EQ(b->n_windows, windows ? a->n_windows : 0);
    if (windows && a->n_windows) {
        size_t wf = (size_t)a->n_channels * a->L;
        /* Bits, not values: -0.0 and denormals must survive. */
        CHECK(!memcmp(a->values, b->values, a->n_windows * wf * sizeof(float)));
        CHECK(!memcmp(a->labels, b->labels, a->n_windows * sizeof(uint16_t)));
        CHECK(!memcmp(a->groups, b->groups, a->n_windows * sizeof(uint64_t)));
    }
    CHECK_EQ(a->n_counters, b->n_counters);
    for (uint32_t i = 0; i < a->n_counters; i++) {
        CHECK_STR_EQ(a->counters[i].name, b->counters[i].name);
        CHECK_U64_EQ(a->counters[i].value, b->counters[i].value);
    }
    if (a->config_yaml || b->config_yaml) CHECK_STR_EQ(a->config_yaml, b->config_yaml);
}

static void test_build(void)
{
    /* Arguments that make no dataset. */
    const char *bad1[] = {"a,b"}, *bad2[] = {""}, *dup[] = {"x", "x"}, *sp[] = {"a b"};
    CHECK(!nd_dataset_new(0, chans, 8, 1));
    CHECK(!nd_dataset_new(ND_MAX_CHANNELS + 1, chans, 8, 1));
    CHECK(!nd_dataset_new(1, chans, 0, 1));
    CHECK(!nd_dataset_new(1, chans, ND_MAX_BINS + 1, 1));
    CHECK(!nd_dataset_new(1, chans, 8, 0));
    CHECK(!nd_dataset_new(1, bad1, 8, 1));
    CHECK(!nd_dataset_new(1, bad2, 8, 1));
    CHECK(!nd_dataset_new(2, dup, 8, 1));
    CHECK(!nd_dataset_new(1, sp, 8, 1));
    nd_dataset_free(NULL);

    nd_dataset *ds = nd_dataset_new(1, chans, 4, 1000);
    CHECK(ds);
    char longname[ND_NAME_MAX + 1];
    memset(longname, 'a', ND_NAME_MAX);
    longname[ND_NAME_MAX] = 0;
    CHECK_EQ(nd_dataset_class(ds, longname), -1);
    longname[ND_NAME_MAX - 1] = 0; /* 63 bytes: the longest name */
    CHECK_EQ(nd_dataset_class(ds, longname), 0);
    CHECK_EQ(nd_dataset_class(ds, ""), -1);
    CHECK_EQ(nd_dataset_class(ds, "tab\there"), -1);
    char name[32];
    for (int k = 1; k < ND_MAX_CLASSES; k++) {
        snprintf(name, sizeof name, "c%d", k);
        CHECK_EQ(nd_dataset_class(ds, name), k);
    }
    CHECK_EQ(nd_dataset_class(ds, "one too many"), -1);
    CHECK_EQ(nd_dataset_class(ds, "c7"), 7);

    /* Geometric growth over many appends keeps every window. */
    float w[4];
    for (uint32_t i = 0; i < 10000; i++) {
        for (int k = 0; k < 4; k++) w[k] = (float)(i * 4 + (uint32_t)k);
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)(i % ND_MAX_CLASSES), i, w), 0);
    }
    CHECK_U64_EQ(ds->n_windows, 10000);
    CHECK(ds->cap_windows >= 10000 && ds->cap_windows < 20000);
    for (uint32_t i = 0; i < 40000; i++) CHECK_EQ(ds->values[i], (float)i);
    CHECK_EQ(ds->labels[9999], 9999 % ND_MAX_CLASSES);

    /* Counters: created, summed, long names cut to 47 bytes. */
    CHECK_U64_EQ(nd_dataset_counter(ds, "x"), 0);
    nd_dataset_count(ds, "x", 2);
    nd_dataset_count(ds, "x", 3);
    CHECK_U64_EQ(nd_dataset_counter(ds, "x"), 5);
    nd_dataset_count(ds, "a.very.long.counter.name.that.goes.on.and.on.and.on", 1);
    CHECK_EQ(ds->n_counters, 2);
    CHECK_EQ(strlen(ds->counters[1].name), 47);
    CHECK_EQ(nd_dataset_set_config(ds, ""), 0);
    CHECK(!ds->config_yaml);
    nd_dataset_free(ds);
}

static void test_round_trip(void)
{
    /* Stats are compared as bytes: that needs a struct without padding. */
    size_t fields = sizeof(uint64_t) * (2 * ND_SIZE_HIST + 2 * ND_IAT_HIST + 2 * 256 + 3 + 1 +
                                        ND_PORT_TOP + ND_MSS_TOP + 3 + 1 + ND_ARRIVAL_HIST + 1 +
                                        2 * ND_DAY_HOURS + ND_DURATION_HIST + 1) +
                    sizeof(uint16_t) * (ND_PORT_TOP + ND_MSS_TOP);
    CHECK_EQ(sizeof(nd_class_stats), fields);

    nd_dataset *ds = make(3, 16, 301);
    const char *p = tmp_path("rt.ndd");
    nd_error e = {0};
    if (nd_dataset_save(ds, p, &e)) CHECK_FAIL_("save: %s", e.msg);
    nd_dataset *back = nd_dataset_load(p, &e);
    if (!back) CHECK_FAIL_("load: %s", e.msg);
    check_same(ds, back, 1);
    nd_dataset_free(back);

    /* An empty dataset (no classes, no windows, no config). */
    nd_dataset *empty = nd_dataset_new(1, chans, 1, 1);
    CHECK_EQ(nd_dataset_save(empty, p, &e), 0);
    back = nd_dataset_load(p, &e);
    CHECK(back);
    check_same(empty, back, 1);
    nd_dataset_free(back);
    nd_dataset_free(empty);

    /* Model-style: dataset sections without windows, next to sections of its own. */
    const char *m = tmp_path("rt.ndm");
    ndf_writer *w = ndf_writer_open(m, NDF_KIND_MODEL, &e);
    CHECK(w);
    CHECK_EQ(ndf_write_section(w, TAG("WGHT"), "weights", 7, &e), 0);
    CHECK_EQ(nd_dataset_write_sections(ds, w, 0, &e), 0);
    CHECK_EQ(ndf_writer_commit(w, &e), 0);
    ndf_reader *r = ndf_open(m, NDF_KIND_MODEL, &e);
    CHECK(r);
    back = nd_dataset_from_container(r, &e);
    if (!back) CHECK_FAIL_("from_container: %s", e.msg);
    check_same(ds, back, 0);
    nd_dataset_free(back);
    ndf_close(r);
    /* ...which is not a dataset file. */
    CHECK(!nd_dataset_load(m, &e));
    CHECK_EQ(e.code, ND_EFORMAT);
    CHECK_CONTAINS(e.msg, "expected a dataset file");
    nd_dataset_free(ds);
}

/* Copies container src to dst with section tag replaced by data/len (or dropped when
 * data is NULL), through the public writer: the result is a valid container whose
 * dataset content is what the test wants. */
static void rewrite(const char *src, const char *dst, const char *tag, const void *data,
                    size_t len)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open(src, 0, &e);
    if (!r) CHECK_FAIL_("%s", e.msg);
    ndf_writer *w = ndf_writer_open(dst, ndf_kind(r), &e);
    CHECK(w);
    for (size_t i = 0; i < ndf_section_count(r); i++) {
        uint32_t t;
        const void *d;
        size_t n;
        ndf_section_at(r, i, &t, &d, &n);
        if (t == TAG(tag)) {
            if (!data) continue;
            d = data;
            n = len;
        }
        CHECK_EQ(ndf_write_section(w, t, d, n, &e), 0);
    }
    CHECK_EQ(ndf_writer_commit(w, &e), 0);
    ndf_close(r);
}

/* A copy of section tag's payload from src, to be modified. */
static unsigned char *payload(const char *src, const char *tag, size_t *len)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open(src, 0, &e);
    CHECK(r);
    const void *d;
    CHECK_EQ(ndf_find(r, TAG(tag), &d, len, &e), 0);
    unsigned char *copy = malloc(*len + 64);
    memcpy(copy, d, *len);
    ndf_close(r);
    return copy;
}

static void expect_load_error(const char *path, int code, const char *text)
{
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(path, &e);
    if (ds) CHECK_FAIL_("%s: loaded, expected \"%s\"", path, text);
    if (e.code != code) CHECK_FAIL_("code %d, expected %d (%s)", e.code, code, e.msg);
    CHECK_CONTAINS(e.msg, text);
}

static void test_validation(void)
{
    nd_dataset *ds = make(2, 8, 10);
    const char *good = tmp_path("good.ndd"), *bad = tmp_path("bad.ndd");
    nd_error e = {0};
    CHECK_EQ(nd_dataset_save(ds, good, &e), 0);
    size_t n;
    unsigned char *d;

    /* META: counts out of range or inconsistent with the other sections. */
    struct {
        size_t off;
        int width;
        uint64_t value;
        int code;
        const char *text;
    } meta[] = {
        {0, 4, 0, ND_EFORMAT, "0 channels"},
        {0, 4, ND_MAX_CHANNELS + 1, ND_EFORMAT, "9 channels"},
        {4, 4, 0, ND_EFORMAT, "0 bins"},
        {4, 4, ND_MAX_BINS + 1, ND_EFORMAT, "65537 bins"},
        {4, 4, 9, ND_EFORMAT, "section VALS"},
        {8, 8, 0, ND_EFORMAT, "bin width is 0"},
        {16, 8, 11, ND_EFORMAT, "section VALS is 640 bytes, expected 704"},
        {16, 8, 1ull << 60, ND_EFORMAT, "cannot fit"},
        {16, 8, UINT64_MAX, ND_EFORMAT, "cannot fit"},
        {24, 4, 4, ND_EFORMAT, "section CLAS is 192 bytes, expected 256"},
        {24, 4, ND_MAX_CLASSES + 1, ND_EFORMAT, "1025 classes"},
    };
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        d = payload(good, "META", &n);
        if (meta[i].width == 4) nd_put_u32(d + meta[i].off, (uint32_t)meta[i].value);
        else nd_put_u64(d + meta[i].off, meta[i].value);
        rewrite(good, bad, "META", d, n);
        free(d);
        expect_load_error(bad, meta[i].code, meta[i].text);
    }
    d = payload(good, "META", &n);
    nd_put_u32(d, 1);
    rewrite(good, bad, "META", d, n);
    expect_load_error(bad, ND_EFORMAT, "section META is 160 bytes, expected 96 for 1 channels");
    rewrite(good, bad, "META", d, 20);
    expect_load_error(bad, ND_EFORMAT, "section META is 20 bytes, expected at least 32");
    free(d);

    /* Names: unterminated, empty, duplicated. */
    d = payload(good, "META", &n);
    memset(d + 32, 'a', ND_NAME_MAX);
    rewrite(good, bad, "META", d, n);
    expect_load_error(bad, ND_EFORMAT, "channel 0: name is not NUL-terminated");
    memcpy(d + 32, "same", 5);
    memcpy(d + 32 + ND_NAME_MAX, "same", 5);
    rewrite(good, bad, "META", d, n);
    expect_load_error(bad, ND_EFORMAT, "channel name 'same' appears twice");
    free(d);
    d = payload(good, "CLAS", &n);
    d[ND_NAME_MAX] = 0;
    rewrite(good, bad, "CLAS", d, n);
    expect_load_error(bad, ND_EFORMAT, "class 1: empty name");
    strcpy((char *)d + ND_NAME_MAX, "web");
    rewrite(good, bad, "CLAS", d, n);
    expect_load_error(bad, ND_EFORMAT, "class name 'web' appears twice");
    free(d);

    /* Labels beyond the classes. */
    d = payload(good, "LABL", &n);
    nd_put_u16(d + 2 * 3, 7);
    rewrite(good, bad, "LABL", d, n);
    expect_load_error(bad, ND_EFORMAT, "window 3 has class 7, but there are 3 classes");
    rewrite(good, bad, "LABL", d, n - 1);
    expect_load_error(bad, ND_EFORMAT, "section LABL is 19 bytes, expected 20");
    free(d);

    /* STAT from a build with another record layout; short STAT. */
    d = payload(good, "STAT", &n);
    nd_put_u32(d, 1234);
    rewrite(good, bad, "STAT", d, n);
    expect_load_error(bad, ND_EVERSION, "STAT records are 1234 bytes");
    rewrite(good, bad, "STAT", d, 4);
    expect_load_error(bad, ND_EFORMAT, "section STAT is 4 bytes");
    nd_put_u32(d, (uint32_t)nd_stats_record_bytes());
    nd_put_u32(d + 4, 3); /* a layout of a later build */
    rewrite(good, bad, "STAT", d, n);
    expect_load_error(bad, ND_EVERSION,
                      "STAT record layout 3, this build reads layouts up to 2");
    free(d);

    /* Layout 0 (before the arrivals, 29 880 bytes a record) still loads: the fields it
     * has, and arrivals left zero (arrival_inputs 0: replay says they are unknown). */
    {
        nd_dataset *ref = nd_dataset_load(good, &e);
        CHECK(ref);
        size_t rec = nd_stats_record_bytes(), old = 29880;
        d = payload(good, "STAT", &n);
        uint32_t K = ref->n_classes;
        unsigned char *o = calloc(1, 8 + K * old);
        CHECK(o);
        nd_put_u32(o, (uint32_t)old);
        for (uint32_t k = 0; k < K; k++) memcpy(o + 8 + k * old, d + 8 + k * rec, old);
        rewrite(good, bad, "STAT", o, 8 + K * old);
        nd_dataset *back = nd_dataset_load(bad, &e);
        CHECK(back);
        for (uint32_t k = 0; k < K; k++) {
            nd_class_stats want = ref->stats[k];
            want.arrival_inputs = want.arrival_gap_ns = 0;
            memset(want.arrival_hist, 0, sizeof want.arrival_hist);
            memset(want.hour_flows, 0, sizeof want.hour_flows);
            memset(want.hour_seen_ns, 0, sizeof want.hour_seen_ns);
            memset(want.duration_hist, 0, sizeof want.duration_hist);
            want.duration_bins = 0;
            CHECK(!memcmp(&back->stats[k], &want, sizeof want));
        }
        nd_put_u32(o, (uint32_t)rec); /* layout 0 with the size of layout 2 */
        rewrite(good, bad, "STAT", o, 8 + K * old);
        expect_load_error(bad, ND_EVERSION, "for layout 0");
        nd_dataset_free(back);
        free(o);

        /* Layout 1 (before the durations, 32 296 bytes): durations left zero. */
        old = 32296;
        o = calloc(1, 8 + K * old);
        CHECK(o);
        nd_put_u32(o, (uint32_t)old);
        nd_put_u32(o + 4, 1);
        for (uint32_t k = 0; k < K; k++) memcpy(o + 8 + k * old, d + 8 + k * rec, old);
        rewrite(good, bad, "STAT", o, 8 + K * old);
        back = nd_dataset_load(bad, &e);
        CHECK(back);
        for (uint32_t k = 0; k < K; k++) {
            nd_class_stats want = ref->stats[k];
            memset(want.duration_hist, 0, sizeof want.duration_hist);
            want.duration_bins = 0;
            CHECK(!memcmp(&back->stats[k], &want, sizeof want));
        }
        CHECK_EQ(rec, 40240);
        nd_dataset_free(back);
        nd_dataset_free(ref);
        free(o);
        free(d);
    }

    /* Counters: partial record, unterminated name. */
    d = payload(good, "CNTR", &n);
    rewrite(good, bad, "CNTR", d, n - 3);
    expect_load_error(bad, ND_EFORMAT, "not a multiple of 56");
    memset(d, 'x', 48);
    rewrite(good, bad, "CNTR", d, n);
    expect_load_error(bad, ND_EFORMAT, "counter 0: name is not NUL-terminated");
    free(d);

    /* CONF with a NUL; groups and values of the wrong size. */
    rewrite(good, bad, "CONF", "a\0b", 3);
    expect_load_error(bad, ND_EFORMAT, "section CONF holds a NUL byte");
    d = payload(good, "GRUP", &n);
    rewrite(good, bad, "GRUP", d, n + 8);
    expect_load_error(bad, ND_EFORMAT, "section GRUP is 88 bytes, expected 80");
    free(d);

    /* Values that are not counts: NaN, infinities, negative numbers (-0 is 0). */
    const float notcount[] = {NAN, INFINITY, -INFINITY, -1.0f, -1e-30f};
    for (size_t i = 0; i < sizeof notcount / sizeof notcount[0]; i++) {
        d = payload(good, "VALS", &n);
        nd_put_f32(d + 4 * (2 * 8 + 8 + 3), notcount[i]); /* window 1, channel 1, bin 3 */
        rewrite(good, bad, "VALS", d, n);
        free(d);
        expect_load_error(bad, ND_EFORMAT, "section VALS: window 1, channel ");
        expect_load_error(bad, ND_EFORMAT, ", bin 3 holds ");
        expect_load_error(bad, ND_EFORMAT, "expected a finite value >= 0");
    }
    d = payload(good, "VALS", &n);
    nd_put_f32(d, -0.0f);
    rewrite(good, bad, "VALS", d, n);
    free(d);
    nd_dataset *negzero = nd_dataset_load(bad, &e);
    if (!negzero) CHECK_FAIL_("-0: %s", e.msg);
    nd_dataset_free(negzero);

    /* Every required section missing in turn. */
    const char *req[] = {"META", "CLAS", "STAT", "VALS", "LABL", "GRUP", "CNTR", "CONF"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        rewrite(good, bad, req[i], NULL, 0);
        char want[64];
        snprintf(want, sizeof want, "missing section %s", req[i]);
        expect_load_error(bad, ND_EFORMAT, want);
    }
    /* Unknown sections are skipped: later versions may add some. */
    {
        ndf_reader *r = ndf_open(good, 0, &e);
        ndf_writer *w = ndf_writer_open(bad, NDF_KIND_DATASET, &e);
        for (size_t i = 0; i < ndf_section_count(r); i++) {
            uint32_t t;
            const void *p;
            size_t len;
            ndf_section_at(r, i, &t, &p, &len);
            CHECK_EQ(ndf_write_section(w, t, p, len, &e), 0);
            CHECK_EQ(ndf_write_section(w, TAG("XTRA"), "future", 6, &e), 0);
        }
        CHECK_EQ(ndf_writer_commit(w, &e), 0);
        ndf_close(r);
        nd_dataset *back = nd_dataset_load(bad, &e);
        if (!back) CHECK_FAIL_("%s", e.msg);
        check_same(ds, back, 1);
        nd_dataset_free(back);
    }

    /* Truncated at every section boundary and one byte either side. */
    ndf_reader *r = ndf_open(good, 0, &e);
    size_t total;
    unsigned char *bytes = read_bytes(good, &total);
    for (size_t i = 0; i < ndf_section_count(r); i++) {
        uint64_t off;
        ndf_section_info(r, i, &off, NULL);
        for (int delta = -1; delta <= 1; delta++) {
            write_bytes(bad, bytes, (size_t)((int64_t)off + delta));
            expect_load_error(bad, ND_ETRUNC, "truncated");
        }
    }
    write_bytes(bad, bytes, total - 1);
    expect_load_error(bad, ND_ETRUNC, "truncated");
    free(bytes);
    ndf_close(r);
    nd_dataset_free(ds);
}

int main(void)
{
    test_build();
    test_round_trip();
    test_validation();
    printf("dataset: ok\n");
    return 0;
}
