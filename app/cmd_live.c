/*
 * cmd_live.c — `netdiffus live`: capture, online learning and (optionally) replay in one
 * long-running process (docs/LIVE.md).
 *
 *   capture thread (pinned to live.capture_core)
 *     sources → capture_ctx → window callback → nd_wring (SPSC, full: drop + count)
 *   main thread: the trainer (model.threads / live.trainer_threads cores)
 *     ring → nd_online_add (reservoirs, recent) → nd_online_step → checkpoints (atomic)
 *     status line / --stats JSON lines / Prometheus snapshot every live.status_interval
 *   metrics thread (live.metrics_port): 127.0.0.1 only, text format
 *   replay thread (live.replay, --replay-to): after each checkpoint the trainer copies
 *     its EMA weights into a sampling-only model (nd_dm_snapshot) and swaps it into a
 *     one-slot mailbox (an atomic pointer); the replay thread swaps it out, samples
 *     windows from it and replays them. No lock and no file read: the copy is made
 *     between two steps, so sampling never races the optimiser, and it is the model of
 *     the checkpoint just written. A copy not yet taken is replaced (and freed) by the
 *     next one: replay always starts from the newest weights.
 *
 * pcap files are played at their own pace (packet timestamps, × --speed) on one timeline
 * starting now, so that windows leave when they would on a wire. Signals only set a flag.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "cli.h"
#include "conf.h"
#include "live.h"
#include "model.h"
#include "opts.h"
#include "replay.h"

#define BURST 32

static const char *const channel_names[4] = {"bytes_down", "bytes_up", "packets_down",
                                             "packets_up"};

/* One input of the capture thread; file sources hold their current burst. */
typedef struct live_src {
    capture_source *s;
    int file, ended, linktype;
    capture_pkt pkts[BURST];
    unsigned n, i;
    uint64_t t0; /* first packet's timestamp (files) */
} live_src;

/* What the capture thread publishes for the trainer and the status view. */
typedef struct cap_snapshot {
    capture_totals tot;
    capture_source_stats src;
    uint64_t *class_windows; /* (n_classes) */
    nd_class_stats *stats;   /* (n_classes) */
    uint64_t gen;            /* bumped on every publish */
} cap_snapshot;

typedef struct live_run live_run;

/* The metrics thread (live.metrics_port). */
typedef struct metrics_srv {
    live_run *L;
    int fd;
    volatile sig_atomic_t stop;
} metrics_srv;

/* The replay thread (live.replay, --replay-to). */
typedef struct replay_thr {
    live_run *L;
    const char *sink_spec;
    volatile sig_atomic_t stop;
    uint64_t rounds, packets;
} replay_thr;

struct live_run {
    nd_config cfg;
    capture_opts co; /* of cfg, for the context and the sources */
    capture_ctx *ctx;
    nd_wring *ring;
    live_src src[ND_CONF_MAX_SOURCES];
    unsigned n_src;
    int files;    /* the sources are pcap files, played on their own clock */
    uint32_t n_classes;
    double speed; /* file pace; 0: as fast as read */
    volatile sig_atomic_t cap_stop;
    _Atomic int cap_done;
    int cap_rc;
    nd_error cap_err;
    pthread_mutex_t mu; /* guards snap and the figures below */
    cap_snapshot snap;
    /* figures of the trainer, for the metrics thread */
    char metrics[16384];
    const char *ckpt;
    /* mailbox for the replay thread (live.replay): a sampling copy of the model as of
     * the newest checkpoint, or NULL once taken. One slot, swapped whole: the trainer
     * replaces (and frees) one the replay thread has not taken yet */
    _Atomic(nd_dm *) fresh;
    int replay; /* a replay thread takes from fresh */
    /* the trainer's side: the classes' header, the online trainer, --stats */
    nd_dataset *hdr;
    nd_online *online;
    FILE *stats;
    /* the threads besides the trainer's */
    metrics_srv M;
    replay_thr R;
    pthread_t cap_thr, met_thr, rep_thr;
    int cap_started, met_started, rep_started;
};

/* ---- capture thread ------------------------------------------------------------- */

static int push_window(void *user, uint32_t cls, uint64_t group, const float *values)
{
    nd_wring_push(user, cls, group, values); /* full: counted by the ring, never waits */
    return 0;
}

/* Totals for the status view; with stats, also the per-class replay statistics that
 * checkpoints store (reducing them to top lists costs a pass over 64k counters per
 * class, so the capture thread does it once a second, not on every publish). */
static void publish(live_run *L, int stats)
{
    pthread_mutex_lock(&L->mu);
    capture_ctx_totals(L->ctx, &L->snap.tot);
    capture_source_stats sum = {0};
    for (unsigned k = 0; k < L->n_src; k++) {
        capture_source_stats st;
        capture_source_stats_get(L->src[k].s, &st);
        sum.received += st.received;
        sum.dropped += st.dropped;
        sum.if_dropped += st.if_dropped;
        sum.nombuf += st.nombuf;
        sum.errors += st.errors;
    }
    L->snap.src = sum;
    for (uint32_t i = 0; i < L->n_classes; i++) {
        L->snap.class_windows[i] = capture_ctx_class_windows(L->ctx, i);
        if (stats) L->snap.stats[i] = *capture_ctx_class_stats(L->ctx, i);
    }
    L->snap.gen++;
    pthread_mutex_unlock(&L->mu);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / ND_NS_PER_SEC), (long)(ns % ND_NS_PER_SEC)};
    nanosleep(&ts, NULL);
}

