"""The C++ ONNX reader (cpp/src/onnx, issue 11) against the onnx package's decode.

* its field table is pinned against onnx's descriptors (numbers, types, labels, and no field of a decoded message
  left out);
* every .onnx under tests/data, the ONNX backend node tests (when fetched) and the shared LeNet decode to the same
  values as ``onnx.load``;
* handwritten protobuf bytes: packed and unpacked repeated scalars, unknown fields of every wire type, and the
  malformed inputs it refuses with a ModelLoadError;
* external data: the rules dtd.load has always applied ('..', absolute paths, symlink escapes, short files);
* a fuzz loop over tests/fuzz's seeds and mutations, in a child process (a crash there fails the test instead of
  killing pytest): every case is a ModelLoadError or a decode equal to onnx's.

Accepted differences from onnx's decode (the reader is stricter, never more lenient, where it matters to dtd): it
refuses groups (protobuf skips unknown groups), sparse tensors and TensorProto.segment; a known field with the wrong
wire type (protobuf keeps it as an unknown field); int32 fields outside int32 and unknown AttributeType or
DataLocation values (protobuf truncates, or keeps unknown enum values aside); tensors whose data disagree with dims and
data_type (wrong size, wrong field, two fields, none, negative or overflowing dims), which onnx only notices when the
data are converted; graphs nested deeper than 64. It skips training_info, functions and device configurations.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper

import dtd
from dtd import _core
from fuzz.decoded import as_dict, difference
from fuzz.wire import tag, varint

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"

_MESSAGES: dict[str, Any] = {
    "ModelProto": onnx.ModelProto,
    "GraphProto": onnx.GraphProto,
    "NodeProto": onnx.NodeProto,
    "AttributeProto": onnx.AttributeProto,
    "ValueInfoProto": onnx.ValueInfoProto,
    "TensorProto": onnx.TensorProto,
    "TypeProto": onnx.TypeProto,
    "TypeProto.Tensor": onnx.TypeProto.Tensor,
    "TensorShapeProto": onnx.TensorShapeProto,
    "TensorShapeProto.Dimension": onnx.TensorShapeProto.Dimension,
    "OperatorSetIdProto": onnx.OperatorSetIdProto,
    "StringStringEntryProto": onnx.StringStringEntryProto,
}
_SCALARS = {
    "int64": FD.TYPE_INT64,
    "int32": FD.TYPE_INT32,
    "uint64": FD.TYPE_UINT64,
    "float": FD.TYPE_FLOAT,
    "double": FD.TYPE_DOUBLE,
    "string": FD.TYPE_STRING,
    "bytes": FD.TYPE_BYTES,
}


# -- the field table -------------------------------------------------------------------------------------------
def _repeated(fd: FD) -> bool:
    is_repeated = getattr(fd, "is_repeated", None)  # protobuf >= 6; older ones have only .label
    return bool(is_repeated) if is_repeated is not None else fd.label == FD.LABEL_REPEATED


def test_field_table_matches_onnx_descriptors() -> None:
    rows = _core._onnx_fields()
    seen: dict[str, set[str]] = {}
    for message, field, number, type_, repeated, action in rows:
        assert action in ("decode", "kind", "skip", "refuse")
        fd = _MESSAGES[message].DESCRIPTOR.fields_by_name[field]
        where = f"{message}.{field}"
        assert fd.number == number, where
        assert _repeated(fd) == repeated, where
        kind, _, name = type_.partition(" ")
        if kind == "message":
            assert fd.type == FD.TYPE_MESSAGE and fd.message_type.name == name, where
        elif kind == "enum":
            assert fd.type == FD.TYPE_ENUM and fd.enum_type.name == name, where
        else:
            assert fd.type == _SCALARS[kind], where
        assert field not in seen.setdefault(message, set()), f"{where} listed twice"
        seen[message].add(field)
    for message, cls in _MESSAGES.items():
        missing = {f.name for f in cls.DESCRIPTOR.fields} - seen.get(message, set())
        assert not missing, f"{message}: fields the reader's table does not list: {sorted(missing)}"


def test_enum_ranges_match_onnx() -> None:
    # The reader refuses AttributeType values above TYPE_PROTOS and DataLocation values other than 0 and 1.
    assert (
        max(v for _, v in onnx.AttributeProto.AttributeType.items()) == onnx.AttributeProto.TYPE_PROTOS == 14
    )
    assert sorted(v for _, v in onnx.TensorProto.DataLocation.items()) == [0, 1]
    assert _core._onnx_max_graph_depth == 64


# -- decode equality on real models --------------------------------------------------------------------------
def _shared_lenets() -> list[Path]:
    for parent in TESTS.parents:
        folder = parent / "shared" / "data" / "lrp_toolbox" / "onnx"
        if folder.is_dir():
            return sorted(folder.glob("*.onnx"))
    return []


def _assert_same_file(path: Path) -> None:
    want = as_dict(onnx.load(str(path)))
    got = _core._onnx_read_file(str(path))
    d = difference(got, want)
    assert d is None, f"{path}: {d}"
    raw = path.read_bytes()
    got = _core._onnx_read(raw, str(path.parent))
    assert difference(got, want) is None


DATA_MODELS = sorted(DATA.rglob("*.onnx"))


@pytest.mark.parametrize("path", DATA_MODELS, ids=[str(p.relative_to(DATA)) for p in DATA_MODELS])
def test_decode_equals_onnx_on_test_data(path: Path) -> None:
    _assert_same_file(path)


def test_decode_equals_onnx_on_shared_lenet() -> None:
    paths = _shared_lenets()
    if not paths:
        pytest.skip("shared LeNet models not found (shared/data/lrp_toolbox/onnx)")
    for path in paths:
        _assert_same_file(path)


def test_decode_equals_onnx_on_node_tests() -> None:
    from onnx_node import NODE_DIR, available

    if not available():
        pytest.skip(f"ONNX node tests not fetched into {NODE_DIR} (tools/onnx_node_tests.py)")
    paths = sorted(NODE_DIR.glob("test_*/model.onnx"))
    failures = []
    for path in paths:
        try:
            got = _core._onnx_read_file(str(path))
        except dtd.ModelLoadError as exc:
            failures.append(f"{path.parent.name}: {exc}")
            continue
        d = difference(got, as_dict(onnx.load(str(path))))
        if d:
            failures.append(f"{path.parent.name}: {d}")
    assert not failures, "\n".join(failures[:20])
    assert len(paths) > 1000


# -- handwritten bytes ----------------------------------------------------------------------------------------
def _len(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def _int(field: int, v: int) -> bytes:
    return tag(field, 0) + varint(v)


def _model(graph: bytes) -> bytes:
    return _int(1, 8) + _len(8, _int(2, 13)) + _len(7, graph)  # ir_version 8, opset 13, graph


def _node_with(attribute: bytes) -> bytes:
    return _len(1, _len(4, b"Conv") + _len(2, b"y") + _len(5, attribute))


def _both(data: bytes) -> dict[str, Any]:
    """The C++ decode, checked equal to onnx's."""
    got = _core._onnx_read(data)
    d = difference(got, as_dict(onnx.load_model_from_string(data)))
    assert d is None, d
    return got


