"""Make ``torch_mlp.onnx``: a small PyTorch MLP with batch normalization, exported with PyTorch's default exporter.

The test suite does not depend on PyTorch; this script is how the committed file was made (with
torch 2.13.0 and onnxscript, which the exporter needs):

    pip install torch onnxscript
    python tests/data/onnx/make_torch_mlp.py

The exporter folded the first batch normalization into its layer; the second, after a Tanh, stays in
the graph, and the import folds it into the layer after it.

It trains nothing: the weights are seeded draws and the batch-norm statistics seeded, so the file is
reproducible from the seed (byte for byte only with the same PyTorch version).
"""

from __future__ import annotations

from pathlib import Path

import torch

OUT = Path(__file__).with_name("torch_mlp.onnx")


def main() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 24), torch.nn.BatchNorm1d(24), torch.nn.ReLU(),
        torch.nn.Linear(24, 12), torch.nn.Tanh(),
        torch.nn.BatchNorm1d(12), torch.nn.Linear(12, 12), torch.nn.Sigmoid(),
        torch.nn.Linear(12, 3),
    )
    with torch.no_grad():                     # batch-norm statistics as if trained, not the identity
        for layer in model:
            if isinstance(layer, torch.nn.BatchNorm1d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.2, 0.2)
    model.eval()
    example = torch.randn(4, 6)
    # A dynamic batch dimension, as frameworks export by default; the features are fixed.
    torch.onnx.export(model, (example,), str(OUT), input_names=["process"], output_names=["flow"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
