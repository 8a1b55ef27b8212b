"""The fuzz harness (tools/fuzz.py) itself: it classifies hand-made cases correctly, its mutations are
reproducible, and a crash or a hang costs one case, not the campaign."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from fuzz import wire
from fuzz.mutate import KINDS, mutate
from fuzz.seeds import Seed, tiny_model

ROOT = Path(__file__).resolve().parents[1]


def _load_tool() -> Any:
    spec = importlib.util.spec_from_file_location("dtd_fuzz_tool", ROOT / "tools" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dtd_fuzz_tool"] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_tool()


def _case(data: bytes, hook: str | None = None, name: str = "hand") -> dict[str, Any]:
    return {"seed": name, "kind": "hand", "rseed": 1, "data": data, "files": (), "what": name, "hook": hook}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """One campaign over the hand-made cases (two workers: the crash and the hang restart theirs)."""
    good = tiny_model().SerializeToString()
    cases = {
        "clean_error": _case(b"\x08\x07garbage that is not a model"),
        "accepted_equal": _case(good),
        "crash": _case(good, hook="abort"),
        "hang": _case(good, hook="hang"),
        "unclean_exception": _case(good, hook="raise"),
        "bare_message": _case(good, hook="bare"),
        "memory": _case(good, hook="memory"),
        "after_crash": _case(good),
    }
    records = fuzz.run_campaign(list(cases.values()), workers=2, timeout=4.0, mem_limit=3 << 30, out=None)
    return {name: rec for name, rec in zip(cases, records, strict=True)}


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("clean_error", "clean_error"),
        ("accepted_equal", "accepted_equal"),
        ("crash", "crash"),
        ("hang", "hang"),
        ("unclean_exception", "unclean_exception"),
        ("bare_message", "unclean_exception"),
        ("memory", "memory"),
        ("after_crash", "accepted_equal"),
    ],
)
def test_hand_made_cases_are_classified(results: dict[str, dict[str, Any]], name: str, cls: str) -> None:
    rec = results[name]
    assert rec["class"] == cls, rec


def test_crash_names_the_signal_and_phase(results: dict[str, dict[str, Any]]) -> None:
    assert "SIGABRT" in results["crash"]["detail"] and "load" in results["crash"]["detail"]
    assert "during load" in results["hang"]["detail"]
    assert "KeyError" in results["unclean_exception"]["detail"]


def _res(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"phase": "done", "loaded": True, "peak_rss": 1 << 20, "explain_equal": True}
    base.update(kw)
    return base


def test_classify_results_without_a_worker() -> None:
    out = np.array([[1.0, 2.0]], np.float32)
    assert fuzz.classify(_res(out=out, ref=out * (1 + 1e-6)))[0] == "accepted_equal"
    assert fuzz.classify(_res(out=out, ref=out * 1.01))[0] == "wrong_result"
    assert fuzz.classify(_res(out=out, ref=out.reshape(2)))[0] == "wrong_result"
    assert (
        fuzz.classify(_res(out=out, ref=out, explain_equal=False, explain_diff=1e-7))[0] == "nondeterministic"
    )
    assert fuzz.classify(_res(out=out, ref=out, peak_rss=3 << 30))[0] == "memory"
    refused = {"ort_error": {"type": "x", "message": "bad"}}
    invalid = {"checker_ok": False, "checker_error": {"type": "x", "message": "no"}}
    assert fuzz.classify(_res(out=out, **refused, **invalid))[0] == "accepted_invalid"
    assert fuzz.classify(_res(out=out, **refused, checker_ok=True))[0] == "accepted_no_reference"
    bad_alloc = {"type": "builtins.MemoryError", "message": "std::bad_alloc", "traceback": ""}
    assert fuzz.classify({"phase": "forward", "loaded": True, "forward_error": bad_alloc})[0] == "memory"
    named = {"type": "builtins.ValueError", "message": "x: expected [N, 4], got [2, 5]", "traceback": ""}
    assert fuzz.classify({"phase": "forward", "loaded": True, "forward_error": named})[0] == "clean_error"
    # a crash or timeout of the reference is not dtd's defect
    assert fuzz.classify({"phase": "onnxruntime", "died": -11})[0] == "reference_failed"
    assert fuzz.classify({"phase": "explain", "died": -11})[0] == "crash"


def test_mutations_are_reproducible_and_change_the_model() -> None:
    seed = Seed("tiny", tiny_model().SerializeToString())
    for kind in KINDS:
        for rseed in range(4):
            a = mutate(seed, kind, rseed)
            assert a == mutate(seed, kind, rseed), kind
            assert a[0] != seed.data or "not applicable" in a[1], (kind, a[1])


def test_case_list_is_deterministic_and_covers_every_kind() -> None:
    seeds = {"tiny": Seed("tiny", b""), "ext": Seed("ext", b"", (("w.bin", b""),))}
    specs = fuzz.make_cases(2 * len(KINDS), 5, None, seeds)
    assert specs == fuzz.make_cases(2 * len(KINDS), 5, None, seeds)
    assert {k for _, k, _ in specs} == set(KINDS)
    assert all(name == "ext" for name, k, _ in specs if k == "ext_data")


def test_replay_file_with_external_data(tmp_path: Path) -> None:
    model = tiny_model()
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="w.bin", size_threshold=0)
    case = fuzz._case_from_file(path)
    assert [name for name, _ in case["files"]] == ["w.bin"]
    (rec,) = fuzz.run_campaign([case], workers=1, timeout=20.0, mem_limit=3 << 30, out=None)
    assert rec["class"] == "accepted_equal", rec


# -- the reader target (tools/fuzz.py --target reader, tests/fuzz/wire.py) ----------------------------------------
@pytest.fixture(scope="module")
def reader_results() -> dict[str, dict[str, Any]]:
    good = tiny_model().SerializeToString()
    cases = {
        "clean_error": _case(b"\x08\x07garbage that is not a model"),
        "accepted": _case(good),
        "crash": _case(good, hook="abort"),
        "unclean_exception": _case(good, hook="raise"),
        "memory": _case(good, hook="memory"),
    }
    records = fuzz.run_campaign(
        list(cases.values()), workers=2, timeout=20.0, mem_limit=3 << 30, out=None, target="reader"
    )
    return {name: rec for name, rec in zip(cases, records, strict=True)}


@pytest.mark.parametrize("name", ["clean_error", "accepted", "crash", "unclean_exception", "memory"])
def test_reader_cases_are_classified(reader_results: dict[str, dict[str, Any]], name: str) -> None:
    assert reader_results[name]["class"] == name, reader_results[name]


def test_classify_reader_results_without_a_worker() -> None:
    ok = {"problem": None}
    error = {
        "error": {"type": "dtd.errors.ModelLoadError", "message": "bytes: malformed ONNX model at byte 3"}
    }
    assert fuzz.classify_reader({"read_bytes": ok, "read_external": ok, "read_file": ok})[0] == "accepted"
    assert (
        fuzz.classify_reader({"read_bytes": error, "read_external": error, "read_file": error})[0]
        == "clean_error"
    )
    bad = {"problem": "tensor 'w': data in ['float_data', 'raw_data']"}
    assert fuzz.classify_reader({"read_bytes": ok, "read_external": bad})[0] == "invalid_model"
    assert fuzz.classify_reader({"read_bytes": ok, "inconsistent": "one accepted"})[0] == "inconsistent"
    assert fuzz.classify_reader({"read_bytes": ok, "different": "model.ir_version: 1 != 2"})[0] == "different"
    runtime = {
        "error": {"type": "builtins.RuntimeError", "message": "filesystem error: cannot make absolute path"}
    }
    assert fuzz.classify_reader({"read_bytes": ok, "read_external": runtime})[0] == "unclean_exception"
    assert fuzz.classify_reader({"phase": "read_file", "died": -11})[0] == "crash"
    assert fuzz.classify_reader({"phase": "read_bytes", "timeout": True, "seconds": 9.0})[0] == "hang"


def test_wire_parse_and_encode_round_trip() -> None:
    models = [tiny_model().SerializeToString()]
    models += [p.read_bytes() for p in sorted((ROOT / "tests" / "data").rglob("*.onnx"))[::10]]
    for data in models:
        assert wire.encode(wire.parse(data, onnx.ModelProto.DESCRIPTOR)) == data


def test_wire_mutations_are_reproducible_and_change_the_model() -> None:
    seed = Seed("tiny", tiny_model().SerializeToString())
    for kind in wire.KINDS:
        changed = 0
        for rseed in range(4):
            a = wire.mutate(seed, kind, rseed)
            assert a == wire.mutate(seed, kind, rseed), kind
            changed += a[0] != seed.data
        assert changed, kind


def test_reader_case_list_covers_every_kind_and_seed_group() -> None:
    seeds = {name: Seed(name, b"") for name in ("mlp", "data/a.onnx", "data/b.onnx", "node/test_x")}
    specs = fuzz.make_cases(4 * len(wire.KINDS), 3, None, seeds, target="reader")
    assert specs == fuzz.make_cases(4 * len(wire.KINDS), 3, None, seeds, target="reader")
    assert {k for _, k, _ in specs} == set(wire.KINDS)
    assert {name.split("/")[0] for name, _, _ in specs} == {"mlp", "data", "node"}
