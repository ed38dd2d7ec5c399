/*
 * cmd_sample.c — `netdiffus sample`: new windows from a model file. Runs the chosen
 * sampler with classifier-free guidance on the EMA weights (model/dm.c), decodes the
 * GAF images to raw bytes per bin, and writes a series CSV, a dataset file (which
 * `netdiffus replay --series` turns into packets: it carries the model's replay
 * statistics) and/or a PNG picture.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "conf.h"
#include "eval.h"
#include "model.h"
#include "opts.h"

enum {
    OPT_CSV = CLI_OPT_OWN,
    OPT_NDD,
    OPT_PNG,
    OPT_CLASS,
    OPT_SAMPLER,
    OPT_DECODE,
    OPT_CLIP,
    OPT_PROJECT,
    OPT_CSV2,
    OPT_RAW,
    OPT_SEED,
    OPT_STEPS,
    OPT_CALIBRATE,
    OPT_GUIDANCE,
    OPT_FLOW_WINDOWS,
    OPT_CONTEXT,
    OPT_RESAMPLE,
    OPT_BF16,
};

static const struct option longs[] = {
    {"csv", required_argument, NULL, OPT_CSV},
    {"ndd", required_argument, NULL, OPT_NDD},
    {"png", required_argument, NULL, OPT_PNG},
    {"class", required_argument, NULL, OPT_CLASS},
    {"sampler", required_argument, NULL, OPT_SAMPLER},
    {"decode", required_argument, NULL, OPT_DECODE},
    {"clip", required_argument, NULL, OPT_CLIP},
    {"project", required_argument, NULL, OPT_PROJECT},
    {"csv-other-decode", required_argument, NULL, OPT_CSV2},
    {"raw-csv", required_argument, NULL, OPT_RAW},
    {"count", required_argument, NULL, 'n'},
    {"seed", required_argument, NULL, OPT_SEED},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"calibrate", required_argument, NULL, OPT_CALIBRATE},
    {"guidance", required_argument, NULL, OPT_GUIDANCE},
    {"flow-windows", required_argument, NULL, OPT_FLOW_WINDOWS},
    {"context", required_argument, NULL, OPT_CONTEXT},
    {"resample", required_argument, NULL, OPT_RESAMPLE},
    {"bf16", no_argument, NULL, OPT_BF16},
    CLI_JSON_OPTION,
    {0},
};

typedef struct sample_args {
    const char *model, *csv, *ndd, *png, *cls, *csv2, *raw;
    const char *sampler, *decode, *clip, *project;
    long long count, seed, steps, calibrate; /* -1: not given */
    long long flow_windows, context;         /* -1: not given (flow_windows: windows) */
    long long resample;                      /* -1: not given */
    double guidance;                         /* -1: not given */
    int json, bf16;
} sample_args;

/* The option of code c with value v into o: 0, or ND_EXIT_USAGE when it is not one. */
static int take(sample_args *o, const cli_args *a, int c)
{
    const char **text = c == OPT_CSV       ? &o->csv
                        : c == OPT_NDD     ? &o->ndd
                        : c == OPT_PNG     ? &o->png
                        : c == OPT_CLASS   ? &o->cls
                        : c == OPT_SAMPLER ? &o->sampler
                        : c == OPT_DECODE  ? &o->decode
                        : c == OPT_CLIP    ? &o->clip
                        : c == OPT_PROJECT ? &o->project
                        : c == OPT_CSV2    ? &o->csv2
                        : c == OPT_RAW     ? &o->raw
                                           : NULL;
    long long *num = c == 'n'                ? &o->count
                     : c == OPT_SEED         ? &o->seed
                     : c == OPT_STEPS        ? &o->steps
                     : c == OPT_CALIBRATE    ? &o->calibrate
                     : c == OPT_FLOW_WINDOWS ? &o->flow_windows
                     : c == OPT_CONTEXT      ? &o->context
                     : c == OPT_RESAMPLE     ? &o->resample
                                             : NULL;
    if (text) *text = a->val;
    else if (c == CLI_OPT_JSON) o->json = 1;
    else if (c == OPT_BF16) o->bf16 = 1;
    else if (num ? cli_parse_ll(a->val, num)
                 : c != OPT_GUIDANCE || cli_parse_double(a->val, &o->guidance))
        return cli_usage_error("sample", "%s %s: expected a number", cli_args_name(a, c),
                               a->val);
    return 0;
}

