/*
 * opts_model.c — config to options structs (opts.h): the model's settings (model.*,
 * train.*, sample.*), the online trainer's and the live pipeline's (live.*), and the
 * settings of model files from before they stored their own, from the config they
 * embed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "opts.h"

int opts_dm_sampling(nd_dm_sampling *s, const nd_config *cfg, nd_error *e)
{
    memset(s, 0, sizeof *s);
    s->sampler = nd_sampler_from_name(cfg->sample.sampler);
    s->clip = nd_clip_from_name(cfg->sample.clip);
    if (s->sampler < 0 || s->clip < 0)
        return nd_error_set(e, ND_ECONFIG, "sample: unknown sampler '%s' or clip '%s'",
                            cfg->sample.sampler, cfg->sample.clip);
    s->steps = cfg->sample.steps;
    s->guidance = cfg->sample.guidance;
    s->eta = cfg->sample.eta;
    s->project = cfg->sample.project;
    s->decode = !strcmp(cfg->model.decode, "diag") ? ND_GAF_DIAG : ND_GAF_LSQ;
    s->calibrate = cfg->sample.calibrate;
    s->batch = cfg->sample.batch;
    s->seed = cfg->sample.seed;
    return 0;
}

/* The network's numbers (unet-ref) of the model section. */
static int net_from(nd_unet_config *u, const nd_config *cfg, nd_error *e)
{
    memset(u, 0, sizeof *u);
    if (strcmp(cfg->model.arch, "unet-ref") != 0)
        return nd_error_set(e, ND_ECONFIG, "model.arch: \"%s\" is unknown (try unet-ref)",
                            cfg->model.arch);
    if (cfg->model.n_mult < 1 || cfg->model.n_mult > ND_UNET_MAX_LEVELS)
        return nd_error_set(e, ND_ECONFIG, "model.channel_mult: 1 to %d entries expected",
                            ND_UNET_MAX_LEVELS);
    u->base = (int)cfg->model.base_channels;
    u->levels = (int)cfg->model.n_mult;
    for (int l = 0; l < u->levels; l++) u->mult[l] = (int)cfg->model.channel_mult[l];
    u->res_blocks = (int)cfg->model.res_blocks;
    u->attn_min_res = (int)cfg->model.attn_min_res;
    u->groups = (int)cfg->model.groups;
    u->emb_dim = (int)cfg->model.emb_dim;
    u->max_classes = (int)cfg->model.max_classes;
    u->coords = cfg->model.coords;
    return 0;
}

int opts_dm_settings(nd_dm_settings *s, const nd_config *cfg, nd_error *e)
{
    memset(s, 0, sizeof *s);
    int rc = net_from(&s->net, cfg, e);
    if (rc) return rc;
    s->scaling = !strcmp(cfg->model.scaling, "log")        ? ND_GAF_LOG
                 : !strcmp(cfg->model.scaling, "headroom") ? ND_GAF_HEADROOM
                                                           : ND_GAF_ZERO_AWARE;
    s->mask = cfg->model.mask;
    s->context = cfg->model.context;
    s->flow_position = cfg->model.context; /* every new context model has the table */
    s->timesteps = cfg->model.timesteps;
    s->schedule = nd_schedule_from_name(cfg->model.schedule);
    s->pred = nd_pred_from_name(cfg->model.prediction);
    if (s->schedule < 0 || s->pred < 0)
        return nd_error_set(e, ND_ECONFIG, "model: unknown schedule '%s' or prediction '%s'",
                            cfg->model.schedule, cfg->model.prediction);
    nd_dm_training *t = &s->train;
    t->steps = cfg->train.steps;
    t->batch = cfg->train.batch;
    t->lr = cfg->train.lr;
    t->weight_decay = cfg->train.weight_decay;
    t->grad_clip = cfg->train.grad_clip;
    t->warmup_steps = cfg->train.warmup_steps;
    t->ema_decay = cfg->train.ema_decay;
    t->ema_warmup = cfg->train.ema_warmup;
    t->class_dropout = cfg->train.class_dropout;
    t->val_fraction = cfg->train.val_fraction;
    t->checkpoint_every = cfg->train.checkpoint_every;
    t->seed = cfg->train.seed;
    t->threads = cfg->model.threads;
    return opts_dm_sampling(&s->sample, cfg, e);
}

