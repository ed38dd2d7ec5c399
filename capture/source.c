/*
 * source.c — packet sources behind one interface (capture_source_*): libpcap live capture
 * and the libpcap file reader (pcapng, and what source_file.c does not read in place)
 * here, classic pcap files in source_file.c, DPDK ports in source_dpdk.c; and capture_run, the
 * loop that drives sources into a capture context (what `netdiffus capture` runs).
 *
 * Live libpcap handles are non-blocking and waited on with poll() on the selectable fd: a
 * blocking pcap_next_ex() on a quiet interface can hang forever even with a timeout, and
 * the loop must see the stop flag.
 */
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "capture_impl.h"

typedef struct pcap_source {
    capture_source base;
    pcap_t *p;
    int fd;          /* selectable fd of a live handle, -1 for files */
    int nano;        /* timestamps in ns (else µs) */
    uint64_t errors; /* read errors (file: the rest of the file is lost) */
    /* Files are read in bursts so that the flow table can prefetch (capture_ctx_burst):
     * libpcap reuses its buffer for every packet, so the first `snap` bytes of each are
     * copied, as a live capture with that snaplen would keep them. */
    uint8_t *burst; /* (FILE_BURST, snap) */
    uint32_t snap;
    int pending; /* pcap_next_ex's end or error, held back until the burst is used */
} pcap_source;

#define FILE_BURST 32

static void fill_pkt(const pcap_source *ps, const struct pcap_pkthdr *h, const u_char *d,
                     capture_pkt *out)
{
    out->data = d;
    out->caplen = h->caplen;
    out->wirelen = h->len;
    /* tv_usec holds ns when the handle was opened with nanosecond precision. */
    out->ts_ns = (uint64_t)h->ts.tv_sec * ND_NS_PER_SEC +
                 (uint64_t)h->ts.tv_usec * (ps->nano ? 1 : 1000);
}

int capture_file_error(const capture_source *s, const char *why, nd_error *e)
{
    return nd_error_set(e, ND_ETRUNC,
                        "%s: after packet %" PRIu64 ": %s (reading stops here: the file is "
                        "damaged, cut short or uses a pcapng feature libpcap cannot read; "
                        "the packets before this point are kept)",
                        s->spec, s->received, why);
}

static int read_error(pcap_source *ps, int r, nd_error *e)
{
    capture_source *s = &ps->base;
    if (r == PCAP_ERROR_BREAK) return CAPTURE_END;
    ps->errors++;
    if (ps->fd < 0) return capture_file_error(s, pcap_geterr(ps->p), e);
    return nd_error_set(e, -EIO, "%s: %s", s->spec, pcap_geterr(ps->p));
}

static int file_rx(pcap_source *ps, capture_pkt *pkts, unsigned max, nd_error *e)
{
    if (ps->pending) return read_error(ps, ps->pending, e);
    if (max > FILE_BURST) max = FILE_BURST;
    unsigned n = 0;
    while (n < max) {
        struct pcap_pkthdr *h;
        const u_char *d;
        int r = pcap_next_ex(ps->p, &h, &d);
        if (r != 1) {
            if (!n) return read_error(ps, r, e);
            ps->pending = r;
            break;
        }
        uint8_t *copy = ps->burst + (size_t)n * ps->snap;
        uint32_t len = h->caplen < ps->snap ? h->caplen : ps->snap;
        memcpy(copy, d, len);
        fill_pkt(ps, h, copy, &pkts[n]);
        pkts[n].caplen = len;
        n++;
    }
    ps->base.received += n;
    return (int)n;
}

