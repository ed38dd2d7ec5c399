/*
 * cmd_eval.c — `netdiffus eval`: how close synthetic windows are to real ones
 * (distances, downstream accuracy, memorisation, and measures nothing is fitted to;
 * model/eval/ computes them), for the decoded windows and, with --raw, for the raw
 * model's beside them, and with --peer for another generator's windows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "model.h"

enum {
    OPT_REAL = CLI_OPT_OWN,
    OPT_SYNTH,
    OPT_RAW,
    OPT_TRAIN,
    OPT_PEER,
    OPT_SEED,
    OPT_CNN_STEPS,
    OPT_THREADS,
    OPT_PNG,
    OPT_FLOWS,
    OPT_FLOW_ROWS
};

static const struct option longs[] = {
    {"real", required_argument, NULL, OPT_REAL},
    {"synth", required_argument, NULL, OPT_SYNTH},
    {"raw", required_argument, NULL, OPT_RAW},
    {"train", required_argument, NULL, OPT_TRAIN},
    {"peer", required_argument, NULL, OPT_PEER},
    {"seed", required_argument, NULL, OPT_SEED},
    {"cnn-steps", required_argument, NULL, OPT_CNN_STEPS},
    {"threads", required_argument, NULL, OPT_THREADS},
    CLI_JSON_OPTION,
    {"png", required_argument, NULL, OPT_PNG},
    {"flows", no_argument, NULL, OPT_FLOWS},
    {"flow-rows", required_argument, NULL, OPT_FLOW_ROWS},
    {0},
};

/* --flow-rows N: every N windows of a class in file order one flow, whatever the file's
 * groups (a CSV has none). */
static void regroup(nd_dataset *ds, uint64_t n)
{
    uint64_t seen[ND_MAX_CLASSES] = {0};
    for (uint64_t w = 0; w < ds->n_windows; w++) {
        uint16_t k = ds->labels[w];
        ds->groups[w] = (seen[k]++ / n) * ND_MAX_CLASSES + k;
    }
}

static int run(int argc, char **argv)
{
    const char *real = NULL, *synth = NULL, *raw = NULL, *train = NULL, *peer = NULL,
               *png = NULL;
    long long seed = 1, cnn = 300, threads = 0, flow_rows = 0;
    int json = 0, flows = 0;
    cli_args a;
    cli_args_init(&a, "eval", argc, argv, "", longs);
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        long long *num = c == OPT_SEED        ? &seed
                         : c == OPT_CNN_STEPS ? &cnn
                         : c == OPT_THREADS   ? &threads
                         : c == OPT_FLOW_ROWS ? &flow_rows
                                              : NULL;
        if (c == OPT_REAL) real = a.val;
        else if (c == OPT_SYNTH) synth = a.val;
        else if (c == OPT_RAW) raw = a.val;
        else if (c == OPT_TRAIN) train = a.val;
        else if (c == OPT_PEER) peer = a.val;
        else if (c == CLI_OPT_JSON) json = 1;
        else if (c == OPT_PNG) png = a.val;
        else if (c == OPT_FLOWS) flows = 1;
        else if (c == CLI_OPERAND)
            return cli_usage_error("eval", "unexpected argument '%s'", a.val);
        else if (!num) return ND_EXIT_USAGE; /* CLI_BAD: said */
        else if (cli_parse_ll(a.val, num) || *num < 0)
            return cli_usage_error("eval", "%s %s: expected a number >= 0",
                                   cli_args_name(&a, c), a.val);
    }
    if (!real || !synth)
        return cli_usage_error("eval", "give --real REAL.csv and --synth SYNTH.csv");
    if (cli_json_check("eval", json, png)) return ND_EXIT_USAGE; /* --png - */
    if (flows && (raw || train || png))
        return cli_usage_error("eval", "--flows takes --real, --synth and --peer only");
    if (flow_rows && !flows) return cli_usage_error("eval", "--flow-rows goes with --flows");
    nd_error e = {0};
    nd_dataset *r = nd_windows_read(real, ND_NS_PER_SEC, &e),
               *s = r ? nd_windows_read(synth, ND_NS_PER_SEC, &e) : NULL;
    nd_dataset *t = s && train ? nd_windows_read(train, ND_NS_PER_SEC, &e) : NULL;
    nd_dataset *w = s && (t || !train) && raw ? nd_windows_read(raw, ND_NS_PER_SEC, &e) : NULL;
    nd_dataset *q = s && (t || !train) && (w || !raw) && peer
                        ? nd_windows_read(peer, ND_NS_PER_SEC, &e)
                        : NULL;
    int rc = !r || !s || (train && !t) || (raw && !w) || (peer && !q) ? e.code : 0;
    if (!rc) {
        nd_eval_opts o = {
            .seed = (uint64_t)seed, .cnn_steps = (int)cnn, .threads = (int)threads};
        /* with --json the table goes to stderr, for people, and stdout has the object */
        nd_json *js = json ? nd_json_new() : NULL;
        nd_json_str(js, "real", real);
        nd_json_str(js, "synth", synth);
        nd_json_str(js, "raw", raw);
        nd_json_str(js, "train", train);
        nd_json_str(js, "peer", peer);
        if (flow_rows) {
            regroup(r, (uint64_t)flow_rows);
            regroup(s, (uint64_t)flow_rows);
            if (q) regroup(q, (uint64_t)flow_rows);
        }
        const nd_dataset *sets[2] = {s, q};
        const char *names[2] = {"synth", "peer"};
        rc = flows ? nd_eval_flows(json ? stderr : stdout, js, r, sets, names, q ? 2 : 1, &e)
                   : nd_eval_report(json ? stderr : stdout, js, r, s, w, t, q, &o, &e);
        /* the picture first: a failed run prints no JSON object */
        if (!rc && png) rc = nd_eval_png(png, r, s, w, t, &e);
        if (rc || !js) nd_json_free(js);
        else if (cli_json_print(js)) rc = -EIO; /* frees js */
    }
    if (rc) nd_err("%s", e.msg);
    nd_dataset_free(r);
    nd_dataset_free(s);
    nd_dataset_free(w);
    nd_dataset_free(t);
    nd_dataset_free(q);
    return cli_exit_code(rc);
}

