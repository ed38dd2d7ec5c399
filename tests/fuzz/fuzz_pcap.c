/*
 * fuzz_pcap.c — fuzz target for the pcap/pcapng file reader (capture/source_file.c, and
 * libpcap behind it for what it hands on): the bytes become a file in memory that a
 * "pcap:" source reads to its end, as `capture` and `live` read files; every packet goes
 * through the parser. The reader must end with CAPTURE_END or an error that names the
 * file, and never hand over more than the snapshot length.
 * libFuzzer target with ND_LIBFUZZER=ON; otherwise replay_main.c runs it over seeds.
 */
#include "capture.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], spec[80];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0) return 0;
    snprintf(spec, sizeof spec, "pcap:%s", path);
    capture_opts o;
    capture_opts_defaults(&o);
    o.snaplen = 1600; /* below some records' caplen: the cut path too */
    nd_error e = {0};
    capture_source *s = capture_source_open(spec, &o, &e);
    if (!s) {
        if (!e.code || !strstr(e.msg, path)) abort();
        return 0;
    }
    int link = capture_source_linktype(s);
    capture_pkt pkts[32];
    /* a record takes at least 16 bytes (pcapng: 12 of a block), so the reader must end
     * within size / 12 packets and as many empty bursts */
    uint64_t got = 0, calls = 0, limit = size / 12 + 8;
    for (;;) {
        int n = capture_source_rx(s, pkts, 32, 0, &e);
        if (n == CAPTURE_END) break;
        if (n < 0) {
            if (!e.code) abort();
            break;
        }
        for (int i = 0; i < n; i++) {
            if (pkts[i].caplen > o.snaplen) abort();
            parse_info info;
            parse_packet(pkts[i].data, pkts[i].caplen, link, &info);
        }
        got += (uint64_t)n;
        if (got > limit || ++calls > 2 * limit) abort(); /* a reader that never ends */
    }
    capture_source_close(s);
    return 0;
}
