#!/usr/bin/python3
"""Reference values from PyTorch for conv2d, the pools and batchnorm.

Writes tests/fixtures/torch_layers.txt, which tests/test_internal_torch.c
reads (the C tests never need PyTorch). Run it again, with Debian's
python3-torch, only to change the cases:

    /usr/bin/python3 tests/make_torch_fixtures.py

Every case runs one layer in float32 on random inputs and weights, with the
upstream gradient g = dL/dy random too (L = sum(y * g)), and records x, the
parameters, y, g, dx and the parameter gradients. Batchnorm cases also
record the running statistics after the training step, and eval-mode cases
run on given running statistics.

File format (text, so diffs stay readable; every float printed with 9
significant digits, which reads back as the same float32):

    torch <version>
    case <name> <key>=<int or float> ...
    tensor <name> <rank> <dims...>
    <values, 8 per line>
    ...
    end
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "torch_layers.txt")


def put_tensor(lines, name, t):
    t = t.detach().to(torch.float32).contiguous()
    dims = list(t.shape) if t.dim() > 0 else [1]
    lines.append("tensor %s %d %s" % (name, len(dims),
                                      " ".join(str(d) for d in dims)))
    values = ["%.9g" % v for v in t.flatten().tolist()]
    for i in range(0, len(values), 8):
        lines.append(" ".join(values[i:i + 8]))


def put_case(lines, name, config, tensors):
    lines.append("case %s %s" % (name, " ".join(
        "%s=%s" % (k, v) for k, v in config.items())))
    for tname, t in tensors:
        put_tensor(lines, tname, t)
    lines.append("end")


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_(True)


def conv_case(lines, name, n, cin, h, w, cout, kh, kw, stride=(1, 1),
              padding=(0, 0), dilation=(1, 1), bias=True):
    x = leaf(n, cin, h, w)
    weight = leaf(cout, cin, kh, kw, scale=0.5)
    b = leaf(cout) if bias else None
    y = F.conv2d(x, weight, b, stride=stride, padding=padding,
                 dilation=dilation)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    config = dict(n=n, cin=cin, h=h, w=w, cout=cout, kh=kh, kw=kw,
                  sh=stride[0], sw=stride[1], ph=padding[0], pw=padding[1],
                  dh=dilation[0], dw=dilation[1], bias=int(bias))
    tensors = [("x", x), ("weight", weight)]
    if bias:
        tensors.append(("bias", b))
    tensors += [("y", y), ("g", g), ("dx", x.grad), ("dweight", weight.grad)]
    if bias:
        tensors.append(("dbias", b.grad))
    put_case(lines, name, config, tensors)


def pool_case(lines, name, kind, n, c, h, w, kh, kw, stride, padding,
              dilation=(1, 1), ceil_mode=False, count_include_pad=True):
    """PyTorch's own pooling: symmetric padding at most half the kernel,
    dilation for max (and min) only."""
    x = leaf(n, c, h, w)
    args = dict(kernel_size=(kh, kw), stride=stride, padding=padding,
                ceil_mode=ceil_mode)
    if kind == "max":
        y = F.max_pool2d(x, dilation=dilation, **args)
    elif kind == "min":  # min pooling is max pooling of -x, negated
        y = -F.max_pool2d(-x, dilation=dilation, **args)
    else:
        y = F.avg_pool2d(x, count_include_pad=count_include_pad, **args)
    pads = (padding[0], padding[1], padding[0], padding[1])
    put_pool(lines, name, kind, x, y, (kh, kw), stride, pads, dilation,
             ceil_mode, count_include_pad)


def put_pool(lines, name, kind, x, y, kernel, stride, pads, dilation,
             ceil_mode, count_include_pad):
    g = torch.randn_like(y)
    (y * g).sum().backward()
    n, c, h, w = x.shape
    config = dict(kind=kind, n=n, c=c, h=h, w=w, kh=kernel[0], kw=kernel[1],
                  sh=stride[0], sw=stride[1], ph=pads[0], pw=pads[1],
                  pb=pads[2], pr=pads[3], dh=dilation[0], dw=dilation[1],
                  ceil=int(ceil_mode), cip=int(count_include_pad))
    put_case(lines, name, config,
             [("x", x), ("y", y), ("g", g), ("dx", x.grad)])


def padded_pool_case(lines, name, kind, n, c, h, w, kh, kw, stride, pads,
                     count_include_pad=True):
    """Padding PyTorch's pools do not take (one side larger, or more than
    half the kernel), as F.pad in front: -inf for max (padding never
    wins), zeros for the average of the whole window, and for averages
    over the input elements only, the window sums of the zero-padded input
    divided by the window sums of a padded mask of ones. pads: top, left,
    bottom, right."""
    x = leaf(n, c, h, w)
    spread = (pads[1], pads[3], pads[0], pads[2])  # F.pad: left, right, ...
    args = dict(kernel_size=(kh, kw), stride=stride)
    if kind == "max":
        y = F.max_pool2d(F.pad(x, spread, value=float("-inf")), **args)
    elif count_include_pad:
        y = F.avg_pool2d(F.pad(x, spread), **args)
    else:
        ones = F.pad(torch.ones(1, 1, h, w), spread)
        y = (F.avg_pool2d(F.pad(x, spread), **args) /
             F.avg_pool2d(ones, **args))
    put_pool(lines, name, kind, x, y, (kh, kw), stride, pads, (1, 1), False,
             count_include_pad)


def global_avgpool_case(lines, name, n, c, h, w):
    x = leaf(n, c, h, w)
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    put_case(lines, name, dict(n=n, c=c, h=h, w=w),
             [("x", x), ("y", y), ("g", g), ("dx", x.grad)])


def batchnorm_case(lines, name, shape, training, momentum=0.1, eps=1e-5):
    c = shape[1]
    x = leaf(*shape, scale=2.0)
    with torch.no_grad():
        x += 0.5  # a mean away from 0
    weight = leaf(c)
    bias = leaf(c)
    running_mean = torch.randn(c) * 0.3
    running_var = torch.rand(c) + 0.5
    rm, rv = running_mean.clone(), running_var.clone()
    y = F.batch_norm(x, rm, rv, weight, bias, training=training,
                     momentum=momentum, eps=eps)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    config = dict(rank=len(shape), n=shape[0], c=c,
                  s=int(torch.tensor(shape[2:]).prod()) if len(shape) > 2
                  else 1, training=int(training), momentum=momentum, eps=eps)
    put_case(lines, name, config, [
        ("x", x), ("weight", weight), ("bias", bias),
        ("running_mean", running_mean), ("running_var", running_var),
        ("y", y), ("g", g), ("dx", x.grad), ("dweight", weight.grad),
        ("dbias", bias.grad), ("running_mean_after", rm),
        ("running_var_after", rv)])


def main():
    torch.manual_seed(20261122)
    torch.set_num_threads(1)
    lines = ["torch %s" % torch.__version__]
    conv_case(lines, "conv_3x3_pad1", 3, 2, 7, 9, 4, 3, 3, padding=(1, 1))
    conv_case(lines, "conv_5x3_stride2x1_pad2x0_dil1x2_nobias", 2, 3, 11, 8,
              5, 5, 3, stride=(2, 1), padding=(2, 0), dilation=(1, 2),
              bias=False)
    conv_case(lines, "conv_1x1_batch1", 1, 3, 5, 6, 2, 1, 1)
    conv_case(lines, "conv_3x3_stride2_dil2", 4, 1, 10, 9, 3, 3, 3,
              stride=(2, 2), padding=(1, 1), dilation=(2, 2))
    conv_case(lines, "conv_5x5_pad2_batch7", 7, 1, 6, 5, 2, 5, 5,
              padding=(2, 2))
    pool_case(lines, "maxpool_2", "max", 3, 2, 8, 7, 2, 2, (2, 2), (0, 0))
    pool_case(lines, "maxpool_3_s2_p1", "max", 2, 3, 9, 10, 3, 3, (2, 2),
              (1, 1))
    pool_case(lines, "minpool_2x3_s1x2", "min", 2, 2, 6, 9, 2, 3, (1, 2),
              (0, 1))
    pool_case(lines, "avgpool_2", "avg", 3, 2, 8, 6, 2, 2, (2, 2), (0, 0))
    pool_case(lines, "avgpool_3_s2_p1", "avg", 2, 3, 9, 10, 3, 3, (2, 2),
              (1, 1))
    global_avgpool_case(lines, "global_avgpool", 3, 4, 5, 6)
    batchnorm_case(lines, "batchnorm2d_train", (4, 3, 5, 6), True)
    batchnorm_case(lines, "batchnorm2d_eval", (4, 3, 5, 6), False)
    batchnorm_case(lines, "batchnorm1d_train", (16, 5), True)
    batchnorm_case(lines, "batchnorm1d_eval_m0.3_eps1e-3", (6, 5), False,
                   momentum=0.3, eps=1e-3)
    batchnorm_case(lines, "batchnorm1d_train_m0.3_eps1e-3", (6, 5), True,
                   momentum=0.3, eps=1e-3)
    # pooling options (nnlib 1.5), after the cases above so that their
    # random values stay as they were
    pool_case(lines, "maxpool_3_s2_p1_ceil", "max", 2, 3, 10, 9, 3, 3,
              (2, 2), (1, 1), ceil_mode=True)
    pool_case(lines, "maxpool_2_s3_p1_ceil_drop", "max", 2, 2, 7, 8, 2, 2,
              (3, 3), (1, 1), ceil_mode=True)
    pool_case(lines, "maxpool_3x2_s1x2_p1_d2x3", "max", 2, 2, 9, 11, 3, 2,
              (1, 2), (1, 1), dilation=(2, 3))
    pool_case(lines, "minpool_3_s2_p1_d2_ceil", "min", 2, 2, 9, 8, 3, 3,
              (2, 2), (1, 1), dilation=(2, 2), ceil_mode=True)
    pool_case(lines, "avgpool_3_s2_p1_ceil", "avg", 2, 3, 10, 9, 3, 3,
              (2, 2), (1, 1), ceil_mode=True)
    pool_case(lines, "avgpool_2_s3_p1_ceil_drop", "avg", 2, 2, 7, 8, 2, 2,
              (3, 3), (1, 1), ceil_mode=True)
    pool_case(lines, "avgpool_3_s2_p1_exclude", "avg", 2, 3, 9, 10, 3, 3,
              (2, 2), (1, 1), count_include_pad=False)
    pool_case(lines, "avgpool_3x2_s2x1_p1_ceil_exclude", "avg", 2, 2, 8, 7,
              3, 2, (2, 1), (1, 1), ceil_mode=True, count_include_pad=False)
    padded_pool_case(lines, "maxpool_3_s1x2_pad2", "max", 2, 2, 6, 7, 3, 3,
                     (1, 2), (2, 2, 2, 2))
    padded_pool_case(lines, "maxpool_3_s2_pad0x1x2x0", "max", 2, 3, 8, 7, 3, 3,
                     (2, 2), (0, 1, 2, 0))
    padded_pool_case(lines, "avgpool_3_s1_pad2", "avg", 2, 2, 6, 6, 3, 3,
                     (1, 1), (2, 2, 2, 2))
    padded_pool_case(lines, "avgpool_3x2_s2x1_pad2x0x0x1_exclude", "avg", 2,
                     2, 8, 7, 3, 2, (2, 1), (2, 0, 0, 1),
                     count_include_pad=False)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (torch %s)" % (OUT, torch.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
