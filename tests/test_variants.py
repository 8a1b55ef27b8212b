"""The instruction-set variants of the C++ core (python/dtd/_variant.py): detection, the DTD_CPU override,
dtd.build_info(), every variant this CPU runs against the float64 reference, and, under qemu's Nehalem CPU model
(no AVX), proof that the v2 variant holds no AVX instruction while the v3 one does.

One process holds one variant, so each variant runs in a child process (tests/variant_check.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dtd
from dtd import _variant

CHECK = Path(__file__).resolve().parent / "variant_check.py"
LEVELS = ("v2", "v3", "v4")
INFO = dtd.build_info()
FEATURES, _ = _variant.cpu_features()


def run_check(
    variant: str | None, prefix: tuple[str, ...] = (), timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run tests/variant_check.py in a fresh interpreter, with DTD_CPU=variant (None: no override)."""
    env = dict(os.environ)
    env.pop("DTD_CPU", None)
    if variant is not None:
        env["DTD_CPU"] = variant
    env.setdefault("OMP_NUM_THREADS", "2")
    if prefix == NEHALEM:
        env = nehalem_env(env)
    return subprocess.run(
        [*prefix, sys.executable, str(CHECK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@cache
def check_result(variant: str | None) -> dict[str, Any]:
    res = run_check(variant)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(b)), 1e-300)


def require_built(variant: str) -> None:
    if variant not in INFO["built"]:
        pytest.skip(f"this build has no {variant} variant (built: {', '.join(INFO['built'])})")


def require_cpu(variant: str) -> None:
    missing = _variant.missing_features(variant, FEATURES)
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}, which x86-64-{variant} needs")


# ---- in this process ------------------------------------------------------------------------------------------


def test_build_info_describes_the_loaded_variant() -> None:
    info = dtd.build_info()
    assert info["variant"] in info["built"]
    assert info["module"] == f"dtd._core_{info['variant']}"
    assert sys.modules["dtd._core"].__name__ == info["module"]
    assert info["reason"] in ("detection", "DTD_CPU override") or info["reason"].startswith("the only kind")
    assert info["override"] == (os.environ.get("DTD_CPU") or None)
    for key in ("compiler", "eigen_version", "eigen_simd", "arch_options", "build_type"):
        assert isinstance(info[key], str)
    assert info["openmp"] >= 201511 and dtd._core.openmp
    if info["variant"] in LEVELS:
        assert info["arch_options"]  # -march=x86-64-vN or the spelled-out feature flags
        assert info["variant"] in info["levels_supported"]
    if info["variant"] == "v2":
        assert "SSE4.2" in info["instruction_sets"] and "AVX" not in info["instruction_sets"]
    if info["variant"] == "v3":
        assert {"AVX2", "FMA", "BMI2"} <= set(info["instruction_sets"])
        assert "AVX512F" not in info["instruction_sets"]
        assert info["own_sgemm"] and info["sgemm_kernel"].startswith("avx2 ")
    if info["variant"] == "v4":
        assert "AVX512F" in info["instruction_sets"]
        assert info["own_sgemm"] and info["sgemm_kernel"].startswith("avx512 ")
    if info["variant"] == "v2":
        assert not info["own_sgemm"] and info["sgemm_kernel"] == "none"


def test_detection_picks_the_highest_level_the_cpu_runs() -> None:
    if INFO["override"] is not None or not set(LEVELS) & set(INFO["built"]):
        pytest.skip("DTD_CPU is set, or this is not a multi-variant build")
    runnable = [
        v for v in ("v4", "v3", "v2") if v in INFO["built"] and not _variant.missing_features(v, FEATURES)
    ]
    assert INFO["variant"] == runnable[0]
    assert INFO["reason"] == "detection"


def test_level_features_nest() -> None:
    assert set(_variant.LEVEL_FEATURES["v2"]) < set(_variant.LEVEL_FEATURES["v3"])
    assert set(_variant.LEVEL_FEATURES["v3"]) < set(_variant.LEVEL_FEATURES["v4"])
    assert {"AVX2", "FMA3", "F16C", "BMI", "BMI2", "LZCNT", "MOVBE"} <= set(_variant.LEVEL_FEATURES["v3"])
    assert {"AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL"} <= set(_variant.LEVEL_FEATURES["v4"])
    # every name exists in this NumPy's table (or the /proc/cpuinfo fallback filled it in)
    assert set(_variant.LEVEL_FEATURES["v4"]) <= set(FEATURES)


def test_choose_without_a_cpu() -> None:
    """The selection logic on made-up feature sets."""
    v3_cpu = dict.fromkeys(_variant.LEVEL_FEATURES["v3"], True)
    built = ["v4", "v3", "v2"]
    assert _variant.choose(built, v3_cpu, None)[:2] == ("v3", "detection")
    assert _variant.choose(built, v3_cpu, "v2")[:2] == ("v2", "DTD_CPU override")
    assert _variant.choose(["v2"], v3_cpu, None)[0] == "v2"
    assert _variant.choose(["native"], {}, None)[0] == "native"
    with pytest.raises(ImportError, match=r"DTD_CPU=v4: this CPU lacks AVX512F, AVX512CD, AVX512BW"):
        _variant.choose(built, v3_cpu, "v4")
    with pytest.raises(ImportError, match=r"has no v4 variant \(it has native\)"):
        _variant.choose(["native"], v3_cpu, "v4")
    with pytest.raises(ImportError, match=r"DTD_CPU='avx2': choose one of"):
        _variant.choose(built, v3_cpu, "avx2")
    old_cpu = dict.fromkeys(("SSE", "SSE2", "SSE3", "CX16", "LAHF"), True)
    with pytest.raises(
        ImportError, match=r"no variant of the C\+\+ core fits this CPU: v3 lacks SSSE3.*; v2 lacks SSSE3"
    ):
        _variant.choose(["v3", "v2"], old_cpu, None)


