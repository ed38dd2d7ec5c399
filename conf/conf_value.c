/*
 * conf_value.c — one value of one key: text → field (with type, bounds, choices and
 * format checks), field → text, and the "expected ..." phrase of errors and docs.
 * Everything here is driven by the key's row in conf_keys.c.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_impl.h"

typedef union conf_num {
    uint64_t u; /* UINT, DURATION, SIZE */
    int64_t i;  /* INT */
    double d;   /* DOUBLE */
} conf_num;

const conf_key *conf_key_find(const char *name)
{
    for (size_t i = 0; i < conf_keys_count(); i++)
        if (!strcmp(conf_keys[i].name, name)) return &conf_keys[i];
    return NULL;
}

const char *conf_key_leaf(const conf_key *k)
{
    const char *dot = strchr(k->name, '.');
    return dot ? dot + 1 : k->name;
}

void *conf_list_items(const conf_list *l, const void *base)
{
    char *p = (char *)base + l->items_off;
    return l->heap ? *(void **)p : p;
}

uint32_t *conf_list_count(const conf_list *l, const void *base)
{
    return (uint32_t *)((char *)base + l->count_off);
}

static int is_numeric(enum conf_type t)
{
    return t == CONF_INT || t == CONF_UINT || t == CONF_DOUBLE || t == CONF_DURATION ||
           t == CONF_SIZE;
}

/* Text → number for a numeric key, bounds not checked. NULL when fine, else what was
 * expected (NULL *why_syntax: use the key's general phrase). */
static int num_parse(const conf_key *k, const char *s, conf_num *v, const char **why)
{
    char *end;
    *why = NULL;
    switch (k->type) {
    case CONF_UINT:
        /* strtoull takes "-1" as a huge number and skips spaces: only digits here */
        if (!isdigit((unsigned char)s[0])) return -1;
        errno = 0;
        v->u = strtoull(s, &end, 10);
        return *end || errno ? -1 : 0;
    case CONF_INT:
        if (!isdigit((unsigned char)s[s[0] == '-'])) return -1;
        errno = 0;
        v->i = strtoll(s, &end, 10);
        return *end || errno ? -1 : 0;
    case CONF_DOUBLE:
        if (!s[0] || isspace((unsigned char)s[0])) return -1;
        v->d = strtod(s, &end);
        return *end || !isfinite(v->d) ? -1 : 0;
    case CONF_DURATION: return (*why = conf_parse_duration(s, &v->u)) ? -1 : 0;
    case CONF_SIZE: return (*why = conf_parse_size(s, &v->u)) ? -1 : 0;
    default: break;
    }
    ND_ASSERT(0); /* only numeric keys come here */
    return -1;
}

/* The key's inclusive range: its bounds, else what the field can hold. */
static void num_range(const conf_key *k, conf_num *lo, conf_num *hi)
{
    const char *why;
    switch (k->type) {
    case CONF_INT:
        lo->i = k->size == 4 ? INT32_MIN : INT64_MIN;
        hi->i = k->size == 4 ? INT32_MAX : INT64_MAX;
        break;
    case CONF_DOUBLE:
        lo->d = -DBL_MAX;
        hi->d = DBL_MAX;
        break;
    default: lo->u = 0; hi->u = k->size == 4 ? UINT32_MAX : UINT64_MAX;
    }
    /* bounds are written in the table like values: a typo there is a bug */
    if (k->min) ND_ASSERT(!num_parse(k, k->min, lo, &why));
    if (k->max) ND_ASSERT(!num_parse(k, k->max, hi, &why));
}

static int num_cmp(const conf_key *k, conf_num a, conf_num b)
{
    switch (k->type) {
    case CONF_INT: return (a.i > b.i) - (a.i < b.i);
    case CONF_DOUBLE: return (a.d > b.d) - (a.d < b.d);
    default: return (a.u > b.u) - (a.u < b.u);
    }
}

static void num_store(const conf_key *k, void *f, conf_num v)
{
    switch (k->type) {
    case CONF_DOUBLE: *(double *)f = v.d; break;
    case CONF_INT:
        if (k->size == 4) *(int32_t *)f = (int32_t)v.i;
        else *(int64_t *)f = v.i;
        break;
    default:
        if (k->size == 4) *(uint32_t *)f = (uint32_t)v.u;
        else *(uint64_t *)f = v.u;
    }
}

static conf_num num_load(const conf_key *k, const void *f)
{
    conf_num v;
    switch (k->type) {
    case CONF_DOUBLE: v.d = *(const double *)f; break;
    case CONF_INT: v.i = k->size == 4 ? *(const int32_t *)f : *(const int64_t *)f; break;
    default: v.u = k->size == 4 ? *(const uint32_t *)f : *(const uint64_t *)f;
    }
    return v;
}

/* Shortest text that reads back as the same double. Built in a local buffer: GCC 12
 * with -fsanitize=address in Release otherwise reports a NULL snprintf destination. */
