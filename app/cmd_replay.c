/*
 * cmd_replay.c — `netdiffus replay`: series → timed packets on a pcap file, an interface
 * or a DPDK port, through libnd_replay. The series are given (CSV or dataset file), or
 * sampled fresh from a model (MODEL.ndm, model/dm.c) into a dataset of one window per
 * flow that carries the model's classes and replay statistics, then replayed the same way.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "model.h"
#include "opts.h"
#include "replay.h"

/* Windows a streamed replay holds ready by default (--queue). */
#define REPLAY_STREAM_QUEUE 256
/* --max-flow-windows at most (and replay.max_flow_windows'): a flow's windows are held
 * whole (queue, dataset). */
#define REPLAY_MAX_FLOW_WINDOWS 4096

/* How long sampled flows are: --context (-1: not given), --max-flow-windows and --resample
 * (0: not given); once the model is open, what they or the config's replay section say. */
typedef struct replay_lengths {
    int context;
    uint32_t max_windows, resample;
} replay_lengths;

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
    "With MODEL.ndm (from `netdiffus train`), N fresh flows are sampled first (EMA\n"
    "weights, the sample section stored in the model, batches of sample.batch on\n"
    "model.threads threads): all of class NAME, or shared by the replay.mix weights\n"
    "of CONF, or in proportion to each class's flows in the training data (evenly\n"
    "when it has no flow counts, as with imports); packets use the model's statistics.\n"
    "Each flow lasts a duration drawn from its class's captured durations: one window,\n"
    "or windows each continuing the one before (one connection throughout).\n"
    "A run bounded by --duration (or --loop 0: by nothing) streams instead: sampler\n"
    "threads draw flows ahead of the schedule into a bounded queue, every flow takes a\n"
    "fresh one of its class when it starts, and the first packet leaves once the flows\n"
    "active at the start have theirs. A pcap sink waits for every window; on a paced\n"
    "sink a flow whose window is not ready at its start is skipped and counted \"late\"\n"
    "(status line, summary): the schedule keeps the clock's time.\n"
    "MODEL.ndm may be an http:// URL: a `live` trainer's http://HOST:PORT/model.ndm\n"
    "(live.metrics_port) is fetched first (docs/LIVE.md).\n"
    "\n"
    "SINK:\n"
    "  pcap:FILE        nanosecond pcap, written without waiting (deadlines become\n"
    "                   timestamps from 2000-01-01); same seed, same file byte for byte.\n"
    "                   FILE is replaced when the replay ends (also by Ctrl-C or a\n"
    "                   bound), never by a failed one; devices, FIFOs and the input\n"
    "                   are refused. pcap:- streams to standard output as it is\n"
    "                   written (| tcpdump -r -); a failure there cannot be taken back\n"
    "  pcapng:FILE      the same as pcapng (one interface; two with --to-server FILE)\n"
    "  iface:NAME       libpcap injection on an interface, in real time x speed\n"
    "  dpdk:EAL-ARGS    DPDK tx bursts on the first port, e.g.\n"
    "                   'dpdk:--no-huge --no-pci -m 256 --vdev=net_null0';\n"
    "                   'dpdk:port=N EAL-ARGS' sends on port N\n"
    "\n"
    "Two sides (a firewall, NAT or IDS between clients and servers; docs/REPLAY.md):\n"
    "      --to-server SINK  server-to-client packets leave here, client-to-server\n"
    "                     ones on --to; one schedule paces both. Two files, the same\n"
    "                     pcapng:FILE (an interface per side), two interfaces, or a\n"
    "                     second port of --to's DPDK EAL: dpdk:port=N (dpdk: alone:\n"
    "                     the port after --to's)\n"
    "      --vlan-client ID, --vlan-server ID  802.1Q tag of the frames each side sends\n"
    "                     (default replay.vlan_client, replay.vlan_server; 0 = none)\n"
    "      --client-macs N, --server-macs N  MACs counted up from replay.mac_src and\n"
    "                     replay.mac_dst: address i of a side has the (i mod N)-th\n"
    "\n"
    "options:\n"
    "  -s, --series FILE  series CSV (docs/FORMATS.md) or dataset file (.ndd) to replay;\n"
    "                     - reads standard input (either kind: the content tells)\n"
    "  -t, --to SINK      where packets go (required)\n"
    "  -c, --config CONF  YAML config: the replay section (pools, MACs, seed, mix...)\n"
    "      --mix CONF     same as -c, and CONF must have a replay.mix: flows per class by\n"
    "                     its weights\n"
    "      --class NAME   replay (or sample) only this class\n"
    "      --flows N      flows per pass (series: default one per window; model: default\n"
    "                     replay.flows, N windows are sampled; streamed: each flow of\n"
    "                     every pass has a fresh one)\n"
    "      --speed X      time scale, 2 = twice as fast; 0 or max = as fast as possible\n"
    "      --seed S       random seed of the sampled windows, sizes, times, addresses and\n"
    "                     ports (default replay.seed)\n"
    "      --loop N       passes over the flows; 0 = until --duration or Ctrl-C\n"
    "      --duration D   stop after D of output time (e.g. 30s); without --loop, passes\n"
    "                     over the flows repeat until D; flows of a class without\n"
    "                     captured arrivals are spread over D\n"
    "      --bin D        bin width of a series CSV (a CSV does not say it): the one of\n"
    "                     the capture or model it came from; default capture.bin of\n"
    "                     the config given with -c, else required. A dataset file has\n"
    "                     its own: --bin must then equal it\n"
    "      --spin D       busy-wait the last D before each deadline, sleep before that\n"
    "                     (default 30us; more helps on hosts with slow wake-ups)\n"
    "      --json         print the summary on stdout as one JSON object (README.md)\n"
    "      --stats FILE   append the summary's figures so far to FILE as one JSON object\n"
    "                     a second, and a last one with \"final\": true (docs/REPLAY.md)\n"
    "      --metrics-port PORT  serve them as Prometheus text on\n"
    "                     http://127.0.0.1:PORT/metrics while packets are sent\n"
    "      --queue N      streamed: about N windows sampled ahead, shared by the classes\n"
    "                     by weight, at least a batch of a class's longest flows each\n"
    "                     (default 256)\n"
    "      --samplers N   streamed: sampler threads, each with model.threads OpenMP\n"
    "                     threads inside (default 1; more only with cores to spare)\n"
    "      --max-flow-windows N  model: a flow lasts at most N windows (default\n"
    "                     replay.max_flow_windows, 64); longer drawn durations are cut\n"
    "                     and counted; 1 = one window per flow\n"
    "      --context K    model: bins of the window before that each next window of a\n"
    "                     flow continues (default replay.context, L/2; 0 = independent\n"
    "                     windows end to end)\n"
    "      --resample U   model: each denoising step of a continuing window taken U\n"
    "                     times, noised back between, to agree with its context (default\n"
    "                     replay.resample, 1; U times those windows' passes)\n"
    "\n"
    "Load targets (one at a time, in output time; --speed 1 or max; the run holds the\n"
    "load from its first packet on, docs/REPLAY.md):\n"
    "      --concurrency N  keep N flows active: a flow that ends is replaced at once\n"
    "      --flows-per-s R  start R flows a second (gaps shaped like the captured ones)\n"
    "      --pps P        start flows at the rate that makes P packets a second\n"
    "      --mbps M       start flows at the rate that makes M Mbit/s of frames\n"
    "\n"
    "Bounds (the run ends as when its flows are done: the pcap is complete and valid):\n"
    "      --max-bytes N  end before the frame that would pass N frame bytes (e.g. 1G;\n"
    "                     default replay.max_bytes, 0 = no limit)\n"
    "      --max-packets N  end after N packets (default replay.max_packets, 0 = none)\n"
    "      --line-rate G  cut the bytes of each bin (per flow and direction) to what the\n"
    "                     bin carries at G Gbit/s, and say how many bins were cut (default\n"
    "                     replay.line_rate: the interface's speed, else 100; at most 1000)\n"
    "\n"
    "Examples:\n"
    "  netdiffus replay vt.ndm --flows 1000 --to pcap:synth.pcap --seed 7\n"
    "  netdiffus replay vt.ndm --mix mix.yaml --flows 200 --to iface:veth0 --duration 60s\n"
    "  netdiffus replay vt.ndm --duration 1h --concurrency 100 --to iface:veth0\n"
    "\n"
    "Exit codes: 0 ok (also after Ctrl-C); 1 unreadable, corrupt or untrained model,\n"
    "sink failure; 2 bad usage or config (unknown class, mix naming a class the model\n"
    "lacks). docs/REPLAY.md explains the packetizer's choices and error bounds.\n";

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
    nd_dm *m = opts_dm_open(path, ND_DM_BATCH_SAMPLE, e);
    if (!m) return NULL;
    if (!nd_dm_dataset(m)->n_classes) {
        nd_error_set(e, ND_EFORMAT, "%s: the model has no classes: nothing to sample", path);
    } else if (!nd_dm_step(m)) {
        nd_error_set(e, ND_EFORMAT,
                     "%s: the model has not been trained (0 steps): train it "
                     "first (netdiffus train -c CONF DATA.ndd -o %s)",
                     path, path);
    } else {
        return m;
    }
    nd_dm_free(m);
    return NULL;
}

