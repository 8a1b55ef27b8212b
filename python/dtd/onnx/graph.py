"""Reading ONNX models and the graph-level checks done before any converter runs."""

from __future__ import annotations

import heapq
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelLoadError, UnsupportedModelError
from ..limits import DEFAULT_LIMITS, Limits
from .context import Shape
from .external import load_external_data

#: Oldest default-domain opset the importer accepts: opset 6 dropped the legacy ``consumed_inputs``
#: attributes and made Cast's ``to`` an integer; every op form dtd converts exists from there on.
MIN_OPSET = 6
#: Newest default-domain opset: the newest the installed ``onnx`` package defines (its operator schemas are
#: what the converters' opset tables are written against; a model from a newer onnx is refused, not guessed).
MAX_OPSET = int(onnx.defs.onnx_opset_version())
_DEFAULT_DOMAINS = ("", "ai.onnx")
#: Element types accepted for the model input.
_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
}
SourceLike = str | os.PathLike[str] | bytes | bytearray | memoryview | onnx.ModelProto


def read_model(
    src: SourceLike, base_dir: str | os.PathLike[str] | None = None, limits: Limits = DEFAULT_LIMITS
) -> tuple[onnx.ModelProto, str]:
    """Parse ``src`` into a ModelProto.

    Parameters
    ----------
    src : str, os.PathLike, bytes or onnx.ModelProto
        A path to an ``.onnx`` file, the serialized model, or a parsed model (not modified).
    base_dir : path, optional
        The folder external data is read from (see :func:`dtd.onnx.external.load_external_data`).
    limits : dtd.Limits, optional
        The node count and graph nesting depth are checked (:func:`check_graph_size`) before external data is
        read.

    Returns
    -------
    tuple
        ``(model, source)`` where ``source`` is the path as a string, ``"<bytes>"`` or ``"<ModelProto>"``.

    Raises
    ------
    ModelLoadError
        When the file is missing or unreadable or the bytes are not a valid ONNX model, or its external data is
        unsafe or missing (see :mod:`dtd.onnx.external`; bytes and ModelProto need ``base_dir`` for it).
    """
    if isinstance(src, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(src)
        check_graph_size(model, limits)
        load_external_data(model, base_dir, "<ModelProto>")
        return model, "<ModelProto>"
    if isinstance(src, (bytes, bytearray, memoryview)):
        try:
            model = onnx.load_model_from_string(bytes(src))
        except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning-derived errors, ...
            raise ModelLoadError(f"cannot parse the ONNX model bytes: {type(exc).__name__}: {exc}") from exc
        check_graph_size(model, limits)
        load_external_data(model, base_dir, "<bytes>")
        return model, "<bytes>"
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        source = str(path)
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ModelLoadError(f"cannot read ONNX model {source!r}: {exc}") from exc
        try:
            model = onnx.load(source, load_external_data=False)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load ONNX model {source!r} (truncated, not an ONNX file, or missing external data): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            check_graph_size(model, limits)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{source}: {exc}") from exc
        load_external_data(model, path.parent if base_dir is None else base_dir, source)
        return model, source
    raise TypeError(f"expected a path, bytes or an onnx.ModelProto, got {type(src).__name__}")


def check_graph_size(model: onnx.ModelProto, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a model with more nodes than ``limits.max_nodes`` or graphs nested deeper than ``limits.max_depth``.

    The walk over the graphs held by node attributes (If/Loop/Scan bodies) keeps its own stack, so a deeply nested
    file costs no Python recursion; it stops at the first limit exceeded.

    Raises
    ------
    ModelLoadError
        Naming the limit, the count or depth reached, and how to raise it.
    """
    nodes = 0
    stack: list[tuple[onnx.GraphProto, int]] = [(model.graph, 1)]
    while stack:
        graph, depth = stack.pop()
        if depth > limits.max_depth:
            raise ModelLoadError(
                f"graphs are nested more than {limits.max_depth} levels deep in node attributes (limit "
                "max_depth; raise it with dtd.load(..., limits=dtd.Limits(max_depth=...)))"
            )
        nodes += len(graph.node)
        if nodes > limits.max_nodes:
            raise ModelLoadError(
                f"the model has more than {limits.max_nodes} nodes (limit max_nodes; raise it with "
                "dtd.load(..., limits=dtd.Limits(max_nodes=...)))"
            )
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append((attr.g, depth + 1))
                stack.extend((sub, depth + 1) for sub in attr.graphs)


def default_opset(model: onnx.ModelProto) -> int:
    """Return the default-domain opset, checking that it is supported and that no node uses another domain.

    The default domain is spelled ``""`` or ``"ai.onnx"``. Other domains may be imported (exporters list
    ``ai.onnx.ml`` or ``com.microsoft`` out of habit); a node that uses one is refused.

    Raises
    ------
    ModelLoadError
        For a model without nodes and without a default-domain import (empty or not ONNX).
    UnsupportedModelError
        For an opset outside ``MIN_OPSET..MAX_OPSET``, or a node of another domain (naming node and domain).
    """
    versions = {imp.domain: imp.version for imp in model.opset_import}
    opset = next((versions[d] for d in _DEFAULT_DOMAINS if d in versions), None)
    if opset is None:
        if not model.graph.node:
            raise ModelLoadError(
                "the model has no graph nodes and no default-domain opset (empty or not ONNX?)"
            )
        raise UnsupportedModelError("the model does not import the default ONNX domain")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        newest = f"the newest the installed onnx {onnx.__version__} defines"
        why = "older than dtd supports" if opset < MIN_OPSET else f"newer than {newest}"
        raise UnsupportedModelError(
            f"opset {opset} of the default ONNX domain is {why} (supported: {MIN_OPSET}..{MAX_OPSET})"
        )
    for index, node in enumerate(model.graph.node):
        if node.domain not in _DEFAULT_DOMAINS:
            name = node.name or f"{node.op_type}_{index}"
            imported = f"opset {versions[node.domain]}" if node.domain in versions else "not imported"
            raise UnsupportedModelError(
                f"node {node.op_type} '{name}' uses the domain '{node.domain}' ({imported}); only the default "
                "ONNX domain ('' or 'ai.onnx') is supported"
            )
    return int(opset)


def constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers by name as NumPy arrays (external data must already be loaded)."""
    out: dict[str, np.ndarray] = {}
    for tensor in graph.initializer:
        if any(d < 0 for d in tensor.dims):
            raise ModelLoadError(
                f"initializer '{tensor.name}' has dims {list(tensor.dims)} with a negative entry"
            )
        try:
            out[tensor.name] = numpy_helper.to_array(tensor)
        except Exception as exc:
            raise ModelLoadError(f"cannot read initializer '{tensor.name}': {exc}") from exc
    for sparse in graph.sparse_initializer:
        raise UnsupportedModelError(f"sparse initializer '{sparse.values.name}' is not supported")
    return out


def _shape_of(value: onnx.ValueInfoProto) -> Shape | None:
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim)


#: Ops whose output extents come from attributes or constant inputs and can turn negative on a bad geometry.
_GEOMETRY_OPS = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "Pad", "Slice"})
#: Why an op's output extent turned negative, for the message.
_NEGATIVE_REASON = {
    "Pad": "its pads crop more than the axis holds",
    "": "its kernel, dilations, strides or pads do not fit the input",
}
#: Constant inputs handed to the per-node inference as data (pads, starts, shapes are a few elements).
_SMALL_CONSTANT = 4096


