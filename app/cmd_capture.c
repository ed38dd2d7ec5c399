/*
 * cmd_capture.c — `netdiffus capture`: packets from pcap files, interfaces or DPDK ports
 * into a dataset file of labelled per-flow windows (the first stage of the pipeline).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "cli.h"
#include "conf.h"
#include "live.h"
#include "opts.h"

/* Window callback: the context's class index is the dataset's label (classes are
 * registered in the same order before any window). */
static int store_window(void *user, uint32_t class_idx, uint64_t group, const float *values)
{
    return nd_dataset_append(user, (uint16_t)class_idx, group, values);
}

static const char *const channel_names[4] = {"bytes_down", "bytes_up", "packets_down",
                                             "packets_up"};

static void summary(capture_ctx *c, const capture_lcores_figures *lf, const char *out)
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
    for (unsigned i = 0; i < lf->n; i++)
        nd_info("  lcore %-2u %u queue(s): %" PRIu64 " read, %" PRIu64 " handed on; %" PRIu64
                " packets, %" PRIu64 " flows, %" PRIu64 " windows",
                i, lf->lc[i].queues, lf->lc[i].rx, lf->lc[i].sent, lf->lc[i].packets,
                lf->lc[i].flows, lf->lc[i].windows);
    for (unsigned q = 0; q < lf->nq; q++)
        nd_info("  port %u queue %u (lcore %u): %" PRIu64 " packets", lf->q[q].port,
                lf->q[q].queue, lf->q[q].lcore, lf->q[q].packets);
}

/* The run's watcher, the source counters of the sources done and the lcores' figures. */
typedef struct watch_state {
    cli_watch *w;
    capture_source_stats done;
    capture_lcores_figures lf;
    capture_totals t; /* the context's totals and the running lcores' */
} watch_state;

/* -o tcp:HOST:PORT: windows streamed to a `live --listen` trainer, with the classes'
 * replay statistics once a second and at the end (docs/LIVE.md). */
typedef struct stream_sink {
    nd_wsend *s;
    capture_ctx *c;
    uint64_t next_stats;
    nd_error err; /* the trainer's refusal */
} stream_sink;

static void stream_stats(stream_sink *k)
{
    for (uint32_t i = 0; i < capture_ctx_n_classes(k->c); i++)
        nd_wsend_stats(k->s, i, capture_ctx_class_stats(k->c, i));
}

static int stream_window(void *user, uint32_t class_idx, uint64_t group, const float *values)
{
    stream_sink *k = user;
    uint64_t now = nd_now_ns();
    if (now >= k->next_stats) {
        stream_stats(k);
        k->next_stats = now + ND_NS_PER_SEC;
    }
    return nd_wsend_push(k->s, class_idx, group, values, &k->err);
}

/* After capture_run returned rc: the last statistics, the rest of the queue and BYE,
 * then what the trainer took. Returns rc, or the stream's code. */
static int stream_end(stream_sink *k, int rc, const nd_error *e, const char *out,
                      const capture_lcores_figures *lf)
{
    if (rc == ND_EINTR) rc = 0;
    if (rc) nd_err("%s", k->err.msg[0] ? k->err.msg : e->msg);
    stream_stats(k);
    nd_wsend_result r;
    nd_error se = {0};
    int sr = nd_wsend_close(k->s, 60 * ND_NS_PER_SEC, &cli_stop, &r, &se);
    if (sr && !k->err.msg[0]) nd_err("%s", se.msg);
    if (!rc) summary(k->c, lf, out);
    nd_info("%s: %" PRIu64 " windows: %" PRIu64 " taken by the trainer on the last of %" PRIu64
            " connection(s), %" PRIu64 " dropped at the full queue (live.send_buffer)",
            out, r.windows, r.acked, r.connections, r.dropped);
    return rc ? rc : sr;
}

/* The capture's figures so far, the same as its summary's: totals, windows per class,
 * every counter (zeros too), what the sources handed over and lost (src). */
