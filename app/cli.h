/*
 * cli.h — the netdiffus program's subcommands (private to app/).
 *
 * Each subcommand is one function run(argc, argv) with argv[0] = its name, returning an
 * exit code: 0 ok, 1 runtime failure, 2 usage or config error. main.c strips the global
 * options (-v, -q) and answers --help from the table's help text before calling it.
 */
#ifndef ND_CLI_H
#define ND_CLI_H

#include <signal.h>

#include "nd.h"

enum { ND_EXIT_OK = 0, ND_EXIT_FAIL = 1, ND_EXIT_USAGE = 2 };

typedef struct nd_command {
    const char *name;
    const char *summary; /* one line for `netdiffus --help` */
    const char *help;    /* full text for `netdiffus NAME --help` */
    int (*run)(int argc, char **argv);
} nd_command;

/* Prints "netdiffus CMD: message" and a pointer to --help; returns ND_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps an error code to an exit code: config/usage errors → 2, anything else → 1. */
int cli_exit_code(int code);

/* Set to 1 by SIGINT or SIGTERM once cli_catch_stop() has run: long loops poll it, finish
 * what they hold and save it. */
extern volatile sig_atomic_t cli_stop;
/* Installs that handler, without SA_RESTART, so that a sleep or a blocking read returns
 * at once and the loop around it sees the flag. */
void cli_catch_stop(void);

extern const nd_command cmd_capture, cmd_import, cmd_export, cmd_train, cmd_sample,
    cmd_replay, cmd_live, cmd_eval, cmd_render, cmd_inspect;

#endif
