"""dtd.batch.Explainer on the shipped model: equal to in-process dtd.explain bit for bit, independent of batch
composition, position, thread count and pickling; per-sample failures; targets, ids and kept maps."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import dtd
from batchdata import generated_digits, reference_maps
from dtd.batch import Explainer, MapStore
from dtd.examples import MODEL_FILE, _read


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return _read(MODEL_FILE)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return generated_digits(40, seed=3)


def _explainer(model_bytes: bytes, **kw: object) -> Explainer:
    return Explainer(model_bytes, low=0.0, high=1.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [4, 7, 64])
def test_engine_bits_depend_on_position_not_neighbours(size: int) -> None:
    """What the Explainer's slots rely on: at a fixed batch size and position, a sample's relevance is the same
    bits whatever the other samples are. Whether the position matters depends on the kernels (Eigen's GEMM tiles
    rows by position; dtd's own kernel sums every element alike wherever it lies), so it is not required here: the
    slots keep results independent of batch composition either way."""
    ex = dtd.load_example()
    x = ex.images
    rng = np.random.default_rng(size)
    for _ in range(3):
        base = x[rng.integers(0, len(x), size)]
        r1 = dtd.explain(ex.model, base, low=0.0, high=1.0)
        other = x[rng.integers(0, len(x), size)]
        p = int(rng.integers(0, size))
        other[p] = base[p]
        r2 = dtd.explain(ex.model, other, low=0.0, high=1.0)
        assert np.array_equal(r1[p], r2[p]), (size, p)


@pytest.mark.parametrize("micro_batch", [1, "auto"])
def test_equal_to_in_process_explain(
    model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray], micro_batch: int | str
) -> None:
    images, labels = digits
    ex = _explainer(model_bytes, micro_batch=micro_batch)
    assert ex.batch_slots == (1 if micro_batch == 1 else 64)
    maps, logits, classes = reference_maps(images, size=ex.batch_slots)
    out = ex({"image": images, "label": labels}, start=0)
    assert np.array_equal(out["relevance"], maps)
    assert np.array_equal(out["target"], classes)
    assert np.array_equal(out["predicted"], classes)
    np.testing.assert_array_equal(out["logit"], logits)
    sums = maps.reshape(len(maps), -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_array_equal(out["relevance_sum"], sums)
    np.testing.assert_array_equal(out["absorbed"], logits - sums)
    assert np.all(out["error"] == "")
    assert np.array_equal(out["label"], labels)
    assert np.array_equal(out["id"], np.arange(len(images)))
    # Across micro-batch sizes only the last bits differ (README: batch blocking).
    alone = reference_maps(images[:5], size=1)[0]
    np.testing.assert_allclose(out["relevance"][:5], alone, rtol=0, atol=1e-5 * np.abs(alone).max())


def test_ids_without_an_id_column_are_content_hashes(
    model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = digits
    ex = _explainer(model_bytes)
    a = ex({"image": images[:10]})
    b = ex({"image": images[5:10]})
    assert np.array_equal(a["id"][5:], b["id"]) and len(set(a["id"].tolist())) == 10
    assert np.array_equal(a["relevance"][5:], b["relevance"])  # slots from the hashes: the same bits


@pytest.mark.parametrize("micro_batch", [1, 8, "auto"])
def test_independent_of_batch_composition_and_threads(
    model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray], micro_batch: int
) -> None:
    images, _ = digits
    whole = _explainer(model_bytes, micro_batch=micro_batch)({"image": images, "id": np.arange(len(images))})
    perm = np.random.default_rng(1).permutation(len(images))
    before = dtd.get_num_threads()
    try:
        split = _explainer(model_bytes, micro_batch=micro_batch, num_threads=2)
        parts = [split({"image": images[perm[a:b]], "id": perm[a:b]}) for a, b in ((0, 5), (5, 6), (6, 40))]
    finally:
        dtd.set_num_threads(before)
    ids = np.concatenate([p["id"] for p in parts])
    rel = np.concatenate([p["relevance"] for p in parts])[np.argsort(ids)]
    assert np.array_equal(rel, whole["relevance"])
    for key in ("logit", "relevance_sum", "target"):
        assert np.array_equal(np.concatenate([p[key] for p in parts])[np.argsort(ids)], whole[key])


def test_pickles_without_the_model_and_reloads(
    model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = digits
    ex = _explainer(model_bytes, keep="channels", map_dtype="float16")
    before = ex({"image": images[:6]}, start=100)
    blob = pickle.dumps(ex)
    assert len(blob) < len(model_bytes) + 10_000  # the configuration and the ONNX bytes, no loaded network
    again = pickle.loads(blob)
    assert again._model is None
    after = again({"image": images[:6]}, start=100)
    for key in before:
        assert np.array_equal(before[key], after[key]), key
    assert after["relevance"].dtype == np.float16 and after["relevance"].shape == (6, 28, 28)
    assert np.array_equal(after["id"], np.arange(100, 106))


def test_path_model_and_config_round_trip(tmp_path: Path, model_bytes: bytes) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes)
    ex = Explainer(path, low=0.0, high=1.0, keep="none", target=3)
    assert ex.model == str(path.resolve())
    twin = Explainer(**ex.config())
    images, _ = generated_digits(5)
    a, b = ex({"image": images}), twin({"image": images})
    assert "relevance" not in a
    assert np.all(a["target"] == 3)
    for key in a:
        assert np.array_equal(a[key], b[key])


def test_targets_from_a_column_and_float64(model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    wrong = (labels + 1) % 10
    out = _explainer(model_bytes, target="label", compute_dtype="float64")(
        {"image": images[:8], "label": wrong[:8]}
    )
    assert np.array_equal(out["target"], wrong[:8])
    ex = dtd.load_example()
    x = (images[:8].astype(np.float64) / 255.0)[:, None]
    ref = dtd.explain(ex.model, x[2:3], target=int(wrong[2]), low=0.0, high=1.0)
    np.testing.assert_array_equal(out["relevance"][2], ref[0].astype(np.float32))


def test_a_failing_sample_is_reported_not_fatal(
    model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = digits
    x = (images[:10].astype(np.float32) / 255.0)[:, None]
    x[4, 0, 3, 3] = 2.0  # outside the z^beta bounds [0, 1]
    x[7, 0, 0, 0] = np.nan
    good = _explainer(model_bytes, micro_batch=4)({"image": np.delete(x, [4, 7], axis=0)})
    out = _explainer(model_bytes, micro_batch=4)({"image": x})
    assert "outside [low, high]" in out["error"][4]
    assert "NaN" in out["error"][7]
    ok = np.ones(10, bool)
    ok[[4, 7]] = False
    assert np.all(out["error"][ok] == "")
    assert np.array_equal(out["relevance"][ok], good["relevance"])
    assert np.all(out["relevance"][~ok] == 0) and np.all(np.isnan(out["logit"][~ok]))


def test_layouts_and_errors(model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = digits
    ex = _explainer(model_bytes)
    hwc = ex.replace(channels_last=True)({"image": images[:3, :, :, None]})
    assert np.array_equal(hwc["relevance"], ex({"image": images[:3]})["relevance"])
    objects = np.empty(3, dtype=object)
    objects[:] = list(images[:3])
    assert np.array_equal(ex({"image": objects})["relevance"], hwc["relevance"])
    with pytest.raises(KeyError, match=r"no column 'image' \(columns: \['pixels'\]\)"):
        ex({"pixels": images})
    with pytest.raises(ValueError, match=r"samples of shape \[27, 28\]"):
        ex({"image": images[:, :27]})
    with pytest.raises(ValueError, match="keep must be"):
        Explainer(model_bytes, keep="some")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        Explainer("/nonexistent/model.onnx")
    with pytest.raises(KeyError, match="target column 'label'"):
        ex.replace(target="label")({"image": images[:2]})


def test_store_writes_shards_named_by_id_range(
    tmp_path: Path, model_bytes: bytes, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = digits
    store = MapStore(tmp_path, "npy")
    ex = _explainer(model_bytes, store=store)
    out = ex({"image": images[:6], "id": np.arange(10, 16)})
    assert set(out["shard"]) == {"maps/maps-000000000010-000000000016.npy"}
    plain = _explainer(model_bytes)({"image": images[:6], "id": np.arange(10, 16)})
    assert np.array_equal(np.load(tmp_path / out["shard"][0])[out["row"]], plain["relevance"])
    again = ex({"image": images[:6], "id": np.arange(10, 16)})  # a retried task overwrites its shard
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["maps-000000000010-000000000016.npy"]
    assert np.array_equal(again["row"], out["row"])
    with pytest.raises(ValueError, match="contiguous ids"):
        ex({"image": images[:3], "id": np.array([1, 2, 5])})
