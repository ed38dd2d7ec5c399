/*
 * conf_keys.c — THE table of netdiffus configuration keys: one row per key, grouped by
 * section. Parsing, validation, defaults, `inspect --config`, docs/CONFIG.md and
 * conf/examples/default.yaml are all driven by it (conf.c, conf_doc.c).
 *
 * To add a key: a field in struct nd_config (conf.h), then a row here in its section.
 * Defaults and bounds are written the way a user writes values ("1s", "64MiB"), so that
 * they go through the same parser as the user's file. Cross-key rules are in conf.c
 * (conf_cross_check).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conf_impl.h"

/* offset and size of a field of nd_config (or of a list item type T) */
#define F(field)     .off = offsetof(nd_config, field), .size = sizeof(((nd_config *)0)->field)
#define FI(T, field) .off = offsetof(T, field), .size = sizeof(((T *)0)->field)

const char *const conf_sections[] = {"capture", "classes", "model", "train",
                                     "sample",  "replay",  "live",  NULL};

/* ---- format checks for string values: NULL when fine, else what was expected ------ */

/* Class names end up in CSV headers, file names and log lines: keep them plain. */
static const char *check_name(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.+", *p))
            return "a class name of letters, digits and - _ . +";
    return NULL;
}

static const char *check_source(const char *s)
{
    static const char *const kinds[] = {"pcap:", "iface:", "dpdk:"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strncmp(s, kinds[i], strlen(kinds[i])) && s[strlen(kinds[i])]) return NULL;
    return "a source pcap:FILE, iface:NAME or dpdk:EAL-ARGS";
}

/* "198.18.0.0/15" or "2001:db8::/64": an address, a slash, a prefix length. */
static const char *check_cidr(const char *s)
{
    static const char *const what = "an address block like 198.18.0.0/16 or 2001:db8::/64";
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || slash - s >= 64 || !slash[1]) return what;
    char addr[64];
    memcpy(addr, s, (size_t)(slash - s));
    addr[slash - s] = 0;
    unsigned char buf[16];
    int v6 = strchr(addr, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, buf) != 1) return what;
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    if (*end || !isdigit((unsigned char)slash[1]) || bits > (v6 ? 128 : 32)) return what;
    return NULL;
}

/* A numeric IPv4 or IPv6 address. */
static const char *check_addr(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1
               ? NULL
               : "expected a numeric IPv4 or IPv6 address";
}

/* "", or [ADDR:]PORT with PORT 1..65535. */
static const char *check_listen(const char *s)
{
    if (!*s) return NULL;
    const char *port = strrchr(s, ':');
    port = port ? port + 1 : s;
    char *end;
    long p = strtol(port, &end, 10);
    return *port && !*end && p >= 1 && p <= 65535 ? NULL
                                                  : "expected [ADDR:]PORT, PORT 1..65535";
}

/* "", or a plain name for logs and metric labels (the default HOST:PID has a colon). */
static const char *check_sender(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.+:", *p))
            return "a name of letters, digits and - _ . + :";
    return NULL;
}

