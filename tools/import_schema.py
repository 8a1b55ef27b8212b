"""The C++ importer's node table, as plain data: the source of cpp/src/import/schema_table.inc
(``python tools/gen_import_schema.py``; tests/test_import_cpp.py checks the committed file is what it writes).

:data:`NODES` gives for each op the importer reads and each opset version that changed it: the number of inputs
(optional inputs given as ``""`` count) and outputs, and the attributes with their types; the importer checks every
node the graph output depends on against it before any converter reads it (cpp/src/import/schema.cpp), as
``onnx.checker`` does. It was generated from the onnx package's operator schemas by ``tools/onnx_schema_table.py``,
and ``tests/test_validation.py`` checks that it still agrees with them.

:data:`HARMLESS_ATTRIBUTES` is the allowlist of attributes that exporters write although the op's opset no
longer defines them, at the one value that means what the op does anyway; they are ignored. Any other value,
and any other unknown attribute, is an error. :data:`INPUT_FORMS` is what the ONNX specs require of the constant
inputs read as lists or scalars; :data:`FOLD_OPS` the ops evaluated at import when their inputs are constants
(cpp/src/import/fold.cpp), from which opset.

It was python/dtd/onnx/schema.py, the Python importer's table, until the importer moved into the core.
"""

from __future__ import annotations

from typing import NamedTuple


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


#: The ops evaluated at import when their inputs are constants or shape values (fold.cpp), from opset ``since``.
FOLD_OPS: dict[str, int] = {
    "Abs": 1,
    "Add": 1,
    "And": 1,
    "Cast": 6,
    "Ceil": 1,
    "Concat": 1,
    "ConstantOfShape": 9,
    "Div": 1,
    "Equal": 1,
    "Expand": 8,
    "Flatten": 1,
    "Floor": 1,
    "Gather": 1,
    "Greater": 1,
    "GreaterOrEqual": 12,
    "Less": 1,
    "LessOrEqual": 12,
    "Max": 1,
    "Min": 1,
    "Mod": 10,
    "Mul": 1,
    "Neg": 1,
    "Not": 1,
    "Or": 1,
    "Pow": 1,
    "Range": 11,
    "ReduceMax": 1,
    "ReduceMin": 1,
    "ReduceProd": 1,
    "ReduceSum": 1,
    "Reshape": 5,
    "Shape": 1,
    "Size": 1,
    "Slice": 1,
    "Sqrt": 1,
    "Squeeze": 1,
    "Sub": 1,
    "Sum": 1,
    "Tile": 6,
    "Transpose": 1,
    "Unsqueeze": 1,
    "Where": 9,
}
