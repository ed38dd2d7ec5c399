/*
 * gen_config_doc.c — prints a document generated from the config key table:
 * `nd_gen_config_doc markdown` → docs/CONFIG.md, `nd_gen_config_doc default-yaml` →
 * conf/examples/default.yaml (both through scripts/gen-config-doc), `nd_gen_config_doc
 * keys` → every key `--set` takes, one a line (the build makes the shell completion of
 * them).
 */
#include <string.h>

#include "conf_impl.h"

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "markdown")) nd_config_reference(stdout);
    else if (argc == 2 && !strcmp(argv[1], "default-yaml")) conf_default_yaml(stdout);
    else if (argc == 2 && !strcmp(argv[1], "keys"))
        for (size_t i = 0; i < conf_keys_count(); i++) puts(conf_keys[i].name);
    else {
        fprintf(stderr, "usage: nd_gen_config_doc markdown|default-yaml|keys\n");
        return 2;
    }
    return fflush(stdout) ? 1 : 0;
}
