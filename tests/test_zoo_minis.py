"""Miniature torchvision-family models exported by both PyTorch exporters (tests/data/zoo_minis, made by
tools/export_minis.py; the README there lists each file's ops).

For every file: it loads; its forward pass equals onnxruntime's and the stored torch output; explanations
with the default rules and with bounds (the input's range) are finite, shaped like the input and identical
across two calls; and the per-layer report accounts for the whole explanation error: summed over the layers,
the absorbed relevance (relevance_out - relevance_in) equals ``f_c(x) - sum R`` (float64).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest

import dtd
from builders import run_ort

ZOO_DIR = Path(__file__).resolve().parent / "data" / "zoo_minis"
FILES = sorted(ZOO_DIR.glob("*.onnx"))
IDS = [p.stem for p in FILES]
FAMILIES = (
    "resnet_basic",
    "resnet_bottleneck",
    "vgg_bn",
    "alexnet",
    "squeezenet",
    "densenet",
    "inception",
    "mobilenet_v2",
    "mobilenet_v3",
    "efficientnet",
    "mnasnet",
    "shufflenet_v2",
    "regnet_x",
    "convnext",
    "conv1d",
    "conv3d",
    "mlp_leakyrelu",
    "relu6_net",
    "hardtanh_net",
    "normalize_net",
)


@cache
def _load(path: Path) -> dtd.Model:
    return dtd.load(path)


def _data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path.with_suffix(".npz")) as data:
        return data["x"], data["y"]


def test_every_family_and_exporter_is_there() -> None:
    stems = {p.stem for p in FILES}
    for family in FAMILIES:
        assert any(s.startswith(f"{family}_dynamo_op") for s in stems), f"no dynamo export of {family}"
        for opset in (13, 17):
            assert f"{family}_legacy_op{opset}" in stems, f"no legacy opset {opset} export of {family}"
    total = 0
    for path in ZOO_DIR.iterdir():
        assert path.suffix in (".onnx", ".npz", ".md"), f"unexpected file {path.name} (external data?)"
        total += path.stat().st_size
    assert total < 8_000_000
    for path in FILES:
        assert path.stat().st_size < 200_000, path.name
        assert path.with_suffix(".npz").exists(), path.name
        model = onnx.load(str(path), load_external_data=False)
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer), path.name


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_forward_matches_onnxruntime_and_torch(path: Path) -> None:
    net = _load(path)
    x, y_torch = _data(path)
    y_ort = run_ort(onnx.load(str(path)), x)
    scale = float(np.abs(y_ort).max()) or 1.0
    got = net.forward(x)
    assert got.dtype == np.float32
    assert got.shape == y_ort.shape == y_torch.shape
    np.testing.assert_allclose(got, y_ort, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(got, y_torch, rtol=1e-4, atol=1e-4 * scale)
    got64 = net.forward(x.astype(np.float64))
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, y_torch, rtol=1e-4, atol=1e-4 * scale)


def _bounds(x: np.ndarray) -> dict[str, float]:
    return {"low": float(x.min()), "high": float(x.max())}


@pytest.mark.parametrize("bounded", [False, True], ids=["default", "bounds"])
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_explanations_are_finite_and_repeatable(path: Path, bounded: bool) -> None:
    net = _load(path)
    x, _ = _data(path)
    kwargs = _bounds(x) if bounded else {}
    first = dtd.explain(net, x, **kwargs)
    second = dtd.explain(net, x, **kwargs)
    assert first.shape == x.shape
    assert first.dtype == np.float32
    assert np.all(np.isfinite(first))
    np.testing.assert_array_equal(first, second)
    # Not a trivial map: some class's relevance reaches the input. (The argmax class alone may legitimately give
    # zeros: in the 3-D CNN its only positive weight meets a dead ReLU unit, so z+ absorbs everything there.)
    classes = np.tile(np.arange(int(np.prod(net.logits_shape)))[None], (len(x), 1))
    every = dtd.explain(net, x, target=classes, **kwargs)
    assert np.any(every != 0)


@pytest.mark.parametrize("bounded", [False, True], ids=["default", "bounds"])
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_the_report_accounts_for_the_explanation_error(path: Path, bounded: bool) -> None:
    net = _load(path)
    x = _data(path)[0].astype(np.float64)
    details = dtd.explain(net, x, return_details=True, **(_bounds(x) if bounded else {}))
    relevance = details.relevance
    assert relevance.dtype == np.float64
    assert np.all(np.isfinite(relevance))
    f_c = details.logits[np.arange(len(x)), details.targets]
    total = relevance.reshape(len(x), -1).sum(axis=1)
    absorbed = np.sum([layer.absorbed for layer in details.layers], axis=0)
    # Rounding grows with the largest total any layer handles, not only with f_c.
    scale = np.max(
        [np.abs(f_c), np.abs(total)] + [np.abs(layer.relevance_out) for layer in details.layers], axis=0
    )
    assert np.all(np.abs(absorbed - (f_c - total)) <= 1e-6 * scale), (absorbed, f_c - total, details.report())
