/*
 * cli.h — the netdiffus program's subcommands (private to app/) and what they share
 * (cli.c).
 *
 * Each subcommand is one function run(argc, argv) with argv[0] = its name, returning an
 * exit code: 0 ok, 1 runtime failure, 2 usage or config error. main.c strips the global
 * options (-v, -q) and answers --help from the table's help text before calling it.
 */
#ifndef ND_CLI_H
#define ND_CLI_H

#include <getopt.h>
#include <signal.h>

#include "conf.h"
#include "nd.h"

enum { ND_EXIT_OK = 0, ND_EXIT_FAIL = 1, ND_EXIT_USAGE = 2 };

typedef struct nd_command {
    const char *name;
    const char *summary; /* one line for `netdiffus --help` */
    const char *help;    /* full text for `netdiffus NAME --help` */
    int (*run)(int argc, char **argv);
    const struct option *longs; /* its long options (run's table), for the generated
                                   shell completion */
} nd_command;

/* `netdiffus --version` (version.c): version, commit, build date and features. */
void cli_version(FILE *out);

/* Prints "netdiffus CMD: message" and a pointer to --help; returns ND_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Maps an error code to an exit code: config/usage errors → 2, anything else → 1. */
int cli_exit_code(int code);

/* Set to 1 by SIGINT or SIGTERM once cli_catch_stop() has run: long loops poll it, finish
 * what they hold and save it. */
extern volatile sig_atomic_t cli_stop;
/* Installs that handler, without SA_RESTART, so that a sleep or a blocking read returns
 * at once and the loop around it sees the flag. */
void cli_catch_stop(void);

/* ---- the command line ------------------------------------------------------------ */

/* A subcommand's arguments, read with getopt_long: `--opt=value` or `--opt value`, short
 * options (clusters too, `-ovalue`), unambiguous prefixes of long options, operands
 * anywhere and in order, and everything after `--` an operand. Long options without a
 * short letter have codes from CLI_OPT_SET up (past any letter); a command numbers its
 * own from CLI_OPT_OWN. */
enum { CLI_OPT_SET = 256, CLI_OPT_JSON, CLI_OPT_STATS, CLI_OPT_METRICS_PORT, CLI_OPT_OWN };
enum { CLI_OPERAND = 1, CLI_END = -1, CLI_BAD = -2 };

typedef struct cli_args {
    const char *cmd; /* for messages */
    int argc;
    char **argv;
    const struct option *longs;
    char shorts[64];           /* getopt's option string: "-:" and the command's letters */
    int tail;                  /* once getopt is done: the next operand after `--` */
    const char *val;           /* the value of the option, or the operand, just returned */
    struct cli_config *config; /* not NULL: -c and --set are taken there, not returned */
} cli_args;

/* Starts reading argv (argv[0] the command's name) with the short letters of shorts
 * ("c:o:": getopt's syntax) and the long options longs (ending in a zero entry). */
void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv, const char *shorts,
                   const struct option *longs);
/* The next option's code (its letter or long code) with its value in a->val, CLI_OPERAND
 * with the operand in a->val, CLI_END, or CLI_BAD once a usage error is printed: an
 * unknown or ambiguous option, a missing value, a value to an option that takes none,
 * more than CLI_MAX_SETS --set. With a->config, -c and --set are stored there. */
int cli_args_next(cli_args *a);
/* Keeps the operand a->val in *slot, the command's one WHAT ("input"): 0, or
 * ND_EXIT_USAGE once "one WHAT only" is said for a second one. */
int cli_args_operand(const cli_args *a, const char **slot, const char *what);
/* "--name" of an option's code (of a static buffer), for messages. */
const char *cli_args_name(const cli_args *a, int code);

/* Strict numbers: the whole text, decimal, in range of the type, no leading space.
 * 0, or -1 without touching *v. cli_parse_u64 takes no sign; cli_parse_double no NaN. */
int cli_parse_ll(const char *s, long long *v);
int cli_parse_u64(const char *s, uint64_t *v);
int cli_parse_double(const char *s, double *v);

/* ---- the config ------------------------------------------------------------------ */

