"""Exports miniature models of the torchvision families (and a few user-style nets) to ONNX as test data.

Writes ``tests/data/zoo_minis/<family>_<exporter>_op<N>.onnx`` with a matching ``<same stem>.npz`` (``x``: an
input batch of 2, float32; ``y``: torch's output for it) and ``tests/data/zoo_minis/README.md`` (what each
export contains). Each family is a few blocks of the real architecture, mostly built from torchvision's own
block classes, with small widths so that each file stays under 200 KB; weights are seeded, BatchNorm running
statistics and the affine parameters of the normalization layers are random, the models are in eval mode.

Exporters: ``dynamo`` (``torch.onnx.export(..., dynamo=True)`` at its default opset) and ``legacy``
(``dynamo=False``) at opsets 13 and 17, and 11 for the families listed in ``OPSET11``. The batch axis is
dynamic where the exporter allows it (the README says where it is not). Weights are kept inside the file (no
external data).

Needs torch, torchvision, onnx, onnxscript and onnxruntime (tools/requirements-zoo.txt; not dtd's test
dependencies), in a virtualenv of their own::

    pip install -r tools/requirements-zoo.txt
    python tools/export_minis.py                                  # all families, into tests/data/zoo_minis
    python tools/export_minis.py --families resnet_basic,convnext # re-export some (the README is rewritten)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torchvision.models import (
    convnext,
    densenet,
    efficientnet,
    mnasnet,
    mobilenetv2,
    mobilenetv3,
    regnet,
    resnet,
    shufflenetv2,
    squeezenet,
)
from torchvision.models.googlenet import BasicConv2d, Inception  # the module name is also a function
from torchvision.ops.misc import Conv2dNormActivation

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "data" / "zoo_minis"
MAX_FILE_BYTES = 200_000
MAX_DIR_BYTES = 8_000_000
LEGACY_OPSETS = (13, 17)
#: Families also exported by the legacy exporter at opset 11 (ops that opset 11 has, or that the exporter
#: decomposes there: HardSwish, LayerNorm and GELU are decomposed below opsets 14, 17 and 20).
OPSET11 = ("resnet_basic", "vgg_bn", "alexnet", "squeezenet", "mobilenet_v3", "convnext", "mlp_leakyrelu")
BATCH = 2


# ---------------------------------------------------------------------------------------------------------
# the miniature models
# ---------------------------------------------------------------------------------------------------------
def _resnet_basic() -> nn.Module:
    down = nn.Sequential(resnet.conv1x1(8, 16, stride=2), nn.BatchNorm2d(16))
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        resnet.BasicBlock(8, 8),
        resnet.BasicBlock(8, 16, stride=2, downsample=down),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(1),
        nn.Linear(16, 10),
    )


def _resnet_bottleneck() -> nn.Module:
    down = nn.Sequential(resnet.conv1x1(16, 32, stride=2), nn.BatchNorm2d(32))
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        resnet.Bottleneck(16, 4),  # 16 -> 4 -> 4 -> 16, identity shortcut
        resnet.Bottleneck(16, 8, stride=2, downsample=down),  # 16 -> 8 -> 8 (stride 2) -> 32
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(1),
        nn.Linear(32, 10),
    )


def _vgg_features(cfg: list[int | str], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int)
            layers.append(nn.Conv2d(channels, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            channels = v
    return nn.Sequential(*layers)


class _VGG(nn.Module):
    """torchvision's VGG layout (features, adaptive average pooling, flatten, three-layer classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg_features([8, "M", 16, "M", 16, 16, "M"], batch_norm=True)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))  # 4x4 -> 2x2
        self.classifier = nn.Sequential(
            nn.Linear(16 * 4, 32),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(32, 32),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class _AlexNet(nn.Module):
    """torchvision's AlexNet layout: overlapping max pooling, AdaptiveAvgPool2d, Dropout before each Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=5, stride=2, padding=2),  # 32 -> 16
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 16 -> 7
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=1),  # 7 -> 5 (no 6x6 map at this size)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((5, 5))  # the identity here, as in AlexNet at 224x224
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(16 * 25, 32),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(32, 32),
            nn.ReLU(inplace=True),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _squeezenet() -> nn.Module:
    final_conv = nn.Conv2d(32, 10, kernel_size=1)
    with torch.no_grad():  # the classifier ends in a ReLU: keep some logits positive for every sample
        final_conv.bias.abs_()
    return nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2),  # 32 -> 15
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # 15 -> 7
        squeezenet.Fire(16, 4, 8, 8),
        squeezenet.Fire(16, 4, 8, 8),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # 7 -> 3
        squeezenet.Fire(16, 8, 16, 16),
        nn.Dropout(p=0.5),
        final_conv,
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(1),
    )


class _DenseNet(nn.Module):
    """Two dense blocks with a transition (BN-ReLU-Conv1x1-AvgPool) between them, norm5, ReLU, GAP, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            densenet._DenseBlock(num_layers=2, num_input_features=16, bn_size=2, growth_rate=8, drop_rate=0),
            densenet._Transition(num_input_features=32, num_output_features=16),
            densenet._DenseBlock(num_layers=2, num_input_features=16, bn_size=2, growth_rate=8, drop_rate=0),
            nn.BatchNorm2d(32),
        )
        self.classifier = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.relu(self.features(x), inplace=True)
        out = nn.functional.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(torch.flatten(out, 1))


