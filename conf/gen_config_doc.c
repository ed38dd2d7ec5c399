/*
 * gen_config_doc.c — prints a document generated from the config key table:
 * `nd_gen_config_doc markdown` → docs/CONFIG.md, `nd_gen_config_doc default-yaml` →
 * conf/examples/default.yaml. Run through scripts/gen-config-doc.
 */
#include <string.h>

#include "conf_impl.h"

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "markdown")) nd_config_reference(stdout);
    else if (argc == 2 && !strcmp(argv[1], "default-yaml")) conf_default_yaml(stdout);
    else {
        fprintf(stderr, "usage: nd_gen_config_doc markdown|default-yaml\n");
        return 2;
    }
    return fflush(stdout) ? 1 : 0;
}
