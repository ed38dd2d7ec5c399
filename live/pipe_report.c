/*
 * pipe_report.c — what `netdiffus live` tells (live_impl.h): the status line, the
 * --stats JSON lines and the Prometheus text the metrics endpoint (base/metrics.c) serves,
 * all from one set of figures; the memory bounds shown at start.
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "live_impl.h"

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The figures every report shares: capture totals, ring counters, step, loss, RSS. */
void nd_live_gather(nd_live *L, const nd_online_info *in, nd_live_figures *f, uint64_t t0,
                    uint64_t now)
{
    pthread_mutex_lock(&L->mu);
    f->packets = L->snap.tot.packets;
    f->skipped = L->snap.tot.skipped;
    f->src = L->snap.src;
    f->lcores = L->snap.lcores;
    f->flows = L->snap.tot.flows;
    f->active = L->snap.tot.active_flows;
    f->windows = L->snap.tot.windows;
    pthread_mutex_unlock(&L->mu);
    f->t = (double)(now - t0) * 1e-9;
    f->pushed = nd_wring_pushed(L->ring);
    f->dropped = nd_wring_dropped(L->ring);
    f->popped = nd_wring_popped(L->ring);
    f->step = in->step;
    f->loss = in->loss;
    f->rss = rss_bytes();
    f->students = L->students;
    f->student_steps = nd_live_distill_progress(L);
}

/* One --stats line: the figures, every class, the accounting (packets = parsed +
 * skipped, each reason a counter; what the sources handed over and lost; checkpoints
 * that could not be written). */
static void stats_line(nd_live *L, nd_online *o, const nd_online_info *in,
                       const nd_live_figures *f, int final, FILE *out)
{
    nd_json *j = nd_json_new();
    nd_json_num(j, "t", f->t);
    nd_json_u64(j, "packets", f->packets);
    nd_json_num(j, "pps", f->pps);
    nd_json_u64(j, "flows", f->flows);
    nd_json_u64(j, "active_flows", f->active);
    nd_json_u64(j, "windows", f->windows);
    nd_json_u64(j, "ring_pushed", f->pushed);
    nd_json_u64(j, "ring_dropped", f->dropped);
    nd_json_u64(j, "windows_taken", f->popped);
    nd_json_u64(j, "step", f->step);
    nd_json_num(j, "loss", f->step ? f->loss : NAN); /* null before the first step */
    nd_json_num(j, "images_per_s", f->ips);
    nd_json_u64(j, "rss_bytes", f->rss);
    nd_json_u64(j, "checkpoints", f->ckpt_count);
    nd_json_u64(j, "checkpoint_step", f->ckpt_step);
    nd_json_u64(j, "students", f->students);
    nd_json_u64(j, "student_steps", f->student_steps);
    nd_json_bool(j, "input_done", f->input_done);
    nd_json_bool(j, "final", final);
    nd_json *cls = nd_json_obj(j, "classes");
    for (uint32_t i = 0; i < in->n_classes; i++) {
        nd_online_class_info ci;
        nd_online_class(o, i, &ci);
        nd_json *c = nd_json_obj(cls, ci.name);
        nd_json_u64(c, "windows", ci.seen);
        nd_json_u64(c, "kept", ci.kept);
        nd_json_int(c, "model_class", ci.model_class);
        nd_json_u64(c, "clipped", ci.clipped);
        nd_json_u64(c, "refits", ci.refits);
    }
    nd_json_u64(j, "skipped", f->skipped);
    nd_json_u64(j, "checkpoint_failures", f->ckpt_failed);
    nd_json *src = nd_json_obj(j, "source");
    nd_json_u64(src, "received", f->src.received);
    nd_json_u64(src, "dropped", f->src.dropped);
    nd_json_u64(src, "if_dropped", f->src.if_dropped);
    nd_json_u64(src, "nombuf", f->src.nombuf);
    nd_json_u64(src, "errors", f->src.errors);
    capture_lcores_json(j, &f->lcores);
    nd_json *cnt = nd_json_obj(j, "counters");
    pthread_mutex_lock(&L->mu);
    for (uint32_t i = 0; i < L->snap.n_counters; i++)
        nd_json_u64(cnt, L->snap.counter_names[i], L->snap.counters[i]);
    pthread_mutex_unlock(&L->mu);
    if (f->ckpt_fallback) nd_json_str(j, "checkpoint_fallback", f->ckpt_fallback);
    if (L->recv) { /* window streams from other hosts, per sender */
        nd_wsender_info si[64];
        uint64_t refused;
        uint32_t n = nd_wrecv_senders(L->recv, si, 64, &refused);
        nd_json *st = nd_json_obj(j, "streams");
        nd_json_u64(st, "ring_pushed", nd_wring_pushed(nd_wrecv_ring(L->recv)));
        nd_json_u64(st, "windows_taken", nd_wring_popped(nd_wrecv_ring(L->recv)));
        nd_json_u64(st, "refused", refused);
        nd_json *ss = nd_json_obj(st, "senders");
        for (uint32_t i = 0; i < n; i++) {
            nd_json *x = nd_json_obj(ss, si[i].name);
            nd_json_str(x, "addr", si[i].addr);
            nd_json_bool(x, "connected", si[i].connected);
            nd_json_u64(x, "windows", si[i].windows);
            nd_json_u64(x, "lost", si[i].lost);
            nd_json_u64(x, "stats", si[i].stats);
            nd_json_u64(x, "connections", si[i].connections);
            nd_json_u64(x, "errors", si[i].errors);
        }
    }
    nd_error e = {0};
    if (nd_json_write(j, out, 0, "live: --stats", &e)) nd_warn("%s", e.msg);
    nd_json_free(j);
}

