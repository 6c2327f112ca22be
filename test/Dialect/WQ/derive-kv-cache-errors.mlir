// RUN: quant-opt %s --split-input-file --verify-diagnostics --wq-derive-kv-cache

// A graph with inputs besides the token ids brings its own cache.
module attributes {wq.archive = "model.safetensors"} {
  // expected-error @below {{the entry must map token ids to logits alone; it has 2 inputs and 1 results}}
  func.func @forward(%ids: tensor<?x?xi64>, %mask: tensor<?x?xi64>) -> tensor<?x?xi64> {
    return %ids : tensor<?x?xi64>
  }
}

// -----

// The caches hold one sequence: a graph traced for batch 2 is refused.
module attributes {wq.archive = "model.safetensors"} {
  // expected-error @below {{the token ids are 'tensor<2x?xi64>': the cached step decodes one sequence (batch 1)}}
  func.func @forward(%ids: tensor<2x?xi64>) -> tensor<2x?xi64> {
    return %ids : tensor<2x?xi64>
  }
}

// -----

// No contraction computed from another one: no attention.
module attributes {wq.archive = "model.safetensors"} {
  // expected-error @below {{no attention found}}
  func.func @forward(%x: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
    %y = math.tanh %x : tensor<2x4x8xf32>
    return %y : tensor<2x4x8xf32>
  }
}

// -----

// Attention without heads (rank-3 K): not the [B, H, S, D] layout.
#q = affine_map<(b, i, j, d) -> (b, i, d)>
#k = affine_map<(b, i, j, d) -> (b, d, j)>
#s = affine_map<(b, i, j, d) -> (b, i, j)>
#p = affine_map<(b, i, d, j) -> (b, i, j)>
#v = affine_map<(b, i, d, j) -> (b, j, d)>
#o = affine_map<(b, i, d, j) -> (b, i, d)>
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%x: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
    %zero = arith.constant 0.0 : f32
    %e = tensor.empty() : tensor<2x8x4xf32>
    %kt = linalg.transpose ins(%x : tensor<2x4x8xf32>) outs(%e : tensor<2x8x4xf32>) permutation = [0, 2, 1]
    %se = tensor.empty() : tensor<2x4x4xf32>
    %sf = linalg.fill ins(%zero : f32) outs(%se : tensor<2x4x4xf32>) -> tensor<2x4x4xf32>
    // expected-error @below {{the keys of attention 0 are not a tensor<BxHxSxDxf32> with static H and D}}
    %scores = linalg.generic {indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %kt : tensor<2x4x8xf32>, tensor<2x8x4xf32>) outs(%sf : tensor<2x4x4xf32>) {
    ^bb0(%a: f32, %b: f32, %c: f32):
      %m = arith.mulf %a, %b : f32
      %r = arith.addf %c, %m : f32
      linalg.yield %r : f32
    } -> tensor<2x4x4xf32>
    %oe = tensor.empty() : tensor<2x4x8xf32>
    %of = linalg.fill ins(%zero : f32) outs(%oe : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %out = linalg.generic {indexing_maps = [#p, #v, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%scores, %x : tensor<2x4x4xf32>, tensor<2x4x8xf32>) outs(%of : tensor<2x4x8xf32>) {
    ^bb0(%a: f32, %b: f32, %c: f32):
      %m = arith.mulf %a, %b : f32
      %r = arith.addf %c, %m : f32
      linalg.yield %r : f32
    } -> tensor<2x4x8xf32>
    return %out : tensor<2x4x8xf32>
  }
}
