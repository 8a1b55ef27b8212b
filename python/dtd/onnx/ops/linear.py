"""Gemm and MatMul -> dense (``y = x @ weight.T + bias``, weight [out, in])."""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import fold_input_affine_dense


def _dense(ctx: ConversionContext, node: Node, weight: np.ndarray, bias: np.ndarray | None) -> None:
    pending = ctx.pending_affine(node, 0)
    source = ctx.resolve(node.input(0)) if pending is None else pending.source
    n_in = weight.shape[1]
    actual = ctx.dim_of(source, -1)
    if actual is not None and actual != n_in:
        raise ModelLoadError(
            f"{node.describe()}: the weight expects {n_in} input features but the input "
            f"'{node.input(0)}' has {actual} (shape {ctx.shape_of(source)})"
        )
    if pending is not None:
        folded = fold_input_affine_dense(ctx, pending, weight, bias)
        if folded is None:
            source = ctx.data_input(node, 0)
        else:
            weight, bias = folded
    weights = {"weight": weight}
    if bias is not None:
        weights["bias"] = bias
    ctx.add_layer(node, "dense", [source], weights=weights)


def _check_data_first(ctx: ConversionContext, node: Node) -> None:
    if ctx.is_constant(node.input(0)):
        raise UnsupportedModelError(
            f"{node.describe()}: the first operand is a constant; only data @ constant-weight is supported"
        )
    if ctx.is_batch_value(node.input(1)):
        ctx.raw_constant(node, 1, "weight")  # raises, saying that it depends on the batch size
    if not ctx.is_constant(node.input(1)):
        raise UnsupportedModelError(
            f"{node.describe()}: the second operand '{node.input(1)}' is not a constant; only products of "
            "data with constant weights are supported"
        )


def _gemm_bias(ctx: ConversionContext, node: Node, n_out: int) -> np.ndarray | None:
    """The bias ``beta * C`` as one value per output unit, following the opset's rules for C.

    - C is required before opset 11 (optional from Gemm-11 on).
    - Before opset 7, C broadcasts only with ``broadcast=1`` (legacy, trailing alignment); with
      ``broadcast=0`` it must have the product's full shape [M, N]: accepted where M (the batch) is 1.
    - From opset 7 on, C broadcasts unidirectionally to [M, N]: (), [1], [N], [1, 1], [1, N], and [M, 1]
      or [M, N] for a batch M of 1 (a C that varies along M would tie the bias to the row in the batch).
    """
    if not node.input(2):
        if node.opset < 11:
            raise ModelLoadError(
                f"{node.describe()}: the bias C is required before opset 11 (opset {node.opset})"
            )
        return None
    c = ctx.constant(node, 2, "bias C")
    if c.ndim > 2:
        raise ModelLoadError(f"{node.describe()}: the bias C must have rank <= 2, got shape {c.shape}")
    if node.opset < 7 and not node.int_attr("broadcast", 0) and (c.ndim != 2 or c.shape[1] != n_out):
        raise ModelLoadError(
            f"{node.describe()}: Gemm-{node.opset} without broadcast=1 needs C of the product's shape [M, "
            f"{n_out}], got shape {c.shape}"
        )
    c2 = c.reshape((1,) * (2 - c.ndim) + c.shape)
    if c2.shape[1] not in (1, n_out):
        raise ModelLoadError(
            f"{node.describe()}: the bias C of shape {c.shape} does not broadcast to one value per output unit "
            f"[{n_out}]"
        )
    if c2.shape[0] != 1:
        batch = ctx.dim_of(node.input(0), 0)
        raise (ModelLoadError if batch is not None and batch != c2.shape[0] else UnsupportedModelError)(
            f"{node.describe()}: the bias C of shape {c.shape} holds one row per sample of a batch of "
            f"{c2.shape[0]} (the input '{node.input(0)}' has shape {ctx.shape_of(node.input(0))}); only a "
            "bias shared by all samples is supported"
        )
    return node.float_attr("beta", 1.0) * np.broadcast_to(c2[0], (n_out,))


@register("Gemm")
def convert_gemm(ctx: ConversionContext, node: Node) -> None:
    """Gemm: fold alpha, beta, transB and a constant C into a dense layer; transA is unsupported."""
    if node.int_attr("transA", 0):
        raise UnsupportedModelError(
            f"{node.describe()}: Gemm with transA=1 on the data input is not supported"
        )
    _check_data_first(ctx, node)
    alpha = node.float_attr("alpha", 1.0)
    b = ctx.constant(node, 1, "weight B")
    if b.ndim != 2:
        raise ModelLoadError(f"{node.describe()}: the weight B must be 2-D, got shape {b.shape}")
    weight = b if node.int_attr("transB", 0) else b.T
    if alpha != 1.0:
        weight = alpha * weight  # a new array only when needed: a weight can be most of the file
    rank = ctx.rank_of(node.input(0))
    if rank is not None and rank != 2:
        raise ModelLoadError(
            f"{node.describe()}: Gemm's input A must be 2-D, '{node.input(0)}' has shape "
            f"{ctx.shape_of(node.input(0))}"
        )
    _dense(ctx, node, weight, _gemm_bias(ctx, node, weight.shape[0]))


@register("MatMul")
def convert_matmul(ctx: ConversionContext, node: Node) -> None:
    """MatMul(x, W) with a constant 2-D W [in, out] -> dense without bias (a following Add folds in)."""
    _check_data_first(ctx, node)
    w = ctx.constant(node, 1, "weight")
    if w.ndim != 2:
        raise UnsupportedModelError(
            f"{node.describe()}: only a 2-D constant weight is supported, got {w.shape}"
        )
    _dense(ctx, node, w.T, None)
