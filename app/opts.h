/*
 * opts.h — the program's one bridge from the config (conf.h) to the libraries: each
 * library takes an options struct of its own and never sees struct nd_config; these
 * functions fill those structs from a loaded config (private to app/, and to the tests
 * that check the mapping).
 */
#ifndef ND_OPTS_H
#define ND_OPTS_H

#include "capture.h"
#include "conf.h"
#include "live.h"
#include "model.h"
#include "nd.h"
#include "replay.h"

/* ---- capture and replay (opts_stage.c) --------------------------------------------- */

/* Sets every field of o from cfg's capture section and class rules. Strings (class names
 * and filters, default_class, dpdk_eal) point into cfg, which must outlive o. */
void opts_capture(capture_opts *o, const nd_config *cfg);

/* replay_opts_defaults(o), then cfg's replay section on top (a negative speed, empty
 * pools or MACs and 0 clients or servers keep the defaults). The fields the config has no
 * key for (only_class, spin_ns, stop, status) keep their defaults. Strings and the mix's
 * class names point into cfg, which must outlive o. */
void opts_replay(replay_opts *o, const nd_config *cfg);

/* ---- model and live (opts_model.c) ------------------------------------------------- */

/* model.*, train.* and sample.* of cfg as a model's settings (net.channels and net.L are
 * left 0: nd_dm_new takes them from the dataset). Returns 0, or ND_ECONFIG with e naming
 * the key whose value the model cannot take. */
int opts_dm_settings(nd_dm_settings *s, const nd_config *cfg, nd_error *e);
/* sample.* and model.decode of cfg as sampling settings. 0 or ND_ECONFIG. */
int opts_dm_sampling(nd_dm_sampling *s, const nd_config *cfg, nd_error *e);
/* nd_dm_legacy_fn: the settings of a model file from before DMCF stored them, from the
 * config text it embeds. */
int opts_dm_legacy(nd_dm_settings *s, const char *yaml, const char *path, nd_error *e);
/* A model file for sample and replay: a path, or an http(s):// URL (a trainer's GET
 * /model.ndm) fetched into a temporary file first (at most OPTS_FETCH_MAX bytes,
 * OPTS_FETCH_TIMEOUT_S seconds). nd_dm_load's max_batch; NULL with e filled. */
#define OPTS_FETCH_MAX       (4ull << 30)
#define OPTS_FETCH_TIMEOUT_S 600L
nd_dm *opts_dm_open(const char *path, int max_batch, nd_error *e);
/* Whether a --set assignment is a sampling setting (sample.*, model.decode), which
 * `train --resume` may change without changing the training run. */
int opts_is_sampling_set(const char *set);
/* `train --resume --set sample.KEY=VAL ...`: the sampling assignments of sets (others
 * are skipped) applied to the config text m keeps, checked as the config's, and the
 * result as m's sampling settings (stored when m is next saved). 0 or a code. */
int opts_dm_resume_sets(nd_dm *m, const char *const *sets, size_t n_sets, nd_error *e);
/* A new model for ds with cfg's settings, cfg kept in the file as its provenance. NULL
 * with e filled. */
nd_dm *opts_dm_new(const nd_config *cfg, const nd_dataset *ds, nd_error *e);
/* live.* of cfg as the online trainer's options. */
void opts_online(nd_online_opts *o, const nd_config *cfg);
/* `live`'s options from cfg: capture, replay (sample.seed for its sampling), the online
 * trainer's, the rest of live.*, the trainer's cores (live.trainer_threads, else the
 * cores the capture thread does not use) and, unless resume, a new model's settings with
 * cfg as their provenance (*provenance: the caller frees it; NULL with resume). The
 * command line's part is left as without options: no sources, speed 1, no limits, no
 * replay sink, no stats, no stop flag. Strings point into cfg, which must outlive o.
 * Returns 0, or ND_ECONFIG / -ENOMEM with e filled. */
int opts_live(nd_live_opts *o, char **provenance, const nd_config *cfg, int resume,
              nd_error *e);

#endif
