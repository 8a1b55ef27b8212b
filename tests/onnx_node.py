"""ONNX's backend node tests run through dtd: discovery, preparation and one run of a test.

The tests come from the onnx 1.17.0 wheel, fetched once by ``tools/onnx_node_tests.py`` into
``build/onnx-node-tests/node`` (or ``$DTD_ONNX_NODE_TESTS``). Each test folder holds ``model.onnx`` and
``test_data_set_0/{input,output}_<i>.pb``. Node tests pass weights as graph inputs; dtd has one data input
and constant weights, so :func:`prepare` keeps one input as the data input (the first float input of
rank >= 2, else the first input) and turns every other input into an initializer holding the test's
value. Used by tests/test_onnx_node.py and tools/onnx_node_report.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(os.environ.get("DTD_ONNX_NODE_TESTS", ROOT / "build" / "onnx-node-tests" / "node"))
EXPECTED_FILE = Path(__file__).resolve().parent / "data" / "onnx_node_expected.json"
RTOL, ATOL = 1e-4, 1e-5
_FLOATS = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class NodeTest:
    """One node test: its folder, model and the op types its graph uses (``domain:op`` outside ONNX's)."""

    name: str
    path: Path
    model: onnx.ModelProto
    ops: frozenset[str] = field(default_factory=frozenset)


def available() -> bool:
    """True when the node tests have been fetched."""
    return NODE_DIR.is_dir() and any(NODE_DIR.glob("test_*/model.onnx"))


def _op_types(graph: onnx.GraphProto) -> set[str]:
    ops: set[str] = set()
    for node in graph.node:
        ops.add(node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}:{node.op_type}")
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                ops |= _op_types(sub)
    return ops


def discover() -> list[NodeTest]:
    """All node tests, sorted by name (empty when they have not been fetched)."""
    if not available():
        return []
    tests = []
    for folder in sorted(NODE_DIR.iterdir()):
        path = folder / "model.onnx"
        if not path.is_file():
            continue
        model = onnx.load(str(path))
        tests.append(NodeTest(folder.name, folder, model, frozenset(_op_types(model.graph))))
    return tests


def claimed(test: NodeTest, supported: set[str]) -> bool:
    """True when every op of the test is an op dtd claims (has a converter for)."""
    return bool(test.ops) and test.ops <= supported


def load_expected() -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The committed table: ``(reasons, tests)``; ``tests`` maps a node test to a reason key.

    Each reason has a ``text`` (why the test is outside dtd's documented scope) and a ``match`` regex the
    UnsupportedModelError's message must match.
    """
    data = json.loads(EXPECTED_FILE.read_text())
    reasons, tests = data["reasons"], data["tests"]
    unknown = sorted({key for key in tests.values() if key not in reasons})
    if unknown:
        raise ValueError(f"{EXPECTED_FILE.name}: unknown reasons {unknown}")
    return reasons, tests


def _read(path: Path, value: onnx.ValueInfoProto) -> np.ndarray | None:
    """A test input/output as an array; None for sequences, maps and optionals (not tensors)."""
    if not value.type.HasField("tensor_type"):
        return None
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


@dataclass
class Prepared:
    """A node test made into a dtd-style model: one data input, the other inputs as initializers."""

    model: onnx.ModelProto
    data_name: str
    data: np.ndarray | None
    expected: np.ndarray | None


def prepare(test: NodeTest) -> Prepared:
    """Turn the inputs other than the data input into initializers taken from ``test_data_set_0``."""
    model = onnx.ModelProto()
    model.CopyFrom(test.model)
    graph = model.graph
    initialized = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initialized]
    data_set = test.path / "test_data_set_0"
    values = [_read(data_set / f"input_{i}.pb", v) for i, v in enumerate(inputs)]

    def is_data(index: int) -> bool:
        value = values[index]
        return value is not None and inputs[index].type.tensor_type.elem_type in _FLOATS and value.ndim >= 2

    data_index = next((i for i in range(len(inputs)) if is_data(i)), 0)
    for index, (value_info, value) in enumerate(zip(inputs, values, strict=True)):
        if index == data_index or value is None:
            continue
        graph.initializer.append(numpy_helper.from_array(value, value_info.name))
    keep = [v for i, v in enumerate(inputs) if i == data_index or values[i] is None]
    del graph.input[:]
    graph.input.extend(keep)
    outputs = list(graph.output)
    expected = None
    if outputs and (data_set / "output_0.pb").is_file():
        expected = _read(data_set / "output_0.pb", outputs[0])
    data_name = inputs[data_index].name if inputs else ""
    data = values[data_index] if inputs else None
    return Prepared(model, data_name, data, expected)


@dataclass
class Outcome:
    """What running one test gave: ``status`` is ``"pass"``, ``"unsupported"`` or ``"fail"``."""

    status: str
    message: str = ""


def run(test: NodeTest) -> Outcome:
    """Load the prepared model with dtd; when it loads, run the forward pass and compare with output_0."""
    import dtd

    prepared = prepare(test)
    try:
        model = dtd.load(prepared.model)
    except dtd.UnsupportedModelError as exc:
        return Outcome("unsupported", str(exc))
    except Exception as exc:  # ModelLoadError or anything else: a bug for a valid ONNX test model
        return Outcome("fail", f"load raised {type(exc).__name__}: {exc}")
    if prepared.data is None or prepared.expected is None:
        return Outcome("fail", "dtd loaded a test without a tensor data input or a tensor output")
    try:
        got = np.asarray(model.forward(prepared.data))
    except Exception as exc:
        return Outcome("fail", f"forward raised {type(exc).__name__}: {exc}")
    want = prepared.expected
    if got.shape != want.shape:
        return Outcome("fail", f"output shape {list(got.shape)}, expected {list(want.shape)}")
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    bad = ~np.isclose(got64, want64, rtol=RTOL, atol=ATOL, equal_nan=True)
    if bad.any():
        worst = float(np.max(np.abs(got64 - want64)[bad]))
        return Outcome("fail", f"{int(bad.sum())} of {want.size} values differ (max abs error {worst:.3g})")
    return Outcome("pass")
