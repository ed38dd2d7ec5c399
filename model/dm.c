/*
 * dm.c — the class-conditional diffusion model over GAF images as a whole: building it
 * for a dataset, the trainer (class-balanced batches, validation by held-out groups,
 * EMA with warm-up, checkpoints, exact resume), the .ndm model file, and sampling of
 * raw windows through the decoder (decode.c). Used by `netdiffus train`, `sample`,
 * `replay` and `live` (app/, live/).
 *
 * Model file (.ndm, kind NDMD): the dataset's sections without windows (classes,
 * channels, replay statistics, and as CONF the program's config, kept as provenance:
 * nothing here reads it), then
 *   DMCF  u32 record version (2), u32 image channels, L, unet fields (base, levels,
 *         mult[6], res_blocks, attn_min_res, groups, emb_dim, max_classes), T,
 *         prediction, scaling, mask, series channels, schedule, input planes (bit 0:
 *         coordinate planes, bit 1: context planes, bit 2: flow position table, bit 3:
 *         guidance table, a student's (distill.c); 0 in files from before any);
 *         u64 parameter count,
 *         step; u64 rng[4], split seed (version 1 ends here);
 *         training: u64 steps, checkpoint_every, seed; u32 batch, warmup_steps,
 *         ema_warmup, threads; f64 lr, weight_decay, grad_clip, ema_decay,
 *         class_dropout, val_fraction;
 *         sampling: u32 sampler, steps, clip, project, decode, calibrate, batch, 0;
 *         u64 seed; f64 guidance, eta
 *   SCAL  per class, per channel: f32 lo, f32 hi (log1p of min non-zero and of max)
 *   PARM  f32 × n   parameters (the trained weights)
 *   EMAW  f32 × n   their EMA (what sampling uses)
 *   ADAM  f32 × 2n  AdamW first then second moments
 *   DECO  the decoder's targets and maps (decode.c; older files: MARG and CALB), and a
 *         DECA for each set of maps fitted for other sampling settings
 *   DIST, TCHW  a distilled student's distillation and its round's teacher (distill.c)
 * All little-endian. Resuming needs DMCF to ADAM; sampling only DMCF, SCAL and EMAW
 * (DECO for a calibrated decode; files without it decode uncalibrated). Files of record
 * version 1 keep their training and sampling settings in CONF only: the program reads
 * them (nd_dm_legacy_fn).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "model.h"

#define TAG_DMCF      ND_FOURCC('D', 'M', 'C', 'F')
#define TAG_SCAL      ND_FOURCC('S', 'C', 'A', 'L')
#define TAG_PARM      ND_FOURCC('P', 'A', 'R', 'M')
#define TAG_EMAW      ND_FOURCC('E', 'M', 'A', 'W')
#define TAG_ADAM      ND_FOURCC('A', 'D', 'A', 'M')
#define DMCF_VERSION  2
#define DMCF_U32      23 /* u32 fields of the part version 1 has */
#define POS_ROWS      7  /* a flow position table's rows (position_row) */
#define DMCF_V1_BYTES (DMCF_U32 * 4 + 7 * 8)
#define DMCF_BYTES    (DMCF_V1_BYTES + 88 + 56) /* + training, sampling */

/* ds's header without windows; its config text replaced by provenance unless NULL. */
static nd_dataset *header_copy(const nd_dataset *ds, const char *provenance)
{
    nd_dataset *h = nd_dataset_new_like(ds);
    if (!h) return NULL;
    for (uint32_t k = 0; k < ds->n_counters; k++)
        if (nd_dataset_count(h, ds->counters[k].name, ds->counters[k].value)) goto fail;
    if (nd_dataset_set_config(h, provenance ? provenance : ds->config_yaml)) goto fail;
    return h;
fail:
    nd_dataset_free(h);
    return NULL;
}

/* One setting and its bounds. */
typedef struct bound {
    const char *name; /* the config key */
    double v, lo, hi;
} bound;

/* 0, or -1 with why naming the first of n settings that is out of its bounds (or NaN). */
static int out_of_bounds(const bound *b, size_t n, char *why, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (!(b[i].v >= b[i].lo && b[i].v <= b[i].hi)) {
            snprintf(why, len, "%s %.10g out of range %.10g..%.10g", b[i].name, b[i].v, b[i].lo,
                     b[i].hi);
            return -1;
        }
    return 0;
}

/* 0, or -1 with why saying which sampling setting is out of its bounds (the config's). */
static int sampling_problem(const nd_dm_sampling *s, char *why, size_t len)
{
    const bound b[] = {
        {"sample.sampler", s->sampler, 0, ND_SAMPLER_DPMPP},
        {"sample.clip", s->clip, 0, ND_CLIP_NONE},
        {"sample.project", s->project, 0, 1},
        {"model.decode", s->decode, 0, ND_GAF_DIAG},
        {"sample.steps", s->steps, 1, ND_DIFF_MAX_T},
        {"sample.batch", s->batch, 1, ND_DM_MAX_BATCH},
        {"sample.calibrate", s->calibrate, 0, ND_DM_MAX_CALIBRATE},
        {"sample.guidance", s->guidance, 0, 100},
        {"sample.eta", s->eta, 0, 1},
    };
    return out_of_bounds(b, sizeof b / sizeof b[0], why, len);
}

/* The same for the settings that do not go through nd_unet_config_check or
 * nd_diffusion_init. */
static int settings_problem(const nd_dm_settings *s, char *why, size_t len)
{
    const nd_dm_training *t = &s->train;
    const bound b[] = {
        {"model.scaling", s->scaling, 0, ND_GAF_HEADROOM},
        {"model.mask", s->mask, 0, 1},
        {"model.prediction", s->pred, 0, ND_PRED_V},
        {"model.schedule", s->schedule, 0, ND_SCHEDULE_LINEAR},
        {"model.threads", t->threads, 0, ND_DM_MAX_THREADS},
        {"train.batch", t->batch, 1, ND_DM_MAX_BATCH},
        {"train.lr", t->lr, 1e-8, 1},
        {"train.weight_decay", t->weight_decay, 0, 1},
        {"train.grad_clip", t->grad_clip, 0, 1e6},
        {"train.ema_decay", t->ema_decay, 0, 1},
        {"train.ema_warmup", t->ema_warmup, 0, 1},
        {"train.class_dropout", t->class_dropout, 0, 1},
        {"train.val_fraction", t->val_fraction, 0, 0.5},
    };
    if (out_of_bounds(b, sizeof b / sizeof b[0], why, len)) return -1;
    return sampling_problem(&s->sample, why, len);
}

/* The largest batch for max_batch (nd_dm_load's). A rank of an MPI run trains on its
 * part of every batch only. */
static int batch_for(const nd_dm_settings *s, int max_batch)
{
    int N = nd_mpi_ranks();
    return max_batch == ND_DM_BATCH_TRAIN    ? ((int)s->train.batch + N - 1) / N
           : max_batch == ND_DM_BATCH_SAMPLE ? 2 * (int)s->sample.batch
                                             : max_batch;
}

/* Allocates network, context, optimiser and decoder for m->s (weights from the seed). */
static int dm_build(nd_dm *m, int max_batch, nd_error *e)
{
    const nd_dm_training *t = &m->s.train;
    m->max_batch = batch_for(&m->s, max_batch);
    ND_ASSERT(m->max_batch >= 1);
    m->net = nd_unet_new(&m->s.net, m->max_batch, t->seed);
    m->ctx = nd_ctx_new(nd_mpi_threads((int)t->threads));
    if (!m->net || !m->ctx) return nd_error_set(e, -ENOMEM, "model: out of memory");
    size_t n = nd_unet_num_params(m->net);
    nd_adamw_config oc = {
        .lr = (float)t->lr,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = (float)t->weight_decay,
        .grad_clip = (float)t->grad_clip,
        .warmup = t->warmup_steps,
        .ema_decay = 0.0f, /* the EMA is kept here (warm-up) */
    };
    m->opt = nd_adamw_new(&oc, n, nd_unet_params(m->net));
    m->ema = malloc(n * sizeof(float));
    m->dec = nd_decoder_new(m->s.net.max_classes, m->gaf.C, m->gaf.L);
    if (m->s.net.cond)
        m->cond =
            malloc((size_t)m->max_batch * m->s.net.cond * m->gaf.L * m->gaf.L * sizeof(float));
    if (m->s.net.pos_rows) m->pos = calloc((size_t)m->max_batch, sizeof *m->pos);
    if (!m->opt || !m->ema || !m->dec || (m->s.net.cond && !m->cond) ||
        (m->s.net.pos_rows && !m->pos))
        return nd_error_set(e, -ENOMEM, "model: out of memory");
    memcpy(m->ema, nd_unet_params(m->net), n * sizeof(float));
    return 0;
}

int nd_dm_add_guide_table(nd_dm *m, nd_error *e)
{
    nd_unet_config u = m->s.net;
    u.guide_rows = ND_DM_GUIDE_ROWS;
    nd_unet *net = nd_unet_new(&u, m->max_batch, m->s.train.seed);
    size_t n0 = nd_unet_num_params(m->net), n = net ? nd_unet_num_params(net) : 0;
    float *ema = net ? malloc(n * sizeof(float)) : NULL;
    if (!ema) {
        nd_unet_free(net);
        return nd_error_set(e, -ENOMEM, "model: out of memory");
    }
    /* the old block is a prefix of the new one, whose table is zero */
    memcpy(ema, m->ema, n0 * sizeof(float));
    memset(ema + n0, 0, (n - n0) * sizeof(float));
    memcpy(nd_unet_params(net), ema, n * sizeof(float));
    nd_unet_free(m->net);
    free(m->ema);
    m->net = net;
    m->ema = ema;
    m->s.net = u;
    return 0;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Held-out groups of the model's split of a dataset: 1 if held out. */
static int is_val_group(const nd_dm *m, uint64_t group)
{
    double u = (double)(mix64(group * 0x9E3779B97F4A7C15ull ^ m->split_seed) >> 11) * 0x1.0p-53;
    return u < m->s.train.val_fraction;
}

/* The decoder's targets of every class of ds from its training part, as the scales: the
 * same data every time, so measuring them again on a resume changes nothing. */
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
            if (ds->labels[w] == k && !is_val_group(m, ds->groups[w]))
                memcpy(buf + n++ * WL, ds->values + w * WL, WL * sizeof(float));
        for (int c = 0; c < C; c++)
            nd_decoder_target_measure(nd_decoder_target_at(m->dec, (int)k, c), buf, n, C, L, c,
                                      scratch);
    }
    free(buf);
    free(scratch);
    return 0;
}

