"""Node validation before conversion: arity and attributes per op and opset, as ``onnx.checker`` does it.

One table, :data:`NODES`, gives for each op the importer reads and each opset version that changed it: the
number of inputs (optional inputs given as ``""`` count) and outputs, and the attributes with their types.
:func:`check_node` is called by the importer for every node the graph output depends on, before any converter
or import-time evaluation reads it: a node with too many or too few inputs or outputs, an attribute of the wrong
type (``strides`` given as FLOATS), or an attribute its op does not define is a :class:`~dtd.errors.ModelLoadError`
naming the node, instead of being silently truncated or ignored.

The table is plain data so that the C++ port can carry the same one; it was generated from the onnx package's
operator schemas by ``tools/onnx_schema_table.py`` and ``tests/test_validation.py`` checks that it still agrees.
The importer does not read onnx's schemas at run time.

:data:`HARMLESS_ATTRIBUTES` is the allowlist of attributes that exporters write although the op's opset no
longer defines them, at the one value that means what the op does anyway; they are ignored. Any other value,
and any other unknown attribute, is an error.
"""

from __future__ import annotations

from typing import NamedTuple

import onnx

# Absolute, so that the file works unchanged as tools/import_schema.py once python/dtd/onnx/ is deleted.
from dtd.errors import ModelLoadError, UnsupportedModelError


class NodeSchema(NamedTuple):
    """One version of an op: from opset ``since`` until the next row's ``since``.

    ``max_inputs`` / ``max_outputs`` of -1 mean variadic (no upper bound).
    """

    since: int
    min_inputs: int
    max_inputs: int
    min_outputs: int
    max_outputs: int
    attributes: dict[str, str]


_V = NodeSchema

