#!/usr/bin/env python3
"""Deterministic fuzz harness for dtd.load / Model.forward / dtd.explain (issue 10) and the C++ ONNX reader (issue 11).

Each case is (seed model, mutation kind, rng seed): a valid seed from tests/fuzz/seeds.py mutated by
tests/fuzz/mutate.py. A case runs in a persistent worker subprocess (restarted after a crash or a timeout)
under an address-space limit: load from bytes (by path for a model with external data); if it loads, forward
on a seeded random input (when the input is of a reasonable size) and compare with onnxruntime when
onnxruntime accepts the model; explain twice with the default rules and require identical results.

Classes: ``clean_error``, ``accepted_equal``, ``accepted_no_reference`` (onnxruntime refuses, or cannot be
compared, and onnx.checker.check_model(full_check=True) passes), ``reference_failed`` (onnxruntime itself
crashed or hung), and the defects: ``crash``, ``hang``, ``memory``, ``unclean_exception``, ``wrong_result``,
``nondeterministic``, ``accepted_invalid``. Exit status 1 if any case is a defect.

``--target reader`` fuzzes the C++ ONNX reader alone (cpp/src/onnx, through dtd._core._onnx_read and
_onnx_read_file) with tests/fuzz/wire.py's protobuf wire-level mutations of every committed model (and the ONNX node
tests when fetched): each case is read from bytes (external data left as described, then resolved against the case's
folder, then against base_dir "") and from a file. Clean: ``clean_error`` (a dtd.ModelLoadError), ``accepted`` (a
model). Defects besides crash, hang, memory and unclean_exception: ``invalid_model`` (an accepted model breaks the
reader's postconditions: tensor data in two fields, or none, or an external reference left), ``inconsistent`` (bytes +
base_dir and the file path disagree), ``different`` (both the reader and onnx accept the bytes but decode different
values).

    python tools/fuzz.py --cases 1500 --workers 2 --out fuzz-out     # a bounded campaign
    python tools/fuzz.py --case resnet_bn:attr_value:123456             # rerun one case
    python tools/fuzz.py --replay fuzz-out/repro/crash/0042_....onnx    # rerun a reproducer file
    python tools/fuzz.py --target reader --cases 2000 --out fuzz-reader  # the C++ reader's campaign
    python tools/fuzz.py --target reader --case data/zoo_minis/x.onnx:length:77
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))

DEFECTS = (
    "crash",
    "hang",
    "memory",
    "unclean_exception",
    "wrong_result",
    "nondeterministic",
    "accepted_invalid",
    "invalid_model",
    "inconsistent",
    "different",
)
CLEAN = ("clean_error", "accepted_equal", "accepted_no_reference", "reference_failed", "accepted")
CLASSES = DEFECTS + CLEAN
#: The reader target's calls, in order: (phase, resolves external data).
READER_CALLS = (
    ("read_bytes", False),
    ("read_external", True),
    ("read_file", True),
    ("read_empty_base_dir", True),
)
#: Phases in which dtd runs (a crash or timeout there is dtd's); the others are the references'.
DTD_PHASES = ("load", "forward", "explain", *(name for name, _ in READER_CALLS))
TARGETS = ("model", "reader")
GIB = 1 << 30
DEFAULTS = {
    "mem_limit": 3 * GIB,
    "rss_limit": 2 * GIB,
    "timeout": 20.0,
    "ref_timeout": 5.0,
    "max_input": 1 << 21,
    "rtol": 1e-4,
}


# ==========================================================================================================
# Worker side
# ==========================================================================================================
def _send(fd: int, msg: dict[str, Any]) -> None:
    data = pickle.dumps(msg)
    os.write(fd, struct.pack("<Q", len(data)) + data)


def _recv_exact(fd: int, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM (Linux >= 4.0)
            f.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _exc(err: BaseException) -> dict[str, str]:
    return {
        "type": f"{type(err).__module__}.{type(err).__qualname__}",
        "message": str(err)[:2000],
        "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__))[-4000:],
    }


def _hook(name: str | None) -> None:
    """Test hooks (tests/test_fuzz_harness.py): make the case misbehave on purpose."""
    if not name:
        return
    if name == "abort":
        os.abort()
    if name == "hang":
        while True:
            time.sleep(1)
    if name == "raise":
        raise KeyError("forced by the test hook")
    if name == "bare":
        import dtd

        raise dtd.ModelLoadError("failed")
    if name == "memory":
        raise MemoryError("std::bad_alloc")
    if name == "alloc":
        blocks = []
        while True:
            blocks.append(bytearray(256 << 20))
    raise ValueError(f"unknown hook {name!r}")


def _declared_batch(model: Any) -> int:
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    if dims and dims[0].HasField("dim_value") and 0 < dims[0].dim_value <= 8:
        return int(dims[0].dim_value)
    return 2


def run_case(case: dict[str, Any], report: Any) -> dict[str, Any]:
    """Runs one case in this process (the worker); ``report(phase)`` announces each phase before it starts."""
    import numpy as np

    import dtd

    res: dict[str, Any] = {"phase": None}
    max_input = int(case.get("max_input", DEFAULTS["max_input"]))
    with tempfile.TemporaryDirectory(prefix="dtd-fuzz-") as tmp:
        src: Any = case["data"]
        if case.get("files"):
            for name, blob in case["files"]:
                Path(tmp, name).write_bytes(blob)
            src = os.path.join(tmp, "model.onnx")
            Path(src).write_bytes(case["data"])

        def phase(name: str) -> None:
            res["phase"] = name
            report(name)

        _reset_peak_rss()
        phase("load")
        try:
            _hook(case.get("hook"))
            model = dtd.load(src)
        except Exception as err:
            res["load_error"] = _exc(err)
            res["peak_rss"] = _peak_rss()
            return res
        res["loaded"] = True
        shape = tuple(int(d) for d in model.input_shape)
        try:
            import onnx

            proto = onnx.ModelProto()
            proto.ParseFromString(case["data"])
            batch = _declared_batch(proto)
        except Exception:
            batch = 2
        size = batch * int(np.prod(shape, dtype=object)) if all(d >= 0 for d in shape) else -1
        res["input_shape"] = [batch, *shape]
        x = None
        if 0 < size <= max_input:
            x = (
                np.random.default_rng(case.get("rseed", 0))
                .standard_normal((batch, *shape))
                .astype(np.float32)
            )
            phase("forward")
            try:
                res["out"] = np.asarray(model.forward(x))
            except Exception as err:
                res["forward_error"] = _exc(err)
            phase("explain")
            try:
                first = np.asarray(dtd.explain(model, x))
                second = np.asarray(dtd.explain(model, x))
                res["explain_equal"] = bool(
                    first.shape == second.shape and np.array_equal(first, second, equal_nan=True)
                )
                if not res["explain_equal"]:
                    diff = np.abs(first.astype(np.float64) - second.astype(np.float64))
                    res["explain_diff"] = float(np.nanmax(diff)) if diff.size else 0.0
            except Exception as err:
                res["explain_error"] = _exc(err)
        else:
            res["skipped_input"] = f"input [{batch}, {shape}] has {size} elements (limit {max_input})"
        res["peak_rss"] = _peak_rss()
        del model

        phase("onnxruntime")
        try:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 4
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
            res["ort_loaded"] = True
            if x is not None:
                ins = sess.get_inputs()
                if len(ins) != 1 or ins[0].type != "tensor(float)":
                    res["ort_error"] = {
                        "type": "feed",
                        "message": f"inputs {[(i.name, i.type) for i in ins]}",
                    }
                else:
                    res["ref"] = np.asarray(sess.run(None, {ins[0].name: x})[0])
        except Exception as err:
            res["ort_error"] = _exc(err)
        if "ref" not in res:
            phase("checker")
            try:
                import onnx

                onnx.checker.check_model(src if case.get("files") else case["data"], full_check=True)
                res["checker_ok"] = True
            except Exception as err:
                res["checker_ok"] = False
                res["checker_error"] = _exc(err)
        res["phase"] = "done"
    return res


def run_reader_case(case: dict[str, Any], report: Any) -> dict[str, Any]:
    """Runs one case of the reader target in this process: the C++ reader on the bytes (external data left as
    described, then resolved against the case's folder) and on the file; then onnx's decode of the same bytes."""
    from dtd import _core
    from fuzz.decoded import as_dict, difference
    from fuzz.wire import check_decoded

    res: dict[str, Any] = {"phase": None}
    decoded: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dtd-fuzz-reader-") as tmp:
        for name, blob in case.get("files") or ():
            Path(tmp, name).write_bytes(blob)
        path = os.path.join(tmp, "model.onnx")
        Path(path).write_bytes(case["data"])
        calls = {
            "read_bytes": lambda: _core._onnx_read(case["data"], external=False),
            "read_external": lambda: _core._onnx_read(case["data"], tmp),
            "read_file": lambda: _core._onnx_read_file(path),
            "read_empty_base_dir": lambda: _core._onnx_read(case["data"], ""),  # no folder: an error, not ./
        }
        _reset_peak_rss()
        for name, resolved in READER_CALLS:
            res["phase"] = name
            report(name)
            try:
                if name == "read_bytes":
                    _hook(case.get("hook"))
                model = calls[name]()
            except Exception as err:
                res[name] = {"error": _exc(err)}
                continue
            res[name] = {"problem": check_decoded(model, resolved)}
            decoded[name] = model
        res["peak_rss"] = _peak_rss()
        if ("read_external" in decoded) != ("read_file" in decoded):
            res["inconsistent"] = "read from bytes with base_dir and from the file: one accepted, one refused"
        elif "read_external" in decoded:
            res["inconsistent"] = difference(decoded["read_external"], decoded["read_file"])
        if "read_bytes" in decoded and case.get("differential", True):
            res["phase"] = "onnx"
            report("onnx")
            try:
                import onnx

                want = as_dict(onnx.load_model_from_string(case["data"]))
            except Exception as err:
                res["onnx_error"] = f"{type(err).__name__}: {str(err)[:200]}"
            else:
                res["different"] = difference(decoded["read_bytes"], want)
        res["phase"] = "done"
    return res


def worker_main(target: str = "model") -> None:
    """The worker loop: read a case from stdin, run it, write phase messages and the result to stdout."""
    proto_out = os.dup(1)
    os.dup2(2, 1)  # whatever dtd or onnxruntime print goes to the log, not into the protocol
    limit = int(os.environ.get("DTD_FUZZ_MEM_LIMIT", DEFAULTS["mem_limit"]))
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy  # noqa: F401
    import onnx  # noqa: F401

    if target == "model":
        import onnxruntime  # noqa: F401

    import dtd

    dtd.set_num_threads(1)
    run = run_reader_case if target == "reader" else run_case
    _send(proto_out, {"ready": True})
    while True:
        try:
            (n,) = struct.unpack("<Q", _recv_exact(0, 8))
            case = pickle.loads(_recv_exact(0, n))
        except EOFError:
            return
        try:
            res = run(case, lambda p: _send(proto_out, {"phase": p}))
        except BaseException as err:
            res = {"phase": "harness", "harness_error": _exc(err)}
        try:
            _send(proto_out, {"result": res})
        except MemoryError:
            _send(
                proto_out,
                {
                    "result": {
                        "phase": res.get("phase"),
                        "harness_error": {"type": "MemoryError", "message": "result"},
                    }
                },
            )


# ==========================================================================================================
# Parent side: worker processes
# ==========================================================================================================
class Worker:
    """A persistent worker subprocess; restarted after a crash or a timeout."""

    def __init__(self, mem_limit: int, log: Path | None, target: str = "model") -> None:
        self.mem_limit = mem_limit
        self.log = log
        self.target = target
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", DTD_FUZZ_MEM_LIMIT=str(self.mem_limit))
        err = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", "--target", self.target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        if self.log:
            err.close()  # type: ignore[union-attr]
        msg = self._read(120.0)
        if not msg or not msg.get("ready"):
            raise RuntimeError(f"fuzz worker failed to start (see {self.log})")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()
        self.proc = None

    def _read(self, timeout: float) -> dict[str, Any] | None:
        """One message, or None on EOF / timeout."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        need = 8
        header = True
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, need - len(buf))
            if not chunk:
                return None
            buf += chunk
            if len(buf) == need:
                if header:
                    (need,) = struct.unpack("<Q", buf)
                    buf, header = b"", False
                else:
                    return pickle.loads(buf)  # type: ignore[no-any-return]

    def run(self, case: dict[str, Any], timeout: float, ref_timeout: float = 5.0) -> dict[str, Any]:
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        data = pickle.dumps(case)
        phase = "send"
        start = time.monotonic()
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        deadline = start + timeout
        while True:
            msg = self._read(max(deadline - time.monotonic(), 0.0))
            if msg is None:
                break
            if "result" in msg:
                res: dict[str, Any] = msg["result"]
                res["seconds"] = time.monotonic() - start
                return res
            phase = msg["phase"]
            if phase not in DTD_PHASES:  # each reference (onnxruntime, checker) gets its own, shorter budget
                deadline = time.monotonic() + ref_timeout
        elapsed = time.monotonic() - start
        try:  # after EOF the worker is exiting (maybe still writing a core): give it a moment to be reaped
            rc: int | None = self.proc.wait(timeout=10.0 if time.monotonic() < deadline else 0.1)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None:
            self.stop()
            self.restarts += 1
            return {"phase": phase, "timeout": True, "seconds": elapsed}
        self.stop()
        self.restarts += 1
        return {"phase": phase, "died": rc, "seconds": elapsed}


