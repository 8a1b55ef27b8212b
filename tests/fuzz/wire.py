"""Protobuf wire-level mutations of ONNX models for the C++ reader's fuzz campaign (tools/fuzz.py --target reader).

A seed is parsed into a tree of fields, guided by onnx's own message descriptors (a length-delimited field that
onnx.proto declares as a message is parsed as one); a mutation picks a node of that tree and changes its encoding:
a varint made overlong or huge, a length prefix past the end, a wire type, a group, a truncation at a chosen kind of
boundary, deep nesting, duplicated and unknown fields, packed runs unpacked (or the reverse), tensors whose dims
disagree with their data, external-data entries. Since parents re-encode their lengths from their children, a
corruption stays where it was put: deep inside a valid model. ``mutate(seed, kind, rseed)`` always gives the same
bytes (and external files) for the same arguments.

``check_decoded`` states what a model accepted by the reader must satisfy (dtd/onnx.hpp's postconditions): every
tensor's data in at most one field, consistent with its dims and data type, and no external reference left once
external data is resolved.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor import FieldDescriptor as FD

from .seeds import Seed, seed_models

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
#: Varint values that break int32 / int64 / size arithmetic.
HUGE = (2**31, 2**31 - 1, 2**32, 2**32 + 1, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64 - 2**31)
#: Field numbers onnx.proto does not use (the largest legal number, a reserved range, a small free one).
UNKNOWN_NUMBERS = (99, 1000, 19000, 2**29 - 1, 536870911 // 3)
EXTERNAL_FILE = "weights.bin"
#: The external file of tests/cpp/fuzz/corpus's models, as the libFuzzer target writes it (4 KiB: 0, 1, ..., 255, ...).
CORPUS_WEIGHTS = bytes(range(256)) * 16
Rng = np.random.Generator


class NotApplicable(Exception):
    """The mutation has nothing to act on in this seed (mutate() then flips a bit in one field instead)."""


# ---- encoding ---------------------------------------------------------------------------------------------------
def varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    r = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[pos]
        pos += 1
        r |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return r & ((1 << 64) - 1), pos


@dataclasses.dataclass
class Field:
    """One (tag, value) pair. ``value``: an int (varint), bytes (fixed32/64, or an unparsed length-delimited
    payload), or a list of fields (a parsed message; a group for wire type 3). ``raw`` replaces the whole
    encoding of the field when set (the corruptions)."""

    number: int
    wire: int
    value: Any
    fd: FD | None = None
    raw: bytes | None = None

    @property
    def message(self) -> Descriptor | None:
        return self.fd.message_type if self.fd is not None and self.fd.type == FD.TYPE_MESSAGE else None


def parse(data: bytes, desc: Descriptor | None) -> list[Field]:
    """The fields of a valid message; ValueError for bytes that are not one."""
    out: list[Field] = []
    pos = 0
    while pos < len(data):
        t, pos = read_varint(data, pos)
        number, wire = t >> 3, t & 7
        fd = desc.fields_by_number.get(number) if desc is not None else None
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire in (FIXED64, FIXED32):
            n = 8 if wire == FIXED64 else 4
            if pos + n > len(data):
                raise ValueError("truncated fixed")
            value, pos = data[pos : pos + n], pos + n
        elif wire == LEN:
            n, pos = read_varint(data, pos)
            if pos + n > len(data):
                raise ValueError("truncated payload")
            value, pos = data[pos : pos + n], pos + n
            if fd is not None and fd.type == FD.TYPE_MESSAGE:
                value = parse(value, fd.message_type)
        else:
            raise ValueError(f"wire type {wire}")
        out.append(Field(number, wire, value, fd))
    return out


def payload(f: Field) -> bytes:
    return encode(f.value) if isinstance(f.value, list) else f.value if isinstance(f.value, bytes) else b""


def encode_field(f: Field) -> bytes:
    if f.raw is not None:
        return f.raw
    if f.wire == VARINT:
        return tag(f.number, VARINT) + varint(int(f.value))
    if f.wire == START_GROUP:
        return tag(f.number, START_GROUP) + encode(f.value) + tag(f.number, END_GROUP)
    if f.wire == LEN:
        body = payload(f)
        return tag(f.number, LEN) + varint(len(body)) + body
    return tag(f.number, f.wire) + bytes(f.value)


def encode(fields: list[Field]) -> bytes:
    return b"".join(encode_field(f) for f in fields)


# ---- the tree ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Site:
    """A field in its context: the list that holds it (its message), its index there, its path."""

    parent: list[Field]
    index: int
    desc: Descriptor | None
    path: str

    @property
    def field(self) -> Field:
        return self.parent[self.index]


def sites(fields: list[Field], desc: Descriptor | None, path: str = "ModelProto") -> Iterator[Site]:
    for i, f in enumerate(fields):
        name = f.fd.name if f.fd is not None else str(f.number)
        here = f"{path}.{name}"
        yield Site(fields, i, desc, here)
        if isinstance(f.value, list):
            yield from sites(f.value, f.message, here)


def messages(fields: list[Field], desc: Descriptor | None, path: str = "ModelProto") -> Iterator[Site]:
    """Every message of the tree as a pseudo-site (parent: the message's own field list, index -1)."""
    yield Site(fields, -1, desc, path)
    for s in sites(fields, desc, path):
        f = s.field
        if isinstance(f.value, list):
            yield Site(f.value, -1, f.message, s.path)


def _pick(rng: Rng, seq: list[Any] | tuple[Any, ...]) -> Any:
    if not seq:
        raise NotApplicable
    return seq[int(rng.integers(len(seq)))]


def _of_type(tree: list[Field], name: str) -> list[Site]:
    return [s for s in sites(tree, onnx.ModelProto.DESCRIPTOR) if (m := s.field.message) and m.name == name]


def _get(fields: list[Field], number: int) -> Field | None:
    return next((f for f in reversed(fields) if f.number == number), None)


def _set(fields: list[Field], number: int, wire: int, value: Any) -> None:
    fields[:] = [f for f in fields if f.number != number]
    fields.append(Field(number, wire, value))


# ---- mutations: each changes the tree in place and says what it did ----------------------------------------------
Mutator = Callable[[list[Field], Rng, dict[str, bytes]], str]


def m_varint_overlong(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    s = _pick(rng, [s for s in sites(tree, onnx.ModelProto.DESCRIPTOR) if s.field.raw is None])
    f = s.field
    where = _pick(rng, ("value", "length", "tag") if f.wire == LEN else ("value", "tag"))
    if where == "value" and f.wire != VARINT:
        where = "tag"
    v = {
        "value": int(f.value) if f.wire == VARINT else 0,
        "length": len(payload(f)),
        "tag": f.number << 3 | f.wire,
    }[where]
    style = _pick(rng, ("11 bytes", "20 bytes", "10 bytes", "10th byte high bits", "padded"))
    groups = [(v >> (7 * k)) & 0x7F for k in range(10)]
    minimal = varint(v)
    if style == "padded" and len(minimal) < 10:  # non-minimal but valid: one redundant byte
        enc = bytes(b | 0x80 for b in minimal) + b"\x00"
    elif style in ("10 bytes", "padded"):  # the value in 10 bytes (valid)
        enc = bytes(g | 0x80 for g in groups[:9]) + bytes([groups[9]])
    elif style == "10th byte high bits":  # bits beyond 64 (protobuf drops them)
        enc = bytes(g | 0x80 for g in groups[:9]) + bytes([0x7F])
    else:
        n = 11 if style == "11 bytes" else 20
        enc = bytes(g | 0x80 for g in groups[:9]) + b"\x80" * (n - 10) + b"\x00"
    body = payload(f)
    if where == "tag":
        rest = encode_field(f)[len(tag(f.number, f.wire)) :]
        f.raw = enc + rest
    elif where == "length":
        f.raw = tag(f.number, f.wire) + enc + body
    else:
        f.raw = tag(f.number, f.wire) + enc
    return f"{s.path}: {where} {v} as a varint of {style} ({len(enc)} bytes)"


def m_varint_huge(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    cands = [s for s in sites(tree, onnx.ModelProto.DESCRIPTOR) if s.field.wire == VARINT]
    s = _pick(rng, cands)
    old, s.field.value = s.field.value, int(_pick(rng, HUGE))
    return f"{s.path}: varint {old} -> {s.field.value}"


def m_length(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    s = _pick(rng, [s for s in sites(tree, onnx.ModelProto.DESCRIPTOR) if s.field.wire == LEN])
    f = s.field
    body = payload(f)
    n = len(body)
    new = int(_pick(rng, (n + 1, n + 7, n + 1000, max(n - 1, 0), 0, 2**31, 2**32, 2**63, 2**64 - 1)))
    f.raw = tag(f.number, LEN) + varint(new) + body
    return f"{s.path}: length prefix {n} -> {new}"


def m_wire_type(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    s = _pick(rng, list(sites(tree, onnx.ModelProto.DESCRIPTOR)))
    f = s.field
    rest = encode_field(f)[len(tag(f.number, f.wire)) :]
    new = int(_pick(rng, [w for w in range(8) if w != f.wire]))
    f.raw = tag(f.number, new) + rest
    return f"{s.path}: wire type {f.wire} -> {new}"


def m_group(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    m = _pick(rng, list(messages(tree, onnx.ModelProto.DESCRIPTOR)))
    fields = m.parent
    at = int(rng.integers(len(fields) + 1))
    number = int(_pick(rng, (*UNKNOWN_NUMBERS, 1, 2, 5)))
    style = _pick(rng, ("balanced", "nested", "unterminated", "end only", "mismatched", "message as group"))
    inner = [Field(1, VARINT, 7), Field(2, LEN, b"x")]
    if style == "message as group":
        sub = [f for f in fields if isinstance(f.value, list)]
        if sub:
            f = _pick(rng, sub)
            f.wire = START_GROUP
            return f"{m.path}: message field {f.number} encoded as a group"
        style = "balanced"
    if style == "balanced":
        new = Field(number, START_GROUP, inner)
    elif style == "nested":
        new = Field(number, START_GROUP, [Field(number + 1, START_GROUP, inner)])
    elif style == "unterminated":
        new = Field(number, START_GROUP, [], raw=tag(number, START_GROUP) + encode(inner))
    elif style == "end only":
        new = Field(number, END_GROUP, [], raw=tag(number, END_GROUP))
    else:
        new = Field(
            number, START_GROUP, [], raw=tag(number, START_GROUP) + encode(inner) + tag(number + 1, END_GROUP)
        )
    fields.insert(at, new)
    return f"{m.path}: {style} group (field {number}) inserted at {at}"


def _boundaries(fields: list[Field], base: int, out: list[tuple[int, str]]) -> int:
    """Records the offsets of every kind of boundary inside the encoding of ``fields`` (starting at ``base``)."""
    pos = base
    for f in fields:
        enc = encode_field(f)
        t = len(tag(f.number, f.wire))
        out.append((pos, "before a tag"))
        if t > 1:
            out.append((pos + 1, "inside a tag"))
        out.append((pos + t, "after a tag"))
        if f.raw is None and f.wire == LEN:
            n = len(varint(len(payload(f))))
            if n > 1:
                out.append((pos + t + 1, "inside a length prefix"))
            out.append((pos + t + n, "after a length prefix"))
            if isinstance(f.value, list):
                _boundaries(f.value, pos + t + n, out)
            elif len(f.value) > 1:
                out.append((pos + t + n + len(f.value) // 2, "inside a payload"))
        elif f.raw is None and f.wire == VARINT and len(enc) - t > 1:
            out.append((pos + t + 1, "inside a varint"))
        elif f.raw is None and f.wire in (FIXED32, FIXED64):
            out.append((pos + t + 2, "inside a fixed value"))
        pos += len(enc)
    return pos


def m_truncate(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    if rng.random() < 0.5:  # the whole file, cut at a chosen kind of boundary
        marks: list[tuple[int, str]] = []
        end = _boundaries(tree, 0, marks)
        kinds = sorted({k for _, k in marks})
        kind = _pick(rng, kinds)
        cut, _ = _pick(rng, [m for m in marks if m[1] == kind])
        data = encode(tree)
        assert len(data) == end
        tree[:] = [Field(0, 0, 0, raw=data[:cut])]
        return f"truncated {kind} at byte {cut} of {end}"
    # one nested message cut short (its parents' lengths agree: the message ends inside a field)
    s = _pick(rng, [s for s in sites(tree, onnx.ModelProto.DESCRIPTOR) if isinstance(s.field.value, list)])
    f = s.field
    body = encode(f.value)
    marks = []
    _boundaries(f.value, 0, marks)
    inner = [m for m in marks if 0 < m[0] < len(body)]
    cut, kind = _pick(rng, inner) if inner else (len(body) // 2, "inside")
    f.value = body[:cut]
    return f"{s.path}: payload cut {kind} at {cut} of {len(body)} bytes"


def _graph_site(tree: list[Field]) -> Field:
    g = _get(tree, 7)
    if g is None or not isinstance(g.value, list):
        raise NotApplicable
    return g


def _nested(core: bytes, depth: int, level: Callable[[int], bytes]) -> bytes:
    """``core`` wrapped ``depth`` times; ``level(n)`` is one level's prefix around a payload of n bytes (built from
    the inside out without copying the payload at every level)."""
    prefixes, total = [], len(core)
    for _ in range(depth):
        p = level(total)
        prefixes.append(p)
        total += len(p)
    return b"".join(reversed(prefixes)) + core


def m_nest(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    style = _pick(rng, ("graph", "graphs", "unknown", "type", "tensor in subgraph"))
    depth = int(_pick(rng, (63, 64, 65, 100, 1000, 20000)))
    if (
        style == "type"
    ):  # TypeProto.sequence_type.elem_type.sequence_type... (the reader records the kind only)
        s = _pick(rng, _of_type(tree, "ValueInfoProto"))

        def seq(n: int) -> bytes:
            inner = tag(1, LEN) + varint(n)  # Sequence.elem_type
            return tag(4, LEN) + varint(n + len(inner)) + inner

        body = _nested(b"", depth, seq)
        s.field.value = [f for f in s.field.value if f.number != 2] + [Field(2, LEN, body)]
        return f"{s.path}.type: {depth} nested sequence types"
    if style == "unknown":
        m = _pick(rng, list(messages(tree, onnx.ModelProto.DESCRIPTOR)))
        body = _nested(b"", depth, lambda n: tag(UNKNOWN_NUMBERS[1], LEN) + varint(n))
        m.parent.append(Field(UNKNOWN_NUMBERS[1], LEN, body))
        return f"{m.path}: {depth} nested unknown messages"
    g = _graph_site(tree)
    inner = list(g.value)
    if style == "tensor in subgraph":  # an initializer with external data at the bottom of nested If nodes
        depth = min(depth, 64)
        t = [Field(8, LEN, b"deep"), Field(2, VARINT, 1), Field(1, VARINT, 2), Field(14, VARINT, 1)]
        t += [Field(13, LEN, [Field(1, LEN, b"location"), Field(2, LEN, EXTERNAL_FILE.encode())])]
        files.setdefault(EXTERNAL_FILE, bytes(64))
        inner.append(Field(5, LEN, t))
    attr_field, attr_type = (11, 10) if style == "graphs" else (6, 5)

    def level(
        n: int,
    ) -> bytes:  # GraphProto{name, node{op_type, input, output, attribute{name, type, g: <n>}}}
        attr = tag(1, LEN) + b"\x0bthen_branch" + tag(20, VARINT) + varint(attr_type) + tag(attr_field, LEN)
        attr += varint(n)
        node = tag(4, LEN) + b"\x02If" + tag(1, LEN) + b"\x04cond" + tag(2, LEN) + b"\x03out"
        node += tag(5, LEN) + varint(len(attr) + n)
        node_len = len(node) + len(attr) + n
        return tag(2, LEN) + b"\x05level" + tag(1, LEN) + varint(node_len) + node + attr

    g.value = _nested(encode(inner), depth - 1, level)
    return f"graph nested {depth} deep through {style} attributes"


def m_duplicate(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    s = _pick(rng, list(sites(tree, onnx.ModelProto.DESCRIPTOR)))
    copy = Field(s.field.number, s.field.wire, _clone(s.field.value), s.field.fd, s.field.raw)
    where = _pick(rng, ("next to it", "at the end"))
    s.parent.insert(s.index + 1 if where == "next to it" else len(s.parent), copy)
    times = int(_pick(rng, (1, 1, 1, 100)))
    for _ in range(times - 1):
        s.parent.append(Field(copy.number, copy.wire, _clone(copy.value), copy.fd, copy.raw))
    return f"{s.path}: duplicated {times}x {where}"


def _clone(v: Any) -> Any:
    if isinstance(v, list):
        return [Field(f.number, f.wire, _clone(f.value), f.fd, f.raw) for f in v]
    return v


def m_unknown(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    m = _pick(rng, list(messages(tree, onnx.ModelProto.DESCRIPTOR)))
    number = int(_pick(rng, UNKNOWN_NUMBERS))
    wire = int(_pick(rng, (VARINT, FIXED64, LEN, FIXED32)))
    value: Any = {
        VARINT: 2**63 + 5,
        FIXED64: b"\xff" * 8,
        LEN: b"\x0a\x00unknown",
        FIXED32: b"\x00\x00\xc0\x7f",
    }[wire]
    at = int(rng.integers(len(m.parent) + 1))
    m.parent.insert(at, Field(number, wire, value))
    return f"{m.path}: unknown field {number} (wire {wire}) at {at}"


#: Repeated scalar fields that may be packed: (message, field number) -> element wire type.
PACKABLE = {
    ("TensorProto", 1): VARINT,
    ("TensorProto", 4): FIXED32,
    ("TensorProto", 5): VARINT,
    ("TensorProto", 7): VARINT,
    ("TensorProto", 10): FIXED64,
    ("TensorProto", 11): VARINT,
    ("AttributeProto", 7): FIXED32,
    ("AttributeProto", 8): VARINT,
}


def _elements(fields: list[Field], number: int, wire: int) -> list[bytes]:
    """The encoded elements of a repeated scalar field, packed or not."""
    out: list[bytes] = []
    for f in fields:
        if f.number != number:
            continue
        if f.wire == LEN and isinstance(f.value, bytes):
            data, pos = f.value, 0
            while pos < len(data):
                if wire == VARINT:
                    _, end = read_varint(data, pos)
                else:
                    end = pos + (4 if wire == FIXED32 else 8)
                out.append(data[pos:end])
                pos = end
        elif f.wire == wire:
            out.append(varint(int(f.value)) if wire == VARINT else bytes(f.value))
    return out


def m_packed(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    cands = []
    for m in messages(tree, onnx.ModelProto.DESCRIPTOR):
        for (msg, number), wire in PACKABLE.items():
            if m.desc is not None and m.desc.name == msg and any(f.number == number for f in m.parent):
                cands.append((m, number, wire))
    m, number, wire = _pick(rng, cands)
    elems = _elements(m.parent, number, wire)
    at = next(i for i, f in enumerate(m.parent) if f.number == number)
    rest = [f for f in m.parent if f.number != number]
    style = _pick(rng, ("packed", "unpacked", "split", "mixed", "odd length", "cut element"))
    if style == "packed" or (style in ("split", "mixed") and len(elems) < 2):
        new = [Field(number, LEN, b"".join(elems))]
    elif style == "unpacked":
        new = [Field(number, wire, e, raw=tag(number, wire) + e) for e in elems]
    elif style == "split":
        k = len(elems) // 2
        new = [Field(number, LEN, b"".join(elems[:k])), Field(number, LEN, b"".join(elems[k:]))]
    elif style == "mixed":
        new = [
            Field(number, wire, elems[0], raw=tag(number, wire) + elems[0]),
            Field(number, LEN, b"".join(elems[1:])),
        ]
    elif style == "odd length":
        new = [Field(number, LEN, b"".join(elems) + b"\x01\x02\x03")]
    else:  # a packed varint run ending inside its last element
        new = [Field(number, LEN, b"".join(elems) + b"\xff\xff")]
    m.parent[:] = rest[:at] + new + rest[at:]
    return f"{m.path}: field {number} ({len(elems)} elements) rewritten {style}"


def _tensors(tree: list[Field]) -> list[Site]:
    return _of_type(tree, "TensorProto")


def m_tensor(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    s = _pick(rng, _tensors(tree))
    t: list[Field] = s.field.value
    style = _pick(
        rng,
        (
            "huge dims",
            "negative dim",
            "overflow",
            "zero dim",
            "extra dim",
            "data_type",
            "two fields",
            "no data",
            "raw to typed",
            "external flag",
            "packed dims",
        ),
    )
    dims = [int(f.value) for f in t if f.number == 1 and f.wire == VARINT]
    if style == "huge dims":
        new = [int(_pick(rng, (2**31, 2**40, 2**62, 2**63 - 1)))]
    elif style == "negative dim":
        new = [*dims, 2**64 - int(_pick(rng, (1, 2, 2**31)))]  # int64 -1, -2, -2^31 as varints
    elif style == "overflow":
        new = [2**32, 2**32, 2**32]
    elif style == "zero dim":
        new = [*dims, 0]
    elif style == "extra dim":
        new = [*dims, int(_pick(rng, (2, 3, 1000003)))]
    else:
        new = dims
    if new is not dims or style == "packed dims":
        t[:] = [f for f in t if f.number != 1]
        if style == "packed dims":
            t.insert(0, Field(1, LEN, b"".join(varint(d) for d in new)))
        else:
            t[:0] = [Field(1, VARINT, d) for d in new]
    if style == "data_type":
        _set(t, 2, VARINT, int(_pick(rng, (*range(0, 29), 12345, 2**31 - 1))))
    elif style == "two fields":
        t.append(Field(4, LEN, b"\x00\x00\x80\x3f"))
        t.append(Field(9, LEN, b"\x00" * 4))
    elif style == "no data":
        t[:] = [f for f in t if f.number not in (4, 5, 6, 7, 9, 10, 11)]
    elif style == "raw to typed":
        raw = _get(t, 9)
        if raw is None:
            raise NotApplicable
        body = bytes(raw.value)
        t[:] = [f for f in t if f.number != 9]
        t.append(Field(int(_pick(rng, (4, 5, 7, 10, 11))), LEN, body[: len(body) - len(body) % 8]))
    elif style == "external flag":
        _set(t, 14, VARINT, 1)
    return f"{s.path}: {style} (dims {dims} -> {new})"


LOCATIONS = (
    EXTERNAL_FILE,
    "../" + EXTERNAL_FILE,
    "sub/../../" + EXTERNAL_FILE,
    "/etc/hostname",
    "/" + EXTERNAL_FILE,
    "\\\\server\\share\\x",
    "C:" + EXTERNAL_FILE,
    "weights\0.bin",
    "",
    ".",
    "./" + EXTERNAL_FILE,
    EXTERNAL_FILE + "/..",
    "missing.bin",
    "x" * 5000,
    "a/" * 2000 + "b",
)
OFFSETS = (
    "0",
    "-1",
    "8",
    "4096",
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    " 4 ",
    "+0",
    "0x10",
    "1e3",
    "",
    "nan",
    "٣",
)


def m_external(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    sites_ = _tensors(tree)
    s = _pick(rng, sites_)
    t: list[Field] = s.field.value
    size = int(_pick(rng, (0, 16, 4096, 65536)))
    files.setdefault(EXTERNAL_FILE, bytes(range(256)) * (size // 256) + bytes(size % 256))
    style = _pick(
        rng, ("location", "offset", "length", "keys", "not utf-8", "amplify", "flag only", "keep data")
    )
    entries = [(b"location", EXTERNAL_FILE.encode())]
    if style == "location":
        entries = [(b"location", str(_pick(rng, LOCATIONS)).encode())]
    elif style in ("offset", "length"):
        entries.append((style.encode(), str(_pick(rng, OFFSETS)).encode()))
    elif style == "keys":
        entries += [(b"location", b"missing.bin"), (b"checksum", b"0"), (b"location", EXTERNAL_FILE.encode())]
        entries += [(b"", b""), (b"offset", b"0")]
    elif style == "not utf-8":
        entries = [(b"location", b"weights\xff.bin"), (b"\xc0\xaf", b"x")]
    ext = [Field(13, LEN, [Field(1, LEN, k), Field(2, LEN, v)]) for k, v in entries]
    keep = style == "keep data"  # the tensor's own data kept, and a float_data entry besides
    body = [f for f in t if keep or f.number not in (4, 5, 6, 7, 9, 10, 11, 13, 14)]
    if keep:
        body.append(Field(4, LEN, b"\x00\x00\x80\x3f"))
    if style != "flag only":
        body += ext
    body.append(Field(14, VARINT, 1))
    s.field.value = body
    if (
        style == "amplify"
    ):  # many tensors naming the same bytes of one file: decoded size far beyond the files'
        files[EXTERNAL_FILE] = bytes(1 << 22)
        dims = [Field(1, VARINT, 1 << 20)]
        big = [Field(8, LEN, b"amp"), Field(2, VARINT, 1), *dims, *ext, Field(14, VARINT, 1)]
        g = _graph_site(tree)
        copies = int(_pick(rng, (200, 1000)))
        g.value.extend(Field(5, LEN, _clone(big)) for _ in range(copies))
        return f"{copies} initializers of 4 MiB all reading {EXTERNAL_FILE} [0, 4 MiB)"
    return f"{s.path}: external data, {style}: {entries}"


def m_splice(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    subs = [s for s in sites(tree, onnx.ModelProto.DESCRIPTOR) if isinstance(s.field.value, list)]
    a, b = _pick(rng, subs), _pick(rng, subs)
    a.field.value = _clone(b.field.value)
    return f"{a.path} <- the payload of {b.path}"


def m_bitflip(tree: list[Field], rng: Rng, files: dict[str, bytes]) -> str:
    s = _pick(rng, list(sites(tree, onnx.ModelProto.DESCRIPTOR)))
    enc = bytearray(encode_field(s.field))
    i = int(rng.integers(min(len(enc), 12)))  # the tag, the length prefix and the first bytes of the value
    enc[i] ^= 1 << int(rng.integers(8))
    s.field.raw = bytes(enc)
    return f"{s.path}: flipped a bit of byte {i} of its encoding"


MUTATORS: dict[str, Mutator] = {
    "varint_overlong": m_varint_overlong,
    "varint_huge": m_varint_huge,
    "length": m_length,
    "wire_type": m_wire_type,
    "group": m_group,
    "truncate": m_truncate,
    "nest": m_nest,
    "duplicate": m_duplicate,
    "unknown": m_unknown,
    "packed": m_packed,
    "tensor": m_tensor,
    "external": m_external,
    "splice": m_splice,
    "bitflip": m_bitflip,
}
KINDS: tuple[str, ...] = tuple(MUTATORS)


def mutate(seed: Seed, kind: str, rseed: int) -> tuple[bytes, tuple[tuple[str, bytes], ...], str]:
    """The seed mutated by ``kind`` with a generator seeded by ``rseed``: (model bytes, external files, what)."""
    if kind not in MUTATORS:
        raise ValueError(f"unknown mutation kind {kind!r}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng(rseed)
    tree = parse(seed.data, onnx.ModelProto.DESCRIPTOR)
    files = dict(seed.files)
    try:
        what = MUTATORS[kind](tree, rng, files)
    except NotApplicable:
        tree = parse(seed.data, onnx.ModelProto.DESCRIPTOR)
        what = "(not applicable: bit flip) " + m_bitflip(tree, rng, files)
    return encode(tree), tuple(sorted(files.items())), what


# ---- seeds ------------------------------------------------------------------------------------------------------
def _shared_models() -> list[Path]:
    for parent in TESTS.parents:
        folder = parent / "shared" / "data" / "lrp_toolbox" / "onnx"
        if folder.is_dir():
            return sorted(folder.glob("*.onnx"))
    return []


def reader_seeds(node_tests: bool = True) -> dict[str, Seed]:
    """The reader campaign's seeds, in a fixed order: tests/fuzz/seeds.py's, every .onnx under tests/data, the
    libFuzzer corpus's models with external data (tests/cpp/fuzz/corpus), the shared LeNet models, and the ONNX
    backend node tests when fetched (tools/onnx_node_tests.py)."""
    seeds = dict(seed_models())
    for path in sorted((TESTS / "data").rglob("*.onnx")):
        name = f"data/{path.relative_to(TESTS / 'data')}"
        seeds[name] = Seed(name, path.read_bytes())
    for path in sorted((TESTS / "cpp" / "fuzz" / "corpus").glob("*.onnx")):  # external data in weights.bin
        name = f"corpus/{path.name}"
        seeds[name] = Seed(name, path.read_bytes(), ((EXTERNAL_FILE, CORPUS_WEIGHTS),))
    for path in _shared_models():
        seeds[f"shared/{path.name}"] = Seed(f"shared/{path.name}", path.read_bytes())
    if node_tests:
        if str(TESTS) not in sys.path:
            sys.path.insert(0, str(TESTS))
        from onnx_node import NODE_DIR

        for path in sorted(Path(NODE_DIR).glob("test_*/model.onnx")):
            seeds[f"node/{path.parent.name}"] = Seed(f"node/{path.parent.name}", path.read_bytes())
    return seeds


# ---- the oracle for an accepted model --------------------------------------------------------------------------
_DATA_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _tensor_problem(t: dict[str, Any], resolved: bool) -> str | None:
    name = t["name"]
    if resolved and (t["data_location"] != 0 or t["external_data"]):
        return f"tensor {name!r}: external reference left after external data was read"
    if t["data_location"] == 1:
        return None  # not resolved (external=False): described, not read
    if any(d < 0 for d in t["dims"]):
        return f"tensor {name!r}: negative dims {t['dims']}"
    numel = math.prod(t["dims"])
    held = [k for k in _DATA_FIELDS if len(t[k])] + (["raw_data"] if t["raw_data"] is not None else [])
    if len(held) > 1:
        return f"tensor {name!r}: data in {held}"
    if not held and numel:
        return f"tensor {name!r}: {numel} elements, no data"
    return None


def _graph_tensors(g: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from g["initializer"]
    for n in g["node"]:
        for a in n["attribute"]:
            if a["t"] is not None:
                yield a["t"]
            yield from a["tensors"]
            if a["g"] is not None:
                yield from _graph_tensors(a["g"])
            for sub in a["graphs"]:
                yield from _graph_tensors(sub)


def check_decoded(model: dict[str, Any], resolved: bool) -> str | None:
    """What is wrong with a model the reader accepted (dtd._core._onnx_read's dict), or None."""
    if model["graph"] is None:
        return None
    for t in _graph_tensors(model["graph"]):
        problem = _tensor_problem(t, resolved)
        if problem:
            return problem
    return None
