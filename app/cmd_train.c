/*
 * cmd_train.c — `netdiffus train`: a dataset file into a model file. Builds the
 * class-conditional diffusion model over GAF images (model/dm.c), trains it with a
 * status line, checkpoints atomically, resumes exactly, and saves on Ctrl-C. With
 * --distill, the same run trains a few-step student of a trained model
 * (model/distill.c).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "model.h"
#include "opts.h"

enum {
    OPT_STEPS = CLI_OPT_OWN,
    OPT_MINUTES,
    OPT_RESUME,
    OPT_LOG,
    OPT_LOG_EVERY,
    OPT_DISTILL,
    OPT_STUDENT_STEPS,
    OPT_TEACHER_STEPS,
    OPT_ROUND_STEPS,
    OPT_LR,
    OPT_GUIDANCE_RANGE,
};

static const struct option longs[] = {
    CLI_CONFIG_OPTIONS,
    {"output", required_argument, NULL, 'o'},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"minutes", required_argument, NULL, OPT_MINUTES},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"log", required_argument, NULL, OPT_LOG},
    {"log-every", required_argument, NULL, OPT_LOG_EVERY},
    {"distill", required_argument, NULL, OPT_DISTILL},
    {"student-steps", required_argument, NULL, OPT_STUDENT_STEPS},
    {"teacher-steps", required_argument, NULL, OPT_TEACHER_STEPS},
    {"round-steps", required_argument, NULL, OPT_ROUND_STEPS},
    {"lr", required_argument, NULL, OPT_LR},
    {"guidance-range", required_argument, NULL, OPT_GUIDANCE_RANGE},
    CLI_JSON_OPTION,
    {0},
};

typedef struct train_args {
    cli_config cc;
    const char *out, *in, *log;
    int resume, json;
    long long log_every; /* steps between --log lines */
    double minutes;      /* 0: no limit */
    long long steps;     /* -1: train.steps (a student's: the end of its last round) */
    const char *teacher; /* --distill */
    long long student_steps, teacher_steps, round_steps; /* 0: not given */
    double lr;                                           /* 0: the teacher's train.lr */
    double guidance_lo, guidance_hi; /* --guidance-range; both 0: not given */
} train_args;

/* --guidance-range LO,HI into *lo, *hi; 0 or the usage error's exit code. */
static int guidance_range(const char *val, double *lo, double *hi)
{
    char buf[64];
    const char *comma = strchr(val, ',');
    size_t n = comma ? (size_t)(comma - val) : 0;
    if (comma && n < sizeof buf) {
        memcpy(buf, val, n);
        buf[n] = '\0';
        if (!cli_parse_double(buf, lo) && !cli_parse_double(comma + 1, hi) && *lo >= 0 &&
            *lo <= *hi && *hi <= 100)
            return 0;
    }
    return cli_usage_error("train",
                           "--guidance-range %s: expected LO,HI with 0 <= LO <= HI <= 100 "
                           "(e.g. 1,4; LO = HI: guidance learnt in, not an input)",
                           val);
}

/* A positive integer option's value into *v; 0 or the usage error's exit code. */
static int positive(const char *opt, const char *val, long long *v)
{
    if (cli_parse_ll(val, v) || *v < 1)
        return cli_usage_error("train", "--%s %s: expected a positive integer", opt, val);
    return 0;
}