nd_dm *nd_dm_new(const nd_dm_settings *s, const nd_dataset *ds, const char *provenance,
                 nd_error *e)
{
    nd_dm *m = calloc(1, sizeof *m);
    if (!m) {
        nd_error_set(e, -ENOMEM, "model: out of memory");
        return NULL;
    }
    m->s = *s;
    int C = (int)ds->n_channels, L = (int)ds->L;
    char why[128];
    if (settings_problem(s, why, sizeof why)) {
        nd_error_set(e, ND_ECONFIG, "model settings: %s", why);
        goto fail;
    }
    if (ds->n_classes == 0 || ds->n_windows == 0) {
        nd_error_set(e, ND_EFORMAT, "dataset has no windows to learn from");
        goto fail;
    }
    if (ds->n_classes > (uint32_t)s->net.max_classes) {
        nd_error_set(e, ND_ECONFIG, "model.max_classes: %d, but the dataset has %u classes",
                     s->net.max_classes, ds->n_classes);
        goto fail;
    }
    if (L > ND_MODEL_MAX_L) {
        nd_error_set(e, ND_ECONFIG, "capture.window: %d bins; the GAF model takes at most %d",
                     L, ND_MODEL_MAX_L);
        goto fail;
    }
    m->gaf = (nd_gaf_spec){
        .C = C, .L = L, .scaling = s->scaling, .mask = s->mask, .decode = s->sample.decode};
    m->s.net.channels = nd_gaf_channels(&m->gaf);
    m->s.net.L = L;
    m->s.net.cond = s->context ? m->s.net.channels + 1 : 0;
    m->s.net.pos_rows = s->context && s->flow_position ? POS_ROWS : 0;
    if (nd_diffusion_init(&m->diff, (int)s->timesteps, s->schedule, s->pred, e) ||
        nd_unet_config_check(&m->s.net, e))
        goto fail;
    m->meta = header_copy(ds, provenance);
    m->scales = calloc(ds->n_classes, sizeof *m->scales);
    if (!m->meta || !m->scales) {
        nd_error_set(e, -ENOMEM, "model: out of memory");
        goto fail;
    }
    m->split_seed = mix64(s->train.seed + 0x5EED);
    nd_rng_seed(&m->rng, s->train.seed);
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
            if (ds->labels[w] == k && !is_val_group(m, ds->groups[w]))
                memcpy(buf + n++ * WL, ds->values + w * WL, WL * sizeof(float));
        nd_gaf_fit_scale(&m->scales[k], buf, n, C, L);
    }
    free(buf);
    if (dm_build(m, ND_DM_BATCH_TRAIN, e) || fit_targets(m, ds, e)) goto fail;
    return m;
fail:
    nd_dm_free(m);
    return NULL;
}

/* What m owns, not m itself. */
static void dm_free_parts(nd_dm *m)
{
    nd_distill_free(m->dist);
    nd_unet_free(m->net);
    nd_ctx_free(m->ctx);
    nd_adamw_free(m->opt);
    free(m->ema);
    free(m->cond);
    free(m->pos);
    nd_decoder_free(m->dec);
    free(m->scales);
    nd_dataset_free(m->meta);
}

void nd_dm_free(nd_dm *m)
{
    if (!m) return;
    dm_free_parts(m);
    free(m);
}

const nd_dm_settings *nd_dm_get_settings(const nd_dm *m) { return &m->s; }
const nd_dataset *nd_dm_dataset(const nd_dm *m) { return m->meta; }
const nd_gaf_spec *nd_dm_gaf(const nd_dm *m) { return &m->gaf; }
const nd_gaf_scale *nd_dm_scale(const nd_dm *m, int cls) { return &m->scales[cls]; }
nd_unet *nd_dm_unet(nd_dm *m) { return m->net; }
const float *nd_dm_ema(const nd_dm *m) { return m->ema; }
uint64_t nd_dm_step(const nd_dm *m) { return m->step; }

int nd_dm_set_sampling(nd_dm *m, const nd_dm_sampling *s, nd_error *e)
{
    char why[128];
    if (sampling_problem(s, why, sizeof why))
        return nd_error_set(e, ND_ECONFIG, "sampling settings: %s", why);
    m->s.sample = *s;
    m->gaf.decode = s->decode;
    /* maps fitted for these settings before (this run, or stored in the file) */
    nd_decoder_key now;
    nd_decoder_key_of(&now, s, m->step);
    if (now.windows && !nd_decoder_key_equal(&m->dec->key, &now))
        nd_decoder_recall(m->dec, &now);
    return 0;
}

/* ---- model file -------------------------------------------------------------------- */

/* Section tag: n floats. */
int nd_write_floats(ndf_writer *w, uint32_t tag, const float *v, size_t n, nd_error *e)
{
    unsigned char buf[4096 * 4];
    int rc = ndf_section_begin(w, tag, e);
    for (size_t i = 0; !rc && i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < k; j++) nd_put_f32(buf + 4 * j, v[i + j]);
        rc = ndf_section_write(w, buf, 4 * k, e);
    }
    return rc ? rc : ndf_section_end(w, e);
}

int nd_read_floats(const ndf_reader *r, uint32_t tag, float *v, size_t n, nd_error *e)
{
    const void *data;
    size_t len;
    int rc = ndf_find(r, tag, &data, &len, e);
    if (rc) return rc;
    char t[5];
    ndf_tag_str(tag, t);
    if (len != 4 * n)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section %s holds %zu bytes, expected %zu "
                            "(%zu floats)",
                            ndf_path(r), t, len, 4 * n, n);
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) v[i] = nd_get_f32(p + 4 * i);
    return 0;
}

/* The DMCF record of m (DMCF_BYTES). */
static void dmcf_encode(const nd_dm *m, unsigned char *rec)
{
    const nd_dm_settings *s = &m->s;
    const nd_unet_config *u = &s->net;
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
    f[21] = (uint32_t)s->schedule;
    f[22] = (uint32_t)u->coords | (s->context ? 2u : 0u) | (s->flow_position ? 4u : 0u) |
            (u->guide_rows ? 8u : 0u);
    unsigned char *p = rec;
    for (int i = 0; i < DMCF_U32; i++) p = nd_rec_put_u32(p, f[i]);
    p = nd_rec_put_u64(p, nd_unet_num_params(m->net));
    p = nd_rec_put_u64(p, m->step);
    for (int i = 0; i < 4; i++) p = nd_rec_put_u64(p, m->rng.s[i]);
    p = nd_rec_put_u64(p, m->split_seed);
    const nd_dm_training *t = &s->train;
    uint64_t t64[] = {t->steps, t->checkpoint_every, t->seed};
    uint32_t t32[] = {t->batch, t->warmup_steps, (uint32_t)t->ema_warmup, t->threads};
    double tf[] = {t->lr,        t->weight_decay,  t->grad_clip,
                   t->ema_decay, t->class_dropout, t->val_fraction};
    for (int i = 0; i < 3; i++) p = nd_rec_put_u64(p, t64[i]);
    for (int i = 0; i < 4; i++) p = nd_rec_put_u32(p, t32[i]);
    for (int i = 0; i < 6; i++) p = nd_rec_put_f64(p, tf[i]);
    const nd_dm_sampling *q = &s->sample;
    uint32_t q32[] = {
        (uint32_t)q->sampler, q->steps,     (uint32_t)q->clip, (uint32_t)q->project,
        (uint32_t)q->decode,  q->calibrate, q->batch,          0};
    for (int i = 0; i < 8; i++) p = nd_rec_put_u32(p, q32[i]);
    p = nd_rec_put_u64(p, q->seed);
    p = nd_rec_put_f64(p, q->guidance);
    p = nd_rec_put_f64(p, q->eta);
    ND_ASSERT(p - rec == DMCF_BYTES);
}

/* Training and sampling settings from the part of a DMCF record that version 2 added. */
static void dmcf_decode_settings(nd_dm_settings *s, const unsigned char *p)
{
    nd_dm_training *t = &s->train;
    t->steps = nd_rec_u64(&p);
    t->checkpoint_every = nd_rec_u64(&p);
    t->seed = nd_rec_u64(&p);
    t->batch = nd_rec_u32(&p);
    t->warmup_steps = nd_rec_u32(&p);
    t->ema_warmup = (int)nd_rec_u32(&p);
    t->threads = nd_rec_u32(&p);
    t->lr = nd_rec_f64(&p);
    t->weight_decay = nd_rec_f64(&p);
    t->grad_clip = nd_rec_f64(&p);
    t->ema_decay = nd_rec_f64(&p);
    t->class_dropout = nd_rec_f64(&p);
    t->val_fraction = nd_rec_f64(&p);
    nd_dm_sampling *q = &s->sample;
    q->sampler = (int)nd_rec_u32(&p);
    q->steps = nd_rec_u32(&p);
    q->clip = (int)nd_rec_u32(&p);
    q->project = (int)nd_rec_u32(&p);
    q->decode = (int)nd_rec_u32(&p);
    q->calibrate = nd_rec_u32(&p);
    q->batch = nd_rec_u32(&p);
    p += 4;
    q->seed = nd_rec_u64(&p);
    q->guidance = nd_rec_f64(&p);
    q->eta = nd_rec_f64(&p);
}

/* DMCF's record version, or an error when the section is missing or its length is not
 * that version's. */
static int dmcf_version(const ndf_reader *r, const unsigned char **rec, nd_error *e)
{
    const void *data;
    size_t len;
    if (ndf_find(r, TAG_DMCF, &data, &len, e)) return e ? e->code : ND_EFORMAT;
    *rec = data;
    uint32_t v = len >= 4 ? nd_get_u32(*rec) : 0;
    if (v > DMCF_VERSION)
        return nd_error_set(e, ND_EVERSION,
                            "%s: model record version %u, this build reads "
                            "up to %d",
                            ndf_path(r), v, DMCF_VERSION);
    size_t want = v == 1 ? DMCF_V1_BYTES : DMCF_BYTES;
    if (len != want)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DMCF holds %zu bytes, expected %zu "
                            "(not a model of this version)",
                            ndf_path(r), len, want);
    return (int)v;
}

int nd_dm_save(nd_dm *m, const char *path, nd_error *e)
{
    return nd_dm_save_with(m, path, NULL, NULL, e);
}

