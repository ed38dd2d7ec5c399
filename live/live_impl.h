/*
 * live_impl.h — private to libnd_live: what its files share beyond live.h: the reservoir
 * restore of online.c, and the state of a running pipeline (pipeline.c) that its threads
 * share: capture (pipe_capture.c), metrics and reports (pipe_report.c), replay
 * (pipe_replay.c).
 */
#ifndef ND_LIVE_IMPL_H
#define ND_LIVE_IMPL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "live.h"

/* Appends a window as it was (online.c restoring a checkpoint; n < cap): returns where
 * its wf floats go, NULL on -ENOMEM. */
float *nd_reservoir_append(nd_reservoir *r, uint64_t group);
/* Bytes the ring holds (all slots). */
size_t nd_wring_bytes(uint32_t size, size_t wf);
/* Replay statistics of class cls (hdr's index), stored with the next checkpoint. */
void nd_online_set_stats(nd_online *o, uint32_t cls, const nd_class_stats *st);
/* The bound on reservoir and recent-buffer memory for n_classes classes of wf floats. */
size_t nd_online_memory_bound(const nd_online_opts *o, uint32_t n_classes, size_t wf);
/* One step of student s (nd_dm_distill_begin of a checkpoint of this trainer, loaded with
 * ND_DM_BATCH_TRAIN) on a batch drawn as nd_online_step draws them, from the classes s
 * has: the model's first ones (a class that joined later is not in it). The windows are
 * scaled by s's own class scales, those of the checkpoint. *loss (may be NULL) gets the
 * batch loss. Returns 0 or a code (nd_dm_train_step's). */
int nd_online_distill_step(nd_online *o, nd_dm *s, float *loss, nd_error *e);

/* ---- window streams from other hosts (stream*.c) ----------------------------------- */

typedef struct nd_ws_frame {
    uint32_t type, len;     /* payload length */
    const uint8_t *payload; /* inside the parsed bytes */
} nd_ws_frame;
/* The frame at the start of buf[0..n): its size in bytes (> 0, f filled), 0 when more
 * bytes are needed, or a negative code with e filled (an unknown type, a payload over
 * max_payload, found from the first 8 bytes; a CRC that does not match). */
long nd_ws_frame_parse(const uint8_t *buf, size_t n, size_t max_payload, nd_ws_frame *f,
                       nd_error *e);

/* What the trainer knows of one sender (by the name in its HELLO). */
typedef struct nd_wsender_info {
    char name[ND_NAME_MAX];
    char addr[64];        /* of its last connection */
    uint64_t windows;     /* taken into the ring */
    uint64_t lost;        /* numbers skipped: dropped at its full queue, or in flight on a
                             connection that broke */
    uint64_t stats;       /* STATS frames */
    uint64_t connections; /* accepted */
    uint64_t errors;      /* connections closed for an error after HELLO */
    int connected;
} nd_wsender_info;

typedef struct nd_wrecv nd_wrecv;
/* Listens on listen ([ADDR:]PORT; ADDR 127.0.0.1 when not given) for senders of windows
 * shaped like hdr, into a ring of ring_size windows of its own. NULL with e filled. */
nd_wrecv *nd_wrecv_start(const char *listen, const nd_dataset *hdr, uint32_t ring_size,
                         nd_error *e);
nd_wring *nd_wrecv_ring(nd_wrecv *r); /* the trainer drains it */
/* Up to max senders into out; *refused: connections closed before a HELLO was taken. */
uint32_t nd_wrecv_senders(nd_wrecv *r, nd_wsender_info *out, uint32_t max, uint64_t *refused);
/* Adds every sender's newest replay statistics of class cls to acc. */
void nd_wrecv_add_stats(nd_wrecv *r, uint32_t cls, nd_class_stats *acc);
/* Stops the thread and closes every connection; the ring, the senders' figures and
 * statistics stay until nd_wrecv_free. NULL, or stopped already: a no-op. */
void nd_wrecv_stop(nd_wrecv *r);
void nd_wrecv_free(nd_wrecv *r); /* NULL is a no-op */

/* ---- the pipeline ------------------------------------------------------------------ */

#define ND_LIVE_BURST 32

/* One input of the capture thread; file sources hold their current burst. */
typedef struct nd_live_src {
    capture_source *s;
    int file, ended, linktype;
    int lcores; /* read by lcores of its own: the capture thread merges their windows */
    capture_pkt pkts[ND_LIVE_BURST];
    unsigned n, i;
    uint64_t t0; /* first packet's timestamp (files) */
} nd_live_src;

/* What the capture thread publishes for the trainer and the status view. */
typedef struct nd_live_snapshot {
    capture_totals tot;
    capture_source_stats src;
    uint64_t *class_windows; /* (n_classes) */
    nd_class_stats *stats;   /* (n_classes) */
    /* the capture's named counters (parse.*, flow.*, class.*, bin.*), in their order */
    uint32_t n_counters;
    const char **counter_names;
    uint64_t *counters;
    capture_lcores_figures lcores; /* a dpdk: source's lcores (capture.lcores), n 0 none */
    uint64_t gen;                  /* bumped on every publish */
} nd_live_snapshot;

