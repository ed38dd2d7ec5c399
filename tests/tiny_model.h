/*
 * tiny_model.h — the tiny diffusion model of the model, live and replay tests: 8-bin
 * windows, a two-level U-Net of 8 base channels, one thread, a high learning rate, so
 * that a few dozen steps train it in well under a second. Each test adds the keys its
 * case needs (they are applied after these, so they win).
 */
#ifndef ND_TESTS_TINY_MODEL_H
#define ND_TESTS_TINY_MODEL_H

#include "check.h"
#include "conf.h"

/* tiny_model_config(cfg, "key=value", ...): defaults, the tiny model, then the keys. */
#define tiny_model_config(cfg, ...) tiny_model_config_((cfg), (const char *const[]){__VA_ARGS__, NULL})

static inline void tiny_model_set(nd_config *cfg, const char *const *keys)
{
    nd_error e = {0};
    for (; *keys; keys++)
        if (nd_config_set(cfg, *keys, &e)) CHECK_FAIL_("%s: %s", *keys, e.msg);
}

static inline void tiny_model_config_(nd_config *cfg, const char *const *extra)
{
    static const char *const base[] = {
        "capture.window=8", "capture.min_active_bins=1", "model.attn_min_res=0",
        "model.base_channels=8", "model.channel_mult=[1, 2]", "model.res_blocks=1",
        "model.groups=4", "model.emb_dim=32", "model.threads=1", "train.batch=8",
        "train.lr=5e-3", "train.ema_decay=0.9", NULL};
    nd_config_defaults(cfg);
    tiny_model_set(cfg, base);
    tiny_model_set(cfg, extra);
}

#endif
