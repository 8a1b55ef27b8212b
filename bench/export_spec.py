"""Write a model's dtd ModelSpec to a file that the C++ harness reads (``dtd_bench --model FILE``).

The C++ side has no ONNX reader (the importer is Python), so this dumps what ``dtd.load`` produced::

    python bench/export_spec.py model.onnx model.dtdspec
    build/bench/bench/dtd_bench --model model.dtdspec

Format (little-endian): ``DTDSPEC1``, then str input_name, shape input_shape, str output, u32 layer count, and
per layer: str name, str kind, u32 count + strs inputs, str output, u32 count + (str, shape) ints,
u32 count + (str, f64) floats, u32 count + (str, shape, f64 x numel) weights; str is a u32 byte length and
UTF-8 bytes, shape a u32 count and i64 values. bench/models.cpp reads it.
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"DTDSPEC1"


def _str(f: BinaryIO, s: str) -> None:
    b = s.encode()
    f.write(struct.pack("<I", len(b)) + b)


def _i64s(f: BinaryIO, values: Iterable[int]) -> None:
    v = [int(x) for x in values]
    f.write(struct.pack(f"<I{len(v)}q", len(v), *v))


def write_spec(spec: Any, path: str | Path) -> None:
    """Write a ``dtd._core.ModelSpec`` (``dtd.load(...).spec``) to ``path``.

    Parameters
    ----------
    spec : dtd._core.ModelSpec
        The plain-data model description the ONNX importer built.
    path : str or Path
        Output file; by convention ``*.dtdspec``.
    """
    with open(path, "wb") as f:
        f.write(MAGIC)
        _str(f, spec.input_name)
        _i64s(f, spec.input_shape)
        _str(f, spec.output)
        layers = list(spec.layers)
        f.write(struct.pack("<I", len(layers)))
        for layer in layers:
            _str(f, layer.name)
            _str(f, layer.kind.name)
            f.write(struct.pack("<I", len(layer.inputs)))
            for name in layer.inputs:
                _str(f, name)
            _str(f, layer.output)
            ints = dict(layer.ints)
            f.write(struct.pack("<I", len(ints)))
            for key, values in ints.items():
                _str(f, key)
                _i64s(f, values)
            floats = dict(layer.floats)
            f.write(struct.pack("<I", len(floats)))
            for key, value in floats.items():
                _str(f, key)
                f.write(struct.pack("<d", float(value)))
            weights = dict(layer.weights)
            f.write(struct.pack("<I", len(weights)))
            for key, array in weights.items():
                a = np.ascontiguousarray(array, dtype="<f8")
                _str(f, key)
                _i64s(f, a.shape)
                f.write(a.tobytes())


def main(argv: list[str] | None = None) -> None:
    """Command line: ``export_spec.py MODEL.onnx OUT.dtdspec``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx", help="an ONNX model that dtd.load accepts")
    parser.add_argument("out", help="the ModelSpec file to write (e.g. model.dtdspec)")
    args = parser.parse_args(argv)
    import dtd

    model = dtd.load(args.onnx)
    write_spec(model.spec, args.out)
    print(f"wrote {args.out}: {len(list(model.spec.layers))} layers, input {tuple(model.spec.input_shape)}")


if __name__ == "__main__":
    main()
