"""State shared by the converters while one ONNX graph is translated into layer drafts.

The converters never touch the protobuf graph directly: they see a :class:`Node` (decoded attributes,
unique name) and a :class:`ConversionContext` that resolves value names (through removed ops such as
Identity, Dropout and folded BatchNormalization), hands out constant tensors as float64 arrays, and
collects :class:`LayerDraft` records. Drafts stay mutable until the end of the import so that a later
node (BatchNormalization, a constant Add or Mul) can be folded into the conv/dense layer before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelLoadError, UnsupportedModelError
from ..limits import DEFAULT_LIMITS, Limits

Shape = tuple[int | None, ...]

#: Kinds that carry a weight matrix and a bias, into which BatchNormalization and constant affine ops fold.
PARAMETRIC_KINDS = ("dense", "conv")


@dataclass
class LayerDraft:
    """A layer being built; it becomes one ``_core.LayerSpec`` at the end of the import.

    Attributes
    ----------
    name : str
        Unique layer name (the ONNX node name, or a generated one).
    kind : str
        Layer kind, a member name of ``_core.LayerKind`` (``"dense"``, ``"conv"``, ...).
    inputs : list of str
        Value names consumed (the model input or other layers' outputs).
    output : str
        Value name produced.
    ints, floats, weights : dict
        Attributes and float64 weight arrays as the C++ side expects them for this kind.
    source : str
        Description of the ONNX node it came from, for messages (``"Conv 'conv1'"``).
    """

    name: str
    kind: str
    inputs: list[str]
    output: str
    ints: dict[str, list[int]] = field(default_factory=dict)
    floats: dict[str, float] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""


@dataclass
class PendingAffine:
    """A value ``source * scale + shift`` produced by constant Mul/Div/Add/Sub or a BatchNormalization that could
    not fold into the layer before it: the conv/dense layers consuming it fold it into their weights where that is
    exact; any other consumer (or the graph output) gets an ``affine`` layer instead
    (:meth:`ConversionContext.data_input`).

    ``scale`` and ``shift`` broadcast against ``source``'s ONNX shape: they have its rank (batch axis included,
    extent 1 there) with extents 1 or the tensor's, or are scalars (shape ``()``) when the rank is unknown.
    """

    source: str
    scale: np.ndarray
    shift: np.ndarray
    node: str  # the last node of the map, described for messages
    name: str  # that node's name, for the affine layer

    @property
    def has_shift(self) -> bool:
        """False when the shift is exactly zero (a pure scaling folds even into padded convolutions)."""
        return bool(np.any(self.shift != 0))


class Node:
    """A read-only view of one ONNX node with decoded attributes and a unique name.

    Parameters
    ----------
    proto : onnx.NodeProto
        The node.
    name : str
        Unique name used for the layer and in messages.
    opset : int
        Opset version of the default domain of the model.
    index : int, optional
        Position of the node in the graph's node list.
    """

    def __init__(self, proto: onnx.NodeProto, name: str, opset: int, index: int = -1) -> None:
        self.proto = proto
        self.name = name
        self.opset = opset
        #: Position of the node in the graph's node list (-1 when unknown).
        self.index = index
        self.op_type: str = proto.op_type
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        self.attrs: dict[str, Any] = {}
        for attr in proto.attribute:
            try:
                value = onnx.helper.get_attribute_value(attr)
            except (
                Exception
            ) as exc:  # an undefined attribute type, a tensor whose data does not match its dims
                raise ModelLoadError(
                    f"{proto.op_type} '{name}': cannot decode attribute '{attr.name}': {type(exc).__name__}: {exc}"
                ) from exc
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            elif isinstance(value, onnx.TensorProto):
                if any(d < 0 for d in value.dims):
                    raise ModelLoadError(
                        f"{proto.op_type} '{name}': the tensor of attribute '{attr.name}' has dims {list(value.dims)}"
                        " with a negative entry"
                    )
                try:
                    value = numpy_helper.to_array(value)
                except Exception as exc:
                    raise ModelLoadError(
                        f"{proto.op_type} '{name}': cannot decode the tensor of attribute '{attr.name}': "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
            self.attrs[attr.name] = value

    def describe(self) -> str:
        """Return ``"<OpType> '<name>'"`` for messages."""
        return f"{self.op_type} '{self.name}'"

    def input(self, index: int) -> str:
        """Return the name of input ``index``, or ``""`` when the optional input is absent."""
        return self.inputs[index] if index < len(self.inputs) else ""

    def int_attr(self, name: str, default: int) -> int:
        """Return an integer attribute."""
        value = self.attrs.get(name, default)
        if not isinstance(value, (int, np.integer)):
            raise ModelLoadError(f"{self.describe()}: attribute '{name}' must be an integer, got {value!r}")
        return int(value)

    def float_attr(self, name: str, default: float) -> float:
        """Return a float attribute."""
        value = self.attrs.get(name, default)
        if not isinstance(value, (int, float, np.floating, np.integer)):
            raise ModelLoadError(f"{self.describe()}: attribute '{name}' must be a float, got {value!r}")
        return float(value)

    def ints_attr(self, name: str, default: list[int], length: int | None = None) -> list[int]:
        """Return a list-of-ints attribute (``default`` when absent), checking its length if given."""
        value = self.optional_ints_attr(name, length)
        return list(default) if value is None else value

    def optional_ints_attr(self, name: str, length: int | None = None) -> list[int] | None:
        """Return a list-of-ints attribute or None when absent, checking its length if given."""
        if name not in self.attrs:
            return None
        value = [int(v) for v in self.attrs[name]]
        if length is not None and len(value) != length:
            raise ModelLoadError(
                f"{self.describe()}: attribute '{name}' has {len(value)} entries {value}, expected {length}"
            )
        return value

    def str_attr(self, name: str, default: str) -> str:
        """Return a string attribute."""
        return str(self.attrs.get(name, default))


#: Element types a weight may have; each converts to float64 exactly.
_WEIGHT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


def _as_float64(value: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(value, dtype=np.float64))


def axis_vector(const: np.ndarray, rank: int, axis: int, size: int) -> np.ndarray | None:
    """Reduce a constant broadcast against a tensor to a vector along one axis.

    Parameters
    ----------
    const : np.ndarray
        The constant operand (NumPy broadcasting against the tensor, batch axis included).
    rank : int
        Rank of the tensor, batch axis included.
    axis : int
        The axis the constant may vary along (non-negative).
    size : int
        Length of the tensor along ``axis``.

    Returns
    -------
    np.ndarray or None
        A float64 vector of length ``size``, or None when the constant varies along another axis (or would
        change the tensor's shape by broadcasting).
    """
    const = np.asarray(const, dtype=np.float64)
    if const.ndim > rank:
        return None
    full = const.reshape((1,) * (rank - const.ndim) + const.shape)
    for ax, extent in enumerate(full.shape):
        if ax != axis and extent != 1:
            return None
    extent = full.shape[axis]
    if extent not in (1, size):
        return None
    return _as_float64(np.broadcast_to(full.reshape(-1), (size,)))


class ConversionContext:
    """Everything a converter needs while translating one graph.

    Parameters
    ----------
    opset : int
        Default-domain opset of the model.
    input_name : str
        Name of the graph's (single) data input.
    constants : dict
        Initializers by name (any dtype; converted to float64 on request).
    shapes : dict
        Inferred shapes by value name (batch axis included; ``None`` for unknown dims).
    static_alias : dict
        Output -> input of the Identity/Dropout nodes, used to count consumers.
    consumers : dict
        Number of consumers of each statically resolved value (the graph output counts as one).
    graph_output : str
        Statically resolved name of the graph output.
    model : onnx.ModelProto, optional
        The model being converted (not modified); shape inference is rerun on a copy of it once a computed
        Reshape target has been folded to a constant (see :mod:`dtd.onnx.fold`).
    reserved_names : set of str, optional
        Names no generated layer name may take (the graph's node names).
    limits : dtd.Limits, optional
        Resource limits of the import (:data:`dtd.limits.DEFAULT_LIMITS`).
    """

    def __init__(
        self,
        opset: int,
        input_name: str,
        constants: dict[str, np.ndarray],
        shapes: dict[str, Shape],
        static_alias: dict[str, str],
        consumers: dict[str, int],
        graph_output: str,
        model: onnx.ModelProto | None = None,
        reserved_names: set[str] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        #: Resource limits of this import (the most elements constant folding may produce).
        self.limits = limits
        #: Elements of all constants folded so far (counted against ``limits.max_folded_constant``).
        self.folded_elements = 0
        self.opset = opset
        self.input_name = input_name
        self.constants = constants
        self.shapes = shapes
        self.static_alias = static_alias
        self.consumers = consumers
        self.graph_output = graph_output
        self.layers: list[LayerDraft] = []
        self._producer: dict[str, LayerDraft] = {}
        self._alias: dict[str, str] = {}
        self._scaled: dict[str, PendingAffine] = {}
        self.model = model
        #: A copy of ``model`` with the computed Reshape targets folded so far, for shape inference.
        self.shape_model: onnx.ModelProto | None = None
        #: Values computed from the batch size (shape arithmetic): their values for the two sentinel batch
        #: sizes of :mod:`dtd.onnx.fold`. Batch-independent results of that arithmetic go to ``constants``.
        self.batch_values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        #: Layer outputs whose ONNX leading axis is not the batch axis alone (after Flatten with axis >= 2).
        self.merged_batch: set[str] = set()
        #: Values that a Reshape to one axis made of the whole batch (``mean.view(-1)``), awaiting a Gather that
        #: takes every sample's values back from its own sample (PyTorch's ``as_strided``): value -> (the
        #: Reshape's source, its refusal for any other consumer).
        self.batch_flattened: dict[str, tuple[str, str]] = {}
        #: Shapes of layer outputs computed by dtd's layers (:meth:`layer_shape`), batch axis included.
        self._layer_shapes: dict[str, Shape] = {}
        self._used_names: set[str] = set(reserved_names or ())
        self._next_suffix: dict[str, int] = {}

    # -- names -------------------------------------------------------------------------------------------
    def static_resolve(self, name: str) -> str:
        """Follow Identity/Dropout aliases only (the graph's structure, before any folding)."""
        seen = 0
        while name in self.static_alias and seen <= len(self.static_alias):
            name = self.static_alias[name]
            seen += 1
        return name

    def resolve(self, name: str) -> str:
        """Follow every alias: removed ops and folded ops (BatchNormalization, constant Add/Mul)."""
        seen = 0
        while name in self._alias and seen <= len(self._alias):
            name = self._alias[name]
            seen += 1
        return name

    def alias(self, output: str, target: str) -> None:
        """Make value ``output`` another name for value ``target`` (a removed or folded op)."""
        if output and output != target:
            self._alias[output] = target

    def is_graph_output(self, name: str) -> bool:
        """True when ``name`` is (an alias of) the graph output."""
        return self.static_resolve(name) == self.graph_output

    def shape_of(self, name: str) -> Shape | None:
        """Shape of a value (batch included), following aliases; None when unknown.

        From ONNX shape inference; where that leaves a data value's per-sample shape (partly) unknown (after a
        Slice or Reshape whose parameters were computed at import, which inference cannot see), the shape dtd's
        own layers give it: the network built from the drafts so far (:meth:`layer_shape`).
        """
        shape = None
        for candidate in (name, self.static_resolve(name), self.resolve(name)):
            if candidate in self.shapes:
                shape = self.shapes[candidate]
                break
        if shape is None or any(d is None for d in shape[1:]):
            computed = self.layer_shape(name)
            if computed is not None:
                return computed
        return shape

    def layer_shape(self, name: str) -> Shape | None:
        """The shape of data value ``name`` as dtd's layers compute it (batch axis as the input's), or None.

        Builds the C++ network of the drafts that ``name`` depends on (once per new value: every layer output
        of that network is remembered). None for the model input, constants, outputs whose leading ONNX axis
        merges the batch with other axes, and drafts the C++ side rejects (their converter reports it).
        """
        resolved = self.resolve(name)
        pending = self._scaled.get(resolved)
        if pending is not None:
            resolved = pending.source  # a pending affine map keeps the shape
        if resolved in self._layer_shapes:
            return self._layer_shapes[resolved]
        if resolved not in self._producer or resolved in self.merged_batch:
            return None
        input_shape = self.shapes.get(self.input_name)
        if input_shape is None or any(d is None for d in input_shape[1:]):
            return None
        from .importer import layer_shapes  # late: the importer imports this module

        try:
            samples = layer_shapes(
                self.input_name, [int(d) for d in input_shape[1:] if d is not None], self.layers, resolved
            )
        except (ValueError, ModelLoadError, ImportError):
            return None
        for output, sample in samples.items():
            if output not in self.merged_batch:
                self._layer_shapes[output] = (input_shape[0], *sample)
        return self._layer_shapes.get(resolved)

    def rank_of(self, name: str) -> int | None:
        """Inferred rank of a value (batch included), or None."""
        shape = self.shape_of(name)
        return None if shape is None else len(shape)

    def dim_of(self, name: str, axis: int) -> int | None:
        """One inferred dimension of a value, or None."""
        shape = self.shape_of(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]

    # -- constants ---------------------------------------------------------------------------------------
    def is_constant(self, name: str) -> bool:
        """True when ``name`` is an initializer or the output of a Constant node (through aliases)."""
        return bool(name) and self.resolve(name) in self.constants

    def set_constant(self, name: str, value: np.ndarray) -> None:
        """Record a constant value (from a Constant node)."""
        self.constants[name] = np.asarray(value)

    def is_batch_value(self, name: str) -> bool:
        """True when ``name`` is a shape value computed from the (symbolic) batch size."""
        return bool(name) and self.resolve(name) in self.batch_values

    def value_pair(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The value of a constant or batch-dependent value for the two sentinel batch sizes, else None.

        For a constant both entries are the same array.
        """
        resolved = self.resolve(name)
        if resolved in self.constants:
            value = self.constants[resolved]
            return value, value
        return self.batch_values.get(resolved)

    def set_value_pair(self, name: str, first: np.ndarray, second: np.ndarray) -> None:
        """Record a folded value: a constant when both sentinel evaluations agree, else a batch value."""
        first, second = np.asarray(first), np.asarray(second)
        if first is second or (
            first.dtype == second.dtype and first.shape == second.shape and np.array_equal(first, second)
        ):
            self.constants[name] = first
        else:
            self.batch_values[name] = (first, second)

    def is_data(self, name: str) -> bool:
        """True when ``name`` is the model input, a layer output or a pending constant scaling of one."""
        resolved = self.resolve(name)
        return resolved == self.input_name or resolved in self._producer or resolved in self._scaled

    def sample_shape(self, name: str) -> tuple[int, ...] | None:
        """Per-sample shape (batch axis removed) of a data value from shape inference, or None if unknown."""
        shape = self.shape_of(name)
        if shape is None or len(shape) < 1 or any(d is None for d in shape[1:]):
            return None
        return tuple(int(d) for d in shape[1:] if d is not None)

    def raw_constant(self, node: Node, index: int, what: str) -> np.ndarray:
        """Return input ``index`` of ``node`` as a constant array in its own dtype.

        Raises
        ------
        ModelLoadError
            When the input is absent or is not a constant (for example a missing initializer).
        """
        name = node.input(index)
        if not name:
            raise ModelLoadError(f"{node.describe()}: the {what} (input {index}) is missing")
        resolved = self.resolve(name)
        if resolved in self.batch_values:
            raise UnsupportedModelError(
                f"{node.describe()}: the {what} '{name}' (input {index}) depends on the batch size; only "
                "batch-independent constants are supported there"
            )
        if resolved not in self.constants:
            raise UnsupportedModelError(
                f"{node.describe()}: the {what} '{name}' (input {index}) must be a constant (an initializer "
                "or a Constant node); computed values are not supported there"
            )
        return self.constants[resolved]

    def constant(self, node: Node, index: int, what: str) -> np.ndarray:
        """Like :meth:`raw_constant`, converted to a C-contiguous float64 array: a weight, which must be of a
        float type (float16, bfloat16, float32, float64: converted exactly).

        Raises
        ------
        ModelLoadError
            For a weight of another element type (integer, bool, string, complex, float8): ONNX requires the
            weights of a float op to have the data's float type, and dtd does not guess what such numbers mean.
        """
        value = np.asarray(self.raw_constant(node, index, what))
        if value.dtype.name not in _WEIGHT_DTYPES:
            raise ModelLoadError(
                f"{node.describe()}: the {what} '{node.input(index)}' (input {index}) has element type "
                f"{value.dtype.name}; weights must be float16, bfloat16, float32 or float64"
            )
        return _as_float64(value)

    def optional_constant(self, node: Node, index: int, what: str) -> np.ndarray | None:
        """Return an optional constant input as float64, or None when the input is absent."""
        if not node.input(index):
            return None
        return self.constant(node, index, what)

    # -- data values -------------------------------------------------------------------------------------
    def _check_data(self, node: Node, name: str, index: int) -> str:
        if not name:
            raise ModelLoadError(f"{node.describe()}: data input {index} is missing")
        resolved = self.resolve(name)
        if resolved in self.constants:
            raise UnsupportedModelError(
                f"{node.describe()}: input {index} '{name}' is a constant; a data tensor is expected there"
            )
        if resolved in self.batch_values:
            raise UnsupportedModelError(
                f"{node.describe()}: input {index} '{name}' is a value computed from the batch size (shape "
                "arithmetic); it is only supported as the target shape of a Reshape"
            )
        if resolved in self.batch_flattened:
            raise UnsupportedModelError(self.batch_flattened[resolved][1])
        if resolved != self.input_name and resolved not in self._producer and resolved not in self._scaled:
            raise ModelLoadError(f"{node.describe()}: input {index} '{name}' is not produced by any layer")
        return resolved

    def data_input(self, node: Node, index: int = 0) -> str:
        """Return the resolved name of a data input (not a constant). A pending constant affine map on it becomes
        an ``affine`` layer here (its consumer cannot fold it)."""
        resolved = self._check_data(node, node.input(index), index)
        if resolved in self._scaled:
            self.materialize(resolved)
        return resolved

    def pending_affine(self, node: Node, index: int = 0) -> PendingAffine | None:
        """The pending constant affine map on data input ``index``, for a consumer that may fold it into its
        weights; None for a plain value. A consumer that does not fold it must use :meth:`data_input`."""
        resolved = self._check_data(node, node.input(index), index)
        return self._scaled.get(resolved)

    def add_pending_affine(
        self, node: Node, index: int, scale: np.ndarray | float, shift: np.ndarray | float
    ) -> None:
        """Record ``node``'s output as ``input[index] * scale + shift`` (constants in ONNX broadcasting against
        the input), composed with a pending map on that input.

        Raises
        ------
        UnsupportedModelError
            When a constant would change the tensor's shape by broadcasting (or its rank is unknown and the
            constant is not a scalar).
        """
        resolved = self._check_data(node, node.input(index), index)
        pending = self._scaled.get(resolved)
        source = resolved if pending is None else pending.source
        shape = self.shape_of(source)
        s = self._aligned(node, np.asarray(scale, dtype=np.float64), shape, "factor")
        t = self._aligned(node, np.asarray(shift, dtype=np.float64), shape, "offset")
        if pending is not None:
            s, t = pending.scale * s, pending.shift * s + t
        self._scaled[node.outputs[0]] = PendingAffine(
            source, _as_float64(s), _as_float64(t), node.describe(), node.name
        )

    def _aligned(self, node: Node, const: np.ndarray, shape: Shape | None, what: str) -> np.ndarray:
        if shape is None:
            if const.size != 1:
                raise UnsupportedModelError(
                    f"{node.describe()}: the constant {what} of shape {list(const.shape)} needs the data "
                    "tensor's shape, which shape inference does not know; only a scalar is supported there"
                )
            return const.reshape(())
        rank = len(shape)
        full = const.reshape((1,) * max(rank - const.ndim, 0) + const.shape) if const.ndim <= rank else None
        ok = full is not None and full.ndim == rank
        if ok and full is not None:
            ok = full.shape[0] == 1 and all(
                e == 1 or e == d for e, d in zip(full.shape[1:], shape[1:], strict=True)
            )
        if not ok or full is None:
            raise UnsupportedModelError(
                f"{node.describe()}: the constant {what} of shape {list(const.shape)} would change the shape of "
                f"the data tensor {['N', *shape[1:]]} by broadcasting; only constants that broadcast to it "
                "(scalars, per-channel or per-element values) are supported"
            )
        return full

    def materialize(self, name: str) -> str:
        """Turn the pending affine map producing ``name`` into an ``affine`` layer; return its output."""
        pending = self._scaled.pop(name)
        scale, shift = pending.scale, pending.shift

        # Drop the batch axis (extent 1): the layer's constants broadcast against one sample.
        def per_sample(a: np.ndarray) -> np.ndarray:
            return a.reshape(a.shape[1:]) if a.ndim > 1 else a.reshape(-1)

        layer = LayerDraft(
            name=pending.name,
            kind="affine",
            inputs=[pending.source],
            output=name,
            weights={"scale": _as_float64(per_sample(scale)), "shift": _as_float64(per_sample(shift))},
            source=pending.node,
        )
        self._used_names.add(layer.name)
        self.layers.append(layer)
        self._producer[name] = layer
        if pending.source in self.merged_batch:
            self.merged_batch.add(name)
        return name

    def pending_origin(self, name: str) -> str | None:
        """Describe the node whose output ``name`` still carries a pending affine map, or None."""
        pending = self._scaled.get(self.resolve(name))
        return None if pending is None else pending.node

    # -- layers ------------------------------------------------------------------------------------------
    def producer(self, name: str) -> LayerDraft | None:
        """The layer producing value ``name`` (after aliases), or None (model input, constant)."""
        return self._producer.get(self.resolve(name))

    def foldable_producer(self, node: Node, index: int = 0) -> LayerDraft | None:
        """Return the conv/dense layer producing input ``index`` when ``node`` is its only consumer."""
        name = node.input(index)
        if not name or self.consumers.get(self.static_resolve(name), 0) != 1:
            return None
        layer = self.producer(name)
        if layer is None or layer.kind not in PARAMETRIC_KINDS or layer.output != self.resolve(name):
            return None
        return layer

    def add_layer(
        self,
        node: Node,
        kind: str,
        inputs: list[str],
        ints: dict[str, list[int]] | None = None,
        floats: dict[str, float] | None = None,
        weights: dict[str, np.ndarray] | None = None,
        output: str | None = None,
        name: str | None = None,
    ) -> LayerDraft:
        """Append a layer producing ``node``'s first output and return its draft.

        ``output`` and ``name`` override the produced value and the layer name (for a node that becomes
        several layers; take the name from :meth:`unique_name`).
        """
        if output is None:
            output = node.outputs[0] if node.outputs else ""
        if not output:
            raise ModelLoadError(f"{node.describe()}: the node has no output")
        layer_name = node.name if name is None else name
        self._used_names.add(layer_name)
        layer = LayerDraft(
            name=layer_name,
            kind=kind,
            inputs=list(inputs),
            output=output,
            ints={k: [int(v) for v in vals] for k, vals in (ints or {}).items()},
            floats={k: float(v) for k, v in (floats or {}).items()},
            weights={k: _as_float64(v) for k, v in (weights or {}).items()},
            source=node.describe(),
        )
        self.layers.append(layer)
        self._producer[output] = layer
        if (kind == "flatten" and layer.ints["axis"][0] >= 2) or any(i in self.merged_batch for i in inputs):
            self.merged_batch.add(output)
        return layer

    def unique_name(self, base: str) -> str:
        """A layer/value name derived from ``base`` that no node, layer or value uses yet."""
        taken = lambda n: n in self._used_names or n in self.shapes or n in self.constants  # noqa: E731
        name, k = base, self._next_suffix.get(base, 1)
        if taken(name):
            name = f"{base}_{k}"
            while taken(name):
                k += 1
                name = f"{base}_{k}"
            self._next_suffix[base] = k + 1
        self._used_names.add(name)
        return name
