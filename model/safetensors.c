/*
 * safetensors.c — `netdiffus export MODEL.ndm --safetensors OUT`: the network's EMA weights
 * in the safetensors format (an 8-byte little-endian header length, a JSON header naming
 * each tensor's dtype, shape and byte range, then the raw little-endian data), which
 * PyTorch, JAX and most ML tools read. Names and shapes are PyTorch's, so that the U-Net
 * of scripts/torch_reference.py loads the file with load_state_dict(strict=True); the
 * network's settings go into the header's "__metadata__" (docs/FORMATS.md).
 *
 * The JSON is written by hand: every name is a parameter name of nd_unet_tensor (letters,
 * digits, dots and underscores) and every value a number or a fixed word, so nothing
 * needs escaping.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* safetensors readers expect the data to start 8-byte aligned: the header is padded with
 * spaces (which JSON ignores) to a multiple of 8. */
#define HEADER_ALIGN 8

/* nd_unet_tensor's name with PyTorch's suffixes (".w" -> ".weight", ".b" -> ".bias"). */
static void torch_name(char *out, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (n >= 2 && !strcmp(name + n - 2, ".w"))
        snprintf(out, len, "%.*s.weight", (int)(n - 2), name);
    else if (n >= 2 && !strcmp(name + n - 2, ".b"))
        snprintf(out, len, "%.*s.bias", (int)(n - 2), name);
    else snprintf(out, len, "%s", name);
}

/* The JSON header of m's network (unpadded) in a malloc'd string; NULL on -ENOMEM. */
static char *header_json(nd_dm *m, size_t *len)
{
    const nd_dm_settings *s = nd_dm_get_settings(m);
    const nd_unet_config *u = &s->net;
    nd_unet *net = nd_dm_unet(m);
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    fprintf(
        f,
        "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"netdiffus\",\"weights\":\"ema\","
        "\"step\":\"%" PRIu64 "\",\"channels\":\"%d\",\"L\":\"%d\",\"base\":\"%d\","
        "\"mult\":\"",
        nd_dm_step(m), u->channels, u->L, u->base);
    for (int l = 0; l < u->levels; l++) fprintf(f, "%s%d", l ? "," : "", u->mult[l]);
    fprintf(f,
            "\",\"res_blocks\":\"%d\",\"attn_min_res\":\"%d\",\"groups\":\"%d\","
            "\"emb_dim\":\"%d\",\"max_classes\":\"%d\",\"coords\":\"%d\",\"context\":\"%d\","
            "\"position\":\"%d\",\"guidance\":\"%d\",\"mask\":\"%d\","
            "\"timesteps\":\"%u\",\"prediction\":\"%s\",\"schedule\":\"%s\"}",
            u->res_blocks, u->attn_min_res, u->groups, u->emb_dim, u->max_classes, u->coords,
            s->context, s->flow_position, u->guide_rows != 0, s->mask, s->timesteps,
            s->pred == ND_PRED_V ? "v" : "eps",
            s->schedule == ND_SCHEDULE_LINEAR ? "linear" : "cosine");
    for (size_t i = 0; i < nd_unet_num_tensors(net); i++) {
        const char *name;
        size_t off, numel;
        int shape[4];
        char tname[80];
        nd_unet_tensor(net, i, &name, &off, &numel);
        int nd = nd_unet_tensor_shape(net, i, shape);
        torch_name(tname, sizeof tname, name);
        fprintf(f, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", tname);
        for (int d = 0; d < nd; d++) fprintf(f, "%s%d", d ? "," : "", shape[d]);
        fprintf(f, "],\"data_offsets\":[%zu,%zu]}", 4 * off, 4 * (off + numel));
    }
    fputc('}', f);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}

int nd_dm_export_safetensors(nd_dm *m, const char *path, nd_error *e)
{
    size_t hlen;
    char *json = header_json(m, &hlen);
    if (!json) return nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    size_t padded = (hlen + HEADER_ALIGN - 1) / HEADER_ALIGN * HEADER_ALIGN;
    nd_afile *f = nd_afile_open(path, e);
    if (!f) {
        free(json);
        return e ? e->code : -EIO;
    }
    unsigned char buf[4096 * 4];
    nd_put_u64(buf, padded);
    int rc = nd_afile_write(f, buf, 8, e);
    if (!rc) rc = nd_afile_write(f, json, hlen, e);
    free(json);
    memset(buf, ' ', HEADER_ALIGN);
    if (!rc) rc = nd_afile_write(f, buf, padded - hlen, e);
    /* the tensors lie in block order, back to back: the byte ranges of the header */
    const float *w = nd_dm_ema(m);
    size_t n = nd_unet_num_params(nd_dm_unet(m));
    for (size_t i = 0; !rc && i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < k; j++) nd_put_f32(buf + 4 * j, w[i + j]);
        rc = nd_afile_write(f, buf, 4 * k, e);
    }
    if (rc) {
        nd_afile_abort(f);
        return rc;
    }
    return nd_afile_commit(f, e);
}