#: op type -> versions in increasing ``since`` order (attribute types as AttributeProto.AttributeType names).
NODES: dict[str, tuple[NodeSchema, ...]] = {
    "Abs": (_V(6, 1, 1, 1, 1, {}),),
    "Add": (
        _V(6, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "And": (
        _V(1, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "AveragePool": (
        _V(1, 1, 1, 1, 1, {"auto_pad": "STRING", "kernel_shape": "INTS", "pads": "INTS", "strides": "INTS"}),
        _V(
            7,
            1,
            1,
            1,
            1,
            {
                "auto_pad": "STRING",
                "count_include_pad": "INT",
                "kernel_shape": "INTS",
                "pads": "INTS",
                "strides": "INTS",
            },
        ),
        _V(
            10,
            1,
            1,
            1,
            1,
            {
                "auto_pad": "STRING",
                "ceil_mode": "INT",
                "count_include_pad": "INT",
                "kernel_shape": "INTS",
                "pads": "INTS",
                "strides": "INTS",
            },
        ),
        _V(
            19,
            1,
            1,
            1,
            1,
            {
                "auto_pad": "STRING",
                "ceil_mode": "INT",
                "count_include_pad": "INT",
                "dilations": "INTS",
                "kernel_shape": "INTS",
                "pads": "INTS",
                "strides": "INTS",
            },
        ),
    ),
    "BatchNormalization": (
        _V(6, 5, 5, 1, 5, {"epsilon": "FLOAT", "is_test": "INT", "momentum": "FLOAT", "spatial": "INT"}),
        _V(7, 5, 5, 1, 5, {"epsilon": "FLOAT", "momentum": "FLOAT", "spatial": "INT"}),
        _V(9, 5, 5, 1, 5, {"epsilon": "FLOAT", "momentum": "FLOAT"}),
        _V(14, 5, 5, 1, 3, {"epsilon": "FLOAT", "momentum": "FLOAT", "training_mode": "INT"}),
    ),
    "Cast": (
        _V(6, 1, 1, 1, 1, {"to": "INT"}),
        _V(19, 1, 1, 1, 1, {"saturate": "INT", "to": "INT"}),
        _V(24, 1, 1, 1, 1, {"round_mode": "STRING", "saturate": "INT", "to": "INT"}),
    ),
    "Ceil": (_V(6, 1, 1, 1, 1, {}),),
    "Clip": (
        _V(6, 1, 1, 1, 1, {"max": "FLOAT", "min": "FLOAT"}),
        _V(11, 1, 3, 1, 1, {}),
    ),
    "Concat": (_V(4, 1, -1, 1, 1, {"axis": "INT"}),),
    "Constant": (
        _V(1, 0, 0, 1, 1, {"value": "TENSOR"}),
        _V(11, 0, 0, 1, 1, {"sparse_value": "SPARSE_TENSOR", "value": "TENSOR"}),
        _V(
            12,
            0,
            0,
            1,
            1,
            {
                "sparse_value": "SPARSE_TENSOR",
                "value": "TENSOR",
                "value_float": "FLOAT",
                "value_floats": "FLOATS",
                "value_int": "INT",
                "value_ints": "INTS",
                "value_string": "STRING",
                "value_strings": "STRINGS",
            },
        ),
    ),
    "ConstantOfShape": (_V(9, 1, 1, 1, 1, {"value": "TENSOR"}),),
    "Conv": (
        _V(
            1,
            2,
            3,
            1,
            1,
            {
                "auto_pad": "STRING",
                "dilations": "INTS",
                "group": "INT",
                "kernel_shape": "INTS",
                "pads": "INTS",
                "strides": "INTS",
            },
        ),
    ),
    "Div": (
        _V(6, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "Dropout": (
        _V(6, 1, 1, 1, 2, {"is_test": "INT", "ratio": "FLOAT"}),
        _V(7, 1, 1, 1, 2, {"ratio": "FLOAT"}),
        _V(12, 1, 3, 1, 2, {"seed": "INT"}),
    ),
    "Elu": (_V(6, 1, 1, 1, 1, {"alpha": "FLOAT"}),),
    "Equal": (
        _V(1, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "Erf": (_V(9, 1, 1, 1, 1, {}),),
    "Expand": (_V(8, 2, 2, 1, 1, {}),),
    "Flatten": (_V(1, 1, 1, 1, 1, {"axis": "INT"}),),
    "Floor": (_V(6, 1, 1, 1, 1, {}),),
    "Gather": (_V(1, 2, 2, 1, 1, {"axis": "INT"}),),
    "Gelu": (_V(20, 1, 1, 1, 1, {"approximate": "STRING"}),),
    "Gemm": (
        _V(
            6,
            3,
            3,
            1,
            1,
            {"alpha": "FLOAT", "beta": "FLOAT", "broadcast": "INT", "transA": "INT", "transB": "INT"},
        ),
        _V(7, 3, 3, 1, 1, {"alpha": "FLOAT", "beta": "FLOAT", "transA": "INT", "transB": "INT"}),
        _V(11, 2, 3, 1, 1, {"alpha": "FLOAT", "beta": "FLOAT", "transA": "INT", "transB": "INT"}),
    ),
    "GlobalAveragePool": (_V(1, 1, 1, 1, 1, {}),),
    "GlobalMaxPool": (_V(1, 1, 1, 1, 1, {}),),
    "Greater": (
        _V(1, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "GreaterOrEqual": (_V(12, 2, 2, 1, 1, {}),),
    "HardSigmoid": (_V(6, 1, 1, 1, 1, {"alpha": "FLOAT", "beta": "FLOAT"}),),
    "HardSwish": (_V(14, 1, 1, 1, 1, {}),),
    "Identity": (_V(1, 1, 1, 1, 1, {}),),
    "LRN": (_V(1, 1, 1, 1, 1, {"alpha": "FLOAT", "beta": "FLOAT", "bias": "FLOAT", "size": "INT"}),),
    "LayerNormalization": (_V(17, 2, 3, 1, 3, {"axis": "INT", "epsilon": "FLOAT", "stash_type": "INT"}),),
    "LeakyRelu": (_V(6, 1, 1, 1, 1, {"alpha": "FLOAT"}),),
    "Less": (
        _V(1, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "LessOrEqual": (_V(12, 2, 2, 1, 1, {}),),
    "LogSoftmax": (_V(1, 1, 1, 1, 1, {"axis": "INT"}),),
    "MatMul": (_V(1, 2, 2, 1, 1, {}),),
    "Max": (_V(6, 1, -1, 1, 1, {}),),
    "MaxPool": (
        _V(1, 1, 1, 1, 1, {"auto_pad": "STRING", "kernel_shape": "INTS", "pads": "INTS", "strides": "INTS"}),
        _V(
            8,
            1,
            1,
            1,
            2,
            {
                "auto_pad": "STRING",
                "kernel_shape": "INTS",
                "pads": "INTS",
                "storage_order": "INT",
                "strides": "INTS",
            },
        ),
        _V(
            10,
            1,
            1,
            1,
            2,
            {
                "auto_pad": "STRING",
                "ceil_mode": "INT",
                "dilations": "INTS",
                "kernel_shape": "INTS",
                "pads": "INTS",
                "storage_order": "INT",
                "strides": "INTS",
            },
        ),
    ),
    "Min": (_V(6, 1, -1, 1, 1, {}),),
    "Mod": (_V(10, 2, 2, 1, 1, {"fmod": "INT"}),),
    "Mul": (
        _V(6, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "Neg": (_V(6, 1, 1, 1, 1, {}),),
    "Not": (_V(1, 1, 1, 1, 1, {}),),
    "Or": (
        _V(1, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "PRelu": (_V(6, 2, 2, 1, 1, {}),),
    "Pad": (
        _V(2, 1, 1, 1, 1, {"mode": "STRING", "pads": "INTS", "value": "FLOAT"}),
        _V(11, 2, 3, 1, 1, {"mode": "STRING"}),
        _V(18, 2, 4, 1, 1, {"mode": "STRING"}),
    ),
    "Pow": (
        _V(1, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "Range": (
        _V(11, 3, 3, 1, 1, {}),
        _V(27, 3, 3, 1, 1, {"stash_type": "INT"}),
    ),
    "ReduceMax": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS", "keepdims": "INT"}),
        _V(18, 1, 2, 1, 1, {"keepdims": "INT", "noop_with_empty_axes": "INT"}),
    ),
    "ReduceMean": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS", "keepdims": "INT"}),
        _V(18, 1, 2, 1, 1, {"keepdims": "INT", "noop_with_empty_axes": "INT"}),
    ),
    "ReduceMin": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS", "keepdims": "INT"}),
        _V(18, 1, 2, 1, 1, {"keepdims": "INT", "noop_with_empty_axes": "INT"}),
    ),
    "ReduceProd": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS", "keepdims": "INT"}),
        _V(18, 1, 2, 1, 1, {"keepdims": "INT", "noop_with_empty_axes": "INT"}),
    ),
    "ReduceSum": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS", "keepdims": "INT"}),
        _V(13, 1, 2, 1, 1, {"keepdims": "INT", "noop_with_empty_axes": "INT"}),
    ),
    "Relu": (_V(6, 1, 1, 1, 1, {}),),
    "Reshape": (
        _V(5, 2, 2, 1, 1, {}),
        _V(14, 2, 2, 1, 1, {"allowzero": "INT"}),
    ),
    "Selu": (_V(6, 1, 1, 1, 1, {"alpha": "FLOAT", "gamma": "FLOAT"}),),
    "Shape": (
        _V(1, 1, 1, 1, 1, {}),
        _V(15, 1, 1, 1, 1, {"end": "INT", "start": "INT"}),
    ),
    "Sigmoid": (_V(6, 1, 1, 1, 1, {}),),
    "Size": (_V(1, 1, 1, 1, 1, {}),),
    "Slice": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS", "ends": "INTS", "starts": "INTS"}),
        _V(10, 3, 5, 1, 1, {}),
    ),
    "Softmax": (_V(1, 1, 1, 1, 1, {"axis": "INT"}),),
    "Softplus": (_V(1, 1, 1, 1, 1, {}),),
    "Split": (
        _V(2, 1, 1, 1, -1, {"axis": "INT", "split": "INTS"}),
        _V(13, 1, 2, 1, -1, {"axis": "INT"}),
        _V(18, 1, 2, 1, -1, {"axis": "INT", "num_outputs": "INT"}),
    ),
    "Sqrt": (_V(6, 1, 1, 1, 1, {}),),
    "Squeeze": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS"}),
        _V(13, 1, 2, 1, 1, {}),
    ),
    "Sub": (
        _V(6, 2, 2, 1, 1, {"axis": "INT", "broadcast": "INT"}),
        _V(7, 2, 2, 1, 1, {}),
    ),
    "Sum": (_V(6, 1, -1, 1, 1, {}),),
    "Tanh": (_V(6, 1, 1, 1, 1, {}),),
    "Tile": (_V(6, 2, 2, 1, 1, {}),),
    "Transpose": (_V(1, 1, 1, 1, 1, {"perm": "INTS"}),),
    "Unsqueeze": (
        _V(1, 1, 1, 1, 1, {"axes": "INTS"}),
        _V(13, 2, 2, 1, 1, {}),
    ),
    "Where": (_V(9, 3, 3, 1, 1, {}),),
}

#: (op type, attribute) -> the value at which an attribute the op's opset does not define is ignored: the legacy
#: flags old exporters (Caffe2, early PyTorch, keras2onnx) keep writing after the opset dropped them.
HARMLESS_ATTRIBUTES: dict[tuple[str, str], object] = {
    ("BatchNormalization", "is_test"): 1,  # dropped in opset 7: inference is what dtd does
    (
        "BatchNormalization",
        "spatial",
    ): 1,  # dropped in opset 9: per-channel statistics, the only form after it
    ("Dropout", "is_test"): 1,  # dropped in opset 7
}

_TYPE_NAMES = {value: name for name, value in onnx.AttributeProto.AttributeType.items()}


def schema_for(op_type: str, opset: int) -> NodeSchema | None:
    """The row of ``op_type`` in force at ``opset``, or None when the table has no such op (or not yet)."""
    rows = NODES.get(op_type)
    if rows is None:
        return None
    found = None
    for row in rows:
        if row.since <= opset:
            found = row
    return found


def _fits(count: int, low: int, high: int) -> bool:
    return low <= count and (high < 0 or count <= high)


def _count(
    what: str, count: int, low: int, high: int, rows: tuple[NodeSchema, ...], index: int, since: int
) -> str | None:
    if _fits(count, low, high):
        return None
    expected = f"{low}" if low == high else f"{low} to {high}" if high >= 0 else f"at least {low}"
    valid = [
        r.since
        for r in rows
        if _fits(count, *((r.min_inputs, r.max_inputs) if index == 0 else (r.min_outputs, r.max_outputs)))
    ]
    hint = f" ({count} {what} are valid from opset {valid[0]} on)" if valid and valid[0] > since else ""
    return f"{count} {what}, expected {expected}{hint}"


#: Window, stride, dilation and pad attributes, whose values must stay within +-_GEOMETRY_LIMIT.
_GEOMETRY_ATTRIBUTES = frozenset({"kernel_shape", "strides", "dilations", "pads"})
_GEOMETRY_LIMIT = 2**31
#: Attributes that are flags: the ONNX specs allow 0 and 1 only (onnx's checker and onnxruntime read other values
#: inconsistently, so dtd refuses them rather than guess).
_BOOLEAN_ATTRIBUTES = frozenset(
    {
        "transA",
        "transB",
        "keepdims",
        "ceil_mode",
        "count_include_pad",
        "allowzero",
        "noop_with_empty_axes",
        "training_mode",
        "storage_order",
        "select_last_index",
    }
)


def check_node(node: onnx.NodeProto, name: str, opset: int) -> None:
    """Check the arity and the attributes of ``node`` (called ``name`` in messages) against :data:`NODES`.

    Ops the table does not list are left alone (the importer reports them as unsupported).

    Raises
    ------
    ModelLoadError
        For a count of inputs or outputs outside the op's range, a repeated attribute, an attribute of the wrong
        type, or one the op does not define at ``opset`` (unless allowlisted at its harmless value).
    """
    schema = schema_for(node.op_type, opset)
    if schema is None:
        return
    where = f"{node.op_type} '{name}' (opset {opset})"
    rows = NODES[node.op_type]
    for problem in (
        _count("inputs", len(node.input), schema.min_inputs, schema.max_inputs, rows, 0, schema.since),
        _count("outputs", len(node.output), schema.min_outputs, schema.max_outputs, rows, 1, schema.since),
    ):
        if problem is not None:
            raise ModelLoadError(f"{where}: {problem}")
    seen: set[str] = set()
    for attr in node.attribute:
        if attr.name in seen:
            raise ModelLoadError(f"{where}: attribute '{attr.name}' is given twice")
        seen.add(attr.name)
        expected = schema.attributes.get(attr.name)
        if expected is None:
            harmless = HARMLESS_ATTRIBUTES.get((node.op_type, attr.name))
            if harmless is not None and attr.type == onnx.AttributeProto.INT and attr.i == harmless:
                continue
            known = ", ".join(schema.attributes) or "none"
            other = [r.since for r in rows if attr.name in r.attributes]
            if other and other[0] > opset:
                hint = f"; it is defined from opset {other[0]} on"
            elif other:
                ends = next(r.since for r in rows if r.since > other[-1] and attr.name not in r.attributes)
                hint = f"; it is defined before opset {ends} only"
            else:
                hint = ""
            raise ModelLoadError(f"{where}: unknown attribute '{attr.name}' (the op defines: {known}{hint})")
        actual = _TYPE_NAMES.get(attr.type, str(attr.type))
        if actual != expected:
            raise ModelLoadError(f"{where}: attribute '{attr.name}' has type {actual}, expected {expected}")
        if attr.name in _BOOLEAN_ATTRIBUTES and attr.type == onnx.AttributeProto.INT and attr.i not in (0, 1):
            raise ModelLoadError(f"{where}: attribute '{attr.name}' is a flag (0 or 1), got {attr.i}")
        if attr.name in _GEOMETRY_ATTRIBUTES and attr.type == onnx.AttributeProto.INTS:
            # onnx's own shape inference (run next) aborts the process on extents beyond int32 (std::clamp's
            # assertion in its C++): no real window, stride or pad is that large.
            big = next((v for v in attr.ints if not -_GEOMETRY_LIMIT <= v < _GEOMETRY_LIMIT), None)
            if big is not None:
                raise UnsupportedModelError(
                    f"{where}: attribute '{attr.name}' holds {big}; extents beyond +-2^31 are not supported"
                )


_REDUCE_OPS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2")
#: What the ONNX specs require of the constant inputs dtd reads as lists or scalars, as onnxruntime enforces it:
#: op -> (since opset, {input index: form}). "vector": 1-D; "axes": 1-D or a scalar;
#: "scalar": 0-D or a one-element vector. dtd reads these values flattened, so a [2, 1] axes tensor or a vector
#: for a scalar would otherwise be taken silently.
INPUT_FORMS: dict[str, tuple[int, dict[int, str]]] = {
    "Reshape": (5, {1: "vector"}),
    "Squeeze": (13, {1: "vector"}),
    "Unsqueeze": (13, {1: "axes"}),
    **{op: (18, {1: "vector"}) for op in _REDUCE_OPS},
    "Pad": (11, {1: "vector", 2: "scalar", 3: "vector"}),
    "Slice": (10, {1: "vector", 2: "vector", 3: "vector", 4: "vector"}),
    "Tile": (6, {1: "vector"}),
    "Expand": (8, {1: "vector"}),
    "ConstantOfShape": (9, {0: "vector"}),
    "Split": (13, {1: "vector"}),
    "Range": (11, {0: "scalar", 1: "scalar", 2: "scalar"}),
    "Clip": (11, {1: "scalar", 2: "scalar"}),
}
INPUT_FORMS["ReduceSum"] = (13, {1: "vector"})
_FORM_TEXT = {"vector": "a 1-D tensor", "axes": "a 1-D tensor or a scalar", "scalar": "a scalar"}


def _has_form(form: str, dims: tuple[int, ...]) -> bool:
    if form == "scalar":
        return len(dims) == 0 or dims == (1,)
    if form == "axes":
        return len(dims) <= 1
    return len(dims) == 1


def check_constant_inputs(
    node: onnx.NodeProto, name: str, opset: int, dims: dict[str, tuple[int, ...]]
) -> None:
    """Check the shape of ``node``'s constant inputs (initializers and Constant outputs: their dims by name in
    ``dims``) against :data:`INPUT_FORMS`.

    Raises
    ------
    ModelLoadError
        Naming the node, the input, the form required and the shape given.
    """
    since, required = INPUT_FORMS.get(node.op_type, (0, {}))
    if opset < since:
        return
    for index, form in required.items():
        value = node.input[index] if index < len(node.input) else ""
        if value and value in dims and not _has_form(form, dims[value]):
            raise ModelLoadError(
                f"{node.op_type} '{name}' (opset {opset}): input {index} '{value}' must be {_FORM_TEXT[form]}, got "
                f"a constant of shape {list(dims[value])}"
            )
