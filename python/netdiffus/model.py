"""Model files (.ndm, docs/FORMATS.md section 3): settings, class scales and the network's
weights, named as PyTorch names them (scripts/torch_reference.py's U-Net)."""
import struct

import numpy as np

from .container import KIND_MODEL, open_container
from .dataset import from_container

DMCF_V1_BYTES, DMCF_BYTES = 148, 292
SCALE_MAX = 88.0

# The network numbers of DMCF (u32 fields 1..22) and their bounds (docs/FORMATS.md,
# "Bounds"): held to them before anything is sized by them.
_NET_BOUNDS = {"channels": (1, 16), "L": (1, 256), "base": (1, 512), "levels": (1, 6),
               "res_blocks": (1, 8), "attn_min_res": (0, 1024), "groups": (1, 64),
               "emb_dim": (2, 2048), "max_classes": (0, 1024), "planes": (0, 15)}
POSITION_ROWS = 7  # a flow position table's rows (model/dm.c, position_row)
GUIDANCE_ROWS = 8  # a distilled student's guidance table (model/model_impl.h)
_PRED, _SCHEDULE, _SCALING = ("eps", "v"), ("cosine", "linear"), ("zero-aware", "log", "headroom")
_SAMPLER, _CLIP, _DECODE = ("ddim", "ddpm", "dpmpp"), ("dynamic", "clip", "none"), \
    ("lsq", "diag")


class Model:
    """What a model file holds.

    settings       dict: "net" (the U-Net's numbers: channels (image channels), L, base,
                   mult, res_blocks, attn_min_res, groups, emb_dim, max_classes, coords,
                   context, position, guidance: 0/1, the coordinate and the context
                   planes, the flow position table of POSITION_ROWS rows and a
                   student's guidance table of GUIDANCE_ROWS rows),
                   timesteps, prediction ("eps"/"v"), schedule, scaling, mask,
                   series_channels, n_params, step, and "train" and "sample" (dicts of the
                   stored training and sampling settings; None in record-version-1 files)
    weights        dict name -> float32 array: the trained parameters (PARM)
    ema            the same for their exponential moving average (EMAW), what sampling
                   uses and what `netdiffus export --safetensors` writes
    scales         float32 array (classes, series channels, 2): log1p of the smallest
                   non-zero and of the largest value per class and channel (SCAL)
    class_names, channel_names, bin_ns, counters, config: the dataset's, as in Dataset
    sections       the tags of every section in the file (DECO, LIVE, ...)

    Names and shapes are PyTorch's ("enc.0.1.conv1.weight", (out, in, 3, 3)), so that
    torch_reference.UNet(...).load_state_dict({k: torch.from_numpy(v) for k, v in
    model.ema.items()}) takes them as they are.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def step(self):
        return self.settings["step"]

    def __repr__(self):
        return (f"<netdiffus.Model {self.settings['n_params']} parameters, step {self.step}, "
                f"{len(self.class_names)} classes>")


def unet_tensors(net):
    """[(name, shape)] of the U-Net net (the "net" dict of Model.settings) in the order of
    its parameter block: the layout of model/nn/unet.c (build), under PyTorch's names."""
    out = []
    E, G, base, mult = net["emb_dim"], net["groups"], net["base"], net["mult"]

    def add(name, *shape):
        out.append((name, shape))

    def conv(pfx, cout, cin, k=3):
        add(pfx + ".weight", cout, cin, k, k)
        add(pfx + ".bias", cout)

    def resblock(pfx, cin, cout):
        add(pfx + ".gn1.weight", cin)
        add(pfx + ".gn1.bias", cin)
        conv(pfx + ".conv1", cout, cin)
        add(pfx + ".emb.weight", cout, E)
        add(pfx + ".emb.bias", cout)
        add(pfx + ".gn2.weight", cout)
        add(pfx + ".gn2.bias", cout)
        conv(pfx + ".conv2", cout, cout)
        if cin != cout:
            conv(pfx + ".skip", cout, cin, 1)

    for lin in ("lin1", "lin2"):
        add(f"temb.{lin}.weight", E, E)
        add(f"temb.{lin}.bias", E)
    add("cemb.table", net["max_classes"] + 1, E)
    if net["position"]:
        add("pemb.table", POSITION_ROWS, E)
    conv("conv_in", base,
         net["channels"] + (net["channels"] + 1) * net["context"] + 2 * net["coords"])
    skips, ch, H = [base], base, net["L"]
    for lv, m in enumerate(mult):
        for i in range(net["res_blocks"]):
            resblock(f"enc.{lv}.{i}", ch, base * m)
            ch = base * m
            skips.append(ch)
        if lv + 1 < len(mult):
            conv(f"down.{lv}", ch, ch)
            skips.append(ch)
            H //= 2
    resblock("mid.b0", ch, ch)
    if net["attn_min_res"] > 0 and H <= net["attn_min_res"]:
        add("mid.attn.gn.weight", ch)
        add("mid.attn.gn.bias", ch)
        conv("mid.attn.qkv", 3 * ch, ch, 1)
        conv("mid.attn.proj", ch, ch, 1)
    resblock("mid.b1", ch, ch)
    for lv in reversed(range(len(mult))):
        for i in range(net["res_blocks"] + 1):
            resblock(f"dec.{lv}.{i}", ch + skips.pop(), base * mult[lv])
            ch = base * mult[lv]
        if lv > 0:
            conv(f"up.{lv}", ch, ch)
    add("out.gn.weight", ch)
    add("out.gn.bias", ch)
    conv("out.conv", net["channels"], ch)
    if net["guidance"]:  # last: the block without it is the teacher's
        add("gemb.table", GUIDANCE_ROWS, E)
    return out