/* cfg from the config text a model file embeds (name: the file, for messages). */
static int parse_embedded(nd_config *cfg, const char *yaml, const char *name, nd_error *e)
{
    nd_error ce = {0};
    if (!nd_config_parse(cfg, yaml ? yaml : "", yaml ? strlen(yaml) : 0, name, &ce)) return 0;
    return nd_error_set(e, ND_EFORMAT, "%s: the embedded config does not load: %s", name,
                        ce.msg);
}

int opts_dm_legacy(nd_dm_settings *s, const char *yaml, const char *path, nd_error *e)
{
    nd_config cfg;
    int rc = parse_embedded(&cfg, yaml, path, e);
    if (!rc) rc = opts_dm_settings(s, &cfg, e);
    nd_config_free(&cfg);
    return rc;
}

nd_dm *opts_dm_open(const char *path, int max_batch, nd_error *e)
{
    if (!nd_is_url(path)) return nd_dm_load(path, max_batch, opts_dm_legacy, e);
    /* a model served by a trainer elsewhere (`live`, GET /model.ndm): fetched whole into
     * a temporary file first, then read with every check of a local file */
    char *tmp = nd_http_fetch(path, OPTS_FETCH_MAX, OPTS_FETCH_TIMEOUT_S, e);
    if (!tmp) return NULL;
    nd_error le = {0};
    nd_dm *m = nd_dm_load(tmp, max_batch, opts_dm_legacy, &le);
    unlink(tmp);
    free(tmp);
    if (!m) nd_error_set(e, le.code, "%s (fetched): %s", path, le.msg);
    return m;
}

int opts_is_sampling_set(const char *set)
{
    return !strncmp(set, "sample.", 7) || !strncmp(set, "model.decode=", 13);
}

int opts_dm_resume_sets(nd_dm *m, const char *const *sets, size_t n_sets, nd_error *e)
{
    nd_config cfg;
    nd_dm_sampling s;
    char *yaml = NULL;
    int rc = parse_embedded(&cfg, nd_dm_dataset(m)->config_yaml, "the model", e);
    for (size_t k = 0; !rc && k < n_sets; k++)
        if (opts_is_sampling_set(sets[k])) rc = nd_config_set(&cfg, sets[k], e);
    if (!rc) rc = opts_dm_sampling(&s, &cfg, e);
    if (!rc) rc = nd_dm_set_sampling(m, &s, e);
    if (!rc && (!(yaml = nd_config_to_yaml(&cfg)) ||
                nd_dataset_set_config(nd_dm_dataset_mut(m), yaml)))
        rc = nd_error_set(e, -ENOMEM, "config: out of memory");
    free(yaml);
    nd_config_free(&cfg);
    return rc;
}

/* cfg's model settings, and cfg as YAML for the model file (*yaml: the caller frees it). */
static int settings_and_text(nd_dm_settings *s, char **yaml, const nd_config *cfg, nd_error *e)
{
    *yaml = NULL;
    int rc = opts_dm_settings(s, cfg, e);
    if (!rc && !(*yaml = nd_config_to_yaml(cfg)))
        rc = nd_error_set(e, -ENOMEM, "config: out of memory");
    return rc;
}

nd_dm *opts_dm_new(const nd_config *cfg, const nd_dataset *ds, nd_error *e)
{
    nd_dm_settings s;
    char *yaml;
    nd_dm *m = settings_and_text(&s, &yaml, cfg, e) ? NULL : nd_dm_new(&s, ds, yaml, e);
    free(yaml);
    return m;
}

