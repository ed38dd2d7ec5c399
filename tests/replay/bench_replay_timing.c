/*
 * bench_replay_timing.c — timing accuracy of a replay, measured at the receiver: for
 * every frame of the schedule (a pcap whose timestamps are the deadlines) found in the
 * capture of the other end, error = (rx − rx₀) − (deadline − deadline₀), the first
 * frame of the schedule that was received giving both origins. Frames are matched by
 * their bytes (every replayed frame is unique: sequence numbers advance), so capture
 * drops are counted rather than shifting the match. Used by scripts/bench-replay.
 *
 * usage: bench_replay_timing SCHEDULE.pcap CAPTURE.pcap LABEL
 * prints: LABEL sent received lost p50_us p99_us p999_us max_us (absolute errors)
 */
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES 96

typedef struct ent {
    uint64_t hash;
    int64_t t;  /* deadline, ns */
    int64_t rx; /* receive time, ns; -1 before it is seen */
} ent;

static uint64_t hash_frame(const u_char *d, uint32_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ len;
    for (uint32_t i = 0; i < len && i < KEY_BYTES; i++) h = (h ^ d[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

static pcap_t *open_pcap(const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) {
        fprintf(stderr, "bench_replay_timing: %s: %s\n", path, err);
        exit(1);
    }
    return p;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_replay_timing SCHEDULE.pcap CAPTURE.pcap LABEL\n");
        return 2;
    }
    size_t cap = 1 << 22, n = 0;
    ent *tab = calloc(cap, sizeof *tab); /* open addressing, power-of-two size */
    int64_t *order = NULL;
    size_t n_order = 0, cap_order = 0;
    if (!tab) return 1;
    pcap_t *p = open_pcap(argv[1]);
    struct pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        if (2 * (n + 1) > cap) {
            fprintf(stderr, "bench_replay_timing: schedule too long\n");
            return 1;
        }
        uint64_t k = hash_frame(d, h->caplen);
        size_t i = k & (cap - 1);
        while (tab[i].hash && tab[i].hash != k) i = (i + 1) & (cap - 1);
        if (tab[i].hash == k) continue; /* duplicate frame: keep the first */
        tab[i].hash = k;
        tab[i].t = (int64_t)h->ts.tv_sec * 1000000000 + h->ts.tv_usec;
        tab[i].rx = -1;
        n++;
        if (n_order == cap_order) {
            cap_order = cap_order ? 2 * cap_order : 1 << 16;
            order = realloc(order, cap_order * sizeof *order);
            if (!order) return 1;
        }
        order[n_order++] = (int64_t)i;
    }
    pcap_close(p);

    p = open_pcap(argv[2]);
    size_t got = 0;
    while (pcap_next_ex(p, &h, &d) == 1) {
        uint64_t k = hash_frame(d, h->caplen);
        size_t i = k & (cap - 1);
        while (tab[i].hash && tab[i].hash != k) i = (i + 1) & (cap - 1);
        if (tab[i].hash != k || tab[i].rx >= 0) continue; /* not ours, or a duplicate */
        tab[i].rx = (int64_t)h->ts.tv_sec * 1000000000 + h->ts.tv_usec;
        got++;
    }
    pcap_close(p);

    int64_t *err = malloc((got ? got : 1) * sizeof *err), t0 = 0, r0 = 0;
    size_t m = 0;
    int have0 = 0;
    for (size_t j = 0; j < n_order; j++) {
        const ent *e = &tab[order[j]];
        if (e->rx < 0) continue;
        if (!have0) t0 = e->t, r0 = e->rx, have0 = 1;
        int64_t x = (e->rx - r0) - (e->t - t0);
        err[m++] = x < 0 ? -x : x;
    }
    qsort(err, m, sizeof *err, cmp_i64);
#define Q(q) (m ? (double)err[(size_t)((q) * (double)(m - 1))] / 1e3 : 0.0)
    printf("%-28s %9zu %9zu %8zu %9.1f %9.1f %9.1f %10.1f\n", argv[3], n, got, n - got, Q(0.50),
           Q(0.99), Q(0.999), m ? (double)err[m - 1] / 1e3 : 0.0);
    free(err);
    free(order);
    free(tab);
    return 0;
}
