/*
 * test_opts_stage.c — opts_capture and opts_replay (app/opts.h): every field of the
 * options struct is set, whatever the struct held before (it starts as a garbage byte
 * pattern here, as a stack variable would), the config's values land in the right
 * fields, and what the config has no key for keeps the library's default. Also: the
 * config's capture defaults equal capture_opts_defaults, so that the benchmarks and tests
 * that use the latter run what the program runs. And the config a model embeds is parsed
 * with the parser's bound on nesting.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "opts.h"

#define GARBAGE 0xA5

static void load(nd_config *cfg, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/conf/examples/%s", ND_SOURCE_DIR, name);
    nd_error e = {0};
    if (nd_config_load(cfg, path, &e)) CHECK_FAIL_("%s", e.msg);
}

/* Fills *o twice, from two garbage patterns: any byte the filling leaves alone differs. */
#define CHECK_SETS_EVERY_BYTE(T, fill, cfg, what)                                              \
    do {                                                                                       \
        static T a_, b_;                                                                       \
        memset(&a_, 0xA5, sizeof a_);                                                          \
        memset(&b_, 0x5A, sizeof b_);                                                          \
        fill(&a_, cfg);                                                                        \
        fill(&b_, cfg);                                                                        \
        if (memcmp(&a_, &b_, sizeof a_))                                                       \
            CHECK_FAIL_("%s: %s leaves bytes of %s as they were", what, #fill, #T);            \
    } while (0)

static void check_replay(const nd_config *cfg, const char *what)
{
    const __typeof__(cfg->replay) *r = &cfg->replay;
    replay_opts o, d;
    memset(&o, GARBAGE, sizeof o);
    opts_replay(&o, cfg);
    replay_opts_defaults(&d);
    /* No config key: the defaults, never what the memory held (live's replay thread
     * passed garbage only_class, spin_ns and status to replay_run). */
    if (o.only_class)
        CHECK_FAIL_("%s: only_class %p, expected NULL", what, (void *)o.only_class);
    if (o.stop) CHECK_FAIL_("%s: stop %p, expected NULL", what, (void *)o.stop);
    CHECK_U64_EQ(o.spin_ns, d.spin_ns);
    CHECK_EQ(o.status, d.status);
    for (uint32_t i = o.n_mix; i < ND_MAX_CLASSES; i++)
        if (o.mix[i].name || o.mix[i].weight != 0)
            CHECK_FAIL_("%s: mix[%u] beyond n_mix %u is not empty", what, i, o.n_mix);
    CHECK_SETS_EVERY_BYTE(replay_opts, opts_replay, cfg, what);
    /* The config's keys; empty pools and MACs keep the defaults. */
    CHECK_NEAR(o.speed, r->speed, 0, 0);
    CHECK_U64_EQ(o.duration_ns, r->duration_ns);
    CHECK_EQ(o.flows, r->flows);
    CHECK_EQ(o.loop, r->loop);
    CHECK_U64_EQ(o.seed, r->seed);
    CHECK_STR_EQ(o.client_pool, r->client_pool[0] ? r->client_pool : d.client_pool);
    CHECK_STR_EQ(o.server_pool, r->server_pool[0] ? r->server_pool : d.server_pool);
    CHECK(o.client_pool6 == r->client_pool6);
    CHECK(o.server_pool6 == r->server_pool6);
    CHECK_EQ(o.clients, r->clients);
    CHECK_EQ(o.servers, r->servers);
    CHECK_STR_EQ(o.mac_src, r->mac_src[0] ? r->mac_src : d.mac_src);
    CHECK_STR_EQ(o.mac_dst, r->mac_dst[0] ? r->mac_dst : d.mac_dst);
    CHECK_NEAR(o.line_bps, r->line_rate * 1e9, 0, 0);
    CHECK_U64_EQ(o.max_bytes, r->max_bytes);
    CHECK_U64_EQ(o.max_packets, r->max_packets);
    CHECK_EQ(o.n_mix, r->n_mix);
    for (uint32_t i = 0; i < r->n_mix; i++) {
        CHECK(o.mix[i].name == r->mix[i].name);
        CHECK_NEAR(o.mix[i].weight, r->mix[i].weight, 0, 0);
    }
}

static void check_capture(const nd_config *cfg, const char *what)
{
    capture_opts o;
    memset(&o, GARBAGE, sizeof o);
    opts_capture(&o, cfg);
    const __typeof__(cfg->capture) *c = &cfg->capture;
    CHECK_U64_EQ(o.bin_ns, c->bin_ns);
    CHECK_EQ(o.window, c->window);
    CHECK_EQ(o.min_active_bins, c->min_active_bins);
    CHECK_EQ(o.channels, c->channels);
    CHECK_EQ(o.flow_capacity, c->flow_capacity);
    CHECK_U64_EQ(o.idle_timeout_ns, c->idle_timeout_ns);
    CHECK_U64_EQ(o.active_timeout_ns, c->active_timeout_ns);
    CHECK_EQ(o.n_classes, cfg->n_classes);
    for (uint32_t i = 0; i < cfg->n_classes; i++) {
        CHECK(o.classes[i].name == cfg->classes[i].name);
        CHECK(o.classes[i].filter == cfg->classes[i].filter);
    }
    for (uint32_t i = o.n_classes; i < ND_MAX_CLASSES; i++)
        if (o.classes[i].name || o.classes[i].filter)
            CHECK_FAIL_("%s: classes[%u] beyond n_classes %u is not empty", what, i,
                        o.n_classes);
    CHECK(o.default_class == c->default_class);
    CHECK_EQ(o.snaplen, c->snaplen);
    CHECK_EQ(o.promisc, c->promisc);
    CHECK_U64_EQ(o.buffer_size, c->buffer_size);
    CHECK(o.dpdk_eal == c->dpdk_eal);
    CHECK_EQ(o.rx_queues, c->rx_queues);
    CHECK_EQ(o.mbufs, c->mbufs);
    CHECK_SETS_EVERY_BYTE(capture_opts, opts_capture, cfg, what);
}

/* The program's capture defaults (conf_keys.c) are capture_opts_defaults' values. */
static void check_capture_defaults(void)
{
    nd_config cfg;
    nd_config_defaults(&cfg);
    capture_opts o, d;
    opts_capture(&o, &cfg);
    capture_opts_defaults(&d);
    CHECK_U64_EQ(o.bin_ns, d.bin_ns);
    CHECK_EQ(o.window, d.window);
    CHECK_EQ(o.min_active_bins, d.min_active_bins);
    CHECK_EQ(o.channels, d.channels);
    CHECK_EQ(o.flow_capacity, d.flow_capacity);
    CHECK_U64_EQ(o.idle_timeout_ns, d.idle_timeout_ns);
    CHECK_U64_EQ(o.active_timeout_ns, d.active_timeout_ns);
    CHECK_EQ(o.n_classes, d.n_classes);
    CHECK_STR_EQ(o.default_class, d.default_class);
    CHECK_EQ(o.snaplen, d.snaplen);
    CHECK_EQ(o.promisc, d.promisc);
    CHECK_U64_EQ(o.buffer_size, d.buffer_size);
    CHECK_STR_EQ(o.dpdk_eal, d.dpdk_eal);
    CHECK_EQ(o.rx_queues, d.rx_queues);
    CHECK_EQ(o.mbufs, d.mbufs);
    nd_config_free(&cfg);
}

/* The config a model file embeds goes through the config parser, with its bound on
 * nesting: a crafted one a million levels deep is refused at once, naming the file. */
static void check_embedded_deep(void)
{
    const size_t deep = 1000000;
    char *y = malloc(2 * deep + 1);
    CHECK(y);
    memset(y, '[', deep);
    memset(y + deep, ']', deep);
    y[2 * deep] = 0;
    nd_dm_settings st;
    nd_error e = {0};
    CHECK_EQ(opts_dm_legacy(&st, y, "deep.ndm", &e), ND_EFORMAT);
    CHECK_STR_EQ(e.msg, "deep.ndm: the embedded config does not load: deep.ndm:1:33: lists "
                        "and mappings nested deeper than 32 levels");
    free(y);
}

int main(void)
{
    check_embedded_deep();
    nd_config cfg;
    load(&cfg, "live.yaml");
    check_capture(&cfg, "live.yaml");
    check_replay(&cfg, "live.yaml");

    /* A mix, and empty pools and MACs (no key can empty them; by hand): the defaults. */
    nd_error e = {0};
    if (nd_config_set(&cfg, "replay.mix=[{class: web-tls, weight: 2}, {class: dns}]", &e))
        CHECK_FAIL_("%s", e.msg);
    cfg.replay.client_pool[0] = cfg.replay.server_pool[0] = 0;
    cfg.replay.mac_src[0] = cfg.replay.mac_dst[0] = 0;
    CHECK_EQ(cfg.replay.n_mix, 2);
    check_replay(&cfg, "live.yaml with a mix and no pools");
    nd_config_free(&cfg);

    nd_config_defaults(&cfg);
    check_capture(&cfg, "defaults");
    check_replay(&cfg, "defaults");
    nd_config_free(&cfg);
    check_capture_defaults();
    printf("opts_capture, opts_replay: ok\n");
    return 0;
}