static int parse(train_args *o, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "train", argc, argv, "c:o:", longs);
    a.config = &o->cc;
    o->steps = -1;
    o->log_every = 100;
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        switch (c) {
        case 'o': o->out = a.val; break;
        case OPT_RESUME: o->resume = 1; break;
        case OPT_LOG: o->log = a.val; break;
        case CLI_OPT_JSON: o->json = 1; break;
        case OPT_LOG_EVERY:
            if (positive("log-every", a.val, &o->log_every)) return ND_EXIT_USAGE;
            break;
        case OPT_STEPS:
            if (positive("steps", a.val, &o->steps)) return ND_EXIT_USAGE;
            break;
        case OPT_DISTILL: o->teacher = a.val; break;
        case OPT_STUDENT_STEPS:
            if (positive("student-steps", a.val, &o->student_steps)) return ND_EXIT_USAGE;
            break;
        case OPT_TEACHER_STEPS:
            if (positive("teacher-steps", a.val, &o->teacher_steps)) return ND_EXIT_USAGE;
            break;
        case OPT_ROUND_STEPS:
            if (positive("round-steps", a.val, &o->round_steps)) return ND_EXIT_USAGE;
            break;
        case OPT_LR:
            if (cli_parse_double(a.val, &o->lr) || !(o->lr > 0 && o->lr < 1))
                return cli_usage_error("train", "--lr %s: expected a number in (0, 1)", a.val);
            break;
        case OPT_GUIDANCE_RANGE:
            if (guidance_range(a.val, &o->guidance_lo, &o->guidance_hi)) return ND_EXIT_USAGE;
            break;
        case OPT_MINUTES:
            if (cli_parse_double(a.val, &o->minutes) || !(o->minutes > 0))
                return cli_usage_error("train", "--minutes %s: expected a positive number",
                                       a.val);
            break;
        case CLI_OPERAND:
            if (cli_args_operand(&a, &o->in, "dataset")) return ND_EXIT_USAGE;
            break;
        default: return ND_EXIT_USAGE; /* CLI_BAD: said */
        }
    }
    if (!o->in) return cli_usage_error("train", "no dataset given (IN.ndd)");
    if (!o->out) return cli_usage_error("train", "no model file: give -o MODEL.ndm");
    if (cli_json_check("train", o->json, o->out) || cli_json_check("train", o->json, o->log))
        return ND_EXIT_USAGE;
    if (nd_is_stdio(o->out))
        return cli_usage_error("train", "-o -: train writes checkpoints into its model file "
                                        "as it goes: give a file name");
    int student_opts = o->student_steps || o->teacher_steps || o->round_steps || o->lr > 0 ||
                       o->guidance_hi > 0;
    if (o->teacher && o->resume)
        return cli_usage_error("train", "--distill starts a student; --resume continues the "
                                        "one in MODEL.ndm: give one of them");
    if (o->teacher && o->cc.path)
        return cli_usage_error("train", "--distill: the student takes the teacher's settings; "
                                        "give no -c");
    if (student_opts && !o->teacher)
        return cli_usage_error("train", "--student-steps, --teacher-steps, --round-steps, --lr "
                                        "and --guidance-range go with --distill TEACHER.ndm");
    if (!o->cc.path && !o->resume && !o->teacher)
        return cli_usage_error("train", "no config: give -c CONF.yaml");
    return 0;
}

/* --distill: the teacher's model file, made the student of o's distillation. Returns the
 * student, or NULL with e filled. */
static nd_dm *distill_open(const train_args *o, nd_error *e)
{
    if (o->cc.n_sets)
        nd_warn("--distill: --set is not applied (the student takes the teacher's settings)");
    nd_dm *m = nd_dm_load(o->teacher, ND_DM_BATCH_TRAIN, opts_dm_legacy, e);
    if (!m) return NULL;
    const nd_dm_settings *s = nd_dm_get_settings(m);
    const nd_dm_distill *was = nd_dm_distilled(m); /* a student distilled further */
    nd_dm_distill d = {
        .to_steps = o->student_steps ? (uint32_t)o->student_steps : 4,
        .from_steps = o->teacher_steps ? (uint32_t)o->teacher_steps
                      : was            ? was->to_steps
                                       : 64,
        .round_steps = o->round_steps ? (uint64_t)o->round_steps : 1000,
        .lr = o->lr > 0 ? o->lr : s->train.lr,
        .guidance_lo = o->guidance_lo,
        .guidance_hi = o->guidance_hi,
    };
    if (o->student_steps > 4096 || o->teacher_steps > 4096) {
        nd_error_set(e, ND_EUSAGE, "--student-steps, --teacher-steps: at most 4096");
    } else if (!nd_dm_distill_begin(m, &d, e)) {
        return m;
    }
    nd_dm_free(m);
    return NULL;
}

/* The run saved in o->out, with its own config: only the sampling settings of --set
 * (sample.KEY=VAL, model.decode=MODE) apply, stored with the model from now on. Returns the
 * model, or NULL with e filled. */
static nd_dm *resume_open(const train_args *o, nd_error *e)
{
    const char *const *sets = o->cc.sets;
    unsigned n_sets = o->cc.n_sets, n_train_sets = 0;
    /* the sampling settings do not change the training run: those keys may be set */
    for (unsigned k = 0; k < n_sets; k++) n_train_sets += !opts_is_sampling_set(sets[k]);
    if (o->cc.path || n_train_sets)
        nd_warn(
            "--resume: continuing with the config stored in %s (-c and --set of "
            "other keys than sample.* and model.decode are not applied, so the run stays the same run)",
            o->out);
    nd_dm *m = nd_dm_load(o->out, ND_DM_BATCH_TRAIN, opts_dm_legacy, e);
    nd_input_forget(o->out); /* read to be updated: its checkpoints replace it */
    int rc = m ? 0 : e->code;
    if (!rc && n_sets > n_train_sets) /* stored with the model from now on */
        rc = opts_dm_resume_sets(m, sets, n_sets, e);
    if (!rc) return m;
    nd_dm_free(m);
    return NULL;
}

