"""The import driver: ONNX model -> layer drafts -> ``_core.ModelSpec``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx

from ..errors import ModelLoadError, UnsupportedModelError
from ..limits import DEFAULT_LIMITS, Limits
from . import (
    fold,
    fuse,
    ops,  # registers the converters
    schema,
)
from . import graph as g
from .context import ConversionContext, LayerDraft, Node
from .registry import lookup, supported_ops

fold.register_shape_only_ops()  # after the converter modules: ops with a converter of their own keep it


@dataclass
class ConvertedGraph:
    """The result of converting a graph, before it becomes a ``_core.ModelSpec``.

    Attributes
    ----------
    input_name : str
        Name of the data input.
    input_shape : list of int
        Per-sample input shape (batch excluded).
    input_dtype : str
        Element type of the ONNX input (``"float32"``, ``"float64"``, ...).
    output : str
        Name of the value the last layer produces.
    layers : list of LayerDraft
        Layers in topological order.
    opset : int
        Default-domain opset of the model.
    output_shape : tuple of int or None
        Per-sample shape of the ONNX graph output from shape inference, None when not fully known or not
        trustworthy (ONNX shape inference disagrees with onnxruntime on pools with ``ceil_mode=1`` whose last
        window would start in the padding).
    merged_batch_output : bool
        True when the output's ONNX leading axis merges the batch with per-sample axes (after Flatten with
        axis >= 2): the ONNX result is the network's ``y.reshape(-1, *y.shape[2:])``. Decided by the graph, never
        by the output's declared shape, which may contradict it.
    """

    input_name: str
    input_shape: list[int]
    input_dtype: str
    output: str
    layers: list[LayerDraft]
    opset: int
    output_shape: tuple[int, ...] | None
    merged_batch_output: bool
    #: Declared shapes (graph outputs and value_info, batch axis included) of layer outputs whose batch axis is the
    #: ONNX leading axis, for the check against the shapes the network computes (:func:`check_declared_shapes`).
    declared: dict[str, tuple[int | None, ...]] = field(default_factory=dict)


def convert_graph(
    model: onnx.ModelProto, limits: Limits = DEFAULT_LIMITS, *, consume: bool = False
) -> ConvertedGraph:
    """Translate a parsed ONNX model into layer drafts (no C++ involved).

    Parameters
    ----------
    model : onnx.ModelProto
        The model; it is not modified unless ``consume``.
    limits : dtd.Limits, optional
        Resource limits (the largest folded constant).
    consume : bool, optional
        Drop the bytes of ``model``'s large initializers once they are read (:func:`dtd.onnx.graph.skeleton`),
        so that the file's data is not held twice during the conversion: for a caller's private copy.

    Returns
    -------
    ConvertedGraph
        The drafts and the model's input/output description.

    Raises
    ------
    ModelLoadError, UnsupportedModelError
        With a message naming the node at fault.
    """
    if not model.HasField("graph"):
        raise ModelLoadError("the model has no graph (empty or not an ONNX model?)")
    g.check_ir_version(model)
    opset = g.default_opset(model)
    graph = model.graph
    consts = g.constants(graph)
    input_name, input_shape, input_dtype = g.data_input(graph, set(consts))
    out_value = g.graph_output(graph)
    nodes = list(graph.node)
    names = g.node_names(nodes)
    order = g.topological_order(nodes, names, {input_name, *consts})
    needed = g.needed_nodes(nodes, out_value.name)
    order = [i for i in order if i in needed]
    if out_value.name != input_name and out_value.name not in consts and not needed:
        raise ModelLoadError(f"the graph output '{out_value.name}' is not produced by any node")
    const_dims = {name: tuple(value.shape) for name, value in consts.items()}
    for node in nodes:
        value = g.constant_node_value(node)
        if value is not None:
            const_dims[node.output[0]] = tuple(value.dims)
    for i in order:  # before anything reads a node: arity, attribute types and constant input shapes
        schema.check_node(nodes[i], names[i], opset)
        schema.check_constant_inputs(nodes[i], names[i], opset, const_dims)

    # The weights are in `consts` now: shape inference and the converters see the model without their bytes.
    model = g.skeleton(model, in_place=consume)
    shapes = g.infer_shapes(model)
    static_alias = {
        nodes[i].output[0]: nodes[i].input[0]
        for i in order
        if nodes[i].op_type in ("Identity", "Dropout") and nodes[i].input and nodes[i].output
    }

    def static_resolve(name: str) -> str:
        for _ in range(len(static_alias) + 1):
            if name not in static_alias:
                break
            name = static_alias[name]
        return name

    fusion = fuse.find(nodes, order, consts, out_value.name, names, opset)
    order = [i for i in order if i not in fusion.absorbed]
    consumers: dict[str, int] = {}
    for i in order:
        # Shape and Size read only the shape, which folding BatchNormalization or a scale does not change.
        if nodes[i].op_type in ("Identity", "Dropout", "Shape", "Size"):
            continue
        proto = fusion.replacements[i][0] if i in fusion.replacements else nodes[i]
        for name in proto.input:
            if name:
                key = static_resolve(name)
                consumers[key] = consumers.get(key, 0) + 1
    final = static_resolve(out_value.name)
    consumers[final] = consumers.get(final, 0) + 1

    ctx = ConversionContext(
        opset,
        input_name,
        consts,
        shapes,
        static_alias,
        consumers,
        final,
        model=model,
        reserved_names=set(names),
        limits=limits,
    )
    for i in order:
        _convert_node(ctx, nodes[i], names[i], opset, i, fusion)

    output = ctx.resolve(out_value.name)
    if ctx.pending_origin(out_value.name) is not None:
        ctx.materialize(ctx.resolve(out_value.name))  # a constant affine map at the output: an affine layer
    if ctx.is_batch_value(out_value.name):
        raise UnsupportedModelError(
            f"the graph output '{out_value.name}' is computed from the batch size alone (shape arithmetic)"
        )
    if output == input_name or output in ctx.constants:
        # Valid ONNX (an Identity, an inference-mode Dropout, a constant), but no network to explain.
        what = "the input itself" if output == input_name else "a constant"
        raise UnsupportedModelError(
            f"the model computes no layer: its output '{out_value.name}' is {what} (after removing "
            "Identity/Dropout and evaluating constants at import)"
        )
    if output in ctx.batch_flattened:
        raise UnsupportedModelError(ctx.batch_flattened[output][1])
    if ctx.producer(output) is None:
        raise ModelLoadError(
            f"the model computes no layer: its output '{out_value.name}' is not a layer output"
        )
    layers = _reachable(ops.pad.fold_into_consumers(ctx, ctx.layers, output), output)
    data_values = {input_name} | {
        name
        for i in order
        for name in nodes[i].output
        if name and ctx.is_data(name) and not ctx.is_constant(name)
    }
    g.check_declared_types(graph, data_values, input_dtype)
    out_shape = shapes.get(out_value.name)
    output_shape = None
    ceil_pools = any(layer.ints.get("ceil_mode", [0])[0] for layer in layers)
    if out_shape and not ceil_pools and all(d is not None for d in out_shape[1:]):
        output_shape = tuple(int(d) for d in out_shape[1:] if d is not None)
    outputs = {layer.output for layer in layers} - ctx.merged_batch
    declared = {
        value.name: shape
        for value in [*graph.value_info, *graph.output]
        if value.name in outputs and (shape := g._shape_of(value)) is not None
    }
    return ConvertedGraph(
        input_name,
        input_shape,
        input_dtype,
        output,
        layers,
        opset,
        output_shape,
        output in ctx.merged_batch,
        declared,
    )


def check_declared_shapes(
    declared: dict[str, tuple[int | None, ...]], computed: dict[str, tuple[int, ...]]
) -> None:
    """A declared shape (value_info or graph output) of a layer output must agree with the shape the network
    computes wherever both know a dimension, when the ranks agree (a declaration of another rank is ignored, as
    onnxruntime ignores it).

    Raises
    ------
    ModelLoadError
        Naming the value and both shapes.
    """
    for name, shape in declared.items():
        sample = computed.get(name)
        if sample is None or len(shape) != len(sample) + 1:
            continue
        if any(d is not None and d > 0 and d != c for d, c in zip(shape[1:], sample, strict=True)):
            dims = ["N", *("?" if d is None else d for d in shape[1:])]
            raise ModelLoadError(
                f"value '{name}' is declared with shape {dims}, but the graph computes {['N', *sample]}"
            )


#: Exceptions of NumPy and onnx internals that a malformed node can raise inside a converter or an import-time
#: evaluation; at the dispatch point they become a ModelLoadError naming the node (dtd.load raises only dtd's).
INTERNAL_ERRORS = (
    TypeError,
    ValueError,
    IndexError,
    KeyError,
    ArithmeticError,
    AttributeError,
    RuntimeError,
)


def _convert_node(
    ctx: ConversionContext, proto: onnx.NodeProto, name: str, opset: int, index: int, fusion: fuse.Fusion
) -> None:
    """Convert (or fold) one node; every failure is a ModelLoadError or UnsupportedModelError naming it."""
    try:
        if index in fusion.replacements:
            replacement, convert = fusion.replacements[index]
            convert(ctx, Node(replacement, replacement.name, opset, index=index))
            return
        node = Node(proto, name, opset, index=index)  # decodes the attributes (a Constant's tensor) here
        if fold.try_fold(ctx, node):
            return
        converter = lookup(node.op_type, opset)
        if converter is None:
            raise UnsupportedModelError(
                f"unsupported op {node.op_type} (node '{node.name}', opset {opset}); supported ops: "
                f"{', '.join(supported_ops())}"
            )
        converter(ctx, node)
    except ModelLoadError:
        raise
    except INTERNAL_ERRORS as exc:
        raise ModelLoadError(f"{proto.op_type} '{name}': {type(exc).__name__}: {exc}") from exc


def _reachable(layers: list[LayerDraft], output: str) -> list[LayerDraft]:
    by_output = {layer.output: layer for layer in layers}
    keep: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        if name in keep or name not in by_output:
            continue
        keep.add(name)
        stack.extend(by_output[name].inputs)
    return [layer for layer in layers if layer.output in keep]


def layer_shapes(
    input_name: str, input_shape: list[int], layers: list[LayerDraft], output: str
) -> dict[str, tuple[int, ...]]:
    """Per-sample output shapes of the layers ``output`` depends on, as the C++ layers compute them.

    Builds the (float64) network of those drafts; the caller's drafts are not modified.

    Raises
    ------
    ModelLoadError, ValueError
        When a draft is invalid (the C++ side rejects it).
    """
    from .. import _core

    reachable = _reachable(layers, output)
    partial = ConvertedGraph(input_name, list(input_shape), "float64", output, reachable, 0, None, False)
    net = _core.Network64(build_spec(partial))
    by_name = {layer.name: layer.output for layer in reachable}
    return {by_name[info["name"]]: tuple(int(d) for d in info["output_shape"]) for info in net.layers}


def build_spec(converted: ConvertedGraph, limits: Limits = DEFAULT_LIMITS, *, release: bool = False) -> Any:
    """Turn drafts into a ``dtd._core.ModelSpec``.

    With ``release``, each draft's weights are dropped once they are in the spec, so that the weights are not held
    twice in float64 (for the importer's own drafts: ``converted`` cannot be built again).

    Raises
    ------
    ModelLoadError
        When the C++ side rejects a layer (the message names the layer).
    """
    from .. import _core  # the compiled module; imported late so the pure-Python parts work without it

    model = _core.ModelSpec()
    model.input_name = converted.input_name
    model.input_shape = list(converted.input_shape)
    model.output = converted.output
    for layer in converted.layers:
        spec = _core.LayerSpec()
        try:
            spec.name = layer.name
            spec.kind = getattr(_core.LayerKind, layer.kind)
            spec.inputs = list(layer.inputs)
            spec.output = layer.output
            spec.ints = {k: list(v) for k, v in layer.ints.items()}
            spec.floats = dict(layer.floats)
            spec.weights = dict(layer.weights)
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{layer.source}: invalid layer parameters: {exc}") from exc
        if release:
            layer.weights = {}
        model.append_layer(spec)  # moved, not copied
    model.max_activation = limits.max_activation
    model.max_total_activation = limits.max_total_activation
    return model
