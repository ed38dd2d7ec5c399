/*
 * sink_dpdk.c — the dpdk:EAL-ARGS sink: frames built straight into mbufs and sent in
 * bursts of 32 on the first port the EAL probes (or port N: `dpdk:port=N EAL-ARGS`), one
 * tx queue per EAL lcore (`-l 0-3` gives four): queue q is fed by its own scheduler on
 * lcore q, over the flows whose number is q modulo the queue count (replay_run launches
 * them). The server side of a two-sided replay is a second port of the same EAL
 * (`dpdk:port=N`, or `dpdk:` for the next port after the client side's): its queue q is
 * fed by the same scheduler as the client side's queue q.
 *
 * Our own mempool is zeroed once and we never write past PKT_HDR_MAX bytes of a frame,
 * so payload bytes stay zero and only the header area is rewritten per packet (headers
 * are generated for every packet, never cached). IPv4/TCP/UDP checksums go to the NIC
 * when the port offers all three offloads. What tx_burst does not take within 100 us
 * is freed and counted as dropped.
 */
#include <errno.h>
#include <stdlib.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "replay_impl.h"

#define DPDK_BURST           32
#define DPDK_MBUFS_PER_QUEUE 8192
#define DPDK_TX_DESC         1024
#define DPDK_RETRY_NS        100000
#define DPDK_MAX_ARGS        64
#define DPDK_MAX_QUEUES      64

typedef struct dpdk_port dpdk_port;

/* One tx queue: the replay_sink its scheduler writes to. */
typedef struct sink_dpdk {
    replay_sink base;
    dpdk_port *pt;
    uint16_t txq;
    struct rte_mbuf *pre[DPDK_BURST]; /* allocated in bulk, handed out one by one */
    uint32_t n_pre, next_pre;
    struct rte_mbuf *cur;
    struct rte_mbuf *burst[DPDK_BURST];
    uint64_t deadline[DPDK_BURST];
    uint32_t n;
} __attribute__((aligned(64))) sink_dpdk; /* queues on other cores share no cache line */

struct dpdk_port {
    uint16_t port;
    int started;
    struct rte_mempool *mp, *rx_mp; /* rx_mp: only for PMDs that need an rx queue */
    uint64_t csum_flags;            /* tx offloads enabled on the port */
    uint32_t nq;
    unsigned lcore[DPDK_MAX_QUEUES];
    sink_dpdk *q[DPDK_MAX_QUEUES];
};

static int eal_used;        /* one EAL per process, and it cannot start twice */
static uint32_t eal_ports;  /* ports open on it: the last one to close cleans the EAL up */
static int eal_client = -1; /* the client side's port, while open */

static uint8_t *dpdk_alloc(replay_sink *s, uint32_t len, const replay_pkt_info *info,
                           nd_error *e)
{
    sink_dpdk *d = (sink_dpdk *)s;
    if (d->next_pre == d->n_pre) {
        if (rte_pktmbuf_alloc_bulk(d->pt->mp, d->pre, DPDK_BURST)) {
            if (s->ops->flush(s, e)) return NULL;
            if (rte_pktmbuf_alloc_bulk(d->pt->mp, d->pre, DPDK_BURST)) {
                nd_error_set(e, -ENOBUFS, "dpdk: mbuf pool exhausted");
                return NULL;
            }
        }
        d->n_pre = DPDK_BURST;
        d->next_pre = 0;
    }
    d->cur = d->pre[d->next_pre++];
    return rte_pktmbuf_mtod(d->cur, uint8_t *);
}

static int dpdk_flush(replay_sink *s, nd_error *e)
{
    sink_dpdk *d = (sink_dpdk *)s;
    if (!d->n) return 0;
    const uint16_t port = d->pt->port;
    uint32_t sent = rte_eth_tx_burst(port, d->txq, d->burst, (uint16_t)d->n);
    uint64_t now = s->timed || sent < d->n ? nd_now_ns() : 0;
    if (sent < d->n) { /* ring full: retry a little while, then give up on the rest */
        uint64_t until = now + DPDK_RETRY_NS;
        while (sent < d->n && now < until) {
            sent += rte_eth_tx_burst(port, d->txq, d->burst + sent, (uint16_t)(d->n - sent));
            now = nd_now_ns();
        }
    }
    for (uint32_t i = 0; i < sent; i++) {
        s->bytes += d->burst[i]->pkt_len;
        if (s->timed) sink_errhist_add(s->err, d->deadline[i], now);
    }
    s->packets += sent;
    if (sent < d->n) {
        rte_pktmbuf_free_bulk(d->burst + sent, d->n - sent);
        s->drops += d->n - sent;
    }
    d->n = 0;
    return 0;
}

