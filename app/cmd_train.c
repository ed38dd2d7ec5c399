/*
 * cmd_train.c — `netdiffus train`: a dataset file into a model file. Builds the
 * class-conditional diffusion model over GAF images (model/dm.c), trains it with a
 * status line, checkpoints atomically, resumes exactly, and saves on Ctrl-C.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "model.h"
#include "opts.h"

static int run(int argc, char **argv)
{
    const char *conf_path = NULL, *out = NULL, *in = NULL, *sets[32];
    unsigned n_sets = 0;
    int resume = 0;
    double minutes = 0;
    long long steps = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--resume")) {
            resume = 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "-o") ||
                   !strcmp(a, "--output") || !strcmp(a, "--set") || !strcmp(a, "--steps") ||
                   !strcmp(a, "--minutes")) {
            if (!v) return cli_usage_error("train", "%s needs a value", a);
            i++;
            char *end;
            if (!strcmp(a, "-c") || !strcmp(a, "--config")) conf_path = v;
            else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
            else if (!strcmp(a, "--steps")) {
                steps = strtoll(v, &end, 10);
                if (*end || steps < 1) return cli_usage_error("train", "--steps %s: expected a positive integer", v);
            } else if (!strcmp(a, "--minutes")) {
                minutes = strtod(v, &end);
                if (*end || !(minutes > 0)) return cli_usage_error("train", "--minutes %s: expected a positive number", v);
            } else if (n_sets < 32) sets[n_sets++] = v;
            else return cli_usage_error("train", "more than 32 --set");
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("train", "unknown option '%s'", a);
        } else if (in) {
            return cli_usage_error("train", "one dataset only ('%s' and '%s')", in, a);
        } else {
            in = a;
        }
    }
    if (!in) return cli_usage_error("train", "no dataset given (IN.ndd)");
    if (!out) return cli_usage_error("train", "no model file: give -o MODEL.ndm");
    if (!conf_path && !resume) return cli_usage_error("train", "no config: give -c CONF.yaml");

    nd_error e = {0};
    nd_config cfg = {0};
    int rc = 0;
    nd_dataset *ds = NULL;
    nd_dm *m = NULL;
    if (resume) {
        /* sample.* does not change the training run: those keys may be set */
        unsigned n_train_sets = 0;
        for (unsigned k = 0; k < n_sets; k++) n_train_sets += strncmp(sets[k], "sample.", 7) != 0;
        if (conf_path || n_train_sets)
            nd_warn("--resume: continuing with the config stored in %s (-c and --set of "
                    "other keys than sample.* are not applied, so the run stays the same run)",
                    out);
        m = nd_dm_load(out, ND_DM_BATCH_TRAIN, opts_dm_legacy, &e);
        if (!m) rc = e.code;
        if (!rc && n_sets > n_train_sets) /* stored with the model from now on */
            rc = opts_dm_resume_sets(m, sets, n_sets, &e);
    } else {
        rc = nd_config_load(&cfg, conf_path, &e);
        for (unsigned k = 0; !rc && k < n_sets; k++) rc = nd_config_set(&cfg, sets[k], &e);
        if (!rc && n_sets) rc = nd_config_check(&cfg, &e);
    }
    if (!rc) {
        ds = nd_dataset_load(in, &e);
        if (!ds) rc = e.code;
    }
    if (!rc && !m) {
        m = opts_dm_new(&cfg, ds, &e);
        if (!m) rc = e.code;
    }
    if (rc) goto done;
    const nd_dm_settings *ms = nd_dm_get_settings(m);

    nd_train_opts o = {
        .steps = steps > 0 ? (uint64_t)steps : ms->train.steps,
        .max_seconds = minutes * 60.0,
        .path = out,
        .stop = &cli_stop,
    };
    cli_catch_stop();
    nd_info("training on %s: %llu windows, %u classes, %u parameters, from step %llu to %llu",
            in, (unsigned long long)ds->n_windows, ds->n_classes,
            (unsigned)nd_unet_num_params(nd_dm_unet(m)), (unsigned long long)nd_dm_step(m),
            (unsigned long long)o.steps);
    nd_train_report rep;
    rc = nd_dm_train(m, ds, &o, &rep, &e);
    if (!rc || rc == ND_EINTR) {
        nd_info("%s %llu steps in %.0f s (%.2f steps/s); loss %.4f, validation loss %.4f; "
                "model at step %llu -> %s",
                rc ? "stopped after" : "trained", (unsigned long long)rep.steps_done,
                rep.seconds, rep.seconds > 0 ? rep.steps_done / rep.seconds : 0.0,
                rep.last_loss, rep.val_loss, (unsigned long long)nd_dm_step(m), out);
        if (rc) {
            nd_info("resume with: netdiffus train %s -o %s --resume", in, out);
            rc = 0;
        } else if (ms->sample.calibrate) {
            /* stored with the model, so that sample and replay need not fit it again */
            nd_info("calibrating the decode on %u sampled windows per class "
                    "(sample.calibrate; Ctrl-C skips it, the model is saved)",
                    ms->sample.calibrate);
            nd_dm_set_stop(m, &cli_stop);
            rc = nd_dm_calibrate(m, &e);
            if (!rc) rc = nd_dm_save(m, out, &e);
            if (rc == ND_EINTR) {
                nd_info("calibration skipped: %s is saved without it (sample and replay "
                        "fit it when they need it)", out);
                rc = 0;
            }
        }
    }
done:
    if (rc) nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    nd_dm_free(m);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
    return cli_exit_code(rc);
}

const nd_command cmd_train = {
    "train", "train a diffusion model on a dataset",
    "usage: netdiffus train -c CONF IN.ndd -o MODEL.ndm [--set KEY=VAL] [--steps N]\n"
    "                       [--minutes M]\n"
    "       netdiffus train IN.ndd -o MODEL.ndm --resume [--steps N] [--minutes M]\n"
    "\n"
    "Learns what each class's windows look like: every window becomes a Gramian Angular\n"
    "Summation Field image per channel (plus an activity image per channel with\n"
    "model.mask), and a class-conditional diffusion U-Net (model.* settings) learns to\n"
    "denoise them. Batches draw classes evenly; the flows (groups) picked by\n"
    "train.val_fraction are held out and give a validation loss. The model file is\n"
    "written atomically every train.checkpoint_every steps, at the end, and on Ctrl-C.\n"
    "\n"
    "  -c, --config CONF   YAML config (model, train, sample sections; docs/CONFIG.md)\n"
    "      --set KEY=VAL   override one key, e.g. --set train.batch=16\n"
    "  -o, --output FILE   model file to write (.ndm)\n"
    "      --steps N       train until step N in total (default train.steps)\n"
    "      --minutes M     stop (and save) after M minutes of training\n"
    "      --resume        continue the run saved in MODEL.ndm with its own config: the\n"
    "                      same seed and thread count give the same weights as a run\n"
    "                      that never stopped (only --set sample.KEY=VAL applies: the\n"
    "                      sampler settings stored for sample, replay and calibration)\n"
    "\n"
    "The status line shows the step, the loss, images/s and the time left. At the end\n"
    "the decode calibration is fitted and stored (sample.calibrate; Ctrl-C skips it).\n"
    "Example:\n"
    "  netdiffus train -c conf/examples/videotrain.yaml vt.ndd -o vt.ndm --minutes 30\n"
    "\n"
    "Exit codes: 0 trained (also when stopped by Ctrl-C: the model is saved); 1 runtime\n"
    "failure; 2 bad usage or config.\n",
    run,
};