class _NestedInception(nn.Module):
    """inception_v3's InceptionE pattern at small width: branches that are themselves concatenations."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        conv = BasicConv2d
        self.branch1x1 = conv(cin, 8, kernel_size=1)
        self.branch3x3_1 = conv(cin, 8, kernel_size=1)
        self.branch3x3_2a = conv(8, 8, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = conv(8, 8, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = conv(cin, 8, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bp = self.branch_pool(nn.functional.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b3, bp], 1)


def _inception() -> nn.Module:
    return nn.Sequential(
        BasicConv2d(3, 16, kernel_size=3, padding=1),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),  # 32 -> 16
        Inception(16, 8, 4, 8, 2, 4, 4),  # googlenet's block: 8 + 8 + 4 + 4 = 24 channels
        _NestedInception(24),  # 8 + 16 + 8 = 32 channels
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(1),
        nn.Dropout(0.2),
        nn.Linear(32, 10),
    )


def _mobilenet_v2() -> nn.Module:
    relu6 = nn.ReLU6
    return nn.Sequential(
        Conv2dNormActivation(3, 8, stride=2, norm_layer=nn.BatchNorm2d, activation_layer=relu6),
        mobilenetv2.InvertedResidual(8, 8, 1, expand_ratio=1),  # depthwise + project, residual
        mobilenetv2.InvertedResidual(8, 12, 2, expand_ratio=4),
        mobilenetv2.InvertedResidual(12, 12, 1, expand_ratio=4),  # residual
        Conv2dNormActivation(12, 32, kernel_size=1, norm_layer=nn.BatchNorm2d, activation_layer=relu6),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(1),
        nn.Dropout(p=0.2),
        nn.Linear(32, 10),
    )


def _mobilenet_v3() -> nn.Module:
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
    cfg = mobilenetv3.InvertedResidualConfig
    blocks = [
        mobilenetv3.InvertedResidual(cfg(16, 3, 16, 16, True, "RE", 2, 1, 1.0), norm),  # SE, no expansion
        mobilenetv3.InvertedResidual(cfg(16, 3, 48, 24, False, "RE", 1, 1, 1.0), norm),
        mobilenetv3.InvertedResidual(
            cfg(24, 5, 64, 24, True, "HS", 1, 1, 1.0), norm
        ),  # SE + HardSwish, residual
    ]
    return nn.Sequential(
        Conv2dNormActivation(3, 16, kernel_size=3, stride=2, norm_layer=norm, activation_layer=nn.Hardswish),
        *blocks,
        Conv2dNormActivation(24, 48, kernel_size=1, norm_layer=norm, activation_layer=nn.Hardswish),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(48, 32),
        nn.Hardswish(inplace=True),
        nn.Dropout(p=0.2, inplace=True),
        nn.Linear(32, 10),
    )


def _efficientnet() -> nn.Module:
    cfg = efficientnet.MBConvConfig
    norm = nn.BatchNorm2d
    return nn.Sequential(
        Conv2dNormActivation(3, 16, kernel_size=3, stride=2, norm_layer=norm, activation_layer=nn.SiLU),
        efficientnet.MBConv(cfg(1, 3, 1, 16, 8, 1), 0.0, norm),  # depthwise, SE (SiLU, Sigmoid), project
        efficientnet.MBConv(cfg(4, 3, 2, 8, 16, 1), 0.0, norm),
        efficientnet.MBConv(cfg(4, 5, 1, 16, 16, 1), 0.2, norm),  # residual with stochastic depth (eval: off)
        Conv2dNormActivation(16, 48, kernel_size=1, norm_layer=norm, activation_layer=nn.SiLU),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Dropout(p=0.2, inplace=True),
        nn.Linear(48, 10),
    )


class _MNASNet(nn.Module):
    """torchvision's MNASNet layout: stem, depthwise-separable conv, inverted residuals, ``x.mean([2, 3])``."""

    def __init__(self) -> None:
        super().__init__()
        momentum = 1 - 0.9997
        self.layers = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(8, momentum=momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1, stride=1, groups=8, bias=False),
            nn.BatchNorm2d(8, momentum=momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(8, momentum=momentum),
            mnasnet._InvertedResidual(8, 12, 3, 2, 3, momentum),
            mnasnet._InvertedResidual(12, 12, 5, 1, 3, momentum),  # residual
            nn.Conv2d(12, 32, 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(32, momentum=momentum),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


class _ShuffleNet(nn.Module):
    """torchvision's ShuffleNetV2 layout: a downsampling unit and two channel-split units, ``x.mean([2, 3])``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage2 = nn.Sequential(
            shufflenetv2.InvertedResidual(8, 16, 2),
            shufflenetv2.InvertedResidual(16, 16, 1),
            shufflenetv2.InvertedResidual(16, 16, 1),
        )
        self.conv5 = nn.Sequential(
            nn.Conv2d(16, 32, 1, 1, 0, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.stage2(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


def _regnet_x() -> nn.Module:
    norm, act = nn.BatchNorm2d, nn.ReLU
    return nn.Sequential(
        regnet.SimpleStemIN(3, 8, norm, act),
        regnet.ResBottleneckBlock(
            8, 16, 2, norm, act, group_width=4, bottleneck_multiplier=1.0, se_ratio=None
        ),
        regnet.ResBottleneckBlock(
            16, 16, 1, norm, act, group_width=4, bottleneck_multiplier=1.0, se_ratio=None
        ),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(1),
        nn.Linear(16, 10),
    )


def _convnext() -> nn.Module:
    norm2d = partial(convnext.LayerNorm2d, eps=1e-6)
    return nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=4, stride=4),  # stem: 32 -> 8
        norm2d(16),
        convnext.CNBlock(16, layer_scale=1e-6, stochastic_depth_prob=0.0),
        norm2d(16),
        nn.Conv2d(16, 24, kernel_size=2, stride=2),  # downsample: 8 -> 4
        convnext.CNBlock(24, layer_scale=1e-6, stochastic_depth_prob=0.1),
        nn.AdaptiveAvgPool2d(1),
        norm2d(24),
        nn.Flatten(1),
        nn.Linear(24, 10),
    )


def _conv1d() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 8, kernel_size=7, stride=2, padding=3),  # 200 -> 100
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.MaxPool1d(2),  # -> 50
        nn.Conv1d(8, 16, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.AvgPool1d(2),  # -> 25
        nn.Conv1d(16, 16, kernel_size=3, padding=1, dilation=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(1),
        nn.Linear(16, 5),
    )


def _conv3d() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(1, 4, kernel_size=3, padding=1),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        nn.MaxPool3d(2),  # 16 -> 8
        nn.Conv3d(4, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.AvgPool3d(2),  # 8 -> 4
        nn.Conv3d(8, 8, kernel_size=3, stride=2, padding=1),  # 4 -> 2
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(1),
        nn.Linear(8, 4),
    )


def _mlp_leakyrelu() -> nn.Module:
    return nn.Sequential(
        nn.Linear(20, 32),
        nn.LeakyReLU(0.1),
        nn.Linear(32, 32),
        nn.LeakyReLU(),  # slope 0.01
        nn.Linear(32, 5),
    )


class _ReLU6Net(nn.Module):
    """A small CNN with nn.ReLU6 and F.relu6 (Clip(0, 6) in ONNX)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.act1(self.conv1(x)), 2)  # 32 -> 16
        x = nn.functional.relu6(self.conv2(x))  # 16 -> 8
        return self.fc(x.flatten(1))


def _hardtanh_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.Hardtanh(),  # Clip(-1, 1)
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.Hardtanh(0.0, 2.0),  # Clip(0, 2)
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(8, 10),
    )