static int dpdk_send(replay_sink *s, uint32_t len, uint64_t deadline,
                     const replay_pkt_info *info, nd_error *e)
{
    sink_dpdk *d = (sink_dpdk *)s;
    struct rte_mbuf *m = d->cur;
    m->data_len = (uint16_t)len;
    m->pkt_len = len;
    if (d->pt->csum_flags) {
        m->l2_len = info->vlan ? 18 : 14;
        m->l3_len = info->ipv6 ? 40 : 20;
        m->ol_flags =
            (info->ipv6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM) |
            (info->l4 == ND_L4_TCP ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
    }
    d->burst[d->n] = m;
    d->deadline[d->n++] = deadline;
    d->cur = NULL;
    return d->n == DPDK_BURST ? dpdk_flush(s, e) : 0;
}

static uint32_t dpdk_n_queues(replay_sink *s) { return ((sink_dpdk *)s)->pt->nq; }

static replay_sink *dpdk_queue(replay_sink *s, uint32_t q)
{
    dpdk_port *pt = ((sink_dpdk *)s)->pt;
    ND_ASSERT(q < pt->nq);
    return &pt->q[q]->base;
}

static void dpdk_launch(replay_sink *s, uint32_t q, int (*fn)(void *), void *arg)
{
    dpdk_port *pt = ((sink_dpdk *)s)->pt;
    ND_ASSERT(q > 0 && q < pt->nq);
    int rc = rte_eal_remote_launch(fn, arg, pt->lcore[q]);
    ND_ASSERT(rc == 0); /* our own worker lcores, idle between runs */
}

static void dpdk_wait(replay_sink *s) { rte_eal_mp_wait_lcore(); }

static void port_free(dpdk_port *pt)
{
    for (uint32_t i = 0; i < DPDK_MAX_QUEUES; i++)
        if (pt->q[i]) {
            free(pt->q[i]->base.err);
            free(pt->q[i]);
        }
    free(pt);
}

static int dpdk_close(replay_sink *s, nd_error *e)
{
    dpdk_port *pt = ((sink_dpdk *)s)->pt;
    int rc = 0;
    for (uint32_t i = 0; i < pt->nq; i++) {
        sink_dpdk *d = pt->q[i];
        int r = pt->started ? dpdk_flush(&d->base, e) : 0;
        if (!rc) rc = r;
        if (d->next_pre < d->n_pre)
            rte_pktmbuf_free_bulk(d->pre + d->next_pre, d->n_pre - d->next_pre);
    }
    if (pt->started) {
        /* let the PMD finish what it queued before the port goes down */
        sched_wait_until(nd_now_ns() + 10000000ull, 10000000ull, NULL);
        rte_eth_dev_stop(pt->port);
    }
    rte_eth_dev_close(pt->port);
    rte_mempool_free(pt->mp);
    rte_mempool_free(pt->rx_mp);
    if (eal_client == (int)pt->port) eal_client = -1;
    if (!--eal_ports) rte_eal_cleanup();
    port_free(pt);
    return rc;
}

static const sink_ops dpdk_ops = {"dpdk",      1,          dpdk_alloc,    dpdk_send,
                                  dpdk_flush,  dpdk_close, dpdk_n_queues, dpdk_queue,
                                  dpdk_launch, dpdk_wait};

static void zero_mbuf(struct rte_mempool *mp, void *opaque, void *obj, unsigned idx)
{
    struct rte_mbuf *m = obj;
    memset(m->buf_addr, 0, m->buf_len);
}

/* "port=N" at the start of args: N into *port and args past it; 0, or -1 when args has
 * no such token (a number out of range is ND_EUSAGE with e filled). */
static int take_port(const char **args, uint16_t *port, nd_error *e)
{
    const char *a = *args + strspn(*args, " \t");
    if (strncmp(a, "port=", 5)) return -1;
    char *end;
    unsigned long v = strtoul(a + 5, &end, 10);
    if (end == a + 5 || (*end && *end != ' ' && *end != '\t') || v >= RTE_MAX_ETHPORTS)
        return nd_error_set(e, ND_EUSAGE, "dpdk: port=%.*s: expected a port number below %d",
                            (int)strcspn(a + 5, " \t"), a + 5, RTE_MAX_ETHPORTS);
    *port = (uint16_t)v;
    *args = end;
    return 0;
}

static replay_sink *port_open(uint16_t port, nd_error *e);

replay_sink *sink_dpdk_open(const char *args, int server, nd_error *e)
{
    uint16_t port = 0;
    int named = take_port(&args, &port, e);
    if (named > 0) return NULL;
    const int eal_args = args[strspn(args, " \t")] != 0;
    if (server) {
        /* a second port of the client side's EAL: no EAL arguments of its own */
        if (eal_client < 0) {
            nd_error_set(e, ND_EUSAGE,
                         "dpdk: the server side is a port of the client side's EAL: give the "
                         "client side as dpdk:EAL-ARGS");
            return NULL;
        }
        if (eal_args) {
            nd_error_set(e, ND_EUSAGE,
                         "dpdk:%s: the server side takes no EAL arguments (the client side's "
                         "start the EAL): dpdk:port=N, or dpdk: for the next port",
                         args);
            return NULL;
        }
        if (named < 0) { /* the next port after the client side's */
            port = rte_eth_find_next((uint16_t)(eal_client + 1));
            if (port >= RTE_MAX_ETHPORTS) {
                nd_error_set(e, -ENODEV,
                             "dpdk: no port after the client side's port %d for the server "
                             "side (probe two: two -a or --vdev)",
                             eal_client);
                return NULL;
            }
        }
        if (port == eal_client) {
            nd_error_set(e, ND_EUSAGE, "dpdk: port %u is the client side already", port);
            return NULL;
        }
        return port_open(port, e);
    }
    if (eal_used) {
        nd_error_set(e, ND_EUSAGE, "dpdk: only one DPDK sink per process (one EAL)");
        return NULL;
    }
    char *copy = strdup(args), *argv[DPDK_MAX_ARGS + 3];
    if (!copy) {
        nd_error_set(e, -ENOMEM, "out of memory");
        return NULL;
    }
    int argc = 0;
    argv[argc++] = "netdiffus";
    argv[argc++] = "--log-level=warning"; /* the user's arguments come after and win */
    for (char *save = NULL, *t = strtok_r(copy, " \t", &save); t;
         t = strtok_r(NULL, " \t", &save)) {
        if (argc == DPDK_MAX_ARGS + 2) {
            nd_error_set(e, ND_EUSAGE, "dpdk: more than %d EAL arguments", DPDK_MAX_ARGS);
            free(copy);
            return NULL;
        }
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    eal_used = 1;
    if (rte_eal_init(argc, argv) < 0) {
        nd_error_set(e, -ENODEV, "dpdk: EAL initialisation failed with '%s': %s", args,
                     rte_strerror(rte_errno));
        free(copy);
        return NULL;
    }
    free(copy);
    if (rte_eth_dev_count_avail() == 0) {
        nd_error_set(e, -ENODEV,
                     "dpdk: no port after EAL init with '%s' (did the --vdev or device probe? "
                     "see the EAL messages above)",
                     args);
        rte_eal_cleanup();
        return NULL;
    }
    if (named < 0) RTE_ETH_FOREACH_DEV(port) break;
    replay_sink *s = port_open(port, e);
    if (!s) {
        if (!eal_ports) rte_eal_cleanup();
        return NULL;
    }
    eal_client = port;
    return s;
}

/* Port port of the running EAL with a tx queue per lcore; NULL with e filled. */
static replay_sink *port_open(uint16_t port, nd_error *e)
{
    dpdk_port *pt = calloc(1, sizeof *pt);
    if (!pt) {
        nd_error_set(e, -ENOMEM, "out of memory");
        return NULL;
    }
    if (!rte_eth_dev_is_valid_port(port)) {
        nd_error_set(e, -ENODEV, "dpdk: no port %u (the EAL probed %u)", port,
                     rte_eth_dev_count_avail());
        goto fail_free;
    }
    pt->port = port;

    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc) {
        nd_error_set(e, rc, "dpdk: port %u: no device info: %s", port, rte_strerror(-rc));
        goto fail_free;
    }
    /* one tx queue per lcore: the main lcore, then the workers in order */
    uint32_t nq = rte_lcore_count();
    if (nq > info.max_tx_queues) nq = info.max_tx_queues;
    if (nq > DPDK_MAX_QUEUES) nq = DPDK_MAX_QUEUES;
    if (nq < rte_lcore_count())
        nd_warn("dpdk: port %u has %u tx queues: %u of the %u lcores are used", port, nq, nq,
                rte_lcore_count());
    unsigned lc;
    pt->lcore[pt->nq++] = rte_get_main_lcore();
    RTE_LCORE_FOREACH_WORKER(lc)
    {
        if (pt->nq == nq) break;
        pt->lcore[pt->nq++] = lc;
    }

    int socket =
        rte_eth_dev_socket_id(port) < 0 ? (int)rte_socket_id() : rte_eth_dev_socket_id(port);
    char name[32];
    snprintf(name, sizeof name, "nd_replay_tx%u", port); /* pool names are EAL-wide */
    pt->mp = rte_pktmbuf_pool_create(name, DPDK_MBUFS_PER_QUEUE * pt->nq - 1, 256, 0,
                                     RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (!pt->mp) {
        nd_error_set(e, -ENOMEM, "dpdk: cannot create the mbuf pool: %s (more memory: -m)",
                     rte_strerror(rte_errno));
        goto fail_free;
    }
    rte_mempool_obj_iter(pt->mp, zero_mbuf, NULL);

    const uint64_t want = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
                          RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    if ((info.tx_offload_capa & want) == want) {
        conf.txmode.offloads = want;
        pt->csum_flags = want;
    }
    /* no rx queue, unless the PMD wants queue pairs (net_tap): then queues that are never
     * polled, on their own small pool so that received data never lands in ours */
    uint16_t n_rx = 0;
    if (rte_eth_dev_configure(port, 0, (uint16_t)pt->nq, &conf) < 0) {
        n_rx = (uint16_t)pt->nq;
        if ((rc = rte_eth_dev_configure(port, n_rx, (uint16_t)pt->nq, &conf)) < 0) {
            nd_error_set(e, rc, "dpdk: port %u: configure: %s", port, rte_strerror(-rc));
            goto fail_pool;
        }
    }
    uint16_t nb_rx = n_rx ? 256 : 0, nb_tx = DPDK_TX_DESC;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rx, &nb_tx);
    if (n_rx) {
        snprintf(name, sizeof name, "nd_replay_rx%u", port);
        pt->rx_mp = rte_pktmbuf_pool_create(name, 1024u * n_rx - 1, 0, 0,
                                            RTE_MBUF_DEFAULT_BUF_SIZE, socket);
        if (!pt->rx_mp) {
            nd_error_set(e, -ENOMEM, "dpdk: cannot create the rx pool: %s",
                         rte_strerror(rte_errno));
            goto fail_port;
        }
    }
    for (uint16_t q = 0; q < n_rx; q++)
        if ((rc = rte_eth_rx_queue_setup(port, q, nb_rx, (unsigned)socket, NULL, pt->rx_mp)) <
            0) {
            nd_error_set(e, rc, "dpdk: port %u: rx queue %u: %s", port, q, rte_strerror(-rc));
            goto fail_port;
        }
    struct rte_eth_txconf txc = info.default_txconf;
    txc.offloads = conf.txmode.offloads;
    for (uint16_t q = 0; q < pt->nq; q++) {
        if ((rc = rte_eth_tx_queue_setup(port, q, nb_tx, (unsigned)socket, &txc)) < 0) {
            nd_error_set(e, rc, "dpdk: port %u: tx queue %u: %s", port, q, rte_strerror(-rc));
            goto fail_port;
        }
        sink_dpdk *d = aligned_alloc(64, sizeof *d);
        if (!d) goto nomem;
        memset(d, 0, sizeof *d);
        pt->q[q] = d;
        if (!(d->base.err = calloc(1, sizeof *d->base.err))) goto nomem;
        d->base.ops = &dpdk_ops;
        d->base.build_flags = PKT_ZERO_TAIL | (pt->csum_flags ? PKT_CSUM_OFFLOAD : 0);
        d->pt = pt;
        d->txq = q;
    }
    if ((rc = rte_eth_dev_start(port)) < 0) {
        nd_error_set(e, rc, "dpdk: port %u: start: %s", port, rte_strerror(-rc));
        goto fail_port;
    }
    pt->started = 1;
    nd_info("dpdk: port %u (%s), %u tx queue%s on lcores %u..%u, checksums %s", port,
            info.driver_name, pt->nq, pt->nq > 1 ? "s" : "", pt->lcore[0],
            pt->lcore[pt->nq - 1], pt->csum_flags ? "offloaded" : "in software");
    eal_ports++;
    return &pt->q[0]->base;

nomem:
    nd_error_set(e, -ENOMEM, "out of memory");
fail_port:
    rte_eth_dev_close(port);
fail_pool:
    rte_mempool_free(pt->mp);
    rte_mempool_free(pt->rx_mp);
fail_free:
    port_free(pt);
    return NULL;
}
