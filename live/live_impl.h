/*
 * live_impl.h — private to libnd_live: what its files share beyond live.h.
 */
#ifndef ND_LIVE_IMPL_H
#define ND_LIVE_IMPL_H

#include "live.h"

/* Appends a window as it was (online.c restoring a checkpoint; n < cap): returns where
 * its wf floats go, NULL on -ENOMEM. */
float *nd_reservoir_append(nd_reservoir *r, uint64_t group);

#endif
