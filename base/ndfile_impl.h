/*
 * ndfile_impl.h — private to libnd_base: the atomic file writer under containers and
 * series CSV, and whole-file reading. Not for other modules (they use ndf_* in nd.h).
 */
#ifndef ND_NDFILE_IMPL_H
#define ND_NDFILE_IMPL_H

#include "nd.h"

/* A file written to a temporary name beside its target and renamed over it on commit.
 * Writes are buffered; the first failure is kept (sticky) and returned again by every
 * later call, so callers may check only at the end. */
typedef struct nd_afile nd_afile;

/* NULL and e filled ("PATH: ...") on failure. */
nd_afile *nd_afile_open(const char *path, nd_error *e);
int nd_afile_write(nd_afile *f, const void *data, size_t len, nd_error *e);
/* Overwrites bytes already written (header patches); off + len <= bytes written. */
int nd_afile_pwrite(nd_afile *f, uint64_t off, const void *data, size_t len, nd_error *e);
uint64_t nd_afile_offset(const nd_afile *f); /* bytes written so far */
/* Flush, fsync, rename over the target, fsync the directory. Frees f in every case; on
 * any failure the temporary file is removed and the target is untouched. */
int nd_afile_commit(nd_afile *f, nd_error *e);
void nd_afile_abort(nd_afile *f); /* removes the temporary file; NULL is a no-op */

/* Reads a whole file into a malloc'd buffer with a NUL after the last byte (so that text
 * parsers may stop on it). Returns 0 or -errno with e filled. */
int nd_read_file(const char *path, char **data, size_t *len, nd_error *e);

/* zlib's crc32 over any length (zlib takes at most 4 GiB - 1 per call). */
uint32_t nd_crc32(uint32_t crc, const void *data, uint64_t len);

#endif