const nd_command cmd_eval = {
    "eval",
    "measure the fidelity of synthetic against real windows",
    "usage: netdiffus eval --real REAL.csv --synth SYNTH.csv [--raw RAW.csv]\n"
    "                      [--train TRAIN.csv] [--peer PEER.csv] [--cnn-steps N]\n"
    "                      [--seed S] [--threads T] [--png OUT.png] [--json]\n"
    "       netdiffus eval --flows --real REAL.ndd --synth SYNTH.ndd [--peer PEER.ndd]\n"
    "                      [--flow-rows N]\n"
    "\n"
    "Compares synthetic windows (from `netdiffus sample`) with real windows the model\n"
    "never saw, per class (matched by name) and as a mean over classes:\n"
    "  marginal   W1 distance of per-bin values, log1p(bytes), mean over channels\n"
    "  autocorr   mean |difference| of the class-mean autocorrelation, lags 1..L/4\n"
    "  volume     W1 distance of log1p(total bytes per window)\n"
    "With --train (the windows the model was trained on), each is also given for\n"
    "train-vs-real, the floor a perfect generator reaches (ratios 'x' are to it), and for\n"
    "a naive generator drawing every bin independently from the training windows.\n"
    "With --raw (the same samples decoded with the calibration off: sample --raw-csv),\n"
    "the raw model gets rows, classifier columns and a memorisation check of its own\n"
    "beside the decoded ones: what the network learnt, and what the decoder adds.\n"
    "\n"
    "Then classifiers tested on the real windows: trained on train (TRTR), on synthetic\n"
    "(TSTR), on both (TRSTR): logistic regression, 5-NN and a random forest on 18\n"
    "features per channel (log1p mean, std, min, max, quartiles, zero share, mean step,\n"
    "autocorrelation at lags 1 2 4 8, total, quarter means) with the mean of their\n"
    "TSTR/TRTR, and a small CNN on GASF images (--cnn-steps, default 300; 0 skips it).\n"
    "Last, memorisation: each synthetic window's distance to its nearest training window\n"
    "against the same for real windows; FLAG when synthetic windows sit much closer\n"
    "(median under half, over 20% below the real 5th percentile, or more near-copies\n"
    "of training windows than the real held-out windows have).\n"
    "\n"
    "Then measures nothing in the model or its decoder is fitted to, for every source:\n"
    "synthetic, raw, naive, the training windows (the floor) and --peer (another\n"
    "generator's windows with some of real's channels, matched by name; measured on\n"
    "those, and every measure is also given on the first channel alone to compare it):\n"
    "  two-sample test  real vs source, per class as many windows of each, 5-fold\n"
    "                   accuracy of a random forest (log1p bins + features) and of a\n"
    "                   1-D CNN; score |acc - 0.5| x 2 (0: indistinguishable)\n"
    "  TSTR/TRTR        logistic, 5-NN and random forest trained on the source\n"
    "  profiles         per bin position mean log1p(bytes) and idle share; positions\n"
    "                   outside 2 standard errors of the difference to real\n"
    "  runs             W1 of the idle- and busy-run lengths\n"
    "  coupling         W1 of the per-window correlation of the first two channels\n"
    "  memorisation     nearest-training-window distance, source / real (median)\n"
    "and one line per source, 'SUMMARY <source> key=value ...' ('-': not measured).\n"
    "\n"
    "With --json the whole report is one JSON object on stdout (distances, downstream,\n"
    "memorisation, independent, summary; not measured: null) and the text goes to stderr.\n"
    "\n"
    "With --flows, the windows of one group (a dataset's GRUP; a CSV's rows are\n"
    "one-window flows) and class, in file order, are one flow, and per class: W1 of\n"
    "flow durations (bins up to the last busy one) and of log1p(bytes per flow), and\n"
    "the seams: the jump ratio (mean |step| of log1p values across window edges over\n"
    "the same inside windows: 1 without a seam) and the correlation gap (lag-1\n"
    "correlation inside windows minus across edges: 0 without a seam), for real, --synth\n"
    "and --peer (e.g. `sample --flow-windows W --context 0`, independent windows), each\n"
    "distance beside the real-vs-real floor (real's flows dealt into two halves).\n"
    "--flow-rows N takes every N windows of a class in file order as one flow instead,\n"
    "whatever the groups (for CSV files, e.g. traces cut into windows of L bins).\n"
    "\n"
    "With --png, a picture of the three distances, per class a row and per channel the\n"
    "histogram of busy bins (idle shares below it), the mean autocorrelation by lag and\n"
    "the distribution of window totals: real against synthetic, and raw and training\n"
    "windows when given; each panel notes the distance the report gives (and its floor).\n"
    "\n"
    "Files: series CSV or .ndd (by the name, else by the content); one may be - for\n"
    "standard input. Exit codes: 0 ok; 1 unreadable input; 2 bad usage or\n"
    "files that do not match (channels, bins, no common class).\n",
    run,
    longs,
};