def _refused(data: bytes, match: str) -> None:
    with pytest.raises(dtd.ModelLoadError, match=match):
        _core._onnx_read(data)


def test_packed_and_unpacked_repeated_scalars() -> None:
    name = _len(1, b"pads") + _int(20, onnx.AttributeProto.INTS)
    values = [1, 2, -3, 2**40]
    packed = _model(_node_with(name + _len(8, b"".join(varint(v) for v in values))))
    unpacked = _model(_node_with(name + b"".join(_int(8, v) for v in values)))
    for data in (packed, unpacked):
        got = _both(data)
        assert got["graph"]["node"][0]["attribute"][0]["ints"].tolist() == values
    floats = [1.5, -2.0]
    fpacked = _len(4, struct.pack("<2f", *floats))
    funpacked = b"".join(tag(4, 5) + struct.pack("<f", f) for f in floats)
    dpacked = _len(10, struct.pack("<2d", *floats))
    dunpacked = b"".join(tag(10, 1) + struct.pack("<d", f) for f in floats)
    for dims in (_len(1, varint(2)), _int(1, 2)):
        for body, dtype in ((fpacked, 1), (funpacked, 1), (dpacked, 11), (dunpacked, 11)):
            got = _both(_model(_len(5, dims + _int(2, dtype) + body + _len(8, b"w"))))
            tensor = got["graph"]["initializer"][0]
            assert (tensor["float_data"] if dtype == 1 else tensor["double_data"]).tolist() == floats
    for field, dtype, vals in (
        (5, TensorProto.INT32, [-1, 7]),
        (7, 7, [-(2**62), 5]),
        (11, 13, [2**64 - 1, 0]),
    ):
        for body in (_len(field, b"".join(varint(v) for v in vals)), b"".join(_int(field, v) for v in vals)):
            _both(_model(_len(5, _int(1, 2) + _int(2, dtype) + body + _len(8, b"v"))))


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (
        _int(1000, 2**63)
        + tag(1001, 1)
        + b"12345678"
        + _len(1002, b"anything")
        + tag(1003, 5)
        + b"1234"
        + _int(1004, 0)
    )
    graph = unknown + _node_with(
        unknown + _len(1, b"alpha") + _int(20, 1) + tag(2, 5) + struct.pack("<f", 0.5)
    )
    got = _both(unknown + _model(graph + unknown) + unknown)
    assert got["graph"]["node"][0]["attribute"][0]["f"] == 0.5


