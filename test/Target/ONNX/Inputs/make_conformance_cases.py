"""Writes a tiny directory in the layout of ONNX's backend node tests (model.onnx,
test_data_set_0/{input,output}_N.pb) for the conformance runner's own test:
a correct case, one whose expected output is wrong, one the importer refuses,
one with two data sets."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_case(root, name, node, inputs, outputs, data_sets, opset=17):
    d = os.path.join(root, name)
    graph = helper.make_graph([node], name, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    os.makedirs(d, exist_ok=True)
    onnx.save(model, os.path.join(d, "model.onnx"))
    for k, (ins, outs) in enumerate(data_sets):
        s = os.path.join(d, "test_data_set_%d" % k)
        os.makedirs(s, exist_ok=True)
        for kind, arrays in (("input", ins), ("output", outs)):
            for i, a in enumerate(arrays):
                with open(os.path.join(s, "%s_%d.pb" % (kind, i)), "wb") as f:
                    f.write(numpy_helper.from_array(a).SerializeToString())


def main(root):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal((4,)).astype(np.float32)
    add = helper.make_node("Add", ["x", "y"], ["z"])
    vi = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4]),
          helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]
    vo = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 4])]
    write_case(root, "test_add_good", add, vi, vo, [([x, y], [x + y])])
    # One element off by 1e-3 relative: beyond rtol 1e-5.
    bad = x + y
    bad[1, 2] *= 1.001
    write_case(root, "test_add_wrong", add, vi, vo, [([x, y], [bad])])
    # The second data set is wrong: every set is checked.
    x2 = rng.standard_normal((3, 4)).astype(np.float32)
    write_case(root, "test_add_two_sets", add, vi, vo,
               [([x, y], [x + y]), ([x2, y], [x2 - y])])
    i64 = [helper.make_tensor_value_info("x", TensorProto.INT64, [5])]
    n = np.arange(5, dtype=np.int64)
    write_case(root, "test_neg_int64", helper.make_node("Neg", ["x"], ["z"]),
               i64, [helper.make_tensor_value_info("z", TensorProto.INT64, [5])],
               [([n], [-n])])
    # A string input: refused at import.
    s = np.array(["a", "b"], dtype=object)
    write_case(root, "test_identity_string",
               helper.make_node("Identity", ["x"], ["z"]),
               [helper.make_tensor_value_info("x", TensorProto.STRING, [2])],
               [helper.make_tensor_value_info("z", TensorProto.STRING, [2])],
               [([s], [s])])


if __name__ == "__main__":
    main(sys.argv[1])
