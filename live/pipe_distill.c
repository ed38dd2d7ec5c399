/*
 * pipe_distill.c — live's student (docs/LIVE.md, "Distilling a student while learning").
 * When a checkpoint has been written and distill_every model steps have passed since the
 * last student began, the trainer loads that checkpoint as the student of a progressive
 * distillation (model/distill.c: nd_dm_distill_begin) and from then on takes one step of
 * the student after each of its own, on batches drawn from the same reservoirs
 * (nd_online_distill_step). When the student's last round ends it is calibrated, written
 * to its own file (atomically, like the checkpoint) and handed to the replay thread,
 * which samples the newest student from then on instead of the checkpoints.
 *
 * The student starts from the checkpoint file, not from a copy in memory, so that it is
 * exactly what `netdiffus train --distill CHECKPOINT` would make. A failure (a model
 * that cannot be distilled, a file that cannot be written, a loss that is not finite) is
 * warned about and costs that student only: training goes on. A student not finished
 * when the run ends is dropped, as its teacher's checkpoint is kept.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "live_impl.h"

int nd_live_distill_setup(nd_live *L, nd_error *e)
{
    const nd_live_opts *o = L->o;
    if (!o->distill.to_steps) return 0;
    if (o->student && o->student[0]) {
        L->student_path = strdup(o->student);
    } else { /* live.ndm -> live-student.ndm */
        const char *c = o->checkpoint;
        size_t n = strlen(c), stem = n >= 4 && !strcmp(c + n - 4, ".ndm") ? n - 4 : n;
        if ((L->student_path = malloc(stem + sizeof "-student.ndm")))
            sprintf(L->student_path, "%.*s-student.ndm", (int)stem, c);
    }
    if (!L->student_path) return nd_error_set(e, -ENOMEM, "live: out of memory");
    if (!strcmp(L->student_path, o->checkpoint))
        return nd_error_set(e, ND_EUSAGE,
                            "live.student: '%s' is live.checkpoint too: give the student a "
                            "file of its own",
                            L->student_path);
    L->student_next = o->distill_every;
    return 0;
}

void nd_live_distill_free(nd_live *L)
{
    if (L->student) {
        nd_info("live: the student of the checkpoint at step %" PRIu64
                " was not finished (%" PRIu64 " of %" PRIu64 " steps): dropped",
                L->student_from, nd_dm_step(L->student) - L->student_from,
                nd_dm_distill_end(L->student) - L->student_from);
        nd_dm_free(L->student);
        L->student = NULL;
    }
    free(L->student_path);
    L->student_path = NULL;
}

void nd_live_distill_start(nd_live *L, uint64_t step)
{
    const nd_live_opts *o = L->o;
    if (!L->student_path || L->student || step < L->student_next) return;
    nd_error e = {0};
    nd_dm *s = nd_dm_load(o->checkpoint, ND_DM_BATCH_TRAIN, o->legacy, &e);
    nd_input_forget(o->checkpoint); /* read to be rewritten: the next checkpoints replace it */
    nd_dm_distill d = o->distill;
    if (s && !(d.lr > 0)) d.lr = nd_dm_get_settings(s)->train.lr;
    if (!s || nd_dm_distill_begin(s, &d, &e)) {
        nd_status_end();
        nd_warn("live: no student of the checkpoint at step %" PRIu64 ": %s%s", step, e.msg,
                e.code == ND_EUSAGE ? "; no student in this run" : "");
        if (e.code == ND_EUSAGE) { /* the model cannot be distilled: it never will */
            free(L->student_path);
            L->student_path = NULL;
        }
        nd_dm_free(s);
        L->student_next = step + o->distill_every;
        return;
    }
    nd_dm_set_stop(s, L->stop);
    L->student = s;
    L->student_from = step;
    L->student_next = step + o->distill_every;
    nd_status_end();
    nd_info("live: distilling the checkpoint at step %" PRIu64 " (%s %u steps, guidance %g) "
            "into a %u-step student, %" PRIu64 " steps, one after each of the model's",
            step, nd_sampler_name((int)nd_dm_distilled(s)->teacher_sampler),
            nd_dm_distilled(s)->teacher_steps, nd_dm_distilled(s)->guidance, d.to_steps,
            nd_dm_distill_end(s) - step);
}

/* The finished student: calibrated (when that is stopped or fails, it is written
 * without: `sample` and replay fit it when they need it), written, handed to the replay
 * thread. */
static void finish_student(nd_live *L)
{
    nd_dm *s = L->student;
    L->student = NULL;
    nd_error e = {0};
    int rc = nd_dm_get_settings(s)->sample.calibrate ? nd_dm_calibrate(s, &e) : 0;
    if (rc && rc != ND_EINTR)
        nd_warn("live: the student's decode calibration: %s; it is written without", e.msg);
    rc = nd_dm_save(s, L->student_path, &e);
    nd_status_end();
    if (rc) {
        nd_warn("live: the student of the checkpoint at step %" PRIu64 " is lost: %s",
                L->student_from, e.msg);
        nd_dm_free(s);
        return;
    }
    L->students++;
    nd_info("live: student of the checkpoint at step %" PRIu64 " (%u steps) -> %s",
            L->student_from, nd_dm_distilled(s)->to_steps, L->student_path);
    if (L->replay) { /* from now on the replay thread samples students only */
        nd_dm *snap = nd_dm_snapshot(s, ND_DM_BATCH_SAMPLE, &e);
        if (snap) nd_dm_free(atomic_exchange(&L->fresh, snap));
        else nd_warn("live: replay: %s; the student is not replayed", e.msg);
    }
    nd_dm_free(s);
}

void nd_live_distill_step(nd_live *L)
{
    if (!L->student) return;
    nd_error e = {0};
    if (nd_online_distill_step(L->online, L->student, NULL, &e)) {
        nd_status_end();
        nd_warn("live: the student of the checkpoint at step %" PRIu64 " is dropped: %s",
                L->student_from, e.msg);
        nd_dm_free(L->student);
        L->student = NULL;
        return;
    }
    if (nd_dm_step(L->student) >= nd_dm_distill_end(L->student)) finish_student(L);
}

uint64_t nd_live_distill_progress(const nd_live *L)
{
    return L->student ? nd_dm_step(L->student) - L->student_from : 0;
}
