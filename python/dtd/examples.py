"""The shipped example: a small MNIST ReLU CNN and 32 held-out digits.

The model (``dtd/data/mnist_cnn.onnx``) was trained by ``tools/train_mnist.py`` on the first 8,000 MNIST
test digits; the 32 digits in ``dtd/data/mnist_samples.npz`` come from the other 2,000, which the network
never saw. Inputs are ``raw / 255`` in [0, 1], so the bounds for the z^beta rule are ``low=0``, ``high=1``.
``dtd/data/mnist_cnn.json`` records how the model was trained and its held-out accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .model import Model

__all__ = ["METADATA_FILE", "MODEL_FILE", "SAMPLES_FILE", "Example", "load_example"]

MODEL_FILE = "mnist_cnn.onnx"
SAMPLES_FILE = "mnist_samples.npz"
METADATA_FILE = "mnist_cnn.json"


@dataclass(frozen=True)
class Example:
    """The shipped MNIST model with a few held-out digits.

    Attributes
    ----------
    model : dtd.Model
        The loaded network: input ``x`` [N, 1, 28, 28] in [0, 1], output: 10 logits (no softmax).
    images : numpy.ndarray
        float32 [32, 1, 28, 28], ``raw / 255``.
    labels : numpy.ndarray
        int64 [32], the true digits.
    low, high : float
        Pixel bounds for the bounded (z^beta) rule: 0 and 1.
    raw : numpy.ndarray
        uint8 [32, 28, 28], the digits as stored.
    metadata : dict
        Training record from ``mnist_cnn.json`` (accuracy, split, epochs, seed, torch version, command).
    """

    model: Model
    images: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    low: float
    high: float
    raw: npt.NDArray[np.uint8]
    metadata: dict[str, Any] = field(default_factory=dict)


def _read(name: str) -> bytes:
    return resources.files("dtd").joinpath("data").joinpath(name).read_bytes()


def load_example() -> Example:
    """Load the shipped MNIST CNN and its 32 held-out sample digits.

    Returns
    -------
    Example
        Model, images in [0, 1] as float32 [32, 1, 28, 28], labels, bounds and metadata.

    Examples
    --------
    >>> import dtd
    >>> from dtd.examples import load_example
    >>> ex = load_example()
    >>> R = dtd.explain(ex.model, ex.images[:4], low=ex.low, high=ex.high)  # doctest: +SKIP
    """
    import io

    from . import load

    model = load(_read(MODEL_FILE))
    with np.load(io.BytesIO(_read(SAMPLES_FILE))) as npz:
        raw = np.asarray(npz["images"], dtype=np.uint8)
        labels = np.asarray(npz["labels"], dtype=np.int64)
    metadata: dict[str, Any] = json.loads(_read(METADATA_FILE).decode("utf-8"))
    images = (raw.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    low = float(metadata.get("low", 0.0))
    high = float(metadata.get("high", 1.0))
    return Example(model=model, images=images, labels=labels, low=low, high=high, raw=raw, metadata=metadata)