/* Share of the flows per model class into w (n_classes): class cls alone, the replay.mix
 * weights of mixcfg, or the classes' flow counts in the training data. Returns 0, or ND_EUSAGE
 * / ND_ECONFIG with e naming the class the model lacks and listing the ones it has. */
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
            return nd_error_set(e, ND_ECONFIG,
                                "%s: replay.mix: class '%s' is not in the "
                                "model %s (it has: %s)",
                                mixcfg->path, x->name, path, list);
        w[k] += x->weight;
        sum += x->weight;
    }
    if (!(sum > 0))
        return nd_error_set(e, ND_ECONFIG, "%s: replay.mix: the weights add up to 0",
                            mixcfg->path);
    return 0;
}

/* Samples the flows of o from dm (freed here: the network's memory is not needed while
 * sending) by the class weights w into *ds, as long as r says, and what it did into fc.
 * An exit code; 0 with *ds NULL when Ctrl-C stopped the sampling (a clean end, as while
 * sending). */
static int sample(nd_dataset **ds, nd_dm **dm, const double *w, replay_opts *o,
                  const replay_lengths *len, nd_flows_counts *fc)
{
    nd_error e = {0};
    nd_rng rng;
    nd_rng_seed(&rng, o->seed);
    nd_flows_opts fo = {.weights = w,
                        .flows = o->flows,
                        .stop = &cli_stop,
                        .tag = "replay",
                        .max_windows = len->max_windows,
                        .context = len->context,
                        .counts = fc};
    *ds = nd_dm_sample_flows(*dm, &fo, &rng, &e);
    nd_dm_free(*dm);
    *dm = NULL;
    if (!*ds && e.code == ND_EINTR) {
        nd_info("replay: %s; nothing sent", e.msg);
        return ND_EXIT_OK;
    }
    if (!*ds) {
        nd_err("replay: %s", e.msg);
        return cli_exit_code(e.code);
    }
    o->flows = 0;     /* one flow per sampled flow */
    o->flow_runs = 1; /* of one window or more */
    return ND_EXIT_OK;
}

/* Windows drawn while the flows are sent (docs/REPLAY.md, "Streaming from a model"): a run
 * bounded by its duration, or not at all, cannot sample them all first. */
