/*
 * cmd_pending.c — subcommands whose issue has not landed yet. Each has its real help text
 * (the interface it will have) and says clearly that it is not available; exit code 1.
 * When a subcommand lands it moves to its own cmd_NAME.c.
 */
#include "cli.h"

#define PENDING(var, cmdname, issue, sum, helptext)                                       \
    static int run_##var(int argc, char **argv)                                          \
    {                                                                                    \
        nd_err("'%s' is not available yet in this build (tracked as issue #%d)",          \
               cmdname, issue);                                                          \
        return ND_EXIT_FAIL;                                                             \
    }                                                                                    \
    const nd_command cmd_##var = {cmdname, sum " [not yet available]", helptext, run_##var}

PENDING(live, "live", 7, "capture, learn online and replay in one process",
        "usage: netdiffus live -c CONF [--resume]\n"
        "\n"
        "Not available yet in this build (issue #7).\n");
