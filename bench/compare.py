"""Side-by-side benchmark: dtd's explanation vs zennit's with the same rules, vs onnxruntime's and PyTorch's forward.

Builds five standard networks in PyTorch with seeded Kaiming-normal weights (the ones dtd_bench builds in C++),
exports each to ONNX (opset 13), loads it with ``dtd.load``, and times in one process:

- ``dtd.explain`` with the DTD bounded preset (z^beta on the first layer with the input range as bounds, z+ on
  the others, biases excluded) -- for ResNet-18 with ``add="proportional"``, which is what zennit's Norm rule on
  the Sum module of its ResNet canonizer computes;
- zennit's ``Gradient`` attributor with exactly those rules: ``ZBox(low, high, zero_params=["bias"])`` first,
  ``ZPlus(zero_params=["bias"])`` elsewhere, ``Pass`` on activations, ``Norm`` on sums and average pools,
  ``attr_output = one_hot(argmax) * logits`` (RULES.md, "Comparing with zennit");
- dtd's, onnxruntime's and PyTorch's forward pass.

Each configuration is timed twice: warm, in alternating blocks (each engine repeats its call for a block of up to
``--block-calls`` calls or ``--block-time`` seconds, engines interleaved block by block, at least ``--min-blocks``
blocks each; the median over all calls), and cold, round-robin (every engine once per round, so each call finds
the previous engine's data in the caches). Throughput is reported as GFLOP/s (forward multiply-adds x 2 per
second; an explanation as 3 products) and as a fraction of this machine's SGEMM peak, measured in the same run
(the fastest of torch.mm, onnxruntime's MatMul and a dtd dense layer on a square float32 product).

It checks that the relevance maps of dtd and zennit agree, reports medians and ratios, optionally the peak RSS of
one explanation in a fresh process per engine (``--rss``), runs the C++ harness ``dtd_bench`` on the same models,
and writes everything to bench/RESULTS.md. Requirements: bench/requirements.txt plus dtd itself, e.g.::

    python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install -r bench/requirements.txt
    /tmp/benchenv/bin/pip install --no-build-isolation . -Cbuild-dir=/tmp/benchenv-build
    /tmp/benchenv/bin/python bench/compare.py --models mlp,lenet,vgg11 --rss
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

# Several thread pools share the cores in this one process (PyTorch's and dtd's OpenMP runtimes, onnxruntime's
# pool). Threads that spin after their own work steal the cores the next engine needs, so nobody spins: each
# engine's workers sleep between calls (OMP_WAIT_POLICY for the OpenMP runtimes, allow_spinning=0 for
# onnxruntime). Set before torch and dtd load their runtimes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import Any

import numpy as np

MODELS = ("mlp", "lenet", "vgg11", "resnet18", "vgg16")
BIG = ("resnet18", "vgg16")  # 224x224 inputs: batch 16 becomes 8 by default
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

VGG11_CIFAR = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


# ---- models ---------------------------------------------------------------------------------------------------


def _vgg(cfg: list[Any], in_ch: int, flat: int, fcs: list[int]) -> Any:
    import torch.nn as nn

    layers: list[Any] = []
    c = in_ch
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU()]
            c = int(v)
    layers.append(nn.Flatten())
    for i, out in enumerate(fcs):
        layers.append(nn.Linear(flat if i == 0 else fcs[i - 1], out))
        if i + 1 < len(fcs):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def build_torch(name: str, seed: int) -> tuple[Any, tuple[int, ...]]:
    """Build one of ``MODELS`` in PyTorch with seeded weights, in eval mode.

    Parameters
    ----------
    name : str
        One of ``MODELS``.
    seed : int
        Seed of ``torch.manual_seed``; the same seed gives the same weights.

    Returns
    -------
    model : torch.nn.Module
        The network (ResNet-18 keeps its BatchNorm layers: the ONNX export and zennit's canonizer fold them).
    input_shape : tuple of int
        Per-sample input shape.
    """
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    if name == "mlp":
        model, shape = (
            nn.Sequential(
                nn.Flatten(),
                nn.Linear(784, 300),
                nn.ReLU(),
                nn.Linear(300, 100),
                nn.ReLU(),
                nn.Linear(100, 10),
            ),
            (1, 28, 28),
        )
    elif name == "lenet":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Linear(1024, 10),
        )  # fmt: skip
        shape = (1, 28, 28)
    elif name == "vgg11":
        model, shape = _vgg(VGG11_CIFAR, 3, 512, [10]), (3, 32, 32)
    elif name == "vgg16":
        model, shape = _vgg(VGG16, 3, 512 * 7 * 7, [4096, 4096, 1000]), (3, 224, 224)
    elif name == "resnet18":
        import torchvision

        model, shape = torchvision.models.resnet18(weights=None), (3, 224, 224)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # N(0, 2 / fan_in)
                if m.bias is not None:
                    nn.init.normal_(m.bias, std=0.01)
            elif isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so that folding matters
                # eps 0: zennit's canonizer leaves each merged BatchNorm in place as x / sqrt(1 + eps), which with
                # torch's eps 1e-5 shifts its relevance by ~5e-5 relative on ResNet-18 (dtd folds exactly)
                m.eps = 0.0
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.01)
    return model.eval(), shape


def export_onnx(model: Any, shape: tuple[int, ...], path: Path) -> None:
    """Export ``model`` to ONNX (opset 13, TorchScript exporter, dynamic batch axis)."""
    import torch

    with warnings_silenced():
        torch.onnx.export(
            model,
            (torch.zeros(1, *shape),),
            str(path),
            opset_version=13,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )


@contextlib.contextmanager
def warnings_silenced() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def dtd_rules(name: str, low: float, high: float) -> Any:
    """The DTD bounded preset as dtd rules; ResNet's Add proportional, like zennit's Norm on its Sum module."""
    import dtd

    if name == "resnet18":
        return dtd.rules.Composite(first=dtd.rules.ZBox(low, high), add="proportional")
    return "bounded"


def zennit_attributor(model: Any, name: str, low: float, high: float) -> Any:
    """A zennit Gradient attributor with the same rules as ``dtd_rules`` (to be used as a context manager)."""
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Norm, Pass, ZBox, ZPlus
    from zennit.torchvision import ResNetCanonizer
    from zennit.types import Activation, AvgPool, BatchNorm, Linear

    # as zennit's own layer_map_base: the canonizer leaves each merged BatchNorm in place as an identity, which
    # must pass relevance through unchanged
    layer_map = [
        (Activation, Pass()),
        (BatchNorm, Pass()),
        (Sum, Norm()),
        (AvgPool, Norm()),
        (Linear, ZPlus(zero_params=["bias"])),
    ]
    first_map = [(Linear, ZBox(low=low, high=high, zero_params=["bias"]))]
    canonizers = [ResNetCanonizer()] if name == "resnet18" else []
    composite = SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=first_map, canonizers=canonizers)
    return Gradient(model=model, composite=composite)


def one_hot_logits(out: Any) -> Any:
    """zennit's attr_output: the top logit of each sample, one-hot, so relevance starts at f_c(x) as in dtd."""
    import torch

    mask = torch.zeros_like(out)
    mask.scatter_(1, out.argmax(1, keepdim=True), 1.0)
    return mask * out


# ---- timing ---------------------------------------------------------------------------------------------------


def round_robin(
    fns: dict[str, Callable[[], Any]], min_rounds: int, min_time: float, max_time: float
) -> dict[str, list[float]]:
    """Time every function once per round, rotating the order, after one warm-up call each.

    Stops when ``min_rounds`` rounds and ``min_time`` seconds are both done, or after ``max_time`` seconds
    once 3 rounds (``min_rounds`` if smaller) are done. Returns milliseconds per function.
    """
    for fn in fns.values():
        fn()
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    rounds = 0
    while True:
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for n in order:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(1e3 * (time.perf_counter() - t0))
        rounds += 1
        elapsed = time.perf_counter() - start
        if rounds >= min_rounds and elapsed >= min_time:
            break
        if rounds >= min(3, min_rounds) and elapsed >= max_time:
            break
    return times


def blocks(
    fns: dict[str, Callable[[], Any]],
    min_blocks: int,
    block_time: float,
    block_calls: int,
    min_time: float,
) -> tuple[dict[str, list[float]], int]:
    """Time every function warm: in blocks of repeated calls, engines interleaved block by block.

    After one warm-up call each, every engine in turn runs one block: the same call repeated until ``block_calls``
    calls or ``block_time`` seconds are done, whichever comes first (at least one call). The order of the engines
    rotates every cycle. Stops when every engine has ``min_blocks`` blocks and ``min_time`` seconds have passed.
    Returns milliseconds of every call per function, and the number of blocks per engine.
    """
    for fn in fns.values():
        fn()
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    cycles = 0
    while True:
        order = names[cycles % len(names) :] + names[: cycles % len(names)]
        for n in order:
            fn, calls, block_start = fns[n], 0, time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter()
                times[n].append(1e3 * (t1 - t0))
                calls += 1
                if calls >= block_calls or t1 - block_start >= block_time:
                    break
        cycles += 1
        elapsed = time.perf_counter() - start
        if cycles >= min_blocks and elapsed >= min_time:
            break
    return times, cycles


def idle_cpu_ms(fn: Callable[[], Any], seconds: float = 0.2) -> float:
    """CPU time (ms) the whole process burns during ``seconds`` of sleep right after a call of ``fn``.

    Near 0 when the engine's worker threads wait passively; about ``seconds`` x threads when they spin.
    """
    fn()
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return 1e3 * ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


# ---- SGEMM peak -------------------------------------------------------------------------------------------------


def matmul_onnx(n: int, path: Path) -> None:
    """A one-node ONNX model: y[N, n] = x[N, n] @ W[n, n] (W seeded), for onnxruntime's and dtd's GEMM."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "sgemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def sgemm_fns(n: int, threads: int, workdir: Path) -> dict[str, Callable[[], Any]]:
    """An n x n x n float32 product by torch (torch.mm), onnxruntime (MatMul) and dtd (a dense layer at batch n)."""
    import torch

    import dtd

    path = workdir / f"sgemm{n}.onnx"
    matmul_onnx(n, path)
    x = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(x.T.copy())
    sess = ort_session(path, threads)
    model = dtd.load(path)

    def torch_mm() -> Any:
        with torch.inference_mode():
            return torch.mm(xt, wt)

    return {
        "torch.mm": torch_mm,
        "onnxruntime MatMul": partial(sess.run, None, {"x": x}),
        "dtd dense": partial(model.forward, x),
    }


def sgemm_peak(n: int, threads: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """This machine's float32 GEMM rate by the three engines of ``sgemm_fns``, timed like the engines (blocks,
    medians). The fastest counts as the peak; each model configuration then times that one again, interleaved
    with the engines, so that the fractions of the peak follow the load of a shared machine."""
    set_threads(threads)
    fns = sgemm_fns(n, threads, workdir)
    ms, _ = blocks(fns, args.min_blocks, args.block_time, args.block_calls, 0.0)
    gflops = {k: 2.0 * n**3 / (statistics.median(v) * 1e-3) / 1e9 for k, v in ms.items()}
    best = max(gflops, key=lambda k: gflops[k])
    rec = {"n": n, "threads": threads, "gflops": gflops, "peak_gflops": gflops[best], "peak_by": best}
    rec["fn"] = fns[best]  # for the configurations (not written to the JSON)
    print(
        f"SGEMM {n}x{n}x{n}, {threads} thread(s): "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in gflops.items())
        + f" -> peak {gflops[best]:.1f} ({best})",
        flush=True,
    )
    return rec


def set_threads(n: int) -> None:
    import torch

    import dtd

    torch.set_num_threads(n)
    dtd.set_num_threads(n)


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def bench_model(
    name: str, args: argparse.Namespace, workdir: Path, peaks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """All timings and checks of one model: one record per (batch, threads)."""
    import torch

    import dtd

    model, shape = build_torch(name, args.seed)
    onnx_path = workdir / f"{name}.onnx"
    export_onnx(model, shape, onnx_path)
    dmodel = dtd.load(onnx_path)
    zmodel = copy.deepcopy(model)  # zennit's canonizer and hooks act on their own copy
    for p in zmodel.parameters():
        p.requires_grad_(False)
    rules = dtd_rules(name, args.low, args.high)
    macs = sum(layer.macs for layer in dmodel.layers)  # multiply-adds of one sample's forward pass
    records = []
    batches = [min(b, 8) if name in BIG and args.batch is None else b for b in (args.batch or [1, 16])]
    rng = np.random.default_rng(args.seed)
    with zennit_attributor(zmodel, name, args.low, args.high) as attributor:
        for batch in dict.fromkeys(batches):
            x = rng.uniform(args.low, args.high, size=(batch, *shape)).astype(np.float32)
            xt = torch.from_numpy(x)
            for threads in args.threads:
                set_threads(threads)
                sess = ort_session(onnx_path, threads)
                feed = {sess.get_inputs()[0].name: x}

                def torch_forward(xt: Any = xt) -> Any:
                    with torch.inference_mode():
                        return model(xt)

                fns: dict[str, Callable[[], Any]] = {
                    "dtd explain": partial(dtd.explain, dmodel, x, rules=rules, low=args.low, high=args.high),
                    "dtd winograd explain": partial(
                        dtd.explain,
                        dmodel,
                        x,
                        rules=rules,
                        low=args.low,
                        high=args.high,
                        algorithm="winograd",
                    ),
                    "zennit explain": partial(attributor, xt, one_hot_logits),
                    "dtd forward": partial(dmodel.forward, x),
                    "onnxruntime forward": partial(sess.run, None, feed),
                    "torch forward": torch_forward,
                }
                peak = next((p for p in peaks if p["threads"] == threads), None)
                timed = dict(fns)
                if peak is not None:  # the SGEMM as one more engine of the warm blocks: the peak at this load
                    timed["sgemm"] = peak["fn"]
                warm, nblocks = blocks(
                    timed, args.min_blocks, args.block_time, args.block_calls, args.min_time
                )
                sgemm_ms = warm.pop("sgemm", None)
                cold = round_robin(fns, args.min_rounds, args.cold_time, args.max_time)
                med = {k: statistics.median(v) for k, v in warm.items()}
                idle = {k: idle_cpu_ms(fn) for k, fn in fns.items()}
                # correctness: relevance maps and logits
                r_dtd = dtd.explain(dmodel, x, rules=rules, low=args.low, high=args.high)
                _, r_z = attributor(xt, one_hot_logits)
                r_z = r_z.detach().numpy()
                scale = float(np.abs(r_z).max()) or 1.0
                logits = {
                    "dtd": dmodel.forward(x),
                    "onnxruntime": sess.run(None, feed)[0],
                    "torch": torch_forward().numpy(),
                }
                lscale = float(np.abs(logits["torch"]).max()) or 1.0
                rec = {
                    "model": name,
                    "batch": batch,
                    "threads": threads,
                    "blocks": nblocks,
                    "calls": {k: len(v) for k, v in warm.items()},
                    "rounds": len(cold["dtd explain"]),
                    "median_ms": med,
                    "min_ms": {k: min(v) for k, v in warm.items()},
                    "cold_median_ms": {k: statistics.median(v) for k, v in cold.items()},
                    "idle_cpu_ms": idle,
                    "forward_flop": 2.0 * macs * batch,
                    "peak_gflops": None
                    if sgemm_ms is None or peak is None
                    else 2.0 * peak["n"] ** 3 / (statistics.median(sgemm_ms) * 1e-3) / 1e9,
                    "max_rel_diff_relevance": float(np.abs(r_dtd - r_z).max()) / scale,
                    "relevance_sum_dtd": float(r_dtd.sum()),
                    "relevance_sum_zennit": float(r_z.sum()),
                    "max_rel_diff_logits_ort": float(np.abs(logits["dtd"] - logits["onnxruntime"]).max())
                    / lscale,
                    "max_rel_diff_logits_torch": float(np.abs(logits["dtd"] - logits["torch"]).max())
                    / lscale,
                }
                records.append(rec)
                print(format_record(rec), flush=True)
    return records


ENGINES = (
    "dtd explain",
    "zennit explain",
    "onnxruntime forward",
    "torch forward",
    "dtd forward",
    "dtd winograd explain",
)


def products(engine: str) -> float:
    """Forward passes of arithmetic one call costs: an explanation counts as 3 products (DESIGN.md)."""
    return 3.0 if engine.endswith("explain") else 1.0


def gflops(r: dict[str, Any], engine: str, key: str = "median_ms") -> float:
    """GFLOP/s of one engine: forward MACs x 2 (x 3 for an explanation) per median second."""
    return products(engine) * r["forward_flop"] / (r[key][engine] * 1e-3) / 1e9


def format_record(r: dict[str, Any]) -> str:
    m, c = r["median_ms"], r["cold_median_ms"]
    parts = [f"{e} {m[e]:.2f} ({c[e]:.2f}) ms {gflops(r, e):.1f} GF/s" for e in ENGINES]
    return (
        f"{r['model']:<9} b={r['batch']:<2} t={r['threads']} warm (cold) | "
        + " | ".join(parts)
        + f" | rel.diff {r['max_rel_diff_relevance']:.1e}"
    )


# ---- peak memory in a fresh process ---------------------------------------------------------------------------


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def rss_child(engine: str, name: str, batch: int, onnx_path: str, seed: int, low: float, high: float) -> None:
    """Child process: load one engine and model, reset the peak RSS, run one explanation, print JSON."""
    x = np.random.default_rng(seed).uniform(low, high, size=(batch, *build_shape(name))).astype(np.float32)
    if engine == "dtd":
        import dtd

        model = dtd.load(onnx_path)
        rules = dtd_rules(name, low, high)

        def run() -> Any:
            return dtd.explain(model, x, rules=rules, low=low, high=high)
    else:
        import torch

        tmodel, _ = build_torch(name, seed)
        for p in tmodel.parameters():
            p.requires_grad_(False)
        xt = torch.from_numpy(x)
        attributor = zennit_attributor(tmodel, name, low, high)
        attributor.__enter__()

        def run() -> Any:
            return attributor(xt, one_hot_logits)

    baseline = _status_mb("VmRSS:")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        resettable = True
    except OSError:
        resettable = False
    run()
    peak = _status_mb("VmHWM:") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "resettable": resettable}))


def build_shape(name: str) -> tuple[int, ...]:
    return {"mlp": (1, 28, 28), "lenet": (1, 28, 28), "vgg11": (3, 32, 32)}.get(name, (3, 224, 224))


def measure_rss(name: str, batch: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of one explanation per engine, each in a fresh process (the model already loaded)."""
    out: dict[str, Any] = {"model": name, "batch": batch}
    for engine in ("dtd", "zennit"):
        cmd = [
            sys.executable,
            __file__,
            "--_rss-child",
            engine,
            name,
            str(batch),
            str(workdir / f"{name}.onnx"),
        ]
        cmd += ["--seed", str(args.seed), "--low", str(args.low), "--high", str(args.high)]
        env = dict(os.environ, OMP_NUM_THREADS=str(max(args.threads)))
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            out[engine] = {"error": res.stderr.strip().splitlines()[-1:] or ["failed"]}
        else:
            out[engine] = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{name:<9} b={batch:<2} peak RSS during one explanation: dtd {out['dtd']} zennit {out['zennit']}")
    return out


