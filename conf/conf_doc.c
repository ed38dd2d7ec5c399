/*
 * conf_doc.c — documents generated from the key table: the Markdown reference
 * (docs/CONFIG.md) and the commented default config (conf/examples/default.yaml).
 * scripts/gen-config-doc writes both; tests/conf fails when either is out of date.
 */
#include <string.h>

#include "conf_impl.h"

static const char *type_name(const conf_key *k)
{
    static const char *const names[] = {
        [CONF_BOOL] = "bool",     [CONF_INT] = "int",       [CONF_UINT] = "uint",
        [CONF_DOUBLE] = "number", [CONF_STRING] = "string", [CONF_DURATION] = "duration",
        [CONF_SIZE] = "size",     [CONF_ENUM] = "enum",     [CONF_RES] = "resolution",
        [CONF_LIST] = "list",
    };
    return names[k->type];
}

/* Markdown table cell: '|' would end the cell. */
static void md_cell(const char *s, FILE *out)
{
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", out);
        else fputc(*s, out);
    }
}

/* "expected X" → "X", for the allowed column. */
static void allowed(const conf_key *k, FILE *out)
{
    char buf[512];
    conf_expected(k, buf, sizeof buf);
    md_cell(buf + strlen("expected "), out);
}

static void key_row(const conf_key *k, const char *name, const void *defaults, FILE *out)
{
    fprintf(out, "| `%s` | %s | `", name, type_name(k));
    if (defaults) {
        conf_value_yaml(k, defaults, 0, out);
    } else {
        /* list-item fields: their default text as written in the table */
        if (k->required) fputs("(required)", out);
        else if (k->type == CONF_STRING) fprintf(out, "\"%s\"", k->def);
        else fputs(k->def, out);
    }
    fputs("` | ", out);
    allowed(k, out);
    fputs(" | ", out);
    md_cell(k->unit ? k->unit : "", out);
    fputs(" | ", out);
    md_cell(k->help, out);
    fputs(" |\n", out);
}

static void section_intro(const char *section, FILE *out)
{
    static const struct {
        const char *name, *text;
    } intros[] = {
        {"capture", "Where packets come from, how flows are tracked and how their traffic "
                    "is cut into windows of bins (`netdiffus capture`, `live`)."},
        {"classes", "The traffic classes: labels of the model, and for capture the BPF rules "
                    "that give a flow its class (first match wins)."},
        {"model",
         "The denoising U-Net (\"unet-ref\", docs/MODEL.md) and its diffusion "
         "process. Image side L = `capture.window`; level i of `channel_mult` runs at "
         "L/2^i, so the default (1, 2, 2) has 32, 64, 64 feature maps at 64, 32 and 16 "
         "px, and `attn_min_res: L/4` puts self-attention at 16 px, the middle block, "
         "for any window."},
        {"train", "Training (`netdiffus train`, and `live` for the optimiser settings)."},
        {"sample", "Sampling windows from a model (`netdiffus sample`, `replay`, `live`)."},
        {"replay", "Turning sampled series into packets on a sink (`netdiffus replay`)."},
        {"live", "Capture, online training and optional replay in one process "
                 "(`netdiffus live`)."},
    };
    for (size_t i = 0; i < sizeof intros / sizeof intros[0]; i++)
        if (!strcmp(intros[i].name, section)) fprintf(out, "%s\n\n", intros[i].text);
}

static const char table_head[] = "| key | type | default | allowed | unit | description |\n"
                                 "|---|---|---|---|---|---|\n";

/* Each list of mappings gets a table of its item fields after the section's table. */
static void item_tables(const char *section, FILE *out)
{
    for (size_t i = 0; i < conf_keys_count(); i++) {
        const conf_key *k = &conf_keys[i];
        size_t n = strlen(section);
        if (k->type != CONF_LIST || !k->list->map || strncmp(k->name, section, n) ||
            (k->name[n] && k->name[n] != '.'))
            continue;
        fprintf(out, "\nEach item of `%s` (at most %u, `%s` unique):\n\n%s", k->name,
                k->list->max_items, k->list->unique, table_head);
        for (size_t j = 0; j < k->list->n_keys; j++) {
            char name[128];
            snprintf(name, sizeof name, "%s[].%s", k->name, k->list->keys[j].name);
            key_row(&k->list->keys[j], name, NULL, out);
        }
    }
}

