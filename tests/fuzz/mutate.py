"""Deterministic mutations of ONNX models for the fuzz harness.

``mutate(seed, kind, rseed)`` returns the mutated model bytes (and the external files, changed or not) and a
one-line description; the same three arguments always give the same bytes. Protobuf-level kinds decode the
seed with onnx, change fields and serialize again (without validation: producing invalid models is the point).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper

from .seeds import Seed

#: Integers that break shape arithmetic (zero, negative, int32 / int64 edges, 2^62 overflows on a product).
SPECIAL_INTS = (0, -1, -2, 2**31, 2**31 - 1, 2**32, 2**62, 2**63 - 1, -(2**63), 3, 1000003)
SPECIAL_FLOATS = (0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e30, 1.5)
DTYPES = (
    TensorProto.INT32,
    TensorProto.INT64,
    TensorProto.INT8,
    TensorProto.UINT8,
    TensorProto.BOOL,
    TensorProto.STRING,
    TensorProto.COMPLEX64,
    TensorProto.COMPLEX128,
    TensorProto.FLOAT8E4M3FN,
    TensorProto.FLOAT8E5M2,
    TensorProto.BFLOAT16,
    TensorProto.FLOAT16,
    TensorProto.DOUBLE,
    TensorProto.UNDEFINED,
    12345,
)
OPSETS = (0, 1, 5, 6, 7, 9, 10, 11, 12, 14, 16, 18, 19, 21, 22, 23, 24, 30, 1000, -1)


class NotApplicable(Exception):
    """The mutation has nothing to act on in this model (the harness then flips bytes instead)."""


Rng = np.random.Generator
Mutator = Callable[[onnx.ModelProto, Rng], str]


def _pick(rng: Rng, seq: list | tuple):  # type: ignore[no-untyped-def]
    if not seq:
        raise NotApplicable
    return seq[int(rng.integers(len(seq)))]


def _special_int(rng: Rng) -> int:
    return int(_pick(rng, SPECIAL_INTS))


# -- byte level --------------------------------------------------------------------------------------------
def byteflip(data: bytes, rng: Rng) -> tuple[bytes, str]:
    buf = bytearray(data)
    n = int(rng.integers(1, 9))
    where = sorted(int(rng.integers(len(buf))) for _ in range(n))
    for i in where:
        buf[i] ^= 1 << int(rng.integers(8))
    return bytes(buf), f"flipped bits at {where}"


def truncate(data: bytes, rng: Rng) -> tuple[bytes, str]:
    cut = int(rng.integers(len(data)))
    return data[:cut], f"truncated to {cut} of {len(data)} bytes"


# -- graph structure ---------------------------------------------------------------------------------------
def dangling(m: onnx.ModelProto, rng: Rng) -> str:
    g = m.graph
    choice = int(rng.integers(3))
    if choice == 0:
        node = _pick(rng, [n for n in g.node if n.input])
        i = int(rng.integers(len(node.input)))
        old, node.input[i] = node.input[i], "dangling_in"
        return f"node {node.name!r} input {i} {old!r} -> 'dangling_in'"
    if choice == 1:
        node = _pick(rng, list(g.node))
        old, node.output[0] = node.output[0], "dangling_out"
        return f"node {node.name!r} output {old!r} -> 'dangling_out'"
    out = _pick(rng, list(g.output))
    old, out.name = out.name, "dangling_graph_out"
    return f"graph output {old!r} -> 'dangling_graph_out'"


def cycle(m: onnx.ModelProto, rng: Rng) -> str:
    nodes = [n for n in m.graph.node if n.input and n.output]
    if len(nodes) < 1:
        raise NotApplicable
    i = int(rng.integers(len(nodes)))
    j = int(rng.integers(i, len(nodes)))  # j >= i: a later (or the same) node feeds an earlier one
    k = int(rng.integers(len(nodes[i].input)))
    nodes[i].input[k] = nodes[j].output[0]
    return f"node {nodes[i].name!r} input {k} <- output of node {nodes[j].name!r}"


def dup_output(m: onnx.ModelProto, rng: Rng) -> str:
    g = m.graph
    choice = int(rng.integers(3))
    if choice == 0 and len(g.node) >= 2:
        a, b = (int(v) for v in rng.choice(len(g.node), 2, replace=False))
        g.node[a].output[0] = g.node[b].output[0]
        return f"node {g.node[a].name!r} writes node {g.node[b].name!r}'s output"
    if choice == 1:
        g.output.append(g.output[0])
        return "graph output listed twice"
    node = _pick(rng, list(g.node))
    node.output.append(node.output[0])
    return f"node {node.name!r} lists its output twice"


def drop_init(m: onnx.ModelProto, rng: Rng) -> str:
    g = m.graph
    i = int(rng.integers(len(g.initializer))) if g.initializer else -1
    if i < 0:
        raise NotApplicable
    name = g.initializer[i].name
    del g.initializer[i]
    return f"removed initializer {name!r}"


def _init(m: onnx.ModelProto, rng: Rng) -> TensorProto:
    return _pick(rng, list(m.graph.initializer))


def init_dims(m: onnx.ModelProto, rng: Rng) -> str:
    t = _init(m, rng)
    choice = int(rng.integers(4))
    before = list(t.dims)
    if choice == 0 and t.dims:
        t.dims[int(rng.integers(len(t.dims)))] = _special_int(rng)
    elif choice == 1 and t.dims:
        k = int(rng.integers(len(t.dims)))
        t.dims[k] = t.dims[k] + int(_pick(rng, (-1, 1)))
    elif choice == 2:
        t.dims.append(int(_pick(rng, (1, 2, 0, 2**40))))
    else:
        del t.dims[:]
        t.dims.extend([_special_int(rng) for _ in range(int(rng.integers(0, 4)))])
    return f"initializer {t.name!r} dims {before} -> {list(t.dims)}"


def dtype(m: onnx.ModelProto, rng: Rng) -> str:
    new = int(_pick(rng, DTYPES))
    if m.graph.initializer and rng.random() < 0.8:
        t = _init(m, rng)
        old, t.data_type = t.data_type, new
        return f"initializer {t.name!r} data_type {old} -> {new}"
    v = _pick(rng, [*m.graph.input, *m.graph.output])
    old = v.type.tensor_type.elem_type
    v.type.tensor_type.elem_type = new
    return f"value {v.name!r} elem_type {old} -> {new}"


def raw_trunc(m: onnx.ModelProto, rng: Rng) -> str:
    tensors = [t for t in m.graph.initializer if t.raw_data or t.float_data or t.int64_data]
    for node in m.graph.node:  # Constant nodes hold tensors too
        tensors += [a.t for a in node.attribute if a.type == AttributeProto.TENSOR and a.t.raw_data]
    t = _pick(rng, tensors)
    if t.raw_data:
        n = len(t.raw_data)
        cut = int(rng.integers(n)) if n else 0
        t.raw_data = t.raw_data[:cut]
        return f"tensor {t.name!r} raw_data {n} -> {cut} bytes"
    field = t.float_data if t.float_data else t.int64_data
    n = len(field)
    del field[int(rng.integers(n)) :]
    return f"tensor {t.name!r} typed data {n} -> {len(field)} values"


# -- attributes --------------------------------------------------------------------------------------------
def _attr(m: onnx.ModelProto, rng: Rng, types: tuple[int, ...] | None = None) -> tuple[onnx.NodeProto, int]:
    cands = [
        (n, i) for n in m.graph.node for i, a in enumerate(n.attribute) if types is None or a.type in types
    ]
    return _pick(rng, cands)


def attr_value(m: onnx.ModelProto, rng: Rng) -> str:
    node, i = _attr(
        m, rng, (AttributeProto.INT, AttributeProto.INTS, AttributeProto.FLOAT, AttributeProto.FLOATS)
    )
    a = node.attribute[i]
    if a.type == AttributeProto.INT:
        a.i = _special_int(rng)
        new: object = a.i
    elif a.type == AttributeProto.INTS:
        if a.ints and rng.random() < 0.7:
            a.ints[int(rng.integers(len(a.ints)))] = _special_int(rng)
        else:
            v = _special_int(rng)
            n = len(a.ints) or 1
            del a.ints[:]
            a.ints.extend([v] * int(_pick(rng, (n, n + 1, max(n - 1, 0)))))
        new = list(a.ints)
    elif a.type == AttributeProto.FLOAT:
        a.f = float(_pick(rng, SPECIAL_FLOATS))
        new = a.f
    else:
        if not a.floats:
            raise NotApplicable
        a.floats[int(rng.integers(len(a.floats)))] = float(_pick(rng, SPECIAL_FLOATS))
        new = list(a.floats)
    return f"node {node.name!r} ({node.op_type}) attribute {a.name!r} -> {new}"


def _retype(a: AttributeProto, rng: Rng) -> object:
    value = helper.get_attribute_value(a)
    if a.type == AttributeProto.INT:
        return _pick(rng, ([value], float(value) + 0.5, str(value).encode(), [float(value)]))
    if a.type == AttributeProto.INTS:
        return _pick(rng, (value[0] if value else 0, [float(v) + 0.5 for v in value] or [1.5], b"1,1", 1.0))
    if a.type == AttributeProto.FLOAT:
        return _pick(rng, (int(value), [value], b"0.5"))
    if a.type == AttributeProto.FLOATS:
        return _pick(rng, ([int(v) for v in value] or [1], value[0] if value else 1.0, b"x"))
    if a.type == AttributeProto.STRING:
        return _pick(rng, (1, [1, 2], 1.0))
    return _pick(rng, (1, b"tensor", [1.0]))


def attr_type(m: onnx.ModelProto, rng: Rng) -> str:
    node, i = _attr(m, rng)
    a = node.attribute[i]
    old = AttributeProto.AttributeType.Name(a.type)
    new = helper.make_attribute(a.name, _retype(a, rng))
    node.attribute[i].CopyFrom(new)
    to = AttributeProto.AttributeType.Name(new.type)
    return f"node {node.name!r} ({node.op_type}) attribute {a.name!r} {old} -> {to}"


def attr_drop(m: onnx.ModelProto, rng: Rng) -> str:
    node, i = _attr(m, rng)
    name = node.attribute[i].name
    del node.attribute[i]
    return f"node {node.name!r} ({node.op_type}) attribute {name!r} removed"


def attr_unknown(m: onnx.ModelProto, rng: Rng) -> str:
    node = _pick(rng, list(m.graph.node))
    value = _pick(rng, (1, 0, [2, 2], 0.5, b"SAME_UPPER", [1.0, 2.0]))
    name = str(_pick(rng, ("fuzz_extra", "auto_pad", "pads", "axis", "group", "alpha", "kernel_shape")))
    if any(a.name == name for a in node.attribute):
        name = "fuzz_extra"
    node.attribute.append(helper.make_attribute(name, value))
    return f"node {node.name!r} ({node.op_type}) gets attribute {name}={value!r}"


# -- versions, declared shapes -----------------------------------------------------------------------------
def opset(m: onnx.ModelProto, rng: Rng) -> str:
    choice = int(rng.integers(4))
    if choice == 0:
        old = m.ir_version
        m.ir_version = int(_pick(rng, (0, 1, 2, 3, 4, 11, 12, 99)))
        return f"ir_version {old} -> {m.ir_version}"
    if choice == 1:
        del m.opset_import[:]
        return "opset_import removed"
    default = [o for o in m.opset_import if o.domain in ("", "ai.onnx")]
    if choice == 2 or not default:
        m.opset_import.append(helper.make_opsetid(str(_pick(rng, ("com.microsoft", "ai.onnx.ml", "x"))), 1))
        if default:
            for node in m.graph.node[: int(rng.integers(1, 3))]:
                node.domain = m.opset_import[-1].domain
        return f"domain {m.opset_import[-1].domain!r} added (first nodes moved to it)"
    old = default[0].version
    default[0].version = int(_pick(rng, OPSETS))
    return f"opset {old} -> {default[0].version}"


def input_shape(m: onnx.ModelProto, rng: Rng) -> str:
    v = m.graph.input[0]
    dims = v.type.tensor_type.shape.dim
    choice = int(rng.integers(4))
    if choice == 0 and len(dims) > 1:
        k = int(rng.integers(1, len(dims)))
        dims[k].dim_value = int(_pick(rng, (2**32, 2**31, 2**62, 0, 1, 100003, 2**20)))
    elif choice == 1 and len(dims):
        k = int(rng.integers(len(dims)))
        dims[k].dim_param = "L"
    elif choice == 2:
        if rng.random() < 0.5 and len(dims):
            del dims[int(rng.integers(len(dims)))]
        else:
            dims.add().dim_value = int(_pick(rng, (1, 2, 2**32)))
    else:
        for d in dims[1:]:
            d.dim_value = int(_pick(rng, (2**16, 2**20, 2**32)))
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    return f"input {v.name!r} declared {shape}"


# -- bombs: a tiny file asking for a huge constant, grafted onto the seed's input ---------------------------
def _graft(m: onnx.ModelProto, nodes: list[onnx.NodeProto], inits: list[TensorProto], big: str) -> None:
    """x' = x + big[0] (a [1] slice of the bomb); every consumer of x reads x'."""
    g = m.graph
    x = g.input[0].name
    zero = helper.make_tensor("bomb_zero", TensorProto.INT64, [1], [0])
    one = helper.make_tensor("bomb_one", TensorProto.INT64, [1], [1])
    minus = helper.make_tensor("bomb_minus1", TensorProto.INT64, [1], [-1])
    flat = helper.make_node("Reshape", [big, "bomb_minus1"], ["bomb_flat"], name="bomb_flat")
    first = helper.make_node(
        "Slice", ["bomb_flat", "bomb_zero", "bomb_one"], ["bomb_first"], name="bomb_slice"
    )
    add = helper.make_node("Add", [x, "bomb_first"], ["bomb_x"], name="bomb_add")
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == x:
                node.input[i] = "bomb_x"
    old = list(g.node)
    del g.node[:]
    g.node.extend([*nodes, flat, first, add, *old])
    g.initializer.extend([*inits, zero, one, minus])


def _i64(name: str, values: list[int]) -> TensorProto:
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def bomb(m: onnx.ModelProto, rng: Rng) -> str:
    variant = str(
        _pick(rng, ("constant_of_shape", "tile", "expand", "range", "concat", "huge_input", "names"))
    )
    one = helper.make_tensor("bomb_ones", TensorProto.FLOAT, [1, 4], [1.0] * 4)
    if variant == "constant_of_shape":
        shape = _pick(rng, ([16384, 16384], [2**20, 2**10], [2**31], [2**33, 2**33]))
        node = helper.make_node(
            "ConstantOfShape",
            ["bomb_shape"],
            ["bomb_big"],
            name="bomb_cos",
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
        )
        _graft(m, [node], [_i64("bomb_shape", list(shape))], "bomb_big")
        return f"ConstantOfShape {shape}"
    if variant == "tile":
        reps = _pick(rng, ([2**24, 1], [2**14, 2**12], [2**40, 1]))
        node = helper.make_node("Tile", ["bomb_ones", "bomb_reps"], ["bomb_big"], name="bomb_tile")
        _graft(m, [node], [one, _i64("bomb_reps", list(reps))], "bomb_big")
        return f"Tile [1, 4] x {reps}"
    if variant == "expand":
        shape = _pick(rng, ([2**26, 4], [2**13, 2**13, 4], [2**40, 4]))
        node = helper.make_node("Expand", ["bomb_ones", "bomb_shape"], ["bomb_big"], name="bomb_expand")
        _graft(m, [node], [one, _i64("bomb_shape", list(shape))], "bomb_big")
        return f"Expand [1, 4] -> {shape}"
    if variant == "range":
        limit = int(_pick(rng, (2**27, 2**28, 2**40)))
        inits = [
            helper.make_tensor(n, TensorProto.INT64, [], [v])
            for n, v in (("bomb_r0", 0), ("bomb_r1", limit), ("bomb_rd", 1))
        ]
        nodes = [
            helper.make_node("Range", ["bomb_r0", "bomb_r1", "bomb_rd"], ["bomb_range"], name="bomb_range"),
            helper.make_node("Cast", ["bomb_range"], ["bomb_big"], name="bomb_cast", to=TensorProto.FLOAT),
        ]
        _graft(m, nodes, inits, "bomb_big")
        return f"Range(0, {limit}) int64 -> Cast"
    if variant == "concat":
        n = int(_pick(rng, (28, 30, 34)))
        nodes, prev = [], "bomb_ones"
        for k in range(n):
            nodes.append(helper.make_node("Concat", [prev, prev], [f"bomb_c{k}"], name=f"bomb_c{k}", axis=0))
            prev = f"bomb_c{k}"
        _graft(m, nodes, [one], prev)
        return f"{n} Concat doublings of a [1, 4] constant"
    if variant == "huge_input":
        dims = m.graph.input[0].type.tensor_type.shape.dim
        for d in dims[1:]:
            d.dim_value = 100_000
        return "input dims set to 100000"
    n = int(_pick(rng, (5000, 10000)))
    same = str(_pick(rng, ("", "n")))
    x = m.graph.input[0].name
    nodes, prev = [], x
    for k in range(n):
        nodes.append(helper.make_node("Identity", [prev], [f"bomb_id{k}"], name=same))
        prev = f"bomb_id{k}"
    for node in m.graph.node:
        for i, name in enumerate(node.input):
            if name == x:
                node.input[i] = prev
    old = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend([*nodes, *old])
    return f"{n} Identity nodes named {same!r}"


def ext_data(m: onnx.ModelProto, rng: Rng) -> str:
    tensors = [t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    t = _pick(rng, tensors)
    entry = _pick(rng, [e for e in t.external_data])
    if entry.key == "location":
        entry.value = str(
            _pick(rng, ("../../../etc/hostname", "/etc/hostname", "missing.bin", "", "weights.bin/.."))
        )
    else:
        entry.value = str(_pick(rng, (-1, 2**62, 2**31, 0, 3)))
    return f"initializer {t.name!r} external {entry.key} -> {entry.value!r}"


PROTO_MUTATORS: dict[str, Mutator] = {
    "dangling": dangling,
    "cycle": cycle,
    "dup_output": dup_output,
    "drop_init": drop_init,
    "init_dims": init_dims,
    "dtype": dtype,
    "raw_trunc": raw_trunc,
    "attr_value": attr_value,
    "attr_type": attr_type,
    "attr_drop": attr_drop,
    "attr_unknown": attr_unknown,
    "opset": opset,
    "input_shape": input_shape,
    "bomb": bomb,
    "ext_data": ext_data,
}
KINDS: tuple[str, ...] = ("byteflip", "truncate", *PROTO_MUTATORS)


def mutate(seed: Seed, kind: str, rseed: int) -> tuple[bytes, str]:
    """The seed's bytes mutated by ``kind`` with the generator seeded by ``rseed``, and a description.

    A protobuf-level kind that has nothing to act on in this seed (no attributes, no initializer) falls
    back to a byte flip (said in the description)."""
    rng = np.random.default_rng(rseed)
    if kind == "byteflip":
        return byteflip(seed.data, rng)
    if kind == "truncate":
        return truncate(seed.data, rng)
    if kind not in PROTO_MUTATORS:
        raise ValueError(f"unknown mutation kind {kind!r}; known: {', '.join(KINDS)}")
    model = onnx.ModelProto()
    model.ParseFromString(seed.data)
    try:
        what = PROTO_MUTATORS[kind](model, rng)
    except NotApplicable:
        data, what = byteflip(seed.data, rng)
        return data, f"(not applicable: byte flip) {what}"
    return model.SerializeToString(), what
