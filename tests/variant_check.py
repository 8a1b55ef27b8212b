"""Child process of tests/test_variants.py: explain small nets with whichever core variant ``DTD_CPU`` forces.

Prints one JSON line: ``dtd.build_info()``'s variant and options, and per net and dtype the relative L2 error of
``dtd.explain`` (and of the forward pass) against the float64 reference of tests/reference.py, and the relevance
of the shipped MNIST example (for comparisons between variants). It runs in a fresh
process because one process can hold only one variant, and under ``qemu-x86_64 -cpu Nehalem`` to show that the v2
variant holds no AVX instruction.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dtd
import reference as ref
import relnets as rn

NETS = ("mlp", "cnn_plain", "cnn_maxpool_overlap", "resnet")


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """Relative L2 error."""
    actual = np.asarray(actual, dtype=np.float64)
    return float(np.linalg.norm(actual - expected)) / max(float(np.linalg.norm(expected)), 1e-300)


def main() -> int:
    """Run the checks and print the JSON record."""
    info = dtd.build_info()
    nets = rn.all_nets(0)
    errors: dict[str, float] = {}
    for key in NETS:
        net = nets[key]
        model = dtd.load(rn.to_onnx(net))
        x = np.random.default_rng(1).uniform(0.0, 1.0, size=(3, *net.input_shape))
        rules = ref.assign(net, ref.ZPlus(), ref.ZBox(0.0, 1.0), None)
        want = ref.explain(net, x, rules, maxpool="winner_take_all", add="zplus")
        want_y = ref.forward(net, x)
        for dtype in (np.float32, np.float64):
            xd = x.astype(dtype)
            got = dtd.explain(model, xd, rules="bounded", low=0.0, high=1.0)
            errors[f"{key}/{np.dtype(dtype).name}/relevance"] = rel_err(got, want)
            errors[f"{key}/{np.dtype(dtype).name}/forward"] = rel_err(model.forward(xd), want_y)
    example = {}
    ex = dtd.load_example()  # a real MNIST CNN: layers large enough for the GEMM kernels' packed paths
    for dtype in (np.float32, np.float64):
        r = dtd.explain(ex.model, ex.images[:4].astype(dtype), low=ex.low, high=ex.high)
        example[np.dtype(dtype).name] = r.astype(np.float64).ravel().tolist()
    keys = (
        "variant",
        "reason",
        "arch_options",
        "instruction_sets",
        "own_sgemm",
        "sgemm_kernel",
        "eigen_simd",
        "module",
    )
    print(json.dumps({"info": {k: info[k] for k in keys}, "errors": errors, "example": example}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
