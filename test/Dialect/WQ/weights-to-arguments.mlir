// RUN: quant-opt %s --split-input-file --verify-diagnostics --wq-weights-to-arguments | FileCheck %s

module attributes {wq.archive = "m.safetensors"} {
// One argument per distinct archive tensor, in first-use order; repeated
// references share it.
// CHECK-LABEL: func.func @block
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>, %[[W:.*]]: tensor<4x8xf32> {wq.weight = "a.weight"}, %[[B:.*]]: tensor<4xf32> {wq.weight = "a.bias"})
// CHECK-NOT: wq.weight "
// CHECK: wq.linear %[[X]], %[[W]] bias %[[B]]
// CHECK: wq.linear %[[X]], %[[W]] :
func.func @block(%x: tensor<2x8xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>) {
  %w = wq.weight "a.weight" : tensor<4x8xf32>
  %b = wq.weight "a.bias" : tensor<4xf32>
  %y = wq.linear %x, %w bias %b : tensor<2x8xf32>, tensor<4x8xf32>, tensor<4xf32> -> tensor<2x4xf32>
  %w2 = wq.weight "a.weight" : tensor<4x8xf32>
  %z = wq.linear %x, %w2 : tensor<2x8xf32>, tensor<4x8xf32> -> tensor<2x4xf32>
  return %y, %z : tensor<2x4xf32>, tensor<2x4xf32>
}
// Functions without weights are untouched.
// CHECK-LABEL: func.func @plain(%{{.*}}: f32) -> f32
func.func @plain(%a: f32) -> f32 { return %a : f32 }
}

// -----

module attributes {wq.archive = "m.safetensors"} {
// expected-error @+1 {{function 'callee' references weights and has callers; inline it before wq-weights-to-arguments}}
func.func @callee() -> tensor<4xf32> {
  %w = wq.weight "w" : tensor<4xf32>
  return %w : tensor<4xf32>
}
func.func @caller() -> tensor<4xf32> {
  %r = call @callee() : () -> tensor<4xf32>
  return %r : tensor<4xf32>
}
}

// -----

module attributes {wq.archive = "m.safetensors"} {
func.func @f() -> (tensor<4xf32>, tensor<2x2xf32>) {
  // expected-error @+1 {{weight 'w' is referenced with different types}}
  %a = wq.weight "w" : tensor<4xf32>
  %b = wq.weight "w" : tensor<2x2xf32>
  return %a, %b : tensor<4xf32>, tensor<2x2xf32>
}
}
