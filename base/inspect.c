/*
 * inspect.c — a summary of a dataset (.ndd) or model (.ndm) container, for a person and
 * as JSON: `netdiffus inspect [--json] FILE`. Container header and section table for any
 * kind, then what the dataset sections say (classes, windows, channels, counters, replay
 * statistics).
 * Model-specific lines are the model module's (cmd_inspect.c calls it by kind).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ndfile_impl.h"

/* fprintf to out, nothing when out is NULL (JSON only). */
static void say(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(FILE *out, const char *fmt, ...)
{
    if (!out) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
}

/* "1s", "250ms", "1.5s": ns as a person reads them. */
static void fmt_ns(uint64_t ns, char *buf, size_t len)
{
    static const struct {
        uint64_t div;
        const char *unit;
    } u[] = {{3600 * ND_NS_PER_SEC, "h"},
             {60 * ND_NS_PER_SEC, "m"},
             {ND_NS_PER_SEC, "s"},
             {1000000, "ms"},
             {1000, "us"},
             {1, "ns"}};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        if (ns >= u[i].div || u[i].div == 1) {
            snprintf(buf, len, "%.6g%s", (double)ns / (double)u[i].div, u[i].unit);
            return;
        }
}

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* Mean frame size of one direction; the last histogram bucket counts as 1518 bytes. */
static int mean_size(const uint64_t *hist, double *mean, uint64_t *packets)
{
    double sum = 0;
    uint64_t n = 0;
    for (int b = 0; b < ND_SIZE_HIST; b++) {
        sum += (double)b * (double)hist[b];
        n += hist[b];
    }
    *packets = n;
    *mean = n ? sum / (double)n : 0;
    return n > 0;
}

/* The traffic statistics of one class as fields of j (none: nothing). */
static void stats_json(nd_json *j, const nd_class_stats *s)
{
    nd_json_u64(j, "flows", s->flows);
    nd_json *l4 = nd_json_obj(j, "l4_flows");
    nd_json_u64(l4, "tcp", s->l4_flows[ND_L4_TCP]);
    nd_json_u64(l4, "udp", s->l4_flows[ND_L4_UDP]);
    nd_json_u64(l4, "other", s->l4_flows[ND_L4_OTHER]);
    nd_json_u64(j, "ipv6_flows", s->ipv6_flows);
    double rate = nd_arrival_rate(s);
    nd_json_num(j, "flows_per_s", rate > 0 ? rate : NAN);
    nd_json *ports = nd_json_arr(j, "top_ports");
    for (int i = 0; i < ND_PORT_TOP && s->port_count[i]; i++) {
        nd_json *p = nd_json_obj(ports, NULL);
        nd_json_u64(p, "port", s->port[i]);
        nd_json_u64(p, "flows", s->port_count[i]);
    }
    uint64_t ended = nd_duration_flows(s);
    nd_json *dur = nd_json_obj(j, "duration_bins");
    nd_json_u64(dur, "flows", ended);
    nd_json_num(dur, "mean", ended ? (double)s->duration_bins / (double)ended : NAN);
    nd_json_num(dur, "p50", ended ? nd_duration_quantile(s, 0.5) : NAN);
    nd_json_num(dur, "p90", ended ? nd_duration_quantile(s, 0.9) : NAN);
    nd_json_num(dur, "max", ended ? nd_duration_quantile(s, 1) : NAN);
    static const char *const dir[2] = {"down", "up"};
    for (int d = 0; d < 2; d++) {
        double mean;
        uint64_t n;
        nd_json *o = nd_json_obj(j, dir[d]);
        int any = mean_size(s->size_hist[d], &mean, &n);
        nd_json_u64(o, "packets", n);
        nd_json_num(o, "mean_bytes", any ? mean : NAN);
    }
}

static void print_stats(FILE *out, const nd_class_stats *s)
{
    static const nd_class_stats none;
    if (!memcmp(s, &none, sizeof none)) {
        say(out, "      no traffic statistics (imported series, or no flows)\n");
        return;
    }
    uint64_t l4 = s->l4_flows[0] + s->l4_flows[1] + s->l4_flows[2];
    say(out, "      flows %llu", (unsigned long long)s->flows);
    if (l4)
        say(out, " (tcp %.0f%%, udp %.0f%%, other %.0f%%; ipv6 %.0f%%)",
            pct(s->l4_flows[ND_L4_TCP], l4), pct(s->l4_flows[ND_L4_UDP], l4),
            pct(s->l4_flows[ND_L4_OTHER], l4), pct(s->ipv6_flows, l4));
    double rate = nd_arrival_rate(s);
    if (rate > 0)
        say(out, ", %.3g flows/s within %llu input(s)", rate,
            (unsigned long long)s->arrival_inputs);
    else if (s->flows && !s->arrival_inputs)
        say(out, ", arrivals not measured per input (an older file: capture it again)");
    say(out, "\n");

    uint64_t ended = nd_duration_flows(s);
    if (ended)
        say(out,
            "      duration (bins) of %llu ended flows: mean %.1f, median %.0f, p90 %.0f, "
            "max %.0f\n",
            (unsigned long long)ended, (double)s->duration_bins / (double)ended,
            nd_duration_quantile(s, 0.5), nd_duration_quantile(s, 0.9),
            nd_duration_quantile(s, 1));
    else if (s->flows)
        say(out, "      flow durations not measured (an older file: capture it again)\n");

    uint64_t ports = 0;
    for (int i = 0; i < ND_PORT_TOP; i++) ports += s->port_count[i];
    if (ports) {
        say(out, "      top ports");
        for (int i = 0; i < 5 && i < ND_PORT_TOP && s->port_count[i]; i++)
            say(out, " %u (%.0f%%)", s->port[i], pct(s->port_count[i], ports));
        say(out, "\n");
    }
    static const char *const dir[2] = {"down", "up"};
    for (int d = 0; d < 2; d++) {
        double mean;
        uint64_t n;
        if (mean_size(s->size_hist[d], &mean, &n))
            say(out, "      %-4s %llu packets, mean %.1f bytes\n", dir[d],
                (unsigned long long)n, mean);
    }
}

void nd_dataset_json(const nd_dataset *ds, nd_json *o)
{
    nd_json_u64(o, "windows", ds->n_windows);
    nd_json_u64(o, "L", ds->L);
    nd_json_u64(o, "bin_ns", ds->bin_ns);
    nd_json *ch = nd_json_arr(o, "channels");
    for (uint32_t c = 0; c < ds->n_channels; c++) nd_json_str(ch, NULL, ds->channel_names[c]);
    uint64_t *per = calloc(ds->n_classes ? ds->n_classes : 1, sizeof *per);
    nd_json *cls = per ? nd_json_obj(o, "classes") : NULL;
    for (uint64_t i = 0; per && i < ds->n_windows; i++) per[ds->labels[i]]++;
    for (uint32_t k = 0; cls && k < ds->n_classes; k++)
        nd_json_u64(cls, ds->class_names[k], per[k]);
    free(per);
    nd_json *cnt = nd_json_obj(o, "counters");
    for (uint32_t i = 0; i < ds->n_counters; i++)
        nd_json_u64(cnt, ds->counters[i].name, ds->counters[i].value);
}

static int print_dataset(const ndf_reader *r, FILE *out, nd_json *js, nd_error *e)
{
    nd_error local;
    if (!e) e = &local;
    nd_dataset *ds = nd_dataset_from_container(r, e);
    if (!ds) return e->code;
    char bin[32], span[32];
    fmt_ns(ds->bin_ns, bin, sizeof bin);
    /* Widened: L * bin_ns can pass 2^64 only for absurd bins, but must not wrap then. */
    double span_ns = (double)ds->L * (double)ds->bin_ns;
    fmt_ns(span_ns < 1.8e19 ? (uint64_t)span_ns : UINT64_MAX, span, sizeof span);
    say(out, "windows: %llu, L = %u bins of %s (%s per window), C = %u channels:",
        (unsigned long long)ds->n_windows, ds->L, bin, span, ds->n_channels);
    for (uint32_t c = 0; c < ds->n_channels; c++) say(out, " %s", ds->channel_names[c]);
    say(out, "\n");

    uint64_t *per = calloc(ds->n_classes ? ds->n_classes : 1, sizeof *per);
    if (!per) {
        nd_dataset_free(ds);
        return nd_error_set(e, -ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < ds->n_windows; i++) per[ds->labels[i]]++;
    say(out, "classes: %u\n", ds->n_classes);
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        say(out, "  %-24s %10llu windows (%.1f%%)\n", ds->class_names[k],
            (unsigned long long)per[k], pct(per[k], ds->n_windows));
        print_stats(out, &ds->stats[k]);
    }
    free(per);
    if (ds->n_counters) {
        say(out, "counters:\n");
        for (uint32_t i = 0; i < ds->n_counters; i++)
            say(out, "  %-40s %llu\n", ds->counters[i].name,
                (unsigned long long)ds->counters[i].value);
    }
    if (ds->config_yaml)
        say(out, "config: %zu bytes of YAML embedded\n", strlen(ds->config_yaml));
    else say(out, "config: none embedded\n");
    if (js) {
        nd_dataset_json(ds, js);
        nd_json *st = nd_json_obj(js, "traffic");
        for (uint32_t k = 0; k < ds->n_classes; k++)
            stats_json(nd_json_obj(st, ds->class_names[k]), &ds->stats[k]);
        nd_json_u64(js, "config_bytes", ds->config_yaml ? strlen(ds->config_yaml) : 0);
    }
    nd_dataset_free(ds);
    return 0;
}

int nd_inspect_reader(const ndf_reader *r, FILE *out, nd_json *js, nd_error *e)
{
    uint32_t kind = ndf_kind(r);
    char k[5];
    ndf_tag_str(kind, k);
    const char *what = kind == NDF_KIND_DATASET ? "dataset"
                       : kind == NDF_KIND_MODEL ? "model"
                                                : "unknown kind";
    say(out, "%s: netdiffus %s file (kind %s), format version %u, %llu bytes\n", ndf_path(r),
        what, k, ndf_version(r), (unsigned long long)ndf_file_size(r));
    nd_json_str(js, "file", ndf_path(r));
    nd_json_str(js, "kind", what);
    nd_json_u64(js, "version", ndf_version(r));
    nd_json_u64(js, "bytes", ndf_file_size(r));
    nd_json *secs = nd_json_arr(js, "sections");
    say(out, "sections: %zu\n", ndf_section_count(r));
    say(out, "  %-4s  %12s  %14s  %s\n", "tag", "offset", "bytes", "crc32");
    for (size_t i = 0; i < ndf_section_count(r); i++) {
        uint32_t tag, crc;
        uint64_t off;
        size_t len;
        ndf_section_at(r, i, &tag, NULL, &len);
        ndf_section_info(r, i, &off, &crc);
        char t[5];
        ndf_tag_str(tag, t);
        say(out, "  %-4s  %12llu  %14zu  0x%08x\n", t, (unsigned long long)off, len, crc);
        nd_json *sj = nd_json_obj(secs, NULL);
        nd_json_str(sj, "tag", t);
        nd_json_u64(sj, "offset", off);
        nd_json_u64(sj, "bytes", len);
        nd_json_u64(sj, "crc32", crc);
    }
    /* Models embed the dataset sections without windows: classes, channels, statistics. */
    switch (kind) {
    case NDF_KIND_DATASET:
    case NDF_KIND_MODEL: return print_dataset(r, out, js, e);
    default: return 0;
    }
}
