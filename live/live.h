/*
 * live.h — online learning for `netdiffus live` (libnd_live): the ring that hands
 * finished windows from a capture thread to the trainer, reservoir sampling, the
 * online trainer (a reservoir per class plus recent windows, classes that join while
 * running, checkpoints with the reservoirs inside the model file), and the pipeline that
 * runs them with capture and replay in one process (nd_live_run). docs/LIVE.md.
 */
#ifndef ND_LIVE_H
#define ND_LIVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capture.h"
#include "model.h"
#include "nd.h"
#include "replay.h"

/* Single-producer single-consumer ring of windows between a capture thread and the
 * trainer: fixed slots (class, group, C·L floats), C11 acquire/release indices, never
 * blocks. A push into a full ring drops the window and counts it. */
typedef struct nd_wring nd_wring;
/* size: slots, a power of two; wf: floats per window. NULL on -ENOMEM or bad size. */
nd_wring *nd_wring_new(uint32_t size, size_t wf);
void nd_wring_free(nd_wring *r); /* NULL is a no-op */
/* Producer side: copies the window in. Returns 1, or 0 when the ring is full (dropped). */
int nd_wring_push(nd_wring *r, uint32_t cls, uint64_t group, const float *values);
/* Consumer side: the oldest window (valid until nd_wring_pop), or NULL when empty. */
const float *nd_wring_peek(nd_wring *r, uint32_t *cls, uint64_t *group);
void nd_wring_pop(nd_wring *r);
/* Counters, readable from any thread: pushed (taken in), dropped (ring full), popped. */
uint64_t nd_wring_pushed(const nd_wring *r);
uint64_t nd_wring_dropped(const nd_wring *r);
uint64_t nd_wring_popped(const nd_wring *r);

/* A uniform sample of up to cap windows of a stream (Vitter's algorithm R): after n
 * windows, each of them is in the sample with probability min(1, cap/n). Storage grows
 * by doubling up to cap windows. */
typedef struct nd_reservoir {
    uint32_t cap, n, alloc; /* capacity, windows held, windows allocated */
    size_t wf;              /* floats per window */
    uint64_t seen;          /* windows offered */
    float *x;               /* (alloc, wf) */
    uint64_t *groups;       /* (alloc) */
} nd_reservoir;
void nd_reservoir_init(nd_reservoir *r, uint32_t cap, size_t wf);
void nd_reservoir_free(nd_reservoir *r);
/* Offers one window: returns the slot it went to, -1 when not kept, -ENOMEM. */
long nd_reservoir_add(nd_reservoir *r, const float *x, uint64_t group, nd_rng *rng);

/* The online trainer of `netdiffus live`: a reservoir per class plus a buffer of the
 * most recent windows; classes join the model when their reservoir holds `warmup`
 * windows (scale fitted then, refit by the scale_refit rule); batches take recent_share
 * from the recent buffer and the rest class-balanced from the reservoirs.
 * Single-threaded: one thread adds windows and steps. docs/LIVE.md. */
typedef struct nd_online nd_online;

/* The trainer's own settings: the program's live.* keys it uses. */
typedef struct nd_online_opts {
    uint32_t reservoir;  /* windows kept per class (>= 1) */
    uint32_t recent;     /* windows in the recent buffer, all classes (>= 1) */
    uint32_t warmup;     /* windows of a class before it joins the model */
    double recent_share; /* share of each batch from the recent buffer */
    double scale_refit;  /* share of out-of-scale windows since the last fit that refits
                            a class's scale; 0: scales stay as first fitted */
} nd_online_opts;

/* A new trainer for windows shaped like hdr (channels, L, bin) whose classes are hdr's
 * classes in order (the capture's class list: the index passed to nd_online_add). o and
 * the model's settings ms are copied; provenance (may be NULL) is the text the model file
 * keeps beside the settings (nd_dm_new). NULL with e filled. */
nd_online *nd_online_new(const nd_online_opts *o, const nd_dm_settings *ms,
                         const char *provenance, const nd_dataset *hdr, nd_error *e);
/* Continues from a checkpoint written by nd_online_save: model, optimiser, EMA, step,
 * reservoirs, recent buffer and counters. The model keeps its stored settings (legacy:
 * reads those of checkpoints from before model files stored them, see nd_dm_load); o
 * gives the trainer's. Classes are matched to hdr's by name (a stored class hdr lacks is
 * kept and trained on, it just gets no new windows). */
