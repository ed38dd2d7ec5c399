/*
 * opts_model.c — config to options structs (opts.h).
 */
#include "opts.h"