def _is_small(tensor: onnx.TensorProto) -> bool:
    return bool(np.prod(tensor.dims, dtype=np.float64) <= _SMALL_CONSTANT)


def constant_node_value(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor of a Constant node's ``value`` attribute, or None (another node, or another attribute)."""
    if node.op_type != "Constant" or len(node.output) != 1:
        return None
    return next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)


def _dims(tp: onnx.TypeProto) -> list[int | str] | None:
    if not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tp.tensor_type.shape.dim
    ]


def check_geometry(model: onnx.ModelProto) -> None:
    """Run ONNX shape inference node by node up to the last geometry op, refusing the first negative extent.

    ONNX's whole-graph inference computes a negative extent for a Conv or pool whose kernel, dilation or pads do
    not fit its input, then aborts the process (an assertion in Slice's inference, which clamps to that extent).
    Node by node, each output is checked before the next node sees it, so the same file is a ModelLoadError naming
    the node. Nodes are taken in file order with the inputs known so far, as the whole-graph inference does; small
    initializers and Constant values are passed as data, as it uses them.

    Raises
    ------
    ModelLoadError
        For a node whose output would have a negative extent (an empty one for a geometry op).
    """
    nodes = model.graph.node
    last = max((i for i, n in enumerate(nodes) if n.op_type in _GEOMETRY_OPS), default=-1)
    if last < 0:
        return
    types: dict[str, onnx.TypeProto] = {v.name: v.type for v in model.graph.input}
    data: dict[str, onnx.TensorProto] = {}
    for tensor in model.graph.initializer:
        types[tensor.name] = helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))
        if _is_small(tensor):
            data[tensor.name] = tensor
    opset = default_opset(model)
    for index in range(last + 1):
        node = nodes[index]
        value = constant_node_value(node)
        if value is not None and _is_small(value):
            data[node.output[0]] = value
        if any(name and name not in types for name in node.input):
            continue  # an input inference cannot reach: so cannot the whole-graph inference
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
            outputs = onnx.shape_inference.infer_node_outputs(
                schema,
                node,
                {name: types[name] for name in node.input if name},
                {name: data[name] for name in node.input if name in data},
                opset_imports=list(model.opset_import),
                ir_version=model.ir_version,
            )
        except Exception:
            continue  # no schema, or inference refuses the node: its outputs stay unknown
        for name, tp in outputs.items():
            dims = _dims(tp)
            if dims is not None and any(isinstance(d, int) and d < 0 for d in dims):
                given = ", ".join(f"{n} {_dims(types[n])}" for n in node.input if n and n in types)
                label = node.name or f"{node.op_type}_{index}"
                raise ModelLoadError(
                    f"node {node.op_type} '{label}': its output '{name}' would have shape {dims}, with a negative axis "
                    f"({_NEGATIVE_REASON.get(node.op_type, _NEGATIVE_REASON[''])}; inputs: {given})"
                )
            types[name] = tp


