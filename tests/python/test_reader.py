"""The Python reader (python/netdiffus) against the program: a dataset's arrays, labels,
groups and class names equal what `netdiffus export --csv` writes, bit for bit; a model's
settings and named weights are consistent with its file; a truncated, damaged, foreign,
newer or inconsistent file raises netdiffus.FormatError naming the file, the section and
the problem."""
import csv
import struct
import sys
import zlib

from common import CLASSES, Run, check, need

need("numpy")
import numpy as np  # noqa: E402

import netdiffus  # noqa: E402


def expect_error(path, reason, section=None, reader=netdiffus.read_ndd):
    try:
        reader(path)
    except netdiffus.FormatError as e:
        check(e.reason == reason and e.section == section and e.path == path
              and str(e).startswith(path + ": "),
              f"{path}: got {e.reason!r} in {e.section!r}: {e}; expected {reason!r} in "
              f"{section!r}")
        return str(e)
    check(False, f"{path}: read without an error, expected {reason!r}")


def rewrite(src, dst, edit):
    """src's bytes through edit (a function of a bytearray) into dst."""
    with open(src, "rb") as f:
        b = bytearray(f.read())
    edit(b)
    with open(dst, "wb") as f:
        f.write(b)
    return dst


def section_at(b, tag):
    """The offset of the first section tag's header in container bytes b."""
    off = 40
    while off < len(b):
        n = struct.unpack_from("<Q", b, off + 8)[0]
        if b[off:off + 4] == tag:
            return off, n
        off += 16 + n + (-n % 8)
    raise KeyError(tag)


def fix_crc(b, off, n):
    crc = zlib.crc32(b[off + 8:off + 16], zlib.crc32(b[off:off + 4],
                                                      zlib.crc32(b[off + 16:off + 16 + n])))
    struct.pack_into("<I", b, off + 4, crc)


