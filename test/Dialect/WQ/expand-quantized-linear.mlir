// RUN: quant-opt %s --wq-expand-quantized-linear | FileCheck %s

module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @expand
// CHECK-SAME: (%[[X:.*]]: tensor<1x7x256xf16>)
func.func @expand(%x: tensor<1x7x256xf16>) -> tensor<1x7x64xf16> {
  // CHECK-DAG: %[[C:.*]] = wq.weight "l.qweight"
  // CHECK-DAG: %[[S:.*]] = wq.weight "l.scales"
  // CHECK-DAG: %[[Z:.*]] = wq.weight "l.qzeros"
  // CHECK-DAG: %[[G:.*]] = wq.weight "l.g_idx"
  // CHECK-DAG: %[[B:.*]] = wq.weight "l.bias"
  %codes = wq.weight "l.qweight" : tensor<32x64xi32>
  %scales = wq.weight "l.scales" : tensor<2x64xf16>
  %zeros = wq.weight "l.qzeros" : tensor<2x8xi32>
  %gidx = wq.weight "l.g_idx" : tensor<256xi32>
  %bias = wq.weight "l.bias" : tensor<64xf16>
  // CHECK: %[[W:.*]] = wq.dequantize %[[C]], %[[S]] zeros %[[Z]] g_idx %[[G]] {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = true>} : (tensor<32x64xi32>, tensor<2x64xf16>, tensor<2x8xi32>, tensor<256xi32>) -> tensor<64x256xf16>
  // The float layer carries the name but no scheme: nothing re-quantizes it.
  // CHECK: wq.linear %[[X]], %[[W]] bias %[[B]] {name = "l"} : tensor<1x7x256xf16>, tensor<64x256xf16>, tensor<64xf16> -> tensor<1x7x64xf16>
  // CHECK-NOT: wq.quantized_linear
  %y = wq.quantized_linear %x, %codes, %scales zeros %zeros g_idx %gidx bias %bias {
      name = "l", packing = #wq.packing<gptq>,
      scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = true>}
      : (tensor<1x7x256xf16>, tensor<32x64xi32>, tensor<2x64xf16>, tensor<2x8xi32>, tensor<256xi32>, tensor<64xf16>) -> tensor<1x7x64xf16>
  return %y : tensor<1x7x64xf16>
}
}
