#!/usr/bin/env python3
"""Writes the fuzz seeds in tests/fuzz/seeds/ from the layout in docs/FORMATS.md alone
(no netdiffus code), so that the seeds also check the document: netdiffus must read them.
Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import os
import struct
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
MAGIC = b"\x89NDF\r\n\x1a\n"
# STAT record layout 2: layout 0's fields, then the arrivals (inputs, 252 gap buckets, their
# sum, flows and covered time per hour of the day), then the durations (992 buckets, sum)
STAT_RECORD = 8 * (2 * 1519 + 2 * 64 + 2 * 256 + 3 + 1 + 32 + 8 + 3 + 1 + 252 + 1 + 48 +
                   992 + 1) + \
    2 * (32 + 8)


def container(kind, sections):
    body = b""
    for tag, payload in sections:
        hdr_tl = tag + struct.pack("<Q", len(payload))
        crc = zlib.crc32(hdr_tl[4:12], zlib.crc32(hdr_tl[0:4], zlib.crc32(payload)))
        body += tag + struct.pack("<IQ", crc, len(payload)) + payload
        body += b"\0" * (-len(payload) % 8)
    size = 40 + len(body)
    head = MAGIC + struct.pack("<I4sIIQI", 1, kind, len(sections), 0, size, 0)
    return head + struct.pack("<I", zlib.crc32(head)) + body


def name(s, width=64):
    b = s.encode()
    return b + b"\0" * (width - len(b))


def dataset(C=2, L=4, classes=("web", "dns"), labels=(0, 1, 0)):
    N, K = len(labels), len(classes)
    meta = struct.pack("<IIQQII", C, L, 500_000_000, N, K, 0)
    meta += b"".join(name(n) for n in ["bytes_down", "bytes_up", "pkts_down"][:C])
    stat = struct.pack("<II", STAT_RECORD, 2)
    for k in range(K):
        rec = bytearray(STAT_RECORD)
        struct.pack_into("<Q", rec, 8 * 1500, 10 + k)  # size_hist[down][1500]
        stat += bytes(rec)
    vals = b"".join(struct.pack("<f", float(i)) for i in range(N * C * L))
    return container(b"NDDS", [
        (b"META", meta),
        (b"CLAS", b"".join(name(c) for c in classes)),
        (b"STAT", stat),
        (b"VALS", vals),
        (b"LABL", b"".join(struct.pack("<H", l) for l in labels)),
        (b"GRUP", b"".join(struct.pack("<Q", i) for i in range(N))),
        (b"CNTR", name("flow.evicted", 48) + struct.pack("<Q", 3)),
        (b"CONF", b"capture:\n  bin: 500ms\n"),
    ])


def eth_ipv4_tcp(vlan=False, syn=True):
    """Ethernet (optionally one VLAN tag), IPv4, TCP with an MSS option."""
    tcp = struct.pack(">HHIIBBHHH", 40000, 443, 1, 0, 6 << 4, 0x02 if syn else 0x10, 65535,
                      0, 0) + struct.pack(">BBH", 2, 4, 1460)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 7, 0, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    eth = b"\x02" * 6 + b"\x04" * 6
    eth += struct.pack(">HH", 0x8100, 42) if vlan else b""
    return eth + b"\x08\x00" + ip + tcp


def ipv6_frag_udp():
    """Bare IPv6 with a fragment header (first fragment) before UDP."""
    udp = struct.pack(">HHHH", 5353, 53, 12, 0) + b"abcd"
    frag = struct.pack(">BBHI", 17, 0, 0x0001, 99)
    ip = struct.pack(">IHBB", 6 << 28, len(frag) + len(udp), 44, 64)
    return ip + b"\x20\x01" + b"\0" * 13 + b"\x01" + b"\x20\x01" + b"\0" * 13 + b"\x02" + frag + udp


def ipv4_later_fragment():
    """Bare IPv4, a non-first fragment of UDP."""
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28, 7, 100, 64, 17, 0, bytes([10, 0, 0, 1]),
                       bytes([10, 0, 0, 2])) + b"\0" * 8


def pcap(packets, link=1, nano=False, swapped=False):
    """A classic pcap file: µs or ns timestamps, either byte order."""
    e = ">" if swapped else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, link)
    for i, p in enumerate(packets):
        out += struct.pack(e + "IIII", 1700000000 + i, 1000 * i, len(p), len(p) + 4) + p
    return out


def pcapng(packets):
    """A pcapng file: section header, one Ethernet interface, enhanced packet blocks."""
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 0))
    for i, p in enumerate(packets):
        out += block(6, struct.pack("<IIIII", 0, 0, 1000 * i, len(p), len(p)) + p)
    return out


def packets(*recs):
    """fuzz_parse's input: [link index, length (2 bytes LE), bytes] per packet."""
    return b"".join(struct.pack("<BH", link, len(p)) + p for link, p in recs)


