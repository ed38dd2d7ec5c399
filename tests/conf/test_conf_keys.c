/*
 * test_conf_keys.c — every key of the table, found by walking the table itself (so a
 * new row is tested without a new test): its default is valid, valid values are
 * accepted and land in the right field (checked against an independent parse),
 * out-of-bounds and wrong-type values are rejected at the value's exact line:col, both
 * from a YAML file and from nd_config_set.
 */
#include <float.h>
#include <math.h>

#include "conf_test.h"

static size_t n_valid, n_oob, n_wrong;

/* YAML that sets key k to value, and the 1-based position of the value in it. */
static void yaml_for(const conf_key *k, const char *value, char *buf, size_t len, int *line,
                     int *col)
{
    const char *leaf = conf_key_leaf(k);
    if (leaf == k->name) {
        snprintf(buf, len, "%s: %s\n", k->name, value);
        *line = 1;
        *col = (int)strlen(k->name) + 3;
    } else {
        snprintf(buf, len, "# a comment line\n%.*s:\n  %s: %s\n", (int)(leaf - 1 - k->name),
                 k->name, leaf, value);
        *line = 3;
        *col = (int)strlen(leaf) + 5;
    }
}

/* What value must leave in k's field, parsed here independently of the library, and
 * compared with the field at k->off in cfg. */
static void check_field(const conf_key *k, const void *base, const char *value)
{
    const char *f = (const char *)base + k->off;
    uint64_t u = 0;
    nd_error e;
    switch (k->type) {
    case CONF_BOOL: {
        int want = !strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on");
        CHECK_EQ(*(const bool *)f, want);
        return;
    }
    case CONF_STRING:
    case CONF_ENUM: {
        /* YAML double-quoted samples: compare without the quotes */
        char raw[ND_CONF_FILTER];
        size_t n = strlen(value);
        if (value[0] == '"') snprintf(raw, sizeof raw, "%.*s", (int)(n - 2), value + 1);
        else snprintf(raw, sizeof raw, "%s", value);
        CHECK_STR_EQ(f, raw);
        return;
    }
    case CONF_DOUBLE: CHECK_NEAR(*(const double *)f, strtod(value, NULL), 0, 0); return;
    case CONF_INT:
        CHECK_EQ(k->size == 4 ? *(const int32_t *)f : *(const int64_t *)f,
                 strtoll(value, NULL, 10));
        return;
    case CONF_UINT: u = strtoull(value, NULL, 10); break;
    case CONF_DURATION: CHECK_EQ(nd_parse_duration(value, &u, &e), 0); break;
    case CONF_SIZE: CHECK_EQ(nd_parse_size(value, &u, &e), 0); break;
    case CONF_RES: {
        const nd_config *cfg = base;
        const uint32_t *v = (const void *)f,
                       *div = (const uint32_t *)((const char *)base + k->aux_off);
        if (value[0] == 'L') {
            CHECK_EQ(*div, atoi(value + 2));
            /* the attention's is worked out from the config's window; replay.context's
             * from the model's, when it is used */
            if (v == &cfg->model.attn_min_res) CHECK_EQ(*v, cfg->capture.window / *div);
        } else {
            CHECK_EQ(*div, 0);
            CHECK_EQ(*v, atoi(value));
        }
        return;
    }
    case CONF_LIST: CHECK(0);
    }
    CHECK_U64_EQ(k->size == 4 ? *(const uint32_t *)f : *(const uint64_t *)f, u);
}

/* "-1", "18446744073709551616": v as decimal, for values one past a bound. */
static void format_i128(__int128 v, char *buf, size_t len)
{
    char tmp[48];
    int n = 0, neg = v < 0;
    unsigned __int128 a = neg ? -(unsigned __int128)v : (unsigned __int128)v;
    do tmp[n++] = (char)('0' + (int)(a % 10)), a /= 10;
    while (a);
    size_t o = 0;
    if (neg && o + 1 < len) buf[o++] = '-';
    while (n && o + 1 < len) buf[o++] = tmp[--n];
    buf[o] = 0;
}