/* After training: the decode calibration, stored with the model so that sample and
 * replay need not fit it again (Ctrl-C skips it; the model is saved either way). */
static int calibrate(nd_dm *m, const char *out, nd_error *e)
{
    nd_info("calibrating the decode on %u sampled windows per class "
            "(sample.calibrate; Ctrl-C skips it, the model is saved)",
            nd_dm_get_settings(m)->sample.calibrate);
    nd_dm_set_stop(m, &cli_stop);
    int rc = nd_dm_calibrate(m, e); /* spread over the ranks of an MPI run */
    if (!rc && nd_mpi_rank() == 0) rc = nd_dm_save(m, out, e);
    if (rc == ND_EINTR) {
        nd_info("calibration skipped: %s is saved without it (sample and replay "
                "fit it when they need it)",
                out);
        rc = 0;
    }
    return rc;
}

/* nd_train_opts.report: one --log line. */
static void log_line(void *arg, const nd_train_progress *p)
{
    FILE **log = arg;
    if (!*log) return;
    nd_json *j = nd_json_new();
    nd_json_u64(j, "step", p->step);
    nd_json_u64(j, "steps", p->steps);
    nd_json_num(j, "loss", p->loss);
    nd_json_num(j, "val_loss", p->val_loss);
    nd_json_num(j, "lr", p->lr);
    nd_json_num(j, "images_per_s", p->images_per_s);
    nd_json_num(j, "t", p->seconds);
    nd_json_u64(j, "ranks", (uint64_t)nd_mpi_ranks());
    nd_json_num(j, "allreduce_s", p->allreduce_s);
    nd_json_bool(j, "final", p->final);
    nd_error e = {0};
    if (nd_json_write(j, *log, 0, "--log", &e)) {
        nd_warn("%s; training goes on without it", e.msg);
        fclose(*log);
        *log = NULL;
    }
    nd_json_free(j);
}

/* --json: what the run did. */
static int train_json(const nd_dm *m, const train_args *o, const nd_train_report *rep, int rc)
{
    nd_json *j = nd_json_new();
    nd_json_str(j, "dataset", o->in);
    nd_json_str(j, "model", o->out);
    nd_json_u64(j, "steps_done", rep->steps_done);
    nd_json_u64(j, "step", nd_dm_step(m));
    nd_json_num(j, "seconds", rep->seconds);
    nd_json_num(j, "steps_per_s", rep->seconds > 0 ? rep->steps_done / rep->seconds : NAN);
    nd_json_num(j, "loss", rep->last_loss);
    nd_json_num(j, "val_loss", rep->val_loss < 0 ? NAN : rep->val_loss);
    nd_json_bool(j, "interrupted", rc == ND_EINTR);
    nd_json_bool(j, "calibrated", nd_dm_calibrated(m));
    nd_json_u64(j, "ranks", (uint64_t)nd_mpi_ranks());
    nd_json_num(j, "allreduce_s", rep->allreduce_s);
    return cli_json_print(j);
}

/* Trains m on ds to the step count of o (or train.steps), then calibrates. In an MPI
 * run, rank 0 alone validates, writes the model file, the log and the summary. */
