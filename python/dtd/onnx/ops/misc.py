"""Ops removed at import (Identity, Dropout) and Constant nodes."""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register


def _pass_through(ctx: ConversionContext, node: Node) -> None:
    source = node.input(0)
    if not source:
        raise ModelLoadError(f"{node.describe()}: the input is missing")
    ctx.alias(node.outputs[0], ctx.resolve(source))


@register("Identity")
def convert_identity(ctx: ConversionContext, node: Node) -> None:
    """Identity is removed: its output becomes another name for its input."""
    _pass_through(ctx, node)


@register("Dropout")
def convert_dropout(ctx: ConversionContext, node: Node) -> None:
    """Dropout (inference mode) is removed; a used mask output or training mode is unsupported.

    Opset < 7: the ``is_test`` attribute (0: training); 7 to 11: a ``ratio`` attribute (irrelevant at inference);
    from 12: ``ratio`` and ``training_mode`` inputs.
    """
    if node.opset < 7 and not node.int_attr("is_test", 0):
        raise UnsupportedModelError(
            f"{node.describe()}: Dropout with is_test=0 (training mode) is not supported"
        )
    if len(node.outputs) > 1 and node.outputs[1] and ctx.consumers.get(node.outputs[1], 0) > 0:
        raise UnsupportedModelError(f"{node.describe()}: the mask output of Dropout is used; not supported")
    if node.input(2):
        if not ctx.is_constant(node.input(2)):
            raise UnsupportedModelError(f"{node.describe()}: training_mode must be a constant")
        if bool(np.asarray(ctx.raw_constant(node, 2, "training_mode")).reshape(-1)[0]):
            raise UnsupportedModelError(f"{node.describe()}: Dropout in training mode is not supported")
    _pass_through(ctx, node)


@register("Constant")
def convert_constant(ctx: ConversionContext, node: Node) -> None:
    """Constant nodes provide weights and shapes, like initializers."""
    attrs = node.attrs
    value: np.ndarray
    scalar_forms = sorted(a for a in attrs if a.startswith("value_"))
    if node.opset < 12 and scalar_forms:
        raise ModelLoadError(
            f"{node.describe()}: the attribute {scalar_forms[0]} exists from Constant-12 on (opset {node.opset})"
        )
    if "value" in attrs:
        value = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        value = np.asarray(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        value = np.asarray(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        value = np.asarray(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        value = np.asarray(attrs["value_ints"], dtype=np.int64)
    else:
        kinds = ", ".join(sorted(attrs)) or "none"
        raise UnsupportedModelError(f"{node.describe()}: unsupported Constant value attribute ({kinds})")
    ctx.set_constant(node.outputs[0], value)