nd_online *nd_online_resume(const char *path, const nd_online_opts *o, nd_dm_legacy_fn legacy,
                            const nd_dataset *hdr, nd_error *e);
void nd_online_free(nd_online *o); /* NULL is a no-op */

/* Takes one window of class cls (hdr's index) into the reservoir and recent buffer;
 * adds the class to the model when it has warmed up. Returns 0 or a code. */
int nd_online_add(nd_online *o, uint32_t cls, uint64_t group, const float *x, nd_error *e);
/* One training step. Returns 1 (a step was taken), 0 (no class has warmed up yet) or a
 * negative code. */
int nd_online_step(nd_online *o, nd_error *e);
/* Writes the checkpoint atomically: the model file (readable by `sample`, `replay`)
 * plus a LIVE section with the reservoirs. Nothing to write before the first class has
 * warmed up: returns 0 and writes nothing (*written = 0). */
int nd_online_save(nd_online *o, const char *path, int *written, nd_error *e);
/* The model (NULL until a class has warmed up). */
nd_dm *nd_online_model(nd_online *o);

#define ND_ONLINE_NO_ROW (-2)
typedef struct nd_online_class_info {
    const char *name;
    uint64_t seen;    /* windows offered */
    uint32_t kept;    /* in the reservoir */
    int model_class;  /* row in the model, -1 while warming up, ND_ONLINE_NO_ROW when
                         every max_classes row was taken */
    uint64_t clipped; /* windows with a value outside the fitted scale */
    uint32_t refits;  /* scale refits */
} nd_online_class_info;

typedef struct nd_online_info {
    uint64_t step;          /* model steps in total (resumed runs count earlier ones) */
    uint64_t steps_run;     /* steps in this process */
    uint64_t images;        /* images trained on in this process */
    uint64_t windows;       /* windows taken in (this process and before) */
    double loss;            /* running mean of the batch loss (0.98 decay); 0 before any */
    double last_loss;       /* loss of the last batch */
    uint32_t n_classes;     /* classes known (hdr's and restored ones) */
    uint32_t model_classes; /* classes in the model */
    size_t memory_bytes;    /* reservoirs + recent buffer, at most (the configured bound) */
} nd_online_info;
void nd_online_get_info(const nd_online *o, nd_online_info *info);
/* Class i of nd_online_info.n_classes. */
void nd_online_class(const nd_online *o, uint32_t i, nd_online_class_info *ci);

/* ---- window streams: capture hosts -> one live trainer (stream*.c) ------------------ */

/* The stream is a sequence of frames, little-endian (docs/FORMATS.md, "Window streams"):
 * u32 type, u32 payload length, the payload, CRC-32 (zlib) of the 8 head bytes and the
 * payload. The sender opens with HELLO (magic NDWS, version, channels, bins per window,
 * bin width, the number of its next window, its name, its class names) and the trainer
 * answers ACCEPT or REFUSE (a message); then WINDOW (class, group, number, C*L floats)
 * and STATS (a class's replay statistics) frames, and BYE (the number after the last
 * window), answered by ACK (windows the trainer took on this connection).
 * The version changes with any payload, the STAT record in STATS included (its layout is
 * not in the frame): 1 carried STAT layouts 0 and 1, 2 carries layout 2. A new STAT
 * layout is a new version here (test_live_stream pins the record size). */
#define ND_WS_VERSION    2
#define ND_WS_FRAME_HEAD 8
enum {
    ND_WS_HELLO = 1,
    ND_WS_WINDOW = 2,
    ND_WS_STATS = 3,
    ND_WS_BYE = 4,
    ND_WS_ACCEPT = 0x81,
    ND_WS_REFUSE = 0x82,
    ND_WS_ACK = 0x83,
};

/* Bytes of a frame with this payload; the head and CRC written around a payload already
 * at buf + ND_WS_FRAME_HEAD (returns the frame's size). */
size_t nd_ws_frame_size(size_t payload);
size_t nd_ws_frame_seal(uint8_t *buf, uint32_t type, size_t payload);
/* A HELLO frame for windows shaped like hdr (malloc'd, *len bytes), NULL on -ENOMEM. */
uint8_t *nd_ws_hello_new(const nd_dataset *hdr, const char *name, uint64_t first_seq,
                         size_t *len);