/* Next file packet on the shared timeline: the source whose head is earliest. Refills
 * bursts; marks ended files. Returns the source or NULL when every file has ended. */
static live_src *next_file_packet(live_run *L, uint64_t base, int *rc)
{
    live_src *best = NULL;
    uint64_t best_t = UINT64_MAX;
    for (unsigned k = 0; k < L->n_src; k++) {
        live_src *s = &L->src[k];
        if (!s->file || s->ended) continue;
        if (s->i == s->n) {
            nd_error re = {0};
            int n = capture_source_rx(s->s, s->pkts, BURST, 0, &re);
            if (n == CAPTURE_END || n == ND_ETRUNC) {
                if (n == ND_ETRUNC) nd_warn("%s", re.msg);
                s->ended = 1;
                nd_info("live: %s: input ended", capture_source_spec(s->s));
                continue;
            }
            if (n < 0) {
                *rc = nd_error_set(&L->cap_err, n, "%s", re.msg);
                return NULL;
            }
            if (!s->t0 && n > 0) s->t0 = s->pkts[0].ts_ns ? s->pkts[0].ts_ns : 1;
            /* each file's clock starts at base: files recorded at different times play
             * side by side, and one flow-table clock stays monotonic */
            for (int j = 0; j < n; j++) {
                uint64_t d = s->pkts[j].ts_ns > s->t0 ? s->pkts[j].ts_ns - s->t0 : 0;
                s->pkts[j].ts_ns = base + d;
            }
            s->n = (unsigned)n;
            s->i = 0;
            if (!n) continue;
        }
        if (s->pkts[s->i].ts_ns < best_t) {
            best_t = s->pkts[s->i].ts_ns;
            best = s;
        }
    }
    return best;
}

/* One round of the files' timeline at virtual time vnow: up to 256 packets that are
 * due, then a wait for the next one (at most 50 ms), ending idle flows. Returns 0, 1 once
 * every file has ended, or a negative code (L->cap_err filled). */
static int feed_files(live_run *L, uint64_t base, uint64_t vnow)
{
    int rc = 0;
    unsigned fed = 0;
    live_src *s;
    while (fed < 256 && (s = next_file_packet(L, base, &rc)) && s->pkts[s->i].ts_ns <= vnow) {
        capture_ctx_burst(L->ctx, s->linktype, &s->pkts[s->i], 1);
        s->i++;
        fed++;
    }
    if (rc) return rc;
    if (!s) return 1;
    if (fed < 256) {
        uint64_t wait = (uint64_t)((double)(s->pkts[s->i].ts_ns - vnow) / L->speed);
        capture_ctx_advance(L->ctx, vnow);
        sleep_ns(wait < 50000000ull ? wait : 50000000ull);
    }
    return 0;
}

/* One round over the live sources: a burst from each that is still open (waiting up to
 * 100 ms when there is only one). Returns 0, 1 once every source has ended, or a
 * negative code (L->cap_err filled). */
static int feed_live(live_run *L)
{
    int fed = 0, open = 0;
    for (unsigned k = 0; k < L->n_src; k++) {
        live_src *s = &L->src[k];
        if (s->ended) continue;
        open++;
        nd_error re = {0};
        int n = capture_source_rx(s->s, s->pkts, BURST, L->n_src == 1 ? 100 : 0, &re);
        if (n > 0) {
            capture_ctx_burst(L->ctx, s->linktype, s->pkts, (unsigned)n);
            fed += n;
        } else if (n == CAPTURE_END) { /* a DPDK net_pcap file port at its end */
            s->ended = 1;
            nd_info("live: %s: input ended", capture_source_spec(s->s));
        } else if (n < 0 && !L->cap_stop) {
            return nd_error_set(&L->cap_err, n, "%s", re.msg);
        }
    }
    if (!open) return 1;
    if (!fed) {
        capture_ctx_advance(L->ctx, nd_realtime_ns());
        if (L->n_src > 1) sleep_ns(1000000);
    }
    return 0;
}

static void *capture_main(void *arg)
{
    live_run *L = arg;
    int core = L->cfg.live.capture_core;
    if (core >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(core, &set);
        int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        if (err) nd_warn("live: cannot pin the capture thread to CPU %d: %s", core, strerror(err));
    }
    int rc = 0;
    uint64_t base = nd_realtime_ns(), mono0 = nd_now_ns(), next_pub = 0, next_stats = 0;
    while (!L->cap_stop && !rc) {
        uint64_t mono = nd_now_ns();
        if (mono >= next_pub) {
            publish(L, mono >= next_stats);
            next_pub = mono + ND_NS_PER_SEC / 4;
            if (mono >= next_stats) next_stats = mono + ND_NS_PER_SEC;
        }
        /* the files' timeline: virtual now = base + elapsed × speed */
        if (L->files)
            rc = feed_files(L, base, L->speed > 0 ? base + (uint64_t)((double)(mono - mono0) * L->speed)
                                                  : UINT64_MAX);
        else
            rc = feed_live(L);
    }
    /* flows still open end here: their last windows go to the trainer too */
    capture_ctx_flush(L->ctx);
    publish(L, 1);
    L->cap_rc = rc < 0 ? rc : 0; /* 1: every input ended */
    atomic_store(&L->cap_done, 1);
    return NULL;
}

/* ---- metrics endpoint ----------------------------------------------------------- */

