/*
 * test_conf_roundtrip.c — nd_config_to_yaml reads back to the same config (defaults, and
 * a config with every section changed and awkward strings), nd_config_set overrides
 * (scalars, lists, failures that leave the config unchanged), copy and check.
 */
#include "conf_test.h"

/* Field by field where it matters: the YAML text covers every key, the lists by bytes. */
static void check_same(const nd_config *a, const nd_config *b)
{
    char *ya = nd_config_to_yaml(a), *yb = nd_config_to_yaml(b);
    CHECK(ya && yb);
    CHECK_STR_EQ(ya, yb);
    free(ya);
    free(yb);
    CHECK_EQ(a->n_classes, b->n_classes);
    for (uint32_t i = 0; i < a->n_classes; i++) {
        CHECK_STR_EQ(a->classes[i].name, b->classes[i].name);
        CHECK_STR_EQ(a->classes[i].filter, b->classes[i].filter);
    }
    CHECK_EQ(a->replay.n_mix, b->replay.n_mix);
    for (uint32_t i = 0; i < a->replay.n_mix; i++) {
        CHECK_STR_EQ(a->replay.mix[i].name, b->replay.mix[i].name);
        CHECK(a->replay.mix[i].weight == b->replay.mix[i].weight); /* bit-exact */
    }
    /* the plain sections compare as bytes (both come from zeroed structs) */
    CHECK(!memcmp(&a->capture, &b->capture, sizeof a->capture));
    CHECK(!memcmp(&a->model, &b->model, sizeof a->model));
    CHECK(!memcmp(&a->train, &b->train, sizeof a->train));
    CHECK(!memcmp(&a->sample, &b->sample, sizeof a->sample));
    CHECK(!memcmp(&a->live, &b->live, sizeof a->live));
}

/* cfg → YAML → config: the same; and the YAML is stable. */
static void roundtrip(const nd_config *cfg)
{
    char *y = nd_config_to_yaml(cfg);
    CHECK(y != NULL);
    nd_config back;
    nd_error e = {0};
    if (nd_config_parse(&back, y, strlen(y), "roundtrip.yaml", &e))
        CHECK_FAIL_("to_yaml output does not parse: %s\n%s", e.msg, y);
    check_same(cfg, &back);
    nd_config_free(&back);
    free(y);
}

static const char everything[] =
    "capture:\n"
    "  sources: [\"pcap:/data/a trace.pcapng\", 'iface:eth0', dpdk:--vdev=net_null0]\n"
    "  snaplen: 1514\n  promisc: no\n  buffer_size: 1.5MiB\n  bin: 1500ms\n  window: 128\n"
    "  min_active_bins: 3\n  channels: 4\n  flow_capacity: 4096\n  idle_timeout: 2m\n"
    "  active_timeout: 1h\n  default_class: \"\"\n  dpdk_eal: \"-l 0-1 --no-huge\"\n"
    "  rx_queues: 4\n  mbufs: 65535\n"
    "classes:\n"
    "  - name: web\n    filter: \"tcp port 443 or (tcp port 80 and host \\\"x\\\")\"\n"
    "  - name: dns.v2\n    filter: 'udp port 53 # not a comment'\n"
    "  - name: back_slash\n    filter: \"ether[0] & 1 != 0 \\\\ tab\\there\\nnewline\"\n"
    "  - {name: label-only}\n"
    "  - name: utf8\n    filter: \"host caf\xc3\xa9\"\n"
    "model:\n  base_channels: 64\n  channel_mult: [1, 2, 4, 4]\n  res_blocks: 3\n"
    "  attn_min_res: 32\n  groups: 16\n  emb_dim: 256\n  max_classes: 8\n  timesteps: 2000\n"
    "  schedule: linear\n  prediction: v\n  threads: 3\n"
    "train:\n  steps: 123456789012\n  batch: 7\n  lr: 0.1\n  weight_decay: 0.3\n"
    "  warmup_steps: 11\n  ema_decay: 0.9999\n  grad_clip: 0\n  class_dropout: 0.15\n"
    "  val_fraction: 0.2\n  checkpoint_every: 17\n  seed: 18446744073709551615\n"
    "sample:\n  sampler: ddpm\n  steps: 2000\n  guidance: 7.5\n  eta: 0.3333333333333333\n"
    "  batch: 5\n  seed: 42\n"
    "replay:\n  speed: 0.001\n  duration: 90s\n  flows: 3\n  loop: 0\n"
    "  client_pool: \"2001:db8::/64\"\n  clients: 1000\n  server_pool: 203.0.113.0/24\n"
    "  servers: 200\n  mac_src: \"02:aa:bb:cc:dd:ee\"\n  mac_dst: \"02:00:00:00:00:0A\"\n"
    "  seed: 0\n  mix:\n    - {class: web, weight: 3}\n    - {class: dns.v2, weight: 0.1}\n"
    "live:\n  ring_size: 65536\n  reservoir: 100\n  recent_share: 1\n  checkpoint_every: 0\n"
    "  checkpoint_interval: 0s\n  checkpoint: \"/var/lib/nd/my model.ndm\"\n  capture_core: 3\n"
    "  trainer_threads: 2\n  metrics_port: 9100\n  status_interval: 250ms\n  replay: on\n";