static int pcap_rx(capture_source *s, capture_pkt *pkts, unsigned max, int timeout_ms,
                   nd_error *e)
{
    pcap_source *ps = (pcap_source *)s;
    if (ps->fd < 0) return file_rx(ps, pkts, max, e);
    struct pcap_pkthdr *h;
    const u_char *d;
    int r = pcap_next_ex(ps->p, &h, &d);
    if (r == 0 && ps->fd >= 0 && timeout_ms > 0) {
        struct pollfd pfd = {.fd = ps->fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
            return nd_error_set(e, -errno, "%s: poll: %s", s->spec, strerror(errno));
        r = pcap_next_ex(ps->p, &h, &d);
    }
    if (r == 1) {
        fill_pkt(ps, h, d, &pkts[0]);
        s->received++;
        return 1;
    }
    if (r == 0) return 0;
    return read_error(ps, r, e);
}

static void pcap_src_stats(capture_source *s, capture_source_stats *st)
{
    pcap_source *ps = (pcap_source *)s;
    memset(st, 0, sizeof *st);
    st->received = s->received;
    st->errors = ps->errors;
    struct pcap_stat ks;
    if (ps->fd >= 0 && pcap_stats(ps->p, &ks) == 0) {
        st->dropped = ks.ps_drop;
        st->if_dropped = ks.ps_ifdrop;
    }
}

static void pcap_report(capture_source *s)
{
    capture_source_stats st;
    pcap_src_stats(s, &st);
    if (((pcap_source *)s)->fd >= 0)
        nd_info("%s: %" PRIu64 " packets, %" PRIu64
                " dropped by the kernel (buffer full), %" PRIu64 " dropped by the interface",
                s->spec, st.received, st.dropped, st.if_dropped);
    else nd_info("%s: %" PRIu64 " packets", s->spec, st.received);
}

static void pcap_src_close(capture_source *s)
{
    pcap_source *ps = (pcap_source *)s;
    if (ps->p) pcap_close(ps->p);
    free(ps->burst);
    free(ps);
}

static const capture_source_ops pcap_ops = {pcap_rx, pcap_src_stats, pcap_report,
                                            pcap_src_close};

capture_source *capture_libpcap_file_open(const char *spec, const char *path, FILE *f,
                                          const capture_opts *o, nd_error *e)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    /* Nanosecond precision: libpcap scales µs files up, so one unit serves both. */
    pcap_t *p =
        f ? pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, err)
          : pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) {
        int enoent = !f && errno == ENOENT;
        if (f) fclose(f);
        nd_error_set(e, enoent ? -ENOENT : ND_EFORMAT,
                     "%s: %s (expected a pcap or pcapng capture file)", spec, err);
        return NULL;
    }
    pcap_source *ps = calloc(1, sizeof *ps);
    if (ps) {
        ps->snap = o->snaplen ? o->snaplen : 262144;
        ps->burst = malloc((size_t)FILE_BURST * ps->snap);
    }
    if (!ps || !ps->burst) {
        pcap_close(p);
        free(ps);
        nd_error_set(e, -ENOMEM, "%s: out of memory", spec);
        return NULL;
    }
    ps->base.ops = &pcap_ops;
    ps->p = p;
    ps->fd = -1;
    ps->nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
    ps->base.linktype = pcap_datalink(p);
    return &ps->base;
}

