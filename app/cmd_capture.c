/*
 * cmd_capture.c — `netdiffus capture`: packets from pcap files, interfaces or DPDK ports
 * into a dataset file of labelled per-flow windows (the first stage of the pipeline).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "cli.h"
#include "conf.h"
#include "opts.h"

/* Window callback: the context's class index is the dataset's label (classes are
 * registered in the same order before any window). */
static int store_window(void *user, uint32_t class_idx, uint64_t group, const float *values)
{
    return nd_dataset_append(user, (uint16_t)class_idx, group, values);
}

static const char *const channel_names[4] = {"bytes_down", "bytes_up", "packets_down",
                                             "packets_up"};

static void summary(capture_ctx *c, const char *out)
{
    capture_totals t;
    capture_ctx_totals(c, &t);
    nd_info("%" PRIu64 " packets (%" PRIu64 " not usable), %" PRIu64 " flows, %" PRIu64
            " windows -> %s",
            t.packets, t.skipped, t.flows, t.windows, out);
    for (uint32_t i = 0; i < capture_ctx_n_classes(c); i++)
        nd_info("  class %-16s %8" PRIu64 " windows", capture_ctx_class_name(c, i),
                capture_ctx_class_windows(c, i));
    /* The reasons packets or windows were lost, so that nothing is hidden. */
    for (uint32_t i = 0; i < capture_ctx_n_counters(c); i++) {
        const char *name;
        uint64_t v;
        capture_ctx_counter(c, i, &name, &v);
        if (v && (!strncmp(name, "parse.", 6) || !strcmp(name, "flow.orphan_fragment") ||
                  !strcmp(name, "flow.evicted") || !strncmp(name, "class.", 6) ||
                  !strcmp(name, "bin.ts_backwards") || !strcmp(name, "bin.window_sparse")))
            nd_info("  %-28s %8" PRIu64, name, v);
    }
}

enum { OPT_CLASS = CLI_OPT_OWN };

static const struct option longs[] = {
    CLI_CONFIG_OPTIONS,
    {"output", required_argument, NULL, 'o'},
    {"source", required_argument, NULL, 's'},
    {"class", required_argument, NULL, OPT_CLASS},
    {0},
};

typedef struct capture_args {
    cli_config cc;
    const char *out, *force_class;
    cli_sources src;
} capture_args;

static int parse(capture_args *o, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "capture", argc, argv, "c:o:s:", longs);
    a.config = &o->cc;
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        switch (c) {
        case 'o': o->out = a.val; break;
        case OPT_CLASS: o->force_class = a.val; break;
        case 's':
            if (cli_sources_add(&o->src, &a)) return ND_EXIT_USAGE;
            break;
        case CLI_OPERAND: return cli_usage_error("capture", "unexpected argument '%s'", a.val);
        default: return ND_EXIT_USAGE; /* CLI_BAD: said */
        }
    }
    if (!o->out) return cli_usage_error("capture", "no output file: give -o OUT.ndd");
    if (o->force_class && !o->force_class[0])
        return cli_usage_error("capture", "--class needs a non-empty name");
    return 0;
}

/* The side file a failed capture saves to: OUT with ".partial" before its extension
 * (cap.ndd -> cap.partial.ndd, cap -> cap.partial). malloc'd, NULL when out of memory. */
static char *partial_name(const char *out)
{
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot > base ? (size_t)(dot - out) : strlen(out);
    size_t len = strlen(out) + sizeof ".partial";
    char *p = malloc(len);
    if (p) snprintf(p, len, "%.*s.partial%s", (int)stem, out, out + stem);
    return p;
}

/* After capture_run returned rc: the windows of c into ds, saved to out, unless the
 * capture failed before any packet. A capture that failed later keeps what it read in
 * a side file and leaves out as it was: a source failing must not replace a good
 * dataset with part of one. Returns rc, or the save's code. */
static int keep(capture_ctx *c, nd_dataset *ds, const char *out, int rc, const nd_error *e)
{
    capture_totals t;
    capture_ctx_totals(c, &t);
    char *side = NULL;
    if (rc == ND_EINTR) {
        nd_info("stopped by a signal: keeping what was captured so far");
        rc = 0;
    } else if (rc) {
        nd_err("%s", e->msg);
        /* A live source failing after hours of capture must not lose them: save what
         * there is, and still exit 1. A source that never delivered writes nothing. */
        if (t.packets && !(side = partial_name(out))) nd_err("out of memory");
        if (side)
            nd_err("keeping the %" PRIu64 " windows captured before the error in %s (%s is "
                   "left as it was)",
                   t.windows, side, out);
    }
    if (!rc || side) {
        nd_error se = {0};
        const char *to = side ? side : out;
        if (capture_ctx_to_dataset(c, ds, &se) || nd_dataset_save(ds, to, &se)) {
            nd_err("%s", se.msg);
            if (!rc) rc = se.code;
        } else {
            summary(c, to);
        }
    }
    free(side);
    return rc;
}

