/*
 * source_dpdk.c — "dpdk:EAL-ARGS" sources: every DPDK port the EAL arguments bring up
 * (a NIC, or a vdev such as net_pcap, net_af_packet, net_ring), polled in bursts.
 *
 * One EAL per process, so one dpdk: source per process. Packets stay in their mbufs until
 * the next rx call (no copy). With capture.lcores, lcores.c reads the queues from threads
 * of its own through capture_dpdk_rx_queue; RSS then uses the symmetric key, so that both
 * directions of a flow reach one queue. Timestamps: net_pcap fills the mbuf rx-timestamp
 * dynamic field with the file's time in µs, which keeps pcap-file replays exact; every other
 * port is stamped from the TSC once per burst, on the realtime clock (hardware timestamps are
 * in NIC clock units that need a per-port conversion: not done yet).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "capture_impl.h"

#define MAX_ARGS   64
#define MAX_QUEUES CAPTURE_MAX_QUEUES
#define MAX_RX     64 /* mbufs held between rx calls */

typedef struct dpdk_queue {
    uint16_t port, queue;
} dpdk_queue;

typedef struct dpdk_source {
    capture_source base;
    struct rte_mempool *pool;
    dpdk_queue q[MAX_QUEUES];
    unsigned n_q, next_q;
    uint16_t ports[RTE_MAX_ETHPORTS];
    unsigned n_ports;
    int file_mode;    /* every port is net_pcap reading a file: an empty poll is EOF */
    int ts_off;       /* rx-timestamp dynamic field offset, -1 none */
    uint64_t ts_flag; /* its ol_flags bit */
    int ts_us;        /* that field holds µs since the epoch (net_pcap) */
    uint64_t tsc_hz, tsc0, ns0;
    struct rte_mbuf *held[MAX_RX];
    unsigned n_held;
    int whole;              /* every queue holds whole flows (capture_dpdk_whole_flows) */
    unsigned lcores;        /* capture_opts.lcores */
    capture_lcores *runner; /* lcores.c, while they run */
} dpdk_source;

static int eal_used; /* rte_eal_init may run once per process */

static uint64_t tsc_to_ns(const dpdk_source *d, uint64_t tsc)
{
    uint64_t dt = tsc - d->tsc0;
    /* Split so that nothing overflows: (dt % hz) · 10^9 < hz · 10^9 < 2^64 for any TSC
     * below 18 GHz, while dt · 10^9 would overflow after ~6 s at 3 GHz. */
    return d->ns0 + dt / d->tsc_hz * ND_NS_PER_SEC + dt % d->tsc_hz * ND_NS_PER_SEC / d->tsc_hz;
}

static void release_held(dpdk_source *d)
{
    if (d->n_held) rte_pktmbuf_free_bulk(d->held, d->n_held);
    d->n_held = 0;
}

unsigned capture_dpdk_rx_queue(const capture_source *s, unsigned qi, struct rte_mbuf **m,
                               capture_pkt *pkts, unsigned max)
{
    const dpdk_source *d = (const dpdk_source *)s;
    const dpdk_queue *q = &d->q[qi];
    uint16_t n =
        rte_eth_rx_burst(q->port, q->queue, m, (uint16_t)(max < MAX_RX ? max : MAX_RX));
    if (!n) return 0;
    uint64_t now = tsc_to_ns(d, rte_rdtsc());
    for (uint16_t j = 0; j < n; j++) {
        pkts[j].data = rte_pktmbuf_mtod(m[j], const uint8_t *);
        pkts[j].caplen = m[j]->data_len;
        pkts[j].wirelen = m[j]->pkt_len;
        pkts[j].ts_ns = now;
        if (d->ts_us && (m[j]->ol_flags & d->ts_flag))
            pkts[j].ts_ns = *RTE_MBUF_DYNFIELD(m[j], d->ts_off, uint64_t *) * 1000;
    }
    return n;
}