int nd_dm_save_with(nd_dm *m, const char *path, nd_dm_extra_fn extra, void *arg, nd_error *e)
{
    ndf_writer *w = ndf_writer_open(path, NDF_KIND_MODEL, e);
    if (!w) return e ? e->code : -EIO;
    int rc = nd_dataset_write_sections(m->meta, w, 0, e);
    unsigned char rec[DMCF_BYTES];
    dmcf_encode(m, rec);
    if (!rc) rc = ndf_write_section(w, TAG_DMCF, rec, sizeof rec, e);
    size_t n = nd_unet_num_params(m->net), ns = (size_t)m->meta->n_classes * m->gaf.C * 2;
    float *sc = malloc((ns + 1) * sizeof(float));
    if (!sc && !rc) rc = nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    if (!rc) {
        for (uint32_t k = 0; k < m->meta->n_classes; k++)
            for (int c = 0; c < m->gaf.C; c++) {
                sc[(k * m->gaf.C + c) * 2] = m->scales[k].lo[c];
                sc[(k * m->gaf.C + c) * 2 + 1] = m->scales[k].hi[c];
            }
        rc = nd_write_floats(w, TAG_SCAL, sc, ns, e);
    }
    free(sc);
    if (!rc) rc = nd_write_floats(w, TAG_PARM, nd_unet_params(m->net), n, e);
    if (!rc) rc = nd_write_floats(w, TAG_EMAW, m->ema, n, e);
    if (!rc) rc = nd_write_floats(w, TAG_ADAM, nd_adamw_moments(m->opt), 2 * n, e);
    if (!rc) rc = nd_decoder_write(m->dec, m->meta->n_classes, w, e);
    if (!rc) rc = nd_distill_write(m, w, e);
    if (!rc && extra) rc = extra(w, arg, e);
    if (rc) {
        ndf_writer_abort(w);
        return rc;
    }
    return ndf_writer_commit(w, e);
}

/* The u32 fields of a DMCF record, for messages. */
static const char *const dmcf_u32_name[DMCF_U32] = {"record version",
                                                    "image channels",
                                                    "L",
                                                    "base",
                                                    "levels",
                                                    "mult[0]",
                                                    "mult[1]",
                                                    "mult[2]",
                                                    "mult[3]",
                                                    "mult[4]",
                                                    "mult[5]",
                                                    "res_blocks",
                                                    "attn_min_res",
                                                    "groups",
                                                    "emb_dim",
                                                    "max_classes",
                                                    "T",
                                                    "prediction",
                                                    "scaling",
                                                    "mask",
                                                    "series channels",
                                                    "schedule",
                                                    "input planes"};

/* The network and diffusion fields of a DMCF record (*p: its start, advanced past the
 * parameter count) into s and gaf (decode: left as it was), each held to its bounds and
 * to the file's other sections before anything is sized by them: the channels, bins and
 * classes of meta, and the parameter count the network implies against the stored one
 * and against the lengths of PARM, EMAW and ADAM, so that a small file never makes a
 * large allocation. *n: the stored parameter count. */
static int read_net(const ndf_reader *r, const nd_dataset *meta, const unsigned char **p,
                    nd_dm_settings *s, nd_gaf_spec *gaf, uint64_t *n, nd_error *e)
{
    const char *path = ndf_path(r);
    uint32_t f[DMCF_U32];
    for (int i = 0; i < DMCF_U32; i++) f[i] = nd_rec_u32(p);
    *n = nd_rec_u64(p);
    if (f[22] > 15)
        return nd_error_set(e, ND_EVERSION,
                            "%s: section DMCF: input-plane setting %u unknown to this "
                            "build (a newer build's model?)",
                            path, f[22]);
    if ((f[22] & 6) == 4) /* no build writes a position table without context planes */
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DMCF: input-plane setting %u: a flow position "
                            "table without context planes",
                            path, f[22]);
    for (int i = 1; i < DMCF_U32; i++)
        if (f[i] > INT32_MAX)
            return nd_error_set(e, ND_EFORMAT, "%s: section DMCF: %s %u out of range", path,
                                dmcf_u32_name[i], f[i]);
    nd_unet_config *u = &s->net;
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
    u->coords = (int)(f[22] & 1);
    s->context = (int)(f[22] >> 1 & 1);
    s->flow_position = (int)(f[22] >> 2 & 1);
    u->cond = s->context ? u->channels + 1 : 0;
    u->pos_rows = s->flow_position ? POS_ROWS : 0;
    u->guide_rows = f[22] & 8 ? ND_DM_GUIDE_ROWS : 0;
    s->timesteps = f[16];
    s->pred = (int)f[17];
    s->scaling = (int)f[18];
    s->mask = (int)f[19];
    s->schedule = (int)f[21];
    *gaf = (nd_gaf_spec){.C = (int)f[20],
                         .L = u->L,
                         .scaling = s->scaling,
                         .mask = s->mask,
                         .decode = gaf->decode};
    if (f[20] != meta->n_channels)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DMCF: series channels %u, section META has %u", path,
                            f[20], meta->n_channels);
    if (f[2] != meta->L)
        return nd_error_set(e, ND_EFORMAT, "%s: section DMCF: L %u, section META has %u bins",
                            path, f[2], meta->L);
    if (f[2] > ND_MODEL_MAX_L)
        return nd_error_set(e, ND_EFORMAT, "%s: section DMCF: L %u, at most %d", path, f[2],
                            ND_MODEL_MAX_L);
    if (f[16] < 2 || f[16] > ND_DIFF_MAX_T)
        return nd_error_set(e, ND_EFORMAT, "%s: section DMCF: T %u out of range 2..%d", path,
                            f[16], ND_DIFF_MAX_T);
    if (f[19] > 1)
        return nd_error_set(e, ND_EFORMAT, "%s: section DMCF: mask %u out of range 0..1", path,
                            f[19]);
    if (nd_gaf_channels(gaf) != u->channels)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DMCF: image channels %d, its %d series channels%s "
                            "make %d",
                            path, u->channels, gaf->C, gaf->mask ? " with masks" : "",
                            nd_gaf_channels(gaf));
    if (meta->n_classes > f[15])
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DMCF: max_classes %u, but section CLAS has %u classes",
                            path, f[15], meta->n_classes);
    nd_error ue = {0};
    if (nd_unet_config_check(u, &ue))
        return nd_error_set(e, ND_EFORMAT, "%s: section DMCF: %s", path, ue.msg);
    size_t np = nd_unet_config_params(u);
    if (!np) return nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    if (*n != np)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: section DMCF: parameter count %llu, the network it describes "
                            "has %zu",
                            path, (unsigned long long)*n, np);
    const struct {
        uint32_t tag;
        uint64_t floats;
    } blocks[] = {{TAG_PARM, np}, {TAG_EMAW, np}, {TAG_ADAM, 2 * (uint64_t)np}};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        const void *data;
        size_t len;
        int rc = ndf_find(r, blocks[i].tag, &data, &len, e);
        if (rc) return rc;
        char t[5];
        ndf_tag_str(blocks[i].tag, t);
        if (len != 4 * blocks[i].floats)
            return nd_error_set(e, ND_EFORMAT,
                                "%s: section %s holds %zu bytes, the %zu parameters of "
                                "section DMCF take %llu",
                                path, t, len, np, (unsigned long long)(4 * blocks[i].floats));
    }
    return 0;
}

/* ND_EFORMAT naming the setting of s out of its bounds, or 0. */
static int check_settings(const nd_dm_settings *s, const char *path, nd_error *e)
{
    char why[128];
    if (settings_problem(s, why, sizeof why))
        return nd_error_set(e, ND_EFORMAT, "%s: section DMCF: %s", path, why);
    return 0;
}

/* m's settings, step, RNG and split seed from DMCF (version 1: training and sampling
 * settings from legacy), its GAF spec and schedule; *n the stored parameter count. Every
 * field is checked (read_net, check_settings) before dm_build sizes memory by it. */
static int read_dmcf(nd_dm *m, const ndf_reader *r, nd_dm_legacy_fn legacy, uint64_t *n,
                     nd_error *e)
{
    const char *path = ndf_path(r);
    const unsigned char *p;
    int v = dmcf_version(r, &p, e);
    if (v < 0) return v;
    int rc = read_net(r, m->meta, &p, &m->s, &m->gaf, n, e);
    if (rc) return rc;
    m->step = nd_rec_u64(&p);
    for (int i = 0; i < 4; i++) m->rng.s[i] = nd_rec_u64(&p);
    m->split_seed = nd_rec_u64(&p);
    if (v >= 2) {
        dmcf_decode_settings(&m->s, p);
    } else {
        nd_dm_settings old;
        const char *yaml = m->meta->config_yaml ? m->meta->config_yaml : "";
        if (!legacy)
            return nd_error_set(e, ND_EVERSION,
                                "%s: model record version 1 keeps its "
                                "settings in its embedded config only, which this program "
                                "does not read",
                                path);
        memset(&old, 0, sizeof old);
        rc = legacy(&old, yaml, path, e);
        if (rc) return rc;
        m->s.train = old.train;
        m->s.sample = old.sample;
    }
    m->gaf.decode = m->s.sample.decode;
    if ((rc = check_settings(&m->s, path, e))) return rc;
    return nd_diffusion_init(&m->diff, (int)m->s.timesteps, m->s.schedule, m->s.pred, e);
}

/* The class scales (SCAL). */
static int read_scales(nd_dm *m, const ndf_reader *r, nd_error *e)
{
    uint32_t K = m->meta->n_classes;
    int C = m->gaf.C;
    size_t ns = (size_t)K * C * 2;
    m->scales = calloc(K + 1, sizeof *m->scales);
    float *sc = malloc((ns + 1) * sizeof(float));
    int rc = !m->scales || !sc ? nd_error_set(e, -ENOMEM, "%s: out of memory", ndf_path(r))
                               : nd_read_floats(r, TAG_SCAL, sc, ns, e);
    for (uint32_t k = 0; !rc && k < K; k++)
        for (int c = 0; c < C; c++) {
            m->scales[k].lo[c] = sc[(k * C + c) * 2];
            m->scales[k].hi[c] = sc[(k * C + c) * 2 + 1];
            float lo = m->scales[k].lo[c], hi = m->scales[k].hi[c];
            /* log1p of bytes in float32: decoding takes expm1 of values up to hi */
            if (!(lo >= 0.0f && lo <= hi && hi <= ND_GAF_MAX_LOG))
                rc = nd_error_set(e, ND_EFORMAT,
                                  "%s: section SCAL: class '%s' channel %s: lo %g, hi %g, "
                                  "expected 0 <= lo <= hi <= %g",
                                  ndf_path(r), m->meta->class_names[k],
                                  m->meta->channel_names[c], (double)lo, (double)hi,
                                  (double)ND_GAF_MAX_LOG);
        }
    free(sc);
    return rc;
}

