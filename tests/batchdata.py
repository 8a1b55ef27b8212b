"""Digits for the dataset tests that are always present: the 32 shipped held-out digits, shifted and rescaled
into as many uint8 [N, 28, 28] samples as needed (seeded), and the real MNIST test digits when shared/ is there."""

from __future__ import annotations

import numpy as np

import dtd


def generated_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 digits [n, 28, 28] and their labels: a shipped digit rolled by up to 3 pixels each way and
    scaled in brightness by 0.6 to 1.0."""
    ex = dtd.load_example()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(ex.raw), n)
    shifts = rng.integers(-3, 4, (n, 2))
    gain = rng.uniform(0.6, 1.0, n)
    out = np.empty((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        img = np.roll(ex.raw[pick[i]], tuple(shifts[i]), axis=(0, 1)).astype(np.float64) * gain[i]
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out, ex.labels[pick].astype(np.int64)


def reference_maps(
    digits: np.ndarray, size: int = 64, **kwargs: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The in-process reference: ``dtd.explain`` (bounded preset, pixels in [0, 1]) on consecutive batches of
    ``size`` digits (the last padded), so digit ``i`` sits at position ``i % size`` as in an Explainer with
    ``micro_batch=size`` (64 is what "auto" picks for the shipped model): maps float32 [n, 1, 28, 28], logits of
    the explained class, classes."""
    ex = dtd.load_example()
    x = (digits.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)[:, None]
    n = len(x)
    maps = np.empty(x.shape, dtype=np.float32)
    logits = np.empty(n)
    classes = np.empty(n, dtype=np.int64)
    for a in range(0, n, size):
        b = min(a + size, n)
        rows = np.concatenate([np.arange(a, b), np.full(size - (b - a), a)])
        d = dtd.explain(ex.model, x[rows], low=0.0, high=1.0, return_details=True, **kwargs)
        maps[a:b] = d.relevance[: b - a]
        classes[a:b] = d.targets[: b - a]
        logits[a:b] = d.logits[np.arange(b - a), classes[a:b]]
    return maps, logits, classes
