/*
 * replay_impl.h — private to libnd_replay: the PRNG, per-class draw tables, the flow
 * state the packetizer fills bin by bin, the header builder and the sink table.
 *
 * Pipeline inside the module: sched (flows, heap, deadlines) → pkt (packetizer: bins →
 * packet descriptors; builder: descriptor → frame bytes) → sink (pcap, iface, dpdk, func).
 */
#ifndef ND_REPLAY_IMPL_H
#define ND_REPLAY_IMPL_H

#include <stdint.h>
#include <string.h>

#include "replay.h"

/* ------------------------------------------------------------------------------------ */
/* Random numbers: nd_rng (nd.h), one stream per flow, so that packets do not depend on  */
/* how flows interleave.                                                                 */
/* ------------------------------------------------------------------------------------ */

static inline void replay_rng_seed(nd_rng *r, uint64_t seed, uint64_t stream)
{
    nd_rng_seed(r, seed ^ (stream * 0xd1342543de82ef95ull));
}

/* Uniform in [0, n) by a 64×64→128 multiply (bias below 2^-64 · n, never visible). */
static inline uint64_t replay_rng_below(nd_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)nd_rng_u64(r) * n) >> 64);
}

/* ------------------------------------------------------------------------------------ */
/* Draw tables: a histogram of counts as a cumulative table over its non-zero entries.   */
/* ------------------------------------------------------------------------------------ */

typedef struct pkt_cdf {
    uint32_t n;      /* non-zero entries */
    uint32_t *value; /* (n) histogram index */
    uint64_t *cum;   /* (n) cumulative count, cum[n-1] = total */
} pkt_cdf;

int pkt_cdf_init(pkt_cdf *c, const uint64_t *hist, uint32_t len); /* 0 or -ENOMEM */
void pkt_cdf_free(pkt_cdf *c);
uint32_t pkt_cdf_draw(const pkt_cdf *c, nd_rng *r); /* c->n > 0 */

/* Everything drawn per class, built once per run from nd_class_stats. */
typedef struct pkt_class {
    const char *name;
    pkt_cdf size[2], iat[2], ttl[2]; /* [dir] */
    pkt_cdf ttl_uni[2];              /* [dir] TTLs a unicast packet may take: 2 and up */
    pkt_cdf port;                    /* index into stats port[] */
    pkt_cdf mss;                     /* index into stats mss[] */
    const nd_class_stats *st;
    double p_udp; /* share of UDP among TCP+UDP flows */
    double p_ipv6;
    int has_sizes, has_iat;
} pkt_class;

int pkt_class_init(pkt_class *pc, const nd_class_stats *st, const char *name);
void pkt_class_free(pkt_class *pc);

/* ------------------------------------------------------------------------------------ */
/* Addresses                                                                             */
/* ------------------------------------------------------------------------------------ */

typedef struct pkt_pool {
    int has4, has6;
    uint32_t base4, span4; /* host order; usable hosts base4+1 .. base4+span4 */
    uint8_t base6[16];
    uint64_t span6;
    uint32_t count; /* addresses in use */
} pkt_pool;

/* Longest pool text pkt_pool_parse takes, NUL included: an IPv4 and an IPv6 list of up
 * to 255 bytes each (config strings) and the comma between them. */
#define PKT_POOL_TEXT 514

/* Parses "A.B.C.D/N[,X:Y::/M]"; 0 or ND_ECONFIG with e saying what is wrong. */
int pkt_pool_parse(pkt_pool *p, const char *text, uint32_t count, const char *what,
                   nd_error *e);
void pkt_pool_addr4(const pkt_pool *p, uint32_t i, uint8_t out[4]);
void pkt_pool_addr6(const pkt_pool *p, uint32_t i, uint8_t out[16]);
int pkt_mac_parse(const char *text, uint8_t out[6]); /* 0 or -1 */

/* ------------------------------------------------------------------------------------ */
/* Flows and packet descriptors                                                          */
/* ------------------------------------------------------------------------------------ */

enum { TCPF_FIN = 0x01, TCPF_SYN = 0x02, TCPF_RST = 0x04, TCPF_PSH = 0x08, TCPF_ACK = 0x10 };

