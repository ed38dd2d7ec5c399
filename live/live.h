/*
 * live.h — online learning for `netdiffus live` (libnd_live): the ring that hands
 * finished windows from a capture thread to the trainer, reservoir sampling, and the
 * online trainer (a reservoir per class plus recent windows, classes that join while
 * running, checkpoints with the reservoirs inside the model file). docs/LIVE.md.
 */
#ifndef ND_LIVE_H
#define ND_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "nd.h"

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
/* Bytes the ring holds (all slots). */
size_t nd_wring_bytes(uint32_t size, size_t wf);

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
nd_online *nd_online_resume(const char *path, const nd_online_opts *o,
                            nd_dm_legacy_fn legacy, const nd_dataset *hdr, nd_error *e);
void nd_online_free(nd_online *o); /* NULL is a no-op */

/* Takes one window of class cls (hdr's index) into the reservoir and recent buffer;
 * adds the class to the model when it has warmed up. Returns 0 or a code. */
int nd_online_add(nd_online *o, uint32_t cls, uint64_t group, const float *x, nd_error *e);
/* One training step. Returns 1 (a step was taken), 0 (no class has warmed up yet) or a
 * negative code. */
int nd_online_step(nd_online *o, nd_error *e);
/* Replay statistics of class cls (hdr's index), stored with the next checkpoint. */
void nd_online_set_stats(nd_online *o, uint32_t cls, const nd_class_stats *st);
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
/* The bound on reservoir and recent-buffer memory for n_classes classes of wf floats. */
size_t nd_online_memory_bound(const nd_online_opts *o, uint32_t n_classes, size_t wf);

#endif
