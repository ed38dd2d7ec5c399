/*
 * fuzz_ndfile.c — fuzz target for the container reader and everything behind it: any
 * bytes go through ndf_open_mem, and what opens goes through the dataset decoder and the
 * inspect summary. Nothing may crash, leak or read out of bounds (run it under ASan).
 * Built with clang -fsanitize=fuzzer (ND_LIBFUZZER=ON) it is a libFuzzer target; otherwise
 * replay_main.c runs it over seed files in ctest.
 */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_as_is_and_fixed(data, size, one);
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
        nd_json *js = nd_json_new();
        nd_inspect_reader(r, sink, js, &e);
        nd_json_free(js);
        fclose(sink);
    }
    ndf_close(r);
}
