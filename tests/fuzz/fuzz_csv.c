/*
 * fuzz_csv.c — fuzz target for the series CSV reader (nd_csv_read_mem). Whatever is
 * read back must be a consistent dataset and survive a write/read round trip unchanged.
 * libFuzzer target with ND_LIBFUZZER=ON; otherwise replay_main.c runs it over seeds.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nd_error e = {0};
    nd_dataset *ds = nd_csv_read_mem((const char *)data, size, "fuzz.csv", 1000, &e);
    if (!ds) {
        if (!e.code || strncmp(e.msg, "fuzz.csv:", 9)) abort();
        return 0;
    }
    if (ds->n_channels == 0 || ds->L == 0) abort();
    for (uint64_t i = 0; i < ds->n_windows; i++)
        if (ds->labels[i] >= ds->n_classes) abort();
    /* Round trip through a file: what was read is written and read back the same. */
    char path[] = "/tmp/nd-fuzz-csv.XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        close(fd);
        if (nd_csv_write(ds, path, &e)) abort();
        nd_dataset *back = nd_csv_read(path, 1000, &e);
        if (!back || back->n_windows != ds->n_windows || back->n_classes != ds->n_classes ||
            (ds->n_windows && memcmp(back->values, ds->values,
                                     ds->n_windows * ds->n_channels * ds->L * sizeof(float))))
            abort();
        nd_dataset_free(back);
        unlink(path);
    }
    nd_dataset_free(ds);
    return 0;
}