# ==========================================================================================================
# Classification
# ==========================================================================================================
_DTD_ERRORS = ("dtd.errors.ModelLoadError", "dtd.errors.UnsupportedModelError")
_MEMORY = re.compile(r"bad_alloc|MemoryError|out of memory|Cannot allocate", re.IGNORECASE)


def _bare(message: str) -> bool:
    """A message that says nothing about where or why: empty, one token, or a C++ exception's what()."""
    text = message.strip().strip("'\"")
    return not text or bool(re.fullmatch(r"(std::)?[\w:]+", text)) or len(text) < 12


def _is_memory(err: dict[str, str]) -> bool:
    return err["type"].endswith("MemoryError") or bool(_MEMORY.search(err["message"]))


def _compare(out: Any, ref: Any, rtol: float) -> tuple[bool, str]:
    import numpy as np

    out, ref = np.asarray(out), np.asarray(ref)
    if out.shape != ref.shape:
        return False, f"shape {list(out.shape)} vs onnxruntime {list(ref.shape)}"
    a, b = out.astype(np.float64), ref.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return False, "NaN positions differ from onnxruntime"
    finite = np.isfinite(b)
    if not np.array_equal(a[~finite], b[~finite], equal_nan=True):
        return False, "infinities differ from onnxruntime"
    if not finite.any():
        return True, ""
    scale = max(float(np.max(np.abs(b[finite]))), 1e-6)
    err = float(np.max(np.abs(a[finite] - b[finite]))) / scale
    return err <= rtol, f"max |dtd - onnxruntime| / max|onnxruntime| = {err:.3g} (tolerance {rtol:g})"


