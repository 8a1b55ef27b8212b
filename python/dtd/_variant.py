"""Which build of the C++ core ``import dtd`` loads.

A portable wheel carries the whole core three times, as the extension modules ``dtd/_core_v2``, ``_core_v3`` and
``_core_v4``: each compiled with ``-march=x86-64-vN`` (the x86-64 micro-architecture levels of the psABI: v2 =
SSE4.2 + POPCNT, v3 = AVX2 + FMA + BMI, v4 = AVX-512 F/CD/BW/DQ/VL). :func:`load` picks the highest level whose
features the CPU has, by NumPy's runtime CPU-feature table, and registers it as ``dtd._core``, so the rest of the
package imports ``dtd._core`` whatever was picked. A source build with ``DTD_NATIVE=ON`` has one ``_core_native``
(``-march=native``); other architectures get one ``_core_baseline``.

The environment variable ``DTD_CPU`` (``v2``, ``v3``, ``v4``, ``native``, ``baseline``) forces a variant; it is an
error when the CPU lacks one of its features or the build does not have it. Only one variant can live in a
process (they register the same pybind11 types), so the choice is made once, at the first ``import dtd``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

#: The CPU features each x86-64 level needs (the psABI's list), by the names of NumPy's ``__cpu_features__``.
LEVEL_FEATURES: dict[str, tuple[str, ...]] = {
    "v2": ("SSE", "SSE2", "SSE3", "SSSE3", "SSE41", "SSE42", "POPCNT", "CX16", "LAHF"),
}
LEVEL_FEATURES["v3"] = (*LEVEL_FEATURES["v2"], "AVX", "AVX2", "FMA3", "F16C", "BMI", "BMI2", "LZCNT", "MOVBE")
LEVEL_FEATURES["v4"] = (*LEVEL_FEATURES["v3"], "AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL")

#: Variants from the most to the least preferred: a native build is made for this machine; then the highest level.
PREFERENCE = ("native", "v4", "v3", "v2", "baseline")

# Features that older NumPy versions (1.x) leave out of their table, and the /proc/cpuinfo flag that tells instead
# (Linux shows LZCNT as "abm" on Intel and AMD alike).
_CPUINFO_FLAGS = {
    "BMI": "bmi1",
    "BMI2": "bmi2",
    "LZCNT": "abm",
    "MOVBE": "movbe",
    "POPCNT": "popcnt",
    "CX16": "cx16",
    "LAHF": "lahf_lm",
}

_PACKAGE = __name__.rpartition(".")[0]
_INFO: dict[str, Any] = {}
_LOADED: ModuleType | None = None


def cpu_features() -> tuple[dict[str, bool], str]:
    """The CPU features NumPy detected at run time (CPUID), completed from /proc/cpuinfo.

    Returns
    -------
    features : dict of str to bool
        NumPy's ``__cpu_features__`` names (``"AVX2"``, ``"FMA3"``, ``"BMI"``, ``"AVX512F"``, ...), True where the CPU
        (and the operating system, for the wide registers) supports them.
    source : str
        Where they came from, for :func:`dtd.build_info`.
    """
    try:
        umath = importlib.import_module("numpy._core._multiarray_umath")  # NumPy >= 2
    except ImportError:
        umath = importlib.import_module("numpy.core._multiarray_umath")  # NumPy 1.x
    table: dict[str, bool] = umath.__cpu_features__
    features = {str(k): bool(v) for k, v in table.items()}
    source = "numpy.__cpu_features__"
    missing = [name for name in _CPUINFO_FLAGS if name not in features]
    if missing:
        flags = _cpuinfo_flags()
        if flags is not None:
            features.update({name: _CPUINFO_FLAGS[name] in flags for name in missing})
            source += " + /proc/cpuinfo (" + ", ".join(missing) + ")"
    return features, source


def _cpuinfo_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def missing_features(level: str, features: dict[str, bool]) -> list[str]:
    """The features of x86-64 level ``level`` (``"v2"``, ``"v3"``, ``"v4"``) that ``features`` lacks."""
    return [name for name in LEVEL_FEATURES[level] if not features.get(name, False)]


def built_variants() -> list[str]:
    """The variants present in this installation, in order of preference."""
    return [v for v in PREFERENCE if importlib.util.find_spec(f"{_PACKAGE}._core_{v}") is not None]


def choose(
    built: list[str], features: dict[str, bool], override: str | None
) -> tuple[str, str, dict[str, list[str]]]:
    """Pick a variant: ``override`` (``DTD_CPU``) if given, else the most preferred one the CPU runs.

    Returns the variant, the reason (for :func:`dtd.build_info`), and per x86-64 level the features the CPU lacks.
    Raises ImportError when the override cannot be honoured or nothing fits.
    """
    lacking = {level: missing_features(level, features) for level in LEVEL_FEATURES}
    if override:
        if override not in PREFERENCE:
            raise ImportError(f"DTD_CPU={override!r}: choose one of {', '.join(PREFERENCE)}")
        if override not in built:
            raise ImportError(
                f"DTD_CPU={override}: this build of dtd has no {override} variant (it has {', '.join(built) or 'none'})"
            )
        if lacking.get(override):
            raise ImportError(
                f"DTD_CPU={override}: this CPU lacks {', '.join(lacking[override])}, which the x86-64-{override} "
                "variant needs"
            )
        return override, "DTD_CPU override", lacking
    for v in built:
        if not lacking.get(v):
            reason = "detection" if v in LEVEL_FEATURES else f"the only kind of build present ({v})"
            return v, reason, lacking
    raise ImportError(
        "dtd: no variant of the C++ core fits this CPU: "
        + "; ".join(f"{v} lacks {', '.join(lacking[v])}" for v in built if v in lacking)
    )


def load() -> ModuleType:
    """Import the chosen variant and register it as ``dtd._core`` (the first call; later ones return it)."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    features, source = cpu_features()
    built = built_variants()
    override = os.environ.get("DTD_CPU", "").strip() or None
    variant, reason, lacking = choose(built, features, override)
    module = importlib.import_module(f"{_PACKAGE}._core_{variant}")
    sys.modules[f"{_PACKAGE}._core"] = module
    _LOADED = module
    _INFO.update(
        variant=variant,
        module=module.__name__,
        file=module.__file__,
        reason=reason,
        override=override,
        built=built,
        features_source=source,
        features_seen=sorted(k for k, v in features.items() if v),
        levels_supported=[level for level in LEVEL_FEATURES if not lacking[level]],
    )
    return module


