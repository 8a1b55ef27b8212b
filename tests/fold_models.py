"""Random models whose constants the importers evaluate at import (python/dtd/onnx/fold.py and its C++ port), for
tests/test_import_cpp.py: every evaluator on every element type fold.py evaluates, with values that reach NumPy's
corner cases (integer wrap-around, inf, NaN, -0.0, division by zero), and the data movements of shape.py (Slice,
Split, Gather, the gather from a batch flattened with its samples). The folded value ends up in a weight (float64
throughout, so that it is compared bit for bit) or in an error both importers must word the same.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TYPES = [
    np.float32,
    np.float64,
    np.float16,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
]
BINARY = [
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Mod",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "And",
    "Or",
    "Max",
    "Min",
    "Sum",
    "Where",
]
UNARY = ["Neg", "Abs", "Floor", "Ceil", "Sqrt", "Not"]
REDUCE = ["ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin"]
SHAPE_OPS = [
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Slice",
    "Reshape",
    "Flatten",
    "Transpose",
    "ConstantOfShape",
    "Range",
    "Expand",
    "Tile",
    "Shape",
    "Size",
]


def _i64(values: object) -> np.ndarray:
    return np.array(values, np.int64)


def _values(rng: np.random.Generator, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    if dtype is np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if rng.integers(3) == 0:
            return rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)
        return rng.integers(max(info.min, -9), min(info.max, 9), shape, endpoint=True).astype(dtype)
    v = rng.normal(0, 10.0 ** rng.integers(-3, 6), shape)
    kind = rng.integers(4)
    if kind == 0:
        v = np.round(v)
    elif kind == 1:
        v[rng.random(shape) < 0.3] = 0
    elif kind == 2 and v.size:
        v.flat[0] = [np.inf, -np.inf, np.nan, -0.0, 65504.0, 1e-8][rng.integers(6)]
    with np.errstate(all="ignore"):
        return v.astype(dtype)


def _into_weight(nodes: list, inits: list, out: str, opset: int, features: int | None) -> onnx.ModelProto:
    """x [N, 4] @ I + broadcast(value) when ``features`` is 4, else x [N, 1] @ value.reshape(1, -1)."""
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4 if features else 1])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)
    nodes = [*nodes, helper.make_node("Cast", [out], ["cd"], to=TensorProto.DOUBLE, name="to_double")]
    if features:
        nodes += [
            helper.make_node("Expand", ["cd", "four"], ["ce"], name="expand"),
            helper.make_node("MatMul", ["x", "eye"], ["h"], name="mm"),
            helper.make_node("Add", ["h", "ce"], ["y"], name="add"),
        ]
        inits = [
            *inits,
            numpy_helper.from_array(np.eye(4), "eye"),
            numpy_helper.from_array(_i64([4]), "four"),
        ]
    else:
        nodes += [
            helper.make_node("Reshape", ["cd", "row"], ["w"], name="row_shape"),
            helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        ]
        inits = [*inits, numpy_helper.from_array(_i64([1, -1]), "row")]
    graph = helper.make_graph(nodes, "fold", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def elementwise_model(rng: np.random.Generator) -> onnx.ModelProto:
    """One binary, unary, reduction or Cast evaluation of random typed constants."""
    opset = int(rng.choice([13, 17, 18]))
    kind = rng.integers(5)
    pick = lambda: TYPES[rng.integers(len(TYPES))]  # noqa: E731
    if kind <= 1:
        op = str(rng.choice(BINARY))
        first = [(4,), (1,), (), (2, 4)][rng.integers(4)]
        inits = [
            numpy_helper.from_array(_values(rng, pick(), first), "a"),
            numpy_helper.from_array(_values(rng, pick(), [(4,), (1,), ()][rng.integers(3)]), "b"),
        ]
        inputs = ["a", "b"]
        if op == "Where":
            inits.append(numpy_helper.from_array(_values(rng, pick(), (4,)), "c"))
            inputs = ["c", "a", "b"]
        attrs = {"fmod": int(rng.integers(2))} if op == "Mod" else {}
        nodes = [helper.make_node(op, inputs, ["o"], name="op", **attrs)]
        out = "o"
        if first == (2, 4):  # reduced to (4,) by a ReduceMax over the first axis
            if opset >= 18:
                inits.append(numpy_helper.from_array(_i64([0]), "ax"))
                nodes.append(helper.make_node("ReduceMax", ["o", "ax"], ["m"], name="r", keepdims=0))
            else:
                nodes.append(helper.make_node("ReduceMax", ["o"], ["m"], name="r", keepdims=0, axes=[0]))
            out = "m"
        return _into_weight(nodes, inits, out, opset, 4)
    if kind == 2:
        inits = [numpy_helper.from_array(_values(rng, pick(), (4,)), "a")]
        nodes = [helper.make_node(str(rng.choice(UNARY)), ["a"], ["o"], name="op")]
        return _into_weight(nodes, inits, "o", opset, 4)
    if kind == 3:
        op = str(rng.choice(REDUCE))
        shape = [(3, 4), (4, 5), (4, 3, 2), (2, 4, 3), (4, 64)][rng.integers(5)]
        inits = [numpy_helper.from_array(_values(rng, pick(), shape), "a")]
        axes = [a for a in range(len(shape)) if shape[a] != 4]
        inputs, attrs = ["a"], {"keepdims": 0}
        if (op == "ReduceSum" and opset >= 13) or opset >= 18:
            inits.append(numpy_helper.from_array(_i64(axes), "ax"))
            inputs.append("ax")
        else:
            attrs["axes"] = axes
        return _into_weight([helper.make_node(op, inputs, ["o"], name="op", **attrs)], inits, "o", opset, 4)
    to = int(helper.np_dtype_to_tensor_dtype(np.dtype(pick())))
    inits = [numpy_helper.from_array(_values(rng, pick(), (4,)), "a")]
    return _into_weight([helper.make_node("Cast", ["a"], ["o"], name="op", to=to)], inits, "o", opset, 4)


def shape_op_model(rng: np.random.Generator) -> onnx.ModelProto:
    """One evaluation of a shape or data-movement op on constants, with valid and invalid parameters."""
    opset = int(rng.choice([9, 11, 13, 15, 18]))
    op = str(rng.choice(SHAPE_OPS))
    types = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.int8]
    shape = tuple(int(d) for d in rng.integers(1, 4, rng.integers(0, 4)))

    def small(n: int, low: int = -4, high: int = 5) -> list[int]:
        return [int(v) for v in rng.integers(low, high, n)]

    inits = [numpy_helper.from_array(_values(rng, types[rng.integers(len(types))], shape), "a")]
    inputs = ["a"]
    attrs: dict[str, object] = {}

    def add(name: str, value: np.ndarray) -> None:
        inits.append(numpy_helper.from_array(value, name))
        inputs.append(name)

    if op == "Gather":
        add("i", _i64(rng.integers(-4, 4, shape[:2])))
        attrs["axis"] = int(rng.integers(-3, 3))
    elif op in ("Unsqueeze", "Squeeze"):
        axes = small(int(rng.integers(0, 3)))
        if opset >= 13 and rng.random() < 0.8:
            add("ax", _i64(axes))
        elif opset < 13 and axes and rng.random() < 0.8:
            attrs["axes"] = axes
    elif op == "Concat":
        other = shape if rng.random() < 0.7 else tuple(int(d) for d in rng.integers(1, 4, rng.integers(0, 4)))
        add("b", _values(rng, types[rng.integers(len(types))], other))
        if rng.random() < 0.9:
            attrs["axis"] = int(rng.integers(-3, 3))
    elif op == "Slice":
        k = int(rng.integers(1, 3))
        starts, axes = small(k, -5, 5), small(k, -3, 3)
        ends = [v if rng.random() < 0.7 else 2**63 - 1 for v in small(k, -5, 6)]
        steps = [v or 1 for v in small(k, -2, 3)] if rng.random() < 0.9 else [0] * k
        if opset < 10:
            attrs.update(starts=starts, ends=ends, axes=axes)
        else:
            for name, value in (("st", starts), ("en", ends), ("ax", axes), ("sp", steps)):
                add(name, _i64(value))
    elif op == "Reshape":
        add("t", _i64(small(int(rng.integers(1, 4)), -1, 4)))
        if opset >= 14 and rng.random() < 0.3:
            attrs["allowzero"] = 1
    elif op == "Flatten":
        attrs["axis"] = int(rng.integers(-3, 4))
    elif op == "Transpose" and shape and rng.random() < 0.7:
        attrs["perm"] = (
            [int(v) for v in rng.permutation(len(shape))] if rng.random() < 0.8 else small(len(shape), -3, 3)
        )
    elif op == "ConstantOfShape":
        inits[0] = numpy_helper.from_array(_i64(small(int(rng.integers(0, 3)), 0, 4)), "a")
        if rng.random() < 0.7:
            attrs["value"] = numpy_helper.from_array(_values(rng, types[rng.integers(len(types))], (1,)), "v")
    elif op == "Range":
        dtype = [np.int64, np.int32, np.float32, np.float64][rng.integers(4)]
        values = [rng.integers(-5, 5), rng.integers(-5, 8), [1, 2, -1, 0.5, 0.3, -0.7, 0][rng.integers(7)]]
        inits = [
            numpy_helper.from_array(np.array(v).astype(dtype), n) for v, n in zip(values, "abc", strict=True)
        ]
        inputs = ["a", "b", "c"]
    elif op == "Expand":
        add("t", _i64(small(int(rng.integers(0, 4)), -1, 4)))
    elif op == "Tile":
        add("t", _i64(small(len(shape) if rng.random() < 0.9 else 1, 0, 3)))
    elif op == "Shape" and opset >= 15:
        if rng.random() < 0.5:
            attrs["start"] = int(rng.integers(-3, 3))
        if rng.random() < 0.5:
            attrs["end"] = int(rng.integers(-3, 4))
    return _into_weight([helper.make_node(op, inputs, ["o"], name="op", **attrs)], inits, "o", opset, None)


def data_op_model(rng: np.random.Generator) -> onnx.ModelProto:
    """Slice, Split, Gather of a data tensor; the gather from a flattened batch; a Reshape target from its shape."""
    opset = int(rng.choice([9, 11, 13, 18]))
    sample = [int(d) for d in rng.integers(1, 5, rng.integers(1, 4))]
    rank = len(sample) + 1
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [["N", 1, 2][rng.integers(3)], *sample])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits: list = []
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu")]

    def const(name: str, value: object) -> str:
        inits.append(numpy_helper.from_array(_i64(value), name))
        return name

    def small(n: int, low: int, high: int) -> list[int]:
        return [int(v) for v in rng.integers(low, high, n)]

    op = str(rng.choice(["Slice", "Split", "Gather", "GatherFlat", "ShapeTarget"]))
    if op == "Slice":
        k = int(rng.integers(1, 3))
        starts, axes, steps = (
            small(k, -5, 5),
            small(k, -rank - 1, rank + 1),
            [v or 1 for v in small(k, -2, 3)],
        )
        ends = [
            v if rng.random() < 0.6 else [2**63 - 1, 2**31 - 1, -(2**63)][rng.integers(3)]
            for v in small(k, -5, 6)
        ]
        if rng.random() < 0.2:
            starts[0], ends[0], axes[0], steps[0] = 0, 2**63 - 1, 0, 1
        if opset < 10:
            nodes.append(
                helper.make_node("Slice", ["r"], ["o"], name="op", starts=starts, ends=ends, axes=axes)
            )
        else:
            names = [const(n, v) for n, v in (("st", starts), ("en", ends), ("ax", axes), ("sp", steps))]
            nodes.append(helper.make_node("Slice", ["r", *names], ["o"], name="op"))
    elif op == "Split":
        n = int(rng.integers(1, 4))
        outs = [f"o{i}" for i in range(n)]
        axis = int(rng.integers(-rank, rank))
        attrs: dict[str, object] = {"axis": axis}
        inputs = ["r"]
        if rng.random() < 0.5:
            sizes = small(n, 0, 4)
            if opset < 13:
                attrs["split"] = sizes
            else:
                inputs.append(const("sp", sizes))
        elif opset >= 18 and rng.random() < 0.5:
            attrs["num_outputs"] = n
        nodes.append(helper.make_node("Split", inputs, outs, name="op", **attrs))
        nodes.append(helper.make_node("Concat", outs, ["o"], name="cat", axis=axis))
    elif op == "Gather":
        indices = rng.integers(-4, 4, [(), (2,), (1,), (2, 2), (0,)][rng.integers(5)])
        axis = int(rng.integers(-rank, rank))
        nodes.append(helper.make_node("Gather", ["r", const("i", indices)], ["o"], name="op", axis=axis))
    elif op == "GatherFlat":  # x.view(-1) gathered with indices n * S + k computed from the batch size
        size = int(np.prod(sample))
        k = rng.permutation(size)[: int(rng.integers(1, size + 1))] if rng.random() < 0.7 else np.arange(size)
        if rng.random() < 0.1:
            k = k + size
        nodes += [
            helper.make_node("Reshape", ["r", const("m1", [-1])], ["flat"], name="flat"),
            helper.make_node("Shape", ["r"], ["sh"], name="sh"),
            helper.make_node("Gather", ["sh", const("z", 0)], ["n"], name="gn", axis=0),
            helper.make_node("Range", ["z", "n", const("one", 1)], ["rg"], name="rg"),
            helper.make_node("Mul", ["rg", const("S", size)], ["base"], name="mb"),
            helper.make_node("Unsqueeze", ["base", const("ax1", [1])], ["b2"], name="ub"),
            helper.make_node("Add", ["b2", const("k", k.reshape(1, -1))], ["idx"], name="addk"),
            helper.make_node("Gather", ["flat", "idx"], ["o"], name="op", axis=0),
        ]
        opset = max(opset, 13)
    else:  # x.view(*x.shape[:j], -1)
        nodes += [
            helper.make_node("Shape", ["r"], ["sh"], name="sh"),
            helper.make_node(
                "Slice",
                ["sh", const("s0", [0]), const("s1", [int(rng.integers(1, rank + 1))])],
                ["lead"],
                name="sl",
            ),
            helper.make_node("Concat", ["lead", const("m1", [-1])], ["t"], name="cat", axis=0),
            helper.make_node("Reshape", ["r", "t"], ["o"], name="op"),
        ]
        opset = max(opset, 11)
    nodes += [
        helper.make_node("Flatten", ["o"], ["f"], name="fl"),
        helper.make_node("Relu", ["f"], ["y"], name="out"),
    ]
    graph = helper.make_graph(nodes, "data_ops", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