def _fatal(res: dict[str, Any]) -> tuple[str, str] | None:
    """The class of a case whose worker died, hung or failed in the harness (None otherwise)."""
    phase = res.get("phase")
    if "died" in res:
        rc = res["died"]
        what = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        if phase in DTD_PHASES or phase in ("send", None):
            return "crash", f"{what} during {phase}"
        return "reference_failed", f"{what} during {phase}"
    if res.get("timeout"):
        if phase in DTD_PHASES or phase in ("send", None):
            return "hang", f"no result after {res['seconds']:.1f} s, during {phase}"
        return "reference_failed", f"timeout during {phase}"
    if "harness_error" in res:
        err = res["harness_error"]
        if _is_memory(err):
            return "memory", f"{err['type']}: {err['message'][:200]} (in the harness)"
        return "unclean_exception", f"harness: {err['type']}: {err['message'][:200]}"
    return None


def _dtd_error(
    err: dict[str, str], where: str, allowed: tuple[str, ...] = _DTD_ERRORS
) -> tuple[str, str] | None:
    """A defect class for an exception dtd raised (not a typed error, a bare message, memory), else None."""
    head = f"{where}: {err['type']}: {err['message'].splitlines()[0][:300] if err['message'] else ''}"
    if _is_memory(err):
        return "memory", head
    if err["type"] not in allowed or _bare(err["message"]):
        return "unclean_exception", head
    return None


