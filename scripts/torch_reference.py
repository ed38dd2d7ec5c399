#!/usr/bin/python3
"""torch_reference.py — the PyTorch twin of netdiffus's model core (model/model.h).

It builds the same unet-ref (docs/MODEL.md) with the same parameter names as the C code
(PyTorch spells the C table's ".w" and ".b" ".weight" and ".bias"), and serves three
purposes:

  weights    the network of a trained model in PyTorch: load_exported(PATH) builds the
             U-Net that `netdiffus export MODEL.ndm --safetensors PATH` describes in its
             metadata and loads the weights (strict); unet_config(net) builds the config
             from a model file's settings (netdiffus.read_ndm(...).settings["net"]), whose
             .ema dict load_state_dict also takes. tests/python/test_safetensors.py checks
             that its output equals netdiffus's on the same input.

  fixtures   writes the parity fixtures under tests/fixtures/model/ that the C test
             tests/model/test_model_torch.c compares against (the C test only reads
             them). Regenerate with (scripts/setup installs python3-torch):
                 /usr/bin/python3 scripts/torch_reference.py fixtures
  bench      training images/s (forward + backward + AdamW) and DDIM sampling images/s,
             for scripts/bench-model:
                 /usr/bin/python3 scripts/torch_reference.py bench --L 64 --batch 16 --threads 2

Fixture format (little endian): b"NDFX", u32 count, then per tensor: u32 name length,
name bytes, u32 element count, float32 data. Integers (labels, config) are stored as floats.
"""
import argparse
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

GN_EPS = 1e-5
POSITION_ROWS = 7  # a flow position table's rows (model/dm.c, position_row)
GUIDANCE_ROWS = 8  # a distilled student's guidance table (model/model_impl.h)