/* The values of the options, each on its own and together. */
static int check(const sample_args *o)
{
    if (!o->model) return cli_usage_error("sample", "no model given (MODEL.ndm)");
    if (o->count < 1 || o->count > 10000000)
        return cli_usage_error("sample", "--count N: windows per class, 1 or more");
    if (!o->csv && !o->ndd && !o->png && !o->csv2 && !o->raw)
        return cli_usage_error("sample", "nothing to write: give --csv, --ndd and/or --png");
    const char *outs[] = {o->csv, o->ndd, o->png, o->csv2, o->raw};
    int to_stdout = 0;
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
        to_stdout += outs[i] && nd_is_stdio(outs[i]);
    if (to_stdout > 1)
        return cli_usage_error("sample", "%d outputs are '-': standard output carries one",
                               to_stdout);
    if (o->sampler && nd_sampler_from_name(o->sampler) < 0)
        return cli_usage_error("sample", "--sampler %s: expected ddim, ddpm or dpmpp",
                               o->sampler);
    if (o->clip && nd_clip_from_name(o->clip) < 0)
        return cli_usage_error("sample", "--clip %s: expected dynamic, clip or none", o->clip);
    if (o->project && strcmp(o->project, "on") && strcmp(o->project, "off"))
        return cli_usage_error("sample", "--project %s: expected on or off", o->project);
    if (o->decode && strcmp(o->decode, "lsq") && strcmp(o->decode, "diag"))
        return cli_usage_error("sample", "--decode %s: expected lsq or diag", o->decode);
    if (o->steps == 0 || o->steps > 10000 ||
        (o->guidance != -1 && !(o->guidance >= 0 && o->guidance <= 100)))
        return cli_usage_error("sample", "--steps is 1..10000, --guidance 0..100");
    if (o->calibrate < -1 || o->calibrate > 100000)
        return cli_usage_error("sample", "--calibrate N: windows per class, 0 (off) to 100000");
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
        if (cli_json_check("sample", o->json, outs[i])) return ND_EXIT_USAGE;
    if (o->flow_windows == 0 || o->flow_windows < -1 || o->flow_windows > 100000 ||
        o->context < -1 || (o->context >= 0 && o->flow_windows < 0))
        return cli_usage_error("sample", "--flow-windows N: 1 to 100000 windows per flow; "
                                         "--context K goes with it");
    if (o->resample != -1 && (o->flow_windows < 0 || o->resample < 1 || o->resample > 100))
        return cli_usage_error("sample", "--resample U: 1 to 100, with --flow-windows");
    if (o->flow_windows > 0 && (o->csv2 || o->raw))
        return cli_usage_error("sample", "--flow-windows: no --raw-csv or --csv-other-decode "
                                         "(flows with the decoder off: --calibrate 0)");
    return 0;
}

static int parse(sample_args *o, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "sample", argc, argv, "n:", longs);
    *o = (sample_args){.count = -1,
                       .seed = -1,
                       .steps = -1,
                       .calibrate = -1,
                       .guidance = -1,
                       .context = -1,
                       .resample = -1,
                       .flow_windows = -1};
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        if (c == CLI_BAD) return ND_EXIT_USAGE; /* said */
        if (c == CLI_OPERAND ? cli_args_operand(&a, &o->model, "model") : take(o, &a, c))
            return ND_EXIT_USAGE;
    }
    return check(o);
}

/* The model file with room for the stored sample.batch and its guidance copies, its
 * sampling settings (the stored defaults, into *stored) overridden by the options. NULL
 * with e filled. */
