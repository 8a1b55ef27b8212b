"""The `dtd` command: demo, explain, explain-dataset, info, evaluate.

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

    from .errors import ModelLoadError
    from .onnx import import_model  # noqa: F401  (registers the converters)
    from .onnx.registry import supported_ops

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ModelLoadError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    known = set(supported_ops())
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import dtd

    from . import evaluate, viz
    from .examples import load_example

    ex = load_example()
    x = ex.images[: args.count].astype(np.float64)
    target = np.argmax(ex.model.forward(x), axis=1)
    methods = {
        "DTD (z^beta + z+)": dtd.explain(
            ex.model, x, target=target, rules="bounded", low=ex.low, high=ex.high
        ),
        "sensitivity (grad^2)": dtd.sensitivity(ex.model, x, target=target),
        "random": evaluate.random_relevance(x.shape, seed=args.seed),
    }
    results = {}
    for name, rel in methods.items():
        results[name] = evaluate.pixel_flipping(
            ex.model,
            x,
            rel,
            target=target,
            patch=args.patch,
            steps=args.steps,
            low=ex.low,
            high=ex.high,
            seed=args.seed,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pixel_flipping.png"
    viz.save(
        path,
        viz.line_plot(
            {k: r.mean_curve for k, r in results.items()}, xlabel="perturbation steps (MoRF)", ylabel="f_c(x)"
        ),
    )
    print(
        f"pixel flipping on {len(x)} shipped digits: {args.patch}x{args.patch} regions, {args.steps} steps, "
        f"uniform noise in [{ex.low}, {ex.high}], seed {args.seed}"
    )
    print(f"{'method':<24} {'AOPC':>8}")
    for name, r in results.items():
        print(f"{name:<24} {r.aopc:>8.3f}")
    print(f"wrote {path}")
    return 0


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
    ds.set_defaults(func=_cmd_explain_dataset)

    i = sub.add_parser("info", help="layers, shapes, parameter counts, unsupported ops")
    i.add_argument("model", help="ONNX model file")
    i.set_defaults(func=_cmd_info)

    v = sub.add_parser(
        "evaluate", help="pixel-flipping (AOPC) of DTD vs sensitivity vs random on the shipped digits"
    )
    v.add_argument("--out", default="dtd-out", help="output folder (default: dtd-out)")
    v.add_argument("--count", type=int, default=32, help="number of digits (default: 32)")
    v.add_argument("--patch", type=int, default=2, help="region size in pixels (default: 2)")
    v.add_argument("--steps", type=int, default=100, help="perturbation steps (default: 100)")
    v.add_argument("--seed", type=int, default=0, help="seed of the noise and the random baseline")
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
