// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_75 --quant-gpu-codegen=chip=sm_75 -o %t.sm_75.mlir
// RUN: %extract_ptx %t.sm_75.mlir %t.sm_75.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,SM75 < %t.sm_75.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_80 --quant-gpu-codegen=chip=sm_80 -o %t.sm_80.mlir
// RUN: %extract_ptx %t.sm_80.mlir %t.sm_80.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,SM80 < %t.sm_80.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_86 --quant-gpu-codegen=chip=sm_86 -o %t.sm_86.mlir
// RUN: %extract_ptx %t.sm_86.mlir %t.sm_86.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,SM86 < %t.sm_86.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_87 --quant-gpu-codegen=chip=sm_87 -o %t.sm_87.mlir
// RUN: %extract_ptx %t.sm_87.mlir %t.sm_87.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,SM87 < %t.sm_87.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_89 --quant-gpu-codegen=chip=sm_89 -o %t.sm_89.mlir
// RUN: %extract_ptx %t.sm_89.mlir %t.sm_89.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,SM89 < %t.sm_89.ptx
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_90 --quant-gpu-codegen=chip=sm_90 -o %t.sm_90.mlir
// RUN: %extract_ptx %t.sm_90.mlir %t.sm_90.ptx
// RUN: FileCheck %s --check-prefixes=CHECK,SM90 < %t.sm_90.ptx
// RUN: %if ptxas %{ %ptxas -arch=sm_75 %t.sm_75.ptx -o %t.sm_75.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_80 %t.sm_80.ptx -o %t.sm_80.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_86 %t.sm_86.ptx -o %t.sm_86.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_87 %t.sm_87.ptx -o %t.sm_87.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_89 %t.sm_89.ptx -o %t.sm_89.cubin %}
// RUN: %if ptxas %{ %ptxas -arch=sm_90 %t.sm_90.ptx -o %t.sm_90.cubin %}

// The GEMV kernel (M <= 8) for every supported arch: .target, 128-bit code
// loads, conversion-free f16x2 dequant (no cvt to or from f32 between the
// code load and the f16x2 FMAs; the f16 partial sums are widened once per
// 32 codes), the warp-shuffle K reduction; and ptxas accepts the PTX.
// SM75: .target sm_75
// SM80: .target sm_80
// SM86: .target sm_86
// SM87: .target sm_87
// SM89: .target sm_89
// SM90: .target sm_90
// CHECK-LABEL: .entry wq_gemv_m1_k4096_n4096_b4_g128_z_bias(
// CHECK: .maxntid 128, 1, 1
// CHECK: ld.global.v4.b32
// CHECK-NOT: cvt.{{[a-z0-9.]*}}f32
// CHECK: sub.rn.f16x2
// CHECK-NOT: cvt.{{[a-z0-9.]*}}f32
// CHECK: mul.rn.f16x2
// CHECK-NOT: cvt.{{[a-z0-9.]*}}f32
// CHECK: ld.global.v4.b32
// CHECK-NOT: cvt.{{[a-z0-9.]*}}f32
// CHECK: fma.rn.f16x2
// CHECK: cvt.f32.f16
// CHECK: shfl.sync.bfly.b32 {{.*}}, 4, 31, -1
// CHECK: shfl.sync.bfly.b32 {{.*}}, 8, 31, -1
// CHECK: shfl.sync.bfly.b32 {{.*}}, 16, 31, -1
// CHECK: bar.sync 0
// CHECK: st.global.b16
// CHECK-NOT: mma.sync

module attributes {wq.archive = "m.safetensors"} {
func.func @gemv(%x: tensor<1x4096xf16>) -> tensor<1x4096xf16> {
  %c = wq.weight "c" : tensor<128x16384xi32>
  %s = wq.weight "s" : tensor<32x4096xf16>
  %z = wq.weight "z" : tensor<32x512xi32>
  %b = wq.weight "b" : tensor<4096xf16>
  %y = wq.quantized_linear %x, %c, %s zeros %z bias %b {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false>}
      : (tensor<1x4096xf16>, tensor<128x16384xi32>, tensor<32x4096xf16>, tensor<32x512xi32>, tensor<4096xf16>) -> tensor<1x4096xf16>
  return %y : tensor<1x4096xf16>
}
}
