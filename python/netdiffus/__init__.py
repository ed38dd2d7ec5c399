"""netdiffus — read netdiffus's dataset (.ndd) and model (.ndm) files into numpy.

    import netdiffus
    d = netdiffus.read_ndd("x.ndd")   # d.x (n, channels, L) float32, d.labels, d.groups,
                                      # d.class_names, d.channel_names
    m = netdiffus.read_ndm("m.ndm")   # m.settings, m.weights / m.ema (name -> array)
    w, meta = netdiffus.read_safetensors("m.safetensors")  # `netdiffus export --safetensors`

Pure Python and numpy. Every reader checks what netdiffus's C reader checks before it
trusts a length (magic, version, CRCs, section lengths, counts and values against their
bounds) and raises netdiffus.FormatError naming the file, the section and the problem
for a truncated, damaged, foreign or inconsistent file. The formats: docs/FORMATS.md.
"""
from .container import FormatError
from .dataset import Dataset, read_ndd
from .model import Model, read_ndm, unet_tensors
from .safetensors import read_safetensors

__all__ = ["Dataset", "FormatError", "Model", "read_ndd", "read_ndm", "read_safetensors",
           "unet_tensors"]