static void *metrics_main(void *arg)
{
    metrics_srv *M = arg;
    char req[2048], *body = malloc(sizeof M->L->metrics), hdr[256];
    while (!M->stop && body) {
        struct pollfd p = {.fd = M->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        int c = accept(M->fd, NULL, NULL);
        if (c < 0) continue;
        struct pollfd pc = {.fd = c, .events = POLLIN};
        if (poll(&pc, 1, 1000) > 0) (void)!read(c, req, sizeof req); /* any request */
        pthread_mutex_lock(&M->L->mu);
        memcpy(body, M->L->metrics, sizeof M->L->metrics);
        pthread_mutex_unlock(&M->L->mu);
        size_t n = strlen(body);
        int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
                         "version=0.0.4\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", n);
        (void)!write(c, hdr, (size_t)h);
        (void)!write(c, body, n);
        close(c);
    }
    free(body);
    return NULL;
}

static int metrics_open(uint32_t port, nd_error *e)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nd_error_set(e, -errno, "live: metrics socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* localhost only, never a wire */
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 8)) {
        int err = errno;
        close(fd);
        return nd_error_set(e, -err, "live: metrics on 127.0.0.1:%u: %s (live.metrics_port)",
                            port, strerror(err));
    }
    return fd;
}

/* ---- in-process replay ---------------------------------------------------------- */

static void *replay_main(void *arg)
{
    replay_thr *R = arg;
    live_run *L = R->L;
    nd_error e = {0};
    replay_sink *sink = replay_sink_open(R->sink_spec, &e);
    if (!sink) {
        nd_err("live: replay: %s", e.msg);
        return NULL;
    }
    nd_rng rng;
    nd_rng_seed(&rng, L->cfg.sample.seed);
    nd_dm *m = NULL;
    while (!R->stop) {
        /* the trainer's copy of its EMA weights at the newest checkpoint: taking it
         * empties the slot, so each copy is sampled once and freed by this thread */
        nd_dm *next = atomic_exchange(&L->fresh, NULL);
        if (!next) {
            sleep_ns(100000000ull);
            continue;
        }
        nd_dm_free(m);
        m = next;
        /* replay's policy (nd_dm_sample_flows), classes evenly, one window per sampler
         * call so that a stop is seen within one window's denoising run */
        nd_flows_opts fo = {.flows = L->cfg.replay.flows ? L->cfg.replay.flows : 8, .batch = 1,
                            .stop = &R->stop, .tag = "live: replay", .quiet = 1};
        nd_dataset *ds = nd_dm_sample_flows(m, &fo, &rng, &e);
        if (!ds) {
            if (e.code != ND_EINTR) nd_warn("live: replay: %s", e.msg);
            continue;
        }
        replay_opts o;
        opts_replay(&o, &L->cfg);
        o.loop = 1;
        o.status = 0; /* the main thread draws live's status line */
        o.stop = &R->stop;
        replay_stats st;
        int rc = replay_run(ds, &o, sink, &st, &e);
        nd_dataset_free(ds);
        if (rc && rc != ND_EINTR) {
            nd_warn("live: replay: %s", e.msg);
            break;
        }
        R->rounds++;
        R->packets += st.packets;
    }
    nd_dm_free(m);
    replay_sink_close(sink, NULL);
    return NULL;
}

/* ---- trainer, status, checkpoints ----------------------------------------------- */

/* Creates the folders above path (mkdir -p of its dirname). Returns 0 or -errno. */
static int make_parents(const char *path)
{
    char d[ND_CONF_STR];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (!slash || slash == d) return 0;
    *slash = 0;
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(d, 0777) && errno != EEXIST) return -errno;
        *p = '/';
    }
    return mkdir(d, 0777) && errno != EEXIST ? -errno : 0;
}

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

typedef struct figures {
    double t, pps, ips, loss;
    uint64_t packets, flows, active, windows, pushed, dropped, popped, step, rss;
    uint64_t ckpt_step, ckpt_count;
    double ckpt_age;
    int input_done;
} figures;

/* The figures every report shares: capture totals, ring counters, step, loss, RSS. */
static void gather(live_run *L, const nd_online_info *in, figures *f, uint64_t t0,
                   uint64_t now)
{
    pthread_mutex_lock(&L->mu);
    f->packets = L->snap.tot.packets;
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
}

