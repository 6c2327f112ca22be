// RUN: quant-opt %s --convert-wq-to-gpu --split-input-file --verify-diagnostics | FileCheck %s
// RUN: quant-opt %s --convert-wq-to-gpu=chip=sm_75 --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=TURING

// M = 2 (3-D input): a GEMV launch of N/4 blocks x 128 threads on the
// tensors' buffers; the kernel streams 128-bit code loads, dequantizes in
// f16x2 and reduces K with warp shuffles.
module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @gemv
// CHECK: %[[X:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<1x2x256xf16> into tensor<2x256xf16>
// CHECK: %[[XB:.*]] = bufferization.to_buffer %[[X]] read_only : tensor<2x256xf16> to memref<2x256xf16>
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<2x128xf16>
// CHECK: gpu.launch_func @wq_kernels::@wq_gemv_m2_k256_n128_b4_g128_z blocks in (%c32, %c1{{.*}}, %c1{{.*}}) threads in (%c128, %c1{{.*}}, %c1{{.*}}) args(%[[XB]] : memref<2x256xf16>, %{{.*}} : memref<8x512xi32>, %{{.*}} : memref<2x128xf16>, %{{.*}} : memref<2x16xi32>, %[[OUT]] : memref<2x128xf16>)
// CHECK: %[[T:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: tensor.expand_shape %[[T]] {{\[\[}}0, 1], [2]] output_shape [1, 2, 128]
// CHECK: gpu.module @wq_kernels
// CHECK: gpu.func @wq_gemv_m2_k256_n128_b4_g128_z(%{{.*}}: memref<2x256xf16>, %{{.*}}: memref<8x512xi32>, %{{.*}}: memref<2x128xf16>, %{{.*}}: memref<2x16xi32>, %{{.*}}: memref<2x128xf16>) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: scf.for
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<8x512xi32>, vector<4xi32>
// CHECK: vector.bitcast %{{.*}} : vector<1xi32> to vector<2xf16>
// CHECK: arith.subf %{{.*}} : vector<2xf16>
// CHECK: arith.mulf %{{.*}} : vector<2xf16>
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<2x256xf16>, vector<8xf16>
// CHECK: vector.fma %{{.*}} : vector<2xf16>
// CHECK: arith.extf %{{.*}} : vector<2xf16> to vector<2xf32>
// CHECK: gpu.shuffle  xor %{{.*}}, %c4
// CHECK: gpu.shuffle  xor %{{.*}}, %c8
// CHECK: gpu.shuffle  xor %{{.*}}, %c16
// CHECK: gpu.barrier
// CHECK: memref.global "private" @wq_gemv_m2_k256_n128_b4_g128_z_smem0 : memref<4x2x4xf32, #gpu.address_space<workgroup>> = uninitialized {alignment = 16 : i64}
// CHECK-NOT: wq.quantized_linear
func.func @gemv(%x: tensor<1x2x256xf16>) -> tensor<1x2x128xf16> {
  %c = wq.weight "c" : tensor<8x512xi32>
  %s = wq.weight "s" : tensor<2x128xf16>
  %z = wq.weight "z" : tensor<2x16xi32>
  %y = wq.quantized_linear %x, %c, %s zeros %z {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false>}
      : (tensor<1x2x256xf16>, tensor<8x512xi32>, tensor<2x128xf16>, tensor<2x16xi32>) -> tensor<1x2x128xf16>
  return %y : tensor<1x2x128xf16>
}
}

// -----

