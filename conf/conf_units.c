/*
 * conf_units.c — values with units: durations ("1.5s" → ns) and sizes ("64MiB" → bytes),
 * parsed exactly in integers (no double rounding) and formatted back the way a person
 * writes them, so that nd_config_to_yaml round-trips.
 */
#include <string.h>

#include "conf_impl.h"

typedef struct conf_unit {
    const char *suffix;
    uint64_t mult;
} conf_unit;

static const conf_unit duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* µs */
    {"ms", 1000000},
    {"s", ND_NS_PER_SEC},
    {"m", 60 * ND_NS_PER_SEC},
    {"h", 3600 * ND_NS_PER_SEC},
};
#define N_DURATION_UNITS (sizeof duration_units / sizeof duration_units[0])

static const conf_unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"k", 1ull << 10},
    {"K", 1ull << 10},
    {"KiB", 1ull << 10},
    {"M", 1ull << 20},
    {"MiB", 1ull << 20},
    {"G", 1ull << 30},
    {"GiB", 1ull << 30},
    {"T", 1ull << 40},
    {"TiB", 1ull << 40},
};
#define N_SIZE_UNITS (sizeof size_units / sizeof size_units[0])

/* "<digits>[.<digits>][ ]<unit>" exactly, as integer × mult (+ fraction × mult, which must
 * come out whole). Returns 0, or -1 with *why: "negative", "overflow", "unit", "frac",
 * "number". */
static int parse_scaled(const char *s, const conf_unit *units, size_t n_units, uint64_t *out,
                        const char **why)
{
    const char *p = s;
    while (*p == ' ') p++;
    if (*p == '-') return *why = "negative", -1;
    if (*p == '+') p++;
    if (*p < '0' || *p > '9') return *why = "number", -1;
    uint64_t whole = 0, frac = 0, frac_den = 1;
    int overflow = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        overflow |= __builtin_mul_overflow(whole, 10, &whole) |
                    __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole);
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return *why = "number", -1;
        /* 18 digits keep frac_den below 2^63; further digits must be zeros */
        for (int nd = 0; *p >= '0' && *p <= '9'; p++, nd++) {
            if (nd >= 18) {
                if (*p != '0') return *why = "frac", -1;
                continue;
            }
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_den *= 10;
        }
    }
    if (*p == ' ') p++;
    const conf_unit *u = NULL;
    for (size_t i = 0; i < n_units; i++)
        if (!strcmp(p, units[i].suffix)) u = &units[i];
    if (!u) return *why = "unit", -1;
    uint64_t v;
    overflow |= __builtin_mul_overflow(whole, u->mult, &v);
    /* frac/frac_den × mult: exact only when frac × mult divides by frac_den */
    unsigned __int128 f = (unsigned __int128)frac * u->mult;
    if (f % frac_den) return *why = "frac", -1;
    overflow |= __builtin_add_overflow(v, (uint64_t)(f / frac_den), &v);
    if (overflow) return *why = "overflow", -1;
    *out = v;
    return 0;
}

/* The "expected ..." text for a failed parse_scaled: why, in words for values of this
 * kind ("a duration", whole "ns"), else the general form. */
static const char *scaled_expected(const char *why, int duration, const char *general)
{
    static const char *const text[2][3] = {
        {"expected a size that is not negative",
         "expected a size that fits in 64 bits of bytes",
         "expected a size that is a whole number of bytes"},
        {"expected a duration that is not negative",
         "expected a duration that fits in 64 bits of ns (~584 years)",
         "expected a duration that is a whole number of ns"},
    };
    static const char *const whys[3] = {"negative", "overflow", "frac"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(why, whys[i])) return text[duration][i];
    return general;
}

const char *conf_parse_duration(const char *s, uint64_t *ns)
{
    const char *why;
    if (!parse_scaled(s, duration_units, N_DURATION_UNITS, ns, &why)) return NULL;
    /* a unit is required: "5" could be seconds or milliseconds */
    if (!strcmp(why, "unit") && strspn(s, "0123456789. ") == strlen(s))
        return "expected a duration with a unit (ns, us, ms, s, m, h): a bare number is ambiguous";
    return scaled_expected(why, 1,
                           "expected a duration: a number and a unit (ns, us, ms, s, m, "
                           "h), e.g. 100ms, 1.5s, 2m");
}

const char *conf_parse_size(const char *s, uint64_t *bytes)
{
    const char *why;
    if (!parse_scaled(s, size_units, N_SIZE_UNITS, bytes, &why)) return NULL;
    return scaled_expected(why, 0,
                           "expected a size in bytes with an optional binary unit "
                           "(k/K/KiB = 1024, M/MiB, G/GiB, T/TiB, B), e.g. 1500, 64MiB");
}

int nd_parse_duration(const char *s, uint64_t *ns, nd_error *e)
{
    const char *why = conf_parse_duration(s, ns);
    return why ? nd_error_set(e, ND_ECONFIG, "%s, got '%s'", why, s) : 0;
}

int nd_parse_size(const char *s, uint64_t *bytes, nd_error *e)
{
    const char *why = conf_parse_size(s, bytes);
    return why ? nd_error_set(e, ND_ECONFIG, "%s, got '%s'", why, s) : 0;
}

/* The largest unit that divides v exactly (units sorted by mult, ascending, the first of
 * equal mults preferred). */
static void format_scaled(uint64_t v, const conf_unit *units, size_t n_units, const char *zero,
                          char *buf, size_t len)
{
    if (!v) {
        snprintf(buf, len, "%s", zero);
        return;
    }
    const conf_unit *best = &units[0];
    for (size_t i = 1; i < n_units; i++)
        if (units[i].mult > best->mult && v % units[i].mult == 0) best = &units[i];
    snprintf(buf, len, "%llu%s", (unsigned long long)(v / best->mult), best->suffix);
}

void nd_format_duration(uint64_t ns, char *buf, size_t len)
{
    format_scaled(ns, duration_units, N_DURATION_UNITS, "0s", buf, len);
}

/* Sizes print as "1500" or "64MiB": the IEC names, never the one-letter aliases. */
void nd_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const conf_unit preferred[] = {{"", 1},
                                          {"KiB", 1ull << 10},
                                          {"MiB", 1ull << 20},
                                          {"GiB", 1ull << 30},
                                          {"TiB", 1ull << 40}};
    format_scaled(bytes, preferred, sizeof preferred / sizeof preferred[0], "0", buf, len);
}
