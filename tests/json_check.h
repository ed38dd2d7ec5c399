/*
 * json_check.h — checks of the JSON the program writes, by python3 (which every test
 * machine has, docs/ARCHITECTURE.md): the file parses with `python3 -m json.tool`, and a
 * Python expression over it (d: the parsed value) holds. Include after check.h.
 */
#ifndef ND_TEST_JSON_CHECK_H
#define ND_TEST_JSON_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "base/tmpdir.h"

/* 1 when path parses as one JSON value (python3 -m json.tool) and expr is true of it, d;
 * with lines, when every line of path is one JSON value and expr is true of d, the list
 * of them. 0 otherwise, with python's complaint on stderr. */
static inline int json_holds(const char *path, int lines, const char *expr)
{
    char script[512], cmd[2048];
    snprintf(script, sizeof script, "%s", tmp_path("json_check.py"));
    FILE *f = fopen(script, "w");
    if (!f) return 0;
    fprintf(
        f,
        "import json, sys\n"
        "text = open(sys.argv[1]).read()\n"
        "d = [json.loads(l) for l in text.splitlines()] if %d else json.loads(text)\n"
        "ok = (%s)\n"
        "if not ok: print('does not hold in', sys.argv[1], ':', text[:3000], file=sys.stderr)\n"
        "sys.exit(0 if ok else 1)\n",
        lines, expr);
    fclose(f);
    if (lines) snprintf(cmd, sizeof cmd, "python3 %s %s", script, path);
    else
        snprintf(cmd, sizeof cmd, "python3 -m json.tool %s >/dev/null && python3 %s %s", path,
                 script, path);
    return system(cmd) == 0;
}

#endif