/* The key's bounds as numbers: its table text, else the field's range. */
static void bounds(const conf_key *k, __int128 *lo, __int128 *hi, double *dlo, double *dhi)
{
    nd_error e;
    uint64_t u;
    if (k->type == CONF_DOUBLE) {
        *dlo = k->min ? strtod(k->min, NULL) : -DBL_MAX;
        *dhi = k->max ? strtod(k->max, NULL) : DBL_MAX;
        return;
    }
    if (k->type == CONF_INT) {
        *lo = k->size == 4 ? INT32_MIN : INT64_MIN;
        *hi = k->size == 4 ? INT32_MAX : INT64_MAX;
    } else {
        *lo = 0;
        *hi = k->size == 4 ? UINT32_MAX : UINT64_MAX;
    }
    const char *b[2] = {k->min, k->max};
    __int128 *out[2] = {lo, hi};
    for (int i = 0; i < 2; i++) {
        if (!b[i]) continue;
        if (k->type == CONF_DURATION) {
            CHECK_EQ(nd_parse_duration(b[i], &u, &e), 0);
            *out[i] = u;
        } else if (k->type == CONF_SIZE) {
            CHECK_EQ(nd_parse_size(b[i], &u, &e), 0);
            *out[i] = u;
        } else {
            *out[i] = strtoll(b[i], NULL, 10);
        }
    }
}

/* A whole number as the key's syntax: durations in ns, sizes in bytes. */
static void format_num(const conf_key *k, __int128 v, char *buf, size_t len)
{
    format_i128(v, buf, len);
    if (k->type == CONF_DURATION) strncat(buf, "ns", len - strlen(buf) - 1);
}

/* Valid values for scalar key k (n returned), the default's neighbours and the bounds. */
static size_t valid_values(const conf_key *k, char vals[][ND_CONF_FILTER])
{
    size_t n = 0;
    if (k->choices) {
        for (const char *p = k->choices; *p;) {
            size_t m = strcspn(p, "|");
            snprintf(vals[n++], ND_CONF_FILTER, "%.*s", (int)m, p);
            p += m + (p[m] == '|');
        }
        return n;
    }
    __int128 lo, hi;
    double dlo, dhi;
    switch (k->type) {
    case CONF_BOOL:
        for (int i = 0; i < 4; i++)
            snprintf(vals[n++], ND_CONF_FILTER, "%s",
                     (const char *[]){"true", "false", "yes", "off"}[i]);
        return n;
    case CONF_DOUBLE:
        bounds(k, &lo, &hi, &dlo, &dhi);
        snprintf(vals[n++], ND_CONF_FILTER, "%.17g", dlo);
        snprintf(vals[n++], ND_CONF_FILTER, "%.17g", dhi);
        snprintf(vals[n++], ND_CONF_FILTER, "%.17g", (dlo + dhi) / 2);
        return n;
    case CONF_INT:
    case CONF_UINT:
    case CONF_DURATION:
    case CONF_SIZE: {
        bounds(k, &lo, &hi, &dlo, &dhi);
        format_num(k, lo, vals[n++], ND_CONF_FILTER);
        format_num(k, hi, vals[n++], ND_CONF_FILTER);
        format_num(k, lo + 1 <= hi ? lo + 1 : lo, vals[n++], ND_CONF_FILTER);
        format_num(k, lo + (hi - lo) / 2, vals[n++], ND_CONF_FILTER);
        /* next to the default: fine for the cross-key rules when the bounds are not */
        nd_config d;
        nd_config_defaults(&d);
        const char *f = (const char *)&d + k->off;
        __int128 def;
        if (k->type == CONF_INT) def = k->size == 4 ? *(const int32_t *)f : *(const int64_t *)f;
        else def = k->size == 4 ? *(const uint32_t *)f : *(const uint64_t *)f;
        format_num(k, def + 1 <= hi ? def + 1 : def - 1, vals[n++], ND_CONF_FILTER);
        /* a unit form as people write it */
        if (k->type == CONF_DURATION && lo <= 2000000 && hi >= 2000000)
            snprintf(vals[n++], ND_CONF_FILTER, "2ms");
        if (k->type == CONF_SIZE && lo <= 1 << 20 && hi >= 1 << 20)
            snprintf(vals[n++], ND_CONF_FILTER, "1MiB");
        return n;
    }
    case CONF_STRING: {
        /* samples for the string formats of the table; a key must accept at least one */
        static const char *const samples[] = {"x-1",
                                              "\"pcap:t 1.pcap\"",
                                              "10.0.0.0/8",
                                              "\"2001:db8::/32\"",
                                              "\"02:00:00:00:00:99\"",
                                              "127.0.0.1",
                                              "\"::1\"",
                                              "\"127.0.0.1:7070\"",
                                              "\"a \\\"quoted\\\" path/x.ndm\""};
        for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
            char raw[ND_CONF_FILTER], why[512];
            size_t m = strlen(samples[i]);
            if (samples[i][0] == '"')
                snprintf(raw, sizeof raw, "%.*s", (int)(m - 2), samples[i] + 1);
            else snprintf(raw, sizeof raw, "%s", samples[i]);
            if (strchr(raw, '\\')) continue; /* escapes: checked by the round-trip test */
            nd_config scratch = {0};
            if (!conf_scalar_set(k, &scratch, raw, why, sizeof why))
                snprintf(vals[n++], ND_CONF_FILTER, "%s", samples[i]);
        }
        return n;
    }
    case CONF_RES:
        for (int i = 0; i < 5; i++)
            snprintf(vals[n++], ND_CONF_FILTER, "%s",
                     (const char *[]){"L/4", "L/2", "L/1", "16", "0"}[i]);
        return n;
    default: CHECK(0);
    }
    return n;
}