typedef struct pkt_desc {
    uint64_t t; /* ns since the flow started */
    uint32_t seq, ack;
    uint16_t len; /* frame bytes, Ethernet header included, no FCS */
    uint8_t dir;
    uint8_t flags;  /* TCP flags */
    uint32_t order; /* tie-break for equal times (generation order) */
} pkt_desc;

/* Channel layout of the dataset: indices, -1 when absent. */
typedef struct pkt_layout {
    int bytes[2], pkts[2];
    uint32_t C, L; /* channels and bins of a window */
    uint64_t bin_ns;
    int64_t bin_cap; /* most bytes a bin carries per direction at the line rate */
} pkt_layout;

/* The link layer, per side: [ND_UP] is the client side, where client-to-server frames
 * leave, [ND_DOWN] the server side. */
typedef struct pkt_l2 {
    uint8_t mac[2][6]; /* first MAC of each side's pool */
    uint32_t n_mac[2]; /* MACs in each pool (>= 1): client address i has MAC i mod n */
    uint16_t vlan[2];  /* 802.1Q VLAN id of the frames that leave each side; 0: untagged */
    uint8_t gw[2][6];  /* the next hop of the frames that leave each side, */
    int has_gw[2];     /*   when set: they go to it rather than to the peer's MAC */
} pkt_l2;

/* The link layer of both sides from the options: 0 or ND_ECONFIG naming the key. */
int pkt_l2_init(pkt_l2 *l2, const replay_opts *o, nd_error *e);

typedef struct pkt_flow {
    uint64_t id;
    uint64_t start;   /* series ns since the run started */
    const float *win; /* (nbins / L, C, L): bin b of channel c at [b/L][c][b%L] */
    uint32_t nbins;   /* bins of the flow, whole windows */
    const pkt_class *pc;
    uint32_t cls, window;
    nd_rng rng;

    uint8_t ipv6, l4, ttl[2];
    uint8_t app; /* enum pkt_app: the protocol header the payload starts with */
    uint16_t mss, cport, sport, max_frame;
    uint16_t min_frame; /* the smallest legal frame: headers (UDP: and the app's header) */
    uint16_t app_min;   /* TCP: least payload of a segment with data (the app's header),
                           0 for any; frames between min_frame and min_frame + app_min
                           are never sent */
    uint16_t step;      /* UDP: frames are min_frame plus whole units of step bytes (RIPng's
                           20-byte route entries), 1 for any size up to max_frame */
    uint8_t caddr[16], saddr[16];
    uint8_t mac[2][6];           /* [ND_UP] the client's MAC, [ND_DOWN] the server's */
    uint8_t dst_mac[2][6];       /* [dir] the destination of the direction's frames: the
                                    peer's MAC, or its side's next hop */
    uint16_t vlan[2];            /* [dir] the VLAN tag of the direction's frames, 0: none */
    uint32_t snd_nxt[2];         /* next sequence number per direction (TCP) */
    uint32_t addr_sum, port_sum; /* checksum parts that do not change within the flow */

    int64_t carry[2];             /* bytes owed to (>0) or taken from (<0) the next bins */
    uint32_t next_bin;            /* next bin the packetizer fills */
    uint32_t first_bin, last_bin; /* active bins (either bytes channel > 0) */

    pkt_desc *pk; /* packets of the current bin, in time order */
    uint32_t n, cap, pos, cur_bin;
    pkt_desc *tmp; /* scratch for sorting a bin */
    uint32_t tmp_cap;
    uint64_t carried; /* remainders moved on, for the statistics */
    uint64_t capped;  /* bins (per direction) cut to lay->bin_cap */
    int counted;      /* sched: in the run's flows (a flow of a load target's lead-in
                         counts at its first packet sent) */
    float *own;       /* sched: the flow's copy of a streamed flow (kept for reuse) */
    size_t own_cap;   /* floats own holds */
} pkt_flow;

/* Length of the Ethernet, IP and TCP/UDP headers of a flow's frame. */
uint16_t pkt_hdr_len(int ipv6, int l4, int syn);

/* Payloads are zeros, except that flows to a port whose protocol tools decode get that
 * protocol's smallest well-formed header at the start of every payload, so that a
 * capture of them reads as that protocol, not as malformed (docs/REPLAY.md, "Headers"):
 * over UDP a DNS-style header (DNS, mDNS, LLMNR, NBNS), a BOOTP header with the DHCP
 * magic cookie, a DHCPv6 header, an NTP header (also over TCP), a NetBIOS datagram; over TCP,
 * where every data segment carries one whole message, DNS with its 2-byte length prefix, DHCPv6
 * bulk leasequery likewise, a TLS application-data record (which must hold at least one byte)
 * and a WINS replication message with its 4-byte length prefix. RIPng payloads are a 4-byte
 * header and whole 20-byte route entries: the packetizer sizes its frames in those steps. */
