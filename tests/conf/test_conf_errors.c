/*
 * test_conf_errors.c — what a person sees when a config is wrong: exact FILE:LINE:COL
 * positions, unknown keys with the nearest valid name, duplicates, YAML syntax errors
 * with libyaml's position, documents of the wrong shape, the cross-key rules, missing
 * files; and what must not be an error (empty files, flow style, null sections).
 */
#include <errno.h>
#include <unistd.h>

#include "conf_test.h"

/* Exact messages: the whole text is part of the interface a user reads. */
static const struct {
    const char *yaml, *msg;
} exact[] = {
    /* unknown keys and sections, with the nearest name */
    {"capture:\n  bin: 1s\n  windw: 32\n",
     "t.yaml:3:3: capture.windw: unknown key, did you mean 'capture.window'?"},
    {"capture:\n  bn: 1s\n",
     "t.yaml:2:3: capture.bn: unknown key, did you mean 'capture.bin'?"},
    {"model:\n  chanel_mult: [1, 2]\n",
     "t.yaml:2:3: model.chanel_mult: unknown key, did you mean 'model.channel_mult'?"},
    {"train:\n  lr: 1e-3\n  weight_decy: 0\n",
     "t.yaml:3:3: train.weight_decy: unknown key, did you mean 'train.weight_decay'?"},
    {"sample:\n  guidence: 3\n",
     "t.yaml:2:3: sample.guidence: unknown key, did you mean 'sample.guidance'?"},
    {"captur:\n  bin: 1s\n", "t.yaml:1:1: captur: unknown section, did you mean 'capture'?"},
    {"capture:\n  bin: 1s\nmodle:\n  groups: 8\n",
     "t.yaml:3:1: modle: unknown section, did you mean 'model'?"},
    {"class:\n  - name: a\n", "t.yaml:1:1: class: unknown section, did you mean 'classes'?"},
    {"classes:\n  - name: a\n  - {name: b, filtr: x}\n",
     "t.yaml:3:15: classes[1]: unknown key 'filtr', did you mean 'filter'?"},
    /* wrong values, at the value */
    {"train:\n  lr: fast\n",
     "t.yaml:2:7: train.lr: expected a number from 1e-08 to 1, got 'fast'"},
    {"capture:\n  bin: 5\n",
     "t.yaml:2:8: capture.bin: expected a duration with a unit (ns, us, ms, s, m, h): a bare "
     "number is ambiguous, got '5'"},
    {"capture:\n    window:     2000\n",
     "t.yaml:2:17: capture.window: expected a whole number from 4 to 1024, got '2000'"},
    {"{capture: {bin: 2x}}",
     "t.yaml:1:17: capture.bin: expected a duration: a number and a unit (ns, us, ms, s, m, h), "
     "e.g. 100ms, 1.5s, 2m, got '2x'"},
    {"capture:\n  buffer_size: -1MiB\n",
     "t.yaml:2:16: capture.buffer_size: expected a size that is not negative, got '-1MiB'"},
    {"model:\n  schedule: cosin\n",
     "t.yaml:2:13: model.schedule: expected one of cosine, linear, got 'cosin'"},
    {"capture:\n  channels: 3\n",
     "t.yaml:2:13: capture.channels: expected one of 2, 4, got '3'"},
    {"capture:\n  promisc: maybe\n",
     "t.yaml:2:12: capture.promisc: expected true or false, got 'maybe'"},
    {"capture:\n  sources: pcap:a.pcap\n",
     "t.yaml:2:12: capture.sources: expected a list of 0 to 8 items, each a string of 1 to 255 "
     "bytes, got a scalar"},
    {"capture:\n  sources: [pcap:a.pcap, eth0]\n",
     "t.yaml:2:26: capture.sources[1]: expected a source pcap:FILE, iface:NAME or dpdk:EAL-ARGS, "
     "got 'eth0'"},
    {"replay:\n  client_pool: 10.0.0.0/33\n",
     "t.yaml:2:16: replay.client_pool: expected an address block like 198.18.0.0/16 or "
     "2001:db8::/64, got '10.0.0.0/33'"},
    {"replay:\n  mac_src: 02:00:00:00:00\n",
     "t.yaml:2:12: replay.mac_src: expected a MAC address like 02:00:00:00:00:01, got "
     "'02:00:00:00:00'"},
    {"model:\n  attn_min_res: L/3\n",
     "t.yaml:2:17: model.attn_min_res: expected pixels (0 to 4096, 0 = none) or L/N with N a "
     "power of two up to 1024 (L = the window's bins), got 'L/3'"},
    {"replay:\n  context: half\n",
     "t.yaml:2:12: replay.context: expected bins (0 to 4096, 0 = none) or L/N with N a power "
     "of two up to 1024 (L = the window's bins), got 'half'"},
    {"replay:\n  max_flow_windows: 0\n",
     "t.yaml:2:21: replay.max_flow_windows: expected a whole number from 1 to 4096, got '0'"},
    {"capture:\n  default_class: \"a\\0b\"\n",
     "t.yaml:2:18: capture.default_class: a value cannot hold a NUL byte"},
    {"capture:\n  default_class: has space\n",
     "t.yaml:2:18: capture.default_class: expected a class name of letters, digits and - _ . +, "
     "got 'has space'"},
    /* duplicates */
    {"capture:\n  bin: 1s\n  bin: 2s\n", "t.yaml:3:3: capture.bin: set twice (first at 2:8)"},
    {"model:\n  groups: 8\nmodel:\n  emb_dim: 64\n",
     "t.yaml:3:1: model: section given twice (first at 1:1)"},
    {"classes: []\nclasses: []\n", "t.yaml:2:1: classes: section given twice (first at 1:1)"},
    {"classes:\n  - name: a\n  - name: a\n",
     "t.yaml:3:5: classes[1]: name 'a' is already used by classes[0]"},
    {"classes:\n  - {name: a, name: b}\n",
     "t.yaml:2:15: classes[0].name: set twice (first at 2:12)"},
    /* list items */
    {"classes:\n  - filter: tcp\n",
     "t.yaml:2:5: classes[0]: missing 'name' (Class label, unique; models and datasets name "
     "classes by it.)"},
    {"classes:\n  - name: \"\"\n",
     "t.yaml:2:11: classes[0].name: expected a string of 1 to 63 bytes, got ''"},
    {"classes:\n  - name: a234567890123456789012345678901234567890123456789012345678901234\n",
     "t.yaml:2:11: classes[0].name: expected a string of 1 to 63 bytes, got "
     "'a234567890123456789012345678901234567890123456789012345678901234'"},
    {"classes:\n  - tcp port 443\n",
     "t.yaml:2:5: classes[0]: expected a list of 0 to 1024 items, each {name, filter}, got a "
     "scalar"},
    {"model:\n  channel_mult: []\n",
     "t.yaml:2:17: model.channel_mult: expected a list of 1 to 6 items, each a whole number from "
     "1 to 16, got 0 items"},
    /* shape of the document */
    {"- a\n- b\n",
     "t.yaml:1:1: expected a mapping of sections (capture:, classes:, model:, train:, sample:, "
     "replay:, live:), got a list"},
    {"hello\n",
     "t.yaml:1:1: expected a mapping of sections (capture:, classes:, model:, train:, sample:, "
     "replay:, live:), got a scalar"},
    {"capture: [1]\n",
     "t.yaml:1:10: capture: expected a mapping of keys (like 'capture:' then indented 'key: value' "
     "lines), got a list"},
    {"capture:\n  {a: 1}: 2\n", "t.yaml:2:3: capture: expected a key name, got a mapping"},
    {"a: b\n---\nc: d\n", "t.yaml:3:1: a config is one YAML document; found a second one"},
    /* YAML syntax, with libyaml's position and context */
    {"capture:\n  bin: 1s\n window: 3\n",
     "t.yaml:3:2: YAML syntax error: did not find expected key (while parsing a block mapping at "
     "1:1)"},
    {"capture:\n\tbin: 1s\n",
     "t.yaml:2:1: YAML syntax error: found character that cannot start any token (while scanning "
     "for the next token at 2:1)"},
    {"capture: [1\n",
     "t.yaml:2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
     "sequence at 1:10)"},
    {"capture:\n  bin: \"1s\n",
     "t.yaml:3:1: YAML syntax error: found unexpected end of stream (while scanning a quoted "
     "scalar at 2:8)"},
    /* cross-key rules: at the key the file set */
    {"capture:\n  window: 32\n  min_active_bins: 40\n",
     "t.yaml:3:20: capture.min_active_bins: must be at most capture.window (32), got 40"},
    {"capture:\n  min_active_bins: 40\n  window: 32\n",
     "t.yaml:2:20: capture.min_active_bins: must be at most capture.window (32), got 40"},
    {"capture:\n  window: 30\n",
     "t.yaml:2:11: capture.window: must be divisible by 4 for 3 levels of model.channel_mult, "
     "got 30"},
    {"capture:\n  bin: 1s\n  idle_timeout: 2h\n",
     "t.yaml:3:17: capture.idle_timeout: must be from capture.bin (1s) to capture.active_timeout "
     "(30m), got 2h"},
    {"capture:\n  bin: 1m\n",
     "t.yaml:2:8: capture.idle_timeout: must be from capture.bin (1m) to capture.active_timeout "
     "(30m), got 15s"},
    {"model:\n  groups: 24\n",
     "t.yaml:2:11: model.groups: must divide every level's width (model.base_channels 32 x "
     "model.channel_mult 1 = 32), got 24"},
    {"model:\n  emb_dim: 127\n",
     "t.yaml:2:12: model.emb_dim: must be even (sine and cosine halves), got 127"},
    {"model:\n  attn_min_res: 8\n",
     "t.yaml:2:17: model.attn_min_res: must be 0 (no attention) or from the U-Net's lowest level "
     "(16 px, L/4) to L (64 px), got 8 px"},
    /* the default L/4 is below the lowest level of a two-level U-Net: said where the file
     * changed the levels, with the value that fits */
    {"model:\n  channel_mult: [1, 2]\n",
     "t.yaml:2:17: model.attn_min_res: must be 0 (no attention) or from the U-Net's lowest "
     "level (32 px, L/2) to L (64 px), got 16 px"},
    {"model:\n  attn_min_res: L/128\n",
     "t.yaml:2:17: model.attn_min_res: L/128 does not divide capture.window (64)"},
    {"classes: [{name: a}, {name: b}]\nmodel:\n  max_classes: 2\n",
     "t.yaml:3:16: model.max_classes: must be at least the number of classes (3, with "
     "capture.default_class), got 2"},
    {"sample:\n  steps: 2000\n",
     "t.yaml:2:10: sample.steps: must be at most model.timesteps (1000), got 2000"},
    {"classes: [{name: a}]\nreplay:\n  mix: [{class: a}, {class: b, weight: 2}]\n",
     "t.yaml:3:8: replay.mix: class 'b' is not among classes"},
    {"replay:\n  mix: [{class: a, weight: 0}]\n",
     "t.yaml:2:8: replay.mix: the weights add up to 0: no flow would be made"},
    {"replay:\n  client_pool: 10.0.0.0/30\n",
     "t.yaml:2:16: replay.clients: must be at most the 4 addresses of replay.client_pool "
     "(10.0.0.0/30), got 256"},
    {"live:\n  ring_size: 1000\n",
     "t.yaml:2:14: live.ring_size: must be a power of two, got 1000"},
};

