"""`onnx` is a test dependency only: dtd installs without it, and imports, loads, explains and runs its CLI with it
absent (a subprocess in which importing `onnx` fails)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

#: Makes `import onnx` (and any onnx.* submodule) fail in the child process, as on a machine without the package.
BLOCK_ONNX = textwrap.dedent(
    """
    import importlib.abc, sys

    class _NoOnnx(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "onnx" or name.startswith("onnx."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoOnnx())
    """
)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_ONNX + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_onnx_is_not_a_runtime_requirement() -> None:
    requires = metadata.requires("dtd") or []
    runtime = [r for r in requires if "extra ==" not in r]
    assert runtime, requires
    assert not [r for r in runtime if r.split(";")[0].strip().lower().startswith("onnx")], runtime
    assert any(r.startswith("onnx") and "extra ==" in r for r in requires), requires


def test_import_load_explain_and_cli_without_onnx(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = _run(
        f"""
        import sys
        import numpy as np
        try:
            import onnx
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("onnx was importable")
        import dtd
        from importlib import resources
        model = resources.files("dtd") / "data" / "mnist_cnn.onnx"
        net = dtd.load(str(model))
        data = model.read_bytes()
        assert dtd.load(data).forward(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 10)
        x = np.random.default_rng(0).uniform(0, 1, (2, 1, 28, 28)).astype(np.float32)
        ex = dtd.explain(net, x, rules="bounded", low=0.0, high=1.0, return_details=True)
        assert ex.relevance.shape == x.shape and np.isfinite(ex.relevance).all()
        assert "absorbed" in ex.report()
        np.testing.assert_allclose(ex.relevance.sum(axis=(1, 2, 3)), ex.layers[-1].relevance_out, rtol=1e-3)
        from dtd import cli
        assert cli.main(["info", str(model)]) in (0, None)
        assert cli.main(["demo", "--out", {str(out)!r}]) in (0, None)
        assert "onnx" not in sys.modules
        print("ok")
        """,
        tmp_path,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
    assert list(out.glob("*.png")), list(out.iterdir())
