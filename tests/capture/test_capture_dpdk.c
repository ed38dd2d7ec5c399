/*
 * test_capture_dpdk.c — the same pcap through `pcap:` (libpcap) and through `dpdk:`
 * (net_pcap vdev, no hugepages, no PCI) gives identical windows, classes, groups and
 * counters. Its own process: the EAL starts once per process.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "pktgen.h"

static capture_ctx *capture(const char *spec, const capture_opts *opt, win_list *l)
{
    nd_error e = {0};
    int rc;
    capture_ctx *c = capture_into(spec, opt, l, &rc, &e);
    if (rc == -ENODEV || rc == -EIO) SKIP("DPDK cannot start here: %s", e.msg);
    if (rc) CHECK_FAIL_("capture_run %s: %s", spec, e.msg);
    return c;
}

int main(void)
{
    char file[64], spec[512];
    snprintf(file, sizeof file, "dpdk-%d.pcap", (int)getpid());
    write_mixed_pcap(file, 300, 20000, 120, 42);

    capture_opts opt;
    capture_opts_defaults(&opt);
    opt.window = 16;
    opt.channels = 4;
    opt.flow_capacity = 256; /* < flows: evictions on both paths */
    static const char *const rules[][2] = {{"tls", "tcp port 443"},
                                           {"dns", "vlan and udp port 53"}};
    opts_classes(&opt, 2, rules);

    win_list a, b;
    snprintf(spec, sizeof spec, "pcap:%s", file);
    capture_ctx *ca = capture(spec, &opt, &a);
    snprintf(spec, sizeof spec,
             "dpdk:--no-huge --no-pci -m 256 --no-shconf --no-telemetry "
             "--vdev=net_pcap0,rx_pcap=%s",
             file);
    capture_ctx *cb = capture(spec, &opt, &b);

    CHECK(a.n > 100);
    win_list_check_equal(&b, &a, "dpdk against pcap");
    ctx_counters_check_equal(ca, cb, "pcap vs dpdk");
    for (uint32_t k = 0; k < capture_ctx_n_classes(ca); k++) {
        const nd_class_stats *sa = capture_ctx_class_stats(ca, k);
        CHECK(sa->flows > 0);
        nd_class_stats copy = *sa;
        CHECK(!memcmp(&copy, capture_ctx_class_stats(cb, k), sizeof copy));
    }
    /* The mix has every kind of skip, and classes got flows. */
    CHECK(ctx_counter(ca, "flow.evicted") > 0);
    CHECK(ctx_counter(ca, "parse.truncated_l4") + ctx_counter(ca, "parse.truncated_ipv4") +
              ctx_counter(ca, "parse.truncated_ipv6") >
          0);
    CHECK(capture_ctx_class_windows(ca, 0) > 0 && capture_ctx_class_windows(ca, 1) > 0);
    printf("ok: %zu identical windows\n", a.n);
    capture_ctx_free(ca);
    capture_ctx_free(cb);
    win_list_free(&a);
    win_list_free(&b);
    unlink(file);
    return 0;
}
