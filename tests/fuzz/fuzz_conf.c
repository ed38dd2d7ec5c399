/*
 * fuzz_conf.c — fuzz target for the YAML config (conf/): any bytes are parsed as a
 * config file; a refused one must say why, naming the file. What is accepted must pass
 * the cross-key check, and its effective config written as YAML must read back and write
 * the same text again (nd_config_to_yaml's promise).
 * libFuzzer target with ND_LIBFUZZER=ON; otherwise replay_main.c runs it over seeds.
 */
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nd_config cfg, back;
    nd_error e = {0};
    if (nd_config_parse(&cfg, (const char *)data, size, "fuzz.yaml", &e)) {
        if (!e.code || strncmp(e.msg, "fuzz.yaml", 9)) abort();
        nd_config_free(&cfg);
        return 0;
    }
    if (nd_config_check(&cfg, &e)) abort(); /* parse runs the same rules */
    char *yaml = nd_config_to_yaml(&cfg);
    if (!yaml) abort();
    if (nd_config_parse(&back, yaml, strlen(yaml), "effective.yaml", &e)) abort();
    char *again = nd_config_to_yaml(&back);
    if (!again || strcmp(yaml, again)) abort();
    free(again);
    free(yaml);
    nd_config_free(&back);
    nd_config_free(&cfg);
    return 0;
}