def test_unaligned_raw_data() -> None:
    values = np.arange(6, dtype=np.float32)
    for pad in range(4):  # a name of pad bytes shifts raw_data's offset in the input
        tensor = _len(8, b"w" * (pad + 1)) + _len(1, varint(2) + varint(3)) + _int(2, 1)
        got = _both(_model(_len(5, tensor + _len(9, values.tobytes()))))
        raw = got["graph"]["initializer"][0]["raw_data"]
        np.testing.assert_array_equal(np.frombuffer(raw, dtype=np.float32), values)


def test_malformed_bytes_are_refused() -> None:
    group = _model(_len(2, b"g")) + tag(50, 3) + tag(50, 4)
    onnx.load_model_from_string(group)  # protobuf skips an unknown group; dtd refuses it
    _refused(group, "groups")
    _refused(tag(1, 0) + b"\x80" * 10 + b"\x01", "longer than 10 bytes")
    _refused(tag(1, 0) + b"\x80\x80", "truncated varint")
    _refused(tag(7, 2) + varint(100) + b"abc", r"length 100 exceeds the 3 bytes left")
    _refused(tag(7, 2), "truncated varint")
    _refused(_model(_len(2, b"g"))[:-1], "exceeds")
    _refused(tag(50, 6), "invalid wire type")
    _refused(tag(7, 6), "wire type 6")
    _refused(tag(7, 0) + varint(1), "wire type 0")
    for data in (tag(1, 0) + b"\x80" * 10 + b"\x01", tag(7, 2) + varint(100) + b"abc"):
        with pytest.raises(DecodeError):
            onnx.load_model_from_string(data)  # onnx refuses these too


def test_tensor_inconsistencies_are_refused() -> None:
    def init(body: bytes) -> bytes:
        return _model(_len(5, _len(8, b"w") + body))

    _refused(init(_int(1, 2**40) + _int(1, 2**40) + _int(2, 1)), "does not fit in int64")
    _refused(init(_int(1, -1) + _int(2, 1)), "negative dimension")
    _refused(init(_int(1, 4) + _int(2, 1) + _len(9, bytes(15))), "holds 15 bytes in raw_data, expected 16")
    _refused(init(_int(1, 2) + _int(2, 1) + _len(7, varint(1) + varint(2))), "expected float_data")
    _refused(init(_int(1, 2) + _int(2, 1)), "holds no data")
    _refused(init(_int(1, 1) + _int(2, 1) + _len(9, bytes(4)) + tag(4, 5) + bytes(4)), "both raw_data and")
    _refused(init(_int(1, 1) + _int(2, 1) + _len(4, bytes(3))), "not a multiple of 4")
    _refused(init(_int(2, 2**31)), "does not fit in int32")
    _refused(init(_int(14, 7)), "unknown DataLocation")
    _refused(_model(_len(15, b"")), "sparse initializers")
    _refused(init(_len(3, b"")), "segmented")
    _refused(_model(_node_with(_len(1, b"a") + _int(20, 99))), "unknown AttributeType 99")