static int streamed(const replay_opts *o) { return o->duration_ns || !o->loop; }

static int stream_take(void *arg, uint32_t cls, float **x, size_t *cap, uint32_t *nwin,
                       uint64_t until_ns, nd_error *e)
{
    return nd_flows_stream_take(arg, cls, x, cap, nwin, until_ns, e);
}

/* Starts the sampler threads of a streamed replay from dm (the file path) by the class
 * weights w into *st, with --queue and --samplers (0: not given) and flows as long as len says,
 * and points o at them: the flows' classes by the same weights (o->mix), a flow each from
 * the stream when it starts. An exit code. */
static int stream_start(nd_flows_stream **st, nd_dm *dm, const char *path, const double *w,
                        replay_opts *o, uint32_t queue, uint32_t samplers,
                        const replay_lengths *len)
{
    const nd_dataset *h = nd_dm_dataset(dm);
    nd_error e = {0};
    nd_flows_stream_opts so = {.weights = w,
                               .queue = queue ? queue : REPLAY_STREAM_QUEUE,
                               .threads = samplers ? samplers : 1,
                               .seed = o->seed,
                               .stop = &cli_stop,
                               .max_windows = len->max_windows,
                               .context = len->context,
                               .tag = "replay"};
    *st = nd_flows_stream_start(dm, &so, &e);
    if (!*st) {
        nd_err("replay: %s", e.msg);
        return cli_exit_code(e.code);
    }
    o->n_mix = 0;
    for (uint32_t k = 0; k < h->n_classes; k++)
        if (w[k] > 0) o->mix[o->n_mix++] = (replay_mix_entry){h->class_names[k], w[k]};
    o->take = stream_take;
    o->take_arg = *st;
    nd_flows_stream_stats ss;
    nd_flows_stream_stats_get(*st, &ss);
    o->flow_windows = ss.longest;
    nd_info("replay: streaming flows from %s: %u sampler thread%s, batches of %u, a queue "
            "of %llu windows",
            path, so.threads, so.threads > 1 ? "s" : "", ss.batch,
            (unsigned long long)ss.bound);
    return ND_EXIT_OK;
}

/* --concurrency N starts N flows at once, and the first of them to end want flows of
 * their class at once: before the first packet, the queue fills with N flows and a batch
 * of each class beyond them (or as many as it holds), else a paced run's first seconds
 * skip flows as late while the rest of the run keeps up. An exit code (a Ctrl-C during
 * the wait is left to the run, which then ends at once). */
static int stream_fill(nd_flows_stream *st, const replay_opts *o)
{
    nd_flows_stream_stats ss;
    nd_flows_stream_stats_get(st, &ss);
    uint64_t want = o->concurrency + (uint64_t)o->n_mix * ss.batch;
    nd_info("replay: sampling %llu flows before the first packet (--concurrency %u and a "
            "batch of each class)",
            (unsigned long long)want, o->concurrency);
    nd_error e = {0};
    int rc = nd_flows_stream_fill(st, want, &e);
    if (!rc || rc == ND_EINTR) return ND_EXIT_OK;
    nd_err("replay: %s", e.msg);
    return cli_exit_code(rc);
}

/* ------------------------------------------------------------------------------------ */
/* The command                                                                          */
/* ------------------------------------------------------------------------------------ */

enum {
    OPT_MIX = CLI_OPT_OWN,
    OPT_CLASS,
    OPT_SPEED,
    OPT_DURATION,
    OPT_BIN,
    OPT_SPIN,
    OPT_FLOWS,
    OPT_SEED,
    OPT_LOOP,
    OPT_MAX_BYTES,
    OPT_MAX_PACKETS,
    OPT_LINE_RATE,
    OPT_CONCURRENCY,
    OPT_FLOWS_PER_S,
    OPT_PPS,
    OPT_MBPS,
    /* two sides */
    OPT_TO_SERVER,
    OPT_VLAN_CLIENT,
    OPT_VLAN_SERVER,
    OPT_CLIENT_MACS,
    OPT_SERVER_MACS,
    /* streaming from a model */
    OPT_QUEUE,
    OPT_SAMPLERS,
    /* flows longer than a window */
    OPT_CONTEXT,
    OPT_MAX_FLOW_WINDOWS,
    OPT_RESAMPLE
};

static const struct option longs[] = {
    {"series", required_argument, NULL, 's'},
    {"to", required_argument, NULL, 't'},
    {"config", required_argument, NULL, 'c'},
    {"mix", required_argument, NULL, OPT_MIX},
    {"class", required_argument, NULL, OPT_CLASS},
    {"speed", required_argument, NULL, OPT_SPEED},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"bin", required_argument, NULL, OPT_BIN},
    {"spin", required_argument, NULL, OPT_SPIN},
    {"flows", required_argument, NULL, OPT_FLOWS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"loop", required_argument, NULL, OPT_LOOP},
    {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
    {"max-packets", required_argument, NULL, OPT_MAX_PACKETS},
    {"line-rate", required_argument, NULL, OPT_LINE_RATE},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"flows-per-s", required_argument, NULL, OPT_FLOWS_PER_S},
    {"pps", required_argument, NULL, OPT_PPS},
    {"mbps", required_argument, NULL, OPT_MBPS},
    {"to-server", required_argument, NULL, OPT_TO_SERVER},
    {"vlan-client", required_argument, NULL, OPT_VLAN_CLIENT},
    {"vlan-server", required_argument, NULL, OPT_VLAN_SERVER},
    {"client-macs", required_argument, NULL, OPT_CLIENT_MACS},
    {"server-macs", required_argument, NULL, OPT_SERVER_MACS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"samplers", required_argument, NULL, OPT_SAMPLERS},
    {"context", required_argument, NULL, OPT_CONTEXT},
    {"max-flow-windows", required_argument, NULL, OPT_MAX_FLOW_WINDOWS},
    {"resample", required_argument, NULL, OPT_RESAMPLE},
    CLI_JSON_OPTION,
    CLI_WATCH_OPTIONS,
    {0},
};