typedef struct nd_live nd_live;

/* The replay thread (replay_to). */
typedef struct nd_live_replay {
    nd_live *L;
    volatile sig_atomic_t stop;
    uint64_t rounds, packets;
} nd_live_replay;

struct nd_live {
    const nd_live_opts *o;
    volatile sig_atomic_t *stop, no_stop; /* o->stop, or no_stop when it has none */
    capture_ctx *ctx;
    nd_wring *ring;
    nd_live_src *src; /* (n_src) */
    unsigned n_src;
    int files; /* the sources are pcap files, played on their own clock */
    uint32_t n_classes;
    volatile sig_atomic_t cap_stop;
    _Atomic int cap_done;
    int cap_rc;
    nd_error cap_err;
    pthread_mutex_t mu; /* guards snap */
    nd_live_snapshot snap;
    nd_metrics *metrics; /* the endpoint (metrics_port), serving the trainer's figures */
    nd_wrecv *recv;      /* window streams from other hosts (listen), or NULL */
    /* mailbox for the replay thread: a sampling copy of the model as of the newest
     * checkpoint, or NULL once taken. One slot, swapped whole: the trainer replaces (and
     * frees) one the replay thread has not taken yet */
    _Atomic(nd_dm *) fresh;
    int replay; /* a replay thread takes from fresh */
    /* the trainer's side: the classes' header and the online trainer */
    nd_dataset *hdr;
    nd_online *online;
    /* the threads besides the trainer's */
    nd_live_replay R;
    pthread_t cap_thr, rep_thr;
    int cap_started, rep_started;
    /* the student being distilled (pipe_distill.c; the trainer's thread only) */
    char *student_path;    /* NULL: no student in this run */
    nd_dm *student;        /* NULL: none now */
    uint64_t student_from; /* the step of the checkpoint it is distilled from */
    uint64_t student_next; /* the model step at or past which the next one may start */
    uint64_t students;     /* written */
};

/* The figures of one report. */
typedef struct nd_live_figures {
    double t, pps, ips, loss;
    uint64_t packets, skipped, flows, active, windows, pushed, dropped, popped, step, rss;
    capture_source_stats src;
    capture_lcores_figures lcores;
    uint64_t ckpt_step, ckpt_count, ckpt_failed;
    uint64_t students, student_steps; /* written; the current one's steps (0: none) */
    double ckpt_age;
    int input_done;
    const char *ckpt_fallback; /* final: where the last checkpoint went instead, or NULL */
} nd_live_figures;

void nd_live_sleep_ns(uint64_t ns);

/* The capture thread (pipe_capture.c): feeds the sources through L->ctx into the ring
 * until L->cap_stop or every input has ended, publishing L->snap; sets L->cap_rc (0 or
 * a code with L->cap_err) and then L->cap_done. arg: L. */
void *nd_live_capture_main(void *arg);

/* pipe_report.c: the figures every report shares (capture totals, ring counters, step,
 * loss, RSS); then the status line, a --stats JSON line and the metrics text from them
 * (final: no status line, "final":true). */
void nd_live_gather(nd_live *L, const nd_online_info *in, nd_live_figures *f, uint64_t t0,
                    uint64_t now);
void nd_live_report(nd_live *L, const nd_live_figures *f, int final);
/* The memory bounds of the run, as one info line. */
void nd_live_show_memory(const nd_live *L);

/* pipe_replay.c: writes the checkpoint to path (live.checkpoint, or the fallback of the
 * last one; *written = 0 while no class has warmed up) and, with a replay thread, hands
 * it a copy of the model just saved. 0 or the save's code. */
int nd_live_checkpoint(nd_live *L, const char *path, int *written, nd_error *e);
/* The replay thread: samples each copy handed over and replays it until R->stop. arg: R. */
void *nd_live_replay_main(void *arg);

/* pipe_distill.c, all on the trainer's thread: the student's file (with distill on);
 * 0 or a code. */
int nd_live_distill_setup(nd_live *L, nd_error *e);
/* After the checkpoint of model step `step` was written to live.checkpoint: loads it as a
 * new student when none is being distilled and one is due. */
void nd_live_distill_start(nd_live *L, uint64_t step);
/* After a step of the model: a step of the student, if any, and when that was its last,
 * its calibration, file and hand-over to the replay thread. */
void nd_live_distill_step(nd_live *L);
/* The current student's steps so far (0: none). */
uint64_t nd_live_distill_progress(const nd_live *L);
/* Drops an unfinished student (saying so) and frees the distiller's state. */
void nd_live_distill_free(nd_live *L);

#endif
