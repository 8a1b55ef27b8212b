"""ONNX's own backend node tests (onnx 1.17.0) as a dtd test suite.

Every node test whose ops dtd claims (``dtd._core._import_supported_ops()``) either matches its ``output_0``
(float32: rtol 1e-4, atol 1e-5) or, when tests/data/onnx_node_expected.json lists it as outside dtd's
documented scope, raises UnsupportedModelError for the listed reason: never ModelLoadError (ONNX's test
models are valid) nor anything else. Node tests of ops dtd does not claim must raise UnsupportedModelError
too. The tests are fetched by tools/onnx_node_tests.py (tools/test.sh runs it first); without them this
module is skipped. tests/onnx_node.py prepares a test (weights given as inputs become initializers).
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

import onnx_node
from dtd import _core

pytestmark = pytest.mark.skipif(
    not onnx_node.available(),
    reason=f"ONNX node tests not fetched into {onnx_node.NODE_DIR} (run: python tools/onnx_node_tests.py)",
)

ALL = onnx_node.discover()
SUPPORTED = set(_core._import_supported_ops())
CLAIMED = [t for t in ALL if onnx_node.claimed(t, SUPPORTED)]
UNCLAIMED = [t for t in ALL if not onnx_node.claimed(t, SUPPORTED)]
REASONS, TABLE = onnx_node.load_expected()
CORRECTED = onnx_node.load_corrected()
BY_NAME = {t.name: t for t in ALL}
#: Node tests of ops outside dtd's scope that are always in the sample, and the size of the sample.
ALWAYS_SAMPLED = ("test_lstm_defaults", "test_nonzero_example", "test_einsum_batch_matmul")
SAMPLE_SIZE = 20


def _sample() -> list[onnx_node.NodeTest]:
    fixed = [t for t in UNCLAIMED if t.name in ALWAYS_SAMPLED]
    others = [t for t in UNCLAIMED if t.name not in ALWAYS_SAMPLED]
    return fixed + random.Random(9).sample(others, min(SAMPLE_SIZE - len(fixed), len(others)))


def _ids(test: onnx_node.NodeTest) -> str:
    return test.name


@pytest.mark.parametrize("test", CLAIMED, ids=_ids)
def test_node(test: onnx_node.NodeTest) -> None:
    outcome = onnx_node.run(test)
    key = TABLE.get(test.name)
    if key is None:
        assert outcome.status == "pass", (
            f"{test.name} ({', '.join(sorted(test.ops))}) {outcome.status}: {outcome.message}; if it is "
            "outside dtd's documented scope, list it in tests/data/onnx_node_expected.json"
        )
        return
    reason = REASONS[key]
    assert outcome.status == "unsupported", (
        f"{test.name} is listed as out of scope ({key}: {reason['text']}) but the outcome is "
        f"{outcome.status} {outcome.message}; delete its line from the table if it passes"
    )
    assert re.search(reason["match"], outcome.message), (
        f"{test.name} is refused, but not for its listed reason {key} ({reason['match']!r}): {outcome.message}"
    )


def test_table_lists_only_claimed_tests() -> None:
    names = {t.name for t in ALL}
    claimed = {t.name for t in CLAIMED}
    missing = sorted(set(TABLE) - names)
    unclaimed = sorted(set(TABLE) & names - claimed)
    assert not missing, f"the table lists node tests that do not exist: {missing}"
    assert not unclaimed, f"the table lists node tests of ops dtd does not claim: {unclaimed}"


def test_corrected_tests_are_claimed_and_not_also_refused() -> None:
    claimed = {t.name for t in CLAIMED}
    assert set(CORRECTED) <= claimed, sorted(set(CORRECTED) - claimed)
    assert not set(CORRECTED) & set(TABLE)


@pytest.mark.parametrize("name", sorted(CORRECTED))
def test_corrected_output_still_differs_from_the_shipped_one(name: str) -> None:
    """The shipped output_0 is the old reference's; the installed onnx reference must differ from it (else
    the entry is stale: delete it), and dtd (test_node) must match the installed reference."""
    test = BY_NAME[name]
    shipped = onnx_node.prepare_shipped(test)
    reference = onnx_node.prepare(test).expected
    assert shipped is not None and reference is not None and shipped.shape == reference.shape
    assert not np.allclose(shipped, reference, rtol=onnx_node.RTOL, atol=onnx_node.ATOL), (
        f"{name}: the installed onnx reference now equals the shipped output; delete its 'corrected' entry"
    )


def _named(name: str) -> onnx_node.NodeTest:
    if name not in BY_NAME:
        pytest.skip(f"{name} is not among the fetched node tests")
    return BY_NAME[name]


@pytest.mark.parametrize(
    ("name", "outputs"),
    [
        ("test_split_equal_parts_2d", [0, 1]),  # Split: every part is a data output
        ("test_split_variable_parts_2d_opset18", [0, 1]),
        ("test_layer_normalization_4d_axis1", [0]),  # Mean and InvStdDev are statistics
        ("test_dropout_default_mask", [0]),  # the mask is a side result
        ("test_maxpool_with_argmax_2d_precomputed_pads", [0]),  # Indices
        ("test_sigmoid", [0]),  # one output
    ],
)
def test_checked_outputs(name: str, outputs: list[int]) -> None:
    assert onnx_node.checked_outputs(_named(name)) == outputs


@pytest.mark.parametrize(
    ("name", "exact"),
    [
        ("test_sigmoid_example", True),  # element-wise
        ("test_div_example", True),  # element-wise, the divisor (a rank-1 constant) broadcasts from the right
        ("test_gelu_tanh_1", True),
        ("test_split_equal_parts_1d_opset13", False),  # Split's axis 0 would become the batch axis
        ("test_concat_1d_axis_0", False),
        ("test_gather_negative_indices", False),
        ("test_range_float_type_positive_delta", False),  # rank-0 inputs
        ("test_sigmoid", False),  # rank 3 already
    ],
)
def test_batch_axis_is_added_only_where_exact(name: str, exact: bool) -> None:
    test = _named(name)
    prepared = onnx_node.prepare(test)
    shipped = onnx_node.prepare_shipped(test)
    assert prepared.data is not None and prepared.expected is not None and shipped is not None
    assert (prepared.data.ndim == 2 and prepared.expected.shape == (1, *shipped.shape)) == exact


def test_sample_of_unclaimed_ops_is_complete() -> None:
    sample = _sample()
    assert len(sample) == SAMPLE_SIZE
    assert {t.name for t in sample} >= set(ALWAYS_SAMPLED)


@pytest.mark.parametrize("test", _sample(), ids=_ids)
def test_unclaimed_op_is_unsupported(test: onnx_node.NodeTest) -> None:
    outcome = onnx_node.run(test)
    assert outcome.status == "unsupported", f"{test.name}: {outcome.status}: {outcome.message}"
    unclaimed = sorted(test.ops - SUPPORTED)
    named = [op for op in unclaimed if op.split(":")[-1] in outcome.message]
    # The refusal names the op, unless an earlier, graph-level check refused the model first.
    assert named or not outcome.message.startswith("unsupported op"), outcome.message


def test_every_unclaimed_op_is_unsupported() -> None:
    wrong = []
    for test in UNCLAIMED:
        outcome = onnx_node.run(test)
        if outcome.status != "unsupported":
            wrong.append(f"{test.name}: {outcome.message}")
    assert not wrong, f"{len(wrong)} node tests of unclaimed ops not refused as unsupported:\n" + "\n".join(
        wrong
    )
