/*
 * cmd_sample.c — `netdiffus sample`: new windows from a model file. Runs the chosen
 * sampler with classifier-free guidance on the EMA weights (model/dm.c), decodes the
 * GAF images to raw bytes per bin, and writes a series CSV, a dataset file (which
 * `netdiffus replay --series` turns into packets: it carries the model's replay
 * statistics) and/or a PNG grid.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "eval.h"
#include "model.h"
#include "opts.h"

static int run(int argc, char **argv)
{
    const char *model = NULL, *csv = NULL, *ndd = NULL, *png = NULL, *cls = NULL, *csv2 = NULL;
    const char *sampler = NULL, *decode = NULL, *clip = NULL, *project = NULL;
    long long count = -1, seed = -1, steps = -1, calibrate = -1;
    double guidance = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] == '-' && a[1]) {
            if (!v) return cli_usage_error("sample", "%s needs a value", a);
            i++;
            char *end = NULL;
            if (!strcmp(a, "--csv")) csv = v;
            else if (!strcmp(a, "--ndd")) ndd = v;
            else if (!strcmp(a, "--png")) png = v;
            else if (!strcmp(a, "--class")) cls = v;
            else if (!strcmp(a, "--sampler")) sampler = v;
            else if (!strcmp(a, "--decode")) decode = v;
            else if (!strcmp(a, "--clip")) clip = v;
            else if (!strcmp(a, "--project")) project = v;
            else if (!strcmp(a, "--csv-other-decode")) csv2 = v;
            else if (!strcmp(a, "--count") || !strcmp(a, "-n")) count = strtoll(v, &end, 10);
            else if (!strcmp(a, "--seed")) seed = strtoll(v, &end, 10);
            else if (!strcmp(a, "--steps")) steps = strtoll(v, &end, 10);
            else if (!strcmp(a, "--calibrate")) calibrate = strtoll(v, &end, 10);
            else if (!strcmp(a, "--guidance")) guidance = strtod(v, &end);
            else return cli_usage_error("sample", "unknown option '%s'", a);
            if (end && (*end || end == v))
                return cli_usage_error("sample", "%s %s: expected a number", a, v);
        } else if (model) {
            return cli_usage_error("sample", "one model only ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
    }
    if (!model) return cli_usage_error("sample", "no model given (MODEL.ndm)");
    if (count < 1 || count > 10000000)
        return cli_usage_error("sample", "--count N: windows per class, 1 or more");
    if (!csv && !ndd && !png && !csv2)
        return cli_usage_error("sample", "nothing to write: give --csv, --ndd and/or --png");
    if (sampler && nd_sampler_from_name(sampler) < 0)
        return cli_usage_error("sample", "--sampler %s: expected ddim, ddpm or dpmpp", sampler);
    if (clip && nd_clip_from_name(clip) < 0)
        return cli_usage_error("sample", "--clip %s: expected dynamic, clip or none", clip);
    if (project && strcmp(project, "on") && strcmp(project, "off"))
        return cli_usage_error("sample", "--project %s: expected on or off", project);
    if (decode && strcmp(decode, "lsq") && strcmp(decode, "diag"))
        return cli_usage_error("sample", "--decode %s: expected lsq or diag", decode);
    if (steps == 0 || steps > 10000 || (guidance != -1 && !(guidance >= 0 && guidance <= 100)))
        return cli_usage_error("sample", "--steps is 1..10000, --guidance 0..100");
    if (calibrate < -1 || calibrate > 100000)
        return cli_usage_error("sample", "--calibrate N: windows per class, 0 (off) to 100000");

    nd_error e = {0};
    /* room for the stored sample.batch and its guidance copies */
    nd_dm *m = nd_dm_load(model, ND_DM_BATCH_SAMPLE, opts_dm_legacy, &e);
    nd_dataset *out = NULL, *out2 = NULL;
    float *x = NULL, *imgs = NULL;
    int rc = 0;
    if (!m) {
        nd_err("%s", e.msg);
        return cli_exit_code(e.code);
    }
    nd_dm_sampling so = nd_dm_get_settings(m)->sample; /* the stored defaults */
    if (sampler) so.sampler = nd_sampler_from_name(sampler);
    if (clip) so.clip = nd_clip_from_name(clip);
    if (project) so.project = !strcmp(project, "on");
    if (steps > 0) so.steps = (uint32_t)steps;
    if (guidance >= 0) so.guidance = guidance;
    if (calibrate >= 0) so.calibrate = (uint32_t)calibrate;
    if (decode) so.decode = strcmp(decode, "diag") ? ND_GAF_LSQ : ND_GAF_DIAG;
    if (so.steps > nd_dm_get_settings(m)->timesteps) so.steps = nd_dm_get_settings(m)->timesteps;
    if ((rc = nd_dm_set_sampling(m, &so, &e))) goto done;
    const nd_dataset *h = nd_dm_dataset(m);
    int first = 0, last = (int)h->n_classes - 1;
    if (cls) {
        first = -1;
        for (uint32_t k = 0; k < h->n_classes; k++)
            if (!strcmp(h->class_names[k], cls)) first = last = (int)k;
        if (first < 0) {
            nd_err("%s: no class '%s' in this model (it has %u: see netdiffus inspect %s)",
                   model, cls, h->n_classes, model);
            nd_dm_free(m);
            return ND_EXIT_USAGE;
        }
    }
    const char *names[ND_MAX_CHANNELS];
    for (uint32_t c = 0; c < h->n_channels; c++) names[c] = h->channel_names[c];
    out = nd_dataset_new(h->n_channels, names, h->L, h->bin_ns);
    size_t WL = (size_t)h->n_channels * h->L;
    x = malloc((size_t)count * WL * sizeof(float));
    const nd_gaf_spec *g = nd_dm_gaf(m);
    size_t IMG = (size_t)nd_gaf_channels(g) * h->L * h->L;
    if (csv2) {
        out2 = nd_dataset_new(h->n_channels, names, h->L, h->bin_ns);
        imgs = malloc((size_t)count * IMG * sizeof(float));
    }
    if (!out || !x || (csv2 && (!out2 || !imgs))) {
        rc = nd_error_set(&e, -ENOMEM, "out of memory");
        goto done;
    }
    for (uint32_t k = 0; k < h->n_classes; k++) {
        nd_dataset_class(out, h->class_names[k]);
        out->stats[k] = h->stats[k];
        if (out2) nd_dataset_class(out2, h->class_names[k]);
    }
    rc = nd_dataset_set_config(out, h->config_yaml);
    nd_rng rng;
    nd_rng_seed(&rng, seed >= 0 ? (uint64_t)seed : so.seed);
    if (!rc && so.calibrate && !nd_dm_calibrated(m)) {
        nd_info("calibrating the decode for these settings: %u windows per class "
                "(--calibrate 0: off)", so.calibrate);
        rc = nd_dm_calibrate(m, &e);
    }
    uint64_t t0 = nd_now_ns();
    for (int k = first; !rc && k <= last; k++) {
        rc = nd_dm_sample(m, k, (size_t)count, x, imgs, &rng, &e);
        for (long long i = 0; !rc && i < count; i++)
            rc = nd_dataset_append(out, (uint16_t)k, (uint64_t)(k * count + i), x + i * WL);
        for (long long i = 0; !rc && out2 && i < count; i++) {
            /* the same images through the other decode, for comparing decodes */
            nd_gaf_image_to_window(x + i * WL, imgs + i * IMG, g, nd_dm_scale(m, k),
                                   g->decode == ND_GAF_LSQ ? ND_GAF_DIAG : ND_GAF_LSQ);
            rc = nd_dataset_append(out2, (uint16_t)k, (uint64_t)(k * count + i), x + i * WL);
        }
        if (rc && !e.msg[0]) nd_error_set(&e, rc, "out of memory");
    }
    double s = (double)(nd_now_ns() - t0) * 1e-9;
    if (!rc)
        nd_info("%llu windows in %.1f s (%.3g windows/s; %s, %u steps, guidance %g, clip %s%s, "
                "%s decode)", (unsigned long long)out->n_windows, s, out->n_windows / s,
                nd_sampler_name(so.sampler), so.steps, so.guidance, nd_clip_name(so.clip),
                so.project ? ", GASF projection" : "",
                nd_dm_calibrated(m) ? "calibrated"
                : so.calibrate ? "uncalibrated (the model has no training targets: "
                                          "`netdiffus train --resume` adds them)"
                                        : "uncalibrated");
    if (!rc && csv) rc = nd_csv_write(out, csv, &e);
    if (!rc && csv2) rc = nd_csv_write(out2, csv2, &e);
    if (!rc && ndd) rc = nd_dataset_save(out, ndd, &e);
    if (!rc && png) rc = nd_png_windows(png, out, 8, &e);
