/*
 * conf.c — netdiffus configuration: YAML (libyaml document API) → struct nd_config,
 * checked against the key table of conf_keys.c, plus defaults, command-line overrides,
 * cross-key rules and the effective config written back as YAML.
 *
 * Every error names FILE:LINE:COL (1-based, from libyaml's marks), the key, what was
 * expected and what was found. Parsing always works on a copy, so a failed load or
 * override never leaves a half-updated config behind.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "conf_impl.h"

#define CONF_MAX_KEYS 256
#define CONF_MAX_FILE (16u << 20) /* a config larger than this is a mistake */

typedef struct conf_seen {
    int set;
    yaml_mark_t at; /* the value's position */
} conf_seen;

/* One parse: where messages point and which keys the text has set so far. */
typedef struct conf_ctx {
    const char *name; /* file name, or the override text */
    nd_error *e;
    yaml_document_t *doc;
    int file;                      /* seen[].at are positions in a file worth printing */
    size_t col0;                   /* added to first-line columns: an override's value
                                      starts after "key=" */
    conf_seen seen[CONF_MAX_KEYS]; /* by index in conf_keys */
} conf_ctx;

static void ctx_init(conf_ctx *c, const char *name, nd_error *e)
{
    ND_ASSERT(conf_keys_count() <= CONF_MAX_KEYS);
    memset(c, 0, sizeof *c);
    c->name = name;
    c->e = e;
}

/* "NAME:LINE:COL: KEY: message" (position and key each only when known). */
__attribute__((format(printf, 4, 5))) static int
conf_fail(conf_ctx *c, const yaml_mark_t *at, const char *key, const char *fmt, ...)
{
    char msg[768], where[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        snprintf(where, sizeof where, "%s:%zu:%zu", c->name, at->line + 1,
                 at->column + 1 + (at->line ? 0 : c->col0));
    else snprintf(where, sizeof where, "%s", c->name);
    if (key) return nd_error_set(c->e, ND_ECONFIG, "%s: %s: %s", where, key, msg);
    return nd_error_set(c->e, ND_ECONFIG, "%s: %s", where, msg);
}

static const char *node_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a mapping"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a scalar";
}

/* A plain empty scalar, "~" or "null": YAML's null. "key:" with nothing after it. */
static int node_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null");
}

/* The nearest of n names to typed, by edit distance. A typed name without a section
 * ("window=32" on a command line) is compared with the names' parts after the dot. */
static const char *nearest(const char *typed, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        const char *dot = strchr(names[i], '.');
        size_t d = conf_edit_distance(typed, dot && !strchr(typed, '.') ? dot + 1 : names[i]);
        if (d < best_d) best = names[i], best_d = d;
    }
    return best;
}

/* A scalar node's text into scalar key k at base. */
static int apply_scalar(conf_ctx *c, const conf_key *k, const char *label, void *base,
                        const yaml_node_t *n)
{
    char why[512];
    if (n->type != YAML_SCALAR_NODE) {
        conf_expected(k, why, sizeof why);
        return conf_fail(c, &n->start_mark, label, "%s, got %s", why, node_kind(n));
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length)
        return conf_fail(c, &n->start_mark, label, "a value cannot hold a NUL byte");
    if (k->type == CONF_STRING && node_is_null(n)) v = "";
    if (conf_scalar_set(k, base, v, why, sizeof why))
        return conf_fail(c, &n->start_mark, label, "%s, got '%.80s%s'", why, v,
                         strlen(v) > 80 ? "..." : "");
    return 0;
}

