/*
 * cmd_live.c — `netdiffus live`: capture, online learning and (optionally) replay in one
 * long-running process. The pipeline is libnd_live's (nd_live_run, live/pipeline.c,
 * docs/LIVE.md); this file reads the command line and the config into its options and
 * says how the run ended.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "live.h"
#include "opts.h"

/* ---- options --------------------------------------------------------------------- */

enum {
    OPT_STATS = CLI_OPT_OWN,
    OPT_REPLAY_TO,
    OPT_SPEED,
    OPT_DURATION,
    OPT_STEPS,
    OPT_RESUME,
    OPT_LISTEN
};

static const struct option longs[] = {
    CLI_CONFIG_OPTIONS,
    {"source", required_argument, NULL, 's'},
    {"stats", required_argument, NULL, OPT_STATS},
    {"replay-to", required_argument, NULL, OPT_REPLAY_TO},
    {"speed", required_argument, NULL, OPT_SPEED},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {0},
};

typedef struct live_args {
    cli_config cc;
    const char *stats_path, *replay_to, *listen;
    cli_sources src;
    int resume;
    double speed;                 /* pace of pcap files */
    uint64_t duration, max_steps; /* 0: no limit */
} live_args;

/* The option of code c into o: 0, or ND_EXIT_USAGE once said. */
static int take(live_args *o, const cli_args *a, int c)
{
    const char *v = a->val;
    long long steps;
    nd_error pe = {0};
    switch (c) {
    case OPT_STATS: o->stats_path = v; break;
    case OPT_REPLAY_TO: o->replay_to = v; break;
    case OPT_RESUME: o->resume = 1; break;
    case OPT_LISTEN: o->listen = v; break;
    case 's': return cli_sources_add(&o->src, a);
    case OPT_SPEED:
        if (cli_parse_double(v, &o->speed) || !(o->speed >= 0) || o->speed > 1e6)
            return cli_usage_error("live", "--speed %s: expected a number >= 0", v);
        break;
    case OPT_DURATION:
        if (nd_parse_duration(v, &o->duration, &pe) || !o->duration)
            return cli_usage_error("live", "--duration %s: %s", v,
                                   pe.msg[0] ? pe.msg : "must be more than 0");
        break;
    case OPT_STEPS:
        if (cli_parse_ll(v, &steps) || steps < 1)
            return cli_usage_error("live", "--steps %s: expected a positive integer", v);
        o->max_steps = (uint64_t)steps;
        break;
    case CLI_OPERAND: return cli_usage_error("live", "unexpected argument '%s'", v);
    default: return ND_EXIT_USAGE; /* CLI_BAD: said */
    }
    return 0;
}

static int parse(live_args *o, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "live", argc, argv, "c:s:", longs);
    memset(o, 0, sizeof *o);
    o->speed = 1.0;
    a.config = &o->cc;
    for (int c; (c = cli_args_next(&a)) != CLI_END;)
        if (take(o, &a, c)) return ND_EXIT_USAGE;
    if (!o->cc.path) return cli_usage_error("live", "no config: give -c CONF.yaml");
    return 0;
}

/* ---- running it ------------------------------------------------------------------ */

/* What the config and the command line decide together: the sources (the command
 * line's, else the config's) and a sink for live.replay. */
static int check_args(live_args *a, const nd_config *cfg, nd_error *e)
{
    if (!cli_sources_resolve(&a->src, cfg) && !a->listen && !cfg->live.listen[0])
        return nd_error_set(e, ND_EUSAGE,
                            "live: no source: give --source pcap:FILE|iface:NAME|"
                            "dpdk:EAL-ARGS or capture.sources in the config, or --listen "
                            "[ADDR:]PORT for windows from other hosts");
    if (nd_is_stdio(cfg->live.checkpoint))
        return nd_error_set(e, ND_EUSAGE,
                            "live.checkpoint: '-': live rewrites its checkpoint "
                            "as it learns: give a file name");
    /* Files play side by side on one timeline, so every source is open at once. */
    if (a->src.n > ND_CONF_MAX_SOURCES)
        return nd_error_set(e, ND_EUSAGE,
                            "live: %u sources, at most %d: live reads its sources side by "
                            "side, all open at once (`capture` reads any number, one after "
                            "another)",
                            a->src.n, ND_CONF_MAX_SOURCES);
    if (cfg->live.replay && !a->replay_to)
        return nd_error_set(e, ND_EUSAGE,
                            "live: live.replay is on: say where the packets go "
                            "with --replay-to pcap:FILE|iface:NAME|dpdk:EAL-ARGS (or --set "
                            "live.replay=false and run `netdiffus replay %s` against the "
                            "checkpoint)",
                            cfg->live.checkpoint);
    return 0;
}

