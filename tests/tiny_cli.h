/*
 * tiny_cli.h — the tiny dataset and config of the command-line tests of the model
 * commands (train, sample, eval, inspect, replay): a series CSV of 12 windows of 8 bins
 * (web: sparse 1500-byte bins, video: busy ones) and a model trained in a second.
 * Include after check.h.
 */
#ifndef ND_TEST_TINY_CLI_H
#define ND_TEST_TINY_CLI_H

#include <stdio.h>

/* The series CSV: 12 windows, classes web and video alternating, bytes_down and bytes_up. */
static inline void tiny_cli_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fprintf(f, "class");
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 8; i++) fprintf(f, ",%s_%d", c ? "bytes_up" : "bytes_down", i);
    fputc('\n', f);
    for (int w = 0; w < 12; w++) {
        fprintf(f, "%s", w % 2 ? "video" : "web");
        for (int j = 0; j < 16; j++)
            fprintf(f, ",%d", w % 2 ? 100000 + 1000 * ((w + j) % 7) : ((w + j) % 3 ? 0 : 1500));
        fputc('\n', f);
    }
    fclose(f);
}

/* The config: train.steps steps (a checkpoint every 10), sample keys beyond steps and
 * batch in sample_more (", calibrate: 8", or ""). */
static inline void tiny_cli_conf(const char *path, int steps, const char *sample_more)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fprintf(f,
            "capture: {window: 8, min_active_bins: 1}\n"
            "model: {base_channels: 8, channel_mult: [1, 2], res_blocks: 1, attn_min_res: 0,\n"
            "        groups: 4, emb_dim: 16, max_classes: 4, threads: 1}\n"
            "train: {steps: %d, batch: 4, checkpoint_every: 10, val_fraction: 0.2}\n"
            "sample: {steps: 5, batch: 8%s}\n",
            steps, sample_more);
    fclose(f);
}

#endif