static int train(nd_dm *m, const nd_dataset *ds, const train_args *o, nd_error *e)
{
    const nd_dm_settings *ms = nd_dm_get_settings(m);
    int first = nd_mpi_rank() == 0;
    const nd_dm_distill *dd = nd_dm_distilled(m);
    if (dd && nd_mpi_ranks() > 1)
        return nd_error_set(e, ND_EUSAGE, "distillation runs in one process, not under mpirun");
    nd_train_opts to = {
        .steps = o->steps > 0 ? (uint64_t)o->steps
                 : dd         ? nd_dm_distill_end(m)
                              : ms->train.steps,
        .max_seconds = o->minutes * 60.0,
        .path = first ? o->out : NULL,
        .stop = &cli_stop,
        .quiet = !first,
        .report = log_line,
        .report_every = (uint64_t)o->log_every,
    };
    FILE *log = o->log && first ? fopen(o->log, "a") : NULL;
    if (o->log && first && !log)
        return nd_error_set(e, -errno, "--log %s: %s", o->log, strerror(errno));
    to.report_arg = &log;
    cli_catch_stop();
    if (dd)
        nd_info(
            "distilling: the teacher's %s %u steps (guidance %g, the student's input %g to "
            "%g) into a DDIM student of %u "
            "steps in %u rounds of %llu steps (from %u), lr %g; on %s from step %llu to %llu",
            nd_sampler_name((int)dd->teacher_sampler), dd->teacher_steps, dd->guidance,
            dd->guidance_lo, dd->guidance_hi, dd->to_steps,
            (unsigned)log2((double)dd->from_steps / dd->to_steps),
            (unsigned long long)dd->round_steps, dd->from_steps, dd->lr, o->in,
            (unsigned long long)nd_dm_step(m), (unsigned long long)to.steps);
    else
        nd_info(
            "training on %s: %llu windows, %u classes, %u parameters, from step %llu to %llu%s",
            o->in, (unsigned long long)ds->n_windows, ds->n_classes,
            (unsigned)nd_unet_num_params(nd_dm_unet(m)), (unsigned long long)nd_dm_step(m),
            (unsigned long long)to.steps,
            nd_mpi_ranks() > 1 ? ", split over the ranks of mpirun" : "");
    nd_train_report rep;
    int rc = nd_dm_train(m, ds, &to, &rep, e);
    if (log) fclose(log);
    if (rc && rc != ND_EINTR) return rc;
    char val[48] = "";
    if (rep.val_loss >= 0) snprintf(val, sizeof val, ", validation loss %.4f", rep.val_loss);
    nd_info("%s %llu steps in %.0f s (%.2f steps/s); loss %.4f%s; model at step %llu -> %s",
            rc ? "stopped after" : "trained", (unsigned long long)rep.steps_done, rep.seconds,
            rep.seconds > 0 ? rep.steps_done / rep.seconds : 0.0, rep.last_loss, val,
            (unsigned long long)nd_dm_step(m), o->out);
    if (rc) nd_info("resume with: netdiffus train %s -o %s --resume", o->in, o->out);
    int crc = !rc && ms->sample.calibrate ? calibrate(m, o->out, e) : 0;
    if (!crc && o->json && first && train_json(m, o, &rep, rc)) return -EIO;
    return crc;
}

static int run(int argc, char **argv)
{
    train_args o = {0};
    int rc = parse(&o, argc, argv);
    if (rc) return rc;
    nd_error e = {0};
    nd_config cfg = {0};
    nd_dataset *ds = NULL;
    nd_dm *m = NULL;
    if (o.resume || o.teacher) {
        m = o.resume ? resume_open(&o, &e) : distill_open(&o, &e);
        rc = m ? 0 : e.code;
    } else if ((rc = cli_config_open(&cfg, &o.cc))) {
        nd_config_free(&cfg);
        return rc; /* said */
    }
    if (!rc) {
        ds = nd_dataset_load(o.in, &e);
        if (!ds) rc = e.code;
    }
    if (!rc && !m) {
        m = opts_dm_new(&cfg, ds, &e);
        if (!m) rc = e.code;
    }
    if (!rc) rc = train(m, ds, &o, &e);
    if (rc) nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    nd_dm_free(m);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
    return cli_exit_code(rc);
}

