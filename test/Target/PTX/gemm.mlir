// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_75 --quant-gpu-codegen=chip=sm_75 -o %t.sm_75.mlir
// RUN: %extract_ptx %t.sm_75.mlir %t.sm_75.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,TURING,SM75 < %t.sm_75.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_80 --quant-gpu-codegen=chip=sm_80 -o %t.sm_80.mlir
// RUN: %extract_ptx %t.sm_80.mlir %t.sm_80.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,AMPERE,SM80 < %t.sm_80.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_86 --quant-gpu-codegen=chip=sm_86 -o %t.sm_86.mlir
// RUN: %extract_ptx %t.sm_86.mlir %t.sm_86.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,AMPERE,SM86 < %t.sm_86.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_87 --quant-gpu-codegen=chip=sm_87 -o %t.sm_87.mlir
// RUN: %extract_ptx %t.sm_87.mlir %t.sm_87.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,AMPERE,SM87 < %t.sm_87.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_89 --quant-gpu-codegen=chip=sm_89 -o %t.sm_89.mlir
// RUN: %extract_ptx %t.sm_89.mlir %t.sm_89.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,AMPERE,SM89 < %t.sm_89.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_90 --quant-gpu-codegen=chip=sm_90 -o %t.sm_90.mlir
// RUN: %extract_ptx %t.sm_90.mlir %t.sm_90.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,AMPERE,SM90 < %t.sm_90.ptx
// RUN: %if ptxas %{ %ptxas -arch=sm_75 %t.sm_75.ptx -o %t.sm_75.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_80 %t.sm_80.ptx -o %t.sm_80.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_86 %t.sm_86.ptx -o %t.sm_86.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_87 %t.sm_87.ptx -o %t.sm_87.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_89 %t.sm_89.ptx -o %t.sm_89.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_90 %t.sm_90.ptx -o %t.sm_90.cubin %}

// The tensor-core GEMM (M >= 16): K-tiles of codes dequantized (128-bit
// loads) into 16-byte aligned shared memory, ldmatrix fragments and
// mma.sync m16n8k16 f16 -> f32 from sm_80 (m16n8k8, which Turing has, on
// sm_75); ptxas accepts every arch.
// SM75: .target sm_75
// SM80: .target sm_80
// SM86: .target sm_86
// SM87: .target sm_87
// SM89: .target sm_89
// SM90: .target sm_90
// CHECK-LABEL: .entry wq_gemm_m64_k4096_n4096_b4_g128_sm
// CHECK: .shared .align 16 .b8 wq_gemm_{{.*}}_smem0[5120];
// CHECK: .shared .align 16 .b8 wq_gemm_{{.*}}_smem1[10240];
// CHECK: ld.global.v4.b32
// CHECK: st.shared.v4.b32
// CHECK: bar.sync 0
// CHECK: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK: ldmatrix.sync.aligned.m8n8.x2.shared.b16
// AMPERE: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// AMPERE-NOT: m16n8k8
// TURING: mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32
// TURING-NOT: m16n8k16
// CHECK: st.global.b32

module attributes {wq.archive = "m.safetensors"} {
func.func @gemm(%x: tensor<64x4096xf16>) -> tensor<64x4096xf16> {
  %c = wq.weight "c" : tensor<128x16384xi32>
  %s = wq.weight "s" : tensor<32x4096xf16>
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128>}
      : (tensor<64x4096xf16>, tensor<128x16384xi32>, tensor<32x4096xf16>) -> tensor<64x4096xf16>
  return %y : tensor<64x4096xf16>
}
}