done:
    if (rc) nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    free(x);
    free(imgs);
    nd_dataset_free(out);
    nd_dataset_free(out2);
    nd_dm_free(m);
    return cli_exit_code(rc);
}

const nd_command cmd_sample = {
    "sample", "generate new windows from a model",
    "usage: netdiffus sample MODEL.ndm --count N [--class NAME] [--csv OUT.csv]\n"
    "                        [--ndd OUT.ndd] [--png OUT.png] [--seed S] [--steps S]\n"
    "                        [--sampler ddim|ddpm|dpmpp] [--guidance W]\n"
    "                        [--clip dynamic|clip|none] [--project on|off]\n"
    "                        [--decode lsq|diag] [--calibrate N]\n"
    "\n"
    "Draws N new windows per class (every class, or only --class NAME) from a model made\n"
    "by `netdiffus train`, in raw units (bytes per bin). Defaults come from the sample\n"
    "section of the config stored in the model; the options override them.\n"
    "\n"
    "  --count N          windows per class\n"
    "  --class NAME       one class only\n"
    "  --csv FILE         series CSV (docs/FORMATS.md), for eval and other tools\n"
    "  --ndd FILE         dataset file with the model's replay statistics, for\n"
    "                     `netdiffus replay --series FILE`\n"
    "  --png FILE         picture: GAF images and series of up to 8 windows per class\n"
    "  --seed S           noise seed (default sample.seed): same seed, same windows\n"
    "  --steps S          denoising steps (default sample.steps)\n"
    "  --sampler NAME     ddim (default), ddpm (ancestral) or dpmpp (DPM-Solver++(2M),\n"
    "                     good at 10-20 steps)\n"
    "  --guidance W       classifier-free guidance scale (1: none; default sample.guidance)\n"
    "  --clip MODE        predicted clean image: dynamic (default), clip or none\n"
    "  --project on|off   at every step, replace the predicted clean image by the GASF\n"
    "                     image of its decoded series (default sample.project: on)\n"
    "  --decode MODE      image to series: diag (the diagonal) or lsq (least squares\n"
    "                     over the whole image); default model.decode (diag)\n"
    "  --calibrate N      decode calibration: N windows per class sampled to fit the\n"
    "                     share of idle bins, the busy values, the window volumes and\n"
    "                     the autocorrelation to the training data\n"
    "                     (default sample.calibrate; 0: off). Stored by train; refitted\n"
    "                     here when the sampler settings differ from the stored ones\n"
    "  --csv-other-decode FILE  the same samples decoded the other way, to compare\n"
    "                     decodes on identical images (with --project off)\n"
    "\n"
    "Example:\n"
    "  netdiffus sample vt.ndm --count 100 --csv synth.csv --png synth.png\n"
    "\n"
    "Exit codes: 0 ok; 1 unreadable or corrupt model, write failure; 2 bad usage.\n",
    run,
};
