/*
 * opts.h — the program's one bridge from the config (conf.h) to the libraries: each
 * library takes an options struct of its own and never sees struct nd_config; these
 * functions fill those structs from a loaded config (private to app/, and to the tests
 * that check the mapping).
 */
#ifndef ND_OPTS_H
#define ND_OPTS_H

#include "conf.h"
#include "nd.h"

/* ---- capture and replay (opts_stage.c) --------------------------------------------- */

/* ---- model and live (opts_model.c) ------------------------------------------------- */

#endif
