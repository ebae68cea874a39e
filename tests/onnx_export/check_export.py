#!/usr/bin/python3
"""ONNX's own checker on every model test_onnx_export wrote.

    check_export.py DIR

For each case listed in DIR/cases.txt: onnx.checker.check_model(full_check=
True), which also runs shape inference in strict mode (a declared output
shape that the operators do not produce fails), then what nnlib promises
beyond validity: IR version 8, opset 17 of the default domain only,
producer "nnlib", graph inputs and output with the symbolic batch axis "N"
and the per-sample dims of the case's manifest, initializers as float32
(or int64 constants) in raw_data only, unique node names. Exit status 0
when every case passes, 1 otherwise, 77 (ctest's skip) when the onnx
module is missing (python3-onnx, installed by scripts/setup.sh)."""
import os
import sys

try:
    import onnx
    from onnx import TensorProto
except ImportError:
    print("SKIP: the onnx Python module is missing (apt-get install "
          "python3-onnx, or scripts/setup.sh)")
    sys.exit(77)


def manifest(path):
    inputs, output = [], None
    with open(path) as f:
        for line in f:
            words = line.split()
            if words[0] == "input":
                inputs.append((words[1], [int(w) for w in words[2:-1]]))
            elif words[0] == "output":
                output = [int(w) for w in words[1:-1]]
    return inputs, output


def dims_of(value):
    dims = []
    for d in value.type.tensor_type.shape.dim:
        dims.append(d.dim_param if d.HasField("dim_param") else d.dim_value)
    return dims


def check_case(folder, name):
    model = onnx.load(os.path.join(folder, name + ".onnx"))
    onnx.checker.check_model(model, full_check=True)
    problems = []
    if model.ir_version != 8:
        problems.append("ir_version %d" % model.ir_version)
    opsets = [(o.domain, o.version) for o in model.opset_import]
    if opsets != [("", 17)]:
        problems.append("opset_import %r" % opsets)
    if model.producer_name != "nnlib" or not model.producer_version:
        problems.append("producer %r %r" % (model.producer_name,
                                            model.producer_version))
    inputs, output = manifest(os.path.join(folder, name + ".txt"))
    graph = model.graph
    if len(graph.input) != len(inputs):
        problems.append("%d graph inputs, manifest %d" %
                        (len(graph.input), len(inputs)))
    for value, (dtype, dims) in zip(graph.input, inputs):
        want_type = TensorProto.INT32 if dtype == "i32" else TensorProto.FLOAT
        if value.type.tensor_type.elem_type != want_type:
            problems.append("input %s elem_type %d" %
                            (value.name, value.type.tensor_type.elem_type))
        if dims_of(value) != ["N"] + dims[1:]:
            problems.append("input %s dims %r" % (value.name, dims_of(value)))
    if len(graph.output) != 1 or dims_of(graph.output[0]) != ["N"] + output[1:]:
        problems.append("output %r" % [dims_of(o) for o in graph.output])
    for t in graph.initializer:
        if t.data_type not in (TensorProto.FLOAT, TensorProto.INT64):
            problems.append("initializer %s type %d" % (t.name, t.data_type))
        if not t.HasField("raw_data") or t.float_data or t.int64_data:
            problems.append("initializer %s not raw_data" % t.name)
    names = [n.name for n in graph.node]
    if len(set(names)) != len(names) or "" in names:
        problems.append("node names not unique and non-empty")
    return problems, len(graph.node), len(graph.initializer)


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "cases.txt")) as f:
        cases = [line.strip() for line in f if line.strip()]
    if not cases:
        print("FAIL: no cases in %s/cases.txt" % folder)
        return 1
    failed = 0
    for name in cases:
        try:
            problems, nodes, inits = check_case(folder, name)
        except Exception as e:  # the checker's ValidationError and others
            problems, nodes, inits = ["checker: %s" % e], 0, 0
        if problems:
            failed += 1
            print("FAIL %s: %s" % (name, "; ".join(problems)))
        else:
            print("ok   %s (%d nodes, %d initializers)" % (name, nodes, inits))
    print("check_export: %d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
