/*
 * cmd_render.c — `netdiffus render`: the pictures of `sample --png` for a dataset file
 * or series CSV of real (or any) windows, and with --synth real and synthetic windows
 * side by side, class by class.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "model.h"

enum { OPT_COUNT = CLI_OPT_OWN, OPT_SYNTH, OPT_CLASS };

static const struct option longs[] = {
    {"png", required_argument, NULL, 'o'},
    {"count", required_argument, NULL, OPT_COUNT},
    {"synth", required_argument, NULL, OPT_SYNTH},
    {"class", required_argument, NULL, OPT_CLASS},
    {0},
};

static int run(int argc, char **argv)
{
    const char *in = NULL, *png = NULL, *synth = NULL, *cls = NULL;
    long long per_class = 8;
    cli_args a;
    cli_args_init(&a, "render", argc, argv, "o:", longs);
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        switch (c) {
        case 'o': png = a.val; break;
        case OPT_SYNTH: synth = a.val; break;
        case OPT_CLASS: cls = a.val; break;
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
    nd_dataset *ds = nd_windows_read(in, ND_NS_PER_SEC, &e),
               *sy = ds && synth ? nd_windows_read(synth, ND_NS_PER_SEC, &e) : NULL;
    const char *base = strrchr(in, '/');
    nd_png_column cols[2] = {{ds, synth ? "real" : base ? base + 1 : in}, {sy, "synthetic"}};
    int rc = ds && (sy || !synth)
                 ? nd_png_windows(png, cols, synth ? 2 : 1, (int)per_class, cls, &e)
                 : e.code;
    if (rc) nd_err("%s", e.msg);
    else nd_info("%s -> %s", in, png);
    nd_dataset_free(ds);
    nd_dataset_free(sy);
    return cli_exit_code(rc);
}

const nd_command cmd_render = {
    "render",
    "draw a dataset's windows as labelled series plots (PNG)",
    "usage: netdiffus render IN.ndd|IN.csv --png OUT.png [--synth SYNTH.ndd|SYNTH.csv]\n"
    "                        [--class NAME] [--count N]\n"
    "\n"
    "Draws up to N windows per class (default 8), one row each, under a header naming the\n"
    "class and its number of windows: a plot of the series (bytes per bin on a log scale\n"
    "against time in seconds, one colour per channel: blue bytes_down, orange bytes_up;\n"
    "the legend names them) and, beside it, small GASF images of its channels (blue -1,\n"
    "white 0, red +1; log1p values scaled by the file's largest value per channel).\n"
    "With --synth, IN is drawn as 'real' and SYNTH beside it as 'synthetic', class by\n"
    "class (matched by name), rows lined up and axes shared, so that the two compare at a\n"
    "glance. A series CSV does not carry the bin width: 1 s is assumed (a .ndd knows it).\n"
    "PNGs are for people: models never read them.\n"
    "\n"
    "  --png FILE     picture to write\n"
    "  --synth FILE   synthetic windows to draw beside IN's (same channels and bins)\n"
    "  --class NAME   draw this class only (a picture per class)\n"
    "  --count N      windows per class and column (default 8)\n"
    "\n"
    "Exit codes: 0 ok; 1 unreadable input or write failure; 2 bad usage or files that\n"
    "do not match.\n",
    run,
    longs,
};