/* The options of the commands that read a config: -c/--config FILE and --set KEY=VAL
 * (repeatable, applied in order after the file). */
#define CLI_MAX_SETS 32
#define CLI_CONFIG_OPTIONS                                                                     \
    {"config", required_argument, NULL, 'c'}, { "set", required_argument, NULL, CLI_OPT_SET }

typedef struct cli_config cli_config;
struct cli_config {
    const char *path; /* NULL: the defaults */
    const char *sets[CLI_MAX_SETS];
    unsigned n_sets;
};

/* cfg from cc: the file (or the defaults), then the --set keys in order. Prints what
 * went wrong (file:line:col, the key) and returns the exit code: 0, 1 (unreadable file)
 * or 2 (bad config). cfg is always safe to free (nd_config_free). */
int cli_config_open(nd_config *cfg, const cli_config *cc);

/* ---- machine-readable output ----------------------------------------------------- */

/* --json: the command's summary as one JSON object on stdout (docs: README.md). */
#define CLI_JSON_OPTION                                                                        \
    {                                                                                          \
        "json", no_argument, NULL, CLI_OPT_JSON                                                \
    }
/* --json keeps stdout for its object: ND_EXIT_USAGE (said) when output, a data output
 * of the command, is stdout ("-"); else 0. */
int cli_json_check(const char *cmd, int json, const char *output);
/* Prints o on stdout (indented) and frees it: ND_EXIT_OK, or ND_EXIT_FAIL once said. */
int cli_json_print(nd_json *o);

/* The figures of a long run (capture, replay) while it goes: --stats FILE appends one
 * JSON object per interval and a last one with "final": true; --metrics-port PORT serves
 * them as Prometheus text on 127.0.0.1. */
#define CLI_WATCH_OPTIONS                                                                      \
    {"stats", required_argument, NULL, CLI_OPT_STATS},                                         \
    {                                                                                          \
        "metrics-port", required_argument, NULL, CLI_OPT_METRICS_PORT                          \
    }
typedef struct cli_watch {
    const char *stats_path; /* --stats, NULL: none */
    uint32_t port;          /* --metrics-port, 0: none */
    FILE *stats;
    nd_metrics *metrics;
    uint64_t t0; /* nd_now_ns() at open: "t" of the lines */
} cli_watch;
/* Takes the option code of a->val when it is one of CLI_WATCH_OPTIONS: 1 taken, 0 not
 * one of them, -1 a bad value (said). */
int cli_watch_take(cli_watch *w, const cli_args *a, int code);
/* Opens the stats file and starts the endpoint: 0, or an exit code once said. */
int cli_watch_open(cli_watch *w, const char *cmd);
int cli_watch_on(const cli_watch *w); /* 1 when there is a stats file or an endpoint */
/* Writes one stats line: j with "t" (seconds since the open) and "final" added; frees j.
 * A line that cannot be written is said once and the run goes on. */
void cli_watch_line(cli_watch *w, nd_json *j, int final);
void cli_watch_publish(cli_watch *w, const nd_prom *p);
void cli_watch_close(cli_watch *w);

/* ---- sources (capture, live) ----------------------------------------------------- */

/* --source SRC, repeatable, any number: sources on the command line replace the
 * config's. The specs are borrowed (argv, cfg); the list is freed by cli_sources_free. */
typedef struct cli_sources {
    const char **spec;
    unsigned n, cap;
} cli_sources;

/* Adds the option's value a->val: 0, or ND_EXIT_USAGE once said (pcap:- twice, out of
 * memory). */
int cli_sources_add(cli_sources *s, const cli_args *a);
/* Without a --source, the config's capture.sources (borrowed from cfg). Returns how many
 * sources there are (0 also when out of memory, said). */
unsigned cli_sources_resolve(cli_sources *s, const nd_config *cfg);
void cli_sources_free(cli_sources *s);

/* The subcommands in the order of `netdiffus --help` (commands.c). */
extern const nd_command *const cli_commands[];
extern const size_t cli_n_commands;

extern const nd_command cmd_capture, cmd_import, cmd_export, cmd_train, cmd_sample, cmd_replay,
    cmd_live, cmd_eval, cmd_render, cmd_inspect;

#endif