def ws_frame(kind, payload):
    """A frame of the window stream: type, length, payload, CRC-32 of all before it."""
    head = struct.pack("<II", kind, len(payload)) + payload
    return head + struct.pack("<I", zlib.crc32(head))


def ws_hello(version=2, C=2, L=4, bin_ns=1_000_000_000, first=0, sender="host-a",
             classes=("dns", "web")):
    p = b"NDWS" + struct.pack("<HHIQQI", version, C, L, bin_ns, first, len(classes))
    for n in (sender,) + tuple(classes):
        p += bytes([len(n)]) + n.encode()
    return ws_frame(1, p)


def ws_window(cls, group, seq, values):
    return ws_frame(2, struct.pack("<IIQQ", cls, 0, group, seq) +
                    struct.pack("<%df" % len(values), *values))


def ws_stream():
    stats = struct.pack("<II", 1, STAT_RECORD) + b"\0" * STAT_RECORD
    return (ws_hello(first=10) + ws_window(0, 7, 10, [0, 1500, 0, 3] + [60] * 4) +
            ws_window(1, 8, 12, [1.5] * 8) + ws_frame(3, stats) +
            ws_frame(4, struct.pack("<Q", 13)))


def main():
    os.makedirs(HERE, exist_ok=True)
    d = dataset()
    seeds = {
        "ndf-dataset.bin": d,
        "ndf-dataset-1ch.bin": dataset(C=1, L=1, classes=("a",), labels=()),
        "ndf-truncated.bin": d[: len(d) // 2],
        "ndf-model-empty.bin": container(b"NDMD", []),
        "ndf-two-sections.bin": container(b"NDMD", [(b"AAAA", b""), (b"BBBB", b"hello")]),
        "ndf-bad-label.bin": dataset(labels=(0, 5)),
        "csv-basic.csv": b"class,bytes_down_0,bytes_down_1,bytes_up_0,bytes_up_1\n"
                         b"web,1500,0,60,0\n\"video,hd\",1e6,-0,2.5,0.100000001\n",
        "csv-crlf-bom.csv": b"\xef\xbb\xbfclass,x_0\r\n\r\n\"say \"\"hi\"\"\", 7 \r\n",
        "csv-short-row.csv": b"class,a_0,a_1\nweb,1\n",
        "csv-bad-header.csv": b"class,a_0,a_2\n",
        # fuzz_pcap (also the edge-case captures of ../shared when scripts/fuzz runs)
        "pcap-eth.pcap": pcap([eth_ipv4_tcp(), eth_ipv4_tcp(vlan=True, syn=False)]),
        "pcap-raw-ns-swapped.pcap": pcap([ipv6_frag_udp(), ipv4_later_fragment()], link=101,
                                         nano=True, swapped=True),
        "pcap-cut.pcap": pcap([eth_ipv4_tcp()])[:-10],
        "pcapng-eth.pcapng": pcapng([eth_ipv4_tcp(), eth_ipv4_tcp(syn=False)]),
        # fuzz_parse: link indexes 0 Ethernet, 1 raw, 2 Linux cooked, 4 BSD loopback
        "pkt-flows.bin": packets((0, eth_ipv4_tcp()), (0, eth_ipv4_tcp(vlan=True, syn=False)),
                                 (1, ipv6_frag_udp()), (1, ipv4_later_fragment()),
                                 (2, b"\0" * 14 + b"\x08\x00" + eth_ipv4_tcp()[14:]),
                                 (4, b"\x02\0\0\0" + eth_ipv4_tcp()[14:])),
        # fuzz_conf (the example configs are seeds too)
        "yaml-small.yaml": b"capture:\n  bin: 500ms\n  window: 16\nclasses:\n"
                           b"  - {name: web, filter: tcp port 443}\nmodel:\n  base_channels: 8\n",
        "yaml-anchors.yaml": b"a: &x [1, 2]\nmodel: {channel_mult: *x}\n",
        # fuzz_http
        "http-get.txt": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: */*\r\n\r\n",
        "http-head-lf.txt": b"HEAD /metrics?x=1 HTTP/1.0\nUser-Agent: t\n\n",
        "http-post.txt": b"POST /other HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        # fuzz_wstream: a sender's stream, and one of a version the trainer does not read (the
        # release before STAT layout 2: version 1)
        "ws-stream.bin": ws_stream(),
        "ws-version1.bin": ws_hello(version=1) + ws_window(0, 1, 0, [0] * 8),
    }
    for fname, data in seeds.items():
        with open(os.path.join(HERE, fname), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
