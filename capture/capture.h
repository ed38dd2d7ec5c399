/*
 * capture.h — the capture front end of netdiffus (libnd_capture): packets in, labelled
 * windows of per-flow time series out.
 *
 *   source (pcap file | libpcap iface | DPDK port)   capture_source_*
 *     → parser (L2/L3/L4 headers, named error reasons) parse_packet
 *     → flow table (bidirectional 5-tuple + VLAN, timeouts, LRU eviction)
 *     → class (first BPF rule matching a flow's first packet)
 *     → binner (bytes/packets per bin and direction; windows of L bins)  capture_ctx_*
 *     → window callback (usually nd_dataset_append) + per-class replay statistics
 *
 * One capture_ctx is fed by one thread. A dpdk: source with capture.lcores >= 1 is read by
 * that many threads, one flow table each, whose windows merge in a fixed order into one
 * context (capture_lcores_*). Design notes: docs/CAPTURE.md.
 */
#ifndef ND_CAPTURE_H
#define ND_CAPTURE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "nd.h"

/* ------------------------------------------------------------------------------------ */
/* Packets                                                                               */
/* ------------------------------------------------------------------------------------ */

/* One packet as a source hands it over. data stays valid until the next
 * capture_source_rx() on the same source. */
typedef struct capture_pkt {
    const uint8_t *data;
    uint32_t caplen;  /* bytes at data */
    uint32_t wirelen; /* bytes on the wire; equals caplen on DPDK net_pcap */
    uint64_t ts_ns;   /* ns since the epoch (pcap, net_pcap) or TSC-derived realtime */
} capture_pkt;

/* Link types are libpcap's DLT_* numbers; these are the ones the parser knows. */
enum {
    CAPTURE_LINK_NULL = 0,     /* BSD loopback: 4-byte host-order family */
    CAPTURE_LINK_ETHERNET = 1, /* DLT_EN10MB; DPDK ports */
    CAPTURE_LINK_RAW = 101,    /* DLT_RAW: bare IPv4/IPv6 */
    CAPTURE_LINK_LOOP = 108,   /* OpenBSD loopback: 4-byte network-order family */
    CAPTURE_LINK_SLL = 113,    /* Linux cooked v1 */
    CAPTURE_LINK_IPV4 = 228,
    CAPTURE_LINK_IPV6 = 229,
    CAPTURE_LINK_SLL2 = 276, /* Linux cooked v2 */
};

/* ------------------------------------------------------------------------------------ */
/* Parser                                                                                */
/* ------------------------------------------------------------------------------------ */

/* Why a packet was skipped. PARSE_OK is 0; every other value has a counter name. */
enum parse_status {
    PARSE_OK = 0,
    PARSE_LINKTYPE,     /* link type the parser does not know */
    PARSE_TRUNC_L2,     /* shorter than its link-layer header */
    PARSE_TRUNC_VLAN,   /* VLAN tag cut off */
    PARSE_VLAN_DEPTH,   /* more than two VLAN tags */
    PARSE_NOT_IP,       /* ARP, LLDP, ...: not malformed, just not a flow */
    PARSE_TRUNC_IPV4,   /* IPv4 header cut off */
    PARSE_BAD_IPV4,     /* version, IHL or total length impossible */
    PARSE_TRUNC_IPV6,   /* IPv6 header cut off */
    PARSE_BAD_IPV6,     /* version field is not 6 */
    PARSE_BAD_IPV6_EXT, /* extension header chain cut off, too long or malformed */
    PARSE_TRUNC_L4,     /* TCP/UDP/ICMP header cut off (first fragment or whole packet) */
    PARSE_BAD_TCP,      /* TCP data offset < 5 words or beyond the IP payload */
    PARSE_N_STATUS
};
/* Counter name, e.g. "parse.truncated_ipv4". */
const char *parse_status_name(int status);

enum { PARSE_FRAG_NONE = 0, PARSE_FRAG_FIRST, PARSE_FRAG_LATER };

