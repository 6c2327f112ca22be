// RUN: quant-opt %s --split-input-file --verify-diagnostics --wq-outline-blocks

// No weight names a layer: nothing to split.
module attributes {wq.archive = "model.safetensors"} {
  // expected-error @below {{no wq.weight of 'forward' names a layer}}
  func.func @forward(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %w = wq.weight "proj.weight" : tensor<8x8xf32>
    %y = wq.linear %x, %w {name = "proj"} : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
    return %y : tensor<4x8xf32>
  }
}

// -----

// Block 1 reads block 0's linear output directly (a skip connection past
// the residual stream): no single value passes between the blocks.
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %x1 = math.tanh %x : tensor<4x8xf32>
    %w0 = wq.weight "layers.0.proj.weight" : tensor<8x8xf32>
    %u0 = wq.linear %x1, %w0 {name = "layers.0.proj"} : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
    %h1 = arith.addf %x1, %u0 : tensor<4x8xf32>
    // expected-error @below {{the uses of layer 1's weights do not meet its input in one tensor before the output (no residual stream to cut the graph at: per-layer outputs such as a KV cache, or connections that skip past the next block, prevent the split)}}
    %w1 = wq.weight "layers.1.proj.weight" : tensor<8x8xf32>
    %u1 = wq.linear %h1, %w1 {name = "layers.1.proj"} : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
    %s = arith.addf %u1, %u0 : tensor<4x8xf32>
    %h2 = arith.addf %h1, %s : tensor<4x8xf32>
    return %h2 : tensor<4x8xf32>
  }
}

// -----

// A per-layer output (like a KV cache) is computed inside a block.
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
    %x1 = math.tanh %x : tensor<4x8xf32>
    // expected-error @below {{the uses of layer 0's weights do not meet its input in one tensor before the output}}
    %w0 = wq.weight "layers.0.proj.weight" : tensor<8x8xf32>
    %u0 = wq.linear %x1, %w0 {name = "layers.0.proj"} : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
    %h1 = arith.addf %x1, %u0 : tensor<4x8xf32>
    %w1 = wq.weight "layers.1.proj.weight" : tensor<8x8xf32>
    %u1 = wq.linear %h1, %w1 {name = "layers.1.proj"} : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
    %h2 = arith.addf %h1, %u1 : tensor<4x8xf32>
    return %h2, %u0 : tensor<4x8xf32>, tensor<4x8xf32>
  }
}

// -----

// expected-error @below {{the module has 2 public functions; name the entry with func=}}
module attributes {wq.archive = "model.safetensors"} {
  func.func @a(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
  func.func @b(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

// The block's output is not of its input's type.
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %x1 = math.tanh %x : tensor<4x8xf32>
    %w0 = wq.weight "layers.0.proj.weight" : tensor<8x8xf32>
    %u0 = wq.linear %x1, %w0 {name = "layers.0.proj"} : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
    // expected-error @below {{block of layer 0 ends in 'tensor<8x8xf32>', not its input's type 'tensor<4x8xf32>'}}
    %c = tensor.concat dim(0) %x1, %u0 : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<8x8xf32>
    %r = arith.extf %c : tensor<8x8xf32> to tensor<8x8xf64>
    %h = tensor.extract_slice %r[0, 0] [4, 8] [1, 1] : tensor<8x8xf64> to tensor<4x8xf64>
    %y = arith.truncf %h : tensor<4x8xf64> to tensor<4x8xf32>
    return %y : tensor<4x8xf32>
  }
}