/* Status line, JSON line and metrics text from the same figures. */
static void report(live_run *L, nd_online *o, const figures *f, FILE *stats, int final)
{
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
    if (f->ckpt_count) snprintf(ck, sizeof ck, "step %" PRIu64 " %.0fs ago", f->ckpt_step, f->ckpt_age);
    else snprintf(ck, sizeof ck, "none yet");
    if (!final)
        nd_status("%.0f pkt/s  flows %" PRIu64 "  windows %s  ring drops %" PRIu64 "  step %" PRIu64
                  "  loss %.4f  %.1f img/s  ckpt %s",
                  f->pps, f->active, cls, f->dropped, f->step, f->loss, f->ips, ck);
    if (stats) {
        fprintf(stats,
                "{\"t\":%.3f,\"packets\":%" PRIu64 ",\"pps\":%.1f,\"flows\":%" PRIu64
                ",\"active_flows\":%" PRIu64 ",\"windows\":%" PRIu64 ",\"ring_pushed\":%" PRIu64
                ",\"ring_dropped\":%" PRIu64 ",\"windows_taken\":%" PRIu64 ",\"step\":%" PRIu64
                ",\"loss\":%.6f,\"images_per_s\":%.2f,\"rss_bytes\":%" PRIu64
                ",\"checkpoints\":%" PRIu64 ",\"checkpoint_step\":%" PRIu64
                ",\"input_done\":%s,\"final\":%s,\"classes\":{",
                f->t, f->packets, f->pps, f->flows, f->active, f->windows, f->pushed,
                f->dropped, f->popped, f->step, f->loss, f->ips, f->rss, f->ckpt_count,
                f->ckpt_step, f->input_done ? "true" : "false", final ? "true" : "false");
        for (uint32_t i = 0; i < in.n_classes; i++) {
            nd_online_class_info ci;
            nd_online_class(o, i, &ci);
            fprintf(stats, "%s\"%s\":{\"windows\":%" PRIu64 ",\"kept\":%u,\"model_class\":%d,"
                    "\"clipped\":%" PRIu64 ",\"refits\":%u}", i ? "," : "", ci.name, ci.seen,
                    ci.kept, ci.model_class, ci.clipped, ci.refits);
        }
        fputs("}}\n", stats);
        fflush(stats);
    }
    if (L->cfg.live.metrics_port) {
        char *m = malloc(sizeof L->metrics);
        if (!m) return;
        int n = snprintf(m, sizeof L->metrics,
            "# TYPE netdiffus_live_packets_total counter\nnetdiffus_live_packets_total %" PRIu64 "\n"
            "# TYPE netdiffus_live_flows_total counter\nnetdiffus_live_flows_total %" PRIu64 "\n"
            "# TYPE netdiffus_live_flows_active gauge\nnetdiffus_live_flows_active %" PRIu64 "\n"
            "# TYPE netdiffus_live_windows_total counter\nnetdiffus_live_windows_total %" PRIu64 "\n"
            "# TYPE netdiffus_live_ring_dropped_total counter\nnetdiffus_live_ring_dropped_total %" PRIu64 "\n"
            "# TYPE netdiffus_live_train_step gauge\nnetdiffus_live_train_step %" PRIu64 "\n"
            "# TYPE netdiffus_live_train_loss gauge\nnetdiffus_live_train_loss %.6f\n"
            "# TYPE netdiffus_live_images_per_second gauge\nnetdiffus_live_images_per_second %.2f\n"
            "# TYPE netdiffus_live_checkpoint_step gauge\nnetdiffus_live_checkpoint_step %" PRIu64 "\n"
            "# TYPE netdiffus_live_rss_bytes gauge\nnetdiffus_live_rss_bytes %" PRIu64 "\n"
            "# TYPE netdiffus_live_class_windows_total counter\n",
            f->packets, f->flows, f->active, f->windows, f->dropped, f->step, f->loss, f->ips,
            f->ckpt_step, f->rss);
        for (uint32_t i = 0; i < in.n_classes && n > 0 && (size_t)n < sizeof L->metrics; i++) {
            nd_online_class_info ci;
            nd_online_class(o, i, &ci);
            n += snprintf(m + n, sizeof L->metrics - (size_t)n,
                          "netdiffus_live_class_windows_total{class=\"%s\"} %" PRIu64 "\n",
                          ci.name, ci.seen);
        }
        pthread_mutex_lock(&L->mu);
        memcpy(L->metrics, m, sizeof L->metrics);
        pthread_mutex_unlock(&L->mu);
        free(m);
    }
}

/* Writes the checkpoint (*written = 0 while no class has warmed up: nothing written) and,
 * with a replay thread, hands that thread a copy of the model just saved; a copy that
 * cannot be made only costs that round of replay (a warning). Returns 0 or the save's
 * code. */
static int checkpoint(live_run *L, nd_online *o, int *written, nd_error *e)
{
    pthread_mutex_lock(&L->mu);
    for (uint32_t i = 0; i < L->n_classes; i++) nd_online_set_stats(o, i, &L->snap.stats[i]);
    pthread_mutex_unlock(&L->mu);
    int rc = nd_online_save(o, L->ckpt, written, e);
    if (rc || !*written || !L->replay) return rc;
    /* the replay thread samples a copy of the EMA weights made here, between two steps,
     * so it never races the optimiser and never reads the file back */
    nd_error se = {0};
    nd_dm *m = nd_online_model(o);
    nd_dm *snap = nd_dm_snapshot(m, ND_DM_BATCH_SAMPLE, &se);
    if (!snap) {
        nd_warn("live: replay: %s; the checkpoint at step %" PRIu64 " is not replayed",
                se.msg, nd_dm_step(m));
        return 0;
    }
    nd_dm *old = atomic_exchange(&L->fresh, snap); /* not taken yet: superseded */
    nd_dm_free(old);
    return 0;
}

/* Moves up to max windows from the ring into the trainer. */
static int drain(live_run *L, nd_online *o, unsigned max, nd_error *e)
{
    uint32_t cls;
    uint64_t group;
    const float *x;
    for (unsigned k = 0; k < max && (x = nd_wring_peek(L->ring, &cls, &group)); k++) {
        int rc = nd_online_add(o, cls, group, x, e);
        nd_wring_pop(L->ring);
        if (rc) return rc;
    }
    return 0;
}

static void show_memory(const live_run *L, uint32_t n_classes, size_t wf)
{
    /* a flow is three 64-byte lines plus two 8-byte index slots (docs/CAPTURE.md) */
    double flows = (double)L->cfg.capture.flow_capacity * (3 * 64 + 2 * 8);
    double ring = (double)nd_wring_bytes(L->cfg.live.ring_size, wf);
    nd_online_opts lo;
    opts_online(&lo, &L->cfg);
    double res = (double)nd_online_memory_bound(&lo, n_classes, wf), mib = 1024.0 * 1024.0;
    nd_info("live: memory bounds: flow table %.1f MiB (%u flows), ring %.1f MiB (%u windows), "
            "reservoirs + recent %.1f MiB (%u classes x %u + %u windows): %.1f MiB, plus the "
            "model", flows / mib, L->cfg.capture.flow_capacity, ring / mib,
            L->cfg.live.ring_size, res / mib, n_classes, L->cfg.live.reservoir,
            L->cfg.live.recent, (flows + ring + res) / mib);
}