static nd_dm *model_open(const sample_args *o, nd_dm_sampling *stored, nd_error *e)
{
    nd_dm *m = opts_dm_open(o->model, ND_DM_BATCH_SAMPLE, e);
    if (!m) return NULL;
    const nd_dm_settings *ms = nd_dm_get_settings(m);
    nd_dm_sampling so = ms->sample;
    *stored = so;
    if (o->sampler) so.sampler = nd_sampler_from_name(o->sampler);
    if (o->clip) so.clip = nd_clip_from_name(o->clip);
    if (o->project) so.project = !strcmp(o->project, "on");
    if (o->steps > 0) so.steps = (uint32_t)o->steps;
    if (o->guidance >= 0) so.guidance = o->guidance;
    if (o->calibrate >= 0) so.calibrate = (uint32_t)o->calibrate;
    if (o->decode) so.decode = strcmp(o->decode, "diag") ? ND_GAF_LSQ : ND_GAF_DIAG;
    if (so.steps > ms->timesteps) so.steps = ms->timesteps;
    if (o->resample > 0) nd_dm_set_resample(m, (int)o->resample);
    if (o->bf16 && !nd_dm_set_bf16(m, 1))
        nd_warn("--bf16: this CPU (or build) has no AVX512-BF16 kernels; float32 it is");
    if (!nd_dm_set_sampling(m, &so, e)) return m;
    nd_dm_free(m);
    return NULL;
}

/* The same images decoded again: through the other GAF decode (--csv-other-decode, to
 * compare decodes), or by the model's GAF decode with the decoder off (--raw-csv: what
 * the network learnt, for eval --raw). */
enum { AGAIN_OTHER, AGAIN_RAW, NAGAIN };

/* What sampling writes: the windows (out), the same images decoded again (again[], NULL
 * when not asked for), and room for one class's windows and images. */
typedef struct sample_out {
    nd_dataset *out, *again[NAGAIN];
    float *x, *imgs;
} sample_out;

static int out_new(sample_out *so, const nd_dm *m, size_t count, const int again[NAGAIN],
                   nd_error *e)
{
    const nd_dataset *h = nd_dm_dataset(m);
    int any = 0, bad = !(so->out = nd_dataset_new_like(h));
    for (int i = 0; i < NAGAIN; i++)
        if (again[i]) any = 1, bad |= !(so->again[i] = nd_dataset_new_like(h));
    so->x = malloc(count * h->n_channels * h->L * sizeof(float));
    if (any)
        so->imgs =
            malloc(count * (size_t)nd_gaf_channels(nd_dm_gaf(m)) * h->L * h->L * sizeof(float));
    if (bad || !so->x || (any && !so->imgs)) return nd_error_set(e, -ENOMEM, "out of memory");
    return nd_dataset_set_config(so->out, h->config_yaml);
}

static void out_free(sample_out *so)
{
    free(so->x);
    free(so->imgs);
    nd_dataset_free(so->out);
    for (int i = 0; i < NAGAIN; i++) nd_dataset_free(so->again[i]);
}

/* count windows of each class first..last into so, from the noise of rng. */
static int sample_classes(sample_out *so, nd_dm *m, int first, int last, long long count,
                          nd_rng *rng, nd_error *e)
{
    const nd_dataset *h = nd_dm_dataset(m);
    const nd_gaf_spec *g = nd_dm_gaf(m);
    size_t WL = (size_t)h->n_channels * h->L, IMG = (size_t)nd_gaf_channels(g) * h->L * h->L;
    int rc = 0;
    for (int k = first; !rc && k <= last; k++) {
        rc = nd_dm_sample(m, k, (size_t)count, so->x, so->imgs, rng, e);
        for (long long i = 0; !rc && i < count; i++)
            rc = nd_dataset_append(so->out, (uint16_t)k, (uint64_t)(k * count + i),
                                   so->x + i * WL);
        int mode[NAGAIN] = {g->decode == ND_GAF_LSQ ? ND_GAF_DIAG : ND_GAF_LSQ, g->decode};
        for (int j = 0; j < NAGAIN; j++)
            for (long long i = 0; !rc && so->again[j] && i < count; i++) {
                nd_gaf_image_to_window(so->x + i * WL, so->imgs + i * IMG, g, nd_dm_scale(m, k),
                                       mode[j]);
                rc = nd_dataset_append(so->again[j], (uint16_t)k, (uint64_t)(k * count + i),
                                       so->x + i * WL);
            }
        if (rc && !e->msg[0]) nd_error_set(e, rc, "out of memory");
    }
    return rc;
}

/* count flows of N windows (fw) of each class first..last into so->out, each under a group
 * id of its own: a flow of T >= N·L bins (nd_dm_sample_flow, K bins of context) cut into
 * N windows. */