def _copy_fields(dst: Any, src: Any, skip: str) -> None:
    """Copy every set field of protobuf message ``src`` into ``dst`` except ``skip``."""
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        if field.label == field.LABEL_REPEATED:
            getattr(dst, field.name).extend(value)
        elif field.message_type is not None:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def skeleton(model: onnx.ModelProto, in_place: bool = False) -> onnx.ModelProto:
    """The model with its initializers of more than a few thousand elements replaced by typed graph inputs.

    For ONNX's shape inference once the importer holds the weights as NumPy arrays (:func:`constants`): it
    serialises the whole model and parses it back (twice the file in memory, and the time to copy it), but needs
    only a weight's type and dims; small constants (shapes, pads, axes) stay, since inference reads their values.
    Node order and indices are kept. ``in_place`` strips ``model`` itself (freeing the weights' bytes) instead of
    building a new skeleton.
    """
    graph = model.graph
    large = [t for t in graph.initializer if not _is_small(t)]
    if not large:
        return model
    declared = {value.name for value in graph.input}
    typed = [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in large
        if t.name not in declared
    ]
    small = [t for t in graph.initializer if _is_small(t)]
    if in_place:
        small = [onnx.TensorProto.FromString(t.SerializeToString()) for t in small]
        del graph.initializer[:]
        graph.initializer.extend(small)
        graph.input.extend(typed)
        return model
    light = onnx.ModelProto()
    _copy_fields(light, model, skip="graph")
    _copy_fields(light.graph, graph, skip="initializer")
    light.graph.initializer.extend(small)
    light.graph.input.extend(typed)
    return light


