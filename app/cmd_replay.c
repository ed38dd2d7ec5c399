/*
 * cmd_replay.c — `netdiffus replay`: series → timed packets on a pcap file, an interface
 * or a DPDK port, through libnd_replay. The series are given (CSV or dataset file), or
 * sampled fresh from a model (MODEL.ndm, model/dm.c) into a dataset of one window per
 * flow that carries the model's classes and replay statistics, then replayed the same way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "model.h"
#include "opts.h"
#include "replay.h"

static const char help[] =
    "usage: netdiffus replay --series IN.csv|IN.ndd --to SINK [options]\n"
    "       netdiffus replay MODEL.ndm [--class NAME | --mix CONF] --flows N --to SINK\n"
    "                        [options]\n"
    "\n"
    "Turns per-flow series into packets: sizes from the class's packet-size histogram so\n"
    "that the bytes of every bin match the series, send times from its inter-arrival\n"
    "statistics, TCP (handshake, seq/ack, FIN) or UDP over IPv4 or IPv6 with addresses\n"
    "from the replay pools of the config. Each packet has an absolute deadline\n"
    "t0 + offset/speed. Ctrl-C stops cleanly; a pcap written so far stays valid.\n"
    "\n"
    "With MODEL.ndm (from `netdiffus train`), N fresh windows are sampled first, one per\n"
    "flow (EMA weights, the sample section stored in the model, batches of sample.batch\n"
    "on model.threads threads): all of class NAME, or shared by the replay.mix weights\n"
    "of CONF, or in proportion to each class's flows in the training data (evenly\n"
    "when it has no flow counts, as with imports); packets use the model's statistics.\n"
    "\n"
    "SINK:\n"
    "  pcap:FILE        nanosecond pcap, written without waiting (deadlines become\n"
    "                   timestamps from 2000-01-01); same seed, same file byte for byte\n"
    "  iface:NAME       libpcap injection on an interface, in real time x speed\n"
    "  dpdk:EAL-ARGS    DPDK tx bursts on the first port, e.g.\n"
    "                   'dpdk:--no-huge --no-pci -m 256 --vdev=net_null0'\n"
    "\n"
    "options:\n"
    "  -s, --series FILE  series CSV (docs/FORMATS.md) or dataset file (.ndd) to replay\n"
    "  -t, --to SINK      where packets go (required)\n"
    "  -c, --config CONF  YAML config: the replay section (pools, MACs, seed, mix...)\n"
    "      --mix CONF     same as -c, and CONF must have a replay.mix: flows per class by\n"
    "                     its weights\n"
    "      --class NAME   replay (or sample) only this class\n"
    "      --flows N      flows per pass (series: default one per window; model: default\n"
    "                     replay.flows, N windows are sampled)\n"
    "      --speed X      time scale, 2 = twice as fast; 0 or max = as fast as possible\n"
    "      --seed S       random seed of the sampled windows, sizes, times, addresses and\n"
    "                     ports (default replay.seed)\n"
    "      --loop N       passes over the flows; 0 = until --duration or Ctrl-C\n"
    "      --duration D   stop after D of output time (e.g. 30s); flows without a known\n"
    "                     arrival rate are spread over D\n"
    "      --bin D        bin width of a series CSV (default: capture.bin of the config)\n"
    "      --spin D       busy-wait the last D before each deadline, sleep before that\n"
    "                     (default 30us; more helps on hosts with slow wake-ups)\n"
    "\n"
    "Examples:\n"
    "  netdiffus replay vt.ndm --flows 1000 --to pcap:synth.pcap --seed 7\n"
    "  netdiffus replay vt.ndm --mix mix.yaml --flows 200 --to iface:veth0 --duration 60s\n"
    "\n"
    "Exit codes: 0 ok (also after Ctrl-C); 1 unreadable, corrupt or untrained model,\n"
    "sink failure; 2 bad usage or config (unknown class, mix naming a class the model\n"
    "lacks). docs/REPLAY.md explains the packetizer's choices and error bounds.\n";

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

static int parse_u64(const char *opt, const char *s, uint64_t *v)
{
    char *end;
    if (!*s || *s == '-') return cli_usage_error("replay", "%s: expected a whole number, got '%s'", opt, s);
    unsigned long long x = strtoull(s, &end, 10);
    if (*end) return cli_usage_error("replay", "%s: expected a whole number, got '%s'", opt, s);
    *v = x;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Series sampled from a model                                                          */
/* ------------------------------------------------------------------------------------ */

