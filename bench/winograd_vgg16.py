"""VGG-16 at batch 1: dtd's explanation, exact vs Winograd (algorithm="winograd"), against onnxruntime's forward.

Needs neither torch nor zennit (bench/compare.py does, and has the same "dtd winograd explain" engine): the
VGG-16 graph (torchvision's layout, 138 M parameters, He-normal random weights, zero biases) is written with
onnx.helper. The three engines run in alternating blocks (order rotated each cycle) so that the load of a shared
machine reaches all of them alike; the figures are medians over all calls.

    OMP_NUM_THREADS=2 python bench/winograd_vgg16.py --threads 2 --blocks 7 --calls 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import onnx
from onnx import helper, numpy_helper

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_onnx(path: Path, seed: int) -> None:
    """VGG-16 (conv 3x3 pad 1 + ReLU stacks, 2x2 max pooling, three dense layers) with random weights."""
    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    inits: list[Any] = []
    cur, ch = "x", 3

    def param(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    for i, v in enumerate(CFG):
        if v == "M":
            nodes.append(helper.make_node("MaxPool", [cur], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            cur = f"p{i}"
            continue
        m = int(v)
        w = rng.standard_normal((m, ch, 3, 3)) * np.sqrt(2.0 / (9 * ch))
        nodes.append(
            helper.make_node(
                "Conv", [cur, param(f"w{i}", w), param(f"b{i}", np.zeros(m))], [f"c{i}"], pads=[1, 1, 1, 1]
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        cur, ch = f"r{i}", m
    nodes.append(helper.make_node("Flatten", [cur], ["f"]))
    cur, n_in = "f", 512 * 7 * 7
    for j, n_out in enumerate((4096, 4096, 1000)):
        w = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        out = f"d{j}" if j < 2 else "y"
        nodes.append(
            helper.make_node(
                "Gemm", [cur, param(f"fw{j}", w), param(f"fb{j}", np.zeros(n_out))], [out], transB=1
            )
        )
        if j < 2:
            nodes.append(helper.make_node("Relu", [out], [f"dr{j}"]))
            cur = f"dr{j}"
        n_in = n_out
    graph = helper.make_graph(
        nodes,
        "vgg16",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1000])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def blocks(fns: dict[str, Callable[[], Any]], n_blocks: int, calls: int) -> dict[str, list[float]]:
    """Milliseconds of every call, engines interleaved block by block (order rotated), one warm-up call each."""
    for fn in fns.values():
        fn()
    names = list(fns)
    out: dict[str, list[float]] = {k: [] for k in names}
    for b in range(n_blocks):
        for k in names[b % len(names) :] + names[: b % len(names)]:
            for _ in range(calls):
                t0 = time.perf_counter()
                fns[k]()
                out[k].append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import onnxruntime as ort

    import dtd

    dtd.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vgg16.onnx"
        vgg16_onnx(path, args.seed)
        model = dtd.load(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(args.seed).uniform(0.0, 1.0, (1, 3, 224, 224)).astype(np.float32)
    kw = {"low": 0.0, "high": 1.0}
    fns: dict[str, Callable[[], Any]] = {
        "onnxruntime forward": lambda: sess.run(None, {"x": x}),
        "dtd forward": lambda: model.forward(x),
        "dtd explain (exact)": lambda: dtd.explain(model, x, **kw),
        "dtd explain (winograd)": lambda: dtd.explain(model, x, algorithm="winograd", **kw),
    }
    times = blocks(fns, args.blocks, args.calls)
    med = {k: statistics.median(v) for k, v in times.items()}
    ort_ms = med["onnxruntime forward"]
    print(
        f"VGG-16 batch 1, {args.threads} threads, {args.blocks} blocks x {args.calls} calls; dtd {dtd.__version__}"
    )
    for k, v in med.items():
        q = statistics.quantiles(times[k], n=4)
        print(
            f"  {k:24s} median {v:8.1f} ms  (quartiles {q[0]:.1f} - {q[2]:.1f})  {v / ort_ms:5.2f}x ort forward"
        )
    exact = dtd.explain(model, x, **kw).astype(np.float64)
    wino = dtd.explain(model, x, algorithm="winograd", **kw)
    err = float(np.linalg.norm(wino - exact) / np.linalg.norm(exact))
    print(
        f"  winograd vs exact explanation: relative L2 {err:.2e}; winograd / exact time "
        f"{med['dtd explain (winograd)'] / med['dtd explain (exact)']:.3f}"
    )


if __name__ == "__main__":
    main()