/* Headers of one IP packet. Addresses are 16 bytes; IPv4 uses the first 4, rest zero. */
typedef struct parse_info {
    uint8_t src[16], dst[16];
    uint16_t sport, dport; /* ICMP echo: the identifier on both; other ICMP and later
                              fragments: 0 (fragments take theirs from the first one) */
    uint32_t vlan;         /* 0 untagged; else tags<<24 | outer id<<12 | inner id */
    uint32_t frag_id;      /* IPv4 id or IPv6 fragment identification */
    uint32_t bytes;        /* frame size as on Ethernet: 14 + 4 per VLAN tag + IP total
                              length, so snaplen-cut and non-Ethernet captures count alike */
    uint16_t mss;          /* TCP MSS option of a SYN, 0 when absent */
    uint8_t ipver;         /* 4 or 6 */
    uint8_t proto;         /* IP protocol of the transport header (after IPv6 extensions) */
    uint8_t ttl;           /* IPv4 TTL / IPv6 hop limit */
    uint8_t tcp_flags;     /* TCP only */
    uint8_t frag;          /* PARSE_FRAG_* */
    uint8_t l2_len;        /* link-layer header bytes before the IP header */
} parse_info;

/* TCP flag bits in parse_info.tcp_flags. */
enum { PARSE_TCP_FIN = 0x01, PARSE_TCP_SYN = 0x02, PARSE_TCP_RST = 0x04, PARSE_TCP_ACK = 0x10 };

/* Parses caplen bytes at data of the given link type. Reads nothing past caplen, nor past
 * the IP total length (Ethernet padding is not payload). Returns PARSE_OK and fills *out,
 * or the reason the packet cannot be used. */
int parse_packet(const uint8_t *data, uint32_t caplen, int linktype, parse_info *out);

/* ------------------------------------------------------------------------------------ */
/* Options                                                                               */
/* ------------------------------------------------------------------------------------ */

/* One class rule: flows whose first packet matches filter get this class. */
typedef struct capture_class {
    const char *name;   /* label, a valid dataset class name (nd_dataset_class) */
    const char *filter; /* BPF expression (pcap-filter(7)); NULL or "": libpcap's empty
                           program, which matches every packet */
} capture_class;

/* Everything capture takes from its caller (the program fills it from the config:
 * app/opts.h). Strings are borrowed, and read only during the call that takes o:
 * capture_ctx_new copies what the context keeps, a source reads o while it opens, and
 * capture_run opens its sources one after another (o must last the whole run). */
typedef struct capture_ctx capture_ctx;
typedef struct capture_source capture_source;

typedef struct capture_opts {
    /* binner */
    uint64_t bin_ns;          /* bin width, ns (> 0) */
    uint32_t window;          /* L: bins per window (> 0) */
    uint32_t min_active_bins; /* windows with fewer non-zero bins are dropped; 0 acts as 1 */
    uint32_t channels;        /* 2: bytes down/up; 4: + packets down/up */
    /* flow table */
    uint32_t flow_capacity;     /* flows held at once (> 0); memory is reserved for all */
    uint64_t idle_timeout_ns;   /* a flow ends this long after its last packet; 0: never */
    uint64_t active_timeout_ns; /* a flow ends this long after its first packet; 0: never */
    /* classes: the first rule matching a flow's first packet labels it */
    uint32_t n_classes;                    /* rules used, at most ND_MAX_CLASSES */
    capture_class classes[ND_MAX_CLASSES]; /* (n_classes), in label order */
    const char *default_class; /* label of flows no rule matches; NULL or "": drop them */
    /* sources */
    uint32_t snaplen;     /* bytes kept per packet (pcap: files, iface:); 0: 262144 */
    bool promisc;         /* promiscuous mode on iface: and dpdk: ports */
    uint64_t buffer_size; /* kernel capture buffer of iface: sources, bytes; 0: libpcap's */
    const char *dpdk_eal; /* EAL arguments appended to every dpdk: spec; NULL or "": none */
    uint32_t rx_queues;   /* rx queues per DPDK port (RSS over them when > 1), >= 1 */
    uint32_t mbufs;       /* DPDK mbuf pool size, mbufs (> 0) */
    uint32_t lcores;      /* threads reading a dpdk: source, each with its own flow table of
                             flow_capacity / lcores flows (<= CAPTURE_MAX_LCORES); 0: the
                             calling thread polls every queue into its context */
    /* progress of a run (capture_run), for figures while it goes: report is called from
     * its thread about every report_ns (0: 1 s) and as each source ends (ended 1, before
     * the source closes); NULL: never. Not a config key: the program sets it */
    void (*report)(void *arg, capture_ctx *c, capture_source *s, int ended);
    void *report_arg;
    uint64_t report_ns;
} capture_opts;

