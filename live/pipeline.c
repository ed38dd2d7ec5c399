/*
 * pipeline.c — `netdiffus live` in one process (nd_live_run, docs/LIVE.md):
 *
 *   capture thread (pinned to capture_core; pipe_capture.c)
 *     sources → capture_ctx → window callback → nd_wring (SPSC, full: drop + count)
 *   calling thread: the trainer (trainer_threads cores)
 *     ring → nd_online_add (reservoirs, recent) → nd_online_step → checkpoints (atomic)
 *     status line / stats JSON lines / Prometheus text every status_interval
 *     (pipe_report.c)
 *   metrics thread (metrics_port): 127.0.0.1 only, text format (base/metrics.c serves
 *     the text pipe_report.c makes)
 *   replay thread (replay_to): samples a copy of the model of each new checkpoint and
 *     replays it (pipe_replay.c)
 *
 * Signals only set *stop: the trainer sees it, stops capture, drains the ring and writes
 * a last checkpoint.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "live_impl.h"

static const char *const channel_names[4] = {"bytes_down", "bytes_up", "packets_down",
                                             "packets_up"};

/* ---- setting up ------------------------------------------------------------------ */

/* Creates the folders above path (mkdir -p of its dirname). Returns 0 or -errno. */
static int make_parents(const char *path)
{
    char *d = strdup(path);
    if (!d) return -ENOMEM;
    char *slash = strrchr(d, '/');
    int rc = 0;
    if (slash && slash != d) {
        *slash = 0;
        for (char *p = d + 1; *p && !rc; p++) {
            if (*p != '/') continue;
            *p = 0;
            if (mkdir(d, 0777) && errno != EEXIST) rc = -errno;
            *p = '/';
        }
        if (!rc && mkdir(d, 0777) && errno != EEXIST) rc = -errno;
    }
    free(d);
    return rc;
}

/* What the options decide before anything opens: the checkpoint's folder, the capture
 * core, one kind of source. */
static int setup_check(nd_live *L, nd_error *e)
{
    const nd_live_opts *o = L->o;
    int rc = make_parents(o->checkpoint);
    if (rc)
        return nd_error_set(e, rc, "live.checkpoint %s: cannot create its folder: %s",
                            o->checkpoint, strerror(-rc));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (o->capture_core >= ncpu)
        return nd_error_set(e, ND_ECONFIG,
                            "live.capture_core: CPU %d, but this machine has %ld "
                            "(0..%ld)",
                            o->capture_core, ncpu, ncpu - 1);
    unsigned files = 0;
    for (unsigned k = 0; k < o->n_sources; k++) files += !strncmp(o->sources[k], "pcap:", 5);
    if (files && files != o->n_sources)
        return nd_error_set(e, ND_EUSAGE,
                            "live: pcap files play on their own clock and "
                            "interfaces on the wall clock: give one kind of source per run");
    L->files = files > 0;
    if (!o->n_sources && !o->listen)
        return nd_error_set(e, ND_EUSAGE,
                            "live: no source and no live.listen: nothing to learn");
    if ((rc = nd_live_distill_setup(L, e))) return rc;
    if (L->student_path && (rc = make_parents(L->student_path)))
        return nd_error_set(e, rc, "live.student %s: cannot create its folder: %s",
                            L->student_path, strerror(-rc));
    return 0;
}

static int push_window(void *user, uint32_t cls, uint64_t group, const float *values)
{
    nd_wring_push(user, cls, group, values); /* full: counted by the ring, never waits */
    return 0;
}

/* The capture side: the classes' header, the ring, the capture context and the
 * snapshot it publishes. */
