"""Property-based forward checks: random conv and pooling geometries against onnxruntime.

The examples are derandomized (hypothesis' fixed seed), so every run draws the same cases.
"""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtd
from builders import GraphBuilder, one_node, random_input, run_numpy, run_ort

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def geometry(draw: st.DrawFn, pooling: bool) -> dict:
    """Kernel, strides, dilations, padding mode and an input size that fits the dilated kernel."""
    kernel = [draw(st.integers(1, 4)) for _ in range(2)]
    strides = [draw(st.integers(1, 3)) for _ in range(2)]
    dilations = [draw(st.integers(1, 3)) for _ in range(2)]
    mode = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    if mode.startswith("SAME"):
        # onnxruntime rejects SAME with dilations, and negative total padding (stride > kernel).
        dilations = [1, 1]
        strides = [min(s, k) for s, k in zip(strides, kernel, strict=True)]
    span = [d * (k - 1) + 1 for d, k in zip(dilations, kernel, strict=True)]
    if mode == "NOTSET":
        # Pooling pads must be smaller than the kernel (an ONNX/onnxruntime requirement).
        limit = [k - 1 if pooling else 2 for k in kernel]
        pads = [draw(st.integers(0, limit[i % 2])) for i in range(4)]
    else:
        pads = [0, 0, 0, 0]
    size = [draw(st.integers(max(span[i] - pads[i] - pads[i + 2], 1), span[i] + 9)) for i in range(2)]
    attrs: dict = {"strides": strides}
    if mode == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = mode
    return {"kernel": kernel, "dilations": dilations, "size": size, "attrs": attrs}


def _compare(model: onnx.ModelProto, sample_shape: tuple[int, ...], seed: int) -> None:
    net = dtd.load(model)
    x = random_input((3, *sample_shape), seed)
    expected = run_ort(model, x)
    got = net.forward(x)
    assert got.shape == expected.shape
    scale = float(np.abs(expected).max()) or 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
    reference = run_numpy(model, x.astype(np.float64))
    np.testing.assert_allclose(net.forward(x.astype(np.float64)), reference, rtol=1e-12, atol=1e-12 * scale)


@SETTINGS
@given(
    g=geometry(pooling=False),
    c_in_per_group=st.integers(1, 3),
    out_per_group=st.integers(1, 3),
    groups=st.integers(1, 3),
    depthwise=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_conv_geometry(
    g: dict, c_in_per_group: int, out_per_group: int, groups: int, depthwise: bool, bias: bool, seed: int
) -> None:
    if depthwise:
        c_in_per_group = 1
    c_in = c_in_per_group * groups
    b = GraphBuilder((c_in, *g["size"]), seed=seed)
    out = b.conv(
        "x",
        out_per_group * groups,
        g["kernel"],
        bias=bias,
        group=groups,
        dilations=g["dilations"],
        **g["attrs"],
    )
    _compare(b.build(out), (c_in, *g["size"]), seed)


@SETTINGS
@given(
    g=geometry(pooling=True), ceil_mode=st.integers(0, 1), channels=st.integers(1, 3), seed=st.integers(0, 99)
)
def test_maxpool_geometry(g: dict, ceil_mode: int, channels: int, seed: int) -> None:
    shape = (channels, *g["size"])
    model = one_node(
        "MaxPool",
        shape,
        kernel_shape=g["kernel"],
        dilations=g["dilations"],
        ceil_mode=ceil_mode,
        **g["attrs"],
    )
    _compare(model, shape, seed)


@SETTINGS
@given(
    g=geometry(pooling=True),
    ceil_mode=st.integers(0, 1),
    count_include_pad=st.integers(0, 1),
    channels=st.integers(1, 3),
    seed=st.integers(0, 99),
)
def test_avgpool_geometry(g: dict, ceil_mode: int, count_include_pad: int, channels: int, seed: int) -> None:
    shape = (channels, *g["size"])
    model = one_node(
        "AveragePool",
        shape,
        kernel_shape=g["kernel"],
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        **g["attrs"],
    )
    _compare(model, shape, seed)
