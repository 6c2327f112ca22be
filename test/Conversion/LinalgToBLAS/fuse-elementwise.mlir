// RUN: quant-opt %s --quant-fuse-elementwise | FileCheck %s

// A single-use elementwise producer (RoPE-like scaling) feeding a
// contraction is not fused into it (upstream's fusion would recompute it for
// every output column); elementwise chains still fuse.
// CHECK-LABEL: func.func @keep_contraction
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel"]
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-NOT: linalg.generic
#id = affine_map<(d0, d1) -> (d0, d1)>
#a = affine_map<(d0, d1, d2) -> (d0, d2)>
#b = affine_map<(d0, d1, d2) -> (d1, d2)>
#c = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @keep_contraction(%q: tensor<8x16xf32>, %k: tensor<8x16xf32>, %init: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %e = tensor.empty() : tensor<8x16xf32>
  %s = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%q : tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%v: f32, %o: f32):
    %r = arith.mulf %v, %v : f32
    linalg.yield %r : f32
  } -> tensor<8x16xf32>
  %t = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%s : tensor<8x16xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%v: f32, %o: f32):
    %r = arith.addf %v, %v : f32
    linalg.yield %r : f32
  } -> tensor<8x16xf32>
  %m = linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%t, %k : tensor<8x16xf32>, tensor<8x16xf32>) outs(%init : tensor<8x8xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %r = arith.addf %acc, %p : f32
    linalg.yield %r : f32
  } -> tensor<8x8xf32>
  return %m : tensor<8x8xf32>
}

// K^T and V's head transpose fold into the attention contractions that read
// them (the operand map absorbs the permutation, nothing is recomputed and
// the copy goes); the contraction body stays a plain mul-add.
// CHECK-LABEL: func.func @transpose_into_contraction
// CHECK-NOT: linalg.transpose
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%arg0, %arg1 : tensor<2x8x16xf32>, tensor<2x8x16xf32>)
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK-NOT: linalg.generic
#qa = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#kb = affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>
#sc = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @transpose_into_contraction(%q: tensor<2x8x16xf32>, %k: tensor<2x8x16xf32>, %init: tensor<2x8x8xf32>) -> tensor<2x8x8xf32> {
  %e = tensor.empty() : tensor<2x16x8xf32>
  %kt = linalg.transpose ins(%k : tensor<2x8x16xf32>) outs(%e : tensor<2x16x8xf32>) permutation = [0, 2, 1]
  %s = linalg.generic {indexing_maps = [#qa, #kb, #sc], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kt : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%init : tensor<2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  return %s : tensor<2x8x8xf32>
}

// A transpose with a second user stays (folding it would recompute it).
// CHECK-LABEL: func.func @shared_transpose
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel"]
// CHECK: linalg.generic
// CHECK-SAME: "reduction"
func.func @shared_transpose(%q: tensor<2x8x16xf32>, %k: tensor<2x8x16xf32>, %init: tensor<2x8x8xf32>) -> (tensor<2x8x8xf32>, tensor<2x16x8xf32>) {
  %e = tensor.empty() : tensor<2x16x8xf32>
  %kt = linalg.transpose ins(%k : tensor<2x8x16xf32>) outs(%e : tensor<2x16x8xf32>) permutation = [0, 2, 1]
  %s = linalg.generic {indexing_maps = [#qa, #kb, #sc], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kt : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%init : tensor<2x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x8x8xf32>
  return %s, %kt : tensor<2x8x8xf32>, tensor<2x16x8xf32>
}