static int setup_capture(nd_live *L, nd_error *e)
{
    const capture_opts *co = &L->o->capture;
    L->hdr = nd_dataset_new(co->channels, channel_names, co->window, co->bin_ns);
    size_t wf = (size_t)co->channels * co->window;
    L->ring = nd_wring_new(L->o->ring_size, wf);
    if (!L->hdr || !L->ring) return nd_error_set(e, -ENOMEM, "live: out of memory");
    L->ctx = capture_ctx_new(co, NULL, push_window, L->ring, e);
    if (!L->ctx) return e->code;
    L->n_classes = capture_ctx_n_classes(L->ctx);
    for (uint32_t i = 0; i < L->n_classes; i++)
        if (nd_dataset_class(L->hdr, capture_ctx_class_name(L->ctx, i)) != (int)i)
            return nd_error_set(e, ND_ECONFIG, "class '%s': not a valid class name",
                                capture_ctx_class_name(L->ctx, i));
    L->snap.class_windows = calloc(L->n_classes, sizeof *L->snap.class_windows);
    L->snap.stats = calloc(L->n_classes, sizeof *L->snap.stats);
    L->snap.n_counters = capture_ctx_n_counters(L->ctx);
    L->snap.counter_names = calloc(L->snap.n_counters, sizeof *L->snap.counter_names);
    L->snap.counters = calloc(L->snap.n_counters, sizeof *L->snap.counters);
    if (!L->snap.class_windows || !L->snap.stats || !L->snap.counter_names || !L->snap.counters)
        return nd_error_set(e, -ENOMEM, "live: out of memory");
    for (uint32_t i = 0; i < L->snap.n_counters; i++)
        capture_ctx_counter(L->ctx, i, &L->snap.counter_names[i], &L->snap.counters[i]);
    return 0;
}

/* The online trainer: a new one, or the checkpoint's with resume. */
static int setup_trainer(nd_live *L, nd_error *e)
{
    const nd_live_opts *o = L->o;
    if (o->resume) {
        L->online = nd_online_resume(o->checkpoint, &o->online, o->legacy, L->hdr, e);
        nd_input_forget(o->checkpoint); /* read to be updated: its checkpoints replace it */
    } else {
        nd_dm_settings s = o->model;
        s.train.threads = o->trainer_threads;
        L->online = nd_online_new(&o->online, &s, o->provenance, L->hdr, e);
    }
    if (!L->online) return e->code;
    if (o->resume) {
        nd_online_info in;
        nd_online_get_info(L->online, &in);
        nd_info("live: resuming %s at step %" PRIu64 ": %u classes in the model, %" PRIu64
                " windows taken so far",
                o->checkpoint, in.step, in.model_classes, in.windows);
    } else if (!access(o->checkpoint, F_OK)) {
        nd_warn("live: %s exists and will be replaced by a new run (--resume continues it)",
                o->checkpoint);
    }
    return 0;
}

/* The sources opened, and what the run is about to do. */
static int setup_inputs(nd_live *L, nd_error *e)
{
    const nd_live_opts *o = L->o;
    if (!(L->src = calloc(o->n_sources ? o->n_sources : 1, sizeof *L->src)))
        return nd_error_set(e, -ENOMEM, "live: out of memory");
    for (unsigned k = 0; k < o->n_sources; k++) {
        nd_live_src *s = &L->src[L->n_src];
        s->s = capture_source_open(o->sources[k], &o->capture, e);
        if (!s->s) return e->code;
        s->file = L->files;
        s->linktype = capture_source_linktype(s->s);
        L->n_src++;
    }
    nd_live_show_memory(L);
    char pin[32] = "not pinned";
    if (o->capture_core >= 0) snprintf(pin, sizeof pin, "pinned to CPU %d", o->capture_core);
    nd_info("live: %u source(s)%s, %u classes, trainer on %u thread(s), capture %s; "
            "checkpoints -> %s",
            L->n_src,
            L->files ? (o->speed > 0 ? " played at their own pace" : " read as fast as they go")
                     : "",
            L->n_classes, o->trainer_threads, pin, o->checkpoint);
    return 0;
}

/* ---- the threads ----------------------------------------------------------------- */

/* The metrics thread (metrics_port), then the capture thread and, with replay_to, the
 * replay thread. */