static const char *check_mac(const char *s)
{
    for (int i = 0; i < 17; i++) {
        int want_colon = i % 3 == 2;
        if (want_colon ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
            return "a MAC address like 02:00:00:00:00:01";
    }
    return s[17] ? "a MAC address like 02:00:00:00:00:01" : NULL;
}

/* ---- list items --------------------------------------------------------------------- */

// clang-format off
static const conf_key class_item_keys[] = {
    {.name = "name", .type = CONF_STRING, FI(nd_class_rule, name), .def = "", .min = "1",
     .required = 1, .check = check_name,
     .help = "Class label, unique; models and datasets name classes by it."},
    {.name = "filter", .type = CONF_STRING, FI(nd_class_rule, filter), .def = "",
     .help = "BPF expression (pcap-filter(7)) tested on a flow's first packet, e.g. "
             "\"tcp port 443\". Empty: the rule matches nothing, the class is only a label "
             "(imports of pre-binned series)."},
};
// clang-format on
static const conf_list classes_list = {.count_off = offsetof(nd_config, n_classes),
                                       .items_off = offsetof(nd_config, classes),
                                       .heap = 1,
                                       .item_size = sizeof(nd_class_rule),
                                       .max_items = ND_MAX_CLASSES,
                                       .keys = class_item_keys,
                                       .n_keys = 2,
                                       .map = 1,
                                       .unique = "name"};

// clang-format off
static const conf_key mix_item_keys[] = {
    {.name = "class", .type = CONF_STRING, FI(nd_mix_entry, name), .def = "", .min = "1",
     .required = 1, .check = check_name, .help = "Class to generate (one of classes when given)."},
    {.name = "weight", .type = CONF_DOUBLE, FI(nd_mix_entry, weight), .def = "1",
     .min = "0", .max = "1e6", .help = "Relative share of the flows (weights need not sum to 1)."},
};
// clang-format on
static const conf_list mix_list = {.count_off = offsetof(nd_config, replay.n_mix),
                                   .items_off = offsetof(nd_config, replay.mix),
                                   .heap = 1,
                                   .item_size = sizeof(nd_mix_entry),
                                   .max_items = ND_MAX_CLASSES,
                                   .keys = mix_item_keys,
                                   .n_keys = 2,
                                   .map = 1,
                                   .unique = "class"};

static const conf_key source_item_key[] = {
    {.type = CONF_STRING, .off = 0, .size = ND_CONF_STR, .min = "1", .check = check_source}};
static const conf_list sources_list = {.count_off = offsetof(nd_config, capture.n_sources),
                                       .items_off = offsetof(nd_config, capture.sources),
                                       .item_size = ND_CONF_STR,
                                       .max_items = ND_CONF_MAX_SOURCES,
                                       .keys = source_item_key,
                                       .n_keys = 1};

static const conf_key mult_item_key[] = {
    {.type = CONF_UINT, .off = 0, .size = sizeof(uint32_t), .min = "1", .max = "16"}};
static const conf_list mult_list = {.count_off = offsetof(nd_config, model.n_mult),
                                    .items_off = offsetof(nd_config, model.channel_mult),
                                    .item_size = sizeof(uint32_t),
                                    .min_items = 1,
                                    .max_items = ND_CONF_MAX_MULT,
                                    .keys = mult_item_key,
                                    .n_keys = 1};

/* ---- the table ---------------------------------------------------------------------- */

// clang-format off
const conf_key conf_keys[] = {
    /* capture: sources, parsing, flows, binning */
    {"capture.sources", CONF_LIST, F(capture.n_sources), .def = "[]", .list = &sources_list,
     .help = "Where packets come from: pcap:FILE (pcap or pcapng), pcap:DIR (every file "
             "of the folder, in name order), iface:NAME (libpcap live) or dpdk:EAL-ARGS (a "
             "DPDK port). Empty: given on the command line (any number there)."},
    {"capture.snaplen", CONF_UINT, F(capture.snaplen), .def = "256", .min = "64",
     .max = "262144", .unit = "bytes",
     .help = "Bytes kept per packet on libpcap sources. Headers suffice: packet sizes come "
             "from the IP length, so truncated packets count in full."},
    {"capture.promisc", CONF_BOOL, F(capture.promisc), .def = "true",
     .help = "Promiscuous mode on iface: sources (needed on a mirror port)."},
    {"capture.buffer_size", CONF_SIZE, F(capture.buffer_size), .def = "64MiB",
     .min = "64KiB", .max = "16GiB", .unit = "bytes",
     .help = "Kernel capture buffer of libpcap sources; larger rides out bursts."},
    {"capture.bin", CONF_DURATION, F(capture.bin_ns), .def = "1s", .min = "1us", .max = "1h",
     .help = "Bin width: each series value is the bytes (or packets) of one bin."},
    {"capture.window", CONF_UINT, F(capture.window), .def = "64", .min = "4", .max = "1024",
     .unit = "bins",
     .help = "L: bins per window, also the GASF image side. Must be divisible by "
             "2^(levels-1) of model.channel_mult."},
    {"capture.min_active_bins", CONF_UINT, F(capture.min_active_bins), .def = "1",
     .min = "1", .max = "1024", .unit = "bins",
     .help = "Windows with fewer non-zero bins are dropped (and counted). At most "
             "capture.window."},
    {"capture.channels", CONF_UINT, F(capture.channels), .def = "2", .choices = "2|4",
     .unit = "series per window",
     .help = "2: bytes down (server to client) and up; 4: plus packets down and up."},
    {"capture.flow_capacity", CONF_UINT, F(capture.flow_capacity), .def = "1048576",
     .min = "1024", .max = "67108864", .unit = "flows",
     .help = "Flow table slots, allocated once: memory is bounded; flows beyond it are "
             "evicted and counted."},
    {"capture.idle_timeout", CONF_DURATION, F(capture.idle_timeout_ns), .def = "15s",
     .min = "1ms", .max = "24h",
     .help = "A flow silent this long ends. At least capture.bin, at most "
             "capture.active_timeout."},
    {"capture.active_timeout", CONF_DURATION, F(capture.active_timeout_ns), .def = "30m",
     .min = "1ms", .max = "720h",
     .help = "A flow older than this is cut; the rest continues as a new flow."},
    {"capture.default_class", CONF_STRING, F(capture.default_class), .def = "other",
     .check = check_name,
     .help = "Class of flows that match no rule in classes; \"\" drops them (counted "
             "either way)."},
    {"capture.dpdk_eal", CONF_STRING, F(capture.dpdk_eal), .def = "",
     .help = "Extra EAL arguments for dpdk: sources, e.g. \"-l 0-1 --no-huge\"."},
    {"capture.rx_queues", CONF_UINT, F(capture.rx_queues), .def = "1", .min = "1",
     .max = "128", .unit = "queues",
     .help = "DPDK rx queues per port, spread by RSS (symmetric key) when > 1."},
    {"capture.lcores", CONF_UINT, F(capture.lcores), .def = "0", .min = "0", .max = "64",
     .unit = "threads",
     .help = "Threads (lcores) reading a dpdk: source, each with its own flow table "
             "(flow_capacity / lcores flows) and rx queues q with q mod lcores = its "
             "rank; windows merge in one fixed order, the same for every count >= 1. 0: "
             "the capture thread polls every queue itself (windows in the order flows "
             "end)."},
    {"capture.mbufs", CONF_UINT, F(capture.mbufs), .def = "8191", .min = "511",
     .max = "16777215", .unit = "mbufs",
     .help = "DPDK mempool size (2^n - 1 uses memory best)."},

    /* classes: the labels, and the BPF rules of capture */
    {"classes", CONF_LIST, F(n_classes), .def = "[]", .list = &classes_list,
     .help = "Traffic classes, first match wins: a list of {name, filter}. Empty: the "
             "classes come from the dataset or model in use."},

    /* model: the U-Net and the diffusion process (docs/MODEL.md) */
    {"model.arch", CONF_ENUM, F(model.arch), .def = "unet-ref", .choices = "unet-ref",
     .help = "Network architecture (docs/MODEL.md)."},
    {"model.base_channels", CONF_UINT, F(model.base_channels), .def = "32", .min = "8",
     .max = "512", .unit = "feature maps",
     .help = "Width of the first level; divisible by model.groups."},
    {"model.channel_mult", CONF_LIST, F(model.n_mult), .def = "[1, 2, 2]", .list = &mult_list,
     .help = "Width multiplier per level (each from 1 to 16, 1 to 6 levels); level i runs "
             "at L/2^i."},
    {"model.res_blocks", CONF_UINT, F(model.res_blocks), .def = "2", .min = "1", .max = "8",
     .unit = "blocks",
     .help = "ResBlocks per encoder level (the decoder has one more); the network holds at "
             "most 64 in all, levels x (2 res_blocks + 1) + 2."},
    {"model.attn_min_res", CONF_RES, F(model.attn_min_res), .def = "L/4",
     .aux_off = offsetof(nd_config, model.attn_div), .unit = "pixels or L/N",
     .help = "Self-attention at resolutions up to this: pixels (16), or \"L/N\" to follow "
             "capture.window (L/4 is the lowest level of (1,2,2), i.e. the middle block). "
             "0: no attention."},
    {"model.groups", CONF_UINT, F(model.groups), .def = "8", .min = "1", .max = "64",
     .unit = "groups", .help = "GroupNorm groups; divides every level's width."},
    {"model.emb_dim", CONF_UINT, F(model.emb_dim), .def = "128", .min = "16", .max = "2048",
     .unit = "features", .help = "Width of the time and class embedding; even."},
    {"model.max_classes", CONF_UINT, F(model.max_classes), .def = "64", .min = "1",
     .max = "1024", .unit = "classes",
     .help = "Class-embedding rows reserved (plus the null class), so that live learning "
             "can add classes; at least the classes configured."},
    {"model.timesteps", CONF_UINT, F(model.timesteps), .def = "1000", .min = "10",
     .max = "10000", .unit = "steps", .help = "T: diffusion steps of training."},
    {"model.schedule", CONF_ENUM, F(model.schedule), .def = "cosine",
     .choices = "cosine|linear",
     .help = "Noise schedule: cosine (Nichol & Dhariwal) or linear beta (Ho et al.)."},
    {"model.prediction", CONF_ENUM, F(model.prediction), .def = "eps", .choices = "eps|v",
     .help = "What the network predicts: the noise (eps) or the velocity (v)."},
    {"model.scaling", CONF_ENUM, F(model.scaling), .def = "zero-aware",
     .choices = "zero-aware|log|headroom",
     .help = "Series to GAF values, per class: log is log1p(x)/log1p(max); zero-aware "
             "puts zeros at 0 and non-zero values in [0.5, 1] (log1p, min..max); "
             "headroom puts them in [0.5, 0.9], leaving room above the largest."},
    {"model.coords", CONF_BOOL, F(model.coords), .def = "true",
     .help = "Two more input planes to the network with each pixel's row and column, so "
             "that it knows which bins of the window it is drawing everywhere in the "
             "image, not only near the border (docs/MODEL.md)."},
    {"model.context", CONF_BOOL, F(model.context), .def = "false",
     .help = "Train the network to continue a flow's window before: its known first bins "
             "go in as input planes, trained on windows of flows that continue the one "
             "before, so that a flow's windows join without a seam; and tell it where in "
             "its flow a window starts, so that flows begin as captured ones do "
             "(docs/MODEL.md)."},
    {"model.mask", CONF_BOOL, F(model.mask), .def = "true",
     .help = "Learn an activity image (bin zero or not) per channel beside the values; "
             "decoding zeroes the bins it marks idle."},
    {"model.decode", CONF_ENUM, F(model.decode), .def = "diag", .choices = "diag|lsq",
     .help = "GASF image to series (and the projection of sample.project): diag reads the "
             "diagonal; lsq fits the series to the whole image (least squares: better on "
             "white noise, worse on sampled images, docs/FIDELITY.md)."},
    {"model.threads", CONF_UINT, F(model.threads), .def = "0", .max = "1024",
     .unit = "threads", .help = "OpenBLAS threads; 0: all cores."},

    /* train: AdamW + EMA over the dataset */
    {"train.steps", CONF_UINT, F(train.steps), .def = "50000", .min = "1",
     .max = "1000000000000", .unit = "steps", .help = "Optimiser steps of a training run (one batch each)."},
    {"train.batch", CONF_UINT, F(train.batch), .def = "64", .min = "1", .max = "4096",
     .unit = "windows", .help = "Windows per optimiser step."},
    {"train.lr", CONF_DOUBLE, F(train.lr), .def = "2e-4", .min = "1e-8", .max = "1",
     .help = "AdamW learning rate (after warm-up)."},
    {"train.weight_decay", CONF_DOUBLE, F(train.weight_decay), .def = "0", .min = "0",
     .max = "1", .help = "AdamW decoupled weight decay; 0: plain Adam."},
    {"train.warmup_steps", CONF_UINT, F(train.warmup_steps), .def = "500", .max = "10000000",
     .unit = "steps", .help = "Linear learning-rate warm-up from 0."},
    {"train.ema_decay", CONF_DOUBLE, F(train.ema_decay), .def = "0.999", .min = "0",
     .max = "0.999999", .help = "EMA of the weights used for sampling; 0: no averaging."},
    {"train.ema_warmup", CONF_BOOL, F(train.ema_warmup), .def = "true",
     .help = "EMA decay min(train.ema_decay, (1+s)/(10+s)) at step s, so that the "
             "average forgets the untrained start."},
    {"train.grad_clip", CONF_DOUBLE, F(train.grad_clip), .def = "1", .min = "0",
     .max = "1e6", .help = "Clip the global gradient L2 norm to this; 0: off."},
    {"train.class_dropout", CONF_DOUBLE, F(train.class_dropout), .def = "0.1", .min = "0",
     .max = "1",
     .help = "Share of windows trained as the null class (classifier-free guidance)."},
    {"train.val_fraction", CONF_DOUBLE, F(train.val_fraction), .def = "0.1", .min = "0",
     .max = "0.5",
     .help = "Share of flows (groups, never split) held out for validation loss."},
    {"train.checkpoint_every", CONF_UINT, F(train.checkpoint_every), .def = "5000",
     .max = "1000000000000", .unit = "steps",
     .help = "Write the model file every this many steps; 0: only at the end."},
    {"train.seed", CONF_UINT, F(train.seed), .def = "1",
     .help = "Random seed (initialisation, batches, noise): same seed, same run."},

    /* sample: DDIM / DDPM with classifier-free guidance */
    {"sample.sampler", CONF_ENUM, F(sample.sampler), .def = "ddim",
     .choices = "ddim|ddpm|dpmpp",
     .help = "ddim: deterministic at sample.eta 0; ddpm: ancestral (stochastic); dpmpp: "
             "DPM-Solver++(2M), good with few steps. Each runs sample.steps steps."},
    {"sample.clip", CONF_ENUM, F(sample.clip), .def = "none",
     .choices = "dynamic|clip|none",
     .help = "Predicted clean image at every step: dynamic thresholding (99.5th "
             "percentile, Imagen), plain clip to [-1, 1], or none. Dynamic thresholding "
             "shrinks whole images towards 0, which flattens bursts and fills idle bins "
             "(docs/FIDELITY.md); sample.project keeps images valid without it."},
    {"sample.project", CONF_BOOL, F(sample.project), .def = "true",
     .help = "After clipping, replace the predicted clean image by the GASF image of its "
             "series (decoded by model.decode) at every step."},
    {"sample.steps", CONF_UINT, F(sample.steps), .def = "50", .min = "1", .max = "10000",
     .unit = "steps", .help = "Denoising steps of every sampler; at most model.timesteps."},
    {"sample.guidance", CONF_DOUBLE, F(sample.guidance), .def = "2", .min = "0", .max = "100",
     .help = "Guidance scale w in eps_u + w (eps_c - eps_u): 0 unconditional, 1 plain "
             "conditional, above 1 stronger class features."},
    {"sample.eta", CONF_DOUBLE, F(sample.eta), .def = "0", .min = "0", .max = "1",
     .help = "DDIM stochasticity: 0 deterministic, 1 like DDPM."},
    {"sample.batch", CONF_UINT, F(sample.batch), .def = "64", .min = "1", .max = "4096",
     .unit = "windows", .help = "Windows sampled per network pass."},
    {"sample.seed", CONF_UINT, F(sample.seed), .def = "1", .help = "Random seed of the noise: same seed and model, same samples."},
    {"sample.calibrate", CONF_UINT, F(sample.calibrate), .def = "64", .max = "100000",
     .unit = "windows",
     .help = "Decode calibration: this many windows per class, sampled once per model "
             "step and sampler setting, fit per class and channel an activity threshold "
             "per bin position that gives the training data's share of idle bins at that "
             "position, and monotone maps of busy values and of window volumes onto the "
             "training quantiles (docs/MODEL.md, Decoder). 0: off."},

    /* replay: synthetic packets on a sink; addresses from documentation ranges */
    {"replay.speed", CONF_DOUBLE, F(replay.speed), .def = "1", .min = "0.001", .max = "1000",
     .unit = "x real time", .help = "Time scale: 2 sends twice as fast."},
    {"replay.duration", CONF_DURATION, F(replay.duration_ns), .def = "0s", .min = "0s",
     .max = "8760h", .help = "Stop after this long; 0s: when the flows are done."},
    {"replay.flows", CONF_UINT, F(replay.flows), .def = "100", .min = "1", .max = "10000000",
     .unit = "flows", .help = "Flows generated per pass."},
    {"replay.loop", CONF_UINT, F(replay.loop), .def = "1", .max = "1000000", .unit = "passes",
     .help = "Passes over the generated flows; 0: until stopped or replay.duration."},
    /* max: ND_MAX_LINE_BPS, the rate a series CSV's values are bounded by */
    {"replay.line_rate", CONF_DOUBLE, F(replay.line_rate), .def = "0", .min = "0",
     .max = "1000", .unit = "Gbit/s",
     .help = "The bytes of a bin (per flow and direction) are cut to what the bin carries at "
             "this rate, and counted; 0: the interface's speed for iface: sinks that report "
             "one, else 100 Gbit/s."},
    {"replay.max_bytes", CONF_SIZE, F(replay.max_bytes), .def = "0",
     .help = "End the replay (normally: a pcap stays whole) before the frame that would pass "
             "this many frame bytes; 0: no limit."},
    {"replay.max_packets", CONF_UINT, F(replay.max_packets), .def = "0", .unit = "packets",
     .help = "End the replay (normally) after this many packets; 0: no limit."},
    {"replay.client_pool", CONF_STRING, F(replay.client_pool), .def = "198.18.0.0/16",
     .min = "1", .check = check_cidr,
     .help = "Client addresses (default: RFC 2544 benchmarking range, never routed)."},
    {"replay.clients", CONF_UINT, F(replay.clients), .def = "256", .min = "1",
     .max = "16777216", .unit = "addresses",
     .help = "Distinct client addresses drawn from replay.client_pool."},
    {"replay.server_pool", CONF_STRING, F(replay.server_pool), .def = "198.19.0.0/16",
     .min = "1", .check = check_cidr, .help = "Server addresses (RFC 2544 range)."},
    {"replay.servers", CONF_UINT, F(replay.servers), .def = "16", .min = "1",
     .max = "16777216", .unit = "addresses",
     .help = "Distinct server addresses drawn from replay.server_pool."},
    {"replay.client_pool6", CONF_STRING, F(replay.client_pool6), .def = "2001:db8:0:1::/64",
     .min = "1", .check = check_cidr,
     .help = "Client addresses of IPv6 flows (RFC 3849 documentation range)."},
    {"replay.server_pool6", CONF_STRING, F(replay.server_pool6), .def = "2001:db8:0:2::/64",
     .min = "1", .check = check_cidr, .help = "Server addresses of IPv6 flows (RFC 3849 range)."},
    {"replay.mac_src", CONF_STRING, F(replay.mac_src), .def = "02:00:00:00:00:01",
     .check = check_mac, .help = "Source MAC of client packets (locally administered)."},
    {"replay.mac_dst", CONF_STRING, F(replay.mac_dst), .def = "02:00:00:00:00:02",
     .check = check_mac, .help = "Destination MAC of client packets (locally administered)."},
    /* two-sided replay: the link layer of each side (docs/REPLAY.md, "Two sides") */
    {"replay.client_macs", CONF_UINT, F(replay.client_macs), .def = "1", .min = "1",
     .max = "16777216", .unit = "MACs",
     .help = "Client MACs counted up from replay.mac_src: client address i sends from the "
             "(i mod N)-th."},
    {"replay.server_macs", CONF_UINT, F(replay.server_macs), .def = "1", .min = "1",
     .max = "16777216", .unit = "MACs",
     .help = "Server MACs counted up from replay.mac_dst, one per server address likewise."},
    {"replay.vlan_client", CONF_UINT, F(replay.vlan_client), .def = "0", .max = "4094",
     .help = "802.1Q VLAN id of the frames from the client side (client to server); 0: "
             "untagged."},
    {"replay.vlan_server", CONF_UINT, F(replay.vlan_server), .def = "0", .max = "4094",
     .help = "802.1Q VLAN id of the frames from the server side (server to client); 0: "
             "untagged."},
    {"replay.gateway_client", CONF_STRING, F(replay.gateway_client), .def = "",
     .check = check_mac,
     .help = "Destination MAC of the frames that leave the client side (client to server): "
             "a routing DUT's client-side port. Empty: the server's MAC (a bridging DUT)."},
    {"replay.gateway_server", CONF_STRING, F(replay.gateway_server), .def = "",
     .check = check_mac,
     .help = "Destination MAC of the frames that leave the server side (server to client): "
             "a routing DUT's server-side port. Empty: the client's MAC."},
    /* flows longer than a window (docs/REPLAY.md); the command line's --max-flow-windows
     * and --context; 4096: REPLAY_MAX_FLOW_WINDOWS of app/cmd_replay.c */
    {"replay.max_flow_windows", CONF_UINT, F(replay.max_flow_windows), .def = "64", .min = "1",
     .max = "4096", .unit = "windows",
     .help = "A flow sampled from a model lasts at most this many windows; longer durations "
             "are cut there and counted (1: one window per flow)."},
    {"replay.context", CONF_RES, F(replay.context), .def = "L/2",
     .aux_off = offsetof(nd_config, replay.context_div), .unit = "bins or L/N",
     .help = "Bins of the window before that each continuing window of a long flow is "
             "inpainted from: bins (16), or \"L/N\" of the model's window. 0: none (each "
             "window drawn on its own); below the model's window."},
    {"replay.resample", CONF_UINT, F(replay.resample), .def = "1", .min = "1", .max = "100",
     .unit = "takes",
     .help = "Each denoising step of a continuing window is taken this many times, noised "
             "back in between, so that its new bins agree with the context (RePaint's "
             "resampling; this many times the network passes of those windows)."},
    {"replay.seed", CONF_UINT, F(replay.seed), .def = "1",
     .help = "Random seed of sizes, timing, addresses and ports."},
    {"replay.mix", CONF_LIST, F(replay.n_mix), .def = "[]", .list = &mix_list,
     .help = "Classes to generate: a list of {class, weight}. Empty: every class, in "
             "proportion to its flows in the training data."},

    /* live: capture + online training (+ replay) in one process */
    {"live.ring_size", CONF_UINT, F(live.ring_size), .def = "4096", .min = "16",
     .max = "1048576", .unit = "windows",
     .help = "Ring between capture and trainer, a power of two; full: windows are "
             "dropped and counted, capture never waits."},
    {"live.reservoir", CONF_UINT, F(live.reservoir), .def = "8192", .min = "1",
     .max = "16777216", .unit = "windows per class",
     .help = "Reservoir sample kept per class for training."},
    {"live.recent_share", CONF_DOUBLE, F(live.recent_share), .def = "0.25", .min = "0",
     .max = "1", .help = "Share of each batch drawn from the most recent windows."},
    {"live.checkpoint_every", CONF_UINT, F(live.checkpoint_every), .def = "1000",
     .max = "1000000000000", .unit = "steps",
     .help = "Checkpoint every this many steps; 0: off (see live.checkpoint_interval)."},
    {"live.checkpoint_interval", CONF_DURATION, F(live.checkpoint_interval_ns), .def = "5m",
     .min = "0s", .max = "24h", .help = "Checkpoint at least this often; 0s: off."},
    {"live.checkpoint", CONF_STRING, F(live.checkpoint), .def = "live.ndm",
     .help = "Model file kept up to date (written atomically), also on SIGINT/SIGTERM."},
    {"live.capture_core", CONF_INT, F(live.capture_core), .def = "-1", .min = "-1",
     .max = "1023", .unit = "CPU", .help = "CPU the capture thread is pinned to; -1: none."},
    {"live.trainer_threads", CONF_UINT, F(live.trainer_threads), .def = "0", .max = "1024",
     .unit = "threads", .help = "Trainer threads; 0: the cores capture does not use."},
    {"live.metrics_port", CONF_UINT, F(live.metrics_port), .def = "0", .max = "65535",
     .unit = "TCP port", .help = "Prometheus text metrics on 127.0.0.1:PORT; 0: off."},
    {"live.status_interval", CONF_DURATION, F(live.status_interval_ns), .def = "1s",
     .min = "0s", .max = "1h", .help = "Status line / log period; 0s: off."},
    {"live.replay", CONF_BOOL, F(live.replay), .def = "false",
     .help = "Also replay samples of the latest model (replay section) while learning."},
    {"live.recent", CONF_UINT, F(live.recent), .def = "1024", .min = "1", .max = "16777216",
     .unit = "windows",
     .help = "Most recent windows kept (all classes) for the live.recent_share of batches."},
    {"live.warmup", CONF_UINT, F(live.warmup), .def = "32", .min = "1", .max = "16777216",
     .unit = "windows",
     .help = "Windows a class needs before it joins the model; its scale is fitted on them."},
    {"live.scale_refit", CONF_DOUBLE, F(live.scale_refit), .def = "0.05", .min = "0",
     .max = "1",
     .help = "Refit a class's scale from its reservoir when more than this share of its "
             "windows since the last fit fell outside it; 0: scales fixed after warm-up."},
    {"live.metrics_addr", CONF_STRING, F(live.metrics_addr), .def = "127.0.0.1", .min = "1",
     .check = check_addr,
     .help = "Numeric IPv4 or IPv6 address of the metrics endpoint, which also serves the "
             "checkpoint (GET /model.ndm); 0.0.0.0 or :: for replay hosts elsewhere."},
    {"live.listen", CONF_STRING, F(live.listen), .def = "", .check = check_listen,
     .help = "[ADDR:]PORT on which live takes window streams from `capture -o "
             "tcp:HOST:PORT` on other hosts (ADDR: 127.0.0.1 when not given); \"\": off."},
    {"live.sender_name", CONF_STRING, F(live.sender_name), .def = "", .check = check_sender,
     .help = "Name of this host's stream in the trainer's figures (`capture -o tcp:`); "
             "\"\": HOSTNAME:PID."},
    {"live.send_buffer", CONF_UINT, F(live.send_buffer), .def = "4096", .min = "1",
     .max = "1048576", .unit = "windows",
     .help = "Windows `capture -o tcp:` queues while the trainer is slow or away; full: "
             "the oldest is dropped and counted."},
    /* a student distilled from live's checkpoints (docs/LIVE.md, "Distilling a student
     * while learning") */
    {"live.distill", CONF_UINT, F(live.distill), .def = "0", .max = "2048", .unit = "steps",
     .help = "Also distil a student that samples in this many steps from a checkpoint every "
             "live.distill_every steps, between the trainer's own steps; live's replay "
             "samples from the newest student. 0: off. Needs model.prediction: v."},
    {"live.distill_from", CONF_UINT, F(live.distill_from), .def = "64", .min = "2",
     .max = "4096", .unit = "steps",
     .help = "DDIM steps of the checkpoint that the student's first round learns, two in "
             "one; live.distill times a power of two."},
    {"live.distill_round_steps", CONF_UINT, F(live.distill_round_steps), .def = "1000",
     .min = "1", .max = "100000000", .unit = "steps",
     .help = "Optimiser steps of the student per halving of its steps."},
    {"live.distill_every", CONF_UINT, F(live.distill_every), .def = "20000", .min = "1",
     .max = "1000000000000", .unit = "steps",
     .help = "Model steps from the start of one student to the checkpoint the next one is "
             "distilled from (the first: from the first checkpoint at or past this step)."},
    {"live.student", CONF_STRING, F(live.student), .def = "",
     .help = "The student's model file, written atomically when its distillation ends. "
             "\"\": live.checkpoint's name with -student before .ndm."},
};
// clang-format on

size_t conf_keys_count(void) { return sizeof conf_keys / sizeof conf_keys[0]; }
