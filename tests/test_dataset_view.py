"""The dataset-level view: `dtd.batch.dataset_report` / `dtd report` (contact sheets of the most and least
relevant examples per class, mean maps per class) on runs of the shipped model and of the LRP Toolbox LeNet-5
over real MNIST digits, checked against the Parquet index and the stored maps read independently; and
`dtd evaluate --model --data` (pixel-flipping AOPC over a dataset sample)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LENET_DIR, MNIST_FILE

pytest.importorskip("pyarrow", reason="dtd[datasets] (pyarrow) is not installed")

from dtd import viz
from dtd.batch import ArraySource, Explainer, dataset_report, explain_dataset, read_index, read_maps
from dtd.batch.report import select_extremes
from dtd.batch.store import INDEX_FILE, write_table
from dtd.cli import main
from dtd.examples import MODEL_FILE, _read


def _mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    if not MNIST_FILE.exists():
        pytest.skip(f"shared test data not found: {MNIST_FILE}")
    with np.load(MNIST_FILE) as d:
        return d["images"][:n], d["labels"][:n].astype(np.int64)


def _lenet_inputs(images: np.ndarray) -> np.ndarray:
    """The toolbox's preprocessing (data README): raw / 127.5 - 1, padded by 2 pixels of -1 to 32x32."""
    x = images.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)[:, None])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    images, labels = _mnist(300)
    np.savez(root / "mnist.npz", images=images, labels=labels)
    np.save(root / "mnist.npy", images)
    np.savez(root / "lenet.npz", images=_lenet_inputs(images[:200]), labels=labels[:200])
    (root / "mnist_cnn.onnx").write_bytes(_read(MODEL_FILE))
    return {
        "root": root,
        "npz": root / "mnist.npz",
        "npy": root / "mnist.npy",
        "lenet_npz": root / "lenet.npz",
        "model": root / "mnist_cnn.onnx",
    }


