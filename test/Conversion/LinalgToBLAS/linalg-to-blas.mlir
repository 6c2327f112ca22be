// RUN: quant-opt %s --convert-linalg-to-blas --split-input-file | FileCheck %s

// An attention-style batched matmul on buffers becomes one runtime call:
// 3 loop dims (batch, m, n, k), roles 0 / 1 / 2 / 3, sizes and strides.
// CHECK-LABEL: func.func private @quant_contract_f32(
// CHECK-SAME: index
// CHECK-LABEL: func.func @batch_matmul
// CHECK-NOT: linalg.batch_matmul
// CHECK-DAG: %[[PA:.*]] = memref.extract_aligned_pointer_as_index %arg0
// CHECK-DAG: %[[PB:.*]] = memref.extract_aligned_pointer_as_index %arg1
// CHECK-DAG: %[[PC:.*]] = memref.extract_aligned_pointer_as_index %arg2
// CHECK: call @quant_contract_f32(%c4, %[[PA]], %{{.*}}, %[[PB]], %{{.*}}, %[[PC]], %{{.*}}, %c0{{(_[0-9]+)?}}, %c2{{(_[0-9]+)?}},
// CHECK-NOT: linalg.batch_matmul
func.func @batch_matmul(%a: memref<2x?x16xf32>, %b: memref<2x16x?xf32>, %c: memref<2x?x?xf32>) {
  linalg.batch_matmul ins(%a, %b : memref<2x?x16xf32>, memref<2x16x?xf32>) outs(%c : memref<2x?x?xf32>)
  return
}

// -----

// wq.linear's contraction: y[b, s, n] += x[b, s, k] * w[n, k].
// CHECK-LABEL: func.func @linear_generic
// CHECK: call @quant_contract_f32(%c4,
// CHECK-NOT: linalg.generic
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#y = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @linear_generic(%x: memref<?x?x64xf32>, %w: memref<32x64xf32>, %y: memref<?x?x32xf32>) {
  linalg.generic {indexing_maps = [#x, #w, #y], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<?x?x64xf32>, memref<32x64xf32>) outs(%y : memref<?x?x32xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// Not contractions (a max reduction), or not f32: left alone.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: call @quant_contract_f32
// CHECK: linalg.generic
// CHECK: linalg.matmul
#in = affine_map<(d0, d1) -> (d0, d1)>
#out = affine_map<(d0, d1) -> (d0)>
func.func @left_alone(%x: memref<8x16xf32>, %m: memref<8xf32>, %a: memref<4x4xf64>, %c: memref<4x4xf64>) {
  linalg.generic {indexing_maps = [#in, #out], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<8x16xf32>) outs(%m : memref<8xf32>) {
  ^bb0(%v: f32, %acc: f32):
    %r = arith.maximumf %acc, %v : f32
    linalg.yield %r : f32
  }
  linalg.matmul ins(%a, %a : memref<4x4xf64>, memref<4x4xf64>) outs(%c : memref<4x4xf64>)
  return
}