def _choice(c, names, v, what):
    if v >= len(names):
        raise c.error("DMCF", f"{what} {v} out of range 0..{len(names) - 1}")
    return names[v]


def _settings(c, meta):
    rec = c.find("DMCF")
    version = struct.unpack_from("<I", rec, 0)[0] if len(rec) >= 4 else 0
    if version > 2:
        raise c.error("DMCF", f"model record version {version}, this reader reads up to 2",
                      "newer")
    want = DMCF_V1_BYTES if version == 1 else DMCF_BYTES
    if len(rec) != want:
        raise c.error("DMCF", f"{len(rec)} bytes, expected {want} (not a model of this "
                      "version)")
    f = struct.unpack_from("<23I", rec, 0)
    net = {"channels": f[1], "L": f[2], "base": f[3], "levels": f[4],
           "res_blocks": f[11], "attn_min_res": f[12], "groups": f[13], "emb_dim": f[14],
           "max_classes": f[15], "planes": f[22]}
    for k, (lo, hi) in _NET_BOUNDS.items():
        if not lo <= net[k] <= hi:
            raise c.error("DMCF", f"{k} {net[k]} out of range {lo}..{hi}",
                          "newer" if k == "planes" else "invalid")
    planes = net.pop("planes")
    if planes & 6 == 4:
        raise c.error("DMCF", "a flow position table without context planes", "invalid")
    net["coords"], net["context"] = planes & 1, planes >> 1 & 1
    net["position"], net["guidance"] = planes >> 2 & 1, planes >> 3
    net["mult"] = list(f[5:5 + net.pop("levels")])
    if any(not 1 <= m <= 16 for m in net["mult"]):
        raise c.error("DMCF", f"mult {net['mult']} out of range 1..16")
    if net["L"] % (1 << (len(net["mult"]) - 1)):
        raise c.error("DMCF", f"L {net['L']} not divisible by 2^(levels-1)")
    if f[20] != len(meta.channel_names) or net["L"] != meta.x.shape[2]:
        raise c.error("DMCF", f"{f[20]} series channels of {net['L']} bins, but META has "
                      f"{len(meta.channel_names)} of {meta.x.shape[2]}")
    if net["max_classes"] < len(meta.class_names):
        raise c.error("DMCF", f"max_classes {net['max_classes']} is below the "
                      f"{len(meta.class_names)} classes of CLAS")
    n_params, step = struct.unpack_from("<QQ", rec, 92)
    s = {"net": net, "timesteps": f[16], "prediction": _choice(c, _PRED, f[17], "prediction"),
         "scaling": _choice(c, _SCALING, f[18], "scaling"), "mask": f[19],
         "series_channels": f[20], "schedule": _choice(c, _SCHEDULE, f[21], "schedule"),
         "n_params": n_params, "step": step, "record_version": version,
         "train": None, "sample": None}
    if version == 2:
        p = DMCF_V1_BYTES
        steps, ckpt, seed, batch, warm, ema_warm, threads = struct.unpack_from("<3Q4I", rec, p)
        lr, wd, clip, ema, drop, val = struct.unpack_from("<6d", rec, p + 40)
        s["train"] = {"steps": steps, "checkpoint_every": ckpt, "seed": seed, "batch": batch,
                      "warmup_steps": warm, "ema_warmup": ema_warm, "threads": threads,
                      "lr": lr, "weight_decay": wd, "grad_clip": clip, "ema_decay": ema,
                      "class_dropout": drop, "val_fraction": val}
        q = struct.unpack_from("<8IQ2d", rec, p + 88)
        s["sample"] = {"sampler": _choice(c, _SAMPLER, q[0], "sampler"), "steps": q[1],
                       "clip": _choice(c, _CLIP, q[2], "clip"), "projection": q[3],
                       "decode": _choice(c, _DECODE, q[4], "decode"), "calibrate": q[5],
                       "batch": q[6], "seed": q[8], "guidance": q[9], "eta": q[10]}
    return s