def infer_shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    """Shapes (batch axis included, None for unknown dims) of every value ONNX shape inference can reach.

    Inference failures are not fatal: the converters then check less and leave it to the C++ side. A geometry that
    would make ONNX's inference abort the process is refused first (:func:`check_geometry`).

    Raises
    ------
    ModelLoadError
        From :func:`check_geometry`.
    """
    check_geometry(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except Exception:
        inferred = model
    shapes: dict[str, Shape] = {}
    graph = inferred.graph
    for value in [*graph.value_info, *graph.input, *graph.output]:
        shape = _shape_of(value)
        if shape is not None:
            shapes[value.name] = shape
    return shapes


def data_input(graph: onnx.GraphProto, initializer_names: set[str]) -> tuple[str, list[int], str]:
    """Return ``(name, per-sample shape, dtype)`` of the single non-initializer graph input."""
    inputs = [v for v in graph.input if v.name not in initializer_names]
    if not inputs:
        raise UnsupportedModelError("the graph has no data input (it computes a constant)")
    if len(inputs) > 1:
        names = ", ".join(repr(v.name) for v in inputs)
        raise UnsupportedModelError(
            f"the graph has {len(inputs)} data inputs ({names}); exactly one is supported"
        )
    value = inputs[0]
    tensor_type = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if tensor_type is None:
        raise UnsupportedModelError(f"the graph input '{value.name}' is not a tensor")
    if tensor_type.elem_type not in _FLOAT_TYPES:
        known = tensor_type.elem_type in onnx.TensorProto.DataType.values()
        name = (
            onnx.TensorProto.DataType.Name(tensor_type.elem_type)
            if known
            else f"{tensor_type.elem_type} (unknown)"
        )
        raise UnsupportedModelError(
            f"the graph input '{value.name}' has element type {name}; a float is expected"
        )
    shape = _shape_of(value)
    if shape is None or len(shape) < 2:
        raise UnsupportedModelError(
            f"the graph input '{value.name}' must have a known rank >= 2 (a batch axis and a sample shape), "
            f"got {'unknown' if shape is None else list(shape)}"
        )
    sample = shape[1:]
    if any(d == 0 for d in sample):
        raise UnsupportedModelError(
            f"the graph input '{value.name}' has shape {list(shape)}: an empty axis (extent 0) is not supported"
        )
    if any(d is None or d <= 0 for d in sample):
        dims = ["?" if d is None else d for d in shape]
        raise UnsupportedModelError(
            f"the graph input '{value.name}' has shape {dims}; only the batch axis (the first) may be dynamic"
        )
    return value.name, [int(d) for d in sample if d is not None], _FLOAT_TYPES[tensor_type.elem_type]


def check_ir_version(model: onnx.ModelProto) -> None:
    """An IR version newer than the installed onnx knows is outside what dtd can read reliably."""
    if model.ir_version > onnx.IR_VERSION:
        raise UnsupportedModelError(
            f"the model's IR version {model.ir_version} is newer than the installed onnx {onnx.__version__} knows "
            f"({onnx.IR_VERSION})"
        )


def check_declared_types(graph: onnx.GraphProto, data_values: set[str], dtype: str) -> None:
    """Every declared element type of a data value (the graph output, value_info of layer outputs) must be the
    input's: ONNX's ops that dtd converts keep one float type T throughout, so another one (complex, int, bool, an
    unknown code) contradicts the graph. A graph output's tensor type must name its element type.

    Raises
    ------
    ModelLoadError
        Naming the value and both types.
    """
    expected = next(code for code, name in _FLOAT_TYPES.items() if name == dtype)
    for value in graph.output:
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type == 0:
            raise ModelLoadError(
                f"graph output '{value.name}' is declared as a tensor without an element type (onnx.checker: "
                "elem_type is required)"
            )
    for value in [*graph.output, *graph.value_info]:
        if value.name not in data_values or not value.type.HasField("tensor_type"):
            continue
        code = value.type.tensor_type.elem_type
        if code in (0, expected):
            continue
        known = code in onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(code) if known else f"{code} (unknown)"
        raise ModelLoadError(
            f"value '{value.name}' is declared with element type {name}, but the graph computes it in "
            f"{onnx.TensorProto.DataType.Name(expected)} (the input's type)"
        )


def graph_output(graph: onnx.GraphProto) -> onnx.ValueInfoProto:
    """Return the single graph output."""
    if len(graph.output) != 1:
        names = ", ".join(repr(v.name) for v in graph.output)
        if not graph.output:
            raise ModelLoadError("the graph has no output")
        raise UnsupportedModelError(
            f"the graph has {len(graph.output)} outputs ({names}); exactly one is supported"
        )
    return graph.output[0]


def node_names(nodes: list[onnx.NodeProto]) -> list[str]:
    """Unique names: the node's own name, else ``<op_type>_<index>``; duplicates get a ``_<k>`` suffix."""
    used: set[str] = set()
    next_suffix: dict[str, int] = {}  # per base, the first suffix not yet tried: linear in the node count
    names: list[str] = []
    for index, node in enumerate(nodes):
        base = node.name or f"{node.op_type}_{index}"
        name, k = base, next_suffix.get(base, 1)
        if name in used:
            name = f"{base}_{k}"
            while name in used:
                k += 1
                name = f"{base}_{k}"
            next_suffix[base] = k + 1
        used.add(name)
        names.append(name)
    return names


def topological_order(nodes: list[onnx.NodeProto], names: list[str], available: set[str]) -> list[int]:
    """Sort node indices so that every input is produced before use, keeping file order where possible.

    Raises
    ------
    ModelLoadError
        For an input that nothing produces (a missing initializer), a value produced twice, or a cycle.
    """
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in available:
                raise ModelLoadError(
                    f"value '{out}' is produced twice (by {nodes[index].op_type} '{names[index]}' and "
                    "an earlier node or initializer)"
                )
            producer[out] = index
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for index, node in enumerate(nodes):
        for name in node.input:
            if not name or name in available:
                continue
            if name not in producer:
                raise ModelLoadError(
                    f"{node.op_type} '{names[index]}': input '{name}' is neither an initializer, the graph "
                    "input nor the output of a node (missing initializer?)"
                )
            waiting[index] += 1
            users[producer[name]].append(index)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for user in users[index]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        stuck = [f"{nodes[i].op_type} '{names[i]}'" for i in range(len(nodes)) if waiting[i] > 0]
        raise ModelLoadError(f"the graph has a cycle through the nodes {', '.join(stuck)}")
    return order


def needed_nodes(nodes: list[onnx.NodeProto], output: str) -> set[int]:
    """Indices of the nodes the graph output depends on (unused branches are dropped)."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    needed: set[int] = set()
    stack = [output]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen or name not in producer:
            continue
        seen.add(name)
        index = producer[name]
        needed.add(index)
        stack.extend(n for n in nodes[index].input if n)
    return needed
