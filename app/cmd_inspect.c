/*
 * cmd_inspect.c — `netdiffus inspect`: summaries of dataset and model files, and the
 * effective config (defaults filled in) of a YAML file.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "model.h"
#include "opts.h"

/* out, or with js (--json) a "config" field of it. */
static int inspect_config(const char *path, nd_json *js)
{
    nd_config cfg = {0};
    int rc = cli_config_open(&cfg, &(cli_config){.path = path});
    if (!rc) {
        /* the class rules as capture compiles them: a filter it would refuse is an
         * invalid config here too */
        capture_opts co;
        nd_error e = {0};
        opts_capture(&co, &cfg);
        if (capture_check_filters(&co, CAPTURE_LINK_ETHERNET, &e)) {
            nd_err("%s: %s", path, e.msg);
            rc = cli_exit_code(e.code);
        }
    }
    char *yaml = rc ? NULL : nd_config_to_yaml(&cfg);
    nd_config_free(&cfg);
    if (rc) return rc;
    if (!yaml) {
        nd_err("%s: out of memory", path);
        return ND_EXIT_FAIL;
    }
    if (js) nd_json_str(js, "config", yaml);
    else fputs(yaml, stdout);
    free(yaml);
    return ND_EXIT_OK;
}

/* The summary of the file at path on stdout, or with js (--json) as fields of js (with
 * "error" when it cannot be read). */
static int inspect_container(const char *path, nd_json *js)
{
    nd_error e = {0};
    FILE *out = js ? NULL : stdout;
    nd_json_str(js, "file", path);
    ndf_reader *r = ndf_open(path, 0, &e);
    int rc = r ? nd_inspect_reader(r, out, js, &e) : e.code;
    /* Model files: the model module's own summary (architecture, training step, class
     * scales), after the sections common to both kinds. */
    if (!rc && ndf_kind(r) == NDF_KIND_MODEL) rc = nd_dm_inspect(r, out, js, &e);
    ndf_close(r);
    if (rc) nd_err("%s", e.msg);
    if (rc) nd_json_str(js, "error", e.msg);
    return cli_exit_code(rc);
}

static const struct option longs[] = {
    {"config", required_argument, NULL, 'c'},
    CLI_JSON_OPTION,
    {0},
};

static int run(int argc, char **argv)
{
    const char *config = NULL;
    const char **files = calloc((size_t)argc, sizeof *files); /* at most argc - 1 */
    int n_files = 0, json = 0, status = ND_EXIT_USAGE;
    cli_args a;
    cli_args_init(&a, "inspect", argc, argv, "c:", longs);
    if (!files) return ND_EXIT_FAIL;
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        if (c == CLI_OPERAND) {
            files[n_files++] = a.val;
        } else if (c == CLI_OPT_JSON) {
            json = 1;
        } else if (c != 'c') {
            goto out; /* CLI_BAD: said */
        } else if (config) {
            cli_usage_error("inspect", "--config given twice");
            goto out;
        } else {
            config = a.val;
        }
    }
    nd_json *js = json ? nd_json_new() : NULL, *arr = NULL;
    if (config && n_files) {
        cli_usage_error("inspect", "give either --config CONF or files, not both");
    } else if (config) {
        status = inspect_config(config, js);
    } else if (!n_files) {
        cli_usage_error("inspect", "no file given");
    } else {
        status = ND_EXIT_OK;
        arr = nd_json_arr(js, "files");
        for (int i = 0; i < n_files; i++) {
            if (i && !json) fputc('\n', stdout);
            int rc = inspect_container(files[i], nd_json_obj(arr, NULL));
            if (rc > status) status = rc;
        }
    }
    if (js && (config || arr)) {
        int rc = cli_json_print(js);
        if (rc > status) status = rc;
    } else {
        nd_json_free(js);
    }
out:
    free(files);
    return status;
}

const nd_command cmd_inspect = {
    "inspect",
    "summarise a dataset, model or config file",
    "usage: netdiffus inspect [--json] FILE.ndd|FILE.ndm...\n"
    "       netdiffus inspect [--json] --config CONF.yaml\n"
    "\n"
    "With files: checks each file completely (magic, version, every length and CRC, every\n"
    "field against its bounds) and prints its kind, format version and sections, then for\n"
    "datasets the channels, the\n"
    "bin width, the windows per class, per-class traffic statistics (flows, protocol mix,\n"
    "top server ports, mean packet size per direction) and the capture counters. Model\n"
    "files show the classes and statistics they were trained on.\n"
    "\n"
    "With --config: checks the config as the commands that use it do (every key, and the\n"
    "class filters compiled as capture compiles them) and prints the effective\n"
    "configuration, every default filled in, as YAML that netdiffus reads back unchanged.\n"
    "\n"
    "  -c, --config CONF   YAML config to check and print (see docs/CONFIG.md)\n"
    "      --json          one JSON object on stdout: {\"files\": [one object per file,\n"
    "                      with \"error\" when it could not be read]}, or {\"config\": YAML}\n"
    "\n"
    "Exit codes: 0 ok; 1 a file is missing, unreadable, truncated, corrupt or foreign, or\n"
    "holds values outside the bounds of docs/FORMATS.md (e.g. a model's network record);\n"
    "2 bad usage or an invalid config. File formats: docs/FORMATS.md.\n",
    run,
    longs,
};
