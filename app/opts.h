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

#endif
