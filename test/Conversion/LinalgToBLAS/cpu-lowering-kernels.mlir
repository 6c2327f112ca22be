// RUN: quant-opt %s --pass-pipeline='builtin.module(quant-cpu-lowering{kernels=vector})' | FileCheck %s --check-prefix=VEC
// RUN: quant-opt %s --pass-pipeline='builtin.module(quant-cpu-lowering)' | FileCheck %s --check-prefix=VEC
// RUN: quant-opt %s --pass-pipeline='builtin.module(quant-cpu-lowering{kernels=blas})' | FileCheck %s --check-prefix=BLAS
// RUN: quant-opt %s --pass-pipeline='builtin.module(quant-cpu-lowering{kernels=loops})' | FileCheck %s --check-prefix=LOOPS
// RUN: quant-opt %s --convert-wq-to-cpu-kernels=vector=true | FileCheck %s --check-prefix=FLAG
// RUN: not quant-opt %s --pass-pipeline='builtin.module(quant-cpu-lowering{kernels=fast})' 2>&1 | FileCheck %s --check-prefix=BAD

// The kernel family is a typed option of the CPU pipeline: the vector family
// calls quant_vcontract_f32 and sets bit 0 of quant_qlinear_f32's flags
// (the 8th argument), blas the OpenBLAS entries, loops none; the pipeline
// option defaults to vector.
// VEC-DAG: llvm.func @quant_vcontract_f32(
// VEC-DAG: llvm.func @quant_qlinear_f32(
// VEC-NOT: @quant_contract_f32
// VEC: llvm.call @quant_qlinear_f32(
// VEC: llvm.call @quant_vcontract_f32(
// FLAG: call @quant_qlinear_f32(%{{[^,]*}}, %c64, %c256, %c4{{(_[0-9]+)?}}, %c128, %c2, %c0, %c1{{(_[0-9]+)?}},
// BLAS-DAG: llvm.func @quant_contract_f32(
// BLAS-DAG: llvm.func @quant_qlinear_f32(
// BLAS-NOT: @quant_vcontract_f32
// LOOPS-NOT: llvm.call @quant_
// BAD: for the --kernels option: Cannot find option named 'fast'
func.func @layer(%x: tensor<4x256xf32>, %c: tensor<32x64xi32>, %s: tensor<2x64xf32>, %w: tensor<64x64xf32>) -> tensor<4x64xf32> {
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>,
      scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = true, act_order = false>}
      : (tensor<4x256xf32>, tensor<32x64xi32>, tensor<2x64xf32>) -> tensor<4x64xf32>
  %z = wq.linear %y, %w : tensor<4x64xf32>, tensor<64x64xf32> -> tensor<4x64xf32>
  return %z : tensor<4x64xf32>
}
