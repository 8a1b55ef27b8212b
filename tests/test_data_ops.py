"""Data-movement and layout ops: Reshape(allowzero), Transpose, Slice/Split/Gather, Pad, LRN, a softmax head
behind shape ops, and the opset variants of the shape ops.

Every model is compared with onnxruntime (float32 and float64 forward); the relevance through the pure data
movements is compared exactly with its NumPy adjoint (a permutation, a scatter-add, a crop).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest

import dtd
from builders import GraphBuilder, raises_on_load, random_input, run_ort, to_bytes
from dtd import ModelLoadError, UnsupportedModelError

BATCHES = (1, 3)


INT64_MAX = 2**63 - 1


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def check_against_ort(model: onnx.ModelProto, seed: int = 0, batches: tuple[int, ...] = BATCHES) -> dtd.Model:
    """Load the model and compare its float32 and float64 forward passes with onnxruntime."""
    net = dtd.load(to_bytes(model))
    for batch in batches:
        x = random_input((batch, *net.input_shape), seed + 100 * batch)
        expected = run_ort(model, x)
        scale = float(np.abs(expected).max()) or 1.0
        got = net.forward(x)
        assert got.dtype == np.float32
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
        got64 = net.forward(x.astype(np.float64))
        assert got64.shape == expected.shape
        np.testing.assert_allclose(got64, expected, rtol=1e-5, atol=1e-6 * scale)
    return net


def check_adjoint(
    model: onnx.ModelProto, adjoint: Callable[[np.ndarray], np.ndarray], seed: int = 0, batch: int = 2
) -> dtd.Model:
    """The model is one data movement: its relevance (and gradient) is the NumPy adjoint of it, exactly."""
    net = dtd.load(to_bytes(model))
    x = random_input((batch, *net.input_shape), seed).astype(np.float64)
    r_out = np.random.default_rng(seed + 1).standard_normal((batch, net.num_outputs))
    expected = adjoint(r_out.reshape((batch, *net.logits_shape)))
    assert expected.shape == x.shape
    for dtype, tol in ((np.float64, 0.0), (np.float32, 1e-6)):
        got = dtd.explain(net, x.astype(dtype), target=r_out.astype(dtype), rules="epsilon")
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    return net


# ---------------------------------------------------------------------------------------------------------
# Reshape allowzero
# ---------------------------------------------------------------------------------------------------------
def _head(b: GraphBuilder, flat: str, n_in: int, name: str = "fc") -> str:
    return b.node("Gemm", [flat, b.weight((5, n_in)), b.weight((5,), 0.5)], transB=1, name=name)


@pytest.mark.parametrize("opset", [14, 18, 21])
def test_reshape_allowzero_constant_target(opset: int) -> None:
    b = GraphBuilder((2, 3, 4), opset=opset, seed=opset)
    flat = b.node("Reshape", [b.relu("x"), b.const(_i64(-1, 24))], allowzero=1, name="flat")
    net = check_against_ort(b.build(_head(b, flat, 24)), seed=opset)
    assert [layer.kind for layer in net.layers] == ["relu", "reshape", "dense"]


@pytest.mark.parametrize("opset", [14, 18])
def test_reshape_allowzero_computed_target(opset: int) -> None:
    """The torch dynamo exporter's flatten: Shape -> Slice [:1] -> Concat([-1]) -> Reshape(allowzero=1)."""
    b = GraphBuilder((2, 3, 4), opset=opset, seed=opset)
    r = b.relu("x")
    batch = b.node("Slice", [b.node("Shape", [r]), b.const(_i64(0)), b.const(_i64(1))])
    target = b.node("Concat", [batch, b.const(_i64(-1))], axis=0)
    flat = b.node("Reshape", [r, target], allowzero=1, name="flat")
    net = check_against_ort(b.build(_head(b, flat, 24)), seed=opset)
    assert net.layers[1].kind == "reshape"
    assert net.layers[1].output_shape == (24,)
    assert net.layers[2].input_shapes == ((24,),)


def test_reshape_allowzero_computed_target_then_shape_arithmetic() -> None:
    """Shapes after a computed allowzero=1 Reshape are refined (the batch is not read as an empty axis)."""
    b = GraphBuilder((2, 3, 4), opset=14, seed=3)
    r = b.relu("x")
    batch = b.node("Slice", [b.node("Shape", [r]), b.const(_i64(0)), b.const(_i64(1))])
    first = b.node("Reshape", [r, b.node("Concat", [batch, b.const(_i64(6, 4))], axis=0)], allowzero=1)
    batch2 = b.node("Slice", [b.node("Shape", [first]), b.const(_i64(0)), b.const(_i64(1))])
    second = b.node("Reshape", [first, b.node("Concat", [batch2, b.const(_i64(-1))], axis=0)], allowzero=1)
    check_against_ort(b.build(_head(b, second, 24)), seed=3)


def test_reshape_allowzero_with_a_zero_entry() -> None:
    b = GraphBuilder((2, 3), opset=14)
    model = b.build(b.node("Reshape", [b.relu("x"), b.const(_i64(0, -1))], allowzero=1, name="rz"))
    raises_on_load(model, UnsupportedModelError, "'rz'", "allowzero=1", "length 0")


