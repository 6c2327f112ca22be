# The gpu_v4 layout end to end on the CPU: codes packed as gptq in numpy
# (python/quant_mlir/packing.py), repacked by `wq-pack` (constants are
# repacked in the IR), lowered by convert-wq-to-linalg's gpu_v4 unpacking and
# run with mlir-runner; compared with the float64 reference of the gptq codes.
# RUN: %python %s quant-opt mlir-runner %src_root | FileCheck %s
# CHECK: all {{[0-9]+}} cases match
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Inputs"))
import packed_cases  # noqa: E402

quant_opt, runner, src = sys.argv[1:4]
# (packing, bits, group, symmetric, act_order, K, N, M): M=0 means dequantize only.
# gpu_v4 needs K * bits to be a multiple of 128.
cases = []
for bits in (2, 3, 4, 8):
    k = 128 if bits == 3 else 64
    cases.append(("gptq", bits, 32, True, False, k, 32, 0))
    cases.append(("gptq", bits, -1, False, False, 2 * k, 32, 0))
    cases.append(("gptq", bits, 32, False, True, k, 32, 0))
cases.append(("gptq", 4, 32, False, True, 64, 32, 3))
cases.append(("gptq", 3, -1, True, False, 128, 32, 2))
cases.append(("gptq", 4, 64, False, False, 128, 16, 1))
cases.append(("gptq", 8, 32, True, False, 64, 8, 4))


def check_packed(ir):
    assert ir.count("#wq.packing<gpu_v4>") == len(cases), "wq-pack left gptq layers"
    assert "#wq.packing<gptq>" not in ir


module, expected = packed_cases.build_module(cases, src)
out = packed_cases.run(module, quant_opt, runner, pre_passes=["--wq-pack=layout=gpu_v4"],
                       inspect=check_packed)
packed_cases.compare(out, cases, expected)
