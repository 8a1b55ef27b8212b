"""The C++ embedding example (examples/cpp, `explain_onnx`) built against the installed dtd package and compared
with dtd.explain bit for bit.

The fixture configures the C++ core at the instruction-set level and build type of the Python variant this process
loaded (DTD_CORE_LEVEL; the same compiler), installs it with `cmake --install --component dev` into a prefix, and
builds examples/cpp there with its own `find_package(dtd CONFIG REQUIRED)`: the program links dtd::core only. It
then imports the model in C++ (dtd::load_onnx), so equal bits show that the C++ importer, the network and the
explainer give what the Python importer and dtd.explain give. The core's build tree stays in build/example-core-*
so that reruns are incremental.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import dtd
from builders import GraphBuilder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpp"
# A dynamo export of a miniature torchvision ResNet (conv-bn-relu, residual Adds, a strided 1x1 downsample,
# global average pooling as ReduceMean, Reshape, Gemm), with an input batch of 2 (tests/data/zoo_minis/README.md).
RESNET = ROOT / "tests" / "data" / "zoo_minis" / "resnet_basic_dynamo_op20"
INFO = dtd.build_info()


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]


def _check(res: subprocess.CompletedProcess, what: str) -> None:
    assert res.returncode == 0, f"{what} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"


@pytest.fixture(scope="module")
def explain_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's executable, built against dtd installed into a fresh prefix."""
    if shutil.which("cmake") is None or shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("needs cmake and a C++ compiler")
    cmeel = [p for p in (Path(e) / "cmeel.prefix" for e in sys.path if e) if p.is_dir()]
    level, build_type = INFO["variant"], INFO["build_type"] or "Release"
    core_build = ROOT / "build" / f"example-core-{level}"
    prefix = tmp_path_factory.mktemp("dtd-prefix")
    jobs = str(min(os.cpu_count() or 1, 4))
    _check(
        _run(
            [
                "cmake", "-S", str(ROOT), "-B", str(core_build), f"-DCMAKE_BUILD_TYPE={build_type}",
                f"-DDTD_CORE_LEVEL={level}", f"-DDTD_NATIVE={'ON' if level == 'native' else 'OFF'}",
                "-DDTD_INSTALL=ON", "-DDTD_BUILD_TESTS=OFF", "-DDTD_BUILD_BENCH=OFF", "-DDTD_BUILD_PYTHON=OFF",
                "-DDTD_WERROR=ON", f"-DPython_EXECUTABLE={sys.executable}",
                # the portable variants' cores are compiled with hidden symbols (python/CMakeLists.txt), which
                # changes what the compiler may inline, hence possibly the bits
                *(["-DCMAKE_CXX_VISIBILITY_PRESET=hidden", "-DCMAKE_VISIBILITY_INLINES_HIDDEN=ON"]
                  if level in ("v2", "v3", "v4") else []),
            ]
        ),
        "configuring the core",
    )  # fmt: skip
    _check(_run(["cmake", "--build", str(core_build), "-j", jobs]), "building the core")
    _check(
        _run(["cmake", "--install", str(core_build), "--prefix", str(prefix), "--component", "dev"]),
        "installing the core",
    )
    assert (prefix / "include" / "dtd" / "import.hpp").is_file()
    build = tmp_path_factory.mktemp("example-build")
    _check(
        _run(
            [
                "cmake", "-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_BUILD_TYPE={build_type}",
                "-DCMAKE_PREFIX_PATH=" + ";".join([str(prefix), *map(str, cmeel)]),
                "-DCMAKE_CXX_FLAGS=-Werror",
            ]
        ),
        "configuring examples/cpp",
    )  # fmt: skip
    _check(_run(["cmake", "--build", str(build), "-j", jobs]), "building examples/cpp")
    exe = build / "explain_onnx"
    assert exe.is_file()
    return exe


def _explain(exe: Path, model: Path, x: np.ndarray, tmp: Path, *args: str) -> tuple[np.ndarray, str]:
    np.save(tmp / "x.npy", x)
    res = _run([str(exe), str(model), str(tmp / "x.npy"), str(tmp / "r.npy"), *args])
    _check(res, "explain_onnx " + " ".join(args))
    return np.load(tmp / "r.npy"), res.stdout


