/*
 * tiny_model.h — the tiny diffusion model of the model, live and replay tests: 8-bin
 * windows, a two-level U-Net of 8 base channels, one thread, a high learning rate, so
 * that a few dozen steps train it in well under a second. Each test adds the keys its
 * case needs (they are applied after these, so they win). The libraries take settings
 * structs, not the config: tiny_settings maps it with the program's own mapping
 * (app/opts_model.c), so the tests read as configs do.
 */
#ifndef ND_TESTS_TINY_MODEL_H
#define ND_TESTS_TINY_MODEL_H

#include "check.h"
#include "conf.h"
#include "opts.h"

/* tiny_model_config(cfg, "key=value", ...): defaults, the tiny model, then the keys. */
#define tiny_model_config(cfg, ...)                                                            \
    tiny_model_config_((cfg), (const char *const[]){__VA_ARGS__, NULL})

static inline void tiny_model_set(nd_config *cfg, const char *const *keys)
{
    nd_error e = {0};
    for (; *keys; keys++)
        if (nd_config_set(cfg, *keys, &e)) CHECK_FAIL_("%s: %s", *keys, e.msg);
}

static inline void tiny_model_config_(nd_config *cfg, const char *const *extra)
{
    static const char *const base[] = {"capture.window=8",
                                       "capture.min_active_bins=1",
                                       "model.attn_min_res=0",
                                       "model.base_channels=8",
                                       "model.channel_mult=[1, 2]",
                                       "model.res_blocks=1",
                                       "model.groups=4",
                                       "model.emb_dim=32",
                                       "model.threads=1",
                                       "train.batch=8",
                                       "train.lr=5e-3",
                                       "train.ema_decay=0.9",
                                       NULL};
    nd_config_defaults(cfg);
    tiny_model_set(cfg, base);
    tiny_model_set(cfg, extra);
}

/* Copies the model file `from` to `to` section by section through edit, which writes
 * each section to w as it is, changed, or not at all (older layouts of a file). */
typedef void (*tiny_edit_fn)(ndf_writer *w, uint32_t tag, const void *data, size_t len);
static inline void tiny_rewrite(const char *from, const char *to, tiny_edit_fn edit)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open(from, NDF_KIND_MODEL, &e);
    ndf_writer *w = r ? ndf_writer_open(to, NDF_KIND_MODEL, &e) : NULL;
    if (!w) CHECK_FAIL_("%s", e.msg);
    for (size_t i = 0; i < ndf_section_count(r); i++) {
        uint32_t tag;
        const void *data;
        size_t len;
        ndf_section_at(r, i, &tag, &data, &len);
        edit(w, tag, data, len);
    }
    if (ndf_writer_commit(w, &e)) CHECK_FAIL_("%s", e.msg);
    ndf_close(r);
}

/* The model settings of cfg. */
static inline nd_dm_settings tiny_settings(const nd_config *cfg)
{
    nd_dm_settings s;
    nd_error e = {0};
    if (opts_dm_settings(&s, cfg, &e)) CHECK_FAIL_("settings: %s", e.msg);
    return s;
}

/* A new model for ds with cfg's settings (no provenance text). */
static inline nd_dm *tiny_dm_new(const nd_config *cfg, const nd_dataset *ds, nd_error *e)
{
    nd_dm_settings s = tiny_settings(cfg);
    return nd_dm_new(&s, ds, NULL, e);
}

/* m's sampling settings with one field changed: tiny_set_sampling(m, calibrate, 0). */
#define tiny_set_sampling(m, field, value)                                                     \
    do {                                                                                       \
        nd_dm_sampling s_ = nd_dm_get_settings(m)->sample;                                     \
        nd_error e_ = {0};                                                                     \
        s_.field = (value);                                                                    \
        if (nd_dm_set_sampling((m), &s_, &e_)) CHECK_FAIL_("set_sampling: %s", e_.msg);        \
    } while (0)

#endif