/* The command line's part of o: sources, pace, limits, replay sink, stats file (opened
 * here, *stats to close), the stop flag. */
static int take_args(nd_live_opts *o, FILE **stats, const live_args *a, nd_error *e)
{
    o->sources = a->src.spec;
    o->n_sources = a->src.n;
    o->speed = a->speed;
    o->max_steps = a->max_steps;
    o->duration_ns = a->duration;
    o->replay_to = a->replay_to;
    if (a->listen) o->listen = a->listen;
    o->stop = &cli_stop;
    if (a->stats_path && nd_is_stdio(a->stats_path)) {
        if (nd_stdio_claim(1, e)) return e->code;
        *stats = stdout;
    } else if (a->stats_path && !(*stats = fopen(a->stats_path, "a"))) {
        return nd_error_set(e, -errno, "%s: %s", a->stats_path, strerror(errno));
    }
    o->stats = *stats;
    return 0;
}

static void say_result(const nd_live_result *r, const char *ckpt)
{
    char loss[32] = "no training step yet";
    if (r->step) snprintf(loss, sizeof loss, "loss %.4f", r->loss);
    nd_info("live: %s after %.1f s: %" PRIu64 " packets, %" PRIu64 " windows (%" PRIu64
            " dropped at the full ring), %" PRIu64 " steps in this run (step %" PRIu64
            "), %s%s%s",
            cli_stop ? "stopped by a signal" : "done", r->seconds, r->packets, r->windows,
            r->dropped, r->steps_run, r->step, loss,
            r->checkpoint ? "; checkpoint " : "; no class warmed up, no checkpoint",
            r->checkpoint ? ckpt : "");
    if (r->replay_rounds)
        nd_info("live: replayed %" PRIu64 " rounds, %" PRIu64 " packets", r->replay_rounds,
                r->replay_packets);
    if (r->students) nd_info("live: %" PRIu64 " students written", r->students);
}

static int run(int argc, char **argv)
{
    live_args a;
    int rc = parse(&a, argc, argv);
    if (rc) {
        cli_sources_free(&a.src);
        return rc;
    }
    nd_config cfg;
    if ((rc = cli_config_open(&cfg, &a.cc))) {
        nd_config_free(&cfg);
        cli_sources_free(&a.src);
        return rc; /* said */
    }
    nd_error e = {0};
    nd_live_opts o;
    nd_live_result res;
    char *provenance = NULL;
    FILE *stats = NULL;
    rc = check_args(&a, &cfg, &e);
    if (!rc) rc = opts_live(&o, &provenance, &cfg, a.resume, &e);
    if (!rc) rc = take_args(&o, &stats, &a, &e);
    if (!rc) {
        cli_catch_stop();
        rc = nd_live_run(&o, &res, &e);
    }
    if (!rc) say_result(&res, o.checkpoint);
    else nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    if (stats && stats != stdout) fclose(stats);
    free(provenance);
    nd_config_free(&cfg);
    cli_sources_free(&a.src);
    return cli_exit_code(rc);
}

