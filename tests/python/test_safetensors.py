"""`netdiffus export MODEL.ndm --safetensors OUT` against PyTorch: the exported weights,
loaded into scripts/torch_reference.py's U-Net (load_state_dict, strict), give the same
network output as netdiffus's own forward pass (tests/python/unet_forward.c) on a fixed
input: noisy images, time steps, class rows (the null row included); for a distilled
student that takes the guidance scale as an input, guidance rows between its table's rows
too.

Tolerance: max |torch - netdiffus| <= 1e-5 + 1e-4 * max |netdiffus| over the batch, float32
on both sides (bf16 is off in netdiffus's forward; both sum in a different order through
~30 layers, as in tests/model/test_model_torch.c). The exported tensors also equal
netdiffus.read_ndm's EMA weights bit for bit, names, order and shapes included.
"""
import os
import subprocess
import sys

from common import Run, check, need

need("numpy", "torch")
import numpy as np  # noqa: E402
import torch  # noqa: E402

import netdiffus  # noqa: E402

sys.path.insert(0, os.path.join(os.environ["ND_SOURCE_DIR"], "scripts"))
import torch_reference  # noqa: E402

ATOL, RTOL = 1e-5, 1e-4


def compare(run, forward, ndm, guide=None):
    """ndm exported and run by PyTorch against netdiffus's forward; guide: the images'
    guidance rows (a student's), else None."""
    st = ndm[:-len(".ndm")] + ".safetensors"
    run(0, "export", ndm, "--safetensors", st)
    tensors, meta = netdiffus.read_safetensors(st)
    m = netdiffus.read_ndm(ndm)
    check(list(tensors) == list(m.ema), "exported names or order differ from read_ndm's")
    for k, v in m.ema.items():
        check(tensors[k].shape == v.shape and np.array_equal(tensors[k].view(np.uint32),
                                                              v.view(np.uint32)),
              f"{k}: exported tensor differs from the model file's EMA weights")
    check(meta["weights"] == "ema" and int(meta["step"]) == m.step
          and torch_reference.unet_config(meta) == torch_reference.unet_config(m.settings["net"]),
          f"metadata {meta} against settings {m.settings['net']}")

    net, _ = torch_reference.load_exported(st)  # strict: every name and shape
    cfg = torch_reference.unet_config(meta)
    C, L, K = cfg["channels"], cfg["L"], cfg["max_classes"]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, C, L, L)).astype(np.float32)
    t = [0.0, 417.5, 999.0]
    y = [0, 2, K]  # the last: the null class row of guidance
    xin, xout = run.path("x.f32"), run.path("out.f32")
    x.astype("<f4").tofile(xin)
    args = [f"{a}:{b}" + (f":{g}" if guide else "") for a, b, g in zip(t, y, guide or t)]
    p = subprocess.run([forward, ndm, xin, xout] + args, capture_output=True, text=True)
    check(p.returncode == 0, f"unet_forward: exit {p.returncode}\n{p.stderr}")
    ours = np.fromfile(xout, dtype="<f4").reshape(x.shape)

    torch.set_num_threads(1)
    with torch.no_grad():
        theirs = net(torch.from_numpy(x), torch.tensor(t), torch.tensor(y),
                     guide=torch.tensor(guide) if guide else None).numpy()
    diff, scale = float(np.abs(theirs - ours).max()), float(np.abs(ours).max())
    print(f"max |torch - netdiffus| = {diff:.3g}, max |netdiffus| = {scale:.3g}, "
          f"bound {ATOL + RTOL * scale:.3g}")
    check(np.all(np.isfinite(ours)) and scale > 0, "netdiffus output is not a number")
    check(diff <= ATOL + RTOL * scale, "PyTorch's output differs from netdiffus's")
    # the same weights from the model file directly (read_ndm's names are PyTorch's)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in m.ema.items()}, strict=True)


def main():
    run = Run()
    forward = os.path.abspath(sys.argv[2])
    ndd = run.dataset()
    ndm = run.model(ndd)
    compare(run, forward, ndm)
    run(2, "export", ndm, "--safetensors", run.path("x.safetensors"), "--csv", run.path("x.csv"))
    run(1, "export", ndd, "--safetensors", run.path("d.safetensors"))  # not a model
    check(not os.path.exists(run.path("d.safetensors")), "a failed export left a file")
    # a student with a guidance table (its rows learnt a little, so not zero)
    teacher = run.model(ndd, context=False, name="teacher")
    student = run.path("student.ndm")
    run(0, "train", ndd, "-o", student, "--distill", teacher, "--teacher-steps", "2",
        "--student-steps", "1", "--round-steps", "20")
    table = netdiffus.read_ndm(student).ema["gemb.table"]
    check(table.shape == (8, 16) and np.abs(table).max() > 0, f"guidance table {table.shape}")
    compare(run, forward, student, guide=[0.0, 2.5, 7.0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