# ---- report ---------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    info = {"cpu": platform.processor() or "unknown", "cores": str(os.cpu_count())}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Flags"):
                info[key.strip()] = val.strip()
    flags = info.pop("Flags", "").split()
    info["simd"] = " ".join(f for f in flags if f.startswith(("avx", "fma", "amx")))
    return info


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import torchvision
    import zennit

    import dtd

    try:
        from importlib.metadata import version

        zv = version("zennit")
    except Exception:  # pragma: no cover - metadata missing
        zv = getattr(zennit, "__version__", "?")
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "cpp", "python"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    rev += "+uncommitted changes" if dirty else ""
    return {
        "python": platform.python_version(),
        "dtd": f"{dtd.__version__} (as installed; the repository was at git {rev or '?'} during the run)",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "zennit": zv,
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
    }


def find_dtd_bench() -> Path | None:
    for p in sorted(ROOT.glob("build/*/bench/dtd_bench")):
        if os.access(p, os.X_OK):
            return p
    return None


TARGETS = """\
Targets of issue 12 (float32, warm medians): dtd forward <= 1.0x onnxruntime's forward on every model, batch and
thread count; at batch 1 with 2 threads, the explanation <= 3.0x onnxruntime's forward and <= 0.2x zennit's on
VGG-16 and ResNet-18, <= 0.05x zennit's on the MLP and LeNet; <= 0.2x zennit's at batch 16 (8 here for the
224x224 nets) on every model; VGG-16's explanation with 2 threads >= 1.8x as fast as with 1."""


