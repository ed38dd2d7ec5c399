/*
 * cmd_import.c — `netdiffus import`: pre-binned traffic series into a dataset file, from
 * a videoTrain directory (CLASS/NAME.csv, 0.5 s rows) or a series CSV. The other way into
 * the pipeline besides `capture`; the windows carry no replay statistics.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "conf.h"

#define VT_ROW_NS (ND_NS_PER_SEC / 2) /* one videoTrain row: 0.5 s */

static const char *const channel_names[4] = {"bytes_down", "bytes_up", "packets_down",
                                             "packets_up"};
/* videoTrain column feeding each channel, in channel order. */
static const char *const vt_columns[4] = {"frame_sum_dl", "frame_sum_ul", "pkt_count_dl",
                                          "pkt_count_ul"};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Names in dir (sorted in byte order, like the dataset's own split rule) that are
 * directories (want_dir) or regular files ending in ".csv". Returns 0 or -errno. */
static int list_dir(const char *dir, int want_dir, char ***out, size_t *n_out)
{
    DIR *d = opendir(dir);
    if (!d) return -errno;
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[8192];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        struct stat st;
        if (stat(path, &st)) continue;
        size_t len = strlen(de->d_name);
        int ok = want_dir
                     ? S_ISDIR(st.st_mode)
                     : S_ISREG(st.st_mode) && len > 4 && !strcmp(de->d_name + len - 4, ".csv");
        if (!ok) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[n] = strdup(de->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        free_list(v, n);
        return rc;
    }
    if (n) qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    *n_out = n;
    return 0;
}

static char *read_file(const char *path, size_t *len, nd_error *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        nd_error_set(e, -errno, "%s: %s", path, strerror(errno));
        return NULL;
    }
    nd_input_note(fileno(f));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? 2 * cap : 1 << 16;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                nd_error_set(e, -ENOMEM, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        nd_error_set(e, -EIO, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* One videoTrain trace into values (C, L): row r adds to bin r / k (k rows per bin), the
 * first L·k rows only. Returns the rows used (< L·k: the trace was short and the rest is
 * zero), or a negative code with e naming file:line:col. */
static long vt_trace(const char *path, uint32_t C, uint32_t L, uint32_t k, float *values,
                     nd_error *e)
{
    size_t len;
    char *text = read_file(path, &len, e);
    if (!text) return e->code;
    memset(values, 0, (size_t)C * L * sizeof *values);
    int col_of[4] = {-1, -1, -1, -1};
    long rows = 0, rc = 0;
    double acc[4] = {0};
    char *line = text;
    for (long lineno = 1; *line; lineno++) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if (lineno == 1) { /* header */
            int col = 0;
            for (char *f = line, *next;; f = next + 1, col++) {
                next = strchr(f, ',');
                if (next) *next = 0;
                for (uint32_t c = 0; c < C; c++)
                    if (!strcmp(f, vt_columns[c])) col_of[c] = col;
                if (!next) break;
            }
            for (uint32_t c = 0; c < C; c++)
                if (col_of[c] < 0) {
                    rc = nd_error_set(e, ND_EFORMAT,
                                      "%s:1: no column '%s' (not a videoTrain "
                                      "trace?)",
                                      path, vt_columns[c]);
                    goto out;
                }
        } else if (ll) {
            if (rows >= (long)L * k) break;
            int col = 0;
            for (char *f = line, *next;; f = next + 1, col++) {
                next = strchr(f, ',');
                if (next) *next = 0;
                for (uint32_t c = 0; c < C; c++) {
                    if (col != col_of[c]) continue;
                    float v;
                    const char *why = nd_parse_bin_value(f, nd_bin_max_value(VT_ROW_NS), &v);
                    if (why) {
                        rc = nd_error_set(e, ND_EFORMAT,
                                          "%s:%ld:%ld: %s: '%s' %s: expected a plain decimal "
                                          "count from 0 to %.6g (a 0.5 s row at %g Tbit/s)",
                                          path, lineno, (long)(f - line) + 1, vt_columns[c], f,
                                          why, nd_bin_max_value(VT_ROW_NS),
                                          ND_MAX_LINE_BPS / 1e12);
                        goto out;
                    }
                    acc[c] += v;
                }
                if (!next) break;
            }
            rows++;
            if (rows % k == 0) {
                for (uint32_t c = 0; c < C; c++) {
                    values[(size_t)c * L + (uint32_t)(rows / k - 1)] = (float)acc[c];
                    acc[c] = 0;
                }
            }
        }
        if (!end) break;
        line = end + 1;
    }
    if (col_of[0] < 0) {
        rc = nd_error_set(e, ND_EFORMAT, "%s: empty file (expected a videoTrain trace)", path);
        goto out;
    }
    /* A trailing partial bin (rows not a multiple of k) is dropped: it would be short. */
    rc = rows - rows % k;
out:
    free(text);
    return rc;
}

static int import_videotrain(const char *dir, const nd_config *cfg, nd_dataset *ds, nd_error *e)
{
    uint64_t bin = cfg->capture.bin_ns;
    if (bin % VT_ROW_NS)
        return nd_error_set(e, ND_ECONFIG,
                            "capture.bin: videoTrain rows are 0.5 s bins, so the "
                            "bin must be a multiple of 500ms (e.g. --set capture.bin=1s)");
    uint32_t k = (uint32_t)(bin / VT_ROW_NS), C = ds->n_channels, L = ds->L;
    char **classes = NULL;
    size_t n_classes = 0;
    int rc = list_dir(dir, 1, &classes, &n_classes);
    if (rc) return nd_error_set(e, rc, "%s: %s", dir, nd_strerror(rc));
    float *values = malloc((size_t)C * L * sizeof *values);
    uint64_t group = 0, short_traces = 0, sparse = 0;
    if (!values) rc = nd_error_set(e, -ENOMEM, "out of memory");
    for (size_t ci = 0; !rc && ci < n_classes; ci++) {
        char cdir[4096];
        if (snprintf(cdir, sizeof cdir, "%s/%s", dir, classes[ci]) >= (int)sizeof cdir) {
            rc = nd_error_set(e, -ENAMETOOLONG, "%s/%s: path too long", dir, classes[ci]);
            break;
        }
        char **files = NULL;
        size_t n_files = 0;
        rc = list_dir(cdir, 0, &files, &n_files);
        if (rc) {
            rc = nd_error_set(e, rc, "%s: %s", cdir, nd_strerror(rc));
            break;
        }
        if (!n_files) {
            free_list(files, n_files);
            continue;
        }
        size_t len = strlen(classes[ci]);
        int label =
            nd_utf8_invalid_at(classes[ci], len) < len ? -1 : nd_dataset_class(ds, classes[ci]);
        if (label < 0)
            rc = nd_error_set(e, ND_EFORMAT,
                              "%s: '%s' is not a valid class name (UTF-8 text without "
                              "control characters, 1 to %d bytes)",
                              cdir, classes[ci], ND_NAME_MAX - 1);
        for (size_t fi = 0; !rc && fi < n_files; fi++) {
            char path[8192];
            if (snprintf(path, sizeof path, "%s/%s", cdir, files[fi]) >= (int)sizeof path) {
                rc = nd_error_set(e, -ENAMETOOLONG, "%s/%s: path too long", cdir, files[fi]);
                break;
            }
            long used = vt_trace(path, C, L, k, values, e);
            if (used < 0) {
                rc = (int)used;
                break;
            }
            group++;
            if (used < (long)L * k) short_traces++;
            uint32_t active = 0;
            for (uint32_t b = 0; b < L; b++)
                for (uint32_t c = 0; c < C; c++)
                    if (values[(size_t)c * L + b] != 0) {
                        active++;
                        break;
                    }
            if (active < cfg->capture.min_active_bins) {
                sparse++;
                continue;
            }
            if (nd_dataset_append(ds, (uint16_t)label, group, values))
                rc = nd_error_set(e, -ENOMEM, "out of memory after %" PRIu64 " windows",
                                  ds->n_windows);
        }
        free_list(files, n_files);
    }
    free(values);
    free_list(classes, n_classes);
    if (rc) return rc;
    if (!group)
        return nd_error_set(e, ND_EFORMAT,
                            "%s: no traces found (expected CLASS/*.csv "
                            "subdirectories, the videoTrain layout)",
                            dir);
    nd_dataset_count(ds, "import.traces", group);
    nd_dataset_count(ds, "import.short_traces", short_traces);
    nd_dataset_count(ds, "import.window_sparse", sparse);
    if (short_traces)
        nd_warn("%s: %" PRIu64 " traces shorter than %u bins were zero-padded", dir,
                short_traces, L);
    return 0;
}

static const struct option longs[] = {
    CLI_CONFIG_OPTIONS,
    {"output", required_argument, NULL, 'o'},
    {"format", required_argument, NULL, 'f'},
    CLI_JSON_OPTION,
    {0},
};

static int run(int argc, char **argv)
{
    const char *out = NULL, *format = NULL, *in = NULL;
    int json = 0;
    cli_config cc = {0};
    cli_args a;
    cli_args_init(&a, "import", argc, argv, "c:o:f:", longs);
    a.config = &cc;
    for (int c; (c = cli_args_next(&a)) != CLI_END;) {
        switch (c) {
        case 'o': out = a.val; break;
        case 'f': format = a.val; break;
        case CLI_OPT_JSON: json = 1; break;
        case CLI_OPERAND:
            if (cli_args_operand(&a, &in, "input")) return ND_EXIT_USAGE;
            break;
        default: return ND_EXIT_USAGE; /* CLI_BAD: said */
        }
    }
    if (!format) return cli_usage_error("import", "no --format: videotrain or csv");
    if (strcmp(format, "videotrain") && strcmp(format, "csv"))
        return cli_usage_error("import", "--format %s: expected videotrain or csv", format);
    if (!in) return cli_usage_error("import", "no input given");
    if (!out) return cli_usage_error("import", "no output file: give -o OUT.ndd");
    if (cli_json_check("import", json, out)) return ND_EXIT_USAGE;

    nd_config cfg = {0};
    nd_error e = {0};
    int rc = cli_config_open(&cfg, &cc);
    if (rc) {
        nd_config_free(&cfg);
        return rc;
    }

    nd_dataset *ds = NULL;
    if (!strcmp(format, "csv")) {
        ds = nd_csv_read(in, cfg.capture.bin_ns, &e);
        if (!ds) rc = e.code;
        else if (ds->L != cfg.capture.window)
            nd_info("%s: %u bins per window (the CSV's, not capture.window %u)", in, ds->L,
                    cfg.capture.window);
    } else {
        ds = nd_dataset_new(cfg.capture.channels, channel_names, cfg.capture.window,
                            cfg.capture.bin_ns);
        rc = ds ? import_videotrain(in, &cfg, ds, &e)
                : nd_error_set(&e, -ENOMEM, "out of memory");
    }
    char *yaml = rc ? NULL : nd_config_to_yaml(&cfg);
    if (!rc && !yaml) rc = nd_error_set(&e, -ENOMEM, "out of memory");
    if (!rc) rc = nd_dataset_set_config(ds, yaml);
    if (!rc) rc = nd_dataset_save(ds, out, &e);
    if (rc) nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    else
        nd_info("%" PRIu64 " windows of %u classes, %u x %u bins -> %s", ds->n_windows,
                ds->n_classes, ds->n_channels, ds->L, out);
    if (!rc && json) {
        nd_json *j = nd_json_new();
        nd_json_str(j, "input", in);
        nd_json_str(j, "format", format);
        nd_json_str(j, "output", out);
        nd_dataset_json(ds, j);
        if (cli_json_print(j)) rc = -EIO;
    }
    free(yaml);
    nd_dataset_free(ds);
    nd_config_free(&cfg);
    return cli_exit_code(rc);
}

const nd_command cmd_import = {
    "import", "import pre-binned series (videoTrain, series CSV)",
    "usage: netdiffus import --format videotrain|csv [-c CONF] [--set KEY=VAL] [--json] IN\n"
    "                        -o OUT.ndd\n"
    "\n"
    "Turns traces that are already binned into a dataset file, the same kind `capture`\n"
    "writes (without replay statistics).\n"
    "\n"
    "  --format videotrain  IN is a directory of CLASS/*.csv traces in the videoTrain\n"
    "                       layout (0.5 s rows). Each subdirectory is a class, each file\n"
    "                       one window (its own group): bytes_down = frame_sum_dl,\n"
    "                       bytes_up = frame_sum_ul (with capture.channels 4 also\n"
    "                       packets_down/up = pkt_count_dl/ul). Rows are summed into bins\n"
    "                       of capture.bin (a multiple of 500ms; 1s sums pairs) and the\n"
    "                       first capture.window bins are kept; shorter traces are\n"
    "                       zero-padded.\n"
    "  --format csv         IN is a series CSV (docs/FORMATS.md: header class,\n"
    "                       bytes_down_0, ...); capture.bin gives the bin width.\n"
    "  -c, --config CONF    YAML config (capture.bin, capture.window, capture.channels,\n"
    "                       capture.min_active_bins); defaults without it\n"
    "      --set KEY=VAL    override one config key, e.g. --set capture.window=32\n"
    "  -o, --output FILE    dataset file to write (.ndd; - for standard output)\n"
    "      --json           print the summary on stdout as one JSON object (README.md)\n"
    "\n"
    "example:\n"
    "  netdiffus import --format videotrain ../shared/datasets/videotrain/original -o vt.ndd\n",
    run, longs};