/* Frames into buf (room for nd_ws_frame_size of their payload); each returns its size. */
size_t nd_ws_window_put(uint8_t *buf, uint32_t cls, uint64_t group, uint64_t seq,
                        const float *values, size_t wf);
size_t nd_ws_stats_put(uint8_t *buf, uint32_t cls, const nd_class_stats *st);
size_t nd_ws_u64_put(uint8_t *buf, uint32_t type, uint64_t v); /* BYE, ACK */

/* The trainer's side of one stream: checks each frame against hdr (the trainer's
 * windows and classes) and the stream's state. */
typedef struct nd_ws_reader nd_ws_reader;
typedef struct nd_ws_item {
    uint32_t type;
    uint32_t cls;                /* WINDOW, STATS: hdr's class index (mapped by name) */
    uint64_t group, seq;         /* WINDOW; HELLO: seq is the number of the first window */
    uint64_t lost;               /* WINDOW, BYE: windows skipped by the numbers before it */
    const float *values;         /* WINDOW: C*L values, finite and >= 0 (the reader's copy) */
    const nd_class_stats *stats; /* STATS (the reader's copy) */
} nd_ws_item;
nd_ws_reader *nd_ws_reader_new(const nd_dataset *hdr); /* NULL on -ENOMEM */
void nd_ws_reader_free(nd_ws_reader *r);               /* NULL is a no-op */
/* The next frame of the bytes received so far: the bytes it took (> 0, it filled; its
 * pointers valid until the next call), 0 when more bytes are needed, or a negative code
 * with e saying what is wrong (a foreign or corrupt stream, a version or settings that
 * are not the trainer's, a frame out of order). Pure but for r, so it can be fuzzed. */
long nd_ws_read(nd_ws_reader *r, const uint8_t *buf, size_t n, nd_ws_item *it, nd_error *e);
/* The largest payload the next frame may have (a HELLO's before it, then a window's or a
 * STATS record's). */
size_t nd_ws_reader_max(const nd_ws_reader *r);
const char *nd_ws_reader_name(const nd_ws_reader *r); /* after HELLO; else NULL */

/* The capture host's side: `capture -o tcp:HOST:PORT`. A thread connects to the trainer
 * (reconnecting with backoff from 100 ms to 5 s while it is away) and streams the
 * windows pushed, from a queue of at most `buffer` windows: a full queue drops its
 * oldest window and counts it, so the capture never waits and memory stays bounded. */
typedef struct nd_wsend nd_wsend;
typedef struct nd_wsend_result {
    uint64_t windows;     /* pushed */
    uint64_t dropped;     /* oldest windows dropped at the full queue */
    uint64_t sent;        /* written to a connection */
    uint64_t acked;       /* taken by the trainer on the last connection (its ACK) */
    uint64_t unsent;      /* still queued when close gave up */
    uint64_t connections; /* accepted by the trainer */
} nd_wsend_result;
/* spec: tcp:HOST:PORT (HOST a name, an IPv4 address or [IPv6]); hdr: the capture's
 * channels, bins and classes (read now); name: how the trainer calls this sender. NULL
 * with e filled on a bad spec or -ENOMEM; the trainer need not be up yet. */
nd_wsend *nd_wsend_open(const char *spec, const nd_dataset *hdr, const char *name,
                        uint32_t buffer, nd_error *e);
/* Queues one window. 0, or the code of a refusal by the trainer (e filled once: its
 * message), which ends the stream: the settings do not match and retrying cannot help. */
int nd_wsend_push(nd_wsend *s, uint32_t cls, uint64_t group, const float *values, nd_error *e);
/* The capture's replay statistics of class cls so far: sent before the next windows. */
void nd_wsend_stats(nd_wsend *s, uint32_t cls, const nd_class_stats *st);
/* Sends what is queued and BYE, and waits for the trainer's ACK: at most linger_ns, or
 * until *stop. Frees s. 0 when the trainer acknowledged BYE (every window was sent, and
 * those lost on a connection that broke are counted by the trainer), else a code with e
 * saying how many windows were still queued and why. */
int nd_wsend_close(nd_wsend *s, uint64_t linger_ns, volatile sig_atomic_t *stop,
                   nd_wsend_result *res, nd_error *e);

