/*
 * live_test.h — shared by the live tests: a tiny model config (runs in seconds, also
 * under ASan), a two-class traffic generator (pcap), helpers to run the netdiffus binary
 * and to read its --stats JSON lines.
 */
#ifndef ND_TEST_LIVE_H
#define ND_TEST_LIVE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/tmpdir.h"
#include "../capture/pktgen.h"
#include "http_fetch.h"

/* var (a char array) = the scratch path of name. */
#define LIVE_PATH(var, name) snprintf(var, sizeof var, "%s", tmp_path(name))

/* A whole text file (malloc'd, NUL-terminated; for failure messages). */
static inline char *live_text(const char *path)
{
    size_t n;
    return (char *)read_bytes(path, &n);
}

/* The tiny model and live settings every live test uses: 100 ms bins, 16 per window.
 * Sources, checkpoint path and extra lines come from the caller. */
static inline void live_write_config(const char *path, const char *sources, const char *ckpt,
                                     const char *extra)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fprintf(f,
            "capture:\n"
            "  sources: [%s]\n"
            "  bin: 100ms\n"
            "  window: 16\n"
            "  min_active_bins: 2\n"
            "  idle_timeout: 2s\n"
            "  flow_capacity: 4096\n"
            "  default_class: other\n"
            "classes:\n"
            "  - {name: bulk, filter: tcp port 443}\n"
            "  - {name: chat, filter: udp port 53}\n"
            "model:\n"
            "  base_channels: 8\n"
            "  channel_mult: [1, 2]\n"
            "  res_blocks: 1\n"
            "  attn_min_res: 0\n"
            "  groups: 4\n"
            "  emb_dim: 32\n"
            "  max_classes: 4\n"
            "  threads: 1\n"
            "train:\n"
            "  batch: 8\n"
            "  lr: 3e-3\n"
            "  warmup_steps: 10\n"
            "  ema_decay: 0.9\n"
            "  class_dropout: 0\n"
            "sample:\n"
            "  steps: 10\n"
            "  guidance: 1\n"
            "  batch: 4\n"
            "live:\n"
            "  ring_size: 64\n"
            "  reservoir: 64\n"
            "  recent: 32\n"
            "  warmup: 4\n"
            "  trainer_threads: 1\n"
            "  checkpoint: %s\n"
            "  checkpoint_every: 50\n"
            "  checkpoint_interval: 2s\n"
            "  status_interval: 200ms\n"
            "%s",
            sources, ckpt, extra ? extra : "");
    fclose(f);
}

/* Two classes of flows with different shapes, deterministic for a seed:
 *   bulk: TCP port 443, bursts of 1400-byte packets down every other 100 ms bin
 *   chat: UDP port 53, one 120-byte packet up every 100 ms and a small answer
 * n_flows of each, each flow lasting `bins` bins of 100 ms, flows starting every
 * `stagger_ms`. Ethernet, µs timestamps from t0_s. Returns the file's duration in ns. */
static inline uint64_t live_write_two_class_pcap(const char *file, int n_flows, int bins,
                                                 int stagger_ms, uint64_t seed)
{
    pcap_out o;
    pcap_out_open(&o, file, DLT_EN10MB, 0);
    static uint8_t buf[16384]; /* pkt_build clears 16 KiB */
    const uint64_t t0 = 1700000000ull * ND_NS_PER_SEC, bin = 100000000ull;
    /* packets in time order: walk 10 ms ticks over all flows */
    uint64_t end = (uint64_t)(n_flows * stagger_ms) * 1000000ull + (uint64_t)bins * bin;
    for (uint64_t t = 0; t < end; t += 10000000ull) {
        for (int f = 0; f < 2 * n_flows; f++) {
            uint64_t start = (uint64_t)(f / 2 * stagger_ms) * 1000000ull;
            if (t < start || t >= start + (uint64_t)bins * bin) continue;
            uint64_t rel = t - start;
            int tick = (int)(rel / 10000000ull) % 10, b = (int)(rel / bin);
            char cli[32], srv[32];
            snprintf(cli, sizeof cli, "10.77.%d.%d", f & 255, 1 + (f >> 8));
            snprintf(srv, sizeof srv, "10.78.0.%d", 1 + f % 2);
            pkt_spec s = {0};
            uint64_t jitter = mix_rand(&seed) % 1000u * 1000u; /* < 1 ms, µs steps */
            if (f % 2 == 0) {                                  /* bulk */
                s.proto = 6;
                if (b % 2 == 0 && tick < 6) { /* down burst */
                    s.src = srv, s.dst = cli, s.sport = 443, s.dport = (uint16_t)(40000 + f);
                    s.tcp_flags = PARSE_TCP_ACK;
                    s.ip_total = 1400 - (uint32_t)(mix_rand(&seed) % 200);
                } else if (tick == 0 || (rel == 0)) { /* ack up */
                    s.src = cli, s.dst = srv, s.sport = (uint16_t)(40000 + f), s.dport = 443;
                    s.tcp_flags = rel == 0 ? PARSE_TCP_SYN : PARSE_TCP_ACK;
                    s.ip_total = 52;
                } else {
                    continue;
                }
                if (rel == 0) { /* the SYN first, from the client */
                    s.src = cli, s.dst = srv, s.sport = (uint16_t)(40000 + f), s.dport = 443;
                    s.tcp_flags = PARSE_TCP_SYN;
                    s.ip_total = 52;
                }
            } else { /* chat */
                s.proto = 17;
                if (tick == 0) {
                    s.src = cli, s.dst = srv, s.sport = (uint16_t)(50000 + f), s.dport = 53;
                    s.ip_total = 120;
                } else if (tick == 3) {
                    s.src = srv, s.dst = cli, s.sport = 53, s.dport = (uint16_t)(50000 + f);
                    s.ip_total = 80 + (uint32_t)(mix_rand(&seed) % 40);
                } else {
                    continue;
                }
            }
            size_t len = pkt_build(buf, &s);
            pcap_out_write(&o, t0 + t + jitter, buf, len, 0);
        }
    }
    pcap_out_close(&o);
    return end;
}