/* ---- options --------------------------------------------------------------------- */

enum { OPT_STATS = CLI_OPT_OWN, OPT_REPLAY_TO, OPT_SPEED, OPT_DURATION, OPT_STEPS, OPT_RESUME };

static const struct option longs[] = {
    CLI_CONFIG_OPTIONS,
    {"source", required_argument, NULL, 's'},
    {"stats", required_argument, NULL, OPT_STATS},
    {"replay-to", required_argument, NULL, OPT_REPLAY_TO},
    {"speed", required_argument, NULL, OPT_SPEED},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"resume", no_argument, NULL, OPT_RESUME},
    {0},
};

typedef struct live_args {
    cli_config cc;
    const char *stats_path, *replay_to;
    cli_sources src;
    int resume;
    double speed;                 /* pace of pcap files */
    uint64_t duration, max_steps; /* 0: no limit */
} live_args;

/* The option of code c into o: 0, or ND_EXIT_USAGE once said. */
static int take(live_args *o, const cli_args *a, int c)
{
    const char *v = a->val;
    long long steps;
    nd_error pe = {0};
    switch (c) {
    case OPT_STATS: o->stats_path = v; break;
    case OPT_REPLAY_TO: o->replay_to = v; break;
    case OPT_RESUME: o->resume = 1; break;
    case 's': return cli_sources_add(&o->src, a);
    case OPT_SPEED:
        if (cli_parse_double(v, &o->speed) || !(o->speed >= 0) || o->speed > 1e6)
            return cli_usage_error("live", "--speed %s: expected a number >= 0", v);
        break;
    case OPT_DURATION:
        if (nd_parse_duration(v, &o->duration, &pe) || !o->duration)
            return cli_usage_error("live", "--duration %s: %s", v,
                                   pe.msg[0] ? pe.msg : "must be more than 0");
        break;
    case OPT_STEPS:
        if (cli_parse_ll(v, &steps) || steps < 1)
            return cli_usage_error("live", "--steps %s: expected a positive integer", v);
        o->max_steps = (uint64_t)steps;
        break;
    case CLI_OPERAND: return cli_usage_error("live", "unexpected argument '%s'", v);
    default: return ND_EXIT_USAGE; /* CLI_BAD: said */
    }
    return 0;
}

static int parse(live_args *o, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "live", argc, argv, "c:s:", longs);
    memset(o, 0, sizeof *o);
    o->speed = 1.0;
    a.config = &o->cc;
    for (int c; (c = cli_args_next(&a)) != CLI_END;)
        if (take(o, &a, c)) return ND_EXIT_USAGE;
    if (!o->cc.path) return cli_usage_error("live", "no config: give -c CONF.yaml");
    return 0;
}

/* ---- setting up ------------------------------------------------------------------ */

/* What the config and the options decide together: the sources (the command line's,
 * else the config's; all files or all live), --replay-to for live.replay, the
 * checkpoint's folder, the trainer's threads. */
static int setup_config(live_run *L, live_args *a, nd_error *e)
{
    if (!cli_sources_resolve(&a->src, &L->cfg))
        return nd_error_set(e, ND_EUSAGE, "live: no source: give --source pcap:FILE|iface:NAME|"
                            "dpdk:EAL-ARGS or capture.sources in the config");
    if (L->cfg.live.replay && !a->replay_to)
        return nd_error_set(e, ND_EUSAGE, "live: live.replay is on: say where the packets go "
                            "with --replay-to pcap:FILE|iface:NAME|dpdk:EAL-ARGS (or --set "
                            "live.replay=false and run `netdiffus replay %s` against the "
                            "checkpoint)", L->cfg.live.checkpoint);
    L->ckpt = L->cfg.live.checkpoint;
    int rc = make_parents(L->ckpt);
    if (rc)
        return nd_error_set(e, rc, "live.checkpoint %s: cannot create its folder: %s", L->ckpt,
                            strerror(-rc));
    L->speed = a->speed;
    /* trainer cores: live.trainer_threads, else the cores capture does not use */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t tt = L->cfg.live.trainer_threads;
    if (!tt) tt = (uint32_t)(ncpu > 1 && L->cfg.live.capture_core >= 0 ? ncpu - 1 : ncpu > 0 ? ncpu : 1);
    L->cfg.model.threads = tt;
    if (L->cfg.live.capture_core >= ncpu)
        return nd_error_set(e, ND_ECONFIG, "live.capture_core: CPU %d, but this machine has %ld "
                            "(0..%ld)", L->cfg.live.capture_core, ncpu, ncpu - 1);
    unsigned files = 0;
    for (unsigned k = 0; k < a->src.n; k++) files += !strncmp(a->src.spec[k], "pcap:", 5);
    if (files && files != a->src.n)
        return nd_error_set(e, ND_EUSAGE, "live: pcap files play on their own clock and "
                            "interfaces on the wall clock: give one kind of source per run");
    L->files = files > 0;
    return 0;
}

/* The capture side: the classes' header, the ring, the capture context and the
 * snapshot it publishes. */
