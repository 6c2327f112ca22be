// RUN: quant-opt %s --quant-clone-shared-fills | FileCheck %s
// RUN: quant-opt %s --quant-clone-shared-fills --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s --check-prefix=BUF

// One fill of an empty tensor shared by two accumulating contractions (what
// CSE leaves of two layers' score initialisations): each gets its own.
// CHECK-LABEL: func.func @two_layers
// CHECK: %[[E1:.*]] = tensor.empty
// CHECK: %[[F1:.*]] = linalg.fill ins(%{{.*}}) outs(%[[E1]]
// CHECK: linalg.matmul ins(%arg0, %arg1 : {{.*}}) outs(%[[F1]]
// CHECK: %[[E2:.*]] = tensor.empty
// CHECK: %[[F2:.*]] = linalg.fill ins(%{{.*}}) outs(%[[E2]]
// CHECK: linalg.matmul ins(%arg0, %arg2 : {{.*}}) outs(%[[F2]]
// Bufferized: two allocations filled in place, no copy.
// BUF-LABEL: func.func @two_layers
// BUF-NOT: memref.copy
// BUF-COUNT-2: linalg.fill
// BUF-NOT: memref.copy
// BUF-LABEL: func.func @dynamic
func.func @two_layers(%a: tensor<8x16xf32>, %b: tensor<16x8xf32>, %c: tensor<16x8xf32>) -> (tensor<8x8xf32>, tensor<8x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<8x8xf32>) -> tensor<8x8xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x8xf32>) outs(%f : tensor<8x8xf32>) -> tensor<8x8xf32>
  %1 = linalg.matmul ins(%a, %c : tensor<8x16xf32>, tensor<16x8xf32>) outs(%f : tensor<8x8xf32>) -> tensor<8x8xf32>
  return %0, %1 : tensor<8x8xf32>, tensor<8x8xf32>
}

// Dynamic sizes: the clone's empty tensor reuses the original's size values.
// CHECK-LABEL: func.func @dynamic
// CHECK-SAME: (%{{.*}}: tensor<?x16xf32>, %{{.*}}: tensor<16x8xf32>, %[[N:.*]]: index)
// CHECK: tensor.empty(%[[N]])
// CHECK: tensor.empty(%[[N]])
func.func @dynamic(%a: tensor<?x16xf32>, %b: tensor<16x8xf32>, %n: index) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty(%n) : tensor<?x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<?x16xf32>, tensor<16x8xf32>) outs(%f : tensor<?x8xf32>) -> tensor<?x8xf32>
  %1 = linalg.matmul ins(%a, %b : tensor<?x16xf32>, tensor<16x8xf32>) outs(%f : tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0, %1 : tensor<?x8xf32>, tensor<?x8xf32>
}

// A fill of real data (not an empty tensor) is left alone.
// CHECK-LABEL: func.func @not_empty
// CHECK-COUNT-1: linalg.fill
// CHECK-NOT: linalg.fill
func.func @not_empty(%a: tensor<8x16xf32>, %b: tensor<16x8xf32>, %init: tensor<8x8xf32>) -> (tensor<8x8xf32>, tensor<8x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %f = linalg.fill ins(%zero : f32) outs(%init : tensor<8x8xf32>) -> tensor<8x8xf32>
  %0 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x8xf32>) outs(%f : tensor<8x8xf32>) -> tensor<8x8xf32>
  %1 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x8xf32>) outs(%f : tensor<8x8xf32>) -> tensor<8x8xf32>
  return %0, %1 : tensor<8x8xf32>, tensor<8x8xf32>
}