const nd_command cmd_live = {
    "live",
    "capture, learn online and replay in one process",
    "usage: netdiffus live -c CONF [--resume] [--source SRC]... [--set KEY=VAL]\n"
    "                      [--speed X] [--steps N] [--duration D] [--stats FILE]\n"
    "                      [--replay-to SINK] [--listen [ADDR:]PORT]\n"
    "\n"
    "Captures traffic and learns it while it watches: a capture thread turns packets into\n"
    "per-flow windows (as `capture` does) and hands them to the trainer through a ring\n"
    "of live.ring_size windows that never blocks capture (a full ring drops windows and\n"
    "counts them). The trainer keeps a reservoir sample of live.reservoir windows per\n"
    "class plus the live.recent most recent windows, and trains the diffusion model\n"
    "continuously: a class joins the model once it has live.warmup windows (its scale is\n"
    "fitted then, and refit by the live.scale_refit rule). The model file live.checkpoint\n"
    "is written atomically every live.checkpoint_every steps or live.checkpoint_interval,\n"
    "and on Ctrl-C/SIGTERM; `netdiffus sample` and `netdiffus replay MODEL.ndm` can read\n"
    "it at any time while live keeps updating it. A checkpoint that cannot be written\n"
    "(full disk, folder gone) is warned about and training goes on; when the last one\n"
    "cannot either, it goes to $TMPDIR/netdiffus-PID-NAME (/tmp without TMPDIR), named\n"
    "in the error and as \"checkpoint_fallback\" in the last --stats line (exit 1).\n"
    "\n"
    "  -c, --config CONF   YAML config (capture, classes, model, train, live sections)\n"
    "  -s, --source SRC    repeatable (at most 8, all read side by side); replaces\n"
    "                      capture.sources: pcap:FILE (played at its own pace: packet\n"
    "                      timestamps, x --speed), iface:NAME, dpdk:ARGS\n"
    "      --set KEY=VAL   override one config key\n"
    "      --resume        continue the checkpoint live.checkpoint: model, optimiser, step,\n"
    "                      reservoirs and recent windows\n"
    "      --speed X       pace of pcap files: 1 real time (default), 10 ten times faster,\n"
    "                      0 as fast as they read (the ring may then drop windows)\n"
    "      --steps N       stop at training step N (in total)\n"
    "      --duration D    stop after D of wall time (e.g. 90s, 10m)\n"
    "      --stats FILE    append the status figures as one JSON object per line (NaN\n"
    "                      and infinities as null; -: standard output)\n"
    "      --replay-to SINK  with live.replay: replay samples of each new checkpoint to\n"
    "                      pcap:FILE, iface:NAME or dpdk:ARGS (replay section)\n"
    "      --listen [ADDR:]PORT  also learn the windows that `netdiffus capture -o\n"
    "                      tcp:HOST:PORT` streams from other hosts (replaces live.listen;\n"
    "                      ADDR: 127.0.0.1 when not given); with it, no --source is needed\n"
    "\n"
    "Once a second (live.status_interval) a status line on a terminal shows packets/s,\n"
    "flows, windows per class, ring drops, step, loss, images/s and the last checkpoint;\n"
    "live.metrics_port serves the same figures in Prometheus text format on 127.0.0.1\n"
    "(live.metrics_addr), and the newest checkpoint as /model.ndm: `netdiffus replay\n"
    "http://HOST:PORT/model.ndm` on any host fetches it.\n"
    "With live.distill N (and model.prediction: v), every live.distill_every steps the\n"
    "newest checkpoint is distilled into a student that samples in N steps, one student\n"
    "step after each of the model's; the student goes to live.student (default: the\n"
    "checkpoint's name with -student) and, with live.replay, replay samples the newest\n"
    "student from then on (docs/LIVE.md, \"Distilling a student while\n"
    "learning\").\n"
    "When every pcap input has ended, training goes on until Ctrl-C, --steps or\n"
    "--duration. Memory is bounded by capture.flow_capacity, live.ring_size,\n"
    "live.reservoir and live.recent (shown at start). See docs/LIVE.md.\n"
    "\n"
    "examples:\n"
    "  netdiffus live -c conf/examples/live.yaml\n"
    "  netdiffus live -c conf.yaml --listen 0.0.0.0:7070 --set live.metrics_port=9100 \\\n"
    "      --set live.metrics_addr=0.0.0.0            # the trainer, on host T\n"
    "  netdiffus capture -c conf.yaml -s iface:eth1 -o tcp:T:7070   # each capture host\n"
    "  netdiffus replay http://T:9100/model.ndm --flows 20 --to pcap:now.pcap\n"
    "\n"
    "Exit codes: 0 (also when stopped by Ctrl-C: checkpoint written); 1 runtime failure;\n"
    "2 bad usage or config.\n",
    run,
    longs,
};
