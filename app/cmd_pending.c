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

PENDING(train, "train", 5, "train a diffusion model on a dataset",
        "usage: netdiffus train -c CONF IN.ndd -o MODEL.ndm [--resume]\n"
        "\n"
        "Learns per-class GASF images of the dataset's windows with a class-conditional\n"
        "diffusion model. Checkpoints atomically; Ctrl-C saves and exits.\n"
        "\n"
        "Not available yet in this build (issue #5).\n");

PENDING(sample, "sample", 5, "generate new windows from a model",
        "usage: netdiffus sample MODEL.ndm --count N [--class NAME] [--csv OUT.csv]\n"
        "                        [--ndd OUT.ndd] [--png OUT.png] [--seed S]\n"
        "\n"
        "Not available yet in this build (issue #5).\n");

PENDING(live, "live", 7, "capture, learn online and replay in one process",
        "usage: netdiffus live -c CONF [--resume]\n"
        "\n"
        "Not available yet in this build (issue #7).\n");

PENDING(eval, "eval", 5, "measure the fidelity of synthetic against real windows",
        "usage: netdiffus eval --real REAL.csv --synth SYNTH.csv [--train TRAIN.csv]\n"
        "\n"
        "Not available yet in this build (issue #5).\n");

PENDING(render, "render", 5, "draw a dataset's windows as GASF images and series (PNG)",
        "usage: netdiffus render IN.ndd --png OUT.png\n"
        "\n"
        "Not available yet in this build (issue #5).\n");