static void test_roundtrip(void)
{
    nd_config d;
    nd_config_defaults(&d);
    roundtrip(&d);

    nd_config cfg;
    PARSE_OK(&cfg, everything);
    /* spot checks that the awkward values arrived as written */
    CHECK_EQ(cfg.capture.n_sources, 3);
    CHECK_STR_EQ(cfg.capture.sources[0], "pcap:/data/a trace.pcapng");
    CHECK_STR_EQ(cfg.capture.sources[2], "dpdk:--vdev=net_null0");
    CHECK_EQ(cfg.capture.promisc, 0);
    CHECK_STR_EQ(cfg.capture.default_class, "");
    CHECK_EQ(cfg.n_classes, 5);
    CHECK_STR_EQ(cfg.classes[0].filter, "tcp port 443 or (tcp port 80 and host \"x\")");
    CHECK_STR_EQ(cfg.classes[1].filter, "udp port 53 # not a comment");
    CHECK_STR_EQ(cfg.classes[2].filter, "ether[0] & 1 != 0 \\ tab\there\nnewline");
    CHECK_STR_EQ(cfg.classes[3].filter, "");
    CHECK_EQ(cfg.model.attn_div, 0);
    CHECK_EQ(cfg.model.attn_min_res, 32);
    CHECK_U64_EQ(cfg.train.seed, UINT64_MAX);
    CHECK_NEAR(cfg.sample.eta, 1.0 / 3, 1e-16, 0);
    CHECK_EQ(cfg.live.capture_core, 3);
    CHECK_EQ(cfg.live.replay, 1);
    CHECK_U64_EQ(cfg.capture.bin_ns, 1500000000);
    roundtrip(&cfg);

    /* what to_yaml writes, for a person: units and flow lists */
    char *y = nd_config_to_yaml(&cfg);
    CHECK_CONTAINS(y, "\ncapture:\n  sources: [\"pcap:/data/a trace.pcapng\", ");
    CHECK_CONTAINS(y, "  bin: 1500ms\n");
    CHECK_CONTAINS(y, "  buffer_size: 1536KiB\n");
    CHECK_CONTAINS(y, "  idle_timeout: 2m\n");
    CHECK_CONTAINS(y, "  channel_mult: [1, 2, 4, 4]\n");
    CHECK_CONTAINS(y, "  eta: 0.3333333333333333\n");
    CHECK_CONTAINS(y, "\nclasses:\n  - {name: \"web\", filter: ");
    CHECK_CONTAINS(y, "\n  mix:\n    - {class: \"web\", weight: 3}\n    - {class: ");
    CHECK_CONTAINS(y, "\\\\ tab\\there\\nnewline\"}");
    free(y);

    /* copy is deep: changing the copy leaves the original alone */
    nd_config copy;
    CHECK_EQ(nd_config_copy(&copy, &cfg), 0);
    check_same(&copy, &cfg);
    CHECK(copy.classes != cfg.classes && copy.replay.mix != cfg.replay.mix);
    strcpy(copy.classes[0].name, "changed");
    CHECK_STR_EQ(cfg.classes[0].name, "web");
    nd_config_free(&copy);
    nd_config_free(&cfg);
    nd_config_free(&cfg); /* twice is harmless */
    nd_config_free(NULL);
    nd_config_free(&d);
}

#define SET_OK(cfg, text)                                                                      \
    do {                                                                                       \
        nd_error e_ = {0};                                                                     \
        if (nd_config_set((cfg), (text), &e_)) CHECK_FAIL_("set '%s': %s", (text), e_.msg);    \
    } while (0)

/* text must fail with a message equal to want, and leave cfg as it was */
static void set_err(nd_config *cfg, const char *text, const char *want)
{
    char *before = nd_config_to_yaml(cfg);
    nd_error e = {0};
    CHECK_EQ(nd_config_set(cfg, text, &e), ND_ECONFIG);
    CHECK_STR_EQ(e.msg, want);
    char *after = nd_config_to_yaml(cfg);
    CHECK_STR_EQ(after, before);
    free(before);
    free(after);
}