def classify(
    res: dict[str, Any], rtol: float = DEFAULTS["rtol"], rss_limit: int = DEFAULTS["rss_limit"]
) -> tuple[str, str]:
    """(class, one-line detail) of a worker result."""
    phase = res.get("phase")
    fatal = _fatal(res)
    if fatal:
        return fatal
    for key, where in (("load_error", "load"), ("forward_error", "forward"), ("explain_error", "explain")):
        if key not in res:
            continue
        allowed = (
            _DTD_ERRORS if where == "load" else ("builtins.ValueError", "builtins.TypeError", *_DTD_ERRORS)
        )
        bad = _dtd_error(res[key], where, allowed)
        if bad:
            return bad
    if res.get("peak_rss", 0) > rss_limit:
        return (
            "memory",
            f"peak RSS {res['peak_rss'] / GIB:.2f} GiB during {phase} (limit {rss_limit / GIB:.2f})",
        )
    if "load_error" in res:
        return "clean_error", res["load_error"]["message"].splitlines()[0][:300]
    if res.get("explain_equal") is False:
        return "nondeterministic", f"two explain calls differ by up to {res.get('explain_diff')}"
    if "ref" in res and "out" in res:
        ok, detail = _compare(res["out"], res["ref"], rtol)
        if not ok:
            return "wrong_result", detail
    if "forward_error" in res or "explain_error" in res:
        err = res.get("forward_error") or res["explain_error"]
        return "clean_error", f"{err['type']}: {err['message'].splitlines()[0][:300]}"
    if "ref" in res and "out" in res:
        return "accepted_equal", ""
    if res.get("checker_ok") is False and ("ort_error" in res or not res.get("ort_loaded")):
        why = res.get("ort_error", {}).get("message", "").splitlines()
        chk = res["checker_error"]["message"].splitlines()
        if why and _only_float_types_differ(why[0]):
            # Policy (issue 10): weights of another float type than the data are converted exactly, not refused.
            return "accepted_no_reference", f"float weights of another precision, converted: {why[0][:200]}"
        return "accepted_invalid", (
            f"onnxruntime: {why[0][:150] if why else '?'} | checker: {chk[0][:150] if chk else '?'}"
        )
    reason = res.get("skipped_input") or (res.get("ort_error") or {}).get("message", "no reference")
    return "accepted_no_reference", str(reason).splitlines()[0][:300] if reason else ""


