#!/usr/bin/env python3
"""Writes the fuzz seeds in tests/fuzz/seeds/ from the layout in docs/FORMATS.md alone
(no netdiffus code), so that the seeds also check the document: netdiffus must read them.
Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import os
import struct
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
MAGIC = b"\x89NDF\r\n\x1a\n"
STAT_RECORD = 8 * (2 * 1519 + 2 * 64 + 2 * 256 + 3 + 1 + 32 + 8 + 3) + 2 * (32 + 8)


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
    stat = struct.pack("<II", STAT_RECORD, 0)
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
    }
    for fname, data in seeds.items():
        with open(os.path.join(HERE, fname), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
