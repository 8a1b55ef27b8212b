#!/usr/bin/env python3
"""Train the small MNIST ReLU CNN that ships with dtd and export it to ONNX.

The 60,000 MNIST training digits are not available to this project, so the network is trained on the first
8,000 of the 10,000 MNIST *test* digits and evaluated on the remaining 2,000 (the held-out split). Pixels are
scaled to ``[0, 1]`` (``x = raw / 255``) without mean/std normalisation, so the input bounds for the
z^beta rule are ``low = 0`` and ``high = 1``.

Architecture (no softmax, no BatchNorm, no dropout)::

    Conv 3x3 1->32 (pad 1), ReLU, Conv 3x3 32->32 (pad 1), ReLU, MaxPool 2x2,
    Conv 3x3 32->64 (pad 1), ReLU, MaxPool 2x2, Flatten, Dense 3136->128, ReLU, Dense 128->10

By default every bias is projected onto ``b <= 0`` after each optimiser step (``--nonpositive-bias``). Deep
Taylor decomposition assumes ``b <= 0`` so that a root point exists; with it the z+ / z^beta explanations of
the shipped model are conservative (the input relevance sums to the logit up to the stabiliser).

Outputs (written to ``python/dtd/data/`` by default):

- ``mnist_cnn.onnx``: opset 13, input ``x`` [N, 1, 28, 28] float32, output ``logits`` [N, 10], dynamic batch.
- ``mnist_samples.npz``: 32 held-out digits, keys ``images`` uint8 [32, 28, 28], ``labels`` int64 [32],
  ``logits`` float32 [32, 10] (PyTorch's logits, for regression tests of the ONNX forward pass).
- ``mnist_cnn.json``: metadata (accuracy, split, epochs, seed, bounds, versions, the command).

Requirements: ``tools/requirements-train.txt`` (CPU torch, numpy, onnx, onnxruntime).

Usage::

    python tools/train_mnist.py [--data PATH] [--out DIR] [--epochs N] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist" / "mnist_test.npz"
DEFAULT_OUT = ROOT / "python" / "dtd" / "data"
N_TRAIN = 8000
N_SAMPLES = 32


def build_model() -> nn.Sequential:
    """Return the (untrained) CNN; the module names become the ONNX node and weight names."""
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 32, 3, padding=1)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(32, 32, 3, padding=1)),
                ("relu2", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(32, 64, 3, padding=1)),
                ("relu3", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(64 * 7 * 7, 128)),
                ("relu4", nn.ReLU()),
                ("fc2", nn.Linear(128, 10)),
            ]
        )
    )


def seed_everything(seed: int) -> None:
    """Seed Python and torch (NumPy is used without randomness), and ask torch for deterministic kernels."""
    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def augment(x: torch.Tensor, gen: torch.Generator, shift: float, rotate: float, scale: float) -> torch.Tensor:
    """Random affine augmentation: shifts up to ``shift`` px, rotations up to ``rotate`` degrees, zoom.

    Parameters
    ----------
    x : torch.Tensor
        Batch [B, 1, 28, 28] in [0, 1].
    gen : torch.Generator
        Seeded generator for the random parameters.
    shift, rotate, scale : float
        Maximum shift in pixels, maximum rotation in degrees, maximum relative zoom.

    Returns
    -------
    torch.Tensor
        The augmented batch, same shape, still in [0, 1] (bilinear sampling, zero fill).
    """
    b, _, h, w = x.shape

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    angle = torch.deg2rad(uniform(-rotate, rotate))
    zoom = uniform(1.0 - scale, 1.0 + scale)
    # affine_grid works in normalised coordinates [-1, 1]: a shift of p pixels is 2 p / size.
    tx = uniform(-shift, shift) * 2.0 / w
    ty = uniform(-shift, shift) * 2.0 / h
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def clamp_biases(model: nn.Module) -> None:
    """Project every bias onto ``b <= 0`` (in place)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.clamp_(max=0.0)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Fraction of correctly classified samples."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / len(x)


def pick_samples(labels: np.ndarray, start: int, n: int, per_class: int) -> np.ndarray:
    """Indices of ``n`` held-out digits: the first ``per_class`` of each class, then the next unused ones."""
    chosen: list[int] = []
    counts = np.zeros(10, dtype=int)
    for i in range(start, len(labels)):
        if counts[labels[i]] < per_class:
            chosen.append(i)
            counts[labels[i]] += 1
        if counts.min() >= per_class:
            break
    rest = [i for i in range(start, len(labels)) if i not in set(chosen)]
    chosen += rest[: n - len(chosen)]
    return np.array(sorted(chosen), dtype=np.int64)


