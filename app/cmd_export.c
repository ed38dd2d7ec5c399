/*
 * cmd_export.c — `netdiffus export`: a dataset file's windows as series CSV, for other
 * tools (pandas, R, a spreadsheet) and for `import --format csv`.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

static int run(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--csv") || !strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) return cli_usage_error("export", "%s needs a file", a);
            out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("export", "unknown option '%s'", a);
        } else if (in) {
            return cli_usage_error("export", "one input only ('%s' and '%s')", in, a);
        } else {
            in = a;
        }
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
    run};