class _NormalizeNet(nn.Module):
    """Normalizes its [0, 1] input inside the graph, ``(x - mean) / std`` per channel, then a small CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(16, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # per sample
    note: str
    unit_input: bool = False  # inputs in [0, 1] (pixels) rather than standard normal


IMG = (3, 32, 32)
FAMILIES = [
    Family(
        "resnet_basic",
        _resnet_basic,
        IMG,
        "stem conv-BN-ReLU, two BasicBlocks (identity, conv1x1-BN downsample)",
    ),
    Family(
        "resnet_bottleneck",
        _resnet_bottleneck,
        IMG,
        "stem with maxpool, two Bottlenecks (identity, downsample)",
    ),
    Family(
        "vgg_bn",
        _VGG,
        IMG,
        "vgg*_bn features (conv-BN-ReLU, maxpool), AdaptiveAvgPool 4->2, 3 Linear + Dropout",
    ),
    Family(
        "alexnet",
        _AlexNet,
        IMG,
        "conv5 s2, overlapping maxpool, 3 convs, AdaptiveAvgPool (identity), Dropout+Linear",
    ),
    Family(
        "squeezenet",
        _squeezenet,
        IMG,
        "squeezenet1_1: Fire modules (expand1x1 | expand3x3 concat), ceil_mode pool",
    ),
    Family(
        "densenet", _DenseNet, IMG, "2 dense blocks (concat -> BN-ReLU-conv1x1-BN-ReLU-conv3x3), transition"
    ),
    Family(
        "inception", _inception, IMG, "googlenet Inception (4-branch concat) + InceptionE-style nested concat"
    ),
    Family(
        "mobilenet_v2",
        _mobilenet_v2,
        IMG,
        "InvertedResidual: expand 1x1, depthwise 3x3, ReLU6, linear project",
    ),
    Family("mobilenet_v3", _mobilenet_v3, IMG, "InvertedResidual with SE (ReLU, Hardsigmoid) and Hardswish"),
    Family(
        "efficientnet", _efficientnet, IMG, "MBConv: SiLU, SE (SiLU, Sigmoid), stochastic depth (off in eval)"
    ),
    Family("mnasnet", _MNASNet, IMG, "mnasnet _InvertedResidual (k3, k5), head x.mean([2, 3])"),
    Family(
        "shufflenet_v2",
        _ShuffleNet,
        IMG,
        "InvertedResidual units: chunk(2), concat, channel shuffle (view-transpose-view)",
    ),
    Family(
        "regnet_x", _regnet_x, IMG, "SimpleStemIN, ResBottleneckBlock with grouped 3x3 conv (group width 4)"
    ),
    Family(
        "convnext",
        _convnext,
        IMG,
        "LayerNorm2d, CNBlock: dw 7x7, permute, LayerNorm, Linear, GELU, layer scale",
    ),
    Family("conv1d", _conv1d, (1, 200), "Conv1d-BN-ReLU, MaxPool1d, AvgPool1d, AdaptiveAvgPool1d, Linear"),
    Family(
        "conv3d",
        _conv3d,
        (1, 16, 16, 16),
        "Conv3d-BN-ReLU, MaxPool3d, AvgPool3d, strided Conv3d, GAP, Linear",
    ),
    Family("mlp_leakyrelu", _mlp_leakyrelu, (20,), "Linear + LeakyReLU(0.1), LeakyReLU(0.01)"),
    Family("relu6_net", _ReLU6Net, IMG, "conv + nn.ReLU6, maxpool, conv + F.relu6, flatten, Linear"),
    Family("hardtanh_net", _hardtanh_net, IMG, "conv + Hardtanh(-1, 1), conv + Hardtanh(0, 2), GAP, Linear"),
    Family(
        "normalize_net",
        _NormalizeNet,
        IMG,
        "(x - mean) / std in the graph, on [0, 1] input, then a small CNN",
        True,
    ),
]


# ---------------------------------------------------------------------------------------------------------
# weights, inputs, export
# ---------------------------------------------------------------------------------------------------------
def randomize(net: nn.Module, seed: int) -> nn.Module:
    """Seeded default init, then random normalization statistics and affine parameters; eval mode."""
    gen = torch.Generator().manual_seed(seed + 1)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(t.shape, generator=gen, dtype=t.dtype)

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(uniform(m.running_mean, -0.5, 0.5))
                m.running_var.copy_(uniform(m.running_var, 0.5, 2.0))
                m.weight.copy_(uniform(m.weight, 0.5, 1.5))
                m.bias.copy_(uniform(m.bias, -0.5, 0.5))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(uniform(m.weight, 0.5, 1.5))
                m.bias.copy_(uniform(m.bias, -0.5, 0.5))
            elif isinstance(m, convnext.CNBlock):
                m.layer_scale.copy_(uniform(m.layer_scale, 0.5, 1.5))  # 1e-6 would make the block a no-op
    return net.eval()


def make_input(family: Family, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (BATCH, *family.input_shape)
    x = rng.uniform(0.0, 1.0, shape) if family.unit_input else rng.standard_normal(shape)
    return x.astype(np.float32)


@dataclass
class Export:
    stem: str
    exporter: str
    opset: int
    dynamic: bool
    proto: onnx.ModelProto
    notes: str = ""


def _export_legacy(net: nn.Module, x: torch.Tensor, opset: int) -> tuple[onnx.ModelProto, bool, str]:
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (x,),
        buffer,
        dynamo=False,
        opset_version=opset,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )
    return onnx.load_from_string(buffer.getvalue()), True, ""


def _export_dynamo(net: nn.Module, x: torch.Tensor) -> tuple[onnx.ModelProto, bool, str]:
    kwargs = {"dynamo": True, "input_names": ["x"], "output_names": ["y"], "external_data": False}
    try:
        program = torch.onnx.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("N")},), **kwargs)
        dynamic, note = True, ""
    except Exception as exc:  # the dynamic batch does not trace: fall back to a static one
        program = torch.onnx.export(net, (x,), **kwargs)
        dynamic, note = False, f"static batch (dynamic failed: {type(exc).__name__})"
    assert program is not None
    return program.model_proto, dynamic, note


def export_family(
    family: Family, index: int, failures: dict[str, str]
) -> tuple[np.ndarray, np.ndarray, list[Export]]:
    """The family's input batch, torch's output and its exports; export errors go into ``failures``."""
    torch.manual_seed(1000 + index)
    net = randomize(family.build(), seed=1000 + index)
    x = make_input(family, seed=2000 + index)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    exports = []
    for exporter, opset in _jobs(family):
        xt = torch.from_numpy(x.copy())
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                if exporter == "dynamo":
                    proto, dynamic, note = _export_dynamo(net, xt)
                else:
                    assert opset is not None
                    proto, dynamic, note = _export_legacy(net, xt, opset)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            key = f"{family.name}_dynamo" if exporter == "dynamo" else f"{family.name}_legacy_op{opset}"
            failures[key] = f"{type(exc).__name__}: {first[:200]}".replace("|", "\\|")
            print(f"  {key}: export failed: {failures[key]}")
            continue
        op = _default_opset(proto)
        exports.append(Export(f"{family.name}_{exporter}_op{op}", exporter, op, dynamic, proto, note))
    return x, y, exports


def _default_opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def op_types(proto: onnx.ModelProto) -> list[str]:
    """The op types of the graph (and of any function it calls), counted, in first-seen order."""
    counts: Counter[str] = Counter(n.op_type for n in proto.graph.node)
    for fn in proto.functions:
        counts.update(n.op_type for n in fn.node)
    return [f"{op}{'' if c == 1 else f' x{c}'}" for op, c in counts.items()]


def _check_self_contained(proto: onnx.ModelProto) -> None:
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError(f"initializer {init.name} uses external data")


def _ort_check(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """onnxruntime's max relative deviation from torch's output (the export is only kept when it is small)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float(np.abs(got - y).max() / max(np.abs(y).max(), 1e-30))