enum pkt_app {
    PKT_APP_NONE,
    PKT_APP_DNS,       /* UDP: id, flags, four counts of 0 */
    PKT_APP_DHCP,      /* UDP: BOOTP's 236 bytes and the magic cookie */
    PKT_APP_DHCP6,     /* UDP: message type, transaction id, one byte or more */
    PKT_APP_DNS_TCP,   /* TCP: length, then the DNS header */
    PKT_APP_DHCP6_TCP, /* TCP: length, then the DHCPv6 header and one byte or more */
    PKT_APP_TLS,       /* TCP: content type 23, version 3.3, length, one byte or more */
    PKT_APP_NTP,       /* UDP or TCP: a 48-byte NTPv4 header (client mode up, server down) */
    PKT_APP_RIPNG,     /* UDP: command, version 1, then route entries of 20 bytes (zeros) */
    PKT_APP_WINSREPL,  /* TCP: length, opcode, context, a replication table query */
    PKT_APP_NBDS,      /* UDP: a NetBIOS datagram error (the one type without names) */
    PKT_APP_COUNT
};
/* Bytes of the app's header: the least a payload of the flow carries (UDP: every
 * packet; TCP: every segment with data, pure ACKs carry none). */
extern const uint8_t pkt_app_len[PKT_APP_COUNT];
#define PKT_EPHEMERAL_PORT 32768

/* A remainder of x bytes that frames of a flow can carry exactly: none, one smallest
 * frame, or frames with data (any x from minf + gap up splits into legal frames, as the
 * largest frame holds two data frames: pkt_flow_init sees to it). */
#define PKT_SENDABLE(x, minf, gap) ((x) == 0 || (x) == (minf) || (x) >= (minf) + (gap))

/* Sets the flow's addresses, ports, TTL, MSS, ISNs from its class and pools. */
void pkt_flow_init(pkt_flow *f, const pkt_layout *lay, const pkt_pool *cli, const pkt_pool *srv,
                   const pkt_l2 *l2);
/* Fills f->pk with the packets of the next bin that has any; returns 1, or 0 when the
 * window is done. -ENOMEM on allocation failure. */
int pkt_flow_next_bin(pkt_flow *f, const pkt_layout *lay);
void pkt_flow_free(pkt_flow *f);

/* pkt_build flags. PKT_CSUM_OFFLOAD: leave the IPv4 checksum 0 and put the pseudo-header
 * sum in the L4 checksum, for NIC offload. PKT_ZERO_TAIL: buf is zero past PKT_HDR_MAX
 * (DPDK mbufs of our own pool), so only the header area needs clearing. */
enum { PKT_CSUM_OFFLOAD = 1, PKT_ZERO_TAIL = 2 };
#define PKT_HDR_MAX 320 /* largest header pkt_build writes (VLAN, UDP/IPv6, DHCP: 306) */

uint32_t pkt_addr_sum(const pkt_flow *f); /* for pkt_flow_init */

/* Bytes of d's frame on the wire: d->len (what the capture counts: IP and a 14-byte
 * Ethernet header) and the VLAN tag when its side has one. */
static inline uint32_t pkt_wire_len(const pkt_flow *f, const pkt_desc *d)
{
    return d->len + (f->vlan[d->dir] ? 4u : 0u);
}

/* Writes the frame of d into buf (pkt_wire_len bytes): headers, zero payload but for the
 * app's header, checksums. */
void pkt_build(uint8_t *restrict buf, const pkt_flow *f, const pkt_desc *d, int flags);

/* ------------------------------------------------------------------------------------ */
/* Sinks                                                                                  */
/* ------------------------------------------------------------------------------------ */

/* Timing error histogram: log-linear, 64 sub-buckets per power of two of nanoseconds. */
#define SINK_ERR_BUCKETS (64 * 64)
typedef struct sink_errhist {
    uint64_t count[SINK_ERR_BUCKETS];
    uint64_t n, max, early;
} sink_errhist;