static void format_double(double d, char *buf, size_t len)
{
    char tmp[32];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    snprintf(buf, len, "%s", tmp);
}

static void num_format(const conf_key *k, conf_num v, char *buf, size_t len)
{
    switch (k->type) {
    case CONF_INT: snprintf(buf, len, "%lld", (long long)v.i); break;
    case CONF_DOUBLE: format_double(v.d, buf, len); break;
    case CONF_DURATION: nd_format_duration(v.u, buf, len); break;
    case CONF_SIZE: nd_format_size(v.u, buf, len); break;
    default: snprintf(buf, len, "%llu", (unsigned long long)v.u);
    }
}

/* "a|b|c" → "a, b, c" */
static void choices_list(const char *choices, char *buf, size_t len)
{
    size_t n = 0;
    for (const char *p = choices; *p && n + 3 < len; p++) {
        if (*p == '|') {
            buf[n++] = ',';
            buf[n++] = ' ';
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = 0;
}

/* Is text one of the '|'-separated choices? Numbers compare by value ("02" is 2). */
static int in_choices(const conf_key *k, const char *text, conf_num v)
{
    const char *p = k->choices;
    while (*p) {
        size_t n = strcspn(p, "|");
        char tok[64];
        ND_ASSERT(n < sizeof tok);
        memcpy(tok, p, n);
        tok[n] = 0;
        conf_num c;
        const char *why;
        if (is_numeric(k->type) ? !num_parse(k, tok, &c, &why) && !num_cmp(k, c, v)
                                : !strcmp(tok, text))
            return 1;
        p += n + (p[n] == '|');
    }
    return 0;
}

void conf_expected(const conf_key *k, char *buf, size_t len)
{
    char lo_s[64], hi_s[64], list[256];
    if (k->choices) {
        choices_list(k->choices, list, sizeof list);
        snprintf(buf, len, "expected one of %s", list);
        return;
    }
    if (is_numeric(k->type)) {
        conf_num lo, hi;
        num_range(k, &lo, &hi);
        num_format(k, lo, lo_s, sizeof lo_s);
        num_format(k, hi, hi_s, sizeof hi_s);
    }
    switch (k->type) {
    case CONF_BOOL: snprintf(buf, len, "expected true or false"); break;
    case CONF_INT:
    case CONF_UINT:
        snprintf(buf, len, "expected a whole number from %s to %s", lo_s, hi_s);
        break;
    case CONF_DOUBLE:
        if (k->min || k->max) snprintf(buf, len, "expected a number from %s to %s", lo_s, hi_s);
        else snprintf(buf, len, "expected a number");
        break;
    case CONF_DURATION:
        snprintf(buf, len, "expected a duration from %s to %s (units ns, us, ms, s, m, h)",
                 lo_s, hi_s);
        break;
    case CONF_SIZE:
        snprintf(buf, len,
                 "expected a size from %s to %s (bytes, or k/KiB, M/MiB, G/GiB, T/TiB)", lo_s,
                 hi_s);
        break;
    case CONF_STRING:
        if (k->min)
            snprintf(buf, len, "expected a string of %s to %zu bytes", k->min, k->size - 1);
        else snprintf(buf, len, "expected a string of at most %zu bytes", k->size - 1);
        break;
    case CONF_ENUM: ND_ASSERT(0); /* enums always have choices */
    case CONF_RES: /* of an image (pixels) or of a series (bins): the unit's first word */
        snprintf(buf, len,
                 "expected %.*s (0 to 4096, 0 = none) or L/N with N a power of two up to "
                 "1024 (L = the window's bins)",
                 (int)strcspn(k->unit, " "), k->unit);
        break;
    case CONF_LIST: {
        const conf_list *l = k->list;
        if (l->map) {
            size_t n = (size_t)snprintf(list, sizeof list, "{");
            for (size_t i = 0; i < l->n_keys && n < sizeof list; i++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                                      l->keys[i].name);
            snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "}");
        } else {
            conf_expected(&l->keys[0], list, sizeof list);
            memmove(list, list + strlen("expected "), strlen(list) - strlen("expected ") + 1);
        }
        snprintf(buf, len, "expected a list of %u to %u items, each %s", l->min_items,
                 l->max_items, list);
        break;
    }
    }
}

/* "L/4" → 4; 0 when s is not of that form or N is not a power of two up to 1024. */
static uint32_t res_divisor(const char *s)
{
    if (s[0] != 'L' || s[1] != '/' || !isdigit((unsigned char)s[2])) return 0;
    char *end;
    errno = 0;
    unsigned long n = strtoul(s + 2, &end, 10);
    if (*end || errno || n == 0 || n > 1024 || (n & (n - 1))) return 0;
    return (uint32_t)n;
}

int conf_scalar_set(const conf_key *k, void *base, const char *text, char *why, size_t why_len)
{
    void *f = CONF_FIELD(base, k);
    switch (k->type) {
    case CONF_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no",
                                                                               "off"};
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(text, yes[i])) return *(bool *)f = true, 0;
            if (!strcasecmp(text, no[i])) return *(bool *)f = false, 0;
        }
        break;
    }
    case CONF_INT:
    case CONF_UINT:
    case CONF_DOUBLE:
    case CONF_DURATION:
    case CONF_SIZE: {
        conf_num v, lo, hi;
        const char *syntax;
        if (num_parse(k, text, &v, &syntax)) {
            /* "negative", "needs a unit": more use than the range */
            if (syntax) return snprintf(why, why_len, "%s", syntax), -1;
            break;
        }
        num_range(k, &lo, &hi);
        if (num_cmp(k, v, lo) < 0 || num_cmp(k, v, hi) > 0) break;
        if (k->choices && !in_choices(k, text, v)) break;
        num_store(k, f, v);
        return 0;
    }
    case CONF_STRING: {
        size_t n = strlen(text), min = k->min ? (size_t)atoi(k->min) : 0;
        if (n >= k->size || n < min) break;
        const char *bad = k->check && n ? k->check(text) : NULL;
        if (bad) return snprintf(why, why_len, "expected %s", bad), -1;
        memcpy(f, text, n + 1);
        return 0;
    }
    case CONF_ENUM: {
        conf_num unused = {0};
        if (strlen(text) >= k->size || !in_choices(k, text, unused)) break;
        strcpy(f, text);
        return 0;
    }
    case CONF_RES: {
        uint32_t *div = (uint32_t *)((char *)base + k->aux_off);
        char *end;
        if (text[0] == 'L') {
            if (!(*div = res_divisor(text))) break;
            *(uint32_t *)f = 0; /* set from capture.window once the whole config is read */
            return 0;
        }
        if (!isdigit((unsigned char)text[0])) break;
        errno = 0;
        unsigned long px = strtoul(text, &end, 10);
        if (*end || errno || px > 4096) break;
        *(uint32_t *)f = (uint32_t)px;
        *div = 0;
        return 0;
    }
    case CONF_LIST: ND_ASSERT(0); /* lists are YAML sequences: conf.c */
    }
    conf_expected(k, why, why_len);
    return -1;
}