/* The files of a live run on the generated two-class pcap (12 flows of each class, 48
 * bins, 200 ms apart) in the scratch folder: the capture, the config reading it, the
 * checkpoint the config names, and the source spec. */
typedef struct live_files {
    char pcap[512], conf[512], ckpt[512], src[600];
} live_files;

static inline void live_files_make(live_files *f)
{
    LIVE_PATH(f->pcap, "two.pcap");
    LIVE_PATH(f->conf, "live.yaml");
    LIVE_PATH(f->ckpt, "live.ndm");
    snprintf(f->src, sizeof f->src, "pcap:%s", f->pcap);
    live_write_two_class_pcap(f->pcap, 12, 48, 200, 1);
    live_write_config(f->conf, f->src, f->ckpt, NULL);
}

/* How long a SIGINT may take to end live: one second; under ASan + UBSan three, for
 * the sanitizers' own work at exit (the leak check scans the whole heap). */
#ifdef __SANITIZE_ADDRESS__
#define LIVE_SIGINT_LIMIT 3.0
#else
#define LIVE_SIGINT_LIMIT 1.0
#endif

/* Starts `sh -c "exec cmd"` in its own process group (so that signals sent to the pid
 * reach the command itself); returns the pid. */
static inline pid_t live_spawn(const char *cmd)
{
    char line[4200];
    snprintf(line, sizeof line, "exec %s", cmd);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    setpgid(p, p);
    return p;
}

static inline double live_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits up to `seconds` for pid; returns its exit code, or -1 on timeout (then the whole
 * group is killed). */
static inline int live_wait(pid_t pid, double seconds)
{
    double t0 = live_now();
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (live_now() - t0 > seconds) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(10000);
    }
}

/* Ctrl-C to a running live: it must exit 0 within LIVE_SIGINT_LIMIT seconds. */
static inline void live_sigint(pid_t pid, const char *who)
{
    double t0 = live_now();
    kill(pid, SIGINT);
    int rc = live_wait(pid, 10);
    double took = live_now() - t0;
    fprintf(stderr, "%s: SIGINT -> exit %d in %.3f s\n", who, rc, took);
    CHECK_EQ(rc, 0);
    CHECK(took < LIVE_SIGINT_LIMIT);
}

/* The last line of a file (static buffer), "" when none. */
static inline const char *live_last_line(const char *path)
{
    static char line[65536], last[65536];
    last[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return last;
    while (fgets(line, sizeof line, f)) memcpy(last, line, sizeof line);
    fclose(f);
    return last;
}

/* Number after "key": in a JSON line; NAN when absent. */
static inline double live_json(const char *line, const char *key)
{
    char k[96];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

/* First line of a stats file with step >= min_step (static buffer), "" when none. */
static inline const char *live_line_at_step(const char *path, double min_step)
{
    static char line[65536];
    FILE *f = fopen(path, "r");
    if (!f) return "";
    while (fgets(line, sizeof line, f))
        if (live_json(line, "step") >= min_step) {
            fclose(f);
            return line;
        }
    fclose(f);
    line[0] = 0;
    return line;
}

#endif
