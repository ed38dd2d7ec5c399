/*
 * fuzz_ndm.c — fuzz target for the model file: any bytes are loaded as `sample` and
 * `replay` load a model (nd_dm_load with the program's reader of version-1 settings):
 * container, DMCF record, the network built from it, weights, scales, decoder and
 * statistics; what loads is copied for sampling (nd_dm_snapshot) and summarised as
 * `inspect` does. Each input is tried as it is and with its CRCs made right, so that
 * mutations reach the decoders. A refused file must say why, naming the file.
 * libFuzzer target with ND_LIBFUZZER=ON; otherwise replay_main.c runs it over seeds.
 */
#include "fuzz_util.h"
#include "model.h"
#include "opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0) return;
    nd_error e = {0};
    nd_dm *m = nd_dm_load(path, ND_DM_BATCH_SAMPLE, opts_dm_legacy, &e);
    if (!m) {
        if (!e.code || !strstr(e.msg, path)) abort();
    } else {
        nd_dm *copy = nd_dm_snapshot(m, 2, &e);
        nd_dm_free(copy);
        nd_dm_free(m);
        ndf_reader *r = ndf_open(path, NDF_KIND_MODEL, &e);
        FILE *sink = fopen("/dev/null", "w");
        if (r && sink) nd_dm_inspect(r, sink, NULL, &e);
        if (sink) fclose(sink);
        ndf_close(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet++) nd_log_set_level(ND_LOG_ERROR);
    fuzz_as_is_and_fixed(data, size, one);
    return 0;
}
