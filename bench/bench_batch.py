"""Images/s of dtd.batch: one process, explain_dataset with worker processes, a Dask LocalCluster and local Ray
(each with 2 workers of 1 thread), against the same loop in zennit (batches of the same size, one process).

    python bench/bench_batch.py --model shipped --count 4000 --modes process,workers,dask,ray,zennit --repeats 3
    python bench/bench_batch.py --model lenet --count 2000 --modes process,workers,zennit --repeats 3
    python bench/bench_batch.py --model resnet18 --count 256 --modes process,workers,dask,ray,zennit --batch 16

`shipped` is the MNIST model that ships with dtd (generated digits, tests/batchdata.py; zennit gets the same
network rebuilt in PyTorch with the ONNX file's weights); `lenet` and `resnet18` are bench/compare.py's seeded
torch models, exported to ONNX for dtd (random inputs in [0, 1]). zennit needs torch and zennit (the bench venv,
bench/requirements.txt). Every mode explains the same inputs with the bounded preset (zennit with the same rules);
`workers`, `dask` and `ray` write float32 maps (npy shards or Zarr, plus the Parquet index), `process` and
`zennit` keep them in memory.
Start-up (spawning workers, starting Ray) is included in the cluster figures; quote medians of several runs
(--repeats) on a quiet machine. The table also gives the bytes of one stored map per format and the cost of a
million images at the measured rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batchdata import generated_digits
from dtd.batch import ArraySource, Explainer, explain_dask, explain_dataset, explain_ray
from dtd.examples import MODEL_FILE, _read


def _shipped_torch(onnx_bytes: bytes) -> Any:
    """The shipped model in PyTorch (its architecture, README "The shipped model"), with the ONNX file's weights."""
    import onnx
    import torch
    import torch.nn as nn
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(onnx_bytes).graph.initializer}
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    layers = {"conv1": net[0], "conv2": net[2], "conv3": net[5], "fc1": net[9], "fc2": net[11]}
    for name, module in layers.items():
        module.weight.data = torch.from_numpy(weights[f"{name}.weight"].copy())
        module.bias.data = torch.from_numpy(weights[f"{name}.bias"].copy())
    return net.eval()


def _inputs(model: str, count: int, workdir: Path) -> tuple[bytes, np.ndarray, Any]:
    """(ONNX bytes, inputs [count, *shape] float32 or uint8 digits, torch model or None: None for the shipped model
    without torch)."""
    if model == "shipped":
        images, _ = generated_digits(count)
        onnx_bytes = _read(MODEL_FILE)
        try:
            torch_model = _shipped_torch(onnx_bytes)
        except ImportError:
            torch_model = None
        return onnx_bytes, images, torch_model
    import compare

    torch_model, shape = compare.build_torch(model, 0)
    path = workdir / f"{model}.onnx"
    compare.export_onnx(torch_model, shape, path)
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(count, *shape)).astype(np.float32)
    return path.read_bytes(), x, torch_model


def _explainer(model: str, onnx: bytes, batch: int) -> Explainer:
    rules: Any = "bounded"
    if model != "shipped":
        import compare

        rules = compare.dtd_rules(model, 0.0, 1.0)
    return Explainer(onnx, rules=rules, low=0.0, high=1.0, micro_batch=batch)


def _process(ex: Explainer, images: np.ndarray, out: Path) -> float:
    ex({"image": images[: ex.batch_slots]}, start=0)  # load and warm up
    t = time.perf_counter()
    for i in range(0, len(images), 256):
        ex({"image": images[i : i + 256]}, start=i)
    return time.perf_counter() - t