static int setup_capture(live_run *L, nd_error *e)
{
    L->hdr = nd_dataset_new(L->cfg.capture.channels, channel_names, L->cfg.capture.window,
                            L->cfg.capture.bin_ns);
    size_t wf = (size_t)L->cfg.capture.channels * L->cfg.capture.window;
    L->ring = nd_wring_new(L->cfg.live.ring_size, wf);
    if (!L->hdr || !L->ring) return nd_error_set(e, -ENOMEM, "live: out of memory");
    opts_capture(&L->co, &L->cfg);
    L->ctx = capture_ctx_new(&L->co, NULL, push_window, L->ring, e);
    if (!L->ctx) return e->code;
    L->n_classes = capture_ctx_n_classes(L->ctx);
    for (uint32_t i = 0; i < L->n_classes; i++)
        if (nd_dataset_class(L->hdr, capture_ctx_class_name(L->ctx, i)) != (int)i)
            return nd_error_set(e, ND_ECONFIG, "class '%s': not a valid class name",
                                capture_ctx_class_name(L->ctx, i));
    L->snap.class_windows = calloc(L->n_classes, sizeof *L->snap.class_windows);
    L->snap.stats = calloc(L->n_classes, sizeof *L->snap.stats);
    if (!L->snap.class_windows || !L->snap.stats) return nd_error_set(e, -ENOMEM, "live: out of memory");
    return 0;
}

/* The online trainer: a new one, or the checkpoint's with --resume. */
static int setup_trainer(live_run *L, int resume, nd_error *e)
{
    L->online = opts_online_open(&L->cfg, L->ckpt, resume, L->hdr, e);
    if (!L->online) return e->code;
    if (resume) {
        nd_online_info in;
        nd_online_get_info(L->online, &in);
        nd_info("live: resuming %s at step %" PRIu64 ": %u classes in the model, %" PRIu64
                " windows taken so far", L->ckpt, in.step, in.model_classes, in.windows);
    } else if (!access(L->ckpt, F_OK)) {
        nd_warn("live: %s exists and will be replaced by a new run (--resume continues it)",
                L->ckpt);
    }
    return 0;
}

/* The sources opened, the --stats file, and what the run is about to do. */
static int setup_inputs(live_run *L, const live_args *a, nd_error *e)
{
    for (unsigned k = 0; k < a->src.n; k++) {
        live_src *s = &L->src[L->n_src];
        s->s = capture_source_open(a->src.spec[k], &L->co, e);
        if (!s->s) return e->code;
        s->file = L->files;
        s->linktype = capture_source_linktype(s->s);
        L->n_src++;
    }
    if (a->stats_path && !(L->stats = fopen(a->stats_path, "a")))
        return nd_error_set(e, -errno, "%s: %s", a->stats_path, strerror(errno));
    show_memory(L, L->n_classes, (size_t)L->cfg.capture.channels * L->cfg.capture.window);
    char pin[32] = "not pinned";
    if (L->cfg.live.capture_core >= 0)
        snprintf(pin, sizeof pin, "pinned to CPU %d", L->cfg.live.capture_core);
    nd_info("live: %u source(s)%s, %u classes, trainer on %u thread(s), capture %s; "
            "checkpoints -> %s", L->n_src,
            L->files ? (L->speed > 0 ? " played at their own pace" : " read as fast as they go") : "",
            L->n_classes, L->cfg.model.threads, pin, L->ckpt);
    return 0;
}

/* ---- the threads ----------------------------------------------------------------- */

/* The metrics thread (live.metrics_port), then the capture thread and, with
 * --replay-to, the replay thread. */
static int threads_start(live_run *L, nd_error *e)
{
    if (L->cfg.live.metrics_port) {
        L->M.fd = metrics_open(L->cfg.live.metrics_port, e);
        if (L->M.fd < 0) return L->M.fd;
        if (pthread_create(&L->met_thr, NULL, metrics_main, &L->M) == 0) L->met_started = 1;
        nd_info("live: metrics on http://127.0.0.1:%u/metrics", L->cfg.live.metrics_port);
    }
    cli_catch_stop();
    if (pthread_create(&L->cap_thr, NULL, capture_main, L))
        return nd_error_set(e, -EAGAIN, "live: cannot start the capture thread");
    L->cap_started = 1;
    if (L->R.sink_spec && pthread_create(&L->rep_thr, NULL, replay_main, &L->R) == 0)
        L->rep_started = L->replay = 1;
    return 0;
}

/* Stops and joins the capture and replay threads (the metrics thread serves until the
 * end). */
static void threads_stop(live_run *L)
{
    L->cap_stop = 1;
    L->R.stop = 1;
    if (L->cap_started) pthread_join(L->cap_thr, NULL), L->cap_started = 0;
    if (L->rep_started) pthread_join(L->rep_thr, NULL), L->rep_started = 0;
}

/* ---- the trainer loop ------------------------------------------------------------ */

/* The loop's clock and counters. */
typedef struct trainer {
    uint64_t t0, max_steps, duration; /* start; limits (0: none) */
    uint64_t interval, next_status;   /* status figures */
    uint64_t last_ckpt_step, last_ckpt_t, ckpt_count;
    uint64_t prev_packets, prev_images, prev_t; /* at the last status, for the rates */
    int input_done, warned_idle;
    figures f;
} trainer;