void sink_errhist_add(sink_errhist *h, uint64_t deadline, uint64_t now);
uint64_t sink_errhist_quantile(const sink_errhist *h, double q);

typedef struct sink_ops {
    const char *name;
    int paced; /* waits for deadlines (iface, dpdk) */
    /* Room for the next frame of len bytes, the packet of info (a two-sided sink picks
     * its side by info->dir and takes that side's build_flags); NULL with e filled on
     * failure. */
    uint8_t *(*alloc)(replay_sink *s, uint32_t len, const replay_pkt_info *info, nd_error *e);
    /* Takes the frame last allocated. May send at once or queue it. 0 or -code. */
    int (*send)(replay_sink *s, uint32_t len, uint64_t deadline, const replay_pkt_info *info,
                nd_error *e);
    int (*flush)(replay_sink *s, nd_error *e); /* sends what is queued */
    int (*close)(replay_sink *s, nd_error *e); /* flushes and frees */
    /* Sinks with several tx queues (NULL for one): their count, the sink of queue q
     * (q > 0; queue 0 is s), running fn(arg) for queue q on its own core, and waiting
     * for all of them. */
    uint32_t (*n_queues)(replay_sink *s);
    replay_sink *(*queue)(replay_sink *s, uint32_t q);
    void (*launch)(replay_sink *s, uint32_t q, int (*fn)(void *), void *arg);
    void (*wait)(replay_sink *s);
} sink_ops;

/* Every sink starts with this. */
struct replay_sink {
    const sink_ops *ops;
    int build_flags;  /* PKT_* flags for pkt_build */
    uint64_t base_ns; /* deadline of offset 0 (paced: CLOCK_MONOTONIC; pcap: epoch) */
    uint64_t packets, bytes, drops;
    double line_bps;   /* the line's rate when the sink knows it (an interface's), else 0 */
    int timed;         /* deadlines are waited for: record timing errors in err */
    sink_errhist *err; /* timing errors (paced sinks only) */
    int discard;       /* closed by replay_sink_discard: a file sink keeps nothing */
};

/* A sink that sends one frame at a time from a buffer of its own (func, iface): embed it
 * first, and its alloc is sink_frame_alloc. */
typedef struct sink_framed {
    replay_sink base;
    uint8_t frame[2048];
} sink_framed;
uint8_t *sink_frame_alloc(replay_sink *s, uint32_t len, const replay_pkt_info *info,
                          nd_error *e);
/* flush of a sink that holds nothing back */
int sink_flush_none(replay_sink *s, nd_error *e);

/* A file sink (pcap, pcapng): whole records gathered in a 1 MiB buffer that goes to the
 * atomic writer when full and at close (the file replaces its path only then). */
typedef struct sink_file {
    replay_sink base;
    nd_afile *f;
    uint8_t *buf; /* whole records */
    size_t len;   /* bytes in buf */
    int sides;    /* pcapng: one interface per side, by direction */
} sink_file;
/* Opens path with the file's head (head_len bytes); NULL with e filled. */
sink_file *sink_file_open(const char *path, const char *scheme, const sink_ops *ops,
                          const void *head, size_t head_len, nd_error *e);
/* Where the next need bytes go (p->buf + p->len), writing out what is gathered first when
 * they do not fit; NULL with e filled when that write failed. */
uint8_t *sink_file_room(sink_file *p, uint32_t need, nd_error *e);
int sink_file_close(replay_sink *s, nd_error *e); /* the close of every file sink */

replay_sink *sink_pcap_open(const char *path, nd_error *e);
/* sides: two interface description blocks, client side (0) and server side (1), and
 * each packet on its direction's; else one. */
replay_sink *sink_pcapng_open(const char *path, int sides, nd_error *e);
replay_sink *sink_iface_open(const char *name, nd_error *e);
/* server: the server side of a two-sided replay, a second port of the EAL that the
 * client side's sink started (dpdk_open's docs in sink_dpdk.c) */
replay_sink *sink_dpdk_open(const char *args, int server, nd_error *e);

/* Waits until deadline (CLOCK_MONOTONIC ns): sleeps until spin_ns before it, then spins.
 * Returns early when *stop becomes set. */
void sched_wait_until(uint64_t deadline, uint64_t spin_ns, volatile sig_atomic_t *stop);

#endif
