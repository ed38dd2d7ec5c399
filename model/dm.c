/*
 * dm.c — the class-conditional diffusion model over GAF images as a whole: building it
 * for a dataset, the trainer (class-balanced batches, validation by held-out groups,
 * EMA with warm-up, checkpoints, exact resume), the .ndm model file, and sampling of
 * raw windows. Used by `netdiffus train` and `netdiffus sample` (app/).
 *
 * Model file (.ndm, kind NDMD): the dataset's sections without windows (classes,
 * channels, replay statistics, and the training config as CONF), then
 *   DMCF  u32 record version (1), u32 image channels, L, unet fields (base, levels,
 *         mult[6], res_blocks, attn_min_res, groups, emb_dim, max_classes), T,
 *         prediction, scaling, mask; u64 parameter count, step; u64 rng[4], split seed
 *   SCAL  per class, per channel: f32 lo, f32 hi (log1p of min non-zero and of max)
 *   PARM  f32 × n   parameters (the trained weights)
 *   EMAW  f32 × n   their EMA (what sampling uses)
 *   ADAM  f32 × 2n  AdamW first then second moments
 *   MARG  u32 ND_CAL_Q, then per class, per channel ND_CAL_SLOTS f32: the training
 *         data's share of idle bins, log1p quantiles of busy bins and of window totals,
 *         class-mean autocorrelation
 *   CALB  u32 ND_CAL_Q, u32 windows per class, u64 model step, char[256] sampler
 *         setting, then per class, per channel ND_CAL_SLOTS f32: the decode calibration
 *         fitted on the model's own samples (optional)
 * All little-endian. Resuming needs DMCF to ADAM; sampling only DMCF, SCAL and EMAW
 * (MARG and CALB for a calibrated decode; files without them decode uncalibrated).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define TAG_DMCF ND_FOURCC('D', 'M', 'C', 'F')
#define TAG_SCAL ND_FOURCC('S', 'C', 'A', 'L')
#define TAG_PARM ND_FOURCC('P', 'A', 'R', 'M')
#define TAG_EMAW ND_FOURCC('E', 'M', 'A', 'W')
#define TAG_ADAM ND_FOURCC('A', 'D', 'A', 'M')
#define TAG_MARG ND_FOURCC('M', 'A', 'R', 'G')
#define TAG_CALB ND_FOURCC('C', 'A', 'L', 'B')
#define CAL_KEY 256
#define CAL_HDR (16 + CAL_KEY) /* of CALB; MARG has the first 4 bytes */
#define DMCF_VERSION 1
#define DMCF_U32 23 /* u32 fields of DMCF */
#define DMCF_BYTES (DMCF_U32 * 4 + 7 * 8)

struct nd_dm {
    nd_config cfg;
    nd_dataset *meta; /* classes, channels, statistics, config text; no windows */
    nd_gaf_spec gaf;
    nd_gaf_scale *scales; /* (n_classes) */
    nd_diffusion diff;
    nd_unet_config uc;
    nd_unet *net;
    int max_batch;
    nd_ctx *ctx;
    nd_adamw *opt;
    float *ema; /* (n): our own EMA, so that it can warm up */
    uint64_t step;
    nd_rng rng; /* batches, timesteps, noise, class dropout */
    uint64_t split_seed;
    /* decode calibration (calib.c), ND_CAL_SLOTS floats per class row and channel, for
     * every row of model.max_classes (classes join online) */
    float *marg;               /* training targets; NaN: none for that class */
    float *cal;                /* fitted on samples; valid for the settings below */
    uint64_t cal_step;         /* model step it was fitted at */
    uint32_t cal_windows;      /* windows per class it was fitted on; 0: none */
    char cal_key[CAL_KEY];     /* the sampler setting it was fitted with */
    volatile int *stop;        /* set by a signal handler: sampling stops (nd_dm_set_stop) */
};

static nd_dataset *header_copy(const nd_dataset *ds, const nd_config *cfg)
{
    const char *names[ND_MAX_CHANNELS];
    for (uint32_t c = 0; c < ds->n_channels; c++) names[c] = ds->channel_names[c];
    nd_dataset *h = nd_dataset_new(ds->n_channels, names, ds->L, ds->bin_ns);
    if (!h) return NULL;
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        if (nd_dataset_class(h, ds->class_names[k]) != (int)k) goto fail;
        h->stats[k] = ds->stats[k];
    }
    for (uint32_t k = 0; k < ds->n_counters; k++)
        if (nd_dataset_count(h, ds->counters[k].name, ds->counters[k].value)) goto fail;
    if (cfg) {
        char *yaml = nd_config_to_yaml(cfg);
        if (!yaml || nd_dataset_set_config(h, yaml)) {
            free(yaml);
            goto fail;
        }
        free(yaml);
    } else if (nd_dataset_set_config(h, ds->config_yaml)) {
        goto fail;
    }
    return h;
fail:
    nd_dataset_free(h);
    return NULL;
}

static int spec_from_config(nd_gaf_spec *g, const nd_config *cfg, int C, int L, nd_error *e)
{
    g->C = C;
    g->L = L;
    g->scaling = !strcmp(cfg->model.scaling, "log") ? ND_GAF_LOG : ND_GAF_ZERO_AWARE;
    g->mask = cfg->model.mask;
    g->decode = !strcmp(cfg->model.decode, "diag") ? ND_GAF_DIAG : ND_GAF_LSQ;
    if (L > ND_MODEL_MAX_L)
        return nd_error_set(e, ND_ECONFIG, "capture.window: %d bins; the GAF model takes at "
                            "most %d", L, ND_MODEL_MAX_L);
    return 0;
}

/* Allocates network, context and optimiser for m->uc (weights from seed). */
static int dm_build(nd_dm *m, int max_batch, nd_error *e)
{
    m->max_batch = max_batch;
    m->net = nd_unet_new(&m->uc, max_batch, m->cfg.train.seed);
    m->ctx = nd_ctx_new((int)m->cfg.model.threads);
    if (!m->net || !m->ctx) return nd_error_set(e, -ENOMEM, "model: out of memory");
    size_t n = nd_unet_num_params(m->net);
    nd_adamw_config oc = {
        .lr = (float)m->cfg.train.lr,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = (float)m->cfg.train.weight_decay,
        .grad_clip = (float)m->cfg.train.grad_clip,
        .warmup = m->cfg.train.warmup_steps,
        .ema_decay = 0.0f, /* the EMA is kept here (warm-up) */
    };
    m->opt = nd_adamw_new(&oc, n, nd_unet_params(m->net));
    m->ema = malloc(n * sizeof(float));
    size_t ncal = (size_t)m->uc.max_classes * m->gaf.C * ND_CAL_SLOTS;
    m->marg = malloc(ncal * sizeof(float));
    m->cal = malloc(ncal * sizeof(float));
    if (!m->opt || !m->ema || !m->marg || !m->cal)
        return nd_error_set(e, -ENOMEM, "model: out of memory");
    for (size_t i = 0; i < ncal; i++) m->marg[i] = m->cal[i] = NAN;
    m->cal_windows = 0;
    memcpy(m->ema, nd_unet_params(m->net), n * sizeof(float));
    return 0;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int nd_dm_is_val_group(const nd_dm *m, uint64_t group)
{
    double u = (double)(mix64(group * 0x9E3779B97F4A7C15ull ^ m->split_seed) >> 11) * 0x1.0p-53;
    return u < m->cfg.train.val_fraction;
}

/* The calibration targets (MARG) of every class of ds from its training part, as the
 * scales: the same data every time, so refitting on a resume changes nothing. */
static int fit_targets(nd_dm *m, const nd_dataset *ds, nd_error *e)
{
    int C = (int)ds->n_channels, L = (int)ds->L;
    size_t WL = (size_t)C * L;
    float *buf = malloc((ds->n_windows * WL + 1) * sizeof(float));
    float *scratch = malloc((ds->n_windows * L + 1) * sizeof(float));
    if (!buf || !scratch) {
        free(buf);
        free(scratch);
        return nd_error_set(e, -ENOMEM, "model: out of memory");
    }
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        size_t n = 0;
        for (uint64_t w = 0; w < ds->n_windows; w++)
            if (ds->labels[w] == k && !nd_dm_is_val_group(m, ds->groups[w]))
                memcpy(buf + n++ * WL, ds->values + w * WL, WL * sizeof(float));
        for (int c = 0; c < C; c++)
            nd_cal_target(m->marg + ((size_t)k * C + c) * ND_CAL_SLOTS, buf, n, C, L, c,
                          scratch);
    }
    free(buf);
    free(scratch);
    return 0;
}