static capture_source *pcap_iface_open(const char *spec, const char *name,
                                       const capture_opts *o, nd_error *e)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_create(name, err);
    if (!p) {
        nd_error_set(e, -ENODEV, "%s: %s", spec, err);
        return NULL;
    }
    pcap_set_snaplen(p, (int)o->snaplen);
    pcap_set_promisc(p, o->promisc);
    /* The timeout bounds how long the kernel holds a partly filled block (TPACKET_V3):
     * packets reach the flow table at most this late. */
    pcap_set_timeout(p, 100);
    if (o->buffer_size)
        pcap_set_buffer_size(p, o->buffer_size > INT32_MAX ? INT32_MAX : (int)o->buffer_size);
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO); /* µs when unsupported */
    int rc = pcap_activate(p);
    if (rc < 0) {
        const char *hint = rc == PCAP_ERROR_PERM_DENIED
                               ? " (capturing needs root or CAP_NET_RAW + CAP_NET_ADMIN)"
                           : rc == PCAP_ERROR_NO_SUCH_DEVICE
                               ? " (no such interface: see `ip link`)"
                               : "";
        nd_error_set(e, -EIO, "%s: %s%s", spec,
                     pcap_geterr(p)[0] ? pcap_geterr(p) : pcap_statustostr(rc), hint);
        pcap_close(p);
        return NULL;
    }
    if (rc > 0) nd_warn("%s: %s", spec, pcap_statustostr(rc));
    if (pcap_setnonblock(p, 1, err) < 0 || pcap_get_selectable_fd(p) < 0) {
        nd_error_set(e, -EIO, "%s: cannot poll this interface: %s", spec, err);
        pcap_close(p);
        return NULL;
    }
    pcap_source *ps = calloc(1, sizeof *ps);
    if (!ps) {
        pcap_close(p);
        nd_error_set(e, -ENOMEM, "%s: out of memory", spec);
        return NULL;
    }
    ps->base.ops = &pcap_ops;
    ps->p = p;
    ps->fd = pcap_get_selectable_fd(p);
    ps->nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
    ps->base.linktype = pcap_datalink(p);
    ps->base.live = 1;
    return &ps->base;
}

capture_source *capture_source_open(const char *spec, const capture_opts *o, nd_error *e)
{
    capture_source *s = NULL;
    if (!strncmp(spec, "pcap:", 5) && spec[5]) s = capture_file_open(spec, spec + 5, o, e);
    else if (!strncmp(spec, "iface:", 6) && spec[6]) s = pcap_iface_open(spec, spec + 6, o, e);
    else if (!strncmp(spec, "dpdk:", 5))
#if ND_HAVE_DPDK
        s = capture_dpdk_open(spec + 5, o, e);
#else
        nd_error_set(e, ND_EUSAGE, "source '%s': %s", spec, ND_NO_DPDK);
#endif
    else
        nd_error_set(e, ND_EUSAGE,
                     "source '%s': expected pcap:FILE, iface:NAME or dpdk:EAL-ARGS", spec);
    if (!s) return NULL;
    snprintf(s->spec, sizeof s->spec, "%s", spec);
    return s;
}

int capture_source_rx(capture_source *s, capture_pkt *pkts, unsigned max, int timeout_ms,
                      nd_error *e)
{
    return s->ops->rx(s, pkts, max, timeout_ms, e);
}

int capture_source_linktype(const capture_source *s) { return s->linktype; }
const char *capture_source_spec(const capture_source *s) { return s->spec; }

void capture_source_stats_get(capture_source *s, capture_source_stats *st)
{
    s->ops->stats(s, st);
}

void capture_source_report(capture_source *s) { s->ops->report(s); }

void capture_source_close(capture_source *s)
{
    if (s) s->ops->close(s);
}

/* ------------------------------------------------------------------------------------ */
/* The lcores' figures as JSON and Prometheus text (capture and live show them alike)    */
/* ------------------------------------------------------------------------------------ */

void capture_lcores_json(nd_json *j, const capture_lcores_figures *f)
{
    if (!f->n) return;
    nd_json *arr = nd_json_arr(j, "lcores");
    for (unsigned i = 0; i < f->n; i++) {
        const capture_lcore_stats *l = &f->lc[i];
        nd_json *o = nd_json_obj(arr, NULL);
        nd_json_u64(o, "lcore", i);
        nd_json_u64(o, "queues", l->queues);
        nd_json_u64(o, "rx", l->rx);
        nd_json_u64(o, "sent", l->sent);
        nd_json_u64(o, "packets", l->packets);
        nd_json_u64(o, "bytes", l->bytes);
        nd_json_u64(o, "skipped", l->skipped);
        nd_json_u64(o, "flows", l->flows);
        nd_json_u64(o, "active_flows", l->active_flows);
        nd_json_u64(o, "windows", l->windows);
    }
    arr = nd_json_arr(j, "queues");
    for (unsigned q = 0; q < f->nq; q++) {
        nd_json *o = nd_json_obj(arr, NULL);
        nd_json_u64(o, "port", f->q[q].port);
        nd_json_u64(o, "queue", f->q[q].queue);
        nd_json_u64(o, "lcore", f->q[q].lcore);
        nd_json_u64(o, "packets", f->q[q].packets);
    }
}

