/*
 * ndfile_impl.h — private to libnd_base: what the containers need of the atomic file
 * writer besides nd.h, and whole-file reading. Not for other modules (they use nd.h).
 */
#ifndef ND_NDFILE_IMPL_H
#define ND_NDFILE_IMPL_H

#include "nd.h"

/* The atomic file (nd_afile) is declared in nd.h; these are for the containers only. */
/* As nd_afile_open, but "-" goes to standard output through a temporary file copied
 * there on commit, so that nd_afile_pwrite works (and a failure writes nothing). */
nd_afile *nd_afile_spooled_open(const char *path, nd_error *e);
/* Overwrites bytes already written (header patches); off + len <= bytes written. Not on
 * standard output opened with nd_afile_open. */
int nd_afile_pwrite(nd_afile *f, uint64_t off, const void *data, size_t len, nd_error *e);
uint64_t nd_afile_offset(const nd_afile *f); /* bytes written so far */

/* Reads a whole file into a malloc'd buffer with a NUL after the last byte (so that text
 * parsers may stop on it), noting it as an input (nd_input_note). Returns 0 or -errno
 * with e filled. */
int nd_read_file(const char *path, char **data, size_t *len, nd_error *e);

/* zlib's crc32 over any length (zlib takes at most 4 GiB - 1 per call). */
uint32_t nd_crc32(uint32_t crc, const void *data, uint64_t len);

#endif