int nd_unet_config_from(nd_unet_config *uc, const nd_config *cfg, int C, int L,
                        nd_error *e) {
    memset(uc, 0, sizeof *uc);
    if (strcmp(cfg->model.arch, "unet-ref") != 0)
        return nd_error_set(e, ND_ECONFIG, "model.arch: \"%s\" is unknown (try unet-ref)",
                            cfg->model.arch);
    if (cfg->model.n_mult < 1 || cfg->model.n_mult > ND_UNET_MAX_LEVELS)
        return nd_error_set(e, ND_ECONFIG, "model.channel_mult: 1 to %d entries expected",
                            ND_UNET_MAX_LEVELS);
    uc->channels = C;
    uc->L = L;
    uc->base = (int)cfg->model.base_channels;
    uc->levels = (int)cfg->model.n_mult;
    for (int l = 0; l < uc->levels; l++) uc->mult[l] = (int)cfg->model.channel_mult[l];
    uc->res_blocks = (int)cfg->model.res_blocks;
    uc->attn_min_res = (int)cfg->model.attn_min_res;
    uc->groups = (int)cfg->model.groups;
    uc->emb_dim = (int)cfg->model.emb_dim;
    uc->max_classes = (int)cfg->model.max_classes;
    return nd_unet_config_check(uc, e);
}

nd_dm *nd_dm_new(const nd_config *cfg, const nd_dataset *ds, nd_error *e)
{
    nd_dm *m = calloc(1, sizeof *m);
    if (!m) {
        nd_error_set(e, -ENOMEM, "model: out of memory");
        return NULL;
    }
    if (nd_config_copy(&m->cfg, cfg)) {
        nd_error_set(e, -ENOMEM, "model: out of memory");
        free(m);
        return NULL;
    }
    int C = (int)ds->n_channels, L = (int)ds->L;
    if (ds->n_classes == 0 || ds->n_windows == 0) {
        nd_error_set(e, ND_EFORMAT, "dataset has no windows to learn from");
        goto fail;
    }
    if (ds->n_classes > cfg->model.max_classes) {
        nd_error_set(e, ND_ECONFIG, "model.max_classes: %u, but the dataset has %u classes",
                     cfg->model.max_classes, ds->n_classes);
        goto fail;
    }
    if (spec_from_config(&m->gaf, cfg, C, L, e)) goto fail;
    int pred = nd_pred_from_name(cfg->model.prediction);
    if (nd_diffusion_init(&m->diff, (int)cfg->model.timesteps, cfg->model.schedule, pred, e))
        goto fail;
    if (nd_unet_config_from(&m->uc, cfg, nd_gaf_channels(&m->gaf), L, e)) goto fail;
    m->meta = header_copy(ds, cfg);
    m->scales = calloc(ds->n_classes, sizeof *m->scales);
    if (!m->meta || !m->scales) {
        nd_error_set(e, -ENOMEM, "model: out of memory");
        goto fail;
    }
    m->split_seed = mix64(cfg->train.seed + 0x5EED);
    nd_rng_seed(&m->rng, cfg->train.seed);
    /* class scales from the training part only */
    size_t WL = (size_t)C * L;
    float *buf = malloc(ds->n_windows * WL * sizeof(float));
    if (!buf) {
        nd_error_set(e, -ENOMEM, "model: out of memory");
        goto fail;
    }
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        size_t n = 0;
        for (uint64_t w = 0; w < ds->n_windows; w++)
            if (ds->labels[w] == k && !nd_dm_is_val_group(m, ds->groups[w]))
                memcpy(buf + n++ * WL, ds->values + w * WL, WL * sizeof(float));
        nd_gaf_fit_scale(&m->scales[k], buf, n, C, L);
    }
    free(buf);
    if (dm_build(m, (int)cfg->train.batch, e) || fit_targets(m, ds, e)) goto fail;
    return m;
fail:
    nd_dm_free(m);
    return NULL;
}

void nd_dm_free(nd_dm *m)
{
    if (!m) return;
    nd_unet_free(m->net);
    nd_ctx_free(m->ctx);
    nd_adamw_free(m->opt);
    free(m->ema);
    free(m->marg);
    free(m->cal);
    free(m->scales);
    nd_dataset_free(m->meta);
    nd_config_free(&m->cfg);
    free(m);
}

const nd_config *nd_dm_config(const nd_dm *m) { return &m->cfg; }
nd_config *nd_dm_config_mut(nd_dm *m) { return &m->cfg; }
const nd_dataset *nd_dm_dataset(const nd_dm *m) { return m->meta; }
const nd_gaf_spec *nd_dm_gaf(const nd_dm *m) { return &m->gaf; }
const nd_gaf_scale *nd_dm_scale(const nd_dm *m, int cls) { return &m->scales[cls]; }
nd_unet *nd_dm_unet(nd_dm *m) { return m->net; }
uint64_t nd_dm_step(const nd_dm *m) { return m->step; }

/* ---- model file -------------------------------------------------------------------- */

/* Section tag: hlen bytes of header hdr (may be 0), then n floats. */
static int write_floats(ndf_writer *w, uint32_t tag, const void *hdr, size_t hlen,
                        const float *v, size_t n, nd_error *e)
{
    unsigned char buf[4096 * 4];
    int rc = ndf_section_begin(w, tag, e);
    if (!rc && hlen) rc = ndf_section_write(w, hdr, hlen, e);
    for (size_t i = 0; !rc && i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < k; j++) nd_put_f32(buf + 4 * j, v[i + j]);
        rc = ndf_section_write(w, buf, 4 * k, e);
    }
    return rc ? rc : ndf_section_end(w, e);
}

