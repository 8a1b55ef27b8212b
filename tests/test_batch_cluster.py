"""dtd.batch on real schedulers: a Dask LocalCluster with 2 worker processes and a local Ray (2 CPUs) explain
a few thousand digits (the real MNIST test digits when shared/ is there, else generated ones) end to end into
Zarr / .npy shards and a Parquet index, bit for bit equal to in-process explanation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchdata import generated_digits
from conftest import MNIST_FILE

pytest.importorskip("pyarrow", reason="dtd[datasets] (pyarrow) is not installed")

from dtd.batch import Explainer, explain_dask, explain_ray, read_index, read_maps
from dtd.examples import MODEL_FILE, _read

COUNT = 2000


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """2,000 uint8 digits [N, 28, 28] and labels: the last MNIST test digits (never trained on), or generated."""
    if MNIST_FILE.exists():
        with np.load(MNIST_FILE) as data:
            return data["images"][-COUNT:].copy(), data["labels"][-COUNT:].astype(np.int64)
    return generated_digits(COUNT, seed=11)


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    return Explainer(_read(MODEL_FILE), low=0.0, high=1.0, passthrough=("label",))


@pytest.fixture(scope="module")
def reference(explainer: Explainer, digits: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """In-process explanation of all digits in one call (ids 0..N-1)."""
    return explainer({"image": digits[0], "label": digits[1]}, start=0)


def _check(out: Path, reference: dict[str, np.ndarray], labels: np.ndarray | None = None) -> None:
    idx = read_index(out)
    assert np.array_equal(idx["id"], np.arange(COUNT))
    assert np.all(idx["error"] == "")
    for key in ("predicted", "target", "logit", "relevance_sum", "absorbed"):
        assert np.array_equal(idx[key], reference[key]), key
    if labels is not None:
        assert np.array_equal(idx["label"], labels)
    assert np.array_equal(read_maps(out, idx), reference["relevance"])


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed", reason="dtd[dask] (distributed) is not installed")
    pytest.importorskip("dask.array", reason="dtd[dask] (dask[array]) is not installed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize("fmt", ["zarr", "npy"])
def test_dask_local_cluster(
    tmp_path: Path,
    dask_client: Any,
    explainer: Explainer,
    digits: tuple[np.ndarray, np.ndarray],
    reference: dict[str, np.ndarray],
    fmt: str,
) -> None:
    import dask.array as da

    if fmt == "zarr":
        pytest.importorskip("zarr", reason="dtd[datasets] (zarr) is not installed")
    images, labels = digits
    x = da.from_array(images, chunks=(300, 28, 28))  # chunks not aligned to the micro-batches of 64
    summary = explain_dask(x, explainer, tmp_path / "out", labels=labels, format=fmt)
    assert summary.count == COUNT and summary.explained == COUNT and summary.shards == 7
    _check(tmp_path / "out", reference, labels)
    with pytest.raises(ValueError, match="holds the results of an earlier run"):
        explain_dask(x, explainer, tmp_path / "out", format=fmt)


def test_dask_map_blocks(dask_client: Any, explainer: Explainer, digits: tuple[np.ndarray, np.ndarray],
                         reference: dict[str, np.ndarray]) -> None:  # fmt: skip
    """The Explainer as a plain ``map_blocks`` function: the block offsets give the ids, so the maps equal."""
    import dask.array as da

    x = da.from_array(digits[0][:500], chunks=(70, 28, 28))
    maps = da.map_blocks(
        explainer.relevance, x[:, None], dtype=np.float32, chunks=((70,) * 7 + (10,), (1,), (28,), (28,))
    )
    assert np.array_equal(maps.compute(), reference["relevance"][:500])


def _frame(digits: tuple[np.ndarray, np.ndarray], n: int) -> Any:
    pd = pytest.importorskip("pandas", reason="dtd[dask] (pandas) is not installed")
    return pd.DataFrame({"id": np.arange(n), "label": digits[1][:n], "image": list(digits[0][:n])})


def test_dask_dataframe_map_partitions(
    dask_client: Any,
    explainer: Explainer,
    digits: tuple[np.ndarray, np.ndarray],
    reference: dict[str, np.ndarray],
) -> None:
    """A Dask DataFrame with one array per row: explain_dataframe (map_partitions with Explainer.partition and
    its meta) on a 2-process cluster gives the in-process maps bit for bit, whatever the partitions."""
    import dask
    import dask.dataframe as dd

    from dtd.batch.cluster import explain_dataframe

    pdf = _frame(digits, 500)
    with pytest.raises(ValueError, match="convert-string"):  # Dask's default turns the arrays into text
        explain_dataframe(dd.from_pandas(pdf, npartitions=3), explainer)
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(pdf, npartitions=7)
        lazy = explain_dataframe(ddf, explainer)
        out = lazy.compute()
    assert list(out.columns) == list(lazy._meta.columns)
    assert dict(out.dtypes) == dict(lazy._meta.dtypes)
    assert np.array_equal(out.index.to_numpy(), np.arange(500))
    assert np.array_equal(out["id"].to_numpy(), np.arange(500))
    assert np.array_equal(out["label"].to_numpy(), digits[1][:500])
    assert (out["error"] == "").all()
    for key in ("predicted", "target", "logit", "relevance_sum"):
        assert np.array_equal(out[key].to_numpy(), reference[key][:500]), key
    assert np.array_equal(np.stack(out["relevance"].to_list()), reference["relevance"][:500])


def test_dask_dataframe_with_a_store_and_a_bag(
    tmp_path: Path,
    dask_client: Any,
    explainer: Explainer,
    digits: tuple[np.ndarray, np.ndarray],
    reference: dict[str, np.ndarray],
) -> None:
    """With a MapStore each partition writes its maps as one .npy shard (the frame gets shard/row); a Dask bag of
    records goes through Explainer.records."""
    import dask
    import dask.bag as db
    import dask.dataframe as dd

    from dtd.batch import MapStore
    from dtd.batch.cluster import explain_bag, explain_dataframe
    from dtd.batch.store import INDEX_FILE, write_table

    store = MapStore(tmp_path / "out", "npy")
    store.create()
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(_frame(digits, 300), npartitions=4)
        out = explain_dataframe(ddf, explainer.replace(store=store)).compute()
    assert "relevance" not in out.columns and out["shard"].nunique() == 4
    write_table(tmp_path / "out" / INDEX_FILE, {c: out[c].to_numpy() for c in out.columns})
    assert np.array_equal(read_maps(tmp_path / "out"), reference["relevance"][:300])

    records = [{"id": i, "image": digits[0][i]} for i in range(200)]
    res = explain_bag(db.from_sequence(records, npartitions=3), explainer).compute()
    assert [r["id"] for r in res] == list(range(200))
    assert all(isinstance(r["logit"], float) and r["error"] == "" for r in res)
    assert np.array_equal(np.stack([r["relevance"] for r in res]), reference["relevance"][:200])


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="dtd[ray] is not installed")
    pytest.importorskip("ray.data", reason="ray[data] is not installed")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as err:  # a machine where Ray cannot start: say why
        pytest.skip(f"Ray cannot start here: {type(err).__name__}: {err}")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own deprecations, not ours
@pytest.mark.filterwarnings("ignore::FutureWarning:ray")
def test_ray_data(
    tmp_path: Path,
    ray_session: Any,
    explainer: Explainer,
    digits: tuple[np.ndarray, np.ndarray],
    reference: dict[str, np.ndarray],
) -> None:
    import ray.data

    images, labels = digits

    def load(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = batch["id"]
        return {"id": ids, "image": images[ids], "label": labels[ids]}

    ds = ray.data.range(COUNT, override_num_blocks=6).map_batches(load, batch_size=250)
    # Two actors of half a CPU each on ray.init(num_cpus=2): a CPU stays free for the read tasks.
    summary = explain_ray(ds, explainer, tmp_path / "out", batch_size=250, concurrency=2, num_cpus=0.5)
    assert summary.count == COUNT and summary.explained == COUNT
    _check(tmp_path / "out", reference, labels)
    assert len(list((tmp_path / "out" / "maps").glob("*.npy"))) >= COUNT // 250
    # Without an output folder: the lazily explained Dataset, maps in the rows.
    lazy = explain_ray(
        ray.data.range(100).map_batches(load), explainer.replace(keep="channels"), num_cpus=0.5
    )
    rows = lazy.take_batch(100)
    order = np.argsort(rows["id"])
    assert np.array_equal(rows["relevance"][order], reference["relevance"][:100, 0])