def test_reshape_allowzero_zero_in_a_computed_target() -> None:
    b = GraphBuilder((2, 3), opset=14)
    r = b.relu("x")
    batch = b.node("Slice", [b.node("Shape", [r]), b.const(_i64(0)), b.const(_i64(1))])
    target = b.node("Concat", [batch, b.const(_i64(0, 3))], axis=0)
    model = b.build(b.node("Reshape", [r, target], allowzero=1, name="rz"))
    raises_on_load(model, UnsupportedModelError, "'rz'", "allowzero=1")


def test_reshape_zero_entry_without_allowzero_copies() -> None:
    b = GraphBuilder((2, 3, 4), opset=14, seed=5)
    flat = b.node("Reshape", [b.relu("x"), b.const(_i64(0, 0, -1))], allowzero=0)
    check_against_ort(b.build(_head(b, b.node("Flatten", [flat]), 24)), seed=5)


def test_check_adjoint_detects_a_wrong_map() -> None:
    """The adjoint check is not vacuous: a wrong permutation fails it."""
    b = GraphBuilder((2, 3), opset=13)
    model = b.build(b.node("Transpose", ["x"], perm=[0, 2, 1]))
    with pytest.raises(AssertionError):
        check_adjoint(model, lambda r: r.reshape(r.shape[0], 2, 3))


# ---------------------------------------------------------------------------------------------------------
# Transpose
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "perm"),
    [
        ((3, 4, 5), [0, 2, 3, 1]),
        ((4, 5, 3), [0, 3, 1, 2]),
        ((3, 4, 5), [0, 1, 3, 2]),
        ((2, 3, 4, 5), [0, 2, 1, 4, 3]),
    ],
    ids=["nchw_to_nhwc", "nhwc_to_nchw", "swap_hw", "rank5"],
)
@pytest.mark.parametrize("opset", [11, 13, 21])
def test_transpose_forward_and_inverse_permutation(
    shape: tuple[int, ...], perm: list[int], opset: int
) -> None:
    b = GraphBuilder(shape, opset=opset, seed=opset)
    model = b.build(b.node("Transpose", ["x"], perm=perm, name="tr"))
    net = check_against_ort(model, seed=opset)
    assert [layer.kind for layer in net.layers] == ["transpose"]
    inverse = list(np.argsort(perm))
    check_adjoint(model, lambda r: r.transpose(inverse))


def test_transpose_of_size1_axes_stays_a_reshape() -> None:
    b = GraphBuilder((1, 4, 1), opset=13)
    net = check_against_ort(b.build(b.node("Transpose", [b.relu("x")], perm=[0, 3, 2, 1])))
    assert [layer.kind for layer in net.layers] == ["relu", "reshape"]


@pytest.mark.parametrize(("perm", "pattern"), [([1, 0, 2, 3], "moves the batch axis"), (None, "batch")])
def test_transpose_of_the_batch_axis(perm: list[int] | None, pattern: str) -> None:
    b = GraphBuilder((3, 4, 5))
    attrs = {} if perm is None else {"perm": perm}
    model = b.build(b.node("Transpose", [b.relu("x")], name="tr", **attrs))
    raises_on_load(model, UnsupportedModelError, "'tr'", pattern)


def _conservation(net: dtd.Model, x: np.ndarray) -> None:
    """Bias-free ReLU net, eps 1e-12: the input relevance sums to the logit, layer by layer."""
    rules = dtd.rules.Composite(first=dtd.rules.WSquare(1e-12), default=dtd.rules.ZPlus(1e-12), eps=1e-12)
    details = dtd.explain(net, x, rules=rules, return_details=True)
    f = details.logits[np.arange(len(x)), details.targets]
    np.testing.assert_allclose(details.relevance.reshape(len(x), -1).sum(axis=1), f, rtol=1e-9)
    for layer in details.layers:
        np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-9, atol=1e-12)


