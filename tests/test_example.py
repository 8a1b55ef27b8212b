"""Tests for the shipped example: the MNIST CNN and its 32 held-out digits (dtd.examples.load_example)."""

from __future__ import annotations

import io
from importlib import resources

import numpy as np
import pytest

import dtd
from dtd.examples import METADATA_FILE, MODEL_FILE, SAMPLES_FILE, Example, load_example


@pytest.fixture(scope="module")
def example() -> Example:
    return load_example()


def test_packaged_files_exist() -> None:
    data = resources.files("dtd").joinpath("data")
    for name in (MODEL_FILE, SAMPLES_FILE, METADATA_FILE):
        assert data.joinpath(name).is_file(), name
    assert len(data.joinpath(MODEL_FILE).read_bytes()) < 2_000_000


def test_example_contents(example: Example) -> None:
    assert isinstance(example.model, dtd.Model)
    assert example.images.shape == (32, 1, 28, 28) and example.images.dtype == np.float32
    assert example.raw.shape == (32, 28, 28) and example.raw.dtype == np.uint8
    assert example.labels.shape == (32,) and example.labels.dtype == np.int64
    assert 0.0 <= example.images.min() and example.images.max() <= 1.0
    np.testing.assert_array_equal(example.images[:, 0], example.raw.astype(np.float32) / 255.0)
    assert (example.low, example.high) == (0.0, 1.0)
    assert set(example.labels.tolist()) == set(range(10))  # every digit is represented
    assert tuple(example.model.input_shape) == (1, 28, 28)


def test_metadata(example: Example) -> None:
    meta = example.metadata
    assert meta["train_split"] == [0, 8000] and meta["test_split"] == [8000, 10000]
    assert meta["test_accuracy"] >= 0.985
    assert meta["low"] == 0.0 and meta["high"] == 1.0
    assert all(8000 <= i < 10000 for i in meta["sample_indices"])  # held-out digits only
    for key in ("epochs", "seed", "torch_version", "command"):
        assert key in meta


def test_model_classifies_the_shipped_digits(example: Example) -> None:
    logits = example.model.forward(example.images)
    assert logits.shape == (32, 10) and logits.dtype == np.float32
    correct = int((logits.argmax(axis=1) == example.labels).sum())
    assert correct >= 30, f"only {correct}/32 digits right"


def test_forward_matches_torch_and_onnxruntime(example: Example) -> None:
    ort = pytest.importorskip("onnxruntime")
    data = resources.files("dtd").joinpath("data")
    with np.load(io.BytesIO(data.joinpath(SAMPLES_FILE).read_bytes())) as z:
        torch_logits = z["logits"]
    model_bytes = data.joinpath(MODEL_FILE).read_bytes()
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(None, {"x": example.images})[0]
    ours = example.model.forward(example.images)
    np.testing.assert_allclose(ort_logits, torch_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours, ort_logits, rtol=1e-4, atol=1e-4)


def test_explain_the_example(example: Example) -> None:
    x = example.images[:8]
    R = dtd.explain(example.model, x, low=example.low, high=example.high)
    assert R.shape == x.shape
    logits = example.model.forward(x)
    top = logits.max(axis=1)
    # z^beta / z+ with non-positive biases: relevance is conserved up to the stabiliser and >= 0.
    sums = R.reshape(len(x), -1).sum(axis=1)
    np.testing.assert_allclose(sums, top, rtol=1e-2)
    assert R.min() >= -1e-6 * float(np.abs(R).max())