def target_checks(records: list[dict[str, Any]]) -> list[str]:
    lines = []

    def row(
        name: str, b: int, threads: int, what: str, value: float, target: float, at_most: bool = True
    ) -> None:
        ok = "met" if (value <= target if at_most else value >= target) else "**missed**"
        bound = f"{'<=' if at_most else '>='} {target}"
        lines.append(f"| {name} | {b} | {threads} | {what} | {value:.3f} | {bound} | {ok} |")

    by_key = {(r["model"], r["batch"], r["threads"]): r["median_ms"] for r in records}
    for r in records:
        m = r["median_ms"]
        name, b, t = r["model"], r["batch"], r["threads"]
        row(name, b, t, "dtd fwd / ort fwd", m["dtd forward"] / m["onnxruntime forward"], 1.0)
        if t != 2:
            continue
        if b == 1 and name in BIG:
            row(name, b, t, "dtd expl / ort fwd", m["dtd explain"] / m["onnxruntime forward"], 3.0)
            if name == "vgg16":  # issue 12 point 5: the opt-in Winograd path
                row(
                    name,
                    b,
                    t,
                    "dtd winograd expl / ort fwd",
                    m["dtd winograd explain"] / m["onnxruntime forward"],
                    2.2,
                )
            row(name, b, t, "dtd expl / zennit expl", m["dtd explain"] / m["zennit explain"], 0.2)
        if b == 1 and name in ("mlp", "lenet"):
            row(name, b, t, "dtd expl / zennit expl", m["dtd explain"] / m["zennit explain"], 0.05)
        if b > 1:
            row(name, b, t, "dtd expl / zennit expl", m["dtd explain"] / m["zennit explain"], 0.2)
        one = by_key.get((name, b, 1))
        if name == "vgg16" and one is not None:
            row(name, b, t, "expl speed-up, 2 vs 1 thread", one["dtd explain"] / m["dtd explain"], 1.8, False)
    return lines


