/*
 * test_replay_tshark.c — an independent reader judges the generated pcap: tshark reads
 * every packet, finds nothing malformed, no bad IPv4/TCP/UDP checksum (validation on)
 * and no expert warning, and every TCP stream runs from SYN to the FIN of both sides.
 * Skips (77) when tshark is not installed (scripts/setup installs it).
 */
#include <unistd.h>

#include "replay_test.h"

#define TSHARK                                                                                 \
    "tshark -n -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE "                         \
    "-o ip.check_checksum:TRUE "

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const cls2[] = {"web", "mixed"};

/* Runs cmd, returns its stdout (malloc'd) and exit status. */
static char *run_cmd(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    CHECK(p);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    CHECK(out);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 4096) {
            cap *= 2;
            out = realloc(out, cap);
            CHECK(out);
        }
    }
    out[len] = 0;
    *status = pclose(p);
    return out;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

#define MAX_STREAMS 4096

int main(void)
{
    if (system("command -v tshark >/dev/null 2>&1") != 0)
        SKIP("tshark is not installed (scripts/setup installs it)");
    nd_log_set_level(ND_LOG_WARN);

    const uint64_t N = 60;
    nd_dataset *ds = tds_new(2, ch2, 12, 50000000ull, 2, cls2, N);
    tds_web_stats(&ds->stats[0], 0.0, 0.2);
    tds_web_stats(&ds->stats[1], 0.5, 0.5);
    trng r = {21};
    for (uint64_t w = 0; w < N; w++) {
        ds->labels[w] = (uint16_t)(w % 2);
        for (uint32_t c = 0; c < 2; c++)
            for (uint32_t b = 0; b < ds->L; b++)
                *tds_at(ds, w, c, b) = trng_below(&r, 3) ? (float)trng_below(&r, 40000) : 0.0f;
    }
    replay_opts o;
    replay_opts_defaults(&o);
    o.status = 0;
    o.seed = 99;
    nd_error e;
    replay_sink *s = replay_sink_open("pcap:replay_tshark.pcap", &e);
    CHECK(s);
    replay_stats st;
    int rc = replay_run(ds, &o, s, &st, &e);
    if (rc) CHECK_FAIL_("replay_run: %s", e.msg);
    CHECK_EQ(replay_sink_close(s, &e), 0);
    tds_free(ds);

    /* 1. every packet read, no complaint on stderr, exit 0 */
    int status;
    char *out =
        run_cmd(TSHARK "-r replay_tshark.pcap 2>&1 | grep -v 'Running as user'", &status);
    CHECK_EQ(count_lines(out), st.packets);
    CHECK(!strstr(out, "cut short") && !strstr(out, "appears to be damaged"));
    free(out);

    /* 2. nothing malformed, no bad checksum, no expert warning or error */
    out =
        run_cmd(TSHARK "-r replay_tshark.pcap -Y '_ws.malformed || _ws.expert.severity >= "
                       "\"Warning\" || ip.checksum.status == \"Bad\" || tcp.checksum.status == "
                       "\"Bad\" || udp.checksum.status == \"Bad\"' 2>/dev/null",
                &status);
    if (*out) CHECK_FAIL_("tshark flags these packets:\n%.2000s", out);
    CHECK_EQ(status, 0);
    free(out);
    /* the checksum fields were really validated (status Good, not Unverified) */
    out = run_cmd(TSHARK "-r replay_tshark.pcap -Y 'tcp.checksum.status == \"Good\" && "
                         "ip.checksum.status == \"Good\"' 2>/dev/null | wc -l",
                  &status);
    CHECK(atoi(out) > 0);
    free(out);

    /* 3. every TCP stream: SYN first, SYN-ACK, both FINs, a last ACK */
    out = run_cmd("tshark -n -r replay_tshark.pcap -Y tcp -T fields -e tcp.stream -e tcp.flags "
                  "2>/dev/null",
                  &status);
    static struct {
        int n, fins;
        unsigned first, second, last;
    } sm[MAX_STREAMS];
    int streams = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        int id;
        unsigned flags;
        CHECK_EQ(sscanf(line, "%d %x", &id, &flags), 2);
        CHECK(id >= 0 && id < MAX_STREAMS);
        if (id >= streams) streams = id + 1;
        if (sm[id].n == 0) sm[id].first = flags;
        if (sm[id].n == 1) sm[id].second = flags;
        sm[id].last = flags;
        sm[id].fins += (flags & 1) != 0;
        sm[id].n++;
    }
    free(out);
    CHECK(streams > 10);
    for (int i = 0; i < streams; i++) {
        if (sm[i].first != 0x002 || sm[i].second != 0x012 || sm[i].fins != 2 ||
            sm[i].last != 0x010)
            CHECK_FAIL_(
                "tcp.stream %d: first flags 0x%03x, second 0x%03x, %d FINs, last 0x%03x", i,
                sm[i].first, sm[i].second, sm[i].fins, sm[i].last);
    }
    printf("replay tshark: %d TCP streams from SYN to FIN, %llu packets clean\n", streams,
           (unsigned long long)st.packets);
    return 0;
}