def classify_reader(res: dict[str, Any], rss_limit: int = DEFAULTS["rss_limit"]) -> tuple[str, str]:
    """(class, one-line detail) of a reader-target result."""
    fatal = _fatal(res)
    if fatal:
        return fatal
    calls = [(name, res[name]) for name, _ in READER_CALLS if name in res]
    for name, out in calls:
        bad = _dtd_error(out["error"], name) if "error" in out else None
        if bad:
            return bad
    if res.get("peak_rss", 0) > rss_limit:
        return "memory", f"peak RSS {res['peak_rss'] / GIB:.2f} GiB (limit {rss_limit / GIB:.2f})"
    for name, out in calls:
        if out.get("problem"):
            return "invalid_model", f"{name}: {out['problem']}"
    if res.get("inconsistent"):
        return "inconsistent", str(res["inconsistent"])[:300]
    if res.get("different"):
        return "different", f"the reader and onnx both accept the bytes; {res['different'][:300]}"
    external = res.get("read_external", {})
    if "error" in external:
        return "clean_error", external["error"]["message"].splitlines()[0][:300]
    return "accepted", "" if "onnx_error" not in res else f"onnx refuses: {res['onnx_error']}"


def _only_float_types_differ(message: str) -> bool:
    """True for onnxruntime's type-binding error when every type it names is a float tensor type."""
    import re

    if "bound to different types" not in message:
        return False
    types = re.findall(r"tensor\((\w+)\)", message)
    return bool(types) and all(t in ("float", "double", "float16", "bfloat16") for t in types)