def _assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), f"max |diff| {np.max(np.abs(got.astype(float) - want))}"


CASES = [
    # (preset, args, dtd.explain keywords)
    ("deep_taylor", [], {}),
    (
        "bounded",
        ["--preset", "bounded", "--low", "-4", "--high", "4.5", "--class", "3"],
        {"low": -4.0, "high": 4.5},
    ),
    ("positive", ["--preset", "positive", "--class", "-1"], {}),
    ("epsilon", ["--preset", "epsilon", "--eps", "0.25"], {"eps": 0.25}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("preset", "args", "kw"), CASES, ids=[c[0] for c in CASES])
def test_same_bits_as_dtd_explain(
    explain_onnx: Path, tmp_path: Path, dtype: type, preset: str, args: list[str], kw: dict
) -> None:
    model = RESNET.with_suffix(".onnx")
    x = np.load(RESNET.with_suffix(".npz"))["x"].astype(dtype)
    target = int(args[args.index("--class") + 1]) if "--class" in args else None
    got, out = _explain(explain_onnx, model, x, tmp_path, *args)
    ex = dtd.explain(dtd.load(model), x, target=target, rules=preset, return_details=True, **kw)
    _assert_same_bits(got, ex.relevance)
    # the conservation report is dtd.Explanation.report()'s table, then per sample the total against f(x)
    assert ex.report() in out
    for n in range(len(x)):
        c = int(ex.targets[n])
        assert f"sample {n}: class {c}, f(x) = {float(ex.logits[n, c]):.9g}, " in out
        # summed in order in C++, pairwise by NumPy: the last printed digit may differ
        total = float(
            out.split(f"sample {n}: class {c}, ", 1)[1].split("relevance total = ", 1)[1].split(" ", 1)[0]
        )
        assert total == pytest.approx(float(np.sum(ex.relevance[n], dtype=np.float64)), rel=1e-7, abs=1e-12)
    assert f"dtd core: {INFO['variant']} " in out and f"sgemm kernel {INFO['sgemm_kernel']}" in out


def test_one_sample_and_external_data(explain_onnx: Path, tmp_path: Path) -> None:
    # The model with every initializer in an external data file next to it, and one sample without its batch axis.
    proto = onnx.load(str(RESNET.with_suffix(".onnx")))
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save_model(
        proto,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    stored = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.initializer
    assert stored and all(t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data for t in stored)
    x = np.load(RESNET.with_suffix(".npz"))["x"][1]
    got, out = _explain(explain_onnx, folder / "model.onnx", x, tmp_path, "--preset", "real")
    want = dtd.explain(dtd.load(RESNET.with_suffix(".onnx")), x, rules="real")
    _assert_same_bits(got, want)
    assert "wrote " in out and "float32 (3, 32, 32)" in out
    # without its data file the model does not load
    (folder / "model.onnx.data").unlink()
    res = _run(
        [str(explain_onnx), str(folder / "model.onnx"), str(tmp_path / "x.npy"), str(tmp_path / "r.npy")]
    )
    assert res.returncode == 1 and "model.onnx.data" in res.stderr


def _save_raw(path: Path, header: str, data: bytes, version: int = 1) -> None:
    h = header.encode("latin1")
    length = len(h).to_bytes(2 if version == 1 else 4, "little")
    path.write_bytes(b"\x93NUMPY" + bytes([version, 0]) + length + h + data)


def test_npy_versions_and_errors(explain_onnx: Path, tmp_path: Path) -> None:
    model = str(RESNET.with_suffix(".onnx"))
    x = np.load(RESNET.with_suffix(".npz"))["x"]
    want = dtd.explain(dtd.load(model), x, rules="real")
    # a version 2.0 header (4-byte length) without padding reads the same
    _save_raw(
        tmp_path / "v2.npy",
        "{'shape': (2, 3, 32, 32), 'fortran_order': False, 'descr': '<f4'}\n",
        x.tobytes(),
        2,
    )
    res = _run(
        [str(explain_onnx), model, str(tmp_path / "v2.npy"), str(tmp_path / "r.npy"), "--preset", "real"]
    )
    _check(res, "a version 2.0 .npy")
    _assert_same_bits(np.load(tmp_path / "r.npy"), want)
    (tmp_path / "r.npy").unlink()

    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "int.npy", x.astype(np.int32))
    np.save(tmp_path / "big.npy", x.astype(">f4"))
    np.save(tmp_path / "fortran.npy", np.asfortranarray(x))
    np.save(tmp_path / "shape.npy", x[:, :, :16])
    _save_raw(
        tmp_path / "short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 32, 32), }\n", b""
    )
    _save_raw(
        tmp_path / "junk.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 32, 32 }\n", b""
    )
    (tmp_path / "text.npy").write_text("not an array\n")
    bad = {
        # (argv after the executable, exit status, in stderr)
        "missing model": ([str(tmp_path / "none.onnx"), "x.npy", "r.npy"], 1, "none.onnx"),
        "not a model": ([str(tmp_path / "x.npy"), "x.npy", "r.npy"], 1, "x.npy"),
        "missing input": ([model, "none.npy", "r.npy"], 1, "none.npy: cannot open file"),
        "int dtype": ([model, "int.npy", "r.npy"], 1, "dtype '<i4' is not supported"),
        "big-endian": ([model, "big.npy", "r.npy"], 1, "dtype '>f4' is not supported"),
        "fortran order": ([model, "fortran.npy", "r.npy"], 1, "Fortran-order arrays are not supported"),
        "wrong shape": (
            [model, "shape.npy", "r.npy"],
            1,
            "input shape (2, 3, 16, 32), expected (3, 32, 32) (one",
        ),
        "truncated data": ([model, "short.npy", "r.npy"], 1, "needs 24576 bytes of data, the file holds 0"),
        "bad header": ([model, "junk.npy", "r.npy"], 1, "malformed .npy header"),
        "no magic": ([model, "text.npy", "r.npy"], 1, "not a .npy file"),
        "class out of range": (
            [model, "x.npy", "r.npy", "--class", "10"],
            1,
            "out of range for a model with 10 outputs",
        ),
        "unwritable output": ([model, "x.npy", str(tmp_path / "no" / "r.npy")], 1, "cannot create file"),
        "unknown preset": (
            [model, "x.npy", "r.npy", "--preset", "zplus"],
            2,
            "unknown preset 'zplus' (deep_taylor, bounded,",
        ),
        "bounded without bounds": ([model, "x.npy", "r.npy", "--preset", "bounded"], 1, "bounded"),
        "low without high": ([model, "x.npy", "r.npy", "--low", "0"], 2, "--low and --high go together"),
        "input outside bounds": (
            [model, "x.npy", "r.npy", "--low", "0", "--high", "1"],
            1,
            "outside [low, high]",
        ),
        "bad number": ([model, "x.npy", "r.npy", "--eps", "abc"], 2, "--eps takes a finite number"),
        "unknown option": ([model, "x.npy", "r.npy", "--batch", "2"], 2, "unknown option --batch"),
        "too few arguments": ([model, "x.npy"], 2, "expected MODEL.onnx INPUT.npy RELEVANCE.npy"),
    }
    for name, (argv, status, message) in bad.items():
        res = _run([str(explain_onnx), *argv], cwd=tmp_path)
        assert res.returncode == status, f"{name}: exit {res.returncode}, stderr {res.stderr!r}"
        assert message in res.stderr and res.stderr.startswith("explain_onnx: "), f"{name}: {res.stderr!r}"
    assert not (tmp_path / "r.npy").exists()  # every bad call above failed before writing


def _resnet18(path: Path) -> None:
    """torchvision's ResNet-18 graph at full size (224x224, 11.7 M parameters, random weights, BatchNormalization
    unfolded, as the TorchScript exporter writes it), saved with its weights in an external data file."""
    b = GraphBuilder((3, 224, 224), seed=18)

    def conv_bn(x: str, c_in: int, c_out: int, k: int, stride: int) -> str:
        w = b.weight((c_out, c_in, k, k))
        y = b.node("Conv", [x, w], kernel_shape=[k, k], strides=[stride] * 2, pads=[k // 2] * 4)
        return b.batchnorm(y, c_out)

    y = b.relu(conv_bn("x", 3, 64, 7, 2))
    y = b.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            h = b.relu(conv_bn(y, c_in, c_out, 3, s))
            h = conv_bn(h, c_out, c_out, 3, 1)
            short = conv_bn(y, c_in, c_out, 1, s) if (s != 1 or c_in != c_out) else y
            y = b.relu(b.node("Add", [h, short]))
            c_in = c_out
    y = b.node("Flatten", [b.node("GlobalAveragePool", [y])], axis=1)
    w, bias = b.weight((1000, 512)), b.weight((1000,), 0.1)
    onnx.save_model(
        b.build(b.node("Gemm", [y, w, bias], transB=1)),
        str(path),
        save_as_external_data=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


def test_resnet18_with_external_data(explain_onnx: Path, tmp_path: Path) -> None:
    model = tmp_path / "resnet18.onnx"
    _resnet18(model)
    assert (tmp_path / "resnet18.onnx.data").stat().st_size > 40_000_000
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)
    got, out = _explain(explain_onnx, model, x, tmp_path, "--preset", "bounded", "--low", "0", "--high", "1")
    ex = dtd.explain(dtd.load(model), x, rules="bounded", low=0.0, high=1.0, return_details=True)
    _assert_same_bits(got, ex.relevance)
    assert ex.report() in out


#: torchvision's ResNet-18 as torch's default (dynamo) exporter writes it, with external data: the committed graph
#: (tools/export_resnet18.py), whose data file the test writes (random values at the offsets the graph names).
TORCHVISION_RESNET18 = ROOT / "tests" / "external_data" / "resnet18_dynamo" / "resnet18.onnx"


def _torchvision_resnet18(folder: Path) -> Path:
    """The committed export and a data file for it: He-scaled normal weights, small biases, float32."""
    model = onnx.load(str(TORCHVISION_RESNET18), load_external_data=False)
    rng = np.random.default_rng(18)
    data = bytearray()
    for tensor in model.graph.initializer:
        entries = {e.key: e.value for e in tensor.external_data}
        if not entries:
            continue
        assert entries["location"] == "resnet18.onnx.data" and tensor.data_type == onnx.TensorProto.FLOAT
        offset, length, dims = int(entries["offset"]), int(entries["length"]), list(tensor.dims)
        assert length == 4 * int(np.prod(dims))
        if len(dims) > 1:
            values = rng.standard_normal(dims) * np.sqrt(2.0 / np.prod(dims[1:]))
        else:
            values = rng.uniform(-0.1, 0.1, dims)
        data[len(data) : offset] = bytes(max(0, offset - len(data)))
        data[offset : offset + length] = values.astype("<f4").tobytes()
    path = folder / TORCHVISION_RESNET18.name
    shutil.copyfile(TORCHVISION_RESNET18, path)
    (folder / "resnet18.onnx.data").write_bytes(bytes(data))
    return path


def test_torchvision_resnet18_dynamo_export(explain_onnx: Path, tmp_path: Path) -> None:
    """The issue's case: a C++ program linking only dtd::core loads torchvision's ResNet-18 exported by the new
    exporter (external data included) and writes the relevance dtd.explain gives, bit for bit; the forward pass is
    onnxruntime's."""
    ort = pytest.importorskip("onnxruntime")
    model = _torchvision_resnet18(tmp_path)
    assert (tmp_path / "resnet18.onnx.data").stat().st_size > 40_000_000
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 224, 224)).astype(np.float32)
    net = dtd.load(model)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {session.get_inputs()[0].name: x})
    got_logits = net.forward(x)
    np.testing.assert_allclose(got_logits, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    for preset, extra in (("bounded", ["--low", "0", "--high", "1"]), ("deep_taylor", [])):
        got, out = _explain(explain_onnx, model, x, tmp_path, "--preset", preset, *extra)
        kwargs = {"low": 0.0, "high": 1.0} if extra else {}
        ex = dtd.explain(net, x, rules=preset, return_details=True, **kwargs)
        _assert_same_bits(got, ex.relevance)
        assert ex.report() in out