/* Sets every field to the program's default (the capture section of docs/CONFIG.md): 1 s
 * bins, windows of 64, 2 channels, 2^20 flows, 15 s idle and 30 min active timeouts, no
 * rules, default class "other", snaplen 256, promiscuous, 64 MiB buffer, 1 rx queue,
 * 8191 mbufs, lcores 0. */
void capture_opts_defaults(capture_opts *o);

/* ------------------------------------------------------------------------------------ */
/* Capture context: flow table, classes, binner, statistics                             */
/* ------------------------------------------------------------------------------------ */

/* Receives one finished window: values is (C, L) channel-major, raw units, valid only
 * during the call. class_idx indexes capture_ctx_class_name(); group identifies the flow
 * (all windows of one flow share it). Returns 0, or a negative code that stops the
 * capture (capture_run returns it). */
typedef int (*capture_window_fn)(void *user, uint32_t class_idx, uint64_t group,
                                 const float *values);

/* A context for o (copied: o and its strings may be freed afterwards). force_class, when
 * not NULL, labels every flow with that class and ignores o's rules (one input per
 * class). Compiles the class filters: a bad BPF expression gives NULL with e naming the
 * class and libpcap's message. Memory for o->flow_capacity flows is reserved once; pages
 * are touched only as flows arrive. Free with capture_ctx_free(). */
capture_ctx *capture_ctx_new(const capture_opts *o, const char *force_class,
                             capture_window_fn on_window, void *user, nd_error *e);
void capture_ctx_free(capture_ctx *c); /* NULL is a no-op */
/* 0, or ND_ECONFIG naming the first class rule of o whose BPF filter does not compile for
 * link type linktype (pcap_compile on a dead handle), with libpcap's message: what
 * capture_ctx_new checks for CAPTURE_LINK_ETHERNET before it reads a packet, and what
 * `inspect --config` checks without capturing. */
int capture_check_filters(const capture_opts *o, int linktype, nd_error *e);

/* Feeds n packets of one link type, in arrival order. Never fails per packet: bad
 * packets are counted under their reason. */
void capture_ctx_burst(capture_ctx *c, int linktype, const capture_pkt *pkts, unsigned n);
/* Moves the clock to now_ns (when later than the last packet) and ends the flows idle by
 * then: live sources call it when no packet came for a while. */
void capture_ctx_advance(capture_ctx *c, uint64_t now_ns);
/* Ends every flow (end of an input): their last windows go out zero-padded. */
void capture_ctx_flush(capture_ctx *c);

/* Classes in label order: the configured rules, then the default class, or only the
 * forced class. The list is fixed at creation. */
uint32_t capture_ctx_n_classes(const capture_ctx *c);
const char *capture_ctx_class_name(const capture_ctx *c, uint32_t i);
/* Replay statistics of class i, with the top-K port and MSS lists filled in. Owned by c,
 * valid until the next capture_ctx_* call. */
const nd_class_stats *capture_ctx_class_stats(capture_ctx *c, uint32_t i);
/* Adds the statistics s to d: histograms and counts add, top-k lists merge (also the
 * statistics of several capture hosts, in live). */
void capture_stats_add(nd_class_stats *d, const nd_class_stats *s);

/* Named counters (parse.*, flow.*, class.*, bin.*), in a fixed order; zeros included. */
uint32_t capture_ctx_n_counters(const capture_ctx *c);
void capture_ctx_counter(const capture_ctx *c, uint32_t i, const char **name, uint64_t *value);

