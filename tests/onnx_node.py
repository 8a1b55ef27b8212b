"""ONNX's backend node tests run through dtd: discovery, preparation and one run of a test.

The tests come from the onnx 1.17.0 wheel, fetched once by ``tools/onnx_node_tests.py`` into
``build/onnx-node-tests/node`` (or ``$DTD_ONNX_NODE_TESTS``). Each test folder holds ``model.onnx`` and
``test_data_set_0/{input,output}_<i>.pb``. Node tests pass weights as graph inputs; dtd has one data input
and constant weights, so :func:`prepare` keeps one input as the data input (the first float input of
rank >= 2, else the first input) and turns every other input into an initializer holding the test's
value. Used by tests/test_onnx_node.py and tools/onnx_node_report.py.

Three adaptations, each exact (the model computes the same values as the test's):

* **Several outputs of one node** (:func:`checked_outputs`). dtd explains one output. When every graph output
  is an output of one and the same node, the test is run once per *data* output of that node, the graph
  restricted to that output, compared with its ``output_<k>.pb`` (Split: each part in turn). Outputs ONNX
  defines as side results are not data outputs and are dropped: the statistics of LayerNormalization (Mean,
  InvStdDev) and of BatchNormalization (running mean and variance, training mode only), Dropout's mask and
  MaxPool's Indices (:data:`SIDE_OUTPUTS`). The test passes when every run passes; otherwise its outcome is
  the first run's that does not pass. Graphs whose outputs come from several nodes stay as they are (dtd
  refuses several outputs).
* **A rank-1 data input gets a leading batch axis of 1** (:func:`batch_axis_is_exact`) only when that cannot
  change any value: every node is element-wise without an axis attribute (:data:`ELEMENTWISE`: output
  position i reads only position i of each operand after NumPy broadcasting) and every other operand (the
  initializers made from the other inputs, Constant nodes' values) has rank <= 1. Broadcasting aligns axes
  from the right, so a leading axis of 1 is carried through unchanged and the expected output just gains it.
  Ops with an axis (Split, Concat, Gather, Softmax, reductions...) or rank-0 inputs are left alone: for them
  axis 0 of the test is dtd's batch axis, and the test is listed as ``no_batch_axis``.
* **Known-wrong expected outputs** (``corrected`` in the table): a few outputs shipped with onnx 1.17.0 were
  produced by a reference implementation that later onnx releases corrected. For those tests the expected
  output is recomputed with ``onnx.reference`` of the installed onnx (which must be newer than the one that
  made the data); tests/test_onnx_node.py checks that the shipped output still differs from it, so an entry
  goes stale loudly.
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
#: The onnx release whose reference implementation made the ``corrected`` outputs right.
CORRECTED_SINCE = (1, 18)
#: Output indices of ops that are side results (statistics, masks, indices), not the op's data output.
SIDE_OUTPUTS: dict[str, frozenset[int]] = {
    "LayerNormalization": frozenset({1, 2}),
    "BatchNormalization": frozenset({1, 2}),
    "Dropout": frozenset({1}),
    "MaxPool": frozenset({1}),
}
#: Element-wise ops without an axis attribute: output position i reads position i of each (broadcast) operand.
ELEMENTWISE = frozenset(
    "Abs Add And Ceil Celu Clip Constant Div Dropout Elu Equal Erf Exp Floor Gelu Greater GreaterOrEqual "
    "HardSigmoid HardSwish Identity LeakyRelu Less LessOrEqual Log Max Mean Min Mish Mod Mul Neg Not Or Pow "
    "PRelu Reciprocal Relu Selu Sigmoid Sign Softplus Softsign Sqrt Sub Sum Tanh ThresholdedRelu Where "
    "Xor".split()
)


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


def _table() -> dict:
    return json.loads(EXPECTED_FILE.read_text())


def load_expected() -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The committed table: ``(reasons, tests)``; ``tests`` maps a node test to a reason key.

    Each reason has a ``text`` (why the test is outside dtd's documented scope) and a ``match`` regex the
    UnsupportedModelError's message must match.
    """
    data = _table()
    reasons, tests = data["reasons"], data["tests"]
    unknown = sorted({key for key in tests.values() if key not in reasons})
    if unknown:
        raise ValueError(f"{EXPECTED_FILE.name}: unknown reasons {unknown}")
    return reasons, tests


def load_corrected() -> dict[str, str]:
    """Tests whose shipped expected output is known to be wrong -> why (the expected output is recomputed)."""
    return dict(_table().get("corrected", {}))


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


def _single_producer(graph: onnx.GraphProto) -> onnx.NodeProto | None:
    """The node producing every graph output, when there are several outputs and one such node."""
    if len(graph.output) <= 1:
        return None
    names = {o.name for o in graph.output}
    nodes = [n for n in graph.node if names & set(n.output)]
    return nodes[0] if len(nodes) == 1 and names <= set(nodes[0].output) else None


def checked_outputs(test: NodeTest) -> list[int]:
    """Indices of the graph outputs that are checked, one run each (see the module docstring)."""
    graph = test.model.graph
    node = _single_producer(graph)
    if node is None:
        return [0]
    side = SIDE_OUTPUTS.get(node.op_type, frozenset())
    slots = [list(node.output).index(o.name) for o in graph.output]
    return [index for index, slot in enumerate(slots) if slot not in side]


