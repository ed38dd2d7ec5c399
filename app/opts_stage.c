/*
 * opts_stage.c — config to options structs (opts.h).
 */
#include "opts.h"
