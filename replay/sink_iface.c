/*
 * sink_iface.c — the iface:NAME sink: packets onto a network interface through libpcap's
 * pcap_inject, one send per packet, each at its deadline. Timing error is measured right
 * after the send returns.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>

#include "replay_impl.h"

typedef struct sink_iface {
    sink_framed fr;
    pcap_t *pc;
    char name[64];
    uint64_t errors; /* failed sends (counted as drops) */
} sink_iface;

static int iface_send(replay_sink *s, uint32_t len, uint64_t deadline,
                      const replay_pkt_info *info, nd_error *e)
{
    sink_iface *f = (sink_iface *)s;
    int n = pcap_inject(f->pc, f->fr.frame, len);
    if (s->timed) sink_errhist_add(s->err, deadline, nd_now_ns());
    if (n != (int)len) {
        /* ENOBUFS and the like: the packet is lost, the replay goes on; an interface that
         * went away fails the run */
        const char *why = pcap_geterr(f->pc);
        if (errno == ENXIO || errno == ENODEV || errno == ENETDOWN)
            return nd_error_set(e, -errno, "iface:%s: %s", f->name, why);
        if (!f->errors++) nd_warn("iface:%s: send failed (%s); counting drops", f->name, why);
        s->drops++;
        return 0;
    }
    s->packets++;
    s->bytes += len;
    return 0;
}

static int iface_close(replay_sink *s, nd_error *e)
{
    sink_iface *f = (sink_iface *)s;
    pcap_close(f->pc);
    free(s->err);
    free(f);
    return 0;
}

/* The interface's speed as the kernel reports it (/sys/class/net/NAME/speed, Mbit/s), in
 * bit/s; 0 when it has none (veth, tun and some drivers report -1 or fail the read). */
static double iface_speed(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/class/net/%s/speed", name);
    FILE *f = fopen(path, "r");
    long mbps = 0;
    if (f && fscanf(f, "%ld", &mbps) != 1) mbps = 0;
    if (f) fclose(f);
    return mbps > 0 ? (double)mbps * 1e6 : 0;
}

static const sink_ops iface_ops = {"iface",         1,          sink_frame_alloc, iface_send,
                                   sink_flush_none, iface_close};

replay_sink *sink_iface_open(const char *name, nd_error *e)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    if (!*name || strlen(name) >= sizeof((sink_iface *)0)->name) {
        nd_error_set(e, ND_EUSAGE, "iface: needs an interface name (iface:NAME)");
        return NULL;
    }
    sink_iface *f = calloc(1, sizeof *f);
    if (!f || !(f->fr.base.err = calloc(1, sizeof *f->fr.base.err))) {
        free(f);
        nd_error_set(e, -ENOMEM, "out of memory");
        return NULL;
    }
    strcpy(f->name, name);
    f->pc = pcap_create(name, errbuf);
    if (!f->pc) {
        nd_error_set(e, -ENODEV, "iface:%s: %s", name, errbuf);
        goto fail;
    }
    /* we only send: a small capture buffer and snaplen keep the receive side cheap */
    pcap_set_snaplen(f->pc, 64);
    pcap_set_buffer_size(f->pc, 1 << 20);
    pcap_set_immediate_mode(f->pc, 1);
    int rc = pcap_activate(f->pc);
    if (rc < 0) {
        const char *why = rc == PCAP_ERROR_NO_SUCH_DEVICE ? "no such interface (see `ip link`)"
                          : rc == PCAP_ERROR_PERM_DENIED
                              ? "permission denied (needs root or CAP_NET_RAW)"
                          : rc == PCAP_ERROR_IFACE_NOT_UP ? "interface is down"
                                                          : pcap_geterr(f->pc);
        nd_error_set(e, rc == PCAP_ERROR_PERM_DENIED ? -EPERM : -ENODEV, "iface:%s: %s", name,
                     why);
        pcap_close(f->pc);
        goto fail;
    }
    if (pcap_datalink(f->pc) != DLT_EN10MB) {
        nd_error_set(e, ND_EUSAGE, "iface:%s: not an Ethernet interface (link type %s)", name,
                     pcap_datalink_val_to_name(pcap_datalink(f->pc)));
        pcap_close(f->pc);
        goto fail;
    }
    pcap_setdirection(f->pc, PCAP_D_IN); /* our own packets are not looped back to us */
    f->fr.base.ops = &iface_ops;
    f->fr.base.line_bps = iface_speed(name);
    return &f->fr.base;
fail:
    free(f->fr.base.err);
    free(f);
    return NULL;
}