def test_nesting_depth_bomb_is_refused() -> None:
    def nested(depth: int) -> bytes:
        g = _len(2, b"leaf")
        for _ in range(depth - 1):
            g = _len(1, _len(4, b"If") + _len(5, _len(1, b"then_branch") + _int(20, 5) + _len(6, g)))
        return _model(g)

    got = _core._onnx_read(nested(64))
    depth, g = 1, got["graph"]
    while g["node"]:
        g, depth = g["node"][0]["attribute"][0]["g"], depth + 1
    assert depth == 64 and g["name"] == b"leaf"
    _refused(nested(65), "nest deeper than 64")
    _refused(nested(2000), "nest deeper than 64")  # refused at the limit, long before the stack runs out


def test_error_names_message_field_and_offset() -> None:
    data = _model(_node_with(_len(1, b"k") + _int(20, 7) + _len(8, b"\x80")))
    with pytest.raises(dtd.ModelLoadError) as info:
        _core._onnx_read(data)
    msg = str(info.value)
    assert "AttributeProto.ints (field 8)" in msg
    assert "ModelProto.graph.node[0].attribute[0]" in msg
    assert f"at byte {len(data) - 1}" in msg, msg


def test_many_empty_messages_stay_within_the_budget() -> None:
    # 2 bytes per empty node: the decoded structures are charged per element (at most 64 bytes per input byte,
    # plus 64 MiB); a file of empty nodes still decodes.
    data = _model(_len(1, b"") * (1 << 15))
    got = _core._onnx_read(data)
    assert len(got["graph"]["node"]) == 1 << 15


# -- external data ---------------------------------------------------------------------------------------------
def _external_model(folder: Path, location: str = "weights.bin") -> tuple[Path, onnx.ModelProto]:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    init = onnx.numpy_helper.from_array(w, "w")
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "g", [x], [y], [init])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    path = folder / "model.onnx"
    stored = onnx.ModelProto()
    stored.CopyFrom(model)
    onnx.save_model(stored, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path, model


def _with(path: Path, key: str, value: str) -> bytes:
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == key:
                entry.value = value
    return model.SerializeToString()


def test_external_data_is_read(tmp_path: Path) -> None:
    path, model = _external_model(tmp_path)
    want = as_dict(onnx.load(str(path)))
    assert difference(_core._onnx_read_file(str(path)), want) is None
    assert difference(_core._onnx_read(path.read_bytes(), str(tmp_path)), want) is None
    raw = _core._onnx_read_file(str(path))["graph"]["initializer"][0]["raw_data"]
    assert raw == onnx.numpy_helper.to_array(model.graph.initializer[0]).tobytes()
    undecoded = _core._onnx_read(path.read_bytes(), external=False)
    assert difference(undecoded, as_dict(onnx.load(str(path), load_external_data=False))) is None


def test_external_data_in_bytes_needs_a_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = _external_model(tmp_path)
    monkeypatch.chdir(tmp_path)  # weights.bin in the working directory must not be found
    with pytest.raises(dtd.ModelLoadError, match="needs base_dir"):
        _core._onnx_read(path.read_bytes())


@pytest.mark.parametrize(
    "location,match",
    [
        ("../secret.bin", "without '..'"),
        ("sub/../../secret.bin", "without '..'"),
        ("sub\\..\\secret.bin", "without '..'"),
        ("/etc/passwd", "relative path"),
        ("C:\\secret.bin", "relative path"),
        ("\\\\server\\share\\x", "relative path"),
        ("a\0b", "NUL"),
        ("", "empty"),
        ("missing.bin", "no such file"),
        ("sub", "no such file"),
    ],
)
def test_unsafe_locations_are_refused(tmp_path: Path, location: str, match: str) -> None:
    inner = tmp_path / "model"
    inner.mkdir()
    (inner / "sub").mkdir()
    (tmp_path / "secret.bin").write_bytes(bytes(4096))
    path, _ = _external_model(inner)
    with pytest.raises(dtd.ModelLoadError, match=match) as info:
        _core._onnx_read(_with(path, "location", location), str(inner))
    assert "initializer 'w'" in str(info.value)


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "model"
    inner.mkdir()
    path, _ = _external_model(inner)
    outside = tmp_path / "outside.bin"
    os.replace(inner / "weights.bin", outside)
    (inner / "weights.bin").symlink_to(outside)
    with pytest.raises(dtd.ModelLoadError, match="outside the model's folder"):
        _core._onnx_read_file(str(path))
    (inner / "weights.bin").unlink()
    (inner / "link").symlink_to(tmp_path)  # a folder link out, then a file name
    with pytest.raises(dtd.ModelLoadError, match="outside the model's folder"):
        _core._onnx_read(_with(path, "location", "link/outside.bin"), str(inner))


def test_symlink_inside_the_folder_is_followed(tmp_path: Path) -> None:
    path, _ = _external_model(tmp_path)
    (tmp_path / "data").mkdir()
    os.replace(tmp_path / "weights.bin", tmp_path / "data" / "w.bin")
    (tmp_path / "weights.bin").symlink_to(tmp_path / "data" / "w.bin")
    got = _core._onnx_read_file(str(path))
    assert len(got["graph"]["initializer"][0]["raw_data"]) == 48


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("offset", "100000", "lies outside"),
        ("offset", "-1", "lies outside"),
        ("offset", str(2**63 - 1), "lies outside"),
        ("offset", "12x", "not an integer"),
        ("offset", str(2**64), "not an integer"),
        ("length", "12", "length 12 != 48"),
        ("length", "-48", "length -48 != 48"),
    ],
)
def test_offsets_and_lengths_are_checked(tmp_path: Path, key: str, value: str, match: str) -> None:
    path, _ = _external_model(tmp_path)
    with pytest.raises(dtd.ModelLoadError, match=match):
        _core._onnx_read(_with(path, key, value), str(tmp_path))


