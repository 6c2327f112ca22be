// RUN: quant-opt %s --convert-wq-to-cpu-kernels | FileCheck %s

// gptq f32 layers become the fused dequant + SGEMM call on the operands'
// buffers; the output is allocated in the result's shape (no reshapes).
// CHECK: func.func private @quant_qlinear_f32(index, index, index, index, index, index, index, index, index, index, index, index, index, index, index)
// CHECK-LABEL: func.func @gptq
// CHECK: %[[OUT:.*]] = memref.alloc(%{{.*}}) : memref<1x?x64xf32>
// CHECK: call @quant_qlinear_f32(%{{.*}}, %c64, %c256, %c4, %c128, %c2, %c0, %c0{{(_[0-9]+)?}},
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable : memref<1x?x64xf32> to tensor<1x?x64xf32>
// CHECK-NOT: wq.quantized_linear
func.func @gptq(%x: tensor<1x?x256xf32>, %c: tensor<32x64xi32>, %s: tensor<2x64xf32>, %z: tensor<2x8xi32>, %b: tensor<64xf32>) -> tensor<1x?x64xf32> {
  %y = wq.quantized_linear %x, %c, %s zeros %z bias %b {packing = #wq.packing<gptq>,
      scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = false>}
      : (tensor<1x?x256xf32>, tensor<32x64xi32>, tensor<2x64xf32>, tensor<2x8xi32>, tensor<64xf32>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}

// f16 layers are left for convert-wq-to-linalg.
// CHECK-LABEL: func.func @f16_left
// CHECK: wq.quantized_linear
func.func @f16_left(%x: tensor<2x256xf16>, %c: tensor<32x64xi32>, %s: tensor<2x64xf16>) -> tensor<2x64xf16> {
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>,
      scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = true, act_order = false>}
      : (tensor<2x256xf16>, tensor<32x64xi32>, tensor<2x64xf16>) -> tensor<2x64xf16>
  return %y : tensor<2x64xf16>
}