static void trainer_init(trainer *t, const live_run *L, const live_args *a)
{
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    memset(t, 0, sizeof *t);
    t->t0 = t->next_status = t->last_ckpt_t = t->prev_t = nd_now_ns();
    t->max_steps = a->max_steps;
    t->duration = a->duration;
    t->interval = L->cfg.live.status_interval_ns ? L->cfg.live.status_interval_ns : ND_NS_PER_SEC;
    t->last_ckpt_step = in.step;
}

/* Every input has ended: the capture's error, or its last windows into the trainer;
 * training goes on unless no class can. */
static int input_ended(live_run *L, trainer *t, nd_error *e)
{
    t->input_done = 1;
    int rc = L->cap_rc;
    if (rc) {
        *e = L->cap_err;
        return rc;
    }
    if ((rc = drain(L, L->online, UINT32_MAX, e))) return rc;
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    nd_status_end();
    if (!in.model_classes)
        return nd_error_set(e, ND_EFORMAT, "live: the input ended after %" PRIu64
                            " windows, and no class reached live.warmup (%u windows): "
                            "nothing to learn", in.windows, L->cfg.live.warmup);
    nd_info("live: every input has ended; training goes on until Ctrl-C%s",
            t->max_steps || t->duration ? ", --steps or --duration" : "");
    return 0;
}

/* A checkpoint when live.checkpoint_every steps or live.checkpoint_interval have passed
 * since the last one. */
static int maybe_checkpoint(live_run *L, trainer *t, uint64_t now, nd_error *e)
{
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    uint64_t every = L->cfg.live.checkpoint_every, ival = L->cfg.live.checkpoint_interval_ns;
    if (in.step <= t->last_ckpt_step ||
        !((every && in.step - t->last_ckpt_step >= every) || (ival && now - t->last_ckpt_t >= ival)))
        return 0;
    int written, rc = checkpoint(L, L->online, &written, e);
    if (rc || !written) return rc;
    t->last_ckpt_step = in.step;
    t->last_ckpt_t = now;
    t->ckpt_count++;
    if (!nd_status_enabled())
        nd_info("live: step %" PRIu64 ", loss %.4f: checkpoint %s", in.step, in.loss, L->ckpt);
    return 0;
}

/* The status line, --stats line and metrics, with the rates since the last ones. */
static void status(live_run *L, trainer *t, uint64_t now)
{
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    figures *f = &t->f;
    gather(L, &in, f, t->t0, now);
    double dt = (double)(now - t->prev_t) * 1e-9;
    f->pps = dt > 0 ? (double)(f->packets - t->prev_packets) / dt : 0;
    f->ips = dt > 0 ? (double)(in.images - t->prev_images) / dt : 0;
    f->ckpt_step = t->last_ckpt_step;
    f->ckpt_count = t->ckpt_count;
    f->ckpt_age = (double)(now - t->last_ckpt_t) * 1e-9;
    f->input_done = t->input_done;
    report(L, L->online, f, L->stats, 0);
    t->prev_packets = f->packets;
    t->prev_images = in.images;
    t->prev_t = now;
    t->next_status = now + t->interval;
}

/* Windows from the ring into the trainer, a step, checkpoints and status, until Ctrl-C,
 * --steps, --duration or an error. Returns 0 or the error's code. */
static int train_loop(live_run *L, trainer *t, nd_error *e)
{
    nd_online *o = L->online;
    int rc = 0;
    while (!cli_stop) {
        if ((rc = drain(L, o, 4096, e))) break;
        nd_online_info in;
        nd_online_get_info(o, &in);
        uint64_t now = nd_now_ns();
        if (t->max_steps && in.step >= t->max_steps) break;
        if (t->duration && now - t->t0 >= t->duration) break;
        if (atomic_load(&L->cap_done) && !t->input_done && (rc = input_ended(L, t, e))) break;
        int r = nd_online_step(o, e);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0) { /* no class has warmed up yet */
            if (!t->warned_idle && now - t->t0 > 10 * ND_NS_PER_SEC) {
                nd_debug("live: waiting for a class to reach live.warmup = %u windows",
                         L->cfg.live.warmup);
                t->warned_idle = 1;
            }
            sleep_ns(20000000ull);
        }
        if ((rc = maybe_checkpoint(L, t, now, e))) break;
        if (now >= t->next_status) status(L, t, now);
    }
    return rc;
}

/* ---- shutdown -------------------------------------------------------------------- */

/* After the loop ended with rc: capture stops first (its last windows are drained),
 * then one last checkpoint and the final figures. Returns 0 or a code with e filled. */
static int finish(live_run *L, trainer *t, int rc, nd_error *e)
{
    nd_status_end();
    threads_stop(L);
    L->replay = 0; /* the last checkpoint needs no copy */
    if (rc && rc != ND_EINTR) return rc;
    nd_error de = {0};
    int written = 0, dr = drain(L, L->online, UINT32_MAX, &de);
    if (!dr) dr = checkpoint(L, L->online, &written, &de);
    if (dr) {
        *e = de;
        return dr;
    }
    if (written) t->ckpt_count++;
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    figures *f = &t->f;
    gather(L, &in, f, t->t0, nd_now_ns());
    f->ckpt_step = written ? in.step : t->last_ckpt_step;
    f->ckpt_count = t->ckpt_count;
    f->input_done = t->input_done;
    report(L, L->online, f, L->stats, 1);
    nd_info("live: %s after %.1f s: %" PRIu64 " packets, %" PRIu64 " windows (%" PRIu64
            " dropped at the full ring), %" PRIu64 " steps in this run (step %" PRIu64
            "), loss %.4f%s%s", cli_stop ? "stopped by a signal" : "done", f->t, f->packets,
            f->pushed + f->dropped, f->dropped, in.steps_run, in.step, in.loss,
            written ? "; checkpoint " : "; no class warmed up, no checkpoint",
            written ? L->ckpt : "");
    if (L->R.rounds)
        nd_info("live: replayed %" PRIu64 " rounds, %" PRIu64 " packets", L->R.rounds,
                L->R.packets);
    return 0;
}