static int threads_start(nd_live *L, nd_error *e)
{
    uint32_t port = L->o->metrics_port;
    if (port) {
        const char *addr = L->o->metrics_addr ? L->o->metrics_addr : "127.0.0.1";
        /* the checkpoint too, for replay hosts: written atomically, always whole */
        if (!(L->metrics = nd_metrics_start(addr, port, "/model.ndm", L->o->checkpoint,
                                            "live.metrics_port", e)))
            return e->code;
        nd_info("live: metrics on http://%s:%u/metrics, the checkpoint on /model.ndm", addr,
                port);
    }
    if (L->o->listen) {
        if (!(L->recv = nd_wrecv_start(L->o->listen, L->hdr, L->o->ring_size, e)))
            return e->code;
        nd_info("live: taking window streams from other hosts on %s", L->o->listen);
    }
    if (!L->n_src) { /* only streams from other hosts: no capture thread */
        atomic_store(&L->cap_done, 1);
        return 0;
    }
    if (pthread_create(&L->cap_thr, NULL, nd_live_capture_main, L))
        return nd_error_set(e, -EAGAIN, "live: cannot start the capture thread");
    L->cap_started = 1;
    if (L->o->replay_to && pthread_create(&L->rep_thr, NULL, nd_live_replay_main, &L->R) == 0)
        L->rep_started = L->replay = 1;
    return 0;
}

/* Stops and joins the capture and replay threads (the metrics thread serves until the
 * end). */
static void threads_stop(nd_live *L)
{
    L->cap_stop = 1;
    L->R.stop = 1;
    if (L->cap_started) pthread_join(L->cap_thr, NULL), L->cap_started = 0;
    if (L->rep_started) pthread_join(L->rep_thr, NULL), L->rep_started = 0;
}

/* ---- the trainer loop ------------------------------------------------------------ */

/* The loop's clock and counters. */
typedef struct trainer {
    uint64_t t0, max_steps, duration;            /* start; limits (0: none) */
    uint64_t interval, next_status;              /* status figures */
    uint64_t last_ckpt_step, last_ckpt_t;        /* the last checkpoint tried */
    uint64_t ckpt_step, ckpt_count, ckpt_failed; /* written: step of the last; failed */
    uint64_t prev_packets, prev_images, prev_t;  /* at the last status, for the rates */
    int input_done, warned_idle;
    nd_live_figures f;
} trainer;

static void trainer_init(trainer *t, const nd_live *L)
{
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    memset(t, 0, sizeof *t);
    t->t0 = t->next_status = t->last_ckpt_t = t->prev_t = nd_now_ns();
    t->max_steps = L->o->max_steps;
    t->duration = L->o->duration_ns;
    t->interval = L->o->status_interval_ns ? L->o->status_interval_ns : ND_NS_PER_SEC;
    t->last_ckpt_step = t->ckpt_step = in.step;
}

/* Moves up to max windows from ring r into the trainer. */
static int drain_ring(nd_live *L, nd_wring *r, unsigned max, nd_error *e)
{
    uint32_t cls;
    uint64_t group;
    const float *x;
    for (unsigned k = 0; k < max && (x = nd_wring_peek(r, &cls, &group)); k++) {
        int rc = nd_online_add(L->online, cls, group, x, e);
        nd_wring_pop(r);
        if (rc) return rc;
    }
    return 0;
}

/* Up to max windows from each ring: the capture thread's and the streams'. */
static int drain(nd_live *L, unsigned max, nd_error *e)
{
    int rc = drain_ring(L, L->ring, max, e);
    if (!rc && L->recv) rc = drain_ring(L, nd_wrecv_ring(L->recv), max, e);
    return rc;
}

/* Every input has ended: the capture's error, or its last windows into the trainer;
 * training goes on unless no class can. */
static int input_ended(nd_live *L, trainer *t, nd_error *e)
{
    t->input_done = 1;
    int rc = L->cap_rc;
    if (rc) {
        *e = L->cap_err;
        return rc;
    }
    if ((rc = drain(L, UINT32_MAX, e))) return rc;
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    nd_status_end();
    if (L->recv) return 0; /* the streams may still bring windows */
    if (!in.model_classes)
        return nd_error_set(e, ND_EFORMAT,
                            "live: the input ended after %" PRIu64
                            " windows, and no class reached live.warmup (%u windows): "
                            "nothing to learn",
                            in.windows, L->o->online.warmup);
    nd_info("live: every input has ended; training goes on until Ctrl-C%s",
            t->max_steps || t->duration ? ", --steps or --duration" : "");
    return 0;
}

