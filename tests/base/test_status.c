/*
 * test_status.c — the status line: drawn with \r and an ANSI erase on a terminal, not at
 * all on a dumb one (TERM=dumb, or no TERM) nor off a terminal; and the time left it shows,
 * rounded once so that it never reads "0 min 60 s".
 */
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "nd.h"

static void check_time_left(double seconds, const char *want)
{
    char buf[32];
    nd_format_time_left(buf, sizeof buf, seconds);
    CHECK_STR_EQ(buf, want);
}

static void test_time_left(void)
{
    check_time_left(0, "0 s");
    check_time_left(59.4, "59 s");
    check_time_left(59.6, "1 min 00 s"); /* rounding the parts apart gave "0 min 60 s" */
    check_time_left(119.5, "2 min 00 s");
    check_time_left(61, "1 min 01 s");
    check_time_left(3599.4, "59 min 59 s");
    check_time_left(3599.6, "1 h 00 min");
    check_time_left(7625, "2 h 07 min");
    check_time_left(-3, "0 s");
    check_time_left(0.0 / 0.0, "0 s");
}

/* What a status line puts on a terminal (a pty as standard error) with TERM=term (NULL:
 * unset); malloc'd. */
static char *status_on_terminal(const char *term)
{
    int master;
    fflush(NULL);
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    CHECK(pid >= 0);
    if (pid == 0) {
        if (term) setenv("TERM", term, 1);
        else unsetenv("TERM");
        nd_status("step %d", 1);
        nd_status("step %d", 2);
        nd_status_end();
        fprintf(stderr, "end\n");
        _exit(0);
    }
    char *out = calloc(1, 4096);
    size_t n = 0;
    for (ssize_t got; n < 4095 && (got = read(master, out + n, 4095 - n)) > 0;)
        n += (size_t)got; /* EIO once the child has gone */
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    close(master);
    CHECK_CONTAINS(out, "end");
    return out;
}

static void test_terminals(void)
{
    char *out = status_on_terminal("xterm");
    CHECK_CONTAINS(out, "\r\033[Kstep 2"); /* the check below can fail */
    free(out);
    const char *dumb[] = {"dumb", "", NULL};
    for (int i = 0; i < 3; i++) {
        out = status_on_terminal(dumb[i]);
        CHECK(!strchr(out, '\033'));
        CHECK(!strstr(out, "step"));
        free(out);
    }
}

int main(void)
{
    test_time_left();
    test_terminals();
    printf("status: ok\n");
    return 0;
}