nd_dm *nd_dm_load(const char *path, int max_batch, nd_dm_legacy_fn legacy, nd_error *e)
{
    ndf_reader *r = ndf_open(path, NDF_KIND_MODEL, e);
    if (!r) return NULL;
    nd_dm *m = calloc(1, sizeof *m);
    uint64_t n = 0;
    int rc = m ? 0 : nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    if (!rc && !(m->meta = nd_dataset_from_container(r, e))) rc = e ? e->code : ND_EFORMAT;
    if (!rc) rc = read_dmcf(m, r, legacy, &n, e);
    if (!rc) rc = dm_build(m, max_batch, e);
    if (!rc) rc = read_scales(m, r, e);
    if (!rc) rc = nd_read_floats(r, TAG_PARM, nd_unet_params(m->net), n, e);
    if (!rc) rc = nd_read_floats(r, TAG_EMAW, m->ema, n, e);
    if (!rc) rc = nd_read_floats(r, TAG_ADAM, nd_adamw_moments(m->opt), 2 * n, e);
    if (!rc) rc = nd_decoder_read(m->dec, m->meta->n_classes, r, e);
    if (!rc) nd_adamw_set_steps(m->opt, m->step);
    if (!rc) rc = nd_distill_read(m, r, e); /* a student's optimiser counts its round */
    /* (a DIST that does not match the table is nd_distill_read's to refuse) */
    if (!rc && m->s.net.guide_rows && !m->dist)
        rc = nd_error_set(e, ND_EFORMAT,
                          "%s: section DMCF: a guidance table without a distillation that "
                          "gives the guidance as an input (section DIST)",
                          path);
    ndf_close(r);
    if (rc) {
        nd_dm_free(m);
        return NULL;
    }
    return m;
}

int nd_dm_inspect(const ndf_reader *r, FILE *out, nd_json *js, nd_error *e)
{
    const unsigned char *p;
    int v = dmcf_version(r, &p, e);
    if (v < 0) return v;
    /* the checks of nd_dm_load, short of the settings of a version 1 record (which only
     * the program's config reader gives), on a model without a network */
    nd_dm t = {.meta = nd_dataset_from_container(r, e)};
    if (!t.meta) return e ? e->code : ND_EFORMAT;
    const nd_dataset *h = t.meta;
    uint64_t n;
    const unsigned char *q = p;
    int rc = read_net(r, h, &q, &t.s, &t.gaf, &n, e);
    if (!rc && v >= 2) {
        dmcf_decode_settings(&t.s, q + 6 * 8); /* past step, rng, split seed */
        rc = check_settings(&t.s, ndf_path(r), e);
    }
    if (!rc) rc = read_scales(&t, r, e);
    if (!rc && !(t.dec = nd_decoder_new((int)h->n_classes, t.gaf.C, t.gaf.L)))
        rc = nd_error_set(e, -ENOMEM, "%s: out of memory", ndf_path(r));
    if (!rc) rc = nd_decoder_read(t.dec, h->n_classes, r, e);
    if (rc) {
        dm_free_parts(&t);
        return rc;
    }
    uint32_t f[DMCF_U32];
    for (int i = 0; i < DMCF_U32; i++) f[i] = nd_get_u32(p + 4 * i);
    const char *sched = f[21] ? "linear" : "cosine", *pred = f[17] ? "v" : "eps",
               *scaling = f[18] == 1   ? "log"
                          : f[18] == 2 ? "headroom"
                                       : "zero-aware";
    uint64_t steps = nd_get_u64(p + 4 * DMCF_U32 + 8), params = nd_get_u64(p + 4 * DMCF_U32);
    const void *sd;
    size_t sl;
    const unsigned char *scal =
        !ndf_find(r, TAG_SCAL, &sd, &sl, NULL) && sl == (size_t)8 * f[20] * h->n_classes ? sd
                                                                                         : NULL;
    if (out) {
        fprintf(out, "model: unet-ref, %u image channels (%u series%s), %ux%u, base %u, mult (",
                f[1], f[20], f[19] ? " + activity masks" : "", f[2], f[2], f[3]);
        for (uint32_t l = 0; l < f[4] && l < ND_UNET_MAX_LEVELS; l++)
            fprintf(out, "%s%u", l ? "," : "", f[5 + l]);
        fprintf(out, "), %u ResBlocks/level, attention <= %u px, %u class rows%s%s%s%s\n",
                f[11], f[12], f[15], f[22] & 1 ? ", coordinate planes" : "",
                f[22] & 2 ? ", context planes" : "", f[22] & 4 ? ", flow position table" : "",
                f[22] & 8 ? ", guidance table" : "");
        fprintf(out, "diffusion: T %u, %s schedule, %s-prediction, %s scaling\n", f[16], sched,
                pred, scaling);
        fprintf(out, "training: %llu steps, %llu parameters (+ EMA, Adam moments)\n",
                (unsigned long long)steps, (unsigned long long)params);
        if (v == 1)
            fprintf(out, "settings: model record version 1 (training and sampling settings in "
                         "the embedded config)\n");
        nd_decoder_inspect(r, out);
        nd_distill_inspect(r, out, NULL);
        if (scal) fprintf(out, "class scales (bytes per bin, smallest non-zero..largest):\n");
        for (size_t k = 0; scal && k < h->n_classes; k++) {
            fprintf(out, "  %-24s", h->class_names[k]);
            for (uint32_t c = 0; c < f[20]; c++)
                fprintf(out, " %s %.0f..%.0f", h->channel_names[c],
                        expm1(nd_get_f32(scal + ((k * f[20] + c) * 2) * 4)),
                        expm1(nd_get_f32(scal + ((k * f[20] + c) * 2 + 1) * 4)));
            fputc('\n', out);
        }
    }
    nd_json *mj = nd_json_obj(js, "model");
    nd_json_u64(mj, "record_version", (uint64_t)v);
    nd_json_u64(mj, "image_channels", f[1]);
    nd_json_u64(mj, "series_channels", f[20]);
    nd_json_bool(mj, "activity_masks", f[19]);
    nd_json_u64(mj, "image_size", f[2]);
    nd_json_u64(mj, "base_channels", f[3]);
    nd_json *mult = nd_json_arr(mj, "mult");
    for (uint32_t l = 0; l < f[4] && l < ND_UNET_MAX_LEVELS; l++)
        nd_json_u64(mult, NULL, f[5 + l]);
    nd_json_u64(mj, "res_blocks", f[11]);
    nd_json_u64(mj, "attention_px", f[12]);
    nd_json_u64(mj, "class_rows", f[15]);
    nd_json_bool(mj, "coordinate_planes", f[22] & 1);
    nd_json_bool(mj, "context_planes", f[22] & 2);
    nd_json_bool(mj, "flow_position", f[22] & 4);
    nd_json_bool(mj, "guidance_input", f[22] & 8);
    nd_json_u64(mj, "timesteps", f[16]);
    nd_json_str(mj, "schedule", sched);
    nd_json_str(mj, "prediction", pred);
    nd_json_str(mj, "scaling", scaling);
    nd_json_u64(mj, "steps", steps);
    nd_json_u64(mj, "parameters", params);
    nd_distill_inspect(r, NULL, mj);
    nd_json *sc = scal ? nd_json_obj(mj, "class_scales") : NULL;
    for (size_t k = 0; sc && k < h->n_classes; k++) {
        nd_json *cj = nd_json_obj(sc, h->class_names[k]);
        for (uint32_t c = 0; c < f[20]; c++) {
            nd_json *r2 = nd_json_arr(cj, h->channel_names[c]);
            nd_json_num(r2, NULL, expm1(nd_get_f32(scal + ((k * f[20] + c) * 2) * 4)));
            nd_json_num(r2, NULL, expm1(nd_get_f32(scal + ((k * f[20] + c) * 2 + 1) * 4)));
        }
    }
    dm_free_parts(&t);
    return 0;
}

/* ---- context planes ---------------------------------------------------------------- */

/* The GASF pixel of two bins a and b (the model's values in [0, 1]): cos(φa + φb). */
static float gasf_px(float a, float b)
{
    return a * b - sqrtf(1.0f - a * a) * sqrtf(1.0f - b * b);
}

/* Where in its flow an image's window starts, as a row of the network's position table:
 * 0 for s < 0 (not known: any window of the class), else by u = s/L, the windows from
 * the flow's first bin to the window's: row 1 for u < 1/2 (the flow's start), then a row
 * per doubling, 1 + ⌊log2(1 + 2u)⌋, up to the last (u ≥ 15.5). A continued window of a
 * flow sampled with K bins of context falls in the row of the training window that
 * starts K bins before it. */
static int position_row(int L, long s)
{
    if (s < 0) return 0;
    int row = 1;
    for (double v = 1.0 + 2.0 * (double)s / L; v >= 2.0 && row < POS_ROWS - 1; v /= 2.0) row++;
    return row;
}

/* The context planes of one image (net.cond planes of L×L): for each image channel the
 * K×K block of its image that the window's first K bins fix, from kv (image channels, ld
 * floats apart: the bins in the model's values), then a plane that is 1 on that block;
 * zeros elsewhere, and everywhere with K 0 (a window that continues nothing). */
static void context_planes(const nd_dm *m, float *cond, const float *kv, size_t ld, int K)
{
    int CI = m->s.net.channels, L = m->s.net.L;
    size_t P = (size_t)L * L;
    memset(cond, 0, (size_t)m->s.net.cond * P * sizeof *cond);
    for (int c = 0; c < CI; c++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                cond[c * P + (size_t)i * L + j] = gasf_px(kv[c * ld + i], kv[c * ld + j]);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) cond[CI * P + (size_t)i * L + j] = 1.0f;
}

/* ---- training ---------------------------------------------------------------------- */

/* EMA decay at step s (1-based): with warm-up, min(decay, (1+s)/(10+s)). */
static float ema_decay_at(const nd_dm_training *t, uint64_t s)
{
    double d = t->ema_decay;
    if (t->ema_warmup) {
        double w = (1.0 + (double)s) / (10.0 + (double)s);
        if (w < d) d = w;
    }
    return (float)d;
}

typedef struct batch_buf {
    float *x0, *xt, *target, *out, *eps, *tt;
    float *win; /* one window of C·L raw values: a continued window's bins */
    int *y;
    int *k;   /* a student's: the step of each image (nd_distill_grad) */
    float *g; /* and its guidance draw, uniform in [0, 1) */
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
    b->k = malloc((size_t)B * sizeof(int));
    b->g = malloc((size_t)B * sizeof(float));
    b->win = malloc(img * sizeof(float)); /* img >= C·L */
    return b->x0 && b->xt && b->target && b->out && b->eps && b->tt && b->y && b->k && b->g &&
                   b->win
               ? 0
               : -ENOMEM;
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
    free(b->k);
    free(b->g);
    free(b->win);
}

/* What one image of a training batch takes from m->rng, in this order: its timestep (a
 * student's: its sampling step), a uniform draw that says whether it is dropped to the
 * null class (a student's: its guidance scale, nd_distill_grad), its noise (into
 * eps; NULL: drawn and left, for an image of the batch another rank trains on), and with
 * context planes the bins of context it gets when its window continues another (*kctx:
 * 0 half the time, else 1 to L/2), then with a position table whether it is told where
 * in its flow the window is (*where: half the time). */
