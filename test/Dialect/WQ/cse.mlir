// RUN: quant-opt %s --cse | FileCheck %s
// wq.weight is pure: two references to one archive tensor fold into one.

module attributes {wq.archive = "m.safetensors"} {
// CHECK-LABEL: func.func @tied
// CHECK-COUNT-1: wq.weight "model.embed_tokens.weight"
// CHECK-NOT: wq.weight
// CHECK: return %[[A:.*]], %[[A]]
func.func @tied() -> (tensor<8x4xf32>, tensor<8x4xf32>) {
  %a = wq.weight "model.embed_tokens.weight" : tensor<8x4xf32>
  %b = wq.weight "model.embed_tokens.weight" : tensor<8x4xf32>
  return %a, %b : tensor<8x4xf32>, tensor<8x4xf32>
}
}
