"""Import-time evaluation of constant and shape subgraphs.

PyTorch exports ``x.view(x.size(0), -1)`` with a dynamic batch axis as ``Shape -> Gather -> Unsqueeze ->
Concat -> Reshape``: the Reshape target is computed at run time from the input's shape. dtd's layers keep
the batch axis apart and know every per-sample shape at import, so such a target can be evaluated once,
when the model is loaded. Only the batch size is unknown; it is handled by evaluating the shape arithmetic
twice, with two different sentinel batch sizes (:data:`SENTINEL_BATCHES`):

- a result that is the same in both evaluations does not depend on the batch and becomes an ordinary
  constant (``ConversionContext.constants``), usable wherever a constant is (a Reshape target, a weight);
- a result that differs depends on the batch and is kept as a pair in ``ConversionContext.batch_values``.
  The only place such a value is accepted is a Reshape target whose first entry is exactly the batch size
  and whose other entries are batch-independent: the target becomes ``[0, d1, d2, ...]``, the C++ reshape
  layer's convention (its first entry stands for the batch). Anything else raises
  :class:`~dtd.errors.UnsupportedModelError` naming the node.

:func:`try_fold` also evaluates any node of a supported op whose inputs are all constants (a Transpose or
Cast of a weight, a Reshape of a constant, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelLoadError, UnsupportedModelError
from . import graph as g
from .context import ConversionContext, Node
from .registry import register, supported_ops

#: The two batch sizes the shape arithmetic is evaluated with. Small (the arithmetic may go through
#: float32 casts) and unlike any per-sample extent a result could be confused with in both evaluations.
SENTINEL_BATCHES = (13, 17)

Args = list[np.ndarray | None]
Evaluator = Callable[[Node, Args], list[np.ndarray]]
_EVALUATORS: dict[str, Evaluator] = {}
#: The opset that introduced each op (in the default domain); an op used at an older opset does not exist
#: there and is reported like any op without a converter. Opset-dependent forms (attributes that became
#: inputs, legacy broadcasting) are decided inside the evaluators from ``node.opset``.
_SINCE: dict[str, int] = {}
#: Binary ops that used the legacy ``broadcast``/``axis`` attributes before opset 7.
_LEGACY_BROADCAST_UNTIL = 6


def _evaluator(*op_types: str, since: int = 1) -> Callable[[Evaluator], Evaluator]:
    def decorator(fn: Evaluator) -> Evaluator:
        for op_type in op_types:
            _EVALUATORS[op_type] = fn
            _SINCE[op_type] = since
        return fn

    return decorator


def foldable_ops() -> list[str]:
    """Op types that are evaluated at import when their inputs are constants or shape values."""
    return sorted(_EVALUATORS)


def evaluator(op_type: str, opset: int) -> Evaluator | None:
    """The import-time evaluator of ``op_type`` at ``opset``, or None (no evaluator, or no such op yet)."""
    fn = _EVALUATORS.get(op_type)
    return fn if fn is not None and opset >= _SINCE[op_type] else None


# -- evaluators ------------------------------------------------------------------------------------------
def _arg(node: Node, args: Args, index: int) -> np.ndarray:
    value = args[index] if index < len(args) else None
    if value is None:
        raise ModelLoadError(f"{node.describe()}: input {index} is missing")
    return value


def _ints(value: np.ndarray | None) -> list[int]:
    return [] if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def _axes(node: Node, args: Args, input_index: int, attr_since_input: int) -> list[int] | None:
    """Axes from the attribute (opset < ``attr_since_input``) or from an optional input (from then on)."""
    if node.opset < attr_since_input:
        return node.optional_ints_attr("axes")
    value = args[input_index] if input_index < len(args) else None
    return None if value is None else _ints(value)


def _norm_axes(node: Node, axes: list[int], rank: int) -> list[int]:
    out = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ModelLoadError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        out.append(axis % rank)
    return out


@_evaluator("Shape")
def _eval_shape(node: Node, args: Args) -> list[np.ndarray]:
    dims = np.asarray(_arg(node, args, 0).shape, dtype=np.int64)
    if node.opset < 15:  # start/end exist from Shape-15 on
        return [dims]
    # Negative values count from the end; both are clamped to [0, rank] (Python slicing does exactly that).
    start = node.int_attr("start", 0)
    end = node.int_attr("end", len(dims))
    return [dims[start:end]]


@_evaluator("Size")
def _eval_size(node: Node, args: Args) -> list[np.ndarray]:
    return [np.asarray(_arg(node, args, 0).size, dtype=np.int64)]


@_evaluator("Gather")
def _eval_gather(node: Node, args: Args) -> list[np.ndarray]:
    data, indices = _arg(node, args, 0), _arg(node, args, 1)
    axis = _norm_axes(node, [node.int_attr("axis", 0)], max(data.ndim, 1))[0]
    extent = data.shape[axis]
    idx = np.asarray(indices, dtype=np.int64)
    idx = np.where(idx < 0, idx + extent, idx)
    if np.any(idx < 0) or np.any(idx >= extent):
        raise ModelLoadError(f"{node.describe()}: index out of range for an axis of length {extent}")
    return [np.take(data, idx, axis=axis)]


@_evaluator("Unsqueeze")
def _eval_unsqueeze(node: Node, args: Args) -> list[np.ndarray]:
    data = _arg(node, args, 0)
    axes = _axes(node, args, 1, 13)
    if not axes:
        raise ModelLoadError(f"{node.describe()}: the axes are missing")
    out = data
    for axis in sorted(_norm_axes(node, axes, data.ndim + len(axes))):
        out = np.expand_dims(out, axis)
    return [out]


@_evaluator("Squeeze")
def _eval_squeeze(node: Node, args: Args) -> list[np.ndarray]:
    data = _arg(node, args, 0)
    axes = _axes(node, args, 1, 13)
    if axes is None:
        return [np.squeeze(data)]
    return [np.squeeze(data, axis=tuple(_norm_axes(node, axes, data.ndim)))]


def _required_int(node: Node, name: str) -> int:
    if name not in node.attrs:
        raise ModelLoadError(f"{node.describe()}: the attribute '{name}' is required")
    return node.int_attr(name, 0)


@_evaluator("Concat")
def _eval_concat(node: Node, args: Args) -> list[np.ndarray]:
    parts = [np.asarray(a) for a in args if a is not None]
    if not parts:
        raise ModelLoadError(f"{node.describe()}: no inputs")
    # `axis` is required from Concat-4 on (dtd's oldest opset is 6).
    axis = _norm_axes(node, [_required_int(node, "axis")], max(parts[0].ndim, 1))[0]
    return [np.concatenate(parts, axis=axis)]


@_evaluator("Slice")
def _eval_slice(node: Node, args: Args) -> list[np.ndarray]:
    data = np.asarray(_arg(node, args, 0))
    if node.opset < 10:  # Slice-1: starts, ends and the optional axes are attributes; no steps
        if "starts" not in node.attrs or "ends" not in node.attrs:
            raise ModelLoadError(f"{node.describe()}: Slice-1 needs the attributes 'starts' and 'ends'")
        starts, ends = node.ints_attr("starts", []), node.ints_attr("ends", [])
        axes = node.ints_attr("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(_arg(node, args, 1)), _ints(_arg(node, args, 2))
        axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
        steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ModelLoadError(
            f"{node.describe()}: starts {starts}, ends {ends}, axes {axes} and steps {steps} differ in length"
        )
    index: list[slice] = [slice(None)] * data.ndim
    # Python slices clamp out-of-range starts/ends (INT64_MAX, -INT64_MAX) the way ONNX specifies.
    for start, end, axis, step in zip(starts, ends, _norm_axes(node, axes, data.ndim), steps, strict=True):
        if step == 0:
            raise ModelLoadError(f"{node.describe()}: a step of 0")
        index[axis] = slice(start, end, step)
    return [data[tuple(index)]]


#: Cast targets the fold evaluates (NumPy types with ONNX's meaning); strings, bfloat16, float8 and 4-bit
#: types are refused.
_CAST_TYPES: dict[int, type] = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT64: np.uint64,
    onnx.TensorProto.BOOL: np.bool_,
}


@_evaluator("Cast", since=6)  # Cast-1 named the target type by a string
def _eval_cast(node: Node, args: Args) -> list[np.ndarray]:
    to = _required_int(node, "to")
    if to not in _CAST_TYPES:
        name = onnx.TensorProto.DataType.Name(to) if to in onnx.TensorProto.DataType.values() else str(to)
        raise UnsupportedModelError(f"{node.describe()}: a Cast to {name} is not supported")
    return [np.asarray(_arg(node, args, 0)).astype(_CAST_TYPES[to])]


@_evaluator("Reshape", since=5)  # Reshape-1 took the shape as an attribute
def _eval_reshape(node: Node, args: Args) -> list[np.ndarray]:
    data = _arg(node, args, 0)
    shape = _ints(_arg(node, args, 1))
    if not node.int_attr("allowzero", 0):
        shape = [data.shape[i] if d == 0 and i < data.ndim else d for i, d in enumerate(shape)]
    return [data.reshape(shape)]


@_evaluator("Flatten")
def _eval_flatten(node: Node, args: Args) -> list[np.ndarray]:
    data = _arg(node, args, 0)
    axis = node.int_attr("axis", 1)
    axis = axis + data.ndim if axis < 0 else axis
    return [data.reshape(int(np.prod(data.shape[:axis])), -1)]


@_evaluator("Transpose")
def _eval_transpose(node: Node, args: Args) -> list[np.ndarray]:
    data = _arg(node, args, 0)
    perm = node.optional_ints_attr("perm")
    return [np.transpose(data, perm)]


def _operands(node: Node, args: Args) -> tuple[np.ndarray, np.ndarray]:
    """The two operands of a binary op, with the second aligned for legacy broadcasting (opset < 7).

    Before opset 7, ``broadcast=1`` lets B (only B) broadcast to A's shape, aligned at A's axis ``axis``
    (default: trailing alignment, as NumPy's); without it the shapes must be equal.
    """
    a, b = np.asarray(_arg(node, args, 0)), np.asarray(_arg(node, args, 1))
    if node.opset > _LEGACY_BROADCAST_UNTIL:
        return a, b
    if not node.int_attr("broadcast", 0):
        if a.shape != b.shape:
            raise ModelLoadError(
                f"{node.describe()}: operands of shapes {list(a.shape)} and {list(b.shape)} without "
                f"broadcast=1 (opset {node.opset} has no implicit broadcasting)"
            )
        return a, b
    if "axis" in node.attrs and b.ndim:
        axis = _norm_axes(node, [node.int_attr("axis", 0)], max(a.ndim, 1))[0]
        trailing = a.ndim - axis - b.ndim
        if trailing < 0:
            raise ModelLoadError(
                f"{node.describe()}: B of shape {list(b.shape)} does not match A of shape {list(a.shape)} "
                f"from axis {axis}"
            )
        b = b.reshape(b.shape + (1,) * trailing)
    if np.broadcast_shapes(a.shape, b.shape) != a.shape:
        raise ModelLoadError(
            f"{node.describe()}: B of shape {list(b.shape)} does not broadcast to A of shape {list(a.shape)}"
        )
    return a, b


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def evaluate(node: Node, args: Args) -> list[np.ndarray]:
        a, b = _operands(node, args)
        return [np.asarray(fn(a, b)).astype(np.result_type(a, b), copy=False)]

    return evaluate


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        if np.any(b == 0):
            raise ZeroDivisionError("integer division by zero")
        # ONNX integer division truncates toward zero (as in C).
        return np.asarray(np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b)))
    return np.asarray(a / b)


_EVALUATORS["Add"] = _binary(np.add)
_EVALUATORS["Sub"] = _binary(np.subtract)
_EVALUATORS["Mul"] = _binary(np.multiply)
_EVALUATORS["Div"] = _binary(_divide)
_EVALUATORS["Pow"] = _binary(np.power)


@_evaluator("Mod", since=10)
def _eval_mod(node: Node, args: Args) -> list[np.ndarray]:
    a, b = np.asarray(_arg(node, args, 0)), np.asarray(_arg(node, args, 1))
    return [np.fmod(a, b) if node.int_attr("fmod", 0) else np.mod(a, b)]


def _compare(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def evaluate(node: Node, args: Args) -> list[np.ndarray]:
        return [np.asarray(fn(*_operands(node, args)))]

    return evaluate


_EVALUATORS["Equal"] = _compare(np.equal)
_EVALUATORS["Less"] = _compare(np.less)
_EVALUATORS["LessOrEqual"] = _compare(np.less_equal)
_EVALUATORS["Greater"] = _compare(np.greater)
_EVALUATORS["GreaterOrEqual"] = _compare(np.greater_equal)
_EVALUATORS["And"] = _compare(np.logical_and)
_EVALUATORS["Or"] = _compare(np.logical_or)


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Evaluator:
    def evaluate(node: Node, args: Args) -> list[np.ndarray]:
        a = np.asarray(_arg(node, args, 0))
        return [np.asarray(fn(a)).astype(a.dtype, copy=False)]

    return evaluate


_EVALUATORS["Neg"] = _unary(np.negative)
_EVALUATORS["Abs"] = _unary(np.abs)
_EVALUATORS["Floor"] = _unary(np.floor)
_EVALUATORS["Ceil"] = _unary(np.ceil)
_EVALUATORS["Sqrt"] = _unary(np.sqrt)
_EVALUATORS["Not"] = _unary(np.logical_not)
_SINCE.update(dict.fromkeys((op for op in _EVALUATORS if op not in _SINCE), 1))
_SINCE.update(LessOrEqual=12, GreaterOrEqual=12)


@_evaluator("Min", "Max", "Sum")
def _eval_variadic(node: Node, args: Args) -> list[np.ndarray]:
    """Min, Max, Sum of one or more operands (NumPy broadcasting from opset 8, equal shapes before)."""
    parts = [np.asarray(a) for a in args if a is not None]
    if not parts:
        raise ModelLoadError(f"{node.describe()}: no inputs")
    fn = {"Min": np.minimum, "Max": np.maximum, "Sum": np.add}[node.op_type]
    out = parts[0]
    for part in parts[1:]:
        out = fn(out, part)
    return [np.asarray(out).astype(np.result_type(*parts), copy=False)]


@_evaluator("Where", since=9)
def _eval_where(node: Node, args: Args) -> list[np.ndarray]:
    cond, a, b = (np.asarray(_arg(node, args, i)) for i in range(3))
    return [np.where(cond.astype(bool), a, b).astype(np.result_type(a, b), copy=False)]


@_evaluator("ConstantOfShape", since=9)
def _eval_constant_of_shape(node: Node, args: Args) -> list[np.ndarray]:
    shape = _ints(_arg(node, args, 0))
    value = node.attrs.get("value")
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full(shape, fill[0], dtype=fill.dtype)]


@_evaluator("Range", since=11)
def _eval_range(node: Node, args: Args) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(_arg(node, args, i)).reshape(()) for i in range(3))
    values = np.arange(start.item(), limit.item(), delta.item())
    return [values.astype(start.dtype, copy=False)]


@_evaluator("Expand", since=8)
def _eval_expand(node: Node, args: Args) -> list[np.ndarray]:
    data = np.asarray(_arg(node, args, 0))
    shape = np.broadcast_shapes(data.shape, tuple(_ints(_arg(node, args, 1))))
    return [np.array(np.broadcast_to(data, shape))]


@_evaluator("Tile", since=6)  # Tile-1 took `tiles` and `axis` inputs
def _eval_tile(node: Node, args: Args) -> list[np.ndarray]:
    data, repeats = np.asarray(_arg(node, args, 0)), _ints(_arg(node, args, 1))
    if len(repeats) != data.ndim or any(r < 0 for r in repeats):
        raise ModelLoadError(
            f"{node.describe()}: repeats {repeats} must hold one non-negative entry per axis of the "
            f"rank-{data.ndim} input"
        )
    return [np.tile(data, repeats)]


@_evaluator("ReduceProd", "ReduceSum", "ReduceMin", "ReduceMax")
def _eval_reduce(node: Node, args: Args) -> list[np.ndarray]:
    data = np.asarray(_arg(node, args, 0))
    axes = _axes(node, args, 1, 13 if node.op_type == "ReduceSum" else 18)
    keepdims = bool(node.int_attr("keepdims", 1))
    if not axes and node.int_attr("noop_with_empty_axes", 0):
        return [data]
    axis = None if not axes else tuple(_norm_axes(node, axes, data.ndim))
    reducers: dict[str, Callable[..., Any]] = {
        "ReduceProd": np.prod,
        "ReduceSum": np.sum,
        "ReduceMin": np.min,
        "ReduceMax": np.max,
    }
    if data.dtype.kind == "f" and node.op_type in ("ReduceSum", "ReduceProd"):
        return [
            _reduce_in_order(np.add if node.op_type == "ReduceSum" else np.multiply, data, axis, keepdims)
        ]
    fn = reducers[node.op_type]
    return [np.asarray(fn(data, axis=axis, keepdims=keepdims)).astype(data.dtype, copy=False)]


def _reduce_in_order(
    ufunc: np.ufunc, data: np.ndarray, axis: tuple[int, ...] | None, keepdims: bool
) -> np.ndarray:
    """A float sum or product in one fixed order: the reduced positions in C order, one ufunc step each, starting
    from the first (NumPy's own reduction sums pairwise, in an order that depends on the memory layout; the C++
    importer reproduces this one exactly)."""
    axes = tuple(range(data.ndim)) if axis is None else axis
    if len(set(axes)) != len(axes):
        raise ValueError("duplicate value in 'axis'")
    kept = [a for a in range(data.ndim) if a not in axes]
    count = math.prod(data.shape[a] for a in axes)
    rows = np.transpose(data, [*kept, *axes]).reshape(math.prod(data.shape[a] for a in kept), count)
    if count == 0:
        out = np.full(rows.shape[0], 0 if ufunc is np.add else 1, dtype=data.dtype)
    else:
        out = rows[:, 0].copy()
        for j in range(1, count):
            out = ufunc(out, rows[:, j])
    shape = (
        [1 if a in axes else data.shape[a] for a in range(data.ndim)]
        if keepdims
        else [data.shape[a] for a in kept]
    )
    return out.reshape(shape)


# -- folding ---------------------------------------------------------------------------------------------
def _data_shape_pair(ctx: ConversionContext, node: Node, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Stand-ins (broadcast views, no memory) with the shape of data value ``name`` for both sentinel batches."""
    resolved = ctx.resolve(name)
    if resolved in ctx.merged_batch:
        raise UnsupportedModelError(
            f"{node.describe()}: the shape of '{name}' is taken after a Flatten with axis >= 2, whose leading "
            "ONNX axis mixes the batch with other axes; this is not supported"
        )
    sample = ctx.sample_shape(name)
    if sample is None:
        raise UnsupportedModelError(
            f"{node.describe()}: the shape of '{name}' is not known at import (shape inference gives "
            f"{ctx.shape_of(name)}); only shapes that depend on the batch size alone can be computed"
        )
    first, second = (np.broadcast_to(np.zeros((), np.float32), (b, *sample)) for b in SENTINEL_BATCHES)
    return first, second


# -- sizes before evaluation ------------------------------------------------------------------------------
#: The binary ops whose operands :func:`_operands` aligns (legacy broadcasting before opset 7).
_LEGACY_BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "And", "Or")