static void test_set(void)
{
    nd_config cfg;
    nd_config_defaults(&cfg);
    SET_OK(&cfg, "capture.bin=250ms");
    CHECK_U64_EQ(cfg.capture.bin_ns, 250000000);
    SET_OK(&cfg, "capture.idle_timeout=10s");
    SET_OK(&cfg, "capture.dpdk_eal=--vdev=net_pcap0,rx_pcap=a.pcap"); /* '=' in the value */
    CHECK_STR_EQ(cfg.capture.dpdk_eal, "--vdev=net_pcap0,rx_pcap=a.pcap");
    SET_OK(&cfg, "capture.default_class=");
    CHECK_STR_EQ(cfg.capture.default_class, "");
    SET_OK(&cfg, "capture.sources=[pcap:a.pcap, 'pcap:b c.pcap']");
    CHECK_EQ(cfg.capture.n_sources, 2);
    CHECK_STR_EQ(cfg.capture.sources[1], "pcap:b c.pcap");
    SET_OK(&cfg, "model.channel_mult=[1,2,2,2]");
    CHECK_EQ(cfg.model.n_mult, 4);
    /* L/4 = 16 sits above the lowest level (8) of four levels: fine */
    CHECK_EQ(cfg.model.attn_min_res, 16);
    /* L/N follows the window */
    SET_OK(&cfg, "capture.window=128");
    CHECK_EQ(cfg.model.attn_min_res, 32);
    SET_OK(&cfg, "classes=[{name: a, filter: tcp port 80}, {name: b}]");
    CHECK_EQ(cfg.n_classes, 2);
    CHECK_STR_EQ(cfg.classes[0].filter, "tcp port 80");
    SET_OK(&cfg, "replay.mix=[{class: b, weight: 2}]");
    SET_OK(&cfg, "live.replay=yes");
    CHECK_EQ(cfg.live.replay, 1);
    roundtrip(&cfg);

    set_err(&cfg, "capture.bin", "override 'capture.bin': expected section.key=value");
    set_err(&cfg, "=1s", "override '=1s': expected section.key=value");
    set_err(&cfg, "capture.bn=1s",
            "override 'capture.bn=1s': capture.bn: unknown key, did you mean 'capture.bin'?");
    set_err(&cfg, "windw=32",
            "override 'windw=32': windw: unknown key, did you mean 'capture.window'?");
    set_err(
        &cfg, "capture.bin=5",
        "override 'capture.bin=5': capture.bin: expected a duration with a unit (ns, us, ms, "
        "s, m, h): a bare number is ambiguous, got '5'");
    set_err(
        &cfg, "capture.window=30",
        "override 'capture.window=30': capture.window: must be divisible by 8 for 4 levels of "
        "model.channel_mult, got 30");
    set_err(&cfg, "classes=[{name: a}]",
            "override 'classes=[{name: a}]': replay.mix: class 'b' is not among classes");
    set_err(
        &cfg, "classes=[{name: a}, {name: a}]",
        "override 'classes=[{name: a}, {name: a}]':1:21: classes[1]: name 'a' is already used "
        "by classes[0]");
    set_err(
        &cfg, "capture.sources=[pcap:a",
        "override 'capture.sources=[pcap:a':2:1: YAML syntax error: did not find expected ',' or "
        "']' (while parsing a flow sequence at 1:17)");
    set_err(&cfg, "capture.sources=",
            "override 'capture.sources=': capture.sources: expected a list like [a, b], got "
            "nothing");
    /* an empty list is written [] */
    SET_OK(&cfg, "capture.sources=[]");
    CHECK_EQ(cfg.capture.n_sources, 0);
    nd_config_free(&cfg);
}

static void test_check(void)
{
    nd_config cfg;
    nd_error e = {0};
    nd_config_defaults(&cfg);
    CHECK_EQ(nd_config_check(&cfg, &e), 0);
    cfg.capture.window = 30; /* changed by hand, past the parser */
    CHECK_EQ(nd_config_check(&cfg, &e), ND_ECONFIG);
    CHECK_STR_EQ(e.msg, "config: capture.window: must be divisible by 4 for 3 levels of "
                        "model.channel_mult, got 30");
    strcpy(cfg.path, "my.yaml");
    CHECK_EQ(nd_config_check(&cfg, &e), ND_ECONFIG);
    CHECK_CONTAINS(e.msg, "my.yaml: capture.window:");
    nd_config_free(&cfg);
}

int main(void)
{
    test_roundtrip();
    test_set();
    test_check();
    printf("ok\n");
    return 0;
}