# ==========================================================================================================
# Campaign
# ==========================================================================================================
def _kinds(target: str) -> tuple[str, ...]:
    if target == "reader":
        from fuzz.wire import KINDS as WIRE_KINDS

        return WIRE_KINDS
    from fuzz.mutate import KINDS

    return KINDS


def load_seeds(target: str) -> dict[str, Any]:
    if target == "reader":
        from fuzz.wire import reader_seeds

        return reader_seeds()
    from fuzz.seeds import seed_models

    return seed_models()


def make_cases(
    n: int, seed: int, only: str | None, seeds: dict[str, Any], target: str = "model"
) -> list[tuple[str, str, int]]:
    """(seed model, kind, rng seed) for cases 0..n-1: kinds round-robin, seed models and rng seeds drawn. The
    reader target first draws a group of seeds (built in code, tests/data, shared, node tests: the prefix of the
    name), so that a thousand node tests do not crowd out the larger models."""
    import numpy as np

    kinds = [only] if only else list(_kinds(target))
    ext = [k for k, s in seeds.items() if s.files]
    names = list(seeds)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.split("/")[0] if "/" in name else "built", []).append(name)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        kind = kinds[i % len(kinds)]
        pool = ext if kind == "ext_data" and ext else names
        if target == "reader":
            pool = groups[sorted(groups)[int(rng.integers(len(groups)))]]
        out.append((pool[int(rng.integers(len(pool)))], kind, int(rng.integers(2**31))))
    return out


def build_case(
    seeds: dict[str, Any], name: str, kind: str, rseed: int, target: str = "model"
) -> dict[str, Any]:
    seed = seeds[name]
    if target == "reader":
        from fuzz.wire import mutate as wire_mutate

        data, files, what = wire_mutate(seed, kind, rseed)
        return {"seed": name, "kind": kind, "rseed": rseed, "data": data, "files": files, "what": what}
    from fuzz.mutate import mutate

    data, what = mutate(seed, kind, rseed)
    return {"seed": name, "kind": kind, "rseed": rseed, "data": data, "files": seed.files, "what": what}


def _write_repro(out: Path, idx: int, case: dict[str, Any], cls: str) -> Path:
    folder = out / "repro" / cls
    stem = f"{idx:05d}_{case['seed']}_{case['kind']}_{case['rseed']}"
    if case.get("files"):
        folder = folder / stem
        folder.mkdir(parents=True, exist_ok=True)
        for fname, blob in case["files"]:
            (folder / fname).write_bytes(blob)
        path = folder / "model.onnx"
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.onnx"
    path.write_bytes(case["data"])
    return path


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    )


