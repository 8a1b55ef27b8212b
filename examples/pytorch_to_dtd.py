"""Worked example: a small PyTorch CNN exported to ONNX, then explained with dtd.

Needs torch (not a dtd dependency): ``pip install torch==2.13.0``. Run: ``python examples/pytorch_to_dtd.py``.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

import dtd

torch.manual_seed(0)
net = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(16, 10),
).eval()

# 1. Export to ONNX (any exporter that writes standard ops works; here in memory).
buffer = io.BytesIO()
torch.onnx.export(
    net,
    torch.zeros(1, 1, 28, 28),
    buffer,
    input_names=["x"],
    output_names=["logits"],
    dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
    opset_version=13,
    dynamo=False,
)

# 2. Import and check the forward pass against PyTorch.
model = dtd.load(buffer.getvalue())
print(model.summary())
x = np.random.default_rng(0).uniform(0, 1, (4, 1, 28, 28)).astype(np.float32)
with torch.no_grad():
    expected = net(torch.from_numpy(x)).numpy()
print("max |dtd - torch| =", float(np.abs(model.forward(x) - expected).max()))

# 3. Explain: pixels in [0, 1] -> the bounded DTD preset (z^beta first layer, z+ above).
details = dtd.explain(model, x, low=0.0, high=1.0, return_details=True)
print("relevance", details.relevance.shape, "targets", details.targets)
print("sum R per sample:", details.relevance.reshape(4, -1).sum(axis=1))
print("f_c(x) per sample:", details.logits[np.arange(4), details.targets])
print(details.report())
dtd.viz.save("example_heatmap.png", details.relevance[0], scale=8)