void capture_lcores_prom(nd_prom *p, const char *prefix, const capture_lcores_figures *f)
{
    if (!f->n) return;
    static const struct {
        const char *name;
        int type;
        const char *help;
        size_t off;
    } fam[] = {
        {"lcore_rx_total", ND_PROM_COUNTER, "Packets an lcore read from its rx queues.",
         offsetof(capture_lcore_stats, rx)},
        {"lcore_sent_total", ND_PROM_COUNTER,
         "Packets an lcore read and handed to the lcore of their flow.",
         offsetof(capture_lcore_stats, sent)},
        {"lcore_packets_total", ND_PROM_COUNTER, "Packets an lcore's flow table took.",
         offsetof(capture_lcore_stats, packets)},
        {"lcore_flows_total", ND_PROM_COUNTER, "Flows an lcore started.",
         offsetof(capture_lcore_stats, flows)},
        {"lcore_flows_active", ND_PROM_GAUGE, "Flows in an lcore's flow table now.",
         offsetof(capture_lcore_stats, active_flows)},
        {"lcore_windows_total", ND_PROM_COUNTER, "Windows an lcore made.",
         offsetof(capture_lcore_stats, windows)},
    };
    char name[128], id[32];
    for (size_t k = 0; k < sizeof fam / sizeof fam[0]; k++) {
        snprintf(name, sizeof name, "%s_%s", prefix, fam[k].name);
        nd_prom_family(p, name, fam[k].type, fam[k].help);
        for (unsigned i = 0; i < f->n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&f->lc[i] + fam[k].off, sizeof v);
            snprintf(id, sizeof id, "%u", i);
            nd_prom_sample(p, name, "lcore", id, (double)v);
        }
    }
    snprintf(name, sizeof name, "%s_queue_packets_total", prefix);
    nd_prom_family(p, name, ND_PROM_COUNTER, "Packets read from an rx queue (port:queue).");
    for (unsigned q = 0; q < f->nq; q++) {
        snprintf(id, sizeof id, "%u:%u", f->q[q].port, f->q[q].queue);
        nd_prom_sample(p, name, "queue", id, (double)f->q[q].packets);
    }
}

/* ------------------------------------------------------------------------------------ */
/* capture_run                                                                           */
/* ------------------------------------------------------------------------------------ */

#define BURST 32

#if !ND_HAVE_DPDK /* only dpdk: sources have lcores */
unsigned capture_lcores_count(const capture_source *s)
{
    (void)s;
    return 0;
}
int capture_lcores_start(capture_source *s, capture_ctx *c, const capture_opts *o, nd_error *e)
{
    (void)c, (void)o;
    return nd_error_set(e, ND_EUSAGE, "%s: %s", s->spec, ND_NO_DPDK);
}
int capture_lcores_merge(capture_source *s, nd_error *e)
{
    (void)s, (void)e;
    return CAPTURE_END;
}
int capture_lcores_finish(capture_source *s, nd_error *e)
{
    (void)s, (void)e;
    return 0;
}
void capture_lcores_figures_get(capture_source *s, capture_lcores_figures *f)
{
    (void)s, (void)f;
}
void capture_lcores_totals_add(capture_source *s, capture_totals *t) { (void)s, (void)t; }
#endif