const nd_command cmd_train = {
    "train",
    "train a diffusion model on a dataset",
    "usage: netdiffus train -c CONF IN.ndd -o MODEL.ndm [--set KEY=VAL] [--steps N]\n"
    "                       [--minutes M] [--log FILE [--log-every N]] [--json]\n"
    "       netdiffus train IN.ndd -o MODEL.ndm --resume [--steps N] [--minutes M]\n"
    "                       [--log FILE [--log-every N]] [--json]\n"
    "       netdiffus train IN.ndd -o STUDENT.ndm --distill TEACHER.ndm [--student-steps N]\n"
    "                       [--teacher-steps N] [--round-steps N] [--lr X]\n"
    "                       [--guidance-range LO,HI] [--steps N] [--minutes M]\n"
    "                       [--log FILE [--log-every N]] [--json]\n"
    "\n"
    "Learns what each class's windows look like: every window becomes a Gramian Angular\n"
    "Summation Field image per channel (plus an activity image per channel with\n"
    "model.mask), and a class-conditional diffusion U-Net (model.* settings) learns to\n"
    "denoise them. Batches draw classes evenly; the flows (groups) picked by\n"
    "train.val_fraction are held out and give a validation loss. The model file is\n"
    "written atomically every train.checkpoint_every steps, at the end, and on Ctrl-C.\n"
    "A checkpoint that cannot be written (full disk) is warned about and training goes\n"
    "on; a final model that cannot go to FILE goes to $TMPDIR/netdiffus-PID-NAME\n"
    "(/tmp without TMPDIR), and the error says so (exit 1).\n"
    "\n"
    "  -c, --config CONF   YAML config (model, train, sample sections; docs/CONFIG.md)\n"
    "      --set KEY=VAL   override one key, e.g. --set train.batch=16\n"
    "  -o, --output FILE   model file to write (.ndm)\n"
    "      --steps N       train until step N in total (default train.steps)\n"
    "      --minutes M     stop (and save) after M minutes of training\n"
    "      --resume        continue the run saved in MODEL.ndm with its own config: the\n"
    "                      same seed and thread count give the same weights as a run\n"
    "                      that never stopped (only --set sample.KEY=VAL and\n"
    "                      model.decode=MODE apply: the sampling settings stored for\n"
    "                      sample, replay and calibration)\n"
    "      --log FILE      append one JSON object per line to FILE: step, steps, loss,\n"
    "                      val_loss (null but at validations), lr, images_per_s, t\n"
    "                      (seconds), ranks, allreduce_s (of t, summing gradients over\n"
    "                      the ranks) and final; every --log-every steps (default 100),\n"
    "                      at each checkpoint's validation and at the end\n"
    "      --json          print the summary on stdout as one JSON object (README.md)\n"
    "\n"
    "Distillation (docs/MODEL.md, \"Distillation\"): a student that samples in a few\n"
    "network passes what TEACHER.ndm (a v-prediction model) samples in many. It starts as\n"
    "the teacher and learns, in one pass, two deterministic DDIM steps of the teacher with\n"
    "its classifier-free guidance (two passes each) at a scale drawn from a range for\n"
    "each image, which it takes as an input; each following round it learns two of its\n"
    "own last round's steps in one, halving the steps, down to --student-steps. IN.ndd\n"
    "is the dataset the teacher was trained on (its windows are the starting points).\n"
    "The student is an ordinary model file: sample, replay and live use it as it is\n"
    "(DDIM at its steps, one pass a step, the teacher's guidance unless --guidance picks\n"
    "another in the range); `inspect` shows how it was made. --resume continues an\n"
    "interrupted distillation on the same trajectory.\n"
    "      --distill TEACHER.ndm  the model to distil (its settings are the student's), or a\n"
    "                             finished student, from its steps down\n"
    "      --student-steps N      sampling steps of the student at the end (default 4)\n"
    "      --teacher-steps N      DDIM steps of the teacher in the first round, N = the\n"
    "                             student's x 2^rounds (default 64; a student's: its own)\n"
    "      --round-steps N        optimiser steps per round (default 1000); --steps\n"
    "                             defaults to the end of the last round\n"
    "      --lr X                 the student's learning rate (default the teacher's)\n"
    "      --guidance-range LO,HI the guidance scales the student takes as an input\n"
    "                             (default 1 to twice the teacher's, at least 2; LO = HI:\n"
    "                             the teacher's scale learnt in, sampled at guidance 1;\n"
    "                             a finished student keeps its own)\n"
    "\n"
    "The status line shows the step, the loss, images/s and the time left; when stderr\n"
    "is not a terminal, the same is logged as a line every 30 s. At the end\n"
    "the decode calibration is fitted and stored (sample.calibrate; Ctrl-C skips it).\n"
    "\n"
    "Under `mpirun -np N`, N processes train one model: train.batch is the batch of all\n"
    "of them, each trains on its part of it and the gradients are summed over them;\n"
    "rank 0 validates and writes MODEL.ndm, the log and the summary. The model equals one\n"
    "process's up to float rounding, and --resume continues with any N (docs/SCALE.md).\n"
    "Example:\n"
    "  netdiffus train -c conf/examples/videotrain.yaml vt.ndd -o vt.ndm --minutes 30\n"
    "  mpirun -np 2 netdiffus train -c conf/examples/videotrain.yaml vt.ndd -o vt.ndm\n"
    "  netdiffus train vt.ndd -o vt-4.ndm --distill vt.ndm --student-steps 4\n"
    "\n"
    "Exit codes: 0 trained (also when stopped by Ctrl-C: the model is saved); 1 runtime\n"
    "failure; 2 bad usage or config.\n",
    run,
    longs,
};