typedef struct replay_args {
    const char *series, *to, *config, *cls, *model, *mix;
    /* parsed once the config is read */
    const char *speed, *duration, *bin, *spin, *max_bytes, *line_rate;
    uint64_t flows, seed, loop, max_packets;
    int have_flows, have_seed, have_loop, have_max_packets;
    int json;
    cli_watch watch;
    const char *load[4]; /* --concurrency, --flows-per-s, --pps, --mbps */
    /* two sides: --to-server, and --vlan-client, --vlan-server, --client-macs,
     * --server-macs ([i], -1 when not given) */
    const char *to_server;
    int64_t side_num[4];
    /* streaming from a model: --queue, --samplers (0: not given) */
    uint32_t queue, samplers;
    /* flows longer than a window: --context (-1: not given), --max-flow-windows (0: not
     * given) */
    replay_lengths len;
} replay_args;

/* --flows, --seed, --loop, --max-packets: whole numbers. 0 or ND_EXIT_USAGE. */
static int take_number(replay_args *r, const cli_args *a, int c)
{
    uint64_t v;
    if (cli_parse_u64(a->val, &v))
        return cli_usage_error("replay", "%s: expected a whole number, got '%s'",
                               cli_args_name(a, c), a->val);
    if (c == OPT_FLOWS && (!v || v > UINT32_MAX))
        return cli_usage_error("replay", "--flows: from 1 to %u", UINT32_MAX);
    if (c == OPT_LOOP && v > UINT32_MAX)
        return cli_usage_error("replay", "--loop: at most %u", UINT32_MAX);
    if (c == OPT_QUEUE && (!v || v > 1000000))
        return cli_usage_error("replay", "--queue: from 1 to 1000000 windows");
    if (c == OPT_SAMPLERS && (!v || v > ND_FLOWS_STREAM_MAX_THREADS))
        return cli_usage_error("replay", "--samplers: from 1 to %d",
                               ND_FLOWS_STREAM_MAX_THREADS);
    if (c == OPT_MAX_FLOW_WINDOWS && (!v || v > REPLAY_MAX_FLOW_WINDOWS))
        return cli_usage_error("replay", "--max-flow-windows: from 1 to %d windows",
                               REPLAY_MAX_FLOW_WINDOWS);
    if (c == OPT_RESAMPLE && (!v || v > 100))
        return cli_usage_error("replay", "--resample: from 1 to 100 takes a step");
    if (c == OPT_CONTEXT && v >= ND_MODEL_MAX_L)
        return cli_usage_error("replay",
                               "--context: from 0 to %d bins (and below the "
                               "model's window)",
                               ND_MODEL_MAX_L - 1);
    if (c == OPT_QUEUE) r->queue = (uint32_t)v;
    else if (c == OPT_CONTEXT) r->len.context = (int)v;
    else if (c == OPT_MAX_FLOW_WINDOWS) r->len.max_windows = (uint32_t)v;
    else if (c == OPT_RESAMPLE) r->len.resample = (uint32_t)v;
    else if (c == OPT_SAMPLERS) r->samplers = (uint32_t)v;
    else if (c == OPT_FLOWS) r->flows = v, r->have_flows = 1;
    else if (c == OPT_SEED) r->seed = v, r->have_seed = 1;
    else if (c == OPT_MAX_PACKETS) r->max_packets = v, r->have_max_packets = 1;
    else r->loop = v, r->have_loop = 1;
    return 0;
}

/* --vlan-client, --vlan-server (0..4094), --client-macs, --server-macs (1..2^24). */
static int take_side_number(replay_args *r, const cli_args *a, int c)
{
    const int i = c - OPT_VLAN_CLIENT, vlan = c <= OPT_VLAN_SERVER;
    const uint64_t lo = vlan ? 0 : 1, hi = vlan ? 4094 : 16777216;
    uint64_t v;
    if (cli_parse_u64(a->val, &v) || v < lo || v > hi)
        return cli_usage_error(
            "replay", "%s: expected a whole number from %llu to %llu, got '%s'",
            cli_args_name(a, c), (unsigned long long)lo, (unsigned long long)hi, a->val);
    r->side_num[i] = (int64_t)v;
    return 0;
}

/* The options of code c into r: 0, or ND_EXIT_USAGE once said. */
static int take(replay_args *r, const cli_args *a, int c)
{
    const char **text = c == 's'             ? &r->series
                        : c == 't'           ? &r->to
                        : c == 'c'           ? &r->config
                        : c == OPT_MIX       ? &r->mix
                        : c == OPT_CLASS     ? &r->cls
                        : c == OPT_SPEED     ? &r->speed
                        : c == OPT_DURATION  ? &r->duration
                        : c == OPT_BIN       ? &r->bin
                        : c == OPT_SPIN      ? &r->spin
                        : c == OPT_MAX_BYTES ? &r->max_bytes
                        : c == OPT_LINE_RATE ? &r->line_rate
                        : c == OPT_TO_SERVER ? &r->to_server
                                             : NULL;
    if (c >= OPT_CONCURRENCY && c <= OPT_MBPS) r->load[c - OPT_CONCURRENCY] = a->val;
    else if (text) *text = a->val;
    else if (c >= OPT_VLAN_CLIENT && c <= OPT_SERVER_MACS) return take_side_number(r, a, c);
    else if (c == OPT_FLOWS || c == OPT_SEED || c == OPT_LOOP || c == OPT_MAX_PACKETS ||
             c == OPT_QUEUE || c == OPT_SAMPLERS || c == OPT_CONTEXT ||
             c == OPT_MAX_FLOW_WINDOWS || c == OPT_RESAMPLE)
        return take_number(r, a, c);
    else if (c == CLI_OPT_JSON) r->json = 1;
    else if (c != CLI_OPERAND) /* CLI_BAD or a bad value: said */
        return cli_watch_take(&r->watch, a, c) == 1 ? 0 : ND_EXIT_USAGE;
    else if (!r->model) r->model = a->val;
    else return cli_usage_error("replay", "unexpected argument '%s'", a->val);
    return 0;
}