/* Texts that are fine, with something to check in the result. */
static void test_accepted(void)
{
    nd_config cfg, d;
    nd_config_defaults(&d);
    char *want = nd_config_to_yaml(&d);
    /* empty, comments only, "---", null sections: the defaults */
    const char *as_defaults[] = {
        "",         "# nothing\n", "---\n",         "~\n",
        "model:\n", "classes:\n",  "capture: {}\n", "---\ncapture:\n...\n"};
    for (size_t i = 0; i < sizeof as_defaults / sizeof as_defaults[0]; i++) {
        PARSE_OK(&cfg, as_defaults[i]);
        char *got = nd_config_to_yaml(&cfg);
        CHECK_STR_EQ(got, want);
        free(got);
        nd_config_free(&cfg);
    }
    free(want);
    nd_config_free(&d);

    /* the same config in block and flow style */
    PARSE_OK(
        &cfg,
        "{capture: {bin: 100ms, window: 32}, model: {channel_mult: [1, 2], attn_min_res: L/2},\n"
        " classes: [{name: web, filter: tcp port 443}, {name: dns, filter: 'udp port 53'}]}");
    char *flow = nd_config_to_yaml(&cfg);
    CHECK_U64_EQ(cfg.capture.bin_ns, 100000000);
    CHECK_EQ(cfg.capture.window, 32);
    CHECK_EQ(cfg.model.n_mult, 2);
    CHECK_EQ(cfg.model.attn_min_res, 16); /* L/2 follows the window */
    CHECK_EQ(cfg.n_classes, 2);
    CHECK_STR_EQ(cfg.classes[1].filter, "udp port 53");
    nd_config_free(&cfg);
    PARSE_OK(
        &cfg,
        "capture:\n  bin: 100ms\n  window: 32\nmodel:\n  attn_min_res: L/2\n  channel_mult:\n    - 1\n"
        "    - 2\nclasses:\n- name: web\n  filter: tcp port 443\n- name: dns\n"
        "  filter: udp port 53\n");
    char *block = nd_config_to_yaml(&cfg);
    CHECK_STR_EQ(block, flow);
    free(flow);
    free(block);
    nd_config_free(&cfg);

    /* anchors and aliases are plain YAML */
    PARSE_OK(&cfg, "capture:\n  bin: &b 2s\n  idle_timeout: *b\n");
    CHECK_U64_EQ(cfg.capture.idle_timeout_ns, 2000000000);
    nd_config_free(&cfg);
    /* a class may be a label only (imports): no filter */
    PARSE_OK(&cfg, "classes:\n  - name: yt-360\n  - name: fb.normal_2\n");
    CHECK_EQ(cfg.n_classes, 2);
    CHECK_STR_EQ(cfg.classes[0].filter, "");
    nd_config_free(&cfg);
    /* mix classes need not be in classes when classes is empty (they come from a model) */
    PARSE_OK(&cfg, "replay:\n  mix: [{class: x, weight: 0.5}]\n");
    CHECK_NEAR(cfg.replay.mix[0].weight, 0.5, 0, 0);
    nd_config_free(&cfg);
    /* nor when it names the default class */
    PARSE_OK(&cfg, "classes: [{name: a, filter: tcp}]\nreplay:\n  mix: [{class: other}]\n");
    nd_config_free(&cfg);
}

