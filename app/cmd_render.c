/*
 * cmd_render.c — `netdiffus render`: the pictures of `sample --png` for a dataset file
 * or series CSV of real (or any) windows, so real and synthetic can be put side by side.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "model.h"

enum { OPT_COUNT = CLI_OPT_OWN };

static const struct option longs[] = {
    {"png", required_argument, NULL, 'o'},
    {"count", required_argument, NULL, OPT_COUNT},
    {0},
};

static int run(int argc, char **argv)
{
    const char *in = NULL, *png = NULL;
    long long per_class = 8;
    cli_args a;
    cli_args_init(&a, "render", argc, argv, "o:", longs);
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        switch (c) {
        case 'o': png = a.val; break;
        case OPT_COUNT:
            if (cli_parse_ll(a.val, &per_class) || per_class < 1 || per_class > 1000)
                return cli_usage_error("render", "--count %s: expected 1..1000", a.val);
            break;
        case CLI_OPERAND:
            if (cli_args_operand(&a, &in, "input")) return ND_EXIT_USAGE;
            break;
        default: return ND_EXIT_USAGE; /* CLI_BAD: said */
        }
    }
    if (!in) return cli_usage_error("render", "no input given (IN.ndd or IN.csv)");
    if (!png) return cli_usage_error("render", "no output: give --png OUT.png");
    nd_error e = {0};
    nd_dataset *ds = nd_windows_read(in, ND_NS_PER_SEC, &e);
    int rc = ds ? nd_png_windows(png, ds, (int)per_class, &e) : e.code;
    if (rc) nd_err("%s", e.msg);
    else nd_info("%s -> %s", in, png);
    nd_dataset_free(ds);
    return cli_exit_code(rc);
}

const nd_command cmd_render = {
    "render",
    "draw a dataset's windows as GASF images and series (PNG)",
    "usage: netdiffus render IN.ndd|IN.csv --png OUT.png [--count N]\n"
    "\n"
    "Draws up to N windows per class (default 8), one row each: the GASF image of every\n"
    "channel (blue -1, white 0, red +1; log1p values scaled by the file's largest value\n"
    "per channel) and a plot of the series (log scale; blue bytes_down, orange\n"
    "bytes_up). Same layout as `netdiffus sample --png`, so real and synthetic windows\n"
    "can be compared side by side. PNGs are for people: models never read them.\n"
    "\n"
    "  --png FILE   picture to write\n"
    "  --count N    windows per class (default 8)\n"
    "\n"
    "Exit codes: 0 ok; 1 unreadable input or write failure; 2 bad usage.\n",
    run,
    longs,
};
