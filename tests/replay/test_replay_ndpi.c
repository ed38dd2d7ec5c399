/*
 * test_replay_ndpi.c — sane payloads on real port mixes: every capture of
 * ../shared/datasets/ndpi-apps is captured on its own (its own class, so its own port
 * mix: DNS and mDNS over TCP, DHCP, DHCPv6, NTP, TLS...), replayed to pcap with a seed of
 * its own, and tshark reads the 30 replays (concatenated: one tshark start) without a
 * malformed packet, any protocol. Also: DNS over TCP and TLS records are there and
 * decoded, and no unicast packet has a TTL below 2.
 *
 * A replay draws a flow's server port from its class's port mix, so rare ports need
 * many flows: telegram.pcap and synscan.pcap, whose mixes hold RIPng (UDP 521), NetBIOS
 * datagrams (UDP 138) and WINS replication (TCP 42), are replayed once more with more
 * flows (400 and 3000), and their frames are checked to be there.
 * Skips (77) without the shared data or tshark. About 30 s on a quiet machine.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replay_test.h"

static char *run_out(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    CHECK(p);
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    CHECK_EQ(pclose(p), 0);
    return out;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(void)
{
    char folder[4200];
    snprintf(folder, sizeof folder, "%s/datasets/ndpi-apps/pcap", ND_SHARED_DIR);
    struct stat st;
    if (stat(folder, &st)) SKIP("no %s (ND_SHARED_DIR)", folder);
    if (system("command -v tshark >/dev/null 2>&1 && command -v mergecap >/dev/null 2>&1"))
        SKIP("tshark or mergecap is not installed (scripts/setup installs them)");
    char dir[64], cmd[9000];
    snprintf(dir, sizeof dir, "ndpi-replay-%d", (int)getpid());
    CHECK(!mkdir(dir, 0755));

    struct dirent **ent;
    int n = scandir(folder, &ent, NULL, by_name), files = 0;
    CHECK(n > 0);
    for (int i = 0; i < n; i++) {
        const char *name = ent[i]->d_name;
        if (name[0] != '.') {
            snprintf(cmd, sizeof cmd,
                     "%s capture --source 'pcap:%s/%s' -o %s/%d.ndd 2>%s/err && "
                     "%s replay --series %s/%d.ndd --to pcap:%s/%d.pcap --speed max "
                     "--seed %d 2>%s/err",
                     ND_BINARY, folder, name, dir, files, dir, ND_BINARY, dir, files, dir,
                     files, files + 1, dir);
            if (system(cmd)) {
                snprintf(cmd, sizeof cmd, "cat %s/err >&2", dir);
                CHECK_EQ(system(cmd), 0);
                CHECK_FAIL_("%s: capture or replay failed", name);
            }
            files++;
        }
        free(ent[i]);
    }
    free(ent);
    CHECK_EQ(files, 30);
    static const struct {
        const char *name;
        int flows;
    } rare[] = {{"telegram", 400}, {"synscan", 3000}};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s capture --source 'pcap:%s/%s.pcap' -o %s/%s.ndd 2>%s/err && "
                 "%s replay --series %s/%s.ndd --to pcap:%s/%s.pcap --speed max --flows %d "
                 "2>%s/err",
                 ND_BINARY, folder, rare[i].name, dir, rare[i].name, dir, ND_BINARY, dir,
                 rare[i].name, dir, rare[i].name, rare[i].flows, dir);
        if (system(cmd)) {
            snprintf(cmd, sizeof cmd, "cat %s/err >&2", dir);
            CHECK_EQ(system(cmd), 0);
            CHECK_FAIL_("%s: capture or replay failed", rare[i].name);
        }
    }
    snprintf(cmd, sizeof cmd, "mergecap -a -F pcap -w %s/all.pcap %s/*.pcap", dir, dir);
    CHECK_EQ(system(cmd), 0);

    /* nothing malformed */
    snprintf(cmd, sizeof cmd,
             "tshark -n -r %s/all.pcap -Y '_ws.malformed' -T fields "
             "-e frame.number -e frame.protocols -e tcp.port -e udp.port 2>/dev/null",
             dir);
    const char *bad = run_out(cmd);
    if (*bad) CHECK_FAIL_("tshark finds malformed packets:\n%.3000s", bad);
    snprintf(cmd, sizeof cmd,
             "tshark -n -r %s/all.pcap -Y 'ripng || nbdgm || winsrepl' 2>/dev/null | wc -l; "
             "tshark -n -r %s/all.pcap 2>/dev/null | wc -l; "
             "tshark -n -r %s/all.pcap -Y 'dns && tcp' 2>/dev/null | wc -l; "
             "tshark -n -r %s/all.pcap -Y 'tls.record.content_type == 23' 2>/dev/null | wc -l; "
             "tshark -n -r %s/all.pcap -Y 'dhcp || dhcpv6 || ntp' 2>/dev/null | wc -l; "
             "tshark -n -r %s/all.pcap -Y '(ip.ttl < 2 && !(ip.dst >= 224.0.0.0)) || "
             "(ipv6.hlim < 2 && !(ipv6.dst >= ff00::))' 2>/dev/null | wc -l",
             dir, dir, dir, dir, dir, dir);
    long rare_n, total, dns_tcp, tls, other, low_ttl;
    CHECK_EQ(sscanf(run_out(cmd), "%ld %ld %ld %ld %ld %ld", &rare_n, &total, &dns_tcp, &tls,
                    &other, &low_ttl),
             6);
    CHECK(total > 50000);
    CHECK(dns_tcp > 100 && tls > 1000 && other > 10 && rare_n > 10);
    CHECK_EQ(low_ttl, 0);
    printf("replay ndpi-apps: %ld packets of 32 replays, none malformed; %ld DNS over TCP, "
           "%ld TLS records, %ld DHCP/DHCPv6/NTP, %ld RIPng/NBDS/WINS decoded\n",
           total, dns_tcp, tls, other, rare_n);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
    return 0;
}