static void batch_draw(nd_dm *m, int *t, double *u, int *kctx, int *where, float *eps)
{
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    uint32_t T = m->dist ? nd_distill_steps(&m->dist->d, m->dist->round) : (uint32_t)m->diff.T;
    *t = (int)nd_rng_below(&m->rng, T);
    *u = nd_rng_uniform(&m->rng);
    for (size_t j = 0; j < img; j++) {
        float v = nd_rng_normal(&m->rng);
        if (eps) eps[j] = v;
    }
    *kctx = 0;
    if (m->s.context && nd_rng_uniform(&m->rng) < 0.5)
        *kctx =
            1 + (int)nd_rng_below(&m->rng, (uint32_t)(m->s.net.L / 2 > 1 ? m->s.net.L / 2 : 1));
    *where = m->s.flow_position && nd_rng_uniform(&m->rng) < 0.5;
}

/* Image i of a training batch from raw window x (C,L) of class k: batch_draw, then x0,
 * x_t and target. With context planes and prev (C,L: the window before x in its flow;
 * NULL: none), the image is, for the draw's K bins of context, the window that starts K
 * bins before x (prev's last K, then x's first L − K) and its planes say that those K
 * are known, as when a flow's next window is sampled; else its planes are zero. pos: the
 * bins from x's flow's first to x's first (< 0: not known), whose position row the image
 * gets when the draw tells it (moved back by K for a continuation). */
static void batch_fill(nd_dm *m, batch_buf *b, int i, const float *x, const float *prev,
                       long pos, int k)
{
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    int t, K, where;
    double u;
    float *x0 = b->x0 + i * img, *eps = b->eps + i * img;
    batch_draw(m, &t, &u, &K, &where, eps);
    if (!prev) K = 0;
    if (!where || pos < 0) pos = -1;
    else pos -= K;
    if (K) {
        int C = m->gaf.C, L = m->gaf.L;
        for (int c = 0; c < C; c++) {
            memcpy(b->win + (size_t)c * L, prev + (size_t)c * L + (L - K), K * sizeof(float));
            memcpy(b->win + (size_t)c * L + K, x + (size_t)c * L, (L - K) * sizeof(float));
        }
        x = b->win;
    }
    /* the window's values once: its image, and the planes of its first K */
    float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    nd_gaf_scale_window(v, x, &m->gaf, &m->scales[k]);
    nd_gaf_encode(x0, v, m->s.net.channels, m->gaf.L);
    if (m->s.net.cond)
        context_planes(m, m->cond + (size_t)i * m->s.net.cond * m->gaf.L * m->gaf.L, v,
                       (size_t)m->gaf.L, K);
    if (m->s.net.pos_rows) m->pos[i] = position_row(m->gaf.L, pos);
    if (m->dist) { /* the student learns the guided teacher: no null class */
        b->k[i] = t;
        b->g[i] = (float)u;
        b->y[i] = k;
        return;
    }
    nd_diffusion_q_sample(&m->diff, b->xt + i * img, b->target + i * img, x0, eps, t, img);
    b->tt[i] = (float)t;
    b->y[i] = u < m->s.train.class_dropout ? m->s.net.max_classes : k;
}

/* The gradient of the loss of a batch of `total` images over the B of them that
 * batch_fill prepared (all of them in one process) into the network's gradient block;
 * the loss of the B. */
static float batch_grad(nd_dm *m, batch_buf *b, int B, int total)
{
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    if (m->dist)
        return nd_distill_grad(m, b->x0, b->eps, b->k, b->g, b->y, b->xt, b->target, b->out, B,
                               total);
    nd_unet_set_cond(m->net, m->cond);
    nd_unet_set_pos(m->net, m->pos);
    nd_unet_forward(m->net, m->ctx, b->out, b->xt, b->tt, b->y, B);
    float loss = nd_mse_forward(b->out, b->target, (size_t)B * img);
    nd_mse_backward_part(b->out, b->out, b->target, (size_t)B * img, (size_t)total * img, 1.0f);
    nd_unet_zero_grad(m->net);
    nd_unet_backward(m->net, m->ctx, NULL, b->out);
    return loss;
}

/* The optimiser step on the gradient block, then the EMA. */
static void batch_apply(nd_dm *m)
{
    size_t np = nd_unet_num_params(m->net);
    float *params = nd_unet_params(m->net);
    nd_adamw_step(m->opt, m->ctx, params, nd_unet_grads(m->net));
    m->step++;
    float d = ema_decay_at(&m->s.train, m->step);
    for (size_t i = 0; i < np; i++) m->ema[i] = d * m->ema[i] + (1.0f - d) * params[i];
}

/* One optimiser step on the B images batch_fill prepared, then the EMA; the loss. */
static float batch_step(nd_dm *m, batch_buf *b, int B)
{
    float loss = batch_grad(m, b, B, B);
    batch_apply(m);
    return loss;
}

/* Validation loss of the EMA weights on up to 256 held-out windows, with noise and
 * timesteps from a fixed seed (the same every call; the training RNG is untouched). */
