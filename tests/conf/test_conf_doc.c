/*
 * test_conf_doc.c — docs/CONFIG.md and conf/examples/default.yaml are what the key table
 * generates (so the documents always match the code), and the reference names every
 * key. On a difference it shows the first differing line: run scripts/gen-config-doc.
 */
#include "conf_test.h"

static void check_current(const char *rel, void (*gen)(FILE *))
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", ND_SOURCE_DIR, rel);
    char *want = conf_test_capture(gen), *got = conf_test_read(path);
    if (!got) CHECK_FAIL_("%s is missing: run scripts/gen-config-doc", path);
    if (strcmp(got, want)) {
        /* the first line that differs, both versions */
        const char *g = got, *w = want;
        int line = 1;
        while (*g && *g == *w) {
            if (*g == '\n') line++;
            g++, w++;
        }
        while (g > got && g[-1] != '\n') g--, w--;
        CHECK_FAIL_("%s is out of date at line %d: run scripts/gen-config-doc\n"
                    "file:      %.*s\ngenerated: %.*s",
                    rel, line, (int)strcspn(g, "\n"), g, (int)strcspn(w, "\n"), w);
    }
    free(want);
    free(got);
}

int main(void)
{
    check_current("docs/CONFIG.md", nd_config_reference);
    check_current("conf/examples/default.yaml", conf_default_yaml);

    /* every key has its row in the reference and its line in default.yaml */
    char *md = conf_test_capture(nd_config_reference),
         *yaml = conf_test_capture(conf_default_yaml);
    for (size_t i = 0; i < conf_keys_count(); i++) {
        char row[128], line[128];
        snprintf(row, sizeof row, "| `%s` |", conf_keys[i].name);
        CHECK_CONTAINS(md, row);
        const char *leaf = conf_key_leaf(&conf_keys[i]);
        snprintf(line, sizeof line, "\n%s%s: ", leaf == conf_keys[i].name ? "" : "  ", leaf);
        CHECK_CONTAINS(yaml, line);
    }
    for (size_t i = 0; conf_rules_text[i]; i++) CHECK_CONTAINS(md, conf_rules_text[i]);
    free(md);
    free(yaml);
    printf("ok: %zu keys documented\n", conf_keys_count());
    return 0;
}
