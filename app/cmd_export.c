/*
 * cmd_export.c — `netdiffus export`: a dataset file's windows as series CSV, for other
 * tools (pandas, R, a spreadsheet) and for `import --format csv`.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

static const struct option longs[] = {
    {"csv", required_argument, NULL, 'o'},
    {"output", required_argument, NULL, 'o'},
    {0},
};

static int run(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    cli_args a;
    cli_args_init(&a, "export", argc, argv, "o:", longs);
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        if (c == 'o') out = a.val;
        else if (c != CLI_OPERAND || cli_args_operand(&a, &in, "input")) return ND_EXIT_USAGE;
    }
    if (!in) return cli_usage_error("export", "no dataset file given");
    if (!out) return cli_usage_error("export", "no output: give --csv OUT.csv");
    nd_error e = {0};
    nd_dataset *ds = nd_dataset_load(in, &e);
    int rc = ds ? nd_csv_write(ds, out, &e) : e.code;
    if (rc) nd_err("%s", e.msg);
    else
        nd_info("%" PRIu64 " windows (%u channels x %u bins) -> %s", ds->n_windows,
                ds->n_channels, ds->L, out);
    nd_dataset_free(ds);
    return cli_exit_code(rc);
}

const nd_command cmd_export = {
    "export", "write a dataset's windows as series CSV",
    "usage: netdiffus export IN.ndd --csv OUT.csv\n"
    "\n"
    "Writes every window of a dataset file as one row of series CSV (docs/FORMATS.md):\n"
    "a header `class,bytes_down_0,...,bytes_down_<L-1>,bytes_up_0,...` (channel-major),\n"
    "then per window its class name and values in raw units (bytes or packets per bin).\n"
    "`netdiffus import --format csv` reads it back; the bin width is not in the CSV.\n"
    "\n"
    "  --csv FILE   (or -o FILE) the CSV to write; written atomically\n",
    run, longs};
