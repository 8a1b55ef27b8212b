"""Resource limits and checked shape arithmetic (issue 10, defects 1, 2, 3, 4): a tiny file must cost an error
message at load, not the process (a crash, an overflow, gigabytes of memory)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dtd
from builders import GraphBuilder
from dtd import Limits, ModelLoadError

#: Peak bytes that Python-side allocations (NumPy included) may reach while a bomb is refused.
_PEAK = 64 << 20


def _model(nodes, inputs, output, initializers=(), opset=13):
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _x(*sample):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *sample])


def _reshape_by(const_nodes, shape_value: str):
    """x [N, 4] -> Reshape(x, <shape computed by const_nodes, ending in shape_value>)."""
    return _model(
        [*const_nodes, helper.make_node("Reshape", ["x", shape_value], ["y"], name="reshape")], [_x(4)], "y"
    )


def _refused_cheaply(model, *patterns: str, limits: Limits | None = None) -> str:
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadError) as info:
            dtd.load(model, limits=limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    for pattern in patterns:
        assert pattern in message, message
    assert peak < _PEAK, f"{peak / 2**20:.0f} MiB allocated before refusing: {message}"
    return message


def _int64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def test_constant_of_shape_bomb() -> None:
    nodes = [
        helper.make_node("Constant", [], ["s"], value=_int64("s", [16384, 16384])),
        helper.make_node("ConstantOfShape", ["s"], ["big"], name="bomb"),
        helper.make_node("Shape", ["big"], ["t"]),
    ]
    _refused_cheaply(
        _reshape_by(nodes, "t"), "ConstantOfShape 'bomb'", "268435456 elements", "max_folded_constant"
    )


def test_tile_and_expand_bombs() -> None:
    base = [helper.make_node("Constant", [], ["v"], value=_int64("v", [[1, 2]]))]
    tile = [
        *base,
        helper.make_node("Constant", [], ["r"], value=_int64("r", [1 << 14, 1 << 14])),
        helper.make_node("Tile", ["v", "r"], ["big"], name="tile"),
        helper.make_node("Shape", ["big"], ["t"]),
    ]
    _refused_cheaply(_reshape_by(tile, "t"), "Tile 'tile'")
    expand = [
        *base,
        helper.make_node("Constant", [], ["r"], value=_int64("r", [1 << 15, 1 << 14])),
        helper.make_node("Expand", ["v", "r"], ["big"], name="expand"),
        helper.make_node("Shape", ["big"], ["t"]),
    ]
    _refused_cheaply(_reshape_by(expand, "t"), "Expand 'expand'")


def test_range_bomb() -> None:
    nodes = [
        helper.make_node("Constant", [], ["a"], value=_int64("a", 0)),
        helper.make_node("Constant", [], ["b"], value=_int64("b", 1 << 27)),
        helper.make_node("Constant", [], ["d"], value=_int64("d", 1)),
        helper.make_node("Range", ["a", "b", "d"], ["big"], name="range"),
        helper.make_node("Shape", ["big"], ["t"]),
    ]
    _refused_cheaply(_reshape_by(nodes, "t"), "Range 'range'", str(1 << 27))


def test_concat_doublings() -> None:
    nodes = [helper.make_node("Constant", [], ["c0"], value=_int64("c0", [1.0] * 16))]
    for k in range(30):
        nodes.append(helper.make_node("Concat", [f"c{k}", f"c{k}"], [f"c{k + 1}"], name=f"cat{k}", axis=0))
    nodes.append(helper.make_node("Shape", ["c30"], ["t"]))
    # Every intermediate stays alive: the limit holds for all folded constants together.
    _refused_cheaply(_reshape_by(nodes, "t"), "Concat 'cat", limits=Limits(max_folded_constant=2**20))


def test_all_folded_constants_together() -> None:
    """Many constants, each under the limit, may not add up to more than it either."""
    nodes = [helper.make_node("Constant", [], ["s"], value=_int64("s", [1 << 18]))]
    nodes += [helper.make_node("ConstantOfShape", ["s"], [f"c{k}"], name=f"fill{k}") for k in range(8)]
    nodes += [
        helper.make_node("Sum", [f"c{k}" for k in range(8)], ["total"]),
        helper.make_node("Shape", ["total"], ["t"]),
    ]
    message = _refused_cheaply(
        _reshape_by(nodes, "t"), "ConstantOfShape 'fill4'", limits=Limits(max_folded_constant=2**20)
    )
    assert "folded before it" in message


def test_broadcast_bomb() -> None:
    nodes = [
        helper.make_node("ConstantOfShape", ["s1"], ["a"], name="col"),
        helper.make_node("ConstantOfShape", ["s2"], ["b"], name="row"),
        helper.make_node("Add", ["a", "b"], ["big"], name="outer"),
        helper.make_node("Shape", ["big"], ["t"]),
    ]
    model = _reshape_by(nodes, "t")
    model.graph.initializer.extend([_int64("s1", [1 << 14, 1]), _int64("s2", [1, 1 << 14])])
    _refused_cheaply(model, "Add 'outer'")


def test_folded_constant_limit_can_be_raised_and_lowered() -> None:
    nodes = [
        helper.make_node("Constant", [], ["s"], value=_int64("s", [1, 2, 2])),
        helper.make_node("ConstantOfShape", ["s"], ["c"], name="fill"),
        helper.make_node("Shape", ["c"], ["t"]),
        helper.make_node("Reshape", ["x", "t"], ["y"], name="reshape"),
    ]
    model = _model(nodes, [_x(4)], "y")
    with pytest.raises(ModelLoadError, match=r"ConstantOfShape 'fill'.*limit of 3"):
        dtd.load(model, limits=Limits(max_folded_constant=3))
    # 4 elements of ConstantOfShape, 3 of Shape: 7 in all
    with pytest.raises(ModelLoadError, match=r"Shape .*after 4 elements folded before it"):
        dtd.load(model, limits=Limits(max_folded_constant=6))
    assert dtd.load(model, limits=Limits(max_folded_constant=7)).output_shape == (2, 2)
    assert Limits().max_folded_constant == 2**26 and Limits().max_activation == 2**27


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_activation"):
        Limits(max_activation=0)
    with pytest.raises(TypeError, match=r"dtd.Limits"):
        dtd.load(b"", limits={"max_activation": 3})  # type: ignore[arg-type]


def test_declared_input_beyond_max_activation() -> None:
    b = GraphBuilder((100000, 1000000))
    model = b.build(b.relu("x"))
    message = _refused_cheaply(model, "100000000000 elements per sample", "max_activation")
    assert "bad_alloc" not in message
    small = GraphBuilder((10, 10))
    small_model = small.build(small.relu("x"))
    with pytest.raises(ModelLoadError, match="limit of 99"):
        dtd.load(small_model, limits=Limits(max_activation=99))
    assert dtd.load(small_model, limits=Limits(max_activation=100)).output_shape == (10, 10)


def test_flatten_of_huge_input_then_gemm() -> None:
    """[N, 2^32, 2^32] -> Flatten -> Gemm was SIGFPE (a division by the wrapped extent 0) at load."""
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w"], ["y"], name="fc"),
    ]
    model = _model(nodes, [_x(1 << 32, 1 << 32)], "y", [w])
    with pytest.raises(ModelLoadError):
        dtd.load(model)


@pytest.mark.parametrize("pads", [[1 << 62] * 4, [1 << 40, 1 << 40, 0, 0], [2**63 - 1, 0, 0, 0]])
def test_conv_pads_that_overflow(pads: list[int]) -> None:
    """Pads whose padded extent or output element count overflows int64 (a SIGSEGV in forward before)."""
    b = GraphBuilder((2, 6, 6))
    model = b.build(b.conv("x", 3, name="conv1", pads=pads))
    with pytest.raises(ModelLoadError) as info:
        dtd.load(model)
    assert "conv1" in str(info.value)
    assert "-9223372036854775" not in str(info.value)


def test_maxpool_huge_kernel_and_pads_overflow() -> None:
    b = GraphBuilder((2, 6, 6))
    model = b.build(
        b.node(
            "MaxPool",
            ["x"],
            name="pool",
            kernel_shape=[2**62, 2],
            pads=[2**62 - 1, 0, 2**62 - 1, 0],
            dilations=[4, 1],
        )
    )
    with pytest.raises(ModelLoadError, match="pool"):
        dtd.load(model)


def _relu_chain(n: int) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"r{i - 1}"], [f"r{i}"]) for i in range(n)]
    return _model(nodes, [_x(4)], f"r{n - 1}")


def test_node_count_limit() -> None:
    model = _relu_chain(50)
    with pytest.raises(ModelLoadError, match=r"more than 49 nodes .*max_nodes"):
        dtd.load(model, limits=Limits(max_nodes=49))
    with pytest.raises(ModelLoadError, match=r"more than 49 nodes"):
        dtd.load(model.SerializeToString(), limits=Limits(max_nodes=49))
    assert dtd.load(model, limits=Limits(max_nodes=50)).output_shape == (4,)
    assert Limits().max_nodes == 2**17 and Limits().max_depth == 8


def test_node_count_limit_counts_subgraphs_and_names_the_file(tmp_path) -> None:
    body = helper.make_graph(
        [helper.make_node("Relu", ["x"], [f"b{i}"]) for i in range(10)],
        "body",
        [],
        [helper.make_tensor_value_info("b0", TensorProto.FLOAT, None)],
    )
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    model = _model([node], [_x(4), cond], "y")
    path = tmp_path / "if.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelLoadError, match=r"if\.onnx: the model has more than 20 nodes"):
        dtd.load(path, limits=Limits(max_nodes=20))


def _nested(depth: int) -> onnx.ModelProto:
    leaf = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g0",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    graph = leaf
    for level in range(1, depth):
        node = helper.make_node("If", ["c"], ["y"], then_branch=graph, else_branch=leaf)
        graph = helper.make_graph(
            [node], f"g{level}", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
        )
    graph.input.append(_x(4))
    graph.initializer.append(numpy_helper.from_array(np.array(True), "c"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_nesting_depth_limit() -> None:
    with pytest.raises(ModelLoadError, match=r"nested more than 8 levels deep .*max_depth"):
        dtd.load(_nested(12))
    with pytest.raises(ModelLoadError, match=r"nested more than 2 levels"):
        dtd.load(_nested(3), limits=Limits(max_depth=2))
    # Within the limit the If itself is what dtd refuses: control flow is outside its scope.
    with pytest.raises(dtd.UnsupportedModelError, match="If"):
        dtd.load(_nested(3), limits=Limits(max_depth=3))
    with pytest.raises(ModelLoadError, match=r"nested more than 8 levels deep"):
        dtd.load(_nested_bytes(30))
    # Nesting deeper than the protobuf parser's own recursion bound is a clean parse error, not a crash.
    with pytest.raises(ModelLoadError, match="cannot parse"):
        dtd.load(_nested_bytes(5000), limits=Limits(max_depth=10**6))


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    """A protobuf field: length-delimited (wire type 2) for bytes, a varint (wire type 0) for an int."""
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested_bytes(depth: int) -> bytes:
    """ModelProto bytes of `depth` graphs nested through If.then_branch (too deep for protobuf objects)."""
    graph = _field(1, _field(4, b"Relu"))  # GraphProto.node { op_type: "Relu" }
    for _ in range(depth):
        attr = _field(1, b"then_branch") + _field(20, 5) + _field(6, graph)  # name, type GRAPH, g
        graph = _field(1, _field(4, b"If") + _field(5, attr))
    opset = _field(2, 13)  # OperatorSetIdProto { version: 13 }
    return _field(1, 8) + _field(8, opset) + _field(7, graph)  # ir_version 8, opset_import, graph


def test_total_activation_limit() -> None:
    # Five ReLUs of 10x10: the input and the layer outputs hold 600 elements per sample together.
    b = GraphBuilder((10, 10))
    y = "x"
    for _ in range(5):
        y = b.relu(y)
    model = b.build(y)
    with pytest.raises(
        ModelLoadError, match=r"to 600 elements per sample, more than the limit of 599 .*max_total"
    ):
        dtd.load(model, limits=Limits(max_total_activation=599))
    assert dtd.load(model, limits=Limits(max_total_activation=600)).output_shape == (10, 10)
    assert Limits().max_total_activation == 2**27


def test_padded_conv_within_the_layer_limit_but_not_the_total() -> None:
    # A conv pad of 10^6 rows on a 3x8x8 input: each layer output stays under max_activation (2**27 elements),
    # the layers together do not, and an explanation would need gigabytes (the fuzz found it, issue 10).
    b = GraphBuilder((3, 8, 8))
    y = b.relu(b.conv("x", 8, pads=[1, 1, 1_000_000, 1]))
    y = b.relu(b.conv(y, 8, pads=[1, 1, 1, 1]))
    _refused_cheaply(
        b.build(y), "elements per sample, more than the limit of 134217728", "max_total_activation"
    )


def _slice_after(build) -> onnx.ModelProto:
    """x [N, 3, 8, 8] -> build(b) -> Slice of axis 1 -> Relu: ONNX's Slice inference clamps to the extent before."""
    b = GraphBuilder((3, 8, 8))
    y = build(b)
    s = b.node("Slice", [y, b.const(np.array([0])), b.const(np.array([1])), b.const(np.array([1]))])
    return b.build(b.relu(s))


