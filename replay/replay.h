/*
 * replay.h — the netdiffus replay engine (libnd_replay): series → timed packets on a sink.
 *
 * The last stage of the pipeline (docs/REPLAY.md): windows of per-flow series (bytes, and
 * optionally packets, per bin and direction) plus the class's packet statistics become
 * protocol-correct Ethernet/IPv4|IPv6/TCP|UDP packets with absolute deadlines, merged
 * over many concurrent flows by a min-heap, and handed to a sink: a nanosecond pcap file,
 * a pcapng file, a libpcap interface or a DPDK port, or two of them, one per side of a
 * device under test. docs/REPLAY.md explains the choices and bounds.
 */
#ifndef ND_REPLAY_H
#define ND_REPLAY_H

#include <signal.h>
#include <stdint.h>

#include "nd.h"

/* One class's share of the flows. */
typedef struct replay_mix_entry {
    const char *name; /* class, as the dataset names it */
    double weight;    /* relative share of the flows (>= 0; need not sum to 1) */
} replay_mix_entry;

typedef struct replay_stats replay_stats; /* what a run did (below) */

/* What a run does. replay_opts_defaults() fills every field; strings are borrowed. */
typedef struct replay_opts {
    double speed;         /* 1 = real time, 2 = twice as fast; 0 = as fast as the sink goes */
    uint64_t duration_ns; /* stop after this much output time; 0 = when the flows are done */
    uint32_t flows;       /* flows per loop; 0 = one per eligible window */
    uint32_t loop;        /* passes over the flows; 0 = until duration or stop */
    uint64_t seed;        /* same seed, same packets (byte for byte into pcap) */
    const char *client_pool;  /* "198.18.0.0/16": one IPv4 and/or one IPv6 prefix, */
    const char *server_pool;  /*   comma-separated */
    const char *client_pool6; /* more prefixes, for IPv6 flows (may be NULL or "") */
    const char *server_pool6;
    uint32_t clients, servers;            /* addresses used in each pool */
    const char *mac_src;                  /* MAC of the client side, "02:00:00:00:00:01" */
    const char *mac_dst;                  /* MAC of the server side */
    const char *only_class;               /* replay only this class (NULL: all, or by mix) */
    uint32_t n_mix;                       /* classes in mix; 0: flows follow the windows */
    replay_mix_entry mix[ND_MAX_CLASSES]; /* (n_mix) share of flows per class */
    /* Bounds (docs/REPLAY.md, "Bounds"): the bytes of a bin (per flow and direction) are
     * cut to what the bin carries at line_bps, and the run ends, as at the end of the
     * flows, before the packet that would pass max_bytes or max_packets. */
    double line_bps;             /* bits per second; 0: the sink's line rate, else 100 Gbit/s */
    uint64_t max_bytes;          /* frame bytes of the whole run; 0: no limit */
    uint64_t max_packets;        /* packets of the whole run; 0: no limit */
    uint64_t spin_ns;            /* busy-wait this long before a deadline (paced sinks) */
    volatile sig_atomic_t *stop; /* set by a signal handler: stop cleanly (may be NULL) */
    int status;                  /* draw an nd_status line while running */
    /* figures while running: report is called from the first queue's thread about every
     * report_ns (0: 1 s) with what it has sent so far (a multi-queue DPDK sink: that
     * queue's share; replay_run's stats have all queues); NULL: never */
    void (*report)(void *arg, const replay_stats *so_far);
    void *report_arg;
    uint64_t report_ns;
    /* Load targets (docs/REPLAY.md, "Load targets"): at most one, in output time, with
     * speed 1 or 0. The run holds it from its first packet on: flows that would have
     * begun before it are started in a lead-in of one window whose packets are not sent
     * (--concurrency: as long as the longest flow, its flows at uniform points of their
     * lives). */
    uint32_t concurrency; /* keep this many flows active (first to last packet); 0: off */
    double flows_per_s;   /* flow starts per second; 0: off */
    double pps;           /* packets per second; 0: off */
    double mbps;          /* frame bits (no FCS) per second / 1e6; 0: off */
    /* The link layer (docs/REPLAY.md, "Two sides"): client i's frames come from the
     * (i mod client_macs)-th MAC counted from mac_src, servers' likewise from mac_dst
     * (0 counts as 1); frames from the client side (client to server) carry 802.1Q tag
     * vlan_client, those from the server side vlan_server (0: untagged, else 1..4094). */
    uint32_t client_macs, server_macs;
    uint32_t vlan_client, vlan_server;
    /* Next hops: frames that leave the client side are addressed to gateway_client, those
     * that leave the server side to gateway_server (a routing DUT's ports); their source
     * stays the sender's pool MAC. NULL or "": the peer's own MAC (a bridging DUT). */
    const char *gateway_client, *gateway_server;
    /* Flows longer than a window (docs/REPLAY.md, "Flows longer than a window"): with
     * flow_runs, the consecutive windows of ds that share a group are one flow (what
     * nd_dm_sample_flows gives), bin b of it in window b / L; else every window is a
     * flow. */
    int flow_runs;
    /* Streamed flows (docs/REPLAY.md, "Streaming from a model"): with take set, ds has
     * no windows, only what they are (channels, bins, classes, statistics); the flows'
     * classes are drawn by mix (required, and flows per pass), and each flow takes a fresh
     * flow of its class when it starts: take copies its windows (nwin, C, L) into *x,
     * grown by realloc when it holds fewer than that many floats (*cap), sets *nwin and
     * returns 0, 1 when none is ready by until_ns (nd_now_ns clock; UINT64_MAX: wait), or
     * a code with e filled. The flows active when the output begins wait for theirs;
     * after that a file sink waits for every flow, and a paced sink waits only until the
     * flow's start: a flow not ready then is skipped (replay_stats.late), and the
     * schedule keeps its time (--concurrency: the slot starts the next flow when one is
     * there). */
    int (*take)(void *arg, uint32_t cls, float **x, size_t *cap, uint32_t *nwin,
                uint64_t until_ns, nd_error *e);
    void *take_arg;
    uint32_t flow_windows; /* the most windows a flow of take has (0: 1): --concurrency
                              starts its flows in a lead-in that long */
} replay_opts;