def test_short_file_is_refused(tmp_path: Path) -> None:
    path, _ = _external_model(tmp_path)
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[:20])
    with pytest.raises(dtd.ModelLoadError, match=r"\[0, 48\) lies outside weights.bin \(20 bytes\)"):
        _core._onnx_read_file(str(path))


def test_external_description_that_is_not_utf8(tmp_path: Path) -> None:
    path, _ = _external_model(tmp_path)
    raw = path.read_bytes().replace(b"weights.bin", b"weight\xff.bin")  # same length
    with pytest.raises(dtd.ModelLoadError, match="not valid UTF-8"):
        _core._onnx_read(raw, str(tmp_path))


# -- defects found by the reader's fuzz campaign (tools/fuzz.py --target reader) --------------------------------------
def test_external_tensor_with_inline_data_is_refused(tmp_path: Path) -> None:
    # An external tensor that also holds float_data was read into raw_data as well: data in two fields.
    path, _ = _external_model(tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].float_data.extend([1.0] * 12)
    with pytest.raises(dtd.ModelLoadError, match="external file and also holds float_data"):
        _core._onnx_read(model.SerializeToString(), str(tmp_path))
    model.graph.initializer[0].ClearField("float_data")
    model.graph.initializer[0].raw_data = bytes(48)
    with pytest.raises(dtd.ModelLoadError, match="external file and also holds raw_data"):
        _core._onnx_read(model.SerializeToString(), external=False)


