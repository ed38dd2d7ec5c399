/*
 * test_conf_examples.c — every file in conf/examples/ loads without an error and
 * round-trips through nd_config_to_yaml; each example holds what it is there to show.
 */
#include <dirent.h>

#include "conf_test.h"

static void load(nd_config *cfg, const char *name)
{
    char path[1024];
    nd_error e = {0};
    snprintf(path, sizeof path, "%s/conf/examples/%s", ND_SOURCE_DIR, name);
    if (nd_config_load(cfg, path, &e)) CHECK_FAIL_("%s", e.msg);
    CHECK_STR_EQ(cfg->path, path);
    /* inspect --config prints this; it must read back to the same */
    char *y = nd_config_to_yaml(cfg);
    nd_config back;
    if (nd_config_parse(&back, y, strlen(y), name, &e)) CHECK_FAIL_("%s: %s", name, e.msg);
    char *y2 = nd_config_to_yaml(&back);
    CHECK_STR_EQ(y2, y);
    free(y);
    free(y2);
    nd_config_free(&back);
}

int main(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/conf/examples", ND_SOURCE_DIR);
    DIR *d = opendir(dir);
    if (!d) CHECK_FAIL_("cannot open %s", dir);
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml")) continue;
        nd_config cfg;
        load(&cfg, de->d_name);
        nd_config_free(&cfg);
        n++;
    }
    closedir(d);
    CHECK_INT(n, >=, 4);

    nd_config cfg, def;
    /* default.yaml: every key at its default */
    load(&cfg, "default.yaml");
    nd_config_defaults(&def);
    char *a = nd_config_to_yaml(&cfg), *b = nd_config_to_yaml(&def);
    CHECK_STR_EQ(a, b);
    free(a);
    free(b);
    nd_config_free(&cfg);
    nd_config_free(&def);

    /* videotrain.yaml: label-only classes of the imports, 1 s x 64 bins, 2 channels */
    load(&cfg, "videotrain.yaml");
    CHECK_EQ(cfg.n_classes, 4);
    const char *names[] = {"yt-360", "yt-normal", "fb-360", "fb-normal"};
    for (int i = 0; i < 4; i++) {
        CHECK_STR_EQ(cfg.classes[i].name, names[i]);
        CHECK_STR_EQ(cfg.classes[i].filter, "");
    }
    CHECK_U64_EQ(cfg.capture.bin_ns, ND_NS_PER_SEC);
    CHECK_EQ(cfg.capture.window, 64);
    CHECK_EQ(cfg.capture.channels, 2);
    CHECK_EQ(cfg.replay.n_mix, 4);
    nd_config_free(&cfg);

    /* capture.yaml: BPF rules and a catch-all class */
    load(&cfg, "capture.yaml");
    CHECK_INT(cfg.n_classes, >=, 3);
    CHECK_STR_EQ(cfg.classes[0].filter, "tcp port 443");
    CHECK_STR_EQ(cfg.classes[2].filter, "udp port 53 or tcp port 53");
    CHECK_STR_EQ(cfg.capture.default_class, "other");
    CHECK_EQ(cfg.capture.n_sources, 1);
    nd_config_free(&cfg);

    /* live.yaml: the live section, on the default input (pcaps at their own pace) */
    load(&cfg, "live.yaml");
    CHECK_EQ(cfg.live.replay, 0);
    CHECK_EQ(cfg.live.metrics_port, 9464);
    CHECK_U64_EQ(cfg.live.checkpoint_interval_ns, 60 * ND_NS_PER_SEC);
    CHECK_STR_EQ(cfg.live.checkpoint, "out/live/model.ndm");
    CHECK_STR_EQ(cfg.capture.sources[0], "pcap:../shared/datasets/ndpi-apps/pcap/netflix.pcap");
    nd_config_free(&cfg);
    printf("ok: %zu example files\n", n);
    return 0;
}
