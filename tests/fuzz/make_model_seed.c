/*
 * make_model_seed.c — writes the model-file seeds of fuzz_ndm: the smallest model the
 * settings allow (one level of 8 channels, 4-bin windows, two classes), untrained, to
 * DIR/ndm-tiny.ndm; the same with decoder maps for two sampling settings (DECO and DECA)
 * to DIR/ndm-deca.ndm; and a distilled student of it (DIST and TCHW) to
 * DIR/ndm-student.ndm (DIR is made when missing). Generated at test time (ctest fixture) and by
 * scripts/fuzz, not kept in the tree: a model file follows every change of the network.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "../tiny_model.h"
#include "model.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_model_seed DIR\n");
        return 2;
    }
    if (mkdir(argv[1], 0755) && errno != EEXIST)
        CHECK_FAIL_("%s: %s", argv[1], strerror(errno));
    nd_config cfg;
    tiny_model_config(&cfg, "capture.window=4", "model.base_channels=8",
                      "model.channel_mult=[1]", "model.groups=4", "model.emb_dim=16",
                      "model.max_classes=2", "model.prediction=v", "train.val_fraction=0",
                      "train.batch=2", "sample.batch=1", "sample.steps=2",
                      "sample.calibrate=2");
    const char *names[] = {"bytes_down", "bytes_up"};
    nd_dataset *ds = nd_dataset_new(2, names, 4, ND_NS_PER_SEC);
    CHECK(ds);
    CHECK_EQ(nd_dataset_class(ds, "web"), 0);
    CHECK_EQ(nd_dataset_class(ds, "dns"), 1);
    const float w[2][8] = {{1500, 0, 60, 3000, 40, 40, 0, 80}, {0, 90, 90, 0, 120, 0, 0, 60}};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(nd_dataset_append(ds, (uint16_t)(i % 2), (uint64_t)i, w[i % 2]), 0);
    nd_error e = {0};
    nd_dm *m = tiny_dm_new(&cfg, ds, &e);
    if (!m) CHECK_FAIL_("nd_dm_new: %s", e.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/ndm-tiny.ndm", argv[1]);
    if (nd_dm_save(m, path, &e)) CHECK_FAIL_("%s", e.msg);
    /* maps for the stored settings and for DDPM */
    CHECK_EQ(nd_dm_calibrate(m, &e), 0);
    nd_dm_sampling s = nd_dm_get_settings(m)->sample, ddpm = s;
    ddpm.sampler = ND_SAMPLER_DDPM;
    CHECK_EQ(nd_dm_set_sampling(m, &ddpm, &e), 0);
    CHECK_EQ(nd_dm_calibrate(m, &e), 0);
    CHECK_EQ(nd_dm_set_sampling(m, &s, &e), 0);
    snprintf(path, sizeof path, "%s/ndm-deca.ndm", argv[1]);
    if (nd_dm_save(m, path, &e)) CHECK_FAIL_("%s", e.msg);
    nd_dm_distill d = {.from_steps = 2, .to_steps = 1, .round_steps = 1, .lr = 1e-3};
    if (nd_dm_distill_begin(m, &d, &e)) CHECK_FAIL_("%s", e.msg);
    snprintf(path, sizeof path, "%s/ndm-student.ndm", argv[1]);
    if (nd_dm_save(m, path, &e)) CHECK_FAIL_("%s", e.msg);
    nd_dm_free(m);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
    return 0;
}
