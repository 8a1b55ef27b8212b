"""Seed models of the fuzz harness (tools/fuzz.py), all built in code or taken from committed test data.

Every seed is a :class:`Seed`: the serialized model and, for a model with external data, the files it names
(written next to it in a temporary folder and loaded by path). The set is deterministic.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import relnets as rn  # noqa: E402
from builders import GraphBuilder  # noqa: E402

#: Committed exports used as seeds (small ones: the harness runs each case several times).
TORCH_EXPORTS = (
    "resnet_tiny_op13_dyn.onnx",
    "reshape_shape_cnn_op17_dyn.onnx",  # a Shape -> Gather -> Concat -> Reshape subgraph
    "permute_head_op13_static.onnx",
)
ZOO_MINIS = (
    "mlp_leakyrelu_legacy_op13.onnx",
    "conv1d_dynamo_op20.onnx",
    "conv3d_legacy_op13.onnx",
    "hardtanh_net_legacy_op17.onnx",
)
EXTERNAL_DATA_FILE = "weights.bin"


@dataclasses.dataclass(frozen=True)
class Seed:
    """A valid seed model: its bytes, and the external data files it refers to (name -> bytes)."""

    name: str
    data: bytes
    files: tuple[tuple[str, bytes], ...] = ()


def _declare_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """GraphBuilder leaves the output's shape open; declare the inferred one (the checker requires a shape)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    model.graph.output[0].CopyFrom(inferred.graph.output[0])
    return model


def _bytes(model: onnx.ModelProto) -> bytes:
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _nd_net(seed: int, rank: int) -> rn.Net:
    """Conv / pool geometry over 1 or 3 spatial axes (strides, pads, dilations, groups, ceil_mode)."""
    shape = {1: (2, 17), 3: (2, 6, 7, 5)}[rank]
    b = rn.Builder(f"nd{rank}", shape, np.random.default_rng(seed))
    b.conv(4, k=3, strides=(2,) * rank, pads=(1,) * rank + (0,) * rank, dilations=(1,) * rank)
    b.relu()
    b.conv(4, k=2, dilations=(2,) * rank, pads=(1,) * (2 * rank), group=2)
    b.relu()
    b.maxpool(k=2, strides=(1,) * rank, ceil_mode=True)
    b.avgpool(k=2, strides=(1,) * rank, pads=(1,) * rank + (0,) * rank, count_include_pad=1)
    b.flatten()
    b.dense(3)
    return b.net


def _activations_se(seed: int) -> rn.Net:
    """Activations (LeakyRelu, Clip, Tanh, SiLU, PRelu) and a squeeze-and-excitation gate."""
    b = rn.Builder("act_se", (3, 6, 6), np.random.default_rng(seed))
    b.conv(6)
    b.activation("LeakyRelu", alpha=0.1)
    b.conv(6)
    b.activation("Clip", min=0.0, max=6.0)
    b.conv(6)
    signal = b.activation("Silu")
    b.globalavgpool()
    b.conv(3, k=1, pads=(0, 0, 0, 0))
    b.relu()
    b.conv(6, k=1, pads=(0, 0, 0, 0))
    b.activation("Sigmoid")
    b.gate(signal, b.cur)
    b.activation("PRelu", slope=np.full((6, 1, 1), 0.25))
    b.conv(4, strides=(2, 2))
    b.activation("Tanh")
    b.flatten()
    b.dense(5)
    return b.net


def _transpose_slice_pad(seed: int) -> onnx.ModelProto:
    b = GraphBuilder((3, 6, 7), seed=seed)
    pads = b.const(np.array([0, 0, 1, 2, 0, 0, 2, 1], dtype=np.int64))
    y = b.node("Pad", ["x", pads], mode="constant")
    y = b.relu(b.conv(y, 4, pads=[1, 1, 1, 1]))
    starts = b.const(np.array([1, 0], dtype=np.int64))
    ends = b.const(np.array([8, 9], dtype=np.int64))
    axes = b.const(np.array([2, 3], dtype=np.int64))
    steps = b.const(np.array([1, 2], dtype=np.int64))
    y = b.node("Slice", [y, starts, ends, axes, steps])
    y = b.node("Transpose", [y], perm=[0, 1, 3, 2])
    y = b.node("Flatten", [y], axis=1)
    return _declare_output(b.build(b.gemm(b.relu(b.gemm(y, 8)), 4)))


def _external(seed: int) -> Seed:
    model = rn.to_onnx(rn.mlp(seed, hidden=(24, 16)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx.save_model(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_FILE,
            size_threshold=0,
        )
        onnx.checker.check_model(path, full_check=True)
        data = Path(path).read_bytes()
        weights = Path(tmp, EXTERNAL_DATA_FILE).read_bytes()
    return Seed("mlp_external", data, ((EXTERNAL_DATA_FILE, weights),))


def seed_models() -> dict[str, Seed]:
    """All seeds by name, in a fixed order."""
    seeds: dict[str, Seed] = {}

    def add(name: str, model: onnx.ModelProto) -> None:
        seeds[name] = Seed(name, _bytes(model))

    add("mlp", rn.to_onnx(rn.mlp(1)))
    add("mlp_logsoftmax", rn.to_onnx(rn.mlp(2, input_shape=(1, 5, 4), softmax="log")))
    add("resnet_bn", rn.to_onnx(rn.resnet(3)))
    add("concat", rn.to_onnx(rn.concat_net(4)))
    for i, geometry in enumerate(rn.CNN_GEOMETRIES):
        add(f"cnn_{geometry}", rn.to_onnx(rn.cnn(10 + i, geometry)))
    add("conv1d", rn.to_onnx(_nd_net(5, 1)))
    add("conv3d", rn.to_onnx(_nd_net(6, 3)))
    add("act_se", rn.to_onnx(_activations_se(7)))
    add("transpose_slice_pad", _transpose_slice_pad(8))
    for name in TORCH_EXPORTS:
        seeds[f"torch_{Path(name).stem}"] = Seed(
            f"torch_{Path(name).stem}", (TESTS / "data" / "torch_exports" / name).read_bytes()
        )
    for name in ZOO_MINIS:
        seeds[f"zoo_{Path(name).stem}"] = Seed(
            f"zoo_{Path(name).stem}", (TESTS / "data" / "zoo_minis" / name).read_bytes()
        )
    ext = _external(9)
    seeds[ext.name] = ext
    return seeds


def tiny_model(hidden: int = 6) -> onnx.ModelProto:
    """A 2-layer MLP on [N, 4] (the harness's own tests)."""
    b = GraphBuilder((4,), seed=1)
    return _declare_output(b.build(b.gemm(b.relu(b.gemm("x", hidden)), 3)))