def main():
    run = Run()
    ndd = run.dataset()
    d = netdiffus.read_ndd(ndd)

    # against `export --csv`: the header's channels and bins, and per row the class name
    # and every value (%.9g reads back as the same float32)
    out = run.path("export.csv")
    run(0, "export", ndd, "--csv", out)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    n, C, L = d.x.shape
    check((n, C, L) == (12, 2, 8), f"shape {d.x.shape}")
    check(d.x.dtype == np.float32, f"dtype {d.x.dtype}")
    check(header == ["class"] + [f"{c}_{i}" for c in d.channel_names for i in range(L)],
          f"CSV header {header} against channels {d.channel_names}")
    check(len(rows) == n, f"{len(rows)} CSV rows, {n} windows")
    check(sorted(d.class_names) == sorted(CLASSES), f"class names {d.class_names}")
    csv_x = np.array([[np.float32(v) for v in r[1:]] for r in rows], dtype=np.float32)
    check(np.array_equal(csv_x.view(np.uint32), d.x.reshape(n, C * L).view(np.uint32)),
          "the reader's values differ from export --csv's")
    check([r[0] for r in rows] == [d.class_names[k] for k in d.labels],
          "the reader's labels differ from export --csv's class column")
    check(d.labels.dtype == np.int64 and d.groups.dtype == np.uint64, "label/group dtypes")
    # the CSV importer gives row k group k (docs/FORMATS.md, Series CSV)
    check(np.array_equal(d.groups, np.arange(n, dtype=np.uint64)), f"groups {d.groups}")
    check(d.bin_ns == 1_000_000_000, f"bin width {d.bin_ns}")

    # a model: settings, and named weights that fill the stored parameter count
    ndm = run.model(ndd, steps=3)
    m = netdiffus.read_ndm(ndm)
    net = m.settings["net"]
    check(m.step == 3 and m.class_names == d.class_names
          and m.channel_names == d.channel_names, f"model header {m}")
    check(net["channels"] == 2 * C and net["L"] == L and net["mult"] == [1, 2]
          and net["coords"] == 1 and net["context"] == 1 and net["position"] == 1
          and net["attn_min_res"] == 4, f"net settings {net}")
    check(sum(v.size for v in m.ema.values()) == m.settings["n_params"]
          and list(m.ema) == list(m.weights), "weights do not fill the parameter count")
    # conv_in: the image, the context planes (image channels + 1), the coordinate planes
    check(m.ema["conv_in.weight"].shape == (8, 2 * C + (2 * C + 1) + 2, 3, 3)
          and m.ema["cemb.table"].shape == (5, 16) and m.ema["pemb.table"].shape == (7, 16)
          and m.ema["mid.attn.qkv.weight"].shape == (48, 16, 1, 1), "weight shapes")
    check(not np.array_equal(m.ema["conv_in.weight"], m.weights["conv_in.weight"]),
          "EMA and trained weights are the same section")
    check(m.scales.shape == (3, C, 2) and m.settings["train"]["batch"] == 4,
          f"scales {m.scales.shape}, train {m.settings['train']}")

    # what the readers refuse
    with open(ndd, "rb") as f:
        size = len(f.read())
    for cut in sorted({0, 1, 7, 8, 39, 40, 41, 100, size // 2, size - 1}
                      | set(range(0, size, 997))):
        expect_error(rewrite(ndd, run.path("cut.ndd"), lambda b: b.__delitem__(
            slice(cut, None))), "truncated")
    with open(ndm, "rb") as f:
        msize = len(f.read())
    expect_error(rewrite(ndm, run.path("cut.ndm"), lambda b: b.__delitem__(
        slice(msize - 5, None))), "truncated", reader=netdiffus.read_ndm)
    expect_error(rewrite(ndd, run.path("foreign.ndd"), lambda b: b.__setitem__(
        slice(0, 8), b"\x89PNG\r\n\x1a\n")), "foreign")
    with open(run.path("text.ndd"), "w") as f:
        f.write("class,bytes_down_0\nweb,1\n")
    expect_error(run.path("text.ndd"), "foreign")

    def newer(b):
        struct.pack_into("<I", b, 8, 2)
        struct.pack_into("<I", b, 36, zlib.crc32(bytes(b[:36])))
    expect_error(rewrite(ndd, run.path("newer.ndd"), newer), "newer")

    def flip_value(b):
        off, _ = section_at(b, b"VALS")
        b[off + 16 + 5] ^= 0x40
    msg = expect_error(rewrite(ndd, run.path("flip.ndd"), flip_value), "corrupt", "VALS")
    check("CRC mismatch" in msg, msg)

    def nan_value(b):  # intact CRCs, a value no count can be
        off, n = section_at(b, b"VALS")
        struct.pack_into("<f", b, off + 16 + 4 * (L + 3), float("nan"))
        fix_crc(b, off, n)
    msg = expect_error(rewrite(ndd, run.path("nan.ndd"), nan_value), "invalid", "VALS")
    check("window 0, channel " + d.channel_names[1] + ", bin 3" in msg, msg)

    def bad_label(b):
        off, n = section_at(b, b"LABL")
        struct.pack_into("<H", b, off + 16 + 2 * 4, 3)
        fix_crc(b, off, n)
    expect_error(rewrite(ndd, run.path("label.ndd"), bad_label), "invalid", "LABL")

    def huge_net(b):  # a small file claiming a large network: refused before any array
        off, n = section_at(b, b"DMCF")
        struct.pack_into("<I", b, off + 16 + 12, 512)  # base
        fix_crc(b, off, n)
    expect_error(rewrite(ndm, run.path("huge.ndm"), huge_net), "invalid", "DMCF",
                 reader=netdiffus.read_ndm)
    expect_error(ndd, "invalid", reader=netdiffus.read_ndm)  # a dataset is not a model
    expect_error(ndm, "invalid")                             # nor a model a dataset
    return 0


if __name__ == "__main__":
    sys.exit(main())