def timestep_embedding(t, dim):
    """t (B,) float -> (B, dim): [sin(t f_i) | cos(t f_i)], f_i = 10000^(-i/half)."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float64)
    freqs = torch.exp(-math.log(10000.0) * i / half)
    a = t.double()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1).float()


class ResBlock(nn.Module):
    # Registration order and names match the C parameter table (model/unet.c).
    def __init__(self, cin, cout, emb, groups):
        super().__init__()
        self.gn1 = nn.GroupNorm(groups, cin, eps=GN_EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.gn2 = nn.GroupNorm(groups, cout, eps=GN_EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, e):
        h = self.conv1(F.silu(self.gn1(x)))
        h = h + self.emb(F.silu(e))[:, :, None, None]
        h = self.conv2(F.silu(self.gn2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.gn = nn.GroupNorm(groups, c, eps=GN_EPS)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        qkv = self.qkv(self.gn(x)).reshape(B, 3, C, H * W)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        s = torch.einsum("bci,bcj->bij", q, k) / math.sqrt(C)
        p = torch.softmax(s, dim=-1)
        o = torch.einsum("bij,bcj->bci", p, v).reshape(B, C, H, W)
        return x + self.proj(o)


class UNet(nn.Module):
    """cfg: channels, L, base, mult, res_blocks, attn_min_res, groups, emb, max_classes, and
    coords (0 when absent: the network of the parity fixtures): with coords 1 the first
    convolution also sees two planes, each pixel's row and column in [-1, 1]; and context
    (0 when absent): with 1 it sees, between the image and those, C + 1 context planes
    (forward's cond; zeros when None: a window that continues nothing); and position (0
    when absent): with 1 a table of POSITION_ROWS rows whose forward's pos row (0 when
    None: not known) is added to the class's, where in its flow the window starts; and
    guidance (0 when absent): with 1 a table of GUIDANCE_ROWS rows, zero at first and
    registered last, read at forward's fractional guide rows (0 when None) by linear
    interpolation and added too: a distilled student's guidance scale."""

    def __init__(self, cfg):
        super().__init__()
        C, base, mult = cfg["channels"], cfg["base"], cfg["mult"]
        E, G, nres = cfg["emb"], cfg["groups"], cfg["res_blocks"]
        self.cfg = cfg
        self.coords = cfg.get("coords", 0)
        self.ncond = (C + 1) * cfg.get("context", 0)
        self.temb = nn.Module()
        self.temb.lin1 = nn.Linear(E, E)
        self.temb.lin2 = nn.Linear(E, E)
        self.cemb = nn.Module()
        self.cemb.table = nn.Parameter(torch.randn(cfg["max_classes"] + 1, E))
        if cfg.get("position", 0):
            self.pemb = nn.Module()
            self.pemb.table = nn.Parameter(torch.randn(POSITION_ROWS, E))
        self.conv_in = nn.Conv2d(C + self.ncond + 2 * self.coords, base, 3, padding=1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        skips = [base]
        ch = base
        for l, m in enumerate(mult):
            lvl = nn.ModuleList()
            for _ in range(nres):
                lvl.append(ResBlock(ch, base * m, E, G))
                ch = base * m
                skips.append(ch)
            self.enc.append(lvl)
            if l + 1 < len(mult):
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        res = cfg["L"] >> (len(mult) - 1)
        self.use_attn = cfg["attn_min_res"] > 0 and res <= cfg["attn_min_res"]
        self.mid = nn.Module()
        self.mid.b0 = ResBlock(ch, ch, E, G)
        if self.use_attn:
            self.mid.attn = Attention(ch, G)
        self.mid.b1 = ResBlock(ch, ch, E, G)
        self.dec = nn.ModuleList([None] * len(mult))
        self.up = nn.ModuleList([None] * len(mult))
        for l in reversed(range(len(mult))):
            lvl = nn.ModuleList()
            for _ in range(nres + 1):
                lvl.append(ResBlock(ch + skips.pop(), base * mult[l], E, G))
                ch = base * mult[l]
            self.dec[l] = lvl
            if l > 0:
                self.up[l] = nn.Conv2d(ch, ch, 3, padding=1)
        self.out = nn.Module()
        self.out.gn = nn.GroupNorm(G, ch, eps=GN_EPS)
        self.out.conv = nn.Conv2d(ch, C, 3, padding=1)
        if cfg.get("guidance", 0):
            self.gemb = nn.Module()
            self.gemb.table = nn.Parameter(torch.zeros(GUIDANCE_ROWS, E))

    def forward(self, x, t, y, cond=None, pos=None, guide=None):
        e = timestep_embedding(t, self.cfg["emb"])
        e = self.temb.lin2(F.silu(self.temb.lin1(e))) + self.cemb.table[y]
        if self.cfg.get("position", 0):
            e = e + self.pemb.table[pos if pos is not None else torch.zeros_like(y)]
        if self.cfg.get("guidance", 0):
            u = guide.float() if guide is not None else torch.zeros(y.shape[0])
            i = u.floor().long().clamp(max=GUIDANCE_ROWS - 2)
            f = (u - i.float())[:, None]
            e = e + (1 - f) * self.gemb.table[i] + f * self.gemb.table[i + 1]
        if self.ncond:
            B, L = x.shape[0], x.shape[-1]
            x = torch.cat([x, cond if cond is not None else x.new_zeros(B, self.ncond, L, L)],
                          dim=1)
        if self.coords:
            B, L = x.shape[0], x.shape[-1]
            pos = torch.arange(L, dtype=torch.float32) * (2.0 / (L - 1) if L > 1 else 0.0) - 1
            rows = pos[:, None].expand(L, L)
            planes = torch.stack([rows, rows.t()])[None].expand(B, 2, L, L)
            x = torch.cat([x, planes], dim=1)
        h = self.conv_in(x)
        hs = [h]
        n = len(self.cfg["mult"])
        for l in range(n):
            for blk in self.enc[l]:
                h = blk(h, e)
                hs.append(h)
            if l + 1 < n:
                h = self.down[l](h)
                hs.append(h)
        h = self.mid.b0(h, e)
        if self.use_attn:
            h = self.mid.attn(h)
        h = self.mid.b1(h, e)
        for l in reversed(range(n)):
            for blk in self.dec[l]:
                h = blk(torch.cat([h, hs.pop()], dim=1), e)
            if l > 0:
                h = self.up[l](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out.conv(F.silu(self.out.gn(h)))


def unet_config(net):
    """The UNet cfg of a netdiffus network: net is a model file's settings["net"]
    (netdiffus.read_ndm) or the metadata of an exported safetensors file (strings)."""
    i = lambda k: int(net[k])
    mult = net["mult"]
    return dict(channels=i("channels"), L=i("L"), base=i("base"),
                mult=[int(m) for m in (mult.split(",") if isinstance(mult, str) else mult)],
                res_blocks=i("res_blocks"), attn_min_res=i("attn_min_res"), groups=i("groups"),
                emb=i("emb_dim"), max_classes=i("max_classes"), coords=i("coords"),
                context=int(net.get("context", 0)), position=int(net.get("position", 0)),
                guidance=int(net.get("guidance", 0)))


def _netdiffus():
    """The netdiffus Python module: this checkout's (python/), else an installed one."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
    if os.path.isdir(os.path.join(src, "netdiffus")) and src not in sys.path:
        sys.path.insert(0, src)
    import netdiffus
    return netdiffus


def load_exported(path):
    """The UNet of a `netdiffus export MODEL.ndm --safetensors PATH` file, its weights loaded
    (strict: every name and shape must match), in eval mode; and the file's metadata."""
    tensors, meta = _netdiffus().read_safetensors(path)
    model = UNet(unet_config(meta))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return model.eval(), meta


def c_name(name):
    """torch parameter name -> the C table's name (model/unet.c)."""
    name = name.replace(".weight", ".w").replace(".bias", ".b")
    return name


# ------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------

def write_fixture(path, tensors):
    with open(path + ".tmp", "wb") as f:
        f.write(b"NDFX")
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors:
            a = t.detach().reshape(-1).float().contiguous().numpy().astype("<f4")
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", a.size))
            f.write(a.tobytes())
    os.replace(path + ".tmp", path)


# The small network of the parity fixture: every layer type, a few thousand parameters.
FIXTURE_CFG = dict(channels=2, L=8, base=8, mult=[1, 2], res_blocks=1, attn_min_res=4,
                   groups=4, emb=16, max_classes=3)
FIXTURE_BATCH = 3
# AdamW step checked after the gradients (clip small enough to be active; eps near the
# typical |grad| keeps the first step, lr·g/(|g|+eps), smooth in g so that it compares
# within rounding: with eps=1e-8 a near-zero gradient flips to ±lr on noise).
ADAM = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-3, wd=0.1, clip=0.5)


def perturb_norms(model, g):
    # GroupNorm starts at gamma=1, beta=0; move them so that their gradients matter.
    for name, p in model.named_parameters():
        if ".gn" in name or name.startswith("gn") or ".gn1" in name or ".gn2" in name:
            with torch.no_grad():
                p.add_(0.2 * torch.randn(p.shape, generator=g))


def unet_fixture(outdir):
    g = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    cfg = FIXTURE_CFG
    model = UNet(cfg)
    perturb_norms(model, g)
    B, C, L = FIXTURE_BATCH, cfg["channels"], cfg["L"]
    x = torch.randn(B, C, L, L, generator=g)
    t = torch.tensor([3.0, 500.0, 999.0])
    y = torch.tensor([0, 2, cfg["max_classes"]])  # last one: the null class row
    target = torch.randn(B, C, L, L, generator=g)
    out = model(x, t, y)
    loss = F.mse_loss(out, target)
    loss.backward()
    conf = torch.tensor([cfg["channels"], cfg["L"], cfg["base"], len(cfg["mult"])] +
                        cfg["mult"] + [cfg["res_blocks"], cfg["attn_min_res"],
                                       cfg["groups"], cfg["emb"], cfg["max_classes"], B],
                        dtype=torch.float32)
    tens = [("config", conf), ("x", x), ("t", t), ("y", y.float()), ("target", target),
            ("out", out), ("loss", loss.reshape(1))]
    # Clones: the clipping and the optimiser step below change these in place.
    for name, p in model.named_parameters():
        tens.append(("param." + c_name(name), p.detach().clone()))
    for name, p in model.named_parameters():
        tens.append(("grad." + c_name(name), p.grad.detach().clone()))
    # One clipped AdamW step (torch semantics: clip the global norm, then AdamW).
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), ADAM["clip"])
    opt = torch.optim.AdamW(model.parameters(), lr=ADAM["lr"],
                            betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"],
                            weight_decay=ADAM["wd"])
    opt.step()
    tens.append(("adam.grad_norm", norm.reshape(1)))
    for name, p in model.named_parameters():
        tens.append(("step1." + c_name(name), p.detach().clone()))
    write_fixture(os.path.join(outdir, "unet_small.bin"), tens)
    n = sum(p.numel() for p in model.parameters())
    print(f"unet_small.bin: {n} parameters, loss {loss.item():.6f}")