def _family_of(stem: str) -> Family | None:
    return max(
        (f for f in FAMILIES if stem.startswith(f.name + "_")), key=lambda f: len(f.name), default=None
    )


def write_readme(out: Path, failures: dict[str, str]) -> None:
    """The README of the folder, from the files in it (so that a run for some families keeps the others)."""
    lines = [
        "# Miniature torchvision-family exports (test data of tests/test_zoo_minis.py)",
        "",
        f"Made by `python tools/export_minis.py` with torch {torch.__version__} and onnx {onnx.__version__}",
        "(see the script for each model). Each `<family>_<exporter>_op<N>.onnx` has a `<same stem>.npz` with",
        f"`x` (an input batch of {BATCH}, float32: standard normal, or uniform in [0, 1] for `normalize_net`) and",
        "`y` (torch's output for it, eval mode). Weights: `torch.manual_seed(1000 + i)`, i the family's position",
        "in the script's list; BatchNorm running mean / var and the affine parameters of BatchNorm and LayerNorm",
        "drawn uniformly from [-0.5, 0.5] / [0.5, 2] / [0.5, 1.5] (weight) / [-0.5, 0.5] (bias); ConvNeXt's layer",
        "scale from [0.5, 1.5]. `dynamo`: `torch.onnx.export(..., dynamo=True)` at its default opset; `legacy`:",
        "`dynamo=False` with `dynamic_axes`. Weights are inside each file (no external data). The batch axis is",
        "dynamic (`N`) unless the table says static.",
        "",
        "| file | family | batch | KB | ops in the graph (count) |",
        "| --- | --- | --- | --- | --- |",
    ]
    present = set()
    for path in sorted(out.glob("*.onnx")):
        proto = onnx.load(str(path))
        present.add(path.stem)
        dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
        batch = "dynamic" if dim.HasField("dim_param") else "static"
        ops = ", ".join(op_types(proto))
        family = _family_of(path.stem)
        lines.append(
            f"| `{path.stem}` | {family.name if family else '?'} | {batch} | {path.stat().st_size / 1000:.0f} | {ops} |"
        )
    missing = []
    for family in FAMILIES:
        for exporter, opset in _jobs(family):
            if exporter == "legacy" and f"{family.name}_legacy_op{opset}" not in present:
                reason = failures.get(f"{family.name}_legacy_op{opset}", "the export failed")
                missing.append(f"- `{family.name}` legacy opset {opset}: {reason}")
            if exporter == "dynamo" and not any(s.startswith(f"{family.name}_dynamo_") for s in present):
                missing.append(
                    f"- `{family.name}` dynamo: {failures.get(f'{family.name}_dynamo', 'the export failed')}"
                )
    if missing:
        lines += ["", "## Not exported", "", *missing]
    lines += ["", "## Families", ""]
    lines += [f"- `{f.name}` ({'x'.join(map(str, f.input_shape))}): {f.note}" for f in FAMILIES]
    out.joinpath("README.md").write_text("\n".join(lines) + "\n")


