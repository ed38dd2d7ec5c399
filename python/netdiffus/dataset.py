"""Dataset files (.ndd, docs/FORMATS.md section 2): windows, labels, groups, classes."""
import struct

import numpy as np

from .container import KIND_DATASET, open_container

NAME = 64          # fixed name fields: UTF-8, NUL-terminated, NUL-padded
COUNTER_NAME = 48  # a CNTR record: name, then u64 value
MAX_CHANNELS, MAX_BINS, MAX_CLASSES = 8, 65536, 1024
META_FIXED = 32


class Dataset:
    """What a dataset file holds (a model file holds the same without windows).

    x              float32 array (n, channels, L): window n, channel c, bin b, in raw
                   units (bytes or packets per bin)
    labels         int64 array (n): class index of each window (into class_names)
    groups         uint64 array (n): flow or trace id; windows of one flow share it (keep
                   them on one side of a train/test split: sklearn's GroupKFold)
    class_names    list of str, the index is the label
    channel_names  list of str ("bytes_down", "bytes_up", ...)
    bin_ns         the width of a bin in nanoseconds
    counters       dict name -> int (capture counters)
    config         the config the file was made with (YAML text, may be empty)
    stat_record    the size in bytes of each class's replay-statistics record (STAT),
                   which this reader keeps as bytes in stats[k]
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def n(self):
        return self.x.shape[0]

    def __repr__(self):
        return (f"<netdiffus.Dataset {self.n} windows x {len(self.channel_names)} channels x "
                f"{self.x.shape[2]} bins, {len(self.class_names)} classes>")


def _name(c, section, raw, what, i, channel):
    """A NUL-terminated fixed-width name field, checked as base/dataset.c's name_ok."""
    raw = bytes(raw)
    end = raw.find(b"\0")
    if end < 0:
        raise c.error(section, f"{what} {i}: name is not NUL-terminated")
    s = raw[:end]
    bad = b'," ' if channel else b""
    if not s or any(ch < 0x20 or ch == 0x7F or ch in bad for ch in s):
        raise c.error(section, f"{what} {i}: empty name or invalid characters")
    try:
        return s.decode("utf-8")
    except UnicodeDecodeError:
        raise c.error(section, f"{what} {i}: name is not valid UTF-8") from None


def _sized(c, tag, want):
    p = c.find(tag)
    if len(p) != want:
        raise c.error(tag, f"{len(p)} bytes, expected {want} from the META counts")
    return p


def from_container(c):
    """The dataset sections of a checked container (a .ndd, or a .ndm's header part)."""
    meta = c.find("META")
    if len(meta) < META_FIXED:
        raise c.error("META", f"{len(meta)} bytes, expected at least {META_FIXED}")
    C, L, bin_ns, N, K = struct.unpack_from("<IIQQI", meta, 0)
    if not 1 <= C <= MAX_CHANNELS:
        raise c.error("META", f"{C} channels, expected 1..{MAX_CHANNELS}")
    if not 1 <= L <= MAX_BINS:
        raise c.error("META", f"{L} bins per window, expected 1..{MAX_BINS}")
    if bin_ns == 0:
        raise c.error("META", "bin width is 0")
    if K > MAX_CLASSES:
        raise c.error("META", f"{K} classes, at most {MAX_CLASSES}")
    if len(meta) != META_FIXED + C * NAME:
        raise c.error("META", f"{len(meta)} bytes, expected {META_FIXED + C * NAME} for {C} "
                      "channels")
    channels = [_name(c, "META", meta[META_FIXED + i * NAME:META_FIXED + (i + 1) * NAME],
                      "channel", i, True) for i in range(C)]
    if len(set(channels)) != C:
        raise c.error("META", "a channel name appears twice")
    clas = _sized(c, "CLAS", K * NAME)
    classes = [_name(c, "CLAS", clas[k * NAME:(k + 1) * NAME], "class", k, False)
               for k in range(K)]
    if len(set(classes)) != K:
        raise c.error("CLAS", "a class name appears twice")
    stat = c.find("STAT")
    if len(stat) < 8:
        raise c.error("STAT", f"{len(stat)} bytes, expected at least 8")
    rec = struct.unpack_from("<I", stat, 0)[0]
    _sized(c, "STAT", 8 + K * rec)
    stats = [bytes(stat[8 + k * rec:8 + (k + 1) * rec]) for k in range(K)]
    # N comes from the file: the sizes below are checked against the sections' lengths
    # before any array is made from them
    vals = _sized(c, "VALS", N * C * L * 4)
    labl = _sized(c, "LABL", N * 2)
    grup = _sized(c, "GRUP", N * 8)
    x = np.frombuffer(vals, dtype="<f4").astype(np.float32).reshape(N, C, L)
    labels = np.frombuffer(labl, dtype="<u2").astype(np.int64)
    groups = np.frombuffer(grup, dtype="<u8").astype(np.uint64)
    bad = np.flatnonzero(labels >= K)
    if bad.size:
        i = int(bad[0])
        raise c.error("LABL", f"window {i} has class {labels[i]}, but there are {K} classes")
    bad = np.flatnonzero(~(np.isfinite(x) & (x >= 0)).reshape(-1))
    if bad.size:
        n, ch, b = np.unravel_index(int(bad[0]), x.shape)
        raise c.error("VALS", f"window {n}, channel {channels[ch]}, bin {b} holds "
                      f"{x[n, ch, b]}, expected a finite value >= 0")
    cntr = c.find("CNTR")
    rec_c = COUNTER_NAME + 8
    if len(cntr) % rec_c:
        raise c.error("CNTR", f"{len(cntr)} bytes, not a multiple of {rec_c}")
    counters = {}
    for i in range(len(cntr) // rec_c):
        name = _name(c, "CNTR", cntr[i * rec_c:i * rec_c + COUNTER_NAME], "counter", i, False)
        counters[name] = counters.get(name, 0) + \
            struct.unpack_from("<Q", cntr, i * rec_c + COUNTER_NAME)[0]
    conf = bytes(c.find("CONF"))
    if b"\0" in conf:
        raise c.error("CONF", "holds a NUL byte")
    return Dataset(x=x, labels=labels, groups=groups, class_names=classes,
                   channel_names=channels, bin_ns=bin_ns, counters=counters,
                   config=conf.decode("utf-8", "replace"), stat_record=rec, stats=stats)


def read_ndd(path):
    """Reads a dataset file (.ndd) into a Dataset; FormatError when the file is truncated,
    damaged, not a dataset file or inconsistent."""
    return from_container(open_container(path, KIND_DATASET))
