/*
 * cmd_inspect.c — `netdiffus inspect`: summaries of dataset and model files, and the
 * effective config (defaults filled in) of a YAML file.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf.h"
#include "model.h"

static int inspect_config(const char *path)
{
    nd_config cfg = {0};
    nd_error e = {0};
    int rc = nd_config_load(&cfg, path, &e);
    if (rc) {
        nd_err("%s", e.msg);
        nd_config_free(&cfg);
        return cli_exit_code(rc);
    }
    char *yaml = nd_config_to_yaml(&cfg);
    nd_config_free(&cfg);
    if (!yaml) {
        nd_err("%s: out of memory", path);
        return ND_EXIT_FAIL;
    }
    fputs(yaml, stdout);
    free(yaml);
    return ND_EXIT_OK;
}

static int inspect_container(const char *path)
{
    nd_error e = {0};
    ndf_reader *r = ndf_open(path, 0, &e);
    int rc = r ? nd_inspect_reader(r, stdout, &e) : e.code;
    /* Model files: the model module's own summary (architecture, training step, class
     * scales), after the sections common to both kinds. */
    if (!rc && ndf_kind(r) == NDF_KIND_MODEL) rc = nd_dm_inspect(r, stdout, &e);
    ndf_close(r);
    if (rc) nd_err("%s", e.msg);
    return cli_exit_code(rc);
}

static int run(int argc, char **argv)
{
    const char *config = NULL;
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) return cli_usage_error("inspect", "%s needs a file", a);
            if (config) return cli_usage_error("inspect", "--config given twice");
            config = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            config = a + 9;
        } else if (!strcmp(a, "--")) {
            n_files += argc - i - 1;
            break;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("inspect", "unknown option '%s'", a);
        } else {
            n_files++;
        }
    }
    if (config && n_files)
        return cli_usage_error("inspect", "give either --config CONF or files, not both");
    if (config) return inspect_config(config);
    if (!n_files) return cli_usage_error("inspect", "no file given");

    int status = ND_EXIT_OK, after_dashdash = 0, done = 0;
    for (int i = 1; i < argc; i++) {
        if (!after_dashdash && !strcmp(argv[i], "--")) {
            after_dashdash = 1;
            continue;
        }
        if (!after_dashdash && argv[i][0] == '-' && argv[i][1]) continue;
        if (done++) fputc('\n', stdout);
        int rc = inspect_container(argv[i]);
        if (rc > status) status = rc;
    }
    return status;
}

const nd_command cmd_inspect = {
    "inspect", "summarise a dataset, model or config file",
    "usage: netdiffus inspect FILE.ndd|FILE.ndm...\n"
    "       netdiffus inspect --config CONF.yaml\n"
    "\n"
    "With files: checks each file completely (magic, version, every length and CRC) and\n"
    "prints its kind, format version and sections, then for datasets the channels, the\n"
    "bin width, the windows per class, per-class traffic statistics (flows, protocol mix,\n"
    "top server ports, mean packet size per direction) and the capture counters. Model\n"
    "files show the classes and statistics they were trained on.\n"
    "\n"
    "With --config: prints the effective configuration, every default filled in, as YAML\n"
    "that netdiffus reads back unchanged.\n"
    "\n"
    "  -c, --config CONF   YAML config to check and print (see docs/CONFIG.md)\n"
    "\n"
    "Exit codes: 0 ok; 1 a file is missing, unreadable, truncated, corrupt or foreign;\n"
    "2 bad usage or an invalid config. File formats: docs/FORMATS.md.\n",
    run,
};
