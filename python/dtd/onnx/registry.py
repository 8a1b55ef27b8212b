"""The converter registry: one converter function per ONNX op family.

A converter is registered with :func:`register` under one or more op types of the default ONNX domain,
optionally restricted to a range of opset versions (for ops whose attributes moved to inputs or whose
semantics changed). The importer looks a node up with :func:`lookup`; an op with no converter is reported
with :func:`supported_ops` listed in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import ConversionContext, Node

Converter = Callable[["ConversionContext", "Node"], None]


@dataclass(frozen=True)
class _Entry:
    since: int
    until: int | None
    fn: Converter


_REGISTRY: dict[str, list[_Entry]] = {}


def register(*op_types: str, since: int = 1, until: int | None = None) -> Callable[[Converter], Converter]:
    """Register a converter for one or more ONNX op types.

    Parameters
    ----------
    *op_types : str
        ONNX op types of the default domain handled by the decorated function (``"Conv"``, ...).
    since, until : int, optional
        Inclusive opset range for which this converter applies (``until=None``: no upper bound).

    Returns
    -------
    Callable
        The decorator; it returns the function unchanged.
    """
    if not op_types:
        raise ValueError("register() needs at least one op type")

    def decorator(fn: Converter) -> Converter:
        for op_type in op_types:
            entries = _REGISTRY.setdefault(op_type, [])
            for other in entries:
                lo = max(other.since, since)
                hi = min(x for x in (other.until, until, 10**9) if x is not None)
                if lo <= hi:
                    raise ValueError(f"converter for {op_type} registered twice for opsets {lo}..{hi}")
            entries.append(_Entry(since, until, fn))
        return fn

    return decorator


def lookup(op_type: str, opset: int) -> Converter | None:
    """Return the converter for ``op_type`` at ``opset``, or ``None`` when there is none."""
    for entry in _REGISTRY.get(op_type, []):
        if entry.since <= opset and (entry.until is None or opset <= entry.until):
            return entry.fn
    return None


def supported_ops() -> list[str]:
    """Return the sorted list of ONNX op types that have a converter."""
    return sorted(_REGISTRY)