def layer_fixture(outdir):
    """One forward + backward per layer type with a random upstream gradient."""
    g = torch.Generator().manual_seed(99)
    tens = []

    def rnd(*s):
        return torch.randn(*s, generator=g)

    def record(prefix, fn, inputs, params):
        for p in inputs + params:
            p.requires_grad_(True)
        out = fn()
        dout = rnd(*out.shape)
        out.backward(dout)
        tens.append((prefix + ".out", out))
        tens.append((prefix + ".dout", dout))
        for i, p in enumerate(inputs):
            tens.append((f"{prefix}.in{i}", p))
            tens.append((f"{prefix}.din{i}", p.grad))
        for i, p in enumerate(params):
            tens.append((f"{prefix}.p{i}", p))
            tens.append((f"{prefix}.dp{i}", p.grad))

    B, C, H, W, OC = 2, 3, 7, 6, 4
    for name, k, s in (("conv3s1", 3, 1), ("conv3s2", 3, 2), ("conv1", 1, 1)):
        x, w, b = rnd(B, C, H, W), rnd(OC, C, k, k), rnd(OC)
        record(name, lambda x=x, w=w, b=b, k=k, s=s: F.conv2d(x, w, b, stride=s,
                                                                 padding=k // 2),
               [x], [w, b])
    x, w, b = rnd(5, 7), rnd(3, 7), rnd(3)
    record("linear", lambda: F.linear(x, w, b), [x], [w, b])
    x, gm, bt = rnd(2, 6, 4, 5), 1 + 0.3 * rnd(6), rnd(6)
    record("gnsilu", lambda: F.silu(F.group_norm(x, 3, gm, bt, GN_EPS)), [x], [gm, bt])
    x2, gm2, bt2 = rnd(2, 6, 4, 5), 1 + 0.3 * rnd(6), rnd(6)
    record("groupnorm", lambda: F.group_norm(x2, 2, gm2, bt2, GN_EPS), [x2], [gm2, bt2])
    x = rnd(2, 3, 3, 4)
    record("upsample", lambda: F.interpolate(x, scale_factor=2, mode="nearest"), [x], [])
    a, bb = rnd(2, 3, 4, 4), rnd(2, 5, 4, 4)
    record("concat", lambda: torch.cat([a, bb], 1), [a, bb], [])
    att = Attention(8, 2)
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(0.5 * rnd(*p.shape) + (1.0 if p.dim() == 1 and p is att.gn.weight else 0))
    x = rnd(2, 8, 3, 4)
    ps = [att.gn.weight, att.gn.bias, att.qkv.weight, att.qkv.bias, att.proj.weight,
          att.proj.bias]
    record("attn", lambda: att(x), [x], ps)
    t = torch.tensor([0.0, 1.0, 17.5, 999.0])
    tens.append(("temb.t", t))
    tens.append(("temb.out", timestep_embedding(t, 10)))
    write_fixture(os.path.join(outdir, "layers.bin"), tens)
    print(f"layers.bin: {len(tens)} tensors")


# ------------------------------------------------------------------------------------
# Benchmark
# ------------------------------------------------------------------------------------

def cosine_alpha_bar(t, T):
    s = 0.008
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
    return min(max(f(t) / f(0), 1e-9), 1.0)


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = dict(channels=args.channels, L=args.L, base=32, mult=[1, 2, 2], res_blocks=2,
               attn_min_res=args.L // 4, groups=8, emb=128, max_classes=4)
    model = UNet(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.0)
    B, C, L = args.batch, cfg["channels"], cfg["L"]
    x = torch.randn(B, C, L, L)
    eps = torch.randn(B, C, L, L)
    t = torch.randint(0, 1000, (B,)).float()
    y = torch.randint(0, 4, (B,))

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x, t, y), eps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(args.warmup):
        train_step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    dt = time.perf_counter() - t0
    train_ips = B * args.steps / dt

    # DDIM (eta = 0), cosine schedule, T = 1000, args.ddim_steps steps at batch B.
    T, S = 1000, args.ddim_steps
    ts = [int(round(T - 1 - i * (T - 1) / (S - 1))) for i in range(S)] if S > 1 else [T - 1]
    with torch.no_grad():
        xt = torch.randn(B, C, L, L)
        model(xt, t, y)  # warm-up
        t0 = time.perf_counter()
        for i, ti in enumerate(ts):
            tt = torch.full((B,), float(ti))
            e = model(xt, tt, y)
            ab = cosine_alpha_bar(ti, T)
            abp = cosine_alpha_bar(ts[i + 1], T) if i + 1 < len(ts) else 1.0
            x0 = ((xt - math.sqrt(1 - ab) * e) / math.sqrt(ab)).clamp(-1, 1)
            xt = math.sqrt(abp) * x0 + math.sqrt(1 - abp) * e
        dt = time.perf_counter() - t0
    sample_ips = B / dt
    print(f"torch L={L} batch={B} threads={args.threads} train_img_s={train_ips:.3f} "
          f"ddim{S}_img_s={sample_ips:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    fx = sub.add_parser("fixtures")
    fx.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "fixtures", "model"))
    bn = sub.add_parser("bench")
    bn.add_argument("--L", type=int, default=64)
    bn.add_argument("--batch", type=int, default=16)
    bn.add_argument("--channels", type=int, default=2)
    bn.add_argument("--threads", type=int, default=2)
    bn.add_argument("--steps", type=int, default=5)
    bn.add_argument("--warmup", type=int, default=1)
    bn.add_argument("--ddim-steps", type=int, default=50)
    args = ap.parse_args()
    if args.cmd == "fixtures":
        torch.set_num_threads(1)
        os.makedirs(args.out, exist_ok=True)
        unet_fixture(args.out)
        layer_fixture(args.out)
    else:
        bench(args)


if __name__ == "__main__":
    sys.exit(main())