/* The file of a pcap: or pcapng: sink, NULL for other sinks (and for NULL). */
static const char *sink_file(const char *spec)
{
    if (spec && !strncmp(spec, "pcap:", 5)) return spec + 5;
    if (spec && !strncmp(spec, "pcapng:", 7)) return spec + 7;
    return NULL;
}

static int parse(replay_args *r, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "replay", argc, argv, "s:t:c:", longs);
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 4; i++) r->side_num[i] = -1;
    r->len.context = -1;
    for (int c; (c = cli_args_next(&a)) != CLI_END;)
        if (take(r, &a, c)) return ND_EXIT_USAGE;
    if (r->model && r->series)
        return cli_usage_error("replay", "give either MODEL.ndm or --series FILE, not both");
    if (!r->model && !r->series)
        return cli_usage_error("replay", "no input: MODEL.ndm or --series IN.csv|IN.ndd");
    if (r->mix && r->cls)
        return cli_usage_error("replay", "give either --class or --mix, not both");
    if (r->mix && r->config && strcmp(r->mix, r->config))
        return cli_usage_error("replay", "--mix %s and -c %s: give one config", r->mix,
                               r->config);
    if (r->mix) r->config = r->mix;
    if (r->model && r->bin)
        return cli_usage_error("replay",
                               "--bin is for a series CSV; a model has its bin width");
    if (r->series && (r->queue || r->samplers || r->len.context >= 0 || r->len.max_windows ||
                      r->len.resample))
        return cli_usage_error("replay", "--queue, --samplers, --context, --max-flow-windows "
                                         "and --resample are for MODEL.ndm");
    if (!r->to)
        return cli_usage_error("replay", "no sink: --to pcap:FILE|iface:NAME|dpdk:EAL-ARGS");
    for (int i = 0; i < 2; i++) {
        const char *file = sink_file(i ? r->to_server : r->to);
        if (file && cli_json_check("replay", r->json, file)) return ND_EXIT_USAGE;
    }
    return 0;
}

/* --concurrency, --flows-per-s, --pps, --mbps into o: 0 or ND_EXIT_USAGE once said. */
static int load_options(replay_opts *o, const replay_args *r)
{
    static const char *const names[4] = {"--concurrency", "--flows-per-s", "--pps", "--mbps"};
    double v[4] = {0};
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (!r->load[i]) continue;
        n++;
        if (cli_parse_double(r->load[i], &v[i]) || !(v[i] > 0) || v[i] > 1e12 ||
            (i == 0 && (v[i] != floor(v[i]) || v[i] > 10000000)))
            return cli_usage_error("replay", "%s: expected %s, got '%s'", names[i],
                                   i == 0 ? "a whole number from 1 to 10000000"
                                          : "a number more than 0",
                                   r->load[i]);
    }
    if (n > 1)
        return cli_usage_error("replay",
                               "give one load target of --concurrency, --flows-per-s, --pps "
                               "and --mbps");
    o->concurrency = (uint32_t)v[0];
    o->flows_per_s = v[1];
    o->pps = v[2];
    o->mbps = v[3];
    return 0;
}

/* The replay options: the config's replay section, then the command line's. *bin_ns:
 * the bin width of a series CSV. 0 or ND_EXIT_USAGE once said. */
static int options(replay_opts *o, uint64_t *bin_ns, const replay_args *r, const nd_config *cfg)
{
    if (r->mix && !cfg->replay.n_mix)
        return cli_usage_error("replay",
                               "--mix %s: the config has no replay.mix (a list of "
                               "{class, weight})",
                               r->mix);
    opts_replay(o, cfg);
    if (r->series) o->flows = r->have_flows ? (uint32_t)r->flows : 0; /* one flow per window */
    else if (r->have_flows) o->flows = (uint32_t)r->flows; /* model: replay.flows by default */
    if (r->have_seed) o->seed = r->seed;
    if (r->have_loop) o->loop = (uint32_t)r->loop;
    o->only_class = r->cls;
    if (r->cls) o->n_mix = 0;
    nd_error e = {0};
    if (r->speed) {
        o->speed = 0; /* "max" */
        if (strcmp(r->speed, "max") &&
            (cli_parse_double(r->speed, &o->speed) || !(o->speed >= 0) || o->speed > 1e6))
            return cli_usage_error(
                "replay", "--speed: expected a number >= 0 or 'max', got '%s'", r->speed);
    }
    if (r->duration && nd_parse_duration(r->duration, &o->duration_ns, &e))
        return cli_usage_error("replay", "--duration: %s", e.msg);
    if (r->spin && nd_parse_duration(r->spin, &o->spin_ns, &e))
        return cli_usage_error("replay", "--spin: %s", e.msg);
    if (r->max_bytes && nd_parse_size(r->max_bytes, &o->max_bytes, &e))
        return cli_usage_error("replay", "--max-bytes: %s", e.msg);
    if (r->have_max_packets) o->max_packets = r->max_packets;
    uint32_t *side[4] = {&o->vlan_client, &o->vlan_server, &o->client_macs, &o->server_macs};
    for (int i = 0; i < 4; i++)
        if (r->side_num[i] >= 0) *side[i] = (uint32_t)r->side_num[i];
    if (r->line_rate) {
        double g;
        if (cli_parse_double(r->line_rate, &g) || !(g > 0) || g > ND_MAX_LINE_BPS / 1e9)
            return cli_usage_error("replay",
                                   "--line-rate: expected Gbit/s, more than 0 and at most %g, "
                                   "got '%s'",
                                   ND_MAX_LINE_BPS / 1e9, r->line_rate);
        o->line_bps = g * 1e9;
    }
    *bin_ns = r->config ? cfg->capture.bin_ns : 0; /* 0: the file's own, or unknown */
    if (r->bin && (nd_parse_duration(r->bin, bin_ns, &e) || !*bin_ns))
        return cli_usage_error("replay", "--bin: %s", *bin_ns ? e.msg : "must be more than 0");
    if (load_options(o, r)) return ND_EXIT_USAGE;
    /* a run of a set duration never runs out of flows unless --loop says how many passes */
    if (o->duration_ns && !r->have_loop) o->loop = 0;
    if (sink_file(r->to) && o->loop == 0 && !o->duration_ns && !o->max_bytes && !o->max_packets)
        nd_warn("replay: --loop 0 without --duration, --max-bytes or --max-packets writes "
                "until Ctrl-C (a full disk fails the run, and the pcap is not kept)");
    return 0;
}

