"""Images/s of dtd.batch on the shipped MNIST model: one process, explain_dataset with worker processes, a Dask
LocalCluster and local Ray (each with 2 workers of 1 thread), on generated digits (tests/batchdata.py).

    python bench/bench_batch.py --count 4000 --modes process,workers,dask,ray

Start-up (spawning workers, starting Ray) is included in the cluster figures and reported separately where
known; quote medians of several runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from batchdata import generated_digits
from dtd.batch import ArraySource, Explainer, explain_dask, explain_dataset, explain_ray
from dtd.examples import MODEL_FILE, _read


def _process(ex: Explainer, images: np.ndarray) -> float:
    ex({"image": images[:64]}, start=0)  # load and warm up
    t = time.perf_counter()
    ex({"image": images}, start=0)
    return time.perf_counter() - t


def _workers(ex: Explainer, images: np.ndarray, out: Path) -> float:
    np.save(out / "d.npy", images)
    t = time.perf_counter()
    explain_dataset(ArraySource(out / "d.npy"), ex, out / "w", workers=2, format="npy", progress=False)
    return time.perf_counter() - t


def _dask(ex: Explainer, images: np.ndarray, out: Path) -> float:
    import dask.array as da
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        t = time.perf_counter()
        explain_dask(da.from_array(images, chunks=(256, 28, 28)), ex, out / "dask", format="zarr")
        return time.perf_counter() - t


def _ray(ex: Explainer, images: np.ndarray, out: Path) -> float:
    import ray
    import ray.data

    ray.init(num_cpus=2, include_dashboard=False)
    try:

        def load(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"id": batch["id"], "image": images[batch["id"]]}

        t = time.perf_counter()
        ds = ray.data.range(len(images)).map_batches(load, batch_size=256)
        explain_ray(ds, ex, out / "ray", batch_size=256, concurrency=2, num_cpus=0.5)
        return time.perf_counter() - t
    finally:
        ray.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=4000)
    p.add_argument("--modes", default="process,workers,dask,ray")
    args = p.parse_args()
    images, _ = generated_digits(args.count)
    ex = Explainer(_read(MODEL_FILE), low=0.0, high=1.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for mode in args.modes.split(","):
            fn = {"process": _process, "workers": _workers, "dask": _dask, "ray": _ray}[mode]
            seconds = fn(ex, images) if mode == "process" else fn(ex, images, out)  # type: ignore[operator]
            rows.append((mode, seconds))
            print(f"{mode}: {args.count / seconds:.1f} images/s ({seconds:.2f} s)", flush=True)
    print("\n| mode | images/s |\n|---|---|")
    for mode, seconds in rows:
        print(f"| {mode} | {args.count / seconds:.1f} |")


if __name__ == "__main__":
    main()
