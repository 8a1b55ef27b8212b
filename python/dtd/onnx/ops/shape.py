"""Flatten, Reshape, Concat, the layout ops that amount to a reshape (Squeeze, Unsqueeze, size-1 Transpose),
and the data movements Transpose, Slice, Split and Gather on per-sample axes.

A Reshape target computed from the input's shape (PyTorch's ``x.view(x.size(0), -1)``) is evaluated at
import by :mod:`dtd.onnx.fold`. Squeeze, Unsqueeze and a Transpose that only moves size-1 axes do not move
any data: they become ``reshape`` layers to the per-sample shape known from shape inference. Slice and
Gather of shape values (the arithmetic in front of a Reshape) are evaluated by :mod:`dtd.onnx.fold` before
these converters see them.
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from .. import fold
from ..context import ConversionContext, Node
from ..registry import register


@register("Flatten")
def convert_flatten(ctx: ConversionContext, node: Node) -> None:
    """Flatten with axis >= 1 (the batch axis stays separate)."""
    source = ctx.data_input(node, 0)
    axis = node.int_attr("axis", 1)
    rank = ctx.rank_of(source)
    if axis < 0 and rank is not None:
        axis += rank
    if axis < 1:
        raise UnsupportedModelError(
            f"{node.describe()}: Flatten with axis {node.int_attr('axis', 1)} merges the batch axis; only "
            "axis >= 1 is supported"
        )
    ctx.add_layer(node, "flatten", [source], ints={"axis": [axis]})


@register("Reshape")
def convert_reshape(ctx: ConversionContext, node: Node) -> None:
    """Reshape with a constant target shape (batch entry included).

    allowzero=1 (opset 14+) only changes what a 0 entry means (an empty axis instead of a copy of the input's
    extent): without a 0 entry it is the same as allowzero=0; an empty tensor is unsupported.
    """
    source = ctx.data_input(node, 0)
    allowzero = node.opset >= 14 and bool(node.int_attr("allowzero", 0))
    if ctx.is_batch_value(node.input(1)):
        pair = ctx.value_pair(node.input(1))
        assert pair is not None
        if allowzero:
            _check_no_zero(node, [int(v) for v in np.asarray(pair[0]).reshape(-1)])
        target = fold.reshape_target(ctx, node)
        ctx.add_layer(node, "reshape", [source], ints={"shape": target})
        fold.refine_shapes(ctx, node, target)
        return
    if not ctx.is_constant(node.input(1)):
        raise UnsupportedModelError(
            f"{node.describe()}: the target shape '{node.input(1)}' is computed at run time from data, not "
            "from shapes; only a constant shape or one computed from the input's shape is supported"
        )
    shape = [int(v) for v in np.asarray(ctx.raw_constant(node, 1, "shape")).reshape(-1)]
    if allowzero:
        _check_no_zero(node, shape)
    try:
        fold.check_reshape_keeps_batch(ctx, node, source, shape)
    except UnsupportedModelError as exc:
        if len(shape) != 1:
            raise
        # The whole batch in one axis: only a Gather that takes each sample back from its own values may follow.
        ctx.batch_flattened[node.outputs[0]] = (source, str(exc))
        return
    ctx.add_layer(node, "reshape", [source], ints={"shape": shape})


def _check_no_zero(node: Node, target: list[int]) -> None:
    """allowzero=1 with a 0 entry: the result is an empty tensor, outside dtd's scope."""
    if 0 in target:
        raise UnsupportedModelError(
            f"{node.describe()}: Reshape with allowzero=1 and the target shape {target} has an axis of length 0 "
            "(an empty tensor); not supported (with allowzero=0 a 0 entry copies the input's extent)"
        )


def _known_sample_shape(ctx: ConversionContext, node: Node, source: str) -> tuple[int, ...]:
    sample = ctx.sample_shape(source)
    if sample is None or source in ctx.merged_batch:
        raise UnsupportedModelError(
            f"{node.describe()}: the shape of its input '{node.input(0)}' is not known at import (shape "
            f"inference gives {ctx.shape_of(source)}); {node.op_type} is only supported on known shapes"
        )
    return sample