/* One mapping item of a list of mappings (a class rule, a mix entry). */
static int apply_map_item(conf_ctx *c, const conf_key *k, size_t index, void *item,
                          yaml_node_t *n)
{
    const conf_list *l = k->list;
    char label[128];
    snprintf(label, sizeof label, "%s[%zu]", k->name, index);
    if (n->type != YAML_MAPPING_NODE) {
        char why[512];
        conf_expected(k, why, sizeof why);
        return conf_fail(c, &n->start_mark, label, "%s, got %s", why, node_kind(n));
    }
    const yaml_node_t *set_by[8] = {0};
    ND_ASSERT(l->n_keys <= 8);
    for (size_t j = 0; j < l->n_keys; j++) {
        char why[512]; /* required fields have no default: the item must set them */
        if (!l->keys[j].required)
            ND_ASSERT(!conf_scalar_set(&l->keys[j], item, l->keys[j].def, why, sizeof why));
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        const char *name =
            kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        size_t j = 0;
        while (j < l->n_keys && strcmp(l->keys[j].name, name)) j++;
        if (j == l->n_keys) {
            const char *names[8];
            for (size_t i = 0; i < l->n_keys; i++) names[i] = l->keys[i].name;
            return conf_fail(c, &kn->start_mark, label, "unknown key '%s', did you mean '%s'?",
                             name, nearest(name, names, l->n_keys));
        }
        char item_label[160];
        snprintf(item_label, sizeof item_label, "%s.%s", label, name);
        if (set_by[j])
            return conf_fail(c, &kn->start_mark, item_label, "set twice (first at %zu:%zu)",
                             set_by[j]->start_mark.line + 1, set_by[j]->start_mark.column + 1);
        set_by[j] = vn;
        if (apply_scalar(c, &l->keys[j], item_label, item, vn)) return ND_ECONFIG;
    }
    for (size_t j = 0; j < l->n_keys; j++)
        if (l->keys[j].required && !set_by[j])
            return conf_fail(c, &n->start_mark, label, "missing '%s' (%s)", l->keys[j].name,
                             l->keys[j].help);
    return 0;
}

/* Field of list item keys by name ("name" of a class rule). */
static const conf_key *item_key(const conf_list *l, const char *name)
{
    for (size_t j = 0; j < l->n_keys; j++)
        if (!strcmp(l->keys[j].name, name)) return &l->keys[j];
    ND_ASSERT(0);
}

/* A YAML sequence (or null: empty) into list key k of cfg, replacing what was there. */
static int apply_list(conf_ctx *c, const conf_key *k, nd_config *cfg, yaml_node_t *n)
{
    const conf_list *l = k->list;
    char why[512];
    size_t count = 0;
    if (!node_is_null(n)) {
        if (n->type != YAML_SEQUENCE_NODE) {
            conf_expected(k, why, sizeof why);
            return conf_fail(c, &n->start_mark, k->name, "%s, got %s", why, node_kind(n));
        }
        count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    }
    if (count < l->min_items || count > l->max_items) {
        conf_expected(k, why, sizeof why);
        return conf_fail(c, &n->start_mark, k->name, "%s, got %zu items", why, count);
    }
    char *items = NULL, fixed[ND_CONF_MAX_SOURCES * ND_CONF_STR];
    if (l->heap) {
        if (count && !(items = calloc(count, l->item_size)))
            return nd_error_set(c->e, -ENOMEM, "%s: out of memory for %s", c->name, k->name);
    } else {
        ND_ASSERT(l->item_size * l->max_items <= sizeof fixed);
        items = fixed;
        memset(fixed, 0, sizeof fixed);
    }
    const conf_key *uniq = l->unique ? item_key(l, l->unique) : NULL;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *in = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        char *item = items + i * l->item_size;
        char label[128];
        snprintf(label, sizeof label, "%s[%zu]", k->name, i);
        int rc = l->map ? apply_map_item(c, k, i, item, in)
                        : apply_scalar(c, &l->keys[0], label, item, in);
        for (size_t j = 0; !rc && uniq && j < i; j++)
            if (!strcmp(item + uniq->off, items + j * l->item_size + uniq->off))
                rc = conf_fail(c, &in->start_mark, label, "%s '%s' is already used by %s[%zu]",
                               uniq->name, item + uniq->off, k->name, j);
        if (rc) {
            if (l->heap) free(items);
            return rc;
        }
    }
    if (l->heap) {
        void **slot = (void **)((char *)cfg + l->items_off);
        free(*slot);
        *slot = items;
    } else {
        memcpy((char *)cfg + l->items_off, fixed, l->item_size * l->max_items);
    }
    *conf_list_count(l, cfg) = (uint32_t)count;
    return 0;
}

static int apply_node(conf_ctx *c, const conf_key *k, nd_config *cfg, yaml_node_t *n)
{
    if (k->type == CONF_LIST) return apply_list(c, k, cfg, n);
    return apply_scalar(c, k, k->name, cfg, n);
}