/* "a, b, c": the model's classes, for error messages. */
static void class_list(const nd_dataset *h, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (uint32_t k = 0; k < h->n_classes && n + ND_NAME_MAX + 8 < len; k++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? ", " : "", h->class_names[k]);
    if (h->n_classes && n + ND_NAME_MAX + 8 >= len) snprintf(buf + n, len - n, ", ...");
}

static int find_class(const nd_dataset *h, const char *name)
{
    for (uint32_t k = 0; k < h->n_classes; k++)
        if (!strcmp(h->class_names[k], name)) return (int)k;
    return -1;
}

/* Loads path for sampling, with room for the stored sample.batch images and their
 * guidance copies. Refuses models that cannot give windows: no classes, or no training
 * step. Returns the model (the caller frees it) or NULL with e filled. */
static nd_dm *model_open(const char *path, nd_error *e)
{
    nd_dm *m = nd_dm_load(path, ND_DM_BATCH_SAMPLE, opts_dm_legacy, e);
    if (!m) return NULL;
    if (!nd_dm_dataset(m)->n_classes) {
        nd_error_set(e, ND_EFORMAT, "%s: the model has no classes: nothing to sample", path);
    } else if (!nd_dm_step(m)) {
        nd_error_set(e, ND_EFORMAT, "%s: the model has not been trained (0 steps): train it "
                     "first (netdiffus train -c CONF DATA.ndd -o %s)", path, path);
    } else {
        return m;
    }
    nd_dm_free(m);
    return NULL;
}

/* Share of the flows per model class into w (n_classes): class cls alone, the replay.mix
 * weights of mixcfg, or the classes' flow counts in the training data. Returns 0, or ND_EUSAGE / ND_ECONFIG with e naming the
 * class the model lacks and listing the ones it has. */
static int class_weights(double *w, const nd_dm *m, const char *path, const char *cls,
                         const nd_config *mixcfg, nd_error *e)
{
    const nd_dataset *h = nd_dm_dataset(m);
    char list[1024];
    class_list(h, list, sizeof list);
    /* No class and no mix: each class in proportion to its flows in the training data
     * (what the capture saw), or evenly when the data has no flow counts (imports). */
    uint64_t flows = 0;
    for (uint32_t k = 0; k < h->n_classes; k++) flows += h->stats[k].flows;
    for (uint32_t k = 0; k < h->n_classes; k++)
        w[k] = cls || mixcfg ? 0 : flows ? (double)h->stats[k].flows : 1;
    if (cls) {
        int k = find_class(h, cls);
        if (k < 0)
            return nd_error_set(e, ND_EUSAGE, "%s: unknown class '%s' (the model has: %s)",
                                path, cls, list);
        w[k] = 1;
        return 0;
    }
    if (!mixcfg) return 0;
    double sum = 0;
    for (uint32_t i = 0; i < mixcfg->replay.n_mix; i++) {
        const nd_mix_entry *x = &mixcfg->replay.mix[i];
        int k = find_class(h, x->name);
        if (k < 0)
            return nd_error_set(e, ND_ECONFIG, "%s: replay.mix: class '%s' is not in the "
                                "model %s (it has: %s)", mixcfg->path, x->name, path, list);
        w[k] += x->weight;
        sum += x->weight;
    }
    if (!(sum > 0))
        return nd_error_set(e, ND_ECONFIG, "%s: replay.mix: the weights add up to 0",
                            mixcfg->path);
    return 0;
}

/* True when window x (C, L) has no bin with a byte in either direction: the packetizer
 * would send nothing for it. */
static int window_empty(const float *x, uint32_t L, int down, int up)
{
    if (down < 0 || up < 0) return 0; /* replay_run says which channels it needs */
    for (uint32_t b = 0; b < L; b++)
        if (x[(size_t)down * L + b] >= 0.5f || x[(size_t)up * L + b] >= 0.5f) return 0;
    return 1;
}

/* Samples one window per flow from m: largest-remainder counts of flows per class by w,
 * drawn class after class in batches of sample.batch (a status line while it runs), then
 * shuffled so that the classes mix in the flow plan. Windows with no byte at all are
 * drawn again (up to as many redraws as the class has flows): a training window always
 * has active bins, and an empty one would be a flow that sends nothing. The dataset
 * carries the model's classes and statistics (the caller frees it). Everything random
 * comes from seed. NULL with e filled on failure, or ND_EINTR when *stop was set. */