/* Running totals for a status line. */
typedef struct capture_totals {
    uint64_t packets;      /* packets fed */
    uint64_t bytes;        /* frame bytes of parsed packets */
    uint64_t skipped;      /* packets not used (any parse reason, orphan fragments) */
    uint64_t flows;        /* flows started */
    uint64_t active_flows; /* in the table now */
    uint64_t windows;      /* windows emitted */
} capture_totals;
void capture_ctx_totals(const capture_ctx *c, capture_totals *t);
/* Windows emitted for class i so far. */
uint64_t capture_ctx_class_windows(const capture_ctx *c, uint32_t i);

/* Registers c's classes in ds (in order, so that class index = label when ds is empty
 * of classes) and adds c's class statistics and counters to ds. Call once, at the end. */
int capture_ctx_to_dataset(capture_ctx *c, nd_dataset *ds, nd_error *e);

/* ------------------------------------------------------------------------------------ */
/* Sources                                                                               */
/* ------------------------------------------------------------------------------------ */

enum { CAPTURE_END = -2000 }; /* capture_source_rx: the input is exhausted */

/* Opens "pcap:FILE", "iface:NAME" or "dpdk:EAL-ARGS" (EAL arguments separated by spaces,
 * o->dpdk_eal appended) with o's source settings (snaplen .. mbufs). Returns NULL with e
 * saying what failed and what to do. DPDK: one EAL per process, so at most one dpdk:
 * source per process. */
capture_source *capture_source_open(const char *spec, const capture_opts *o, nd_error *e);
/* Up to max packets: a file gives bursts of up to 32 (caplen at most o->snaplen;
 * classic pcap points into the reader's buffer, other formats are copied out of
 * libpcap's), a DPDK port up to 64 mbufs, a libpcap interface one at a time.
 * Waits at most timeout_ms for a live source to have something. Returns the count (0:
 * nothing arrived in time), CAPTURE_END, or a negative error code with e filled (a file
 * that breaks part-way: ND_ETRUNC, the packets before it were delivered). */
int capture_source_rx(capture_source *s, capture_pkt *pkts, unsigned max, int timeout_ms,
                      nd_error *e);
int capture_source_linktype(const capture_source *s);
const char *capture_source_spec(const capture_source *s);

typedef struct capture_source_stats {
    uint64_t received;   /* packets handed over */
    uint64_t dropped;    /* lost for lack of buffer: pcap_stats ps_drop, DPDK imissed */
    uint64_t if_dropped; /* dropped by the interface (pcap ps_ifdrop) */
    uint64_t nombuf;     /* DPDK rx_nombuf */
    uint64_t errors;     /* DPDK ierrors */
} capture_source_stats;
void capture_source_stats_get(capture_source *s, capture_source_stats *st);
/* Per-queue lines (DPDK) or one summary line, for the end-of-capture report; log level
 * INFO. */
void capture_source_report(capture_source *s);
void capture_source_close(capture_source *s); /* NULL is a no-op */

/* ------------------------------------------------------------------------------------ */
/* Several lcores on one dpdk: source                                                    */
/* ------------------------------------------------------------------------------------ */

/* A dpdk: source opened with o->lcores >= 1 is read by that many threads (lcores), each
 * with a flow table and binner of its own; both directions of a flow always reach the
 * same lcore (symmetric RSS, or a symmetric hash of the 5-tuple in software). Finished
 * windows merge into the one context c in a fixed order: by window start time, then flow
 * start time, flow key and window index, released once no lcore can still make an
 * earlier one (timestamp watermarks). The same packets give the same windows in the same
 * order, with the same groups (a hash of flow key and start time), whatever the lcore
 * count or the threads' timing. docs/CAPTURE.md says how. */
#define CAPTURE_MAX_LCORES 64

/* Lcores s was opened for (o->lcores of a dpdk: source), 0 for every other source. */
unsigned capture_lcores_count(const capture_source *s);
/* Starts s's lcores; their windows go to c (through its callback, as its own would; c's
 * window counts follow them). 0, or a negative code with e filled. */