def export_onnx(model: nn.Module, path: Path) -> None:
    """Export with the TorchScript-based exporter: opset 13, dynamic batch, input ``x``, output ``logits``."""
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    kwargs: dict[str, object] = dict(
        opset_version=13,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
        do_constant_folding=True,
    )
    try:
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, **kwargs)  # type: ignore[arg-type]
    except TypeError:  # older torch without the dynamo switch
        torch.onnx.export(model, (dummy,), str(path), **kwargs)  # type: ignore[arg-type]

    import onnx

    proto = onnx.load(str(path))
    # The exporter names nodes "/conv1/Conv"; keep the module name ("conv1") as the layer name.
    for node in proto.graph.node:
        parts = [p for p in node.name.split("/") if p]
        if len(parts) == 2:
            node.name = parts[0]
    onnx.checker.check_model(proto)
    proto.producer_name = "dtd tools/train_mnist.py (torch " + torch.__version__ + ")"
    proto.doc_string = (
        "Small ReLU CNN for MNIST 1x28x28, inputs in [0, 1] (raw/255), outputs logits. "
        "Trained by dtd's tools/train_mnist.py on the first 8000 MNIST test digits."
    )
    onnx.save(proto, str(path))


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, export and verify; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shift", type=float, default=2.0, help="max random shift in pixels")
    p.add_argument("--rotate", type=float, default=10.0, help="max random rotation in degrees")
    p.add_argument("--scale", type=float, default=0.1, help="max random relative zoom")
    p.add_argument(
        "--nonpositive-bias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="project biases onto b <= 0 after every step (DTD's root-point assumption)",
    )
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    t0 = time.time()

    data = np.load(args.data)
    images, labels = data["images"], data["labels"].astype(np.int64)
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y_all = torch.from_numpy(labels)
    x_tr, y_tr = x_all[:N_TRAIN], y_all[:N_TRAIN]
    x_te, y_te = x_all[N_TRAIN:], y_all[N_TRAIN:]

    model = build_model()
    if args.nonpositive_bias:
        clamp_biases(model)
    steps_per_epoch = (N_TRAIN + args.batch_size - 1) // args.batch_size
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.2
    )
    gen = torch.Generator().manual_seed(args.seed)

    history = []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(N_TRAIN, generator=gen)
        total_loss = 0.0
        for i in range(0, N_TRAIN, args.batch_size):
            idx = perm[i : i + args.batch_size]
            xb = augment(x_tr[idx], gen, args.shift, args.rotate, args.scale)
            loss = F.cross_entropy(model(xb), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if args.nonpositive_bias:
                clamp_biases(model)
            total_loss += float(loss.detach()) * len(idx)
        acc = accuracy(model, x_te, y_te)
        history.append({"epoch": epoch + 1, "train_loss": total_loss / N_TRAIN, "heldout_accuracy": acc})
        print(
            f"epoch {epoch + 1:2d}/{args.epochs}  loss {total_loss / N_TRAIN:.4f}  held-out acc {acc:.4f}  "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )

    train_acc = accuracy(model, x_tr, y_tr)
    test_acc = accuracy(model, x_te, y_te)
    train_seconds = time.time() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "mnist_cnn.onnx"
    export_onnx(model, onnx_path)

    idx = pick_samples(labels, N_TRAIN, N_SAMPLES, per_class=3)
    with torch.no_grad():
        sample_logits = model(x_all[idx]).numpy().astype(np.float32)
    np.savez_compressed(
        args.out / "mnist_samples.npz",
        images=images[idx].astype(np.uint8),
        labels=labels[idx].astype(np.int64),
        logits=sample_logits,
    )

    ort_diff = None
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        ort_logits = sess.run(["logits"], {"x": x_all[idx].numpy()})[0]
        ort_diff = float(np.abs(ort_logits - sample_logits).max())
        print(f"onnxruntime vs torch on the {len(idx)} samples: max |diff| = {ort_diff:.3g}")
        if ort_diff > 1e-4:
            print("error: onnxruntime and torch disagree", file=sys.stderr)
            return 1
    except ImportError:
        print("onnxruntime not installed: skipped the ONNX check")

    biases = [m.bias for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    meta = {
        "model": "mnist_cnn.onnx",
        "architecture": "conv3x3-32 relu conv3x3-32 relu maxpool2 conv3x3-64 relu maxpool2 flatten "
        "dense-128 relu dense-10 (padding 1, no softmax)",
        "input_name": "x",
        "output_name": "logits",
        "input_shape": [1, 28, 28],
        "preprocessing": "x = raw / 255 (float32), no mean/std",
        "low": 0.0,
        "high": 1.0,
        "data": "MNIST test set (10,000 digits) from /work/shared/data/mnist/mnist_test.npz",
        "train_split": [0, N_TRAIN],
        "test_split": [N_TRAIN, len(labels)],
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "test_errors": round((1.0 - test_acc) * (len(labels) - N_TRAIN)),
        "samples": "mnist_samples.npz",
        "sample_indices": idx.tolist(),
        "sample_accuracy": float((sample_logits.argmax(1) == labels[idx]).mean()),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"Adam, one-cycle lr max {args.lr}",
        "augmentation": f"random affine: shift +-{args.shift} px, rotation +-{args.rotate} deg, "
        f"zoom +-{args.scale}",
        "nonpositive_bias": bool(args.nonpositive_bias),
        "max_bias": max(float(b.detach().max()) for b in biases if b is not None),
        "seed": args.seed,
        "threads": args.threads,
        "train_seconds": round(train_seconds, 1),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "opset": 13,
        "onnxruntime_max_abs_diff": ort_diff,
        "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "command": " ".join(
            ["python tools/train_mnist.py", shlex.join(sys.argv[1:] if argv is None else argv)]
        ).strip(),
        "history": history,
    }
    (args.out / "mnist_cnn.json").write_text(json.dumps(meta, indent=2) + "\n")
    size = os.path.getsize(onnx_path)
    print(
        f"train acc {train_acc:.4f}  held-out acc {test_acc:.4f}  ({meta['test_errors']} errors / "
        f"{len(labels) - N_TRAIN})  onnx {size / 1e6:.2f} MB  {train_seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