def _named(c, tag, layout, n):
    data = c.find(tag)
    if len(data) != 4 * n:
        raise c.error(tag, f"{len(data)} bytes, expected {4 * n} ({n} floats)")
    flat = np.frombuffer(data, dtype="<f4").astype(np.float32)
    out, off = {}, 0
    for name, shape in layout:
        k = int(np.prod(shape))
        out[name] = flat[off:off + k].reshape(shape)
        off += k
    return out


def read_ndm(path):
    """Reads a model file (.ndm) into a Model; FormatError when the file is truncated,
    damaged, not a model file or inconsistent (its network numbers out of bounds, or its
    weight sections not the size the network has)."""
    c = open_container(path, KIND_MODEL)
    meta = from_container(c)
    s = _settings(c, meta)
    layout = unet_tensors(s["net"])
    n = sum(int(np.prod(shape)) for _, shape in layout)
    if n != s["n_params"]:
        raise c.error("DMCF", f"parameter count {s['n_params']}, but the network it "
                      f"describes has {n}")
    if c.has("ADAM") and len(c.find("ADAM")) != 8 * n:
        raise c.error("ADAM", f"{len(c.find('ADAM'))} bytes, expected {8 * n}")
    K, C = len(meta.class_names), s["series_channels"]
    scal = c.find("SCAL")
    if len(scal) != K * C * 8:
        raise c.error("SCAL", f"{len(scal)} bytes, expected {K * C * 8}")
    scales = np.frombuffer(scal, dtype="<f4").astype(np.float32).reshape(K, C, 2)
    if not np.all((scales[..., 0] >= 0) & (scales[..., 0] <= scales[..., 1])
                  & (scales[..., 1] <= SCALE_MAX)):
        raise c.error("SCAL", f"a class scale is outside 0 <= lo <= hi <= {SCALE_MAX}")
    return Model(settings=s, weights=_named(c, "PARM", layout, n),
                 ema=_named(c, "EMAW", layout, n), scales=scales,
                 class_names=meta.class_names, channel_names=meta.channel_names,
                 bin_ns=meta.bin_ns, counters=meta.counters, config=meta.config,
                 sections=c.tags())
