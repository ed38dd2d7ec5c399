/*
 * csv.c — series CSV, the exchange format with other tools (docs/FORMATS.md).
 *
 *   class,bytes_down_0,...,bytes_down_63,bytes_up_0,...,bytes_up_63
 *   web,1500,0,...
 *
 * One row per window, channel-major columns, raw units. Written by `export` and `sample`,
 * read by `import`, `replay --series` and `eval`. A reader also takes a `group` column
 * after `class` (rows of one flow share it, in the order of their time); without it row
 * k is group k. Reading infers C, L and the channel
 * names from the header; every error names file:line:col (1-based, columns in bytes).
 * Class names holding a comma or a double quote are quoted as RFC 4180 says; a line
 * break inside a quoted field is rejected, since class names cannot hold one.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ndfile_impl.h"

/* ------------------------------------------------------------------------------------ */
/* Writing                                                                              */
/* ------------------------------------------------------------------------------------ */

static int put_field_quoted(nd_afile *f, const char *s, nd_error *e)
{
    if (!strpbrk(s, ",\"")) return nd_afile_write(f, s, strlen(s), e);
    int rc = nd_afile_write(f, "\"", 1, e);
    for (const char *q = s; !rc && *q; q++)
        rc = nd_afile_write(f, q, 1, e) || (*q == '"' && nd_afile_write(f, "\"", 1, e));
    return rc ? rc : nd_afile_write(f, "\"", 1, e);
}

int nd_csv_write(const nd_dataset *ds, const char *path, nd_error *e)
{
    nd_error local;
    if (!e) e = &local;
    nd_afile *f = nd_afile_open(path, e);
    if (!f) return e->code;
    char buf[96];
    int rc = nd_afile_write(f, "class", 5, e);
    for (uint32_t c = 0; c < ds->n_channels; c++)
        for (uint32_t b = 0; b < ds->L; b++) {
            int n = snprintf(buf, sizeof buf, ",%s_%u", ds->channel_names[c], b);
            rc = rc ? rc : nd_afile_write(f, buf, (size_t)n, e);
        }
    rc = rc ? rc : nd_afile_write(f, "\n", 1, e);
    size_t wf = (size_t)ds->n_channels * ds->L;
    for (uint64_t i = 0; !rc && i < ds->n_windows; i++) {
        rc = put_field_quoted(f, ds->class_names[ds->labels[i]], e);
        const float *v = ds->values + i * wf;
        for (size_t k = 0; !rc && k < wf; k++) {
            /* 9 significant digits identify every binary32 value uniquely. */
            int n = snprintf(buf, sizeof buf, ",%.9g", (double)v[k]);
            rc = nd_afile_write(f, buf, (size_t)n, e);
        }
        rc = rc ? rc : nd_afile_write(f, "\n", 1, e);
    }
    if (rc) {
        nd_afile_abort(f);
        return rc;
    }
    return nd_afile_commit(f, e);
}

/* ------------------------------------------------------------------------------------ */
/* Reading                                                                              */
/* ------------------------------------------------------------------------------------ */

double nd_bin_max_value(uint64_t bin_ns) { return (double)bin_ns * (ND_MAX_LINE_BPS / 8e9); }

static int is_digit(char c) { return c >= '0' && c <= '9'; }

const char *nd_parse_bin_value(const char *s, double max, float *out)
{
    while (*s == ' ' || *s == '\t') s++;
    /* "-0" is what %.9g makes of a float -0.0: it reads as 0; any other sign is refused */
    int minus = *s == '-';
    s += minus;
    /* strtod alone takes signs, hex, "inf", "nan" and leading spaces of all kinds: the
     * grammar is checked first, strtod only converts what passed */
    const char *q = s;
    size_t digits = 0;
    while (is_digit(*q)) q++, digits++;
    if (*q == '.')
        for (q++; is_digit(*q); q++) digits++;
    if (!digits) return "is not a plain decimal number";
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!is_digit(*q)) return "is not a plain decimal number";
        while (is_digit(*q)) q++;
    }
    const char *end = q;
    while (*q == ' ' || *q == '\t') q++;
    if (*q) return "is not a plain decimal number";
    char *ep;
    double v = strtod(s, &ep);
    if (ep != end) return "is not a plain decimal number";
    if (minus && v != 0) return "is negative";
    if (!(v <= max)) return "is more than a bin can carry";
    float f = (float)v;
    if (v != 0 && f < FLT_MIN) return "is too small for a float (below 1e-38 and not 0)";
    *out = f;
    return NULL;
}