/* The series file of r into *ds, its bin width stated and checked: a dataset file has
 * its own (--bin must agree); a CSV has none, so --bin or the config's capture.bin
 * (bin_ns; 0 when neither was given: the CSV is refused) gives it. An exit code. */
static int series_load(nd_dataset **ds, const replay_args *r, uint64_t bin_ns)
{
    nd_error e = {0};
    *ds = nd_windows_read(r->series, bin_ns, &e);
    if (!*ds) {
        nd_err("%s%s", e.msg,
               e.code == ND_EUSAGE ? ": give --bin (the capture.bin of the capture, or the "
                                     "bin width of the model, it came from: `netdiffus "
                                     "inspect` shows it) or -c CONF with capture.bin"
                                   : "");
        return cli_exit_code(e.code);
    }
    char have[32], want[32];
    nd_format_duration((*ds)->bin_ns, have, sizeof have);
    if (r->bin && bin_ns != (*ds)->bin_ns) { /* a dataset file: it has its own */
        nd_format_duration(bin_ns, want, sizeof want);
        nd_err("replay: %s has bins of %s, not %s (--bin): leave --bin out for a dataset file",
               r->series, have, want);
        return ND_EXIT_USAGE;
    }
    nd_info("replay: %s: windows of %u bins of %s", r->series, (*ds)->L, have);
    return ND_EXIT_OK;
}

/* The model of r, the share of flows per class (*w) and the lengths of its flows (r->len),
 * checked before the sink is opened, and the sink before the (possibly long) sampling. An
 * exit code. */
static int model_prepare(nd_dm **dm, double **w, replay_args *r, const nd_config *cfg,
                         replay_opts *o)
{
    nd_error e = {0};
    *dm = model_open(r->model, &e);
    *w = *dm ? calloc(nd_dm_dataset(*dm)->n_classes, sizeof **w) : NULL;
    if (*dm && !*w) nd_error_set(&e, -ENOMEM, "out of memory");
    if (!*w || class_weights(*w, *dm, r->model, r->cls, cfg->replay.n_mix ? cfg : NULL, &e)) {
        nd_err("replay: %s", e.msg);
        return cli_exit_code(e.code);
    }
    /* the lengths of the flows: the command line's, else the config's */
    const uint32_t L = nd_dm_dataset(*dm)->L, div = cfg->replay.context_div;
    replay_lengths *len = &r->len;
    if (!len->max_windows) len->max_windows = cfg->replay.max_flow_windows;
    if (!len->resample) len->resample = cfg->replay.resample;
    nd_dm_set_resample(*dm, (int)len->resample);
    if (len->context < 0) {
        len->context = (int)(div ? L / div : cfg->replay.context);
        if (len->context >= (int)L) {
            nd_err("replay: %s: replay.context %d: expected 0 to %u bins (the model's "
                   "windows have %u)",
                   cfg->path[0] ? cfg->path : "defaults", len->context, L - 1, L);
            return cli_exit_code(ND_ECONFIG);
        }
    } else if (len->context >= (int)L)
        return cli_usage_error("replay",
                               "--context %d: expected 0 to %u bins (the model's windows "
                               "have %u)",
                               len->context, L - 1, L);
    o->only_class = NULL; /* the windows are sampled for the chosen classes only */
    o->n_mix = 0;
    return ND_EXIT_OK;
}

static const char *const ended_name[] = {NULL, "duration", "max_bytes", "max_packets"};

/* How long the sampled flows were (docs/REPLAY.md, "Flows longer than a window"). */
static void lengths_figures(nd_json *j, uint64_t flows, uint64_t longer, uint64_t cut,
                            uint64_t sampled)
{
    nd_json *o = nd_json_obj(j, "lengths");
    nd_json_u64(o, "flows", flows);
    nd_json_u64(o, "longer", longer);
    nd_json_u64(o, "cut", cut);
    nd_json_u64(o, "windows_sampled", sampled);
}

/* A streamed run's samplers, for the summary: what they drew and how full the queue got. */
static void stream_figures(nd_json *j, nd_flows_stream *s)
{
    nd_flows_stream_stats ss;
    nd_flows_stream_stats_get(s, &ss);
    lengths_figures(j, ss.flows, ss.longer, ss.cut, ss.sampled);
    nd_json *o = nd_json_obj(j, "stream");
    nd_json_u64(o, "windows", ss.sampled);
    nd_json_num(o, "windows_per_s", ss.windows_per_s);
    nd_json_u64(o, "redrawn", ss.redrawn);
    nd_json_u64(o, "queue_max", ss.max_depth);
    nd_json_u64(o, "queue_bound", ss.bound);
    nd_json_u64(o, "batch", ss.batch);
}