def _broadcast_elements(node: Node, shapes: list[tuple[int, ...]]) -> int:
    """Elements of the NumPy broadcast of ``shapes`` (Python integers: no overflow, nothing allocated)."""
    rank = max((len(s) for s in shapes), default=0)
    total = 1
    for axis in range(rank):
        extents = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0} - {1}
        if len(extents) > 1:
            raise ModelLoadError(
                f"{node.describe()}: operands of shapes {[list(s) for s in shapes]} do not broadcast"
            )
        total *= extents.pop() if extents else 1
    return total


def _range_count(node: Node, args: Args) -> int:
    start, limit, delta = (np.asarray(_arg(node, args, i)).reshape(-1) for i in range(3))
    if start.size != 1 or limit.size != 1 or delta.size != 1:
        raise ModelLoadError(f"{node.describe()}: start, limit and delta must be scalars")
    a, b, d = (float(v[0]) for v in (start, limit, delta))
    if d == 0 or not all(math.isfinite(v) for v in (a, b, d)):
        raise ModelLoadError(f"{node.describe()}: start {a}, limit {b} and delta {d} give no finite range")
    return max(0, math.ceil((b - a) / d))


def _shape_entries(node: Node, value: np.ndarray | None, what: str) -> list[int]:
    entries = _ints(value)
    if any(d < 0 for d in entries):
        raise ModelLoadError(f"{node.describe()}: the {what} {entries} has a negative entry")
    return entries