def _axes_of(ctx: ConversionContext, node: Node, attr_until: int) -> list[int] | None:
    """Axes from the attribute (opset <= ``attr_until``) or from the constant input 1 (later opsets)."""
    if node.opset <= attr_until:
        return node.optional_ints_attr("axes")
    if not node.input(1):
        return None
    return [int(v) for v in np.asarray(ctx.raw_constant(node, 1, "axes")).reshape(-1)]


def _normalized(node: Node, axes: list[int], rank: int) -> list[int]:
    out = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ModelLoadError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        out.append(axis % rank)
    if len(set(out)) != len(out):
        raise ModelLoadError(f"{node.describe()}: repeated axes {axes}")
    return out


def _as_reshape(ctx: ConversionContext, node: Node, source: str, sample: list[int]) -> None:
    ctx.add_layer(node, "reshape", [source], ints={"shape": [0, *sample]})


@register("Squeeze")
def convert_squeeze(ctx: ConversionContext, node: Node) -> None:
    """Squeeze of size-1 per-sample axes (given explicitly) -> reshape."""
    source = ctx.data_input(node, 0)
    sample = _known_sample_shape(ctx, node, source)
    axes = _axes_of(ctx, node, 12)
    if axes is None:
        raise UnsupportedModelError(
            f"{node.describe()}: Squeeze without axes would also remove the batch axis for a batch of 1; only "
            "a Squeeze with explicit axes is supported"
        )
    axes = _normalized(node, axes, len(sample) + 1)
    if 0 in axes:
        raise UnsupportedModelError(f"{node.describe()}: a Squeeze of the batch axis is not supported")
    for axis in axes:
        if sample[axis - 1] != 1:
            raise ModelLoadError(
                f"{node.describe()}: axis {axis} of '{node.input(0)}' (shape [N, "
                f"{', '.join(map(str, sample))}]) has length {sample[axis - 1]}, not 1"
            )
    _as_reshape(ctx, node, source, [d for i, d in enumerate(sample, start=1) if i not in axes])


@register("Unsqueeze")
def convert_unsqueeze(ctx: ConversionContext, node: Node) -> None:
    """Unsqueeze inserting per-sample size-1 axes -> reshape."""
    source = ctx.data_input(node, 0)
    sample = _known_sample_shape(ctx, node, source)
    axes = _axes_of(ctx, node, 12)
    if not axes:
        raise ModelLoadError(f"{node.describe()}: the axes are missing")
    rank = len(sample) + 1 + len(axes)
    axes = _normalized(node, axes, rank)
    if 0 in axes:
        raise UnsupportedModelError(
            f"{node.describe()}: an Unsqueeze at axis 0 moves the batch axis; not supported"
        )
    dims = iter(sample)
    out = [1 if axis in axes else next(dims) for axis in range(1, rank)]
    _as_reshape(ctx, node, source, out)


@register("Transpose")
def convert_transpose(ctx: ConversionContext, node: Node) -> None:
    """Transpose keeping the batch axis first: a reshape when it only moves size-1 axes, else a transpose layer."""
    source = ctx.data_input(node, 0)
    sample = _known_sample_shape(ctx, node, source)
    shape = (1, *sample)
    perm = node.optional_ints_attr("perm")
    if perm is None:
        perm = list(range(len(shape)))[::-1]
    if sorted(perm) != list(range(len(shape))):
        raise ModelLoadError(f"{node.describe()}: perm {perm} is not a permutation of {len(shape)} axes")
    if perm[0] != 0:
        raise UnsupportedModelError(
            f"{node.describe()}: Transpose with perm {perm} moves the batch axis; not supported"
        )
    if perm == sorted(perm):
        ctx.alias(node.outputs[0], source)
        return
    if [a for a in perm if shape[a] != 1] == [a for a in range(len(shape)) if shape[a] != 1]:
        # Only size-1 axes move: the memory layout is unchanged.
        _as_reshape(ctx, node, source, [shape[a] for a in perm[1:]])
        return
    ctx.add_layer(node, "transpose", [source], ints={"perm": perm})


