"""Pad -> pad layer, folded into the Conv / AveragePool / MaxPool after it where that is exact.

Opset < 11: ``pads`` and ``value`` attributes; from 11: ``pads`` and the optional ``constant_value`` inputs; from
18: the optional ``axes`` input; mode ``wrap`` from 19. The batch axis cannot be padded. A constant Pad whose only
consumer is a Conv (value 0), an AveragePool with ``count_include_pad=1`` (value 0) or a MaxPool (value -inf), none
of them with ``auto_pad`` SAME_* or ``ceil_mode=1``, moves into that layer's pads (:func:`fold_into_consumers`).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, LayerDraft, Node
from ..registry import register
from ._common import AUTO_PAD

#: ONNX mode strings -> the C++ PadMode codes, and the opset each appeared in.
_MODES = {"constant": (0, 1), "reflect": (1, 1), "edge": (2, 1), "wrap": (3, 19)}


@register("Pad")
def convert_pad(ctx: ConversionContext, node: Node) -> None:
    """Pad of a data tensor (per-sample axes only; negative pads crop)."""
    source = ctx.data_input(node, 0)
    mode_name = node.str_attr("mode", "constant")
    if mode_name not in _MODES or node.opset < _MODES[mode_name][1]:
        raise UnsupportedModelError(
            f"{node.describe()}: Pad mode '{mode_name}' is not supported at opset {node.opset} (supported: "
            f"{', '.join(m for m, (_, since) in _MODES.items() if node.opset >= since)})"
        )
    if node.opset < 11:
        pads = node.ints_attr("pads", [])
        value = node.float_attr("value", 0.0)
        axes = None
    else:
        pads = [int(v) for v in np.asarray(ctx.raw_constant(node, 1, "pads")).reshape(-1)]
        value = 0.0
        if node.input(2):
            const = np.asarray(ctx.raw_constant(node, 2, "constant_value")).reshape(-1)
            if const.size != 1:
                raise ModelLoadError(
                    f"{node.describe()}: constant_value must be a scalar, got {const.size} values"
                )
            value = float(const[0])
        axes = None
        if node.opset >= 18 and node.input(3):
            axes = [int(v) for v in np.asarray(ctx.raw_constant(node, 3, "axes")).reshape(-1)]
    rank = ctx.rank_of(source)
    if rank is None:
        raise UnsupportedModelError(
            f"{node.describe()}: the rank of '{node.input(0)}' is not known at import"
        )
    if axes is not None:
        if len(pads) != 2 * len(axes):
            raise ModelLoadError(f"{node.describe()}: {len(pads)} pads for the {len(axes)} axes {axes}")
        full = [0] * (2 * rank)
        for k, axis in enumerate(axes):
            if not -rank <= axis < rank:
                raise ModelLoadError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
            full[axis % rank] = pads[k]
            full[axis % rank + rank] = pads[k + len(axes)]
        pads = full
    if len(pads) != 2 * rank:
        raise ModelLoadError(
            f"{node.describe()}: {len(pads)} pads for a rank-{rank} input (expected {2 * rank})"
        )
    if pads[0] or pads[rank]:
        raise UnsupportedModelError(
            f"{node.describe()}: pads {pads} pad or crop the batch axis; only per-sample axes can be padded"
        )
    shape = ctx.shape_of(source)
    if shape is not None:
        extents = [None if d is None else d + pads[a] + pads[rank + a] for a, d in enumerate(shape)]
        shown = ["N", *shape[1:]]
        if any(e is not None and e < 0 for e in extents[1:]):
            raise ModelLoadError(
                f"{node.describe()}: pads {pads} crop more than the input '{node.input(0)}' (shape {shown}) has"
            )
        if any(e == 0 for e in extents[1:]):
            raise UnsupportedModelError(
                f"{node.describe()}: pads {pads} crop an axis of '{node.input(0)}' (shape {shown}) to length 0; "
                "empty tensors are not supported"
            )
    if mode_name != "constant":
        value = 0.0
    if math.isnan(value):
        raise UnsupportedModelError(f"{node.describe()}: a NaN pad value is not supported")
    if not any(pads):
        ctx.alias(node.outputs[0], source)
        return
    ctx.add_layer(
        node, "pad", [source], ints={"pads": pads, "mode": [_MODES[mode_name][0]]}, floats={"value": value}
    )


def _foldable_into(pad: LayerDraft, consumer: LayerDraft) -> bool:
    if pad.ints["mode"][0] != 0 or any(p < 0 for p in pad.ints["pads"]):
        return False
    rank = len(pad.ints["pads"]) // 2
    pads = pad.ints["pads"]
    # Only the spatial axes (2 ... rank-1 of NCHW) may be padded: the conv/pool pads cover those alone.
    if rank != 2 + len(consumer.ints.get("pads", [])) // 2 or pads[1] or pads[rank + 1]:
        return False
    if consumer.ints.get("auto_pad", [0])[0] not in (AUTO_PAD["NOTSET"], AUTO_PAD["VALID"]):
        return False
    if consumer.ints.get("ceil_mode", [0])[0]:
        return False
    value = pad.floats["value"]
    if consumer.kind == "conv":
        return value == 0.0
    if consumer.kind == "avgpool":
        return value == 0.0 and bool(consumer.ints["count_include_pad"][0])
    if consumer.kind == "maxpool":
        return value == -math.inf
    return False


def fold_into_consumers(ctx: ConversionContext, layers: list[LayerDraft], output: str) -> list[LayerDraft]:
    """Move constant pads into the Conv/AveragePool/MaxPool that is their only consumer (exact there).

    Returns the layers without the folded pad layers.
    """
    users: dict[str, list[LayerDraft]] = {}
    for layer in layers:
        for name in layer.inputs:
            users.setdefault(name, []).append(layer)
    folded: set[int] = set()
    for pad in layers:
        if pad.kind != "pad" or pad.output == output or len(users.get(pad.output, [])) != 1:
            continue
        consumer = users[pad.output][0]
        if not _foldable_into(pad, consumer):
            continue
        rank = len(pad.ints["pads"]) // 2
        begin, end = pad.ints["pads"][2:rank], pad.ints["pads"][rank + 2 :]
        own = (
            consumer.ints["pads"]
            if consumer.ints["auto_pad"][0] == AUTO_PAD["NOTSET"]
            else [0] * (2 * rank - 4)
        )
        spatial = rank - 2
        consumer.ints["pads"] = [own[i] + begin[i] for i in range(spatial)] + [
            own[spatial + i] + end[i] for i in range(spatial)
        ]
        consumer.ints["auto_pad"] = [AUTO_PAD["NOTSET"]]
        consumer.inputs = [pad.inputs[0] if name == pad.output else name for name in consumer.inputs]
        consumer.source += f" (with {pad.source} folded in)"
        folded.add(id(pad))
    return [layer for layer in layers if id(layer) not in folded]