static void figures(nd_json *j, capture_ctx *c, const capture_source_stats *src,
                    const watch_state *ws)
{
    const capture_totals t = ws->t;
    const capture_lcores_figures *lf = &ws->lf;
    nd_json_u64(j, "packets", t.packets);
    nd_json_u64(j, "bytes", t.bytes);
    nd_json_u64(j, "skipped", t.skipped);
    nd_json_u64(j, "flows", t.flows);
    nd_json_u64(j, "active_flows", t.active_flows);
    nd_json_u64(j, "windows", t.windows);
    nd_json *cls = nd_json_obj(j, "classes");
    for (uint32_t i = 0; i < capture_ctx_n_classes(c); i++)
        nd_json_u64(cls, capture_ctx_class_name(c, i), capture_ctx_class_windows(c, i));
    nd_json *cnt = nd_json_obj(j, "counters");
    for (uint32_t i = 0; i < capture_ctx_n_counters(c); i++) {
        const char *name;
        uint64_t v;
        capture_ctx_counter(c, i, &name, &v);
        nd_json_u64(cnt, name, v);
    }
    nd_json *s = nd_json_obj(j, "source");
    nd_json_u64(s, "received", src->received);
    nd_json_u64(s, "dropped", src->dropped);
    nd_json_u64(s, "if_dropped", src->if_dropped);
    nd_json_u64(s, "nombuf", src->nombuf);
    nd_json_u64(s, "errors", src->errors);
    capture_lcores_json(j, lf);
}

/* The same figures as Prometheus text. */
static void metrics(cli_watch *w, capture_ctx *c, const capture_source_stats *src,
                    const watch_state *ws)
{
    enum { C = ND_PROM_COUNTER, G = ND_PROM_GAUGE };
    const capture_totals t = ws->t;
    const capture_lcores_figures *lf = &ws->lf;
    nd_prom p = {0};
    nd_prom_metric(&p, "netdiffus_capture_packets_total", C, "Packets read.",
                   (double)t.packets);
    nd_prom_metric(&p, "netdiffus_capture_bytes_total", C, "Frame bytes of parsed packets.",
                   (double)t.bytes);
    nd_prom_metric(&p, "netdiffus_capture_packets_skipped_total", C,
                   "Packets not used (every parse reason, orphan fragments).",
                   (double)t.skipped);
    nd_prom_metric(&p, "netdiffus_capture_flows_total", C, "Flows started.", (double)t.flows);
    nd_prom_metric(&p, "netdiffus_capture_flows_active", G, "Flows in the flow table now.",
                   (double)t.active_flows);
    nd_prom_metric(&p, "netdiffus_capture_windows_total", C, "Windows made.",
                   (double)t.windows);
    nd_prom_family(&p, "netdiffus_capture_class_windows_total", C, "Windows made, per class.");
    for (uint32_t i = 0; i < capture_ctx_n_classes(c); i++)
        nd_prom_sample(&p, "netdiffus_capture_class_windows_total", "class",
                       capture_ctx_class_name(c, i), (double)capture_ctx_class_windows(c, i));
    nd_prom_family(&p, "netdiffus_capture_events_total", C,
                   "The capture's counters by name (parse.*, flow.*, class.*, bin.*).");
    for (uint32_t i = 0; i < capture_ctx_n_counters(c); i++) {
        const char *name;
        uint64_t v;
        capture_ctx_counter(c, i, &name, &v);
        nd_prom_sample(&p, "netdiffus_capture_events_total", "counter", name, (double)v);
    }
    nd_prom_metric(&p, "netdiffus_capture_source_received_total", C,
                   "Packets the sources handed over.", (double)src->received);
    nd_prom_metric(&p, "netdiffus_capture_source_dropped_total", C,
                   "Packets the sources lost for lack of buffer.", (double)src->dropped);
    nd_prom_metric(&p, "netdiffus_capture_source_if_dropped_total", C,
                   "Packets the interfaces dropped.", (double)src->if_dropped);
    nd_prom_metric(&p, "netdiffus_capture_source_nombuf_total", C,
                   "DPDK receive failures for lack of mbufs.", (double)src->nombuf);
    nd_prom_metric(&p, "netdiffus_capture_source_errors_total", C, "DPDK receive errors.",
                   (double)src->errors);
    capture_lcores_prom(&p, "netdiffus_capture", lf);
    cli_watch_publish(w, &p);
    nd_prom_free(&p);
}

static void add_stats(capture_source_stats *to, const capture_source_stats *s)
{
    to->received += s->received;
    to->dropped += s->dropped;
    to->if_dropped += s->if_dropped;
    to->nombuf += s->nombuf;
    to->errors += s->errors;
}

/* capture_opts.report: the lcores' figures, and with a watcher a stats line and the
 * metrics, every interval and as a source ends. */
