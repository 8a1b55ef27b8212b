"""The torchvision zoo through dtd: exports each model with random weights by both PyTorch exporters and
reports, per export, whether dtd loads it, the first error, the forward pass's deviation from onnxruntime,
the conservation ratio ``sum R / f_c`` and the explanation time. Writes docs/zoo.md.

Needs torch, torchvision, onnx, onnxscript and onnxruntime (tools/requirements-zoo.txt) besides dtd::

    pip install -r tools/requirements-zoo.txt && pip install .
    python tools/zoo.py                                   # all 18 models, both exporters (takes long)
    python tools/zoo.py --models resnet18,squeezenet1_1 --exporters legacy --out /tmp/zoo

The exported files go to ``--out`` (a temporary folder by default; they are large and never committed).
Each export is evaluated in a child process, so that a crash is reported as one row, not the end of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "zoo.md"
MODELS = (
    "alexnet",
    "vgg11_bn",
    "vgg16",
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "squeezenet1_1",
    "densenet121",
    "googlenet",
    "inception_v3",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mnasnet0_5",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "regnet_x_400mf",
    "convnext_tiny",
)
EXPORTERS = ("dynamo", "legacy")
LEGACY_OPSET = 17
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
SEED = 7


@dataclass
class Row:
    model: str
    exporter: str
    opset: int | None = None
    params_m: float | None = None
    size_mb: float | None = None
    loads: bool = False
    error: str = ""
    fwd_rel_err: float | None = None
    ratio_default: float | None = None
    ratio_bounds: float | None = None
    explain_s: float | None = None
    checks: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _first_line(exc: BaseException, path: Path | None = None) -> str:
    """The exception's type and first line, without the file's temporary folder and the list of supported
    ops that an unsupported-op message ends with."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if path is not None:
        line = line.replace(str(path), path.name)
    line = line.split("; supported ops:")[0]
    return f"{type(exc).__name__}: {line}"[:300]


def _input_size(name: str) -> int:
    return 299 if name == "inception_v3" else 224


def _build(name: str) -> Any:
    """The torchvision model with random weights (seeded), random BatchNorm statistics, eval mode."""
    import torch
    import torchvision

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from export_minis import randomize

    kwargs: dict[str, Any] = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        # No auxiliary heads (eval returns the main logits only) and torchvision's own init (truncated normal).
        kwargs.update(aux_logits=False, init_weights=True)
    torch.manual_seed(SEED)
    return randomize(torchvision.models.get_model(name, **kwargs), seed=SEED)