static live_run *live_new(const live_args *a)
{
    live_run *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    pthread_mutex_init(&L->mu, NULL);
    atomic_init(&L->fresh, NULL);
    L->M = (metrics_srv){.L = L, .fd = -1};
    L->R = (replay_thr){.L = L, .sink_spec = a->replay_to};
    return L;
}

/* Stops every thread still running and frees what L holds; NULL is a no-op. */
static void live_free(live_run *L)
{
    if (!L) return;
    threads_stop(L);
    L->M.stop = 1;
    if (L->met_started) pthread_join(L->met_thr, NULL);
    if (L->M.fd >= 0) close(L->M.fd);
    if (L->stats) fclose(L->stats);
    for (unsigned k = 0; k < L->n_src; k++) capture_source_close(L->src[k].s);
    nd_online_free(L->online);
    capture_ctx_free(L->ctx);
    nd_wring_free(L->ring);
    nd_dataset_free(L->hdr);
    nd_dm_free(atomic_exchange(&L->fresh, NULL)); /* a copy the replay thread never took */
    free(L->snap.class_windows);
    free(L->snap.stats);
    nd_config_free(&L->cfg);
    pthread_mutex_destroy(&L->mu);
    free(L);
}

static int run(int argc, char **argv)
{
    live_args a;
    int rc = parse(&a, argc, argv);
    if (rc) return rc;
    live_run *L = live_new(&a);
    if (!L) return ND_EXIT_FAIL;
    if ((rc = cli_config_open(&L->cfg, &a.cc))) {
        live_free(L);
        return rc; /* said */
    }
    nd_error e = {0};
    rc = setup_config(L, &a, &e);
    if (!rc) rc = setup_capture(L, &e);
    if (!rc) rc = setup_trainer(L, a.resume, &e);
    if (!rc) rc = setup_inputs(L, &a, &e);
    if (!rc) rc = threads_start(L, &e);
    if (!rc) {
        trainer t;
        trainer_init(&t, L, &a);
        rc = finish(L, &t, train_loop(L, &t, &e), &e);
    }
    if (rc) nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    live_free(L);
    return cli_exit_code(rc);
}

const nd_command cmd_live = {
    "live", "capture, learn online and replay in one process",
    "usage: netdiffus live -c CONF [--resume] [--source SRC]... [--set KEY=VAL]\n"
    "                      [--speed X] [--steps N] [--duration D] [--stats FILE]\n"
    "                      [--replay-to SINK]\n"
    "\n"
    "Captures traffic and learns it while it watches: a capture thread turns packets into\n"
    "per-flow windows (as `capture` does) and hands them to the trainer through a ring\n"
    "of live.ring_size windows that never blocks capture (a full ring drops windows and\n"
    "counts them). The trainer keeps a reservoir sample of live.reservoir windows per\n"
    "class plus the live.recent most recent windows, and trains the diffusion model\n"
    "continuously: a class joins the model once it has live.warmup windows (its scale is\n"
    "fitted then, and refit by the live.scale_refit rule). The model file live.checkpoint\n"
    "is written atomically every live.checkpoint_every steps or live.checkpoint_interval,\n"
    "and on Ctrl-C/SIGTERM; `netdiffus sample` and `netdiffus replay MODEL.ndm` can read\n"
    "it at any time while live keeps updating it.\n"
    "\n"
    "  -c, --config CONF   YAML config (capture, classes, model, train, live sections)\n"
    "  -s, --source SRC    repeatable; replaces capture.sources: pcap:FILE (played at its\n"
    "                      own pace: packet timestamps, x --speed), iface:NAME, dpdk:ARGS\n"
    "      --set KEY=VAL   override one config key\n"
    "      --resume        continue the checkpoint live.checkpoint: model, optimiser, step,\n"
    "                      reservoirs and recent windows\n"
    "      --speed X       pace of pcap files: 1 real time (default), 10 ten times faster,\n"
    "                      0 as fast as they read (the ring may then drop windows)\n"
    "      --steps N       stop at training step N (in total)\n"
    "      --duration D    stop after D of wall time (e.g. 90s, 10m)\n"
    "      --stats FILE    append the status figures as one JSON object per line\n"
    "      --replay-to SINK  with live.replay: replay samples of each new checkpoint to\n"
    "                      pcap:FILE, iface:NAME or dpdk:ARGS (replay section)\n"
    "\n"
    "Once a second (live.status_interval) a status line on a terminal shows packets/s,\n"
    "flows, windows per class, ring drops, step, loss, images/s and the last checkpoint;\n"
    "live.metrics_port serves the same figures in Prometheus text format on 127.0.0.1.\n"
    "When every pcap input has ended, training goes on until Ctrl-C, --steps or\n"
    "--duration. Memory is bounded by capture.flow_capacity, live.ring_size,\n"
    "live.reservoir and live.recent (shown at start). See docs/LIVE.md.\n"
    "\n"
    "example:\n"
    "  netdiffus live -c conf/examples/live.yaml\n"
    "\n"
    "Exit codes: 0 (also when stopped by Ctrl-C: checkpoint written); 1 runtime failure;\n"
    "2 bad usage or config.\n",
    run,
};
