#!/usr/bin/python3
"""A PyTorch model of two outputs, exported with torch.onnx.export (opset
17), for the tests of nnlib_onnx_options.output in the CLI (tests/
cli_test.sh: --onnx-output), Python (Model.from_onnx(output=...)) and Rust
(OnnxOptions::output):

  two_outputs  Linear 4-3 = h, then y = ReLU(h) and s = Sigmoid(h), the
               graph outputs y and s (in that order)

Writes tests/fixtures/onnx/two_outputs.onnx and two_outputs.txt, lines
"key count v1 v2 ..." with the input batch x [3, 4] and PyTorch's outputs
y and s [3, 3]. Run with /usr/bin/python3 (python3-torch 1.13) from the
repository root.
"""
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "onnx")


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        h = self.linear(x)
        return torch.relu(h), torch.sigmoid(h)


def line(name, values):
    flat = [float(v) for v in values.reshape(-1).tolist()]
    return "%s %d %s\n" % (name, len(flat), " ".join(repr(v) for v in flat))


def main():
    torch.manual_seed(99)
    model = TwoOutputs().eval()
    x = torch.randn(3, 4)
    torch.onnx.export(model, x, os.path.join(OUT, "two_outputs.onnx"),
                      opset_version=17, input_names=["x"],
                      output_names=["y", "s"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"},
                                    "s": {0: "N"}})
    with torch.no_grad():
        y, s = model(x)
    with open(os.path.join(OUT, "two_outputs.txt"), "w") as f:
        f.write(line("x", x) + line("y", y) + line("s", s))


if __name__ == "__main__":
    main()
