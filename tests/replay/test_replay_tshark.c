/*
 * test_replay_tshark.c — an independent reader judges the generated pcap: tshark reads
 * every packet, finds nothing malformed, no bad IPv4/TCP/UDP checksum (validation on)
 * and no expert warning, and every TCP stream runs from SYN to the FIN of both sides.
 * A class of UDP flows to DNS (53) and DHCP (67), whose captured port mix also holds
 * clients' ephemeral ports (what a capture records when a flow's first packet came from
 * the server), replays as DNS and DHCP that tshark decodes without a malformed frame
 * (zero payloads made 86 of them), and no server of any flow takes an ephemeral port.
 * A class of TCP and UDP flows to WINS replication (42), RIPng (521) and NetBIOS
 * datagrams (138) replays as those, decoded without a malformed frame either (zero
 * payloads are malformed to all three; RIPng's also when not 4 + 20·k bytes).
 * Skips (77) when tshark is not installed (scripts/setup installs it).
 */
#include <unistd.h>

#include "replay_test.h"

#define TSHARK                                                                                 \
    "tshark -n -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE "                         \
    "-o ip.check_checksum:TRUE "

static const char *const ch2[] = {"bytes_down", "bytes_up"};
static const char *const cls3[] = {"web", "mixed", "infra"};

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

/* Frames of the replay that tshark's display filter keeps. */
static int tshark_count(const char *filter)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tshark -n -r replay_tshark.pcap -Y '%s' 2>/dev/null | wc -l",
             filter);
    int status;
    char *out = run_cmd(cmd, &status);
    int n = atoi(out);
    free(out);
    return n;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

int main(void)
{
    if (system("command -v tshark >/dev/null 2>&1") != 0)
        SKIP("tshark is not installed (scripts/setup installs it)");
    nd_log_set_level(ND_LOG_WARN);

    const uint64_t N = 90;
    nd_dataset *ds = tds_new(2, ch2, 12, 50000000ull, 3, cls3, N);
    tds_web_stats(&ds->stats[0], 0.0, 0.2);
    nd_class_stats *mixed = &ds->stats[1];
    tds_web_stats(mixed, 0.5, 0.5);
    static const uint16_t mports[] = {443, 42, 521, 138};
    static const uint64_t mcounts[] = {20, 40, 40, 20};
    for (int i = 0; i < ND_PORT_TOP; i++)
        mixed->port[i] = i < 4 ? mports[i] : 0, mixed->port_count[i] = i < 4 ? mcounts[i] : 0;
    nd_class_stats *infra = &ds->stats[2];
    tds_web_stats(infra, 1.0, 0.3);
    static const uint16_t ports[] = {33338, 53, 38186, 67, 57058};
    static const uint64_t counts[] = {300, 60, 200, 40, 100};
    for (int i = 0; i < ND_PORT_TOP; i++)
        infra->port[i] = i < 5 ? ports[i] : 0, infra->port_count[i] = i < 5 ? counts[i] : 0;
    trng r = {21};
    for (uint64_t w = 0; w < N; w++) {
        ds->labels[w] = (uint16_t)(w % 3);
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
    int streams = tshark_tcp_streams("replay_tshark.pcap");
    CHECK(streams > 10);
    /* 4. DNS and DHCP were decoded (the check above found none malformed), and every
     * server (the replay.server_pool side) has a service port, every client an
     * ephemeral one */
    int dns = tshark_count("dns"), dhcp = tshark_count("dhcp");
    CHECK(dns > 10 && dhcp > 10);
    int wins = tshark_count("winsrepl"), ripng = tshark_count("ripng"),
        nbds = tshark_count("nbdgm");
    CHECK(wins > 10 && ripng > 10 && nbds > 10);
    out = run_cmd("tshark -n -r replay_tshark.pcap -T fields -E separator=, -e ip.src -e "
                  "ipv6.src -e tcp.srcport -e udp.srcport -e tcp.dstport -e udp.dstport "
                  "2>/dev/null",
                  &status);
    size_t lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        char src4[64] = "", src6[64] = "";
        unsigned sp = 0, dp = 0, a, b, c, d;
        /* ip.src,ipv6.src,tcp.srcport,udp.srcport,tcp.dstport,udp.dstport: one of each
         * pair is empty */
        char *f[6] = {0};
        char *q = line;
        for (int i = 0; i < 6; i++) {
            f[i] = q;
            q = strchr(q, ',');
            if (q) *q++ = 0;
            else break;
        }
        CHECK(f[5]);
        snprintf(src4, sizeof src4, "%s", f[0]);
        snprintf(src6, sizeof src6, "%s", f[1]);
        sp = (unsigned)atoi(*f[2] ? f[2] : f[3]);
        dp = (unsigned)atoi(*f[4] ? f[4] : f[5]);
        int from_server = *src4 ? sscanf(src4, "%u.%u.%u.%u", &a, &b, &c, &d) == 4 && b == 19
                                : !strncmp(src6, "2001:db8:0:2:", 13);
        unsigned server = from_server ? sp : dp, client = from_server ? dp : sp;
        if (server >= 32768 || client < 32768 || client > 60999)
            CHECK_FAIL_("packet %zu: server port %u, client port %u (%s%s)", lines + 1, server,
                        client, src4, src6);
    }
    free(out);
    CHECK_EQ(lines, st.packets);
    printf("replay tshark: %d DNS, %d DHCP, %d WINS replication, %d RIPng and %d NBDS "
           "frames well formed, ",
           dns, dhcp, wins, ripng, nbds);
    printf("replay tshark: %d TCP streams from SYN to FIN, %llu packets clean\n", streams,
           (unsigned long long)st.packets);
    return 0;
}