@pytest.fixture(scope="module")
def shipped_run(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 real digits through the shipped model: full float32 maps in .npy shards of 64 (the last one partial)."""
    out = tmp_path_factory.mktemp("shipped") / "run"
    ex = Explainer(data["model"], low=0.0, high=1.0)
    explain_dataset(ArraySource(data["npz"]), ex, out, shard_size=64, progress=False)
    return out


@pytest.fixture(scope="module")
def lenet_run(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 real digits through the LRP Toolbox LeNet-5, explained for their labels: channel-summed float16
    maps in one Zarr array."""
    pytest.importorskip("zarr", reason="dtd[datasets] (zarr) is not installed")
    model = LENET_DIR / "lenet5_sumpool_fold.onnx"
    if not model.exists():
        pytest.skip(f"shared test data not found: {model}")
    out = tmp_path_factory.mktemp("lenet") / "run"
    ex = Explainer(model, low=-1.0, high=1.0, target="label", keep="channels", map_dtype="float16")
    explain_dataset(ArraySource(data["lenet_npz"]), ex, out, shard_size=50, format="zarr", progress=False)
    return out


def _expected(idx: dict[str, np.ndarray], c: int, k: int, by: str = "logit") -> tuple[list[int], list[int]]:
    """The selection by plain sorting of the index: (-score, id) for the most, (score, id) for the least."""
    ok = (idx["error"] == "") & (idx["target"] == c)
    rows = sorted(zip((-idx[by][ok]).tolist(), idx["id"][ok].tolist(), strict=True))
    most = [i for _, i in rows[:k]]
    rest = sorted((-s, i) for s, i in rows if i not in most)
    return most, [i for _, i in rest[:k]]


@pytest.mark.parametrize("which", ["shipped", "lenet"])
def test_selection_and_mean_maps_match_the_index_and_the_stored_maps(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run = request.getfixturevalue(f"{which}_run")
    # read_rows=16: the maps are streamed in many pieces, across shard boundaries
    report = dataset_report(run, tmp_path / "rep", k=4, read_rows=16)
    idx = read_index(run)
    classes = sorted(set(idx["target"].tolist()))
    assert sorted(report.classes) == classes and report.explained == len(idx["id"])
    maps = read_maps(run, idx).astype(np.float64)
    assert maps.dtype == np.float64 and maps.shape[1:] == ((1, 28, 28) if which == "shipped" else (32, 32))
    with np.load(tmp_path / "rep" / "mean_maps.npz") as npz:
        saved_mean, saved_counts = npz["mean"], npz["counts"]
        assert npz["classes"].tolist() == classes
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    for j, c in enumerate(classes):
        view = report.classes[c]
        most, least = _expected(idx, c, 4)
        assert view.most.tolist() == most and view.least.tolist() == least
        # really the extremes: every other sample of the class scores between them
        in_class = idx["target"] == c
        others = idx["logit"][in_class & ~np.isin(idx["id"], most + least)]
        assert others.size == 0 or (
            view.most_scores.min() >= others.max() >= others.min() >= view.least_scores.max()
        )
        ref = maps[in_class].mean(axis=0)
        np.testing.assert_allclose(view.mean_map, ref, rtol=1e-12, atol=1e-15 * np.abs(ref).max())
        np.testing.assert_array_equal(saved_mean[j], view.mean_map)
        assert saved_counts[j] == view.count == in_class.sum()
        entry = summary["classes"][j]
        assert entry["class"] == c and [e["id"] for e in entry["most"]] == most
        assert entry["mean_logit"] == pytest.approx(float(idx["logit"][in_class].mean()))
        assert (tmp_path / "rep" / entry["sheet"]).is_file()
    assert (tmp_path / "rep" / "mean_maps.png").is_file() and (tmp_path / "rep" / "summary.md").is_file()


def test_sheet_shows_the_selected_input_beside_its_heatmap(shipped_run: Path, data: dict[str, Path]) -> None:
    report = dataset_report(shipped_run, shipped_run.parent / "rep", k=3, scale=2)
    assert report.inputs is not None and "mnist.npz" in report.inputs  # from run.json
    images = np.load(data["npz"])["images"]
    c = min(report.classes)
    view = report.classes[c]
    assert view.sheet is not None
    from PIL import Image

    with Image.open(view.sheet) as img:
        sheet = np.asarray(img.convert("RGB"))
    # layout: a 16-pixel title line, then the grid (pad 2): input tile, heatmap tile, ...
    y, x = 16 + 2, 2
    first_input = sheet[y : y + 56 : 2, x : x + 56 : 2, 0]
    np.testing.assert_array_equal(first_input, images[view.most[0]])
    heat = sheet[y : y + 56 : 2, x + 56 + 2 : x + 112 + 2 : 2]
    maps = read_maps(shipped_run, read_index(shipped_run), rows=[int(view.most[0])])
    np.testing.assert_array_equal(heat, viz.heatmap(maps[0]))


def test_ties_failures_and_small_classes(tmp_path: Path) -> None:
    """A hand-made run: ties in the score go to the smaller id, failed rows are left out, a class with fewer than
    2k samples shows each sample once; maps in two .npy shards."""
    run = tmp_path / "run"
    (run / "maps").mkdir(parents=True)
    n = 10
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((n, 4, 5)).astype(np.float16)
    np.save(run / "maps" / "maps-a.npy", maps[:6])
    np.save(run / "maps" / "maps-b.npy", maps[6:])
    ids = np.arange(100, 100 + n)
    target = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0])
    logit = np.array([5.0, 7.0, 7.0, 1.0, 1.0, 3.0, 2.0, 9.0, 4.0, 7.0])
    error = np.array(["", "", "", "", "", "", "", "", "", "bad"])
    write_table(
        run / INDEX_FILE,
        {
            "id": ids,
            "predicted": target,
            "target": target,
            "logit": logit,
            "relevance_sum": logit,
            "absorbed": np.zeros(n),
            "error": error,
            "shard": np.array(["maps/maps-a.npy"] * 6 + ["maps/maps-b.npy"] * 4),
            "row": np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3]),
        },
    )
    report = dataset_report(run, k=2)
    assert report.explained == 9 and report.inputs is None  # no inputs known: heatmaps only
    zero, one = report.classes[0], report.classes[1]
    assert zero.most.tolist() == [101, 102]  # 7, 7: the smaller id first; row 109 (7.0) failed
    assert zero.least.tolist() == [103, 104]  # 1, 1
    assert one.most.tolist() == [107, 108] and one.least.tolist() == [106]  # 3 samples: each once
    np.testing.assert_allclose(zero.mean_map, maps[:6].astype(np.float64).mean(axis=0), rtol=1e-12)
    assert zero.count == 6 and one.count == 3
    assert (run / "report" / "class-0.png").is_file()
    most, least = select_extremes([5, 3, 4], [1.0, 1.0, 1.0], 1)
    assert most.tolist() == [1] and least.tolist() == [2]


def test_report_error_paths(tmp_path: Path, shipped_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        dataset_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no index\.parquet"):
        dataset_report(tmp_path / "empty")
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / INDEX_FILE).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="cannot read the Parquet index"):
        dataset_report(bad)
    idx = read_index(shipped_run)
    nomaps = tmp_path / "nomaps"
    write_table(nomaps / INDEX_FILE, {k: v for k, v in idx.items() if k not in ("shard", "row")})
    with pytest.raises(ValueError, match="stored no maps"):
        dataset_report(nomaps)
    lost = tmp_path / "lost"
    write_table(lost / INDEX_FILE, idx)
    with pytest.raises(FileNotFoundError, match="map file named by the index is missing"):
        dataset_report(lost)
    with pytest.raises(ValueError, match="group"):
        dataset_report(shipped_run, group="cluster")
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dtd report: error:") and "no such run folder" in err and len(err.splitlines()) == 1