/* A checkpoint when checkpoint_every steps or checkpoint_interval have passed since the
 * last one. One that cannot be written is warned about: training goes on. */
static void maybe_checkpoint(nd_live *L, trainer *t, uint64_t now)
{
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    uint64_t every = L->o->checkpoint_every, ival = L->o->checkpoint_interval_ns;
    if (in.step <= t->last_ckpt_step || !((every && in.step - t->last_ckpt_step >= every) ||
                                          (ival && now - t->last_ckpt_t >= ival)))
        return;
    nd_error ce = {0};
    int written, rc = nd_live_checkpoint(L, L->o->checkpoint, &written, &ce);
    if (!rc && !written) return;
    t->last_ckpt_step = in.step; /* after a failure too: the next checkpoint retries */
    t->last_ckpt_t = now;
    if (rc) {
        /* A full disk or a folder gone must not end the run and lose its training: the
         * previous checkpoint is intact (atomic writer). */
        t->ckpt_failed++;
        nd_status_end();
        nd_warn("live: checkpoint at step %" PRIu64 " not written: %s; training goes on, "
                "the next checkpoint tries again",
                in.step, ce.msg);
        return;
    }
    t->ckpt_count++;
    t->ckpt_step = in.step;
    if (!nd_status_enabled())
        nd_info("live: step %" PRIu64 ", loss %.4f: checkpoint %s", in.step, in.loss,
                L->o->checkpoint);
    nd_live_distill_start(L, in.step);
}

/* The status line, stats line and metrics, with the rates since the last ones. */
static void status(nd_live *L, trainer *t, uint64_t now)
{
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    nd_live_figures *f = &t->f;
    nd_live_gather(L, &in, f, t->t0, now);
    double dt = (double)(now - t->prev_t) * 1e-9;
    f->pps = dt > 0 ? (double)(f->packets - t->prev_packets) / dt : 0;
    f->ips = dt > 0 ? (double)(in.images - t->prev_images) / dt : 0;
    f->ckpt_step = t->ckpt_step;
    f->ckpt_count = t->ckpt_count;
    f->ckpt_failed = t->ckpt_failed;
    f->ckpt_age = (double)(now - t->last_ckpt_t) * 1e-9;
    f->input_done = t->input_done;
    nd_live_report(L, f, 0);
    t->prev_packets = f->packets;
    t->prev_images = in.images;
    t->prev_t = now;
    t->next_status = now + t->interval;
}

/* Windows from the ring into the trainer, a step, checkpoints and status, until *stop,
 * max_steps, duration or an error. Returns 0 or the error's code. */
static int train_loop(nd_live *L, trainer *t, nd_error *e)
{
    nd_online *o = L->online;
    int rc = 0;
    while (!*L->stop) {
        if ((rc = drain(L, 4096, e))) break;
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
        if (r) nd_live_distill_step(L);
        if (r == 0) { /* no class has warmed up yet */
            if (!t->warned_idle && now - t->t0 > 10 * ND_NS_PER_SEC) {
                nd_debug("live: waiting for a class to reach live.warmup = %u windows",
                         L->o->online.warmup);
                t->warned_idle = 1;
            }
            nd_live_sleep_ns(20000000ull);
        }
        maybe_checkpoint(L, t, now);
        if (now >= t->next_status) status(L, t, now);
    }
    return rc;
}

/* ---- shutdown -------------------------------------------------------------------- */

/* The last checkpoint, to live.checkpoint or, when that cannot be written, to the
 * fallback file (nd_fallback_path): the run's training is kept either way. 0; or a code
 * with e saying why and, when *fallback is set (malloc'd), where the checkpoint is. */
static int last_checkpoint(nd_live *L, int *written, char **fallback, nd_error *e)
{
    nd_error ce = {0};
    int rc = nd_live_checkpoint(L, L->o->checkpoint, written, &ce);
    if (!rc) return 0;
    char *alt = nd_fallback_path(L->o->checkpoint);
    nd_error fe = {0};
    if (!alt || nd_live_checkpoint(L, alt, written, &fe)) {
        nd_err("live: %s", ce.msg);
        free(alt);
        return nd_error_set(e, rc, "live: the last checkpoint was not written: %s",
                            alt ? fe.msg : "out of memory");
    }
    *fallback = alt;
    return nd_error_set(e, rc, "live: %s; the last checkpoint is in %s instead", ce.msg, alt);
}