/* Section tag holding hlen header bytes (*hdr points at them) and n floats. */
static int read_floats(const ndf_reader *r, uint32_t tag, const unsigned char **hdr,
                       size_t hlen, float *v, size_t n, nd_error *e)
{
    const void *data;
    size_t len;
    int rc = ndf_find(r, tag, &data, &len, e);
    if (rc) return rc;
    char t[5];
    ndf_tag_str(tag, t);
    if (len != hlen + 4 * n)
        return nd_error_set(e, ND_EFORMAT, "%s: section %s holds %zu bytes, expected %zu "
                            "(%zu floats)", ndf_path(r), t, len, hlen + 4 * n, n);
    const unsigned char *p = data;
    if (hdr) *hdr = p;
    p += hlen;
    for (size_t i = 0; i < n; i++) v[i] = nd_get_f32(p + 4 * i);
    return 0;
}

int nd_dm_save(nd_dm *m, const char *path, nd_error *e)
{
    return nd_dm_save_with(m, path, NULL, NULL, e);
}

int nd_dm_save_with(nd_dm *m, const char *path, nd_dm_extra_fn extra, void *arg,
                    nd_error *e)
{
    ndf_writer *w = ndf_writer_open(path, NDF_KIND_MODEL, e);
    if (!w) return e ? e->code : -EIO;
    int rc = nd_dataset_write_sections(m->meta, w, 0, e);
    unsigned char rec[DMCF_BYTES];
    const nd_unet_config *u = &m->uc;
    uint32_t f[DMCF_U32] = {DMCF_VERSION, (uint32_t)u->channels, (uint32_t)u->L,
                            (uint32_t)u->base, (uint32_t)u->levels};
    for (int l = 0; l < ND_UNET_MAX_LEVELS; l++) f[5 + l] = (uint32_t)u->mult[l];
    f[11] = (uint32_t)u->res_blocks;
    f[12] = (uint32_t)u->attn_min_res;
    f[13] = (uint32_t)u->groups;
    f[14] = (uint32_t)u->emb_dim;
    f[15] = (uint32_t)u->max_classes;
    f[16] = (uint32_t)m->diff.T;
    f[17] = (uint32_t)m->diff.pred;
    f[18] = (uint32_t)m->gaf.scaling;
    f[19] = (uint32_t)m->gaf.mask;
    f[20] = (uint32_t)m->gaf.C;
    f[21] = !strcmp(m->cfg.model.schedule, "linear");
    f[22] = 0;
    for (int i = 0; i < DMCF_U32; i++) nd_put_u32(rec + 4 * i, f[i]);
    size_t n = nd_unet_num_params(m->net);
    unsigned char *p = rec + 4 * DMCF_U32;
    nd_put_u64(p, n);
    nd_put_u64(p + 8, m->step);
    for (int i = 0; i < 4; i++) nd_put_u64(p + 16 + 8 * i, m->rng.s[i]);
    nd_put_u64(p + 48, m->split_seed);
    if (!rc) rc = ndf_write_section(w, TAG_DMCF, rec, sizeof rec, e);
    size_t ns = (size_t)m->meta->n_classes * m->gaf.C * 2;
    float *sc = malloc((ns + 1) * sizeof(float));
    if (!sc && !rc) rc = nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    if (!rc) {
        for (uint32_t k = 0; k < m->meta->n_classes; k++)
            for (int c = 0; c < m->gaf.C; c++) {
                sc[(k * m->gaf.C + c) * 2] = m->scales[k].lo[c];
                sc[(k * m->gaf.C + c) * 2 + 1] = m->scales[k].hi[c];
            }
        rc = write_floats(w, TAG_SCAL, NULL, 0, sc, ns, e);
    }
    free(sc);
    if (!rc) rc = write_floats(w, TAG_PARM, NULL, 0, nd_unet_params(m->net), n, e);
    if (!rc) rc = write_floats(w, TAG_EMAW, NULL, 0, m->ema, n, e);
    if (!rc) rc = write_floats(w, TAG_ADAM, NULL, 0, nd_adamw_moments(m->opt), 2 * n, e);
    size_t nc = (size_t)m->meta->n_classes * m->gaf.C * ND_CAL_SLOTS;
    unsigned char ch[CAL_HDR];
    nd_put_u32(ch, ND_CAL_Q);
    if (!rc) rc = write_floats(w, TAG_MARG, ch, 4, m->marg, nc, e);
    if (!rc && m->cal_windows) {
        nd_put_u32(ch + 4, m->cal_windows);
        nd_put_u64(ch + 8, m->cal_step);
        memcpy(ch + 16, m->cal_key, CAL_KEY);
        rc = write_floats(w, TAG_CALB, ch, CAL_HDR, m->cal, nc, e);
    }
    if (!rc && extra) rc = extra(w, arg, e);
    if (rc) {
        ndf_writer_abort(w);
        return rc;
    }
    return ndf_writer_commit(w, e);
}

/* MARG and CALB, both optional (files from before the calibration have neither). Files
 * from before the volume map hold ND_CAL_VOL floats per class and channel, files from
 * before the score filter ND_CAL_ACF: their targets load without what came later (no
 * volume map, no filter, until `train --resume` refits them) and their calibration is
 * left out (the next sample refits it). */
static int read_calibration(nd_dm *m, const ndf_reader *r, nd_error *e)
{
    size_t rows = (size_t)m->meta->n_classes * m->gaf.C, nc = rows * ND_CAL_SLOTS;
    const void *data;
    size_t len, k = ND_CAL_SLOTS; /* floats per row in the file */
    const unsigned char *h;
    int rc = 0;
    if (!ndf_find(r, TAG_MARG, &data, &len, NULL)) {
        if (len == 4 + 4 * rows * ND_CAL_VOL) k = ND_CAL_VOL;
        if (len == 4 + 4 * rows * ND_CAL_ACF) k = ND_CAL_ACF;
        float *t = malloc(rows * k * sizeof(float));
        rc = t ? read_floats(r, TAG_MARG, &h, 4, t, rows * k, e)
               : nd_error_set(e, -ENOMEM, "%s: out of memory", ndf_path(r));
        for (size_t i = 0; !rc && i < rows; i++) {
            memcpy(m->marg + i * ND_CAL_SLOTS, t + i * k, k * sizeof(float));
            for (size_t j = k; j < ND_CAL_SLOTS; j++) m->marg[i * ND_CAL_SLOTS + j] = NAN;
        }
        free(t);
        if (!rc && nd_get_u32(h) != ND_CAL_Q)
            rc = nd_error_set(e, ND_EFORMAT, "%s: section MARG has %u quantiles, this build "
                              "reads %d", ndf_path(r), nd_get_u32(h), ND_CAL_Q);
    }
    if (!rc && k == ND_CAL_SLOTS && !ndf_find(r, TAG_CALB, &data, &len, NULL)) {
        rc = read_floats(r, TAG_CALB, &h, CAL_HDR, m->cal, nc, e);
        if (!rc && (nd_get_u32(h) != ND_CAL_Q || !nd_get_u32(h + 4) || h[16 + CAL_KEY - 1]))
            rc = nd_error_set(e, ND_EFORMAT, "%s: section CALB: bad header", ndf_path(r));
        if (!rc) {
            m->cal_windows = nd_get_u32(h + 4);
            m->cal_step = nd_get_u64(h + 8);
            memcpy(m->cal_key, h + 16, CAL_KEY);
        }
    }
    return rc;
}