static int sample_flows(sample_out *so, nd_dm *m, int first, int last, long long count, int fw,
                        int K, nd_rng *rng, nd_error *e)
{
    const nd_dataset *h = nd_dm_dataset(m);
    int C = (int)h->n_channels, L = (int)h->L, H = L - K;
    if (K < 0 || K >= L)
        return nd_error_set(e, ND_EUSAGE, "--context %d: expected 0 to %d bins", K, L - 1);
    int G = 1 + ((fw - 1) * L + H - 1) / H; /* windows sampled per flow */
    size_t T = (size_t)L + (size_t)(G - 1) * H;
    float *x = malloc((size_t)count * C * T * sizeof *x),
          *w = malloc((size_t)C * L * sizeof *w);
    int rc = x && w ? 0 : nd_error_set(e, -ENOMEM, "out of memory");
    for (int k = first; !rc && k <= last; k++) {
        rc = nd_dm_sample_flow(m, k, (size_t)count, G, K, x, rng, e);
        for (long long f = 0; !rc && f < count; f++)
            for (int j = 0; !rc && j < fw; j++) {
                for (int c = 0; c < C; c++)
                    memcpy(w + (size_t)c * L, x + ((size_t)f * C + c) * T + (size_t)j * L,
                           L * sizeof *w);
                rc = nd_dataset_append(so->out, (uint16_t)k, (uint64_t)(k * count + f), w);
                if (rc) nd_error_set(e, rc, "out of memory");
            }
    }
    free(x);
    free(w);
    return rc;
}

/* The classes to sample: every one, or the one of --class (exit 2 when the model lacks
 * it). */
static int class_range(const nd_dm *m, const sample_args *o, int *first, int *last)
{
    const nd_dataset *h = nd_dm_dataset(m);
    *first = 0, *last = (int)h->n_classes - 1;
    if (!o->cls) return 0;
    for (uint32_t k = 0; k < h->n_classes; k++)
        if (!strcmp(h->class_names[k], o->cls)) {
            *first = *last = (int)k;
            return 0;
        }
    nd_err("%s: no class '%s' in this model (it has %u: see netdiffus inspect %s)", o->model,
           o->cls, h->n_classes, o->model);
    return ND_EXIT_USAGE;
}

/* --json: what was sampled, how, and where it went. An exit code. */
static int report_json(const nd_dm *m, const nd_dataset *out, double s, double net,
                       const sample_args *o)
{
    const nd_dm_sampling *so = &nd_dm_get_settings(m)->sample;
    nd_json *j = nd_json_new();
    nd_json_str(j, "model", o->model);
    nd_json_num(j, "seconds", s);
    nd_json_num(j, "network_seconds", net);
    nd_json_num(j, "windows_per_s", out->n_windows / s);
    nd_json_str(j, "sampler", nd_sampler_name(so->sampler));
    nd_json_u64(j, "steps", so->steps);
    nd_json_num(j, "guidance", so->guidance);
    nd_json_str(j, "clip", nd_clip_name(so->clip));
    nd_json_bool(j, "project", so->project);
    nd_json_bool(j, "calibrated", nd_dm_calibrated(m));
    nd_json *w = nd_json_obj(j, "outputs");
    nd_json_str(w, "csv", o->csv);
    nd_json_str(w, "ndd", o->ndd);
    nd_json_str(w, "png", o->png);
    nd_json_str(w, "csv_other_decode", o->csv2);
    nd_json_str(w, "raw_csv", o->raw);
    nd_dataset_json(out, j);
    return cli_json_print(j);
}

/* After a refit for other settings than the stored ones: the maps go into the model file
 * (beside the stored ones, which stay its defaults), so that the next sample with these
 * settings reuses them. Only when the file is still the one that was read (a trainer may
 * have written a newer model since: that one is kept). A failure is a warning: the
 * windows are written. */
static void keep_calibration(nd_dm *m, const char *path, const struct stat *read,
                             const nd_dm_sampling *stored)
{
    struct stat now;
    nd_error e = {0};
    if (stat(path, &now) || now.st_ino != read->st_ino || now.st_dev != read->st_dev ||
        now.st_size != read->st_size || now.st_mtim.tv_sec != read->st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != read->st_mtim.tv_nsec) {
        nd_warn("%s changed while sampling: the calibration for these settings is not "
                "stored (the next sample with them fits it again)",
                path);
        return;
    }
    nd_input_forget(path); /* read to be updated */
    if (nd_dm_set_sampling(m, stored, &e) || nd_dm_save(m, path, &e))
        nd_warn("the calibration for these settings is not stored: %s", e.msg);
    else
        nd_info("stored the calibration for these settings in %s (the next sample with them "
                "reuses it; the stored defaults are unchanged)",
                path);
}

