"""The `dtd` command, run as a subprocess on the shipped model: outputs decoded and checked, errors exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dtd


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dtd.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from importlib import resources

    path = tmp_path_factory.mktemp("model") / "mnist_cnn.onnx"
    path.write_bytes(resources.files("dtd").joinpath("data", "mnist_cnn.onnx").read_bytes())
    return path


def test_demo_writes_the_grid_and_reports_conservation(tmp_path: Path) -> None:
    proc = run("demo", "--out", str(tmp_path), "--count", "8")
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "demo_mnist_dtd.png"
    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape[0] > 28 * 2 and rgb.shape[1] > 28 * 8
    # The heatmaps put red (positive relevance) on the image, not only greys.
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 120) & (rgb[..., 2] < 120)
    assert red.sum() > 50
    assert "conservation" in proc.stdout
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("digit")]
    assert len(lines) == 8
    for ln in lines:
        f = float(ln.split("f(x) =")[1].split()[0])
        total = float(ln.split("sum R =")[1].split()[0])
        assert total == pytest.approx(f, rel=0.01)


def test_explain_on_png_and_npy(tmp_path: Path, shipped_onnx: Path) -> None:
    ex = dtd.load_example()
    png = tmp_path / "digit.png"
    Image.fromarray(ex.raw[0]).resize((56, 56)).save(png)  # resized back to 28x28 by the command
    npy = tmp_path / "batch.npy"
    np.save(npy, ex.images[1:3])
    out = tmp_path / "out"
    proc = run(
        "explain", str(shipped_onnx), str(png), str(npy), "--out", str(out), "--low", "0", "--high", "1"
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("digit", "batch_0", "batch_1"):
        rel = np.load(out / f"{name}_relevance.npy")
        assert rel.shape == (1, 28, 28)
        with Image.open(out / f"{name}_heatmap.png") as img:
            assert img.size == (28, 28)
    # The .npy inputs give exactly what the Python API gives.
    rel = np.load(out / "batch_0_relevance.npy")
    expected = dtd.explain(ex.model, ex.images[1].astype(np.float64), low=0.0, high=1.0)
    np.testing.assert_allclose(rel, expected, rtol=1e-6, atol=1e-9)
    assert f"class {ex.labels[1]}" in proc.stdout


def test_explain_with_target_and_rules(tmp_path: Path, shipped_onnx: Path) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, dtd.load_example().images[0])
    proc = run(
        "explain", str(shipped_onnx), str(npy), "--target", "3", "--rules", "positive", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert "class 3" in proc.stdout


def test_info(shipped_onnx: Path) -> None:
    proc = run("info", str(shipped_onnx))
    assert proc.returncode == 0, proc.stderr
    for word in ("conv1", "fc2", "dense", "maxpool", "parameters", "all ops supported"):
        assert word in proc.stdout


def test_info_lists_unsupported_ops(tmp_path: Path) -> None:
    from builders import GraphBuilder

    b = GraphBuilder((4,))
    path = tmp_path / "erf_net.onnx"
    path.write_bytes(b.build(b.node("Erf", [b.gemm("x", 3)])).SerializeToString())
    proc = run("info", str(path))
    assert proc.returncode == 1
    assert "Erf" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("info", "missing.onnx"), "no such file"),
        (("explain", "missing.onnx", "x.npy"), "missing.onnx"),
        (("explain", "{model}", "missing.npy"), "no such file"),
        (("explain", "{model}", "{bad_npy}"), "expected [1, 28, 28]"),
        (("explain", "{model}", "{garbage}"), "not a"),
        (("explain", "{model}", "{npy}", "--target", "12"), "out of range"),
        (("explain", "{model}", "{npy}", "--low", "0"), "both --low and --high"),
        (("explain", "{model}", "{npy}", "--rules", "nonsense"), "unknown rules preset"),
        (("explain", "{garbage_onnx}", "{npy}"), "garbage.onnx"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    tmp_path: Path, shipped_onnx: Path, args: tuple[str, ...], needle: str
) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28)))
    (tmp_path / "garbage.png").write_bytes(b"not an image at all")
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\x01garbage")
    fill = {
        "model": str(shipped_onnx),
        "bad_npy": str(tmp_path / "bad.npy"),
        "npy": str(tmp_path / "x.npy"),
        "garbage": str(tmp_path / "garbage.png"),
        "garbage_onnx": str(tmp_path / "garbage.onnx"),
    }
    proc = run(*(a.format(**fill) for a in args), cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr


def test_evaluate_writes_plot_and_table(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="dtd[plot] (matplotlib) is not installed")
    proc = run("evaluate", "--out", str(tmp_path), "--count", "8", "--steps", "10")
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "pixel_flipping.png") as img:
        assert img.size[0] > 100
    table = {
        ln.rsplit(None, 1)[0].strip(): float(ln.rsplit(None, 1)[1])
        for ln in proc.stdout.splitlines()
        if ln.startswith(("DTD", "sensitivity", "random"))
    }
    assert len(table) == 3
    assert table["DTD (z^beta + z+)"] > table["random"]