def _workers(ex: Explainer, images: np.ndarray, out: Path) -> float:
    np.save(out / "d.npy", images)
    t = time.perf_counter()
    # shards small enough that both workers get several (explain_dataset's default of 256 samples would give a
    # 256-image run one shard, so one worker)
    shard = max(ex.batch_slots, min(256, len(images) // 8 // ex.batch_slots * ex.batch_slots))
    explain_dataset(
        ArraySource(out / "d.npy"), ex, out / "w", shard_size=shard, workers=2, format="npy", progress=False
    )
    return time.perf_counter() - t


def _dask(ex: Explainer, images: np.ndarray, out: Path) -> float:
    import dask.array as da
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        t = time.perf_counter()
        chunk = max(ex.batch_slots, 64)
        explain_dask(
            da.from_array(images, chunks=(chunk, *images.shape[1:])), ex, out / "dask", format="zarr"
        )
        return time.perf_counter() - t


def _ray(ex: Explainer, images: np.ndarray, out: Path) -> float:
    import ray
    import ray.data

    ray.init(num_cpus=2, include_dashboard=False)
    try:

        def load(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"id": batch["id"], "image": images[batch["id"]]}

        t = time.perf_counter()
        size = max(ex.batch_slots, 64)
        ds = ray.data.range(len(images)).map_batches(load, batch_size=size)
        explain_ray(ds, ex, out / "ray", batch_size=size, concurrency=2, num_cpus=0.5)
        return time.perf_counter() - t
    finally:
        ray.shutdown()


def _zennit(model: str, torch_model: Any, images: np.ndarray, batch: int) -> float:
    """The same explanations in zennit, batches of `batch`, in this process with 2 threads (torch's default here)."""
    import compare
    import torch

    if images.dtype == np.uint8:  # digits: pixels scaled to [0, 1] as dtd's Explainer scales them
        images = (images.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)[:, None]
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    with compare.zennit_attributor(torch_model, model, 0.0, 1.0) as attributor:
        attributor(x[:batch], compare.one_hot_logits)  # warm up
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            attributor(x[i : i + batch], compare.one_hot_logits)
        return time.perf_counter() - t


def _map_bytes(images: np.ndarray) -> dict[str, int]:
    values = int(np.prod(images.shape[1:]))
    spatial = int(np.prod(images.shape[2:])) if images.ndim > 3 else values
    return {
        "full float32": 4 * values,
        "full float16": 2 * values,
        "channel-summed float32": 4 * spatial,
        "channel-summed float16": 2 * spatial,
    }


def main() -> None:
    """Run the modes and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shipped", choices=("shipped", "lenet", "resnet18"))
    p.add_argument("--count", type=int, default=4000)
    p.add_argument("--modes", default="process,workers,dask,ray")
    p.add_argument("--batch", type=int, default=64, help="micro-batch of dtd's Explainer and zennit's batch")
    p.add_argument("--repeats", type=int, default=1, help="runs per mode (the median is reported)")
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        onnx, images, torch_model = _inputs(args.model, args.count, work)
        ex = _explainer(args.model, onnx, args.batch)
        for mode in args.modes.split(","):
            seconds = []
            for r in range(args.repeats):
                out = work / f"{mode}-{r}"
                out.mkdir()
                if mode == "zennit":
                    if torch_model is None:
                        raise SystemExit(
                            "zennit needs torch and zennit (the bench venv: bench/requirements.txt)"
                        )
                    seconds.append(_zennit(args.model, torch_model, images, args.batch))
                else:
                    fn = {"process": _process, "workers": _workers, "dask": _dask, "ray": _ray}[mode]
                    seconds.append(fn(ex, images, out))
            s = statistics.median(seconds)
            rows.append((mode, s))
            print(f"{mode}: {args.count / s:.1f} images/s (median of {len(seconds)}: {s:.2f} s)", flush=True)
    print(f"\n{args.model}, {args.count} inputs of shape {list(images.shape[1:])}, micro-batch {args.batch}")
    print("\n| mode | images/s | core-hours per million images |\n|---|---|---|")
    for mode, s in rows:
        cores = 1 if mode == "process" else 2
        print(f"| {mode} | {args.count / s:.1f} | {s / args.count * 1e6 * cores / 3600:.1f} |")
    print("\n| map format | bytes per map | per million maps |\n|---|---|---|")
    for name, size in _map_bytes(images).items():
        print(f"| {name} | {size:,} | {size * 1e6 / 2**30:.1f} GiB |")


if __name__ == "__main__":
    main()
