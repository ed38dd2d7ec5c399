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

#endif
