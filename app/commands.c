/*
 * commands.c — the subcommand table: main.c dispatches through it, and the shell
 * completion generator (gen_completion.c) lists each command's options from it.
 */
#include "cli.h"

const nd_command *const cli_commands[] = {
    &cmd_capture, &cmd_import, &cmd_export, &cmd_train,  &cmd_sample,
    &cmd_replay,  &cmd_live,   &cmd_eval,   &cmd_render, &cmd_inspect,
};
const size_t cli_n_commands = sizeof cli_commands / sizeof cli_commands[0];
