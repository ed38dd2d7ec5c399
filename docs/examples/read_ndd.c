/*
 * read_ndd.c — reads a netdiffus dataset file (.ndd) with libnetdiffus and prints, per
 * class, how many windows it holds and their mean bytes per bin in each channel.
 *
 *   cc read_ndd.c $(pkg-config --cflags --libs netdiffus) -o read_ndd
 *   ./read_ndd capture.ndd
 *
 * The same library reads model files (nd_dm_load, <netdiffus/model.h>), captures
 * (capture.h) and replays (replay.h): each header says what its functions do.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <netdiffus/nd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: read_ndd FILE.ndd\n");
        return 2;
    }
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(argv[1], &e);
    if (!ds) {
        fprintf(stderr, "read_ndd: %s\n", e.msg);
        return 1;
    }
    printf("%s: %" PRIu64 " windows, %u channels x %u bins of %" PRIu64 " ns, %u classes\n",
           argv[1], ds->n_windows, ds->n_channels, ds->L, ds->bin_ns, ds->n_classes);
    size_t per_window = (size_t)ds->n_channels * ds->L;
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        uint64_t n = 0;
        double sum[ND_MAX_CHANNELS] = {0};
        for (uint64_t w = 0; w < ds->n_windows; w++) {
            if (ds->labels[w] != k) continue;
            n++;
            for (uint32_t c = 0; c < ds->n_channels; c++)
                for (uint32_t t = 0; t < ds->L; t++)
                    sum[c] += ds->values[w * per_window + (size_t)c * ds->L + t];
        }
        printf("class %s: %" PRIu64 " windows", ds->class_names[k], n);
        for (uint32_t c = 0; c < ds->n_channels && n; c++)
            printf(", %s %.1f", ds->channel_names[c], sum[c] / ((double)n * ds->L));
        printf("\n");
    }
    nd_dataset_free(ds);
    return 0;
}