static void test_files(void)
{
    nd_config cfg;
    nd_error e = {0};
    int rc = nd_config_load(&cfg, "/nonexistent/netdiffus.yaml", &e);
    CHECK_EQ(rc, -ENOENT);
    CHECK_STR_EQ(e.msg, "/nonexistent/netdiffus.yaml: No such file or directory");
    CHECK_STR_EQ(cfg.path, ""); /* defaults, safe to free */
    nd_config_free(&cfg);

    char path[] = "/tmp/nd_conf_errXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char text[] = "capture:\n  bin: 250ms\n  window: 7\n";
    CHECK_EQ(write(fd, text, sizeof text - 1), (long)sizeof text - 1);
    close(fd);
    rc = nd_config_load(&cfg, path, &e);
    CHECK_EQ(rc, ND_ECONFIG);
    char want[256];
    snprintf(want, sizeof want, "%s:3:11: capture.window: must be divisible by 4", path);
    CHECK_CONTAINS(e.msg, want);
    nd_config_free(&cfg);

    /* an empty file is all defaults, and remembers its path */
    CHECK(truncate(path, 0) == 0);
    CHECK_EQ(nd_config_load(&cfg, path, &e), 0);
    CHECK_STR_EQ(cfg.path, path);
    CHECK_U64_EQ(cfg.capture.bin_ns, ND_NS_PER_SEC);
    nd_config_free(&cfg);
    unlink(path);

    /* a directory is not a config */
    rc = nd_config_load(&cfg, "/tmp", &e);
    CHECK(rc < 0);
    CHECK_CONTAINS(e.msg, "/tmp");
    nd_config_free(&cfg);
}

