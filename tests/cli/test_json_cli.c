/*
 * test_json_cli.c — --json of import, train, sample, eval, inspect and replay as a script
 * runs them, on a tiny imported dataset: stdout is one JSON object that python3 -m
 * json.tool parses, with the keys and values of the summary (eval: every table);
 * train --log writes a JSON line per --log-every steps, at each validation and at the
 * end; --json refuses an output on stdout.
 */
#include "../base/tmpdir.h"
#include "check.h"
#include "json_check.h"
#include "nd.h"
#include "run_cli.h"
#include "tiny_cli.h"

static char P[12][512];
static const char *path(int i, const char *name)
{
    snprintf(P[i], sizeof P[i], "%s", tmp_path(name));
    return P[i];
}

/* stdout of the last run, into a file of its own for python. */
static const char *stdout_file(void)
{
    const char *f = path(11, "stdout.json");
    write_bytes(f, out_text, strlen(out_text));
    return f;
}

#define CHECK_JSON(expr) CHECK(json_holds(stdout_file(), 0, expr))

int main(void)
{
    const char *csv = path(0, "real.csv"), *ndd = path(1, "real.ndd"),
               *conf = path(2, "tiny.yaml"), *model = path(3, "m.ndm"),
               *scsv = path(4, "synth.csv"), *log = path(5, "train.jsonl"),
               *pcap = path(6, "out.pcap");
    tiny_cli_csv(csv);
    tiny_cli_conf(conf, 20, ", calibrate: 8");

    EXPECT(0, "import", "--format", "csv", csv, "-o", ndd, "--json");
    CHECK_JSON("d['output'].endswith('real.ndd') and d['windows'] == 12 and d['L'] == 8 and "
               "d['classes'] == {'video': 6, 'web': 6} and d['channels'] == ['bytes_down', "
               "'bytes_up']");
    EXPECT(2, "import", "--format", "csv", csv, "-o", "-", "--json");
    CHECK_CONTAINS(err_text, "--json");

    EXPECT(0, "train", "-c", conf, ndd, "-o", model, "--json", "--log", log, "--log-every",
           "5");
    CHECK_JSON("d['step'] == 20 and d['steps_done'] == 20 and d['val_loss'] is not None and "
               "d['loss'] > 0 and d['interrupted'] is False and d['calibrated'] is True");
    /* lines at steps 5 and 15, validations at 10 and at the end */
    CHECK(json_holds(log, 1,
                     "[l['step'] for l in d] == [5, 10, 15, 20] and "
                     "[l['val_loss'] is None for l in d] == [True, False, True, False] and "
                     "[l['final'] for l in d] == [False, False, False, True] and "
                     "all(l['lr'] > 0 and l['images_per_s'] > 0 and l['t'] >= 0 and "
                     "l['steps'] == 20 for l in d)"));

    EXPECT(0, "sample", model, "--count", "3", "--csv", scsv, "--json");
    CHECK_JSON("d['windows'] == 6 and d['classes'] == {'video': 3, 'web': 3} and "
               "d['outputs']['csv'].endswith('synth.csv') and d['outputs']['ndd'] is None and "
               "d['sampler'] == 'ddim' and d['steps'] == 5 and "
               "0 < d['network_seconds'] <= d['seconds']");

    EXPECT(0, "eval", "--real", csv, "--synth", scsv, "--train", csv, "--cnn-steps", "0",
           "--json");
    CHECK_CONTAINS(err_text, "MEAN"); /* the table, for people, on stderr */
    CHECK_JSON("set(d) >= {'distances', 'downstream', 'memorisation', 'independent', "
               "'summary'} and set(d['distances']['classes']) == {'video', 'web'} and "
               "set(d['distances']['mean']) == {'synth', 'naive', 'real'} and "
               "d['downstream']['classifiers']['logistic']['tstr'] is not None and "
               "'cnn' not in d['downstream']['classifiers'] and "
               "'flag' in d['memorisation']['synth'] and "
               "set(d['independent']) >= {'two_sample', 'tstr', 'profiles', 'runs', "
               "'coupling', 'memorisation_ratio', 'sources'} and "
               "len(d['independent']['profiles']['bytes_down']['mean_log1p']['synth']"
               "['values']) == 8 and 'disc_rf_all' in d['summary']['synth']");

    EXPECT(0, "inspect", ndd, model, "--json");
    CHECK_JSON("[x['kind'] for x in d['files']] == ['dataset', 'model'] and "
               "d['files'][0]['windows'] == 12 and d['files'][1]['model']['steps'] == 20 and "
               "'traffic' in d['files'][0] and len(d['files'][0]['sections']) > 2");
    EXPECT(1, "inspect", ndd, path(7, "missing.ndd"), "--json");
    CHECK_JSON(
        "d['files'][0]['kind'] == 'dataset' and 'missing.ndd' in d['files'][1]['error']");
    EXPECT(0, "inspect", "--config", conf, "--json");
    CHECK_JSON("'window: 8' in d['config']");

    char to[600];
    snprintf(to, sizeof to, "pcap:%s", pcap);
    EXPECT(0, "replay", "--series", csv, "--to", to, "--bin", "100ms", "--json");
    CHECK_JSON("d['flows'] == 12 and d['packets'] > 0 and d['bytes'] > 0 and d['drops'] == 0 "
               "and d['ended'] is None and d['interrupted'] is False and "
               "'timing_error_ns' not in d");
    EXPECT(2, "replay", "--series", csv, "--to", "pcap:-", "--json");
    CHECK_CONTAINS(err_text, "--json");
    EXPECT(2, "eval", "--real", csv, "--synth", csv, "--png", "-", "--json");
    CHECK_CONTAINS(err_text, "--json");
    return 0;
}
