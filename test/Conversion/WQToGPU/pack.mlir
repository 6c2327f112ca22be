// RUN: quant-opt %s --wq-pack=layout=gpu_v4 --split-input-file --verify-diagnostics | FileCheck %s

// Constant codes are repacked in the IR: [K*bits/32, N] -> [K*bits/128, 4N].
// Word 0 of column 0 holds codes 0..7 = 0,1,..,7 (stream order, 0x76543210);
// gpu_v4 interleaves them as 0,2,4,6,1,3,5,7 (0x75316420).
module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @constant
func.func @constant(%x: tensor<1x32xf16>) -> tensor<1x2xf16> {
  // CHECK: %[[C:.*]] = arith.constant dense<{{\[\[}}1966171168, 0, 0, 0, 1, 0, 0, 0]]> : tensor<1x8xi32>
  // CHECK: wq.quantized_linear %{{.*}}, %[[C]], %{{.*}} {packing = #wq.packing<gpu_v4>
  // CHECK-SAME: (tensor<1x32xf16>, tensor<1x8xi32>, tensor<1x2xf16>) -> tensor<1x2xf16>
  %c = arith.constant dense<[[1985229328, 1], [0, 0], [0, 0], [0, 0]]> : tensor<4x2xi32>
  %s = wq.weight "s" : tensor<1x2xf16>
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>}
      : (tensor<1x32xf16>, tensor<4x2xi32>, tensor<1x2xf16>) -> tensor<1x2xf16>
  return %y : tensor<1x2xf16>
}
}

// -----

// K * bits = 96 is not a multiple of 128: the layer stays gptq.
module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @too_short
// CHECK: packing = #wq.packing<gptq>
func.func @too_short(%x: tensor<1x32xf16>) -> tensor<1x8xf16> {
  %c = arith.constant dense<0> : tensor<3x8xi32>
  %s = wq.weight "s" : tensor<1x8xf16>
  // expected-warning @+1 {{left in gptq: K * bits = 96 is not a multiple of 128}}
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 3, group_size = -1>}
      : (tensor<1x32xf16>, tensor<3x8xi32>, tensor<1x8xf16>) -> tensor<1x8xf16>
  return %y : tensor<1x8xf16>
}
}

// -----

// Archive codes need output=.
module attributes {wq.archive = "m.safetensors"} {
func.func @needs_output(%x: tensor<1x32xf16>) -> tensor<1x8xf16> {
  %c = wq.weight "c" : tensor<4x8xi32>
  %s = wq.weight "s" : tensor<1x8xf16>
  // expected-error @+1 {{give output= for the repacked archive}}
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>}
      : (tensor<1x32xf16>, tensor<4x8xi32>, tensor<1x8xf16>) -> tensor<1x8xf16>
  return %y : tensor<1x8xf16>
}
}