# -- Slice, Split, Gather on data ------------------------------------------------------------------------
#: An end at or beyond this is "to the end of the axis" (PyTorch writes INT64_MAX, others INT32_MAX).
_TO_THE_END = 2**31 - 1


def _data_axis(ctx: ConversionContext, node: Node, source: str, axis: int) -> int:
    """A non-negative axis of data value ``source`` (batch counted), checked against its rank when known."""
    rank = ctx.rank_of(source)
    if rank is not None:
        if not -rank <= axis < rank:
            raise ModelLoadError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        axis %= rank
    elif axis < 0:
        raise UnsupportedModelError(
            f"{node.describe()}: the rank of '{node.input(0)}' is not known, so the negative axis {axis} cannot "
            "be placed"
        )
    if axis == 0:
        raise UnsupportedModelError(
            f"{node.describe()}: {node.op_type} on the batch axis (axis 0) is not supported; only per-sample "
            "axes can be sliced, split or gathered"
        )
    return axis


def _shape_text(ctx: ConversionContext, source: str) -> str:
    shape = ctx.shape_of(source)
    return "unknown" if shape is None else str(["N" if i == 0 else d for i, d in enumerate(shape)])


def _ints_input(ctx: ConversionContext, node: Node, index: int, what: str) -> list[int] | None:
    if not node.input(index):
        return None
    return [int(v) for v in np.asarray(ctx.raw_constant(node, index, what)).reshape(-1)]


@register("Slice")
def convert_slice(ctx: ConversionContext, node: Node) -> None:
    """Slice of a data tensor on per-sample axes (opset < 10: attributes; from 10: inputs, with steps)."""
    source = ctx.data_input(node, 0)
    if node.opset < 10:
        starts = node.ints_attr("starts", [])
        ends = node.ints_attr("ends", [])
        axes = node.optional_ints_attr("axes")
        steps = None
    else:
        starts = _ints_input(ctx, node, 1, "starts") or []
        ends = _ints_input(ctx, node, 2, "ends") or []
        axes = _ints_input(ctx, node, 3, "axes")
        steps = _ints_input(ctx, node, 4, "steps")
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ModelLoadError(
            f"{node.describe()}: starts {starts}, ends {ends}, axes {axes} and steps {steps} differ in length"
        )
    keep: list[tuple[int, int, int, int]] = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step == 0:
            raise ModelLoadError(f"{node.describe()}: a step of 0 on axis {axis}")
        rank = ctx.rank_of(source)
        if (
            (axis == 0 or (rank is not None and axis == -rank))
            and start == 0
            and end >= _TO_THE_END
            and step == 1
        ):
            continue  # the whole batch axis: a no-op
        keep.append((start, end, _data_axis(ctx, node, source, axis), step))
    for start, end, axis, step in keep:
        extent = ctx.dim_of(source, axis)
        # ONNX clamps starts and ends exactly as Python's slice.indices does.
        if extent is not None and not range(*slice(start, end, step).indices(extent)):
            raise UnsupportedModelError(
                f"{node.describe()}: the slice [{start}:{end}:{step}] of axis {axis} (length {extent}) of "
                f"'{node.input(0)}' (shape {_shape_text(ctx, source)}) is empty; empty tensors are not supported"
            )
    if not keep:
        ctx.alias(node.outputs[0], source)
        return
    ctx.add_layer(
        node,
        "slice",
        [source],
        ints={
            "starts": [k[0] for k in keep],
            "ends": [k[1] for k in keep],
            "axes": [k[2] for k in keep],
            "steps": [k[3] for k in keep],
        },
    )