static double val_loss(nd_dm *m, const nd_dataset *ds, const uint64_t *val, size_t nval,
                       batch_buf *b, float *save)
{
    if (!nval || m->dist) return -1.0; /* a student's loss is its teacher's steps */
    size_t np = nd_unet_num_params(m->net),
           img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    float *params = nd_unet_params(m->net);
    memcpy(save, params, np * sizeof(float));
    memcpy(params, m->ema, np * sizeof(float));
    nd_rng r;
    nd_rng_seed(&r, m->split_seed ^ 0xA11CEull);
    size_t WL = (size_t)ds->n_channels * ds->L, total = nval < 256 ? nval : 256;
    double sum = 0.0;
    size_t done = 0;
    while (done < total) {
        int B =
            (int)(total - done < (size_t)m->max_batch ? total - done : (size_t)m->max_batch);
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

typedef struct group_at {
    uint64_t group, w;
} group_at;

static int cmp_group_at(const void *a, const void *b)
{
    const group_at *x = a, *y = b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    return x->w < y->w ? -1 : x->w > y->w;
}

/* For each window of ds, the window before it in its flow: the last one of the same group
 * earlier in the file (docs/FORMATS.md, GRUP: a flow's windows come in the order of their
 * time), UINT64_MAX for a flow's first. NULL on -ENOMEM. */
static uint64_t *flow_prev(const nd_dataset *ds)
{
    uint64_t n = ds->n_windows;
    uint64_t *prev = malloc((n + 1) * sizeof *prev);
    group_at *g = malloc((n + 1) * sizeof *g);
    if (!prev || !g) {
        free(prev);
        free(g);
        return NULL;
    }
    for (uint64_t w = 0; w < n; w++) g[w] = (group_at){ds->groups[w], w};
    qsort(g, n, sizeof *g, cmp_group_at);
    for (uint64_t i = 0; i < n; i++)
        prev[g[i].w] = i && g[i - 1].group == g[i].group ? g[i - 1].w : UINT64_MAX;
    free(g);
    return prev;
}

/* The trained model to path or, when that cannot be written, to the fallback file
 * (nd_fallback_path), so that the training is not lost. 0, or a code with e saying why
 * and where the model went. */
static int save_or_fall_back(nd_dm *m, const char *path, nd_error *e)
{
    nd_error se = {0}, fe = {0};
    int rc = nd_dm_save(m, path, &se);
    if (!rc) return 0;
    char *alt = nd_fallback_path(path);
    if (!alt) nd_error_set(&fe, -ENOMEM, "out of memory");
    if (!alt || nd_dm_save(m, alt, &fe))
        nd_error_set(e, rc, "%s; the model was not saved elsewhere either: %s", se.msg, fe.msg);
    else nd_error_set(e, rc, "%s; the trained model is in %s instead", se.msg, alt);
    free(alt);
    return rc;
}

/* Tells o->report where training stands (val_loss NaN: not measured now). */
static void train_progress(const nd_dm *m, const nd_train_opts *o, uint64_t step0, uint64_t t0,
                           int B, double loss, double val_loss, int final,
                           const nd_train_report *rep)
{
    if (!o->report) return;
    double s = (double)(nd_now_ns() - t0) * 1e-9;
    nd_train_progress p = {
        .step = m->step,
        .steps = o->steps,
        .loss = loss,
        .val_loss = val_loss < 0 ? NAN : val_loss, /* < 0: no validation windows */
        .lr = m->s.train.lr,
        .images_per_s = s > 0 ? (double)(m->step - step0) * B / s : 0,
        .seconds = s,
        .allreduce_s = rep->allreduce_s,
        .final = final,
    };
    o->report(o->report_arg, &p);
}

int nd_dm_train(nd_dm *m, const nd_dataset *ds, const nd_train_opts *o, nd_train_report *rep,
                nd_error *e)
{
    nd_train_report r0 = {0};
    if (!rep) rep = &r0;
    memset(rep, 0, sizeof *rep);
    rep->val_loss = -1.0;
    uint64_t t0 = nd_now_ns(), last_status = 0, step0 = m->step;
    const nd_dataset *h = m->meta;
    if (ds->n_classes != h->n_classes || ds->n_channels != h->n_channels || ds->L != h->L)
        return nd_error_set(e, ND_EUSAGE,
                            "the dataset (%u classes, %u channels, %u bins) is "
                            "not the one the model was made for (%u, %u, %u)",
                            ds->n_classes, ds->n_channels, ds->L, h->n_classes, h->n_channels,
                            h->L);
    for (uint32_t k = 0; k < ds->n_classes; k++)
        if (strcmp(ds->class_names[k], h->class_names[k]))
            return nd_error_set(e, ND_EUSAGE,
                                "class %u is '%s' in the dataset but '%s' in "
                                "the model",
                                k, ds->class_names[k], h->class_names[k]);
    /* files from before the decoder have no targets; the others get the same again */
    int trc = fit_targets(m, ds, e);
    if (trc) return trc;
    /* Each rank trains on images lo..hi-1 of every batch: all of them draw the whole
     * batch from the one RNG (the same draw as one process makes), fill their own part
     * and sum the gradients, so that every rank takes the same optimiser step. */
    int N = nd_mpi_ranks(), K = (int)ds->n_classes, B = (int)m->s.train.batch;
    if ((B + N - 1) / N > m->max_batch) B = m->max_batch * N;
    int lo = B * nd_mpi_rank() / N, hi = B * (nd_mpi_rank() + 1) / N;
    if (B < N)
        return nd_error_set(e, ND_ECONFIG,
                            "train.batch %d is smaller than the %d ranks of this run (each "
                            "rank trains on its part of every batch)",
                            B, N);
    size_t WL = (size_t)ds->n_channels * ds->L;
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    size_t np = nd_unet_num_params(m->net);
    /* per-class lists of training windows; validation windows */
    uint64_t *idx = malloc((ds->n_windows + 1) * sizeof *idx);
    uint64_t *val = malloc((ds->n_windows + 1) * sizeof *val);
    size_t *start = calloc((size_t)K + 1, sizeof *start);
    int *present = malloc((size_t)K * sizeof *present);
    float *save = malloc(np * sizeof(float));
    /* with context planes: the window before each one in its flow; with a position
     * table, each one's place in its flow (windows before it; a flow's windows come in
     * file order, so prev[w] < w) */
    uint64_t *prev = m->s.context ? flow_prev(ds) : NULL;
    uint64_t *place = m->s.flow_position ? malloc((ds->n_windows + 1) * sizeof *place) : NULL;
    batch_buf b = {0};
    int rc = 0;
    if (!idx || !val || !start || !present || !save || (m->s.context && !prev) ||
        (m->s.flow_position && !place) || batch_alloc(&b, m->max_batch, img)) {
        rc = nd_error_set(e, -ENOMEM, "train: out of memory");
        goto out;
    }
    for (uint64_t w = 0; place && w < ds->n_windows; w++)
        place[w] = prev[w] == UINT64_MAX ? 0 : place[prev[w]] + 1;
    size_t nval = 0, ntr = 0;
    for (int k = 0; k < K; k++) {
        start[k] = ntr;
        for (uint64_t w = 0; w < ds->n_windows; w++) {
            if (ds->labels[w] != k) continue;
            if (is_val_group(m, ds->groups[w])) continue;
            idx[ntr++] = w;
        }
    }
    start[K] = ntr;
    for (uint64_t w = 0; w < ds->n_windows; w++)
        if (is_val_group(m, ds->groups[w])) val[nval++] = w;
    int npresent = 0;
    for (int k = 0; k < K; k++)
        if (start[k + 1] > start[k]) present[npresent++] = k;
    if (!npresent) {
        rc = nd_error_set(e, ND_EFORMAT, "train: no training windows (all held out?)");
        goto out;
    }
    double loss_avg = 0.0;
    while (m->step < o->steps) {
        double el = (double)(nd_now_ns() - t0) * 1e-9;
        enum { STOPPED = 1, OUT_OF_TIME = 2 };
        int why = (o->stop && *o->stop ? STOPPED : 0) |
                  (o->max_seconds > 0 && el >= o->max_seconds ? OUT_OF_TIME : 0);
        /* every rank stops at the same step, when any of them is told to */
        why = nd_mpi_or(why);
        if (why & STOPPED) {
            rep->interrupted = 1;
            break;
        }
        if (why) break;
        if (m->dist) nd_distill_next_round(m);
        /* the batch: class uniformly among classes with data, then a window of it */
        for (int i = 0; i < B; i++) {
            int k = present[nd_rng_below(&m->rng, (uint32_t)npresent)];
            uint64_t w =
                idx[start[k] + nd_rng_below(&m->rng, (uint32_t)(start[k + 1] - start[k]))];
            int t, kc, where;
            double u;
            const float *pw = prev && prev[w] != UINT64_MAX ? ds->values + prev[w] * WL : NULL;
            long pos = place ? (long)(place[w] * ds->L) : -1;
            if (i >= lo && i < hi) batch_fill(m, &b, i - lo, ds->values + w * WL, pw, pos, k);
            else batch_draw(m, &t, &u, &kc, &where, NULL);
        }
        float loss = batch_grad(m, &b, hi - lo, B);
        if (N > 1) {
            uint64_t s0 = nd_now_ns();
            if (nd_mpi_sum_floats(nd_unet_grads(m->net), np)) {
                rc = nd_error_set(e, -ENOMEM, "train: out of memory");
                goto out;
            }
            rep->allreduce_s += (double)(nd_now_ns() - s0) * 1e-9;
            loss = (float)(nd_mpi_sum((double)loss * (hi - lo)) / B);
        }
        batch_apply(m);
        if (!isfinite(loss)) {
            rc = nd_error_set(e, ND_EFORMAT,
                              "train: loss is %g at step %llu (try a lower "
                              "train.lr)",
                              (double)loss, (unsigned long long)m->step);
            goto out;
        }
        loss_avg = m->step - step0 == 1 ? loss : 0.98 * loss_avg + 0.02 * loss;
        rep->last_loss = loss_avg;
        uint64_t now = nd_now_ns();
        /* the status line twice a second on a terminal; elsewhere (a log file, a pipe) a
         * line of its own every 30 s */
        int tty = nd_status_enabled();
        if (!o->quiet && now - last_status > (tty ? 500000000ull : 30 * ND_NS_PER_SEC)) {
            last_status = now;
            double s = (double)(now - t0) * 1e-9, done = (double)(m->step - step0);
            double ips = done * B / s, left = (double)(o->steps - m->step) * s / done;
            if (o->max_seconds > 0 && o->max_seconds - s < left) left = o->max_seconds - s;
            char eta[32];
            nd_format_time_left(eta, sizeof eta, left);
            if (tty)
                nd_status("step %llu/%llu  loss %.4f  %.1f images/s  %s left",
                          (unsigned long long)m->step, (unsigned long long)o->steps, loss_avg,
                          ips, eta);
            else
                nd_info("step %llu/%llu: loss %.4f, %.1f images/s, %s left",
                        (unsigned long long)m->step, (unsigned long long)o->steps, loss_avg,
                        ips, eta);
        }
        uint64_t ce = m->s.train.checkpoint_every;
        int validate = o->path && ce && m->step % ce == 0 && m->step < o->steps;
        /* the last step's line is the final one, after the loop */
        if (o->report_every && m->step % o->report_every == 0 && !validate &&
            m->step < o->steps)
            train_progress(m, o, step0, t0, B, loss_avg, NAN, 0, rep);
        if (validate) {
            rep->val_loss = val_loss(m, ds, val, nval, &b, save);
            train_progress(m, o, step0, t0, B, loss_avg, rep->val_loss, 0, rep);
            nd_error se = {0};
            if (!o->quiet) nd_status_end();
            /* A checkpoint that cannot be written (full disk) is no reason to stop: the
             * previous one is intact, the next one tries again, the end falls back. */
            if (nd_dm_save(m, o->path, &se))
                nd_warn("step %llu: checkpoint not written: %s; training goes on",
                        (unsigned long long)m->step, se.msg);
            else if (!o->quiet)
                nd_info("step %llu: loss %.4f, validation loss %.4f (EMA), checkpoint %s",
                        (unsigned long long)m->step, loss_avg, rep->val_loss, o->path);
        }
    }
    if (!o->quiet) nd_status_end();
    /* the ranks of an MPI run would all measure the same: rank 0 does */
    rep->val_loss = nd_mpi_rank() == 0 ? val_loss(m, ds, val, nval, &b, save) : -1.0;
    train_progress(m, o, step0, t0, B, loss_avg, rep->val_loss, 1, rep);
    if (o->path && (rc = save_or_fall_back(m, o->path, e))) goto out;
    if (rep->interrupted) rc = ND_EINTR;
out:
    rep->steps_done = m->step - step0;
    rep->seconds = (double)(nd_now_ns() - t0) * 1e-9;
    free(idx);
    free(val);
    free(start);
    free(present);
    free(save);
    free(prev);
    free(place);
    batch_free(&b);
    return rc;
}

/* ---- sampling ---------------------------------------------------------------------- */

/* What is known of the windows a flow's next windows sample (nd_dm_sample_flow): the
 * decoded values (every image channel's, in [0, 1]) of each window's first K bins. */
typedef struct dm_known {
    const nd_dm *m;
    int K;
    const float *v; /* (n, image channels, K) for the n windows of the call */
    size_t first;   /* the batch's first window */
    nd_rng rng;     /* the known part's noise: the sampler's own draws stay as they are */
} dm_known;

typedef struct denoise_arg {
    nd_dm *m;
    const dm_known *known; /* the windows' context (NULL: none) */
    int B;                 /* the sampler's batch: image i of a call is window i mod B */
    long pos;              /* bins from the windows' flow's first to theirs; < 0: not known */
    float *guide;          /* (max_batch) the guidance row of every image, or NULL: a
                              student's guidance table (nd_distill_guide_row) */
} denoise_arg;

static void denoise(void *arg, float *out, const float *x, const float *t, const int *y, int B)
{
    const denoise_arg *da = arg;
    nd_dm *m = da->m;
    const dm_known *k = da->known;
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    size_t planes = (size_t)m->s.net.cond * m->s.net.L * m->s.net.L;
    for (int i = 0; i < B; i += m->max_batch) {
        int n = B - i < m->max_batch ? B - i : m->max_batch;
        /* with context planes, each image's (the null-class copies' too): the known
         * bins of its window, or none */
        for (int j = 0; planes && j < n; j++) {
            size_t w = k ? k->first + (size_t)((i + j) % da->B) : 0;
            context_planes(m, m->cond + j * planes,
                           k ? k->v + w * m->s.net.channels * k->K : NULL,
                           (size_t)(k ? k->K : 0), k ? k->K : 0);
        }
        /* with a position table, where in their flow the windows are (all alike) */
        for (int j = 0; m->s.net.pos_rows && j < n; j++)
            m->pos[j] = position_row(m->gaf.L, da->pos);
        nd_unet_set_cond(m->net, m->cond);
        nd_unet_set_pos(m->net, m->pos);
        nd_unet_set_guide(m->net, da->guide);
        uint64_t t0 = nd_now_ns();
        nd_unet_forward(m->net, m->ctx, out + i * img, x + i * img, t + i, y + i, n);
        m->net_ns += nd_now_ns() - t0;
    }
}

/* Predicted clean image -> a valid GASF image (the series of every channel by the
 * model's decode, encoded again): the sampler then only ever steers towards images that
 * are series, which a small, briefly trained network does not manage by itself. */
void nd_dm_project(void *arg, float *x0)
{
    nd_dm *m = arg;
    float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    int CI = m->s.net.channels, L = m->s.net.L;
    nd_gaf_decode(v, x0, CI, L, m->gaf.decode);
    nd_gaf_encode(x0, v, CI, L);
}

/* Whether sampling now would use the decoder's maps as they are: fitted for the current
 * sampling settings and step by this revision of the fit. */
static int dec_fresh(const nd_dm *m)
{
    nd_decoder_key now;
    nd_decoder_key_of(&now, &m->s.sample, m->step);
    return now.windows && nd_decoder_key_equal(&m->dec->key, &now);
}

/* Activity score of bin i of channel c in decoded values v: the activity image's value
 * with masks, else the value itself (idle bins decode near 0 in either). */
static float activity(const nd_gaf_spec *g, const float *v, int c, int i)
{
    return v[((g->mask ? g->C : 0) + c) * g->L + i];
}

/* Sampled image -> raw window x (C,L): decoded by the model's decode, then through the
 * decoder's maps of class cls when cal (the maps are fresh) and the class has them, else
 * the fixed thresholds of nd_gaf_unscale_window; the image is decoded once either way.
 * With dec (nd_gaf_channels·L), also the decoded values. */
static void image_to_window(const nd_dm *m, int cls, int cal, float *x, float *dec,
                            const float *img)
{
    const nd_gaf_spec *g = &m->gaf;
    int C = g->C, L = g->L;
    float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    nd_gaf_decode(v, img, nd_gaf_channels(g), L, g->decode);
    if (dec) memcpy(dec, v, (size_t)nd_gaf_channels(g) * L * sizeof(float));
    if (!x) return;
    /* a class without training targets (it joined online, no data yet) keeps the fixed
     * thresholds */
    if (!cal || isnan(nd_decoder_map_at(m->dec, cls, 0)->threshold_at[0])) {
        nd_gaf_unscale_window(x, v, g, &m->scales[cls]);
        return;
    }
    float score[ND_MAX_CHANNELS * ND_MODEL_MAX_L], l[ND_MAX_CHANNELS * ND_MODEL_MAX_L];
    for (int c = 0; c < C; c++)
        for (int i = 0; i < L; i++) {
            score[c * L + i] = activity(g, v, c, i);
            l[c * L + i] = log1pf(nd_gaf_unscale(v[c * L + i], g, &m->scales[cls], c));
        }
    nd_decoder_window_class(nd_decoder_map_at(m->dec, cls, 0),
                            nd_decoder_target_at(m->dec, cls, 0), C, x, score, l, L);
}

/* nd_sample_opts.inpaint: image b of the batch at noise level abar. */
static void inpaint_known(void *arg, float *x, int b, double abar)
{
    dm_known *k = arg;
    const nd_dm *m = k->m;
    int CI = m->s.net.channels, L = m->s.net.L, K = k->K;
    const float *kv = k->v + (k->first + (size_t)b) * CI * K;
    if (abar >= 1.0) {
        /* the clean image: the GASF of its series with the known bins put back, so that
         * their rows and columns agree with them too, not only the K×K block */
        float v[2 * ND_MAX_CHANNELS * ND_MODEL_MAX_L];
        nd_gaf_decode(v, x, CI, L, m->gaf.decode);
        for (int c = 0; c < CI; c++)
            memcpy(v + (size_t)c * L, kv + (size_t)c * K, K * sizeof *v);
        nd_gaf_encode(x, v, CI, L);
        return;
    }
    double sa = sqrt(abar), ss = sqrt(1.0 - abar);
    for (int c = 0; c < CI; c++)
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < K; j++) {
                float g = gasf_px(kv[c * K + i], kv[c * K + j]);
                x[((size_t)c * L + i) * L + j] = (float)(sa * g + ss * nd_rng_normal(&k->rng));
            }
        }
}

