/*
 * fuzz_util.h — shared by the fuzz targets: the container CRC fixer (so that mutations
 * reach the decoders behind the checksums) and an in-memory file, for readers that take
 * a path (the pcap reader, the model loader).
 */
#ifndef ND_FUZZ_UTIL_H
#define ND_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "nd.h"

/* Rewrites every CRC that the bytes' own structure implies, as far as it goes, so that
 * mutated lengths, counts and payloads reach the decoders instead of all stopping at the
 * checksums (a fuzzer cannot forge CRC32s). Layout: docs/FORMATS.md. */
static inline void fuzz_fix_crcs(uint8_t *d, size_t size)
{
    if (size < 40) return;
    uint32_t count = nd_get_u32(d + 16);
    size_t off = 40;
    for (uint32_t i = 0; i < count && size - off >= 16; i++) {
        uint64_t len = nd_get_u64(d + off + 8);
        if (len > size - off - 16) break;
        uint32_t crc = (uint32_t)crc32(0, d + off + 16, (uInt)len);
        crc = (uint32_t)crc32(crc, d + off, 4);
        crc = (uint32_t)crc32(crc, d + off + 8, 8);
        nd_put_u32(d + off + 4, crc);
        off += 16 + len;
        off += (8 - off % 8) % 8;
        if (off > size) break;
    }
    nd_put_u64(d + 24, size); /* the declared size, too */
    nd_put_u32(d + 36, (uint32_t)crc32(0, d, 36));
}

/* Runs one(data, size), then one on a copy with its CRCs made right (fuzz_fix_crcs). The
 * copy's buffer is kept from input to input: model inputs are ~200 KB, and a fresh
 * allocation of that size under ASan is an mmap and its page faults every time. */
static inline void fuzz_as_is_and_fixed(const uint8_t *data, size_t size,
                                        void (*one)(const uint8_t *, size_t))
{
    static uint8_t *fixed;
    static size_t cap;
    one(data, size);
    if (size > cap) {
        uint8_t *p = realloc(fixed, size);
        if (!p) return;
        fixed = p, cap = size;
    }
    if (size) memcpy(fixed, data, size);
    fuzz_fix_crcs(fixed, size);
    one(fixed, size);
}

/* The bytes as a file in memory: its descriptor (-1 on failure) and a path that opens it
 * ("/proc/self/fd/N", in path). One file serves every input (it is rewritten in place:
 * creating and freeing a memory file per input cost more than the readers did); the
 * caller does not close it. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t len)
{
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("fuzz", MFD_CLOEXEC)) < 0) return -1;
    if (ftruncate(fd, (off_t)size)) return -1;
    for (size_t off = 0; off < size;) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
