/*
 * unet_forward.c — test helper of test_safetensors.py (not a test itself): netdiffus's own
 * network output for a given input, to compare with PyTorch's on the exported weights.
 *
 *   unet_forward MODEL.ndm IN.f32 OUT.f32 T:Y[:G]...
 *
 * Loads the model, puts its EMA weights (what the export writes) into the network, reads
 * B images (image channels × L × L little-endian float32 each) from IN.f32, runs one
 * forward pass with image i at time step T (a float), class row Y and, for a student that
 * takes the guidance scale as an input, fractional guidance row G (0 if not given), and
 * writes the B
 * outputs, same layout, to OUT.f32. float32 throughout (bf16 stays off: nd_ctx's
 * default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"

int main(int argc, char **argv)
{
    if (argc < 5) CHECK_FAIL_("usage: unet_forward MODEL.ndm IN.f32 OUT.f32 T:Y[:G]...");
    int B = argc - 4;
    nd_error e = {0};
    nd_dm *m = nd_dm_load(argv[1], B, NULL, &e);
    if (!m) CHECK_FAIL_("%s", e.msg);
    nd_unet *net = nd_dm_unet(m);
    const nd_unet_config *c = nd_unet_cfg(net);
    memcpy(nd_unet_params(net), nd_dm_ema(m), nd_unet_num_params(net) * sizeof(float));

    size_t n = (size_t)B * c->channels * c->L * c->L;
    float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)),
          *t = malloc(B * sizeof(float)), *g = calloc(B, sizeof(float));
    int *y = malloc(B * sizeof(int));
    unsigned char *raw = malloc(n * 4);
    CHECK(x && out && t && y && g && raw);
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(raw, 4, n, f) != n || fgetc(f) != EOF)
        CHECK_FAIL_("%s: expected exactly %zu float32 values", argv[2], n);
    fclose(f);
    for (size_t i = 0; i < n; i++) x[i] = nd_get_f32(raw + 4 * i);
    for (int b = 0; b < B; b++) {
        char *end;
        t[b] = strtof(argv[4 + b], &end);
        if (*end != ':') CHECK_FAIL_("%s: expected T:Y", argv[4 + b]);
        y[b] = (int)strtol(end + 1, &end, 10);
        if (*end == ':') g[b] = strtof(end + 1, &end);
        if (*end || y[b] < 0 || y[b] > c->max_classes || g[b] < 0 ||
            (g[b] > 0 && g[b] > c->guide_rows - 1))
            CHECK_FAIL_("%s: expected T:Y[:G] with Y in 0..%d, G in 0..%d", argv[4 + b],
                        c->max_classes, c->guide_rows - 1);
    }

    nd_ctx *ctx = nd_ctx_new(1);
    CHECK(ctx);
    nd_unet_set_guide(net, g);
    nd_unet_forward(net, ctx, out, x, t, y, B);
    for (size_t i = 0; i < n; i++) nd_put_f32(raw + 4 * i, out[i]);
    f = fopen(argv[3], "wb");
    if (!f || fwrite(raw, 4, n, f) != n || fclose(f)) CHECK_FAIL_("%s: cannot write", argv[3]);
    nd_ctx_free(ctx);
    nd_dm_free(m);
    free(x), free(out), free(t), free(y), free(g), free(raw);
    return 0;
}
