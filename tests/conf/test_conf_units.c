/*
 * test_conf_units.c — durations and sizes: valid forms give exact integers, invalid
 * forms (no unit, negative, overflow, fractions below the unit, junk) are errors that
 * say what was expected, and formatting reads back to the same value.
 */
#include "conf_test.h"

static const struct {
    const char *text;
    uint64_t ns;
} durations[] = {
    {"10ns", 10},
    {"250us", 250000},
    {"250\xc2\xb5s", 250000},
    {"100ms", 100000000},
    {"1s", 1000000000},
    {"1.5s", 1500000000},
    {"0.001s", 1000000},
    {"2m", 120000000000},
    {"1h", 3600000000000},
    {"1.25h", 4500000000000},
    {"0s", 0},
    {"100 ms", 100000000},
    {"+3s", 3000000000},
    {"1.000000000000000000000s", 1000000000}, /* trailing zeros past 18 digits */
    {"18446744073709551615ns", UINT64_MAX},
    {"5124095h", 5124095ull * 3600 * 1000000000},
};

static const struct {
    const char *text, *why;
} bad_durations[] = {
    {"5", "a bare number is ambiguous"},
    {"1.5", "a bare number is ambiguous"},
    {"-1s", "not negative"},
    {"-0.5ms", "not negative"},
    {"1.5ns", "whole number of ns"},
    {"0.1ns", "whole number of ns"},
    {"18446744073709551616ns", "fits in 64 bits"},
    {"5124096h", "fits in 64 bits"},
    {"99999999999999999999999s", "fits in 64 bits"},
    {"1sec", "a number and a unit"},
    {"1 s s", "a number and a unit"},
    {"s", "a number and a unit"},
    {"", "a number and a unit"},
    {"1.s", "a number and a unit"},
    {".5s", "a number and a unit"},
    {"1d", "a number and a unit"},
    {"1S", "a number and a unit"},
    {"1e3ms", "a number and a unit"},
};

static const struct {
    const char *text;
    uint64_t bytes;
} sizes[] = {
    {"1500", 1500},
    {"0", 0},
    {"1500B", 1500},
    {"1k", 1024},
    {"1K", 1024},
    {"1KiB", 1024},
    {"64MiB", 64ull << 20},
    {"64M", 64ull << 20},
    {"2GiB", 2ull << 30},
    {"2G", 2ull << 30},
    {"1TiB", 1ull << 40},
    {"1.5k", 1536},
    {"0.5MiB", 512ull << 10},
    {"16 MiB", 16ull << 20},
    {"18446744073709551615", UINT64_MAX},
    {"16777215TiB", 16777215ull << 40},
};

static const struct {
    const char *text, *why;
} bad_sizes[] = {
    {"-1", "not negative"},
    {"-1k", "not negative"},
    {"1.5", "whole number of bytes"},
    {"1.1k", "whole number of bytes"},
    {"18446744073709551616", "fits in 64 bits"},
    {"16777216TiB", "fits in 64 bits"},
    {"1MB", "binary unit"},
    {"1kB", "binary unit"},
    {"1Mi", "binary unit"},
    {"1 parsec", "binary unit"},
    {"MiB", "binary unit"},
    {"", "binary unit"},
    {"0x10", "binary unit"},
};

/* Durations and sizes go through the same checks. */
typedef struct unit_kind {
    int (*parse)(const char *, uint64_t *, nd_error *);
    void (*format)(uint64_t, char *, size_t);
} unit_kind;
static const unit_kind duration_kind = {nd_parse_duration, nd_format_duration};
static const unit_kind size_kind = {nd_parse_size, nd_format_size};

/* text parses to want, and its formatted form parses back to want */
static void check_valid(const unit_kind *u, const char *text, uint64_t want)
{
    uint64_t v = 1, back = 2;
    char buf[64];
    nd_error e = {0};
    if (u->parse(text, &v, &e)) CHECK_FAIL_("'%s': %s", text, e.msg);
    CHECK_U64_EQ(v, want);
    u->format(v, buf, sizeof buf);
    if (u->parse(buf, &back, &e)) CHECK_FAIL_("formatted '%s': %s", buf, e.msg);
    CHECK_U64_EQ(back, want);
}

/* text is an error that says why and what was expected, and leaves the output alone */
static void check_invalid(const unit_kind *u, const char *text, const char *why)
{
    uint64_t v = 7;
    nd_error e = {0};
    if (u->parse(text, &v, &e) != ND_ECONFIG)
        CHECK_FAIL_("'%s' accepted as %llu", text, (unsigned long long)v);
    CHECK_CONTAINS(e.msg, why);
    CHECK_CONTAINS(e.msg, "expected");
    CHECK_U64_EQ(v, 7);
}

int main(void)
{
    char buf[64];
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++)
        check_valid(&duration_kind, durations[i].text, durations[i].ns);
    for (size_t i = 0; i < sizeof bad_durations / sizeof bad_durations[0]; i++)
        check_invalid(&duration_kind, bad_durations[i].text, bad_durations[i].why);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_valid(&size_kind, sizes[i].text, sizes[i].bytes);
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
        check_invalid(&size_kind, bad_sizes[i].text, bad_sizes[i].why);

    /* formatting picks the largest exact unit, the way a person writes it */
    static const struct {
        const unit_kind *kind;
        uint64_t v;
        const char *text;
    } formats[] = {
        {&duration_kind, 1000000000, "1s"},
        {&duration_kind, 1500000000, "1500ms"},
        {&duration_kind, 7200000000000, "2h"},
        {&duration_kind, 250000, "250us"},
        {&duration_kind, 0, "0s"},
        {&duration_kind, 1001, "1001ns"},
        {&size_kind, 64ull << 20, "64MiB"},
        {&size_kind, 1500, "1500"},
        {&size_kind, 1536, "1536"},
        {&size_kind, 0, "0"},
        {&size_kind, 3ull << 40, "3TiB"},
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        formats[i].kind->format(formats[i].v, buf, sizeof buf);
        CHECK_STR_EQ(buf, formats[i].text);
    }
    /* e may be NULL */
    uint64_t v;
    CHECK_EQ(nd_parse_duration("x", &v, NULL), ND_ECONFIG);
    printf("ok: %zu+%zu durations, %zu+%zu sizes\n", sizeof durations / sizeof durations[0],
           sizeof bad_durations / sizeof bad_durations[0], sizeof sizes / sizeof sizes[0],
           sizeof bad_sizes / sizeof bad_sizes[0]);
    return 0;
}