static void on_report(void *arg, capture_ctx *c, capture_source *s, int ended)
{
    watch_state *ws = arg;
    capture_source_stats now, all = ws->done;
    capture_source_stats_get(s, &now);
    add_stats(&all, &now);
    if (ended) ws->done = all;
    capture_lcores_figures_get(s, &ws->lf);
    if (!cli_watch_on(ws->w)) return;
    capture_ctx_totals(c, &ws->t);
    capture_lcores_totals_add(s, &ws->t);
    nd_json *j = nd_json_new();
    figures(j, c, &all, ws);
    cli_watch_line(ws->w, j, 0);
    metrics(ws->w, c, &all, ws);
}

enum { OPT_CLASS = CLI_OPT_OWN };

static const struct option longs[] = {
    CLI_CONFIG_OPTIONS,
    {"output", required_argument, NULL, 'o'},
    {"source", required_argument, NULL, 's'},
    {"class", required_argument, NULL, OPT_CLASS},
    CLI_JSON_OPTION,
    CLI_WATCH_OPTIONS,
    {0},
};

typedef struct capture_args {
    cli_config cc;
    const char *out, *force_class;
    cli_sources src;
    int json;
    cli_watch watch;
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
        case CLI_OPT_JSON: o->json = 1; break;
        case CLI_OPERAND: return cli_usage_error("capture", "unexpected argument '%s'", a.val);
        default:
            if (cli_watch_take(&o->watch, &a, c) == 1) break;
            return ND_EXIT_USAGE; /* CLI_BAD or a bad value: said */
        }
    }
    if (!o->out) return cli_usage_error("capture", "no output file: give -o OUT.ndd");
    if (cli_json_check("capture", o->json, o->out)) return ND_EXIT_USAGE;
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
static int keep(capture_ctx *c, nd_dataset *ds, const capture_args *o, watch_state *ws, int rc,
                const nd_error *e)
{
    const char *out = o->out;
    capture_ctx_totals(c, &ws->t);
    const capture_totals t = ws->t;
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
            summary(c, &ws->lf, to);
            if (o->json) {
                nd_json *j = nd_json_new();
                nd_json_str(j, "output", to);
                nd_json_bool(j, "partial", side != NULL);
                figures(j, c, &ws->done, ws);
                if (cli_json_print(j) && !rc) rc = -EIO;
            }
        }
    }
    free(side);
    return rc;
}

/* Captures the sources of o into the dataset file o->out. Returns 0 or a code. */
static int capture_to_file(const nd_config *cfg, const capture_args *o)
{
    nd_error e = {0};
    cli_watch watch = o->watch;
    int stream = !strncmp(o->out, "tcp:", 4);
    stream_sink sk = {0};
    if (cli_watch_open(&watch, "capture")) return -EIO; /* said */
    int rc;
    const char *force_class = o->force_class;
    nd_dataset *ds = nd_dataset_new(cfg->capture.channels, channel_names, cfg->capture.window,
                                    cfg->capture.bin_ns);
    capture_opts co;
    opts_capture(&co, cfg);
    capture_ctx *c =
        ds ? capture_ctx_new(&co, force_class, stream ? stream_window : store_window,
                             stream ? (void *)&sk : ds, &e)
           : NULL;
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
    if (stream) {
        char name[ND_NAME_MAX], host[ND_NAME_MAX - 12] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(name, sizeof name, "%s:%ld", host, (long)getpid());
        const char *n = cfg->live.sender_name[0] ? cfg->live.sender_name : name;
        if (!(sk.s = nd_wsend_open(o->out, ds, n, cfg->live.send_buffer, &e))) {
            nd_err("%s", e.msg);
            rc = e.code;
            goto done;
        }
        sk.c = c;
    }

    watch_state *ws = calloc(1, sizeof *ws); /* lcore figures: kilobytes */
    if (!ws) {
        nd_err("out of memory");
        rc = -ENOMEM;
        goto done;
    }
    ws->w = &watch;
    co.report = on_report;
    co.report_arg = ws;
    if (cli_watch_on(&watch)) metrics(&watch, c, &ws->done, ws); /* zeros */
    cli_catch_stop();
    rc = capture_run(c, o->src.spec, o->src.n, &co, &cli_stop, nd_status_enabled(), &e);
    if (cli_watch_on(&watch)) { /* the last figures, before the dataset is saved */
        capture_ctx_totals(c, &ws->t);
        nd_json *j = nd_json_new();
        figures(j, c, &ws->done, ws);
        cli_watch_line(&watch, j, 1);
        metrics(&watch, c, &ws->done, ws);
    }
    rc = stream ? stream_end(&sk, rc, &e, o->out, &ws->lf) : keep(c, ds, o, ws, rc, &e);
    free(ws);
done:
    cli_watch_close(&watch);
    free(yaml);
    capture_ctx_free(c);
    nd_dataset_free(ds);
    return rc;
}