/* Nesting is bounded, and refused in time linear in the text: libyaml alone took 48 s for
 * 100 000 levels of "[" and did not finish a million (ctest's TIMEOUT catches a return of
 * that). The embedded config of a model file goes through the same parser. */
static void test_deep(void)
{
    const size_t deep = 1000000;
    char *y = malloc(2 * deep + 1);
    CHECK(y);
    for (int map = 0; map < 2; map++) {
        for (size_t i = 0; i < deep; i++) y[i] = map ? '{' : '[', y[deep + i] = map ? '}' : ']';
        y[2 * deep] = 0;
        nd_config cfg;
        nd_error e = {0};
        CHECK_EQ(nd_config_parse(&cfg, y, 2 * deep, "deep.yaml", &e), ND_ECONFIG);
        CHECK_STR_EQ(e.msg, "deep.yaml:1:33: lists and mappings nested deeper than 32 levels");
        nd_config_free(&cfg);
    }
    free(y);
    /* the bound itself: 32 levels are YAML the config then refuses for its shape */
    PARSE_ERR(
        "capture:\n  sources: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        "t.yaml:2:42: lists and mappings nested deeper than 32 levels");
    PARSE_ERR(
        "capture:\n  sources: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        "t.yaml:2:13: capture.sources[0]: expected a string of 1 to 255 bytes, got a "
        "list");
}

int main(void)
{
    test_deep();
    size_t n = sizeof exact / sizeof exact[0];
    for (size_t i = 0; i < n; i++) {
        nd_config cfg;
        nd_error e = {0};
        int rc = nd_config_parse(&cfg, exact[i].yaml, strlen(exact[i].yaml), "t.yaml", &e);
        if (rc != ND_ECONFIG) CHECK_FAIL_("no error (rc %d) for:\n%s", rc, exact[i].yaml);
        if (strcmp(e.msg, exact[i].msg))
            CHECK_FAIL_("for:\n%s\ngot:  %s\nwant: %s", exact[i].yaml, e.msg, exact[i].msg);
        CHECK_EQ(e.code, ND_ECONFIG);
        CHECK_EQ(cfg.n_classes, 0); /* on failure: defaults, nothing allocated */
        CHECK(cfg.classes == NULL);
        nd_config_free(&cfg);
    }
    /* invalid UTF-8: no line yet, the byte offset instead */
    PARSE_ERR("capture:\n  bin: \xc3\x28s\n",
              "t.yaml: YAML syntax error: invalid trailing UTF-8 octet at byte 17");
    test_accepted();
    test_files();
    printf("ok: %zu exact error messages\n", n);
    return 0;
}