static int dpdk_rx(capture_source *s, capture_pkt *pkts, unsigned max, int timeout_ms,
                   nd_error *e)
{
    dpdk_source *d = (dpdk_source *)s;
    release_held(d);
    uint64_t deadline = 0;
    for (;;) {
        for (unsigned k = 0; k < d->n_q; k++) {
            unsigned qi = d->next_q;
            d->next_q = d->next_q + 1 == d->n_q ? 0 : d->next_q + 1;
            unsigned n = capture_dpdk_rx_queue(s, qi, d->held, pkts, max);
            if (!n) continue;
            d->n_held = n;
            s->received += n;
            return (int)n;
        }
        if (d->file_mode) return CAPTURE_END;
        uint64_t now = nd_now_ns();
        if (!deadline) deadline = now + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
        if (now >= deadline) return 0;
        /* An idle port: yield the core briefly instead of spinning (this machine shares its
         * cores); at line rate the rings never run empty, so this costs nothing there. */
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    (void)e;
}

unsigned capture_dpdk_n_queues(const capture_source *s)
{
    return ((const dpdk_source *)s)->n_q;
}

void capture_dpdk_queue_id(const capture_source *s, unsigned q, uint16_t *port, uint16_t *queue)
{
    const dpdk_source *d = (const dpdk_source *)s;
    *port = d->q[q].port;
    *queue = d->q[q].queue;
}

int capture_dpdk_whole_flows(const capture_source *s)
{
    const dpdk_source *d = (const dpdk_source *)s;
    return d->n_ports == 1 && d->whole;
}

uint64_t capture_dpdk_now(const capture_source *s)
{
    return tsc_to_ns((const dpdk_source *)s, rte_rdtsc());
}

capture_lcores **capture_dpdk_runner(capture_source *s) { return &((dpdk_source *)s)->runner; }

unsigned capture_lcores_count(const capture_source *s)
{
    return s->ops->rx == dpdk_rx ? ((const dpdk_source *)s)->lcores : 0;
}

static void dpdk_stats(capture_source *s, capture_source_stats *st)
{
    dpdk_source *d = (dpdk_source *)s;
    memset(st, 0, sizeof *st);
    st->received = s->received + (d->runner ? capture_lcores_received(d->runner) : 0);
    for (unsigned i = 0; i < d->n_ports; i++) {
        struct rte_eth_stats es;
        if (rte_eth_stats_get(d->ports[i], &es)) continue;
        st->dropped += es.imissed;
        st->nombuf += es.rx_nombuf;
        st->errors += es.ierrors;
    }
}

static void dpdk_report(capture_source *s)
{
    dpdk_source *d = (dpdk_source *)s;
    for (unsigned i = 0; i < d->n_ports; i++) {
        struct rte_eth_stats es;
        if (rte_eth_stats_get(d->ports[i], &es)) continue;
        nd_info("dpdk port %u: %" PRIu64 " packets, %" PRIu64 " missed (imissed), %" PRIu64
                " without mbuf (rx_nombuf), %" PRIu64 " errors",
                d->ports[i], es.ipackets, es.imissed, es.rx_nombuf, es.ierrors);
        for (unsigned k = 0; k < d->n_q; k++)
            if (d->q[k].port == d->ports[i] && d->q[k].queue < RTE_ETHDEV_QUEUE_STAT_CNTRS)
                nd_info("dpdk port %u queue %u: %" PRIu64 " packets", d->ports[i],
                        d->q[k].queue, es.q_ipackets[d->q[k].queue]);
    }
}

static void dpdk_close(capture_source *s)
{
    dpdk_source *d = (dpdk_source *)s;
    if (d->runner) capture_lcores_free(d->runner, NULL);
    release_held(d);
    for (unsigned i = 0; i < d->n_ports; i++) {
        rte_eth_dev_stop(d->ports[i]);
        rte_eth_dev_close(d->ports[i]);
    }
    rte_mempool_free(d->pool);
    rte_eal_cleanup();
    free(d);
}

static const capture_source_ops dpdk_ops = {dpdk_rx, dpdk_stats, dpdk_report, dpdk_close};

/* Splits text on blanks into argv (pointers into buf); returns the count or -1. */
static int split_args(char *buf, char **argv, int max, int argc)
{
    for (char *t = strtok(buf, " \t"); t; t = strtok(NULL, " \t")) {
        if (argc == max) return -1;
        argv[argc++] = t;
    }
    return argc;
}

static int port_setup(dpdk_source *d, uint16_t port, const capture_opts *o, nd_error *e)
{
    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc)
        return nd_error_set(e, rc, "dpdk port %u: no device info: %s", port, rte_strerror(-rc));
    uint16_t nq = (uint16_t)o->rx_queues;
    if (nq > info.max_rx_queues) {
        nd_warn("dpdk port %u (%s): %u rx queues asked, it has %u", port, info.driver_name, nq,
                info.max_rx_queues);
        nq = info.max_rx_queues;
    }
    if (d->n_q + nq > MAX_QUEUES) nq = (uint16_t)(MAX_QUEUES - d->n_q);
    struct rte_eth_conf conf = {0};
    /* The key of 0x6d5a repeated makes Toeplitz symmetric (Woo and Park, "Scalable TCP
     * Session Monitoring with Symmetric Receive-side Scaling", 2012): swapping source and
     * destination gives the same hash, so both directions of a flow reach one queue,
     * which the lcores need (each has its own flow table). DPDK 22.11 has no symmetric
     * hash function in rss_conf (only through rte_flow), the key works on every PMD. */
    uint8_t key[64];
    for (size_t i = 0; i < sizeof key; i += 2) key[i] = 0x6d, key[i + 1] = 0x5a;
    if (nq > 1) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
        if (info.hash_key_size && info.hash_key_size <= sizeof key) {
            conf.rx_adv_conf.rss_conf.rss_key = key;
            conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
        }
    }
    /* Queues hold whole flows: one queue, RSS with the symmetric key, or af_packet, whose
     * queues are sockets of one PACKET_FANOUT_HASH group (the kernel's flow hash orders
     * the addresses and ports first: symmetric). */
    d->whole = nq == 1 || !strcmp(info.driver_name, "net_af_packet") ||
               (conf.rx_adv_conf.rss_conf.rss_hf && conf.rx_adv_conf.rss_conf.rss_key);
    /* Capture needs no tx queue, but some PMDs refuse to start without one, and a
     * benchmark feeding a net_ring port loops its packets through tx queue 0. */
    uint16_t ntx = info.max_tx_queues ? 1 : 0;
    rc = rte_eth_dev_configure(port, nq, ntx, &conf);
    if (rc)
        return nd_error_set(e, rc, "dpdk port %u (%s): configure: %s", port, info.driver_name,
                            rte_strerror(-rc));
    uint16_t nb_rx = 1024, nb_tx = 512;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rx, &nb_tx);
    for (uint16_t q = 0; q < nq; q++) {
        rc = rte_eth_rx_queue_setup(port, q, nb_rx, (unsigned)rte_eth_dev_socket_id(port), NULL,
                                    d->pool);
        if (rc)
            return nd_error_set(e, rc, "dpdk port %u queue %u: %s", port, q, rte_strerror(-rc));
        d->q[d->n_q++] = (dpdk_queue){port, q};
    }
    for (uint16_t q = 0; q < ntx; q++) {
        rc =
            rte_eth_tx_queue_setup(port, q, nb_tx, (unsigned)rte_eth_dev_socket_id(port), NULL);
        if (rc)
            return nd_error_set(e, rc, "dpdk port %u tx queue %u: %s", port, q,
                                rte_strerror(-rc));
    }
    rc = rte_eth_dev_start(port);
    if (rc) return nd_error_set(e, rc, "dpdk port %u: start: %s", port, rte_strerror(-rc));
    if (o->promisc) rte_eth_promiscuous_enable(port); /* vdevs may refuse: fine */
    if (strcmp(info.driver_name, "net_pcap")) d->file_mode = 0;
    nd_debug("dpdk port %u: %s, %u rx queue(s)", port, info.driver_name, nq);
    return 0;
}

