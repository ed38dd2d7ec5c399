/*
 * netns.h — a network namespace with one veth pair in it, for the tests that send real
 * frames (capture, replay and live on veth): netns_setup() makes both, named after the
 * pid so that tests running in parallel never meet, and brings them up with IPv6 off (no
 * router solicitations or MLD reports on the pair); the namespace, and the pair with it,
 * is deleted at exit, also when a check fails or on SIGSEGV, SIGABRT or SIGTERM.
 * Nothing is routed out of the namespace: traffic stays on the pair.
 * Skips (77) without root, without `ip` or when the kernel refuses a namespace or a veth.
 * One namespace per test program.
 */
#ifndef ND_TEST_NETNS_H
#define ND_TEST_NETNS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

typedef struct test_netns {
    char name[32];     /* the namespace: "nd<tag><pid>" */
    char a[16], b[16]; /* the veth ends in it: name + "a", name + "b" (IFNAMSIZ 16) */
} test_netns;

static char netns_ip_[PATH_MAX]; /* the ip binary, found once so that teardown needs no PATH */
static char netns_made_[32];     /* the namespace to delete; "" when none */
static pid_t netns_owner_;       /* who made it: a forked child that exits leaves it alone */
static struct sigaction netns_old_[3];
static const int netns_signals_[3] = {SIGSEGV, SIGABRT, SIGTERM};

/* Runs `ip args...` (NULL-terminated) and returns its exit code, -1 when it could not run.
 * quiet sends its stdout and stderr to /dev/null. Only async-signal-safe calls after
 * the arguments are gathered: the teardown runs from a signal handler too. */
static inline int netns_ip_run_(int quiet, ...)
{
    const char *argv[16] = {"ip"};
    int n = 1;
    va_list ap;
    va_start(ap, quiet);
    while (n < 15 && (argv[n] = va_arg(ap, const char *))) n++;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = quiet ? open("/dev/null", O_WRONLY) : -1;
        if (null >= 0) dup2(null, 1), dup2(null, 2);
        execv(netns_ip_, (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Deletes the namespace netns_setup made, which takes the veth pair (and any interface a
 * test made in it) along; a no-op when there is none. Runs at exit on its own. */
static inline void netns_teardown(void)
{
    if (!netns_made_[0] || getpid() != netns_owner_) return;
    netns_ip_run_(1, "netns", "delete", netns_made_, (char *)NULL);
    netns_made_[0] = 0;
}

/* Deletes the namespace, then hands the signal to whoever had it before (ASan's report on
 * SIGSEGV, say): a real fault faults again on return, a sent signal is raised anew. */
static inline void netns_on_signal_(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    netns_teardown();
    for (int i = 0; i < 3; i++)
        if (netns_signals_[i] == sig) sigaction(sig, &netns_old_[i], NULL);
    if (sig != SIGSEGV || si->si_code <= 0) raise(sig);
}

/* Makes namespace "nd<tag><pid>" (tag at most 5 characters: the veth names must fit in
 * IFNAMSIZ) with a veth pair in it, both ends and lo up, and returns their names. Skips
 * the test (exit 77) when it cannot; fails it when the made links will not come up. */
static inline test_netns netns_setup(const char *tag)
{
    test_netns n;
    CHECK(strlen(tag) <= 5);
    if (geteuid() != 0) SKIP("needs root (network namespace and veth)");
    const char *path = getenv("PATH");
    netns_ip_[0] = 0;
    for (const char *p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin"; *p && !netns_ip_[0];) {
        size_t len = strcspn(p, ":");
        snprintf(netns_ip_, sizeof netns_ip_, "%.*s/ip", (int)len, p);
        if (access(netns_ip_, X_OK)) netns_ip_[0] = 0;
        p += len + (p[len] == ':');
    }
    if (!netns_ip_[0]) SKIP("no ip command (iproute2)");
    snprintf(n.name, sizeof n.name, "nd%s%d", tag, (int)getpid());
    CHECK(strlen(n.name) <= 14); /* room for the "a" and "b" of the veth ends */
    snprintf(n.a, sizeof n.a, "%.14sa", n.name);
    snprintf(n.b, sizeof n.b, "%.14sb", n.name);
    if (netns_ip_run_(1, "netns", "add", n.name, (char *)NULL))
        SKIP("cannot create a network namespace (ip netns add %s)", n.name);
    snprintf(netns_made_, sizeof netns_made_, "%s", n.name);
    netns_owner_ = getpid();
    atexit(netns_teardown);
    struct sigaction sa = {.sa_sigaction = netns_on_signal_, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) sigaction(netns_signals_[i], &sa, &netns_old_[i]);
    if (netns_ip_run_(1, "-n", n.name, "link", "add", n.a, "type", "veth", "peer", "name", n.b,
                      (char *)NULL))
        SKIP("cannot create a veth pair (no veth support?)");
    /* best effort: without it the pair only carries some IPv6 chatter besides the test's */
    netns_ip_run_(1, "netns", "exec", n.name, "sysctl", "-qw",
                  "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                  (char *)NULL);
    CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "set", n.a, "up", (char *)NULL), 0);
    CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "set", n.b, "up", (char *)NULL), 0);
    CHECK_EQ(netns_ip_run_(0, "-n", n.name, "link", "set", "lo", "up", (char *)NULL), 0);
    return n;
}

/* Moves the calling process (its network stack only) into the namespace: from here on it
 * sees the veth pair and lo, nothing else. Threads started before keep the old one. */
static inline void netns_enter(const test_netns *n)
{
    char path[64];
    snprintf(path, sizeof path, "/var/run/netns/%s", n->name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) CHECK_FAIL_("%s: %s", path, strerror(errno));
    CHECK_EQ(setns(fd, CLONE_NEWNET), 0);
    close(fd);
}

#endif
