#!/usr/bin/python3
"""Reference values from PyTorch for four graph models.

Writes tests/fixtures/torch_graph.txt, which tests/test_graph_torch.c reads
(the C tests never need PyTorch). Run it again, with Debian's python3-torch,
only to change the cases:

    /usr/bin/python3 tests/make_torch_graph_fixtures.py

The cases are the graphs of issue 13's proof: a residual block with a
projection shortcut and batchnorm, a concat block, a multiply gate and a
two-input model. Inputs, targets and weights are drawn in float32 (so the C
test holds exactly the same numbers); the forward and backward passes run in
float64, so the reference carries no float32 rounding of its own.

Every case records, in PyTorch's layout (which is nnlib's: dense weight
[out, in], conv weight [out, in, kh, kw], batchnorm weight and bias [C]):

    x0, x1, ...     the model inputs, in nnlib_model_input order
    target          [N] class indices (softmax_ce) or the output's shape
    <layer>.<param> every parameter, named by the node that owns it
    y, loss         the training-mode output and the mean loss
    dy              dL/dy (for nnlib_model_backward_output)
    d.<layer>.<param>  every parameter gradient
    dx0, dx1, ...   dL/dx of each input

File format (the one of make_torch_fixtures.py; every float printed with 9
significant digits, which reads back as the nearest float32):

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
OUT = os.path.join(HERE, "fixtures", "torch_graph.txt")

# A ReLU input this close to 0 could fall on the other side of the kink in
# float32: the draw is refused (the seed must then change).
KINK_MARGIN = 1e-4


def put_tensor(lines, name, t):
    t = t.detach().to(torch.float32).contiguous()
    dims = list(t.shape) if t.dim() > 0 else [1]
    lines.append("tensor %s %d %s" % (name, len(dims),
                                      " ".join(str(d) for d in dims)))
    values = ["%.9g" % v for v in t.flatten().tolist()]
    for i in range(0, len(values), 8):
        lines.append(" ".join(values[i:i + 8]))


def drawn(*shape, scale=1.0, offset=0.0):
    """A float32 draw held in float64: both sides see the same numbers."""
    t = torch.randn(*shape, dtype=torch.float32) * scale + offset
    return t.to(torch.float64)


class Params:
    """The named parameters of one case, leaves of the float64 graph."""

    def __init__(self):
        self.items = []

    def new(self, name, *shape, scale=1.0, offset=0.0):
        p = drawn(*shape, scale=scale, offset=offset).requires_grad_(True)
        self.items.append((name, p))
        return p

    def dense(self, name, fin, fout, bias=True):
        w = self.new(name + ".weight", fout, fin, scale=fin ** -0.5)
        b = self.new(name + ".bias", fout, scale=0.3) if bias else None
        return lambda x: F.linear(x, w, b)

    def conv(self, name, cin, cout, k, stride=1, padding=0, bias=True):
        w = self.new(name + ".weight", cout, cin, k, k,
                     scale=(cin * k * k) ** -0.5)
        b = self.new(name + ".bias", cout, scale=0.3) if bias else None
        return lambda x: F.conv2d(x, w, b, stride=stride, padding=padding)

    def batchnorm(self, name, c):
        w = self.new(name + ".weight", c, scale=0.3, offset=1.0)
        b = self.new(name + ".bias", c, scale=0.3)
        return lambda x: F.batch_norm(x, None, None, w, b, training=True,
                                      momentum=0.1, eps=1e-5)


def off_kink(x):
    """Refuses a ReLU-family input on the kink (see KINK_MARGIN)."""
    closest = x.detach().abs().min().item()
    if closest < KINK_MARGIN:
        sys.exit("a ReLU input is %.3g from 0: change the seed" % closest)
    return x


def relu(x):
    return F.relu(off_kink(x))


def leaky_relu(x, slope):
    return F.leaky_relu(off_kink(x), slope)


def loss_of(kind, y, target):
    if kind == "softmax_ce":
        return F.cross_entropy(y, target.long())
    if kind == "mse":
        return F.mse_loss(y, target)
    return F.binary_cross_entropy_with_logits(y, target)


def put_case(lines, name, loss_kind, inputs, target, params, forward):
    """Runs forward and backward and records everything of the case."""
    for x in inputs:
        x.requires_grad_(True)
    y = forward(*inputs)
    y.retain_grad()
    loss = loss_of(loss_kind, y, target)
    loss.backward()
    config = dict(n=inputs[0].shape[0], inputs=len(inputs), loss=loss_kind,
                  params=len(params.items))
    lines.append("case %s %s" % (name, " ".join(
        "%s=%s" % (k, v) for k, v in config.items())))
    for i, x in enumerate(inputs):
        put_tensor(lines, "x%d" % i, x)
    put_tensor(lines, "target", target)
    for pname, p in params.items:
        put_tensor(lines, pname, p)
    put_tensor(lines, "y", y)
    put_tensor(lines, "loss", loss)
    put_tensor(lines, "dy", y.grad)
    for pname, p in params.items:
        put_tensor(lines, "d." + pname, p.grad)
    for i, x in enumerate(inputs):
        put_tensor(lines, "dx%d" % i, x.grad)
    lines.append("end")


def class_targets(n, k):
    return torch.randint(0, k, (n,)).to(torch.float64)


def residual_case(lines):
    """conv3x3/s2 -> bn -> relu -> conv3x3 -> bn, plus a 1x1/s2 projection
    with bn; add; relu; global average pool; dense 4->3; softmax CE."""
    p = Params()
    conv1 = p.conv("conv1", 2, 4, 3, stride=2, padding=1, bias=False)
    bn1 = p.batchnorm("bn1", 4)
    conv2 = p.conv("conv2", 4, 4, 3, padding=1, bias=False)
    bn2 = p.batchnorm("bn2", 4)
    proj = p.conv("proj", 2, 4, 1, stride=2, bias=False)
    bnp = p.batchnorm("bnp", 4)
    head = p.dense("head", 4, 3)

    def forward(x):
        main = bn2(conv2(relu(bn1(conv1(x)))))
        y = relu(main + bnp(proj(x)))
        return head(y.mean(dim=(2, 3)))

    put_case(lines, "residual", "softmax_ce", [drawn(3, 2, 6, 6)],
             class_targets(3, 3), p, forward)


def concat_case(lines):
    """dense 5->4 + tanh and dense 5->3 + leaky_relu(0.1), concatenated
    (4 + 3 features), dense 7->2, MSE."""
    p = Params()
    left = p.dense("left", 5, 4)
    right = p.dense("right", 5, 3)
    head = p.dense("head", 7, 2)

    def forward(x):
        a = torch.tanh(left(x))
        b = leaky_relu(right(x), 0.1)
        return head(torch.cat([a, b], dim=1))

    put_case(lines, "concat", "mse", [drawn(4, 5)], drawn(4, 2), p, forward)


def gate_case(lines):
    """a = dense 6->4, g = sigmoid(dense 6->4), dense 4->1 of a * g, BCE
    with logits."""
    p = Params()
    value = p.dense("value", 6, 4)
    gate = p.dense("gate", 6, 4)
    head = p.dense("head", 4, 1)

    def forward(x):
        return head(value(x) * torch.sigmoid(gate(x)))

    target = torch.rand(5, 1, dtype=torch.float32).to(torch.float64)
    put_case(lines, "gate", "bce_logits", [drawn(5, 6)], target, p, forward)


def two_input_case(lines):
    """image [1, 6, 6]: conv 3x3 pad 1 (1->2) + relu, flatten, dense 72->5;
    vector [3]: dense 3->4 + relu; concat (5 + 4), dense 9->3, softmax CE."""
    p = Params()
    conv = p.conv("conv", 1, 2, 3, padding=1)
    img_dense = p.dense("img_dense", 72, 5)
    vec_dense = p.dense("vec_dense", 3, 4)
    head = p.dense("head", 9, 3)

    def forward(img, vec):
        a = img_dense(relu(conv(img)).flatten(1))
        b = relu(vec_dense(vec))
        return head(torch.cat([a, b], dim=1))

    put_case(lines, "two_inputs", "softmax_ce", [drawn(3, 1, 6, 6),
                                                 drawn(3, 3)],
             class_targets(3, 3), p, forward)


def main():
    torch.manual_seed(20261313)
    torch.set_num_threads(1)
    lines = ["torch %s" % torch.__version__]
    residual_case(lines)
    concat_case(lines)
    gate_case(lines)
    two_input_case(lines)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (torch %s)" % (OUT, torch.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