def _channel_shuffle(b: GraphBuilder, x: str, groups: int) -> str:
    c, h, w = b.shape(x)
    grouped = b.node("Reshape", [x, b.const(_i64(0, groups, c // groups, h, w))])
    shuffled = b.node("Transpose", [grouped], perm=[0, 2, 1, 3, 4], name=b.fresh("shuffle"))
    return b.node("Reshape", [shuffled, b.const(_i64(0, c, h, w))])


def test_channel_shuffle_block() -> None:
    """ShuffleNet v2: split the channels, convolve one half, concat, shuffle."""
    b = GraphBuilder((4, 6, 6), opset=13, seed=7)
    h = b.relu(b.conv("x", 8, bias=False, pads=[1, 1, 1, 1]))
    left = b.node("Split", [h, b.const(_i64(4, 4))], n_outputs=2, axis=1, name="split")
    right = b.relu(b.conv("split_out1", 4, kernel=(1, 1), bias=False))
    # (A 1x1 conv after the concat, as in ShuffleNet v1's units, keeps the concat's output in the trace.)
    merged = b.relu(b.conv(b.node("Concat", [left, right], axis=1), 8, kernel=(1, 1), bias=False))
    mixed = _channel_shuffle(b, merged, groups=2)
    pooled = b.node("Flatten", [b.node("GlobalAveragePool", [mixed])])
    model = b.build(b.gemm(pooled, 5, bias=False))
    net = check_against_ort(model, seed=7)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("slice") == 2 and "transpose" in kinds
    _conservation(net, random_input((3, 4, 6, 6), 8).astype(np.float64))


def _nhwc_model(opset: int = 13, seed: int = 0) -> onnx.ModelProto:
    """A Keras/tf2onnx-style graph: NHWC input, Transpose to NCHW, Conv, back to NHWC, Flatten, Gemm."""
    b = GraphBuilder((6, 5, 3), opset=opset, seed=seed)
    nchw = b.node("Transpose", ["x"], perm=[0, 3, 1, 2], name="to_nchw")
    h = b.relu(b.conv(nchw, 4, bias=False, pads=[1, 1, 1, 1]))
    nhwc = b.node("Transpose", [h], perm=[0, 2, 3, 1], name="to_nhwc")
    return b.build(b.gemm(b.node("Flatten", [nhwc]), 5, bias=False))


def test_nhwc_graph_transpose_flatten_gemm() -> None:
    model = _nhwc_model(seed=3)
    net = check_against_ort(model, seed=3)
    assert [layer.kind for layer in net.layers] == [
        "transpose",
        "conv",
        "relu",
        "transpose",
        "flatten",
        "dense",
    ]
    x = random_input((2, 6, 5, 3), 4).astype(np.float64)
    _conservation(net, x)


def test_nhwc_graph_per_channel_bounds_follow_the_transpose() -> None:
    """Per-channel z^beta bounds of an NHWC input are given per channel of the model input (the last axis)."""
    model = _nhwc_model(seed=5)
    net = dtd.load(to_bytes(model))
    low, high = np.array([-1.0, -2.0, -3.0]), np.array([1.0, 2.0, 3.0])
    x = np.random.default_rng(6).uniform(low, high, (2, 6, 5, 3))
    got = dtd.explain(net, x, low=low, high=high)
    # The same network built on the NCHW input directly, with the bounds laid out as NCHW.
    inner = onnx.ModelProto()
    inner.CopyFrom(model)
    del inner.graph.node[0]
    inner.graph.node[0].input[0] = "x"
    inner.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3
    inner.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 6
    inner.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 5
    ref_net = dtd.load(to_bytes(inner))
    expected = dtd.explain(ref_net, x.transpose(0, 3, 1, 2), low=low, high=high)
    np.testing.assert_allclose(got, expected.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------------------
# Slice
# ---------------------------------------------------------------------------------------------------------
SLICES = [
    # starts, ends, axes, steps, the NumPy index of one sample
    ([0], [2], [1], None, (slice(0, 2),)),
    ([1], [INT64_MAX], [-1], None, (slice(None), slice(None), slice(1, None))),
    ([-3, 1], [-1, 100], [2, 1], None, (slice(1, None), slice(-3, -1))),
    ([0, 0], [INT64_MAX, 3], [0, 3], None, (slice(None), slice(None), slice(0, 3))),
    ([4], [-100], [3], [-2], (slice(None), slice(None), slice(4, None, -2))),
    ([-1, 0], [-INT64_MAX, 5], [1, 2], [-1, 2], (slice(None, None, -1), slice(0, 5, 2))),
]
SLICE_IDS = ["first_channels", "to_the_end", "negative_starts", "batch_noop", "negative_step", "reverse"]


def _slice_adjoint(index: tuple[slice, ...], shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    def adjoint(r: np.ndarray) -> np.ndarray:
        out = np.zeros((r.shape[0], *shape))
        out[(slice(None), *index)] = r
        return out

    return adjoint


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize(("starts", "ends", "axes", "steps", "index"), SLICES, ids=SLICE_IDS)
def test_slice(
    opset: int, starts: list[int], ends: list[int], axes: list[int], steps: Any, index: Any
) -> None:
    shape = (3, 4, 6)
    b = GraphBuilder(shape, opset=opset, seed=opset)
    inputs = ["x", b.const(_i64(*starts)), b.const(_i64(*ends)), b.const(_i64(*axes))]
    if steps is not None:
        inputs.append(b.const(_i64(*steps)))
    model = b.build(b.node("Slice", inputs, name="sl"))
    net = check_against_ort(model, seed=opset)
    assert net.output_shape == np.zeros(shape)[index].shape
    check_adjoint(model, _slice_adjoint(index, shape))


def test_slice_before_opset10_attributes() -> None:
    b = GraphBuilder((3, 4, 6), opset=9, seed=9)
    model = b.build(b.node("Slice", ["x"], starts=[1, -4], ends=[3, 100], axes=[1, 3], name="sl"))
    net = check_against_ort(model, seed=9)
    assert net.output_shape == (2, 4, 4)
    check_adjoint(model, _slice_adjoint((slice(1, 3), slice(None), slice(-4, None)), (3, 4, 6)))


def test_slice_of_the_batch_axis() -> None:
    b = GraphBuilder((4,), opset=13)
    model = b.build(b.node("Slice", ["x", b.const(_i64(0)), b.const(_i64(1)), b.const(_i64(0))], name="sl"))
    raises_on_load(model, UnsupportedModelError, "'sl'", "batch axis")


@pytest.mark.parametrize(
    ("starts", "ends", "steps"),
    [((3,), (1,), (1,)), ((1000,), (1000,), (1,)), ((0,), (4,), (-1,)), ((-100,), (-50,), (1,))],
    ids=["start_after_end", "start_out_of_bounds", "backwards_from_0", "before_the_axis"],
)
def test_empty_slice(starts: tuple[int, ...], ends: tuple[int, ...], steps: tuple[int, ...]) -> None:
    """A valid ONNX slice with no element: an empty tensor, outside dtd's scope (not a malformed model)."""
    b = GraphBuilder((4,), opset=13)
    inputs = ["x", b.const(_i64(*starts)), b.const(_i64(*ends)), b.const(_i64(1)), b.const(_i64(*steps))]
    model = b.build(b.node("Slice", inputs, name="sl"))
    raises_on_load(model, UnsupportedModelError, "'sl'", r"\(length 4\)", r"\['N', 4\]", "empty tensors")


def test_slice_of_a_shape_value_still_folds() -> None:
    """torch's x.view(x.size(0), -1) through Shape -> Slice: folded, not a slice layer."""
    b = GraphBuilder((2, 3), opset=13)
    r = b.relu("x")
    batch = b.node("Slice", [b.node("Shape", [r]), b.const(_i64(0)), b.const(_i64(1))])
    flat = b.node("Reshape", [r, b.node("Concat", [batch, b.const(_i64(-1))], axis=0)])
    net = check_against_ort(b.build(_head(b, flat, 6)))
    assert [layer.kind for layer in net.layers] == ["relu", "reshape", "dense"]


# ---------------------------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------------------------
def _split_model(opset: int, sizes: list[int] | None, n_out: int, **attrs: Any) -> onnx.ModelProto:
    """Split [N, 7, 2] on axis 1 and concat the parts in reverse order (a pure data movement)."""
    b = GraphBuilder((7, 2), opset=opset, seed=opset)
    inputs = ["x"]
    if sizes is not None and opset >= 13:
        inputs.append(b.const(_i64(*sizes)))
    elif sizes is not None:
        attrs["split"] = sizes
    b.node("Split", inputs, n_outputs=n_out, axis=1, name="sp", **attrs)
    outs = ["sp_out"] + [f"sp_out{i}" for i in range(1, n_out)]
    return b.build(b.node("Concat", outs[::-1], axis=1))


@pytest.mark.parametrize(
    ("opset", "sizes", "n_out", "attrs", "parts"),
    [
        (11, [2, 5], 2, {}, [2, 5]),
        (13, [3, 1, 3], 3, {}, [3, 1, 3]),
        (18, None, 3, {"num_outputs": 3}, [3, 3, 1]),
        (13, None, 1, {}, [7]),
    ],
    ids=["attr_op11", "input_op13", "num_outputs_op18", "one_part"],
)
def test_split(
    opset: int, sizes: list[int] | None, n_out: int, attrs: dict[str, Any], parts: list[int]
) -> None:
    model = _split_model(opset, sizes, n_out, **attrs)
    net = check_against_ort(model, seed=opset)
    slices = [layer for layer in net.layers if layer.kind == "slice"]
    assert [layer.output_shape[0] for layer in slices] == parts
    assert len({layer.name for layer in net.layers}) == len(net.layers)
    bounds = np.cumsum([0, *parts])

    def adjoint(r: np.ndarray) -> np.ndarray:
        pieces, start = [], 0
        for size in parts[::-1]:
            pieces.append(r[:, start : start + size])
            start += size
        out = np.zeros((r.shape[0], 7, 2))
        for k, piece in enumerate(pieces[::-1]):
            out[:, bounds[k] : bounds[k + 1]] = piece
        return out

    check_adjoint(model, adjoint)


def test_split_equal_parts_that_do_not_divide() -> None:
    model = _split_model(13, None, 2)
    raises_on_load(model, ModelLoadError, "'sp'", "equal parts")


@pytest.mark.parametrize("opset", [11, 13])
def test_split_with_a_zero_size_part(opset: int) -> None:
    """A zero-size split is valid ONNX but makes an empty tensor: unsupported, not malformed."""
    raises_on_load(_split_model(opset, [3, 0, 4], 3), UnsupportedModelError, "'sp'", r"\[3, 0, 4\]", "empty")


def test_split_sizes_for_another_number_of_outputs() -> None:
    raises_on_load(_split_model(13, [3, 4, 0], 2), ModelLoadError, "'sp'", "for 2 outputs")


def test_split_one_output_unused() -> None:
    """torch's x[:, :k] through a Split whose second part is dropped."""
    b = GraphBuilder((6,), opset=13, seed=2)
    first = b.node("Split", [b.relu("x"), b.const(_i64(2, 4))], n_outputs=2, axis=1)
    net = check_against_ort(b.build(b.gemm(first, 3)))
    assert [layer.kind for layer in net.layers] == ["relu", "slice", "dense"]


# ---------------------------------------------------------------------------------------------------------
# Gather
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("indices", "axis"),
    [(np.array(1), 1), (np.array(-1), 2), (_i64(2, 0, 2, -3), 1), (_i64(3), -1)],
    ids=["scalar", "scalar_negative", "vector_repeats", "vector_one"],
)
@pytest.mark.parametrize("opset", [11, 13])
def test_gather(indices: np.ndarray, axis: int, opset: int) -> None:
    shape = (3, 4)
    b = GraphBuilder(shape, opset=opset, seed=opset)
    model = b.build(b.node("Gather", ["x", b.const(indices.astype(np.int64))], axis=axis, name="ga"))
    net = check_against_ort(model, seed=opset)
    assert [layer.kind for layer in net.layers] == ["gather"]
    ax = axis % 3

    def adjoint(r: np.ndarray) -> np.ndarray:
        out = np.zeros((r.shape[0], *shape))
        idx = np.asarray(indices) % shape[ax - 1]
        rr = r if idx.ndim else np.expand_dims(r, ax)
        for k, i in enumerate(np.atleast_1d(idx)):
            index: list[Any] = [slice(None)] * 3
            index[ax] = i
            take: list[Any] = [slice(None)] * 3
            take[ax] = k
            out[tuple(index)] += rr[tuple(take)]
        return out

    check_adjoint(model, adjoint)


def test_gather_on_the_batch_axis() -> None:
    b = GraphBuilder((4,), opset=13)
    model = b.build(b.node("Gather", ["x", b.const(np.array(0, dtype=np.int64))], axis=0, name="ga"))
    raises_on_load(model, UnsupportedModelError, "'ga'", "batch axis")


def test_gather_with_matrix_indices() -> None:
    b = GraphBuilder((4,), opset=13)
    model = b.build(b.node("Gather", ["x", b.const(np.zeros((2, 2), dtype=np.int64))], axis=1, name="ga"))
    raises_on_load(model, UnsupportedModelError, "'ga'", "scalar or a non-empty vector")


def test_gather_index_out_of_range() -> None:
    b = GraphBuilder((4,), opset=13)
    model = b.build(b.node("Gather", ["x", b.const(_i64(4))], axis=1, name="ga"))
    raises_on_load(model, ModelLoadError, "'ga'", "out of range")


def test_gather_data_indices() -> None:
    b = GraphBuilder((4,), opset=13)
    idx = b.node("Cast", [b.relu("x")], to=onnx.TensorProto.INT64)
    model = b.build(b.node("Gather", ["x", idx], axis=1, name="ga"))
    raises_on_load(model, UnsupportedModelError, "Cast")


# ---------------------------------------------------------------------------------------------------------
# Pad
# ---------------------------------------------------------------------------------------------------------
def _pad_model(
    shape: tuple[int, ...], pads: list[int], mode: str, value: float | None, opset: int
) -> onnx.ModelProto:
    b = GraphBuilder(shape, opset=opset, seed=opset)
    attrs: dict[str, Any] = {"mode": mode}
    inputs = ["x"]
    if opset < 11:
        attrs["pads"] = pads
        if value is not None:
            attrs["value"] = value
    else:
        inputs.append(b.const(_i64(*pads)))
        if value is not None:
            inputs.append(b.const(np.array(value, dtype=np.float32)))
    return b.build(b.node("Pad", inputs, name="pd", **attrs))


def _pad_adjoint(shape: tuple[int, ...], pads: list[int], mode: str) -> Callable[[np.ndarray], np.ndarray]:
    """The adjoint of the pad, from NumPy's pad of an index array (-1 marks constant positions)."""
    rank = len(shape) + 1
    cropped = tuple(
        slice(max(-pads[a], 0), (shape[a - 1] if True else 0) - max(-pads[a + rank], 0))
        for a in range(1, rank)
    )
    widths = [(max(pads[a], 0), max(pads[a + rank], 0)) for a in range(1, rank)]
    idx = np.arange(int(np.prod(shape))).reshape(shape)[cropped]
    if mode == "constant":
        mapped = np.pad(idx, widths, mode="constant", constant_values=-1)
    else:
        mapped = np.pad(idx, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])

    def adjoint(r: np.ndarray) -> np.ndarray:
        out = np.zeros((r.shape[0], int(np.prod(shape))))
        keep = mapped.reshape(-1) >= 0
        for n in range(r.shape[0]):
            np.add.at(out[n], mapped.reshape(-1)[keep], r[n].reshape(-1)[keep])
        return out.reshape((r.shape[0], *shape))

    return adjoint


PADS = [
    ("constant", [0, 0, 1, 2, 0, 0, 2, 1], 0.0),
    ("constant", [0, 1, 0, 1, 0, 0, 2, 0], 1.5),
    ("constant", [0, 0, -1, 2, 0, 0, 1, -2], None),
    ("reflect", [0, 0, 2, 1, 0, 0, 1, 2], None),
    ("edge", [0, 1, 3, 0, 0, 2, 0, 4], None),
]
PAD_IDS = ["zero", "value", "crop", "reflect", "edge"]


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize(("mode", "pads", "value"), PADS, ids=PAD_IDS)
def test_pad(opset: int, mode: str, pads: list[int], value: float | None) -> None:
    shape = (2, 4, 5)
    model = _pad_model(shape, pads, mode, value, opset)
    net = check_against_ort(model, seed=opset)
    assert [layer.kind for layer in net.layers] == ["pad"]
    check_adjoint(model, _pad_adjoint(shape, pads, mode))


def test_pad_wrap_opset19() -> None:
    shape, pads = (2, 4, 5), [0, 0, 2, 3, 0, 0, 1, 4]
    model = _pad_model(shape, pads, "wrap", None, 19)
    check_against_ort(model)
    check_adjoint(model, _pad_adjoint(shape, pads, "wrap"))


def test_pad_wrap_before_opset19() -> None:
    raises_on_load(_pad_model((2, 3), [0, 1, 0, 1], "wrap", None, 18), UnsupportedModelError, "'pd'", "wrap")


def test_pad_before_opset11_attributes() -> None:
    shape, pads = (2, 4, 5), [0, 0, 1, 2, 0, 0, 2, 1]
    model = _pad_model(shape, pads, "constant", 0.5, 10)
    net = check_against_ort(model, seed=10)
    assert net.output_shape == (2, 7, 8)
    check_adjoint(model, _pad_adjoint(shape, pads, "constant"))


def test_pad_axes_input_opset18() -> None:
    b = GraphBuilder((2, 4, 5), opset=18, seed=18)
    model = b.build(b.node("Pad", ["x", b.const(_i64(1, 2, 3, 0)), "", b.const(_i64(-1, 2))], mode="edge"))
    net = check_against_ort(model, seed=18)
    check_adjoint(model, _pad_adjoint((2, 4, 5), [0, 0, 2, 1, 0, 0, 0, 3], "edge"))
    assert net.output_shape == (2, 6, 9)


def test_pad_of_the_batch_axis() -> None:
    raises_on_load(
        _pad_model((3,), [1, 0, 0, 0], "constant", None, 13), UnsupportedModelError, "'pd'", "batch"
    )


def test_pad_cropping_an_axis_to_nothing() -> None:
    """Negative pads that crop an axis to length 0 make an empty tensor (valid ONNX, outside dtd's scope)."""
    model = _pad_model((3, 4), [0, -1, 0, 0, -2, 0], "constant", None, 13)
    raises_on_load(model, UnsupportedModelError, "'pd'", r"\['N', 3, 4\]", "length 0", "empty tensors")


def test_pad_cropping_more_than_the_axis() -> None:
    model = _pad_model((3, 4), [0, -2, 0, 0, -2, 0], "constant", None, 13)
    raises_on_load(model, ModelLoadError, "'pd'", r"\['N', 3, 4\]", "crop more")


def test_gather_with_empty_indices() -> None:
    b = GraphBuilder((4, 3), opset=13)
    model = b.build(b.node("Gather", ["x", b.const(np.zeros(0, np.int64))], axis=1, name="ga"))
    raises_on_load(model, UnsupportedModelError, "'ga'", r"shape \[0\]", r"\['N', 4, 3\]")


def _pad_then(op: str, value: float, **attrs: Any) -> onnx.ModelProto:
    b = GraphBuilder((2, 5, 5), opset=13, seed=1)
    padded = b.node("Pad", [b.relu("x"), b.const(_i64(0, 0, 1, 2, 0, 0, 2, 1)), b.const(np.float32(value))])
    if op == "Conv":
        out = b.conv(padded, 3, **attrs)
    else:
        out = b.node(op, [padded], kernel_shape=[3, 3], **attrs)
    return b.build(b.gemm(b.node("Flatten", [out]), 4))


@pytest.mark.parametrize(
    ("op", "value", "attrs", "folds"),
    [
        ("Conv", 0.0, {"pads": [1, 0, 0, 1]}, True),
        ("Conv", 0.0, {"strides": [2, 2], "dilations": [2, 1]}, True),
        ("Conv", 0.5, {}, False),
        ("Conv", 0.0, {"auto_pad": "SAME_UPPER"}, False),
        ("AveragePool", 0.0, {"count_include_pad": 1, "pads": [0, 1, 1, 0]}, True),
        ("AveragePool", 0.0, {"count_include_pad": 0}, False),
        ("MaxPool", -math.inf, {"strides": [2, 2]}, True),
        ("MaxPool", 0.0, {}, False),
        ("MaxPool", -math.inf, {"ceil_mode": 1, "strides": [2, 2]}, False),
    ],
    ids=[
        "conv",
        "conv_strided",
        "conv_value",
        "conv_same",
        "avg_incl",
        "avg_excl",
        "max_inf",
        "max_zero",
        "max_ceil",
    ],
)
def test_pad_folds_into_the_next_layer_where_exact(
    op: str, value: float, attrs: dict[str, Any], folds: bool
) -> None:
    net = check_against_ort(_pad_then(op, value, **attrs))
    kinds = [layer.kind for layer in net.layers]
    assert ("pad" not in kinds) == folds, kinds


# ---------------------------------------------------------------------------------------------------------
# LRN
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "attrs"),
    [(5, {"alpha": 1e-2, "beta": 0.75, "bias": 2.0}), (1, {}), (3, {"alpha": 0.5, "beta": 1.5, "bias": 1.0})],
    ids=["alexnet_like", "defaults_size1", "strong"],
)
def test_lrn(size: int, attrs: dict[str, Any]) -> None:
    b = GraphBuilder((6, 3, 4), opset=13, seed=size)
    h = b.relu(b.conv("x", 7, kernel=(1, 1)))
    model = b.build(b.gemm(b.node("Flatten", [b.node("LRN", [h], size=size, name="lrn", **attrs)]), 3))
    net = check_against_ort(model, seed=size)
    assert "lrn" in [layer.kind for layer in net.layers]
    # Relevance passes through the LRN unchanged.
    details = dtd.explain(net, random_input((2, 6, 3, 4), 1).astype(np.float64), return_details=True)
    (lrn,) = [layer for layer in details.layers if layer.kind == "lrn"]
    np.testing.assert_array_equal(lrn.relevance_in, lrn.relevance_out)
    # The gradient (sensitivity) is the true gradient: central differences in float64.
    x = random_input((1, 6, 3, 4), 2).astype(np.float64)
    grad = dtd.sensitivity(net, x, target=1, kind="gradient")
    step, numeric = 1e-6, np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = step
        e = e.reshape(x.shape)
        numeric.reshape(-1)[i] = (net.forward(x + e)[0, 1] - net.forward(x - e)[0, 1]) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def _lrn_numpy(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """The ONNX spec's LRN in float64 (the window of channel c: [c - floor((size-1)/2), c + ceil((size-1)/2)])."""
    out = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - (size - 1) // 2), min(channels - 1, c + -(-(size - 1) // 2))
        square_sum = (x[:, lo : hi + 1] ** 2).sum(axis=1)
        out[:, c] = x[:, c] / (bias + alpha / size * square_sum) ** beta
    return out


@pytest.mark.parametrize("size", [2, 4, 5])
def test_lrn_against_numpy(size: int) -> None:
    """Even sizes (an asymmetric window), which onnxruntime refuses."""
    b = GraphBuilder((6, 2, 3), opset=13)
    net = dtd.load(to_bytes(b.build(b.node("LRN", ["x"], size=size, alpha=0.3, beta=0.6, bias=1.5))))
    x = random_input((2, 6, 2, 3), size).astype(np.float64)
    # ONNX float attributes are float32.
    expected = _lrn_numpy(x, size, float(np.float32(0.3)), float(np.float32(0.6)), 1.5)
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-12)
    np.testing.assert_allclose(net.forward(x.astype(np.float32)), expected, rtol=1e-5)


def test_lrn_without_size() -> None:
    b = GraphBuilder((3, 2, 2), opset=13)
    raises_on_load(b.build(b.node("LRN", ["x"], name="n")), ModelLoadError, "'n'", "size")


# ---------------------------------------------------------------------------------------------------------
# Softmax head followed by shape ops
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tail",
    [["Reshape"], ["Flatten"], ["Identity", "Reshape"], ["Unsqueeze", "Squeeze"], ["Reshape", "Flatten"]],
)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_head_followed_by_shape_ops(op: str, tail: list[str]) -> None:
    b = GraphBuilder((6,), opset=13, seed=4)
    logits = b.gemm(b.relu(b.gemm("x", 8)), 6)
    out = b.node(op, [logits], axis=1)
    for shape_op in tail:
        if shape_op == "Reshape":
            out = b.node("Reshape", [out, b.const(_i64(0, 2, 3))])
        elif shape_op == "Unsqueeze":
            out = b.node("Unsqueeze", [out, b.const(_i64(2))])
        elif shape_op == "Squeeze":
            out = b.node("Squeeze", [out, b.const(_i64(2))])
        else:
            out = b.node(shape_op, [out])
    net = check_against_ort(b.build(out), seed=4)
    assert net.logits_shape == (6,)
    x = random_input((3, 6), 5).astype(np.float64)
    details = dtd.explain(net, x, return_details=True)
    trace_logits = details.logits
    np.testing.assert_allclose(trace_logits.max(axis=1), details.relevance.sum(axis=1), rtol=1e-4)


def test_softmax_followed_by_a_computation() -> None:
    b = GraphBuilder((6,), opset=13)
    out = b.relu(b.node("Softmax", [b.gemm("x", 4)], axis=1, name="sm"))
    raises_on_load(b.build(out), UnsupportedModelError, "'sm'", "head")


# ---------------------------------------------------------------------------------------------------------
# opset variants of the shape ops, MatMul on channels-last tensors
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [11, 12, 13, 21])
def test_squeeze_unsqueeze_attribute_or_input(opset: int) -> None:
    b = GraphBuilder((3, 4), opset=opset, seed=opset)
    if opset >= 13:
        up = b.node("Unsqueeze", [b.relu("x"), b.const(_i64(1, -1))])
        down = b.node("Squeeze", [up, b.const(_i64(1, 4))])
    else:
        up = b.node("Unsqueeze", [b.relu("x")], axes=[1, -1])
        down = b.node("Squeeze", [up], axes=[1, 4])
    net = check_against_ort(b.build(b.gemm(b.node("Flatten", [down]), 2)), seed=opset)
    assert [layer.kind for layer in net.layers] == ["relu", "reshape", "reshape", "flatten", "dense"]