def test_overlapping_external_ranges_are_refused(tmp_path: Path) -> None:
    # Many initializers naming the same bytes of one file made a small model ask for many times the file's size.
    path, _ = _external_model(tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    for k in range(3):
        copy = model.graph.initializer.add()
        copy.CopyFrom(model.graph.initializer[0])
        copy.name = f"w{k}"
    with pytest.raises(dtd.ModelLoadError, match=r"take more than its 48 bytes in all"):
        _core._onnx_read(model.SerializeToString(), str(tmp_path))


def test_empty_base_dir_is_a_model_load_error(tmp_path: Path) -> None:
    # base_dir="" raised std::filesystem::filesystem_error (a RuntimeError), not a ModelLoadError.
    path, _ = _external_model(tmp_path)
    with pytest.raises(dtd.ModelLoadError, match="base_dir '' cannot be resolved"):
        _core._onnx_read(path.read_bytes(), "")


def test_message_with_a_name_that_is_not_utf8() -> None:
    # The message quotes the tensor's name; bytes that are not UTF-8 raised a UnicodeDecodeError, not the error.
    data = _model(_len(5, _len(8, b"w\xaf\xff") + _int(1, 2) + _int(2, 1)))
    with pytest.raises(dtd.ModelLoadError, match=r"tensor 'w\\xaf\\xff' of 2 elements holds no data"):
        _core._onnx_read(data)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    # open() of a FIFO waited for a writer forever; in a child process, so that a regression cannot hang pytest.
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    code = (
        "import sys, dtd\nfrom dtd import _core\ntry:\n    _core._onnx_read_file(sys.argv[1])\n"
        "except dtd.ModelLoadError as e:\n    print(e)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=120, check=True
    )
    assert "not a regular file" in proc.stdout, proc


# -- fuzz: mutated seeds in a child process -------------------------------------------------------------------
FUZZ_CASES = 2000


def _fuzz_cases(start: int, stop: int) -> Iterator[tuple[str, bytes, tuple[tuple[str, bytes], ...]]]:
    from fuzz.mutate import KINDS, mutate
    from fuzz.seeds import seed_models

    seeds = list(seed_models().values())
    for i in range(start, stop):
        seed = seeds[i % len(seeds)]
        kind = KINDS[(i // len(seeds)) % len(KINDS)]
        data, _ = mutate(seed, kind, 1000 + i)
        yield f"{seed.name}:{kind}:{1000 + i}", data, seed.files


def _fuzz_one(data: bytes, base_dir: str) -> tuple[str, str]:
    """One case's class and the reader's message; AssertionError for a decode that differs from onnx's."""
    try:
        want = as_dict(onnx.load_model_from_string(data))
    except Exception:
        want = None
    message = ""
    try:
        got = _core._onnx_read(data, external=False)
    except dtd.ModelLoadError as exc:
        got, message = None, str(exc)
    try:  # with external data resolved: a ModelLoadError or a model, nothing else
        _core._onnx_read(data, base_dir)
    except dtd.ModelLoadError:
        pass
    if got is None:
        return ("refused_by_both" if want is None else "refused_by_dtd_only"), message
    if want is None:
        return "accepted_by_dtd_only", ""
    d = difference(got, want)
    if d:
        raise AssertionError(d)
    return "equal", ""


def _fuzz_child(start: int, stop: int, folder: str) -> None:
    """Runs cases [start, stop); prints one JSON line per case (so a crash names the case that caused it)."""
    for case, data, files in _fuzz_cases(start, stop):
        for name, content in files:
            Path(folder, name).write_bytes(content)
        try:
            outcome, detail = _fuzz_one(data, folder)
        except AssertionError as exc:
            outcome, detail = "different", str(exc)
        except Exception as exc:
            outcome, detail = "unclean", f"{type(exc).__name__}: {exc}"
        print(json.dumps({"case": case, "outcome": outcome, "detail": detail[:500]}), flush=True)


def test_fuzz_reader_against_onnx(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__)), "--fuzz-child", "0", str(FUZZ_CASES), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        last = results[-1]["case"] if results else "none"
        pytest.fail(
            f"the fuzz child died (status {proc.returncode}) after case {last} of {len(results)}:\n"
            f"{proc.stderr[-3000:]}"
        )
    assert len(results) == FUZZ_CASES
    bad = [r for r in results if r["outcome"] in ("different", "unclean")]
    assert not bad, "\n".join(f"{r['case']}: {r['outcome']}: {r['detail']}" for r in bad[:10])
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    assert counts.get("equal", 0) > FUZZ_CASES // 10, counts  # the mutations leave many models decodable


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--fuzz-child":
    _fuzz_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