/* After the loop ended with rc: capture stops first (its last windows are drained),
 * then one last checkpoint and the final figures. Returns 0 or a code with e filled. */
static int finish(nd_live *L, trainer *t, int rc, nd_live_result *res, nd_error *e)
{
    nd_status_end();
    threads_stop(L);
    nd_wrecv_stop(L->recv); /* no more windows: its ring is drained below */
    L->replay = 0;          /* the last checkpoint needs no copy */
    nd_live_distill_free(L);
    if (rc && rc != ND_EINTR) return rc;
    nd_error de = {0};
    int written = 0, dr = drain(L, UINT32_MAX, &de);
    if (dr) {
        *e = de;
        return dr;
    }
    char *fallback = NULL;
    int cr = last_checkpoint(L, &written, &fallback, e);
    if (cr && !fallback) return cr;
    if (written) t->ckpt_count++;
    if (fallback) t->ckpt_failed++;
    nd_online_info in;
    nd_online_get_info(L->online, &in);
    nd_live_figures *f = &t->f;
    nd_live_gather(L, &in, f, t->t0, nd_now_ns());
    f->ckpt_step = written ? in.step : t->ckpt_step;
    f->ckpt_count = t->ckpt_count;
    f->ckpt_failed = t->ckpt_failed;
    f->input_done = t->input_done;
    f->ckpt_fallback = fallback;
    nd_live_report(L, f, 1);
    free(fallback);
    *res = (nd_live_result){.seconds = f->t,
                            .packets = f->packets,
                            .windows = f->pushed + f->dropped,
                            .dropped = f->dropped,
                            .steps_run = in.steps_run,
                            .step = in.step,
                            .loss = in.loss,
                            .checkpoint = written,
                            .replay_rounds = L->R.rounds,
                            .replay_packets = L->R.packets,
                            .students = L->students};
    return cr;
}

static nd_live *live_new(const nd_live_opts *o)
{
    nd_live *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    L->o = o;
    L->stop = o->stop ? o->stop : &L->no_stop;
    pthread_mutex_init(&L->mu, NULL);
    atomic_init(&L->fresh, NULL);
    L->R = (nd_live_replay){.L = L};
    return L;
}

/* Stops every thread still running and frees what L holds; NULL is a no-op. */
static void live_free(nd_live *L)
{
    if (!L) return;
    threads_stop(L);
    nd_live_distill_free(L);
    nd_metrics_stop(L->metrics);
    nd_wrecv_free(L->recv);
    for (unsigned k = 0; k < L->n_src; k++) capture_source_close(L->src[k].s);
    free(L->src);
    nd_online_free(L->online);
    capture_ctx_free(L->ctx);
    nd_wring_free(L->ring);
    nd_dataset_free(L->hdr);
    nd_dm_free(atomic_exchange(&L->fresh, NULL)); /* a copy the replay thread never took */
    free(L->snap.class_windows);
    free(L->snap.stats);
    free(L->snap.counter_names);
    free(L->snap.counters);
    pthread_mutex_destroy(&L->mu);
    free(L);
}

int nd_live_run(const nd_live_opts *o, nd_live_result *res, nd_error *e)
{
    memset(res, 0, sizeof *res);
    nd_live *L = live_new(o);
    if (!L) return nd_error_set(e, -ENOMEM, "live: out of memory");
    int rc = setup_check(L, e);
    if (!rc) rc = setup_capture(L, e);
    if (!rc) rc = setup_trainer(L, e);
    if (!rc) rc = setup_inputs(L, e);
    if (!rc) rc = threads_start(L, e);
    if (!rc) {
        trainer t;
        trainer_init(&t, L);
        rc = finish(L, &t, train_loop(L, &t, e), res, e);
    }
    live_free(L);
    return rc;
}