# ---- one child process per variant ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", LEVELS)
def test_variant_matches_reference(variant: str) -> None:
    require_built(variant)
    require_cpu(variant)
    out = check_result(variant)
    assert out["info"]["variant"] == variant and out["info"]["reason"] == "DTD_CPU override"
    assert out["info"]["module"] == f"dtd._core_{variant}"
    for key, err in out["errors"].items():
        assert err <= (1e-10 if "/float64/" in key else 1e-4), (key, err)
    # and against the variant this process loaded, on a real CNN (bigger products than the test nets)
    mine = check_result(None)["example"]
    assert rel_err(np.array(out["example"]["float64"]), np.array(mine["float64"])) <= 1e-10
    assert rel_err(np.array(out["example"]["float32"]), np.array(mine["float32"])) <= 1e-4


@pytest.mark.parametrize("variant", LEVELS)
def test_override_refuses_a_level_the_cpu_lacks(variant: str) -> None:
    require_built(variant)
    missing = _variant.missing_features(variant, FEATURES)
    if not missing:
        pytest.skip(f"this CPU runs x86-64-{variant}")
    res = run_check(variant)
    assert res.returncode != 0
    assert f"DTD_CPU={variant}: this CPU lacks {', '.join(missing)}" in res.stderr


def test_override_refuses_an_unknown_variant() -> None:
    res = run_check("avx9000")
    assert res.returncode != 0 and "DTD_CPU='avx9000': choose one of" in res.stderr


# ---- qemu's Nehalem: SSE4.2 and POPCNT, no AVX -------------------------------------------------------------------

QEMU = shutil.which("qemu-x86_64")
NEHALEM = ("qemu-x86_64", "-cpu", "Nehalem")


def nehalem_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a process under qemu's Nehalem model: numpy's bundled OpenBLAS picks its kernels itself
    and, under qemu-user on a Zen 5 host, picked Haswell's (AVX2: SIGILL at ``import numpy``, before any dtd code
    ran), so its core type is pinned to Nehalem; dtd's code is what these tests are about."""
    out = dict(os.environ if env is None else env)
    out["OPENBLAS_CORETYPE"] = "Nehalem"
    return out


@pytest.mark.slow
@pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (Debian: apt-get install qemu-user)")
def test_v2_runs_on_a_cpu_without_avx() -> None:
    require_built("v2")
    require_built("v3")
    res = run_check("v2", NEHALEM, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["info"]["variant"] == "v2"
    for key, err in out["errors"].items():
        assert err <= (1e-10 if "/float64/" in key else 1e-4), (key, err)
    # Without the override, detection under the Nehalem model picks v2 as well.
    env = nehalem_env({k: v for k, v in os.environ.items() if k != "DTD_CPU"})
    auto = subprocess.run(
        [*NEHALEM, sys.executable, "-c", "import dtd; print(dtd.build_info()['variant'])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert auto.returncode == 0 and auto.stdout.split() == ["v2"], auto.stderr[-3000:]


# Loads the v3 extension by file, outside the dtd package (whose import would pick v2 under Nehalem, and one process
# cannot hold two variants), and runs a dense layer through it.
_RUN_V3 = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("_core_v3", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
layer = m.LayerSpec()
layer.name, layer.kind, layer.inputs, layer.output = "fc", m.LayerKind.dense, ["x"], "y"
layer.weights = {"weight": np.ones((64, 64))}
model = m.ModelSpec()
model.input_name, model.input_shape, model.output, model.layers = "x", [64], "y", [layer]
print(m.Network32(model).forward(np.ones((64, 64), np.float32)).sum())
"""


@pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not installed (Debian: apt-get install qemu-user)")
def test_qemu_nehalem_faults_on_avx() -> None:
    """The control: the v3 variant does not run on the Nehalem model (SIGILL), so the v2 test means what it says."""
    require_built("v3")
    spec = importlib.util.find_spec("dtd._core_v3")
    assert spec is not None and spec.origin is not None
    direct = subprocess.run(
        [sys.executable, "-c", _RUN_V3, spec.origin], capture_output=True, text=True, timeout=600, check=False
    )
    if direct.returncode != 0 and _variant.missing_features("v3", FEATURES):
        pytest.skip("this CPU cannot run the v3 variant natively either")
    assert direct.returncode == 0 and float(direct.stdout) == 64.0**3, direct.stderr[-2000:]
    # numpy alone runs there, so the fault below is the v3 extension's
    numpy_only = subprocess.run(
        [*NEHALEM, sys.executable, "-c", "import numpy; print(numpy.ones(3).sum())"],
        env=nehalem_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert numpy_only.returncode == 0 and numpy_only.stdout.split() == ["3.0"], numpy_only.stderr[-2000:]
    res = subprocess.run(
        [*NEHALEM, sys.executable, "-c", _RUN_V3, spec.origin],
        env=nehalem_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == -signal.SIGILL, (res.returncode, res.stderr[-2000:])