/* The line rate a bin is cut to when neither the options nor the sink give one. */
#define REPLAY_DEFAULT_LINE_BPS 100e9

/* Sets every field: speed 1, loop 1, seed 1; pools 198.18.0.0/16 (256 clients) and
 * 198.19.0.0/16 (16 servers), 2001:db8:0:1::/64 and 2001:db8:0:2::/64 for IPv6; MACs
 * 02:00:00:00:00:01 and :02; spin_ns 30 us; status = nd_status_enabled(); the rest 0 or
 * NULL (no duration, flow count, class, mix or stop flag). */
void replay_opts_defaults(replay_opts *o);

/* ------------------------------------------------------------------------------------ */
/* Sinks                                                                                */
/* ------------------------------------------------------------------------------------ */

typedef struct replay_sink replay_sink;

/* What the engine knows about each packet (for function sinks, tests and tools). */
typedef struct replay_pkt_info {
    uint64_t flow;   /* flow number in the run (loop * flows + i) */
    uint32_t cls;    /* class index in the dataset */
    uint32_t window; /* index in the dataset of the flow's (first) window */
    uint32_t bin;    /* bin of the flow the packet belongs to (of its window bin / L) */
    uint8_t dir;     /* enum nd_dir */
    uint8_t l4;      /* enum nd_l4 */
    uint8_t ipv6;
    uint8_t tcp_flags;  /* 0 for UDP */
    uint64_t offset_ns; /* series time since the start of the run (before speed) */
    uint64_t start_ns;  /* the flow's start, same clock: bin b is [start + b·bin, +bin) */
    uint16_t vlan;      /* the frame's 802.1Q VLAN id, 0 when untagged */
} replay_pkt_info;

/* Opens "pcap:FILE", "pcapng:FILE", "iface:NAME" or "dpdk:[port=N ]EAL-ARGS". Returns NULL and
 * fills e on failure (unknown scheme, file that cannot be created, interface that does not
 * exist, EAL that does not start or has no port). Only one dpdk: sink per process (one EAL). */
