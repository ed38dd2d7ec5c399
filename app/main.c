/*
 * main.c — `netdiffus <subcommand>`: global options, --help, and the call into the
 * subcommand of the table (commands.c).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "model.h"
#include "nn.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: netdiffus [-v|-q] <command> [options]\n"
            "\n"
            "netdiffus captures network traffic, learns what each class of traffic looks like\n"
            "over time with a diffusion model, and generates new traffic of the same kind.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < cli_n_commands; i++)
        fprintf(out, "  %-8s %s\n", cli_commands[i]->name, cli_commands[i]->summary);
    fprintf(out,
            "\n"
            "global options (anywhere on the line):\n"
            "  -v, --verbose   more detail (debug messages)\n"
            "  -q, --quiet     only warnings and errors, no status line\n"
            "  -h, --help      this text; `netdiffus COMMAND --help` explains one command\n"
            "      --version   print the version, commit and build features\n"
            "\n"
            "environment:\n"
            "  ND_CPU=generic|avx512|avx512bf16   force a lower level of CPU kernels than the\n"
            "                  best this CPU has (--version shows both); same results up to\n"
            "                  float32 rounding\n"
            "\n"
            "`mpirun -np N netdiffus train|sample ...` spreads training and sampling over N\n"
            "processes, on one host or several, with the results of one (docs/SCALE.md).\n"
            "\n"
            "A command's options take their value as --opt VALUE or --opt=VALUE (-o VALUE or\n"
            "-oVALUE), long options may be shortened to any unambiguous prefix, and -- ends\n"
            "the options: what follows is a file name even if it starts with -.\n"
            "\n"
            "A file name of - is standard input for a file read, standard output for a file\n"
            "written (pcap:- too), one of each per run: `replay M.ndm --flows 9 --to pcap:- |\n"
            "tcpdump -r -`. Progress, warnings and errors always go to standard error.\n"
            "\n"
            "exit codes: 0 success, 1 runtime failure, 2 usage or configuration error\n"
            "\n"
            "documentation: `man netdiffus-COMMAND`; README.md and docs/ in the source tree,\n"
            "installed in share/doc/netdiffus\n");
}

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

int main(int argc, char **argv)
{
    /* A peer that goes away (a metrics client, a pipe into `tcpdump -r -`) makes writes
     * fail with EPIPE, which every writer handles; the signal would end the process and
     * lose what a long run holds. */
    signal(SIGPIPE, SIG_IGN);
    /* One process is one run: no output of it may replace a file it read. */
    nd_input_guard();
    /* Strip global options wherever they are (up to "--"), so that both
     * `netdiffus -v capture ...` and `netdiffus capture ... -v` work. */
    int level = ND_LOG_INFO, n = 1, dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && !strcmp(a, "--")) dashdash = 1;
        if (!dashdash && (!strcmp(a, "-v") || !strcmp(a, "--verbose"))) level = ND_LOG_DEBUG;
        else if (!dashdash && (!strcmp(a, "-q") || !strcmp(a, "--quiet"))) level = ND_LOG_WARN;
        else argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;
    nd_log_set_level(level);

    if (argc < 2) {
        usage(stderr);
        return ND_EXIT_USAGE;
    }
    if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
        if (argc > 2) { /* `netdiffus help CMD` */
            for (size_t i = 0; i < cli_n_commands; i++)
                if (!strcmp(argv[2], cli_commands[i]->name)) {
                    fputs(cli_commands[i]->help, stdout);
                    return ND_EXIT_OK;
                }
        }
        usage(stdout);
        return ND_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        cli_version(stdout);
        return ND_EXIT_OK;
    }
    nd_error e = {0}; /* a typo in ND_CPU must not silently run another kernel level */
    if (nd_cpu_select(&e) < 0) {
        nd_err("%s", e.msg);
        return ND_EXIT_USAGE;
    }
    for (size_t i = 0; i < cli_n_commands; i++) {
        const nd_command *c = cli_commands[i];
        if (strcmp(argv[1], c->name)) continue;
        for (int j = 2; j < argc && strcmp(argv[j], "--"); j++)
            if (is_help(argv[j])) {
                fputs(c->help, stdout);
                return ND_EXIT_OK;
            }
        /* under mpirun: one rank of a run (model.h); rank 0 alone says how it goes */
        int ranks = nd_mpi_start(&argc, &argv, &e);
        if (ranks < 0) {
            nd_err("%s", e.msg);
            return ND_EXIT_USAGE;
        }
        if (nd_mpi_rank() > 0 && level == ND_LOG_INFO) nd_log_set_level(ND_LOG_WARN);
        if (ranks > 1 && strcmp(c->name, "train") && strcmp(c->name, "sample")) {
            nd_err("%s: runs in one process; of the commands only train and sample spread "
                   "over the %d ranks of mpirun",
                   c->name, ranks);
            nd_mpi_end(0);
            return ND_EXIT_USAGE;
        }
        int rc = c->run(argc - 1, argv + 1);
        nd_eval_draw_release(); /* the program uses cairo nowhere else */
        if (rc && ranks > 1)
            nd_err("rank %d of %d failed (exit %d, the error above): ending the run",
                   nd_mpi_rank(), ranks, rc);
        nd_mpi_end(rc);
        return rc;
    }
    fprintf(stderr, "netdiffus: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return ND_EXIT_USAGE;
}
