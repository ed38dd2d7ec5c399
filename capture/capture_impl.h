/*
 * capture_impl.h — private to libnd_capture: the source backend table and helpers shared
 * between capture.c, source.c and source_dpdk.c.
 */
#ifndef ND_CAPTURE_IMPL_H
#define ND_CAPTURE_IMPL_H

#include <stdio.h>

#include "capture.h"

/* A prefetch that stays: GCC 12 deletes __builtin_prefetch calls whose loop does nothing
 * else it counts as a side effect (it did to the flow prefetch of capture_ctx_burst,
 * silently); an asm volatile one is kept. */
static inline void capture_prefetch(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p);
#endif
}

/* Longest source spec kept for messages: a config string (255 bytes) and its prefix. */
#define CAPTURE_SPEC_MAX 264

/* One backend (pcap file, libpcap live, DPDK port): chosen at open time from the spec's
 * prefix, like tcpreplay's sendpacket_open. */
typedef struct capture_source_ops {
    int (*rx)(capture_source *s, capture_pkt *pkts, unsigned max, int timeout_ms, nd_error *e);
    void (*stats)(capture_source *s, capture_source_stats *st);
    void (*report)(capture_source *s);
    void (*close)(capture_source *s);
} capture_source_ops;

struct capture_source {
    const capture_source_ops *ops;
    char spec[CAPTURE_SPEC_MAX]; /* as opened, cut to fit: for messages */
    int linktype;
    int live; /* the clock is the wall clock: idle flows expire while nothing arrives */
    uint64_t received;
};

/* "pcap:" sources (source_file.c): classic pcap read in place, the rest via libpcap. */
capture_source *capture_file_open(const char *spec, const char *path, const capture_opts *o,
                                  nd_error *e);
/* A file read by libpcap (source.c): path, or f when not NULL (owned from here on, closed
 * on failure too). */
capture_source *capture_libpcap_file_open(const char *spec, const char *path, FILE *f,
                                          const capture_opts *o, nd_error *e);
/* The ND_ETRUNC error of a file that breaks after s->received packets; why says how. */
int capture_file_error(const capture_source *s, const char *why, nd_error *e);

/* "dpdk:" sources (source_dpdk.c); args is the text after the prefix. */
capture_source *capture_dpdk_open(const char *args, const capture_opts *o, nd_error *e);

/* First error returned by the window callback, 0 when none (capture_run stops on it). */
int capture_ctx_error(const capture_ctx *c);

/* For tests. Grows the flow index to its largest size at once, as if it were sized for
 * capture.flow_capacity up front: the reference a growing index is checked against. */
void capture_ctx_index_grow_full(capture_ctx *c);
/* For tests. Checks the flow index against the flows: every entry names a live flow and
 * its hash and is reachable from its home slot without crossing an empty one, every flow
 * on the LRU list is found by its key, and there are as many entries as flows. Returns the
 * index's slot count, 0 when it is inconsistent. */
uint32_t capture_ctx_index_check(const capture_ctx *c);

/* Hooks of the lcore runner (lcores.c) into a context (capture.c). */
typedef struct capture_window_flow {
    uint8_t key[48]; /* canonical flow key (addresses, ports, VLAN, protocol) */
    uint64_t t0;     /* the flow's first packet */
    uint64_t index;  /* the window's index in its flow */
} capture_window_flow;
/* The flow of the window the context's callback is handed: valid only inside it. */
void capture_ctx_window_flow(const capture_ctx *c, capture_window_flow *wf);
/* Hands a window made by another context (same options) to c's callback, counting it as
 * c's own; the callback's error, also kept for capture_ctx_error. */
int capture_ctx_emit(capture_ctx *c, uint32_t class_idx, uint64_t group, const float *values);
/* Adds src's counters (but windows: capture_ctx_emit counted them), flows and class
 * statistics to c; src was made with c's options. */
void capture_ctx_absorb(capture_ctx *c, capture_ctx *src);
/* c reads one of n lcores' shares of an input's flows: its flow gaps and the input's
 * time count 1/n each (docs/REPLAY.md, "Arrivals"). */
void capture_ctx_arrival_share(capture_ctx *c, uint32_t n);

/* DPDK ports for the lcore runner (source_dpdk.c; lcores.c). Queues are numbered over
 * every port, 0 .. capture_dpdk_n_queues - 1. */
struct rte_mbuf;
typedef struct capture_lcores capture_lcores;
unsigned capture_dpdk_n_queues(const capture_source *s);
void capture_dpdk_queue_id(const capture_source *s, unsigned q, uint16_t *port,
                           uint16_t *queue);
/* Whether every queue holds whole flows, both directions: one port whose queues a
 * symmetric hash fills (RSS with the symmetric key, af_packet's kernel fanout). */
int capture_dpdk_whole_flows(const capture_source *s);
/* Up to max packets of queue q (thread-safe across queues): the mbufs, to be freed with
 * rte_pktmbuf_free_bulk, and the packets they hold, timestamped. */
unsigned capture_dpdk_rx_queue(const capture_source *s, unsigned q, struct rte_mbuf **m,
                               capture_pkt *pkts, unsigned max);
/* Now on the clock of the packets' timestamps. */
uint64_t capture_dpdk_now(const capture_source *s);
/* The source's runner slot: NULL until capture_lcores_start. */
capture_lcores **capture_dpdk_runner(capture_source *s);
/* Packets the runner's lcores read (lcores.c). */
uint64_t capture_lcores_received(const capture_lcores *m);
/* Stops and frees a runner (lcores.c); what capture_lcores_finish does. */
int capture_lcores_free(capture_lcores *m, nd_error *e);

#endif