size_t nd_utf8_invalid_at(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : (c & 0xf0) == 0xe0     ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
        if (!len || i + len > n) return i;
        /* the second byte's range excludes overlong forms, surrogates and > U+10FFFF */
        unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        if (len > 1 && (s[i + 1] < lo || s[i + 1] > hi)) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        i += len;
    }
    return n;
}

typedef struct parser {
    const char *path;
    const char *s; /* whole file */
    size_t n, i;   /* length, position */
    uint64_t line; /* 1-based line of position i */
    size_t bol;    /* offset where that line begins */
    nd_error *e;
} parser;

static int perr(const parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(const parser *p, size_t at, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nd_error_set(p->e, ND_EFORMAT, "%s:%llu:%zu: %s", p->path,
                        (unsigned long long)p->line, at - p->bol + 1, what);
}

static int at_eol(const parser *p)
{
    return p->i >= p->n || p->s[p->i] == '\n' || p->s[p->i] == '\r';
}

/* Steps over the line end at i (\n, \r\n or a lone \r) to the next line. */
static void next_line(parser *p)
{
    if (p->i < p->n && p->s[p->i] == '\r') p->i++;
    if (p->i < p->n && p->s[p->i] == '\n') p->i++;
    p->line++;
    p->bol = p->i;
}

/* Reads one field into out (at most cap-1 bytes, NUL-terminated), leaving i on the ','
 * or line end after it. *start gets the field's offset for messages. */
static int field(parser *p, char *out, size_t cap, size_t *start, const char *what)
{
    size_t k = 0;
    *start = p->i;
    if (p->i < p->n && p->s[p->i] == '"') {
        p->i++;
        for (;;) {
            if (p->i >= p->n) return perr(p, *start, "unterminated quoted %s", what);
            char c = p->s[p->i];
            if (!c) return perr(p, p->i, "NUL byte in a %s", what);
            if (c == '\n' || c == '\r')
                return perr(p, p->i, "line break inside a quoted %s (not supported)", what);
            if (c == '"') {
                if (p->i + 1 < p->n && p->s[p->i + 1] == '"') {
                    p->i++;
                } else {
                    p->i++;
                    break;
                }
            }
            if (k + 1 >= cap) return perr(p, *start, "%s is too long", what);
            out[k++] = c;
            p->i++;
        }
        if (!at_eol(p) && p->s[p->i] != ',')
            return perr(p, p->i, "expected ',' or the end of the line after a quoted %s", what);
    } else {
        for (; !at_eol(p) && p->s[p->i] != ','; p->i++) {
            if (p->s[p->i] == '"')
                return perr(p, p->i, "quote inside an unquoted %s (quote the whole field)",
                            what);
            if (!p->s[p->i]) return perr(p, p->i, "NUL byte in a %s", what);
            if (k + 1 >= cap) return perr(p, *start, "%s is too long", what);
            out[k++] = p->s[p->i];
        }
    }
    out[k] = 0;
    return 0;
}

/* Header: "class", optionally "group", then channel-major "<name>_<bin>" with bins
 * 0..L-1 for each channel. */
static int header(parser *p, uint32_t *C, uint32_t *L, char names[][ND_NAME_MAX], int *grouped)
{
    char f[ND_NAME_MAX + 16];
    size_t at;
    if (p->n >= 3 && !memcmp(p->s, "\xef\xbb\xbf", 3)) p->i = p->bol = 3; /* UTF-8 BOM */
    if (p->i >= p->n) return perr(p, p->i, "empty file, expected a header line 'class,...'");
    int rc = field(p, f, sizeof f, &at, "column name");
    if (rc) return rc;
    if (strcmp(f, "class")) return perr(p, at, "first column is '%s', expected 'class'", f);
    uint32_t c = 0, b = 0, len0 = 0;
    *grouped = 0;
    while (!at_eol(p)) {
        p->i++; /* ',' */
        if ((rc = field(p, f, sizeof f, &at, "column name"))) return rc;
        if (c == 0 && !*grouped && !strcmp(f, "group")) {
            *grouped = 1;
            continue;
        }
        char *us = strrchr(f, '_');
        char *end = NULL;
        unsigned long bin = us && us[1] >= '0' && us[1] <= '9' ? strtoul(us + 1, &end, 10) : 0;
        if (!end || *end || (us[1] == '0' && us[2]) || us == f)
            return perr(p, at, "column '%s' is not <channel>_<bin>", f);
        *us = 0;
        if (bin == 0) { /* a new channel starts */
            if (c > 0 && b != len0) {
                char want[ND_NAME_MAX + 16];
                snprintf(want, sizeof want, "%s_%u", names[c - 1], b);
                return perr(p, at, "expected column '%s': every channel needs the same bins",
                            want);
            }
            if (c == ND_MAX_CHANNELS)
                return perr(p, at, "more than %d channels", ND_MAX_CHANNELS);
            if (strlen(f) >= ND_NAME_MAX)
                return perr(p, at, "channel name '%s' is too long", f);
            for (uint32_t k = 0; k < c; k++)
                if (!strcmp(names[k], f)) return perr(p, at, "channel '%s' appears twice", f);
            strcpy(names[c++], f);
            b = 1;
        } else {
            char want[ND_NAME_MAX + 16];
            if (c == 0 || strcmp(f, names[c - 1]) || bin != b || (c > 1 && b >= len0)) {
                if (c == 0) snprintf(want, sizeof want, "<channel>_0");
                else if (c > 1 && b >= len0) snprintf(want, sizeof want, "<next channel>_0");
                else snprintf(want, sizeof want, "%s_%u", names[c - 1], b);
                return perr(p, at, "expected column '%s' (channel-major, bins from 0)", want);
            }
            if (++b > ND_MAX_BINS) return perr(p, at, "more than %d bins", ND_MAX_BINS);
        }
        if (c == 1) len0 = b;
    }
    if (c == 0) return perr(p, p->i, "header has no <channel>_<bin> columns");
    if (b != len0) {
        char want[ND_NAME_MAX + 16];
        snprintf(want, sizeof want, "%s_%u", names[c - 1], b);
        return perr(p, p->i, "header ends early: expected column '%s'", want);
    }
    *C = c;
    *L = len0;
    return 0;
}

/* A row's group column (after its class): a whole number from 0 to 2^64 − 1. */
static int group_field(parser *p, uint64_t *group)
{
    char num[64];
    size_t at;
    if (at_eol(p)) return perr(p, p->i, "row ends after its class: expected its group");
    p->i++; /* ',' */
    int rc = field(p, num, sizeof num, &at, "group");
    if (rc) return rc;
    const char *s = num;
    while (*s == ' ' || *s == '\t') s++;
    uint64_t g = 0;
    int digits = 0, over = 0;
    for (; is_digit(*s); s++, digits++) {
        if (g > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) over = 1;
        g = g * 10 + (uint64_t)(*s - '0');
    }
    while (*s == ' ' || *s == '\t') s++;
    if (!digits || *s || over)
        return perr(p, at, "group '%s' is not a whole number from 0 to 18446744073709551615",
                    num);
    *group = g;
    return 0;
}

static int parse(parser *p, uint64_t bin_ns, nd_dataset **out)
{
    uint32_t C = 0, L = 0;
    char names[ND_MAX_CHANNELS][ND_NAME_MAX];
    int grouped = 0;
    int rc = header(p, &C, &L, names, &grouped);
    if (rc) return rc;
    next_line(p);
    const char *np[ND_MAX_CHANNELS];
    for (uint32_t c = 0; c < C; c++) np[c] = names[c];
    nd_dataset *ds = nd_dataset_new(C, np, L, bin_ns);
    if (!ds)
        return bin_ns ? perr(p, p->bol, "invalid channel names in the header")
                      : nd_error_set(p->e, ND_EUSAGE, "%s: bin width 0", p->path);
    *out = ds;
    size_t wf = (size_t)C * L;
    float *row = malloc(wf * sizeof *row);
    if (!row) return nd_error_set(p->e, -ENOMEM, "%s: out of memory", p->path);
    char f[ND_NAME_MAX];
    size_t at;
    double max = nd_bin_max_value(bin_ns);
    for (uint64_t r = 0; p->i < p->n; next_line(p)) {
        if (at_eol(p)) continue; /* blank line */
        if ((rc = field(p, f, sizeof f, &at, "class name"))) break;
        size_t bad = nd_utf8_invalid_at(f, strlen(f));
        if (f[bad]) {
            /* the field's text and the name differ by its quotes: point at the field */
            rc = perr(p, at, "class name is not valid UTF-8 (byte %zu of the name, 0x%02x)",
                      bad + 1, (unsigned char)f[bad]);
            break;
        }
        int cls = nd_dataset_class(ds, f);
        if (cls < 0) {
            rc = ds->n_classes >= ND_MAX_CLASSES
                     ? perr(p, at, "more than %d classes at '%s'", ND_MAX_CLASSES, f)
                     : perr(p, at, "invalid class name '%s'", f);
            break;
        }
        uint64_t group = r;
        if (grouped && (rc = group_field(p, &group))) break;
        size_t k = 0;
        while (!rc && !at_eol(p)) {
            p->i++; /* ',' */
            if (k == wf) {
                rc = perr(p, p->i, "more values than the header's %zu columns", wf);
                break;
            }
            char num[64];
            if ((rc = field(p, num, sizeof num, &at, "value"))) break;
            const char *why = nd_parse_bin_value(num, max, &row[k]);
            if (why) {
                rc = perr(p, at,
                          "value '%s' (column %s_%zu) %s: expected a plain decimal number "
                          "from 0 to %.6g (a bin of %g s at %g Tbit/s)",
                          num, ds->channel_names[k / L], k % L, why, max, bin_ns / 1e9,
                          ND_MAX_LINE_BPS / 1e12);
            }
            k++;
        }
        if (rc) break;
        if (k < wf) {
            rc = perr(p, p->i, "row has %zu values, the header has %zu", k, wf);
            break;
        }
        r++;
        if ((rc = nd_dataset_append(ds, (uint16_t)cls, group, row))) {
            nd_error_set(p->e, rc, "%s: out of memory", p->path);
            break;
        }
    }
    free(row);
    return rc;
}

nd_dataset *nd_csv_read_mem(const char *text, size_t len, const char *name, uint64_t bin_ns,
                            nd_error *e)
{
    /* The parser never reads past len: text needs no NUL. */
    parser p = {.path = name, .s = text, .n = len, .line = 1, .e = e};
    nd_dataset *ds = NULL;
    if (parse(&p, bin_ns, &ds)) {
        nd_dataset_free(ds);
        ds = NULL;
    }
    return ds;
}

nd_dataset *nd_csv_read(const char *path, uint64_t bin_ns, nd_error *e)
{
    char *text;
    size_t len;
    if (nd_read_file(path, &text, &len, e)) return NULL;
    nd_dataset *ds =
        nd_csv_read_mem(text, len, nd_is_stdio(path) ? "standard input" : path, bin_ns, e);
    free(text);
    return ds;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcasecmp(s + n - k, suffix);
}

/* A CSV read without a bin width: refused, since it does not carry one. */
static nd_dataset *no_bin(const char *name, nd_error *e)
{
    nd_error_set(e, ND_EUSAGE,
                 "%s: a series CSV does not carry its bin width, and none was given", name);
    return NULL;
}

nd_dataset *nd_windows_read(const char *path, uint64_t bin_ns, nd_error *e)
{
    if (has_suffix(path, ".csv"))
        return bin_ns ? nd_csv_read(path, bin_ns, e) : no_bin(path, e);
    if (has_suffix(path, ".ndd")) return nd_dataset_load(path, e);
    /* Any other name, standard input among them: the container's magic tells. */
    char *text;
    size_t len;
    if (nd_read_file(path, &text, &len, e)) return NULL;
    const char *name = nd_is_stdio(path) ? "standard input" : path;
    nd_dataset *ds = NULL;
    if (len >= 4 && !memcmp(text, "\x89NDF", 4)) {
        ndf_reader *r = ndf_open_mem(text, len, name, NDF_KIND_DATASET, e);
        ds = r ? nd_dataset_from_container(r, e) : NULL;
        ndf_close(r);
    } else {
        ds = bin_ns ? nd_csv_read_mem(text, len, name, bin_ns, e) : no_bin(name, e);
    }
    free(text);
    return ds;
}