/* The window streams' series: per sender, and the connections refused before a HELLO. */
static void stream_metrics(nd_live *L, nd_prom *p)
{
    nd_wsender_info si[64];
    uint64_t refused;
    uint32_t n = nd_wrecv_senders(L->recv, si, 64, &refused);
    static const struct {
        const char *name, *help;
        int type;
        size_t off;
    } series[] = {
        {"netdiffus_live_sender_windows_total", "Windows taken from a sender.", ND_PROM_COUNTER,
         offsetof(nd_wsender_info, windows)},
        {"netdiffus_live_sender_lost_total",
         "Windows a sender numbered that never came (its full queue, a broken connection).",
         ND_PROM_COUNTER, offsetof(nd_wsender_info, lost)},
        {"netdiffus_live_sender_connections_total", "Connections of a sender accepted.",
         ND_PROM_COUNTER, offsetof(nd_wsender_info, connections)},
        {"netdiffus_live_sender_errors_total",
         "Connections of a sender closed for a bad frame or a reset.", ND_PROM_COUNTER,
         offsetof(nd_wsender_info, errors)},
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        nd_prom_family(p, series[k].name, series[k].type, series[k].help);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&si[i] + series[k].off, sizeof v);
            nd_prom_sample(p, series[k].name, "sender", si[i].name, (double)v);
        }
    }
    nd_prom_family(p, "netdiffus_live_sender_connected", ND_PROM_GAUGE,
                   "1 while a sender is connected.");
    for (uint32_t i = 0; i < n; i++)
        nd_prom_sample(p, "netdiffus_live_sender_connected", "sender", si[i].name,
                       si[i].connected);
    nd_prom_metric(p, "netdiffus_live_stream_refused_total", ND_PROM_COUNTER,
                   "Connections closed before their HELLO was taken (not a stream, a "
                   "version or settings that are not the trainer's).",
                   (double)refused);
}

/* The Prometheus text of the endpoint. */
static void metrics_text(nd_live *L, nd_online *o, const nd_online_info *in,
                         const nd_live_figures *f)
{
    enum { C = ND_PROM_COUNTER, G = ND_PROM_GAUGE };
    nd_prom p = {0};
    nd_prom_metric(&p, "netdiffus_live_packets_total", C, "Packets captured.",
                   (double)f->packets);
    nd_prom_metric(&p, "netdiffus_live_packets_skipped_total", C,
                   "Packets not used (every parse reason, orphan fragments).",
                   (double)f->skipped);
    nd_prom_metric(&p, "netdiffus_live_flows_total", C, "Flows started.", (double)f->flows);
    nd_prom_metric(&p, "netdiffus_live_flows_active", G, "Flows in the flow table now.",
                   (double)f->active);
    nd_prom_metric(&p, "netdiffus_live_windows_total", C, "Windows made by the capture.",
                   (double)f->windows);
    nd_prom_metric(&p, "netdiffus_live_ring_dropped_total", C,
                   "Windows dropped at the full ring to the trainer.", (double)f->dropped);
    nd_prom_metric(&p, "netdiffus_live_train_step", G, "Training step of the model.",
                   (double)f->step);
    nd_prom_metric(&p, "netdiffus_live_train_loss", G, "Running mean of the batch loss.",
                   f->loss);
    nd_prom_metric(&p, "netdiffus_live_images_per_second", G,
                   "Training images per second since the last report.", f->ips);
    nd_prom_metric(&p, "netdiffus_live_checkpoint_step", G, "Step of the last checkpoint.",
                   (double)f->ckpt_step);
    nd_prom_metric(&p, "netdiffus_live_checkpoint_failures_total", C,
                   "Checkpoints that could not be written.", (double)f->ckpt_failed);
    nd_prom_metric(&p, "netdiffus_live_students_total", C,
                   "Distilled students written (live.distill).", (double)f->students);
    nd_prom_metric(&p, "netdiffus_live_student_steps", G,
                   "Steps of the student being distilled; 0: none.", (double)f->student_steps);
    nd_prom_metric(&p, "netdiffus_live_rss_bytes", G, "Resident memory of the process.",
                   (double)f->rss);
    capture_lcores_prom(&p, "netdiffus_live_capture", &f->lcores);
    nd_prom_family(&p, "netdiffus_live_class_windows_total", C,
                   "Windows the trainer was offered, per class.");
    for (uint32_t i = 0; i < in->n_classes; i++) {
        nd_online_class_info ci;
        nd_online_class(o, i, &ci);
        nd_prom_sample(&p, "netdiffus_live_class_windows_total", "class", ci.name,
                       (double)ci.seen);
    }
    if (L->recv) stream_metrics(L, &p);
    nd_metrics_publish(L->metrics, &p);
    nd_prom_free(&p);
}