/* Sampled values that are not finite come from weights that overflow (a diverged or
 * damaged model): they are refused, never decoded, because the decode would read them as
 * idle bins and the caller would write or send nothing and succeed. */
static int check_images(const nd_dm *m, int cls, const float *v, size_t n, nd_error *e)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return nd_error_set(e, ND_EFORMAT,
                                "sample: class '%s': the network produced %g (its weights "
                                "overflow: a diverged or damaged model)",
                                m->meta->class_names[cls], (double)v[i]);
    return 0;
}

/* Decoded windows hold bytes or packets: finite and >= 0, else the decoder's tables (a
 * model file's DECO or SCAL) are impossible. */
static int check_windows(const nd_dm *m, int cls, const float *x, size_t n, nd_error *e)
{
    int L = m->gaf.L;
    for (size_t i = 0; i < n * m->gaf.C * L; i++)
        if (!(x[i] >= 0.0f) || !isfinite(x[i]))
            return nd_error_set(e, ND_EFORMAT,
                                "sample: class '%s': the decoder made %g of channel %s, "
                                "bin %zu (its tables hold impossible values)",
                                m->meta->class_names[cls], (double)x[i],
                                m->meta->channel_names[(i / L) % m->gaf.C], i % L);
    return 0;
}

/* n images of class cls by the sampler of the sampling settings on the EMA weights,
 * each to image_to_window (x, dec: n windows; either may be NULL) and to imgs. In an MPI
 * run the sampler's batches go round the ranks; each rank skips the others' batches by
 * drawing their noise from rng and leaving it, so that every batch has the noise it has
 * in one process, and then gets them from the rank that sampled them. */
static int sample_images(nd_dm *m, int cls, size_t n, float *x, float *dec, float *imgs,
                         nd_rng *rng, dm_known *known, long pos, nd_error *e)
{
    const nd_dm_sampling *c = &m->s.sample;
    /* a student that takes the scale as an input: one pass, the scale through its table */
    const nd_dm_distill *dd = m->s.net.guide_rows ? &m->dist->d : NULL;
    if (dd && !(c->guidance >= dd->guidance_lo && c->guidance <= dd->guidance_hi))
        return nd_error_set(e, ND_EUSAGE,
                            "sample: guidance %g: this student learnt guidance %g to %g only",
                            c->guidance, dd->guidance_lo, dd->guidance_hi);
    nd_sample_opts so = {
        .sampler = c->sampler,
        .steps = (int)c->steps,
        .guidance = dd ? 1.0f : (float)c->guidance,
        .eta = (float)c->eta,
        .clip = c->clip,
        .null_class = m->s.net.max_classes,
        .project = c->project ? nd_dm_project : NULL,
        .project_arg = m,
        /* with context planes too: without the replacement a briefly trained network
         * does not join its windows (docs/MODEL.md, "Context planes") */
        .inpaint = known ? inpaint_known : NULL,
        .inpaint_arg = known,
        .resample = known ? m->resample : 1,
        .nested = m->dist != NULL,
    };
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    size_t np = nd_unet_num_params(m->net);
    size_t WL = (size_t)m->gaf.C * m->gaf.L, DL = (size_t)m->s.net.channels * m->gaf.L;
    int SB = (int)c->batch, cal = c->calibrate && dec_fresh(m);
    float *buf = malloc((size_t)SB * img * sizeof(float));
    int *y = malloc((size_t)SB * sizeof(int));
    float *save = malloc(np * sizeof(float));
    float *guide = dd ? malloc((size_t)m->max_batch * sizeof(float)) : NULL;
    if (!buf || !y || !save || (dd && !guide)) {
        free(buf);
        free(y);
        free(save);
        free(guide);
        return nd_error_set(e, -ENOMEM, "sample: out of memory");
    }
    for (int i = 0; dd && i < m->max_batch; i++)
        guide[i] = nd_distill_guide_row(dd, c->guidance);
    float *params = nd_unet_params(m->net);
    memcpy(save, params, np * sizeof(float));
    memcpy(params, m->ema, np * sizeof(float));
    denoise_arg da = {m, known, 0, pos, guide};
    int rc = 0, N = nd_mpi_ranks();
    size_t j = 0; /* batch */
    for (size_t done = 0; done < n; done += SB, j++) {
        /* the ranks agree on a stop once per round of N batches (one each), where they
         * all wait for the slowest anyway */
        if (j % N == 0 && nd_mpi_or(m->stop && *m->stop)) {
            rc = nd_error_set(e, ND_EINTR, "sample: stopped by a signal");
            break;
        }
        int B = (int)(n - done < (size_t)SB ? n - done : (size_t)SB);
        if ((m->batches + j) % N != (uint64_t)nd_mpi_rank()) { /* another rank's batch */
            for (size_t k = nd_diffusion_draws(&m->diff, &so, B, img); k; k--)
                nd_rng_normal(rng);
            continue;
        }
        for (int i = 0; i < B; i++) y[i] = cls;
        if (known) known->first = done;
        da.B = B;
        nd_diffusion_sample(&m->diff, &so, denoise, &da, buf, y, B, img, rng);
        if ((rc = check_images(m, cls, buf, (size_t)B * img, e))) break;
        for (int i = 0; i < B; i++) {
            size_t at = done + (size_t)i;
            image_to_window(m, cls, cal, x ? x + at * WL : NULL, dec ? dec + at * DL : NULL,
                            buf + i * img);
            if (imgs) memcpy(imgs + at * img, buf + i * img, img * sizeof(float));
        }
        if (x && (rc = check_windows(m, cls, x + done * WL, (size_t)B, e))) break;
    }
    /* every rank gets every batch from the rank that sampled it */
    for (size_t done = 0, k = 0; !rc && N > 1 && done < n; done += SB, k++) {
        size_t B = n - done < (size_t)SB ? n - done : (size_t)SB;
        int root = (int)((m->batches + k) % N);
        if (x) nd_mpi_bcast(x + done * WL, B * WL * sizeof(float), root);
        if (dec) nd_mpi_bcast(dec + done * DL, B * DL * sizeof(float), root);
        if (imgs) nd_mpi_bcast(imgs + done * img, B * img * sizeof(float), root);
    }
    m->batches += j;
    memcpy(params, save, np * sizeof(float));
    free(buf);
    free(y);
    free(save);
    free(guide);
    return rc;
}

int nd_dm_calibrate(nd_dm *m, nd_error *e)
{
    uint32_t W = m->s.sample.calibrate;
    if (!W || dec_fresh(m)) return 0;
    const nd_gaf_spec *g = &m->gaf;
    int C = g->C, L = g->L, CI = nd_gaf_channels(g);
    size_t nb = (size_t)W * L;
    float *dec = malloc((size_t)W * CI * L * sizeof(float));
    float *score = malloc(C * nb * sizeof(float)), *lval = malloc(C * nb * sizeof(float));
    float *scratch = malloc(((C + 3) * nb + W) * sizeof(float));
    int rc = dec && score && lval && scratch
                 ? 0
                 : nd_error_set(e, -ENOMEM, "calibrate: out of memory");
    /* its own noise, so that what a caller samples does not depend on whether the maps
     * were stored or fitted just now */
    nd_rng r;
    nd_rng_seed(&r, m->s.sample.seed ^ 0xCA11B7A7Eull);
    /* the maps of the settings before stay among the alternates (nd_dm_set_sampling finds
     * them again) */
    if (!rc && nd_decoder_stash(m->dec, m->step))
        rc = nd_error_set(e, -ENOMEM, "calibrate: out of memory");
    m->dec->key.windows = 0; /* no maps while fitting (and after a failed fit) */
    for (uint32_t k = 0; !rc && k < m->meta->n_classes; k++) {
        const nd_decoder_target *t0 = nd_decoder_target_at(m->dec, (int)k, 0);
        if (!isfinite(t0->idle)) { /* no training data for this class: not calibrated */
            for (int c = 0; c < C; c++)
                nd_decoder_fit(nd_decoder_map_at(m->dec, (int)k, c), t0, NULL, NULL, 0, L,
                               scratch);
            continue;
        }
        rc = sample_images(m, (int)k, W, NULL, dec, NULL, &r, NULL, -1, e);
        if (rc) break;
        for (int c = 0; c < C; c++)
            for (size_t w = 0; w < W; w++)
                for (int i = 0; i < L; i++) {
                    const float *v = dec + w * CI * L;
                    size_t at = c * nb + w * L + i;
                    score[at] = activity(g, v, c, i);
                    lval[at] = log1pf(nd_gaf_unscale(v[c * L + i], g, &m->scales[k], c));
                }
        nd_decoder_fit_class(nd_decoder_map_at(m->dec, (int)k, 0),
                             nd_decoder_target_at(m->dec, (int)k, 0), C, score, lval, W, L,
                             scratch);
    }
    if (!rc) nd_decoder_key_of(&m->dec->key, &m->s.sample, m->step);
    free(dec);
    free(score);
    free(lval);
    free(scratch);
    return rc;
}