def summary(results: list[dict[str, Any]]) -> str:
    by_class = collections.Counter(r["class"] for r in results)
    kinds = sorted({r["kind"] for r in results})
    rows = [["class", "cases", *kinds]]
    for cls in CLASSES:
        if by_class.get(cls):
            per = collections.Counter(r["kind"] for r in results if r["class"] == cls)
            rows.append(
                [
                    cls + (" *" if cls in DEFECTS else ""),
                    str(by_class[cls]),
                    *(str(per.get(k, 0)) for k in kinds),
                ]
            )
    rows.append(["total", str(len(results)), *(str(sum(r["kind"] == k for r in results)) for k in kinds)])
    return _table(rows) + "\n(* defect)"


def run_campaign(
    cases: list[dict[str, Any]],
    workers: int,
    timeout: float,
    mem_limit: int,
    out: Path | None,
    rtol: float = DEFAULTS["rtol"],
    rss_limit: int = DEFAULTS["rss_limit"],
    progress: bool = False,
    target: str = "model",
) -> list[dict[str, Any]]:
    """Runs the cases on ``workers`` worker processes; returns one record per case, in case order."""
    results: list[dict[str, Any] | None] = [None] * len(cases)
    lock = threading.Lock()
    next_idx = [0]
    done = [0]

    def loop(k: int) -> None:
        w = Worker(mem_limit, (out / f"worker{k}.log") if out else None, target)
        try:
            while True:
                with lock:
                    i = next_idx[0]
                    if i >= len(cases):
                        return
                    next_idx[0] += 1
                case = cases[i]
                res = w.run(case, timeout)
                cls, detail = (
                    classify_reader(res, rss_limit) if target == "reader" else classify(res, rtol, rss_limit)
                )
                results[i] = {
                    "index": i,
                    "seed": case.get("seed"),
                    "kind": case.get("kind"),
                    "rseed": case.get("rseed"),
                    "what": case.get("what", ""),
                    "class": cls,
                    "detail": detail,
                    "phase": res.get("phase"),
                    "seconds": round(res.get("seconds", 0.0), 3),
                    "peak_rss_mib": round(res.get("peak_rss", 0) / (1 << 20), 1),
                    "error": next(
                        (
                            res[k]
                            for k in ("load_error", "forward_error", "explain_error", "harness_error")
                            if k in res
                        ),
                        next((res[k]["error"] for k, _ in READER_CALLS if "error" in res.get(k, {})), None),
                    ),
                }
                with lock:
                    done[0] += 1
                    if progress and done[0] % 100 == 0:
                        print(f"  {done[0]}/{len(cases)} cases", file=sys.stderr, flush=True)
        finally:
            w.stop()

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(max(workers, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None]


def _command(rec: dict[str, Any], path: Path | None, target: str = "model") -> str:
    tool = "python tools/fuzz.py" + (" --target reader" if target == "reader" else "")
    if rec.get("seed") is not None and rec.get("kind") not in (None, "replay"):
        return f"{tool} --case {rec['seed']}:{rec['kind']}:{rec['rseed']}"
    return f"{tool} --replay {path}"


def _case_from_file(path: Path) -> dict[str, Any]:
    """A reproducer file as a case; the files its external data names are read from its folder."""
    import onnx

    data = path.read_bytes()
    files: list[tuple[str, bytes]] = []
    try:
        proto = onnx.ModelProto()
        proto.ParseFromString(data)
        for t in proto.graph.initializer:
            for e in t.external_data:
                if e.key == "location" and (path.parent / e.value).is_file() and e.value not in dict(files):
                    files.append((e.value, (path.parent / e.value).read_bytes()))
    except Exception:
        pass
    return {
        "seed": None,
        "kind": "replay",
        "rseed": 0,
        "data": data,
        "files": tuple(files),
        "what": str(path),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", type=int, default=500, help="number of cases (default 500)")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--out", type=Path, default=Path("fuzz-out"), help="report folder (default fuzz-out)")
    p.add_argument("--only", help="run only this mutation kind")
    p.add_argument("--replay", type=Path, help="run one reproducer file (model bytes)")
    p.add_argument("--case", help="run one case SEED_MODEL:KIND:RSEED")
    p.add_argument("--timeout", type=float, default=DEFAULTS["timeout"], help="seconds per case (default 20)")
    p.add_argument(
        "--mem-limit-gib", type=float, default=DEFAULTS["mem_limit"] / GIB, help="RLIMIT_AS (default 3)"
    )
    p.add_argument("--list", action="store_true", help="list the seed models and mutation kinds")
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="model",
        help="model: dtd.load and onward (default); reader: the C++ reader",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.target)
        return 0

    target = args.target
    kinds = _kinds(target)
    seeds = load_seeds(target)
    if args.list:
        print("seeds:", " ".join(seeds))
        print("kinds:", " ".join(kinds))
        return 0
    if args.only and args.only not in kinds:
        p.error(f"--only {args.only!r}: known kinds are {', '.join(kinds)}")
    mem_limit = int(args.mem_limit_gib * GIB)
    single = args.replay is not None or args.case is not None
    if args.replay is not None:
        cases = [_case_from_file(args.replay)]
    elif args.case is not None:
        name, kind, rseed = args.case.rsplit(":", 2)
        cases = [build_case(seeds, name, kind, int(rseed), target)]
    else:
        specs = make_cases(args.cases, args.seed, args.only, seeds, target)
        cases = [build_case(seeds, *s, target=target) for s in specs]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    results = run_campaign(
        cases, 1 if single else args.workers, args.timeout, mem_limit, out, progress=not single, target=target
    )
    elapsed = time.monotonic() - start
    defects = [r for r in results if r["class"] in DEFECTS]
    for r in defects:
        path = _write_repro(out, r["index"], cases[r["index"]], r["class"])
        r["reproducer"] = str(path)
        r["command"] = _command(r, path, target)
    if single:
        r = results[0]
        print(f"{r['class']}: {r['detail']}")
        print(f"  case: {r['seed']}:{r['kind']}:{r['rseed']}  ({r['what']})")
        if r["error"]:
            print("  " + r["error"]["traceback"].rstrip().replace("\n", "\n  "))
        return 1 if defects else 0
    report = {
        "config": {
            "cases": args.cases,
            "seed": args.seed,
            "workers": args.workers,
            "only": args.only,
            "target": target,
            "timeout_s": args.timeout,
            "mem_limit_bytes": mem_limit,
            "rss_limit_bytes": DEFAULTS["rss_limit"],
            "rtol": DEFAULTS["rtol"],
            "seeds": list(seeds),
            "kinds": list(kinds),
        },
        "seconds": round(elapsed, 1),
        "cases_per_second": round(len(results) / max(elapsed, 1e-9), 2),
        "counts": dict(collections.Counter(r["class"] for r in results)),
        "counts_by_kind": {
            k: dict(collections.Counter(r["class"] for r in results if r["kind"] == k))
            for k in sorted({r["kind"] for r in results})
        },
        "defects": defects,
        "cases": [
            {k: r[k] for k in ("index", "seed", "kind", "rseed", "class", "detail", "seconds")}
            for r in results
        ],
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(summary(results))
    print(
        f"\n{len(results)} cases in {elapsed:.1f} s ({report['cases_per_second']} cases/s, {args.workers} workers)"
    )
    shown = collections.Counter()
    for r in defects:
        if shown[r["class"]] < 3:
            shown[r["class"]] += 1
            print(f"[{r['class']}] {r['detail']}\n    {r['what'][:160]}\n    {r['command']}")
    print(f"report: {out / 'report.json'}; reproducers: {out / 'repro'}")
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