@pytest.mark.parametrize(
    ("opset", "attrs", "extra"),
    [
        (6, {"is_test": 1}, 0),
        (7, {"ratio": 0.3}, 0),
        (10, {"ratio": 0.3}, 0),
        (12, {}, 1),
        (13, {}, 2),
        (21, {}, 2),
    ],
)
def test_dropout_variants(opset: int, attrs: dict[str, Any], extra: int) -> None:
    b = GraphBuilder((5,), opset=opset, seed=opset)
    inputs = [b.relu("x")]
    if extra >= 1:
        inputs.append(b.const(np.array(0.4, dtype=np.float32)))
    if extra >= 2:
        inputs.append(b.const(np.array(False)))
    out = b.node("Dropout", inputs, n_outputs=2 if opset >= 7 else 1, **attrs)
    net = check_against_ort(b.build(b.node("MatMul", [out, b.weight((5, 3))])), seed=opset)
    assert [layer.kind for layer in net.layers] == ["relu", "dense"]


def test_dropout_training() -> None:
    b = GraphBuilder((5,), opset=6)
    raises_on_load(
        b.build(b.node("Dropout", ["x"], is_test=0, name="dr")), UnsupportedModelError, "'dr'", "is_test"
    )
    b = GraphBuilder((5,), opset=13)
    out = b.node("Dropout", ["x", b.const(np.array(0.5, np.float32)), b.const(np.array(True))], name="dr")
    raises_on_load(b.build(out), UnsupportedModelError, "'dr'", "training")