int capture_lcores_start(capture_source *s, capture_ctx *c, const capture_opts *o, nd_error *e);
/* Hands c the windows that are ready, in merge order; call it often (the lcores wait when
 * a thousand windows of one lcore are waiting). Returns 0 while the lcores run,
 * CAPTURE_END once a file input has ended and every window is in c, or a negative code
 * with e filled (c's callback failed, out of memory). */
int capture_lcores_merge(capture_source *s, nd_error *e);
/* Stops the lcores: they end every flow, c gets the last windows and the lcores' counters
 * and statistics; their figures stay readable until the source closes. Returns what
 * merging returned (0 or a negative code with e filled). capture_source_close does it
 * when it was not done. */
int capture_lcores_finish(capture_source *s, nd_error *e);

/* One lcore's figures so far (safe to read while it runs, and after it finished). */
typedef struct capture_lcore_stats {
    uint32_t queues;       /* rx queues it reads */
    uint64_t rx;           /* packets it read from them */
    uint64_t sent;         /* of those, handed to another lcore (software dispatch) */
    uint64_t packets;      /* packets its flow table took: its own and those handed to it */
    uint64_t bytes;        /* frame bytes of the parsed ones */
    uint64_t skipped;      /* not usable (parse reasons, orphan fragments) */
    uint64_t flows;        /* flows it started */
    uint64_t active_flows; /* in its table now */
    uint64_t windows;      /* windows it made */
} capture_lcore_stats;
/* One rx queue's figures. */
typedef struct capture_queue_stats {
    uint16_t port, queue;
    uint32_t lcore;   /* the lcore that reads it */
    uint64_t packets; /* read from it */
} capture_queue_stats;
/* Every lcore's and queue's figures. */
#define CAPTURE_MAX_QUEUES 128 /* rx queues of a dpdk: source, all ports */
typedef struct capture_lcores_figures {
    unsigned n, nq; /* 0: no source with lcores reported yet */
    capture_lcore_stats lc[CAPTURE_MAX_LCORES];
    capture_queue_stats q[CAPTURE_MAX_QUEUES];
} capture_lcores_figures;
/* The figures of s's lcores into f; f is left as it was when s has none. */
void capture_lcores_figures_get(capture_source *s, capture_lcores_figures *f);
/* f as arrays "lcores" and "queues" of j (nothing when f->n is 0), for --json and --stats. */
void capture_lcores_json(nd_json *j, const capture_lcores_figures *f);
/* f as Prometheus families PREFIX_lcore_*{lcore="I"} and
 * PREFIX_queue_packets_total{queue="PORT:QUEUE"} (nothing when f->n is 0). */
void capture_lcores_prom(nd_prom *p, const char *prefix, const capture_lcores_figures *f);
/* Adds to t what the running lcores of s hold that c does not have yet (packets, bytes,
 * skipped, flows, active flows: they join c at capture_lcores_finish; windows are in c as
 * they merge). */
void capture_lcores_totals_add(capture_source *s, capture_totals *t);

/* ------------------------------------------------------------------------------------ */
/* Whole runs (what `netdiffus capture` does)                                           */
/* ------------------------------------------------------------------------------------ */

/* Runs every source in turn through c until each ends or *stop becomes non-zero (set by a
 * signal handler); each source opens with o (capture_source_open) and is closed before
 * the next opens, so any number of them costs what one does. A dpdk: source with
 * o->lcores >= 1 runs on its lcores (capture_lcores_start), this thread merging. "pcap:DIR",
 * DIR a folder, reads every file of DIR in turn, in byte order of their names (strcmp),
 * skipping hidden names and entries that are not regular files. Flushes c after each file.
 * status != 0 draws nd_status lines. Returns 0, ND_EINTR when stopped (everything so far is
 * kept in c), or a negative code with e filled (a source that cannot be opened or fails while
 * reading). */
int capture_run(capture_ctx *c, const char *const *specs, unsigned n_specs,
                const capture_opts *o, volatile sig_atomic_t *stop, int status, nd_error *e);

#endif