def test_cli_report_and_explain_dataset_report(
    tmp_path: Path, data: dict[str, Path], shipped_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["report", str(shipped_run), "--out", str(tmp_path / "r"), "--k", "2", "--by", "relevance_sum"])
        == 0
    )
    out = capsys.readouterr().out
    assert "most" in out and "least" in out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["by"] == "relevance_sum" and summary["k"] == 2 and summary["explained"] == 300
    run = tmp_path / "run"
    argv = ["explain-dataset", str(data["model"]), str(data["npy"]), "--out", str(run), "--quiet"]
    code = main(
        [
            *argv,
            "--shard-size",
            "128",
            "--keep",
            "channels",
            "--map-dtype",
            "float16",
            "--report",
            "--report-k",
            "3",
        ]
    )
    assert code == 0
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["map_shape"] == [28, 28] and summary["inputs"] and len(summary["classes"][0]["most"]) == 3
    assert sorted(p.name for p in (run / "report").glob("class-*.png")) == [
        f"class-{c['class']}.png" for c in sorted(summary["classes"], key=lambda c: str(c["class"]))
    ]


def _evaluate(argv: list[str], tmp_path: Path) -> dict:
    json_path = tmp_path / "pf.json"
    code = main(["evaluate", *argv, "--out", str(tmp_path), "--json", str(json_path)])
    assert code == 0
    return json.loads(json_path.read_text())


def test_evaluate_lenet_on_an_mnist_sample_dtd_beats_random(tmp_path: Path, data: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib", reason="dtd[plot] (matplotlib) is not installed")
    model = LENET_DIR / "lenet5_sumpool_fold.onnx"
    if not model.exists():
        pytest.skip(f"shared test data not found: {model}")
    argv = ["--model", str(model), "--data", str(data["lenet_npz"]), "--samples", "24", "--steps", "30"]
    s = _evaluate([*argv, "--low", "-1", "--high", "1", "--no-sensitivity"], tmp_path)
    assert s["samples"] == 24 and s["steps"] == 30 and s["noise"] == "[-1, 1]"
    dtd_name = "DTD (z^beta + z+)"
    assert set(s["methods"]) == {dtd_name, "random"}
    assert s["methods"][dtd_name]["aopc"] > s["methods"]["random"]["aopc"] > 0
    versus = s["versus_baseline"][dtd_name]
    assert versus["ci95"][0] > 0 and versus["wins"] > 0.75
    assert len(s["methods"][dtd_name]["mean_curve"]) == 31
    assert (tmp_path / "pixel_flipping.png").is_file()


def test_evaluate_shipped_model_on_uint8_digits(tmp_path: Path, data: dict[str, Path]) -> None:
    """uint8 arrays are pixels: scaled by 1/255, bounds [0, 1] for z^beta and the noise."""
    s = _evaluate(
        [
            "--model",
            str(data["model"]),
            "--data",
            str(data["npy"]),
            "--samples",
            "16",
            "--steps",
            "20",
            "--no-plot",
        ],
        tmp_path,
    )
    assert s["noise"] == "[0, 1]" and "plot" not in s
    assert s["methods"]["DTD (z^beta + z+)"]["aopc"] > s["methods"]["random"]["aopc"]
    assert not (tmp_path / "pixel_flipping.png").exists()


def test_evaluate_errors(
    tmp_path: Path, data: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lenet = LENET_DIR / "lenet5_sumpool_fold.onnx"
    if not lenet.exists():
        pytest.skip(f"shared test data not found: {lenet}")
    # 28x28 digits for a 32x32 model
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(lenet),
                "--data",
                str(data["npy"]),
                "--no-plot",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "samples of shape [28, 28]" in err and "takes inputs of shape [1, 32, 32]" in err
    assert main(["evaluate", "--model", str(lenet)]) == 2
    assert "give both --model and --data" in capsys.readouterr().err
    # no matplotlib: a clear error, and --no-plot still works
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["evaluate", "--count", "2", "--steps", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'dtd[plot]'" in err and "--no-plot" in err and len(err.splitlines()) == 1
    assert main(["evaluate", "--count", "2", "--steps", "2", "--no-plot", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pixel_flipping.json").is_file()


def test_maps_are_streamed_in_bounded_pieces(
    shipped_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never more than ``read_rows`` maps read at once, each stored map read once."""
    from dtd.batch import report as report_mod

    sizes: list[int] = []
    original = report_mod._MapReader.rows

    def spy(self: object, shard: str, lo: int, hi: int) -> np.ndarray:
        sizes.append(hi - lo)
        return original(self, shard, lo, hi)  # type: ignore[arg-type]

    monkeypatch.setattr(report_mod._MapReader, "rows", spy)
    dataset_report(shipped_run, tmp_path / "rep", k=2, read_rows=24)
    assert max(sizes) <= 24 and sum(sizes) == 300