/* What was sent (st), the figures of the summary; s: the stream of a streamed run, fc:
 * the flows sampled first (NULL: none were). */
static void figures(nd_json *j, const replay_stats *st, nd_flows_stream *s,
                    const nd_flows_counts *fc)
{
    nd_json_u64(j, "flows", st->flows);
    if (s) nd_json_u64(j, "late", st->late);
    nd_json_u64(j, "packets", st->packets);
    nd_json_u64(j, "bytes", st->bytes);
    nd_json_u64(j, "drops", st->drops);
    nd_json_num(j, "seconds", (double)st->seconds_ns * 1e-9);
    nd_json_num(j, "cpu_seconds", (double)st->cpu_ns * 1e-9);
    nd_json_num(j, "pps", st->pps);
    nd_json_u64(j, "capped_bins", st->capped);
    nd_json_u64(j, "carried", st->carried);
    nd_json_num(j, "line_rate_bps", st->line_bps);
    nd_json_str(j, "ended", ended_name[st->ended]);
    nd_json *t = st->timed ? nd_json_obj(j, "timing_error_ns") : NULL;
    nd_json_u64(t, "p50", st->err_p50_ns);
    nd_json_u64(t, "p99", st->err_p99_ns);
    nd_json_u64(t, "p999", st->err_p999_ns);
    nd_json_u64(t, "max", st->err_max_ns);
    nd_json_u64(t, "early", st->early);
    if (s) stream_figures(j, s);
    if (fc) lengths_figures(j, fc->flows, fc->longer, fc->cut, fc->sampled);
}

/* The same figures as Prometheus text. */
static void metrics(cli_watch *w, const replay_stats *st)
{
    enum { C = ND_PROM_COUNTER, G = ND_PROM_GAUGE };
    nd_prom p = {0};
    nd_prom_metric(&p, "netdiffus_replay_flows_total", C, "Flows started.", (double)st->flows);
    nd_prom_metric(&p, "netdiffus_replay_packets_total", C, "Packets sent.",
                   (double)st->packets);
    nd_prom_metric(&p, "netdiffus_replay_bytes_total", C, "Frame bytes sent (without FCS).",
                   (double)st->bytes);
    nd_prom_metric(&p, "netdiffus_replay_drops_total", C, "Packets the sink did not take.",
                   (double)st->drops);
    nd_prom_metric(&p, "netdiffus_replay_late_total", C,
                   "Streamed flows skipped: their window was not sampled by their start.",
                   (double)st->late);
    nd_prom_metric(&p, "netdiffus_replay_capped_bins_total", C,
                   "Bins (per flow and direction) cut to what the line rate carries.",
                   (double)st->capped);
    nd_prom_metric(&p, "netdiffus_replay_carried_total", C,
                   "Bin remainders smaller than a frame carried to the next bin.",
                   (double)st->carried);
    nd_prom_metric(&p, "netdiffus_replay_seconds", G, "Wall time of the run so far.",
                   (double)st->seconds_ns * 1e-9);
    nd_prom_metric(&p, "netdiffus_replay_packets_per_second", G,
                   "Packets per second of wall time.", st->pps);
    nd_prom_metric(&p, "netdiffus_replay_timing_error_p99_seconds", G,
                   "99th percentile of send time minus deadline (paced sinks; NaN otherwise).",
                   st->timed ? (double)st->err_p99_ns * 1e-9 : NAN);
    cli_watch_publish(w, &p);
    nd_prom_free(&p);
}

/* What the figures while sending go to: the --stats/--metrics-port watch, and the stream
 * of a streamed run (NULL otherwise). */
typedef struct report_to {
    cli_watch *watch;
    nd_flows_stream *stream;
    const nd_flows_counts *fc;
} report_to;

/* replay_opts.report: a stats line and the metrics. */
static void on_report(void *arg, const replay_stats *so_far)
{
    report_to *to = arg;
    nd_json *j = nd_json_new();
    figures(j, so_far, to->stream, to->fc);
    cli_watch_line(to->watch, j, 0);
    metrics(to->watch, so_far);
}

/* Flows cut at --max-flow-windows (replay.max_flow_windows), said at the end of a run
 * from a model. */
static void cut_said(uint64_t cut, const replay_args *r)
{
    if (cut)
        nd_info("replay: %llu sampled flows were longer than %u windows (--max-flow-windows, "
                "replay.max_flow_windows) and were cut to it",
                (unsigned long long)cut, r->len.max_windows);
}

/* The end of a streamed run: what the samplers did, and the flows they were late for. */
static void stream_said(nd_flows_stream *s, const replay_stats *st, const replay_args *r)
{
    nd_flows_stream_stats ss;
    nd_flows_stream_stats_get(s, &ss);
    nd_info("replay: streamed %llu flows (%llu longer than a window) in %llu windows at %.1f "
            "windows/s, the queue held at most %llu of %llu windows",
            (unsigned long long)ss.flows, (unsigned long long)ss.longer,
            (unsigned long long)ss.sampled, ss.windows_per_s, (unsigned long long)ss.max_depth,
            (unsigned long long)ss.bound);
    cut_said(ss.cut, r);
    if (st->late)
        nd_warn("replay: %llu flows were skipped, their windows not sampled by their start: "
                "the load needs more windows a second than %.1f (--samplers, a lighter "
                "sample section in the model, or less load)",
                (unsigned long long)st->late, ss.windows_per_s);
}

/* Replays ds to sink (closed here) and says what was sent; stream: the flows' stream
 * of a streamed run; fc: what sampling the flows of ds did (NULL: a series). An exit
 * code. */