/* Captures the sources of o into the dataset file o->out. Returns 0 or a code. */
static int capture_to_file(const nd_config *cfg, const capture_args *o)
{
    nd_error e = {0};
    int rc;
    const char *force_class = o->force_class;
    nd_dataset *ds = nd_dataset_new(cfg->capture.channels, channel_names, cfg->capture.window,
                                    cfg->capture.bin_ns);
    capture_opts co;
    opts_capture(&co, cfg);
    capture_ctx *c = ds ? capture_ctx_new(&co, force_class, store_window, ds, &e) : NULL;
    char *yaml = nd_config_to_yaml(cfg);
    if (!ds || !c || !yaml) {
        if (!ds || !yaml) nd_err("out of memory");
        else nd_err("%s", e.msg);
        rc = ds && yaml ? e.code : -ENOMEM;
        goto done;
    }
    nd_dataset_set_config(ds, yaml);
    for (uint32_t i = 0; i < capture_ctx_n_classes(c); i++)
        if (nd_dataset_class(ds, capture_ctx_class_name(c, i)) != (int)i) {
            nd_err("class '%s': not a valid class name", capture_ctx_class_name(c, i));
            rc = ND_ECONFIG;
            goto done;
        }

    cli_catch_stop();
    rc = capture_run(c, o->src.spec, o->src.n, &co, &cli_stop, nd_status_enabled(), &e);
    rc = keep(c, ds, o->out, rc, &e);
done:
    free(yaml);
    capture_ctx_free(c);
    nd_dataset_free(ds);
    return rc;
}

static int run(int argc, char **argv)
{
    capture_args o = {0};
    int rc = parse(&o, argc, argv);
    if (rc) return rc;
    nd_config cfg = {0};
    if (!(rc = cli_config_open(&cfg, &o.cc))) {
        if (cli_sources_resolve(&o.src, &cfg)) rc = cli_exit_code(capture_to_file(&cfg, &o));
        else
            rc =
                cli_usage_error("capture", "no source: give --source pcap:FILE (or iface:NAME, "
                                           "dpdk:EAL-ARGS) or capture.sources in the config");
    }
    nd_config_free(&cfg);
    return rc;
}

const nd_command cmd_capture = {
    "capture", "capture packets into a dataset of per-class flow windows",
    "usage: netdiffus capture [-c CONF] [--source SRC]... [--class NAME] -o OUT.ndd\n"
    "\n"
    "Reads packets from one or more sources, groups them into bidirectional flows\n"
    "(5-tuple + VLAN; the client is the side that sent the first packet, the SYN for\n"
    "TCP), gives each flow the class of the first rule in the config's `classes:` whose\n"
    "BPF filter matches its first packet, and bins it into windows: per bin (capture.bin)\n"
    "the bytes server->client (bytes_down) and client->server (bytes_up), L bins\n"
    "(capture.window) per window, bins counted from the flow's first packet. Packet sizes\n"
    "are the IP total length plus the Ethernet header, so snaplen-cut captures count in\n"
    "full. It also records per class what `replay` needs: packet sizes, gaps, TTLs,\n"
    "ports, MSS, flow arrival rate.\n"
    "\n"
    "Sources are read one after another; flows end with each source. Ctrl-C (SIGINT) or\n"
    "SIGTERM ends a capture cleanly and keeps everything captured so far. When a source\n"
    "fails after packets were read, OUT is left as it was and what was captured goes to\n"
    "OUT with .partial before its extension (out.partial.ndd); the exit code is 1.\n"
    "\n"
    "  -c, --config CONF   YAML config (see docs/CONFIG.md); defaults without it\n"
    "  -s, --source SRC    repeatable; replaces capture.sources of the config:\n"
    "                        pcap:FILE       a pcap or pcapng file\n"
    "                        iface:NAME      live capture with libpcap (root)\n"
    "                        dpdk:EAL-ARGS   DPDK ports, e.g. \"dpdk:-a 0000:03:00.0\" or\n"
    "                                        \"dpdk:--no-huge --no-pci --vdev=net_pcap0,rx_pcap=F\"\n"
    "      --class NAME    label every flow with NAME and ignore the config's rules\n"
    "                      (one capture per class)\n"
    "      --set KEY=VAL   override one config key, e.g. --set capture.bin=100ms\n"
    "  -o, --output FILE   dataset file to write (.ndd); `netdiffus inspect FILE` shows it\n"
    "\n"
    "Flows no rule matches go to capture.default_class (\"other\"), or are dropped when it\n"
    "is \"\". Malformed packets are skipped and counted by reason; the counters are shown\n"
    "at the end and stored in the dataset.\n"
    "\n"
    "examples:\n"
    "  netdiffus capture --source pcap:video.pcap --class video -o video.ndd\n"
    "  netdiffus capture -c conf.yaml --source iface:eth1 -o mirror.ndd\n",
    run, longs};
