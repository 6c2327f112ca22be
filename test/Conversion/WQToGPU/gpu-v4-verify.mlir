// RUN: quant-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// gpu_v4 shapes: codes [K*bits/128, 4N]; scales, zeros, g_idx as gptq.
module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @ok
func.func @ok(%x: tensor<2x256xf16>) -> tensor<2x64xf16> {
  %c = wq.weight "c" : tensor<8x256xi32>
  %s = wq.weight "s" : tensor<2x64xf16>
  %z = wq.weight "z" : tensor<2x8xi32>
  // CHECK: #wq.packing<gpu_v4>
  %y = wq.quantized_linear %x, %c, %s zeros %z {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false>}
      : (tensor<2x256xf16>, tensor<8x256xi32>, tensor<2x64xf16>, tensor<2x8xi32>) -> tensor<2x64xf16>
  return %y : tensor<2x64xf16>
}
}

// -----

module attributes {wq.archive = "m.safetensors"} {
func.func @bad_codes(%x: tensor<2x256xf16>) -> tensor<2x64xf16> {
  %c = wq.weight "c" : tensor<32x64xi32>
  %s = wq.weight "s" : tensor<2x64xf16>
  // expected-error @+1 {{codes must have shape [8, 256], got [32, 64]}}
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 4, group_size = 128>}
      : (tensor<2x256xf16>, tensor<32x64xi32>, tensor<2x64xf16>) -> tensor<2x64xf16>
  return %y : tensor<2x64xf16>
}
}

// -----

module attributes {wq.archive = "m.safetensors"} {
func.func @bad_k(%x: tensor<2x64xf16>) -> tensor<2x64xf16> {
  %c = wq.weight "c" : tensor<1x256xi32>
  %s = wq.weight "s" : tensor<1x64xf16>
  // expected-error @+1 {{K = 64 times bits = 3 must be a multiple of 128 for gpu_v4 packing}}
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gpu_v4>, scheme = #wq.scheme<bits = 3, group_size = -1>}
      : (tensor<2x64xf16>, tensor<1x256xi32>, tensor<1x64xf16>) -> tensor<2x64xf16>
  return %y : tensor<2x64xf16>
}
}
