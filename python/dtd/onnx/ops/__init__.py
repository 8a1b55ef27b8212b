"""Converters, one module per op family; importing this package registers them all."""

from . import activation, arith, conv, linear, lrn, misc, norm, pad, pool, shape

__all__ = ["activation", "arith", "conv", "linear", "misc", "norm", "pool", "shape"]
__all__ += ["lrn", "pad"]