/* Status line, JSON line and metrics text from the same figures. */
void nd_live_report(nd_live *L, const nd_live_figures *f, int final)
{
    nd_online *o = L->online;
    FILE *stats = L->o->stats;
    nd_online_info in;
    nd_online_get_info(o, &in);
    char cls[512] = "";
    size_t off = 0;
    for (uint32_t i = 0; i < in.n_classes && off < sizeof cls - 1; i++) {
        nd_online_class_info ci;
        nd_online_class(o, i, &ci);
        int n = snprintf(cls + off, sizeof cls - off, "%s%s=%" PRIu64 "%s", i ? " " : "",
                         ci.name, ci.seen,
                         ci.model_class == ND_ONLINE_NO_ROW ? "(no row)"
                         : ci.model_class < 0 && ci.seen    ? "(warm-up)"
                                                            : "");
        off += n > 0 ? (size_t)n : 0;
    }
    char ck[64];
    if (f->ckpt_count)
        snprintf(ck, sizeof ck, "step %" PRIu64 " %.0fs ago", f->ckpt_step, f->ckpt_age);
    else snprintf(ck, sizeof ck, "none yet");
    char stu[48] = "";
    if (f->student_steps) snprintf(stu, sizeof stu, "  student %" PRIu64, f->student_steps);
    char loss[32] = "-"; /* none before the first step */
    if (f->step) snprintf(loss, sizeof loss, "%.4f", f->loss);
    if (!final)
        nd_status("%.0f pkt/s  flows %" PRIu64 "  windows %s  ring drops %" PRIu64
                  "  step %" PRIu64 "  loss %s  %.1f img/s  ckpt %s%s",
                  f->pps, f->active, cls, f->dropped, f->step, loss, f->ips, ck, stu);
    if (stats) stats_line(L, o, &in, f, final, stats);
    if (L->metrics) metrics_text(L, o, &in, f);
}

void nd_live_show_memory(const nd_live *L)
{
    const nd_live_opts *o = L->o;
    uint32_t n_classes = L->n_classes;
    size_t wf = (size_t)o->capture.channels * o->capture.window;
    /* a flow is three 64-byte lines plus two 8-byte index slots (docs/CAPTURE.md) */
    double flows = (double)o->capture.flow_capacity * (3 * 64 + 2 * 8);
    double ring = (double)nd_wring_bytes(o->ring_size, wf);
    double res = (double)nd_online_memory_bound(&o->online, n_classes, wf),
           mib = 1024.0 * 1024.0;
    /* Bounds, not use: the flow table's pages are touched only as flows arrive, so an
     * input of 80 flows uses a few hundred KiB of it. */
    nd_info("live: memory at most (used as it fills): flow table %.1f MiB for %u concurrent "
            "flows (capture.flow_capacity), ring %.1f MiB (%u windows), reservoirs + recent "
            "%.1f MiB (%u classes x %u + %u windows): %.1f MiB in all, plus the model",
            flows / mib, o->capture.flow_capacity, ring / mib, o->ring_size, res / mib,
            n_classes, o->online.reservoir, o->online.recent, (flows + ring + res) / mib);
}
