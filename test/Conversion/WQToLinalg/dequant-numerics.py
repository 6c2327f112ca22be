# Runs the CPU lowering of wq.dequantize / wq.quantized_linear on random packed
# weights (every bit width, both layouts, groups, per-channel, zero-point,
# act-order) and compares with the float64 numpy reference in python/.
# RUN: %python %s quant-opt mlir-runner %src_root | FileCheck %s
# CHECK: all {{[0-9]+}} cases match
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Inputs"))
import packed_cases  # noqa: E402

quant_opt, runner, src = sys.argv[1:4]
# (packing, bits, group, symmetric, act_order, K, N, M): M=0 means dequantize only.
cases = []
for bits in (2, 3, 4, 8):
    cases.append(("gptq", bits, 32, True, False, 64, 32, 0))
    cases.append(("gptq", bits, -1, False, False, 96, 32, 0))
    cases.append(("gptq", bits, 32, False, True, 64, 32, 0))
cases.append(("awq", 4, 32, False, False, 64, 16, 0))
cases.append(("awq", 4, -1, True, False, 32, 24, 0))
cases.append(("gptq", 4, 32, False, True, 64, 32, 3))
cases.append(("gptq", 3, -1, True, False, 96, 32, 2))
cases.append(("awq", 4, 32, False, False, 64, 16, 5))

module, expected = packed_cases.build_module(cases, src)
packed_cases.compare(packed_cases.run(module, quant_opt, runner), cases, expected)