replay_sink *replay_sink_open(const char *spec, nd_error *e);
/* Two-sided replay: client-to-server packets (replay_pkt_info.dir ND_UP) leave on the
 * client sink, server-to-client ones on the server sink, for a device under test between
 * them; one schedule paces both. Both files (pcap:, pcapng:) or both lines (iface:,
 * dpdk:). The same pcapng:FILE on both is one file with an interface per side. dpdk: on
 * both are two ports of one EAL: client "dpdk:[port=N ]EAL-ARGS" starts it (its first
 * port unless port=N), server "dpdk:port=N" (or "dpdk:": the next port) takes another;
 * both ports get a tx queue per lcore. NULL with e filled on failure. */
replay_sink *replay_sink_open_sides(const char *client, const char *server, nd_error *e);
/* A sink that calls fn for every packet, in deadline order (no waiting); frame is valid
 * during the call only. fn returns 0, or a negative code that stops the run. */
typedef int (*replay_sink_fn)(const uint8_t *frame, uint32_t len, uint64_t deadline_ns,
                              const replay_pkt_info *info, void *arg);
replay_sink *replay_sink_func(replay_sink_fn fn, void *arg);
/* Flushes and frees the sink; returns the first error that flushing met (e.g. -ENOSPC
 * with the file name in e). A pcap file replaces the previous file at its path only
 * here, and only when every write succeeded. NULL is a no-op returning 0. */
int replay_sink_close(replay_sink *s, nd_error *e);
/* Frees the sink after a failed run: a pcap file sink drops what it wrote and the
 * previous file at its path stays as it was. NULL is a no-op. */
void replay_sink_discard(replay_sink *s);

/* ------------------------------------------------------------------------------------ */
/* Running                                                                              */
/* ------------------------------------------------------------------------------------ */

/* Timing error (actual send − deadline) percentiles are known to within 1/64 (1.6 %). */
struct replay_stats {
    uint64_t flows, packets, bytes; /* bytes: frame bytes without FCS */
    uint64_t late;                  /* streamed flows skipped: window not ready at start */
    uint64_t drops;                 /* packets the sink did not take */
    uint64_t carried;               /* bin remainders smaller than a frame, moved on */
    uint64_t seconds_ns;            /* wall time of the run */
    uint64_t cpu_ns;                /* CPU time of the thread that ran it */
    double pps;                     /* packets / wall time */
    int timed;                      /* 1 when the error percentiles below mean something */
    uint64_t err_p50_ns, err_p99_ns, err_p999_ns, err_max_ns;
    uint64_t early;  /* packets sent before their deadline (never expected) */
    uint64_t capped; /* bins (per flow and direction) cut to what the line rate carries */
    double line_bps; /* the line rate they were cut to */
    int ended;       /* what ended the run early: enum replay_end */
};

/* A bound that ended a run before its flows were done (replay_stats.ended). */
enum replay_end { REPLAY_END_NONE, REPLAY_END_DURATION, REPLAY_END_BYTES, REPLAY_END_PACKETS };

/* Replays ds's windows through sink. ds needs channels "bytes_down" and "bytes_up"
 * (and uses "pkts_down"/"pkts_up" when present); stats of classes with no packet
 * statistics fall back to MTU-sized packets at even times (said once in the log).
 * A dpdk: sink started with several lcores gets one scheduler per tx queue, each on its
 * lcore over its share of the flows; st sums them. The sink can be used for several
 * runs. Returns 0 (also when a bound ended the run: st->ended says which), ND_EINTR
 * when o->stop was set (what was sent is kept), or a negative code with e filled (empty
 * dataset, unknown class, line rate out of range, sink failure). st may be NULL. */
int replay_run(const nd_dataset *ds, const replay_opts *o, replay_sink *sink, replay_stats *st,
               nd_error *e);

/* One line for people: "1234 packets, 1.2 MB, 10.0 kpps, 0 drops, error p50 ... max". */
void replay_stats_format(const replay_stats *st, char *buf, size_t len);

#endif