void conf_scalar_format(const conf_key *k, const void *base, char *buf, size_t len)
{
    const void *f = (const char *)base + k->off;
    switch (k->type) {
    case CONF_BOOL: snprintf(buf, len, "%s", *(const bool *)f ? "true" : "false"); break;
    case CONF_STRING:
    case CONF_ENUM: snprintf(buf, len, "%s", (const char *)f); break;
    case CONF_RES: {
        uint32_t div = *(const uint32_t *)((const char *)base + k->aux_off);
        if (div) snprintf(buf, len, "L/%u", div);
        else snprintf(buf, len, "%u", *(const uint32_t *)f);
        break;
    }
    case CONF_LIST: ND_ASSERT(0);
    default: num_format(k, num_load(k, f), buf, len);
    }
}

void conf_yaml_quote(const char *s, FILE *out)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
    fputc('"', out);
}

static void scalar_yaml(const conf_key *k, const void *base, FILE *out)
{
    char buf[ND_CONF_FILTER];
    conf_scalar_format(k, base, buf, sizeof buf);
    if (k->type == CONF_STRING) conf_yaml_quote(buf, out);
    else fputs(buf, out);
}

/* {name: "web", filter: "tcp port 443"} */
static void map_item_yaml(const conf_list *l, const void *item, FILE *out)
{
    fputc('{', out);
    for (size_t j = 0; j < l->n_keys; j++) {
        fprintf(out, "%s%s: ", j ? ", " : "", l->keys[j].name);
        scalar_yaml(&l->keys[j], item, out);
    }
    fputc('}', out);
}

void conf_value_yaml(const conf_key *k, const void *base, int block, FILE *out)
{
    if (k->type != CONF_LIST) {
        scalar_yaml(k, base, out);
        return;
    }
    const conf_list *l = k->list;
    uint32_t n = *conf_list_count(l, base);
    const char *items = conf_list_items(l, base);
    if (l->map && n && block) {
        /* block style, one "- {...}" line per item under the key: a list of classes
         * stays readable and diffable */
        const char *indent = conf_key_leaf(k) == k->name ? "  " : "    ";
        for (uint32_t i = 0; i < n; i++) {
            fprintf(out, "\n%s- ", indent);
            map_item_yaml(l, items + i * l->item_size, out);
        }
        return;
    }
    fputc('[', out);
    for (uint32_t i = 0; i < n; i++) {
        const void *item = items + i * l->item_size;
        fputs(i ? ", " : "", out);
        if (!l->map) {
            scalar_yaml(&l->keys[0], item, out);
            continue;
        }
        map_item_yaml(l, item, out);
    }
    fputc(']', out);
}

size_t conf_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 127 || lb > 127) return la > lb ? la : lb; /* names are short */
    size_t row[128];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}