// M = 32: the tensor-core GEMM, grid (N/128, M/blockM), ldmatrix + mma.sync
// m16n8k16 (two m16n8k8 per k16 step on sm_75).
module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @gemm
// CHECK: gpu.launch_func @wq_kernels::@wq_gemm_m32_k256_n256_b8_g256_bias_sm80 blocks in (%c2, %c1{{.*}}, %c1{{.*}}) threads in (%c128
// CHECK: gpu.func @wq_gemm_m32_k256_n256_b8_g256_bias_sm80
// CHECK: memref.get_global @wq_gemm_m32_k256_n256_b8_g256_bias_sm80_smem0 : memref<32x24xf16, #gpu.address_space<workgroup>>
// CHECK: memref.get_global @wq_gemm_m32_k256_n256_b8_g256_bias_sm80_smem1 : memref<128x24xf16, #gpu.address_space<workgroup>>
// CHECK: vector.store %{{.*}} {alignment = 16 : i64} : memref<128x24xf16, #gpu.address_space<workgroup>>, vector<8xf16>
// CHECK: gpu.barrier
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 4 : i32, transpose = false} : memref<32x24xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: nvgpu.ldmatrix %{{.*}} {numTiles = 2 : i32, transpose = false} : memref<128x24xf16, #gpu.address_space<workgroup>> -> vector<2x2xf16>
// CHECK: nvgpu.mma.sync(%{{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// TURING-LABEL: func.func @gemm
// TURING: gpu.func @wq_gemm_m32_k256_n256_b8_g256_bias_sm75
// TURING: nvgpu.mma.sync(%{{.*}}) {mmaShape = [16, 8, 8]} : (vector<2x2xf16>, vector<1x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
func.func @gemm(%x: tensor<32x256xf16>) -> tensor<32x256xf16> {
  %c = wq.weight "c" : tensor<16x1024xi32>
  %s = wq.weight "s" : tensor<1x256xf16>
  %b = wq.weight "b" : tensor<256xf16>
  %y = wq.quantized_linear %x, %c, %s bias %b {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 8, group_size = 256>}
      : (tensor<32x256xf16>, tensor<16x1024xi32>, tensor<1x256xf16>, tensor<256xf16>) -> tensor<32x256xf16>
  return %y : tensor<32x256xf16>
}
}

// -----

// What the kernels do not cover stays for the CPU path, with a warning.
module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @left
// CHECK-COUNT-4: wq.quantized_linear
// CHECK-NOT: gpu.launch_func
func.func @left(%x: tensor<1x256xf16>, %x12: tensor<12x256xf16>, %xf: tensor<1x256xf32>) -> (tensor<1x128xf16>, tensor<1x128xf16>, tensor<12x128xf16>, tensor<1x128xf32>) {
  %c = wq.weight "c" : tensor<32x128xi32>
  %s = wq.weight "s" : tensor<2x128xf16>
  %sf = wq.weight "sf" : tensor<2x128xf32>
  %cv = wq.weight "cv" : tensor<8x512xi32>
  %g = wq.weight "g" : tensor<256xi32>
  // expected-warning @+1 {{not converted to a GPU kernel: codes are not in the gpu_v4 layout (run wq-pack first)}}
  %a = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 128>}
      : (tensor<1x256xf16>, tensor<32x128xi32>, tensor<2x128xf16>) -> tensor<1x128xf16>
  // expected-warning @+1 {{act_order (g_idx) is not supported by the GPU kernels yet}}
  %b = wq.quantized_linear %x, %cv, %s g_idx %g {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128, act_order = true>}
      : (tensor<1x256xf16>, tensor<8x512xi32>, tensor<2x128xf16>, tensor<256xi32>) -> tensor<1x128xf16>
  // expected-warning @+1 {{the tensor-core GEMM needs M to be a multiple of 16}}
  %d = wq.quantized_linear %x12, %cv, %s {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128>}
      : (tensor<12x256xf16>, tensor<8x512xi32>, tensor<2x128xf16>) -> tensor<12x128xf16>
  // expected-warning @+1 {{static-shape f16 activations, scales and bias}}
  %e = wq.quantized_linear %xf, %cv, %sf {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128>}
      : (tensor<1x256xf32>, tensor<8x512xi32>, tensor<2x128xf32>) -> tensor<1x128xf32>
  return %a, %b, %d, %e : tensor<1x128xf16>, tensor<1x128xf16>, tensor<12x128xf16>, tensor<1x128xf32>
}
}
