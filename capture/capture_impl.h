/*
 * capture_impl.h — private to libnd_capture: the source backend table and helpers shared
 * between capture.c, source.c and source_dpdk.c.
 */
#ifndef ND_CAPTURE_IMPL_H
#define ND_CAPTURE_IMPL_H

#include "capture.h"

/* One backend (pcap file, libpcap live, DPDK port): chosen at open time from the spec's
 * prefix, like tcpreplay's sendpacket_open. */
typedef struct capture_source_ops {
    int (*rx)(capture_source *s, capture_pkt *pkts, unsigned max, int timeout_ms,
              nd_error *e);
    void (*stats)(capture_source *s, capture_source_stats *st);
    void (*report)(capture_source *s);
    void (*close)(capture_source *s);
} capture_source_ops;

struct capture_source {
    const capture_source_ops *ops;
    char spec[ND_CONF_STR + 8];
    int linktype;
    int live; /* the clock is the wall clock: idle flows expire while nothing arrives */
    uint64_t received;
};

/* "dpdk:" sources (source_dpdk.c); args is the text after the prefix. */
capture_source *capture_dpdk_open(const char *args, const nd_config *cfg, nd_error *e);

/* Adds the statistics s to d: histograms and counts add, top-k lists merge. */
void capture_stats_add(nd_class_stats *d, const nd_class_stats *s);

#endif
