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

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelLoadError, UnsupportedModelError
from . import graph as g
from .context import ConversionContext, Node
from .registry import register

#: The two batch sizes the shape arithmetic is evaluated with. Small (the arithmetic may go through
#: float32 casts) and unlike any per-sample extent a result could be confused with in both evaluations.
SENTINEL_BATCHES = (13, 17)

Args = list[np.ndarray | None]
Evaluator = Callable[[Node, Args], list[np.ndarray]]
_EVALUATORS: dict[str, Evaluator] = {}


def _evaluator(*op_types: str) -> Callable[[Evaluator], Evaluator]:
    def decorator(fn: Evaluator) -> Evaluator:
        for op_type in op_types:
            _EVALUATORS[op_type] = fn
        return fn

    return decorator


def foldable_ops() -> list[str]:
    """Op types that are evaluated at import when their inputs are constants or shape values."""
    return sorted(_EVALUATORS)


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
    start = node.int_attr("start", 0)
    end = node.attrs.get("end")
    return [dims[start : None if end is None else int(end)]]


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


@_evaluator("Concat")
def _eval_concat(node: Node, args: Args) -> list[np.ndarray]:
    parts = [a for a in args if a is not None]
    return [np.concatenate(parts, axis=node.int_attr("axis", 0))]


@_evaluator("Slice")
def _eval_slice(node: Node, args: Args) -> list[np.ndarray]:
    data = _arg(node, args, 0)
    starts, ends = _ints(_arg(node, args, 1)), _ints(_arg(node, args, 2))
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
    steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, _norm_axes(node, axes, data.ndim), steps, strict=True):
        if step == 0:
            raise ModelLoadError(f"{node.describe()}: a step of 0")
        index[axis] = slice(start, end, step)
    return [data[tuple(index)]]


@_evaluator("Cast")
def _eval_cast(node: Node, args: Args) -> list[np.ndarray]:
    dtype = onnx.helper.tensor_dtype_to_np_dtype(node.int_attr("to", onnx.TensorProto.FLOAT))
    return [np.asarray(_arg(node, args, 0)).astype(dtype)]


@_evaluator("Reshape")
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


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def evaluate(node: Node, args: Args) -> list[np.ndarray]:
        a, b = np.asarray(_arg(node, args, 0)), np.asarray(_arg(node, args, 1))
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


@_evaluator("Mod")
def _eval_mod(node: Node, args: Args) -> list[np.ndarray]:
    a, b = np.asarray(_arg(node, args, 0)), np.asarray(_arg(node, args, 1))
    return [np.fmod(a, b) if node.int_attr("fmod", 0) else np.mod(a, b)]


def _compare(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def evaluate(node: Node, args: Args) -> list[np.ndarray]:
        return [np.asarray(fn(np.asarray(_arg(node, args, 0)), np.asarray(_arg(node, args, 1))))]

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


@_evaluator("Min", "Max")
def _eval_min_max(node: Node, args: Args) -> list[np.ndarray]:
    parts = [np.asarray(a) for a in args if a is not None]
    fn = np.minimum if node.op_type == "Min" else np.maximum
    out = parts[0]
    for part in parts[1:]:
        out = fn(out, part)
    return [np.asarray(out)]


@_evaluator("Where")
def _eval_where(node: Node, args: Args) -> list[np.ndarray]:
    cond, a, b = (np.asarray(_arg(node, args, i)) for i in range(3))
    return [np.where(cond.astype(bool), a, b).astype(np.result_type(a, b), copy=False)]


@_evaluator("ConstantOfShape")
def _eval_constant_of_shape(node: Node, args: Args) -> list[np.ndarray]:
    shape = _ints(_arg(node, args, 0))
    value = node.attrs.get("value")
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full(shape, fill[0], dtype=fill.dtype)]


@_evaluator("Range")
def _eval_range(node: Node, args: Args) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(_arg(node, args, i)).reshape(()) for i in range(3))
    values = np.arange(start.item(), limit.item(), delta.item())
    return [values.astype(start.dtype, copy=False)]


@_evaluator("Expand")
def _eval_expand(node: Node, args: Args) -> list[np.ndarray]:
    data = np.asarray(_arg(node, args, 0))
    shape = np.broadcast_shapes(data.shape, tuple(_ints(_arg(node, args, 1))))
    return [np.array(np.broadcast_to(data, shape))]


@_evaluator("Tile")
def _eval_tile(node: Node, args: Args) -> list[np.ndarray]:
    return [np.tile(_arg(node, args, 0), _ints(_arg(node, args, 1)))]


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
    fn = reducers[node.op_type]
    return [np.asarray(fn(data, axis=axis, keepdims=keepdims)).astype(data.dtype, copy=False)]


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
    evaluate = _EVALUATORS.get(node.op_type)
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
        out_first = evaluate(node, firsts)
        out_second = evaluate(node, seconds) if varying else out_first
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
_SHAPE_ONLY_OPS = tuple(
    op
    for op in foldable_ops()
    if op
    not in ("Add", "Sub", "Mul", "Div", "Concat", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze")
    and op not in ("Slice", "Gather")  # on data: slice and gather layers (ops/shape.py)
)


@register(*_SHAPE_ONLY_OPS)
def convert_shape_only(ctx: ConversionContext, node: Node) -> None:
    """Ops evaluated at import only: reaching a converter means an input is a data tensor."""
    data = next((n for n in node.inputs if n and ctx.value_pair(n) is None), node.input(0))
    raise UnsupportedModelError(
        f"{node.describe()}: {node.op_type} is only supported on constants and shape values (the shape "
        f"arithmetic in front of a Reshape, evaluated at import); its input '{data}' is a data tensor"
    )