capture_source *capture_dpdk_open(const char *args, const capture_opts *o, nd_error *e)
{
    if (eal_used) {
        nd_error_set(e, ND_EUSAGE,
                     "dpdk:%s: only one dpdk: source per process (the EAL "
                     "starts once); put several --vdev/-a in one source",
                     args);
        return NULL;
    }
    eal_used = 1;
    const char *eal = o->dpdk_eal ? o->dpdk_eal : "";
    char *buf = malloc(strlen(args) + strlen(eal) + 2);
    dpdk_source *d = calloc(1, sizeof *d);
    if (!buf || !d) {
        free(buf);
        free(d);
        nd_error_set(e, -ENOMEM, "dpdk: out of memory");
        return NULL;
    }
    sprintf(buf, "%s %s", args, eal);
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = "netdiffus";
    /* EAL talks a lot at INFO; a later --log-level from the user wins. */
    if (nd_log_level() < ND_LOG_DEBUG) argv[argc++] = "--log-level=lib.*:warning";
    argc = split_args(buf, argv, MAX_ARGS, argc);
    if (argc < 0) {
        nd_error_set(e, ND_EUSAGE, "dpdk:%s: more than %d EAL arguments", args, MAX_ARGS);
        goto fail;
    }
    argv[argc] = NULL;
    /* Whether the input is a file: net_pcap with rx_pcap= ends when the file does. */
    d->file_mode = strstr(args, "rx_pcap=") != NULL;
    char *argv_copy[MAX_ARGS + 1]; /* rte_eal_init permutes argv */
    memcpy(argv_copy, argv, sizeof argv);
    if (rte_eal_init(argc, argv_copy) < 0) {
        nd_error_set(e, -EIO,
                     "dpdk:%s: EAL init failed: %s (for a test without NIC or "
                     "hugepages: --no-huge --no-pci -m 256 --no-shconf --vdev=...)",
                     args, rte_strerror(rte_errno));
        goto fail;
    }
    unsigned n = rte_eth_dev_count_avail();
    if (n == 0) {
        /* A vdev that fails to probe does not fail rte_eal_init. */
        nd_error_set(e, -ENODEV,
                     "dpdk:%s: no port came up (a --vdev failed to probe: "
                     "check its arguments and file names; or no NIC is bound to a DPDK "
                     "driver: dpdk-devbind.py --status)",
                     args);
        rte_eal_cleanup();
        goto fail;
    }
    d->pool = rte_pktmbuf_pool_create("nd_rx", o->mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                      (int)rte_socket_id());
    if (!d->pool) {
        nd_error_set(e, -ENOMEM,
                     "dpdk: mbuf pool of %u: %s (lower capture.mbufs or give "
                     "the EAL more memory with -m)",
                     o->mbufs, rte_strerror(rte_errno));
        rte_eal_cleanup();
        goto fail;
    }
    uint16_t port;
    RTE_ETH_FOREACH_DEV(port)
    {
        if (port_setup(d, port, o, e)) {
            d->ports[d->n_ports++] = port; /* so that close stops it */
            d->base.ops = &dpdk_ops;
            dpdk_close(&d->base);
            free(buf);
            return NULL;
        }
        d->ports[d->n_ports++] = port;
    }
    int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, NULL);
    d->ts_off = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, NULL);
    if (bit >= 0 && d->ts_off >= 0) {
        d->ts_flag = 1ull << bit;
        /* Only net_pcap's units are known (µs); file_mode implies every port is one. */
        d->ts_us = d->file_mode || strstr(args, "net_pcap") != NULL;
    }
    d->tsc_hz = rte_get_tsc_hz();
    d->tsc0 = rte_rdtsc();
    d->ns0 = nd_realtime_ns();
    d->base.ops = &dpdk_ops;
    d->base.linktype = CAPTURE_LINK_ETHERNET;
    d->base.live = !d->file_mode;
    d->lcores = o->lcores;
    free(buf);
    return &d->base;
fail:
    free(buf);
    free(d);
    return NULL;
}
