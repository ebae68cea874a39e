#!/usr/bin/python3
"""Reference values from PyTorch for layer normalisation, the last-axis
linear layer and GELU (exact and tanh).

Writes tests/fixtures/torch_text_layers.txt, which
tests/test_internal_linear_gelu.c and tests/test_internal_layernorm.c read
(the C tests never need PyTorch). Run it again, with Debian's python3-torch,
only to change the cases:

    /usr/bin/python3 tests/make_torch_text_layer_fixtures.py

Every case draws float32 inputs, parameters and an upstream gradient g
from a fixed seed, then runs torch.nn.LayerNorm, torch.nn.Linear or
torch.nn.GELU in float64 on exactly those values, so the file holds the
exact answer for the float32 data; nnlib (float32) is checked against it.
The loss is L = sum(y * g), so dL/dy = g; the file records x, the
parameters, y, g, the loss, dx and every parameter gradient (PyTorch's
names with a "d" in front). Each case's key torch_f32 gives how far
PyTorch's own float32 run is from the float64 answer (max |f32 - f64| /
max |f64| over y, dx and the parameter gradients), as a yardstick.

File format (text; floats with 9 significant digits, which read back as
the float32 nearest the float64 value):

    torch <version>
    case <name> <key>=<value> ...
    tensor <name> <rank> <dims...>
    <values, 8 per line>
    ...
    end
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "torch_text_layers.txt")


def put_tensor(lines, name, t):
    t = t.detach().contiguous()
    dims = list(t.shape) if t.dim() > 0 else [1]
    lines.append("tensor %s %d %s" % (name, len(dims),
                                      " ".join(str(d) for d in dims)))
    values = ["%.9g" % v for v in t.flatten().tolist()]
    for i in range(0, len(values), 8):
        lines.append(" ".join(values[i:i + 8]))


def f32(*shape, scale=1.0, shift=0.0):
    """float32 random values, as float64 tensors holding them exactly"""
    return (torch.randn(*shape) * scale + shift).to(torch.float32).double()


def run(module, x, g):
    """y, L = sum(y g), dx and the parameter gradients of module at x."""
    x = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    y = module(x)
    loss = (y * g).sum()
    loss.backward()
    grads = [(n, p.grad.detach().clone()) for n, p in module.named_parameters()]
    return y.detach(), loss.detach(), x.grad.detach(), grads


def rel(a, b):
    return float((a.double() - b).abs().max() / max(float(b.abs().max()),
                                                    1e-30))


def put_case(lines, name, config, module, x, g):
    """Runs module in float64 (the answer) and float32 (the yardstick)."""
    module = module.double()
    y, loss, dx, grads = run(module, x, g)
    params = [(n, p.detach().clone()) for n, p in module.named_parameters()]
    m32 = module.float()
    y32, _, dx32, grads32 = run(m32, x.float(), g.float())
    module.double()
    drift = max([rel(y32, y), rel(dx32, dx)] +
                [rel(a[1], b[1]) for a, b in zip(grads32, grads)])
    config = dict(config, torch_f32="%.2e" % drift)
    lines.append("case %s %s" % (name, " ".join(
        "%s=%s" % (k, v) for k, v in config.items())))
    put_tensor(lines, "x", x)
    for pname, p in params:
        put_tensor(lines, pname, p)
    put_tensor(lines, "y", y)
    put_tensor(lines, "g", g)
    put_tensor(lines, "loss", loss)
    put_tensor(lines, "dx", dx)
    for pname, grad in grads:
        put_tensor(lines, "d" + pname, grad)
    lines.append("end")


def set_params(module, scale):
    """float32 random parameters (not PyTorch's 1 and 0 for layernorm)"""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32(*p.shape, scale=scale, shift=0.0))


def layernorm_case(lines, name, shape, eps, affine, shift=0.0):
    d = shape[-1]
    module = torch.nn.LayerNorm(d, eps=eps, elementwise_affine=bool(affine))
    if affine:
        set_params(module, 1.0)
    x = f32(*shape, scale=2.0, shift=shift)  # a mean away from 0
    g = f32(*shape)
    config = dict(kind="layernorm", rank=len(shape) - 1, eps=repr(eps),
                  affine=affine)
    put_case(lines, name, config, module, x, g)


def linear_case(lines, name, shape, out_features, bias):
    module = torch.nn.Linear(shape[-1], out_features, bias=bool(bias))
    set_params(module, 0.5)
    x = f32(*shape)
    g = f32(*(list(shape[:-1]) + [out_features]))
    config = dict(kind="linear", rank=len(shape) - 1, out=out_features,
                  bias=bias)
    put_case(lines, name, config, module, x, g)


def gelu_case(lines, name, shape, approximate):
    module = torch.nn.GELU(approximate=approximate)
    x = f32(*shape, scale=3.0)  # reaches both tails
    g = f32(*shape)
    config = dict(kind="gelu_tanh" if approximate == "tanh" else "gelu",
                  rank=len(shape) - 1)
    put_case(lines, name, config, module, x, g)


def main():
    torch.manual_seed(20261202)
    torch.set_num_threads(1)
    lines = ["torch %s" % torch.__version__]
    layernorm_case(lines, "layernorm_ntd", (3, 4, 8), 1e-5, 1, shift=0.5)
    layernorm_case(lines, "layernorm_nd_noaffine_eps1e-3", (5, 6), 1e-3, 0)
    layernorm_case(lines, "layernorm_nthd_far_mean", (2, 3, 2, 5), 1e-5, 1,
                   shift=40.0)
    linear_case(lines, "linear_ntd", (3, 4, 6), 5, 1)
    linear_case(lines, "linear_nd_nobias", (4, 7), 3, 0)
    linear_case(lines, "linear_nthd", (2, 3, 2, 4), 6, 1)
    gelu_case(lines, "gelu_ntd", (3, 4, 8), "none")
    gelu_case(lines, "gelu_tanh_ntd", (3, 4, 8), "tanh")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (torch %s)" % (OUT, torch.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