_NEGATIVE_GEOMETRY = {
    # kernel_shape contradicting the weight's 3x3 (the fuzz case of issue 10)
    "conv_kernel_shape": lambda b: b.node(
        "Conv", ["x", b.weight((4, 3, 3, 3)), b.weight((4,))], kernel_shape=[1_000_003, 3]
    ),
    "conv_dilations": lambda b: b.conv("x", 4, dilations=[1_000_000, 1]),
    "maxpool_kernel": lambda b: b.node("MaxPool", ["x"], kernel_shape=[1_000_003, 2]),
    "averagepool_kernel": lambda b: b.node("AveragePool", ["x"], kernel_shape=[2, 500]),
    "pad_crop": lambda b: b.node("Pad", ["x", b.const(np.array([0, 0, 0, 0, 0, 0, -20, 0]))]),
}


def test_geometry_with_a_negative_extent_is_refused_not_aborted(tmp_path) -> None:
    # Before the fix, onnx's whole-graph shape inference (called by the importer) aborted the process with
    # SIGABRT on the first file; the child process makes a regression a failure, not a dead test run.
    import json
    import subprocess
    import sys

    paths = {}
    for case, build in _NEGATIVE_GEOMETRY.items():
        paths[case] = str(tmp_path / f"{case}.onnx")
        onnx.save(_slice_after(build), paths[case])
    code = (
        "import json, sys, dtd\n"
        "out = {}\n"
        "for case, path in json.loads(sys.argv[1]).items():\n"
        "    try:\n"
        "        dtd.load(path)\n"
        "        out[case] = 'loaded'\n"
        "    except dtd.ModelLoadError as e:\n"
        "        out[case] = str(e)\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, json.dumps(paths)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for case, message in results.items():
        assert message != "loaded", case
        assert any(w in message for w in ("negative axis", "exceeds", "pads", "does not match")), (
            case,
            message,
        )


def test_import_memory_is_a_small_multiple_of_the_file(tmp_path) -> None:
    # A 64 MiB float32 weight: the parsed file, its NumPy copy, the float64 draft and the float64 spec, each held
    # once at a time (9.2x the file before: a second float64 copy for Gemm's alpha, spec layers copied twice by
    # pybind11, the protobuf kept alive through the spec). Measured in a fresh process: ru_maxrss is a high-water
    # mark, so the model is written here and loaded there.
    import subprocess
    import sys

    w = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
        "g",
        [_x(4096)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4096])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "big.onnx"
    onnx.save(model, path)
    code = (
        "import os, resource, sys, dtd\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "m = dtd.load(sys.argv[1])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print((after - before) * 1024 / os.path.getsize(sys.argv[1]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    ratio = float(run.stdout.split()[-1])
    assert ratio < 5.5, f"dtd.load peaked at {ratio:.2f}x the file size"