static void status_line(capture_ctx *c, capture_source *s)
{
    capture_totals t;
    capture_ctx_totals(c, &t);
    capture_lcores_totals_add(s, &t);
    capture_source_stats st;
    capture_source_stats_get(s, &st);
    char per_class[256] = "";
    size_t off = 0;
    for (uint32_t i = 0; i < capture_ctx_n_classes(c) && off < sizeof per_class - 1; i++) {
        int n = snprintf(per_class + off, sizeof per_class - off, " %s=%" PRIu64,
                         capture_ctx_class_name(c, i), capture_ctx_class_windows(c, i));
        if (n < 0) break;
        off += (size_t)n;
    }
    nd_status("%s: %" PRIu64 " pkts, %" PRIu64 " flows (%" PRIu64 " open), windows:%s, "
              "drops %" PRIu64,
              s->spec, t.packets, t.flows, t.active_flows, per_class,
              st.dropped + st.if_dropped + st.nombuf);
}

/* One step of a source read by this thread: a burst into c. 0, 1 when idle, CAPTURE_END,
 * or a code with e filled (ND_EINTR when stopped). */
static int step_source(capture_ctx *c, capture_source *s, volatile sig_atomic_t *stop,
                       nd_error *e)
{
    capture_pkt pkts[BURST];
    nd_error re = {0};
    int n = capture_source_rx(s, pkts, BURST, 100, &re);
    if (n > 0) {
        capture_ctx_burst(c, s->linktype, pkts, (unsigned)n);
        return 0;
    }
    if (n == 0) {
        if (s->live) capture_ctx_advance(c, nd_realtime_ns());
        return 1;
    }
    if (n == CAPTURE_END) return n;
    if (stop && *stop) return ND_EINTR; /* a read cut by the signal (a FIFO, a pipe) */
    if (!s->live && n == ND_ETRUNC) {
        nd_status_end();
        nd_warn("%s", re.msg);
        return CAPTURE_END;
    }
    return nd_error_set(e, n, "%s", re.msg);
}

/* One step of a source read by its lcores: the windows that are ready into c, then a
 * short wait (the lcores do the work). */
static int step_lcores(capture_source *s, nd_error *e)
{
    int rc = capture_lcores_merge(s, e);
    if (rc) return rc;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    return 1;
}