/* libyaml's own message: what, where, and while doing what. */
static int yaml_fail(conf_ctx *c, const yaml_parser_t *p)
{
    char context[256] = "";
    if (p->context)
        snprintf(context, sizeof context, " (%s at %zu:%zu)", p->context,
                 p->context_mark.line + 1,
                 p->context_mark.column + 1 + (p->context_mark.line ? 0 : c->col0));
    /* the reader (encoding) has no line yet, only a byte offset */
    if (p->error == YAML_READER_ERROR)
        return conf_fail(c, NULL, NULL, "YAML syntax error: %s at byte %zu (is it UTF-8 text?)",
                         p->problem ? p->problem : "unreadable", p->problem_offset);
    return conf_fail(c, &p->problem_mark, NULL, "YAML syntax error: %s%s",
                     p->problem ? p->problem : "unknown", context);
}

/* Refuses text whose lists and mappings nest deeper than CONF_MAX_DEPTH. libyaml's scanner
 * keeps a pending key per open flow collection and looks at all of them for every token, so
 * "[[[...]]]" N deep takes time N^2 (100 000 levels: most of a minute) before any document
 * exists. This pass reads events only up to the first collection too deep, so the scanner
 * never holds more than that many levels (plus what one line's lookahead opens). A syntax
 * error ends it quietly: the load that follows reports it with its position. */
