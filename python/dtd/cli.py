"""The `dtd` command: demo, explain, explain-dataset, report, info, evaluate.

User mistakes (a missing file, an unsupported op, a wrong input shape) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


class _UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, no traceback."""


def _floats(values: Sequence[float] | None, channels: int, what: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.size not in (1, channels):
        raise _UserError(f"--{what} takes 1 or {channels} values (one per channel), got {arr.size}")
    return arr.reshape(-1, 1, 1) if arr.size > 1 else arr.reshape(())


def _read_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """An image file as float64 [C, H, W] in [0, 1], converted to the model's channels and resized."""
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise _UserError(
            f"{path}: image inputs need a model input of shape [1 or 3, H, W], this model takes {list(shape)}; "
            "pass a .npy array instead"
        )
    try:
        with Image.open(path) as img:
            resized = img.convert("L" if shape[0] == 1 else "RGB").resize(
                (shape[2], shape[1]), Image.Resampling.BILINEAR
            )
            arr = np.asarray(resized, dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise _UserError(f"{path}: not an image file Pillow can read") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _read_inputs(
    paths: Sequence[str], shape: tuple[int, ...], mean: np.ndarray | None, std: np.ndarray | None
) -> list[tuple[str, np.ndarray, bool]]:
    """(name, sample [*shape], is_image) per input; a .npy file may hold one sample or a batch."""
    out = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise _UserError(f"{path}: no such file")
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as err:
                raise _UserError(f"{path}: cannot read the array ({err})") from None
            if arr.dtype.kind not in "fiu":
                raise _UserError(f"{path}: array has dtype {arr.dtype}, expected numbers")
            arr = arr.astype(np.float64)
            if tuple(arr.shape) == shape:
                out.append((path.stem, arr, False))
            elif arr.ndim == len(shape) + 1 and tuple(arr.shape[1:]) == shape:
                out.extend((f"{path.stem}_{i}", a, False) for i, a in enumerate(arr))
            else:
                raise _UserError(
                    f"{path}: array has shape {list(arr.shape)}, expected {list(shape)} or [N, {str(list(shape))[1:]}"
                )
        else:
            img = _read_image(path, shape)
            if mean is not None:
                img = img - mean
            if std is not None:
                img = img / std
            out.append((path.stem, img, True))
    return out


def _unsupported_ops(path: Path) -> list[str]:
    """Op types in the file that dtd has no converter for (the importer would stop at the first)."""
    import onnx

    from . import _core
    from .errors import ModelLoadError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ModelLoadError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    known = set(_core._import_supported_ops())
    return sorted({node.op_type for node in proto.graph.node} - known)


def _cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.model)
    if not path.is_file():
        raise _UserError(f"{path}: no such file")
    missing = _unsupported_ops(path)
    if missing:
        print(f"{path}: unsupported ops: {', '.join(missing)}")
        return 1
    import dtd

    model = dtd.load(path)
    print(model.summary())
    macs = sum(layer.macs for layer in model.layers)
    print(
        f"input '{model.input_name}' {list(model.input_shape)}, output {list(model.output_shape)}, "
        f"{macs / 1e6:.3g} M multiply-adds per sample; all ops supported"
    )
    return 0


def _spatial_axes(model: Any) -> int:
    """How to draw the model's inputs: 1 (signals [C, L] of a 1-D conv net), 3 (volumes [C, D, H, W]) or 2."""
    rank = len(model.input_shape)
    if rank == 4:
        return 3
    spatial_kinds = ("conv", "maxpool", "avgpool", "globalavgpool", "globalmaxpool")
    if rank == 2 and any(
        layer.kind in spatial_kinds and len(layer.input_shapes[0]) == 2 for layer in model.layers
    ):
        return 1
    return 2


def _picture(viz: Any, spatial: int, x: np.ndarray, relevance: np.ndarray) -> Any:
    """The image written for one input: a heatmap (2-D), the signal with its relevance (1-D), depth slices (3-D)."""
    if spatial == 1:
        return viz.signal(x, relevance)
    if spatial == 3:
        return viz.slices(relevance)
    return relevance


def _pixel_bounds(
    mean: np.ndarray | None, std: np.ndarray | None, channels: int
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Pixel bounds [0, 1] mapped through ``(x - mean) / std``: scalars, or one value per channel."""
    lo, hi = np.zeros(()), np.ones(())
    if mean is not None:
        lo, hi = lo - mean, hi - mean
    if std is not None:
        lo, hi = lo / std, hi / std
    if np.ndim(lo):
        return np.broadcast_to(lo, (channels, 1, 1)).reshape(-1), np.broadcast_to(
            hi, (channels, 1, 1)
        ).reshape(-1)
    return float(lo), float(hi)


def _cmd_explain(args: argparse.Namespace) -> int:
    import dtd

    from . import viz

    model = dtd.load(args.model)
    shape = model.input_shape
    channels = shape[0] if shape else 1
    mean = _floats(args.mean, channels, "mean")
    std = _floats(args.std, channels, "std")
    if std is not None and np.any(std == 0):
        raise _UserError("--std must not contain 0")
    inputs = _read_inputs(args.inputs, shape, mean, std)
    low, high = args.low, args.high
    if (low is None) != (high is None):
        raise _UserError("give both --low and --high, or neither")
    images = all(is_image for _, _, is_image in inputs)
    low_b: Any
    high_b: Any
    if low is None and images and args.rules in ("deep_taylor", "bounded"):
        # Pixels in [0, 1] before normalisation: the bounds follow the same transform, per channel.
        low_b, high_b = _pixel_bounds(mean, std, channels)
    else:
        low_b, high_b = low, high
    spatial = _spatial_axes(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for name, x, _ in tqdm(inputs, desc="explaining", unit="input", disable=len(inputs) < 4 or args.quiet):
        details = dtd.explain(
            model, x, target=args.target, rules=args.rules, low=low_b, high=high_b, return_details=True
        )
        np.save(out / f"{name}_relevance.npy", details.relevance)
        viz.save(out / f"{name}_heatmap.png", _picture(viz, spatial, x, details.relevance), scale=args.scale)
        target = int(details.targets) if details.targets is not None else -1
        logit = float(details.logits[target]) if target >= 0 else float("nan")
        if not args.quiet:
            print(
                f"{name}: class {target}, f(x) = {logit:.6g}, sum R = {float(details.relevance.sum()):.6g} "
                f"-> {out / (name + '_heatmap.png')}"
            )
    return 0


def _cmd_explain_dataset(args: argparse.Namespace) -> int:
    from .batch import Explainer, explain_dataset, open_source
    from .batch._extras import require

    require("pyarrow", "dtd explain-dataset (the Parquet index)")
    if args.format == "zarr":
        require("zarr", "dtd explain-dataset --format zarr")
    model_path = Path(args.model)
    if not model_path.is_file():
        raise _UserError(f"{model_path}: no such file")
    if args.workers < 0 or args.shard_size < 1 or args.threads < 1:
        raise _UserError("--workers must be >= 0, --shard-size and --threads >= 1")
    micro_batch: int | str = args.micro_batch
    if micro_batch != "auto":
        try:
            micro_batch = int(micro_batch)
        except ValueError:
            raise _UserError(
                f"--micro-batch must be 'auto' or a positive integer, got {micro_batch!r}"
            ) from None
    target: str | int = args.target
    if target not in ("predicted", "label"):
        try:
            target = int(target)
        except ValueError:
            raise _UserError(
                f"--target must be 'predicted', 'label' or a class index, got {target!r}"
            ) from None
    if (args.low is None) != (args.high is None):
        raise _UserError("give both --low and --high, or neither")
    explainer = Explainer(
        model_path,
        rules=args.rules,
        target=target,
        keep=args.keep,
        map_dtype=args.map_dtype,
        micro_batch=micro_batch,
        num_threads=args.threads,
    )
    model = explainer.loaded_model
    shape = model.input_shape
    channels = shape[0] if shape else 1
    mean = _floats(args.mean, channels, "mean")
    std = _floats(args.std, channels, "std")
    if std is not None and np.any(std == 0):
        raise _UserError("--std must not contain 0")
    out = Path(args.out)
    source = open_source(
        args.inputs, shape, array_key=args.array_key, path_column=args.path_column, cache_dir=out / ".cache"
    )
    low: Any = args.low
    high: Any = args.high
    if low is None and source.is_image and args.rules in ("deep_taylor", "bounded"):
        low, high = _pixel_bounds(mean, std, channels)
    explainer = explainer.replace(
        low=low,
        high=high,
        mean=None if mean is None else mean.reshape(-1),
        std=None if std is None else std.reshape(-1),
    )
    if not args.quiet:
        print(
            f"dtd explain-dataset: {len(source)} samples, {args.workers} worker process(es) x {args.threads} "
            f"thread(s), shards of {args.shard_size}, maps: {args.format} ({args.keep}, {args.map_dtype})"
        )
    summary = explain_dataset(
        source,
        explainer,
        out,
        shard_size=args.shard_size,
        workers=args.workers,
        format=args.format,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(summary.report())
    if args.report is not None:
        from .batch import dataset_report

        report = dataset_report(out, args.report or None, k=args.report_k, inputs=source)
        _print_report(report)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import dtd

    from . import viz
    from .examples import load_example

    ex = load_example()
    n = min(args.count, len(ex.images))
    x = ex.images[:n]
    details = dtd.explain(ex.model, x, rules="bounded", low=ex.low, high=ex.high, return_details=True)
    pred = np.asarray(details.targets)
    logits = details.logits[np.arange(n), pred]
    totals = details.relevance.reshape(n, -1).sum(axis=1)
    tiles, captions = [], []
    for i in range(n):
        tiles += [viz.to_rgb(x[i, 0], low=ex.low, high=ex.high), viz.heatmap(details.relevance[i])]
        captions += [f"label {ex.labels[i]}", f"pred {pred[i]} f={logits[i]:.1f}"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "demo_mnist_dtd.png"
    viz.save(path, viz.grid(tiles, captions, ncols=8, scale=3))
    acc = ex.metadata.get("test_accuracy", ex.metadata.get("accuracy"))
    print(
        f"dtd demo: shipped MNIST CNN ({ex.model.summary().splitlines()[-1].split(',')[0]}"
        + (f", test accuracy {float(acc):.2%}" if acc is not None else "")
        + ")"
    )
    print(
        f"explained {n} held-out digits with the DTD bounded preset (z^beta first layer, z+ above), "
        f"{int((pred == ex.labels[:n]).sum())}/{n} predicted correctly"
    )
    print()
    print("conservation per sample: f_c(x) vs sum of input relevance")
    for i in range(n):
        print(
            f"  digit {i:2d}: label {ex.labels[i]} pred {pred[i]}  f(x) = {logits[i]:9.4f}  sum R = {totals[i]:9.4f}"
            f"  min R = {float(details.relevance[i].min()):.2e}"
        )
    print()
    print("conservation per layer (summed over the digits):")
    print(details.report())
    print()
    print(f"wrote {path}")
    return 0


def _sample_dataset(
    args: argparse.Namespace,
) -> tuple[Any, np.ndarray, Any, Any, str, str, list[str]]:
    """For ``dtd evaluate --model --data``: (model, x [n, *input_shape], low, high, rules, description,
    failures): a seeded random sample of ``--samples`` inputs, prepared as ``dtd explain-dataset`` does."""
    from .batch import Explainer, open_source

    model_path = Path(args.model)
    if not model_path.is_file():
        raise _UserError(f"{model_path}: no such file")
    explainer = Explainer(model_path, rules=args.rules or "deep_taylor", num_threads=None)
    model = explainer.loaded_model
    shape = tuple(model.input_shape)
    channels = shape[0] if shape else 1
    mean = _floats(args.mean, channels, "mean")
    std = _floats(args.std, channels, "std")
    if std is not None and np.any(std == 0):
        raise _UserError("--std must not contain 0")
    source = open_source(args.data, shape, array_key=args.array_key, path_column=args.path_column)
    n = len(source)
    if n == 0:
        raise _UserError(f"{' '.join(args.data)}: no samples")
    count = 100 if args.samples is None else args.samples
    if count < 1:
        raise _UserError("--samples must be >= 1")
    rng = np.random.default_rng(args.seed)
    ids = np.sort(rng.choice(n, size=min(count, n), replace=False))
    samples, failures = [], []
    for i in ids.tolist():
        batch, failed = source.read(i, i + 1)
        failures += [reason for _, reason in failed]
        if len(batch["id"]):
            samples.append(np.asarray(batch["image"][0]))
    if not samples:
        raise _UserError(f"none of the {len(ids)} sampled inputs could be read: {failures[0]}")
    raw = np.stack(samples)
    if int(np.prod(raw.shape[1:])) != int(np.prod(shape)):
        raise _UserError(
            f"{' '.join(args.data)}: samples of shape {list(raw.shape[1:])}, but {model_path.name} takes inputs of "
            f"shape {list(shape)} (per sample): give data shaped for this model"
        )
    explainer = explainer.replace(
        mean=None if mean is None else mean.reshape(-1), std=None if std is None else std.reshape(-1)
    )
    x = explainer.prepare(raw).astype(np.float64)
    low: Any = args.low
    high: Any = args.high
    rules = args.rules or "deep_taylor"
    if low is None and source.is_image and rules in ("deep_taylor", "bounded"):
        low, high = _pixel_bounds(mean, std, channels)
    if rules == "bounded" and low is None:
        raise _UserError("--rules bounded needs --low and --high (or pixel data: images, uint8 arrays)")
    what = f"{len(x)} of {n} samples of {' '.join(args.data)} (seed {args.seed}), model {model_path.name}"
    return model, x, low, high, rules, what, failures


def _noise_range(low: Any, high: Any, x: np.ndarray) -> tuple[Any, Any, str]:
    """The range of the uniform perturbation: the input bounds (per channel as [C, 1, 1]), else the sample's
    min and max."""
    if low is None:
        lo, hi = float(x.min()), float(x.max())
        return lo, hi, f"[{lo:.4g}, {hi:.4g}] (the sample's range: no --low/--high)"
    lo_a, hi_a = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if lo_a.ndim == 1 and x.ndim >= 3:
        lo_a = lo_a.reshape((-1,) + (1,) * (x.ndim - 2))
        hi_a = hi_a.reshape((-1,) + (1,) * (x.ndim - 2))
    text = f"[{np.round(lo_a.ravel(), 4).tolist()}, {np.round(hi_a.ravel(), 4).tolist()}]"
    if lo_a.ndim == 0:
        text = f"[{float(lo_a):g}, {float(hi_a):g}]"
    return lo_a, hi_a, text


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    import dtd

    from . import evaluate, viz

    if (args.model is None) != (args.data is None):
        raise _UserError("give both --model and --data (or neither: the shipped model and digits)")
    if (args.low is None) != (args.high is None):
        raise _UserError("give both --low and --high, or neither")
    if args.patch < 1 or args.steps < 0:
        raise _UserError("--patch must be >= 1 and --steps >= 0")
    if not args.no_plot:
        from .batch._extras import require

        try:
            require("matplotlib", "dtd evaluate's plot")
        except ImportError as err:
            raise ImportError(f"{err}; or pass --no-plot") from None
    failures: list[str] = []
    if args.model is None:
        from .examples import load_example

        ex = load_example()
        model = ex.model
        count = 32 if args.samples is None else args.samples
        x = ex.images[:count].astype(np.float64)
        low, high, rules = (
            (args.low, args.high, args.rules) if args.low is not None else (ex.low, ex.high, None)
        )
        rules = rules or "bounded"
        what = f"{len(x)} shipped digits"
    else:
        model, x, low, high, rules, what, failures = _sample_dataset(args)
    target = np.argmax(model.forward(x).reshape(len(x), -1), axis=1)
    noise_lo, noise_hi, noise_text = _noise_range(low, high, x)
    bounded = rules == "bounded" or (rules == "deep_taylor" and low is not None)
    dtd_name = "DTD (z^beta + z+)" if bounded else f"DTD ({rules})"
    if rules in ("real", "deep_taylor") and not bounded:
        dtd_name = "DTD (w^2 + z+)"
    relevances = {
        dtd_name: dtd.explain(model, x, target=target, rules=rules, low=low, high=high),
        "sensitivity (grad^2)": dtd.sensitivity(model, x, target=target),
        "random": evaluate.random_relevance(x.shape, seed=args.seed),
    }
    if args.no_sensitivity:
        del relevances["sensitivity (grad^2)"]
    results = evaluate.compare(
        model,
        x,
        relevances,
        target=target,
        patch=args.patch,
        steps=args.steps,
        low=noise_lo,
        high=noise_hi,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    summary = evaluate.comparison_summary(results, baseline="random")
    summary.update(
        {"data": what, "noise": noise_text, "seed": args.seed, "rules": rules, "read_failures": failures[:20]}
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pixel_flipping.png"
    if not args.no_plot:
        viz.save(
            path,
            viz.line_plot(
                {k: r.curve for k, r in results.items()},
                xlabel=f"perturbation steps (MoRF, {args.patch}x{args.patch} regions)",
                ylabel="f_c(x) (score of the explained class)",
                title=f"pixel flipping: {what}",
                size=(800, 500),
                spread=args.spread,
            ),
        )
        summary["plot"] = str(path)
    json_path = Path(args.json) if args.json else out / "pixel_flipping.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"pixel flipping on {what}: {args.patch}x{args.patch} regions, {summary['steps']} steps, "
        f"uniform noise in {noise_text}, seed {args.seed}"
    )
    if failures:
        print(f"{len(failures)} sampled input(s) could not be read and were left out, e.g. {failures[0]}")
    print(f"{'method':<24} {'AOPC':>8}")
    for name, m in summary["methods"].items():
        print(f"{name:<24} {m['aopc']:>8.3f}")
    sems = ", ".join(f"{name} {m['aopc_sem']:.3f}" for name, m in summary["methods"].items())
    print(f"  standard error of each AOPC over the {summary['samples']} samples: {sems}")
    for name, v in summary.get("versus_baseline", {}).items():
        print(
            f"  paired vs random: {name} {v['mean']:+.3f} (95% CI {v['ci95'][0]:.3f} to {v['ci95'][1]:.3f}), "
            f"higher on {v['wins']:.0%} of the samples"
        )
    if not args.no_plot:
        print(f"wrote {path}")
    print(f"wrote {json_path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .batch import ArraySource, dataset_report

    inputs = None
    if args.inputs:
        if len(args.inputs) != 1 or Path(args.inputs[0]).suffix.lower() not in (".npy", ".npz"):
            raise _UserError("--inputs takes one .npy/.npz array (image runs find their files in the index)")
        inputs = ArraySource(args.inputs[0], key=args.array_key, cache_dir=Path(args.run) / ".cache")
    report = dataset_report(
        args.run, args.out, k=args.k, by=args.by, group=args.group, inputs=inputs, scale=args.scale
    )
    _print_report(report)
    return 0


def _print_report(report: Any) -> None:
    print(
        f"dataset report: {report.explained} of {report.count} samples explained, {len(report.classes)} classes "
        f"(by {report.group}), {report.k} most / least relevant by {report.by}; inputs: "
        f"{report.inputs or 'none (heatmaps only)'}"
    )
    for c, v in report.classes.items():
        print(f"  class {c}: {v.count} samples, most {v.most.tolist()}, least {v.least.tolist()}")
    print(
        f"wrote {len(report.files)} files to {report.out} (summary.md, summary.json, class-*.png, mean_maps.*)"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dtd", description="Deep Taylor Decomposition: explain ReLU networks.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="explain the shipped MNIST model on the shipped digits, write a PNG grid")
    d.add_argument("--out", default="dtd-out", help="output folder (default: dtd-out)")
    d.add_argument("--count", type=int, default=32, help="number of digits (default: all 32)")
    d.set_defaults(func=_cmd_demo)

    e = sub.add_parser("explain", help="explain an ONNX model on images or .npy arrays")
    e.add_argument("model", help="ONNX model file")
    e.add_argument("inputs", nargs="+", help="PNG/JPEG images (resized to the model input) or .npy arrays")
    e.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted class)")
    e.add_argument(
        "--rules", default="deep_taylor", help="preset: deep_taylor, bounded, real, positive, epsilon"
    )
    e.add_argument(
        "--low",
        type=float,
        default=None,
        help="lower input bound for z^beta (default for images: 0 after --mean/--std)",
    )
    e.add_argument("--high", type=float, default=None, help="upper input bound for z^beta")
    e.add_argument(
        "--mean", type=float, nargs="+", default=None, help="per-channel mean subtracted from images"
    )
    e.add_argument("--std", type=float, nargs="+", default=None, help="per-channel std dividing images")
    e.add_argument("--out", default="dtd-out", help="output folder (default: dtd-out)")
    e.add_argument("--scale", type=int, default=1, help="upscale heatmaps by this integer factor")
    e.add_argument("--quiet", action="store_true", help="no progress bar or per-input lines")
    e.set_defaults(func=_cmd_explain)

    ds = sub.add_parser(
        "explain-dataset",
        help="explain a whole dataset (images, .npy/.npz, a table of paths) into map shards + a Parquet index",
    )
    ds.add_argument("model", help="ONNX model file")
    ds.add_argument(
        "inputs",
        nargs="+",
        help="a folder or glob of images, image files, one .npy/.npz array (memory-mapped; uint8 = pixels), "
        "or one .parquet/.csv table with a column of image paths",
    )
    ds.add_argument("--out", default="dtd-dataset", help="output folder (default: dtd-dataset)")
    ds.add_argument("--workers", type=int, default=0, help="worker processes (default 0: this process)")
    ds.add_argument("--threads", type=int, default=1, help="OpenMP threads per worker process (default 1)")
    ds.add_argument("--shard-size", type=int, default=256, help="samples per shard / task (default 256)")
    ds.add_argument(
        "--format", choices=["npy", "zarr", "none"], default="npy", help="map format (default npy)"
    )
    ds.add_argument(
        "--keep",
        choices=["full", "channels"],
        default="full",
        help="full maps, or maps summed over channels (default full)",
    )
    ds.add_argument("--map-dtype", choices=["float32", "float16"], default="float32", help="map dtype")
    ds.add_argument(
        "--target",
        default="predicted",
        help="'predicted' (default), 'label' (the input's labels) or a class index",
    )
    ds.add_argument(
        "--rules", default="deep_taylor", help="preset: deep_taylor, bounded, real, positive, epsilon"
    )
    ds.add_argument(
        "--low", type=float, default=None, help="lower input bound (default for pixels: 0 after --mean/--std)"
    )
    ds.add_argument("--high", type=float, default=None, help="upper input bound")
    ds.add_argument(
        "--mean", type=float, nargs="+", default=None, help="per-channel mean subtracted from pixels"
    )
    ds.add_argument("--std", type=float, nargs="+", default=None, help="per-channel std dividing pixels")
    ds.add_argument(
        "--micro-batch",
        default="auto",
        help="samples per engine call, each at slot id %% size so that maps do not depend on the sharding "
        "(default auto: up to 64, by the model's activation size)",
    )
    ds.add_argument("--array-key", default=None, help="the .npz member with the samples (default: images)")
    ds.add_argument("--path-column", default="path", help="the table column with image paths (default: path)")
    ds.add_argument("--resume", action="store_true", help="skip the shards an earlier run finished")
    ds.add_argument("--overwrite", action="store_true", help="discard the results of an earlier run in --out")
    ds.add_argument("--quiet", action="store_true", help="no progress bar")
    ds.add_argument(
        "--report",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="then write the dataset report (as `dtd report`) into DIR (default: OUT/report)",
    )
    ds.add_argument("--report-k", type=int, default=8, help="examples per side of the report's sheets (8)")
    ds.set_defaults(func=_cmd_explain_dataset)

    r = sub.add_parser(
        "report",
        help="dataset view of an explain-dataset run: per class the most/least relevant examples, mean maps",
    )
    r.add_argument("run", help="the --out folder of dtd explain-dataset (index.parquet and the maps)")
    r.add_argument("--out", default=None, help="report folder (default: RUN/report)")
    r.add_argument("--k", type=int, default=8, help="most and least relevant examples per class (default 8)")
    r.add_argument(
        "--by",
        choices=["logit", "relevance_sum"],
        default="logit",
        help="rank examples by f_c(x) (default) or by the map's total",
    )
    r.add_argument(
        "--group",
        choices=["target", "label", "predicted"],
        default="target",
        help="classes: the explained class (default), the label or the predicted class",
    )
    r.add_argument(
        "--inputs",
        nargs="+",
        default=None,
        help="the .npy/.npz array the run explained, to show beside the heatmaps (default: the one the run "
        "recorded, or the image files of the index)",
    )
    r.add_argument("--array-key", default=None, help="the .npz member with the samples (default: images)")
    r.add_argument(
        "--scale", type=int, default=None, help="upscale tiles by this factor (default: to ~84 px)"
    )
    r.set_defaults(func=_cmd_report)

    i = sub.add_parser("info", help="layers, shapes, parameter counts, unsupported ops")
    i.add_argument("model", help="ONNX model file")
    i.set_defaults(func=_cmd_info)

    v = sub.add_parser(
        "evaluate",
        help="pixel flipping (AOPC) of DTD vs sensitivity vs random: on the shipped digits, or --model on --data",
    )
    v.add_argument("--model", default=None, help="ONNX model (default: the shipped MNIST model)")
    v.add_argument(
        "--data",
        nargs="+",
        default=None,
        help="samples for --model, as explain-dataset reads them: a folder or glob of images, one .npy/.npz "
        "array (uint8 = pixels / 255), or a .parquet/.csv table of image paths",
    )
    v.add_argument(
        "--samples",
        "--count",
        dest="samples",
        type=int,
        default=None,
        help="inputs evaluated (default: the 32 shipped digits; 100 drawn at random from --data, seeded)",
    )
    v.add_argument("--patch", type=int, default=2, help="region size in pixels (default: 2)")
    v.add_argument("--steps", type=int, default=100, help="perturbation steps (default: 100)")
    v.add_argument(
        "--seed", type=int, default=0, help="seed of the sample, the noise and the random baseline"
    )
    v.add_argument(
        "--rules",
        default=None,
        help="DTD preset (default: bounded for the shipped model, deep_taylor for --model)",
    )
    v.add_argument("--low", type=float, default=None, help="lower input bound (z^beta and the noise range)")
    v.add_argument("--high", type=float, default=None, help="upper input bound")
    v.add_argument(
        "--mean", type=float, nargs="+", default=None, help="per-channel mean subtracted from pixels"
    )
    v.add_argument("--std", type=float, nargs="+", default=None, help="per-channel std dividing pixels")
    v.add_argument("--array-key", default=None, help="the .npz member with the samples (default: images)")
    v.add_argument("--path-column", default="path", help="the table column with image paths (default: path)")
    v.add_argument("--batch-size", type=int, default=512, help="perturbed inputs per forward call (512)")
    v.add_argument(
        "--spread",
        choices=["std", "sem", "none"],
        default="std",
        help="band around the mean curves: one std over the samples (default), one s.e.m., none",
    )
    v.add_argument("--no-sensitivity", action="store_true", help="only DTD and the random baseline")
    v.add_argument("--no-plot", action="store_true", help="no PNG (no matplotlib needed)")
    v.add_argument(
        "--json", default=None, help="where to write the figures (default: OUT/pixel_flipping.json)"
    )
    v.add_argument("--out", default="dtd-out", help="output folder (default: dtd-out)")
    v.set_defaults(func=_cmd_evaluate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dtd`` console script."""
    from .errors import ModelLoadError

    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (
        _UserError,
        ModelLoadError,
        ValueError,
        FileNotFoundError,
        PermissionError,
        IsADirectoryError,
        ImportError,
    ) as err:
        print(f"dtd {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except RuntimeError as err:
        from .batch.run import WorkerLostError

        if not isinstance(err, WorkerLostError):
            raise
        print(f"dtd {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
