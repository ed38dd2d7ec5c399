/*
 * cmd_export.c — `netdiffus export`: a dataset file's windows as series CSV, for other
 * tools (pandas, R, a spreadsheet) and for `import --format csv`; or a model file's
 * network weights as safetensors, for PyTorch and other ML tools.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "opts.h"

static const struct option longs[] = {
    {"csv", required_argument, NULL, 'o'},
    {"output", required_argument, NULL, 'o'},
    {"safetensors", required_argument, NULL, 'S'},
    {0},
};

/* The model file's EMA weights -> a safetensors file. */
static int export_safetensors(const char *in, const char *out)
{
    nd_error e = {0};
    nd_dm *m = nd_dm_load(in, 1, opts_dm_legacy, &e);
    int rc = m ? nd_dm_export_safetensors(m, out, &e) : e.code;
    if (rc) nd_err("%s", e.msg);
    else
        nd_info("%zu weights (EMA, step %" PRIu64 ") -> %s", nd_unet_num_params(nd_dm_unet(m)),
                nd_dm_step(m), out);
    nd_dm_free(m);
    return cli_exit_code(rc);
}

static int run(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *st = NULL;
    cli_args a;
    cli_args_init(&a, "export", argc, argv, "o:", longs);
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        if (c == 'o') out = a.val;
        else if (c == 'S') st = a.val;
        else if (c != CLI_OPERAND || cli_args_operand(&a, &in, "input")) return ND_EXIT_USAGE;
    }
    if (!in) return cli_usage_error("export", "no input file given");
    if (out && st) return cli_usage_error("export", "give either --csv or --safetensors");
    if (st) return export_safetensors(in, st);
    if (!out)
        return cli_usage_error("export", "no output: give --csv OUT.csv (a dataset) or "
                                         "--safetensors OUT (a model)");
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
    "export", "write a dataset as series CSV, or a model's weights as safetensors",
    "usage: netdiffus export IN.ndd --csv OUT.csv\n"
    "       netdiffus export MODEL.ndm --safetensors OUT.safetensors\n"
    "\n"
    "Writes every window of a dataset file as one row of series CSV (docs/FORMATS.md):\n"
    "a header `class,bytes_down_0,...,bytes_down_<L-1>,bytes_up_0,...` (channel-major),\n"
    "then per window its class name and values in raw units (bytes or packets per bin).\n"
    "`netdiffus import --format csv` reads it back; the bin width is not in the CSV.\n"
    "\n"
    "Or writes a model's network weights (the EMA that sampling uses) as safetensors,\n"
    "under PyTorch's names and shapes: scripts/torch_reference.py's U-Net loads them\n"
    "(docs/FORMATS.md, \"Safetensors export\"). The network's settings are in the\n"
    "file's metadata.\n"
    "\n"
    "  --csv FILE          (or -o FILE) the CSV to write; written atomically (- for\n"
    "                      standard output; IN may be - for standard input)\n"
    "  --safetensors FILE  the weights to write; written atomically\n",
    run, longs};
