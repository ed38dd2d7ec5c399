/*
 * cmd_replay.c — `netdiffus replay`: given series (CSV or dataset file) → timed packets
 * on a pcap file, an interface or a DPDK port, through libnd_replay. Sampling the series
 * from a model (`replay MODEL.ndm`) comes with the diffusion issue (#5).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "replay.h"

static const char help[] =
    "usage: netdiffus replay --series IN.csv|IN.ndd --to SINK [options]\n"
    "       netdiffus replay MODEL.ndm [--class NAME] --flows N --to SINK [options]\n"
    "\n"
    "Turns per-flow series into packets: sizes from the class's packet-size histogram so\n"
    "that the bytes of every bin match the series, send times from its inter-arrival\n"
    "statistics, TCP (handshake, seq/ack, FIN) or UDP over IPv4 or IPv6 with addresses\n"
    "from the replay pools of the config. Each packet has an absolute deadline\n"
    "t0 + offset/speed. Ctrl-C stops cleanly; a pcap written so far stays valid.\n"
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
    "      --class NAME   replay only the windows of this class\n"
    "      --flows N      flows per pass (default: one per window of the series)\n"
    "      --speed X      time scale, 2 = twice as fast; 0 or max = as fast as possible\n"
    "      --seed S       random seed of sizes, times, addresses and ports\n"
    "      --loop N       passes over the flows; 0 = until --duration or Ctrl-C\n"
    "      --duration D   stop after D of output time (e.g. 30s); flows without a known\n"
    "                     arrival rate are spread over D\n"
    "      --bin D        bin width of a series CSV (default: capture.bin of the config)\n"
    "      --spin D       busy-wait the last D before each deadline, sleep before that\n"
    "                     (default 30us; more helps on hosts with slow wake-ups)\n"
    "\n"
    "Sampling series from a model (MODEL.ndm) comes with the diffusion issue (#5).\n"
    "docs/REPLAY.md explains the packetizer's choices and error bounds.\n";

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { stop_flag = 1; }

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

static int run(int argc, char **argv)
{
    const char *series = NULL, *to = NULL, *config = NULL, *cls = NULL, *model = NULL;
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
    if (model) {
        nd_err("replay: sampling series from a model (%s) is not available yet: it lands with "
               "the diffusion issue (#5). Replay given series with --series IN.csv|IN.ndd.",
               model);
        return ND_EXIT_FAIL;
    }
    if (!series) return cli_usage_error("replay", "no input: --series IN.csv|IN.ndd");
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
    replay_opts o;
    replay_opts_defaults(&o);
    replay_opts_from_config(&o, &cfg);
    o.flows = have_flows ? (uint32_t)flows : 0; /* --series: one flow per window by default */
    if (have_seed) o.seed = seed;
    if (have_loop) o.loop = (uint32_t)loop;
    o.only_class = cls;
    if (cls) o.n_mix = 0;
    int status = ND_EXIT_USAGE;
    nd_dataset *ds = NULL;
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
    ds = ends_with(series, ".csv") ? nd_csv_read(series, bin_ns, &e) : nd_dataset_load(series, &e);
    if (!ds) {
        nd_err("%s", e.msg);
        status = cli_exit_code(e.code);
        goto out;
    }
    sink = replay_sink_open(to, &e);
    if (!sink) {
        nd_err("%s", e.msg);
        status = cli_exit_code(e.code);
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a sleep ends at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &stop_flag;

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
    nd_info("replay%s: %s -> %s: %s", rc == ND_EINTR ? " (stopped by signal)" : "", series, to,
            line);
    if (st.carried)
        nd_debug("replay: %llu bin remainders smaller than a frame were carried to the next bin",
                 (unsigned long long)st.carried);
    status = ND_EXIT_OK;
out:
    replay_sink_close(sink, NULL);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
    return status;
}

const nd_command cmd_replay = {"replay", "turn sampled or given series into packets on a sink",
                               help, run};