@register("Split")
def convert_split(ctx: ConversionContext, node: Node) -> None:
    """Split along a per-sample axis -> one slice layer per output.

    The sizes come from the ``split`` attribute (opset < 13), the ``split`` input (from 13), or else equal
    parts: as many as outputs (``num_outputs`` from opset 18, where the last part may be smaller).
    """
    source = ctx.data_input(node, 0)
    axis = _data_axis(ctx, node, source, node.int_attr("axis", 0))
    extent = ctx.dim_of(source, axis)
    sizes = node.optional_ints_attr("split") if node.opset < 13 else _ints_input(ctx, node, 1, "split")
    count = len(node.outputs)
    if sizes is None:
        if extent is None:
            raise UnsupportedModelError(
                f"{node.describe()}: the length of axis {axis} of '{node.input(0)}' is not known at import"
            )
        if node.opset >= 18 and "num_outputs" in node.attrs:
            count = node.int_attr("num_outputs", count)
            part = -(-extent // count)
            sizes = [min(part, extent - k * part) for k in range(count)]
        elif extent % count:
            raise ModelLoadError(
                f"{node.describe()}: axis {axis} of length {extent} does not split into {count} equal parts"
            )
        else:
            sizes = [extent // count] * count
    if len(sizes) != len(node.outputs) or any(s < 0 for s in sizes):
        raise ModelLoadError(f"{node.describe()}: split sizes {sizes} for {len(node.outputs)} outputs")
    if any(s == 0 for s in sizes):
        raise UnsupportedModelError(
            f"{node.describe()}: split sizes {sizes} of axis {axis} of '{node.input(0)}' (shape "
            f"{_shape_text(ctx, source)}) make empty outputs; empty tensors are not supported"
        )
    if extent is not None and sum(sizes) != extent:
        raise ModelLoadError(
            f"{node.describe()}: split sizes {sizes} do not add up to the axis length {extent}"
        )
    start = 0
    for k, (output, size) in enumerate(zip(node.outputs, sizes, strict=True)):
        if output:
            ints = {"starts": [start], "ends": [start + size], "axes": [axis], "steps": [1]}
            name = ctx.unique_name(f"{node.name}_{k}")
            ctx.add_layer(node, "slice", [source], ints=ints, output=output, name=name)
        start += size


@register("Gather")
def convert_gather(ctx: ConversionContext, node: Node) -> None:
    """Gather of a data tensor with constant indices (a scalar or a vector) on a per-sample axis -> gather.

    Also the gather PyTorch writes for ``as_strided`` after flattening the whole batch (``x.view(-1)``): indices
    computed from the batch size that take every sample's values from that sample alone
    (:func:`_gather_from_flattened_batch`)."""
    flattened = ctx.batch_flattened.get(ctx.resolve(node.input(0)))
    if flattened is not None:
        _gather_from_flattened_batch(ctx, node, *flattened)
        return
    source = ctx.data_input(node, 0)
    axis = _data_axis(ctx, node, source, node.int_attr("axis", 0))
    indices = np.asarray(ctx.raw_constant(node, 1, "indices"))
    if indices.ndim > 1 or indices.size == 0:
        raise UnsupportedModelError(
            f"{node.describe()}: indices of shape {list(indices.shape)} into '{node.input(0)}' (shape "
            f"{_shape_text(ctx, source)}); only a scalar or a non-empty vector of indices is supported"
        )
    values = [int(v) for v in indices.reshape(-1)]
    extent = ctx.dim_of(source, axis)
    if extent is not None and any(not -extent <= v < extent for v in values):
        raise ModelLoadError(
            f"{node.describe()}: indices {values} out of range for axis {axis} of length {extent} (shape "
            f"{ctx.shape_of(source)})"
        )
    ints = {"axis": [axis], "indices": values, "squeeze": [int(indices.ndim == 0)]}
    ctx.add_layer(node, "gather", [source], ints=ints)


def _gather_from_flattened_batch(ctx: ConversionContext, node: Node, source: str, refusal: str) -> None:
    """Gather on axis 0 of ``source`` flattened with its batch (``source.view(-1)``), with indices computed from
    the batch size: supported when, for both sentinel batch sizes, the indices have the batch as their first
    axis and sample ``n``'s entries are ``n * S + k`` with the same ``k`` (``0 <= k < S``, ``S`` values per
    sample) for every ``n``. That is a per-sample gather of the flattened sample: an alias when ``k`` recreates
    the sample as it was (``as_strided`` with the contiguous strides), else reshape -> gather -> reshape."""
    pair = ctx.value_pair(node.input(1))
    sample = ctx.sample_shape(source)
    if node.int_attr("axis", 0) != 0 or pair is None or sample is None:
        raise UnsupportedModelError(refusal)
    batches: tuple[int, ...] = fold.SENTINEL_BATCHES
    values: tuple[np.ndarray, ...] = tuple(pair)
    if pair[0] is pair[1]:
        # Constant indices: only an export with a static batch of 1 (the torch dynamo exporter's default) writes
        # them; they then describe sample 0, and dtd applies the same per-sample gather to every sample.
        declared = ctx.shape_of(ctx.input_name)
        if declared is None or declared[0] != 1:
            raise UnsupportedModelError(refusal)
        batches, values = (1,), (pair[0],)
    size = int(np.prod(sample))
    per_sample: np.ndarray | None = None
    for batch, value in zip(batches, values, strict=True):
        idx = np.asarray(value)
        ok = idx.dtype.kind in "iu" and idx.ndim >= 2 and idx.shape[0] == batch
        if ok:
            idx = np.where(idx < 0, idx + batch * size, idx).astype(np.int64)
            k = idx - (np.arange(batch, dtype=np.int64) * size).reshape((-1,) + (1,) * (idx.ndim - 1))
            ok = bool(np.all(k >= 0) and np.all(k < size) and np.all(k == k[:1]))
            ok = ok and (per_sample is None or np.array_equal(k[0], per_sample))
            per_sample = k[0]
        if not ok:
            raise UnsupportedModelError(
                f"{node.describe()}: its indices '{node.input(1)}' do not take each sample's values from that "
                f"sample alone; {refusal}"
            )
    assert per_sample is not None
    flat = [int(v) for v in per_sample.reshape(-1)]
    if per_sample.shape == tuple(sample) and flat == list(range(size)):
        ctx.alias(node.outputs[0], source)  # the sample as it was
        return
    flat_name = ctx.unique_name(f"{node.name}_flat")
    rows = ctx.add_layer(node, "reshape", [source], ints={"shape": [0, -1]}, output=flat_name, name=flat_name)
    ints = {"axis": [1], "indices": flat, "squeeze": [0]}
    if per_sample.ndim == 1:
        ctx.add_layer(node, "gather", [rows.output], ints=ints)
        return
    picked = ctx.unique_name(f"{node.name}_gather")
    ctx.add_layer(node, "gather", [rows.output], ints=ints, output=picked, name=picked)
    ctx.add_layer(node, "reshape", [picked], ints={"shape": [0, *per_sample.shape]})


def reaches_output_through_reshapes(ctx: ConversionContext, value: str) -> bool:
    """True when ``value`` is the graph output, or feeds only a chain of shape ops (Reshape, Flatten,
    Squeeze, Unsqueeze, Identity, Dropout) that ends at the graph output."""
    model = ctx.model
    for _ in range(1 + (len(model.graph.node) if model is not None else 0)):
        if ctx.is_graph_output(value):
            return True
        if model is None:
            return False
        # Shape and Size read only the shape (the arithmetic of a computed Reshape target).
        users = [n for n in model.graph.node if value in n.input and n.op_type not in ("Shape", "Size")]
        if len(users) != 1 or users[0].op_type not in _RESHAPE_OPS or users[0].input[0] != value:
            return False
        value = users[0].output[0]
    return False


_RESHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")


@register("Concat")
def convert_concat(ctx: ConversionContext, node: Node) -> None:
    """Concat of data tensors along a non-batch axis."""
    if "axis" not in node.attrs:
        raise ModelLoadError(f"{node.describe()}: the axis attribute is required (from Concat-4 on)")
    sources = [ctx.data_input(node, i) for i in range(len(node.inputs))]
    axis = node.int_attr("axis", 1)
    rank = ctx.rank_of(sources[0])
    if rank is not None:
        if not -rank <= axis < rank:
            raise UnsupportedModelError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        axis %= rank
    if axis == 0:
        raise UnsupportedModelError(f"{node.describe()}: Concat along the batch axis is not supported")
    ctx.add_layer(node, "concat", sources, ints={"axis": [axis]})
