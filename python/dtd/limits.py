"""Resource limits of :func:`dtd.load`: what a model file may ask for before it is refused.

A model of a few hundred bytes can declare an input of 10^11 elements or a folded constant of 2^28 elements; these
limits make such a file a :class:`~dtd.ModelLoadError` at load time instead of a process that runs out of memory.
The defaults admit every realistic vision and tabular model; raise them for bigger ones::

    model = dtd.load("big.onnx", limits=dtd.Limits(max_activation=2**33))
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Limits checked while a model is imported and built.

    Attributes
    ----------
    max_folded_constant : int
        Most elements of the constants the importer computes from the graph (constant folding of
        ConstantOfShape, Range, Tile, Expand, Concat, broadcasting arithmetic, ...), each one and all of them
        together, decided from the shapes before anything is allocated. Default 64 Mi (2**26) elements.
    max_activation : int
        Most elements per sample (batch axis excluded) of the model input or of any layer output, checked when
        the network is built (``ModelSpec.max_activation`` on the C++ side). Default 2**27 elements (512 MiB in
        float32 per sample: 20 times the largest activation of VGG-16 at 224x224; raise it for large 3-D volumes).
    max_total_activation : int
        Most elements per sample of the input and all layer outputs together (``ModelSpec.max_total_activation``):
        an explanation keeps every layer's output for its backward pass, so this bounds its memory, about
        ``3 * 4 * max_total_activation`` bytes per sample in float32 at the limit. Default 2**27 (the sum for
        ResNet-152 at 224x224 is about 6e7).
    max_nodes : int
        Most nodes in the graph, subgraphs included, checked before anything reads them. Default 2**17 (131,072:
        ResNet-152 has about 500, a large transformer export some 10,000).
    max_depth : int
        Most levels of graphs nested in node attributes (the main graph is level 1; If/Loop/Scan bodies add one
        each), checked without recursion before anything else. Default 8.
    """

    max_folded_constant: int = 2**26
    max_activation: int = 2**27
    max_total_activation: int = 2**27
    max_nodes: int = 2**17
    max_depth: int = 8

    def __post_init__(self) -> None:
        for name in (
            "max_folded_constant",
            "max_activation",
            "max_total_activation",
            "max_nodes",
            "max_depth",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
                raise ValueError(f"Limits.{name} must be an integer in [1, 2**63), got {value!r}")


DEFAULT_LIMITS = Limits()