static int run(int argc, char **argv)
{
    capture_args o = {0};
    int rc = parse(&o, argc, argv);
    if (rc) {
        cli_sources_free(&o.src);
        return rc;
    }
    nd_config cfg = {0};
    if (!(rc = cli_config_open(&cfg, &o.cc))) {
        if (cli_sources_resolve(&o.src, &cfg)) rc = cli_exit_code(capture_to_file(&cfg, &o));
        else
            rc =
                cli_usage_error("capture", "no source: give --source pcap:FILE (or iface:NAME, "
                                           "dpdk:EAL-ARGS) or capture.sources in the config");
    }
    nd_config_free(&cfg);
    cli_sources_free(&o.src);
    return rc;
}

const nd_command cmd_capture = {
    "capture", "capture packets into a dataset of per-class flow windows",
    "usage: netdiffus capture [-c CONF] [--source SRC]... [--class NAME] [--json]\n"
    "                         [--stats FILE] [--metrics-port PORT] -o OUT.ndd|tcp:HOST:PORT\n"
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
    "Sources are read one after another, any number of them, each file opened only while\n"
    "it is read; flows end with each file. Ctrl-C (SIGINT) or\n"
    "SIGTERM ends a capture cleanly and keeps everything captured so far. When a source\n"
    "fails after packets were read, OUT is left as it was and what was captured goes to\n"
    "OUT with .partial before its extension (out.partial.ndd); the exit code is 1.\n"
    "\n"
    "  -c, --config CONF   YAML config (see docs/CONFIG.md); defaults without it\n"
    "  -s, --source SRC    repeatable, any number; replaces capture.sources of the config:\n"
    "                        pcap:FILE       a pcap or pcapng file; pcap:- standard input\n"
    "                        pcap:DIR        every file in the folder DIR, in byte order of\n"
    "                                        their names (hidden names, subfolders skipped)\n"
    "                        iface:NAME      live capture with libpcap (root)\n"
    "                        dpdk:EAL-ARGS   DPDK ports, e.g. \"dpdk:-a 0000:03:00.0\" or\n"
    "                                        \"dpdk:--no-huge --no-pci --vdev=net_pcap0,rx_pcap=F\"\n"
    "                                        (read by capture.lcores threads, one flow\n"
    "                                        table each, when set: docs/CAPTURE.md)\n"
    "      --class NAME    label every flow with NAME and ignore the config's rules\n"
    "                      (one capture per class)\n"
    "      --set KEY=VAL   override one config key, e.g. --set capture.bin=100ms\n"
    "  -o, --output FILE   dataset file to write (.ndd; - for standard output);\n"
    "                      `netdiffus inspect FILE` shows it; or tcp:HOST:PORT: stream\n"
    "                      each window as it is made to a `netdiffus live --listen PORT`\n"
    "                      trainer (reconnects while it is away; live.send_buffer windows\n"
    "                      wait, the oldest dropped when full; live.sender_name; exit 0\n"
    "                      once the trainer acknowledged the end; docs/LIVE.md)\n"
    "      --json          print the summary on stdout as one JSON object (README.md)\n"
    "      --stats FILE    append the summary's figures to FILE as one JSON object a\n"
    "                      second, and a last one with \"final\": true (docs/CAPTURE.md)\n"
    "      --metrics-port PORT  serve them as Prometheus text on\n"
    "                      http://127.0.0.1:PORT/metrics while the capture runs\n"
    "\n"
    "Flows no rule matches go to capture.default_class (\"other\"), or are dropped when it\n"
    "is \"\". Malformed packets are skipped and counted by reason; the counters are shown\n"
    "at the end and stored in the dataset.\n"
    "\n"
    "examples:\n"
    "  netdiffus capture --source pcap:video.pcap --class video -o video.ndd\n"
    "  netdiffus capture -c conf.yaml --source iface:eth1 -o mirror.ndd\n"
    "  netdiffus capture -c conf.yaml --source pcap:day/ -o day.ndd   (hourly files)\n"
    "  tcpdump -i eth1 -w - | netdiffus capture --source pcap:- --class web -o web.ndd\n",
    run, longs};