def output_elements(node: Node, args: Args) -> int | None:
    """The element count of the (largest) output of evaluating ``node`` on ``args``, from the shapes alone, for
    the ops whose output can be larger than their inputs; None for the others (their output is at most the size
    of an input, which already passed the limit)."""
    op = node.op_type
    present = [np.asarray(a) for a in args if a is not None]
    if op == "ConstantOfShape":
        return math.prod(_shape_entries(node, _arg(node, args, 0), "shape"))
    if op == "Range":
        return _range_count(node, args)
    if op == "Expand":
        shape = tuple(_ints(_arg(node, args, 1)))
        return _broadcast_elements(node, [np.asarray(_arg(node, args, 0)).shape, shape])
    if op == "Tile":
        return np.asarray(_arg(node, args, 0)).size * math.prod(
            _shape_entries(node, _arg(node, args, 1), "repeats")
        )
    if op == "Concat":
        return sum(a.size for a in present)
    if node.opset <= _LEGACY_BROADCAST_UNTIL and op in _LEGACY_BINARY and len(present) == 2:
        # legacy broadcasting: B is aligned to A at ``axis`` (checked by the evaluator); the result has A's shape
        return int(present[0].size)
    if op in (
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
        "Min",
        "Max",
        "Sum",
        "Where",
    ):
        return _broadcast_elements(node, [a.shape for a in present])
    if op == "Gather" and len(present) == 2:
        data, indices = present
        axis = node.int_attr("axis", 0)
        extent = data.shape[axis] if data.ndim and -data.ndim <= axis < data.ndim else 1
        return (data.size // max(extent, 1)) * indices.size
    return None


def _check_folded_size(ctx: ConversionContext, node: Node, elements: int, when: str) -> None:
    """The limit holds for each folded constant and for all of them together (a chain of Concat doublings keeps
    every intermediate alive)."""
    limit = ctx.limits.max_folded_constant
    if elements > limit or ctx.folded_elements + elements > limit:
        what = f"a constant of {elements} elements"
        if elements <= limit:
            what += f", after {ctx.folded_elements} elements folded before it,"
        raise ModelLoadError(
            f"{node.describe()}: evaluating it at import would {when} {what} more than the limit of {limit} "
            "(raise it with dtd.load(..., limits=dtd.Limits(max_folded_constant=...)))"
        )


def try_fold(ctx: ConversionContext, node: Node) -> bool:
    """Evaluate ``node`` at import when its inputs are constants or shape values.

    Shape and Size also take data values (their per-sample shape from shape inference, the batch size a
    sentinel). The outputs are recorded with :meth:`ConversionContext.set_value_pair`.

    Returns
    -------
    bool
        True when the node was evaluated; False when it reads data (its converter must handle it).

    Raises
    ------
    ModelLoadError, UnsupportedModelError
        When the evaluation fails, or a shape needed is not known.
    """
    evaluate = evaluator(node.op_type, node.opset)
    if evaluate is None:
        return False
    firsts: Args = []
    seconds: Args = []
    varying = False
    for index, name in enumerate(node.inputs):
        if not name:
            firsts.append(None)
            seconds.append(None)
            continue
        pair = ctx.value_pair(name)
        if pair is None:
            if node.op_type not in ("Shape", "Size") or index != 0 or not ctx.is_data(name):
                return False
            pair = _data_shape_pair(ctx, node, name)
        varying = varying or pair[0] is not pair[1]
        firsts.append(pair[0])
        seconds.append(pair[1])
    try:
        # Floating-point exceptions raise, whatever the warning filters (the C++ importer raises the same ones).
        with np.errstate(all="raise", under="ignore"):
            out_first, out_second = _evaluate_checked(ctx, node, evaluate, firsts, seconds, varying)
    except (ModelLoadError, UnsupportedModelError):
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"{node.describe()}: cannot evaluate it at import: {type(exc).__name__}: {exc}"
        ) from exc
    for name, first, second in zip(node.outputs, out_first, out_second, strict=False):
        if name:
            ctx.set_value_pair(name, first, second)
    return True