def _image(size: int, seed: int = SEED) -> np.ndarray:
    """One [0, 1] image normalized with ImageNet's mean and std, float32 [1, 3, size, size]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (1, 3, size, size))
    return ((x - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32)


def export(name: str, exporter: str, out: Path, row: Row) -> Path | None:
    """Exports the model into ``out`` (weights inside the file); None (and row.error) when the export fails."""
    import onnx
    import torch

    net = _build(name)
    row.params_m = sum(p.numel() for p in net.parameters()) / 1e6
    x = torch.from_numpy(_image(_input_size(name)))
    path = out / f"{name}_{exporter}.onnx"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if exporter == "legacy":
                torch.onnx.export(
                    net,
                    (x,),
                    str(path),
                    dynamo=False,
                    opset_version=LEGACY_OPSET,
                    input_names=["x"],
                    output_names=["y"],
                    dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                )
            else:
                program = torch.onnx.export(
                    net, (x,), dynamo=True, input_names=["x"], output_names=["y"], external_data=False
                )
                assert program is not None
                onnx.save_model(program.model_proto, str(path))
    except Exception as exc:
        row.error = "export: " + _first_line(exc)
        return None
    proto = onnx.load(str(path), load_external_data=False)
    row.opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    row.size_mb = path.stat().st_size / 1e6
    return path


def evaluate(path: Path, size: int) -> dict[str, Any]:
    """Runs in the child process: load, forward vs onnxruntime, explanations (default rules, and bounds)."""
    import onnxruntime as ort

    import dtd

    result: dict[str, Any] = {"loads": False}
    x = _image(size)
    try:
        model = dtd.load(path)
    except Exception as exc:
        result["error"] = "load: " + _first_line(exc, path)
        return result
    result["loads"] = True
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    try:
        got = model.forward(x)
        result["fwd_rel_err"] = float(
            np.abs(got - expected).max() / max(float(np.abs(expected).max()), 1e-30)
        )
        start = time.perf_counter()
        details = dtd.explain(model, x, return_details=True)
        result["explain_s"] = time.perf_counter() - start
        result["ratio_default"] = _ratio(details)
        low, high = (0.0 - MEAN) / STD, (1.0 - MEAN) / STD
        bounded = dtd.explain(model, x, low=low, high=high, return_details=True)
        result["ratio_bounds"] = _ratio(bounded)
        again = dtd.explain(model, x, return_details=True)
        finite = bool(np.all(np.isfinite(details.relevance)) and np.all(np.isfinite(bounded.relevance)))
        same = bool(np.array_equal(again.relevance, details.relevance))
        gap = max(_report_gap(details), _report_gap(bounded))
        result["checks"] = (
            f"{'finite' if finite else 'NOT FINITE'}, {'repeatable' if same else 'NOT REPEATABLE'}, "
            f"report gap {gap:.1e}"
        )
    except Exception as exc:
        result["error"] = _first_line(exc, path)
    return result


def _report_gap(details: Any) -> float:
    """How far the per-layer report is from accounting for ``f_c - sum R`` (relative to |f_c|): the relevance each
    layer absorbed (received minus passed on), summed over the layers, against the total difference."""
    f_c = float(details.logits[0, details.targets[0]])
    absorbed = sum(
        float(np.sum(layer.relevance_out)) - float(np.sum(layer.relevance_in)) for layer in details.layers
    )
    return abs((f_c - float(details.relevance[0].sum())) - absorbed) / max(abs(f_c), 1e-30)


def _ratio(details: Any) -> float:
    f_c = float(details.logits[0, details.targets[0]])
    return float(details.relevance[0].sum()) / f_c if f_c else float("nan")


def _evaluate_in_child(path: Path, size: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--evaluate", str(path), "--size", str(size)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"loads": False, "error": f"evaluation timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
        return {"loads": False, "error": f"evaluation exited with {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def write_doc(rows: list[Row], command: str, path: Path) -> None:
    import onnx
    import torch
    import torchvision

    import dtd

    lines = [
        "# The torchvision zoo through dtd",
        "",
        "Every model with random weights (`torch.manual_seed(7)`, BatchNorm running statistics and affine",
        "parameters random, eval mode; googlenet and inception_v3 without auxiliary heads), exported by",
        f"`torch.onnx.export(..., dynamo=True)` (its default opset) and by `dynamo=False` (opset {LEGACY_OPSET}),",
        "then loaded by `dtd.load`. Input: one uniform [0, 1] image normalized by ImageNet's mean and std",
        "(224x224; 299x299 for inception_v3). `fwd err`: max |dtd - onnxruntime| / max |onnxruntime| (float32).",
        "`sum R / f_c`: the relevance total over the explained logit with the default rules (`real`: w² first,",
        "z⁺ above) and with the image's bounds (`bounded`: z^β first); 1 means fully conserved (random BatchNorm",
        "biases absorb or create relevance). `explain`: seconds for one `dtd.explain(..., return_details=True)`.",
        "`checks`: the relevance is finite, identical across two calls, and the per-layer report accounts for",
        "`f_c - sum R` (report gap: |(f_c - sum R) - sum over layers of the relevance each absorbed| / |f_c|).",
        "",
        f"Command: `{command}`"
        + ("" if {r.model for r in rows} >= set(MODELS) else f" (a subset of the {len(MODELS)} models)"),
        "",
        f"Machine: {_machine()}; dtd {getattr(dtd, '__version__', '?')} with {dtd.get_num_threads()} threads, "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}; "
        f"{datetime.date.today().isoformat()}.",
        "",
        "| model | exporter | opset | params (M) | MB | loads | fwd err | sum R / f_c | with bounds | explain (s) "
        "| checks | first error |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        error = r.error.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {r.model} | {r.exporter} | {r.opset or ''} | {_fmt(r.params_m, '.1f')} | {_fmt(r.size_mb, '.1f')} "
            f"| {'yes' if r.loads else 'no'} | {_fmt(r.fwd_rel_err, '.1e')} | {_fmt(r.ratio_default, '.4f')} "
            f"| {_fmt(r.ratio_bounds, '.4f')} | {_fmt(r.explain_s, '.2f')} | {r.checks} | {error} |"
        )
    loaded = sum(r.loads and not r.error for r in rows)
    lines += ["", f"{loaded} of {len(rows)} exports load and explain without error.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated torchvision model names")
    parser.add_argument("--exporters", default=",".join(EXPORTERS), help="dynamo, legacy or both")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the .onnx files (default: a temp dir)"
    )
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown report to write (docs/zoo.md)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per evaluation")
    parser.add_argument("--evaluate", type=Path, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.evaluate is not None:
        print(json.dumps(evaluate(args.evaluate, args.size)))
        return 0
    models = [m for m in args.models.split(",") if m]
    exporters = [e for e in args.exporters.split(",") if e]
    bad = [e for e in exporters if e not in EXPORTERS]
    if bad:
        parser.error(f"unknown exporters {bad}; choose from {list(EXPORTERS)}")
    import torchvision

    unknown = [m for m in models if m not in torchvision.models.list_models()]
    if unknown:
        parser.error(f"unknown torchvision models {unknown}")
    with contextlib.ExitStack() as stack:
        out = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dtd-zoo-")))
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in models:
            for exporter in exporters:
                row = Row(name, exporter)
                start = time.perf_counter()
                path = export(name, exporter, out, row)
                if path is not None:
                    result = _evaluate_in_child(path, _input_size(name), args.timeout)
                    row.loads = bool(result.pop("loads"))
                    row.error = result.pop("error", "")
                    for key, value in result.items():
                        setattr(row, key, value)
                rows.append(row)
                status = "ok" if row.loads and not row.error else row.error
                print(
                    f"{name:<20} {exporter:<7} {time.perf_counter() - start:6.1f} s  "
                    f"ratio {_fmt(row.ratio_default, '.4f'):<8} {status}",
                    flush=True,
                )
    command = "python tools/zoo.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_doc(rows, command.strip(), args.doc)
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