/* ---- the pipeline of `netdiffus live` (pipeline.c) ---------------------------------- */

/* Everything one run takes. Strings and pointers are borrowed: they must outlive
 * nd_live_run. */
typedef struct nd_live_opts {
    /* capture: the flow table, classes and sources (capture.* of the program) */
    capture_opts capture;
    const char *const *sources; /* (n_sources) specs, one kind: pcap:FILE..., played on
                                   their own clock, or iface:NAME / dpdk:ARGS */
    unsigned n_sources;
    double speed;         /* pace of pcap files: 1 real time; 0 as fast as read */
    int32_t capture_core; /* CPU of the capture thread; -1: not pinned */
    uint32_t ring_size;   /* windows between capture and trainer, a power of two */
    /* learning */
    nd_online_opts online;
    int resume;                /* continue the checkpoint with its stored settings */
    nd_dm_settings model;      /* a new model's settings (not read with resume) */
    const char *provenance;    /* kept beside them in the model file (nd_dm_new) */
    nd_dm_legacy_fn legacy;    /* resume: settings of files from before they stored them */
    uint32_t trainer_threads;  /* a new model's train.threads; a resumed one keeps its own */
    const char *checkpoint;    /* the model file kept up to date; its folders are made */
    uint64_t checkpoint_every; /* steps between checkpoints; 0: not by steps */
    uint64_t checkpoint_interval_ns; /* time between checkpoints; 0: not by time */
    uint64_t max_steps;              /* stop at this step in total; 0: no limit */
    uint64_t duration_ns;            /* stop after this much wall time; 0: no limit */
    /* in-process replay of each new checkpoint */
    const char *replay_to;     /* sink spec; NULL: no replay thread */
    replay_opts replay;        /* replay's settings (loop, status and stop are the run's) */
    uint64_t sample_seed;      /* seeds the replay thread's sampling */
    uint32_t max_flow_windows; /* a replayed flow's windows at most (nd_flows_opts) */
    int flow_context;          /* bins of context of a continued window; < 0: L/2 */
    uint32_t flow_resample;    /* its steps taken this many times (nd_dm_set_resample) */
    /* a student distilled from the checkpoints, between the trainer's steps, which the
     * replay thread samples once there is one (docs/LIVE.md, "Distilling a student while
     * learning") */
    nd_dm_distill distill;  /* to_steps 0: none; from_steps, round_steps; lr 0: the model's */
    uint64_t distill_every; /* model steps from one student's start to the next one's */
    const char *student;    /* its model file, written when its distillation ends */
    /* reporting and control */
    uint64_t status_interval_ns; /* status line, stats and metrics; 0: 1 s */
    uint32_t metrics_port;       /* Prometheus text, GET /model.ndm; 0: off */
    const char *metrics_addr;    /* the endpoint's address; NULL: 127.0.0.1 */
    const char *listen;          /* [ADDR:]PORT: take window streams (nd_wsend) from
                                    other hosts too; NULL: none */
    FILE *stats;                 /* one JSON object per status and a final one; NULL: none */
    volatile sig_atomic_t *stop; /* set by a signal handler: checkpoint and end (may be NULL) */
} nd_live_opts;

/* What a run did, for the program's last words. */
typedef struct nd_live_result {
    double seconds;            /* wall time of the run */
    uint64_t packets;          /* packets captured */
    uint64_t windows, dropped; /* windows made; of them, dropped at the full ring */
    uint64_t steps_run, step;  /* steps in this run; the model's step */
    double loss;               /* running mean of the batch loss */
    int checkpoint;            /* 1: the last checkpoint was written; 0: no class warmed up */
    uint64_t replay_rounds, replay_packets; /* of the replay thread */
    uint64_t students;                      /* students written */
} nd_live_result;

/* Runs `netdiffus live`: a capture thread feeding the ring, the trainer on the calling
 * thread, a metrics thread (metrics_port), a replay thread (replay_to), until *stop,
 * max_steps, duration_ns, an error, or (when every input has ended and no class can
 * learn) ND_EFORMAT. A last checkpoint is written at the end. Returns 0 (also when *stop
 * ended it) with res filled, or a code with e filled. */
int nd_live_run(const nd_live_opts *o, nd_live_result *res, nd_error *e);

#endif
