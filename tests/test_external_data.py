"""External tensor data: read safely, never resolved against the working directory (issue 10, defect 9)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

import dtd
from builders import GraphBuilder, random_input


def _save_external(
    tmp: Path, name: str = "model.onnx", location: str = "weights.bin"
) -> tuple[Path, onnx.ModelProto]:
    b = GraphBuilder((8,), seed=3)
    model = b.build(b.gemm(b.relu(b.gemm("x", 16)), 4))
    path = tmp / name
    stored = onnx.ModelProto()
    stored.CopyFrom(model)  # save_model moves the data of the proto it is given out to the file
    onnx.save_model(stored, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path, model


def _set(model: onnx.ModelProto, key: str, value: str) -> None:
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == key:
                entry.value = value


def test_external_data_by_path_and_with_base_dir(tmp_path: Path) -> None:
    path, original = _save_external(tmp_path)
    x = random_input((2, 8), seed=1)
    want = dtd.load(original).forward(x)
    np.testing.assert_array_equal(dtd.load(path).forward(x), want)
    raw = path.read_bytes()
    np.testing.assert_array_equal(dtd.load(raw, base_dir=tmp_path).forward(x), want)
    proto = onnx.load(str(path), load_external_data=False)
    np.testing.assert_array_equal(dtd.load(proto, base_dir=tmp_path).forward(x), want)


def test_bytes_with_external_data_need_a_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The defect: bytes naming 'weights.bin' loaded ./weights.bin from the working directory.
    path, _ = _save_external(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(dtd.ModelLoadError, match="needs base_dir"):
        dtd.load(path.read_bytes())
    with pytest.raises(dtd.ModelLoadError, match="needs base_dir"):
        dtd.load(onnx.load(str(path), load_external_data=False))


@pytest.mark.parametrize(
    "location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "C:\\secret.bin", "a\0b", ""]
)
def test_unsafe_locations_are_refused(tmp_path: Path, location: str) -> None:
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    path, _ = _save_external(inner)
    model = onnx.load(str(path), load_external_data=False)
    _set(model, "location", location)
    with pytest.raises(dtd.ModelLoadError, match=r"external data location|relative path|NUL"):
        dtd.load(model.SerializeToString(), base_dir=inner)


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "model"
    inner.mkdir()
    path, _ = _save_external(inner)
    outside = tmp_path / "outside.bin"
    os.replace(inner / "weights.bin", outside)
    (inner / "weights.bin").symlink_to(outside)
    with pytest.raises(dtd.ModelLoadError, match="outside the model's folder"):
        dtd.load(path)


@pytest.mark.parametrize(
    "key,value,match", [("offset", "100000", "lies outside"), ("length", "12", "length 12")]
)
def test_offsets_and_lengths_are_checked(tmp_path: Path, key: str, value: str, match: str) -> None:
    path, _ = _save_external(tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    _set(model, key, value)
    with pytest.raises(dtd.ModelLoadError, match=match):
        dtd.load(model.SerializeToString(), base_dir=tmp_path)


def test_short_file_is_refused(tmp_path: Path) -> None:
    path, _ = _save_external(tmp_path)
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(dtd.ModelLoadError, match="lies outside"):
        dtd.load(path)


def test_location_that_is_not_utf8(tmp_path: Path) -> None:
    # Found by tools/fuzz.py: a byte flip in the location made protobuf hand it over as bytes (a TypeError escaped).
    path, _ = _save_external(tmp_path)
    raw = path.read_bytes().replace(b"weights.bin", b"weights\xff.bin")
    (tmp_path / "bad.onnx").write_bytes(raw)
    with pytest.raises(dtd.ModelLoadError):
        dtd.load(tmp_path / "bad.onnx")


def test_overlapping_ranges_are_refused(tmp_path: Path) -> None:
    # The C++ reader's fuzz campaign found it there first (issue 11): initializers naming the same bytes of one file
    # let a small model ask for many times the bytes on disk. The rule: the tensors of one file take at most its size.
    path, _ = _save_external(tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    first = model.graph.initializer[0]
    for k in range(3):
        copy = model.graph.initializer.add()
        copy.CopyFrom(first)
        copy.name = f"copy{k}"
    with pytest.raises(dtd.ModelLoadError, match=r"take more than its \d+ bytes in all"):
        dtd.load(model.SerializeToString(), base_dir=tmp_path)


def test_external_data_entries_on_a_tensor_kept_in_the_file_are_ignored() -> None:
    """external_data means something only with data_location EXTERNAL (onnx.proto): a tensor kept in the file that
    also carries such entries (found by libFuzzer on the C++ reader) loads from its own data, no base_dir needed."""
    b = GraphBuilder((8,), seed=3)
    model = b.build(b.gemm(b.relu(b.gemm("x", 16)), 4))
    x = random_input((2, 8), seed=1)
    want = dtd.load(model).forward(x)
    for tensor in model.graph.initializer:
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "weights.bin"
        assert tensor.data_location == onnx.TensorProto.DEFAULT
    np.testing.assert_array_equal(dtd.load(model).forward(x), want)
    raw = model.SerializeToString()
    np.testing.assert_array_equal(dtd.load(raw).forward(x), want)
    # the reader's promise (dtd/onnx.hpp): no tensor leaves it with external_data entries
    for external in (True, False):
        decoded = dtd._core._onnx_read(raw, None, external)
        for tensor in decoded["graph"]["initializer"]:
            assert tensor["external_data"] == [] and tensor["data_location"] == 0