def write_results(
    path: Path,
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    rss: list[dict[str, Any]],
    peaks: list[dict[str, Any]],
    bench_out: str | None,
    bench_cmd: str | None,
    load_before: float,
) -> None:
    mi = machine_info()
    ver = versions()
    cmd = "python bench/compare.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    import dtd

    bi = dtd.build_info()
    out = [
        "# dtd benchmark results",
        "",
        "Written by `bench/compare.py`; rerun it to refresh (see bench/README.md). Float32 wall-clock medians, all",
        "engines in one process. **Warm**: in blocks (one engine repeats its call until "
        f"{args.block_calls} calls or {args.block_time} s, whichever comes first; engines interleaved block by block,",
        f"order rotated; at least {args.min_blocks} blocks per engine and {args.min_time} s per configuration), the",
        "median over all calls. **Cold**: round-robin (every engine once per round, order rotated), so each call",
        "finds the caches holding the previous engine's data. One warm-up call each before either.",
        "",
        "## Machine and software",
        "",
        f"- CPU: {mi.get('Model name', mi['cpu'])}; {mi.get('CPU(s)', mi['cores'])} logical CPUs"
        f" ({mi.get('Thread(s) per core', '?')} thread(s) per core); SIMD: {mi['simd'] or '?'}",
        f"- load average before the run: {load_before:.2f} (other processes on the machine make timings noisy)",
        "- " + ", ".join(f"{k} {v}" for k, v in ver.items()),
        f"- dtd core variant loaded: `{bi['variant']}` ({bi['reason']}; `{bi['arch_options'] or 'default'}`; "
        f"own SGEMM kernel: {bi['sgemm_kernel'] if bi['own_sgemm'] else 'no, Eigen'}; Eigen {bi['eigen_version']} "
        f"({bi['eigen_simd']}); OpenMP {bi['openmp']}; {bi['compiler']})",
        f"- threads: {', '.join(map(str, args.threads))} (torch.set_num_threads, onnxruntime intra_op_num_threads,"
        " dtd.set_num_threads, all equal)",
        f"- waiting: OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')} (torch's and dtd's OpenMP), "
        "onnxruntime `session.intra_op.allow_spinning=0`; checked: CPU time the process burns in a 0.2 s sleep "
        "right after each engine's call, max over the configurations: "
        + ", ".join(f"{e} {max(r['idle_cpu_ms'][e] for r in records):.1f} ms" for e in ENGINES if records),
        f"- input: uniform in [{args.low}, {args.high}], seed {args.seed}; rules: z^beta (ZBox) with these bounds on"
        " the first layer, z+ elsewhere, biases excluded, winner-take-all max pooling; ResNet-18: proportional Add"
        ' (dtd `add="proportional"` = zennit `Norm` on the canonizer\'s `Sum`), BatchNorm folded by both',
        f"- command: `{cmd}`",
        "",
        "## SGEMM peak of this machine (same run)",
        "",
        f"A square float32 product (n = {args.sgemm_n}: 2 n^3 FLOP), timed warm like the engines; the "
        "fastest of the three is then timed once more in each configuration's warm blocks, interleaved with the",
        "engines, and that figure is the peak the fractions below refer to (on a shared machine it follows the load).",
        "",
        "| threads | torch.mm GFLOP/s | onnxruntime MatMul GFLOP/s | dtd dense GFLOP/s | peak | by |",
        "|---|---|---|---|---|---|",
    ]
    for p in peaks:
        g = p["gflops"]
        out.append(
            f"| {p['threads']} | {g['torch.mm']:.1f} | {g['onnxruntime MatMul']:.1f} | {g['dtd dense']:.1f} "
            f"| {p['peak_gflops']:.1f} | {p['peak_by']} |"
        )
    out += [
        "",
        "## Latency (median ms): warm, and cold in parentheses",
        "",
        "| model | batch | threads | blocks | rounds | dtd explain | zennit explain | onnxruntime fwd | torch fwd "
        "| dtd fwd | dtd winograd explain | dtd expl / zennit | dtd expl / ort fwd | dtd fwd / ort fwd "
        "| dtd winograd expl / ort fwd |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        m, c = r["median_ms"], r["cold_median_ms"]
        cells = " | ".join(f"{m[e]:.2f} ({c[e]:.2f})" for e in ENGINES)
        out.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {r['blocks']} | {r['rounds']} | {cells} "
            f"| {m['dtd explain'] / m['zennit explain']:.3f} ({c['dtd explain'] / c['zennit explain']:.3f}) "
            f"| {m['dtd explain'] / m['onnxruntime forward']:.2f} "
            f"({c['dtd explain'] / c['onnxruntime forward']:.2f}) "
            f"| {m['dtd forward'] / m['onnxruntime forward']:.2f} "
            f"({c['dtd forward'] / c['onnxruntime forward']:.2f}) "
            f"| {m['dtd winograd explain'] / m['onnxruntime forward']:.2f} "
            f"({c['dtd winograd explain'] / c['onnxruntime forward']:.2f}) |"
        )
    out += [
        "",
        "## Throughput (warm): GFLOP/s and fraction of the SGEMM peak",
        "",
        "Forward multiply-adds x 2 per median second; an explanation counts as 3 products (a forward with the",
        "modified weights, the transposed pass, and the forward it explains), so it is 3 x forward FLOP per second.",
        "",
        "| model | batch | threads | GFLOP per forward | SGEMM peak in these blocks | dtd explain | zennit explain "
        "| onnxruntime fwd | torch fwd | dtd fwd | dtd winograd explain (exact-equivalent FLOP) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        peak = r.get("peak_gflops")
        cells = " | ".join(
            f"{gflops(r, e):.1f}" + (f" ({gflops(r, e) / peak:.0%})" if peak else "") for e in ENGINES
        )
        out.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {r['forward_flop'] / 1e9:.4f} "
            f"| {peak or float('nan'):.1f} | {cells} |"
        )
    out += [
        "",
        "## Agreement",
        "",
        "max |R_dtd - R_zennit| / max |R_zennit| over the batch (float32 both), relevance totals, and the largest",
        "logit difference of dtd's forward against onnxruntime and PyTorch (relative to the largest logit).",
        "",
        "| model | batch | threads | relevance max rel. diff | sum dtd | sum zennit | logits vs ort "
        "| logits vs torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        out.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {r['max_rel_diff_relevance']:.2e} "
            f"| {r['relevance_sum_dtd']:.4g} | {r['relevance_sum_zennit']:.4g} "
            f"| {r['max_rel_diff_logits_ort']:.1e} | {r['max_rel_diff_logits_torch']:.1e} |"
        )
    if rss:
        out += [
            "",
            "## Peak RSS of one explanation",
            "",
            "Each engine in a fresh process: the model loaded first (baseline), then the peak resident set during one",
            "explanation (VmHWM after resetting it through /proc/self/clear_refs).",
            "",
            "| model | batch | dtd baseline MB | dtd peak MB | zennit baseline MB | zennit peak MB "
            "| dtd / zennit peak |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rss:
            d, z = r["dtd"], r["zennit"]
            if "peak_mb" in d and "peak_mb" in z:
                out.append(
                    f"| {r['model']} | {r['batch']} | {d['baseline_mb']:.0f} | {d['peak_mb']:.0f} "
                    f"| {z['baseline_mb']:.0f} | {z['peak_mb']:.0f} | {d['peak_mb'] / z['peak_mb']:.2f} |"
                )
            else:
                out.append(f"| {r['model']} | {r['batch']} | {d} | | {z} | | |")
    checks = target_checks(records)
    if checks:
        out += [
            "",
            "## Targets",
            "",
            TARGETS,
            "",
            "| model | batch | threads | ratio | value | target | |",
            "|---|---|---|---|---|---|---|",
        ]
        out += checks
    if bench_out is not None:
        out += [
            "",
            "## dtd_bench (the C++ harness, same machine, same run)",
            "",
            f"`{bench_cmd}`",
            "",
            "```",
            bench_out.rstrip(),
            "```",
        ]
    text = "\n".join(out) + "\n"
    if args.append and path.exists():
        text = (
            path.read_text()
            + "\n---\n\n"
            + text.replace("# dtd benchmark results", "# dtd benchmark results, continued", 1)
        )
    path.write_text(text)
    print(f"wrote {path}")


# ---- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="dtd vs zennit vs onnxruntime vs PyTorch, side by side.")
    p.add_argument("--models", default="mlp,lenet,vgg11", help=f"comma list of {', '.join(MODELS)}, or all")
    p.add_argument("--batch", help="comma list of batch sizes (default 1,16; 1,8 for resnet18 and vgg16)")
    p.add_argument("--threads", default="2", help="comma list of thread counts (default 2)")
    p.add_argument(
        "--quick", action="store_true", help="2 blocks and 2 rounds per configuration, no minimum time"
    )
    p.add_argument("--min-blocks", type=int, default=5, help="warm: blocks per engine at least (default 5)")
    p.add_argument(
        "--block-time", type=float, default=0.25, help="warm: a block ends after this many seconds"
    )
    p.add_argument("--block-calls", type=int, default=5, help="warm: ... or after this many calls")
    p.add_argument(
        "--min-time",
        type=float,
        default=3.0,
        help="warm: seconds per configuration, once min-blocks are done",
    )
    p.add_argument("--min-rounds", type=int, default=10, help="cold: round-robin rounds at least")
    p.add_argument("--cold-time", type=float, default=1.0, help="cold: seconds, once min-rounds are done")
    p.add_argument(
        "--max-time", type=float, default=30.0, help="cold: stop after this (once 3 rounds are done)"
    )
    p.add_argument(
        "--sgemm-n", type=int, default=2048, help="size of the square SGEMM that measures the peak (0: skip)"
    )
    p.add_argument("--rss", action="store_true", help="also measure peak RSS per engine in fresh processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--low", type=float, default=0.0)
    p.add_argument("--high", type=float, default=1.0)
    p.add_argument("--dtd-bench", help="path of dtd_bench (default: build/*/bench/dtd_bench if built)")
    p.add_argument("--no-dtd-bench", action="store_true", help="do not run the C++ harness")
    p.add_argument(
        "--output", default=str(HERE / "RESULTS.md"), help="report path (default bench/RESULTS.md)"
    )
    p.add_argument("--json", help="also write the raw records as JSON here")
    p.add_argument("--append", action="store_true", help="append to the report instead of replacing it")
    p.add_argument(
        "--_rss-child", nargs=4, metavar=("ENGINE", "MODEL", "BATCH", "ONNX"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    args.models = list(MODELS) if args.models == "all" else [m for m in args.models.split(",") if m]
    for m in args.models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    args.batch = [int(b) for b in args.batch.split(",")] if args.batch else None
    args.threads = [int(t) for t in args.threads.split(",")]
    if args.quick:
        args.min_blocks, args.min_rounds, args.min_time, args.cold_time, args.max_time = 2, 2, 0.0, 0.0, 5.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the report; returns the process exit code."""
    args = parse_args(argv)
    if args._rss_child:
        engine, name, batch, onnx_path = args._rss_child
        rss_child(engine, name, int(batch), onnx_path, args.seed, args.low, args.high)
        return 0
    load_before = os.getloadavg()[0]
    records: list[dict[str, Any]] = []
    rss: list[dict[str, Any]] = []
    peaks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dtd-compare-") as tmp:
        workdir = Path(tmp)
        if args.sgemm_n > 0:
            peaks = [sgemm_peak(args.sgemm_n, t, workdir, args) for t in args.threads]
        for name in args.models:
            records += bench_model(name, args, workdir, peaks)
            if args.rss:
                rss.append(measure_rss(name, 1, workdir, args))
    bench_out = bench_cmd = None
    exe = Path(args.dtd_bench) if args.dtd_bench else find_dtd_bench()
    if exe is not None and not args.no_dtd_bench:
        cmd = [
            str(exe),
            "--models",
            ",".join(args.models),
            "--threads",
            ",".join(map(str, sorted({1, *args.threads}))),
        ]
        if args.quick:
            cmd.append("--quick")
        shown = [os.path.relpath(cmd[0], ROOT) if cmd[0].startswith(str(ROOT)) else cmd[0], *cmd[1:]]
        bench_cmd = " ".join(shlex.quote(c) for c in shown)
        print(f"running {bench_cmd}", flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        bench_out = res.stdout + (f"\n(exit {res.returncode}) {res.stderr}" if res.returncode else "")
        print(bench_out)
    if args.json:
        sgemm = [{k: v for k, v in p.items() if k != "fn"} for p in peaks]
        Path(args.json).write_text(json.dumps({"records": records, "rss": rss, "sgemm": sgemm}, indent=1))
    write_results(Path(args.output), args, records, rss, peaks, bench_out, bench_cmd, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
