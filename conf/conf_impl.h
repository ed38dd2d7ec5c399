/*
 * conf_impl.h — private to libnd_conf (and its tests and doc generator): the key table
 * that drives parsing, validation, defaults, YAML output and docs/CONFIG.md.
 *
 * Adding a setting: add the field to struct nd_config (conf.h) and one row to the
 * table in conf_keys.c, in its section. Parsing, defaults, `inspect --config`, the
 * reference, conf/examples/default.yaml and the per-key tests follow from the row.
 */
#ifndef ND_CONF_IMPL_H
#define ND_CONF_IMPL_H

#include <stddef.h>

#include "conf.h"

enum conf_type {
    CONF_BOOL,     /* true/false (also yes/no, on/off); field is bool */
    CONF_INT,      /* signed whole number; field int32_t or int64_t */
    CONF_UINT,     /* unsigned whole number; field uint32_t or uint64_t */
    CONF_DOUBLE,   /* field double */
    CONF_STRING,   /* field char[size]; at most size-1 bytes */
    CONF_DURATION, /* "100ms", "1s": field uint64_t ns */
    CONF_SIZE,     /* "64MiB", "1500": field uint64_t bytes */
    CONF_ENUM,     /* one of choices: field char[size] */
    CONF_RES,      /* image resolution in pixels or "L/N" of the window (model.attn_min_res) */
    CONF_LIST,     /* a YAML sequence, described by list */
};

typedef struct conf_key conf_key;

/* Where a list lives: a count and either a fixed array inside the parent struct or a
 * pointer to a malloc'd array (owned by the config: freed and copied with it). */
typedef struct conf_list {
    size_t count_off; /* uint32_t item count */
    size_t items_off; /* the array, or the pointer to it when heap */
    int heap;
    size_t item_size;
    uint32_t min_items, max_items;
    const conf_key *keys; /* map items: one key per field (offsets into the item);
                             scalar items: one key with name NULL at offset 0 */
    size_t n_keys;
    int map;            /* items are mappings */
    const char *unique; /* map items: field that must differ between items */
} conf_list;

struct conf_key {
    const char *name; /* "section.key"; no dot for a top-level list ("classes") */
    enum conf_type type;
    size_t off, size;    /* field: offset in nd_config (or in a list item) and its size */
    const char *def;     /* default, written the way a user would (lists as flow YAML) */
    const char *min;     /* inclusive bounds, written like values; NULL: type's range. */
    const char *max;     /*   strings: min is the least length (max is size - 1) */
    const char *choices; /* enum (and uint with a fixed set): "cosine|linear", "2|4" */
    const char *unit;    /* for people: "bytes", "bins", "steps"; NULL when the value says it */
    const char *help;    /* one or two sentences: what it does, what 0 or "" means */
    /* strings: extra format check; returns NULL when fine, else what was expected */
    const char *(*check)(const char *s);
    const conf_list *list; /* CONF_LIST */
    size_t aux_off;        /* CONF_RES: offset of the uint32_t "L/N" divisor (0 = pixels) */
    int required;          /* list-item keys: the item must set it */
};

/* Field accessor; offsets come from offsetof, so the type is the table's promise. */
#define CONF_FIELD(base, k) ((void *)((char *)(base) + (k)->off))

/* A list's items and count inside base (nd_config). */
void *conf_list_items(const conf_list *l, const void *base);
uint32_t *conf_list_count(const conf_list *l, const void *base);

/* The top-level table, in section order (capture, classes, model, train, sample, replay,
 * live): n via conf_keys_count. */
extern const conf_key conf_keys[];
size_t conf_keys_count(void);
/* Key by full name ("capture.bin"); NULL when unknown. */
const conf_key *conf_key_find(const char *name);
/* Section names in table order, NULL-terminated. */
extern const char *const conf_sections[];

/* The key's name after its section ("bin" for "capture.bin"). */
const char *conf_key_leaf(const conf_key *k);

/* Parses text for scalar key k into the field at base (nd_config or a list item).
 * Returns 0, or -1 with why = "expected ..." (what a person should write). */
int conf_scalar_set(const conf_key *k, void *base, const char *text, char *why, size_t why_len);
/* Writes the field of scalar key k back as text that conf_scalar_set reads unchanged. */
void conf_scalar_format(const conf_key *k, const void *base, char *buf, size_t len);
/* Writes key k's value (any type) as YAML text to out. Lists are flow YAML ("[1, 2]"),
 * except that with block set a non-empty list of mappings is written as "- {...}" lines,
 * starting with a newline, indented for the key's place in nd_config_to_yaml. */
void conf_value_yaml(const conf_key *k, const void *base, int block, FILE *out);
/* The whole config as YAML, section by section; with comments, each key's help and
 * allowed values above it (conf/examples/default.yaml). */
void conf_write_yaml(const nd_config *cfg, int comments, FILE *out);
/* "expected ..." text for key k: its type, bounds, choices. */
void conf_expected(const conf_key *k, char *buf, size_t len);

/* Unit parsers behind nd_parse_duration / nd_parse_size: NULL when fine, else a static
 * "expected ..." text. */
const char *conf_parse_duration(const char *s, uint64_t *ns);
const char *conf_parse_size(const char *s, uint64_t *bytes);

/* Writes a YAML double-quoted string (escapes ", \, control bytes). */
void conf_yaml_quote(const char *s, FILE *out);

/* Edit distance (Levenshtein), for "did you mean". */
size_t conf_edit_distance(const char *a, const char *b);

/* The cross-key rules in words, NULL-terminated (docs/CONFIG.md). */
extern const char *const conf_rules_text[];

/* Lists and mappings nest at most this deep in a config text (a config needs 4: sections,
 * keys, lists, list items); deeper text is refused before it is parsed whole. */
#define CONF_MAX_DEPTH 32

/* conf/examples/default.yaml: every key at its default, with its help as a comment. */
void conf_default_yaml(FILE *out);

#endif