/* The summary line of a run of s seconds, of which net in the network's passes. */
static void report(const nd_dm *m, const nd_dataset *out, double s, double net)
{
    const nd_dm_sampling *so = &nd_dm_get_settings(m)->sample;
    nd_info("%llu windows in %.1f s (%.3g windows/s, %.0f %% of the time in the network; %s, "
            "%u steps, guidance %g, clip %s%s, %s decode)",
            (unsigned long long)out->n_windows, s, out->n_windows / s,
            s > 0 ? 100.0 * net / s : 0.0, nd_sampler_name(so->sampler), so->steps,
            so->guidance, nd_clip_name(so->clip), so->project ? ", GASF projection" : "",
            nd_dm_calibrated(m) ? "calibrated"
            : so->calibrate     ? "uncalibrated (the model has no training targets: "
                                  "`netdiffus train --resume` adds them)"
                                : "uncalibrated");
}

static int run(int argc, char **argv)
{
    sample_args o;
    int rc = parse(&o, argc, argv), first, last;
    if (rc) return rc;
    nd_error e = {0};
    struct stat st;
    int local = !nd_is_url(o.model) && !stat(o.model, &st), refit = 0;
    nd_dm_sampling stored;
    nd_dm *m = model_open(&o, &stored, &e);
    if (!m) {
        nd_err("%s", e.msg);
        return cli_exit_code(e.code);
    }
    if ((rc = class_range(m, &o, &first, &last))) {
        nd_dm_free(m);
        return rc;
    }
    const nd_dm_sampling *ms = &nd_dm_get_settings(m)->sample;
    sample_out so = {0};
    int again[NAGAIN] = {o.csv2 != NULL, o.raw != NULL};
    rc = out_new(&so, m, (size_t)o.count, again, &e);
    nd_rng rng;
    nd_rng_seed(&rng, o.seed >= 0 ? (uint64_t)o.seed : ms->seed);
    if (!rc && ms->calibrate && !nd_dm_calibrated(m)) {
        nd_info("calibrating the decode for these settings: %u windows per class "
                "(--calibrate 0: off)",
                ms->calibrate);
        rc = nd_dm_calibrate(m, &e);
        refit = !rc;
    }
    uint64_t t0 = nd_now_ns();
    double net0 = nd_dm_net_seconds(m);
    if (!rc)
        rc = o.flow_windows > 0
                 ? sample_flows(&so, m, first, last, o.count, (int)o.flow_windows,
                                o.context >= 0 ? (int)o.context : (int)nd_dm_dataset(m)->L / 2,
                                &rng, &e)
                 : sample_classes(&so, m, first, last, o.count, &rng, &e);
    double secs = (double)(nd_now_ns() - t0) * 1e-9, net = nd_dm_net_seconds(m) - net0;
    if (!rc && nd_mpi_rank() > 0) { /* every rank of an MPI run has every window: rank 0
                                       writes them */
        out_free(&so);
        nd_dm_free(m);
        return ND_EXIT_OK;
    }
    if (!rc) report(m, so.out, secs, net);
    if (!rc && o.csv) rc = nd_csv_write(so.out, o.csv, &e);
    if (!rc && o.csv2) rc = nd_csv_write(so.again[AGAIN_OTHER], o.csv2, &e);
    if (!rc && o.raw) rc = nd_csv_write(so.again[AGAIN_RAW], o.raw, &e);
    if (!rc && o.ndd) rc = nd_dataset_save(so.out, o.ndd, &e);
    nd_png_column col = {so.out, "synthetic"};
    if (!rc && o.png) rc = nd_png_windows(o.png, &col, 1, 4, NULL, &e);
    if (rc) nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    int status = cli_exit_code(rc);
    if (!rc && o.json) status = report_json(m, so.out, secs, net, &o);
    if (!rc && refit && local) keep_calibration(m, o.model, &st, &stored);
    out_free(&so);
    nd_dm_free(m);
    return status;
}