static int check_depth(conf_ctx *c, const char *text, size_t len)
{
    yaml_parser_t p;
    ND_ASSERT(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0, rc = 0, done = 0;
    yaml_event_t ev;
    while (!rc && !done && yaml_parser_parse(&p, &ev)) {
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONF_MAX_DEPTH)
                rc = conf_fail(c, &ev.start_mark, NULL,
                               "lists and mappings nested deeper than %d levels",
                               CONF_MAX_DEPTH);
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

/* Loads the one YAML document of text into doc. *empty when it holds nothing. */
static int load_document(conf_ctx *c, yaml_document_t *doc, const char *text, size_t len,
                         int *empty)
{
    int rc = check_depth(c, text, len);
    if (rc) return rc;
    yaml_parser_t p;
    ND_ASSERT(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, doc)) {
        rc = yaml_fail(c, &p);
        yaml_parser_delete(&p);
        return rc;
    }
    /* nothing, or only "---" / "~": the defaults */
    yaml_node_t *root = yaml_document_get_root_node(doc);
    *empty = !root || node_is_null(root);
    if (root) {
        /* a second document would be silently ignored: refuse it */
        yaml_document_t next;
        if (!yaml_parser_load(&p, &next)) {
            rc = yaml_fail(c, &p);
        } else {
            yaml_node_t *second = yaml_document_get_root_node(&next);
            if (second)
                rc = conf_fail(c, &second->start_mark, NULL,
                               "a config is one YAML document; found a second one");
            yaml_document_delete(&next);
        }
        if (rc) yaml_document_delete(doc);
    }
    yaml_parser_delete(&p);
    return rc;
}

/* Applies text to key k of cfg: scalars directly, lists as flow YAML. */
static int apply_text(conf_ctx *c, const conf_key *k, nd_config *cfg, const char *text)
{
    if (k->type != CONF_LIST) {
        char why[512];
        if (conf_scalar_set(k, cfg, text, why, sizeof why))
            return conf_fail(c, NULL, k->name, "%s, got '%s'", why, text);
        return 0;
    }
    yaml_document_t doc;
    int empty, rc = load_document(c, &doc, text, strlen(text), &empty);
    if (rc) return rc;
    if (empty) {
        rc = conf_fail(c, NULL, k->name, "expected a list like [a, b], got nothing");
    } else {
        c->doc = &doc;
        rc = apply_node(c, k, cfg, yaml_document_get_root_node(&doc));
        c->doc = NULL;
    }
    yaml_document_delete(&doc);
    return rc;
}

/* ---- cross-key rules ---------------------------------------------------------------- */

/* Values derived from others once everything is read. */
static void conf_finalize(nd_config *cfg)
{
    if (cfg->model.attn_div)
        cfg->model.attn_min_res = cfg->capture.window / cfg->model.attn_div;
}

/* The position where the text set key a, or else the first of others (space-separated
 * names, may be NULL) that it set; NULL when none was set by a file. */
static const yaml_mark_t *seen_at(const conf_ctx *c, const char *a, const char *others)
{
    char names[256];
    snprintf(names, sizeof names, "%s %s", a, others ? others : "");
    for (char *save, *name = strtok_r(names, " ", &save); name;
         name = strtok_r(NULL, " ", &save)) {
        const conf_key *k = conf_key_find(name);
        ND_ASSERT(k);
        if (c->seen[k - conf_keys].set) return c->file ? &c->seen[k - conf_keys].at : NULL;
    }
    return NULL;
}

#define RULE_FAIL(a, b, ...) conf_fail(c, seen_at(c, a, b), a, __VA_ARGS__)

static int is_class(const nd_config *cfg, const char *name)
{
    for (uint32_t i = 0; i < cfg->n_classes; i++)
        if (!strcmp(cfg->classes[i].name, name)) return 1;
    return 0;
}

/* Addresses in a CIDR block (validated by the table), capped at 2^32; no limit for a
 * text that is not one (not reached through the parser, but nd_config_check takes any
 * struct). */
static uint64_t pool_size(const char *cidr)
{
    const char *slash = strchr(cidr, '/');
    if (!slash) return UINT64_MAX;
    int bits = (strchr(cidr, ':') ? 128 : 32) - atoi(slash + 1);
    return bits >= 32 ? 1ull << 32 : bits < 0 ? 1 : 1ull << bits;
}

/* Rules that involve more than one key; documented in docs/CONFIG.md (conf_doc.c lists
 * conf_rules_text, keep the two in step). */
static int conf_cross_check(conf_ctx *c, const nd_config *cfg)
{
    __typeof__(&cfg->capture) cap = &cfg->capture;
    __typeof__(&cfg->model) m = &cfg->model;
    if (cap->min_active_bins > cap->window)
        return RULE_FAIL("capture.min_active_bins", "capture.window",
                         "must be at most capture.window (%u), got %u", cap->window,
                         cap->min_active_bins);
    uint32_t down = 1u << (m->n_mult - 1); /* the U-Net halves L between levels */
    if (cap->window % down)
        return RULE_FAIL("capture.window", "model.channel_mult",
                         "must be divisible by %u for %u levels of model.channel_mult, got %u",
                         down, m->n_mult, cap->window);
    if (cap->idle_timeout_ns > cap->active_timeout_ns || cap->idle_timeout_ns < cap->bin_ns) {
        char idle[32], active[32], bin[32];
        nd_format_duration(cap->idle_timeout_ns, idle, sizeof idle);
        nd_format_duration(cap->active_timeout_ns, active, sizeof active);
        nd_format_duration(cap->bin_ns, bin, sizeof bin);
        return RULE_FAIL("capture.idle_timeout", "capture.active_timeout capture.bin",
                         "must be from capture.bin (%s) to capture.active_timeout (%s), got %s",
                         bin, active, idle);
    }
    for (uint32_t i = 0; i < m->n_mult; i++)
        if ((m->base_channels * m->channel_mult[i]) % m->groups)
            return RULE_FAIL("model.groups", "model.base_channels",
                             "must divide every level's width (model.base_channels %u x "
                             "model.channel_mult %u = %u), got %u",
                             m->base_channels, m->channel_mult[i],
                             m->base_channels * m->channel_mult[i], m->groups);
    if (m->emb_dim % 2)
        return RULE_FAIL("model.emb_dim", NULL, "must be even (sine and cosine halves), got %u",
                         m->emb_dim);
    if (m->attn_div && cap->window % m->attn_div)
        return RULE_FAIL("model.attn_min_res", "capture.window",
                         "L/%u does not divide capture.window (%u)", m->attn_div, cap->window);
    uint32_t lowest = cap->window / down;
    if (m->attn_min_res > cap->window || (m->attn_min_res && m->attn_min_res < lowest))
        return RULE_FAIL("model.attn_min_res", "model.channel_mult",
                         "must be 0 (no attention) or from the U-Net's lowest level (%u px, "
                         "L/%u) to L (%u px), got %u px",
                         lowest, down, cap->window, m->attn_min_res);
    uint32_t labels = cfg->n_classes;
    if (labels && cap->default_class[0] && !is_class(cfg, cap->default_class)) labels++;
    if (labels > m->max_classes)
        return RULE_FAIL("model.max_classes", "classes",
                         "must be at least the number of classes (%u, with "
                         "capture.default_class), got %u",
                         labels, m->max_classes);
    if (cfg->sample.steps > m->timesteps)
        return RULE_FAIL("sample.steps", "model.timesteps",
                         "must be at most model.timesteps (%u), got %u", m->timesteps,
                         cfg->sample.steps);
    double total = 0;
    for (uint32_t i = 0; i < cfg->replay.n_mix; i++) {
        const char *name = cfg->replay.mix[i].name;
        total += cfg->replay.mix[i].weight;
        if (cfg->n_classes && !is_class(cfg, name) && strcmp(name, cap->default_class))
            return RULE_FAIL("replay.mix", "classes", "class '%s' is not among classes", name);
    }
    if (cfg->replay.n_mix && !(total > 0))
        return RULE_FAIL("replay.mix", NULL, "the weights add up to 0: no flow would be made");
    uint64_t nc = pool_size(cfg->replay.client_pool), ns = pool_size(cfg->replay.server_pool);
    if (cfg->replay.clients > nc)
        return RULE_FAIL(
            "replay.clients", "replay.client_pool",
            "must be at most the %llu addresses of replay.client_pool (%s), got %u",
            (unsigned long long)nc, cfg->replay.client_pool, cfg->replay.clients);
    if (cfg->replay.servers > ns)
        return RULE_FAIL(
            "replay.servers", "replay.server_pool",
            "must be at most the %llu addresses of replay.server_pool (%s), got %u",
            (unsigned long long)ns, cfg->replay.server_pool, cfg->replay.servers);
    if (cfg->live.ring_size & (cfg->live.ring_size - 1))
        return RULE_FAIL("live.ring_size", NULL, "must be a power of two, got %u",
                         cfg->live.ring_size);
    return 0;
}

const char *const conf_rules_text[] = {
    "`capture.min_active_bins` ≤ `capture.window`.",
    "`capture.window` is divisible by 2^(levels − 1), levels = entries of "
    "`model.channel_mult` (the U-Net halves the image between levels).",
    "`capture.bin` ≤ `capture.idle_timeout` ≤ `capture.active_timeout`.",
    "`model.groups` divides `model.base_channels` × every entry of `model.channel_mult`.",
    "`model.emb_dim` is even.",
    "`model.attn_min_res` is 0 or from the lowest level (L / 2^(levels − 1)) to L, in pixels "
    "once L/N is worked out; N divides `capture.window`.",
    "`model.max_classes` ≥ the classes in `classes` (plus `capture.default_class` when it is "
    "not one of them).",
    "`sample.steps` ≤ `model.timesteps`.",
    "`replay.mix`: when `classes` is given, every class is one of them (or "
    "`capture.default_class`); the weights add up to more than 0.",
    "`replay.clients` and `replay.servers` fit in `replay.client_pool` and "
    "`replay.server_pool`.",
    "`live.ring_size` is a power of two.",
    NULL,
};

/* ---- public API --------------------------------------------------------------------- */

void nd_config_free(nd_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < conf_keys_count(); i++) {
        const conf_list *l = conf_keys[i].list;
        if (!l || !l->heap) continue;
        void **slot = (void **)((char *)cfg + l->items_off);
        free(*slot);
        *slot = NULL;
        *conf_list_count(l, cfg) = 0;
    }
}

