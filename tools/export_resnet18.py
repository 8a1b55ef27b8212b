"""Export torchvision's ResNet-18 with torch's default (dynamo) exporter, with external data, and keep its graph.

Writes ``tests/external_data/resnet18_dynamo/resnet18.onnx``: the exported file as torch wrote it (nodes,
attributes, value infos, the initializers' external-data references to ``resnet18.onnx.data``), without the 45 MB
data file, which is not committed. The exporter folds BatchNorm into the convolutions, so the file names only
convolution and Gemm weights and biases. ``tests/test_example_cpp.py`` writes a data file for it (random values at
the offsets and lengths the graph names) and explains it with the C++ example and with dtd.explain. The export uses
``weights=None`` (torchvision's random initialisation, no download; BatchNorm statistics drawn as in
tools/export_minis.py), eval mode, a batch of 1 with a dynamic batch axis.

Needs torch, torchvision, onnx and onnxscript: ``python tools/export_resnet18.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx
import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "external_data" / "resnet18_dynamo"


def main() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    # BatchNorm statistics and affine parameters as a trained net has them (not 0/1), as tools/export_minis.py
    # draws them: the folded convolutions then carry biases, as they do in a real export
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    x = torch.zeros(1, 3, 224, 224)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=["input"],
            output_names=["logits"],
        )
        assert program is not None
        program.save(str(path), external_data=True)
        data = [p.name for p in Path(tmp).iterdir() if p.name != path.name]
        graph = onnx.load(str(path), load_external_data=False)
        locations = {
            entry.value
            for tensor in graph.graph.initializer
            for entry in tensor.external_data
            if entry.key == "location"
        }
        assert locations == {"resnet18.onnx.data"}, (locations, data)
        OUT.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, OUT / path.name)
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    ops = sorted({n.op_type for n in graph.graph.node})
    print(
        f"{OUT / path.name}: {(OUT / path.name).stat().st_size} bytes, opset {opset}, torch {torch.__version__}, "
        f"{len(graph.graph.node)} nodes ({', '.join(ops)}), {len(graph.graph.initializer)} external initializers"
    )


if __name__ == "__main__":
    main()