void opts_online(nd_online_opts *o, const nd_config *cfg)
{
    memset(o, 0, sizeof *o);
    o->reservoir = cfg->live.reservoir;
    o->recent = cfg->live.recent;
    o->warmup = cfg->live.warmup;
    o->recent_share = cfg->live.recent_share;
    o->scale_refit = cfg->live.scale_refit;
}

/* The trainer's cores: live.trainer_threads, else the cores the capture thread does not
 * use. */
static uint32_t trainer_threads(const nd_config *cfg)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t tt = cfg->live.trainer_threads;
    if (!tt)
        tt = (uint32_t)(ncpu > 1 && cfg->live.capture_core >= 0 ? ncpu - 1
                        : ncpu > 0                              ? ncpu
                                                                : 1);
    return tt;
}

/* live.distill*: the student's settings, checked together (the model's own checks,
 * nd_dm_distill_begin, come with the first student; a resumed model keeps its
 * model.prediction, so that one is checked here for a new model only). */
static int opts_live_distill(nd_live_opts *o, const nd_config *cfg, int resume, nd_error *e)
{
    const char *file = cfg->path[0] ? cfg->path : "defaults";
    uint32_t to = cfg->live.distill, from = cfg->live.distill_from;
    if (!to) return 0;
    uint32_t s = to;
    while (s < from) s *= 2;
    if (s != from || from == to)
        return nd_error_set(e, ND_ECONFIG,
                            "%s: live.distill_from %u: expected live.distill (%u) times 2, "
                            "4, 8, ...",
                            file, from, to);
    if (!resume && strcmp(cfg->model.prediction, "v"))
        return nd_error_set(e, ND_ECONFIG,
                            "%s: live.distill: distillation needs model.prediction: v "
                            "(it is eps)",
                            file);
    o->distill = (nd_dm_distill){
        .from_steps = from, .to_steps = to, .round_steps = cfg->live.distill_round_steps};
    o->distill_every = cfg->live.distill_every;
    o->student = cfg->live.student;
    return 0;
}

int opts_live(nd_live_opts *o, char **provenance, const nd_config *cfg, int resume, nd_error *e)
{
    int rc;
    memset(o, 0, sizeof *o);
    *provenance = NULL;
    opts_capture(&o->capture, cfg);
    o->capture_core = cfg->live.capture_core;
    o->ring_size = cfg->live.ring_size;
    opts_online(&o->online, cfg);
    o->resume = resume;
    o->legacy = opts_dm_legacy;
    o->trainer_threads = trainer_threads(cfg);
    o->checkpoint = cfg->live.checkpoint;
    o->checkpoint_every = cfg->live.checkpoint_every;
    o->checkpoint_interval_ns = cfg->live.checkpoint_interval_ns;
    opts_replay(&o->replay, cfg);
    o->sample_seed = cfg->sample.seed;
    o->max_flow_windows = cfg->replay.max_flow_windows;
    o->flow_resample = cfg->replay.resample;
    const uint32_t L = cfg->capture.window, div = cfg->replay.context_div;
    o->flow_context = (int)(div ? L / div : cfg->replay.context);
    if (o->flow_context >= (int)L)
        return nd_error_set(
            e, ND_ECONFIG,
            "%s: replay.context %d: expected 0 to %u bins (capture.window is %u)",
            cfg->path[0] ? cfg->path : "defaults", o->flow_context, L - 1, L);
    if ((rc = opts_live_distill(o, cfg, resume, e))) return rc;
    o->status_interval_ns = cfg->live.status_interval_ns;
    o->metrics_port = cfg->live.metrics_port;
    o->metrics_addr = cfg->live.metrics_addr;
    o->listen = cfg->live.listen[0] ? cfg->live.listen : NULL;
    o->speed = 1.0;
    if (resume) return 0; /* the checkpoint's own settings */
    /* the config the model file keeps says how many cores trained it */
    nd_config kept = *cfg; /* shallow: only read */
    kept.model.threads = o->trainer_threads;
    rc = settings_and_text(&o->model, provenance, &kept, e);
    o->provenance = *provenance;
    return rc;
}