nd_dm *nd_dm_load(const char *path, int max_batch, nd_error *e)
{
    ndf_reader *r = ndf_open(path, NDF_KIND_MODEL, e);
    if (!r) return NULL;
    nd_dm *m = calloc(1, sizeof *m);
    const void *data;
    size_t len;
    if (!m) {
        nd_error_set(e, -ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    m->meta = nd_dataset_from_container(r, e);
    if (!m->meta) goto fail;
    const char *yaml = m->meta->config_yaml ? m->meta->config_yaml : "";
    nd_error ce = {0};
    if (nd_config_parse(&m->cfg, yaml, strlen(yaml), path, &ce)) {
        nd_error_set(e, ND_EFORMAT, "%s: the embedded config does not load: %s", path, ce.msg);
        goto fail;
    }
    if (ndf_find(r, TAG_DMCF, &data, &len, e)) goto fail;
    if (len != DMCF_BYTES) {
        nd_error_set(e, ND_EFORMAT, "%s: section DMCF holds %zu bytes, expected %d (not a "
                     "model of this version)", path, len, DMCF_BYTES);
        goto fail;
    }
    const unsigned char *p = data;
    uint32_t f[DMCF_U32];
    for (int i = 0; i < DMCF_U32; i++) f[i] = nd_get_u32(p + 4 * i);
    if (f[0] != DMCF_VERSION) {
        nd_error_set(e, ND_EVERSION, "%s: model record version %u, this build reads %d",
                     path, f[0], DMCF_VERSION);
        goto fail;
    }
    nd_unet_config *u = &m->uc;
    u->channels = (int)f[1];
    u->L = (int)f[2];
    u->base = (int)f[3];
    u->levels = (int)f[4];
    for (int l = 0; l < ND_UNET_MAX_LEVELS; l++) u->mult[l] = (int)f[5 + l];
    u->res_blocks = (int)f[11];
    u->attn_min_res = (int)f[12];
    u->groups = (int)f[13];
    u->emb_dim = (int)f[14];
    u->max_classes = (int)f[15];
    m->gaf.C = (int)f[20];
    m->gaf.L = u->L;
    m->gaf.scaling = (int)f[18];
    m->gaf.mask = (int)f[19];
    m->gaf.decode = !strcmp(m->cfg.model.decode, "diag") ? ND_GAF_DIAG : ND_GAF_LSQ;
    if (m->gaf.C != (int)m->meta->n_channels || u->L != (int)m->meta->L || u->L > ND_MODEL_MAX_L ||
        nd_gaf_channels(&m->gaf) != u->channels || f[17] > 1 || f[18] > 1 || f[19] > 1 ||
        m->meta->n_classes > (uint32_t)u->max_classes || u->levels < 1 ||
        u->levels > ND_UNET_MAX_LEVELS) {
        nd_error_set(e, ND_EFORMAT, "%s: section DMCF does not match the file's channels, "
                     "bins or classes", path);
        goto fail;
    }
    if (nd_diffusion_init(&m->diff, (int)f[16], f[21] ? "linear" : "cosine", (int)f[17], e))
        goto fail;
    p += 4 * DMCF_U32;
    uint64_t n = nd_get_u64(p);
    m->step = nd_get_u64(p + 8);
    for (int i = 0; i < 4; i++) m->rng.s[i] = nd_get_u64(p + 16 + 8 * i);
    m->split_seed = nd_get_u64(p + 48);
    if (dm_build(m, max_batch, e)) goto fail;
    if (n != nd_unet_num_params(m->net)) {
        nd_error_set(e, ND_EFORMAT, "%s: %llu parameters stored, the network it describes "
                     "has %zu", path, (unsigned long long)n, nd_unet_num_params(m->net));
        goto fail;
    }
    m->scales = calloc(m->meta->n_classes, sizeof *m->scales);
    size_t ns = (size_t)m->meta->n_classes * m->gaf.C * 2;
    float *sc = malloc((ns + 1) * sizeof(float));
    int rc = !m->scales || !sc ? nd_error_set(e, -ENOMEM, "%s: out of memory", path)
                               : read_floats(r, TAG_SCAL, NULL, 0, sc, ns, e);
    if (!rc)
        for (uint32_t k = 0; k < m->meta->n_classes; k++)
            for (int c = 0; c < m->gaf.C; c++) {
                m->scales[k].lo[c] = sc[(k * m->gaf.C + c) * 2];
                m->scales[k].hi[c] = sc[(k * m->gaf.C + c) * 2 + 1];
                if (!isfinite(m->scales[k].lo[c]) || !isfinite(m->scales[k].hi[c]))
                    rc = nd_error_set(e, ND_EFORMAT, "%s: class scale not finite", path);
            }
    free(sc);
    if (!rc) rc = read_floats(r, TAG_PARM, NULL, 0, nd_unet_params(m->net), n, e);
    if (!rc) rc = read_floats(r, TAG_EMAW, NULL, 0, m->ema, n, e);
    if (!rc) rc = read_floats(r, TAG_ADAM, NULL, 0, nd_adamw_moments(m->opt), 2 * n, e);
    if (!rc) rc = read_calibration(m, r, e);
    if (rc) goto fail;
    nd_adamw_set_steps(m->opt, m->step);
    ndf_close(r);
    return m;
fail:
    ndf_close(r);
    nd_dm_free(m);
    return NULL;
}

int nd_dm_inspect(const ndf_reader *r, FILE *out, nd_error *e)
{
    const void *data;
    size_t len;
    if (ndf_find(r, TAG_DMCF, &data, &len, e)) return e ? e->code : ND_EFORMAT;
    if (len != DMCF_BYTES)
        return nd_error_set(e, ND_EFORMAT, "%s: section DMCF holds %zu bytes, expected %d",
                            ndf_path(r), len, DMCF_BYTES);
    const unsigned char *p = data;
    uint32_t f[DMCF_U32];
    for (int i = 0; i < DMCF_U32; i++) f[i] = nd_get_u32(p + 4 * i);
    fprintf(out, "model: unet-ref, %u image channels (%u series%s), %ux%u, base %u, mult (",
            f[1], f[20], f[19] ? " + activity masks" : "", f[2], f[2], f[3]);
    for (uint32_t l = 0; l < f[4] && l < ND_UNET_MAX_LEVELS; l++)
        fprintf(out, "%s%u", l ? "," : "", f[5 + l]);
    fprintf(out, "), %u ResBlocks/level, attention <= %u px, %u class rows\n", f[11], f[12],
            f[15]);
    fprintf(out, "diffusion: T %u, %s schedule, %s-prediction, %s scaling\n", f[16],
            f[21] ? "linear" : "cosine", f[17] ? "v" : "eps", f[18] ? "log" : "zero-aware");
    fprintf(out, "training: %llu steps, %llu parameters (+ EMA, Adam moments)\n",
            (unsigned long long)nd_get_u64(p + 4 * DMCF_U32 + 8),
            (unsigned long long)nd_get_u64(p + 4 * DMCF_U32));
    const void *cd;
    size_t cl;
    if (!ndf_find(r, TAG_CALB, &cd, &cl, NULL) && cl >= CAL_HDR &&
        !((const unsigned char *)cd)[CAL_HDR - 1])
        fprintf(out, "decode calibration: %u windows per class at step %llu (%s)\n",
                nd_get_u32((const unsigned char *)cd + 4),
                (unsigned long long)nd_get_u64((const unsigned char *)cd + 8),
                (const char *)cd + 16);
    else
        fprintf(out, "decode calibration: none stored (sample fits one when "
                "sample.calibrate is on)\n");
    const void *sd;
    size_t sl;
    nd_dataset *h = nd_dataset_from_container(r, NULL);
    if (h && !ndf_find(r, TAG_SCAL, &sd, &sl, NULL) && f[20] == h->n_channels &&
        sl == (size_t)8 * f[20] * h->n_classes) {
        const unsigned char *s = sd;
        fprintf(out, "class scales (bytes per bin, smallest non-zero..largest):\n");
        for (size_t k = 0; k < h->n_classes; k++) {
            fprintf(out, "  %-24s", h->class_names[k]);
            for (uint32_t c = 0; c < f[20]; c++)
                fprintf(out, " %s %.0f..%.0f", h->channel_names[c],
                        expm1(nd_get_f32(s + ((k * f[20] + c) * 2) * 4)),
                        expm1(nd_get_f32(s + ((k * f[20] + c) * 2 + 1) * 4)));
            fputc('\n', out);
        }
    }
    nd_dataset_free(h);
    return 0;
}

/* ---- training ---------------------------------------------------------------------- */

/* EMA decay at step s (1-based): with warm-up, min(decay, (1+s)/(10+s)). */
static float ema_decay_at(const nd_config *cfg, uint64_t s)
{
    double d = cfg->train.ema_decay;
    if (cfg->train.ema_warmup) {
        double w = (1.0 + (double)s) / (10.0 + (double)s);
        if (w < d) d = w;
    }
    return (float)d;
}

typedef struct batch_buf {
    float *x0, *xt, *target, *out, *eps, *tt;
    int *y;
} batch_buf;

static int batch_alloc(batch_buf *b, int B, size_t img)
{
    size_t n = (size_t)B * img;
    b->x0 = malloc(n * sizeof(float));
    b->xt = malloc(n * sizeof(float));
    b->target = malloc(n * sizeof(float));
    b->out = malloc(n * sizeof(float));
    b->eps = malloc(n * sizeof(float));
    b->tt = malloc((size_t)B * sizeof(float));
    b->y = malloc((size_t)B * sizeof(int));
    return b->x0 && b->xt && b->target && b->out && b->eps && b->tt && b->y ? 0 : -ENOMEM;
}

static void batch_free(batch_buf *b)
{
    free(b->x0);
    free(b->xt);
    free(b->target);
    free(b->out);
    free(b->eps);
    free(b->tt);
    free(b->y);
}

/* Image i of a training batch from raw window x (C,L) of class k: timestep, class
 * dropout to the null row and noise from m->rng (in that order), x0, x_t and target. */
static void batch_fill(nd_dm *m, batch_buf *b, int i, const float *x, int k)
{
    size_t img = (size_t)m->uc.channels * m->uc.L * m->uc.L;
    int t = (int)nd_rng_below(&m->rng, (uint32_t)m->diff.T);
    int drop = nd_rng_uniform(&m->rng) < m->cfg.train.class_dropout;
    float *x0 = b->x0 + i * img, *eps = b->eps + i * img;
    for (size_t j = 0; j < img; j++) eps[j] = nd_rng_normal(&m->rng);
    nd_gaf_window_to_image(x0, x, &m->gaf, &m->scales[k]);
    nd_diffusion_q_sample(&m->diff, b->xt + i * img, b->target + i * img, x0, eps, t, img);
    b->tt[i] = (float)t;
    b->y[i] = drop ? m->uc.max_classes : k;
}

/* One optimiser step on the B images batch_fill prepared, then the EMA; the loss. */
static float batch_step(nd_dm *m, batch_buf *b, int B)
{
    size_t img = (size_t)m->uc.channels * m->uc.L * m->uc.L, np = nd_unet_num_params(m->net);
    nd_unet_forward(m->net, m->ctx, b->out, b->xt, b->tt, b->y, B);
    float loss = nd_mse_forward(b->out, b->target, (size_t)B * img);
    nd_mse_backward(b->out, b->out, b->target, (size_t)B * img, 1.0f);
    nd_unet_zero_grad(m->net);
    nd_unet_backward(m->net, m->ctx, NULL, b->out);
    float *params = nd_unet_params(m->net);
    nd_adamw_step(m->opt, m->ctx, params, nd_unet_grads(m->net));
    m->step++;
    float d = ema_decay_at(&m->cfg, m->step);
    for (size_t i = 0; i < np; i++) m->ema[i] = d * m->ema[i] + (1.0f - d) * params[i];
    return loss;
}

/* Validation loss of the EMA weights on up to 256 held-out windows, with noise and
 * timesteps from a fixed seed (the same every call; the training RNG is untouched). */
static double val_loss(nd_dm *m, const nd_dataset *ds, const uint64_t *val, size_t nval,
                       batch_buf *b, float *save)
{
    if (!nval) return -1.0;
    size_t np = nd_unet_num_params(m->net), img = (size_t)m->uc.channels * m->uc.L * m->uc.L;
    float *params = nd_unet_params(m->net);
    memcpy(save, params, np * sizeof(float));
    memcpy(params, m->ema, np * sizeof(float));
    nd_rng r;
    nd_rng_seed(&r, m->split_seed ^ 0xA11CEull);
    size_t WL = (size_t)ds->n_channels * ds->L, total = nval < 256 ? nval : 256;
    double sum = 0.0;
    size_t done = 0;
    while (done < total) {
        int B = (int)(total - done < (size_t)m->max_batch ? total - done : (size_t)m->max_batch);
        for (int i = 0; i < B; i++) {
            uint64_t w = val[(done + i) * nval / total];
            nd_gaf_window_to_image(b->x0 + i * img, ds->values + w * WL, &m->gaf,
                                   &m->scales[ds->labels[w]]);
            int t = (int)nd_rng_below(&r, (uint32_t)m->diff.T);
            for (size_t j = 0; j < img; j++) b->eps[i * img + j] = nd_rng_normal(&r);
            nd_diffusion_q_sample(&m->diff, b->xt + i * img, b->target + i * img,
                                  b->x0 + i * img, b->eps + i * img, t, img);
            b->tt[i] = (float)t;
            b->y[i] = ds->labels[w];
        }
        nd_unet_forward(m->net, m->ctx, b->out, b->xt, b->tt, b->y, B);
        sum += (double)nd_mse_forward(b->out, b->target, (size_t)B * img) * B;
        done += (size_t)B;
    }
    memcpy(params, save, np * sizeof(float));
    return sum / (double)total;
}

int nd_dm_train(nd_dm *m, const nd_dataset *ds, const nd_train_opts *o,
                nd_train_report *rep, nd_error *e)
{
    nd_train_report r0 = {0};
    if (!rep) rep = &r0;
    memset(rep, 0, sizeof *rep);
    rep->val_loss = -1.0;
    uint64_t t0 = nd_now_ns(), last_status = 0, step0 = m->step;
    const nd_dataset *h = m->meta;
    if (ds->n_classes != h->n_classes || ds->n_channels != h->n_channels || ds->L != h->L)
        return nd_error_set(e, ND_EUSAGE, "the dataset (%u classes, %u channels, %u bins) is "
                            "not the one the model was made for (%u, %u, %u)", ds->n_classes,
                            ds->n_channels, ds->L, h->n_classes, h->n_channels, h->L);
    for (uint32_t k = 0; k < ds->n_classes; k++)
        if (strcmp(ds->class_names[k], h->class_names[k]))
            return nd_error_set(e, ND_EUSAGE, "class %u is '%s' in the dataset but '%s' in "
                                "the model", k, ds->class_names[k], h->class_names[k]);
    /* files from before the calibration have no targets; the others get the same again */
    int trc = fit_targets(m, ds, e);
    if (trc) return trc;
    int K = (int)ds->n_classes, B = (int)m->cfg.train.batch;
    if (B > m->max_batch) B = m->max_batch;
    size_t WL = (size_t)ds->n_channels * ds->L;
    size_t img = (size_t)m->uc.channels * m->uc.L * m->uc.L;
    size_t np = nd_unet_num_params(m->net);
    /* per-class lists of training windows; validation windows */
    uint64_t *idx = malloc((ds->n_windows + 1) * sizeof *idx);
    uint64_t *val = malloc((ds->n_windows + 1) * sizeof *val);
    size_t *start = calloc((size_t)K + 1, sizeof *start);
    int *present = malloc((size_t)K * sizeof *present);
    float *save = malloc(np * sizeof(float));
    batch_buf b = {0};
    int rc = 0;
    if (!idx || !val || !start || !present || !save || batch_alloc(&b, m->max_batch, img)) {
        rc = nd_error_set(e, -ENOMEM, "train: out of memory");
        goto out;
    }
    size_t nval = 0, ntr = 0;
    for (int k = 0; k < K; k++) {
        start[k] = ntr;
        for (uint64_t w = 0; w < ds->n_windows; w++) {
            if (ds->labels[w] != k) continue;
            if (nd_dm_is_val_group(m, ds->groups[w])) continue;
            idx[ntr++] = w;
        }
    }
    start[K] = ntr;
    for (uint64_t w = 0; w < ds->n_windows; w++)
        if (nd_dm_is_val_group(m, ds->groups[w])) val[nval++] = w;
    int npresent = 0;
    for (int k = 0; k < K; k++)
        if (start[k + 1] > start[k]) present[npresent++] = k;
    if (!npresent) {
        rc = nd_error_set(e, ND_EFORMAT, "train: no training windows (all held out?)");
        goto out;
    }
    double loss_avg = 0.0;
    while (m->step < o->steps) {
        if (o->stop && *o->stop) {
            rep->interrupted = 1;
            break;
        }
        double el = (double)(nd_now_ns() - t0) * 1e-9;
        if (o->max_seconds > 0 && el >= o->max_seconds) break;
        /* the batch: class uniformly among classes with data, then a window of it */
        for (int i = 0; i < B; i++) {
            int k = present[nd_rng_below(&m->rng, (uint32_t)npresent)];
            uint64_t w = idx[start[k] + nd_rng_below(&m->rng, (uint32_t)(start[k + 1] - start[k]))];
            batch_fill(m, &b, i, ds->values + w * WL, k);
        }
        float loss = batch_step(m, &b, B);
        if (!isfinite(loss)) {
            rc = nd_error_set(e, ND_EFORMAT, "train: loss is %g at step %llu (try a lower "
                              "train.lr)", (double)loss, (unsigned long long)m->step);
            goto out;
        }
        loss_avg = m->step - step0 == 1 ? loss : 0.98 * loss_avg + 0.02 * loss;
        rep->last_loss = loss_avg;
        uint64_t now = nd_now_ns();
        if (!o->quiet && now - last_status > 500000000ull) {
            last_status = now;
            double s = (double)(now - t0) * 1e-9, done = (double)(m->step - step0);
            double ips = done * B / s, left = (double)(o->steps - m->step) * s / done;
            if (o->max_seconds > 0 && o->max_seconds - s < left) left = o->max_seconds - s;
            nd_status("step %llu/%llu  loss %.4f  %.1f images/s  %.0f min %02.0f s left",
                      (unsigned long long)m->step, (unsigned long long)o->steps, loss_avg, ips,
                      floor(left / 60), fmod(left, 60));
        }
        uint64_t ce = m->cfg.train.checkpoint_every;
        if (o->path && ce && m->step % ce == 0 && m->step < o->steps) {
            rep->val_loss = val_loss(m, ds, val, nval, &b, save);
            if ((rc = nd_dm_save(m, o->path, e))) goto out;
            if (!o->quiet) {
                nd_status_end();
                nd_info("step %llu: loss %.4f, validation loss %.4f (EMA), checkpoint %s",
                        (unsigned long long)m->step, loss_avg, rep->val_loss, o->path);
            }
        }
    }
    if (!o->quiet) nd_status_end();
    rep->val_loss = val_loss(m, ds, val, nval, &b, save);
    if (o->path && (rc = nd_dm_save(m, o->path, e))) goto out;
    if (rep->interrupted) rc = ND_EINTR;
out:
    rep->steps_done = m->step - step0;
    rep->seconds = (double)(nd_now_ns() - t0) * 1e-9;
    free(idx);
    free(val);
    free(start);
    free(present);
    free(save);
    batch_free(&b);
    return rc;
}

/* ---- sampling ---------------------------------------------------------------------- */

typedef struct denoise_arg {
    nd_dm *m;
} denoise_arg;

static void denoise(void *arg, float *out, const float *x, const float *t, const int *y, int B)
{
    nd_dm *m = ((denoise_arg *)arg)->m;
    size_t img = (size_t)m->uc.channels * m->uc.L * m->uc.L;
    for (int i = 0; i < B; i += m->max_batch) {
        int n = B - i < m->max_batch ? B - i : m->max_batch;
        nd_unet_forward(m->net, m->ctx, out + i * img, x + i * img, t + i, y + i, n);
    }
}

/* Predicted clean image -> a valid GASF image (the series of every channel by the
 * model's decode, encoded again): the sampler then only ever steers towards images that
 * are series, which a small, briefly trained network does not manage by itself. */
static void project_gaf(void *arg, float *x0)
{
    nd_dm *m = arg;
    float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    int CI = m->uc.channels, L = m->uc.L;
    nd_gaf_decode(v, x0, CI, L, m->gaf.decode);
    nd_gaf_encode(x0, v, CI, L);
}

/* The sampler setting and the fit's own revision (a calibration stored by an older fit
 * is refitted when sampling). */
#define CAL_FIT_REVISION 2 /* 2: windows idle by the volume map only (calib.c, revive) */
static void cal_key(const nd_dm *m, char *key)
{
    const nd_config *c = &m->cfg;
    snprintf(key, CAL_KEY, "%s %u steps, guidance %g, eta %g, clip %s, projection %s, "
             "decode %s, fit %d", c->sample.sampler, c->sample.steps, c->sample.guidance,
             c->sample.eta, c->sample.clip, c->sample.project ? "on" : "off",
             m->gaf.decode == ND_GAF_DIAG ? "diag" : "lsq", CAL_FIT_REVISION);
}

/* Whether sampling now would use the stored calibration as it is. */
static int cal_fresh(const nd_dm *m)
{
    char key[CAL_KEY];
    cal_key(m, key);
    return m->cal_windows == m->cfg.sample.calibrate && m->cal_step == m->step &&
           !strcmp(key, m->cal_key);
}

/* Activity score of bin i of channel c in decoded values v: the activity image's value
 * with masks, else the value itself (idle bins decode near 0 in either). */
static float activity(const nd_gaf_spec *g, const float *v, int c, int i)
{
    return v[((g->mask ? g->C : 0) + c) * g->L + i];
}

/* Sampled image -> raw window x (C,L): decoded by the model's decode, then the
 * calibration of class cls when there is a fresh one, else the fixed thresholds of
 * nd_gaf_image_to_window. With dec (nd_gaf_channels·L), also the decoded values. */
static void image_to_window(const nd_dm *m, int cls, float *x, float *dec, const float *img,
                           nd_rng *rng)
{
    const nd_gaf_spec *g = &m->gaf;
    int C = g->C, L = g->L, cal = m->cfg.sample.calibrate && m->cal_windows && cal_fresh(m);
    if (!cal && !dec) {
        nd_gaf_image_to_window(x, img, g, &m->scales[cls], -1);
        return;
    }
    float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    nd_gaf_decode(v, img, nd_gaf_channels(g), L, g->decode);
    if (dec) memcpy(dec, v, (size_t)nd_gaf_channels(g) * L * sizeof(float));
    if (!x) return;
    /* a class without training targets (it joined online, no data yet) keeps the fixed
     * thresholds */
    const float *cal0 = m->cal + (size_t)cls * C * ND_CAL_SLOTS;
    if (!cal || isnan(cal0[0])) {
        nd_gaf_image_to_window(x, img, g, &m->scales[cls], -1);
        return;
    }
    for (int c = 0; c < C; c++) {
        const float *cc = cal0 + (size_t)c * ND_CAL_SLOTS;
        const float *t = m->marg + ((size_t)cls * C + c) * ND_CAL_SLOTS;
        float score[ND_MODEL_MAX_L], l[ND_MODEL_MAX_L];
        for (int i = 0; i < L; i++) {
            score[i] = activity(g, v, c, i);
            l[i] = log1pf(nd_gaf_unscale(v[c * L + i], g, &m->scales[cls], c));
        }
        nd_cal_window(cc, t, x + (size_t)c * L, score, l, L, rng);
    }
}

/* n images of class cls by the sampler of the sample.* settings on the EMA weights,
 * each to image_to_window (x, dec: n windows; either may be NULL) and to imgs. */
static int sample_images(nd_dm *m, int cls, size_t n, float *x, float *dec, float *imgs,
                         nd_rng *rng, nd_error *e)
{
    const nd_config *c = &m->cfg;
    nd_sample_opts so = {
        .sampler = nd_sampler_from_name(c->sample.sampler),
        .steps = (int)c->sample.steps,
        .guidance = (float)c->sample.guidance,
        .eta = (float)c->sample.eta,
        .clip = nd_clip_from_name(c->sample.clip),
        .null_class = m->uc.max_classes,
        .project = c->sample.project ? project_gaf : NULL,
        .project_arg = m,
    };
    if (so.sampler < 0 || so.clip < 0)
        return nd_error_set(e, ND_ECONFIG, "sample: unknown sampler '%s' or clip '%s'",
                            c->sample.sampler, c->sample.clip);
    size_t img = (size_t)m->uc.channels * m->uc.L * m->uc.L, np = nd_unet_num_params(m->net);
    size_t WL = (size_t)m->gaf.C * m->gaf.L, DL = (size_t)m->uc.channels * m->gaf.L;
    int SB = (int)c->sample.batch;
    float *buf = malloc((size_t)SB * img * sizeof(float));
    int *y = malloc((size_t)SB * sizeof(int));
    float *save = malloc(np * sizeof(float));
    if (!buf || !y || !save) {
        free(buf);
        free(y);
        free(save);
        return nd_error_set(e, -ENOMEM, "sample: out of memory");
    }
    float *params = nd_unet_params(m->net);
    memcpy(save, params, np * sizeof(float));
    memcpy(params, m->ema, np * sizeof(float));
    denoise_arg da = {m};
    /* the calibration filter's own noise: calibrated and uncalibrated decodes see the
     * same images */
    nd_rng filter_rng;
    nd_rng_seed(&filter_rng, (uint64_t)(nd_rng_uniform(rng) * 0x1p53));
    int rc = 0;
    for (size_t done = 0; done < n;) {
        if (m->stop && *m->stop) {
            rc = nd_error_set(e, ND_EINTR, "sample: stopped by a signal");
            break;
        }
        int B = (int)(n - done < (size_t)SB ? n - done : (size_t)SB);
        for (int i = 0; i < B; i++) y[i] = cls;
        nd_diffusion_sample(&m->diff, &so, denoise, &da, buf, y, B, img, rng);
        for (int i = 0; i < B; i++) {
            size_t at = done + (size_t)i;
            image_to_window(m, cls, x ? x + at * WL : NULL, dec ? dec + at * DL : NULL,
                            buf + i * img, &filter_rng);
            if (imgs) memcpy(imgs + at * img, buf + i * img, img * sizeof(float));
        }
        done += (size_t)B;
    }
    memcpy(params, save, np * sizeof(float));
    free(buf);
    free(y);
    free(save);
    return rc;
}

int nd_dm_calibrate(nd_dm *m, nd_error *e)
{
    uint32_t W = m->cfg.sample.calibrate;
    if (!W || (m->cal_windows && cal_fresh(m))) return 0;
    const nd_gaf_spec *g = &m->gaf;
    int C = g->C, L = g->L, CI = nd_gaf_channels(g);
    size_t nb = (size_t)W * L;
    float *dec = malloc((size_t)W * CI * L * sizeof(float));
    float *score = malloc(nb * sizeof(float)), *lval = malloc(nb * sizeof(float));
    float *scratch = malloc((2 * nb + W) * sizeof(float));
    int rc = dec && score && lval && scratch ? 0
                                             : nd_error_set(e, -ENOMEM, "calibrate: out of memory");
    /* its own noise, so that what a caller samples does not depend on whether the
     * calibration was stored or fitted just now */
    nd_rng r;
    nd_rng_seed(&r, m->cfg.sample.seed ^ 0xCA11B7A7Eull);
    m->cal_windows = 0; /* image_to_window: uncalibrated while fitting */
    for (uint32_t k = 0; !rc && k < m->meta->n_classes; k++) {
        float *t0 = m->marg + (size_t)k * C * ND_CAL_SLOTS;
        if (!isfinite(t0[0])) { /* no training data for this class: not calibrated */
            for (int j = 0; j < C * ND_CAL_SLOTS; j++) m->cal[k * C * ND_CAL_SLOTS + j] = NAN;
            continue;
        }
        rc = sample_images(m, (int)k, W, NULL, dec, NULL, &r, e);
        for (int c = 0; !rc && c < C; c++) {
            for (size_t w = 0; w < W; w++)
                for (int i = 0; i < L; i++) {
                    const float *v = dec + w * CI * L;
                    float vi = v[c * L + i];
                    score[w * L + i] = activity(g, v, c, i);
                    lval[w * L + i] = log1pf(nd_gaf_unscale(vi, g, &m->scales[k], c));
                }
            size_t slot = ((size_t)k * C + c) * ND_CAL_SLOTS;
            nd_cal_fit(m->cal + slot, m->marg + slot, score, lval, W, L, &r, scratch);
        }
    }
    if (!rc) {
        m->cal_windows = W;
        m->cal_step = m->step;
        cal_key(m, m->cal_key);
    }
    free(dec);
    free(score);
    free(lval);
    free(scratch);
    return rc;
}

void nd_dm_set_stop(nd_dm *m, volatile int *stop) { m->stop = stop; }

int nd_dm_calibrated(const nd_dm *m)
{
    if (!m->cfg.sample.calibrate || !m->cal_windows || !cal_fresh(m)) return 0;
    int n = 0;
    for (uint32_t k = 0; k < m->meta->n_classes; k++)
        n += !isnan(m->cal[(size_t)k * m->gaf.C * ND_CAL_SLOTS]);
    return n;
}

int nd_dm_sample(nd_dm *m, int cls, size_t n, float *x, float *imgs, nd_rng *rng,
                 nd_error *e)
{
    if (cls < 0 || (uint32_t)cls >= m->meta->n_classes)
        return nd_error_set(e, ND_EUSAGE, "sample: class %d out of range", cls);
    int rc = nd_dm_calibrate(m, e);
    return rc ? rc : sample_images(m, cls, n, x, NULL, imgs, rng, e);
}

/* ---- step-level access for online training (live/online.c) -------------------------- */

int nd_dm_train_step(nd_dm *m, const float *x, const int *labels, int B, float *loss,
                     nd_error *e)
{
    ND_ASSERT(B >= 1 && B <= m->max_batch);
    size_t WL = (size_t)m->gaf.C * m->gaf.L;
    size_t img = (size_t)m->uc.channels * m->uc.L * m->uc.L;
    batch_buf b = {0};
    if (batch_alloc(&b, B, img)) {
        batch_free(&b);
        return nd_error_set(e, -ENOMEM, "train: out of memory");
    }
    for (int i = 0; i < B; i++) {
        ND_ASSERT(labels[i] >= 0 && (uint32_t)labels[i] < m->meta->n_classes);
        batch_fill(m, &b, i, x + i * WL, labels[i]);
    }
    float l = batch_step(m, &b, B);
    batch_free(&b);
    if (loss) *loss = l;
    if (!isfinite(l))
        return nd_error_set(e, ND_EFORMAT, "train: loss is %g at step %llu (try a lower "
                            "train.lr)", (double)l, (unsigned long long)m->step);
    return 0;
}

int nd_dm_add_class(nd_dm *m, const char *name, const nd_gaf_scale *s, nd_error *e)
{
    uint32_t K = m->meta->n_classes;
    for (uint32_t k = 0; k < K; k++)
        if (!strcmp(m->meta->class_names[k], name))
            return nd_error_set(e, ND_EUSAGE, "class '%s' is already in the model", name);
    if (K >= (uint32_t)m->uc.max_classes)
        return nd_error_set(e, ND_ECONFIG, "class '%s': all %d class rows of the model are "
                            "in use (model.max_classes)", name, m->uc.max_classes);
    nd_gaf_scale *sc = realloc(m->scales, (K + 1) * sizeof *sc);
    if (!sc) return nd_error_set(e, -ENOMEM, "model: out of memory");
    m->scales = sc;
    if (nd_dataset_class(m->meta, name) != (int)K)
        return nd_error_set(e, ND_EUSAGE, "class '%s': not a valid class name", name);
    m->scales[K] = *s;
    return (int)K;
}

void nd_dm_set_scale(nd_dm *m, int cls, const nd_gaf_scale *s)
{
    ND_ASSERT(cls >= 0 && (uint32_t)cls < m->meta->n_classes);
    m->scales[cls] = *s;
}

nd_dataset *nd_dm_dataset_mut(nd_dm *m) { return m->meta; }

int nd_dm_set_target(nd_dm *m, int cls, const float *x, size_t n)
{
    int C = m->gaf.C, L = m->gaf.L;
    float *scratch = malloc((n * L + 1) * sizeof(float));
    if (!scratch) return -ENOMEM;
    for (int c = 0; c < C; c++)
        nd_cal_target(m->marg + ((size_t)cls * C + c) * ND_CAL_SLOTS, x, n, C, L, c, scratch);
    free(scratch);
    return 0;
}

/* The copy is built like nd_dm_load builds a model, minus the optimiser: the network
 * (nd_unet_new has no inference-only mode, so its gradient and backward scratch come
 * along) holds the EMA weights as its parameters, and ema holds them too, because
 * nd_dm_sample swaps ema into the parameters for the run and back afterwards. Every
 * field nd_dm_sample reads is copied, so both models sample the same windows. */
nd_dm *nd_dm_snapshot(const nd_dm *m, int max_batch, nd_error *e)
{
    ND_ASSERT(max_batch >= 1);
    nd_dm *s = calloc(1, sizeof *s);
    if (!s || nd_config_copy(&s->cfg, &m->cfg)) {
        free(s);
        nd_error_set(e, -ENOMEM, "model: out of memory");
        return NULL;
    }
    s->gaf = m->gaf;
    s->diff = m->diff;
    s->uc = m->uc;
    s->max_batch = max_batch;
    s->step = m->step;
    s->rng = m->rng;
    s->split_seed = m->split_seed;
    uint32_t K = m->meta->n_classes;
    s->meta = header_copy(m->meta, NULL);
    s->scales = malloc(((size_t)K + 1) * sizeof *s->scales);
    s->net = nd_unet_new(&s->uc, max_batch, s->cfg.train.seed); /* weights replaced below */
    s->ctx = nd_ctx_new((int)s->cfg.model.threads);
    size_t n = nd_unet_num_params(m->net);
    s->ema = malloc(n * sizeof(float));
    if (!s->meta || !s->scales || !s->net || !s->ctx || !s->ema) {
        nd_dm_free(s);
        nd_error_set(e, -ENOMEM, "model: out of memory");
        return NULL;
    }
    size_t ncal = (size_t)m->uc.max_classes * m->gaf.C * ND_CAL_SLOTS;
    s->marg = malloc(ncal * sizeof(float));
    s->cal = malloc(ncal * sizeof(float));
    if (!s->marg || !s->cal) {
        nd_dm_free(s);
        nd_error_set(e, -ENOMEM, "model: out of memory");
        return NULL;
    }
    memcpy(s->marg, m->marg, ncal * sizeof(float));
    memcpy(s->cal, m->cal, ncal * sizeof(float));
    s->cal_step = m->cal_step;
    s->cal_windows = m->cal_windows;
    memcpy(s->cal_key, m->cal_key, CAL_KEY);
    memcpy(s->scales, m->scales, K * sizeof *s->scales);
    memcpy(s->ema, m->ema, n * sizeof(float));
    memcpy(nd_unet_params(s->net), m->ema, n * sizeof(float));
    return s;
}
