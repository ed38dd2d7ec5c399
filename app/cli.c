/*
 * cli.c — what every subcommand shares (cli.h): usage errors and exit codes, the stop
 * flag, reading a command line with getopt_long, strict numbers, and opening the config
 * of -c/--config and --set, and the machine-readable outputs (--json, --stats,
 * --metrics-port).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "netdiffus %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'netdiffus %s --help'.\n", cmd);
    va_end(ap);
    return ND_EXIT_USAGE;
}

int cli_exit_code(int code)
{
    if (code == 0) return ND_EXIT_OK;
    return code == ND_ECONFIG || code == ND_EUSAGE ? ND_EXIT_USAGE : ND_EXIT_FAIL;
}

volatile sig_atomic_t cli_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_catch_stop(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the command line ------------------------------------------------------------ */

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv, const char *shorts,
                   const struct option *longs)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->longs = longs;
    /* "-": operands come back in order as code 1, whatever POSIXLY_CORRECT says;
     * ":": a missing value is told apart from an unknown option, and getopt prints
     * nothing itself (opterr 0 too) */
    snprintf(a->shorts, sizeof a->shorts, "-:%s", shorts);
    ND_ASSERT(strlen(shorts) + 2 < sizeof a->shorts);
    opterr = 0;
    optind = 0; /* glibc: start afresh */
}

const char *cli_args_name(const cli_args *a, int code)
{
    static char name[64];
    for (const struct option *o = a->longs; o->name; o++)
        if (o->val == code && !o->flag) {
            snprintf(name, sizeof name, "--%s", o->name);
            return name;
        }
    snprintf(name, sizeof name, "-%c", code);
    return name;
}

/* The usage error for getopt's '?' on argument arg ("--name[=value]" or a short option
 * cluster, whose bad letter is optopt): a value given to an option that takes none, an
 * abbreviation of several long options, or an option the command does not have. */
static int bad_option(const cli_args *a, const char *arg)
{
    if (strncmp(arg, "--", 2)) return cli_usage_error(a->cmd, "unknown option '-%c'", optopt);
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    char list[256] = "";
    size_t used = 0;
    int matches = 0;
    for (const struct option *o = a->longs; o->name; o++) {
        if (strncmp(o->name, name, len)) continue;
        if (strlen(o->name) == len && o->has_arg == no_argument)
            return cli_usage_error(a->cmd, "--%s takes no value", o->name);
        matches++;
        int n = snprintf(list + used, sizeof list - used, "%s--%s", used ? ", " : "", o->name);
        if (n > 0 && used + (size_t)n < sizeof list) used += (size_t)n;
    }
    if (matches > 1)
        return cli_usage_error(a->cmd, "ambiguous option '--%.*s' (%s?)", (int)len, name, list);
    return cli_usage_error(a->cmd, "unknown option '--%.*s'", (int)len, name);
}

/* getopt_long's next answer as cli_args_next returns it, -c and --set included. */
static int args_next(cli_args *a)
{
    a->val = NULL;
    if (!a->tail) {
        int longi = -1;
        int c = getopt_long(a->argc, a->argv, a->shorts, a->longs, &longi);
        if (c > 0 && c != '?' && c != ':') { /* an option, or an operand: 1, CLI_OPERAND */
            a->val = optarg;
            return c;
        }
        if (c == ':') {
            /* optopt: the option's code; "--conf" is named --config */
            if (!strncmp(a->argv[optind - 1], "--", 2))
                return cli_usage_error(a->cmd, "%s needs a value", cli_args_name(a, optopt)),
                       CLI_BAD;
            return cli_usage_error(a->cmd, "-%c needs a value", optopt), CLI_BAD;
        }
        if (c == '?') return bad_option(a, a->argv[optind - 1]), CLI_BAD;
        /* getopt's end: after "--" (or the last option) only operands remain */
        a->tail = optind;
    }
    if (a->tail >= a->argc) return CLI_END;
    a->val = a->argv[a->tail++];
    return CLI_OPERAND;
}

/* Keeps -c or --set in a->config: 1 taken, 0 not one of them, CLI_BAD when too many. */
static int config_take(cli_args *a, int code)
{
    cli_config *cc = a->config;
    if (!cc || (code != 'c' && code != CLI_OPT_SET)) return 0;
    if (code == 'c') {
        cc->path = a->val;
    } else if (cc->n_sets == CLI_MAX_SETS) {
        return cli_usage_error(a->cmd, "more than %d --set", CLI_MAX_SETS), CLI_BAD;
    } else {
        cc->sets[cc->n_sets++] = a->val;
    }
    return 1;
}

int cli_args_next(cli_args *a)
{
    int c;
    while ((c = args_next(a)) > 0 && c != CLI_OPERAND) {
        int took = config_take(a, c);
        if (took == CLI_BAD) return CLI_BAD;
        if (!took) break;
    }
    return c;
}

int cli_args_operand(const cli_args *a, const char **slot, const char *what)
{
    if (*slot)
        return cli_usage_error(a->cmd, "one %s only ('%s' and '%s')", what, *slot, a->val);
    *slot = a->val;
    return 0;
}

/* ---- numbers --------------------------------------------------------------------- */