@pytest.mark.parametrize(("opset", "axis"), [(9, 1), (11, -1), (11, 2), (13, -2), (21, 3)])
def test_flatten_variants(opset: int, axis: int) -> None:
    b = GraphBuilder((2, 3, 4), opset=opset, seed=opset)
    flat = b.node("Flatten", [b.relu("x")], axis=axis)
    check_against_ort(b.build(flat), seed=opset)


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_concat_identity_reshape_variants(opset: int) -> None:
    b = GraphBuilder((2, 3), opset=opset, seed=opset)
    r = b.node("Identity", [b.relu("x")])
    both = b.node("Concat", [r, b.node("Relu", [b.node("Identity", ["x"])])], axis=-1 if opset >= 11 else 2)
    check_against_ort(b.build(b.node("Reshape", [both, b.const(_i64(0, -1))])), seed=opset)


def test_matmul_on_channels_last() -> None:
    """[N, H, W, C] @ W[C, K] + b: a dense layer on the last axis."""
    b = GraphBuilder((3, 4, 5), opset=13, seed=11)
    h = b.node("MatMul", [b.relu("x"), b.weight((5, 6))])
    h = b.node("Add", [h, b.weight((6,), 0.5)])
    net = check_against_ort(b.build(b.gemm(b.node("Flatten", [b.relu(h)]), 2)), seed=11)
    assert [layer.kind for layer in net.layers] == ["relu", "dense", "relu", "flatten", "dense"]
    assert net.layers[1].output_shape == (3, 4, 6)
    _conservation_free = dtd.explain(net, random_input((2, 3, 4, 5), 1).astype(np.float64))
    assert _conservation_free.shape == (2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------------------
# the C++ layers' own checks (a ModelSpec built by hand, as a C++ service would)
# ---------------------------------------------------------------------------------------------------------
def _layer(kind: str, inputs: list[str], output: str, ints: Any = None, floats: Any = None) -> Any:
    from dtd import _core

    layer = _core.LayerSpec()
    layer.name, layer.kind, layer.inputs, layer.output = (
        output,
        getattr(_core.LayerKind, kind),
        inputs,
        output,
    )
    layer.ints = ints or {}
    layer.floats = floats or {}
    return layer


def _network(input_shape: list[int], *layers: Any) -> Any:
    from dtd import _core

    spec = _core.ModelSpec()
    spec.input_name, spec.input_shape, spec.output, spec.layers = (
        "x",
        input_shape,
        layers[-1].output,
        list(layers),
    )
    return _core.Network64(spec)


@pytest.mark.parametrize(
    ("kind", "ints", "floats", "pattern"),
    [
        ("transpose", {"perm": [1, 0, 2]}, {}, "moves the batch axis"),
        ("transpose", {"perm": [0, 1, 1]}, {}, "not a permutation"),
        ("slice", {"axes": [0], "starts": [0], "ends": [1]}, {}, "batch axis"),
        ("slice", {"axes": [1], "starts": [0], "ends": [2], "steps": [0]}, {}, "step 0"),
        ("slice", {"axes": [1, -2], "starts": [0, 0], "ends": [2, 2]}, {}, "repeated"),
        ("slice", {"axes": [2], "starts": [3], "ends": [3]}, {}, "empty"),
        ("gather", {"axis": [1], "indices": [3]}, {}, "out of range"),
        ("gather", {"axis": [1], "indices": [0, 1], "squeeze": [1]}, {}, "one index"),
        ("pad", {"pads": [1, 0, 0, 0, 0, 0]}, {}, "batch axis"),
        ("pad", {"pads": [0, 3, 0, 0, 0, 0], "mode": [1]}, {}, "smaller than its length"),
        ("pad", {"pads": [0, -2, 0, 0, -1, 0]}, {}, "leave nothing"),
        ("pad", {"pads": [0, 0, 0, 0], "mode": [0]}, {}, "expected 6"),
        ("lrn", {"size": [0]}, {}, "size"),
        ("lrn", {"size": [3]}, {"bias": 0.0}, "bias > 0"),
    ],
)
def test_cpp_layer_checks(
    kind: str, ints: dict[str, list[int]], floats: dict[str, float], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        _network([3, 4], _layer(kind, ["x"], "y", ints, floats))
    assert "'y'" in str(info.value)


def test_cpp_head_followed_by_reshapes_only() -> None:
    soft = _layer("softmax", ["x"], "s", {"axis": [-1]})
    net = _network(
        [2, 3],
        soft,
        _layer("flatten", ["s"], "f", {"axis": [1]}),
        _layer("reshape", ["f"], "y", {"shape": [0, 3, 2]}),
    )
    assert list(net.logits_shape) == [2, 3] and list(net.output_shape) == [3, 2]
    with pytest.raises(ValueError, match="output head"):
        _network([2, 3], soft, _layer("relu", ["s"], "y"))


def test_constant_pad_relevance_is_dropped_in_the_report() -> None:
    model = _pad_model((2, 3), [0, 1, 0, 0, 0, 2], "constant", 0.5, 13)
    net = dtd.load(to_bytes(model))
    r_out = np.ones((1, net.num_outputs))
    details = dtd.explain(net, np.zeros((1, 2, 3)), target=r_out, return_details=True)
    (pad,) = details.layers
    assert pad.relevance_out[0] == pytest.approx(3 * 5) and pad.relevance_in[0] == pytest.approx(2 * 3)