const nd_command cmd_sample = {
    "sample",
    "generate new windows from a model",
    "usage: netdiffus sample MODEL.ndm --count N [--class NAME] [--csv OUT.csv]\n"
    "                        [--ndd OUT.ndd] [--png OUT.png] [--seed S] [--steps S]\n"
    "                        [--sampler ddim|ddpm|dpmpp] [--guidance W]\n"
    "                        [--clip dynamic|clip|none] [--project on|off]\n"
    "                        [--decode lsq|diag] [--calibrate N] [--raw-csv RAW.csv]\n"
    "                        [--flow-windows W [--context K] [--resample U]]\n"
    "                        [--bf16] [--json]\n"
    "\n"
    "Draws N new windows per class (every class, or only --class NAME) from a model made\n"
    "by `netdiffus train`, in raw units (bytes per bin). Defaults come from the sample\n"
    "section of the config stored in the model; the options override them. MODEL.ndm\n"
    "may be an http:// URL (a `live` trainer's http://HOST:PORT/model.ndm), fetched first.\n"
    "\n"
    "  --count N          windows per class\n"
    "  --class NAME       one class only\n"
    "  --csv FILE         series CSV (docs/FORMATS.md), for eval and other tools: whole\n"
    "                     counts (the decode rounded to the nearest integer); - for\n"
    "                     standard output (one output at most)\n"
    "  --ndd FILE         dataset file with the model's replay statistics, for\n"
    "                     `netdiffus replay --series FILE`\n"
    "  --png FILE         picture: series plots and GASF images of up to 4 windows per\n"
    "                     class (`netdiffus render REAL --synth SYNTH` puts real ones\n"
    "                     beside them)\n"
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
    "                     idle bins (per position, and in every channel at once), the\n"
    "                     busy values and the window volumes to the training data\n"
    "                     (default sample.calibrate; 0: off). Stored by train; fitted\n"
    "                     here when the sampler settings differ from the stored ones,\n"
    "                     then stored in MODEL.ndm beside them (up to 4 other settings;\n"
    "                     the stored defaults stay), so that it is fitted once\n"
    "  --csv-other-decode FILE  the same samples decoded the other way, to compare\n"
    "                     decodes on identical images (with --project off)\n"
    "  --raw-csv FILE     the same samples with the decode calibration off: what the\n"
    "                     network itself learnt (eval --raw puts it beside --synth), as\n"
    "                     the GAF decode gives it: bytes per bin with their fractions,\n"
    "                     not rounded (so is --csv-other-decode)\n"
    "  --flow-windows W   N flows per class instead, each W windows long and under a\n"
    "                     group id of its own, every window sampled as the continuation\n"
    "                     of the one before (`eval --flows` measures the seams)\n"
    "  --context K        bins of the previous window each window continues (default\n"
    "                     L/2; 0: independent windows end to end, the baseline)\n"
    "  --resample U       each denoising step of a continued window taken U times, noised\n"
    "                     back in between, so that the new bins agree with the context\n"
    "                     (RePaint's resampling; U times the passes; default 1)\n"
    "  --bf16             bfloat16 products in the network's convolutions (AVX512-BF16\n"
    "                     CPUs; faster, rounded to 8-bit mantissas: docs/PERFORMANCE.md)\n"
    "  --json             print the summary on stdout as one JSON object (README.md)\n"
    "\n"
    "A distilled student (`train --distill`) samples as it is stored: DDIM at its steps,\n"
    "no projection, one network pass a step. --guidance picks a scale within the range\n"
    "it learnt (`inspect` shows it; the teacher's scale by default); a student with the\n"
    "guidance learnt in samples at guidance 1.\n"
    "\n"
    "Under `mpirun -np N`, the sampler's batches (sample.batch windows each, and those of\n"
    "the calibration) go round the N processes, and rank 0 writes what one process\n"
    "would, bit for bit (docs/SCALE.md).\n"
    "\n"
    "Example:\n"
    "  netdiffus sample vt.ndm --count 100 --csv synth.csv --png synth.png\n"
    "\n"
    "Exit codes: 0 ok; 1 unreadable or corrupt model, write failure; 2 bad usage.\n",
    run,
    longs,
};