int cli_parse_ll(const char *s, long long *v)
{
    char *end;
    if (!(*s >= '0' && *s <= '9') && !((*s == '-' || *s == '+') && s[1] >= '0' && s[1] <= '9'))
        return -1;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *v = x;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (!(*s >= '0' && *s <= '9')) return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *v = x;
    return 0;
}

int cli_parse_double(const char *s, double *v)
{
    char *end;
    if (!*s || *s == ' ' || (*s >= '\t' && *s <= '\r')) return -1;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || end == s || isnan(x)) return -1;
    *v = x;
    return 0;
}

/* ---- the config ------------------------------------------------------------------ */

int cli_config_open(nd_config *cfg, const cli_config *cc)
{
    nd_error e = {0};
    /* nd_config_set runs the cross-key rules after every key: no check needed after */
    int rc = nd_config_load_overrides(cfg, cc->path, cc->sets, cc->n_sets, &e);
    if (rc) nd_err("%s", e.msg[0] ? e.msg : nd_strerror(rc));
    return cli_exit_code(rc);
}

/* ---- sources --------------------------------------------------------------------- */

/* Appends spec: 0, or -ENOMEM. */
static int sources_push(cli_sources *s, const char *spec)
{
    if (s->n == s->cap) {
        unsigned cap = s->cap ? 2 * s->cap : 8;
        const char **v = realloc(s->spec, cap * sizeof *v);
        if (!v) return -ENOMEM;
        s->spec = v;
        s->cap = cap;
    }
    s->spec[s->n++] = spec;
    return 0;
}

int cli_sources_add(cli_sources *s, const cli_args *a)
{
    /* said before any packet is read, not when the second one's turn comes */
    for (unsigned k = 0; k < s->n && !strcmp(a->val, "pcap:-"); k++)
        if (!strcmp(s->spec[k], "pcap:-"))
            return cli_usage_error(a->cmd, "pcap:- twice: standard input is one source");
    return sources_push(s, a->val) ? cli_usage_error(a->cmd, "out of memory") : 0;
}

unsigned cli_sources_resolve(cli_sources *s, const nd_config *cfg)
{
    if (!s->n)
        for (uint32_t k = 0; k < cfg->capture.n_sources; k++)
            if (sources_push(s, cfg->capture.sources[k])) {
                nd_err("out of memory");
                return 0;
            }
    return s->n;
}

/* ---- machine-readable output -------------------------------------------------------- */

int cli_json_check(const char *cmd, int json, const char *output)
{
    if (json && output && !strcmp(output, "-"))
        return cli_usage_error(cmd, "--json writes its object to stdout: give the output a "
                                    "file name, not '-'");
    return 0;
}

int cli_json_print(nd_json *o)
{
    nd_error e = {0};
    int rc = nd_json_write(o, stdout, 1, "--json: stdout", &e);
    nd_json_free(o);
    if (rc) nd_err("%s", e.msg);
    return rc ? ND_EXIT_FAIL : ND_EXIT_OK;
}

int cli_watch_take(cli_watch *w, const cli_args *a, int code)
{
    if (code == CLI_OPT_STATS) {
        w->stats_path = a->val;
        return 1;
    }
    if (code != CLI_OPT_METRICS_PORT) return 0;
    uint64_t port;
    if (cli_parse_u64(a->val, &port) || port < 1 || port > 65535) {
        cli_usage_error(a->cmd, "--metrics-port %s: expected a port, 1 to 65535", a->val);
        return -1;
    }
    w->port = (uint32_t)port;
    return 1;
}

int cli_watch_open(cli_watch *w, const char *cmd)
{
    nd_error e = {0};
    w->t0 = nd_now_ns();
    if (w->stats_path && !(w->stats = fopen(w->stats_path, "a"))) {
        nd_err("%s: --stats %s: %s", cmd, w->stats_path, strerror(errno));
        return ND_EXIT_FAIL;
    }
    if (w->port &&
        !(w->metrics = nd_metrics_start(NULL, w->port, NULL, NULL, "--metrics-port", &e))) {
        nd_err("%s: %s", cmd, e.msg);
        cli_watch_close(w);
        return ND_EXIT_FAIL;
    }
    if (w->metrics) nd_info("%s: metrics on http://127.0.0.1:%u/metrics", cmd, w->port);
    return 0;
}

int cli_watch_on(const cli_watch *w) { return w->stats || w->metrics; }

void cli_watch_line(cli_watch *w, nd_json *j, int final)
{
    if (w->stats) {
        nd_json_num(j, "t", (double)(nd_now_ns() - w->t0) * 1e-9);
        nd_json_bool(j, "final", final);
        nd_error e = {0};
        if (nd_json_write(j, w->stats, 0, w->stats_path, &e)) {
            nd_warn("--stats: %s; no more lines are written", e.msg);
            fclose(w->stats);
            w->stats = NULL;
        }
    }
    nd_json_free(j);
}

void cli_watch_publish(cli_watch *w, const nd_prom *p)
{
    if (w->metrics) nd_metrics_publish(w->metrics, p);
}

void cli_watch_close(cli_watch *w)
{
    if (w->stats) fclose(w->stats);
    nd_metrics_stop(w->metrics);
    w->stats = NULL;
    w->metrics = NULL;
}

void cli_sources_free(cli_sources *s)
{
    free(s->spec);
    *s = (cli_sources){0};
}