/* Values outside the key's bounds (only where it is bounded). */
static size_t oob_values(const conf_key *k, char vals[][ND_CONF_FILTER])
{
    size_t n = 0;
    __int128 lo, hi;
    double dlo, dhi;
    if (k->choices && k->type == CONF_UINT) {
        snprintf(vals[n++], ND_CONF_FILTER, "3");
        snprintf(vals[n++], ND_CONF_FILTER, "0");
        return n;
    }
    switch (k->type) {
    case CONF_DOUBLE:
        bounds(k, &lo, &hi, &dlo, &dhi);
        if (k->min) snprintf(vals[n++], ND_CONF_FILTER, "%.17g", nextafter(dlo, -INFINITY));
        if (k->max) snprintf(vals[n++], ND_CONF_FILTER, "%.17g", nextafter(dhi, INFINITY));
        if (!k->max) snprintf(vals[n++], ND_CONF_FILTER, "1e309");
        return n;
    case CONF_INT:
    case CONF_UINT:
    case CONF_DURATION:
    case CONF_SIZE:
        bounds(k, &lo, &hi, &dlo, &dhi);
        /* below the least value (not for unsigned 0: that is a wrong-type "-1") */
        if (lo > 0 || k->type == CONF_INT) format_num(k, lo - 1, vals[n++], ND_CONF_FILTER);
        format_num(k, hi + 1, vals[n++], ND_CONF_FILTER);
        return n;
    case CONF_STRING: {
        memset(vals[n], 'a', k->size);
        vals[n++][k->size] = 0;                                  /* one byte too long */
        if (k->min) snprintf(vals[n++], ND_CONF_FILTER, "\"\""); /* too short: "" */
        return n;
    }
    case CONF_RES:
        snprintf(vals[n++], ND_CONF_FILTER, "4097");
        snprintf(vals[n++], ND_CONF_FILTER, "L/2048");
        return n;
    default: return 0;
    }
}

/* Values of the wrong type or form. */
static size_t wrong_values(const conf_key *k, char vals[][ND_CONF_FILTER])
{
    static const char *const by_type[][6] = {
        [CONF_BOOL] = {"maybe", "2", "[true]", "{a: 1}"},
        [CONF_INT] = {"abc", "1.5", "[1]", "0x10", "1e3"},
        [CONF_UINT] = {"abc", "1.5", "-1", "[1]", "{a: 1}", "1e3"},
        [CONF_DOUBLE] = {"abc", "nan", "inf", "1,5", "[1]"},
        [CONF_DURATION] = {"5", "abc", "-1s", "[1s]", "1 fortnight"},
        [CONF_SIZE] = {"lots", "-5", "1.5", "[1]", "1MB"},
        [CONF_STRING] = {"[a, b]", "{a: b}"},
        [CONF_ENUM] = {"nonesuch", "[x]", "''"},
        [CONF_RES] = {"L/3", "L/0", "abc", "-1", "L/x", "[16]"},
        [CONF_LIST] = {"{a: 1}", "7", "abc"},
    };
    size_t n = 0;
    for (size_t i = 0; i < 6 && by_type[k->type][i]; i++)
        snprintf(vals[n++], ND_CONF_FILTER, "%s", by_type[k->type][i]);
    return n;
}

/* value must be rejected for k: from YAML at the value's exact position, and by set. */
static void expect_rejected(const conf_key *k, const char *value)
{
    char yaml[4096], want[256];
    int line, col;
    yaml_for(k, value, yaml, sizeof yaml, &line, &col);
    snprintf(want, sizeof want, "t.yaml:%d:%d: %s: expected", line, col, k->name);
    PARSE_ERR(yaml, want);
    if (k->type == CONF_LIST || value[0] == '[' || value[0] == '{' || value[0] == '\'') return;
    nd_config cfg;
    nd_config_defaults(&cfg);
    char *before = nd_config_to_yaml(&cfg);
    char assign[2048];
    nd_error e = {0};
    snprintf(assign, sizeof assign, "%s=%s", k->name, value);
    if (nd_config_set(&cfg, assign, &e) != ND_ECONFIG)
        CHECK_FAIL_("set '%s' was accepted", assign);
    snprintf(want, sizeof want, "%s: expected", k->name);
    CHECK_CONTAINS(e.msg, want);
    char *after = nd_config_to_yaml(&cfg);
    CHECK_STR_EQ(after, before); /* a failed override changes nothing */
    free(before);
    free(after);
    nd_config_free(&cfg);
}