static nd_dataset *sample_flows(nd_dm *m, const double *w, uint32_t flows, uint64_t seed,
                                volatile sig_atomic_t *stop, nd_error *e)
{
    const nd_dataset *h = nd_dm_dataset(m);
    const nd_dm_sampling *ms = &nd_dm_get_settings(m)->sample;
    uint32_t K = h->n_classes, L = h->L;
    size_t WL = (size_t)h->n_channels * L, SB = ms->batch;
    const char *names[ND_MAX_CHANNELS];
    int down = -1, up = -1;
    for (uint32_t c = 0; c < h->n_channels; c++) {
        names[c] = h->channel_names[c];
        if (!strcmp(names[c], "bytes_down")) down = (int)c;
        if (!strcmp(names[c], "bytes_up")) up = (int)c;
    }
    nd_dataset *ds = nd_dataset_new(h->n_channels, names, L, h->bin_ns);
    uint64_t *count = calloc(K, sizeof *count);
    double *frac = calloc(K, sizeof *frac);
    float *x = malloc(SB * WL * sizeof *x);
    if (!ds || !count || !frac || !x) goto oom;
    for (uint32_t k = 0; k < K; k++) {
        if (nd_dataset_class(ds, h->class_names[k]) != (int)k) goto oom;
        ds->stats[k] = h->stats[k];
    }

    double W = 0;
    uint64_t given = 0;
    for (uint32_t k = 0; k < K; k++) W += w[k];
    for (uint32_t k = 0; k < K; k++) {
        double q = (double)flows * w[k] / W;
        count[k] = (uint64_t)q;
        frac[k] = w[k] > 0 ? q - (double)count[k] : -1;
        given += count[k];
    }
    while (given < flows) { /* the rest, one each, to the largest fractions */
        uint32_t best = 0;
        for (uint32_t k = 1; k < K; k++)
            if (frac[k] > frac[best]) best = k;
        count[best]++, frac[best] = -1, given++;
    }

    nd_rng rng;
    nd_rng_seed(&rng, seed);
    uint64_t t0 = nd_now_ns(), shown = 0, done = 0, redrawn = 0; /* shown: last status */
    for (uint32_t k = 0; k < K; k++) {
        uint64_t need = count[k], budget = count[k], kept_empty = 0;
        while (need) {
            if (stop && *stop) {
                nd_error_set(e, ND_EINTR, "stopped by signal while sampling (%llu of %u "
                             "windows, nothing sent)", (unsigned long long)done, flows);
                goto fail;
            }
            size_t B = need < SB ? (size_t)need : SB;
            int rc = nd_dm_sample(m, (int)k, B, x, NULL, &rng, e);
            if (rc) goto fail;
            for (size_t i = 0; i < B; i++) {
                if (window_empty(x + i * WL, L, down, up)) {
                    if (budget) {
                        budget--, redrawn++;
                        continue;
                    }
                    kept_empty++;
                }
                if (nd_dataset_append(ds, (uint16_t)k, ds->n_windows, x + i * WL)) goto oom;
                need--, done++;
            }
            if (flows > SB && nd_now_ns() - shown >= ND_NS_PER_SEC / 4) {
                shown = nd_now_ns();
                double s = (double)(shown - t0) * 1e-9;
                nd_status("replay: sampling %llu/%u windows (%s), %.1f windows/s",
                          (unsigned long long)done, flows, h->class_names[k],
                          s > 0 ? (double)done / s : 0.0);
            }
        }
        if (kept_empty)
            nd_warn("replay: %llu sampled windows of class '%s' have no bytes even after "
                    "redrawing: those flows send nothing", (unsigned long long)kept_empty,
                    h->class_names[k]);
    }
    nd_status_end();
    double s = (double)(nd_now_ns() - t0) * 1e-9;
    nd_info("replay: sampled %u windows in %.1f s (%.1f windows/s; %s, %u steps, guidance %g)",
            flows, s, s > 0 ? flows / s : 0.0, nd_sampler_name(ms->sampler), ms->steps,
            ms->guidance);
    if (redrawn)
        nd_debug("replay: %llu sampled windows without bytes were drawn again",
                 (unsigned long long)redrawn);

    /* Fisher-Yates over whole windows: classes interleave in the flow plan */
    for (uint64_t i = ds->n_windows; i > 1; i--) {
        uint64_t j = nd_rng_below(&rng, (uint32_t)i);
        if (j == i - 1) continue;
        float *a = ds->values + (i - 1) * WL, *b = ds->values + j * WL;
        memcpy(x, a, WL * sizeof *x);
        memcpy(a, b, WL * sizeof *x);
        memcpy(b, x, WL * sizeof *x);
        uint16_t l = ds->labels[i - 1];
        ds->labels[i - 1] = ds->labels[j];
        ds->labels[j] = l;
    }
    free(count);
    free(frac);
    free(x);
    return ds;
oom:
    nd_error_set(e, -ENOMEM, "replay: out of memory for %u sampled windows", flows);
fail:
    nd_status_end();
    free(count);
    free(frac);
    free(x);
    nd_dataset_free(ds);
    return NULL;
}