void nd_dm_set_stop(nd_dm *m, volatile int *stop) { m->stop = stop; }

double nd_dm_net_seconds(const nd_dm *m) { return (double)m->net_ns * 1e-9; }

int nd_dm_set_bf16(nd_dm *m, int on) { return nd_ctx_set_bf16(m->ctx, on); }

void nd_dm_set_resample(nd_dm *m, int u) { m->resample = u < 1 ? 1 : u > 100 ? 100 : u; }

int nd_dm_calibrated(const nd_dm *m)
{
    if (!dec_fresh(m)) return 0;
    int n = 0;
    for (uint32_t k = 0; k < m->meta->n_classes; k++)
        n += !isnan(nd_decoder_map_at(m->dec, (int)k, 0)->threshold_at[0]);
    return n;
}

int nd_dm_sample(nd_dm *m, int cls, size_t n, float *x, float *imgs, nd_rng *rng, nd_error *e)
{
    if (cls < 0 || (uint32_t)cls >= m->meta->n_classes)
        return nd_error_set(e, ND_EUSAGE, "sample: class %d out of range", cls);
    int rc = nd_dm_calibrate(m, e);
    if (!rc) rc = sample_images(m, cls, n, x, NULL, imgs, rng, NULL, -1, e);
    /* Bytes and packets are counts: the decode's fractions are not traffic. */
    for (size_t i = 0; !rc && x && i < n * m->gaf.C * m->gaf.L; i++) x[i] = roundf(x[i]);
    return rc;
}

int nd_dm_context_check(const nd_dm *m, int K, const char *who, nd_error *e)
{
    int L = m->gaf.L;
    if (K < 0 || K >= L)
        return nd_error_set(e, ND_EUSAGE, "%s: a context of %d bins: expected 0 to %d (L - 1)",
                            who, K, L - 1);
    if (K > L / 2 && m->s.context)
        return nd_error_set(e, ND_EUSAGE,
                            "%s: a context of %d bins: a model with context planes continues "
                            "windows by 1 to %d (L/2) bins, which it was trained on",
                            who, K, L / 2);
    return 0;
}

int nd_dm_sample_cont(nd_dm *m, int cls, size_t n, int K, long pos, const float *known,
                      float *x, float *state, nd_rng *rng, nd_error *e)
{
    int CI = nd_gaf_channels(&m->gaf), L = m->gaf.L;
    if (cls < 0 || (uint32_t)cls >= m->meta->n_classes)
        return nd_error_set(e, ND_EUSAGE, "sample: class %d out of range", cls);
    int rc = nd_dm_context_check(m, K, "sample", e);
    if (rc) return rc;
    if (K && !known)
        return nd_error_set(e, ND_EUSAGE,
                            "sample: a context of %d bins and no window to continue", K);
    /* the known part's noise would differ between the ranks that sample its batches */
    if (K && nd_mpi_ranks() > 1)
        return nd_error_set(e, ND_EUSAGE,
                            "sample: continued windows are sampled in one process, not "
                            "under MPI");
    float *kv = K ? malloc(n * CI * K * sizeof *kv) : NULL;
    if (K && !kv) return nd_error_set(e, -ENOMEM, "sample: out of memory");
    for (size_t f = 0; K && f < n; f++)
        for (int c = 0; c < CI; c++)
            memcpy(kv + (f * CI + c) * K, known + (f * CI + c) * L + (L - K), K * sizeof *kv);
    dm_known kn = {.m = m, .K = K, .v = kv};
    if (K) nd_rng_seed(&kn.rng, nd_rng_u64(rng));
    rc = nd_dm_calibrate(m, e);
    if (!rc) rc = sample_images(m, cls, n, x, state, NULL, rng, K ? &kn : NULL, pos, e);
    /* Bytes and packets are counts: the decode's fractions are not traffic. */
    for (size_t i = 0; !rc && i < n * m->gaf.C * L; i++) x[i] = roundf(x[i]);
    free(kv);
    return rc;
}

int nd_dm_sample_next(nd_dm *m, int cls, size_t n, int K, const float *prev, float *x,
                      nd_rng *rng, nd_error *e)
{
    if (cls < 0 || (uint32_t)cls >= m->meta->n_classes)
        return nd_error_set(e, ND_EUSAGE, "sample: class %d out of range", cls);
    int CI = nd_gaf_channels(&m->gaf), L = m->gaf.L;
    size_t WL = (size_t)m->gaf.C * L, SL = (size_t)CI * L;
    float *v = malloc((n * SL + 1) * sizeof *v);
    if (!v) return nd_error_set(e, -ENOMEM, "sample: out of memory");
    for (size_t f = 0; f < n; f++)
        nd_gaf_scale_window(v + f * SL, prev + f * WL, &m->gaf, &m->scales[cls]);
    int rc = nd_dm_sample_cont(m, cls, n, K, -1, v, x, NULL, rng, e);
    free(v);
    return rc;
}

int nd_dm_sample_flow(nd_dm *m, int cls, size_t n, int windows, int K, float *x, nd_rng *rng,
                      nd_error *e)
{
    int C = m->gaf.C, L = m->gaf.L, H = L - K;
    if (windows < 1 || K < 0 || K >= L)
        return nd_error_set(e, ND_EUSAGE,
                            "sample: flows of %d windows with %d bins of context: expected 1 "
                            "window or more and a context of 0 to %d bins",
                            windows, K, L - 1);
    /* refused before the first window is sampled, not after */
    int crc = windows > 1 ? nd_dm_context_check(m, K, "sample", e) : 0;
    if (crc) return crc;
    size_t T = (size_t)L + (size_t)(windows - 1) * H, WL = (size_t)C * L;
    size_t SL = (size_t)nd_gaf_channels(&m->gaf) * L;
    float *w = malloc(n * WL * sizeof(float));
    float *st[2] = {malloc(n * SL * sizeof(float)), malloc(n * SL * sizeof(float))};
    int rc = w && st[0] && st[1] ? 0 : nd_error_set(e, -ENOMEM, "sample: out of memory");
    for (int s = 0; !rc && s < windows; s++) {
        /* a later window continues the model's own values of the one before (its state),
         * and its first K bins are the last ones before */
        rc = nd_dm_sample_cont(m, cls, n, s ? K : 0, (long)s * H, st[(s + 1) % 2], w, st[s % 2],
                               rng, e);
        int from = s ? K : 0;
        for (size_t f = 0; !rc && f < n; f++)
            for (int c = 0; c < C; c++)
                memcpy(x + (f * C + c) * T + (size_t)s * H + from,
                       w + f * WL + (size_t)c * L + from, (size_t)(L - from) * sizeof *x);
    }
    free(w);
    free(st[0]);
    free(st[1]);
    return rc;
}

/* ---- step-level access for online training (live/online.c) -------------------------- */

int nd_dm_train_step(nd_dm *m, const float *x, const int *labels, int B, float *loss,
                     nd_error *e)
{
    ND_ASSERT(B >= 1 && B <= m->max_batch);
    size_t WL = (size_t)m->gaf.C * m->gaf.L;
    size_t img = (size_t)m->s.net.channels * m->s.net.L * m->s.net.L;
    batch_buf b = {0};
    if (batch_alloc(&b, B, img)) {
        batch_free(&b);
        return nd_error_set(e, -ENOMEM, "train: out of memory");
    }
    if (m->dist) nd_distill_next_round(m);
    for (int i = 0; i < B; i++) {
        ND_ASSERT(labels[i] >= 0 && (uint32_t)labels[i] < m->meta->n_classes);
        batch_fill(m, &b, i, x + i * WL, NULL, -1, labels[i]);
    }
    float l = batch_step(m, &b, B);
    batch_free(&b);
    if (loss) *loss = l;
    if (!isfinite(l))
        return nd_error_set(e, ND_EFORMAT,
                            "train: loss is %g at step %llu (try a lower "
                            "train.lr)",
                            (double)l, (unsigned long long)m->step);
    return 0;
}

int nd_dm_add_class(nd_dm *m, const char *name, const nd_gaf_scale *s, nd_error *e)
{
    uint32_t K = m->meta->n_classes;
    for (uint32_t k = 0; k < K; k++)
        if (!strcmp(m->meta->class_names[k], name))
            return nd_error_set(e, ND_EUSAGE, "class '%s' is already in the model", name);
    if (K >= (uint32_t)m->s.net.max_classes)
        return nd_error_set(e, ND_ECONFIG,
                            "class '%s': all %d class rows of the model are "
                            "in use (model.max_classes)",
                            name, m->s.net.max_classes);
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
        nd_decoder_target_measure(nd_decoder_target_at(m->dec, cls, c), x, n, C, L, c, scratch);
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
    nd_dm *s = calloc(1, sizeof *s);
    if (!s) {
        nd_error_set(e, -ENOMEM, "model: out of memory");
        return NULL;
    }
    s->s = m->s;
    s->gaf = m->gaf;
    s->diff = m->diff;
    s->max_batch = batch_for(&m->s, max_batch);
    ND_ASSERT(s->max_batch >= 1);
    s->step = m->step;
    s->rng = m->rng;
    s->split_seed = m->split_seed;
    s->resample = m->resample;
    uint32_t K = m->meta->n_classes;
    s->meta = header_copy(m->meta, NULL);
    s->scales = malloc(((size_t)K + 1) * sizeof *s->scales);
    s->net = nd_unet_new(&s->s.net, s->max_batch, s->s.train.seed); /* weights below */
    s->ctx = nd_ctx_new((int)s->s.train.threads);
    size_t n = nd_unet_num_params(m->net);
    s->ema = malloc(n * sizeof(float));
    s->dec = nd_decoder_copy(m->dec);
    int dist_ok = 1;
    if (m->dist && (dist_ok = !!(s->dist = calloc(1, sizeof *s->dist))))
        s->dist->d = m->dist->d; /* a student samples on its grid; no teacher */
    if (!s->meta || !s->scales || !s->net || !s->ctx || !s->ema || !s->dec || !dist_ok) {
        nd_dm_free(s);
        nd_error_set(e, -ENOMEM, "model: out of memory");
        return NULL;
    }
    memcpy(s->scales, m->scales, K * sizeof *s->scales);
    memcpy(s->ema, m->ema, n * sizeof(float));
    memcpy(nd_unet_params(s->net), m->ema, n * sizeof(float));
    return s;
}