int nd_config_copy(nd_config *dst, const nd_config *src)
{
    *dst = *src;
    for (size_t i = 0; i < conf_keys_count(); i++) {
        const conf_list *l = conf_keys[i].list;
        if (l && l->heap) *(void **)((char *)dst + l->items_off) = NULL;
    }
    for (size_t i = 0; i < conf_keys_count(); i++) {
        const conf_list *l = conf_keys[i].list;
        if (!l || !l->heap) continue;
        size_t bytes = *conf_list_count(l, src) * l->item_size;
        void *copy = bytes ? malloc(bytes) : NULL;
        if (bytes && !copy) {
            nd_config_free(dst);
            return -ENOMEM;
        }
        if (bytes) memcpy(copy, conf_list_items(l, src), bytes);
        *(void **)((char *)dst + l->items_off) = copy;
    }
    return 0;
}

void nd_config_defaults(nd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    conf_ctx c;
    ctx_init(&c, "defaults", NULL);
    /* defaults go through the same parser as the user's text: a bad one is a bug */
    for (size_t i = 0; i < conf_keys_count(); i++)
        ND_ASSERT(!apply_text(&c, &conf_keys[i], cfg, conf_keys[i].def));
    conf_finalize(cfg);
    ND_ASSERT(!conf_cross_check(&c, cfg));
}