def build_info() -> dict[str, Any]:
    """Which variant of the C++ core this process loaded, why, and how it was compiled.

    Returns
    -------
    dict
        ``variant`` (``"v2"``, ``"v3"``, ``"v4"``, ``"native"`` or ``"baseline"``), ``module`` and ``file`` (the
        extension module), ``reason`` (``"detection"`` or ``"DTD_CPU override"``), ``override`` (``DTD_CPU``'s value
        or None), ``built`` (the variants this installation has), ``features_seen`` (the CPU features detected) and
        their ``features_source``, ``levels_supported`` (the x86-64 levels the CPU runs), and from the compiled module:
        ``arch_options`` (e.g. ``"-march=x86-64-v3"``), ``instruction_sets`` (what the compiler was allowed to use),
        ``compiler``, ``build_type``, ``eigen_version``, ``eigen_simd`` (the SIMD sets Eigen's kernels use),
        ``openmp`` (the OpenMP version as yyyymm, 0 without), ``own_sgemm`` (dtd's SGEMM kernel runs float products;
        else Eigen's GEMM does) and ``sgemm_kernel`` (``"avx512 8x32"``, ``"avx2 6x16"`` or ``"none"``).
    """
    module = load()
    info = dict(_INFO)
    info.update(module._build_info())
    return info
