"""Shared by the Python tests: the program, a scratch folder, a tiny dataset and model.

Each test is `python3 TEST.py NETDIFFUS [HELPER]` with PYTHONPATH holding the source tree's
python/ (tests/python/CMakeLists.txt); it exits 77 (skipped) without numpy or torch,
which scripts/setup installs.
"""
import os
import subprocess
import sys
import tempfile

SKIP = 77
# 2 channels of 8 bins, 3 classes (one with a comma and one with a quote: CSV quoting),
# values that %.9g writes in every form (integers, fractions, exponents)
CLASSES = ("web", 'video,"hd"', "mail")
VALUES = (0, 1500, 0.5, 123456789, 3.25e-3, 52000.75, 1e10)


def need(*modules):
    for m in modules:
        try:
            __import__(m)
        except ImportError:
            print(f"skipped: no Python module {m} (scripts/setup installs python3-{m})")
            sys.exit(SKIP)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


class Run:
    """The netdiffus program (argv[1]) run in a scratch folder."""

    def __init__(self):
        self.bin = os.path.abspath(sys.argv[1])
        self.tmp = tempfile.TemporaryDirectory(prefix="ndpy-", dir=os.getcwd())
        self.dir = self.tmp.name

    def path(self, name):
        return os.path.join(self.dir, name)

    def __call__(self, want, *args):
        p = subprocess.run([self.bin, *args], capture_output=True, text=True)
        check(p.returncode == want, f"netdiffus {' '.join(args)}: exit {p.returncode}, "
              f"expected {want}\n{p.stderr}")
        return p

    def dataset(self):
        """A tiny dataset (12 windows) written as CSV and imported: its .ndd path."""
        csv, ndd = self.path("real.csv"), self.path("real.ndd")
        with open(csv, "w") as f:
            f.write("class," + ",".join(f"{c}_{i}" for c in ("bytes_down", "bytes_up")
                                        for i in range(8)) + "\n")
            for w in range(12):
                name = CLASSES[w % 3].replace('"', '""')
                vals = (VALUES[(w * 7 + j * 3) % len(VALUES)] for j in range(16))
                f.write(f'"{name}",' + ",".join(repr(v) for v in vals) + "\n")
        self(0, "import", "--format", "csv", csv, "-o", ndd)
        return ndd

    def model(self, ndd, steps=5, context=True, name="m"):
        """A tiny model trained on ndd (attention, coordinate and context planes, the flow
        position table and activity masks on, so that every kind of layer is in it;
        context=False: v-prediction and no context planes or position table, a model that
        can be distilled): its .ndm path."""
        conf, ndm = self.path(name + ".yaml"), self.path(name + ".ndm")
        with open(conf, "w") as f:
            f.write("capture: {window: 8, min_active_bins: 1}\n"
                    "model: {base_channels: 8, channel_mult: [1, 2], res_blocks: 1,\n"
                    "        attn_min_res: 4, groups: 4, emb_dim: 16, max_classes: 4,\n"
                    "        threads: 1, coords: true, mask: true,\n"
                    + ("        context: true}\n" if context else
                       "        context: false, prediction: v}\n") +
                    "train: {batch: 4, lr: 0.005, val_fraction: 0}\n"
                    "sample: {calibrate: 0}\n")
        self(0, "train", "-c", conf, ndd, "-o", ndm, "--steps", str(steps))
        return ndm