static int section_index(const char *name)
{
    for (int i = 0; conf_sections[i]; i++)
        if (!strcmp(conf_sections[i], name)) return i;
    return -1;
}

/* Records that key k is set at value node v; an error when it already was. */
static int mark_seen(conf_ctx *c, const conf_key *k, const yaml_node_t *kn,
                     const yaml_node_t *v)
{
    conf_seen *s = &c->seen[k - conf_keys];
    if (s->set)
        return conf_fail(c, &kn->start_mark, k->name, "set twice (first at %zu:%zu)",
                         s->at.line + 1, s->at.column + 1);
    s->set = 1;
    s->at = v->start_mark;
    return 0;
}

/* The keys of one section's mapping. */
static int walk_section(conf_ctx *c, nd_config *cfg, const char *section, yaml_node_t *n)
{
    if (node_is_null(n)) return 0; /* "model:" with nothing under it */
    if (n->type != YAML_MAPPING_NODE)
        return conf_fail(c, &n->start_mark, section,
                         "expected a mapping of keys (like '%s:' then indented 'key: value' "
                         "lines), got %s",
                         section, node_kind(n));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return conf_fail(c, &kn->start_mark, section, "expected a key name, got %s",
                             node_kind(kn));
        char full[256];
        snprintf(full, sizeof full, "%s.%s", section, (const char *)kn->data.scalar.value);
        const conf_key *k = conf_key_find(full);
        if (!k) {
            const char *names[CONF_MAX_KEYS];
            size_t m = 0, len = strlen(section);
            for (size_t i = 0; i < conf_keys_count(); i++)
                if (!strncmp(conf_keys[i].name, section, len) && conf_keys[i].name[len] == '.')
                    names[m++] = conf_keys[i].name;
            return conf_fail(c, &kn->start_mark, full, "unknown key, did you mean '%s'?",
                             nearest(full, names, m));
        }
        if (mark_seen(c, k, kn, vn) || apply_node(c, k, cfg, vn)) return ND_ECONFIG;
    }
    return 0;
}

static int walk_root(conf_ctx *c, nd_config *cfg, yaml_node_t *root)
{
    if (root->type != YAML_MAPPING_NODE)
        return conf_fail(c, &root->start_mark, NULL,
                         "expected a mapping of sections (capture:, classes:, model:, train:, "
                         "sample:, replay:, live:), got %s",
                         node_kind(root));
    yaml_mark_t section_at[16];
    int section_set[16] = {0};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return conf_fail(c, &kn->start_mark, NULL, "expected a section name, got %s",
                             node_kind(kn));
        const char *name = (const char *)kn->data.scalar.value;
        int s = section_index(name);
        if (s < 0) {
            size_t n = 0;
            while (conf_sections[n]) n++;
            return conf_fail(c, &kn->start_mark, name, "unknown section, did you mean '%s'?",
                             nearest(name, conf_sections, n));
        }
        if (section_set[s])
            return conf_fail(c, &kn->start_mark, name, "section given twice (first at %zu:%zu)",
                             section_at[s].line + 1, section_at[s].column + 1);
        section_set[s] = 1;
        section_at[s] = kn->start_mark;
        /* a section that is itself a key (classes) */
        const conf_key *k = conf_key_find(name);
        int rc = k ? mark_seen(c, k, kn, vn) || apply_node(c, k, cfg, vn)
                   : walk_section(c, cfg, name, vn);
        if (rc) return ND_ECONFIG;
    }
    return 0;
}

/* The end of a parse or an override into tmp that returned rc: derived values and the
 * cross-key rules; on failure tmp is freed. Frees c. Returns the final code. */
static int conf_finish(conf_ctx *c, int rc, nd_config *tmp)
{
    if (!rc) {
        conf_finalize(tmp);
        rc = conf_cross_check(c, tmp);
    }
    free(c);
    if (rc) nd_config_free(tmp);
    return rc;
}