static int send_flows(const nd_dataset *ds, const replay_opts *o, replay_sink *sink,
                      const replay_args *r, nd_flows_stream *stream, const nd_flows_counts *fc)
{
    replay_stats st;
    memset(&st, 0, sizeof st);
    nd_error e = {0}, ce = {0};
    cli_watch watch = r->watch;
    if (cli_watch_open(&watch, "replay")) {
        replay_sink_discard(sink);
        return ND_EXIT_FAIL; /* said */
    }
    replay_opts wo = *o;
    report_to to = {&watch, stream, fc};
    if (cli_watch_on(&watch)) {
        wo.report = on_report;
        wo.report_arg = &to;
        metrics(&watch, &st); /* zeros until the first report */
    }
    int rc = replay_run(ds, &wo, sink, &st, &e);
    if (cli_watch_on(&watch) && (!rc || rc == ND_EINTR)) {
        nd_json *j = nd_json_new();
        figures(j, &st, stream, fc);
        cli_watch_line(&watch, j, 1);
        metrics(&watch, &st);
    }
    cli_watch_close(&watch);
    if (rc && rc != ND_EINTR) {
        replay_sink_discard(sink); /* a pcap file that was there stays as it was */
        nd_err("replay: %s", e.msg);
        return cli_exit_code(rc);
    }
    /* a stop by signal keeps what was sent: the pcap so far replaces the old one */
    if (replay_sink_close(sink, &ce)) {
        nd_err("replay: %s", ce.msg);
        return ND_EXIT_FAIL;
    }
    char line[512];
    replay_stats_format(&st, line, sizeof line);
    nd_info("replay%s: %s -> %s%s%s: %s", rc == ND_EINTR ? " (stopped by signal)" : "",
            r->series ? r->series : r->model, r->to, r->to_server ? " and " : "",
            r->to_server ? r->to_server : "", line);
    if (r->json) {
        nd_json *j = nd_json_new();
        nd_json_str(j, "input", r->series ? r->series : r->model);
        nd_json_str(j, "sink", r->to);
        if (r->to_server) nd_json_str(j, "server_sink", r->to_server);
        nd_json_bool(j, "interrupted", rc == ND_EINTR);
        figures(j, &st, stream, fc);
        if (cli_json_print(j)) return ND_EXIT_FAIL;
    }
    static const char *const ended[] = {"", "--duration (replay.duration)",
                                        "--max-bytes (replay.max_bytes)",
                                        "--max-packets (replay.max_packets)"};
    if (stream) stream_said(stream, &st, r);
    if (fc) cut_said(fc->cut, r);
    if (st.ended) nd_info("replay: ended at %s before the flows were done", ended[st.ended]);
    if (st.capped)
        nd_warn("replay: %llu bins (per flow and direction) held more bytes than a bin "
                "carries at %g Gbit/s (replay.line_rate, --line-rate) and were cut to it",
                (unsigned long long)st.capped, st.line_bps / 1e9);
    if (st.carried)
        nd_debug(
            "replay: %llu bin remainders smaller than a frame were carried to the next bin",
            (unsigned long long)st.carried);
    return ND_EXIT_OK;
}

static int run(int argc, char **argv)
{
    replay_args r;
    int status = parse(&r, argc, argv);
    if (status) return status;
    nd_config cfg = {0};
    replay_opts o;
    uint64_t bin_ns;
    nd_dataset *ds = NULL;
    nd_dm *dm = NULL;
    nd_flows_stream *stream = NULL;
    nd_flows_counts fc = {0};
    double *weights = NULL;
    replay_sink *sink = NULL;
    status = cli_config_open(&cfg, &(cli_config){.path = r.config});
    if (!status) status = options(&o, &bin_ns, &r, &cfg);
    if (!status)
        status = r.series ? series_load(&ds, &r, bin_ns)
                          : model_prepare(&dm, &weights, &r, &cfg, &o);
    if (!status && dm && !streamed(&o) && (r.queue || r.samplers))
        status = cli_usage_error(
            "replay", "--queue and --samplers are for a streamed replay (--duration, "
                      "or --loop 0)");
    /* a streamed run's sampler threads start before the sink: a DPDK EAL pins the thread
     * that starts it to its first lcore, and the threads started after it with it */
    if (!status && dm && streamed(&o))
        status = stream_start(&stream, dm, r.model, weights, &o, r.queue, r.samplers, &r.len);
    if (!status) {
        nd_error e = {0};
        sink = r.to_server ? replay_sink_open_sides(r.to, r.to_server, &e)
                           : replay_sink_open(r.to, &e);
        if (!sink) {
            nd_err("%s", e.msg);
            status = cli_exit_code(e.code);
        }
    }
    if (!status) {
        cli_catch_stop();
        o.stop = &cli_stop;
        if (dm && !stream) status = sample(&ds, &dm, weights, &o, &r.len, &fc);
        if (stream && o.concurrency) status = stream_fill(stream, &o);
    }
    if (!status && (ds || stream)) {
        status = send_flows(ds ? ds : nd_dm_dataset(dm), &o, sink, &r, stream,
                            r.model && !stream ? &fc : NULL);
        sink = NULL; /* closed */
    }
    /* not replayed: stopped by a signal while sampling (an empty pcap is what was sent),
     * or failed (an earlier pcap file stays as it was) */
    nd_error ce = {0};
    if (status) replay_sink_discard(sink);
    else if (replay_sink_close(sink, &ce)) {
        nd_err("replay: %s", ce.msg);
        status = ND_EXIT_FAIL;
    }
    nd_flows_stream_free(stream); /* before the model it samples */
    nd_dataset_free(ds);
    nd_dm_free(dm);
    free(weights);
    nd_config_free(&cfg);
    return status;
}

const nd_command cmd_replay = {"replay", "turn sampled or given series into packets on a sink",
                               help, run, longs};