def _constant_ranks(graph: onnx.GraphProto) -> list[int]:
    ranks = [len(t.dims) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                lists = (onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS, onnx.AttributeProto.STRINGS)
                ranks.append(len(attr.t.dims) if attr.HasField("t") else int(attr.type in lists))
    return ranks


def batch_axis_is_exact(graph: onnx.GraphProto, data: np.ndarray | None) -> bool:
    """True when a leading batch axis of 1 on the rank-1 data input changes no value (module docstring)."""
    return (
        data is not None
        and data.ndim == 1
        and all(n.domain in _DEFAULT_DOMAINS and n.op_type in ELEMENTWISE for n in graph.node)
        and all(rank <= 1 for rank in _constant_ranks(graph))
    )


def _add_batch_axis(value: onnx.ValueInfoProto) -> None:
    if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
        dims = value.type.tensor_type.shape.dim
        dims.insert(0, onnx.TensorShapeProto.Dimension(dim_value=1))


def _reference_outputs(test: NodeTest) -> list[np.ndarray]:
    """The installed onnx reference implementation's outputs for test_data_set_0 (for ``corrected`` tests)."""
    from onnx.reference import ReferenceEvaluator

    if tuple(int(part) for part in onnx.__version__.split(".")[:2]) < CORRECTED_SINCE:
        raise RuntimeError(
            f"{test.name}: its expected output is recomputed with onnx.reference, which needs onnx >= "
            f"{'.'.join(map(str, CORRECTED_SINCE))} (the corrected reference); onnx {onnx.__version__} is installed"
        )
    initialized = {t.name for t in test.model.graph.initializer}
    inputs = [v for v in test.model.graph.input if v.name not in initialized]
    data_set = test.path / "test_data_set_0"
    feeds = {v.name: _read(data_set / f"input_{i}.pb", v) for i, v in enumerate(inputs)}
    return list(ReferenceEvaluator(test.model).run(None, feeds))


def prepare_shipped(test: NodeTest, output: int = 0) -> np.ndarray | None:
    """Graph output ``output`` as shipped in ``test_data_set_0`` (no correction, no added batch axis)."""
    path = test.path / "test_data_set_0" / f"output_{output}.pb"
    return _read(path, test.model.graph.output[output]) if path.is_file() else None


def prepare(test: NodeTest, output: int = 0) -> Prepared:
    """Turn the inputs other than the data input into initializers taken from ``test_data_set_0``; keep only
    graph output ``output`` and add a batch axis where that is exact (module docstring)."""
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
    if _single_producer(graph) is not None:
        kept = outputs[output]
        del graph.output[:]
        graph.output.append(kept)
    expected = prepare_shipped(test, output) if outputs else None
    if test.name in load_corrected():
        expected = _reference_outputs(test)[output]
    data_name = inputs[data_index].name if inputs else ""
    data = values[data_index] if inputs else None
    if batch_axis_is_exact(graph, data):
        assert data is not None
        data = data[np.newaxis]
        expected = None if expected is None else np.asarray(expected)[np.newaxis]
        for value in graph.input:
            if value.name == data_name:
                _add_batch_axis(value)
        for value in graph.output:
            _add_batch_axis(value)
        del graph.value_info[:]
    return Prepared(model, data_name, data, expected)


@dataclass
class Outcome:
    """What running one test gave: ``status`` is ``"pass"``, ``"unsupported"`` or ``"fail"``."""

    status: str
    message: str = ""


def run(test: NodeTest) -> Outcome:
    """Load the prepared model with dtd and run the forward pass, once per checked output; see the module
    docstring. The outcome is the first that is not a pass (or a pass)."""
    for output in checked_outputs(test):
        outcome = _run_one(test, output)
        if outcome.status != "pass":
            return outcome
    return Outcome("pass")


def _run_one(test: NodeTest, output: int) -> Outcome:
    import dtd

    prepared = prepare(test, output)
    where = f" (output {output})" if len(test.model.graph.output) > 1 else ""
    try:
        model = dtd.load(prepared.model)
    except dtd.UnsupportedModelError as exc:
        return Outcome("unsupported", str(exc))
    except Exception as exc:  # ModelLoadError or anything else: a bug for a valid ONNX test model
        return Outcome("fail", f"load raised {type(exc).__name__}{where}: {exc}")
    if prepared.data is None or prepared.expected is None:
        return Outcome("fail", f"dtd loaded a test without a tensor data input or a tensor output{where}")
    try:
        got = np.asarray(model.forward(prepared.data))
    except Exception as exc:
        return Outcome("fail", f"forward raised {type(exc).__name__}{where}: {exc}")
    want = prepared.expected
    if got.shape != want.shape:
        return Outcome("fail", f"output shape {list(got.shape)}, expected {list(want.shape)}{where}")
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    bad = ~np.isclose(got64, want64, rtol=RTOL, atol=ATOL, equal_nan=True)
    if bad.any():
        worst = float(np.max(np.abs(got64 - want64)[bad]))
        return Outcome(
            "fail", f"{int(bad.sum())} of {want.size} values differ (max abs error {worst:.3g}){where}"
        )
    return Outcome("pass")