int nd_config_parse(nd_config *cfg, const char *text, size_t len, const char *name, nd_error *e)
{
    conf_ctx *c = malloc(sizeof *c);
    if (!c) return nd_error_set(e, -ENOMEM, "%s: out of memory", name);
    ctx_init(c, name, e);
    c->file = 1;
    nd_config tmp;
    nd_config_defaults(&tmp);
    yaml_document_t doc;
    int empty, rc = load_document(c, &doc, text, len, &empty);
    if (!rc) {
        c->doc = &doc;
        if (!empty) rc = walk_root(c, &tmp, yaml_document_get_root_node(&doc));
        yaml_document_delete(&doc);
    }
    if ((rc = conf_finish(c, rc, &tmp))) {
        nd_config_defaults(cfg);
        return rc;
    }
    *cfg = tmp;
    return 0;
}

int nd_config_load(nd_config *cfg, const char *path, nd_error *e)
{
    nd_config_defaults(cfg);
    FILE *f = fopen(path, "rb");
    if (!f) return nd_error_set(e, -errno, "%s: %s", path, strerror(errno));
    char *text = malloc(CONF_MAX_FILE + 1);
    size_t len = text ? fread(text, 1, CONF_MAX_FILE + 1, f) : 0;
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (!text) return nd_error_set(e, -ENOMEM, "%s: out of memory", path);
    int rc;
    if (err) rc = nd_error_set(e, err, "%s: read error", path);
    else if (len > CONF_MAX_FILE)
        rc = nd_error_set(e, ND_ECONFIG, "%s: larger than %u MiB: not a config file", path,
                          CONF_MAX_FILE >> 20);
    else rc = nd_config_parse(cfg, text, len, path, e);
    free(text);
    if (!rc) snprintf(cfg->path, sizeof cfg->path, "%s", path);
    return rc;
}

int nd_config_set(nd_config *cfg, const char *assignment, nd_error *e)
{
    char name[128], where[160];
    const char *eq = strchr(assignment, '=');
    size_t n = eq ? (size_t)(eq - assignment) : 0;
    snprintf(where, sizeof where, "override '%.120s'", assignment);
    if (!eq || !n || n >= sizeof name)
        return nd_error_set(e, ND_ECONFIG, "%s: expected section.key=value", where);
    memcpy(name, assignment, n);
    name[n] = 0;
    conf_ctx *c = malloc(sizeof *c);
    if (!c) return nd_error_set(e, -ENOMEM, "%s: out of memory", where);
    ctx_init(c, where, e);
    const conf_key *k = conf_key_find(name);
    int rc;
    if (!k) {
        const char *names[CONF_MAX_KEYS];
        for (size_t i = 0; i < conf_keys_count(); i++) names[i] = conf_keys[i].name;
        rc = conf_fail(c, NULL, name, "unknown key, did you mean '%s'?",
                       nearest(name, names, conf_keys_count()));
        free(c);
        return rc;
    }
    nd_config tmp;
    if (nd_config_copy(&tmp, cfg)) {
        free(c);
        return nd_error_set(e, -ENOMEM, "%s: out of memory", where);
    }
    c->seen[k - conf_keys].set = 1; /* cross-key errors then name this key first */
    c->col0 = n + 1;
    if ((rc = conf_finish(c, apply_text(c, k, &tmp, eq + 1), &tmp))) return rc;
    nd_config_free(cfg);
    *cfg = tmp;
    return 0;
}

int nd_config_load_overrides(nd_config *cfg, const char *path, const char *const *sets,
                             size_t n_sets, nd_error *e)
{
    int rc = 0;
    if (path) rc = nd_config_load(cfg, path, e);
    else nd_config_defaults(cfg);
    for (size_t k = 0; !rc && k < n_sets; k++) rc = nd_config_set(cfg, sets[k], e);
    return rc;
}

int nd_config_check(const nd_config *cfg, nd_error *e)
{
    conf_ctx *c = malloc(sizeof *c);
    if (!c) return nd_error_set(e, -ENOMEM, "config: out of memory");
    ctx_init(c, cfg->path[0] ? cfg->path : "config", e);
    int rc = conf_cross_check(c, cfg);
    free(c);
    return rc;
}

char *nd_config_to_yaml(const nd_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) return NULL;
    fputs("# netdiffus effective configuration (every key; see docs/CONFIG.md)\n", out);
    conf_write_yaml(cfg, 0, out);
    if (fclose(out)) {
        free(buf);
        return NULL;
    }
    return buf;
}