static int run(int argc, char **argv)
{
    const char *series = NULL, *to = NULL, *config = NULL, *cls = NULL, *model = NULL;
    const char *mix = NULL;
    const char *speed_s = NULL, *dur_s = NULL, *bin_s = NULL, *spin_s = NULL;
    uint64_t flows = 0, seed = 0, loop = 0;
    int have_flows = 0, have_seed = 0, have_loop = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(s, l) (!strcmp(a, s) || !strcmp(a, l))
#define NEED()                                                                           \
    do {                                                                                 \
        if (!val) return cli_usage_error("replay", "%s needs a value", a);               \
        i++;                                                                             \
    } while (0)
        if (OPT("-s", "--series")) { NEED(); series = val; }
        else if (OPT("-t", "--to")) { NEED(); to = val; }
        else if (OPT("-c", "--config")) { NEED(); config = val; }
        else if (!strcmp(a, "--mix")) { NEED(); mix = val; }
        else if (!strcmp(a, "--class")) { NEED(); cls = val; }
        else if (!strcmp(a, "--speed")) { NEED(); speed_s = val; }
        else if (!strcmp(a, "--duration")) { NEED(); dur_s = val; }
        else if (!strcmp(a, "--bin")) { NEED(); bin_s = val; }
        else if (!strcmp(a, "--spin")) { NEED(); spin_s = val; }
        else if (!strcmp(a, "--flows")) {
            NEED();
            if (parse_u64(a, val, &flows)) return ND_EXIT_USAGE;
            if (!flows || flows > UINT32_MAX)
                return cli_usage_error("replay", "--flows: from 1 to %u", UINT32_MAX);
            have_flows = 1;
        } else if (!strcmp(a, "--seed")) {
            NEED();
            if (parse_u64(a, val, &seed)) return ND_EXIT_USAGE;
            have_seed = 1;
        } else if (!strcmp(a, "--loop")) {
            NEED();
            if (parse_u64(a, val, &loop)) return ND_EXIT_USAGE;
            if (loop > UINT32_MAX) return cli_usage_error("replay", "--loop: at most %u", UINT32_MAX);
            have_loop = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("replay", "unknown option '%s'", a);
        } else if (!model) {
            model = a;
        } else {
            return cli_usage_error("replay", "unexpected argument '%s'", a);
        }
#undef OPT
#undef NEED
    }
    if (model && series)
        return cli_usage_error("replay", "give either MODEL.ndm or --series FILE, not both");
    if (!model && !series)
        return cli_usage_error("replay", "no input: MODEL.ndm or --series IN.csv|IN.ndd");
    if (mix && cls) return cli_usage_error("replay", "give either --class or --mix, not both");
    if (mix && config && strcmp(mix, config))
        return cli_usage_error("replay", "--mix %s and -c %s: give one config", mix, config);
    if (mix) config = mix;
    if (model && bin_s)
        return cli_usage_error("replay", "--bin is for a series CSV; a model has its bin width");
    if (!to) return cli_usage_error("replay", "no sink: --to pcap:FILE|iface:NAME|dpdk:EAL-ARGS");

    nd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    nd_error e;
    memset(&e, 0, sizeof e);
    int rc = config ? nd_config_load(&cfg, config, &e) : (nd_config_defaults(&cfg), 0);
    if (rc) {
        nd_err("%s", e.msg);
        nd_config_free(&cfg);
        return cli_exit_code(rc);
    }
    if (mix && !cfg.replay.n_mix) {
        cli_usage_error("replay", "--mix %s: the config has no replay.mix (a list of "
                        "{class, weight})", mix);
        nd_config_free(&cfg);
        return ND_EXIT_USAGE;
    }
    replay_opts o;
    opts_replay(&o, &cfg);
    if (series) o.flows = have_flows ? (uint32_t)flows : 0; /* one flow per window */
    else if (have_flows) o.flows = (uint32_t)flows; /* model: replay.flows by default */
    if (have_seed) o.seed = seed;
    if (have_loop) o.loop = (uint32_t)loop;
    o.only_class = cls;
    if (cls) o.n_mix = 0;
    int status = ND_EXIT_USAGE;
    nd_dataset *ds = NULL;
    nd_dm *dm = NULL;
    double *weights = NULL;
    replay_sink *sink = NULL;
    if (speed_s) {
        char *end;
        o.speed = !strcmp(speed_s, "max") ? 0 : strtod(speed_s, &end);
        if (strcmp(speed_s, "max") && (*end || !(o.speed >= 0) || o.speed > 1e6)) {
            cli_usage_error("replay", "--speed: expected a number >= 0 or 'max', got '%s'", speed_s);
            goto out;
        }
    }
    if (dur_s && nd_parse_duration(dur_s, &o.duration_ns, &e)) {
        cli_usage_error("replay", "--duration: %s", e.msg);
        goto out;
    }
    if (spin_s && nd_parse_duration(spin_s, &o.spin_ns, &e)) {
        cli_usage_error("replay", "--spin: %s", e.msg);
        goto out;
    }
    uint64_t bin_ns = cfg.capture.bin_ns;
    if (bin_s && (nd_parse_duration(bin_s, &bin_ns, &e) || !bin_ns)) {
        cli_usage_error("replay", "--bin: %s", bin_ns ? e.msg : "must be more than 0");
        goto out;
    }
    if (!strncmp(to, "pcap:", 5) && o.loop == 0 && !o.duration_ns)
        nd_warn("replay: --loop 0 without --duration writes until Ctrl-C or a full disk");

    status = ND_EXIT_FAIL;
    if (series) {
        ds = ends_with(series, ".csv") ? nd_csv_read(series, bin_ns, &e)
                                       : nd_dataset_load(series, &e);
        if (!ds) {
            nd_err("%s", e.msg);
            status = cli_exit_code(e.code);
            goto out;
        }
    } else {
        /* the model and its classes are checked before the sink is opened, and the sink
         * before the (possibly long) sampling */
        dm = model_open(model, &e);
        weights = dm ? calloc(nd_dm_dataset(dm)->n_classes, sizeof *weights) : NULL;
        if (dm && !weights) nd_error_set(&e, -ENOMEM, "out of memory");
        if (!weights || class_weights(weights, dm, model, cls,
                                         cfg.replay.n_mix ? &cfg : NULL, &e)) {
            nd_err("replay: %s", e.msg);
            status = cli_exit_code(e.code);
            goto out;
        }
        o.only_class = NULL; /* the windows are sampled for the chosen classes only */
        o.n_mix = 0;
    }
    sink = replay_sink_open(to, &e);
    if (!sink) {
        nd_err("%s", e.msg);
        status = cli_exit_code(e.code);
        goto out;
    }
    cli_catch_stop();
    o.stop = &cli_stop;
    if (dm) {
        ds = sample_flows(dm, weights, o.flows, o.seed, &cli_stop, &e);
        if (!ds && e.code == ND_EINTR) { /* Ctrl-C is a clean end, as while sending */
            nd_info("replay: %s", e.msg);
            status = ND_EXIT_OK;
            goto out;
        }
        if (!ds) {
            nd_err("replay: %s", e.msg);
            status = cli_exit_code(e.code);
            goto out;
        }
        o.flows = 0; /* one flow per sampled window */
        nd_dm_free(dm); /* the network's memory is not needed while sending */
        dm = NULL;
    }

    replay_stats st;
    memset(&st, 0, sizeof st);
    rc = replay_run(ds, &o, sink, &st, &e);
    nd_error ce;
    int crc = replay_sink_close(sink, &ce);
    sink = NULL;
    if (rc && rc != ND_EINTR) {
        nd_err("replay: %s", e.msg);
        status = cli_exit_code(rc);
        goto out;
    }
    if (crc) {
        nd_err("replay: %s", ce.msg);
        goto out;
    }
    char line[512];
    replay_stats_format(&st, line, sizeof line);
    nd_info("replay%s: %s -> %s: %s", rc == ND_EINTR ? " (stopped by signal)" : "",
            series ? series : model, to, line);
    if (st.carried)
        nd_debug("replay: %llu bin remainders smaller than a frame were carried to the next bin",
                 (unsigned long long)st.carried);
    status = ND_EXIT_OK;
out:
    replay_sink_close(sink, NULL);
    nd_dataset_free(ds);
    nd_dm_free(dm);
    free(weights);
    nd_config_free(&cfg);
    return status;
}

const nd_command cmd_replay = {"replay", "turn sampled or given series into packets on a sink",
                               help, run};