def _evaluate_checked(
    ctx: ConversionContext, node: Node, evaluate: Evaluator, firsts: Args, seconds: Args, varying: bool
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Evaluate ``node`` for both sentinel batches (once when nothing varies), the sizes checked before and after."""
    # Decide the size from the shapes before anything is materialised (a tiny file can ask for gigabytes).
    for args in (firsts, seconds) if varying else (firsts,):
        elements = output_elements(node, args)
        if elements is not None:
            _check_folded_size(ctx, node, elements, "make")
    out_first = evaluate(node, firsts)
    out_second = evaluate(node, seconds) if varying else out_first
    made = sum(int(np.asarray(out).size) for out in {id(o): o for o in (*out_first, *out_second)}.values())
    _check_folded_size(ctx, node, made, "have made")
    ctx.folded_elements += made
    return out_first, out_second


def reshape_target(ctx: ConversionContext, node: Node) -> list[int]:
    """The constant target of a Reshape whose shape input was computed from the batch size.

    The first entry must be the batch size itself and the others batch-independent; the result has 0 first
    (the C++ reshape layer's batch placeholder).

    Raises
    ------
    UnsupportedModelError
        For a target that depends on the batch size in another way (``x.view(2 * x.size(0), -1)``,
        ``x.view(-1, x.size(0))``).
    """
    pair = ctx.value_pair(node.input(1))
    assert pair is not None
    first, second = (np.asarray(v).reshape(-1) for v in pair)
    if first.shape != second.shape:
        raise UnsupportedModelError(
            f"{node.describe()}: the number of entries of the target shape '{node.input(1)}' depends on the "
            "batch size"
        )
    entries = [int(v) for v in first]
    for position, (a, b) in enumerate(zip(entries, (int(v) for v in second), strict=True)):
        if position == 0 and (a, b) == SENTINEL_BATCHES:
            entries[0] = 0
        elif a != b:
            where = "first entry (the batch axis)" if position == 0 else f"entry {position}"
            raise UnsupportedModelError(
                f"{node.describe()}: the {where} of the target shape '{node.input(1)}' depends on the batch "
                "size in a way dtd cannot express (supported: the batch size itself as the first entry, "
                "batch-independent values elsewhere)"
            )
    return entries


def check_reshape_keeps_batch(ctx: ConversionContext, node: Node, source: str, target: list[int]) -> None:
    """Refuse a constant Reshape target that moves values across the batch axis.

    dtd's reshape layer takes the target's first entry as the batch axis. That reads the ONNX Reshape
    right only when the other entries hold exactly one sample's values: ``[0 or -1 or N, ...]`` with
    ``prod(...) == prod(sample)`` (or a -1 among them, with the first entry 0 or the static batch size).
    Targets such as ``[24]``, ``[-1, 2, 3, 4]`` for ``[2, 3, 4]`` or ``[4, 2, 3]`` mix samples: valid ONNX,
    outside what dtd supports. Unknown shapes are left to the C++ layer's own check.
    """
    sample = ctx.sample_shape(source)
    if sample is None or source in ctx.merged_batch or not target:
        return
    size = int(np.prod(sample))
    batch = ctx.dim_of(source, 0)
    # With allowzero=0 a 0 copies the input's extent at the same position.
    rest = [sample[i] if d == 0 and i < len(sample) else d for i, d in enumerate(target[1:])]
    first = target[0]
    known = int(np.prod([d for d in rest if d != -1]))
    # A literal 1 first with a dynamic batch is taken as the batch (exports traced with a fixed batch of 1 whose
    # input was declared dynamic afterwards); another literal would fix the batch size to itself.
    batch_first = first == 0 or first == batch or (batch is None and first == 1)
    if -1 in rest:
        keeps = batch_first and known > 0 and size % known == 0
    else:
        keeps = known == size and (batch_first or first == -1)
    if not keeps:
        raise UnsupportedModelError(
            f"{node.describe()}: reshaping '{node.input(0)}' of shape [N, {', '.join(map(str, sample))}] to "
            f"{target} moves values across the batch axis (N = {'?' if batch is None else batch}); dtd "
            f"keeps the batch axis: the first entry must stand for it and the others hold the {size} values "
            "of one sample"
        )


def refine_shapes(ctx: ConversionContext, node: Node, target: list[int]) -> None:
    """Rerun shape inference with ``node``'s computed Reshape target replaced by the constant ``target``.

    ONNX shape inference leaves everything after a computed Reshape target unknown; the shapes after it
    are needed by later shape arithmetic and by the converters' checks.
    """
    if ctx.model is None or node.index < 0:
        return
    if ctx.shape_model is None:
        ctx.shape_model = onnx.ModelProto()
        ctx.shape_model.CopyFrom(ctx.model)
    model = ctx.shape_model
    name = ctx.unique_name(f"{node.name}__dtd_target")
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(target, dtype=np.int64), name))
    proto = model.graph.node[node.index]
    proto.input[1] = name
    # allowzero=1 would read the batch placeholder 0 as an empty axis; the target has no other 0 (checked by
    # the Reshape converter), so allowzero=0 means the same there.
    for attr in proto.attribute:
        if attr.name == "allowzero":
            attr.i = 0
    # The copy differs from the model only by constant targets: its inference knows at least as much.
    shapes = g.infer_shapes(model)
    ctx.shapes.clear()
    ctx.shapes.update(shapes)


# -- the ops that exist only for shape arithmetic ------------------------------------------------------------
def convert_shape_only(ctx: ConversionContext, node: Node) -> None:
    """Ops evaluated at import only: reaching a converter means an input is a data tensor."""
    data = next((n for n in node.inputs if n and ctx.value_pair(n) is None), node.input(0))
    raise UnsupportedModelError(
        f"{node.describe()}: {node.op_type} is only supported on constants and shape values (the shape "
        f"arithmetic in front of a Reshape, evaluated at import); its input '{data}' is a data tensor"
    )


def register_shape_only_ops() -> list[str]:
    """Register :func:`convert_shape_only` for every foldable op that has no converter of its own.

    Called once the converter modules are imported (by :mod:`dtd.onnx.importer`), so that an op that gets a
    real converter (Concat, Reshape, a residual Add, ...) keeps it; the others are claimed as supported on
    constants and shape values only. Returns the op types registered by this call.
    """
    claimed = set(supported_ops())
    added = [op for op in foldable_ops() if op not in claimed]
    for op in added:
        register(op, since=_SINCE[op])(convert_shape_only)
    return added