void nd_config_reference(FILE *out)
{
    nd_config d;
    nd_config_defaults(&d);
    fputs("# netdiffus configuration reference\n\n"
          "<!-- Generated from the key table (conf/conf_keys.c) by scripts/gen-config-doc. "
          "Do not edit: a test fails when this file and the table differ. -->\n\n"
          "netdiffus reads one YAML file, given with `--config FILE`. It has the sections "
          "below; every key has a default, so a file sets only what differs (an empty file "
          "is the defaults). `netdiffus inspect --config FILE` prints the effective config, "
          "which reads back unchanged. conf/examples/ holds complete examples; "
          "conf/examples/default.yaml lists every key at its default.\n\n"
          "Command-line overrides take `section.key=value` and are checked the same way; "
          "lists take YAML flow text: `capture.sources=[pcap:a.pcap, pcap:b.pcap]`.\n\n"
          "## Values\n\n"
          "- **duration**: a number and a unit, `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`: "
          "`250us`, `100ms`, `1.5s`, `2m`, `1h`. The unit is required (a bare `5` is an "
          "error); fractions must come to whole nanoseconds.\n"
          "- **size**: bytes, with an optional binary unit: `k`, `K`, `KiB` (1024), `M`, "
          "`MiB`, `G`, `GiB`, `T`, `TiB`, `B`: `1500`, `1k`, `64MiB`, `2GiB`.\n"
          "- **bool**: `true` or `false` (`yes`/`no`, `on`/`off` too).\n"
          "- **uint**, **int**, **number**: decimal; `2e-4` for numbers.\n"
          "- **resolution**: image side in pixels, or `L/N` (N a power of two) to follow "
          "`capture.window` = L when the window changes.\n"
          "- **list**: a YAML sequence, block (`- item` lines) or flow (`[a, b]`) style.\n"
          "- Negative values, values out of range, unknown keys (the error suggests the "
          "nearest one), keys given twice, a second YAML document and lists or mappings "
          "nested more than ",
          out);
    fprintf(out,
            "%d levels deep are errors. Errors read "
            "`FILE:LINE:COL: KEY: expected ..., got '...'`.\n",
            CONF_MAX_DEPTH);
    char section[32] = "";
    for (size_t i = 0; i < conf_keys_count(); i++) {
        const conf_key *k = &conf_keys[i];
        const char *leaf = conf_key_leaf(k);
        int slen = leaf == k->name ? (int)strlen(k->name) : (int)(leaf - 1 - k->name);
        if (strncmp(section, k->name, (size_t)slen) || section[slen]) {
            if (*section) item_tables(section, out);
            snprintf(section, sizeof section, "%.*s", slen, k->name);
            fprintf(out, "\n## %s\n\n", section);
            section_intro(section, out);
            fputs(table_head, out);
        }
        key_row(k, k->name, &d, out);
    }
    item_tables(section, out);
    fputs("\n## Rules between keys\n\nChecked after the whole file (and after each "
          "override); the error points at the first key named where the file sets it.\n\n",
          out);
    for (size_t i = 0; conf_rules_text[i]; i++) fprintf(out, "- %s\n", conf_rules_text[i]);
    nd_config_free(&d);
}

/* "# text" lines of at most width columns, after indent. */
static void comment(const char *indent, const char *text, FILE *out)
{
    const int width = 88 - (int)strlen(indent) - 2;
    const char *p = text;
    while (*p) {
        int n = (int)strlen(p);
        if (n > width) {
            n = width;
            while (n > 0 && p[n] != ' ') n--;
            if (!n) n = width;
        }
        fprintf(out, "%s# %.*s\n", indent, n, p);
        p += n;
        while (*p == ' ') p++;
    }
}

void conf_write_yaml(const nd_config *cfg, int comments, FILE *out)
{
    char section[32] = "";
    for (size_t i = 0; i < conf_keys_count(); i++) {
        const conf_key *k = &conf_keys[i];
        const char *leaf = conf_key_leaf(k);
        const char *indent = leaf == k->name ? "" : "  ";
        int slen = leaf == k->name ? (int)strlen(k->name) : (int)(leaf - 1 - k->name);
        if (strncmp(section, k->name, (size_t)slen) || section[slen]) {
            snprintf(section, sizeof section, "%.*s", slen, k->name);
            if (comments) fputc('\n', out);
            if (leaf != k->name) fprintf(out, "%s:\n", section);
        }
        if (comments) {
            char why[512], line[768];
            conf_expected(k, why, sizeof why);
            snprintf(line, sizeof line, "%s (%s%s%s)", k->help, why + strlen("expected "),
                     k->unit ? "; " : "", k->unit ? k->unit : "");
            comment(indent, line, out);
        }
        fprintf(out, "%s%s:", indent, leaf);
        /* a block list starts on the next line; anything else after one space */
        int block = k->type == CONF_LIST && k->list->map && *conf_list_count(k->list, cfg);
        if (!block) fputc(' ', out);
        conf_value_yaml(k, cfg, 1, out);
        fputc('\n', out);
    }
}

void conf_default_yaml(FILE *out)
{
    nd_config d;
    nd_config_defaults(&d);
    fputs("# netdiffus: every configuration key at its default, with what it means.\n"
          "# Generated from conf/conf_keys.c by scripts/gen-config-doc (do not edit; a test\n"
          "# checks it). Copy what you need: a config file sets only what differs.\n",
          out);
    conf_write_yaml(&d, 1, out);
    nd_config_free(&d);
}
