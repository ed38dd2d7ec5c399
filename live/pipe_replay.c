/*
 * pipe_replay.c — checkpoints of `netdiffus live` and the in-process replay of each
 * (live_impl.h). After each checkpoint the trainer copies its EMA weights into a
 * sampling-only model (nd_dm_snapshot) and swaps it into a one-slot mailbox (an atomic
 * pointer); the replay thread swaps it out, samples windows from it and replays them.
 * No lock and no file read: the copy is made between two steps, so sampling never races
 * the optimiser, and it is the model of the checkpoint just written. A copy not yet
 * taken is replaced (and freed) by the next one: replay always starts from the newest
 * weights.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "live_impl.h"

int nd_live_checkpoint(nd_live *L, const char *path, int *written, nd_error *e)
{
    nd_online *o = L->online;
    /* each class's replay statistics: the own capture's plus every sender's newest */
    nd_class_stats *st = malloc(sizeof *st);
    if (!st) return nd_error_set(e, -ENOMEM, "live: checkpoint: out of memory");
    for (uint32_t i = 0; i < L->n_classes; i++) {
        pthread_mutex_lock(&L->mu);
        *st = L->snap.stats[i];
        pthread_mutex_unlock(&L->mu);
        if (L->recv) nd_wrecv_add_stats(L->recv, i, st);
        nd_online_set_stats(o, i, st);
    }
    free(st);
    int rc = nd_online_save(o, path, written, e);
    /* once a student is written, the replay thread samples students only
     * (pipe_distill.c) */
    if (rc || !*written || !L->replay || L->students) return rc;
    /* the replay thread samples a copy of the EMA weights made here, between two steps,
     * so it never races the optimiser and never reads the file back; a copy that cannot
     * be made only costs that round of replay */
    nd_error se = {0};
    nd_dm *m = nd_online_model(o);
    nd_dm *snap = nd_dm_snapshot(m, ND_DM_BATCH_SAMPLE, &se);
    if (!snap) {
        nd_warn("live: replay: %s; the checkpoint at step %" PRIu64 " is not replayed", se.msg,
                nd_dm_step(m));
        return 0;
    }
    nd_dm *old = atomic_exchange(&L->fresh, snap); /* not taken yet: superseded */
    nd_dm_free(old);
    return 0;
}

void *nd_live_replay_main(void *arg)
{
    nd_live_replay *R = arg;
    nd_live *L = R->L;
    nd_error e = {0};
    replay_sink *sink = replay_sink_open(L->o->replay_to, &e);
    if (!sink) {
        nd_err("live: replay: %s", e.msg);
        return NULL;
    }
    nd_rng rng;
    nd_rng_seed(&rng, L->o->sample_seed);
    nd_dm *m = NULL;
    int failed = 0;
    while (!R->stop) {
        /* the trainer's copy of its EMA weights at the newest checkpoint: taking it
         * empties the slot, so each copy is sampled once and freed by this thread */
        nd_dm *next = atomic_exchange(&L->fresh, NULL);
        if (!next) {
            nd_live_sleep_ns(100000000ull);
            continue;
        }
        nd_dm_free(m);
        m = next;
        nd_dm_set_resample(m, (int)L->o->flow_resample);
        /* replay's policy (nd_dm_sample_flows), classes evenly, flows as long as the
         * captured ones (replay.max_flow_windows, replay.context, replay.resample), one
         * flow per sampler call so that a stop is seen within one window's denoising run */
        nd_flows_opts fo = {.flows = L->o->replay.flows ? L->o->replay.flows : 8,
                            .batch = 1,
                            .stop = &R->stop,
                            .tag = "live: replay",
                            .quiet = 1,
                            .max_windows = L->o->max_flow_windows,
                            .context = L->o->flow_context};
        nd_dataset *ds = nd_dm_sample_flows(m, &fo, &rng, &e);
        if (!ds) {
            if (e.code != ND_EINTR) nd_warn("live: replay: %s", e.msg);
            continue;
        }
        replay_opts o = L->o->replay;
        o.loop = 1;
        o.flow_runs = 1;
        o.status = 0; /* the main thread draws live's status line */
        o.stop = &R->stop;
        replay_stats st;
        int rc = replay_run(ds, &o, sink, &st, &e);
        nd_dataset_free(ds);
        if (rc && rc != ND_EINTR) {
            nd_warn("live: replay: %s", e.msg);
            failed = 1;
            break;
        }
        R->rounds++;
        R->packets += st.packets;
    }
    nd_dm_free(m);
    if (failed) replay_sink_discard(sink); /* a pcap file: the previous one stays */
    else if (replay_sink_close(sink, &e)) nd_warn("live: replay: %s", e.msg);
    return NULL;
}
