#!/usr/bin/python3
"""A PyTorch model of a fixed input shape whose computation mixes the
input's axis 0, exported with torch.onnx.export (opset 17), for the tests
of nnlib_onnx_options.whole_sample in the CLI (tests/cli_test.sh:
--onnx-whole-sample), Python (Model.from_onnx(whole_sample=True)) and Rust
(OnnxOptions::whole_sample):

  whole_sample  x [3, 4] (no dynamic axis) -> Linear 4-2 -> + P, a learned
                [3, 2] (a different bias per row of x) -> Sigmoid ->
                reshape -> y [6]

Batch-first import refuses it (P varies along axis 0); a whole-sample import
takes x [3, 4] as one sample. Writes tests/fixtures/onnx/whole_sample.onnx
and whole_sample.txt, lines "key count v1 v2 ..." with x and PyTorch's y.
Run with /usr/bin/python3 (python3-torch 1.13) from the repository root.
"""
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "onnx")


class RowBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.rows = nn.Parameter(torch.randn(3, 2))

    def forward(self, x):
        return torch.sigmoid(self.linear(x) + self.rows).reshape(6)


def line(name, values):
    flat = [float(v) for v in values.reshape(-1).tolist()]
    return "%s %d %s\n" % (name, len(flat), " ".join(repr(v) for v in flat))


def main():
    torch.manual_seed(7)
    model = RowBias().eval()
    x = torch.randn(3, 4)
    torch.onnx.export(model, x, os.path.join(OUT, "whole_sample.onnx"),
                      opset_version=17, input_names=["x"],
                      output_names=["y"])
    with torch.no_grad():
        y = model(x)
    with open(os.path.join(OUT, "whole_sample.txt"), "w") as f:
        f.write(line("x", x) + line("y", y))


if __name__ == "__main__":
    main()
