"""The onnx package's decode of a model in the shape of dtd._core._onnx_read's result (nested dicts and lists, strings
as bytes, repeated numbers as NumPy arrays), and the first difference between two such decodes: the oracle of the C++
reader's tests (tests/test_onnx_reader.py) and of its fuzz campaign (tools/fuzz.py --target reader)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx

_KINDS = {
    None: 0,
    "tensor_type": 1,
    "sequence_type": 4,
    "map_type": 5,
    "opaque_type": 7,
    "sparse_tensor_type": 8,
    "optional_type": 9,
}


def _b(s: str | bytes) -> bytes:
    return s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)


def _entries(props: Any) -> list[tuple[bytes, bytes]]:
    return [(_b(e.key), _b(e.value)) for e in props]


def _type(t: onnx.TypeProto) -> dict[str, Any]:
    kind = t.WhichOneof("value")
    out: dict[str, Any] = {
        "kind": _KINDS[kind],
        "elem_type": 0,
        "shape": None,
        "denotation": _b(t.denotation),
    }
    if kind == "tensor_type":
        out["elem_type"] = t.tensor_type.elem_type
        if t.tensor_type.HasField("shape"):
            out["shape"] = [
                {
                    "value": d.dim_value if d.WhichOneof("value") == "dim_value" else None,
                    "param": _b(d.dim_param) if d.WhichOneof("value") == "dim_param" else None,
                    "denotation": _b(d.denotation),
                }
                for d in t.tensor_type.shape.dim
            ]
    return out


def _tensor(t: onnx.TensorProto) -> dict[str, Any]:
    return {
        "dims": list(t.dims),
        "data_type": t.data_type,
        "name": _b(t.name),
        "doc_string": _b(t.doc_string),
        "float_data": np.array(t.float_data, dtype=np.float32),
        "int32_data": np.array(t.int32_data, dtype=np.int32),
        "string_data": [bytes(s) for s in t.string_data],
        "int64_data": np.array(t.int64_data, dtype=np.int64),
        "double_data": np.array(t.double_data, dtype=np.float64),
        "uint64_data": np.array(t.uint64_data, dtype=np.uint64),
        "raw_data": bytes(t.raw_data) if t.HasField("raw_data") else None,
        "external_data": _entries(t.external_data),
        "data_location": t.data_location,
        "metadata_props": _entries(t.metadata_props),
    }


def _value_info(v: onnx.ValueInfoProto) -> dict[str, Any]:
    return {
        "name": _b(v.name),
        "type": _type(v.type) if v.HasField("type") else None,
        "doc_string": _b(v.doc_string),
        "metadata_props": _entries(v.metadata_props),
    }


def _attribute(a: onnx.AttributeProto) -> dict[str, Any]:
    return {
        "name": _b(a.name),
        "ref_attr_name": _b(a.ref_attr_name),
        "doc_string": _b(a.doc_string),
        "type": a.type,
        "f": a.f,
        "i": a.i,
        "s": bytes(a.s),
        "t": _tensor(a.t) if a.HasField("t") else None,
        "g": _graph(a.g) if a.HasField("g") else None,
        "tp": _type(a.tp) if a.HasField("tp") else None,
        "floats": np.array(a.floats, dtype=np.float32),
        "ints": np.array(a.ints, dtype=np.int64),
        "strings": [bytes(s) for s in a.strings],
        "tensors": [_tensor(t) for t in a.tensors],
        "graphs": [_graph(g) for g in a.graphs],
        "type_protos": [_type(t) for t in a.type_protos],
    }


def _node(n: onnx.NodeProto) -> dict[str, Any]:
    return {
        "input": [_b(s) for s in n.input],
        "output": [_b(s) for s in n.output],
        "name": _b(n.name),
        "op_type": _b(n.op_type),
        "domain": _b(n.domain),
        "overload": _b(n.overload),
        "attribute": [_attribute(a) for a in n.attribute],
        "doc_string": _b(n.doc_string),
        "metadata_props": _entries(n.metadata_props),
    }


def _graph(g: onnx.GraphProto) -> dict[str, Any]:
    return {
        "node": [_node(n) for n in g.node],
        "name": _b(g.name),
        "initializer": [_tensor(t) for t in g.initializer],
        "doc_string": _b(g.doc_string),
        "input": [_value_info(v) for v in g.input],
        "output": [_value_info(v) for v in g.output],
        "value_info": [_value_info(v) for v in g.value_info],
        "metadata_props": _entries(g.metadata_props),
    }


def as_dict(m: onnx.ModelProto) -> dict[str, Any]:
    """onnx's decode of a model in the shape of dtd._core._onnx_read's result."""
    return {
        "ir_version": m.ir_version,
        "opset_import": [{"domain": _b(o.domain), "version": o.version} for o in m.opset_import],
        "producer_name": _b(m.producer_name),
        "producer_version": _b(m.producer_version),
        "domain": _b(m.domain),
        "model_version": m.model_version,
        "doc_string": _b(m.doc_string),
        "graph": _graph(m.graph) if m.HasField("graph") else None,
        "metadata_props": _entries(m.metadata_props),
    }


def difference(a: Any, b: Any, path: str = "model") -> str | None:
    """The first place where two decodes differ (None when equal); NaNs compare equal, floats bitwise otherwise."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            d = difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} != {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        same = a.dtype == b.dtype and a.shape == b.shape
        if same and a.dtype.kind == "f":
            same = bool(np.array_equal(a, b, equal_nan=True))
        elif same:
            same = a.tobytes() == b.tobytes()
        return None if same else f"{path}: arrays differ ({a.dtype}{a.shape} vs {b.dtype}{b.shape})"
    if isinstance(a, float) and isinstance(b, float):
        return None if (math.isnan(a) and math.isnan(b)) or a == b else f"{path}: {a!r} != {b!r}"
    if isinstance(a, tuple) and isinstance(b, tuple):
        return difference(list(a), list(b), path)
    return None if type(a) is type(b) and a == b else f"{path}: {a!r} != {b!r}"
