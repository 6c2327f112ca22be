// RUN: quant-opt %s --convert-wq-to-linalg --split-input-file | FileCheck %s

module attributes {wq.archive = "m.safetensors"} {
// A float layer: an f32-accumulating contraction over [N, K], then bias + cast.
// CHECK-DAG: #[[X:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[W:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[Y:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @linear
func.func @linear(%x: tensor<?x?x64xf16>) -> tensor<?x?x32xf16> {
  // CHECK: %[[WT:.*]] = wq.weight "w" : tensor<32x64xf16>
  %w = wq.weight "w" : tensor<32x64xf16>
  %b = wq.weight "b" : tensor<32xf16>
  // CHECK: %[[E:.*]] = tensor.empty(%{{.*}}, %{{.*}}) : tensor<?x?x32xf32>
  // CHECK: %[[F:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E]] : tensor<?x?x32xf32>)
  // CHECK: linalg.generic {indexing_maps = [#[[X]], #[[W]], #[[Y]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
  // CHECK-SAME: ins(%{{.*}}, %[[WT]] : tensor<?x?x64xf16>, tensor<32x64xf16>) outs(%[[F]] : tensor<?x?x32xf32>)
  // CHECK: arith.extf
  // CHECK: arith.mulf {{.*}} : f32
  // CHECK: arith.addf {{.*}} : f32
  // CHECK: linalg.generic
  // CHECK: arith.addf
  // CHECK: arith.truncf {{.*}} : f32 to f16
  // CHECK-NOT: wq.linear
  %y = wq.linear %x, %w bias %b : tensor<?x?x64xf16>, tensor<32x64xf16>, tensor<32xf16> -> tensor<?x?x32xf16>
  return %y : tensor<?x?x32xf16>
}
}

// -----

module attributes {wq.archive = "m.safetensors"} {
// 4-bit gptq with zeros and act-order: codes are read 8 to a word along K,
// the group comes from g_idx, zeros are unpacked along N.
// CHECK-LABEL: func.func @dequant
func.func @dequant() -> tensor<64x256xf16> {
  %codes = wq.weight "l.qweight" : tensor<32x64xi32>
  %scales = wq.weight "l.scales" : tensor<2x64xf16>
  %zeros = wq.weight "l.qzeros" : tensor<2x8xi32>
  %gidx = wq.weight "l.g_idx" : tensor<256xi32>
  // CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<64x256xf16>)
  // CHECK: %[[N:.*]] = linalg.index 0
  // CHECK: %[[K:.*]] = linalg.index 1
  // CHECK: tensor.extract %{{.*}}[%{{.*}}, %[[N]]] : tensor<32x64xi32>
  // CHECK: arith.shrui
  // CHECK: arith.andi {{.*}}, %c15_i64
  // CHECK: tensor.extract %{{.*}}[%[[K]]] : tensor<256xi32>
  // CHECK: tensor.extract %{{.*}} : tensor<2x8xi32>
  // CHECK: tensor.extract %{{.*}} : tensor<2x64xf16>
  // CHECK: arith.subi
  // CHECK: arith.sitofp {{.*}} : i64 to f16
  // CHECK: arith.mulf {{.*}} : f16
  // CHECK-NOT: wq.dequantize
  %w = wq.dequantize %codes, %scales zeros %zeros g_idx %gidx {packing = #wq.packing<gptq>,
      scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = true>}
      : (tensor<32x64xi32>, tensor<2x64xf16>, tensor<2x8xi32>, tensor<256xi32>) -> tensor<64x256xf16>
  return %w : tensor<64x256xf16>
}
}

// -----

module attributes {wq.archive = "m.safetensors"} {
// A quantized layer is expanded, then both halves are lowered.
// CHECK-LABEL: func.func @quantized
// CHECK-NOT: wq.quantized_linear
// CHECK-NOT: wq.dequantize
// CHECK-NOT: wq.linear
// CHECK: return
func.func @quantized(%x: tensor<4x64xf32>) -> tensor<4x16xf32> {
  %c = wq.weight "c" : tensor<6x16xi32>
  %s = wq.weight "s" : tensor<1x16xf32>
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 3, group_size = -1>}
      : (tensor<4x64xf32>, tensor<6x16xi32>, tensor<1x16xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
}

// -----

module attributes {wq.archive = "m.safetensors"} {
// f16 scales with f32 activations: dequantized in f16, contracted in f32.
// CHECK-LABEL: func.func @mixed
// CHECK: arith.mulf {{.*}} : f16
// CHECK: arith.extf {{.*}} : f16 to f32
// CHECK-NOT: wq.
func.func @mixed(%x: tensor<4x64xf32>) -> tensor<4x16xf32> {
  %c = wq.weight "c" : tensor<8x16xi32>
  %s = wq.weight "s" : tensor<1x16xf16>
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>}
      : (tensor<4x64xf32>, tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
}
