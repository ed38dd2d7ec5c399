/*
 * fuzz_ndfile.c — fuzz target for the container reader and everything behind it: any
 * bytes go through ndf_open_mem, and what opens goes through the dataset decoder and the
 * inspect summary. Nothing may crash, leak or read out of bounds (run it under ASan).
 * Built with clang -fsanitize=fuzzer (ND_LIBFUZZER=ON) it is a libFuzzer target; otherwise
 * replay_main.c runs it over seed files in ctest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Rewrites every CRC that the bytes' own structure implies, as far as it goes, so that
 * mutated lengths, counts and payloads reach the dataset decoder instead of all stopping
 * at the checksums (a fuzzer cannot forge CRC32s). Layout: docs/FORMATS.md. */
static void fix_crcs(uint8_t *d, size_t size)
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

static void one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    uint8_t *fixed = malloc(size ? size : 1);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    fix_crcs(fixed, size);
    one(fixed, size);
    free(fixed);
    return 0;
}

static void one(const uint8_t *data, size_t size)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open_mem(data, size, "fuzz.ndd", 0, &e);
    if (!r) {
        /* A rejected input must say why, in a message that names the input. */
        if (!e.code || !strstr(e.msg, "fuzz.ndd")) abort();
        return;
    }
    nd_dataset *ds = nd_dataset_from_container(r, &e);
    if (ds) {
        /* What loads must be consistent: labels index classes, arrays are complete. */
        for (uint64_t i = 0; i < ds->n_windows; i++)
            if (ds->labels[i] >= ds->n_classes) abort();
        nd_dataset_free(ds);
    }
    FILE *sink = fopen("/dev/null", "w");
    if (sink) {
        nd_inspect_reader(r, sink, &e);
        fclose(sink);
    }
    ndf_close(r);
}