def _jobs(family: Family) -> list[tuple[str, int | None]]:
    jobs: list[tuple[str, int | None]] = [("dynamo", None)] + [("legacy", op) for op in LEGACY_OPSETS]
    if family.name in OPSET11:
        jobs.append(("legacy", 11))
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="", help="comma-separated family names (default: all)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    wanted = [f for f in args.families.split(",") if f]
    unknown = set(wanted) - {f.name for f in FAMILIES}
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; known: {[f.name for f in FAMILIES]}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    failures: dict[str, str] = {}
    for index, family in enumerate(FAMILIES):
        if wanted and family.name not in wanted:
            continue
        print(f"{family.name}:")
        for stale in out.iterdir():  # this family's files of an earlier run (the default opset may change)
            if stale.suffix in (".onnx", ".npz") and _family_of(stale.stem) is family:
                stale.unlink()
        x, y, exports = export_family(family, index, failures)
        for exp in exports:
            _check_self_contained(exp.proto)
            path = out / f"{exp.stem}.onnx"
            onnx.save_model(exp.proto, str(path))
            np.savez(out / f"{exp.stem}.npz", x=x, y=y)
            size = path.stat().st_size
            if size >= MAX_FILE_BYTES:
                raise RuntimeError(f"{path.name} is {size} bytes (limit {MAX_FILE_BYTES})")
            err = _ort_check(path, x, y)
            if err > 1e-4:
                raise RuntimeError(f"{path.name}: onnxruntime differs from torch by {err:.2e} (relative)")
            rows.append((family, exp, size, err))
            print(f"  {path.name}: {size / 1000:.0f} KB, ort vs torch {err:.1e}, {exp.notes or 'ok'}")
    leftovers = [p.name for p in out.iterdir() if p.suffix not in (".onnx", ".npz", ".md")]
    if leftovers:
        raise RuntimeError(f"unexpected files next to the exports (external data?): {leftovers}")
    write_readme(out, failures)
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"{len(rows)} exports, {total / 1e6:.2f} MB in {out}")
    if total >= MAX_DIR_BYTES:
        raise RuntimeError(f"{out} holds {total} bytes (limit {MAX_DIR_BYTES})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
