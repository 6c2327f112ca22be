// RUN: quant-opt %s | FileCheck %s
// RUN: quant-opt %s | quant-opt | FileCheck %s
// RUN: quant-opt %s -mlir-print-op-generic | quant-opt | FileCheck %s

// CHECK: module attributes {wq.archive = "model.safetensors", wq.stats_archive = "stats.safetensors"}
module attributes {wq.archive = "model.safetensors", wq.stats_archive = "stats.safetensors"} {

// CHECK-LABEL: func.func @linear
func.func @linear(%x: tensor<?x?x64xf32>) -> tensor<?x?x128xf32> {
  // CHECK: %[[W:.*]] = wq.weight "model.layers.0.mlp.up_proj.weight" : tensor<128x64xf32>
  %w = wq.weight "model.layers.0.mlp.up_proj.weight" : tensor<128x64xf32>
  // CHECK: %[[B:.*]] = wq.weight "model.layers.0.mlp.up_proj.bias" : tensor<128xf32>
  %b = wq.weight "model.layers.0.mlp.up_proj.bias" : tensor<128xf32>
  // CHECK: wq.linear %{{.*}}, %[[W]] bias %[[B]] {name = "model.layers.0.mlp.up_proj", scheme = #wq.scheme<bits = 4, group_size = 32, symmetric = false, act_order = true>, stats = #wq.stats<key = "model.layers.0.mlp.up_proj", tokens = 65536, rows = 512>} : tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<128xf32> -> tensor<?x?x128xf32>
  %y = wq.linear %x, %w bias %b {
      name = "model.layers.0.mlp.up_proj",
      stats = #wq.stats<key = "model.layers.0.mlp.up_proj", tokens = 65536, rows = 512>,
      scheme = #wq.scheme<bits = 4, group_size = 32, symmetric = false, act_order = true>}
      : tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<128xf32> -> tensor<?x?x128xf32>
  return %y : tensor<?x?x128xf32>
}

// Defaults are elided: symmetric = true, act_order = false, rows = 0.
// CHECK-LABEL: func.func @defaults
func.func @defaults(%x: tensor<4x64xf16>) -> tensor<4x32xf16> {
  %w = wq.weight "w" : tensor<32x64xf16>
  // CHECK: scheme = #wq.scheme<bits = 8, group_size = -1>
  // CHECK-SAME: stats = #wq.stats<key = "w", tokens = 16>
  %y = wq.linear %x, %w {scheme = #wq.scheme<bits = 8, group_size = -1>, stats = #wq.stats<key = "w", tokens = 16>}
      : tensor<4x64xf16>, tensor<32x64xf16> -> tensor<4x32xf16>
  return %y : tensor<4x32xf16>
}

// GPTQ layout, zero-point, act-order: every optional operand present.
// CHECK-LABEL: func.func @quantized_gptq
func.func @quantized_gptq(%x: tensor<1x7x256xf16>) -> tensor<1x7x64xf16> {
  %codes = wq.weight "l.qweight" : tensor<32x64xi32>
  %scales = wq.weight "l.scales" : tensor<2x64xf16>
  %zeros = wq.weight "l.qzeros" : tensor<2x8xi32>
  %gidx = wq.weight "l.g_idx" : tensor<256xi32>
  %bias = wq.weight "l.bias" : tensor<64xf16>
  // CHECK: wq.quantized_linear %{{.*}}, %{{.*}}, %{{.*}} zeros %{{.*}} g_idx %{{.*}} bias %{{.*}} {name = "l", packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = true>} : (tensor<1x7x256xf16>, tensor<32x64xi32>, tensor<2x64xf16>, tensor<2x8xi32>, tensor<256xi32>, tensor<64xf16>) -> tensor<1x7x64xf16>
  %y = wq.quantized_linear %x, %codes, %scales zeros %zeros g_idx %gidx bias %bias {
      name = "l", packing = #wq.packing<gptq>,
      scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = true>}
      : (tensor<1x7x256xf16>, tensor<32x64xi32>, tensor<2x64xf16>, tensor<2x8xi32>, tensor<256xi32>, tensor<64xf16>) -> tensor<1x7x64xf16>
  return %y : tensor<1x7x64xf16>
}

// 3-bit symmetric per-channel: codes are a bit stream of K*3/32 words.
// CHECK-LABEL: func.func @quantized_3bit
func.func @quantized_3bit(%x: tensor<2x64xf32>) -> tensor<2x16xf32> {
  %codes = wq.weight "c" : tensor<6x16xi32>
  %scales = wq.weight "s" : tensor<1x16xf32>
  // CHECK: wq.quantized_linear %{{.*}}, %{{.*}}, %{{.*}} {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 3, group_size = -1>} : (tensor<2x64xf32>, tensor<6x16xi32>, tensor<1x16xf32>) -> tensor<2x16xf32>
  %y = wq.quantized_linear %x, %codes, %scales {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 3, group_size = -1>}
      : (tensor<2x64xf32>, tensor<6x16xi32>, tensor<1x16xf32>) -> tensor<2x16xf32>
  return %y : tensor<2x16xf32>
}

// AutoAWQ layout: codes packed along N.
// CHECK-LABEL: func.func @dequantize_awq
func.func @dequantize_awq() -> tensor<16x64xf16> {
  %codes = wq.weight "c" : tensor<64x2xi32>
  %scales = wq.weight "s" : tensor<2x16xf16>
  %zeros = wq.weight "z" : tensor<2x2xi32>
  // CHECK: wq.dequantize %{{.*}}, %{{.*}} zeros %{{.*}} {packing = #wq.packing<awq>, scheme = #wq.scheme<bits = 4, group_size = 32, symmetric = false>} : (tensor<64x2xi32>, tensor<2x16xf16>, tensor<2x2xi32>) -> tensor<16x64xf16>
  %w = wq.dequantize %codes, %scales zeros %zeros {packing = #wq.packing<awq>, scheme = #wq.scheme<bits = 4, group_size = 32, symmetric = false>}
      : (tensor<64x2xi32>, tensor<2x16xf16>, tensor<2x2xi32>) -> tensor<16x64xf16>
  return %w : tensor<16x64xf16>
}

// Every supported bit width and group size parses.
// CHECK-LABEL: func.func @schemes
func.func @schemes() attributes {
  // CHECK-SAME: s2 = #wq.scheme<bits = 2, group_size = 32>
  // CHECK-SAME: s3 = #wq.scheme<bits = 3, group_size = 64>
  // CHECK-SAME: s4 = #wq.scheme<bits = 4, group_size = 256>
  // CHECK-SAME: s8 = #wq.scheme<bits = 8, group_size = 128, symmetric = false>
  s2 = #wq.scheme<bits = 2, group_size = 32>,
  s3 = #wq.scheme<bits = 3, group_size = 64>,
  s4 = #wq.scheme<bits = 4, group_size = 256>,
  s8 = #wq.scheme<bits = 8, group_size = 128, symmetric = false>} {
  return
}

// Pure: the same archive tensor referenced twice is one value after CSE.
// CHECK-LABEL: func.func @tied
func.func @tied() -> (tensor<8x4xf32>, tensor<8x4xf32>) {
  %a = wq.weight "model.embed_tokens.weight" : tensor<8x4xf32>
  %b = wq.weight "model.embed_tokens.weight" : tensor<8x4xf32>
  return %a, %b : tensor<8x4xf32>, tensor<8x4xf32>
}
}