/* Cross-key rules may refuse a value that is fine alone: those say "must", never
 * "expected". Returns 1 when accepted. */
static int try_accept(const conf_key *k, const char *value)
{
    char yaml[4096];
    int line, col, ok = 0;
    yaml_for(k, value, yaml, sizeof yaml, &line, &col);
    nd_config cfg;
    nd_error e = {0};
    if (!nd_config_parse(&cfg, yaml, strlen(yaml), "t.yaml", &e)) {
        check_field(k, &cfg, value);
        ok = 1;
    } else if (strstr(e.msg, "expected") || !strstr(e.msg, "must")) {
        CHECK_FAIL_("%s: valid value '%s' refused: %s", k->name, value, e.msg);
    }
    nd_config_free(&cfg);

    /* the same through nd_config_set, unquoted as on a command line */
    char raw[ND_CONF_FILTER], assign[2048];
    size_t m = strlen(value);
    if (value[0] == '"') snprintf(raw, sizeof raw, "%.*s", (int)(m - 2), value + 1);
    else snprintf(raw, sizeof raw, "%s", value);
    nd_config_defaults(&cfg);
    snprintf(assign, sizeof assign, "%s=%s", k->name, raw);
    int rc = nd_config_set(&cfg, assign, &e);
    CHECK_EQ(rc == 0, ok);
    if (!rc) check_field(k, &cfg, value);
    nd_config_free(&cfg);
    return ok;
}

static void test_scalar_key(const conf_key *k)
{
    char vals[16][ND_CONF_FILTER];
    char def[ND_CONF_FILTER];
    nd_config d;
    nd_config_defaults(&d);
    conf_scalar_format(k, &d, def, sizeof def);
    nd_config_free(&d);

    size_t n = valid_values(k, vals), accepted = 0;
    if (!n) CHECK_FAIL_("%s: no valid sample value", k->name);
    for (size_t i = 0; i < n; i++) {
        /* alone (no cross-key rules) every valid value must be taken */
        char why[512];
        nd_config scratch;
        nd_config_defaults(&scratch);
        char raw[ND_CONF_FILTER];
        size_t m = strlen(vals[i]);
        if (vals[i][0] == '"') snprintf(raw, sizeof raw, "%.*s", (int)(m - 2), vals[i] + 1);
        else snprintf(raw, sizeof raw, "%s", vals[i]);
        if (conf_scalar_set(k, &scratch, raw, why, sizeof why))
            CHECK_FAIL_("%s: '%s' refused: %s", k->name, raw, why);
        nd_config_free(&scratch);
        if (try_accept(k, vals[i]) && strcmp(raw, def)) accepted++;
        n_valid++;
    }
    /* at least one value other than the default must make it through a whole file */
    int single = k->choices && !strchr(k->choices, '|'); /* model.arch: one choice so far */
    if (!accepted && !single)
        CHECK_FAIL_("%s: no non-default value accepted from YAML", k->name);

    n = oob_values(k, vals);
    for (size_t i = 0; i < n; i++, n_oob++) expect_rejected(k, vals[i]);
    n = wrong_values(k, vals);
    for (size_t i = 0; i < n; i++, n_wrong++) expect_rejected(k, vals[i]);
}

/* Fills vals for an item key and picks the sample used in list items: the third (a
 * value inside the bounds, where a weight of 0 or a width of 1 would trip cross rules). */
static size_t sample_index(const conf_key *k, char vals[][ND_CONF_FILTER])
{
    size_t n = valid_values(k, vals);
    CHECK(n > 0);
    return n > 2 ? 2 : 0;
}

/* One item of list k, as flow YAML, from samples of its item keys. */
static void list_item(const conf_key *k, int index, char *buf, size_t len)
{
    const conf_list *l = k->list;
    char vals[16][ND_CONF_FILTER];
    if (!l->map) {
        snprintf(buf, len, "%s", vals[sample_index(&l->keys[0], vals)]);
        return;
    }
    size_t o = (size_t)snprintf(buf, len, "{");
    for (size_t j = 0; j < l->n_keys; j++) {
        size_t v = sample_index(&l->keys[j], vals);
        o += (size_t)snprintf(buf + o, len - o, "%s%s: %s%s", j ? ", " : "", l->keys[j].name,
                              vals[v],
                              !strcmp(l->keys[j].name, l->unique) ? "xyz" + 3 - index : "");
    }
    snprintf(buf + o, len - o, "}");
}

