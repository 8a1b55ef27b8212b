"""`dtd.Model`: an imported network, ready for forward passes and explanations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core

__all__ = ["LayerInfo", "Model"]

_FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a model: its position, ONNX node name, kind, input value ids (0 is the model input, ``i + 1``
    the output of layer ``i``) and per-sample shapes (batch axis excluded)."""

    index: int
    name: str
    kind: str
    inputs: tuple[int, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    parameters: int
    macs: int

    @property
    def parametric(self) -> bool:
        """True for the layers DTD/LRP rules apply to (dense and conv)."""
        return self.kind in ("dense", "conv")


class Model:
    """A network imported from ONNX (see :func:`dtd.load`) or built from a :class:`dtd._core.ModelSpec`.

    The float32 network is built (and every shape checked) at construction; the float64 one on first use.
    With ``reload`` (a function returning the spec again, as :func:`dtd.load` passes), the spec is not kept:
    a loaded model holds its weights once, in the float32 network. A model is immutable and can be shared
    between threads.
    """

    def __init__(
        self,
        spec: _core.ModelSpec,
        *,
        source: str = "<spec>",
        opset: int | None = None,
        merged_batch_output: bool = False,
        reload: Callable[[], _core.ModelSpec] | None = None,
    ) -> None:
        self._spec: _core.ModelSpec | None = spec
        self._reload = reload
        self._input_name = str(spec.input_name)
        self._input_shape = tuple(int(d) for d in spec.input_shape)
        self.source = source
        self.opset = opset
        self._nets: dict[np.dtype[Any], Any] = {np.dtype(np.float32): _core.Network32(spec)}
        net = self._nets[np.dtype(np.float32)]
        self._output_shape = tuple(int(d) for d in net.output_shape)
        self._logits_shape = tuple(int(d) for d in net.logits_shape)
        self._merged_batch_output = merged_batch_output
        self._plans: dict[Any, Any] = {}  # the core Explainers of the rules used, see dtd.api._explainer
        self.layers: list[LayerInfo] = [
            LayerInfo(
                index=i,
                name=d["name"],
                kind=d["kind"],
                inputs=tuple(int(v) for v in d["inputs"]),
                input_shapes=tuple(tuple(s) for s in d["input_shapes"]),
                output_shape=tuple(d["output_shape"]),
                parameters=int(d["parameters"]),
                macs=int(d["macs"]),
            )
            for i, d in enumerate(net.layers)
        ]
        if reload is not None:
            # The float32 network holds its own copy of the weights; the float64 spec (twice their size) is
            # rebuilt from the source only if a float64 network or the spec is asked for.
            self._spec = None

    @property
    def spec(self) -> _core.ModelSpec:
        """The plain-data description the networks were built from (re-imported on demand for loaded models)."""
        if self._spec is not None:
            return self._spec
        assert self._reload is not None
        return self._reload()

    @property
    def input_name(self) -> str:
        """Name of the graph input."""
        return self._input_name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape (batch axis excluded), e.g. ``(1, 28, 28)``."""
        return self._input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of what :meth:`forward` returns."""
        return self._output_shape

    @property
    def logits_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the logits: the output, or the input of a softmax/logsoftmax head."""
        return self._logits_shape

    @property
    def num_outputs(self) -> int:
        """Number of logits per sample (the classes a target can name)."""
        return int(np.prod(self.logits_shape))

    def network(self, dtype: np.dtype[Any] | type) -> Any:
        """The C++ network for ``dtype`` (float32 or float64), built on first use."""
        net = self._nets.get(dtype)  # type: ignore[arg-type]
        if net is not None:
            return net
        dt = np.dtype(dtype)
        if dt not in _FLOAT_TYPES:
            raise ValueError(f"dtd computes in float32 or float64, got {dt}")
        if dt not in self._nets:
            self._nets[dt] = _core.Network64(self.spec)
        return self._nets[dt]

    def check_input(self, x: Any) -> np.ndarray:
        """Returns ``x`` as a float32/float64 batch ``[N, *input_shape]``; raises ValueError naming the expected
        shape or dtype otherwise."""
        arr = np.asarray(x)
        if arr.dtype not in _FLOAT_TYPES:
            raise ValueError(
                f"input has dtype {arr.dtype}, expected float32 or float64 (convert with x.astype(np.float32))"
            )
        if arr.shape[1:] == self._input_shape and arr.ndim == len(self._input_shape) + 1 and arr.shape[0] > 0:
            return arr
        expected = "[N, " + ", ".join(str(d) for d in self.input_shape) + "]"
        if arr.shape[0:1] == (0,) and arr.ndim == len(self._input_shape) + 1:
            raise ValueError(f"input batch is empty, expected {expected}")
        raise ValueError(
            f"input has shape {list(arr.shape)}, expected {expected} (model input '{self.input_name}')"
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Runs the model on a batch ``x`` of shape ``[N, *input_shape]`` (float32 or float64, any strides) and
        returns what the ONNX model returns (softmax included, if the model ends with one), in x's dtype."""
        arr = self.check_input(x)
        out: np.ndarray = self.network(arr.dtype).forward(arr)
        return self._to_onnx_shape(out)

    def _to_onnx_shape(self, out: np.ndarray) -> np.ndarray:
        # Flatten with axis >= 2 folds a per-sample axis into ONNX's leading axis; dtd keeps the batch separate.
        # Decided by the graph at import, not by the output's declared rank (which a file may contradict).
        if self._merged_batch_output and out.ndim >= 3:
            return out.reshape((-1, *out.shape[2:]))
        return out

    def summary(self) -> str:
        """A table of the layers: index, name, kind, output shape, parameters."""
        rows = [("#", "name", "kind", "output shape", "params")]
        rows.append(("", self.input_name, "input", str(list(self.input_shape)), ""))
        for layer in self.layers:
            rows.append(
                (
                    str(layer.index),
                    layer.name,
                    layer.kind,
                    str(list(layer.output_shape)),
                    f"{layer.parameters:,}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        total = sum(layer.parameters for layer in self.layers)
        lines.append(f"{len(self.layers)} layers, {total:,} parameters, source: {self.source}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"dtd.Model(source={self.source!r}, input={list(self.input_shape)}, "
            f"output={list(self.output_shape)}, layers={len(self.layers)})\n{self.summary()}"
        )
