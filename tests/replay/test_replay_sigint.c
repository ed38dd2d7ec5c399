/*
 * test_replay_sigint.c — a real SIGINT in the middle of an endless replay into a pcap
 * file: the run stops with ND_EINTR, the sink closes cleanly, and libpcap reads every
 * packet the statistics count, up to a clean end of file (no record cut in half).
 */
#include <pcap/pcap.h>
#include <signal.h>
#include <time.h>

#include "replay_test.h"

static volatile sig_atomic_t stop;
static void on_sigint(int sig) { stop = 1; }

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const cls1[] = {"web"};

int main(void)
{
    nd_log_set_level(ND_LOG_WARN);
    nd_dataset *ds = tds_new(2, ch2, 16, 100000000ull, 1, cls1, 8);
    tds_web_stats(&ds->stats[0], 0.3, 0.3);
    for (uint64_t i = 0; i < 8 * 2 * 16; i++) ds->values[i] = 300000.0f;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGINT, &sa, NULL), 0);
    /* SIGINT to this process after 150 ms */
    timer_t tm;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGINT;
    CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &tm), 0);
    struct itimerspec its = {{0, 0}, {0, 150000000}};

    replay_opts o;
    replay_opts_defaults(&o);
    o.status = 0;
    o.loop = 0; /* forever: only the signal ends it */
    o.stop = &stop;
    nd_error e;
    replay_sink *s = replay_sink_open("pcap:replay_sigint.pcap", &e);
    CHECK(s);
    replay_stats st;
    CHECK_EQ(timer_settime(tm, 0, &its, NULL), 0);
    int rc = replay_run(ds, &o, s, &st, &e);
    CHECK_EQ(rc, ND_EINTR);
    CHECK(stop);
    rc = replay_sink_close(s, &e);
    if (rc) CHECK_FAIL_("close: %s", e.msg);
    CHECK(st.packets > 1000);

    uint64_t n = tpcap_read("replay_sigint.pcap", NULL);
    CHECK_U64_EQ(n, st.packets);
    printf("replay sigint: stopped cleanly after %llu packets\n", (unsigned long long)n);
    tds_free(ds);
    return 0;
}