static void test_list_key(const conf_key *k)
{
    const conf_list *l = k->list;
    char item[3][1024], yaml[8192], text[4096];
    for (int i = 0; i < 3; i++) list_item(k, i, item[i], sizeof item[i]);
    int line, col;

    /* flow and block style give the same list of three items (three: as many levels
     * as the default model.channel_mult, which model.attn_min_res L/4 needs) */
    snprintf(text, sizeof text, "[%s, %s, %s]", item[0], item[1], item[2]);
    for (int form = 0; form < 2; form++) {
        if (form == 1) {
            /* block style: one "- item" line each, indented under the key */
            const char *ind = conf_key_leaf(k) == k->name ? "  " : "    ";
            snprintf(text, sizeof text, "\n%s- %s\n%s- %s\n%s- %s", ind, item[0], ind, item[1],
                     ind, item[2]);
        }
        yaml_for(k, text, yaml, sizeof yaml, &line, &col);
        nd_config cfg;
        PARSE_OK(&cfg, yaml);
        CHECK_EQ(*conf_list_count(l, &cfg), 3);
        /* the first item's fields hold the samples */
        const char *items = conf_list_items(l, &cfg);
        char vals[16][ND_CONF_FILTER];
        for (size_t j = 0; j < l->n_keys; j++)
            check_field(&l->keys[j], items, vals[sample_index(&l->keys[j], vals)]);
        nd_config_free(&cfg);
        n_valid++;
    }

    /* the same through nd_config_set */
    nd_config cfg;
    nd_error e = {0};
    nd_config_defaults(&cfg);
    char assign[4096];
    snprintf(assign, sizeof assign, "%s=[%s, %s, %s]", k->name, item[0], item[1], item[2]);
    if (nd_config_set(&cfg, assign, &e)) CHECK_FAIL_("%s: %s", assign, e.msg);
    CHECK_EQ(*conf_list_count(l, &cfg), 3);
    nd_config_free(&cfg);

    /* one item too many (the count is checked before the items) and too few */
    size_t o = (size_t)snprintf(text, sizeof text, "[");
    for (uint32_t i = 0; i <= l->max_items && o < sizeof text - 8; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "%s0", i ? "," : "");
    snprintf(text + o, sizeof text - o, "]");
    expect_rejected(k, text);
    n_oob++;
    if (l->min_items) {
        expect_rejected(k, "[]");
        n_oob++;
    }
    /* items of the wrong type */
    /* an item of the wrong type: the error points at the item and names it */
    char want[256];
    yaml_for(k, l->map ? "[7]" : "[[1]]", yaml, sizeof yaml, &line, &col);
    snprintf(want, sizeof want, "t.yaml:%d:%d: %s[0]: expected", line, col + 1, k->name);
    PARSE_ERR(yaml, want);
    n_wrong++;
    char vals[16][ND_CONF_FILTER];
    size_t n = wrong_values(k, vals);
    for (size_t i = 0; i < n; i++, n_wrong++) expect_rejected(k, vals[i]);
}

int main(void)
{
    size_t n = conf_keys_count();
    CHECK(n > 50);
    for (size_t i = 0; i < n; i++) {
        const conf_key *k = &conf_keys[i];
        /* table hygiene: unique names in a known section, help, defaults that parse */
        if (!k->help || strlen(k->help) < 20) CHECK_FAIL_("%s: help too short", k->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(conf_keys[j].name, k->name)) CHECK_FAIL_("%s listed twice", k->name);
        char section[32];
        snprintf(section, sizeof section, "%.*s", (int)strcspn(k->name, "."), k->name);
        int known = 0;
        for (size_t s = 0; conf_sections[s]; s++) known |= !strcmp(conf_sections[s], section);
        if (!known) CHECK_FAIL_("%s: section '%s' not in conf_sections", k->name, section);
        CHECK(k->def != NULL);
        CHECK(conf_key_find(k->name) == k);
        if (k->type == CONF_ENUM) CHECK(k->choices != NULL);

        if (k->type == CONF_LIST) test_list_key(k);
        else test_scalar_key(k);
    }
    CHECK(conf_key_find("capture.nope") == NULL);
    printf("ok: %zu keys; %zu valid, %zu out-of-bounds, %zu wrong-type values\n", n, n_valid,
           n_oob, n_wrong);
    return 0;
}