/* Reads the source spec through c until it ends: 0, ND_EINTR or a code with e filled. */
static int run_source(capture_ctx *c, const char *spec, const capture_opts *o,
                      volatile sig_atomic_t *stop, int status, nd_error *e)
{
    capture_source *s = capture_source_open(spec, o, e);
    if (!s) return e ? e->code : ND_EFORMAT;
    int lt = capture_source_linktype(s), rc = 0;
    int lcores = capture_lcores_count(s) > 0;
    uint64_t next_status = nd_now_ns(), next_report = next_status, iter = 0;
    nd_debug("%s: link type %d (%s)", s->spec, lt,
             pcap_datalink_val_to_name(lt) ? pcap_datalink_val_to_name(lt) : "?");
    if (lcores) rc = capture_lcores_start(s, c, o, e);
    while (!rc) {
        if (stop && *stop) {
            rc = ND_EINTR;
            break;
        }
        int n = lcores ? step_lcores(s, e) : step_source(c, s, stop, e);
        if (n == CAPTURE_END) break;
        if (n < 0) {
            rc = n;
            break;
        }
        if (capture_ctx_error(c)) {
            rc = nd_error_set(e, capture_ctx_error(c), "%s: storing windows: %s", s->spec,
                              nd_strerror(capture_ctx_error(c)));
            break;
        }
        /* The clock is read every 256 reads, or when the source is idle. */
        if ((status || o->report) && (n == 1 || (++iter & 255) == 0)) {
            uint64_t now = nd_now_ns();
            if (status && now >= next_status) {
                status_line(c, s);
                next_status = now + ND_NS_PER_SEC / 2;
            }
            if (o->report && now >= next_report) {
                o->report(o->report_arg, c, s, 0);
                next_report = now + (o->report_ns ? o->report_ns : ND_NS_PER_SEC);
            }
        }
    }
    if (status) status_line(c, s);
    nd_status_end();
    nd_error fe = {0};
    int frc = capture_lcores_finish(s, &fe);
    if (frc && !rc) rc = nd_error_set(e, frc, "%s", fe.msg);
    capture_ctx_flush(c);
    if (o->report) o->report(o->report_arg, c, s, 1);
    capture_source_report(s);
    capture_source_close(s);
    if (rc) return rc;
    if (capture_ctx_error(c))
        return nd_error_set(e, capture_ctx_error(c), "storing windows: %s",
                            nd_strerror(capture_ctx_error(c)));
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of directory dir (of source spec) in byte order of their names (strcmp:
 * the same order in every locale): regular files, symbolic links followed; hidden names
 * (".*", among them the temporary files of a write in progress) and everything else
 * (folders, FIFOs, devices) skipped. An entry that cannot be examined is an error.
 * Returns the count and *names (malloc'd, each malloc'd), or a negative code with e. */
static int dir_files(const char *spec, const char *dir, char ***names, nd_error *e)
{
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return nd_error_set(e, -errno, "%s: cannot read the folder: %s", spec, strerror(errno));
    char **v = NULL;
    size_t n = 0, cap = 0, skipped = 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (errno = 0, de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0)) {
            rc = nd_error_set(e, -errno, "%s: %s/%s: %s", spec, dir, de->d_name,
                              strerror(errno));
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            skipped++;
            continue;
        }
        char **nv = n < cap ? v : realloc(v, (cap = cap ? 2 * cap : 64) * sizeof *v);
        if (!nv || !(nv[n] = strdup(de->d_name))) {
            if (nv) v = nv;
            rc = nd_error_set(e, -ENOMEM, "%s: out of memory", spec);
            break;
        }
        v = nv;
        n++;
    }
    if (!rc && errno) /* readdir failed */
        rc = nd_error_set(e, -errno, "%s: cannot read the folder: %s", spec, strerror(errno));
    closedir(d);
    if (!rc && !n)
        rc = nd_error_set(e, ND_EUSAGE, "%s: the folder holds no capture file", spec);
    if (rc) {
        for (size_t i = 0; i < n; i++) free(v[i]);
        free(v);
        return rc;
    }
    qsort(v, n, sizeof *v, by_name);
    nd_info("%s: %zu files, read in name order%s", spec, n,
            skipped ? " (entries that are not files skipped)" : "");
    *names = v;
    return (int)n;
}

/* Every file of the folder dir (pcap: source spec) in turn, each opened as "pcap:dir/NAME"
 * and closed before the next. */
static int run_dir(capture_ctx *c, const char *spec, const char *dir, const capture_opts *o,
                   volatile sig_atomic_t *stop, int status, nd_error *e)
{
    char **names;
    int n = dir_files(spec, dir, &names, e), rc = n < 0 ? n : 0;
    for (int i = 0; i < n; i++) {
        if (!rc && stop && *stop) rc = ND_EINTR;
        if (!rc) {
            size_t len = strlen(spec) + strlen(names[i]) + 2;
            char *file = malloc(len);
            if (!file) rc = nd_error_set(e, -ENOMEM, "%s: out of memory", spec);
            else
                snprintf(file, len, "%s%s%s", spec, spec[strlen(spec) - 1] == '/' ? "" : "/",
                         names[i]);
            if (file) rc = run_source(c, file, o, stop, status, e);
            free(file);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int capture_run(capture_ctx *c, const char *const *specs, unsigned n_specs,
                const capture_opts *o, volatile sig_atomic_t *stop, int status, nd_error *e)
{
    for (unsigned k = 0; k < n_specs; k++) {
        if (stop && *stop) return ND_EINTR;
        const char *path = !strncmp(specs[k], "pcap:", 5) ? specs[k] + 5 : NULL;
        struct stat st;
        int rc = path && !stat(path, &st) && S_ISDIR(st.st_mode)
                     ? run_dir(c, specs[k], path, o, stop, status, e)
                     : run_source(c, specs[k], o, stop, status, e);
        if (rc) return rc;
    }
    return 0;
}
